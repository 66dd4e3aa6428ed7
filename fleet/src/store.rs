//! Where the jobs live: an SQLite file, or a PostgreSQL database a fleet of workers shares.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_core::backend::TaskSink;
use apalis_core::task::builder::TaskBuilder;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::error::FleetError;
use crate::job::Job;

/// The database the fleet's jobs live in, with apalis's schema set up.
///
/// SQLite is the embedded default: one file, no server, for the workers of one machine (the
/// processes sharing the file). PostgreSQL is for a fleet: any number of workers on any number of
/// machines claim jobs from one database.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_lro_fleet::FleetError> {
/// let local = tower_lro_fleet::Store::sqlite("/var/lib/gateway/operations.db").await?;
/// let shared = tower_lro_fleet::Store::postgres("postgres://fleet@db.internal/fleet").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Inner,
}

#[derive(Debug, Clone)]
pub(crate) enum Inner {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// How long a query waits for a pooled connection before it fails, so a database that went
/// away fails calls and worker generations promptly instead of holding them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path` and sets up apalis's tables.
    pub async fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Store, FleetError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // Several workers of one file take turns writing; a short wait beats an error.
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| FleetError::store("cannot open the SQLite database", e))?;
        Store::from_sqlite_pool(pool).await
    }

    /// Uses an SQLite pool you configured, setting up apalis's tables in it.
    pub async fn from_sqlite_pool(pool: SqlitePool) -> Result<Store, FleetError> {
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| FleetError::store("cannot set up the SQLite schema", e))?;
        Ok(Store {
            inner: Inner::Sqlite(pool),
        })
    }

    /// Connects to the PostgreSQL database at `url` and sets up apalis's schema (`apalis.*`).
    /// The pool reconnects by itself when the server comes back after going away.
    pub async fn postgres(url: &str) -> Result<Store, FleetError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| FleetError::store("cannot connect to PostgreSQL", e))?;
        Store::from_postgres_pool(pool).await
    }

    /// Uses a PostgreSQL pool you configured, setting up apalis's schema in it.
    pub async fn from_postgres_pool(pool: PgPool) -> Result<Store, FleetError> {
        PostgresStorage::setup(&pool)
            .await
            .map_err(|e| FleetError::store("cannot set up the PostgreSQL schema", e))?;
        crate::retention::setup_postgres(&pool)
            .await
            .map_err(|e| FleetError::store("cannot create the index of finished jobs", e))?;
        Ok(Store {
            inner: Inner::Postgres(pool),
        })
    }

    /// The SQLite pool, when this store is SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner {
            Inner::Sqlite(pool) => Some(pool),
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when this store is PostgreSQL.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.inner {
            Inner::Postgres(pool) => Some(pool),
            Inner::Sqlite(_) => None,
        }
    }

    /// Enqueues `job` to run `after` from now (rounded up to the store's whole seconds, so never
    /// early). The job's idempotency key makes a second enqueue of the same step a no-op, which
    /// is what keeps a re-run step from forking the operation.
    pub(crate) async fn enqueue(
        &self,
        queue: &str,
        job: Job,
        after: Duration,
        max_attempts: usize,
    ) -> Result<(), FleetError> {
        let task = TaskBuilder::new(job.clone())
            .idempotency_key(job.idempotency_key())
            .run_at_timestamp(run_at(after))
            .max_attempts(max_attempts)
            .build();
        match &self.inner {
            Inner::Sqlite(pool) => {
                let config = apalis_sqlite::Config::default().queue(queue);
                // SQLite's insert ignores a duplicate key itself (`ON CONFLICT DO NOTHING`).
                SqliteStorage::<Job>::new(pool)
                    .with_config(config)
                    .push_task(task)
                    .await
                    .map_err(|e| FleetError::store("cannot enqueue a step in SQLite", e))
            }
            Inner::Postgres(pool) => {
                let config = apalis_postgres::Config::default().queue(queue);
                let pushed = PostgresStorage::<Job>::new(pool)
                    .with_config(config)
                    .push_task(task)
                    .await;
                match pushed {
                    Ok(()) => Ok(()),
                    // PostgreSQL refuses the duplicate with a unique violation: the step is
                    // already enqueued, which is what was asked.
                    Err(apalis_core::backend::TaskSinkError::PushError(
                        apalis_postgres::Error::Database(sqlx::Error::Database(db)),
                    )) if db.is_unique_violation() => Ok(()),
                    Err(e) => Err(FleetError::store("cannot enqueue a step in PostgreSQL", e)),
                }
            }
        }
    }
}

/// The first whole second at or after `after` from now: the stores schedule in whole seconds,
/// and a server's hint must not be undercut.
fn run_at(after: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_add(after);
    let seconds = at.as_secs();
    if at.subsec_nanos() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_at_never_undercuts_the_wait() {
        for millis in [0, 1, 50, 999, 1_000, 1_001, 17_000] {
            let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let at = Duration::from_secs(run_at(Duration::from_millis(millis)));
            assert!(at >= before + Duration::from_millis(millis), "{millis} ms");
            assert!(at <= before + Duration::from_millis(millis) + Duration::from_secs(2));
        }
    }
}

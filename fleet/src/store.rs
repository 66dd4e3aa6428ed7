//! Where the jobs live: an SQLite file, or a PostgreSQL database a fleet of workers shares.
//! Each store is a feature (`sqlite`, the default, and `postgres`): an application builds only
//! the driver it uses.

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("tower-lro-fleet needs a store: enable its `sqlite` or `postgres` feature");

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_core::backend::TaskSink;
use apalis_core::task::builder::TaskBuilder;
#[cfg(feature = "postgres")]
use apalis_postgres::PostgresStorage;
#[cfg(feature = "sqlite")]
use apalis_sqlite::SqliteStorage;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::error::FleetError;
use crate::job::Job;
use crate::quarantine::Quarantined;

/// The database the fleet's jobs live in, with apalis's schema and the fleet's quarantine table
/// set up.
///
/// SQLite (feature `sqlite`, the default) is the embedded store: one file, no server, for the
/// workers of one machine (the processes sharing the file). PostgreSQL (feature `postgres`) is
/// for a fleet: any number of workers on any number of machines claim jobs from one database.
///
/// **What the store must guarantee**: a commit it acknowledged is durable. The fleet answers
/// [`Fleet::start`](crate::Fleet::start) only after the enqueue committed, and acknowledges a
/// step only after its successor committed; a database that acknowledges commits it may lose
/// (PostgreSQL with `fsync=off` or `synchronous_commit=off`, SQLite with `synchronous=OFF`)
/// loses operations the fleet reported tracked when it crashes. The defaults of both are
/// durable; keep them.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_lro_fleet::FleetError> {
/// let local = tower_lro_fleet::Store::sqlite("/var/lib/gateway/operations.db").await?;
/// # #[cfg(feature = "postgres")]
/// let shared = tower_lro_fleet::Store::postgres("postgres://fleet@db.internal/fleet").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Inner,
}

#[derive(Debug, Clone)]
pub(crate) enum Inner {
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

/// How long a query waits for a pooled connection before it fails, so a database that went
/// away fails calls and worker generations promptly instead of holding them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Store::postgres`] waits for a database that is not up yet.
#[cfg(feature = "postgres")]
const CONNECT_WAIT: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path` and sets up apalis's tables
    /// and the fleet's quarantine table.
    #[cfg(feature = "sqlite")]
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

    /// Uses an SQLite pool you configured, setting up apalis's tables and the fleet's
    /// quarantine table in it.
    #[cfg(feature = "sqlite")]
    pub async fn from_sqlite_pool(pool: SqlitePool) -> Result<Store, FleetError> {
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| FleetError::store("cannot set up the SQLite schema", e))?;
        sqlite::setup(&pool).await?;
        Ok(Store {
            inner: Inner::Sqlite(pool),
        })
    }

    /// Connects to the PostgreSQL database at `url` and sets up apalis's schema (`apalis.*`)
    /// and the fleet's quarantine table (`tower_lro_fleet.quarantine`). A server that is not up
    /// yet (refusing connections, or starting) is waited for, up to 30 s; see
    /// [`postgres_within`](Self::postgres_within). The pool reconnects by itself when the
    /// server comes back after going away.
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str) -> Result<Store, FleetError> {
        Store::postgres_within(url, CONNECT_WAIT).await
    }

    /// As [`postgres`](Self::postgres), waiting up to `wait` for the server to accept a
    /// connection: connection attempts are repeated, backing off from 100 ms to 2 s, while the
    /// server refuses connections, times out or says it is starting up. Anything else (a bad
    /// URL, a refused password, a missing database) fails at once.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_lro_fleet::FleetError> {
    /// use std::time::Duration;
    /// let store = tower_lro_fleet::Store::postgres_within(
    ///     "postgres://fleet@db.internal/fleet",
    ///     Duration::from_secs(120),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub async fn postgres_within(url: &str, wait: Duration) -> Result<Store, FleetError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| FleetError::store("the PostgreSQL URL is not valid", e))?;
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        postgres::wait_until_up(&pool, wait).await?;
        Store::from_postgres_pool(pool).await
    }

    /// Uses a PostgreSQL pool you configured, setting up apalis's schema and the fleet's
    /// quarantine table in it.
    #[cfg(feature = "postgres")]
    pub async fn from_postgres_pool(pool: PgPool) -> Result<Store, FleetError> {
        PostgresStorage::setup(&pool)
            .await
            .map_err(|e| FleetError::store("cannot set up the PostgreSQL schema", e))?;
        postgres::setup(&pool).await?;
        Ok(Store {
            inner: Inner::Postgres(pool),
        })
    }

    /// The SQLite pool, when this store is SQLite.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => Some(pool),
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when this store is PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => Some(pool),
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(_) => None,
        }
    }

    /// The rows of `queue` in the quarantine, oldest first, at most `limit`.
    pub(crate) async fn quarantined(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<Quarantined>, FleetError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let listed = match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => sqlite::quarantined(pool, queue, limit).await,
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => postgres::quarantined(pool, queue, limit).await,
        };
        listed.map_err(|e| FleetError::store("cannot list the quarantine", e))
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
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => {
                let config = apalis_sqlite::Config::default().queue(queue);
                // SQLite's insert ignores a duplicate key itself (`ON CONFLICT DO NOTHING`).
                SqliteStorage::<Job>::new(pool)
                    .with_config(config)
                    .push_task(task)
                    .await
                    .map_err(|e| FleetError::store("cannot enqueue a step in SQLite", e))
            }
            #[cfg(feature = "postgres")]
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

/// One stored step of an operation, as `Fleet::status` reads it.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) max_attempts: i64,
    /// Seconds since the Unix epoch; `None` for a time that has none (PostgreSQL's
    /// `'infinity'`, written by something other than the fleet).
    pub(crate) run_at: Option<i64>,
    pub(crate) last_result: Option<String>,
    pub(crate) job: Vec<u8>,
    pub(crate) idempotency_key: String,
}

type RawRow = (
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Vec<u8>,
    String,
);

impl From<RawRow> for Row {
    fn from(r: RawRow) -> Row {
        Row {
            status: r.0,
            attempts: r.1,
            max_attempts: r.2,
            run_at: r.3,
            last_result: r.4,
            job: r.5,
            idempotency_key: r.6,
        }
    }
}

impl Row {
    /// Whether the engine will run this row again (a step due or under way).
    pub(crate) fn in_flight(&self) -> bool {
        match self.status.as_str() {
            "Done" | "Killed" => false,
            "Failed" => self.attempts < self.max_attempts,
            _ => true,
        }
    }
}

// The queries below are built from these constants only; every value is bound.
#[cfg(feature = "sqlite")]
const SQLITE_COLUMNS: &str =
    "status, attempts, max_attempts, run_at, last_result, job, idempotency_key";
#[cfg(feature = "postgres")]
// An infinite `run_at` has no seconds: NULL, so that one such row fails no listing.
const POSTGRES_COLUMNS: &str = "status, attempts::bigint, max_attempts::bigint, \
     CASE WHEN isfinite(run_at) THEN EXTRACT(EPOCH FROM run_at)::bigint END, \
     last_result::text, job, idempotency_key";

/// The range of idempotency keys of one operation's steps: `id/0`, `id/1`, … sort between `id/`
/// and `id0` in byte order ('0' follows '/'); ids are ULIDs, which hold neither.
fn chain_range(id: &str) -> (String, String) {
    (format!("{id}/"), format!("{id}0"))
}

fn store_error(e: sqlx::Error) -> FleetError {
    FleetError::store("cannot read or update the fleet's jobs", e)
}

impl Store {
    /// The latest step (the highest number) of operation `id`, whatever its status.
    pub(crate) async fn latest(&self, queue: &str, id: &str) -> Result<Option<Row>, FleetError> {
        let (from, to) = chain_range(id);
        // Step numbers are decimal: a longer key is a later step, then byte order.
        let row: Option<RawRow> = match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_COLUMNS} FROM Jobs WHERE job_type = ?1 \
                     AND idempotency_key >= ?2 AND idempotency_key < ?3 \
                     ORDER BY length(idempotency_key) DESC, idempotency_key DESC LIMIT 1"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(queue)
                    .bind(from)
                    .bind(to)
                    .fetch_optional(pool)
                    .await
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => {
                let sql = format!(
                    "SELECT {POSTGRES_COLUMNS} FROM apalis.jobs WHERE job_type = $1 \
                     AND idempotency_key COLLATE \"C\" >= $2 AND idempotency_key COLLATE \"C\" < $3 \
                     ORDER BY length(idempotency_key) DESC, idempotency_key COLLATE \"C\" DESC LIMIT 1"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(queue)
                    .bind(from)
                    .bind(to)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(store_error)?;
        Ok(row.map(Row::from))
    }

    /// Up to `limit` in-flight rows of operations whose ids follow `after`, in id order (an
    /// operation's rows together).
    pub(crate) async fn in_flight(
        &self,
        queue: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, FleetError> {
        // Past every step of `after`; "" is before every key.
        let from = after.map(|id| chain_range(id).1).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<RawRow> = match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {SQLITE_COLUMNS} FROM Jobs WHERE job_type = ?1 \
                     AND idempotency_key >= ?2 AND status NOT IN ('Done', 'Killed') \
                     AND NOT (status = 'Failed' AND attempts >= max_attempts) \
                     ORDER BY idempotency_key LIMIT ?3"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(queue)
                    .bind(from)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => {
                let sql = format!(
                    "SELECT {POSTGRES_COLUMNS} FROM apalis.jobs WHERE job_type = $1 \
                     AND idempotency_key COLLATE \"C\" >= $2 AND status NOT IN ('Done', 'Killed') \
                     AND NOT (status = 'Failed' AND attempts >= max_attempts) \
                     ORDER BY idempotency_key COLLATE \"C\" LIMIT $3"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(queue)
                    .bind(from)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(store_error)?;
        Ok(rows.into_iter().map(Row::from).collect())
    }

    /// Replaces the payload of the step `idempotency_key` if it is still waiting (to run, or to
    /// run again after a failed run), and makes it due now; `false` when a worker holds it (or it ended) meanwhile.
    pub(crate) async fn replace_waiting(
        &self,
        queue: &str,
        idempotency_key: &str,
        job: &Job,
    ) -> Result<bool, FleetError> {
        let payload = job.encode();
        let done = match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => sqlx::query(
                // strftime is TEXT, which SQLite orders after every INTEGER: cast, or `min`
                // keeps the old time.
                "UPDATE Jobs SET job = ?1, \
                 run_at = min(run_at, CAST(strftime('%s', 'now') AS INTEGER)) \
                 WHERE job_type = ?2 AND idempotency_key = ?3 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(payload)
            .bind(queue)
            .bind(idempotency_key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => sqlx::query(
                "UPDATE apalis.jobs SET job = $1, run_at = LEAST(run_at, now()) \
                 WHERE job_type = $2 AND idempotency_key = $3 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(payload)
            .bind(queue)
            .bind(idempotency_key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        }
        .map_err(store_error)?;
        Ok(done == 1)
    }

    /// The stored payload of step `idempotency_key`, and then `job` in its place: what a worker
    /// holding the step reads and writes (the engine re-runs a step from the payload it fetched,
    /// so the row is the truth about what was already done).
    pub(crate) async fn swap_held(
        &self,
        queue: &str,
        idempotency_key: &str,
        job: &Job,
    ) -> Result<Option<Vec<u8>>, FleetError> {
        let payload = job.encode();
        let old: Option<(Vec<u8>,)> = match &self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(store_error)?;
                let old = sqlx::query_as(
                    "SELECT job FROM Jobs WHERE job_type = ?1 AND idempotency_key = ?2",
                )
                .bind(queue)
                .bind(idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
                sqlx::query(
                    "UPDATE Jobs SET job = ?1 WHERE job_type = ?2 AND idempotency_key = ?3",
                )
                .bind(payload)
                .bind(queue)
                .bind(idempotency_key)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                old
            }
            #[cfg(feature = "postgres")]
            Inner::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(store_error)?;
                let old = sqlx::query_as(
                    "SELECT job FROM apalis.jobs WHERE job_type = $1 AND idempotency_key = $2 \
                     FOR UPDATE",
                )
                .bind(queue)
                .bind(idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
                sqlx::query(
                    "UPDATE apalis.jobs SET job = $1 WHERE job_type = $2 AND idempotency_key = $3",
                )
                .bind(payload)
                .bind(queue)
                .bind(idempotency_key)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                old
            }
        };
        Ok(old.map(|(job,)| job))
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

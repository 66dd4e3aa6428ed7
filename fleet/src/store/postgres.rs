//! PostgreSQL: the engine's queries for workers, heartbeats and acknowledgements, its claim
//! (`apalis.get_jobs`), and the fleet's own decoding of the claimed rows, which quarantines
//! the rows it cannot step (see src/backend.rs for why).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis_core::backend::persistence::{Persistence, TaskEvent};
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::queries;
use serde_json::Value;
use sqlx::postgres::types::PgHstore;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row as _;

use crate::backend::{Row, StoreFailure, Table};
use crate::error::{FleetError, FleetErrorKind};
use crate::job::Job;
use crate::quarantine::{Quarantine, Quarantined};
use crate::settings::Settings;

/// One transaction, under an advisory lock: processes starting together must not race each
/// other's `CREATE ... IF NOT EXISTS` (PostgreSQL can fail the loser with a duplicate).
const SETUP: [&str; 6] = [
    "SELECT pg_advisory_xact_lock(hashtext('tower_lro_fleet.quarantine'))",
    "CREATE SCHEMA IF NOT EXISTS tower_lro_fleet",
    "CREATE TABLE IF NOT EXISTS tower_lro_fleet.quarantine (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        queue TEXT NOT NULL,
        payload BYTEA,
        row JSONB NOT NULL,
        reason TEXT NOT NULL,
        worker TEXT NOT NULL,
        quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )",
    "CREATE INDEX IF NOT EXISTS quarantine_queue ON tower_lro_fleet.quarantine (queue, seq)",
    // An operation's steps are found by the prefix of their idempotency keys ("id/"), in byte
    // order whatever the database's collation: apalis's own index on the key follows the
    // collation, which may ignore the '/'.
    "CREATE INDEX IF NOT EXISTS tower_lro_fleet_chains \
     ON apalis.jobs (job_type, (idempotency_key COLLATE \"C\"))",
    // The pruner's walk (src/retention.rs): finished rows by queue and age; apalis's own
    // indexes cover only the rows waiting to run.
    "CREATE INDEX IF NOT EXISTS tower_lro_fleet_done_at \
     ON apalis.jobs (job_type, done_at) WHERE status = 'Done'",
];

/// The engine's claim (the same function apalis-postgres's `fetch_next` calls), with the
/// timestamps as seconds so that reading them cannot fail: an infinite one (`'-infinity'` is
/// due at once) has no seconds and reads as NULL, which quarantines the row instead of failing
/// the whole claim, again and again, for every worker.
const FETCH: &str = "SELECT id, job_type, job, status, attempts, max_attempts,
    CASE WHEN isfinite(run_at) THEN EXTRACT(EPOCH FROM run_at)::bigint END AS run_at,
    CASE WHEN isfinite(lock_at) THEN EXTRACT(EPOCH FROM lock_at)::bigint END AS lock_at,
    lock_at IS NOT NULL AND NOT isfinite(lock_at) AS lock_at_infinite,
    lock_by, priority, idempotency_key, metadata
FROM apalis.get_jobs($1, $2, $3)";

/// Moves one claimed row, every column kept (as JSON, the payload as bytes), to the quarantine.
const QUARANTINE: &str = "WITH moved AS (DELETE FROM apalis.jobs WHERE id = $1 RETURNING *)
INSERT INTO tower_lro_fleet.quarantine (id, queue, payload, row, reason, worker)
SELECT id, job_type, job, to_jsonb(moved) - 'job', $2, $3 FROM moved";

pub(crate) async fn setup(pool: &PgPool) -> Result<(), FleetError> {
    let failed = |e| FleetError::store("cannot set up the PostgreSQL quarantine table", e);
    let mut tx = pool.begin().await.map_err(failed)?;
    for statement in SETUP {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Whether a connection attempt failed because the server is not (yet) there, rather than
/// because of something waiting will not fix.
fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // cannot_connect_now (starting up, shutting down, in recovery), too_many_connections.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// Waits, at most `wait`, until `pool` hands out a connection.
pub(crate) async fn wait_until_up(pool: &PgPool, wait: Duration) -> Result<(), FleetError> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(100);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(left, pool.acquire()).await {
            Ok(Ok(_connection)) => return Ok(()),
            Ok(Err(error)) if unavailable(&error) => error,
            Ok(Err(error)) => return Err(FleetError::store("cannot connect to PostgreSQL", error)),
            Err(_) => {
                return Err(FleetError::new(
                    FleetErrorKind::Store,
                    format!("PostgreSQL did not accept a connection within {wait:?}"),
                ))
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FleetError::store(
                format!("PostgreSQL did not accept a connection within {wait:?}"),
                error,
            ));
        }
        tracing::warn!(%error, "PostgreSQL is not accepting connections yet; waiting");
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

pub(crate) async fn quarantined(
    pool: &PgPool,
    queue: &str,
    limit: i64,
) -> Result<Vec<Quarantined>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, queue, payload, row::text AS row, reason, worker,
            EXTRACT(EPOCH FROM quarantined_at)::bigint AS quarantined_at
         FROM tower_lro_fleet.quarantine WHERE queue = $1 ORDER BY seq LIMIT $2",
    )
    .bind(queue)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Quarantined {
                id: row.try_get("id")?,
                queue: row.try_get("queue")?,
                reason: row.try_get("reason")?,
                payload: row.try_get("payload")?,
                row: row.try_get("row")?,
                worker: row.try_get("worker")?,
                quarantined_at: u64::try_from(row.try_get::<i64, _>("quarantined_at")?)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The fleet's queue in one PostgreSQL database.
#[derive(Debug, Clone)]
pub(crate) struct PgTable {
    pool: PgPool,
    config: apalis_postgres::Config,
    quarantine: Arc<Quarantine>,
}

impl PgTable {
    pub(crate) fn new(pool: PgPool, settings: &Settings, quarantine: Arc<Quarantine>) -> PgTable {
        let config = apalis_postgres::Config::default()
            .queue(&settings.queue)
            .batch_size(settings.batch_size)
            .heartbeat_interval(settings.heartbeat)
            .missed_heartbeats(settings.missed_heartbeats);
        PgTable {
            pool,
            config,
            quarantine,
        }
    }
}

impl Table for PgTable {
    fn heartbeat_interval(&self) -> Duration {
        self.config.heartbeat_interval
    }

    fn batch_size(&self) -> usize {
        self.config.batch_size
    }
}

fn read(row: &PgRow) -> Row {
    fn column<T>(row: &PgRow, name: &str) -> Result<T, String>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        row.try_get(name).map_err(|e| format!("column {name}: {e}"))
    }
    let time = |name: &str| -> Result<i64, String> {
        column::<Option<i64>>(row, name)?
            .ok_or_else(|| format!("column {name} is NULL or not a finite time"))
    };
    let integer = |name: &str| -> Result<i64, String> {
        column::<Option<i32>>(row, name)?
            .map(i64::from)
            .ok_or_else(|| format!("column {name} is NULL"))
    };
    Row {
        id: column::<String>(row, "id").unwrap_or_default(),
        payload: column(row, "job"),
        queue: column(row, "job_type"),
        status: column(row, "status"),
        attempts: integer("attempts"),
        max_attempts: integer("max_attempts"),
        run_at: time("run_at"),
        lock_at: match column::<Option<bool>>(row, "lock_at_infinite") {
            Ok(Some(true)) => Err("column lock_at is not a finite time".to_owned()),
            _ => column(row, "lock_at"),
        },
        lock_by: column(row, "lock_by"),
        priority: integer("priority"),
        idempotency_key: column(row, "idempotency_key"),
        metadata: column::<Option<PgHstore>>(row, "metadata").and_then(|metadata| {
            metadata
                .map(|PgHstore(map)| {
                    map.into_iter()
                        .map(|(key, value)| {
                            value.map(|value| (key.clone(), value)).ok_or_else(|| {
                                format!("the metadata holds a NULL value (key `{key}`)")
                            })
                        })
                        .collect()
                })
                .unwrap_or_else(|| Ok(Default::default()))
        }),
    }
}

impl Persistence for PgTable {
    type Compact = Job;
    type Response = Value;
    type Error = StoreFailure;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), StoreFailure> {
        // As apalis-postgres's own `SqlxPersistence::register`.
        let queue = self.config.queue.as_ref();
        let dead_for = self.config.orphaned_duration().as_secs();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        queries::reenqueue_orphaned(&mut *tx, queue, dead_for)
            .await
            .map_err(StoreFailure::from)?;
        queries::register_worker(&mut *tx, queue, worker, &now.into(), "PgStorage")
            .await
            .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), StoreFailure> {
        // As apalis-postgres's own `SqlxPersistence::heartbeat`.
        let queue = self.config.queue.as_ref();
        let dead_for = self.config.orphaned_duration().as_secs();
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        queries::keep_alive(&mut *tx, queue, worker)
            .await
            .map_err(StoreFailure::from)?;
        queries::reenqueue_orphaned(&mut *tx, queue, dead_for)
            .await
            .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<Task<Job>>, StoreFailure> {
        let queue = self.config.queue.to_string();
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        let rows = sqlx::query(FETCH)
            .bind(worker.name())
            .bind(&queue)
            .bind(i32::try_from(self.config.batch_size).unwrap_or(i32::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreFailure::from)?;
        let mut tasks = Vec::with_capacity(rows.len());
        let mut quarantined = Vec::new();
        for row in rows {
            let read = read(&row);
            let id = read.id.clone();
            match read.task() {
                Ok(task) => tasks.push(task),
                Err(reason) => {
                    let moved = sqlx::query(QUARANTINE)
                        .bind(&id)
                        .bind(&reason)
                        .bind(worker.name())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreFailure::from)?;
                    // Reported only once it is really out of the jobs table.
                    if moved.rows_affected() == 1 {
                        quarantined.push((id, reason));
                    }
                }
            }
        }
        tx.commit().await.map_err(StoreFailure::from)?;
        for (id, reason) in quarantined {
            self.quarantine.report(worker.name(), &queue, &id, &reason);
        }
        Ok(tasks)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), StoreFailure> {
        // As apalis-postgres's own `SqlxPersistence::handle_events`: a step acknowledged in the
        // same batch needs no lock.
        let acks: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Complete(result) => Some(result),
                _ => None,
            })
            .collect();
        let acked: std::collections::HashSet<String> =
            acks.iter().map(|ack| ack.task_id().to_string()).collect();
        let locks: Vec<String> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Lock { task_id } => Some(task_id.to_string()),
                _ => None,
            })
            .filter(|id| !acked.contains(id))
            .collect();
        if locks.is_empty() && acks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        if !acks.is_empty() {
            queries::handle_results(&mut *tx, &acks, worker.name())
                .await
                .map_err(StoreFailure::from)?;
        }
        if !locks.is_empty() {
            queries::lock_tasks(&mut *tx, &locks, worker.name())
                .await
                .map_err(StoreFailure::from)?;
        }
        tx.commit().await.map_err(StoreFailure::from)
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Job>>,
        worker: &WorkerContext,
    ) -> Result<u64, StoreFailure> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|task| task.task_id().map(ToString::to_string))
            .collect();
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        let count =
            queries::reenqueue_abandoned(&mut *tx, self.config.queue.as_ref(), worker.name(), &ids)
                .await
                .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)?;
        Ok(count)
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Job>>) -> Result<(), StoreFailure> {
        let encoded = tasks
            .into_iter()
            .map(|task| task.try_map_args(|job| serde_json::to_vec(&job)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreFailure::from)?;
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        queries::push_tasks(&mut *tx, self.config.queue.as_ref(), encoded)
            .await
            .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }
}

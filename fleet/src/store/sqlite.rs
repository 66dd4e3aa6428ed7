//! SQLite: the engine's queries for workers, heartbeats and acknowledgements, and the fleet's
//! own fetch that quarantines the rows it cannot step (see src/backend.rs for why).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::backend::persistence::{Persistence, TaskEvent};
use apalis_core::backend::WorkerFilter;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use apalis_sqlite::queries;
use serde_json::Value;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::Row as _;

use crate::backend::{Row, StoreFailure, Table};
use crate::error::FleetError;
use crate::job::Job;
use crate::quarantine::{Quarantine, Quarantined};
use crate::settings::Settings;

const SETUP: &str = "CREATE TABLE IF NOT EXISTS tower_lro_fleet_quarantine (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload BLOB,
    row TEXT NOT NULL,
    reason TEXT NOT NULL,
    worker TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
)";

/// apalis-sqlite 1.0's `queries/backend/fetch_next.sql` (the engine's claim), returning the
/// row id and every column in a form that always reads: text columns as text, the payload as
/// bytes. Integers are read one by one, so a row holding text there is quarantined.
const FETCH: &str = "UPDATE Jobs
SET status = 'Queued', lock_by = ?1, lock_at = strftime('%s', 'now')
WHERE ROWID IN (
    WITH candidates AS (
        SELECT * FROM (
            SELECT ROWID, priority, run_at, id FROM Jobs
            WHERE job_type = ?2 AND status = 'Pending' AND lock_by IS NULL
                AND (run_at IS NULL OR run_at <= ?4)
            ORDER BY priority DESC, run_at ASC, id ASC LIMIT ?3
        )
        UNION ALL
        SELECT * FROM (
            SELECT ROWID, priority, run_at, id FROM Jobs
            WHERE job_type = ?2 AND status = 'Failed' AND attempts < max_attempts
                AND (run_at IS NULL OR run_at <= ?4)
            ORDER BY priority DESC, run_at ASC, id ASC LIMIT ?3
        )
    )
    SELECT ROWID FROM candidates ORDER BY priority DESC, run_at ASC, id ASC LIMIT ?3
)
RETURNING ROWID AS fleet_rowid, CAST(id AS TEXT) AS id, CAST(job AS BLOB) AS job,
    CAST(job_type AS TEXT) AS job_type, CAST(status AS TEXT) AS status, attempts, max_attempts,
    run_at, lock_at, CAST(lock_by AS TEXT) AS lock_by, priority,
    CAST(idempotency_key AS TEXT) AS idempotency_key, CAST(metadata AS TEXT) AS metadata";

/// Copies a claimed row into the quarantine (its columns as JSON; a BLOB where a value was
/// expected as its hex, since JSON cannot hold one) and removes it from the jobs table.
const QUARANTINE: &str = "INSERT INTO tower_lro_fleet_quarantine (id, queue, payload, row, reason, worker)
SELECT CAST(id AS TEXT), CAST(job_type AS TEXT), CAST(job AS BLOB), json_object(
    'id', CASE typeof(id) WHEN 'blob' THEN hex(id) ELSE id END,
    'job_type', CASE typeof(job_type) WHEN 'blob' THEN hex(job_type) ELSE job_type END,
    'status', CASE typeof(status) WHEN 'blob' THEN hex(status) ELSE status END,
    'attempts', CASE typeof(attempts) WHEN 'blob' THEN hex(attempts) ELSE attempts END,
    'max_attempts', CASE typeof(max_attempts) WHEN 'blob' THEN hex(max_attempts) ELSE max_attempts END,
    'run_at', CASE typeof(run_at) WHEN 'blob' THEN hex(run_at) ELSE run_at END,
    'last_result', CASE typeof(last_result) WHEN 'blob' THEN hex(last_result) ELSE last_result END,
    'lock_at', CASE typeof(lock_at) WHEN 'blob' THEN hex(lock_at) ELSE lock_at END,
    'lock_by', CASE typeof(lock_by) WHEN 'blob' THEN hex(lock_by) ELSE lock_by END,
    'done_at', CASE typeof(done_at) WHEN 'blob' THEN hex(done_at) ELSE done_at END,
    'priority', CASE typeof(priority) WHEN 'blob' THEN hex(priority) ELSE priority END,
    'metadata', CASE typeof(metadata) WHEN 'blob' THEN hex(metadata) ELSE metadata END,
    'idempotency_key', CASE typeof(idempotency_key) WHEN 'blob' THEN hex(idempotency_key) ELSE idempotency_key END
), ?2, ?3
FROM Jobs WHERE ROWID = ?1";

pub(crate) async fn setup(pool: &SqlitePool) -> Result<(), FleetError> {
    sqlx::query(SETUP)
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| FleetError::store("cannot set up the SQLite quarantine table", e))
}

pub(crate) async fn quarantined(
    pool: &SqlitePool,
    queue: &str,
    limit: i64,
) -> Result<Vec<Quarantined>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, queue, payload, row, reason, worker, quarantined_at
         FROM tower_lro_fleet_quarantine WHERE queue = ?1 ORDER BY seq LIMIT ?2",
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

/// The fleet's queue in one SQLite database.
#[derive(Debug, Clone)]
pub(crate) struct SqliteTable {
    pool: SqlitePool,
    config: apalis_sqlite::Config,
    quarantine: Arc<Quarantine>,
}

impl SqliteTable {
    pub(crate) fn new(
        pool: SqlitePool,
        settings: &Settings,
        quarantine: Arc<Quarantine>,
    ) -> SqliteTable {
        let config = apalis_sqlite::Config::default()
            .queue(&settings.queue)
            .batch_size(settings.batch_size)
            .heartbeat_interval(settings.heartbeat)
            .missed_heartbeats(settings.missed_heartbeats);
        SqliteTable {
            pool,
            config,
            quarantine,
        }
    }
}

impl Table for SqliteTable {
    fn heartbeat_interval(&self) -> Duration {
        self.config.heartbeat_interval
    }

    fn batch_size(&self) -> usize {
        self.config.batch_size
    }
}

fn read(row: &SqliteRow) -> Row {
    fn column<T>(row: &SqliteRow, name: &str) -> Result<T, String>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        row.try_get(name).map_err(|e| format!("column {name}: {e}"))
    }
    let required = |name: &str| -> Result<i64, String> {
        column::<Option<i64>>(row, name)?.ok_or_else(|| format!("column {name} is NULL"))
    };
    Row {
        id: column::<Option<String>>(row, "id")
            .ok()
            .flatten()
            .unwrap_or_default(),
        payload: column::<Option<Vec<u8>>>(row, "job")
            .and_then(|job| job.ok_or_else(|| "the payload is NULL".to_owned())),
        queue: column::<Option<String>>(row, "job_type")
            .and_then(|queue| queue.ok_or_else(|| "column job_type is NULL".to_owned())),
        status: column::<Option<String>>(row, "status")
            .and_then(|status| status.ok_or_else(|| "column status is NULL".to_owned())),
        attempts: required("attempts"),
        max_attempts: required("max_attempts"),
        run_at: required("run_at"),
        lock_at: column(row, "lock_at"),
        lock_by: column(row, "lock_by"),
        priority: required("priority"),
        idempotency_key: column(row, "idempotency_key"),
        metadata: column::<Option<String>>(row, "metadata").and_then(|metadata| {
            metadata
                .map(|text| {
                    serde_json::from_str::<HashMap<String, String>>(&text)
                        .map_err(|e| format!("the metadata is not a map of strings ({e})"))
                })
                .transpose()
                .map(Option::unwrap_or_default)
        }),
    }
}

/// The engine's tasks, decoded; an error is the store's.
type Fetched = Result<Vec<Task<Job>>, StoreFailure>;

impl Persistence for SqliteTable {
    type Compact = Job;
    type Response = Value;
    type Error = StoreFailure;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), StoreFailure> {
        // As apalis-sqlite's own `SqlxPersistence::register`.
        let dead_for = i64::try_from(self.config.heartbeat_interval.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        queries::reenqueue_orphaned(
            &mut *tx,
            dead_for,
            self.config.queue.as_ref(),
            &WorkerFilter::Only(worker.name().to_owned()),
        )
        .await
        .map_err(StoreFailure::from)?;
        queries::register_worker(&mut *tx, &self.config, worker, "SqliteStorage")
            .await
            .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), StoreFailure> {
        // As apalis-sqlite's own `SqlxPersistence::heartbeat`.
        let dead_for = i64::try_from(self.config.orphaned_duration().as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        queries::keep_alive(&mut *tx, &self.config, worker)
            .await
            .map_err(StoreFailure::from)?;
        queries::reenqueue_orphaned(
            &mut *tx,
            dead_for,
            self.config.queue.as_ref(),
            &WorkerFilter::AllExcept(worker.name().to_owned()),
        )
        .await
        .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Fetched {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let queue = self.config.queue.to_string();
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        let rows = sqlx::query(FETCH)
            .bind(worker.name())
            .bind(&queue)
            .bind(i64::try_from(self.config.batch_size).unwrap_or(i64::MAX))
            .bind(i64::try_from(now).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreFailure::from)?;
        let mut tasks = Vec::with_capacity(rows.len());
        let mut quarantined = Vec::new();
        for row in rows {
            let rowid: i64 = row.try_get("fleet_rowid").map_err(StoreFailure::from)?;
            let read = read(&row);
            let id = read.id.clone();
            match read.task() {
                Ok(task) => tasks.push(task),
                Err(reason) => {
                    sqlx::query(QUARANTINE)
                        .bind(rowid)
                        .bind(&reason)
                        .bind(worker.name())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreFailure::from)?;
                    let moved = sqlx::query("DELETE FROM Jobs WHERE ROWID = ?1")
                        .bind(rowid)
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
        // As apalis-sqlite's own `SqlxPersistence::handle_events`.
        let locks: Vec<String> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Lock { task_id } => Some(task_id.to_string()),
                _ => None,
            })
            .collect();
        let acks: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Complete(result) => Some(result),
                _ => None,
            })
            .collect();
        if locks.is_empty() && acks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(StoreFailure::from)?;
        if !locks.is_empty() {
            queries::lock_tasks(&mut *tx, &locks, worker.name())
                .await
                .map_err(StoreFailure::from)?;
        }
        if !acks.is_empty() {
            queries::ack_tasks(&mut *tx, &acks, worker.name())
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
        queries::push_tasks(&mut *tx, self.config.queue.as_ref(), &encoded)
            .await
            .map_err(StoreFailure::from)?;
        tx.commit().await.map_err(StoreFailure::from)
    }
}

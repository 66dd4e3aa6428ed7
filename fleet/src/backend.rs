//! The apalis backend the fleet's workers fetch through: the engine's own `Persisted` state
//! machine (worker registration, heartbeats, lease recovery, acknowledgements, all with the
//! engine's own queries) around a fetch of the fleet's own.
//!
//! Why a fetch of our own: apalis's stores decode a claimed batch all or nothing, so one row
//! they cannot decode fails the whole fetch of every worker, forever. A job id that is not a
//! ULID makes `fetch_next` fail (the worker dies, restarts, claims the same row again), and a
//! PostgreSQL `metadata` hstore holding a NULL value makes apalis-postgres 1.0 panic
//! (`from_row.rs:82`, an `unwrap`). A sweep that moved such rows away before apalis fetched
//! would race the fetch (a row written between the two still kills the batch), and a patched
//! apalis cannot be published. So the fleet claims rows with the engine's claim (PostgreSQL's
//! `apalis.get_jobs`, SQLite's `fetch_next.sql` copied as is), decodes each row by itself,
//! column by column, and moves any row it cannot step to the quarantine table in the same
//! transaction (src/store/*.rs); the good rows of the batch go on as the engine's tasks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_codec::json::JsonCodec;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskPersistLayer};
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::metadata::MetadataStore;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use serde_json::Value;

use crate::job::{Job, PAYLOAD_VERSION};

/// A store's side of the backend: the engine's queries for everything but the fetch, which
/// claims a batch and quarantines the rows in it that cannot be stepped.
pub(crate) trait Table:
    Persistence<Compact = Job, Response = Value, Error = StoreFailure> + Send + Sync + Unpin
{
    fn heartbeat_interval(&self) -> Duration;
    fn batch_size(&self) -> usize;
}

/// A store query that failed: the worker generation ends and the supervisor starts another.
#[derive(Debug)]
pub(crate) struct StoreFailure(pub(crate) tower_lro::BoxError);

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StoreFailure {
    pub(crate) fn from(error: impl Into<tower_lro::BoxError>) -> StoreFailure {
        StoreFailure(error.into())
    }
}

/// One claimed row, its columns read one by one (a column that failed to read is its error).
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) payload: Result<Vec<u8>, String>,
    pub(crate) queue: Result<String, String>,
    pub(crate) status: Result<String, String>,
    pub(crate) attempts: Result<i64, String>,
    pub(crate) max_attempts: Result<i64, String>,
    pub(crate) run_at: Result<i64, String>,
    pub(crate) lock_at: Result<Option<i64>, String>,
    pub(crate) lock_by: Result<Option<String>, String>,
    pub(crate) priority: Result<i64, String>,
    pub(crate) idempotency_key: Result<Option<String>, String>,
    /// Absent metadata is an empty map; present metadata must decode whole.
    pub(crate) metadata: Result<std::collections::HashMap<String, String>, String>,
}

impl Row {
    /// The engine's task for this row, or why the fleet cannot step it. The rule is the
    /// engine's own decoding made total: every column as apalis reads it, and a payload that is
    /// a fleet job of this version. Nothing is guessed (a NULL metadata value is not dropped,
    /// an unknown payload version is not read as this one): such a row was not written by this
    /// fleet, and stepping it would be a silently wrong answer.
    pub(crate) fn task(self) -> Result<Task<Job>, String> {
        let ulid = ulid::Ulid::from_string(&self.id)
            .map_err(|e| format!("the job id is not a ULID ({e})"))?;
        let payload = self.payload?;
        let job: Job = serde_json::from_slice(&payload)
            .map_err(|e| format!("the payload is not a fleet job ({e})"))?;
        if job.version != PAYLOAD_VERSION {
            return Err(format!(
                "the payload is of version {} (this fleet reads {PAYLOAD_VERSION})",
                job.version
            ));
        }
        let status: Status = self
            .status?
            .parse()
            .map_err(|e| format!("the status is not the engine's ({e})"))?;
        let count =
            |what: &str, n: i64| u64::try_from(n).map_err(|_| format!("{what} is negative ({n})"));
        let attempts = count("attempts", self.attempts?)?;
        let max_attempts = count("max_attempts", self.max_attempts?)?;
        let run_at = count("run_at", self.run_at?)?;
        let lock_at = self.lock_at?.map(|at| count("lock_at", at)).transpose()?;
        let priority = count("priority", self.priority?)?;
        let mut task = TaskBuilder::new(job)
            .task_id(TaskId::from_ulid(ulid))
            .queue(self.queue?.into())
            .status(status)
            .attempt(usize::try_from(attempts).unwrap_or(usize::MAX))
            .max_attempts(usize::try_from(max_attempts).unwrap_or(usize::MAX))
            .run_at_timestamp(run_at)
            .lock_at(lock_at)
            .lock_by(self.lock_by?)
            .priority(usize::try_from(priority).unwrap_or(usize::MAX))
            .with_metadata(MetadataStore::from_map(self.metadata?));
        if let Some(key) = self.idempotency_key? {
            task = task.idempotency_key(key);
        }
        Ok(task.build())
    }
}

/// The engine's `Persisted` backend over a [`Table`], after an optional pause: a generation
/// that replaces one the store failed waits `restart_delay` before it registers.
pub(crate) struct FleetBackend<T: Table> {
    persisted: Persisted<T>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T: Table> FleetBackend<T> {
    pub(crate) fn new(table: T, pause: Option<Duration>) -> FleetBackend<T> {
        FleetBackend {
            persisted: Persisted::new(table),
            pause: pause.map(|pause| Box::pin(tokio::time::sleep(pause))),
        }
    }
}

impl<T: Table> Backend for FleetBackend<T> {
    type Task = Task<Job>;
    type Error = StoreFailure;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), StoreFailure>> {
        if let Some(pause) = &mut self.pause {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        let heartbeat = self.persisted.heartbeat_interval();
        self.persisted.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Job>, StoreFailure>>> {
        self.persisted.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), StoreFailure>> {
        self.persisted.poll_close(cx, worker)
    }
}

impl<T: Table> BackendConfig for FleetBackend<T> {
    type Args = Job;
    type Id = ulid::Ulid;
    // The fetch hands out decoded jobs: there is no codec step left to fail.
    type Kind = Ephemeral;
    type Config = T;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &T {
        &self.persisted
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let batch = self.persisted.batch_size();
        // As the engine's stores do: a started step is locked, a finished one acknowledged.
        self.persisted
            .layer(JsonCodec::<Value>::default(), batch)
            .persist_results(true)
            .lock_tasks(true)
    }
}

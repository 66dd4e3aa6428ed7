//! Workers: apalis workers stepping the fleet's jobs, restarted whenever the store fails them.

use std::future::Future;
use std::sync::Arc;

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::RetryPolicy;
use apalis_core::backend::ext::BackendExt;
use apalis_core::backend::finalize::DurableError;
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::event::Event;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures_util::StreamExt;
use tokio::sync::watch;
use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use crate::job::Job;
use crate::settings::Settings;
use crate::store::Inner;

/// Runs one job; implemented by the fleet for its services.
pub(crate) trait RunJob: Send + Sync + 'static {
    fn run_job(self: Arc<Self>, job: Job) -> impl Future<Output = Result<(), BoxDynError>> + Send;
}

/// Runs generations of apalis workers named `name-<ulid>` until `stop` says so. A generation
/// ends when its store fails it (the database went away) or a poll of it panicked; the next
/// starts after `restart_delay` with a fresh name, and the jobs the old one held come back to
/// the queue once its lease (heartbeat × missed heartbeats) runs out.
pub(crate) async fn supervise<J: RunJob>(
    jobs: Arc<J>,
    store: Inner,
    settings: Settings,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let generation = format!("{name}-{}", ulid::Ulid::generate());
        let task = tokio::spawn(generation_run(
            jobs.clone(),
            store.clone(),
            settings.clone(),
            generation.clone(),
            stop.clone(),
        ));
        let mut guard = AbortOnDrop(task);
        match (&mut guard.0).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::StoreFailed) => {
                tracing::warn!(worker = %generation, "the store failed the worker; starting another")
            }
            Err(panic) => {
                tracing::warn!(worker = %generation, %panic, "the worker panicked; starting another")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.restart_delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Aborts a generation whose supervisor was dropped, so no worker outlives its `run` future.
struct AbortOnDrop(tokio::task::JoinHandle<Ended>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Ended {
    Stopped,
    StoreFailed,
}

macro_rules! worker_stream {
    ($storage:expr, $config:expr, $jobs:expr, $settings:expr, $ctx:expr) => {{
        let jobs = $jobs;
        let service = tower::service_fn(move |task: Task<Job>| jobs.clone().run_job(task.args));
        // Retries of a failed job (a handler error, a refused enqueue) back off exponentially;
        // the engine counts every run against the job's `max_attempts`.
        let backoff = ExponentialBackoffMaker::new(
            $settings.retry_backoff.0,
            $settings.retry_backoff.1,
            0.5,
            HasherRng::default(),
        );
        match backoff {
            Ok(mut maker) => {
                let policy = RetryPolicy::retries($settings.job_attempts.saturating_sub(1))
                    .with_backoff(maker.make_backoff());
                WorkerBuilder::new($ctx)
                    .backend(
                        $storage
                            .with_config($config)
                            .poll_with_interval($settings.fetch_interval),
                    )
                    .concurrency($settings.concurrency)
                    .retry(policy)
                    .build(service)
                    .stream()
                    .boxed()
            }
            // The settings were checked when the fleet was built.
            Err(invalid) => {
                tracing::error!(%invalid, "invalid retry backoff");
                return Ended::Stopped;
            }
        }
    }};
}

async fn generation_run<J: RunJob>(
    jobs: Arc<J>,
    store: Inner,
    settings: Settings,
    generation: String,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let ctx = WorkerContext::new(&generation);
    let mut stream = match &store {
        Inner::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(&settings.queue)
                .batch_size(settings.batch_size)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            worker_stream!(
                SqliteStorage::<Job>::new(pool),
                config,
                jobs,
                settings,
                &ctx
            )
        }
        Inner::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(&settings.queue)
                .batch_size(settings.batch_size)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            worker_stream!(
                PostgresStorage::<Job>::new(pool),
                config,
                jobs,
                settings,
                &ctx
            )
        }
    };
    let mut stopping = false;
    loop {
        tokio::select! {
            item = stream.next() => match item {
                None => return if stopping { Ended::Stopped } else { Ended::StoreFailed },
                Some(Ok(Event::Error(error))) => {
                    tracing::warn!(worker = %generation, %error, "a step failed; the engine retries it");
                }
                Some(Ok(_)) => {}
                Some(Err(error)) if is_undecodable_job(&error) => {
                    // A row that is not a fleet job at all: no operation to name, nothing to
                    // deliver. The engine leaves it claimed by this worker; the others go on.
                    tracing::warn!(worker = %generation, %error, "skipped a job that is not a fleet job");
                }
                Some(Err(error)) => {
                    tracing::warn!(worker = %generation, %error, "the store failed");
                    // The apalis stream is not polled again after its store failed: the
                    // generation ends and a new one starts, which is what recovers.
                    return if stopping { Ended::Stopped } else { Ended::StoreFailed };
                }
            },
            changed = stop.wait_for(|stopped| *stopped), if !stopping => {
                stopping = true;
                // Graceful: steps in flight finish and are acknowledged, then the stream ends.
                if changed.is_err() || ctx.stop().is_err() {
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// Whether a worker error is a row whose payload is not a fleet job (apalis could not decode it).
fn is_undecodable_job(error: &apalis_core::error::WorkerError) -> bool {
    let apalis_core::error::WorkerError::BackendError(source) = error else {
        return false;
    };
    matches!(
        source.downcast_ref::<DurableError<apalis_sqlite::Error, serde_json::Error>>(),
        Some(DurableError::CodecError(_))
    ) || matches!(
        source.downcast_ref::<DurableError<apalis_postgres::Error, serde_json::Error>>(),
        Some(DurableError::CodecError(_))
    )
}

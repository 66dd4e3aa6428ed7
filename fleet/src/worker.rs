//! Workers: apalis workers stepping the fleet's jobs, supervised by apalis's own `Monitor`.
//!
//! The engine's `Monitor` restarts a worker whose stream failed (its store went away, a poll
//! panicked: it catches panics) through `should_restart`, and stops it gracefully on
//! `run_with_signal`. What the fleet adds is only what the monitor leaves to its factory: each
//! generation gets a fresh name (apalis refuses to register a name whose last heartbeat is
//! recent, and the failed generation's is), and a generation that replaces a failed one waits
//! `restart_delay` before it touches the store (the monitor restarts at once; the pause lives
//! in the fleet's backend, src/backend.rs, so a database that is down is not hammered).

use std::future::Future;
use std::sync::Arc;

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::RetryPolicy;
use apalis_core::backend::ext::BackendExt;
use apalis_core::error::BoxDynError;
use apalis_core::monitor::Monitor;
use apalis_core::task::Task;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::event::Event;
use tokio::sync::watch;
use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use crate::backend::{FleetBackend, Table};
use crate::job::Job;
use crate::quarantine::Quarantine;
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
    quarantine: Arc<Quarantine>,
    name: String,
    stop: watch::Receiver<bool>,
) {
    match store {
        #[cfg(feature = "sqlite")]
        Inner::Sqlite(pool) => {
            let table = {
                let settings = settings.clone();
                move || {
                    crate::store::sqlite::SqliteTable::new(
                        pool.clone(),
                        &settings,
                        quarantine.clone(),
                    )
                }
            };
            monitor(jobs, table, settings, name, stop).await
        }
        #[cfg(feature = "postgres")]
        Inner::Postgres(pool) => {
            let table = {
                let settings = settings.clone();
                move || {
                    crate::store::postgres::PgTable::new(
                        pool.clone(),
                        &settings,
                        quarantine.clone(),
                    )
                }
            };
            monitor(jobs, table, settings, name, stop).await
        }
    }
}

async fn monitor<J, T, F>(
    jobs: Arc<J>,
    table: F,
    settings: Settings,
    name: String,
    mut stop: watch::Receiver<bool>,
) where
    J: RunJob,
    T: Table,
    F: Fn() -> T + Send + Sync + 'static,
{
    // Retries of a failed job (a handler error, a refused enqueue) back off exponentially;
    // the engine counts every run against the job's `max_attempts`.
    let backoff = match ExponentialBackoffMaker::new(
        settings.retry_backoff.0,
        settings.retry_backoff.1,
        0.5,
        HasherRng::default(),
    ) {
        Ok(backoff) => backoff,
        // The settings were checked when the fleet was built.
        Err(invalid) => {
            tracing::error!(%invalid, "invalid retry backoff");
            return;
        }
    };
    let factory = move |restarts: usize| {
        let generation = format!("{name}-{}", ulid::Ulid::generate());
        let pause = (restarts > 0).then_some(settings.restart_delay);
        let jobs = jobs.clone();
        let service = tower::service_fn(move |task: Task<Job>| jobs.clone().run_job(task.args));
        let policy = RetryPolicy::retries(settings.job_attempts.saturating_sub(1))
            .with_backoff(backoff.clone().make_backoff());
        WorkerBuilder::new(generation.as_str())
            .backend(FleetBackend::new(table(), pause).poll_with_interval(settings.fetch_interval))
            .concurrency(settings.concurrency)
            .retry(policy)
            .build(service)
    };
    let monitor = Monitor::new()
        .register(factory)
        .should_restart(|worker, error| {
            if worker.is_shutting_down() {
                return false;
            }
            tracing::warn!(worker = %worker.name(), %error, "the worker failed; starting another");
            true
        })
        .on_event(|worker, event| {
            if let Event::Error(error) = event {
                tracing::warn!(worker = %worker.name(), %error, "a step failed; the engine retries it");
            }
        });
    // Graceful: on the signal, steps in flight finish and are acknowledged, then the worker ends.
    let signal = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        Ok(())
    };
    if let Err(error) = monitor.run_with_signal(signal).await {
        tracing::warn!(%error, "a worker ended with an error while stopping");
    }
}

//! Retention: the rows of finished steps, pruned in small batches beside the workers.
//!
//! Every step of an operation leaves a `Done` row behind (apalis keeps what it acknowledged).
//! One task per fleet per process deletes those of its own queue that finished longer ago than
//! the retention age, a batch at a time with a pause after each, so stepping never waits on it
//! for long: only `Done` rows are touched, which no worker reads or writes again. Every other
//! row (waiting, running, failed, or set aside by anyone) stays until removed on purpose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::settings::Settings;
use crate::store::Inner;

/// Rows deleted per statement: small enough that a batch holds SQLite's write lock (or
/// PostgreSQL's row locks) for milliseconds.
const BATCH: i64 = 1_000;
/// After a full batch the pruner rests as long as the batch took (within these bounds), so it
/// takes at most about half of the store's time even when far behind.
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Rows are kept at least this many leases, whatever the retention: a step whose worker died
/// before acknowledging it runs again about a lease later, and must then still find its
/// successor's idempotency key, or it would enqueue that step a second time (a fork).
const LEASES_KEPT: u32 = 3;

/// The age past which a finished row goes: the retention, but never less than three leases.
pub(crate) fn age(settings: &Settings) -> Duration {
    settings
        .retention
        .max(settings.lease().saturating_mul(LEASES_KEPT))
}

/// Claims the one pruner of a fleet in this process: `None` if another worker of it runs one.
/// Dropping the claim lets the next worker take over.
pub(crate) fn claim(running: &Arc<AtomicBool>) -> Option<Claim> {
    running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .ok()
        .map(|_| Claim(running.clone()))
}

pub(crate) struct Claim(Arc<AtomicBool>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The pruner's task: aborted when dropped, so it never outlives the worker that started it.
pub(crate) struct Pruner(tokio::task::JoinHandle<()>);

impl Drop for Pruner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the pruner: see [`run`].
pub(crate) fn spawn(
    claim: Claim,
    store: Inner,
    settings: Settings,
    stop: watch::Receiver<bool>,
) -> Pruner {
    Pruner(tokio::spawn(run(claim, store, settings, stop)))
}

/// Prunes every `prune_interval` until `stop` says so. A store that fails a batch is tried again
/// at the next pass: pruning is never urgent.
async fn run(_claim: Claim, store: Inner, settings: Settings, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        'pass: loop {
            let began = Instant::now();
            match prune_batch(&store, &settings.queue, age(&settings)).await {
                Ok(deleted) if deleted >= BATCH => {
                    let pause = began.elapsed().clamp(MIN_PAUSE, MAX_PAUSE);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = stop.wait_for(|stopped| *stopped) => return,
                    }
                }
                Ok(_) => break 'pass,
                Err(error) => {
                    tracing::warn!(%error, queue = %settings.queue, "pruning finished steps failed; trying again later");
                    break 'pass;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(settings.prune_interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Deletes up to [`BATCH`] rows of `queue` that finished (`Done`) more than `age` ago; returns
/// how many.
async fn prune_batch(store: &Inner, queue: &str, age: Duration) -> Result<i64, sqlx::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Nothing can have finished before the epoch.
    let Some(cutoff) = now.checked_sub(age) else {
        return Ok(0);
    };
    let deleted = match store {
        #[cfg(feature = "sqlite")]
        Inner::Sqlite(pool) => {
            // `done_at` is whole seconds (the second it finished began then): strictly before
            // the cutoff's second, so no row goes before its age.
            let cutoff = i64::try_from(cutoff.as_secs()).unwrap_or(i64::MAX);
            sqlx::query(
                "DELETE FROM Jobs WHERE rowid IN (\
                   SELECT rowid FROM Jobs \
                   WHERE status = 'Done' AND done_at IS NOT NULL AND done_at < ?1 \
                     AND job_type = ?2 \
                   LIMIT ?3)",
            )
            .bind(cutoff)
            .bind(queue)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected()
        }
        #[cfg(feature = "postgres")]
        Inner::Postgres(pool) => {
            // `SKIP LOCKED`: the pruners of several processes take different rows, never
            // waiting for each other.
            sqlx::query(
                "DELETE FROM apalis.jobs WHERE id = ANY(ARRAY(\
                   SELECT id FROM apalis.jobs \
                   WHERE status = 'Done' AND job_type = $2 AND done_at < to_timestamp($1) \
                   LIMIT $3 FOR UPDATE SKIP LOCKED))",
            )
            .bind(cutoff.as_secs_f64())
            .bind(queue)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected()
        }
    };
    Ok(i64::try_from(deleted).unwrap_or(i64::MAX))
}

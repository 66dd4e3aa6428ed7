//! What an operator sees of an operation: [`Fleet::status`](crate::Fleet::status) and
//! [`Fleet::in_flight`](crate::Fleet::in_flight).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::job::{Job, OperationId};
use crate::store::Row;

/// Where a tracked operation stands, read from its latest step in the store.
///
/// ```no_run
/// # async fn run<S, H, B, D>(fleet: tower_lro_fleet::Fleet<S, H, B, D>, id: tower_lro_fleet::OperationId) -> Result<(), tower_lro_fleet::FleetError> {
/// let status = fleet.status(&id).await?;
/// println!(
///     "{} {:?}: {:?} {:?}% after {} polls, next at {:?}, last error {:?}",
///     status.key, status.phase, status.state, status.percent_complete, status.polls,
///     status.next_poll_at, status.last_error,
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OperationStatus {
    /// The operation's id.
    pub id: OperationId,
    /// The key it was tracked under.
    pub key: String,
    /// Where its chain of steps is.
    pub phase: Phase,
    /// The operation's state as the server last reported it (`InProgress`, `RUNNING`, …).
    pub state: Option<String>,
    /// The last `percentComplete` (or the dialect's equivalent) the server reported.
    pub percent_complete: Option<f64>,
    /// Polls sent so far.
    pub polls: u32,
    /// The number of the latest step (0 for the first).
    pub step: u32,
    /// When the next step is due ([`Phase::Waiting`]): the store's whole second (`None` when
    /// the store holds a time that is not one, as PostgreSQL's `'infinity'`).
    pub next_poll_at: Option<SystemTime>,
    /// Runs of the latest step's job so far: more than one means the handler or the store
    /// failed it and the engine ran it again.
    pub attempts: u32,
    /// Steps in a row that failed with an error the fleet retries (the server unreachable).
    pub failures: u32,
    /// Why the last failed step or run failed, or why a cancel was refused.
    pub last_error: Option<String>,
    /// Where a cancel asked for with [`Fleet::cancel`](crate::Fleet::cancel) stands.
    pub cancel: Option<CancelState>,
}

/// Where an operation's chain of steps is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Its next step is due at `next_poll_at`.
    Waiting,
    /// A worker holds its step now.
    Stepping,
    /// Its outcome was delivered: nothing more will happen.
    Ended,
    /// Its job failed every run it was allowed (`job_attempts`) and is kept in the store, token
    /// included; `last_error` says why.
    Failed,
}

/// Where a cancel stands. Kept in the operation's job, so that the cancel is sent once whichever
/// worker takes the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CancelState {
    /// Asked for: the worker that takes the next step sends it (after marking it `Sent`).
    Requested,
    /// Sent, or about to be by a worker that may have died since: never sent again. The
    /// operation's outcome follows as usual.
    Sent,
    /// The server has no cancel for it (or the token none): the operation goes on.
    Refused,
}

/// One page of [`Fleet::in_flight`](crate::Fleet::in_flight).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OperationPage {
    /// Operations in flight, by id (so by creation time).
    pub operations: Vec<OperationStatus>,
    /// Where the next page starts (pass it as `after`); `None` on the last page.
    pub next: Option<OperationId>,
}

impl OperationStatus {
    /// The status a stored step shows, when its payload is a fleet job.
    pub(crate) fn of(row: &Row) -> Option<OperationStatus> {
        let job: Job = serde_json::from_slice(&row.job).ok()?;
        let token = job.token().ok();
        let phase = match row.status.as_str() {
            "Pending" => Phase::Waiting,
            "Done" => Phase::Ended,
            "Killed" => Phase::Failed,
            "Failed" if row.attempts >= row.max_attempts => Phase::Failed,
            "Failed" => Phase::Waiting,
            _ => Phase::Stepping,
        };
        let engine_error = matches!(row.status.as_str(), "Failed" | "Killed")
            .then(|| row.last_result.clone())
            .flatten();
        Some(OperationStatus {
            state: token.as_ref().and_then(|t| t.state().map(str::to_owned)),
            polls: token.as_ref().map_or(0, |t| t.polls()),
            id: job.id,
            key: job.key,
            phase,
            percent_complete: job.percent_complete,
            step: job.step,
            next_poll_at: row
                .run_at
                .filter(|_| phase == Phase::Waiting)
                .map(|at| UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or_default())),
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            failures: job.failures,
            last_error: engine_error.or(job.last_error),
            cancel: job.cancel,
        })
    }
}

//! Rows the fleet cannot step, moved out of the queue and kept for an operator.

use std::sync::atomic::{AtomicU64, Ordering};

/// A row the fleet's workers found in the queue's table and could not step, as kept in the
/// quarantine table (`tower_lro_fleet.quarantine` on PostgreSQL, `tower_lro_fleet_quarantine`
/// on SQLite): a job id that is not a ULID, metadata the engine cannot decode (a PostgreSQL
/// hstore holding a NULL value), a payload that is not a fleet job (foreign, truncated, not
/// JSON) or is a fleet job of another payload version.
///
/// The row left the jobs table in the same transaction that claimed it, so it is reported once
/// (a warning, and [`Fleet::quarantined`](crate::Fleet::quarantined)) and never claimed again;
/// it stays in the quarantine table until someone deletes it there.
///
/// ```no_run
/// # async fn run<S, H, B>(fleet: tower_lro_fleet::Fleet<S, H, B>) -> Result<(), tower_lro_fleet::FleetError> {
/// for row in fleet.quarantined_rows(100).await? {
///     eprintln!("{} in {}: {} ({} payload bytes)", row.id, row.queue, row.reason,
///         row.payload.as_ref().map_or(0, Vec::len));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quarantined {
    /// The row's job id, as stored.
    pub id: String,
    /// The queue (apalis job type) it was in.
    pub queue: String,
    /// Why the fleet could not step it.
    pub reason: String,
    /// The payload, byte for byte.
    pub payload: Option<Vec<u8>>,
    /// The row's other columns, as a JSON object.
    pub row: String,
    /// The worker that claimed and quarantined it.
    pub worker: String,
    /// When, in seconds since the Unix epoch.
    pub quarantined_at: u64,
}

/// How many rows the workers of one fleet moved to the quarantine: a metric that only grows.
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    count: AtomicU64,
}

impl Quarantine {
    /// Reports one row, once: it has left the jobs table, so no worker meets it again.
    pub(crate) fn report(&self, worker: &str, queue: &str, id: &str, reason: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            %worker, %queue, %id, %reason,
            "quarantined a row the fleet cannot step; the other jobs go on"
        );
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

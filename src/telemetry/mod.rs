//! What operations tell their observers: metrics (feature `metrics`).

#[cfg(feature = "metrics")]
mod metrics;

#[cfg(feature = "metrics")]
pub use self::metrics::{
    describe_metrics, DURATION_BUCKETS, OPERATIONS, OPERATIONS_ACTIVE, OPERATION_DURATION, POLLS,
    WAIT, WAIT_BUCKETS,
};

/// How a poll was answered.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PollResult {
    Running,
    Done,
    Transient,
    Unexpected,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    Error,
}

//! The fleet's settings, their defaults, and why.

use std::time::Duration;

use crate::error::{FleetError, FleetErrorKind};

/// The settings of [`FleetBuilder`](crate::FleetBuilder); see it for each one.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) queue: String,
    pub(crate) heartbeat: Duration,
    pub(crate) missed_heartbeats: usize,
    pub(crate) fetch_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) concurrency: usize,
    pub(crate) step_retries: u32,
    pub(crate) step_retry_delay: Duration,
    pub(crate) job_attempts: usize,
    pub(crate) retry_backoff: (Duration, Duration),
    pub(crate) restart_delay: Duration,
    pub(crate) retention: Duration,
    pub(crate) prune_interval: Duration,
    pub(crate) jitter: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue: "tower-lro-fleet".into(),
            heartbeat: Duration::from_secs(30),
            missed_heartbeats: 2,
            fetch_interval: Duration::from_millis(250),
            batch_size: 32,
            concurrency: 256,
            step_retries: 5,
            step_retry_delay: Duration::from_secs(30),
            job_attempts: 10,
            retry_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            restart_delay: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

/// The longest wait between retried steps, however many failed before.
pub(crate) const MAX_STEP_RETRY_DELAY: Duration = Duration::from_secs(3600);

impl Settings {
    pub(crate) fn check(&self) -> Result<(), FleetError> {
        let bad = |why: &str| Err(FleetError::new(FleetErrorKind::Config, why));
        // apalis's stores keep heartbeats in whole seconds: less than one would count every
        // worker as dead at once.
        if self.heartbeat < Duration::from_secs(1) {
            return bad("heartbeat must be at least 1 s (the stores count whole seconds)");
        }
        if self.missed_heartbeats == 0 {
            return bad("missed_heartbeats must be at least 1");
        }
        if self.batch_size == 0 || self.concurrency == 0 || self.job_attempts == 0 {
            return bad("batch_size, concurrency and job_attempts must be at least 1");
        }
        if self.fetch_interval.is_zero() {
            return bad("fetch_interval must be more than zero");
        }
        if self.prune_interval.is_zero() {
            return bad("prune_interval must be more than zero");
        }
        let (min, max) = self.retry_backoff;
        if min.is_zero() || min > max {
            return bad("retry_backoff needs 0 < min <= max");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return bad("jitter must be a fraction in [0, 1)");
        }
        if self.queue.is_empty() {
            return bad("the queue name must not be empty");
        }
        Ok(())
    }

    /// The lease: how long a worker that stopped heartbeating keeps its jobs before the others
    /// take them back.
    pub(crate) fn lease(&self) -> Duration {
        self.heartbeat
            .saturating_mul(u32::try_from(self.missed_heartbeats).unwrap_or(u32::MAX))
    }

    /// The wait before retrying a step that failed `failures` times in a row before.
    pub(crate) fn step_retry_wait(&self, failures: u32) -> Duration {
        self.step_retry_delay
            .saturating_mul(1u32 << failures.min(16))
            .min(MAX_STEP_RETRY_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused() {
        type Spoil = fn(&mut Settings);
        let zero = Duration::ZERO;
        let cases: [(&str, Spoil); 4] = [
            ("heartbeat", |s| s.heartbeat = Duration::from_millis(999)),
            ("fetch_interval", |s| s.fetch_interval = Duration::ZERO),
            ("prune_interval", |s| s.prune_interval = Duration::ZERO),
            ("queue", |s| s.queue.clear()),
        ];
        for (name, spoil) in cases {
            let mut settings = Settings::default();
            spoil(&mut settings);
            let error = settings.check().unwrap_err();
            assert_eq!(error.kind(), FleetErrorKind::Config, "{name}");
        }
        // A retention of zero prunes as soon as it may, and `Duration::MAX` keeps everything.
        for retention in [zero, Duration::MAX] {
            let settings = Settings {
                retention,
                ..Settings::default()
            };
            assert!(settings.check().is_ok());
            // Never before three leases: a re-run step must find its successor's key.
            assert_eq!(
                crate::retention::age(&settings),
                retention.max(3 * settings.lease())
            );
        }
    }
}

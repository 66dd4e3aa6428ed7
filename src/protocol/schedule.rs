//! How long to wait before the next request (PROTOCOL §2 and the transient rules of §3).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delay settings of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delays {
    pub(crate) initial: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Delays {
    /// `[min, max]`, where a `min` above `max` yields `max`: the ceiling is the safety bound, so
    /// it wins a conflict (and the standard `clamp` would panic on it).
    pub(crate) fn clamp(&self, delay: Duration) -> Duration {
        delay.max(self.min).min(self.max)
    }

    /// `initial · 2^n`, saturating at `max`.
    fn grown(&self, n: u32) -> Duration {
        let factor = 1u32 << n.min(31);
        self.initial
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max)
    }

    /// The wait before the next poll: the latest response's hint if it had one, else the
    /// configured delay grown by the number of earlier waits that had no hint.
    pub(crate) fn next_poll(&self, hint: Option<Duration>, unhinted_waits: u32) -> Duration {
        self.clamp(hint.unwrap_or_else(|| self.grown(unhinted_waits)))
    }

    /// The wait before retrying a failed request: the server's hint if the failure carried one,
    /// else an exponential backoff with "equal jitter" (half fixed, half random) so that many
    /// clients failing together do not retry together. `attempt` counts from 1; `unit` is a
    /// uniform random number in `[0, 1)`.
    pub(crate) fn retry(&self, hint: Option<Duration>, attempt: u32, unit: f64) -> Duration {
        if let Some(hint) = hint {
            return self.clamp(hint);
        }
        let full = self.grown(attempt.saturating_sub(1));
        let half = full / 2;
        self.clamp(half + half.mul_f64(unit.clamp(0.0, 1.0)))
    }
}

/// A uniform random number in `[0, 1)` for jitter; std's per-instance random hasher keys are
/// random enough for spreading retries, and save a dependency.
pub(crate) fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
    let unit = bits as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn delays() -> Delays {
        Delays {
            initial: S(1),
            min: Duration::ZERO,
            max: S(60),
        }
    }

    #[test]
    fn hints_win_and_are_clamped() {
        let d = Delays {
            min: S(2),
            ..delays()
        };
        assert_eq!(d.next_poll(Some(S(17)), 0), S(17));
        assert_eq!(d.next_poll(Some(S(17)), 9), S(17));
        assert_eq!(d.next_poll(Some(Duration::ZERO), 0), S(2));
        assert_eq!(d.next_poll(Some(S(365 * 24 * 3600)), 0), S(60));
        assert_eq!(d.next_poll(Some(Duration::MAX), 0), S(60));
        assert_eq!(delays().next_poll(Some(Duration::ZERO), 0), Duration::ZERO);
    }

    #[test]
    fn the_default_delay_grows_to_the_ceiling() {
        let d = delays();
        let seen: Vec<_> = (0..9).map(|n| d.next_poll(None, n).as_secs()).collect();
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(d.next_poll(None, u32::MAX), S(60));
    }

    #[test]
    fn a_floor_above_the_ceiling_yields_the_ceiling() {
        let d = Delays {
            initial: S(1),
            min: S(90),
            max: S(60),
        };
        assert_eq!(d.next_poll(Some(S(5)), 0), S(60));
        assert_eq!(d.next_poll(None, 0), S(60));
    }

    #[test]
    fn retries_back_off_with_jitter() {
        let d = delays();
        assert_eq!(d.retry(Some(S(3)), 1, 0.5), S(3));
        assert_eq!(d.retry(None, 1, 0.0), Duration::from_millis(500));
        assert_eq!(
            d.retry(None, 1, 0.999_999),
            Duration::from_millis(500) + Duration::from_millis(500).mul_f64(0.999_999)
        );
        assert_eq!(d.retry(None, 3, 0.0), S(2));
        assert_eq!(d.retry(None, 40, 1.0), S(60));
        for _ in 0..100 {
            let unit = jitter();
            assert!((0.0..1.0).contains(&unit));
            let delay = d.retry(None, 2, unit);
            assert!(delay >= S(1) && delay < S(2), "{delay:?}");
        }
    }
}

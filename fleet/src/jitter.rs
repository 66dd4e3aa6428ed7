//! Spreading the steps of operations that started together, so their polls do not stay in
//! lockstep (which is how a burst of `429`s begins).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The wait before a step, spread by `fraction` (`unit` uniform in `[0, 1)`).
///
/// A wait the server asked for (`hinted`) only grows, to at most `wait × (1 + fraction)`: the
/// hint is a floor. The layer's own schedule (no hint) and the fleet's retry delays move either
/// way, within `wait × (1 ± fraction)`, so the mean stays where the schedule put it.
pub(crate) fn spread(wait: Duration, hinted: bool, fraction: f64, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    let fraction = fraction.clamp(0.0, 1.0);
    let factor = if hinted {
        1.0 + fraction * unit
    } else {
        1.0 - fraction + 2.0 * fraction * unit
    };
    // `mul_f64` panics on an overflowing product: a wait that large is kept as it was.
    Duration::try_from_secs_f64(wait.as_secs_f64() * factor)
        .map(|spread| if hinted { spread.max(wait) } else { spread })
        .unwrap_or(wait)
}

/// Uniform numbers in `[0, 1)` for [`spread`]: SplitMix64, shared by every worker task of a
/// fleet without a lock. Seeded at random, or with a seed in tests.
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    pub(crate) fn random() -> Jitter {
        Jitter::seeded(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
    }

    pub(crate) fn seeded(seed: u64) -> Jitter {
        Jitter(AtomicU64::new(seed))
    }

    pub(crate) fn unit(&self) -> f64 {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_hint_only_grows_and_the_schedule_moves_both_ways() {
        for (wait, hinted, fraction, unit, expected) in [
            (MS(10_000), true, 0.1, 0.0, MS(10_000)),
            (MS(10_000), true, 0.1, 0.5, MS(10_500)),
            (MS(10_000), true, 0.1, 0.999_9, MS(10_999)),
            (MS(10_000), false, 0.1, 0.0, MS(9_000)),
            (MS(10_000), false, 0.1, 0.5, MS(10_000)),
            (MS(10_000), false, 0.1, 0.999_9, MS(10_999)),
            (MS(10_000), false, 0.0, 0.7, MS(10_000)),
            (MS(10_000), true, 0.5, 1.0, MS(15_000)),
            // Out-of-range inputs are clamped, never a panic.
            (MS(10_000), false, 7.0, 0.0, MS(0)),
            (MS(10_000), true, -1.0, 0.5, MS(10_000)),
            (MS(10_000), true, 0.1, f64::NAN, MS(10_000)),
            (Duration::ZERO, true, 0.1, 0.9, Duration::ZERO),
            (Duration::MAX, true, 0.1, 0.9, Duration::MAX),
            (Duration::MAX, false, 0.1, 0.9, Duration::MAX),
        ] {
            let got = spread(wait, hinted, fraction, unit);
            let close = got.abs_diff(expected) <= MS(1);
            assert!(close, "{wait:?} {hinted} {fraction} {unit}: {got:?}");
        }
    }

    #[test]
    fn a_hint_is_never_undercut() {
        let jitter = Jitter::seeded(7);
        for ms in [0, 1, 999, 1_000, 1_500, 2_000, 30_000] {
            for _ in 0..1_000 {
                assert!(spread(MS(ms), true, 0.1, jitter.unit()) >= MS(ms));
            }
        }
    }

    /// 10,000 operations started together with the same 30 s hint: seeded, so the figures are
    /// the same on every run; the bounds are what any uniform source must meet.
    #[test]
    fn operations_started_together_spread_over_the_fraction() {
        let jitter = Jitter::seeded(0x5eed);
        let n = 10_000u32;
        let hint = Duration::from_secs(30);
        let waits: Vec<Duration> = (0..n)
            .map(|_| spread(hint, true, 0.1, jitter.unit()))
            .collect();
        let (min, max) = (
            waits.iter().min().copied().unwrap_or_default(),
            waits.iter().max().copied().unwrap_or_default(),
        );
        assert!(min >= hint && max < MS(33_000), "{min:?}..{max:?}");
        // Spread over nearly the whole range, not clumped: the mean is in the middle.
        assert!(min < MS(30_050) && max > MS(32_950), "{min:?}..{max:?}");
        let mean = waits.iter().sum::<Duration>() / n;
        assert!(mean.abs_diff(MS(31_500)) < MS(60), "{mean:?}");
        // The stores schedule whole seconds: the steps fall in three seconds (30, 31 and 32
        // begun), each taking about a third, instead of all in one.
        let mut per_second = [0u32; 3];
        for wait in &waits {
            per_second[(wait.as_secs() - 30) as usize] += 1;
        }
        for count in per_second {
            assert!((2_900..3_800).contains(&count), "{per_second:?}");
        }
        // Without a hint the spread is symmetric.
        let unhinted: Vec<Duration> = (0..n)
            .map(|_| spread(hint, false, 0.1, jitter.unit()))
            .collect();
        assert!(unhinted.iter().all(|w| *w >= MS(27_000) && *w < MS(33_000)));
        assert!(unhinted.iter().filter(|w| **w < hint).count() > 4_500);
        let mean = unhinted.iter().sum::<Duration>() / n;
        assert!(mean.abs_diff(hint) < MS(100), "{mean:?}");
    }
}

//! Exponential backoff with jitter, as a pure, seedable policy: tests check the bounds of every
//! delay without sleeping.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How much of each exponential step is randomised, so concurrent callers do not retry in
/// lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential step (deterministic; for callers whose own tests count time).
    None,
    /// Uniform in `0..=step` ("full jitter"): the widest spread.
    Full,
    /// Half fixed, half random, `step/2..=step` ("equal jitter"): every caller still waits.
    Equal,
}

/// Exponential backoff: `base` after the first failure, doubled per further failure, capped at
/// `max`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The step after the first failure.
    pub base: Duration,
    /// No step grows beyond this.
    pub max: Duration,
    /// How the step is randomised.
    pub jitter: Jitter,
}

impl Backoff {
    /// Exponential from `base` up to `max`, with equal jitter.
    pub const fn exponential(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            jitter: Jitter::Equal,
        }
    }

    /// The same policy with another jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Between optimistic-concurrency rounds (a guarded write lost to a concurrent writer):
    /// 10 ms doubling up to 640 ms, equal jitter, so racers spread out instead of colliding
    /// again at once. Used by the Table Storage and Firestore stores.
    pub const CONTENTION: Backoff =
        Backoff::exponential(Duration::from_millis(10), Duration::from_millis(640));

    /// Sleeps the jittered wait after `failed_attempts` failures (fresh entropy per call).
    pub async fn sleep(&self, failed_attempts: u32) {
        let pause = self.delay(failed_attempts, &mut JitterRng::from_entropy());
        tokio::time::sleep(pause).await;
    }

    /// The un-jittered step after `failed_attempts` failures (1-based): `base · 2^(n-1)`,
    /// saturating, capped at `max`.
    pub fn step(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// The jittered wait after `failed_attempts` failures.
    pub fn delay(&self, failed_attempts: u32, rng: &mut JitterRng) -> Duration {
        let step = self.step(failed_attempts);
        match self.jitter {
            Jitter::None => step,
            Jitter::Full => rng.up_to(step),
            Jitter::Equal => {
                let half = step / 2;
                half + rng.up_to(step - half)
            }
        }
    }
}

/// A small seedable generator (splitmix64) for jitter: no RNG crate, reproducible in tests.
#[derive(Debug, Clone)]
pub struct JitterRng(u64);

impl JitterRng {
    /// A generator that yields the same sequence for the same seed.
    pub const fn seeded(seed: u64) -> Self {
        JitterRng(seed)
    }

    /// A generator seeded from the standard library's per-process random hash keys.
    pub fn from_entropy() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        JitterRng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration uniform in `0..=limit` (nanosecond resolution).
    pub fn up_to(&mut self, limit: Duration) -> Duration {
        let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.next_u64() % nanos.saturating_add(1).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn steps_double_up_to_the_cap_and_never_overflow() {
        let backoff = Backoff::exponential(100 * MS, 5000 * MS);
        assert_eq!(backoff.step(1), 100 * MS);
        assert_eq!(backoff.step(2), 200 * MS);
        assert_eq!(backoff.step(3), 400 * MS);
        assert_eq!(backoff.step(7), 5000 * MS);
        assert_eq!(backoff.step(u32::MAX), 5000 * MS);
        assert_eq!(backoff.step(0), 100 * MS);
    }

    #[test]
    fn every_jitter_stays_within_its_bounds() {
        let mut rng = JitterRng::seeded(7);
        let backoff = Backoff::exponential(100 * MS, 3200 * MS);
        for failed in 1..12 {
            let step = backoff.step(failed);
            for _ in 0..200 {
                let full = backoff.with_jitter(Jitter::Full).delay(failed, &mut rng);
                assert!(full <= step, "full {full:?} > {step:?}");
                let equal = backoff.delay(failed, &mut rng);
                assert!(
                    equal >= step / 2 && equal <= step,
                    "equal {equal:?} vs {step:?}"
                );
                assert_eq!(
                    backoff.with_jitter(Jitter::None).delay(failed, &mut rng),
                    step
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_and_is_reproducible_from_a_seed() {
        let backoff = Backoff::exponential(1000 * MS, 1000 * MS).with_jitter(Jitter::Full);
        let draw = |seed| {
            let mut rng = JitterRng::seeded(seed);
            (0..50)
                .map(|_| backoff.delay(1, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        let delays = draw(1);
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 40, "delays must not repeat in lockstep");
        assert!(delays.iter().any(|d| *d < 500 * MS) && delays.iter().any(|d| *d > 500 * MS));
    }

    #[test]
    fn contention_rounds_stay_short() {
        assert_eq!(Backoff::CONTENTION.step(1), 10 * MS);
        assert_eq!(Backoff::CONTENTION.step(7), 640 * MS);
        assert_eq!(Backoff::CONTENTION.step(30), 640 * MS);
    }

    #[test]
    fn a_zero_step_is_zero() {
        let mut rng = JitterRng::seeded(3);
        let backoff =
            Backoff::exponential(Duration::ZERO, Duration::ZERO).with_jitter(Jitter::Full);
        assert_eq!(backoff.delay(4, &mut rng), Duration::ZERO);
    }
}

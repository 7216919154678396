//! One retry driver: attempt, classify, decide, wait. Every cloud client retries through
//! [`retry`] (or [`RetryPolicy::decide`] where one attempt is a round of several calls), so the
//! rules for giving up live here once.

use crate::backoff::{Backoff, JitterRng};
use crate::classify::{Class, Classify};
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How many attempts one call gets and how long it waits between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least one is always made).
    pub max_attempts: u32,
    /// The wait after a transient failure without a server-requested pause.
    pub backoff: Backoff,
    /// The longest server-requested pause (`Retry-After`) waited out; a longer one ends the
    /// retries and is handed back to the caller.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// One attempt, no retry: for clients whose caller owns the retry budget.
    pub const fn single_attempt() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::exponential(Duration::ZERO, Duration::ZERO),
            max_retry_after: Duration::ZERO,
        }
    }

    /// What to do after `failed_attempts` attempts (1-based), the last of which failed with
    /// `class`, the server having asked for `retry_after`. Pure: `rng` is the only randomness.
    pub fn decide(
        &self,
        failed_attempts: u32,
        class: Class,
        retry_after: Option<Duration>,
        rng: &mut JitterRng,
    ) -> Decision {
        if class == Class::Permanent {
            return Decision::Stop(Stop::Permanent);
        }
        if failed_attempts >= self.max_attempts.max(1) {
            return Decision::Stop(Stop::Exhausted);
        }
        match retry_after {
            Some(pause) if pause > self.max_retry_after => Decision::Stop(Stop::RetryAfterTooLong),
            Some(pause) => Decision::Retry(pause),
            None => Decision::Retry(self.backoff.delay(failed_attempts, rng)),
        }
    }

    /// The longest the waits between attempts can add up to (server-requested pauses aside):
    /// the bound a caller stacking on this client must budget for.
    pub fn max_total_wait(&self) -> Duration {
        (1..self.max_attempts.max(1))
            .map(|failed| self.backoff.step(failed))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// The verdict after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then attempt again.
    Retry(Duration),
    /// Give up, for this reason.
    Stop(Stop),
}

/// Why the driver gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The failure is permanent.
    Permanent,
    /// Every attempt of the budget failed.
    Exhausted,
    /// The server asked for a longer pause than the policy waits out.
    RetryAfterTooLong,
    /// The next wait would pass the caller's deadline.
    Deadline,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Permanent => "permanent failure",
            Stop::Exhausted => "retries exhausted",
            Stop::RetryAfterTooLong => "server asked for a longer pause than is waited out",
            Stop::Deadline => "deadline reached",
        })
    }
}

/// The last failure, how many attempts were made and why retrying stopped.
#[derive(Debug, thiserror::Error)]
#[error("{stop} after {attempts} attempt(s)")]
pub struct Retried<E: std::error::Error + 'static> {
    /// The last attempt's failure.
    #[source]
    pub error: E,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Why the driver gave up.
    pub stop: Stop,
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds or `policy` gives up,
/// waiting as the policy decides, and never past `deadline` when one is given.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    deadline: Option<Instant>,
    mut attempt: F,
) -> Result<T, Retried<E>>
where
    E: Classify + std::error::Error + 'static,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut rng = JitterRng::from_entropy();
    let mut number = 1;
    loop {
        let error = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let stop = match policy.decide(number, error.class(), error.retry_after(), &mut rng) {
            Decision::Retry(pause)
                if deadline.is_some_and(|deadline| Instant::now() + pause > deadline) =>
            {
                Stop::Deadline
            }
            Decision::Retry(pause) => {
                tracing::info!(
                    what,
                    attempt = number,
                    delay_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    %error,
                    "transient failure; retrying"
                );
                tokio::time::sleep(pause).await;
                number += 1;
                continue;
            }
            Decision::Stop(stop) => stop,
        };
        return Err(Retried {
            error,
            attempts: number,
            stop,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Jitter;
    use crate::classify::Failure;
    use std::sync::atomic::{AtomicU32, Ordering};

    const MS: Duration = Duration::from_millis(1);

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            backoff: Backoff::exponential(100 * MS, 1000 * MS),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn decisions_follow_class_budget_and_retry_after() {
        let mut rng = JitterRng::seeded(1);
        let p = policy(3);
        assert_eq!(
            p.decide(1, Class::Permanent, None, &mut rng),
            Decision::Stop(Stop::Permanent)
        );
        assert_eq!(
            p.decide(3, Class::Transient, None, &mut rng),
            Decision::Stop(Stop::Exhausted)
        );
        assert_eq!(
            p.decide(1, Class::Transient, Some(Duration::from_secs(2)), &mut rng),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            p.decide(1, Class::Transient, Some(Duration::from_secs(11)), &mut rng),
            Decision::Stop(Stop::RetryAfterTooLong)
        );
        match p.decide(2, Class::Transient, None, &mut rng) {
            Decision::Retry(pause) => assert!(pause >= 100 * MS && pause <= 200 * MS),
            other => panic!("expected a retry, got {other:?}"),
        }
        assert_eq!(
            RetryPolicy::single_attempt().decide(1, Class::Transient, None, &mut rng),
            Decision::Stop(Stop::Exhausted)
        );
    }

    #[test]
    fn the_total_wait_bound_sums_the_steps() {
        assert_eq!(policy(4).max_total_wait(), 700 * MS);
        assert_eq!(
            RetryPolicy::single_attempt().max_total_wait(),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_retries_transient_failures_within_the_budget() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result: Result<(), _> = retry(&policy(4), "test", None, |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Err(Failure::transient(format!("attempt {n}"))) }
        })
        .await;
        let err = result.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!((err.attempts, err.stop), (4, Stop::Exhausted));
        assert_eq!(err.error.message, "attempt 4");
        let waited = started.elapsed();
        assert!(waited >= 350 * MS && waited <= 700 * MS, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_stops_at_once_on_a_permanent_failure_and_returns_success() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&policy(4), "test", None, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure::permanent("refused")) }
        })
        .await;
        assert_eq!(result.unwrap_err().stop, Stop::Permanent);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let value = retry(&policy(4), "test", None, |n| async move {
            if n < 3 {
                Err(Failure::transient("busy"))
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_never_sleeps_past_the_deadline() {
        let slow = RetryPolicy {
            backoff: Backoff::exponential(Duration::from_secs(5), Duration::from_secs(5))
                .with_jitter(Jitter::None),
            ..policy(10)
        };
        let deadline = Instant::now() + Duration::from_secs(12);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&slow, "test", Some(deadline), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure::transient("busy")) }
        })
        .await;
        assert_eq!(result.unwrap_err().stop, Stop::Deadline);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(Instant::now() <= deadline);
    }
}

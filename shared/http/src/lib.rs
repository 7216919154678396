//! The one cloud-HTTP layer every snapwatch client uses: how long to wait between attempts
//! ([`backoff`]), when to stop ([`retry`]), what a failure means ([`classify`]) and how bearer
//! tokens and credentials are cached ([`token`]).
//!
//! Retry budgets do not stack by accident: each client owns at most one [`RetryPolicy`], and a
//! caller that already retries (the Azure handler's delivery rounds) hands its clients a
//! [`RetryPolicy::single_attempt`] instead.

#![warn(missing_docs)]

pub mod backoff;
pub mod classify;
pub mod retry;
pub mod token;

pub use backoff::{Backoff, Jitter, JitterRng};
pub use classify::{retry_after_secs, status_class, Class, Classify, Failure};
pub use retry::{retry, Decision, Retried, RetryPolicy, Stop};
pub use token::{AccessToken, Token, TokenCache};

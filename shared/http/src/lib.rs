//! The one cloud-HTTP layer every snapwatch client uses: how long to wait between attempts
//! ([`backoff`]), when to stop ([`retry`]), what a failure means ([`classify`]) and how bearer
//! tokens and credentials are cached ([`token`]).
//!
//! Retry budgets do not stack by accident. Within one invocation exactly one layer retries a
//! call: the client (Slack on AWS and GCP, the signed AWS calls, the SDK's own standard mode for
//! SDK calls), or, where the caller already retries in rounds (the Azure handler's delivery
//! rounds), the caller, whose clients then make a single attempt. What outlasts that budget is
//! handed back as transient, and the platform's retry of the whole event is the only layer above.

#![warn(missing_docs)]

pub mod backoff;
pub mod classify;
pub mod retry;
pub mod token;

pub use backoff::{Backoff, Jitter, JitterRng};
pub use classify::{error_chain, retry_after_secs, status_class, Class, Classify, Failure};
pub use retry::{retry, Decision, Retried, RetryPolicy, Stop};
pub use token::{AccessToken, Token, TokenCache};

//! The narrow ports the engine does I/O through: chain state, alert delivery, time.
//!
//! The traits use `async fn`-style methods returning `Send` futures so that Lambda, axum and
//! Cloud Run adapters can await real network I/O, while the core itself needs no runtime (the CLI
//! drives it with a trivial executor over a synchronous SQLite store).

use crate::model::Finding;
use chrono::{DateTime, Utc};
use std::future::Future;

/// A fact as the store keeps it: opaque to the store apart from its key and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFact {
    /// Unique per fact (`event id # index`); writing the same key twice is a no-op.
    pub key: String,
    /// Unix seconds after which readers must ignore the fact (and the store may delete it).
    pub expires_at: i64,
    /// The serialized [`crate::model::Observation`]; the store never looks inside.
    pub body: String,
}

/// Facts to add under one resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFacts {
    /// The resource id the facts are stored under (see [`crate::model::Resource::id`]).
    pub resource: String,
    /// The facts naming that resource.
    pub facts: Vec<StoredFact>,
}

/// Outcome of trying to claim the right to alert on a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim: send, then `mark_sent` (or `release` on failure).
    Won,
    /// Another caller holds an unexpired lease and is sending now: do nothing.
    HeldByOther,
    /// Already delivered: do nothing. Lost races and redeliveries end here; not an error.
    AlreadySent,
}

/// Why a [`StateStore`] call failed, split by whether retrying the invocation can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, connection failures: the whole invocation may be retried.
    #[error("state store temporarily unavailable: {message}")]
    Unavailable {
        /// What failed, for the log.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Misconfiguration, missing table, access denied, corrupt data: retrying will not help.
    #[error("state store failed permanently: {message}")]
    Permanent {
        /// What failed, for the log.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A retryable failure with no underlying error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }
    /// A permanent failure with no underlying error.
    pub fn permanent(message: impl Into<String>) -> Self {
        StoreError::Permanent {
            message: message.into(),
            source: None,
        }
    }
    /// A retryable failure caused by `source`.
    pub fn unavailable_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
    /// A permanent failure caused by `source`.
    pub fn permanent_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Permanent {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
    /// Whether retrying the invocation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Chain state. Every write is atomic per item; implementations never read-modify-write
/// without a guard (conditional write, ETag, precondition, transaction).
pub trait StateStore: Send + Sync {
    /// Adds facts under each resource. Idempotent per fact key. Returns how many facts were
    /// new (0 for a redelivered event).
    fn add_facts(
        &self,
        batch: &[ResourceFacts],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Unexpired facts (`expires_at > now`) stored under each of `resources`, in any order.
    /// Resources with no facts are absent from the result.
    fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ResourceFacts>, StoreError>> + Send;

    /// Conditionally claims the right to deliver `finding_id`. A claim that is not marked sent
    /// within `lease_secs` may be taken over (the holder crashed). Claims expire at `expires_at`.
    fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records a won claim as delivered, so no retry or racer sends it again.
    fn mark_alert_sent(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a won claim back after a failed delivery, so the retry can send it.
    fn release_alert(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why an [`AlertSink`] did not deliver, split by whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Rate limited / 5xx / network: retry later (optionally not before `retry_after_secs`).
    #[error("alert sink {sink} temporarily failed: {message}")]
    Retryable {
        /// The sink's [`AlertSink::name`].
        sink: &'static str,
        /// What failed, for the log.
        message: String,
        /// How long the destination asked us to wait (HTTP `Retry-After`), if it said.
        retry_after_secs: Option<u64>,
    },
    /// The destination rejected the message (bad webhook, 4xx): report, do not retry forever.
    #[error("alert sink {sink} rejected the alert: {message}")]
    Permanent {
        /// The sink's [`AlertSink::name`].
        sink: &'static str,
        /// What the destination said, for the log.
        message: String,
    },
}

impl SinkError {
    /// Whether a later attempt may deliver.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable { .. })
    }
}

/// Somewhere findings go: SNS, Slack, stdout.
pub trait AlertSink: Send + Sync {
    /// Short name for logs and errors (`slack`, `sns`, `stdout`…).
    fn name(&self) -> &'static str;
    /// Delivers one finding. Called only by the holder of the finding's claim.
    fn send(&self, finding: &Finding) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Time source for delivery (claim leases and expiry) and for stamping runs: the wall clock.
/// Chains are never judged by it: the engine judges each chain by its own events' times.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A fixed instant, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

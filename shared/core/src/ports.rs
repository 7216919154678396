//! The narrow ports the engine does I/O through: chain state, alert delivery, time.
//!
//! The traits use `async fn`-style methods returning `Send` futures so that Lambda, axum and
//! Cloud Run adapters can await real network I/O, while the core itself needs no runtime (the CLI
//! drives it with a trivial executor over a synchronous SQLite store).

use crate::model::{ActionResult, Finding, ResponseMode};
use crate::response::Action;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

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
    /// The resource id the facts are stored under (a snapshot, volume, instance, group...).
    pub resource: String,
    /// The facts to add, each unique by its key.
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

/// An alert claim as every store keeps it (a map entry, a table row, an entity, a document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertClaim {
    /// Delivered: set by `mark_alert_sent`, never unset while the claim lives.
    pub sent: bool,
    /// Unix seconds at which the current holder claimed it; its lease runs from here.
    pub claimed_at: i64,
    /// Unix seconds from which the claim is gone (its chain window is over).
    pub expires_at: i64,
}

impl AlertClaim {
    /// The claim a caller writes when it wins at `now`: unsent, its lease starting now.
    pub fn won(now: i64, expires_at: i64) -> Self {
        AlertClaim {
            sent: false,
            claimed_at: now,
            expires_at,
        }
    }
}

/// Where a stored claim (or its absence) leaves a caller claiming at some instant: the one claim
/// decision, shared by the stores that read before a guarded write (memory, SQLite, Table,
/// Firestore). DynamoDB states the same rule as its update's condition expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatus {
    /// No live claim, or an unsent one whose lease ran out (its holder crashed): take it, guarded.
    Free,
    /// An unsent claim inside its lease: its holder is sending now.
    Held,
    /// A live claim already delivered.
    Sent,
}

impl ClaimStatus {
    /// The status of `existing` (`None`: no claim stored) for a caller claiming at `now` (unix
    /// seconds). A claim with `expires_at <= now` no longer exists, even if it was sent.
    pub fn of(existing: Option<&AlertClaim>, now: i64, lease_secs: i64) -> Self {
        match existing {
            Some(claim) if claim.expires_at > now && claim.sent => ClaimStatus::Sent,
            Some(claim)
                if claim.expires_at > now && now < claim.claimed_at.saturating_add(lease_secs) =>
            {
                ClaimStatus::Held
            }
            _ => ClaimStatus::Free,
        }
    }

    /// The answer to give without writing, or `None` when the claim is free to take.
    pub fn refusal(self) -> Option<Claim> {
        match self {
            ClaimStatus::Free => None,
            ClaimStatus::Held => Some(Claim::HeldByOther),
            ClaimStatus::Sent => Some(Claim::AlreadySent),
        }
    }
}

/// Why a [`StateStore`] call failed, and so whether retrying the invocation can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, connection failures: the whole invocation may be retried.
    #[error("state store temporarily unavailable: {message}")]
    Unavailable {
        /// What failed, for the log.
        message: String,
        /// The underlying error, kept for its cause chain.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Misconfiguration, missing table, access denied, corrupt data: retrying will not help.
    #[error("state store failed permanently: {message}")]
    Permanent {
        /// What failed, for the log.
        message: String,
        /// The underlying error, kept for its cause chain.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A transient failure with no underlying error.
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
    /// A transient failure caused by `source`.
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

/// A borrowed store is the store: adapters hand `&store` to a per-invocation detector without a
/// forwarding wrapper.
impl<S: StateStore + ?Sized> StateStore for &S {
    fn add_facts(
        &self,
        batch: &[ResourceFacts],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).add_facts(batch)
    }
    fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ResourceFacts>, StoreError>> + Send {
        (**self).load_facts(resources, now)
    }
    fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim_alert(finding_id, now, lease_secs, expires_at)
    }
    fn mark_alert_sent(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_alert_sent(finding_id)
    }
    fn release_alert(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_alert(finding_id)
    }
}

/// A shared store is the store: a service and its tests (or several detectors) hold one store.
impl<S: StateStore + ?Sized> StateStore for Arc<S> {
    fn add_facts(
        &self,
        batch: &[ResourceFacts],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).add_facts(batch)
    }
    fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ResourceFacts>, StoreError>> + Send {
        (**self).load_facts(resources, now)
    }
    fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim_alert(finding_id, now, lease_secs, expires_at)
    }
    fn mark_alert_sent(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_alert_sent(finding_id)
    }
    fn release_alert(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_alert(finding_id)
    }
}

/// Why an [`AlertSink`] did not deliver, and so whether a later attempt can.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Rate limited / 5xx / network: retry later (optionally not before `retry_after_secs`).
    #[error("alert sink {sink} temporarily failed: {message}")]
    Retryable {
        /// The sink's [`AlertSink::name`].
        sink: &'static str,
        /// What the destination answered, for the log.
        message: String,
        /// The destination's `Retry-After`, when it sent one.
        retry_after_secs: Option<u64>,
    },
    /// The destination rejected the message (bad webhook, 4xx): report, do not retry forever.
    #[error("alert sink {sink} rejected the alert: {message}")]
    Permanent {
        /// The sink's [`AlertSink::name`].
        sink: &'static str,
        /// What the destination answered, for the log.
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
    /// A short fixed name for logs and per-sink outcomes (`sns`, `slack`, `stdout`).
    fn name(&self) -> &'static str;
    /// Delivers one finding.
    fn send(&self, finding: &Finding) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A borrowed sink is the sink.
impl<K: AlertSink + ?Sized> AlertSink for &K {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn send(&self, finding: &Finding) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).send(finding)
    }
}

/// A shared sink is the sink: a service and its tests hold one sink.
impl<K: AlertSink + ?Sized> AlertSink for Arc<K> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn send(&self, finding: &Finding) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).send(finding)
    }
}

/// What a [`Responder`] is asked to do with one planned action.
#[derive(Debug, Clone, Copy)]
pub struct ResponseRequest<'a> {
    /// The action planned from the chain.
    pub action: &'a Action,
    /// `dry-run` (re-read and describe) or `enforce` (re-read and act).
    pub mode: ResponseMode,
    /// The tag / label whose presence on the target exempts it.
    pub exempt_tag: &'a str,
    /// When the chain's last event happened: a responder that can see when the current state
    /// was set (GCP policy, Azure rule timestamps) treats a later change as someone else's.
    pub finding_time: DateTime<Utc>,
}

/// What a [`Responder`] decided for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOutcome {
    /// Done, would-do, or why it was skipped (never `failed`: that is a [`ResponderError`]).
    pub result: ActionResult,
    /// What the re-read found, in words (what a dry run would remove, why it was skipped).
    pub reason: Option<String>,
}

impl ResponseOutcome {
    /// An outcome with a reason.
    pub fn new(result: ActionResult, reason: impl Into<String>) -> Self {
        ResponseOutcome {
            result,
            reason: Some(reason.into()),
        }
    }
}

/// Why a [`Responder`] could not carry an action out.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    /// Throttled, 5xx, network, after the client's own retries: a later attempt may succeed.
    #[error("response {call} on {target} temporarily failed: {message}")]
    Retryable {
        /// The action's call.
        call: &'static str,
        /// The action's target.
        target: String,
        /// What the cloud answered.
        message: String,
    },
    /// Denied, malformed, not supported here: retrying cannot help.
    #[error("response {call} on {target} failed: {message}")]
    Permanent {
        /// The action's call.
        call: &'static str,
        /// The action's target.
        target: String,
        /// What the cloud answered.
        message: String,
    },
}

impl ResponderError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ResponderError::Retryable { .. })
    }
    /// What the cloud answered, with the kind of failure, for the finding's `reason`.
    pub fn reason(&self) -> String {
        match self {
            ResponderError::Retryable { message, .. } => format!("temporary failure: {message}"),
            ResponderError::Permanent { message, .. } => message.clone(),
        }
    }
}

/// Executes planned response actions on one cloud: re-reads the target's current state first;
/// skips it when exempt, gone, or changed by someone else after the finding; then acts
/// (`enforce`) or only describes the call (`dry-run`). Every action is idempotent.
pub trait Responder: Send + Sync {
    /// A short fixed name for logs (`aws`, `azure`, `gcp`).
    fn name(&self) -> &'static str;
    /// Carries out one action.
    fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> impl Future<Output = Result<ResponseOutcome, ResponderError>> + Send;
}

/// A borrowed responder is the responder.
impl<R: Responder + ?Sized> Responder for &R {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> impl Future<Output = Result<ResponseOutcome, ResponderError>> + Send {
        (**self).execute(request)
    }
}

/// A shared responder is the responder.
impl<R: Responder + ?Sized> Responder for Arc<R> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> impl Future<Output = Result<ResponseOutcome, ResponderError>> + Send {
        (**self).execute(request)
    }
}

/// Time source for delivery (claim leases and expiry) and for stamping runs: the wall clock.
/// Chains are never judged by it: the engine judges each chain by its own events' times.
pub trait Clock: Send + Sync {
    /// The current instant.
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

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: i64 = 300;

    fn claim(sent: bool, claimed_at: i64, expires_at: i64) -> AlertClaim {
        AlertClaim {
            sent,
            claimed_at,
            expires_at,
        }
    }

    #[test]
    fn no_claim_is_free() {
        assert_eq!(ClaimStatus::of(None, 100, LEASE), ClaimStatus::Free);
        assert_eq!(ClaimStatus::Free.refusal(), None);
    }

    #[test]
    fn an_unsent_claim_is_held_until_its_lease_ends() {
        let held = claim(false, 100, 10_000);
        assert_eq!(ClaimStatus::of(Some(&held), 100, LEASE), ClaimStatus::Held);
        assert_eq!(ClaimStatus::of(Some(&held), 399, LEASE), ClaimStatus::Held);
        assert_eq!(ClaimStatus::of(Some(&held), 400, LEASE), ClaimStatus::Free);
        assert_eq!(ClaimStatus::Held.refusal(), Some(Claim::HeldByOther));
    }

    #[test]
    fn a_sent_claim_stays_sent_past_its_lease_until_it_expires() {
        let sent = claim(true, 100, 10_000);
        assert_eq!(
            ClaimStatus::of(Some(&sent), 5_000, LEASE),
            ClaimStatus::Sent
        );
        assert_eq!(
            ClaimStatus::of(Some(&sent), 9_999, LEASE),
            ClaimStatus::Sent
        );
        assert_eq!(
            ClaimStatus::of(Some(&sent), 10_000, LEASE),
            ClaimStatus::Free
        );
        assert_eq!(ClaimStatus::Sent.refusal(), Some(Claim::AlreadySent));
    }

    #[test]
    fn an_expired_claim_is_free_inside_its_lease() {
        let expired = claim(false, 100, 150);
        assert_eq!(
            ClaimStatus::of(Some(&expired), 150, LEASE),
            ClaimStatus::Free
        );
    }

    #[test]
    fn a_huge_lease_holds_instead_of_overflowing() {
        let held = claim(false, i64::MAX - 10, i64::MAX);
        assert_eq!(
            ClaimStatus::of(Some(&held), i64::MAX - 5, i64::MAX),
            ClaimStatus::Held
        );
    }

    #[test]
    fn a_won_claim_is_unsent_and_leased_from_now() {
        assert_eq!(AlertClaim::won(7, 99), claim(false, 7, 99));
    }
}

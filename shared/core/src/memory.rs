//! In-memory adapters: a [`StateStore`], an [`AlertSink`] and a [`Responder`], for tests and
//! single-process use.

use crate::model::{ActionResult, Finding, ResponseMode};
use crate::ports::{
    AlertClaim, AlertSink, Claim, ClaimStatus, ResourceFacts, Responder, ResponderError,
    ResponseOutcome, ResponseRequest, SinkError, StateStore, StoreError, StoredFact,
};
use crate::response::Action;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Inner {
    facts: HashMap<String, BTreeMap<String, StoredFact>>,
    alerts: HashMap<String, AlertClaim>,
}

/// Keeps everything in a mutex-guarded map; every operation is atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::permanent("memory store mutex poisoned"))
    }

    /// Deletes facts that expired at or before `at` (unix seconds), as the cloud stores' TTL does;
    /// returns how many. A scan passes its event-time watermark, so that old logs keep their
    /// facts for as long as later events in the same logs can link to them.
    pub fn purge_facts_expired(&self, at: i64) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let mut removed = 0;
        inner.facts.retain(|_, slot| {
            let before = slot.len();
            slot.retain(|_, f| f.expires_at > at);
            removed += before - slot.len();
            !slot.is_empty()
        });
        removed
    }

    /// Deletes alert claims that expired at or before `at` (unix seconds); returns how many.
    pub fn purge_claims_expired(&self, at: i64) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let before = inner.alerts.len();
        inner.alerts.retain(|_, c| c.expires_at > at);
        before - inner.alerts.len()
    }

    /// Number of facts held (expired ones included), for tests of boundedness.
    pub fn fact_count(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.facts.values().map(BTreeMap::len).sum())
            .unwrap_or(0)
    }
}

impl StateStore for MemoryStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let mut added = 0;
        for rf in batch {
            let slot = inner.facts.entry(rf.resource.clone()).or_default();
            for fact in &rf.facts {
                if !slot.contains_key(&fact.key) {
                    slot.insert(fact.key.clone(), fact.clone());
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let inner = self.lock()?;
        let now = now.timestamp();
        Ok(resources
            .iter()
            .filter_map(|r| {
                let facts: Vec<StoredFact> = inner
                    .facts
                    .get(r)?
                    .values()
                    .filter(|f| f.expires_at > now)
                    .cloned()
                    .collect();
                (!facts.is_empty()).then(|| ResourceFacts {
                    resource: r.clone(),
                    facts,
                })
            })
            .collect())
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let mut inner = self.lock()?;
        let now = now.timestamp();
        if let Some(refused) =
            ClaimStatus::of(inner.alerts.get(finding_id), now, lease_secs).refusal()
        {
            return Ok(refused);
        }
        inner
            .alerts
            .insert(finding_id.to_string(), AlertClaim::won(now, expires_at));
        Ok(Claim::Won)
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match inner.alerts.get_mut(finding_id) {
            Some(c) => {
                c.sent = true;
                Ok(())
            }
            None => Err(StoreError::permanent(format!(
                "mark_alert_sent: no claim for {finding_id}"
            ))),
        }
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if matches!(inner.alerts.get(finding_id), Some(c) if !c.sent) {
            inner.alerts.remove(finding_id);
        }
        Ok(())
    }
}

/// How a [`MemorySink`] misbehaves while a fault is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFault {
    /// Fails with [`SinkError::Retryable`] (rate limited, 5xx), carrying this `Retry-After`.
    Transient {
        /// Seconds the destination asks to wait, if any.
        retry_after_secs: Option<u64>,
    },
    /// Fails with [`SinkError::Permanent`] (the destination rejected the message).
    Permanent,
    /// Never answers, like a webhook endpoint that accepts the connection and stalls.
    Stall,
}

#[derive(Debug, Default)]
struct SinkRecord {
    sent: Vec<Finding>,
    attempts: usize,
    /// The fault and how many more sends it affects.
    fault: Option<(SinkFault, usize)>,
}

/// In-memory [`AlertSink`]: keeps every finding it accepts, and can be told to fail.
///
/// Clones share one record, so a test keeps a handle while the service under test owns another.
#[derive(Debug, Clone)]
pub struct MemorySink {
    name: &'static str,
    record: Arc<Mutex<SinkRecord>>,
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::named("memory")
    }
}

impl MemorySink {
    /// A sink named `memory` that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink reporting `name` (`slack`, `sns`...), where outcomes are keyed by sink name.
    pub fn named(name: &'static str) -> Self {
        MemorySink {
            name,
            record: Arc::default(),
        }
    }

    /// Makes the next `sends` sends fail with `fault` (`usize::MAX`: until [`Self::heal`]).
    /// Replaces any fault set before.
    pub fn fail_next(&self, sends: usize, fault: SinkFault) {
        self.lock().fault = (sends > 0).then_some((fault, sends));
    }

    /// Ends any fault: every later send is accepted.
    pub fn heal(&self) {
        self.lock().fault = None;
    }

    /// The findings accepted so far, in order.
    pub fn sent(&self) -> Vec<Finding> {
        self.lock().sent.clone()
    }

    /// The ids of the findings accepted so far, in order.
    pub fn sent_ids(&self) -> Vec<String> {
        self.lock().sent.iter().map(|f| f.id.clone()).collect()
    }

    /// Takes the findings accepted so far, leaving the record empty.
    pub fn take(&self) -> Vec<Finding> {
        std::mem::take(&mut self.lock().sent)
    }

    /// How many times `send` was called, failed calls included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// A poisoned lock only means another test thread panicked; the record itself is intact.
    fn lock(&self) -> MutexGuard<'_, SinkRecord> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the attempt and returns the fault it meets, if any.
    fn attempt(&self) -> Option<SinkFault> {
        let mut record = self.lock();
        record.attempts += 1;
        let (fault, left) = record.fault?;
        record.fault = (left > 1).then(|| (fault, left.saturating_sub(1)));
        Some(fault)
    }
}

impl AlertSink for MemorySink {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        match self.attempt() {
            None => {
                self.lock().sent.push(finding.clone());
                Ok(())
            }
            Some(SinkFault::Transient { retry_after_secs }) => Err(SinkError::Retryable {
                sink: self.name,
                message: "test sink is down".into(),
                retry_after_secs,
            }),
            Some(SinkFault::Permanent) => Err(SinkError::Permanent {
                sink: self.name,
                message: "test sink rejected the alert".into(),
            }),
            Some(SinkFault::Stall) => std::future::pending().await,
        }
    }
}

/// In-memory [`Responder`]: records every action it is asked to carry out and answers as a
/// responder whose re-read found the change still there (`done` when enforcing, `would-do` in a
/// dry run), unless told to answer otherwise for a target. Clones share one record.
#[derive(Debug, Clone, Default)]
pub struct MemoryResponder {
    record: Arc<Mutex<ResponderRecord>>,
}

#[derive(Debug, Default)]
struct ResponderRecord {
    executed: Vec<(Action, ResponseMode)>,
    answers: HashMap<String, Answer>,
}

#[derive(Debug, Clone)]
enum Answer {
    Outcome(ResponseOutcome),
    Retryable(String),
    Permanent(String),
}

impl MemoryResponder {
    /// A responder that finds every change still in place.
    pub fn new() -> Self {
        Self::default()
    }

    /// Actions on `target` come to `outcome` (skipped-exempt, skipped-gone…).
    pub fn answer(&self, target: &str, outcome: ResponseOutcome) {
        self.lock()
            .answers
            .insert(target.to_owned(), Answer::Outcome(outcome));
    }

    /// Actions on `target` fail, retryably or not, with `message`.
    pub fn fail(&self, target: &str, retryable: bool, message: &str) {
        let answer = if retryable {
            Answer::Retryable(message.to_owned())
        } else {
            Answer::Permanent(message.to_owned())
        };
        self.lock().answers.insert(target.to_owned(), answer);
    }

    /// Every action asked for so far, with its mode, in order.
    pub fn executed(&self) -> Vec<(Action, ResponseMode)> {
        self.lock().executed.clone()
    }

    fn lock(&self) -> MutexGuard<'_, ResponderRecord> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Responder for MemoryResponder {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> Result<ResponseOutcome, ResponderError> {
        let mut record = self.lock();
        record.executed.push((request.action.clone(), request.mode));
        let target = request.action.target().to_owned();
        let call = request.action.call();
        match record.answers.get(&target).cloned() {
            Some(Answer::Outcome(outcome)) => Ok(outcome),
            Some(Answer::Retryable(message)) => Err(ResponderError::Retryable {
                call,
                target,
                message,
            }),
            Some(Answer::Permanent(message)) => Err(ResponderError::Permanent {
                call,
                target,
                message,
            }),
            None => Ok(match request.mode {
                ResponseMode::Enforce => ResponseOutcome {
                    result: ActionResult::Done,
                    reason: None,
                },
                _ => ResponseOutcome::new(
                    ActionResult::WouldDo,
                    format!("would call {call} to {}", request.action.change()),
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollster::block_on;
    use std::future::Future;

    /// Built from the finding JSON, so the test does not depend on how fields are typed.
    fn finding(id: &str) -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "rule": "snapshot.restored-by-other",
            "severity": "high",
            "cloud": "aws",
            "account": "111122223333",
            "region": null,
            "snapshot": "snap-1",
            "resources": [],
            "actors": [],
            "techniques": [],
            "events": [],
            "first_seen": "2026-03-01T12:00:00Z",
            "last_seen": "2026-03-01T12:00:00Z",
            "title": "t",
            "summary": "s",
            "next_steps": [],
            "found_by": "events",
        }))
        .unwrap()
    }

    #[test]
    fn sink_records_in_order_and_clones_share_the_record() {
        let sink = MemorySink::named("slack");
        let handle = sink.clone();
        block_on(async {
            sink.send(&finding("a")).await.unwrap();
            sink.send(&finding("b")).await.unwrap();
        });
        assert_eq!(handle.name(), "slack");
        assert_eq!(handle.sent_ids(), vec!["a", "b"]);
        assert_eq!(handle.take().len(), 2);
        assert!(sink.sent().is_empty());
        assert_eq!(sink.attempts(), 2);
    }

    #[test]
    fn sink_fails_the_next_sends_then_accepts() {
        let sink = MemorySink::new();
        sink.fail_next(
            2,
            SinkFault::Transient {
                retry_after_secs: Some(30),
            },
        );
        block_on(async {
            for _ in 0..2 {
                match sink.send(&finding("a")).await {
                    Err(SinkError::Retryable {
                        sink: "memory",
                        retry_after_secs: Some(30),
                        ..
                    }) => {}
                    other => panic!("expected a transient failure, got {other:?}"),
                }
            }
            sink.send(&finding("a")).await.unwrap();
            sink.fail_next(1, SinkFault::Permanent);
            let rejected = sink.send(&finding("b")).await;
            assert!(
                matches!(rejected, Err(SinkError::Permanent { .. })),
                "{rejected:?}"
            );
        });
        assert_eq!(sink.sent_ids(), vec!["a"]);
        assert_eq!(sink.attempts(), 4);
    }

    #[test]
    fn sink_fails_until_healed() {
        let sink = MemorySink::new();
        sink.fail_next(usize::MAX, SinkFault::Permanent);
        block_on(async {
            for _ in 0..5 {
                assert!(sink.send(&finding("a")).await.is_err());
            }
            sink.heal();
            sink.send(&finding("a")).await.unwrap();
        });
        assert_eq!(sink.sent_ids(), vec!["a"]);
    }

    #[test]
    fn a_stalled_sink_never_answers() {
        let sink = MemorySink::new();
        sink.fail_next(1, SinkFault::Stall);
        let f = finding("a");
        let mut send = std::pin::pin!(sink.send(&f));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        for _ in 0..3 {
            assert!(send.as_mut().poll(&mut cx).is_pending());
        }
        assert!(sink.sent().is_empty());
    }
}

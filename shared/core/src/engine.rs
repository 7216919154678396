//! The chain engine: stores facts per resource, loads every chain a new fact may have completed
//! ([`crate::graph`]), evaluates the rules on it ([`crate::rules`]), assembles the findings
//! ([`crate::finding`]) and delivers each finding at most once.
//!
//! Order independence comes from storing facts and re-evaluating whole chains rather than keeping
//! a state machine per chain; idempotency from fact keys (`event id # index`) and conditional
//! alert claims in the store.

use crate::config::Config;
pub use crate::error::EngineError;
use crate::finding::{assemble, sort_findings};
use crate::graph::{names_only_children, GraphLoader};
use crate::model::{Finding, Observation, Origin, ParsedEvent};
use crate::ports::{AlertSink, Claim, ResourceFacts, SinkError, StateStore, StoredFact};
use crate::rules::RuleContext;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// How long a won alert claim may stay unsent before another delivery attempt may take it over.
pub const CLAIM_LEASE_SECS: i64 = 300;

/// What ingesting one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Facts not seen before (0 for a redelivered event).
    pub new_facts: usize,
    /// Resource ids whose chains must be re-evaluated.
    pub touched: Vec<String>,
}

/// What delivering findings to one sink did.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Ids of the findings this call delivered.
    pub sent: Vec<String>,
    /// Findings an earlier attempt delivered to this sink.
    pub already_sent: usize,
    /// Findings another delivery attempt is sending right now.
    pub held_by_other: usize,
    /// Findings below the configured minimum severity, not sent.
    pub below_threshold: usize,
    /// Permanently rejected by the sink: reported, settled, never retried.
    pub rejected: Vec<(String, SinkError)>,
    /// Failed transiently: the claim was released so a retry sends them.
    pub retry: Vec<(String, SinkError)>,
}

impl Delivery {
    /// Whether some finding must be sent again (the invocation should fail so it is retried).
    pub fn needs_retry(&self) -> bool {
        !self.retry.is_empty()
    }
}

/// The detector: the rules over one state store.
pub struct Detector<S> {
    store: S,
    config: Config,
}

impl<S: StateStore> Detector<S> {
    /// The rules of `config` over `store`.
    pub fn new(store: S, config: Config) -> Self {
        Detector { store, config }
    }

    /// The configuration the rules use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state store the chains are kept in.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stores the facts of a received event under every resource they link. Idempotent.
    pub async fn ingest(&self, event: &ParsedEvent) -> Result<Ingested, EngineError> {
        self.ingest_from(event, Origin::Events).await
    }

    /// Like [`Detector::ingest`], for an event of the given origin (the baseline ingests its
    /// synthetic events as [`Origin::Baseline`]).
    pub async fn ingest_from(
        &self,
        event: &ParsedEvent,
        origin: Origin,
    ) -> Result<Ingested, EngineError> {
        let expires_at = event.meta.time.timestamp() + self.config.window_secs();
        let mut per_resource: BTreeMap<&str, Vec<StoredFact>> = BTreeMap::new();
        for (index, fact) in event.facts.iter().enumerate() {
            let observation = Observation {
                event: event.meta.clone(),
                index: index as u32,
                fact: fact.clone(),
                origin,
            };
            let body =
                serde_json::to_string(&observation).map_err(|source| EngineError::Encode {
                    event_id: event.meta.id.clone(),
                    source,
                })?;
            let stored = StoredFact {
                key: observation.key(),
                expires_at,
                body,
            };
            let mut ids: Vec<&str> = fact
                .linked_resources()
                .iter()
                .map(|r| r.id.as_str())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                per_resource.entry(id).or_default().push(stored.clone());
            }
        }
        if per_resource.is_empty() {
            return Ok(Ingested::default());
        }
        let batch: Vec<ResourceFacts> = per_resource
            .into_iter()
            .map(|(resource, facts)| ResourceFacts {
                resource: resource.to_string(),
                facts,
            })
            .collect();
        let touched = batch.iter().map(|rf| rf.resource.clone()).collect();
        let new_facts = self.store.add_facts(&batch).await?;
        Ok(Ingested { new_facts, touched })
    }

    /// Evaluates every chain the `touched` resources take part in, as an event at `as_of` sees
    /// them: with every stored fact that can still link to it (facts of events at most the
    /// window before `as_of`, and all later ones). Each rule checks that its chain fits in one
    /// window of the chain's own events, so the result does not depend on when it is asked.
    /// Pure with respect to the store (reads only): the same state gives the same findings.
    pub async fn evaluate(
        &self,
        touched: &[String],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<Finding>, EngineError> {
        self.evaluate_in_chunks(touched, as_of, usize::MAX).await
    }

    /// Like [`Detector::evaluate`] over every fact the store still holds, whatever its age: the
    /// batch path of `snapwatch scan`, where each chain is judged in its own time.
    pub async fn evaluate_held(
        &self,
        touched: &[String],
        chunk: usize,
    ) -> Result<Vec<Finding>, EngineError> {
        self.evaluate_in_chunks(touched, DateTime::<Utc>::MIN_UTC, chunk)
            .await
    }

    /// Evaluates `touched` `chunk` resources at a time, so the facts held decoded at once follow
    /// one chunk's chains rather than the whole batch. Nodes large enough to be hubs (a snapshot
    /// with thousands of restores) stay decoded across chunks, so each is loaded once and
    /// evaluation stays linear in the facts. Findings are deduplicated and sorted.
    pub async fn evaluate_in_chunks(
        &self,
        touched: &[String],
        as_of: DateTime<Utc>,
        chunk: usize,
    ) -> Result<Vec<Finding>, EngineError> {
        self.evaluate_walk(touched, &BTreeSet::new(), as_of, chunk)
            .await
    }

    /// [`Detector::evaluate_in_chunks`], not walking the dependents of the `parent_only` nodes
    /// ([`GraphLoader::load_chains`]).
    async fn evaluate_walk(
        &self,
        touched: &[String],
        parent_only: &BTreeSet<String>,
        as_of: DateTime<Utc>,
        chunk: usize,
    ) -> Result<Vec<Finding>, EngineError> {
        // Facts are visible when they can link to an event at `as_of`: expires_at >= as_of.
        let horizon = as_of
            .checked_sub_signed(chrono::Duration::seconds(1))
            .unwrap_or(as_of);
        let mut loader = GraphLoader::new(&self.store, horizon);
        let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
        for part in touched.chunks(chunk.max(1)) {
            let anchors = loader.load_chains(part, parent_only).await?;
            let rules = RuleContext {
                graph: loader.graph(),
                config: &self.config,
            };
            for anchor in &anchors {
                for finding in rules.evaluate_anchor(anchor).into_iter().map(assemble) {
                    findings.insert(finding.id.clone(), finding);
                }
            }
            loader.forget_small_nodes();
        }
        let mut out: Vec<Finding> = findings.into_values().collect();
        sort_findings(&mut out);
        Ok(out)
    }

    /// Ingests one event and evaluates what it touched: the per-event path of the functions.
    /// The chain is judged as of the event's own time (never later than `now`), so a late event
    /// links to the facts that were within the window of it, as the scan does.
    pub async fn process(
        &self,
        event: &ParsedEvent,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, EngineError> {
        self.process_walking(event, now, true).await
    }

    /// [`Detector::process`] walking every touched node's dependents, as the batch path does:
    /// the reference the pruned walk is proved against.
    #[cfg(test)]
    pub(crate) async fn process_full_walk(
        &self,
        event: &ParsedEvent,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, EngineError> {
        self.process_walking(event, now, false).await
    }

    async fn process_walking(
        &self,
        event: &ParsedEvent,
        now: DateTime<Utc>,
        prune: bool,
    ) -> Result<Vec<Finding>, EngineError> {
        let ingested = self.ingest(event).await?;
        // A launch from a golden image links the new instance under the image: the image's
        // thousand other instances keep their chains, so they are not re-read.
        let parent_only: BTreeSet<String> = ingested
            .touched
            .iter()
            .filter(|id| prune && names_only_children(&event.facts, id))
            .cloned()
            .collect();
        // Always re-evaluate, even for a redelivery: the earlier attempt may have stored the facts
        // and then failed before delivering. Claims make the re-evaluation alert nothing twice.
        self.evaluate_walk(
            &ingested.touched,
            &parent_only,
            event.meta.time.min(now),
            usize::MAX,
        )
        .await
    }

    /// Delivers findings at or above the configured severity to `sink`, each at most once per
    /// sink across retries, redeliveries and concurrent handlers (claim → send → mark sent).
    pub async fn deliver<K: AlertSink>(
        &self,
        findings: &[Finding],
        sink: &K,
        now: DateTime<Utc>,
    ) -> Result<Delivery, EngineError> {
        let mut delivery = Delivery::default();
        let expires_at = now.timestamp() + self.config.window_secs();
        for finding in findings {
            if finding.severity < self.config.alerts.min_severity {
                delivery.below_threshold += 1;
                continue;
            }
            let claim_id = format!("{}@{}", finding.id, sink.name());
            match self
                .store
                .claim_alert(&claim_id, now, CLAIM_LEASE_SECS, expires_at)
                .await?
            {
                Claim::AlreadySent => delivery.already_sent += 1,
                Claim::HeldByOther => delivery.held_by_other += 1,
                Claim::Won => match sink.send(finding).await {
                    Ok(()) => {
                        self.store.mark_alert_sent(&claim_id).await?;
                        delivery.sent.push(finding.id.clone());
                    }
                    Err(err) if err.is_retryable() => {
                        self.store.release_alert(&claim_id).await?;
                        tracing::warn!(finding = %finding.id, sink = sink.name(), error = %err, "alert not delivered; released for retry");
                        delivery.retry.push((finding.id.clone(), err));
                    }
                    Err(err) => {
                        // A permanent rejection will not succeed on retry: settle it and report.
                        self.store.mark_alert_sent(&claim_id).await?;
                        tracing::error!(finding = %finding.id, sink = sink.name(), error = %err, "alert rejected by sink");
                        delivery.rejected.push((finding.id.clone(), err));
                    }
                },
            }
        }
        Ok(delivery)
    }
}

mod as_one;
mod respond;
pub use respond::{Responses, EARLIER_ATTEMPT_NOTE, NOTHING_TO_UNDO_NOTE};
#[cfg(test)]
mod gap_tests;
#[cfg(test)]
mod hubwalk_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

//! The opt-in response step: once per finding (claimed as `finding-id@response`, like an
//! alert), plan the undo from the chain's own observations, hand each action to the
//! [`Responder`], and attach the [`ResponseReport`] to the finding before it is delivered.
//!
//! The order is claim → act → deliver → [`Detector::settle`]. The response claim stays held
//! until the caller has delivered, so a racing handler that meets it withholds the finding and
//! the alert that goes out is always the one that carries what was done.

use super::{Detector, EngineError, CLAIM_LEASE_SECS};
use crate::error::decode_stored;
use crate::model::{
    ActionReport, ActionResult, Finding, Observation, ResponseMode, ResponseReport,
};
use crate::ports::{Claim, Responder, ResponseRequest, StateStore};
use crate::response::plan;
use chrono::{DateTime, Duration, Utc};

/// What the note of a finding says when an earlier attempt already responded to it.
pub const EARLIER_ATTEMPT_NOTE: &str =
    "an earlier attempt to handle this finding already responded; its log lists the actions";
/// What the note of a finding says when its chain added nothing that can be undone exactly.
pub const NOTHING_TO_UNDO_NOTE: &str =
    "nothing to undo: the chain's events added nothing snapwatch can remove exactly";

/// What responding to findings did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Responses {
    /// Findings this call responded to (their `response` is set).
    pub responded: Vec<String>,
    /// Findings an earlier attempt responded to (their `response` carries a note saying so).
    pub already_responded: Vec<String>,
    /// Findings another handler is responding to right now. That handler delivers them once
    /// their response is known, so this caller must not deliver them: see [`Responses::deliverable`].
    pub held_by_other: Vec<String>,
}

impl Responses {
    /// The findings this caller may deliver: all but those another handler is responding to.
    pub fn deliverable(&self, mut findings: Vec<Finding>) -> Vec<Finding> {
        findings.retain(|f| !self.held_by_other.contains(&f.id));
        findings
    }
}

impl<S: StateStore> Detector<S> {
    /// Responds to each finding whose rule's mode is not `off`, at most once per finding across
    /// retries and racing handlers, and sets its `response`. Deliver
    /// [`Responses::deliverable`], then call [`Detector::settle`]. A failed action is reported in the
    /// response (result `failed`, with the reason), never as an error: the alert must still go
    /// out. Only the state store's errors are returned.
    pub async fn respond<R: Responder>(
        &self,
        findings: &mut [Finding],
        responder: &R,
        now: DateTime<Utc>,
    ) -> Result<Responses, EngineError> {
        let mut responses = Responses::default();
        let expires_at = now.timestamp() + self.config.window_secs();
        for finding in findings.iter_mut() {
            let mode = self.config.response.mode(finding.rule);
            if mode == ResponseMode::Off {
                continue;
            }
            let claim_id = format!("{}@response", finding.id);
            match self
                .store
                .claim_alert(&claim_id, now, CLAIM_LEASE_SECS, expires_at)
                .await?
            {
                Claim::AlreadySent => {
                    finding.response = Some(ResponseReport {
                        mode,
                        actions: Vec::new(),
                        note: Some(EARLIER_ATTEMPT_NOTE.to_owned()),
                    });
                    responses.already_responded.push(finding.id.clone());
                }
                Claim::HeldByOther => responses.held_by_other.push(finding.id.clone()),
                Claim::Won => {
                    let chain = self.chain_of(finding).await?;
                    finding.response = self.run_plan(finding, &chain, responder, now).await;
                    responses.responded.push(finding.id.clone());
                }
            }
        }
        Ok(responses)
    }

    /// Records the responses this caller made as done, once it has tried delivering them
    /// (whether or not delivery succeeded): no retry or racer acts on those findings again.
    /// Call it after the last sink; a caller that dies before leaves the claims to lapse after
    /// their lease, and the retry acts again on a fresh re-read.
    pub async fn settle(&self, responses: &Responses) -> Result<(), EngineError> {
        for id in &responses.responded {
            self.store
                .mark_alert_sent(&format!("{id}@response"))
                .await?;
        }
        Ok(())
    }

    /// The observations stored under the finding's resources that are still part of its chain.
    async fn chain_of(&self, finding: &Finding) -> Result<Vec<Observation>, EngineError> {
        // Every fact of the chain expires a window after its event, and no event is older than
        // `first_seen`: read as of just before it, so a late event's chain is still whole.
        let as_of = finding
            .first_seen
            .checked_sub_signed(Duration::seconds(1))
            .unwrap_or(finding.first_seen);
        let stored = self.store.load_facts(&finding.resources, as_of).await?;
        let mut chain = Vec::new();
        for resource in &stored {
            for fact in &resource.facts {
                chain.push(decode_stored::<Observation>(&resource.resource, fact)?);
            }
        }
        Ok(chain)
    }

    async fn run_plan<R: Responder>(
        &self,
        finding: &Finding,
        chain: &[Observation],
        responder: &R,
        now: DateTime<Utc>,
    ) -> Option<ResponseReport> {
        let plan = plan(finding, chain, &self.config)?;
        let mut actions = Vec::with_capacity(plan.actions.len());
        for action in &plan.actions {
            let request = ResponseRequest {
                action,
                mode: plan.mode,
                exempt_tag: &self.config.response.exempt_tag,
                finding_time: finding.last_seen,
            };
            let (result, reason) = match responder.execute(request).await {
                Ok(outcome) => (outcome.result, outcome.reason),
                Err(err) => {
                    tracing::error!(finding = %finding.id, responder = responder.name(), error = %err, "response action failed");
                    (ActionResult::Failed, Some(err.reason()))
                }
            };
            actions.push(ActionReport {
                call: action.call().to_owned(),
                target: action.target().to_owned(),
                change: action.change(),
                result,
                reason,
                at: now,
            });
        }
        // Left alone because someone else re-added it after the chain's event: no call made.
        for skip in &plan.skipped {
            actions.push(ActionReport {
                call: skip.action.call().to_owned(),
                target: skip.action.target().to_owned(),
                change: skip.action.change(),
                result: ActionResult::SkippedChanged,
                reason: Some(skip.reason.clone()),
                at: now,
            });
        }
        let note = actions.is_empty().then(|| NOTHING_TO_UNDO_NOTE.to_owned());
        Some(ResponseReport {
            mode: plan.mode,
            actions,
            note,
        })
    }
}

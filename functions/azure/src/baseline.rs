//! The scheduled snapshot baseline on Azure: the `Baseline` timer function lists every
//! configured subscription's managed disks, snapshots and Compute Galleries
//! (`snapwatch-azure-inventory`), compares them with the chain state (core `baseline::check`),
//! delivers, and only then records what was seen (`baseline::commit`), so a failed delivery is
//! found again by the next run.
//!
//! Reruns are idempotent (facts keyed by content, alert claims per finding and sink). A
//! subscription that fails does not stop the others; the run then answers 500, which the host
//! logs as a failed run, and the next tick tries again.

use crate::handler::{error_chain, Alerts, InvocationResult};
use crate::identity::{ManagedIdentity, TokenError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use snapwatch_azure_inventory::{ArmLister, InventoryError, TokenSource, ARM_RESOURCE};
use snapwatch_core::baseline::{self, BaselineStats};
use snapwatch_core::engine::{Detector, EngineError};
use snapwatch_core::ports::{AlertSink, Clock, StateStore};
use snapwatch_http::{Class, Failure};
use std::sync::Arc;
use tracing::Instrument;

/// The timer function's (folder's) name: the host calls `/Baseline`.
pub const BASELINE_FUNCTION: &str = "Baseline";

/// Everything a baseline run needs, built once by `main` (or by a test).
pub struct BaselineState<S, K, T> {
    /// The detector over the same table as the event functions.
    pub detector: Detector<S>,
    /// The ARM listing.
    pub lister: ArmLister<T>,
    /// `SNAPWATCH_BASELINE_SUBSCRIPTIONS`: empty means the function is not configured.
    pub subscriptions: Vec<String>,
    /// Where findings go (Slack in Azure).
    pub alerts: Alerts<K>,
    /// The run's time.
    pub clock: Arc<dyn Clock>,
}

/// What one run did, per subscription: the function's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineOutcome {
    /// One entry per subscription checked.
    pub subscriptions: Vec<SubscriptionOutcome>,
}

/// What the run saw and sent for one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionOutcome {
    /// The subscription id.
    pub subscription: String,
    /// Disks, snapshots and galleries listed.
    pub items: usize,
    /// Listed elements that could not be read (logged with their reason).
    pub rejected: usize,
    /// Requests sent to Resource Manager, retries included.
    pub requests: u64,
    /// No earlier completed listing: everything was only recorded.
    pub first_run: bool,
    /// Not seen by the previous listing.
    pub new_items: usize,
    /// Export state differs from the previous listing.
    pub changed_items: usize,
    /// Exposures (an open export reachable from any network) no received event explains.
    pub exposures_found_by_baseline: usize,
    /// `snapshot.unexplained` findings.
    pub unexplained: usize,
    /// Ids of the findings this listing yields (already alerted ones included).
    pub findings: Vec<String>,
    /// Ids delivered by this run.
    pub sent: Vec<String>,
}

/// Why a run (or one subscription of it) failed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// `SNAPWATCH_BASELINE_SUBSCRIPTIONS` is unset: nothing to list.
    #[error("the baseline has no subscription to list (set SNAPWATCH_BASELINE_SUBSCRIPTIONS)")]
    NotConfigured,
    /// The listing failed.
    #[error("cannot list disks, snapshots and galleries of {subscription}")]
    Listing {
        /// The subscription.
        subscription: String,
        /// Why.
        #[source]
        source: InventoryError,
    },
    /// The state store failed.
    #[error("chain state for {subscription}")]
    Engine {
        /// The subscription.
        subscription: String,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// Findings could not be delivered: nothing was recorded, the next run finds them again.
    #[error("{pending} finding(s) of {subscription} not delivered: {reason}")]
    Undelivered {
        /// The subscription.
        subscription: String,
        /// Findings left to send.
        pending: usize,
        /// The first failure.
        reason: String,
    },
    /// Some subscriptions were checked, these were not; the first failure is the source.
    #[error("{} subscription(s) could not be checked ({})", failed.len(), failed.join(", "))]
    Incomplete {
        /// The failed subscriptions.
        failed: Vec<String>,
        /// The first failure.
        #[source]
        first: Box<BaselineError>,
    },
}

impl<S, K, T> BaselineState<S, K, T>
where
    S: StateStore,
    K: AlertSink,
    T: TokenSource,
{
    /// One scheduled run over every configured subscription.
    pub async fn run(&self) -> Result<BaselineOutcome, BaselineError> {
        if self.subscriptions.is_empty() {
            return Err(BaselineError::NotConfigured);
        }
        let now = self.clock.now();
        let mut subscriptions = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for subscription in &self.subscriptions {
            let span = tracing::info_span!("subscription", subscription = %subscription);
            match self.subscription(subscription, now).instrument(span).await {
                Ok(outcome) => {
                    tracing::info!(
                        subscription = %subscription,
                        items = outcome.items,
                        rejected = outcome.rejected,
                        requests = outcome.requests,
                        first_run = outcome.first_run,
                        exposures = outcome.exposures_found_by_baseline,
                        unexplained = outcome.unexplained,
                        findings = ?outcome.findings,
                        sent = ?outcome.sent,
                        "subscription checked"
                    );
                    subscriptions.push(outcome);
                }
                Err(err) => {
                    tracing::error!(subscription = %subscription, error = %error_chain(&err), "subscription not checked");
                    failed.push(subscription.clone());
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            None => Ok(BaselineOutcome { subscriptions }),
            Some(first) => Err(BaselineError::Incomplete {
                failed,
                first: Box::new(first),
            }),
        }
    }

    async fn subscription(
        &self,
        subscription: &str,
        now: DateTime<Utc>,
    ) -> Result<SubscriptionOutcome, BaselineError> {
        let listing = self
            .lister
            .list_subscription(subscription, now)
            .await
            .map_err(|source| BaselineError::Listing {
                subscription: subscription.to_owned(),
                source,
            })?;
        let engine = |source: EngineError| BaselineError::Engine {
            subscription: subscription.to_owned(),
            source,
        };
        let check = baseline::check(&self.detector, &listing.inventory, now)
            .await
            .map_err(engine)?;
        let mut sent = Vec::new();
        match &self.alerts {
            Alerts::Sink(sink) => {
                let delivery = self
                    .detector
                    .deliver(&check.findings, sink, now)
                    .await
                    .map_err(engine)?;
                sent = delivery.sent;
                if let Some((_, first)) = delivery.retry.first() {
                    // Not committed: the next run sees the same changes, claims send each once.
                    return Err(BaselineError::Undelivered {
                        subscription: subscription.to_owned(),
                        pending: delivery.retry.len(),
                        reason: first.to_string(),
                    });
                }
            }
            Alerts::LogOnly => {
                for finding in &check.findings {
                    tracing::warn!(finding = %finding.id, rule = %finding.rule, title = %finding.title, "finding (no alert destination configured)");
                }
            }
            Alerts::Unusable(reason) if !check.findings.is_empty() => {
                return Err(BaselineError::Undelivered {
                    subscription: subscription.to_owned(),
                    pending: check.findings.len(),
                    reason: reason.clone(),
                });
            }
            Alerts::Unusable(_) => {}
        }
        baseline::commit(&self.detector, &check)
            .await
            .map_err(engine)?;
        let BaselineStats {
            items,
            first_run,
            new_items,
            changed_items,
            exposures_found_by_baseline,
            unexplained,
            ..
        } = check.stats;
        Ok(SubscriptionOutcome {
            subscription: subscription.to_owned(),
            items,
            rejected: listing.rejected.len(),
            requests: listing.requests,
            first_run,
            new_items,
            changed_items,
            exposures_found_by_baseline,
            unexplained,
            findings: check.findings.iter().map(|f| f.id.clone()).collect(),
            sent,
        })
    }
}

/// The `Baseline` route, merged into the handler's router by `main`.
pub fn router<S, K, T>(state: Arc<BaselineState<S, K, T>>) -> Router
where
    S: StateStore + 'static,
    K: AlertSink + 'static,
    T: TokenSource + 'static,
{
    Router::new()
        .route(&format!("/{BASELINE_FUNCTION}"), post(invoke::<S, K, T>))
        .with_state(state)
}

/// The timer's invocation: its body (schedule status) is not needed.
async fn invoke<S, K, T>(State(state): State<Arc<BaselineState<S, K, T>>>) -> Response
where
    S: StateStore + 'static,
    K: AlertSink + 'static,
    T: TokenSource + 'static,
{
    match state.run().await {
        Ok(outcome) => {
            let log = serde_json::to_string(&outcome).unwrap_or_default();
            Json(InvocationResult {
                outputs: Map::new(),
                logs: vec![format!("baseline done: {log}")],
                return_value: Value::Null,
            })
            .into_response()
        }
        Err(err) => {
            let reason = error_chain(&err);
            tracing::error!(error = %reason, "baseline run failed; the next run tries again");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(InvocationResult {
                    outputs: Map::new(),
                    logs: vec![format!("baseline failed: {reason}")],
                    return_value: Value::Null,
                }),
            )
                .into_response()
        }
    }
}

/// Resource Manager tokens from the function's managed identity; `None` (run locally without
/// one) refuses every request with the reason.
#[derive(Debug, Clone)]
pub struct IdentityTokens(pub Option<Arc<ManagedIdentity>>);

impl TokenSource for IdentityTokens {
    async fn token(&self) -> Result<String, Failure> {
        let Some(identity) = &self.0 else {
            return Err(Failure::permanent(
                "no managed identity (IDENTITY_ENDPOINT and IDENTITY_HEADER are not set)",
            ));
        };
        identity.token(ARM_RESOURCE).await.map_err(|e: TokenError| {
            let class = snapwatch_http::Classify::class(&e);
            let failure = match class {
                Class::Transient => Failure::transient("managed identity token unavailable"),
                Class::Permanent => Failure::permanent("managed identity token refused"),
            };
            failure.with_source(e)
        })
    }
}

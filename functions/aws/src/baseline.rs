//! The scheduled snapshot baseline: list every configured region's snapshots, DB snapshots and
//! images with their permissions, compare with the chain state (core `baseline::check`), deliver,
//! then record what was seen (`baseline::commit`).
//!
//! Reruns are idempotent (facts keyed by content, alert claims per finding and sink), so any
//! failure returns an error and the scheduler's retry simply runs the check again.

use crate::handler::{deliver, diagnostic, SessionStore};
use crate::securityhub::SecurityHubSink;
use chrono::{DateTime, Utc};
use serde::Serialize;
use snapwatch_aws_inventory::{InventoryError, SnapshotLister};
use snapwatch_core::baseline::{self, BaselineStats};
use snapwatch_core::engine::{Detector, EngineError};
use snapwatch_core::ports::{AlertSink, Clock, SinkError};
use snapwatch_core::Config;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument;

/// Everything a baseline run needs, built once by `main` (or by a test).
pub struct BaselineApp<St, Sn, Sl> {
    pub store: St,
    pub config: Config,
    pub lister: SnapshotLister,
    pub regions: Vec<String>,
    pub sns: Option<Sn>,
    pub slack: Option<Sl>,
    /// Imports findings into Security Hub when `SNAPWATCH_SECURITYHUB=on`.
    pub securityhub: Option<SecurityHubSink>,
    pub clock: Arc<dyn Clock>,
}

/// What one run did: the function's response (and its log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineOutcome {
    pub account: String,
    pub regions: Vec<RegionOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionOutcome {
    pub region: String,
    /// Snapshots, DB snapshots, DB cluster snapshots and images listed.
    pub items: usize,
    pub first_run: bool,
    pub new_items: usize,
    pub changed_items: usize,
    pub exposures_found_by_baseline: usize,
    pub unexplained: usize,
    /// Ids of the findings this listing yields (already alerted ones included).
    pub findings: Vec<String>,
    /// Finding ids delivered by this run, per sink.
    pub sent: BTreeMap<&'static str, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot list snapshots in {region}: {source}")]
    Listing {
        region: String,
        #[source]
        source: InventoryError,
    },
    #[error("cannot read the account id: {0}")]
    Account(#[source] InventoryError),
    #[error("chain state in {region}: {source}")]
    Engine {
        region: String,
        #[source]
        source: EngineError,
    },
    #[error("alert delivery failed transiently in {region} for {pending} finding(s)")]
    SinkUnavailable {
        region: String,
        pending: usize,
        #[source]
        first: SinkError,
    },
    /// Some regions were checked, these were not; the first failure is the source.
    #[error("{} of {checked_and_failed} region(s) could not be checked ({})", failed.len(), failed.join(", "))]
    Incomplete {
        failed: Vec<String>,
        checked_and_failed: usize,
        #[source]
        first: Box<BaselineError>,
    },
}

impl BaselineError {
    /// Stable Lambda `errorType` values, as the event function's.
    pub fn error_type(&self) -> &'static str {
        match self {
            BaselineError::Listing { source, .. } | BaselineError::Account(source)
                if source.is_retryable() =>
            {
                "ListingUnavailable"
            }
            BaselineError::Listing { .. } | BaselineError::Account(_) => "ListingFailed",
            BaselineError::Engine { source, .. } if source.is_retryable() => "StoreUnavailable",
            BaselineError::Engine { .. } => "StoreFailed",
            BaselineError::SinkUnavailable { .. } => "SinkUnavailable",
            BaselineError::Incomplete { first, .. } => first.error_type(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            BaselineError::Listing { source, .. } | BaselineError::Account(source) => {
                source.is_retryable()
            }
            BaselineError::Engine { source, .. } => source.is_retryable(),
            BaselineError::SinkUnavailable { .. } => true,
            BaselineError::Incomplete { first, .. } => first.is_retryable(),
        }
    }
}

impl From<BaselineError> for lambda_runtime::Diagnostic {
    fn from(err: BaselineError) -> Self {
        diagnostic(&err, err.error_type())
    }
}

impl<St, Sn, Sl> BaselineApp<St, Sn, Sl>
where
    St: SessionStore,
    Sn: AlertSink,
    Sl: AlertSink,
{
    /// One scheduled run over every configured region. A region that fails does not stop the
    /// others; the run then ends in an error naming the failed regions, so it is retried.
    pub async fn run(&self) -> Result<BaselineOutcome, BaselineError> {
        let now = self.clock.now();
        let first_region = self
            .regions
            .first()
            .map(String::as_str)
            .unwrap_or("us-east-1");
        let account = self
            .lister
            .account_id(first_region)
            .await
            .map_err(BaselineError::Account)?;
        let mut regions = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for region in &self.regions {
            let span = tracing::info_span!("region", region = %region);
            match self.region(&account, region, now).instrument(span).await {
                Ok(outcome) => {
                    tracing::info!(
                        region = %region,
                        items = outcome.items,
                        first_run = outcome.first_run,
                        new_items = outcome.new_items,
                        changed_items = outcome.changed_items,
                        exposures = outcome.exposures_found_by_baseline,
                        unexplained = outcome.unexplained,
                        findings = ?outcome.findings,
                        sent = ?outcome.sent,
                        "region checked"
                    );
                    regions.push(outcome);
                }
                Err(err) => {
                    tracing::error!(region = %region, error = %err, error_type = err.error_type(), "region not checked");
                    failed.push(region.clone());
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            None => Ok(BaselineOutcome { account, regions }),
            Some(first) => Err(BaselineError::Incomplete {
                failed,
                checked_and_failed: self.regions.len(),
                first: Box::new(first),
            }),
        }
    }

    async fn region(
        &self,
        account: &str,
        region: &str,
        now: DateTime<Utc>,
    ) -> Result<RegionOutcome, BaselineError> {
        let inventory = self
            .lister
            .list_region(account, region, now)
            .await
            .map_err(|source| BaselineError::Listing {
                region: region.to_string(),
                source,
            })?;
        let engine = |source: EngineError| BaselineError::Engine {
            region: region.to_string(),
            source,
        };
        let detector = Detector::new(self.store.session(), self.config.clone());
        let check = baseline::check(&detector, &inventory, now)
            .await
            .map_err(engine)?;
        let mut sent = BTreeMap::new();
        let mut retry: Vec<SinkError> = Vec::new();
        if let Some(sns) = &self.sns {
            deliver(&detector, &check.findings, sns, now, &mut sent, &mut retry)
                .await
                .map_err(engine)?;
        }
        if let Some(slack) = &self.slack {
            deliver(
                &detector,
                &check.findings,
                slack,
                now,
                &mut sent,
                &mut retry,
            )
            .await
            .map_err(engine)?;
        }
        if let Some(hub) = &self.securityhub {
            deliver(&detector, &check.findings, hub, now, &mut sent, &mut retry)
                .await
                .map_err(engine)?;
        }
        let pending = retry.len();
        if let Some(first) = retry.into_iter().next() {
            // Not committed: the retry sees the same changes and claims send each alert once.
            return Err(BaselineError::SinkUnavailable {
                region: region.to_string(),
                pending,
                first,
            });
        }
        baseline::commit(&detector, &check).await.map_err(engine)?;
        let BaselineStats {
            items,
            first_run,
            new_items,
            changed_items,
            exposures_found_by_baseline,
            unexplained,
            ..
        } = check.stats;
        Ok(RegionOutcome {
            region: region.to_string(),
            items,
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

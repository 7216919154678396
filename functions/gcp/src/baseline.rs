//! The scheduled snapshot baseline on Cloud Run: Cloud Scheduler `POST`s `/baseline` (with an
//! OIDC token of its own service account, which Cloud Run verifies before the request reaches
//! the container, since the service does not allow unauthenticated calls); each configured
//! project's snapshots, images, machine images and disks are listed with their IAM policies
//! (`snapwatch-gcp-inventory`), compared with the chain state (core `baseline::check`),
//! delivered, then recorded (`baseline::commit`).
//!
//! Reruns are idempotent (facts keyed by content, alert claims per finding), so any failure
//! answers an error status and Cloud Scheduler's retry simply runs the check again.

use crate::firestore::FirestoreClient;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use snapwatch_core::baseline::{self, BaselineStats};
use snapwatch_core::engine::{Detector, EngineError};
use snapwatch_core::ports::{AlertSink, Clock, SinkError, StateStore};
use snapwatch_gcp_inventory::{ComputeLister, InventoryError, TokenSource};
use snapwatch_http::{error_chain, AccessToken, Failure};
use std::sync::Arc;

/// The service account's metadata-server token, from the Firestore client's cache: the one
/// token path of the service (it honours `GCE_METADATA_HOST`).
#[derive(Debug, Clone)]
pub struct ServiceToken(pub Arc<FirestoreClient>);

impl TokenSource for ServiceToken {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        self.0.access_token().await.map_err(|e| {
            let failure = if e.is_retryable() {
                Failure::transient("no metadata-server token")
            } else {
                Failure::permanent("no metadata-server token")
            };
            failure.with_source(e)
        })
    }
}

/// Everything a baseline run needs, built once by `main` (or by a test).
pub struct BaselineApp<S, K, T> {
    /// The detector over the service's state store.
    pub detector: Detector<S>,
    /// The Compute Engine listing.
    pub lister: ComputeLister<T>,
    /// The projects listed, each its own baseline scope.
    pub projects: Vec<String>,
    /// `None`: no alert destination; findings are only logged.
    pub slack: Option<K>,
    /// The run's time.
    pub clock: Box<dyn Clock>,
}

/// What one run did: the response body (and its log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineOutcome {
    /// One entry per project checked.
    pub projects: Vec<ProjectOutcome>,
}

/// What the run saw in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectOutcome {
    /// The project.
    pub project: String,
    /// Snapshots, images, machine images and disks listed.
    pub items: usize,
    /// No earlier run of this project is on record: everything was only recorded.
    pub first_run: bool,
    /// Not seen by the previous run.
    pub new_items: usize,
    /// IAM members changed since the previous run.
    pub changed_items: usize,
    /// Exposures no received event explains.
    pub exposures_found_by_baseline: usize,
    /// `snapshot.unexplained` findings.
    pub unexplained: usize,
    /// Ids of the findings this listing yields (already alerted ones included).
    pub findings: Vec<String>,
    /// Ids delivered by this run.
    pub sent: Vec<String>,
}

/// Why a run (or one project of it) did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The listing failed.
    #[error("cannot list project {project}")]
    Listing {
        /// The project.
        project: String,
        /// What failed.
        #[source]
        source: InventoryError,
    },
    /// The state store failed.
    #[error("chain state for project {project}")]
    Engine {
        /// The project.
        project: String,
        /// What failed.
        #[source]
        source: EngineError,
    },
    /// Some alert could not be sent yet: the run is not recorded, so the retry finds it again.
    #[error("alert delivery failed transiently for project {project} ({pending} finding(s))")]
    SinkUnavailable {
        /// The project.
        project: String,
        /// Findings left to send.
        pending: usize,
        /// The first failure.
        #[source]
        first: SinkError,
    },
    /// Some projects were checked, these were not; the first failure is the source.
    #[error("{} of {of} project(s) could not be checked ({})", failed.len(), failed.join(", "))]
    Incomplete {
        /// Projects not checked.
        failed: Vec<String>,
        /// Projects configured.
        of: usize,
        /// The first failure.
        #[source]
        first: Box<BaselineError>,
    },
}

impl BaselineError {
    /// Whether Cloud Scheduler's retry can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            BaselineError::Listing { source, .. } => source.is_retryable(),
            BaselineError::Engine { source, .. } => source.is_retryable(),
            BaselineError::SinkUnavailable { .. } => true,
            BaselineError::Incomplete { first, .. } => first.is_retryable(),
        }
    }
}

impl<S, K, T> BaselineApp<S, K, T>
where
    S: StateStore,
    K: AlertSink,
    T: TokenSource,
{
    /// One scheduled run over every configured project. A project that fails does not stop the
    /// others; the run then ends in an error naming the failed projects, so it is retried.
    pub async fn run(&self) -> Result<BaselineOutcome, BaselineError> {
        let mut projects = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for project in &self.projects {
            match self.project(project).await {
                Ok(outcome) => {
                    tracing::info!(
                        project = %project,
                        items = outcome.items,
                        first_run = outcome.first_run,
                        new_items = outcome.new_items,
                        changed_items = outcome.changed_items,
                        exposures = outcome.exposures_found_by_baseline,
                        unexplained = outcome.unexplained,
                        findings = ?outcome.findings,
                        sent = ?outcome.sent,
                        "project checked"
                    );
                    projects.push(outcome);
                }
                Err(err) => {
                    tracing::error!(project = %project, error = %error_chain(&err), retryable = err.is_retryable(), "project not checked");
                    failed.push(project.clone());
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            None => Ok(BaselineOutcome { projects }),
            Some(first) => Err(BaselineError::Incomplete {
                failed,
                of: self.projects.len(),
                first: Box::new(first),
            }),
        }
    }

    async fn project(&self, project: &str) -> Result<ProjectOutcome, BaselineError> {
        let now = self.clock.now();
        let inventory = self
            .lister
            .list_project(project, now)
            .await
            .map_err(|source| BaselineError::Listing {
                project: project.to_string(),
                source,
            })?;
        let engine = |source: EngineError| BaselineError::Engine {
            project: project.to_string(),
            source,
        };
        let check = baseline::check(&self.detector, &inventory, now)
            .await
            .map_err(engine)?;
        let mut sent = Vec::new();
        if let Some(slack) = &self.slack {
            let delivery = self
                .detector
                .deliver(&check.findings, slack, now)
                .await
                .map_err(engine)?;
            sent = delivery.sent.clone();
            let pending = delivery.retry.len();
            if let Some((_, first)) = delivery.retry.into_iter().next() {
                // Not recorded: the retry sees the same changes and claims send each alert once.
                return Err(BaselineError::SinkUnavailable {
                    project: project.to_string(),
                    pending,
                    first,
                });
            }
        }
        for finding in &check.findings {
            tracing::info!(finding = %finding.id, rule = %finding.rule, severity = %finding.severity, "baseline finding");
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
        Ok(ProjectOutcome {
            project: project.to_string(),
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

/// The route Cloud Scheduler calls: `POST /baseline`. 200 with the outcome; 503 when a retry
/// can succeed (throttled, store or Slack unavailable), 500 when it cannot (permissions,
/// malformed answers): Cloud Scheduler retries both per its retry config, and the 500 stays
/// visible in the job's status until the deployment is fixed.
pub fn routes<S, K, T>(app: Arc<BaselineApp<S, K, T>>) -> Router
where
    S: StateStore + 'static,
    K: AlertSink + 'static,
    T: TokenSource + 'static,
{
    Router::new()
        .route("/baseline", post(run_baseline::<S, K, T>))
        .with_state(app)
}

async fn run_baseline<S, K, T>(State(app): State<Arc<BaselineApp<S, K, T>>>) -> Response
where
    S: StateStore + 'static,
    K: AlertSink + 'static,
    T: TokenSource + 'static,
{
    match app.run().await {
        Ok(outcome) => (StatusCode::OK, Json(outcome)).into_response(),
        Err(err) => {
            let status = if err.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let body = json!({ "outcome": "failed", "retryable": err.is_retryable(), "reason": error_chain(&err) });
            (status, Json(body)).into_response()
        }
    }
}

//! Cloud Run entry point: init only (settings, clients, JSON tracing), then serve the router.

use anyhow::Context;
use snapwatch_core::engine::Detector;
use snapwatch_core::ports::SystemClock;
use snapwatch_gcp::baseline::{self, BaselineApp, ServiceToken};
use snapwatch_gcp::firestore::FirestoreStore;
use snapwatch_gcp::respond::ComputeResponder;
use snapwatch_gcp::service::{app, Service};
use snapwatch_gcp::settings::Settings;
use snapwatch_gcp_inventory::ComputeLister;
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    // Cloud Logging keeps the JSON line; the variable is a field of its own to filter on.
    let settings = Settings::from_lookup(|name| std::env::var(name).ok()).inspect_err(|e| {
        tracing::error!(variable = %e.name, error = %e, "invalid setting: the service cannot start");
    })?;
    let store = FirestoreStore::new(settings.firestore.clone(), settings.collections.clone())
        .context("Firestore client")?;
    let slack = match &settings.slack_webhook_url {
        Some(url) => Some(
            SlackSink::new(
                WebhookUrl::parse(url.expose()).context("SNAPWATCH_SLACK_WEBHOOK_URL")?,
                RetryPolicy::default(),
            )
            .context("Slack client")?,
        ),
        None => {
            tracing::warn!("SNAPWATCH_SLACK_WEBHOOK_URL is not set: findings are only logged");
            None
        }
    };
    let mut router = None;
    if !settings.baseline_projects.is_empty() {
        let lister = ComputeLister::new(&settings.compute_endpoint, ServiceToken(store.client()))
            .context("Compute Engine client")?;
        let baseline = Arc::new(BaselineApp {
            detector: Detector::new(store.clone(), settings.detector.clone()),
            lister,
            projects: settings.baseline_projects.clone(),
            slack: slack.clone(),
            clock: Box::new(SystemClock),
        });
        tracing::info!(projects = ?settings.baseline_projects, "POST /baseline lists these projects");
        router = Some(baseline::routes(baseline));
    }
    // The opt-in response: none at all while every rule is off.
    let responder = if settings.detector.response.all_off() {
        None
    } else {
        tracing::info!(modes = ?settings.detector.response.modes, exempt_tag = %settings.detector.response.exempt_tag, "response enabled");
        Some(
            ComputeResponder::new(&settings.compute_endpoint, ServiceToken(store.client()))
                .context("Compute Engine client for the response")?,
        )
    };
    let service = Arc::new(Service {
        responder,
        rejects: store.clone(),
        detector: Detector::new(store, settings.detector.clone()),
        slack,
        clock: Box::new(SystemClock),
    });
    let app = match router {
        Some(baseline) => app(service).merge(baseline),
        None => app(service),
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", settings.port))
        .await
        .with_context(|| format!("cannot listen on port {}", settings.port))?;
    tracing::info!(port = settings.port, project = %settings.firestore.project, "snapwatch-gcp listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server")?;
    Ok(())
}

/// Cloud Run sends SIGTERM before stopping an instance: finish in-flight requests.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

//! Init only: settings from the environment (failing fast with the variable's name), clients,
//! JSON tracing; then the custom handler serves the Functions host on its port.

use anyhow::Context;
use snapwatch_azure::arm::ArmClient;
use snapwatch_azure::baseline::{self, BaselineState, IdentityTokens};
use snapwatch_azure::handler::{app, slack_sink, Alerts, AppState};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::respond::ArmResponder;
use snapwatch_azure::settings::{env, Settings, SlackSetting};
use snapwatch_azure::table::client::{TableAuth, TableClient};
use snapwatch_azure::table::TableStore;
use snapwatch_core::engine::Detector;
use snapwatch_core::ports::SystemClock;
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
    // The host shows stderr only as text; the log line is what Application Insights keeps.
    run().await.inspect_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "snapwatch custom handler cannot start");
    })
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("snapwatch-azure/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let identity = settings.identity.as_ref().map(|identity| {
        Arc::new(ManagedIdentity::new(
            http.clone(),
            identity.endpoint.clone(),
            identity.header.expose().clone(),
        ))
    });
    let auth = match (&settings.table_key, &identity) {
        (Some(key), _) => {
            TableAuth::shared_key(&settings.table_account, key.expose()).context(env::TABLE_KEY)?
        }
        (None, Some(identity)) => TableAuth::ManagedIdentity(identity.clone()),
        // Settings refuse this combination, naming IDENTITY_ENDPOINT.
        (None, None) => anyhow::bail!("{} or a managed identity is required", env::TABLE_KEY),
    };
    let table = TableClient::new(
        http.clone(),
        settings.table_endpoint.clone(),
        &settings.table_account,
        &settings.table_name,
        auth,
    )
    .context(env::TABLE_NAME)?;
    if settings.table_key.is_some() {
        // Local use (Azurite, a dev account): nothing else creates the table. In Azure the
        // identity may only touch rows of the table Terraform made.
        table
            .create_table()
            .await
            .context("creating the state table (SNAPWATCH_TABLE_NAME)")?;
    }
    let baseline_lister = snapwatch_azure_inventory::ArmLister::new(
        http.clone(),
        settings.arm_endpoint.clone(),
        IdentityTokens(identity.clone()),
    )
    // Half the invocation deadline for the listing's retries: the rest is for the state and
    // delivery, all before host.json's functionTimeout.
    .with_time_budget(settings.invocation_deadline / 2);
    // The opt-in response: none at all while every rule is off.
    let responder = (!settings.detector.response.all_off()).then(|| {
        tracing::info!(modes = ?settings.detector.response.modes, exempt_tag = %settings.detector.response.exempt_tag, "response enabled");
        ArmResponder::new(http.clone(), settings.arm_endpoint.clone(), identity.clone())
    });
    let reader = match identity {
        Some(identity) => ArmClient::new(http.clone(), settings.arm_endpoint.clone(), identity),
        None => {
            tracing::warn!(
                "no managed identity (IDENTITY_ENDPOINT/IDENTITY_HEADER unset): records that need \
                 a Resource Manager lookup are kept in rejects"
            );
            ArmClient::without_identity(http.clone(), settings.arm_endpoint.clone())
        }
    };
    // Slack that cannot be used disables Slack only: the chain state must keep being recorded,
    // and every finding is kept in rejects until Slack works (see settings.rs).
    let event_alerts = alerts(&settings);
    let store = TableStore::new(table);
    let baseline_state = Arc::new(BaselineState {
        detector: Detector::new(store.clone(), settings.detector.clone()),
        lister: baseline_lister,
        subscriptions: settings.baseline_subscriptions.clone(),
        alerts: match &event_alerts {
            Alerts::Sink(sink) => Alerts::Sink(sink.clone()),
            Alerts::LogOnly => Alerts::LogOnly,
            Alerts::Unusable(reason) => Alerts::Unusable(reason.clone()),
        },
        clock: Arc::new(SystemClock),
    });
    let state = Arc::new(AppState {
        // The purge works on the detector's own table: Table Storage has no TTL to do it.
        purger: store.clone(),
        purge_max_rows: settings.purge_max_rows,
        detector: Detector::new(store, settings.detector.clone()),
        reader,
        alerts: event_alerts,
        clock: Arc::new(SystemClock),
        retry: settings.retry,
        deadline: settings.invocation_deadline,
        responder,
    });

    // The host talks to the handler over loopback only.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], settings.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} ({})", env::PORT))?;
    tracing::info!(%address, table = %settings.table_name, deadline_secs = settings.invocation_deadline.as_secs(), "snapwatch custom handler listening");
    axum::serve(listener, app(state).merge(baseline::router(baseline_state)))
        .await
        .context("serving the custom handler")?;
    Ok(())
}

/// Where findings go, as the settings say (logged once at start).
fn alerts(settings: &Settings) -> Alerts<snapwatch_slack::SlackSink> {
    match &settings.slack {
        SlackSetting::Webhook(webhook) => match slack_sink(webhook.clone()) {
            Ok(sink) => Alerts::Sink(sink),
            Err(e) => {
                let reason = format!("the Slack client cannot be built: {e}");
                tracing::error!(%reason, "Slack is disabled");
                Alerts::Unusable(reason)
            }
        },
        SlackSetting::Unset => {
            tracing::warn!(
                "Slack is not configured ({} unset): findings are logged, not sent",
                env::SLACK_WEBHOOK_URL
            );
            Alerts::LogOnly
        }
        SlackSetting::Unusable(reason) => {
            tracing::error!(
                %reason,
                "Slack is disabled: findings are kept in the rejects blob (kind undelivered) \
                 until it works; chain state is recorded as usual"
            );
            Alerts::Unusable(reason.clone())
        }
    }
}

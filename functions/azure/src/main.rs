//! Init only: settings from the environment (failing fast with the variable's name), clients,
//! JSON tracing; then the custom handler serves the Functions host on its port.

use anyhow::Context;
use snapwatch_azure::arm::ArmClient;
use snapwatch_azure::handler::{app, AppState};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::settings::Settings;
use snapwatch_azure::table::client::{TableAuth, TableClient};
use snapwatch_azure::table::TableStore;
use snapwatch_core::engine::Detector;
use snapwatch_core::ports::SystemClock;
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

    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("snapwatch-azure/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        settings.identity.endpoint.clone(),
        settings.identity.header.clone(),
    ));
    let auth = match &settings.table_key {
        Some(key) => {
            TableAuth::shared_key(&settings.table_account, key).context("SNAPWATCH_TABLE_KEY")?
        }
        None => TableAuth::ManagedIdentity(identity.clone()),
    };
    let table = TableClient::new(
        http.clone(),
        settings.table_endpoint.clone(),
        &settings.table_account,
        &settings.table_name,
        auth,
    )
    .context("SNAPWATCH_TABLE_NAME")?;
    if settings.table_key.is_some() {
        // Local use (Azurite, a dev account): nothing else creates the table. In Azure the
        // identity may only touch rows of the table Terraform made.
        table
            .create_table()
            .await
            .context("creating the state table (SNAPWATCH_TABLE_NAME)")?;
    }
    let webhook =
        WebhookUrl::parse(&settings.slack_webhook_url).context("SNAPWATCH_SLACK_WEBHOOK_URL")?;
    let sink = SlackSink::new(webhook, RetryPolicy::default()).context("Slack sink")?;
    let store = TableStore::new(table);
    let state = Arc::new(AppState {
        // The purge works on the detector's own table: Table Storage has no TTL to do it.
        purger: store.clone(),
        purge_max_rows: settings.purge_max_rows,
        detector: Detector::new(store, settings.detector.clone()),
        reader: ArmClient::new(http, settings.arm_endpoint.clone(), identity),
        sink,
        clock: Arc::new(SystemClock),
        retry: settings.retry,
    });

    // The host talks to the handler over loopback only.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], settings.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} (FUNCTIONS_CUSTOMHANDLER_PORT)"))?;
    tracing::info!(%address, table = %settings.table_name, "snapwatch custom handler listening");
    axum::serve(listener, app(state))
        .await
        .context("serving the custom handler")?;
    Ok(())
}

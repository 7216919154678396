//! No credential reaches `Debug` output: every settings and client struct is built through its
//! public constructor with recognisable secret values (and the identity's token cache filled
//! from a local stand-in for the Functions identity endpoint), then formatted with `{:?}` and
//! `{:#?}`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;
use snapwatch_azure::arm::{ArmClient, ARM_RESOURCE};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::settings::{env, Settings};
use snapwatch_azure::table::client::{TableAuth, TableClient};
use snapwatch_azure::table::TableStore;
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};
use std::collections::HashMap;
use std::sync::Arc;

const TOKEN: &str = "TOKEN-SECRET-4f1c";
const IDENTITY_HEADER: &str = "IDENTITY-HEADER-SECRET-77ab";
const WEBHOOK_PART: &str = "WEBHOOK-SECRET-9d2e";
const TABLE_KEY_TEXT: &str = "TABLE-KEY-SECRET-31c0";

/// Every secret in the forms it could be printed in.
fn secrets() -> Vec<String> {
    let key_base64 = base64::engine::general_purpose::STANDARD.encode(TABLE_KEY_TEXT);
    vec![
        TOKEN.into(),
        IDENTITY_HEADER.into(),
        WEBHOOK_PART.into(),
        TABLE_KEY_TEXT.into(),
        key_base64,
        // The key's bytes as a derived `Vec<u8>` would print them.
        format!("{:?}", TABLE_KEY_TEXT.as_bytes()),
    ]
}

fn assert_hides_secrets(what: &str, value: &impl std::fmt::Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        for secret in secrets() {
            assert!(!shown.contains(&secret), "{what} prints {secret}: {shown}");
        }
    }
}

/// A stand-in identity endpoint that hands out [`TOKEN`].
async fn identity_endpoint() -> String {
    let router = Router::new().route(
        "/msi/token",
        get(|| async {
            Json(json!({
                "access_token": TOKEN,
                "expires_on": (chrono::Utc::now().timestamp() + 3600).to_string(),
                "token_type": "Bearer"
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn settings_and_clients_print_no_secret() {
    let base = identity_endpoint().await;
    let webhook = format!("https://hooks.slack.com/services/T0/B0/{WEBHOOK_PART}");
    let key_base64 = base64::engine::general_purpose::STANDARD.encode(TABLE_KEY_TEXT);
    let vars: HashMap<&str, String> = HashMap::from([
        (
            env::TABLE_ENDPOINT,
            "http://127.0.0.1:1/devstoreaccount1".into(),
        ),
        (env::TABLE_KEY, key_base64.clone()),
        (env::IDENTITY_ENDPOINT, format!("{base}/msi/token")),
        (env::IDENTITY_HEADER, IDENTITY_HEADER.into()),
        (env::SLACK_WEBHOOK_URL, webhook.clone()),
    ]);
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    assert_hides_secrets("Settings", &settings);

    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        reqwest::Url::parse(&format!("{base}/msi/token")).unwrap(),
        IDENTITY_HEADER,
    ));
    // Fill the token cache: what is cached must not print either.
    assert_eq!(identity.token(ARM_RESOURCE).await.unwrap(), TOKEN);
    assert_hides_secrets("ManagedIdentity", &identity);

    let arm = ArmClient::new(
        http.clone(),
        reqwest::Url::parse("http://127.0.0.1:1").unwrap(),
        identity.clone(),
    );
    assert_hides_secrets("ArmClient", &arm);

    let endpoint = reqwest::Url::parse("http://127.0.0.1:1/devstoreaccount1").unwrap();
    for auth in [
        TableAuth::shared_key("devstoreaccount1", &key_base64).unwrap(),
        TableAuth::ManagedIdentity(identity.clone()),
    ] {
        assert_hides_secrets("TableAuth", &auth);
        let table = TableClient::new(
            http.clone(),
            endpoint.clone(),
            "devstoreaccount1",
            "snapwatch",
            auth,
        )
        .unwrap();
        assert_hides_secrets("TableClient", &table);
        assert_hides_secrets("TableStore", &TableStore::new(table));
    }

    let slack = SlackSink::new(WebhookUrl::parse(&webhook).unwrap(), RetryPolicy::default());
    assert_hides_secrets("SlackSink", &slack.unwrap());
}

//! No credential reaches `Debug` output: the clients the functions sign with, built through
//! their public constructors from recognisable credentials and used once (so their credential
//! caches are filled), formatted with `{:?}` and `{:#?}`. The settings' own check is in
//! `settings.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use axum::routing::post;
use axum::Router;
use snapwatch_aws::securityhub::SecurityHubClient;
use snapwatch_aws_inventory::{QueryClient, SnapshotLister};

const SECRET_KEY: &str = "SECRET-ACCESS-KEY-8c1f";
const SESSION_TOKEN: &str = "SESSION-TOKEN-2d7a";

fn assert_hides_secrets(what: &str, value: &impl std::fmt::Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        for secret in [SECRET_KEY, SESSION_TOKEN] {
            assert!(!shown.contains(secret), "{what} prints {secret}: {shown}");
        }
    }
}

/// A server that refuses every call for good (400), so one call signs and returns at once.
async fn refusing_server() -> String {
    let router = Router::new().fallback(post(|| async {
        (
            axum::http::StatusCode::BAD_REQUEST,
            "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>",
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn signing_clients_print_no_credentials() {
    let endpoint = refusing_server().await;
    let credentials = SharedCredentialsProvider::new(Credentials::new(
        "AKIDEXAMPLE",
        SECRET_KEY,
        Some(SESSION_TOKEN.to_string()),
        None,
        "test",
    ));
    let http = reqwest::Client::new();

    let hub = SecurityHubClient::new(
        http.clone(),
        credentials.clone(),
        "eu-west-1",
        Some(&endpoint),
    )
    .unwrap();
    let _ = hub.post("/findings/import", "{}").await;
    assert_hides_secrets("SecurityHubClient", &hub);

    let lister = SnapshotLister::new(QueryClient::new(http, credentials, Some(endpoint)));
    let _ = lister.account_id("eu-west-1").await;
    assert_hides_secrets("SnapshotLister", &lister);
}

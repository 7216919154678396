//! The production auth path of the Firestore client: tokens from the metadata server, which a
//! local stand-in serves here (`with_metadata_host`, as `GCE_METADATA_HOST` redirects it in
//! Google's libraries), in front of a stand-in Firestore that records the bearer it receives.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use snapwatch_gcp::firestore::{FirestoreClient, FirestoreError, FirestoreTarget};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the metadata server answers: (status, token lifetime in seconds) per request, the last
/// one repeated.
#[derive(Clone)]
struct Stand {
    script: Arc<Mutex<VecDeque<(u16, u64)>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
    bearers: Arc<Mutex<Vec<String>>>,
}

async fn token(State(stand): State<Stand>, headers: HeaderMap) -> Response {
    let flavor = headers
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let number = {
        let mut requests = stand.token_requests.lock().unwrap();
        requests.push(flavor.clone());
        requests.len()
    };
    // A slow metadata server, so concurrent callers overlap one refresh.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if flavor != "Google" {
        return (StatusCode::FORBIDDEN, "missing Metadata-Flavor").into_response();
    }
    let (status, lifetime) = {
        let mut script = stand.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            *script.front().unwrap()
        }
    };
    if status != 200 {
        return (StatusCode::from_u16(status).unwrap(), "no").into_response();
    }
    Json(json!({
        "access_token": format!("tok-{number}"),
        "expires_in": lifetime,
        "token_type": "Bearer"
    }))
    .into_response()
}

async fn batch_get(State(stand): State<Stand>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    stand.bearers.lock().unwrap().push(bearer);
    Json(json!([{"missing": "projects/p/databases/(default)/documents/facts/x"}])).into_response()
}

/// The stand-ins on one port; a client whose Firestore endpoint and metadata host both point
/// at it.
async fn start(script: Vec<(u16, u64)>) -> (Stand, FirestoreClient) {
    let stand = Stand {
        script: Arc::new(Mutex::new(script.into())),
        token_requests: Arc::default(),
        bearers: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/token",
            get(token),
        )
        .route(
            "/v1/projects/p/databases/(default)/documents:batchGet",
            post(batch_get),
        )
        .with_state(stand.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut target = FirestoreTarget::production("p", "(default)");
    target.endpoint = format!("http://{addr}");
    let client = FirestoreClient::new(target)
        .unwrap()
        .with_metadata_host(&addr.to_string());
    (stand, client)
}

fn name() -> String {
    "projects/p/databases/(default)/documents/facts/x".to_owned()
}

#[tokio::test]
async fn a_token_is_fetched_with_the_metadata_header_and_cached() {
    let (stand, client) = start(vec![(200, 3600)]).await;
    assert!(client.get(&name()).await.unwrap().is_none());
    assert!(client.get(&name()).await.unwrap().is_none());
    assert_eq!(*stand.token_requests.lock().unwrap(), vec!["Google"]);
    assert_eq!(
        *stand.bearers.lock().unwrap(),
        vec!["Bearer tok-1", "Bearer tok-1"]
    );
    // The cached token is a credential: the client's Debug never shows it.
    let debug = format!("{client:?}");
    assert!(!debug.contains("tok-1"), "{debug}");
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed() {
    // 30 s left is under the client's 60 s minimum: every call needs a new token.
    let (stand, client) = start(vec![(200, 30)]).await;
    client.get(&name()).await.unwrap();
    client.get(&name()).await.unwrap();
    assert_eq!(stand.token_requests.lock().unwrap().len(), 2);
    assert_eq!(
        *stand.bearers.lock().unwrap(),
        vec!["Bearer tok-1", "Bearer tok-2"]
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let (stand, client) = start(vec![(200, 3600)]).await;
    let client = Arc::new(client);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get(&name()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(stand.token_requests.lock().unwrap().len(), 1);
    assert_eq!(stand.bearers.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn a_missing_service_account_is_permanent_and_an_outage_transient() {
    let (stand, client) = start(vec![(404, 0), (503, 0), (200, 3600)]).await;
    let missing = client.get(&name()).await.unwrap_err();
    assert!(matches!(missing, FirestoreError::Token { .. }), "{missing}");
    assert!(
        !missing.is_retryable(),
        "404 must not be retried: {missing}"
    );
    let outage = client.get(&name()).await.unwrap_err();
    assert!(outage.is_retryable(), "503 is transient: {outage}");
    // Failures cache nothing: the next call fetches and succeeds.
    client.get(&name()).await.unwrap();
    assert_eq!(stand.token_requests.lock().unwrap().len(), 3);
    assert!(stand.bearers.lock().unwrap().len() == 1);
}

#[tokio::test]
async fn an_unreachable_metadata_server_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let client = FirestoreClient::new(FirestoreTarget::production("p", "(default)"))
        .unwrap()
        .with_metadata_host(&closed.to_string());
    let err = client.get(&name()).await.unwrap_err();
    assert!(matches!(err, FirestoreError::Token { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
}

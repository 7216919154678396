//! Optimistic-concurrency rounds on a claim pause between attempts: a table that answers every
//! guarded write with 412 (another writer always wins) must not be hammered back to back. A
//! local server stands in for the Table service (Azurite cannot be made to lose races on cue).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use snapwatch_azure::table::client::{TableAuth, TableClient, AZURITE_ACCOUNT, AZURITE_KEY};
use snapwatch_azure::table::TableStore;
use snapwatch_core::ports::StateStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers every entity read with an unsent claim and every guarded write with 412, recording
/// when each write arrived.
async fn always_changed(
    method: Method,
    writes: Arc<Mutex<Vec<Instant>>>,
    _headers: HeaderMap,
) -> Response {
    if method == Method::GET {
        let mut headers = HeaderMap::new();
        headers.insert(
            "etag",
            "W/\"datetime'2024-04-15T12%3A00%3A00Z'\"".parse().unwrap(),
        );
        let claim = json!({
            "PartitionKey": "p", "RowKey": "claim", "ClaimId": "sw-1", "Sent": false,
            "ClaimedAt": "1713182400", "ClaimedAt@odata.type": "Edm.Int64",
            "ExpiresAt": "4070995200", "ExpiresAt@odata.type": "Edm.Int64"
        });
        return (StatusCode::OK, headers, Json(claim)).into_response();
    }
    writes.lock().unwrap().push(Instant::now());
    (
        StatusCode::PRECONDITION_FAILED,
        "UpdateConditionNotSatisfied",
    )
        .into_response()
}

#[tokio::test]
async fn lost_guarded_writes_are_retried_with_a_pause_not_back_to_back() {
    let writes: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let recorded = writes.clone();
    let router = Router::new().fallback(move |method: Method, headers: HeaderMap| {
        always_changed(method, recorded.clone(), headers)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = TableClient::new(
        reqwest::Client::new(),
        reqwest::Url::parse(&format!("http://{address}")).unwrap(),
        AZURITE_ACCOUNT,
        "snapwatch",
        TableAuth::shared_key(AZURITE_ACCOUNT, AZURITE_KEY).unwrap(),
    )
    .unwrap();
    let store = TableStore::new(client);

    let err = store.mark_alert_sent("sw-1").await.unwrap_err();
    assert!(err.is_retryable(), "contention is transient: {err}");
    let writes = writes.lock().unwrap().clone();
    assert!(writes.len() > 2, "several guarded rounds: {}", writes.len());
    let gaps: Vec<Duration> = writes.windows(2).map(|w| w[1] - w[0]).collect();
    // Each pause is at least half its (10 ms, doubling) step: 5 ms before the second write.
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(5)),
        "rounds must pause between attempts: {gaps:?}"
    );
    let total = *writes.last().unwrap() - writes[0];
    assert!(
        total >= Duration::from_millis(100),
        "{total:?} for {} rounds",
        writes.len()
    );
}

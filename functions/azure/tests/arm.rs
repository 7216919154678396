//! The ARM reader against a local HTTP server answering in Resource Manager's JSON shape, with
//! the managed identity token from a local stand-in for the Functions identity endpoint. No live
//! Azure call anywhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use snapwatch_azure::arm::{enrich, ArmClient, ResourceReader};
use snapwatch_azure::handler::{app, Alerts, AppState, RetryBudget, EVENT_GRID_FUNCTION};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::table::{ExpiryPurge, PurgeReport};
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::parse::{azure, Parsed};
use snapwatch_core::ports::{FixedClock, StoreError};
use snapwatch_core::{Config, Fact, Resource, ResourceKind};
use snapwatch_testkit::MemorySink;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const ARM_RESOURCES: &str =
    include_str!("../../../tests/fixtures/azure/functions/arm_resources.json");
const GRID_CHAIN: &str =
    include_str!("../../../tests/fixtures/azure/functions/eventgrid_chain.json");
const IDENTITY_HEADER: &str = "0f3e1d2c-identity-header";
const SUB: &str =
    "/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/Ops-RG/providers";

#[derive(Clone, Default)]
struct Fake {
    resources: Arc<HashMap<String, Value>>,
    token_requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
    /// (path, api-version, Authorization) of every ARM request.
    arm_requests: Arc<Mutex<Vec<(String, String, String)>>>,
}

async fn token(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    fake.token_requests.lock().unwrap().push(query.clone());
    if headers
        .get("X-IDENTITY-HEADER")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
    {
        return (
            StatusCode::BAD_REQUEST,
            "missing or wrong X-IDENTITY-HEADER",
        )
            .into_response();
    }
    let resource = query.get("resource").cloned().unwrap_or_default();
    Json(json!({
        "access_token": format!("token-for-{resource}"),
        "expires_on": (Utc::now().timestamp() + 3600).to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": "3c5e7a9b-1d2f-4a6b-8c0d-2e4f6a8b0c1d"
    }))
    .into_response()
}

async fn resource(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let version = query.get("api-version").cloned().unwrap_or_default();
    fake.arm_requests
        .lock()
        .unwrap()
        .push((path.clone(), version, auth.clone()));
    if auth != "Bearer token-for-https://management.azure.com/" {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "bad token"}})),
        )
            .into_response();
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with("/throttled") {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"code": "TooManyRequests", "message": "slow down"}})),
        )
            .into_response();
    }
    if lower.ends_with("/forbidden") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": "AuthorizationFailed", "message": "no Reader role"}})),
        )
            .into_response();
    }
    match fake.resources.get(&lower) {
        Some(body) => Json(body.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource '{path}' was not found.")}})),
        )
            .into_response(),
    }
}

async fn start() -> (Fake, ArmClient) {
    let map: HashMap<String, Value> = serde_json::from_str(ARM_RESOURCES).unwrap();
    let fake = Fake {
        resources: Arc::new(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        ..Fake::default()
    };
    let router = Router::new()
        .route("/msi/token", get(token))
        .route("/subscriptions/{*rest}", get(resource))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let base = format!("http://{address}");
    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        reqwest::Url::parse(&format!("{base}/msi/token")).unwrap(),
        IDENTITY_HEADER,
    ));
    let client = ArmClient::new(http, reqwest::Url::parse(&base).unwrap(), identity);
    (fake, client)
}

#[tokio::test]
async fn reads_resources_with_the_managed_identity_token() {
    let (fake, arm) = start().await;
    let disk_id = format!("{SUB}/Microsoft.Compute/disks/billing-db-restored");
    let disk = arm.read(&disk_id).await.unwrap().expect("disk exists");
    assert_eq!(
        disk["properties"]["creationData"]["sourceResourceId"],
        format!("{SUB}/Microsoft.Compute/snapshots/billing-db-snap")
    );
    let vm_id = format!("{SUB}/Microsoft.Compute/virtualMachines/exfil-vm");
    let vm = arm.read(&vm_id).await.unwrap().expect("vm exists");
    assert_eq!(vm["name"], "exfil-vm");

    let requests = fake.arm_requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![
            (
                disk_id,
                "2023-04-02".to_owned(),
                "Bearer token-for-https://management.azure.com/".to_owned()
            ),
            (
                vm_id,
                "2024-03-01".to_owned(),
                "Bearer token-for-https://management.azure.com/".to_owned()
            ),
        ]
    );
    // One token, cached for the second read.
    let tokens = fake.token_requests.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["resource"], "https://management.azure.com/");
    assert_eq!(tokens[0]["api-version"], "2019-08-01");
}

#[tokio::test]
async fn maps_arm_answers_to_outcomes() {
    let (_fake, arm) = start().await;
    let gone = arm
        .read(&format!("{SUB}/Microsoft.Compute/disks/deleted-disk"))
        .await
        .unwrap();
    assert_eq!(gone, None, "404 means the resource no longer exists");
    let throttled = arm
        .read(&format!("{SUB}/Microsoft.Compute/disks/throttled"))
        .await
        .unwrap_err();
    assert!(throttled.is_retryable(), "{throttled}");
    let forbidden = arm
        .read(&format!("{SUB}/Microsoft.Compute/disks/forbidden"))
        .await
        .unwrap_err();
    assert!(!forbidden.is_retryable(), "{forbidden}");
    assert!(
        forbidden.to_string().contains("AuthorizationFailed"),
        "{forbidden}"
    );
    let unknown_type = arm
        .read(&format!("{SUB}/Microsoft.Storage/storageAccounts/logs"))
        .await
        .unwrap_err();
    assert!(!unknown_type.is_retryable());
}

#[tokio::test]
async fn a_refused_identity_is_a_permanent_lookup_error() {
    let (fake, _) = start().await;
    // A second server for the same fake, reached with the wrong identity header.
    let router = Router::new()
        .route("/msi/token", get(token))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        reqwest::Url::parse(&format!("http://{address}/msi/token")).unwrap(),
        "wrong-header",
    ));
    let base = reqwest::Url::parse(&format!("http://{address}")).unwrap();
    let arm = ArmClient::new(http, base, identity);
    let err = arm
        .read(&format!(
            "{SUB}/Microsoft.Compute/disks/billing-db-restored"
        ))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        fake.arm_requests.lock().unwrap().is_empty(),
        "no ARM call without a token"
    );
}

#[tokio::test]
async fn enrich_turns_a_bodyless_event_grid_disk_write_into_a_restore() {
    let (_fake, arm) = start().await;
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).unwrap();
    let disk_event = events[3].to_string();
    let Ok(Parsed::Event(event)) = azure::parse_record(&disk_event) else {
        panic!("the disk write event parses");
    };
    assert!(event.facts.is_empty(), "Event Grid carries no body");
    let meta = event.meta.clone();
    let enriched = enrich(&arm, &disk_event, event).await.unwrap();
    assert_eq!(
        enriched.meta, meta,
        "the record keeps its own id, time and actor"
    );
    let lower = SUB.to_ascii_lowercase();
    assert_eq!(
        enriched.facts,
        vec![Fact::RestoredFrom {
            resource: Resource::new(
                ResourceKind::Disk,
                format!("{lower}/microsoft.compute/disks/billing-db-restored")
            ),
            snapshot: Resource::new(
                ResourceKind::Snapshot,
                format!("{lower}/microsoft.compute/snapshots/billing-db-snap")
            ),
        }]
    );
}

/// The handler's purge port; this test never calls `/Purge`.
struct NoPurge;

impl ExpiryPurge for NoPurge {
    async fn purge(
        &self,
        _now: chrono::DateTime<Utc>,
        _max_rows: usize,
    ) -> Result<PurgeReport, StoreError> {
        Ok(PurgeReport::default())
    }
}

#[tokio::test]
async fn the_event_grid_function_alerts_through_the_real_arm_client() {
    let (fake, arm) = start().await;
    let sink = MemorySink::new();
    let state = Arc::new(AppState {
        detector: Detector::new(MemoryStore::new(), Config::default()),
        reader: arm,
        alerts: Alerts::Sink(sink.clone()),
        clock: Arc::new(FixedClock(
            Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap(),
        )),
        retry: RetryBudget {
            attempts: 2,
            backoff: Duration::from_millis(1),
        },
        purger: NoPurge,
        purge_max_rows: 1,
        deadline: Duration::from_secs(240),
        responder: None,
    });
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).unwrap();
    for event in &events {
        let request = axum::http::Request::post(format!("/{EVENT_GRID_FUNCTION}"))
            .body(axum::body::Body::from(
                json!({"Data": {"event": event}, "Metadata": {}}).to_string(),
            ))
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let sent = sink.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].rule, "chain.exposed-restore");
    assert_eq!(fake.arm_requests.lock().unwrap().len(), 4);
}

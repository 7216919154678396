//! The Table Storage client's Azure path: a managed identity bearer token instead of a shared
//! key. Azurite accepts tokens only over HTTPS with its own certificates, so a local server stands
//! in for the table endpoint and the Functions identity endpoint and checks what arrives.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::table::client::{TableAuth, TableClient};
use snapwatch_azure::table::TableStore;
use snapwatch_core::ports::{ResourceFacts, StateStore, StoredFact};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// (method + path, Authorization, x-ms-version, $filter) of one table request.
type TableRequest = (String, String, String, String);

#[derive(Clone, Default)]
struct Seen {
    table: Arc<Mutex<Vec<TableRequest>>>,
    token_resources: Arc<Mutex<Vec<String>>>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn token(State(seen): State<Seen>, Query(q): Query<HashMap<String, String>>) -> Response {
    let resource = q.get("resource").cloned().unwrap_or_default();
    seen.token_resources.lock().unwrap().push(resource.clone());
    Json(json!({
        "access_token": format!("token-for-{resource}"),
        "expires_on": (Utc::now().timestamp() + 3600).to_string(),
        "token_type": "Bearer"
    }))
    .into_response()
}

async fn query(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    seen.table.lock().unwrap().push((
        "GET /snapwatch()".into(),
        header(&headers, "authorization"),
        header(&headers, "x-ms-version"),
        q.get("$filter").cloned().unwrap_or_default(),
    ));
    Json(json!({"value": [{
        "PartitionKey": "r-ignored", "RowKey": "f-ignored",
        "Resource": "/subscriptions/s/x", "FactKey": "evt-1#0",
        "ExpiresAt": "4070995200", "BodyParts": "2", "Body0": "{\"half\":", "Body1": "1}"
    }]}))
    .into_response()
}

async fn insert(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    seen.table.lock().unwrap().push((
        "POST /snapwatch".into(),
        header(&headers, "authorization"),
        header(&headers, "x-ms-version"),
        String::new(),
    ));
    let entity: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if entity["ExpiresAt@odata.type"] != "Edm.Int64" {
        return (StatusCode::BAD_REQUEST, "ExpiresAt must be typed Edm.Int64").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

#[tokio::test]
async fn uses_the_managed_identity_token_for_the_storage_audience() {
    let seen = Seen::default();
    let router = Router::new()
        .route("/msi/token", get(token))
        .route("/snapwatch()", get(query))
        .route("/snapwatch", post(insert))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        reqwest::Url::parse(&format!("http://{address}/msi/token")).unwrap(),
        "header",
    ));
    let client = TableClient::new(
        http,
        reqwest::Url::parse(&format!("http://{address}")).unwrap(),
        "swstate01",
        "snapwatch",
        TableAuth::ManagedIdentity(identity),
    )
    .unwrap();
    let store = TableStore::new(client);

    let added = store
        .add_facts(&[ResourceFacts {
            resource: "/subscriptions/s/x".into(),
            facts: vec![StoredFact {
                key: "evt-1#0".into(),
                expires_at: 4_070_995_200,
                body: "{\"half\":1}".into(),
            }],
        }])
        .await
        .unwrap();
    assert_eq!(added, 1);
    let now = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let loaded = store
        .load_facts(&["/subscriptions/s/x".to_owned()], now)
        .await
        .unwrap();
    assert_eq!(
        loaded,
        vec![ResourceFacts {
            resource: "/subscriptions/s/x".into(),
            facts: vec![StoredFact {
                key: "evt-1#0".into(),
                expires_at: 4_070_995_200,
                body: "{\"half\":1}".into(),
            }],
        }]
    );

    let requests = seen.table.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    for (what, auth, version, _) in &requests {
        assert_eq!(
            auth, "Bearer token-for-https://storage.azure.com/",
            "{what}"
        );
        assert_eq!(version, "2019-02-02", "{what}");
    }
    let partition = &requests[1].3;
    assert!(partition.starts_with("PartitionKey eq 'r-"), "{partition}");
    assert!(
        partition.ends_with(&format!("and ExpiresAt gt {}L", now.timestamp())),
        "{partition}"
    );
    // One token, reused.
    assert_eq!(
        seen.token_resources.lock().unwrap().clone(),
        vec!["https://storage.azure.com/".to_owned()]
    );
}

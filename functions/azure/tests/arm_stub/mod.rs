//! A Resource Manager stub for the Azure snapshot baseline tests: no emulator serves the Compute
//! list APIs (disks, snapshots, galleries), so this axum server serves the pages in
//! tests/fixtures/azure-baseline (written from the REST reference's shapes), follows their
//! `$skiptoken` paging, checks the bearer token and the api-version, counts requests, and can
//! be told to throttle (429 + `Retry-After`), refuse (403) or fail (500) the next requests. Tests change the listed resources between runs.
#![allow(dead_code)] // each test binary uses a different subset

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use snapwatch_http::Failure;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The subscription the fixture pages list.
pub const SUBSCRIPTION: &str = "3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b";
/// The token the stub accepts.
pub const TOKEN: &str = "stub-arm-token";
const API_VERSION: &str = "2023-04-02";
/// The api-version the gallery list must be asked with.
const GALLERY_API_VERSION: &str = "2023-07-03";

/// What the next request gets instead of its page.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// 429 with `Retry-After: secs` and ARM's throttling body.
    Throttle { retry_after: u64 },
    /// 403 AuthorizationFailed (no Reader role).
    Forbidden,
    /// 500 with an error body.
    ServerError,
}

#[derive(Default)]
struct StubState {
    /// Pages by `<collection>-<n>`.
    pages: Mutex<BTreeMap<String, Value>>,
    faults: Mutex<VecDeque<Fault>>,
    requests: AtomicU64,
    token_requests: AtomicU64,
    base: Mutex<String>,
}

/// A running stub; dropped with the test's runtime.
pub struct ArmStub {
    state: Arc<StubState>,
    base: String,
}

fn fixture(name: &str) -> Value {
    // The including crate sits one or two levels below the repository root.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures/azure-baseline"))
        .find(|dir| dir.is_dir())
        .expect("tests/fixtures/azure-baseline above the crate")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

impl ArmStub {
    /// Serves the fixture pages on a free loopback port.
    pub async fn start() -> ArmStub {
        let state = Arc::new(StubState::default());
        {
            let mut pages = state.pages.lock().unwrap();
            for name in ["disks-1", "disks-2", "snapshots-1", "galleries-1"] {
                pages.insert(name.to_owned(), fixture(&format!("{name}.json")));
            }
        }
        let app = Router::new()
            .route(
                "/subscriptions/{subscription}/providers/Microsoft.Compute/{collection}",
                get(list),
            )
            .route(
                "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/galleries/{gallery}",
                get(gallery),
            )
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ArmStub { state, base }
    }

    /// The stub as a Resource Manager endpoint.
    pub fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&self.base).unwrap()
    }

    /// Requests served so far (faults included).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests to the token endpoint so far.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The next requests get these faults, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state
            .faults
            .lock()
            .unwrap()
            .extend(faults.iter().copied());
    }

    /// Merges `patch` into the `properties` of the listed resource called `name`.
    pub fn set_properties(&self, name: &str, patch: Value) {
        let mut pages = self.state.pages.lock().unwrap();
        let resource = pages
            .values_mut()
            .flat_map(|page| page["value"].as_array_mut().unwrap().iter_mut())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no listed resource {name}"));
        for (key, value) in patch.as_object().unwrap() {
            resource["properties"][key] = value.clone();
        }
    }

    /// Serves `page` as page `name` (`disks-1`, `snapshots-2`…).
    pub fn set_page(&self, name: &str, page: Value) {
        self.state
            .pages
            .lock()
            .unwrap()
            .insert(name.to_owned(), page);
    }

    /// Lists `resource` too, on the collection's first page.
    pub fn add(&self, collection: &str, resource: Value) {
        let mut pages = self.state.pages.lock().unwrap();
        pages.get_mut(&format!("{collection}-1")).unwrap()["value"]
            .as_array_mut()
            .unwrap()
            .push(resource);
    }

    /// Replaces the listing with `count` private snapshots, `per_page` to a page, and no disks
    /// or galleries.
    pub fn only_snapshots(&self, count: usize, per_page: usize) {
        let template = fixture("snapshots-1.json")["value"][1].clone();
        let mut pages = self.state.pages.lock().unwrap();
        pages.clear();
        pages.insert("disks-1".into(), json!({ "value": [] }));
        pages.insert("galleries-1".into(), json!({ "value": [] }));
        let snapshots: Vec<Value> = (0..count)
            .map(|i| {
                let mut s = template.clone();
                let name = format!("nightly-{i:05}");
                s["id"] = json!(format!(
                    "/subscriptions/{SUBSCRIPTION}/resourceGroups/backup-rg/providers/Microsoft.Compute/snapshots/{name}"
                ));
                s["name"] = json!(name);
                s
            })
            .collect();
        let chunks: Vec<&[Value]> = snapshots.chunks(per_page.max(1)).collect();
        let last = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let n = i + 1;
            let mut page = json!({ "value": chunk });
            if n < last {
                page["nextLink"] = json!(format!(
                    "{{{{ARM}}}}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/snapshots?api-version={API_VERSION}&$skiptoken={}",
                    n + 1
                ));
            }
            pages.insert(format!("snapshots-{n}"), page);
        }
    }
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn list(
    State(state): State<Arc<StubState>>,
    Path((subscription, collection)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = state.faults.lock().unwrap().pop_front() {
        return match fault {
            Fault::Throttle { retry_after } => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, fixture("throttled.json"));
                response
                    .headers_mut()
                    .insert("retry-after", retry_after.to_string().parse().unwrap());
                response
            }
            Fault::Forbidden => error(StatusCode::FORBIDDEN, fixture("forbidden.json")),
            Fault::ServerError => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"code": "InternalServerError", "message": "stub failure"}}),
            ),
        };
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "AuthenticationFailed", "message": "no valid bearer token"}}),
        );
    }
    let api_version = if collection == "galleries" {
        GALLERY_API_VERSION
    } else {
        API_VERSION
    };
    if query.get("api-version").map(String::as_str) != Some(api_version) {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "InvalidApiVersionParameter", "message": "unexpected api-version"}}),
        );
    }
    if !subscription.eq_ignore_ascii_case(SUBSCRIPTION) {
        return error(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "SubscriptionNotFound", "message": format!("The subscription '{subscription}' could not be found.")}}),
        );
    }
    let page = query.get("$skiptoken").map(String::as_str).unwrap_or("1");
    let pages = state.pages.lock().unwrap();
    match pages.get(&format!("{collection}-{page}")) {
        Some(page) => {
            let base = state.base.lock().unwrap().clone();
            let mut page = page.clone();
            if collection == "galleries" {
                // As Resource Manager lists galleries: the sharing permission, not its groups.
                for listed in page["value"].as_array_mut().into_iter().flatten() {
                    if let Some(sharing) = listed.pointer_mut("/properties/sharingProfile") {
                        sharing.as_object_mut().map(|s| s.remove("groups"));
                    }
                }
            }
            let text = page.to_string().replace("{{ARM}}", &base);
            (StatusCode::OK, [("content-type", "application/json")], text).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "NotFound", "message": "no such page"}}),
        ),
    }
}

/// `Galleries - Get` with `$select=Permissions`: the listed gallery with its sharing groups.
async fn gallery(
    State(state): State<Arc<StubState>>,
    Path((_, _, name)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "AuthenticationFailed", "message": "no valid bearer token"}}),
        );
    }
    if query.get("api-version").map(String::as_str) != Some(GALLERY_API_VERSION)
        || query.get("$select").map(String::as_str) != Some("Permissions")
    {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "InvalidParameter", "message": "expected the gallery api-version and $select=Permissions"}}),
        );
    }
    let pages = state.pages.lock().unwrap();
    let found = pages
        .iter()
        .filter(|(key, _)| key.starts_with("galleries-"))
        .flat_map(|(_, page)| page["value"].as_array().into_iter().flatten())
        .find(|g| {
            g["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        });
    match found {
        Some(gallery) => Json(gallery.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "ResourceNotFound", "message": format!("gallery {name} not found")}}),
        ),
    }
}

/// The service principal secret the stub's token endpoint accepts.
pub const CLIENT_SECRET: &str = "stub-client-secret";

/// Entra's v2.0 token endpoint, client-credentials grant only: the stub's [`TOKEN`] for the
/// right secret and the Resource Manager scope, Entra's error body otherwise.
async fn token(State(state): State<Arc<StubState>>, body: String) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let has = |pair: &str| body.split('&').any(|p| p == pair);
    if has("grant_type=client_credentials")
        && has(&format!("client_secret={CLIENT_SECRET}"))
        && has("scope=https%3A%2F%2Fmanagement.azure.com%2F.default")
    {
        return Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN}))
            .into_response();
    }
    error(
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
    )
}

/// The stub's token, counting how often the lister asked.
#[derive(Debug, Default, Clone)]
pub struct StubToken {
    pub asked: Arc<AtomicU64>,
}

impl snapwatch_azure_inventory::TokenSource for StubToken {
    async fn token(&self) -> Result<String, Failure> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(TOKEN.to_owned())
    }
}

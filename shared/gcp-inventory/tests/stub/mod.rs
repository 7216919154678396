//! A Compute Engine stand-in for tests: serves the hand-written answers of
//! `tests/fixtures/gcp-baseline` at the REST paths the listing calls, with paging by
//! `pageToken`, resources hidden or given another IAM policy per test, injected error answers
//! (429 / quota 403 / 500 with `Retry-After`) and a count of every request.
//!
//! Shared by `shared/gcp-inventory` and `functions/gcp` tests (`#[path]` include).

#![allow(dead_code, reason = "each test crate uses part of the stub")]

use axum::body::Body;
use axum::http::{header, Response, StatusCode, Uri};
use axum::Router;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The project the fixtures describe.
pub const PROJECT: &str = "snap-prod";
/// The token `snapshots-page-1.json` names for page 2.
const SNAPSHOTS_PAGE_2: &str = "CkQiQgoCGAMKAyIBAQ";

/// One injected error answer, served instead of the next request whose path contains `path`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: String,
    pub status: u16,
    pub file: &'static str,
    pub retry_after: Option<u64>,
}

#[derive(Default)]
struct State {
    policies: HashMap<String, &'static str>,
    hidden: HashSet<String>,
    deleted_after_listing: HashSet<String>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
    authorizations: Vec<Option<String>>,
    /// Serve this many snapshots (copies of the fixture's first one) instead of the fixture pages.
    generated_snapshots: Option<usize>,
}

/// A running stub; dropped with the test's runtime.
#[derive(Clone)]
pub struct ComputeStub {
    /// `http://127.0.0.1:<port>`: the lister's endpoint.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

/// `tests/fixtures/gcp-baseline` of the repository, found from whichever crate includes the stub.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures/gcp-baseline"))
        .find(|dir| dir.is_dir())
        .expect("tests/fixtures/gcp-baseline above the crate")
}

fn fixture(file: &str) -> String {
    std::fs::read_to_string(fixtures().join(file)).unwrap_or_else(|e| panic!("fixture {file}: {e}"))
}

impl ComputeStub {
    pub async fn start() -> ComputeStub {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: axum::http::HeaderMap| {
            let state = shared.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                serve(&state, &uri, auth)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ComputeStub {
            endpoint: format!("http://{addr}"),
            state,
        }
    }

    /// The IAM policy `resource` (a `projects/…` id) answers with from now on.
    pub fn set_policy(&self, resource: &str, file: &'static str) {
        self.state
            .lock()
            .unwrap()
            .policies
            .insert(resource.to_string(), file);
    }

    /// Leaves the resource named `name` out of list answers (it does not exist yet).
    pub fn hide(&self, name: &str) {
        self.state.lock().unwrap().hidden.insert(name.to_string());
    }

    /// Lists the resource named `name` again.
    pub fn show(&self, name: &str) {
        self.state.lock().unwrap().hidden.remove(name);
    }

    /// `resource` is listed, but its policy read answers 404 (deleted in between).
    pub fn delete_after_listing(&self, resource: &str) {
        self.state
            .lock()
            .unwrap()
            .deleted_after_listing
            .insert(resource.to_string());
    }

    /// Lists `count` snapshots, named `gen-00000`…, paged by the request's `maxResults`, each a
    /// copy of the first snapshot of `snapshots-page-1.json` (for the cost of a large project).
    pub fn generate_snapshots(&self, count: usize) {
        self.state.lock().unwrap().generated_snapshots = Some(count);
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Every request so far (path and query), in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The `Authorization` header of every request so far.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().authorizations.clone()
    }

    pub fn reset_requests(&self) {
        let mut state = self.state.lock().unwrap();
        state.requests.clear();
        state.authorizations.clear();
    }
}

fn answer(status: u16, body: String, retry_after: Option<u64>) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8");
    if let Some(secs) = retry_after {
        response = response.header(header::RETRY_AFTER, secs.to_string());
    }
    response.body(Body::from(body)).unwrap()
}

fn not_found(what: &str) -> Response<Body> {
    let body = serde_json::json!({
        "error": {
            "code": 404,
            "message": format!("The resource '{what}' was not found"),
            "errors": [{ "message": format!("The resource '{what}' was not found"), "domain": "global", "reason": "notFound" }]
        }
    });
    answer(404, body.to_string(), None)
}

/// Drops hidden resources from a list page (`items` array, or the aggregated map of scopes).
fn without_hidden(page: &str, hidden: &HashSet<String>) -> String {
    let mut page: Value = serde_json::from_str(page).unwrap();
    let keep = |item: &Value| !hidden.contains(item["name"].as_str().unwrap_or_default());
    match page.get_mut("items") {
        Some(Value::Array(items)) => items.retain(keep),
        Some(Value::Object(scopes)) => {
            for scoped in scopes.values_mut() {
                if let Some(Value::Array(disks)) = scoped.get_mut("disks") {
                    disks.retain(keep);
                }
            }
        }
        _ => {}
    }
    page.to_string()
}

fn serve(state: &Mutex<State>, uri: &Uri, auth: Option<String>) -> Response<Body> {
    let mut state = state.lock().unwrap();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    state.requests.push(format!("{path}?{query}"));
    state.authorizations.push(auth);
    if let Some(at) = state.faults.iter().position(|f| path.contains(&f.path)) {
        let fault = state.faults.remove(at).unwrap();
        return answer(fault.status, fixture(fault.file), fault.retry_after);
    }
    let page_token = query_value(&query, "pageToken");
    let Some(rest) = path.strip_prefix("/compute/v1/") else {
        return not_found(&path);
    };
    if let Some(resource) = rest.strip_suffix("/getIamPolicy") {
        if state.deleted_after_listing.contains(resource)
            || !resource.starts_with(&format!("projects/{PROJECT}/"))
        {
            return not_found(resource);
        }
        let file = state
            .policies
            .get(resource)
            .copied()
            .unwrap_or("policy-empty.json");
        return answer(200, fixture(file), None);
    }
    let Some(collection) = rest.strip_prefix(&format!("projects/{PROJECT}/")) else {
        return not_found(rest);
    };
    if let (Some(count), "global/snapshots") = (state.generated_snapshots, collection) {
        let page_size = query_value(&query, "maxResults")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(500);
        let offset = page_token
            .as_deref()
            .and_then(|t| t.strip_prefix("gen-"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        return answer(200, generated_page(count, offset, page_size), None);
    }
    let file = match (collection, page_token.as_deref()) {
        ("global/snapshots", None) => "snapshots-page-1.json",
        ("global/snapshots", Some(SNAPSHOTS_PAGE_2)) => "snapshots-page-2.json",
        ("global/images", None) => "images.json",
        ("global/machineImages", None) => "machine-images.json",
        ("aggregated/disks", None) => "disks-aggregated.json",
        _ => return not_found(rest),
    };
    answer(200, without_hidden(&fixture(file), &state.hidden), None)
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

/// A page of generated snapshots from `offset`, with the next page's token when more remain.
fn generated_page(count: usize, offset: usize, page_size: usize) -> String {
    let mut page: Value = serde_json::from_str(&fixture("snapshots-page-1.json")).unwrap();
    let template = page["items"][0].clone();
    let link = template["selfLink"].as_str().unwrap().to_string();
    let base = link.rsplit_once('/').unwrap().0.to_string();
    let end = count.min(offset + page_size);
    let items: Vec<Value> = (offset..end)
        .map(|i| {
            let mut item = template.clone();
            let name = format!("gen-{i:05}");
            item["selfLink"] = Value::String(format!("{base}/{name}"));
            item["name"] = Value::String(name);
            item
        })
        .collect();
    page["items"] = Value::Array(items);
    match end < count {
        true => page["nextPageToken"] = Value::String(format!("gen-{end}")),
        false => {
            page.as_object_mut().unwrap().remove("nextPageToken");
        }
    }
    page.to_string()
}

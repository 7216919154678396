//! A Resource Manager stub for the response tests, serving the documented shapes of the calls
//! the response makes: `Snapshots - Get` (`properties.diskState`, `tags`), `Snapshots - Revoke
//! Access` (`POST …/endGetAccess` → `202 Accepted` with `Azure-AsyncOperation`, whose status
//! body goes `InProgress` → `Succeeded`), `Network Security Groups - Get` (its `securityRules`)
//! and `Security Rules - Delete` (`202` with `Location`, `202` while running, then `200`; `204`
//! when the rule does not exist). It serves the managed identity endpoint too, checks the bearer
//! token and api-versions, records every write, and can throttle (429 + `Retry-After`) the next
//! requests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const SUBSCRIPTION: &str = "6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
pub const TOKEN: &str = "stub-arm-token";
pub const IDENTITY_HEADER: &str = "stub-identity-header";
const SNAPSHOT_API: &str = "2023-04-02";
const NETWORK_API: &str = "2023-09-01";

/// The id of snapshot `name` in the stub's resource group.
pub fn snapshot_id(name: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/Ops-RG/providers/Microsoft.Compute/snapshots/{name}")
}

/// The id of NSG `name` in the stub's resource group.
pub fn nsg_id(name: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/Ops-RG/providers/Microsoft.Network/networkSecurityGroups/{name}")
}

#[derive(Default)]
struct StubState {
    /// Resources by lower-cased id.
    resources: BTreeMap<String, Value>,
    /// Long-running operations by id: polls left before they finish, and what finishing does.
    operations: HashMap<String, Operation>,
    /// 429s to answer before serving, with their `Retry-After`.
    throttles: VecDeque<u64>,
    /// Every request but token requests: `METHOD path`.
    requests: Vec<String>,
    /// Serve monitor URLs on this origin instead of the stub's own (a hostile redirect).
    monitor_origin: Option<String>,
    /// How an endGetAccess operation ends.
    end_access_outcome: &'static str,
    next_operation: u64,
    base: String,
}

struct Operation {
    polls_left: u32,
    finish: Finish,
    status: &'static str,
}

enum Finish {
    EndAccess(String),
    DeleteRule { nsg: String, rule: String },
}

/// A running stub; dropped with the test's runtime.
#[derive(Clone)]
pub struct ArmStub {
    state: Arc<Mutex<StubState>>,
    pub base: String,
}

impl ArmStub {
    pub async fn start() -> ArmStub {
        let state = Arc::new(Mutex::new(StubState {
            end_access_outcome: "Succeeded",
            ..StubState::default()
        }));
        let app = Router::new()
            .route("/msi/token", get(token))
            .fallback(serve)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        state.lock().unwrap().base = base.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ArmStub { state, base }
    }

    pub fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&self.base).unwrap()
    }

    pub fn identity_endpoint(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("{}/msi/token", self.base)).unwrap()
    }

    /// Serves `body` at `id` (its `id` and `name` filled in).
    pub fn put(&self, id: &str, mut body: Value) {
        body["id"] = json!(id);
        body["name"] = json!(id.rsplit('/').next().unwrap());
        self.state
            .lock()
            .unwrap()
            .resources
            .insert(id.to_ascii_lowercase(), body);
    }

    /// A snapshot in `disk_state`, with `tags`.
    pub fn put_snapshot(&self, name: &str, disk_state: &str, tags: Value) {
        self.put(
            &snapshot_id(name),
            json!({
                "type": "Microsoft.Compute/snapshots",
                "location": "westeurope",
                "tags": tags,
                "properties": {"diskState": disk_state, "diskSizeGB": 30, "provisioningState": "Succeeded"}
            }),
        );
    }

    /// An NSG with `rules` (each `{name, properties}`), with `tags`.
    pub fn put_nsg(&self, name: &str, rules: Vec<Value>, tags: Value) {
        let id = nsg_id(name);
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|mut rule| {
                let rule_name = rule["name"].as_str().unwrap().to_owned();
                rule["id"] = json!(format!("{id}/securityRules/{rule_name}"));
                rule["type"] = json!("Microsoft.Network/networkSecurityGroups/securityRules");
                rule
            })
            .collect();
        self.put(
            &id,
            json!({
                "type": "Microsoft.Network/networkSecurityGroups",
                "location": "westeurope",
                "tags": tags,
                "properties": {"provisioningState": "Succeeded", "securityRules": rules}
            }),
        );
    }

    /// The resource at `id` now.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .resources
            .get(&id.to_ascii_lowercase())
            .cloned()
    }

    /// The names of NSG `name`'s rules now.
    pub fn rule_names(&self, name: &str) -> Vec<String> {
        self.get(&nsg_id(name)).unwrap()["properties"]["securityRules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The next requests are answered 429 with these `Retry-After` seconds.
    pub fn throttle_next(&self, retry_after: &[u64]) {
        self.state
            .lock()
            .unwrap()
            .throttles
            .extend(retry_after.iter().copied());
    }

    /// Monitor URLs point at `origin` instead of the stub.
    pub fn send_monitors_to(&self, origin: &str) {
        self.state.lock().unwrap().monitor_origin = Some(origin.to_owned());
    }

    /// How endGetAccess operations end (`Succeeded`, `Failed`).
    pub fn end_access_ends(&self, status: &'static str) {
        self.state.lock().unwrap().end_access_outcome = status;
    }

    /// Every request so far but token requests: `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The writes so far (neither GET nor token requests).
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The App Service identity endpoint: the stub's token for the right header.
async fn token(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
        || query.get("resource").map(String::as_str) != Some("https://management.azure.com/")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "bad identity request",
        );
    }
    let expires_on = chrono::Utc::now().timestamp() + 3600;
    Json(json!({"access_token": TOKEN, "expires_on": expires_on.to_string(), "token_type": "Bearer", "resource": "https://management.azure.com/"}))
        .into_response()
}

async fn serve(
    State(state): State<Arc<Mutex<StubState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_owned();
    s.requests.push(format!("{method} {path}"));
    if let Some(retry_after) = s.throttles.pop_front() {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled.",
        );
        response
            .headers_mut()
            .insert("retry-after", retry_after.to_string().parse().unwrap());
        return response;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "no valid bearer token",
        );
    }
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    let api = query.get("api-version").cloned().unwrap_or_default();
    let lower = path.to_ascii_lowercase();

    // Operation monitors.
    if let Some(op) = lower.strip_prefix(&format!(
        "/subscriptions/{SUBSCRIPTION}/providers/microsoft.stub/operations/"
    )) {
        let op = op.to_owned();
        let Some(operation) = s.operations.get_mut(&op) else {
            return error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if operation.polls_left > 0 {
            operation.polls_left -= 1;
            let is_location = matches!(operation.finish, Finish::DeleteRule { .. });
            let mut response = if is_location {
                StatusCode::ACCEPTED.into_response()
            } else {
                Json(json!({"name": op, "status": "InProgress", "startTime": "2026-11-30T06:00:00Z"})).into_response()
            };
            response
                .headers_mut()
                .insert("retry-after", "0".parse().unwrap());
            return response;
        }
        let Some(operation) = s.operations.remove(&op) else {
            return error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        let status = operation.status;
        match operation.finish {
            Finish::EndAccess(id) => {
                if status == "Succeeded" {
                    if let Some(snapshot) = s.resources.get_mut(&id) {
                        snapshot["properties"]["diskState"] = json!("Unattached");
                    }
                }
                let mut body = json!({"name": op, "status": status, "startTime": "2026-11-30T06:00:00Z", "endTime": "2026-11-30T06:00:02Z"});
                if status != "Succeeded" {
                    body["error"] = json!({"code": "InternalOperationError", "message": "stub operation failure"});
                }
                return Json(body).into_response();
            }
            Finish::DeleteRule { nsg, rule } => {
                remove_rule(&mut s, &nsg, &rule);
                return StatusCode::OK.into_response();
            }
        }
    }

    let base = s.base.clone();
    let monitor_base = s.monitor_origin.clone().unwrap_or(base);
    if method == Method::POST && lower.ends_with("/endgetaccess") {
        if api != SNAPSHOT_API {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                "api-version",
            );
        }
        let id = lower.trim_end_matches("/endgetaccess").to_owned();
        if !s.resources.contains_key(&id) {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "no such snapshot",
            );
        }
        let op = new_operation(&mut s, Finish::EndAccess(id));
        let outcome = s.end_access_outcome;
        if let Some(o) = s.operations.get_mut(&op) {
            o.status = outcome;
        }
        let monitor = format!("{monitor_base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Stub/operations/{op}?api-version={SNAPSHOT_API}");
        let mut response = StatusCode::ACCEPTED.into_response();
        response
            .headers_mut()
            .insert("azure-asyncoperation", monitor.parse().unwrap());
        response.headers_mut().insert(
            "location",
            format!("{monitor}&monitor=true").parse().unwrap(),
        );
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    if method == Method::DELETE && lower.contains("/securityrules/") {
        if api != NETWORK_API {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                "api-version",
            );
        }
        let Some((nsg, rule)) = lower.split_once("/securityrules/") else {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "rule");
        };
        let (nsg, rule) = (nsg.to_owned(), rule.to_owned());
        let exists = s.resources.get(&nsg).is_some_and(|n| {
            n["properties"]["securityRules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"].as_str().unwrap().eq_ignore_ascii_case(&rule))
        });
        if !exists {
            return StatusCode::NO_CONTENT.into_response();
        }
        let op = new_operation(&mut s, Finish::DeleteRule { nsg, rule });
        let monitor = format!("{monitor_base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Stub/operations/{op}?api-version={NETWORK_API}");
        let mut response = StatusCode::ACCEPTED.into_response();
        response
            .headers_mut()
            .insert("location", monitor.parse().unwrap());
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        return response;
    }
    if method == Method::GET {
        let expected = if lower.contains("/microsoft.network/") {
            NETWORK_API
        } else {
            SNAPSHOT_API
        };
        if api != expected {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                "api-version",
            );
        }
        return match s.resources.get(&lower) {
            Some(body) => Json(body.clone()).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "The Resource was not found.",
            ),
        };
    }
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "not served by the stub",
    )
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn new_operation(s: &mut StubState, finish: Finish) -> String {
    s.next_operation += 1;
    let op = format!("op-{}", s.next_operation);
    s.operations.insert(
        op.clone(),
        Operation {
            polls_left: 1,
            finish,
            status: "Succeeded",
        },
    );
    op
}

fn remove_rule(s: &mut StubState, nsg: &str, rule: &str) {
    if let Some(group) = s.resources.get_mut(nsg) {
        if let Some(rules) = group["properties"]["securityRules"].as_array_mut() {
            rules.retain(|r| !r["name"].as_str().unwrap().eq_ignore_ascii_case(rule));
        }
    }
}

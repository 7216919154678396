//! A Compute Engine stub for the response tests, serving the documented shapes of the calls the
//! response makes: `snapshots.get` / `images.get` (`labels`), `getIamPolicy` (a `Policy` with
//! `version`, `etag`, `bindings`), `setIamPolicy` (`{"policy": …}`; a stale `etag` is refused
//! with 412 `conditionNotMet`, as on a concurrent policy change), `firewalls.get`,
//! `firewalls.patch` (answers a `RUNNING` global operation) and `globalOperations.get`. It can
//! change a policy right after serving a read (someone else's concurrent write), throttle the
//! next requests (429 + `Retry-After`), and records every request.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const PROJECT: &str = "acme-prod";
pub const TOKEN: &str = "stub-compute-token";

pub fn snapshot(name: &str) -> String {
    format!("projects/{PROJECT}/global/snapshots/{name}")
}
pub fn image(name: &str) -> String {
    format!("projects/{PROJECT}/global/images/{name}")
}
pub fn firewall(name: &str) -> String {
    format!("projects/{PROJECT}/global/firewalls/{name}")
}

#[derive(Default)]
struct State {
    /// Resources by `projects/…` path.
    resources: BTreeMap<String, Value>,
    /// IAM policies by resource path.
    policies: BTreeMap<String, Value>,
    /// Members someone else adds (role, member) right after the next policy reads of a resource.
    concurrent: BTreeMap<String, VecDeque<(String, String)>>,
    throttles: VecDeque<u64>,
    requests: Vec<String>,
    etags: u64,
    operations: BTreeMap<String, u32>,
}

#[derive(Clone)]
pub struct ComputeStub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl ComputeStub {
    pub async fn start() -> ComputeStub {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { serve(&state, method, &uri, &headers, &body) }
            },
        );
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

    /// A snapshot or image at `path` with `labels` and IAM `bindings`.
    pub fn put_shared(&self, path: &str, labels: Value, bindings: Value) {
        let mut s = self.state.lock().unwrap();
        let name = path.rsplit('/').next().unwrap();
        s.resources.insert(
            path.to_owned(),
            json!({"kind": "compute#snapshot", "name": name, "labels": labels, "status": "READY",
                   "selfLink": format!("https://www.googleapis.com/compute/v1/{path}")}),
        );
        s.etags += 1;
        let etag = format!("BwYA{:04}", s.etags);
        s.policies.insert(
            path.to_owned(),
            json!({"version": 1, "etag": etag, "bindings": bindings}),
        );
    }

    /// A firewall rule (the `firewalls.get` body, `name` and `selfLink` filled in).
    pub fn put_firewall(&self, name: &str, mut body: Value) {
        let path = firewall(name);
        body["kind"] = json!("compute#firewall");
        body["name"] = json!(name);
        body["selfLink"] = json!(format!("https://www.googleapis.com/compute/v1/{path}"));
        self.state.lock().unwrap().resources.insert(path, body);
    }

    pub fn resource(&self, path: &str) -> Value {
        self.state.lock().unwrap().resources[path].clone()
    }

    pub fn policy(&self, path: &str) -> Value {
        self.state.lock().unwrap().policies[path].clone()
    }

    /// Every member of the policy of `path`, sorted.
    pub fn members(&self, path: &str) -> Vec<String> {
        let policy = self.policy(path);
        let mut all: Vec<String> = policy["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| b["members"].as_array().unwrap().iter())
            .map(|m| m.as_str().unwrap().to_owned())
            .collect();
        all.sort();
        all
    }

    /// Right after each of the next policy reads of `path`, someone else adds one of `adds`
    /// (role, member), changing the `etag`.
    pub fn change_after_reads(&self, path: &str, adds: &[(&str, &str)]) {
        self.state
            .lock()
            .unwrap()
            .concurrent
            .entry(path.to_owned())
            .or_default()
            .extend(adds.iter().map(|(r, m)| (r.to_string(), m.to_string())));
    }

    pub fn throttle_next(&self, retry_after: &[u64]) {
        self.state
            .lock()
            .unwrap()
            .throttles
            .extend(retry_after.iter().copied());
    }

    /// Every request so far: `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The writes so far (`POST …/setIamPolicy`, `PATCH …`).
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }
}

fn error(status: u16, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status, "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

fn add_member(policy: &mut Value, role: &str, member: &str) {
    let bindings = policy["bindings"].as_array_mut().unwrap();
    match bindings.iter_mut().find(|b| b["role"] == role) {
        Some(binding) => binding["members"]
            .as_array_mut()
            .unwrap()
            .push(json!(member)),
        None => bindings.push(json!({"role": role, "members": [member]})),
    }
}

fn serve(
    state: &Mutex<State>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut s = state.lock().unwrap();
    let Some(path) = uri.path().strip_prefix("/compute/v1/").map(str::to_owned) else {
        return error(404, "notFound", "not a Compute Engine path");
    };
    s.requests.push(format!("{method} {path}"));
    if let Some(secs) = s.throttles.pop_front() {
        let mut response = error(429, "rateLimitExceeded", "Rate Limit Exceeded");
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
        return response;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return error(401, "authError", "Invalid Credentials");
    }
    if let Some(resource) = path.strip_suffix("/getIamPolicy") {
        if method != Method::GET {
            return error(405, "badRequest", "getIamPolicy is a GET");
        }
        if uri.query() != Some("optionsRequestedPolicyVersion=3") {
            return error(
                400,
                "badRequest",
                "expected optionsRequestedPolicyVersion=3",
            );
        }
        let Some(policy) = s.policies.get(resource).cloned() else {
            return error(
                404,
                "notFound",
                &format!("The resource '{resource}' was not found"),
            );
        };
        // Someone else writes the policy right after this read.
        if let Some((role, member)) = s.concurrent.get_mut(resource).and_then(VecDeque::pop_front) {
            s.etags += 1;
            let etag = format!("BwYA{:04}", s.etags);
            let stored = s.policies.get_mut(resource).unwrap();
            add_member(stored, &role, &member);
            stored["etag"] = json!(etag);
        }
        return Json(policy).into_response();
    }
    if let Some(resource) = path.strip_suffix("/setIamPolicy") {
        if method != Method::POST {
            return error(405, "badRequest", "setIamPolicy is a POST");
        }
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(current) = s.policies.get(resource).cloned() else {
            return error(
                404,
                "notFound",
                &format!("The resource '{resource}' was not found"),
            );
        };
        let new = &request["policy"];
        if !new.is_object() {
            return error(400, "required", "Required field 'policy' not specified");
        }
        if new["etag"] != current["etag"] {
            return error(
                412,
                "conditionNotMet",
                "Precondition Failed: the policy's etag does not match",
            );
        }
        s.etags += 1;
        let mut stored = new.clone();
        stored["etag"] = json!(format!("BwYA{:04}", s.etags));
        s.policies.insert(resource.to_owned(), stored.clone());
        return Json(stored).into_response();
    }
    if let Some(name) = path.strip_prefix(&format!("projects/{PROJECT}/global/operations/")) {
        let name = name.to_owned();
        let Some(polls) = s.operations.get_mut(&name) else {
            return error(404, "notFound", "no such operation");
        };
        let status = if *polls == 0 { "DONE" } else { "RUNNING" };
        *polls = polls.saturating_sub(1);
        return Json(json!({"kind": "compute#operation", "name": name, "operationType": "patch", "status": status, "progress": if status == "DONE" {100} else {0}})).into_response();
    }
    match method {
        Method::GET => match s.resources.get(&path) {
            Some(resource) => Json(resource.clone()).into_response(),
            None => error(
                404,
                "notFound",
                &format!("The resource '{path}' was not found"),
            ),
        },
        Method::PATCH if path.contains("/global/firewalls/") => {
            let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(rule) = s.resources.get_mut(&path) else {
                return error(
                    404,
                    "notFound",
                    &format!("The resource '{path}' was not found"),
                );
            };
            for (key, value) in patch.as_object().into_iter().flatten() {
                rule[key] = value.clone();
            }
            let name = format!("operation-{}", s.operations.len() + 1);
            s.operations.insert(name.clone(), 1);
            Json(
                json!({"kind": "compute#operation", "name": name, "operationType": "patch",
                        "targetLink": format!("https://www.googleapis.com/compute/v1/{path}"),
                        "status": "RUNNING", "progress": 0}),
            )
            .into_response()
        }
        _ => error(405, "badRequest", "not served by the stub"),
    }
}

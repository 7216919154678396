//! The opt-in response through the Cloud Run router: an Eventarc audit-log event making a
//! snapshot public, the core's respond step, the Compute Engine stub's `setIamPolicy`, and the
//! alert that carries what was done. Redelivery and racing deliveries act once; dry-run and the
//! exempt label change nothing; someone else's member stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod respond_stub;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use respond_stub::{snapshot, ComputeStub, TOKEN};
use serde_json::{json, Value};
use snapwatch_core::config::ResponseConfig;
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::{MemorySink, MemoryStore};
use snapwatch_core::model::{ActionResult, ResponseMode};
use snapwatch_core::parse::gcp::AUDIT_LOG_WRITTEN;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::{Config, Rule};
use snapwatch_gcp::rejects::MemoryRejects;
use snapwatch_gcp::respond::ComputeResponder;
use snapwatch_gcp::service::{app, Service};
use snapwatch_gcp_inventory::TokenSource;
use snapwatch_http::{AccessToken, Backoff, Failure, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const PUBLIC_SHARE: &str =
    include_str!("../../../tests/fixtures/gcp/snapshots_setIamPolicy_allUsers.json");
/// The snapshot the fixture makes public.
const SNAPSHOT: &str = "db-snap-0412";

#[derive(Clone, Copy)]
struct StubToken;

impl TokenSource for StubToken {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        Ok(Some(AccessToken::new(TOKEN.to_owned())))
    }
}

type TestService = Service<MemoryStore, MemoryRejects, MemorySink, ComputeResponder<StubToken>>;

fn service(stub: &ComputeStub, slack: MemorySink, modes: &str) -> Arc<TestService> {
    let config = Config {
        response: ResponseConfig {
            modes: ResponseConfig::parse_modes(modes).unwrap(),
            ..ResponseConfig::default()
        },
        ..Config::default()
    };
    let responder = ComputeResponder::new(&stub.endpoint, StubToken)
        .unwrap()
        .with_waits(
            RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::exponential(Duration::from_millis(5), Duration::from_millis(20)),
                max_retry_after: Duration::from_secs(2),
            },
            Duration::from_millis(5),
        );
    let now = DateTime::parse_from_rfc3339("2024-04-12T20:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Arc::new(Service {
        detector: Detector::new(MemoryStore::new(), config),
        rejects: MemoryRejects::new(),
        slack: Some(slack),
        clock: Box::new(FixedClock(now)),
        responder: Some(responder),
    })
}

/// Eventarc's binary mode: attributes in `ce-*` headers, the LogEntry as the body.
fn binary(entry: &str) -> Request<Body> {
    let parsed: Value = serde_json::from_str(entry).unwrap();
    let insert_id = parsed["insertId"].as_str().unwrap();
    Request::post("/")
        .header("content-type", "application/json; charset=utf-8")
        .header("ce-specversion", "1.0")
        .header(
            "ce-id",
            format!("projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity{insert_id}"),
        )
        .header(
            "ce-source",
            "//cloudaudit.googleapis.com/projects/acme-prod/logs/activity",
        )
        .header("ce-type", AUDIT_LOG_WRITTEN)
        .header("ce-time", parsed["timestamp"].as_str().unwrap())
        .body(Body::from(entry.to_owned()))
        .unwrap()
}

async fn deliver(service: &Arc<TestService>) -> (StatusCode, Value) {
    let response = app(service.clone())
        .oneshot(binary(PUBLIC_SHARE))
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The snapshot as the share left it: the project owners, and `allUsers` as viewer.
fn serve_the_public_snapshot(stub: &ComputeStub, labels: Value) {
    stub.put_shared(
        &snapshot(SNAPSHOT),
        labels,
        json!([
            {"role": "roles/compute.storageAdmin", "members": ["projectOwner:acme-prod"]},
            {"role": "roles/compute.viewer", "members": ["allUsers"]}
        ]),
    );
}

fn response_of(slack: &MemorySink) -> snapwatch_core::model::ResponseReport {
    let sent = slack.sent();
    let finding = sent
        .iter()
        .find(|f| f.rule == Rule::SnapshotPublic)
        .unwrap_or_else(|| panic!("no snapshot.public alert among {sent:?}"));
    finding
        .response
        .clone()
        .expect("the alert carries the response")
}

#[tokio::test]
async fn an_enforced_response_removes_the_public_member_and_the_alert_says_so() {
    let stub = ComputeStub::start().await;
    serve_the_public_snapshot(&stub, json!({}));
    // An admin grants a colleague access between the responder's read and its write.
    stub.change_after_reads(
        &snapshot(SNAPSHOT),
        &[("roles/compute.viewer", "user:dba@acme.example")],
    );
    let slack = MemorySink::new();
    let service = service(&stub, slack.clone(), "snapshot.public=enforce");
    let (status, body) = deliver(&service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        stub.members(&snapshot(SNAPSHOT)),
        ["projectOwner:acme-prod", "user:dba@acme.example"]
    );
    let response = response_of(&slack);
    assert_eq!(response.mode, ResponseMode::Enforce);
    let action = &response.actions[0];
    assert_eq!(action.result, ActionResult::Done, "{action:?}");
    assert_eq!(action.target, snapshot(SNAPSHOT));
    assert!(
        action.reason.as_deref().unwrap_or("").contains("allUsers"),
        "{action:?}"
    );

    // Eventarc redelivers the same event: no second write, no second alert.
    let writes = stub.writes();
    let (status, _) = deliver(&service).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stub.writes(), writes);
    assert_eq!(slack.sent().len(), 1);
}

#[tokio::test]
async fn eight_racing_deliveries_act_once_and_alert_once() {
    let stub = ComputeStub::start().await;
    serve_the_public_snapshot(&stub, json!({}));
    let slack = MemorySink::new();
    let service = service(&stub, slack.clone(), "snapshot.public=enforce");
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { deliver(&service).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let sets = stub
        .writes()
        .into_iter()
        .filter(|w| w.ends_with("/setIamPolicy"))
        .count();
    assert_eq!(sets, 1, "{:?}", stub.requests());
    let alerts = slack.sent();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].response.is_some());
}

#[tokio::test]
async fn dry_run_and_the_exempt_label_change_nothing() {
    let stub = ComputeStub::start().await;
    serve_the_public_snapshot(&stub, json!({}));
    let slack = MemorySink::new();
    let service = service(&stub, slack.clone(), "snapshot.public=dry-run");
    deliver(&service).await;
    let response = response_of(&slack);
    assert_eq!(response.mode, ResponseMode::DryRun);
    assert_eq!(
        response.actions[0].result,
        ActionResult::WouldDo,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());

    let stub = ComputeStub::start().await;
    serve_the_public_snapshot(&stub, json!({"snapwatch-exempt": "open-data"}));
    let slack = MemorySink::new();
    let service = self::service(&stub, slack.clone(), "snapshot.public=enforce");
    deliver(&service).await;
    let response = response_of(&slack);
    assert_eq!(
        response.actions[0].result,
        ActionResult::SkippedExempt,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    assert!(stub
        .members(&snapshot(SNAPSHOT))
        .contains(&"allUsers".to_owned()));
}

#[tokio::test]
async fn a_failed_response_still_alerts_saying_why() {
    let stub = ComputeStub::start().await;
    serve_the_public_snapshot(&stub, json!({}));
    stub.throttle_next(&[0, 0, 0, 0, 0, 0]);
    let slack = MemorySink::new();
    let service = service(&stub, slack.clone(), "snapshot.public=enforce");
    let (status, body) = deliver(&service).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = response_of(&slack);
    assert_eq!(
        response.actions[0].result,
        ActionResult::Failed,
        "{response:?}"
    );
    assert!(
        response.actions[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("429"),
        "{response:?}"
    );
    assert!(stub
        .members(&snapshot(SNAPSHOT))
        .contains(&"allUsers".to_owned()));
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gcp")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The exposed-restore chain of the service tests: a firewall rule opening everything to the
/// internet for the jump host's service account, and an instance restored from a snapshot.
const CHAIN: [&str; 3] = [
    "firewalls_insert_no_source_ranges.json",
    "snapshots_insert_v1.json",
    "instances_insert_beta_restore.json",
];

/// `allow-all-jump` as `firewalls.get` answers after that insert (sources default to anywhere).
fn serve_the_chains_firewall(stub: &ComputeStub, source: &str) {
    stub.put_firewall(
        "allow-all-jump",
        json!({"network": "https://www.googleapis.com/compute/v1/projects/acme-prod/global/networks/prod-vpc",
               "direction": "INGRESS", "priority": 1000, "sourceRanges": [source],
               "allowed": [{"IPProtocol": "all"}],
               "targetServiceAccounts": ["jump-sa@acme-prod.iam.gserviceaccount.com"],
               "disabled": false}),
    );
}

async fn deliver_chain(service: &Arc<TestService>) {
    for name in CHAIN {
        let response = app(service.clone())
            .oneshot(binary(&fixture(name)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
}

fn exposed_restore_response(slack: &MemorySink) -> snapwatch_core::model::ResponseReport {
    let sent = slack.sent();
    let finding = sent
        .iter()
        .find(|f| f.rule == Rule::ChainExposedRestore)
        .unwrap_or_else(|| panic!("no chain.exposed-restore alert among {sent:?}"));
    finding
        .response
        .clone()
        .expect("the alert carries the response")
}

#[tokio::test]
async fn the_chains_firewall_rule_is_disabled_and_a_narrowed_one_is_kept() {
    let stub = ComputeStub::start().await;
    serve_the_chains_firewall(&stub, "0.0.0.0/0");
    let slack = MemorySink::new();
    let service = service(&stub, slack.clone(), "chain.exposed-restore=enforce");
    deliver_chain(&service).await;
    let response = exposed_restore_response(&slack);
    let action = &response.actions[0];
    assert_eq!(action.result, ActionResult::Done, "{action:?}");
    assert_eq!(
        action.target,
        "projects/acme-prod/global/firewalls/allow-all-jump"
    );
    assert_eq!(
        stub.resource("projects/acme-prod/global/firewalls/allow-all-jump")["disabled"],
        true
    );

    // Someone narrowed the rule to the office before the response ran: it stays enabled.
    let stub = ComputeStub::start().await;
    serve_the_chains_firewall(&stub, "203.0.113.0/24");
    let slack = MemorySink::new();
    let service = self::service(&stub, slack.clone(), "chain.exposed-restore=enforce");
    deliver_chain(&service).await;
    let response = exposed_restore_response(&slack);
    assert_eq!(
        response.actions[0].result,
        ActionResult::SkippedChanged,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
}

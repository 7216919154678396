//! The opt-in response through the custom handler as the host drives it: Activity Log batches in,
//! the core's respond step, the Resource Manager stub's writes, and the alert that carries what
//! was done. Redelivered and racing batches act once; dry-run changes nothing; a failed action
//! still alerts, saying why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod respond_stub;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use respond_stub::{snapshot_id, ArmStub, IDENTITY_HEADER};
use serde_json::{json, Value};
use snapwatch_azure::arm::{LookupError, ResourceReader};
use snapwatch_azure::handler::{app, Alerts, AppState, RetryBudget, EVENT_HUB_FUNCTION};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::respond::{ArmResponder, Polling};
use snapwatch_azure::table::{ExpiryPurge, PurgeReport};
use snapwatch_core::config::ResponseConfig;
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::{MemorySink, MemoryStore};
use snapwatch_core::model::{ActionResult, ResponseMode};
use snapwatch_core::ports::{FixedClock, StoreError};
use snapwatch_core::{Config, Rule};
use snapwatch_http::{Backoff, RetryPolicy};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const BATCH_A: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_a.json");
const BATCH_B: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_b.json");
const ARM_RESOURCES: &str =
    include_str!("../../../tests/fixtures/azure/functions/arm_resources.json");

/// The lookups' ARM (bodies of the chain's VM, NIC…), separate from the stub the response writes to.
#[derive(Clone)]
struct FixtureArm(HashMap<String, Value>);

impl ResourceReader for FixtureArm {
    async fn read(&self, resource_id: &str) -> Result<Option<Value>, LookupError> {
        Ok(self.0.get(&resource_id.to_ascii_lowercase()).cloned())
    }
}

struct NoPurge;

impl ExpiryPurge for NoPurge {
    async fn purge(&self, _: chrono::DateTime<Utc>, _: usize) -> Result<PurgeReport, StoreError> {
        Ok(PurgeReport::default())
    }
}

type State = AppState<MemoryStore, FixtureArm, MemorySink, NoPurge>;

fn app_state(stub: &ArmStub, store: MemoryStore, sink: MemorySink, modes: &str) -> Arc<State> {
    let config = Config {
        response: ResponseConfig {
            modes: ResponseConfig::parse_modes(modes).unwrap(),
            ..ResponseConfig::default()
        },
        ..Config::default()
    };
    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        stub.identity_endpoint(),
        IDENTITY_HEADER,
    ));
    let responder = ArmResponder::new(http, stub.url(), Some(identity))
        .with_retry_policy(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(5), Duration::from_millis(20)),
            max_retry_after: Duration::from_secs(2),
        })
        .with_polling(Polling {
            interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
            max_polls: 5,
        });
    let arm: HashMap<String, Value> = serde_json::from_str(ARM_RESOURCES).unwrap();
    Arc::new(AppState {
        detector: Detector::new(store, config),
        reader: FixtureArm(
            arm.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        alerts: Alerts::Sink(sink),
        clock: Arc::new(FixedClock(
            Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap(),
        )),
        retry: RetryBudget {
            attempts: 2,
            backoff: Duration::from_millis(1),
        },
        deadline: Duration::from_secs(60),
        purger: NoPurge,
        purge_max_rows: 1,
        responder: Some(responder),
    })
}

async fn event_hub(state: &Arc<State>, messages: &[&str]) -> Value {
    let request = Request::post(format!("/{EVENT_HUB_FUNCTION}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"Data": {"messages": messages}, "Metadata": {}}).to_string(),
        ))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The NSG of the chain: the rule the chain's event wrote (TCP 3389 from anywhere) and another.
fn serve_the_chains_nsg(stub: &ArmStub, rdp_source: &str, tags: Value) {
    let rule = |name: &str, port: &str, source: &str, priority: u32| {
        json!({"name": name, "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
            "sourceAddressPrefix": source, "destinationAddressPrefix": "*",
            "access": "Allow", "priority": priority, "direction": "Inbound",
            "provisioningState": "Succeeded"}})
    };
    stub.put_nsg(
        "exfil-vm-nsg",
        vec![
            rule("Allow-RDP-Any", "3389", rdp_source, 110),
            rule("Allow-HTTPS", "443", "Internet", 200),
        ],
        tags,
    );
}

/// An Activity Log `beginGetAccess` record on snapshot `name`, from the rule write's shape.
fn begin_get_access(name: &str) -> String {
    let mut batch: Value = serde_json::from_str(BATCH_A).unwrap();
    let mut record = batch["records"][0].take();
    let id = snapshot_id(name).to_ascii_uppercase();
    record["resourceId"] = json!(id);
    record["operationName"] = json!("MICROSOFT.COMPUTE/SNAPSHOTS/BEGINGETACCESS/ACTION");
    record["resultSignature"] = json!("Succeeded.OK");
    record["correlationId"] = json!(format!("c0ffee00-0000-4000-8000-{:012}", name.len()));
    record["identity"]["authorization"]["scope"] = json!(snapshot_id(name));
    record["identity"]["authorization"]["action"] =
        json!("MICROSOFT.COMPUTE/SNAPSHOTS/BEGINGETACCESS/ACTION");
    record["properties"]
        .as_object_mut()
        .unwrap()
        .remove("responseBody");
    json!({ "records": [record] }).to_string()
}

fn response_of(sink: &MemorySink, rule: Rule) -> snapwatch_core::model::ResponseReport {
    let sent = sink.sent();
    let finding = sent
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} alert among {sent:?}"));
    finding
        .response
        .clone()
        .unwrap_or_else(|| panic!("the {rule} alert carries no response: {finding:?}"))
}

#[tokio::test]
async fn an_enforced_response_deletes_the_chains_rule_before_the_alert_which_says_so() {
    let stub = ArmStub::start().await;
    serve_the_chains_nsg(&stub, "*", json!({}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "chain.exposed-restore=enforce",
    );
    let body = event_hub(&state, &[BATCH_B, BATCH_A]).await;
    assert!(
        body["Logs"][0].as_str().unwrap().contains("sent=1"),
        "{body}"
    );
    assert_eq!(stub.rule_names("exfil-vm-nsg"), ["Allow-HTTPS"]);
    let response = response_of(&sink, Rule::ChainExposedRestore);
    assert_eq!(response.mode, ResponseMode::Enforce);
    assert_eq!(response.actions.len(), 1, "{response:?}");
    let action = &response.actions[0];
    assert_eq!(action.result, ActionResult::Done, "{action:?}");
    assert!(
        action.target.ends_with("/securityrules/allow-rdp-any"),
        "{action:?}"
    );
    // The finding JSON carries it too.
    let json = snapwatch_core::render::finding_json(&sink.sent()[0]);
    assert!(json.contains("\"response\""), "{json}");

    // Redelivery of the same batches: no second DELETE, no second alert.
    let writes = stub.writes();
    event_hub(&state, &[BATCH_B, BATCH_A]).await;
    assert_eq!(stub.writes(), writes);
    assert_eq!(sink.sent().len(), 1);
}

#[tokio::test]
async fn eight_racing_invocations_act_once_and_alert_once() {
    let stub = ArmStub::start().await;
    serve_the_chains_nsg(&stub, "*", json!({}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "chain.exposed-restore=enforce",
    );
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { event_hub(&state, &[BATCH_B, BATCH_A]).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let deletes: Vec<String> = stub
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let alerts = sink.sent();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].response.is_some(), "{:?}", alerts[0]);
}

#[tokio::test]
async fn dry_run_and_exempt_change_nothing_and_the_alert_says_what_would_be_done() {
    let stub = ArmStub::start().await;
    serve_the_chains_nsg(&stub, "*", json!({}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "chain.exposed-restore=dry-run",
    );
    event_hub(&state, &[BATCH_B, BATCH_A]).await;
    let response = response_of(&sink, Rule::ChainExposedRestore);
    assert_eq!(response.mode, ResponseMode::DryRun);
    assert_eq!(
        response.actions[0].result,
        ActionResult::WouldDo,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());

    let stub = ArmStub::start().await;
    serve_the_chains_nsg(&stub, "*", json!({"snapwatch-exempt": "jump host"}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "chain.exposed-restore=enforce",
    );
    event_hub(&state, &[BATCH_B, BATCH_A]).await;
    let response = response_of(&sink, Rule::ChainExposedRestore);
    assert_eq!(
        response.actions[0].result,
        ActionResult::SkippedExempt,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    assert_eq!(
        stub.rule_names("exfil-vm-nsg"),
        ["Allow-RDP-Any", "Allow-HTTPS"]
    );
}

#[tokio::test]
async fn a_rule_someone_narrowed_after_the_finding_is_kept() {
    let stub = ArmStub::start().await;
    serve_the_chains_nsg(&stub, "203.0.113.0/24", json!({}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "chain.exposed-restore=enforce",
    );
    event_hub(&state, &[BATCH_B, BATCH_A]).await;
    let response = response_of(&sink, Rule::ChainExposedRestore);
    assert_eq!(
        response.actions[0].result,
        ActionResult::SkippedChanged,
        "{response:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
}

#[tokio::test]
async fn an_exported_snapshots_sas_is_ended_and_a_throttled_or_failed_end_still_alerts() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("billing-db-snap", "ActiveSAS", json!({}));
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "snapshot.exported=enforce",
    );
    // One 429 with Retry-After: waited out, then done.
    stub.throttle_next(&[1]);
    event_hub(&state, &[&begin_get_access("billing-db-snap")]).await;
    let response = response_of(&sink, Rule::SnapshotExported);
    assert_eq!(
        response.actions[0].result,
        ActionResult::Done,
        "{response:?}"
    );
    assert_eq!(
        stub.get(&snapshot_id("billing-db-snap")).unwrap()["properties"]["diskState"],
        "Unattached"
    );

    // Throttled past the budget: the alert still goes out, saying the response failed and why.
    stub.put_snapshot("other-snap", "ActiveSAS", json!({}));
    stub.throttle_next(&[0, 0, 0, 0, 0, 0]);
    let sink = MemorySink::new();
    let state = app_state(
        &stub,
        MemoryStore::new(),
        sink.clone(),
        "snapshot.exported=enforce",
    );
    event_hub(&state, &[&begin_get_access("other-snap")]).await;
    let response = response_of(&sink, Rule::SnapshotExported);
    let action = &response.actions[0];
    assert_eq!(action.result, ActionResult::Failed, "{action:?}");
    assert!(
        action.reason.as_deref().unwrap_or("").contains("429"),
        "{action:?}"
    );
    assert!(response.failed());
    assert_eq!(
        stub.get(&snapshot_id("other-snap")).unwrap()["properties"]["diskState"],
        "ActiveSAS"
    );
}

//! The custom handler as the Functions host drives it: invocation JSON POSTed to
//! `/<FunctionName>` through `oneshot` (no port), fixtures in the real Activity Log and Event Grid
//! shapes, an in-memory store (or a faulty one), a recording sink and an in-memory ARM reader.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use snapwatch_azure::arm::{LookupError, ResourceReader};
use snapwatch_azure::handler::{
    app, Alerts, AppState, RetryBudget, EVENT_GRID_FUNCTION, EVENT_HUB_FUNCTION, PURGE_FUNCTION,
};
use snapwatch_azure::table::{ExpiryPurge, PurgeReport};
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{Claim, FixedClock, StateStore, StoreError};
use snapwatch_core::{Config, Finding};
use snapwatch_testkit::{FaultyStore, MemorySink, Op, SinkFault, StoreFault, INJECTED};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const BATCH_A: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_a.json");
const BATCH_B: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_b.json");
const GRID_CHAIN: &str =
    include_str!("../../../tests/fixtures/azure/functions/eventgrid_chain.json");
const ARM_RESOURCES: &str =
    include_str!("../../../tests/fixtures/azure/functions/arm_resources.json");

const SUB: &str =
    "/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourcegroups/ops-rg/providers";

fn id(path: &str) -> String {
    format!("{SUB}/{path}")
}

/// ARM as a map of lower-cased resource id → body; counts reads.
#[derive(Clone, Default)]
struct FakeArm {
    resources: HashMap<String, Value>,
    reads: Arc<AtomicUsize>,
}

impl FakeArm {
    fn from_fixture() -> Self {
        let map: HashMap<String, Value> = serde_json::from_str(ARM_RESOURCES).expect("fixture");
        FakeArm {
            resources: map
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            reads: Arc::default(),
        }
    }
}

impl ResourceReader for FakeArm {
    async fn read(&self, resource_id: &str) -> Result<Option<Value>, LookupError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .resources
            .get(&resource_id.to_ascii_lowercase())
            .cloned())
    }
}

/// A store whose `add_facts` fails transiently the first `failures` times (`usize::MAX`: always).
fn flaky_store(failures: usize) -> FaultyStore {
    let store = FaultyStore::new();
    store.fail(Op::AddFacts, ..failures, StoreFault::Unavailable);
    store
}

/// One purge call: the time it ran at and its row budget.
type PurgeCall = (chrono::DateTime<Utc>, usize);

/// A purge that answers a set report (or a failure) and records what it was asked.
#[derive(Clone, Default)]
struct FakePurger {
    report: PurgeReport,
    fail: bool,
    calls: Arc<Mutex<Vec<PurgeCall>>>,
}

impl ExpiryPurge for FakePurger {
    async fn purge(
        &self,
        now: chrono::DateTime<Utc>,
        max_rows: usize,
    ) -> Result<PurgeReport, StoreError> {
        self.calls.lock().expect("lock").push((now, max_rows));
        if self.fail {
            return Err(StoreError::unavailable("table throttled (test)"));
        }
        Ok(self.report)
    }
}

const PURGE_MAX_ROWS: usize = 250;

struct Harness<S: StateStore + 'static> {
    state: Arc<AppState<S, FakeArm, MemorySink, FakePurger>>,
    sink: MemorySink,
    arm: FakeArm,
}

fn harness<S: StateStore + 'static>(store: S) -> Harness<S> {
    harness_with_purger(store, FakePurger::default())
}

fn harness_with_purger<S: StateStore + 'static>(store: S, purger: FakePurger) -> Harness<S> {
    harness_with(store, purger, Duration::from_secs(240))
}

fn harness_with<S: StateStore + 'static>(
    store: S,
    purger: FakePurger,
    deadline: Duration,
) -> Harness<S> {
    harness_alerting(store, purger, deadline, Alerts::Sink)
}

/// `alerts` decides where findings go, given the recording sink.
fn harness_alerting<S: StateStore + 'static>(
    store: S,
    purger: FakePurger,
    deadline: Duration,
    alerts: impl FnOnce(MemorySink) -> Alerts<MemorySink>,
) -> Harness<S> {
    let sink = MemorySink::new();
    let arm = FakeArm::from_fixture();
    let state = Arc::new(AppState {
        purger,
        purge_max_rows: PURGE_MAX_ROWS,
        detector: Detector::new(store, Config::default()),
        reader: arm.clone(),
        alerts: alerts(sink.clone()),
        clock: Arc::new(FixedClock(
            Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap(),
        )),
        retry: RetryBudget {
            attempts: 3,
            backoff: Duration::from_millis(1),
        },
        deadline,
        responder: None,
    });
    Harness { state, sink, arm }
}

impl<S: StateStore + 'static> Harness<S> {
    async fn invoke(&self, function: &str, data: Value) -> (StatusCode, Value) {
        let request = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"Data": data, "Metadata": {"sys": {"MethodName": function, "RandGuid": "4f1c2d3e-test"}}})
                    .to_string(),
            ))
            .expect("request");
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    /// One Event Hubs batch: each message body is a `{"records": [...]}` document, as a string.
    async fn event_hub(&self, messages: &[&str]) -> (StatusCode, Value) {
        self.invoke(EVENT_HUB_FUNCTION, json!({ "messages": messages }))
            .await
    }

    async fn event_grid(&self, event: &Value) -> (StatusCode, Value) {
        self.invoke(EVENT_GRID_FUNCTION, json!({ "event": event }))
            .await
    }
}

fn summary(body: &Value) -> &str {
    body["Logs"][0].as_str().unwrap_or_default()
}

fn rejects(body: &Value) -> Vec<Value> {
    body["Outputs"]["rejects"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("reject line is JSON"))
        .collect()
}

fn assert_exposed_restore(finding: &Finding) {
    assert_eq!(finding.rule, "chain.exposed-restore");
    assert_eq!(finding.cloud.as_str(), "azure");
    assert_eq!(finding.account, "6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(
        finding.snapshot,
        id("microsoft.compute/snapshots/billing-db-snap")
    );
    for resource in [
        "microsoft.compute/snapshots/billing-db-snap",
        "microsoft.compute/disks/billing-db-restored",
        "microsoft.compute/virtualmachines/exfil-vm",
        "microsoft.network/networkinterfaces/exfil-vm-nic",
        "microsoft.network/networksecuritygroups/exfil-vm-nsg",
    ] {
        assert!(
            finding.resources.contains(&id(resource)),
            "{resource} missing from {:?}",
            finding.resources
        );
    }
    assert_eq!(
        finding.actors,
        vec!["m.ortiz@contoso-ops.onmicrosoft.com".to_owned()]
    );
}

#[tokio::test]
async fn event_hub_chain_out_of_order_across_two_invocations_alerts_once() {
    let h = harness(MemoryStore::new());

    // The later half of the chain arrives first: nothing to alert yet.
    let (status, body) = h.event_hub(&[BATCH_A]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Five records: the rule, the VM's Start (intermediate) and Success, the NIC, a listKeys.
    assert_eq!(
        summary(&body),
        "records=5 events=3 skipped=2 findings=0 sent=0 rejected=0"
    );
    assert!(
        body["Outputs"].as_object().is_some_and(|o| o.is_empty()),
        "{body}"
    );
    assert!(h.sink.sent().is_empty());

    // The snapshot and the restored disk (earlier in time) complete the chain.
    let (status, body) = h.event_hub(&[BATCH_B]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=2 events=2 skipped=0 findings=1 sent=1 rejected=0"
    );
    let sent = h.sink.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_exposed_restore(&sent[0]);
    let names: Vec<&str> = sent[0].events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "Microsoft.Compute/snapshots/write",
            "MICROSOFT.COMPUTE/DISKS/WRITE",
            "microsoft.network/networkInterfaces/write",
            "Microsoft.Compute/virtualMachines/write",
            "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE",
        ],
        "every record of the chain, in event-time order, the Start record not among them"
    );

    // Event Hubs delivers at least once: both batches again, in one invocation, alert nothing.
    let (status, body) = h.event_hub(&[BATCH_B, BATCH_A]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=0 rejected=0"
    );
    assert_eq!(h.sink.sent().len(), 1);
    // Every record carried its body: ARM was never asked.
    assert_eq!(h.arm.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn start_and_success_of_one_operation_count_once() {
    let h = harness(MemoryStore::new());
    let batch: Value = serde_json::from_str(BATCH_A).expect("fixture");
    let vm_records: Vec<Value> = batch["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["operationName"] == "Microsoft.Compute/virtualMachines/write")
        .cloned()
        .collect();
    assert_eq!(vm_records.len(), 2);
    assert_eq!(vm_records[0]["resultType"], "Start");
    assert_eq!(vm_records[1]["resultType"], "Success");
    let message = json!({ "records": vm_records }).to_string();
    let (_, body) = h.event_hub(&[&message]).await;
    assert_eq!(
        summary(&body),
        "records=2 events=1 skipped=1 findings=0 sent=0 rejected=0"
    );
    // Uses(vm, disk) and NetworkMember(vm, nic), each kept under both of its resources.
    assert_eq!(h.state.detector.store().fact_count(), 4);
}

#[tokio::test]
async fn event_grid_chain_reads_bodies_from_arm_and_alerts_once() {
    let h = harness(MemoryStore::new());
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).expect("fixture");
    assert_eq!(events.len(), 5);
    for (i, event) in events.iter().enumerate() {
        let (status, body) = h.event_grid(event).await;
        assert_eq!(status, StatusCode::OK, "event {i}: {body}");
        let expected_sent = usize::from(i == events.len() - 1);
        assert_eq!(h.sink.sent().len(), expected_sent, "after event {i}");
    }
    let sent = h.sink.sent();
    assert_exposed_restore(&sent[0]);
    assert_eq!(sent[0].events.len(), 5);
    // The rule, VM, NIC and disk events carry no body; the snapshot needs none.
    assert_eq!(h.arm.reads.load(Ordering::SeqCst), 4);

    // Event Grid redelivers: nothing new is sent.
    for event in &events {
        let (status, _) = h.event_grid(event).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(h.sink.sent().len(), 1);
}

#[tokio::test]
async fn malformed_records_are_kept_as_rejects_and_the_rest_is_processed() {
    let h = harness(MemoryStore::new());
    let good_and_bad = json!({"records": [
        {"resourceId": "/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/Ops-RG/providers/Microsoft.Compute/snapshots/s1",
         "operationName": "MICROSOFT.COMPUTE/SNAPSHOTS/WRITE", "resultType": "Success",
         "correlationId": "11111111-2222-4333-8444-555555555555"},
        {"time": "2024-04-15T10:00:00Z",
         "resourceId": "/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/Ops-RG/providers/Microsoft.Compute/snapshots/s2",
         "operationName": "MICROSOFT.COMPUTE/SNAPSHOTS/WRITE", "resultType": "Success",
         "correlationId": "66666666-7777-4888-9999-000000000000"}
    ]})
    .to_string();
    let aws = r#"{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":"CreateSnapshot","eventTime":"2024-04-15T10:00:00Z","eventID":"e-1","recipientAccountId":"111122223333","awsRegion":"us-east-1","requestParameters":{"volumeId":"vol-1"},"responseElements":{"snapshotId":"snap-1"}}"#;
    let (status, body) = h.event_hub(&["{\"records\": [", &good_and_bad, aws]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=4 events=1 skipped=0 findings=0 sent=0 rejected=3"
    );
    let rejects = rejects(&body);
    assert_eq!(rejects.len(), 3);
    assert!(
        rejects.iter().all(|r| r["kind"] == "invalid"),
        "{rejects:#?}"
    );
    assert!(rejects[0]["reason"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    assert_eq!(
        rejects[1]["reason"], "missing required field `time`",
        "{rejects:#?}"
    );
    assert!(rejects[1]["record"]
        .as_str()
        .unwrap()
        .contains("snapshots/s1"));
    assert!(rejects[2]["reason"]
        .as_str()
        .unwrap()
        .contains("CloudTrail"));
    // The good record went in: its snapshot fact is stored.
    assert_eq!(h.state.detector.store().fact_count(), 1);
}

#[tokio::test]
async fn transient_store_failures_are_retried_inside_the_invocation() {
    let h = harness(flaky_store(2));
    let (status, body) = h.event_hub(&[BATCH_B, BATCH_A]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=1 rejected=0"
    );
    assert_eq!(h.sink.sent().len(), 1);
}

#[tokio::test]
async fn event_hub_keeps_what_still_fails_and_answers_success() {
    let h = harness(flaky_store(usize::MAX));
    let (status, body) = h.event_hub(&[BATCH_B]).await;
    // Event Hubs checkpoints anyway: the batch survives in the rejects output instead.
    assert_eq!(status, StatusCode::OK, "{body}");
    let rejects = rejects(&body);
    assert_eq!(rejects.len(), 2, "{rejects:#?}");
    for reject in &rejects {
        assert_eq!(reject["kind"], "transient");
        assert!(reject["reason"].as_str().unwrap().contains(INJECTED));
        assert!(reject["event_id"].as_str().is_some());
    }
    assert!(rejects[0]["record"]
        .as_str()
        .unwrap()
        .contains("DISKS/WRITE"));
    // Three attempts per record.
    assert_eq!(h.state.detector.store().calls(Op::AddFacts), 6);
}

#[tokio::test]
async fn event_grid_answers_failure_so_event_grid_redelivers() {
    let h = harness(flaky_store(usize::MAX));
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).expect("fixture");
    let (status, body) = h.event_grid(&events[4]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

#[tokio::test]
async fn a_request_that_is_not_an_invocation_is_refused() {
    let h = harness(MemoryStore::new());
    let request = Request::post(format!("/{EVENT_HUB_FUNCTION}"))
        .body(Body::from("not json"))
        .expect("request");
    let response = app(h.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = h.invoke(EVENT_HUB_FUNCTION, json!({"other": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The host's timer invocation as it POSTs it to `/Purge`.
/// Whether the host ran the timer late (its `IsPastDue` flag).
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerRun {
    OnTime,
    PastDue,
}

fn timer_data(run: TimerRun) -> Value {
    json!({"timer": {
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {"Last": "2024-04-15T11:17:00+00:00", "Next": "2024-04-15T12:17:00+00:00", "LastUpdated": "2024-04-15T11:17:00+00:00"},
        "IsPastDue": run == TimerRun::PastDue
    }})
}

#[tokio::test]
async fn purge_runs_one_bounded_purge_at_the_clock_time_and_reports_it() {
    let purger = FakePurger {
        report: PurgeReport {
            expired: 250,
            deleted: 247,
            already_gone: 2,
            changed: 1,
            more_remaining: true,
            requests: 6,
        },
        ..FakePurger::default()
    };
    let h = harness_with_purger(MemoryStore::new(), purger.clone());
    let (status, body) = h.invoke(PURGE_FUNCTION, timer_data(TimerRun::OnTime)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["Logs"],
        json!(["purged expired=250 deleted=247 already_gone=2 changed=1 more_remaining=true requests=6"])
    );
    assert_eq!(body["Outputs"], json!({}));
    assert_eq!(body["ReturnValue"], Value::Null);
    assert_eq!(
        *purger.calls.lock().expect("lock"),
        vec![(
            Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap(),
            PURGE_MAX_ROWS
        )]
    );
    // A late tick purges the same way.
    let (status, _) = h
        .invoke(PURGE_FUNCTION, timer_data(TimerRun::PastDue))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(purger.calls.lock().expect("lock").len(), 2);
    // The purge touches no chain state of the detector's and sends nothing.
    assert!(h.sink.sent().is_empty());
}

#[tokio::test]
async fn purge_answers_500_on_a_store_failure_so_the_next_tick_retries() {
    let purger = FakePurger {
        fail: true,
        ..FakePurger::default()
    };
    let h = harness_with_purger(MemoryStore::new(), purger.clone());
    let (status, body) = h.invoke(PURGE_FUNCTION, timer_data(TimerRun::OnTime)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        body["Logs"],
        json!(["purge failed: state store temporarily unavailable: table throttled (test)"])
    );
    assert_eq!(purger.calls.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn purge_refuses_a_request_that_is_not_an_invocation() {
    let purger = FakePurger::default();
    let h = harness_with_purger(MemoryStore::new(), purger.clone());
    let request = Request::post(format!("/{PURGE_FUNCTION}"))
        .body(Body::from("tick"))
        .expect("request");
    let response = app(h.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(purger.calls.lock().expect("lock").is_empty());
}

/// The most an Event Hubs message body can be on the Standard tier the module deploys.
const EVENT_HUB_MESSAGE_MAX: usize = 1024 * 1024;

/// One Activity Log message as the diagnostic setting writes it, filled to just under
/// `EVENT_HUB_MESSAGE_MAX` bytes: the chain's seven records (with their JSON-in-JSON response
/// bodies, the worst case for escaping) and then `listKeys` records, which the parser skips,
/// each with its own correlation id.
fn full_activity_log_message(message: usize) -> (String, usize) {
    let mut records: Vec<Value> = Vec::new();
    for batch in [BATCH_A, BATCH_B] {
        let batch: Value = serde_json::from_str(batch).expect("fixture");
        records.extend(
            batch["records"]
                .as_array()
                .expect("records")
                .iter()
                .cloned(),
        );
    }
    let filler = records
        .iter()
        .find(|r| {
            r["operationName"]
                .as_str()
                .is_some_and(|op| op.ends_with("LISTKEYS/ACTION"))
        })
        .cloned()
        .expect("a listKeys record in the fixture");
    let mut size = json!({ "records": records }).to_string().len();
    let mut n = 0;
    loop {
        let mut next = filler.clone();
        next["correlationId"] = json!(format!("{message:08x}-0000-4000-8000-{n:012x}"));
        let added = next.to_string().len() + 1;
        if size + added > EVENT_HUB_MESSAGE_MAX {
            break;
        }
        size += added;
        records.push(next);
        n += 1;
    }
    let text = json!({ "records": records }).to_string();
    assert!(text.len() <= EVENT_HUB_MESSAGE_MAX, "{}", text.len());
    let count = records.len();
    (text, count)
}

#[tokio::test]
async fn a_full_batch_of_64_one_megabyte_messages_in_the_hosts_double_encoded_form_is_processed() {
    let h = harness(MemoryStore::new());
    let mut messages = Vec::new();
    let mut records = 0;
    for i in 0..64 {
        let (text, count) = full_activity_log_message(i);
        messages.push(text);
        records += count;
    }
    let payload: usize = messages.iter().map(String::len).sum();
    assert!(payload > 64_000_000, "{payload} bytes of messages");
    // What the host sends for `cardinality: many` with `dataType: string`: the string array
    // serialized to a JSON string, inside the invocation JSON (each message escaped twice).
    let data = json!({ "messages": serde_json::to_string(&messages).expect("array") });
    let body = json!({"Data": data, "Metadata": {"sys": {"MethodName": EVENT_HUB_FUNCTION, "RandGuid": "big-batch"}}})
        .to_string();
    let started = std::time::Instant::now();
    let request = Request::post(format!("/{EVENT_HUB_FUNCTION}"))
        .header("content-type", "application/json")
        .body(Body::from(body.clone()))
        .expect("request");
    let response = app(h.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let elapsed = started.elapsed();
    eprintln!(
        "64-message batch: {payload} bytes of messages, {} bytes on the wire, answered in {elapsed:?}",
        body.len()
    );
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON answer");
    // 5 chain events per message (the VM's Start record and every listKeys are skipped).
    assert_eq!(
        summary(&answer),
        format!(
            "records={records} events={} skipped={} findings=1 sent=1 rejected=0",
            64 * 5,
            records - 64 * 5
        )
    );
    assert_eq!(h.sink.sent().len(), 1);
    assert_exposed_restore(&h.sink.sent()[0]);
}

#[tokio::test]
async fn event_hub_messages_in_the_plain_array_form_are_processed_too() {
    let h = harness(MemoryStore::new());
    let (status, body) = h
        .invoke(
            EVENT_HUB_FUNCTION,
            json!({ "messages": [BATCH_B, BATCH_A] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=1 rejected=0"
    );
}

#[tokio::test]
async fn event_grid_events_in_the_object_and_the_string_form_are_processed() {
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).expect("fixture");
    for as_string in [false, true] {
        let h = harness(MemoryStore::new());
        for (i, event) in events.iter().enumerate() {
            // The host passes the trigger value as a JSON object, or (when it holds it as a
            // string) as that text, serialized once more.
            let data = if as_string {
                json!({ "event": event.to_string() })
            } else {
                json!({ "event": event })
            };
            let (status, body) = h.invoke(EVENT_GRID_FUNCTION, data).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "string form {as_string}, event {i}: {body}"
            );
            assert_eq!(
                summary(&body),
                "records=1 events=1 skipped=0 findings=".to_owned()
                    + if i == events.len() - 1 {
                        "1 sent=1"
                    } else {
                        "0 sent=0"
                    }
                    + " rejected=0",
                "string form {as_string}, event {i}"
            );
        }
        assert_eq!(h.sink.sent().len(), 1, "string form {as_string}");
        assert_exposed_restore(&h.sink.sent()[0]);
    }
}

/// A store whose `add_facts` answers the first `answered` calls and then never answers, like
/// a table that stopped responding in the middle of a batch.
fn stalling_store(answered: usize) -> FaultyStore {
    let store = FaultyStore::new();
    store.fail(Op::AddFacts, answered.., StoreFault::Stall);
    store
}

/// One snapshot write per record, each of its own snapshot: one `add_facts` call each.
fn snapshot_writes(count: usize) -> String {
    let records: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "time": format!("2024-04-15T10:{i:02}:00Z"),
                "resourceId": format!("/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/Ops-RG/providers/Microsoft.Compute/snapshots/s{i}"),
                "operationName": "MICROSOFT.COMPUTE/SNAPSHOTS/WRITE",
                "resultType": "Success",
                "correlationId": format!("11111111-2222-4333-8444-{i:012}"),
            })
        })
        .collect();
    json!({ "records": records }).to_string()
}

#[tokio::test]
async fn a_batch_that_outlasts_the_deadline_keeps_what_it_did_not_finish_in_rejects() {
    let deadline = Duration::from_secs(1);
    let h = harness_with(stalling_store(2), FakePurger::default(), deadline);
    let message = snapshot_writes(5);
    let started = std::time::Instant::now();
    // Without a deadline the invocation would hang until the host kills it (functionTimeout)
    // and the batch, already checkpointed, would be gone.
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), h.event_hub(&[&message]))
        .await
        .expect("the invocation answers once its deadline passes");
    // Records stop a quarter before the deadline (the rest is kept for alert delivery).
    let elapsed = started.elapsed();
    assert!(elapsed >= deadline / 2, "{elapsed:?}");
    assert!(elapsed < deadline + Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=5 events=5 skipped=0 findings=0 sent=0 rejected=3"
    );
    let rejects = rejects(&body);
    assert_eq!(rejects.len(), 3, "{rejects:#?}");
    for (reject, snapshot) in rejects.iter().zip(["s2", "s3", "s4"]) {
        assert_eq!(reject["kind"], "unfinished", "{reject}");
        assert!(
            reject["reason"].as_str().unwrap().contains("deadline"),
            "{reject}"
        );
        let record: Value = serde_json::from_str(reject["record"].as_str().unwrap())
            .expect("the record as received");
        assert!(
            record["resourceId"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/snapshots/{snapshot}")),
            "{record}"
        );
    }
    // The two records that finished are stored.
    assert_eq!(h.state.detector.store().inner().fact_count(), 2);
}

#[tokio::test]
async fn a_sink_that_stalls_past_the_deadline_leaves_the_finding_in_rejects() {
    let deadline = Duration::from_secs(1);
    let h = harness_with(MemoryStore::new(), FakePurger::default(), deadline);
    h.sink.fail_next(usize::MAX, SinkFault::Stall);
    let started = std::time::Instant::now();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(30), h.event_hub(&[BATCH_B, BATCH_A]))
            .await
            .expect("the invocation answers once its deadline passes");
    assert!(started.elapsed() < deadline + Duration::from_secs(5));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=0 rejected=1"
    );
    let rejects = rejects(&body);
    assert_eq!(rejects[0]["kind"], "undelivered", "{rejects:?}");
    assert!(
        rejects[0]["reason"].as_str().unwrap().contains("deadline"),
        "{rejects:?}"
    );
    let finding: Value =
        serde_json::from_str(rejects[0]["record"].as_str().unwrap()).expect("finding JSON");
    assert_eq!(finding["rule"], "chain.exposed-restore");
}

#[tokio::test]
async fn without_slack_findings_are_logged_and_nothing_is_claimed() {
    let h = harness_alerting(
        MemoryStore::new(),
        FakePurger::default(),
        Duration::from_secs(240),
        |_| Alerts::LogOnly,
    );
    let (status, body) = h.event_hub(&[BATCH_B, BATCH_A]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=0 rejected=0"
    );
    assert!(h.sink.sent().is_empty());
    // Nothing was claimed: once Slack is configured, the chain's next event alerts it. The
    // finding's id is the same in a harness that does alert.
    let alerting = harness(MemoryStore::new());
    alerting.event_hub(&[BATCH_B, BATCH_A]).await;
    let id = alerting.sink.sent()[0].id.clone();
    let now = Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap();
    let claim = h
        .state
        .detector
        .store()
        .claim_alert(&id, now, 60, now.timestamp() + 3600)
        .await
        .expect("claim");
    assert!(matches!(claim, Claim::Won), "{claim:?}");
}

#[tokio::test]
async fn unusable_slack_keeps_every_finding_in_rejects_with_the_reason() {
    let h = harness_alerting(
        MemoryStore::new(),
        FakePurger::default(),
        Duration::from_secs(240),
        |_| {
            Alerts::Unusable(
                "SNAPWATCH_SLACK_WEBHOOK_URL is an unresolved Key Vault reference".into(),
            )
        },
    );
    let (status, body) = h.event_hub(&[BATCH_B, BATCH_A]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        summary(&body),
        "records=7 events=5 skipped=2 findings=1 sent=0 rejected=1"
    );
    let rejects = rejects(&body);
    assert_eq!(rejects[0]["kind"], "undelivered");
    assert_eq!(
        rejects[0]["reason"],
        "Slack is disabled: SNAPWATCH_SLACK_WEBHOOK_URL is an unresolved Key Vault reference"
    );
    assert!(h.sink.sent().is_empty());
    // Event Grid is not asked to redeliver for it: a redelivery cannot fix the setting.
    let events: Vec<Value> = serde_json::from_str(GRID_CHAIN).expect("fixture");
    for event in &events {
        let (status, _) = h.event_grid(event).await;
        assert_eq!(status, StatusCode::OK);
    }
}

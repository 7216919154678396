//! The Cloud Run handler through its router (`oneshot`, no port), in both CloudEvent modes, from
//! the project's GCP fixtures (real Cloud Audit Log shapes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use snapwatch_core::config::env as core_env;
use snapwatch_core::engine::Detector;
use snapwatch_core::parse::gcp::AUDIT_LOG_WRITTEN;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::Config;
use snapwatch_gcp::rejects::MemoryRejects;
use snapwatch_gcp::service::{app, Service};
use snapwatch_testkit::{FaultyStore, MemorySink, SinkFault};
use std::sync::Arc;
use tower::ServiceExt;

/// Records what Slack would have received (as rule and snapshot).
fn slack_sent(slack: &MemorySink) -> Vec<(String, String)> {
    slack
        .sent()
        .iter()
        .map(|f| (f.rule.to_string(), f.snapshot.clone()))
        .collect()
}

/// The store can be switched off, like Firestore during an outage.
type TestService = Service<Arc<FaultyStore>, MemoryRejects, MemorySink, NoResponse>;

/// No responder: every response mode is off in these tests.
type NoResponse = snapwatch_gcp::respond::ComputeResponder<snapwatch_gcp_inventory::NoToken>;

struct Harness {
    service: Arc<TestService>,
    store: Arc<FaultyStore>,
    rejects: MemoryRejects,
    slack: MemorySink,
}

/// Only critical findings alert, so the exposed-restore chain is the one alert to expect.
fn harness() -> Harness {
    let store = Arc::new(FaultyStore::new());
    let rejects = MemoryRejects::new();
    let slack = MemorySink::named("slack");
    let config =
        Config::from_lookup(|k| (k == core_env::MIN_SEVERITY).then(|| "critical".to_string()))
            .expect("config");
    let now = DateTime::parse_from_rfc3339("2024-04-12T20:30:00Z")
        .expect("now")
        .with_timezone(&Utc);
    let service = Arc::new(Service {
        detector: Detector::new(Arc::clone(&store), config),
        rejects: rejects.clone(),
        slack: Some(slack.clone()),
        clock: Box::new(FixedClock(now)),
        responder: None,
    });
    Harness {
        service,
        store,
        rejects,
        slack,
    }
}

impl Harness {
    async fn post(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(Arc::clone(&self.service))
            .oneshot(request)
            .await
            .expect("the router always answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }
}

/// Eventarc's binary mode: attributes in `ce-*` headers, the LogEntry as the body.
fn binary(entry: &str) -> Request<Body> {
    // Malformed bodies are sent too: their attributes then fall back to placeholders.
    let parsed: Value = serde_json::from_str(entry).unwrap_or(Value::Null);
    let insert_id = parsed["insertId"].as_str().unwrap_or("no-insert-id");
    let resource = parsed["protoPayload"]["resourceName"]
        .as_str()
        .unwrap_or("");
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
        .header("ce-time", parsed["timestamp"].as_str().unwrap_or(""))
        .header("ce-subject", format!("compute.googleapis.com/{resource}"))
        .header(
            "ce-methodname",
            parsed["protoPayload"]["methodName"].as_str().unwrap_or(""),
        )
        .header("ce-servicename", "compute.googleapis.com")
        .body(Body::from(entry.to_string()))
        .expect("request")
}

/// Structured mode: the whole CloudEvent, attributes and `data`, as the body.
fn structured(entry: &str) -> Request<Body> {
    let data: Value = serde_json::from_str(entry).expect("fixture JSON");
    let insert_id = data["insertId"].as_str().unwrap_or("no-insert-id");
    let event = json!({
        "specversion": "1.0",
        "id": format!("projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity{insert_id}"),
        "source": "//cloudaudit.googleapis.com/projects/acme-prod/logs/activity",
        "type": AUDIT_LOG_WRITTEN,
        "time": data["timestamp"],
        "datacontenttype": "application/json; charset=utf-8",
        "subject": format!("compute.googleapis.com/{}", data["protoPayload"]["resourceName"].as_str().unwrap_or("")),
        "methodName": data["protoPayload"]["methodName"],
        "serviceName": "compute.googleapis.com",
        "data": data,
    });
    Request::post("/")
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(Body::from(event.to_string()))
        .expect("request")
}

/// Out of order, with an `operation.last` record and a redelivery: firewall (no sourceRanges)
/// first, then the instance restored from the snapshot (beta method), the snapshot's closing
/// record, the snapshot itself, and the instance again.
const CHAIN_OUT_OF_ORDER: [&str; 5] = [
    "firewalls_insert_no_source_ranges.json",
    "instances_insert_beta_restore.json",
    "snapshots_insert_operation_last.json",
    "snapshots_insert_v1.json",
    "instances_insert_beta_restore.json",
];

async fn chain_ends_in_one_alert(mode: fn(&str) -> Request<Body>) {
    let h = harness();
    let mut outcomes = Vec::new();
    for name in CHAIN_OUT_OF_ORDER {
        let (status, body) = h.post(mode(&common::fixture(name))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        outcomes.push(body["outcome"].as_str().unwrap_or("?").to_string());
    }
    assert_eq!(
        outcomes,
        [
            "processed",
            "processed",
            "skipped",
            "processed",
            "processed"
        ],
        "the operation.last record is skipped, every other record processed"
    );
    assert_eq!(
        slack_sent(&h.slack),
        vec![(
            "chain.exposed-restore".to_string(),
            "projects/acme-prod/global/snapshots/db-snap-0412".to_string()
        )],
        "one alert for the whole chain, none for the redelivery"
    );
    assert!(h.rejects.kept().is_empty());
}

#[tokio::test]
async fn binary_mode_chain_out_of_order_ends_in_one_alert() {
    chain_ends_in_one_alert(binary).await;
}

#[tokio::test]
async fn structured_mode_chain_out_of_order_ends_in_one_alert() {
    chain_ends_in_one_alert(structured).await;
}

#[tokio::test]
async fn beta_methods_and_operation_records_in_both_modes() {
    for mode in [binary as fn(&str) -> Request<Body>, structured] {
        let h = harness();
        let (status, body) = h
            .post(mode(&common::fixture("disks_createSnapshot_beta.json")))
            .await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (StatusCode::OK, Some("processed")),
            "{body}"
        );
        let (status, body) = h
            .post(mode(&common::fixture(
                "snapshots_insert_operation_last.json",
            )))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({ "outcome": "skipped", "reason": "intermediate" })
        );
        let (status, body) = h
            .post(mode(&common::fixture(
                "instances_insert_permission_denied.json",
            )))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "outcome": "skipped", "reason": "failed" }));
    }
}

#[tokio::test]
async fn other_event_types_are_acknowledged_and_skipped() {
    let h = harness();
    let mut request = binary(&common::fixture("snapshots_insert_v1.json"));
    request.headers_mut().insert(
        "ce-type",
        "google.cloud.storage.object.v1.finalized"
            .parse()
            .expect("header"),
    );
    let (status, body) = h.post(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "outcome": "skipped", "reason": "irrelevant" })
    );
}

#[tokio::test]
async fn malformed_body_is_acknowledged_and_kept_as_rejected() {
    let h = harness();
    let mut request = binary(r#"{"protoPayload": {"methodName": "v1.compute.snapshots.insert""#);
    request
        .headers_mut()
        .insert("ce-id", "broken-event-1".parse().expect("header"));
    let (status, body) = h.post(request).await;
    assert_eq!(status, StatusCode::OK, "poison events are acked: {body}");
    assert_eq!(body["outcome"], "rejected");
    let kept = h.rejects.kept();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].event_id.as_deref(), Some("broken-event-1"));
    assert!(
        kept[0].reason.starts_with("invalid JSON"),
        "{}",
        kept[0].reason
    );
    assert_eq!(
        kept[0].body,
        r#"{"protoPayload": {"methodName": "v1.compute.snapshots.insert""#
    );
    assert_eq!(kept[0].content_type, "application/json; charset=utf-8");

    // Structured mode with a LogEntry that is not an audit log, and a request with no CloudEvent
    // attributes at all: both kept too.
    let not_audit = json!({"specversion": "1.0", "id": "ev-2", "type": AUDIT_LOG_WRITTEN,
        "source": "//cloudaudit.googleapis.com/projects/acme-prod/logs/activity",
        "data": {"insertId": "x", "textPayload": "hello"}});
    let request = Request::post("/")
        .header("content-type", "application/cloudevents+json")
        .body(Body::from(not_audit.to_string()))
        .expect("request");
    let (status, _) = h.post(request).await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let (status, body) = h.post(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outcome"], "rejected");
    let kept = h.rejects.kept();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[1].event_id.as_deref(), Some("ev-2"));
    // No CloudEvent attributes: no id, rather than an empty one.
    assert_eq!(kept[2].event_id, None);
    assert!(
        kept[1].reason.contains("protoPayload"),
        "{}",
        kept[1].reason
    );
    assert!(
        kept[2].reason.contains("not a CloudEvent"),
        "{}",
        kept[2].reason
    );
}

#[tokio::test]
async fn store_outage_asks_for_redelivery_and_the_retry_alerts_once() {
    let h = harness();
    for name in [
        "snapshots_insert_v1.json",
        "instances_insert_beta_restore.json",
    ] {
        let (status, _) = h.post(binary(&common::fixture(name))).await;
        assert_eq!(status, StatusCode::OK);
    }
    h.store.set_down(true);
    let firewall = common::fixture("firewalls_insert_no_source_ranges.json");
    let (status, body) = h.post(binary(&firewall)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["outcome"], "retry");
    assert!(slack_sent(&h.slack).is_empty());

    // Pub/Sub redelivers once Firestore is back: the chain completes and alerts once.
    h.store.set_down(false);
    let (status, _) = h.post(binary(&firewall)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(slack_sent(&h.slack).len(), 1);
}

#[tokio::test]
async fn slack_rate_limit_asks_for_redelivery_and_the_retry_sends_once() {
    let h = harness();
    h.slack.fail_next(
        1,
        SinkFault::Transient {
            retry_after_secs: Some(30),
        },
    );
    for name in [
        "snapshots_insert_v1.json",
        "instances_insert_beta_restore.json",
    ] {
        let (status, _) = h.post(binary(&common::fixture(name))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let firewall = common::fixture("firewalls_insert_no_source_ranges.json");
    let response = app(Arc::clone(&h.service))
        .oneshot(binary(&firewall))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    assert!(slack_sent(&h.slack).is_empty());
    let (status, body) = h.post(binary(&firewall)).await;
    assert_eq!(
        (status, body["sent"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (status, body) = h.post(binary(&firewall)).await;
    assert_eq!(
        (status, body["sent"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{body}"
    );
    assert_eq!(slack_sent(&h.slack).len(), 1);
}

/// The aggregated sink's trigger: Pub/Sub messages whose data is the LogEntry, base64-encoded.
#[tokio::test]
async fn aggregated_sink_messages_are_unwrapped_in_both_modes() {
    use base64::Engine as _;
    let h = harness();
    let encode =
        |name: &str| base64::engine::general_purpose::STANDARD.encode(common::fixture(name));
    let push = |name: &str| {
        json!({
            "message": { "data": encode(name), "messageId": "1234567890", "publishTime": "2024-04-12T20:06:31Z" },
            "subscription": "projects/acme-sec/subscriptions/eventarc-global-snapwatch-aggregated-sub-001"
        })
    };
    let binary_message = |name: &str| {
        Request::post("/")
            .header("content-type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("msg-{name}"))
            .header(
                "ce-source",
                "//pubsub.googleapis.com/projects/acme-sec/topics/snapwatch-audit-logs",
            )
            .header("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
            .body(Body::from(push(name).to_string()))
            .expect("request")
    };
    let structured_message = |name: &str| {
        let event = json!({
            "specversion": "1.0", "id": format!("msg-{name}"),
            "source": "//pubsub.googleapis.com/projects/acme-sec/topics/snapwatch-audit-logs",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "data": push(name),
        });
        Request::post("/")
            .header("content-type", "application/cloudevents+json")
            .body(Body::from(event.to_string()))
            .expect("request")
    };
    let (status, body) = h
        .post(binary_message("firewalls_insert_no_source_ranges.json"))
        .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("processed")),
        "{body}"
    );
    let (status, body) = h
        .post(structured_message("instances_insert_beta_restore.json"))
        .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("processed")),
        "{body}"
    );
    let (status, body) = h.post(binary_message("snapshots_insert_v1.json")).await;
    assert_eq!(
        (status, body["sent"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    assert_eq!(slack_sent(&h.slack).len(), 1);

    let mut garbage = binary_message("snapshots_insert_v1.json");
    *garbage.body_mut() = Body::from(r#"{"message":{"data":"%%%not base64"}}"#);
    let (status, body) = h.post(garbage).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("rejected"))
    );
    assert!(
        h.rejects.kept()[0].reason.contains("not base64"),
        "{:?}",
        h.rejects.kept()
    );
}

//! The scheduled baseline on Cloud Run against the Compute Engine stub (hand-written REST answers
//! in tests/fixtures/gcp-baseline): the AWS baseline's scenarios for a GCP project, the
//! `POST /baseline` route, and the run's records in the Firestore emulator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;
#[path = "../../../shared/gcp-inventory/tests/stub/mod.rs"]
mod stub;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::parse::gcp::parse_entry;
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{Clock, StateStore};
use snapwatch_core::rules::Rule;
use snapwatch_core::{Config, FoundBy};
use snapwatch_gcp::baseline::{self, BaselineApp};
use snapwatch_gcp_inventory::{ComputeLister, NoToken};
use snapwatch_http::{Backoff, RetryPolicy};
use snapwatch_testkit::{MemorySink, SinkFault};
use std::sync::{Arc, Mutex};
use stub::{ComputeStub, Fault, PROJECT};
use tower::ServiceExt;

const NIGHTLY: &str = "projects/snap-prod/global/snapshots/nightly-db";
const HANDOFF: &str = "projects/snap-prod/global/snapshots/handoff";
const LATE: &str = "projects/snap-prod/global/snapshots/late-arrival";
const GOLDEN: &str = "projects/snap-prod/global/images/golden-web";
const ZONAL: &str = "projects/snap-prod/zones/us-central1-a/disks/db-data";

#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn at(start: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(start)))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-30T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Harness<S: StateStore> {
    stub: ComputeStub,
    slack: Arc<MemorySink>,
    clock: TestClock,
    app: BaselineApp<S, Arc<MemorySink>, NoToken>,
}

async fn harness<S: StateStore>(store: S) -> Harness<S> {
    let stub = ComputeStub::start().await;
    let slack = Arc::new(MemorySink::new());
    let clock = TestClock::at(start());
    let lister = ComputeLister::new(&stub.endpoint, NoToken)
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::exponential(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_millis(2),
            ),
            max_retry_after: std::time::Duration::from_secs(1),
        });
    let app = BaselineApp {
        detector: Detector::new(store, Config::default()),
        lister,
        projects: vec![PROJECT.to_string()],
        slack: Some(slack.clone()),
        clock: Box::new(clock.clone()),
    };
    Harness {
        stub,
        slack,
        clock,
        app,
    }
}

/// A `setIamPolicy` audit record granting `member` on `resource` (a `projects/…` id), as
/// Compute Engine logs it.
fn set_iam_policy_event(
    resource: &str,
    member: &str,
    at: DateTime<Utc>,
) -> snapwatch_core::ParsedEvent {
    let entry = serde_json::json!({
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": { "principalEmail": "ops-admin@snap-prod.example" },
            "requestMetadata": { "callerIp": "203.0.113.24" },
            "serviceName": "compute.googleapis.com",
            "methodName": "v1.compute.snapshots.setIamPolicy",
            "resourceName": resource,
            "request": {
                "@type": "type.googleapis.com/compute.snapshots.setIamPolicy",
                "policy": { "bindings": [ { "role": "roles/compute.storageAdmin", "members": [member] } ] }
            }
        },
        "insertId": format!("ev-{}", at.timestamp()),
        "resource": { "type": "gce_snapshot", "labels": { "project_id": PROJECT } },
        "timestamp": at.to_rfc3339(),
        "logName": "projects/snap-prod/logs/cloudaudit.googleapis.com%2Factivity"
    });
    match parse_entry(&entry.to_string()).unwrap() {
        Parsed::Event(event) => event,
        other => panic!("not an event: {other:?}"),
    }
}

fn ids_of(rule: Rule, findings: &[snapwatch_core::Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.snapshot.clone())
        .collect()
}

#[tokio::test]
async fn exposures_are_found_with_no_event_and_a_rerun_finds_nothing_new() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    h.stub.set_policy(HANDOFF, "policy-external.json");
    h.stub.set_policy(GOLDEN, "policy-public.json");
    h.stub.set_policy(ZONAL, "policy-external.json");
    let first = h.app.run().await.unwrap();
    let project = &first.projects[0];
    assert!(project.first_run);
    assert_eq!(project.items, 7);
    assert_eq!(project.exposures_found_by_baseline, 3);
    assert_eq!(project.unexplained, 0);
    let sent = h.slack.sent();
    assert_eq!(ids_of(Rule::SnapshotPublic, &sent), [GOLDEN]);
    let mut shared = ids_of(Rule::SnapshotSharedExternal, &sent);
    shared.sort();
    // The golden image is also shared with an outside group (a conditional binding).
    assert_eq!(shared, [GOLDEN, HANDOFF, ZONAL]);
    assert!(sent.iter().all(|f| f.found_by == FoundBy::Baseline));
    assert!(sent.iter().all(|f| f.account == PROJECT));
    assert_eq!(project.sent.len(), 4, "{project:?}");

    h.clock.advance(Duration::hours(1));
    h.stub.reset_requests();
    let rerun = h.app.run().await.unwrap();
    let project = &rerun.projects[0];
    assert!(!project.first_run);
    assert_eq!(
        (
            project.new_items,
            project.changed_items,
            project.unexplained
        ),
        (0, 0, 0)
    );
    assert!(project.sent.is_empty(), "{project:?}");
    assert_eq!(h.slack.sent().len(), 4);
    // The cost of a run: 5 list pages + one getIamPolicy per resource.
    assert_eq!(h.stub.requests().len(), 5 + 7);
}

#[tokio::test]
async fn an_exposure_an_event_reported_has_one_id_and_is_not_alerted_twice() {
    // The id the event path gives a share of HANDOFF with eve…
    let events_only = Detector::new(MemoryStore::new(), Config::default());
    let event = set_iam_policy_event(HANDOFF, "user:eve@evil.example", start());
    let event_findings = events_only.process(&event, start()).await.unwrap();
    let event_id = event_findings
        .iter()
        .find(|f| f.rule == Rule::SnapshotSharedExternal)
        .map(|f| f.id.clone())
        .unwrap();
    // …is the id the baseline gives the same exposure found with no event.
    let baseline_only = harness(Arc::new(MemoryStore::new())).await;
    baseline_only
        .stub
        .set_policy(HANDOFF, "policy-external.json");
    let outcome = baseline_only.app.run().await.unwrap();
    assert_eq!(
        outcome.projects[0].findings,
        std::slice::from_ref(&event_id)
    );

    // With the event received and alerted first, the baseline explains the share by it.
    let h = harness(Arc::new(MemoryStore::new())).await;
    h.stub.set_policy(HANDOFF, "policy-external.json");
    let findings = h.app.detector.process(&event, start()).await.unwrap();
    h.app
        .detector
        .deliver(&findings, &h.slack, start())
        .await
        .unwrap();
    assert_eq!(h.slack.sent_ids(), std::slice::from_ref(&event_id));
    h.clock.advance(Duration::hours(2));
    let outcome = h.app.run().await.unwrap();
    assert_eq!(outcome.projects[0].exposures_found_by_baseline, 0);
    assert!(outcome.projects[0].sent.is_empty(), "{outcome:?}");
    assert_eq!(h.slack.sent_ids(), [event_id]);
}

#[tokio::test]
async fn an_unexplained_change_alerts_once_after_settling() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    h.stub.hide("late-arrival");
    h.stub.hide("db-data");
    let first = h.app.run().await.unwrap();
    assert!(first.projects[0].first_run);
    assert!(h.slack.sent().is_empty());

    // Since then, with no event: a new snapshot, a new disk, and nightly-db shared with eve.
    h.stub.show("late-arrival");
    h.stub.show("db-data");
    h.stub.set_policy(NIGHTLY, "policy-external.json");
    h.clock.advance(Duration::hours(1));
    let seen = h.app.run().await.unwrap();
    let project = &seen.projects[0];
    assert_eq!((project.new_items, project.changed_items), (2, 1));
    // The exposure alerts at once; the changes are not judged before they settle.
    assert_eq!(project.unexplained, 0);
    assert_eq!(
        ids_of(Rule::SnapshotSharedExternal, &h.slack.sent()),
        [NIGHTLY]
    );

    h.clock.advance(Duration::minutes(31));
    let settled = h.app.run().await.unwrap();
    assert_eq!(settled.projects[0].unexplained, 2, "{settled:?}");
    let mut unexplained = ids_of(Rule::SnapshotUnexplained, &h.slack.sent());
    unexplained.sort();
    // The disk's appearance is not judged: disks come and go with instances.
    assert_eq!(unexplained, [LATE, NIGHTLY]);

    h.clock.advance(Duration::hours(1));
    let later = h.app.run().await.unwrap();
    assert!(later.projects[0].sent.is_empty(), "{later:?}");
    assert_eq!(ids_of(Rule::SnapshotUnexplained, &h.slack.sent()).len(), 2);
}

#[tokio::test]
async fn the_first_run_only_records() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    let first = h.app.run().await.unwrap();
    assert!(first.projects[0].first_run);
    assert_eq!(first.projects[0].new_items, 7);
    h.clock.advance(Duration::hours(2));
    let second = h.app.run().await.unwrap();
    assert_eq!(second.projects[0].unexplained, 0, "{second:?}");
    assert!(h.slack.sent().is_empty());
}

#[tokio::test]
async fn a_failed_delivery_is_found_again() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    h.stub.set_policy(HANDOFF, "policy-external.json");
    h.slack.fail_next(
        1,
        SinkFault::Transient {
            retry_after_secs: Some(5),
        },
    );
    let error = h.app.run().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(h.slack.sent().is_empty());

    h.clock.advance(Duration::minutes(5));
    let retried = h.app.run().await.unwrap();
    // Not recorded by the failed run: still the first.
    assert!(retried.projects[0].first_run);
    assert_eq!(
        ids_of(Rule::SnapshotSharedExternal, &h.slack.sent()),
        [HANDOFF]
    );
    h.clock.advance(Duration::hours(1));
    h.app.run().await.unwrap();
    assert_eq!(h.slack.sent().len(), 1);
}

#[tokio::test]
async fn the_route_answers_the_outcome_and_a_retryable_status() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    let stub = h.stub.clone();
    let app = Arc::new(h.app);
    let router = baseline::routes(app.clone());
    let post = || Request::post("/baseline").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["projects"][0]["project"], PROJECT);
    assert_eq!(outcome["projects"][0]["items"], 7);

    for _ in 0..2 {
        stub.inject(Fault {
            path: "/global/images".into(),
            status: 429,
            file: "error-429.json",
            retry_after: None,
        });
    }
    let response = router.clone().oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    stub.inject(Fault {
        path: "/global/snapshots".into(),
        status: 403,
        file: "error-forbidden-403.json",
        retry_after: None,
    });
    let response = router.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let failed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(failed["retryable"], false, "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains(PROJECT),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_records_live_in_firestore() {
    let Some(store) = common::emulator_store("baseline_records") else {
        return;
    };
    let h = harness(store.clone()).await;
    h.stub.set_policy(HANDOFF, "policy-external.json");
    let first = h.app.run().await.unwrap();
    assert!(first.projects[0].first_run);
    assert_eq!(h.slack.sent().len(), 1);
    let now = h.clock.now();
    let scope = store
        .load_facts(
            &["snapwatch-baseline#scope#gcp#snap-prod#global".to_string()],
            now,
        )
        .await
        .unwrap();
    assert_eq!(scope.len(), 1, "the run's marker is a fact in Firestore");
    let seen = store
        .load_facts(&[format!("snapwatch-baseline#{HANDOFF}")], now)
        .await
        .unwrap();
    assert_eq!(
        seen.len(),
        1,
        "what the run saw of each resource is a fact too"
    );
    let exposure = store.load_facts(&[HANDOFF.to_string()], now).await.unwrap();
    assert!(!exposure.is_empty(), "the exposure is a chain fact");

    // A new service instance over the same database continues from those records.
    h.clock.advance(Duration::hours(1));
    let again = harness(store).await;
    again.stub.set_policy(HANDOFF, "policy-external.json");
    again.clock.advance(Duration::hours(1));
    let rerun = again.app.run().await.unwrap();
    assert!(!rerun.projects[0].first_run, "{rerun:?}");
    assert_eq!(rerun.projects[0].new_items, 0);
    assert!(
        again.slack.sent().is_empty(),
        "the claim in Firestore stops a second alert"
    );
}

/// The figures of the README (Snapshot baseline, GCP): a project of 1,000 snapshots, a first run
/// and a rerun against the stub with the in-memory store; the stub counts the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_1000_snapshots() {
    let h = harness(Arc::new(MemoryStore::new())).await;
    h.stub.generate_snapshots(1000);
    let started = std::time::Instant::now();
    let first = h.app.run().await.unwrap();
    let first_elapsed = started.elapsed();
    assert_eq!(first.projects[0].items, 1004);
    let first_requests = h.stub.requests().len();
    assert_eq!(first_requests, 1002 + 3 + 4);
    h.clock.advance(Duration::hours(1));
    h.stub.reset_requests();
    let started = std::time::Instant::now();
    let rerun = h.app.run().await.unwrap();
    let rerun_elapsed = started.elapsed();
    assert_eq!(rerun.projects[0].new_items, 0);
    assert_eq!(h.stub.requests().len(), first_requests);
    eprintln!(
        "1000 snapshots: first run {first_elapsed:?}, rerun {rerun_elapsed:?}, {first_requests} requests each"
    );
}

/// On Cloud Run the listing authenticates with the service account's metadata-server token,
/// through the Firestore client's cache (one token path for the service).
#[tokio::test]
async fn the_listing_sends_the_service_accounts_metadata_token() {
    use snapwatch_gcp::baseline::ServiceToken;
    use snapwatch_gcp::firestore::{FirestoreClient, FirestoreTarget};
    let metadata = axum::Router::new().route(
        "/computeMetadata/v1/instance/service-accounts/default/token",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            assert_eq!(headers.get("metadata-flavor").unwrap(), "Google");
            axum::Json(serde_json::json!({ "access_token": "ya29.stand-in", "expires_in": 3600, "token_type": "Bearer" }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, metadata).await.unwrap() });
    let client = FirestoreClient::new(FirestoreTarget::production(PROJECT, "(default)"))
        .unwrap()
        .with_metadata_host(&host);
    let stub = ComputeStub::start().await;
    let lister = ComputeLister::new(&stub.endpoint, ServiceToken(Arc::new(client))).unwrap();
    let inventory = lister.list_project(PROJECT, start()).await.unwrap();
    assert_eq!(inventory.items.len(), 7);
    let authorizations = stub.authorizations();
    assert_eq!(authorizations.len(), 12);
    assert!(
        authorizations
            .iter()
            .all(|a| a.as_deref() == Some("Bearer ya29.stand-in")),
        "{authorizations:?}"
    );
}

/// The built service serves `POST /baseline` only when `SNAPWATCH_BASELINE_PROJECTS` is set, and
/// lists through `SNAPWATCH_COMPUTE_ENDPOINT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_binary_mounts_the_route_when_projects_are_configured() {
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty());
    let stub = ComputeStub::start().await;
    for projects in [None, Some(PROJECT)] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_snapwatch-gcp"));
        command
            .env_clear()
            .env("PORT", port.to_string())
            .env(
                "SNAPWATCH_FIRESTORE_PROJECT",
                format!("snapwatch-baseline-{}", common::unique_suffix()),
            )
            // A closed port without the emulator: the store then fails transiently.
            .env(
                "FIRESTORE_EMULATOR_HOST",
                emulator.clone().unwrap_or_else(|| "127.0.0.1:9".to_owned()),
            )
            .env("SNAPWATCH_COMPUTE_ENDPOINT", &stub.endpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(project) = projects {
            command.env("SNAPWATCH_BASELINE_PROJECTS", project);
        }
        let mut child = command.spawn().unwrap();
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while client.get(format!("{url}/healthz")).send().await.is_err() {
            assert!(started.elapsed().as_secs() < 60, "service did not start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let response = client.post(format!("{url}/baseline")).send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        match (projects, &emulator) {
            (None, _) => assert_eq!(status, 404),
            (Some(_), Some(_)) => {
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["projects"][0]["items"], 7);
            }
            (Some(_), None) => assert_eq!(status, 503, "{body}"),
        }
    }
}

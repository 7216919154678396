//! The Azure snapshot baseline end to end: the `Baseline` function's run over the Resource
//! Manager stub (tests/fixtures/azure-baseline pages), chain state in memory or in Table Storage
//! on Azurite, alerts into a test sink. The scenarios are the AWS baseline's: exposures found with
//! no event, a rerun finds nothing new, an exposure an event already reported is not alerted
//! twice (one finding id for both paths), an unexplained change alerts once after settling, the
//! first run only records, a failed delivery is found again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use snapwatch_azure::baseline::{router, BaselineError, BaselineState};
use snapwatch_azure::handler::Alerts;
use snapwatch_azure_inventory::ArmLister;
use snapwatch_core::engine::Detector;
use snapwatch_core::finding::finding_id;
use snapwatch_core::memory::{MemorySink, MemoryStore, SinkFault};
use snapwatch_core::model::{Cloud, FoundBy, Rule};
use snapwatch_core::parse::{azure, Parsed};
use snapwatch_core::ports::{Clock, StateStore};
use snapwatch_core::Config;
use snapwatch_http::{Backoff, RetryPolicy};
use std::sync::{Arc, Mutex};

mod arm_stub;
mod azurite;
use arm_stub::{ArmStub, Fault, StubToken, SUBSCRIPTION};

/// Where the fixtures live (the event fixture names the stub's exported snapshot).
const LEAKED_SNAPSHOT: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/prod-data-rg/providers/microsoft.compute/snapshots/sqlvm01-osdisk-snap";
const EXPORTED_DISK: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/prod-data-rg/providers/microsoft.compute/disks/finance-data-01";
const NIGHTLY: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/backup-rg/providers/microsoft.compute/snapshots/nightly-2024-04-14";
/// The fixture's community gallery (public) and the one shared with a partner's subscription.
const COMMUNITY_GALLERY: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/images-rg/providers/microsoft.compute/galleries/public_golden";
const PARTNER_GALLERY: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/images-rg/providers/microsoft.compute/galleries/partner_builds";
const INTERNAL_GALLERY: &str = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/images-rg/providers/microsoft.compute/galleries/internal_images";
/// The partner's subscription the fixture gallery is shared with, as listed.
const PARTNER_SUBSCRIPTION: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

/// A clock the test moves between scheduled runs.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Shortly after the fixture export event (2024-04-15T09:40:22Z), within the chain window.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 15, 10, 0, 0).unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::exponential(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(50),
        ),
        max_retry_after: std::time::Duration::from_secs(5),
    }
}

struct Deployment<S> {
    state: Arc<BaselineState<S, MemorySink, StubToken>>,
    sink: MemorySink,
    clock: Arc<TestClock>,
}

fn deploy<S: StateStore>(stub: &ArmStub, store: S, clock: Arc<TestClock>) -> Deployment<S> {
    deploy_with(stub, store, clock, Config::default())
}

fn deploy_with<S: StateStore>(
    stub: &ArmStub,
    store: S,
    clock: Arc<TestClock>,
    config: Config,
) -> Deployment<S> {
    let sink = MemorySink::named("slack");
    let state = Arc::new(BaselineState {
        detector: Detector::new(store, config),
        lister: ArmLister::new(reqwest::Client::new(), stub.url(), StubToken::default())
            .with_retry(fast_retry()),
        subscriptions: vec![SUBSCRIPTION.to_owned()],
        alerts: Alerts::Sink(sink.clone()),
        clock: clock.clone(),
    });
    Deployment { state, sink, clock }
}

fn clock() -> Arc<TestClock> {
    Arc::new(TestClock(Mutex::new(start())))
}

fn exported(resource: &str) -> String {
    finding_id(Rule::SnapshotExported, Cloud::Azure, resource)
}

fn public(resource: &str) -> String {
    finding_id(Rule::SnapshotPublic, Cloud::Azure, resource)
}

fn shared_external(resource: &str) -> String {
    finding_id(Rule::SnapshotSharedExternal, Cloud::Azure, resource)
}

fn unexplained_ids(sent: &[snapwatch_core::Finding]) -> Vec<String> {
    sent.iter()
        .filter(|f| f.rule == Rule::SnapshotUnexplained)
        .map(|f| f.snapshot.clone())
        .collect()
}

#[tokio::test]
async fn exposures_are_found_with_no_event_and_a_rerun_finds_nothing_new() {
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    let first = deployment.state.run().await.expect("first run");
    let outcome = &first.subscriptions[0];
    assert!(outcome.first_run);
    assert_eq!(
        outcome.items, 9,
        "3 disks, 3 snapshots and 3 galleries; the element without an id is not one"
    );
    assert_eq!(outcome.rejected, 1, "the element without an id is reported");
    assert_eq!(
        outcome.requests, 5,
        "two disk pages (nextLink followed), one snapshot page, one gallery page, and the \
         partner gallery's own GET for its sharing groups (the list leaves them out)"
    );
    assert_eq!(outcome.exposures_found_by_baseline, 4);
    let mut want = vec![
        exported(LEAKED_SNAPSHOT),
        exported(EXPORTED_DISK),
        public(COMMUNITY_GALLERY),
        shared_external(PARTNER_GALLERY),
    ];
    want.sort();
    let mut sent = deployment.sink.sent_ids();
    sent.sort();
    assert_eq!(
        sent, want,
        "exports open to any network, a community gallery and a gallery shared outside are \
         exposures; the private gallery is not"
    );
    for finding in deployment.sink.sent() {
        assert_eq!(finding.found_by, FoundBy::Baseline);
    }
    let partner = deployment
        .sink
        .sent()
        .into_iter()
        .find(|f| f.rule == Rule::SnapshotSharedExternal)
        .unwrap();
    assert_eq!(partner.snapshot, PARTNER_GALLERY);

    deployment.clock.advance(Duration::hours(1));
    let rerun = deployment.state.run().await.expect("rerun");
    let outcome = &rerun.subscriptions[0];
    assert!(!outcome.first_run);
    assert_eq!(
        (
            outcome.new_items,
            outcome.changed_items,
            outcome.unexplained
        ),
        (0, 0, 0)
    );
    assert!(outcome.sent.is_empty(), "nothing new: {:?}", outcome.sent);
    assert_eq!(deployment.sink.sent().len(), 4, "one alert per exposure");
    assert_eq!(stub.requests(), 10, "5 requests a run");
}

#[tokio::test]
async fn an_exposure_an_event_already_reported_is_not_alerted_twice_and_has_one_id() {
    let raw = include_str!("../../../tests/fixtures/azure/eventgrid_snapshot_begingetaccess.json");
    let Ok(Parsed::Event(event)) = azure::parse_record(raw) else {
        panic!("the fixture is an export event");
    };
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    let detector = &deployment.state.detector;
    let from_event = detector.process(&event, start()).await.expect("event");
    let event_finding = from_event
        .iter()
        .find(|f| f.rule == Rule::SnapshotExported)
        .expect("the event path reports the export");
    assert_eq!(
        event_finding.id,
        exported(LEAKED_SNAPSHOT),
        "same id as the baseline's"
    );
    detector
        .deliver(&from_event, &deployment.sink, start())
        .await
        .expect("deliver");

    // The same exposure found by a listing with no event has that id too.
    let baseline_only = deploy(&stub, MemoryStore::new(), clock());
    baseline_only.state.run().await.expect("baseline only");
    assert!(baseline_only.sink.sent_ids().contains(&event_finding.id));

    let outcome = deployment
        .state
        .run()
        .await
        .expect("baseline after the event");
    assert_eq!(
        outcome.subscriptions[0].exposures_found_by_baseline, 3,
        "only the disk and the two shared galleries"
    );
    let ids = deployment.sink.sent_ids();
    assert_eq!(
        ids.iter().filter(|id| **id == event_finding.id).count(),
        1,
        "the exported snapshot is alerted once: {ids:?}"
    );
    assert!(ids.contains(&exported(EXPORTED_DISK)));
}

#[tokio::test]
async fn an_unexplained_export_alerts_once_after_settling_and_disks_may_appear() {
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    deployment.state.run().await.expect("first run");
    let baseline_alerts = deployment.sink.sent().len();

    // Between runs, with no event: a SAS export opens on the private nightly snapshot, a
    // snapshot appears, and a disk appears (as every new VM's does).
    stub.set_properties(
        "nightly-2024-04-14",
        json!({"diskState": "ActiveSAS", "networkAccessPolicy": "AllowPrivate"}),
    );
    let rogue = "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourceGroups/backup-rg/providers/Microsoft.Compute/snapshots/rogue-copy";
    stub.add(
        "snapshots",
        json!({"name": "rogue-copy", "id": rogue, "type": "Microsoft.Compute/snapshots",
               "properties": {"diskState": "Unattached", "networkAccessPolicy": "DenyAll"}}),
    );
    stub.add(
        "disks",
        json!({"name": "vm2-osdisk", "type": "Microsoft.Compute/disks",
               "id": "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourceGroups/web-rg/providers/Microsoft.Compute/disks/vm2-osdisk",
               "properties": {"diskState": "Attached"}}),
    );
    deployment.clock.advance(Duration::hours(1));
    let seen = deployment.state.run().await.expect("change seen");
    assert_eq!(
        seen.subscriptions[0].unexplained, 0,
        "not judged before it settles"
    );
    assert_eq!(seen.subscriptions[0].new_items, 2);
    assert_eq!(seen.subscriptions[0].changed_items, 1);

    deployment.clock.advance(Duration::minutes(31));
    let settled = deployment.state.run().await.expect("settled");
    assert_eq!(settled.subscriptions[0].unexplained, 2);
    let sent = deployment.sink.sent();
    let mut unexplained = unexplained_ids(&sent);
    unexplained.sort();
    assert_eq!(
        unexplained,
        vec![NIGHTLY.to_owned(), rogue.to_ascii_lowercase()]
    );
    let export = sent
        .iter()
        .find(|f| f.rule == Rule::SnapshotUnexplained && f.snapshot == NIGHTLY)
        .unwrap();
    assert!(
        export.title.contains("export opened with no export event"),
        "{}",
        export.title
    );
    assert!(
        export.summary.contains("SAS download URL"),
        "{}",
        export.summary
    );

    deployment.clock.advance(Duration::hours(1));
    deployment.state.run().await.expect("later run");
    assert_eq!(
        deployment.sink.sent().len(),
        baseline_alerts + 2,
        "each unexplained change alerts once"
    );
}

/// A gallery shared after the first run with no event (the Activity Log parser consumes no
/// gallery share): the external share alerts at once, found by the baseline, and the change is
/// unexplained once it has settled, once. A share with a trusted subscription is no exposure.
#[tokio::test]
async fn a_new_gallery_share_alerts_and_is_unexplained_once_settled() {
    let stub = ArmStub::start().await;
    let outsider = "0F1E2D3C-4B5A-4968-8776-655443322110";
    let config: Config = serde_json::from_value(json!({
        "trust": {"accounts": [PARTNER_SUBSCRIPTION]}
    }))
    .unwrap();
    let deployment = deploy_with(&stub, MemoryStore::new(), clock(), config);
    deployment.state.run().await.expect("first run");
    let mut first = deployment.sink.sent_ids();
    first.sort();
    let mut want = vec![
        exported(LEAKED_SNAPSHOT),
        exported(EXPORTED_DISK),
        public(COMMUNITY_GALLERY),
    ];
    want.sort();
    assert_eq!(first, want, "the partner's subscription is trusted");

    stub.set_properties(
        "internal_images",
        json!({"sharingProfile": {"permissions": "Groups", "groups": [
            {"type": "Subscriptions", "ids": [outsider]}]}}),
    );
    deployment.clock.advance(Duration::hours(1));
    let seen = deployment.state.run().await.expect("share seen");
    assert_eq!(seen.subscriptions[0].changed_items, 1);
    assert_eq!(
        seen.subscriptions[0].unexplained, 0,
        "not judged before it settles"
    );
    let shared: Vec<_> = deployment
        .sink
        .sent()
        .into_iter()
        .filter(|f| f.rule == Rule::SnapshotSharedExternal)
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].id, shared_external(INTERNAL_GALLERY));
    assert_eq!(shared[0].found_by, FoundBy::Baseline);

    deployment.clock.advance(Duration::minutes(31));
    let settled = deployment.state.run().await.expect("settled");
    assert_eq!(settled.subscriptions[0].unexplained, 1);
    assert_eq!(
        unexplained_ids(&deployment.sink.sent()),
        vec![INTERNAL_GALLERY.to_owned()]
    );
    let before = deployment.sink.sent().len();
    deployment.clock.advance(Duration::hours(1));
    deployment.state.run().await.expect("later run");
    assert_eq!(deployment.sink.sent().len(), before, "each alerts once");
}

/// A gallery whose sharing the listing does not say (shared by groups, with no groups) is
/// reported with its reason, never read as private; the rest of the listing still counts.
#[tokio::test]
async fn an_unreadable_gallery_sharing_is_reported_not_read_as_private() {
    let stub = ArmStub::start().await;
    stub.set_properties(
        "internal_images",
        json!({"sharingProfile": {"permissions": "Groups"}}),
    );
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    let outcome = deployment.state.run().await.expect("first run");
    assert_eq!(
        outcome.subscriptions[0].rejected, 2,
        "the id-less disk and the gallery"
    );
    assert_eq!(outcome.subscriptions[0].items, 8);
    assert_eq!(deployment.sink.sent().len(), 4);
}

#[tokio::test]
async fn the_first_run_only_records() {
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    let first = deployment.state.run().await.expect("first run");
    // hr-archive and audit-export have exports open (not reachable from any network): on a
    // first run they may predate snapwatch, so they are recorded, not judged.
    assert_eq!(first.subscriptions[0].unexplained, 0);
    deployment.clock.advance(Duration::hours(2));
    let second = deployment.state.run().await.expect("second run");
    assert_eq!(
        second.subscriptions[0].unexplained, 0,
        "still the recorded state"
    );
    assert!(unexplained_ids(&deployment.sink.sent()).is_empty());
}

#[tokio::test]
async fn a_failed_delivery_is_found_again() {
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    deployment.sink.fail_next(
        usize::MAX,
        SinkFault::Transient {
            retry_after_secs: None,
        },
    );
    let err = deployment.state.run().await.expect_err("delivery fails");
    assert!(
        matches!(&err, BaselineError::Incomplete { first, .. } if matches!(**first, BaselineError::Undelivered { pending: 4, .. })),
        "{err}"
    );
    deployment.sink.heal();
    deployment.clock.advance(Duration::minutes(10));
    let retry = deployment.state.run().await.expect("retry");
    assert!(
        retry.subscriptions[0].first_run,
        "the failed run recorded nothing"
    );
    assert_eq!(retry.subscriptions[0].sent.len(), 4);
    assert_eq!(deployment.sink.sent().len(), 4);
}

#[tokio::test]
async fn throttling_is_waited_out_as_retry_after_asks() {
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    stub.fail_next(&[Fault::Throttle { retry_after: 1 }, Fault::ServerError]);
    let started = std::time::Instant::now();
    let outcome = deployment.state.run().await.expect("run after throttling");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(
        outcome.subscriptions[0].requests, 7,
        "4 pages + the partner gallery's GET + 2 retries"
    );
    assert_eq!(outcome.subscriptions[0].items, 9);
}

#[tokio::test]
async fn a_refused_listing_fails_the_run_with_the_reason_and_records_nothing() {
    use tower::ServiceExt;
    let stub = ArmStub::start().await;
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    stub.fail_next(&[Fault::Forbidden]);
    let response = router(deployment.state.clone())
        .oneshot(
            axum::http::Request::post("/Baseline")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    r#"{"Data":{"timer":{}},"Metadata":{}}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("AuthorizationFailed"), "{text}");
    assert_eq!(stub.requests(), 1, "a refusal is not retried");
    assert!(deployment.sink.sent().is_empty());
    let next = deployment.state.run().await.expect("next run");
    assert!(next.subscriptions[0].first_run, "nothing was recorded");
}

#[tokio::test]
async fn an_unconfigured_baseline_says_what_to_set() {
    let stub = ArmStub::start().await;
    let mut deployment = deploy(&stub, MemoryStore::new(), clock());
    Arc::get_mut(&mut deployment.state)
        .unwrap()
        .subscriptions
        .clear();
    let err = deployment.state.run().await.expect_err("not configured");
    assert!(
        err.to_string().contains("SNAPWATCH_BASELINE_SUBSCRIPTIONS"),
        "{err}"
    );
    assert_eq!(stub.requests(), 0);
}

/// A listing of 1,000 snapshots at 100 to a page costs one request per page; a rerun with
/// nothing changed sends no alert. The figures go to stdout for the README.
#[tokio::test]
async fn a_thousand_snapshots_cost_one_request_per_page() {
    let stub = ArmStub::start().await;
    stub.only_snapshots(1_000, 100);
    let deployment = deploy(&stub, MemoryStore::new(), clock());
    let started = std::time::Instant::now();
    let first = deployment.state.run().await.expect("first run");
    let first_ms = started.elapsed().as_millis();
    assert_eq!(first.subscriptions[0].items, 1_000);
    assert_eq!(
        first.subscriptions[0].requests, 12,
        "1 disk page + 10 snapshot pages + 1 gallery page"
    );
    assert_eq!(stub.requests(), 12);
    deployment.clock.advance(Duration::hours(1));
    let started = std::time::Instant::now();
    let rerun = deployment.state.run().await.expect("rerun");
    let rerun_ms = started.elapsed().as_millis();
    assert_eq!(rerun.subscriptions[0].requests, 12);
    assert!(deployment.sink.sent().is_empty());
    println!("azure baseline 1000 snapshots: first run {first_ms} ms, rerun {rerun_ms} ms, {} ARM requests per run", rerun.subscriptions[0].requests);
}

/// The baseline's records live in the event functions' Table Storage table: a second run by a
/// fresh deployment over the same table (a new host instance) knows the first happened.
#[tokio::test]
async fn table_storage_holds_the_baseline_records() {
    let stub = ArmStub::start().await;
    let store = azurite::fresh_store("baseline").await;
    let first = deploy(&stub, store.clone(), clock());
    let outcome = first.state.run().await.expect("first run on Azurite");
    assert!(outcome.subscriptions[0].first_run);
    assert_eq!(first.sink.sent().len(), 4);

    let restarted = deploy(&stub, store, clock());
    restarted.clock.advance(Duration::hours(1));
    let rerun = restarted.state.run().await.expect("rerun on Azurite");
    assert!(
        !rerun.subscriptions[0].first_run,
        "the scope marker is in the table"
    );
    assert_eq!(
        rerun.subscriptions[0].new_items, 0,
        "every item's record is in the table"
    );
    assert!(
        restarted.sink.sent().is_empty(),
        "the exposures' facts and claims are in the table: {:?}",
        restarted.sink.sent_ids()
    );
}

/// 1,000 snapshots with the state in Table Storage (Azurite): the figures for the README.
#[tokio::test]
async fn a_thousand_snapshots_on_azurite() {
    let stub = ArmStub::start().await;
    stub.only_snapshots(1_000, 100);
    let store = azurite::fresh_store("baseline1k").await;
    let deployment = deploy(&stub, store, clock());
    let started = std::time::Instant::now();
    let first = deployment.state.run().await.expect("first run");
    let first_ms = started.elapsed().as_millis();
    assert_eq!(first.subscriptions[0].items, 1_000);
    deployment.clock.advance(Duration::hours(1));
    let started = std::time::Instant::now();
    let rerun = deployment.state.run().await.expect("rerun");
    let rerun_ms = started.elapsed().as_millis();
    assert_eq!(rerun.subscriptions[0].new_items, 0);
    println!(
        "azure baseline 1000 snapshots on azurite: first run {first_ms} ms, rerun {rerun_ms} ms"
    );
}

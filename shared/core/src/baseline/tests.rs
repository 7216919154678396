//! The baseline against the memory store: first run, reruns, changes explained and unexplained by
//! events, deduplication with event-driven findings, settling, retries.

use super::*;
use crate::memory::{MemorySink, MemoryStore, SinkFault};
use crate::model::{Cloud, FoundBy, ResourceKind};
use crate::Config;
use chrono::{Duration, TimeZone};
use pollster::block_on;

const OWN: &str = "123456789012";
const PARTNER: &str = "777788889999";
const OUTSIDE: &str = "999988887777";
const ELSEWHERE: &str = "444455556666";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn hours(n: i64) -> DateTime<Utc> {
    t0() + Duration::hours(n)
}

fn config() -> Config {
    let mut config = Config::default();
    config.trust.accounts = vec![PARTNER.into()];
    config
}

fn snapshot(id: &str) -> Resource {
    Resource::new(ResourceKind::Snapshot, id)
}

fn item(id: &str, permissions: Permissions) -> InventoryItem {
    InventoryItem {
        resource: snapshot(id),
        created: Some(t0() - Duration::days(3)),
        permissions,
        created_with: None,
        observed_via: "DescribeSnapshotAttribute".into(),
    }
}

fn private() -> Permissions {
    Permissions::default()
}

fn shared_with(accounts: &[&str]) -> Permissions {
    Permissions {
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        ..Permissions::default()
    }
}

fn public() -> Permissions {
    Permissions {
        public: true,
        ..Permissions::default()
    }
}

fn inventory(items: Vec<InventoryItem>) -> Inventory {
    Inventory {
        cloud: Cloud::Aws,
        account: OWN.into(),
        region: "eu-west-1".into(),
        taken_at: t0(),
        items,
    }
}

fn event(id: &str, name: &str, at: DateTime<Utc>, facts: Vec<Fact>) -> ParsedEvent {
    ParsedEvent {
        meta: EventMeta {
            id: id.into(),
            name: name.into(),
            time: at,
            actor: Some(format!("arn:aws:iam::{OWN}:user/mallory")),
            source_ip: Some("198.51.100.7".into()),
            cloud: Cloud::Aws,
            account: OWN.into(),
            region: Some("eu-west-1".into()),
            automation: None,
        },
        facts,
    }
}

fn share_event(id: &str, snap: &str, account: &str, at: DateTime<Utc>) -> ParsedEvent {
    event(
        id,
        "ModifySnapshotAttribute",
        at,
        vec![Fact::SnapshotShared {
            snapshot: snapshot(snap),
            audience: Audience::Accounts(vec![account.into()]),
        }],
    )
}

struct Harness {
    detector: Detector<MemoryStore>,
    sink: MemorySink,
}

impl Harness {
    fn new() -> Self {
        Harness {
            detector: Detector::new(MemoryStore::new(), config()),
            sink: MemorySink::new(),
        }
    }

    /// Takes what the sink received since the last take, as sorted (rule, snapshot) pairs.
    fn take_sent(&self) -> Vec<(String, String)> {
        let mut sent: Vec<(String, String)> = self
            .sink
            .take()
            .into_iter()
            .map(|f| (f.rule.to_string(), f.snapshot))
            .collect();
        sent.sort();
        sent
    }

    /// One scheduled run as the functions do it: check, deliver, commit.
    fn run(&self, items: Vec<InventoryItem>, now: DateTime<Utc>) -> BaselineCheck {
        block_on(async {
            let mut inv = inventory(items);
            inv.taken_at = now;
            let check = check(&self.detector, &inv, now).await.unwrap();
            let delivery = self
                .detector
                .deliver(&check.findings, &self.sink, now)
                .await
                .unwrap();
            if !delivery.needs_retry() {
                commit(&self.detector, &check).await.unwrap();
            }
            check
        })
    }

    fn event(&self, e: &ParsedEvent) {
        block_on(async {
            let findings = self.detector.process(e, e.meta.time).await.unwrap();
            self.detector
                .deliver(&findings, &self.sink, e.meta.time)
                .await
                .unwrap();
        })
    }
}

fn pair(rule: &str, snap: &str) -> (String, String) {
    (rule.to_string(), snap.to_string())
}

#[test]
fn first_run_reports_exposures_found_by_the_baseline_and_nothing_unexplained() {
    let h = Harness::new();
    let check = h.run(
        vec![
            item("snap-private", private()),
            item("snap-shared", shared_with(&[OUTSIDE])),
            item("snap-public", public()),
            item("snap-partner", shared_with(&[PARTNER])),
        ],
        t0(),
    );
    assert!(check.stats.first_run);
    assert_eq!(check.stats.items, 4);
    assert_eq!(check.stats.exposures_found_by_baseline, 2);
    assert_eq!(check.stats.unexplained, 0);
    assert_eq!(
        h.take_sent(),
        vec![
            pair("snapshot.public", "snap-public"),
            pair("snapshot.shared-external", "snap-shared"),
        ]
    );
    let shared = check
        .findings
        .iter()
        .find(|f| f.snapshot == "snap-shared")
        .unwrap();
    assert_eq!(shared.found_by, FoundBy::Baseline);
    assert_eq!(
        shared.id,
        finding_id(Rule::SnapshotSharedExternal, Cloud::Aws, "snap-shared")
    );
    assert_eq!(shared.account, OWN);
    assert_eq!(shared.region.as_deref(), Some("eu-west-1"));
    assert_eq!(shared.events.len(), 1);
    assert!(shared.events[0].id.starts_with(BASELINE_EVENT_PREFIX));
    assert_eq!(shared.events[0].name, "DescribeSnapshotAttribute");
    assert!(shared.summary.contains(OUTSIDE), "{}", shared.summary);
}

#[test]
fn rerun_with_nothing_changed_stores_and_sends_nothing() {
    let h = Harness::new();
    let items = || {
        vec![
            item("snap-shared", shared_with(&[OUTSIDE])),
            item("snap-public", public()),
        ]
    };
    h.run(items(), t0());
    assert_eq!(h.take_sent().len(), 2);
    let facts_after_first = h.detector.store().fact_count();
    for n in 1..=3 {
        let check = h.run(items(), hours(n));
        assert_eq!(check.stats.new_facts, 0);
        assert_eq!(check.stats.new_items, 0);
        assert_eq!(check.stats.unexplained, 0);
        assert!(h.take_sent().is_empty(), "run {n} sent again");
    }
    assert_eq!(h.detector.store().fact_count(), facts_after_first);
}

#[test]
fn a_share_the_event_stream_saw_is_explained_and_alerted_once() {
    let h = Harness::new();
    h.event(&share_event("ev-share", "snap-shared", OUTSIDE, t0()));
    assert_eq!(
        h.take_sent(),
        vec![pair("snapshot.shared-external", "snap-shared")]
    );
    for n in 1..=3 {
        let check = h.run(vec![item("snap-shared", shared_with(&[OUTSIDE]))], hours(n));
        assert_eq!(check.stats.exposures_found_by_baseline, 0);
        assert!(check.findings.is_empty(), "{:?}", check.findings);
    }
    assert!(h.take_sent().is_empty());
}

#[test]
fn baseline_and_event_findings_of_one_snapshot_share_one_id_and_one_alert() {
    // The baseline sees the share first (the event is late); the event then changes nothing.
    let h = Harness::new();
    let check = h.run(vec![item("snap-shared", shared_with(&[OUTSIDE]))], t0());
    let baseline_id = check.findings[0].id.clone();
    assert_eq!(h.take_sent().len(), 1);
    h.event(&share_event("ev-late", "snap-shared", OUTSIDE, t0()));
    assert!(h.take_sent().is_empty());
    // And the other way round on another snapshot with a second outside account.
    h.event(&share_event("ev-b", "snap-b", OUTSIDE, t0()));
    assert_eq!(h.take_sent().len(), 1);
    h.run(
        vec![
            item("snap-shared", shared_with(&[OUTSIDE])),
            item("snap-b", shared_with(&[OUTSIDE, ELSEWHERE])),
        ],
        hours(1),
    );
    assert!(h.take_sent().is_empty());
    assert_eq!(
        baseline_id,
        finding_id(Rule::SnapshotSharedExternal, Cloud::Aws, "snap-shared")
    );
}

#[test]
fn a_share_no_event_accounts_for_is_unexplained_once_settled() {
    let h = Harness::new();
    h.run(vec![item("snap-a", private())], t0());
    // Shared directly, no event: the exposure alerts at once; the gap waits to settle.
    let check = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(1));
    assert_eq!(check.stats.changed_items, 1);
    assert_eq!(check.stats.unexplained, 0);
    assert_eq!(
        h.take_sent(),
        vec![pair("snapshot.shared-external", "snap-a")]
    );
    let check = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(2));
    assert_eq!(h.take_sent(), vec![pair("snapshot.unexplained", "snap-a")]);
    let unexplained = &check.findings[check
        .findings
        .iter()
        .position(|f| f.rule == "snapshot.unexplained")
        .unwrap()];
    assert_eq!(unexplained.severity, crate::Severity::Medium);
    assert_eq!(unexplained.found_by, FoundBy::Baseline);
    assert!(unexplained.summary.contains(OUTSIDE));
    assert!(unexplained.summary.contains("2026-11-02T09:00:00Z"));
    assert!(unexplained.summary.contains("2026-11-02T10:00:00Z"));
    // Later runs judge the same change again, under the same id: nothing new is sent.
    let again = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(3));
    assert!(again.findings.iter().any(|f| f.id == unexplained.id));
    assert!(h.take_sent().is_empty());
}

#[test]
fn a_share_with_a_trusted_account_is_no_exposure_but_still_a_gap() {
    let h = Harness::new();
    h.run(vec![item("snap-a", private())], t0());
    h.run(vec![item("snap-a", shared_with(&[PARTNER]))], hours(1));
    assert!(h.take_sent().is_empty());
    h.run(vec![item("snap-a", shared_with(&[PARTNER]))], hours(2));
    assert_eq!(h.take_sent(), vec![pair("snapshot.unexplained", "snap-a")]);
}

#[test]
fn a_late_event_explains_the_change_before_it_settles() {
    let h = Harness::new();
    h.run(vec![item("snap-a", private())], t0());
    h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(1));
    assert_eq!(h.take_sent().len(), 1);
    h.event(&share_event(
        "ev-late",
        "snap-a",
        OUTSIDE,
        hours(1) - Duration::minutes(2),
    ));
    let check = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(2));
    assert_eq!(check.stats.unexplained, 0);
    assert!(h.take_sent().is_empty());
}

#[test]
fn a_snapshot_with_no_creation_event_is_unexplained_and_one_with_it_is_not() {
    let h = Harness::new();
    h.run(vec![], t0());
    h.event(&event(
        "ev-create",
        "CreateSnapshot",
        hours(1) - Duration::minutes(5),
        vec![Fact::SnapshotCreated {
            snapshot: snapshot("snap-known"),
            source: None,
        }],
    ));
    h.event(&event(
        "ev-image",
        "CreateImage",
        hours(1) - Duration::minutes(5),
        vec![Fact::SnapshotCreated {
            snapshot: Resource::new(ResourceKind::Image, "ami-0abc"),
            source: None,
        }],
    ));
    let items = || {
        let mut by_image = item("snap-of-image", private());
        by_image.created_with = Some(Resource::new(ResourceKind::Image, "ami-0abc"));
        vec![
            item("snap-known", private()),
            item("snap-ghost", private()),
            by_image,
        ]
    };
    let check = h.run(items(), hours(1));
    assert_eq!(check.stats.new_items, 3);
    assert!(check.findings.is_empty(), "not settled yet");
    let check = h.run(items(), hours(2));
    assert_eq!(
        h.take_sent(),
        vec![pair("snapshot.unexplained", "snap-ghost")]
    );
    assert!(check.findings[0].title.contains("appeared"));
}

#[test]
fn removed_permissions_update_the_baseline_without_alerting() {
    let h = Harness::new();
    h.run(
        vec![item("snap-a", shared_with(&[PARTNER, ELSEWHERE]))],
        t0(),
    );
    h.take_sent();
    let check = h.run(vec![item("snap-a", shared_with(&[PARTNER]))], hours(1));
    assert_eq!(check.stats.changed_items, 1);
    h.run(vec![item("snap-a", shared_with(&[PARTNER]))], hours(2));
    assert!(h.take_sent().is_empty());
    // Re-adding the removed account later is a new change.
    h.run(
        vec![item("snap-a", shared_with(&[PARTNER, ELSEWHERE]))],
        hours(3),
    );
    h.run(
        vec![item("snap-a", shared_with(&[PARTNER, ELSEWHERE]))],
        hours(4),
    );
    let sent = h.take_sent();
    assert!(
        sent.contains(&pair("snapshot.unexplained", "snap-a")),
        "{sent:?}"
    );
}

#[test]
fn a_failed_delivery_is_found_again_by_the_next_run() {
    let h = Harness::new();
    h.run(vec![item("snap-a", private())], t0());
    h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(1));
    h.take_sent();
    h.sink.fail_next(
        usize::MAX,
        SinkFault::Transient {
            retry_after_secs: None,
        },
    );
    let failed = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(2));
    assert_eq!(failed.stats.unexplained, 1);
    h.sink.heal();
    let retried = h.run(vec![item("snap-a", shared_with(&[OUTSIDE]))], hours(3));
    assert_eq!(h.take_sent(), vec![pair("snapshot.unexplained", "snap-a")]);
    assert_eq!(failed.findings[0].id, retried.findings[0].id);
}

#[test]
fn records_are_refreshed_before_they_expire_so_old_snapshots_stay_known() {
    let h = Harness::new();
    let window = Duration::days(config().chain.window_days.into());
    h.run(vec![item("snap-old", private())], t0());
    // Hourly runs for longer than the window: the snapshot never looks new.
    let mut now = t0();
    while now < t0() + window * 2 {
        now += Duration::hours(6);
        let check = h.run(vec![item("snap-old", private())], now);
        assert_eq!(check.stats.new_items, 0, "at {now}");
        assert!(check.findings.is_empty(), "at {now}");
    }
}

#[test]
fn public_and_principal_grants() {
    let h = Harness::new();
    let mut org = item("ami-0org", private());
    org.resource = Resource::new(ResourceKind::Image, "ami-0org");
    org.permissions.principals = ["arn:aws:organizations::123456789012:organization/o-abc".into()]
        .into_iter()
        .collect();
    org.observed_via = "DescribeImageAttribute".into();
    h.run(vec![org], t0());
    let sent = h.take_sent();
    assert_eq!(sent, vec![pair("snapshot.shared-external", "ami-0org")]);
}

#[test]
fn a_corrupt_baseline_record_is_an_error_not_a_first_run() {
    let h = Harness::new();
    h.run(vec![item("snap-a", private())], t0());
    block_on(async {
        let scope = scope_id(&inventory(vec![]));
        h.detector
            .store()
            .add_facts(&[ResourceFacts {
                resource: scope,
                facts: vec![StoredFact {
                    key: "run#garbage".into(),
                    expires_at: hours(1000).timestamp(),
                    body: "{not json".into(),
                }],
            }])
            .await
            .unwrap();
        let err = check(&h.detector, &inventory(vec![]), hours(1))
            .await
            .expect_err("corrupt marker");
        assert!(matches!(err, EngineError::CorruptFact { .. }), "{err}");
    });
}

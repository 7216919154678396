//! The scheduled baseline against real local servers: snapshots, DB snapshots and images made and
//! shared directly on moto's EC2 and RDS (no event sent), chain state in dynalite, alerts through
//! SNS on moto read back from an SQS subscription. Started by tests/servers/with-servers.sh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use futures_util::StreamExt;
use snapwatch_aws::baseline::{BaselineApp, BaselineError};
use snapwatch_aws::clients::RequestCounter;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::{App, Status};
use snapwatch_aws::sns::SnsSink;
use snapwatch_aws_inventory::{QueryClient, RetryPolicy, SnapshotLister};
use snapwatch_core::ports::Clock;
use snapwatch_core::Config;
use snapwatch_slack::SlackSink;
use std::sync::{Arc, Mutex};

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const DYNALITE: &str = "SNAPWATCH_DYNALITE_ENDPOINT";
const OWN: &str = "123456789012";
const OUTSIDE: &str = "999988887777";

/// A clock the test moves forward between scheduled runs.
#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

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

struct Deployment {
    baseline: BaselineApp<DynamoStore, SnsSink, SlackSink>,
    events: App<DynamoStore, RecordingDeadLetter, SnsSink, SlackSink>,
    topic: AlertTopic,
    clock: TestClock,
    moto: Moto,
}

/// The baseline function and the event function of one deployment: one table, one topic.
async fn deploy(region: &str) -> Deployment {
    deploy_counting(region, &RequestCounter::new()).await
}

/// The deployment with every DynamoDB request counted.
async fn deploy_counting(region: &str, counter: &RequestCounter) -> Deployment {
    let moto_sdk = local_sdk(&server_endpoint(MOTO)).await;
    let topic = AlertTopic::create(&moto_sdk).await;
    let dynalite = local_sdk(&server_endpoint(DYNALITE)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&dynalite)
                .interceptor(counter.clone())
                .build(),
        ),
        unique_name("snapwatch-baseline"),
    );
    store.create_table().await.expect("create the table");
    let clock = TestClock(Arc::new(Mutex::new(Utc::now())));
    let config = Config::default();
    let sns = SnsSink::new(topic.sns.clone(), &topic.topic_arn);
    Deployment {
        baseline: BaselineApp {
            store: store.clone(),
            config: config.clone(),
            lister: moto_lister(),
            regions: vec![region.to_string()],
            sns: Some(sns.clone()),
            slack: None,
            securityhub: None,
            clock: Arc::new(clock.clone()),
        },
        events: App {
            store,
            config,
            dead_letter: RecordingDeadLetter::default(),
            sns: Some(sns),
            slack: None,
            securityhub: None,
            responder: None,
            clock: Arc::new(clock.clone()),
        },
        topic,
        clock,
        moto: Moto {
            lister: moto_lister(),
            region: region.to_string(),
        },
    }
}

fn rules_and_resources(findings: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["snapshot"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The fixture share event, retargeted at a snapshot on moto, happening `at`.
fn share_event(snapshot: &str, region: &str, at: DateTime<Utc>) -> String {
    let mut record: serde_json::Value =
        serde_json::from_str(&fixture("modify_snapshot_attribute_add_accounts.json")).unwrap();
    record["requestParameters"]["snapshotId"] = snapshot.into();
    record["recipientAccountId"] = OWN.into();
    record["userIdentity"]["accountId"] = OWN.into();
    record["userIdentity"]["arn"] = format!("arn:aws:iam::{OWN}:user/mallory").into();
    record["awsRegion"] = region.into();
    record["eventID"] = unique_name("ev").into();
    record["requestParameters"]["createVolumePermission"]["add"]["items"] =
        serde_json::json!([{ "userId": OUTSIDE }]);
    retimed(&envelope(&record.to_string()), at, None)
}

#[tokio::test]
async fn direct_shares_are_found_once_explained_shares_are_not_and_gaps_are_reported() {
    let region = "eu-south-2";
    let d = deploy(region).await;
    let moto = &d.moto;
    // What the attacker did directly on the APIs, with no event reaching snapwatch.
    let private = moto.snapshot().await;
    let shared = moto.snapshot().await;
    moto.share_snapshot(&shared, &[OUTSIDE]).await;
    let public_db = moto
        .db_snapshot("payroll-final", DbSnapshotAccess::Public)
        .await;
    let _private_db = moto
        .db_snapshot("orders-nightly", DbSnapshotAccess::Private)
        .await;

    // First run: exactly the two exposures, marked as found by the baseline.
    let outcome = d.baseline.run().await.expect("first run");
    assert_eq!(outcome.account, OWN);
    let region_outcome = &outcome.regions[0];
    assert!(region_outcome.first_run);
    assert_eq!(region_outcome.items, 4, "{outcome:?}");
    let sent = d.topic.findings().await;
    assert_eq!(
        rules_and_resources(&sent),
        vec![
            ("snapshot.public".to_string(), public_db.clone()),
            ("snapshot.shared-external".to_string(), shared.clone()),
        ]
    );
    for finding in &sent {
        assert_eq!(finding["found_by"], "baseline", "{finding}");
        assert_eq!(finding["account"], OWN);
        assert_eq!(finding["region"], region);
    }

    // Second run an hour later: nothing new stored, nothing sent.
    d.clock.advance(Duration::hours(1));
    let outcome = d.baseline.run().await.expect("second run");
    assert_eq!(outcome.regions[0].new_items, 0);
    assert!(outcome.regions[0].sent.is_empty(), "{outcome:?}");
    assert!(d.topic.findings().await.is_empty());

    // A share the event stream delivers first: one alert from the event, none from the baseline.
    let event = share_event(&private, region, d.clock.now());
    moto.share_snapshot(&private, &[OUTSIDE]).await;
    let handled = d.events.handle(&event).await.expect("event handled");
    assert_eq!(handled.status, Status::Processed);
    assert_eq!(
        rules_and_resources(&d.topic.findings().await),
        vec![("snapshot.shared-external".to_string(), private.clone())]
    );
    for hours in [1, 1] {
        d.clock.advance(Duration::hours(hours));
        let outcome = d.baseline.run().await.expect("run after the event");
        assert_eq!(outcome.regions[0].unexplained, 0, "{outcome:?}");
    }
    assert!(d.topic.findings().await.is_empty());

    // A snapshot made and shared with no event at all: the exposure at once, and once the change
    // has settled, the gap in the event stream.
    let ghost = moto.snapshot().await;
    moto.share_snapshot(&ghost, &[OUTSIDE]).await;
    d.clock.advance(Duration::hours(1));
    d.baseline.run().await.expect("run seeing the ghost");
    assert_eq!(
        rules_and_resources(&d.topic.findings().await),
        vec![("snapshot.shared-external".to_string(), ghost.clone())]
    );
    d.clock.advance(Duration::hours(1));
    let outcome = d.baseline.run().await.expect("run judging the ghost");
    assert_eq!(outcome.regions[0].unexplained, 1);
    let sent = d.topic.findings().await;
    assert_eq!(
        rules_and_resources(&sent),
        vec![("snapshot.unexplained".to_string(), ghost.clone())]
    );
    assert_eq!(sent[0]["severity"], "medium");
    d.clock.advance(Duration::hours(1));
    d.baseline.run().await.expect("quiet run");
    assert!(d.topic.findings().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_region_fails_the_run_so_the_scheduler_retries_it() {
    let d = deploy("eu-central-2").await;
    let mut broken = d.baseline;
    broken.lister = SnapshotLister::new(
        QueryClient::new(
            reqwest::Client::new(),
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("t", "t", None, None, "t"),
            ),
            // Nothing listens here.
            Some("http://127.0.0.1:9".to_string()),
        )
        .with_retry(RetryPolicy {
            max_attempts: 2,
            base_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(10),
        }),
    );
    let err = broken.run().await.expect_err("no server");
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, BaselineError::Account(_)), "{err}");
    assert_eq!(err.error_type(), "ListingUnavailable");
}

/// A region with over a thousand snapshots, end to end: the listing, the comparison with the
/// table and the records, with the DynamoDB requests each run makes counted.
#[tokio::test]
async fn a_thousand_snapshots_cost_a_bounded_number_of_requests_and_a_rerun_writes_nothing() {
    let region = "ca-west-1";
    let counter = RequestCounter::new();
    let d = deploy_counting(region, &counter).await;
    let volume = tag(
        &d.moto
            .ec2(
                "CreateVolume",
                &[("AvailabilityZone", "ca-west-1a"), ("Size", "8")],
            )
            .await,
        "volumeId",
    );
    const SNAPSHOTS: usize = 1_050;
    let ec2 = &d.moto;
    let mut created: Vec<String> = futures_util::stream::iter(0..SNAPSHOTS)
        .map(|_| async {
            tag(
                &ec2.ec2("CreateSnapshot", &[("VolumeId", &volume)]).await,
                "snapshotId",
            )
        })
        .buffer_unordered(16)
        .collect()
        .await;
    created.sort();
    ec2.share_snapshot(&created[7], &[OUTSIDE]).await;

    counter.reset();
    let started = std::time::Instant::now();
    let first = d.baseline.run().await.expect("first run");
    let first_secs = started.elapsed().as_secs_f64();
    let first_requests = counter.by_operation();
    assert_eq!(first.regions[0].items, SNAPSHOTS);
    assert_eq!(
        rules_and_resources(&d.topic.findings().await),
        vec![("snapshot.shared-external".to_string(), created[7].clone())]
    );

    d.clock.advance(Duration::hours(1));
    counter.reset();
    let started = std::time::Instant::now();
    let rerun = d.baseline.run().await.expect("rerun");
    let rerun_secs = started.elapsed().as_secs_f64();
    let rerun_requests = counter.by_operation();
    assert!(rerun.regions[0].sent.is_empty());
    // Reads: the scope marker, each snapshot's chain node and baseline record, 100 keys a
    // request. Writes: the one exposure's idempotent fact write and the claim check only.
    let reads = (1 + 2 * SNAPSHOTS).div_ceil(100) as u64;
    let batch_reads = rerun_requests.get("BatchGetItem").copied().unwrap_or(0);
    // Plus the evaluation of the one exposure's chain (its node, then its ancestors).
    assert!(
        (reads..=reads + 2).contains(&batch_reads),
        "{reads} expected: {rerun_requests:?}"
    );
    let rerun_writes = rerun_requests.get("UpdateItem").copied().unwrap_or(0);
    assert!(rerun_writes <= 3, "{rerun_requests:?}");
    eprintln!(
        "FIGURE baseline of {SNAPSHOTS} snapshots on moto + dynalite (debug build): first run {first_secs:.1} s, DynamoDB {first_requests:?}; rerun {rerun_secs:.1} s, DynamoDB {rerun_requests:?}"
    );
}

#[tokio::test]
async fn every_configured_region_is_listed_and_reported_in_its_own_region() {
    let mut d = deploy("ap-northeast-3").await;
    d.baseline.regions = vec!["ap-northeast-3".into(), "me-central-1".into()];
    let mut expected = Vec::new();
    for region in &d.baseline.regions {
        let moto = Moto {
            lister: moto_lister(),
            region: region.clone(),
        };
        let snapshot = moto.snapshot().await;
        moto.share_snapshot(&snapshot, &[OUTSIDE]).await;
        expected.push((region.clone(), snapshot));
    }
    let outcome = d.baseline.run().await.expect("run");
    let regions: Vec<&str> = outcome.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(regions, ["ap-northeast-3", "me-central-1"]);
    let mut sent: Vec<(String, String)> = d
        .topic
        .findings()
        .await
        .iter()
        .map(|f| {
            assert_eq!(f["rule"], "snapshot.shared-external", "{f}");
            (
                f["region"].as_str().unwrap_or_default().to_string(),
                f["snapshot"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected);
}

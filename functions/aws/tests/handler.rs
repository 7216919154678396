//! Handler tests without any network: EventBridge fixtures through `App::handle` with the
//! in-memory store, recording sinks and a recording dead-letter queue.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use common::*;
use snapwatch_aws::handler::{App, HandlerError, Outcome, Status};
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::parse::aws::CONSUMED_EVENTS;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::Config;
use snapwatch_testkit::SinkFault;
use std::collections::BTreeSet;
use std::sync::Arc;

type TestApp = App<MemoryStore, RecordingDeadLetter, MemorySink, MemorySink>;

fn app() -> TestApp {
    App {
        store: MemoryStore::new(),
        config: Config::default(),
        dead_letter: RecordingDeadLetter::default(),
        sns: Some(MemorySink::named("sns")),
        slack: Some(MemorySink::named("slack")),
        securityhub: None,
        responder: None,
        clock: Arc::new(FixedClock(fixture_now())),
    }
}

fn sns(app: &TestApp) -> &MemorySink {
    app.sns.as_ref().expect("sns sink")
}

fn slack(app: &TestApp) -> &MemorySink {
    app.slack.as_ref().expect("slack sink")
}

async fn handle(app: &TestApp, raw: &str) -> Outcome {
    app.handle(raw)
        .await
        .unwrap_or_else(|e| panic!("handler failed: {e} ({})", e.error_type()))
}

fn detail_field(envelope_text: &str, field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(envelope_text).ok()?;
    v["detail"][field].as_str().map(str::to_owned)
}

/// The rules the fixture chain yields: the share makes the snapshot public; `RunInstances`
/// restores it into two instances whose group is then opened on SSH (one exposed restore per
/// instance); the restorer is not the creator.
const CHAIN_RULES: [&str; 4] = [
    "chain.exposed-restore",
    "chain.exposed-restore",
    "snapshot.public",
    "snapshot.restored-by-other",
];

fn sorted(rules: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_fixture_is_handled_and_every_consumed_call_has_one() {
    let mut processed_names = BTreeSet::new();
    for name in fixture_names() {
        let raw = envelope(&fixture(&name));
        let app = app();
        let outcome = handle(&app, &raw).await;
        let event_name = detail_field(&raw, "eventName").expect("fixture has an eventName");
        let expected = if name.contains("failed") || name.contains("dry_run") {
            Status::Skipped
        } else {
            Status::Processed
        };
        assert_eq!(outcome.status, expected, "{name}: {outcome:?}");
        match outcome.status {
            Status::Processed => {
                processed_names.insert(event_name);
                match detail_field(&raw, "eventID") {
                    Some(id) => {
                        assert_eq!(outcome.event_id.as_deref(), Some(id.as_str()), "{name}")
                    }
                    // Without an eventID the core derives a stable id from the content.
                    None => assert!(
                        outcome.event_id.as_deref().is_some_and(|id| !id.is_empty()),
                        "{name}"
                    ),
                }
            }
            Status::Skipped => {
                let reason = if name.contains("dry_run") {
                    "dry_run"
                } else {
                    "failed"
                };
                assert_eq!(outcome.reason.as_deref(), Some(reason), "{name}");
            }
            Status::DeadLettered => unreachable!(),
        }
        assert!(
            app.dead_letter.kept.lock().unwrap().is_empty(),
            "{name} was dead-lettered"
        );
    }
    let consumed: BTreeSet<String> = CONSUMED_EVENTS.iter().map(|(_, n)| n.to_string()).collect();
    let missing: Vec<&String> = consumed.difference(&processed_names).collect();
    assert!(
        missing.is_empty(),
        "consumed calls without a handled fixture: {missing:?}"
    );
}

#[tokio::test]
async fn the_chain_alerts_once_per_sink_and_redeliveries_add_nothing() {
    let app = app();
    let mut last = None;
    for name in CHAIN {
        last = Some(handle(&app, &envelope(&fixture(name))).await);
    }
    let last = last.expect("chain is not empty");
    assert_eq!(last.status, Status::Processed);
    assert_eq!(sent_rules(sns(&app)), sorted(&CHAIN_RULES));
    assert_eq!(sent_rules(slack(&app)), sorted(&CHAIN_RULES));
    // The last event completes the exposed restores; this invocation sends them to both sinks.
    let mut exposed: Vec<String> = sns(&app)
        .sent()
        .iter()
        .filter(|f| f.rule == "chain.exposed-restore")
        .map(|f| f.id.clone())
        .collect();
    exposed.sort();
    let sent_by_last = |sink: &str| {
        let mut ids = last.sent.get(sink).cloned().unwrap_or_default();
        ids.sort();
        ids
    };
    assert_eq!(sent_by_last("sns"), exposed);
    assert_eq!(sent_by_last("slack"), exposed);

    for _ in 0..3 {
        for name in CHAIN {
            let again = handle(&app, &envelope(&fixture(name))).await;
            assert!(
                again.sent.is_empty(),
                "redelivered {name} sent {:?}",
                again.sent
            );
        }
    }
    assert_eq!(sns(&app).sent().len(), CHAIN_RULES.len());
    assert_eq!(slack(&app).sent().len(), CHAIN_RULES.len());
}

#[tokio::test]
async fn the_chain_in_reverse_order_yields_the_same_alerts() {
    let app = app();
    for name in CHAIN.iter().rev() {
        handle(&app, &envelope(&fixture(name))).await;
    }
    assert_eq!(sent_rules(sns(&app)), sorted(&CHAIN_RULES));
}

#[tokio::test]
async fn a_sink_that_is_down_fails_the_invocation_and_the_retry_sends_only_what_is_missing() {
    let app = app();
    let (last, first_events) = CHAIN.split_last().expect("chain");
    for name in first_events {
        handle(&app, &envelope(&fixture(name))).await;
    }
    let sns_before = sns(&app).sent().len();
    slack(&app).fail_next(
        1,
        SinkFault::Transient {
            retry_after_secs: None,
        },
    );
    let raw = envelope(&fixture(last));
    let err = app
        .handle(&raw)
        .await
        .expect_err("slack is down: the event must be retried");
    assert!(
        matches!(err, HandlerError::SinkUnavailable { pending: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.error_type(), "SinkUnavailable");
    assert!(err.is_retryable());
    let diagnostic = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "SinkUnavailable");
    assert!(
        diagnostic.error_message.contains("test sink is down"),
        "{}",
        diagnostic.error_message
    );
    assert_eq!(
        sns(&app).sent().len(),
        sns_before + 2,
        "SNS got both alerts"
    );
    assert_eq!(
        slack(&app).sent().len(),
        sns_before + 1,
        "Slack got one of two"
    );

    // Lambda retries the event: Slack gets it now; SNS, already marked sent, gets nothing.
    let retry = handle(&app, &raw).await;
    assert_eq!(retry.sent.keys().collect::<Vec<_>>(), vec![&"slack"]);
    assert_eq!(retry.sent.get("slack").map(Vec::len), Some(1));
    assert_eq!(sns(&app).sent().len(), sns_before + 2);
    assert_eq!(sent_rules(slack(&app)), sorted(&CHAIN_RULES));
}

#[tokio::test]
async fn malformed_events_are_kept_in_the_dead_letter_queue_and_acknowledged() {
    let no_time = {
        let mut v: serde_json::Value =
            serde_json::from_str(&envelope(&fixture("create_snapshot.json"))).unwrap();
        v["detail"].as_object_mut().unwrap().remove("eventTime");
        v.to_string()
    };
    let cases = [
        ("not JSON at all", "not an EventBridge event", None),
        (
            r#"{"id":"eb-1","detail-type":"AWS API Call via CloudTrail","source":"aws.ec2"}"#,
            "not an EventBridge event",
            Some("eb-1"),
        ),
        (
            no_time.as_str(),
            "eventTime",
            Some("eb-1b6f3c2e-8d4a-4f0b-9e57-3a2c1d0e9f81"),
        ),
    ];
    for (raw, reason_part, id) in cases {
        let app = app();
        let outcome = handle(&app, raw).await;
        assert_eq!(outcome.status, Status::DeadLettered, "{raw}");
        assert_eq!(outcome.event_id.as_deref(), id, "{raw}");
        let kept = app.dead_letter.kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1, "{raw}");
        assert_eq!(kept[0].raw, raw, "the raw event is kept byte for byte");
        assert!(
            kept[0].reason.contains(reason_part),
            "{raw}: {}",
            kept[0].reason
        );
        assert_eq!(kept[0].event_id.as_deref(), id);
        assert!(sns(&app).sent().is_empty());
    }
}

#[tokio::test]
async fn other_eventbridge_events_are_skipped_not_dead_lettered() {
    let app = app();
    let raw = r#"{"version":"0","id":"eb-2","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","time":"2025-03-04T10:15:02Z","region":"us-east-1","resources":[],"detail":{"instance-id":"i-1","state":"running"}}"#;
    let outcome = handle(&app, raw).await;
    assert_eq!(outcome.status, Status::Skipped);
    assert_eq!(outcome.reason.as_deref(), Some("irrelevant"));
    assert_eq!(outcome.event_id.as_deref(), Some("eb-2"));
    assert!(app.dead_letter.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_outcome_encodes_as_the_documented_json() {
    let app = app();
    let outcome = handle(&app, &envelope(&fixture("create_snapshot.json"))).await;
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "status": "processed",
            "event_id": "1b6f3c2e-8d4a-4f0b-9e57-3a2c1d0e9f81",
            "findings": [],
            "sent": {},
        })
    );
}

//! The archive function without any network: S3 notifications in SQS batches through
//! `ArchiveApp::handle`, objects served from memory in small chunks, the in-memory store,
//! recording sinks and a recording dead-letter queue. The same paths against moto (S3, SQS,
//! DynamoDB) are in archive_servers.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use common::archive::*;
use common::*;
use snapwatch_aws::archive::{ArchiveApp, ObjectRef};
use snapwatch_aws::handler::App;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::{Config, Severity};
use std::sync::Arc;

type TestArchive = ArchiveApp<
    MemoryStore,
    RecordingDeadLetter,
    MemorySink,
    MemorySink,
    MemoryObjects,
    MemoryLedger,
>;

fn archive() -> TestArchive {
    let mut config = Config::default();
    config.alerts.min_severity = Severity::Critical;
    ArchiveApp {
        app: App {
            store: MemoryStore::new(),
            config,
            dead_letter: RecordingDeadLetter::default(),
            sns: Some(MemorySink::named("sns")),
            slack: Some(MemorySink::named("slack")),
            securityhub: None,
            responder: None,
            clock: Arc::new(FixedClock(fixture_now())),
        },
        reader: MemoryObjects::default(),
        ledger: MemoryLedger::default(),
    }
}

fn sns(a: &TestArchive) -> &MemorySink {
    a.app.sns.as_ref().unwrap()
}

fn slack(a: &TestArchive) -> &MemorySink {
    a.app.slack.as_ref().unwrap()
}

const ACCOUNT: &str = "111122223333";

#[tokio::test]
async fn a_chain_spread_over_two_log_files_alerts_once_per_sink() {
    let a = archive();
    let chain = single_instance_chain_records();
    let first = org_key(ACCOUNT, "eu-west-1", "a");
    let second = account_key(ACCOUNT, "eu-west-1", "b");
    a.reader
        .put(BUCKET, &first, gzip(&log_file(&chain[..2], 2_000)), 4096);
    a.reader
        .put(BUCKET, &second, gzip(&log_file(&chain[2..], 2_000)), 4096);
    let batch = a
        .handle(sqs_batch(&[
            ("m1", created(BUCKET, &first, "e1")),
            ("m2", created(BUCKET, &second, "e2")),
        ]))
        .await;
    assert!(batch.response.batch_item_failures.is_empty(), "{batch:#?}");
    let objects: Vec<_> = batch.messages.iter().flat_map(|m| &m.objects).collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0].status, "processed");
    // 2,000 noise records around each part of the chain; only the chain is ingested.
    assert_eq!(objects[0].records, 2_002);
    assert_eq!(objects[0].events, 2);
    assert_eq!(objects[1].events, 1);
    assert_eq!(sent_rules(sns(&a)), ["chain.exposed-restore"]);
    assert_eq!(sent_rules(slack(&a)), ["chain.exposed-restore"]);
    assert!(a.app.dead_letter.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_same_chain_through_eventbridge_and_the_archive_alerts_once() {
    for eventbridge_first in [true, false] {
        let a = archive();
        let key = account_key(ACCOUNT, "us-east-1", "chain");
        a.reader.put(
            BUCKET,
            &key,
            gzip(&log_file(&single_instance_chain_records(), 500)),
            1000,
        );
        let through_archive = || a.handle(sqs_batch(&[("m", created(BUCKET, &key, "e"))]));
        if !eventbridge_first {
            through_archive().await;
        }
        for raw in single_instance_chain() {
            a.app.handle(&raw).await.expect("handled");
        }
        if eventbridge_first {
            let batch = through_archive().await;
            assert_eq!(batch.messages[0].objects[0].events, 3);
        }
        assert_eq!(
            sns(&a).sent().len(),
            1,
            "eventbridge first: {eventbridge_first}"
        );
        assert_eq!(
            slack(&a).sent().len(),
            1,
            "eventbridge first: {eventbridge_first}"
        );
    }
}

#[tokio::test]
async fn a_redelivered_notification_processes_nothing_twice() {
    let a = archive();
    let key = account_key(ACCOUNT, "us-east-1", "once");
    a.reader.put(
        BUCKET,
        &key,
        gzip(&log_file(&single_instance_chain_records(), 100)),
        512,
    );
    let message = created(BUCKET, &key, "etag-1");
    let first = a.handle(sqs_batch(&[("m1", message.clone())])).await;
    assert_eq!(first.messages[0].objects[0].status, "processed");
    let opened = a.reader.opened();
    let again = a.handle(sqs_batch(&[("m1-again", message)])).await;
    assert!(again.response.batch_item_failures.is_empty());
    let object = &again.messages[0].objects[0];
    assert_eq!(object.status, "already_done");
    assert_eq!((object.records, object.events), (0, 0));
    assert_eq!(a.reader.opened(), opened, "the object was not read again");
    // A new version of the same key (another ETag) is a new object.
    let newer = a
        .handle(sqs_batch(&[("m2", created(BUCKET, &key, "etag-2"))]))
        .await;
    assert_eq!(newer.messages[0].objects[0].status, "processed");
    assert_eq!(sns(&a).sent().len(), 1, "claims still alert once");
}

#[tokio::test]
async fn a_corrupt_object_fails_its_message_alone() {
    let a = archive();
    let good = account_key(ACCOUNT, "us-east-1", "good");
    let corrupt = account_key(ACCOUNT, "us-east-1", "corrupt");
    let truncated = account_key(ACCOUNT, "us-east-1", "truncated");
    let also_good = account_key(ACCOUNT, "us-east-1", "also-good");
    a.reader.put(BUCKET, &good, gzip(&log_file(&[], 300)), 1000);
    a.reader
        .put(BUCKET, &corrupt, b"PK\x03\x04 not gzip at all".to_vec(), 8);
    let whole = gzip(&log_file(&[], 3_000));
    a.reader
        .put(BUCKET, &truncated, whole[..whole.len() / 2].to_vec(), 1000);
    a.reader
        .put(BUCKET, &also_good, gzip(&log_file(&[], 300)), 1000);
    let batch = a
        .handle(sqs_batch(&[
            ("m-good", created(BUCKET, &good, "1")),
            ("m-corrupt", created(BUCKET, &corrupt, "2")),
            ("m-truncated", created(BUCKET, &truncated, "3")),
            ("m-also-good", created(BUCKET, &also_good, "4")),
        ]))
        .await;
    let failed: Vec<&str> = batch
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-corrupt", "m-truncated"]);
    let statuses: Vec<&str> = batch.messages.iter().map(|m| m.status).collect();
    assert_eq!(statuses, ["done", "failed", "failed", "done"]);
    let error = batch.messages[1].error.as_deref().unwrap();
    assert!(
        error.contains(&corrupt) && error.contains("not a readable CloudTrail log file"),
        "{error}"
    );
    // A failed object is not finished: its redelivery reads it again.
    assert!(!a.ledger.finished(&ObjectRef {
        bucket: BUCKET.into(),
        key: truncated.clone(),
        etag: Some("3".into()),
        version_id: None,
        size: None,
    }));
    // A transient read failure fails the message too (and the next delivery succeeds).
    a.reader.fail_next_open();
    let retried = a
        .handle(sqs_batch(&[("m-flaky", created(BUCKET, &good, "5"))]))
        .await;
    assert_eq!(retried.response.batch_item_failures.len(), 1);
    let retried = a
        .handle(sqs_batch(&[("m-flaky", created(BUCKET, &good, "5"))]))
        .await;
    assert!(retried.response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_bad_record_is_dead_lettered_with_key_and_line_and_the_object_completes() {
    let a = archive();
    let key = account_key(ACCOUNT, "us-east-1", "one bad record");
    let mut records = single_instance_chain_records();
    // A consumed event with an unusable time: the parser rejects it.
    let mut bad: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    bad["eventTime"] = "yesterday".into();
    bad["eventID"] = "bad-event-id".into();
    records.insert(1, bad.to_string());
    // One record per line, as some copies are: the reject names its line.
    let text = log_file_lines(&records, 10);
    a.reader.put(BUCKET, &key, gzip(&text), 700);
    let encoded_key = key.replace(' ', "+");
    let batch = a
        .handle(sqs_batch(&[("m", created(BUCKET, &encoded_key, "e"))]))
        .await;
    assert!(batch.response.batch_item_failures.is_empty(), "{batch:#?}");
    let object = &batch.messages[0].objects[0];
    assert_eq!(object.status, "processed");
    assert_eq!(object.key, key, "the notification's key is decoded");
    assert_eq!(object.dead_lettered, 1);
    assert_eq!(object.events, 3);
    let kept = a.app.dead_letter.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    let expected_line = text[..text.find("bad-event-id").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert!(
        kept[0].reason.starts_with(&format!(
            "s3://{BUCKET}/{key} line {expected_line} record 7:"
        )),
        "{}",
        kept[0].reason
    );
    assert!(kept[0].reason.contains("eventTime"), "{}", kept[0].reason);
    assert_eq!(kept[0].event_id.as_deref(), Some("bad-event-id"));
    assert!(kept[0].raw.contains("yesterday"));
    assert_eq!(sent_rules(sns(&a)), ["chain.exposed-restore"]);
}

#[tokio::test]
async fn test_events_digests_and_other_keys_are_skipped_and_counted() {
    let a = archive();
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-03-10T12:00:00.000Z","Bucket":"trail-archive","RequestId":"R","HostId":"H"}"#;
    let digest = format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2025/03/10/d.json.gz");
    let config = format!("AWSLogs/{ACCOUNT}/Config/us-east-1/2025/03/10/c.json.gz");
    let batch = a
        .handle(sqs_batch(&[
            ("t", test_event.to_string()),
            ("d", created(BUCKET, &digest, "1")),
            ("c", created(BUCKET, &config, "2")),
            ("junk", "this is no notification".to_string()),
        ]))
        .await;
    assert!(batch.response.batch_item_failures.is_empty());
    let statuses: Vec<&str> = batch.messages.iter().map(|m| m.status).collect();
    assert_eq!(statuses, ["test_event", "done", "done", "dead_lettered"]);
    assert_eq!(batch.messages[1].objects[0].status, "digest");
    assert_eq!(batch.messages[2].objects[0].status, "not_cloudtrail");
    assert_eq!(a.reader.opened(), 0, "nothing was read");
    let kept = a.app.dead_letter.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].raw, "this is no notification");
    assert_eq!(kept[0].event_id.as_deref(), Some("junk"));
}

#[tokio::test]
async fn messages_not_started_before_the_deadline_fail_alone_and_are_redelivered() {
    let a = archive();
    let first = account_key(ACCOUNT, "us-east-1", "first");
    let second = account_key(ACCOUNT, "us-east-1", "second");
    a.reader.put(BUCKET, &first, gzip(&log_file(&[], 10)), 1000);
    a.reader
        .put(BUCKET, &second, gzip(&log_file(&[], 10)), 1000);
    let batch = sqs_batch(&[
        ("m1", created(BUCKET, &first, "1")),
        ("m2", created(BUCKET, &second, "2")),
    ]);
    let late = a
        .handle_until(
            batch.clone(),
            Some(std::time::SystemTime::now() - std::time::Duration::from_secs(1)),
        )
        .await;
    let failed: Vec<&str> = late
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m1", "m2"]);
    assert_eq!(a.reader.opened(), 0);
    let in_time = a
        .handle_until(
            batch,
            Some(std::time::SystemTime::now() + std::time::Duration::from_secs(600)),
        )
        .await;
    assert!(in_time.response.batch_item_failures.is_empty());
    assert_eq!(a.reader.opened(), 2);
}

/// The records are split on a blocking thread while this side ingests them: when ingesting
/// fails mid-object (a sink down), the object fails and the split stops, without hanging.
#[tokio::test]
async fn a_sink_down_mid_object_fails_it_and_stops_the_split() {
    let a = archive();
    let key = account_key(ACCOUNT, "us-east-1", "sink down");
    let text = log_file(&single_instance_chain_records(), 20_000);
    a.reader.put(BUCKET, &key, gzip(&text), 4096);
    sns(&a).fail_next(
        usize::MAX,
        snapwatch_core::memory::SinkFault::Transient {
            retry_after_secs: None,
        },
    );
    let batch = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        a.handle(sqs_batch(&[("m", created(BUCKET, &key, "e"))])),
    )
    .await
    .expect("the object ends instead of hanging");
    assert_eq!(batch.response.batch_item_failures.len(), 1, "{batch:#?}");
    assert_eq!(batch.messages[0].status, "failed");
    // Healed, the redelivery reads it whole and alerts.
    sns(&a).heal();
    let again = a
        .handle(sqs_batch(&[("m", created(BUCKET, &key, "e"))]))
        .await;
    assert!(again.response.batch_item_failures.is_empty(), "{again:#?}");
    assert_eq!(again.messages[0].objects[0].records, 20_000 + 3);
}

/// A record over the 16 MiB limit is skipped unheld, dead-lettered with its place, and the
/// records after it are read.
#[tokio::test]
async fn an_oversized_record_is_dead_lettered_with_its_line_and_position() {
    let a = archive();
    let key = account_key(ACCOUNT, "us-east-1", "oversized");
    let huge = format!(
        "{{\"eventID\":\"huge\",\"pad\":\"{}\"}}",
        "x".repeat(snapwatch_aws::archive::MAX_RECORD_BYTES)
    );
    let mut records = single_instance_chain_records();
    records.insert(1, huge);
    let text = log_file_lines(&records, 4);
    a.reader.put(BUCKET, &key, gzip(&text), 64 * 1024);
    let batch = a
        .handle(sqs_batch(&[("m", created(BUCKET, &key, "e"))]))
        .await;
    assert!(batch.response.batch_item_failures.is_empty(), "{batch:#?}");
    let object = &batch.messages[0].objects[0];
    assert_eq!(
        (object.records, object.dead_lettered, object.events),
        (8, 1, 3)
    );
    let kept = a.app.dead_letter.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    // Two noise records, the first chain record, then the huge one: line 5, record 4.
    let want = format!(
        "s3://{BUCKET}/{key} line 5 record 4: record larger than the {}-byte limit",
        snapwatch_aws::archive::MAX_RECORD_BYTES
    );
    assert!(kept[0].reason.starts_with(&want), "{}", kept[0].reason);
    assert!(kept[0].raw.is_empty(), "not held, so not kept");
    assert_eq!(sent_rules(sns(&a)), ["chain.exposed-restore"]);
}

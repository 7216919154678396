//! The archive function against local servers (tests/servers/with-servers.sh): a trail bucket on
//! moto, SSE-KMS, whose object-created notifications moto itself sends to an SQS queue; the
//! batches read from that queue go through `ArchiveApp::handle`, which streams the objects with
//! the signed S3 client, keeps state in DynamoDB (moto, or dynalite for the store), publishes
//! to SNS and dead-letters to SQS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use common::archive::*;
use common::*;
use snapwatch_aws::archive::ledger::DynamoLedger;
use snapwatch_aws::archive::{ArchiveApp, BatchOutcome};
use snapwatch_aws::dead_letter::SqsDeadLetter;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::App;
use snapwatch_aws::sns::SnsSink;
use snapwatch_aws_inventory::signing::signed_post_headers;
use snapwatch_aws_inventory::S3Client;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::{Config, Severity};
use std::sync::Arc;
use std::time::SystemTime;

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const DYNALITE: &str = "SNAPWATCH_DYNALITE_ENDPOINT";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "111122223333";

type Archive = ArchiveApp<DynamoStore, SqsDeadLetter, SnsSink, MemorySink, S3Client, DynamoLedger>;

struct Deployment {
    archive: Archive,
    s3: S3Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    notifications: String,
    alerts: String,
    dead_letters: String,
}

fn s3_client(endpoint: &str) -> S3Client {
    S3Client::new(
        reqwest::Client::new(),
        SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "tests")),
        REGION,
        Some(endpoint),
    )
    .unwrap()
}

/// A KMS key on moto (TrentService JSON, signed with the inventory's signer).
async fn kms_key(endpoint: &str) -> String {
    let url = reqwest::Url::parse(endpoint).unwrap();
    let body = r#"{"Description":"trail bucket key","KeyUsage":"ENCRYPT_DECRYPT"}"#;
    let content_type = "application/x-amz-json-1.1";
    let credentials = Credentials::new("testing", "testing", None, None, "tests");
    let headers = signed_post_headers(
        &credentials,
        "kms",
        REGION,
        &url,
        content_type,
        body,
        SystemTime::now(),
    )
    .unwrap();
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("x-amz-target", "TrentService.CreateKey")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let text = request.send().await.unwrap().text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("CreateKey JSON");
    json["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
}

async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

/// A trail bucket encrypted with SSE-KMS by default, notifying a queue of new `AWSLogs/…
/// .json.gz` objects (what infra/aws/archive.tf configures), and the rest of a deployment.
async fn deploy(store_endpoint_variable: &str) -> Deployment {
    let moto = server_endpoint(MOTO);
    let sdk = local_sdk(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let AlertTopic {
        sns,
        topic_arn,
        queue_url: alerts,
        ..
    } = AlertTopic::create(&sdk).await;
    let (dead_letters, _) = queue(&sqs, "dlq").await;
    let (notifications, notifications_arn) = queue(&sqs, "archive").await;

    let s3 = s3_client(&moto);
    let bucket = unique_name("trail").to_lowercase();
    s3.put(&bucket, "", None, Vec::new()).await.unwrap();
    let key_arn = kms_key(&moto).await;
    let encryption = format!(
        r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key_arn}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#
    );
    s3.put(&bucket, "", Some("encryption"), encryption.into_bytes())
        .await
        .unwrap();
    let notification = format!(
        r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><QueueConfiguration><Id>snapwatch-archive</Id><Queue>{notifications_arn}</Queue><Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>AWSLogs/</Value></FilterRule><FilterRule><Name>suffix</Name><Value>.json.gz</Value></FilterRule></S3Key></Filter></QueueConfiguration></NotificationConfiguration>"#
    );
    s3.put(&bucket, "", Some("notification"), notification.into_bytes())
        .await
        .unwrap();

    let store_sdk = local_sdk(&server_endpoint(store_endpoint_variable)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&store_sdk),
        unique_name("snapwatch"),
    );
    store.create_table().await.unwrap();
    let ledger = DynamoLedger::new(store.client().clone(), store.table());
    let mut config = Config::default();
    config.alerts.min_severity = Severity::Critical;
    let archive = ArchiveApp {
        app: App {
            store,
            config,
            dead_letter: SqsDeadLetter::new(sqs.clone(), &dead_letters),
            sns: Some(SnsSink::new(sns, topic_arn)),
            slack: Some(MemorySink::named("slack")),
            securityhub: None,
            responder: None,
            clock: Arc::new(FixedClock(fixture_now())),
        },
        reader: s3.clone(),
        ledger,
    };
    Deployment {
        archive,
        s3,
        sqs,
        bucket,
        notifications,
        alerts,
        dead_letters,
    }
}

impl Deployment {
    /// Every notification waiting in the queue, as the SQS event Lambda would deliver (ids and
    /// bodies exactly as moto sent them).
    async fn notified(&self) -> aws_lambda_events::sqs::SqsEvent {
        let messages = drain(&self.sqs, &self.notifications).await;
        let pairs: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap().to_string(),
                    m.body().unwrap().to_string(),
                )
            })
            .collect();
        let refs: Vec<(&str, String)> = pairs
            .iter()
            .map(|(id, body)| (id.as_str(), body.clone()))
            .collect();
        sqs_batch(&refs)
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put(&self.bucket, key, None, body).await.unwrap();
    }

    async fn alerts(&self) -> usize {
        drain(&self.sqs, &self.alerts).await.len()
    }

    fn statuses(batch: &BatchOutcome) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = batch
            .messages
            .iter()
            .flat_map(|m| {
                if m.objects.is_empty() {
                    vec![m.status]
                } else {
                    m.objects.iter().map(|o| o.status).collect()
                }
            })
            .collect();
        all.sort();
        all
    }
}

#[tokio::test]
async fn a_kms_encrypted_trail_bucket_alerts_once_and_a_redelivery_reads_nothing() {
    let d = deploy(MOTO).await;
    let chain = single_instance_chain_records();
    // Both layouts, a key with a space (notified as `+`), realistic sizes, and a digest file.
    let org = org_key(ACCOUNT, "eu-west-1", "org part");
    let own = account_key(ACCOUNT, "us-east-1", "own");
    let big = account_key(ACCOUNT, "us-east-1", "noise");
    let digest = format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2025/03/10/d.json.gz");
    d.put(&org, gzip(&log_file(&chain[..2], 3_000))).await;
    d.put(&own, gzip(&log_file(&chain[2..], 1_000))).await;
    let noise = gzip(&log_file(&[], 20_000));
    assert!(noise.len() > 500_000, "{} bytes", noise.len());
    d.put(&big, noise).await;
    d.put(&digest, gzip(r#"{"awsAccountId":"111122223333"}"#))
        .await;
    d.put("AWSLogs/elsewhere.txt", b"not notified".to_vec())
        .await;
    let encrypted = d.s3.get_object(&d.bucket, &own).await.unwrap();
    assert_eq!(encrypted.server_side_encryption.as_deref(), Some("aws:kms"));

    let notified = d.notified().await;
    let batch = d.archive.handle(notified.clone()).await;
    assert!(batch.response.batch_item_failures.is_empty(), "{batch:#?}");
    // moto's s3:TestEvent from configuring the notification comes first.
    assert_eq!(
        Deployment::statuses(&batch),
        [
            "digest",
            "processed",
            "processed",
            "processed",
            "test_event"
        ]
    );
    let objects: Vec<_> = batch.messages.iter().flat_map(|m| &m.objects).collect();
    let read = |key: &str| objects.iter().find(|o| o.key == key).expect(key);
    assert_eq!(
        read(&org).records,
        3_002,
        "the key was decoded: {:?}",
        read(&org)
    );
    assert_eq!(read(&org).events, 2);
    assert_eq!(read(&big).records, 20_000);
    assert_eq!(read(&big).events, 0);
    assert_eq!(d.alerts().await, 1, "one SNS alert for the chain");
    assert_eq!(d.archive.app.slack.as_ref().unwrap().sent().len(), 1);

    // The same notifications again (SQS delivers at least once): every object is skipped.
    assert!(
        d.notified().await.records.is_empty(),
        "the queue was drained"
    );
    let again = notified;
    let redelivered = d.archive.handle(again).await;
    assert!(redelivered.response.batch_item_failures.is_empty());
    let skipped: Vec<_> = redelivered
        .messages
        .iter()
        .flat_map(|m| &m.objects)
        .collect();
    assert_eq!(skipped.len(), 4, "{redelivered:#?}");
    for object in skipped {
        assert!(
            matches!(object.status, "already_done" | "digest"),
            "{object:?}"
        );
        assert_eq!(object.records, 0);
    }
    assert_eq!(d.alerts().await, 0, "nothing new was sent");
}

#[tokio::test]
async fn a_corrupt_object_fails_alone_and_a_bad_record_reaches_the_dead_letter_queue() {
    let d = deploy(MOTO).await;
    let mut records = single_instance_chain_records();
    let mut bad: serde_json::Value = serde_json::from_str(&records[1]).unwrap();
    bad["eventTime"] = "not a time".into();
    records.insert(1, bad.to_string());
    let good = account_key(ACCOUNT, "us-east-1", "good");
    let corrupt = account_key(ACCOUNT, "us-east-1", "corrupt");
    d.put(&good, gzip(&log_file_lines(&records, 400))).await;
    let mut cut = gzip(&log_file(&[], 5_000));
    cut.truncate(cut.len() / 3);
    d.put(&corrupt, cut).await;

    let batch = d.archive.handle(d.notified().await).await;
    let corrupt_message = batch
        .messages
        .iter()
        .find(|m| m.status == "failed")
        .expect("a failed message");
    assert_eq!(
        batch
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect::<Vec<_>>(),
        [corrupt_message.message_id.as_str()]
    );
    assert!(corrupt_message.error.as_deref().unwrap().contains(&corrupt));
    let good_outcome = batch
        .messages
        .iter()
        .flat_map(|m| &m.objects)
        .find(|o| o.key == good)
        .unwrap();
    assert_eq!(good_outcome.status, "processed");
    assert_eq!(good_outcome.dead_lettered, 1);
    assert_eq!(d.alerts().await, 1, "the good object's chain still alerts");

    let kept = drain(&d.sqs, &d.dead_letters).await;
    assert_eq!(kept.len(), 1);
    let reason = kept[0].message_attributes().unwrap()["reason"]
        .string_value()
        .unwrap()
        .to_string();
    // Record 202 of the file (200 noise records first) on line 203.
    let expected = format!("s3://{}/{good} line 203 record 202:", d.bucket);
    assert!(reason.starts_with(&expected), "{reason}");
    assert!(kept[0].body().unwrap().contains("not a time"));
}

#[tokio::test]
async fn the_same_chain_through_eventbridge_and_the_archive_alerts_once_with_state_on_dynalite() {
    let d = deploy(DYNALITE).await;
    let key = org_key(ACCOUNT, "us-east-1", "chain");
    d.put(
        &key,
        gzip(&log_file(&single_instance_chain_records(), 2_000)),
    )
    .await;
    let mut through_eventbridge = Vec::new();
    for raw in single_instance_chain() {
        let outcome = d.archive.app.handle(&raw).await.expect("handled");
        through_eventbridge.extend(outcome.findings);
    }
    through_eventbridge.sort();
    through_eventbridge.dedup();
    assert_eq!(d.alerts().await, 1);
    let batch = d.archive.handle(d.notified().await).await;
    assert!(batch.response.batch_item_failures.is_empty(), "{batch:#?}");
    let object = batch
        .messages
        .iter()
        .flat_map(|m| &m.objects)
        .next()
        .unwrap();
    assert_eq!(object.events, 3);
    assert_eq!(
        object.findings, through_eventbridge,
        "the archive sees the same findings"
    );
    assert!(
        object.sent.is_empty(),
        "and sends it nowhere again: {object:?}"
    );
    assert_eq!(d.alerts().await, 0);
    assert_eq!(d.archive.app.slack.as_ref().unwrap().sent().len(), 1);
}

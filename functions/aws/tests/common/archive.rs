//! Helpers for the archive tests: CloudTrail log files in the real key layouts, gzip, S3
//! notifications in SQS batches, objects served from memory in chunks, and a memory ledger.

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use snapwatch_aws::archive::ledger::{ledger_key, ObjectLedger};
use snapwatch_aws::archive::{ObjectBody, ObjectError, ObjectReader, ObjectRef};
use snapwatch_core::ports::StoreError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const BUCKET: &str = "trail-archive";

/// A per-account layout key: `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/FILE.json.gz`.
pub fn account_key(account: &str, region: &str, name: &str) -> String {
    format!(
        "AWSLogs/{account}/CloudTrail/{region}/2025/03/10/{account}_CloudTrail_{region}_20250310T1155Z_{name}.json.gz"
    )
}

/// An organization-trail layout key: `AWSLogs/o-ORG/ACCOUNT/CloudTrail/…`.
pub fn org_key(account: &str, region: &str, name: &str) -> String {
    format!(
        "AWSLogs/o-a1b2c3d4e5/{}",
        account_key(account, region, name).trim_start_matches("AWSLogs/")
    )
}

/// The single-instance chain as bare CloudTrail records (what the log files hold).
pub fn single_instance_chain_records() -> Vec<String> {
    super::single_instance_chain()
        .iter()
        .map(|envelope| {
            let v: serde_json::Value = serde_json::from_str(envelope).unwrap();
            v["detail"].to_string()
        })
        .collect()
}

/// A CloudTrail record the chain does not consume, about 1 KB like real ones.
pub fn noise_record(i: usize) -> String {
    let names = [
        "DescribeInstances",
        "AssumeRole",
        "GetObject",
        "ListBuckets",
        "DescribeSnapshots",
    ];
    let name = names[i % names.len()];
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLE{i:08}:session"),
            "arn": format!("arn:aws:sts::111122223333:assumed-role/app-{}/session", i % 17),
            "accountId": "111122223333",
            "sessionContext": {"attributes": {"creationDate": "2025-03-10T11:00:00Z", "mfaAuthenticated": "false"}}
        },
        "eventTime": format!("2025-03-10T11:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": format!("10.0.{}.{}", i % 250, (i * 7) % 250),
        "userAgent": "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22 md/GOOS#linux api/ec2#1.170.0",
        "requestParameters": {"filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": format!("team-{}", i % 9)}]}}]}, "maxResults": 1000},
        "responseElements": null,
        "requestID": format!("{i:08x}-1111-2222-3333-444455556666"),
        "eventID": format!("{i:08x}-aaaa-bbbb-cccc-ddddeeeeffff"),
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ec2.eu-west-1.amazonaws.com"}
    })
    .to_string()
}

/// A log file as CloudTrail writes it (one line): half the noise, then `records`, then the rest.
pub fn log_file(records: &[String], noise: usize) -> String {
    let mut all: Vec<String> = (0..noise / 2).map(noise_record).collect();
    all.extend(records.iter().cloned());
    all.extend((noise / 2..noise).map(noise_record));
    format!("{{\"Records\":[{}]}}", all.join(","))
}

/// The same log file with one record per line (line n + 1 holds record n).
pub fn log_file_lines(records: &[String], noise: usize) -> String {
    let mut all: Vec<String> = (0..noise / 2).map(noise_record).collect();
    all.extend(records.iter().cloned());
    all.extend((noise / 2..noise).map(noise_record));
    format!("{{\"Records\":[\n{}\n]}}\n", all.join(",\n"))
}

pub fn gzip(text: &str) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// An S3 `ObjectCreated:Put` notification body; `key` as S3 writes it (form-encoded).
pub fn created(bucket: &str, encoded_key: &str, etag: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2025-03-10T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "snapwatch-archive",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded_key, "size": 1024, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}
        }
    }]})
    .to_string()
}

/// An SQS batch of (message id, body).
pub fn sqs_batch(messages: &[(&str, String)]) -> aws_lambda_events::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("rh-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:snapwatch-archive",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// (bucket, key) → (body, chunk size).
type Stored = HashMap<(String, String), (Vec<u8>, usize)>;

/// Objects in memory, served `chunk` bytes at a time.
#[derive(Clone, Default)]
pub struct MemoryObjects {
    objects: Arc<Mutex<Stored>>,
    opened: Arc<AtomicUsize>,
    fail_next: Arc<AtomicBool>,
}

impl MemoryObjects {
    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>, chunk: usize) {
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), (body, chunk.max(1)));
    }

    /// Objects opened so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// The next open fails transiently.
    pub fn fail_next_open(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

pub struct MemoryBody(VecDeque<Vec<u8>>);

impl ObjectBody for MemoryBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError> {
        Ok(self.0.pop_front())
    }
}

impl ObjectReader for MemoryObjects {
    type Body = MemoryBody;
    async fn open(&self, object: &ObjectRef) -> Result<MemoryBody, ObjectError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(ObjectError {
                message: "SlowDown".into(),
                retryable: true,
                source: None,
            });
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        let objects = self.objects.lock().unwrap();
        let (body, chunk) = objects
            .get(&(object.bucket.clone(), object.key.clone()))
            .ok_or_else(|| ObjectError {
                message: format!("NoSuchKey: {}", object.key),
                retryable: false,
                source: None,
            })?;
        Ok(MemoryBody(
            body.chunks(*chunk).map(<[u8]>::to_vec).collect(),
        ))
    }
}

/// The ledger in memory.
#[derive(Clone, Default)]
pub struct MemoryLedger {
    done: Arc<Mutex<HashSet<(String, String)>>>,
}

impl MemoryLedger {
    pub fn finished(&self, object: &ObjectRef) -> bool {
        self.done.lock().unwrap().contains(&ledger_key(object))
    }
}

impl ObjectLedger for MemoryLedger {
    async fn is_finished(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        Ok(self.finished(object))
    }

    async fn finish(
        &self,
        object: &ObjectRef,
        _now: DateTime<Utc>,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.done.lock().unwrap().insert(ledger_key(object));
        Ok(())
    }
}

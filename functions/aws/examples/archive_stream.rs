//! Measures the archive path on one large CloudTrail log file: RECORDS generated records (the
//! chain of the fixtures in the middle), gzip-compressed on the fly as the reader asks for
//! chunks, so no copy of the object exists anywhere and peak memory is the archive path's own.
//! In-memory store and sinks; prints records, bytes and rates.
//!
//!   /usr/bin/time -v cargo run -p snapwatch-aws --example archive_stream -- 300000

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool: a panic is a failed measurement, with its message"
)]

use flate2::write::GzEncoder;
use snapwatch_aws::archive::ledger::ObjectLedger;
use snapwatch_aws::archive::{ObjectBody, ObjectError, ObjectReader, ObjectRef};
use snapwatch_aws::dead_letter::{DeadLetter, DeadLetterError, Rejected};
use snapwatch_aws::handler::App;
use snapwatch_core::memory::{MemorySink, MemoryStore};
use snapwatch_core::ports::{FixedClock, StoreError};
use snapwatch_core::{Config, Severity};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

const CHUNK_RECORDS: usize = 64;

struct Generated {
    next: usize,
    total: usize,
    chain: Vec<String>,
    gzip: Option<GzEncoder<Vec<u8>>>,
    plain_bytes: Arc<std::sync::atomic::AtomicU64>,
}

fn noise(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLE{i:08}:s","arn":"arn:aws:sts::111122223333:assumed-role/app-{r}/s","accountId":"111122223333"}},"eventTime":"2025-03-10T11:{m:02}:{s:02}Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.0.{a}.{b}","userAgent":"aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22","requestParameters":{{"maxResults":1000}},"responseElements":null,"requestID":"{i:08x}-1111-2222-3333-444455556666","eventID":"{i:08x}-aaaa-bbbb-cccc-ddddeeeeffff","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}}"#,
        r = i % 17,
        m = (i / 60) % 60,
        s = i % 60,
        a = i % 250,
        b = (i * 7) % 250
    )
}

impl ObjectBody for Generated {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError> {
        let Some(gzip) = self.gzip.as_mut() else {
            return Ok(None);
        };
        let mut text = String::new();
        if self.next == 0 {
            text.push_str("{\"Records\":[");
        }
        let end = (self.next + CHUNK_RECORDS).min(self.total);
        for i in self.next..end {
            if i > 0 {
                text.push(',');
            }
            if i == self.total / 2 && !self.chain.is_empty() {
                text.push_str(&self.chain.join(","));
                text.push(',');
            }
            text.push_str(&noise(i));
        }
        self.next = end;
        if end == self.total {
            text.push_str("]}");
        }
        self.plain_bytes
            .fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
        gzip.write_all(text.as_bytes()).unwrap();
        if end == self.total {
            let done = self.gzip.take().unwrap().finish().unwrap();
            return Ok(Some(done));
        }
        Ok(Some(std::mem::take(gzip.get_mut())))
    }
}

struct Generator {
    total: usize,
    chain: Vec<String>,
    plain_bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl ObjectReader for Generator {
    type Body = Generated;
    async fn open(&self, _object: &ObjectRef) -> Result<Generated, ObjectError> {
        Ok(Generated {
            next: 0,
            total: self.total,
            chain: self.chain.clone(),
            gzip: Some(GzEncoder::new(Vec::new(), flate2::Compression::fast())),
            plain_bytes: self.plain_bytes.clone(),
        })
    }
}

struct NoLedger;

impl ObjectLedger for NoLedger {
    async fn is_finished(&self, _object: &ObjectRef) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn finish(
        &self,
        _object: &ObjectRef,
        _now: chrono::DateTime<chrono::Utc>,
        _expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

struct CountingDeadLetter;

impl DeadLetter for CountingDeadLetter {
    async fn keep(&self, rejected: &Rejected) -> Result<(), DeadLetterError> {
        eprintln!("dead-lettered: {}", rejected.reason);
        Ok(())
    }
}

/// The fixtures' single-instance chain as bare records (what a log file holds).
fn chain() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/aws");
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let mut run = read("run_instances.json");
    run["responseElements"]["instancesSet"]["items"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    vec![
        read("create_snapshot.json").to_string(),
        run.to_string(),
        read("authorize_security_group_ingress_rule_set.json").to_string(),
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("RECORDS is a number"))
        .unwrap_or(100_000);
    let plain_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut config = Config::default();
    config.alerts.min_severity = Severity::Critical;
    let archive = snapwatch_aws::archive::ArchiveApp {
        app: App {
            store: MemoryStore::new(),
            config,
            dead_letter: CountingDeadLetter,
            sns: Some(MemorySink::named("sns")),
            slack: None::<MemorySink>,
            securityhub: None,
            responder: None,
            clock: Arc::new(FixedClock(
                chrono::DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
                    .unwrap()
                    .into(),
            )),
        },
        reader: Generator {
            total,
            chain: chain(),
            plain_bytes: plain_bytes.clone(),
        },
        ledger: NoLedger,
    };
    let object = ObjectRef {
        bucket: "trail".into(),
        key: "AWSLogs/111122223333/CloudTrail/eu-west-1/2025/03/10/big.json.gz".into(),
        etag: None,
        version_id: None,
        size: None,
    };
    let started = Instant::now();
    let outcome = archive.object(&object).await.expect("object read");
    let secs = started.elapsed().as_secs_f64();
    let bytes = plain_bytes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "records {} events {} findings {} sent {:?}; {:.1} MB decompressed in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
        outcome.records,
        outcome.events,
        outcome.findings.len(),
        outcome.sent,
        bytes as f64 / 1e6,
        outcome.records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

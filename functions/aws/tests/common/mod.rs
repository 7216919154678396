//! Helpers shared by the snapwatch-aws tests: fixtures in EventBridge envelopes, a recording dead letter,
//! a Slack-like webhook receiver, and SDK clients pointed at the local servers.
#![allow(dead_code)] // each test binary uses a different subset

pub mod archive;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use snapwatch_aws::dead_letter::{DeadLetter, DeadLetterError, Rejected};
pub use snapwatch_testkit::MemorySink;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/aws")
}

/// A fixture file's text (a bare CloudTrail record, or already an EventBridge envelope).
pub fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every fixture file name, sorted.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures/aws exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Wraps a bare CloudTrail record in the EventBridge envelope EventBridge delivers it in
/// (records that already are envelopes are returned as they are).
pub fn envelope(record_text: &str) -> String {
    let record: serde_json::Value = serde_json::from_str(record_text).expect("fixture is JSON");
    if record.get("detail").is_some() {
        return record_text.to_string();
    }
    let source = record["eventSource"]
        .as_str()
        .and_then(|s| s.strip_suffix(".amazonaws.com"))
        .map_or_else(|| "aws.ec2".to_string(), |s| format!("aws.{s}"));
    let detail_type = if record["eventType"] == "AwsServiceEvent" {
        "AWS Service Event via CloudTrail"
    } else {
        "AWS API Call via CloudTrail"
    };
    serde_json::json!({
        "version": "0",
        "id": format!("eb-{}", record["eventID"].as_str().unwrap_or("none")),
        "detail-type": detail_type,
        "source": source,
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    })
    .to_string()
}

/// The same envelope with the CloudTrail `eventTime` (and envelope `time`) moved to `time`,
/// and optionally a new `eventID`: lets a stream of fixtures happen "now" for a real clock.
pub fn retimed(envelope_text: &str, time: DateTime<Utc>, event_id: Option<&str>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(envelope_text).expect("envelope is JSON");
    let stamp = time.to_rfc3339_opts(SecondsFormat::Secs, true);
    v["time"] = stamp.clone().into();
    v["detail"]["eventTime"] = stamp.into();
    if let Some(id) = event_id {
        v["detail"]["eventID"] = id.into();
        v["id"] = format!("eb-{id}").into();
    }
    v.to_string()
}

/// The attack chain of the fixtures, in order: snapshot made, made public, restored into an
/// instance, its security group opened to the internet on SSH.
pub const CHAIN: [&str; 4] = [
    "create_snapshot.json",
    "modify_snapshot_attribute_group_all.json",
    "run_instances.json",
    "authorize_security_group_ingress_rule_set.json",
];

/// The attack chain on one instance: the fixtures' `RunInstances` launches two, so its second
/// instance is dropped here; the public share is left out. Yields exactly one critical finding,
/// `chain.exposed-restore` (and `snapshot.restored-by-other`, medium).
pub fn single_instance_chain() -> Vec<String> {
    let mut run: serde_json::Value = serde_json::from_str(&fixture("run_instances.json")).unwrap();
    run["requestParameters"]["instancesSet"]["items"][0]["minCount"] = 1.into();
    run["requestParameters"]["instancesSet"]["items"][0]["maxCount"] = 1.into();
    run["responseElements"]["instancesSet"]["items"]
        .as_array_mut()
        .expect("instances")
        .truncate(1);
    vec![
        envelope(&fixture("create_snapshot.json")),
        envelope(&run.to_string()),
        envelope(&fixture("authorize_security_group_ingress_rule_set.json")),
    ]
}

/// A clock shortly after the fixtures' events, so their facts are inside the window.
pub fn fixture_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 0)
        .single()
        .expect("valid instant")
}

/// The rules a recording sink received, sorted.
pub fn sent_rules(sink: &MemorySink) -> Vec<String> {
    let mut rules: Vec<String> = sink.sent().iter().map(|f| f.rule.to_string()).collect();
    rules.sort();
    rules
}

/// Keeps rejected events in memory.
#[derive(Clone, Default)]
pub struct RecordingDeadLetter {
    pub kept: Arc<Mutex<Vec<Rejected>>>,
}

impl DeadLetter for RecordingDeadLetter {
    async fn keep(&self, rejected: &Rejected) -> Result<(), DeadLetterError> {
        self.kept.lock().unwrap().push(rejected.clone());
        Ok(())
    }
}

/// A local receiver that behaves like a Slack incoming webhook: records every request body
/// and answers the scripted statuses first, then 200.
#[derive(Clone, Default)]
pub struct SlackReceiver {
    pub script: Arc<Mutex<VecDeque<u16>>>,
    pub bodies: Arc<Mutex<Vec<(u16, serde_json::Value)>>>,
}

impl SlackReceiver {
    /// Starts it on a free loopback port; returns it and its webhook URL.
    pub async fn start(script: Vec<u16>) -> (SlackReceiver, String) {
        let rx = SlackReceiver::default();
        rx.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/services/T000/B000/XXXX", post(hook))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, format!("http://{addr}/services/T000/B000/XXXX"))
    }

    /// Bodies answered with 200.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn requests(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

async fn hook(State(rx): State<SlackReceiver>, body: String) -> (StatusCode, &'static str) {
    let status = rx.script.lock().unwrap().pop_front().unwrap_or(200);
    let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    rx.bodies.lock().unwrap().push((status, value));
    (
        StatusCode::from_u16(status).unwrap(),
        if status == 200 { "ok" } else { "server_error" },
    )
}

/// The endpoint a server test needs; fails (never skips) when the wrapper did not start it.
pub fn server_endpoint(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run under tests/servers/with-servers.sh (make test does)")
    })
}

/// A name unique to this test process and call, for tables and queues on shared servers.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// SDK config for a local server (fake credentials, us-east-1).
pub async fn local_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "snapwatch-tests",
        ))
        .endpoint_url(endpoint)
        .http_client(snapwatch_aws::clients::http_client())
        .load()
        .await
}

/// An SNS topic with an SQS queue subscribed, on moto: what was published is read back from the
/// queue (moto delivers SNS → SQS synchronously).
pub struct AlertTopic {
    pub sns: aws_sdk_sns::Client,
    pub topic_arn: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl AlertTopic {
    pub async fn create(sdk: &aws_config::SdkConfig) -> AlertTopic {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("alerts"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue arn");
        let topic_arn = sns
            .create_topic()
            .name(unique_name("findings"))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe the queue");
        AlertTopic {
            sns,
            topic_arn,
            sqs,
            queue_url,
        }
    }

    /// The findings published since the last call (SNS message bodies are finding JSON).
    pub async fn findings(&self) -> Vec<serde_json::Value> {
        drain(&self.sqs, &self.queue_url)
            .await
            .iter()
            .map(|m| {
                let envelope: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or("null")).expect("SNS envelope JSON");
                serde_json::from_str(envelope["Message"].as_str().expect("Message"))
                    .expect("finding JSON")
            })
            .collect()
    }
}

/// Everything waiting in a queue (moto delivers SNS → SQS synchronously).
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            return all;
        }
        for m in &batch {
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
        all.extend(batch);
    }
}

/// A snapshot lister for moto, with short retry delays.
pub fn moto_lister() -> snapwatch_aws_inventory::SnapshotLister {
    let credentials =
        aws_credential_types::Credentials::new("testing", "testing", None, None, "snapwatch-tests");
    snapwatch_aws_inventory::SnapshotLister::new(
        snapwatch_aws_inventory::QueryClient::new(
            reqwest::Client::new(),
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            Some(server_endpoint("SNAPWATCH_MOTO_ENDPOINT")),
        )
        .with_retry(snapwatch_aws_inventory::RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(50),
        }),
    )
}

/// The text of the first `<tag>` in a Query API response.
pub fn tag(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = xml[start..].find("</").expect("closing tag") + start;
    xml[start..end].to_string()
}

/// Sets snapshots, DB snapshots and images up directly on moto, as an attacker with console
/// access would: no event reaches snapwatch.
pub struct Moto {
    pub lister: snapwatch_aws_inventory::SnapshotLister,
    pub region: String,
}

impl Moto {
    pub async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        self.lister
            .client()
            .call(
                snapwatch_aws_inventory::Service::Ec2,
                &self.region,
                action,
                params,
            )
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    pub async fn rds(&self, action: &str, params: &[(&str, &str)]) -> String {
        self.lister
            .client()
            .call(
                snapwatch_aws_inventory::Service::Rds,
                &self.region,
                action,
                params,
            )
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    pub async fn snapshot(&self) -> String {
        let zone = format!("{}a", self.region);
        let volume = tag(
            &self
                .ec2(
                    "CreateVolume",
                    &[("AvailabilityZone", &zone), ("Size", "8")],
                )
                .await,
            "volumeId",
        );
        tag(
            &self
                .ec2(
                    "CreateSnapshot",
                    &[("VolumeId", &volume), ("Description", "nightly")],
                )
                .await,
            "snapshotId",
        )
    }

    pub async fn share_snapshot(&self, snapshot: &str, accounts: &[&str]) {
        let keys: Vec<String> = (1..=accounts.len())
            .map(|n| format!("UserId.{n}"))
            .collect();
        let mut params = vec![
            ("SnapshotId", snapshot),
            ("Attribute", "createVolumePermission"),
            ("OperationType", "add"),
        ];
        for (key, account) in keys.iter().zip(accounts) {
            params.push((key.as_str(), account));
        }
        self.ec2("ModifySnapshotAttribute", &params).await;
    }

    /// A manual DB snapshot; returns its ARN as the parsers normalise it (lower case).
    pub async fn db_snapshot(&self, name: &str, access: DbSnapshotAccess) -> String {
        let instance = format!("{name}-db");
        self.rds(
            "CreateDBInstance",
            &[
                ("DBInstanceIdentifier", &instance),
                ("DBInstanceClass", "db.t3.micro"),
                ("Engine", "postgres"),
                ("MasterUsername", "snapwatch"),
                ("MasterUserPassword", "not-a-secret-0"),
                ("AllocatedStorage", "20"),
            ],
        )
        .await;
        let created = self
            .rds(
                "CreateDBSnapshot",
                &[
                    ("DBSnapshotIdentifier", name),
                    ("DBInstanceIdentifier", &instance),
                ],
            )
            .await;
        if access == DbSnapshotAccess::Public {
            self.rds(
                "ModifyDBSnapshotAttribute",
                &[
                    ("DBSnapshotIdentifier", name),
                    ("AttributeName", "restore"),
                    ("ValuesToAdd.AttributeValue.1", "all"),
                ],
            )
            .await;
        }
        tag(&created, "DBSnapshotArn").to_ascii_lowercase()
    }
}

/// Who may restore a DB snapshot the tests create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSnapshotAccess {
    /// The owning account only.
    Private,
    /// Anyone (`restore` shared with `all`).
    Public,
}

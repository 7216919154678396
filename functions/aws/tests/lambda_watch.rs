//! The real Lambda runtime: `cargo lambda watch` serves the Lambda Runtime API and the
//! invocations URL, and runs the `snapwatch-aws` binary this test run already built
//! (`--only-lambda-apis` + the binary started here with the `AWS_LAMBDA_*` variables watch asks
//! for), its environment pointing at moto. Why not let watch `cargo run` it: its build
//! environment differs from the test build's, so ring, rustls and everything above them compile
//! a second time (4 minutes on 2 cores). Events are POSTed to the invocations URL and the
//! function's responses checked; the test also reports the init figure the function logs
//! (process start → first event handled).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::*;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const FUNCTION: &str = "snapwatch-aws";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo lambda watch` and the function process, both stopped (by their ids) on drop.
struct Watch {
    child: Child,
    function: Option<Child>,
    log: PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(function) = &mut self.function {
            let _ = function.kill();
            let _ = function.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    /// Watch's log followed by the function's.
    fn log_text(&self) -> String {
        let mut text = String::new();
        for path in [self.log.clone(), self.log.with_extension("function.log")] {
            if let Ok(mut f) = std::fs::File::open(&path) {
                text.push_str(&format!("--- {}\n", path.display()));
                let _ = f.read_to_string(&mut text);
            }
        }
        text
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `cargo lambda watch --only-lambda-apis` on a free port and waits until it listens.
async fn start_watch() -> (Watch, u16) {
    let cargo_lambda = workspace_root().join(".tools/venv/bin/cargo-lambda");
    assert!(
        cargo_lambda.exists(),
        "{} is missing: run `make tools` first",
        cargo_lambda.display()
    );
    let port = free_port();
    let log = workspace_root().join(format!("target/servers/cargo-lambda-watch-{port}.log"));
    std::fs::create_dir_all(log.parent().expect("log dir")).expect("log dir");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(&cargo_lambda);
    command
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
        ])
        .args(["--invoke-port", &port.to_string(), "-p", FUNCTION])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file);
    let watch = Watch {
        child: command.spawn().expect("start cargo lambda watch"),
        function: None,
        log,
    };
    // watch can take seconds to listen on a loaded machine; a function exits if its first poll
    // of the Runtime API is refused, so functions start only once watch answers.
    let listening = Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < listening,
            "cargo lambda watch never listened:\n{}",
            watch.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (watch, port)
}

/// What `cargo lambda watch --only-lambda-apis` tells a function to use, and the fake
/// credentials and region for the local servers.
fn runtime_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME", "_".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

/// Starts the function binary `exe` against watch. It logs to its own file: sharing watch's
/// would let watch's writes, made at its own offset, overwrite the function's lines.
fn start_function(watch: &mut Watch, exe: &str, env: &[(&str, String)]) {
    let function_log = watch.log.with_extension("function.log");
    let function_file = std::fs::File::create(&function_log).expect("function log");
    let mut function = Command::new(exe);
    function
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(function_file.try_clone().expect("function log"))
        .stderr(function_file);
    watch.function = Some(function.spawn().expect("start the function"));
}

/// POSTs `body` to watch's invocations URL, retrying until the function is up.
async fn invoke(port: u16, body: String) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/_/invocations");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match client.post(&url).body(body.clone()).send().await {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return (status.as_u16(), text);
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("cannot invoke the function: {e}"),
        }
    }
}

/// A number the function logged in its JSON lines (`fields.<field>` of the line with `marker`).
fn logged_figure(log: &str, marker: &str, field: &str) -> Option<f64> {
    log.lines().filter(|l| l.contains(marker)).find_map(|l| {
        serde_json::from_str::<serde_json::Value>(l.trim())
            .ok()?
            .get("fields")?
            .get(field)?
            .as_f64()
    })
}

#[tokio::test]
async fn the_function_runs_under_cargo_lambda_watch() {
    let moto = server_endpoint(MOTO);

    // The deployment's resources on moto.
    let sdk = local_sdk(&moto).await;
    let table = unique_name("snapwatch-watch");
    snapwatch_aws::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table)
        .create_table()
        .await
        .expect("table");
    let topic = AlertTopic::create(&sdk).await;
    let sqs = topic.sqs.clone();
    let dlq = sqs
        .create_queue()
        .queue_name(unique_name("watch-dlq"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let (slack, webhook) = SlackReceiver::start(vec![]).await;

    let (mut watch, port) = start_watch().await;
    let mut env = runtime_env(port);
    env.extend([
        ("AWS_ENDPOINT_URL", moto.clone()),
        ("SNAPWATCH_TABLE_NAME", table.clone()),
        ("SNAPWATCH_SNS_TOPIC_ARN", topic.topic_arn.clone()),
        ("SNAPWATCH_DEAD_LETTER_QUEUE_URL", dlq.clone()),
        ("SNAPWATCH_SLACK_WEBHOOK_URL", webhook.clone()),
        ("SNAPWATCH_ALLOW_PLAINTEXT_WEBHOOK", "true".to_string()),
        ("SNAPWATCH_MIN_SEVERITY", "critical".to_string()),
        // The Security Hub sink through the real start path (STS account id, then imports).
        ("SNAPWATCH_SECURITYHUB", "on".to_string()),
    ]);

    // The port answers before the function is up; the first invocation waits for it.
    let now = Utc::now();
    let chain: Vec<String> = single_instance_chain()
        .iter()
        .enumerate()
        .map(|(i, raw)| retimed(raw, now - ChronoDuration::minutes(10 - i as i64), None))
        .collect();
    let invoke = |body: String| invoke(port, body);

    // The first invocation is queued before the function starts, so the function's
    // "first event handled" time is process start → init → first event handled.
    let first_invocation = tokio::spawn(invoke(chain[0].clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    start_function(&mut watch, env!("CARGO_BIN_EXE_snapwatch-aws"), &env);

    let mut outcomes = Vec::new();
    let (status, text) = first_invocation.await.expect("first invocation");
    assert_eq!(
        status,
        200,
        "invocation failed: {text}\nlog:\n{}",
        watch.log_text()
    );
    outcomes.push(serde_json::from_str::<serde_json::Value>(&text).expect("outcome JSON"));
    for raw in &chain[1..] {
        let (status, text) = invoke(raw.clone()).await;
        assert_eq!(
            status,
            200,
            "invocation failed: {text}\nlog:\n{}",
            watch.log_text()
        );
        outcomes.push(serde_json::from_str::<serde_json::Value>(&text).expect("outcome JSON"));
    }
    for o in &outcomes {
        assert_eq!(o["status"], "processed", "{o}");
    }
    let last = outcomes.last().expect("outcomes");
    assert_eq!(
        last["findings"].as_array().map(Vec::len),
        Some(1),
        "the exposed restore: {last}"
    );
    let sent_sns = last["sent"]["sns"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        sent_sns.len(),
        1,
        "the critical finding went to SNS: {last}"
    );
    assert_eq!(last["sent"]["slack"], last["sent"]["sns"]);
    assert_eq!(last["sent"]["securityhub"], last["sent"]["sns"]);

    let (status, text) =
        invoke("{\"id\":\"eb-garbage\",\"detail-type\":\"AWS API Call via CloudTrail\"}".into())
            .await;
    assert_eq!(status, 200, "a malformed event is acknowledged: {text}");
    let rejected: serde_json::Value = serde_json::from_str(&text).expect("outcome JSON");
    assert_eq!(rejected["status"], "dead_lettered");

    // Warm latency through the runtime emulator: redeliveries of the chain's last event.
    let mut warm = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let (status, _) = invoke(chain[2].clone()).await;
        assert_eq!(status, 200);
        warm.push(started.elapsed());
    }
    warm.sort();

    let messages = topic.findings().await;
    assert_eq!(messages.len(), 1, "one SNS message");
    assert_eq!(slack.delivered().len(), 1, "one Slack post");
    let kept = sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(
        kept.len(),
        1,
        "the malformed event is in the dead-letter queue"
    );

    let log = watch.log_text();
    let init = logged_figure(&log, "snapwatch-aws initialised", "init_ms");
    let first = logged_figure(&log, "first event handled", "since_start_ms");
    eprintln!(
        "FIGURE cargo lambda watch (debug build, moto): init {init:?} ms, process start to first event handled {first:?} ms; warm invoke through the emulator p50 {:?} p99 {:?}",
        warm[warm.len() / 2],
        warm[warm.len() - 1]
    );
    assert!(
        first.is_some(),
        "the function logs its start-to-first-event time:\n{log}"
    );
}

/// The scheduled baseline binary under the real runtime: EventBridge Scheduler's `{}` payload,
/// a snapshot shared directly on moto, the outcome JSON as the function answers it, one SNS
/// message marked as found by the baseline, and nothing more on the next run.
#[tokio::test]
async fn the_baseline_function_runs_under_cargo_lambda_watch() {
    let moto = server_endpoint(MOTO);
    let region = "sa-east-1";
    let sdk = local_sdk(&moto).await;
    let table = unique_name("snapwatch-watch-baseline");
    snapwatch_aws::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table)
        .create_table()
        .await
        .expect("table");
    let topic = AlertTopic::create(&sdk).await;
    let on_moto = Moto {
        lister: moto_lister(),
        region: region.to_string(),
    };
    let snapshot = on_moto.snapshot().await;
    on_moto.share_snapshot(&snapshot, &["999988887777"]).await;

    let (mut watch, port) = start_watch().await;
    let mut env = runtime_env(port);
    env.extend([
        ("AWS_ENDPOINT_URL", moto.clone()),
        ("SNAPWATCH_TABLE_NAME", table.clone()),
        ("SNAPWATCH_SNS_TOPIC_ARN", topic.topic_arn.clone()),
        ("SNAPWATCH_BASELINE_REGIONS", region.to_string()),
        ("SNAPWATCH_SECURITYHUB", "on".to_string()),
    ]);
    start_function(
        &mut watch,
        env!("CARGO_BIN_EXE_snapwatch-aws-baseline"),
        &env,
    );

    let (status, text) = invoke(port, "{}".into()).await;
    assert_eq!(
        status,
        200,
        "run failed: {text}\nlog:\n{}",
        watch.log_text()
    );
    let outcome: serde_json::Value = serde_json::from_str(&text).expect("outcome JSON");
    assert_eq!(outcome["account"], "123456789012", "{outcome}");
    assert_eq!(outcome["regions"][0]["region"], region);
    assert_eq!(outcome["regions"][0]["first_run"], true);
    assert_eq!(outcome["regions"][0]["exposures_found_by_baseline"], 1);
    assert_eq!(
        outcome["regions"][0]["sent"]["securityhub"], outcome["regions"][0]["sent"]["sns"],
        "{outcome}"
    );
    let sent = topic.findings().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["rule"], "snapshot.shared-external");
    assert_eq!(sent[0]["snapshot"], snapshot.as_str());
    assert_eq!(sent[0]["found_by"], "baseline");

    let (status, text) = invoke(port, "{}".into()).await;
    assert_eq!(status, 200, "rerun failed: {text}");
    let rerun: serde_json::Value = serde_json::from_str(&text).expect("outcome JSON");
    assert_eq!(
        rerun["regions"][0]["sent"],
        serde_json::json!({}),
        "{rerun}"
    );
    assert!(topic.findings().await.is_empty());
    let init = logged_figure(
        &watch.log_text(),
        "snapwatch-aws-baseline initialised",
        "init_ms",
    );
    eprintln!(
        "FIGURE baseline function init under cargo lambda watch (debug build, moto): {init:?} ms"
    );
    assert!(init.is_some(), "the function logs its init time");
}

/// The archive binary under the real runtime: an SQS event of two S3 notifications (one log file
/// holding the chain, one corrupt), the partial batch response exactly as Lambda reads it, one
/// SNS message, and a redelivery of the good notification that reads nothing.
#[tokio::test]
async fn the_archive_function_runs_under_cargo_lambda_watch() {
    use common::archive::{account_key, created, gzip, log_file, sqs_batch};
    let moto = server_endpoint(MOTO);
    let sdk = local_sdk(&moto).await;
    let table = unique_name("snapwatch-watch-archive");
    snapwatch_aws::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table)
        .create_table()
        .await
        .expect("table");
    let topic = AlertTopic::create(&sdk).await;
    let dlq = topic
        .sqs
        .create_queue()
        .queue_name(unique_name("watch-archive-dlq"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let s3 = snapwatch_aws_inventory::S3Client::new(
        reqwest::Client::new(),
        aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("testing", "testing", None, None, "tests"),
        ),
        "us-east-1",
        Some(&moto),
    )
    .expect("S3 client");
    let bucket = unique_name("watch-trail").to_lowercase();
    s3.put(&bucket, "", None, Vec::new()).await.expect("bucket");
    let now = Utc::now();
    let chain: Vec<String> = single_instance_chain()
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let envelope = retimed(raw, now - ChronoDuration::minutes(10 - i as i64), None);
            let v: serde_json::Value = serde_json::from_str(&envelope).expect("JSON");
            v["detail"].to_string()
        })
        .collect();
    let good = account_key("111122223333", "us-east-1", "watch");
    let corrupt = account_key("111122223333", "us-east-1", "corrupt");
    s3.put(&bucket, &good, None, gzip(&log_file(&chain, 1_000)))
        .await
        .expect("put");
    s3.put(&bucket, &corrupt, None, b"\x1f\x8bnot really gzip".to_vec())
        .await
        .expect("put");

    let (mut watch, port) = start_watch().await;
    let mut env = runtime_env(port);
    env.extend([
        ("AWS_ENDPOINT_URL", moto.clone()),
        ("SNAPWATCH_TABLE_NAME", table.clone()),
        ("SNAPWATCH_SNS_TOPIC_ARN", topic.topic_arn.clone()),
        ("SNAPWATCH_DEAD_LETTER_QUEUE_URL", dlq.clone()),
        ("SNAPWATCH_MIN_SEVERITY", "critical".to_string()),
    ]);
    start_function(
        &mut watch,
        env!("CARGO_BIN_EXE_snapwatch-aws-archive"),
        &env,
    );
    let batch = sqs_batch(&[
        ("m-good", created(&bucket, &good, "etag-good")),
        ("m-corrupt", created(&bucket, &corrupt, "etag-corrupt")),
    ]);
    let body = serde_json::to_string(&batch).expect("SQS event JSON");
    let (status, text) = invoke(port, body.clone()).await;
    assert_eq!(
        status,
        200,
        "invocation failed: {text}\nlog:\n{}",
        watch.log_text()
    );
    let response: serde_json::Value = serde_json::from_str(&text).expect("response JSON");
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m-corrupt"}]}),
        "log:\n{}",
        watch.log_text()
    );
    assert_eq!(topic.findings().await.len(), 1, "one SNS message");

    let (status, text) = invoke(port, body).await;
    assert_eq!(status, 200, "{text}");
    let log = watch.log_text();
    assert!(
        log.contains("already processed; skipped"),
        "the redelivered log file is not read again:\n{log}"
    );
    assert!(topic.findings().await.is_empty());
    let init = logged_figure(&log, "snapwatch-aws-archive initialised", "init_ms");
    eprintln!(
        "FIGURE archive function init under cargo lambda watch (debug build, moto): {init:?} ms"
    );
    assert!(init.is_some(), "the function logs its init time");
}

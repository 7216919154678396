//! `snapwatch scan s3://BUCKET/PREFIX` as a user runs it, against moto's S3 (started by
//! tests/servers/with-servers.sh): a CloudTrail archive in both key layouts, gzip objects of
//! realistic size in a KMS-encrypted bucket, a rejected record, a corrupt and a truncated object,
//! and a backfill cut off midway (credentials expiring, played by a proxy) resumed with
//! `--state`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]
#![cfg(feature = "baseline")]

mod support;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use snapwatch_aws_inventory::S3Client;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

const REGION: &str = "us-east-1";
const ORG: &str = "o-ab12cd34ef";
const MANAGEMENT: &str = "777788889999";

fn moto() -> String {
    std::env::var("SNAPWATCH_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("SNAPWATCH_MOTO_ENDPOINT is not set: run under tests/servers/with-servers.sh (make test does)")
    })
}

fn s3() -> S3Client {
    S3Client::new(
        reqwest::Client::new(),
        SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "t")),
        REGION,
        Some(&moto()),
    )
    .unwrap()
}

/// `snapwatch scan s3://BUCKET/PREFIX` with moto's (or a proxy's) endpoint and test
/// credentials from the environment, as jsonl.
fn backfill(endpoint: &str, url: &str, days: (&str, &str), state: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snapwatch"));
    command
        .args(["scan", "--format", "jsonl", "--endpoint-url", endpoint])
        .args(["--since", days.0, "--until", days.1])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    command.arg(url).output().expect("run snapwatch scan")
}

fn findings(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `(id, rule)` of each finding.
fn ids(found: &[Value]) -> BTreeSet<(String, String)> {
    found
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Unrelated traffic in bulk, each record with its own ids, so an object compresses like a
/// real one.
fn noise(count: usize, seed: u64, account: &str) -> Vec<Value> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut hex = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        format!("{state:016x}")
    };
    (0..count)
        .map(|i| {
            let mut r = record(
                &format!("noise-{}-{}", hex(), hex()),
                at(0, (i % 80_000) as i64),
                (account, REGION),
                "app",
                ["DescribeInstances", "GetObject", "AssumeRole", "PutObject"][i % 4],
                json!({"bucketName": format!("data-{}", hex()), "key": format!("k/{}.parquet", hex())}),
                Value::Null,
            );
            r["requestID"] = json!(hex());
            r
        })
        .collect()
}

/// A CloudTrail object: `{"Records":[` then one record per line, gzipped.
fn trail_object(records: &[Value]) -> Vec<u8> {
    let mut text = String::from("{\"Records\":[\n");
    for (i, r) in records.iter().enumerate() {
        text.push_str(&r.to_string());
        text.push_str(if i + 1 < records.len() { ",\n" } else { "\n" });
    }
    text.push_str("]}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn org_key(account: &str, day: &str, name: &str) -> String {
    format!("trail/AWSLogs/{ORG}/{account}/CloudTrail/{REGION}/{day}/{account}_CloudTrail_{REGION}_{name}.json.gz")
}

fn own_key(day: &str, name: &str) -> String {
    format!("trail/AWSLogs/{MANAGEMENT}/CloudTrail/{REGION}/{day}/{MANAGEMENT}_CloudTrail_{REGION}_{name}.json.gz")
}

/// An archive with two chains spread over objects, days and both layouts, plus objects the
/// range or the layout leaves out. Returns `(key, body)` in the order a backfill reads them.
fn archive() -> Vec<(String, Vec<u8>)> {
    let (d1, d2) = ("2024/01/10", "2024/01/11");
    let snap = "snap-0a1b2c3d4e5f60718";
    let public = "snap-0ffee0ffee0ffee00";
    let mut first = noise(30_000, 1, OWN);
    first.insert(
        2_000,
        create_snapshot("e-create", at(0, 100), OWN, "alice", snap),
    );
    let mut second = noise(6_000, 2, OWN);
    second.insert(
        10,
        share("e-share", at(0, 3_000), OWN, "alice", snap, OUTSIDE),
    );
    let mut management = noise(3_000, 3, MANAGEMENT);
    management.push(create_snapshot(
        "e-create-2",
        at(0, 500),
        MANAGEMENT,
        "bob",
        public,
    ));
    management.push(make_public(
        "e-public",
        at(0, 600),
        MANAGEMENT,
        "bob",
        public,
    ));
    let later = vec![
        launch(
            "e-launch",
            at(1, 0),
            OWN,
            "mallory",
            snap,
            "i-0123456789abcdef0",
            "sg-0123456789abcdef0",
        ),
        open_ssh(
            "e-open",
            at(1, 60),
            OWN,
            REGION,
            "mallory",
            "sg-0123456789abcdef0",
        ),
    ];
    vec![
        (own_key(d1, "20240110T0805Z_m1"), trail_object(&management)),
        (org_key(OWN, d1, "20240110T0805Z_a1"), trail_object(&first)),
        (org_key(OWN, d1, "20240110T0850Z_a2"), trail_object(&second)),
        (org_key(OWN, d2, "20240111T0800Z_a3"), trail_object(&later)),
    ]
}

/// Objects a backfill of 2024-01-10..11 must not read: another day, and the digest folder.
fn outside_the_range() -> Vec<(String, Vec<u8>)> {
    let snap = "snap-0dddd0dddd0dddd00";
    let chain = [
        create_snapshot("o-create", at(-3, 0), OWN, "alice", snap),
        make_public("o-public", at(-3, 60), OWN, "alice", snap),
    ];
    vec![
        (
            org_key(OWN, "2024/01/07", "20240107T0800Z_old"),
            trail_object(&chain),
        ),
        (
            format!(
                "trail/AWSLogs/{ORG}/{OWN}/CloudTrail-Digest/{REGION}/2024/01/10/digest.json.gz"
            ),
            trail_object(&chain),
        ),
    ]
}

async fn put_all(s3: &S3Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    for (key, body) in objects {
        s3.put(bucket, key, None, body.clone())
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

async fn bucket(s3: &S3Client, name: &str) {
    s3.put(name, "", None, Vec::new()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_reads_the_range_of_a_kms_encrypted_archive_and_names_what_it_cannot_read() {
    let s3 = s3();
    let name = "snapwatch-cli-backfill";
    bucket(&s3, name).await;
    let encryption = r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>alias/aws/s3</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#;
    s3.put(name, "", Some("encryption"), encryption.as_bytes().to_vec())
        .await
        .unwrap();
    let objects = archive();
    let biggest = objects.iter().map(|(_, b)| b.len()).max().unwrap();
    assert!(biggest > 1 << 20, "realistic objects: {biggest} bytes");
    put_all(&s3, name, &objects).await;
    put_all(&s3, name, &outside_the_range()).await;
    // A record that cannot be read, on line 3 of its object.
    let mut bad = share(
        "e-bad",
        at(1, 100),
        OWN,
        "alice",
        "snap-0bad0bad0bad0bad0",
        OUTSIDE,
    );
    bad["eventTime"] = json!("yesterday");
    let rejecting = org_key(OWN, "2024/01/11", "20240111T0900Z_rej");
    let broken = vec![
        (
            rejecting.clone(),
            trail_object(&[noise(1, 9, OWN)[0].clone(), bad]),
        ),
        // gzip magic, then garbage.
        (
            org_key(OWN, "2024/01/11", "20240111T0910Z_corrupt"),
            [&[0x1f, 0x8b, 0x08, 0x00][..], &[0x55; 4_000][..]].concat(),
        ),
        // The first half of a good object.
        (org_key(OWN, "2024/01/11", "20240111T0920Z_truncated"), {
            let whole = trail_object(&noise(2_000, 4, OWN));
            whole[..whole.len() / 2].to_vec()
        }),
    ];
    put_all(&s3, name, &broken).await;

    let out = tokio::task::spawn_blocking(move || {
        backfill(
            &moto(),
            &format!("s3://{name}/trail"),
            ("2024-01-10", "2024-01-11"),
            None,
        )
    })
    .await
    .unwrap();
    let stderr = stderr(&out);
    let found = findings(&out);
    let mut rules = rules(&found);
    rules.sort();
    assert!(
        rules.contains(&"snapshot.shared-external".to_string())
            && rules.contains(&"snapshot.public".to_string()),
        "the two chains of the range: {rules:?}\n{stderr}"
    );
    assert!(
        found
            .iter()
            .all(|f| !f.to_string().contains("snap-0dddd0dddd0dddd00")),
        "nothing from outside the range or from the digest folder: {found:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "unreadable objects: exit 1\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("snapwatch: rejected s3://{name}/{rejecting}:3: ")),
        "{stderr}"
    );
    for cut in ["_corrupt.json.gz", "_truncated.json.gz"] {
        assert!(
            stderr.lines().any(|l| l
                .starts_with(&format!("snapwatch: error: cannot read s3://{name}/"))
                && l.contains(cut)),
            "{cut} named: {stderr}"
        );
    }
    assert!(
        stderr.contains("s3 objects read 5 ("),
        "four archive objects and the rejecting one read, two failed: {stderr}"
    );
    assert!(stderr.contains("failed 2"), "{stderr}");
}

/// Forwards to moto until `allowed` objects were fetched; then answers every request as S3
/// does once the credentials of a long backfill expire.
#[derive(Clone)]
struct Expiring {
    upstream: String,
    allowed: usize,
    fetched: Arc<AtomicUsize>,
    http: reqwest::Client,
}

async fn forward(
    State(proxy): State<Expiring>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_get_object = method == Method::GET
        && !uri.query().unwrap_or_default().contains("list-type")
        && uri.path().trim_matches('/').contains('/');
    let expired = if is_get_object {
        proxy.fetched.fetch_add(1, Ordering::SeqCst) >= proxy.allowed
    } else {
        // After the cut, listings fail too.
        proxy.fetched.load(Ordering::SeqCst) > proxy.allowed
    };
    if expired {
        return (
            StatusCode::BAD_REQUEST,
            "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
        )
            .into_response();
    }
    let url = format!(
        "{}{}",
        proxy.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = proxy.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut response_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "connection" {
            response_headers.insert(name.clone(), value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap();
    (status, response_headers, bytes).into_response()
}

async fn expiring_proxy(allowed: usize) -> (String, Arc<AtomicUsize>) {
    let fetched = Arc::new(AtomicUsize::new(0));
    let state = Expiring {
        upstream: moto(),
        allowed,
        fetched: fetched.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fetched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_resumes_from_its_state_with_the_same_findings() {
    let s3 = s3();
    let name = "snapwatch-cli-resume";
    bucket(&s3, name).await;
    put_all(&s3, name, &archive()).await;
    let url = format!("s3://{name}/trail/AWSLogs/");
    let days = ("2024-01-10", "2024-01-11");
    let dir = tempfile::tempdir().unwrap();

    // The reference: one uninterrupted backfill.
    let clean_state = dir.path().join("clean.db");
    let (u, s) = (url.clone(), clean_state.clone());
    let clean = tokio::task::spawn_blocking(move || backfill(&moto(), &u, days, Some(&s)))
        .await
        .unwrap();
    assert!(clean.status.success(), "{}", stderr(&clean));
    let expected = ids(&findings(&clean));
    assert!(expected.len() >= 2, "{expected:?}\n{}", stderr(&clean));

    // Cut off after two objects: the credentials expire.
    let state = dir.path().join("resumed.db");
    let (proxy, _fetched) = expiring_proxy(2).await;
    let (u, s) = (url.clone(), state.clone());
    let first = tokio::task::spawn_blocking(move || backfill(&proxy, &u, days, Some(&s)))
        .await
        .unwrap();
    let first_err = stderr(&first);
    assert_eq!(first.status.code(), Some(1), "{first_err}");
    assert!(first_err.contains("ExpiredToken"), "{first_err}");

    // The rerun skips the two finished objects and reads the rest.
    let (u, s) = (url.clone(), state.clone());
    let second = tokio::task::spawn_blocking(move || backfill(&moto(), &u, days, Some(&s)))
        .await
        .unwrap();
    let second_err = stderr(&second);
    assert!(second.status.success(), "{second_err}");
    assert!(
        second_err.contains("s3 objects read 2 (") && second_err.contains("finished in state 2,"),
        "{second_err}"
    );
    let mut resumed = ids(&findings(&first));
    resumed.extend(ids(&findings(&second)));
    assert_eq!(
        resumed, expected,
        "first run:\n{first_err}\nrerun:\n{second_err}"
    );

    // A third run has nothing left to read.
    let third = tokio::task::spawn_blocking(move || backfill(&moto(), &url, days, Some(&state)))
        .await
        .unwrap();
    assert!(third.status.success());
    assert!(findings(&third).is_empty());
    assert!(
        stderr(&third).contains("s3 objects read 0 (0 MB), skipped as finished in state 4,"),
        "{}",
        stderr(&third)
    );
}

#[test]
fn s3_paths_need_a_start_day_and_the_range_options_need_s3_paths() {
    let out = scan_to(std::process::Stdio::piped(), &["s3://some-bucket/AWSLogs/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
    let out = scan_to(
        std::process::Stdio::piped(),
        &["--since", "2024-01-10", "tests/fixtures"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("s3://"), "{}", stderr(&out));
    let out = scan_to(
        std::process::Stdio::piped(),
        &[
            "--since",
            "2024-01-12",
            "--until",
            "2024-01-10",
            "s3://b12/",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is after"), "{}", stderr(&out));
}

/// Killed mid-backfill (SIGKILL: no final evaluation), the rerun must still print a chain whose
/// objects were all finished before the kill: an object counts as finished only once its chains
/// were evaluated and delivered.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_mid_object_loses_no_finding_of_the_objects_it_finished() {
    let s3 = s3();
    let name = "snapwatch-cli-killed";
    bucket(&s3, name).await;
    let day = "2024/01/10";
    let public = "snap-0ffee0ffee0ffee00";
    let chain = vec![
        create_snapshot("k-create", at(0, 500), MANAGEMENT, "bob", public),
        make_public("k-public", at(0, 600), MANAGEMENT, "bob", public),
    ];
    // The chain's object is read first; bulk objects keep the scan busy after it.
    let first = own_key(day, "20240110T0000Z_chain");
    let mut objects = vec![(first.clone(), trail_object(&chain))];
    for i in 0..8 {
        objects.push((
            own_key(day, &format!("20240110T{:02}00Z_bulk", i + 1)),
            trail_object(&noise(30_000, 100 + i, MANAGEMENT)),
        ));
    }
    put_all(&s3, name, &objects).await;
    let etag = s3.list_all_objects(name, &first, None).await.unwrap()[0]
        .etag
        .clone();
    let url = format!("s3://{name}/trail/");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("killed.db");

    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(["scan", "--format", "jsonl", "--endpoint-url", &moto()])
        .args(["--since", "2024-01-10", "--until", "2024-01-10", "--state"])
        .arg(&state)
        .arg(&url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let source = format!("s3://{name}/{first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let finished = state.exists()
            && snapwatch_sqlite::SqliteStore::open(&state)
                .and_then(|store| store.object_finished(&source, &etag))
                .unwrap_or(false);
        if finished {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the scan ended before it could be killed"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the first object never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(!killed.status.success(), "killed before the end");

    let (u, s) = (url.clone(), state.clone());
    let rerun = tokio::task::spawn_blocking(move || {
        backfill(&moto(), &u, ("2024-01-10", "2024-01-10"), Some(&s))
    })
    .await
    .unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(
        findings(&killed).len() + findings(&rerun).len(),
        1,
        "printed once across both runs"
    );
    let mut printed = ids(&findings(&killed));
    printed.extend(ids(&findings(&rerun)));
    let rules: Vec<&str> = printed.iter().map(|(_, rule)| rule.as_str()).collect();
    assert_eq!(
        rules,
        vec!["snapshot.public"],
        "the chain of the finished object, printed once across both runs\n{}",
        stderr(&rerun)
    );
    assert!(
        stderr(&rerun).contains("skipped as finished in state"),
        "{}",
        stderr(&rerun)
    );
}

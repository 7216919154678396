//! `snapwatch baseline` as a user runs it, against moto's EC2 (started by
//! tests/servers/with-servers.sh): the caller's credentials from the environment, findings on
//! stdout, the baseline kept in the `--state` file between runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]
#![cfg(feature = "baseline")]

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use snapwatch_aws_inventory::{QueryClient, Service};
use std::process::{Command, Output};

const REGION: &str = "ap-southeast-4";
const OUTSIDE: &str = "999988887777";

fn moto() -> String {
    std::env::var("SNAPWATCH_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("SNAPWATCH_MOTO_ENDPOINT is not set: run under tests/servers/with-servers.sh (make test does)")
    })
}

fn tag(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = xml[start..].find("</").expect("closing tag") + start;
    xml[start..end].to_string()
}

/// A snapshot shared outside the account directly on moto.
async fn shared_snapshot() -> String {
    let client = QueryClient::new(
        reqwest::Client::new(),
        SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "t")),
        Some(moto()),
    );
    let ec2 = |action: &'static str, params: Vec<(&'static str, String)>| {
        let client = &client;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client
                .call(Service::Ec2, REGION, action, &params)
                .await
                .unwrap_or_else(|e| panic!("{action}: {e}"))
        }
    };
    let volume = tag(
        &ec2(
            "CreateVolume",
            vec![
                ("AvailabilityZone", format!("{REGION}a")),
                ("Size", "8".into()),
            ],
        )
        .await,
        "volumeId",
    );
    let snapshot = tag(
        &ec2("CreateSnapshot", vec![("VolumeId", volume)]).await,
        "snapshotId",
    );
    ec2(
        "ModifySnapshotAttribute",
        vec![
            ("SnapshotId", snapshot.clone()),
            ("Attribute", "createVolumePermission".into()),
            ("OperationType", "add".into()),
            ("UserId.1", OUTSIDE.into()),
        ],
    )
    .await;
    snapshot
}

fn baseline(state: &std::path::Path) -> Output {
    baseline_to(state, std::process::Stdio::piped())
}

fn baseline_to(state: &std::path::Path, stdout: std::process::Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .stdout(stdout)
        .args([
            "baseline",
            "--region",
            REGION,
            "--endpoint-url",
            &moto(),
            "--format",
            "jsonl",
            "--state",
        ])
        .arg(state)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run snapwatch baseline")
}

#[tokio::test]
async fn baseline_prints_a_direct_share_once_and_keeps_the_baseline_in_the_state_file() {
    let snapshot = shared_snapshot().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");

    let first = baseline(&state);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("finding JSON"))
        .collect();
    let mine: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["snapshot"] == snapshot.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{findings:?}");
    assert_eq!(mine[0]["rule"], "snapshot.shared-external");
    assert_eq!(mine[0]["found_by"], "baseline");
    assert!(stderr.contains("first baseline of this region"), "{stderr}");

    let second = baseline(&state);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        second.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert!(
        !stderr.contains("first baseline of this region"),
        "{stderr}"
    );
    assert!(stderr.contains("already reported in state"), "{stderr}");
}

#[test]
fn an_unreachable_endpoint_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args([
            "baseline",
            "--region",
            REGION,
            "--endpoint-url",
            "http://127.0.0.1:9",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sts:GetCallerIdentity"), "{stderr}");
}

#[tokio::test]
async fn a_finding_stdout_could_not_take_is_printed_by_the_next_run() {
    let snapshot = shared_snapshot().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");

    let failed = baseline_to(&state, full.into());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not delivered"), "{stderr}");

    let rerun = baseline(&state);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    let mine = String::from_utf8_lossy(&rerun.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("finding JSON"))
        .filter(|f| f["snapshot"] == snapshot.as_str())
        .count();
    assert_eq!(mine, 1, "the rerun prints the lost finding: {stderr}");
}

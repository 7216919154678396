//! CloudTrail records built in code for the time and streaming tests, and the binary to run.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const OWN: &str = "111122223333";
pub const OTHER_OWN: &str = "444455556666";
pub const OUTSIDE: &str = "999988887777";

pub fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 8, 0, 0).unwrap()
}

pub fn at(days: i64, secs: i64) -> DateTime<Utc> {
    day0() + Duration::days(days) + Duration::seconds(secs)
}

pub fn user(account: &str, name: &str) -> Value {
    json!({
        "type": "IAMUser",
        "principalId": format!("AIDA{name}"),
        "arn": format!("arn:aws:iam::{account}:user/{name}"),
        "accountId": account,
        "userName": name
    })
}

/// One CloudTrail record of the EC2 API, made in `place` (account, region).
pub fn record(
    id: &str,
    time: DateTime<Utc>,
    (account, region): (&str, &str),
    actor: &str,
    name: &str,
    request: Value,
    response: Value,
) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": user(account, actor),
        "eventTime": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.77",
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": request,
        "responseElements": response,
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": account
    })
}

pub fn create_snapshot(
    id: &str,
    time: DateTime<Utc>,
    account: &str,
    actor: &str,
    snap: &str,
) -> Value {
    record(
        id,
        time,
        (account, "us-east-1"),
        actor,
        "CreateSnapshot",
        json!({"volumeId": format!("vol-src{snap}")}),
        json!({"snapshotId": snap, "status": "pending"}),
    )
}

pub fn share(
    id: &str,
    time: DateTime<Utc>,
    account: &str,
    actor: &str,
    snap: &str,
    with: &str,
) -> Value {
    record(
        id,
        time,
        (account, "us-east-1"),
        actor,
        "ModifySnapshotAttribute",
        json!({"snapshotId": snap, "attributeType": "CREATE_VOLUME_PERMISSION",
               "createVolumePermission": {"add": {"items": [{"userId": with}]}}}),
        json!({"_return": true}),
    )
}

pub fn make_public(id: &str, time: DateTime<Utc>, account: &str, actor: &str, snap: &str) -> Value {
    record(
        id,
        time,
        (account, "us-east-1"),
        actor,
        "ModifySnapshotAttribute",
        json!({"snapshotId": snap, "attributeType": "CREATE_VOLUME_PERMISSION",
               "createVolumePermission": {"add": {"items": [{"group": "all"}]}}}),
        json!({"_return": true}),
    )
}

pub fn create_volume(
    id: &str,
    time: DateTime<Utc>,
    account: &str,
    actor: &str,
    snap: &str,
    volume: &str,
) -> Value {
    record(
        id,
        time,
        (account, "us-east-1"),
        actor,
        "CreateVolume",
        json!({"snapshotId": snap, "availabilityZone": "us-east-1a"}),
        json!({"volumeId": volume, "snapshotId": snap, "status": "creating"}),
    )
}

pub fn launch(
    id: &str,
    time: DateTime<Utc>,
    account: &str,
    actor: &str,
    snap: &str,
    instance: &str,
    group: &str,
) -> Value {
    record(
        id,
        time,
        (account, "us-east-1"),
        actor,
        "RunInstances",
        json!({"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]},
               "groupSet": {"items": [{"groupId": group}]},
               "blockDeviceMapping": {"items": [{"deviceName": "/dev/sdf", "ebs": {"snapshotId": snap}}]}}),
        json!({"instancesSet": {"items": [{"instanceId": instance, "groupSet": {"items": [{"groupId": group}]}}]}}),
    )
}

pub fn open_ssh(
    id: &str,
    time: DateTime<Utc>,
    account: &str,
    region: &str,
    actor: &str,
    group: &str,
) -> Value {
    record(
        id,
        time,
        (account, region),
        actor,
        "AuthorizeSecurityGroupIngress",
        json!({"groupId": group, "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
               "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}),
        json!({"_return": true}),
    )
}

/// Writes records as JSON lines.
pub fn write_lines(path: &Path, records: &[Value]) {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `snapwatch scan ARGS…` with stdout sent where the test says (a pipe, `/dev/full`, a pipe
/// whose reader is gone) and stderr captured.
pub fn scan_to(stdout: Stdio, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .arg("scan")
        .args(args)
        .current_dir(repo())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run snapwatch")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn snapwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run snapwatch")
}

/// `snapwatch scan --format jsonl [--state STATE] PATH…`, which must succeed.
pub fn scan(state: Option<&Path>, paths: &[&Path]) -> (Vec<Value>, String) {
    let mut args: Vec<String> = vec!["scan".into(), "--format".into(), "jsonl".into()];
    if let Some(state) = state {
        args.push("--state".into());
        args.push(state.display().to_string());
    }
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = snapwatch(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "snapwatch failed: {stderr}");
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (findings, stderr)
}

pub fn rules(findings: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

//! What reaches the reader: findings on stdout are counted as delivered only once written and
//! flushed, and every line on stderr is escaped, whatever the input or the file names hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{scan_to, stderr};

fn finding_lines(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Findings on the demo with a fresh state file: the count every failed delivery must keep.
fn demo_findings() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.db");
    let out = scan_to(
        Stdio::piped(),
        &[
            "--format",
            "jsonl",
            "--state",
            state.to_str().unwrap(),
            "tests/demo",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let n = finding_lines(&out);
    assert!(n >= 3, "the demo has a chain per cloud");
    n
}

/// A scan whose stdout cannot be written fails, says how many findings were lost, and leaves
/// them unreported in the state file, so the rerun prints every one.
fn failed_stdout_keeps_findings_for_the_rerun(broken_stdout: impl Fn() -> Stdio, format: &str) {
    let expected = demo_findings();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.db");
    let state = state.to_str().unwrap();
    let args = ["--format", format, "--state", state, "tests/demo"];

    let failed = scan_to(broken_stdout(), &args);
    let err = stderr(&failed);
    assert_eq!(failed.status.code(), Some(3), "stderr: {err}");
    assert!(
        err.contains(&format!("not delivered {expected}")),
        "the summary counts the lost findings: {err}"
    );
    assert!(err.contains("printed 0"), "nothing was printed: {err}");

    let rerun = scan_to(
        Stdio::piped(),
        &["--format", "jsonl", "--state", state, "tests/demo"],
    );
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(
        finding_lines(&rerun),
        expected,
        "the rerun prints what the failed run could not: {}",
        stderr(&rerun)
    );
}

fn dev_full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

/// A pipe whose reader has exited: every write fails with EPIPE, as after `| head -1` exits.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn true");
    let writer = reader.stdin.take().expect("pipe to true");
    reader.wait().expect("true exits");
    writer.into()
}

#[test]
fn a_full_disk_on_stdout_loses_no_finding() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full: skipped");
        return;
    }
    failed_stdout_keeps_findings_for_the_rerun(dev_full, "jsonl");
    failed_stdout_keeps_findings_for_the_rerun(dev_full, "text");
    failed_stdout_keeps_findings_for_the_rerun(dev_full, "ocsf");
}

#[test]
fn a_closed_pipe_on_stdout_loses_no_finding() {
    failed_stdout_keeps_findings_for_the_rerun(closed_pipe, "jsonl");
}

/// Raw bytes a person must never receive on stderr from log values or file names.
fn assert_stderr_escaped(err: &str) {
    assert!(
        !err.chars()
            .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{202E}')),
        "raw control or reordering character on stderr: {err:?}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("forged")),
        "a value forged a line: {err}"
    );
}

#[test]
fn file_names_in_reject_lines_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join("x\nforged: rejected a.json:1: \u{1b}[31mred\u{202E}\u{85}.json");
    std::fs::write(&file, "not json\n").unwrap();
    let out = scan_to(Stdio::piped(), &[file.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("rejected "), "{err}");
    assert!(
        err.contains("x\\u{a}forged: rejected a.json:1: \\u{1b}[31mred\\u{202e}\\u{85}.json:1:"),
        "{err}"
    );
    assert_stderr_escaped(&err);
}

#[test]
fn the_many_dependents_warning_escapes_the_resource_id_and_stderr_has_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.jsonl");
    let snapshot = "snap-0\u{1b}[2J\nforged line\u{2028}\u{202E}";
    let records: Vec<String> = (0..1_005)
        .map(|n| {
            serde_json::json!({
                "eventVersion": "1.09",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
                "eventTime": "2026-03-02T10:30:00Z",
                "eventSource": "ec2.amazonaws.com",
                "eventName": "CreateVolume",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.9",
                "requestParameters": {"snapshotId": snapshot},
                "responseElements": {"volumeId": format!("vol-{n:017}"), "snapshotId": snapshot},
                "eventID": format!("00000000-0000-0000-0000-{n:012}"),
                "eventType": "AwsApiCall",
                "recipientAccountId": "111122223333"
            })
            .to_string()
        })
        .collect();
    std::fs::write(&file, records.join("\n")).unwrap();
    let out = scan_to(Stdio::piped(), &[file.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("too many dependents"), "{err}");
    assert!(
        err.contains("\\u{1b}[2J\\u{a}forged line\\u{2028}\\u{202e}"),
        "{err}"
    );
    assert_stderr_escaped(&err);
}

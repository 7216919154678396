//! The byte prefilter as a user sees it (README, Limits): bad input keeps being rejected with
//! its reason, except a one-line record of a known shape that names no consumed operation and
//! is invalid inside, which is counted irrelevant; findings never change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use std::io::Write;
use std::process::{Command, Stdio};

/// The summary line of `snapwatch scan --format jsonl -` over `input`, and the findings.
fn scan(input: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(["scan", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snapwatch");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stderr
        .lines()
        .find(|l| l.contains(" records in "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"))
        .to_string();
    (summary, String::from_utf8(out.stdout).unwrap())
}

fn counts(summary: &str) -> String {
    // "snapwatch: N records in Xs (R/s); chain events …": drop the timing.
    let (head, rest) = summary.split_once(" in ").unwrap();
    let rest = rest.split_once("; ").unwrap().1;
    format!("{head}; {rest}")
}

const UNRELATED: &str = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventTime":"2026-05-01T00:00:00Z"}"#;

#[test]
fn truncated_garbage_and_unknown_lines_are_still_rejected_with_their_reason() {
    let cut = &UNRELATED[..UNRELATED.len() - 10];
    let input = format!(
        "{UNRELATED}\n{cut}\nnot json\n{{\"hello\":\"world\"}}\n[{UNRELATED}]x\n{UNRELATED}\n"
    );
    let (summary, findings) = scan(&input);
    assert_eq!(
        counts(&summary),
        "snapwatch: 6 records; chain events 0 (0 facts); skipped irrelevant 2; rejected 4",
        "{summary}"
    );
    assert!(findings.is_empty());
}

#[test]
fn a_one_line_unrelated_record_broken_inside_is_counted_irrelevant() {
    // Framed as one object, of a known shape (eventVersion), naming no consumed call, but
    // invalid JSON inside: the byte search skips it before any parsing (README, Limits).
    let broken =
        r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject",}"#;
    let (summary, _) = scan(&format!("{UNRELATED}\n{broken}\n"));
    assert_eq!(
        counts(&summary),
        "snapwatch: 2 records; chain events 0 (0 facts); skipped irrelevant 2; rejected 0",
        "{summary}"
    );
    // Spread over lines (a pretty-printed or hand-made record), it is judged and rejected.
    let pretty = "{\n  \"eventVersion\": \"1.08\",\n  \"eventName\": \"GetObject\",\n}\n";
    let (summary, _) = scan(&format!("{pretty}{pretty}"));
    assert!(summary.ends_with("rejected 1"), "{summary}");
    // And a broken record that names a consumed call is rejected as before.
    let consumed = r#"{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":"CreateSnapshot",}"#;
    let (summary, _) = scan(&format!("{UNRELATED}\n{consumed}\n"));
    assert!(summary.ends_with("rejected 1"), "{summary}");
}

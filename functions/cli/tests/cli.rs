//! `snapwatch` as a user runs it: the real binary over files, directories, stdin and gzip,
//! with the exit codes and stderr reports the DESIGN contract promises.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn snapwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run snapwatch")
}

fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snapwatch");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn findings(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn rules(findings: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["cloud"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn demo_finds_a_chain_on_every_cloud() {
    let out = snapwatch(&["scan", "--format", "jsonl", "tests/demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = findings(&out);
    for cloud in ["aws", "azure", "gcp"] {
        assert!(
            found
                .iter()
                .any(|f| f["cloud"] == cloud && f["rule"] == "chain.exposed-restore"),
            "no exposed-restore chain for {cloud}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("25 records"), "summary on stderr: {stderr}");
    assert!(stderr.contains("findings 9"), "{stderr}");
    // stdout carries findings only.
    assert_eq!(found.len(), 9);
}

#[test]
fn text_format_is_for_people() {
    let out = snapwatch(&["scan", "tests/demo/gcp-audit.jsonl"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[CRITICAL] chain.exposed-restore"), "{text}");
    assert!(text.contains("Next steps"), "{text}");
}

#[test]
fn stdin_and_gzip_inputs_give_the_same_findings_as_the_file() {
    let raw = std::fs::read(repo().join("tests/demo/aws-cloudtrail.json")).unwrap();
    let from_file = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "tests/demo/aws-cloudtrail.json",
    ]));
    let from_stdin = findings(&with_stdin(&["scan", "--format", "jsonl", "-"], &raw));
    assert_eq!(from_file, from_stdin);

    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir
        .path()
        .join("111122223333_CloudTrail_us-east-1_20260302T0900Z_abc.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap();
    let from_gz = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        gz_path.to_str().unwrap(),
    ]));
    assert_eq!(from_file, from_gz);
    assert_eq!(rules(&from_file).len(), 4);
}

#[test]
fn order_of_files_does_not_change_the_findings() {
    let a = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "tests/demo/gcp-audit.jsonl",
        "tests/demo/aws-cloudtrail.json",
    ]));
    let b = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "tests/demo/aws-cloudtrail.json",
        "tests/demo/gcp-audit.jsonl",
    ]));
    assert_eq!(a, b);
}

#[test]
fn malformed_records_are_reported_with_file_line_and_reason_and_the_rest_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let gcp = std::fs::read_to_string(repo().join("tests/demo/gcp-audit.jsonl")).unwrap();
    let mut lines: Vec<&str> = gcp.lines().collect();
    lines.insert(2, "{\"insertId\": \"broken\", ");
    lines.insert(4, "{\"neither\": \"cloud\"}");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = snapwatch(&["scan", "--format", "jsonl", path.to_str().unwrap()]);
    assert!(out.status.success(), "a bad record is not fatal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mixed.jsonl:3: invalid JSON"), "{stderr}");
    assert!(
        stderr.contains("mixed.jsonl:5: unrecognised record format"),
        "{stderr}"
    );
    assert!(stderr.contains("rejected 2"), "{stderr}");
    assert!(findings(&out)
        .iter()
        .any(|f| f["rule"] == "chain.exposed-restore"));
}

#[test]
fn unreadable_path_or_invalid_config_fail_with_a_clear_message() {
    let out = snapwatch(&["scan", "tests/demo", "/nonexistent/trail.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/trail.json"));
    assert!(out.stdout.is_empty(), "fails before printing anything");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[chain]\nwindow_days = 0\n").unwrap();
    let out = snapwatch(&["scan", "--config", bad.to_str().unwrap(), "tests/demo"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chain.window_days"), "{stderr}");

    std::fs::write(&bad, "[trust]\naccounts = [\"1\"]\nprincipls = []\n").unwrap();
    let out = snapwatch(&["scan", "--config", bad.to_str().unwrap(), "tests/demo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("principls"));
}

#[test]
fn config_trust_suppresses_shares_to_organization_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("snapwatch.toml");
    std::fs::write(
        &cfg,
        "[trust]\naccounts = [\"999988887777\"]\n[alerts]\nmin_severity = \"high\"\n",
    )
    .unwrap();
    let out = snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--config",
        cfg.to_str().unwrap(),
        "tests/demo/aws-cloudtrail.json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = rules(&findings(&out));
    assert_eq!(
        found,
        vec![("aws".to_string(), "chain.exposed-restore".to_string())]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("below min_severity 1"));
}

#[test]
fn state_file_links_consecutive_batches_and_reports_each_chain_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/demo/aws-cloudtrail.json")).unwrap(),
    )
    .unwrap();
    let records = raw["Records"].as_array().unwrap();
    // Batch 1: everything up to the instance launch; batch 2: the security group opening.
    let split = records
        .iter()
        .position(|r| r["eventName"] == "AuthorizeSecurityGroupIngress")
        .unwrap();
    let first = dir.path().join("batch1.json");
    let second = dir.path().join("batch2.json");
    std::fs::write(
        &first,
        serde_json::json!({"Records": records[..split]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        &second,
        serde_json::json!({"Records": records[split..]}).to_string(),
    )
    .unwrap();
    let state_arg = state.to_str().unwrap();

    let one = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--state",
        state_arg,
        first.to_str().unwrap(),
    ]));
    assert!(!one.iter().any(|f| f["rule"] == "chain.exposed-restore"));
    let two = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--state",
        state_arg,
        second.to_str().unwrap(),
    ]));
    assert_eq!(
        rules(&two),
        vec![("aws".to_string(), "chain.exposed-restore".to_string())],
        "the chain links across batches and earlier findings are not repeated"
    );
    assert_eq!(two[0]["events"].as_array().unwrap().len(), 5);
    let again = snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "--state",
        state_arg,
        second.to_str().unwrap(),
    ]);
    assert!(findings(&again).is_empty(), "a rescan reports nothing new");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already reported in state 1"));
}

#[test]
fn rules_lists_every_rule_with_severity_and_techniques() {
    let out = snapwatch(&["rules"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for (rule, severity) in [
        ("snapshot.public", "critical"),
        ("snapshot.shared-external", "high"),
        ("snapshot.exported", "high"),
        ("snapshot.used-externally", "critical"),
        ("snapshot.restored-by-other", "medium"),
        ("chain.exposed-restore", "critical"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(rule))
            .unwrap_or_else(|| panic!("{rule} missing"));
        assert!(
            line.contains(severity) && line.contains("T1578.001"),
            "{line}"
        );
    }
}

#[test]
fn consumed_lists_what_the_cloud_triggers_must_deliver() {
    let out = snapwatch(&["consumed", "aws"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    for name in [
        "CreateSnapshot",
        "ModifySnapshotAttribute",
        "RunInstances",
        "AuthorizeSecurityGroupIngress",
        "SharedSnapshotCopyInitiated",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let gcp: Vec<String> = serde_json::from_slice(&snapwatch(&["consumed", "gcp"]).stdout).unwrap();
    assert!(
        gcp.contains(&"v1.compute.firewalls.insert".to_string())
            && gcp.contains(&"beta.compute.instances.insert".to_string())
    );
    let azure: Vec<String> =
        serde_json::from_slice(&snapwatch(&["consumed", "azure"]).stdout).unwrap();
    assert!(azure.contains(&"microsoft.compute/snapshots/write".to_string()));
}

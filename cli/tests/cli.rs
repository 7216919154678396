//! `snapwatch` as a user runs it: the real binary over files, directories, stdin and gzip,
//! with the exit codes and stderr reports the README's "`snapwatch` command" section promises.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

// ---- hostile and broken input (issue 16) ----

/// Runs snapwatch with a deadline: a hang is a failure, not a stuck test run.
fn snapwatch_within(args: &[&str], seconds: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snapwatch");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "snapwatch {args:?} still running after {seconds}s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `(records, rejected)` from the summary line.
fn summary_counts(out: &Output) -> (u64, u64) {
    let text = stderr(out);
    let line = text
        .lines()
        .find(|l| l.contains(" records in "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let records = line
        .trim_start_matches("snapwatch: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rejected = line
        .rsplit("rejected ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (records, rejected)
}

fn demo_records() -> Vec<serde_json::Value> {
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/demo/aws-cloudtrail.json")).unwrap(),
    )
    .unwrap();
    raw["Records"].as_array().unwrap().clone()
}

#[test]
fn exit_codes_follow_one_rule() {
    let dir = tempfile::tempdir().unwrap();
    // 1: a PATH that cannot be read, found up front (nothing printed) …
    let out = snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "tests/demo",
        "/nonexistent/x.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // … or mid-scan (the rest is scanned and printed).
    let walked = dir.path().join("walked");
    std::fs::create_dir(&walked).unwrap();
    std::fs::copy(
        repo().join("tests/demo/aws-cloudtrail.json"),
        walked.join("trail.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/nonexistent/gone.json", walked.join("gone.json")).unwrap();
    let out = snapwatch(&["scan", "--format", "jsonl", walked.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("gone.json"));
    assert!(!findings(&out).is_empty());
    // 0: invalid UTF-8 is one rejected record, in an array as in JSON lines.
    let array = dir.path().join("array.json");
    std::fs::write(
        &array,
        b"[{\"eventVersion\":\"1\",\"eventName\":\"\xff\"},\n{\"x\":1}]",
    )
    .unwrap();
    let lines = dir.path().join("lines.jsonl");
    std::fs::write(
        &lines,
        b"{\"x\":1}\n{\"eventVersion\":\"1\",\"eventName\":\"\xff\"}\n",
    )
    .unwrap();
    for path in [&array, &lines] {
        let out = snapwatch(&["scan", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
        assert_eq!(summary_counts(&out), (2, 2), "{}", stderr(&out));
    }
    // 2: the state file cannot be used.
    let out = snapwatch(&["scan", "--state", "/nonexistent/dir/state.db", "tests/demo"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_truncated_cloudtrail_file_keeps_its_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = demo_records();
    records.push(
        serde_json::json!({"eventVersion": "1.09", "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject", "requestParameters": {"key": "a-long-enough-object-key"}}),
    );
    let text = serde_json::to_string_pretty(&serde_json::json!({ "Records": records })).unwrap();
    let cut = text.rfind("a-long-enough").unwrap();
    let path = dir.path().join("cut.json");
    std::fs::write(&path, &text[..cut]).unwrap();
    let out = snapwatch(&["scan", "--format", "jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        rules(&findings(&out)).contains(&("aws".into(), "chain.exposed-restore".into())),
        "{}",
        stderr(&out)
    );
    let err = stderr(&out);
    let last_line = text[..cut].lines().count();
    let start_line = text[..cut]
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.trim() == "{")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("cut.json:{start_line}: invalid JSON"))
            && err.contains(&format!("line {last_line}"))
            && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(summary_counts(&out).1, 1);
}

#[test]
fn an_oversized_record_is_rejected_with_the_limit_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // `{"a":` and 96 MiB of spaces, gzip-compressed: the record never ends.
    let bomb = dir.path().join("bomb.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(b"{\"a\":").unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..96 {
        gz.write_all(&spaces).unwrap();
    }
    gz.finish().unwrap();
    let out = snapwatch_within(
        &[
            "scan",
            "--format",
            "jsonl",
            "--max-record-bytes",
            "4M",
            bomb.to_str().unwrap(),
            "tests/demo",
        ],
        120,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bomb.json.gz:1: record larger than the 4194304-byte limit"),
        "{err}"
    );
    assert_eq!(
        findings(&out).len(),
        9,
        "the other inputs are still scanned"
    );
}

#[test]
fn a_records_file_is_streamed_in_flat_memory() {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("skipped: /usr/bin/time is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    w.write_all(b"{\"Records\":[").unwrap();
    let record = format!(
        "{{\"eventVersion\":\"1.08\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",\"requestParameters\":{{\"key\":\"{}\"}}}}",
        "k".repeat(100)
    );
    for i in 0..400_000 {
        if i > 0 {
            w.write_all(b",").unwrap();
        }
        w.write_all(record.as_bytes()).unwrap();
    }
    w.write_all(b"]}").unwrap();
    w.flush().unwrap();
    drop(w);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_kb=%M", env!("CARGO_BIN_EXE_snapwatch"), "scan"])
        .arg(&path)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("400000 records"), "{err}");
    let peak_kb: u64 = err
        .rsplit("peak_kb=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The file is 68 MB; reading it whole costs more than that.
    assert!(peak_kb < 40 * 1024, "peak RSS {peak_kb} KiB: {err}");
}

#[test]
fn walks_survive_symlink_loops_fifos_and_hidden_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(
        repo().join("tests/demo/gcp-audit.jsonl"),
        root.join("gcp.jsonl"),
    )
    .unwrap();
    std::os::unix::fs::symlink(".", root.join("me")).unwrap();
    std::os::unix::fs::symlink(".", root.join("me-too")).unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(root.join(".notes"), "todo\nmore\n").unwrap();
    let fifo = root.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = snapwatch_within(&["scan", "--format", "jsonl", root.to_str().unwrap()], 60);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let gcp_records = std::fs::read_to_string(repo().join("tests/demo/gcp-audit.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(summary_counts(&out), (gcp_records, 0), "read once: {err}");
    assert_eq!(
        err.matches("already walked (symlink loop)").count(),
        2,
        "{err}"
    );
    assert!(err.contains("pipe: FIFO, not a regular file"), "{err}");
    assert!(err.contains("hidden 2"), "{err}");
    // With --include-hidden the hidden files are read, each a rejected record.
    let out = snapwatch_within(&["scan", "--include-hidden", root.to_str().unwrap()], 60);
    assert_eq!(
        summary_counts(&out),
        (gcp_records + 2, 2),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_fifo_named_as_path_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let raw = std::fs::read(repo().join("tests/demo/gcp-audit.jsonl")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap()
            .write_all(&raw)
            .unwrap();
    });
    let out = snapwatch_within(&["scan", "--format", "jsonl", fifo.to_str().unwrap()], 60);
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let from_file = findings(&snapwatch(&[
        "scan",
        "--format",
        "jsonl",
        "tests/demo/gcp-audit.jsonl",
    ]));
    assert_eq!(findings(&out), from_file);
}

#[test]
fn a_byte_order_mark_is_skipped_and_utf16_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(repo().join("tests/demo/aws-cloudtrail.json")).unwrap();
    let bom = dir.path().join("bom.json");
    std::fs::write(&bom, [&b"\xef\xbb\xbf"[..], &raw].concat()).unwrap();
    let out = snapwatch(&["scan", "--format", "jsonl", bom.to_str().unwrap()]);
    assert_eq!(summary_counts(&out).1, 0, "{}", stderr(&out));
    assert_eq!(
        findings(&out),
        findings(&snapwatch(&[
            "scan",
            "--format",
            "jsonl",
            "tests/demo/aws-cloudtrail.json"
        ]))
    );
    let utf16 = dir.path().join("utf16.json");
    let text = String::from_utf8(raw).unwrap();
    let bytes: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    std::fs::write(&utf16, bytes).unwrap();
    let out = snapwatch(&["scan", utf16.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("utf16.json:1: UTF-16 (little-endian) text"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rejected_lines_count_as_records_in_every_kind_of_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(dir.path().join("bad.jsonl"), "{\"x\":1}\nnope\n{\"y\":\n").unwrap();
    let out = snapwatch(&["scan", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // notes.txt: one reject (not JSON); bad.jsonl: three rejected lines.
    assert_eq!(summary_counts(&out), (4, 4), "{}", stderr(&out));
}

/// Without the `baseline` feature an `s3://` PATH is refused up front with the rebuild to make,
/// not read as a missing file.
#[cfg(not(feature = "baseline"))]
#[test]
fn an_s3_path_needs_the_baseline_feature() {
    let out = snapwatch(&[
        "scan",
        "--since",
        "2024-01-10",
        "s3://trail-bucket/AWSLogs/",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--features baseline"), "{stderr}");
}

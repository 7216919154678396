//! `snapwatch scan --format html`: one page, delivered only once written whole, and checked in a
//! real browser (headless Chromium) for the demo logs and for logs full of hostile values.
//!
//! The browser tests need Chromium (`apt-get install chromium`). Without it they print a loud
//! SKIPPED line and pass, unless `SNAPWATCH_REQUIRE_BROWSER=1` (CI) makes its absence a failure.
//! `SNAPWATCH_CHROMIUM=PATH` picks another browser binary.
//! Screenshots land in `target/report-browser/` for a person to look at.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod support;

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{repo, scan_to, stderr};

/// How many findings the same input gives as JSON lines: the count the page must show.
fn jsonl_findings(path: &str) -> usize {
    let out = scan_to(Stdio::piped(), &["--format", "jsonl", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn html_report(path: &str) -> String {
    let out = scan_to(Stdio::piped(), &["--format", "html", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).expect("the page is UTF-8")
}

/// Values an attacker can choose in a log record: principal names (an IAM user may be called
/// almost anything in a forged or third-party log) and resource ids.
const HOSTILE_ACTOR: &str = "arn:aws:iam::111122223333:user/<script>document.documentElement.dataset.pwned=1</script>\"'</style><img src=x onerror=\"document.documentElement.dataset.pwned=2\">\u{2028}\u{202E}evil";
const HOSTILE_SNAPSHOT: &str = "snap-0d1e2f3a4b5c6d7e8\"><svg onload=\"document.documentElement.dataset.pwned=3\"></svg></title></text><script>document.documentElement.dataset.pwned=4</script>\u{2066}x";
const HOSTILE_SOURCE_IP: &str =
    "198.51.100.23</td><script>document.documentElement.dataset.pwned=5</script>";

/// The demo's CloudTrail log with its contractor, one snapshot id and one source IP replaced by
/// hostile values everywhere they appear: the same chains, with attacker text in every field.
fn write_hostile_logs(dir: &Path) -> PathBuf {
    fn replace(value: &mut Value) {
        match value {
            Value::String(s) => {
                *s = s
                    .replace(
                        "arn:aws:iam::111122223333:user/contractor-tmp",
                        HOSTILE_ACTOR,
                    )
                    .replace("snap-0d1e2f3a4b5c6d7e8", HOSTILE_SNAPSHOT)
                    .replace("198.51.100.23", HOSTILE_SOURCE_IP)
            }
            Value::Array(items) => items.iter_mut().for_each(replace),
            Value::Object(map) => map.values_mut().for_each(replace),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo().join("tests/demo/aws-cloudtrail.json"))
        .expect("demo CloudTrail log");
    let mut log: Value = serde_json::from_str(&text).expect("demo log is JSON");
    replace(&mut log);
    let path = dir.join("hostile-cloudtrail.json");
    std::fs::write(&path, serde_json::to_vec(&log).expect("encode")).expect("write log");
    path
}

#[test]
fn hostile_log_values_reach_the_page_only_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_hostile_logs(dir.path());
    let page = html_report(logs.to_str().unwrap());
    assert!(
        page.contains("&lt;script&gt;document.documentElement.dataset.pwned=1&lt;/script&gt;"),
        "the actor is shown, escaped"
    );
    assert!(
        page.contains("\\u{2028}\\u{202e}evil"),
        "invisible characters are shown"
    );
    for raw in [
        "<script>document",
        "<img",
        "<svg onload",
        "</style><",
        "\u{2028}",
        "\u{202E}",
        "\u{2066}",
    ] {
        assert!(!page.contains(raw), "{raw:?} reached the page unescaped");
    }
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script"
    );
}

/// A page that cannot be written whole delivers nothing: with `--state` the rerun shows every
/// finding again.
fn failed_page_keeps_findings_for_the_rerun(broken_stdout: Stdio) {
    let expected = jsonl_findings("tests/demo");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.db");
    let state = state.to_str().unwrap();
    let args = ["--format", "html", "--state", state, "tests/demo"];
    let failed = scan_to(broken_stdout, &args);
    let err = stderr(&failed);
    assert_eq!(failed.status.code(), Some(3), "stderr: {err}");
    assert!(
        err.contains(&format!("printed 0, not delivered {expected}")),
        "{err}"
    );

    let rerun = scan_to(Stdio::piped(), &args);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let page = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        page.contains(&format!("data-findings=\"{expected}\"")),
        "{}",
        stderr(&rerun)
    );

    let third = scan_to(Stdio::piped(), &args);
    let page = String::from_utf8_lossy(&third.stdout);
    assert!(
        page.contains("data-findings=\"0\""),
        "delivered once: {}",
        stderr(&third)
    );
}

#[test]
fn a_full_disk_loses_no_finding_of_the_page() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full: skipped");
        return;
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    failed_page_keeps_findings_for_the_rerun(full.into());
}

#[test]
fn a_closed_pipe_loses_no_finding_of_the_page() {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn true");
    let writer = reader.stdin.take().expect("pipe to true");
    reader.wait().expect("true exits");
    failed_page_keeps_findings_for_the_rerun(writer.into());
}

// ---- the real browser ----

fn chromium() -> Option<PathBuf> {
    // SNAPWATCH_CHROMIUM names the one browser to use (a missing path shows the skip).
    let candidates = match std::env::var_os("SNAPWATCH_CHROMIUM") {
        Some(path) => vec![PathBuf::from(path)],
        None => vec![
            PathBuf::from("/usr/bin/chromium"),
            PathBuf::from("/usr/bin/chromium-browser"),
        ],
    };
    let found = candidates.into_iter().find(|p| p.exists());
    if found.is_none() {
        let message = "SKIPPED: no Chromium (/usr/bin/chromium; `apt-get install chromium`): \
                       the HTML report was NOT checked in a browser";
        assert!(
            std::env::var("SNAPWATCH_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{message}, and SNAPWATCH_REQUIRE_BROWSER=1 requires it"
        );
        eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
    }
    found
}

/// Runs headless Chromium on `page` with `extra` arguments; returns (stdout, stderr).
fn run_chromium(browser: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    run_chromium_at(browser, page, "", extra)
}

/// As [`run_chromium`], with `fragment` (`#…`) appended to the page's address.
fn run_chromium_at(
    browser: &Path,
    page: &Path,
    fragment: &str,
    extra: &[&str],
) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}{fragment}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Drain both pipes while waiting, so a large DOM dump cannot block the browser.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        out_reader.join().expect("stdout reader"),
        err_reader.join().expect("stderr reader"),
    )
}

/// Console messages and script errors Chromium logged for the page.
fn page_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
        })
        .collect()
}

fn screenshot_dir() -> PathBuf {
    let dir = repo().join("target/report-browser");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Loads the page in Chromium: the script ran to its end (the marker it sets is in the DOM),
/// no console error or CSP refusal, one section and one chain picture per finding, and a
/// screenshot that is a real, non-trivial PNG.
fn check_in_browser(
    name: &str,
    page: &str,
    expected_findings: usize,
    min_png_bytes: usize,
) -> Option<String> {
    let browser = chromium()?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.html"));
    std::fs::write(&file, page).expect("write page");

    let (dom, log) = run_chromium(&browser, &file, &["--dump-dom"]);
    assert!(
        dom.contains("data-report-ready=\"1\""),
        "the page script did not run to its end; browser log:\n{log}"
    );
    let errors = page_errors(&log);
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    assert!(dom.contains(&format!("data-findings=\"{expected_findings}\"")));
    assert_eq!(
        dom.matches("<section class=\"finding").count(),
        expected_findings
    );
    assert_eq!(
        dom.matches("<svg class=\"chain\"").count(),
        expected_findings
    );
    assert_eq!(
        dom.matches("<svg class=\"timeline\"").count(),
        expected_findings
    );
    assert_eq!(
        dom.matches("<tr class=\"sev-").count(),
        expected_findings,
        "one summary row per finding"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "no script but the page's own"
    );
    assert!(!dom.contains("<img"), "no image element");

    let shot = screenshot_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let screenshot_arg = format!("--screenshot={}", shot.display());
    let (_, log) = run_chromium(
        &browser,
        &file,
        &[screenshot_arg.as_str(), "--window-size=1240,1800"],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {log}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is a PNG");
    // A blank 1240x1800 page compresses to a few kB; a rendered report is far larger.
    assert!(
        png.len() > min_png_bytes,
        "screenshot looks blank: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    Some(dom)
}

/// The `data-KEY` values of the summary rows, top to bottom, as the browser left them.
fn row_values(dom: &str, key: &str) -> Vec<i64> {
    let needle = format!(" data-{key}=\"");
    dom.split("<tr class=\"sev-")
        .skip(1)
        .map(|row| {
            let start = row.find(&needle).expect("row carries the key") + needle.len();
            let end = start + row[start..].find('"').expect("closing quote");
            row[start..end].parse().expect("numeric sort key")
        })
        .collect()
}

#[test]
fn the_summary_sorts_in_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.html");
    std::fs::write(&file, html_report("tests/demo")).unwrap();
    for key in ["severity", "first", "last", "events"] {
        let (dom, log) = run_chromium_at(&browser, &file, &format!("#sort={key}"), &["--dump-dom"]);
        assert!(dom.contains("data-report-ready=\"1\""), "{log}");
        let values = row_values(&dom, key);
        assert_eq!(values.len(), jsonl_findings("tests/demo"));
        let mut sorted = values.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(values, sorted, "rows sorted by {key}, descending");
        if key == "severity" {
            let unsorted = row_values(&html_report("tests/demo"), key);
            assert_ne!(unsorted, sorted, "the demo's own order is not by severity");
        }
    }
}

#[test]
fn the_demo_report_renders_in_chromium() {
    let expected = jsonl_findings("tests/demo");
    assert!(expected >= 3, "the demo has a chain per cloud");
    check_in_browser("demo", &html_report("tests/demo"), expected, 50_000);
}

#[test]
fn a_hostile_report_renders_in_chromium_with_nothing_injected() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_hostile_logs(dir.path());
    let logs = logs.to_str().unwrap();
    let expected = jsonl_findings(logs);
    assert!(expected >= 3, "the hostile log keeps the demo's chains");
    let Some(dom) = check_in_browser("hostile", &html_report(logs), expected, 50_000) else {
        return;
    };
    assert!(
        !dom.contains("data-pwned"),
        "an injected handler changed the DOM"
    );
    assert!(dom.contains("&lt;script&gt;document.documentElement.dataset.pwned=1&lt;/script&gt;"));
}

/// The demo's AWS chains copied `copies` times with distinct resource and event ids: as many
/// independent chains, so several findings each.
fn write_many_chains(dir: &Path, copies: usize) -> PathBuf {
    fn rename(value: &mut Value, copy: usize) {
        match value {
            Value::String(s) => {
                for id in [
                    "snap-0d1e2f3a4b5c6d7e8",
                    "i-0fedcba9876543210",
                    "vol-0a1b2c3d4e5f60718",
                    "sg-0f1e2d3c4b5a69788",
                ] {
                    if s.contains(id) {
                        *s = s.replace(id, &format!("{id}{copy:04}"));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| rename(v, copy)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match (key.as_str(), v) {
                        ("eventID" | "requestID", Value::String(id)) => {
                            id.push_str(&format!("-{copy}"))
                        }
                        (_, v) => rename(v, copy),
                    }
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo().join("tests/demo/aws-cloudtrail.json"))
        .expect("demo CloudTrail log");
    let log: Value = serde_json::from_str(&text).expect("demo log is JSON");
    let records = log["Records"].as_array().expect("Records");
    let mut all = Vec::new();
    for copy in 0..copies {
        for record in records {
            let mut record = record.clone();
            rename(&mut record, copy);
            all.push(record);
        }
    }
    let path = dir.join("many-chains.json");
    let body = serde_json::json!({ "Records": all });
    std::fs::write(&path, serde_json::to_vec(&body).expect("encode")).expect("write log");
    path
}

#[test]
fn a_report_of_hundreds_of_findings_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_many_chains(dir.path(), 100);
    let logs = logs.to_str().unwrap();
    let expected = jsonl_findings(logs);
    assert!(
        expected >= 300,
        "100 copies of the demo's AWS chains: {expected}"
    );
    let page = html_report(logs);
    eprintln!("{expected} findings: page of {} bytes", page.len());
    check_in_browser("hundreds", &page, expected, 50_000);
}

#[test]
fn an_empty_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "{\"Records\": []}").unwrap();
    let page = html_report(empty.to_str().unwrap());
    if let Some(dom) = check_in_browser("empty", &page, 0, 8_000) {
        assert!(dom.contains("id=\"no-findings\""));
    }
}

//! Golden scenarios: every folder under `tests/scenarios/` holds exported logs in `input/`, an
//! optional `snapwatch.toml`, and `expected.jsonl`, the exact findings `snapwatch scan --format
//! jsonl` must print. Attack chains and benign automation, per cloud. Regenerate after an
//! intended change with `UPDATE_GOLDEN=1 cargo test -p snapwatch-cli --test golden` and review
//! the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/scenarios exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn scan(dir: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwatch"));
    cmd.arg("scan").arg("--format").arg("jsonl");
    let config = dir.join("snapwatch.toml");
    if config.exists() {
        cmd.arg("--config").arg(&config);
    }
    let out = cmd.arg(dir.join("input")).output().expect("run snapwatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", dir.display());
    assert!(
        stderr.contains("rejected 0"),
        "{}: scenario inputs must all parse: {stderr}",
        dir.display()
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn every_scenario_yields_exactly_its_golden_findings() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let all = scenarios();
    assert!(
        all.len() >= 6,
        "expected attack and benign scenarios for each cloud"
    );
    let mut failures = Vec::new();
    for dir in all {
        let actual = scan(&dir);
        let golden = dir.join("expected.jsonl");
        if update {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display())
        });
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n+++ actual\n{actual}",
                dir.display()
            ));
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("benign") {
            assert!(
                actual.is_empty(),
                "{name}: benign activity must raise nothing:\n{actual}"
            );
        } else {
            assert!(
                !actual.is_empty(),
                "{name}: an attack scenario must raise findings"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

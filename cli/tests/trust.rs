//! `trust.principals` as an attacker meets it: the caller chooses an assumed role's session name,
//! so an e-mail pattern must not trust a session that merely ends in a trusted address.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo's CloudTrail, made by alice, except the restore (`CreateVolume`), which `session`
/// performs: a restore by someone other than the snapshot's creator.
fn demo_restored_by(session: &str, dir: &Path) -> PathBuf {
    let raw = std::fs::read(repo().join("tests/demo/aws-cloudtrail.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    for record in doc["Records"].as_array_mut().unwrap() {
        if record["userIdentity"]["type"] == "AWSAccount" {
            continue;
        }
        let arn = if record["eventName"] == "CreateVolume" {
            session
        } else {
            "arn:aws:iam::111122223333:user/alice"
        };
        record["userIdentity"] = serde_json::json!({
            "type": if arn.contains(":assumed-role/") { "AssumedRole" } else { "IAMUser" },
            "arn": arn,
            "accountId": "111122223333",
        });
        record["sourceIPAddress"] = "203.0.113.5".into();
    }
    let file = dir.join("cloudtrail.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    file
}

fn rules_with(principals: &[&str], input: &Path, dir: &Path) -> Vec<String> {
    let config = dir.join("snapwatch.toml");
    let quoted: Vec<String> = principals.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &config,
        format!("[trust]\nprincipals = [{}]\n", quoted.join(", ")),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
        .args(["scan", "--format", "jsonl", "--config"])
        .arg(&config)
        .arg(input)
        .output()
        .expect("run snapwatch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rules: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"].to_string())
        .collect();
    rules.sort();
    rules
}

#[test]
fn an_email_pattern_does_not_trust_a_session_named_like_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let session = "arn:aws:sts::111122223333:assumed-role/attacker-role/mallory@example.com";
    let input = demo_restored_by(session, dir.path());
    let untrusted = rules_with(&[], &input, dir.path());
    assert!(
        untrusted
            .iter()
            .any(|r| r.contains("snapshot.restored-by-other")),
        "the fixture yields the restore finding: {untrusted:?}"
    );
    assert_eq!(
        rules_with(&["*@example.com"], &input, dir.path()),
        untrusted,
        "the session name is the caller's choice, not an identity"
    );
    // Trusting the role itself is how such sessions are exempted.
    let by_role = rules_with(&["arn:aws:iam::*:role/attacker-role"], &input, dir.path());
    assert!(
        !by_role
            .iter()
            .any(|r| r.contains("snapshot.restored-by-other")),
        "{by_role:?}"
    );
}

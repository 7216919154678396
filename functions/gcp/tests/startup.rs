//! The built Cloud Run service started as Cloud Run starts it, with no Slack secret: on the
//! first `terraform apply` no secret version exists, so the service runs without
//! `SNAPWATCH_SLACK_WEBHOOK_URL` (or with it empty) and must still serve and keep chain state.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use serde_json::{json, Value};
use snapwatch_core::parse::gcp::AUDIT_LOG_WRITTEN;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn(settings: &[(&str, String)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snapwatch-gcp"));
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in settings {
        command.env(name, value);
    }
    command.spawn().expect("start the service binary")
}

fn stop(mut child: Child) -> (String, String) {
    use std::io::Read;
    let _ = child.kill();
    let _ = child.wait();
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (out, err)
}

async fn wait_until_healthy(child: &mut Child, port: u16) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            assert_eq!(response.status().as_u16(), 200);
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited ({status}) instead of serving");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service did not answer /healthz within 60 s");
}

/// One audit-log entry in Eventarc's binary mode.
async fn post_entry(port: u16, entry: &str, ce_type: &str) -> (u16, Value) {
    let parsed: Value = serde_json::from_str(entry).expect("fixture JSON");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .header("content-type", "application/json; charset=utf-8")
        .header("ce-specversion", "1.0")
        .header(
            "ce-id",
            format!(
                "startup-{}",
                parsed["insertId"].as_str().unwrap_or("no-insert-id")
            ),
        )
        .header(
            "ce-source",
            "//cloudaudit.googleapis.com/projects/acme-prod/logs/activity",
        )
        .header("ce-type", ce_type)
        .body(entry.to_owned())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn serves_and_keeps_chain_state_with_no_slack_secret() {
    // The emulator when the wrapper started one; otherwise a closed port, which is enough to
    // show the service starts and answers (nothing here touches Firestore before an event).
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty());
    for slack in [None, Some("")] {
        let port = free_port();
        let mut settings = vec![
            ("PORT", port.to_string()),
            (
                "SNAPWATCH_FIRESTORE_PROJECT",
                format!("snapwatch-startup-{}", common::unique_suffix()),
            ),
            (
                "FIRESTORE_EMULATOR_HOST",
                emulator.clone().unwrap_or_else(|| "127.0.0.1:9".to_owned()),
            ),
            // The fixtures are from 2024 and the process runs on the wall clock.
            ("SNAPWATCH_WINDOW_DAYS", "3650".to_owned()),
        ];
        if let Some(value) = slack {
            settings.push(("SNAPWATCH_SLACK_WEBHOOK_URL", value.to_owned()));
        }
        let mut child = spawn(&settings);
        wait_until_healthy(&mut child, port).await;
        let snapshot = common::fixture("snapshots_insert_v1.json");
        let (status, body) =
            post_entry(port, &snapshot, "google.cloud.storage.object.v1.finalized").await;
        assert_eq!(
            (status, &body),
            (200, &json!({"outcome": "skipped", "reason": "irrelevant"}))
        );
        let mut outcomes = Vec::new();
        if emulator.is_some() {
            for name in [
                "firewalls_insert_no_source_ranges.json",
                "instances_insert_beta_restore.json",
                "snapshots_insert_v1.json",
            ] {
                let (status, body) =
                    post_entry(port, &common::fixture(name), AUDIT_LOG_WRITTEN).await;
                outcomes.push((status, body));
            }
        }
        let (out, err) = stop(child);
        assert!(
            out.contains("SNAPWATCH_SLACK_WEBHOOK_URL is not set"),
            "slack {slack:?}: stdout: {out}\nstderr: {err}"
        );
        match &emulator {
            Some(_) => {
                for (status, body) in &outcomes {
                    assert_eq!(*status, 200, "{body}\nstdout: {out}");
                }
                assert_eq!(
                    outcomes[2].1,
                    // The chain and the restore by another principal; nothing sent, all logged.
                    json!({"outcome": "processed", "findings": 2, "sent": 0}),
                    "stdout: {out}"
                );
                assert!(out.contains("chain.exposed-restore"), "stdout: {out}");
                assert!(out.contains("snapshot.restored-by-other"), "stdout: {out}");
            }
            None => eprintln!(
                "SKIPPED (part): serves_and_keeps_chain_state_with_no_slack_secret: no Firestore emulator, so only start and a skipped event were checked"
            ),
        }
    }
}

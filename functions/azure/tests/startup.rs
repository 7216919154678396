//! The built custom handler started as the Functions host starts it: a process with app
//! settings in its environment, answering invocations on `FUNCTIONS_CUSTOMHANDLER_PORT`. The
//! state table is Azurite's (run under tests/servers/with-servers.sh).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod azurite;

use serde_json::{json, Value};
use snapwatch_azure::table::client::AZURITE_KEY;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BATCH_A: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_a.json");
const BATCH_B: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_b.json");

const KEY_VAULT_REFERENCE: &str =
    "@Microsoft.KeyVault(SecretUri=https://snapwatch-kv01.vault.azure.net/secrets/slack-webhook-url/)";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The handler with only `settings` in its environment (no inherited identity variables).
fn spawn(settings: &[(&str, String)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snapwatch-azure"));
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in settings {
        command.env(name, value);
    }
    command.spawn().expect("start the handler binary")
}

/// Local settings: Azurite with its published key, a table of the test's own, the given port.
fn local_settings(test: &str, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string()),
        ("SNAPWATCH_TABLE_ENDPOINT", azurite::endpoint().to_string()),
        ("SNAPWATCH_TABLE_KEY", AZURITE_KEY.to_owned()),
        (
            "SNAPWATCH_TABLE_NAME",
            format!("sw{test}{}", std::process::id()),
        ),
        // The fixtures are from April 2024 and the process runs on the wall clock: a window
        // that still holds them.
        ("SNAPWATCH_WINDOW_DAYS", "3650".to_owned()),
    ]
}

/// Waits until the handler listens; fails with its output if it exits first.
fn wait_until_listening(child: &mut Child, port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = collect(child);
            panic!(
                "the handler exited ({status}) instead of listening:\nstdout: {}\nstderr: {}",
                output.0, output.1
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the handler did not listen on {port} within 60 s");
}

fn collect(child: &mut Child) -> (String, String) {
    use std::io::Read;
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (out, err)
}

fn stop(mut child: Child) -> (String, String) {
    let _ = child.kill();
    let _ = child.wait();
    collect(&mut child)
}

/// Runs the handler until it exits on its own (a start failure); its output.
fn run_to_exit(settings: &[(&str, String)]) -> Output {
    let child = spawn(settings);
    let started = Instant::now();
    let mut child = child;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(30) {
            let (out, err) = stop(child);
            panic!(
                "the handler kept running; expected a start failure\nstdout: {out}\nstderr: {err}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Event Hubs invocation in the host's form: the message array serialized to a string.
async fn post_batch(port: u16, messages: &[&str]) -> (u16, Value) {
    let body = json!({
        "Data": { "messages": serde_json::to_string(messages).expect("array") },
        "Metadata": { "sys": { "MethodName": "ActivityLog", "RandGuid": "startup-test" } },
    });
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/ActivityLog"))
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the handler answers");
    let status = response.status().as_u16();
    let answer = response.json().await.expect("JSON answer");
    (status, answer)
}

#[tokio::test]
async fn runs_locally_with_a_table_key_and_no_managed_identity_or_slack() {
    let port = free_port();
    let mut child = spawn(&local_settings("nomsi", port));
    wait_until_listening(&mut child, port);
    let (status, answer) = post_batch(port, &[BATCH_B, BATCH_A]).await;
    let (out, err) = stop(child);
    assert_eq!(status, 200, "{answer}\nstdout: {out}\nstderr: {err}");
    // The chain completes; with no Slack configured the finding is logged, not sent.
    assert_eq!(
        answer["Logs"][0], "records=7 events=5 skipped=2 findings=1 sent=0 rejected=0",
        "{answer}\nstdout: {out}"
    );
    assert!(out.contains("Slack is not configured"), "stdout: {out}");
    assert!(out.contains("chain.exposed-restore"), "stdout: {out}");
}

#[tokio::test]
async fn an_unresolved_key_vault_reference_disables_slack_loudly_and_keeps_the_chain_working() {
    let port = free_port();
    let mut settings = local_settings("kvref", port);
    settings.push((
        "SNAPWATCH_SLACK_WEBHOOK_URL",
        KEY_VAULT_REFERENCE.to_owned(),
    ));
    let mut child = spawn(&settings);
    wait_until_listening(&mut child, port);
    let (status, answer) = post_batch(port, &[BATCH_B, BATCH_A]).await;
    let (out, err) = stop(child);
    assert_eq!(status, 200, "{answer}\nstdout: {out}\nstderr: {err}");
    let start_error = out
        .lines()
        .find(|l| l.contains("unresolved Key Vault reference"))
        .unwrap_or_else(|| panic!("no start error about the reference in stdout: {out}"));
    let line: Value = serde_json::from_str(start_error).expect("a JSON log line");
    assert_eq!(line["level"], "ERROR", "{line}");
    let text = line.to_string();
    assert!(text.contains("SNAPWATCH_SLACK_WEBHOOK_URL"), "{text}");
    assert!(text.contains("restart"), "{text}");
    assert!(text.contains("Key Vault Secrets User"), "{text}");
    // The chain still completes; the alert that could not go out is kept for replay.
    assert_eq!(
        answer["Logs"][0], "records=7 events=5 skipped=2 findings=1 sent=0 rejected=1",
        "{answer}"
    );
    let rejects: Vec<Value> = answer["Outputs"]["rejects"]
        .as_str()
        .expect("a rejects output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rejects[0]["kind"], "undelivered", "{rejects:?}");
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unresolved Key Vault reference"),
        "{rejects:?}"
    );
}

#[test]
fn without_a_table_key_the_managed_identity_is_required_and_named() {
    let port = free_port();
    let mut settings = local_settings("needmsi", port);
    settings.retain(|(name, _)| *name != "SNAPWATCH_TABLE_KEY");
    let output = run_to_exit(&settings);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("IDENTITY_ENDPOINT"), "{stderr}");
    assert!(stderr.contains("SNAPWATCH_TABLE_KEY"), "{stderr}");
}

#[test]
fn an_unresolved_key_vault_reference_in_a_required_setting_stops_the_start_and_says_so() {
    let port = free_port();
    let mut settings = local_settings("kvkey", port);
    settings.retain(|(name, _)| *name != "SNAPWATCH_TABLE_KEY");
    settings.push(("SNAPWATCH_TABLE_KEY", KEY_VAULT_REFERENCE.to_owned()));
    let output = run_to_exit(&settings);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SNAPWATCH_TABLE_KEY"), "{stderr}");
    assert!(
        stderr.contains("unresolved Key Vault reference"),
        "{stderr}"
    );
    assert!(stderr.contains("restart"), "{stderr}");
    // The log (where Application Insights looks) says it too.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("unresolved Key Vault reference"),
        "{stdout}"
    );
}

//! `snapwatch baseline --project` as a gcloud user runs it, against the Compute Engine stub of
//! shared/gcp-inventory and a local OAuth token endpoint: Application Default Credentials from
//! `GOOGLE_APPLICATION_CREDENTIALS`, findings on stdout, the baseline kept in the `--state` file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]
#![cfg(feature = "baseline")]

#[path = "../../shared/gcp-inventory/tests/stub/mod.rs"]
mod stub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stub::{ComputeStub, PROJECT};

const HANDOFF: &str = "projects/snap-prod/global/snapshots/handoff";

/// A token endpoint that answers every refresh-token exchange with one access token.
async fn token_endpoint() -> String {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({ "access_token": "ya29.cli", "expires_in": 3599, "token_type": "Bearer" }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn credentials(dir: &Path, token_uri: &str) -> PathBuf {
    let path = dir.join("adc.json");
    let body = serde_json::json!({
        "type": "authorized_user",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "d-secret",
        "refresh_token": "1//refresh",
        "token_uri": token_uri
    });
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

async fn baseline(args: Vec<String>, credentials: PathBuf, home: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_snapwatch"))
            .arg("baseline")
            .args(args)
            .env("GOOGLE_APPLICATION_CREDENTIALS", credentials)
            .env("HOME", home)
            .env_remove("CLOUDSDK_CONFIG")
            .output()
            .expect("run snapwatch baseline")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_project_baseline_prints_a_share_once_and_keeps_the_baseline_in_the_state_file() {
    let stub = ComputeStub::start().await;
    stub.set_policy(HANDOFF, "policy-external.json");
    let dir = tempfile::tempdir().unwrap();
    let adc = credentials(dir.path(), &token_endpoint().await);
    let state = dir.path().join("state.db");
    let args = vec![
        "--project".to_string(),
        PROJECT.to_string(),
        "--endpoint-url".to_string(),
        stub.endpoint.clone(),
        "--format".to_string(),
        "jsonl".to_string(),
        "--state".to_string(),
        state.to_string_lossy().to_string(),
    ];
    let first = baseline(args.clone(), adc.clone(), dir.path().to_path_buf()).await;
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let stdout = String::from_utf8(first.stdout).unwrap();
    let findings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 1, "{stdout}");
    assert_eq!(findings[0]["rule"], "snapshot.shared-external");
    assert_eq!(findings[0]["snapshot"], HANDOFF);
    assert_eq!(findings[0]["found_by"], "baseline");
    assert!(
        stderr.contains("first baseline of this project"),
        "{stderr}"
    );
    assert!(
        stderr.contains("12 request(s) to Compute Engine"),
        "{stderr}"
    );
    assert!(stub
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer ya29.cli")));

    let rerun = baseline(args, adc, dir.path().to_path_buf()).await;
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(
        rerun.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&rerun.stdout)
    );
    assert!(!String::from_utf8_lossy(&rerun.stderr).contains("first baseline"));
}

#[tokio::test]
async fn a_project_and_a_region_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = baseline(
        ["--project", PROJECT, "--region", "eu-west-1"]
            .map(String::from)
            .to_vec(),
        dir.path().join("absent.json"),
        dir.path().to_path_buf(),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_unreadable_credentials_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = baseline(
        ["--project", PROJECT].map(String::from).to_vec(),
        dir.path().join("absent.json"),
        dir.path().to_path_buf(),
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("absent.json"), "{stderr}");
}

//! `snapwatch baseline --subscription` as a user runs it, against the Resource Manager stub
//! (functions/azure/tests/arm_stub, pages in tests/fixtures/azure-baseline): a service principal
//! from the environment or the `az` login, findings on stdout, the baseline in `--state`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]
#![cfg(feature = "baseline")]

#[path = "../../functions/azure/tests/arm_stub/mod.rs"]
mod arm_stub;

use arm_stub::{ArmStub, CLIENT_SECRET, SUBSCRIPTION, TOKEN};
use std::path::Path;
use std::process::{Command, Output};

/// Runs the CLI with a clean Azure environment plus `env`, `PATH` set to `path`.
async fn snapwatch(stub: &ArmStub, state: &Path, path: &str, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snapwatch"));
    command
        .args([
            "baseline",
            "--subscription",
            SUBSCRIPTION,
            "--format",
            "jsonl",
        ])
        .arg("--endpoint-url")
        .arg(stub.url().as_str())
        .arg("--state")
        .arg(state)
        .env("PATH", path);
    for name in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_AUTHORITY_HOST",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn service_principal(stub: &ArmStub, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "AZURE_TENANT_ID",
            "b7e4a2c9-1d3f-4a5b-8c6d-9e0f1a2b3c4d".into(),
        ),
        (
            "AZURE_CLIENT_ID",
            "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a".into(),
        ),
        ("AZURE_CLIENT_SECRET", secret.into()),
        ("AZURE_AUTHORITY_HOST", stub.url().as_str().into()),
    ]
}

fn rules(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let finding: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(finding["found_by"], "baseline");
            format!(
                "{} {}",
                finding["rule"].as_str().unwrap(),
                finding["snapshot"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_principal_lists_prints_once_and_keeps_the_baseline() {
    let stub = ArmStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let env = service_principal(&stub, CLIENT_SECRET);
    let first = snapwatch(&stub, &state, "/nonexistent", &env).await;
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let mut found = rules(&first.stdout);
    found.sort();
    assert_eq!(
        found,
        vec![
            "snapshot.exported /subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/prod-data-rg/providers/microsoft.compute/disks/finance-data-01",
            "snapshot.exported /subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/prod-data-rg/providers/microsoft.compute/snapshots/sqlvm01-osdisk-snap",
            "snapshot.public /subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/images-rg/providers/microsoft.compute/galleries/public_golden",
            "snapshot.shared-external /subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/images-rg/providers/microsoft.compute/galleries/partner_builds",
        ]
    );
    assert!(
        stderr.contains("first baseline of this subscription"),
        "{stderr}"
    );
    assert!(
        stderr.contains("element was not read"),
        "the id-less element is reported: {stderr}"
    );
    assert_eq!(stub.token_requests(), 1, "one token, cached for the run");
    assert_eq!(
        stub.requests(),
        5,
        "4 pages and the `Groups` gallery's own GET"
    );

    let rerun = snapwatch(&stub, &state, "/nonexistent", &env).await;
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(
        rerun.stdout.is_empty(),
        "already reported: {}",
        String::from_utf8_lossy(&rerun.stdout)
    );
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(!stderr.contains("first baseline"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_service_principal_the_az_login_token_is_used() {
    let stub = ArmStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let expires = chrono::Utc::now().timestamp() + 3600;
    let az = bin.join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\n[ \"$*\" = \"account get-access-token --resource https://management.azure.com/ -o json\" ] || exit 9\n\
             printf '{{\"accessToken\": \"{TOKEN}\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", \"expires_on\": {expires}, \"subscription\": \"{SUBSCRIPTION}\", \"tenant\": \"t\", \"tokenType\": \"Bearer\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = snapwatch(
        &stub,
        &dir.path().join("state.db"),
        bin.to_str().unwrap(),
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rules(&out.stdout).len(), 4);
    assert_eq!(stub.token_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_refused_credentials_are_a_clear_error() {
    let stub = ArmStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let none = snapwatch(&stub, &state, "/nonexistent", &[]).await;
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("az login") && stderr.contains("AZURE_CLIENT_SECRET"),
        "{stderr}"
    );
    // Each cause once: error messages leave their cause to the chain that prints it.
    assert_eq!(
        stderr.matches("no Azure credentials").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("no token for Resource Manager").count(),
        1,
        "{stderr}"
    );

    let refused = snapwatch(
        &stub,
        &state,
        "/nonexistent",
        &service_principal(&stub, "wrong"),
    )
    .await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the secret is never printed: {stderr}"
    );
    assert_eq!(stub.requests(), 0);

    let partial = snapwatch(
        &stub,
        &state,
        "/nonexistent",
        &[("AZURE_CLIENT_ID", "x".into())],
    )
    .await;
    assert_eq!(partial.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("must be set together"));
}

/// Every baseline form refuses `--format html` up front, before any credential or request: the
/// Azure form used to go on and print its findings as an HTML page's fragments.
#[test]
fn every_baseline_form_refuses_an_html_report() {
    for form in [
        ["--region", "eu-west-1"],
        ["--subscription", SUBSCRIPTION],
        ["--project", "example-project"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_snapwatch"))
            .args(["baseline", "--format", "html"])
            .args(form)
            .env_remove("AZURE_CLIENT_SECRET")
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{form:?}: {stderr}");
        assert!(
            stderr.contains("--format html is for `snapwatch scan`"),
            "{form:?}: {stderr}"
        );
    }
}

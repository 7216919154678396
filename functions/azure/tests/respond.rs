//! The Azure response against a Resource Manager stub serving the documented shapes: the SAS of
//! an exported snapshot is ended (and only while one is active), the NSG rule a chain opened is
//! deleted only while it still opens what was recorded, exempt resources and dry runs change
//! nothing, 429 is waited out, and the token never follows a monitor URL off the ARM host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod respond_stub;

use respond_stub::{nsg_id, snapshot_id, ArmStub, IDENTITY_HEADER};
use serde_json::{json, Value};
use snapwatch_azure::identity::ManagedIdentity;
use snapwatch_azure::respond::{ArmResponder, Polling};
use snapwatch_core::model::{ActionResult, ResponseMode};
use snapwatch_core::model::{PortRange, Protocol};
use snapwatch_core::response::Opening;
use snapwatch_http::{Backoff, Class, RetryPolicy};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXEMPT: &str = "snapwatch-exempt";

fn responder(stub: &ArmStub) -> ArmResponder {
    let http = reqwest::Client::new();
    let identity = Arc::new(ManagedIdentity::new(
        http.clone(),
        stub.identity_endpoint(),
        IDENTITY_HEADER,
    ));
    ArmResponder::new(http, stub.url(), Some(identity))
        .with_retry_policy(RetryPolicy {
            max_attempts: 4,
            backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50)),
            max_retry_after: Duration::from_secs(5),
        })
        .with_polling(Polling {
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(50),
            max_polls: 5,
        })
}

fn ssh_rule(name: &str, source: &str) -> Value {
    json!({"name": name, "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
        "sourceAddressPrefix": source, "destinationAddressPrefix": "*",
        "access": "Allow", "priority": 100, "direction": "Inbound", "provisioningState": "Succeeded"}})
}

fn https_rule(name: &str) -> Value {
    json!({"name": name, "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
        "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
        "access": "Allow", "priority": 200, "direction": "Inbound", "provisioningState": "Succeeded"}})
}

/// What the chain recorded when `Allow-SSH` was written: TCP 22 from the internet.
fn ssh_opened() -> Vec<Opening> {
    vec![Opening {
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(22)],
        sources: vec!["Internet".into()],
        target_tags: vec![],
    }]
}

fn disk_state(stub: &ArmStub, name: &str) -> String {
    stub.get(&snapshot_id(name)).unwrap()["properties"]["diskState"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_active_sas_is_ended_and_the_operation_waited_for() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("exported", "ActiveSAS", json!({"env": "prod"}));
    let step = responder(&stub)
        .end_snapshot_access(&snapshot_id("exported"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(
        step.call.starts_with("POST ") && step.call.ends_with("/endGetAccess"),
        "{step:?}"
    );
    // The state changes only when the operation ends: the responder polled it to the end.
    assert_eq!(disk_state(&stub, "exported"), "Unattached");
    let requests = stub.requests();
    assert!(
        requests.iter().any(|r| r.contains("/operations/")),
        "{requests:?}"
    );
    assert_eq!(stub.writes().len(), 1, "{requests:?}");
}

#[tokio::test]
async fn a_snapshot_without_an_active_sas_is_left_alone() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("closed", "Unattached", json!({}));
    let step = responder(&stub)
        .end_snapshot_access(&snapshot_id("closed"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::SkippedGone, "{step:?}");
    assert!(step.reason.contains("Unattached"), "{step:?}");
    let gone = responder(&stub)
        .end_snapshot_access(&snapshot_id("deleted"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(gone.verdict, ActionResult::SkippedGone, "{gone:?}");
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
}

#[tokio::test]
async fn an_exempt_snapshot_and_a_dry_run_change_nothing() {
    let stub = ArmStub::start().await;
    stub.put_snapshot(
        "kept",
        "ActiveSAS",
        json!({"Snapwatch-Exempt": "forensics"}),
    );
    stub.put_snapshot("watched", "ActiveSAS", json!({}));
    let responder = responder(&stub);
    let exempt = responder
        .end_snapshot_access(&snapshot_id("kept"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(exempt.verdict, ActionResult::SkippedExempt, "{exempt:?}");
    let dry = responder
        .end_snapshot_access(&snapshot_id("watched"), EXEMPT, ResponseMode::DryRun)
        .await
        .unwrap();
    assert_eq!(dry.verdict, ActionResult::WouldDo, "{dry:?}");
    assert!(
        dry.call.contains("/snapshots/watched/endGetAccess"),
        "{dry:?}"
    );
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    assert_eq!(disk_state(&stub, "kept"), "ActiveSAS");
    assert_eq!(disk_state(&stub, "watched"), "ActiveSAS");
}

#[tokio::test]
async fn throttling_is_waited_out_as_retry_after_asks() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("exported", "ActiveSAS", json!({}));
    // The re-read is throttled once without a pause…
    stub.throttle_next(&[0]);
    let responder = responder(&stub);
    let started = Instant::now();
    let snapshot = snapshot_id("exported");
    let step = responder
        .end_snapshot_access(&snapshot, EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert_eq!(disk_state(&stub, "exported"), "Unattached");

    stub.put_snapshot("again", "ActiveSAS", json!({}));
    // …and here twice, asking for a second each time.
    stub.throttle_next(&[1, 1]);
    let step = responder
        .end_snapshot_access(&snapshot_id("again"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was not honoured"
    );
    let throttled: Vec<String> = stub.requests();
    assert!(throttled.len() >= 6, "{throttled:?}");
}

#[tokio::test]
async fn throttling_beyond_the_budget_is_a_transient_failure() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("exported", "ActiveSAS", json!({}));
    stub.throttle_next(&[0, 0, 0, 0]);
    let err = responder(&stub)
        .end_snapshot_access(&snapshot_id("exported"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap_err();
    assert_eq!(err.class, Class::Transient, "{err}");
    assert!(snapwatch_http::error_chain(&err).contains("429"), "{err}");
    assert!(stub.writes().is_empty());
}

#[tokio::test]
async fn a_failed_operation_is_a_permanent_failure_saying_why() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("exported", "ActiveSAS", json!({}));
    stub.end_access_ends("Failed");
    let err = responder(&stub)
        .end_snapshot_access(&snapshot_id("exported"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap_err();
    assert_eq!(err.class, Class::Permanent, "{err}");
    assert!(
        snapwatch_http::error_chain(&err).contains("stub operation failure"),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_never_follows_a_monitor_url_off_the_resource_manager_host() {
    let stub = ArmStub::start().await;
    stub.put_snapshot("exported", "ActiveSAS", json!({}));
    stub.send_monitors_to("http://127.0.0.2:9");
    let err = responder(&stub)
        .end_snapshot_access(&snapshot_id("exported"), EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap_err();
    assert_eq!(err.class, Class::Permanent, "{err}");
    assert!(
        snapwatch_http::error_chain(&err).contains("not followed"),
        "{err}"
    );
}

#[tokio::test]
async fn the_opened_rule_is_deleted_and_every_other_rule_stays() {
    let stub = ArmStub::start().await;
    stub.put_nsg(
        "jump-nsg",
        vec![ssh_rule("Allow-SSH", "Internet"), https_rule("Allow-HTTPS")],
        json!({}),
    );
    let step = responder(&stub)
        .delete_security_rule(
            &nsg_id("jump-nsg"),
            "Allow-SSH",
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(step.call.starts_with("DELETE ") && step.call.ends_with("/securityRules/Allow-SSH"));
    assert_eq!(stub.rule_names("jump-nsg"), ["Allow-HTTPS"]);
    assert_eq!(stub.writes().len(), 1, "{:?}", stub.requests());
}

#[tokio::test]
async fn a_rule_changed_after_the_finding_is_left_as_it_is() {
    let stub = ArmStub::start().await;
    // Someone narrowed the rule to the office range after the finding.
    stub.put_nsg(
        "jump-nsg",
        vec![ssh_rule("Allow-SSH", "203.0.113.0/24")],
        json!({}),
    );
    let step = responder(&stub)
        .delete_security_rule(
            &nsg_id("jump-nsg"),
            "Allow-SSH",
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::SkippedChanged, "{step:?}");
    assert_eq!(stub.rule_names("jump-nsg"), ["Allow-SSH"]);
    let gone = responder(&stub)
        .delete_security_rule(
            &nsg_id("jump-nsg"),
            "Allow-RDP",
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(gone.verdict, ActionResult::SkippedGone, "{gone:?}");
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
}

#[tokio::test]
async fn an_exempt_nsg_and_a_dry_run_keep_the_rule() {
    let stub = ArmStub::start().await;
    stub.put_nsg(
        "jump-nsg",
        vec![ssh_rule("Allow-SSH", "Internet")],
        json!({"snapwatch-exempt": ""}),
    );
    stub.put_nsg(
        "web-nsg",
        vec![ssh_rule("Allow-SSH", "Internet")],
        json!({}),
    );
    let responder = responder(&stub);
    let exempt = responder
        .delete_security_rule(
            &nsg_id("jump-nsg"),
            "Allow-SSH",
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(exempt.verdict, ActionResult::SkippedExempt, "{exempt:?}");
    let dry = responder
        .delete_security_rule(
            &nsg_id("web-nsg"),
            "allow-ssh",
            &ssh_opened(),
            EXEMPT,
            ResponseMode::DryRun,
        )
        .await
        .unwrap();
    assert_eq!(dry.verdict, ActionResult::WouldDo, "{dry:?}");
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    assert_eq!(stub.rule_names("jump-nsg"), ["Allow-SSH"]);
    assert_eq!(stub.rule_names("web-nsg"), ["Allow-SSH"]);
}

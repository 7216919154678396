//! The GCP response against a Compute Engine stub serving the documented shapes: exactly the
//! added members leave a snapshot's or image's IAM policy, a concurrent policy change (stale
//! `etag`, 412) is re-read and kept, the firewall rule a chain opened is disabled only while it
//! still opens what was recorded, exempt resources and dry runs change nothing, 429 is waited out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod respond_stub;

use respond_stub::{firewall, image, snapshot, ComputeStub, TOKEN};
use serde_json::json;
use snapwatch_core::model::{ActionResult, ResponseMode};
use snapwatch_core::model::{PortRange, Protocol};
use snapwatch_core::response::Opening;
use snapwatch_gcp::respond::ComputeResponder;
use snapwatch_gcp_inventory::TokenSource;
use snapwatch_http::{AccessToken, Backoff, Class, Failure, RetryPolicy};
use std::time::{Duration, Instant};

const EXEMPT: &str = "snapwatch-exempt";

#[derive(Clone, Copy)]
struct StubToken;

impl TokenSource for StubToken {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        Ok(Some(AccessToken::new(TOKEN.to_owned())))
    }
}

fn responder(stub: &ComputeStub) -> ComputeResponder<StubToken> {
    ComputeResponder::new(&stub.endpoint, StubToken)
        .unwrap()
        .with_waits(
            RetryPolicy {
                max_attempts: 4,
                backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50)),
                max_retry_after: Duration::from_secs(5),
            },
            Duration::from_millis(10),
        )
}

fn members(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| m.to_string()).collect()
}

#[tokio::test]
async fn exactly_the_added_public_and_outside_members_are_removed() {
    let stub = ComputeStub::start().await;
    stub.put_shared(
        &snapshot("db-nightly"),
        json!({"env": "prod"}),
        json!([
            {"role": "roles/compute.storageAdmin", "members": ["allUsers", "user:ops@corp.example"]},
            {"role": "roles/viewer", "members": ["user:mallory@evil.example"]}
        ]),
    );
    let added = members(&["allUsers", "user:mallory@evil.example"]);
    let step = responder(&stub)
        .remove_members(
            &snapshot("db-nightly"),
            &added,
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(step.call.contains("setIamPolicy"), "{step:?}");
    assert_eq!(
        stub.members(&snapshot("db-nightly")),
        ["user:ops@corp.example"]
    );
    // The emptied binding is gone, the other one kept its role.
    let policy = stub.policy(&snapshot("db-nightly"));
    assert_eq!(policy["bindings"].as_array().unwrap().len(), 1, "{policy}");

    // An image the same way, and a second run finds nothing left to remove.
    stub.put_shared(
        &image("golden"),
        json!({}),
        json!([{"role": "roles/compute.imageUser", "members": ["allAuthenticatedUsers"]}]),
    );
    let added = members(&["allAuthenticatedUsers"]);
    let step = responder(&stub)
        .remove_members(&image("golden"), &added, EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(stub.members(&image("golden")).is_empty());
    let again = responder(&stub)
        .remove_members(&image("golden"), &added, EXEMPT, ResponseMode::Enforce)
        .await
        .unwrap();
    assert_eq!(again.verdict, ActionResult::SkippedGone, "{again:?}");
    assert_eq!(stub.writes().len(), 2, "{:?}", stub.requests());
}

#[tokio::test]
async fn a_zonal_disk_shared_outside_loses_only_that_member() {
    let stub = ComputeStub::start().await;
    let disk = format!(
        "projects/{}/zones/europe-west1-b/disks/data-1",
        respond_stub::PROJECT
    );
    stub.put_shared(
        &disk,
        json!({}),
        json!([{"role": "roles/compute.viewer", "members": ["user:ops@corp.example", "user:x@evil.example"]}]),
    );
    let step = responder(&stub)
        .remove_members(
            &disk,
            &members(&["user:x@evil.example"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert_eq!(stub.members(&disk), ["user:ops@corp.example"]);
}

#[tokio::test]
async fn a_concurrent_policy_change_is_read_again_and_kept() {
    let stub = ComputeStub::start().await;
    let path = snapshot("db-nightly");
    stub.put_shared(
        &path,
        json!({}),
        json!([{"role": "roles/compute.storageAdmin", "members": ["allUsers"]}]),
    );
    // Between our read and our write, an admin grants a colleague access.
    stub.change_after_reads(
        &path,
        &[("roles/compute.storageAdmin", "user:dba@corp.example")],
    );
    let step = responder(&stub)
        .remove_members(
            &path,
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert_eq!(stub.members(&path), ["user:dba@corp.example"]);
    let requests = stub.requests();
    let sets = requests
        .iter()
        .filter(|r| r.ends_with("/setIamPolicy"))
        .count();
    let reads = requests
        .iter()
        .filter(|r| r.ends_with("/getIamPolicy"))
        .count();
    assert_eq!(
        (reads, sets),
        (2, 2),
        "a refused write, a re-read, a write: {requests:?}"
    );
}

#[tokio::test]
async fn a_policy_that_keeps_changing_is_given_up_after_a_bounded_number_of_rounds() {
    let stub = ComputeStub::start().await;
    let path = snapshot("busy");
    stub.put_shared(
        &path,
        json!({}),
        json!([{"role": "roles/compute.storageAdmin", "members": ["allUsers"]}]),
    );
    let adds: Vec<(String, String)> = (0..10)
        .map(|i| ("roles/viewer".to_owned(), format!("user:u{i}@corp.example")))
        .collect();
    let adds: Vec<(&str, &str)> = adds.iter().map(|(r, m)| (r.as_str(), m.as_str())).collect();
    stub.change_after_reads(&path, &adds);
    let err = responder(&stub)
        .remove_members(
            &path,
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, Class::Transient, "{err}");
    let sets = stub
        .requests()
        .iter()
        .filter(|r| r.ends_with("/setIamPolicy"))
        .count();
    assert_eq!(sets, 4, "{:?}", stub.requests());
    assert!(stub.members(&path).contains(&"allUsers".to_owned()));
}

#[tokio::test]
async fn an_exempt_label_and_a_dry_run_change_nothing() {
    let stub = ComputeStub::start().await;
    let bindings = json!([{"role": "roles/compute.storageAdmin", "members": ["allUsers"]}]);
    stub.put_shared(
        &snapshot("kept"),
        json!({"snapwatch-exempt": "public-dataset"}),
        bindings.clone(),
    );
    stub.put_shared(&snapshot("watched"), json!({}), bindings);
    let responder = responder(&stub);
    let exempt = responder
        .remove_members(
            &snapshot("kept"),
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(exempt.verdict, ActionResult::SkippedExempt, "{exempt:?}");
    let dry = responder
        .remove_members(
            &snapshot("watched"),
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::DryRun,
        )
        .await
        .unwrap();
    assert_eq!(dry.verdict, ActionResult::WouldDo, "{dry:?}");
    assert!(dry.reason.contains("allUsers"), "{dry:?}");
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    assert_eq!(stub.members(&snapshot("kept")), ["allUsers"]);
    assert_eq!(stub.members(&snapshot("watched")), ["allUsers"]);
}

#[tokio::test]
async fn throttling_is_waited_out_and_a_longer_one_is_transient() {
    let stub = ComputeStub::start().await;
    let path = snapshot("db-nightly");
    stub.put_shared(
        &path,
        json!({}),
        json!([{"role": "roles/compute.storageAdmin", "members": ["allUsers"]}]),
    );
    stub.throttle_next(&[1]);
    let started = Instant::now();
    let step = responder(&stub)
        .remove_members(
            &path,
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );

    stub.put_shared(
        &path,
        json!({}),
        json!([{"role": "roles/compute.storageAdmin", "members": ["allUsers"]}]),
    );
    stub.throttle_next(&[0, 0, 0, 0]);
    let err = responder(&stub)
        .remove_members(
            &path,
            &members(&["allUsers"]),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, Class::Transient, "{err}");
    assert!(snapwatch_http::error_chain(&err).contains("429"), "{err}");
}

/// What the chain recorded when `open-ssh` was inserted: TCP 22 from anywhere.
fn ssh_opened() -> Vec<Opening> {
    vec![Opening {
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(22)],
        sources: vec!["0.0.0.0/0".into()],
        target_tags: vec![],
    }]
}

fn ssh_rule(source: &str, description: &str) -> serde_json::Value {
    json!({"network": "https://www.googleapis.com/compute/v1/projects/acme-prod/global/networks/default",
           "direction": "INGRESS", "priority": 1000, "description": description,
           "sourceRanges": [source], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
           "disabled": false})
}

#[tokio::test]
async fn the_opened_firewall_rule_is_disabled_and_kept() {
    let stub = ComputeStub::start().await;
    stub.put_firewall("open-ssh", ssh_rule("0.0.0.0/0", ""));
    let step = responder(&stub)
        .disable_firewall(
            &firewall("open-ssh"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(step.verdict, ActionResult::Done, "{step:?}");
    let rule = stub.resource(&firewall("open-ssh"));
    assert_eq!(rule["disabled"], true, "{rule}");
    // Disabled, not deleted: everything else of the rule is as it was.
    assert_eq!(rule["sourceRanges"], json!(["0.0.0.0/0"]));
    let requests = stub.requests();
    assert!(
        requests.iter().any(|r| r.contains("/global/operations/")),
        "{requests:?}"
    );
    assert_eq!(stub.writes(), [format!("PATCH {}", firewall("open-ssh"))]);
    let again = responder(&stub)
        .disable_firewall(
            &firewall("open-ssh"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(again.verdict, ActionResult::SkippedGone, "{again:?}");
}

#[tokio::test]
async fn a_changed_exempt_or_dry_run_firewall_rule_is_left_enabled() {
    let stub = ComputeStub::start().await;
    stub.put_firewall("narrowed", ssh_rule("203.0.113.0/24", ""));
    stub.put_firewall(
        "break-glass",
        ssh_rule("0.0.0.0/0", "bastion; snapwatch-exempt"),
    );
    stub.put_firewall("open-ssh", ssh_rule("0.0.0.0/0", ""));
    // Someone added a port to the rule since: it is not only the chain's any more.
    let mut widened = ssh_rule("0.0.0.0/0", "");
    widened["allowed"] =
        json!([{"IPProtocol": "tcp", "ports": ["22"]}, {"IPProtocol": "tcp", "ports": ["8443"]}]);
    stub.put_firewall("widened", widened);
    let responder = responder(&stub);
    let widened = responder
        .disable_firewall(
            &firewall("widened"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(widened.verdict, ActionResult::SkippedChanged, "{widened:?}");
    let changed = responder
        .disable_firewall(
            &firewall("narrowed"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(changed.verdict, ActionResult::SkippedChanged, "{changed:?}");
    let exempt = responder
        .disable_firewall(
            &firewall("break-glass"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(exempt.verdict, ActionResult::SkippedExempt, "{exempt:?}");
    let dry = responder
        .disable_firewall(
            &firewall("open-ssh"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::DryRun,
        )
        .await
        .unwrap();
    assert_eq!(dry.verdict, ActionResult::WouldDo, "{dry:?}");
    let gone = responder
        .disable_firewall(
            &firewall("deleted"),
            &ssh_opened(),
            EXEMPT,
            ResponseMode::Enforce,
        )
        .await
        .unwrap();
    assert_eq!(gone.verdict, ActionResult::SkippedGone, "{gone:?}");
    assert!(stub.writes().is_empty(), "{:?}", stub.requests());
    for name in ["narrowed", "break-glass", "open-ssh"] {
        assert_eq!(stub.resource(&firewall(name))["disabled"], false, "{name}");
    }
}

//! The Compute Engine listing against the stub server: every collection and page, the ids the
//! audit-log parser gives, IAM members read as grants, and the retry rules (429 and quota 403
//! retried with `Retry-After`, a permanent 403 not), with the request count a run costs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod stub;

use chrono::Utc;
use snapwatch_core::ResourceKind;
use snapwatch_gcp_inventory::{ComputeLister, InventoryError, NoToken};
use snapwatch_http::{Backoff, RetryPolicy};
use std::time::Duration;
use stub::{ComputeStub, Fault, PROJECT};

const NIGHTLY: &str = "projects/snap-prod/global/snapshots/nightly-db";
const HANDOFF: &str = "projects/snap-prod/global/snapshots/handoff";
const GOLDEN: &str = "projects/snap-prod/global/images/golden-web";
const ZONAL: &str = "projects/snap-prod/zones/us-central1-a/disks/db-data";
const REGIONAL: &str = "projects/snap-prod/regions/us-central1/disks/ha-data";

fn lister(stub: &ComputeStub) -> ComputeLister<NoToken> {
    ComputeLister::new(&stub.endpoint, NoToken)
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
            max_retry_after: Duration::from_secs(2),
        })
}

#[tokio::test]
async fn lists_every_collection_and_page_with_policies() {
    let stub = ComputeStub::start().await;
    stub.set_policy(HANDOFF, "policy-external.json");
    stub.set_policy(GOLDEN, "policy-public.json");
    stub.set_policy(REGIONAL, "policy-internal.json");
    let lister = lister(&stub);
    let inventory = lister.list_project(PROJECT, Utc::now()).await.unwrap();
    assert_eq!(inventory.account, PROJECT);
    assert_eq!(inventory.region, "global");
    let ids: Vec<(&str, ResourceKind)> = inventory
        .items
        .iter()
        .map(|i| (i.resource.id.as_str(), i.resource.kind))
        .collect();
    assert_eq!(
        ids,
        [
            (GOLDEN, ResourceKind::Image),
            (
                "projects/snap-prod/global/machineImages/web-vm-backup",
                ResourceKind::Image
            ),
            (HANDOFF, ResourceKind::Snapshot),
            (
                "projects/snap-prod/global/snapshots/late-arrival",
                ResourceKind::Snapshot
            ),
            (NIGHTLY, ResourceKind::Snapshot),
            (REGIONAL, ResourceKind::Disk),
            (ZONAL, ResourceKind::Disk),
        ]
    );
    let item = |id: &str| {
        inventory
            .items
            .iter()
            .find(|i| i.resource.id == id)
            .unwrap()
    };
    assert!(item(NIGHTLY).permissions.is_private());
    assert_eq!(
        item(HANDOFF)
            .permissions
            .principals
            .iter()
            .collect::<Vec<_>>(),
        ["user:eve@evil.example"]
    );
    assert!(item(GOLDEN).permissions.public);
    assert!(item(GOLDEN)
        .permissions
        .principals
        .contains("group:partners@other.example"));
    // projectOwner: is nobody new; the project's own service account is a principal the rules
    // judge (it is in the project's service-account domain).
    assert_eq!(
        item(REGIONAL)
            .permissions
            .principals
            .iter()
            .collect::<Vec<_>>(),
        ["serviceAccount:backup@snap-prod.iam.gserviceaccount.com"]
    );
    assert_eq!(
        item(REGIONAL).observed_via,
        "compute.regionDisks.getIamPolicy"
    );
    assert_eq!(item(ZONAL).observed_via, "compute.disks.getIamPolicy");
    // 5 list pages (snapshots ×2, images, machine images, aggregated disks) + 7 policy reads.
    assert_eq!(lister.requests_sent(), 12);
    let requests = stub.requests();
    assert_eq!(requests.len(), 12);
    assert!(requests
        .iter()
        .any(|r| r.contains("pageToken=CkQiQgoCGAMKAyIBAQ")));
    assert!(requests
        .iter()
        .filter(|r| r.contains("/global/snapshots?") || r.contains("/aggregated/disks?"))
        .all(|r| r.contains("maxResults=500")));
    assert!(requests
        .iter()
        .filter(|r| r.contains("/getIamPolicy"))
        .all(|r| r.contains("optionsRequestedPolicyVersion=3")));
    // No token source, no Authorization header.
    assert!(stub.authorizations().iter().all(Option::is_none));
}

#[tokio::test]
async fn throttling_and_quota_errors_are_retried_honouring_retry_after() {
    let stub = ComputeStub::start().await;
    stub.inject(Fault {
        path: "/global/snapshots".into(),
        status: 429,
        file: "error-429.json",
        retry_after: Some(1),
    });
    stub.inject(Fault {
        path: "/getIamPolicy".into(),
        status: 403,
        file: "error-rate-limit-403.json",
        retry_after: None,
    });
    stub.inject(Fault {
        path: "/aggregated/disks".into(),
        status: 500,
        file: "error-500.json",
        retry_after: None,
    });
    let lister = lister(&stub);
    let started = std::time::Instant::now();
    let inventory = lister.list_project(PROJECT, Utc::now()).await.unwrap();
    assert_eq!(inventory.items.len(), 7);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After waited out"
    );
    // Each injected failure cost one extra request.
    assert_eq!(lister.requests_sent(), 15);
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried_and_fails_the_listing() {
    let stub = ComputeStub::start().await;
    stub.inject(Fault {
        path: "/global/snapshots".into(),
        status: 403,
        file: "error-forbidden-403.json",
        retry_after: None,
    });
    let lister = lister(&stub);
    let error = lister.list_project(PROJECT, Utc::now()).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(
        snapwatch_http::error_chain(&error).contains("forbidden"),
        "{error}"
    );
    assert_eq!(lister.requests_sent(), 1);
}

#[tokio::test]
async fn throttling_that_outlasts_the_budget_is_a_retryable_failure() {
    let stub = ComputeStub::start().await;
    for _ in 0..3 {
        stub.inject(Fault {
            path: "/global/images".into(),
            status: 429,
            file: "error-429.json",
            retry_after: None,
        });
    }
    let error = lister(&stub)
        .list_project(PROJECT, Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(error, InventoryError::Request { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_waits_ends_the_run_retryable() {
    let stub = ComputeStub::start().await;
    stub.inject(Fault {
        path: "/getIamPolicy".into(),
        status: 429,
        file: "error-429.json",
        retry_after: Some(600),
    });
    let started = std::time::Instant::now();
    let error = lister(&stub)
        .list_project(PROJECT, Utc::now())
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_resource_deleted_after_its_listing_is_left_out() {
    let stub = ComputeStub::start().await;
    stub.delete_after_listing(NIGHTLY);
    let inventory = lister(&stub)
        .list_project(PROJECT, Utc::now())
        .await
        .unwrap();
    assert_eq!(inventory.items.len(), 6);
    assert!(inventory.items.iter().all(|i| i.resource.id != NIGHTLY));
}

#[tokio::test]
async fn an_unknown_project_fails_instead_of_listing_nothing() {
    let stub = ComputeStub::start().await;
    let error = lister(&stub)
        .list_project("other-project", Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(error, InventoryError::Malformed { .. }), "{error}");
}

/// The cost of a run (README, Snapshot baseline, GCP): one list request per page of 500 and one
/// `getIamPolicy` per resource. The stub counts what the client actually sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_of_1000_snapshots_costs_1002_requests_plus_the_other_collections() {
    let stub = ComputeStub::start().await;
    stub.generate_snapshots(1000);
    let lister = lister(&stub);
    let started = std::time::Instant::now();
    let inventory = lister.list_project(PROJECT, Utc::now()).await.unwrap();
    let elapsed = started.elapsed();
    let others = 4; // images, machine images and the aggregated disks: one page and 4 policies.
    assert_eq!(inventory.items.len(), 1000 + others);
    let snapshot_requests = 1000_u64.div_ceil(500) + 1000;
    assert_eq!(snapshot_requests, 1002);
    assert_eq!(
        lister.requests_sent(),
        snapshot_requests + 3 + others as u64
    );
    assert_eq!(stub.requests().len() as u64, lister.requests_sent());
    eprintln!("listed {} resources in {elapsed:?}", inventory.items.len());
}

//! The lister against the Resource Manager stub (functions/azure/tests/arm_stub, pages in
//! tests/fixtures/azure-baseline): paging, the core's mapping, throttling, refusals and pages
//! that must not be followed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

#[path = "../../../functions/azure/tests/arm_stub/mod.rs"]
mod arm_stub;

use arm_stub::{ArmStub, Fault, StubToken, SUBSCRIPTION};
use serde_json::json;
use snapwatch_azure_inventory::{ArmLister, InventoryError, BASELINE_REGION};
use snapwatch_core::model::{Cloud, ResourceKind};
use snapwatch_http::{Backoff, RetryPolicy, Stop};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn lister(stub: &ArmStub, tokens: StubToken) -> ArmLister<StubToken> {
    ArmLister::new(reqwest::Client::new(), stub.url(), tokens).with_retry(RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50)),
        max_retry_after: Duration::from_secs(5),
    })
}

#[tokio::test]
async fn lists_every_page_of_disks_snapshots_and_galleries_with_their_exposure() {
    let stub = ArmStub::start().await;
    let tokens = StubToken::default();
    let listing = lister(&stub, tokens.clone())
        .list_subscription(&SUBSCRIPTION.to_uppercase(), chrono::Utc::now())
        .await
        .expect("listing");
    let inventory = &listing.inventory;
    assert_eq!(inventory.cloud, Cloud::Azure);
    assert_eq!(
        inventory.account, SUBSCRIPTION,
        "lower-cased like the event parser's"
    );
    assert_eq!(inventory.region, BASELINE_REGION);
    let summary: Vec<(String, ResourceKind, bool, bool)> = inventory
        .items
        .iter()
        .map(|item| {
            let name = item.resource.id.rsplit('/').next().unwrap().to_owned();
            (
                name,
                item.resource.kind,
                item.permissions.export_open,
                item.permissions.export_reachable,
            )
        })
        .collect();
    let want = [
        ("sqlvm01-osdisk", ResourceKind::Disk, false, false),
        ("finance-data-01", ResourceKind::Disk, true, true),
        ("hr-archive", ResourceKind::Disk, true, false),
        ("sqlvm01-osdisk-snap", ResourceKind::Snapshot, true, true),
        ("nightly-2024-04-14", ResourceKind::Snapshot, false, false),
        ("audit-export", ResourceKind::Snapshot, true, false),
        ("public_golden", ResourceKind::Image, false, false),
        ("partner_builds", ResourceKind::Image, false, false),
        ("internal_images", ResourceKind::Image, false, false),
    ]
    .map(|(n, k, o, r)| (n.to_owned(), k, o, r));
    assert_eq!(summary, want);
    assert_eq!(listing.rejected.len(), 1);
    assert!(
        listing.rejected[0].reason.contains("`id`"),
        "{:?}",
        listing.rejected
    );
    let galleries: Vec<_> = inventory.items[6..]
        .iter()
        .map(|item| {
            (
                item.permissions.public,
                item.permissions
                    .accounts
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>(),
                item.observed_via.as_str(),
            )
        })
        .collect();
    assert_eq!(
        galleries,
        [
            (true, vec![], "Microsoft.Compute/galleries/read"),
            (
                false,
                vec!["9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".to_owned()],
                "Microsoft.Compute/galleries/read"
            ),
            (false, vec![], "Microsoft.Compute/galleries/read"),
        ]
    );
    // 4 pages, and the `Groups` gallery's own GET: the list leaves out whom it is shared with.
    assert_eq!(listing.requests, 5);
    assert_eq!(stub.requests(), 5);
    assert_eq!(
        tokens.asked.load(Ordering::SeqCst),
        5,
        "a token per request"
    );
}

#[tokio::test]
async fn follows_the_gallery_list_next_link_and_reports_an_unreadable_gallery() {
    let stub = ArmStub::start().await;
    let base = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/img/providers/Microsoft.Compute/galleries"
    );
    stub.set_page(
        "galleries-1",
        json!({
            "value": [{"name": "g1", "id": format!("{base}/g1"),
                       "properties": {"sharingProfile": {"permissions": "Community"}}}],
            "nextLink": format!("{{{{ARM}}}}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/galleries?api-version=2023-07-03&$skiptoken=2"),
        }),
    );
    stub.set_page(
        "galleries-2",
        json!({"value": [
            {"name": "g2", "id": format!("{base}/g2"),
             "properties": {"sharingProfile": {"permissions": "Groups", "groups": [
                 {"type": "AADTenants", "ids": ["72F988BF-86F1-41AF-91AB-2D7CD011DB47"]}]}}},
            {"name": "g3", "id": format!("{base}/g3"),
             "properties": {"sharingProfile": {"permissions": "Everyone"}}},
        ]}),
    );
    let listing = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect("listing");
    assert_eq!(
        listing.requests, 6,
        "2 disk pages, 1 snapshot page, 2 gallery pages, 1 `Groups` gallery's GET"
    );
    let galleries: Vec<_> = listing
        .inventory
        .items
        .iter()
        .filter(|item| item.resource.id.contains("/galleries/"))
        .collect();
    assert_eq!(galleries.len(), 2);
    assert!(galleries[0].permissions.public);
    assert_eq!(
        galleries[1]
            .permissions
            .principals
            .iter()
            .collect::<Vec<_>>(),
        ["72f988bf-86f1-41af-91ab-2d7cd011db47"]
    );
    let rejected: Vec<_> = listing
        .rejected
        .iter()
        .filter(|r| r.collection == "galleries")
        .collect();
    assert_eq!(rejected.len(), 1, "{:?}", listing.rejected);
    assert!(rejected[0].id.as_deref().unwrap().ends_with("/g3"));
    assert!(rejected[0].reason.contains("Everyone"), "{:?}", rejected[0]);
}

#[tokio::test]
async fn a_long_retry_after_ends_the_listing_as_retryable() {
    let stub = ArmStub::start().await;
    stub.fail_next(&[Fault::Throttle { retry_after: 120 }]);
    let err = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("throttled for longer than waited out");
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(
            err,
            InventoryError::GaveUp {
                stop: Stop::RetryAfterTooLong,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        snapwatch_http::error_chain(&err).contains("TooManyRequests"),
        "{err}"
    );
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn no_retry_wait_outlasts_the_time_budget() {
    let stub = ArmStub::start().await;
    stub.fail_next(&[Fault::Throttle { retry_after: 3 }]);
    let started = std::time::Instant::now();
    let err = lister(&stub, StubToken::default())
        .with_time_budget(Duration::from_secs(1))
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("the wait would pass the budget");
    assert!(
        matches!(
            err,
            InventoryError::GaveUp {
                stop: Stop::Deadline,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "it did not wait"
    );
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_budget() {
    let stub = ArmStub::start().await;
    stub.fail_next(&[Fault::ServerError; 3]);
    let err = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("500 three times");
    assert!(
        matches!(
            err,
            InventoryError::GaveUp {
                attempts: 3,
                stop: Stop::Exhausted,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_with_the_token() {
    let stub = ArmStub::start().await;
    stub.set_page(
        "disks-1",
        json!({"value": [], "nextLink": "https://attacker.example/subscriptions/x/providers/Microsoft.Compute/disks?api-version=2023-04-02"}),
    );
    let err = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("foreign nextLink");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("attacker.example"), "{err}");
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn a_page_pointing_at_itself_or_without_value_is_an_error() {
    let stub = ArmStub::start().await;
    let url = stub.url();
    let base = url.as_str().trim_end_matches('/');
    stub.set_page(
        "disks-1",
        json!({"value": [], "nextLink": format!("{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/disks?api-version=2023-04-02")}),
    );
    let err = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("a loop");
    assert!(err.to_string().contains("same page"), "{err}");

    stub.set_page("disks-1", json!({"items": []}));
    let err = lister(&stub, StubToken::default())
        .list_subscription(SUBSCRIPTION, chrono::Utc::now())
        .await
        .expect_err("not a page");
    assert!(err.to_string().contains("`value`"), "{err}");
}

#[tokio::test]
async fn a_subscription_id_that_would_change_the_path_is_refused_before_any_request() {
    let stub = ArmStub::start().await;
    for bad in ["", "../../providers", "abc?x=1", "a/b"] {
        let err = lister(&stub, StubToken::default())
            .list_subscription(bad, chrono::Utc::now())
            .await
            .expect_err(bad);
        assert!(
            matches!(err, InventoryError::Subscription(_)),
            "{bad}: {err}"
        );
    }
    assert_eq!(stub.requests(), 0);
}

//! The purge of expired chain state against Azurite: bounded runs over mixed expiries, several
//! partitions, batches, scan continuations and expired claims; what stays must read as before.
//! Also the guarded deletes the purge relies on, and two purges racing on one table.
//!
//! Needs `SNAPWATCH_AZURITE_TABLE_ENDPOINT`: run under tests/servers/with-servers.sh (make test
//! does). Every test uses its own table.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use snapwatch_azure::table::client::{BatchDeletion, Deletion, EntityKey, PageRequest};
use snapwatch_azure::table::{PurgeReport, TableStore};
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoredFact};
use std::collections::BTreeSet;
use std::time::Instant;

mod azurite;
use azurite::fresh_store;
/// The purge's "now": every expiry below is relative to it.
const NOW: i64 = 2_000_000_000;
const LEASE_SECS: i64 = 300;

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().expect("valid time")
}

fn facts(resource: &str, prefix: &str, expiries: impl Iterator<Item = i64>) -> ResourceFacts {
    ResourceFacts {
        resource: resource.to_owned(),
        facts: expiries
            .enumerate()
            .map(|(i, expires_at)| StoredFact {
                key: format!("{prefix}-{i}#0"),
                expires_at,
                body: format!("{{\"fact\":\"{prefix} {i}\"}}"),
            })
            .collect(),
    }
}

/// Every row of the table, whatever its expiry.
async fn all_rows(store: &TableStore) -> Vec<serde_json::Map<String, Value>> {
    store
        .client()
        .query("ExpiresAt ge 0L")
        .await
        .expect("query every row")
}

async fn expired_rows(store: &TableStore) -> usize {
    store
        .client()
        .query(&format!("ExpiresAt le {NOW}L"))
        .await
        .expect("query expired rows")
        .len()
}

fn keys_of(loaded: &[ResourceFacts], resource: &str) -> BTreeSet<String> {
    loaded
        .iter()
        .filter(|rf| rf.resource == resource)
        .flat_map(|rf| rf.facts.iter().map(|f| f.key.clone()))
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

const BIG: &str = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/disks/big";
const LONE: &str = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/snapshots/lone";
const MID: &str =
    "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/mid";
const LIVE: &str =
    "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/live";

/// 1,030 + 1 + 150 expired facts and 4 expired claims; 12 live facts and 2 live claims.
async fn seed_mixed(store: &TableStore) {
    let batch = vec![
        // Expiries from NOW - 49 up to exactly NOW (at NOW counts as expired), then live ones.
        facts(BIG, "big-old", (0..1_030).map(|i| NOW - (i % 50))),
        facts(BIG, "big-live", [NOW + 1, NOW + 86_400].into_iter()),
        facts(LONE, "lone-old", [NOW - 3_600].into_iter()),
        facts(
            LONE,
            "lone-live",
            [NOW + 60, NOW + 61, NOW + 62].into_iter(),
        ),
        facts(MID, "mid-old", (0..150).map(|i| NOW - 1_000 - i)),
        facts(LIVE, "vm-live", (0..4).map(|i| NOW + 1_000 + i)),
        facts(BIG, "big-live2", [NOW + 5, NOW + 6, NOW + 7].into_iter()),
    ];
    let added = store.add_facts(&batch).await.expect("add facts");
    assert_eq!(added, 1_030 + 2 + 1 + 3 + 150 + 4 + 3);

    // Claims of an earlier window, now expired: one delivered, the others still held.
    for i in 0..4 {
        let id = format!("sw-expired-{i}");
        let claim = store
            .claim_alert(&id, at(NOW - 2_000), LEASE_SECS, NOW - 10)
            .await
            .expect("claim");
        assert_eq!(claim, Claim::Won);
        if i == 0 {
            store.mark_alert_sent(&id).await.expect("mark sent");
        }
    }
    // Live claims: one delivered, one held by a handler still working on it.
    assert_eq!(
        store
            .claim_alert("sw-live-sent", at(NOW - 100), LEASE_SECS, NOW + 10_000)
            .await
            .expect("claim"),
        Claim::Won
    );
    store
        .mark_alert_sent("sw-live-sent")
        .await
        .expect("mark sent");
    assert_eq!(
        store
            .claim_alert("sw-live-held", at(NOW - 10), LEASE_SECS, NOW + 10_000)
            .await
            .expect("claim"),
        Claim::Won
    );
}

const EXPIRED_TOTAL: usize = 1_030 + 1 + 150 + 4;
const LIVE_TOTAL: usize = 2 + 3 + 4 + 3 + 2;

#[tokio::test]
async fn bounded_runs_drain_every_expired_row_and_keep_every_live_one() {
    let store = fresh_store("purgemixed").await;
    seed_mixed(&store).await;
    assert_eq!(all_rows(&store).await.len(), EXPIRED_TOTAL + LIVE_TOTAL);
    assert_eq!(expired_rows(&store).await, EXPIRED_TOTAL);

    // A small budget: part of the backlog, and the run says more is left.
    let first = store.purge_expired(at(NOW), 120).await.expect("purge 1");
    assert_eq!(
        (
            first.expired,
            first.deleted,
            first.already_gone,
            first.changed
        ),
        (120, 120, 0, 0)
    );
    assert!(first.more_remaining);
    assert_eq!(expired_rows(&store).await, EXPIRED_TOTAL - 120);

    // A large budget: the rest, over two scan pages (1,000 rows a page) and many batches.
    let started = Instant::now();
    let second = store.purge_expired(at(NOW), 5_000).await.expect("purge 2");
    let elapsed = started.elapsed();
    assert_eq!(
        second,
        PurgeReport {
            expired: EXPIRED_TOTAL - 120,
            deleted: EXPIRED_TOTAL - 120,
            already_gone: 0,
            changed: 0,
            more_remaining: false,
            requests: second.requests,
        }
    );
    // Two scan pages, then at most one batch per 100 rows of a partition plus a lone row per
    // partition that has one: far fewer requests than rows.
    assert!(
        (2 + 11..=2 + 11 + 4).contains(&second.requests),
        "requests: {}",
        second.requests
    );
    eprintln!(
        "purge figures: {} rows in {:.0} ms = {:.0} rows/s, {} requests ({:.1} per 100 rows)",
        second.deleted,
        elapsed.as_secs_f64() * 1e3,
        second.deleted as f64 / elapsed.as_secs_f64(),
        second.requests,
        second.requests as f64 * 100.0 / second.deleted as f64
    );
    assert_eq!(expired_rows(&store).await, 0);
    assert_eq!(all_rows(&store).await.len(), LIVE_TOTAL);

    // Nothing left: one scan request, nothing deleted.
    let third = store.purge_expired(at(NOW), 5_000).await.expect("purge 3");
    assert_eq!(
        third,
        PurgeReport {
            requests: 1,
            ..PurgeReport::default()
        }
    );

    // Every live fact reads as before; reading "in the past" proves the old ones are gone,
    // not merely filtered.
    let resources: Vec<String> = [BIG, LONE, MID, LIVE].map(str::to_owned).to_vec();
    for when in [NOW, NOW - 10_000] {
        let loaded = store.load_facts(&resources, at(when)).await.expect("load");
        assert_eq!(
            keys_of(&loaded, BIG),
            set(&[
                "big-live-0#0",
                "big-live-1#0",
                "big-live2-0#0",
                "big-live2-1#0",
                "big-live2-2#0"
            ]),
            "at {when}"
        );
        assert_eq!(
            keys_of(&loaded, LONE),
            set(&["lone-live-0#0", "lone-live-1#0", "lone-live-2#0"])
        );
        assert_eq!(keys_of(&loaded, MID), BTreeSet::new());
        assert_eq!(
            keys_of(&loaded, LIVE),
            set(&["vm-live-0#0", "vm-live-1#0", "vm-live-2#0", "vm-live-3#0"])
        );
    }
    let loaded = store
        .load_facts(&[LONE.to_owned()], at(NOW))
        .await
        .expect("load");
    let mut bodies: Vec<(String, i64, String)> = loaded[0]
        .facts
        .iter()
        .map(|f| (f.key.clone(), f.expires_at, f.body.clone()))
        .collect();
    bodies.sort();
    assert_eq!(
        bodies[0],
        (
            "lone-live-0#0".to_owned(),
            NOW + 60,
            "{\"fact\":\"lone-live 0\"}".to_owned()
        )
    );

    // Claims behave as before the purge: live ones hold, purged ones are free again.
    let later = at(NOW + 1);
    assert_eq!(
        store
            .claim_alert("sw-live-sent", later, LEASE_SECS, NOW + 10_000)
            .await
            .expect("claim"),
        Claim::AlreadySent
    );
    assert_eq!(
        store
            .claim_alert("sw-live-held", later, LEASE_SECS, NOW + 10_000)
            .await
            .expect("claim"),
        Claim::HeldByOther
    );
    for i in 0..4 {
        assert_eq!(
            store
                .claim_alert(&format!("sw-expired-{i}"), later, LEASE_SECS, NOW + 10_000)
                .await
                .expect("claim"),
            Claim::Won,
            "sw-expired-{i}"
        );
    }
}

/// Exact request counts: one scan page, one batch per 100 rows of a partition, a plain delete
/// for a partition's lone row.
#[tokio::test]
async fn one_transaction_per_hundred_rows_of_a_partition_and_plain_deletes_for_lone_rows() {
    let store = fresh_store("purgecount").await;
    let mut batch = vec![facts(BIG, "old", (0..250).map(|i| NOW - 1 - i))];
    for i in 0..10 {
        batch.push(facts(
            &format!("/subscriptions/s/snapshots/lone-{i}"),
            "old",
            [NOW - 5].into_iter(),
        ));
    }
    store.add_facts(&batch).await.expect("add");
    let report = store.purge_expired(at(NOW), 1_000).await.expect("purge");
    assert_eq!(
        report,
        PurgeReport {
            expired: 260,
            deleted: 260,
            already_gone: 0,
            changed: 0,
            more_remaining: false,
            requests: 1 + 3 + 10,
        }
    );
    assert!(all_rows(&store).await.is_empty());
}

/// A budget equal to the backlog empties it and says nothing more remains (the scan looks one
/// row further to tell).
#[tokio::test]
async fn a_budget_equal_to_the_backlog_reports_nothing_remaining() {
    let store = fresh_store("purgeexact").await;
    store
        .add_facts(&[facts(MID, "old", (0..30).map(|i| NOW - i))])
        .await
        .expect("add");
    let report = store.purge_expired(at(NOW), 30).await.expect("purge");
    assert_eq!((report.deleted, report.more_remaining), (30, false));
    let report = store.purge_expired(at(NOW), 30).await.expect("purge");
    assert_eq!((report.deleted, report.more_remaining), (0, false));
}

async fn scanned_keys(store: &TableStore) -> Vec<EntityKey> {
    let page = store
        .client()
        .query_page(
            &PageRequest {
                filter: &format!("ExpiresAt le {NOW}L"),
                select: Some("PartitionKey,RowKey"),
                top: 1_000,
                with_etags: true,
            },
            None,
        )
        .await
        .expect("scan");
    assert!(page.next.is_none());
    page.entities
        .iter()
        .map(|e| EntityKey {
            partition: e["PartitionKey"].as_str().expect("pk").to_owned(),
            row: e["RowKey"].as_str().expect("rk").to_owned(),
            etag: e["odata.etag"].as_str().expect("etag").to_owned(),
        })
        .collect()
}

/// The guards the purge relies on, on the wire: a transaction with one vanished or changed row
/// deletes nothing; a single delete tells "gone" from "changed"; an expired claim taken over
/// after the scan survives the scan's delete.
#[tokio::test]
async fn guarded_deletes_never_remove_a_row_that_changed_after_the_scan() {
    let store = fresh_store("purgeguard").await;
    store
        .add_facts(&[facts(MID, "old", (0..3).map(|i| NOW - i))])
        .await
        .expect("add");
    let keys = scanned_keys(&store).await;
    assert_eq!(keys.len(), 3);
    let client = store.client();

    // One row gone before the transaction: it rolls back whole.
    assert_eq!(
        client.delete_entity(&keys[1]).await.expect("delete"),
        Deletion::Deleted
    );
    assert_eq!(
        client.delete_batch(&keys).await.expect("batch"),
        BatchDeletion::RolledBack { status: 404 }
    );
    assert_eq!(expired_rows(&store).await, 2);
    assert_eq!(
        client.delete_entity(&keys[1]).await.expect("delete"),
        Deletion::AlreadyGone
    );

    // A stale ETag refuses the transaction too.
    let mut stale = vec![keys[0].clone(), keys[2].clone()];
    stale[1].etag = "W/\"datetime'2000-01-01T00%3A00%3A00.0000000Z'\"".to_owned();
    assert_eq!(
        client.delete_batch(&stale).await.expect("batch"),
        BatchDeletion::RolledBack { status: 412 }
    );
    assert_eq!(expired_rows(&store).await, 2);
    assert_eq!(
        client
            .delete_batch(&[keys[0].clone(), keys[2].clone()])
            .await
            .expect("batch"),
        BatchDeletion::Deleted
    );
    assert_eq!(expired_rows(&store).await, 0);

    // A batch must stay within one partition and 100 operations.
    let mut mixed = keys.clone();
    mixed[0].partition = "r-other".into();
    assert!(client.delete_batch(&mixed).await.is_err());
    assert!(client
        .delete_batch(&vec![keys[0].clone(); 101])
        .await
        .is_err());

    // An expired claim, scanned, then taken over by a new alert before the delete arrives.
    store
        .claim_alert("sw-race", at(NOW - 2_000), LEASE_SECS, NOW - 1)
        .await
        .expect("claim");
    let scanned = scanned_keys(&store).await;
    assert_eq!(scanned.len(), 1);
    assert_eq!(
        store
            .claim_alert("sw-race", at(NOW), LEASE_SECS, NOW + 10_000)
            .await
            .expect("take over"),
        Claim::Won
    );
    assert_eq!(
        client.delete_entity(&scanned[0]).await.expect("delete"),
        Deletion::Changed
    );
    assert_eq!(
        store
            .claim_alert("sw-race", at(NOW + 1), LEASE_SECS, NOW + 10_000)
            .await
            .expect("claim"),
        Claim::HeldByOther,
        "the new claim survived"
    );
}

/// Two purges at once (two timer hosts, or a run that overlaps the next): together they delete
/// each row once, and a row the other took is counted as gone, not as an error.
#[tokio::test]
async fn two_purges_racing_delete_each_row_once() {
    let store = fresh_store("purgerace").await;
    seed_mixed(&store).await;
    let (a, b) = tokio::join!(
        store.purge_expired(at(NOW), 5_000),
        store.purge_expired(at(NOW), 5_000)
    );
    let (a, b) = (a.expect("purge a"), b.expect("purge b"));
    eprintln!("racing purges: {a:?} / {b:?}");
    for report in [&a, &b] {
        assert_eq!(
            report.deleted + report.already_gone + report.changed,
            report.expired,
            "{report:?}"
        );
        assert_eq!(report.changed, 0);
        assert!(!report.more_remaining);
    }
    assert_eq!(a.deleted + b.deleted, EXPIRED_TOTAL, "{a:?} {b:?}");
    assert_eq!(expired_rows(&store).await, 0);
    assert_eq!(all_rows(&store).await.len(), LIVE_TOTAL);
}

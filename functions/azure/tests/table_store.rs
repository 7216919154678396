//! The Table Storage store against Azurite: the core's conformance suite, an 8-task race on one
//! claim, and an 8-task race of whole detectors on one chain ending in one alert.
//!
//! Needs `SNAPWATCH_AZURITE_TABLE_ENDPOINT`: run under tests/servers/with-servers.sh (make test
//! does). Every test uses its own table, so nextest's one-process-per-test runs never collide.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, TimeZone, Utc};
use snapwatch_azure::table::client::{TableAuth, TableClient, AZURITE_ACCOUNT};
use snapwatch_azure::table::TableStore;
use snapwatch_core::engine::Detector;
use snapwatch_core::parse::detect::for_each_record;
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{Claim, StateStore};
use snapwatch_core::{Config, Finding, ParsedEvent};
use snapwatch_testkit::MemorySink;
use std::sync::Arc;

mod azurite;
use azurite::{endpoint, fresh_store};

#[tokio::test]
async fn passes_the_conformance_suite_against_azurite() {
    let store = fresh_store("conformance").await;
    snapwatch_testkit::run_conformance(&store, "azure").await;
    // The same suite against a table that already holds the first run's data: namespacing
    // and key digests must keep the runs apart.
    snapwatch_testkit::run_conformance(&store, "azure-again").await;
}

/// More facts under one resource than one query page holds (1,000 entities): the store must follow
/// the continuation headers, and return each fact once.
#[tokio::test]
async fn loads_a_resource_whose_facts_span_several_query_pages() {
    use snapwatch_core::ports::{ResourceFacts, StoredFact};
    let store = fresh_store("paging").await;
    let resource = "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/default-nsg".to_owned();
    let expires_at = 4_070_908_800 + 86_400;
    let facts: Vec<StoredFact> = (0..1_205)
        .map(|i| StoredFact {
            key: format!("evt-{i}#0"),
            expires_at,
            body: format!("fact {i}"),
        })
        .collect();
    let added = store
        .add_facts(&[ResourceFacts {
            resource: resource.clone(),
            facts: facts.clone(),
        }])
        .await
        .expect("add");
    assert_eq!(added, facts.len());
    let now = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let loaded = store
        .load_facts(std::slice::from_ref(&resource), now)
        .await
        .expect("load");
    assert_eq!(loaded.len(), 1);
    let mut keys: Vec<String> = loaded[0].facts.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), facts.len(), "every fact once, across pages");
    assert_eq!(loaded[0].facts.len(), facts.len());
}

#[tokio::test]
async fn creating_an_existing_table_is_not_an_error() {
    let store = fresh_store("create").await;
    store.client().create_table().await.expect("second create");
}

#[tokio::test]
async fn a_wrong_key_is_a_permanent_error() {
    let client = TableClient::new(
        reqwest::Client::new(),
        endpoint(),
        AZURITE_ACCOUNT,
        "swwrongkey",
        TableAuth::shared_key(AZURITE_ACCOUNT, "d3Jvbmcga2V5").expect("base64"),
    )
    .expect("valid table name");
    let store = TableStore::new(client);
    let err = store
        .load_facts(&["snap-1".to_owned()], Utc::now())
        .await
        .expect_err("Azurite must refuse a bad signature");
    assert!(
        !err.is_retryable(),
        "a refused signature is permanent: {err}"
    );
}

#[tokio::test]
async fn eight_racers_on_one_claim_have_one_winner() {
    let store = Arc::new(fresh_store("claimrace").await);
    let now = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let expires = now.timestamp() + 86_400;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_alert("finding-race", now, 300, expires).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("claim"));
    }
    snapwatch_testkit::assert_single_winner(&outcomes);
    assert!(outcomes
        .iter()
        .all(|c| matches!(c, Claim::Won | Claim::HeldByOther)));
}

fn chain_events() -> Vec<ParsedEvent> {
    let mut events = Vec::new();
    for unit in [
        include_str!("../../../tests/fixtures/azure/functions/chain_batch_a.json"),
        include_str!("../../../tests/fixtures/azure/functions/chain_batch_b.json"),
    ] {
        for_each_record(unit, &mut |outcome| {
            if let Ok(Parsed::Event(event)) = outcome.result {
                events.push(event);
            }
        });
    }
    events
}

#[tokio::test]
async fn eight_detectors_racing_on_one_chain_send_one_alert() {
    let store = fresh_store("chainrace").await;
    let detector = Arc::new(Detector::new(store, Config::default()));
    let sink = MemorySink::new();
    let events = chain_events();
    assert_eq!(
        events.len(),
        5,
        "the chain fixtures hold five usable records"
    );
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap();
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let detector = detector.clone();
        let sink = sink.clone();
        let mut events = events.clone();
        // Each racer sees the chain in its own order.
        let count = events.len();
        events.rotate_left(task % count);
        tasks.push(tokio::spawn(async move {
            for event in &events {
                let findings = detector.process(event, now).await.expect("process");
                detector
                    .deliver(&findings, &sink, now)
                    .await
                    .expect("deliver");
            }
        }));
    }
    for task in tasks {
        task.await.expect("racer");
    }
    let sent = sink.sent();
    let exposed: Vec<&Finding> = sent
        .iter()
        .filter(|f| f.rule == "chain.exposed-restore")
        .collect();
    assert_eq!(exposed.len(), 1, "one chain, one alert: {sent:#?}");
    assert_eq!(sink.attempts(), sent.len(), "no send may happen twice");
}

//! The Firestore store against the real Firestore emulator (started by
//! tests/servers/with-servers.sh): the shared conformance suite and racing handlers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use chrono::{DateTime, Utc};
use snapwatch_core::engine::Detector;
use snapwatch_core::parse::gcp::parse_entry;
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoredFact};
use snapwatch_core::{Config, ParsedEvent};
use snapwatch_testkit::MemorySink;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_store_passes_the_conformance_suite() {
    let Some(store) = common::emulator_store("conformance") else {
        return;
    };
    snapwatch_testkit::run_conformance(&store, &format!("ns{}", common::unique_suffix())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_racing_claims_have_exactly_one_winner() {
    let Some(store) = common::emulator_store("claim_race") else {
        return;
    };
    let store = Arc::new(store);
    let now = DateTime::from_timestamp(4_070_908_800, 0).expect("instant");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .claim_alert("sw-race@slack", now, 300, 4_070_908_800 + 86_400)
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("claim"));
    }
    snapwatch_testkit::assert_single_winner(&outcomes);
    assert!(
        outcomes
            .iter()
            .all(|c| matches!(c, Claim::Won | Claim::HeldByOther)),
        "{outcomes:?}"
    );
}

fn parsed(fixture: &str) -> ParsedEvent {
    match parse_entry(&common::fixture(fixture)) {
        Ok(Parsed::Event(event)) => event,
        other => panic!("{fixture} should parse to an event, got {other:?}"),
    }
}

/// Eight handlers, each holding the whole chain in a different order, race on one store: the
/// chain alerts exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_racing_handlers_on_one_chain_alert_once() {
    let Some(store) = common::emulator_store("chain_race") else {
        return;
    };
    let mut chain = [
        parsed("snapshots_insert_v1.json"),
        parsed("instances_insert_beta_restore.json"),
        parsed("firewalls_insert_no_source_ranges.json"),
    ];
    // The fixtures date from 2024: by the wall clock their facts are past the window, and the
    // store drops wall-clock-expired facts as its TTL policy would. Replay the chain as if it
    // happened in the last hours, keeping the gaps between events.
    let shift = Utc::now() - chain[2].meta.time - chrono::Duration::minutes(10);
    for event in &mut chain {
        event.meta.time += shift;
    }
    let now: DateTime<Utc> = chain[2].meta.time + chrono::Duration::minutes(5);
    let config = Config::from_lookup(|k| {
        (k == snapwatch_core::config::env::MIN_SEVERITY).then(|| "critical".to_string())
    })
    .expect("config");
    let detector = Arc::new(Detector::new(store, config));
    let sink = MemorySink::named("slack");
    let orders: [[usize; 3]; 8] = [
        [0, 1, 2],
        [2, 1, 0],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [1, 0, 2],
        [2, 1, 0],
        [0, 1, 2],
    ];
    let chain = Arc::new(chain);
    let tasks: Vec<_> = orders
        .into_iter()
        .map(|order| {
            let detector = Arc::clone(&detector);
            let sink = sink.clone();
            let chain = Arc::clone(&chain);
            tokio::spawn(async move {
                for index in order {
                    let event = &chain[index];
                    let findings = detector.process(event, now).await?;
                    detector.deliver(&findings, &sink, now).await?;
                }
                Ok::<(), snapwatch_core::engine::EngineError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("processing");
    }
    let sent: Vec<String> = sink
        .sent()
        .iter()
        .map(|f| format!("{} {}", f.rule, f.id))
        .collect();
    assert_eq!(sent.len(), 1, "exactly one alert, got {sent:?}");
    assert!(
        sent[0].starts_with("chain.exposed-restore "),
        "the alert is the exposed restore: {sent:?}"
    );
}

/// A hub (a golden image launched again and again) collects facts well past Firestore's 1 MiB
/// document limit: every write succeeds, the facts load back whole, a redelivery counts 0 and
/// keeps the first body.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_outgrows_one_document_and_loses_nothing() {
    let Some(store) = common::emulator_store("hub") else {
        return;
    };
    let hub = "projects/p/global/images/golden".to_string();
    let body = "x".repeat(48 * 1024);
    let expires_at = 4_070_908_800 + 86_400;
    let facts: Vec<_> = (0..40)
        .map(|i| snapwatch_testkit::fact(&format!("launch-{i}#0"), expires_at, &body))
        .collect();
    // One event per fact, as launches arrive, then one batch of the first ten again.
    for (i, fact) in facts.iter().enumerate() {
        let added = store
            .add_facts(&[ResourceFacts {
                resource: hub.clone(),
                facts: vec![fact.clone()],
            }])
            .await
            .unwrap_or_else(|e| panic!("fact {i} of the hub (about {} KiB stored): {e}", i * 48));
        assert_eq!(added, 1, "fact {i} is new");
    }
    let mut redelivered: Vec<StoredFact> = facts[..10].to_vec();
    for fact in &mut redelivered {
        fact.body = "a later copy".into();
    }
    let again = store
        .add_facts(&[ResourceFacts {
            resource: hub.clone(),
            facts: redelivered,
        }])
        .await
        .expect("redelivery");
    assert_eq!(again, 0, "a redelivery adds nothing");

    let now = DateTime::from_timestamp(4_070_908_800, 0).expect("instant");
    let loaded = store
        .load_facts(std::slice::from_ref(&hub), now)
        .await
        .expect("load");
    assert_eq!(loaded.len(), 1);
    let mut keys: Vec<_> = loaded[0].facts.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    let mut want: Vec<_> = facts.iter().map(|f| f.key.clone()).collect();
    want.sort();
    assert_eq!(keys, want, "every fact of the hub loads back");
    assert!(
        loaded[0].facts.iter().all(|f| f.body == body),
        "the first body of each fact wins"
    );
}

/// A resource's map document as versions before per-fact documents wrote it, stored directly.
async fn write_legacy_document(
    store: &snapwatch_gcp::firestore::FirestoreStore,
    resource: &str,
    facts: &[StoredFact],
) {
    use sha2::{Digest, Sha256};
    let hex = |text: &str| -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut entries = serde_json::Map::new();
    for fact in facts {
        entries.insert(
            format!("f{}", hex(&fact.key)),
            serde_json::json!({ "mapValue": { "fields": {
                "key": { "stringValue": fact.key },
                "expires_at": { "integerValue": fact.expires_at.to_string() },
                "body": { "stringValue": fact.body },
            }}}),
        );
    }
    let client = store.client();
    let name = client.document_name(&store.collections().facts, &hex(resource));
    let write = serde_json::json!({
        "update": {
            "name": name,
            "fields": {
                "resource": { "stringValue": resource },
                "expires_at": { "timestampValue": "2099-02-01T00:00:00Z" },
                "facts": { "mapValue": { "fields": entries } },
            }
        },
        "currentDocument": { "exists": false },
    });
    client.commit(vec![write]).await.expect("legacy document");
}

/// Documents written before facts got their own documents stay readable without a migration,
/// and their facts still count as known.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_map_documents_are_read_and_deduplicated() {
    let Some(store) = common::emulator_store("legacy") else {
        return;
    };
    let resource = "projects/p/global/networks/default".to_string();
    let live = snapwatch_testkit::fact("old-live#0", 4_070_908_800 + 86_400, "first");
    let dead = snapwatch_testkit::fact("old-dead#0", 4_070_908_800 - 1, "dead");
    write_legacy_document(&store, &resource, &[live.clone(), dead]).await;

    let mut again = live.clone();
    again.body = "a later copy".into();
    let fresh = snapwatch_testkit::fact("new#0", 4_070_908_800 + 86_400, "new");
    let added = store
        .add_facts(&[ResourceFacts {
            resource: resource.clone(),
            facts: vec![again, fresh.clone()],
        }])
        .await
        .expect("add beside a legacy document");
    assert_eq!(added, 1, "the fact in the legacy map is not new");

    let now = DateTime::from_timestamp(4_070_908_800, 0).expect("instant");
    let loaded = store
        .load_facts(&[resource.clone(), "other".to_string()], now)
        .await
        .expect("load");
    assert_eq!(loaded.len(), 1);
    let mut facts = loaded[0].facts.clone();
    facts.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        facts,
        vec![fresh, live],
        "both shapes load, the expired fact stays hidden and the first body wins"
    );
}

/// Eight writers add to one hub at once, each its own facts and one shared fact: no write is
/// lost and the shared fact counts new exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_a_hub_lose_nothing_and_count_once() {
    let Some(store) = common::emulator_store("hub_race") else {
        return;
    };
    let store = Arc::new(store);
    let hub = "projects/p/global/images/golden".to_string();
    let expires_at = 4_070_908_800 + 86_400;
    let tasks: Vec<_> = (0..8)
        .map(|writer| {
            let store = Arc::clone(&store);
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut added = 0;
                for i in 0..5 {
                    let mut facts = vec![snapwatch_testkit::fact(
                        &format!("w{writer}-{i}#0"),
                        expires_at,
                        "own",
                    )];
                    if i == 2 {
                        facts.push(snapwatch_testkit::fact("shared#0", expires_at, "shared"));
                    }
                    added += store
                        .add_facts(&[ResourceFacts {
                            resource: hub.clone(),
                            facts,
                        }])
                        .await?;
                }
                Ok::<usize, snapwatch_core::ports::StoreError>(added)
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        added += task.await.expect("task").expect("add");
    }
    assert_eq!(added, 8 * 5 + 1, "every fact counted new exactly once");
    let now = DateTime::from_timestamp(4_070_908_800, 0).expect("instant");
    let loaded = store.load_facts(&[hub], now).await.expect("load");
    assert_eq!(loaded[0].facts.len(), 8 * 5 + 1);
}

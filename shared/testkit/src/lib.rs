//! The conformance suite for the [`StateStore`] port, written once and run by every store.
//!
//! The cases are plain `async fn`s with no runtime dependency: the in-memory and SQLite stores drive
//! them with `pollster`, the cloud stores under tokio against local emulators. Every resource id and
//! finding id starts with the caller's namespace (and the case name), so the suite can run against a
//! shared table that already holds other data, and the cases cannot see each other's items.
//!
//! A failed check panics with a message naming the case and what differed.
//!
//! Beside the suite, the test doubles every crate's tests share: [`MemorySink`] (recording, can
//! fail or stall; it lives in the core so the core's own tests use it too) and [`FaultyStore`].

#![warn(missing_docs)]

mod faults;

pub use faults::{FaultyStore, Op, StoreFault, INJECTED};
pub use snapwatch_core::memory::{MemorySink, SinkFault};

use chrono::{DateTime, Utc};
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoredFact};
use std::collections::BTreeMap;

/// Every case happens at instants relative to this one (2099-01-01T00:00:00Z). It lies in the future
/// on purpose: stores with a real TTL (DynamoDB, Firestore) delete items by wall-clock time, and
/// expiries in the past could vanish mid-test.
const BASE_SECS: i64 = 4_070_908_800;
const DAY_SECS: i64 = 86_400;
/// Expiry for facts and claims that must stay alive for the whole case.
const FAR_EXPIRY: i64 = BASE_SECS + 30 * DAY_SECS;
const LEASE_SECS: i64 = 300;
/// The largest body a store must keep (a fact's serialized observation stays well below this).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// More than the 100 items cloud batch-read APIs accept in one call, so adapters must page.
const MANY_RESOURCES: usize = 160;
/// Facts written to one hub resource (a golden AMI, a default security group): with
/// [`HUB_BODY_BYTES`] each they total about 1.5 MB, well over the 400 KB DynamoDB item and the
/// 1 MiB Firestore document limits, so a store keeping one record per resource must split it.
const HUB_FACTS: usize = 2_500;
/// The body size of one hub fact, about that of a real serialized observation.
const HUB_BODY_BYTES: usize = 600;
/// Facts per `add_facts` call in the hub case: the hub grows over many writes, as in production.
const HUB_FACTS_PER_CALL: usize = 100;

/// Runs every case against `store`. `ns` is a unique prefix (e.g. a random/uuid-ish string from the
/// caller) put in front of every resource id and finding id, so the suite can run against a shared,
/// non-empty table. Panics with a clear message naming the case on failure.
pub async fn run_conformance<S: StateStore>(store: &S, ns: &str) {
    case_add_load_round_trip(store, ns).await;
    case_duplicate_key_is_noop(store, ns).await;
    case_mixed_batch_counts_only_new(store, ns).await;
    case_expired_facts_are_hidden(store, ns).await;
    case_unknown_resources_are_absent(store, ns).await;
    case_load_many_resources(store, ns).await;
    case_large_and_special_bodies(store, ns).await;
    case_awkward_resource_ids(store, ns).await;
    case_hub_keeps_every_fact(store, ns).await;
    case_claim_lifecycle(store, ns).await;
    case_release_allows_reclaim(store, ns).await;
    case_stale_lease_can_be_taken_over(store, ns).await;
    case_sent_alert_stays_sent_after_lease(store, ns).await;
    case_expired_claim_can_be_claimed_again(store, ns).await;
    case_release_of_sent_alert_does_nothing(store, ns).await;
}

/// Checks the outcome of N racers on one finding: exactly one Won, the rest HeldByOther/AlreadySent.
pub fn assert_single_winner(outcomes: &[Claim]) {
    assert!(
        !outcomes.is_empty(),
        "assert_single_winner: no claim outcomes to check"
    );
    let winners = outcomes.iter().filter(|c| **c == Claim::Won).count();
    assert_eq!(
        winners, 1,
        "exactly one racer must win the claim, got {winners} winners in {outcomes:?}"
    );
}

/// Builds a StoredFact with the given key/expiry/body.
pub fn fact(key: &str, expires_at: i64, body: &str) -> StoredFact {
    StoredFact {
        key: key.to_string(),
        expires_at,
        body: body.to_string(),
    }
}

/// Several facts under several resources come back exactly as written.
pub async fn case_add_load_round_trip<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "add_load_round_trip");
    let volume = case.id("vol-0a1b2c3d");
    let snapshot = case.id("snap-0a1b2c3d");
    let instance = case.id("i-0a1b2c3d");
    let batch = vec![
        ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![
                fact("evt-1#0", FAR_EXPIRY, r#"{"kind":"created"}"#),
                fact("evt-2#0", FAR_EXPIRY + 1, r#"{"kind":"shared"}"#),
                fact("evt-3#1", FAR_EXPIRY + 2, r#"{"kind":"restored"}"#),
            ],
        },
        ResourceFacts {
            resource: volume.clone(),
            facts: vec![fact("evt-3#0", FAR_EXPIRY, r#"{"kind":"restored"}"#)],
        },
        ResourceFacts {
            resource: instance.clone(),
            facts: vec![
                fact("evt-4#0", FAR_EXPIRY, r#"{"kind":"uses"}"#),
                fact("evt-5#0", FAR_EXPIRY, r#"{"kind":"ingress"}"#),
            ],
        },
    ];
    let added = case.add(&batch).await;
    case.check_eq(added, 6, "add_facts count of six new facts");

    // Asked in a different order than written: the store may answer in any order.
    let loaded = case.load(&[instance, volume, snapshot], at(0)).await;
    case.check_eq(loaded, expected(&batch), "loaded facts");
}

/// Writing a key that is already stored changes nothing, whatever body the second write carries;
/// the same key under another resource is a different fact.
pub async fn case_duplicate_key_is_noop<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "duplicate_key_is_noop");
    let snapshot = case.id("snap-dup");
    let original = fact("evt-1#0", FAR_EXPIRY, "original body");
    let first = case
        .add(&[ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![original.clone()],
        }])
        .await;
    case.check_eq(first, 1, "count of the first write");

    let second = case
        .add(&[ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![fact("evt-1#0", FAR_EXPIRY + 99, "a different body")],
        }])
        .await;
    case.check_eq(second, 0, "count of a redelivered fact");
    let loaded = case.load(std::slice::from_ref(&snapshot), at(0)).await;
    case.check_eq(
        loaded,
        expected(&[ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![original.clone()],
        }]),
        "facts after a redelivery (the first body must win)",
    );

    // One batch holding the same key twice (an event read twice in one file) stores it once.
    let volume = case.id("vol-dup");
    let twice = case
        .add(&[
            ResourceFacts {
                resource: volume.clone(),
                facts: vec![
                    fact("evt-7#0", FAR_EXPIRY, "first copy"),
                    fact("evt-7#0", FAR_EXPIRY, "first copy"),
                ],
            },
            ResourceFacts {
                resource: volume.clone(),
                facts: vec![fact("evt-7#0", FAR_EXPIRY, "first copy")],
            },
        ])
        .await;
    case.check_eq(twice, 1, "count of a batch holding one key twice");

    // Keys are unique per resource: one event yields the same key under every resource it touches.
    let other = case.id("snap-dup-other");
    let elsewhere = case
        .add(&[ResourceFacts {
            resource: other.clone(),
            facts: vec![original.clone()],
        }])
        .await;
    case.check_eq(elsewhere, 1, "count of a known key under another resource");
    let loaded = case
        .load(&[snapshot.clone(), volume.clone(), other.clone()], at(0))
        .await;
    case.check_eq(
        loaded,
        expected(&[
            ResourceFacts {
                resource: snapshot,
                facts: vec![original.clone()],
            },
            ResourceFacts {
                resource: volume,
                facts: vec![fact("evt-7#0", FAR_EXPIRY, "first copy")],
            },
            ResourceFacts {
                resource: other,
                facts: vec![original],
            },
        ]),
        "facts after duplicate writes",
    );
}

/// A batch mixing stored and new keys reports only the new ones.
pub async fn case_mixed_batch_counts_only_new<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "mixed_batch_counts_only_new");
    let snapshot = case.id("snap-mixed");
    let volume = case.id("vol-mixed");
    let first = vec![ResourceFacts {
        resource: snapshot.clone(),
        facts: vec![
            fact("evt-1#0", FAR_EXPIRY, "one"),
            fact("evt-2#0", FAR_EXPIRY, "two"),
        ],
    }];
    case.check_eq(case.add(&first).await, 2, "count of the first batch");

    let second = vec![
        ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![
                fact("evt-1#0", FAR_EXPIRY, "one"),
                fact("evt-3#0", FAR_EXPIRY, "three"),
            ],
        },
        ResourceFacts {
            resource: volume.clone(),
            facts: vec![fact("evt-4#0", FAR_EXPIRY, "four")],
        },
        ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![fact("evt-2#0", FAR_EXPIRY, "two")],
        },
    ];
    case.check_eq(
        case.add(&second).await,
        2,
        "count of a batch with two new and two known keys",
    );

    let loaded = case.load(&[snapshot.clone(), volume.clone()], at(0)).await;
    case.check_eq(
        loaded,
        expected(&[
            ResourceFacts {
                resource: snapshot,
                facts: vec![
                    fact("evt-1#0", FAR_EXPIRY, "one"),
                    fact("evt-2#0", FAR_EXPIRY, "two"),
                    fact("evt-3#0", FAR_EXPIRY, "three"),
                ],
            },
            ResourceFacts {
                resource: volume,
                facts: vec![fact("evt-4#0", FAR_EXPIRY, "four")],
            },
        ]),
        "facts after the mixed batch",
    );
}

/// `load_facts` returns only facts with `expires_at > now`; a resource whose facts have all expired
/// is absent. The filter uses the `now` passed in, not the wall clock.
pub async fn case_expired_facts_are_hidden<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "expired_facts_are_hidden");
    let now = at(DAY_SECS);
    let now_secs = now.timestamp();
    let snapshot = case.id("snap-expiring");
    let stale = case.id("snap-stale");
    let past = fact("evt-past#0", now_secs - 1, "expired a second ago");
    let boundary = fact("evt-boundary#0", now_secs, "expires exactly now");
    let live = fact("evt-live#0", now_secs + 1, "expires in a second");
    let far = fact("evt-far#0", FAR_EXPIRY, "expires in a month");
    let old = fact("evt-old#0", now_secs - 3600, "expired an hour ago");
    let batch = vec![
        ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![past.clone(), boundary.clone(), live.clone(), far.clone()],
        },
        ResourceFacts {
            resource: stale.clone(),
            facts: vec![old.clone()],
        },
    ];
    case.check_eq(case.add(&batch).await, 5, "count of five new facts");

    let loaded = case.load(&[snapshot.clone(), stale.clone()], now).await;
    case.check_eq(
        loaded,
        expected(&[ResourceFacts {
            resource: snapshot.clone(),
            facts: vec![live.clone(), far.clone()],
        }]),
        "facts at `now` (expires_at <= now hidden, all-expired resource absent)",
    );

    // An hour and a bit earlier, every fact was still alive.
    let earlier = case
        .load(&[snapshot.clone(), stale.clone()], at(DAY_SECS - 3601))
        .await;
    case.check_eq(earlier, expected(&batch), "facts before any had expired");
}

/// Resources that hold no facts are absent from the result, whatever else is asked for.
pub async fn case_unknown_resources_are_absent<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "unknown_resources_are_absent");
    let known = case.id("snap-known");
    let batch = vec![ResourceFacts {
        resource: known.clone(),
        facts: vec![fact("evt-1#0", FAR_EXPIRY, "known")],
    }];
    case.check_eq(case.add(&batch).await, 1, "count of one new fact");

    let loaded = case
        .load(
            &[
                case.id("snap-unknown-a"),
                known.clone(),
                case.id("snap-unknown-b"),
            ],
            at(0),
        )
        .await;
    case.check_eq(loaded, expected(&batch), "known among unknown resources");

    let none = case.load(&[case.id("snap-unknown-c")], at(0)).await;
    case.check_eq(none, Loaded::new(), "only unknown resources");
    let empty = case.load(&[], at(0)).await;
    case.check_eq(empty, Loaded::new(), "no resources asked for");
}

/// One load of more resources than a cloud batch call takes; ids that are prefixes of each other
/// (`snap-1`, `snap-10`, `snap-100`) must not leak facts into each other.
pub async fn case_load_many_resources<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "load_many_resources");
    let batch: Vec<ResourceFacts> = (0..MANY_RESOURCES)
        .map(|i| ResourceFacts {
            resource: case.id(&format!("snap-{i}")),
            facts: (0..=i % 3)
                .map(|j| {
                    fact(
                        &format!("evt-{i}#{j}"),
                        FAR_EXPIRY,
                        &format!("fact {j} of {i}"),
                    )
                })
                .collect(),
        })
        .collect();
    let total: usize = batch.iter().map(|rf| rf.facts.len()).sum();
    case.check_eq(
        case.add(&batch).await,
        total,
        "count of facts in the big batch",
    );

    // Every known id, with unknown ones interleaved, in one call.
    let mut asked: Vec<String> = Vec::new();
    for (i, rf) in batch.iter().enumerate() {
        asked.push(rf.resource.clone());
        if i % 8 == 0 {
            asked.push(case.id(&format!("snap-missing-{i}")));
        }
    }
    let loaded = case.load(&asked, at(0)).await;
    case.check_eq(loaded.len(), MANY_RESOURCES, "number of resources loaded");
    case.check_eq(loaded, expected(&batch), "facts of many resources");
}

/// Bodies are opaque bytes to the store: 64 KiB, unicode, quotes, newlines, surrounding spaces all
/// come back byte-exact.
pub async fn case_large_and_special_bodies<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "large_and_special_bodies");
    let snapshot = case.id("snap-bodies");
    let special = concat!(
        "{\"description\":\"it's a \\\"quoted\\\" value\"}\n",
        "line two\r\nline three\ttabbed \\ backslash `tick` 'single' \"double\"\n",
        "ünïcödé 日本語 Ελληνικά 🚀🔥 e\u{0301} \u{200b}zero-width\n"
    );
    let padded = "  leading and trailing spaces  \n\n";
    let batch = vec![ResourceFacts {
        resource: snapshot.clone(),
        facts: vec![
            fact("evt-special#0", FAR_EXPIRY, special),
            fact("evt-padded#0", FAR_EXPIRY, padded),
            fact(
                "evt-large#0",
                FAR_EXPIRY,
                &large_body(special, MAX_BODY_BYTES),
            ),
        ],
    }];
    case.check_eq(case.add(&batch).await, 3, "count of three new facts");
    let loaded = case.load(std::slice::from_ref(&snapshot), at(0)).await;
    case.check_eq(loaded, expected(&batch), "bodies");
}

/// Real resource ids (Azure resource ids, RDS ARNs, GCP paths) carry `/`, `:`, `#`, `'`, spaces and
/// upper case; they come back exactly as written, and ids differing only in case stay apart.
pub async fn case_awkward_resource_ids<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "awkward_resource_ids");
    let locals = [
        "arn:aws:rds:us-east-1:123456789012:snapshot:rds:Prod-DB-2024-01-01-00-05",
        "arn:aws:rds:eu-west-1:123456789012:cluster-snapshot:Nightly Backup",
        "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/Prod-RG/providers/Microsoft.Compute/snapshots/Snap #1 it's",
        "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/Prod-RG/providers/Microsoft.Network/networkSecurityGroups/Web-NSG/securityRules/Allow RDP",
        "projects/my-project/global/snapshots/nightly-snap",
        "Mixed Case Id",
        "mixed case id",
    ];
    let batch: Vec<ResourceFacts> = locals
        .iter()
        .enumerate()
        .map(|(i, local)| ResourceFacts {
            resource: case.id(local),
            // The body names its resource, so a mix-up between ids shows in the comparison.
            facts: vec![fact(&format!("evt-{i}#0"), FAR_EXPIRY, local)],
        })
        .collect();
    case.check_eq(
        case.add(&batch).await,
        locals.len(),
        "count of one fact per id",
    );
    let asked: Vec<String> = batch.iter().map(|rf| rf.resource.clone()).collect();
    let loaded = case.load(&asked, at(0)).await;
    case.check_eq(loaded, expected(&batch), "facts under awkward ids");
}

/// A hub resource linked to thousands of others receives, over many writes, facts totalling well
/// over a cloud record's size limit: every fact loads back, a redelivered fact (early or late, so
/// wherever the store put it) still counts 0 new, and expiry still hides the expired ones.
pub async fn case_hub_keeps_every_fact<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "hub_keeps_every_fact");
    let hub = case.id("ami-golden");
    let neighbour = case.id("i-neighbour");
    // Every tenth fact expires after a day, the rest stay alive for the whole case.
    let expiry = |i: usize| {
        if i.is_multiple_of(10) {
            BASE_SECS + DAY_SECS
        } else {
            FAR_EXPIRY
        }
    };
    let all: Vec<StoredFact> = (0..HUB_FACTS)
        .map(|i| {
            let prefix = format!("fact {i} of the hub ");
            fact(
                &format!("evt-{i}#0"),
                expiry(i),
                &large_body(&prefix, HUB_BODY_BYTES),
            )
        })
        .collect();
    let mut added = 0;
    for (call, chunk) in all.chunks(HUB_FACTS_PER_CALL).enumerate() {
        // An ordinary resource rides along in the same batch, as an instance launched from the AMI.
        let batch = vec![
            ResourceFacts {
                resource: hub.clone(),
                facts: chunk.to_vec(),
            },
            ResourceFacts {
                resource: neighbour.clone(),
                facts: vec![fact(&format!("evt-n{call}#0"), FAR_EXPIRY, "neighbour")],
            },
        ];
        added += case.add(&batch).await;
    }
    let calls = HUB_FACTS.div_ceil(HUB_FACTS_PER_CALL);
    case.check_eq(added, HUB_FACTS + calls, "count of every new hub fact");

    let neighbour_facts: Vec<StoredFact> = (0..calls)
        .map(|call| fact(&format!("evt-n{call}#0"), FAR_EXPIRY, "neighbour"))
        .collect();
    let everything = expected(&[
        ResourceFacts {
            resource: hub.clone(),
            facts: all.clone(),
        },
        ResourceFacts {
            resource: neighbour.clone(),
            facts: neighbour_facts.clone(),
        },
    ]);
    let asked = [hub.clone(), neighbour.clone()];
    let loaded = case.load(&asked, at(0)).await;
    case.check_eq(
        loaded.get(&hub).map(BTreeMap::len),
        Some(HUB_FACTS),
        "number of hub facts loaded",
    );
    case.check_eq(loaded, everything.clone(), "facts of the hub");

    // Redeliveries of the first, a middle and the last fact, with other bodies: none is new.
    let redelivered: Vec<StoredFact> = [0, HUB_FACTS / 2 + 1, HUB_FACTS - 1]
        .iter()
        .map(|&i| fact(&format!("evt-{i}#0"), FAR_EXPIRY + 7, "a redelivered body"))
        .collect();
    let again = case
        .add(&[ResourceFacts {
            resource: hub.clone(),
            facts: redelivered,
        }])
        .await;
    case.check_eq(again, 0, "count of redelivered hub facts");
    // A redelivery mixed with one genuinely new fact counts just the new one.
    let extra = fact("evt-extra#0", FAR_EXPIRY, "one more");
    let mixed = case
        .add(&[ResourceFacts {
            resource: hub.clone(),
            facts: vec![all[1].clone(), extra.clone()],
        }])
        .await;
    case.check_eq(mixed, 1, "count of a redelivery plus one new hub fact");

    let mut with_extra = everything;
    if let Some(slot) = with_extra.get_mut(&hub) {
        slot.insert(extra.key.clone(), extra.clone());
    }
    let reloaded = case.load(&asked, at(0)).await;
    case.check_eq(
        reloaded,
        with_extra,
        "hub facts after redeliveries (first bodies win)",
    );

    // A day later the short-lived tenth is hidden; the rest (and the extra fact) remain.
    let later = at(DAY_SECS);
    let mut alive: Vec<StoredFact> = all
        .iter()
        .filter(|f| f.expires_at > later.timestamp())
        .cloned()
        .collect();
    alive.push(extra);
    let after_expiry = case.load(&asked, later).await;
    case.check_eq(
        after_expiry,
        expected(&[
            ResourceFacts {
                resource: hub,
                facts: alive,
            },
            ResourceFacts {
                resource: neighbour,
                facts: neighbour_facts,
            },
        ]),
        "hub facts a day later (expired ones hidden)",
    );
}

/// Won → HeldByOther within the lease → mark_alert_sent → AlreadySent.
pub async fn case_claim_lifecycle<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "claim_lifecycle");
    let finding = case.id("finding");
    let first = case.claim(&finding, at(0), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(first, Claim::Won, "first claim");
    let racer = case.claim(&finding, at(10), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(racer, Claim::HeldByOther, "claim within the lease");
    case.mark_sent(&finding).await;
    let after = case.claim(&finding, at(20), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(after, Claim::AlreadySent, "claim after mark_alert_sent");
}

/// A released claim (failed delivery) can be won again at once, within the old lease.
pub async fn case_release_allows_reclaim<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "release_allows_reclaim");
    let finding = case.id("finding");
    let first = case.claim(&finding, at(0), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(first, Claim::Won, "first claim");
    case.release(&finding).await;
    let retry = case.claim(&finding, at(1), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(retry, Claim::Won, "claim after release");
    let racer = case.claim(&finding, at(2), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(racer, Claim::HeldByOther, "claim while the retry holds it");
}

/// A claim never marked sent (its holder crashed) can be taken over once its lease has run out,
/// and the taker then holds a fresh lease.
pub async fn case_stale_lease_can_be_taken_over<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "stale_lease_can_be_taken_over");
    let finding = case.id("finding");
    let first = case.claim(&finding, at(0), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(first, Claim::Won, "first claim");
    let early = case
        .claim(&finding, at(LEASE_SECS - 1), LEASE_SECS, FAR_EXPIRY)
        .await;
    case.check_eq(
        early,
        Claim::HeldByOther,
        "claim a second before the lease ends",
    );
    let takeover = case
        .claim(&finding, at(LEASE_SECS + 1), LEASE_SECS, FAR_EXPIRY)
        .await;
    case.check_eq(takeover, Claim::Won, "claim after the lease ran out");
    let racer = case
        .claim(&finding, at(LEASE_SECS + 2), LEASE_SECS, FAR_EXPIRY)
        .await;
    case.check_eq(
        racer,
        Claim::HeldByOther,
        "claim right after the takeover (the taker's lease must start anew)",
    );
}

/// Delivered stays delivered, long after the lease.
pub async fn case_sent_alert_stays_sent_after_lease<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "sent_alert_stays_sent_after_lease");
    let finding = case.id("finding");
    let first = case.claim(&finding, at(0), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(first, Claim::Won, "first claim");
    case.mark_sent(&finding).await;
    let after_lease = case
        .claim(&finding, at(LEASE_SECS + 1), LEASE_SECS, FAR_EXPIRY)
        .await;
    case.check_eq(after_lease, Claim::AlreadySent, "claim after the lease");
    let much_later = case
        .claim(&finding, at(DAY_SECS), LEASE_SECS, FAR_EXPIRY)
        .await;
    case.check_eq(much_later, Claim::AlreadySent, "claim a day later");
}

/// A claim whose `expires_at <= now` is gone: it can be claimed again, even within its lease and
/// even if it was sent (the chain window is over, so this is a new chain).
pub async fn case_expired_claim_can_be_claimed_again<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "expired_claim_can_be_claimed_again");
    let short_expiry = BASE_SECS + 60;

    let held = case.id("finding-held");
    let first = case.claim(&held, at(0), LEASE_SECS, short_expiry).await;
    case.check_eq(first, Claim::Won, "first claim of the held finding");
    let before = case.claim(&held, at(59), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(before, Claim::HeldByOther, "claim just before expiry");
    let at_expiry = case.claim(&held, at(60), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(
        at_expiry,
        Claim::Won,
        "claim at expires_at (inside the lease, but expired)",
    );

    let sent = case.id("finding-sent");
    let first = case.claim(&sent, at(0), LEASE_SECS, short_expiry).await;
    case.check_eq(first, Claim::Won, "first claim of the sent finding");
    case.mark_sent(&sent).await;
    let before = case.claim(&sent, at(59), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(before, Claim::AlreadySent, "sent claim just before expiry");
    let at_expiry = case.claim(&sent, at(60), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(at_expiry, Claim::Won, "sent claim at expires_at");
}

/// Releasing a delivered alert must not let it be sent again.
pub async fn case_release_of_sent_alert_does_nothing<S: StateStore>(store: &S, ns: &str) {
    let case = Case::new(store, ns, "release_of_sent_alert_does_nothing");
    let finding = case.id("finding");
    let first = case.claim(&finding, at(0), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(first, Claim::Won, "first claim");
    case.mark_sent(&finding).await;
    case.release(&finding).await;
    let after = case.claim(&finding, at(1), LEASE_SECS, FAR_EXPIRY).await;
    case.check_eq(
        after,
        Claim::AlreadySent,
        "claim after releasing a sent alert",
    );
}

/// Loaded facts normalized for order-insensitive comparison: resource → key → fact.
type Loaded = BTreeMap<String, BTreeMap<String, StoredFact>>;

/// The instant `offset_secs` after the suite's base time.
fn at(offset_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(BASE_SECS + offset_secs, 0)
        .unwrap_or_else(|| panic!("test instant base+{offset_secs}s is outside chrono's range"))
}

/// What a load must return for facts that were all written once and are all alive.
fn expected(batch: &[ResourceFacts]) -> Loaded {
    let mut out = Loaded::new();
    for rf in batch {
        let slot = out.entry(rf.resource.clone()).or_default();
        for f in &rf.facts {
            slot.entry(f.key.clone()).or_insert_with(|| f.clone());
        }
    }
    out
}

/// A body of exactly `len` bytes: `pattern` repeated, padded with ASCII.
fn large_body(pattern: &str, len: usize) -> String {
    let mut body = String::with_capacity(len);
    while body.len() + pattern.len() <= len {
        body.push_str(pattern);
    }
    while body.len() < len {
        body.push('x');
    }
    body
}

/// One case's view of the store: namespaced ids, and calls that panic naming the case.
struct Case<'a, S> {
    store: &'a S,
    ns: &'a str,
    name: &'static str,
}

impl<'a, S: StateStore> Case<'a, S> {
    fn new(store: &'a S, ns: &'a str, name: &'static str) -> Self {
        Case { store, ns, name }
    }

    /// A resource or finding id private to this case and this run.
    fn id(&self, local: &str) -> String {
        format!("{}.{}.{}", self.ns, self.name, local)
    }

    fn check_eq<T: PartialEq + std::fmt::Debug>(&self, actual: T, wanted: T, what: &str) {
        assert!(
            actual == wanted,
            "conformance case `{}`: {what}: got\n{actual:#?}\nbut expected\n{wanted:#?}",
            self.name
        );
    }

    async fn add(&self, batch: &[ResourceFacts]) -> usize {
        self.store
            .add_facts(batch)
            .await
            .unwrap_or_else(|e| panic!("conformance case `{}`: add_facts failed: {e:?}", self.name))
    }

    /// Loads and normalizes, failing on a resource or key returned twice (paging bugs).
    async fn load(&self, resources: &[String], now: DateTime<Utc>) -> Loaded {
        let result = self
            .store
            .load_facts(resources, now)
            .await
            .unwrap_or_else(|e| {
                panic!("conformance case `{}`: load_facts failed: {e:?}", self.name)
            });
        let mut out = Loaded::new();
        for rf in result {
            assert!(
                rf.facts.iter().all(|f| f.expires_at > now.timestamp()),
                "conformance case `{}`: load_facts returned an expired fact under {:?}: {:?}",
                self.name,
                rf.resource,
                rf.facts
            );
            let slot = out.entry(rf.resource.clone()).or_default();
            assert!(
                slot.is_empty(),
                "conformance case `{}`: load_facts returned resource {:?} twice",
                self.name,
                rf.resource
            );
            for f in rf.facts {
                let key = f.key.clone();
                assert!(
                    slot.insert(key.clone(), f).is_none(),
                    "conformance case `{}`: load_facts returned key {key:?} twice under {:?}",
                    self.name,
                    rf.resource
                );
            }
        }
        out
    }

    async fn claim(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Claim {
        self.store
            .claim_alert(finding_id, now, lease_secs, expires_at)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "conformance case `{}`: claim_alert({finding_id:?}) failed: {e:?}",
                    self.name
                )
            })
    }

    async fn mark_sent(&self, finding_id: &str) {
        self.store
            .mark_alert_sent(finding_id)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "conformance case `{}`: mark_alert_sent({finding_id:?}) failed: {e:?}",
                    self.name
                )
            });
    }

    async fn release(&self, finding_id: &str) {
        self.store
            .release_alert(finding_id)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "conformance case `{}`: release_alert({finding_id:?}) failed: {e:?}",
                    self.name
                )
            });
    }
}

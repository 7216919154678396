//! The shared doubles: the fault-injecting store does exactly the faults it is given, and the
//! ports' forwarding impls (`&S`, `Arc<S>`) are the store they wrap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, Utc};
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{ResourceFacts, StateStore, StoreError};
use snapwatch_testkit::{fact, run_conformance, FaultyStore, Op, StoreFault, INJECTED};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

fn batch(resource: &str, key: &str) -> Vec<ResourceFacts> {
    vec![ResourceFacts {
        resource: resource.into(),
        facts: vec![fact(key, i64::MAX, "body")],
    }]
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_000, 0).unwrap()
}

/// Polls a few times: `None` when the future is still pending (it stalls).
fn poll_briefly<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

#[test]
fn a_faultless_wrapper_and_the_forwarding_impls_pass_conformance() {
    let store = FaultyStore::new();
    pollster::block_on(run_conformance(&store, "faulty"));
    let memory = MemoryStore::new();
    pollster::block_on(run_conformance(&&memory, "borrowed"));
    let shared = Arc::new(MemoryStore::new());
    pollster::block_on(run_conformance(&shared, "shared"));
}

#[test]
fn the_first_calls_fail_transiently_then_the_store_answers() {
    let store = FaultyStore::new();
    store.fail(Op::AddFacts, ..2, StoreFault::Unavailable);
    pollster::block_on(async {
        for _ in 0..2 {
            match store.add_facts(&batch("snap-1", "e#0")).await {
                Err(e @ StoreError::Unavailable { .. }) => {
                    assert!(e.to_string().contains(INJECTED), "{e}")
                }
                other => panic!("expected an injected outage, got {other:?}"),
            }
        }
        assert_eq!(store.add_facts(&batch("snap-1", "e#0")).await.unwrap(), 1);
        // Other operations were never affected.
        let loaded = store.load_facts(&["snap-1".into()], now()).await.unwrap();
        assert_eq!(loaded.len(), 1);
    });
    assert_eq!(store.calls(Op::AddFacts), 3);
    assert_eq!(store.calls(Op::LoadFacts), 1);
}

#[test]
fn a_permanent_fault_hits_only_its_calls() {
    let store = FaultyStore::new();
    store.fail(Op::ClaimAlert, 1..=1, StoreFault::Permanent);
    pollster::block_on(async {
        assert!(store.claim_alert("f", now(), 60, i64::MAX).await.is_ok());
        let second = store.claim_alert("f", now(), 60, i64::MAX).await;
        assert!(
            matches!(second, Err(StoreError::Permanent { .. })),
            "{second:?}"
        );
        assert!(store.claim_alert("f", now(), 60, i64::MAX).await.is_ok());
    });
}

#[test]
fn calls_after_the_answered_ones_stall() {
    let store = FaultyStore::new();
    store.fail(Op::AddFacts, 2.., StoreFault::Stall);
    for i in 0..2 {
        let answered = poll_briefly(store.add_facts(&batch("snap-1", &format!("e{i}#0"))));
        assert!(matches!(answered, Some(Ok(1))), "{answered:?}");
    }
    assert!(poll_briefly(store.add_facts(&batch("snap-1", "e9#0"))).is_none());
    assert_eq!(store.calls(Op::AddFacts), 3);
}

#[test]
fn a_store_that_is_down_fails_everything_until_it_is_back() {
    let store = Arc::new(FaultyStore::new());
    let handle = Arc::clone(&store);
    handle.set_down(true);
    pollster::block_on(async {
        assert!(store.add_facts(&batch("snap-1", "e#0")).await.is_err());
        assert!(store.load_facts(&[], now()).await.is_err());
        assert!(store.claim_alert("f", now(), 60, i64::MAX).await.is_err());
        assert!(store.mark_alert_sent("f").await.is_err());
        assert!(store.release_alert("f").await.is_err());
        handle.set_down(false);
        assert_eq!(store.add_facts(&batch("snap-1", "e#0")).await.unwrap(), 1);
    });
    assert_eq!(handle.calls(Op::ReleaseAlert), 1);
}

#[test]
fn heal_clears_every_fault() {
    let store = FaultyStore::wrapping(MemoryStore::new());
    store.fail(Op::LoadFacts, .., StoreFault::Unavailable);
    store.set_down(true);
    store.heal();
    assert!(pollster::block_on(store.load_facts(&[], now())).is_ok());
    assert_eq!(store.inner().fact_count(), 0);
}

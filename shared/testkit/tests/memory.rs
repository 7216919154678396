//! The reference store passes the suite, also when the table already holds another run's data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::Claim;
use snapwatch_testkit::{assert_single_winner, fact, run_conformance};

#[test]
fn memory_store_passes_conformance() {
    let store = MemoryStore::new();
    pollster::block_on(run_conformance(&store, "run-a"));
}

#[test]
fn memory_store_passes_conformance_on_a_shared_non_empty_store() {
    let store = MemoryStore::new();
    pollster::block_on(run_conformance(&store, "run-a"));
    let after_first = store.fact_count();
    pollster::block_on(run_conformance(&store, "run-b"));
    // The second run wrote as many facts again, under its own namespace, none merged with run-a's.
    assert_eq!(store.fact_count(), 2 * after_first);
}

#[test]
fn single_winner_accepts_one_won_among_losers() {
    assert_single_winner(&[
        Claim::HeldByOther,
        Claim::Won,
        Claim::AlreadySent,
        Claim::HeldByOther,
    ]);
    assert_single_winner(&[Claim::Won]);
}

#[test]
#[should_panic(expected = "got 2 winners")]
fn single_winner_rejects_two_winners() {
    assert_single_winner(&[Claim::Won, Claim::HeldByOther, Claim::Won]);
}

#[test]
#[should_panic(expected = "got 0 winners")]
fn single_winner_rejects_no_winner() {
    assert_single_winner(&[Claim::HeldByOther, Claim::AlreadySent]);
}

#[test]
#[should_panic(expected = "no claim outcomes")]
fn single_winner_rejects_no_outcomes() {
    assert_single_winner(&[]);
}

#[test]
fn fact_builds_the_stored_fact() {
    let built = fact("evt-1#0", 42, "{\"a\":1}");
    assert_eq!(built.key, "evt-1#0");
    assert_eq!(built.expires_at, 42);
    assert_eq!(built.body, "{\"a\":1}");
}

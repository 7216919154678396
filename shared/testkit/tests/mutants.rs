//! The suite must catch broken stores: each mutant wraps the reference store with one typical
//! adapter bug, and the case meant to catch it must panic naming itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, Utc};
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoreError};
use snapwatch_testkit as kit;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    /// Returns facts regardless of expiry (filters against the wall clock or not at all).
    IgnoresExpiry,
    /// Counts every fact written, not only the new ones.
    CountsDuplicates,
    /// Reads only the first page of a batch read (cloud APIs cap at 100 keys).
    ReadsOnePage,
    /// Lets every caller win (no conditional write).
    AlwaysWins,
    /// Never records a claim as sent, so it lapses with the lease.
    NeverRecordsSent,
    /// Lower-cases resource ids (a case-insensitive key).
    FoldsCase,
    /// Truncates bodies (a column or attribute too small).
    TruncatesBodies,
    /// Deletes the claim on release even after it was sent.
    ReleasesSent,
}

struct Mutant {
    inner: MemoryStore,
    bug: Bug,
}

impl Mutant {
    fn new(bug: Bug) -> Self {
        Mutant {
            inner: MemoryStore::new(),
            bug,
        }
    }
}

impl StateStore for Mutant {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        let mut batch = batch.to_vec();
        for rf in &mut batch {
            if self.bug == Bug::FoldsCase {
                rf.resource = rf.resource.to_lowercase();
            }
            if self.bug == Bug::TruncatesBodies {
                for f in &mut rf.facts {
                    f.body = f.body.chars().take(16_000).collect();
                }
            }
        }
        let added = self.inner.add_facts(&batch).await?;
        if self.bug == Bug::CountsDuplicates {
            return Ok(batch.iter().map(|rf| rf.facts.len()).sum());
        }
        Ok(added)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let mut asked = resources.to_vec();
        if self.bug == Bug::ReadsOnePage {
            asked.truncate(100);
        }
        if self.bug == Bug::FoldsCase {
            // Answers under the folded id, as a case-insensitive backend would.
            asked = asked.iter().map(|r| r.to_lowercase()).collect();
            asked.dedup();
        }
        let now = if self.bug == Bug::IgnoresExpiry {
            DateTime::<Utc>::MIN_UTC
        } else {
            now
        };
        self.inner.load_facts(&asked, now).await
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let outcome = self
            .inner
            .claim_alert(finding_id, now, lease_secs, expires_at)
            .await?;
        if self.bug == Bug::AlwaysWins {
            return Ok(Claim::Won);
        }
        Ok(outcome)
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        if self.bug == Bug::NeverRecordsSent {
            return Ok(());
        }
        self.inner.mark_alert_sent(finding_id).await
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        if self.bug == Bug::ReleasesSent {
            // The reference store cannot delete a sent claim, so overwrite it with one that has
            // already expired: the next claim wins, as if the row had been deleted.
            let end_of_time = DateTime::<Utc>::MAX_UTC;
            self.inner
                .claim_alert(finding_id, end_of_time, 0, i64::MIN)
                .await?;
            return Ok(());
        }
        self.inner.release_alert(finding_id).await
    }
}

/// Drives one case to completion and returns the panic message it produced, if any.
fn failure_of(case: impl Future<Output = ()>) -> Option<String> {
    let payload = catch_unwind(AssertUnwindSafe(|| pollster::block_on(case))).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

fn assert_caught(bug: Bug, case_name: &str, message: Option<String>) {
    let message = message.unwrap_or_else(|| panic!("{bug:?} was not caught by {case_name}"));
    assert!(
        message.contains(&format!("conformance case `{case_name}`")),
        "{bug:?}: panic does not name case {case_name}: {message}"
    );
}

#[test]
fn catches_a_store_that_ignores_expiry() {
    let msg = failure_of(kit::case_expired_facts_are_hidden(
        &Mutant::new(Bug::IgnoresExpiry),
        "m",
    ));
    assert_caught(Bug::IgnoresExpiry, "expired_facts_are_hidden", msg);
}

#[test]
fn catches_a_store_that_counts_duplicates() {
    let msg = failure_of(kit::case_duplicate_key_is_noop(
        &Mutant::new(Bug::CountsDuplicates),
        "m",
    ));
    assert_caught(Bug::CountsDuplicates, "duplicate_key_is_noop", msg);
    let msg = failure_of(kit::case_mixed_batch_counts_only_new(
        &Mutant::new(Bug::CountsDuplicates),
        "m",
    ));
    assert_caught(Bug::CountsDuplicates, "mixed_batch_counts_only_new", msg);
}

#[test]
fn catches_a_store_that_reads_one_page() {
    let msg = failure_of(kit::case_load_many_resources(
        &Mutant::new(Bug::ReadsOnePage),
        "m",
    ));
    assert_caught(Bug::ReadsOnePage, "load_many_resources", msg);
}

#[test]
fn catches_a_store_where_everyone_wins() {
    let msg = failure_of(kit::case_claim_lifecycle(
        &Mutant::new(Bug::AlwaysWins),
        "m",
    ));
    assert_caught(Bug::AlwaysWins, "claim_lifecycle", msg);
}

#[test]
fn catches_a_store_that_never_records_sent() {
    let msg = failure_of(kit::case_sent_alert_stays_sent_after_lease(
        &Mutant::new(Bug::NeverRecordsSent),
        "m",
    ));
    assert_caught(
        Bug::NeverRecordsSent,
        "sent_alert_stays_sent_after_lease",
        msg,
    );
}

#[test]
fn catches_a_store_that_folds_case() {
    let msg = failure_of(kit::case_awkward_resource_ids(
        &Mutant::new(Bug::FoldsCase),
        "m",
    ));
    assert_caught(Bug::FoldsCase, "awkward_resource_ids", msg);
}

#[test]
fn catches_a_store_that_truncates_bodies() {
    let msg = failure_of(kit::case_large_and_special_bodies(
        &Mutant::new(Bug::TruncatesBodies),
        "m",
    ));
    assert_caught(Bug::TruncatesBodies, "large_and_special_bodies", msg);
}

#[test]
fn catches_a_store_that_releases_sent_alerts() {
    let msg = failure_of(kit::case_release_of_sent_alert_does_nothing(
        &Mutant::new(Bug::ReleasesSent),
        "m",
    ));
    assert_caught(Bug::ReleasesSent, "release_of_sent_alert_does_nothing", msg);
}

#[test]
fn run_conformance_runs_the_claim_cases_too() {
    let msg = failure_of(kit::run_conformance(&Mutant::new(Bug::AlwaysWins), "m"));
    assert_caught(Bug::AlwaysWins, "claim_lifecycle", msg);
}

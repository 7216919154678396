//! A [`StateStore`] wrapper that injects faults, for testing how handlers meet a failing store.

use chrono::{DateTime, Utc};
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoreError};
use std::ops::{Bound, RangeBounds};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One operation of the [`StateStore`] port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`StateStore::add_facts`].
    AddFacts,
    /// [`StateStore::load_facts`].
    LoadFacts,
    /// [`StateStore::claim_alert`].
    ClaimAlert,
    /// [`StateStore::mark_alert_sent`].
    MarkAlertSent,
    /// [`StateStore::release_alert`].
    ReleaseAlert,
}

impl Op {
    const ALL: [Op; 5] = [
        Op::AddFacts,
        Op::LoadFacts,
        Op::ClaimAlert,
        Op::MarkAlertSent,
        Op::ReleaseAlert,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What a faulty call does instead of reaching the wrapped store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// Fails with [`StoreError::Unavailable`] (throttled, 503, timeout).
    Unavailable,
    /// Fails with [`StoreError::Permanent`] (access denied, missing table).
    Permanent,
    /// Never answers, like a table that stopped responding mid-batch.
    Stall,
}

/// The message of every injected [`StoreFault::Unavailable`] and [`StoreFault::Permanent`].
pub const INJECTED: &str = "injected store fault (test)";

#[derive(Debug)]
struct Rule {
    op: Op,
    /// Call numbers (0-based, per operation) the fault hits: `from..until`.
    from: usize,
    until: usize,
    fault: StoreFault,
}

#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Rule>,
    /// Every operation fails as unavailable, like a store during an outage.
    down: bool,
    calls: [usize; Op::ALL.len()],
}

/// Wraps a store (the [`MemoryStore`] by default) and fails or stalls chosen calls.
///
/// Calls are numbered per operation from 0, counting failed calls too. Share it between the
/// service under test and the test through an `Arc` (the ports implement the store for `Arc<S>`).
#[derive(Debug, Default)]
pub struct FaultyStore<S = MemoryStore> {
    inner: S,
    faults: Mutex<Faults>,
}

impl FaultyStore {
    /// A faultless memory store to set faults on.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: StateStore> FaultyStore<S> {
    /// Wraps `inner`, with no faults yet.
    pub fn wrapping(inner: S) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the calls of `op` numbered in `calls` fail with `fault`: `..2` fails the first two,
    /// `3..` every call from the fourth on, `..` all of them. Adds to the faults set before.
    pub fn fail(&self, op: Op, calls: impl RangeBounds<usize>, fault: StoreFault) {
        let from = match calls.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let until = match calls.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => usize::MAX,
        };
        self.lock().rules.push(Rule {
            op,
            from,
            until,
            fault,
        });
    }

    /// Switches the whole store off (every operation unavailable) or back on.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Removes every fault: the store answers again.
    pub fn heal(&self) {
        let mut faults = self.lock();
        faults.rules.clear();
        faults.down = false;
    }

    /// How many times `op` was called, failed calls included.
    pub fn calls(&self, op: Op) -> usize {
        self.lock().calls[op.index()]
    }

    /// A poisoned lock only means another test thread panicked; the counters are intact.
    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers the call and returns `Err` (or never returns) when a fault hits it.
    async fn enter(&self, op: Op) -> Result<(), StoreError> {
        let fault = {
            let mut faults = self.lock();
            let call = faults.calls[op.index()];
            faults.calls[op.index()] += 1;
            if faults.down {
                Some(StoreFault::Unavailable)
            } else {
                faults
                    .rules
                    .iter()
                    .find(|r| r.op == op && (r.from..r.until).contains(&call))
                    .map(|r| r.fault)
            }
        };
        match fault {
            None => Ok(()),
            Some(StoreFault::Unavailable) => Err(StoreError::unavailable(INJECTED)),
            Some(StoreFault::Permanent) => Err(StoreError::permanent(INJECTED)),
            Some(StoreFault::Stall) => std::future::pending().await,
        }
    }
}

impl<S: StateStore> StateStore for FaultyStore<S> {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        self.enter(Op::AddFacts).await?;
        self.inner.add_facts(batch).await
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        self.enter(Op::LoadFacts).await?;
        self.inner.load_facts(resources, now).await
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        self.enter(Op::ClaimAlert).await?;
        self.inner
            .claim_alert(finding_id, now, lease_secs, expires_at)
            .await
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        self.enter(Op::MarkAlertSent).await?;
        self.inner.mark_alert_sent(finding_id).await
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        self.enter(Op::ReleaseAlert).await?;
        self.inner.release_alert(finding_id).await
    }
}

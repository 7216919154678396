//! In-memory [`StateStore`], for unit tests and single-process use.

use crate::ports::{Claim, ResourceFacts, StateStore, StoreError, StoredFact};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct AlertClaim {
    sent: bool,
    claimed_at: i64,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct Inner {
    facts: HashMap<String, BTreeMap<String, StoredFact>>,
    alerts: HashMap<String, AlertClaim>,
}

/// Keeps everything in a mutex-guarded map; every operation is atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::permanent("memory store mutex poisoned"))
    }

    /// Deletes facts that expired at or before `at` (unix seconds), as the cloud stores' TTL does;
    /// returns how many. A scan passes its event-time watermark, so that old logs keep their
    /// facts for as long as later events in the same logs can link to them.
    pub fn purge_facts_expired(&self, at: i64) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let mut removed = 0;
        inner.facts.retain(|_, slot| {
            let before = slot.len();
            slot.retain(|_, f| f.expires_at > at);
            removed += before - slot.len();
            !slot.is_empty()
        });
        removed
    }

    /// Deletes alert claims that expired at or before `at` (unix seconds); returns how many.
    pub fn purge_claims_expired(&self, at: i64) -> usize {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let before = inner.alerts.len();
        inner.alerts.retain(|_, c| c.expires_at > at);
        before - inner.alerts.len()
    }

    /// Number of facts held (expired ones included), for tests of boundedness.
    pub fn fact_count(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.facts.values().map(BTreeMap::len).sum())
            .unwrap_or(0)
    }
}

impl StateStore for MemoryStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let mut added = 0;
        for rf in batch {
            let slot = inner.facts.entry(rf.resource.clone()).or_default();
            for fact in &rf.facts {
                if !slot.contains_key(&fact.key) {
                    slot.insert(fact.key.clone(), fact.clone());
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let inner = self.lock()?;
        let now = now.timestamp();
        Ok(resources
            .iter()
            .filter_map(|r| {
                let facts: Vec<StoredFact> = inner
                    .facts
                    .get(r)?
                    .values()
                    .filter(|f| f.expires_at > now)
                    .cloned()
                    .collect();
                (!facts.is_empty()).then(|| ResourceFacts {
                    resource: r.clone(),
                    facts,
                })
            })
            .collect())
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let mut inner = self.lock()?;
        let now = now.timestamp();
        match inner.alerts.get(finding_id) {
            Some(c) if c.expires_at > now && c.sent => Ok(Claim::AlreadySent),
            Some(c) if c.expires_at > now && now < c.claimed_at + lease_secs => {
                Ok(Claim::HeldByOther)
            }
            _ => {
                inner.alerts.insert(
                    finding_id.to_string(),
                    AlertClaim {
                        sent: false,
                        claimed_at: now,
                        expires_at,
                    },
                );
                Ok(Claim::Won)
            }
        }
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match inner.alerts.get_mut(finding_id) {
            Some(c) => {
                c.sent = true;
                Ok(())
            }
            None => Err(StoreError::permanent(format!(
                "mark_alert_sent: no claim for {finding_id}"
            ))),
        }
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if matches!(inner.alerts.get(finding_id), Some(c) if !c.sent) {
            inner.alerts.remove(finding_id);
        }
        Ok(())
    }
}

//! What a process knows of hubs, resources whose facts span several pages (see the `dynamo`
//! module docs). A full page never changes, so its fact keys, and within a byte budget its
//! facts, stay true while the hub lives. Every later page records `base`, a digest of the keys on
//! the pages before it, so a reader can tell whether the full pages it holds are still the hub's.
//!
//! All of it is memory of one process: bounded in hubs, in bytes of facts and in age, and never
//! needed for a correct answer (a reader that cannot use it reads the table).

use snapwatch_core::ports::StoredFact;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hubs remembered; past it the memory is cleared.
const REMEMBERED_HUBS: usize = 256;
/// Estimated bytes of full pages' facts held for all hubs together; past it the facts are
/// dropped (keys stay). A full page holds about 64 KB.
const HELD_FACT_BYTES: u64 = 8 * 1024 * 1024;
/// How long a hub's pages are trusted after they were first learned. A full page changes only
/// if it expires, is deleted and a writer with an older memory recreates it; live facts expire
/// days after they were written, so an hour keeps that out of reach.
const TRUSTED_FOR: Duration = Duration::from_secs(3_600);

/// The hubs of one process.
#[derive(Debug, Default)]
pub(super) struct Hubs {
    hubs: HashMap<String, Hub>,
    /// Estimated bytes of the facts held in `FinalPage::facts`.
    held_bytes: u64,
}

#[derive(Debug)]
struct Hub {
    learned: Instant,
    /// The page writes go to (the last one known).
    last: u32,
    /// A page count the first page is known to hold (0: none known).
    counted: u32,
    /// Full pages known, by index.
    finals: BTreeMap<u32, FinalPage>,
}

#[derive(Debug)]
struct FinalPage {
    keys: HashSet<String>,
    /// The keys' digest: the wrapping sum of each key's FNV-1a hash.
    digest: u64,
    /// The page's facts, while the byte budget allows.
    facts: Option<Arc<[StoredFact]>>,
}

/// FNV-1a, 64 bits: fixed across processes and releases, unlike std's hasher.
fn fnv1a(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A fact's share of the held bytes.
fn held_size(facts: &[StoredFact]) -> u64 {
    facts
        .iter()
        .map(|f| (f.key.len() + f.body.len() + 16) as u64)
        .sum()
}

impl Hubs {
    fn hub(&self, resource: &str) -> Option<&Hub> {
        self.hubs
            .get(resource)
            .filter(|hub| hub.learned.elapsed() < TRUSTED_FOR)
    }

    fn hub_mut(&mut self, resource: &str) -> &mut Hub {
        let stale = self
            .hubs
            .get(resource)
            .is_some_and(|hub| hub.learned.elapsed() >= TRUSTED_FOR);
        if stale {
            self.forget(resource);
        }
        if self.hubs.len() >= REMEMBERED_HUBS && !self.hubs.contains_key(resource) {
            self.hubs.clear();
            self.held_bytes = 0;
        }
        self.hubs
            .entry(resource.to_string())
            .or_insert_with(|| Hub {
                learned: Instant::now(),
                last: 0,
                counted: 0,
                finals: BTreeMap::new(),
            })
    }

    fn forget(&mut self, resource: &str) {
        if let Some(hub) = self.hubs.remove(resource) {
            for page in hub.finals.values() {
                if let Some(facts) = &page.facts {
                    self.held_bytes = self.held_bytes.saturating_sub(held_size(facts));
                }
            }
        }
    }

    /// The page a write to `resource` goes to (0 for a resource not known as a hub) and the page
    /// count its first page is known to hold.
    pub(super) fn write_target(&self, resource: &str) -> (u32, u32) {
        self.hub(resource)
            .map_or((0, 0), |hub| (hub.last, hub.counted))
    }

    /// Whether `key` is stored on a full page of `resource` (so it is not new).
    pub(super) fn is_final(&self, resource: &str, key: &str) -> bool {
        self.hub(resource)
            .is_some_and(|hub| hub.finals.values().any(|page| page.keys.contains(key)))
    }

    /// The digest of the keys on pages `0..page`, if all of them are known: what page `page`
    /// records as its `base`.
    pub(super) fn base(&self, resource: &str, page: u32) -> Option<String> {
        let hub = self.hub(resource)?;
        let mut keys = 0;
        let mut sum: u64 = 0;
        for index in 0..page {
            let known = hub.finals.get(&index)?;
            keys += known.keys.len();
            sum = sum.wrapping_add(known.digest);
        }
        Some(format!("{keys}:{sum:016x}"))
    }

    /// The facts of pages `0..page`, if every one of them is held (an earlier page's fact wins,
    /// as on a read of the table).
    pub(super) fn facts_before(&self, resource: &str, page: u32) -> Option<Vec<StoredFact>> {
        let hub = self.hub(resource)?;
        let mut out = Vec::new();
        for index in 0..page {
            out.extend(hub.finals.get(&index)?.facts.as_deref()?.iter().cloned());
        }
        Some(out)
    }

    /// The last page of a hub whose full pages are all held: a read needs only that page.
    pub(super) fn held_last(&self, resource: &str) -> Option<u32> {
        let hub = self.hub(resource)?;
        let complete = hub.last > 0
            && (0..hub.last).all(|i| hub.finals.get(&i).is_some_and(|p| p.facts.is_some()));
        complete.then_some(hub.last)
    }

    /// How many pages a read of `resource` should ask for at once (1: just the first).
    pub(super) fn pages_to_read(&self, resource: &str) -> u32 {
        self.hub(resource)
            .map_or(1, |hub| (hub.last + 1).max(hub.counted))
    }

    /// Records a full page: its keys and, if given and within the budget, its facts.
    pub(super) fn learn_final(
        &mut self,
        resource: &str,
        page: u32,
        keys: HashSet<String>,
        facts: Option<Vec<StoredFact>>,
    ) {
        // First the entry (which may clear a full or stale memory), then the byte budget.
        self.hub_mut(resource);
        let size = facts.as_deref().map_or(0, held_size);
        if size > 0 && self.held_bytes + size > HELD_FACT_BYTES {
            // Too much held: drop every hub's facts, keep the keys (writers need only those).
            for hub in self.hubs.values_mut() {
                for known in hub.finals.values_mut() {
                    known.facts = None;
                }
            }
            self.held_bytes = 0;
        }
        let Some(hub) = self.hubs.get_mut(resource) else {
            return;
        };
        let known = hub.finals.entry(page).or_insert_with(|| FinalPage {
            digest: keys.iter().fold(0u64, |sum, k| sum.wrapping_add(fnv1a(k))),
            keys,
            facts: None,
        });
        if known.facts.is_none() && size <= HELD_FACT_BYTES {
            if let Some(facts) = facts {
                known.facts = Some(facts.into());
                self.held_bytes += size;
            }
        }
    }

    /// Records that writes to `resource` go to page `last` or later. Only taken when the keys of
    /// every page before it are known: a writer must see them all to count a fact new.
    pub(super) fn learn_last(&mut self, resource: &str, last: u32) {
        let hub = self.hub_mut(resource);
        if last > hub.last && (0..last).all(|i| hub.finals.contains_key(&i)) {
            hub.last = last;
        }
    }

    /// Records that the first page of `resource` holds a page count of at least `count`.
    pub(super) fn learn_counted(&mut self, resource: &str, count: u32) {
        if count > 1 {
            let hub = self.hub_mut(resource);
            hub.counted = hub.counted.max(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(keys: &[&str]) -> Vec<StoredFact> {
        keys.iter()
            .map(|k| StoredFact {
                key: (*k).to_string(),
                expires_at: 1,
                body: format!("body of {k}"),
            })
            .collect()
    }

    fn keys(keys: &[&str]) -> HashSet<String> {
        keys.iter().map(|k| (*k).to_string()).collect()
    }

    #[test]
    fn the_base_digest_depends_on_every_earlier_page_s_keys_not_their_order() {
        let mut a = Hubs::default();
        a.learn_final("ami", 0, keys(&["k1", "k2"]), None);
        a.learn_final("ami", 1, keys(&["k3"]), None);
        let mut b = Hubs::default();
        b.learn_final("ami", 1, keys(&["k3"]), None);
        b.learn_final("ami", 0, keys(&["k2", "k1"]), None);
        assert_eq!(a.base("ami", 2), b.base("ami", 2));
        assert_ne!(a.base("ami", 2), a.base("ami", 1));
        let mut c = Hubs::default();
        c.learn_final("ami", 0, keys(&["k1", "k2"]), None);
        c.learn_final("ami", 1, keys(&["k4"]), None);
        assert_ne!(a.base("ami", 2), c.base("ami", 2));
        // A page not known: no base.
        assert_eq!(a.base("ami", 3), None);
        assert_eq!(Hubs::default().base("ami", 1), None);
        // The digest is fixed: a stored base must mean the same to every process and release.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn writes_move_on_only_past_pages_whose_keys_are_known() {
        let mut hubs = Hubs::default();
        hubs.learn_final("sg", 0, keys(&["k1"]), None);
        hubs.learn_last("sg", 2);
        assert_eq!(hubs.write_target("sg"), (0, 0), "page 1's keys are unknown");
        hubs.learn_final("sg", 1, keys(&["k2"]), None);
        hubs.learn_last("sg", 2);
        hubs.learn_counted("sg", 3);
        assert_eq!(hubs.write_target("sg"), (2, 3));
        assert!(hubs.is_final("sg", "k2"));
        assert!(!hubs.is_final("sg", "k3"));
        assert_eq!(hubs.pages_to_read("sg"), 3);
        assert_eq!(hubs.pages_to_read("other"), 1);
    }

    #[test]
    fn a_hub_is_read_from_memory_only_when_every_full_page_s_facts_are_held() {
        let mut hubs = Hubs::default();
        hubs.learn_final("ami", 0, keys(&["k1"]), Some(facts(&["k1"])));
        hubs.learn_final("ami", 1, keys(&["k2"]), None);
        hubs.learn_last("ami", 2);
        assert_eq!(hubs.held_last("ami"), None);
        hubs.learn_final("ami", 1, keys(&["k2"]), Some(facts(&["k2"])));
        assert_eq!(hubs.held_last("ami"), Some(2));
        let held: Vec<String> = hubs
            .facts_before("ami", 2)
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(held, ["k1", "k2"]);
    }

    #[test]
    fn held_facts_stay_within_the_byte_budget_and_keys_outlive_them() {
        let mut hubs = Hubs::default();
        let big = "x".repeat(600 * 1024);
        let page = |i: usize| {
            vec![StoredFact {
                key: format!("k{i}"),
                expires_at: 1,
                body: big.clone(),
            }]
        };
        for i in 0..20 {
            let key = format!("k{i}");
            hubs.learn_final("ami", i as u32, keys(&[&key]), Some(page(i)));
            assert!(hubs.held_bytes <= HELD_FACT_BYTES, "{}", hubs.held_bytes);
        }
        assert!(
            hubs.is_final("ami", "k0"),
            "keys stay when facts are dropped"
        );
        hubs.learn_last("ami", 20);
        assert_eq!(hubs.held_last("ami"), None, "page 0's facts were dropped");
    }
}

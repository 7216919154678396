//! The snapshot baseline: what a scheduled listing of the account's snapshots, DB snapshots and
//! images shows, compared with what the event stream told the engine.
//!
//! Events can be missed (a trail stopped in one region, a deleted rule, an outage) and a snapshot
//! shared before snapwatch was deployed never produces an event at all. The baseline closes that
//! hole: an exposure it sees that no event explains is ingested as a fact of a synthetic
//! "baseline" event, so `snapshot.public` / `snapshot.shared-external` fire through the same rules
//! and share their finding ids (and alert claims) with the event-driven findings of the same
//! snapshot; and a creation or new permission since the previous run that no received event
//! accounts for raises `snapshot.unexplained`.
//!
//! This module is the pure part: the listing itself (cloud API calls) lives in the adapters.

use crate::engine::Detector;
use crate::error::{decode_stored, EngineError};
use crate::finding::{finding_id, short_hash, sort_findings};
use crate::graph::LOAD_BATCH;
pub use crate::inventory::{Inventory, InventoryItem, Permissions};
pub use crate::model::BASELINE_EVENT_PREFIX;
use crate::model::{
    baseline_event_id, Audience, EventMeta, Fact, Finding, Observation, Origin, ParsedEvent,
    Resource,
};
use crate::ports::{ResourceFacts, StateStore, StoredFact};
use crate::rules::unexplained::{self, Explained, PermissionState};
use crate::rules::Rule;
use crate::Config;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Store id of the marker that says a listing of this scope has completed before.
fn scope_id(inventory: &Inventory) -> String {
    format!(
        "snapwatch-baseline#scope#{}#{}#{}",
        inventory.cloud, inventory.account, inventory.region
    )
}

/// Store id of what the baseline last saw of one resource. Kept apart from the resource's chain
/// facts: these records are the baseline's memory, not evidence the rules read.
fn record_id(resource: &Resource) -> String {
    format!("snapwatch-baseline#{}", resource.id)
}

/// How long a change must have been visible before the baseline judges it unexplained: CloudTrail
/// delivers events minutes after the call, and the event function may be retrying one, so a change
/// seen for the first time is only recorded, and judged by the first run at least this much later.
pub const SETTLE_SECS: i64 = 30 * 60;

/// What one listing saw of one resource, written when it first sees a permission state (and
/// again every half window, so the record outlives the store's expiry while the state lasts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SeenRecord {
    seen_at: DateTime<Utc>,
    permissions: Permissions,
    /// First seen by a run that had an earlier completed listing of the scope: it appeared since.
    #[serde(default)]
    new_since_previous_run: bool,
}

/// The resource's current permission state as the records tell it. `None` when there is
/// nothing to judge: no earlier listing saw the scope, or the resource was already there (in this
/// state) when the records begin.
fn current_state<'h>(
    history: &'h [SeenRecord],
    current: &Permissions,
    now: DateTime<Utc>,
    had_previous_run: bool,
) -> Option<PermissionState<'h>> {
    let before = |seen: &'h SeenRecord| (seen.seen_at, &seen.permissions);
    let same = history
        .iter()
        .rev()
        .take_while(|seen| seen.permissions == *current)
        .count();
    let state = if same == 0 {
        // Seen in this state for the first time now.
        PermissionState {
            first_seen: now,
            before: history.last().map(before),
            appeared: history.is_empty() && had_previous_run,
        }
    } else {
        let first = history.len() - same;
        PermissionState {
            first_seen: history[first].seen_at,
            before: first
                .checked_sub(1)
                .and_then(|i| history.get(i))
                .map(before),
            appeared: first == 0 && history[first].new_since_previous_run,
        }
    };
    (state.before.is_some() || state.appeared).then_some(state)
}

/// Marker body: a listing of the scope completed at `run_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScopeRecord {
    run_at: DateTime<Utc>,
}

/// Counts for the run's log line and report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineStats {
    /// Resources the listing found.
    pub items: usize,
    /// No earlier completed listing of this account and region is on record: everything seen is
    /// recorded as the baseline and nothing is called unexplained (it may predate snapwatch).
    pub first_run: bool,
    /// Resources not seen by the previous listing.
    pub new_items: usize,
    /// Resources whose permissions differ from the previous listing.
    pub changed_items: usize,
    /// Exposed resources (public or shared outside the trusted set) no received event explains.
    pub exposures_found_by_baseline: usize,
    /// `snapshot.unexplained` findings.
    pub unexplained: usize,
    /// Baseline facts stored for the first time (0 on a rerun with nothing changed).
    pub new_facts: usize,
}

/// The outcome of comparing one listing with the store. Deliver `findings`, then
/// [`commit`] so the next run compares with this one. If delivery fails, do not commit: the
/// retry finds the same changes again, and alert claims keep it from sending anything twice.
#[derive(Debug, Clone)]
pub struct BaselineCheck {
    /// What to deliver.
    pub findings: Vec<Finding>,
    /// What the run saw.
    pub stats: BaselineStats,
    records: Vec<ResourceFacts>,
}

/// Compares `inventory` with the previous listing and the chain state, stores facts for the
/// exposures no received event explains, and returns the findings to deliver: `snapshot.public` /
/// `snapshot.shared-external` (same ids as their event-driven twins, so one alert per chain) and
/// `snapshot.unexplained` for changes since the previous listing that no event accounts for.
pub async fn check<S: StateStore>(
    detector: &Detector<S>,
    inventory: &Inventory,
    now: DateTime<Utc>,
) -> Result<BaselineCheck, EngineError> {
    let state = StoredState::load(detector.store(), inventory, now).await?;
    let scope = scope_id(inventory);
    let previous_run = state
        .records::<ScopeRecord>(&scope)?
        .into_iter()
        .map(|record| record.run_at)
        .max();
    let mut stats = BaselineStats {
        items: inventory.items.len(),
        first_run: previous_run.is_none(),
        ..BaselineStats::default()
    };
    let mut records = Vec::new();
    let mut exposures = Vec::new();
    let mut unexplained = Vec::new();
    for item in &inventory.items {
        let review = review_item(
            detector.config(),
            inventory,
            item,
            &state,
            previous_run,
            now,
        )?;
        match review.since_last {
            SinceLast::New => stats.new_items += 1,
            SinceLast::Changed => stats.changed_items += 1,
            SinceLast::Same => {}
        }
        if let Some(exposure) = review.exposure {
            stats.exposures_found_by_baseline += 1;
            exposures.push(exposure);
        }
        unexplained.extend(review.unexplained);
        records.extend(review.record);
    }
    let mut findings = evaluate_exposures(detector, inventory, &exposures, now, &mut stats).await?;
    stats.unexplained = unexplained.len();
    findings.extend(unexplained);
    sort_findings(&mut findings);
    records.push(scope_marker(
        scope,
        inventory,
        now,
        detector.config().window_secs(),
    )?);
    Ok(BaselineCheck {
        findings,
        stats,
        records,
    })
}

/// What the store holds for one listing: the chain facts of every listed resource (and of the
/// resources created with them), the baseline's records of each, and the scope marker. Read in
/// batches up front, so the comparison itself makes no store calls.
struct StoredState {
    loaded: HashMap<String, Vec<StoredFact>>,
}

impl StoredState {
    async fn load<S: StateStore>(
        store: &S,
        inventory: &Inventory,
        now: DateTime<Utc>,
    ) -> Result<StoredState, EngineError> {
        let mut ids: BTreeSet<String> = BTreeSet::new();
        ids.insert(scope_id(inventory));
        for item in &inventory.items {
            ids.insert(item.resource.id.clone());
            ids.insert(record_id(&item.resource));
            if let Some(with) = &item.created_with {
                ids.insert(with.id.clone());
            }
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let mut loaded: HashMap<String, Vec<StoredFact>> = HashMap::new();
        for chunk in ids.chunks(LOAD_BATCH) {
            for rf in store.load_facts(chunk, now).await? {
                loaded.entry(rf.resource).or_default().extend(rf.facts);
            }
        }
        Ok(StoredState { loaded })
    }

    /// The items stored under `resource`, decoded. A corrupt one is an error: in the baseline's
    /// own records it must never silently mean a "first run" or a "new" resource (that would
    /// raise false alerts).
    fn records<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
    ) -> Result<Vec<T>, EngineError> {
        let stored = self
            .loaded
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default();
        stored
            .iter()
            .map(|item| decode_stored(resource, item))
            .collect()
    }

    /// The chain observations stored under `resource`.
    fn observations(&self, resource: &str) -> Result<Vec<Observation>, EngineError> {
        self.records(resource)
    }
}

/// How a listed resource compares with what the previous listing recorded of it.
enum SinceLast {
    /// No record of it.
    New,
    /// Its permissions differ from the last record.
    Changed,
    /// As last recorded.
    Same,
}

/// What one listed resource contributes to the run.
struct ItemReview {
    since_last: SinceLast,
    /// The baseline event for an exposure no received event explains, and whether an earlier
    /// run stored it already.
    exposure: Option<(ParsedEvent, bool)>,
    /// Its `snapshot.unexplained` finding, if a settled change has no explaining event.
    unexplained: Option<Finding>,
    /// What this listing saw of it, when that must be recorded.
    record: Option<ResourceFacts>,
}

/// Compares one listed resource with the events and the baseline's records of it.
fn review_item(
    config: &Config,
    inventory: &Inventory,
    item: &InventoryItem,
    state: &StoredState,
    previous_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ItemReview, EngineError> {
    let observed = state.observations(&item.resource.id)?;
    let (explained, creation_explained) = explanations(state, item, &observed)?;
    let record_key = record_id(&item.resource);
    let mut history: Vec<SeenRecord> = state.records(&record_key)?;
    history.sort_by_key(|record| record.seen_at);
    let current = &item.permissions;

    let exposure = exposure_event(config, inventory, item, &explained, now).map(|event| {
        // Stored by an earlier run and not yet expired: writing it again would be a no-op
        // that still costs a store request every run.
        let stored = observed.iter().any(|o| o.event.id == event.meta.id);
        (event, stored)
    });
    let latest = history.last();
    let since_last = match latest {
        None => SinceLast::New,
        Some(seen) if seen.permissions != *current => SinceLast::Changed,
        Some(_) => SinceLast::Same,
    };
    let unexplained = current_state(&history, current, now, previous_run.is_some())
        // A change is judged only once events about it have had time to arrive.
        .filter(|state| (now - state.first_seen).num_seconds() >= SETTLE_SECS)
        .and_then(|state| {
            unexplained::decide(item, &state, &explained, creation_explained).map(|change| {
                crate::finding::assemble_unexplained(inventory, item, &state, &change, now)
            })
        });
    let record = seen_record(
        item,
        latest,
        record_key,
        previous_run,
        now,
        config.window_secs(),
    )?;
    Ok(ItemReview {
        since_last,
        exposure,
        unexplained,
        record,
    })
}

/// What the received events explain about the item (its own observations, minus the baseline's
/// synthetic ones), and whether its creation is explained, by its own creation event or by that
/// of the resource it was created with.
fn explanations(
    state: &StoredState,
    item: &InventoryItem,
    observed: &[Observation],
) -> Result<(Explained, bool), EngineError> {
    let id = item.resource.id.as_str();
    let events: Vec<&Observation> = observed
        .iter()
        .filter(|o| o.origin == Origin::Events)
        .collect();
    let explained = Explained::from_events(&events, id);
    let creation_explained = explained.created
        || match &item.created_with {
            Some(with) => {
                let with_observed = state.observations(&with.id)?;
                Explained::from_events(&with_observed.iter().collect::<Vec<_>>(), &with.id).created
            }
            None => false,
        };
    Ok((explained, creation_explained))
}

/// The record of what this listing saw of the item, when its permissions changed since the last
/// record or that record is half a window old (so the record outlives the store's expiry).
fn seen_record(
    item: &InventoryItem,
    latest: Option<&SeenRecord>,
    record_key: String,
    previous_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: i64,
) -> Result<Option<ResourceFacts>, EngineError> {
    let current = &item.permissions;
    let changed = latest.is_none_or(|seen| seen.permissions != *current);
    let refresh = latest.is_some_and(|seen| (now - seen.seen_at).num_seconds() >= window / 2);
    if !(changed || refresh) {
        return Ok(None);
    }
    let record = SeenRecord {
        seen_at: now,
        permissions: current.clone(),
        new_since_previous_run: latest.is_none() && previous_run.is_some(),
    };
    Ok(Some(ResourceFacts {
        resource: record_key,
        facts: vec![StoredFact {
            key: format!("seen#{}#{}", now.timestamp(), short_hash(&[&current.key()])),
            expires_at: now.timestamp() + window,
            body: encode(&record, &item.resource.id)?,
        }],
    }))
}

/// Ingests the exposures and evaluates them through the rules, every run: if an earlier run
/// stored them and then failed to deliver, this one delivers (claims stop a second send). Only
/// the share findings of the exposed resources are the baseline's to deliver.
async fn evaluate_exposures<S: StateStore>(
    detector: &Detector<S>,
    inventory: &Inventory,
    exposures: &[(ParsedEvent, bool)],
    now: DateTime<Utc>,
    stats: &mut BaselineStats,
) -> Result<Vec<Finding>, EngineError> {
    let mut touched = Vec::new();
    for (event, stored) in exposures {
        if *stored {
            touched.extend(
                event
                    .facts
                    .iter()
                    .flat_map(|fact| fact.linked_resources())
                    .map(|r| r.id.clone()),
            );
            continue;
        }
        let ingested = detector.ingest_from(event, Origin::Baseline).await?;
        stats.new_facts += ingested.new_facts;
        touched.extend(ingested.touched);
    }
    touched.sort();
    touched.dedup();
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let exposure_ids: BTreeSet<String> = exposures
        .iter()
        .flat_map(|(event, _)| {
            let anchor = event
                .facts
                .first()
                .and_then(|fact| fact.linked_resources().first().map(|r| r.id.clone()))
                .unwrap_or_default();
            let exported = event
                .facts
                .iter()
                .any(|fact| matches!(fact, Fact::SnapshotExported { .. }));
            [Rule::SnapshotPublic, Rule::SnapshotSharedExternal]
                .into_iter()
                .chain(exported.then_some(Rule::SnapshotExported))
                .map(|rule| finding_id(rule, inventory.cloud, &anchor))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(detector
        .evaluate(&touched, now)
        .await?
        .into_iter()
        .filter(|f| exposure_ids.contains(&f.id))
        .collect())
}

/// The marker that this listing of the scope completed: written last by [`commit`].
fn scope_marker(
    scope: String,
    inventory: &Inventory,
    now: DateTime<Utc>,
    window: i64,
) -> Result<ResourceFacts, EngineError> {
    let day = now.format("%Y-%m-%d");
    Ok(ResourceFacts {
        resource: scope,
        facts: vec![StoredFact {
            key: format!("run#{day}"),
            expires_at: now.timestamp() + window,
            body: encode(&ScopeRecord { run_at: now }, &inventory.region)?,
        }],
    })
}

/// Records what this listing saw, so the next run compares with it. Call after delivery; the
/// scope marker is written last, so a marker always means every resource of that run is recorded.
pub async fn commit<S: StateStore>(
    detector: &Detector<S>,
    check: &BaselineCheck,
) -> Result<usize, EngineError> {
    let Some((marker, resources)) = check.records.split_last() else {
        return Ok(0);
    };
    let mut written = 0;
    for chunk in resources.chunks(LOAD_BATCH) {
        written += detector.store().add_facts(chunk).await?;
    }
    written += detector
        .store()
        .add_facts(std::slice::from_ref(marker))
        .await?;
    Ok(written)
}

/// The baseline event behind an exposure of `item` that no received event explains (public, or
/// shared outside the trusted set), if there is one: the same id as long as the exposure is the
/// same, so a rerun stores nothing new.
fn exposure_event(
    config: &Config,
    inventory: &Inventory,
    item: &InventoryItem,
    explained: &Explained,
    now: DateTime<Utc>,
) -> Option<ParsedEvent> {
    let current = &item.permissions;
    let mut audiences = Vec::new();
    if current.public && !explained.public {
        audiences.push(Audience::Public);
    }
    let outside_accounts: Vec<String> = current
        .accounts
        .iter()
        .filter(|a| !config.is_trusted_account(&inventory.account, a))
        .filter(|a| !explained.accounts.contains(*a))
        .cloned()
        .collect();
    if !outside_accounts.is_empty() {
        audiences.push(Audience::Accounts(outside_accounts));
    }
    let outside_principals: Vec<String> = current
        .principals
        .iter()
        .filter(|p| !config.is_trusted_principal(p))
        .filter(|p| !explained.principals.contains(*p))
        .cloned()
        .collect();
    if !outside_principals.is_empty() {
        audiences.push(Audience::Principals(outside_principals));
    }
    // An export open to any network is the exposure the `beginGetAccess` event path reports.
    let exported = current.export_open && current.export_reachable && !explained.exported;
    if audiences.is_empty() && !exported {
        return None;
    }
    let key: Vec<String> = audiences
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    let mut key: Vec<&str> = key.iter().map(String::as_str).collect();
    if exported {
        key.push(EXPORT_METHOD);
    }
    let event_key = format!("{}:{}", item.resource.id, short_hash(&key));
    Some(ParsedEvent {
        meta: EventMeta {
            id: baseline_event_id(&event_key),
            name: item.observed_via.clone(),
            time: now,
            actor: None,
            source_ip: None,
            cloud: inventory.cloud,
            account: inventory.account.clone(),
            region: Some(inventory.region.clone()),
            automation: None,
        },
        facts: audiences
            .into_iter()
            .map(|audience| Fact::SnapshotShared {
                snapshot: item.resource.clone(),
                audience,
            })
            .chain(exported.then(|| Fact::SnapshotExported {
                snapshot: item.resource.clone(),
                method: EXPORT_METHOD.to_owned(),
            }))
            .collect(),
    })
}

/// How an open export is named in the baseline's [`Fact::SnapshotExported`]: the method the
/// Azure parser gives a `beginGetAccess` event.
const EXPORT_METHOD: &str = crate::parse::azure::SAS_EXPORT_METHOD;

/// Encodes a baseline record for the store.
fn encode<T: Serialize>(value: &T, context: &str) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(|source| EngineError::Encode {
        event_id: baseline_event_id(context),
        source,
    })
}

#[cfg(test)]
mod tests;

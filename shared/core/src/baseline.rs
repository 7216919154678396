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

use crate::engine::{finding_id, next_steps, sort_findings, Detector, EngineError, LOAD_BATCH};
use crate::model::{
    Audience, ChainEvent, Cloud, EventMeta, Fact, Finding, FoundBy, Observation, ParsedEvent,
    Resource, ResourceKind,
};
use crate::ports::{ResourceFacts, StateStore, StoredFact};
use crate::rules::Rule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

/// Event ids of baseline observations start with this; no cloud's event ids do.
pub const BASELINE_EVENT_PREFIX: &str = "snapwatch-baseline:";

/// Who may use a snapshot-like resource, as its permission attribute reads now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// `group: all` (EBS, AMI), RDS `restore` value `all`.
    #[serde(default)]
    pub public: bool,
    /// Account ids granted (EBS `userId`, RDS `restore` values, AMI `userId`). The owner's own
    /// account is never listed here.
    #[serde(default)]
    pub accounts: BTreeSet<String>,
    /// Other grantees: AWS Organizations organization / OU ARNs of AMI launch permissions.
    #[serde(default)]
    pub principals: BTreeSet<String>,
}

impl Permissions {
    pub fn is_private(&self) -> bool {
        !self.public && self.accounts.is_empty() && self.principals.is_empty()
    }
}

/// One snapshot, DB snapshot, DB cluster snapshot or image as the listing found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    /// Normalised exactly as the event parsers do: `snap-…` / `ami-…` ids, lower-cased RDS ARNs.
    pub resource: Resource,
    /// When the cloud says it was created (`StartTime`, `SnapshotCreateTime`, `CreationDate`).
    pub created: Option<DateTime<Utc>>,
    pub permissions: Permissions,
    /// Another resource whose creation event also created this one, so that event explains it:
    /// the AMI a snapshot was made for by `CreateImage` / `CopyImage` (its description says so).
    pub created_with: Option<Resource>,
    /// The read API the permissions came from (`DescribeSnapshotAttribute`,
    /// `DescribeDBSnapshotAttributes`, `DescribeDBClusterSnapshotAttributes`,
    /// `DescribeImageAttribute`): the name the finding's event carries.
    pub observed_via: String,
}

/// Everything one listing of one account and region found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub cloud: Cloud,
    pub account: String,
    pub region: String,
    /// When the listing started.
    pub taken_at: DateTime<Utc>,
    pub items: Vec<InventoryItem>,
}

/// Whether an event is one of the baseline's own observations rather than a received record.
pub fn is_baseline_event(meta: &EventMeta) -> bool {
    meta.id.starts_with(BASELINE_EVENT_PREFIX)
}

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

/// The resource's current permission state as the records tell it.
struct CurrentState<'h> {
    /// When a listing first saw this state (now, if this listing is the first).
    first_seen: DateTime<Utc>,
    /// The state before it, if a listing saw one.
    before: Option<&'h SeenRecord>,
    /// The resource itself appeared since an earlier listing.
    appeared: bool,
}

impl<'h> CurrentState<'h> {
    /// `None` when there is nothing to judge: no earlier listing saw the scope, or the resource
    /// was already there (in this state) when the records begin.
    fn of(
        history: &'h [SeenRecord],
        current: &Permissions,
        now: DateTime<Utc>,
        had_previous_run: bool,
    ) -> Option<CurrentState<'h>> {
        let same = history
            .iter()
            .rev()
            .take_while(|seen| seen.permissions == *current)
            .count();
        if same == 0 {
            // Seen in this state for the first time now.
            return Some(CurrentState {
                first_seen: now,
                before: history.last(),
                appeared: history.is_empty() && had_previous_run,
            })
            .filter(|state| state.before.is_some() || state.appeared);
        }
        let first = history.len() - same;
        let state = CurrentState {
            first_seen: history[first].seen_at,
            before: first.checked_sub(1).and_then(|i| history.get(i)),
            appeared: first == 0 && history[first].new_since_previous_run,
        };
        (state.before.is_some() || state.appeared).then_some(state)
    }
}

/// Marker body: a listing of the scope completed at `run_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScopeRecord {
    run_at: DateTime<Utc>,
}

/// Counts for the run's log line and report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineStats {
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
    pub findings: Vec<Finding>,
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
    let config = detector.config();
    let window = config.window_secs();
    let scope = scope_id(inventory);
    let mut ids: BTreeSet<String> = BTreeSet::new();
    ids.insert(scope.clone());
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
        for rf in detector.store().load_facts(chunk, now).await? {
            loaded.entry(rf.resource).or_default().extend(rf.facts);
        }
    }
    let decode = |resource: &str| -> Result<Vec<Observation>, EngineError> {
        loaded
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|stored| {
                serde_json::from_str::<Observation>(&stored.body).map_err(|source| {
                    EngineError::CorruptFact {
                        resource: resource.to_string(),
                        key: stored.key.clone(),
                        source,
                    }
                })
            })
            .collect()
    };
    // The baseline's own records: a corrupt one is an error, never silently a "first run" or a
    // "new" resource (that would raise false alerts).
    let records_of = |resource: &str| loaded.get(resource).map(Vec::as_slice).unwrap_or_default();
    let previous_run = decode_records::<ScopeRecord>(&scope, records_of(&scope))?
        .into_iter()
        .map(|record| record.run_at)
        .max();

    let mut stats = BaselineStats {
        items: inventory.items.len(),
        first_run: previous_run.is_none(),
        ..BaselineStats::default()
    };
    let mut records = Vec::new();
    let mut exposures: Vec<(ParsedEvent, bool)> = Vec::new();
    let mut unexplained: Vec<Finding> = Vec::new();
    for item in &inventory.items {
        let id = item.resource.id.as_str();
        let observed = decode(id)?;
        let events: Vec<&Observation> = observed
            .iter()
            .filter(|o| !is_baseline_event(&o.event))
            .collect();
        let explained = Explained::from_events(&events, id);
        let creation_explained = explained.created
            || match &item.created_with {
                Some(with) => {
                    Explained::from_events(&decode(&with.id)?.iter().collect::<Vec<_>>(), &with.id)
                        .created
                }
                None => false,
            };
        let record_key = record_id(&item.resource);
        let mut history: Vec<SeenRecord> = decode_records(&record_key, records_of(&record_key))?;
        history.sort_by_key(|record| record.seen_at);
        let current = &item.permissions;
        // Exposures no received event explains become facts of a baseline event.
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
        if !audiences.is_empty() {
            stats.exposures_found_by_baseline += 1;
            let event = exposure_event(inventory, item, audiences, now);
            // Stored by an earlier run and not yet expired: writing it again would be a no-op
            // that still costs a store request every run.
            let stored = observed.iter().any(|o| o.event.id == event.meta.id);
            exposures.push((event, stored));
        }

        let latest = history.last();
        match latest {
            None => stats.new_items += 1,
            Some(seen) if seen.permissions != *current => stats.changed_items += 1,
            Some(_) => {}
        }
        if let Some(state) = CurrentState::of(&history, current, now, previous_run.is_some()) {
            let settled = (now - state.first_seen).num_seconds() >= SETTLE_SECS;
            if settled {
                if let Some(change) =
                    unexplained_change(item, &state, &explained, creation_explained)
                {
                    unexplained.push(unexplained_finding(inventory, item, &state, change, now));
                }
            }
        }

        let changed = latest.is_none_or(|seen| seen.permissions != *current);
        let refresh = latest.is_some_and(|seen| (now - seen.seen_at).num_seconds() >= window / 2);
        if changed || refresh {
            let record = SeenRecord {
                seen_at: now,
                permissions: current.clone(),
                new_since_previous_run: latest.is_none() && previous_run.is_some(),
            };
            records.push(ResourceFacts {
                resource: record_key,
                facts: vec![StoredFact {
                    key: format!(
                        "seen#{}#{}",
                        now.timestamp(),
                        short_hash(&[&permissions_key(current)])
                    ),
                    expires_at: now.timestamp() + window,
                    body: encode(&record, id)?,
                }],
            });
        }
    }

    // Ingest the exposures and evaluate them through the rules, every run: if an earlier run
    // stored them and then failed to deliver, this one delivers (claims stop a second send).
    let mut touched = Vec::new();
    for (event, stored) in &exposures {
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
        let ingested = detector.ingest(event).await?;
        stats.new_facts += ingested.new_facts;
        touched.extend(ingested.touched);
    }
    touched.sort();
    touched.dedup();
    let exposure_ids: BTreeSet<String> = exposures
        .iter()
        .flat_map(|(event, _)| {
            let anchor = event
                .facts
                .first()
                .and_then(|fact| fact.linked_resources().first().map(|r| r.id.clone()))
                .unwrap_or_default();
            [Rule::SnapshotPublic, Rule::SnapshotSharedExternal]
                .map(|rule| finding_id(rule, inventory.cloud, &anchor))
        })
        .collect();
    let mut findings: Vec<Finding> = if touched.is_empty() {
        Vec::new()
    } else {
        detector
            .evaluate(&touched, now)
            .await?
            .into_iter()
            .filter(|f| exposure_ids.contains(&f.id))
            .collect()
    };
    stats.unexplained = unexplained.len();
    findings.extend(unexplained);
    sort_findings(&mut findings);

    let day = now.format("%Y-%m-%d");
    records.push(ResourceFacts {
        resource: scope,
        facts: vec![StoredFact {
            key: format!("run#{day}"),
            expires_at: now.timestamp() + window,
            body: encode(&ScopeRecord { run_at: now }, &inventory.region)?,
        }],
    });
    Ok(BaselineCheck {
        findings,
        stats,
        records,
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

/// What the received events say about one resource.
#[derive(Debug, Default)]
struct Explained {
    created: bool,
    public: bool,
    accounts: BTreeSet<String>,
    principals: BTreeSet<String>,
}

impl Explained {
    fn from_events(events: &[&Observation], id: &str) -> Explained {
        let mut explained = Explained::default();
        for o in events {
            match &o.fact {
                Fact::SnapshotCreated { snapshot, .. } | Fact::SnapshotCopied { snapshot, .. }
                    if snapshot.id == id =>
                {
                    explained.created = true
                }
                Fact::ImageRegistered { image, .. } if image.id == id => explained.created = true,
                Fact::SnapshotShared { snapshot, audience } if snapshot.id == id => {
                    match audience {
                        Audience::Public => explained.public = true,
                        Audience::Accounts(accounts) => {
                            explained.accounts.extend(accounts.iter().cloned())
                        }
                        Audience::Principals(principals) => {
                            explained.principals.extend(principals.iter().cloned())
                        }
                    }
                }
                _ => {}
            }
        }
        explained
    }
}

/// A change since the previous listing that no received event accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// Not there at the previous listing, and no creation event.
    Appeared,
    /// Granted since the previous listing (or on a new resource), and no share event.
    Granted(Permissions),
}

fn unexplained_change(
    item: &InventoryItem,
    state: &CurrentState<'_>,
    explained: &Explained,
    creation_explained: bool,
) -> Option<Change> {
    if state.appeared && !creation_explained {
        return Some(Change::Appeared);
    }
    let before = state.before.map(|seen| &seen.permissions);
    let now = &item.permissions;
    let granted = Permissions {
        public: now.public && !before.is_some_and(|b| b.public) && !explained.public,
        accounts: now
            .accounts
            .iter()
            .filter(|a| !before.is_some_and(|b| b.accounts.contains(*a)))
            .filter(|a| !explained.accounts.contains(*a))
            .cloned()
            .collect(),
        principals: now
            .principals
            .iter()
            .filter(|p| !before.is_some_and(|b| b.principals.contains(*p)))
            .filter(|p| !explained.principals.contains(*p))
            .cloned()
            .collect(),
    };
    (!granted.is_private()).then_some(Change::Granted(granted))
}

fn kind_label(resource: &Resource) -> &'static str {
    match resource.kind {
        ResourceKind::DbSnapshot => "DB snapshot",
        ResourceKind::Image => "image",
        _ => "snapshot",
    }
}

fn describe_grants(p: &Permissions) -> String {
    let mut parts = Vec::new();
    if p.public {
        parts.push("everyone (public)".to_string());
    }
    parts.extend(p.accounts.iter().map(|a| format!("account {a}")));
    parts.extend(p.principals.iter().cloned());
    parts.join(", ")
}

fn permissions_key(p: &Permissions) -> String {
    let accounts: Vec<&str> = p.accounts.iter().map(String::as_str).collect();
    let principals: Vec<&str> = p.principals.iter().map(String::as_str).collect();
    format!(
        "public={};accounts={};principals={}",
        p.public,
        accounts.join(","),
        principals.join(",")
    )
}

/// The baseline event behind an exposure: the same id as long as the exposure is the same, so a
/// rerun stores nothing new.
fn exposure_event(
    inventory: &Inventory,
    item: &InventoryItem,
    audiences: Vec<Audience>,
    now: DateTime<Utc>,
) -> ParsedEvent {
    let key: Vec<String> = audiences
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    ParsedEvent {
        meta: baseline_meta(
            inventory,
            item,
            format!("{}:{}", item.resource.id, short_hash(&key)),
            now,
        ),
        facts: audiences
            .into_iter()
            .map(|audience| Fact::SnapshotShared {
                snapshot: item.resource.clone(),
                audience,
            })
            .collect(),
    }
}

fn baseline_meta(
    inventory: &Inventory,
    item: &InventoryItem,
    key: String,
    now: DateTime<Utc>,
) -> EventMeta {
    EventMeta {
        id: format!("{BASELINE_EVENT_PREFIX}{key}"),
        name: item.observed_via.clone(),
        time: now,
        actor: None,
        source_ip: None,
        cloud: inventory.cloud,
        account: inventory.account.clone(),
        region: Some(inventory.region.clone()),
        automation: None,
    }
}

fn unexplained_finding(
    inventory: &Inventory,
    item: &InventoryItem,
    state: &CurrentState<'_>,
    change: Change,
    now: DateTime<Utc>,
) -> Finding {
    let id = &item.resource.id;
    let what = format!("{} {id}", kind_label(&item.resource));
    let region = &inventory.region;
    let since = state
        .before
        .map(|seen| {
            format!(
                " between {} and {}",
                rfc3339(seen.seen_at),
                rfc3339(state.first_seen)
            )
        })
        .unwrap_or_default();
    let (change_key, title, summary) = match &change {
        Change::Appeared => {
            let grants = if item.permissions.is_private() {
                String::new()
            } else {
                format!(", shared with {}", describe_grants(&item.permissions))
            };
            (
                format!("appeared;{}", permissions_key(&item.permissions)),
                format!("{what} appeared with no creation event"),
                format!(
                    "The scheduled baseline found {what} in {region}{grants}, created{}; no received event created it. Events from this account and region may be missing (trail stopped, EventBridge rule changed, outage).",
                    item.created.map(|t| format!(" {}", rfc3339(t))).unwrap_or_else(|| " at an unknown time".into())
                ),
            )
        }
        Change::Granted(granted) => (
            format!("granted;{}", permissions_key(granted)),
            format!("{what} shared with no share event"),
            format!(
                "The scheduled baseline found {what} in {region} newly shared with {}{since}; no received event granted it. Events from this account and region may be missing (trail stopped, EventBridge rule changed, outage).",
                describe_grants(granted)
            ),
        ),
    };
    // The same change is one finding however many runs see it; a later, separate change is another.
    let change_hash = short_hash(&[&change_key, &state.first_seen.timestamp().to_string()]);
    let meta = baseline_meta(inventory, item, format!("{id}:{change_hash}"), now);
    let mut resources = vec![id.clone()];
    if let Some(with) = &item.created_with {
        resources.push(with.id.clone());
    }
    resources.sort();
    resources.dedup();
    Finding {
        id: finding_id(
            Rule::SnapshotUnexplained,
            inventory.cloud,
            &format!("{id}#{change_hash}"),
        ),
        rule: Rule::SnapshotUnexplained.id().to_string(),
        severity: Rule::SnapshotUnexplained.severity(),
        cloud: inventory.cloud,
        account: inventory.account.clone(),
        region: Some(inventory.region.clone()),
        snapshot: id.clone(),
        resources,
        actors: Vec::new(),
        techniques: Rule::SnapshotUnexplained
            .techniques()
            .iter()
            .map(|t| t.to_string())
            .collect(),
        events: vec![ChainEvent {
            id: meta.id,
            name: meta.name,
            time: now,
            actor: None,
            source_ip: None,
        }],
        first_seen: now,
        last_seen: now,
        title,
        summary,
        next_steps: next_steps(Rule::SnapshotUnexplained),
        found_by: FoundBy::Baseline,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_records<T: serde::de::DeserializeOwned>(
    resource: &str,
    stored: &[StoredFact],
) -> Result<Vec<T>, EngineError> {
    stored
        .iter()
        .map(|fact| {
            serde_json::from_str(&fact.body).map_err(|source| EngineError::CorruptFact {
                resource: resource.to_string(),
                key: fact.key.clone(),
                source,
            })
        })
        .collect()
}

fn encode<T: Serialize>(value: &T, context: &str) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(|source| EngineError::Encode {
        event_id: format!("{BASELINE_EVENT_PREFIX}{context}"),
        source,
    })
}

#[cfg(test)]
mod tests;

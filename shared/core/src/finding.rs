//! Finding assembly: what a rule decided, made into the [`Finding`] users receive (its id, the
//! chain's events, resources and actors, home account and region, techniques, provenance), and
//! the order findings are reported in.

use crate::graph::is_origin_fact;
use crate::inventory::{Inventory, InventoryItem};
use crate::model::{baseline_event_id, ChainEvent, Cloud, Finding, FoundBy, Observation, Origin};
use crate::rules::unexplained::{self, Change, PermissionState};
use crate::rules::{Hit, Rule, T1578_002};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};

/// The order findings are reported in: first seen, then rule id, then id, so output is stable.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.first_seen, a.rule.id(), &a.id).cmp(&(b.first_seen, b.rule.id(), &b.id))
    });
}

/// The stable finding id: the same (rule, chain anchor) always gets the same id.
pub fn finding_id(rule: Rule, cloud: Cloud, anchor: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule.id().as_bytes());
    h.update([0]);
    h.update(cloud.as_str().as_bytes());
    h.update([0]);
    h.update(anchor.as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("sw-{hex}")
}

/// 16 hex digits identifying `parts` (in order): ids of baseline events, changes and records.
pub(crate) fn short_hash(parts: &[&str]) -> String {
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

/// The finding of a graph rule's hit.
pub(crate) fn assemble(hit: Hit<'_>) -> Finding {
    let mut all: Vec<&Observation> = hit
        .triggers
        .iter()
        .chain(hit.context.iter())
        .copied()
        .collect();
    all.sort_by_cached_key(|o| (o.event.time, o.key()));
    all.dedup_by(|a, b| a.key() == b.key());
    let mut events: Vec<ChainEvent> = Vec::new();
    let mut listed: HashSet<&str> = HashSet::new();
    for o in &all {
        if !listed.insert(o.event.id.as_str()) {
            continue;
        }
        events.push(ChainEvent {
            id: o.event.id.clone(),
            name: o.event.name.clone(),
            time: o.event.time,
            actor: o.event.actor.clone(),
            source_ip: o.event.source_ip.clone(),
        });
    }
    let resources: BTreeSet<String> = all
        .iter()
        .flat_map(|o| o.fact.mentioned_resources())
        .map(|r| r.id.clone())
        .collect();
    let actors: BTreeSet<String> = all.iter().filter_map(|o| o.event.actor.clone()).collect();
    let root = hit.root.clone().unwrap_or_else(|| hit.anchor.to_string());
    // Account and region of the root snapshot when its creation is known, else of the
    // first triggering event.
    let home = all
        .iter()
        .find(|o| is_origin_fact(&o.fact, &root))
        .or_else(|| hit.triggers.first())
        .or_else(|| all.first());
    let cloud = home.map(|o| o.event.cloud).unwrap_or(Cloud::Aws);
    let mut techniques: Vec<String> = hit
        .rule
        .techniques()
        .iter()
        .map(|t| t.to_string())
        .collect();
    if hit.instance_involved && !techniques.iter().any(|t| t == T1578_002) {
        techniques.push(T1578_002.to_string());
    }
    // Found by the baseline only when no received event triggered it.
    let found_by = if hit.triggers.iter().all(|o| o.origin == Origin::Baseline) {
        FoundBy::Baseline
    } else {
        FoundBy::Events
    };
    let first_seen = events.first().map(|e| e.time).unwrap_or_default();
    let last_seen = events.last().map(|e| e.time).unwrap_or_default();
    Finding {
        id: finding_id(hit.rule, cloud, hit.anchor),
        rule: hit.rule,
        severity: hit.rule.severity(),
        cloud,
        account: home.map(|o| o.event.account.clone()).unwrap_or_default(),
        region: home.and_then(|o| o.event.region.clone()),
        snapshot: root,
        resources: resources.into_iter().collect(),
        actors: actors.into_iter().collect(),
        techniques,
        events,
        first_seen,
        last_seen,
        title: hit.title,
        summary: hit.summary,
        next_steps: hit.rule.next_steps(),
        found_by,
        response: None,
    }
}

/// The `snapshot.unexplained` finding of a change the baseline's listing saw.
pub(crate) fn assemble_unexplained(
    inventory: &Inventory,
    item: &InventoryItem,
    state: &PermissionState<'_>,
    change: &Change,
    now: DateTime<Utc>,
) -> Finding {
    let rule = Rule::SnapshotUnexplained;
    let id = &item.resource.id;
    let wording = unexplained::wording(inventory, item, state, change);
    // The same change is one finding however many runs see it; a later, separate change is another.
    let change_hash = short_hash(&[
        &wording.change_key,
        &state.first_seen.timestamp().to_string(),
    ]);
    let mut resources = vec![id.clone()];
    if let Some(with) = &item.created_with {
        resources.push(with.id.clone());
    }
    resources.sort();
    resources.dedup();
    Finding {
        id: finding_id(rule, inventory.cloud, &format!("{id}#{change_hash}")),
        rule,
        severity: rule.severity(),
        cloud: inventory.cloud,
        account: inventory.account.clone(),
        region: Some(inventory.region.clone()),
        snapshot: id.clone(),
        resources,
        actors: Vec::new(),
        techniques: rule.techniques().iter().map(|t| t.to_string()).collect(),
        events: vec![ChainEvent {
            id: baseline_event_id(&format!("{id}:{change_hash}")),
            name: item.observed_via.clone(),
            time: now,
            actor: None,
            source_ip: None,
        }],
        first_seen: now,
        last_seen: now,
        title: wording.title,
        summary: wording.summary,
        next_steps: unexplained::next_steps(inventory.cloud),
        found_by: FoundBy::Baseline,
        response: None,
    }
}

#[cfg(test)]
mod tests;

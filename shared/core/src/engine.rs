//! The chain engine: stores facts per resource, walks the links between resources, evaluates the
//! rules for every chain a new fact may have completed, and delivers each finding at most once.
//!
//! Order independence comes from storing facts and re-evaluating whole chains rather than keeping
//! a state machine per chain; idempotency from fact keys (`event id # index`) and conditional
//! alert claims in the store.

use crate::baseline::is_baseline_event;
use crate::config::Config;
use crate::model::{
    Audience, ChainEvent, Fact, Finding, FoundBy, Observation, ParsedEvent, Protocol, Resource,
    ResourceKind,
};
use crate::ports::{
    AlertSink, Claim, ResourceFacts, SinkError, StateStore, StoreError, StoredFact,
};
use crate::rules::{Rule, T1578_002};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// A node with more children than this (a golden AMI launched thousands of times, a default
/// security group) is expanded only to its first children in id order, so one event cannot make
/// an evaluation unbounded.
pub const MAX_CHILDREN_PER_NODE: usize = 1_000;
/// Cloud batch reads take at most 100 keys; the engine never asks for more at once.
pub const LOAD_BATCH: usize = 100;
/// Listener ports of the managed database engines (SQL Server, Oracle, MySQL/MariaDB,
/// PostgreSQL, Redshift, Db2): an opening of one of them on a database's network group exposes
/// the database as an admin port exposes an instance.
pub const DATABASE_PORTS: &[u16] = &[1433, 1521, 3306, 5432, 5439, 50000];
/// Automation that shares a snapshot only with the service's own account or agent, to do its
/// own work on it (GuardDuty Malware Protection's scan, a Google service agent). AWS Backup and
/// DLM share with the accounts a person configured, so a use after their share is still an
/// outside use.
const SELF_SHARING_AUTOMATION: &[&str] = &[
    "guardduty-malware-protection",
    crate::parse::gcp::SERVICE_AGENT_AUTOMATION,
];
/// How long a won alert claim may stay unsent before another delivery attempt may take it over.
pub const CLAIM_LEASE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored fact {key:?} under {resource:?} cannot be decoded")]
    CorruptFact {
        resource: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("fact of event {event_id:?} cannot be encoded")]
    Encode {
        event_id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl EngineError {
    /// Whether retrying the whole invocation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::CorruptFact { .. } | EngineError::Encode { .. } => false,
        }
    }
}

/// What ingesting one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Facts not seen before (0 for a redelivered event).
    pub new_facts: usize,
    /// Resource ids whose chains must be re-evaluated.
    pub touched: Vec<String>,
}

/// What delivering findings to one sink did.
#[derive(Debug, Default)]
pub struct Delivery {
    pub sent: Vec<String>,
    pub already_sent: usize,
    pub held_by_other: usize,
    pub below_threshold: usize,
    /// Permanently rejected by the sink: reported, settled, never retried.
    pub rejected: Vec<(String, SinkError)>,
    /// Failed transiently: the claim was released so a retry sends them.
    pub retry: Vec<(String, SinkError)>,
}

impl Delivery {
    pub fn needs_retry(&self) -> bool {
        !self.retry.is_empty()
    }
}

/// The detector: the rules over one state store.
pub struct Detector<S> {
    store: S,
    config: Config,
}

impl<S: StateStore> Detector<S> {
    pub fn new(store: S, config: Config) -> Self {
        Detector { store, config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stores the event's facts under every resource they link. Idempotent.
    pub async fn ingest(&self, event: &ParsedEvent) -> Result<Ingested, EngineError> {
        let expires_at = event.meta.time.timestamp() + self.config.window_secs();
        let mut per_resource: BTreeMap<&str, Vec<StoredFact>> = BTreeMap::new();
        for (index, fact) in event.facts.iter().enumerate() {
            let observation = Observation {
                event: event.meta.clone(),
                index: index as u32,
                fact: fact.clone(),
            };
            let body =
                serde_json::to_string(&observation).map_err(|source| EngineError::Encode {
                    event_id: event.meta.id.clone(),
                    source,
                })?;
            let stored = StoredFact {
                key: observation.key(),
                expires_at,
                body,
            };
            let mut ids: Vec<&str> = fact
                .linked_resources()
                .iter()
                .map(|r| r.id.as_str())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                per_resource.entry(id).or_default().push(stored.clone());
            }
        }
        if per_resource.is_empty() {
            return Ok(Ingested::default());
        }
        let batch: Vec<ResourceFacts> = per_resource
            .into_iter()
            .map(|(resource, facts)| ResourceFacts {
                resource: resource.to_string(),
                facts,
            })
            .collect();
        let touched = batch.iter().map(|rf| rf.resource.clone()).collect();
        let new_facts = self.store.add_facts(&batch).await?;
        Ok(Ingested { new_facts, touched })
    }

    /// Evaluates every chain the `touched` resources take part in, as an event at `as_of` sees
    /// them: with every stored fact that can still link to it (facts of events at most the
    /// window before `as_of`, and all later ones). Each rule checks that its chain fits in one
    /// window of the chain's own events, so the result does not depend on when it is asked.
    /// Pure with respect to the store (reads only): the same state gives the same findings.
    pub async fn evaluate(
        &self,
        touched: &[String],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<Finding>, EngineError> {
        self.evaluate_in_chunks(touched, as_of, usize::MAX).await
    }

    /// Like [`Detector::evaluate`] over every fact the store still holds, whatever its age: the
    /// batch path of `snapwatch scan`, where each chain is judged in its own time.
    pub async fn evaluate_held(
        &self,
        touched: &[String],
        chunk: usize,
    ) -> Result<Vec<Finding>, EngineError> {
        self.evaluate_in_chunks(touched, DateTime::<Utc>::MIN_UTC, chunk)
            .await
    }

    /// Evaluates `touched` `chunk` resources at a time, so the facts held decoded at once follow
    /// one chunk's chains rather than the whole batch. Nodes large enough to be hubs (a snapshot
    /// with thousands of restores) stay decoded across chunks, so each is loaded once and
    /// evaluation stays linear in the facts. Findings are deduplicated and sorted.
    pub async fn evaluate_in_chunks(
        &self,
        touched: &[String],
        as_of: DateTime<Utc>,
        chunk: usize,
    ) -> Result<Vec<Finding>, EngineError> {
        // Facts are visible when they can link to an event at `as_of`: expires_at >= as_of.
        let horizon = as_of
            .checked_sub_signed(chrono::Duration::seconds(1))
            .unwrap_or(as_of);
        let mut graph = Graph::new(&self.store, horizon);
        let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
        for part in touched.chunks(chunk.max(1)) {
            let anchors = graph.affected(part).await?;
            graph.load_ancestors(&anchors).await?;
            let ctx = RuleContext {
                graph: &graph,
                config: &self.config,
            };
            for anchor in &anchors {
                for finding in ctx.evaluate_anchor(anchor) {
                    findings.insert(finding.id.clone(), finding);
                }
            }
            graph.forget_small_nodes();
        }
        let mut out: Vec<Finding> = findings.into_values().collect();
        sort_findings(&mut out);
        Ok(out)
    }

    /// Ingests one event and evaluates what it touched: the per-event path of the functions.
    /// The chain is judged as of the event's own time (never later than `now`), so a late event
    /// links to the facts that were within the window of it, as the scan does.
    pub async fn process(
        &self,
        event: &ParsedEvent,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, EngineError> {
        let ingested = self.ingest(event).await?;
        // Always re-evaluate, even for a redelivery: the earlier attempt may have stored the facts
        // and then failed before delivering. Claims make the re-evaluation alert nothing twice.
        self.evaluate(&ingested.touched, event.meta.time.min(now))
            .await
    }

    /// Delivers findings at or above the configured severity to `sink`, each at most once per
    /// sink across retries, redeliveries and concurrent handlers (claim → send → mark sent).
    pub async fn deliver<K: AlertSink>(
        &self,
        findings: &[Finding],
        sink: &K,
        now: DateTime<Utc>,
    ) -> Result<Delivery, EngineError> {
        let mut delivery = Delivery::default();
        let expires_at = now.timestamp() + self.config.window_secs();
        for finding in findings {
            if finding.severity < self.config.alerts.min_severity {
                delivery.below_threshold += 1;
                continue;
            }
            let claim_id = format!("{}@{}", finding.id, sink.name());
            match self
                .store
                .claim_alert(&claim_id, now, CLAIM_LEASE_SECS, expires_at)
                .await?
            {
                Claim::AlreadySent => delivery.already_sent += 1,
                Claim::HeldByOther => delivery.held_by_other += 1,
                Claim::Won => match sink.send(finding).await {
                    Ok(()) => {
                        self.store.mark_alert_sent(&claim_id).await?;
                        delivery.sent.push(finding.id.clone());
                    }
                    Err(err) if err.is_retryable() => {
                        self.store.release_alert(&claim_id).await?;
                        tracing::warn!(finding = %finding.id, sink = sink.name(), error = %err, "alert not delivered; released for retry");
                        delivery.retry.push((finding.id.clone(), err));
                    }
                    Err(err) => {
                        // A permanent rejection will not succeed on retry: settle it and report.
                        self.store.mark_alert_sent(&claim_id).await?;
                        tracing::error!(finding = %finding.id, sink = sink.name(), error = %err, "alert rejected by sink");
                        delivery.rejected.push((finding.id.clone(), err));
                    }
                },
            }
        }
        Ok(delivery)
    }
}

/// The order findings are reported in: first seen, then rule, then id, so output is stable.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| (a.first_seen, &a.rule, &a.id).cmp(&(b.first_seen, &b.rule, &b.id)));
}

/// The stable finding id: the same (rule, chain anchor) always gets the same id.
pub fn finding_id(rule: Rule, cloud: crate::model::Cloud, anchor: &str) -> String {
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

/// Whether an ingress source is the internet: `*`/`Internet`/`Any`, or a CIDR whose prefix is
/// so short it spans public address space (`0.0.0.0/0`, `::/0`, `0.0.0.0/1`…). Decided on the
/// parsed prefix length, never on the string `0.0.0.0/0`.
pub fn is_internet_source(source: &str) -> bool {
    let s = source.trim();
    if ["*", "internet", "any", "0.0.0.0", "::"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
    {
        return true;
    }
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(prefix)) = (addr.trim().parse::<IpAddr>(), prefix.trim().parse::<u8>())
    else {
        return false;
    };
    match addr {
        IpAddr::V4(v4) => {
            prefix == 0
                || (prefix <= 8 && !v4.is_private() && !v4.is_loopback() && v4.octets()[0] != 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            prefix == 0 || (prefix <= 16 && !unique_local && !link_local && !v6.is_loopback())
        }
    }
}

/// Whether an ingress rule reaches an admin port (or every port).
pub fn opens_admin_port(
    protocol: Protocol,
    ports: &[crate::model::PortRange],
    admin: &[u16],
) -> bool {
    match protocol {
        Protocol::All => true,
        Protocol::Tcp | Protocol::Udp => ports
            .iter()
            .any(|r| r.is_all() || admin.iter().any(|p| r.contains(*p))),
        Protocol::Other => false,
    }
}

/// A node with at least this many observations is kept decoded across evaluation chunks: it is
/// a hub many chains share, and reloading it per chunk made evaluation quadratic.
pub const HUB_OBSERVATIONS: usize = 256;

/// Facts loaded so far in one evaluation, per resource id.
struct Graph<'s, S> {
    store: &'s S,
    /// Passed to [`StateStore::load_facts`]: facts expiring after it are visible.
    horizon: DateTime<Utc>,
    nodes: HashMap<String, Vec<Observation>>,
    /// Per node, where its observations of each role are, so that rules evaluated on each of a
    /// hub's thousands of dependents never scan the hub's whole list.
    index: HashMap<String, NodeIndex>,
}

/// Positions in a node's observations, by the role the node plays in them.
#[derive(Default)]
struct NodeIndex {
    /// Origin facts of the node ([`is_origin_fact`]).
    origins: Vec<usize>,
    /// Network memberships where the node is the member.
    member_of: Vec<usize>,
    /// Ingress openings on the node (a network group).
    opened: Vec<usize>,
}

impl NodeIndex {
    fn of(id: &str, observations: &[Observation]) -> Self {
        let mut index = NodeIndex::default();
        for (i, o) in observations.iter().enumerate() {
            if is_origin_fact(&o.fact, id) {
                index.origins.push(i);
            }
            match &o.fact {
                Fact::NetworkMember { member, .. } if member.id == id => index.member_of.push(i),
                Fact::IngressOpened { group, .. } if group.id == id => index.opened.push(i),
                _ => {}
            }
        }
        index
    }
}

const EMPTY: &[Observation] = &[];

impl<'s, S: StateStore> Graph<'s, S> {
    fn new(store: &'s S, horizon: DateTime<Utc>) -> Self {
        Graph {
            store,
            horizon,
            nodes: HashMap::new(),
            index: HashMap::new(),
        }
    }

    fn obs(&self, id: &str) -> &[Observation] {
        self.nodes.get(id).map(Vec::as_slice).unwrap_or(EMPTY)
    }

    fn indexed<'g>(
        &'g self,
        id: &str,
        role: impl Fn(&NodeIndex) -> &[usize],
    ) -> impl Iterator<Item = &'g Observation> + 'g {
        let obs = self.obs(id);
        let positions: &'g [usize] = self.index.get(id).map(role).unwrap_or(&[]);
        positions.iter().filter_map(move |&i| obs.get(i))
    }

    /// The node's origin facts (creation, copy, registration, share, export, outside use).
    fn origin_obs<'g>(&'g self, id: &str) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.origins)
    }

    /// The network memberships in which the node is the member.
    fn member_obs<'g>(&'g self, id: &str) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.member_of)
    }

    /// The ingress openings on the node.
    fn opening_obs<'g>(&'g self, id: &str) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.opened)
    }

    /// Drops decoded nodes too small to be hubs; they are cheap to load again if a later chunk
    /// needs them, and dropping them keeps memory to one chunk's chains plus the hubs.
    fn forget_small_nodes(&mut self) {
        self.nodes.retain(|_, obs| obs.len() >= HUB_OBSERVATIONS);
        let nodes = &self.nodes;
        self.index.retain(|id, _| nodes.contains_key(id));
    }

    async fn load(&mut self, ids: impl IntoIterator<Item = String>) -> Result<(), EngineError> {
        let missing: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.nodes.contains_key(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(LOAD_BATCH) {
            let loaded = self.store.load_facts(chunk, self.horizon).await?;
            for id in chunk {
                self.nodes.entry(id.clone()).or_default();
            }
            for rf in loaded {
                let mut observations = Vec::with_capacity(rf.facts.len());
                for stored in &rf.facts {
                    let obs: Observation =
                        serde_json::from_str(&stored.body).map_err(|source| {
                            EngineError::CorruptFact {
                                resource: rf.resource.clone(),
                                key: stored.key.clone(),
                                source,
                            }
                        })?;
                    observations.push(obs);
                }
                // Deterministic order whatever order the store returns.
                observations.sort_by_cached_key(|o| (o.event.time, o.key()));
                observations.dedup_by(|a, b| a.key() == b.key());
                self.index.insert(
                    rf.resource.clone(),
                    NodeIndex::of(&rf.resource, &observations),
                );
                self.nodes.insert(rf.resource, observations);
            }
        }
        Ok(())
    }

    /// Every resource whose chains may change because `touched` changed: the touched resources
    /// and everything downstream of them (copies, restores, instances, group members).
    async fn affected(&mut self, touched: &[String]) -> Result<BTreeSet<String>, EngineError> {
        let mut visited: BTreeSet<String> = touched.iter().cloned().collect();
        let mut frontier: Vec<String> = visited.iter().cloned().collect();
        while !frontier.is_empty() {
            self.load(frontier.iter().cloned()).await?;
            let mut next = BTreeSet::new();
            for id in &frontier {
                let kids: BTreeSet<&str> = self
                    .obs(id)
                    .iter()
                    .flat_map(|o| children(&o.fact, id))
                    .map(|r| r.id.as_str())
                    .collect();
                if kids.len() > MAX_CHILDREN_PER_NODE {
                    tracing::warn!(resource = %crate::render::escape_line(id), children = kids.len(), limit = MAX_CHILDREN_PER_NODE, "resource has too many dependents; evaluating the first ones only");
                }
                for kid in kids.into_iter().take(MAX_CHILDREN_PER_NODE) {
                    if !visited.contains(kid) {
                        visited.insert(kid.to_string());
                        next.insert(kid.to_string());
                    }
                }
            }
            frontier = next.into_iter().collect();
        }
        Ok(visited)
    }

    /// Loads everything upstream of `ids` (sources, snapshots, disks, groups).
    async fn load_ancestors(&mut self, ids: &BTreeSet<String>) -> Result<(), EngineError> {
        let mut seen: BTreeSet<String> = ids.clone();
        let mut frontier: Vec<String> = ids.iter().cloned().collect();
        while !frontier.is_empty() {
            self.load(frontier.iter().cloned()).await?;
            let mut next = BTreeSet::new();
            for id in &frontier {
                for o in self.obs(id) {
                    for p in parents(&o.fact, id) {
                        if seen.insert(p.id.clone()) {
                            next.insert(p.id.clone());
                        }
                    }
                }
            }
            frontier = next.into_iter().collect();
        }
        Ok(())
    }
}

/// Downstream links of `id` stated by `fact`.
fn children<'f>(fact: &'f Fact, id: &str) -> Vec<&'f Resource> {
    match fact {
        Fact::SnapshotCopied { snapshot, source } if source.id == id => vec![snapshot],
        Fact::ImageRegistered { image, snapshots } if snapshots.iter().any(|s| s.id == id) => {
            vec![image]
        }
        Fact::RestoredFrom { resource, snapshot } if snapshot.id == id => vec![resource],
        Fact::Uses { instance, disk } if disk.id == id => vec![instance],
        Fact::NetworkMember { member, group, .. } if group.id == id => vec![member],
        _ => vec![],
    }
}

/// Upstream links of `id` stated by `fact`.
fn parents<'f>(fact: &'f Fact, id: &str) -> Vec<&'f Resource> {
    match fact {
        Fact::SnapshotCopied { snapshot, source } if snapshot.id == id => vec![source],
        Fact::ImageRegistered { image, snapshots } if image.id == id => snapshots.iter().collect(),
        Fact::RestoredFrom { resource, snapshot } if resource.id == id => vec![snapshot],
        Fact::Uses { instance, disk } if instance.id == id => vec![disk],
        Fact::NetworkMember { member, group, .. } if member.id == id => vec![group],
        _ => vec![],
    }
}

/// Facts that make a snapshot-like resource part of a chain we watched (not merely referenced
/// by a launch from some public image).
fn is_origin_fact(fact: &Fact, id: &str) -> bool {
    match fact {
        Fact::SnapshotCreated { snapshot, .. } => snapshot.id == id,
        Fact::SnapshotCopied { snapshot, .. } => snapshot.id == id,
        Fact::ImageRegistered { image, .. } => image.id == id,
        Fact::SnapshotShared { snapshot, .. }
        | Fact::SnapshotExported { snapshot, .. }
        | Fact::UsedExternally { snapshot, .. } => snapshot.id == id,
        _ => false,
    }
}

struct RuleContext<'a, 's, S> {
    graph: &'a Graph<'s, S>,
    config: &'a Config,
}

/// A rule that fired on an anchor: the observations that triggered it and the chain around them.
struct Hit<'a> {
    rule: Rule,
    anchor: &'a str,
    root: Option<String>,
    triggers: Vec<&'a Observation>,
    context: Vec<&'a Observation>,
    title: String,
    summary: String,
    instance_involved: bool,
}

impl<'a, 's, S: StateStore> RuleContext<'a, 's, S> {
    fn evaluate_anchor(&self, anchor: &'a str) -> Vec<Finding> {
        let mut hits = Vec::new();
        self.share_rules(anchor, &mut hits);
        self.restored_by_other(anchor, &mut hits);
        self.exposed_restore(anchor, &mut hits);
        hits.into_iter().map(|h| self.finding(h)).collect()
    }

    fn kind_of(&self, id: &str) -> Option<ResourceKind> {
        self.graph.obs(id).iter().find_map(|o| {
            o.fact
                .mentioned_resources()
                .into_iter()
                .find(|r| r.id == id)
                .map(|r| r.kind)
        })
    }

    fn actor_trusted(&self, o: &Observation) -> bool {
        o.event
            .actor
            .as_deref()
            .is_some_and(|a| self.config.is_trusted_principal(a))
    }

    /// The snapshot's lineage: its own origin facts and those of every ancestor, plus the root.
    fn lineage(&self, id: &'a str) -> (String, Vec<&'a Observation>) {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        let mut out = Vec::new();
        let mut roots = BTreeSet::new();
        while let Some(node) = stack.pop() {
            if !seen.insert(node.clone()) {
                continue;
            }
            let mut ups = Vec::new();
            for o in self.graph.origin_obs(&node) {
                out.push(o);
                match &o.fact {
                    Fact::SnapshotCopied { snapshot, source } if snapshot.id == node => {
                        ups.push(source.id.clone())
                    }
                    Fact::ImageRegistered { image, snapshots } if image.id == node => {
                        ups.extend(snapshots.iter().map(|s| s.id.clone()))
                    }
                    _ => {}
                }
            }
            if ups.is_empty() {
                roots.insert(node.clone());
            }
            stack.extend(ups);
        }
        let root = roots.into_iter().next().unwrap_or_else(|| id.to_string());
        (root, out)
    }

    fn share_rules(&self, anchor: &'a str, hits: &mut Vec<Hit<'a>>) {
        let mut public = Vec::new();
        let mut shared = Vec::new();
        let mut shared_with = BTreeSet::new();
        let mut exported = Vec::new();
        let mut methods = BTreeSet::new();
        let mut used = Vec::new();
        let mut used_by = BTreeSet::new();
        for o in self.graph.obs(anchor) {
            let own = o.event.account.as_str();
            match &o.fact {
                Fact::SnapshotShared { snapshot, audience } if snapshot.id == anchor => {
                    if o.event.automation.is_some() {
                        continue;
                    }
                    match audience {
                        Audience::Public => public.push(o),
                        Audience::Accounts(accounts) => {
                            let outside: Vec<&String> = accounts
                                .iter()
                                .filter(|a| !self.config.is_trusted_account(own, a))
                                .collect();
                            if !outside.is_empty() {
                                shared_with.extend(outside.into_iter().cloned());
                                shared.push(o);
                            }
                        }
                        Audience::Principals(principals) => {
                            let outside: Vec<&String> = principals
                                .iter()
                                .filter(|p| !self.config.is_trusted_principal(p))
                                .collect();
                            if !outside.is_empty() {
                                shared_with.extend(outside.into_iter().cloned());
                                shared.push(o);
                            }
                        }
                    }
                }
                Fact::SnapshotExported { snapshot, method }
                    if snapshot.id == anchor
                        && o.event.automation.is_none()
                        && !self.actor_trusted(o) =>
                {
                    methods.insert(method.clone());
                    exported.push(o);
                }
                // The other account's use is the signal, whoever it was; only a use that the
                // chain shows a managed service itself granted (and no person) is the service's
                // own work.
                Fact::UsedExternally { snapshot, account }
                    if snapshot.id == anchor
                        && !self.config.is_trusted_account(own, account)
                        && !self.granted_only_by_automation(
                            anchor,
                            account,
                            o.event.actor.as_deref(),
                        ) =>
                {
                    used_by.insert(account.clone());
                    used.push(o);
                }
                _ => {}
            }
        }
        if public.is_empty() && shared.is_empty() && exported.is_empty() && used.is_empty() {
            return;
        }
        let (root, context) = self.lineage(anchor);
        let what = self.describe(anchor);
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        if !public.is_empty() {
            hits.push(Hit {
                rule: Rule::SnapshotPublic,
                anchor,
                root: Some(root.clone()),
                summary: format!(
                    "{} made {what} public ({}); anyone can copy or restore its data.",
                    actor_of(public[0]),
                    public[0].event.name
                ),
                title: format!("{what} made public"),
                triggers: public,
                context: context.clone(),
                instance_involved: false,
            });
        }
        if !shared.is_empty() {
            hits.push(Hit {
                rule: Rule::SnapshotSharedExternal,
                anchor,
                root: Some(root.clone()),
                title: format!("{what} shared outside the trusted accounts"),
                summary: format!(
                    "{} shared {what} with {} ({}); they can restore it in their own account.",
                    actor_of(shared[0]),
                    join(&shared_with),
                    shared[0].event.name
                ),
                triggers: shared,
                context: context.clone(),
                instance_involved: false,
            });
        }
        if !exported.is_empty() {
            hits.push(Hit {
                rule: Rule::SnapshotExported,
                anchor,
                root: Some(root.clone()),
                title: format!("{what} data read out directly"),
                summary: format!(
                    "{} read {what}'s data out via {} ({} call(s)).",
                    actor_of(exported[0]),
                    join(&methods),
                    exported.len()
                ),
                triggers: exported,
                context: context.clone(),
                instance_involved: false,
            });
        }
        if !used.is_empty() {
            hits.push(Hit {
                rule: Rule::SnapshotUsedExternally,
                anchor,
                root: Some(root),
                title: format!("{what} used by an outside account"),
                summary: format!(
                    "Account(s) {} restored or copied {what} ({}).",
                    join(&used_by),
                    used[0].event.name
                ),
                triggers: used,
                context,
                instance_involved: false,
            });
        }
    }

    /// Whether the shares in the chain that let `account` (or the principal `user` acting for
    /// it) use `anchor` were all made by a service sharing with itself: GuardDuty Malware
    /// Protection sharing its scan snapshot with its own account, a Google service agent granting
    /// itself a disk. False when a person (or automation a person configures, such as DLM) shared
    /// with it, made the snapshot public, or nobody in the state shared with it at all.
    fn granted_only_by_automation(&self, anchor: &str, account: &str, user: Option<&str>) -> bool {
        let mut by_automation = false;
        for o in self.graph.obs(anchor) {
            if let Fact::SnapshotShared { snapshot, audience } = &o.fact {
                if snapshot.id == anchor && audience_admits(audience, account, user) {
                    let self_sharing = o
                        .event
                        .automation
                        .as_deref()
                        .is_some_and(|label| SELF_SHARING_AUTOMATION.contains(&label));
                    if !self_sharing {
                        return false;
                    }
                    by_automation = true;
                }
            }
        }
        by_automation
    }

    fn restored_by_other(&self, anchor: &'a str, hits: &mut Vec<Hit<'a>>) {
        if !self
            .kind_of(anchor)
            .is_some_and(ResourceKind::is_snapshot_like)
        {
            return;
        }
        let window = self.config.window_secs();
        let creators: Vec<&Observation> = self
            .graph
            .obs(anchor)
            .iter()
            .filter(|o| {
                matches!(&o.fact,
                    Fact::SnapshotCreated { snapshot, .. } | Fact::SnapshotCopied { snapshot, .. } if snapshot.id == anchor)
                    || matches!(&o.fact, Fact::ImageRegistered { image, .. } if image.id == anchor)
            })
            .filter(|o| o.event.actor.is_some())
            .collect();
        if creators.is_empty() {
            return;
        }
        let restores: Vec<&Observation> = self
            .graph
            .obs(anchor)
            .iter()
            .filter(
                |o| matches!(&o.fact, Fact::RestoredFrom { snapshot, .. } if snapshot.id == anchor),
            )
            .filter(|o| o.event.automation.is_none() && !self.actor_trusted(o))
            .filter(|o| {
                let Some(actor) = o.event.actor.as_deref() else {
                    return false;
                };
                creators
                    .iter()
                    .all(|c| c.event.actor.as_deref() != Some(actor))
                    && creators
                        .iter()
                        .any(|c| (o.event.time - c.event.time).num_seconds().abs() <= window)
            })
            .collect();
        if restores.is_empty() {
            return;
        }
        let (root, context) = self.lineage(anchor);
        let what = self.describe(anchor);
        let instance_involved = restores.iter().any(|o| {
            matches!(&o.fact, Fact::RestoredFrom { resource, .. } if resource.kind == ResourceKind::Instance)
        });
        hits.push(Hit {
            rule: Rule::SnapshotRestoredByOther,
            anchor,
            root: Some(root),
            title: format!("{what} restored by someone other than its creator"),
            summary: format!(
                "{} restored {what}, which {} created ({}).",
                actor_of(restores[0]),
                actor_of(creators[0]),
                restores[0].event.name
            ),
            triggers: restores,
            context,
            instance_involved,
        });
    }

    /// An exposed restore is one chain: the snapshot's origin, the restore, the instance's
    /// network membership and the opening. It fires only when all of them fit in one window of
    /// their own times, as they would have been held together had the events arrived live.
    fn exposed_restore(&self, anchor: &'a str, hits: &mut Vec<Hit<'a>>) {
        if !matches!(
            self.kind_of(anchor),
            Some(ResourceKind::Instance | ResourceKind::Database)
        ) {
            return;
        }
        // Cheap test first: with no time limit at all, nothing fires on most anchors.
        let Some(unbounded) = self.exposed_restore_between(anchor, i64::MIN, i64::MAX) else {
            return;
        };
        // Any chain that fits in a window starts at one of the observations the unbounded
        // evaluation used; try those starts in time order and keep the first that fires.
        let window = self.config.window_secs();
        let mut starts: Vec<i64> = unbounded
            .triggers
            .iter()
            .chain(unbounded.context.iter())
            .map(|o| o.event.time.timestamp())
            .collect();
        starts.sort_unstable();
        starts.dedup();
        for start in starts {
            if let Some(hit) =
                self.exposed_restore_between(anchor, start, start.saturating_add(window))
            {
                hits.push(hit);
                return;
            }
        }
    }

    /// The exposed-restore chain of `anchor` using only observations between `from` and `to`
    /// (unix seconds, inclusive).
    fn exposed_restore_between(&self, anchor: &'a str, from: i64, to: i64) -> Option<Hit<'a>> {
        let g = self.graph;
        let inside = |o: &Observation| (from..=to).contains(&o.event.time.timestamp());
        // Restores of this instance from a watched snapshot-like resource: directly (boot disk
        // built from it) or through a disk restored from it and attached.
        let mut restores: Vec<(&Observation, Option<&Observation>, &str)> = Vec::new();
        for o in g.obs(anchor).iter().filter(|o| inside(o)) {
            match &o.fact {
                Fact::RestoredFrom { resource, snapshot } if resource.id == anchor => {
                    restores.push((o, None, snapshot.id.as_str()));
                }
                Fact::Uses { instance, disk } if instance.id == anchor => {
                    for d in g.obs(&disk.id).iter().filter(|d| inside(d)) {
                        if let Fact::RestoredFrom { resource, snapshot } = &d.fact {
                            if resource.id == disk.id {
                                restores.push((d, Some(o), snapshot.id.as_str()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // An instance launched from an image nobody in the state made (a marketplace AMI) is no
        // chain of ours. A database is only ever restored from a backup holding someone's data,
        // and RDS automated snapshots and point-in-time backups leave no creation event.
        let is_database = self.kind_of(anchor) == Some(ResourceKind::Database);
        restores.retain(|(r, _, snap)| {
            r.event.automation.is_none() && (is_database || g.origin_obs(snap).any(&inside))
        });
        if restores.is_empty() {
            return None;
        }
        // Network groups the instance is in (directly, or through its NICs), with its tags.
        let mut memberships: Vec<&Observation> = Vec::new();
        let mut tags: BTreeSet<&str> = BTreeSet::new();
        let mut groups: Vec<&str> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![anchor];
        while let Some(node) = stack.pop() {
            if !seen.insert(node) {
                continue;
            }
            for o in g.member_obs(node).filter(|o| inside(o)) {
                if let Fact::NetworkMember {
                    member,
                    group,
                    tags: t,
                } = &o.fact
                {
                    if member.id == node {
                        memberships.push(o);
                        tags.extend(t.iter().map(String::as_str));
                        groups.push(group.id.as_str());
                        stack.push(group.id.as_str());
                    }
                }
            }
        }
        // Behind a database's network group only its listener is reachable: its database port
        // counts as the admin port.
        let mut admin = self.config.chain.admin_ports.clone();
        if is_database {
            admin.extend_from_slice(DATABASE_PORTS);
        }
        let admin = &admin;
        let mut openings: Vec<&Observation> = g
            .obs(anchor)
            .iter()
            .filter(|o| {
                inside(o)
                    && matches!(&o.fact, Fact::PublicEndpoint { resource, sources, .. }
                    if resource.id == anchor
                        && (sources.is_empty() || sources.iter().any(|s| is_internet_source(s))))
                    && o.event.automation.is_none()
            })
            .collect();
        for group in &groups {
            for o in g.opening_obs(group).filter(|o| inside(o)) {
                if let Fact::IngressOpened {
                    group: gr,
                    protocol,
                    ports,
                    sources,
                    target_tags,
                    ..
                } = &o.fact
                {
                    if gr.id == *group
                        && o.event.automation.is_none()
                        && sources.iter().any(|s| is_internet_source(s))
                        && opens_admin_port(*protocol, ports, admin)
                        && (target_tags.is_empty()
                            || target_tags.iter().any(|t| tags.contains(t.as_str())))
                    {
                        openings.push(o);
                    }
                }
            }
        }
        let window = self.config.window_secs();
        let within = |r: &Observation, i: &Observation| {
            (r.event.time - i.event.time).num_seconds().abs() <= window
        };
        let restores: Vec<_> = restores
            .into_iter()
            .filter(|(r, _, _)| openings.iter().any(|i| within(r, i)))
            .collect();
        let openings: Vec<&Observation> = openings
            .into_iter()
            .filter(|i| restores.iter().any(|(r, _, _)| within(r, i)))
            .collect();
        if restores.is_empty() || openings.is_empty() {
            return None;
        }
        let mut context: Vec<&Observation> = memberships;
        let mut roots = BTreeSet::new();
        for (r, uses, snap) in &restores {
            context.push(r);
            if let Some(u) = uses {
                context.push(u);
            }
            let (root, lineage) = self.lineage(snap);
            roots.insert(root);
            context.extend(lineage);
        }
        // The restore itself may be the opening (RDS `publiclyAccessible` at restore time).
        context.retain(|c| !openings.iter().any(|o| o.key() == c.key()));
        let mut triggers: Vec<&Observation> = restores.iter().map(|(r, _, _)| *r).collect();
        triggers.extend(openings.iter().copied());
        let what = self.describe(anchor);
        let root = roots.into_iter().next();
        let ports = describe_openings(&openings);
        let verb = if is_database {
            "was restored from"
        } else {
            "runs on a restore of"
        };
        Some(Hit {
            rule: Rule::ChainExposedRestore,
            anchor,
            title: format!("{what} restored from a snapshot and opened to the internet"),
            summary: format!(
                "{what} {verb} {} ({} by {}), and {} opened {ports} to the internet ({}).",
                root.as_deref().unwrap_or("a snapshot"),
                restores[0].0.event.name,
                actor_of(restores[0].0),
                actor_of(openings[0]),
                openings[0].event.name,
            ),
            root,
            triggers,
            context,
            instance_involved: true,
        })
    }

    fn describe(&self, id: &str) -> String {
        let kind = match self.kind_of(id) {
            Some(ResourceKind::Snapshot) => "snapshot",
            Some(ResourceKind::DbSnapshot) => "DB snapshot",
            Some(ResourceKind::Image) => "image",
            Some(ResourceKind::Disk) => "disk",
            Some(ResourceKind::Database) => "database",
            Some(ResourceKind::Instance) => "instance",
            Some(ResourceKind::NetworkInterface) => "network interface",
            Some(ResourceKind::NetworkGroup) => "network group",
            None => "resource",
        };
        format!("{kind} {id}")
    }

    fn finding(&self, hit: Hit<'a>) -> Finding {
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
        let cloud = home
            .map(|o| o.event.cloud)
            .unwrap_or(crate::model::Cloud::Aws);
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
        let found_by = if hit.triggers.iter().all(|o| is_baseline_event(&o.event)) {
            FoundBy::Baseline
        } else {
            FoundBy::Events
        };
        let first_seen = events.first().map(|e| e.time).unwrap_or_default();
        let last_seen = events.last().map(|e| e.time).unwrap_or_default();
        Finding {
            id: finding_id(hit.rule, cloud, hit.anchor),
            rule: hit.rule.id().to_string(),
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
            next_steps: next_steps(hit.rule),
            found_by,
        }
    }
}

/// Whether a share's audience lets `account` (AWS account id, GCP project) or the principal
/// `user` use the snapshot: it is public, names the account, names the principal (GCP members
/// are `type:email`), or names a service account of that project.
fn audience_admits(audience: &Audience, account: &str, user: Option<&str>) -> bool {
    match audience {
        Audience::Public => true,
        Audience::Accounts(accounts) => accounts.iter().any(|a| a.trim() == account),
        Audience::Principals(principals) => principals.iter().any(|p| {
            let email = p.split_once(':').map_or(p.as_str(), |(_, email)| email);
            user.is_some_and(|u| email.eq_ignore_ascii_case(u))
                || email.rsplit_once('@').is_some_and(|(_, domain)| {
                    domain.eq_ignore_ascii_case(&format!("{account}.iam.gserviceaccount.com"))
                })
        }),
    }
}

fn actor_of(o: &Observation) -> &str {
    o.event.actor.as_deref().unwrap_or("an unknown principal")
}

fn describe_openings(openings: &[&Observation]) -> String {
    let mut parts = BTreeSet::new();
    for o in openings {
        if let Fact::PublicEndpoint { setting, .. } = &o.fact {
            parts.insert(format!("its endpoint ({setting})"));
        }
        if let Fact::IngressOpened {
            protocol, ports, ..
        } = &o.fact
        {
            match protocol {
                Protocol::All => {
                    parts.insert("all ports".to_string());
                }
                _ => {
                    for r in ports {
                        parts.insert(if r.is_all() {
                            "all ports".to_string()
                        } else if r.from == r.to {
                            format!("port {}", r.from)
                        } else {
                            format!("ports {}-{}", r.from, r.to)
                        });
                    }
                }
            }
        }
    }
    parts.into_iter().collect::<Vec<_>>().join(", ")
}

pub(crate) fn next_steps(rule: Rule) -> Vec<String> {
    let steps: &[&str] = match rule {
        Rule::SnapshotPublic => &[
            "Remove the public permission now (ModifySnapshotAttribute remove group all / RDS valuesToRemove all / setIamPolicy without allUsers).",
            "Enable account-level block public access for snapshots and AMIs.",
            "Assume the data was copied: review what the snapshot contains and rotate secrets on it.",
            "Investigate the actor's session: other API calls, source IP, credentials used.",
        ],
        Rule::SnapshotSharedExternal => &[
            "Confirm whether the receiving account is a known partner; if not, remove the share.",
            "Look for SharedSnapshotCopyInitiated / SharedSnapshotVolumeCreated evidence of use.",
            "Investigate the actor's session and credentials.",
        ],
        Rule::SnapshotExported => &[
            "Revoke access (end SAS access / EndSnapshotAccess, cancel the export task).",
            "Identify where the data went (destination bucket, client IPs) and the principal's other activity.",
        ],
        Rule::SnapshotUsedExternally => &[
            "Treat the snapshot's data as exfiltrated: rotate credentials and keys stored on it.",
            "Remove any remaining share and find who granted it.",
        ],
        Rule::SnapshotRestoredByOther => &[
            "Confirm the restore with its creator and the restoring principal.",
            "Check what the restored resource is attached to and who can reach it.",
        ],
        Rule::ChainExposedRestore => &[
            "Isolate the instance: revoke the opening ingress rule or move it to a quarantine group.",
            "Snapshot the instance for forensics before terminating it.",
            "Trace the restored snapshot's origin and who launched the instance; rotate secrets it held.",
        ],
        Rule::SnapshotUnexplained => &[
            "Check that the CloudTrail trail logs management events in this region and that snapwatch's EventBridge rule and function are enabled and unchanged.",
            "Find who made the change in CloudTrail event history or the trail's S3 logs (snapwatch scan reads them).",
            "If the snapshot or permission is not expected, remove the permission or delete the snapshot.",
        ],
    };
    steps.iter().map(|s| s.to_string()).collect()
}

mod as_one;
#[cfg(test)]
mod gap_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

//! The chain graph: the stored observations of each resource, loaded from the state store, and
//! the links between resources (copies, registrations, restores, attachments, memberships) that
//! chains are walked along. The rules read a loaded `Graph`; the `GraphLoader` fills it.

use crate::error::{decode_stored, EngineError};
use crate::model::{Fact, Observation, Resource, ResourceKind};
use crate::ports::StateStore;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A node with more children than this (a golden AMI launched thousands of times, a default
/// security group) is expanded only to its first children in id order, so one event cannot make
/// an evaluation unbounded.
pub const MAX_CHILDREN_PER_NODE: usize = 1_000;
/// Cloud batch reads take at most 100 keys; the engine never asks for more at once.
pub const LOAD_BATCH: usize = 100;
/// A node with at least this many observations is kept decoded across evaluation chunks: it is
/// a hub many chains share, and reloading it per chunk made evaluation quadratic.
pub const HUB_OBSERVATIONS: usize = 256;

/// The observations loaded so far, per resource id, with an index of the roles each node plays.
#[derive(Default)]
pub(crate) struct Graph {
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

impl Graph {
    /// Every loaded observation stored under `id`, in time order.
    pub(crate) fn obs(&self, id: &str) -> &[Observation] {
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
    pub(crate) fn origin_obs<'g>(&'g self, id: &str) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.origins)
    }

    /// The network memberships in which the node is the member.
    pub(crate) fn member_obs<'g>(&'g self, id: &str) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.member_of)
    }

    /// The ingress openings on the node.
    pub(crate) fn opening_obs<'g>(
        &'g self,
        id: &str,
    ) -> impl Iterator<Item = &'g Observation> + 'g {
        self.indexed(id, |ix| &ix.opened)
    }

    /// The node's kind, as the first observation that names it says.
    pub(crate) fn kind_of(&self, id: &str) -> Option<ResourceKind> {
        self.obs(id).iter().find_map(|o| {
            o.fact
                .mentioned_resources()
                .into_iter()
                .find(|r| r.id == id)
                .map(|r| r.kind)
        })
    }

    /// The node as a finding's title and summary name it: `snapshot snap-…`.
    pub(crate) fn describe(&self, id: &str) -> String {
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

    /// The snapshot's lineage: its own origin facts and those of every ancestor, plus the root.
    pub(crate) fn lineage<'g>(&'g self, id: &str) -> (String, Vec<&'g Observation>) {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        let mut out = Vec::new();
        let mut roots = BTreeSet::new();
        while let Some(node) = stack.pop() {
            if !seen.insert(node.clone()) {
                continue;
            }
            let mut ups = Vec::new();
            for o in self.origin_obs(&node) {
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

    /// Drops decoded nodes too small to be hubs; they are cheap to load again if a later chunk
    /// needs them, and dropping them keeps memory to one chunk's chains plus the hubs.
    fn forget_small_nodes(&mut self) {
        self.nodes.retain(|_, obs| obs.len() >= HUB_OBSERVATIONS);
        let nodes = &self.nodes;
        self.index.retain(|id, _| nodes.contains_key(id));
    }
}

/// Fills a [`Graph`] from the state store, one evaluation's worth.
pub(crate) struct GraphLoader<'s, S> {
    store: &'s S,
    /// Passed to [`StateStore::load_facts`]: facts expiring after it are visible.
    horizon: DateTime<Utc>,
    graph: Graph,
}

impl<'s, S: StateStore> GraphLoader<'s, S> {
    /// An empty graph over `store`, seeing the facts that expire after `horizon`.
    pub(crate) fn new(store: &'s S, horizon: DateTime<Utc>) -> Self {
        GraphLoader {
            store,
            horizon,
            graph: Graph::default(),
        }
    }

    /// What is loaded so far.
    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    /// See [`Graph::forget_small_nodes`].
    pub(crate) fn forget_small_nodes(&mut self) {
        self.graph.forget_small_nodes();
    }

    async fn load(&mut self, ids: impl IntoIterator<Item = String>) -> Result<(), EngineError> {
        let missing: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.graph.nodes.contains_key(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(LOAD_BATCH) {
            let loaded = self.store.load_facts(chunk, self.horizon).await?;
            for id in chunk {
                self.graph.nodes.entry(id.clone()).or_default();
            }
            for rf in loaded {
                let mut observations = Vec::with_capacity(rf.facts.len());
                for stored in &rf.facts {
                    observations.push(decode_stored::<Observation>(&rf.resource, stored)?);
                }
                // Deterministic order whatever order the store returns.
                observations.sort_by_cached_key(|o| (o.event.time, o.key()));
                observations.dedup_by(|a, b| a.key() == b.key());
                self.graph.index.insert(
                    rf.resource.clone(),
                    NodeIndex::of(&rf.resource, &observations),
                );
                self.graph.nodes.insert(rf.resource, observations);
            }
        }
        Ok(())
    }

    /// Loads every chain `touched` takes part in and returns its anchors: the touched resources
    /// and everything downstream of them (copies, restores, instances, group members), with
    /// everything upstream of those (sources, snapshots, disks, groups) loaded as well.
    ///
    /// Both directions are walked together, one level per store read: a level holds the
    /// children of the downstream nodes just loaded and the parents of every node just loaded.
    /// Walking down to the end and only then up read the same nodes in more requests (one per
    /// level of each walk), and on the per-event path each request is a DynamoDB read.
    ///
    /// The children of the touched nodes in `parent_only` (the event gave them only links
    /// naming a new child, see [`names_only_children`]) are not walked: such a node is still
    /// loaded, judged as an anchor and its ancestors loaded, but its other dependents' chains
    /// did not change. It is walked after all when it is reached as a dependent of a node that
    /// is walked. The batch path passes no such node.
    pub(crate) async fn load_chains(
        &mut self,
        touched: &[String],
        parent_only: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, EngineError> {
        // Anchors: downstream of `touched`. `queued`: every node asked for, either way.
        let mut downstream: BTreeSet<String> = touched.iter().cloned().collect();
        let mut queued: BTreeSet<String> = downstream.clone();
        // Anchors whose children are not walked (yet).
        let mut unwalked: BTreeSet<String> =
            downstream.intersection(parent_only).cloned().collect();
        // Node → whether it is downstream (its children are walked too) or only upstream.
        let mut frontier: BTreeMap<String, bool> = downstream
            .iter()
            .map(|id| (id.clone(), !unwalked.contains(id)))
            .collect();
        while !frontier.is_empty() {
            self.load(frontier.keys().cloned()).await?;
            let mut next: BTreeMap<String, bool> = BTreeMap::new();
            for (id, is_downstream) in &frontier {
                if *is_downstream {
                    let kids: BTreeSet<&str> = self
                        .graph
                        .obs(id)
                        .iter()
                        .flat_map(|o| children(&o.fact, id))
                        .map(|r| r.id.as_str())
                        .collect();
                    if kids.len() > MAX_CHILDREN_PER_NODE {
                        tracing::warn!(resource = %crate::render::escape_line(id), children = kids.len(), limit = MAX_CHILDREN_PER_NODE, "resource has too many dependents; evaluating the first ones only");
                    }
                    for kid in kids.into_iter().take(MAX_CHILDREN_PER_NODE) {
                        // A node first reached as an ancestor becomes an anchor here, and its
                        // children are walked (it is loaded already, so this costs no read).
                        if downstream.insert(kid.to_string()) {
                            queued.insert(kid.to_string());
                            next.insert(kid.to_string(), true);
                        } else if unwalked.remove(kid) {
                            // Downstream of a changed node after all: its dependents are too.
                            next.insert(kid.to_string(), true);
                        }
                    }
                }
                for o in self.graph.obs(id) {
                    for p in parents(&o.fact, id) {
                        if queued.insert(p.id.clone()) {
                            next.entry(p.id.clone()).or_insert(false);
                        }
                    }
                }
            }
            frontier = next;
        }
        Ok(downstream)
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

/// Whether `fact`, stored under `id`, can change the chains of `id`'s descendants. Only a link
/// in which `id` is the parent and nothing else (a restore, copy, registration, use or
/// membership naming a child) cannot: a rule anchored at a node reads the node's own
/// observations and, of its ancestors, only their origin facts ([`Graph::lineage`], the restore
/// check of exposed-restore), a disk's own restore, a group's memberships as a member and its
/// ingress openings (exposed-restore), never an ancestor's links to its other children.
/// Anything else (an origin, share, export, outside use, ingress opening, public endpoint, a
/// link naming `id` as the child) may, and is walked down.
pub(crate) fn changes_descendants(fact: &Fact, id: &str) -> bool {
    children(fact, id).is_empty() || !parents(fact, id).is_empty() || is_origin_fact(fact, id)
}

/// Whether the event whose `facts` these are stores under `id` only links naming a child of
/// it ([`changes_descendants`] is false for each): its chain is judged, its other dependents'
/// chains need not be.
pub(crate) fn names_only_children(facts: &[Fact], id: &str) -> bool {
    let mut stored_under_id = facts
        .iter()
        .filter(|f| f.linked_resources().iter().any(|r| r.id == id))
        .peekable();
    stored_under_id.peek().is_some() && stored_under_id.all(|f| !changes_descendants(f, id))
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
pub(crate) fn is_origin_fact(fact: &Fact, id: &str) -> bool {
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

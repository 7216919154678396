//! Provider-neutral vocabulary: events, resources, facts and findings.
//!
//! Parsers turn raw cloud records into [`ParsedEvent`]s; the engine only ever sees these types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The cloud provider a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Amazon Web Services (CloudTrail, EventBridge).
    Aws,
    /// Microsoft Azure (Activity Log).
    Azure,
    /// Google Cloud (Cloud Audit Logs).
    Gcp,
}

impl Cloud {
    /// The name used in finding JSON and configuration: `aws`, `azure` or `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered from least to most severe, so `>=` compares severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look, not an alert on its own.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The name used in finding JSON and configuration: `info` … `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (expected info, low, medium, high or critical)"
            )),
        }
    }
}

/// What one audit record says about who did what, when and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Unique per record: CloudTrail `eventID`, Activity Log `eventDataId` (or
    /// `correlationId`+`operationId`), GCP `insertId`. Redeliveries share it.
    pub id: String,
    /// API / operation / method name as the cloud logged it.
    pub name: String,
    /// When the cloud says the operation happened.
    pub time: DateTime<Utc>,
    /// Principal: ARN, UPN / object id, or e-mail. `None` when the record does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Caller address as logged (an IP, or a service name such as `ec2.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Which cloud logged the record.
    pub cloud: Cloud,
    /// AWS account id / Azure subscription id / GCP project id where the record was logged.
    pub account: String,
    /// Region or location of the operation, when the record names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Set when the evidence shows a cloud service's own automation acted (AWS Backup, DLM,
    /// GuardDuty malware scan, Auto Scaling…). Such facts still link chains but never trigger
    /// a rule by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<String>,
}

/// What sort of resource a [`Resource`] is, across clouds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// EBS snapshot, Azure snapshot, GCP snapshot.
    Snapshot,
    /// RDS DB snapshot or DB cluster snapshot.
    DbSnapshot,
    /// AMI, GCP image.
    Image,
    /// EBS volume, Azure managed disk, GCP disk.
    Disk,
    /// RDS DB instance or cluster.
    Database,
    /// EC2 instance, Azure VM, GCE instance.
    Instance,
    /// Azure NIC / AWS ENI: joins an instance to network groups.
    NetworkInterface,
    /// AWS security group, Azure NSG, GCP VPC network (firewall rules attach to it).
    NetworkGroup,
}

impl ResourceKind {
    /// Snapshot-like resources are the roots and anchors of chains.
    pub fn is_snapshot_like(self) -> bool {
        matches!(
            self,
            ResourceKind::Snapshot | ResourceKind::DbSnapshot | ResourceKind::Image
        )
    }
}

/// A resource reference. `id` must be unique within its cloud: EC2 ids, RDS ARNs, lower-cased
/// Azure resource ids, GCP `projects/…` paths. Parsers are responsible for normalising.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    /// What sort of resource it is.
    pub kind: ResourceKind,
    /// Its normalised id, unique within its cloud.
    pub id: String,
}

impl Resource {
    /// A reference to resource `id` of `kind` (the id must already be normalised).
    pub fn new(kind: ResourceKind, id: impl Into<String>) -> Self {
        Resource {
            kind,
            id: id.into(),
        }
    }
}

/// Who a snapshot was shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "with")]
pub enum Audience {
    /// `group: all`, RDS `all`, `allUsers`, `allAuthenticatedUsers`.
    Public,
    /// AWS account ids / Azure subscriptions / GCP projects.
    Accounts(Vec<String>),
    /// Named principals (GCP `user:`/`serviceAccount:`/`group:`/`domain:` members).
    Principals(Vec<String>),
}

/// IP protocol of an ingress rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `-1`, `all`, `*`: every protocol and so every port.
    All,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP and anything else that has no ports.
    Other,
}

/// Inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub from: u16,
    /// Last port of the range (inclusive).
    pub to: u16,
}

impl PortRange {
    /// Every port.
    pub const ALL: PortRange = PortRange { from: 0, to: 65535 };
    /// The range holding only `port`.
    pub fn single(port: u16) -> Self {
        PortRange {
            from: port,
            to: port,
        }
    }
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }
    /// Whether the range covers every port (a range from port 0 or 1 to 65535).
    pub fn is_all(&self) -> bool {
        self.from <= 1 && self.to == 65535
    }
}

/// One normalized statement a record makes. Facts link resources by id; the engine stores each
/// fact under every resource it names and walks those links to find chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fact")]
pub enum Fact {
    /// A snapshot (or image, or DB snapshot) was taken, optionally of a known source
    /// (volume, disk, instance, database). The source is context only, not a chain link:
    /// a volume's daily snapshots are not one chain.
    SnapshotCreated {
        /// The new snapshot, image or DB snapshot.
        snapshot: Resource,
        /// What it was taken of, when the record says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<Resource>,
    },
    /// A snapshot was made from another snapshot (`CopySnapshot`, `CopyDBSnapshot`, GCP
    /// snapshot of a disk restored…): lineage `source → snapshot`.
    SnapshotCopied {
        /// The new copy.
        snapshot: Resource,
        /// The snapshot it was copied from.
        source: Resource,
    },
    /// An image was registered over snapshots (`RegisterImage` with block device mappings).
    ImageRegistered {
        /// The new image.
        image: Resource,
        /// The snapshots backing its block devices.
        snapshots: Vec<Resource>,
    },
    /// Sharing permission added.
    SnapshotShared {
        /// The shared snapshot.
        snapshot: Resource,
        /// Who it was shared with.
        audience: Audience,
    },
    /// The snapshot's data was read out directly (SAS URL, EBS direct API, RDS export).
    SnapshotExported {
        /// The snapshot read out.
        snapshot: Resource,
        /// How, as logged (the API or access kind), for the report.
        method: String,
    },
    /// Victim-side evidence that another account used our snapshot.
    UsedExternally {
        /// Our snapshot.
        snapshot: Resource,
        /// The other account that used it.
        account: String,
    },
    /// `resource` (disk, volume, database, or an instance whose boot disk was built from it)
    /// was created from `snapshot`.
    RestoredFrom {
        /// The resource built from the snapshot.
        resource: Resource,
        /// The snapshot it was built from.
        snapshot: Resource,
    },
    /// An instance runs on a disk / volume (attach, VM storage profile).
    Uses {
        /// The instance.
        instance: Resource,
        /// The disk or volume it runs on.
        disk: Resource,
    },
    /// `member` (instance, NIC, database) belongs to network `group` (security group, NSG, VPC
    /// network). `tags` are GCP network tags / service accounts used by firewall targeting.
    NetworkMember {
        /// The instance, NIC or database joining the network.
        member: Resource,
        /// The security group, NSG or VPC network.
        group: Resource,
        /// GCP network tags / service accounts of the member.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
    /// An inbound allow rule was added to `group`.
    IngressOpened {
        /// The security group, NSG or VPC network the rule belongs to.
        group: Resource,
        /// The protocol the rule admits.
        protocol: Protocol,
        /// The ports the rule admits (ignored when the protocol has none).
        ports: Vec<PortRange>,
        /// CIDRs or service tags as logged (`0.0.0.0/0`, `::/0`, `Internet`, `*`).
        sources: Vec<String>,
        /// GCP target tags / service accounts; empty means every member of the group.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        target_tags: Vec<String>,
        /// Rule name or id, for the report.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// A managed database was made reachable from the internet by a setting of its own rather
    /// than by a network group's rule: RDS `publiclyAccessible`, Cloud SQL authorized networks,
    /// an Azure database server's public network access with a firewall rule.
    PublicEndpoint {
        /// The database (instance, cluster or server).
        resource: Resource,
        /// The setting as logged (`publiclyAccessible`, `authorizedNetworks`…), for the report.
        setting: String,
        /// Addresses the setting admits; empty when the setting alone opens it to everyone.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sources: Vec<String>,
    },
}

impl Fact {
    /// Every resource this fact names that is a chain node (stored under, walked through).
    pub fn linked_resources(&self) -> Vec<&Resource> {
        match self {
            Fact::SnapshotCreated { snapshot, .. } => vec![snapshot],
            Fact::SnapshotCopied { snapshot, source } => vec![source, snapshot],
            Fact::ImageRegistered { image, snapshots } => {
                let mut v: Vec<&Resource> = snapshots.iter().collect();
                v.push(image);
                v
            }
            Fact::SnapshotShared { snapshot, .. }
            | Fact::SnapshotExported { snapshot, .. }
            | Fact::UsedExternally { snapshot, .. } => vec![snapshot],
            Fact::RestoredFrom { resource, snapshot } => vec![snapshot, resource],
            Fact::Uses { instance, disk } => vec![disk, instance],
            Fact::NetworkMember { member, group, .. } => vec![member, group],
            Fact::IngressOpened { group, .. } => vec![group],
            Fact::PublicEndpoint { resource, .. } => vec![resource],
        }
    }

    /// Every resource the fact mentions, including context-only ones (for `resources`).
    pub fn mentioned_resources(&self) -> Vec<&Resource> {
        let mut v = self.linked_resources();
        if let Fact::SnapshotCreated {
            source: Some(source),
            ..
        } = self
        {
            v.push(source);
        }
        v
    }

    /// The fact's `fact` tag in its JSON form (`snapshot_created`…), for logs and tests.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Fact::SnapshotCreated { .. } => "snapshot_created",
            Fact::SnapshotCopied { .. } => "snapshot_copied",
            Fact::ImageRegistered { .. } => "image_registered",
            Fact::SnapshotShared { .. } => "snapshot_shared",
            Fact::SnapshotExported { .. } => "snapshot_exported",
            Fact::UsedExternally { .. } => "used_externally",
            Fact::RestoredFrom { .. } => "restored_from",
            Fact::Uses { .. } => "uses",
            Fact::NetworkMember { .. } => "network_member",
            Fact::IngressOpened { .. } => "ingress_opened",
            Fact::PublicEndpoint { .. } => "public_endpoint",
        }
    }
}

/// What a parser makes of one relevant, successful record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedEvent {
    /// Who did what, when and where.
    pub meta: EventMeta,
    /// What the record states, in order; `(meta.id, index)` identifies each.
    pub facts: Vec<Fact>,
}

/// Where an observed event came from: a received audit record, or the scheduled baseline's own
/// listing of the account's snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// An audit record received through the event stream (or a scanned log).
    #[default]
    Events,
    /// A synthetic event the baseline made for an exposure no received event explains.
    Baseline,
}

impl Origin {
    /// Received events are the common case; their stored observations omit the field.
    fn is_events(&self) -> bool {
        *self == Origin::Events
    }
}

/// Event ids of the baseline's synthetic events start with this; no cloud's event ids do. The
/// ids keep it because findings list them; provenance itself is [`Observation::origin`].
pub const BASELINE_EVENT_PREFIX: &str = "snapwatch-baseline:";

/// The id of the baseline's synthetic event `key`.
pub(crate) fn baseline_event_id(key: &str) -> String {
    format!("{BASELINE_EVENT_PREFIX}{key}")
}

/// A fact together with the event that stated it: the unit the engine stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredObservation")]
pub struct Observation {
    /// The event that stated the fact.
    pub event: EventMeta,
    /// Position of the fact within its event: `(event.id, index)` is the fact's identity.
    pub index: u32,
    /// The fact itself.
    pub fact: Fact,
    /// Whether a received record or the baseline stated it.
    #[serde(default, skip_serializing_if = "Origin::is_events")]
    pub origin: Origin,
}

/// An observation as the stores hold it. Versions before [`Origin`] existed wrote no `origin`
/// field and marked baseline events only by their id prefix; such an item still reads as
/// [`Origin::Baseline`], so state written by them keeps its meaning.
#[derive(Deserialize)]
struct StoredObservation {
    event: EventMeta,
    index: u32,
    fact: Fact,
    #[serde(default)]
    origin: Option<Origin>,
}

impl From<StoredObservation> for Observation {
    fn from(stored: StoredObservation) -> Self {
        let origin = stored.origin.unwrap_or_else(|| {
            if stored.event.id.starts_with(BASELINE_EVENT_PREFIX) {
                Origin::Baseline
            } else {
                Origin::Events
            }
        });
        Observation {
            event: stored.event,
            index: stored.index,
            fact: stored.fact,
            origin,
        }
    }
}

impl Observation {
    /// Stable identity, used as the store key so redelivered events write nothing new.
    pub fn key(&self) -> String {
        format!("{}#{}", self.event.id, self.index)
    }
}

/// One event of a finding's chain, as the finding JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// The record's id ([`EventMeta::id`]).
    pub id: String,
    /// The operation as logged.
    pub name: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Who did it, if the record says.
    pub actor: Option<String>,
    /// From where, if the record says.
    pub source_ip: Option<String>,
}

/// The finding JSON the README's "Finding JSON" section promises. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable key of (rule, chain anchor): `sw-` plus 24 hex characters.
    pub id: String,
    /// The rule that fired (serialized as its stable id).
    pub rule: Rule,
    /// How bad it is.
    pub severity: Severity,
    /// Where the chain happened.
    pub cloud: Cloud,
    /// Account, subscription or project id.
    pub account: String,
    /// Region of the root snapshot, if known.
    pub region: Option<String>,
    /// Id of the chain's root snapshot, following copies and images back to the first.
    pub snapshot: String,
    /// Every resource id in the chain.
    pub resources: Vec<String>,
    /// Every principal that took part.
    pub actors: Vec<String>,
    /// ATT&CK technique ids (`T1578.001`…).
    pub techniques: Vec<String>,
    /// The chain's events, in event-time order.
    pub events: Vec<ChainEvent>,
    /// Time of the chain's first event.
    pub first_seen: DateTime<Utc>,
    /// Time of the chain's last event.
    pub last_seen: DateTime<Utc>,
    /// One line of plain text.
    pub title: String,
    /// One line of plain text saying what happened.
    pub summary: String,
    /// What a responder should do next.
    pub next_steps: Vec<String>,
    /// Whether received events or the scheduled snapshot baseline raised it.
    pub found_by: FoundBy,
    /// What the opt-in response did about it; absent when the rule's response mode is `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseReport>,
}

/// How the functions respond to a rule's findings (the README's "Response" section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseMode {
    /// Alert only (the default).
    #[default]
    Off,
    /// Re-read the resource and say in the alert exactly which call would be made; change nothing.
    DryRun,
    /// Re-read the resource and undo what the chain's own events added.
    Enforce,
}

impl ResponseMode {
    /// The name used in configuration and finding JSON: `off`, `dry-run` or `enforce`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Off => "off",
            ResponseMode::DryRun => "dry-run",
            ResponseMode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for ResponseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResponseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(ResponseMode::Off),
            "dry-run" => Ok(ResponseMode::DryRun),
            "enforce" => Ok(ResponseMode::Enforce),
            other => Err(format!(
                "unknown response mode {other:?} (expected off, dry-run or enforce)"
            )),
        }
    }
}

/// A finding's `response`: the mode it ran in and what each planned action came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseReport {
    /// The rule's response mode (`dry-run` or `enforce`).
    pub mode: ResponseMode,
    /// One entry per planned action, in plan order.
    pub actions: Vec<ActionReport>,
    /// Why there are no actions, or that an earlier attempt already responded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ResponseReport {
    /// Whether some action failed (the alert says so).
    pub fn failed(&self) -> bool {
        self.actions
            .iter()
            .any(|a| a.result == ActionResult::Failed)
    }
}

/// What one response action came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    /// The cloud API call, as `service:Operation` (`ec2:ModifySnapshotAttribute`).
    pub call: String,
    /// The resource the call targets (snapshot id, ARN, rule id, resource path).
    pub target: String,
    /// What the call removes, in words (`createVolumePermission group all`).
    pub change: String,
    /// What happened.
    pub result: ActionResult,
    /// Why it was skipped or failed; what a dry run found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was decided.
    pub at: DateTime<Utc>,
}

/// The result of one response action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionResult {
    /// Enforce: the call was made and succeeded.
    Done,
    /// Dry run: the re-read found what the call would remove; nothing was changed.
    WouldDo,
    /// The resource carries the exempt tag or label.
    SkippedExempt,
    /// What the chain added is no longer there (the resource, or the permission, is gone).
    SkippedGone,
    /// Someone changed it after the finding (re-added, or a rule no longer as opened): left alone.
    SkippedChanged,
    /// The call (or the re-read) failed; `reason` says why.
    Failed,
}

impl ActionResult {
    /// The name used in finding JSON (`done`, `would-do`, `skipped-exempt`…).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Done => "done",
            ActionResult::WouldDo => "would-do",
            ActionResult::SkippedExempt => "skipped-exempt",
            ActionResult::SkippedGone => "skipped-gone",
            ActionResult::SkippedChanged => "skipped-changed",
            ActionResult::Failed => "failed",
        }
    }
}

/// Which kind of evidence raised a finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Audit events received through the event stream (or a scanned log).
    #[default]
    Events,
    /// Only the scheduled listing of snapshots and their permissions saw it: no received event
    /// accounts for it.
    Baseline,
}

impl FoundBy {
    /// The name used in finding JSON: `events` or `baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Events => "events",
            FoundBy::Baseline => "baseline",
        }
    }
}

/// The rule catalogue's identities. Ids are stable: users filter and suppress on them, and the
/// finding JSON carries them as strings. What each rule means, and decides, is in [`crate::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `snapshot.public`
    SnapshotPublic,
    /// `snapshot.shared-external`
    SnapshotSharedExternal,
    /// `snapshot.exported`
    SnapshotExported,
    /// `snapshot.used-externally`
    SnapshotUsedExternally,
    /// `snapshot.restored-by-other`
    SnapshotRestoredByOther,
    /// `chain.exposed-restore`
    ChainExposedRestore,
    /// `snapshot.unexplained`
    SnapshotUnexplained,
}

impl Rule {
    /// Every rule, in catalogue order.
    pub const ALL: [Rule; 7] = [
        Rule::SnapshotPublic,
        Rule::SnapshotSharedExternal,
        Rule::SnapshotExported,
        Rule::SnapshotUsedExternally,
        Rule::SnapshotRestoredByOther,
        Rule::ChainExposedRestore,
        Rule::SnapshotUnexplained,
    ];

    /// The stable id findings carry.
    pub fn id(self) -> &'static str {
        match self {
            Rule::SnapshotPublic => "snapshot.public",
            Rule::SnapshotSharedExternal => "snapshot.shared-external",
            Rule::SnapshotExported => "snapshot.exported",
            Rule::SnapshotUsedExternally => "snapshot.used-externally",
            Rule::SnapshotRestoredByOther => "snapshot.restored-by-other",
            Rule::ChainExposedRestore => "chain.exposed-restore",
            Rule::SnapshotUnexplained => "snapshot.unexplained",
        }
    }

    /// The rule with this id, if any.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Tests and callers compare a finding's rule with its id as written in the README.
impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Rule::from_id(&id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule id {id:?}")))
    }
}

#[cfg(test)]
mod tests;

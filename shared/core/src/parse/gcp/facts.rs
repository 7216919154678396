//! The facts each consumed method states, read from the record's `resourceName`, `request`
//! and (for the created resource's location) `response`.

use super::record::{
    request_as, AttachedDisk, AuditLog, Binding, CreateRequest, FirewallAllowed, FirewallRequest,
    InstanceInsertRequest, SetIamPolicyRequest, SqlRequest,
};
use super::resource_path::{Collection, Location, ResourcePath, Scope};
use crate::model::{Audience, Fact, PortRange, Protocol, Resource, ResourceKind};
use crate::parse::ParseError;
use serde::de::DeserializeOwned;

/// The consumed methods, by the suffix they are logged with (see `CONSUMED_METHODS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    SnapshotInsert,
    DiskCreateSnapshot,
    SetIamPolicy(Collection),
    DiskInsert,
    ImageInsert,
    InstanceInsert,
    InstanceAttachDisk,
    FirewallWrite,
    /// Cloud SQL: restore a backup into an instance, clone one, create or update one.
    SqlRestoreBackup,
    SqlClone,
    SqlWrite,
}

impl Method {
    pub(super) fn from_suffix(suffix: &str) -> Option<Self> {
        Some(match suffix {
            "compute.snapshots.insert" => Method::SnapshotInsert,
            "compute.disks.createSnapshot" | "compute.regionDisks.createSnapshot" => {
                Method::DiskCreateSnapshot
            }
            "compute.snapshots.setIamPolicy" => Method::SetIamPolicy(Collection::Snapshots),
            "compute.images.setIamPolicy" => Method::SetIamPolicy(Collection::Images),
            "compute.disks.setIamPolicy" | "compute.regionDisks.setIamPolicy" => {
                Method::SetIamPolicy(Collection::Disks)
            }
            "compute.disks.insert" | "compute.regionDisks.insert" => Method::DiskInsert,
            "compute.images.insert" => Method::ImageInsert,
            "compute.instances.insert" => Method::InstanceInsert,
            "compute.instances.attachDisk" => Method::InstanceAttachDisk,
            "compute.firewalls.insert" | "compute.firewalls.patch" | "compute.firewalls.update" => {
                Method::FirewallWrite
            }
            "cloudsql.instances.restoreBackup" => Method::SqlRestoreBackup,
            "cloudsql.instances.clone" => Method::SqlClone,
            "cloudsql.instances.create" | "cloudsql.instances.update" => Method::SqlWrite,
            _ => return None,
        })
    }
}

/// What the fact extractors need from one successful, consumed record.
pub(super) struct Record<'a> {
    pub method: Method,
    /// The project the record was logged in, and the zone of its subject.
    pub scope: Scope<'a>,
    pub actor: Option<&'a str>,
    pub payload: &'a AuditLog,
}

impl Record<'_> {
    fn request<T: DeserializeOwned + Default>(&self) -> T {
        request_as(self.payload.request.as_ref())
    }

    fn resource_name(&self) -> Option<&str> {
        self.payload
            .resource_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
    }

    /// The resource the method acts on, named by `resourceName`.
    fn subject(&self, expected: Collection) -> Result<ResourcePath, ParseError> {
        let name = self
            .resource_name()
            .ok_or(ParseError::MissingField("protoPayload.resourceName"))?;
        ResourcePath::resolve(name, expected, self.scope).ok_or_else(|| ParseError::InvalidField {
            field: "protoPayload.resourceName",
            reason: format!("{name:?} does not name a Compute Engine {expected:?} resource"),
        })
    }

    /// The resource a create method makes: `resourceName`, else the request's `name` placed
    /// in the record's project (and zone).
    fn created(
        &self,
        expected: Collection,
        request_name: Option<&str>,
    ) -> Result<ResourcePath, ParseError> {
        if self.resource_name().is_some() {
            return self.subject(expected);
        }
        let name = request_name.ok_or(ParseError::MissingField("protoPayload.resourceName"))?;
        ResourcePath::named(expected, name, self.scope).ok_or_else(|| ParseError::InvalidField {
            field: "protoPayload.request.name",
            reason: format!("{name:?} is not a Compute Engine resource name"),
        })
    }

    /// An optional reference in the request. One that names nothing we can link (an image
    /// family, another collection, a placeholder) is left out, and logged for debugging.
    fn reference(
        &self,
        field: &'static str,
        raw: Option<&str>,
        expected: Collection,
        scope: Scope<'_>,
    ) -> Option<ResourcePath> {
        let raw = raw?;
        let path = ResourcePath::resolve(raw, expected, scope);
        if path.is_none() {
            tracing::debug!(
                field,
                value = raw,
                "unresolvable resource reference ignored"
            );
        }
        path
    }

    /// The scope for references made relative to `path` (the same project and zone).
    fn scope_at<'p>(&self, path: &'p ResourcePath) -> Scope<'p>
    where
        Self: 'p,
    {
        Scope {
            project: self.scope.project,
            zone: match &path.location {
                Location::Zone(zone) => Some(zone.as_str()),
                _ => self.scope.zone,
            },
        }
    }

    fn is_our_project(&self, path: &ResourcePath) -> bool {
        path.project == self.scope.project
    }
}

pub(super) fn facts(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    match record.method {
        Method::SnapshotInsert => snapshot_insert(record),
        Method::DiskCreateSnapshot => disk_create_snapshot(record),
        Method::SetIamPolicy(collection) => set_iam_policy(record, collection),
        Method::DiskInsert => disk_insert(record),
        Method::ImageInsert => image_insert(record),
        Method::InstanceInsert => instance_insert(record),
        Method::InstanceAttachDisk => attach_disk(record),
        Method::FirewallWrite => firewall_write(record),
        Method::SqlRestoreBackup => sql_restore_backup(record),
        Method::SqlClone => sql_clone(record),
        Method::SqlWrite => sql_write(record),
    }
}

// ---- Cloud SQL ------------------------------------------------------------------------------

/// A Cloud SQL instance: `projects/<p>/instances/<name>`, as `resourceName` logs it.
fn sql_instance(project: &str, name: &str) -> Resource {
    Resource::new(
        ResourceKind::Database,
        format!("projects/{project}/instances/{}", name.trim()),
    )
}

/// The instance a Cloud SQL record acts on: `resourceName`, else the request's
/// `project`/`instance` (or the body's `name`).
fn sql_subject(record: &Record<'_>, request: &SqlRequest) -> Result<Resource, ParseError> {
    if let Some(name) = record.resource_name() {
        let mut parts = name.trim_start_matches('/').split('/');
        if let (Some("projects"), Some(project), Some("instances"), Some(instance), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            return Ok(sql_instance(project, instance));
        }
        return Err(ParseError::InvalidField {
            field: "protoPayload.resourceName",
            reason: format!("{name:?} does not name a Cloud SQL instance"),
        });
    }
    let project = non_empty(request.project.as_deref()).unwrap_or(record.scope.project);
    let name = non_empty(request.instance.as_deref())
        .or_else(|| non_empty(request.body.as_ref()?.name.as_deref()))
        .ok_or(ParseError::MissingField("protoPayload.resourceName"))?;
    Ok(sql_instance(project, name))
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}

/// `instances.restoreBackup`: the backup (a backup run of an instance, or a backup resource)
/// overwrites the instance's data.
fn sql_restore_backup(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: SqlRequest = record.request();
    let instance = sql_subject(record, &request)?;
    let body = request.body.unwrap_or_default();
    let backup = match (body.backup.as_deref(), body.restore_backup_context) {
        (Some(backup), _) if !backup.trim().is_empty() => Some(backup.trim().to_string()),
        (_, Some(context)) => {
            let project = non_empty(context.project.as_deref()).unwrap_or(record.scope.project);
            let source = non_empty(context.instance_id.as_deref());
            let run = context.backup_run_id.as_ref().and_then(json_id);
            match (source, run) {
                (Some(source), Some(run)) => Some(format!(
                    "projects/{project}/instances/{source}/backupRuns/{run}"
                )),
                (Some(source), None) => {
                    Some(format!("projects/{project}/instances/{source}/backups"))
                }
                _ => None,
            }
        }
        _ => None,
    };
    Ok(backup
        .map(|backup| Fact::RestoredFrom {
            resource: instance,
            snapshot: Resource::new(ResourceKind::DbSnapshot, backup),
        })
        .into_iter()
        .collect())
}

/// A backup run id, logged as a number or a string.
fn json_id(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::String(text) => non_empty(Some(text)).map(str::to_string),
        _ => None,
    }
}

/// `instances.clone`: a new instance with the source's data (now or at a point in time), named
/// like a point-in-time restore's source: `<source instance>/backups`.
fn sql_clone(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: SqlRequest = record.request();
    let source = sql_subject(record, &request)?;
    let Some(destination) = request
        .body
        .as_ref()
        .and_then(|body| body.clone_context.as_ref())
        .and_then(|context| non_empty(context.destination_instance_name.as_deref()))
    else {
        return Ok(Vec::new());
    };
    let project = source
        .id
        .split('/')
        .nth(1)
        .unwrap_or(record.scope.project)
        .to_string();
    Ok(vec![Fact::RestoredFrom {
        resource: sql_instance(&project, destination),
        snapshot: Resource::new(ResourceKind::DbSnapshot, format!("{}/backups", source.id)),
    }])
}

/// `instances.create` / `update`: authorized networks admit those addresses to the instance's
/// public IP (unless the request turns the public IP off).
fn sql_write(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: SqlRequest = record.request();
    let instance = sql_subject(record, &request)?;
    let Some(ip) = request
        .body
        .as_ref()
        .and_then(|body| body.settings.as_ref())
        .and_then(|settings| settings.ip_configuration.as_ref())
    else {
        return Ok(Vec::new());
    };
    let sources: Vec<String> = ip
        .authorized_networks
        .iter()
        .filter_map(|network| non_empty(network.value.as_deref()))
        .map(str::to_string)
        .collect();
    if ip.ipv4_enabled == Some(false) || sources.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Fact::PublicEndpoint {
        resource: instance,
        setting: "authorizedNetworks".to_string(),
        sources,
    }])
}

/// `snapshots.insert`. Besides the usual case (a snapshot of a disk, logged in the snapshot's
/// project), Cloud Audit Logs also writes the record into the project of a disk that a
/// principal from elsewhere snapshots into *their* project (its `metadata` is a
/// `CrossEntityControlAuditMetadata` and `resourceName` is our disk): that is our disk's data
/// leaving, so it also states `UsedExternally`.
fn snapshot_insert(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: CreateRequest = record.request();
    let named_by_log = record
        .resource_name()
        .and_then(|name| ResourcePath::parse(name, record.scope));
    let logged_against_disk = named_by_log
        .as_ref()
        .is_some_and(|path| path.collection == Collection::Disks);
    let cross_entity = is_cross_entity(record.payload);
    let target_link = record
        .payload
        .response
        .as_ref()
        .and_then(|response| response.get("targetLink"))
        .and_then(|link| link.as_str())
        .and_then(|link| ResourcePath::parse(link, record.scope));
    let snapshot = named_by_log
        .clone()
        .filter(|path| path.collection == Collection::Snapshots)
        .or_else(|| target_link.filter(|path| path.collection == Collection::Snapshots))
        .or_else(|| {
            // A bare request name is only placed in the record's project when the record is
            // not the cross-project one: there the snapshot lives in a project we do not know.
            if logged_against_disk || cross_entity {
                return None;
            }
            ResourcePath::named(
                Collection::Snapshots,
                request.name.as_deref()?,
                record.scope,
            )
        });
    let source_disk = record
        .reference(
            "protoPayload.request.sourceDisk",
            request.source_disk.as_deref(),
            Collection::Disks,
            record.scope,
        )
        .or_else(|| named_by_log.filter(|path| path.collection == Collection::Disks));

    let taken_elsewhere = match &snapshot {
        Some(snapshot) => !record.is_our_project(snapshot),
        None => logged_against_disk || cross_entity,
    };
    let mut facts = Vec::new();
    if let Some(disk) = source_disk
        .as_ref()
        .filter(|disk| record.is_our_project(disk) && taken_elsewhere)
    {
        let account = snapshot
            .as_ref()
            .map(|snapshot| snapshot.project.clone())
            .or_else(|| record.actor.map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string());
        facts.push(Fact::UsedExternally {
            snapshot: disk.resource(),
            account,
        });
    }
    match snapshot {
        Some(snapshot) => facts.insert(
            0,
            Fact::SnapshotCreated {
                snapshot: snapshot.resource(),
                source: source_disk.map(|disk| disk.resource()),
            },
        ),
        None if facts.is_empty() => {
            return Err(ParseError::MissingField("protoPayload.resourceName"));
        }
        None => {}
    }
    Ok(facts)
}

fn is_cross_entity(payload: &AuditLog) -> bool {
    payload
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.get("@type"))
        .and_then(|kind| kind.as_str())
        .is_some_and(|kind| kind.ends_with("CrossEntityControlAuditMetadata"))
}

/// `disks.createSnapshot`: the snapshot is created in the disk's project.
fn disk_create_snapshot(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let disk = record.subject(Collection::Disks)?;
    let request: CreateRequest = record.request();
    let name = request
        .name
        .as_deref()
        .ok_or(ParseError::MissingField("protoPayload.request.name"))?;
    let disk_project = Scope {
        project: &disk.project,
        zone: None,
    };
    let snapshot =
        ResourcePath::named(Collection::Snapshots, name, disk_project).ok_or_else(|| {
            ParseError::InvalidField {
                field: "protoPayload.request.name",
                reason: format!("{name:?} is not a snapshot name"),
            }
        })?;
    Ok(vec![Fact::SnapshotCreated {
        snapshot: snapshot.resource(),
        source: Some(disk.resource()),
    }])
}

/// What one member of an IAM policy binding grants access to, read the same way for a
/// `setIamPolicy` event and for a policy the baseline reads with `getIamPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member<'m> {
    /// `allUsers` / `allAuthenticatedUsers`: anyone.
    Public,
    /// Nobody new: convenience members stand for roles of the resource's own project, and
    /// `deleted:` members can no longer sign in (blank members name nobody).
    Owner,
    /// A principal that may be outside the trusted set (`user:`, `serviceAccount:`, `group:`,
    /// `domain:`, `principal:`…), trimmed.
    Principal(&'m str),
}

impl<'m> Member<'m> {
    pub(super) fn of(member: &'m str) -> Member<'m> {
        let member = member.trim();
        match member {
            "allUsers" | "allAuthenticatedUsers" => Member::Public,
            _ if member.is_empty()
                || member.starts_with("projectOwner:")
                || member.starts_with("projectEditor:")
                || member.starts_with("projectViewer:")
                || member.starts_with("deleted:") =>
            {
                Member::Owner
            }
            _ => Member::Principal(member),
        }
    }
}

/// `*.setIamPolicy` replaces the whole policy, so the request is the new policy: every member
/// of every binding (any role) can read the resource.
fn set_iam_policy(record: &Record<'_>, collection: Collection) -> Result<Vec<Fact>, ParseError> {
    let subject = record.subject(collection)?;
    let request: SetIamPolicyRequest = record.request();
    // The response is the policy as set (a `Policy`, bindings at its top level): it states the
    // grants when the request was dropped or elided.
    let response: SetIamPolicyRequest = request_as(record.payload.response.as_ref());
    let mut bindings: Vec<&Binding> = request
        .policy
        .iter()
        .flat_map(|policy| policy.bindings.iter())
        .chain(request.bindings.iter())
        .collect();
    // A request that carries a policy, even an empty one, is what was set.
    if request.policy.is_none() && request.bindings.is_empty() {
        bindings = response
            .policy
            .iter()
            .flat_map(|policy| policy.bindings.iter())
            .chain(response.bindings.iter())
            .collect();
    }
    let mut public = false;
    let mut principals: Vec<String> = Vec::new();
    for member in bindings.iter().flat_map(|binding| binding.members.iter()) {
        match Member::of(member) {
            Member::Public => public = true,
            Member::Owner => {}
            Member::Principal(member) => push_unique(&mut principals, member),
        }
    }
    let mut facts = Vec::new();
    if public {
        facts.push(Fact::SnapshotShared {
            snapshot: subject.resource(),
            audience: Audience::Public,
        });
    }
    if !principals.is_empty() {
        facts.push(Fact::SnapshotShared {
            snapshot: subject.resource(),
            audience: Audience::Principals(principals),
        });
    }
    Ok(facts)
}

/// `disks.insert`: a disk restored from a snapshot, or from an image of our project (public
/// images such as `debian-cloud` are the base of most disks and link nothing).
fn disk_insert(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: CreateRequest = record.request();
    let disk = record.created(Collection::Disks, request.name.as_deref())?;
    let scope = record.scope_at(&disk);
    let mut facts = Vec::new();
    if let Some(snapshot) = record.reference(
        "protoPayload.request.sourceSnapshot",
        request.source_snapshot.as_deref(),
        Collection::Snapshots,
        scope,
    ) {
        facts.push(Fact::RestoredFrom {
            resource: disk.resource(),
            snapshot: snapshot.resource(),
        });
    }
    if let Some(image) = record
        .reference(
            "protoPayload.request.sourceImage",
            request.source_image.as_deref(),
            Collection::Images,
            scope,
        )
        .filter(|image| record.is_our_project(image))
    {
        facts.push(Fact::RestoredFrom {
            resource: disk.resource(),
            snapshot: image.resource(),
        });
    }
    Ok(facts)
}

/// `images.insert`: an image over a snapshot is registered on it; an image of a disk is a
/// snapshot-like copy of that disk.
fn image_insert(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: CreateRequest = record.request();
    let image = record.created(Collection::Images, request.name.as_deref())?;
    let mut facts = Vec::new();
    if let Some(snapshot) = record.reference(
        "protoPayload.request.sourceSnapshot",
        request.source_snapshot.as_deref(),
        Collection::Snapshots,
        record.scope,
    ) {
        facts.push(Fact::ImageRegistered {
            image: image.resource(),
            snapshots: vec![snapshot.resource()],
        });
    }
    if let Some(disk) = record.reference(
        "protoPayload.request.sourceDisk",
        request.source_disk.as_deref(),
        Collection::Disks,
        record.scope,
    ) {
        facts.push(Fact::SnapshotCreated {
            snapshot: image.resource(),
            source: Some(disk.resource()),
        });
    }
    Ok(facts)
}

/// `instances.insert`: what each boot/data disk is built from or is, and which networks the
/// instance joins with which tags and service accounts (firewall rules target those).
fn instance_insert(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: InstanceInsertRequest = record.request();
    let instance = record.created(Collection::Instances, request.name.as_deref())?;
    let scope = record.scope_at(&instance);
    let mut facts = Vec::new();
    for disk in &request.disks {
        facts.extend(attached_disk_facts(record, &instance, disk, scope));
    }

    let mut tags: Vec<String> = Vec::new();
    let tag_items = request.tags.iter().flat_map(|tags| tags.items.iter());
    let service_accounts = request
        .service_accounts
        .iter()
        .filter_map(|account| account.email.as_ref());
    for tag in tag_items.chain(service_accounts) {
        if !tag.trim().is_empty() {
            push_unique(&mut tags, tag.trim());
        }
    }
    for interface in &request.network_interfaces {
        let network = match (&interface.network, &interface.subnetwork) {
            (Some(network), _) => record.reference(
                "protoPayload.request.networkInterfaces.network",
                Some(network),
                Collection::Networks,
                scope,
            ),
            // A subnetwork alone implies its network, which the record does not name:
            // guessing `default` would link the instance to the wrong firewall rules.
            (None, Some(subnetwork)) => {
                tracing::debug!(
                    subnetwork = subnetwork.as_str(),
                    "network interface names only a subnetwork; its network is unknown"
                );
                None
            }
            (None, None) => ResourcePath::named(Collection::Networks, "default", scope),
        };
        if let Some(network) = network {
            facts.push(Fact::NetworkMember {
                member: instance.resource(),
                group: network.resource(),
                tags: tags.clone(),
            });
        }
    }
    Ok(facts)
}

/// One `disks[]` entry of `instances.insert`: a new disk from a snapshot or from an image of
/// our project, or an existing disk.
fn attached_disk_facts(
    record: &Record<'_>,
    instance: &ResourcePath,
    disk: &AttachedDisk,
    scope: Scope<'_>,
) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let Some(params) = &disk.initialize_params {
        let snapshot = record.reference(
            "protoPayload.request.disks.initializeParams.sourceSnapshot",
            params.source_snapshot.as_deref(),
            Collection::Snapshots,
            scope,
        );
        let image = record
            .reference(
                "protoPayload.request.disks.initializeParams.sourceImage",
                params.source_image.as_deref(),
                Collection::Images,
                scope,
            )
            .filter(|image| record.is_our_project(image));
        for source in snapshot.into_iter().chain(image) {
            facts.push(Fact::RestoredFrom {
                resource: instance.resource(),
                snapshot: source.resource(),
            });
        }
    }
    if let Some(existing) = record.reference(
        "protoPayload.request.disks.source",
        disk.source.as_deref(),
        Collection::Disks,
        scope,
    ) {
        facts.push(Fact::Uses {
            instance: instance.resource(),
            disk: existing.resource(),
        });
    }
    facts
}

/// `instances.attachDisk`: the body is the attached disk.
fn attach_disk(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let instance = record.subject(Collection::Instances)?;
    let request: AttachedDisk = record.request();
    let scope = record.scope_at(&instance);
    Ok(record
        .reference(
            "protoPayload.request.source",
            request.source.as_deref(),
            Collection::Disks,
            scope,
        )
        .map(|disk| Fact::Uses {
            instance: instance.resource(),
            disk: disk.resource(),
        })
        .into_iter()
        .collect())
}

/// GCP admits traffic from anywhere when a rule names no source at all.
const ANYWHERE: &str = "0.0.0.0/0";

/// `firewalls.insert` / `update` (the request is the whole rule) and `patch` (only the fields
/// that change). One `IngressOpened` per allowed protocol of an enabled ingress rule.
///
/// Limitation: a patch body carries only what changes. When it omits `network`, the rule is
/// taken to be on the `default` network (what insert would assume); when it omits the
/// sources it is read like an insert (open to anywhere); when it omits the allow list, the
/// rule's ports are unknown and no fact is stated.
fn firewall_write(record: &Record<'_>) -> Result<Vec<Fact>, ParseError> {
    let request: FirewallRequest = record.request();
    let is_ingress = request
        .direction
        .as_deref()
        .is_none_or(|direction| direction.trim().eq_ignore_ascii_case("INGRESS"));
    if !is_ingress || request.disabled == Some(true) {
        return Ok(Vec::new());
    }
    let allowed: Vec<&FirewallAllowed> = request
        .alloweds
        .iter()
        .chain(request.allowed.iter())
        .collect();
    if allowed.is_empty() {
        // A deny rule (`denieds`), or a patch that leaves the allow list as it was.
        return Ok(Vec::new());
    }
    let sources: Vec<String> = if !request.source_ranges.is_empty() {
        request.source_ranges.clone()
    } else if request.source_tags.is_empty() && request.source_service_accounts.is_empty() {
        vec![ANYWHERE.to_string()]
    } else {
        // Only tagged instances or service accounts inside the network may connect.
        return Ok(Vec::new());
    };
    let group = match request.network.as_deref() {
        Some(network) => ResourcePath::resolve(network, Collection::Networks, record.scope)
            .ok_or_else(|| ParseError::InvalidField {
                field: "protoPayload.request.network",
                reason: format!("{network:?} does not name a VPC network"),
            })?,
        None => ResourcePath::named(Collection::Networks, "default", record.scope)
            .ok_or(ParseError::MissingField("protoPayload.request.network"))?,
    };
    let target_tags: Vec<String> = request
        .target_tags
        .iter()
        .chain(request.target_service_accounts.iter())
        .cloned()
        .collect();
    let rule = request
        .name
        .clone()
        .or_else(|| {
            let name = record.resource_name()?.rsplit('/').next()?;
            Some(name.to_string())
        })
        .filter(|name| !name.is_empty());

    let mut facts = Vec::new();
    for entry in allowed {
        let Some(raw_protocol) = entry.ip_protocol.as_deref() else {
            tracing::debug!("firewall allow entry without IPProtocol ignored");
            continue;
        };
        let protocol = protocol_of(raw_protocol);
        let mut ports = entry
            .ports
            .iter()
            .map(|port| port_range(port))
            .collect::<Result<Vec<_>, _>>()?;
        match protocol {
            Protocol::All => ports = vec![PortRange::ALL],
            Protocol::Tcp | Protocol::Udp if ports.is_empty() => ports = vec![PortRange::ALL],
            // ICMP and the like have no ports; a port-less `Other` opens no port.
            _ => {}
        }
        facts.push(Fact::IngressOpened {
            group: group.resource(),
            protocol,
            ports,
            sources: sources.clone(),
            target_tags: target_tags.clone(),
            rule: rule.clone(),
        });
    }
    Ok(facts)
}

/// `IPProtocol` is a name ("tcp", "all") or an IANA protocol number ("6").
fn protocol_of(raw: &str) -> Protocol {
    match raw.trim().to_ascii_lowercase().as_str() {
        "all" => Protocol::All,
        "tcp" | "6" => Protocol::Tcp,
        "udp" | "17" => Protocol::Udp,
        _ => Protocol::Other,
    }
}

/// "22" or "8000-8080".
fn port_range(raw: &str) -> Result<PortRange, ParseError> {
    let invalid = || ParseError::InvalidField {
        field: "protoPayload.request.alloweds.ports",
        reason: format!("{raw:?} is not a port or a port range"),
    };
    let port = |text: &str| text.trim().parse::<u16>().map_err(|_| invalid());
    match raw.split_once('-') {
        Some((from, to)) => {
            let range = PortRange {
                from: port(from)?,
                to: port(to)?,
            };
            if range.from > range.to {
                return Err(invalid());
            }
            Ok(range)
        }
        None => port(raw).map(PortRange::single),
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|existing| existing == item) {
        list.push(item.to_string());
    }
}

//! EC2 and EBS calls: snapshots, images, their sharing, EBS direct reads, volumes, instances.

use super::shapes::{list, one_or_many, present, section, LooseEntry};
use super::{Ctx, Grants, Sections, REQUEST, RESPONSE, SERVICE_EVENT_DETAILS};
use crate::model::{Fact, Resource, ResourceKind};
use crate::parse::ParseError;
use serde::Deserialize;

type Facts = Result<Vec<Fact>, ParseError>;

/// EC2 ids are logged bare (`snap-…`); a few places log the ARN instead
/// (`arn:aws:ec2:region::snapshot/snap-…`): keep the id so both link.
fn ec2_id(raw: &str) -> &str {
    let raw = raw.trim();
    if raw.starts_with("arn:") {
        raw.rsplit('/').next().unwrap_or(raw)
    } else {
        raw
    }
}

fn snapshot(id: &str) -> Resource {
    Resource::new(ResourceKind::Snapshot, ec2_id(id))
}
fn image(id: &str) -> Resource {
    Resource::new(ResourceKind::Image, ec2_id(id))
}
fn disk(id: &str) -> Resource {
    Resource::new(ResourceKind::Disk, ec2_id(id))
}
fn instance(id: &str) -> Resource {
    Resource::new(ResourceKind::Instance, ec2_id(id))
}
pub(super) fn network_group(id: &str) -> Resource {
    Resource::new(ResourceKind::NetworkGroup, ec2_id(id))
}

fn push_unique(resources: &mut Vec<Resource>, resource: Resource) {
    if !resources.contains(&resource) {
        resources.push(resource);
    }
}

/// `tagSpecificationSet.items[]` (`tags[].key`), or the XML-derived `TagSpecification`
/// (`Tag[].Key`) that `CreateSnapshots` logs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TagSpecification {
    #[serde(deserialize_with = "list")]
    tags: Vec<Tag>,
    #[serde(rename = "Tag", deserialize_with = "one_or_many")]
    xml_tags: Vec<Tag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tag {
    #[serde(alias = "Key")]
    key: Option<String>,
}

impl Ctx<'_> {
    fn note_tags(&mut self, tags: &[Tag]) {
        for key in tags.iter().filter_map(|t| present(&t.key)) {
            self.note_tag_key(key);
        }
    }

    fn note_tag_specifications(&mut self, specifications: &[TagSpecification]) {
        for specification in specifications {
            self.note_tags(&specification.tags);
            self.note_tags(&specification.xml_tags);
        }
    }
}

// ---- CreateSnapshot ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateSnapshotRequest {
    volume_id: Option<String>,
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateSnapshotResponse {
    snapshot_id: Option<String>,
    volume_id: Option<String>,
}

pub(super) fn create_snapshot(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: CreateSnapshotRequest = section(sections.request, REQUEST)?;
    let response: CreateSnapshotResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    let Some(snapshot_id) = present(&response.snapshot_id) else {
        return Ok(Vec::new());
    };
    let source = present(&response.volume_id)
        .or(present(&request.volume_id))
        .map(disk);
    Ok(vec![Fact::SnapshotCreated {
        snapshot: snapshot(snapshot_id),
        source,
    }])
}

// ---- CreateSnapshots (multi-volume) --------------------------------------------------------

/// Logged either flat (`snapshotSet.items[]`) or wrapped in the XML-derived
/// `CreateSnapshotsRequest` / `CreateSnapshotsResponse` objects.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateSnapshotsRequest {
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
    #[serde(rename = "CreateSnapshotsRequest")]
    wrapped: Option<WrappedCreateSnapshotsRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WrappedCreateSnapshotsRequest {
    #[serde(rename = "TagSpecification", deserialize_with = "one_or_many")]
    tag_specifications: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateSnapshotsResponse {
    #[serde(deserialize_with = "list")]
    snapshot_set: Vec<SnapshotInfo>,
    #[serde(rename = "CreateSnapshotsResponse")]
    wrapped: Option<Box<CreateSnapshotsResponse>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SnapshotInfo {
    snapshot_id: Option<String>,
    volume_id: Option<String>,
    #[serde(deserialize_with = "list")]
    tag_set: Vec<Tag>,
}

pub(super) fn create_snapshots(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: CreateSnapshotsRequest = section(sections.request, REQUEST)?;
    let response: CreateSnapshotsResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    if let Some(wrapped) = &request.wrapped {
        ctx.note_tag_specifications(&wrapped.tag_specifications);
    }
    let created = response
        .snapshot_set
        .iter()
        .chain(response.wrapped.iter().flat_map(|w| w.snapshot_set.iter()));
    let mut facts = Vec::new();
    for info in created {
        ctx.note_tags(&info.tag_set);
        if let Some(snapshot_id) = present(&info.snapshot_id) {
            facts.push(Fact::SnapshotCreated {
                snapshot: snapshot(snapshot_id),
                source: present(&info.volume_id).map(disk),
            });
        }
    }
    Ok(facts)
}

// ---- CopySnapshot --------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CopySnapshotRequest {
    source_snapshot_id: Option<String>,
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SnapshotIdResponse {
    snapshot_id: Option<String>,
}

pub(super) fn copy_snapshot(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: CopySnapshotRequest = section(sections.request, REQUEST)?;
    let response: SnapshotIdResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    let (Some(copy), Some(source)) = (
        present(&response.snapshot_id),
        present(&request.source_snapshot_id),
    ) else {
        return Ok(Vec::new());
    };
    Ok(vec![Fact::SnapshotCopied {
        snapshot: snapshot(copy),
        source: snapshot(source),
    }])
}

// ---- CreateImage / RegisterImage / CopyImage -----------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ImageRequest {
    /// CreateImage: the instance imaged.
    instance_id: Option<String>,
    /// CopyImage: the AMI copied.
    source_image_id: Option<String>,
    /// RegisterImage: the snapshots the AMI is built on.
    #[serde(deserialize_with = "list")]
    block_device_mapping: Vec<BlockDevice>,
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ImageIdResponse {
    image_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BlockDevice {
    ebs: Option<EbsBlockDevice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct EbsBlockDevice {
    snapshot_id: Option<String>,
}

/// The distinct snapshots a block device mapping builds volumes from.
fn mapped_snapshots(mapping: &[BlockDevice]) -> Vec<Resource> {
    let mut snapshots = Vec::new();
    for snapshot_id in mapping
        .iter()
        .filter_map(|device| device.ebs.as_ref())
        .filter_map(|ebs| present(&ebs.snapshot_id))
    {
        push_unique(&mut snapshots, snapshot(snapshot_id));
    }
    snapshots
}

pub(super) fn create_image(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: ImageRequest = section(sections.request, REQUEST)?;
    let response: ImageIdResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    let Some(image_id) = present(&response.image_id) else {
        return Ok(Vec::new());
    };
    Ok(vec![Fact::SnapshotCreated {
        snapshot: image(image_id),
        source: present(&request.instance_id).map(instance),
    }])
}

pub(super) fn register_image(sections: &Sections) -> Facts {
    let request: ImageRequest = section(sections.request, REQUEST)?;
    let response: ImageIdResponse = section(sections.response, RESPONSE)?;
    let snapshots = mapped_snapshots(&request.block_device_mapping);
    // An image over no known snapshot (instance store, S3 manifest) links nothing.
    match present(&response.image_id) {
        Some(image_id) if !snapshots.is_empty() => Ok(vec![Fact::ImageRegistered {
            image: image(image_id),
            snapshots,
        }]),
        _ => Ok(Vec::new()),
    }
}

pub(super) fn copy_image(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: ImageRequest = section(sections.request, REQUEST)?;
    let response: ImageIdResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    let (Some(copy), Some(source)) = (
        present(&response.image_id),
        present(&request.source_image_id),
    ) else {
        return Ok(Vec::new());
    };
    Ok(vec![Fact::SnapshotCopied {
        snapshot: image(copy),
        source: image(source),
    }])
}

// ---- ModifySnapshotAttribute / ModifyImageAttribute ----------------------------------------

/// `createVolumePermission` / `launchPermission`: only `add` grants anything.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PermissionModifications {
    #[serde(deserialize_with = "list")]
    add: Vec<Permission>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Permission {
    user_id: Option<String>,
    group: Option<String>,
    organization_arn: Option<String>,
    organizational_unit_arn: Option<String>,
}

/// The legacy request form: `attribute` + `operationType` + flat user / group lists.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LegacyPermissionChange {
    #[serde(alias = "attribute")]
    attribute_type: Option<String>,
    operation_type: Option<String>,
    #[serde(alias = "userIds", deserialize_with = "list")]
    user_id: Vec<LooseEntry>,
    #[serde(
        alias = "userGroup",
        alias = "userGroups",
        alias = "groupNames",
        deserialize_with = "list"
    )]
    group: Vec<LooseEntry>,
    #[serde(alias = "organizationArns", deserialize_with = "list")]
    organization_arn: Vec<LooseEntry>,
    #[serde(alias = "organizationalUnitArns", deserialize_with = "list")]
    organizational_unit_arn: Vec<LooseEntry>,
}

/// `CREATE_VOLUME_PERMISSION` and `createVolumePermission` name the same attribute.
fn same_attribute(logged: &str, expected: &str) -> bool {
    let mut logged = logged.chars().filter(|c| *c != '_');
    let mut expected = expected.chars();
    loop {
        match (logged.next(), expected.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

fn collect_grants(
    modern: Option<&PermissionModifications>,
    legacy: &LegacyPermissionChange,
    attribute: &str,
    own_account: &str,
) -> Grants {
    let mut grants = Grants::default();
    for permission in modern.map(|m| m.add.as_slice()).unwrap_or_default() {
        if let Some(account) = present(&permission.user_id) {
            grants.add_account(account, own_account);
        }
        if let Some(group) = present(&permission.group) {
            grants.add_group(group);
        }
        for principal in [
            &permission.organization_arn,
            &permission.organizational_unit_arn,
        ] {
            if let Some(principal) = present(principal) {
                grants.add_principal(principal);
            }
        }
    }
    let legacy_add = legacy
        .operation_type
        .as_deref()
        .is_some_and(|op| op.trim().eq_ignore_ascii_case("add"))
        && legacy
            .attribute_type
            .as_deref()
            .is_none_or(|logged| same_attribute(logged.trim(), attribute));
    if legacy_add {
        let values = |entries: &'_ [LooseEntry]| {
            entries
                .iter()
                .filter_map(|e| e.0.as_deref())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for account in values(&legacy.user_id) {
            grants.add_account(&account, own_account);
        }
        for group in values(&legacy.group) {
            grants.add_group(&group);
        }
        for principal in values(&legacy.organization_arn)
            .into_iter()
            .chain(values(&legacy.organizational_unit_arn))
        {
            grants.add_principal(&principal);
        }
    }
    grants
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ModifySnapshotAttributeRequest {
    snapshot_id: Option<String>,
    create_volume_permission: Option<PermissionModifications>,
    #[serde(flatten)]
    legacy: LegacyPermissionChange,
}

pub(super) fn modify_snapshot_attribute(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: ModifySnapshotAttributeRequest = section(sections.request, REQUEST)?;
    let Some(snapshot_id) = present(&request.snapshot_id) else {
        return Ok(Vec::new());
    };
    let grants = collect_grants(
        request.create_volume_permission.as_ref(),
        &request.legacy,
        "createVolumePermission",
        ctx.account,
    );
    Ok(grants.into_facts(snapshot(snapshot_id)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ModifyImageAttributeRequest {
    image_id: Option<String>,
    launch_permission: Option<PermissionModifications>,
    #[serde(flatten)]
    legacy: LegacyPermissionChange,
}

pub(super) fn modify_image_attribute(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: ModifyImageAttributeRequest = section(sections.request, REQUEST)?;
    let Some(image_id) = present(&request.image_id) else {
        return Ok(Vec::new());
    };
    let grants = collect_grants(
        request.launch_permission.as_ref(),
        &request.legacy,
        "launchPermission",
        ctx.account,
    );
    Ok(grants.into_facts(image(image_id)))
}

// ---- SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated -----------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SharedSnapshotDetails {
    snapshot_id: Option<String>,
}

/// Victim-side service events: `userIdentity.accountId` is the account that restored or copied
/// our snapshot.
pub(super) fn shared_snapshot_used(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let details: SharedSnapshotDetails =
        section(sections.service_event_details, SERVICE_EVENT_DETAILS)?;
    match (present(&details.snapshot_id), sections.caller_account) {
        (Some(snapshot_id), Some(account)) if account != ctx.account => {
            Ok(vec![Fact::UsedExternally {
                snapshot: snapshot(snapshot_id),
                account: account.to_owned(),
            }])
        }
        _ => Ok(Vec::new()),
    }
}

// ---- EBS direct APIs -----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct EbsDirectRequest {
    snapshot_id: Option<String>,
    first_snapshot_id: Option<String>,
    second_snapshot_id: Option<String>,
}

/// `ListSnapshotBlocks`, `GetSnapshotBlock`, `ListChangedBlocks`: block-level reads of a
/// snapshot's data without restoring it.
pub(super) fn ebs_direct_read(sections: &Sections) -> Facts {
    let request: EbsDirectRequest = section(sections.request, REQUEST)?;
    let mut snapshots = Vec::new();
    for id in [
        &request.snapshot_id,
        &request.first_snapshot_id,
        &request.second_snapshot_id,
    ]
    .into_iter()
    .filter_map(present)
    {
        push_unique(&mut snapshots, snapshot(id));
    }
    Ok(snapshots
        .into_iter()
        .map(|snapshot| Fact::SnapshotExported {
            snapshot,
            method: "ebs-direct-api".to_owned(),
        })
        .collect())
}

// ---- CreateVolume / AttachVolume -----------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateVolumeRequest {
    snapshot_id: Option<String>,
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateVolumeResponse {
    volume_id: Option<String>,
    snapshot_id: Option<String>,
}

pub(super) fn create_volume(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: CreateVolumeRequest = section(sections.request, REQUEST)?;
    let response: CreateVolumeResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);
    let source = present(&request.snapshot_id).or(present(&response.snapshot_id));
    match (present(&response.volume_id), source) {
        (Some(volume_id), Some(snapshot_id)) => Ok(vec![Fact::RestoredFrom {
            resource: disk(volume_id),
            snapshot: snapshot(snapshot_id),
        }]),
        _ => Ok(Vec::new()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct VolumeAttachment {
    instance_id: Option<String>,
    volume_id: Option<String>,
}

pub(super) fn attach_volume(sections: &Sections) -> Facts {
    let request: VolumeAttachment = section(sections.request, REQUEST)?;
    let response: VolumeAttachment = section(sections.response, RESPONSE)?;
    let instance_id = present(&request.instance_id).or(present(&response.instance_id));
    let volume_id = present(&request.volume_id).or(present(&response.volume_id));
    match (instance_id, volume_id) {
        (Some(instance_id), Some(volume_id)) => Ok(vec![Fact::Uses {
            instance: instance(instance_id),
            disk: disk(volume_id),
        }]),
        _ => Ok(Vec::new()),
    }
}

// ---- RunInstances --------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct GroupRef {
    group_id: Option<String>,
    group_name: Option<String>,
}

impl GroupRef {
    /// The group id; default-VPC calls may log only the name, which then stands as the id.
    pub(super) fn id(&self) -> Option<&str> {
        present(&self.group_id).or(present(&self.group_name))
    }
}

fn push_groups(groups: &mut Vec<Resource>, refs: &[GroupRef]) {
    for id in refs.iter().filter_map(GroupRef::id) {
        push_unique(groups, network_group(id));
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NetworkInterfaceSpec {
    #[serde(deserialize_with = "list")]
    group_set: Vec<GroupRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RunInstancesRequest {
    #[serde(deserialize_with = "list")]
    instances_set: Vec<RequestedInstances>,
    #[serde(deserialize_with = "list")]
    block_device_mapping: Vec<BlockDevice>,
    #[serde(deserialize_with = "list")]
    group_set: Vec<GroupRef>,
    #[serde(deserialize_with = "list")]
    network_interface_set: Vec<NetworkInterfaceSpec>,
    #[serde(deserialize_with = "list")]
    tag_specification_set: Vec<TagSpecification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RequestedInstances {
    image_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RunInstancesResponse {
    #[serde(deserialize_with = "list")]
    instances_set: Vec<LaunchedInstance>,
    #[serde(deserialize_with = "list")]
    group_set: Vec<GroupRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LaunchedInstance {
    instance_id: Option<String>,
    image_id: Option<String>,
    #[serde(deserialize_with = "list")]
    group_set: Vec<GroupRef>,
    #[serde(deserialize_with = "list")]
    network_interface_set: Vec<NetworkInterfaceSpec>,
}

/// Per launched instance: restored from the mapped snapshots and from its image, and a member
/// of every security group the request or the response names for it.
pub(super) fn run_instances(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RunInstancesRequest = section(sections.request, REQUEST)?;
    let response: RunInstancesResponse = section(sections.response, RESPONSE)?;
    ctx.note_tag_specifications(&request.tag_specification_set);

    let snapshots = mapped_snapshots(&request.block_device_mapping);
    let requested_image = request
        .instances_set
        .iter()
        .find_map(|i| present(&i.image_id));
    let mut shared_groups = Vec::new();
    push_groups(&mut shared_groups, &request.group_set);
    for interface in &request.network_interface_set {
        push_groups(&mut shared_groups, &interface.group_set);
    }
    push_groups(&mut shared_groups, &response.group_set);

    let mut facts = Vec::new();
    for launched in &response.instances_set {
        let Some(instance_id) = present(&launched.instance_id) else {
            continue;
        };
        let member = instance(instance_id);
        for snapshot in &snapshots {
            facts.push(Fact::RestoredFrom {
                resource: member.clone(),
                snapshot: snapshot.clone(),
            });
        }
        if let Some(image_id) = present(&launched.image_id).or(requested_image) {
            facts.push(Fact::RestoredFrom {
                resource: member.clone(),
                snapshot: image(image_id),
            });
        }
        let mut groups = shared_groups.clone();
        push_groups(&mut groups, &launched.group_set);
        for interface in &launched.network_interface_set {
            push_groups(&mut groups, &interface.group_set);
        }
        facts.extend(groups.into_iter().map(|group| Fact::NetworkMember {
            member: member.clone(),
            group,
            tags: Vec::new(),
        }));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_match_in_either_spelling() {
        assert!(same_attribute(
            "CREATE_VOLUME_PERMISSION",
            "createVolumePermission"
        ));
        assert!(same_attribute(
            "createVolumePermission",
            "createVolumePermission"
        ));
        assert!(same_attribute("LAUNCH_PERMISSION", "launchPermission"));
        assert!(!same_attribute("PRODUCT_CODES", "createVolumePermission"));
        assert!(!same_attribute("createVolume", "createVolumePermission"));
    }

    #[test]
    fn ec2_ids_are_taken_from_arns() {
        assert_eq!(ec2_id("snap-0abc"), "snap-0abc");
        assert_eq!(
            ec2_id("arn:aws:ec2:us-west-2::snapshot/snap-01234567"),
            "snap-01234567"
        );
        assert_eq!(ec2_id(" vol-1 "), "vol-1");
    }
}

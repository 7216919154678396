//! Facts per consumed operation, from the record's resource id and its decoded body.

use super::ids;
use super::Operation;
use crate::model::{Fact, PortRange, Protocol, Resource, ResourceKind};
use crate::parse::ParseError;
use crate::render::escape_line;
use serde_json::{Map, Value};

/// How a SAS-URL export is named in [`Fact::SnapshotExported`].
pub(crate) const SAS_URL: &str = "sas-url";

/// The resource body a record carries, decoded from `properties.responseBody` (the state ARM
/// returned, preferred) or `properties.requestbody` (what the caller asked for).
///
/// Both are JSON documents serialised into a string inside the record; some pipelines have
/// already decoded them into objects, and key case varies (`requestbody`, `requestBody`).
/// An undecodable body is not fatal: the record itself still says what happened to which
/// resource, so the caller proceeds without a body.
pub(crate) fn decode_body(properties: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
    let properties = properties?;
    ["responsebody", "requestbody"].iter().find_map(|wanted| {
        let (key, value) = properties
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(wanted))?;
        match value {
            Value::Object(body) => Some(body.clone()),
            Value::String(text) if text.trim().is_empty() || text.trim() == "null" => None,
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(body)) => Some(body),
                Ok(_) => {
                    tracing::debug!(field = %key, "Activity Log body is not a JSON object");
                    None
                }
                Err(error) => {
                    tracing::debug!(field = %key, %error, "undecodable Activity Log body");
                    None
                }
            },
            _ => None,
        }
    })
}

/// The facts one successful record states. `resource_id` is the normalised id of the
/// record's resource, `logged_resource_id` its spelling in the record (for rule names) and
/// `resource_field` the field it came from (for errors).
pub(crate) fn facts(
    operation: Operation,
    resource_id: &str,
    logged_resource_id: &str,
    resource_field: &'static str,
    body: Option<&Map<String, Value>>,
) -> Result<Vec<Fact>, ParseError> {
    let props = body.map(resource_properties);
    let facts = match operation {
        Operation::SnapshotWrite => vec![snapshot_written(resource_id, props)],
        Operation::SnapshotGetAccess => vec![Fact::SnapshotExported {
            snapshot: Resource::new(ResourceKind::Snapshot, resource_id),
            method: SAS_URL.to_owned(),
        }],
        Operation::DiskGetAccess => vec![Fact::SnapshotExported {
            snapshot: Resource::new(ResourceKind::Disk, resource_id),
            method: SAS_URL.to_owned(),
        }],
        Operation::DiskWrite => disk_written(resource_id, props).into_iter().collect(),
        Operation::ImageWrite => image_written(resource_id, props).into_iter().collect(),
        Operation::VirtualMachineWrite => virtual_machine_written(resource_id, props),
        Operation::NetworkInterfaceWrite => network_interface_written(resource_id, props)
            .into_iter()
            .collect(),
        Operation::SecurityRuleWrite => {
            let Some((group_id, logged_name)) =
                ids::split_security_rule(resource_id, logged_resource_id)
            else {
                return Err(ParseError::InvalidField {
                    field: resource_field,
                    reason: format!(
                        "expected …/networkSecurityGroups/<nsg>/securityRules/<rule>, got {logged_resource_id:?}"
                    ),
                });
            };
            let group = Resource::new(ResourceKind::NetworkGroup, group_id);
            match body {
                Some(body) => {
                    let name = text(body, "name").unwrap_or(&logged_name);
                    ingress(&group, name, resource_properties(body))?
                        .into_iter()
                        .collect()
                }
                None => Vec::new(),
            }
        }
        Operation::SecurityGroupWrite => {
            let group = Resource::new(ResourceKind::NetworkGroup, resource_id);
            let mut opened = Vec::new();
            // Only `securityRules`: `defaultSecurityRules` are the platform's fixed rules
            // (AllowVnetInBound, AllowAzureLoadBalancerInBound) that every NSG has.
            for rule in props
                .and_then(|p| p.get("securityRules"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
            {
                let name = text(rule, "name").unwrap_or_default();
                opened.extend(ingress(&group, name, resource_properties(rule))?);
            }
            opened
        }
    };
    Ok(facts)
}

/// ARM bodies nest a resource's settings under `properties`; some producers send them flat.
fn resource_properties(body: &Map<String, Value>) -> &Map<String, Value> {
    body.get("properties")
        .and_then(Value::as_object)
        .unwrap_or(body)
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    text_at(object, &[key])
}

/// `object[a][b]…`, when every step is there.
fn value_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = object.get(*first)?;
    for key in rest {
        current = current.as_object()?.get(*key)?;
    }
    Some(current)
}

/// `object[a][b]…` as a non-empty string.
fn text_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    value_at(object, path)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The objects of the array at `object[a][b]…` (nothing when absent or not an array).
fn objects<'a>(
    object: &'a Map<String, Value>,
    path: &[&str],
) -> impl Iterator<Item = &'a Map<String, Value>> {
    value_at(object, path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn push_unique(resources: &mut Vec<Resource>, resource: Resource) {
    if !resources.contains(&resource) {
        resources.push(resource);
    }
}

/// `creationData.sourceResourceId` names the disk (or snapshot, for a copy) a snapshot was
/// taken from.
fn snapshot_written(snapshot_id: &str, props: Option<&Map<String, Value>>) -> Fact {
    let snapshot = Resource::new(ResourceKind::Snapshot, snapshot_id);
    let source = props
        .and_then(|p| text_at(p, &["creationData", "sourceResourceId"]))
        .and_then(ids::resource);
    match source {
        Some(source) if source.kind == ResourceKind::Snapshot => {
            Fact::SnapshotCopied { snapshot, source }
        }
        Some(source) if source.kind == ResourceKind::Disk => Fact::SnapshotCreated {
            snapshot,
            source: Some(source),
        },
        _ => Fact::SnapshotCreated {
            snapshot,
            source: None,
        },
    }
}

/// A disk whose `creationData` names a snapshot (createOption Copy, Restore…) was restored
/// from it. Without a body nothing links the disk yet: an ARM lookup is a later addition.
fn disk_written(disk_id: &str, props: Option<&Map<String, Value>>) -> Option<Fact> {
    let props = props?;
    let snapshot = ["sourceResourceId", "sourceUri"]
        .iter()
        .filter_map(|key| text_at(props, &["creationData", key]))
        .find_map(|id| ids::resource_of_kind(id, ResourceKind::Snapshot))?;
    Some(Fact::RestoredFrom {
        resource: Resource::new(ResourceKind::Disk, disk_id),
        snapshot,
    })
}

/// An image captured from a VM (`sourceVirtualMachine`) or built over snapshots
/// (`storageProfile.osDisk.snapshot.id`, `dataDisks[].snapshot.id`).
fn image_written(image_id: &str, props: Option<&Map<String, Value>>) -> Option<Fact> {
    let props = props?;
    let mut snapshots = Vec::new();
    let os_disk = text_at(props, &["storageProfile", "osDisk", "snapshot", "id"]);
    let data_disks = objects(props, &["storageProfile", "dataDisks"])
        .filter_map(|disk| text_at(disk, &["snapshot", "id"]));
    for id in os_disk.into_iter().chain(data_disks) {
        if let Some(snapshot) = ids::resource_of_kind(id, ResourceKind::Snapshot) {
            push_unique(&mut snapshots, snapshot);
        }
    }
    let from_vm = text_at(props, &["sourceVirtualMachine", "id"]).is_some();
    (from_vm || !snapshots.is_empty()).then(|| Fact::ImageRegistered {
        image: Resource::new(ResourceKind::Image, image_id),
        snapshots,
    })
}

/// The managed disks a VM runs on, and the NICs that put it on networks.
fn virtual_machine_written(vm_id: &str, props: Option<&Map<String, Value>>) -> Vec<Fact> {
    let Some(props) = props else {
        return Vec::new();
    };
    let instance = Resource::new(ResourceKind::Instance, vm_id);

    let mut disks = Vec::new();
    let os_disk = text_at(props, &["storageProfile", "osDisk", "managedDisk", "id"]);
    let data_disks = objects(props, &["storageProfile", "dataDisks"])
        .filter_map(|disk| text_at(disk, &["managedDisk", "id"]));
    for id in os_disk.into_iter().chain(data_disks) {
        if let Some(disk) = ids::resource_of_kind(id, ResourceKind::Disk) {
            push_unique(&mut disks, disk);
        }
    }

    let mut nics = Vec::new();
    for id in
        objects(props, &["networkProfile", "networkInterfaces"]).filter_map(|nic| text(nic, "id"))
    {
        if let Some(nic) = ids::resource_of_kind(id, ResourceKind::NetworkInterface) {
            push_unique(&mut nics, nic);
        }
    }

    let uses = disks.into_iter().map(|disk| Fact::Uses {
        instance: instance.clone(),
        disk,
    });
    let memberships = nics.into_iter().map(|group| Fact::NetworkMember {
        member: instance.clone(),
        group,
        tags: Vec::new(),
    });
    uses.chain(memberships).collect()
}

fn network_interface_written(nic_id: &str, props: Option<&Map<String, Value>>) -> Option<Fact> {
    let group = text_at(props?, &["networkSecurityGroup", "id"])
        .and_then(|id| ids::resource_of_kind(id, ResourceKind::NetworkGroup))?;
    Some(Fact::NetworkMember {
        member: Resource::new(ResourceKind::NetworkInterface, nic_id),
        group,
        tags: Vec::new(),
    })
}

/// An `IngressOpened` for a rule that allows inbound traffic; `None` for Deny or Outbound
/// rules, and for rules that do not say which (they cannot be shown to open anything).
fn ingress(
    group: &Resource,
    rule_name: &str,
    rule: &Map<String, Value>,
) -> Result<Option<Fact>, ParseError> {
    let is =
        |key: &str, wanted: &str| text(rule, key).is_some_and(|v| v.eq_ignore_ascii_case(wanted));
    if !is("access", "Allow") || !is("direction", "Inbound") {
        return Ok(None);
    }
    // ARM rejects a rule without a protocol, so a missing one means a trimmed record; read it
    // as every protocol so an open rule stays visible instead of being hidden.
    let protocol = match text(rule, "protocol") {
        None | Some("*") => Protocol::All,
        Some(p) if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        Some(p) if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
        Some(_) => Protocol::Other,
    };
    let mut ports = Vec::new();
    for value in listed(rule, "destinationPortRange", "destinationPortRanges") {
        let range = port_range(value).map_err(|reason| ParseError::InvalidField {
            field: "destinationPortRange",
            reason,
        })?;
        if !ports.contains(&range) {
            ports.push(range);
        }
    }
    let mut sources: Vec<String> = Vec::new();
    for value in listed(rule, "sourceAddressPrefix", "sourceAddressPrefixes") {
        if let Some(prefix) = value.as_str().map(str::trim).filter(|s| !s.is_empty()) {
            if !sources.iter().any(|s| s == prefix) {
                sources.push(prefix.to_owned());
            }
        }
    }
    Ok(Some(Fact::IngressOpened {
        group: group.clone(),
        protocol,
        ports,
        sources,
        target_tags: Vec::new(),
        rule: Some(rule_name.to_owned()).filter(|n| !n.is_empty()),
    }))
}

/// The values of a rule's singular field and its plural list (ARM fills one and leaves the
/// other empty), skipping empty strings.
fn listed<'a>(
    rule: &'a Map<String, Value>,
    single: &str,
    plural: &str,
) -> impl Iterator<Item = &'a Value> {
    let one = rule.get(single).into_iter();
    let many = rule
        .get(plural)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    one.chain(many)
        .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
}

/// `"22"`, `"*"`, `"8000-8100"` (or a bare number) as an inclusive range.
fn port_range(value: &Value) -> Result<PortRange, String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(format!(
                "not a port range: {}",
                escape_line(&other.to_string())
            ))
        }
    };
    if text == "*" {
        return Ok(PortRange::ALL);
    }
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("not a port range: {}", escape_line(&format!("{text:?}"))))
    };
    match text.split_once('-') {
        None => port(&text).map(PortRange::single),
        Some((from, to)) => {
            let (from, to) = (port(from)?, port(to)?);
            if from > to {
                return Err(format!(
                    "port range runs backwards: {}",
                    escape_line(&format!("{text:?}"))
                ));
            }
            Ok(PortRange { from, to })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_range_reasons_show_hostile_characters_escaped() {
        for raw in [
            json!("22\u{202E}33"),
            json!("22\u{85}\u{2028}\u{9b}\u{7f}forged"),
            json!("1-2\u{200B}"),
            json!(["\u{202E}"]),
        ] {
            let reason = port_range(&raw).expect_err("not a port range");
            assert!(
                !reason.chars().any(crate::render::is_display_hazard),
                "{reason:?}"
            );
            assert!(
                reason.contains("\\u{"),
                "the character is shown: {reason:?}"
            );
        }
    }

    #[test]
    fn reads_port_ranges_as_logged() {
        assert_eq!(port_range(&json!("22")), Ok(PortRange::single(22)));
        assert_eq!(port_range(&json!("*")), Ok(PortRange::ALL));
        assert_eq!(
            port_range(&json!(" 20-30 ")),
            Ok(PortRange { from: 20, to: 30 })
        );
        assert_eq!(port_range(&json!(3389)), Ok(PortRange::single(3389)));
        assert!(port_range(&json!("30-20")).is_err());
        assert!(port_range(&json!("ssh")).is_err());
        assert!(port_range(&json!("70000")).is_err());
        assert!(port_range(&json!("1-")).is_err());
        assert!(port_range(&json!(["22"])).is_err());
    }

    #[test]
    fn prefers_the_response_body_and_falls_back_to_the_request() {
        let both = json!({"requestbody": "{\"from\":\"request\"}", "responseBody": "{\"from\":\"response\"}"});
        let body = decode_body(both.as_object()).unwrap();
        assert_eq!(body.get("from"), Some(&json!("response")));

        let broken_response =
            json!({"responseBody": "{not json", "requestBody": "{\"from\":\"request\"}"});
        let body = decode_body(broken_response.as_object()).unwrap();
        assert_eq!(body.get("from"), Some(&json!("request")));

        let already_decoded = json!({"responseBody": {"from": "object"}});
        let body = decode_body(already_decoded.as_object()).unwrap();
        assert_eq!(body.get("from"), Some(&json!("object")));

        for nothing in [
            json!({"responseBody": ""}),
            json!({"responseBody": "null"}),
            json!({"responseBody": "[1,2]"}),
            json!({"responseBody": "{truncated"}),
            json!({"statusCode": "OK"}),
        ] {
            assert_eq!(decode_body(nothing.as_object()), None, "{nothing}");
        }
        assert_eq!(decode_body(None), None);
    }
}

//! Azure Resource Manager ids: normalisation and the resource kinds the chain tracks.
//!
//! ARM ids are case-insensitive and logs disagree on their case (diagnostic-settings records
//! are often all upper-case, REST exports keep the creator's spelling), so every id is
//! lower-cased, trimmed and stripped of a trailing slash before it becomes a [`Resource`].

use crate::model::{Resource, ResourceKind};

/// The canonical form of an ARM resource id, or `None` when `raw` is not one
/// (blob URLs in `sourceUri`, placeholders, empty strings).
pub(crate) fn normalize(raw: &str) -> Option<String> {
    let id = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = id.strip_prefix("/subscriptions/")?;
    let subscription = rest.split('/').next().unwrap_or_default();
    if subscription.is_empty() {
        return None;
    }
    Some(id)
}

/// The subscription id of a normalised resource id.
pub(crate) fn subscription(normalized_id: &str) -> Option<&str> {
    normalized_id
        .strip_prefix("/subscriptions/")?
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
}

/// The full resource type of a normalised id: `microsoft.compute/disks`, or
/// `microsoft.network/networksecuritygroups/securityrules` for a child resource.
fn resource_type(normalized_id: &str) -> Option<String> {
    let segments: Vec<&str> = normalized_id.split('/').collect();
    let providers = segments.iter().rposition(|s| *s == "providers")?;
    let (namespace, type_and_names) = segments.get(providers + 1..)?.split_first()?;
    // After the namespace come `type/name` pairs; an odd count is not a resource id.
    if type_and_names.is_empty() || type_and_names.len() % 2 != 0 {
        return None;
    }
    let mut full = (*namespace).to_owned();
    for pair in type_and_names.chunks(2) {
        full.push('/');
        full.push_str(pair.first()?);
    }
    Some(full)
}

/// The chain kind of a normalised id, for the resource types the chain tracks.
pub(crate) fn kind(normalized_id: &str) -> Option<ResourceKind> {
    match resource_type(normalized_id)?.as_str() {
        "microsoft.compute/snapshots" => Some(ResourceKind::Snapshot),
        "microsoft.compute/disks" => Some(ResourceKind::Disk),
        "microsoft.compute/virtualmachines" => Some(ResourceKind::Instance),
        "microsoft.compute/images" => Some(ResourceKind::Image),
        "microsoft.network/networkinterfaces" => Some(ResourceKind::NetworkInterface),
        "microsoft.network/networksecuritygroups" => Some(ResourceKind::NetworkGroup),
        _ => None,
    }
}

/// A resource for `raw` when it is an ARM id of a tracked type.
pub(crate) fn resource(raw: &str) -> Option<Resource> {
    let id = normalize(raw)?;
    let kind = kind(&id)?;
    Some(Resource::new(kind, id))
}

/// An Azure Compute Gallery (`microsoft.compute/galleries/<name>`) as the snapshot-like resource
/// the baseline judges: its sharing profile shares every image in it. Not a tracked kind of the
/// event path ([`kind`]), which consumes no gallery event.
pub(crate) fn gallery(raw: &str) -> Option<Resource> {
    let id = normalize(raw)?;
    (resource_type(&id)?.as_str() == "microsoft.compute/galleries")
        .then(|| Resource::new(ResourceKind::Image, id))
}

/// A resource for `raw` only when it is of the `expected` kind: body fields name other
/// things too (a VHD blob, a disk where a snapshot was expected).
pub(crate) fn resource_of_kind(raw: &str, expected: ResourceKind) -> Option<Resource> {
    resource(raw).filter(|r| r.kind == expected)
}

/// `…/networksecuritygroups/<nsg>/securityrules/<rule>` → (`…/networksecuritygroups/<nsg>`,
/// the rule name as spelled in `original`).
pub(crate) fn split_security_rule(normalized_id: &str, original: &str) -> Option<(String, String)> {
    let marker = "/securityrules/";
    let at = normalized_id.rfind(marker)?;
    let group = normalized_id.get(..at)?.to_owned();
    let name_lower = normalized_id.get(at + marker.len()..)?;
    if name_lower.is_empty() || name_lower.contains('/') {
        return None;
    }
    // The rule name is for people: keep the logged spelling when the original has it.
    let name = original
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| n.eq_ignore_ascii_case(name_lower))
        .unwrap_or(name_lower);
    Some((group, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_slash() {
        assert_eq!(
            normalize("/SUBSCRIPTIONS/AbC/RESOURCEGROUPS/Rg/PROVIDERS/MICROSOFT.COMPUTE/DISKS/D1/")
                .as_deref(),
            Some("/subscriptions/abc/resourcegroups/rg/providers/microsoft.compute/disks/d1")
        );
        assert_eq!(
            normalize("https://acct.blob.core.windows.net/vhds/a.vhd"),
            None
        );
        assert_eq!(normalize("/subscriptions/"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn knows_the_tracked_kinds_and_nothing_else() {
        let base = "/subscriptions/s/resourcegroups/rg/providers/";
        for (tail, want) in [
            (
                "microsoft.compute/snapshots/a",
                Some(ResourceKind::Snapshot),
            ),
            ("microsoft.compute/disks/a", Some(ResourceKind::Disk)),
            (
                "microsoft.compute/virtualmachines/a",
                Some(ResourceKind::Instance),
            ),
            ("microsoft.compute/images/a", Some(ResourceKind::Image)),
            (
                "microsoft.network/networkinterfaces/a",
                Some(ResourceKind::NetworkInterface),
            ),
            (
                "microsoft.network/networksecuritygroups/a",
                Some(ResourceKind::NetworkGroup),
            ),
            (
                "microsoft.network/networksecuritygroups/a/securityrules/r",
                None,
            ),
            ("microsoft.storage/storageaccounts/a", None),
            ("microsoft.compute/disks", None),
            ("microsoft.compute", None),
        ] {
            assert_eq!(kind(&format!("{base}{tail}")), want, "{tail}");
        }
        assert_eq!(kind("/subscriptions/s"), None);
    }

    #[test]
    fn reads_the_subscription() {
        assert_eq!(
            subscription("/subscriptions/abc/resourcegroups/x"),
            Some("abc")
        );
        assert_eq!(subscription("/subscriptions//x"), None);
        assert_eq!(subscription("/tenants/abc"), None);
    }

    #[test]
    fn splits_a_security_rule_id_into_group_and_rule_name() {
        let original = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/networkSecurityGroups/Web-NSG/securityRules/Allow-SSH";
        let normalized = normalize(original).unwrap();
        let (group, name) = split_security_rule(&normalized, original).unwrap();
        assert_eq!(
            group,
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/web-nsg"
        );
        assert_eq!(name, "Allow-SSH");
        let nsg = normalize("/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/n").unwrap();
        assert_eq!(split_security_rule(&nsg, &nsg), None);
    }
}

//! One managed disk, snapshot or Compute Gallery as ARM's list APIs return it → an
//! [`InventoryItem`] of the baseline, with the id normalised exactly as the Activity Log parser normalises it, so a
//! baseline finding and an event-driven finding of the same resource share their id.

use super::ids;
use crate::inventory::{InventoryItem, Permissions};
use crate::model::ResourceKind;
use crate::parse::{parse_time, ParseError};
use serde_json::{Map, Value};

/// The list operation a disk's state was read through (the finding's event name).
pub const DISK_READ: &str = "Microsoft.Compute/disks/read";
/// The list operation a snapshot's state was read through.
pub const SNAPSHOT_READ: &str = "Microsoft.Compute/snapshots/read";
/// The list operation a Compute Gallery's sharing profile was read through.
pub const GALLERY_READ: &str = "Microsoft.Compute/galleries/read";

/// The [`InventoryItem`] for one element of the `value` array of `GET …/providers/
/// Microsoft.Compute/disks` or `…/snapshots`. An element that is not a disk or snapshot, or
/// whose `id` is not an ARM id, is an error naming the field.
pub fn inventory_item(resource: &Value) -> Result<InventoryItem, ParseError> {
    let object = resource
        .as_object()
        .ok_or_else(|| ParseError::UnknownFormat("a listed resource is not an object".into()))?;
    let raw_id = text(object, "id").ok_or(ParseError::MissingField("id"))?;
    let resource = ids::resource(raw_id)
        .filter(|r| matches!(r.kind, ResourceKind::Disk | ResourceKind::Snapshot))
        .ok_or_else(|| ParseError::InvalidField {
            field: "id",
            reason: format!("not a managed disk or snapshot id: {raw_id:?}"),
        })?;
    let empty = Map::new();
    let props = object
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let created = text(props, "timeCreated")
        .map(|t| parse_time("properties.timeCreated", t))
        .transpose()?;
    let observed_via = match resource.kind {
        ResourceKind::Disk => DISK_READ,
        _ => SNAPSHOT_READ,
    };
    Ok(InventoryItem {
        resource,
        created,
        permissions: permissions(props),
        created_with: None,
        observed_via: observed_via.to_owned(),
    })
}

/// Who can read the data now. Azure has no share list for disks and snapshots: the only way out
/// of the subscription is a SAS download URL (`beginGetAccess`), and the network and sign-in
/// settings decide who can use one. Absent settings are ARM's defaults (`AllowAll`, `Enabled`,
/// no Entra requirement).
fn permissions(props: &Map<String, Value>) -> Permissions {
    let is =
        |key: &str, wanted: &str| text(props, key).is_some_and(|v| v.eq_ignore_ascii_case(wanted));
    let export_open = is("diskState", "ActiveSAS") || is("diskState", "ActiveSASFrozen");
    let any_network =
        text(props, "networkAccessPolicy").is_none_or(|v| v.eq_ignore_ascii_case("AllowAll"));
    let public_network = !is("publicNetworkAccess", "Disabled");
    let anonymous = !is("dataAccessAuthMode", "AzureActiveDirectory");
    Permissions {
        export_open,
        export_reachable: export_open && any_network && public_network && anonymous,
        ..Permissions::default()
    }
}

/// The [`InventoryItem`] for one element of the `value` array of `GET …/providers/
/// Microsoft.Compute/galleries`: the gallery as one image-kind resource, because its
/// `sharingProfile` shares every image in it at once. `Community` sharing is public (unless
/// `communityGalleryInfo.communityGalleryEnabled` is `false`); each `Subscriptions` group id is
/// an account, each `AADTenants` id a principal (both lower-cased, as ARM ids are). No
/// `sharingProfile` is `Private`. An element whose `id` is not a gallery id, or whose sharing
/// profile cannot be read, is an error naming the field: a share must never be missed silently.
pub fn gallery_item(resource: &Value) -> Result<InventoryItem, ParseError> {
    let object = resource
        .as_object()
        .ok_or_else(|| ParseError::UnknownFormat("a listed gallery is not an object".into()))?;
    let raw_id = text(object, "id").ok_or(ParseError::MissingField("id"))?;
    let resource = ids::gallery(raw_id).ok_or_else(|| ParseError::InvalidField {
        field: "id",
        reason: format!("not a Compute Gallery id: {raw_id:?}"),
    })?;
    let empty = Map::new();
    let props = object
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let permissions = match props.get("sharingProfile") {
        None | Some(Value::Null) => Permissions::default(),
        Some(Value::Object(profile)) => sharing_permissions(profile)?,
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "properties.sharingProfile",
                reason: "not an object".into(),
            })
        }
    };
    Ok(InventoryItem {
        resource,
        // The gallery list carries no creation time.
        created: None,
        permissions,
        created_with: None,
        observed_via: GALLERY_READ.to_owned(),
    })
}

/// Who a gallery's `sharingProfile` lets use its images.
fn sharing_permissions(profile: &Map<String, Value>) -> Result<Permissions, ParseError> {
    let mut permissions = Permissions::default();
    let mut by_groups = false;
    match text(profile, "permissions") {
        None => {}
        Some(p) if p.eq_ignore_ascii_case("Private") => {}
        Some(p) if p.eq_ignore_ascii_case("Groups") => by_groups = true,
        Some(p) if p.eq_ignore_ascii_case("Community") => {
            let disabled = profile
                .get("communityGalleryInfo")
                .and_then(|info| info.get("communityGalleryEnabled"))
                .and_then(Value::as_bool)
                == Some(false);
            permissions.public = !disabled;
        }
        Some(other) => {
            return Err(ParseError::InvalidField {
                field: "properties.sharingProfile.permissions",
                reason: format!("unknown sharing permission {other:?}"),
            })
        }
    }
    let groups = match profile.get("groups") {
        // Shared by groups, but the listing does not say with whom: reported, not guessed.
        None | Some(Value::Null) if by_groups => {
            return Err(ParseError::InvalidField {
                field: "properties.sharingProfile.groups",
                reason: "permissions `Groups` without the groups shared with".into(),
            })
        }
        None | Some(Value::Null) => return Ok(permissions),
        Some(Value::Array(groups)) => groups,
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "properties.sharingProfile.groups",
                reason: "not an array".into(),
            })
        }
    };
    for group in groups {
        let kind = group
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ids = group
            .get("ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|id| id.trim().to_ascii_lowercase())
            .filter(|id| !id.is_empty());
        if kind.eq_ignore_ascii_case("Subscriptions") {
            permissions.accounts.extend(ids);
        } else if kind.eq_ignore_ascii_case("AADTenants") {
            permissions.principals.extend(ids);
        } else {
            return Err(ParseError::InvalidField {
                field: "properties.sharingProfile.groups.type",
                reason: format!("unknown sharing group type {kind:?}"),
            });
        }
    }
    Ok(permissions)
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn disk(props: Value) -> Value {
        json!({
            "id": "/subscriptions/SUB-1/resourceGroups/RG/providers/Microsoft.Compute/disks/Data-1",
            "type": "Microsoft.Compute/disks",
            "location": "westeurope",
            "properties": props,
        })
    }

    #[test]
    fn an_open_export_on_any_network_is_reachable() {
        let item = inventory_item(&disk(json!({
            "diskState": "ActiveSAS",
            "networkAccessPolicy": "AllowAll",
            "timeCreated": "2026-11-01T10:00:00.1234567+00:00",
        })))
        .unwrap();
        assert_eq!(
            item.resource.id,
            "/subscriptions/sub-1/resourcegroups/rg/providers/microsoft.compute/disks/data-1"
        );
        assert_eq!(item.resource.kind, ResourceKind::Disk);
        assert!(item.permissions.export_open && item.permissions.export_reachable);
        assert!(item.created.is_some());
        assert_eq!(item.observed_via, DISK_READ);
    }

    #[test]
    fn network_and_sign_in_settings_make_an_open_export_unreachable() {
        for props in [
            json!({"diskState": "ActiveSAS", "networkAccessPolicy": "AllowPrivate"}),
            json!({"diskState": "ActiveSAS", "networkAccessPolicy": "DenyAll"}),
            json!({"diskState": "ActiveSASFrozen", "publicNetworkAccess": "Disabled"}),
            json!({"diskState": "ActiveSAS", "dataAccessAuthMode": "AzureActiveDirectory"}),
        ] {
            let p = inventory_item(&disk(props.clone())).unwrap().permissions;
            assert!(p.export_open && !p.export_reachable, "{props}");
        }
        for state in ["Attached", "Unattached", "Reserved", "ActiveUpload"] {
            let p = inventory_item(&disk(json!({ "diskState": state })))
                .unwrap()
                .permissions;
            assert!(p.is_private(), "{state}");
        }
    }

    #[test]
    fn records_and_keys_without_an_export_keep_their_earlier_form() {
        // AWS records and keys stored before the export fields existed must read and compare
        // the same, or every AWS resource would look changed on the next run.
        let none = Permissions::default();
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"public":false,"accounts":[],"principals":[]}"#
        );
        assert_eq!(none.key(), "public=false;accounts=;principals=");
        let open = inventory_item(&disk(json!({"diskState": "ActiveSAS"})))
            .unwrap()
            .permissions;
        assert_eq!(
            open.key(),
            "public=false;accounts=;principals=;export=reachable"
        );
        let text = serde_json::to_string(&open).unwrap();
        assert_eq!(serde_json::from_str::<Permissions>(&text).unwrap(), open);
    }

    #[test]
    fn other_resources_and_broken_ids_are_errors() {
        let vm = json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v"});
        assert!(matches!(
            inventory_item(&vm),
            Err(ParseError::InvalidField { field: "id", .. })
        ));
        assert!(matches!(
            inventory_item(&json!({"name": "x"})),
            Err(ParseError::MissingField("id"))
        ));
        assert!(inventory_item(&json!([1])).is_err());
        assert!(inventory_item(&disk(json!({"timeCreated": "yesterday"}))).is_err());
    }

    fn gallery(sharing: Value) -> Value {
        json!({
            "id": "/subscriptions/SUB-1/resourceGroups/Images-RG/providers/Microsoft.Compute/galleries/Golden_Images",
            "type": "Microsoft.Compute/galleries",
            "location": "westeurope",
            "properties": {"sharingProfile": sharing, "provisioningState": "Succeeded"},
        })
    }

    #[test]
    fn a_community_gallery_is_public_and_group_ids_are_accounts_and_principals() {
        let community = inventory_item_of_gallery(json!({
            "permissions": "Community",
            "communityGalleryInfo": {"publicNamePrefix": "golden", "communityGalleryEnabled": true},
        }));
        assert_eq!(
            community.resource.id,
            "/subscriptions/sub-1/resourcegroups/images-rg/providers/microsoft.compute/galleries/golden_images"
        );
        assert_eq!(community.resource.kind, ResourceKind::Image);
        assert_eq!(community.observed_via, GALLERY_READ);
        assert!(community.permissions.public);

        let groups = inventory_item_of_gallery(json!({
            "permissions": "Groups",
            "groups": [
                {"type": "Subscriptions", "ids": ["AAAA-1", " bbbb-2 "]},
                {"type": "AADTenants", "ids": ["TENANT-9"]},
            ],
        }))
        .permissions;
        assert!(!groups.public);
        assert_eq!(
            groups.accounts.iter().collect::<Vec<_>>(),
            ["aaaa-1", "bbbb-2"]
        );
        assert_eq!(groups.principals.iter().collect::<Vec<_>>(), ["tenant-9"]);
    }

    fn inventory_item_of_gallery(sharing: Value) -> InventoryItem {
        gallery_item(&gallery(sharing)).unwrap()
    }

    #[test]
    fn a_private_or_unshared_gallery_is_private() {
        for sharing in [
            json!({"permissions": "Private"}),
            json!({"permissions": "Groups", "groups": []}),
            Value::Null,
            json!({"permissions": "Community", "communityGalleryInfo": {"communityGalleryEnabled": false}}),
        ] {
            assert!(
                inventory_item_of_gallery(sharing.clone())
                    .permissions
                    .is_private(),
                "{sharing}"
            );
        }
        let mut no_profile = gallery(Value::Null);
        no_profile["properties"] = json!({});
        assert!(gallery_item(&no_profile).unwrap().permissions.is_private());
    }

    #[test]
    fn unreadable_sharing_and_non_gallery_ids_are_errors() {
        for sharing in [
            json!({"permissions": "Everyone"}),
            json!({"permissions": "Groups", "groups": [{"type": "Users", "ids": ["x"]}]}),
            json!({"permissions": "Groups", "groups": {"type": "Subscriptions"}}),
            json!({"permissions": "Groups"}),
            json!("Community"),
        ] {
            assert!(
                gallery_item(&gallery(sharing.clone())).is_err(),
                "{sharing}"
            );
        }
        let disk =
            json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d"});
        assert!(matches!(
            gallery_item(&disk),
            Err(ParseError::InvalidField { field: "id", .. })
        ));
        let image = json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i"});
        assert!(
            gallery_item(&image).is_err(),
            "a gallery image definition is not the gallery"
        );
    }

    #[test]
    fn the_activity_log_path_consumes_no_gallery_share() {
        // A gallery share is then always found by the baseline: if the parser ever consumes
        // `galleries/share/action`, the README's Azure baseline subsection must change.
        assert!(!crate::parse::azure::CONSUMED_OPERATIONS
            .iter()
            .any(|op| op.contains("galleries")));
    }
}

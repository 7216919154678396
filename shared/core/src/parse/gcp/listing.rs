//! The baseline's view of GCP: a Compute Engine resource a listing found (by its `selfLink`) and
//! the members of its IAM policy (`getIamPolicy`) become an [`InventoryItem`] whose id is the one
//! the audit-log parser gives the same resource, and whose grants are read by the same member
//! rules as a `setIamPolicy` event, so a baseline finding and an event finding share their id.

use super::facts::Member;
use super::resource_path::{Collection, Location, ResourcePath, Scope};
use crate::inventory::{InventoryItem, Permissions};
use crate::model::Resource;
use crate::parse::{parse_time, ParseError};

/// The normalised resource a listed `selfLink` (or any other reference form with a project)
/// names: a snapshot, image, machine image, or zonal or regional disk.
pub fn listed_resource(self_link: &str) -> Result<Resource, ParseError> {
    listed_path(self_link).map(|path| path.resource())
}

fn listed_path(self_link: &str) -> Result<ResourcePath, ParseError> {
    // A listed resource always names its project; an empty one rejects relative forms.
    let no_project = Scope {
        project: "",
        zone: None,
    };
    let path = ResourcePath::parse(self_link, no_project).ok_or_else(|| invalid(self_link))?;
    match path.collection {
        Collection::Snapshots
        | Collection::Images
        | Collection::MachineImages
        | Collection::Disks => Ok(path),
        Collection::Instances | Collection::Networks => Err(invalid(self_link)),
    }
}

fn invalid(self_link: &str) -> ParseError {
    ParseError::InvalidField {
        field: "selfLink",
        reason: format!(
            "{self_link:?} names no Compute Engine snapshot, image, machine image or disk"
        ),
    }
}

/// The read method the grants came from: the name the finding's event carries, as the audit
/// log would name it (regional disks have their own collection there).
fn get_iam_policy_method(path: &ResourcePath) -> &'static str {
    match (path.collection, &path.location) {
        (Collection::Snapshots, _) => "compute.snapshots.getIamPolicy",
        (Collection::Images, _) => "compute.images.getIamPolicy",
        (Collection::MachineImages, _) => "compute.machineImages.getIamPolicy",
        (Collection::Disks, Location::Region(_)) => "compute.regionDisks.getIamPolicy",
        _ => "compute.disks.getIamPolicy",
    }
}

/// One listed resource as the baseline judges it: `self_link` from the list answer,
/// `creation_timestamp` as the API writes it (RFC 3339 with an offset), and every member of every
/// binding of its IAM policy (any role: each can read the resource). `allUsers` /
/// `allAuthenticatedUsers` make it public; other members are principals, judged against the
/// trusted set by the rules as for a `setIamPolicy` event.
pub fn inventory_item<'m>(
    self_link: &str,
    creation_timestamp: Option<&str>,
    members: impl IntoIterator<Item = &'m str>,
) -> Result<InventoryItem, ParseError> {
    let path = listed_path(self_link)?;
    let created = match creation_timestamp.map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(parse_time("creationTimestamp", raw)?),
        _ => None,
    };
    let mut permissions = Permissions::default();
    for member in members {
        match Member::of(member) {
            Member::Public => permissions.public = true,
            Member::Owner => {}
            Member::Principal(principal) => {
                permissions.principals.insert(principal.to_string());
            }
        }
    }
    Ok(InventoryItem {
        resource: path.resource(),
        created,
        permissions,
        created_with: None,
        observed_via: get_iam_policy_method(&path).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKind;

    #[test]
    fn listed_ids_are_the_ids_the_event_parser_gives() {
        for (self_link, id, kind) in [
            (
                "https://www.googleapis.com/compute/v1/projects/p1/global/snapshots/nightly",
                "projects/p1/global/snapshots/nightly",
                ResourceKind::Snapshot,
            ),
            (
                "https://compute.googleapis.com/compute/v1/projects/p1/zones/us-east1-c/disks/d",
                "projects/p1/zones/us-east1-c/disks/d",
                ResourceKind::Disk,
            ),
            (
                "https://www.googleapis.com/compute/v1/projects/p1/regions/us-east1/disks/r",
                "projects/p1/regions/us-east1/disks/r",
                ResourceKind::Disk,
            ),
            (
                "https://www.googleapis.com/compute/v1/projects/p1/global/machineImages/m",
                "projects/p1/global/machineImages/m",
                ResourceKind::Image,
            ),
        ] {
            assert_eq!(
                listed_resource(self_link).unwrap(),
                Resource::new(kind, id),
                "{self_link}"
            );
        }
    }

    /// For every `setIamPolicy` fixture (snapshot, image, zonal and regional disk), the resource
    /// the event shares is the resource a listing of the same object (its `selfLink`) maps to, and
    /// the listing reads the same audience from the same members.
    #[test]
    fn a_listed_resource_is_the_resource_its_set_iam_policy_event_shares() {
        use crate::model::{Audience, Fact};
        use crate::parse::Parsed;
        for raw in [
            include_str!(
                "../../../../../tests/fixtures/gcp/snapshots_setIamPolicy_external_user.json"
            ),
            include_str!("../../../../../tests/fixtures/gcp/snapshots_setIamPolicy_allUsers.json"),
            include_str!("../../../../../tests/fixtures/gcp/images_setIamPolicy_domain.json"),
            include_str!("../../../../../tests/fixtures/gcp/disks_setIamPolicy_mixed_members.json"),
            include_str!(
                "../../../../../tests/fixtures/gcp/regionDisks_setIamPolicy_mixed_members.json"
            ),
        ] {
            let Ok(Parsed::Event(event)) = super::super::parse_entry(raw) else {
                panic!("fixture does not parse: {raw}");
            };
            let entry: serde_json::Value = serde_json::from_str(raw).unwrap();
            let members: Vec<String> = ["request", "response"]
                .iter()
                .flat_map(|part| {
                    let payload = &entry["protoPayload"][part];
                    let bindings = payload["policy"]["bindings"]
                        .as_array()
                        .or(payload["bindings"].as_array())
                        .cloned()
                        .unwrap_or_default();
                    bindings
                })
                .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default())
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect();
            let mut shared = None;
            let (mut public, mut principals) = (false, std::collections::BTreeSet::new());
            for fact in &event.facts {
                if let Fact::SnapshotShared { snapshot, audience } = fact {
                    shared = Some(snapshot.clone());
                    match audience {
                        Audience::Public => public = true,
                        Audience::Principals(p) => principals.extend(p.iter().cloned()),
                        Audience::Accounts(_) => {}
                    }
                }
            }
            let shared = shared.expect("a share fact");
            let self_link = format!("https://www.googleapis.com/compute/v1/{}", shared.id);
            let item =
                inventory_item(&self_link, None, members.iter().map(String::as_str)).unwrap();
            assert_eq!(item.resource, shared, "{self_link}");
            assert_eq!(item.permissions.public, public, "{self_link}");
            assert_eq!(item.permissions.principals, principals, "{self_link}");
        }
    }

    #[test]
    fn members_read_as_a_set_iam_policy_event_reads_them() {
        let item = inventory_item(
            "https://www.googleapis.com/compute/v1/projects/p1/global/images/golden",
            Some("2026-11-02T01:02:03.456-08:00"),
            [
                "allAuthenticatedUsers",
                " user:eve@evil.example ",
                "projectViewer:p1",
                "deleted:user:old@example.com?uid=1",
                "",
            ],
        )
        .unwrap();
        assert!(item.permissions.public);
        assert_eq!(
            item.permissions.principals.iter().collect::<Vec<_>>(),
            ["user:eve@evil.example"]
        );
        assert!(item.permissions.accounts.is_empty());
        assert_eq!(item.observed_via, "compute.images.getIamPolicy");
        assert_eq!(
            item.created.map(|t| t.to_rfc3339()),
            Some("2026-11-02T09:02:03.456+00:00".to_string())
        );
    }

    #[test]
    fn rejects_what_is_not_a_listed_resource() {
        for bad in [
            "global/snapshots/no-project",
            "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
            "projects/p/global/images/family/debian-12",
            "",
        ] {
            assert!(listed_resource(bad).is_err(), "{bad}");
        }
        assert!(inventory_item(
            "projects/p/global/snapshots/s",
            Some("yesterday"),
            std::iter::empty()
        )
        .is_err());
    }
}

//! Compute Engine resource references → normalized `projects/…` ids.
//!
//! The same resource is written many ways in one log: full URLs
//! (`https://www.googleapis.com/compute/v1/projects/p/global/snapshots/s`,
//! `https://compute.googleapis.com/compute/beta/…`), full resource names
//! (`//compute.googleapis.com/projects/…`), `projects/…` paths, project-relative paths
//! (`zones/z/disks/d`) and bare names (`default`). Chains link by id, so every form must
//! normalize to one string.

use crate::model::{Resource, ResourceKind};
use std::fmt;

/// The Compute Engine collections the chain links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Collection {
    Snapshots,
    Disks,
    Instances,
    Images,
    Networks,
    /// Listed by the baseline only: no machine-image method is in the event path yet.
    MachineImages,
}

impl Collection {
    fn segment(self) -> &'static str {
        match self {
            Collection::Snapshots => "snapshots",
            Collection::Disks => "disks",
            Collection::Instances => "instances",
            Collection::Images => "images",
            Collection::Networks => "networks",
            Collection::MachineImages => "machineImages",
        }
    }

    fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "snapshots" => Some(Collection::Snapshots),
            "disks" => Some(Collection::Disks),
            "instances" => Some(Collection::Instances),
            "images" => Some(Collection::Images),
            "networks" => Some(Collection::Networks),
            "machineImages" => Some(Collection::MachineImages),
            _ => None,
        }
    }

    pub(super) fn kind(self) -> ResourceKind {
        match self {
            Collection::Snapshots => ResourceKind::Snapshot,
            Collection::Disks => ResourceKind::Disk,
            Collection::Instances => ResourceKind::Instance,
            Collection::Images => ResourceKind::Image,
            Collection::Networks => ResourceKind::NetworkGroup,
            // A machine image holds copies of every disk of an instance: an image to the rules.
            Collection::MachineImages => ResourceKind::Image,
        }
    }

    /// Snapshots, images and networks live under `global/`; disks and instances in a zone.
    fn is_global(self) -> bool {
        matches!(
            self,
            Collection::Snapshots
                | Collection::Images
                | Collection::Networks
                | Collection::MachineImages
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Location {
    Global,
    Zone(String),
    Region(String),
}

/// What a relative reference leaves out, taken from the record it appears in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scope<'a> {
    pub project: &'a str,
    pub zone: Option<&'a str>,
}

/// A parsed, complete reference to one Compute Engine resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResourcePath {
    pub project: String,
    pub location: Location,
    pub collection: Collection,
    pub name: String,
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "projects/{}/", self.project)?;
        match &self.location {
            Location::Global => f.write_str("global/")?,
            Location::Zone(zone) => write!(f, "zones/{zone}/")?,
            Location::Region(region) => write!(f, "regions/{region}/")?,
        }
        write!(f, "{}/{}", self.collection.segment(), self.name)
    }
}

impl ResourcePath {
    /// A new resource named `name` in `collection`, placed by `scope` (used for the names of
    /// resources a request creates).
    pub(super) fn named(collection: Collection, name: &str, scope: Scope<'_>) -> Option<Self> {
        let name = name.trim();
        if !is_resource_name(name) {
            return None;
        }
        let location = if collection.is_global() {
            Location::Global
        } else {
            Location::Zone(scope.zone.filter(|zone| !zone.is_empty())?.to_string())
        };
        Some(ResourcePath {
            project: scope.project.to_string(),
            location,
            collection,
            name: name.to_string(),
        })
    }

    /// Any reference form to a resource of a known collection; relative forms take the
    /// project from `scope`. Bare names are not accepted here: they say nothing of the
    /// collection.
    pub(super) fn parse(raw: &str, scope: Scope<'_>) -> Option<Self> {
        let path = strip_to_path(raw)?;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (project, rest) = match segments.as_slice() {
            ["projects", project, rest @ ..] => (*project, rest),
            rest => (scope.project, rest),
        };
        if project.is_empty() {
            return None;
        }
        let (location, collection, name) = match rest {
            ["global", collection, name] => (Location::Global, *collection, *name),
            ["zones", zone, collection, name] => {
                (Location::Zone((*zone).to_string()), *collection, *name)
            }
            ["regions", region, collection, name] => {
                (Location::Region((*region).to_string()), *collection, *name)
            }
            // Anything longer (e.g. `global/images/family/f`, which names whichever image is
            // newest in a family) or shorter does not name one resource.
            _ => return None,
        };
        Some(ResourcePath {
            project: project.to_string(),
            location,
            collection: Collection::from_segment(collection)?,
            name: name.to_string(),
        })
    }

    /// A reference that must be to `expected`: any form [`ResourcePath::parse`] reads, or a
    /// bare name (the API accepts `default` for a network, for instance).
    pub(super) fn resolve(raw: &str, expected: Collection, scope: Scope<'_>) -> Option<Self> {
        let trimmed = raw.trim();
        if !trimmed.is_empty() && !trimmed.contains('/') {
            return ResourcePath::named(expected, trimmed, scope);
        }
        ResourcePath::parse(trimmed, scope).filter(|path| path.collection == expected)
    }

    pub(super) fn resource(&self) -> Resource {
        Resource::new(self.collection.kind(), self.to_string())
    }
}

/// Compute Engine names are RFC 1035 labels: a lower-case letter, then letters, digits and
/// hyphens, at most 63 characters. Checked for bare names, where a placeholder such as `...`
/// must not pass for a resource.
fn is_resource_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Drops the scheme, host and API version of URLs and full resource names, and any query, so
/// that what is left starts at `projects/` (or is already relative).
fn strip_to_path(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    let raw = raw.split(['?', '#']).next().unwrap_or(raw);
    if raw.starts_with("projects/") || !(raw.contains("://") || raw.starts_with("//")) {
        return Some(raw);
    }
    raw.find("/projects/").and_then(|at| raw.get(at + 1..))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        project: "home-project",
        zone: Some("europe-west1-b"),
    };

    fn id(raw: &str, expected: Collection) -> Option<String> {
        ResourcePath::resolve(raw, expected, SCOPE).map(|path| path.to_string())
    }

    #[test]
    fn every_reference_form_normalizes_to_one_id() {
        let want = "projects/p1/zones/us-east1-c/disks/data-1";
        for raw in [
            "https://www.googleapis.com/compute/v1/projects/p1/zones/us-east1-c/disks/data-1",
            "https://compute.googleapis.com/compute/beta/projects/p1/zones/us-east1-c/disks/data-1",
            "https://www.googleapis.com/compute/alpha/projects/p1/zones/us-east1-c/disks/data-1?alt=json",
            "//compute.googleapis.com/projects/p1/zones/us-east1-c/disks/data-1",
            "projects/p1/zones/us-east1-c/disks/data-1",
            " projects/p1/zones/us-east1-c/disks/data-1 ",
        ] {
            assert_eq!(id(raw, Collection::Disks).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn relative_forms_take_the_project_and_zone_from_the_record() {
        assert_eq!(
            id("global/snapshots/nightly", Collection::Snapshots).as_deref(),
            Some("projects/home-project/global/snapshots/nightly")
        );
        assert_eq!(
            id("zones/us-east1-c/disks/d", Collection::Disks).as_deref(),
            Some("projects/home-project/zones/us-east1-c/disks/d")
        );
        assert_eq!(
            id("default", Collection::Networks).as_deref(),
            Some("projects/home-project/global/networks/default")
        );
        assert_eq!(
            id("scratch", Collection::Disks).as_deref(),
            Some("projects/home-project/zones/europe-west1-b/disks/scratch")
        );
        assert_eq!(
            id("regions/us-east1/disks/shared", Collection::Disks).as_deref(),
            Some("projects/home-project/regions/us-east1/disks/shared")
        );
    }

    #[test]
    fn rejects_references_to_something_else() {
        // Wrong collection, image families, truncated paths, URLs without a project, garbage.
        for (raw, expected) in [
            ("projects/p/global/images/i", Collection::Snapshots),
            (
                "projects/p/global/images/family/debian-12",
                Collection::Images,
            ),
            ("projects/p/global/snapshots", Collection::Snapshots),
            ("projects/p/regions/r/subnetworks/s", Collection::Networks),
            (
                "https://example.com/compute/v1/global/networks/n",
                Collection::Networks,
            ),
            ("projects//global/snapshots/s", Collection::Snapshots),
            ("", Collection::Networks),
            ("...", Collection::Disks),
        ] {
            assert_eq!(id(raw, expected), None, "{raw}");
        }
    }

    #[test]
    fn zonal_bare_names_need_a_zone() {
        let no_zone = Scope {
            project: "home-project",
            zone: None,
        };
        assert_eq!(
            ResourcePath::resolve("scratch", Collection::Disks, no_zone),
            None
        );
    }

    #[test]
    fn resources_carry_the_kind_of_their_collection() {
        let path = ResourcePath::parse("projects/p/global/networks/vpc-a", SCOPE);
        assert_eq!(
            path.map(|path| path.resource()),
            Some(Resource::new(
                ResourceKind::NetworkGroup,
                "projects/p/global/networks/vpc-a"
            ))
        );
    }

    proptest::proptest! {
        /// Whatever a record holds, resolving never panics, and an id read back names the
        /// same resource (so ids are stable keys).
        #[test]
        fn resolved_ids_read_back_to_themselves(
            raw in "(https://www.googleapis.com/compute/v1/)?(projects/[a-z0-9-]{0,8}/)?(global|zones/[a-z0-9-]{0,6}|regions/x)?/?(snapshots|disks|instances|images|networks|x)?/?[a-z0-9./-]{0,12}",
        ) {
            for expected in [
                Collection::Snapshots,
                Collection::Disks,
                Collection::Instances,
                Collection::Images,
                Collection::Networks,
            ] {
                if let Some(path) = ResourcePath::resolve(&raw, expected, SCOPE) {
                    proptest::prop_assert_eq!(path.collection, expected);
                    let reread = ResourcePath::parse(&path.to_string(), SCOPE);
                    proptest::prop_assert_eq!(reread, Some(path));
                }
            }
        }
    }
}

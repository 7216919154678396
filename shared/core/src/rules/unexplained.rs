//! `snapshot.unexplained`: the scheduled baseline finds a snapshot, DB snapshot or image, or a new
//! permission on one, that no received event accounts for (a gap in the event stream).
//!
//! Decided from the baseline's listing and its records of earlier listings rather than from the
//! chain graph: [`crate::baseline::check`] gathers the inputs, `decide` judges them, and
//! `finding::assemble_unexplained` makes the finding.

use super::{RuleMeta, T1578_001};
use crate::inventory::{Inventory, InventoryItem, Permissions};
use crate::model::{Audience, Cloud, Fact, Observation, ResourceKind, Severity};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// `snapshot.unexplained`.
pub(crate) const META: RuleMeta = RuleMeta {
    severity: Severity::Medium,
    techniques: &[T1578_001],
    description: "the scheduled baseline finds a snapshot, DB snapshot or image, or a new permission on one, that no received event accounts for (a gap in the event stream)",
    next_steps: &[
        "Check that the CloudTrail trail logs management events in this region and that snapwatch's EventBridge rule and function are enabled and unchanged.",
        "Find who made the change in CloudTrail event history or the trail's S3 logs (snapwatch scan reads them).",
        "If the snapshot or permission is not expected, remove the permission or delete the snapshot.",
    ],
};

/// What the received events say about one resource.
#[derive(Debug, Default)]
pub(crate) struct Explained {
    /// An event created (copied, registered) it.
    pub(crate) created: bool,
    /// An event made it public.
    pub(crate) public: bool,
    /// Accounts an event shared it with.
    pub(crate) accounts: BTreeSet<String>,
    /// Principals an event shared it with.
    pub(crate) principals: BTreeSet<String>,
    /// An event opened an export of its data (Azure `beginGetAccess`).
    pub(crate) exported: bool,
}

impl Explained {
    /// What `events` (received ones: the caller leaves the baseline's own out) say about `id`.
    pub(crate) fn from_events(events: &[&Observation], id: &str) -> Explained {
        let mut explained = Explained::default();
        for o in events {
            match &o.fact {
                Fact::SnapshotCreated { snapshot, .. } | Fact::SnapshotCopied { snapshot, .. }
                    if snapshot.id == id =>
                {
                    explained.created = true
                }
                Fact::ImageRegistered { image, .. } if image.id == id => explained.created = true,
                Fact::SnapshotExported { snapshot, .. } if snapshot.id == id => {
                    explained.exported = true
                }
                Fact::SnapshotShared { snapshot, audience } if snapshot.id == id => {
                    match audience {
                        Audience::Public => explained.public = true,
                        Audience::Accounts(accounts) => {
                            explained.accounts.extend(accounts.iter().cloned())
                        }
                        Audience::Principals(principals) => {
                            explained.principals.extend(principals.iter().cloned())
                        }
                    }
                }
                _ => {}
            }
        }
        explained
    }
}

/// The resource's current permission state, as the baseline's records of listings tell it.
pub(crate) struct PermissionState<'h> {
    /// When a listing first saw this state (now, if this listing is the first).
    pub(crate) first_seen: DateTime<Utc>,
    /// The state before it and when a listing saw it, if one did.
    pub(crate) before: Option<(DateTime<Utc>, &'h Permissions)>,
    /// The resource itself appeared since an earlier listing.
    pub(crate) appeared: bool,
}

/// A change since the previous listing that no received event accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Not there at the previous listing, and no creation event.
    Appeared,
    /// Granted since the previous listing (or on a new resource), and no share event.
    Granted(Permissions),
}

/// The unexplained change of `item`, if any: it appeared with no creation event, or holds
/// grants that neither the state before nor a share event accounts for.
pub(crate) fn decide(
    item: &InventoryItem,
    state: &PermissionState<'_>,
    explained: &Explained,
    creation_explained: bool,
) -> Option<Change> {
    // A managed disk appears with every VM created (no disk event of its own), so only its
    // export is judged, not its creation.
    if state.appeared && !creation_explained && item.resource.kind != ResourceKind::Disk {
        return Some(Change::Appeared);
    }
    let before = state.before.map(|(_, permissions)| permissions);
    let now = &item.permissions;
    let granted = Permissions {
        public: now.public && !before.is_some_and(|b| b.public) && !explained.public,
        accounts: now
            .accounts
            .iter()
            .filter(|a| !before.is_some_and(|b| b.accounts.contains(*a)))
            .filter(|a| !explained.accounts.contains(*a))
            .cloned()
            .collect(),
        principals: now
            .principals
            .iter()
            .filter(|p| !before.is_some_and(|b| b.principals.contains(*p)))
            .filter(|p| !explained.principals.contains(*p))
            .cloned()
            .collect(),
        export_open: now.export_open
            && !before.is_some_and(|b| b.export_open)
            && !explained.exported,
        export_reachable: now.export_reachable
            && !before.is_some_and(|b| b.export_open)
            && !explained.exported,
    };
    (!granted.is_private()).then_some(Change::Granted(granted))
}

/// A finding's words for a change.
pub(crate) struct Wording {
    /// Tells this change from another change of the same resource.
    pub(crate) change_key: String,
    /// The finding's title.
    pub(crate) title: String,
    /// The finding's summary.
    pub(crate) summary: String,
}

/// How the finding of `change` reads.
pub(crate) fn wording(
    inventory: &Inventory,
    item: &InventoryItem,
    state: &PermissionState<'_>,
    change: &Change,
) -> Wording {
    let id = &item.resource.id;
    let what = format!("{} {id}", kind_label(item.resource.kind));
    let region = &inventory.region;
    let gap = gap_causes(inventory.cloud);
    let since = state
        .before
        .map(|(seen_at, _)| {
            format!(
                " between {} and {}",
                rfc3339(seen_at),
                rfc3339(state.first_seen)
            )
        })
        .unwrap_or_default();
    match change {
        Change::Appeared => {
            let grants = if item.permissions.is_private() {
                String::new()
            } else {
                format!(", shared with {}", describe_grants(&item.permissions))
            };
            Wording {
                change_key: format!("appeared;{}", item.permissions.key()),
                title: format!("{what} appeared with no creation event"),
                summary: format!(
                    "The scheduled baseline found {what} in {region}{grants}, created{}; no received event created it. {gap}",
                    item.created.map(|t| format!(" {}", rfc3339(t))).unwrap_or_else(|| " at an unknown time".into())
                ),
            }
        }
        Change::Granted(granted) => Wording {
            change_key: format!("granted;{}", granted.key()),
            title: if granted.public || !granted.accounts.is_empty() || !granted.principals.is_empty()
            {
                format!("{what} shared with no share event")
            } else {
                format!("{what} export opened with no export event")
            },
            summary: format!(
                "The scheduled baseline found {what} in {region} newly shared with {}{since}; no received event granted it. {gap}",
                describe_grants(granted)
            ),
        },
    }
}

/// Where events of `cloud` get lost, for the finding's summary.
fn gap_causes(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "Events from this account and region may be missing (trail stopped, EventBridge rule changed, outage).",
        Cloud::Azure => "Events from this subscription may be missing (diagnostic setting or Event Grid subscription changed, function stopped, outage).",
        Cloud::Gcp => "Events from this project may be missing (Admin Activity audit logs not routed, Eventarc trigger changed, service stopped, outage).",
    }
}

/// The finding's next steps: where this cloud's events are lost and its audit log is read
/// (the rule's own list is the AWS wording).
pub(crate) fn next_steps(cloud: Cloud) -> Vec<String> {
    let (pipeline, audit_log): (&str, &str) = match cloud {
        Cloud::Aws => return crate::model::Rule::SnapshotUnexplained.next_steps(),
        Cloud::Azure => (
            "Check that the subscription's Activity Log diagnostic setting still sends to snapwatch's Event Hub, that the Event Grid subscription and the function app are enabled and unchanged.",
            "Find who made the change in the subscription's Activity Log (snapwatch scan reads its exports).",
        ),
        Cloud::Gcp => (
            "Check that the project's Admin Activity audit logs still reach snapwatch's Eventarc triggers and that the Cloud Run service is enabled and unchanged.",
            "Find who made the change in Cloud Audit Logs (snapwatch scan reads their exports).",
        ),
    };
    let last = META.next_steps.last().copied().unwrap_or_default();
    vec![pipeline.to_owned(), audit_log.to_owned(), last.to_owned()]
}

fn kind_label(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbSnapshot => "DB snapshot",
        ResourceKind::Image => "image",
        ResourceKind::Disk => "disk",
        _ => "snapshot",
    }
}

fn describe_grants(p: &Permissions) -> String {
    let mut parts = Vec::new();
    if p.public {
        parts.push("everyone (public)".to_string());
    }
    parts.extend(p.accounts.iter().map(|a| format!("account {a}")));
    parts.extend(p.principals.iter().cloned());
    if p.export_open {
        parts.push(if p.export_reachable {
            "whoever holds its open SAS download URL, from any network".to_string()
        } else {
            "whoever holds its open SAS download URL (network or sign-in restricted)".to_string()
        });
    }
    parts.join(", ")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod wording_tests {
    use super::*;

    #[test]
    fn each_cloud_is_told_where_its_own_events_are_lost_and_read() {
        for cloud in [Cloud::Azure, Cloud::Gcp] {
            let text = format!("{} {}", next_steps(cloud).join(" "), gap_causes(cloud));
            for aws_only in ["CloudTrail", "EventBridge", "trail"] {
                assert!(!text.contains(aws_only), "{cloud:?}: {text}");
            }
        }
        assert!(next_steps(Cloud::Aws).join(" ").contains("CloudTrail"));
        assert!(gap_causes(Cloud::Gcp).contains("Eventarc"));
        assert!(next_steps(Cloud::Azure).join(" ").contains("Activity Log"));
    }
}

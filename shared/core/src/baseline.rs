//! The snapshot baseline: what a scheduled listing of the account's snapshots, DB snapshots and
//! images shows, compared with what the event stream told the engine.
//!
//! Events can be missed (a trail stopped in one region, a deleted rule, an outage) and a snapshot
//! shared before snapwatch was deployed never produces an event at all. The baseline closes that
//! hole: an exposure it sees that no event explains is ingested as a fact of a synthetic
//! "baseline" event, so `snapshot.public` / `snapshot.shared-external` fire through the same rules
//! and share their finding ids (and alert claims) with the event-driven findings of the same
//! snapshot; and a creation or new permission since the previous run that no received event
//! accounts for raises `snapshot.unexplained`.
//!
//! This module is the pure part: the listing itself (cloud API calls) lives in the adapters.

use crate::model::{Cloud, Resource};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Event ids of baseline observations start with this; no cloud's event ids do.
pub const BASELINE_EVENT_PREFIX: &str = "snapwatch-baseline:";

/// Who may use a snapshot-like resource, as its permission attribute reads now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// `group: all` (EBS, AMI), RDS `restore` value `all`.
    #[serde(default)]
    pub public: bool,
    /// Account ids granted (EBS `userId`, RDS `restore` values, AMI `userId`). The owner's own
    /// account is never listed here.
    #[serde(default)]
    pub accounts: BTreeSet<String>,
    /// Other grantees: AWS Organizations organization / OU ARNs of AMI launch permissions.
    #[serde(default)]
    pub principals: BTreeSet<String>,
}

impl Permissions {
    pub fn is_private(&self) -> bool {
        !self.public && self.accounts.is_empty() && self.principals.is_empty()
    }
}

/// One snapshot, DB snapshot, DB cluster snapshot or image as the listing found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    /// Normalised exactly as the event parsers do: `snap-…` / `ami-…` ids, lower-cased RDS ARNs.
    pub resource: Resource,
    /// When the cloud says it was created (`StartTime`, `SnapshotCreateTime`, `CreationDate`).
    pub created: Option<DateTime<Utc>>,
    pub permissions: Permissions,
    /// Another resource whose creation event also created this one, so that event explains it:
    /// the AMI a snapshot was made for by `CreateImage` / `CopyImage` (its description says so).
    pub created_with: Option<Resource>,
    /// The read API the permissions came from (`DescribeSnapshotAttribute`,
    /// `DescribeDBSnapshotAttributes`, `DescribeDBClusterSnapshotAttributes`,
    /// `DescribeImageAttribute`): the name the finding's event carries.
    pub observed_via: String,
}

/// Everything one listing of one account and region found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub cloud: Cloud,
    pub account: String,
    pub region: String,
    /// When the listing started.
    pub taken_at: DateTime<Utc>,
    pub items: Vec<InventoryItem>,
}

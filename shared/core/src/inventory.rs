//! What a scheduled listing of an account's snapshots, DB snapshots and images found: the input
//! of the baseline ([`crate::baseline`]) and of the `snapshot.unexplained` rule. Pure data; the
//! listing itself (cloud API calls) lives in the adapters.

use crate::model::{Cloud, Resource};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// A download (SAS) URL of the data is open now: Azure `diskState` `ActiveSAS` or
    /// `ActiveSASFrozen`. Whoever holds the URL can read the data while it lasts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub export_open: bool,
    /// The open export is reachable from any network by anyone holding the URL: Azure
    /// `networkAccessPolicy` `AllowAll`, `publicNetworkAccess` not `Disabled` and
    /// `dataAccessAuthMode` not `AzureActiveDirectory`. Only set with `export_open`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub export_reachable: bool,
}

/// Lets records written before the export fields existed (and AWS's, which never set them)
/// keep their exact form.
fn is_false(value: &bool) -> bool {
    !*value
}

impl Permissions {
    /// Nobody outside the owner may use it.
    pub fn is_private(&self) -> bool {
        !self.public && self.accounts.is_empty() && self.principals.is_empty() && !self.export_open
    }

    /// A canonical text of the grants, for store keys and change identities.
    pub(crate) fn key(&self) -> String {
        let accounts: Vec<&str> = self.accounts.iter().map(String::as_str).collect();
        let principals: Vec<&str> = self.principals.iter().map(String::as_str).collect();
        let mut key = format!(
            "public={};accounts={};principals={}",
            self.public,
            accounts.join(","),
            principals.join(",")
        );
        // Appended only when set, so the keys of records without an export stay as they were.
        if self.export_open {
            key.push_str(if self.export_reachable {
                ";export=reachable"
            } else {
                ";export=open"
            });
        }
        key
    }
}

/// One snapshot, DB snapshot, DB cluster snapshot or image as the listing found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryItem {
    /// Normalised exactly as the event parsers do: `snap-…` / `ami-…` ids, lower-cased RDS ARNs.
    pub resource: Resource,
    /// When the cloud says it was created (`StartTime`, `SnapshotCreateTime`, `CreationDate`).
    pub created: Option<DateTime<Utc>>,
    /// Who may use it now.
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
    /// The cloud listed.
    pub cloud: Cloud,
    /// The account (subscription, project) listed.
    pub account: String,
    /// The region listed.
    pub region: String,
    /// When the listing started.
    pub taken_at: DateTime<Utc>,
    /// What it found.
    pub items: Vec<InventoryItem>,
}

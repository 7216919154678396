//! The rule catalogue (the README's "Rules" section). Ids are stable: users filter and suppress on them.

use crate::model::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    SnapshotPublic,
    SnapshotSharedExternal,
    SnapshotExported,
    SnapshotUsedExternally,
    SnapshotRestoredByOther,
    ChainExposedRestore,
    SnapshotUnexplained,
}

pub const T1578_001: &str = "T1578.001";
pub const T1578_002: &str = "T1578.002";
pub const T1537: &str = "T1537";

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::SnapshotPublic,
        Rule::SnapshotSharedExternal,
        Rule::SnapshotExported,
        Rule::SnapshotUsedExternally,
        Rule::SnapshotRestoredByOther,
        Rule::ChainExposedRestore,
        Rule::SnapshotUnexplained,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::SnapshotPublic => "snapshot.public",
            Rule::SnapshotSharedExternal => "snapshot.shared-external",
            Rule::SnapshotExported => "snapshot.exported",
            Rule::SnapshotUsedExternally => "snapshot.used-externally",
            Rule::SnapshotRestoredByOther => "snapshot.restored-by-other",
            Rule::ChainExposedRestore => "chain.exposed-restore",
            Rule::SnapshotUnexplained => "snapshot.unexplained",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::SnapshotPublic => Severity::Critical,
            Rule::SnapshotSharedExternal => Severity::High,
            Rule::SnapshotExported => Severity::High,
            Rule::SnapshotUsedExternally => Severity::Critical,
            Rule::SnapshotRestoredByOther => Severity::Medium,
            Rule::ChainExposedRestore => Severity::Critical,
            Rule::SnapshotUnexplained => Severity::Medium,
        }
    }

    /// ATT&CK techniques every finding of this rule carries; instance restores add T1578.002.
    pub fn techniques(self) -> &'static [&'static str] {
        match self {
            Rule::SnapshotPublic | Rule::SnapshotSharedExternal | Rule::SnapshotUsedExternally => {
                &[T1578_001, T1537]
            }
            Rule::SnapshotExported | Rule::SnapshotRestoredByOther | Rule::SnapshotUnexplained => {
                &[T1578_001]
            }
            Rule::ChainExposedRestore => &[T1578_001, T1578_002],
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Rule::SnapshotPublic => {
                "a snapshot, DB snapshot or image is made public (group all, RDS all, allUsers, allAuthenticatedUsers)"
            }
            Rule::SnapshotSharedExternal => {
                "shared with an account or principal outside the trusted set"
            }
            Rule::SnapshotExported => {
                "its data is read out directly (SAS URL, EBS direct block reads, RDS export to S3) by an untrusted principal"
            }
            Rule::SnapshotUsedExternally => {
                "evidence that an outside account restored or copied our snapshot"
            }
            Rule::SnapshotRestoredByOther => {
                "restored by a principal other than the one that created it, within the window"
            }
            Rule::ChainExposedRestore => {
                "an instance runs on a disk restored from a snapshot, or a database is restored from a backup, and it is opened to the internet (an admin or database port, or made publicly accessible), in either order, within the window"
            }
            Rule::SnapshotUnexplained => {
                "the scheduled baseline finds a snapshot, DB snapshot or image, or a new permission on one, that no received event accounts for (a gap in the event stream)"
            }
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }
}

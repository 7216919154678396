//! RDS calls: DB (cluster) snapshots, their sharing and export, and restores from them.
//!
//! Ids are ARNs. Requests often carry only names; `Ctx::rds_arn` qualifies them with the
//! record's region and account so every event names a snapshot the same way.

use super::ec2::network_group;
use super::shapes::{list, present, section};
use super::{Ctx, Grants, Sections, REQUEST, RESPONSE};
use crate::model::{Fact, Resource, ResourceKind};
use crate::parse::ParseError;
use serde::Deserialize;

type Facts = Result<Vec<Fact>, ParseError>;

/// DB instances and Aurora/Multi-AZ clusters have parallel APIs with parallel field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Instance,
    Cluster,
}

impl Family {
    /// The ARN resource type of this family's snapshots.
    fn snapshot_type(self) -> &'static str {
        match self {
            Family::Instance => "snapshot",
            Family::Cluster => "cluster-snapshot",
        }
    }

    /// The ARN resource type of this family's databases.
    fn database_type(self) -> &'static str {
        match self {
            Family::Instance => "db",
            Family::Cluster => "cluster",
        }
    }
}

/// RDS names a field the same way in requests and responses, so one permissive struct reads
/// both sections of every call handled here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RdsFields {
    #[serde(rename = "dBSnapshotIdentifier")]
    db_snapshot_identifier: Option<String>,
    #[serde(rename = "dBClusterSnapshotIdentifier")]
    db_cluster_snapshot_identifier: Option<String>,
    #[serde(rename = "dBSnapshotArn")]
    db_snapshot_arn: Option<String>,
    #[serde(rename = "dBClusterSnapshotArn")]
    db_cluster_snapshot_arn: Option<String>,
    #[serde(rename = "dBInstanceIdentifier")]
    db_instance_identifier: Option<String>,
    #[serde(rename = "dBClusterIdentifier")]
    db_cluster_identifier: Option<String>,
    #[serde(rename = "dBInstanceArn")]
    db_instance_arn: Option<String>,
    #[serde(rename = "dBClusterArn")]
    db_cluster_arn: Option<String>,
    #[serde(rename = "sourceDBSnapshotIdentifier")]
    source_db_snapshot_identifier: Option<String>,
    #[serde(rename = "targetDBSnapshotIdentifier")]
    target_db_snapshot_identifier: Option<String>,
    #[serde(rename = "sourceDBClusterSnapshotIdentifier")]
    source_db_cluster_snapshot_identifier: Option<String>,
    #[serde(rename = "targetDBClusterSnapshotIdentifier")]
    target_db_cluster_snapshot_identifier: Option<String>,
    /// RestoreDBClusterFromSnapshot: a DB snapshot or DB cluster snapshot, name or ARN.
    #[serde(rename = "snapshotIdentifier")]
    snapshot_identifier: Option<String>,
    #[serde(rename = "snapshotType")]
    snapshot_type: Option<String>,
    #[serde(rename = "sourceArn")]
    source_arn: Option<String>,
    #[serde(rename = "attributeName")]
    attribute_name: Option<String>,
    #[serde(rename = "valuesToAdd", deserialize_with = "list")]
    values_to_add: Vec<String>,
    #[serde(rename = "vpcSecurityGroupIds", deserialize_with = "list")]
    vpc_security_group_ids: Vec<String>,
    #[serde(rename = "vpcSecurityGroups", deserialize_with = "list")]
    vpc_security_groups: Vec<VpcSecurityGroupMembership>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VpcSecurityGroupMembership {
    #[serde(rename = "vpcSecurityGroupId")]
    vpc_security_group_id: Option<String>,
}

impl RdsFields {
    fn snapshot_identifier(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.db_snapshot_identifier),
            Family::Cluster => present(&self.db_cluster_snapshot_identifier),
        }
    }
    fn snapshot_arn(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.db_snapshot_arn),
            Family::Cluster => present(&self.db_cluster_snapshot_arn),
        }
    }
    fn database_identifier(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.db_instance_identifier),
            Family::Cluster => present(&self.db_cluster_identifier),
        }
    }
    fn database_arn(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.db_instance_arn),
            Family::Cluster => present(&self.db_cluster_arn),
        }
    }
    fn copy_source(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.source_db_snapshot_identifier),
            Family::Cluster => present(&self.source_db_cluster_snapshot_identifier),
        }
    }
    fn copy_target(&self, family: Family) -> Option<&str> {
        match family {
            Family::Instance => present(&self.target_db_snapshot_identifier),
            Family::Cluster => present(&self.target_db_cluster_snapshot_identifier),
        }
    }
}

fn db_snapshot(arn: String) -> Resource {
    Resource::new(ResourceKind::DbSnapshot, arn)
}

fn database(arn: String) -> Resource {
    Resource::new(ResourceKind::Database, arn)
}

/// The snapshot a call produced: the ARN the response reports, else one built from the name.
fn produced_snapshot(
    family: Family,
    request: &RdsFields,
    response: &RdsFields,
    ctx: &Ctx,
    requested_name: Option<&str>,
) -> Result<Option<Resource>, ParseError> {
    if let Some(arn) = response.snapshot_arn(family) {
        return Ok(Some(db_snapshot(arn.to_ascii_lowercase())));
    }
    let name = response
        .snapshot_identifier(family)
        .or(requested_name)
        .or(request.snapshot_identifier(family));
    name.map(|name| ctx.rds_arn(family.snapshot_type(), name).map(db_snapshot))
        .transpose()
}

fn note_snapshot_type(ctx: &mut Ctx, response: &RdsFields) {
    if let Some(kind) = present(&response.snapshot_type) {
        ctx.evidence.rds_snapshot_type = Some(kind.to_owned());
    }
}

/// CreateDBSnapshot / CreateDBClusterSnapshot.
pub(super) fn create_snapshot(family: Family, sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    note_snapshot_type(ctx, &response);
    let Some(snapshot) = produced_snapshot(family, &request, &response, ctx, None)? else {
        return Ok(Vec::new());
    };
    let source = match response
        .database_identifier(family)
        .or(request.database_identifier(family))
    {
        Some(name) => Some(database(ctx.rds_arn(family.database_type(), name)?)),
        None => None,
    };
    Ok(vec![Fact::SnapshotCreated { snapshot, source }])
}

/// CopyDBSnapshot / CopyDBClusterSnapshot: lineage from the source (often an ARN in another
/// region or account) to the new copy.
pub(super) fn copy_snapshot(family: Family, sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    note_snapshot_type(ctx, &response);
    let Some(source) = request.copy_source(family) else {
        return Ok(Vec::new());
    };
    let source = db_snapshot(ctx.rds_arn(family.snapshot_type(), source)?);
    let target = produced_snapshot(
        family,
        &request,
        &response,
        ctx,
        request.copy_target(family),
    )?;
    Ok(target
        .map(|snapshot| Fact::SnapshotCopied { snapshot, source })
        .into_iter()
        .collect())
}

/// ModifyDBSnapshotAttribute / ModifyDBClusterSnapshotAttribute with `attributeName: restore`:
/// `valuesToAdd` holds account ids or `all`. `valuesToRemove` grants nothing.
pub(super) fn modify_snapshot_attribute(
    family: Family,
    sections: &Sections,
    ctx: &mut Ctx,
) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let restore =
        present(&request.attribute_name).is_some_and(|name| name.eq_ignore_ascii_case("restore"));
    let Some(name) = request.snapshot_identifier(family).filter(|_| restore) else {
        return Ok(Vec::new());
    };
    let snapshot = db_snapshot(ctx.rds_arn(family.snapshot_type(), name)?);
    let mut grants = Grants::default();
    for value in &request.values_to_add {
        grants.add_account(value, ctx.account);
    }
    Ok(grants.into_facts(snapshot))
}

/// StartExportTask: a snapshot's data written out to S3 as Parquet. Exports of a live cluster
/// (`…:cluster:…`) involve no snapshot and so no chain.
pub(super) fn start_export_task(sections: &Sections) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    let Some(source) = present(&request.source_arn).or(present(&response.source_arn)) else {
        return Ok(Vec::new());
    };
    let source = source.to_ascii_lowercase();
    if !(source.contains(":snapshot:") || source.contains(":cluster-snapshot:")) {
        return Ok(Vec::new());
    }
    Ok(vec![Fact::SnapshotExported {
        snapshot: db_snapshot(source),
        method: "rds-export-to-s3".to_owned(),
    }])
}

/// RestoreDBInstanceFromDBSnapshot / RestoreDBClusterFromSnapshot: the new database, the
/// snapshot it came from, and the VPC security groups it joined.
pub(super) fn restore(family: Family, sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    let database = match response.database_arn(family) {
        Some(arn) => Some(database(arn.to_ascii_lowercase())),
        None => response
            .database_identifier(family)
            .or(request.database_identifier(family))
            .map(|name| ctx.rds_arn(family.database_type(), name).map(database))
            .transpose()?,
    };
    let Some(database) = database else {
        return Ok(Vec::new());
    };

    // A DB instance restores from a DB snapshot, or from a Multi-AZ cluster snapshot; a cluster
    // names its source `snapshotIdentifier`, a cluster snapshot unless the ARN says otherwise.
    let source = match family {
        Family::Instance => match request.snapshot_identifier(Family::Instance) {
            Some(name) => Some(ctx.rds_arn(Family::Instance.snapshot_type(), name)?),
            None => request
                .snapshot_identifier(Family::Cluster)
                .map(|name| ctx.rds_arn(Family::Cluster.snapshot_type(), name))
                .transpose()?,
        },
        Family::Cluster => present(&request.snapshot_identifier)
            .map(|name| ctx.rds_arn(Family::Cluster.snapshot_type(), name))
            .transpose()?,
    };

    let mut facts = Vec::new();
    if let Some(source) = source {
        facts.push(Fact::RestoredFrom {
            resource: database.clone(),
            snapshot: db_snapshot(source),
        });
    }
    let mut groups: Vec<Resource> = Vec::new();
    let group_ids = request
        .vpc_security_group_ids
        .iter()
        .map(String::as_str)
        .chain(
            response
                .vpc_security_groups
                .iter()
                .filter_map(|g| present(&g.vpc_security_group_id)),
        );
    for id in group_ids.map(str::trim).filter(|id| !id.is_empty()) {
        let group = network_group(id);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    facts.extend(groups.into_iter().map(|group| Fact::NetworkMember {
        member: database.clone(),
        group,
        tags: Vec::new(),
    }));
    Ok(facts)
}

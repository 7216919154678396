//! RDS calls: DB (cluster) snapshots, their sharing and export, and restores from them.
//!
//! Ids are ARNs. Requests often carry only names; `Ctx::rds_arn` qualifies them with the
//! record's region and account so every event names a snapshot the same way.

use super::ec2::network_group;
use super::shapes::{lenient_bool, list, present, section};
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
    #[serde(rename = "publiclyAccessible", deserialize_with = "lenient_bool")]
    publicly_accessible: Option<bool>,
    /// Point-in-time restores: the database whose backups are restored, and the new one.
    #[serde(rename = "sourceDBInstanceIdentifier")]
    source_db_instance_identifier: Option<String>,
    #[serde(rename = "targetDBInstanceIdentifier")]
    target_db_instance_identifier: Option<String>,
    #[serde(rename = "sourceDBInstanceAutomatedBackupsArn")]
    source_db_instance_automated_backups_arn: Option<String>,
    #[serde(rename = "sourceDBClusterIdentifier")]
    source_db_cluster_identifier: Option<String>,
    /// Restores from backup files in S3.
    #[serde(rename = "s3BucketName")]
    s3_bucket_name: Option<String>,
    #[serde(rename = "s3Prefix")]
    s3_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VpcSecurityGroupMembership {
    #[serde(rename = "vpcSecurityGroupId")]
    vpc_security_group_id: Option<String>,
    /// `active`, `adding`, `removing`…: a group being removed is no way in.
    status: Option<String>,
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

/// Where a restore's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RestoreSource {
    /// RestoreDBInstanceFromDBSnapshot / RestoreDBClusterFromSnapshot.
    Snapshot,
    /// RestoreDBInstanceToPointInTime / RestoreDBClusterToPointInTime: a database's automated
    /// backups.
    PointInTime,
    /// RestoreDBInstanceFromS3 / RestoreDBClusterFromS3: backup files in a bucket.
    S3,
}

/// Whether the call leaves the database publicly accessible: the request's setting, else (when
/// the request does not touch it) the state the response reports.
fn made_public(request: &RdsFields, response: &RdsFields) -> bool {
    request.publicly_accessible.or(response.publicly_accessible) == Some(true)
}

fn public_endpoint(resource: Resource, setting: String) -> Fact {
    Fact::PublicEndpoint {
        resource,
        setting,
        sources: Vec::new(),
    }
}

/// The database a call names: the response's ARN, else one built from `name` or the
/// family's identifier.
fn named_database(
    family: Family,
    request: &RdsFields,
    response: &RdsFields,
    ctx: &Ctx,
    name: Option<&str>,
) -> Result<Option<Resource>, ParseError> {
    if let Some(arn) = response.database_arn(family) {
        return Ok(Some(database(arn.to_ascii_lowercase())));
    }
    name.or(response.database_identifier(family))
        .or(request.database_identifier(family))
        .map(|name| ctx.rds_arn(family.database_type(), name).map(database))
        .transpose()
}

/// The VPC security groups a database is (being put) in: the request's ids and the response's
/// memberships, except those being removed.
fn security_groups(request: &RdsFields, response: &RdsFields) -> Vec<Resource> {
    let mut groups: Vec<Resource> = Vec::new();
    let group_ids = request
        .vpc_security_group_ids
        .iter()
        .map(String::as_str)
        .chain(
            response
                .vpc_security_groups
                .iter()
                .filter(|g| {
                    !present(&g.status)
                        .is_some_and(|status| status.eq_ignore_ascii_case("removing"))
                })
                .filter_map(|g| present(&g.vpc_security_group_id)),
        );
    for id in group_ids.map(str::trim).filter(|id| !id.is_empty()) {
        let group = network_group(id);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

fn memberships(database: &Resource, groups: Vec<Resource>) -> impl Iterator<Item = Fact> + '_ {
    groups.into_iter().map(|group| Fact::NetworkMember {
        member: database.clone(),
        group,
        tags: Vec::new(),
    })
}

/// The restores: the new database, what its data came from, the VPC security groups it joined,
/// and whether it was made publicly accessible.
pub(super) fn restore(
    family: Family,
    from: RestoreSource,
    sections: &Sections,
    ctx: &mut Ctx,
) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    // A point-in-time restore of an instance names the new one `targetDBInstanceIdentifier`.
    let new_name = match (family, from) {
        (Family::Instance, RestoreSource::PointInTime) => {
            present(&request.target_db_instance_identifier)
        }
        _ => None,
    };
    let Some(database) = named_database(family, &request, &response, ctx, new_name)? else {
        return Ok(Vec::new());
    };

    let source = match from {
        RestoreSource::Snapshot => snapshot_source(family, &request, ctx)?,
        RestoreSource::PointInTime => backups_source(family, &request, ctx)?,
        RestoreSource::S3 => present(&request.s3_bucket_name).map(|bucket| {
            let prefix = present(&request.s3_prefix).unwrap_or("");
            let arn = format!("arn:{}:s3:::{bucket}/{prefix}", ctx.partition);
            arn.trim_end_matches('/').to_ascii_lowercase()
        }),
    };

    let mut facts = Vec::new();
    if let Some(source) = source {
        facts.push(Fact::RestoredFrom {
            resource: database.clone(),
            snapshot: db_snapshot(source),
        });
    }
    if made_public(&request, &response) {
        facts.push(public_endpoint(
            database.clone(),
            "publiclyAccessible".to_owned(),
        ));
    }
    facts.extend(memberships(&database, security_groups(&request, &response)));
    Ok(facts)
}

/// A DB instance restores from a DB snapshot, or from a Multi-AZ cluster snapshot; a cluster
/// names its source `snapshotIdentifier`, a cluster snapshot unless the ARN says otherwise.
fn snapshot_source(
    family: Family,
    request: &RdsFields,
    ctx: &Ctx,
) -> Result<Option<String>, ParseError> {
    match family {
        Family::Instance => match request.snapshot_identifier(Family::Instance) {
            Some(name) => Ok(Some(ctx.rds_arn(Family::Instance.snapshot_type(), name)?)),
            None => request
                .snapshot_identifier(Family::Cluster)
                .map(|name| ctx.rds_arn(Family::Cluster.snapshot_type(), name))
                .transpose(),
        },
        Family::Cluster => present(&request.snapshot_identifier)
            .map(|name| ctx.rds_arn(Family::Cluster.snapshot_type(), name))
            .transpose(),
    }
}

/// The automated backups a point-in-time restore reads: their ARN when the request names it,
/// else `<source database ARN>/backups` (the backups have no ARN of their own in the record).
fn backups_source(
    family: Family,
    request: &RdsFields,
    ctx: &Ctx,
) -> Result<Option<String>, ParseError> {
    if let Some(arn) = present(&request.source_db_instance_automated_backups_arn) {
        return Ok(Some(arn.to_ascii_lowercase()));
    }
    let source = match family {
        Family::Instance => present(&request.source_db_instance_identifier),
        Family::Cluster => present(&request.source_db_cluster_identifier),
    };
    source
        .map(|name| {
            ctx.rds_arn(family.database_type(), name)
                .map(|arn| format!("{arn}/backups"))
        })
        .transpose()
}

/// ModifyDBInstance / ModifyDBCluster: the security groups the database now joins and whether
/// it is made publicly accessible. An instance of an Aurora cluster made public exposes the
/// cluster's data, so the cluster is named too.
pub(super) fn modify_database(family: Family, sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    let Some(database) = named_database(family, &request, &response, ctx, None)? else {
        return Ok(Vec::new());
    };
    let mut facts = Vec::new();
    // Only a request that sets the flag changes exposure; an unrelated modification of an
    // already public database reports its state, which is an exposure too.
    if made_public(&request, &response) {
        facts.push(public_endpoint(
            database.clone(),
            "publiclyAccessible".to_owned(),
        ));
        if family == Family::Instance {
            facts.extend(cluster_exposure(&request, &response, ctx, &database)?);
        }
    }
    facts.extend(memberships(&database, security_groups(&request, &response)));
    Ok(facts)
}

/// CreateDBInstance: an instance added to a (restored) Aurora cluster with
/// `publiclyAccessible: true` is the cluster's public endpoint. Standalone instances start
/// empty and state nothing.
pub(super) fn create_database_instance(sections: &Sections, ctx: &mut Ctx) -> Facts {
    let request: RdsFields = section(sections.request, REQUEST)?;
    let response: RdsFields = section(sections.response, RESPONSE)?;
    if !made_public(&request, &response) {
        return Ok(Vec::new());
    }
    let Some(instance) = named_database(Family::Instance, &request, &response, ctx, None)? else {
        return Ok(Vec::new());
    };
    cluster_exposure(&request, &response, ctx, &instance)
}

fn cluster_exposure(
    request: &RdsFields,
    response: &RdsFields,
    ctx: &Ctx,
    instance: &Resource,
) -> Facts {
    let Some(cluster) =
        present(&response.db_cluster_identifier).or(present(&request.db_cluster_identifier))
    else {
        return Ok(Vec::new());
    };
    let cluster = database(ctx.rds_arn(Family::Cluster.database_type(), cluster)?);
    let instance_name = instance.id.rsplit(':').next().unwrap_or(&instance.id);
    Ok(vec![public_endpoint(
        cluster,
        format!("publiclyAccessible instance {instance_name}"),
    )])
}

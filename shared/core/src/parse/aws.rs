//! AWS CloudTrail records (bare, in S3 log files, or as EventBridge `detail`).
//!
//! A record is deserialized once into `Record`, which borrows the few top-level strings it
//! needs and keeps `requestParameters` / `responseElements` as raw JSON. Irrelevant records are
//! skipped on their `eventName` without touching those sections; a consumed record then parses
//! only its own sections into the typed structs of the `ec2`, `network` or `rds` submodules.

mod ec2;
mod network;
mod rds;
mod shapes;
#[cfg(test)]
mod tests;

use crate::model::{Audience, Cloud, EventMeta, Fact, ParsedEvent, Resource};
use crate::parse::{parse_time, ParseError, Parsed, Skip};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use shapes::{text, Text};
use std::fmt::Write as _;

/// The EventBridge detail-types that carry a CloudTrail record in `detail`.
const DETAIL_TYPE_API_CALL: &str = "AWS API Call via CloudTrail";
const DETAIL_TYPE_SERVICE_EVENT: &str = "AWS Service Event via CloudTrail";

/// Field names used in errors about a record's sections.
const REQUEST: &str = "requestParameters";
const RESPONSE: &str = "responseElements";
const SERVICE_EVENT_DETAILS: &str = "serviceEventDetails";

/// Declares the consumed calls once: the enum the parser dispatches on, the lookup by
/// `eventName`, the expected `eventSource`, and the public [`CONSUMED_EVENTS`] list, so the
/// EventBridge rule and the parser can never disagree.
macro_rules! consumed_events {
    ($($source:literal => [$($name:ident),+ $(,)?]),+ $(,)?) => {
        /// A CloudTrail call the chain consumes; variants are named exactly as the `eventName`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Api {
            $($($name,)+)+
        }

        impl Api {
            #[cfg(test)]
            const ALL: &'static [Api] = &[$($(Api::$name,)+)+];

            fn from_event_name(name: &str) -> Option<Api> {
                match name {
                    $($(stringify!($name) => Some(Api::$name),)+)+
                    _ => None,
                }
            }

            fn event_source(self) -> &'static str {
                match self {
                    $($(Api::$name)|+ => $source,)+
                }
            }
        }

        /// (eventSource, eventName) pairs the chain consumes; the Lambda's EventBridge rule
        /// lists exactly these.
        pub const CONSUMED_EVENTS: &[(&str, &str)] = &[$($(($source, stringify!($name)),)+)+];
    };
}

consumed_events! {
    "ec2.amazonaws.com" => [
        CreateSnapshot,
        CreateSnapshots,
        CopySnapshot,
        CreateImage,
        RegisterImage,
        CopyImage,
        ModifySnapshotAttribute,
        ModifyImageAttribute,
        SharedSnapshotVolumeCreated,
        SharedSnapshotCopyInitiated,
        CreateVolume,
        AttachVolume,
        RunInstances,
        ModifyInstanceAttribute,
        AuthorizeSecurityGroupIngress,
        ModifySecurityGroupRules,
    ],
    "ebs.amazonaws.com" => [ListSnapshotBlocks, ListChangedBlocks, GetSnapshotBlock],
    "rds.amazonaws.com" => [
        CreateDBSnapshot,
        CreateDBClusterSnapshot,
        CopyDBSnapshot,
        CopyDBClusterSnapshot,
        ModifyDBSnapshotAttribute,
        ModifyDBClusterSnapshotAttribute,
        StartExportTask,
        RestoreDBInstanceFromDBSnapshot,
        RestoreDBClusterFromSnapshot,
        RestoreDBInstanceToPointInTime,
        RestoreDBClusterToPointInTime,
        RestoreDBInstanceFromS3,
        RestoreDBClusterFromS3,
        ModifyDBInstance,
        ModifyDBCluster,
        CreateDBInstance,
    ],
}

/// Whether the chain consumes calls of this `eventName` (cheap: a string match, no parsing).
pub fn is_consumed(event_name: &str) -> bool {
    Api::from_event_name(event_name).is_some()
}

/// One bare CloudTrail record (the object EventBridge puts under `detail`, or an element of an
/// S3 log file's `Records`).
pub fn parse_record(raw: &str) -> Result<Parsed, ParseError> {
    let record: Record<'_> = serde_json::from_str(raw)?;
    let name = text(&record.event_name).ok_or(ParseError::MissingField("eventName"))?;
    let Some(api) = Api::from_event_name(name) else {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    };
    // Other services reuse some names (Storage Gateway `CreateSnapshot`…). Scrubbed samples
    // drop `eventSource`; then the name alone decides.
    if text(&record.event_source).is_some_and(|source| source != api.event_source()) {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    }
    if let Some(code) = text(&record.error_code) {
        let skip = if code.ends_with("DryRunOperation") {
            Skip::DryRun
        } else {
            Skip::Failed
        };
        return Ok(Parsed::Skipped(skip));
    }

    let event_time = text(&record.event_time).ok_or(ParseError::MissingField("eventTime"))?;
    let time = parse_time("eventTime", event_time)?;
    let identity = record.user_identity.as_ref();
    let caller_account = identity.and_then(|i| text(&i.account_id));
    let account = text(&record.recipient_account_id)
        .or(caller_account)
        .ok_or(ParseError::MissingField("recipientAccountId"))?;
    let region = text(&record.aws_region);
    let partition = partition_of(region);

    let sections = Sections {
        request: record.request_parameters,
        response: record.response_elements,
        service_event_details: record.service_event_details,
        caller_account,
    };
    let mut ctx = Ctx {
        account,
        region,
        partition,
        evidence: Evidence::default(),
    };
    let facts = api.facts(&sections, &mut ctx)?;

    let source_ip = text(&record.source_ip_address);
    let meta = EventMeta {
        id: text(&record.event_id).map_or_else(|| content_id(raw), str::to_owned),
        name: name.to_owned(),
        time,
        actor: actor(identity, partition),
        source_ip: source_ip.map(str::to_owned),
        cloud: Cloud::Aws,
        account: account.to_owned(),
        region: region.map(str::to_owned),
        automation: automation(identity, source_ip, &ctx.evidence).map(str::to_owned),
    };
    Ok(Parsed::Event(ParsedEvent { meta, facts }))
}

/// An EventBridge envelope (`detail-type` "AWS API Call via CloudTrail" / "AWS Service Event via
/// CloudTrail") whose `detail` is a CloudTrail record. Other detail-types →
/// `Ok(Parsed::Skipped(Irrelevant))`.
pub fn parse_eventbridge(raw: &str) -> Result<Parsed, ParseError> {
    let envelope: Envelope<'_> = serde_json::from_str(raw)?;
    let detail_type = text(&envelope.detail_type).ok_or(ParseError::MissingField("detail-type"))?;
    if detail_type != DETAIL_TYPE_API_CALL && detail_type != DETAIL_TYPE_SERVICE_EVENT {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    }
    let detail = envelope.detail.ok_or(ParseError::MissingField("detail"))?;
    parse_record(detail.get())
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, rename = "detail-type")]
    detail_type: Option<Text<'a>>,
    #[serde(borrow)]
    detail: Option<&'a RawValue>,
}

/// The top level of a CloudTrail record: only what every consumed call needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(borrow)]
    event_name: Option<Text<'a>>,
    #[serde(borrow)]
    event_source: Option<Text<'a>>,
    #[serde(borrow)]
    event_time: Option<Text<'a>>,
    #[serde(borrow, rename = "eventID")]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    error_code: Option<Text<'a>>,
    #[serde(borrow)]
    aws_region: Option<Text<'a>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    source_ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    recipient_account_id: Option<Text<'a>>,
    #[serde(borrow)]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(borrow)]
    request_parameters: Option<&'a RawValue>,
    #[serde(borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow)]
    service_event_details: Option<&'a RawValue>,
}

// Lower-case aliases: some log pipelines (Panther's normalised CloudTrail) lower-case these keys.
#[derive(Deserialize)]
struct UserIdentity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    arn: Option<Text<'a>>,
    #[serde(borrow, rename = "accountId", alias = "accountid")]
    account_id: Option<Text<'a>>,
    #[serde(borrow, rename = "invokedBy", alias = "invokedby")]
    invoked_by: Option<Text<'a>>,
    #[serde(borrow, rename = "sessionContext", alias = "sessioncontext")]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Deserialize)]
struct SessionContext<'a> {
    #[serde(borrow, rename = "sessionIssuer", alias = "sessionissuer")]
    session_issuer: Option<SessionIssuer<'a>>,
}

#[derive(Deserialize)]
struct SessionIssuer<'a> {
    #[serde(borrow, rename = "userName", alias = "username")]
    user_name: Option<Text<'a>>,
    #[serde(borrow)]
    arn: Option<Text<'a>>,
}

impl UserIdentity<'_> {
    fn is_aws_account(&self) -> bool {
        text(&self.kind) == Some("AWSAccount")
    }

    /// Names the role behind an assumed-role session: the session issuer's name, the role
    /// segment of the `assumed-role/<role>/<session>` ARN, and the issuer ARN's last segment.
    fn role_names(&self) -> impl Iterator<Item = &str> {
        let issuer = self
            .session_context
            .as_ref()
            .and_then(|c| c.session_issuer.as_ref());
        let issuer_name = issuer.and_then(|i| text(&i.user_name));
        let issuer_arn_name = issuer
            .and_then(|i| text(&i.arn))
            .and_then(|arn| arn.rsplit('/').next());
        let assumed_role = text(&self.arn)
            .and_then(|arn| arn.split_once(":assumed-role/"))
            .and_then(|(_, rest)| rest.split('/').next());
        [issuer_name, issuer_arn_name, assumed_role]
            .into_iter()
            .flatten()
    }
}

/// The raw sections of a consumed record, handed to the per-call fact builders.
struct Sections<'r> {
    request: Option<&'r RawValue>,
    response: Option<&'r RawValue>,
    service_event_details: Option<&'r RawValue>,
    /// `userIdentity.accountId`: for `AWSAccount` service events, the *other* account.
    caller_account: Option<&'r str>,
}

/// What the fact builders need to know about the record, and what they report back about it.
struct Ctx<'r> {
    /// The account the record was logged in (ours).
    account: &'r str,
    region: Option<&'r str>,
    partition: &'static str,
    evidence: Evidence,
}

/// Service-automation evidence found inside the request/response sections.
#[derive(Debug, Default)]
struct Evidence {
    /// RDS `snapshotType` (`manual`, `automated`, `awsbackup`…).
    rds_snapshot_type: Option<String>,
    /// A `GuardDutyScanId` tag on the created resource.
    guardduty_scan_tag: bool,
    /// An `aws:dlm:*` tag: the `aws:` prefix is reserved, only DLM itself can set it.
    dlm_tag: bool,
}

impl Ctx<'_> {
    fn note_tag_key(&mut self, key: &str) {
        if key == "GuardDutyScanId" {
            self.evidence.guardduty_scan_tag = true;
        } else if key.starts_with("aws:dlm:") {
            self.evidence.dlm_tag = true;
        }
    }

    /// An RDS ARN for `identifier`, which may already be an ARN (used as is) or a bare name
    /// (qualified with the record's partition, region and account). RDS stores identifiers in
    /// lower case, so ids are lower-cased to link names typed in any case.
    fn rds_arn(&self, resource_type: &str, identifier: &str) -> Result<String, ParseError> {
        if identifier.starts_with("arn:") {
            return Ok(identifier.to_ascii_lowercase());
        }
        let region = self.region.ok_or(ParseError::MissingField("awsRegion"))?;
        let arn = format!(
            "arn:{}:rds:{}:{}:{}:{}",
            self.partition, region, self.account, resource_type, identifier
        );
        Ok(arn.to_ascii_lowercase())
    }
}

impl Api {
    fn facts(self, sections: &Sections, ctx: &mut Ctx) -> Result<Vec<Fact>, ParseError> {
        use rds::Family::{Cluster, Instance};
        use rds::RestoreSource;
        match self {
            Api::CreateSnapshot => ec2::create_snapshot(sections, ctx),
            Api::CreateSnapshots => ec2::create_snapshots(sections, ctx),
            Api::CopySnapshot => ec2::copy_snapshot(sections, ctx),
            Api::CreateImage => ec2::create_image(sections, ctx),
            Api::RegisterImage => ec2::register_image(sections),
            Api::CopyImage => ec2::copy_image(sections, ctx),
            Api::ModifySnapshotAttribute => ec2::modify_snapshot_attribute(sections, ctx),
            Api::ModifyImageAttribute => ec2::modify_image_attribute(sections, ctx),
            Api::SharedSnapshotVolumeCreated | Api::SharedSnapshotCopyInitiated => {
                ec2::shared_snapshot_used(sections, ctx)
            }
            Api::CreateVolume => ec2::create_volume(sections, ctx),
            Api::AttachVolume => ec2::attach_volume(sections),
            Api::RunInstances => ec2::run_instances(sections, ctx),
            Api::ModifyInstanceAttribute => network::modify_instance_attribute(sections),
            Api::AuthorizeSecurityGroupIngress => network::authorize_ingress(sections),
            Api::ModifySecurityGroupRules => network::modify_security_group_rules(sections),
            Api::ListSnapshotBlocks | Api::ListChangedBlocks | Api::GetSnapshotBlock => {
                ec2::ebs_direct_read(sections)
            }
            Api::CreateDBSnapshot => rds::create_snapshot(rds::Family::Instance, sections, ctx),
            Api::CreateDBClusterSnapshot => {
                rds::create_snapshot(rds::Family::Cluster, sections, ctx)
            }
            Api::CopyDBSnapshot => rds::copy_snapshot(rds::Family::Instance, sections, ctx),
            Api::CopyDBClusterSnapshot => rds::copy_snapshot(rds::Family::Cluster, sections, ctx),
            Api::ModifyDBSnapshotAttribute => {
                rds::modify_snapshot_attribute(rds::Family::Instance, sections, ctx)
            }
            Api::ModifyDBClusterSnapshotAttribute => {
                rds::modify_snapshot_attribute(rds::Family::Cluster, sections, ctx)
            }
            Api::StartExportTask => rds::start_export_task(sections),
            Api::RestoreDBInstanceFromDBSnapshot => {
                rds::restore(Instance, RestoreSource::Snapshot, sections, ctx)
            }
            Api::RestoreDBClusterFromSnapshot => {
                rds::restore(Cluster, RestoreSource::Snapshot, sections, ctx)
            }
            Api::RestoreDBInstanceToPointInTime => {
                rds::restore(Instance, RestoreSource::PointInTime, sections, ctx)
            }
            Api::RestoreDBClusterToPointInTime => {
                rds::restore(Cluster, RestoreSource::PointInTime, sections, ctx)
            }
            Api::RestoreDBInstanceFromS3 => {
                rds::restore(Instance, RestoreSource::S3, sections, ctx)
            }
            Api::RestoreDBClusterFromS3 => rds::restore(Cluster, RestoreSource::S3, sections, ctx),
            Api::ModifyDBInstance => rds::modify_database(Instance, sections, ctx),
            Api::ModifyDBCluster => rds::modify_database(Cluster, sections, ctx),
            Api::CreateDBInstance => rds::create_database_instance(sections, ctx),
        }
    }
}

/// Who a share grants access to, accumulated from whichever request form was logged.
#[derive(Debug, Default)]
struct Grants {
    public: bool,
    accounts: Vec<String>,
    principals: Vec<String>,
}

impl Grants {
    /// An account id; `all` means public, and our own account is no share at all.
    fn add_account(&mut self, account: &str, own_account: &str) {
        let account = account.trim();
        if account.eq_ignore_ascii_case("all") {
            self.public = true;
        } else if !account.is_empty()
            && account != own_account
            && !self.accounts.iter().any(|a| a == account)
        {
            self.accounts.push(account.to_owned());
        }
    }

    /// A group: only `all` exists, and it means public.
    fn add_group(&mut self, group: &str) {
        if group.trim().eq_ignore_ascii_case("all") {
            self.public = true;
        }
    }

    /// An organization / organizational unit ARN.
    fn add_principal(&mut self, principal: &str) {
        let principal = principal.trim();
        if !principal.is_empty() && !self.principals.iter().any(|p| p == principal) {
            self.principals.push(principal.to_owned());
        }
    }

    /// One `SnapshotShared` per audience kind, most severe first.
    fn into_facts(self, snapshot: Resource) -> Vec<Fact> {
        let mut audiences = Vec::new();
        if self.public {
            audiences.push(Audience::Public);
        }
        if !self.accounts.is_empty() {
            audiences.push(Audience::Accounts(self.accounts));
        }
        if !self.principals.is_empty() {
            audiences.push(Audience::Principals(self.principals));
        }
        audiences
            .into_iter()
            .map(|audience| Fact::SnapshotShared {
                snapshot: snapshot.clone(),
                audience,
            })
            .collect()
    }
}

/// The principal: its ARN; for `AWSAccount` callers (another account acting on something we
/// shared) that account's root ARN; else the AWS service that made the call.
fn actor(identity: Option<&UserIdentity>, partition: &str) -> Option<String> {
    let identity = identity?;
    if let Some(arn) = text(&identity.arn) {
        return Some(arn.to_owned());
    }
    if identity.is_aws_account() {
        if let Some(account) = text(&identity.account_id) {
            return Some(format!("arn:{partition}:iam::{account}:root"));
        }
    }
    text(&identity.invoked_by).map(str::to_owned)
}

const BACKUP_ROLES: &[&str] = &["AWSBackupDefaultServiceRole", "AWSServiceRoleForBackup"];
const DLM_ROLES: &[&str] = &[
    "AWSDataLifecycleManagerDefaultRole",
    "AWSDataLifecycleManagerDefaultRoleForAMIManagement",
    "AWSServiceRoleForDataLifecycleManager",
];
const GUARDDUTY_MALWARE_ROLES: &[&str] = &["AWSServiceRoleForAmazonGuardDutyMalwareProtection"];
const AUTOSCALING_ROLES: &[&str] = &["AWSServiceRoleForAutoScaling"];

/// Labels a record as an AWS service's own automation, only on evidence in the record.
/// `AWSAccount` callers are never automation: the `SharedSnapshot*` events they produce are
/// the signal that another account used our snapshot, whatever service it used.
fn automation(
    identity: Option<&UserIdentity>,
    source_ip: Option<&str>,
    evidence: &Evidence,
) -> Option<&'static str> {
    if identity.is_some_and(UserIdentity::is_aws_account) {
        return None;
    }
    let invoked_by = identity.and_then(|i| text(&i.invoked_by));
    // AWS sets `sourceIPAddress` to the service's name when a service calls on our behalf.
    let called_by = |service: &str| invoked_by == Some(service) || source_ip == Some(service);
    let has_role = |roles: &[&str]| {
        identity.is_some_and(|i| {
            i.role_names()
                .any(|name| roles.iter().any(|role| role.eq_ignore_ascii_case(name)))
        })
    };
    let snapshot_type = evidence.rds_snapshot_type.as_deref().map(str::trim);
    let snapshot_type_is = |kind: &str| snapshot_type.is_some_and(|t| t.eq_ignore_ascii_case(kind));

    if called_by("backup.amazonaws.com") || has_role(BACKUP_ROLES) || snapshot_type_is("awsbackup")
    {
        Some("aws-backup")
    } else if called_by("dlm.amazonaws.com") || has_role(DLM_ROLES) || evidence.dlm_tag {
        Some("dlm")
    } else if has_role(GUARDDUTY_MALWARE_ROLES)
        // Anyone may tag a snapshot `GuardDutyScanId`: the tag counts only together with the
        // GuardDuty service as caller, or an attacker could hide a snapshot behind it.
        || (evidence.guardduty_scan_tag
            && (called_by("malware-protection.guardduty.amazonaws.com")
                || called_by("guardduty.amazonaws.com")))
    {
        Some("guardduty-malware-protection")
    } else if called_by("autoscaling.amazonaws.com") || has_role(AUTOSCALING_ROLES) {
        Some("autoscaling")
    } else if snapshot_type_is("automated") {
        Some("rds-automated")
    } else {
        None
    }
}

/// The ARN partition of a region, so built ARNs match the ones AWS logs in China and GovCloud.
fn partition_of(region: Option<&str>) -> &'static str {
    match region {
        Some(r) if r.starts_with("cn-") => "aws-cn",
        Some(r) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
}

/// A deterministic id for records without `eventID` (scrubbed samples): redeliveries of the
/// same bytes get the same id, so the engine's idempotence still holds.
fn content_id(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    let mut id = String::with_capacity("sha256:".len() + 32);
    id.push_str("sha256:");
    for byte in digest.iter().take(16) {
        // Writing into a String cannot fail.
        let _ = write!(id, "{byte:02x}");
    }
    id
}

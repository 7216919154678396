//! A [`Finding`] in the AWS Security Finding Format (ASFF, schema 2018-10-08), the document
//! Security Hub's `BatchImportFindings` takes.
//!
//! Pure mapping, no I/O. The ASFF `Id` is the finding id, which is stable per (rule, chain
//! anchor), so importing a re-evaluated finding updates the one Security Hub already holds.
//! Every text field can carry attacker-chosen strings (actor names, resource names), so they
//! pass through [`super::escape_line`] (no control, bidi or invisible characters reach the
//! console) and are cut to ASFF's limits; they are JSON string values, never markup.

use super::escape_line;
use crate::model::{Cloud, Finding, Severity};
use crate::rules::{Rule, T1537, T1578_001, T1578_002};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// The ASFF `SchemaVersion` every finding carries.
pub const SCHEMA_VERSION: &str = "2018-10-08";
/// ASFF limit on `Title`, in characters.
pub const TITLE_MAX: usize = 256;
/// ASFF limit on `Description`, in characters.
pub const DESCRIPTION_MAX: usize = 1024;
/// ASFF limit on `Remediation.Recommendation.Text`, in characters.
pub const RECOMMENDATION_TEXT_MAX: usize = 512;
/// ASFF limit on the number of `Resources`.
pub const RESOURCES_MAX: usize = 32;
/// ASFF limit on the number of `ProductFields`.
pub const PRODUCT_FIELDS_MAX: usize = 50;
/// ASFF limit on one `ProductFields` value, in characters.
pub const PRODUCT_FIELD_VALUE_MAX: usize = 2048;
/// `Resources[].Id`, `Types[]` and `GeneratorId` are kept well inside Security Hub's 512.
pub const ID_MAX: usize = 512;

/// Where findings are imported: the account and region the sink runs in. With the default
/// product ARN of a custom integration, Security Hub only accepts findings whose `AwsAccountId`
/// is this account, so that is what every finding carries; the account the evidence was
/// logged in (an organisation trail sees many) is kept in the resource ARNs and
/// `ProductFields."snapwatch/account"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsffTarget {
    /// The account the sink runs in (and the findings are imported into).
    pub account: String,
    /// The region the sink runs in.
    pub region: String,
}

impl AsffTarget {
    /// The import target for `account` in `region`.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        AsffTarget {
            account: account.into(),
            region: region.into(),
        }
    }

    /// `aws`, `aws-cn` or `aws-us-gov`, from the region name.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
    }

    /// `arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`: the product every account
    /// may import its own findings under without registering an integration.
    pub fn product_arn(&self) -> String {
        format!(
            "arn:{}:securityhub:{}:{}:product/{}/default",
            self.partition(),
            self.region,
            self.account,
            self.account
        )
    }
}

fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ASFF finding for `f`, imported at `now` (its `UpdatedAt`: Security Hub keeps the newest
/// import of an `Id`).
pub fn asff_finding(f: &Finding, target: &AsffTarget, now: DateTime<Utc>) -> Value {
    let severity = json!({
        "Label": severity_label(f.severity),
        "Original": f.severity.as_str(),
    });
    let types = finding_types(f);
    // No top-level `Region`: Security Hub sets it to the import region itself. Each resource
    // carries the region it lives in.
    let mut finding = json!({
        "SchemaVersion": SCHEMA_VERSION,
        "Id": cut(&escape_line(&f.id), ID_MAX),
        "ProductArn": target.product_arn(),
        "ProductName": "snapwatch",
        "CompanyName": "snapwatch",
        "GeneratorId": cut(&format!("snapwatch/{}", escape_line(f.rule.id())), ID_MAX),
        "AwsAccountId": target.account,
        "Types": types,
        "CreatedAt": timestamp(f.first_seen),
        "UpdatedAt": timestamp(now),
        "FirstObservedAt": timestamp(f.first_seen),
        "LastObservedAt": timestamp(f.last_seen),
        "Severity": severity,
        "Title": cut(&escape_line(&f.title), TITLE_MAX),
        "Description": cut(&escape_line(&f.summary), DESCRIPTION_MAX),
        "Resources": resources(f, target),
        "FindingProviderFields": {
            "Severity": severity,
            "Types": types,
        },
        "ProductFields": product_fields(f),
        "RecordState": "ACTIVE",
    });
    if let Some(obj) = finding.as_object_mut() {
        if let Some(remediation) = remediation(f) {
            obj.insert("Remediation".into(), remediation);
        }
        if let Some(url) = source_url(f) {
            obj.insert("SourceUrl".into(), Value::String(url));
        }
    }
    finding
}

/// The `BatchImportFindings` request body for one finding.
pub fn batch_import_body(f: &Finding, target: &AsffTarget, now: DateTime<Utc>) -> Value {
    json!({ "Findings": [asff_finding(f, target, now)] })
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFORMATIONAL",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// ASFF wants ISO 8601 with a `Z`; milliseconds are what AWS services send.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `namespace/category/classifier`: one `TTPs` (or `Effects`) type per ATT&CK technique, and
/// one for what the rule says happened to the data.
fn finding_types(f: &Finding) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for technique in &f.techniques {
        let t = match technique.as_str() {
            T1578_001 => "TTPs/Defense Evasion/T1578.001-Create Snapshot".to_string(),
            T1578_002 => "TTPs/Defense Evasion/T1578.002-Create Cloud Instance".to_string(),
            T1537 => "Effects/Data Exfiltration/T1537-Transfer Data to Cloud Account".to_string(),
            // Techniques come from the rule catalogue; an unknown one still names its id.
            other => cut(
                &format!(
                    "TTPs/Defense Evasion/{}",
                    escape_line(other).replace('/', "-")
                ),
                ID_MAX,
            ),
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let rule_type = match f.rule {
        Rule::SnapshotPublic | Rule::SnapshotSharedExternal | Rule::ChainExposedRestore => {
            "Effects/Data Exposure"
        }
        Rule::SnapshotExported | Rule::SnapshotUsedExternally => "Effects/Data Exfiltration",
        Rule::SnapshotRestoredByOther => "Unusual Behaviors/User",
        Rule::SnapshotUnexplained => {
            "Software and Configuration Checks/AWS Security Best Practices"
        }
    };
    types.push(cut(
        &format!(
            "{rule_type}/snapwatch {}",
            escape_line(f.rule.id()).replace('/', "-")
        ),
        ID_MAX,
    ));
    types
}

/// The snapshot first (the chain's anchor), then the other resources, at most 32 (the rest are
/// counted in `ProductFields."snapwatch/resources_omitted"`).
fn resources(f: &Finding, target: &AsffTarget) -> Vec<Value> {
    let mut ids: Vec<&str> = vec![f.snapshot.as_str()];
    for id in &f.resources {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    ids.into_iter()
        .take(RESOURCES_MAX)
        .map(|id| resource(f, target, id))
        .collect()
}

fn resource(f: &Finding, target: &AsffTarget, id: &str) -> Value {
    let region = f
        .region
        .as_deref()
        .filter(|r| is_region_name(r))
        .unwrap_or(&target.region);
    let account = if is_account_id(&f.account) {
        f.account.as_str()
    } else {
        target.account.as_str()
    };
    let (kind, arn) = if f.cloud == Cloud::Aws {
        aws_resource(id, partition_of(region), region, account)
    } else {
        ("Other", None)
    };
    let mut r = Map::new();
    r.insert("Type".into(), kind.into());
    r.insert(
        "Id".into(),
        cut(&arn.unwrap_or_else(|| escape_line(id)), ID_MAX).into(),
    );
    r.insert("Partition".into(), partition_of(region).into());
    r.insert("Region".into(), region.into());
    if f.cloud != Cloud::Aws {
        // Azure / GCP ids stay readable as they are; the cloud is said once here.
        r.insert(
            "Details".into(),
            json!({ "Other": { "cloud": f.cloud.as_str(), "account": cut(&escape_line(&f.account), 1024) } }),
        );
    }
    Value::Object(r)
}

/// The ASFF resource type and ARN of an AWS resource id as the parsers keep it: EC2 ids
/// (`snap-…`, `vol-…`, `i-…`, `sg-…`, `ami-…`, `eni-…`) and RDS ARNs. Anything else is `Other`
/// with its id unchanged.
fn aws_resource(
    id: &str,
    partition: &str,
    region: &str,
    account: &str,
) -> (&'static str, Option<String>) {
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let kind = match parts.as_slice() {
            [_, "rds", _, _, "snapshot", _] => "AwsRdsDbSnapshot",
            [_, "rds", _, _, "cluster-snapshot", _] => "AwsRdsDbClusterSnapshot",
            [_, "rds", _, _, "db", _] => "AwsRdsDbInstance",
            [_, "rds", _, _, "cluster", _] => "AwsRdsDbCluster",
            [_, "ec2", ..] => ec2_kind_of_arn(parts.get(4).copied().unwrap_or_default()),
            _ => "Other",
        };
        return (kind, Some(escape_line(id)));
    }
    let ec2 = |kind: &'static str, path: &str, owner: &str| {
        if is_ec2_id(id) {
            (
                kind,
                Some(format!("arn:{partition}:ec2:{region}:{owner}:{path}/{id}")),
            )
        } else {
            ("Other", None)
        }
    };
    if id.starts_with("snap-") {
        ec2("AwsEc2Snapshot", "snapshot", account)
    } else if id.starts_with("vol-") {
        ec2("AwsEc2Volume", "volume", account)
    } else if id.starts_with("i-") {
        ec2("AwsEc2Instance", "instance", account)
    } else if id.starts_with("sg-") {
        ec2("AwsEc2SecurityGroup", "security-group", account)
    } else if id.starts_with("eni-") {
        ec2("AwsEc2NetworkInterface", "network-interface", account)
    } else if id.starts_with("ami-") {
        // Image ARNs carry no account.
        ec2("AwsEc2Image", "image", "")
    } else {
        ("Other", None)
    }
}

fn ec2_kind_of_arn(resource: &str) -> &'static str {
    match resource.split('/').next().unwrap_or_default() {
        "snapshot" => "AwsEc2Snapshot",
        "volume" => "AwsEc2Volume",
        "instance" => "AwsEc2Instance",
        "security-group" => "AwsEc2SecurityGroup",
        "network-interface" => "AwsEc2NetworkInterface",
        "image" => "AwsEc2Image",
        _ => "Other",
    }
}

/// `prefix-` then hex: the only shape an ARN is built around.
fn is_ec2_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(_, hex)| {
        !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What the responder filters on in Security Hub besides the standard fields.
fn product_fields(f: &Finding) -> Value {
    let mut fields = Map::new();
    let mut put = |k: &str, v: String| {
        if fields.len() < PRODUCT_FIELDS_MAX {
            fields.insert(k.into(), cut(&v, PRODUCT_FIELD_VALUE_MAX).into());
        }
    };
    put("snapwatch/rule", escape_line(f.rule.id()));
    put("snapwatch/cloud", f.cloud.as_str().into());
    put("snapwatch/account", escape_line(&f.account));
    put("snapwatch/snapshot", escape_line(&f.snapshot));
    put("snapwatch/found_by", f.found_by.as_str().into());
    put("snapwatch/techniques", escape_line(&f.techniques.join(",")));
    put("snapwatch/actors", escape_line(&f.actors.join(",")));
    put("snapwatch/events", f.events.len().to_string());
    let distinct = {
        let mut all: Vec<&str> = vec![f.snapshot.as_str()];
        all.extend(f.resources.iter().map(String::as_str));
        all.sort_unstable();
        all.dedup();
        all.len()
    };
    if distinct > RESOURCES_MAX {
        put(
            "snapwatch/resources_omitted",
            (distinct - RESOURCES_MAX).to_string(),
        );
    }
    Value::Object(fields)
}

/// The next steps, numbered, cut to the 512 characters ASFF allows, with the ATT&CK page of
/// the technique as the link.
fn remediation(f: &Finding) -> Option<Value> {
    if f.next_steps.is_empty() {
        return None;
    }
    let text = f
        .next_steps
        .iter()
        .enumerate()
        .map(|(i, step)| format!("{}. {}", i + 1, escape_line(step)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut recommendation = Map::new();
    recommendation.insert("Text".into(), cut(&text, RECOMMENDATION_TEXT_MAX).into());
    if f.techniques.iter().any(|t| t == T1578_001) {
        recommendation.insert(
            "Url".into(),
            "https://attack.mitre.org/techniques/T1578/001/".into(),
        );
    }
    Some(json!({ "Recommendation": Value::Object(recommendation) }))
}

/// The CloudTrail event history page of the chain's latest event, for AWS findings in the
/// commercial partition whose event id is a CloudTrail UUID (so nothing else enters the URL).
fn source_url(f: &Finding) -> Option<String> {
    if f.cloud != Cloud::Aws {
        return None;
    }
    let region = f.region.as_deref().filter(|r| is_region_name(r))?;
    if partition_of(region) != "aws" {
        return None;
    }
    let event = f.events.iter().max_by_key(|e| e.time)?;
    let uuid_like =
        event.id.len() == 36 && event.id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    uuid_like.then(|| {
        format!(
            "https://{region}.console.aws.amazon.com/cloudtrail/home?region={region}#/events/{}",
            event.id
        )
    })
}

/// At most `max` characters; a cut ends in "…" and never splits a `\u{..}` escape.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut kept: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(open) = kept.rfind("\\u{") {
        if !kept[open..].contains('}') {
            kept.truncate(open);
        }
    }
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests;

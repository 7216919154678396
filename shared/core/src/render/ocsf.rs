//! A [`Finding`] as an OCSF Detection Finding (class 2004, schema [`OCSF_VERSION`]), one JSON
//! object per line: what Amazon Security Lake and OCSF-speaking SIEMs ingest.
//!
//! Pure mapping, no I/O. The output goes through the same hazard escaping as the finding JSON
//! ([`super::finding_json`]), so attacker-controlled text (actor names, resource ids) cannot
//! split the line or hide characters in it.

use crate::model::{Cloud, Finding, FoundBy, Severity};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// The OCSF schema version the output follows (and the tests validate against).
pub const OCSF_VERSION: &str = "1.5.0";

/// OCSF `category_uid` of the Findings category.
pub const CATEGORY_UID_FINDINGS: u32 = 2;
/// OCSF `class_uid` of the Detection Finding class.
pub const CLASS_UID_DETECTION_FINDING: u32 = 2004;
/// `activity_id` 1: a finding was created. snapwatch reports each chain once per evaluation.
pub const ACTIVITY_CREATE: u32 = 1;
/// `type_uid` is `class_uid * 100 + activity_id`.
pub const TYPE_UID_CREATE: u32 = CLASS_UID_DETECTION_FINDING * 100 + ACTIVITY_CREATE;
/// `status_id` 1: new, not yet reviewed.
pub const STATUS_NEW: u32 = 1;

/// The finding as one OCSF Detection Finding JSON line (no trailing newline).
pub fn detection_finding_json(f: &Finding) -> String {
    super::json_escape_hazards(detection_finding(f).to_string())
}

/// The finding as an OCSF Detection Finding value. Field by field:
/// id → `finding_info.uid` (and `metadata.uid`), title → `finding_info.title`, summary →
/// `finding_info.desc`, rule → `finding_info.types` / `finding_info.analytic`, techniques →
/// `finding_info.attacks`, first/last seen → `finding_info.first_seen_time` /
/// `last_seen_time` and `start_time` / `end_time`, last seen → `time`, severity →
/// `severity_id`, resources → `resources`, events → `evidences`, cloud / account / region →
/// `cloud`, next steps → `remediation.desc`, snapshot / found_by / actors → `unmapped`.
pub fn detection_finding(f: &Finding) -> Value {
    let (severity_id, severity) = severity(f.severity);
    let mut finding_info = json!({
        "uid": f.id,
        "title": f.title,
        "desc": f.summary,
        "types": [f.rule],
        "first_seen_time": millis(&f.first_seen),
        "last_seen_time": millis(&f.last_seen),
        "attacks": f.techniques.iter().map(|t| attack(t)).collect::<Vec<_>>(),
        "data_sources": [data_source(f)],
    });
    finding_info["analytic"] = json!({
        "uid": f.rule.id(),
        "name": f.rule.id(),
        "desc": f.rule.description(),
        "type_id": 1,
        "type": "Rule",
    });
    let mut out = json!({
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f.id,
            "product": {
                "name": "snapwatch",
                "vendor_name": "snapwatch",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "profiles": ["cloud"],
        },
        "category_uid": CATEGORY_UID_FINDINGS,
        "category_name": "Findings",
        "class_uid": CLASS_UID_DETECTION_FINDING,
        "class_name": "Detection Finding",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": TYPE_UID_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": STATUS_NEW,
        "status": "New",
        // The time of the latest event keeps the output a function of the finding alone.
        "time": millis(&f.last_seen),
        "start_time": millis(&f.first_seen),
        "end_time": millis(&f.last_seen),
        "count": f.events.len(),
        "message": f.title,
        "finding_info": finding_info,
        "cloud": cloud(f),
        "resources": f.resources.iter().map(|r| resource(f, r)).collect::<Vec<_>>(),
        "evidences": f.events.iter().map(evidence).collect::<Vec<_>>(),
        "unmapped": {
            "snapshot": f.snapshot,
            "found_by": f.found_by.as_str(),
            "actors": f.actors,
        },
    });
    if !f.next_steps.is_empty() {
        let steps: Vec<String> = f
            .next_steps
            .iter()
            .enumerate()
            .map(|(n, step)| format!("{}. {step}", n + 1))
            .collect();
        out["remediation"] = json!({ "desc": steps.join("\n") });
    }
    out
}

/// OCSF `severity_id` and its caption.
pub fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

fn millis(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn provider(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "AWS",
        Cloud::Azure => "Azure",
        Cloud::Gcp => "GCP",
    }
}

/// The audit source that raised the finding.
fn data_source(f: &Finding) -> &'static str {
    match (f.found_by, f.cloud) {
        (FoundBy::Baseline, _) => "snapwatch baseline (snapshot and permission listing)",
        (FoundBy::Events, Cloud::Aws) => "AWS CloudTrail",
        (FoundBy::Events, Cloud::Azure) => "Azure Activity Log",
        (FoundBy::Events, Cloud::Gcp) => "Google Cloud Audit Logs",
    }
}

/// OCSF `account` for the finding's AWS account / Azure subscription / GCP project. Subscription
/// and project are `Other` (99) with a caption: their own type ids are newer than what the
/// validator models, and `Other` is valid in every 1.x schema.
fn account(cloud: Cloud, uid: &str) -> Value {
    let (type_id, caption) = match cloud {
        Cloud::Aws => (10, "AWS Account"),
        Cloud::Azure => (99, "Azure Subscription"),
        Cloud::Gcp => (99, "GCP Project"),
    };
    json!({ "uid": uid, "name": uid, "type_id": type_id, "type": caption })
}

fn cloud(f: &Finding) -> Value {
    let mut cloud = json!({
        "provider": provider(f.cloud),
        "account": account(f.cloud, &f.account),
    });
    if let Some(region) = &f.region {
        cloud["region"] = json!(region);
    }
    cloud
}

/// One chain resource: its id, a short name, its type as the cloud names it, the owning account
/// (as `owner.account`, the Security Lake convention) and the region.
fn resource(f: &Finding, id: &str) -> Value {
    let mut out = Map::new();
    out.insert("uid".into(), json!(id));
    out.insert("name".into(), json!(short_name(id)));
    if let Some(kind) = resource_type(f.cloud, id) {
        out.insert("type".into(), json!(kind));
    }
    // The id's own region when it names one (ARN field, GCP `zones/…` or `regions/…`).
    let region = arn_field(id, 3)
        .map(str::to_owned)
        .or_else(|| gcp_region(id))
        .or_else(|| f.region.clone());
    if let Some(region) = region {
        out.insert("region".into(), json!(region));
    }
    if f.cloud == Cloud::Aws {
        out.insert("cloud_partition".into(), json!(aws_partition(f)));
    }
    // An ARN names its own account (RDS resources of a shared snapshot can be elsewhere).
    let account_id = arn_field(id, 4).unwrap_or(&f.account);
    out.insert(
        "owner".into(),
        json!({
            "account": account(f.cloud, account_id),
            "uid": account_id,
            "name": account_id,
            // User type `Other`: the owner is the account itself, not a person.
            "type_id": 99,
            "type": "Cloud account",
        }),
    );
    Value::Object(out)
}

/// Field `n` of an ARN (`arn:partition:service:region:account:resource`), when present.
fn arn_field(id: &str, n: usize) -> Option<&str> {
    if !id.starts_with("arn:") {
        return None;
    }
    id.splitn(6, ':').nth(n).filter(|v| !v.is_empty())
}

/// A GCP path's region: `regions/R/…` gives R, `zones/us-central1-a/…` gives `us-central1`.
fn gcp_region(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(part) = parts.next() {
        match (part, parts.clone().next()) {
            ("regions", Some(region)) if !region.is_empty() => return Some(region.to_owned()),
            ("zones", Some(zone)) => {
                return zone
                    .rsplit_once('-')
                    .map(|(region, _)| region.to_owned())
                    .filter(|region| !region.is_empty())
            }
            _ => {}
        }
    }
    None
}

/// The AWS partition, from the first ARN the finding holds; `aws` when it holds none.
fn aws_partition(f: &Finding) -> &str {
    std::iter::once(&f.snapshot)
        .chain(&f.resources)
        .chain(&f.actors)
        .find_map(|id| arn_field(id, 1))
        .unwrap_or("aws")
}

fn short_name(id: &str) -> &str {
    let last = id.rsplit('/').find(|part| !part.is_empty()).unwrap_or(id);
    if last.starts_with("arn:") {
        last.rsplit(':').next().unwrap_or(last)
    } else {
        last
    }
}

/// The resource type as its cloud names it (CloudFormation types on AWS, Azure resource
/// provider types, Cloud Asset Inventory types on GCP), read from the id's shape. `None` when
/// the id does not say.
pub fn resource_type(cloud: Cloud, id: &str) -> Option<String> {
    match cloud {
        Cloud::Aws => aws_resource_type(id).map(str::to_owned),
        Cloud::Azure => azure_resource_type(id),
        Cloud::Gcp => gcp_resource_type(id).map(str::to_owned),
    }
}

fn aws_resource_type(id: &str) -> Option<&'static str> {
    if let (Some(service), Some(resource)) = (arn_field(id, 2), arn_field(id, 5)) {
        let kind = resource.split([':', '/']).next().unwrap_or(resource);
        return match (service, kind) {
            ("rds", "snapshot") => Some("AWS::RDS::DBSnapshot"),
            ("rds", "cluster-snapshot") => Some("AWS::RDS::DBClusterSnapshot"),
            ("rds", "db") => Some("AWS::RDS::DBInstance"),
            ("rds", "cluster") => Some("AWS::RDS::DBCluster"),
            ("ec2", kind) => aws_ec2_type(kind),
            _ => None,
        };
    }
    aws_ec2_type(id.split('-').next().unwrap_or(id))
}

/// EC2 types by id prefix (`snap-…`) or ARN resource type (`snapshot/…`).
fn aws_ec2_type(prefix: &str) -> Option<&'static str> {
    Some(match prefix {
        "snap" | "snapshot" => "AWS::EC2::Snapshot",
        "vol" | "volume" => "AWS::EC2::Volume",
        "ami" | "image" => "AWS::EC2::Image",
        "i" | "instance" => "AWS::EC2::Instance",
        "sg" | "security-group" => "AWS::EC2::SecurityGroup",
        "eni" | "network-interface" => "AWS::EC2::NetworkInterface",
        _ => return None,
    })
}

fn azure_resource_type(id: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find("/providers/")? + "/providers/".len();
    let mut parts = id[at..].split('/').filter(|p| !p.is_empty());
    let (namespace, kind) = (parts.next()?, parts.next()?);
    let raw = format!("{namespace}/{kind}");
    // Ids are stored lower-cased; give the common types their documented spelling.
    const KNOWN: &[&str] = &[
        "Microsoft.Compute/snapshots",
        "Microsoft.Compute/disks",
        "Microsoft.Compute/images",
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Network/networkSecurityGroups",
    ];
    Some(
        KNOWN
            .iter()
            .find(|known| known.eq_ignore_ascii_case(&raw))
            .map_or(raw, |known| (*known).to_owned()),
    )
}

fn gcp_resource_type(id: &str) -> Option<&'static str> {
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    let collection = parts.len().checked_sub(2).map(|i| parts[i])?;
    Some(match collection {
        "snapshots" => "compute.googleapis.com/Snapshot",
        "disks" | "regionDisks" => "compute.googleapis.com/Disk",
        "images" => "compute.googleapis.com/Image",
        "machineImages" => "compute.googleapis.com/MachineImage",
        "instances" => "compute.googleapis.com/Instance",
        "networks" => "compute.googleapis.com/Network",
        "firewalls" => "compute.googleapis.com/Firewall",
        _ => return None,
    })
}

/// ATT&CK tactic, technique and sub-technique for the technique ids snapwatch emits.
fn attack(technique_id: &str) -> Value {
    const DEFENSE_EVASION: (&str, &str) = ("TA0005", "Defense Evasion");
    const EXFILTRATION: (&str, &str) = ("TA0010", "Exfiltration");
    const MODIFY_CLOUD_COMPUTE: (&str, &str) = ("T1578", "Modify Cloud Compute Infrastructure");
    let (tactic, technique, sub_technique) = match technique_id {
        "T1578.001" => (
            DEFENSE_EVASION,
            MODIFY_CLOUD_COMPUTE,
            Some(("T1578.001", "Create Snapshot")),
        ),
        "T1578.002" => (
            DEFENSE_EVASION,
            MODIFY_CLOUD_COMPUTE,
            Some(("T1578.002", "Create Cloud Instance")),
        ),
        "T1537" => (
            EXFILTRATION,
            ("T1537", "Transfer Data to Cloud Account"),
            None,
        ),
        other => return json!({ "technique": { "uid": other, "name": other } }),
    };
    let mut out = json!({
        "tactic": { "uid": tactic.0, "name": tactic.1 },
        "technique": { "uid": technique.0, "name": technique.1 },
    });
    if let Some((uid, name)) = sub_technique {
        out["sub_technique"] = json!({ "uid": uid, "name": name });
    }
    out
}

/// One chain event: the API call, who made it from where, and when.
fn evidence(event: &crate::model::ChainEvent) -> Value {
    let mut out = json!({
        "api": { "operation": event.name, "request": { "uid": event.id } },
        "data": {
            "time": millis(&event.time),
            "time_dt": event.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        },
    });
    if let Some(actor) = &event.actor {
        out["actor"] = json!({ "user": { "uid": actor, "name": actor } });
    }
    if let Some(source) = &event.source_ip {
        // Audit logs put service names ("AWS Internal", "ec2.amazonaws.com") where an address
        // would be; OCSF `ip` must be an address, so anything else goes to `name`.
        out["src_endpoint"] = if source.parse::<std::net::IpAddr>().is_ok() {
            json!({ "ip": source })
        } else {
            json!({ "name": source })
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChainEvent;

    fn time(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid time")
    }

    fn aws_finding() -> Finding {
        Finding {
            id: "sw-0123456789abcdef01234567".into(),
            rule: crate::model::Rule::ChainExposedRestore,
            severity: Severity::Critical,
            cloud: Cloud::Aws,
            account: "111122223333".into(),
            region: Some("us-east-1".into()),
            snapshot: "snap-0123456789abcdef0".into(),
            resources: vec![
                "arn:aws:rds:eu-west-1:444455556666:snapshot:payroll".into(),
                "i-0aaa1111bbbb2222c".into(),
                "sg-0ee0ee0ee0ee0ee00".into(),
                "snap-0123456789abcdef0".into(),
                "vol-0abc".into(),
                "mystery-thing".into(),
            ],
            actors: vec!["arn:aws:iam::111122223333:user/eve".into()],
            techniques: vec!["T1578.001".into(), "T1578.002".into(), "T1537".into()],
            events: vec![
                ChainEvent {
                    id: "e1".into(),
                    name: "CreateSnapshot".into(),
                    time: time("2026-04-02T10:00:00Z"),
                    actor: Some("arn:aws:iam::111122223333:user/eve".into()),
                    source_ip: Some("203.0.113.66".into()),
                },
                ChainEvent {
                    id: "e2".into(),
                    name: "RunInstances".into(),
                    time: time("2026-04-02T10:30:00Z"),
                    actor: None,
                    source_ip: Some("ec2.amazonaws.com".into()),
                },
            ],
            first_seen: time("2026-04-02T10:00:00Z"),
            last_seen: time("2026-04-02T10:30:00Z"),
            title: "instance restored from a snapshot and opened to the internet".into(),
            summary: "eve restored snap-0123456789abcdef0".into(),
            next_steps: vec!["Stop the instance.".into(), "Revoke the rule.".into()],
            found_by: FoundBy::Events,
            response: None,
        }
    }

    #[test]
    fn class_activity_and_type_ids_follow_the_detection_finding_class() {
        let v = detection_finding(&aws_finding());
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["severity_id"], 5);
        assert_eq!(v["severity"], "Critical");
        assert_eq!(v["metadata"]["version"], OCSF_VERSION);
        assert_eq!(v["metadata"]["product"]["name"], "snapwatch");
        assert_eq!(v["metadata"]["product"]["vendor_name"], "snapwatch");
        assert_eq!(v["time"], 1_775_125_800_000i64);
    }

    #[test]
    fn every_severity_has_its_ocsf_id() {
        let ids: Vec<u32> = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .map(|s| severity(s).0)
        .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn finding_info_carries_id_title_times_rule_and_attacks() {
        let f = aws_finding();
        let info = &detection_finding(&f)["finding_info"];
        assert_eq!(info["uid"], f.id.as_str());
        assert_eq!(info["title"], f.title.as_str());
        assert_eq!(info["desc"], f.summary.as_str());
        assert_eq!(info["types"], json!(["chain.exposed-restore"]));
        assert_eq!(info["first_seen_time"], 1_775_124_000_000i64);
        assert_eq!(info["last_seen_time"], 1_775_125_800_000i64);
        assert_eq!(info["analytic"]["uid"], "chain.exposed-restore");
        let attacks = info["attacks"].as_array().expect("attacks");
        assert_eq!(attacks.len(), 3);
        assert_eq!(attacks[0]["tactic"]["uid"], "TA0005");
        assert_eq!(attacks[0]["technique"]["uid"], "T1578");
        assert_eq!(attacks[0]["sub_technique"]["uid"], "T1578.001");
        assert_eq!(attacks[1]["sub_technique"]["name"], "Create Cloud Instance");
        assert_eq!(attacks[2]["tactic"]["uid"], "TA0010");
        assert_eq!(attacks[2]["technique"]["uid"], "T1537");
        assert!(attacks[2].get("sub_technique").is_none());
    }

    #[test]
    fn resources_have_types_accounts_and_regions() {
        let v = detection_finding(&aws_finding());
        let resources = v["resources"].as_array().expect("resources");
        let types: Vec<Option<&str>> = resources.iter().map(|r| r["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                Some("AWS::RDS::DBSnapshot"),
                Some("AWS::EC2::Instance"),
                Some("AWS::EC2::SecurityGroup"),
                Some("AWS::EC2::Snapshot"),
                Some("AWS::EC2::Volume"),
                None,
            ]
        );
        // The ARN names its own account and region; bare ids take the finding's.
        assert_eq!(resources[0]["owner"]["account"]["uid"], "444455556666");
        assert_eq!(resources[0]["region"], "eu-west-1");
        assert_eq!(resources[0]["name"], "payroll");
        assert_eq!(resources[1]["owner"]["account"]["uid"], "111122223333");
        assert_eq!(resources[1]["owner"]["account"]["type_id"], 10);
        assert_eq!(resources[1]["region"], "us-east-1");
        assert_eq!(resources[1]["cloud_partition"], "aws");
        assert_eq!(v["cloud"]["provider"], "AWS");
        assert_eq!(v["cloud"]["account"]["uid"], "111122223333");
        assert_eq!(v["cloud"]["region"], "us-east-1");
    }

    #[test]
    fn azure_and_gcp_resource_types_come_from_the_id() {
        assert_eq!(
            resource_type(
                Cloud::Azure,
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"
            )
            .as_deref(),
            Some("Microsoft.Compute/virtualMachines")
        );
        assert_eq!(
            resource_type(
                Cloud::Azure,
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/x"
            )
            .as_deref(),
            Some("microsoft.storage/storageaccounts")
        );
        assert_eq!(resource_type(Cloud::Azure, "no-provider"), None);
        assert_eq!(
            resource_type(Cloud::Gcp, "projects/p/zones/us-central1-a/disks/d").as_deref(),
            Some("compute.googleapis.com/Disk")
        );
        assert_eq!(
            resource_type(Cloud::Gcp, "projects/p/global/snapshots/s").as_deref(),
            Some("compute.googleapis.com/Snapshot")
        );
        assert_eq!(resource_type(Cloud::Gcp, "x"), None);
        assert_eq!(
            gcp_region("projects/p/zones/us-central1-a/disks/d").as_deref(),
            Some("us-central1")
        );
        assert_eq!(
            gcp_region("projects/p/regions/europe-west4/disks/d").as_deref(),
            Some("europe-west4")
        );
        assert_eq!(gcp_region("projects/p/global/snapshots/s"), None);
        let mut gcp = aws_finding();
        gcp.cloud = Cloud::Gcp;
        gcp.account = "northwind-prod".into();
        gcp.region = None;
        gcp.resources = vec![
            "projects/northwind-prod/global/networks/prod-vpc".into(),
            "projects/northwind-prod/zones/us-central1-a/instances/scratch-7".into(),
        ];
        let v = detection_finding(&gcp);
        assert_eq!(v["cloud"]["provider"], "GCP");
        assert_eq!(v["cloud"]["account"]["type"], "GCP Project");
        assert!(v["resources"][0].get("cloud_partition").is_none());
        assert_eq!(v["resources"][0]["type"], "compute.googleapis.com/Network");
        assert!(v["resources"][0].get("region").is_none());
        assert_eq!(v["resources"][1]["region"], "us-central1");
        assert!(v["cloud"].get("region").is_none());
    }

    #[test]
    fn evidences_carry_operation_actor_source_and_time() {
        let v = detection_finding(&aws_finding());
        let evidences = v["evidences"].as_array().expect("evidences");
        assert_eq!(evidences.len(), 2);
        assert_eq!(evidences[0]["api"]["operation"], "CreateSnapshot");
        assert_eq!(evidences[0]["api"]["request"]["uid"], "e1");
        assert_eq!(
            evidences[0]["actor"]["user"]["uid"],
            "arn:aws:iam::111122223333:user/eve"
        );
        assert_eq!(evidences[0]["src_endpoint"]["ip"], "203.0.113.66");
        assert_eq!(evidences[0]["data"]["time"], 1_775_124_000_000i64);
        assert_eq!(evidences[0]["data"]["time_dt"], "2026-04-02T10:00:00Z");
        // A service name is not an address.
        assert!(evidences[1]["src_endpoint"].get("ip").is_none());
        assert_eq!(evidences[1]["src_endpoint"]["name"], "ec2.amazonaws.com");
        assert!(evidences[1].get("actor").is_none());
    }

    #[test]
    fn next_steps_become_remediation_and_the_rest_is_unmapped() {
        let mut f = aws_finding();
        let v = detection_finding(&f);
        assert_eq!(
            v["remediation"]["desc"],
            "1. Stop the instance.\n2. Revoke the rule."
        );
        assert_eq!(v["unmapped"]["snapshot"], "snap-0123456789abcdef0");
        assert_eq!(v["unmapped"]["found_by"], "events");
        f.next_steps.clear();
        assert!(detection_finding(&f).get("remediation").is_none());
    }

    #[test]
    fn hostile_text_stays_on_one_line_and_parses_back_unchanged() {
        let mut f = aws_finding();
        let hostile = "eve\u{2028}forged\u{2029}\u{85}\u{202E}\u{1b}[31m\"}\n{\"x\":1";
        f.events[0].actor = Some(hostile.into());
        f.resources.push(format!("snap-{hostile}"));
        f.title = hostile.into();
        let line = detection_finding_json(&f);
        assert!(
            !line.chars().any(crate::render::is_display_hazard),
            "raw hazard in {line:?}"
        );
        assert!(line.contains("\\u2028") && line.contains("\\u202e") && line.contains("\\u0085"));
        let back: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(back["evidences"][0]["actor"]["user"]["name"], hostile);
        assert_eq!(back["finding_info"]["title"], hostile);
        assert_eq!(back, detection_finding(&f));
    }
}

use super::*;
use crate::model::{ChainEvent, FoundBy};
use chrono::TimeZone;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 2, h, m, 0).unwrap()
}

fn event(id: &str, name: &str, time: DateTime<Utc>) -> ChainEvent {
    ChainEvent {
        id: id.into(),
        name: name.into(),
        time,
        actor: Some("arn:aws:iam::111122223333:user/eve".into()),
        source_ip: Some("203.0.113.66".into()),
    }
}

fn ec2_chain() -> Finding {
    Finding {
        id: "sw-0123456789abcdef01234567".into(),
        rule: Rule::ChainExposedRestore,
        severity: Severity::Critical,
        cloud: Cloud::Aws,
        account: "111122223333".into(),
        region: Some("eu-west-1".into()),
        snapshot: "snap-0123456789abcdef0".into(),
        resources: vec![
            "ami-0fedcba9876543210".into(),
            "i-0aaaabbbbccccdddd".into(),
            "sg-0123abcd".into(),
            "snap-0123456789abcdef0".into(),
            "vol-0abc".into(),
        ],
        actors: vec!["arn:aws:iam::111122223333:user/eve".into()],
        techniques: vec![T1578_001.into(), T1578_002.into()],
        events: vec![
            event(
                "11111111-2222-3333-4444-555555555555",
                "CreateSnapshot",
                at(10, 0),
            ),
            event(
                "66666666-7777-8888-9999-000000000000",
                "AuthorizeSecurityGroupIngress",
                at(10, 30),
            ),
        ],
        first_seen: at(10, 0),
        last_seen: at(10, 30),
        title: "Instance restored from snap-0123456789abcdef0 exposed to the internet".into(),
        summary: "eve restored the snapshot and opened SSH to 0.0.0.0/0.".into(),
        next_steps: vec!["Isolate the instance.".into(), "Revoke the rule.".into()],
        found_by: FoundBy::Events,
        response: None,
    }
}

fn target() -> AsffTarget {
    AsffTarget::new("444455556666", "eu-west-1")
}

fn resource_types(v: &Value) -> Vec<(String, String)> {
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Type"].as_str().unwrap().to_string(),
                r["Id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_ec2_chain_maps_to_asff_with_typed_resources() {
    let v = asff_finding(&ec2_chain(), &target(), at(11, 0));
    assert_eq!(v["SchemaVersion"], "2018-10-08");
    assert_eq!(v["Id"], "sw-0123456789abcdef01234567");
    assert_eq!(
        v["ProductArn"],
        "arn:aws:securityhub:eu-west-1:444455556666:product/444455556666/default"
    );
    assert_eq!(v["GeneratorId"], "snapwatch/chain.exposed-restore");
    // Security Hub only takes the importing account's findings under the default product.
    assert_eq!(v["AwsAccountId"], "444455556666");
    assert_eq!(v["ProductFields"]["snapwatch/account"], "111122223333");
    assert_eq!(v["Severity"]["Label"], "CRITICAL");
    assert_eq!(v["FindingProviderFields"]["Severity"]["Label"], "CRITICAL");
    assert_eq!(v["CreatedAt"], "2026-04-02T10:00:00.000Z");
    assert_eq!(v["FirstObservedAt"], "2026-04-02T10:00:00.000Z");
    assert_eq!(v["LastObservedAt"], "2026-04-02T10:30:00.000Z");
    assert_eq!(v["UpdatedAt"], "2026-04-02T11:00:00.000Z");
    assert_eq!(
        v["Types"],
        json!([
            "TTPs/Defense Evasion/T1578.001-Create Snapshot",
            "TTPs/Defense Evasion/T1578.002-Create Cloud Instance",
            "Effects/Data Exposure/snapwatch chain.exposed-restore"
        ])
    );
    assert_eq!(v["Types"], v["FindingProviderFields"]["Types"]);
    for t in v["Types"].as_array().unwrap() {
        let namespace = t.as_str().unwrap().split('/').next().unwrap();
        assert!(
            [
                "Software and Configuration Checks",
                "TTPs",
                "Effects",
                "Unusual Behaviors",
                "Sensitive Data Identifications"
            ]
            .contains(&namespace),
            "{t}"
        );
    }
    let a = "arn:aws:ec2:eu-west-1:111122223333";
    assert_eq!(
        resource_types(&v),
        vec![
            (
                "AwsEc2Snapshot".into(),
                format!("{a}:snapshot/snap-0123456789abcdef0")
            ),
            (
                "AwsEc2Image".into(),
                "arn:aws:ec2:eu-west-1::image/ami-0fedcba9876543210".into()
            ),
            (
                "AwsEc2Instance".into(),
                format!("{a}:instance/i-0aaaabbbbccccdddd")
            ),
            (
                "AwsEc2SecurityGroup".into(),
                format!("{a}:security-group/sg-0123abcd")
            ),
            ("AwsEc2Volume".into(), format!("{a}:volume/vol-0abc")),
        ]
    );
    assert_eq!(v["Resources"][0]["Partition"], "aws");
    assert_eq!(v["Resources"][0]["Region"], "eu-west-1");
    assert_eq!(
        v["SourceUrl"],
        "https://eu-west-1.console.aws.amazon.com/cloudtrail/home?region=eu-west-1#/events/66666666-7777-8888-9999-000000000000"
    );
    assert_eq!(
        v["Remediation"]["Recommendation"]["Text"],
        "1. Isolate the instance. 2. Revoke the rule."
    );
    assert_eq!(
        v["Remediation"]["Recommendation"]["Url"],
        "https://attack.mitre.org/techniques/T1578/001/"
    );
    assert_eq!(v["RecordState"], "ACTIVE");
    assert_eq!(
        batch_import_body(&ec2_chain(), &target(), at(11, 0))["Findings"][0],
        v
    );
}

#[test]
fn rds_snapshots_and_instances_keep_their_arns() {
    let mut f = ec2_chain();
    f.rule = Rule::SnapshotPublic;
    f.techniques = vec![T1578_001.into(), T1537.into()];
    f.snapshot = "arn:aws:rds:eu-west-1:111122223333:snapshot:payroll-final".into();
    f.resources = vec![
        "arn:aws:rds:eu-west-1:111122223333:db:payroll-prod".into(),
        "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:c1".into(),
        "arn:aws:rds:eu-west-1:111122223333:cluster:c".into(),
        "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:automated-1".into(),
    ];
    let v = asff_finding(&f, &target(), at(11, 0));
    let types: Vec<String> = resource_types(&v).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "AwsRdsDbSnapshot",
            "AwsRdsDbInstance",
            "AwsRdsDbClusterSnapshot",
            "AwsRdsDbCluster",
            "AwsRdsDbSnapshot"
        ]
    );
    assert_eq!(
        v["Resources"][0]["Id"],
        "arn:aws:rds:eu-west-1:111122223333:snapshot:payroll-final"
    );
    assert!(v["Types"].as_array().unwrap().contains(&json!(
        "Effects/Data Exfiltration/T1537-Transfer Data to Cloud Account"
    )));
    assert!(v["Types"]
        .as_array()
        .unwrap()
        .contains(&json!("Effects/Data Exposure/snapwatch snapshot.public")));
}

#[test]
fn a_reevaluation_keeps_the_id_and_creation_time_and_moves_updated_at() {
    let first = asff_finding(&ec2_chain(), &target(), at(11, 0));
    let mut later = ec2_chain();
    later.last_seen = at(12, 0);
    let second = asff_finding(&later, &target(), at(12, 5));
    assert_eq!(first["Id"], second["Id"]);
    assert_eq!(first["CreatedAt"], second["CreatedAt"]);
    assert_eq!(second["LastObservedAt"], "2026-04-02T12:00:00.000Z");
    assert_eq!(second["UpdatedAt"], "2026-04-02T12:05:00.000Z");
}

#[test]
fn text_fields_respect_the_asff_limits_and_keep_hostile_text_as_inert_data() {
    let mut f = ec2_chain();
    let hostile = "eve\u{1b}[31m\u{202e}gnp.exe\n<script>alert(1)</script>\"}],\"Id\":\"x";
    f.title = format!("{hostile} {}", "t".repeat(400));
    f.summary = format!("{hostile} {}", "ü".repeat(2000));
    f.actors = vec![hostile.into()];
    f.next_steps = vec!["s".repeat(600)];
    let v = asff_finding(&f, &target(), at(11, 0));
    let title = v["Title"].as_str().unwrap();
    let description = v["Description"].as_str().unwrap();
    assert_eq!(title.chars().count(), TITLE_MAX);
    assert!(title.ends_with('…'));
    assert_eq!(description.chars().count(), DESCRIPTION_MAX);
    assert_eq!(
        v["Remediation"]["Recommendation"]["Text"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        RECOMMENDATION_TEXT_MAX
    );
    for text in [
        title,
        description,
        v["ProductFields"]["snapwatch/actors"].as_str().unwrap(),
    ] {
        assert!(
            !text.chars().any(crate::render::is_display_hazard),
            "{text:?}"
        );
        assert!(
            text.contains("\\u{1b}") && text.contains("\\u{202e}"),
            "{text:?}"
        );
        // Markup and quotes stay characters of a JSON string: the document keeps its shape.
        assert!(text.contains("<script>"));
    }
    let reparsed: Value = serde_json::from_str(&v.to_string()).unwrap();
    assert_eq!(reparsed["Id"], "sw-0123456789abcdef01234567");
}

#[test]
fn a_cut_never_splits_an_escape() {
    let s = format!("{}\u{1b}tail", "a".repeat(10));
    let escaped = escape_line(&s);
    for max in 1..escaped.chars().count() {
        let c = cut(&escaped, max);
        assert!(c.chars().count() <= max, "{max}: {c}");
        if let Some(open) = c.rfind("\\u{") {
            assert!(c[open..].contains('}'), "{max}: {c}");
        }
    }
}

#[test]
fn at_most_32_resources_and_the_rest_counted() {
    let mut f = ec2_chain();
    f.resources = (0..40).map(|i| format!("vol-{i:08x}")).collect();
    let v = asff_finding(&f, &target(), at(11, 0));
    assert_eq!(v["Resources"].as_array().unwrap().len(), RESOURCES_MAX);
    assert_eq!(v["Resources"][0]["Type"], "AwsEc2Snapshot");
    assert_eq!(v["ProductFields"]["snapwatch/resources_omitted"], "9");
}

#[test]
fn ids_that_are_not_ec2_shaped_are_other_and_never_spliced_into_an_arn() {
    let mut f = ec2_chain();
    f.snapshot = "snap-../../evil:thing".into();
    f.resources = vec!["i-\u{202e}abc".into(), "mystery".into()];
    let v = asff_finding(&f, &target(), at(11, 0));
    assert_eq!(
        resource_types(&v),
        vec![
            ("Other".into(), "snap-../../evil:thing".into()),
            ("Other".into(), "i-\\u{202e}abc".into()),
            ("Other".into(), "mystery".into()),
        ]
    );
}

#[test]
fn partitions_follow_the_region_and_source_urls_only_fit_the_commercial_console() {
    let cn = AsffTarget::new("444455556666", "cn-north-1");
    assert_eq!(
        cn.product_arn(),
        "arn:aws-cn:securityhub:cn-north-1:444455556666:product/444455556666/default"
    );
    let mut f = ec2_chain();
    f.region = Some("cn-north-1".into());
    let v = asff_finding(&f, &cn, at(11, 0));
    assert_eq!(v["Resources"][0]["Partition"], "aws-cn");
    assert!(v["Resources"][0]["Id"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws-cn:ec2:cn-north-1:"));
    assert!(v.get("SourceUrl").is_none());
    let mut odd = ec2_chain();
    odd.events[1].id = "not-a-cloudtrail-id".into();
    odd.events[0].id = "x".repeat(36);
    let v = asff_finding(&odd, &target(), at(11, 0));
    assert!(v.get("SourceUrl").is_none());
    assert_eq!(
        AsffTarget::new("1", "us-gov-west-1").partition(),
        "aws-us-gov"
    );
}

#[test]
fn other_clouds_map_to_other_resources_and_no_steps_means_no_remediation() {
    let mut f = ec2_chain();
    f.cloud = Cloud::Gcp;
    f.account = "my-project".into();
    f.region = None;
    f.snapshot = "projects/my-project/global/snapshots/s1".into();
    f.resources = vec![];
    f.next_steps = vec![];
    let v = asff_finding(&f, &target(), at(11, 0));
    assert_eq!(
        resource_types(&v),
        vec![(
            "Other".into(),
            "projects/my-project/global/snapshots/s1".into()
        )]
    );
    assert_eq!(v["Resources"][0]["Details"]["Other"]["cloud"], "gcp");
    assert_eq!(v["Resources"][0]["Region"], "eu-west-1");
    assert!(
        v.get("Region").is_none(),
        "Security Hub sets the finding's Region itself"
    );
    assert!(v.get("Remediation").is_none());
    assert!(v.get("SourceUrl").is_none());
}

#[test]
fn every_severity_has_its_asff_label() {
    let labels: Vec<&str> = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .map(severity_label)
    .collect();
    assert_eq!(
        labels,
        ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    );
}

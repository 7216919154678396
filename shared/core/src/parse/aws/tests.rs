//! Fixture-driven tests of the CloudTrail parser: one per consumed call, the traps that have
//! misled public rules (failed and dry-run calls, `group: all`, removed shares, IPv6 and port
//! ranges, service automation), malformed input, and a sweep over the public sample corpus.

use super::*;
use crate::model::{PortRange, Protocol, ResourceKind};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/aws/",
            $name,
            ".json"
        ))
    };
}

const OWN: &str = "111122223333";
const EXT: &str = "444455556666";
const MALLORY: &str = "arn:aws:iam::111122223333:user/mallory";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const SNAP: &str = "snap-0f1e2d3c4b5a69788";
const AMI: &str = "ami-0a1b2c3d4e5f60718";
const SG: &str = "sg-0123abcd4567ef890";
const SG2: &str = "sg-0fedcba987654321f";
const PAYROLL_SNAPSHOT: &str = "arn:aws:rds:eu-west-1:111122223333:snapshot:payroll-final";
const ORDERS_CLUSTER_SNAPSHOT: &str =
    "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:orders-cluster-snap";

fn snapshot(id: &str) -> Resource {
    Resource::new(ResourceKind::Snapshot, id)
}
fn db_snapshot(arn: &str) -> Resource {
    Resource::new(ResourceKind::DbSnapshot, arn)
}
fn image(id: &str) -> Resource {
    Resource::new(ResourceKind::Image, id)
}
fn disk(id: &str) -> Resource {
    Resource::new(ResourceKind::Disk, id)
}
fn database(arn: &str) -> Resource {
    Resource::new(ResourceKind::Database, arn)
}
fn instance(id: &str) -> Resource {
    Resource::new(ResourceKind::Instance, id)
}
fn group(id: &str) -> Resource {
    Resource::new(ResourceKind::NetworkGroup, id)
}
fn member(member: Resource, group_id: &str) -> Fact {
    Fact::NetworkMember {
        member,
        group: group(group_id),
        tags: vec![],
    }
}
fn restored(resource: Resource, snapshot: Resource) -> Fact {
    Fact::RestoredFrom { resource, snapshot }
}
fn shared(snapshot: Resource, audience: Audience) -> Fact {
    Fact::SnapshotShared { snapshot, audience }
}
fn accounts(ids: &[&str]) -> Audience {
    Audience::Accounts(ids.iter().map(|id| id.to_string()).collect())
}

fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// The meta most fixtures share: mallory, from 203.0.113.77, in our account, us-east-1.
fn meta(id: &str, name: &str, at: &str) -> EventMeta {
    EventMeta {
        id: id.to_owned(),
        name: name.to_owned(),
        time: time(at),
        actor: Some(MALLORY.to_owned()),
        source_ip: Some("203.0.113.77".to_owned()),
        cloud: Cloud::Aws,
        account: OWN.to_owned(),
        region: Some("us-east-1".to_owned()),
        automation: None,
    }
}

fn rds_meta(id: &str, name: &str, at: &str) -> EventMeta {
    EventMeta {
        region: Some("eu-west-1".to_owned()),
        ..meta(id, name, at)
    }
}

fn event(raw: &str) -> ParsedEvent {
    match parse_record(raw) {
        Ok(Parsed::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn facts(raw: &str) -> Vec<Fact> {
    event(raw).facts
}

fn skipped(raw: &str) -> Skip {
    match parse_record(raw) {
        Ok(Parsed::Skipped(skip)) => skip,
        other => panic!("expected a skip, got {other:?}"),
    }
}

// ---- the consumed-call table ---------------------------------------------------------------

#[test]
fn consumed_events_table_matches_the_dispatcher() {
    assert_eq!(CONSUMED_EVENTS.len(), Api::ALL.len());
    for &(source, name) in CONSUMED_EVENTS {
        assert!(is_consumed(name), "{name}");
        assert_eq!(
            Api::from_event_name(name).map(Api::event_source),
            Some(source),
            "{name}"
        );
        let same_name = CONSUMED_EVENTS.iter().filter(|(_, n)| *n == name).count();
        assert_eq!(same_name, 1, "{name} listed twice");
    }
    for name in [
        "DescribeSnapshots",
        "createsnapshot",
        "DeleteSnapshot",
        "PutSnapshotBlock",
        "StartSnapshot",
        "CompleteSnapshot",
        "",
    ] {
        assert!(!is_consumed(name), "{name}");
    }
    assert!(CONSUMED_EVENTS.contains(&("ebs.amazonaws.com", "GetSnapshotBlock")));
    assert!(CONSUMED_EVENTS.contains(&("rds.amazonaws.com", "StartExportTask")));
    assert!(CONSUMED_EVENTS.contains(&("ec2.amazonaws.com", "SharedSnapshotCopyInitiated")));
}

#[test]
fn irrelevant_records_are_skipped_without_needing_other_fields() {
    assert_eq!(
        skipped(r#"{"eventName": "DescribeSnapshots", "eventSource": "ec2.amazonaws.com"}"#),
        Skip::Irrelevant
    );
    // Nothing else is required in a record we do not consume, and its sections are not read.
    assert_eq!(
        skipped(r#"{"eventName": "GetObject", "requestParameters": ["anything", 5]}"#),
        Skip::Irrelevant
    );
    // Storage Gateway has its own CreateSnapshot.
    let gateway = fixture!("create_snapshot").replace(
        r#""eventSource": "ec2.amazonaws.com""#,
        r#""eventSource": "storagegateway.amazonaws.com""#,
    );
    assert_eq!(skipped(&gateway), Skip::Irrelevant);
}

// ---- snapshots -----------------------------------------------------------------------------

#[test]
fn create_snapshot() {
    assert_eq!(
        event(fixture!("create_snapshot")),
        ParsedEvent {
            meta: EventMeta {
                actor: Some(ALICE.to_owned()),
                source_ip: Some("198.51.100.24".to_owned()),
                ..meta(
                    "1b6f3c2e-8d4a-4f0b-9e57-3a2c1d0e9f81",
                    "CreateSnapshot",
                    "2025-03-04T10:15:02Z"
                )
            },
            facts: vec![Fact::SnapshotCreated {
                snapshot: snapshot(SNAP),
                source: Some(disk("vol-0a1b2c3d4e5f67890")),
            }],
        }
    );
}

#[test]
fn missing_event_id_gets_a_stable_content_id() {
    let raw = fixture!("create_snapshot_missing_event_id");
    let parsed = event(raw);
    // sha256sum of the fixture file, first 16 bytes.
    assert_eq!(parsed.meta.id, "sha256:51240321813de2c1eb97ec07a617d4b6");
    assert_eq!(parsed.facts, facts(fixture!("create_snapshot")));
    assert_eq!(
        event(raw).meta.id,
        parsed.meta.id,
        "redelivery keeps the id"
    );
    let other_bytes = format!("{raw} ");
    assert_ne!(event(&other_bytes).meta.id, parsed.meta.id);
}

#[test]
fn create_snapshots_flat_response() {
    let parsed = event(fixture!("create_snapshots"));
    assert_eq!(
        parsed.meta.actor.as_deref(),
        Some("arn:aws:iam::111122223333:user/bob")
    );
    assert_eq!(parsed.meta.automation, None);
    assert_eq!(
        parsed.facts,
        vec![
            Fact::SnapshotCreated {
                snapshot: snapshot("snap-0aaa1111bbbb2222c"),
                source: Some(disk("vol-0aaa1111bbbb2222c")),
            },
            Fact::SnapshotCreated {
                snapshot: snapshot("snap-0ddd3333eeee4444f"),
                source: Some(disk("vol-0ddd3333eeee4444f")),
            },
        ]
    );
}

#[test]
fn create_snapshots_wrapped_response_by_dlm() {
    let parsed = event(fixture!("create_snapshots_dlm"));
    assert_eq!(parsed.meta.automation.as_deref(), Some("dlm"));
    assert_eq!(
        parsed.meta.actor.as_deref(),
        Some(
            "arn:aws:sts::111122223333:assumed-role/AWSDataLifecycleManagerDefaultRole/DLMSession"
        )
    );
    assert_eq!(parsed.meta.source_ip.as_deref(), Some("dlm.amazonaws.com"));
    assert_eq!(
        parsed.facts,
        vec![
            Fact::SnapshotCreated {
                snapshot: snapshot("snap-0123aaaa4567bbbb8"),
                source: Some(disk("vol-0aaa1111bbbb2222c")),
            },
            Fact::SnapshotCreated {
                snapshot: snapshot("snap-0cccc8888dddd9999"),
                source: Some(disk("vol-0ddd3333eeee4444f")),
            },
        ]
    );
}

#[test]
fn copy_snapshot() {
    assert_eq!(
        event(fixture!("copy_snapshot")),
        ParsedEvent {
            meta: meta(
                "2f4a6c8e-0b2d-4f6a-8c0e-2a4c6e8a0c2e",
                "CopySnapshot",
                "2025-03-06T08:41:19Z"
            ),
            facts: vec![Fact::SnapshotCopied {
                snapshot: snapshot("snap-0ee55ff66aa77bb88"),
                source: snapshot("snap-0aa11bb22cc33dd44"),
            }],
        }
    );
}

// ---- images --------------------------------------------------------------------------------

#[test]
fn create_image() {
    let parsed = event(fixture!("create_image"));
    assert_eq!(parsed.meta.actor.as_deref(), Some(ALICE));
    assert_eq!(parsed.meta.time, time("2025-03-04T10:30:44Z"));
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotCreated {
            snapshot: image(AMI),
            source: Some(instance("i-0123456789abcdef0")),
        }]
    );
}

#[test]
fn register_image_links_its_snapshots() {
    assert_eq!(
        event(fixture!("register_image")),
        ParsedEvent {
            meta: meta(
                "7c9e1b3d-5f7b-4d9f-8b3d-5f7b9d1f3b5d",
                "RegisterImage",
                "2025-03-06T09:02:51Z"
            ),
            facts: vec![Fact::ImageRegistered {
                image: image("ami-0bbbbccccddddeeee"),
                snapshots: vec![snapshot(SNAP), snapshot("snap-0ee55ff66aa77bb88")],
            }],
        }
    );
}

#[test]
fn copy_image() {
    assert_eq!(
        facts(fixture!("copy_image")),
        vec![Fact::SnapshotCopied {
            snapshot: image("ami-0d0d0d0d0d0d0d0d0"),
            source: image("ami-0c0c0c0c0c0c0c0c0"),
        }]
    );
}

// ---- sharing -------------------------------------------------------------------------------

#[test]
fn snapshot_shared_with_accounts_drops_our_own() {
    assert_eq!(
        event(fixture!("modify_snapshot_attribute_add_accounts")),
        ParsedEvent {
            meta: meta(
                "0b2d4f6b-8d0f-4b2d-9f6b-8d0f2b4d6f8b",
                "ModifySnapshotAttribute",
                "2025-03-06T08:55:00Z"
            ),
            facts: vec![shared(snapshot(SNAP), accounts(&[EXT, "777788889999"]))],
        }
    );
}

#[test]
fn snapshot_made_public_with_group_all() {
    assert_eq!(
        facts(fixture!("modify_snapshot_attribute_group_all")),
        vec![shared(snapshot(SNAP), Audience::Public)]
    );
}

#[test]
fn removing_permissions_is_not_a_share() {
    let parsed = event(fixture!("modify_snapshot_attribute_remove"));
    assert_eq!(parsed.meta.name, "ModifySnapshotAttribute");
    assert_eq!(parsed.facts, vec![]);
}

#[test]
fn sharing_with_our_own_account_is_a_no_op() {
    let parsed = event(fixture!("modify_snapshot_attribute_own_account"));
    assert_eq!(parsed.meta.actor.as_deref(), Some(ALICE));
    assert_eq!(parsed.facts, vec![]);
}

#[test]
fn legacy_share_form_counts() {
    assert_eq!(
        facts(fixture!("modify_snapshot_attribute_legacy")),
        vec![
            shared(snapshot(SNAP), Audience::Public),
            shared(snapshot(SNAP), accounts(&[EXT])),
        ]
    );
}

fn legacy_share(request: Value) -> Vec<Fact> {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": MALLORY, "accountId": OWN},
        "eventTime": "2025-03-06T08:58:10Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "ModifySnapshotAttribute",
        "awsRegion": "us-east-1",
        "requestParameters": request,
        "responseElements": {"_return": true},
        "eventID": "00000000-0000-4000-8000-000000000001",
        "recipientAccountId": OWN
    });
    facts(&record.to_string())
}

#[test]
fn legacy_share_variants() {
    let bare_lists = legacy_share(json!({
        "snapshotId": SNAP, "attribute": "createVolumePermission", "operationType": "add",
        "userIds": [EXT, OWN]
    }));
    assert_eq!(bare_lists, vec![shared(snapshot(SNAP), accounts(&[EXT]))]);

    let groups_only = legacy_share(json!({
        "snapshotId": SNAP, "operationType": "add", "userGroup": ["all"]
    }));
    assert_eq!(groups_only, vec![shared(snapshot(SNAP), Audience::Public)]);

    let removal = legacy_share(json!({
        "snapshotId": SNAP, "attributeType": "CREATE_VOLUME_PERMISSION", "operationType": "remove",
        "userId": {"items": [{"userId": EXT}]}
    }));
    assert_eq!(removal, vec![]);

    let other_attribute = legacy_share(json!({
        "snapshotId": SNAP, "attributeType": "PRODUCT_CODES", "operationType": "add",
        "userId": [EXT]
    }));
    assert_eq!(other_attribute, vec![]);
}

#[test]
fn image_shared_with_account_and_organization() {
    let ami = image(AMI);
    assert_eq!(
        facts(fixture!("modify_image_attribute_launch_permission")),
        vec![
            shared(ami.clone(), accounts(&[EXT])),
            shared(
                ami,
                Audience::Principals(vec![
                    "arn:aws:organizations::999988887777:organization/o-a1b2c3d4e5".to_owned(),
                    "arn:aws:organizations::999988887777:ou/o-a1b2c3d4e5/ou-ab12-34cd56ef"
                        .to_owned(),
                ])
            ),
        ]
    );
}

#[test]
fn image_made_public() {
    assert_eq!(
        facts(fixture!("modify_image_attribute_public")),
        vec![shared(image(AMI), Audience::Public)]
    );
}

#[test]
fn db_snapshot_made_public_and_shared() {
    let snapshot = db_snapshot(PAYROLL_SNAPSHOT);
    assert_eq!(
        event(fixture!("modify_db_snapshot_attribute_public")),
        ParsedEvent {
            meta: rds_meta(
                "3c5e7a9c-1e3a-4c5e-8a9c-1e3a5c7e9a1c",
                "ModifyDBSnapshotAttribute",
                "2025-03-06T08:45:00Z"
            ),
            // `Payroll-Final` names the same snapshot as `payroll-final`: RDS lower-cases ids.
            facts: vec![
                shared(snapshot.clone(), Audience::Public),
                shared(snapshot, accounts(&[EXT])),
            ],
        }
    );
}

#[test]
fn db_cluster_snapshot_shared() {
    assert_eq!(
        facts(fixture!("modify_db_cluster_snapshot_attribute_add")),
        vec![shared(
            db_snapshot(ORDERS_CLUSTER_SNAPSHOT),
            accounts(&[EXT])
        )]
    );
}

#[test]
fn db_snapshot_values_to_remove_is_not_a_share() {
    assert_eq!(
        facts(fixture!("modify_db_snapshot_attribute_remove")),
        vec![]
    );
}

// ---- export and outside use ----------------------------------------------------------------

#[test]
fn ebs_direct_reads_export_the_snapshot() {
    let exported = |id: &str| Fact::SnapshotExported {
        snapshot: snapshot(id),
        method: "ebs-direct-api".to_owned(),
    };
    let list = event(fixture!("ebs_list_snapshot_blocks"));
    assert_eq!(
        list.meta,
        meta(
            "9c1e3a5c-7e9a-4c1e-8a5c-7e9a1c3e5a7c",
            "ListSnapshotBlocks",
            "2025-03-06T09:30:00Z"
        )
    );
    assert_eq!(list.facts, vec![exported(SNAP)]);
    assert_eq!(
        facts(fixture!("ebs_list_changed_blocks")),
        vec![exported("snap-0aa11bb22cc33dd44"), exported(SNAP)]
    );
    assert_eq!(
        facts(fixture!("ebs_get_snapshot_block")),
        vec![exported(SNAP)]
    );
}

#[test]
fn rds_export_to_s3() {
    assert_eq!(
        facts(fixture!("start_export_task")),
        vec![Fact::SnapshotExported {
            snapshot: db_snapshot(PAYROLL_SNAPSHOT),
            method: "rds-export-to-s3".to_owned(),
        }]
    );
}

#[test]
fn shared_snapshot_volume_created_by_another_account() {
    assert_eq!(
        event(fixture!("shared_snapshot_volume_created")),
        ParsedEvent {
            meta: EventMeta {
                actor: Some("arn:aws:iam::444455556666:root".to_owned()),
                source_ip: None,
                ..meta(
                    "2f4b6d8f-0b2d-4f4b-9d8f-0b2d4f6b8d0f",
                    "SharedSnapshotVolumeCreated",
                    "2025-03-06T09:05:33Z"
                )
            },
            facts: vec![Fact::UsedExternally {
                snapshot: snapshot(SNAP),
                account: EXT.to_owned(),
            }],
        }
    );
}

#[test]
fn aws_account_callers_are_never_automation() {
    // The other account copied our snapshot with its AWS Backup: still the signal.
    let parsed = event(fixture!("shared_snapshot_copy_initiated"));
    assert_eq!(
        parsed.meta.source_ip.as_deref(),
        Some("backup.amazonaws.com")
    );
    assert_eq!(parsed.meta.automation, None);
    assert_eq!(
        parsed.facts,
        vec![Fact::UsedExternally {
            snapshot: snapshot(SNAP),
            account: EXT.to_owned(),
        }]
    );
}

// ---- restore -------------------------------------------------------------------------------

#[test]
fn create_volume_from_snapshot() {
    assert_eq!(
        facts(fixture!("create_volume")),
        vec![restored(disk("vol-0c0ffee0c0ffee000"), snapshot(SNAP))]
    );
}

#[test]
fn attach_volume() {
    let uses = vec![Fact::Uses {
        instance: instance("i-0badc0de0badc0de0"),
        disk: disk("vol-0c0ffee0c0ffee000"),
    }];
    assert_eq!(facts(fixture!("attach_volume")), uses);
    // `requestParameters: null`: the response still names both.
    assert_eq!(facts(fixture!("attach_volume_null_request")), uses);
}

#[test]
fn run_instances_restores_and_joins_groups_per_instance() {
    let first = instance("i-0aaaaaaaaaaaaaaa1");
    let second = instance("i-0aaaaaaaaaaaaaaa2");
    assert_eq!(
        event(fixture!("run_instances")),
        ParsedEvent {
            meta: meta(
                "7e9a1c3e-5a7c-4e9a-9c3e-5a7c9e1a3c5f",
                "RunInstances",
                "2025-03-06T09:23:00Z"
            ),
            facts: vec![
                restored(first.clone(), snapshot(SNAP)),
                restored(first.clone(), image(AMI)),
                member(first, SG),
                restored(second.clone(), snapshot(SNAP)),
                restored(second.clone(), image(AMI)),
                member(second.clone(), SG),
                member(second, SG2),
            ],
        }
    );
}

#[test]
fn run_instances_by_auto_scaling() {
    let parsed = event(fixture!("run_instances_autoscaling"));
    assert_eq!(parsed.meta.automation.as_deref(), Some("autoscaling"));
    let launched = instance("i-0bbbbbbbbbbbbbbb1");
    assert_eq!(
        parsed.facts,
        vec![
            restored(launched.clone(), image(AMI)),
            member(launched, SG2)
        ]
    );
}

#[test]
fn restore_db_instance_from_snapshot() {
    let restored_db = database("arn:aws:rds:eu-west-1:111122223333:db:payroll-restored");
    assert_eq!(
        event(fixture!("restore_db_instance_from_db_snapshot")),
        ParsedEvent {
            meta: rds_meta(
                "7a9c1e3a-5c7e-4a9c-8e3a-5c7e9a1c3e5a",
                "RestoreDBInstanceFromDBSnapshot",
                "2025-03-06T10:10:00Z"
            ),
            facts: vec![
                restored(restored_db.clone(), db_snapshot(PAYROLL_SNAPSHOT)),
                public(restored_db.clone()),
                member(restored_db.clone(), "sg-0db0db0db0db0db00"),
                member(restored_db, "sg-0aaaabbbbccccdddd"),
            ],
        }
    );
}

#[test]
fn restore_db_cluster_from_snapshot() {
    // No ARN in the response: built from the name, in lower case like RDS stores it.
    let cluster = database("arn:aws:rds:eu-west-1:111122223333:cluster:orders-restored");
    assert_eq!(
        facts(fixture!("restore_db_cluster_from_snapshot")),
        vec![
            restored(cluster.clone(), db_snapshot(ORDERS_CLUSTER_SNAPSHOT)),
            member(cluster, SG),
        ]
    );
}

fn public(resource: Resource) -> Fact {
    Fact::PublicEndpoint {
        resource,
        setting: "publiclyAccessible".to_owned(),
        sources: vec![],
    }
}

#[test]
fn restore_db_instance_from_snapshot_without_public_flag_is_not_public() {
    let mut record: Value =
        serde_json::from_str(fixture!("restore_db_instance_from_db_snapshot")).unwrap();
    record["requestParameters"]["publiclyAccessible"] = json!(false);
    record["responseElements"]["publiclyAccessible"] = json!(false);
    let facts = facts(&record.to_string());
    assert!(!facts
        .iter()
        .any(|f| matches!(f, Fact::PublicEndpoint { .. })));
    // The flag logged as a string counts like the boolean.
    record["requestParameters"]["publiclyAccessible"] = json!("true");
    let facts = self::facts(&record.to_string());
    assert!(facts.contains(&public(database(
        "arn:aws:rds:eu-west-1:111122223333:db:payroll-restored"
    ))));
}

#[test]
fn restore_db_instance_to_point_in_time_reads_the_source_backups() {
    let pitr = database("arn:aws:rds:eu-west-1:111122223333:db:payroll-pitr");
    let backups = db_snapshot("arn:aws:rds:eu-west-1:111122223333:db:payroll-prod/backups");
    assert_eq!(
        facts(fixture!("restore_db_instance_to_point_in_time_public")),
        vec![
            restored(pitr.clone(), backups),
            public(pitr.clone()),
            member(pitr, "sg-0db0db0db0db0db00"),
        ]
    );
    // The automated-backups ARN form, public only by what the response reports.
    let pitr2 = database("arn:aws:rds:eu-west-1:111122223333:db:payroll-pitr2");
    assert_eq!(
        facts(fixture!(
            "restore_db_instance_to_point_in_time_response_public"
        )),
        vec![
            restored(
                pitr2.clone(),
                db_snapshot("arn:aws:rds:eu-west-1:111122223333:auto-backup:ab-7example2m3n4o5p6q")
            ),
            public(pitr2),
        ]
    );
}

#[test]
fn restore_db_cluster_to_point_in_time() {
    let cluster = database("arn:aws:rds:eu-west-1:111122223333:cluster:ledger-pitr");
    assert_eq!(
        facts(fixture!("restore_db_cluster_to_point_in_time")),
        vec![
            restored(
                cluster.clone(),
                db_snapshot("arn:aws:rds:eu-west-1:111122223333:cluster:ledger-prod/backups")
            ),
            member(cluster, "sg-0c1c2c3c4c5c6c7c8"),
        ]
    );
}

#[test]
fn restores_from_s3_name_the_bucket_as_their_source() {
    let db = database("arn:aws:rds:eu-west-1:111122223333:db:crm-from-s3");
    assert_eq!(
        facts(fixture!("restore_db_instance_from_s3")),
        vec![
            restored(
                db.clone(),
                db_snapshot("arn:aws:s3:::crm-xtrabackup/2025-03-06")
            ),
            public(db.clone()),
            member(db, "sg-0default000000000"),
        ]
    );
    let cluster = database("arn:aws:rds:eu-west-1:111122223333:cluster:crm-aurora");
    assert_eq!(
        facts(fixture!("restore_db_cluster_from_s3")),
        vec![
            restored(cluster.clone(), db_snapshot("arn:aws:s3:::crm-xtrabackup")),
            member(cluster, "sg-0c1c2c3c4c5c6c7c8"),
        ]
    );
}

#[test]
fn modify_db_instance_states_exposure_and_groups() {
    let db = database("arn:aws:rds:eu-west-1:111122223333:db:payroll-restored");
    // The request sets the flag; the response still shows the old value (pending).
    assert_eq!(
        facts(fixture!("modify_db_instance_public")),
        vec![
            public(db.clone()),
            member(db.clone(), "sg-0db0db0db0db0db00")
        ]
    );
    // A group being removed is no membership.
    assert_eq!(
        facts(fixture!("modify_db_instance_security_groups")),
        vec![member(db.clone(), "sg-0open0open0open00")]
    );
    // Made private: the request wins over the response's pending old value.
    assert_eq!(facts(fixture!("modify_db_instance_made_private")), vec![]);
}

#[test]
fn modify_db_cluster_and_cluster_instances_expose_the_cluster() {
    let cluster = database("arn:aws:rds:eu-west-1:111122223333:cluster:ledger-pitr");
    assert_eq!(
        facts(fixture!("modify_db_cluster_public")),
        vec![public(cluster.clone())]
    );
    assert_eq!(
        facts(fixture!("create_db_instance_in_cluster_public")),
        vec![Fact::PublicEndpoint {
            resource: cluster,
            setting: "publiclyAccessible instance ledger-pitr-writer".to_owned(),
            sources: vec![],
        }]
    );
    // A new standalone instance holds no restored data.
    assert_eq!(facts(fixture!("create_db_instance_standalone")), vec![]);
}

#[test]
fn modify_security_group_rules_rewrites_count_as_openings() {
    assert_eq!(
        facts(fixture!("modify_security_group_rules")),
        vec![Fact::IngressOpened {
            group: group(SG),
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(22)],
            sources: vec!["0.0.0.0/0".to_owned()],
            target_tags: vec![],
            rule: Some("sgr-0f1e2d3c4b5a69788".to_owned()),
        }]
    );
    // Several rules logged as a list; every protocol means every port.
    assert_eq!(
        facts(fixture!("modify_security_group_rules_several")),
        vec![
            Fact::IngressOpened {
                group: group(SG),
                protocol: Protocol::All,
                ports: vec![PortRange::ALL],
                sources: vec!["::/0".to_owned()],
                target_tags: vec![],
                rule: Some("sgr-0a1b2c3d4e5f60718".to_owned()),
            },
            Fact::IngressOpened {
                group: group(SG),
                protocol: Protocol::Tcp,
                ports: vec![PortRange::single(443)],
                sources: vec![SG2.to_owned()],
                target_tags: vec![],
                rule: Some("sgr-0b2c3d4e5f6071829".to_owned()),
            },
        ]
    );
}

#[test]
fn guardduty_share_and_its_use_keep_their_evidence() {
    let share = event(fixture!("modify_snapshot_attribute_guardduty"));
    assert_eq!(
        share.meta.automation.as_deref(),
        Some("guardduty-malware-protection")
    );
    assert_eq!(
        share.facts,
        vec![shared(
            snapshot("snap-07a6b5c4d3e2f1a09"),
            accounts(&["999988887777"])
        )]
    );
    // The service account's use is an `AWSAccount` call: never automation by itself.
    let used = event(fixture!("shared_snapshot_volume_created_guardduty"));
    assert_eq!(used.meta.automation, None);
    assert_eq!(
        used.facts,
        vec![Fact::UsedExternally {
            snapshot: snapshot("snap-07a6b5c4d3e2f1a09"),
            account: "999988887777".to_owned(),
        }]
    );
}

// ---- RDS snapshots -------------------------------------------------------------------------

#[test]
fn create_db_snapshot() {
    assert_eq!(
        event(fixture!("create_db_snapshot")),
        ParsedEvent {
            meta: EventMeta {
                actor: Some(ALICE.to_owned()),
                source_ip: Some("203.0.113.77".to_owned()),
                ..rds_meta(
                    "8d0f2b4d-6f8b-4d0f-9b4d-6f8b0d2f4d6f",
                    "CreateDBSnapshot",
                    "2025-03-06T08:30:00Z"
                )
            },
            facts: vec![Fact::SnapshotCreated {
                snapshot: db_snapshot(PAYROLL_SNAPSHOT),
                source: Some(database("arn:aws:rds:eu-west-1:111122223333:db:payroll-db")),
            }],
        }
    );
}

#[test]
fn create_db_snapshot_by_aws_backup() {
    let parsed = event(fixture!("create_db_snapshot_awsbackup"));
    assert_eq!(parsed.meta.automation.as_deref(), Some("aws-backup"));
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotCreated {
            snapshot: db_snapshot(
                "arn:aws:rds:eu-west-1:111122223333:snapshot:awsbackup:job-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
            ),
            source: Some(database("arn:aws:rds:eu-west-1:111122223333:db:payroll-db")),
        }]
    );
}

#[test]
fn create_db_cluster_snapshot() {
    assert_eq!(
        facts(fixture!("create_db_cluster_snapshot")),
        vec![Fact::SnapshotCreated {
            snapshot: db_snapshot(ORDERS_CLUSTER_SNAPSHOT),
            source: Some(database(
                "arn:aws:rds:eu-west-1:111122223333:cluster:orders-cluster"
            )),
        }]
    );
}

#[test]
fn copy_db_snapshot_across_regions() {
    assert_eq!(
        facts(fixture!("copy_db_snapshot")),
        vec![Fact::SnapshotCopied {
            snapshot: db_snapshot("arn:aws:rds:eu-west-1:111122223333:snapshot:payroll-final-copy"),
            source: db_snapshot("arn:aws:rds:eu-central-1:111122223333:snapshot:payroll-final"),
        }]
    );
}

#[test]
fn copy_db_cluster_snapshot_by_name() {
    assert_eq!(
        facts(fixture!("copy_db_cluster_snapshot")),
        vec![Fact::SnapshotCopied {
            snapshot: db_snapshot(
                "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:orders-cluster-snap-copy"
            ),
            source: db_snapshot(ORDERS_CLUSTER_SNAPSHOT),
        }]
    );
}

// ---- network -------------------------------------------------------------------------------

fn opened(
    group_id: &str,
    protocol: Protocol,
    ports: Vec<PortRange>,
    sources: &[&str],
    rule: Option<&str>,
) -> Fact {
    Fact::IngressOpened {
        group: group(group_id),
        protocol,
        ports,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        target_tags: vec![],
        rule: rule.map(str::to_owned),
    }
}

#[test]
fn ingress_prefers_the_created_rule_set() {
    assert_eq!(
        event(fixture!("authorize_security_group_ingress_rule_set")),
        ParsedEvent {
            meta: meta(
                "0b2d4f6b-8d0f-4b2d-9f6b-8d0f2b4d6f8d",
                "AuthorizeSecurityGroupIngress",
                "2025-03-06T09:24:00Z"
            ),
            facts: vec![
                opened(
                    SG,
                    Protocol::Tcp,
                    vec![PortRange::single(22)],
                    &["0.0.0.0/0"],
                    Some("sgr-0a1a1a1a1a1a1a1a1")
                ),
                opened(
                    SG,
                    Protocol::Tcp,
                    vec![PortRange::single(22)],
                    &["::/0"],
                    Some("sgr-0b2b2b2b2b2b2b2b2")
                ),
                opened(
                    SG,
                    Protocol::All,
                    vec![PortRange::ALL],
                    &["10.0.0.0/8"],
                    Some("sgr-0c3c3c3c3c3c3c3c3")
                ),
            ],
        }
    );
}

#[test]
fn ingress_from_ip_permissions_when_no_rule_set() {
    assert_eq!(
        facts(fixture!("authorize_security_group_ingress_ip_permissions")),
        vec![
            opened(
                SG2,
                Protocol::Tcp,
                vec![PortRange::single(3389)],
                &["203.0.113.0/24", "::/0"],
                None
            ),
            opened(SG2, Protocol::Other, vec![], &["0.0.0.0/0"], None),
            opened(
                SG2,
                Protocol::Udp,
                vec![PortRange { from: 0, to: 65535 }],
                &["pl-0a1b2c3d4e5f60718"],
                None
            ),
        ]
    );
}

#[test]
fn ingress_legacy_flat_form_by_group_name() {
    assert_eq!(
        facts(fixture!("authorize_security_group_ingress_legacy")),
        vec![opened(
            "default",
            Protocol::Tcp,
            vec![PortRange::single(22)],
            &["0.0.0.0/0"],
            None
        )]
    );
}

#[test]
fn modify_instance_attribute_joins_groups_once() {
    let target = instance("i-0aaaaaaaaaaaaaaa1");
    assert_eq!(
        facts(fixture!("modify_instance_attribute_group_set")),
        vec![member(target.clone(), SG2), member(target, SG)]
    );
}

// ---- failures ------------------------------------------------------------------------------

#[test]
fn failed_and_dry_run_calls_never_advance_a_chain() {
    assert_eq!(
        skipped(fixture!("authorize_security_group_ingress_failed")),
        Skip::Failed
    );
    assert_eq!(skipped(fixture!("run_instances_dry_run")), Skip::DryRun);
    // A bare `DryRunOperation` (no `Client.` prefix) too; an empty errorCode is no error.
    let bare =
        fixture!("run_instances_dry_run").replace("Client.DryRunOperation", "DryRunOperation");
    assert_eq!(skipped(&bare), Skip::DryRun);
    let empty_code = fixture!("create_snapshot").replace(
        r#""requestParameters""#,
        r#""errorCode": "", "requestParameters""#,
    );
    assert_eq!(facts(&empty_code), facts(fixture!("create_snapshot")));
}

// ---- EventBridge ---------------------------------------------------------------------------

#[test]
fn eventbridge_api_call_envelope() {
    match parse_eventbridge(fixture!("eventbridge_api_call")) {
        Ok(Parsed::Event(parsed)) => {
            assert_eq!(parsed.meta.id, "1c3e5a7c-9e1a-4c3e-8a7c-9e1a3c5e7a9c");
            assert_eq!(parsed.meta.name, "ModifySnapshotAttribute");
            assert_eq!(parsed.facts, vec![shared(snapshot(SNAP), Audience::Public)]);
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn eventbridge_service_event_envelope() {
    match parse_eventbridge(fixture!("eventbridge_service_event")) {
        Ok(Parsed::Event(parsed)) => {
            assert_eq!(parsed, event(fixture!("shared_snapshot_volume_created")));
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn eventbridge_other_detail_types_are_irrelevant() {
    let native = json!({
        "version": "0", "id": "x", "detail-type": "EBS Snapshot Notification", "source": "aws.ec2",
        "detail": {"event": "createSnapshot", "result": "succeeded"}
    });
    assert!(matches!(
        parse_eventbridge(&native.to_string()),
        Ok(Parsed::Skipped(Skip::Irrelevant))
    ));
    let no_detail = json!({"detail-type": "AWS API Call via CloudTrail", "detail": null});
    assert!(matches!(
        parse_eventbridge(&no_detail.to_string()),
        Err(ParseError::MissingField("detail"))
    ));
    assert!(matches!(
        parse_eventbridge(r#"{"detail": {}}"#),
        Err(ParseError::MissingField("detail-type"))
    ));
    assert!(matches!(
        parse_eventbridge("{\"detail-type\": "),
        Err(ParseError::InvalidJson(_))
    ));
}

// ---- malformed and sparse input ------------------------------------------------------------

#[test]
fn null_sections_yield_an_event_without_facts() {
    let record = json!({
        "eventName": "CreateSnapshot", "eventSource": "ec2.amazonaws.com",
        "eventTime": "2025-03-04T10:15:02Z", "recipientAccountId": OWN, "awsRegion": "us-east-1",
        "requestParameters": null, "responseElements": null, "eventID": "e1"
    });
    let parsed = event(&record.to_string());
    assert_eq!(parsed.facts, vec![]);
    assert_eq!(parsed.meta.actor, None);
    assert_eq!(parsed.meta.source_ip, None);
}

#[test]
fn bad_input_is_an_error_with_a_reason() {
    for garbage in [
        "",
        "not json",
        "{\"eventName\": \"CreateSnapshot\"",
        "[1, 2]",
        "42",
    ] {
        assert!(
            matches!(parse_record(garbage), Err(ParseError::InvalidJson(_))),
            "{garbage:?}"
        );
    }
    assert!(matches!(
        parse_record(r#"{"eventSource": "ec2.amazonaws.com"}"#),
        Err(ParseError::MissingField("eventName"))
    ));

    let base = fixture!("create_snapshot");
    let no_time = base.replace(r#""eventTime": "2025-03-04T10:15:02Z","#, "");
    assert!(matches!(
        parse_record(&no_time),
        Err(ParseError::MissingField("eventTime"))
    ));
    let bad_time = base.replace("2025-03-04T10:15:02Z", "yesterday");
    assert!(matches!(
        parse_record(&bad_time),
        Err(ParseError::InvalidField {
            field: "eventTime",
            ..
        })
    ));
    let hidden = base.replace(
        r#""requestParameters": {"#,
        r#""requestParameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "ignored": {"#,
    );
    assert!(matches!(
        parse_record(&hidden),
        Err(ParseError::InvalidField {
            field: "requestParameters",
            ..
        })
    ));
    let no_account = json!({
        "eventName": "CreateSnapshot", "eventTime": "2025-03-04T10:15:02Z",
        "userIdentity": {"type": "IAMUser", "arn": ALICE}
    });
    assert!(matches!(
        parse_record(&no_account.to_string()),
        Err(ParseError::MissingField("recipientAccountId"))
    ));
    let bad_port = fixture!("authorize_security_group_ingress_legacy")
        .replace(r#""fromPort": 22"#, r#""fromPort": 70000"#);
    assert!(matches!(
        parse_record(&bad_port),
        Err(ParseError::InvalidField {
            field: "fromPort",
            ..
        })
    ));
}

#[test]
fn identity_fallbacks_and_partitions() {
    // No recipientAccountId: the caller's account; lower-cased identity keys (Panther).
    let record = json!({
        "eventName": "AttachVolume", "eventTime": "2021-01-24 04:55:45.000",
        "awsRegion": "us-west-2",
        "userIdentity": {"type": "AssumedRole", "accountid": "112233445566",
                         "sessioncontext": {"sessionissuer": {"username": "AWSServiceRoleForAutoScaling"}}},
        "requestParameters": {"instanceId": "i-1", "volumeId": "vol-1"}, "eventID": "e2"
    });
    let parsed = event(&record.to_string());
    assert_eq!(parsed.meta.account, "112233445566");
    assert_eq!(parsed.meta.time, time("2021-01-24T04:55:45Z"));
    assert_eq!(parsed.meta.actor, None);
    assert_eq!(parsed.meta.automation.as_deref(), Some("autoscaling"));

    // A service principal without ARN is named by the service.
    let service = json!({
        "eventName": "CreateSnapshot", "eventTime": "2025-03-04T10:15:02Z",
        "recipientAccountId": OWN, "awsRegion": "us-east-1", "eventID": "e3",
        "userIdentity": {"type": "AWSService", "invokedBy": "backup.amazonaws.com"},
        "responseElements": {"snapshotId": "snap-1", "volumeId": "vol-1"}
    });
    let parsed = event(&service.to_string());
    assert_eq!(parsed.meta.actor.as_deref(), Some("backup.amazonaws.com"));
    assert_eq!(parsed.meta.automation.as_deref(), Some("aws-backup"));

    // China partition: the outside account's root ARN and built RDS ARNs follow the region.
    let china = json!({
        "eventName": "ModifyDBSnapshotAttribute", "eventSource": "rds.amazonaws.com",
        "eventTime": "2025-03-04T10:15:02Z", "recipientAccountId": OWN, "awsRegion": "cn-north-1",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws-cn:iam::111122223333:user/li"},
        "requestParameters": {"dBSnapshotIdentifier": "s1", "attributeName": "Restore",
                              "valuesToAdd": [EXT]},
        "eventID": "e4"
    });
    assert_eq!(
        facts(&china.to_string()),
        vec![shared(
            db_snapshot("arn:aws-cn:rds:cn-north-1:111122223333:snapshot:s1"),
            accounts(&[EXT])
        )]
    );
    let outsider = json!({
        "eventName": "SharedSnapshotVolumeCreated", "eventTime": "2025-03-04T10:15:02Z",
        "recipientAccountId": OWN, "awsRegion": "cn-northwest-1", "eventID": "e5",
        "userIdentity": {"type": "AWSAccount", "accountId": EXT},
        "serviceEventDetails": {"snapshotId": "arn:aws-cn:ec2:cn-northwest-1::snapshot/snap-9"}
    });
    let parsed = event(&outsider.to_string());
    assert_eq!(
        parsed.meta.actor.as_deref(),
        Some("arn:aws-cn:iam::444455556666:root")
    );
    assert_eq!(
        parsed.facts,
        vec![Fact::UsedExternally {
            snapshot: snapshot("snap-9"),
            account: EXT.to_owned(),
        }]
    );
}

// ---- automation evidence -------------------------------------------------------------------

fn role_identity(role: &str, invoked_by: Option<&str>) -> Value {
    let mut identity = json!({
        "type": "AssumedRole",
        "arn": format!("arn:aws:sts::{OWN}:assumed-role/{role}/session"),
        "accountId": OWN,
        "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role,
                                              "arn": format!("arn:aws:iam::{OWN}:role/{role}")}}
    });
    if let Some(service) = invoked_by {
        identity["invokedBy"] = json!(service);
    }
    identity
}

fn user_identity() -> Value {
    json!({"type": "IAMUser", "arn": MALLORY, "accountId": OWN})
}

fn snapshot_call(identity: Value, source_ip: &str, tag_keys: &[&str]) -> Option<String> {
    let tags: Vec<Value> = tag_keys
        .iter()
        .map(|key| json!({"key": key, "value": "v"}))
        .collect();
    let record = json!({
        "eventName": "CreateSnapshot", "eventSource": "ec2.amazonaws.com",
        "eventTime": "2025-03-04T10:15:02Z", "recipientAccountId": OWN, "awsRegion": "us-east-1",
        "sourceIPAddress": source_ip, "userIdentity": identity, "eventID": "auto",
        "requestParameters": {"volumeId": "vol-1",
            "tagSpecificationSet": {"items": [{"resourceType": "snapshot", "tags": tags}]}},
        "responseElements": {"snapshotId": "snap-1", "volumeId": "vol-1"}
    });
    event(&record.to_string()).meta.automation
}

fn db_snapshot_call(identity: Value, snapshot_type: &str) -> Option<String> {
    let record = json!({
        "eventName": "CreateDBSnapshot", "eventSource": "rds.amazonaws.com",
        "eventTime": "2025-03-04T10:15:02Z", "recipientAccountId": OWN, "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.77", "userIdentity": identity, "eventID": "auto",
        "requestParameters": {"dBSnapshotIdentifier": "s", "dBInstanceIdentifier": "d"},
        "responseElements": {"dBSnapshotIdentifier": "s", "snapshotType": snapshot_type}
    });
    event(&record.to_string()).meta.automation
}

#[test]
fn automation_is_labelled_by_each_kind_of_evidence() {
    let ip = "203.0.113.77";
    let cases: Vec<(&str, Option<String>, Option<&str>)> = vec![
        (
            "plain user",
            snapshot_call(user_identity(), ip, &["Name"]),
            None,
        ),
        (
            "backup invokedBy",
            snapshot_call(
                role_identity("SomeRole", Some("backup.amazonaws.com")),
                ip,
                &[],
            ),
            Some("aws-backup"),
        ),
        (
            "backup source ip",
            snapshot_call(user_identity(), "backup.amazonaws.com", &[]),
            Some("aws-backup"),
        ),
        (
            "backup default role",
            snapshot_call(role_identity("AWSBackupDefaultServiceRole", None), ip, &[]),
            Some("aws-backup"),
        ),
        (
            "backup service-linked role",
            snapshot_call(role_identity("AWSServiceRoleForBackup", None), ip, &[]),
            Some("aws-backup"),
        ),
        (
            "dlm invokedBy",
            snapshot_call(
                role_identity("SomeRole", Some("dlm.amazonaws.com")),
                ip,
                &[],
            ),
            Some("dlm"),
        ),
        (
            "dlm service-linked role",
            snapshot_call(
                role_identity("AWSServiceRoleForDataLifecycleManager", None),
                ip,
                &[],
            ),
            Some("dlm"),
        ),
        (
            "dlm reserved tag",
            snapshot_call(user_identity(), ip, &["aws:dlm:lifecycle-policy-id"]),
            Some("dlm"),
        ),
        (
            "guardduty role",
            snapshot_call(
                role_identity("AWSServiceRoleForAmazonGuardDutyMalwareProtection", None),
                ip,
                &[],
            ),
            Some("guardduty-malware-protection"),
        ),
        (
            "guardduty scan tag set by a user is not evidence",
            snapshot_call(user_identity(), ip, &["GuardDutyScanId"]),
            None,
        ),
        (
            "guardduty scan tag with guardduty as caller",
            snapshot_call(
                role_identity(
                    "SomeRole",
                    Some("malware-protection.guardduty.amazonaws.com"),
                ),
                ip,
                &["GuardDutyScanId"],
            ),
            Some("guardduty-malware-protection"),
        ),
        (
            "autoscaling invokedBy",
            snapshot_call(
                role_identity("SomeRole", Some("autoscaling.amazonaws.com")),
                ip,
                &[],
            ),
            Some("autoscaling"),
        ),
        (
            "autoscaling role",
            snapshot_call(role_identity("AWSServiceRoleForAutoScaling", None), ip, &[]),
            Some("autoscaling"),
        ),
        (
            "rds automated",
            db_snapshot_call(user_identity(), "automated"),
            Some("rds-automated"),
        ),
        (
            "rds awsbackup",
            db_snapshot_call(user_identity(), "awsbackup"),
            Some("aws-backup"),
        ),
        (
            "rds manual",
            db_snapshot_call(user_identity(), "manual"),
            None,
        ),
        (
            "AWSAccount with every hint",
            snapshot_call(
                json!({"type": "AWSAccount", "accountId": EXT, "invokedBy": "backup.amazonaws.com"}),
                "backup.amazonaws.com",
                &["GuardDutyScanId", "aws:dlm:lifecycle-policy-id"],
            ),
            None,
        ),
    ];
    for (case, got, want) in cases {
        assert_eq!(got.as_deref(), want, "{case}");
    }
}

#[test]
fn guardduty_malware_scan_snapshot() {
    let parsed = event(fixture!("create_snapshot_guardduty"));
    assert_eq!(
        parsed.meta.automation.as_deref(),
        Some("guardduty-malware-protection")
    );
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot("snap-07a6b5c4d3e2f1a09"),
            source: Some(disk("vol-0d4c3b2a1f0e9d8c7")),
        }]
    );
}

// ---- the public sample corpus --------------------------------------------------------------

/// Every real sample must parse without panicking; consumed, successful calls must yield an
/// event; known-invalid documents must be rejected. Skipped when the corpus is not present.
#[test]
fn public_corpus_samples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/aws");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("corpus not found at {}: skipping", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut checked = 0;
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let raw = std::fs::read_to_string(&path).expect("readable corpus file");
        if name.ends_with(".INVALID_JSON.txt") {
            assert!(parse_record(&raw).is_err(), "{name} must be rejected");
            assert!(parse_eventbridge(&raw).is_err(), "{name} must be rejected");
            checked += 1;
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let value: Value = serde_json::from_str(&raw).expect("corpus .json is valid JSON");
        if value.get("detail-type").is_some() {
            // Native EBS notifications, not CloudTrail records.
            assert!(
                matches!(
                    parse_eventbridge(&raw),
                    Ok(Parsed::Skipped(Skip::Irrelevant))
                ),
                "{name}"
            );
            checked += 1;
            continue;
        }
        let event_name = value["eventName"].as_str().unwrap_or_default();
        let error_code = value["errorCode"].as_str().unwrap_or_default();
        let parsed = parse_record(&raw);
        match (is_consumed(event_name), error_code.is_empty()) {
            (true, true) => assert!(matches!(parsed, Ok(Parsed::Event(_))), "{name}: {parsed:?}"),
            (true, false) => assert!(
                matches!(parsed, Ok(Parsed::Skipped(Skip::Failed | Skip::DryRun))),
                "{name}: {parsed:?}"
            ),
            (false, _) => assert!(
                matches!(parsed, Ok(Parsed::Skipped(Skip::Irrelevant))),
                "{name}: {parsed:?}"
            ),
        }
        checked += 1;
    }
    assert!(checked > 0, "corpus directory {} is empty", dir.display());
    eprintln!("checked {checked} corpus samples");
}

fn corpus_event(file: &str) -> Option<ParsedEvent> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/aws")
        .join(file);
    match std::fs::read_to_string(&path) {
        Ok(raw) => Some(event(&raw)),
        Err(_) => {
            eprintln!("corpus sample {} not found: skipping", path.display());
            None
        }
    }
}

/// A few real samples, pinned to exact facts: real shapes drift from the documented ones.
#[test]
fn public_corpus_samples_yield_the_expected_facts() {
    if let Some(copy) =
        corpus_event("SharedSnapshotCopyInitiated_attacker_copy_stratus_abridged.json")
    {
        assert_eq!(
            copy.meta.actor.as_deref(),
            Some("arn:aws:iam::999999999999:root")
        );
        assert_eq!(copy.meta.account, "111111111111");
        assert_eq!(copy.meta.automation, None);
        assert!(copy.meta.id.starts_with("sha256:"));
        assert_eq!(
            copy.facts,
            vec![Fact::UsedExternally {
                snapshot: snapshot("snap-12345"),
                account: "999999999999".to_owned(),
            }]
        );
    }
    // Ports logged as strings.
    if let Some(console) = corpus_event("AuthorizeSecurityGroupIngress_443_console_panther.json") {
        assert_eq!(
            console.facts,
            vec![opened(
                "sg-04f0b44316f7d2471",
                Protocol::Tcp,
                vec![PortRange::single(443)],
                &["0.0.0.0/16"],
                None
            )]
        );
    }
    if let Some(automated) = corpus_event("CreateDBSnapshot_automated_panther.json") {
        assert_eq!(automated.meta.automation.as_deref(), Some("rds-automated"));
    }
    // The request does not name the snapshot: only the group membership is known.
    if let Some(restore) = corpus_event("RestoreDBInstanceFromDBSnapshot_not_public_panther.json") {
        assert_eq!(
            restore.facts,
            vec![member(
                database("arn:aws:rds:us-east-1:123456789012:db:test-instance"),
                "sg-f839b688"
            )]
        );
    }
}

// ---- sweep: every consumed call, in each section variant CloudTrail logs --------------------

/// The fact kinds a record states, in order, deduplicated.
fn kinds(facts: &[Fact]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for fact in facts {
        if !out.contains(&fact.kind_name()) {
            out.push(fact.kind_name());
        }
    }
    out
}

/// A fixture with one section removed, as CloudTrail logs calls whose request or response it
/// elides (`null`, or the key missing).
fn without(raw: &str, section: &str) -> String {
    let mut record: Value = serde_json::from_str(raw).expect("fixture is JSON");
    record[section] = Value::Null;
    record.to_string()
}

fn read_fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/aws/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Issue 10's sweep: for every consumed call, the facts its rules need come out of the record
/// as logged, and out of each single section that documents them, so no logged variant is
/// consumed and silently raises nothing. Columns: fixture, the kinds the full record states,
/// the kinds kept with only `requestParameters`, and with only `responseElements`.
#[test]
fn every_consumed_call_states_its_rule_facts_in_each_logged_variant() {
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    const CREATED: &[&str] = &["snapshot_created"];
    const SHARED: &[&str] = &["snapshot_shared"];
    const EXPORTED: &[&str] = &["snapshot_exported"];
    const USED: &[&str] = &["used_externally"];
    const INGRESS: &[&str] = &["ingress_opened"];
    const NONE: &[&str] = &[];
    let table: &[Row] = &[
        ("create_snapshot", CREATED, NONE, CREATED),
        ("create_snapshots", CREATED, NONE, CREATED),
        ("copy_snapshot", &["snapshot_copied"], NONE, NONE),
        ("create_image", CREATED, NONE, CREATED),
        ("register_image", &["image_registered"], NONE, NONE),
        ("copy_image", &["snapshot_copied"], NONE, NONE),
        (
            "modify_snapshot_attribute_add_accounts",
            SHARED,
            SHARED,
            NONE,
        ),
        ("modify_snapshot_attribute_group_all", SHARED, SHARED, NONE),
        (
            "modify_image_attribute_launch_permission",
            SHARED,
            SHARED,
            NONE,
        ),
        ("shared_snapshot_volume_created", USED, USED, USED),
        ("shared_snapshot_copy_initiated", USED, USED, USED),
        (
            "create_volume",
            &["restored_from"],
            NONE,
            &["restored_from"],
        ),
        ("attach_volume", &["uses"], &["uses"], &["uses"]),
        (
            "run_instances",
            &["restored_from", "network_member"],
            NONE,
            // The response names each instance's image and groups.
            &["restored_from", "network_member"],
        ),
        (
            "modify_instance_attribute_group_set",
            &["network_member"],
            &["network_member"],
            NONE,
        ),
        (
            "authorize_security_group_ingress_ip_permissions",
            INGRESS,
            INGRESS,
            NONE,
        ),
        (
            "authorize_security_group_ingress_rule_set",
            INGRESS,
            INGRESS,
            INGRESS,
        ),
        ("modify_security_group_rules", INGRESS, INGRESS, NONE),
        ("ebs_list_snapshot_blocks", EXPORTED, EXPORTED, NONE),
        ("ebs_list_changed_blocks", EXPORTED, EXPORTED, NONE),
        ("ebs_get_snapshot_block", EXPORTED, EXPORTED, NONE),
        ("create_db_snapshot", CREATED, CREATED, CREATED),
        ("create_db_cluster_snapshot", CREATED, CREATED, CREATED),
        (
            "copy_db_snapshot",
            &["snapshot_copied"],
            &["snapshot_copied"],
            NONE,
        ),
        (
            "copy_db_cluster_snapshot",
            &["snapshot_copied"],
            &["snapshot_copied"],
            NONE,
        ),
        ("modify_db_snapshot_attribute_public", SHARED, SHARED, NONE),
        (
            "modify_db_cluster_snapshot_attribute_add",
            SHARED,
            SHARED,
            NONE,
        ),
        ("start_export_task", EXPORTED, EXPORTED, EXPORTED),
        (
            "restore_db_instance_from_db_snapshot",
            &["restored_from", "public_endpoint", "network_member"],
            &["restored_from", "public_endpoint", "network_member"],
            &["public_endpoint", "network_member"],
        ),
        (
            "restore_db_cluster_from_snapshot",
            &["restored_from", "network_member"],
            &["restored_from", "network_member"],
            &["network_member"],
        ),
        (
            "restore_db_instance_to_point_in_time_public",
            &["restored_from", "public_endpoint", "network_member"],
            &["restored_from", "public_endpoint", "network_member"],
            &["public_endpoint", "network_member"],
        ),
        (
            "restore_db_cluster_to_point_in_time",
            &["restored_from", "network_member"],
            &["restored_from", "network_member"],
            &["network_member"],
        ),
        (
            "restore_db_instance_from_s3",
            &["restored_from", "public_endpoint", "network_member"],
            &["restored_from", "public_endpoint"],
            &["public_endpoint", "network_member"],
        ),
        (
            "restore_db_cluster_from_s3",
            &["restored_from", "network_member"],
            &["restored_from", "network_member"],
            NONE,
        ),
        (
            "modify_db_instance_public",
            &["public_endpoint", "network_member"],
            &["public_endpoint"],
            &["network_member"],
        ),
        (
            "modify_db_cluster_public",
            &["public_endpoint"],
            &["public_endpoint"],
            &["public_endpoint"],
        ),
        (
            "create_db_instance_in_cluster_public",
            &["public_endpoint"],
            &["public_endpoint"],
            &["public_endpoint"],
        ),
    ];
    let mut covered: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for (name, full, request_only, response_only) in table {
        let raw = read_fixture(name);
        let whole = event(&raw);
        covered.push(whole.meta.name.clone());
        let variants = [
            ("as logged", raw.clone(), *full),
            (
                "request only",
                without(&raw, "responseElements"),
                *request_only,
            ),
            (
                "response only",
                without(&raw, "requestParameters"),
                *response_only,
            ),
        ];
        for (variant, record, want) in variants {
            match parse_record(&record) {
                Ok(Parsed::Event(parsed)) => {
                    let got = kinds(&parsed.facts);
                    if got != want {
                        failures.push(format!("{name} ({variant}): {got:?}, want {want:?}"));
                    }
                }
                other => failures.push(format!("{name} ({variant}): {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for api in Api::ALL {
        let name = format!("{api:?}");
        // CreateDBInstance states something only for an instance joining a cluster; the
        // standalone fixture is checked in its own test.
        assert!(covered.contains(&name), "{name}: no row in the sweep");
    }
}

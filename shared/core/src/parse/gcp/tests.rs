//! Parser tests over our own fixtures (`tests/fixtures/gcp/`, written in the real LogEntry
//! shape) and, when it is present, over the shared corpus of public samples.

use super::*;
use crate::model::{Audience, Fact, PortRange, Protocol, Resource, ResourceKind};
use chrono::{DateTime, Utc};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/gcp/",
            $name,
            ".json"
        ))
    };
}

const PROJECT: &str = "acme-prod";
const SNAPSHOT: &str = "projects/acme-prod/global/snapshots/db-snap-0412";
const DISK: &str = "projects/acme-prod/zones/europe-west1-b/disks/db-data";
const RESTORED_DISK: &str = "projects/acme-prod/zones/europe-west1-b/disks/restored-db";
const IMAGE: &str = "projects/acme-prod/global/images/golden-db";
const INSTANCE: &str = "projects/acme-prod/zones/europe-west1-b/instances/jumpbox-7";
const PROD_VPC: &str = "projects/acme-prod/global/networks/prod-vpc";
const DEFAULT_VPC: &str = "projects/acme-prod/global/networks/default";
const OUTSIDER: &str = "mallory@outsider.example";

fn snapshot(id: &str) -> Resource {
    Resource::new(ResourceKind::Snapshot, id)
}
fn disk(id: &str) -> Resource {
    Resource::new(ResourceKind::Disk, id)
}
fn image(id: &str) -> Resource {
    Resource::new(ResourceKind::Image, id)
}
fn instance(id: &str) -> Resource {
    Resource::new(ResourceKind::Instance, id)
}
fn network(id: &str) -> Resource {
    Resource::new(ResourceKind::NetworkGroup, id)
}
fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}
fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

fn event(raw: &str) -> ParsedEvent {
    match parse_entry(raw) {
        Ok(Parsed::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn facts(raw: &str) -> Vec<Fact> {
    event(raw).facts
}

fn skipped(raw: &str) -> Skip {
    match parse_entry(raw) {
        Ok(Parsed::Skipped(skip)) => skip,
        other => panic!("expected a skip, got {other:?}"),
    }
}

/// A fixture with one change, for the variants that differ in a field or two.
fn edited(raw: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut entry: Value = serde_json::from_str(raw).expect("fixture is JSON");
    edit(&mut entry);
    entry.to_string()
}

fn ingress(
    group: &str,
    protocol: Protocol,
    ports: Vec<PortRange>,
    sources: &[&str],
    target_tags: &[&str],
    rule: &str,
) -> Fact {
    Fact::IngressOpened {
        group: network(group),
        protocol,
        ports,
        sources: strings(sources),
        target_tags: strings(target_tags),
        rule: Some(rule.to_string()),
    }
}

// ---- method names ---------------------------------------------------------------------------

#[test]
fn consumed_methods_match_by_suffix_in_every_api_version() {
    for method in [
        "v1.compute.snapshots.insert",
        "beta.compute.instances.insert",
        "alpha.compute.disks.createSnapshot",
        "compute.firewalls.patch",
        "v1.compute.regionDisks.insert",
        "beta.compute.regionDisks.createSnapshot",
    ] {
        assert!(is_consumed(method), "{method}");
    }
    for method in [
        "v1.compute.instances.start",
        "v1.compute.instances.bulkInsert",
        "v1.compute.regionDisks.resize",
        "v1.compute.snapshots.insertX",
        "v1.compute.fooinstances.insert",
        "",
    ] {
        assert!(!is_consumed(method), "{method}");
    }
}

#[test]
fn every_consumed_method_has_a_fact_extractor() {
    for suffix in CONSUMED_METHODS {
        assert!(facts::Method::from_suffix(suffix).is_some(), "{suffix}");
    }
}

#[test]
fn trigger_method_names_list_every_prefix_of_each_consumed_method() {
    let names = trigger_method_names();
    let compute = CONSUMED_METHODS
        .iter()
        .filter(|suffix| suffix.starts_with("compute."))
        .count();
    assert_eq!(
        names.len(),
        compute * 4 + (CONSUMED_METHODS.len() - compute)
    );
    for suffix in CONSUMED_METHODS {
        if suffix.starts_with("compute.") {
            for prefix in ["v1.", "beta.", "alpha.", ""] {
                assert!(
                    names.contains(&format!("{prefix}{suffix}")),
                    "{prefix}{suffix}"
                );
            }
        } else {
            // Cloud SQL logs its methods without an API version.
            assert!(names.contains(&suffix.to_string()), "{suffix}");
        }
    }
    assert!(names.iter().all(|name| is_consumed(name)));
}

// ---- Cloud SQL ------------------------------------------------------------------------------

fn sql(name: &str) -> Resource {
    Resource::new(
        ResourceKind::Database,
        format!("projects/acme-prod/instances/{name}"),
    )
}

#[test]
fn cloudsql_restore_backup_links_the_instance_to_the_backup_run() {
    let parsed = event(fixture!("cloudsql_instances_restoreBackup"));
    assert_eq!(parsed.meta.name, "cloudsql.instances.restoreBackup");
    assert_eq!(parsed.meta.account, PROJECT);
    assert_eq!(parsed.meta.region.as_deref(), Some("europe-west1"));
    assert_eq!(
        parsed.facts,
        vec![Fact::RestoredFrom {
            resource: sql("payroll-restore"),
            snapshot: Resource::new(
                ResourceKind::DbSnapshot,
                "projects/acme-prod/instances/payroll-prod/backupRuns/1712966400123"
            ),
        }]
    );
    // The newer form names a backup resource; a numeric run id reads like a string one.
    let newer = edited(fixture!("cloudsql_instances_restoreBackup"), |entry| {
        entry["protoPayload"]["request"]["body"] =
            serde_json::json!({"backup": "projects/acme-prod/backups/5e1a9c"});
    });
    assert_eq!(
        facts(&newer),
        vec![Fact::RestoredFrom {
            resource: sql("payroll-restore"),
            snapshot: Resource::new(
                ResourceKind::DbSnapshot,
                "projects/acme-prod/backups/5e1a9c"
            ),
        }]
    );
    let numeric = edited(fixture!("cloudsql_instances_restoreBackup"), |entry| {
        entry["protoPayload"]["request"]["body"]["restoreBackupContext"]["backupRunId"] =
            serde_json::json!(1712966400123_u64);
    });
    assert_eq!(
        facts(&numeric),
        facts(fixture!("cloudsql_instances_restoreBackup"))
    );
}

#[test]
fn cloudsql_clone_restores_the_source_data_into_the_new_instance() {
    assert_eq!(
        facts(fixture!("cloudsql_instances_clone")),
        vec![Fact::RestoredFrom {
            resource: sql("reporting-copy"),
            snapshot: Resource::new(
                ResourceKind::DbSnapshot,
                "projects/acme-prod/instances/reporting/backups"
            ),
        }]
    );
}

#[test]
fn cloudsql_authorized_networks_are_a_public_endpoint() {
    let endpoint = |name: &str, sources: &[&str]| Fact::PublicEndpoint {
        resource: sql(name),
        setting: "authorizedNetworks".to_string(),
        sources: strings(sources),
    };
    assert_eq!(
        facts(fixture!("cloudsql_instances_update_authorized_world")),
        vec![endpoint("payroll-restore", &["0.0.0.0/0"])]
    );
    // The engine decides what is the internet; the parser states what was admitted.
    assert_eq!(
        facts(fixture!("cloudsql_instances_update_authorized_office")),
        vec![endpoint("reporting-copy", &["203.0.113.0/24"])]
    );
    assert_eq!(
        facts(fixture!("cloudsql_instances_create_public")),
        vec![endpoint("payroll-restore", &["198.51.100.7/32", "::/0"])]
    );
    // No public IP: authorized networks admit nobody.
    let private = edited(fixture!("cloudsql_instances_create_public"), |entry| {
        entry["protoPayload"]["request"]["body"]["settings"]["ipConfiguration"]["ipv4Enabled"] =
            serde_json::json!(false);
    });
    assert_eq!(facts(&private), vec![]);
    // Without resourceName the request's project and instance name it.
    let unnamed = edited(
        fixture!("cloudsql_instances_update_authorized_world"),
        |entry| {
            entry["protoPayload"]
                .as_object_mut()
                .expect("protoPayload")
                .remove("resourceName");
        },
    );
    assert_eq!(
        facts(&unnamed),
        vec![endpoint("payroll-restore", &["0.0.0.0/0"])]
    );
}

// ---- event metadata -------------------------------------------------------------------------

#[test]
fn snapshot_insert_v1_states_the_snapshot_and_its_disk() {
    let parsed = event(fixture!("snapshots_insert_v1"));
    assert_eq!(
        parsed.meta,
        EventMeta {
            id: "-x1b2kqe3f9a7".to_string(),
            name: "v1.compute.snapshots.insert".to_string(),
            time: time("2024-04-12T16:14:03.129477Z"),
            actor: Some("ops-admin@acme.example".to_string()),
            source_ip: Some("203.0.113.24".to_string()),
            cloud: Cloud::Gcp,
            account: PROJECT.to_string(),
            region: Some("europe-west1".to_string()),
            automation: None,
        }
    );
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot(SNAPSHOT),
            source: Some(disk(DISK)),
        }]
    );
}

#[test]
fn project_region_and_actor_fall_back_to_other_fields() {
    let raw = edited(fixture!("disks_createSnapshot_beta"), |entry| {
        entry["resource"]["labels"]
            .as_object_mut()
            .expect("labels")
            .clear();
        entry["protoPayload"]["authenticationInfo"]
            .as_object_mut()
            .expect("authenticationInfo")
            .remove("principalEmail");
    });
    let meta = event(&raw).meta;
    assert_eq!(meta.account, PROJECT, "from logName");
    assert_eq!(
        meta.region.as_deref(),
        Some("us-central1-a"),
        "from resourceLocation"
    );
    assert_eq!(meta.actor.as_deref(), Some("user:ops-admin@acme.example"));

    let raw = edited(&raw, |entry| {
        entry.as_object_mut().expect("entry").remove("logName");
    });
    assert_eq!(event(&raw).meta.account, PROJECT, "from resourceName");
}

#[test]
fn the_zone_label_is_the_region() {
    let meta = event(fixture!("instances_attachDisk")).meta;
    assert_eq!(meta.region.as_deref(), Some("europe-west1-b"));
    assert_eq!(meta.source_ip.as_deref(), Some("198.51.100.77"));
}

// ---- snapshots ------------------------------------------------------------------------------

#[test]
fn the_closing_record_of_an_operation_is_intermediate() {
    assert_eq!(
        skipped(fixture!("snapshots_insert_operation_last")),
        Skip::Intermediate
    );
    // A record that is both first and last (a one-step operation) carries the request.
    let both = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry["operation"]["last"] = Value::Bool(true);
    });
    assert_eq!(facts(&both).len(), 1);
}

#[test]
fn an_outside_principal_snapshotting_our_disk_is_used_externally() {
    let parsed = event(fixture!("snapshots_insert_cross_project_victim_side"));
    assert_eq!(parsed.meta.actor.as_deref(), Some(OUTSIDER));
    assert_eq!(parsed.meta.source_ip, None);
    assert_eq!(parsed.meta.account, PROJECT);
    // The snapshot's own project is not in the record: the principal stands for it.
    assert_eq!(
        parsed.facts,
        vec![Fact::UsedExternally {
            snapshot: disk(DISK),
            account: OUTSIDER.to_string(),
        }]
    );
}

#[test]
fn a_cross_project_snapshot_names_the_other_project_when_the_record_does() {
    let raw = edited(
        fixture!("snapshots_insert_cross_project_victim_side"),
        |entry| {
            entry["protoPayload"]["response"] = serde_json::json!({
                "@type": "type.googleapis.com/operation",
                "operationType": "insert",
                "targetLink": "https://www.googleapis.com/compute/v1/projects/outsider-lab-4412/global/snapshots/exfil-1",
            });
        },
    );
    assert_eq!(
        facts(&raw),
        vec![
            Fact::SnapshotCreated {
                snapshot: snapshot("projects/outsider-lab-4412/global/snapshots/exfil-1"),
                source: Some(disk(DISK)),
            },
            Fact::UsedExternally {
                snapshot: disk(DISK),
                account: "outsider-lab-4412".to_string(),
            },
        ]
    );
}

#[test]
fn snapshotting_someone_elses_disk_into_our_project_is_only_a_creation() {
    let raw = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry["protoPayload"]["request"]["sourceDisk"] =
            Value::from("projects/vendor-images/zones/europe-west1-b/disks/appliance");
    });
    assert_eq!(
        facts(&raw),
        vec![Fact::SnapshotCreated {
            snapshot: snapshot(SNAPSHOT),
            source: Some(disk(
                "projects/vendor-images/zones/europe-west1-b/disks/appliance"
            )),
        }]
    );
}

#[test]
fn disk_create_snapshot_beta_creates_the_snapshot_in_the_disks_project() {
    let parsed = event(fixture!("disks_createSnapshot_beta"));
    assert_eq!(parsed.meta.name, "beta.compute.disks.createSnapshot");
    assert_eq!(parsed.meta.region.as_deref(), Some("us-central1-a"));
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot("projects/acme-prod/global/snapshots/web-boot-copy"),
            source: Some(disk(
                "projects/acme-prod/zones/us-central1-a/disks/web-boot"
            )),
        }]
    );
}

// ---- sharing --------------------------------------------------------------------------------

#[test]
fn set_iam_policy_with_all_users_is_public() {
    assert_eq!(
        facts(fixture!("snapshots_setIamPolicy_allUsers")),
        vec![Fact::SnapshotShared {
            snapshot: snapshot(SNAPSHOT),
            audience: Audience::Public,
        }]
    );
}

#[test]
fn set_iam_policy_with_an_external_user_names_the_principals_once() {
    assert_eq!(
        facts(fixture!("snapshots_setIamPolicy_external_user")),
        vec![Fact::SnapshotShared {
            snapshot: snapshot(SNAPSHOT),
            audience: Audience::Principals(strings(&[
                "user:mallory@outsider.example",
                "serviceAccount:copier@outsider-lab-4412.iam.gserviceaccount.com",
            ])),
        }]
    );
}

#[test]
fn disk_policy_with_authenticated_users_and_a_group_is_both_shares() {
    assert_eq!(
        facts(fixture!("disks_setIamPolicy_mixed_members")),
        vec![
            Fact::SnapshotShared {
                snapshot: disk(DISK),
                audience: Audience::Public,
            },
            Fact::SnapshotShared {
                snapshot: disk(DISK),
                audience: Audience::Principals(strings(&["group:contractors@partner.example"])),
            },
        ]
    );
}

#[test]
fn image_policy_shared_with_a_domain() {
    let parsed = event(fixture!("images_setIamPolicy_domain"));
    assert_eq!(parsed.meta.name, "beta.compute.images.setIamPolicy");
    assert_eq!(
        parsed.facts,
        vec![Fact::SnapshotShared {
            snapshot: image(IMAGE),
            audience: Audience::Principals(strings(&["domain:partner.example"])),
        }]
    );
}

#[test]
fn an_emptied_policy_states_no_share() {
    let raw = edited(fixture!("snapshots_setIamPolicy_allUsers"), |entry| {
        entry["protoPayload"]["request"]["policy"]["bindings"] = serde_json::json!([]);
    });
    assert_eq!(facts(&raw), vec![]);
}

#[test]
fn the_method_comes_from_the_request_type_when_method_name_is_missing() {
    let raw = edited(fixture!("snapshots_setIamPolicy_external_user"), |entry| {
        entry["protoPayload"]
            .as_object_mut()
            .expect("protoPayload")
            .remove("methodName");
    });
    let parsed = event(&raw);
    assert_eq!(parsed.meta.name, "compute.snapshots.setIamPolicy");
    assert_eq!(parsed.facts.len(), 1);
}

// ---- restores -------------------------------------------------------------------------------

#[test]
fn disk_insert_from_a_relative_snapshot_reference_is_a_restore() {
    assert_eq!(
        facts(fixture!("disks_insert_from_snapshot")),
        vec![Fact::RestoredFrom {
            resource: disk(RESTORED_DISK),
            snapshot: snapshot(SNAPSHOT),
        }]
    );
}

#[test]
fn regional_disks_state_the_same_facts_as_zonal_ones() {
    let regional = "projects/acme-prod/regions/europe-west1/disks/restored-db";
    let restore = edited(fixture!("disks_insert_from_snapshot"), |entry| {
        entry["protoPayload"]["methodName"] = Value::from("compute.regionDisks.insert");
        entry["protoPayload"]["resourceName"] = Value::from(regional);
    });
    assert_eq!(
        facts(&restore),
        vec![Fact::RestoredFrom {
            resource: disk(regional),
            snapshot: snapshot(SNAPSHOT),
        }]
    );
    let snapshotted = edited(fixture!("disks_createSnapshot_beta"), |entry| {
        entry["protoPayload"]["methodName"] =
            Value::from("alpha.compute.regionDisks.createSnapshot");
        entry["protoPayload"]["resourceName"] = Value::from(regional);
    });
    assert!(matches!(
        facts(&snapshotted).as_slice(),
        [Fact::SnapshotCreated { source: Some(source), .. }] if *source == disk(regional)
    ));
}

#[test]
fn disk_insert_from_an_image_of_our_project_is_a_restore() {
    let from_golden = "projects/acme-prod/zones/europe-west1-b/disks/from-golden";
    assert_eq!(
        facts(fixture!("disks_insert_from_image_beta")),
        vec![Fact::RestoredFrom {
            resource: disk(from_golden),
            snapshot: image(IMAGE),
        }]
    );
    let public_image = edited(fixture!("disks_insert_from_image_beta"), |entry| {
        entry["protoPayload"]["request"]["sourceImage"] = Value::from(
            "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20240415",
        );
    });
    assert_eq!(facts(&public_image), vec![]);
}

#[test]
fn image_insert_over_a_snapshot_registers_it() {
    assert_eq!(
        facts(fixture!("images_insert_from_snapshot")),
        vec![Fact::ImageRegistered {
            image: image(IMAGE),
            snapshots: vec![snapshot(SNAPSHOT)],
        }]
    );
}

#[test]
fn image_insert_over_a_disk_is_a_snapshot_of_it() {
    assert_eq!(
        facts(fixture!("images_insert_from_disk")),
        vec![Fact::SnapshotCreated {
            snapshot: image("projects/acme-prod/global/images/db-data-image"),
            source: Some(disk(DISK)),
        }]
    );
}

#[test]
fn instance_insert_beta_states_disks_and_networks() {
    let parsed = event(fixture!("instances_insert_beta_restore"));
    assert_eq!(parsed.meta.name, "beta.compute.instances.insert");
    let tags = strings(&["ssh-open", "jump-sa@acme-prod.iam.gserviceaccount.com"]);
    assert_eq!(
        parsed.facts,
        vec![
            Fact::RestoredFrom {
                resource: instance(INSTANCE),
                snapshot: snapshot(SNAPSHOT),
            },
            Fact::Uses {
                instance: instance(INSTANCE),
                disk: disk(RESTORED_DISK),
            },
            // The image family of the third disk names no single image: no fact.
            Fact::NetworkMember {
                member: instance(INSTANCE),
                group: network(PROD_VPC),
                tags: tags.clone(),
            },
            Fact::NetworkMember {
                member: instance(INSTANCE),
                group: network(DEFAULT_VPC),
                tags,
            },
        ]
    );
}

#[test]
fn an_interface_without_network_joins_the_default_network_unless_it_names_a_subnetwork() {
    let raw = edited(fixture!("instances_insert_beta_restore"), |entry| {
        entry["protoPayload"]["request"]["networkInterfaces"] = serde_json::json!([
            {"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]},
            {"subnetwork": "regions/europe-west1/subnetworks/prod-eu"},
        ]);
        let request = entry["protoPayload"]["request"]
            .as_object_mut()
            .expect("request");
        request.remove("tags");
        request.remove("serviceAccounts");
        request.remove("disks");
    });
    assert_eq!(
        facts(&raw),
        vec![Fact::NetworkMember {
            member: instance(INSTANCE),
            group: network(DEFAULT_VPC),
            tags: vec![],
        }]
    );
}

#[test]
fn attach_disk_makes_the_instance_use_the_disk() {
    assert_eq!(
        facts(fixture!("instances_attachDisk")),
        vec![Fact::Uses {
            instance: instance(INSTANCE),
            disk: disk(RESTORED_DISK),
        }]
    );
}

// ---- firewalls ------------------------------------------------------------------------------

#[test]
fn firewall_insert_open_to_the_world_states_each_allowed_protocol() {
    assert_eq!(
        facts(fixture!("firewalls_insert_ssh_world")),
        vec![
            ingress(
                PROD_VPC,
                Protocol::Tcp,
                vec![
                    PortRange::single(22),
                    PortRange {
                        from: 8000,
                        to: 8080
                    }
                ],
                &["0.0.0.0/0"],
                &["ssh-open"],
                "allow-ssh-world",
            ),
            ingress(
                PROD_VPC,
                Protocol::Udp,
                vec![PortRange::ALL],
                &["0.0.0.0/0"],
                &["ssh-open"],
                "allow-ssh-world",
            ),
        ]
    );
}

#[test]
fn a_firewall_without_source_ranges_admits_anywhere() {
    assert_eq!(
        facts(fixture!("firewalls_insert_no_source_ranges")),
        vec![ingress(
            PROD_VPC,
            Protocol::All,
            vec![PortRange::ALL],
            &["0.0.0.0/0"],
            &["jump-sa@acme-prod.iam.gserviceaccount.com"],
            "allow-all-jump",
        )]
    );
}

#[test]
fn a_firewall_with_only_source_tags_opens_nothing_to_the_internet() {
    let raw = edited(fixture!("firewalls_insert_no_source_ranges"), |entry| {
        entry["protoPayload"]["request"]["sourceTags"] = serde_json::json!(["bastion"]);
    });
    assert_eq!(facts(&raw), vec![]);
}

#[test]
fn a_deny_rule_states_no_fact() {
    let parsed = event(fixture!("firewalls_insert_denied"));
    assert_eq!(parsed.meta.id, "-5tgb6yhn7uk1");
    assert_eq!(parsed.facts, vec![]);
}

#[test]
fn a_patch_without_network_is_taken_to_be_on_the_default_network() {
    let parsed = event(fixture!("firewalls_patch_no_network"));
    assert_eq!(parsed.meta.name, "v1.compute.firewalls.patch");
    assert_eq!(
        parsed.facts,
        vec![ingress(
            DEFAULT_VPC,
            Protocol::Tcp,
            vec![PortRange::single(3389)],
            &["198.51.100.0/24"],
            &[],
            "rdp-temp",
        )]
    );
}

#[test]
fn update_with_rest_spelling_egress_and_disabled_rules() {
    let update = edited(fixture!("firewalls_patch_no_network"), |entry| {
        entry["protoPayload"]["methodName"] = Value::from("beta.compute.firewalls.update");
        let request = entry["protoPayload"]["request"]
            .as_object_mut()
            .expect("request");
        let alloweds = request.remove("alloweds").expect("alloweds");
        request.insert("allowed".to_string(), alloweds);
        request.insert("network".to_string(), Value::from("default"));
    });
    assert_eq!(
        facts(&update),
        vec![ingress(
            DEFAULT_VPC,
            Protocol::Tcp,
            vec![PortRange::single(3389)],
            &["198.51.100.0/24"],
            &[],
            "rdp-temp",
        )]
    );
    let egress = edited(&update, |entry| {
        entry["protoPayload"]["request"]["direction"] = Value::from("EGRESS");
    });
    assert_eq!(facts(&egress), vec![]);
    let disabled = edited(&update, |entry| {
        entry["protoPayload"]["request"]["disabled"] = Value::Bool(true);
    });
    assert_eq!(facts(&disabled), vec![]);
}

#[test]
fn a_malformed_port_is_an_error_naming_the_field() {
    let raw = edited(fixture!("firewalls_insert_ssh_world"), |entry| {
        entry["protoPayload"]["request"]["alloweds"][0]["ports"] = serde_json::json!(["22-x"]);
    });
    match parse_entry(&raw) {
        Err(ParseError::InvalidField { field, reason }) => {
            assert_eq!(field, "protoPayload.request.alloweds.ports");
            assert!(reason.contains("22-x"), "{reason}");
        }
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

#[test]
fn icmp_opens_no_port() {
    let raw = edited(fixture!("firewalls_insert_ssh_world"), |entry| {
        entry["protoPayload"]["request"]["alloweds"] = serde_json::json!([{"IPProtocol": "icmp"}]);
    });
    assert_eq!(
        facts(&raw),
        vec![ingress(
            PROD_VPC,
            Protocol::Other,
            vec![],
            &["0.0.0.0/0"],
            &["ssh-open"],
            "allow-ssh-world",
        )]
    );
}

// ---- failures, automation, envelopes, garbage -----------------------------------------------

#[test]
fn a_failed_call_is_skipped() {
    assert_eq!(
        skipped(fixture!("instances_insert_permission_denied")),
        Skip::Failed
    );
    assert_eq!(
        skipped(fixture!("disks_insert_response_error")),
        Skip::Failed
    );
    // The same request, successful, would have stated a restore: the skip is the status.
    let succeeded = edited(fixture!("instances_insert_permission_denied"), |entry| {
        entry["protoPayload"]["status"] = serde_json::json!({});
    });
    assert_eq!(facts(&succeeded).len(), 1);
}

#[test]
fn a_google_service_agent_is_marked_as_automation() {
    let parsed = event(fixture!("firewalls_insert_gke_service_agent"));
    assert_eq!(
        parsed.meta.actor.as_deref(),
        Some("service-418273645019@container-engine-robot.iam.gserviceaccount.com")
    );
    assert_eq!(parsed.meta.automation.as_deref(), Some("gcp-service-agent"));
    assert_eq!(parsed.meta.source_ip.as_deref(), Some("private"));
    // Facts are still stated: the engine links them but raises no rule on them alone.
    assert_eq!(
        parsed.facts,
        vec![ingress(
            PROD_VPC,
            Protocol::Tcp,
            vec![PortRange::single(10250), PortRange::single(443)],
            &["172.16.0.0/28"],
            &["gke-prod-eu-7c1f3a2b-node"],
            "gke-prod-eu-7c1f3a2b-master",
        )]
    );
}

#[test]
fn service_agents_are_recognised_by_principal_only() {
    for principal in [
        "service-418273645019@compute-system.iam.gserviceaccount.com",
        "418273645019@cloudservices.gserviceaccount.com",
        "serviceAccount:service-418273645019@gcp-sa-backupdr.iam.gserviceaccount.com",
    ] {
        assert!(is_google_service_agent(principal), "{principal}");
    }
    for principal in [
        // A project's own service accounts and people are not agents, whatever their names.
        "418273645019-compute@developer.gserviceaccount.com",
        "service-account@acme-prod.iam.gserviceaccount.com",
        "service-12ab@acme-prod.iam.gserviceaccount.com",
        "cloudservices@acme.example",
        "service-418273645019@container-engine-robot.example.com",
    ] {
        assert!(!is_google_service_agent(principal), "{principal}");
    }
    // A resource named like GKE's does not make its creator an agent.
    let parsed = event(&edited(
        fixture!("firewalls_insert_gke_service_agent"),
        |entry| {
            entry["protoPayload"]["authenticationInfo"]["principalEmail"] = Value::from(OUTSIDER);
        },
    ));
    assert_eq!(parsed.meta.automation, None);
}

#[test]
fn a_structured_cloudevent_carries_the_log_entry() {
    let parsed = match parse_cloudevent(fixture!("cloudevent_snapshots_setIamPolicy")) {
        Ok(Parsed::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    };
    assert_eq!(parsed, event(fixture!("snapshots_setIamPolicy_allUsers")));
    assert_eq!(parsed.meta.id, "1f3kx8e2b9qa");
}

#[test]
fn cloudevents_of_other_types_are_irrelevant_and_broken_ones_errors() {
    let other_type = edited(fixture!("cloudevent_snapshots_setIamPolicy"), |event| {
        event["type"] = Value::from("google.cloud.storage.object.v1.finalized");
    });
    assert!(matches!(
        parse_cloudevent(&other_type),
        Ok(Parsed::Skipped(Skip::Irrelevant))
    ));
    let no_data = edited(fixture!("cloudevent_snapshots_setIamPolicy"), |event| {
        event.as_object_mut().expect("event").remove("data");
    });
    assert!(matches!(
        parse_cloudevent(&no_data),
        Err(ParseError::MissingField("data"))
    ));
    let data_as_text = edited(fixture!("cloudevent_snapshots_setIamPolicy"), |event| {
        event["data"] = Value::from(event["data"].to_string());
    });
    assert!(matches!(
        parse_cloudevent(&data_as_text),
        Ok(Parsed::Event(_))
    ));
    // A bare LogEntry is not a CloudEvent.
    assert!(matches!(
        parse_cloudevent(fixture!("snapshots_insert_v1")),
        Err(ParseError::MissingField("specversion"))
    ));
}

#[test]
fn other_methods_are_irrelevant() {
    let raw = edited(fixture!("instances_attachDisk"), |entry| {
        entry["protoPayload"]["methodName"] = Value::from("v1.compute.instances.start");
    });
    assert_eq!(skipped(&raw), Skip::Irrelevant);
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        parse_entry("not json at all"),
        Err(ParseError::InvalidJson(_))
    ));
    assert!(matches!(
        parse_entry("{\"insertId\": \"x\", "),
        Err(ParseError::InvalidJson(_))
    ));
    assert!(matches!(
        parse_entry("[1, 2, 3]"),
        Err(ParseError::UnknownFormat(_))
    ));
    assert!(matches!(
        parse_entry("{\"insertId\": \"x\", \"jsonPayload\": {}}"),
        Err(ParseError::UnknownFormat(_))
    ));
    assert!(matches!(
        parse_entry("{\"protoPayload\": {\"serviceName\": \"compute.googleapis.com\"}}"),
        Err(ParseError::MissingField("protoPayload.methodName"))
    ));
    assert!(matches!(
        parse_cloudevent("{\"specversion\": 1"),
        Err(ParseError::InvalidJson(_))
    ));
}

#[test]
fn entry_without_insert_id_gets_a_stable_content_id() {
    let full = event(fixture!("snapshots_insert_v1"));
    let no_id = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry.as_object_mut().expect("entry").remove("insertId");
    });
    let parsed = event(&no_id);
    assert!(parsed.meta.id.starts_with("sha256:"), "{}", parsed.meta.id);
    assert_eq!(parsed.facts, full.facts);
    assert_eq!(parsed.meta.time, full.meta.time);
    // The same record with other key order and spacing is the same record.
    let value: Value = serde_json::from_str(&no_id).expect("JSON");
    let pretty = serde_json::to_string_pretty(&value).expect("JSON");
    assert_eq!(event(&pretty).meta.id, parsed.meta.id);
    // Another record gets another id.
    let other = edited(&no_id, |entry| {
        entry["receiveTimestamp"] = Value::from("2024-04-12T16:14:04Z");
    });
    assert_ne!(event(&other).meta.id, parsed.meta.id);
    // An empty insertId is as good as none.
    let empty = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry["insertId"] = Value::from(" ");
    });
    assert!(event(&empty).meta.id.starts_with("sha256:"));
}

#[test]
fn entry_without_timestamp_takes_the_next_usable_time() {
    let no_timestamp = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry.as_object_mut().expect("entry").remove("timestamp");
    });
    assert_eq!(
        event(&no_timestamp).meta.time,
        time("2024-04-12T16:14:03.874312093Z")
    );
    // No log times at all: the operation's insert time in the response.
    let operation_only = edited(&no_timestamp, |entry| {
        entry
            .as_object_mut()
            .expect("entry")
            .remove("receiveTimestamp");
    });
    assert_eq!(
        event(&operation_only).meta.time,
        time("2024-04-12T16:14:03.512Z")
    );
    // An unreadable timestamp does not hide a readable receive time.
    let bad_time = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry["timestamp"] = Value::from("yesterday");
    });
    assert_eq!(
        event(&bad_time).meta.time,
        time("2024-04-12T16:14:03.874312093Z")
    );
}

#[test]
fn required_fields_are_reported_by_name() {
    let no_time_at_all = edited(fixture!("snapshots_insert_v1"), |entry| {
        let object = entry.as_object_mut().expect("entry");
        object.remove("timestamp");
        object.remove("receiveTimestamp");
        entry["protoPayload"]["response"] = Value::Null;
    });
    assert!(matches!(
        parse_entry(&no_time_at_all),
        Err(ParseError::MissingField("timestamp"))
    ));
    let bad_time = edited(fixture!("snapshots_insert_v1"), |entry| {
        entry["timestamp"] = Value::from("yesterday");
        entry
            .as_object_mut()
            .expect("entry")
            .remove("receiveTimestamp");
        entry["protoPayload"]["response"] = Value::Null;
    });
    assert!(matches!(
        parse_entry(&bad_time),
        Err(ParseError::InvalidField {
            field: "timestamp",
            ..
        })
    ));
    let no_subject = edited(fixture!("snapshots_setIamPolicy_allUsers"), |entry| {
        entry["protoPayload"]
            .as_object_mut()
            .expect("protoPayload")
            .remove("resourceName");
    });
    assert!(matches!(
        parse_entry(&no_subject),
        Err(ParseError::MissingField("protoPayload.resourceName"))
    ));
    let wrong_subject = edited(fixture!("snapshots_setIamPolicy_allUsers"), |entry| {
        entry["protoPayload"]["resourceName"] = Value::from(DISK);
    });
    assert!(matches!(
        parse_entry(&wrong_subject),
        Err(ParseError::InvalidField {
            field: "protoPayload.resourceName",
            ..
        })
    ));
}

#[test]
fn fields_of_unexpected_types_read_as_absent() {
    // Abridged samples put "..." where objects and lists belong.
    let raw = edited(fixture!("instances_insert_beta_restore"), |entry| {
        let request = entry["protoPayload"]["request"]
            .as_object_mut()
            .expect("request");
        request.insert("disks".to_string(), Value::from("..."));
        request.insert("networkInterfaces".to_string(), Value::from("..."));
        entry["protoPayload"]["requestMetadata"] = Value::from("...");
        entry["protoPayload"]["resourceLocation"] = Value::from("...");
    });
    let parsed = event(&raw);
    assert_eq!(parsed.facts, vec![]);
    assert_eq!(parsed.meta.source_ip, None);
}

/// Any JSON value, with keys the parser reads, so that the generated shapes reach its code.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9/:.@-]{0,40}".prop_map(Value::from),
        Just(Value::from(SNAPSHOT)),
        Just(Value::from("65536-1")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let key = prop_oneof![
            Just("name"),
            Just("sourceDisk"),
            Just("sourceSnapshot"),
            Just("sourceImage"),
            Just("policy"),
            Just("bindings"),
            Just("members"),
            Just("disks"),
            Just("source"),
            Just("initializeParams"),
            Just("networkInterfaces"),
            Just("network"),
            Just("tags"),
            Just("items"),
            Just("alloweds"),
            Just("IPProtocol"),
            Just("ports"),
            Just("sourceRanges"),
            Just("direction"),
            Just("disabled"),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_is_never_a_panic(raw in "\\PC{0,120}") {
        let _ = parse_entry(&raw);
        let _ = parse_cloudevent(&raw);
    }

    /// Every consumed method, whatever its request body holds: an outcome, never a panic.
    #[test]
    fn arbitrary_request_bodies_are_never_a_panic(request in any_json(), response in any_json()) {
        for raw in [
            fixture!("snapshots_insert_v1"),
            fixture!("disks_createSnapshot_beta"),
            fixture!("snapshots_setIamPolicy_allUsers"),
            fixture!("disks_insert_from_snapshot"),
            fixture!("images_insert_from_snapshot"),
            fixture!("instances_insert_beta_restore"),
            fixture!("instances_attachDisk"),
            fixture!("firewalls_insert_ssh_world"),
        ] {
            let raw = edited(raw, |entry| {
                entry["protoPayload"]["request"] = request.clone();
                entry["protoPayload"]["response"] = response.clone();
            });
            let _ = parse_entry(&raw);
        }
    }
}

// ---- the shared corpus of public samples ----------------------------------------------------

/// What each public sample must parse to. Samples that lack `insertId` get a content id;
/// abridged samples that also lack every time field are rejected, naming `timestamp`.
enum Expected {
    Event(usize),
    Skipped(Skip),
    Missing(&'static str),
    InvalidJson,
}

fn corpus_expectation(file_name: &str) -> Option<Expected> {
    Some(match file_name {
        "compute.disks.setIamPolicy_grant_external_user_stratus_abridged.json" => {
            Expected::Missing("timestamp")
        }
        "compute.disks.setIamPolicy_panther.json" => Expected::Event(1),
        "compute.firewalls.insert_by_GKE_service_agent_abridged.json" => {
            Expected::Skipped(Skip::Intermediate)
        }
        "compute.firewalls.insert_panther.json" => Expected::Event(0),
        "compute.firewalls.insert_tcp80_no_sourceRanges_scc_fixture.json" => Expected::Event(2),
        "compute.firewalls.patch_panther.json" => Expected::Event(0),
        "compute.images.setIamPolicy_panther.json" => Expected::Event(1),
        "compute.instances.insert_beta_southamerica_panther.json" => {
            Expected::Skipped(Skip::Intermediate)
        }
        "compute.instances.insert_error_panther.json" => Expected::Skipped(Skip::Failed),
        "compute.instances.insert_from_image_deployment_manager_elastic-integrations.json" => {
            Expected::Event(1)
        }
        // Abridged ("...") disks and interfaces: an event with nothing to link.
        "compute.instances.insert_with_service_account_panther.json" => Expected::Event(0),
        "compute.snapshots.insert_panther.json" => Expected::Event(1),
        "compute.snapshots.setIamPolicy_grant_external_user_stratus_abridged.json" => {
            Expected::Missing("timestamp")
        }
        name if name.ends_with(".INVALID_JSON.txt") => Expected::InvalidJson,
        _ => return None,
    })
}

#[test]
fn every_public_sample_parses_as_expected() {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/gcp"
    ));
    let Ok(listing) = std::fs::read_dir(dir) else {
        eprintln!("skipped: no corpus at {}", dir.display());
        return;
    };
    let mut checked = 0;
    for path in listing.filter_map(|item| item.ok()).map(|item| item.path()) {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(raw) = std::fs::read_to_string(&path) else {
            continue;
        };
        // Every sample, known or not, must parse without panicking.
        let outcome = parse_entry(&raw);
        let Some(expected) = corpus_expectation(&name) else {
            eprintln!("{name}: no expectation recorded; parsed as {outcome:?}");
            continue;
        };
        match (&expected, &outcome) {
            (Expected::Event(count), Ok(Parsed::Event(event))) => {
                assert_eq!(event.facts.len(), *count, "{name}: {:?}", event.facts);
                assert_eq!(event.meta.cloud, Cloud::Gcp, "{name}");
            }
            (Expected::Skipped(want), Ok(Parsed::Skipped(got))) => {
                assert_eq!(got, want, "{name}");
            }
            (Expected::Missing(want), Err(ParseError::MissingField(got))) => {
                assert_eq!(got, want, "{name}");
            }
            (Expected::InvalidJson, Err(ParseError::InvalidJson(_))) => {}
            _ => panic!("{name}: unexpected outcome {outcome:?}"),
        }
        checked += 1;
    }
    eprintln!("checked {checked} corpus samples");
}

#[test]
fn public_samples_state_the_expected_facts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/gcp/");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}{name}")).ok();
    let Some(scc) = read("compute.firewalls.insert_tcp80_no_sourceRanges_scc_fixture.json") else {
        eprintln!("skipped: no corpus at {dir}");
        return;
    };
    let scc_network = "projects/scc-log-pubsub/global/networks/default";
    assert_eq!(
        facts(&scc),
        vec![
            ingress(
                scc_network,
                Protocol::Tcp,
                vec![PortRange::single(80)],
                &["0.0.0.0/0"],
                &[],
                "firewall-rule-01",
            ),
            ingress(
                scc_network,
                Protocol::Other,
                vec![],
                &["0.0.0.0/0"],
                &[],
                "firewall-rule-01",
            ),
        ]
    );
    if let Some(deployment) =
        read("compute.instances.insert_from_image_deployment_manager_elastic-integrations.json")
    {
        let parsed = event(&deployment);
        // Deployment Manager acts through the project's cloudservices agent.
        assert_eq!(parsed.meta.automation.as_deref(), Some("gcp-service-agent"));
        assert_eq!(
            parsed.facts,
            vec![Fact::NetworkMember {
                member: instance("projects/project-id/zones/us-central1-a/instances/x-logs"),
                group: network("projects/project-id/global/networks/x-logs-network"),
                tags: strings(&["x-logs-sa@project-id.iam.gserviceaccount.com"]),
            }]
        );
    }
    if let Some(disk_share) = read("compute.disks.setIamPolicy_panther.json") {
        let parsed = event(&disk_share);
        assert_eq!(parsed.meta.id, "1abcd23efg456");
        assert_eq!(parsed.meta.source_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(
            parsed.facts,
            vec![Fact::SnapshotShared {
                snapshot: disk("projects/test-project/zones/us-central1-a/disks/disk-1"),
                audience: Audience::Principals(strings(&["user:anonymized@example.com"])),
            }]
        );
    }
}

// ---- sweep: every consumed method, in each payload variant the audit log writes -------------

fn kinds(facts: &[Fact]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for fact in facts {
        if !out.contains(&fact.kind_name()) {
            out.push(fact.kind_name());
        }
    }
    out
}

fn read_fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/gcp/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Issue 10's sweep: for every consumed method, the facts its rules need come out of the entry
/// as logged, and out of each half of the payload that documents them (an exporter or a sink
/// filter may drop `request` or `response`). Columns: fixture, kinds as logged, with only
/// `request`, with only `response`.
#[test]
fn every_consumed_method_states_its_rule_facts_in_each_payload_variant() {
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    const SHARED: &[&str] = &["snapshot_shared"];
    const INGRESS: &[&str] = &["ingress_opened"];
    let table: &[Row] = &[
        (
            "snapshots_insert_v1",
            &["snapshot_created"],
            &["snapshot_created"],
            &["snapshot_created"],
        ),
        // The operation in the response targets the disk: without the request the snapshot's
        // name is unknown, and the entry is rejected naming the field.
        (
            "disks_createSnapshot_beta",
            &["snapshot_created"],
            &["snapshot_created"],
            &["rejected: protoPayload.request.name"],
        ),
        ("snapshots_setIamPolicy_allUsers", SHARED, SHARED, SHARED),
        (
            "snapshots_setIamPolicy_external_user",
            SHARED,
            SHARED,
            SHARED,
        ),
        ("images_setIamPolicy_domain", SHARED, SHARED, SHARED),
        ("disks_setIamPolicy_mixed_members", SHARED, SHARED, SHARED),
        // Regional disks log the zonal shapes under `regions/…`.
        (
            "regionDisks_setIamPolicy_mixed_members",
            SHARED,
            SHARED,
            SHARED,
        ),
        (
            "regionDisks_createSnapshot_beta",
            &["snapshot_created"],
            &["snapshot_created"],
            &["rejected: protoPayload.request.name"],
        ),
        (
            "regionDisks_insert_from_snapshot",
            &["restored_from"],
            &["restored_from"],
            &[],
        ),
        (
            "disks_insert_from_snapshot",
            &["restored_from"],
            &["restored_from"],
            &[],
        ),
        (
            "images_insert_from_snapshot",
            &["image_registered"],
            &["image_registered"],
            &[],
        ),
        (
            "instances_insert_beta_restore",
            &["restored_from", "uses", "network_member"],
            &["restored_from", "uses", "network_member"],
            &[],
        ),
        ("instances_attachDisk", &["uses"], &["uses"], &[]),
        ("firewalls_insert_ssh_world", INGRESS, INGRESS, &[]),
        ("firewalls_patch_no_network", INGRESS, INGRESS, &[]),
        (
            "cloudsql_instances_restoreBackup",
            &["restored_from"],
            &["restored_from"],
            &[],
        ),
        (
            "cloudsql_instances_clone",
            &["restored_from"],
            &["restored_from"],
            &[],
        ),
        (
            "cloudsql_instances_update_authorized_world",
            &["public_endpoint"],
            &["public_endpoint"],
            &[],
        ),
        (
            "cloudsql_instances_create_public",
            &["public_endpoint"],
            &["public_endpoint"],
            &[],
        ),
    ];
    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for (name, full, request_only, response_only) in table {
        let raw = read_fixture(name);
        let strip = |field: &str| {
            edited(&raw, |entry| {
                if let Some(payload) = entry["protoPayload"].as_object_mut() {
                    payload.remove(field);
                }
            })
        };
        let variants = [
            ("as logged", raw.clone(), *full),
            ("request only", strip("response"), *request_only),
            ("response only", strip("request"), *response_only),
        ];
        for (variant, record, want) in variants {
            match parse_entry(&record) {
                Ok(Parsed::Event(parsed)) => {
                    if variant == "as logged" {
                        covered.push(consumed_suffix(&parsed.meta.name).unwrap_or_default());
                    }
                    let got = kinds(&parsed.facts);
                    if got != want {
                        failures.push(format!("{name} ({variant}): {got:?}, want {want:?}"));
                    }
                }
                Err(ParseError::MissingField(field))
                    if want == [format!("rejected: {field}").as_str()] => {}
                other => failures.push(format!("{name} ({variant}): {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for suffix in CONSUMED_METHODS {
        // firewalls.update shares the patch shape; its own test covers the REST spelling.
        if *suffix == "compute.firewalls.update" {
            continue;
        }
        assert!(covered.contains(suffix), "{suffix}: no row in the sweep");
    }
}

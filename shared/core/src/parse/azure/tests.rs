//! Parser tests over the project's own fixtures (`tests/fixtures/azure/`), written in the
//! three real shapes, plus a smoke test over the public sample corpus when it is present.

use super::*;
use crate::model::{Fact, PortRange, Protocol, Resource};
use serde_json::json;
use std::path::Path;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../../../tests/fixtures/azure/", $name))
    };
}

const SUBSCRIPTION: &str = "3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b";
const PROVIDERS: &str =
    "/subscriptions/3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b/resourcegroups/prod-data-rg/providers";
const UPN: &str = "j.doe@fabrikam-corp.onmicrosoft.com";
const SP_OBJECT_ID: &str = "a1b2c3d4-0e1f-4a2b-9c3d-4e5f6a7b8c9d";

fn id(tail: &str) -> String {
    format!("{PROVIDERS}/{tail}")
}

fn snapshot() -> Resource {
    Resource::new(
        ResourceKind::Snapshot,
        id("microsoft.compute/snapshots/sqlvm01-osdisk-snap"),
    )
}

fn snapshot_copy() -> Resource {
    Resource::new(
        ResourceKind::Snapshot,
        id("microsoft.compute/snapshots/sqlvm01-osdisk-snap-copy"),
    )
}

fn disk(name: &str) -> Resource {
    Resource::new(
        ResourceKind::Disk,
        id(&format!("microsoft.compute/disks/{name}")),
    )
}

fn nsg() -> Resource {
    Resource::new(
        ResourceKind::NetworkGroup,
        id("microsoft.network/networksecuritygroups/jump-vm-nsg"),
    )
}

fn event(raw: &str) -> ParsedEvent {
    match parse_record(raw) {
        Ok(Parsed::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn skipped(raw: &str) -> Skip {
    match parse_record(raw) {
        Ok(Parsed::Skipped(skip)) => skip,
        other => panic!("expected a skip, got {other:?}"),
    }
}

/// The fixture with one edit applied, for variants of a real shape.
fn edited(raw: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut record: Value = serde_json::from_str(raw).unwrap();
    edit(&mut record);
    record.to_string()
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn consumed_operations_are_the_operation_table_in_lower_case() {
    let names: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(CONSUMED_OPERATIONS, names.as_slice());
    for name in CONSUMED_OPERATIONS {
        assert_eq!(*name, name.to_ascii_lowercase());
    }
}

#[test]
fn operation_names_match_in_any_case() {
    assert!(is_consumed("MICROSOFT.COMPUTE/SNAPSHOTS/WRITE"));
    assert!(is_consumed("Microsoft.Compute/disks/beginGetAccess/action"));
    assert!(is_consumed(
        " microsoft.network/networkSecurityGroups/securityRules/write "
    ));
    assert!(!is_consumed("Microsoft.Compute/snapshots/delete"));
    assert!(!is_consumed("Microsoft.Compute/snapshots/write/extra"));
    assert!(!is_consumed(
        "Microsoft.Storage/storageAccounts/listKeys/action"
    ));
    assert!(!is_consumed(""));
}

#[test]
fn rest_export_snapshot_write_states_creation_from_the_disk() {
    let event = event(fixture!("rest_snapshot_write_succeeded.json"));
    let meta = &event.meta;
    assert_eq!(meta.id, "9e8d7c6b-5a49-4382-b1c0-d9e8f7a6b5c4");
    assert_eq!(meta.name, "Microsoft.Compute/snapshots/write");
    assert_eq!(meta.time, time("2024-04-15T09:12:07.9918823Z"));
    assert_eq!(meta.actor.as_deref(), Some(UPN));
    // REST exports have no callerIpAddress: the request's client address is next.
    assert_eq!(meta.source_ip.as_deref(), Some("203.0.113.47"));
    assert_eq!(meta.cloud, Cloud::Azure);
    assert_eq!(meta.account, SUBSCRIPTION);
    // No record-level location in REST exports: the body says where the snapshot lives.
    assert_eq!(meta.region.as_deref(), Some("westeurope"));
    assert_eq!(meta.automation, None);
    assert_eq!(
        event.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot(),
            source: Some(disk("sqlvm01-osdisk")),
        }]
    );
}

#[test]
fn rest_export_started_record_is_intermediate_even_with_a_request_body() {
    assert_eq!(
        skipped(fixture!("rest_snapshot_write_started.json")),
        Skip::Intermediate
    );
}

#[test]
fn started_results_in_any_spelling_are_intermediate_and_accepted_is_evidence() {
    for result in ["Start", "STARTED", "Started."] {
        let raw = edited(fixture!("diag_snapshot_copy_success.json"), |r| {
            r["resultType"] = json!(result)
        });
        assert_eq!(skipped(&raw), Skip::Intermediate, "{result}");
    }
    // Accepted ends the request (HTTP 202) and often is the only record with the body.
    for result in ["Succeeded", "SUCCESS", "success", "Accepted", "Accept"] {
        let raw = edited(fixture!("diag_snapshot_copy_success.json"), |r| {
            r["resultType"] = json!(result)
        });
        assert!(
            matches!(parse_record(&raw), Ok(Parsed::Event(_))),
            "{result}"
        );
    }
    for result in ["Failed", "Canceled"] {
        let raw = edited(fixture!("rest_snapshot_write_succeeded.json"), |r| {
            r["status"] = json!({"value": result, "localizedValue": result})
        });
        assert_eq!(skipped(&raw), Skip::Failed, "{result}");
    }
}

#[test]
fn diagnostic_start_and_success_of_one_copy_only_success_states_facts() {
    assert_eq!(
        skipped(fixture!("diag_snapshot_copy_start.json")),
        Skip::Intermediate
    );
    let event = event(fixture!("diag_snapshot_copy_success.json"));
    assert_eq!(event.meta.name, "MICROSOFT.COMPUTE/SNAPSHOTS/WRITE");
    assert_eq!(
        event.meta.id,
        format!(
            "c0ffee00-1234-4abc-9def-0123456789ab:microsoft.compute/snapshots/write:success:{}:2024-04-15T09:20:14.771023600Z",
            snapshot_copy().id
        )
    );
    // A service principal: no UPN, caller or name claim, so its object id.
    assert_eq!(event.meta.actor.as_deref(), Some(SP_OBJECT_ID));
    assert_eq!(event.meta.source_ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(event.meta.account, SUBSCRIPTION);
    assert_eq!(event.meta.region.as_deref(), Some("northeurope"));
    assert_eq!(
        event.facts,
        vec![Fact::SnapshotCopied {
            snapshot: snapshot_copy(),
            source: snapshot(),
        }]
    );
}

#[test]
fn start_and_success_records_sharing_a_correlation_id_get_different_ids() {
    let id_of = |raw: &str| {
        let record = Envelope::read(raw).unwrap();
        let resource = ids::normalize(record.resource_id.as_deref().unwrap()).unwrap();
        let time = parse_time("time", record.time.as_deref().unwrap()).unwrap();
        record
            .event_id(&resource, record.result.as_deref().unwrap(), time)
            .unwrap()
    };
    let start = id_of(fixture!("diag_snapshot_copy_start.json"));
    let success = id_of(fixture!("diag_snapshot_copy_success.json"));
    assert!(start.starts_with("c0ffee00-1234-4abc-9def-0123456789ab:"));
    assert!(success.starts_with("c0ffee00-1234-4abc-9def-0123456789ab:"));
    assert_ne!(start, success);
    // A redelivery is the same record, so the same id.
    assert_eq!(success, id_of(fixture!("diag_snapshot_copy_success.json")));
    // Two resources written under one deployment's correlation id stay apart.
    let other_resource = edited(fixture!("diag_snapshot_copy_success.json"), |r| {
        r["resourceId"] = json!(snapshot().id)
    });
    assert_ne!(success, id_of(&other_resource));
}

#[test]
fn diagnostic_disk_write_with_a_snapshot_source_is_a_restore() {
    let event = event(fixture!("diag_disk_write_restore_success.json"));
    assert_eq!(event.meta.name, "MICROSOFT.COMPUTE/DISKS/WRITE");
    assert_eq!(event.meta.actor.as_deref(), Some(UPN));
    assert_eq!(event.meta.source_ip.as_deref(), Some("203.0.113.47"));
    assert_eq!(event.meta.region.as_deref(), Some("westeurope"));
    assert_eq!(event.meta.time, time("2024-04-15T09:31:40.1187654Z"));
    // Both ids arrive upper-case or mixed-case and come out in one canonical form.
    assert_eq!(
        event.facts,
        vec![Fact::RestoredFrom {
            resource: disk("restored-osdisk"),
            snapshot: snapshot(),
        }]
    );
}

#[test]
fn failed_record_is_skipped_as_failed() {
    assert_eq!(
        skipped(fixture!("diag_disk_write_failed.json")),
        Skip::Failed
    );
}

#[test]
fn malformed_body_keeps_what_the_record_says() {
    let event = event(fixture!("diag_snapshot_write_malformed_body.json"));
    assert_eq!(
        event.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot(),
            source: None,
        }]
    );
    assert_eq!(event.meta.region, None);
}

#[test]
fn undecodable_response_body_falls_back_to_the_request_body() {
    let event = event(fixture!("diag_disk_write_request_fallback.json"));
    assert_eq!(
        event.facts,
        vec![Fact::RestoredFrom {
            resource: disk("restored-datadisk"),
            snapshot: snapshot(),
        }]
    );
}

#[test]
fn disk_write_from_a_disk_or_a_blob_is_not_a_restore() {
    for source in [
        json!({"createOption": "Copy", "sourceResourceId": disk("sqlvm01-osdisk").id}),
        json!({"createOption": "Import", "sourceUri": "https://acct.blob.core.windows.net/vhds/a.vhd"}),
        json!({"createOption": "Empty"}),
    ] {
        let raw = edited(fixture!("diag_disk_write_restore_success.json"), |r| {
            let body = json!({"location": "westeurope", "properties": {"creationData": source}});
            r["properties"]["responseBody"] = json!(body.to_string());
        });
        assert_eq!(event(&raw).facts, vec![], "{raw}");
    }
}

#[test]
fn event_grid_snapshot_export_is_a_sas_url_export() {
    let event = event(fixture!("eventgrid_snapshot_begingetaccess.json"));
    assert_eq!(event.meta.id, "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9");
    assert_eq!(
        event.meta.name,
        "Microsoft.Compute/snapshots/beginGetAccess/action"
    );
    assert_eq!(event.meta.time, time("2024-04-15T09:40:22.4410098Z"));
    assert_eq!(event.meta.actor.as_deref(), Some(UPN));
    // The request's address wins over the token's `ipaddr` claim (203.0.113.99).
    assert_eq!(event.meta.source_ip.as_deref(), Some("203.0.113.47"));
    assert_eq!(event.meta.account, SUBSCRIPTION);
    assert_eq!(event.meta.region, None);
    assert_eq!(
        event.facts,
        vec![Fact::SnapshotExported {
            snapshot: snapshot(),
            method: "sas-url".to_owned(),
        }]
    );
}

#[test]
fn cloudevents_disk_export_is_a_sas_url_export_of_the_disk() {
    let event = event(fixture!("cloudevent_disk_begingetaccess.json"));
    assert_eq!(event.meta.id, "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a");
    assert_eq!(event.meta.time, time("2024-04-15T09:41:05.0912345Z"));
    assert_eq!(event.meta.actor.as_deref(), Some(SP_OBJECT_ID));
    assert_eq!(event.meta.source_ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(
        event.facts,
        vec![Fact::SnapshotExported {
            snapshot: disk("sqlvm01-osdisk"),
            method: "sas-url".to_owned(),
        }]
    );
}

#[test]
fn event_grid_disk_write_has_no_body_and_so_no_facts_yet() {
    let event = event(fixture!("eventgrid_disk_write.json"));
    assert_eq!(event.meta.id, "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e");
    assert_eq!(event.meta.name, "Microsoft.Compute/disks/write");
    assert_eq!(event.facts, vec![]);
}

#[test]
fn event_grid_failure_events_are_failed() {
    let without_status = edited(fixture!("eventgrid_disk_write.json"), |r| {
        r["eventType"] = json!("Microsoft.Resources.ResourceWriteFailure");
        r["data"].as_object_mut().unwrap().remove("status");
    });
    assert_eq!(skipped(&without_status), Skip::Failed);
    let failed_status = edited(fixture!("eventgrid_disk_write.json"), |r| {
        r["data"]["status"] = json!("Failed")
    });
    assert_eq!(skipped(&failed_status), Skip::Failed);
}

#[test]
fn event_grid_delivery_arrays_are_split_by_the_caller() {
    let array = format!("[{}]", fixture!("eventgrid_disk_write.json"));
    assert!(matches!(
        parse_record(&array),
        Err(ParseError::UnknownFormat(_))
    ));
}

#[test]
fn event_grid_events_that_are_not_resource_events_are_irrelevant() {
    let validation = json!({
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": format!("/subscriptions/{SUBSCRIPTION}"),
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-04-15T09:00:00.000Z",
        "metadataVersion": "1",
        "dataVersion": "1"
    });
    assert_eq!(skipped(&validation.to_string()), Skip::Irrelevant);
}

#[test]
fn vm_write_uses_its_managed_disks_and_joins_its_nics() {
    let event = event(fixture!("rest_vm_write_succeeded.json"));
    let vm = Resource::new(
        ResourceKind::Instance,
        id("microsoft.compute/virtualmachines/jump-vm"),
    );
    let nic = |name: &str| {
        Resource::new(
            ResourceKind::NetworkInterface,
            id(&format!("microsoft.network/networkinterfaces/{name}")),
        )
    };
    let uses = |d: Resource| Fact::Uses {
        instance: vm.clone(),
        disk: d,
    };
    let member = |group: Resource| Fact::NetworkMember {
        member: vm.clone(),
        group,
        tags: vec![],
    };
    assert_eq!(
        event.facts,
        vec![
            uses(disk("restored-osdisk")),
            uses(disk("restored-datadisk")),
            uses(disk("scratch-datadisk")),
            member(nic("jump-vm-nic")),
            member(nic("jump-vm-nic-2")),
        ]
    );
}

#[test]
fn nic_write_joins_the_nsg() {
    let event = event(fixture!("diag_nic_write_success.json"));
    assert_eq!(
        event.facts,
        vec![Fact::NetworkMember {
            member: Resource::new(
                ResourceKind::NetworkInterface,
                id("microsoft.network/networkinterfaces/jump-vm-nic"),
            ),
            group: nsg(),
            tags: vec![],
        }]
    );
}

#[test]
fn security_rule_allowing_ssh_from_the_internet_opens_ingress() {
    let event = event(fixture!("diag_rule_write_ssh_internet.json"));
    assert_eq!(
        event.facts,
        vec![Fact::IngressOpened {
            group: nsg(),
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(22)],
            sources: vec!["Internet".to_owned()],
            target_tags: vec![],
            rule: Some("Allow-SSH-Inbound".to_owned()),
        }]
    );
}

#[test]
fn security_rule_with_port_and_prefix_lists_in_a_flat_body() {
    let event = event(fixture!("rest_rule_write_ranges.json"));
    assert_eq!(
        event.facts,
        vec![Fact::IngressOpened {
            group: nsg(),
            protocol: Protocol::All,
            ports: vec![
                PortRange::single(22),
                PortRange::single(3389),
                PortRange {
                    from: 8000,
                    to: 8100
                },
            ],
            sources: vec!["0.0.0.0/0".to_owned(), "198.51.100.0/24".to_owned()],
            target_tags: vec![],
            // The flat body has no name: the rule's name comes from its id, as logged.
            rule: Some("Admin-Ports".to_owned()),
        }]
    );
}

#[test]
fn deny_and_outbound_rules_open_nothing() {
    assert_eq!(event(fixture!("diag_rule_write_deny.json")).facts, vec![]);
    assert_eq!(
        event(fixture!("diag_rule_write_outbound.json")).facts,
        vec![]
    );
}

#[test]
fn rule_protocols_and_wildcard_ports_map_to_the_model() {
    for (protocol, want) in [
        ("*", Protocol::All),
        ("TCP", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("Icmp", Protocol::Other),
        ("Esp", Protocol::Other),
    ] {
        let raw = edited(fixture!("rest_rule_write_ranges.json"), |r| {
            let body = json!({"protocol": protocol, "destinationPortRange": "*", "sourceAddressPrefix": "*",
                              "access": "allow", "direction": "inbound"});
            r["properties"]["requestbody"] = json!(body.to_string());
        });
        let facts = event(&raw).facts;
        let [Fact::IngressOpened {
            protocol: got,
            ports,
            sources,
            ..
        }] = facts.as_slice()
        else {
            panic!("expected one ingress fact, got {facts:?}");
        };
        assert_eq!(*got, want, "{protocol}");
        assert_eq!(ports, &vec![PortRange::ALL]);
        assert_eq!(sources, &vec!["*".to_owned()]);
    }
}

#[test]
fn unreadable_port_range_is_an_invalid_field() {
    let raw = edited(fixture!("diag_rule_write_ssh_internet.json"), |r| {
        let body = json!({"properties": {"protocol": "Tcp", "destinationPortRange": "ssh",
                          "sourceAddressPrefix": "*", "access": "Allow", "direction": "Inbound"}});
        r["properties"]["responseBody"] = json!(body.to_string());
    });
    assert!(matches!(
        parse_record(&raw),
        Err(ParseError::InvalidField {
            field: "destinationPortRange",
            ..
        })
    ));
}

#[test]
fn nsg_write_opens_ingress_only_for_its_inbound_allow_rules() {
    let event = event(fixture!("diag_nsg_write_inline_rules.json"));
    // The display-name location is normalised to the ARM name.
    assert_eq!(event.meta.region.as_deref(), Some("westeurope"));
    assert_eq!(
        event.facts,
        vec![Fact::IngressOpened {
            group: nsg(),
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(3389)],
            sources: vec!["*".to_owned()],
            target_tags: vec![],
            rule: Some("Allow-RDP".to_owned()),
        }]
    );
}

#[test]
fn image_write_over_snapshots_registers_the_image() {
    let event = event(fixture!("rest_image_write_from_snapshots.json"));
    assert_eq!(
        event.facts,
        vec![Fact::ImageRegistered {
            image: Resource::new(
                ResourceKind::Image,
                id("microsoft.compute/images/golden-image")
            ),
            snapshots: vec![snapshot(), snapshot_copy()],
        }]
    );
}

#[test]
fn image_captured_from_a_vm_registers_the_image_without_snapshots() {
    let with_body = |body: Value| {
        edited(fixture!("rest_image_write_from_snapshots.json"), |r| {
            r["properties"]["responseBody"] = json!(body.to_string())
        })
    };
    let vm_id = id("microsoft.compute/virtualmachines/jump-vm");
    let captured = event(&with_body(
        json!({"properties": {"sourceVirtualMachine": {"id": vm_id}}}),
    ));
    assert_eq!(
        captured.facts,
        vec![Fact::ImageRegistered {
            image: Resource::new(
                ResourceKind::Image,
                id("microsoft.compute/images/golden-image")
            ),
            snapshots: vec![],
        }]
    );
    let from_blob = event(&with_body(json!({"properties": {"storageProfile": {
        "osDisk": {"blobUri": "https://acct.blob.core.windows.net/vhds/a.vhd"}}}})));
    assert_eq!(from_blob.facts, vec![]);
}

#[test]
fn records_without_a_body_state_what_the_record_alone_says() {
    let minimal = |operation: &str, resource: &str| {
        json!({
            "time": "2024-04-15T10:00:00.0000000Z",
            "resourceId": resource,
            "operationName": operation,
            "category": "Administrative",
            "resultType": "Success",
            "callerIpAddress": "203.0.113.47",
            "correlationId": "11111111-2222-4333-8444-555555555555",
            "level": "Informational",
            "location": "westeurope",
        })
        .to_string()
    };
    let snapshot_write = event(&minimal(
        "MICROSOFT.COMPUTE/SNAPSHOTS/WRITE",
        &snapshot().id,
    ));
    assert_eq!(
        snapshot_write.facts,
        vec![Fact::SnapshotCreated {
            snapshot: snapshot(),
            source: None,
        }]
    );
    assert_eq!(snapshot_write.meta.actor, None);
    let disk_export = event(&minimal(
        "Microsoft.Compute/disks/beginGetAccess/action",
        &disk("sqlvm01-osdisk").id.to_ascii_uppercase(),
    ));
    assert_eq!(
        disk_export.facts,
        vec![Fact::SnapshotExported {
            snapshot: disk("sqlvm01-osdisk"),
            method: "sas-url".to_owned(),
        }]
    );
    for (operation, resource) in [
        ("Microsoft.Compute/disks/write", disk("restored-osdisk").id),
        (
            "Microsoft.Compute/virtualMachines/write",
            id("microsoft.compute/virtualmachines/jump-vm"),
        ),
        ("Microsoft.Network/networkSecurityGroups/write", nsg().id),
        (
            "Microsoft.Network/networkSecurityGroups/securityRules/write",
            format!("{}/securityrules/r1", nsg().id),
        ),
        (
            "Microsoft.Network/networkInterfaces/write",
            id("microsoft.network/networkinterfaces/jump-vm-nic"),
        ),
        (
            "Microsoft.Compute/images/write",
            id("microsoft.compute/images/golden-image"),
        ),
    ] {
        assert_eq!(
            event(&minimal(operation, &resource)).facts,
            vec![],
            "{operation}"
        );
    }
}

#[test]
fn export_action_path_appended_to_the_resource_id_is_tolerated() {
    let raw = edited(fixture!("eventgrid_snapshot_begingetaccess.json"), |r| {
        r["data"]["resourceUri"] = json!(format!("{}/beginGetAccess", snapshot().id))
    });
    assert_eq!(
        event(&raw).facts,
        vec![Fact::SnapshotExported {
            snapshot: snapshot(),
            method: "sas-url".to_owned(),
        }]
    );
}

#[test]
fn actor_falls_back_from_upn_to_caller_name_object_id_and_app_id() {
    const UPN_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
    const LONG_NAME_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
    const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
    let actor_without = |caller: Option<&str>, removed_claims: &[&str]| {
        let raw = edited(fixture!("rest_snapshot_write_succeeded.json"), |r| {
            match caller {
                Some(caller) => r["caller"] = json!(caller),
                None => {
                    r.as_object_mut().unwrap().remove("caller");
                }
            }
            let claims = r["claims"].as_object_mut().unwrap();
            for claim in removed_claims {
                claims.remove(*claim);
            }
        });
        event(&raw).meta.actor
    };
    let other = "someone@fabrikam-corp.onmicrosoft.com";
    assert_eq!(actor_without(Some(other), &[]).as_deref(), Some(UPN));
    assert_eq!(
        actor_without(Some(other), &[UPN_CLAIM]).as_deref(),
        Some(other)
    );
    // Without UPN and caller, the long-form name claim (here the sign-in name) comes first.
    assert_eq!(actor_without(None, &[UPN_CLAIM]).as_deref(), Some(UPN));
    assert_eq!(
        actor_without(None, &[UPN_CLAIM, LONG_NAME_CLAIM]).as_deref(),
        Some("Jamie Doe")
    );
    assert_eq!(
        actor_without(None, &[UPN_CLAIM, LONG_NAME_CLAIM, "name"]).as_deref(),
        Some("5c0a9e1f-2b3d-4c4e-8f5a-6b7c8d9e0f1a")
    );
    assert_eq!(
        actor_without(None, &[UPN_CLAIM, LONG_NAME_CLAIM, "name", OBJECT_ID_CLAIM]).as_deref(),
        Some("04b07795-8ddb-461a-bbee-02f9e1bf7b46")
    );
    assert_eq!(
        actor_without(
            None,
            &[UPN_CLAIM, LONG_NAME_CLAIM, "name", OBJECT_ID_CLAIM, "appid"]
        ),
        None
    );
}

#[test]
fn source_ip_skips_redacted_and_placeholder_addresses() {
    let raw = edited(fixture!("diag_disk_write_restore_success.json"), |r| {
        r["callerIpAddress"] = json!("<Redacted>");
        r["identity"]["claims"]["ipaddr"] = json!("2001:db8::17");
    });
    assert_eq!(event(&raw).meta.source_ip.as_deref(), Some("2001:db8::17"));
    let raw = edited(fixture!("diag_disk_write_restore_success.json"), |r| {
        r["callerIpAddress"] = json!("{IP-address}");
        r["identity"]["claims"]["ipaddr"] = json!("<Redacted>");
    });
    assert_eq!(event(&raw).meta.source_ip, None);
}

#[test]
fn identity_given_as_a_string_is_not_an_error() {
    let raw = edited(fixture!("diag_disk_write_restore_success.json"), |r| {
        r["identity"] = json!("Jamie Doe")
    });
    assert_eq!(event(&raw).meta.actor, None);
}

#[test]
fn irrelevant_operations_are_skipped_before_anything_else_is_checked() {
    assert_eq!(
        skipped(fixture!("diag_storage_listkeys.json")),
        Skip::Irrelevant
    );
    let broken_but_irrelevant = json!({
        "operationName": {"value": "Microsoft.Compute/snapshots/delete"},
        "eventTimestamp": "not a time",
        "status": {"value": "Whatever"},
    });
    assert_eq!(
        skipped(&broken_but_irrelevant.to_string()),
        Skip::Irrelevant
    );
}

#[test]
fn bad_input_is_a_parse_error_that_says_what_is_wrong() {
    let success = fixture!("diag_disk_write_restore_success.json");
    let missing = |field: &str| {
        edited(success, |r| {
            r.as_object_mut().unwrap().remove(field);
        })
    };
    let error = |raw: &str| parse_record(raw).expect_err(raw);

    assert!(matches!(
        error("{\"operationName\": "),
        ParseError::InvalidJson(_)
    ));
    assert!(matches!(error("\"text\""), ParseError::UnknownFormat(_)));
    assert!(matches!(error(""), ParseError::UnknownFormat(_)));
    assert!(matches!(
        error(&missing("operationName")),
        ParseError::MissingField("operationName")
    ));
    assert!(matches!(
        error(&missing("resultType")),
        ParseError::MissingField("resultType")
    ));
    assert!(matches!(
        error(&missing("resourceId")),
        ParseError::MissingField("resourceId")
    ));
    assert!(matches!(
        error(&missing("time")),
        ParseError::MissingField("time")
    ));
    assert!(matches!(
        error(&missing("correlationId")),
        ParseError::MissingField("correlationId")
    ));

    let edit = |f: fn(&mut Value)| edited(success, f);
    assert!(matches!(
        error(&edit(|r| r["time"] = json!("yesterday"))),
        ParseError::InvalidField { field: "time", .. }
    ));
    assert!(matches!(
        error(&edit(|r| r["resultType"] = json!("Maybe"))),
        ParseError::InvalidField {
            field: "resultType",
            ..
        }
    ));
    assert!(matches!(
        error(&edit(|r| r["resourceId"] = json!("restored-osdisk"))),
        ParseError::InvalidField {
            field: "resourceId",
            ..
        }
    ));
    // A snapshot operation on a disk id is not a snapshot operation we can trust.
    assert!(matches!(
        error(&edit(
            |r| r["operationName"] = json!("MICROSOFT.COMPUTE/SNAPSHOTS/WRITE")
        )),
        ParseError::InvalidField {
            field: "resourceId",
            ..
        }
    ));
    // A security rule write must name a rule under an NSG.
    let rule_on_group = edited(fixture!("diag_rule_write_ssh_internet.json"), |r| {
        r["resourceId"] = json!(nsg().id)
    });
    assert!(matches!(
        error(&rule_on_group),
        ParseError::InvalidField {
            field: "resourceId",
            ..
        }
    ));
    let event_grid_without_operation = edited(fixture!("eventgrid_disk_write.json"), |r| {
        r["data"].as_object_mut().unwrap().remove("operationName");
    });
    assert!(matches!(
        error(&event_grid_without_operation),
        ParseError::MissingField("data.operationName")
    ));
}

/// Every public sample record (when the corpus folder exists) goes through the parser
/// without a panic; consumed operations that succeeded become events, in-progress ones are
/// intermediate. The expectation is read from the record independently of the parser.
#[test]
fn corpus_records_parse_without_panic() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/azure"
    ));
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("skipped: no corpus at {}", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut checked = 0;
    for path in paths.iter().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(path).unwrap();
        let records: Vec<String> = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
            _ => vec![text.clone()],
        };
        for record in &records {
            let outcome = parse_record(record);
            eprintln!("{}: {outcome:?}", path.display());
            let Ok(value) = serde_json::from_str::<Value>(record) else {
                assert!(outcome.is_err(), "{}", path.display());
                continue;
            };
            let text_of = |v: &Value| {
                v.as_str()
                    .or_else(|| v.get("value").and_then(Value::as_str))
                    .map(str::to_ascii_lowercase)
            };
            let data = value.get("data");
            let operation = value
                .get("operationName")
                .or_else(|| data.and_then(|d| d.get("operationName")))
                .and_then(text_of);
            let result = value
                .get("resultType")
                .or_else(|| value.get("status"))
                .or_else(|| data.and_then(|d| d.get("status")))
                .and_then(text_of);
            let (Some(operation), Some(result)) = (operation, result) else {
                continue;
            };
            if !is_consumed(&operation) {
                assert!(
                    matches!(outcome, Ok(Parsed::Skipped(Skip::Irrelevant))),
                    "{}",
                    path.display()
                );
            } else if ["succeeded", "success", "accepted"].contains(&result.as_str()) {
                assert!(
                    matches!(outcome, Ok(Parsed::Event(_))),
                    "{}",
                    path.display()
                );
            } else if ["started"].contains(&result.as_str()) {
                assert!(
                    matches!(outcome, Ok(Parsed::Skipped(Skip::Intermediate))),
                    "{}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} corpus records checked against their own operation and result");
}

// ---- sweep: every consumed operation, with the body in either of the fields it is logged in --

fn kinds(facts: &[Fact]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for fact in facts {
        if !out.contains(&fact.kind_name()) {
            out.push(fact.kind_name());
        }
    }
    out
}

/// Issue 10's sweep: for every consumed operation, the facts its rules need come out of the
/// record whether the resource body is logged as `responseBody` (success records) or only as
/// `requestbody` (the PUT body, which some exports keep instead), so neither variant is consumed
/// and silently raises nothing.
#[test]
fn every_consumed_operation_states_its_rule_facts_from_either_body() {
    let table: &[(&str, &[&str])] = &[
        ("diag_snapshot_copy_success.json", &["snapshot_copied"]),
        ("rest_snapshot_write_succeeded.json", &["snapshot_created"]),
        ("diag_disk_write_restore_success.json", &["restored_from"]),
        (
            "rest_image_write_from_snapshots.json",
            &["image_registered"],
        ),
        ("rest_vm_write_succeeded.json", &["uses"]),
        ("diag_nic_write_success.json", &["network_member"]),
        ("diag_nsg_write_inline_rules.json", &["ingress_opened"]),
        ("diag_rule_write_ssh_internet.json", &["ingress_opened"]),
        (
            "eventgrid_snapshot_begingetaccess.json",
            &["snapshot_exported"],
        ),
        (
            "cloudevent_disk_begingetaccess.json",
            &["snapshot_exported"],
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/azure");
    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for (name, want) in table {
        let raw = std::fs::read_to_string(dir.join(name)).expect("fixture");
        let mut variants = vec![("as logged", raw.clone())];
        let mut record: serde_json::Value = serde_json::from_str(&raw).expect("JSON");
        if let Some(properties) = record.get_mut("properties").and_then(|p| p.as_object_mut()) {
            if let Some(body) = properties.remove("responseBody") {
                properties.insert("requestbody".to_string(), body);
                variants.push(("request body only", record.to_string()));
            }
        }
        for (variant, text) in variants {
            match parse_record(&text) {
                Ok(Parsed::Event(parsed)) => {
                    covered.push(parsed.meta.name.to_ascii_lowercase());
                    let got = kinds(&parsed.facts);
                    let missing: Vec<&&str> = want.iter().filter(|k| !got.contains(k)).collect();
                    if !missing.is_empty() {
                        failures.push(format!("{name} ({variant}): {got:?}, want {want:?}"));
                    }
                }
                other => failures.push(format!("{name} ({variant}): {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for op in Operation::ALL {
        assert!(
            covered.iter().any(|name| name == op.name()),
            "{}: no row in the sweep",
            op.name()
        );
    }
}

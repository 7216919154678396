//! Facts from a resource's current Resource Manager body, for records that logged none (Event
//! Grid events, body-less Activity Log writes). The Azure function reads the body and hands it
//! here; the facts come from the same code as a logged body's, under the record's own identity.

use super::{facts, record_resource_id, Operation, ACTIVITY_LOG_FIELDS};
use crate::model::Fact;
use crate::parse::ParseError;
use serde_json::Value;

/// Whether a record of `operation_name` (any case) states its facts in the resource body, so
/// that one logged without a body needs the body read from Resource Manager.
pub fn facts_come_from_body(operation_name: &str) -> bool {
    Operation::from_name(operation_name).is_some_and(states_facts_in_body)
}

/// Exhaustive, so a newly consumed operation must say whether it needs the body.
fn states_facts_in_body(operation: Operation) -> bool {
    match operation {
        Operation::DiskWrite
        | Operation::ImageWrite
        | Operation::VirtualMachineWrite
        | Operation::NetworkInterfaceWrite
        | Operation::SecurityGroupWrite
        | Operation::SecurityRuleWrite => true,
        // A snapshot's source is in its body too, but the record alone already states the
        // snapshot; the access actions have no body.
        Operation::SnapshotWrite | Operation::SnapshotGetAccess | Operation::DiskGetAccess => false,
    }
}

/// The facts a successful `operation_name` record on `resource_id` states when `body` is the
/// resource's representation (a JSON object; anything else counts as no body), as
/// [`super::parse_record`] reads them from a record that logged that body.
/// `Ok(None)` when the chain does not consume the operation.
pub fn facts_from_resource_body(
    operation_name: &str,
    resource_id: &str,
    body: &Value,
) -> Result<Option<Vec<Fact>>, ParseError> {
    let Some(operation) = Operation::from_name(operation_name) else {
        return Ok(None);
    };
    let field = ACTIVITY_LOG_FIELDS.resource_id;
    let normalized = record_resource_id(operation, resource_id, field)?;
    facts::facts(operation, &normalized, resource_id, field, body.as_object()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::azure::parse_record;
    use crate::parse::Parsed;
    use serde_json::json;

    const RG: &str =
        "/subscriptions/6d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/Ops-RG/providers";

    /// What the parser makes of a record that logged `body` itself.
    fn facts_of_logged_body(operation: &str, resource_id: &str, body: &Value) -> Vec<Fact> {
        let record = json!({
            "eventDataId": "e-1",
            "operationName": operation,
            "status": "Succeeded",
            "resourceId": resource_id,
            "eventTimestamp": "2026-01-05T10:00:00Z",
            "properties": { "responseBody": body.to_string() },
        });
        match parse_record(&record.to_string()) {
            Ok(Parsed::Event(event)) => event.facts,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_states_what_the_same_body_logged_in_a_record_states() {
        let disk = format!("{RG}/Microsoft.Compute/disks/restored");
        let snapshot = format!("{RG}/Microsoft.Compute/snapshots/nightly");
        let disk_body = json!({"properties": {"creationData": {
            "createOption": "Copy", "sourceResourceId": snapshot}}});
        let rule =
            format!("{RG}/Microsoft.Network/networkSecurityGroups/web-nsg/securityRules/open-ssh");
        let rule_body = json!({"name": "open-ssh", "properties": {
            "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
            "sourceAddressPrefix": "*", "destinationPortRange": "22"}});
        for (operation, id, body) in [
            ("Microsoft.Compute/disks/write", &disk, &disk_body),
            (
                "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE",
                &rule,
                &rule_body,
            ),
        ] {
            let facts = facts_from_resource_body(operation, id, body)
                .unwrap()
                .unwrap();
            assert!(!facts.is_empty(), "{operation}");
            assert_eq!(
                facts,
                facts_of_logged_body(operation, id, body),
                "{operation}"
            );
        }
    }

    #[test]
    fn only_consumed_operations_and_resource_ids_are_read() {
        let body = json!({});
        assert!(matches!(
            facts_from_resource_body("Microsoft.Storage/storageAccounts/write", "/x", &body),
            Ok(None)
        ));
        assert!(
            facts_from_resource_body("Microsoft.Compute/disks/write", "not an id", &body).is_err()
        );
        assert!(facts_come_from_body(
            " microsoft.compute/virtualMachines/write "
        ));
        assert!(!facts_come_from_body("Microsoft.Compute/snapshots/write"));
        assert!(!facts_come_from_body(
            "Microsoft.Storage/storageAccounts/write"
        ));
    }
}

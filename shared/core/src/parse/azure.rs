//! Azure Activity Log records → [`ParsedEvent`]s.
//!
//! One record arrives in one of three shapes, all read by [`parse_record`]:
//! - the diagnostic-settings / Event Hub record (`time`, `resourceId`, `operationName` as a
//!   string, often UPPER-CASE, `resultType`, `callerIpAddress`, `correlationId`,
//!   `identity.claims`, `properties` with `requestbody` / `responseBody` as JSON strings);
//! - the REST API / portal "Export to JSON" event (`operationName.value`, `status.value`,
//!   `eventDataId`, `caller`, `claims`, `eventTimestamp`, `httpRequest`, `properties`);
//! - an Event Grid event (`eventType` `Microsoft.Resources.Resource…`, `eventTime`, `id`,
//!   `subject`, `data` with `operationName`, `status`, `resourceUri`, `claims`,
//!   `httpRequest`), or its CloudEvents form (`specversion`, `type`, `time`, `data`). Event
//!   Grid carries no request or response body. Deliveries are arrays of events: the caller
//!   splits them and passes one event at a time.

mod facts;
mod ids;
pub mod inventory;
mod resource_body;
#[cfg(test)]
mod tests;

use super::{parse_time, ParseError, Parsed, Skip};
use crate::model::{Cloud, EventMeta, ParsedEvent, ResourceKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// How a SAS-URL export is named in `Fact::SnapshotExported` (events and baseline alike).
pub(crate) use facts::SAS_URL as SAS_EXPORT_METHOD;
pub use inventory::{gallery_item, inventory_item};
pub use resource_body::{facts_come_from_body, facts_from_resource_body};

/// Lower-cased operation names the chain consumes (the Event Grid subscription and docs list them).
pub const CONSUMED_OPERATIONS: &[&str] = &[
    "microsoft.compute/snapshots/write",
    "microsoft.compute/snapshots/begingetaccess/action",
    "microsoft.compute/disks/write",
    "microsoft.compute/disks/begingetaccess/action",
    "microsoft.compute/images/write",
    "microsoft.compute/virtualmachines/write",
    "microsoft.network/networkinterfaces/write",
    "microsoft.network/networksecuritygroups/write",
    "microsoft.network/networksecuritygroups/securityrules/write",
];

/// Whether the chain consumes `operation_name`, compared case-insensitively (Activity Log
/// spells the same operation in several cases).
pub fn is_consumed(operation_name: &str) -> bool {
    Operation::from_name(operation_name).is_some()
}

/// A consumed operation; its name is the matching [`CONSUMED_OPERATIONS`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    SnapshotWrite,
    SnapshotGetAccess,
    DiskWrite,
    DiskGetAccess,
    ImageWrite,
    VirtualMachineWrite,
    NetworkInterfaceWrite,
    SecurityGroupWrite,
    SecurityRuleWrite,
}

impl Operation {
    const ALL: [Operation; 9] = [
        Operation::SnapshotWrite,
        Operation::SnapshotGetAccess,
        Operation::DiskWrite,
        Operation::DiskGetAccess,
        Operation::ImageWrite,
        Operation::VirtualMachineWrite,
        Operation::NetworkInterfaceWrite,
        Operation::SecurityGroupWrite,
        Operation::SecurityRuleWrite,
    ];

    fn name(self) -> &'static str {
        match self {
            Operation::SnapshotWrite => "microsoft.compute/snapshots/write",
            Operation::SnapshotGetAccess => "microsoft.compute/snapshots/begingetaccess/action",
            Operation::DiskWrite => "microsoft.compute/disks/write",
            Operation::DiskGetAccess => "microsoft.compute/disks/begingetaccess/action",
            Operation::ImageWrite => "microsoft.compute/images/write",
            Operation::VirtualMachineWrite => "microsoft.compute/virtualmachines/write",
            Operation::NetworkInterfaceWrite => "microsoft.network/networkinterfaces/write",
            Operation::SecurityGroupWrite => "microsoft.network/networksecuritygroups/write",
            Operation::SecurityRuleWrite => {
                "microsoft.network/networksecuritygroups/securityrules/write"
            }
        }
    }

    fn from_name(name: &str) -> Option<Operation> {
        let name = name.trim();
        Operation::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// What the record's resource id names; `None` for a security rule, a child of its NSG.
    fn resource_kind(self) -> Option<ResourceKind> {
        match self {
            Operation::SnapshotWrite | Operation::SnapshotGetAccess => Some(ResourceKind::Snapshot),
            Operation::DiskWrite | Operation::DiskGetAccess => Some(ResourceKind::Disk),
            Operation::ImageWrite => Some(ResourceKind::Image),
            Operation::VirtualMachineWrite => Some(ResourceKind::Instance),
            Operation::NetworkInterfaceWrite => Some(ResourceKind::NetworkInterface),
            Operation::SecurityGroupWrite => Some(ResourceKind::NetworkGroup),
            Operation::SecurityRuleWrite => None,
        }
    }
}

/// One Activity Log record in any of the three shapes (see the module docs).
///
/// Irrelevant operations are answered with `Skipped(Irrelevant)` before claims and bodies
/// are decoded; Started records with `Skipped(Intermediate)`, failed or cancelled
/// ones with `Skipped(Failed)`.
pub fn parse_record(raw: &str) -> Result<Parsed, ParseError> {
    let record = Envelope::read(raw)?;
    let Some(operation) = Operation::from_name(&record.operation_name) else {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    };
    let result = record
        .result
        .as_deref()
        .ok_or(ParseError::MissingField(record.fields.result))?;
    match Outcome::of(result, record.fields.result)? {
        Outcome::Succeeded => {}
        // A long-running operation logs Started (BeginRequest), then Accepted (EndRequest,
        // HTTP 202), then Succeeded or Failed. Accepted counts as evidence: ARM has
        // authorized and validated the call, and real exports show it is often the only
        // record that carries the responseBody (the final Succeeded record has none), so
        // skipping it would lose the snapshot → disk link. Started is only intermediate.
        Outcome::InProgress => return Ok(Parsed::Skipped(Skip::Intermediate)),
        Outcome::Failed => return Ok(Parsed::Skipped(Skip::Failed)),
    }

    let logged_resource_id = record
        .resource_id
        .as_deref()
        .ok_or(ParseError::MissingField(record.fields.resource_id))?;
    let resource_id = record_resource_id(operation, logged_resource_id, record.fields.resource_id)?;
    let time_text = record
        .time
        .as_deref()
        .ok_or(ParseError::MissingField(record.fields.time))?;
    let time = parse_time(record.fields.time, time_text)?;

    let body = facts::decode_body(record.properties()?.as_ref());
    let claims = record.claims()?;
    let meta = EventMeta {
        id: record.event_id(&resource_id, result, time)?,
        name: record.operation_name.clone(),
        time,
        actor: actor(claims.as_ref(), record.caller.as_deref()),
        source_ip: record.source_ip(claims.as_ref())?,
        cloud: Cloud::Azure,
        account: record.account(&resource_id)?,
        region: region(record.location.as_deref(), body.as_ref()),
        automation: None,
    };
    let facts = facts::facts(
        operation,
        &resource_id,
        logged_resource_id,
        record.fields.resource_id,
        body.as_ref(),
    )?;
    Ok(Parsed::Event(ParsedEvent { meta, facts }))
}

/// The record's resource id, normalised, checked against the kind the operation acts on.
fn record_resource_id(
    operation: Operation,
    logged: &str,
    field: &'static str,
) -> Result<String, ParseError> {
    let invalid = |reason: String| ParseError::InvalidField { field, reason };
    let mut id = ids::normalize(logged)
        .ok_or_else(|| invalid(format!("not an ARM resource id: {logged:?}")))?;
    // The action is logged against the disk or snapshot itself; tolerate producers that
    // append the action's path segment.
    if matches!(
        operation,
        Operation::SnapshotGetAccess | Operation::DiskGetAccess
    ) {
        if let Some(resource) = id.strip_suffix("/begingetaccess") {
            id = resource.to_owned();
        }
    }
    if let Some(expected) = operation.resource_kind() {
        if ids::kind(&id) != Some(expected) {
            return Err(invalid(format!(
                "{logged:?} is not a {expected:?} id, which {} acts on",
                operation.name()
            )));
        }
    }
    Ok(id)
}

enum Outcome {
    Succeeded,
    InProgress,
    Failed,
}

impl Outcome {
    /// `resultType` / `status.value` / Event Grid `status`, in any case (`Success`,
    /// `Succeeded`, `Start`, `Started.`, `Accept`, `Failure`…).
    fn of(result: &str, field: &'static str) -> Result<Outcome, ParseError> {
        let normalized = result.trim().trim_end_matches('.').to_ascii_lowercase();
        match normalized.as_str() {
            "succeeded" | "success" | "accepted" | "accept" => Ok(Outcome::Succeeded),
            "started" | "start" => Ok(Outcome::InProgress),
            // A cancelled operation did not happen either.
            "failed" | "failure" | "canceled" | "cancelled" | "cancel" => Ok(Outcome::Failed),
            _ => Err(ParseError::InvalidField {
                field,
                reason: format!("unknown operation result {result:?}"),
            }),
        }
    }
}

/// The names, per shape, of the fields [`ParseError`]s point at.
struct FieldNames {
    result: &'static str,
    resource_id: &'static str,
    time: &'static str,
}

const ACTIVITY_LOG_FIELDS: FieldNames = FieldNames {
    result: "resultType",
    resource_id: "resourceId",
    time: "time",
};

const EVENT_GRID_FIELDS: FieldNames = FieldNames {
    result: "data.status",
    resource_id: "data.resourceUri",
    time: "eventTime",
};

/// What every shape says, under one set of names. Claims, request details and properties
/// stay raw until the record is known to be relevant.
struct Envelope<'a> {
    fields: FieldNames,
    /// As logged. For Event Grid events that are not resource events (subscription
    /// validation…), the event type, which matches no consumed operation.
    operation_name: String,
    result: Option<String>,
    resource_id: Option<String>,
    time: Option<String>,
    /// Unique per record where the shape has one: `eventDataId`, the Event Grid `id`.
    unique_id: Option<String>,
    correlation_id: Option<String>,
    caller: Option<String>,
    caller_ip: Option<String>,
    subscription_id: Option<String>,
    location: Option<String>,
    claims: Option<&'a RawValue>,
    identity: Option<&'a RawValue>,
    http_request: Option<&'a RawValue>,
    properties: Option<&'a RawValue>,
}

/// Top-level fields of all three shapes; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord<'a> {
    #[serde(default, deserialize_with = "loose_text")]
    operation_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    result_type: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    resource_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    time: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    event_timestamp: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    event_data_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    correlation_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    caller: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    caller_ip_address: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    subscription_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    location: Option<String>,
    #[serde(default, borrow)]
    claims: Option<&'a RawValue>,
    #[serde(default, borrow)]
    identity: Option<&'a RawValue>,
    #[serde(default, borrow)]
    http_request: Option<&'a RawValue>,
    #[serde(default, borrow)]
    properties: Option<&'a RawValue>,

    // Event Grid (`eventType`, `eventTime`) and its CloudEvents form (`type`, `time`).
    #[serde(default, deserialize_with = "loose_text")]
    event_type: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "loose_text")]
    cloud_event_type: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    event_time: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    subject: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// The `data` of an Event Grid resource event.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventGridData<'a> {
    #[serde(default, deserialize_with = "loose_text")]
    operation_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    resource_uri: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    subscription_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    correlation_id: Option<String>,
    #[serde(default, borrow)]
    claims: Option<&'a RawValue>,
    #[serde(default, borrow)]
    http_request: Option<&'a RawValue>,
}

/// Event types of ARM resource operations; other Event Grid events are irrelevant here.
const RESOURCE_EVENT_PREFIX: &str = "Microsoft.Resources.Resource";

impl<'a> Envelope<'a> {
    fn read(raw: &'a str) -> Result<Envelope<'a>, ParseError> {
        match raw.trim_start().chars().next() {
            Some('{') => {}
            Some('[') => {
                return Err(ParseError::UnknownFormat(
                    "a JSON array: pass each Activity Log record or Event Grid event on its own"
                        .to_owned(),
                ))
            }
            _ => {
                return Err(ParseError::UnknownFormat(
                    "not a JSON object: an Activity Log record or Event Grid event is one"
                        .to_owned(),
                ))
            }
        }
        let record: RawRecord<'a> = serde_json::from_str(raw)?;
        let event_type = record
            .event_type
            .clone()
            .or(record.cloud_event_type.clone());
        match (event_type, record.data) {
            (Some(event_type), Some(data)) => Envelope::event_grid(record, event_type, data),
            _ => Envelope::activity_log(record),
        }
    }

    fn activity_log(record: RawRecord<'a>) -> Result<Envelope<'a>, ParseError> {
        Ok(Envelope {
            fields: ACTIVITY_LOG_FIELDS,
            operation_name: record
                .operation_name
                .ok_or(ParseError::MissingField("operationName"))?,
            result: record.result_type.or(record.status),
            resource_id: record.resource_id,
            time: record.time.or(record.event_timestamp),
            unique_id: record.event_data_id,
            correlation_id: record.correlation_id,
            caller: record.caller,
            caller_ip: record.caller_ip_address,
            subscription_id: record.subscription_id,
            location: record.location,
            claims: record.claims,
            identity: record.identity,
            http_request: record.http_request,
            properties: record.properties,
        })
    }

    fn event_grid(
        record: RawRecord<'a>,
        event_type: String,
        data: &'a RawValue,
    ) -> Result<Envelope<'a>, ParseError> {
        let is_resource_event = event_type
            .get(..RESOURCE_EVENT_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESOURCE_EVENT_PREFIX));
        let data: EventGridData<'a> = if is_resource_event {
            serde_json::from_str(data.get()).map_err(|e| ParseError::InvalidField {
                field: "data",
                reason: e.to_string(),
            })?
        } else {
            EventGridData::default()
        };
        let operation_name = if is_resource_event {
            data.operation_name
                .ok_or(ParseError::MissingField("data.operationName"))?
        } else {
            event_type.clone()
        };
        Ok(Envelope {
            fields: EVENT_GRID_FIELDS,
            operation_name,
            result: data.status.or_else(|| result_of_event_type(&event_type)),
            resource_id: data.resource_uri.or(record.subject),
            time: record.event_time.or(record.time),
            unique_id: record.id,
            correlation_id: data.correlation_id,
            caller: None,
            caller_ip: None,
            subscription_id: data.subscription_id,
            location: None,
            claims: data.claims,
            identity: None,
            http_request: data.http_request,
            properties: None,
        })
    }

    /// `properties` as an object (anything else carries no body).
    fn properties(&self) -> Result<Option<Map<String, Value>>, ParseError> {
        object_of(self.properties, "properties")
    }

    /// Token claims: top-level `claims` (REST), `identity.claims` (diagnostic settings),
    /// `data.claims` (Event Grid). `identity` is a plain string in some exports.
    fn claims(&self) -> Result<Option<Map<String, Value>>, ParseError> {
        if let Some(claims) = object_of(self.claims, "claims")? {
            return Ok(Some(claims));
        }
        Ok(
            object_of(self.identity, "identity")?.and_then(|mut identity| {
                match identity.remove("claims") {
                    Some(Value::Object(claims)) => Some(claims),
                    _ => None,
                }
            }),
        )
    }

    /// The record's id. REST exports have `eventDataId` and Event Grid an event `id`.
    /// Diagnostic-settings records have neither, and their `correlationId` is shared by the
    /// Start and Success records of one operation and by every operation of one deployment,
    /// so the id joins it with the operation, the result, the resource and the time: unique
    /// per record, and the same again when the record is redelivered.
    fn event_id(
        &self,
        resource_id: &str,
        result: &str,
        time: DateTime<Utc>,
    ) -> Result<String, ParseError> {
        if let Some(id) = &self.unique_id {
            return Ok(id.clone());
        }
        let correlation_id = self
            .correlation_id
            .as_deref()
            .ok_or(ParseError::MissingField("correlationId"))?;
        Ok(format!(
            "{correlation_id}:{}:{}:{resource_id}:{}",
            self.operation_name.to_ascii_lowercase(),
            result.to_ascii_lowercase(),
            time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ))
    }

    /// `callerIpAddress`, then `httpRequest.clientIpAddress`, then the token's `ipaddr`
    /// claim. Only real addresses count: exports redact (`<Redacted>`) and docs use
    /// placeholders.
    fn source_ip(&self, claims: Option<&Map<String, Value>>) -> Result<Option<String>, ParseError> {
        let http_request = object_of(self.http_request, "httpRequest")?;
        let candidates = [
            self.caller_ip.as_deref(),
            http_request
                .as_ref()
                .and_then(|r| r.get("clientIpAddress"))
                .and_then(Value::as_str),
            claims.and_then(|c| claim(c, &["ipaddr"])),
        ];
        let address = candidates
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|ip| ip.parse::<IpAddr>().is_ok())
            .map(str::to_owned);
        Ok(address)
    }

    /// The subscription from the resource id, else the record's `subscriptionId`.
    fn account(&self, resource_id: &str) -> Result<String, ParseError> {
        ids::subscription(resource_id)
            .map(str::to_owned)
            .or_else(|| self.subscription_id.as_deref().map(str::to_ascii_lowercase))
            .ok_or(ParseError::MissingField("subscriptionId"))
    }
}

/// A raw field as a JSON object; `null` and other types count as absent.
fn object_of(
    raw: Option<&RawValue>,
    field: &'static str,
) -> Result<Option<Map<String, Value>>, ParseError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Ok(None),
        // Unreachable for text serde_json already accepted, but never a panic.
        Err(e) => Err(ParseError::InvalidField {
            field,
            reason: e.to_string(),
        }),
    }
}

/// `…ResourceWriteSuccess` / `…Failure` / `…Cancel` when `data.status` is missing.
fn result_of_event_type(event_type: &str) -> Option<String> {
    let lower = event_type.to_ascii_lowercase();
    let result = if lower.ends_with("success") {
        "Succeeded"
    } else if lower.ends_with("failure") {
        "Failed"
    } else if lower.ends_with("cancel") {
        "Canceled"
    } else {
        return None;
    };
    Some(result.to_owned())
}

const UPN_CLAIMS: &[&str] = &[
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "upn",
];
const NAME_CLAIMS: &[&str] = &[
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "name",
];
const OBJECT_ID_CLAIMS: &[&str] = &[
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
];
const APP_ID_CLAIMS: &[&str] = &["appid"];

/// The first non-empty string among `keys`.
fn claim<'c>(claims: &'c Map<String, Value>, keys: &[&str]) -> Option<&'c str> {
    keys.iter()
        .filter_map(|key| claims.get(*key).and_then(Value::as_str))
        .map(str::trim)
        .find(|value| !value.is_empty())
}

/// Who acted: the UPN, else the logged `caller`, else the name, object id or app id claims
/// (service principals have no UPN).
fn actor(claims: Option<&Map<String, Value>>, caller: Option<&str>) -> Option<String> {
    let from_claims = |keys: &[&str]| claims.and_then(|c| claim(c, keys));
    from_claims(UPN_CLAIMS)
        .or(caller)
        .or_else(|| from_claims(NAME_CLAIMS))
        .or_else(|| from_claims(OBJECT_ID_CLAIMS))
        .or_else(|| from_claims(APP_ID_CLAIMS))
        .map(str::to_owned)
}

/// The record's `location`, else the body's (the resource's region). ARM location names are
/// lower-case without spaces (`westeurope`); some exports write the display name
/// (`West Europe`). `global` says nothing about where the resource lives.
fn region(location: Option<&str>, body: Option<&Map<String, Value>>) -> Option<String> {
    let body_location = body.and_then(|b| b.get("location")).and_then(Value::as_str);
    [location, body_location]
        .into_iter()
        .flatten()
        .map(|l| {
            l.split_whitespace()
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .find(|l| !l.is_empty() && l != "global")
}

/// A string field, or the `value` of a `{value, localizedValue}` object; anything else
/// (numbers, nulls, other objects) counts as absent rather than failing the record.
fn loose_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = match Value::deserialize(deserializer)? {
        Value::String(text) => Some(text),
        Value::Object(mut object) => match object.remove("value") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        },
        _ => None,
    };
    Ok(text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
}

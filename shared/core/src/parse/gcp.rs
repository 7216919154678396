//! GCP Cloud Audit Log entries (LogEntry, Eventarc CloudEvents).
//!
//! A `LogEntry` whose `protoPayload` is an `AuditLog` becomes one [`ParsedEvent`]: the record's
//! who / when / where as [`EventMeta`], and the facts its method states. Compute Engine logs
//! the same method under each API version (`v1.compute.snapshots.insert`,
//! `beta.compute.snapshots.insert`), so methods are matched by suffix.

mod facts;
mod listing;
mod record;
mod resource_path;
#[cfg(test)]
mod tests;

use super::{parse_time, ParseError, Parsed, Skip};
use crate::model::{Cloud, EventMeta, ParsedEvent};
use chrono::{DateTime, Utc};
pub use listing::{inventory_item, listed_resource};
use record::{AuditLog, CloudEvent, LogEntry, Operation};
use resource_path::{Location, ResourcePath, Scope};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Method-name suffixes the chain consumes, e.g. "compute.snapshots.insert" (matched after the
/// version prefix: "v1.compute…", "beta.compute…", "alpha.compute…").
pub const CONSUMED_METHODS: &[&str] = &[
    "compute.snapshots.insert",
    "compute.disks.createSnapshot",
    "compute.snapshots.setIamPolicy",
    "compute.images.setIamPolicy",
    "compute.disks.setIamPolicy",
    "compute.disks.insert",
    // Regional (replicated) persistent disks: the same facts as zonal disks.
    "compute.regionDisks.insert",
    "compute.regionDisks.createSnapshot",
    "compute.regionDisks.setIamPolicy",
    "compute.images.insert",
    "compute.instances.insert",
    "compute.instances.attachDisk",
    "compute.firewalls.insert",
    "compute.firewalls.patch",
    "compute.firewalls.update",
    "cloudsql.instances.restoreBackup",
    "cloudsql.instances.clone",
    "cloudsql.instances.create",
    "cloudsql.instances.update",
];

/// The method-name prefixes Compute Engine logs a consumed method under, so the ones Eventarc
/// triggers must list (a trigger matches `methodName` exactly): each API version, `alpha`
/// included (only allow-listed projects call it, which makes it no less interesting), and none
/// (the audit catalog names e.g. `compute.instances.insert`).
const TRIGGER_VERSIONS: [&str; 4] = ["v1.", "beta.", "alpha.", ""];

/// The CloudEvent `type` Eventarc gives Cloud Audit Log entries.
pub const AUDIT_LOG_WRITTEN: &str = "google.cloud.audit.log.v1.written";

/// What the [`EventMeta::automation`] of a Google-managed service agent's records says.
pub const SERVICE_AGENT_AUTOMATION: &str = "gcp-service-agent";

/// True when `method_name` (e.g. "beta.compute.instances.insert") ends with a consumed suffix.
pub fn is_consumed(method_name: &str) -> bool {
    CONSUMED_METHODS
        .iter()
        .any(|suffix| method_suffix_matches(method_name, suffix))
}

/// The consumed suffix `method_name` ends with.
fn consumed_suffix(method_name: &str) -> Option<&'static str> {
    CONSUMED_METHODS
        .iter()
        .copied()
        .find(|suffix| method_suffix_matches(method_name, suffix))
}

/// `suffix` matches whole dot-separated parts only: "v1.compute.disks.insert" ends with
/// "compute.disks.insert", "v1.compute.regionDisks.insert" does not.
fn method_suffix_matches(method_name: &str, suffix: &str) -> bool {
    match method_name.strip_suffix(suffix) {
        Some(prefix) => prefix.is_empty() || prefix.ends_with('.'),
        None => false,
    }
}

/// The full method names Eventarc triggers must filter on: every version prefix of each Compute
/// Engine suffix (a trigger matches the name exactly); Cloud SQL logs its methods without one.
pub fn trigger_method_names() -> Vec<String> {
    CONSUMED_METHODS
        .iter()
        .flat_map(|suffix| {
            let versions: &[&str] = if suffix.starts_with("compute.") {
                &TRIGGER_VERSIONS
            } else {
                &[""]
            };
            versions
                .iter()
                .map(move |version| format!("{version}{suffix}"))
        })
        .collect()
}

/// One LogEntry whose protoPayload is an AuditLog.
pub fn parse_entry(raw: &str) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_str(raw)?;
    parse_entry_value(value)
}

/// An Eventarc CloudEvent in structured mode (`specversion`, `type`
/// "google.cloud.audit.log.v1.written", `id`, `source`, `time`, `data` = the LogEntry).
pub fn parse_cloudevent(raw: &str) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_str(raw)?;
    if !value.is_object() {
        return Err(ParseError::UnknownFormat(
            "a CloudEvent must be a JSON object".to_string(),
        ));
    }
    let event: CloudEvent = serde_json::from_value(value)?;
    if event.specversion.is_none() {
        return Err(ParseError::MissingField("specversion"));
    }
    let event_type = event.event_type.ok_or(ParseError::MissingField("type"))?;
    if event_type != AUDIT_LOG_WRITTEN {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    }
    match event.data {
        None | Some(Value::Null) => Err(ParseError::MissingField("data")),
        // Some senders put the JSON payload in a string.
        Some(Value::String(text)) => parse_entry(&text),
        Some(entry) => parse_entry_value(entry),
    }
}

fn parse_entry_value(value: Value) -> Result<Parsed, ParseError> {
    if !value.is_object() {
        return Err(ParseError::UnknownFormat(
            "a LogEntry must be a JSON object".to_string(),
        ));
    }
    // Only a record without `insertId` needs its content hashed.
    let has_insert_id = ["insertId", "insertid"].iter().any(|key| {
        value
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|id| !id.trim().is_empty())
    });
    let content_id = (!has_insert_id).then(|| content_id(&value));
    let entry: LogEntry = serde_json::from_value(value)?;
    parse_log_entry(&entry, content_id)
}

/// A stable id for an entry shortened without `insertId`: a digest of its content with object
/// keys sorted, so the same record re-exported with other key order or spacing gets the same id
/// and the engine's idempotence holds.
fn content_id(value: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    if let Some(item) = map.get(key) {
                        canonical(item, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut text = String::new();
    canonical(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn parse_log_entry(entry: &LogEntry, content_id: Option<String>) -> Result<Parsed, ParseError> {
    let payload = entry.proto_payload.as_ref().ok_or_else(|| {
        ParseError::UnknownFormat("no `protoPayload`: not a Cloud Audit Log entry".to_string())
    })?;
    let name =
        logged_method_name(payload).ok_or(ParseError::MissingField("protoPayload.methodName"))?;
    let Some(method) = consumed_suffix(&name).and_then(facts::Method::from_suffix) else {
        return Ok(Parsed::Skipped(Skip::Irrelevant));
    };
    if has_failed(payload) {
        return Ok(Parsed::Skipped(Skip::Failed));
    }
    if entry.operation.as_ref().is_some_and(is_intermediate) {
        return Ok(Parsed::Skipped(Skip::Intermediate));
    }
    let meta = event_meta(entry, payload, name, content_id)?;
    let subject = payload.resource_name.as_deref().and_then(|name| {
        let project_only = Scope {
            project: &meta.account,
            zone: None,
        };
        ResourcePath::parse(name, project_only)
    });
    // A relative reference in the request lives where the record's subject lives.
    let zone = subject
        .as_ref()
        .and_then(|path| match &path.location {
            Location::Zone(zone) => Some(zone.as_str()),
            _ => None,
        })
        .or(resource_label(entry, |labels| labels.zone.as_deref()));
    let record = facts::Record {
        method,
        scope: Scope {
            project: &meta.account,
            zone,
        },
        actor: meta.actor.as_deref(),
        payload,
    };
    let facts = facts::facts(&record)?;
    Ok(Parsed::Event(ParsedEvent { meta, facts }))
}

/// `methodName`, or — in abridged samples that drop it — the method named by the request's
/// `@type` ("type.googleapis.com/compute.snapshots.setIamPolicy").
fn logged_method_name(payload: &AuditLog) -> Option<String> {
    if let Some(name) = non_empty(payload.method_name.as_deref()) {
        return Some(name.to_string());
    }
    let request_type = payload.request.as_ref()?.get("@type")?.as_str()?;
    let method = request_type
        .rsplit_once('/')
        .map_or(request_type, |(_, method)| method);
    non_empty(Some(method)).map(str::to_string)
}

/// A non-zero `status.code`, or an `error` in the response: failed calls never advance a chain.
fn has_failed(payload: &AuditLog) -> bool {
    let status_code = payload
        .status
        .as_ref()
        .and_then(|status| status.get("code"))
        .and_then(|code| match code {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        });
    let response_error = payload
        .response
        .as_ref()
        .and_then(|response| response.get("error"))
        .is_some_and(|error| !error.is_null());
    status_code.is_some_and(|code| code != 0) || response_error
}

/// The closing record of a long-running operation: only the `first` record carries the request.
fn is_intermediate(operation: &Operation) -> bool {
    operation.last == Some(true) && operation.first != Some(true)
}

/// The record's time: `timestamp`, else `receiveTimestamp`, else when the long-running operation
/// in the response was inserted or started. A record is rejected only when none of them holds a
/// usable time: for the first one present but unreadable, or for a missing `timestamp`.
fn entry_time(entry: &LogEntry, payload: &AuditLog) -> Result<DateTime<Utc>, ParseError> {
    let response = payload.response.as_ref();
    let operation_time = |key: &str| response.and_then(|r| r.get(key)).and_then(Value::as_str);
    let candidates = [
        ("timestamp", entry.timestamp.as_deref()),
        ("receiveTimestamp", entry.receive_timestamp.as_deref()),
        (
            "protoPayload.response.insertTime",
            operation_time("insertTime"),
        ),
        (
            "protoPayload.response.startTime",
            operation_time("startTime"),
        ),
    ];
    let mut first_error = None;
    for (field, raw) in candidates {
        let Some(raw) = non_empty(raw) else { continue };
        match parse_time(field, raw) {
            Ok(time) => return Ok(time),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(ParseError::MissingField("timestamp")))
}

fn event_meta(
    entry: &LogEntry,
    payload: &AuditLog,
    name: String,
    content_id: Option<String>,
) -> Result<EventMeta, ParseError> {
    let id = non_empty(entry.insert_id.as_deref())
        .map(str::to_string)
        .or(content_id)
        .ok_or(ParseError::MissingField("insertId"))?;
    let time = entry_time(entry, payload)?;
    let authentication = payload.authentication_info.as_ref();
    let actor = non_empty(authentication.and_then(|info| info.principal_email.as_deref()))
        .or_else(|| non_empty(authentication.and_then(|info| info.principal_subject.as_deref())))
        .map(str::to_string);
    let source_ip = non_empty(
        payload
            .request_metadata
            .as_ref()
            .and_then(|metadata| metadata.caller_ip.as_deref()),
    )
    .map(str::to_string);
    let account = project_of(entry, payload)
        .ok_or(ParseError::MissingField("resource.labels.project_id"))?
        .to_string();
    let region = resource_label(entry, |labels| labels.zone.as_deref())
        .or(resource_label(entry, |labels| labels.region.as_deref()))
        .or_else(|| {
            let locations = payload.resource_location.as_ref()?;
            non_empty(locations.current_locations.first().map(String::as_str))
        })
        .map(str::to_string);
    let automation = actor
        .as_deref()
        .filter(|principal| is_google_service_agent(principal))
        .map(|_| SERVICE_AGENT_AUTOMATION.to_string());
    Ok(EventMeta {
        id,
        name,
        time,
        actor,
        source_ip,
        cloud: Cloud::Gcp,
        account,
        region,
        automation,
    })
}

fn resource_label<'a>(
    entry: &'a LogEntry,
    label: impl Fn(&'a record::ResourceLabels) -> Option<&'a str>,
) -> Option<&'a str> {
    let labels = entry.resource.as_ref()?.labels.as_ref()?;
    non_empty(label(labels))
}

/// The project the record was logged in: the monitored resource's label, else the one in
/// `logName` (`projects/<p>/logs/…`), else the one in `resourceName`.
fn project_of<'a>(entry: &'a LogEntry, payload: &'a AuditLog) -> Option<&'a str> {
    resource_label(entry, |labels| labels.project_id.as_deref())
        .or_else(|| project_in_path(entry.log_name.as_deref()?))
        .or_else(|| project_in_path(payload.resource_name.as_deref()?))
}

fn project_in_path(path: &str) -> Option<&str> {
    let rest = path.trim().strip_prefix("projects/")?;
    non_empty(rest.split('/').next())
}

/// Google-managed service agents act for Google services (GKE creating its firewall rules,
/// Deployment Manager creating instances…). Recognised by the principal only, never by the
/// resource names it touches, which anyone can choose.
fn is_google_service_agent(principal: &str) -> bool {
    let principal = principal.trim().to_ascii_lowercase();
    let principal = principal
        .strip_prefix("serviceaccount:")
        .unwrap_or(&principal);
    if !principal.ends_with("gserviceaccount.com") {
        return false;
    }
    let Some((local, domain)) = principal.split_once('@') else {
        return false;
    };
    let agent_domain = [
        "container-engine-robot.",
        "compute-system.",
        "cloudservices.",
    ]
    .iter()
    .any(|prefix| domain.starts_with(prefix));
    // `service-<project number>@gcp-sa-….iam.gserviceaccount.com` and friends.
    let numbered_agent = local
        .strip_prefix("service-")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    agent_domain || numbered_agent
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}

//! Which provider a record comes from, decided per record from a cheap probe.
//!
//! The probe deserializes only the handful of fields that tell formats apart (every other field
//! is skipped by serde without building a tree); only records whose operation the chain consumes
//! are parsed fully by their provider module. Containers (`{"Records": [...]}` CloudTrail log
//! files, `{"records": [...]}` Azure diagnostic exports) are opened and each element dispatched.

use super::{aws, azure, gcp, prefilter, ParseError, Parsed, Skip};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The record shapes snapwatch understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// A bare CloudTrail record (also each element of an S3 log file).
    CloudTrail,
    /// An EventBridge envelope around a CloudTrail record.
    EventBridge,
    /// Azure Activity Log: diagnostic record, REST export or Event Grid event.
    AzureActivity,
    /// A GCP LogEntry carrying an AuditLog.
    GcpLogEntry,
    /// An Eventarc CloudEvent (structured mode) whose data is a LogEntry.
    GcpCloudEvent,
}

/// A name field that some formats log as a string and others as `{"value": …}` (Azure REST
/// export). Anything else is treated as absent rather than failing the probe.
#[derive(Debug, Default)]
struct Name<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name string or an object with a value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "value" {
                        found = map.next_value::<Name<'a>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Name(found))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Name(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProtoProbe<'a> {
    #[serde(rename = "methodName", borrow)]
    method_name: Name<'a>,
    #[serde(borrow)]
    request: Option<TypeProbe<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TypeProbe<'a> {
    #[serde(rename = "@type", borrow)]
    type_url: Name<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DetailProbe<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Name<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DataProbe<'a> {
    #[serde(rename = "protoPayload", borrow)]
    proto_payload: Option<ProtoProbe<'a>>,
    #[serde(rename = "operationName", borrow)]
    operation_name: Name<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Probe<'a> {
    #[serde(rename = "Records", borrow)]
    cloudtrail_records: Option<Vec<&'a RawValue>>,
    #[serde(rename = "records", borrow)]
    azure_records: Option<Vec<&'a RawValue>>,
    #[serde(rename = "eventName", borrow)]
    event_name: Name<'a>,
    #[serde(rename = "eventVersion")]
    event_version: Option<IgnoredAny>,
    #[serde(rename = "eventSource")]
    event_source: Option<IgnoredAny>,
    #[serde(rename = "detail-type")]
    detail_type: Option<IgnoredAny>,
    #[serde(borrow)]
    detail: Option<DetailProbe<'a>>,
    #[serde(rename = "protoPayload", borrow)]
    proto_payload: Option<ProtoProbe<'a>>,
    specversion: Option<IgnoredAny>,
    #[serde(borrow)]
    data: Option<DataProbe<'a>>,
    #[serde(rename = "operationName", borrow)]
    operation_name: Name<'a>,
}

/// What a probe decided about one record.
enum Route<'a> {
    Container(Vec<&'a RawValue>),
    Record(RecordFormat, Relevance),
}

/// Whether a record's operation is one the detectors consume: only those are parsed in full.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Relevance {
    Consumed,
    Irrelevant,
}

impl Relevance {
    fn of(consumed: bool) -> Self {
        if consumed {
            Self::Consumed
        } else {
            Self::Irrelevant
        }
    }
}

fn gcp_method<'p>(p: &'p ProtoProbe<'_>) -> Option<&'p str> {
    p.method_name.0.as_deref().or_else(|| {
        p.request
            .as_ref()
            .and_then(|r| r.type_url.0.as_deref())
            .map(|t| t.rsplit('/').next().unwrap_or(t))
    })
}

fn route<'a>(probe: Probe<'a>) -> Result<Route<'a>, ParseError> {
    if let Some(records) = probe.cloudtrail_records.or(probe.azure_records) {
        return Ok(Route::Container(records));
    }
    if probe.detail_type.is_some() {
        let consumed = probe
            .detail
            .as_ref()
            .and_then(|d| d.event_name.0.as_deref())
            .is_some_and(aws::is_consumed);
        return Ok(Route::Record(
            RecordFormat::EventBridge,
            Relevance::of(consumed),
        ));
    }
    if let Some(proto) = &probe.proto_payload {
        let consumed = gcp_method(proto).is_some_and(gcp::is_consumed);
        return Ok(Route::Record(
            RecordFormat::GcpLogEntry,
            Relevance::of(consumed),
        ));
    }
    if let Some(data) = &probe.data {
        if let Some(proto) = &data.proto_payload {
            let consumed = gcp_method(proto).is_some_and(gcp::is_consumed);
            return Ok(Route::Record(
                RecordFormat::GcpCloudEvent,
                Relevance::of(consumed),
            ));
        }
        if let Some(op) = data.operation_name.0.as_deref() {
            return Ok(Route::Record(
                RecordFormat::AzureActivity,
                Relevance::of(azure::is_consumed(op)),
            ));
        }
    }
    if let Some(op) = probe.operation_name.0.as_deref() {
        return Ok(Route::Record(
            RecordFormat::AzureActivity,
            Relevance::of(azure::is_consumed(op)),
        ));
    }
    if probe.event_version.is_some() || probe.event_source.is_some() {
        if let Some(name) = probe.event_name.0.as_deref() {
            return Ok(Route::Record(
                RecordFormat::CloudTrail,
                Relevance::of(aws::is_consumed(name)),
            ));
        }
    }
    let _ = probe.specversion;
    Err(ParseError::UnknownFormat(
        "not a CloudTrail record, EventBridge envelope, Azure Activity Log record, GCP LogEntry or CloudEvent"
            .into(),
    ))
}

fn parse_as(format: RecordFormat, raw: &str) -> Result<Parsed, ParseError> {
    match format {
        RecordFormat::CloudTrail => aws::parse_record(raw),
        RecordFormat::EventBridge => aws::parse_eventbridge(raw),
        RecordFormat::AzureActivity => azure::parse_record(raw),
        RecordFormat::GcpLogEntry => gcp::parse_entry(raw),
        RecordFormat::GcpCloudEvent => gcp::parse_cloudevent(raw),
    }
}

/// One record's outcome, with the record's own text (for locating rejects).
pub struct RecordOutcome<'a> {
    /// The record's own JSON text.
    pub raw: &'a str,
    /// The format it was recognised as; `None` when it was not recognised.
    pub format: Option<RecordFormat>,
    /// Its facts, why it was skipped, or why it was rejected.
    pub result: Result<Parsed, ParseError>,
}

/// Calls `each` for every record in one top-level JSON text (a line, an array element, a whole
/// document). Never fails as a whole: a bad record is reported through its own outcome.
pub fn for_each_record<'a>(unit: &'a str, each: &mut dyn FnMut(RecordOutcome<'a>)) {
    visit(unit, each, 0, Stages::ProbeOnly);
}

/// Like [`for_each_record`] for one element of a `Records`/`records` container read on its own
/// (the CLI streams containers): a container inside it is not opened, as inside a whole file.
pub fn for_each_contained_record<'a>(record: &'a str, each: &mut dyn FnMut(RecordOutcome<'a>)) {
    visit(record, each, 1, Stages::ProbeOnly);
}

/// Like [`for_each_record`], with the byte prefilter ([`prefilter::needs_probe`]) before the
/// probe: a record it rules out is reported irrelevant, with no format, without being parsed.
/// For bulk reading, where almost every record is unrelated.
pub fn for_each_record_prefiltered<'a>(unit: &'a str, each: &mut dyn FnMut(RecordOutcome<'a>)) {
    visit(unit, each, 0, Stages::Prefiltered);
}

/// [`for_each_contained_record`] with the byte prefilter, as [`for_each_record_prefiltered`].
pub fn for_each_contained_record_prefiltered<'a>(
    record: &'a str,
    each: &mut dyn FnMut(RecordOutcome<'a>),
) {
    visit(record, each, 1, Stages::Prefiltered);
}

/// Whether the byte prefilter runs before the probe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stages {
    ProbeOnly,
    Prefiltered,
}

fn visit<'a>(raw: &'a str, each: &mut dyn FnMut(RecordOutcome<'a>), depth: u8, stages: Stages) {
    if stages == Stages::Prefiltered && !prefilter::needs_probe(raw.as_bytes()) {
        return each(RecordOutcome {
            raw,
            format: None,
            result: Ok(Parsed::Skipped(Skip::Irrelevant)),
        });
    }
    let probe: Probe<'a> = match serde_json::from_str(raw) {
        Ok(p) => p,
        Err(e) => {
            return each(RecordOutcome {
                raw,
                format: None,
                result: Err(ParseError::InvalidJson(e)),
            })
        }
    };
    match route(probe) {
        // A container inside a container is not a shape any cloud writes; don't recurse deeper.
        Ok(Route::Container(records)) if depth == 0 => {
            for record in records {
                visit(record.get(), each, depth + 1, stages);
            }
        }
        Ok(Route::Container(_)) => each(RecordOutcome {
            raw,
            format: None,
            result: Err(ParseError::UnknownFormat("nested record container".into())),
        }),
        Ok(Route::Record(format, relevance)) => each(RecordOutcome {
            raw,
            format: Some(format),
            result: match relevance {
                Relevance::Consumed => parse_as(format, raw),
                Relevance::Irrelevant => Ok(Parsed::Skipped(Skip::Irrelevant)),
            },
        }),
        Err(e) => each(RecordOutcome {
            raw,
            format: None,
            result: Err(e),
        }),
    }
}

/// What the probe alone decides about one record, for checking the prefilter against it.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeSays {
    /// The record's operation is consumed: it would be parsed in full.
    Consumed,
    /// A record of a known format whose operation is not consumed.
    Irrelevant,
    /// A `Records`/`records` container.
    Container,
    /// Invalid JSON, or no format the probe knows.
    Rejected,
}

/// The probe's decision on `raw`, without parsing a consumed record further.
#[cfg(test)]
pub(super) fn probe_says(raw: &str) -> ProbeSays {
    match serde_json::from_str::<Probe<'_>>(raw).map(route) {
        Ok(Ok(Route::Container(_))) => ProbeSays::Container,
        Ok(Ok(Route::Record(_, Relevance::Consumed))) => ProbeSays::Consumed,
        Ok(Ok(Route::Record(_, Relevance::Irrelevant))) => ProbeSays::Irrelevant,
        Ok(Err(_)) | Err(_) => ProbeSays::Rejected,
    }
}

/// Convenience for tests and single records: every outcome of one JSON text.
pub fn parse_all(unit: &str) -> Vec<(Option<RecordFormat>, Result<Parsed, ParseError>)> {
    let mut out = Vec::new();
    for_each_record(unit, &mut |o| out.push((o.format, o.result)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(unit: &str) -> Vec<Option<RecordFormat>> {
        parse_all(unit).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn routes_each_shape_without_parsing_irrelevant_records() {
        let ct = r#"{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","requestParameters":{"x":[1,2,{"y":null}]}}"#;
        let out = parse_all(ct);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, Some(RecordFormat::CloudTrail));
        assert!(matches!(out[0].1, Ok(Parsed::Skipped(Skip::Irrelevant))));

        let eb = r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.s3","detail":{"eventName":"GetObject"}}"#;
        assert_eq!(formats(eb), vec![Some(RecordFormat::EventBridge)]);
        let native = r#"{"version":"0","detail-type":"EBS Snapshot Notification","source":"aws.ec2","detail":{"event":"createSnapshot"}}"#;
        assert!(matches!(
            parse_all(native)[0].1,
            Ok(Parsed::Skipped(Skip::Irrelevant))
        ));

        let file = format!(r#"{{"Records":[{ct},{ct}]}}"#);
        assert_eq!(formats(&file), vec![Some(RecordFormat::CloudTrail); 2]);

        let az_diag = r#"{"time":"2026-01-01T00:00:00Z","resourceId":"/SUBSCRIPTIONS/X","operationName":"MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION","category":"Administrative"}"#;
        assert_eq!(formats(az_diag), vec![Some(RecordFormat::AzureActivity)]);
        let az_rest = r#"{"eventName":{"value":"EndRequest"},"operationName":{"value":"Microsoft.Storage/storageAccounts/write","localizedValue":"x"},"status":{"value":"Succeeded"}}"#;
        assert_eq!(formats(az_rest), vec![Some(RecordFormat::AzureActivity)]);
        let grid = r#"{"id":"1","eventType":"Microsoft.Resources.ResourceWriteSuccess","subject":"/subscriptions/x","data":{"operationName":"Microsoft.Storage/storageAccounts/write"}}"#;
        assert_eq!(formats(grid), vec![Some(RecordFormat::AzureActivity)]);
        let az_file = format!(r#"{{"records":[{az_diag}]}}"#);
        assert_eq!(formats(&az_file), vec![Some(RecordFormat::AzureActivity)]);

        let entry = r#"{"insertId":"a","protoPayload":{"methodName":"storage.objects.get"}}"#;
        assert_eq!(formats(entry), vec![Some(RecordFormat::GcpLogEntry)]);
        let ce = r#"{"specversion":"1.0","type":"google.cloud.audit.log.v1.written","data":{"protoPayload":{"methodName":"storage.objects.get"}}}"#;
        assert_eq!(formats(ce), vec![Some(RecordFormat::GcpCloudEvent)]);
    }

    #[test]
    fn bad_records_are_reported_with_a_reason() {
        let out = parse_all("{\"eventName\": ");
        assert!(matches!(out[0].1, Err(ParseError::InvalidJson(_))));
        let out = parse_all(r#"{"hello":"world"}"#);
        assert!(matches!(out[0].1, Err(ParseError::UnknownFormat(_))));
        // One bad element of a container does not hide the good ones.
        let out =
            parse_all(r#"{"Records":[{"nope":1},{"eventVersion":"1","eventName":"ListBuckets"}]}"#);
        assert_eq!(out.len(), 2);
        assert!(out[0].1.is_err());
        assert!(matches!(out[1].1, Ok(Parsed::Skipped(Skip::Irrelevant))));
    }
}

//! Provider parsers: raw audit records → [`ParsedEvent`]s.
//!
//! Our own permissive serde types (unknown fields ignored, `Option` wherever a field can be
//! missing). Each provider module exposes `parse_*` functions taking one record's bytes and the
//! list of names it consumes. [`detect`] decides which provider a record belongs to.

pub mod aws;
pub mod azure;
pub mod detect;
pub mod gcp;
pub mod prefilter;

use crate::model::ParsedEvent;
use crate::render::escape_line;
use chrono::{DateTime, NaiveDateTime, Utc};

/// What a parser made of one well-formed record.
// `Event` is large and `Skipped` tiny, but each value is moved once per record: boxing would
// add an allocation on the hot path for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A relevant, successful call: facts for the engine (possibly none, e.g. a share with
    /// an empty account list).
    Event(ParsedEvent),
    /// Well-formed but not evidence: the reason says why (for counters and debug logs).
    Skipped(Skip),
}

/// Why a well-formed record yields no facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not an operation the chain consumes.
    Irrelevant,
    /// `errorCode`, Azure `Failed`, GCP non-zero status: failed calls never advance a chain.
    Failed,
    /// `DryRunOperation` and friends.
    DryRun,
    /// An intermediate record of a long-running operation (Azure `Started`/`Accepted`, GCP
    /// `operation.last` without request) whose facts come from another record.
    Intermediate,
}

impl Skip {
    /// The reason as a counter / log key (`irrelevant`, `failed`, `dry_run`, `intermediate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Irrelevant => "irrelevant",
            Skip::Failed => "failed",
            Skip::DryRun => "dry_run",
            Skip::Intermediate => "intermediate",
        }
    }
}

/// Why a record could not be used. Always reported with the record's location, never fatal.
///
/// The messages quote record values, so they are shown through [`escape_line`]: a reject line
/// (stderr, rejects table, dead-letter log) can neither break into two nor hide or reorder text.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("invalid JSON: {}", escape_line(&.0.to_string()))]
    InvalidJson(#[from] serde_json::Error),
    /// JSON, but no known record shape: the message says what was expected.
    #[error("unrecognised record format: {}", escape_line(.0))]
    UnknownFormat(String),
    /// A field the record's format requires is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field's value cannot be used: the reason says why.
    #[error("invalid value for `{field}`: {}", escape_line(.reason))]
    InvalidField {
        /// The field, as named in the record.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

/// Parses the timestamps the clouds actually emit: RFC 3339 (`2024-04-02T15:13:06Z`,
/// fractional seconds, offsets) and the space-separated form some exporters write
/// (`2024-04-02 15:13:06.000000000`, taken as UTC).
pub fn parse_time(field: &'static str, value: &str) -> Result<DateTime<Utc>, ParseError> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.fZ",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(ParseError::InvalidField {
        field,
        reason: format!("not a timestamp: {value:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_show_hostile_characters_escaped() {
        let hostile = "2\u{202E}2\u{85}\u{2028}\u{9b}\u{7f}\nforged\u{200B}";
        let reasons = [
            ParseError::InvalidField {
                field: "destinationPortRange",
                reason: format!("not a port range: {hostile}"),
            }
            .to_string(),
            ParseError::UnknownFormat(hostile.to_owned()).to_string(),
            ParseError::from(serde_json::from_str::<u8>(&format!("\"{hostile}\"")).unwrap_err())
                .to_string(),
        ];
        for reason in reasons {
            assert!(
                !reason.chars().any(crate::render::is_display_hazard),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn parses_the_time_shapes_clouds_emit() {
        let want = "2024-04-02T15:13:06Z";
        for raw in [
            "2024-04-02T15:13:06Z",
            "2024-04-02T15:13:06.000Z",
            "2024-04-02 15:13:06.000000000",
            "2024-04-02T15:13:06.0000000",
            "2024-04-02T17:13:06+02:00",
        ] {
            assert_eq!(
                parse_time("t", raw)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                want,
                "{raw}"
            );
        }
        assert!(parse_time("t", "yyyy-mm-ddThh:mm:ssZ").is_err());
    }
}

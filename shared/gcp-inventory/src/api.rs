//! The Compute Engine REST shapes the listing reads: list pages, the aggregated disk list, IAM
//! policies and the error body. Unknown fields are ignored.

use crate::class_of;
use serde::Deserialize;
use snapwatch_http::Failure;
use std::collections::BTreeMap;

/// What the listing keeps of a listed resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Listed {
    pub self_link: String,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
}

/// A page of `snapshots.list`, `images.list` or `machineImages.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListPage {
    #[serde(default)]
    pub items: Vec<Listed>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A page of `disks.aggregatedList`: disks by `zones/<z>` and `regions/<r>`; a location with
/// none carries a `warning` instead.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AggregatedDisks {
    #[serde(default)]
    pub items: BTreeMap<String, ScopedDisks>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub unreachables: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScopedDisks {
    #[serde(default)]
    pub disks: Vec<Listed>,
}

/// An IAM `Policy`; an empty policy has no `bindings`.
#[derive(Debug, Deserialize)]
pub(crate) struct Policy {
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Binding {
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// A failed answer as a classified failure; the message names the status and reasons only.
pub(crate) fn classify(status: u16, body: &str) -> Failure {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let detail = parsed.error;
    let reasons: Vec<&str> = detail.errors.iter().map(|e| e.reason.as_str()).collect();
    let message: String = detail.message.chars().take(300).collect();
    let text = format!(
        "HTTP {status} {} [{}]: {message}",
        detail.status,
        reasons.join(",")
    );
    match class_of(status, &reasons, &detail.status) {
        snapwatch_http::Class::Transient => Failure::transient(text),
        snapwatch_http::Class::Permanent => Failure::permanent(text),
    }
}

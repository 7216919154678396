//! The custom handler: the Functions host POSTs each invocation to `/<FunctionName>` as
//! `{"Data": {<binding>: …}, "Metadata": {…}}` and expects `{"Outputs", "Logs", "ReturnValue"}`.
//!
//! Three functions (one `function.json` each; the fourth, the `Baseline` timer, is
//! [`crate::baseline`]'s route, merged into this router by `main`):
//! - [`EVENT_HUB_FUNCTION`]: the Activity Log diagnostic setting's Event Hub, a batch of
//!   messages each holding `{"records": [...]}`. The Event Hubs trigger checkpoints even when
//!   the function fails, so a failed invocation would lose the batch: transient failures are
//!   retried inside the invocation within a bound, and whatever still fails is kept in the
//!   `rejects` blob output (with malformed records) for replay. The answer is a success. So
//!   that a failure cannot happen before the handler sees the batch, the body limit is set
//!   above the largest batch the host can send ([`MAX_INVOCATION_BYTES`]); so that the host
//!   never kills a slow batch, each invocation stops at its deadline (below host.json's
//!   `functionTimeout`) and keeps what it did not finish in `rejects` (`unfinished`).
//! - [`EVENT_GRID_FUNCTION`]: one Event Grid resource event. Event Grid redelivers on failure
//!   (and dead-letters in the end), so a transient failure that outlasts the bound answers 500;
//!   a malformed event is kept in `rejects` and answered 200 (a retry could never succeed).
//! - [`PURGE_FUNCTION`]: a timer that deletes expired chain state (Table Storage has no TTL),
//!   a bounded number of rows per run. A store failure answers 500; the next tick retries.
//!
//! Decode → core → encode; nothing else happens here.

use crate::arm::{self, ResourceReader};
use crate::respond::ArmResponder;
use crate::table::ExpiryPurge;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use snapwatch_core::engine::{Detector, EngineError, Responses};
use snapwatch_core::parse::detect::{for_each_record, RecordFormat};
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::SinkError;
use snapwatch_core::ports::{AlertSink, Clock, StateStore};
use snapwatch_core::{render, Finding, ParsedEvent};
use snapwatch_http::{retry, Backoff, Class, Classify, Stop};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Function (folder) names: the host calls `/<name>`.
pub const EVENT_HUB_FUNCTION: &str = "ActivityLog";
pub const EVENT_GRID_FUNCTION: &str = "ResourceEvents";
pub const PURGE_FUNCTION: &str = "Purge";
/// Binding names in the `function.json` files.
pub const EVENT_HUB_BINDING: &str = "messages";
pub const EVENT_GRID_BINDING: &str = "event";
pub const REJECTS_BINDING: &str = "rejects";
pub const PURGE_BINDING: &str = "timer";

/// The largest Event Hubs message body: 1 MB on the Standard tier the module deploys (and on
/// Premium and Dedicated; Basic allows 256 KB).
pub const MAX_EVENT_HUB_MESSAGE_BYTES: usize = 1024 * 1024;
/// Messages per invocation at most: host.json's `extensions.eventHubs.maxEventBatchSize`.
pub const MAX_BATCH_MESSAGES: usize = 64;
/// The host sends a `dataType: string` batch as the string array serialized to a JSON string
/// inside the invocation JSON, so every message is JSON-escaped twice (Newtonsoft: only `"`,
/// `\` and control characters are escaped). In the JSON text of an Activity Log message, `"`
/// and `\` grow the most: `"` → `\"` → `\\\"`, 4 bytes each.
const WORST_ESCAPING: usize = 4;
/// The envelope and `Metadata` (partition context, per-message enqueued times, offsets,
/// sequence numbers, properties and system properties, double-encoded too): a few hundred
/// bytes per message in practice.
const ENVELOPE_BYTES: usize = 1024 * 1024;
/// The request body the handler accepts: the largest batch the host can send from the
/// diagnostic setting, 64 × 1 MiB × 4 + 1 MiB = 257 MiB. A real Activity Log batch escapes to
/// far less (about 1.3× a level), and the memory it takes is only used when a batch is that
/// big. Axum's default (2 MiB) refused full batches with 413, the invocation failed and the
/// checkpointed batch was lost. A larger body (only possible from a producer other than the
/// diagnostic setting) is not read: it is logged and noted in `rejects` (`oversized`).
pub const MAX_INVOCATION_BYTES: usize =
    MAX_BATCH_MESSAGES * MAX_EVENT_HUB_MESSAGE_BYTES * WORST_ESCAPING + ENVELOPE_BYTES;
/// The host's header naming the invocation, for the log and an `oversized` reject.
const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// How hard one invocation tries before it gives up on a transient failure. It is the only
/// retry budget on Azure: the Slack sink is built with one attempt per delivery round
/// ([`slack_sink`]), so a failing webhook sees at most `attempts` POSTs per finding.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudget {
    /// Attempts per record and per delivery round, the first included.
    pub attempts: u32,
    /// Pause after the first failure; doubled after each further one (jittered).
    pub backoff: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The longest Slack `Retry-After` a delivery round waits out (what the sink itself waited
/// before the handler took over its retries).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

impl RetryBudget {
    /// The un-jittered pause after `failed_attempts` failures: the ceiling of each wait.
    pub fn pause(&self, failed_attempts: u32) -> Duration {
        self.policy().backoff.step(failed_attempts)
    }

    /// The shared retry layer's policy for this budget.
    fn policy(&self) -> snapwatch_http::RetryPolicy {
        snapwatch_http::RetryPolicy {
            max_attempts: self.attempts,
            backoff: Backoff::exponential(self.backoff, Duration::MAX),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

/// The Slack sink as the Azure handler uses it: one POST per delivery round, because the
/// handler's [`RetryBudget`] already retries; the sink's own retries would multiply it (4 rounds
/// × 3 POSTs was up to 12 POSTs per finding).
pub fn slack_sink(
    webhook: snapwatch_slack::WebhookUrl,
) -> Result<snapwatch_slack::SlackSink, snapwatch_slack::SlackConfigError> {
    snapwatch_slack::SlackSink::new(webhook, snapwatch_slack::RetryPolicy::single_attempt())
}

/// Where findings go.
pub enum Alerts<K> {
    /// To the sink (Slack in Azure).
    Sink(K),
    /// No destination configured: findings are logged (warning), nothing is sent.
    LogOnly,
    /// A destination was configured but cannot be used (the reason says why and what to do):
    /// findings are logged as errors and kept in `rejects` (`undelivered`) for replay.
    Unusable(String),
}

/// What every invocation shares: the detector over its store, the ARM reader, where alerts
/// go, and the purge of expired state (in Azure the same table as the detector's store).
pub struct AppState<S, R, K, P> {
    pub detector: Detector<S>,
    pub reader: R,
    pub alerts: Alerts<K>,
    pub clock: Arc<dyn Clock>,
    pub retry: RetryBudget,
    /// How long one invocation may run; what is left then goes to `rejects`. Below
    /// host.json's `functionTimeout`, so the host never kills an invocation that still holds
    /// records.
    pub deadline: Duration,
    pub purger: P,
    /// Rows one `Purge` run deletes at most; a larger backlog drains over several runs.
    pub purge_max_rows: usize,
    /// The opt-in response; `None` when every rule's mode is `off`.
    pub responder: Option<ArmResponder>,
}

/// The router the Functions host talks to. Testable with `oneshot`, no port needed.
pub fn app<S, R, K, P>(state: Arc<AppState<S, R, K, P>>) -> Router
where
    S: StateStore + 'static,
    R: ResourceReader + 'static,
    K: AlertSink + 'static,
    P: ExpiryPurge + 'static,
{
    Router::new()
        .route(
            &format!("/{EVENT_HUB_FUNCTION}"),
            post(event_hub::<S, R, K, P>),
        )
        .route(
            &format!("/{EVENT_GRID_FUNCTION}"),
            post(event_grid::<S, R, K, P>),
        )
        .route(&format!("/{PURGE_FUNCTION}"), post(purge::<S, R, K, P>))
        .with_state(state)
}

/// The host's invocation request.
#[derive(Debug, Deserialize)]
struct Invocation {
    #[serde(rename = "Data", default)]
    data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    metadata: Map<String, Value>,
}

/// The answer the host expects.
#[derive(Debug, Serialize)]
pub struct InvocationResult {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// A record kept for replay instead of being dropped: one JSON line in the rejects blob.
#[derive(Debug, Serialize)]
struct Reject {
    kind: RejectKind,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// The record as received (or the finding JSON for `undelivered`).
    record: String,
}

/// Why a record is in the rejects blob: its `kind` field, spelled as [`RejectKind::as_str`]
/// (functions/azure/README.md lists the kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum RejectKind {
    /// Will never parse.
    Invalid,
    /// Failed transiently within the retry bound; replaying it may succeed.
    Transient,
    /// The store or the lookup refused for good.
    Permanent,
    /// A finding whose alert could not be sent.
    Undelivered,
    /// The invocation's deadline came first.
    Unfinished,
    /// The invocation body was too large to read.
    Oversized,
}

impl RejectKind {
    /// The name in the rejects blob and the host's log.
    fn as_str(self) -> &'static str {
        match self {
            RejectKind::Invalid => "invalid",
            RejectKind::Transient => "transient",
            RejectKind::Permanent => "permanent",
            RejectKind::Undelivered => "undelivered",
            RejectKind::Unfinished => "unfinished",
            RejectKind::Oversized => "oversized",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the trigger does with an invocation that fails, which decides how the handler answers
/// one it could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TriggerRetry {
    /// Event Hubs checkpoints past the batch whatever the answer: a failure would lose it, so
    /// the answer is a success and what failed is kept in `rejects`.
    Checkpoints,
    /// Event Grid redelivers a failed delivery (and dead-letters in the end): answer an error.
    Redelivers,
}

/// What one invocation did, for the host's log and the answer.
#[derive(Debug, Default)]
struct Outcome {
    records: usize,
    events: usize,
    skipped: BTreeMap<&'static str, usize>,
    findings: BTreeMap<String, Finding>,
    sent: usize,
    rejects: Vec<Reject>,
    /// A transient failure outlasted the retry bound (Event Grid answers 500 for it).
    gave_up_on_transient: bool,
}

async fn event_hub<S, R, K, P>(
    State(state): State<Arc<AppState<S, R, K, P>>>,
    request: Request,
) -> Response
where
    S: StateStore + 'static,
    R: ResourceReader + 'static,
    K: AlertSink + 'static,
{
    invoke(
        &state,
        EVENT_HUB_FUNCTION,
        EVENT_HUB_BINDING,
        request,
        TriggerRetry::Checkpoints,
    )
    .await
}

async fn event_grid<S, R, K, P>(
    State(state): State<Arc<AppState<S, R, K, P>>>,
    request: Request,
) -> Response
where
    S: StateStore + 'static,
    R: ResourceReader + 'static,
    K: AlertSink + 'static,
{
    invoke(
        &state,
        EVENT_GRID_FUNCTION,
        EVENT_GRID_BINDING,
        request,
        TriggerRetry::Redelivers,
    )
    .await
}

async fn invoke<S, R, K, P>(
    state: &AppState<S, R, K, P>,
    function: &'static str,
    binding: &'static str,
    request: Request,
    trigger: TriggerRetry,
) -> Response
where
    S: StateStore,
    R: ResourceReader,
    K: AlertSink,
{
    // The deadline counts from the request's arrival: reading and decoding a large batch
    // takes part of the host's functionTimeout too.
    let deadline = Instant::now() + state.deadline;
    let host_invocation_id = request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match axum::body::to_bytes(request.into_body(), MAX_INVOCATION_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            return unread_invocation(function, host_invocation_id, &e, trigger);
        }
    };
    let mut invocation: Invocation = match serde_json::from_slice(&body) {
        Ok(invocation) => invocation,
        Err(e) => {
            tracing::error!(function, error = %e, "invocation request is not the host's JSON");
            return (
                StatusCode::BAD_REQUEST,
                format!("invocation request is not {{\"Data\", \"Metadata\"}} JSON: {e}"),
            )
                .into_response();
        }
    };
    // Only the messages are needed from here on: free the body (up to MAX_INVOCATION_BYTES).
    drop(body);
    let invocation_id = invocation_id(&invocation.metadata);
    let span = tracing::info_span!("invocation", function, invocation_id = %invocation_id);
    let trigger_data = invocation.data.remove(binding);
    drop(invocation);
    let units = match trigger_data {
        Some(value) => message_units(value),
        None => {
            tracing::error!(function, binding, "invocation carries no trigger data");
            return (
                StatusCode::BAD_REQUEST,
                format!("invocation Data has no `{binding}` binding"),
            )
                .into_response();
        }
    };
    let outcome = process(state, units, deadline)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let summary = format!(
        "records={} events={} skipped={} findings={} sent={} rejected={}",
        outcome.records,
        outcome.events,
        outcome.skipped.values().sum::<usize>(),
        outcome.findings.len(),
        outcome.sent,
        outcome.rejects.len()
    );
    tracing::info!(
        records = outcome.records,
        events = outcome.events,
        findings = outcome.findings.len(),
        sent = outcome.sent,
        rejected = outcome.rejects.len(),
        "invocation done"
    );
    let mut logs = vec![summary];
    logs.extend(outcome.rejects.iter().map(|r| {
        format!(
            "rejected ({}) {}: {}",
            r.kind,
            r.event_id.as_deref().unwrap_or("-"),
            r.reason
        )
    }));
    if trigger == TriggerRetry::Redelivers && outcome.gave_up_on_transient {
        // Event Grid retries the delivery; what was stored stays stored and claims were
        // released, so the retry finishes the job without alerting twice.
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(InvocationResult {
                outputs: Map::new(),
                logs,
                return_value: Value::Null,
            }),
        )
            .into_response();
    }
    let mut outputs = Map::new();
    if !outcome.rejects.is_empty() {
        let lines: Vec<String> = outcome
            .rejects
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        outputs.insert(
            REJECTS_BINDING.into(),
            Value::String(lines.join("\n") + "\n"),
        );
    }
    Json(InvocationResult {
        outputs,
        logs,
        return_value: Value::Null,
    })
    .into_response()
}

/// A body that could not be read (larger than [`MAX_INVOCATION_BYTES`], or the connection
/// failed). Event Hubs checkpoints past the batch whatever the answer, so the loss is at least
/// recorded in `rejects`; Event Grid is asked to redeliver (and dead-letters in the end).
fn unread_invocation(
    function: &'static str,
    invocation_id: Option<String>,
    error: &axum::Error,
    trigger: TriggerRetry,
) -> Response {
    let reason = format!(
        "the invocation body could not be read within {MAX_INVOCATION_BYTES} bytes ({}); the \
         batch was not processed: find it by this invocation id in the Event Hub",
        error_chain(error)
    );
    tracing::error!(function, invocation_id = invocation_id.as_deref().unwrap_or("-"), %reason, "invocation not read");
    let logs = vec![format!("rejected (oversized): {reason}")];
    if trigger == TriggerRetry::Redelivers {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(InvocationResult {
                outputs: Map::new(),
                logs,
                return_value: Value::Null,
            }),
        )
            .into_response();
    }
    let reject = Reject {
        kind: RejectKind::Oversized,
        reason,
        event_id: invocation_id,
        record: String::new(),
    };
    let mut outputs = Map::new();
    if let Ok(line) = serde_json::to_string(&reject) {
        outputs.insert(REJECTS_BINDING.into(), Value::String(line + "\n"));
    }
    Json(InvocationResult {
        outputs,
        logs,
        return_value: Value::Null,
    })
    .into_response()
}

/// The timer's run: one bounded purge of expired facts and claims. The timer binding's data
/// (schedule status, past due) only goes to the log.
async fn purge<S, R, K, P>(State(state): State<Arc<AppState<S, R, K, P>>>, body: Bytes) -> Response
where
    P: ExpiryPurge + 'static,
{
    let invocation: Invocation = match serde_json::from_slice(&body) {
        Ok(invocation) => invocation,
        Err(e) => {
            tracing::error!(function = PURGE_FUNCTION, error = %e, "invocation request is not the host's JSON");
            return (
                StatusCode::BAD_REQUEST,
                format!("invocation request is not {{\"Data\", \"Metadata\"}} JSON: {e}"),
            )
                .into_response();
        }
    };
    let invocation_id = invocation_id(&invocation.metadata);
    let span = tracing::info_span!("invocation", function = PURGE_FUNCTION, invocation_id = %invocation_id);
    let past_due = invocation
        .data
        .get(PURGE_BINDING)
        .and_then(|timer| timer.get("IsPastDue"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let now = state.clock.now();
    let started = std::time::Instant::now();
    let result = state
        .purger
        .purge(now, state.purge_max_rows)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_millis();
    match result {
        Ok(report) => {
            tracing::info!(
                expired = report.expired,
                deleted = report.deleted,
                already_gone = report.already_gone,
                changed = report.changed,
                more_remaining = report.more_remaining,
                requests = report.requests,
                elapsed_ms,
                past_due,
                "purge done"
            );
            let summary = format!(
                "purged expired={} deleted={} already_gone={} changed={} more_remaining={} requests={}",
                report.expired,
                report.deleted,
                report.already_gone,
                report.changed,
                report.more_remaining,
                report.requests
            );
            Json(InvocationResult {
                outputs: Map::new(),
                logs: vec![summary],
                return_value: Value::Null,
            })
            .into_response()
        }
        Err(e) => {
            let reason = error_chain(&e);
            tracing::error!(error = %reason, retryable = e.is_retryable(), elapsed_ms, "purge failed; the next run tries again");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(InvocationResult {
                    outputs: Map::new(),
                    logs: vec![format!("purge failed: {reason}")],
                    return_value: Value::Null,
                }),
            )
                .into_response()
        }
    }
}

/// The host's invocation id (`Metadata.sys.…`, or what the trigger sent), for log correlation.
fn invocation_id(metadata: &Map<String, Value>) -> String {
    let sys = metadata.get("sys").and_then(Value::as_object);
    sys.and_then(|s| s.get("RandGuid"))
        .or_else(|| metadata.get("InvocationId"))
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

/// The trigger data as JSON texts, one per message. The host hands Event Hubs batches over as
/// an array of message bodies (strings, or objects when it decoded them) and sometimes as a
/// JSON-encoded string of that array; an Event Grid event as an object or a string.
/// Takes the value so that a batch of up to 64 MiB of messages is moved, not copied.
fn message_units(value: Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .into_iter()
            .flat_map(|item| match item {
                Value::String(text) => vec![text],
                item @ Value::Array(_) => message_units(item),
                other => vec![other.to_string()],
            })
            .collect(),
        // Only an array is unwrapped: an event (an object) stays the text it came as.
        Value::String(text) if text.trim_start().starts_with('[') => {
            match serde_json::from_str::<Value>(&text) {
                Ok(inner @ Value::Array(_)) => message_units(inner),
                _ => vec![text],
            }
        }
        Value::String(text) => vec![text],
        other => vec![other.to_string()],
    }
}

/// How much of an invocation's time is kept for delivering alerts after the records: a
/// quarter, at most 30 s (the Slack sink's own retries stay within that).
fn delivery_reserve(deadline: Duration) -> Duration {
    (deadline / 4).min(Duration::from_secs(30))
}

async fn process<S, R, K, P>(
    state: &AppState<S, R, K, P>,
    units: Vec<String>,
    deadline: Instant,
) -> Outcome
where
    S: StateStore,
    R: ResourceReader,
    K: AlertSink,
{
    let now = state.clock.now();
    let records_deadline = deadline
        .checked_sub(delivery_reserve(state.deadline))
        .unwrap_or(deadline);
    let mut outcome = Outcome::default();
    for unit in &units {
        // Decoding is synchronous; gather first, then do the I/O per record.
        let mut records: Vec<(String, Result<ParsedEvent, Reject>)> = Vec::new();
        for_each_record(unit, &mut |record| {
            outcome.records += 1;
            let raw = record.raw.to_owned();
            match (record.format, record.result) {
                (Some(RecordFormat::AzureActivity), Ok(Parsed::Event(event))) => {
                    records.push((raw, Ok(event)))
                }
                (Some(RecordFormat::AzureActivity), Ok(Parsed::Skipped(skip))) => {
                    *outcome.skipped.entry(skip.as_str()).or_default() += 1;
                }
                (Some(RecordFormat::AzureActivity), Err(e)) | (None, Err(e)) => records.push((
                    raw.clone(),
                    Err(Reject {
                        kind: RejectKind::Invalid,
                        reason: e.to_string(),
                        event_id: None,
                        record: raw,
                    }),
                )),
                (Some(other), _) => records.push((
                    raw.clone(),
                    Err(Reject {
                        kind: RejectKind::Invalid,
                        reason: format!("a {other:?} record, not an Azure Activity Log record"),
                        event_id: None,
                        record: raw,
                    }),
                )),
                // The core never answers without a format unless it failed; nothing to keep.
                (None, Ok(_)) => {}
            }
        });
        for (raw, parsed) in records {
            let event = match parsed {
                Ok(event) => event,
                Err(reject) => {
                    tracing::warn!(reason = %reject.reason, "malformed record kept in rejects");
                    outcome.rejects.push(reject);
                    continue;
                }
            };
            outcome.events += 1;
            if Instant::now() >= records_deadline {
                outcome.gave_up_on_transient = true;
                outcome.rejects.push(Reject {
                    kind: RejectKind::Unfinished,
                    reason: format!(
                        "the invocation deadline ({} s) passed before this record was processed",
                        state.deadline.as_secs_f32()
                    ),
                    event_id: Some(event.meta.id.clone()),
                    record: raw,
                });
                continue;
            }
            let ingested = tokio::time::timeout_at(
                records_deadline,
                ingest_with_retry(state, &raw, &event, now),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure {
                    kind: RejectKind::Unfinished,
                    reason: format!(
                        "the invocation deadline ({} s) passed while this record was being \
                                 processed; replaying it is safe",
                        state.deadline.as_secs_f32()
                    ),
                })
            });
            match ingested {
                Ok(findings) => {
                    for finding in findings {
                        // A later evaluation of the same chain knows at least as much.
                        outcome.findings.insert(finding.id.clone(), finding);
                    }
                }
                Err(failure) => {
                    tracing::error!(event_id = %event.meta.id, kind = failure.kind.as_str(), reason = %failure.reason, "record kept in rejects");
                    outcome.gave_up_on_transient |= failure.kind != RejectKind::Permanent;
                    outcome.rejects.push(Reject {
                        kind: failure.kind,
                        reason: failure.reason,
                        event_id: Some(event.meta.id.clone()),
                        record: raw,
                    });
                }
            }
        }
    }
    let unfinished = outcome
        .rejects
        .iter()
        .filter(|r| r.kind == RejectKind::Unfinished)
        .count();
    if unfinished > 0 {
        tracing::error!(
            unfinished,
            deadline_secs = state.deadline.as_secs(),
            "invocation deadline reached; unfinished records kept in rejects"
        );
    }
    // The response shares the records' part of the deadline: delivery keeps its reserve. Cut
    // there, the findings are alerted without it (their claims lapse after the lease).
    let responses = tokio::time::timeout_at(records_deadline, respond(state, &mut outcome, now))
        .await
        .unwrap_or_else(|_| {
            tracing::error!(
                deadline_secs = state.deadline.as_secs(),
                "the invocation deadline came before the response finished; alerting without it"
            );
            None
        });
    match &state.alerts {
        Alerts::Sink(sink) => deliver_with_retry(state, sink, &mut outcome, now, deadline).await,
        Alerts::LogOnly => {
            for finding in outcome.findings.values() {
                tracing::warn!(finding = %finding.id, rule = %finding.rule, severity = %finding.severity, alert = %render::finding_json(finding), "finding logged only: Slack is not configured");
            }
        }
        Alerts::Unusable(reason) => {
            let findings: Vec<Finding> = outcome.findings.values().cloned().collect();
            for finding in findings {
                tracing::error!(finding = %finding.id, rule = %finding.rule, severity = %finding.severity, %reason, "finding not alerted: Slack is disabled; kept in rejects");
                outcome.rejects.push(Reject {
                    kind: RejectKind::Undelivered,
                    reason: format!("Slack is disabled: {reason}"),
                    event_id: None,
                    record: render::finding_json(&finding),
                });
            }
        }
    }
    if let Some(responses) = responses {
        // Delivery was tried (or the finding logged or kept): no retry acts on them again.
        if let Err(e) = state.detector.settle(&responses).await {
            tracing::error!(error = %error_chain(&e), "response claims not settled; they lapse after their lease");
        }
    }
    outcome
}

/// The opt-in response, before delivery, so each alert says what was done. Findings another
/// handler is responding to are left to it (it alerts them with its response). A store
/// failure leaves the findings without a response rather than losing their alerts.
async fn respond<S, R, K, P>(
    state: &AppState<S, R, K, P>,
    outcome: &mut Outcome,
    now: DateTime<Utc>,
) -> Option<Responses>
where
    S: StateStore,
{
    let responder = state.responder.as_ref()?;
    let mut findings: Vec<Finding> = outcome.findings.values().cloned().collect();
    match state.detector.respond(&mut findings, responder, now).await {
        Ok(responses) => {
            for id in &responses.held_by_other {
                tracing::info!(finding = %id, "another invocation is responding to this finding; it alerts it");
            }
            outcome.findings = responses
                .deliverable(findings)
                .into_iter()
                .map(|f| (f.id.clone(), f))
                .collect();
            Some(responses)
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "response skipped: the state store failed; alerting without it");
            None
        }
    }
}

struct Failure {
    kind: RejectKind,
    reason: String,
}

/// Enriches (ARM) and processes one event, retrying transient failures within the budget.
async fn ingest_with_retry<S, R, K, P>(
    state: &AppState<S, R, K, P>,
    raw: &str,
    event: &ParsedEvent,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, Failure>
where
    S: StateStore,
    R: ResourceReader,
    K: AlertSink,
{
    let what = format!("event {}", event.meta.id);
    retry(&state.retry.policy(), &what, None, |_| async {
        let enriched = arm::enrich(&state.reader, raw, event.clone())
            .await
            .map_err(StepError::Lookup)?;
        state
            .detector
            .process(&enriched, now)
            .await
            .map_err(StepError::Engine)
    })
    .await
    .map_err(|retried| Failure {
        kind: match retried.error.class() {
            Class::Transient => RejectKind::Transient,
            Class::Permanent => RejectKind::Permanent,
        },
        reason: error_chain(&retried.error),
    })
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Lookup(arm::LookupError),
    #[error(transparent)]
    Engine(EngineError),
}

impl Classify for StepError {
    fn class(&self) -> Class {
        let retryable = match self {
            StepError::Lookup(e) => e.is_retryable(),
            StepError::Engine(e) => e.is_retryable(),
        };
        if retryable {
            Class::Transient
        } else {
            Class::Permanent
        }
    }
}

/// Why a delivery round left findings undelivered.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    /// The sink failed transiently for some findings (their claims were released).
    #[error("{0}")]
    Sink(SinkError),
    /// The store failed around the sends.
    #[error(transparent)]
    Engine(EngineError),
    /// The round was cut at the invocation deadline.
    #[error("the invocation deadline passed while delivering")]
    Deadline,
}

impl Classify for RoundError {
    fn class(&self) -> Class {
        match self {
            RoundError::Sink(_) => Class::Transient,
            RoundError::Engine(e) if e.is_retryable() => Class::Transient,
            RoundError::Engine(_) | RoundError::Deadline => Class::Permanent,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RoundError::Sink(SinkError::Retryable {
                retry_after_secs: Some(secs),
                ..
            }) => Some(Duration::from_secs(*secs)),
            _ => None,
        }
    }
}

pub(crate) use snapwatch_http::error_chain;

/// Delivers the invocation's findings, retrying transient sink and store failures within the
/// budget; what still fails becomes an `undelivered` reject (its claim was released, so a
/// replay or the chain's next event alerts it).
async fn deliver_with_retry<S, R, K, P>(
    state: &AppState<S, R, K, P>,
    sink: &K,
    outcome: &mut Outcome,
    now: DateTime<Utc>,
    deadline: Instant,
) where
    S: StateStore,
    R: ResourceReader,
    K: AlertSink,
{
    // Each round delivers what the previous ones left; the retry driver owns the pauses.
    let pending = tokio::sync::Mutex::new(outcome.findings.values().cloned().collect::<Vec<_>>());
    let sent = AtomicUsize::new(0);
    let rounds = retry(&state.retry.policy(), "alert delivery", Some(deadline), |_| async {
        let mut pending = pending.lock().await;
        if pending.is_empty() {
            return Ok(());
        }
        // Cut at the deadline, a delivery may have sent an alert whose claim stays taken until
        // its lease ends: the replay of the reject then alerts once more at most.
        let delivery =
            tokio::time::timeout_at(deadline, state.detector.deliver(&pending, sink, now))
                .await
                .map_err(|_| RoundError::Deadline)?
                .map_err(RoundError::Engine)?;
        sent.fetch_add(delivery.sent.len(), Ordering::Relaxed);
        for id in &delivery.sent {
            let rule = pending
                .iter()
                .find(|f| &f.id == id)
                .map(|f| f.rule.id());
            tracing::info!(finding = %id, rule = rule.unwrap_or("-"), sink = sink.name(), "alert sent");
        }
        for (finding, error) in &delivery.rejected {
            tracing::error!(finding = %finding, error = %error, "alert permanently rejected by the sink");
        }
        pending.retain(|f| delivery.retry.iter().any(|(id, _)| id == &f.id));
        match delivery.retry.into_iter().next() {
            Some((_, error)) => Err(RoundError::Sink(error)),
            None => Ok(()),
        }
    })
    .await;
    outcome.sent += sent.into_inner();
    let last_error = match rounds {
        Ok(()) => String::new(),
        Err(retried) if retried.stop == Stop::Deadline => {
            "the invocation deadline passed before the alert could be retried".to_owned()
        }
        Err(retried) => {
            if retried.error.class() == Class::Transient {
                tracing::warn!(attempts = retried.attempts, error = %retried.error, "delivery failed transiently");
            }
            error_chain(&retried.error)
        }
    };
    let pending = pending.into_inner();
    for finding in pending {
        tracing::error!(finding = %finding.id, rule = %finding.rule, error = %last_error, "alert not delivered; kept in rejects");
        outcome.gave_up_on_transient = true;
        outcome.rejects.push(Reject {
            kind: RejectKind::Undelivered,
            reason: last_error.clone(),
            event_id: None,
            record: render::finding_json(&finding),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_form_the_host_hands_messages_in() {
        let record = r#"{"records":[{"a":1}]}"#;
        assert_eq!(message_units(json!([record, record])), vec![record, record]);
        let encoded = serde_json::to_string(&json!([record])).unwrap();
        assert_eq!(message_units(Value::String(encoded)), vec![record]);
        assert_eq!(
            message_units(json!({"records": [{"a": 1}]})),
            vec![r#"{"records":[{"a":1}]}"#]
        );
        assert_eq!(message_units(json!([{"id": "e"}])), vec![r#"{"id":"e"}"#]);
        // An Event Grid event the host passed as a string stays that text.
        assert_eq!(
            message_units(Value::String(r#" {"id":"e"}"#.into())),
            vec![r#" {"id":"e"}"#]
        );
        assert_eq!(
            message_units(Value::String("{broken".into())),
            vec!["{broken"]
        );
        assert_eq!(
            message_units(Value::String("[broken".into())),
            vec!["[broken"]
        );
        assert!(message_units(Value::Null).is_empty());
    }

    #[test]
    fn the_body_limit_covers_the_largest_batch_host_json_allows() {
        let host: Value = serde_json::from_str(include_str!("../app/host.json")).unwrap();
        let batch = host["extensions"]["eventHubs"]["maxEventBatchSize"]
            .as_u64()
            .unwrap();
        assert_eq!(batch, MAX_BATCH_MESSAGES as u64);
        // Two escapings of a message made of the characters that grow most.
        let worst = "\"\\".repeat(MAX_EVENT_HUB_MESSAGE_BYTES / 2);
        let once = serde_json::to_string(&[worst.as_str()]).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        assert!(twice.len() <= WORST_ESCAPING * MAX_EVENT_HUB_MESSAGE_BYTES + 8);
        assert_eq!(MAX_INVOCATION_BYTES, 257 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_read_is_noted_in_rejects_for_event_hubs() {
        let error = axum::Error::new("length limit exceeded");
        let response = unread_invocation(
            EVENT_HUB_FUNCTION,
            Some("inv-1".into()),
            &error,
            TriggerRetry::Checkpoints,
        );
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        let line: Value =
            serde_json::from_str(answer["Outputs"]["rejects"].as_str().unwrap().trim()).unwrap();
        assert_eq!(line["kind"], "oversized");
        assert_eq!(line["event_id"], "inv-1");
        assert!(line["reason"]
            .as_str()
            .unwrap()
            .contains("length limit exceeded"));
        // Event Grid redelivers (and dead-letters) instead.
        let response =
            unread_invocation(EVENT_GRID_FUNCTION, None, &error, TriggerRetry::Redelivers);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn delivery_keeps_a_bounded_share_of_the_deadline() {
        assert_eq!(
            delivery_reserve(Duration::from_secs(240)),
            Duration::from_secs(30)
        );
        assert_eq!(
            delivery_reserve(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn backoff_doubles_and_never_overflows() {
        let budget = RetryBudget {
            attempts: 4,
            backoff: Duration::from_millis(100),
        };
        assert_eq!(budget.pause(1), Duration::from_millis(100));
        assert_eq!(budget.pause(3), Duration::from_millis(400));
        assert!(budget.pause(u32::MAX) >= Duration::from_millis(100));
    }

    #[test]
    fn reject_kinds_keep_their_names_in_the_blob() {
        for (kind, name) in [
            (RejectKind::Invalid, "invalid"),
            (RejectKind::Transient, "transient"),
            (RejectKind::Permanent, "permanent"),
            (RejectKind::Undelivered, "undelivered"),
            (RejectKind::Unfinished, "unfinished"),
            (RejectKind::Oversized, "oversized"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
            assert_eq!(kind.to_string(), name);
        }
    }
}

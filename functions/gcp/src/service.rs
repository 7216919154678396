//! The HTTP service Eventarc pushes to: decode a CloudEvent → core → encode a status.
//!
//! Eventarc delivers through Pub/Sub push, so the status is the acknowledgement: any 2xx acks
//! (handled, irrelevant, or poison: a malformed event is kept in the reject store and acked,
//! because redelivering it never helps); 429/5xx nacks, and Pub/Sub redelivers with backoff.

use crate::rejects::{RejectStore, RejectedEvent};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use snapwatch_core::engine::{Detector, EngineError};
use snapwatch_core::parse::gcp::{parse_cloudevent, parse_entry, AUDIT_LOG_WRITTEN};
use snapwatch_core::parse::{ParseError, Parsed, Skip};
use snapwatch_core::ports::{AlertSink, Clock, Responder, StateStore, StoreError};
use std::sync::Arc;

/// Structured-mode CloudEvents carry the whole event, attributes included, in the body.
const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// What the aggregated-sink trigger delivers: a Pub/Sub message whose data is a LogEntry.
const PUBSUB_MESSAGE_PUBLISHED: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// Everything a request needs, built once in `main`.
pub struct Service<S, R, K, P> {
    pub detector: Detector<S>,
    pub rejects: R,
    /// `None`: no alert destination configured; findings are only logged.
    pub slack: Option<K>,
    pub clock: Box<dyn Clock>,
    /// The opt-in response; `None` when every rule's mode is `off`.
    pub responder: Option<P>,
}

/// The router: `POST /` takes Eventarc's CloudEvents.
pub fn app<S, R, K, P>(service: Arc<Service<S, R, K, P>>) -> Router
where
    S: StateStore + 'static,
    R: RejectStore + 'static,
    K: AlertSink + 'static,
    P: Responder + 'static,
{
    Router::new()
        .route("/", post(receive::<S, R, K, P>))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

/// One decoded delivery: the CloudEvent id and what the parser made of the body.
struct Decoded {
    event_id: String,
    parsed: Result<Parsed, ParseError>,
}

/// What happened to a delivery; becomes the status code and a small JSON body.
#[derive(Debug)]
enum Outcome {
    Processed {
        findings: usize,
        sent: usize,
    },
    /// Irrelevant, failed or intermediate: acknowledged, nothing to do.
    Skipped(Skip),
    Rejected(String),
    /// The state store is down or throttled: Eventarc must redeliver.
    StoreUnavailable(String),
    /// The store refused for good (permissions, missing database, corrupt data). Still a 5xx:
    /// acking would lose the event, while Pub/Sub keeps retrying it (and dead-letters it if a
    /// dead-letter topic is set) until the deployment is fixed.
    StoreFailed(String),
    /// An alert could not be sent yet; the claim was released so the retry sends it.
    AlertRetry {
        retry_after_secs: Option<u64>,
        reason: String,
    },
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Outcome::Processed { findings, sent } => (
                StatusCode::OK,
                json!({ "outcome": "processed", "findings": findings, "sent": sent }),
            ),
            Outcome::Skipped(skip) => (
                StatusCode::OK,
                json!({ "outcome": "skipped", "reason": skip.as_str() }),
            ),
            Outcome::Rejected(reason) => (
                StatusCode::OK,
                json!({ "outcome": "rejected", "reason": reason }),
            ),
            Outcome::StoreUnavailable(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "outcome": "retry", "reason": reason }),
            ),
            Outcome::StoreFailed(reason) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "outcome": "failed", "reason": reason }),
            ),
            Outcome::AlertRetry { reason, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "outcome": "retry", "reason": reason }),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if let Outcome::AlertRetry {
            retry_after_secs: Some(secs),
            ..
        } = self
        {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[tracing::instrument(name = "cloudevent", skip_all, fields(event_id, outcome))]
async fn receive<S, R, K, P>(
    State(service): State<Arc<Service<S, R, K, P>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Outcome
where
    S: StateStore,
    R: RejectStore,
    K: AlertSink,
    P: Responder,
{
    let decoded = decode(&headers, &body);
    let span = tracing::Span::current();
    span.record("event_id", decoded.event_id.as_str());
    let outcome = handle(&service, &headers, &body, decoded).await;
    span.record("outcome", tracing::field::debug(&outcome));
    outcome
}

async fn handle<S, R, K, P>(
    service: &Service<S, R, K, P>,
    headers: &HeaderMap,
    body: &[u8],
    decoded: Decoded,
) -> Outcome
where
    S: StateStore,
    R: RejectStore,
    K: AlertSink,
    P: Responder,
{
    let now = service.clock.now();
    let event = match decoded.parsed {
        Ok(Parsed::Event(event)) => event,
        Ok(Parsed::Skipped(skip)) => {
            tracing::debug!(event_id = %decoded.event_id, reason = skip.as_str(), "event skipped");
            return Outcome::Skipped(skip);
        }
        Err(error) => {
            let reason = error.to_string();
            tracing::error!(event_id = %decoded.event_id, %reason, "malformed event rejected and kept");
            let rejected = RejectedEvent {
                event_id: Some(decoded.event_id).filter(|id| !id.is_empty()),
                reason: reason.clone(),
                content_type: content_type(headers).to_string(),
                body: String::from_utf8_lossy(body).into_owned(),
                received_at: now,
            };
            // Acking is safe only once the event is kept somewhere a person can find it.
            return match service.rejects.keep(&rejected).await {
                Ok(()) => Outcome::Rejected(reason),
                Err(e) => store_outcome(&e, "keeping a rejected event"),
            };
        }
    };
    let mut findings = match service.detector.process(&event, now).await {
        Ok(findings) => findings,
        Err(e) => return engine_outcome(&e),
    };
    for finding in &findings {
        tracing::info!(event_id = %event.meta.id, finding = %finding.id, rule = %finding.rule, severity = %finding.severity, "finding");
    }
    // The opt-in response, before delivery, so each alert says what was done. A finding
    // another request is responding to is left to it: that request alerts it.
    let responses = match &service.responder {
        Some(responder) => match service
            .detector
            .respond(&mut findings, responder, now)
            .await
        {
            Ok(responses) => Some(responses),
            Err(e) => return engine_outcome(&e),
        },
        None => None,
    };
    if let Some(responses) = &responses {
        findings = responses.deliverable(findings);
    }
    let outcome = deliver(service, &findings, now).await;
    if let Some(responses) = &responses {
        // Delivery was tried: no redelivery or racer acts on these findings again.
        if let Err(e) = service.detector.settle(responses).await {
            tracing::error!(error = %e, "response claims not settled; they lapse after their lease");
        }
    }
    outcome
}

/// Sends the findings to Slack (when configured) and says how the delivery went.
async fn deliver<S, R, K, P>(
    service: &Service<S, R, K, P>,
    findings: &[snapwatch_core::Finding],
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome
where
    S: StateStore,
    K: AlertSink,
{
    let mut sent = 0;
    if let Some(slack) = &service.slack {
        let delivery = match service.detector.deliver(findings, slack, now).await {
            Ok(delivery) => delivery,
            Err(e) => return engine_outcome(&e),
        };
        sent = delivery.sent.len();
        if delivery.needs_retry() {
            let retry_after_secs = delivery
                .retry
                .iter()
                .filter_map(|(_, e)| match e {
                    snapwatch_core::ports::SinkError::Retryable {
                        retry_after_secs, ..
                    } => *retry_after_secs,
                    _ => None,
                })
                .max();
            let reason = delivery
                .retry
                .first()
                .map(|(id, e)| format!("alert {id} not delivered: {e}"))
                .unwrap_or_default();
            return Outcome::AlertRetry {
                retry_after_secs,
                reason,
            };
        }
    }
    Outcome::Processed {
        findings: findings.len(),
        sent,
    }
}

fn engine_outcome(error: &EngineError) -> Outcome {
    tracing::error!(error = %error, retryable = error.is_retryable(), "event not processed");
    if error.is_retryable() {
        Outcome::StoreUnavailable(error.to_string())
    } else {
        Outcome::StoreFailed(error.to_string())
    }
}

fn store_outcome(error: &StoreError, what: &str) -> Outcome {
    tracing::error!(error = %error, what, "state store failed");
    if error.is_retryable() {
        Outcome::StoreUnavailable(format!("{what}: {error}"))
    } else {
        Outcome::StoreFailed(format!("{what}: {error}"))
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Binary mode: `ce-*` headers carry the attributes and the body is the LogEntry.
/// Structured mode: `application/cloudevents+json`, the body is the whole CloudEvent.
fn decode(headers: &HeaderMap, body: &[u8]) -> Decoded {
    let content_type = content_type(headers).to_ascii_lowercase();
    let text = std::str::from_utf8(body)
        .map_err(|e| ParseError::UnknownFormat(format!("the body is not UTF-8: {e}")));
    if content_type.starts_with(STRUCTURED_CONTENT_TYPE) {
        let event_id = text
            .as_ref()
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
            .unwrap_or_default();
        return Decoded {
            event_id,
            parsed: text.and_then(parse_structured),
        };
    }
    let event_id = header_text(headers, "ce-id")
        .unwrap_or_default()
        .to_string();
    if content_type.starts_with(BATCH_CONTENT_TYPE) {
        return Decoded {
            event_id,
            parsed: Err(ParseError::UnknownFormat(
                "batched CloudEvents are not accepted (Eventarc sends one event per request)"
                    .to_string(),
            )),
        };
    }
    let parsed = match (
        header_text(headers, "ce-specversion"),
        header_text(headers, "ce-type"),
    ) {
        (None, _) => Err(ParseError::UnknownFormat(
            "not a CloudEvent: no ce-specversion header and not application/cloudevents+json"
                .to_string(),
        )),
        (Some(_), None) => Err(ParseError::MissingField("ce-type")),
        (Some(_), Some(_)) if event_id.is_empty() => Err(ParseError::MissingField("ce-id")),
        (Some(_), Some(PUBSUB_MESSAGE_PUBLISHED)) => text.and_then(|t| {
            let push: Value = serde_json::from_str(t)?;
            parse_entry(&pubsub_log_entry(&push)?)
        }),
        (Some(_), Some(kind)) if kind != AUDIT_LOG_WRITTEN => Ok(Parsed::Skipped(Skip::Irrelevant)),
        (Some(_), Some(_)) => text.and_then(parse_entry),
    };
    Decoded { event_id, parsed }
}

/// A structured CloudEvent: an audit-log event, or a Pub/Sub message from the aggregated sink.
fn parse_structured(text: &str) -> Result<Parsed, ParseError> {
    let event: Value = serde_json::from_str(text)?;
    if event.get("type").and_then(Value::as_str) == Some(PUBSUB_MESSAGE_PUBLISHED) {
        let data = event.get("data").ok_or(ParseError::MissingField("data"))?;
        return parse_entry(&pubsub_log_entry(data)?);
    }
    parse_cloudevent(text)
}

/// The LogEntry JSON inside a Pub/Sub push body `{"message": {"data": base64}, "subscription"}`.
fn pubsub_log_entry(push: &Value) -> Result<String, ParseError> {
    use base64::Engine as _;
    let encoded = push
        .get("message")
        .and_then(|m| m.get("data"))
        .and_then(Value::as_str)
        .ok_or(ParseError::MissingField("message.data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| ParseError::InvalidField {
            field: "message.data",
            reason: format!("not base64: {e}"),
        })?;
    String::from_utf8(bytes).map_err(|e| ParseError::InvalidField {
        field: "message.data",
        reason: format!("not UTF-8: {e}"),
    })
}

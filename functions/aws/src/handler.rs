//! The invocation: decode the EventBridge event → run the core → deliver → encode the outcome.

use crate::dead_letter::{DeadLetter, DeadLetterError, Rejected};
use crate::dynamo::{DynamoSession, DynamoStore};
use crate::securityhub::SecurityHubSink;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use snapwatch_aws_inventory::AwsResponder;
use snapwatch_core::engine::{Detector, EngineError, Responses};
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::parse::{aws, Parsed};
use snapwatch_core::ports::{AlertSink, Clock, SinkError, StateStore};
use snapwatch_core::{Config, Finding};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument;

#[derive(serde::Deserialize)]
struct IdOnly {
    id: Option<String>,
}

/// A store that hands out a view per invocation (DynamoDB remembers its own writes in it).
pub trait SessionStore: Send + Sync {
    type Session<'a>: StateStore
    where
        Self: 'a;
    fn session(&self) -> Self::Session<'_>;
}

impl SessionStore for DynamoStore {
    type Session<'a> = DynamoSession<'a>;
    fn session(&self) -> DynamoSession<'_> {
        DynamoStore::session(self)
    }
}

/// The memory store needs no per-invocation view: the detector borrows it.
impl SessionStore for MemoryStore {
    type Session<'a> = &'a MemoryStore;
    fn session(&self) -> &MemoryStore {
        self
    }
}

/// What the handler did with one event; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub status: Status,
    /// The CloudTrail `eventID` when parsed, else the EventBridge `id` when readable.
    pub event_id: Option<String>,
    /// Why it was skipped or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ids of the findings the event's chains currently yield.
    pub findings: Vec<String>,
    /// Finding ids delivered by this invocation, per sink.
    pub sent: BTreeMap<&'static str, Vec<String>>,
    /// Finding ids this invocation responded to (their alerts say what was done).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub responded: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Processed,
    Skipped,
    DeadLettered,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The chain state could not be read or written.
    #[error("chain state: {0}")]
    Engine(#[from] EngineError),
    /// At least one finding could not be delivered and its claim was released: retry the event.
    #[error(
        "alert delivery failed transiently for {pending} finding(s); the event must be retried"
    )]
    SinkUnavailable {
        pending: usize,
        #[source]
        first: SinkError,
    },
    /// A malformed event could not be kept in the dead-letter queue.
    #[error("cannot keep a rejected event: {0}")]
    DeadLetter(#[from] DeadLetterError),
}

impl HandlerError {
    /// Stable Lambda `errorType` values: alarms and the on-failure destination key on them.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Engine(e) if e.is_retryable() => "StoreUnavailable",
            HandlerError::Engine(_) => "StoreFailed",
            HandlerError::SinkUnavailable { .. } => "SinkUnavailable",
            HandlerError::DeadLetter(e) if e.is_retryable() => "DeadLetterUnavailable",
            HandlerError::DeadLetter(_) => "DeadLetterFailed",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Engine(e) => e.is_retryable(),
            HandlerError::SinkUnavailable { .. } => true,
            HandlerError::DeadLetter(e) => e.is_retryable(),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(err: HandlerError) -> Self {
        diagnostic(&err, err.error_type())
    }
}

/// The Lambda error response: a stable `errorType` and a message carrying the whole source chain
/// (the SDK and listing errors never hold secrets).
pub(crate) fn diagnostic(
    err: &dyn std::error::Error,
    error_type: &str,
) -> lambda_runtime::Diagnostic {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    lambda_runtime::Diagnostic {
        error_type: error_type.to_string(),
        error_message: message,
    }
}

/// Everything an invocation needs, built once by `main` (or by a test).
pub struct App<St, Dl, Sn, Sl> {
    pub store: St,
    pub config: Config,
    pub dead_letter: Dl,
    pub sns: Option<Sn>,
    pub slack: Option<Sl>,
    /// Imports findings into Security Hub when `SNAPWATCH_SECURITYHUB=on`.
    pub securityhub: Option<SecurityHubSink>,
    /// Undoes what a finding's chain added (`SNAPWATCH_RESPONSE`); `None` when every mode is off.
    pub responder: Option<AwsResponder>,
    pub clock: Arc<dyn Clock>,
}

impl<St, Dl, Sn, Sl> App<St, Dl, Sn, Sl>
where
    St: SessionStore,
    Dl: DeadLetter,
    Sn: AlertSink,
    Sl: AlertSink,
{
    /// Handles one raw EventBridge event.
    pub async fn handle(&self, raw: &str) -> Result<Outcome, HandlerError> {
        let span = tracing::info_span!(
            "event",
            event_id = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        self.handle_inner(raw, &span).instrument(span.clone()).await
    }

    async fn handle_inner(&self, raw: &str, span: &tracing::Span) -> Result<Outcome, HandlerError> {
        let envelope = serde_json::from_str::<EventBridgeEvent<Box<RawValue>>>(raw);
        // The id is worth logging even when the rest of the envelope is broken.
        let envelope_id = match &envelope {
            Ok(e) => e.id.clone(),
            Err(_) => serde_json::from_str::<IdOnly>(raw).ok().and_then(|e| e.id),
        };
        let parsed = match &envelope {
            Err(e) => Err(format!("not an EventBridge event: {e}")),
            Ok(_) => aws::parse_eventbridge(raw).map_err(|e| e.to_string()),
        };
        let event = match parsed {
            Err(reason) => {
                span.record("event_id", envelope_id.as_deref().unwrap_or("unknown"));
                span.record("outcome", "dead_lettered");
                tracing::warn!(reason = %reason, "event cannot be parsed; keeping it in the dead-letter queue");
                self.dead_letter
                    .keep(&Rejected {
                        event_id: envelope_id.clone(),
                        reason: reason.clone(),
                        raw: raw.to_string(),
                    })
                    .await?;
                return Ok(Outcome {
                    status: Status::DeadLettered,
                    event_id: envelope_id,
                    reason: Some(reason),
                    findings: Vec::new(),
                    sent: BTreeMap::new(),
                    responded: Vec::new(),
                });
            }
            Ok(Parsed::Skipped(skip)) => {
                span.record("event_id", envelope_id.as_deref().unwrap_or("unknown"));
                span.record("outcome", "skipped");
                tracing::info!(reason = skip.as_str(), "event is not chain evidence");
                return Ok(Outcome {
                    status: Status::Skipped,
                    event_id: envelope_id,
                    reason: Some(skip.as_str().to_string()),
                    findings: Vec::new(),
                    sent: BTreeMap::new(),
                    responded: Vec::new(),
                });
            }
            Ok(Parsed::Event(event)) => event,
        };
        span.record("event_id", event.meta.id.as_str());

        let detector = Detector::new(self.store.session(), self.config.clone());
        let now = self.clock.now();
        let mut findings = detector.process(&event, now).await?;
        let finding_ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        // The response runs before delivery so each alert says what was done.
        let responses = match &self.responder {
            Some(responder) => detector.respond(&mut findings, responder, now).await?,
            None => Responses::default(),
        };
        let findings = responses.deliverable(findings);
        let mut sent = BTreeMap::new();
        let mut retry: Vec<SinkError> = Vec::new();
        if let Some(sns) = &self.sns {
            deliver(&detector, &findings, sns, now, &mut sent, &mut retry).await?;
        }
        if let Some(slack) = &self.slack {
            deliver(&detector, &findings, slack, now, &mut sent, &mut retry).await?;
        }
        if let Some(hub) = &self.securityhub {
            deliver(&detector, &findings, hub, now, &mut sent, &mut retry).await?;
        }
        // Acted: never again for these findings, whether or not every sink took the alert.
        detector.settle(&responses).await?;
        tracing::info!(
            event_name = %event.meta.name,
            facts = event.facts.len(),
            findings = ?finding_ids,
            sent = ?sent,
            responded = ?responses.responded,
            "event processed"
        );
        let pending = retry.len();
        if let Some(first) = retry.into_iter().next() {
            span.record("outcome", "retry");
            return Err(HandlerError::SinkUnavailable { pending, first });
        }
        span.record("outcome", "processed");
        Ok(Outcome {
            status: Status::Processed,
            event_id: Some(event.meta.id),
            reason: None,
            findings: finding_ids,
            sent,
            responded: responses.responded,
        })
    }
}

/// Delivers to one sink, collecting what was sent and what must be retried.
pub(crate) async fn deliver<S: StateStore, K: AlertSink>(
    detector: &Detector<S>,
    findings: &[Finding],
    sink: &K,
    now: DateTime<Utc>,
    sent: &mut BTreeMap<&'static str, Vec<String>>,
    retry: &mut Vec<SinkError>,
) -> Result<(), EngineError> {
    let delivery = detector.deliver(findings, sink, now).await?;
    for (finding, err) in &delivery.rejected {
        tracing::error!(finding = %finding, sink = sink.name(), error = %err, "alert permanently rejected");
    }
    if !delivery.sent.is_empty() {
        sent.insert(sink.name(), delivery.sent);
    }
    retry.extend(delivery.retry.into_iter().map(|(_, err)| err));
    Ok(())
}

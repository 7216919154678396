//! Where events that cannot be parsed are kept: an SQS queue (the same one the Terraform module
//! uses as the Lambda's on-failure destination), so an operator can inspect and replay them.
//!
//! Why a direct `SendMessage` rather than failing the invocation into the on-failure destination:
//! a failed invocation is retried by Lambda first (twice for asynchronous invokes), which for a
//! malformed event is wasted work and noise; sending it ourselves keeps it at once, with the
//! reason attached, and lets the handler acknowledge.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use snapwatch_aws_inventory::classify::sdk_error_class;
use snapwatch_http::Class;
use std::future::Future;

/// An event that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The EventBridge `id` (or the CloudTrail `eventID`), when it could be read.
    pub event_id: Option<String>,
    pub reason: String,
    /// The raw event exactly as received.
    pub raw: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// Throttling / network: the invocation should fail so the event is retried.
    #[error("dead-letter queue temporarily unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Missing queue, access denied, message too large: retrying will not help.
    #[error("dead-letter queue rejected the event: {message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl DeadLetterError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeadLetterError::Unavailable { .. })
    }
}

/// Keeps rejected events.
pub trait DeadLetter: Send + Sync {
    fn keep(&self, rejected: &Rejected)
        -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// SQS: the message body is the raw event; the reason and id ride along as message attributes.
#[derive(Debug, Clone)]
pub struct SqsDeadLetter {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetter {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetter {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS message attributes are limited; a reason longer than this is cut.
const MAX_REASON_CHARS: usize = 1000;

impl DeadLetter for SqsDeadLetter {
    async fn keep(&self, rejected: &Rejected) -> Result<(), DeadLetterError> {
        let text = |value: String| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| DeadLetterError::Permanent {
                    message: format!("invalid message attribute: {e}"),
                    source: Some(Box::new(e)),
                })
        };
        let reason: String = rejected.reason.chars().take(MAX_REASON_CHARS).collect();
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            // SQS rejects empty bodies; an empty invocation payload is still kept, visibly.
            .message_body(if rejected.raw.is_empty() {
                "(empty event)"
            } else {
                &rejected.raw
            })
            .message_attributes("reason", text(reason)?)
            .message_attributes("source", text("snapwatch-aws".into())?);
        if let Some(id) = &rejected.event_id {
            send = send.message_attributes("event_id", text(id.clone())?);
        }
        send.send().await.map(|_| ()).map_err(classify)
    }
}

fn classify<E>(
    err: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> DeadLetterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!(
        "SQS SendMessage failed: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    let retryable = sdk_error_class(&err) == Class::Transient;
    let source = Some(Box::new(err) as Box<dyn std::error::Error + Send + Sync>);
    if retryable {
        DeadLetterError::Unavailable { message, source }
    } else {
        DeadLetterError::Permanent { message, source }
    }
}

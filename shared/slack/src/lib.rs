//! Slack incoming-webhook [`AlertSink`]: posts the core's Block Kit rendering of a finding.
//!
//! Within one invocation it retries 429s (honouring `Retry-After` up to a bound), 408, 5xx and
//! network failures a few times through the shared retry layer (`snapwatch-http`); what still
//! fails is reported as retryable so the engine releases the claim and the platform's retry sends
//! it later. Any other 4xx (bad payload, revoked or archived webhook) is permanent: retrying
//! would never succeed.

use snapwatch_core::config::Secret;
use snapwatch_core::ports::{AlertSink, SinkError};
use snapwatch_core::{render, Finding};
use snapwatch_http::{retry, retry_after_secs, status_class, Backoff, Class, Failure};
use std::time::Duration;

const SINK: &str = "slack";

/// The webhook URL is a credential: held as the workspace's one [`Secret`] wrapper, so it never
/// appears in `Debug`, logs or errors.
#[derive(Clone, Debug)]
pub struct WebhookUrl(Secret<reqwest::Url>);

/// Why a Slack sink cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SlackConfigError {
    /// Not a URL at all.
    #[error("the Slack webhook URL is not a valid URL")]
    InvalidUrl,
    /// Plain http to a non-loopback host.
    #[error("the Slack webhook URL must use https (plain http is accepted only for loopback test receivers)")]
    NotHttps,
    /// reqwest refused the client configuration.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl WebhookUrl {
    /// Accepts https URLs, and plain http only for loopback test receivers.
    pub fn parse(raw: &str) -> Result<Self, SlackConfigError> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| SlackConfigError::InvalidUrl)?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match url.scheme() {
            "https" => Ok(WebhookUrl(Secret::new(url))),
            "http" if loopback => Ok(WebhookUrl(Secret::new(url))),
            _ => Err(SlackConfigError::NotHttps),
        }
    }
}

/// How hard one `send` tries before handing the failure back to the platform's retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per finding, the first included.
    pub attempts: u32,
    /// Longest `Retry-After` waited for inside the invocation; longer ones are returned.
    pub max_wait: Duration,
    /// Pause after the first 5xx or network error; it doubles per further failure (jittered).
    pub backoff: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            max_wait: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// One POST per `send`, for callers that own the retry budget themselves (the Azure
    /// handler's delivery rounds): the sink's retries would otherwise multiply theirs.
    pub fn single_attempt() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The shared retry layer's policy this one stands for.
    fn driver(&self) -> snapwatch_http::RetryPolicy {
        snapwatch_http::RetryPolicy {
            max_attempts: self.attempts.max(1),
            backoff: Backoff::exponential(self.backoff, self.backoff.saturating_mul(8)),
            max_retry_after: self.max_wait,
        }
    }
}

/// Posts findings to one incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackSink {
    client: reqwest::Client,
    webhook: WebhookUrl,
    policy: RetryPolicy,
}

impl SlackSink {
    /// A sink posting to `webhook`, retrying as `policy` says.
    pub fn new(webhook: WebhookUrl, policy: RetryPolicy) -> Result<Self, SlackConfigError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("snapwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SlackConfigError::Client)?;
        Ok(SlackSink {
            client,
            webhook,
            policy,
        })
    }

    /// One POST: delivered, or a classified failure (429 carries its `Retry-After`).
    async fn attempt(&self, body: &serde_json::Value) -> Result<(), Failure> {
        let response = self
            .client
            .post(self.webhook.0.expose().clone())
            .json(body)
            .send()
            .await
            // `without_url`: reqwest errors would otherwise carry the secret webhook URL.
            .map_err(|e| Failure::transient(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() == 429 {
            let header = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            let secs = retry_after_secs(header).unwrap_or(1);
            return Err(
                Failure::transient(format!("rate limited (Retry-After: {secs}s)"))
                    .with_retry_after(Duration::from_secs(secs)),
            );
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let message = format!("HTTP {status}: {text}");
        Err(match status_class(status.as_u16()) {
            Class::Transient => Failure::transient(message),
            Class::Permanent => Failure::permanent(message),
        })
    }
}

impl AlertSink for SlackSink {
    fn name(&self) -> &'static str {
        SINK
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let body = render::slack_message(finding);
        let what = format!("slack post of {}", finding.id);
        let retried = retry(&self.policy.driver(), &what, None, |_| self.attempt(&body)).await;
        let Err(retried) = retried else {
            return Ok(());
        };
        let failure = retried.error;
        Err(failure
            .class
            .sink_error(SINK, failure.message, failure.retry_after))
    }
}

//! Slack incoming-webhook [`AlertSink`]: posts the core's Block Kit rendering of a finding.
//!
//! Within one invocation it retries 429s (honouring `Retry-After` up to a bound), 5xx and network
//! failures a few times; what still fails is reported as retryable so the engine releases the
//! claim and the platform's retry sends it later. A 4xx other than 429 (bad payload, revoked or
//! archived webhook) is permanent: retrying would never succeed.

use snapwatch_core::ports::{AlertSink, SinkError};
use snapwatch_core::{render, Finding};
use std::time::Duration;

const SINK: &str = "slack";

/// The webhook URL is a credential: it never appears in `Debug`, logs or errors.
#[derive(Clone)]
pub struct WebhookUrl(reqwest::Url);

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebhookUrl({}://{}/…)",
            self.0.scheme(),
            self.0.host_str().unwrap_or("?")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlackConfigError {
    #[error("the Slack webhook URL is not a valid URL")]
    InvalidUrl,
    #[error("the Slack webhook URL must use https (plain http is accepted only for loopback test receivers)")]
    NotHttps,
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, SlackConfigError> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| SlackConfigError::InvalidUrl)?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match url.scheme() {
            "https" => Ok(WebhookUrl(url)),
            "http" if loopback => Ok(WebhookUrl(url)),
            _ => Err(SlackConfigError::NotHttps),
        }
    }
}

/// How hard one `send` tries before handing the failure back to the platform's retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// Longest `Retry-After` waited for inside the invocation; longer ones are returned.
    pub max_wait: Duration,
    /// Pause between attempts after a 5xx or network error.
    pub backoff: Duration,
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

#[derive(Debug, Clone)]
pub struct SlackSink {
    client: reqwest::Client,
    webhook: WebhookUrl,
    policy: RetryPolicy,
}

impl SlackSink {
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

    async fn attempt(&self, body: &serde_json::Value) -> Attempt {
        let response = match self
            .client
            .post(self.webhook.0.clone())
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            // `without_url`: reqwest errors would otherwise carry the secret webhook URL.
            Err(e) => return Attempt::Transient(format!("request failed: {}", e.without_url())),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        if status.as_u16() == 429 {
            Attempt::RateLimited(retry_after.unwrap_or(1))
        } else if status.is_server_error() {
            Attempt::Transient(format!("HTTP {status}: {text}"))
        } else {
            Attempt::Rejected(format!("HTTP {status}: {text}"))
        }
    }
}

enum Attempt {
    Delivered,
    RateLimited(u64),
    Transient(String),
    Rejected(String),
}

impl AlertSink for SlackSink {
    fn name(&self) -> &'static str {
        SINK
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let body = render::slack_message(finding);
        let mut last = String::new();
        let mut last_retry_after = None;
        for attempt in 1..=self.policy.attempts.max(1) {
            match self.attempt(&body).await {
                Attempt::Delivered => return Ok(()),
                Attempt::Rejected(message) => {
                    return Err(SinkError::Permanent {
                        sink: SINK,
                        message,
                    })
                }
                Attempt::RateLimited(secs) => {
                    last = format!("rate limited (Retry-After: {secs}s)");
                    last_retry_after = Some(secs);
                    let wait = Duration::from_secs(secs);
                    if wait > self.policy.max_wait || attempt == self.policy.attempts {
                        break;
                    }
                    tracing::info!(finding = %finding.id, retry_after = secs, "slack rate limited; waiting");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Transient(message) => {
                    last = message;
                    last_retry_after = None;
                    if attempt < self.policy.attempts {
                        tokio::time::sleep(self.policy.backoff * attempt).await;
                    }
                }
            }
        }
        Err(SinkError::Retryable {
            sink: SINK,
            message: last,
            retry_after_secs: last_retry_after,
        })
    }
}

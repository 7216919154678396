//! Security Hub [`AlertSink`]: each finding imported with `BatchImportFindings` in ASFF
//! (`snapwatch_core::render::asff`), under the account's default product ARN.
//!
//! The call is one signed JSON POST (`/findings/import`), made here with `aws-sigv4` and
//! `reqwest` (both already in the function's build for the baseline's EC2/RDS listing) instead
//! of `aws-sdk-securityhub`, whose generated code would add minutes of compile time and most of
//! a megabyte to the bootstrap for one operation.
//!
//! A 200 answer can still hold `FailedFindings`: those are never ignored. Throttling and
//! internal errors are retried here with backoff and, when they persist, reported as
//! retryable (the engine releases the claim and the event is retried); any other error code
//! is a permanent rejection with Security Hub's code and message (the engine reports it).

use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;
use snapwatch_aws_inventory::classify::class_of;
use snapwatch_aws_inventory::signing::{signed_post_headers, CachedCredentials};
use snapwatch_aws_inventory::{RetryPolicy, SnapshotLister};
use snapwatch_core::ports::{AlertSink, Clock, SinkError};
use snapwatch_core::render::asff::{self, AsffTarget};
use snapwatch_core::Finding;
use snapwatch_http::{retry, Class, Classify, Failure};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const SINK: &str = "securityhub";
const SIGNING_NAME: &str = "securityhub";
const JSON_CONTENT_TYPE: &str = "application/json";

/// Whether an error code (of the HTTP error or of a `FailedFindings` entry) lets the same
/// import succeed later: the one AWS classifier decides.
fn is_transient_code(code: &str) -> bool {
    class_of(Some(code), None) == Class::Transient
}

/// The regional endpoint; China regions live under `amazonaws.com.cn`.
pub fn regional_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://securityhub.{region}.{suffix}")
}

/// Why one signed call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}

/// Signs and sends Security Hub REST-JSON calls. Cheap to clone.
#[derive(Clone)]
pub struct SecurityHubClient {
    http: reqwest::Client,
    credentials: CachedCredentials,
    endpoint: reqwest::Url,
    region: String,
}

impl fmt::Debug for SecurityHubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHubClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SecurityHubClient {
    /// `endpoint_url` overrides the regional endpoint (a local server such as moto).
    pub fn new(
        http: reqwest::Client,
        credentials: SharedCredentialsProvider,
        region: &str,
        endpoint_url: Option<&str>,
    ) -> Result<Self, CallError> {
        let raw = endpoint_url.map_or_else(|| regional_endpoint(region), str::to_owned);
        let endpoint = reqwest::Url::parse(&raw).map_err(|_| CallError::Endpoint(raw.clone()))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(CallError::Endpoint(raw));
        }
        Ok(SecurityHubClient {
            http,
            credentials: CachedCredentials::new(credentials),
            endpoint,
            region: region.to_string(),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// One signed POST of `body` to `path` (`/findings/import`, `/findings`…): the status and
    /// the response text.
    pub async fn post(&self, path: &str, body: &str) -> Result<(u16, String), CallError> {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        let credentials = self
            .credentials
            .get()
            .await
            .map_err(|e| CallError::Credentials(e.to_string()))?;
        let headers = signed_post_headers(
            &credentials,
            SIGNING_NAME,
            &self.region,
            &url,
            JSON_CONTENT_TYPE,
            body,
            SystemTime::now(),
        )
        .map_err(|e| CallError::Signing(e.to_string()))?;
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, JSON_CONTENT_TYPE)
            .body(body.to_string());
        for (name, value) in &headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, text))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImportResponse {
    #[serde(default)]
    failed_count: u64,
    #[serde(default)]
    failed_findings: Vec<FailedFinding>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FailedFinding {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// The error document of a failed REST-JSON call: `{"Code"|"__type", "Message"|"message"}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorDocument {
    #[serde(default, rename = "Code")]
    code: Option<String>,
    #[serde(default, rename = "__type")]
    type_: Option<String>,
    #[serde(default, rename = "Message")]
    message: Option<String>,
    #[serde(default, rename = "message")]
    message_lower: Option<String>,
}

/// What one import attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Imported,
    Transient(String),
    Permanent(String),
}

/// Sorts one answer to `BatchImportFindings` (status and body) for the finding `id`.
fn judge(id: &str, status: u16, body: &str) -> Attempt {
    if !(200..300).contains(&status) {
        let doc: ErrorDocument = serde_json::from_str(body).unwrap_or_default();
        let code = doc.code.or(doc.type_).unwrap_or_default();
        let message = doc.message.or(doc.message_lower).unwrap_or_default();
        let described = format!("HTTP {status} {code}: {message}");
        return if class_of(Some(&code), Some(status)) == Class::Transient {
            Attempt::Transient(described)
        } else {
            Attempt::Permanent(described)
        };
    }
    let response: ImportResponse = match serde_json::from_str(body) {
        Ok(r) => r,
        // The import may or may not have happened; importing the same Id again is harmless.
        Err(e) => return Attempt::Transient(format!("unreadable BatchImportFindings answer: {e}")),
    };
    let failed: Vec<&FailedFinding> = response
        .failed_findings
        .iter()
        .filter(|f| {
            f.id.as_deref()
                .is_none_or(|fid| fid == id || fid.is_empty())
        })
        .collect();
    if failed.is_empty() && response.failed_count == 0 {
        return Attempt::Imported;
    }
    let Some(first) = failed.first() else {
        // A failure counted but not itemised: the one finding sent is the one that failed.
        return Attempt::Transient(format!(
            "FailedCount {} without FailedFindings",
            response.failed_count
        ));
    };
    let code = first.error_code.clone().unwrap_or_default();
    let described = format!(
        "FailedFindings {code}: {}",
        first.error_message.as_deref().unwrap_or_default()
    );
    if is_transient_code(&code) {
        Attempt::Transient(described)
    } else {
        Attempt::Permanent(described)
    }
}

/// Imports findings into Security Hub.
#[derive(Clone)]
pub struct SecurityHubSink {
    client: SecurityHubClient,
    /// The account the function runs in: the default product ARN's and every finding's
    /// `AwsAccountId`. Known up front, or read once from STS at the first delivery.
    account: Arc<tokio::sync::OnceCell<String>>,
    sts: Option<SnapshotLister>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

impl fmt::Debug for SecurityHubSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHubSink")
            .field("client", &self.client)
            .field("account", &self.account.get())
            .finish_non_exhaustive()
    }
}

impl SecurityHubSink {
    /// A sink for a known `account`.
    pub fn new(client: SecurityHubClient, account: &str, clock: Arc<dyn Clock>) -> Self {
        let sink = Self::with_account_source(client, None, clock);
        // A fresh cell cannot be set already.
        let _ = sink.account.set(account.to_string());
        sink
    }

    /// A sink that asks STS `GetCallerIdentity` for its account at the first delivery, not at
    /// start: the function's initialisation stays as fast as without the sink, and most
    /// containers never deliver a finding.
    pub fn resolving_account(
        client: SecurityHubClient,
        sts: SnapshotLister,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::with_account_source(client, Some(sts), clock)
    }

    fn with_account_source(
        client: SecurityHubClient,
        sts: Option<SnapshotLister>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        SecurityHubSink {
            client,
            account: Arc::new(tokio::sync::OnceCell::new()),
            sts,
            clock,
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
            },
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn target(&self) -> Result<AsffTarget, SinkError> {
        let account = self
            .account
            .get_or_try_init(|| async {
                let Some(sts) = &self.sts else {
                    return Err(SinkError::Permanent {
                        sink: SINK,
                        message: "no account id and no STS client to read it".into(),
                    });
                };
                sts.account_id(self.client.region()).await.map_err(|e| {
                    let message = format!("cannot read the account id from STS: {e}");
                    e.class().sink_error(SINK, message, None)
                })
            })
            .await?;
        Ok(AsffTarget::new(account.as_str(), self.client.region()))
    }
}

impl AlertSink for SecurityHubSink {
    fn name(&self) -> &'static str {
        SINK
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let target = self.target().await?;
        let document = asff::batch_import_body(finding, &target, self.clock.now());
        let id = document["Findings"][0]["Id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let body = document.to_string();
        let retried = retry(
            &self.retry.driver(),
            "BatchImportFindings",
            None,
            |_| async {
                let attempt = match self.client.post("/findings/import", &body).await {
                    Ok((status, text)) => judge(&id, status, &text),
                    Err(CallError::Transport(e)) => {
                        Attempt::Transient(format!("BatchImportFindings transport: {e}"))
                    }
                    Err(e) => Attempt::Permanent(e.to_string()),
                };
                match attempt {
                    Attempt::Imported => Ok(()),
                    Attempt::Transient(message) => Err(Failure::transient(message)),
                    Attempt::Permanent(message) => Err(Failure::permanent(message)),
                }
            },
        )
        .await;
        let Err(retried) = retried else {
            return Ok(());
        };
        let message = match retried.error.class {
            Class::Permanent => format!(
                "BatchImportFindings rejected {id}: {message}",
                message = retried.error.message
            ),
            Class::Transient => format!(
                "BatchImportFindings did not import {id} after {} attempts: {}",
                retried.attempts, retried.error.message
            ),
        };
        Err(retried.error.class.sink_error(SINK, message, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failed_finding_is_sorted_never_ignored() {
        let ok = r#"{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}"#;
        assert_eq!(judge("sw-1", 200, ok), Attempt::Imported);
        let throttled = r#"{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"sw-1","ErrorCode":"ThrottlingException","ErrorMessage":"slow down"}]}"#;
        assert!(
            matches!(judge("sw-1", 200, throttled), Attempt::Transient(m) if m.contains("slow down"))
        );
        let invalid = r#"{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"sw-1","ErrorCode":"InvalidInput","ErrorMessage":"bad"}]}"#;
        assert!(
            matches!(judge("sw-1", 200, invalid), Attempt::Permanent(m) if m.contains("InvalidInput"))
        );
        let counted_only = r#"{"FailedCount":1,"SuccessCount":0}"#;
        assert!(matches!(
            judge("sw-1", 200, counted_only),
            Attempt::Transient(_)
        ));
        assert!(matches!(
            judge("sw-1", 200, "<html>"),
            Attempt::Transient(_)
        ));
    }

    #[test]
    fn http_errors_are_retried_only_when_they_may_pass() {
        let denied = r#"{"Code":"AccessDeniedException","Message":"no"}"#;
        assert!(
            matches!(judge("x", 403, denied), Attempt::Permanent(m) if m.contains("AccessDenied"))
        );
        let not_subscribed =
            r#"{"Code":"InvalidAccessException","Message":"Account is not subscribed"}"#;
        assert!(matches!(
            judge("x", 401, not_subscribed),
            Attempt::Permanent(_)
        ));
        let limit = r#"{"__type":"com.amazonaws#LimitExceededException","message":"rate"}"#;
        assert!(matches!(judge("x", 400, limit), Attempt::Transient(_)));
        assert!(matches!(judge("x", 429, ""), Attempt::Transient(_)));
        assert!(matches!(judge("x", 503, ""), Attempt::Transient(_)));
    }

    #[test]
    fn endpoints_follow_the_partition_unless_overridden() {
        assert_eq!(
            regional_endpoint("eu-west-1"),
            "https://securityhub.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_endpoint("cn-north-1"),
            "https://securityhub.cn-north-1.amazonaws.com.cn"
        );
        let credentials = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "a", "b", None, None, "t",
        ));
        assert!(SecurityHubClient::new(
            reqwest::Client::new(),
            credentials.clone(),
            "eu-west-1",
            Some("ftp://x")
        )
        .is_err());
        assert!(SecurityHubClient::new(
            reqwest::Client::new(),
            credentials,
            "eu-west-1",
            Some("http://127.0.0.1:5000")
        )
        .is_ok());
    }
}

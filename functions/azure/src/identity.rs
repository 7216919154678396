//! Managed identity tokens from the App Service / Functions identity endpoint
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), cached per resource until shortly before expiry.

use serde::Deserialize;
use snapwatch_core::config::Secret;
use snapwatch_http::{status_class, AccessToken, Class, Classify, Token, TokenCache};
use std::time::Duration;

/// The identity endpoint's API version that takes `X-IDENTITY-HEADER`.
const API_VERSION: &str = "2019-08-01";
/// Tokens are renewed this long before they expire, so a request never carries a stale one.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Network failure, 408, 429 or 5xx from the identity endpoint: try again later.
    #[error("managed identity endpoint unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The endpoint refused (no identity assigned, bad header) or answered nonsense.
    #[error("managed identity token refused: {message}")]
    Refused { message: String },
}

impl TokenError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, TokenError::Unavailable { .. })
    }
}

impl Classify for TokenError {
    fn class(&self) -> Class {
        if self.is_retryable() {
            Class::Transient
        } else {
            Class::Permanent
        }
    }
}

/// Fetches and caches bearer tokens for the function's system-assigned identity.
#[derive(Debug)]
pub struct ManagedIdentity {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    /// `IDENTITY_HEADER`: a credential, like the cached tokens; neither shows in `Debug`.
    header: Secret,
    /// Per resource; concurrent requests for a stale token wait for one refresh.
    cache: TokenCache<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Unix seconds, as a string on App Service (a number on some other hosts).
    expires_on: serde_json::Value,
}

impl ManagedIdentity {
    /// `endpoint` and `header` are the `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` the Functions
    /// host sets when the app has a managed identity.
    pub fn new(client: reqwest::Client, endpoint: reqwest::Url, header: impl Into<String>) -> Self {
        ManagedIdentity {
            client,
            endpoint,
            header: Secret::new(header.into()),
            cache: TokenCache::new(RENEW_BEFORE),
        }
    }

    /// A bearer token for `resource` (e.g. `https://storage.azure.com/`).
    pub async fn token(&self, resource: &str) -> Result<String, TokenError> {
        let token = self
            .cache
            .get(&resource.to_owned(), || self.fetch(resource))
            .await?;
        Ok(token.expose().to_owned())
    }

    async fn fetch(&self, resource: &str) -> Result<Token, TokenError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("resource", resource)
            .append_pair("api-version", API_VERSION);
        let response = self
            .client
            .get(url)
            .header("X-IDENTITY-HEADER", self.header.expose())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| TokenError::Unavailable {
                message: "request to the identity endpoint failed".into(),
                source: Some(e),
            })?;
        let status = response.status();
        if status_class(status.as_u16()) == Class::Transient {
            return Err(TokenError::Unavailable {
                message: format!("identity endpoint answered {status}"),
                source: None,
            });
        }
        if !status.is_success() {
            return Err(TokenError::Refused {
                message: format!("identity endpoint answered {status}"),
            });
        }
        let body: TokenResponse = response.json().await.map_err(|e| TokenError::Refused {
            message: format!("identity endpoint answer is not a token: {e}"),
        })?;
        let expires_on = match &body.expires_on {
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| TokenError::Refused {
            message: format!("token expires_on is not unix seconds: {}", body.expires_on),
        })?;
        // The cache counts from now; a token already expired lives zero seconds.
        let remaining = expires_on.saturating_sub(chrono::Utc::now().timestamp());
        Ok(Token {
            value: AccessToken::new(body.access_token),
            lifetime: Duration::from_secs(u64::try_from(remaining).unwrap_or(0)),
        })
    }
}

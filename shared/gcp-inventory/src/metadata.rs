//! OAuth access tokens of the attached service account from the metadata server (Cloud Run,
//! GCE), the one implementation every GCP client of snapwatch uses: the Firestore store, the
//! baseline listing and the CLI's Application Default Credentials fallback.

use snapwatch_http::{status_class, AccessToken, Class, Failure, Token, TokenCache};
use std::time::Duration;

/// The metadata server Cloud Run answers on, unless `GCE_METADATA_HOST` names another (as
/// Google's client libraries honour it: `host[:port]`, plain http).
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// The variable Google's client libraries read to redirect the metadata server.
pub const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// Renew a cached token this long before it expires, so no request races its expiry.
pub const TOKEN_EARLY_RENEWAL: Duration = Duration::from_secs(60);

/// The metadata server's host: `GCE_METADATA_HOST` when set and not blank, else the default.
pub fn metadata_host(configured: Option<&str>) -> String {
    match configured.map(str::trim) {
        Some(host) if !host.is_empty() => host.trim_end_matches('/').to_owned(),
        _ => DEFAULT_METADATA_HOST.to_owned(),
    }
}

/// The token URL on metadata server `host` (`host[:port]`).
pub fn metadata_token_url(host: &str) -> String {
    format!("http://{host}{METADATA_TOKEN_PATH}")
}

/// No `Debug`: it holds the token.
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// One token from the metadata server at `url`. A 404 (no service account attached) or another
/// 4xx is permanent; 429, 5xx and connection failures are transient.
pub async fn fetch_metadata_token(http: &reqwest::Client, url: &str) -> Result<Token, Failure> {
    let response = http
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| Failure::transient("the metadata server is unreachable").with_source(e))?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let hint = if status == 404 {
            " (no service account attached to the service?)"
        } else {
            ""
        };
        let message = format!("metadata server answered HTTP {status}{hint}");
        return Err(match status_class(status) {
            Class::Transient => Failure::transient(message),
            Class::Permanent => Failure::permanent(message),
        });
    }
    let token: TokenResponse = response
        .json()
        .await
        .map_err(|e| Failure::permanent("the token answer is not a token").with_source(e))?;
    Ok(Token {
        value: AccessToken::new(token.access_token),
        lifetime: Duration::from_secs(token.expires_in),
    })
}

/// The attached service account's tokens, cached (one refresh at a time).
#[derive(Debug)]
pub struct MetadataServer {
    http: reqwest::Client,
    url: String,
    cache: TokenCache<()>,
}

impl MetadataServer {
    /// Tokens from the server `GCE_METADATA_HOST` names (read through `lookup`), else the default.
    pub fn new(http: reqwest::Client, configured_host: Option<&str>) -> Self {
        MetadataServer {
            http,
            url: metadata_token_url(&metadata_host(configured_host)),
            cache: TokenCache::new(TOKEN_EARLY_RENEWAL),
        }
    }

    /// A token, from the cache while it has a minute left.
    pub async fn token(&self) -> Result<AccessToken, Failure> {
        self.cache
            .get(&(), || fetch_metadata_token(&self.http, &self.url))
            .await
    }
}

impl crate::TokenSource for MetadataServer {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        MetadataServer::token(self).await.map(Some)
    }
}

//! A small Firestore REST client: the calls the store needs (`:batchGet`, optionally masked,
//! `:commit` and an `IN` `:runQuery`), metadata-server tokens in production, none against the
//! emulator.
//!
//! There is no maintained, runtime-light Firestore crate; the REST surface we use is small and
//! identical on the emulator and on `firestore.googleapis.com`.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use snapwatch_http::{status_class, AccessToken, Class, Token, TokenCache};
use std::collections::HashMap;
use std::time::Duration;

/// `:batchGet` takes at most this many documents per call (a documented Firestore limit is
/// higher, but the engine reads in pages of 100 and so do we).
pub const BATCH_GET_LIMIT: usize = 100;
/// An `IN` filter takes at most 30 values.
pub const IN_FILTER_LIMIT: usize = 30;
/// `:commit` accepts at most 500 writes.
pub const COMMIT_WRITE_LIMIT: usize = 500;

const PRODUCTION_ENDPOINT: &str = "https://firestore.googleapis.com";
// The metadata server's token path is the GCP listing crate's, shared by every GCP client.
use snapwatch_gcp_inventory::metadata::{fetch_metadata_token, TOKEN_EARLY_RENEWAL};
pub use snapwatch_gcp_inventory::metadata::{metadata_host, metadata_token_url, METADATA_HOST_VAR};

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The emulator accepts unauthenticated requests.
    None,
    /// Cloud Run: OAuth access tokens of the service's own service account from the metadata server.
    MetadataServer,
}

/// Where the database is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirestoreTarget {
    /// `http://127.0.0.1:8686` for the emulator, `https://firestore.googleapis.com` in production.
    pub endpoint: String,
    pub project: String,
    /// `(default)` unless the deployment names its database.
    pub database: String,
    pub auth: Auth,
    pub timeout: Duration,
}

impl FirestoreTarget {
    /// The emulator at `host_port` (the `FIRESTORE_EMULATOR_HOST` value, e.g. `127.0.0.1:8686`).
    pub fn emulator(host_port: &str, project: &str) -> Self {
        FirestoreTarget {
            endpoint: format!("http://{}", host_port.trim()),
            project: project.to_string(),
            database: "(default)".to_string(),
            auth: Auth::None,
            timeout: Duration::from_secs(10),
        }
    }

    /// `firestore.googleapis.com` with the metadata server's tokens.
    pub fn production(project: &str, database: &str) -> Self {
        FirestoreTarget {
            endpoint: PRODUCTION_ENDPOINT.to_string(),
            project: project.to_string(),
            database: database.to_string(),
            auth: Auth::MetadataServer,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a Firestore call can fail with, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum FirestoreError {
    /// Network failure or timeout: retry later.
    #[error("Firestore request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// A precondition failed or a concurrent transaction won (`ALREADY_EXISTS`,
    /// `FAILED_PRECONDITION`, `ABORTED`): re-read and try again.
    #[error("Firestore write conflict ({status}): {message}")]
    Conflict { status: String, message: String },
    /// The document a precondition required does not exist.
    #[error("Firestore document not found: {message}")]
    NotFound { message: String },
    /// Throttled or temporarily unavailable: retry later.
    #[error("Firestore temporarily unavailable (HTTP {http}, {status}): {message}")]
    Unavailable {
        http: u16,
        status: String,
        message: String,
    },
    /// Permission denied, bad request, missing database: retrying will not help.
    #[error("Firestore rejected the request (HTTP {http}, {status}): {message}")]
    Rejected {
        http: u16,
        status: String,
        message: String,
    },
    /// The answer was not what the REST API documents.
    #[error("unexpected Firestore response: {0}")]
    Decode(String),
    /// No access token from the metadata server. A 404 (no service account attached) or
    /// another 4xx is permanent; 429, 5xx and connection failures are transient.
    #[error("cannot get an access token from the metadata server: {message}")]
    Token {
        /// What went wrong, without the token.
        message: String,
        /// Whether asking again can help.
        class: Class,
        /// The transport or decoding error, when there was one.
        #[source]
        source: Option<snapwatch_http::classify::BoxError>,
    },
}

impl FirestoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FirestoreError::Transport(_)
                | FirestoreError::Unavailable { .. }
                | FirestoreError::Conflict { .. }
                | FirestoreError::Token {
                    class: Class::Transient,
                    ..
                }
        )
    }
}

/// A stored document as the REST API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    pub name: String,
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Opaque version stamp, handed back verbatim in `updateTime` preconditions.
    #[serde(rename = "updateTime")]
    pub update_time: String,
}

#[derive(Debug, Deserialize)]
struct BatchGetItem {
    found: Option<Document>,
}

#[derive(Debug, Deserialize)]
struct RunQueryItem {
    document: Option<Document>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

/// One database's documents over REST.
#[derive(Debug)]
pub struct FirestoreClient {
    http: reqwest::Client,
    target: FirestoreTarget,
    /// `projects/P/databases/D/documents`: the prefix of every document name.
    documents_root: String,
    /// Where tokens come from: the metadata server's token URL.
    token_url: String,
    /// One token for the service account; concurrent requests wait for one refresh.
    token: TokenCache<()>,
}

impl FirestoreClient {
    pub fn new(target: FirestoreTarget) -> Result<Self, FirestoreError> {
        let http = reqwest::Client::builder()
            .timeout(target.timeout)
            .user_agent(concat!("snapwatch-gcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FirestoreError::Transport)?;
        let documents_root = format!(
            "projects/{}/databases/{}/documents",
            target.project, target.database
        );
        Ok(FirestoreClient {
            http,
            target,
            documents_root,
            token_url: metadata_token_url(&metadata_host(
                std::env::var(METADATA_HOST_VAR).ok().as_deref(),
            )),
            token: TokenCache::new(TOKEN_EARLY_RENEWAL),
        })
    }

    /// Fetches tokens from the metadata server at `host` (`host[:port]`) instead of the one
    /// `GCE_METADATA_HOST` or the default names: for tests with a local stand-in.
    pub fn with_metadata_host(mut self, host: &str) -> Self {
        self.token_url = metadata_token_url(&metadata_host(Some(host)));
        self
    }

    /// The full name of document `id` in `collection`.
    pub fn document_name(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.documents_root)
    }

    fn url(&self, suffix: &str) -> String {
        format!(
            "{}/v1/{}{suffix}",
            self.target.endpoint.trim_end_matches('/'),
            self.documents_root
        )
    }

    /// Reads documents by full name, paging through `:batchGet`. Missing documents are absent.
    pub async fn batch_get(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, Document>, FirestoreError> {
        self.batch_get_masked(names, None).await
    }

    /// Like [`FirestoreClient::batch_get`], returning only the `mask` field paths of each
    /// document (all fields when `None`): an existence check need not carry a hub's megabyte.
    pub async fn batch_get_masked(
        &self,
        names: &[String],
        mask: Option<&[String]>,
    ) -> Result<HashMap<String, Document>, FirestoreError> {
        let mut found = HashMap::with_capacity(names.len());
        for page in names.chunks(BATCH_GET_LIMIT) {
            let mut body = json!({ "documents": page });
            if let Some(paths) = mask {
                body["mask"] = json!({ "fieldPaths": paths });
            }
            let answer = self.post(&self.url(":batchGet"), &body).await?;
            let items: Vec<BatchGetItem> = serde_json::from_value(answer)
                .map_err(|e| FirestoreError::Decode(format!("batchGet answer: {e}")))?;
            for doc in items.into_iter().filter_map(|item| item.found) {
                found.insert(doc.name.clone(), doc);
            }
        }
        Ok(found)
    }

    /// Every document of top-level `collection` whose string field `field` is one of `values`
    /// (at most [`IN_FILTER_LIMIT`] of them), in one `:runQuery`.
    pub async fn query_in(
        &self,
        collection: &str,
        field: &str,
        values: &[&str],
    ) -> Result<Vec<Document>, FirestoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Value> = values.iter().map(|v| json!({ "stringValue": v })).collect();
        let body = json!({ "structuredQuery": {
            "from": [{ "collectionId": collection }],
            "where": { "fieldFilter": {
                "field": { "fieldPath": field },
                "op": "IN",
                "value": { "arrayValue": { "values": values } },
            }},
        }});
        let answer = self.post(&self.url(":runQuery"), &body).await?;
        // A stream of results; items without `document` only report progress (`readTime`).
        let items: Vec<RunQueryItem> = serde_json::from_value(answer)
            .map_err(|e| FirestoreError::Decode(format!("runQuery answer: {e}")))?;
        Ok(items.into_iter().filter_map(|item| item.document).collect())
    }

    /// One document, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Document>, FirestoreError> {
        let mut found = self.batch_get(&[name.to_string()]).await?;
        Ok(found.remove(name))
    }

    /// Applies `writes` atomically (all or none). Precondition failures come back as
    /// [`FirestoreError::Conflict`] / [`FirestoreError::NotFound`].
    pub async fn commit(&self, writes: Vec<Value>) -> Result<(), FirestoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let body = json!({ "writes": writes });
        self.post(&self.url(":commit"), &body).await.map(|_| ())
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Value, FirestoreError> {
        let mut request = self.http.post(url).json(body);
        if let Some(token) = self.access_token().await? {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(FirestoreError::Transport)?;
        let http = response.status().as_u16();
        let text = response.text().await.map_err(FirestoreError::Transport)?;
        if (200..300).contains(&http) {
            return serde_json::from_str(&text)
                .map_err(|e| FirestoreError::Decode(format!("HTTP {http} body: {e}")));
        }
        Err(classify(http, &text))
    }

    /// The service account's bearer token (cached, refreshed by one caller at a time), or
    /// `None` against the emulator: also the token of the baseline's Compute Engine calls.
    pub async fn access_token(&self) -> Result<Option<AccessToken>, FirestoreError> {
        if self.target.auth == Auth::None {
            return Ok(None);
        }
        self.token.get(&(), || self.fetch_token()).await.map(Some)
    }

    /// One token from the metadata server, classified by how it failed.
    async fn fetch_token(&self) -> Result<Token, FirestoreError> {
        fetch_metadata_token(&self.http, &self.token_url)
            .await
            .map_err(|failure| FirestoreError::Token {
                message: failure.message,
                class: failure.class,
                source: failure.source,
            })
    }
}

/// Maps an error answer to what the caller should do, by the canonical status Firestore names.
fn classify(http: u16, body: &str) -> FirestoreError {
    let (status, message) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => (parsed.error.status, parsed.error.message),
        Err(_) => (String::new(), body.chars().take(300).collect()),
    };
    match status.as_str() {
        "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "ABORTED" => {
            FirestoreError::Conflict { status, message }
        }
        "NOT_FOUND" if http == 404 => FirestoreError::NotFound { message },
        "UNAVAILABLE" | "RESOURCE_EXHAUSTED" | "DEADLINE_EXCEEDED" | "INTERNAL" => {
            FirestoreError::Unavailable {
                http,
                status,
                message,
            }
        }
        _ if status_class(http) == Class::Transient => FirestoreError::Unavailable {
            http,
            status,
            message,
        },
        _ => FirestoreError::Rejected {
            http,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precondition_failures_are_conflicts() {
        let exists = classify(
            409,
            r#"{"error":{"code":409,"message":"entity already exists","status":"ALREADY_EXISTS"}}"#,
        );
        assert!(
            matches!(exists, FirestoreError::Conflict { ref status, .. } if status == "ALREADY_EXISTS")
        );
        let stale = classify(
            400,
            r#"{"error":{"code":400,"message":"stored version differs","status":"FAILED_PRECONDITION"}}"#,
        );
        assert!(matches!(stale, FirestoreError::Conflict { .. }));
        let aborted = classify(
            409,
            r#"{"error":{"code":409,"message":"contention","status":"ABORTED"}}"#,
        );
        assert!(matches!(aborted, FirestoreError::Conflict { .. }));
    }

    #[test]
    fn throttling_and_outages_are_retryable_and_denials_are_not() {
        let throttled = classify(
            429,
            r#"{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert!(matches!(
            throttled,
            FirestoreError::Unavailable { http: 429, .. }
        ));
        assert!(throttled.is_retryable());
        let gateway = classify(502, "<html>bad gateway</html>");
        assert!(matches!(
            gateway,
            FirestoreError::Unavailable { http: 502, .. }
        ));
        let denied = classify(
            403,
            r#"{"error":{"code":403,"message":"Missing or insufficient permissions.","status":"PERMISSION_DENIED"}}"#,
        );
        assert!(matches!(denied, FirestoreError::Rejected { http: 403, .. }));
        assert!(!denied.is_retryable());
        let missing = classify(
            404,
            r#"{"error":{"code":404,"message":"no entity to update","status":"NOT_FOUND"}}"#,
        );
        assert!(matches!(missing, FirestoreError::NotFound { .. }));
    }

    #[test]
    fn gce_metadata_host_redirects_the_token_url() {
        assert_eq!(
            metadata_token_url(&metadata_host(None)),
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(metadata_host(Some("  ")), "metadata.google.internal");
        assert_eq!(
            metadata_token_url(&metadata_host(Some("127.0.0.1:8989"))),
            "http://127.0.0.1:8989/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(metadata_host(Some("169.254.169.254/")), "169.254.169.254");
    }

    #[test]
    fn emulator_target_talks_plain_http_without_auth() {
        let target = FirestoreTarget::emulator("127.0.0.1:8686", "demo");
        assert_eq!(target.endpoint, "http://127.0.0.1:8686");
        assert_eq!(target.auth, Auth::None);
        let client = FirestoreClient::new(target).expect("client");
        assert_eq!(
            client.url(":commit"),
            "http://127.0.0.1:8686/v1/projects/demo/databases/(default)/documents:commit"
        );
        assert_eq!(
            client.document_name("facts", "abc"),
            "projects/demo/databases/(default)/documents/facts/abc"
        );
    }
}

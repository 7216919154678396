//! A small Table Storage REST client: signed requests (SharedKeyLite with an account key, or a
//! managed identity bearer token), the handful of entity operations the store needs, and query
//! paging through continuation headers. No maintained Rust Tables crate exists; this is the
//! part of the protocol we use and nothing more.

use crate::identity::{ManagedIdentity, TokenError};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use snapwatch_http::status_class;
use snapwatch_http::Classify as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Azurite's published development account key (not a secret: it is in Microsoft's docs).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The audience of Azure AD tokens for the storage data plane.
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";
/// The first service version that accepts bearer tokens on the Table service.
const SERVICE_VERSION: &str = "2019-02-02";
/// Entities per page the service returns at most; we ask for the maximum to save round trips.
const PAGE_SIZE: usize = 1000;
/// Operations one entity-group transaction may hold.
pub const MAX_BATCH_OPERATIONS: usize = 100;
const ACCEPT_NO_METADATA: &str = "application/json;odata=nometadata";
const ACCEPT_MINIMAL_METADATA: &str = "application/json;odata=minimalmetadata";

/// How requests prove who they are.
#[derive(Clone)]
pub enum TableAuth {
    /// SharedKeyLite with the account key (Azurite, local use).
    SharedKey { account: String, key: Vec<u8> },
    /// The function's managed identity (Storage Table Data Contributor on the table).
    ManagedIdentity(Arc<ManagedIdentity>),
}

impl std::fmt::Debug for TableAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The account key is a credential: never print it.
        match self {
            TableAuth::SharedKey { account, .. } => write!(f, "SharedKey({account}, …)"),
            TableAuth::ManagedIdentity(_) => f.write_str("ManagedIdentity"),
        }
    }
}

impl TableAuth {
    /// SharedKey auth from an account name and its base64 key.
    pub fn shared_key(account: &str, base64_key: &str) -> Result<Self, TableError> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(base64_key.trim())
            .map_err(|e| TableError::Permanent {
                message: format!("the storage account key is not base64: {e}"),
                source: None,
            })?;
        Ok(TableAuth::SharedKey {
            account: account.to_owned(),
            key,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Throttling, timeouts, 5xx, connection failures: retrying may succeed.
    #[error("table service unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Authorization, missing table, malformed request or answer: retrying will not help.
    #[error("table service request failed: {message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl TableError {
    /// The variant for a failure of `class`: the one place this error is classified.
    pub(crate) fn classified(
        class: snapwatch_http::Class,
        message: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        match class {
            snapwatch_http::Class::Transient => TableError::Unavailable { message, source },
            snapwatch_http::Class::Permanent => TableError::Permanent { message, source },
        }
    }
}

impl From<TokenError> for TableError {
    fn from(e: TokenError) -> Self {
        let message = "no token for the table service".to_owned();
        TableError::classified(e.class(), message, Some(Box::new(e)))
    }
}

/// The outcome of an insert-if-absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created,
    AlreadyExists,
}

/// The outcome of a write guarded by an ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    Done,
    /// The entity changed since it was read (412), or is gone (404): read again.
    Stale,
}

/// An entity as read, with the ETag that guards the next write to it.
#[derive(Debug, Clone)]
pub struct Entity {
    pub properties: Map<String, Value>,
    pub etag: String,
}

/// What one page of a query asks for.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub filter: &'a str,
    /// `$select`: only these properties come back (the keys are enough to delete).
    pub select: Option<&'a str>,
    /// Entities wanted at most (the service caps a page at 1,000).
    pub top: usize,
    /// Ask for each entity's `odata.etag` (minimal metadata).
    pub with_etags: bool,
}

/// Where the next page of a query starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    partition: String,
    row: Option<String>,
}

/// One page of a query answer.
#[derive(Debug, Clone)]
pub struct Page {
    pub entities: Vec<Map<String, Value>>,
    pub next: Option<Continuation>,
}

/// An entity's address and the ETag it had when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityKey {
    pub partition: String,
    pub row: String,
    pub etag: String,
}

/// The outcome of one guarded delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Someone else deleted it first (404).
    AlreadyGone,
    /// It was written since it was read (412): kept.
    Changed,
}

/// The outcome of a batch delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDeletion {
    /// Every entity of the batch is deleted.
    Deleted,
    /// One operation was refused with this status (404 or 412), so the transaction rolled back
    /// and nothing was deleted: delete the entities one by one instead.
    RolledBack { status: u16 },
}

/// One table of one storage account.
#[derive(Debug, Clone)]
pub struct TableClient {
    http: reqwest::Client,
    /// `https://<account>.table.core.windows.net` or Azurite's `http://127.0.0.1:PORT/<account>`.
    endpoint: Url,
    account: String,
    table: String,
    auth: TableAuth,
}

impl TableClient {
    /// `table` must be a valid table name (3–63 alphanumerics, starting with a letter).
    pub fn new(
        http: reqwest::Client,
        endpoint: Url,
        account: &str,
        table: &str,
        auth: TableAuth,
    ) -> Result<Self, TableError> {
        let valid = (3..=63).contains(&table.len())
            && table.starts_with(|c: char| c.is_ascii_alphabetic())
            && table.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(TableError::Permanent {
                message: format!("{table:?} is not a valid table name (3-63 letters and digits, starting with a letter)"),
                source: None,
            });
        }
        Ok(TableClient {
            http,
            endpoint,
            account: account.to_owned(),
            table: table.to_owned(),
            auth,
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table if it does not exist (local use; in Azure, Terraform creates it).
    pub async fn create_table(&self) -> Result<(), TableError> {
        let body = serde_json::json!({ "TableName": self.table });
        let response = self
            .send(Method::POST, "Tables", |r| {
                r.header("Content-Type", "application/json")
                    .header("Prefer", "return-no-content")
                    .body(body.to_string())
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Ok(()),
            s => Err(failure("create table", s, response).await),
        }
    }

    /// Inserts `properties` (which must hold PartitionKey and RowKey) unless the entity exists.
    pub async fn insert(&self, properties: &Map<String, Value>) -> Result<Inserted, TableError> {
        let body = Value::Object(properties.clone()).to_string();
        let table = self.table.clone();
        let response = self
            .send(Method::POST, &table, |r| {
                r.header("Content-Type", "application/json")
                    .header("Prefer", "return-no-content")
                    .body(body)
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Inserted::Created),
            StatusCode::CONFLICT => Ok(Inserted::AlreadyExists),
            s => Err(failure("insert entity", s, response).await),
        }
    }

    pub async fn get(&self, partition: &str, row: &str) -> Result<Option<Entity>, TableError> {
        let path = self.entity_path(partition, row)?;
        let response = self.send(Method::GET, &path, |r| r).await?;
        match response.status() {
            StatusCode::OK => {
                let etag = etag_of(&response)?;
                let properties = read_json_object(response).await?;
                Ok(Some(Entity { properties, etag }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(failure("get entity", s, response).await),
        }
    }

    /// Replaces the entity only if it still carries `etag`.
    pub async fn replace(
        &self,
        properties: &Map<String, Value>,
        partition: &str,
        row: &str,
        etag: &str,
    ) -> Result<Guarded, TableError> {
        let path = self.entity_path(partition, row)?;
        let body = Value::Object(properties.clone()).to_string();
        let response = self
            .send(Method::PUT, &path, |r| {
                r.header("Content-Type", "application/json")
                    .header("If-Match", etag)
                    .body(body)
            })
            .await?;
        guarded("replace entity", response).await
    }

    /// Deletes the entity only if it still carries `etag`.
    pub async fn delete(
        &self,
        partition: &str,
        row: &str,
        etag: &str,
    ) -> Result<Guarded, TableError> {
        let path = self.entity_path(partition, row)?;
        let response = self
            .send(Method::DELETE, &path, |r| r.header("If-Match", etag))
            .await?;
        guarded("delete entity", response).await
    }

    /// Every entity matching the OData `filter`, following continuation tokens page by page.
    pub async fn query(&self, filter: &str) -> Result<Vec<Map<String, Value>>, TableError> {
        let mut entities = Vec::new();
        let mut continuation = None;
        loop {
            let page = self
                .query_page(
                    &PageRequest {
                        filter,
                        select: None,
                        top: PAGE_SIZE,
                        with_etags: false,
                    },
                    continuation.as_ref(),
                )
                .await?;
            entities.extend(page.entities);
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(entities),
            }
        }
    }

    /// One page of a query. The service may answer an empty page that still carries a
    /// continuation (a scan that ran out of time), so callers follow `next` until it is `None`.
    pub async fn query_page(
        &self,
        request: &PageRequest<'_>,
        continuation: Option<&Continuation>,
    ) -> Result<Page, TableError> {
        let path = format!("{}()", self.table);
        let mut query: Vec<(&str, String)> = vec![
            ("$filter", request.filter.to_owned()),
            ("$top", request.top.clamp(1, PAGE_SIZE).to_string()),
        ];
        if let Some(select) = request.select {
            query.push(("$select", select.to_owned()));
        }
        if let Some(next) = continuation {
            query.push(("NextPartitionKey", next.partition.clone()));
            if let Some(row) = &next.row {
                query.push(("NextRowKey", row.clone()));
            }
        }
        // Only minimal metadata carries each entity's `odata.etag`.
        let accept = if request.with_etags {
            ACCEPT_MINIMAL_METADATA
        } else {
            ACCEPT_NO_METADATA
        };
        let response = self
            .send_accepting(Method::GET, &path, accept, move |r| r.query(&query))
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure("query entities", status, response).await);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let next = header("x-ms-continuation-NextPartitionKey").map(|partition| Continuation {
            partition,
            row: header("x-ms-continuation-NextRowKey"),
        });
        let mut answer = read_json_object(response).await?;
        let entities = match answer.remove("value") {
            Some(Value::Array(values)) => values
                .into_iter()
                .map(|value| match value {
                    Value::Object(entity) => Ok(entity),
                    other => Err(TableError::Permanent {
                        message: format!("query answer holds a non-entity: {other}"),
                        source: None,
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(TableError::Permanent {
                    message: "query answer has no `value` array".into(),
                    source: None,
                })
            }
        };
        Ok(Page { entities, next })
    }

    /// Deletes one entity if it still carries `key.etag`, telling apart "gone already" (404)
    /// from "changed since it was read" (412); neither is an error.
    pub async fn delete_entity(&self, key: &EntityKey) -> Result<Deletion, TableError> {
        let path = self.entity_path(&key.partition, &key.row)?;
        let etag = key.etag.clone();
        let response = self
            .send(Method::DELETE, &path, |r| r.header("If-Match", etag))
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Deletion::Deleted),
            StatusCode::NOT_FOUND => Ok(Deletion::AlreadyGone),
            StatusCode::PRECONDITION_FAILED => Ok(Deletion::Changed),
            s => Err(failure("delete entity", s, response).await),
        }
    }

    /// Deletes `keys` (all in one partition, at most [`MAX_BATCH_OPERATIONS`]) in one
    /// entity-group transaction: all of them, or none.
    pub async fn delete_batch(&self, keys: &[EntityKey]) -> Result<BatchDeletion, TableError> {
        let Some(first) = keys.first() else {
            return Ok(BatchDeletion::Deleted);
        };
        if keys.len() > MAX_BATCH_OPERATIONS {
            return Err(TableError::Permanent {
                message: format!(
                    "a batch holds at most {MAX_BATCH_OPERATIONS} operations, not {}",
                    keys.len()
                ),
                source: None,
            });
        }
        if let Some(stray) = keys.iter().find(|k| k.partition != first.partition) {
            return Err(TableError::Permanent {
                message: format!(
                    "a batch spans one partition: {:?} and {:?} differ",
                    first.partition, stray.partition
                ),
                source: None,
            });
        }
        let mut urls = Vec::with_capacity(keys.len());
        for key in keys {
            urls.push(self.url(&self.entity_path(&key.partition, &key.row)?)?);
        }
        // Boundaries only have to be absent from the body, which holds URLs and ETags only.
        let tag = boundary_tag(keys);
        let batch_boundary = format!("batch_{tag}");
        let changeset_boundary = format!("changeset_{tag}");
        let mut body = format!(
            "--{batch_boundary}\r\nContent-Type: multipart/mixed; boundary={changeset_boundary}\r\n\r\n"
        );
        for (url, key) in urls.iter().zip(keys) {
            body.push_str(&format!(
                "--{changeset_boundary}\r\n\
                 Content-Type: application/http\r\n\
                 Content-Transfer-Encoding: binary\r\n\r\n\
                 DELETE {url} HTTP/1.1\r\n\
                 Accept: {ACCEPT_MINIMAL_METADATA}\r\n\
                 DataServiceVersion: 3.0;\r\n\
                 If-Match: {}\r\n\r\n",
                key.etag
            ));
        }
        body.push_str(&format!(
            "--{changeset_boundary}--\r\n--{batch_boundary}--\r\n"
        ));
        let response = self
            .send(Method::POST, "$batch", |r| {
                r.header(
                    "Content-Type",
                    format!("multipart/mixed; boundary={batch_boundary}"),
                )
                .body(body)
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure("batch delete", status, response).await);
        }
        let text = response.text().await.map_err(|e| TableError::Unavailable {
            message: "reading the batch answer failed".into(),
            source: Some(Box::new(e)),
        })?;
        batch_outcome(&text, keys.len())
    }

    /// `table(PartitionKey='…',RowKey='…')`. Our keys are hex digests with a prefix, so they
    /// need no quoting; anything else is refused rather than sent half-escaped.
    fn entity_path(&self, partition: &str, row: &str) -> Result<String, TableError> {
        for key in [partition, row] {
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(TableError::Permanent {
                    message: format!(
                        "entity key {key:?} holds characters this client does not address"
                    ),
                    source: None,
                });
            }
        }
        Ok(format!(
            "{}(PartitionKey='{partition}',RowKey='{row}')",
            self.table
        ))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, TableError> {
        self.send_accepting(method, path, ACCEPT_NO_METADATA, build)
            .await
    }

    async fn send_accepting(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, TableError> {
        let url = self.url(path)?;
        let date = httpdate::fmt_http_date(SystemTime::now());
        let authorization = match &self.auth {
            TableAuth::SharedKey { account, key } => {
                // SharedKeyLite for the Table service signs the date and the canonical resource:
                // `/<account><path as sent>` (Azurite's path already starts with the account).
                let string_to_sign = format!("{date}\n/{account}{}", url.path());
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).map_err(|e| TableError::Permanent {
                        message: format!("unusable account key: {e}"),
                        source: None,
                    })?;
                mac.update(string_to_sign.as_bytes());
                let signature =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                format!("SharedKeyLite {account}:{signature}")
            }
            TableAuth::ManagedIdentity(identity) => {
                format!("Bearer {}", identity.token(STORAGE_RESOURCE).await?)
            }
        };
        let request = self
            .http
            .request(method, url)
            .header("x-ms-date", date)
            .header("x-ms-version", SERVICE_VERSION)
            .header("Accept", accept)
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Authorization", authorization)
            .timeout(Duration::from_secs(15));
        build(request)
            .send()
            .await
            .map_err(|e| TableError::Unavailable {
                message: format!("request to the table service failed ({})", self.account),
                source: Some(Box::new(e)),
            })
    }

    fn url(&self, path: &str) -> Result<Url, TableError> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|e| TableError::Permanent {
            message: format!("cannot build a request URL for {path:?}"),
            source: Some(Box::new(e)),
        })
    }
}

/// A boundary tag derived from the batch's keys: unique enough, and never in the body.
fn boundary_tag(keys: &[EntityKey]) -> String {
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.partition.as_bytes());
        hasher.update([0]);
        hasher.update(key.row.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the multipart answer of a batch of `operations` deletes. Each operation answers with
/// an `HTTP/1.1 <status>` line; a refused change set answers with one line, the refusal.
fn batch_outcome(answer: &str, operations: usize) -> Result<BatchDeletion, TableError> {
    let statuses: Vec<u16> = answer
        .lines()
        .filter_map(|line| line.trim().strip_prefix("HTTP/1."))
        .filter_map(|rest| rest.split_whitespace().nth(1))
        .filter_map(|code| code.parse().ok())
        .collect();
    let excerpt = || answer.chars().take(300).collect::<String>();
    if let Some(&status) = statuses.iter().find(|s| !(200..300).contains(*s)) {
        if status == 404 || status == 412 {
            return Ok(BatchDeletion::RolledBack { status });
        }
        let message = format!(
            "batch delete: operation refused with {status}: {}",
            excerpt()
        );
        return Err(TableError::classified(status_class(status), message, None));
    }
    if statuses.len() != operations {
        return Err(TableError::Permanent {
            message: format!(
                "batch answer reports {} operations for the {operations} sent: {}",
                statuses.len(),
                excerpt()
            ),
            source: None,
        });
    }
    Ok(BatchDeletion::Deleted)
}

fn etag_of(response: &reqwest::Response) -> Result<String, TableError> {
    response
        .headers()
        .get("ETag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| TableError::Permanent {
            message: "entity answer carries no ETag".into(),
            source: None,
        })
}

async fn read_json_object(response: reqwest::Response) -> Result<Map<String, Value>, TableError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| TableError::Unavailable {
            message: "reading the table service answer failed".into(),
            source: Some(Box::new(e)),
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(TableError::Permanent {
            message: "table service answer is not a JSON object".into(),
            source: None,
        }),
        Err(e) => Err(TableError::Permanent {
            message: "table service answer is not JSON".into(),
            source: Some(Box::new(e)),
        }),
    }
}

async fn guarded(what: &str, response: reqwest::Response) -> Result<Guarded, TableError> {
    match response.status() {
        s if s.is_success() => Ok(Guarded::Done),
        StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Ok(Guarded::Stale),
        s => Err(failure(what, s, response).await),
    }
}

/// Maps a non-success answer to retryable or permanent, keeping the service's own words.
async fn failure(what: &str, status: StatusCode, response: reqwest::Response) -> TableError {
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let message = format!("{what}: {status}: {text}");
    TableError::classified(status_class(status.as_u16()), message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change-set answer in the service's multipart shape, one part per status.
    fn answer(statuses: &[&str]) -> String {
        let mut text = String::from(
            "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n",
        );
        for status in statuses {
            text.push_str(&format!(
                "--changesetresponse_1\r\nContent-Type: application/http\r\n\
                 Content-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 {status}\r\n\
                 DataServiceVersion: 1.0;\r\n\r\n\r\n"
            ));
        }
        text.push_str("--changesetresponse_1--\r\n--batchresponse_1--\r\n");
        text
    }

    #[test]
    fn reads_batch_answers() {
        let done = answer(&["204 No Content", "204 No Content"]);
        assert_eq!(batch_outcome(&done, 2).unwrap(), BatchDeletion::Deleted);
        // A refused change set answers one part, the refusal, and nothing was deleted.
        assert_eq!(
            batch_outcome(&answer(&["404 Not Found"]), 3).unwrap(),
            BatchDeletion::RolledBack { status: 404 }
        );
        assert_eq!(
            batch_outcome(&answer(&["412 Precondition Failed"]), 3).unwrap(),
            BatchDeletion::RolledBack { status: 412 }
        );
        let busy = batch_outcome(&answer(&["503 Server Busy"]), 3).unwrap_err();
        assert!(matches!(busy, TableError::Unavailable { .. }), "{busy}");
        let refused = batch_outcome(&answer(&["400 Bad Request"]), 3).unwrap_err();
        assert!(matches!(refused, TableError::Permanent { .. }), "{refused}");
        // Fewer statuses than deletes sent: not an answer to trust.
        let short = batch_outcome(&done, 3).unwrap_err();
        assert!(
            short.to_string().contains("2 operations for the 3 sent"),
            "{short}"
        );
        assert!(batch_outcome("", 1).is_err());
    }

    #[test]
    fn boundary_tags_differ_between_batches() {
        let key = |row: &str| EntityKey {
            partition: "r-1".into(),
            row: row.into(),
            etag: "*".into(),
        };
        let a = boundary_tag(&[key("f-1"), key("f-2")]);
        assert_eq!(a.len(), 32);
        assert_ne!(a, boundary_tag(&[key("f-1"), key("f-3")]));
    }
}

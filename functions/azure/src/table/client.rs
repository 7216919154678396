//! A small Table Storage REST client: signed requests (SharedKeyLite with an account key, or a
//! managed identity bearer token), the handful of entity operations the store needs, and query
//! paging through continuation headers. No maintained Rust Tables crate exists; this is the
//! part of the protocol we use and nothing more.

use crate::identity::{ManagedIdentity, TokenError};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::{Map, Value};
use sha2::Sha256;
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
const PAGE_SIZE: &str = "1000";

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

impl From<TokenError> for TableError {
    fn from(e: TokenError) -> Self {
        let message = "no token for the table service".to_owned();
        if e.is_retryable() {
            TableError::Unavailable {
                message,
                source: Some(Box::new(e)),
            }
        } else {
            TableError::Permanent {
                message,
                source: Some(Box::new(e)),
            }
        }
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
        let mut continuation: Option<(String, Option<String>)> = None;
        let path = format!("{}()", self.table);
        loop {
            let next = continuation.take();
            let filter = filter.to_owned();
            let response = self
                .send(Method::GET, &path, move |r| {
                    let mut query: Vec<(&str, String)> =
                        vec![("$filter", filter), ("$top", PAGE_SIZE.to_owned())];
                    if let Some((partition, row)) = next {
                        query.push(("NextPartitionKey", partition));
                        if let Some(row) = row {
                            query.push(("NextRowKey", row));
                        }
                    }
                    r.query(&query)
                })
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
            let next_partition = header("x-ms-continuation-NextPartitionKey");
            let next_row = header("x-ms-continuation-NextRowKey");
            let page = read_json_object(response).await?;
            match page.get("value") {
                Some(Value::Array(values)) => {
                    for value in values {
                        match value {
                            Value::Object(entity) => entities.push(entity.clone()),
                            other => {
                                return Err(TableError::Permanent {
                                    message: format!("query answer holds a non-entity: {other}"),
                                    source: None,
                                })
                            }
                        }
                    }
                }
                _ => {
                    return Err(TableError::Permanent {
                        message: "query answer has no `value` array".into(),
                        source: None,
                    })
                }
            }
            match next_partition {
                Some(partition) => continuation = Some((partition, next_row)),
                None => return Ok(entities),
            }
        }
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
            .header("Accept", "application/json;odata=nometadata")
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
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    if retryable {
        TableError::Unavailable {
            message,
            source: None,
        }
    } else {
        TableError::Permanent {
            message,
            source: None,
        }
    }
}

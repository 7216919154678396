//! Reading a CloudTrail archive bucket: `ListObjectsV2` pages, `GetObject` bodies streamed
//! chunk by chunk, and the CloudTrail key layout walked for a range of days.
//!
//! Signed here with SigV4 (`s3`, `UNSIGNED-PAYLOAD`) and sent with `reqwest`, like the Query
//! calls of [`crate::QueryClient`], instead of compiling `aws-sdk-s3` (see the README, "S3
//! client"). Calls are retried by the shared driver (`snapwatch_http::retry`) and failures
//! sorted by the shared classifier ([`crate::classify`]). A body is never held whole: the
//! caller reads it as chunks ([`S3Body::next_chunk`]) or through a blocking [`std::io::Read`]
//! ([`BlockingBody`]) that gzip and the record splitter can be stacked on.
//!
//! Addressing: virtual-hosted (`https://BUCKET.s3.REGION.amazonaws.com/KEY`) on AWS, path-style
//! (`ENDPOINT/BUCKET/KEY`) for a custom endpoint such as moto or MinIO, and for bucket names with
//! dots, which do not match the wildcard certificate.

use crate::classify::{classify_code, CodeClass};
use crate::client::{AttemptFailure, RetryPolicy};
use crate::error::TransportError;
use crate::signing::{signed_s3_headers, CachedCredentials};
use crate::xml;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, Utc};
use snapwatch_http::{retry, status_class, Class, Classify};
use std::fmt;
use std::time::SystemTime;
use tracing::Instrument;

/// Keys per `ListObjectsV2` page (the service's maximum).
const PAGE_KEYS: &str = "1000";

/// What went wrong with an S3 call, naming the bucket or object (`s3://bucket/key`).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// S3 kept throttling (`SlowDown`, 503) until the retry budget ran out.
    #[error("{operation} {target} was still throttled ({code}) after {attempts} attempts")]
    Throttled {
        /// The S3 operation (`GetObject`, `ListObjectsV2`).
        operation: &'static str,
        /// `s3://bucket/key` or `s3://bucket/prefix`.
        target: String,
        /// The error code or `HTTP 429`/`HTTP 503`.
        code: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Network failure, timeout or a 5xx that outlasted the retries.
    #[error("{operation} {target} failed after {attempts} attempts: {reason}")]
    Unavailable {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/key`.
        target: String,
        /// What the last attempt met.
        reason: String,
        /// Attempts made.
        attempts: u32,
        /// The transport error, when there was one.
        #[source]
        source: Option<TransportError>,
    },
    /// Not allowed (IAM, bucket policy, KMS key policy, expired credentials): retrying will not
    /// help.
    #[error("{operation} {target} was denied ({code}): {message}")]
    Denied {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/key`.
        target: String,
        /// The S3 error code.
        code: String,
        /// The S3 error message.
        message: String,
    },
    /// The bucket or object does not exist (`NoSuchBucket`, `NoSuchKey`).
    #[error("{operation} {target}: {code}")]
    NotFound {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/key`.
        target: String,
        /// The S3 error code.
        code: String,
    },
    /// Any other error S3 returned (a KMS key that is disabled, a wrong region).
    #[error("{operation} {target} failed with HTTP {status} {code}: {message}")]
    Api {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/key`.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The S3 error code, empty when the body had none.
        code: String,
        /// The S3 error message.
        message: String,
    },
    /// A listing that is not the XML S3 sends.
    #[error("{operation} {target} returned a response that cannot be read: {reason}")]
    Malformed {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/prefix`.
        target: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The body of an object broke off or could not be read after its headers arrived.
    #[error("reading {target} failed after {bytes} bytes: {reason}")]
    Body {
        /// `s3://bucket/key`.
        target: String,
        /// Bytes received before the failure.
        bytes: u64,
        /// What happened.
        reason: String,
        /// The transport error, when there was one.
        #[source]
        source: Option<TransportError>,
    },
    /// The credentials provider could not supply credentials.
    #[error("no AWS credentials")]
    Credentials(#[source] CredentialsError),
    /// The request could not be signed.
    #[error("cannot sign {operation} {target}")]
    Signing {
        /// The S3 operation.
        operation: &'static str,
        /// `s3://bucket/key`.
        target: String,
        /// The signer's error.
        #[source]
        source: TransportError,
    },
    /// The endpoint, region or bucket would not make a valid URL.
    #[error("invalid S3 location {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The URL or name at fault.
        endpoint: String,
        /// Why it is refused.
        reason: String,
    },
}

impl S3Error {
    /// True when the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            S3Error::Throttled { .. } | S3Error::Unavailable { .. } | S3Error::Body { .. } => true,
            S3Error::Credentials(source) => {
                matches!(source, CredentialsError::ProviderTimedOut(_))
            }
            _ => false,
        }
    }
}

impl Classify for S3Error {
    fn class(&self) -> Class {
        if self.is_retryable() {
            Class::Transient
        } else {
            Class::Permanent
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// The full key.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// The ETag, quotes removed (an MD5 hex for single-part uploads, `…-N` for multipart).
    pub etag: String,
    /// When the object was last written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One `ListObjectsV2` page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The objects of the page, in key order.
    pub objects: Vec<ObjectSummary>,
    /// With a delimiter: the "folders" (`CommonPrefixes`), each ending with the delimiter.
    pub prefixes: Vec<String>,
    /// The token of the next page, when the listing is truncated.
    pub next: Option<String>,
}

/// What one `ListObjectsV2` call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest<'a> {
    /// Only keys that start with this.
    pub prefix: &'a str,
    /// Roll keys up to the first occurrence after the prefix (`/` lists one level).
    pub delimiter: Option<&'a str>,
    /// Only keys after this one (first page only; S3 ignores it with a continuation token).
    pub start_after: Option<&'a str>,
    /// The `next` of the previous page.
    pub continuation: Option<&'a str>,
}

/// The headers of a `GetObject` and its body, not yet read.
pub struct S3Body {
    target: String,
    /// The ETag, quotes removed.
    pub etag: Option<String>,
    /// The version, on a versioned bucket.
    pub version_id: Option<String>,
    /// `Content-Length`, when sent.
    pub content_length: Option<u64>,
    /// `x-amz-server-side-encryption` (`AES256`, `aws:kms`), when sent.
    pub server_side_encryption: Option<String>,
    response: reqwest::Response,
    received: u64,
}

impl fmt::Debug for S3Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Body")
            .field("target", &self.target)
            .field("etag", &self.etag)
            .field("version_id", &self.version_id)
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl S3Body {
    /// `s3://bucket/key`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next chunk of the body as it arrives; `None` at its end. A body that ends before its
    /// `Content-Length` is an error, never a short object.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => {
                self.received += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Ok(None) => match self.content_length {
                Some(expected) if expected != self.received => Err(S3Error::Body {
                    target: self.target.clone(),
                    bytes: self.received,
                    reason: format!("the body ended before its {expected} bytes (truncated)"),
                    source: None,
                }),
                _ => Ok(None),
            },
            Err(e) => Err(S3Error::Body {
                target: self.target.clone(),
                bytes: self.received,
                reason: describe_transport_error(&e),
                source: Some(Box::new(e)),
            }),
        }
    }

    /// A blocking reader over the body for synchronous consumers (gzip, the record splitter),
    /// driving the download on `runtime`. Must be read outside that runtime's async context (a
    /// plain thread, or `spawn_blocking`), and on a multi-thread runtime: a current-thread
    /// runtime's `Handle` does not drive its I/O.
    pub fn into_blocking_read(self, runtime: tokio::runtime::Handle) -> BlockingBody {
        BlockingBody {
            body: self,
            runtime,
            pending: Bytes::new(),
        }
    }
}

/// [`S3Body`] as a [`std::io::Read`]; a failure is an `io::Error` whose inner error is the
/// [`S3Error`] naming the object.
pub struct BlockingBody {
    body: S3Body,
    runtime: tokio::runtime::Handle,
    pending: Bytes,
}

impl BlockingBody {
    /// Bytes received so far (compressed, as stored).
    pub fn received(&self) -> u64 {
        self.body.received
    }
}

impl std::io::Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.runtime.block_on(self.body.next_chunk()) {
                Ok(Some(chunk)) => self.pending = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// One account and region of a CloudTrail archive, and the day prefixes of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailDay {
    /// The organization id (`o-…`) of an organization trail's layout.
    pub organization: Option<String>,
    /// The 12-digit account.
    pub account: String,
    /// The region folder.
    pub region: String,
    /// The delivery day (UTC) of the objects under `prefix`.
    pub day: NaiveDate,
    /// `…/AWSLogs/[o-…/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/`.
    pub prefix: String,
}

/// Signs and sends S3 calls. Cheap to clone; clones share the credentials cache.
#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    credentials: CachedCredentials,
    region: String,
    endpoint: Option<reqwest::Url>,
    retry: RetryPolicy,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client")
            .field("region", &self.region)
            .field(
                "endpoint",
                &self.endpoint.as_ref().map(reqwest::Url::as_str),
            )
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    /// A client for buckets in `region`. `endpoint_url` replaces AWS (a local emulator such as
    /// moto) and switches to path-style addressing.
    pub fn new(
        http: reqwest::Client,
        credentials: SharedCredentialsProvider,
        region: &str,
        endpoint_url: Option<&str>,
    ) -> Result<Self, S3Error> {
        let valid_region = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_region {
            return Err(S3Error::InvalidEndpoint {
                endpoint: region.to_string(),
                reason: "not an AWS region name".to_string(),
            });
        }
        let endpoint = endpoint_url
            .map(|raw| {
                let url = reqwest::Url::parse(raw).map_err(|e| S3Error::InvalidEndpoint {
                    endpoint: raw.to_string(),
                    reason: e.to_string(),
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(S3Error::InvalidEndpoint {
                        endpoint: raw.to_string(),
                        reason: "expected an http(s) URL with a host".to_string(),
                    });
                }
                Ok(url)
            })
            .transpose()?;
        Ok(S3Client {
            http,
            credentials: CachedCredentials::new(credentials),
            region: region.to_string(),
            endpoint,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the default retry policy (6 attempts, 200 ms doubling to 5 s).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The URL of `key` in `bucket` (`key` empty: the bucket itself), path segments encoded
    /// once, `/` kept.
    pub fn object_url(&self, bucket: &str, key: &str) -> Result<reqwest::Url, S3Error> {
        check_bucket(bucket)?;
        let raw = match &self.endpoint {
            Some(endpoint) => {
                let base = endpoint.as_str().trim_end_matches('/');
                format!("{base}/{bucket}/{}", encode_key(key))
            }
            None => {
                let suffix = if self.region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                if bucket.contains('.') {
                    format!(
                        "https://s3.{}.{suffix}/{bucket}/{}",
                        self.region,
                        encode_key(key)
                    )
                } else {
                    format!(
                        "https://{bucket}.s3.{}.{suffix}/{}",
                        self.region,
                        encode_key(key)
                    )
                }
            }
        };
        reqwest::Url::parse(&raw).map_err(|e| S3Error::InvalidEndpoint {
            endpoint: raw,
            reason: e.to_string(),
        })
    }

    /// One `ListObjectsV2` page.
    pub async fn list_objects(
        &self,
        bucket: &str,
        request: &ListRequest<'_>,
    ) -> Result<ListPage, S3Error> {
        let target = format!("s3://{bucket}/{}", request.prefix);
        let mut url = self.object_url(bucket, "")?;
        let mut query = format!("list-type=2&max-keys={PAGE_KEYS}");
        let mut param = |name: &str, value: &str| {
            query.push('&');
            query.push_str(name);
            query.push('=');
            query.push_str(&percent_encode(value));
        };
        if let Some(token) = request.continuation {
            param("continuation-token", token);
        }
        if let Some(delimiter) = request.delimiter {
            param("delimiter", delimiter);
        }
        // Keys come back as sent, not URL-encoded: the XML reader decodes the entities.
        if !request.prefix.is_empty() {
            param("prefix", request.prefix);
        }
        if let Some(after) = request.start_after {
            param("start-after", after);
        }
        url.set_query(Some(&query));
        let body = self
            .send("ListObjectsV2", &target, &url, |response| async move {
                response
                    .text()
                    .await
                    .map_err(|e| AttemptFailure::Unavailable {
                        reason: "reading the listing failed".to_string(),
                        source: Some(Box::new(e)),
                    })
            })
            .await?;
        list_page(&body).map_err(|reason| S3Error::Malformed {
            operation: "ListObjectsV2",
            target,
            reason,
        })
    }

    /// Every object under `prefix` after `start_after`, page after page.
    pub async fn list_all_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<ObjectSummary>, S3Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_objects(
                    bucket,
                    &ListRequest {
                        prefix,
                        delimiter: None,
                        start_after,
                        continuation: token.as_deref(),
                    },
                )
                .await?;
            objects.extend(page.objects);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// The "folders" one level below `prefix` (which should end with `/`), every page.
    pub async fn list_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut prefixes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_objects(
                    bucket,
                    &ListRequest {
                        prefix,
                        delimiter: Some("/"),
                        start_after: None,
                        continuation: token.as_deref(),
                    },
                )
                .await?;
            prefixes.extend(page.prefixes);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(prefixes),
            }
        }
    }

    /// Starts a `GetObject`: retried until the headers arrive, then the body is the caller's
    /// to stream. SSE-S3 and SSE-KMS objects are decrypted by S3 for a plain signed GET (the
    /// caller needs `kms:Decrypt` on the key).
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<S3Body, S3Error> {
        let target = format!("s3://{bucket}/{key}");
        let url = self.object_url(bucket, key)?;
        let response = self
            .send("GetObject", &target, &url, |response| async move {
                Ok(response)
            })
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(S3Body {
            etag: header("etag").map(|e| unquote(&e).to_string()),
            version_id: header("x-amz-version-id"),
            content_length: response.content_length(),
            server_side_encryption: header("x-amz-server-side-encryption"),
            target,
            response,
            received: 0,
        })
    }

    /// A signed `PUT` of `body` to `key` (an object), or with an empty key to the bucket itself
    /// (`CreateBucket`), with an optional subresource query such as `encryption`. What tests
    /// and set-up tools use to prepare a bucket; the scan itself only reads.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        subresource: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<(), S3Error> {
        let target = format!("s3://{bucket}/{key}");
        let mut url = self.object_url(bucket, key)?;
        url.set_query(subresource);
        self.send_with(
            reqwest::Method::PUT,
            Some(body.into()),
            if key.is_empty() {
                "PutBucket"
            } else {
                "PutObject"
            },
            &target,
            &url,
            |_| async { Ok(()) },
        )
        .await
    }

    /// The region a bucket lives in (`HeadBucket`'s `x-amz-bucket-region`, which S3 sends even
    /// when it refuses or redirects), so a backfill can sign for the bucket's own region.
    pub async fn bucket_region(&self, bucket: &str) -> Result<String, S3Error> {
        let target = format!("s3://{bucket}");
        let url = self.object_url(bucket, "")?;
        let credentials = self.credentials.get().await.map_err(S3Error::Credentials)?;
        let headers =
            signed_s3_headers(&credentials, &self.region, "HEAD", &url, SystemTime::now())
                .map_err(|source| S3Error::Signing {
                    operation: "HeadBucket",
                    target: target.clone(),
                    source,
                })?;
        let mut request = self.http.head(url);
        for (name, value) in &headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.map_err(|e| S3Error::Unavailable {
            operation: "HeadBucket",
            target: target.clone(),
            reason: describe_transport_error(&e),
            attempts: 1,
            source: Some(Box::new(e)),
        })?;
        if let Some(region) = response
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
        {
            return Ok(region.to_string());
        }
        let status = response.status().as_u16();
        Err(match status {
            404 => S3Error::NotFound {
                operation: "HeadBucket",
                target,
                code: "NoSuchBucket".to_string(),
            },
            _ => S3Error::Api {
                operation: "HeadBucket",
                target,
                status,
                code: String::new(),
                message: "no x-amz-bucket-region in the answer".to_string(),
            },
        })
    }

    /// The account/region/day prefixes of a CloudTrail archive under `root` for the days
    /// `from..=until`, ordered day by day (then by account and region), so that a backfill
    /// reads events roughly in time order. Accounts and regions are found by listing one level
    /// at a time with delimiter `/`; days are computed, never listed, so a range costs one
    /// listing per account, region and day in it, whatever the bucket holds outside it.
    ///
    /// `root` may stop anywhere above the day: the bucket root or a trail prefix (above
    /// `AWSLogs/`), `AWSLogs/o-…/`, an account, its `CloudTrail/` folder, or one region.
    pub async fn cloudtrail_days(
        &self,
        bucket: &str,
        root: &str,
        from: NaiveDate,
        until: NaiveDate,
    ) -> Result<Vec<TrailDay>, S3Error> {
        let regions = self.cloudtrail_regions(bucket, root).await?;
        let mut days = Vec::new();
        let mut day = from;
        while day <= until {
            for region in &regions {
                days.push(TrailDay {
                    organization: region.organization.clone(),
                    account: region.account.clone(),
                    region: region.region.clone(),
                    day,
                    prefix: format!("{}{}/", region.prefix, day.format("%Y/%m/%d")),
                });
            }
            match day.checked_add_days(Days::new(1)) {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(days)
    }

    /// Every `…/CloudTrail/REGION/` folder under `root`, sorted.
    async fn cloudtrail_regions(&self, bucket: &str, root: &str) -> Result<Vec<Region>, S3Error> {
        let mut found = Vec::new();
        let mut pending = vec![folder(root)];
        while let Some(prefix) = pending.pop() {
            match trail_level(&prefix) {
                Level::AboveLogs => pending.push(format!("{prefix}AWSLogs/")),
                Level::Logs | Level::Organization => {
                    for child in self.list_prefixes(bucket, &prefix).await? {
                        let name = last_segment(&child);
                        let is_org = name.starts_with("o-");
                        if is_account(name)
                            || (is_org && matches!(trail_level(&prefix), Level::Logs))
                        {
                            pending.push(child);
                        }
                    }
                }
                Level::Account => pending.push(format!("{prefix}CloudTrail/")),
                Level::Trail {
                    organization,
                    account,
                } => {
                    for child in self.list_prefixes(bucket, &prefix).await? {
                        found.push(Region {
                            organization: organization.clone(),
                            account: account.clone(),
                            region: last_segment(&child).to_string(),
                            prefix: child,
                        });
                    }
                }
                Level::Region {
                    organization,
                    account,
                    region,
                } => found.push(Region {
                    organization,
                    account,
                    region,
                    prefix,
                }),
                Level::Other(reason) => {
                    return Err(S3Error::InvalidEndpoint {
                        endpoint: format!("s3://{bucket}/{prefix}"),
                        reason,
                    })
                }
            }
        }
        found.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        Ok(found)
    }

    /// Signs and sends one request, retried on throttling and outages; a 2xx response is
    /// handed to `read` (whose failures are retried too).
    async fn send<T, F, Fut>(
        &self,
        operation: &'static str,
        target: &str,
        url: &reqwest::Url,
        read: F,
    ) -> Result<T, S3Error>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptFailure<S3Error>>>,
    {
        self.send_with(reqwest::Method::GET, None, operation, target, url, read)
            .await
    }

    /// [`Self::send`] with any method and an optional body (sent as `UNSIGNED-PAYLOAD`).
    async fn send_with<T, F, Fut>(
        &self,
        method: reqwest::Method,
        body: Option<Bytes>,
        operation: &'static str,
        target: &str,
        url: &reqwest::Url,
        read: F,
    ) -> Result<T, S3Error>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptFailure<S3Error>>>,
    {
        let span = tracing::debug_span!("s3", operation, target);
        let retried = retry(&self.retry.driver(), operation, None, |_| async {
            let credentials = self
                .credentials
                .get()
                .await
                .map_err(|e| AttemptFailure::Final(S3Error::Credentials(e)))?;
            let headers = signed_s3_headers(
                &credentials,
                &self.region,
                method.as_str(),
                url,
                SystemTime::now(),
            )
            .map_err(|source| {
                AttemptFailure::Final(S3Error::Signing {
                    operation,
                    target: target.to_string(),
                    source,
                })
            })?;
            let mut request = self.http.request(method.clone(), url.clone());
            for (name, value) in &headers {
                request = request.header(*name, value.as_str());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| AttemptFailure::Unavailable {
                    reason: describe_transport_error(&e),
                    source: Some(Box::new(e)),
                })?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                return read(response).await;
            }
            let body = response.text().await.unwrap_or_default();
            Err(classify_failure(operation, target, status, &body))
        })
        .instrument(span)
        .await;
        retried.map_err(|retried| match retried.error {
            AttemptFailure::Final(error) => error,
            AttemptFailure::Throttled { code } => S3Error::Throttled {
                operation,
                target: target.to_string(),
                code,
                attempts: retried.attempts,
            },
            AttemptFailure::Unavailable { reason, source } => S3Error::Unavailable {
                operation,
                target: target.to_string(),
                reason,
                attempts: retried.attempts,
                source,
            },
        })
    }
}

/// A `…/CloudTrail/REGION/` folder.
struct Region {
    organization: Option<String>,
    account: String,
    region: String,
    prefix: String,
}

/// Where a folder sits in the CloudTrail layout
/// `[TRAIL-PREFIX/]AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/`.
#[derive(Debug, PartialEq, Eq)]
enum Level {
    /// No `AWSLogs/` yet: the bucket root or the trail's own prefix.
    AboveLogs,
    /// `…/AWSLogs/`.
    Logs,
    /// `…/AWSLogs/o-…/`.
    Organization,
    /// `…/AWSLogs/[o-…/]ACCOUNT/`.
    Account,
    /// `…/ACCOUNT/CloudTrail/`.
    Trail {
        organization: Option<String>,
        account: String,
    },
    /// `…/CloudTrail/REGION/`.
    Region {
        organization: Option<String>,
        account: String,
        region: String,
    },
    /// Below a region, or something that is not the layout.
    Other(String),
}

fn trail_level(prefix: &str) -> Level {
    // The last `AWSLogs/` segment: a trail prefix may itself contain the word.
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let Some(logs) = segments.iter().rposition(|s| *s == "AWSLogs") else {
        return Level::AboveLogs;
    };
    let rest = &segments[logs + 1..];
    let (organization, rest) = match rest.first() {
        Some(org) if org.starts_with("o-") => (Some((*org).to_string()), &rest[1..]),
        _ => (None, rest),
    };
    match rest {
        [] if organization.is_some() => Level::Organization,
        [] => Level::Logs,
        [account] if is_account(account) => Level::Account,
        [account, "CloudTrail"] if is_account(account) => Level::Trail {
            organization,
            account: (*account).to_string(),
        },
        [account, "CloudTrail", region] if is_account(account) => Level::Region {
            organization,
            account: (*account).to_string(),
            region: (*region).to_string(),
        },
        _ => Level::Other(
            "expected a prefix above the day folders of AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/"
                .to_string(),
        ),
    }
}

fn is_account(segment: &str) -> bool {
    segment.len() == 12 && segment.bytes().all(|b| b.is_ascii_digit())
}

/// `prefix` as a folder: empty stays empty, anything else ends with `/`.
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn last_segment(prefix: &str) -> &str {
    prefix
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// Bucket names as S3 allows them (3–63 of `a-z 0-9 . -`): anything else would change the host
/// or the path of the request.
fn check_bucket(bucket: &str) -> Result<(), S3Error> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(S3Error::InvalidEndpoint {
            endpoint: format!("s3://{bucket}"),
            reason: "not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')".to_string(),
        })
    }
}

/// A key as a URL path: each byte outside RFC 3986's unreserved set encoded, `/` kept.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn percent_encode(raw: &str) -> String {
    let mut encoded = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed in transport".to_string()
    }
}

/// Sorts a non-2xx answer into retry-or-not by its S3 error code and status.
fn classify_failure(
    operation: &'static str,
    target: &str,
    status: u16,
    body: &str,
) -> AttemptFailure<S3Error> {
    let (code, message) = match xml::error_document(body) {
        Some(doc) => (doc.code, doc.message),
        None => (String::new(), String::new()),
    };
    match (classify_code(&code), status) {
        (CodeClass::Throttling, _) | (_, 429) => AttemptFailure::Throttled {
            code: if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            },
        },
        (CodeClass::ServerFault, _) => AttemptFailure::Unavailable {
            reason: format!("HTTP {status} {code}: {message}"),
            source: None,
        },
        (CodeClass::Denied, _) => AttemptFailure::Final(S3Error::Denied {
            operation,
            target: target.to_string(),
            code,
            message,
        }),
        // A HEAD or an error without a body has no code: the status says it.
        (CodeClass::Other, 403) if code.is_empty() => AttemptFailure::Final(S3Error::Denied {
            operation,
            target: target.to_string(),
            code: "HTTP 403".to_string(),
            message,
        }),
        (CodeClass::Other, _)
            if code == "NoSuchKey"
                || code == "NoSuchBucket"
                || (code.is_empty() && status == 404) =>
        {
            AttemptFailure::Final(S3Error::NotFound {
                operation,
                target: target.to_string(),
                code: if code.is_empty() {
                    "HTTP 404".to_string()
                } else {
                    code
                },
            })
        }
        (CodeClass::Other, _) if status_class(status) == Class::Transient => {
            AttemptFailure::Unavailable {
                reason: format!("HTTP {status} {code}: {message}"),
                source: None,
            }
        }
        (CodeClass::Other, _) => AttemptFailure::Final(S3Error::Api {
            operation,
            target: target.to_string(),
            status,
            code,
            message,
        }),
    }
}

/// Reads a `ListBucketResult` (ListObjectsV2). Keys are taken verbatim, never trimmed.
fn list_page(body: &str) -> Result<ListPage, String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        return Err(format!(
            "expected <ListBucketResult>, got <{}>",
            root.tag_name().name()
        ));
    }
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .map(|c| c.text().unwrap_or_default().to_string())
    };
    let mut page = ListPage::default();
    for node in root.children().filter(|c| c.is_element()) {
        match node.tag_name().name() {
            "Contents" => {
                let key = child_text(node, "Key").ok_or("Contents without <Key>")?;
                let size = match child_text(node, "Size") {
                    Some(size) => size
                        .trim()
                        .parse()
                        .map_err(|_| format!("Size {size:?} of {key:?} is not a number"))?,
                    None => 0,
                };
                page.objects.push(ObjectSummary {
                    etag: child_text(node, "ETag")
                        .map(|e| unquote(&e).to_string())
                        .unwrap_or_default(),
                    last_modified: child_text(node, "LastModified")
                        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    key,
                    size,
                });
            }
            "CommonPrefixes" => {
                if let Some(prefix) = child_text(node, "Prefix") {
                    page.prefixes.push(prefix);
                }
            }
            _ => {}
        }
    }
    let truncated = child_text(root, "IsTruncated").is_some_and(|t| t.trim() == "true");
    if truncated {
        let token = child_text(root, "NextContinuationToken")
            .filter(|t| !t.is_empty())
            .ok_or("a truncated listing without <NextContinuationToken>")?;
        page.next = Some(token);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn client(endpoint: Option<&str>, region: &str) -> S3Client {
        S3Client::new(
            reqwest::Client::new(),
            SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "test")),
            region,
            endpoint,
        )
        .unwrap()
    }

    #[test]
    fn urls_are_virtual_hosted_on_aws_and_path_style_elsewhere() {
        let aws = client(None, "eu-west-1");
        assert_eq!(
            aws.object_url("trail-logs", "AWSLogs/o-ab12/111122223333/x y+z.json.gz")
                .unwrap()
                .as_str(),
            "https://trail-logs.s3.eu-west-1.amazonaws.com/AWSLogs/o-ab12/111122223333/x%20y%2Bz.json.gz"
        );
        assert_eq!(
            aws.object_url("dotted.bucket", "k").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/dotted.bucket/k"
        );
        assert_eq!(
            client(None, "cn-north-1")
                .object_url("b12", "")
                .unwrap()
                .as_str(),
            "https://b12.s3.cn-north-1.amazonaws.com.cn/"
        );
        let local = client(Some("http://127.0.0.1:5000/"), "us-east-1");
        assert_eq!(
            local.object_url("logs", "a/b").unwrap().as_str(),
            "http://127.0.0.1:5000/logs/a/b"
        );
        assert!(aws.object_url("Bad/Bucket", "k").is_err());
        assert!(aws.object_url("x", "k").is_err());
        assert!(S3Client::new(
            reqwest::Client::new(),
            SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "t")),
            "evil.example.com/",
            None
        )
        .is_err());
    }

    #[test]
    fn signed_gets_carry_the_unsigned_payload_marker() {
        let url = reqwest::Url::parse(
            "https://b12.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=AWSLogs%2F",
        )
        .unwrap();
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()), None, "t");
        let headers = signed_s3_headers(
            &credentials,
            "eu-west-1",
            "GET",
            &url,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_717_228_800),
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"));
        assert_eq!(get("x-amz-security-token"), Some("tok"));
        let authorization = get("authorization").unwrap();
        assert!(
            authorization.contains("/20240601/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"),
            "{authorization}"
        );
    }

    #[test]
    fn listing_pages_are_read_with_prefixes_and_tokens() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>AWSLogs/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated><NextContinuationToken>tok/+=</NextContinuationToken>
  <Contents><Key> spaced &amp; odd.json.gz</Key><LastModified>2026-11-29T10:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1234</Size></Contents>
  <CommonPrefixes><Prefix>AWSLogs/o-ab12/</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = list_page(body).unwrap();
        assert_eq!(page.objects.len(), 1);
        let object = &page.objects[0];
        assert_eq!(object.key, " spaced & odd.json.gz");
        assert_eq!(object.size, 1234);
        assert_eq!(object.etag, "9b2cf535f27731c974343645a3985328");
        assert_eq!(
            object.last_modified.unwrap().to_rfc3339(),
            "2026-11-29T10:00:00+00:00"
        );
        assert_eq!(page.prefixes, vec!["AWSLogs/o-ab12/".to_string()]);
        assert_eq!(page.next.as_deref(), Some("tok/+="));
        assert!(list_page("<Error><Code>AccessDenied</Code></Error>").is_err());
        assert!(
            list_page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                .is_err()
        );
    }

    fn outcome(status: u16, body: &str) -> String {
        match classify_failure("GetObject", "s3://b/k", status, body) {
            AttemptFailure::Throttled { code } => format!("throttled {code}"),
            AttemptFailure::Unavailable { .. } => "unavailable".to_string(),
            AttemptFailure::Final(S3Error::Denied { code, .. }) => format!("denied {code}"),
            AttemptFailure::Final(S3Error::NotFound { code, .. }) => format!("not found {code}"),
            AttemptFailure::Final(S3Error::Api { code, .. }) => format!("api {code}"),
            AttemptFailure::Final(other) => format!("other {other}"),
        }
    }

    fn s3_error(code: &str) -> String {
        format!("<Error><Code>{code}</Code><Message>m</Message><RequestId>r</RequestId></Error>")
    }

    #[test]
    fn failures_are_sorted_by_the_shared_classifier() {
        assert_eq!(outcome(503, &s3_error("SlowDown")), "throttled SlowDown");
        assert_eq!(outcome(429, ""), "throttled HTTP 429");
        assert_eq!(outcome(500, &s3_error("InternalError")), "unavailable");
        assert_eq!(outcome(502, "<html/>"), "unavailable");
        assert_eq!(
            outcome(403, &s3_error("AccessDenied")),
            "denied AccessDenied"
        );
        assert_eq!(outcome(403, ""), "denied HTTP 403");
        assert_eq!(
            outcome(400, &s3_error("ExpiredToken")),
            "denied ExpiredToken"
        );
        assert_eq!(outcome(404, &s3_error("NoSuchKey")), "not found NoSuchKey");
        assert_eq!(
            outcome(404, &s3_error("NoSuchBucket")),
            "not found NoSuchBucket"
        );
        assert_eq!(
            outcome(400, &s3_error("KMS.DisabledException")),
            "api KMS.DisabledException"
        );
    }

    #[test]
    fn the_layout_level_of_a_prefix_is_recognised() {
        assert_eq!(trail_level(""), Level::AboveLogs);
        assert_eq!(trail_level("my-trail/"), Level::AboveLogs);
        assert_eq!(trail_level("AWSLogs/"), Level::Logs);
        assert_eq!(trail_level("x/AWSLogs/o-ab12cd/"), Level::Organization);
        assert_eq!(trail_level("AWSLogs/111122223333/"), Level::Account);
        assert_eq!(trail_level("AWSLogs/o-ab12/111122223333/"), Level::Account);
        assert_eq!(
            trail_level("AWSLogs/o-ab12/111122223333/CloudTrail/"),
            Level::Trail {
                organization: Some("o-ab12".into()),
                account: "111122223333".into()
            }
        );
        assert_eq!(
            trail_level("AWSLogs/111122223333/CloudTrail/eu-west-1/"),
            Level::Region {
                organization: None,
                account: "111122223333".into(),
                region: "eu-west-1".into()
            }
        );
        assert!(matches!(
            trail_level("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/"),
            Level::Other(_)
        ));
        assert!(matches!(
            trail_level("AWSLogs/111122223333/CloudTrail-Digest/"),
            Level::Other(_)
        ));
        assert_eq!(folder("AWSLogs"), "AWSLogs/");
        assert_eq!(folder(""), "");
        assert_eq!(last_segment("AWSLogs/o-ab12/"), "o-ab12");
    }
}

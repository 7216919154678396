//! One signed AWS Query-API call (EC2, RDS, STS), retried on throttling and outages.
//!
//! The Query protocol is a form-encoded POST (`Action`, `Version`, parameters) answered with XML;
//! signing it with SigV4 takes a page of code, where the SDK crates would take many minutes of
//! compile time.

use crate::error::{classify_code, CodeClass, InventoryError, TransportError};
use crate::signing::{signed_post_headers, CachedCredentials};
use crate::xml;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use snapwatch_http::{retry, status_class, Backoff, Class, Classify, JitterRng};
use std::fmt;
use std::time::{Duration, SystemTime};
use tracing::Instrument;

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The AWS services this crate talks to, each with its Query-API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Ec2,
    Rds,
    Sts,
}

impl Service {
    /// The SigV4 signing name, which is also the endpoint's host prefix.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Rds => "rds",
            Service::Sts => "sts",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Rds => "2014-10-31",
            Service::Sts => "2011-06-15",
        }
    }

    /// The regional endpoint; China regions live under `amazonaws.com.cn`.
    pub fn regional_endpoint(self, region: &str) -> String {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{}.{region}.{suffix}/", self.signing_name())
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signing_name())
    }
}

/// How often and how patiently a throttled or failed call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1 is always made).
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles per attempt up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): exponential, capped, with
    /// "equal jitter" (half fixed, half random) so that the many concurrent attribute calls of
    /// one listing do not retry in lockstep, while each still waits at least half its share.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.backoff()
            .delay(attempt, &mut JitterRng::from_entropy())
    }

    fn backoff(&self) -> Backoff {
        Backoff::exponential(self.base_delay, self.max_delay)
    }

    /// This policy in the shared retry layer's terms, for every AWS call snapwatch signs itself.
    pub fn driver(&self) -> snapwatch_http::RetryPolicy {
        snapwatch_http::RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            backoff: self.backoff(),
            max_retry_after: Duration::ZERO,
        }
    }
}

/// Signs and sends Query-API calls. Cheap to clone; clones share the credentials cache.
#[derive(Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    credentials: CachedCredentials,
    endpoint_url: Option<String>,
    retry: RetryPolicy,
}

impl fmt::Debug for QueryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryClient")
            .field("endpoint_url", &self.endpoint_url)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, as the retry driver sees it: `E` is the client's own final error
/// (the Query API's and S3's), so both clients share one shape of attempt.
#[derive(Debug)]
pub(crate) enum AttemptFailure<E> {
    Throttled {
        code: String,
    },
    Unavailable {
        reason: String,
        source: Option<TransportError>,
    },
    Final(E),
}

impl<E: fmt::Display> fmt::Display for AttemptFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::Throttled { code } => write!(f, "throttled ({code})"),
            AttemptFailure::Unavailable { reason, .. } => f.write_str(reason),
            AttemptFailure::Final(error) => error.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for AttemptFailure<E> {}

impl<E> Classify for AttemptFailure<E> {
    fn class(&self) -> Class {
        match self {
            AttemptFailure::Throttled { .. } | AttemptFailure::Unavailable { .. } => {
                Class::Transient
            }
            AttemptFailure::Final(_) => Class::Permanent,
        }
    }
}

impl QueryClient {
    /// `endpoint_url` replaces every service's endpoint (a local emulator such as moto serves
    /// EC2, RDS and STS on one port); `None` uses the regional AWS endpoints.
    pub fn new(
        http: reqwest::Client,
        credentials: SharedCredentialsProvider,
        endpoint_url: Option<String>,
    ) -> Self {
        QueryClient {
            http,
            credentials: CachedCredentials::new(credentials),
            endpoint_url,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// One signed Query-API call (POST form `Action`, `Version`, params), retried on throttling
    /// (EC2 `RequestLimitExceeded`, RDS/STS `Throttling`/`ThrottlingException`, HTTP 429/5xx,
    /// connect/timeout errors) with jittered exponential backoff; returns the response body XML.
    pub async fn call(
        &self,
        service: Service,
        region: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, InventoryError> {
        let url = self.endpoint(service, region)?;
        let body = form_body(service, action, params);
        let span = tracing::debug_span!("aws_query", service = %service, region, action);
        async {
            let retried = retry(&self.retry.driver(), action, None, |_| {
                self.attempt(service, region, action, &url, &body)
            })
            .await;
            retried.map_err(|retried| match retried.error {
                AttemptFailure::Final(error) => error,
                AttemptFailure::Throttled { code } => InventoryError::Throttled {
                    action: action.to_string(),
                    region: region.to_string(),
                    code,
                    attempts: retried.attempts,
                },
                AttemptFailure::Unavailable { reason, source } => InventoryError::Unavailable {
                    action: action.to_string(),
                    region: region.to_string(),
                    reason,
                    attempts: retried.attempts,
                    source,
                },
            })
        }
        .instrument(span)
        .await
    }

    fn endpoint(&self, service: Service, region: &str) -> Result<reqwest::Url, InventoryError> {
        let raw = match &self.endpoint_url {
            Some(url) => url.clone(),
            None => {
                // The region becomes part of a host name: refuse anything that is not one.
                let valid = !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(InventoryError::InvalidEndpoint {
                        endpoint: service.regional_endpoint(region),
                        reason: format!("{region:?} is not an AWS region name"),
                    });
                }
                service.regional_endpoint(region)
            }
        };
        let url = reqwest::Url::parse(&raw).map_err(|e| InventoryError::InvalidEndpoint {
            endpoint: raw.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InventoryError::InvalidEndpoint {
                endpoint: raw,
                reason: "expected an http(s) URL with a host".to_string(),
            });
        }
        Ok(url)
    }

    async fn credentials(&self) -> Result<Credentials, InventoryError> {
        self.credentials
            .get()
            .await
            .map_err(InventoryError::Credentials)
    }

    async fn attempt(
        &self,
        service: Service,
        region: &str,
        action: &str,
        url: &reqwest::Url,
        body: &str,
    ) -> Result<String, AttemptFailure<InventoryError>> {
        let credentials = self.credentials().await.map_err(AttemptFailure::Final)?;
        let headers = signed_headers(&credentials, service, region, url, body, SystemTime::now())
            .map_err(|source| {
            AttemptFailure::Final(InventoryError::Signing {
                action: action.to_string(),
                source,
            })
        })?;
        let mut request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(body.to_string());
        for (name, value) in &headers {
            request = request.header(*name, value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| AttemptFailure::Unavailable {
                reason: describe_transport_error(&e),
                source: Some(Box::new(e)),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AttemptFailure::Unavailable {
                reason: format!("HTTP {}: reading the body failed", status.as_u16()),
                source: Some(Box::new(e)),
            })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(classify_failure(action, status.as_u16(), &text))
    }
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

/// Sorts a non-2xx response into retry-or-not, reading the error document when there is one.
fn classify_failure(action: &str, status: u16, body: &str) -> AttemptFailure<InventoryError> {
    let Some(error) = xml::error_document(body) else {
        return match status_class(status) {
            Class::Transient if status == 429 => AttemptFailure::Throttled {
                code: "HTTP 429".to_string(),
            },
            Class::Transient => AttemptFailure::Unavailable {
                reason: format!("HTTP {status}"),
                source: None,
            },
            Class::Permanent => AttemptFailure::Final(InventoryError::malformed(
                action,
                format!("HTTP {status} without an AWS error document"),
            )),
        };
    };
    match classify_code(&error.code) {
        CodeClass::Throttling => AttemptFailure::Throttled { code: error.code },
        _ if status == 429 => AttemptFailure::Throttled { code: error.code },
        CodeClass::ServerFault => AttemptFailure::Unavailable {
            reason: format!("HTTP {status} {}: {}", error.code, error.message),
            source: None,
        },
        CodeClass::Denied => AttemptFailure::Final(InventoryError::Denied {
            action: action.to_string(),
            code: error.code,
            message: error.message,
        }),
        CodeClass::Other if status >= 500 => AttemptFailure::Unavailable {
            reason: format!("HTTP {status} {}: {}", error.code, error.message),
            source: None,
        },
        CodeClass::Other => AttemptFailure::Final(InventoryError::Api {
            action: action.to_string(),
            status,
            code: error.code,
            message: error.message,
        }),
    }
}

/// `Action=…&Version=…&…`, every value percent-encoded except RFC 3986 unreserved characters
/// (what the SDKs send; a `+` for a space would also be accepted, but this is unambiguous).
fn form_body(service: Service, action: &str, params: &[(&str, &str)]) -> String {
    let mut body = format!(
        "Action={}&Version={}",
        percent_encode(action),
        service.api_version()
    );
    for (name, value) in params {
        body.push('&');
        body.push_str(&percent_encode(name));
        body.push('=');
        body.push_str(&percent_encode(value));
    }
    body
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

/// The SigV4 headers of a form POST to `url` (see [`signed_post_headers`]).
fn signed_headers(
    credentials: &Credentials,
    service: Service,
    region: &str,
    url: &reqwest::Url,
    body: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, TransportError> {
    signed_post_headers(
        credentials,
        service.signing_name(),
        region,
        url,
        FORM_CONTENT_TYPE,
        body,
        time,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SystemTime {
        SystemTime::from(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_form_body_carries_action_version_and_encoded_params() {
        assert_eq!(
            form_body(
                Service::Ec2,
                "DescribeSnapshots",
                &[("Owner.1", "self"), ("NextToken", "a+b/c=="), ("X", "é ~")]
            ),
            "Action=DescribeSnapshots&Version=2016-11-15&Owner.1=self&NextToken=a%2Bb%2Fc%3D%3D&X=%C3%A9%20~"
        );
        assert_eq!(
            form_body(Service::Rds, "DescribeDBSnapshots", &[]),
            "Action=DescribeDBSnapshots&Version=2014-10-31"
        );
        assert_eq!(
            form_body(Service::Sts, "GetCallerIdentity", &[]),
            "Action=GetCallerIdentity&Version=2011-06-15"
        );
    }

    #[test]
    fn endpoints_follow_the_partition_unless_overridden() {
        let client = QueryClient::new(
            reqwest::Client::new(),
            SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "test")),
            None,
        );
        let url = |s, r| client.endpoint(s, r).map(|u| u.to_string());
        assert_eq!(
            url(Service::Ec2, "eu-west-1").unwrap(),
            "https://ec2.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            url(Service::Rds, "cn-north-1").unwrap(),
            "https://rds.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            url(Service::Sts, "us-gov-west-1").unwrap(),
            "https://sts.us-gov-west-1.amazonaws.com/"
        );
        assert!(matches!(
            client.endpoint(Service::Ec2, "evil.example.com/x"),
            Err(InventoryError::InvalidEndpoint { .. })
        ));
        assert!(client.endpoint(Service::Ec2, "").is_err());

        let local = QueryClient::new(
            reqwest::Client::new(),
            SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "test")),
            Some("http://127.0.0.1:5000".to_string()),
        );
        assert_eq!(
            local.endpoint(Service::Rds, "eu-west-1").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        let broken = QueryClient::new(
            reqwest::Client::new(),
            SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "test")),
            Some("not a url".to_string()),
        );
        assert!(matches!(
            broken.endpoint(Service::Ec2, "eu-west-1"),
            Err(InventoryError::InvalidEndpoint { .. })
        ));
    }

    /// AWS's published SigV4 test vector `post-x-www-form-urlencoded` (the original suite, which
    /// signs `content-type;host;x-amz-date`): same inputs, same signature.
    #[test]
    fn signing_matches_the_aws_form_post_test_vector() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("service")
            .time(at(2015, 8, 30, 12, 36, 0))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let request = SignableRequest::new(
            "POST",
            "https://example.amazonaws.com/",
            std::iter::once(("content-type", "application/x-www-form-urlencoded")),
            SignableBody::Bytes(b"Param1=value1"),
        )
        .unwrap();
        let (instructions, signature) = sign(request, &params).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        let authorization = headers
            .iter()
            .find(|h| h.name() == "authorization")
            .map(|h| h.value().to_string());
        assert_eq!(
            signature,
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
        assert_eq!(
            authorization.as_deref(),
            Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
        );
    }

    #[test]
    fn signed_headers_carry_the_scope_and_the_session_token() {
        let url = reqwest::Url::parse("https://rds.eu-central-1.amazonaws.com/").unwrap();
        let temporary = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session-token-value".to_string()),
            None,
            "test",
        );
        let headers = signed_headers(
            &temporary,
            Service::Rds,
            "eu-central-1",
            &url,
            "Action=DescribeDBSnapshots&Version=2014-10-31",
            at(2024, 6, 1, 8, 0, 0),
        )
        .unwrap();
        let authorization = header(&headers, "authorization").expect("authorization header");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20240601/eu-central-1/rds/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{authorization}"
        );
        assert_eq!(header(&headers, "x-amz-date"), Some("20240601T080000Z"));
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("session-token-value")
        );

        let long_term = Credentials::new("AKIAEXAMPLE", "secret", None, None, "test");
        let headers = signed_headers(
            &long_term,
            Service::Ec2,
            "us-east-1",
            &reqwest::Url::parse("http://127.0.0.1:5000/").unwrap(),
            "Action=DescribeSnapshots&Version=2016-11-15",
            at(2024, 6, 1, 8, 0, 0),
        )
        .unwrap();
        assert!(header(&headers, "authorization").unwrap().contains(
            "/20240601/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date,"
        ));
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        };
        for (attempt, ceiling_ms) in [
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1600),
            (5, 3200),
            (6, 5000),
            (40, 5000),
        ] {
            for _ in 0..50 {
                let delay = policy.delay(attempt).as_millis();
                assert!(
                    delay >= ceiling_ms / 2 && delay <= ceiling_ms,
                    "attempt {attempt}: {delay} ms not in [{}, {ceiling_ms}]",
                    ceiling_ms / 2
                );
            }
        }
        let zero = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }

    fn outcome(status: u16, body: &str) -> String {
        match classify_failure("DescribeSnapshots", status, body) {
            AttemptFailure::Throttled { code } => format!("throttled {code}"),
            AttemptFailure::Unavailable { reason, .. } => format!("unavailable {reason}"),
            AttemptFailure::Final(InventoryError::Denied { code, .. }) => format!("denied {code}"),
            AttemptFailure::Final(InventoryError::Api { code, .. }) => format!("api {code}"),
            AttemptFailure::Final(InventoryError::Malformed { reason, .. }) => {
                format!("malformed {reason}")
            }
            AttemptFailure::Final(other) => format!("other {other}"),
        }
    }

    fn ec2_error(code: &str) -> String {
        format!("<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>")
    }

    fn rds_error(code: &str) -> String {
        format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>")
    }

    #[test]
    fn failed_responses_are_sorted_into_retry_or_not() {
        assert_eq!(
            outcome(503, &ec2_error("RequestLimitExceeded")),
            "throttled RequestLimitExceeded"
        );
        assert_eq!(
            outcome(400, &rds_error("Throttling")),
            "throttled Throttling"
        );
        assert_eq!(
            outcome(400, &rds_error("ThrottlingException")),
            "throttled ThrottlingException"
        );
        assert_eq!(outcome(429, ""), "throttled HTTP 429");
        assert_eq!(outcome(429, &rds_error("Whatever")), "throttled Whatever");
        assert_eq!(
            outcome(502, "<html>Bad Gateway</html>"),
            "unavailable HTTP 502"
        );
        assert_eq!(
            outcome(500, &ec2_error("InternalError")),
            "unavailable HTTP 500 InternalError: m"
        );
        assert_eq!(
            outcome(503, &rds_error("SomethingNew")),
            "unavailable HTTP 503 SomethingNew: m"
        );
        assert_eq!(
            outcome(403, &ec2_error("UnauthorizedOperation")),
            "denied UnauthorizedOperation"
        );
        assert_eq!(
            outcome(403, &rds_error("AccessDenied")),
            "denied AccessDenied"
        );
        assert_eq!(
            outcome(401, &ec2_error("AuthFailure")),
            "denied AuthFailure"
        );
        assert_eq!(
            outcome(400, &ec2_error("InvalidSnapshot.NotFound")),
            "api InvalidSnapshot.NotFound"
        );
        assert_eq!(
            outcome(404, &rds_error("DBSnapshotNotFound")),
            "api DBSnapshotNotFound"
        );
        assert_eq!(
            outcome(400, "garbage"),
            "malformed HTTP 400 without an AWS error document"
        );
    }
}

//! SigV4 for the few AWS calls snapwatch signs itself instead of compiling an SDK client: the
//! baseline's Query calls (EC2, RDS, STS), the Security Hub sink's JSON import and the S3 reads
//! of the CloudTrail archive. All need the same two things: credentials cached between calls,
//! and the signed headers of one request.

use crate::error::TransportError;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use snapwatch_http::{Token, TokenCache};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are refreshed this long before they expire, so a signed request never carries
/// credentials that expire in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The provider's credentials, asked for only when missing or about to expire: the providers
/// aws-config hands out do not cache by themselves (the SDK clients do), and a baseline run
/// makes thousands of calls. Cheap to clone; clones share the cache (the shared single-flight
/// `TokenCache`), and one caller refreshes while the others wait for its answer.
#[derive(Clone)]
pub struct CachedCredentials {
    provider: SharedCredentialsProvider,
    cached: Arc<TokenCache<(), Credentials>>,
}

impl CachedCredentials {
    /// A cache in front of `provider`.
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        CachedCredentials {
            provider,
            cached: Arc::new(TokenCache::new(REFRESH_MARGIN)),
        }
    }

    /// Current credentials, refreshed through the provider when needed.
    pub async fn get(&self) -> Result<Credentials, CredentialsError> {
        self.cached
            .get(&(), || async {
                let credentials = self.provider.provide_credentials().await?;
                // Long-term keys have no expiry: cached for good. Expired ones live zero seconds.
                let lifetime = credentials.expiry().map_or(Duration::MAX, |expiry| {
                    expiry
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                });
                Ok(Token {
                    value: credentials,
                    lifetime,
                })
            })
            .await
    }
}

/// The SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token` for temporary
/// credentials) for a POST of `body` with `content_type` to `url`. Signed: `content-type`,
/// `host`, `x-amz-date`, and the body's SHA-256 inside the signature.
pub fn signed_post_headers(
    credentials: &Credentials,
    signing_name: &str,
    region: &str,
    url: &reqwest::Url,
    content_type: &str,
    body: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, TransportError> {
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(signing_name)
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        std::iter::once(("content-type", content_type)),
        SignableBody::Bytes(body.as_bytes()),
    )?;
    let (instructions, _signature) = sign(request, &params)?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

/// The SigV4 headers of an S3 request without a signed body (`GET`, `HEAD`, or a `PUT` whose
/// body is sent as `UNSIGNED-PAYLOAD`, as the SDK does over TLS): `authorization`, `x-amz-date`,
/// `x-amz-content-sha256: UNSIGNED-PAYLOAD` and, for temporary credentials,
/// `x-amz-security-token`. S3 signs the path as sent: encoded once, never normalized.
pub fn signed_s3_headers(
    credentials: &Credentials,
    region: &str,
    method: &str,
    url: &reqwest::Url,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, TransportError> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()?
        .into();
    let request = SignableRequest::new(
        method,
        url.as_str(),
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )?;
    let (instructions, _signature) = sign(request, &params)?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

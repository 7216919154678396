//! The one AWS SDK bootstrap, shared by the Lambda (`functions/aws`) and `snapwatch baseline`:
//! aws-config's default chain (region, credentials, `AWS_ENDPOINT_URL*`) over the project's
//! HTTP client.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// HTTPS with rustls on ring: no OpenSSL, no aws-lc build.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK config every client is built from. Region, credentials and endpoint overrides come
/// from the environment; `region`, when given, replaces the environment's region.
pub async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        // The SDK's standard mode (3 attempts, jittered exponential backoff, the SDK's own
        // throttling list), spelled out: it is the one retry layer of SDK calls, and snapwatch
        // wraps no loop of its own around them.
        .retry_config(aws_config::retry::RetryConfig::standard());
    match region {
        Some(region) => loader.region(aws_config::Region::new(region)).load().await,
        None => loader.load().await,
    }
}

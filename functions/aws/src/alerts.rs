//! Alert destinations both functions build at start: the Slack sink from its secret, the
//! Security Hub sink for the function's own account.

use crate::securityhub::{SecurityHubClient, SecurityHubSink};
use crate::settings::{SecurityHubSettings, SlackWebhookSource};
use snapwatch_core::ports::SystemClock;
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};

/// Reads the webhook URL once at start: from Secrets Manager in deployments.
pub async fn slack_sink(
    sdk: &aws_config::SdkConfig,
    source: &SlackWebhookSource,
) -> Result<SlackSink, lambda_runtime::Error> {
    let url = match source {
        SlackWebhookSource::Plaintext(url) => url.expose().clone(),
        SlackWebhookSource::Secret(secret_id) => {
            let secret = aws_sdk_secretsmanager::Client::new(sdk)
                .get_secret_value()
                .secret_id(secret_id)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the Slack webhook secret {secret_id}: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    )
                })?;
            let value = secret.secret_string().ok_or_else(|| {
                format!("the Slack webhook secret {secret_id} has no string value")
            })?;
            webhook_from_secret(value)
        }
    };
    let webhook = WebhookUrl::parse(&url)?;
    Ok(SlackSink::new(webhook, RetryPolicy::default())?)
}

/// The secret holds the URL itself, or JSON with a `url` / `webhook_url` field.
fn webhook_from_secret(value: &str) -> String {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|json| {
            ["url", "webhook_url"]
                .iter()
                .find_map(|k| json.get(k).and_then(|v| v.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| value.trim().to_string())
}

/// The Security Hub sink. Its account id (the default product ARN and every finding's
/// `AwsAccountId` must name it) comes from STS `GetCallerIdentity`, which needs no IAM
/// permission, at the first delivery rather than here, so initialisation makes no extra call.
pub fn securityhub_sink(
    sdk: &aws_config::SdkConfig,
    settings: &SecurityHubSettings,
) -> Result<SecurityHubSink, lambda_runtime::Error> {
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials provider: the Lambda environment provides one")?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let sts =
        snapwatch_aws_inventory::SnapshotLister::new(snapwatch_aws_inventory::QueryClient::new(
            http.clone(),
            credentials.clone(),
            settings.sts_endpoint_url.clone(),
        ));
    let client = SecurityHubClient::new(
        http,
        credentials,
        &settings.region,
        settings.endpoint_url.as_deref(),
    )?;
    Ok(SecurityHubSink::resolving_account(
        client,
        sts,
        std::sync::Arc::new(SystemClock),
    ))
}

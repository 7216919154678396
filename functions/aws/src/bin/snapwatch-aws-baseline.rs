//! Scheduled baseline Lambda entry point: initialisation only (settings, SDK clients and
//! credentials, the Slack secret, tracing); every scheduled invocation runs `BaselineApp::run`.
//! The payload EventBridge Scheduler sends is ignored.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use snapwatch_aws::alerts::{securityhub_sink, slack_sink};
use snapwatch_aws::baseline::{BaselineApp, BaselineOutcome};
use snapwatch_aws::clients;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::settings::BaselineSettings;
use snapwatch_aws::sns::SnsSink;
use snapwatch_aws_inventory::{QueryClient, SnapshotLister};
use snapwatch_core::ports::SystemClock;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    clients::init_tracing();

    let settings = BaselineSettings::from_lookup(|name| std::env::var(name).ok())?;
    let sdk = clients::sdk_config().await;
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials provider: the Lambda environment provides one")?;
    let slack = match &settings.slack_webhook {
        None => None,
        Some(source) => Some(slack_sink(&sdk, source).await?),
    };
    let securityhub = match &settings.securityhub {
        None => None,
        Some(hub) => Some(securityhub_sink(&sdk, hub)?),
    };
    let lister = SnapshotLister::new(QueryClient::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?,
        credentials,
        settings.endpoint_url.clone(),
    ));
    let app = BaselineApp {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &settings.table_name),
        config: settings.detector.clone(),
        lister,
        regions: settings.regions.clone(),
        sns: settings.sns_topic_arn.as_ref().map(|arn| {
            SnsSink::new(aws_sdk_sns::Client::new(&sdk), arn).with_format(settings.sns_format)
        }),
        slack,
        securityhub,
        clock: Arc::new(SystemClock),
    };
    tracing::info!(
        table = %settings.table_name,
        regions = ?settings.regions,
        sns = settings.sns_topic_arn.is_some(),
        slack = settings.slack_webhook.is_some(),
        securityhub = settings.securityhub.is_some(),
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "snapwatch-aws-baseline initialised"
    );
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let span = tracing::info_span!("baseline", request_id = %event.context.request_id);
            app.run()
                .instrument(span)
                .await
                .map_err(Diagnostic::from)
                .map(|outcome: BaselineOutcome| outcome)
        },
    ))
    .await
}

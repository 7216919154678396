//! Lambda entry point: initialisation only (settings, SDK clients, the Slack secret, tracing);
//! every invocation runs `App::handle`.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::value::RawValue;
use snapwatch_aws::alerts::{securityhub_sink, slack_sink};
use snapwatch_aws::clients;
use snapwatch_aws::dead_letter::SqsDeadLetter;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::{App, Outcome};
use snapwatch_aws::responder;
use snapwatch_aws::settings::Settings;
use snapwatch_aws::sns::SnsSink;
use snapwatch_core::ports::SystemClock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    clients::init_tracing();

    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let sdk = clients::sdk_config().await;
    let slack = match &settings.slack_webhook {
        None => None,
        Some(source) => Some(slack_sink(&sdk, source).await?),
    };
    let securityhub = match &settings.securityhub {
        None => None,
        Some(hub) => Some(securityhub_sink(&sdk, hub)?),
    };
    // Every mode off: no responder, no client, no STS call at start.
    let responder = if settings.detector.response.all_off() {
        None
    } else {
        Some(responder::aws_responder(&sdk).await?)
    };
    let app = App {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &settings.table_name),
        config: settings.detector.clone(),
        dead_letter: SqsDeadLetter::new(
            aws_sdk_sqs::Client::new(&sdk),
            &settings.dead_letter_queue_url,
        ),
        sns: settings.sns_topic_arn.as_ref().map(|arn| {
            SnsSink::new(aws_sdk_sns::Client::new(&sdk), arn).with_format(settings.sns_format)
        }),
        slack,
        securityhub,
        responder,
        clock: Arc::new(SystemClock),
    };
    tracing::info!(
        table = %settings.table_name,
        sns = settings.sns_topic_arn.is_some(),
        slack = settings.slack_webhook.is_some(),
        securityhub = settings.securityhub.is_some(),
        response = ?settings.detector.response.modes,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "snapwatch-aws initialised"
    );
    let app = &app;
    // The init-time figure: process start to the first event handled.
    let first_handled = &AtomicBool::new(false);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
            let result = app
                .handle(event.payload.get())
                .instrument(span)
                .await
                .map_err(Diagnostic::from);
            if !first_handled.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    since_start_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "first event handled"
                );
            }
            result.map(|outcome: Outcome| outcome)
        },
    ))
    .await
}

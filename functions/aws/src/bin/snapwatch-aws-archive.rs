//! Archive Lambda entry point: initialisation only (the event function's settings and App, the
//! S3 reader, the object ledger, tracing); every SQS batch of S3 notifications runs
//! `ArchiveApp::handle`, and its partial batch response names the messages to redeliver.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use snapwatch_aws::archive::ledger::DynamoLedger;
use snapwatch_aws::archive::ArchiveApp;
use snapwatch_aws::clients;
use snapwatch_aws::settings::ArchiveSettings;
use snapwatch_aws_inventory::S3Client;
use std::time::Instant;
use tracing::Instrument;

/// No new log file is started this close to the invocation's deadline (a large one takes
/// seconds to stream), nor in the last fifth of a shorter invocation.
const STOP_BEFORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    clients::init_tracing();

    let settings = ArchiveSettings::from_lookup(|name| std::env::var(name).ok())?;
    let sdk = clients::sdk_config().await;
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials provider: the Lambda environment provides one")?;
    let app = clients::deployed_app(&settings.event, &sdk).await?;
    let reader = S3Client::new(
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()?,
        credentials,
        &settings.region,
        settings.s3_endpoint_url.as_deref(),
    )?;
    let archive = ArchiveApp {
        ledger: DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &settings.event.table_name,
        ),
        app,
        reader,
    };
    tracing::info!(
        table = %settings.event.table_name,
        region = %settings.region,
        sns = settings.event.sns_topic_arn.is_some(),
        slack = settings.event.slack_webhook.is_some(),
        securityhub = settings.event.securityhub.is_some(),
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "snapwatch-aws-archive initialised"
    );
    let archive = &archive;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = tracing::info_span!("batch", request_id = %event.context.request_id);
        // Leave time to answer: a message not started by then is redelivered on its own.
        let deadline =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
        let remaining = deadline
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        // A deadline already past is no real one (emulators send 0): then no limit.
        let stop_at =
            (!remaining.is_zero()).then(|| deadline - STOP_BEFORE_DEADLINE.min(remaining / 5));
        tracing::debug!(
            deadline_ms = event.context.deadline,
            remaining_ms = remaining.as_millis() as u64,
            "batch received"
        );
        let batch = archive
            .handle_until(event.payload, stop_at)
            .instrument(span)
            .await;
        tracing::info!(
            messages = batch.messages.len(),
            failed = batch.response.batch_item_failures.len(),
            outcomes = %serde_json::to_string(&batch.messages).unwrap_or_default(),
            "batch handled"
        );
        Ok::<SqsBatchResponse, lambda_runtime::Error>(batch.response)
    }))
    .await
}

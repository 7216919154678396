//! SDK plumbing shared by `main` and the tests: the rustls (ring) HTTP client, the shared SDK
//! config, and a request counter used to measure DynamoDB requests per event.

use crate::alerts::{securityhub_sink, slack_sink};
use crate::dead_letter::SqsDeadLetter;
use crate::dynamo::DynamoStore;
use crate::handler::App;
use crate::settings::Settings;
use crate::sns::SnsSink;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use snapwatch_core::ports::SystemClock;
use snapwatch_slack::SlackSink;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The event function's [`App`] as deployed: DynamoDB state, the SQS dead-letter queue, SNS,
/// Slack and Security Hub. The archive function builds the same one.
pub type DeployedApp = App<DynamoStore, SqsDeadLetter, SnsSink, SlackSink>;

/// Builds the deployed [`App`] from the settings (reads the Slack secret once).
pub async fn deployed_app(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
) -> Result<DeployedApp, lambda_runtime::Error> {
    let slack = match &settings.slack_webhook {
        None => None,
        Some(source) => Some(slack_sink(sdk, source).await?),
    };
    let securityhub = match &settings.securityhub {
        None => None,
        Some(hub) => Some(securityhub_sink(sdk, hub)?),
    };
    // Every mode off: no responder, no client, no STS call at start.
    let responder = if settings.detector.response.all_off() {
        None
    } else {
        Some(crate::responder::aws_responder(sdk).await?)
    };
    Ok(App {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &settings.table_name),
        config: settings.detector.clone(),
        dead_letter: SqsDeadLetter::new(
            aws_sdk_sqs::Client::new(sdk),
            &settings.dead_letter_queue_url,
        ),
        sns: settings.sns_topic_arn.as_ref().map(|arn| {
            SnsSink::new(aws_sdk_sns::Client::new(sdk), arn).with_format(settings.sns_format)
        }),
        slack,
        securityhub,
        responder,
        clock: Arc::new(SystemClock),
    })
}

/// JSON logs, one object per line, filtered by `RUST_LOG` (default `info`), with the current
/// span's fields; no timestamps because CloudWatch stamps every line already.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(true)
        .without_time()
        .init();
}

/// HTTPS with rustls on ring (the one bootstrap in `snapwatch_aws_inventory::sdk`).
pub use snapwatch_aws_inventory::sdk::http_client;

/// The SDK config every client is built from: region, credentials and `AWS_ENDPOINT_URL*`
/// overrides come from the environment (Lambda sets them; tests point them at moto). The same
/// bootstrap as `snapwatch baseline`.
pub async fn sdk_config() -> aws_config::SdkConfig {
    snapwatch_aws_inventory::sdk::sdk_config(None).await
}

/// Counts requests sent on the wire (every attempt), per operation name.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests so far, per operation (`UpdateItem`, `BatchGetItem`…).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.by_operation().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", |m| m.name())
            .to_string();
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

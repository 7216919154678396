//! SNS [`AlertSink`]: the finding JSON (or, with `SNAPWATCH_SNS_FORMAT=ocsf`, an OCSF Detection
//! Finding) as the message, the core's subject, and the message attributes `rule`, `severity`,
//! `cloud` that subscription filter policies match on.

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use snapwatch_aws_inventory::classify::sdk_error_class;
use snapwatch_core::ports::{AlertSink, SinkError};
use snapwatch_core::{render, Finding};

use crate::settings::SnsFormat;

const SINK: &str = "sns";

#[derive(Debug, Clone)]
pub struct SnsSink {
    client: Client,
    topic_arn: String,
    format: SnsFormat,
}

impl SnsSink {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsSink {
            client,
            topic_arn: topic_arn.into(),
            format: SnsFormat::Finding,
        }
    }

    /// The message body subscribers get; the subject and attributes stay the same.
    pub fn with_format(mut self, format: SnsFormat) -> Self {
        self.format = format;
        self
    }

    fn message(&self, finding: &Finding) -> String {
        match self.format {
            SnsFormat::Finding => render::sns_message(finding),
            SnsFormat::Ocsf => render::ocsf::detection_finding_json(finding),
        }
    }
}

impl AlertSink for SnsSink {
    fn name(&self) -> &'static str {
        SINK
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(render::sns_subject(finding))
            .message(self.message(finding));
        for (name, value) in render::sns_attributes(finding) {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| SinkError::Permanent {
                    sink: SINK,
                    message: format!("message attribute {name}: {e}"),
                })?;
            publish = publish.message_attributes(name, attribute);
        }
        publish.send().await.map(|_| ()).map_err(classify)
    }
}

fn classify<E>(err: SdkError<E, HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!(
        "SNS Publish failed: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    sdk_error_class(&err).sink_error(SINK, message, None)
}

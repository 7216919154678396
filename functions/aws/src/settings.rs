//! The function's typed configuration, parsed once at start from environment variables.

use snapwatch_core::config::{ConfigError, Environment, Secret};
use snapwatch_core::Config;

/// Environment variable names (the Terraform module sets them).
pub mod env {
    /// The DynamoDB state table; required.
    pub const TABLE_NAME: &str = "SNAPWATCH_TABLE_NAME";
    /// The SNS topic findings are published to.
    pub const SNS_TOPIC_ARN: &str = "SNAPWATCH_SNS_TOPIC_ARN";
    /// The Secrets Manager secret holding the Slack webhook URL.
    pub const SLACK_WEBHOOK_SECRET_ARN: &str = "SNAPWATCH_SLACK_WEBHOOK_SECRET_ARN";
    /// The webhook URL itself; local tests only, with `SNAPWATCH_ALLOW_PLAINTEXT_WEBHOOK=true`.
    pub const SLACK_WEBHOOK_URL: &str = "SNAPWATCH_SLACK_WEBHOOK_URL";
    /// `true` accepts `SNAPWATCH_SLACK_WEBHOOK_URL` (default `false`).
    pub const ALLOW_PLAINTEXT_WEBHOOK: &str = "SNAPWATCH_ALLOW_PLAINTEXT_WEBHOOK";
    /// The SQS queue events that cannot be parsed are kept in; required.
    pub const DEAD_LETTER_QUEUE_URL: &str = "SNAPWATCH_DEAD_LETTER_QUEUE_URL";
    /// SNS message body: `finding` (the finding JSON, default) or `ocsf`.
    pub const SNS_FORMAT: &str = "SNAPWATCH_SNS_FORMAT";
    /// Baseline function only: comma-separated regions to list (default: the function's own).
    pub const BASELINE_REGIONS: &str = "SNAPWATCH_BASELINE_REGIONS";
    /// Set by Lambda: the function's own region.
    pub const AWS_REGION: &str = "AWS_REGION";
    /// The SDK's standard endpoint override; the baseline's own EC2/RDS/STS calls honour it too.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// `on` imports every finding into Security Hub as well (default `off`).
    pub const SECURITYHUB: &str = "SNAPWATCH_SECURITYHUB";
    /// The SDK's per-service endpoint override, honoured by the Security Hub sink.
    pub const AWS_ENDPOINT_URL_SECURITYHUB: &str = "AWS_ENDPOINT_URL_SECURITYHUB";
    /// The SDK's per-service endpoint override, honoured by the archive function's S3 reads.
    pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
}

/// Where the Slack webhook URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackWebhookSource {
    /// A Secrets Manager secret (ARN or name) whose value is the URL, or JSON `{"url": …}`.
    Secret(String),
    /// The URL itself (a credential, never printed); local tests only (needs
    /// `SNAPWATCH_ALLOW_PLAINTEXT_WEBHOOK=true`).
    Plaintext(Secret),
}

/// What an SNS message body carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnsFormat {
    /// The finding JSON (README "Finding JSON").
    #[default]
    Finding,
    /// An OCSF Detection Finding, for subscribers that load Security Lake or a SIEM.
    Ocsf,
}

impl SnsFormat {
    fn from_setting<L: Fn(&str) -> Option<String>>(
        vars: &Environment<L>,
    ) -> Result<SnsFormat, ConfigError> {
        Ok(vars
            .choice(
                env::SNS_FORMAT,
                &[("finding", SnsFormat::Finding), ("ocsf", SnsFormat::Ocsf)],
            )?
            .unwrap_or_default())
    }
}

/// The event function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The detector's own settings (the core's variables).
    pub detector: Config,
    /// The DynamoDB state table.
    pub table_name: String,
    /// Where findings are published, if anywhere.
    pub sns_topic_arn: Option<String>,
    /// What an SNS message carries.
    pub sns_format: SnsFormat,
    /// Where the Slack webhook comes from, if Slack is used.
    pub slack_webhook: Option<SlackWebhookSource>,
    /// Where events that cannot be parsed are kept.
    pub dead_letter_queue_url: String,
    /// Set when findings are also imported into Security Hub.
    pub securityhub: Option<SecurityHubSettings>,
}

impl Settings {
    /// Reads every setting through `lookup` (normally `std::env::var(..).ok()`); the error names
    /// the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let vars = Environment::new(&lookup);
        let detector = Config::from_lookup(&lookup)?;
        let table_name = vars.required(env::TABLE_NAME)?;
        let dead_letter_queue_url = vars.required(env::DEAD_LETTER_QUEUE_URL)?;
        let (sns_topic_arn, slack_webhook) = alert_destinations(&vars)?;
        Ok(Settings {
            detector,
            table_name,
            sns_topic_arn,
            sns_format: SnsFormat::from_setting(&vars)?,
            slack_webhook,
            dead_letter_queue_url,
            securityhub: security_hub(&vars)?,
        })
    }
}

/// The SNS topic and the Slack webhook source; at least one is required.
fn alert_destinations<L: Fn(&str) -> Option<String>>(
    vars: &Environment<L>,
) -> Result<(Option<String>, Option<SlackWebhookSource>), ConfigError> {
    let sns_topic_arn = vars.optional(env::SNS_TOPIC_ARN);
    let allow_plaintext = vars
        .choice(
            env::ALLOW_PLAINTEXT_WEBHOOK,
            &[("true", true), ("false", false)],
        )?
        .unwrap_or(false);
    let slack_webhook = match (
        vars.optional(env::SLACK_WEBHOOK_SECRET_ARN),
        vars.secret(env::SLACK_WEBHOOK_URL),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::hidden(
                env::SLACK_WEBHOOK_URL,
                format!("set either {} or this, not both", env::SLACK_WEBHOOK_SECRET_ARN),
            ))
        }
        // Only Secrets Manager is read: one more SDK client (SSM) would cost binary size and
        // cold-start time for a second way to do the same thing.
        (Some(arn), None) if arn.starts_with("arn:") && arn.contains(":ssm:") => {
            return Err(ConfigError::new(
                env::SLACK_WEBHOOK_SECRET_ARN,
                &arn,
                "SSM parameters are not supported; store the webhook URL in a Secrets Manager secret",
            ))
        }
        (Some(arn), None) => Some(SlackWebhookSource::Secret(arn)),
        (None, Some(url)) if allow_plaintext => Some(SlackWebhookSource::Plaintext(url)),
        (None, Some(_)) => {
            return Err(ConfigError::hidden(
                env::SLACK_WEBHOOK_URL,
                format!(
                    "a plaintext webhook URL is for local tests only (set {}=true); deployments reference a secret with {}",
                    env::ALLOW_PLAINTEXT_WEBHOOK,
                    env::SLACK_WEBHOOK_SECRET_ARN
                ),
            ))
        }
        (None, None) => None,
    };
    if sns_topic_arn.is_none() && slack_webhook.is_none() {
        return Err(ConfigError::missing(
            env::SNS_TOPIC_ARN,
            format!(
                "no alert destination: set {} and/or {}",
                env::SNS_TOPIC_ARN,
                env::SLACK_WEBHOOK_SECRET_ARN
            ),
        ));
    }
    Ok((sns_topic_arn, slack_webhook))
}

/// Where the Security Hub sink imports: the function's own region (and, for local servers, an
/// endpoint override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHubSettings {
    /// The function's own region (`AWS_REGION`).
    pub region: String,
    /// `AWS_ENDPOINT_URL_SECURITYHUB`, else `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL`: where STS tells the sink its account id at start.
    pub sts_endpoint_url: Option<String>,
}

/// `SNAPWATCH_SECURITYHUB=on|off` (unset is off).
fn security_hub<L: Fn(&str) -> Option<String>>(
    vars: &Environment<L>,
) -> Result<Option<SecurityHubSettings>, ConfigError> {
    let on = vars
        .choice(env::SECURITYHUB, &[("on", true), ("off", false)])?
        .unwrap_or(false);
    if !on {
        return Ok(None);
    }
    Ok(Some(SecurityHubSettings {
        region: vars.optional(env::AWS_REGION).ok_or_else(|| {
            ConfigError::missing(
                env::AWS_REGION,
                format!("required when {}=on", env::SECURITYHUB),
            )
        })?,
        endpoint_url: vars
            .optional(env::AWS_ENDPOINT_URL_SECURITYHUB)
            .or_else(|| vars.optional(env::AWS_ENDPOINT_URL)),
        sts_endpoint_url: vars.optional(env::AWS_ENDPOINT_URL),
    }))
}

/// The scheduled baseline function's configuration: the event function's store and alert
/// settings (no dead-letter queue: it reads no events) plus the regions to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineSettings {
    /// The detector's own settings (the core's variables).
    pub detector: Config,
    /// The DynamoDB state table.
    pub table_name: String,
    /// Where findings are published, if anywhere.
    pub sns_topic_arn: Option<String>,
    /// What an SNS message carries.
    pub sns_format: SnsFormat,
    /// Where the Slack webhook comes from, if Slack is used.
    pub slack_webhook: Option<SlackWebhookSource>,
    /// The regions whose snapshots are listed.
    pub regions: Vec<String>,
    /// `AWS_ENDPOINT_URL`, for local servers.
    pub endpoint_url: Option<String>,
    /// Set when findings are also imported into Security Hub.
    pub securityhub: Option<SecurityHubSettings>,
}

impl BaselineSettings {
    /// Reads every setting through `lookup` (normally `std::env::var(..).ok()`); the error names
    /// the variable at fault.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<BaselineSettings, ConfigError> {
        let vars = Environment::new(&lookup);
        let detector = Config::from_lookup(&lookup)?;
        let table_name = vars.required(env::TABLE_NAME)?;
        let (sns_topic_arn, slack_webhook) = alert_destinations(&vars)?;
        let (variable, list) = match vars.optional(env::BASELINE_REGIONS) {
            Some(list) => (env::BASELINE_REGIONS, list),
            None => (
                env::AWS_REGION,
                vars.optional(env::AWS_REGION).ok_or_else(|| {
                    ConfigError::missing(
                        env::BASELINE_REGIONS,
                        format!("required when {} is not set", env::AWS_REGION),
                    )
                })?,
            ),
        };
        let mut regions: Vec<String> = Vec::new();
        for region in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let valid = region.len() <= 32
                && region.contains('-')
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(ConfigError::new(
                    variable,
                    &list,
                    format!("{region:?} is not an AWS region name (like eu-west-1)"),
                ));
            }
            if !regions.iter().any(|r| r == region) {
                regions.push(region.to_string());
            }
        }
        if regions.is_empty() {
            return Err(ConfigError::new(variable, &list, "no region listed"));
        }
        Ok(BaselineSettings {
            detector,
            table_name,
            sns_topic_arn,
            sns_format: SnsFormat::from_setting(&vars)?,
            slack_webhook,
            regions,
            endpoint_url: vars.optional(env::AWS_ENDPOINT_URL),
            securityhub: security_hub(&vars)?,
        })
    }
}

/// The archive function's settings: the event function's (the same table, sinks and dead-letter
/// queue) plus where its S3 reads go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Everything the event function reads.
    pub event: Settings,
    /// The function's own region (`AWS_REGION`); log files are read from the trail bucket in it.
    pub region: String,
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, for local servers.
    pub s3_endpoint_url: Option<String>,
}

impl ArchiveSettings {
    /// Reads every setting through `lookup`; the error names the variable at fault.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ArchiveSettings, ConfigError> {
        let event = Settings::from_lookup(&lookup)?;
        let vars = Environment::new(&lookup);
        Ok(ArchiveSettings {
            event,
            region: vars.required(env::AWS_REGION)?,
            s3_endpoint_url: vars
                .optional(env::AWS_ENDPOINT_URL_S3)
                .or_else(|| vars.optional(env::AWS_ENDPOINT_URL)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        (env::TABLE_NAME, "snapwatch"),
        (
            env::DEAD_LETTER_QUEUE_URL,
            "http://127.0.0.1:1/123456789012/dlq",
        ),
    ];

    #[test]
    fn reads_a_complete_configuration() {
        let mut vars = BASE.to_vec();
        vars.push((
            env::SNS_TOPIC_ARN,
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ));
        vars.push((
            env::SLACK_WEBHOOK_SECRET_ARN,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack",
        ));
        vars.push(("SNAPWATCH_WINDOW_DAYS", "7"));
        let s = settings(&vars).expect("valid settings");
        assert_eq!(s.table_name, "snapwatch");
        assert_eq!(
            s.sns_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:alerts")
        );
        assert_eq!(
            s.slack_webhook,
            Some(SlackWebhookSource::Secret(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack".into()
            ))
        );
        assert_eq!(s.detector.chain.window_days, 7);
        assert_eq!(s.sns_format, SnsFormat::Finding);
    }

    #[test]
    fn sns_format_is_finding_or_ocsf_and_a_typo_names_the_variable() {
        let mut vars = BASE.to_vec();
        vars.push((env::SNS_TOPIC_ARN, "arn"));
        vars.push((env::SNS_FORMAT, "ocsf"));
        assert_eq!(settings(&vars).unwrap().sns_format, SnsFormat::Ocsf);
        vars.pop();
        vars.push((env::SNS_FORMAT, " finding "));
        assert_eq!(settings(&vars).unwrap().sns_format, SnsFormat::Finding);
        vars.pop();
        vars.push((env::SNS_FORMAT, "OCSF-1.5"));
        let err = settings(&vars).unwrap_err();
        assert_eq!(err.name, env::SNS_FORMAT);
        assert!(err.reason.contains("ocsf"), "{err}");
        let baseline_vars = [
            (env::TABLE_NAME, "t"),
            (env::SNS_TOPIC_ARN, "arn"),
            (env::AWS_REGION, "eu-west-1"),
            (env::SNS_FORMAT, "ocsf"),
        ];
        assert_eq!(
            baseline(&baseline_vars).unwrap().sns_format,
            SnsFormat::Ocsf
        );
    }

    #[test]
    fn each_missing_or_bad_variable_is_named() {
        let mut no_sink = BASE.to_vec();
        assert_eq!(settings(&no_sink).unwrap_err().name, env::SNS_TOPIC_ARN);
        no_sink.push((
            env::SLACK_WEBHOOK_URL,
            "https://hooks.slack.com/services/T/B/X",
        ));
        let err = settings(&no_sink).unwrap_err();
        assert_eq!(err.name, env::SLACK_WEBHOOK_URL);
        assert!(
            !err.to_string().contains("hooks.slack.com"),
            "the URL must not leak: {err}"
        );
        no_sink.push((env::ALLOW_PLAINTEXT_WEBHOOK, "true"));
        assert!(matches!(
            settings(&no_sink).unwrap().slack_webhook,
            Some(SlackWebhookSource::Plaintext(_))
        ));
        let missing_table = [
            (env::DEAD_LETTER_QUEUE_URL, "x"),
            (env::SNS_TOPIC_ARN, "arn"),
        ];
        assert_eq!(settings(&missing_table).unwrap_err().name, env::TABLE_NAME);
        let missing_dlq = [(env::TABLE_NAME, "t"), (env::SNS_TOPIC_ARN, "arn")];
        assert_eq!(
            settings(&missing_dlq).unwrap_err().name,
            env::DEAD_LETTER_QUEUE_URL
        );
        let mut ssm = BASE.to_vec();
        ssm.push((
            env::SLACK_WEBHOOK_SECRET_ARN,
            "arn:aws:ssm:us-east-1:123456789012:parameter/slack",
        ));
        let err = settings(&ssm).unwrap_err();
        assert_eq!(err.name, env::SLACK_WEBHOOK_SECRET_ARN);
        assert!(err.reason.contains("Secrets Manager"), "{err}");
        let mut bad_window = BASE.to_vec();
        bad_window.push((env::SNS_TOPIC_ARN, "arn"));
        bad_window.push(("SNAPWATCH_WINDOW_DAYS", "soon"));
        assert_eq!(
            settings(&bad_window).unwrap_err().name,
            "SNAPWATCH_WINDOW_DAYS"
        );
    }

    #[test]
    fn security_hub_is_off_unless_on_and_a_bad_value_is_named() {
        let mut vars = BASE.to_vec();
        vars.push((env::SNS_TOPIC_ARN, "arn"));
        assert_eq!(settings(&vars).unwrap().securityhub, None);
        vars.push((env::SECURITYHUB, "yes"));
        let err = settings(&vars).unwrap_err();
        assert_eq!(err.name, env::SECURITYHUB);
        assert!(err.reason.contains("on or off"), "{err}");
        vars.pop();
        vars.push((env::SECURITYHUB, "on"));
        assert_eq!(settings(&vars).unwrap_err().name, env::AWS_REGION);
        vars.push((env::AWS_REGION, "eu-west-1"));
        vars.push((env::AWS_ENDPOINT_URL, "http://127.0.0.1:5000"));
        assert_eq!(
            settings(&vars).unwrap().securityhub,
            Some(SecurityHubSettings {
                region: "eu-west-1".into(),
                endpoint_url: Some("http://127.0.0.1:5000".into()),
                sts_endpoint_url: Some("http://127.0.0.1:5000".into()),
            })
        );
        vars.push((env::AWS_ENDPOINT_URL_SECURITYHUB, "http://127.0.0.1:6000"));
        assert_eq!(
            settings(&vars)
                .unwrap()
                .securityhub
                .unwrap()
                .endpoint_url
                .as_deref(),
            Some("http://127.0.0.1:6000")
        );
        let mut off = vars.clone();
        off.retain(|(k, _)| *k != env::SECURITYHUB);
        off.push((env::SECURITYHUB, "off"));
        assert_eq!(settings(&off).unwrap().securityhub, None);
        let baseline_on = [
            (env::TABLE_NAME, "t"),
            (env::SNS_TOPIC_ARN, "arn"),
            (env::AWS_REGION, "eu-west-1"),
            (env::SECURITYHUB, "on"),
        ];
        assert!(baseline(&baseline_on).unwrap().securityhub.is_some());
    }

    fn baseline(pairs: &[(&str, &str)]) -> Result<BaselineSettings, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BaselineSettings::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn baseline_settings_list_regions_and_need_no_dead_letter_queue() {
        let base = [
            (env::TABLE_NAME, "snapwatch"),
            (env::SNS_TOPIC_ARN, "arn:aws:sns:eu-west-1:123456789012:f"),
            (env::AWS_REGION, "eu-west-1"),
        ];
        let s = baseline(&base).expect("valid");
        assert_eq!(s.regions, ["eu-west-1"]);
        let mut listed = base.to_vec();
        listed.push((env::BASELINE_REGIONS, " us-east-1, eu-west-1,us-east-1 "));
        assert_eq!(
            baseline(&listed).unwrap().regions,
            ["us-east-1", "eu-west-1"]
        );
        let mut bad = base.to_vec();
        bad.push((env::BASELINE_REGIONS, "us-east-1,EU West"));
        let err = baseline(&bad).unwrap_err();
        assert_eq!(err.name, env::BASELINE_REGIONS);
        assert!(err.reason.contains("EU West"), "{err}");
        let no_region = [(env::TABLE_NAME, "t"), (env::SNS_TOPIC_ARN, "arn")];
        assert_eq!(
            baseline(&no_region).unwrap_err().name,
            env::BASELINE_REGIONS
        );
        let no_sink = [(env::TABLE_NAME, "t"), (env::AWS_REGION, "eu-west-1")];
        assert_eq!(baseline(&no_sink).unwrap_err().name, env::SNS_TOPIC_ARN);
    }

    #[test]
    fn archive_settings_are_the_event_settings_plus_region_and_s3_endpoint() {
        let archive = |pairs: &[(&str, &str)]| {
            let vars: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ArchiveSettings::from_lookup(|k| vars.get(k).cloned())
        };
        let mut vars = BASE.to_vec();
        vars.push((env::SNS_TOPIC_ARN, "arn"));
        assert_eq!(archive(&vars).unwrap_err().name, env::AWS_REGION);
        vars.push((env::AWS_REGION, "eu-west-1"));
        vars.push((env::AWS_ENDPOINT_URL, "http://127.0.0.1:5000"));
        let s = archive(&vars).unwrap();
        assert_eq!(s.event, settings(&vars).unwrap());
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.s3_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        vars.push((env::AWS_ENDPOINT_URL_S3, "http://127.0.0.1:6000"));
        assert_eq!(
            archive(&vars).unwrap().s3_endpoint_url.as_deref(),
            Some("http://127.0.0.1:6000")
        );
        let no_dlq = [
            (env::TABLE_NAME, "t"),
            (env::SNS_TOPIC_ARN, "arn"),
            (env::AWS_REGION, "r"),
        ];
        assert_eq!(
            archive(&no_dlq).unwrap_err().name,
            env::DEAD_LETTER_QUEUE_URL
        );
    }

    #[test]
    fn settings_print_no_plaintext_webhook() {
        let webhook = "https://hooks.slack.com/services/T0/B0/WEBHOOK-SECRET-c41a";
        let vars = [
            (env::TABLE_NAME, "t"),
            (env::DEAD_LETTER_QUEUE_URL, "q"),
            (env::AWS_REGION, "eu-west-1"),
            (env::SLACK_WEBHOOK_URL, webhook),
            (env::ALLOW_PLAINTEXT_WEBHOOK, "true"),
        ];
        let event = settings(&vars).unwrap();
        let scheduled = baseline(&vars).unwrap();
        for shown in [
            format!("{event:?}"),
            format!("{event:#?}"),
            format!("{scheduled:?}"),
            format!("{scheduled:#?}"),
        ] {
            assert!(shown.contains("Plaintext"), "{shown}");
            assert!(!shown.contains("WEBHOOK-SECRET"), "{shown}");
        }
    }
}

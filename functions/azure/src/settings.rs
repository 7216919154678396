//! Everything the function reads from its app settings, parsed once at start into types.
//! A missing or bad value fails the start with the variable's name.
//!
//! Two settings are deliberately not fatal:
//! - the managed identity (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`) is needed only for what uses
//!   it: token auth to the table (no `SNAPWATCH_TABLE_KEY`) and ARM lookups. Without it, locally,
//!   records that need a lookup are kept in rejects;
//! - Slack: unset means no Slack (findings are logged). A value that cannot be used (most often
//!   an unresolved Key Vault reference on a first deploy) disables Slack with a loud error
//!   instead of stopping the handler, so chain state keeps being recorded and every finding is
//!   kept in the rejects blob for replay. Stopping would lose more: the Event Hubs trigger
//!   checkpoints past batches the handler never saw.

use crate::handler::RetryBudget;
use snapwatch_core::config::{ConfigError, Environment, Secret};
use snapwatch_core::Config;
use snapwatch_slack::WebhookUrl;
use std::time::Duration;

/// App setting names (Terraform sets them; see infra/azure).
pub mod env {
    /// Port the Functions host expects the custom handler on (the host sets it).
    pub const PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    /// `https://<account>.table.core.windows.net`, or Azurite's `http://127.0.0.1:P/devstoreaccount1`.
    pub const TABLE_ENDPOINT: &str = "SNAPWATCH_TABLE_ENDPOINT";
    /// The state table; `snapwatch` when unset.
    pub const TABLE_NAME: &str = "SNAPWATCH_TABLE_NAME";
    /// Only where the endpoint does not say it (a custom domain).
    pub const TABLE_ACCOUNT: &str = "SNAPWATCH_TABLE_ACCOUNT";
    /// Account key for SharedKey auth (local use); absent in Azure, where the identity is used.
    pub const TABLE_KEY: &str = "SNAPWATCH_TABLE_KEY";
    /// Resource Manager; `https://management.azure.com` when unset.
    pub const ARM_ENDPOINT: &str = "SNAPWATCH_ARM_ENDPOINT";
    /// A Key Vault reference in Azure: the platform resolves it before the process starts.
    /// Unset: no Slack.
    pub const SLACK_WEBHOOK_URL: &str = "SNAPWATCH_SLACK_WEBHOOK_URL";
    /// Seconds one invocation may take before it stops and keeps what is left in rejects;
    /// below host.json's `functionTimeout`.
    pub const INVOCATION_DEADLINE_SECS: &str = "SNAPWATCH_INVOCATION_DEADLINE_SECS";
    /// Attempts per record and per delivery round, 1 to 10.
    pub const RETRY_ATTEMPTS: &str = "SNAPWATCH_RETRY_ATTEMPTS";
    /// Pause after the first transient failure, doubled after each further one.
    pub const RETRY_BACKOFF_MS: &str = "SNAPWATCH_RETRY_BACKOFF_MS";
    /// Expired rows one `Purge` run deletes at most (its schedule is the function.json's
    /// `%SNAPWATCH_PURGE_SCHEDULE%`, read by the host, not by the handler).
    pub const PURGE_MAX_ROWS: &str = "SNAPWATCH_PURGE_MAX_ROWS";
    /// Subscription ids the `Baseline` timer lists, comma-separated (its schedule is the
    /// function.json's `%SNAPWATCH_BASELINE_SCHEDULE%`). Unset: the timer run fails saying so.
    pub const BASELINE_SUBSCRIPTIONS: &str = "SNAPWATCH_BASELINE_SUBSCRIPTIONS";
    /// Set by the Functions host when the app has a managed identity.
    pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
    /// Set by the Functions host with `IDENTITY_ENDPOINT`; a credential.
    pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
}

/// Seconds an invocation may run by default: host.json's `functionTimeout` is 5 minutes, and
/// the minute left is for answering and for the host to write the rejects blob (up to the
/// size of a batch) before the host would kill the invocation.
pub const DEFAULT_INVOCATION_DEADLINE_SECS: u64 = 240;
/// A deadline longer than the longest `functionTimeout` a Consumption plan allows (10
/// minutes) could never be reached before the host kills the invocation.
const MAX_INVOCATION_DEADLINE_SECS: u64 = 600;

/// What the platform leaves in a setting when it could not resolve a Key Vault reference.
const KEY_VAULT_REFERENCE_PREFIX: &str = "@microsoft.keyvault(";

/// What to do about an unresolved Key Vault reference.
const KEY_VAULT_REFERENCE_HELP: &str = "is an unresolved Key Vault reference: the platform passes \
the reference text itself when it cannot read the secret with the app's identity (typically on a \
first deploy, before the identity's role assignment has propagated). Check that the identity used \
for Key Vault references has the Key Vault Secrets User role on the secret and that the secret has \
a current version, then restart the function app (`az functionapp restart`): references are \
resolved again at restart, otherwise only about every 24 hours";

/// Whether `value` is a Key Vault reference the platform did not resolve.
pub fn is_unresolved_key_vault_reference(value: &str) -> bool {
    value
        .trim_start()
        .get(..KEY_VAULT_REFERENCE_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(KEY_VAULT_REFERENCE_PREFIX))
}

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_TABLE: &str = "snapwatch";
const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// Rows per purge run: at the delete rates measured on Azurite (README) a few seconds of work,
/// far inside the 5-minute function timeout, and well above what one hour of chain state adds.
pub const DEFAULT_PURGE_MAX_ROWS: usize = 20_000;
const MAX_PURGE_MAX_ROWS: u64 = 1_000_000;

/// Where alerts go, as far as the settings say.
#[derive(Debug, Clone)]
pub enum SlackSetting {
    /// `SNAPWATCH_SLACK_WEBHOOK_URL` unset or empty: no Slack; findings are logged.
    Unset,
    /// A usable webhook (the Slack crate's type never prints the URL).
    Webhook(WebhookUrl),
    /// Set, but unusable; the reason names the variable and says what to do.
    Unusable(String),
}

/// The managed identity endpoint the host provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// `IDENTITY_ENDPOINT`.
    pub endpoint: reqwest::Url,
    /// `IDENTITY_HEADER`: proves to the endpoint that the caller runs in the app.
    pub header: Secret,
}

/// Everything the handler reads from its app settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the Functions host expects the handler.
    pub port: u16,
    /// The Table service endpoint.
    pub table_endpoint: reqwest::Url,
    /// The storage account, from the endpoint or `SNAPWATCH_TABLE_ACCOUNT`.
    pub table_account: String,
    /// The state table.
    pub table_name: String,
    /// `Some` → SharedKey; `None` → managed identity.
    pub table_key: Option<Secret>,
    /// Resource Manager, for lookups of resource bodies.
    pub arm_endpoint: reqwest::Url,
    /// `None` locally (no managed identity): then the table needs a key and ARM lookups fail.
    pub identity: Option<IdentitySettings>,
    /// The webhook never shows in `Debug` output (the Slack crate's type hides it).
    pub slack: SlackSetting,
    /// How hard an invocation retries transient failures.
    pub retry: RetryBudget,
    /// How long one invocation may run before it keeps what is left in rejects.
    pub invocation_deadline: Duration,
    /// Expired rows one purge run deletes at most.
    pub purge_max_rows: usize,
    /// The subscriptions the `Baseline` timer lists (empty: not configured).
    pub baseline_subscriptions: Vec<String>,
    /// The detector's own settings (the core's variables).
    pub detector: Config,
}

impl Settings {
    /// Reads the settings through `lookup` (normally `std::env::var(..).ok()`); the error names
    /// the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let vars = Environment::new(&lookup);
        // Any setting but Slack's that still holds a Key Vault reference stops the start, with
        // what to do (Slack's only disables Slack, below).
        for name in FATAL_WHEN_UNRESOLVED {
            if let Some(reference) = vars
                .raw(name)
                .filter(|v| is_unresolved_key_vault_reference(v))
            {
                return Err(ConfigError::new(name, &reference, KEY_VAULT_REFERENCE_HELP));
            }
        }
        let url = |name: &str, raw: &str| {
            reqwest::Url::parse(raw)
                .map_err(|e| ConfigError::new(name, raw, format!("is not a URL: {e}")))
        };

        let port = vars.port(env::PORT)?.unwrap_or(DEFAULT_PORT);
        let table_endpoint = url(env::TABLE_ENDPOINT, &vars.required(env::TABLE_ENDPOINT)?)?;
        let table_account = match vars.optional(env::TABLE_ACCOUNT) {
            Some(account) => account,
            None => account_of(&table_endpoint).ok_or_else(|| {
                ConfigError::missing(
                    env::TABLE_ACCOUNT,
                    format!(
                        "is required when {} ({table_endpoint}) does not name the account",
                        env::TABLE_ENDPOINT
                    ),
                )
            })?,
        };
        let arm_endpoint = url(
            env::ARM_ENDPOINT,
            &vars
                .optional(env::ARM_ENDPOINT)
                .unwrap_or_else(|| DEFAULT_ARM_ENDPOINT.to_owned()),
        )?;
        let table_key = vars.secret(env::TABLE_KEY);
        let identity = match (
            vars.optional(env::IDENTITY_ENDPOINT),
            vars.secret(env::IDENTITY_HEADER),
        ) {
            (Some(endpoint), Some(header)) => Some(IdentitySettings {
                endpoint: url(env::IDENTITY_ENDPOINT, &endpoint)?,
                header,
            }),
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    env::IDENTITY_HEADER,
                    format!("is required with {}", env::IDENTITY_ENDPOINT),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    env::IDENTITY_ENDPOINT,
                    format!("is required with {}", env::IDENTITY_HEADER),
                ))
            }
            (None, None) if table_key.is_none() => {
                return Err(ConfigError::missing(
                    env::IDENTITY_ENDPOINT,
                    format!(
                        "is required when {} is not set: the state table is then reached with the \
                         app's managed identity (the Functions host sets {} and {} when the app has \
                         one; locally, set {} instead)",
                        env::TABLE_KEY,
                        env::IDENTITY_ENDPOINT,
                        env::IDENTITY_HEADER,
                        env::TABLE_KEY
                    ),
                ))
            }
            (None, None) => None,
        };
        let attempts = match vars.number_in(env::RETRY_ATTEMPTS, 1..=10)? {
            Some(n) => n as u32,
            None => RetryBudget::default().attempts,
        };
        let backoff = match vars.number_in(env::RETRY_BACKOFF_MS, 0..=u64::MAX)? {
            Some(ms) => Duration::from_millis(ms),
            None => RetryBudget::default().backoff,
        };
        let purge_max_rows = match vars.number_in(env::PURGE_MAX_ROWS, 1..=MAX_PURGE_MAX_ROWS)? {
            Some(n) => n as usize,
            None => DEFAULT_PURGE_MAX_ROWS,
        };
        let invocation_deadline = match vars
            .number_in(
                env::INVOCATION_DEADLINE_SECS,
                1..=MAX_INVOCATION_DEADLINE_SECS,
            )
            .map_err(|mut e| {
                e.reason.push_str(", and below host.json's functionTimeout");
                e
            })? {
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_secs(DEFAULT_INVOCATION_DEADLINE_SECS),
        };
        let slack = match vars.secret(env::SLACK_WEBHOOK_URL) {
            None => SlackSetting::Unset,
            Some(raw) if is_unresolved_key_vault_reference(raw.expose()) => SlackSetting::Unusable(
                format!("{} {KEY_VAULT_REFERENCE_HELP}", env::SLACK_WEBHOOK_URL),
            ),
            Some(raw) => match WebhookUrl::parse(raw.expose()) {
                Ok(webhook) => SlackSetting::Webhook(webhook),
                // The value itself is a credential: only the reason is kept.
                Err(e) => {
                    SlackSetting::Unusable(format!("{} is unusable: {e}", env::SLACK_WEBHOOK_URL))
                }
            },
        };
        Ok(Settings {
            port,
            table_endpoint,
            table_account,
            table_name: vars
                .optional(env::TABLE_NAME)
                .unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            table_key,
            arm_endpoint,
            identity,
            slack,
            retry: RetryBudget { attempts, backoff },
            invocation_deadline,
            purge_max_rows,
            baseline_subscriptions: baseline_subscriptions(
                vars.optional(env::BASELINE_SUBSCRIPTIONS),
            )?,
            detector: Config::from_lookup(&lookup)?,
        })
    }
}

/// The comma-separated subscription ids of `SNAPWATCH_BASELINE_SUBSCRIPTIONS`; an id that
/// could not be put in a Resource Manager path stops the start.
fn baseline_subscriptions(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut ids = Vec::new();
    for id in raw.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError::new(
                env::BASELINE_SUBSCRIPTIONS,
                &raw,
                "is not a comma-separated list of subscription ids",
            ));
        }
        ids.push(id.to_ascii_lowercase());
    }
    Ok(ids)
}

/// Settings that stop the start when they hold an unresolved Key Vault reference.
const FATAL_WHEN_UNRESOLVED: &[&str] = &[
    env::TABLE_ENDPOINT,
    env::TABLE_NAME,
    env::TABLE_ACCOUNT,
    env::TABLE_KEY,
    env::ARM_ENDPOINT,
    env::RETRY_ATTEMPTS,
    env::RETRY_BACKOFF_MS,
    env::PURGE_MAX_ROWS,
    env::INVOCATION_DEADLINE_SECS,
    snapwatch_core::config::env::TRUSTED_ACCOUNTS,
    snapwatch_core::config::env::TRUSTED_PRINCIPALS,
    snapwatch_core::config::env::WINDOW_DAYS,
    snapwatch_core::config::env::ADMIN_PORTS,
    snapwatch_core::config::env::MIN_SEVERITY,
    snapwatch_core::config::env::RESPONSE,
    snapwatch_core::config::env::RESPONSE_EXEMPT_TAG,
];

/// `https://<account>.table.core.windows.net` → account; `http://host:port/<account>` (Azurite's
/// path style) → account.
fn account_of(endpoint: &reqwest::Url) -> Option<String> {
    let host = endpoint.host_str()?;
    if let Some((account, _)) = host.split_once(".table.") {
        return Some(account.to_owned());
    }
    endpoint
        .path_segments()?
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        (
            env::TABLE_ENDPOINT,
            "https://swstate01.table.core.windows.net",
        ),
        (env::IDENTITY_ENDPOINT, "http://127.0.0.1:41741/msi/token"),
        (env::IDENTITY_HEADER, "header-value"),
        (
            env::SLACK_WEBHOOK_URL,
            "https://hooks.slack.com/services/T/B/X",
        ),
    ];

    #[test]
    fn reads_a_minimal_azure_environment_with_defaults() {
        let s = Settings::from_lookup(lookup(MINIMAL)).unwrap();
        assert!(matches!(s.slack, SlackSetting::Webhook(_)), "{:?}", s.slack);
        assert_eq!(
            s.identity.map(|i| i.endpoint.to_string()).as_deref(),
            Some("http://127.0.0.1:41741/msi/token")
        );
        assert_eq!(s.invocation_deadline, Duration::from_secs(240));
        assert_eq!(s.port, 8080);
        assert_eq!(s.table_account, "swstate01");
        assert_eq!(s.table_name, "snapwatch");
        assert_eq!(s.table_key, None);
        assert_eq!(s.arm_endpoint.as_str(), "https://management.azure.com/");
        assert_eq!(s.retry.attempts, 4);
        assert_eq!(s.purge_max_rows, 20_000);
        assert_eq!(s.detector, Config::default());
    }

    #[test]
    fn reads_the_baseline_subscriptions_and_names_a_bad_list() {
        assert!(Settings::from_lookup(lookup(MINIMAL))
            .unwrap()
            .baseline_subscriptions
            .is_empty());
        let mut pairs = MINIMAL.to_vec();
        pairs.push((
            env::BASELINE_SUBSCRIPTIONS,
            " 3F2B9C1E-7A4D-4E8B-9C21-5D6E7F809A1B, ,0b1f6471-1bf0-4dda-aec3-111122223333",
        ));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs))
                .unwrap()
                .baseline_subscriptions,
            [
                "3f2b9c1e-7a4d-4e8b-9c21-5d6e7f809a1b",
                "0b1f6471-1bf0-4dda-aec3-111122223333"
            ]
        );
        let mut pairs = MINIMAL.to_vec();
        pairs.push((env::BASELINE_SUBSCRIPTIONS, "sub-1/../providers"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
            env::BASELINE_SUBSCRIPTIONS
        );
    }

    #[test]
    fn names_the_variable_at_fault() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push((env::PORT, "70000"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
            env::PORT
        );

        let mut pairs = MINIMAL.to_vec();
        pairs.push((env::RETRY_ATTEMPTS, "0"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
            env::RETRY_ATTEMPTS
        );

        for bad in ["0", "1000001", "many"] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push((env::PURGE_MAX_ROWS, bad));
            assert_eq!(
                Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
                env::PURGE_MAX_ROWS,
                "{bad}"
            );
        }
        let mut pairs = MINIMAL.to_vec();
        pairs.push((env::PURGE_MAX_ROWS, "500"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs))
                .unwrap()
                .purge_max_rows,
            500
        );

        // The core's detector settings are named too, out-of-range values included.
        for bad in ["zero", "0"] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("SNAPWATCH_WINDOW_DAYS", bad));
            let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
            assert_eq!(err.name, "SNAPWATCH_WINDOW_DAYS", "{err}");
            assert!(err.to_string().contains("SNAPWATCH_WINDOW_DAYS"), "{err}");
        }

        for bad in ["0", "601", "soon"] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push((env::INVOCATION_DEADLINE_SECS, bad));
            assert_eq!(
                Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
                env::INVOCATION_DEADLINE_SECS,
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_the_response_modes_and_names_a_bad_one() {
        use snapwatch_core::model::ResponseMode;
        use snapwatch_core::Rule;
        let s = Settings::from_lookup(lookup(MINIMAL)).unwrap();
        assert!(s.detector.response.all_off(), "off unless set");
        let mut pairs = MINIMAL.to_vec();
        pairs.push((
            snapwatch_core::config::env::RESPONSE,
            "snapshot.exported=enforce,chain.exposed-restore=dry-run",
        ));
        let s = Settings::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            s.detector.response.mode(Rule::SnapshotExported),
            ResponseMode::Enforce
        );
        assert_eq!(
            s.detector.response.mode(Rule::ChainExposedRestore),
            ResponseMode::DryRun
        );
        for bad in [
            "snapshot.exported=always",
            "chain.unknown=enforce",
            REFERENCE,
        ] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push((snapwatch_core::config::env::RESPONSE, bad));
            let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
            assert_eq!(
                err.name,
                snapwatch_core::config::env::RESPONSE,
                "{bad}: {err}"
            );
            if bad == REFERENCE {
                // Said as what it is, with what to do, not as a malformed mode list.
                assert!(
                    err.to_string().contains("unresolved Key Vault reference"),
                    "{err}"
                );
            }
        }
    }

    /// A local run: Azurite with its key, no managed identity, no Slack.
    const LOCAL: &[(&str, &str)] = &[
        (
            env::TABLE_ENDPOINT,
            "http://127.0.0.1:10002/devstoreaccount1",
        ),
        (env::TABLE_KEY, "a2V5"),
    ];

    #[test]
    fn runs_locally_without_a_managed_identity_or_slack() {
        let s = Settings::from_lookup(lookup(LOCAL)).unwrap();
        assert!(s.identity.is_none());
        assert!(matches!(s.slack, SlackSetting::Unset), "{:?}", s.slack);
        assert_eq!(
            s.table_key.as_ref().map(|key| key.expose().as_str()),
            Some("a2V5")
        );

        // An empty value (a setting Terraform left blank) is no Slack either.
        let mut pairs = LOCAL.to_vec();
        pairs.push((env::SLACK_WEBHOOK_URL, " "));
        let s = Settings::from_lookup(lookup(&pairs)).unwrap();
        assert!(matches!(s.slack, SlackSetting::Unset), "{:?}", s.slack);
    }

    #[test]
    fn the_identity_is_required_only_when_the_table_has_no_key() {
        let mut pairs = LOCAL.to_vec();
        pairs.retain(|(k, _)| *k != env::TABLE_KEY);
        let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.name, env::IDENTITY_ENDPOINT);
        assert!(err.reason.contains(env::TABLE_KEY), "{err}");

        // Half an identity is a mistake whichever half is missing.
        let mut pairs = LOCAL.to_vec();
        pairs.push((env::IDENTITY_ENDPOINT, "http://127.0.0.1:41741/msi/token"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
            env::IDENTITY_HEADER
        );
        let mut pairs = LOCAL.to_vec();
        pairs.push((env::IDENTITY_HEADER, "h"));
        assert_eq!(
            Settings::from_lookup(lookup(&pairs)).unwrap_err().name,
            env::IDENTITY_ENDPOINT
        );
    }

    const REFERENCE: &str =
        "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/slack-webhook-url/)";

    #[test]
    fn an_unresolved_key_vault_reference_for_slack_disables_slack_and_says_what_to_do() {
        for reference in [REFERENCE, " @microsoft.keyvault(VaultName=kv;SecretName=s)"] {
            let mut pairs = MINIMAL.to_vec();
            pairs.retain(|(k, _)| *k != env::SLACK_WEBHOOK_URL);
            pairs.push((env::SLACK_WEBHOOK_URL, reference));
            let s = Settings::from_lookup(lookup(&pairs)).unwrap();
            let SlackSetting::Unusable(reason) = &s.slack else {
                panic!("{:?}", s.slack)
            };
            for needle in [
                env::SLACK_WEBHOOK_URL,
                "unresolved Key Vault reference",
                "Key Vault Secrets User",
                "restart",
            ] {
                assert!(reason.contains(needle), "{needle}: {reason}");
            }
        }

        // Anything else unusable (the old Terraform placeholder) disables Slack too, without
        // repeating the value: it may be a credential.
        let mut pairs = MINIMAL.to_vec();
        pairs.retain(|(k, _)| *k != env::SLACK_WEBHOOK_URL);
        pairs.push((env::SLACK_WEBHOOK_URL, "set-me-out-of-band"));
        let s = Settings::from_lookup(lookup(&pairs)).unwrap();
        let SlackSetting::Unusable(reason) = &s.slack else {
            panic!("{:?}", s.slack)
        };
        assert!(reason.contains(env::SLACK_WEBHOOK_URL), "{reason}");
        assert!(!reason.contains("set-me"), "{reason}");
    }

    #[test]
    fn an_unresolved_key_vault_reference_elsewhere_stops_the_start_naming_the_setting() {
        let mut pairs = LOCAL.to_vec();
        pairs.retain(|(k, _)| *k != env::TABLE_KEY);
        pairs.push((env::TABLE_KEY, REFERENCE));
        let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.name, env::TABLE_KEY);
        assert!(
            err.to_string().contains("unresolved Key Vault reference"),
            "{err}"
        );
        assert!(err.to_string().contains("restart"), "{err}");
        assert!(!is_unresolved_key_vault_reference(
            "https://hooks.slack.com/x"
        ));
        assert!(!is_unresolved_key_vault_reference("@Microsoft"));
    }

    /// host.json's `functionTimeout` in seconds (`hh:mm:ss`).
    fn function_timeout_secs() -> u64 {
        let host: serde_json::Value =
            serde_json::from_str(include_str!("../app/host.json")).expect("host.json");
        let raw = host["functionTimeout"].as_str().expect("functionTimeout");
        raw.split(':')
            .map(|part| part.parse::<u64>().expect("hh:mm:ss"))
            .fold(0, |total, part| total * 60 + part)
    }

    #[test]
    fn the_default_deadline_leaves_the_host_a_minute_before_function_timeout() {
        let timeout = function_timeout_secs();
        assert_eq!(timeout, 300);
        // The README says 300 s and a minute left for the host.
        assert!(DEFAULT_INVOCATION_DEADLINE_SECS + 60 <= timeout);
    }

    #[test]
    fn finds_the_account_in_azurite_path_style_endpoints() {
        let mut pairs = MINIMAL.to_vec();
        pairs.retain(|(k, _)| *k != env::TABLE_ENDPOINT);
        pairs.push((
            env::TABLE_ENDPOINT,
            "http://127.0.0.1:10002/devstoreaccount1",
        ));
        let s = Settings::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(s.table_account, "devstoreaccount1");
    }

    /// The start error of this crate, made from a core error: generic so that it states what
    /// any error type `Settings::from_lookup` answers with must keep.
    fn start_error<E: From<ConfigError>>(_: Option<E>, error: ConfigError) -> E {
        error.into()
    }

    #[test]
    fn a_detector_error_keeps_its_variable_name_whatever_the_variable() {
        // A core variable this crate does not list by name (one added later, or a key the
        // core validates) must still be named, not become `SNAPWATCH_*`.
        let sample = Settings::from_lookup(lookup(MINIMAL)).err();
        let error = start_error(
            sample,
            ConfigError {
                name: "SNAPWATCH_SOME_LATER_SETTING".into(),
                value: "x".into(),
                reason: "bad".into(),
            },
        );
        assert!(
            error.to_string().contains("SNAPWATCH_SOME_LATER_SETTING"),
            "{error}"
        );
    }
}

//! Everything the function reads from its app settings, parsed once at start into types.
//! A missing or bad value fails the start with the variable's name.

use crate::handler::RetryBudget;
use snapwatch_core::config::ConfigError;
use snapwatch_core::Config;
use std::time::Duration;

/// App setting names (Terraform sets them; see infra/azure).
pub mod env {
    /// Port the Functions host expects the custom handler on (the host sets it).
    pub const PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    /// `https://<account>.table.core.windows.net`, or Azurite's `http://127.0.0.1:P/devstoreaccount1`.
    pub const TABLE_ENDPOINT: &str = "SNAPWATCH_TABLE_ENDPOINT";
    pub const TABLE_NAME: &str = "SNAPWATCH_TABLE_NAME";
    /// Only where the endpoint does not say it (a custom domain).
    pub const TABLE_ACCOUNT: &str = "SNAPWATCH_TABLE_ACCOUNT";
    /// Account key for SharedKey auth (local use); absent in Azure, where the identity is used.
    pub const TABLE_KEY: &str = "SNAPWATCH_TABLE_KEY";
    pub const ARM_ENDPOINT: &str = "SNAPWATCH_ARM_ENDPOINT";
    /// A Key Vault reference in Azure: the host resolves it before the process starts.
    pub const SLACK_WEBHOOK_URL: &str = "SNAPWATCH_SLACK_WEBHOOK_URL";
    pub const RETRY_ATTEMPTS: &str = "SNAPWATCH_RETRY_ATTEMPTS";
    pub const RETRY_BACKOFF_MS: &str = "SNAPWATCH_RETRY_BACKOFF_MS";
    /// Expired rows one `Purge` run deletes at most (its schedule is the function.json's
    /// `%SNAPWATCH_PURGE_SCHEDULE%`, read by the host, not by the handler).
    pub const PURGE_MAX_ROWS: &str = "SNAPWATCH_PURGE_MAX_ROWS";
    /// Set by the Functions host when the app has a managed identity.
    pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
    pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
}

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_TABLE: &str = "snapwatch";
const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// Rows per purge run: at the delete rates measured on Azurite (README) a few seconds of work,
/// far inside the 5-minute function timeout, and well above what one hour of chain state adds.
pub const DEFAULT_PURGE_MAX_ROWS: usize = 20_000;
const MAX_PURGE_MAX_ROWS: u64 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {name}: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub reason: String,
}

impl From<ConfigError> for SettingsError {
    fn from(e: ConfigError) -> Self {
        SettingsError {
            name: "SNAPWATCH_*",
            reason: e.to_string(),
        }
    }
}

/// The managed identity endpoint the host provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    pub endpoint: reqwest::Url,
    pub header: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub table_endpoint: reqwest::Url,
    pub table_account: String,
    pub table_name: String,
    /// `Some` → SharedKey; `None` → managed identity.
    pub table_key: Option<String>,
    pub arm_endpoint: reqwest::Url,
    pub identity: IdentitySettings,
    /// Kept out of `Debug` output by the Slack crate's own type once parsed.
    pub slack_webhook_url: String,
    pub retry: RetryBudget,
    pub purge_max_rows: usize,
    pub detector: Config,
}

impl Settings {
    /// Reads the settings through `lookup` (normally `std::env::var(..).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| {
            get(name).ok_or_else(|| SettingsError {
                name,
                reason: "is required".into(),
            })
        };
        let url = |name: &'static str, raw: String| {
            reqwest::Url::parse(&raw).map_err(|e| SettingsError {
                name,
                reason: format!("{raw:?} is not a URL: {e}"),
            })
        };
        let number = |name: &'static str, raw: String| {
            raw.parse::<u64>().map_err(|e| SettingsError {
                name,
                reason: format!("{raw:?} is not a whole number: {e}"),
            })
        };

        let port = match get(env::PORT) {
            Some(raw) => u16::try_from(number(env::PORT, raw)?).map_err(|_| SettingsError {
                name: env::PORT,
                reason: "is not a port number".into(),
            })?,
            None => DEFAULT_PORT,
        };
        let table_endpoint = url(env::TABLE_ENDPOINT, required(env::TABLE_ENDPOINT)?)?;
        let table_account = match get(env::TABLE_ACCOUNT) {
            Some(account) => account,
            None => account_of(&table_endpoint).ok_or_else(|| SettingsError {
                name: env::TABLE_ACCOUNT,
                reason: format!(
                    "is required when {} ({table_endpoint}) does not name the account",
                    env::TABLE_ENDPOINT
                ),
            })?,
        };
        let arm_endpoint = url(
            env::ARM_ENDPOINT,
            get(env::ARM_ENDPOINT).unwrap_or_else(|| DEFAULT_ARM_ENDPOINT.to_owned()),
        )?;
        let identity = IdentitySettings {
            endpoint: url(env::IDENTITY_ENDPOINT, required(env::IDENTITY_ENDPOINT)?)?,
            header: required(env::IDENTITY_HEADER)?,
        };
        let attempts = match get(env::RETRY_ATTEMPTS) {
            Some(raw) => match number(env::RETRY_ATTEMPTS, raw)? {
                n @ 1..=10 => n as u32,
                _ => {
                    return Err(SettingsError {
                        name: env::RETRY_ATTEMPTS,
                        reason: "must be between 1 and 10".into(),
                    })
                }
            },
            None => RetryBudget::default().attempts,
        };
        let backoff = match get(env::RETRY_BACKOFF_MS) {
            Some(raw) => Duration::from_millis(number(env::RETRY_BACKOFF_MS, raw)?),
            None => RetryBudget::default().backoff,
        };
        let purge_max_rows = match get(env::PURGE_MAX_ROWS) {
            Some(raw) => match number(env::PURGE_MAX_ROWS, raw)? {
                n @ 1..=MAX_PURGE_MAX_ROWS => n as usize,
                _ => {
                    return Err(SettingsError {
                        name: env::PURGE_MAX_ROWS,
                        reason: format!("must be between 1 and {MAX_PURGE_MAX_ROWS}"),
                    })
                }
            },
            None => DEFAULT_PURGE_MAX_ROWS,
        };
        Ok(Settings {
            port,
            table_endpoint,
            table_account,
            table_name: get(env::TABLE_NAME).unwrap_or_else(|| DEFAULT_TABLE.to_owned()),
            table_key: get(env::TABLE_KEY),
            arm_endpoint,
            identity,
            slack_webhook_url: required(env::SLACK_WEBHOOK_URL)?,
            retry: RetryBudget { attempts, backoff },
            purge_max_rows,
            detector: Config::from_lookup(&lookup)?,
        })
    }
}

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
    fn names_the_variable_at_fault() {
        let mut pairs = MINIMAL.to_vec();
        pairs.retain(|(k, _)| *k != env::SLACK_WEBHOOK_URL);
        let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.name, env::SLACK_WEBHOOK_URL);

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

        let mut pairs = MINIMAL.to_vec();
        pairs.push(("SNAPWATCH_WINDOW_DAYS", "zero"));
        let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.reason.contains("SNAPWATCH_WINDOW_DAYS"), "{err}");
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
}

//! The service's settings, parsed once at start from environment variables (through a lookup
//! function, so tests never touch the process environment). A bad value fails the start with
//! the variable's name.

use crate::firestore::{Collections, FirestoreTarget};
use snapwatch_core::config::ConfigError;
use snapwatch_core::Config;

/// Environment variable names (the detector's own come from `snapwatch_core::config::env`).
pub mod env {
    /// Cloud Run sets it: the port to listen on.
    pub const PORT: &str = "PORT";
    /// The project whose Firestore database holds the state.
    pub const FIRESTORE_PROJECT: &str = "SNAPWATCH_FIRESTORE_PROJECT";
    /// The database id; `(default)` when unset.
    pub const FIRESTORE_DATABASE: &str = "SNAPWATCH_FIRESTORE_DATABASE";
    /// Prefix of the three collection names (`facts`, `alerts`, `rejects`).
    pub const COLLECTION_PREFIX: &str = "SNAPWATCH_COLLECTION_PREFIX";
    /// The emulator's `host:port`: when set, no auth and plain HTTP.
    pub const FIRESTORE_EMULATOR_HOST: &str = "FIRESTORE_EMULATOR_HOST";
    /// Slack incoming webhook URL (from Secret Manager on Cloud Run). Unset: findings are only logged.
    pub const SLACK_WEBHOOK_URL: &str = "SNAPWATCH_SLACK_WEBHOOK_URL";
}

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_DATABASE: &str = "(default)";
const DEFAULT_COLLECTION_PREFIX: &str = "snapwatch_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub port: u16,
    pub firestore: FirestoreTarget,
    pub collections: Collections,
    /// Kept as text here; `main` turns it into a `WebhookUrl` (which never prints it).
    pub slack_webhook_url: Option<SecretText>,
    pub detector: Config,
}

/// A secret value that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(…)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{name} is required: {reason}")]
    Missing { name: &'static str, reason: String },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Detector(#[from] ConfigError),
}

impl SettingsError {
    /// The environment variable at fault, for the start error and its log line.
    pub fn variable(&self) -> &str {
        match self {
            SettingsError::Missing { name, .. } | SettingsError::Invalid { name, .. } => name,
            SettingsError::Detector(e) => &e.name,
        }
    }
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let present = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let port = match present(env::PORT) {
            None => DEFAULT_PORT,
            Some(raw) => raw
                .trim()
                .parse::<u16>()
                .map_err(|e| SettingsError::Invalid {
                    name: env::PORT,
                    value: raw.clone(),
                    reason: e.to_string(),
                })?,
        };
        let project = present(env::FIRESTORE_PROJECT).ok_or(SettingsError::Missing {
            name: env::FIRESTORE_PROJECT,
            reason: "the project of the Firestore database holding chain state".to_string(),
        })?;
        let project = project.trim().to_string();
        let database = present(env::FIRESTORE_DATABASE)
            .map(|d| d.trim().to_string())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let firestore = match present(env::FIRESTORE_EMULATOR_HOST) {
            Some(host) => {
                let mut target = FirestoreTarget::emulator(&host, &project);
                target.database = database;
                target
            }
            None => FirestoreTarget::production(&project, &database),
        };
        let prefix = lookup(env::COLLECTION_PREFIX)
            .map(|p| p.trim().to_string())
            .unwrap_or_else(|| DEFAULT_COLLECTION_PREFIX.to_string());
        if prefix.contains('/') {
            return Err(SettingsError::Invalid {
                name: env::COLLECTION_PREFIX,
                value: prefix,
                reason: "a collection name cannot contain '/'".to_string(),
            });
        }
        let slack_webhook_url = present(env::SLACK_WEBHOOK_URL).map(SecretText);
        let detector = Config::from_lookup(&lookup)?;
        Ok(Settings {
            port,
            firestore,
            collections: Collections::with_prefix(&prefix),
            slack_webhook_url,
            detector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firestore::Auth;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn production_defaults() {
        let s = settings(&[(env::FIRESTORE_PROJECT, "acme-prod")]).expect("settings");
        assert_eq!(s.port, 8080);
        assert_eq!(s.firestore.endpoint, "https://firestore.googleapis.com");
        assert_eq!(s.firestore.database, "(default)");
        assert_eq!(s.firestore.auth, Auth::MetadataServer);
        assert_eq!(s.collections.facts, "snapwatch_facts");
        assert_eq!(s.slack_webhook_url, None);
        assert_eq!(s.detector, Config::default());
    }

    #[test]
    fn emulator_and_overrides() {
        let s = settings(&[
            (env::PORT, "9090"),
            (env::FIRESTORE_PROJECT, "demo"),
            (env::FIRESTORE_EMULATOR_HOST, "127.0.0.1:8686"),
            (env::COLLECTION_PREFIX, "sw_"),
            (
                env::SLACK_WEBHOOK_URL,
                "https://hooks.slack.com/services/T/B/X",
            ),
            ("SNAPWATCH_MIN_SEVERITY", "high"),
        ])
        .expect("settings");
        assert_eq!(s.port, 9090);
        assert_eq!(s.firestore.endpoint, "http://127.0.0.1:8686");
        assert_eq!(s.firestore.auth, Auth::None);
        assert_eq!(s.collections.alerts, "sw_alerts");
        assert_eq!(
            s.detector.alerts.min_severity,
            snapwatch_core::Severity::High
        );
        assert_eq!(format!("{:?}", s.slack_webhook_url), "Some(SecretText(…))");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let missing = settings(&[]).expect_err("project is required");
        assert!(
            missing.to_string().contains(env::FIRESTORE_PROJECT),
            "{missing}"
        );
        let port =
            settings(&[(env::FIRESTORE_PROJECT, "p"), (env::PORT, "http")]).expect_err("bad port");
        assert!(port.to_string().starts_with("PORT=\"http\""), "{port}");
        let window = settings(&[
            (env::FIRESTORE_PROJECT, "p"),
            ("SNAPWATCH_WINDOW_DAYS", "0"),
        ])
        .expect_err("bad window");
        assert!(matches!(window, SettingsError::Detector(_)), "{window:?}");
        // Every variant names the environment variable, for the start error and its log line.
        assert_eq!(window.variable(), "SNAPWATCH_WINDOW_DAYS");
        assert!(
            window.to_string().contains("SNAPWATCH_WINDOW_DAYS"),
            "{window}"
        );
        assert_eq!(missing.variable(), env::FIRESTORE_PROJECT);
        assert_eq!(port.variable(), env::PORT);
    }
}

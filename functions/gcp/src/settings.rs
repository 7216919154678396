//! The service's settings, parsed once at start from environment variables (through a lookup
//! function, so tests never touch the process environment). A bad value fails the start with
//! the variable's name.

use crate::firestore::{Collections, FirestoreTarget};
use snapwatch_core::config::{ConfigError, Environment, Secret};
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
    /// Comma-separated projects the scheduled baseline lists (`POST /baseline`). Unset: the
    /// route is not served.
    pub const BASELINE_PROJECTS: &str = "SNAPWATCH_BASELINE_PROJECTS";
    /// The Compute Engine endpoint the baseline lists through and the response writes to (a
    /// local stub in tests).
    pub const COMPUTE_ENDPOINT: &str = "SNAPWATCH_COMPUTE_ENDPOINT";
}

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_DATABASE: &str = "(default)";
const DEFAULT_COLLECTION_PREFIX: &str = "snapwatch_";

/// Everything the service reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to listen.
    pub port: u16,
    /// The database holding chain state, and how to reach it.
    pub firestore: FirestoreTarget,
    /// The collection names.
    pub collections: Collections,
    /// Kept as text here; `main` turns it into a `WebhookUrl` (which never prints it either).
    pub slack_webhook_url: Option<Secret>,
    /// The detector's own settings (the core's variables).
    pub detector: Config,
    /// Projects the scheduled baseline lists; empty: no `/baseline` route.
    pub baseline_projects: Vec<String>,
    /// Where the baseline's Compute Engine calls go.
    pub compute_endpoint: String,
}

impl Settings {
    /// Reads every setting through `lookup` (normally `std::env::var(..).ok()`); the error names
    /// the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Environment::new(&lookup);
        let port = vars.port(env::PORT)?.unwrap_or(DEFAULT_PORT);
        let project = vars.optional(env::FIRESTORE_PROJECT).ok_or_else(|| {
            ConfigError::missing(
                env::FIRESTORE_PROJECT,
                "is required: the project of the Firestore database holding chain state",
            )
        })?;
        let database = vars
            .optional(env::FIRESTORE_DATABASE)
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let firestore = match vars.optional(env::FIRESTORE_EMULATOR_HOST) {
            Some(host) => {
                let mut target = FirestoreTarget::emulator(&host, &project);
                target.database = database;
                target
            }
            None => FirestoreTarget::production(&project, &database),
        };
        // Set but empty is an empty prefix (collections `facts`, `alerts`, `rejects`), not the
        // default: hence the value as set, trimmed.
        let prefix = vars
            .raw(env::COLLECTION_PREFIX)
            .map(|p| p.trim().to_string())
            .unwrap_or_else(|| DEFAULT_COLLECTION_PREFIX.to_string());
        if prefix.contains('/') {
            return Err(ConfigError::new(
                env::COLLECTION_PREFIX,
                &prefix,
                "a collection name cannot contain '/'",
            ));
        }
        Ok(Settings {
            port,
            firestore,
            collections: Collections::with_prefix(&prefix),
            slack_webhook_url: vars.secret(env::SLACK_WEBHOOK_URL),
            detector: Config::from_lookup(&lookup)?,
            baseline_projects: vars.list(env::BASELINE_PROJECTS).unwrap_or_default(),
            compute_endpoint: vars
                .optional(env::COMPUTE_ENDPOINT)
                .unwrap_or_else(|| snapwatch_gcp_inventory::COMPUTE_ENDPOINT.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firestore::Auth;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
        assert!(s.baseline_projects.is_empty());
        assert_eq!(s.compute_endpoint, "https://compute.googleapis.com");
    }

    #[test]
    fn baseline_projects_are_a_comma_list() {
        let s = settings(&[
            (env::FIRESTORE_PROJECT, "acme-prod"),
            (env::BASELINE_PROJECTS, " acme-prod, acme-data ,,"),
        ])
        .expect("settings");
        assert_eq!(s.baseline_projects, ["acme-prod", "acme-data"]);
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
        assert_eq!(
            s.slack_webhook_url
                .as_ref()
                .map(|url| url.expose().as_str()),
            Some("https://hooks.slack.com/services/T/B/X")
        );
        assert!(!format!("{s:?}").contains("hooks.slack.com"), "{s:?}");
    }

    #[test]
    fn response_modes_are_read_and_a_bad_one_is_named() {
        use snapwatch_core::model::ResponseMode;
        use snapwatch_core::Rule;
        let off = settings(&[(env::FIRESTORE_PROJECT, "p")]).expect("settings");
        assert!(off.detector.response.all_off(), "off unless set");
        let on = settings(&[
            (env::FIRESTORE_PROJECT, "p"),
            ("SNAPWATCH_RESPONSE", "snapshot.public=enforce"),
        ])
        .expect("settings");
        assert_eq!(
            on.detector.response.mode(Rule::SnapshotPublic),
            ResponseMode::Enforce
        );
        let bad = settings(&[
            (env::FIRESTORE_PROJECT, "p"),
            ("SNAPWATCH_RESPONSE", "snapshot.public=yes"),
        ])
        .expect_err("bad mode");
        assert_eq!(bad.name, "SNAPWATCH_RESPONSE");
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
        assert!(port.to_string().contains("PORT=\"http\""), "{port}");
        let window = settings(&[
            (env::FIRESTORE_PROJECT, "p"),
            ("SNAPWATCH_WINDOW_DAYS", "0"),
        ])
        .expect_err("bad window");
        // Every error names the environment variable, for the start error and its log line.
        assert_eq!(window.name, "SNAPWATCH_WINDOW_DAYS");
        assert!(
            window.to_string().contains("SNAPWATCH_WINDOW_DAYS"),
            "{window}"
        );
        assert_eq!(missing.name, env::FIRESTORE_PROJECT);
        assert_eq!(port.name, env::PORT);
        let prefix = settings(&[
            (env::FIRESTORE_PROJECT, "p"),
            (env::COLLECTION_PREFIX, "a/b"),
        ])
        .expect_err("bad prefix");
        assert_eq!(prefix.name, env::COLLECTION_PREFIX);
    }
}

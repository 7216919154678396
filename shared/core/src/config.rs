//! Detector settings (DESIGN section 4), parsed once into a typed struct.
//!
//! The CLI deserializes the TOML form; the functions build the same struct from environment
//! variables through [`Config::from_lookup`], so tests never touch the process environment.

use crate::model::Severity;
use serde::Deserialize;

pub const DEFAULT_WINDOW_DAYS: u32 = 30;
pub const DEFAULT_ADMIN_PORTS: [u16; 2] = [22, 3389];

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default)]
    pub chain: ChainConfig,
    #[serde(default)]
    pub alerts: AlertConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// AWS accounts / Azure subscriptions / GCP projects that are ours.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Glob patterns (`*`, `?`) of trusted principals.
    #[serde(default)]
    pub principals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    #[serde(default = "default_admin_ports")]
    pub admin_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
}

fn default_window_days() -> u32 {
    DEFAULT_WINDOW_DAYS
}
fn default_admin_ports() -> Vec<u16> {
    DEFAULT_ADMIN_PORTS.to_vec()
}
fn default_min_severity() -> Severity {
    Severity::Medium
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            window_days: DEFAULT_WINDOW_DAYS,
            admin_ports: default_admin_ports(),
        }
    }
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            min_severity: default_min_severity(),
        }
    }
}

/// A setting that could not be used; names the variable (or TOML key) at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Environment variable names shared by every function.
pub mod env {
    pub const TRUSTED_ACCOUNTS: &str = "SNAPWATCH_TRUSTED_ACCOUNTS";
    pub const TRUSTED_PRINCIPALS: &str = "SNAPWATCH_TRUSTED_PRINCIPALS";
    pub const WINDOW_DAYS: &str = "SNAPWATCH_WINDOW_DAYS";
    pub const ADMIN_PORTS: &str = "SNAPWATCH_ADMIN_PORTS";
    pub const MIN_SEVERITY: &str = "SNAPWATCH_MIN_SEVERITY";
}

impl Config {
    /// Builds the config from `lookup` (normally `std::env::var(..).ok()`); comma-separated lists.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let list = |raw: &str| -> Vec<String> {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(raw) = lookup(env::TRUSTED_ACCOUNTS) {
            config.trust.accounts = list(&raw);
        }
        if let Some(raw) = lookup(env::TRUSTED_PRINCIPALS) {
            config.trust.principals = list(&raw);
        }
        if let Some(raw) = lookup(env::WINDOW_DAYS) {
            config.chain.window_days = raw.trim().parse().map_err(|e| ConfigError {
                name: env::WINDOW_DAYS.into(),
                value: raw.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(raw) = lookup(env::ADMIN_PORTS) {
            config.chain.admin_ports = list(&raw)
                .iter()
                .map(|p| p.parse::<u16>())
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError {
                    name: env::ADMIN_PORTS.into(),
                    value: raw.clone(),
                    reason: format!("expected comma-separated port numbers: {e}"),
                })?;
        }
        if let Some(raw) = lookup(env::MIN_SEVERITY) {
            config.alerts.min_severity = raw.parse().map_err(|reason| ConfigError {
                name: env::MIN_SEVERITY.into(),
                value: raw.clone(),
                reason,
            })?;
        }
        // A value that parses but is out of range: name the variable that set it, not the key.
        config.validate().map_err(|mut e| {
            if e.name == "chain.window_days" {
                e.name = env::WINDOW_DAYS.into();
            }
            e
        })?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.chain.window_days == 0 || self.chain.window_days > 3650 {
            return Err(ConfigError {
                name: "chain.window_days".into(),
                value: self.chain.window_days.to_string(),
                reason: "must be between 1 and 3650".into(),
            });
        }
        for account in &self.trust.accounts {
            if account.trim().is_empty() {
                return Err(ConfigError {
                    name: "trust.accounts".into(),
                    value: account.clone(),
                    reason: "empty account id".into(),
                });
            }
        }
        Ok(())
    }

    pub fn window_secs(&self) -> i64 {
        i64::from(self.chain.window_days) * 86_400
    }

    /// Own accounts and configured organization accounts.
    pub fn is_trusted_account(&self, own_account: &str, account: &str) -> bool {
        account == own_account || self.trust.accounts.iter().any(|a| a == account)
    }

    /// Principals matching a configured glob. GCP member prefixes (`user:`) are ignored.
    pub fn is_trusted_principal(&self, principal: &str) -> bool {
        let bare = principal
            .split_once(':')
            .filter(|(kind, _)| {
                matches!(
                    *kind,
                    "user" | "serviceAccount" | "group" | "domain" | "principal"
                )
            })
            .map(|(_, rest)| rest)
            .unwrap_or(principal);
        let role = assumed_role_arn(principal);
        self.trust.principals.iter().any(|pattern| {
            glob_match(pattern, bare)
                || glob_match(pattern, principal)
                || role.as_deref().is_some_and(|r| glob_match(pattern, r))
        })
    }
}

/// CloudTrail names a role session `arn:aws:sts::ACCT:assumed-role/NAME/SESSION`, while people
/// write trust patterns against the role, `arn:aws:iam::ACCT:role/NAME`: map the former to the latter.
fn assumed_role_arn(principal: &str) -> Option<String> {
    let rest = principal.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "sts" {
        return None;
    }
    let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// Glob match with `*` (any run, including `/` and `:`) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn globs() {
        assert!(glob_match(
            "arn:aws:iam::*:role/backup-*",
            "arn:aws:iam::1234:role/backup-nightly"
        ));
        assert!(!glob_match(
            "arn:aws:iam::*:role/backup-*",
            "arn:aws:iam::1234:role/admin"
        ));
        assert!(glob_match("*@example.com", "alice@example.com"));
        assert!(!glob_match("*@example.com", "alice@example.com.evil.io"));
        assert!(glob_match("a?c", "abc"));
    }

    #[test]
    fn assumed_role_sessions_match_role_patterns() {
        let mut c = Config::default();
        c.trust.principals = vec!["arn:aws:iam::*:role/backup-*".into()];
        assert!(c.is_trusted_principal(
            "arn:aws:sts::111122223333:assumed-role/backup-nightly/session-1"
        ));
        assert!(!c.is_trusted_principal("arn:aws:sts::111122223333:assumed-role/admin/backup-x"));
        assert!(c.is_trusted_principal("arn:aws:iam::111122223333:role/backup-x"));
    }

    #[test]
    fn trusted_principal_ignores_gcp_member_prefix() {
        let mut c = Config::default();
        c.trust.principals = vec!["*@example.com".into()];
        assert!(c.is_trusted_principal("user:bob@example.com"));
        assert!(!c.is_trusted_principal("user:bob@gmail.com"));
    }

    #[test]
    fn env_lookup_parses_and_names_bad_variable() {
        let vars: HashMap<&str, &str> = HashMap::from([
            (env::TRUSTED_ACCOUNTS, "111122223333, 444455556666"),
            (env::ADMIN_PORTS, "22,3389,5985"),
            (env::MIN_SEVERITY, "HIGH"),
        ]);
        let c = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.trust.accounts, vec!["111122223333", "444455556666"]);
        assert_eq!(c.chain.admin_ports, vec![22, 3389, 5985]);
        assert_eq!(c.alerts.min_severity, Severity::High);

        let err =
            Config::from_lookup(|k| (k == env::WINDOW_DAYS).then(|| "thirty".into())).unwrap_err();
        assert_eq!(err.name, env::WINDOW_DAYS);
        assert!(err.to_string().contains("SNAPWATCH_WINDOW_DAYS"));
        let err =
            Config::from_lookup(|k| (k == env::MIN_SEVERITY).then(|| "urgent".into())).unwrap_err();
        assert_eq!(err.name, env::MIN_SEVERITY);
        // A value that parses but is out of range names the variable too, not the TOML key.
        let err = Config::from_lookup(|k| (k == env::WINDOW_DAYS).then(|| "0".into())).unwrap_err();
        assert_eq!(err.name, env::WINDOW_DAYS);
    }
}

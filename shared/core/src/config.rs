//! Detector settings (the README's "Configuration" section), parsed once into a typed struct.
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

    /// Whether `principal` matches a configured trust pattern. Each pattern form matches one
    /// kind of principal only (README, Configuration):
    ///
    /// - `arn:…` patterns match AWS ARNs, field by field: `*` and `?` stay inside one `:` field
    ///   or `/` segment, `**` may span `/` segments. A session
    ///   `arn:aws:sts::A:assumed-role/R/S` also matches as its role `arn:aws:iam::A:role/R`.
    /// - patterns with an `@` match e-mail principals only (Azure UPNs, GCP principal e-mails,
    ///   `user:`/`serviceAccount:`/`group:` members), never an ARN: the session name of an
    ///   assumed role is chosen by the caller, so `…/assumed-role/x/mallory@example.com` is not
    ///   `mallory@example.com`. `*` and `?` never match `@`; letter case is ignored.
    /// - other patterns match the remaining principals (Azure object and application ids,
    ///   `domain:` members, AWS service names) with the same segment rule.
    pub fn is_trusted_principal(&self, principal: &str) -> bool {
        self.trust
            .principals
            .iter()
            .any(|pattern| principal_matches(pattern, principal))
    }
}

/// GCP IAM member kinds that may prefix a principal or a pattern (`user:bob@example.com`).
const MEMBER_KINDS: [&str; 5] = ["user", "serviceAccount", "group", "domain", "principal"];

fn split_member(s: &str) -> (Option<&str>, &str) {
    match s.split_once(':') {
        Some((kind, rest)) if MEMBER_KINDS.contains(&kind) => (Some(kind), rest),
        _ => (None, s),
    }
}

/// One pattern against one principal, by the rules of [`Config::is_trusted_principal`].
pub fn principal_matches(pattern: &str, principal: &str) -> bool {
    let is_arn = principal.starts_with("arn:");
    if pattern.starts_with("arn:") {
        return is_arn
            && (segment_glob(pattern, principal, false)
                || assumed_role_arn(principal)
                    .is_some_and(|role| segment_glob(pattern, &role, false)));
    }
    if is_arn {
        return false;
    }
    let (pattern_kind, pattern_rest) = split_member(pattern);
    let (principal_kind, principal_rest) = split_member(principal);
    if pattern_kind.is_some() && pattern_kind != principal_kind {
        return false;
    }
    if pattern_rest.contains('@') {
        is_email(principal_rest) && segment_glob(pattern_rest, principal_rest, true)
    } else {
        !is_email(principal_rest) && segment_glob(pattern_rest, principal_rest, false)
    }
}

/// `local@domain` with exactly one `@` and something on each side.
fn is_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
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

/// Glob match where `*` (any run) and `?` (one character) never match a separator (`:`, `/`, and
/// for e-mail patterns `@`), and `**` is any run that may include `/` (role and user paths).
/// E-mail patterns ignore letter case, as mail domains and Azure UPNs do.
pub fn segment_glob(pattern: &str, text: &str, email: bool) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Literal(char),
        One,
        Star,
        DoubleStar,
    }
    let fold = |c: char| if email { c.to_ascii_lowercase() } else { c };
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                Token::DoubleStar
            }
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Literal(fold(c)),
        });
    }
    let text: Vec<char> = text.chars().map(fold).collect();
    let separator = |c: char| c == ':' || c == '/' || (email && c == '@');
    let spans = |token: Token, c: char| match token {
        Token::Star | Token::One => !separator(c),
        Token::DoubleStar => c != ':' && !(email && c == '@'),
        Token::Literal(_) => false,
    };
    // reachable[i]: the tokens so far can match exactly text[..i]. Linear in pattern × text,
    // so a long principal cannot make matching slow.
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for &token in &tokens {
        let mut next = vec![false; text.len() + 1];
        for i in 0..=text.len() {
            match token {
                Token::Literal(l) => {
                    if i > 0 && reachable[i - 1] && text[i - 1] == l {
                        next[i] = true;
                    }
                }
                Token::One => {
                    if i > 0 && reachable[i - 1] && spans(token, text[i - 1]) {
                        next[i] = true;
                    }
                }
                Token::Star | Token::DoubleStar => {
                    next[i] = reachable[i] || (i > 0 && next[i - 1] && spans(token, text[i - 1]));
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn globs() {
        assert!(segment_glob(
            "arn:aws:iam::*:role/backup-*",
            "arn:aws:iam::1234:role/backup-nightly",
            false
        ));
        assert!(!segment_glob(
            "arn:aws:iam::*:role/backup-*",
            "arn:aws:iam::1234:role/admin",
            false
        ));
        assert!(segment_glob("*@example.com", "alice@example.com", true));
        assert!(!segment_glob(
            "*@example.com",
            "alice@example.com.evil.io",
            true
        ));
        assert!(segment_glob("a?c", "abc", false));
        assert!(!segment_glob("a?c", "a/c", false));
        assert!(segment_glob("a**c", "a/b/c", false));
        assert!(!segment_glob("a**c", "a:c", false));
        // Matching stays linear: a long hostile principal against many stars.
        let long = "a".repeat(20_000);
        assert!(!segment_glob("*a*a*a*a*a*a*a*b", &long, false));
    }

    /// Pattern × principal × trusted?, covering each pattern form against each principal kind.
    #[test]
    fn each_pattern_form_matches_only_its_kind_of_principal() {
        let session = |name: &str| format!("arn:aws:sts::111122223333:assumed-role/{name}");
        let table: Vec<(&str, String, bool)> = vec![
            // E-mail patterns: e-mail principals only, never an ARN's session name.
            (
                "*@example.com",
                session("attacker-role/mallory@example.com"),
                false,
            ),
            (
                "*@example.com",
                "arn:aws:iam::111122223333:user/alice@example.com".into(),
                false,
            ),
            ("*@example.com", "alice@example.com".into(), true),
            ("*@example.com", "Alice@Example.COM".into(), true),
            ("*@example.com", "user:bob@example.com".into(), true),
            (
                "*@example.com",
                "serviceAccount:sa@example.com".into(),
                true,
            ),
            ("*@example.com", "mallory@evil.io@example.com".into(), false),
            ("*@example.com", "alice@example.com.evil.io".into(), false),
            ("*@example.com", "alice@sub.example.com".into(), false),
            ("*@*.example.com", "alice@sub.example.com".into(), true),
            ("user:*@example.com", "user:bob@example.com".into(), true),
            (
                "user:*@example.com",
                "serviceAccount:bob@example.com".into(),
                false,
            ),
            ("user:*@example.com", "bob@example.com".into(), false),
            ("alice@example.com", "alice@example.com".into(), true),
            ("alice@example.com", "user:alice@example.com".into(), true),
            // ARN patterns: ARNs only, `*` within one field or segment.
            (
                "arn:aws:iam::*:role/backup-*",
                session("backup-nightly/s-1"),
                true,
            ),
            (
                "arn:aws:iam::*:role/backup-*",
                session("admin/backup-x"),
                false,
            ),
            (
                "arn:aws:iam::*:role/backup-*",
                "arn:aws:iam::111122223333:role/backup-x".into(),
                true,
            ),
            (
                "arn:aws:iam::*:role/backup-*",
                "arn:aws:iam::111122223333:role/backup-x/y".into(),
                false,
            ),
            (
                "arn:aws:iam::*:role/*",
                "arn:aws:iam::111122223333:role/ops/admin".into(),
                false,
            ),
            (
                "arn:aws:iam::*:role/**",
                "arn:aws:iam::111122223333:role/ops/admin".into(),
                true,
            ),
            (
                "arn:aws:iam::*:role/backup-*",
                "arn:aws:iam::1:2:role/backup-x".into(),
                false,
            ),
            (
                "arn:aws:iam::*:user/*",
                "arn:aws:iam::111122223333:user/alice".into(),
                true,
            ),
            (
                "arn:aws:sts::*:assumed-role/ops/*",
                session("ops/alice"),
                true,
            ),
            (
                "arn:aws:sts::*:assumed-role/ops/*",
                session("ops/a/b"),
                false,
            ),
            ("arn:*", session("attacker-role/x"), false),
            ("arn:aws:iam::*:role/backup-*", "backup-x".into(), false),
            (
                "arn:aws:iam::*:role/backup-*",
                "user:arn:aws:iam::1:role/backup-x".into(),
                false,
            ),
            // Other patterns: ids and names, never an ARN or an e-mail.
            ("*", session("attacker-role/x"), false),
            ("*", "alice@example.com".into(), false),
            ("*", "11111111-2222-3333-4444-555555555555".into(), true),
            ("*example.com", "mallory@example.com".into(), false),
            ("domain:example.com", "domain:example.com".into(), true),
            ("ec2.amazonaws.com", "ec2.amazonaws.com".into(), true),
        ];
        for (pattern, principal, trusted) in table {
            let mut c = Config::default();
            c.trust.principals = vec![pattern.into()];
            assert_eq!(
                c.is_trusted_principal(&principal),
                trusted,
                "pattern {pattern:?} × principal {principal:?}"
            );
        }
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

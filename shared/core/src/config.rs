//! Detector settings (the README's "Configuration" section), parsed once into a typed struct,
//! and the one way every function reads its environment.
//!
//! The CLI deserializes the TOML form; the functions build the same struct from environment
//! variables through [`Config::from_lookup`], and their own settings through
//! [`Environment`], so tests never touch the process environment and every bad value is a
//! [`ConfigError`] naming its variable. Credentials are held as [`Secret`]s.

use crate::model::{ResponseMode, Rule, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// How far back a chain reaches when no window is configured.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;
/// Ports whose exposure counts as an administrative opening when none are configured.
pub const DEFAULT_ADMIN_PORTS: [u16; 2] = [22, 3389];

/// Everything the detector is configured with (the CLI's TOML file, the functions' variables).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who and what counts as ours.
    #[serde(default)]
    pub trust: TrustConfig,
    /// How chains are built.
    #[serde(default)]
    pub chain: ChainConfig,
    /// Which findings alert.
    #[serde(default)]
    pub alerts: AlertConfig,
    /// The opt-in response (functions only; the CLI never acts).
    #[serde(default)]
    pub response: ResponseConfig,
}

/// The tag (AWS, Azure) or label (GCP) whose presence on a resource exempts it from response,
/// whatever its value. GCP label keys cannot hold upper case, so the name is lower-case.
pub const DEFAULT_EXEMPT_TAG: &str = "snapwatch-exempt";

/// The rules a response exists for: what their chains add can be undone exactly.
pub const RESPONDING_RULES: [Rule; 4] = [
    Rule::SnapshotPublic,
    Rule::SnapshotSharedExternal,
    Rule::SnapshotExported,
    Rule::ChainExposedRestore,
];

/// The opt-in response: a mode per rule (every rule `off` unless named) and the exempt tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Mode per rule; a rule not named is `off`.
    #[serde(default)]
    pub modes: BTreeMap<Rule, ResponseMode>,
    /// Tag / label name that exempts a resource ([`DEFAULT_EXEMPT_TAG`] unless set).
    #[serde(default = "default_exempt_tag")]
    pub exempt_tag: String,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            modes: BTreeMap::new(),
            exempt_tag: default_exempt_tag(),
        }
    }
}

fn default_exempt_tag() -> String {
    DEFAULT_EXEMPT_TAG.to_owned()
}

impl ResponseConfig {
    /// The mode of `rule` (`off` unless configured).
    pub fn mode(&self, rule: Rule) -> ResponseMode {
        self.modes.get(&rule).copied().unwrap_or_default()
    }

    /// Whether every rule is `off`: the functions then build no responder at all.
    pub fn all_off(&self) -> bool {
        self.modes.values().all(|m| *m == ResponseMode::Off)
    }

    /// Parses `rule=mode,rule=mode` (the `SNAPWATCH_RESPONSE` form). Unknown rules, rules with
    /// no response, unknown modes and a rule named twice are errors.
    pub fn parse_modes(raw: &str) -> Result<BTreeMap<Rule, ResponseMode>, String> {
        let mut modes = BTreeMap::new();
        for item in split_list(raw) {
            let (rule, mode) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not rule=mode"))?;
            let rule = Rule::from_id(rule.trim())
                .ok_or_else(|| format!("unknown rule {:?}", rule.trim()))?;
            check_responds(rule)?;
            let mode: ResponseMode = mode.parse()?;
            if modes.insert(rule, mode).is_some() {
                return Err(format!("rule {} is named twice", rule.id()));
            }
        }
        Ok(modes)
    }

    /// Checks that every rule named has a response and the exempt tag is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for rule in self.modes.keys() {
            check_responds(*rule)
                .map_err(|reason| ConfigError::new("response.modes", rule.id(), reason))?;
        }
        let tag = self.exempt_tag.trim();
        if tag.is_empty() || tag.len() > 63 {
            return Err(ConfigError::new(
                "response.exempt_tag",
                &self.exempt_tag,
                "must be 1 to 63 characters (a GCP label key)",
            ));
        }
        Ok(())
    }
}

fn check_responds(rule: Rule) -> Result<(), String> {
    if RESPONDING_RULES.contains(&rule) {
        Ok(())
    } else {
        let names: Vec<&str> = RESPONDING_RULES.iter().map(|r| r.id()).collect();
        Err(format!(
            "rule {} has no response (rules with one: {})",
            rule.id(),
            names.join(", ")
        ))
    }
}

/// Accounts and principals that are trusted.
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

/// How chains are built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Days a fact stays part of a chain.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// Ports whose exposure counts as an administrative opening.
    #[serde(default = "default_admin_ports")]
    pub admin_ports: Vec<u16>,
}

/// Which findings alert.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Findings below this severity are reported but not alerted.
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
    /// The environment variable or TOML key at fault.
    pub name: String,
    /// The value as given; [`HIDDEN_VALUE`] when the value is a credential, empty when unset.
    pub value: String,
    /// Why the value cannot be used, and what would do.
    pub reason: String,
}

/// What a [`ConfigError`] shows instead of a value that is a credential.
pub const HIDDEN_VALUE: &str = "(hidden)";

impl ConfigError {
    /// An error about `name` holding `value`.
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// An error about `name` whose value is a credential and must not be repeated.
    pub fn hidden(name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(name, HIDDEN_VALUE, reason)
    }

    /// An error about `name` being unset (or empty) where a value is needed.
    pub fn missing(name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(name, "", reason)
    }
}

/// Environment variable names shared by every function.
pub mod env {
    /// `trust.accounts`, comma-separated.
    pub const TRUSTED_ACCOUNTS: &str = "SNAPWATCH_TRUSTED_ACCOUNTS";
    /// `trust.principals`, comma-separated.
    pub const TRUSTED_PRINCIPALS: &str = "SNAPWATCH_TRUSTED_PRINCIPALS";
    /// `chain.window_days`.
    pub const WINDOW_DAYS: &str = "SNAPWATCH_WINDOW_DAYS";
    /// `chain.admin_ports`, comma-separated.
    pub const ADMIN_PORTS: &str = "SNAPWATCH_ADMIN_PORTS";
    /// `alerts.min_severity`.
    pub const MIN_SEVERITY: &str = "SNAPWATCH_MIN_SEVERITY";
    /// `response.modes`: `rule=mode,…` (`snapshot.public=enforce,chain.exposed-restore=dry-run`).
    pub const RESPONSE: &str = "SNAPWATCH_RESPONSE";
    /// `response.exempt_tag`.
    pub const RESPONSE_EXEMPT_TAG: &str = "SNAPWATCH_RESPONSE_EXEMPT_TAG";
}

impl Config {
    /// Builds the config from `lookup` (normally `std::env::var(..).ok()`); comma-separated lists.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Environment::new(lookup);
        let mut config = Config::default();
        if let Some(raw) = vars.raw(env::TRUSTED_ACCOUNTS) {
            config.trust.accounts = split_list(&raw);
        }
        if let Some(raw) = vars.raw(env::TRUSTED_PRINCIPALS) {
            config.trust.principals = split_list(&raw);
        }
        if let Some(days) = vars.parsed_as_set(env::WINDOW_DAYS, |raw| {
            raw.trim().parse::<u32>().map_err(|e| e.to_string())
        })? {
            config.chain.window_days = days;
        }
        if let Some(ports) = vars.parsed_as_set(env::ADMIN_PORTS, |raw| {
            split_list(raw)
                .iter()
                .map(|p| p.parse::<u16>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("expected comma-separated port numbers: {e}"))
        })? {
            config.chain.admin_ports = ports;
        }
        if let Some(severity) = vars.parsed_as_set(env::MIN_SEVERITY, |raw| raw.parse())? {
            config.alerts.min_severity = severity;
        }
        if let Some(modes) = vars.parsed(env::RESPONSE, ResponseConfig::parse_modes)? {
            config.response.modes = modes;
        }
        if let Some(tag) = vars.optional(env::RESPONSE_EXEMPT_TAG) {
            config.response.exempt_tag = tag;
        }
        // A value that parses but is out of range: name the variable that set it, not the key.
        config.validate().map_err(|mut e| {
            if e.name == "chain.window_days" {
                e.name = env::WINDOW_DAYS.into();
            }
            if e.name == "response.exempt_tag" {
                e.name = env::RESPONSE_EXEMPT_TAG.into();
            }
            e
        })?;
        Ok(config)
    }

    /// Checks values that parse but cannot be used (a window of 0 days, an empty account).
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
        self.response.validate()
    }

    /// The chain window in seconds.
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

/// A value that must never reach a log line: `Debug` prints `Secret(…)` and there is no
/// `Display`, so a struct holding one can derive `Debug` safely. Reading it takes
/// [`Secret::expose`], which is easy to find in a review.
///
/// Our own type rather than the `secrecy` crate: what snapwatch needs is only the redacting
/// `Debug` (the values are copied into HTTP headers anyway, so zeroing memory on drop would
/// promise more than it keeps), and the core stays at its few dependencies.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Secret<T> {
        Secret(value)
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Settings read by name from an injectable environment (a map in tests, `std::env::var` in
/// `main`): every function parses its variables through this one place, and every failure is
/// a [`ConfigError`] naming the variable. Values are trimmed; an empty value counts as unset
/// (Terraform leaves optional settings blank).
pub struct Environment<L> {
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Environment<L> {
    /// Reads through `lookup` (normally `|name| std::env::var(name).ok()`).
    pub fn new(lookup: L) -> Environment<L> {
        Environment { lookup }
    }

    /// The value exactly as set, untrimmed, empty included.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The trimmed value; `None` when unset or empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value, or an error naming `name` and saying it is required.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::missing(name, "is required"))
    }

    /// The trimmed value of a credential: it never shows in `Debug` output.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.optional(name).map(Secret::new)
    }

    /// The value through `parse`, whose error text becomes the reason; `None` when unset.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.optional(name)
            .map(|raw| parse(&raw).map_err(|reason| ConfigError::new(name, &raw, reason)))
            .transpose()
    }

    /// Like [`Environment::parsed`], but `parse` sees the value exactly as set, untrimmed and
    /// empty included: for the detector's variables, whose empty value has always meant
    /// something (an empty port list, an error for an empty number).
    pub fn parsed_as_set<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(name)
            .map(|raw| parse(&raw).map_err(|reason| ConfigError::new(name, &raw, reason)))
            .transpose()
    }

    /// A whole number within `range`; `None` when unset.
    pub fn number_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ConfigError> {
        self.parsed(name, |raw| {
            let n = raw
                .parse::<u64>()
                .map_err(|e| format!("is not a whole number: {e}"))?;
            if range.contains(&n) {
                Ok(n)
            } else {
                Err(format!(
                    "must be between {} and {}",
                    range.start(),
                    range.end()
                ))
            }
        })
    }

    /// A TCP port number; `None` when unset.
    pub fn port(&self, name: &str) -> Result<Option<u16>, ConfigError> {
        self.parsed(name, |raw| {
            raw.parse::<u16>()
                .map_err(|e| format!("is not a port number: {e}"))
        })
    }

    /// One of `choices` (`(word, value)`, matched exactly); `None` when unset. Booleans are a
    /// choice too (`[("false", false), ("true", true)]`, or `off`/`on`), so each variable keeps
    /// the words its README row documents.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        self.parsed(name, |raw| {
            choices
                .iter()
                .find(|(word, _)| *word == raw)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                    format!("expected {}", words.join(" or "))
                })
        })
    }

    /// Comma-separated items, trimmed, empty items dropped; `None` when unset.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.optional(name).map(|raw| split_list(&raw))
    }
}

/// `a, b,,c` → `["a", "b", "c"]`.
fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
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

    fn environment(pairs: &[(&str, &str)]) -> Environment<impl Fn(&str) -> Option<String>> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::new(move |k: &str| vars.get(k).cloned())
    }

    #[test]
    fn the_environment_trims_treats_empty_as_unset_and_names_the_variable() {
        let vars = environment(&[
            ("A", "  x "),
            ("EMPTY", "  "),
            ("N", "12"),
            ("BIG", "99"),
            ("WORD", "on"),
            ("LIST", " a, b,,c "),
        ]);
        assert_eq!(vars.optional("A").as_deref(), Some("x"));
        assert_eq!(vars.raw("A").as_deref(), Some("  x "));
        assert_eq!(vars.optional("EMPTY"), None);
        let err = vars.required("EMPTY").unwrap_err();
        assert_eq!(err.name, "EMPTY");
        assert!(err.to_string().contains("EMPTY"), "{err}");
        assert_eq!(vars.number_in("N", 1..=20), Ok(Some(12)));
        assert_eq!(vars.number_in("UNSET", 1..=20), Ok(None));
        let err = vars.number_in("BIG", 1..=20).unwrap_err();
        assert_eq!((err.name.as_str(), err.value.as_str()), ("BIG", "99"));
        assert!(err.reason.contains("between 1 and 20"), "{err}");
        assert_eq!(vars.number_in("A", 1..=20).unwrap_err().name, "A");
        assert_eq!(vars.port("N"), Ok(Some(12)));
        assert_eq!(
            environment(&[("P", "70000")]).port("P").unwrap_err().name,
            "P"
        );
        assert_eq!(
            vars.choice("WORD", &[("off", false), ("on", true)]),
            Ok(Some(true))
        );
        let err = vars
            .choice("A", &[("off", false), ("on", true)])
            .unwrap_err();
        assert_eq!(err.name, "A");
        assert!(err.reason.contains("off or on"), "{err}");
        assert_eq!(
            vars.list("LIST"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            vars.parsed("A", |raw| Err::<(), _>(format!("no {raw}")))
                .unwrap_err(),
            ConfigError::new("A", "x", "no x")
        );
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let vars = environment(&[("TOKEN", " s3cr3t-value ")]);
        let secret = vars.secret("TOKEN").unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        for shown in [format!("{secret:?}"), format!("{:#?}", Some(&secret))] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        let err = ConfigError::hidden("TOKEN", "is unusable");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn detector_variables_keep_their_meaning_of_an_empty_value() {
        // An empty port list means no admin ports, not the default; an empty window is an error.
        let c = Config::from_lookup(|k| (k == env::ADMIN_PORTS).then(String::new)).unwrap();
        assert!(c.chain.admin_ports.is_empty());
        let err = Config::from_lookup(|k| (k == env::WINDOW_DAYS).then(String::new)).unwrap_err();
        assert_eq!(err.name, env::WINDOW_DAYS);
    }
}

//! `snapwatch baseline --subscription ID`: the Azure `Baseline` function's listing run once from
//! a workstation, with the credentials an `az` user has, and the embedded store.
//!
//! Credentials, in the order Azure's own tools try them: a service principal from the environment
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`; the token endpoint of
//! `AZURE_AUTHORITY_HOST`, default `https://login.microsoftonline.com`), else the `az` login
//! (`az account get-access-token --resource https://management.azure.com/ -o json`).

use crate::baseline::{judge, Options, Report};
use crate::scan::StdoutSink;
use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;
use snapwatch_azure_inventory::{ArmLister, TokenSource, ARM_ENDPOINT, ARM_RESOURCE};
use snapwatch_core::config::Secret;
use snapwatch_core::engine::Detector;
use snapwatch_core::ports::StateStore;
use snapwatch_core::Config;
use snapwatch_http::{AccessToken, Failure, Token, TokenCache};
use std::time::Duration;

/// The default Microsoft Entra authority.
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Renewed this long before expiry, so no request carries a stale token.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// Where tokens for Resource Manager come from.
enum Credential {
    /// Client credentials of a service principal (the environment's).
    ServicePrincipal {
        http: reqwest::Client,
        token_url: reqwest::Url,
        client_id: String,
        client_secret: Secret,
    },
    /// The `az` CLI's login.
    AzCli,
}

/// A [`TokenSource`] over the workstation's credential, cached until shortly before expiry.
struct CliTokens {
    credential: Credential,
    cache: TokenCache<()>,
}

impl CliTokens {
    /// The service principal when the environment names one completely, else `az`.
    fn from_env(http: &reqwest::Client) -> anyhow::Result<CliTokens> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let credential = match (
            var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            var("AZURE_CLIENT_SECRET"),
        ) {
            (Some(tenant), Some(client_id), Some(secret)) => {
                anyhow::ensure!(
                    tenant
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
                    "AZURE_TENANT_ID is not a tenant id or domain"
                );
                let authority =
                    var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
                let token_url = reqwest::Url::parse(&format!(
                    "{}/{tenant}/oauth2/v2.0/token",
                    authority.trim_end_matches('/')
                ))
                .context("AZURE_AUTHORITY_HOST is not a URL")?;
                Credential::ServicePrincipal {
                    http: http.clone(),
                    token_url,
                    client_id,
                    client_secret: Secret::new(secret),
                }
            }
            (None, None, None) => Credential::AzCli,
            _ => anyhow::bail!(
                "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET must be set together (or none of them, to use the az login)"
            ),
        };
        Ok(CliTokens {
            credential,
            cache: TokenCache::new(RENEW_BEFORE),
        })
    }

    async fn fetch(&self) -> Result<Token, Failure> {
        match &self.credential {
            Credential::ServicePrincipal {
                http,
                token_url,
                client_id,
                client_secret,
            } => client_credentials(http, token_url, client_id, client_secret).await,
            Credential::AzCli => az_token().await,
        }
    }
}

impl TokenSource for CliTokens {
    async fn token(&self) -> Result<String, Failure> {
        let token = self.cache.get(&(), || self.fetch()).await?;
        Ok(token.expose().clone())
    }
}

#[derive(Deserialize)]
struct ClientCredentialsAnswer {
    access_token: String,
    expires_in: u64,
}

/// The OAuth 2.0 client-credentials grant against the Entra v2.0 token endpoint.
async fn client_credentials(
    http: &reqwest::Client,
    token_url: &reqwest::Url,
    client_id: &str,
    client_secret: &Secret,
) -> Result<Token, Failure> {
    let scope = format!("{ARM_RESOURCE}.default");
    let response = http
        .post(token_url.clone())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose().as_str()),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .map_err(|e| {
            Failure::transient("the Entra token endpoint did not answer")
                .with_source(e.without_url())
        })?;
    let status = response.status();
    if !status.is_success() {
        // The body names the Entra error (AADSTS code); it holds no secret.
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let message = format!("the Entra token endpoint answered {status}: {body}");
        return Err(match snapwatch_http::status_class(status.as_u16()) {
            snapwatch_http::Class::Transient => Failure::transient(message),
            snapwatch_http::Class::Permanent => Failure::permanent(message),
        });
    }
    let answer: ClientCredentialsAnswer = response
        .json()
        .await
        .map_err(|e| Failure::permanent("the Entra token answer is not a token").with_source(e))?;
    Ok(Token {
        value: AccessToken::new(answer.access_token),
        lifetime: Duration::from_secs(answer.expires_in),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzCliAnswer {
    access_token: String,
    /// Unix seconds (az 2.54 and later).
    #[serde(default, rename = "expires_on")]
    expires_on: Option<i64>,
}

/// The `az` login's token for Resource Manager.
async fn az_token() -> Result<Token, Failure> {
    let output = tokio::process::Command::new("az")
        .args([
            "account",
            "get-access-token",
            "--resource",
            ARM_RESOURCE,
            "-o",
            "json",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Failure::permanent(
                "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or install the az CLI and run `az login`",
            )
            .with_source(e)
        })?;
    if !output.status.success() {
        let stderr: String = String::from_utf8_lossy(&output.stderr)
            .chars()
            .take(300)
            .collect();
        return Err(Failure::permanent(format!(
            "`az account get-access-token` failed ({}): {} (run `az login`)",
            output.status,
            snapwatch_core::render::escape_line(stderr.trim())
        )));
    }
    let answer: AzCliAnswer = serde_json::from_slice(&output.stdout).map_err(|e| {
        Failure::permanent("`az account get-access-token` did not print a token").with_source(e)
    })?;
    // Older az prints only a local-time `expiresOn`: then the token is used for five minutes.
    let remaining = answer
        .expires_on
        .map(|at| at.saturating_sub(Utc::now().timestamp()))
        .unwrap_or(300);
    Ok(Token {
        value: AccessToken::new(answer.access_token),
        lifetime: Duration::from_secs(u64::try_from(remaining).unwrap_or(0)),
    })
}

/// Lists each subscription, prints what is new, records it in `store`.
pub fn run<S: StateStore>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    crate::baseline::block_on(options.format, run_async(store, config, options))
}

async fn run_async<S: StateStore>(
    store: S,
    config: Config,
    options: &Options,
) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let endpoint = options.endpoint_url.as_deref().unwrap_or(ARM_ENDPOINT);
    let endpoint = reqwest::Url::parse(endpoint)
        .with_context(|| format!("--endpoint-url {endpoint:?} is not a URL"))?;
    let lister = ArmLister::new(http.clone(), endpoint, CliTokens::from_env(&http)?);
    let detector = Detector::new(store, config);
    let sink = StdoutSink::new(options.format);
    let mut report = Report::default();
    for subscription in &options.subscriptions {
        let listing = lister
            .list_subscription(subscription, Utc::now())
            .await
            .with_context(|| {
                format!("cannot list disks, snapshots and galleries of {subscription}")
            })?;
        for rejected in &listing.rejected {
            eprintln!(
                "snapwatch: {subscription}: a listed {} element was not read ({}): {}",
                rejected.collection,
                snapwatch_core::render::escape_line(rejected.id.as_deref().unwrap_or("no id")),
                snapwatch_core::render::escape_line(&rejected.reason)
            );
        }
        judge(
            &detector,
            &sink,
            &listing.inventory,
            ("subscription", subscription),
            &mut report,
        )
        .await?;
    }
    eprintln!(
        "snapwatch: findings {} (printed {}, below min_severity {}, already reported in state {})",
        report.findings, report.printed, report.below_threshold, report.already_reported
    );
    Ok(report)
}

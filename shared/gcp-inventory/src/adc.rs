//! Application Default Credentials as `gcloud` users expect them, for the CLI: the JSON file
//! `GOOGLE_APPLICATION_CREDENTIALS` names, else gcloud's
//! `application_default_credentials.json` (`gcloud auth application-default login`), else the
//! metadata server. An `authorized_user` file's refresh token is exchanged for access tokens;
//! a `service_account` key signs an RS256 JWT assertion (ring, already in the tree via rustls).

use crate::metadata::{MetadataServer, TOKEN_EARLY_RENEWAL};
use crate::TokenSource;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use snapwatch_http::{status_class, AccessToken, Class, Failure, Token, TokenCache};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The variable naming a credentials file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// Where gcloud keeps its configuration when `CLOUDSDK_CONFIG` does not say otherwise.
const GCLOUD_CONFIG_VAR: &str = "CLOUDSDK_CONFIG";
const ADC_FILE: &str = "application_default_credentials.json";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Read-only use of Compute Engine is all the listing needs; `cloud-platform` is what user
/// credentials from `gcloud auth application-default login` carry.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why no credentials could be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdcError {
    /// The file could not be read.
    #[error("cannot read credentials file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a credentials file this client understands.
    #[error("credentials file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the secret itself).
        reason: String,
    },
}

/// Where the credentials came from, for the CLI's summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file (`GOOGLE_APPLICATION_CREDENTIALS` or gcloud's).
    File(PathBuf),
    /// The metadata server.
    MetadataServer,
}

enum Kind {
    AuthorizedUser {
        client_id: String,
        client_secret: AccessToken,
        refresh_token: AccessToken,
        token_uri: String,
    },
    ServiceAccount {
        client_email: String,
        key_id: Option<String>,
        key: Box<RsaKeyPair>,
        token_uri: String,
    },
    Metadata(MetadataServer),
}

/// Application Default Credentials: a token source for the listing.
pub struct ApplicationDefault {
    kind: Kind,
    origin: Origin,
    http: reqwest::Client,
    cache: TokenCache<()>,
}

impl std::fmt::Debug for ApplicationDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("ApplicationDefault")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ApplicationDefault {
    /// Finds credentials the way Google's client libraries do, reading variables through
    /// `lookup` and gcloud's directory under `home`.
    pub fn discover(
        lookup: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        http: reqwest::Client,
    ) -> Result<Self, AdcError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = non_empty(CREDENTIALS_VAR) {
            return Self::from_file(Path::new(path.trim()), http);
        }
        let gcloud_dir = non_empty(GCLOUD_CONFIG_VAR)
            .map(PathBuf::from)
            .or_else(|| home.map(|home| home.join(".config").join("gcloud")));
        if let Some(file) = gcloud_dir.map(|dir| dir.join(ADC_FILE)) {
            if file.is_file() {
                return Self::from_file(&file, http);
            }
        }
        let host = lookup(crate::metadata::METADATA_HOST_VAR);
        Ok(ApplicationDefault {
            kind: Kind::Metadata(MetadataServer::new(http.clone(), host.as_deref())),
            origin: Origin::MetadataServer,
            http,
            cache: TokenCache::new(TOKEN_EARLY_RENEWAL),
        })
    }

    /// Credentials from one JSON file (`authorized_user` or `service_account`).
    pub fn from_file(path: &Path, http: reqwest::Client) -> Result<Self, AdcError> {
        let text = std::fs::read_to_string(path).map_err(|source| AdcError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: String| AdcError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let file: CredentialsFile = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("not a credentials JSON file ({e})")))?;
        let required = |value: Option<String>, field: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| invalid(format!("`{field}` is missing")))
        };
        let token_uri = file
            .token_uri
            .clone()
            .filter(|uri| !uri.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        let kind = match file.kind.as_deref() {
            Some("authorized_user") => Kind::AuthorizedUser {
                client_id: required(file.client_id, "client_id")?,
                client_secret: AccessToken::new(required(file.client_secret, "client_secret")?),
                refresh_token: AccessToken::new(required(file.refresh_token, "refresh_token")?),
                token_uri,
            },
            Some("service_account") => {
                let pem = required(file.private_key, "private_key")?;
                let der = pem_body(&pem).ok_or_else(|| {
                    invalid("`private_key` is not a PEM \"PRIVATE KEY\" block".to_string())
                })?;
                let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                    invalid(format!("`private_key` is not an RSA PKCS#8 key ({e})"))
                })?;
                Kind::ServiceAccount {
                    client_email: required(file.client_email, "client_email")?,
                    key_id: file.private_key_id,
                    key: Box::new(key),
                    token_uri,
                }
            }
            other => {
                return Err(invalid(format!(
                    "type {other:?} is not supported (authorized_user or service_account)"
                )))
            }
        };
        Ok(ApplicationDefault {
            kind,
            origin: Origin::File(path.to_path_buf()),
            http,
            cache: TokenCache::new(TOKEN_EARLY_RENEWAL),
        })
    }

    /// Where the credentials came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    async fn fetch(&self) -> Result<Token, Failure> {
        let form: Vec<(&str, String)> = match &self.kind {
            Kind::Metadata(_) => unreachable_metadata()?,
            Kind::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => vec![
                ("grant_type", "refresh_token".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().clone()),
                ("refresh_token", refresh_token.expose().clone()),
            ],
            Kind::ServiceAccount {
                client_email,
                key_id,
                key,
                token_uri,
            } => vec![
                ("grant_type", JWT_BEARER.to_string()),
                (
                    "assertion",
                    assertion(client_email, key_id.as_deref(), key, token_uri)?,
                ),
            ],
        };
        let token_uri = match &self.kind {
            Kind::AuthorizedUser { token_uri, .. } | Kind::ServiceAccount { token_uri, .. } => {
                token_uri
            }
            Kind::Metadata(_) => unreachable_metadata()?,
        };
        let response = self
            .http
            .post(token_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::transient("the token endpoint is unreachable").with_source(e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::transient("the token answer was cut off").with_source(e))?;
        if !(200..300).contains(&status) {
            // The OAuth error code only (`invalid_grant` when the login expired): never the body,
            // which may echo what was sent.
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default();
            let message = format!("the token endpoint answered HTTP {status} {code}");
            return Err(match status_class(status) {
                Class::Transient => Failure::transient(message),
                Class::Permanent => Failure::permanent(message),
            });
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: u64,
        }
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| Failure::permanent("the token answer is not a token").with_source(e))?;
        Ok(Token {
            value: AccessToken::new(answer.access_token),
            lifetime: Duration::from_secs(answer.expires_in),
        })
    }
}

/// The metadata kind never reaches the token endpoint code.
fn unreachable_metadata<T>() -> Result<T, Failure> {
    Err(Failure::permanent(
        "internal: the metadata server has its own token path",
    ))
}

impl TokenSource for ApplicationDefault {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        if let Kind::Metadata(server) = &self.kind {
            return server.token().await.map(Some);
        }
        self.cache.get(&(), || self.fetch()).await.map(Some)
    }
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)?
        .split("-----END PRIVATE KEY-----")
        .next()?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

/// The signed JWT a service account trades for an access token (RFC 7523): one hour, the
/// `cloud-platform` scope, the token endpoint as audience.
fn assertion(
    client_email: &str,
    key_id: Option<&str>,
    key: &RsaKeyPair,
    token_uri: &str,
) -> Result<String, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = key_id {
        header["kid"] = serde_json::Value::String(kid.to_string());
    }
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Failure::permanent("cannot sign the service account assertion"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

//! Reading resources from Azure Resource Manager when a record lacks what the chain needs.
//!
//! Event Grid events carry no request or response body, and Activity Log records of
//! `disks/write`, `virtualMachines/write`, NIC, NSG and rule writes do not always carry one.
//! For those, [`enrich`] reads the resource's current state through the narrow
//! [`ResourceReader`] port (disk → source snapshot, VM → disks and NICs, NIC → NSG, rule → its
//! properties) and has the core read the facts from that body
//! ([`azure::facts_from_resource_body`]), the same code that reads a logged body, so the facts
//! keep the record's own identity, time and actor.

use crate::identity::{ManagedIdentity, TokenError};
use serde::Deserialize;
use serde_json::Value;
use snapwatch_core::parse::azure;
use snapwatch_core::ParsedEvent;
use snapwatch_http::Classify as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The audience of Azure AD tokens for Resource Manager.
pub const ARM_RESOURCE: &str = "https://management.azure.com/";

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Throttled, 5xx, network or token endpoint trouble: retrying may succeed.
    #[error("resource lookup unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Access denied, bad request, an answer that is not a resource: retrying will not help.
    #[error("resource lookup failed: {message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl LookupError {
    /// The variant for a failure of `class`: the one place this error is classified.
    pub(crate) fn classified(
        class: snapwatch_http::Class,
        message: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        match class {
            snapwatch_http::Class::Transient => LookupError::Unavailable { message, source },
            snapwatch_http::Class::Permanent => LookupError::Permanent { message, source },
        }
    }
}

impl LookupError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, LookupError::Unavailable { .. })
    }
}

impl From<TokenError> for LookupError {
    fn from(e: TokenError) -> Self {
        let message = "no token for Resource Manager".to_owned();
        LookupError::classified(e.class(), message, Some(Box::new(e)))
    }
}

/// Reads one resource's current ARM representation; `None` when it no longer exists.
pub trait ResourceReader: Send + Sync {
    fn read(
        &self,
        resource_id: &str,
    ) -> impl Future<Output = Result<Option<Value>, LookupError>> + Send;
}

/// [`ResourceReader`] over the ARM REST API with the function's managed identity
/// (Reader on the subscription).
#[derive(Debug, Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    /// `https://management.azure.com` (another cloud's endpoint, or a local server in tests).
    endpoint: reqwest::Url,
    /// `None` when run without a managed identity (locally): every read is refused, so a
    /// record that needs one is kept in rejects with the reason.
    identity: Option<Arc<ManagedIdentity>>,
}

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: reqwest::Url,
        identity: Arc<ManagedIdentity>,
    ) -> Self {
        ArmClient {
            http,
            endpoint,
            identity: Some(identity),
        }
    }

    /// A client with no identity to read with (the handler run outside Azure).
    pub fn without_identity(http: reqwest::Client, endpoint: reqwest::Url) -> Self {
        ArmClient {
            http,
            endpoint,
            identity: None,
        }
    }
}

/// The API version to read a resource with, by type; `None` for types we never read.
pub fn api_version(resource_id: &str) -> Option<&'static str> {
    let lower = resource_id.to_ascii_lowercase();
    let provider_path = lower.rsplit_once("/providers/")?.1;
    let mut segments = provider_path.split('/');
    let namespace = segments.next()?;
    let kind = segments.next()?;
    match (namespace, kind) {
        ("microsoft.compute", "disks" | "snapshots") => Some("2023-04-02"),
        ("microsoft.compute", "virtualmachines" | "images") => Some("2024-03-01"),
        ("microsoft.network", "networkinterfaces" | "networksecuritygroups") => Some("2023-09-01"),
        _ => None,
    }
}

impl ResourceReader for ArmClient {
    async fn read(&self, resource_id: &str) -> Result<Option<Value>, LookupError> {
        let version = api_version(resource_id).ok_or_else(|| LookupError::Permanent {
            message: format!("no known API version to read {resource_id:?}"),
            source: None,
        })?;
        if !resource_id.starts_with('/') || resource_id.contains(['?', '#']) {
            return Err(LookupError::Permanent {
                message: format!("{resource_id:?} is not an ARM resource id"),
                source: None,
            });
        }
        let base = self.endpoint.as_str().trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}{resource_id}")).map_err(|e| {
            LookupError::Permanent {
                message: format!("cannot build a Resource Manager URL for {resource_id:?}"),
                source: Some(Box::new(e)),
            }
        })?;
        url.query_pairs_mut().append_pair("api-version", version);
        let Some(identity) = &self.identity else {
            return Err(LookupError::Permanent {
                message: format!(
                    "cannot read {resource_id} from Resource Manager: no managed identity \
                     (IDENTITY_ENDPOINT and IDENTITY_HEADER are not set)"
                ),
                source: None,
            });
        };
        let token = identity.token(ARM_RESOURCE).await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| LookupError::Unavailable {
                message: "request to Resource Manager failed".into(),
                source: Some(Box::new(e)),
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let message = format!("GET {resource_id}: {status}: {text}");
            return Err(LookupError::classified(
                snapwatch_http::status_class(status.as_u16()),
                message,
                None,
            ));
        }
        let body: Value = response.json().await.map_err(|e| LookupError::Permanent {
            message: format!("Resource Manager answer for {resource_id:?} is not JSON"),
            source: Some(Box::new(e)),
        })?;
        if !body.is_object() {
            return Err(LookupError::Permanent {
                message: format!("Resource Manager answer for {resource_id:?} is not a resource"),
                source: None,
            });
        }
        Ok(Some(body))
    }
}

/// Whether `event` is a write whose facts must come from the resource body and has none.
pub fn needs_lookup(event: &ParsedEvent) -> bool {
    event.facts.is_empty() && azure::facts_come_from_body(&event.meta.name)
}

/// The resource id a record names, in whichever shape it came.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceProbe {
    resource_id: Option<Value>,
    subject: Option<String>,
    data: Option<EventGridProbe>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EventGridProbe {
    resource_uri: Option<String>,
}

fn record_resource_id(raw: &str) -> Option<String> {
    let probe: ResourceProbe = serde_json::from_str(raw).ok()?;
    let from_record = probe.resource_id.and_then(|v| match v {
        Value::String(s) => Some(s),
        Value::Object(mut o) => match o.remove("value") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    });
    from_record
        .or(probe.data.and_then(|d| d.resource_uri))
        .or(probe.subject)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Adds the facts the resource's current body states to a body-less `event` parsed from `raw`.
/// Returns the event unchanged when no lookup is needed, the resource is gone, or its body
/// states nothing the chain uses.
pub async fn enrich<R: ResourceReader>(
    reader: &R,
    raw: &str,
    event: ParsedEvent,
) -> Result<ParsedEvent, LookupError> {
    if !needs_lookup(&event) {
        return Ok(event);
    }
    let Some(resource_id) = record_resource_id(raw) else {
        return Ok(event);
    };
    let Some(body) = reader.read(&resource_id).await? else {
        tracing::info!(event_id = %event.meta.id, resource = %resource_id, "resource no longer exists; nothing to add");
        return Ok(event);
    };
    match azure::facts_from_resource_body(&event.meta.name, &resource_id, &body) {
        Ok(Some(facts)) => Ok(ParsedEvent {
            meta: event.meta,
            facts,
        }),
        Ok(None) => Ok(event),
        Err(e) => Err(LookupError::Permanent {
            message: format!(
                "the body Resource Manager returned for {resource_id:?} cannot be read"
            ),
            source: Some(Box::new(e)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_an_api_version_per_resource_type() {
        let rg = "/subscriptions/s/resourceGroups/rg/providers";
        assert_eq!(
            api_version(&format!("{rg}/Microsoft.Compute/disks/d")),
            Some("2023-04-02")
        );
        assert_eq!(
            api_version(&format!("{rg}/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM")),
            Some("2024-03-01")
        );
        assert_eq!(
            api_version(&format!(
                "{rg}/Microsoft.Network/networkSecurityGroups/n/securityRules/r"
            )),
            Some("2023-09-01")
        );
        assert_eq!(
            api_version(&format!("{rg}/Microsoft.Storage/storageAccounts/a")),
            None
        );
        assert_eq!(api_version("not an id"), None);
    }

    #[tokio::test]
    async fn without_an_identity_a_read_is_refused_for_good_naming_the_settings() {
        let client = ArmClient::without_identity(
            reqwest::Client::new(),
            reqwest::Url::parse("http://127.0.0.1:9").unwrap(),
        );
        let err = client
            .read("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d")
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("IDENTITY_ENDPOINT"), "{err}");
    }

    #[test]
    fn finds_the_resource_id_in_every_shape() {
        assert_eq!(
            record_resource_id(r#"{"resourceId":"/SUBSCRIPTIONS/S/X"}"#).as_deref(),
            Some("/SUBSCRIPTIONS/S/X")
        );
        assert_eq!(
            record_resource_id(r#"{"resourceId":{"value":"/subscriptions/s/y"}}"#).as_deref(),
            Some("/subscriptions/s/y")
        );
        assert_eq!(
            record_resource_id(
                r#"{"subject":"/subscriptions/s/a","data":{"resourceUri":"/subscriptions/s/b"}}"#
            )
            .as_deref(),
            Some("/subscriptions/s/b")
        );
        assert_eq!(record_resource_id(r#"{"subject":" "}"#), None);
        assert_eq!(record_resource_id("[1]"), None);
    }
}

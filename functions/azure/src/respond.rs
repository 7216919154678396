//! The Azure side of the opt-in response: the two narrow writes snapwatch makes on Resource
//! Manager, each after re-reading the resource it would change.
//!
//! - `snapshot.exported` → [`ArmResponder::end_snapshot_access`]: `GET` the snapshot, then
//!   `POST …/snapshots/{name}/endGetAccess` (Snapshots - Revoke Access) only while it still has
//!   an active SAS (`diskState` `ActiveSAS` / `ActiveSASFrozen`);
//! - `chain.exposed-restore` → [`ArmResponder::delete_security_rule`]: `GET` the NSG (its tags and
//!   its rules), then `DELETE …/securityRules/{rule}` (Security Rules - Delete) only if that rule
//!   still opens exactly what the chain's event opened.
//!
//! A resource tagged with the exempt tag (any value) is never changed. Both writes are
//! long-running operations: `202 Accepted` is followed by polling `Azure-AsyncOperation` (or
//! `Location`) on the Resource Manager host only, so the bearer token never leaves it. Every
//! call goes through the one retry driver of `snapwatch-http` (429 with `Retry-After`, 5xx,
//! transport failures).

use crate::arm::ARM_RESOURCE;
use crate::identity::ManagedIdentity;
use serde_json::Value;
use snapwatch_core::model::{ActionResult, ResponseMode};
use snapwatch_core::model::{Fact, PortRange, Protocol};
use snapwatch_core::parse::azure;
use snapwatch_core::ports::{Responder, ResponderError, ResponseOutcome, ResponseRequest};
use snapwatch_core::response::{Opening, Undo};
use snapwatch_http::{
    retry, retry_after_secs, status_class, Backoff, Class, Classify, Failure, RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// `Snapshots` API version (the same one the lookups and the baseline read with).
pub const SNAPSHOT_API_VERSION: &str = "2023-04-02";
/// `Network` API version for NSGs and their rules.
pub const NETWORK_API_VERSION: &str = "2023-09-01";
/// The Activity Log operation whose body states an NSG rule's openings: the same reading of a
/// rule as when the chain saw it written.
const SECURITY_RULE_WRITE: &str = "Microsoft.Network/networkSecurityGroups/securityRules/write";

/// What one response step found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The outcome.
    pub verdict: ActionResult,
    /// The call made or that would be made (`POST <id>/endGetAccess`).
    pub call: String,
    /// Why, in a sentence (what the re-read showed).
    pub reason: String,
}

/// A response call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {stop}")]
pub struct ResponseError {
    /// The call that failed.
    pub what: String,
    /// Why the retries stopped.
    pub stop: String,
    /// Transient (the action may be retried later) or permanent.
    pub class: Class,
    /// The last failure.
    #[source]
    pub source: Failure,
}

impl Classify for ResponseError {
    fn class(&self) -> Class {
        self.class
    }
}

/// How long a long-running operation is polled before the step gives up (transient).
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The pause between polls when the server names none.
    pub interval: Duration,
    /// The longest pause waited when the server asks for one (`Retry-After`).
    pub max_interval: Duration,
    /// Polls at most.
    pub max_polls: u32,
}

impl Default for Polling {
    fn default() -> Self {
        // At most about 50 s per action: inside the invocation's deadline with room for
        // several actions and the alerts.
        Polling {
            interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(5),
            max_polls: 10,
        }
    }
}

/// Resource Manager calls of the response, with the function's managed identity.
#[derive(Debug, Clone)]
pub struct ArmResponder {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    identity: Option<Arc<ManagedIdentity>>,
    retry: RetryPolicy,
    polling: Polling,
}

impl ArmResponder {
    /// A responder against `endpoint` (`https://management.azure.com`); `identity` `None`
    /// refuses every call (the handler run outside Azure), naming the settings.
    pub fn new(
        http: reqwest::Client,
        endpoint: reqwest::Url,
        identity: Option<Arc<ManagedIdentity>>,
    ) -> Self {
        ArmResponder {
            http,
            endpoint,
            identity,
            retry: RetryPolicy {
                max_attempts: 4,
                backoff: Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5)),
                max_retry_after: Duration::from_secs(30),
            },
            polling: Polling::default(),
        }
    }

    /// Another retry budget (tests shorten the waits).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Another polling budget (tests shorten the waits).
    pub fn with_polling(mut self, polling: Polling) -> Self {
        self.polling = polling;
        self
    }

    /// Ends the active SAS of snapshot (or managed disk) `snapshot_id` (a Resource Manager id,
    /// any case; the same API version serves both), unless
    /// the snapshot carries the tag `exempt` (any value; tag names compare case-insensitively).
    pub async fn end_snapshot_access(
        &self,
        snapshot_id: &str,
        exempt: &str,
        act: ResponseMode,
    ) -> Result<Step, ResponseError> {
        let call = format!("POST {snapshot_id}/endGetAccess");
        let step = |verdict, reason: String| Step {
            verdict,
            call: call.clone(),
            reason,
        };
        let Some(snapshot) = self.get(snapshot_id, SNAPSHOT_API_VERSION).await? else {
            return Ok(step(
                ActionResult::SkippedGone,
                "the snapshot no longer exists".into(),
            ));
        };
        if is_exempt(&snapshot, exempt) {
            return Ok(step(
                ActionResult::SkippedExempt,
                format!("the snapshot is tagged {exempt}"),
            ));
        }
        let disk_state = snapshot
            .pointer("/properties/diskState")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !disk_state.to_ascii_lowercase().starts_with("activesas") {
            return Ok(step(
                ActionResult::SkippedGone,
                format!("the snapshot has no active SAS any more (diskState {disk_state:?})"),
            ));
        }
        if act != ResponseMode::Enforce {
            return Ok(step(
                ActionResult::WouldDo,
                format!("the snapshot's SAS is still active (diskState {disk_state})"),
            ));
        }
        self.write(
            reqwest::Method::POST,
            snapshot_id,
            "/endGetAccess",
            SNAPSHOT_API_VERSION,
        )
        .await?;
        Ok(step(
            ActionResult::Done,
            format!("the active SAS was ended (diskState was {disk_state})"),
        ))
    }

    /// Deletes rule `rule` of NSG `nsg_id` if it still opens only what `opened` (the openings
    /// the chain's events recorded for it) states, unless the NSG carries the tag `exempt`.
    pub async fn delete_security_rule(
        &self,
        nsg_id: &str,
        rule: &str,
        opened: &[Opening],
        exempt: &str,
        act: ResponseMode,
    ) -> Result<Step, ResponseError> {
        let rule_id = format!("{nsg_id}/securityRules/{rule}");
        let call = format!("DELETE {rule_id}");
        let step = |verdict, reason: String| Step {
            verdict,
            call: call.clone(),
            reason,
        };
        let Some(nsg) = self.get(nsg_id, NETWORK_API_VERSION).await? else {
            return Ok(step(
                ActionResult::SkippedGone,
                "the network security group no longer exists".into(),
            ));
        };
        if is_exempt(&nsg, exempt) {
            return Ok(step(
                ActionResult::SkippedExempt,
                format!("the network security group is tagged {exempt}"),
            ));
        }
        let current = nsg
            .pointer("/properties/securityRules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.eq_ignore_ascii_case(rule))
            });
        let Some(current) = current else {
            return Ok(step(
                ActionResult::SkippedGone,
                "the rule no longer exists".into(),
            ));
        };
        let current_facts = azure::facts_from_resource_body(SECURITY_RULE_WRITE, &rule_id, current)
            .ok()
            .flatten()
            .unwrap_or_default();
        if !opens_only(&current_facts, opened) {
            return Ok(step(
                ActionResult::SkippedChanged,
                "the rule no longer opens what the chain's event opened: it was changed after \
                 the finding and is left as it is"
                    .into(),
            ));
        }
        if act != ResponseMode::Enforce {
            return Ok(step(
                ActionResult::WouldDo,
                "the rule still opens what the chain's event opened".into(),
            ));
        }
        self.write(reqwest::Method::DELETE, &rule_id, "", NETWORK_API_VERSION)
            .await?;
        Ok(step(
            ActionResult::Done,
            "the rule the chain's event added was deleted".into(),
        ))
    }

    /// The URL of `id` + `suffix` at `api_version` on the Resource Manager endpoint.
    fn url(
        &self,
        id: &str,
        suffix: &str,
        api_version: &str,
    ) -> Result<reqwest::Url, ResponseError> {
        let refuse = |message: String| ResponseError {
            what: format!("{id}{suffix}"),
            stop: "refused".into(),
            class: Class::Permanent,
            source: Failure::permanent(message),
        };
        if !id.starts_with("/subscriptions/") || id.contains(['?', '#']) {
            return Err(refuse(format!("{id:?} is not a Resource Manager id")));
        }
        let base = self.endpoint.as_str().trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}{id}{suffix}"))
            .map_err(|e| refuse(format!("cannot build a URL for {id:?}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    async fn token(&self) -> Result<String, Failure> {
        let Some(identity) = &self.identity else {
            return Err(Failure::permanent(
                "no managed identity (IDENTITY_ENDPOINT and IDENTITY_HEADER are not set)",
            ));
        };
        identity.token(ARM_RESOURCE).await.map_err(|e| {
            let class = e.class();
            let failure = Failure::transient("no token for Resource Manager").with_source(e);
            Failure { class, ..failure }
        })
    }

    /// `GET` through the retry driver; `None` on 404.
    async fn get(&self, id: &str, api_version: &str) -> Result<Option<Value>, ResponseError> {
        let url = self.url(id, "", api_version)?;
        let what = format!("GET {id}");
        self.retried(&what, || async {
            let response = self.send(reqwest::Method::GET, url.clone()).await?;
            let status = response.status().as_u16();
            if status == 404 {
                return Ok(None);
            }
            let response = success(response).await?;
            let body: Value = response.json().await.map_err(|e| {
                Failure::permanent("the Resource Manager answer is not JSON").with_source(e)
            })?;
            if !body.is_object() {
                return Err(Failure::permanent(
                    "the Resource Manager answer is not a resource",
                ));
            }
            Ok(Some(body))
        })
        .await
    }

    /// A write that may answer `202` and finish later: waits for its end.
    async fn write(
        &self,
        method: reqwest::Method,
        id: &str,
        suffix: &str,
        api_version: &str,
    ) -> Result<(), ResponseError> {
        let url = self.url(id, suffix, api_version)?;
        let what = format!("{method} {id}{suffix}");
        let started = self
            .retried(&what, || async {
                let response = self.send(method.clone(), url.clone()).await?;
                let response = success(response).await?;
                Ok(Pending::of(&response))
            })
            .await?;
        let Some(pending) = started else {
            return Ok(());
        };
        self.wait(&what, pending).await
    }

    /// Polls a long-running operation to its end, within [`Polling`].
    async fn wait(&self, what: &str, mut pending: Pending) -> Result<(), ResponseError> {
        let monitor = self.same_host(what, &pending.url)?;
        for _ in 0..self.polling.max_polls {
            let pause = pending
                .retry_after
                .map_or(self.polling.interval, |p| p.min(self.polling.max_interval));
            tokio::time::sleep(pause).await;
            let poll_what = format!("{what} (operation status)");
            let next = self
                .retried(&poll_what, || async {
                    let response = self.send(reqwest::Method::GET, monitor.clone()).await?;
                    let response = success(response).await?;
                    let status = response.status().as_u16();
                    let retry_after = pause_of(&response);
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    Ok((status, retry_after, body))
                })
                .await?;
            let (status, retry_after, body) = next;
            match (&pending.kind, body.get("status").and_then(Value::as_str)) {
                (Monitor::AsyncOperation, Some(state))
                    if state.eq_ignore_ascii_case("succeeded") =>
                {
                    return Ok(())
                }
                (Monitor::AsyncOperation, Some(state))
                    if state.eq_ignore_ascii_case("failed")
                        || state.eq_ignore_ascii_case("canceled") =>
                {
                    let detail = body
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no detail");
                    return Err(ResponseError {
                        what: what.to_owned(),
                        stop: format!("the operation ended {state}"),
                        class: Class::Permanent,
                        source: Failure::permanent(format!("operation {state}: {detail}")),
                    });
                }
                (Monitor::AsyncOperation, _) => {}
                // A `Location` monitor answers 202 while running and 200/204 once done.
                (Monitor::Location, _) if status != 202 => return Ok(()),
                (Monitor::Location, _) => {}
            }
            pending.retry_after = retry_after;
        }
        Err(ResponseError {
            what: what.to_owned(),
            stop: "still running".into(),
            class: Class::Transient,
            source: Failure::transient(format!(
                "the operation had not finished after {} polls",
                self.polling.max_polls
            )),
        })
    }

    /// The monitor URL, refused unless it is on the Resource Manager host: the bearer token
    /// goes nowhere else.
    fn same_host(&self, what: &str, raw: &str) -> Result<reqwest::Url, ResponseError> {
        let refuse = |message: String| ResponseError {
            what: what.to_owned(),
            stop: "refused".into(),
            class: Class::Permanent,
            source: Failure::permanent(message),
        };
        let url = reqwest::Url::parse(raw)
            .map_err(|e| refuse(format!("the operation URL is not a URL: {e}")))?;
        if url.origin() != self.endpoint.origin() {
            return Err(refuse(format!(
                "the operation URL is not on {}: not followed",
                self.endpoint.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::Response, Failure> {
        let token = self.token().await?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(30));
        if method == reqwest::Method::POST {
            // ARM wants a body (even empty) with a length on POST actions.
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        request
            .send()
            .await
            .map_err(|e| Failure::transient("request to Resource Manager failed").with_source(e))
    }

    async fn retried<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, ResponseError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        retry(&self.retry, what, None, |_| attempt())
            .await
            .map_err(|retried| ResponseError {
                what: what.to_owned(),
                stop: format!("{} after {} attempt(s)", retried.stop, retried.attempts),
                class: retried.error.class,
                source: retried.error,
            })
    }
}

/// The core's [`Responder`] port on Azure: the two Azure undos of the plan; any other action
/// (another cloud's) is refused for good.
impl Responder for ArmResponder {
    fn name(&self) -> &'static str {
        "azure"
    }

    async fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> Result<ResponseOutcome, ResponderError> {
        let action = request.action;
        // `off` never reaches a responder; anything but enforce only re-reads.
        let act = request.mode;
        let refuse = |message: String| ResponderError::Permanent {
            call: action.call(),
            target: action.target().to_owned(),
            message,
        };
        let step = match &action.undo {
            Undo::EndDiskAccess { resource } => {
                self.end_snapshot_access(resource, request.exempt_tag, act)
                    .await
            }
            Undo::DeleteNsgRule { rule, opened } => {
                let Some((nsg, name)) = split_rule_id(rule) else {
                    return Err(refuse(format!("{rule:?} is not a security rule id")));
                };
                self.delete_security_rule(nsg, name, opened, request.exempt_tag, act)
                    .await
            }
            _ => {
                return Err(refuse(
                    "not an Azure action: the Azure function cannot carry it out".into(),
                ))
            }
        };
        match step {
            Ok(step) => {
                tracing::info!(call = %step.call, result = step.verdict.as_str(), reason = %step.reason, "response step");
                Ok(ResponseOutcome::new(step.verdict, step.reason))
            }
            Err(e) => {
                let message = snapwatch_http::error_chain(&e);
                Err(match e.class {
                    Class::Transient => ResponderError::Retryable {
                        call: action.call(),
                        target: action.target().to_owned(),
                        message,
                    },
                    Class::Permanent => ResponderError::Permanent {
                        call: action.call(),
                        target: action.target().to_owned(),
                        message,
                    },
                })
            }
        }
    }
}

/// `…/networksecuritygroups/nsg/securityrules/name` → (the NSG's id, the rule's name).
fn split_rule_id(rule: &str) -> Option<(&str, &str)> {
    let at = rule.to_ascii_lowercase().rfind("/securityrules/")?;
    let nsg = rule.get(..at)?;
    let name = rule.get(at + "/securityrules/".len()..)?;
    (!nsg.is_empty() && !name.is_empty() && !name.contains('/')).then_some((nsg, name))
}

/// A long-running operation to wait for.
#[derive(Debug)]
struct Pending {
    url: String,
    kind: Monitor,
    retry_after: Option<Duration>,
}

#[derive(Debug)]
enum Monitor {
    /// `Azure-AsyncOperation`: a status body (`InProgress`, `Succeeded`, `Failed`, `Canceled`).
    AsyncOperation,
    /// `Location`: 202 while running.
    Location,
}

impl Pending {
    /// `None` when the write finished at once (200, 204, or a 202 without a monitor).
    fn of(response: &reqwest::Response) -> Option<Pending> {
        if response.status().as_u16() != 202 {
            return None;
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (url, kind) = match (header("azure-asyncoperation"), header("location")) {
            (Some(url), _) => (url, Monitor::AsyncOperation),
            (None, Some(url)) => (url, Monitor::Location),
            (None, None) => return None,
        };
        Some(Pending {
            url,
            kind,
            retry_after: pause_of(response),
        })
    }
}

fn pause_of(response: &reqwest::Response) -> Option<Duration> {
    retry_after_secs(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    )
    .map(Duration::from_secs)
}

/// The response when its status is a success; a classified failure (with the server's
/// `Retry-After` and ARM's error code) otherwise.
async fn success(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = pause_of(&response);
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let message = format!("HTTP {status}: {text}");
    let failure = match status_class(status.as_u16()) {
        Class::Transient => Failure::transient(message),
        Class::Permanent => Failure::permanent(message),
    };
    Err(match retry_after {
        Some(pause) => failure.with_retry_after(pause),
        None => failure,
    })
}

/// Whether `resource` carries the tag `exempt` (ARM tag names are case-insensitive).
fn is_exempt(resource: &Value, exempt: &str) -> bool {
    resource
        .get("tags")
        .and_then(Value::as_object)
        .is_some_and(|tags| tags.keys().any(|k| k.eq_ignore_ascii_case(exempt)))
}

/// An opening as compared: sorted ports, sorted lower-cased sources (ARM's service tags and
/// prefixes compare case-insensitively).
fn normalized(protocol: Protocol, ports: &[PortRange], sources: &[String]) -> Opening {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let mut sources: Vec<String> = sources
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    sources.sort();
    sources.dedup();
    Opening {
        protocol,
        ports,
        sources,
        target_tags: Vec::new(),
    }
}

/// Whether the rule read now (`current`, its facts) opens something, and only what the chain
/// recorded (`recorded`): a rule someone changed since (other sources, ports or protocol) is not
/// the chain's any more.
fn opens_only(current: &[Fact], recorded: &[Opening]) -> bool {
    let recorded: Vec<Opening> = recorded
        .iter()
        .map(|o| normalized(o.protocol, &o.ports, &o.sources))
        .collect();
    let current: Vec<Opening> = current
        .iter()
        .filter_map(|fact| match fact {
            Fact::IngressOpened {
                protocol,
                ports,
                sources,
                ..
            } => Some(normalized(*protocol, ports, sources)),
            _ => None,
        })
        .collect();
    !current.is_empty() && current.iter().all(|c| recorded.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapwatch_core::model::{Resource, ResourceKind};

    fn recorded(protocol: Protocol, port: u16, source: &str) -> Opening {
        Opening {
            protocol,
            ports: vec![PortRange::single(port)],
            sources: vec![source.to_owned()],
            target_tags: vec![],
        }
    }

    fn opened(protocol: Protocol, port: u16, source: &str) -> Fact {
        Fact::IngressOpened {
            group: Resource::new(ResourceKind::NetworkGroup, "/subscriptions/s/nsg"),
            protocol,
            ports: vec![PortRange::single(port)],
            sources: vec![source.to_owned()],
            target_tags: vec![],
            rule: Some("r".into()),
        }
    }

    #[test]
    fn a_rule_matches_only_while_it_opens_only_what_was_recorded() {
        let ssh = [recorded(Protocol::Tcp, 22, "Internet")];
        assert!(opens_only(&[opened(Protocol::Tcp, 22, "internet")], &ssh));
        assert!(!opens_only(
            &[opened(Protocol::Tcp, 22, "10.0.0.0/8")],
            &ssh
        ));
        assert!(!opens_only(
            &[opened(Protocol::Tcp, 2222, "Internet")],
            &ssh
        ));
        // A rule rewritten within the chain matches any version the chain wrote.
        let both = [
            recorded(Protocol::Tcp, 22, "Internet"),
            recorded(Protocol::Tcp, 3389, "Internet"),
        ];
        assert!(opens_only(
            &[opened(Protocol::Tcp, 3389, "Internet")],
            &both
        ));
        // A rule that opens nothing (turned to Deny), or nothing recorded, never matches.
        assert!(!opens_only(&[], &ssh));
        assert!(!opens_only(&[opened(Protocol::Tcp, 22, "Internet")], &[]));
    }
}

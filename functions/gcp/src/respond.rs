//! The GCP side of the opt-in response: the two narrow writes snapwatch makes on Compute Engine,
//! each after re-reading what it would change.
//!
//! - `snapshot.public` / `snapshot.shared-external` → [`ComputeResponder::remove_members`]:
//!   `getIamPolicy` (version 3, so conditional bindings are kept), drop exactly the members the
//!   chain's event added from every binding, `setIamPolicy` with the `etag` that was read. When
//!   someone else changed the policy in between, Compute Engine refuses the stale `etag` (412,
//!   or 409 `ABORTED`): the policy is read again and the removal redone on it, a bounded number
//!   of times, so their change is kept.
//! - `chain.exposed-restore` → [`ComputeResponder::disable_firewall`]: `firewalls.get`, then
//!   `firewalls.patch` `{"disabled": true}` only if the rule still opens exactly what the chain's
//!   event opened; the global operation is polled to its end. The rule is kept (disabled, not
//!   deleted), so re-enabling it is one click.
//!
//! A snapshot, image or disk carrying the exempt label (any value) is never changed. Firewall rules
//! have no labels in Compute Engine: a rule whose `description` contains the exempt name is
//! exempt. Every call goes through the one retry driver of `snapwatch-http`, with Compute
//! Engine's classification of error answers (its quota 403s are transient).

use serde_json::{json, Value};
use snapwatch_core::model::{ActionResult, PortRange, Protocol, ResponseMode};
use snapwatch_core::ports::{Responder, ResponderError, ResponseOutcome, ResponseRequest};
use snapwatch_core::response::{Opening, Undo};
use snapwatch_gcp_inventory::{classify_answer, TokenSource};
use snapwatch_http::{retry, retry_after_secs, Backoff, Class, Classify, Failure, RetryPolicy};
use std::time::Duration;

/// What one response step found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The outcome.
    pub verdict: ActionResult,
    /// The call made or that would be made.
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
    /// Why it stopped.
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

/// Compute Engine calls of the response.
pub struct ComputeResponder<T> {
    http: reqwest::Client,
    endpoint: String,
    tokens: T,
    retry: RetryPolicy,
    /// Read-modify-write rounds of a policy at most (the first included).
    max_policy_rounds: u32,
    /// Polls of a firewall patch's operation at most, and the pause between them.
    max_polls: u32,
    poll_interval: Duration,
}

impl<T: TokenSource> ComputeResponder<T> {
    /// A responder against `endpoint` (`https://compute.googleapis.com`) with `tokens`.
    pub fn new(endpoint: &str, tokens: T) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("snapwatch-gcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::permanent("building the HTTP client").with_source(e))?;
        Ok(ComputeResponder {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            tokens,
            retry: RetryPolicy {
                max_attempts: 4,
                backoff: Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5)),
                max_retry_after: Duration::from_secs(30),
            },
            max_policy_rounds: 4,
            max_polls: 15,
            poll_interval: Duration::from_secs(2),
        })
    }

    /// Another retry budget and poll pause (tests shorten the waits).
    pub fn with_waits(mut self, retry: RetryPolicy, poll_interval: Duration) -> Self {
        self.retry = retry;
        self.poll_interval = poll_interval;
        self
    }

    /// Removes `members` (as the chain's event named them: `allUsers`, `user:…`) from every
    /// binding of the IAM policy of `resource` (`projects/p/global/snapshots/s`,
    /// `…/global/images/i`, `…/zones/z/disks/d`, `…/regions/r/disks/d`), keeping everything else.
    pub async fn remove_members(
        &self,
        resource: &str,
        members: &[String],
        exempt: &str,
        act: ResponseMode,
    ) -> Result<Step, ResponseError> {
        let call = format!(
            "POST {resource}/setIamPolicy without {}",
            members.join(", ")
        );
        let step = |verdict, reason: String| Step {
            verdict,
            call: call.clone(),
            reason,
        };
        let Some(current) = self.get(&format!("GET {resource}"), resource).await? else {
            return Ok(step(
                ActionResult::SkippedGone,
                "the resource no longer exists".into(),
            ));
        };
        if current
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(|labels| labels.contains_key(exempt))
        {
            return Ok(step(
                ActionResult::SkippedExempt,
                format!("the resource is labelled {exempt}"),
            ));
        }
        let what = format!("getIamPolicy {resource}");
        let read = format!("{resource}/getIamPolicy?optionsRequestedPolicyVersion=3");
        for _round in 0..self.max_policy_rounds.max(1) {
            let Some(mut policy) = self.get(&what, &read).await? else {
                return Ok(step(
                    ActionResult::SkippedGone,
                    "the resource no longer exists".into(),
                ));
            };
            let removed = without_members(&mut policy, members);
            if removed.is_empty() {
                return Ok(step(
                    ActionResult::SkippedGone,
                    "none of the added members is in the policy any more".into(),
                ));
            }
            let reason = format!("{} still in the policy", removed.join(", "));
            if act != ResponseMode::Enforce {
                return Ok(step(ActionResult::WouldDo, reason));
            }
            let set = format!("{resource}/setIamPolicy");
            match self
                .send_json(reqwest::Method::POST, &set, &json!({ "policy": policy }))
                .await
            {
                Ok(_) => {
                    return Ok(step(
                        ActionResult::Done,
                        format!("removed {}", removed.join(", ")),
                    ))
                }
                Err(Write::Conflict) => {
                    tracing::info!(
                        resource,
                        "the IAM policy changed since it was read; reading it again"
                    );
                    continue;
                }
                Err(Write::Failed(e)) => return Err(e),
            }
        }
        Err(ResponseError {
            what: format!("setIamPolicy {resource}"),
            stop: format!(
                "the policy kept changing: {} read-modify-write rounds lost to concurrent changes",
                self.max_policy_rounds
            ),
            class: Class::Transient,
            source: Failure::transient("etag conflict on every round"),
        })
    }

    /// Disables firewall rule `firewall` (`projects/p/global/firewalls/name`) if it still opens
    /// something, and only what `opened` (the openings the chain's events recorded for it)
    /// states, unless its description names `exempt`.
    pub async fn disable_firewall(
        &self,
        firewall: &str,
        opened: &[Opening],
        exempt: &str,
        act: ResponseMode,
    ) -> Result<Step, ResponseError> {
        let call = format!("PATCH {firewall} {{\"disabled\": true}}");
        let step = |verdict, reason: String| Step {
            verdict,
            call: call.clone(),
            reason,
        };
        let Some(rule) = self.get(&format!("GET {firewall}"), firewall).await? else {
            return Ok(step(
                ActionResult::SkippedGone,
                "the firewall rule no longer exists".into(),
            ));
        };
        if rule.get("disabled").and_then(Value::as_bool) == Some(true) {
            return Ok(step(
                ActionResult::SkippedGone,
                "the firewall rule is already disabled".into(),
            ));
        }
        if rule
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| d.contains(exempt))
        {
            return Ok(step(
                ActionResult::SkippedExempt,
                format!("the rule's description names {exempt}"),
            ));
        }
        let recorded = recorded_openings(opened);
        let current = rule_openings(&rule);
        if current.is_empty() || !current.iter().all(|c| recorded.contains(c)) {
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
        let operation = match self
            .send_json(
                reqwest::Method::PATCH,
                firewall,
                &json!({ "disabled": true }),
            )
            .await
        {
            Ok(operation) => operation,
            Err(Write::Failed(e)) => return Err(e),
            Err(Write::Conflict) => {
                return Err(ResponseError {
                    what: format!("PATCH {firewall}"),
                    stop: "conflict".into(),
                    class: Class::Transient,
                    source: Failure::transient("the rule was being changed concurrently"),
                })
            }
        };
        self.wait(firewall, &operation).await?;
        Ok(step(
            ActionResult::Done,
            "the rule the chain's event added was disabled".into(),
        ))
    }

    /// Polls the global operation a patch answered with until it is `DONE`.
    async fn wait(&self, firewall: &str, operation: &Value) -> Result<(), ResponseError> {
        let what = format!("PATCH {firewall} (operation)");
        let mut operation = operation.clone();
        for poll in 0..=self.max_polls {
            if operation.get("status").and_then(Value::as_str) == Some("DONE") {
                if let Some(errors) = operation.pointer("/error/errors").and_then(Value::as_array) {
                    let detail: Vec<String> = errors
                        .iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e.get("code").and_then(Value::as_str).unwrap_or("?"),
                                e.get("message").and_then(Value::as_str).unwrap_or("")
                            )
                        })
                        .collect();
                    return Err(ResponseError {
                        what,
                        stop: "the operation failed".into(),
                        class: Class::Permanent,
                        source: Failure::permanent(detail.join("; ")),
                    });
                }
                return Ok(());
            }
            if poll == self.max_polls {
                break;
            }
            let Some(name) = operation.get("name").and_then(Value::as_str) else {
                return Err(ResponseError {
                    what,
                    stop: "unexpected answer".into(),
                    class: Class::Permanent,
                    source: Failure::permanent("the patch answered no operation name"),
                });
            };
            let Some(project) = firewall.split('/').nth(1) else {
                return Err(ResponseError {
                    what,
                    stop: "refused".into(),
                    class: Class::Permanent,
                    source: Failure::permanent("the firewall id names no project"),
                });
            };
            tokio::time::sleep(self.poll_interval).await;
            let path = format!("projects/{project}/global/operations/{name}");
            operation = self.get(&what, &path).await?.unwrap_or(Value::Null);
        }
        Err(ResponseError {
            what,
            stop: "still running".into(),
            class: Class::Transient,
            source: Failure::transient(format!(
                "the operation had not finished after {} polls",
                self.max_polls
            )),
        })
    }

    /// `GET` of `path` (under `compute/v1/`) through the retry driver; `None` on 404.
    async fn get(&self, what: &str, path: &str) -> Result<Option<Value>, ResponseError> {
        let url = self.url(what, path)?;
        retry(&self.retry, what, None, |_| async {
            let response = self.send(reqwest::Method::GET, &url, None).await?;
            if response.status().as_u16() == 404 {
                return Ok(None);
            }
            json_of(response).await.map(Some)
        })
        .await
        .map_err(|retried| ResponseError::retried(what, retried))
    }

    /// A write through the retry driver; an `etag` conflict is told apart.
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Write> {
        let what = format!("{method} {path}");
        let url = self.url(&what, path).map_err(Write::Failed)?;
        let outcome = retry(&self.retry, &what, None, |_| async {
            let response = self.send(method.clone(), &url, Some(body)).await?;
            if matches!(response.status().as_u16(), 409 | 412) {
                return Ok(None);
            }
            json_of(response).await.map(Some)
        })
        .await
        .map_err(|retried| Write::Failed(ResponseError::retried(&what, retried)))?;
        outcome.ok_or(Write::Conflict)
    }

    fn url(&self, what: &str, path: &str) -> Result<String, ResponseError> {
        // Ids come from the parser; refuse anything that could leave the resource's path.
        if !path.starts_with("projects/") || path.contains("..") || path.contains('#') {
            return Err(ResponseError {
                what: what.to_owned(),
                stop: "refused".into(),
                class: Class::Permanent,
                source: Failure::permanent(format!("{path:?} is not a Compute Engine resource")),
            });
        }
        Ok(format!("{}/compute/v1/{path}", self.endpoint))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.http.request(method, url);
        if let Some(token) = self.tokens.token().await? {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| {
            Failure::transient("Compute Engine is unreachable or timed out").with_source(e)
        })
    }
}

/// The core's [`Responder`] port on GCP: the two GCP undos of the plan; any other action
/// (another cloud's) is refused for good.
impl<T: TokenSource> Responder for ComputeResponder<T> {
    fn name(&self) -> &'static str {
        "gcp"
    }

    async fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> Result<ResponseOutcome, ResponderError> {
        let action = request.action;
        // `off` never reaches a responder; anything but enforce only re-reads.
        let act = request.mode;
        let step = match &action.undo {
            Undo::RemoveIamMembers { resource, members } => {
                self.remove_members(resource, members, request.exempt_tag, act)
                    .await
            }
            Undo::DisableFirewallRule { firewall, opened } => {
                self.disable_firewall(firewall, opened, request.exempt_tag, act)
                    .await
            }
            _ => {
                return Err(ResponderError::Permanent {
                    call: action.call(),
                    target: action.target().to_owned(),
                    message: "not a GCP action: the GCP service cannot carry it out".into(),
                })
            }
        };
        match step {
            Ok(step) => {
                tracing::info!(call = %step.call, result = step.verdict.as_str(), reason = %step.reason, "response step");
                Ok(ResponseOutcome::new(step.verdict, step.reason))
            }
            Err(e) => {
                let message = snapwatch_http::error_chain(&e);
                let (call, target) = (action.call(), action.target().to_owned());
                Err(match e.class {
                    Class::Transient => ResponderError::Retryable {
                        call,
                        target,
                        message,
                    },
                    Class::Permanent => ResponderError::Permanent {
                        call,
                        target,
                        message,
                    },
                })
            }
        }
    }
}

/// How a write ended, when not with the resource's answer.
enum Write {
    /// 409/412: the `etag` was stale.
    Conflict,
    Failed(ResponseError),
}

/// The JSON body of a success; a classified failure with the server's `Retry-After` otherwise.
async fn json_of(response: reqwest::Response) -> Result<Value, Failure> {
    let status = response.status().as_u16();
    let retry_after = retry_after_secs(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let text = response
        .text()
        .await
        .map_err(|e| Failure::transient("the Compute Engine answer was cut off").with_source(e))?;
    if !(200..300).contains(&status) {
        let failure = classify_answer(status, &text);
        return Err(match retry_after {
            Some(secs) => failure.with_retry_after(Duration::from_secs(secs)),
            None => failure,
        });
    }
    serde_json::from_str(&text)
        .map_err(|e| Failure::permanent("the Compute Engine answer is not JSON").with_source(e))
}

/// Drops `members` from every binding of `policy` (and bindings left empty); returns the
/// members that were there.
fn without_members(policy: &mut Value, members: &[String]) -> Vec<String> {
    let mut removed: Vec<String> = Vec::new();
    let Some(bindings) = policy.get_mut("bindings").and_then(Value::as_array_mut) else {
        return removed;
    };
    for binding in bindings.iter_mut() {
        let Some(list) = binding.get_mut("members").and_then(Value::as_array_mut) else {
            continue;
        };
        list.retain(|member| {
            let Some(text) = member.as_str() else {
                return true;
            };
            let added = members.iter().any(|m| m.trim() == text.trim());
            if added && !removed.iter().any(|r| r == text.trim()) {
                removed.push(text.trim().to_owned());
            }
            !added
        });
    }
    bindings.retain(|binding| {
        binding
            .get("members")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty())
    });
    removed
}

/// One opening as compared: protocol, sorted ports, sorted sources, sorted targets.
type Compared = (Protocol, Vec<(u16, u16)>, Vec<String>, Vec<String>);

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn opening(
    protocol: Protocol,
    ports: &[PortRange],
    sources: &[String],
    targets: &[String],
) -> Compared {
    let mut ports: Vec<(u16, u16)> = ports.iter().map(|p| (p.from, p.to)).collect();
    ports.sort_unstable();
    ports.dedup();
    (
        protocol,
        ports,
        sorted(sources.iter().map(|s| s.trim().to_owned()).collect()),
        sorted(targets.iter().map(|s| s.trim().to_owned()).collect()),
    )
}

fn sorted_openings(mut all: Vec<Compared>) -> Vec<Compared> {
    all.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    all.dedup();
    all
}

fn recorded_openings(opened: &[Opening]) -> Vec<Compared> {
    sorted_openings(
        opened
            .iter()
            .map(|o| opening(o.protocol, &o.ports, &o.sources, &o.target_tags))
            .collect(),
    )
}

/// What a `firewalls.get` body opens, read as the audit-log parser reads a firewall write: an
/// enabled ingress rule's allow entries from its source ranges (`0.0.0.0/0` when it names no
/// sources at all). A rule that opens nothing, or that cannot be read, reads as no openings.
fn rule_openings(rule: &Value) -> Vec<Compared> {
    let strings = |key: &str| -> Vec<String> {
        rule.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let ingress = rule
        .get("direction")
        .and_then(Value::as_str)
        .is_none_or(|d| d.eq_ignore_ascii_case("INGRESS"));
    if !ingress || rule.get("disabled").and_then(Value::as_bool) == Some(true) {
        return Vec::new();
    }
    let mut sources = strings("sourceRanges");
    if sources.is_empty() {
        if !strings("sourceTags").is_empty() || !strings("sourceServiceAccounts").is_empty() {
            return Vec::new();
        }
        sources.push("0.0.0.0/0".to_owned());
    }
    let mut targets = strings("targetTags");
    targets.extend(strings("targetServiceAccounts"));
    let mut all = Vec::new();
    for entry in rule
        .get("allowed")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(raw) = entry.get("IPProtocol").and_then(Value::as_str) else {
            continue;
        };
        let protocol = match raw.trim().to_ascii_lowercase().as_str() {
            "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            _ => Protocol::Other,
        };
        let mut ports = Vec::new();
        for port in entry
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Some(range) = port_range(port) else {
                return Vec::new();
            };
            ports.push(range);
        }
        match protocol {
            Protocol::All => ports = vec![PortRange::ALL],
            Protocol::Tcp | Protocol::Udp if ports.is_empty() => ports = vec![PortRange::ALL],
            _ => {}
        }
        all.push(opening(protocol, &ports, &sources, &targets));
    }
    sorted_openings(all)
}

fn port_range(raw: &str) -> Option<PortRange> {
    let port = |t: &str| t.trim().parse::<u16>().ok();
    match raw.split_once('-') {
        Some((from, to)) => Some(PortRange {
            from: port(from)?,
            to: port(to)?,
        }),
        None => port(raw).map(PortRange::single),
    }
}

impl ResponseError {
    fn retried(what: &str, retried: snapwatch_http::Retried<Failure>) -> Self {
        ResponseError {
            what: what.to_owned(),
            stop: format!("{} after {} attempt(s)", retried.stop, retried.attempts),
            class: retried.error.class(),
            source: retried.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_added_members_leave_the_policy() {
        let mut policy = json!({"version": 3, "etag": "BwX1", "bindings": [
            {"role": "roles/compute.storageAdmin", "members": ["allUsers", "user:ops@example.com"]},
            {"role": "roles/compute.imageUser", "members": ["allUsers"]},
            {"role": "roles/viewer", "members": ["user:x@evil.example"],
             "condition": {"title": "t", "expression": "true"}}]});
        let removed = without_members(
            &mut policy,
            &[
                "allUsers".into(),
                "user:x@evil.example".into(),
                "user:absent@x".into(),
            ],
        );
        assert_eq!(removed, ["allUsers", "user:x@evil.example"]);
        assert_eq!(
            policy,
            json!({"version": 3, "etag": "BwX1", "bindings": [
                {"role": "roles/compute.storageAdmin", "members": ["user:ops@example.com"]}]})
        );
    }

    #[test]
    fn a_rule_body_reads_as_the_parser_reads_a_firewall_write() {
        let rule = json!({"name": "open-ssh", "network": "global/networks/default",
            "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}, {"IPProtocol": "udp"}]});
        assert_eq!(
            rule_openings(&rule),
            sorted_openings(vec![
                opening(
                    Protocol::Tcp,
                    &[PortRange::single(22)],
                    &["0.0.0.0/0".into()],
                    &[]
                ),
                opening(Protocol::Udp, &[PortRange::ALL], &["0.0.0.0/0".into()], &[]),
            ])
        );
        let tagged = json!({"sourceTags": ["bastion"], "allowed": [{"IPProtocol": "tcp"}]});
        assert!(rule_openings(&tagged).is_empty());
    }
}

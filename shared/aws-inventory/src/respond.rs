//! The AWS side of the opt-in response: a [`Responder`] that carries out the core's planned
//! [`Action`]s with the same signed Query-API client the listing uses (no `aws-sdk-ec2` /
//! `aws-sdk-rds`).
//!
//! Every action re-reads first: the permission or rule the chain added must still be there (only
//! what is still there is removed; a permission someone else granted is never touched), and the
//! resource must not carry the exempt tag. Then it either calls (`enforce`) or says what it
//! would call (`dry-run`). Removing what is already gone is never attempted, so a retry or a
//! racing handler that got past the claim changes nothing twice.

use crate::client::{QueryClient, Service};
use crate::error::InventoryError;
use crate::lister::paginate;
use crate::xml::{self, DbSnapshotFamily, Grants, SecurityGroupRule};
use snapwatch_core::model::{ActionResult, Cloud, ResponseMode};
use snapwatch_core::ports::{Responder, ResponderError, ResponseOutcome, ResponseRequest};
use snapwatch_core::response::{Action, Grantees, IngressPermission, Undo};
use snapwatch_core::rules::exposed_restore::is_internet_source;

/// Executes AWS response actions in the account the function runs in.
#[derive(Debug, Clone)]
pub struct AwsResponder {
    client: QueryClient,
    account: String,
}

/// The EC2 attribute a snapshot or image permission lives in, and the calls that read and
/// change it.
struct Ec2Attribute {
    describe: &'static str,
    modify: &'static str,
    id_param: &'static str,
    attribute: &'static str,
}

const SNAPSHOT_PERMISSION: Ec2Attribute = Ec2Attribute {
    describe: "DescribeSnapshotAttribute",
    modify: "ModifySnapshotAttribute",
    id_param: "SnapshotId",
    attribute: "createVolumePermission",
};

const IMAGE_PERMISSION: Ec2Attribute = Ec2Attribute {
    describe: "DescribeImageAttribute",
    modify: "ModifyImageAttribute",
    id_param: "ImageId",
    attribute: "launchPermission",
};

impl AwsResponder {
    /// Acts through `client` in `account` (the function's own account: actions of chains
    /// logged in another account fail permanently rather than touch a look-alike resource).
    pub fn new(client: QueryClient, account: impl Into<String>) -> Self {
        AwsResponder {
            client,
            account: account.into(),
        }
    }

    async fn ec2_permission(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        attribute: &Ec2Attribute,
        id: &str,
        planned: &Grantees,
    ) -> Result<ResponseOutcome, ResponderError> {
        let read = self
            .client
            .call(
                Service::Ec2,
                region,
                attribute.describe,
                &[(attribute.id_param, id), ("Attribute", attribute.attribute)],
            )
            .await;
        let Some(body) = self.found(request, read)? else {
            return Ok(gone(format!("{id} no longer exists")));
        };
        let current = xml::ec2_permission_grants(&body, attribute.describe, attribute.attribute)
            .map_err(|reason| self.malformed(request, attribute.describe, reason))?;
        let (still, already_gone) = split_granted(planned, &current);
        if !still.public && still.accounts.is_empty() {
            return Ok(gone(format!(
                "{} no longer grants {}",
                id,
                describe_grantees(planned)
            )));
        }
        if self
            .ec2_tagged(request, region, id, request.exempt_tag)
            .await?
        {
            return Ok(exempt(id, request.exempt_tag));
        }
        let change = format!("{} {}", attribute.attribute, describe_grantees(&still));
        if request.mode != ResponseMode::Enforce {
            return Ok(would_do(request.action, &change, &already_gone));
        }
        let mut params: Vec<(String, String)> = vec![
            (attribute.id_param.into(), id.into()),
            ("Attribute".into(), attribute.attribute.into()),
            ("OperationType".into(), "remove".into()),
        ];
        if still.public {
            params.push(("UserGroup.1".into(), "all".into()));
        }
        for (n, account) in still.accounts.iter().enumerate() {
            params.push((format!("UserId.{}", n + 1), account.clone()));
        }
        self.call(request, Service::Ec2, region, attribute.modify, &params)
            .await?;
        Ok(done(&change, &already_gone))
    }

    async fn db_restore(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        arn: &str,
        identifier: &str,
        cluster: bool,
        values: &[String],
    ) -> Result<ResponseOutcome, ResponderError> {
        let (family, describe, modify, id_param) = if cluster {
            (
                DbSnapshotFamily::Cluster,
                "DescribeDBClusterSnapshotAttributes",
                "ModifyDBClusterSnapshotAttribute",
                "DBClusterSnapshotIdentifier",
            )
        } else {
            (
                DbSnapshotFamily::Instance,
                "DescribeDBSnapshotAttributes",
                "ModifyDBSnapshotAttribute",
                "DBSnapshotIdentifier",
            )
        };
        let read = self
            .client
            .call(Service::Rds, region, describe, &[(id_param, identifier)])
            .await;
        let Some(body) = self.found(request, read)? else {
            return Ok(gone(format!("{identifier} no longer exists")));
        };
        let current = xml::rds_restore_grants(&body, family)
            .map_err(|reason| self.malformed(request, describe, reason))?;
        let planned = Grantees {
            public: values.iter().any(|v| v.eq_ignore_ascii_case("all")),
            accounts: values
                .iter()
                .filter(|v| !v.eq_ignore_ascii_case("all"))
                .cloned()
                .collect(),
        };
        let (still, already_gone) = split_granted(&planned, &current);
        if !still.public && still.accounts.is_empty() {
            return Ok(gone(format!(
                "{identifier} no longer lets {} restore it",
                values.join(", ")
            )));
        }
        let tags = self
            .call(
                request,
                Service::Rds,
                region,
                "ListTagsForResource",
                &[("ResourceName".into(), arn.into())],
            )
            .await?;
        let keys = xml::rds_tag_keys(&tags)
            .map_err(|reason| self.malformed(request, "ListTagsForResource", reason))?;
        if has_tag(&keys, request.exempt_tag) {
            return Ok(exempt(identifier, request.exempt_tag));
        }
        let mut remove: Vec<String> = Vec::new();
        if still.public {
            remove.push("all".into());
        }
        remove.extend(still.accounts.iter().cloned());
        let change = format!("restore {}", remove.join(", "));
        if request.mode != ResponseMode::Enforce {
            return Ok(would_do(request.action, &change, &already_gone));
        }
        let mut params: Vec<(String, String)> = vec![
            (id_param.into(), identifier.into()),
            ("AttributeName".into(), "restore".into()),
        ];
        for (n, value) in remove.iter().enumerate() {
            params.push((
                format!("ValuesToRemove.AttributeValue.{}", n + 1),
                value.clone(),
            ));
        }
        self.call(request, Service::Rds, region, modify, &params)
            .await?;
        Ok(done(&change, &already_gone))
    }

    async fn ingress_rule(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        group_id: &str,
        rule_id: &str,
    ) -> Result<ResponseOutcome, ResponderError> {
        let read = self
            .client
            .call(
                Service::Ec2,
                region,
                "DescribeSecurityGroupRules",
                &[("SecurityGroupRuleId.1", rule_id)],
            )
            .await;
        let Some(body) = self.found(request, read)? else {
            return Ok(gone(format!("rule {rule_id} no longer exists")));
        };
        let page = xml::security_group_rules(&body)
            .map_err(|reason| self.malformed(request, "DescribeSecurityGroupRules", reason))?;
        let Some(rule) = page.items.into_iter().find(|r| r.id == rule_id) else {
            return Ok(gone(format!("rule {rule_id} no longer exists")));
        };
        if rule.is_egress || rule.group_id.as_deref().is_some_and(|g| g != group_id) {
            return Ok(changed(format!(
                "rule {rule_id} is no longer an ingress rule of {group_id}"
            )));
        }
        let source = rule.cidr.clone().unwrap_or_default();
        if !is_internet_source(&source) {
            return Ok(changed(format!(
                "rule {rule_id} was changed after the finding: it now admits {}, not the internet",
                if source.is_empty() {
                    "no address range"
                } else {
                    &source
                }
            )));
        }
        if has_tag(&rule.tag_keys, request.exempt_tag)
            || self
                .ec2_tagged(request, region, group_id, request.exempt_tag)
                .await?
        {
            return Ok(exempt(group_id, request.exempt_tag));
        }
        self.revoke(request, region, group_id, &[rule]).await
    }

    async fn ingress_permission(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        group_id: &str,
        permission: &IngressPermission,
    ) -> Result<ResponseOutcome, ResponderError> {
        const LIST: &str = "DescribeSecurityGroupRules";
        let rules = paginate(LIST, |token| async move {
            let mut params = vec![
                ("Filter.1.Name", "group-id"),
                ("Filter.1.Value.1", group_id),
            ];
            if let Some(token) = token.as_deref() {
                params.push(("NextToken", token));
            }
            let body = self
                .client
                .call(Service::Ec2, region, LIST, &params)
                .await?;
            xml::security_group_rules(&body).map_err(|reason| InventoryError::Malformed {
                action: LIST.into(),
                reason,
            })
        })
        .await;
        let rules = match rules {
            Err(error) if error.is_not_found() => {
                return Ok(gone(format!("{group_id} no longer exists")))
            }
            other => other.map_err(|e| self.failure(request, e))?,
        };
        let matching: Vec<SecurityGroupRule> = rules
            .into_iter()
            .filter(|r| {
                !r.is_egress
                    && r.group_id.as_deref().is_none_or(|g| g == group_id)
                    && same_protocol(&r.protocol, &permission.protocol)
                    && (permission.protocol == "-1"
                        || (r.from_port == i64::from(permission.from_port)
                            && r.to_port == i64::from(permission.to_port)))
                    && r.cidr
                        .as_ref()
                        .is_some_and(|c| permission.sources.contains(c))
            })
            .collect();
        if matching.is_empty() {
            return Ok(gone(format!(
                "{group_id} no longer has ingress {} {}-{} from {}",
                permission.protocol,
                permission.from_port,
                permission.to_port,
                permission.sources.join(", ")
            )));
        }
        if matching
            .iter()
            .any(|r| has_tag(&r.tag_keys, request.exempt_tag))
            || self
                .ec2_tagged(request, region, group_id, request.exempt_tag)
                .await?
        {
            return Ok(exempt(group_id, request.exempt_tag));
        }
        self.revoke(request, region, group_id, &matching).await
    }

    /// Revokes `rules` by their ids: exactly those rules, whatever else the group holds.
    async fn revoke(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<ResponseOutcome, ResponderError> {
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        let change = format!("ingress rule(s) {}", ids.join(", "));
        if request.mode != ResponseMode::Enforce {
            return Ok(would_do(request.action, &change, &[]));
        }
        let mut params: Vec<(String, String)> = vec![("GroupId".into(), group_id.into())];
        for (n, id) in ids.iter().enumerate() {
            params.push((format!("SecurityGroupRuleId.{}", n + 1), (*id).into()));
        }
        self.call(
            request,
            Service::Ec2,
            region,
            "RevokeSecurityGroupIngress",
            &params,
        )
        .await?;
        Ok(done(&change, &[]))
    }

    /// Whether the EC2 resource `id` carries the tag key `tag` (`DescribeTags`).
    async fn ec2_tagged(
        &self,
        request: &ResponseRequest<'_>,
        region: &str,
        id: &str,
        tag: &str,
    ) -> Result<bool, ResponderError> {
        let body = self
            .call(
                request,
                Service::Ec2,
                region,
                "DescribeTags",
                &[
                    ("Filter.1.Name".into(), "resource-id".into()),
                    ("Filter.1.Value.1".into(), id.into()),
                    ("Filter.2.Name".into(), "key".into()),
                    ("Filter.2.Value.1".into(), tag.into()),
                ],
            )
            .await?;
        let keys = xml::ec2_tag_keys(&body)
            .map_err(|reason| self.malformed(request, "DescribeTags", reason))?;
        Ok(has_tag(&keys, tag))
    }

    async fn call(
        &self,
        request: &ResponseRequest<'_>,
        service: Service,
        region: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, ResponderError> {
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.client
            .call(service, region, action, &params)
            .await
            .map_err(|e| self.failure(request, e))
    }

    /// The body of a read, `None` when the API says the resource is gone.
    fn found(
        &self,
        request: &ResponseRequest<'_>,
        read: Result<String, InventoryError>,
    ) -> Result<Option<String>, ResponderError> {
        match read {
            Ok(body) => Ok(Some(body)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(self.failure(request, error)),
        }
    }

    fn failure(&self, request: &ResponseRequest<'_>, error: InventoryError) -> ResponderError {
        let message = error_chain(&error);
        let (call, target) = (request.action.call(), request.action.target().to_owned());
        if error.is_retryable() {
            ResponderError::Retryable {
                call,
                target,
                message,
            }
        } else {
            ResponderError::Permanent {
                call,
                target,
                message,
            }
        }
    }

    fn malformed(
        &self,
        request: &ResponseRequest<'_>,
        action: &str,
        reason: String,
    ) -> ResponderError {
        self.failure(request, InventoryError::malformed(action, reason))
    }
}

impl Responder for AwsResponder {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn execute(
        &self,
        request: ResponseRequest<'_>,
    ) -> Result<ResponseOutcome, ResponderError> {
        let action = request.action;
        let refuse = |message: String| ResponderError::Permanent {
            call: action.call(),
            target: action.target().to_owned(),
            message,
        };
        if action.cloud != Cloud::Aws {
            return Err(refuse(format!("a {} action, not an AWS one", action.cloud)));
        }
        if action.account != self.account {
            return Err(refuse(format!(
                "the chain was logged in account {}; this function acts only in its own account {}",
                action.account, self.account
            )));
        }
        let Some(region) = action.region.as_deref() else {
            return Err(refuse("the chain's event names no region".into()));
        };
        match &action.undo {
            Undo::RemoveSnapshotPermission {
                snapshot_id,
                grantees,
            } => {
                self.ec2_permission(
                    &request,
                    region,
                    &SNAPSHOT_PERMISSION,
                    snapshot_id,
                    grantees,
                )
                .await
            }
            Undo::RemoveImageLaunchPermission { image_id, grantees } => {
                self.ec2_permission(&request, region, &IMAGE_PERMISSION, image_id, grantees)
                    .await
            }
            Undo::RemoveDbSnapshotRestore {
                snapshot_arn,
                identifier,
                cluster,
                values,
            } => {
                self.db_restore(&request, region, snapshot_arn, identifier, *cluster, values)
                    .await
            }
            Undo::RevokeIngressRule { group_id, rule_id } => {
                self.ingress_rule(&request, region, group_id, rule_id).await
            }
            Undo::RevokeIngressPermission {
                group_id,
                permission,
            } => {
                self.ingress_permission(&request, region, group_id, permission)
                    .await
            }
            Undo::RemoveIamMembers { .. }
            | Undo::DisableFirewallRule { .. }
            | Undo::EndDiskAccess { .. }
            | Undo::DeleteNsgRule { .. } => Err(refuse("not an AWS action".into())),
        }
    }
}

/// What of `planned` the resource still grants, and what it no longer does.
fn split_granted(planned: &Grantees, current: &Grants) -> (Grantees, Vec<String>) {
    let mut still = Grantees {
        public: planned.public && current.public,
        accounts: Vec::new(),
    };
    let mut gone = Vec::new();
    if planned.public && !current.public {
        gone.push("group all".to_owned());
    }
    for account in &planned.accounts {
        if current.accounts.iter().any(|a| a == account) {
            still.accounts.push(account.clone());
        } else {
            gone.push(format!("user id {account}"));
        }
    }
    (still, gone)
}

fn describe_grantees(grantees: &Grantees) -> String {
    let mut parts = Vec::new();
    if grantees.public {
        parts.push("group all".to_owned());
    }
    parts.extend(grantees.accounts.iter().map(|a| format!("user id {a}")));
    parts.join(", ")
}

/// Tag keys are case-sensitive in AWS; an exemption is honoured whatever case it was written in,
/// since wrongly exempting only withholds an automatic change.
fn has_tag(keys: &[String], tag: &str) -> bool {
    keys.iter().any(|k| k.eq_ignore_ascii_case(tag))
}

/// `-1`/`all`, `tcp`/`6`, `udp`/`17` name the same protocols.
fn same_protocol(reported: &str, planned: &str) -> bool {
    let normal = |p: &str| match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1".to_owned(),
        "6" | "tcp" => "tcp".to_owned(),
        "17" | "udp" => "udp".to_owned(),
        other => other.to_owned(),
    };
    normal(reported) == normal(planned)
}

fn gone(reason: String) -> ResponseOutcome {
    ResponseOutcome::new(ActionResult::SkippedGone, reason)
}

fn changed(reason: String) -> ResponseOutcome {
    ResponseOutcome::new(ActionResult::SkippedChanged, reason)
}

fn exempt(id: &str, tag: &str) -> ResponseOutcome {
    ResponseOutcome::new(ActionResult::SkippedExempt, format!("{id} is tagged {tag}"))
}

fn would_do(action: &Action, change: &str, already_gone: &[String]) -> ResponseOutcome {
    let mut reason = format!("would call {} to remove {change}", action.call());
    if !already_gone.is_empty() {
        reason.push_str(&format!("; already gone: {}", already_gone.join(", ")));
    }
    ResponseOutcome::new(ActionResult::WouldDo, reason)
}

fn done(change: &str, already_gone: &[String]) -> ResponseOutcome {
    let mut reason = format!("removed {change}");
    if !already_gone.is_empty() {
        reason.push_str(&format!("; already gone: {}", already_gone.join(", ")));
    }
    ResponseOutcome::new(ActionResult::Done, reason)
}

/// The error and its causes on one line (the errors carry no secrets).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

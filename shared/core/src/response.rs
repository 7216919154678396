//! The opt-in response (the README's "Response" section): from a finding and its chain's own
//! observations, the narrowest undo of what those events added, as typed [`Action`]s a
//! [`crate::ports::Responder`] executes.
//!
//! Planning is pure. It removes only what the chain's events granted or opened, and of that
//! only the part that made the finding: the public grant for `snapshot.public`, the untrusted
//! accounts or principals for `snapshot.shared-external`, the internet-facing admin or database
//! opening for `chain.exposed-restore`. A trusted actor never exempts a public exposure (the
//! rule ignores who made it public, and so does the plan). Nothing else is ever planned: no
//! instance is stopped, no data deleted, no resource re-created.

use crate::config::Config;
use crate::model::{Audience, Cloud, Fact, Finding, Observation, PortRange, Protocol, Rule};
use crate::model::{Origin, ResourceKind, ResponseMode};
use crate::rules::exposed_restore::{is_internet_source, opens_admin_port, DATABASE_PORTS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One call that undoes part of what a chain did, in the account and region it happened in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Action {
    /// The cloud the call goes to.
    pub cloud: Cloud,
    /// AWS account id / Azure subscription id / GCP project id of the chain's event.
    pub account: String,
    /// Region of the chain's event (AWS calls are regional), when the record named one.
    pub region: Option<String>,
    /// What to undo.
    pub undo: Undo,
}

/// Who an AWS snapshot or image permission removal names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grantees {
    /// Remove `group: all` (public).
    pub public: bool,
    /// Remove these account ids.
    pub accounts: Vec<String>,
}

impl Grantees {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.public {
            parts.push("group all".to_owned());
        }
        if !self.accounts.is_empty() {
            parts.push(format!("user ids {}", self.accounts.join(", ")));
        }
        parts.join(" and ")
    }
}

/// An exact EC2 ingress permission, as `RevokeSecurityGroupIngress` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IngressPermission {
    /// `tcp`, `udp` or `-1` (every protocol).
    pub protocol: String,
    /// First port (`-1` with protocol `-1`).
    pub from_port: i32,
    /// Last port (`-1` with protocol `-1`).
    pub to_port: i32,
    /// The internet sources the chain opened: IPv4 or IPv6 CIDRs.
    pub sources: Vec<String>,
}

/// One opening of a network rule as the chain's event stated it: what a responder checks the
/// rule still opens before it deletes or disables it (a rule changed since is left alone).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Opening {
    /// The protocol the rule admitted.
    pub protocol: Protocol,
    /// The ports it admitted.
    pub ports: Vec<PortRange>,
    /// Every source it admitted, as logged (not only the internet ones).
    pub sources: Vec<String>,
    /// GCP target tags / service accounts; empty for every member of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_tags: Vec<String>,
}

/// The undo itself, per cloud and resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// AWS `ec2:ModifySnapshotAttribute`, remove from `createVolumePermission`.
    RemoveSnapshotPermission {
        /// The EBS snapshot (`snap-…`).
        snapshot_id: String,
        /// Who to remove.
        grantees: Grantees,
    },
    /// AWS `ec2:ModifyImageAttribute`, remove from `launchPermission`.
    RemoveImageLaunchPermission {
        /// The AMI (`ami-…`).
        image_id: String,
        /// Who to remove.
        grantees: Grantees,
    },
    /// AWS `rds:ModifyDBSnapshotAttribute` / `rds:ModifyDBClusterSnapshotAttribute`, attribute
    /// `restore`, `valuesToRemove`.
    RemoveDbSnapshotRestore {
        /// The DB (cluster) snapshot's ARN, as the chain names it.
        snapshot_arn: String,
        /// Its identifier (the ARN's last field), as the RDS calls take it.
        identifier: String,
        /// A DB cluster snapshot (`…:cluster-snapshot:…`).
        cluster: bool,
        /// `all` and/or account ids.
        values: Vec<String>,
    },
    /// AWS `ec2:RevokeSecurityGroupIngress` by the security-group rule id EC2 returned when the
    /// chain's event created it.
    RevokeIngressRule {
        /// The security group (`sg-…`).
        group_id: String,
        /// The rule (`sgr-…`).
        rule_id: String,
    },
    /// AWS `ec2:RevokeSecurityGroupIngress` by the exact permission (older records carry no
    /// rule id).
    RevokeIngressPermission {
        /// The security group (`sg-…`).
        group_id: String,
        /// The permission to revoke.
        permission: IngressPermission,
    },
    /// GCP `setIamPolicy` on the snapshot or image, without these members (read-modify-write
    /// with the policy's `etag`), from every binding they appear in.
    RemoveIamMembers {
        /// The resource path (`projects/p/global/snapshots/s`).
        resource: String,
        /// Members to remove (`allUsers`, `user:x@example.com`…).
        members: Vec<String>,
    },
    /// GCP `compute.firewalls.patch` setting `disabled: true`.
    DisableFirewallRule {
        /// The firewall path (`projects/p/global/firewalls/name`).
        firewall: String,
        /// What the chain's events recorded the rule opening (one per allowed entry).
        opened: Vec<Opening>,
    },
    /// Azure `endGetAccess` on the snapshot or disk whose SAS the chain opened.
    EndDiskAccess {
        /// The snapshot's or disk's resource id (lower-cased).
        resource: String,
    },
    /// Azure: delete the NSG security rule the chain created.
    DeleteNsgRule {
        /// The rule's resource id (`…/networksecuritygroups/nsg/securityrules/name`).
        rule: String,
        /// What the chain's events recorded the rule opening.
        opened: Vec<Opening>,
    },
}

impl Action {
    /// The API call as `service:Operation`: what the report names and the IAM action it needs.
    pub fn call(&self) -> &'static str {
        match &self.undo {
            Undo::RemoveSnapshotPermission { .. } => "ec2:ModifySnapshotAttribute",
            Undo::RemoveImageLaunchPermission { .. } => "ec2:ModifyImageAttribute",
            Undo::RemoveDbSnapshotRestore { cluster: false, .. } => "rds:ModifyDBSnapshotAttribute",
            Undo::RemoveDbSnapshotRestore { cluster: true, .. } => {
                "rds:ModifyDBClusterSnapshotAttribute"
            }
            Undo::RevokeIngressRule { .. } | Undo::RevokeIngressPermission { .. } => {
                "ec2:RevokeSecurityGroupIngress"
            }
            Undo::RemoveIamMembers { .. } => "setIamPolicy",
            Undo::DisableFirewallRule { .. } => "compute.firewalls.patch",
            Undo::EndDiskAccess { .. } => "endGetAccess",
            Undo::DeleteNsgRule { .. } => {
                "Microsoft.Network/networkSecurityGroups/securityRules/delete"
            }
        }
    }

    /// The resource the call targets.
    pub fn target(&self) -> &str {
        match &self.undo {
            Undo::RemoveSnapshotPermission { snapshot_id, .. } => snapshot_id,
            Undo::RemoveImageLaunchPermission { image_id, .. } => image_id,
            Undo::RemoveDbSnapshotRestore { snapshot_arn, .. } => snapshot_arn,
            Undo::RevokeIngressRule { group_id, .. }
            | Undo::RevokeIngressPermission { group_id, .. } => group_id,
            Undo::RemoveIamMembers { resource, .. } => resource,
            Undo::DisableFirewallRule { firewall, .. } => firewall,
            Undo::EndDiskAccess { resource } => resource,
            Undo::DeleteNsgRule { rule, .. } => rule,
        }
    }

    /// What the call removes, in words, for the alert.
    pub fn change(&self) -> String {
        match &self.undo {
            Undo::RemoveSnapshotPermission { grantees, .. } => {
                format!("remove createVolumePermission {}", grantees.describe())
            }
            Undo::RemoveImageLaunchPermission { grantees, .. } => {
                format!("remove launchPermission {}", grantees.describe())
            }
            Undo::RemoveDbSnapshotRestore { values, .. } => {
                format!("remove restore valuesToRemove {}", values.join(", "))
            }
            Undo::RevokeIngressRule { rule_id, .. } => format!("revoke ingress rule {rule_id}"),
            Undo::RevokeIngressPermission { permission: p, .. } => format!(
                "revoke ingress {} {}-{} from {}",
                p.protocol,
                p.from_port,
                p.to_port,
                p.sources.join(", ")
            ),
            Undo::RemoveIamMembers { members, .. } => {
                format!("remove members {} from the IAM policy", members.join(", "))
            }
            Undo::DisableFirewallRule { .. } => "set the firewall rule disabled".to_owned(),
            Undo::EndDiskAccess { .. } => "end the SAS access".to_owned(),
            Undo::DeleteNsgRule { .. } => "delete the security rule".to_owned(),
        }
    }
}

/// The planned response to a finding: its actions, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The rule's mode (never `off`: an `off` rule has no plan).
    pub mode: ResponseMode,
    /// The calls to make, at most one per target and call.
    pub actions: Vec<Action>,
}

/// Plans the response to `finding` from `chain`: observations loaded for the finding's
/// resources (observations of events the finding does not list are ignored, so only what the
/// chain's own events did is undone; so are automation's and the baseline's synthetic ones).
/// `None` when the rule's mode is `off`.
pub fn plan(finding: &Finding, chain: &[Observation], config: &Config) -> Option<Plan> {
    let mode = config.response.mode(finding.rule);
    if mode == ResponseMode::Off {
        return None;
    }
    let listed: BTreeSet<&str> = finding.events.iter().map(|e| e.id.as_str()).collect();
    let mut own: Vec<&Observation> = chain
        .iter()
        .filter(|o| {
            listed.contains(o.event.id.as_str())
                && o.event.automation.is_none()
                // The baseline's synthetic events say what a listing saw, not what anyone did.
                && o.origin == Origin::Events
        })
        .collect();
    own.sort_by_cached_key(|o| (o.event.time, o.key()));
    own.dedup_by(|a, b| a.key() == b.key());
    let actions = match finding.rule {
        Rule::SnapshotPublic | Rule::SnapshotSharedExternal => plan_shares(finding, &own, config),
        Rule::SnapshotExported => plan_exports(&own),
        Rule::ChainExposedRestore => plan_openings(&own, config),
        Rule::SnapshotUsedExternally
        | Rule::SnapshotRestoredByOther
        | Rule::SnapshotUnexplained => Vec::new(),
    };
    Some(Plan { mode, actions })
}

/// Key of a merged action: calls on the same target by the same event account and region.
type Slot = (Cloud, String, Option<String>, String);

/// The public grants (`snapshot.public`) or the untrusted accounts and principals
/// (`snapshot.shared-external`) the chain's share events added, merged per resource.
fn plan_shares(finding: &Finding, own: &[&Observation], config: &Config) -> Vec<Action> {
    let public_rule = finding.rule == Rule::SnapshotPublic;
    let mut merged: BTreeMap<Slot, (ResourceKind, bool, BTreeSet<String>)> = BTreeMap::new();
    for o in own {
        let Fact::SnapshotShared { snapshot, audience } = &o.fact else {
            continue;
        };
        let account = o.event.account.as_str();
        let (public, added): (bool, Vec<String>) = match (audience, public_rule) {
            (Audience::Public, true) => (true, Vec::new()),
            (Audience::Accounts(accounts), false) => (
                false,
                accounts
                    .iter()
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !config.is_trusted_account(account, a))
                    .collect(),
            ),
            (Audience::Principals(principals), false) => (
                false,
                principals
                    .iter()
                    .filter(|p| !config.is_trusted_principal(p))
                    .cloned()
                    .collect(),
            ),
            _ => continue,
        };
        if !public && added.is_empty() {
            continue;
        }
        let slot = (
            o.event.cloud,
            account.to_owned(),
            o.event.region.clone(),
            snapshot.id.clone(),
        );
        let entry = merged
            .entry(slot)
            .or_insert((snapshot.kind, false, BTreeSet::new()));
        entry.1 |= public;
        entry.2.extend(added);
    }
    let mut actions = Vec::new();
    for ((cloud, account, region, id), (kind, public, added)) in merged {
        let added: Vec<String> = added.into_iter().collect();
        let undo = match cloud {
            Cloud::Aws => aws_share_undo(kind, id, public, added),
            Cloud::Gcp => {
                let mut members = added;
                if public {
                    // The fact keeps "public", not which public member: both are public.
                    members.insert(0, "allAuthenticatedUsers".to_owned());
                    members.insert(0, "allUsers".to_owned());
                }
                Some(Undo::RemoveIamMembers {
                    resource: id,
                    members,
                })
            }
            // Azure shares (gallery sharing) have no exact undo here yet.
            Cloud::Azure => None,
        };
        if let Some(undo) = undo {
            actions.push(Action {
                cloud,
                account,
                region,
                undo,
            });
        }
    }
    actions
}

fn aws_share_undo(
    kind: ResourceKind,
    id: String,
    public: bool,
    accounts: Vec<String>,
) -> Option<Undo> {
    let grantees = Grantees { public, accounts };
    match kind {
        ResourceKind::Snapshot => Some(Undo::RemoveSnapshotPermission {
            snapshot_id: id,
            grantees,
        }),
        ResourceKind::Image => Some(Undo::RemoveImageLaunchPermission {
            image_id: id,
            grantees,
        }),
        ResourceKind::DbSnapshot => {
            let cluster = id.contains(":cluster-snapshot:");
            let identifier = id.rsplit(':').next().unwrap_or_default().to_owned();
            if identifier.is_empty() {
                return None;
            }
            let mut values = Vec::new();
            if grantees.public {
                values.push("all".to_owned());
            }
            values.extend(grantees.accounts);
            Some(Undo::RemoveDbSnapshotRestore {
                snapshot_arn: id,
                identifier,
                cluster,
                values,
            })
        }
        _ => None,
    }
}

/// Azure SAS exports end with `endGetAccess`; AWS direct reads and RDS exports have no undo.
fn plan_exports(own: &[&Observation]) -> Vec<Action> {
    let mut actions = BTreeSet::new();
    for o in own {
        if let Fact::SnapshotExported { snapshot, method } = &o.fact {
            if o.event.cloud == Cloud::Azure && method == crate::parse::azure::SAS_EXPORT_METHOD {
                actions.insert(Action {
                    cloud: Cloud::Azure,
                    account: o.event.account.clone(),
                    region: o.event.region.clone(),
                    undo: Undo::EndDiskAccess {
                        resource: snapshot.id.clone(),
                    },
                });
            }
        }
    }
    actions.into_iter().collect()
}

/// The internet-facing admin or database openings among the chain's ingress events. A
/// database's own public-endpoint setting is never changed (that would alter the database).
fn plan_openings(own: &[&Observation], config: &Config) -> Vec<Action> {
    let is_database = own.iter().any(|o| {
        matches!(&o.fact, Fact::RestoredFrom { resource, .. } if resource.kind == ResourceKind::Database)
    });
    let mut admin = config.chain.admin_ports.clone();
    if is_database {
        admin.extend_from_slice(DATABASE_PORTS);
    }
    let mut actions = BTreeSet::new();
    // GCP and Azure rules are undone whole (deleted, disabled): one action per rule that opened
    // an admin port to the internet, carrying every opening the chain's events recorded for it,
    // so the responder can leave a rule alone that now opens anything else.
    type RuleKey = (Cloud, String, Option<String>, String);
    let mut rules: BTreeMap<RuleKey, (bool, BTreeSet<Opening>)> = BTreeMap::new();
    for o in own {
        let Fact::IngressOpened {
            group,
            protocol,
            ports,
            sources,
            target_tags,
            rule,
        } = &o.fact
        else {
            continue;
        };
        let internet: Vec<String> = sources
            .iter()
            .filter(|s| is_internet_source(s))
            .cloned()
            .collect();
        let exposes = !internet.is_empty() && opens_admin_port(*protocol, ports, &admin);
        let action = |undo| Action {
            cloud: o.event.cloud,
            account: o.event.account.clone(),
            region: o.event.region.clone(),
            undo,
        };
        match (o.event.cloud, rule.as_deref()) {
            (Cloud::Aws, _) if !exposes => {}
            (Cloud::Aws, Some(rule_id)) if rule_id.starts_with("sgr-") => {
                actions.insert(action(Undo::RevokeIngressRule {
                    group_id: group.id.clone(),
                    rule_id: rule_id.to_owned(),
                }));
            }
            (Cloud::Aws, _) => {
                for permission in exact_permissions(*protocol, ports, &internet) {
                    actions.insert(action(Undo::RevokeIngressPermission {
                        group_id: group.id.clone(),
                        permission,
                    }));
                }
            }
            (Cloud::Gcp | Cloud::Azure, Some(name)) => {
                let target = match o.event.cloud {
                    Cloud::Gcp => match gcp_project(&group.id) {
                        Some(project) => format!("projects/{project}/global/firewalls/{name}"),
                        None => continue,
                    },
                    _ => format!("{}/securityrules/{}", group.id, name.to_ascii_lowercase()),
                };
                let key = (
                    o.event.cloud,
                    o.event.account.clone(),
                    o.event.region.clone(),
                    target,
                );
                let entry = rules.entry(key).or_default();
                entry.0 |= exposes;
                entry.1.insert(Opening {
                    protocol: *protocol,
                    ports: ports.clone(),
                    sources: sources.clone(),
                    target_tags: target_tags.clone(),
                });
            }
            _ => {}
        }
    }
    for ((cloud, account, region, target), (exposes, opened)) in rules {
        if !exposes {
            continue;
        }
        let opened: Vec<Opening> = opened.into_iter().collect();
        let undo = match cloud {
            Cloud::Gcp => Undo::DisableFirewallRule {
                firewall: target,
                opened,
            },
            _ => Undo::DeleteNsgRule {
                rule: target,
                opened,
            },
        };
        actions.insert(Action {
            cloud,
            account,
            region,
            undo,
        });
    }
    actions.into_iter().collect()
}

/// The EC2 permissions an opening stated: one per port range. Protocols other than TCP, UDP
/// and "all" were not kept by the parser, so they cannot be named exactly and are left alone.
fn exact_permissions(
    protocol: Protocol,
    ports: &[PortRange],
    sources: &[String],
) -> Vec<IngressPermission> {
    let named = |protocol: &str, from: i32, to: i32| IngressPermission {
        protocol: protocol.to_owned(),
        from_port: from,
        to_port: to,
        sources: sources.to_vec(),
    };
    match protocol {
        Protocol::All => vec![named("-1", -1, -1)],
        Protocol::Tcp | Protocol::Udp => {
            let name = if protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            ports
                .iter()
                .map(|r| named(name, i32::from(r.from), i32::from(r.to)))
                .collect()
        }
        Protocol::Other => Vec::new(),
    }
}

/// The project of a GCP resource path (`projects/p/global/networks/n` → `p`).
fn gcp_project(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some("projects"), Some(project)) if !project.is_empty() => Some(project),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

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
//!
//! A grant, member or rule that someone else added again after the chain's own event (an
//! identical re-add the cloud cannot tell apart: AWS grants, GCP members and Azure rules carry
//! no author) is not planned but reported as [`Skip`]ped, naming that event: see [`plan`].

use crate::config::Config;
use crate::model::{Audience, Cloud, Fact, Finding, Observation, PortRange, Protocol, Rule};
use crate::model::{Origin, ResourceKind, ResponseMode};
use crate::rules::exposed_restore::{is_internet_source, opens_admin_port, DATABASE_PORTS};
use chrono::{DateTime, Utc};
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
    /// Undos left out because someone else re-added the same grant, member or rule after the
    /// chain's own event: reported `skipped-changed`, never executed.
    pub skipped: Vec<Skip>,
}

/// An undo the plan leaves out: what the call would have been, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The call that would have removed it.
    pub action: Action,
    /// Why it is left alone, naming the re-adding event (id, actor, time).
    pub reason: String,
}

/// A later event that added the same grant, member or rule as the chain's own event, made by
/// someone else: an event the finding does not list, automation's, or (except for a public
/// grant, which no trust exempts) a trusted principal's.
fn is_re_add_by_other(
    o: &Observation,
    listed: &BTreeSet<&str>,
    config: &Config,
    trust_counts: bool,
) -> bool {
    // The baseline's listing says a grant is there, not that anyone added it again.
    o.origin == Origin::Events
        && (!listed.contains(o.event.id.as_str())
            || o.event.automation.is_some()
            || (trust_counts && actor_trusted(o, config)))
}

fn actor_trusted(o: &Observation, config: &Config) -> bool {
    o.event
        .actor
        .as_deref()
        .is_some_and(|a| config.is_trusted_principal(a))
}

/// The time the chain itself last added a grant: of its own adds, the latest not made by a
/// trusted principal (a trusted add after the attacker's is a re-add, not the attack); when a
/// trusted principal made every one of them, the latest of all (the finding is theirs).
fn attack_time(
    adds: &[&Observation],
    config: &Config,
    trust_counts: bool,
) -> Option<DateTime<Utc>> {
    let untrusted = adds
        .iter()
        .filter(|o| !(trust_counts && actor_trusted(o, config)))
        .map(|o| o.event.time)
        .max();
    untrusted.or_else(|| adds.iter().map(|o| o.event.time).max())
}

/// The latest re-add by someone else after `after`, among `candidates`, as the skip reason.
fn re_add_reason<'a>(
    candidates: impl Iterator<Item = &'a Observation>,
    after: DateTime<Utc>,
    listed: &BTreeSet<&str>,
    config: &Config,
    trust_counts: bool,
) -> Option<String> {
    let latest = candidates
        .filter(|o| o.event.time > after && is_re_add_by_other(o, listed, config, trust_counts))
        .max_by_key(|o| (o.event.time, o.key()))?;
    let by = match (&latest.event.automation, &latest.event.actor) {
        (Some(automation), _) => format!("automation {automation}"),
        (None, Some(actor)) => actor.clone(),
        (None, None) => "an unknown principal".to_owned(),
    };
    Some(format!(
        "re-added after the chain's event by event {} ({}, {}, {}): left as they made it",
        latest.event.id,
        latest.event.name,
        by,
        latest
            .event
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
}

/// Plans the response to `finding` from `chain`: observations loaded for the finding's
/// resources (observations of events the finding does not list are never undone, so only what the
/// chain's own events did is undone; so are automation's and the baseline's synthetic ones).
///
/// A grant, member or rule that the chain holds a later event re-adding, made by someone else
/// (automation, a trusted principal except for a public grant, or an event the finding does
/// not list), is not planned but listed in [`Plan::skipped`] with that event:
/// its removal would undo their change, not the chain's. A re-add the chain does not hold (one
/// outside its window, or made by a path the detector does not consume) cannot be recognised.
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
    let later = Later {
        chain,
        listed: &listed,
        config,
    };
    let (actions, skipped) = match finding.rule {
        Rule::SnapshotPublic | Rule::SnapshotSharedExternal => plan_shares(finding, &own, &later),
        Rule::SnapshotExported => (plan_exports(&own), Vec::new()),
        Rule::ChainExposedRestore => plan_openings(&own, &later),
        Rule::SnapshotUsedExternally
        | Rule::SnapshotRestoredByOther
        | Rule::SnapshotUnexplained => (Vec::new(), Vec::new()),
    };
    Some(Plan {
        mode,
        actions,
        skipped,
    })
}

/// Key of a merged action: calls on the same target by the same event account and region.
type Slot = (Cloud, String, Option<String>, String);

/// What the re-add checks read: every observation of the chain (listed or not), the events
/// the finding lists, and the trust settings.
struct Later<'a> {
    chain: &'a [Observation],
    listed: &'a BTreeSet<&'a str>,
    config: &'a Config,
}

impl Later<'_> {
    /// Why the grant the chain's `adds` made is left alone: a later re-add by someone else.
    fn re_added<'o>(
        &self,
        adds: &[&Observation],
        candidates: impl Iterator<Item = &'o Observation>,
        trust_counts: bool,
    ) -> Option<String> {
        let after = attack_time(adds, self.config, trust_counts)?;
        re_add_reason(candidates, after, self.listed, self.config, trust_counts)
    }
}

/// One grant a share event adds: the public one, or one account or principal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    Public,
    Grantee(String),
}

/// The grants of a share the rule undoes (public for `snapshot.public`, the untrusted accounts
/// or principals for `snapshot.shared-external`), with the resource's slot and kind.
fn share_grants(
    o: &Observation,
    public_rule: bool,
    config: &Config,
) -> Option<(Slot, ResourceKind, Vec<Grant>)> {
    let Fact::SnapshotShared { snapshot, audience } = &o.fact else {
        return None;
    };
    let account = o.event.account.as_str();
    let grants: Vec<Grant> = match (audience, public_rule) {
        (Audience::Public, true) => vec![Grant::Public],
        (Audience::Accounts(accounts), false) => accounts
            .iter()
            .map(|a| a.trim())
            .filter(|a| !config.is_trusted_account(account, a))
            .map(|a| Grant::Grantee(a.to_owned()))
            .collect(),
        (Audience::Principals(principals), false) => principals
            .iter()
            .filter(|p| !config.is_trusted_principal(p))
            .map(|p| Grant::Grantee(p.clone()))
            .collect(),
        _ => return None,
    };
    if grants.is_empty() {
        return None;
    }
    let slot = (
        o.event.cloud,
        account.to_owned(),
        o.event.region.clone(),
        snapshot.id.clone(),
    );
    Some((slot, snapshot.kind, grants))
}

/// The public grants (`snapshot.public`) or the untrusted accounts and principals
/// (`snapshot.shared-external`) the chain's share events added, merged per resource; those
/// someone else re-added later are skipped, one [`Skip`] per grant.
fn plan_shares(
    finding: &Finding,
    own: &[&Observation],
    later: &Later<'_>,
) -> (Vec<Action>, Vec<Skip>) {
    let public_rule = finding.rule == Rule::SnapshotPublic;
    let config = later.config;
    type Adds<'o> = BTreeMap<Grant, Vec<&'o Observation>>;
    let mut adds: BTreeMap<Slot, (ResourceKind, Adds<'_>)> = BTreeMap::new();
    for o in own {
        let Some((slot, kind, grants)) = share_grants(o, public_rule, config) else {
            continue;
        };
        let entry = adds.entry(slot).or_insert_with(|| (kind, BTreeMap::new()));
        for grant in grants {
            entry.1.entry(grant).or_default().push(*o);
        }
    }
    // Every share the chain holds, listed or not: where re-adds are looked for.
    let mut every: BTreeMap<(Slot, Grant), Vec<&Observation>> = BTreeMap::new();
    for o in later.chain {
        if let Some((slot, _, grants)) = share_grants(o, public_rule, config) {
            for grant in grants {
                every.entry((slot.clone(), grant)).or_default().push(o);
            }
        }
    }
    let mut actions = Vec::new();
    let mut skipped = Vec::new();
    for (slot, (kind, grants)) in adds {
        let (cloud, account, region, id) = slot.clone();
        let action = |undo| Action {
            cloud,
            account: account.clone(),
            region: region.clone(),
            undo,
        };
        let mut public = false;
        let mut removed = Vec::new();
        for (grant, grant_adds) in grants {
            // No trust exempts a public grant (the rule lists a trusted principal's too), so
            // only an unlisted or automation's re-add keeps it.
            let trust_counts = grant != Grant::Public;
            let candidates = every
                .get(&(slot.clone(), grant.clone()))
                .into_iter()
                .flatten()
                .copied();
            match (later.re_added(&grant_adds, candidates, trust_counts), grant) {
                (Some(reason), grant) => {
                    let (public, grantees) = match grant {
                        Grant::Public => (true, Vec::new()),
                        Grant::Grantee(g) => (false, vec![g]),
                    };
                    if let Some(undo) = share_undo(cloud, kind, id.clone(), public, grantees) {
                        skipped.push(Skip {
                            action: action(undo),
                            reason,
                        });
                    }
                }
                (None, Grant::Public) => public = true,
                (None, Grant::Grantee(g)) => removed.push(g),
            }
        }
        if public || !removed.is_empty() {
            if let Some(undo) = share_undo(cloud, kind, id, public, removed) {
                actions.push(action(undo));
            }
        }
    }
    (actions, skipped)
}

/// The exact removal of `public` and `added` from a shared resource, per cloud.
fn share_undo(
    cloud: Cloud,
    kind: ResourceKind,
    id: String,
    public: bool,
    added: Vec<String>,
) -> Option<Undo> {
    match cloud {
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
    }
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
/// A rule (or, without a rule id, an exact permission) that someone else opened again after
/// the chain's event is skipped: deleting it would undo their change.
fn plan_openings(own: &[&Observation], later: &Later<'_>) -> (Vec<Action>, Vec<Skip>) {
    let config = later.config;
    let is_database = own.iter().any(|o| {
        matches!(&o.fact, Fact::RestoredFrom { resource, .. } if resource.kind == ResourceKind::Database)
    });
    let mut admin = config.chain.admin_ports.clone();
    if is_database {
        admin.extend_from_slice(DATABASE_PORTS);
    }
    // Each action with the chain's own events that opened what it removes.
    let mut planned: BTreeMap<Action, Vec<&Observation>> = BTreeMap::new();
    // GCP and Azure rules are undone whole (deleted, disabled): one action per rule that opened
    // an admin port to the internet, carrying every opening the chain's events recorded for it,
    // so the responder can leave a rule alone that now opens anything else.
    type RuleKey = (Cloud, String, Option<String>, String);
    let mut rules: BTreeMap<RuleKey, (bool, BTreeSet<Opening>, Vec<&Observation>)> =
        BTreeMap::new();
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
                // A rule opened again gets a new id: revoking this one never touches it.
                planned
                    .entry(action(Undo::RevokeIngressRule {
                        group_id: group.id.clone(),
                        rule_id: rule_id.to_owned(),
                    }))
                    .or_default()
                    .push(*o);
            }
            (Cloud::Aws, _) => {
                for permission in exact_permissions(*protocol, ports, &internet) {
                    planned
                        .entry(action(Undo::RevokeIngressPermission {
                            group_id: group.id.clone(),
                            permission,
                        }))
                        .or_default()
                        .push(*o);
                }
            }
            (Cloud::Gcp | Cloud::Azure, Some(_)) => {
                let Some(key) = rule_key(o) else {
                    continue;
                };
                let entry = rules.entry(key).or_default();
                entry.0 |= exposes;
                entry.1.insert(Opening {
                    protocol: *protocol,
                    ports: ports.clone(),
                    sources: sources.clone(),
                    target_tags: target_tags.clone(),
                });
                entry.2.push(*o);
            }
            _ => {}
        }
    }
    for ((cloud, account, region, target), (exposes, opened, adds)) in rules {
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
        let action = Action {
            cloud,
            account,
            region,
            undo,
        };
        planned.insert(action, adds);
    }
    let mut actions = Vec::new();
    let mut skipped = Vec::new();
    for (action, adds) in planned {
        let candidates = later.chain.iter().filter(|o| reopens(o, &action));
        match later.re_added(&adds, candidates, true) {
            Some(reason) => skipped.push(Skip { action, reason }),
            None => actions.push(action),
        }
    }
    (actions, skipped)
}

/// The GCP firewall or Azure NSG rule an ingress observation names, as its action's key.
fn rule_key(o: &Observation) -> Option<(Cloud, String, Option<String>, String)> {
    let Fact::IngressOpened {
        group,
        rule: Some(name),
        ..
    } = &o.fact
    else {
        return None;
    };
    let target = match o.event.cloud {
        Cloud::Gcp => format!(
            "projects/{}/global/firewalls/{name}",
            gcp_project(&group.id)?
        ),
        Cloud::Azure => format!("{}/securityrules/{}", group.id, name.to_ascii_lowercase()),
        Cloud::Aws => return None,
    };
    Some((
        o.event.cloud,
        o.event.account.clone(),
        o.event.region.clone(),
        target,
    ))
}

/// Whether `o` opens again what `action` removes: the same GCP or Azure rule (re-created under
/// its name), or on AWS the same exact permission from one of the same sources.
fn reopens(o: &Observation, action: &Action) -> bool {
    let Fact::IngressOpened {
        group,
        protocol,
        ports,
        sources,
        ..
    } = &o.fact
    else {
        return false;
    };
    if o.event.cloud != action.cloud || o.event.account != action.account {
        return false;
    }
    match &action.undo {
        Undo::DisableFirewallRule {
            firewall: target, ..
        }
        | Undo::DeleteNsgRule { rule: target, .. } => {
            rule_key(o).is_some_and(|(_, _, _, t)| t == *target)
        }
        Undo::RevokeIngressPermission {
            group_id,
            permission,
        } => {
            let internet: Vec<String> = sources
                .iter()
                .filter(|s| is_internet_source(s))
                .cloned()
                .collect();
            *group_id == group.id
                && exact_permissions(*protocol, ports, &internet)
                    .iter()
                    .any(|p| {
                        p.protocol == permission.protocol
                            && p.from_port == permission.from_port
                            && p.to_port == permission.to_port
                            && p.sources.iter().any(|s| permission.sources.contains(s))
                    })
        }
        _ => false,
    }
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

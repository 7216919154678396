//! The share rules: the snapshot itself was opened up or read out.
//!
//! - `snapshot.public`: made public (group all, RDS all, allUsers, allAuthenticatedUsers);
//! - `snapshot.shared-external`: shared with an account or principal outside the trusted set;
//! - `snapshot.exported`: its data read out directly by an untrusted principal;
//! - `snapshot.used-externally`: an outside account restored or copied it.
//!
//! They read the same facts of one snapshot-like anchor, so they are decided together.

use super::{actor_of, Hit, RuleContext, RuleMeta, T1537, T1578_001};
use crate::model::{Audience, Fact, Rule, Severity};
use std::collections::BTreeSet;

/// `snapshot.public`.
pub(crate) const PUBLIC: RuleMeta = RuleMeta {
    severity: Severity::Critical,
    techniques: &[T1578_001, T1537],
    description: "a snapshot, DB snapshot or image is made public (group all, RDS all, allUsers, allAuthenticatedUsers)",
    next_steps: &[
        "Remove the public permission now (ModifySnapshotAttribute remove group all / RDS valuesToRemove all / setIamPolicy without allUsers).",
        "Enable account-level block public access for snapshots and AMIs.",
        "Assume the data was copied: review what the snapshot contains and rotate secrets on it.",
        "Investigate the actor's session: other API calls, source IP, credentials used.",
    ],
};

/// `snapshot.shared-external`.
pub(crate) const SHARED_EXTERNAL: RuleMeta = RuleMeta {
    severity: Severity::High,
    techniques: &[T1578_001, T1537],
    description: "shared with an account or principal outside the trusted set",
    next_steps: &[
        "Confirm whether the receiving account is a known partner; if not, remove the share.",
        "Look for SharedSnapshotCopyInitiated / SharedSnapshotVolumeCreated evidence of use.",
        "Investigate the actor's session and credentials.",
    ],
};

/// `snapshot.exported`.
pub(crate) const EXPORTED: RuleMeta = RuleMeta {
    severity: Severity::High,
    techniques: &[T1578_001],
    description: "its data is read out directly (SAS URL, EBS direct block reads, RDS export to S3) by an untrusted principal",
    next_steps: &[
        "Revoke access (end SAS access / EndSnapshotAccess, cancel the export task).",
        "Identify where the data went (destination bucket, client IPs) and the principal's other activity.",
    ],
};

/// `snapshot.used-externally`.
pub(crate) const USED_EXTERNALLY: RuleMeta = RuleMeta {
    severity: Severity::Critical,
    techniques: &[T1578_001, T1537],
    description: "evidence that an outside account restored or copied our snapshot",
    next_steps: &[
        "Treat the snapshot's data as exfiltrated: rotate credentials and keys stored on it.",
        "Remove any remaining share and find who granted it.",
    ],
};

/// Automation that shares a snapshot only with the service's own account or agent, to do its
/// own work on it (GuardDuty Malware Protection's scan, a Google service agent). AWS Backup and
/// DLM share with the accounts a person configured, so a use after their share is still an
/// outside use.
const SELF_SHARING_AUTOMATION: &[&str] = &[
    "guardduty-malware-protection",
    crate::parse::gcp::SERVICE_AGENT_AUTOMATION,
];

/// The share rules that fire on `anchor`, each with every observation that triggers it.
pub(super) fn decide<'a>(ctx: &RuleContext<'a>, anchor: &'a str) -> Vec<Hit<'a>> {
    let mut public = Vec::new();
    let mut shared = Vec::new();
    let mut shared_with = BTreeSet::new();
    let mut exported = Vec::new();
    let mut methods = BTreeSet::new();
    let mut used = Vec::new();
    let mut used_by = BTreeSet::new();
    for o in ctx.graph.obs(anchor) {
        let own = o.event.account.as_str();
        match &o.fact {
            Fact::SnapshotShared { snapshot, audience } if snapshot.id == anchor => {
                if o.event.automation.is_some() {
                    continue;
                }
                match audience {
                    Audience::Public => public.push(o),
                    Audience::Accounts(accounts) => {
                        let outside: Vec<&String> = accounts
                            .iter()
                            .filter(|a| !ctx.config.is_trusted_account(own, a))
                            .collect();
                        if !outside.is_empty() {
                            shared_with.extend(outside.into_iter().cloned());
                            shared.push(o);
                        }
                    }
                    Audience::Principals(principals) => {
                        let outside: Vec<&String> = principals
                            .iter()
                            .filter(|p| !ctx.config.is_trusted_principal(p))
                            .collect();
                        if !outside.is_empty() {
                            shared_with.extend(outside.into_iter().cloned());
                            shared.push(o);
                        }
                    }
                }
            }
            Fact::SnapshotExported { snapshot, method }
                if snapshot.id == anchor
                    && o.event.automation.is_none()
                    && !ctx.actor_trusted(o) =>
            {
                methods.insert(method.clone());
                exported.push(o);
            }
            // The other account's use is the signal, whoever it was; only a use that the
            // chain shows a managed service itself granted (and no person) is the service's
            // own work.
            Fact::UsedExternally { snapshot, account }
                if snapshot.id == anchor
                    && !ctx.config.is_trusted_account(own, account)
                    && !granted_only_by_automation(
                        ctx,
                        anchor,
                        account,
                        o.event.actor.as_deref(),
                    ) =>
            {
                used_by.insert(account.clone());
                used.push(o);
            }
            _ => {}
        }
    }
    let mut hits = Vec::new();
    if public.is_empty() && shared.is_empty() && exported.is_empty() && used.is_empty() {
        return hits;
    }
    let (root, context) = ctx.graph.lineage(anchor);
    let what = ctx.graph.describe(anchor);
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    if !public.is_empty() {
        hits.push(Hit {
            rule: Rule::SnapshotPublic,
            anchor,
            root: Some(root.clone()),
            summary: format!(
                "{} made {what} public ({}); anyone can copy or restore its data.",
                actor_of(public[0]),
                public[0].event.name
            ),
            title: format!("{what} made public"),
            triggers: public,
            context: context.clone(),
            instance_involved: false,
        });
    }
    if !shared.is_empty() {
        hits.push(Hit {
            rule: Rule::SnapshotSharedExternal,
            anchor,
            root: Some(root.clone()),
            title: format!("{what} shared outside the trusted accounts"),
            summary: format!(
                "{} shared {what} with {} ({}); they can restore it in their own account.",
                actor_of(shared[0]),
                join(&shared_with),
                shared[0].event.name
            ),
            triggers: shared,
            context: context.clone(),
            instance_involved: false,
        });
    }
    if !exported.is_empty() {
        hits.push(Hit {
            rule: Rule::SnapshotExported,
            anchor,
            root: Some(root.clone()),
            title: format!("{what} data read out directly"),
            summary: format!(
                "{} read {what}'s data out via {} ({} call(s)).",
                actor_of(exported[0]),
                join(&methods),
                exported.len()
            ),
            triggers: exported,
            context: context.clone(),
            instance_involved: false,
        });
    }
    if !used.is_empty() {
        hits.push(Hit {
            rule: Rule::SnapshotUsedExternally,
            anchor,
            root: Some(root),
            title: format!("{what} used by an outside account"),
            summary: format!(
                "Account(s) {} restored or copied {what} ({}).",
                join(&used_by),
                used[0].event.name
            ),
            triggers: used,
            context,
            instance_involved: false,
        });
    }
    hits
}

/// Whether the shares in the chain that let `account` (or the principal `user` acting for
/// it) use `anchor` were all made by a service sharing with itself: GuardDuty Malware
/// Protection sharing its scan snapshot with its own account, a Google service agent granting
/// itself a disk. False when a person (or automation a person configures, such as DLM) shared
/// with it, made the snapshot public, or nobody in the state shared with it at all.
fn granted_only_by_automation(
    ctx: &RuleContext<'_>,
    anchor: &str,
    account: &str,
    user: Option<&str>,
) -> bool {
    let mut by_automation = false;
    for o in ctx.graph.obs(anchor) {
        if let Fact::SnapshotShared { snapshot, audience } = &o.fact {
            if snapshot.id == anchor && audience_admits(audience, account, user) {
                let self_sharing = o
                    .event
                    .automation
                    .as_deref()
                    .is_some_and(|label| SELF_SHARING_AUTOMATION.contains(&label));
                if !self_sharing {
                    return false;
                }
                by_automation = true;
            }
        }
    }
    by_automation
}

/// Whether a share's audience lets `account` (AWS account id, GCP project) or the principal
/// `user` use the snapshot: it is public, names the account, names the principal (GCP members
/// are `type:email`), or names a service account of that project.
pub(crate) fn audience_admits(audience: &Audience, account: &str, user: Option<&str>) -> bool {
    match audience {
        Audience::Public => true,
        Audience::Accounts(accounts) => accounts.iter().any(|a| a.trim() == account),
        Audience::Principals(principals) => principals.iter().any(|p| {
            let email = p.split_once(':').map_or(p.as_str(), |(_, email)| email);
            user.is_some_and(|u| email.eq_ignore_ascii_case(u))
                || email.rsplit_once('@').is_some_and(|(_, domain)| {
                    domain.eq_ignore_ascii_case(&format!("{account}.iam.gserviceaccount.com"))
                })
        }),
    }
}

//! `snapshot.restored-by-other`: a snapshot-like resource restored by a principal other than the
//! one that created it, within the window.

use super::{actor_of, Hit, RuleContext, RuleMeta, T1578_001};
use crate::model::{Fact, Observation, ResourceKind, Rule, Severity};

/// `snapshot.restored-by-other`.
pub(crate) const META: RuleMeta = RuleMeta {
    severity: Severity::Medium,
    techniques: &[T1578_001],
    description: "restored by a principal other than the one that created it, within the window",
    next_steps: &[
        "Confirm the restore with its creator and the restoring principal.",
        "Check what the restored resource is attached to and who can reach it.",
    ],
};

/// Fires on a snapshot-like `anchor` when a principal that created none of it restored it, not
/// as automation, not trusted, within the window of one of its creations.
pub(super) fn decide<'a>(ctx: &RuleContext<'a>, anchor: &'a str) -> Option<Hit<'a>> {
    if !ctx
        .graph
        .kind_of(anchor)
        .is_some_and(ResourceKind::is_snapshot_like)
    {
        return None;
    }
    let window = ctx.config.window_secs();
    let creators: Vec<&Observation> = ctx
        .graph
        .obs(anchor)
        .iter()
        .filter(|o| {
            matches!(&o.fact,
                Fact::SnapshotCreated { snapshot, .. } | Fact::SnapshotCopied { snapshot, .. } if snapshot.id == anchor)
                || matches!(&o.fact, Fact::ImageRegistered { image, .. } if image.id == anchor)
        })
        .filter(|o| o.event.actor.is_some())
        .collect();
    if creators.is_empty() {
        return None;
    }
    let restores: Vec<&Observation> = ctx
        .graph
        .obs(anchor)
        .iter()
        .filter(|o| matches!(&o.fact, Fact::RestoredFrom { snapshot, .. } if snapshot.id == anchor))
        .filter(|o| o.event.automation.is_none() && !ctx.actor_trusted(o))
        .filter(|o| {
            let Some(actor) = o.event.actor.as_deref() else {
                return false;
            };
            creators
                .iter()
                .all(|c| c.event.actor.as_deref() != Some(actor))
                && creators
                    .iter()
                    .any(|c| (o.event.time - c.event.time).num_seconds().abs() <= window)
        })
        .collect();
    if restores.is_empty() {
        return None;
    }
    let (root, context) = ctx.graph.lineage(anchor);
    let what = ctx.graph.describe(anchor);
    let instance_involved = restores.iter().any(|o| {
        matches!(&o.fact, Fact::RestoredFrom { resource, .. } if resource.kind == ResourceKind::Instance)
    });
    Some(Hit {
        rule: Rule::SnapshotRestoredByOther,
        anchor,
        root: Some(root),
        title: format!("{what} restored by someone other than its creator"),
        summary: format!(
            "{} restored {what}, which {} created ({}).",
            actor_of(restores[0]),
            actor_of(creators[0]),
            restores[0].event.name
        ),
        triggers: restores,
        context,
        instance_involved,
    })
}

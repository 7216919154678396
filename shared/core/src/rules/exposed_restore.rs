//! `chain.exposed-restore`: an instance runs on a disk restored from a snapshot, or a database is
//! restored from a backup, and it is opened to the internet (an admin or database port, or made
//! publicly accessible), in either order, within the window. The network predicates that decide
//! "opened to the internet" live here too: no other rule asks.

use super::{actor_of, Hit, RuleContext, RuleMeta, T1578_001, T1578_002};
use crate::model::{Fact, Observation, PortRange, Protocol, ResourceKind, Rule, Severity};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// `chain.exposed-restore`.
pub(crate) const META: RuleMeta = RuleMeta {
    severity: Severity::Critical,
    techniques: &[T1578_001, T1578_002],
    description: "an instance runs on a disk restored from a snapshot, or a database is restored from a backup, and it is opened to the internet (an admin or database port, or made publicly accessible), in either order, within the window",
    next_steps: &[
        "Isolate the instance: revoke the opening ingress rule or move it to a quarantine group.",
        "Snapshot the instance for forensics before terminating it.",
        "Trace the restored snapshot's origin and who launched the instance; rotate secrets it held.",
    ],
};

/// Listener ports of the managed database engines (SQL Server, Oracle, MySQL/MariaDB,
/// PostgreSQL, Redshift, Db2): an opening of one of them on a database's network group exposes
/// the database as an admin port exposes an instance.
pub const DATABASE_PORTS: &[u16] = &[1433, 1521, 3306, 5432, 5439, 50000];

/// An exposed restore is one chain: the snapshot's origin, the restore, the instance's
/// network membership and the opening. It fires only when all of them fit in one window of
/// their own times, as they would have been held together had the events arrived live.
pub(super) fn decide<'a>(ctx: &RuleContext<'a>, anchor: &'a str) -> Option<Hit<'a>> {
    if !matches!(
        ctx.graph.kind_of(anchor),
        Some(ResourceKind::Instance | ResourceKind::Database)
    ) {
        return None;
    }
    // Cheap test first: with no time limit at all, nothing fires on most anchors.
    let unbounded = between(ctx, anchor, i64::MIN, i64::MAX)?;
    // Any chain that fits in a window starts at one of the observations the unbounded
    // evaluation used; try those starts in time order and keep the first that fires.
    let window = ctx.config.window_secs();
    let mut starts: Vec<i64> = unbounded
        .triggers
        .iter()
        .chain(unbounded.context.iter())
        .map(|o| o.event.time.timestamp())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .find_map(|start| between(ctx, anchor, start, start.saturating_add(window)))
}

/// The exposed-restore chain of `anchor` using only observations between `from` and `to`
/// (unix seconds, inclusive).
fn between<'a>(ctx: &RuleContext<'a>, anchor: &'a str, from: i64, to: i64) -> Option<Hit<'a>> {
    let g = ctx.graph;
    let inside = |o: &Observation| (from..=to).contains(&o.event.time.timestamp());
    // Restores of this instance from a watched snapshot-like resource: directly (boot disk
    // built from it) or through a disk restored from it and attached.
    let mut restores: Vec<(&Observation, Option<&Observation>, &str)> = Vec::new();
    for o in g.obs(anchor).iter().filter(|o| inside(o)) {
        match &o.fact {
            Fact::RestoredFrom { resource, snapshot } if resource.id == anchor => {
                restores.push((o, None, snapshot.id.as_str()));
            }
            Fact::Uses { instance, disk } if instance.id == anchor => {
                for d in g.obs(&disk.id).iter().filter(|d| inside(d)) {
                    if let Fact::RestoredFrom { resource, snapshot } = &d.fact {
                        if resource.id == disk.id {
                            restores.push((d, Some(o), snapshot.id.as_str()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // An instance launched from an image nobody in the state made (a marketplace AMI) is no
    // chain of ours. A database is only ever restored from a backup holding someone's data,
    // and RDS automated snapshots and point-in-time backups leave no creation event.
    let is_database = ctx.graph.kind_of(anchor) == Some(ResourceKind::Database);
    restores.retain(|(r, _, snap)| {
        r.event.automation.is_none() && (is_database || g.origin_obs(snap).any(&inside))
    });
    if restores.is_empty() {
        return None;
    }
    // Network groups the instance is in (directly, or through its NICs), with its tags.
    let mut memberships: Vec<&Observation> = Vec::new();
    let mut tags: BTreeSet<&str> = BTreeSet::new();
    let mut groups: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![anchor];
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        for o in g.member_obs(node).filter(|o| inside(o)) {
            if let Fact::NetworkMember {
                member,
                group,
                tags: t,
            } = &o.fact
            {
                if member.id == node {
                    memberships.push(o);
                    tags.extend(t.iter().map(String::as_str));
                    groups.push(group.id.as_str());
                    stack.push(group.id.as_str());
                }
            }
        }
    }
    // Behind a database's network group only its listener is reachable: its database port
    // counts as the admin port.
    let mut admin = ctx.config.chain.admin_ports.clone();
    if is_database {
        admin.extend_from_slice(DATABASE_PORTS);
    }
    let admin = &admin;
    let mut openings: Vec<&Observation> = g
        .obs(anchor)
        .iter()
        .filter(|o| {
            inside(o)
                && matches!(&o.fact, Fact::PublicEndpoint { resource, sources, .. }
                if resource.id == anchor
                    && (sources.is_empty() || sources.iter().any(|s| is_internet_source(s))))
                && o.event.automation.is_none()
        })
        .collect();
    for group in &groups {
        for o in g.opening_obs(group).filter(|o| inside(o)) {
            if let Fact::IngressOpened {
                group: gr,
                protocol,
                ports,
                sources,
                target_tags,
                ..
            } = &o.fact
            {
                if gr.id == *group
                    && o.event.automation.is_none()
                    && sources.iter().any(|s| is_internet_source(s))
                    && opens_admin_port(*protocol, ports, admin)
                    && (target_tags.is_empty()
                        || target_tags.iter().any(|t| tags.contains(t.as_str())))
                {
                    openings.push(o);
                }
            }
        }
    }
    let window = ctx.config.window_secs();
    let within = |r: &Observation, i: &Observation| {
        (r.event.time - i.event.time).num_seconds().abs() <= window
    };
    let restores: Vec<_> = restores
        .into_iter()
        .filter(|(r, _, _)| openings.iter().any(|i| within(r, i)))
        .collect();
    let openings: Vec<&Observation> = openings
        .into_iter()
        .filter(|i| restores.iter().any(|(r, _, _)| within(r, i)))
        .collect();
    if restores.is_empty() || openings.is_empty() {
        return None;
    }
    let mut context: Vec<&Observation> = memberships;
    let mut roots = BTreeSet::new();
    for (r, uses, snap) in &restores {
        context.push(r);
        if let Some(u) = uses {
            context.push(u);
        }
        let (root, lineage) = ctx.graph.lineage(snap);
        roots.insert(root);
        context.extend(lineage);
    }
    // The restore itself may be the opening (RDS `publiclyAccessible` at restore time).
    context.retain(|c| !openings.iter().any(|o| o.key() == c.key()));
    let mut triggers: Vec<&Observation> = restores.iter().map(|(r, _, _)| *r).collect();
    triggers.extend(openings.iter().copied());
    let what = ctx.graph.describe(anchor);
    let root = roots.into_iter().next();
    let ports = describe_openings(&openings);
    let verb = if is_database {
        "was restored from"
    } else {
        "runs on a restore of"
    };
    Some(Hit {
        rule: Rule::ChainExposedRestore,
        anchor,
        title: format!("{what} restored from a snapshot and opened to the internet"),
        summary: format!(
            "{what} {verb} {} ({} by {}), and {} opened {ports} to the internet ({}).",
            root.as_deref().unwrap_or("a snapshot"),
            restores[0].0.event.name,
            actor_of(restores[0].0),
            actor_of(openings[0]),
            openings[0].event.name,
        ),
        root,
        triggers,
        context,
        instance_involved: true,
    })
}

/// The openings as a summary lists them: `port 22, ports 3389-3390, its endpoint (…)`.
fn describe_openings(openings: &[&Observation]) -> String {
    let mut parts = BTreeSet::new();
    for o in openings {
        if let Fact::PublicEndpoint { setting, .. } = &o.fact {
            parts.insert(format!("its endpoint ({setting})"));
        }
        if let Fact::IngressOpened {
            protocol, ports, ..
        } = &o.fact
        {
            match protocol {
                Protocol::All => {
                    parts.insert("all ports".to_string());
                }
                _ => {
                    for r in ports {
                        parts.insert(if r.is_all() {
                            "all ports".to_string()
                        } else if r.from == r.to {
                            format!("port {}", r.from)
                        } else {
                            format!("ports {}-{}", r.from, r.to)
                        });
                    }
                }
            }
        }
    }
    parts.into_iter().collect::<Vec<_>>().join(", ")
}

/// Whether an ingress source is the internet: `*`/`Internet`/`Any`, or a CIDR whose prefix is
/// so short it spans public address space (`0.0.0.0/0`, `::/0`, `0.0.0.0/1`…). Decided on the
/// parsed prefix length, never on the string `0.0.0.0/0`.
pub fn is_internet_source(source: &str) -> bool {
    let s = source.trim();
    if ["*", "internet", "any", "0.0.0.0", "::"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
    {
        return true;
    }
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(prefix)) = (addr.trim().parse::<IpAddr>(), prefix.trim().parse::<u8>())
    else {
        return false;
    };
    match addr {
        IpAddr::V4(v4) => {
            prefix == 0
                || (prefix <= 8 && !v4.is_private() && !v4.is_loopback() && v4.octets()[0] != 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            prefix == 0 || (prefix <= 16 && !unique_local && !link_local && !v6.is_loopback())
        }
    }
}

/// Whether an ingress rule reaches an admin port (or every port).
pub fn opens_admin_port(protocol: Protocol, ports: &[PortRange], admin: &[u16]) -> bool {
    match protocol {
        Protocol::All => true,
        Protocol::Tcp | Protocol::Udp => ports
            .iter()
            .any(|r| r.is_all() || admin.iter().any(|p| r.contains(*p))),
        Protocol::Other => false,
    }
}

//! Builders the engine's test modules share: the instant every chain starts at, resources, events
//! and the rules of a list of findings. Each module keeps only the builders its own cases need.

use crate::model::{Cloud, EventMeta, Fact, Finding, ParsedEvent, Resource, ResourceKind};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// The account every test event happens in.
pub(super) const OWN: &str = "111122223333";
/// A principal of that account acting as the attacker.
pub(super) const MALLORY: &str = "arn:aws:iam::111122223333:user/mallory";

/// The instant the test chains start at.
pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// A resource of `kind` with id `id`.
pub(super) fn r(kind: ResourceKind, id: &str) -> Resource {
    Resource::new(kind, id)
}

/// An event in `region` of the own account, `minutes` after [`t0`], from a fixed source address.
pub(super) fn ev_in(
    region: &str,
    id: &str,
    name: &str,
    minutes: i64,
    actor: &str,
    facts: Vec<Fact>,
) -> ParsedEvent {
    ParsedEvent {
        meta: EventMeta {
            id: id.into(),
            name: name.into(),
            time: t0() + Duration::minutes(minutes),
            actor: Some(actor.into()),
            source_ip: Some("198.51.100.7".into()),
            cloud: Cloud::Aws,
            account: OWN.into(),
            region: Some(region.into()),
            automation: None,
        },
        facts,
    }
}

/// The event as a known automation (a backup plan, a service) made it.
pub(super) fn automated(mut e: ParsedEvent, label: &str) -> ParsedEvent {
    e.meta.automation = Some(label.into());
    e
}

/// The rule of each finding, in order.
pub(super) fn rules_of(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.id()).collect()
}

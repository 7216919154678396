//! Finding assembly: provenance from the observations' origin, and the report order.

use super::*;
use crate::engine::Detector;
use crate::memory::MemoryStore;
use crate::ports::{ResourceFacts, StateStore, StoredFact};
use crate::Config;
use pollster::block_on;

/// A baseline exposure of `snap-1` as the version before `Origin` stored it: no origin field,
/// only the id prefix said where it came from.
const OLD_BASELINE_BODY: &str = r#"{"event":{"id":"snapwatch-baseline:snap-1:0011223344556677","name":"DescribeSnapshotAttribute","time":"2026-11-02T09:00:00Z","cloud":"aws","account":"123456789012","region":"eu-west-1"},"index":0,"fact":{"fact":"snapshot_shared","snapshot":{"kind":"snapshot","id":"snap-1"},"audience":{"type":"public"}}}"#;

#[test]
fn a_chain_an_older_version_stored_from_the_baseline_is_still_found_by_the_baseline() {
    let at: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().expect("time");
    let store = MemoryStore::new();
    let stored = ResourceFacts {
        resource: "snap-1".into(),
        facts: vec![StoredFact {
            key: "snapwatch-baseline:snap-1:0011223344556677#0".into(),
            expires_at: at.timestamp() + 86_400,
            body: OLD_BASELINE_BODY.into(),
        }],
    };
    block_on(store.add_facts(&[stored])).expect("store");
    let detector = Detector::new(store, Config::default());
    let findings = block_on(detector.evaluate(&["snap-1".to_string()], at)).expect("evaluates");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::SnapshotPublic);
    assert_eq!(findings[0].found_by, FoundBy::Baseline);
}

#[test]
fn findings_of_one_moment_are_ordered_by_rule_id_as_text() {
    let at: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().expect("time");
    let finding = |rule: Rule| Finding {
        id: finding_id(rule, Cloud::Aws, "snap-1"),
        rule,
        severity: rule.severity(),
        cloud: Cloud::Aws,
        account: "123456789012".into(),
        region: None,
        snapshot: "snap-1".into(),
        resources: vec![],
        actors: vec![],
        techniques: vec![],
        events: vec![],
        first_seen: at,
        last_seen: at,
        title: String::new(),
        summary: String::new(),
        next_steps: vec![],
        found_by: FoundBy::Events,
        response: None,
    };
    // Catalogue order puts snapshot.public first; the report has always sorted the ids as text.
    let mut findings = vec![
        finding(Rule::SnapshotPublic),
        finding(Rule::ChainExposedRestore),
    ];
    sort_findings(&mut findings);
    let order: Vec<&str> = findings.iter().map(|f| f.rule.id()).collect();
    assert_eq!(order, ["chain.exposed-restore", "snapshot.public"]);
}

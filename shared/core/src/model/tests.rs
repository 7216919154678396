//! The typed values that are persisted or published: observation provenance in the stores, rule
//! ids in the finding JSON.

use super::*;

/// A baseline exposure exactly as the version before `Origin` wrote it into every store.
const OLD_BASELINE_OBSERVATION: &str = r#"{"event":{"id":"snapwatch-baseline:snap-1:0011223344556677","name":"DescribeSnapshotAttribute","time":"2026-11-02T09:00:00Z","cloud":"aws","account":"123456789012","region":"eu-west-1"},"index":0,"fact":{"fact":"snapshot_shared","snapshot":{"kind":"snapshot","id":"snap-1"},"audience":{"type":"public"}}}"#;

/// A received event's fact as the same version wrote it.
const OLD_EVENT_OBSERVATION: &str = r#"{"event":{"id":"3f2a9c1e-0000-4000-8000-000000000001","name":"ModifySnapshotAttribute","time":"2026-11-02T09:00:00Z","actor":"arn:aws:iam::123456789012:user/mallory","cloud":"aws","account":"123456789012","region":"eu-west-1"},"index":0,"fact":{"fact":"snapshot_shared","snapshot":{"kind":"snapshot","id":"snap-1"},"audience":{"type":"public"}}}"#;

#[test]
fn observations_stored_before_origins_existed_keep_their_provenance() {
    let baseline: Observation = serde_json::from_str(OLD_BASELINE_OBSERVATION).expect("decodes");
    assert_eq!(baseline.origin, Origin::Baseline);
    let event: Observation = serde_json::from_str(OLD_EVENT_OBSERVATION).expect("decodes");
    assert_eq!(event.origin, Origin::Events);
}

#[test]
fn received_observations_are_stored_as_before_and_baseline_ones_say_so() {
    let event: Observation = serde_json::from_str(OLD_EVENT_OBSERVATION).expect("decodes");
    assert_eq!(
        serde_json::to_string(&event).expect("encodes"),
        OLD_EVENT_OBSERVATION,
        "an event's stored body is byte for byte what earlier versions wrote"
    );

    let mut baseline: Observation =
        serde_json::from_str(OLD_BASELINE_OBSERVATION).expect("decodes");
    // The origin field, not the id, is what a new body is read by.
    baseline.event.id = "some-other-id".into();
    let body = serde_json::to_string(&baseline).expect("encodes");
    assert!(body.ends_with(r#","origin":"baseline"}"#), "{body}");
    let back: Observation = serde_json::from_str(&body).expect("decodes");
    assert_eq!(back, baseline);
}

#[test]
fn rules_are_published_under_their_string_ids() {
    for rule in Rule::ALL {
        let json = serde_json::to_string(&rule).expect("encodes");
        assert_eq!(json, format!("\"{}\"", rule.id()));
        assert_eq!(serde_json::from_str::<Rule>(&json).expect("decodes"), rule);
        assert_eq!(rule.to_string(), rule.id());
    }
    assert_eq!(
        serde_json::to_string(&Rule::ChainExposedRestore).expect("encodes"),
        r#""chain.exposed-restore""#
    );
    let unknown = serde_json::from_str::<Rule>(r#""snapshot.made-up""#);
    assert!(unknown.is_err(), "{unknown:?}");
}

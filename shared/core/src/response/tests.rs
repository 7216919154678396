//! Planning (which exact undo a finding gets), the response settings, and the engine's respond
//! step (once per finding, attached before delivery, a failure never losing the alert).

use super::*;
use crate::config::{env, Config, ResponseConfig};
use crate::engine::{Detector, EARLIER_ATTEMPT_NOTE, NOTHING_TO_UNDO_NOTE};
use crate::memory::{MemoryResponder, MemorySink, MemoryStore};
use crate::model::{ActionResult, EventMeta, ParsedEvent, Resource, ResourceKind as K};
use crate::ports::ResponseOutcome;
use chrono::{DateTime, Duration, TimeZone, Utc};
use pollster::block_on;
use std::collections::HashMap;
use std::sync::Arc;

const OWN: &str = "111122223333";
const PARTNER: &str = "444455556666";
const OUTSIDE: &str = "999988887777";
const MALLORY: &str = "arn:aws:iam::111122223333:user/mallory";
const ADMIN: &str = "arn:aws:iam::111122223333:role/admin";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn ev_as(cloud: Cloud, id: &str, name: &str, minutes: i64, facts: Vec<Fact>) -> ParsedEvent {
    ParsedEvent {
        meta: EventMeta {
            id: id.into(),
            name: name.into(),
            time: t0() + Duration::minutes(minutes),
            actor: Some(MALLORY.into()),
            source_ip: Some("198.51.100.7".into()),
            cloud,
            account: OWN.into(),
            region: Some("us-east-1".into()),
            automation: None,
        },
        facts,
    }
}

fn ev(id: &str, name: &str, minutes: i64, facts: Vec<Fact>) -> ParsedEvent {
    ev_as(Cloud::Aws, id, name, minutes, facts)
}

fn share(id: &str, minutes: i64, kind: K, snapshot: &str, audience: Audience) -> ParsedEvent {
    ev(
        id,
        "ModifySnapshotAttribute",
        minutes,
        vec![Fact::SnapshotShared {
            snapshot: Resource::new(kind, snapshot),
            audience,
        }],
    )
}

fn accounts(ids: &[&str]) -> Audience {
    Audience::Accounts(ids.iter().map(|s| s.to_string()).collect())
}

fn opening(port: u16, source: &str, rule: Option<&str>) -> Fact {
    Fact::IngressOpened {
        group: Resource::new(K::NetworkGroup, "sg-1"),
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(port)],
        sources: vec![source.into()],
        target_tags: vec![],
        rule: rule.map(str::to_owned),
    }
}

/// The exposed-restore chain: a snapshot, an instance restored from it into sg-1, then one
/// ingress event carrying `openings`.
fn exposed_restore(openings: Vec<Fact>) -> Vec<ParsedEvent> {
    vec![
        ev(
            "e1",
            "CreateSnapshot",
            0,
            vec![Fact::SnapshotCreated {
                snapshot: Resource::new(K::Snapshot, "snap-1"),
                source: None,
            }],
        ),
        ev(
            "e2",
            "RunInstances",
            30,
            vec![
                Fact::RestoredFrom {
                    resource: Resource::new(K::Instance, "i-1"),
                    snapshot: Resource::new(K::Snapshot, "snap-1"),
                },
                Fact::NetworkMember {
                    member: Resource::new(K::Instance, "i-1"),
                    group: Resource::new(K::NetworkGroup, "sg-1"),
                    tags: vec![],
                },
            ],
        ),
        ev("e3", "AuthorizeSecurityGroupIngress", 40, openings),
    ]
}

fn config(modes: &str) -> Config {
    let mut config = Config::default();
    config.response.modes = ResponseConfig::parse_modes(modes).unwrap();
    config.trust.accounts = vec![PARTNER.into()];
    config.trust.principals = vec![ADMIN.into(), "user:ops@example.com".into()];
    config
}

/// Ingests `events` into `store` in order and returns the findings the last one yields, with the
/// observations stored for each, as the engine's respond step loads them.
fn findings_of(config: &Config, events: &[ParsedEvent]) -> Vec<(Finding, Vec<Observation>)> {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config.clone());
    block_on(async {
        let mut findings = Vec::new();
        for e in events {
            findings = detector.process(e, e.meta.time).await.unwrap();
        }
        let mut out = Vec::new();
        for f in findings {
            let stored = crate::ports::StateStore::load_facts(&&store, &f.resources, t0())
                .await
                .unwrap();
            let chain = stored
                .iter()
                .flat_map(|r| r.facts.iter())
                .map(|s| serde_json::from_str::<Observation>(&s.body).unwrap())
                .collect();
            out.push((f, chain));
        }
        out
    })
}

fn plan_for(config: &Config, events: &[ParsedEvent], rule: Rule) -> Option<Plan> {
    let all = findings_of(config, events);
    let (finding, chain) = all.iter().find(|(f, _)| f.rule == rule).unwrap_or_else(|| {
        panic!(
            "no {rule} finding among {:?}",
            all.iter().map(|(f, _)| f.rule).collect::<Vec<_>>()
        )
    });
    plan(finding, chain, config)
}

fn undos(plan: &Option<Plan>) -> Vec<&Undo> {
    plan.as_ref()
        .unwrap()
        .actions
        .iter()
        .map(|a| &a.undo)
        .collect()
}

#[test]
fn an_off_rule_has_no_plan() {
    let events = [share("s1", 0, K::Snapshot, "snap-1", Audience::Public)];
    assert_eq!(plan_for(&config(""), &events, Rule::SnapshotPublic), None);
    assert_eq!(
        plan_for(
            &config("snapshot.public=off,snapshot.shared-external=enforce"),
            &events,
            Rule::SnapshotPublic
        ),
        None
    );
}

#[test]
fn a_public_share_removes_group_all_and_nothing_else() {
    let events = [ParsedEvent {
        facts: vec![
            Fact::SnapshotShared {
                snapshot: Resource::new(K::Snapshot, "snap-1"),
                audience: Audience::Public,
            },
            Fact::SnapshotShared {
                snapshot: Resource::new(K::Snapshot, "snap-1"),
                audience: accounts(&[OUTSIDE]),
            },
        ],
        ..share("s1", 0, K::Snapshot, "snap-1", Audience::Public)
    }];
    let plan = plan_for(
        &config("snapshot.public=enforce"),
        &events,
        Rule::SnapshotPublic,
    );
    assert_eq!(plan.as_ref().unwrap().mode, ResponseMode::Enforce);
    let action = &plan.as_ref().unwrap().actions[0];
    assert_eq!(action.account, OWN);
    assert_eq!(action.region.as_deref(), Some("us-east-1"));
    assert_eq!(action.call(), "ec2:ModifySnapshotAttribute");
    assert_eq!(action.target(), "snap-1");
    assert_eq!(action.change(), "remove createVolumePermission group all");
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveSnapshotPermission {
            snapshot_id: "snap-1".into(),
            grantees: Grantees {
                public: true,
                accounts: vec![],
            },
        }]
    );
}

#[test]
fn a_trusted_actor_never_exempts_a_public_exposure() {
    let mut event = share("s1", 0, K::Snapshot, "snap-1", Audience::Public);
    event.meta.actor = Some(ADMIN.into());
    let plan = plan_for(
        &config("snapshot.public=dry-run"),
        &[event],
        Rule::SnapshotPublic,
    );
    assert_eq!(plan.as_ref().unwrap().mode, ResponseMode::DryRun);
    assert_eq!(undos(&plan).len(), 1);
}

#[test]
fn an_outside_share_removes_only_the_untrusted_accounts_the_chain_added() {
    let events = [
        share(
            "s1",
            0,
            K::Snapshot,
            "snap-1",
            accounts(&[OUTSIDE, PARTNER, OWN]),
        ),
        share("s2", 5, K::Snapshot, "snap-1", accounts(&["222233334444"])),
    ];
    let plan = plan_for(
        &config("snapshot.shared-external=enforce"),
        &events,
        Rule::SnapshotSharedExternal,
    );
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveSnapshotPermission {
            snapshot_id: "snap-1".into(),
            grantees: Grantees {
                public: false,
                accounts: vec!["222233334444".into(), OUTSIDE.into()],
            },
        }]
    );
}

#[test]
fn events_the_finding_does_not_list_are_never_undone() {
    let events = [share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE]))];
    let config = config("snapshot.shared-external=enforce");
    let all = findings_of(&config, &events);
    let (finding, mut chain) = all.into_iter().next().unwrap();
    // Someone else's share of the same snapshot, stored under it but not part of this finding.
    let mut other = chain[0].clone();
    other.event.id = "not-in-the-chain".into();
    other.fact = Fact::SnapshotShared {
        snapshot: Resource::new(K::Snapshot, "snap-1"),
        audience: accounts(&["555566667777"]),
    };
    chain.push(other);
    // A grant only the baseline's listing saw, stored under an event id the finding lists.
    let mut listed = chain[0].clone();
    listed.index = 7;
    listed.origin = crate::model::Origin::Baseline;
    listed.fact = Fact::SnapshotShared {
        snapshot: Resource::new(K::Snapshot, "snap-1"),
        audience: accounts(&["777766665555"]),
    };
    chain.push(listed);
    let plan = Some(plan(&finding, &chain, &config).unwrap());
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveSnapshotPermission {
            snapshot_id: "snap-1".into(),
            grantees: Grantees {
                public: false,
                accounts: vec![OUTSIDE.into()],
            },
        }]
    );
}

#[test]
fn an_image_launch_permission_is_removed_from_the_image() {
    let events = [share("s1", 0, K::Image, "ami-1", Audience::Public)];
    let plan = plan_for(
        &config("snapshot.public=enforce"),
        &events,
        Rule::SnapshotPublic,
    );
    let action = &plan.as_ref().unwrap().actions[0];
    assert_eq!(action.call(), "ec2:ModifyImageAttribute");
    assert_eq!(action.change(), "remove launchPermission group all");
}

#[test]
fn db_snapshots_remove_restore_values_by_identifier() {
    let cluster = "arn:aws:rds:us-east-1:111122223333:cluster-snapshot:prod-final";
    let events = [share("s1", 0, K::DbSnapshot, cluster, Audience::Public)];
    let plan = plan_for(
        &config("snapshot.public=enforce"),
        &events,
        Rule::SnapshotPublic,
    );
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveDbSnapshotRestore {
            snapshot_arn: cluster.into(),
            identifier: "prod-final".into(),
            cluster: true,
            values: vec!["all".into()],
        }]
    );
    assert_eq!(
        plan.unwrap().actions[0].call(),
        "rds:ModifyDBClusterSnapshotAttribute"
    );
    let instance = "arn:aws:rds:us-east-1:111122223333:snapshot:db1";
    let events = [share(
        "s1",
        0,
        K::DbSnapshot,
        instance,
        accounts(&[OUTSIDE]),
    )];
    let plan = plan_for(
        &config("snapshot.shared-external=enforce"),
        &events,
        Rule::SnapshotSharedExternal,
    );
    assert_eq!(
        plan.unwrap().actions[0].undo,
        Undo::RemoveDbSnapshotRestore {
            snapshot_arn: instance.into(),
            identifier: "db1".into(),
            cluster: false,
            values: vec![OUTSIDE.into()],
        }
    );
}

#[test]
fn an_opened_rule_is_revoked_by_its_rule_id_and_only_the_exposing_one() {
    let events = exposed_restore(vec![
        opening(22, "0.0.0.0/0", Some("sgr-0abc")),
        // The same call also opened HTTPS to the world and SSH to the office: not exposures.
        opening(443, "0.0.0.0/0", Some("sgr-0https")),
        opening(22, "10.0.0.0/8", Some("sgr-0office")),
    ]);
    let plan = plan_for(
        &config("chain.exposed-restore=enforce"),
        &events,
        Rule::ChainExposedRestore,
    );
    assert_eq!(
        undos(&plan),
        vec![&Undo::RevokeIngressRule {
            group_id: "sg-1".into(),
            rule_id: "sgr-0abc".into(),
        }]
    );
}

#[test]
fn an_opening_without_a_rule_id_is_revoked_by_its_exact_internet_permission() {
    let mut wide = opening(22, "0.0.0.0/0", None);
    if let Fact::IngressOpened { sources, .. } = &mut wide {
        sources.push("10.0.0.0/8".into());
        sources.push("::/0".into());
    }
    let plan = plan_for(
        &config("chain.exposed-restore=dry-run"),
        &exposed_restore(vec![wide]),
        Rule::ChainExposedRestore,
    );
    assert_eq!(
        undos(&plan),
        vec![&Undo::RevokeIngressPermission {
            group_id: "sg-1".into(),
            permission: IngressPermission {
                protocol: "tcp".into(),
                from_port: 22,
                to_port: 22,
                sources: vec!["0.0.0.0/0".into(), "::/0".into()],
            },
        }]
    );
}

#[test]
fn other_clouds_get_their_own_exact_undo() {
    // GCP: a public IAM grant and an outside member, and a firewall rule opened on a network.
    let gcp_snapshot = "projects/p1/global/snapshots/s1";
    let mut events = vec![ev_as(
        Cloud::Gcp,
        "g1",
        "v1.compute.snapshots.setIamPolicy",
        0,
        vec![
            Fact::SnapshotShared {
                snapshot: Resource::new(K::Snapshot, gcp_snapshot),
                audience: Audience::Public,
            },
            Fact::SnapshotShared {
                snapshot: Resource::new(K::Snapshot, gcp_snapshot),
                audience: Audience::Principals(vec![
                    "user:eve@evil.example".into(),
                    "user:ops@example.com".into(),
                ]),
            },
        ],
    )];
    let modes = "snapshot.public=enforce,snapshot.shared-external=enforce,snapshot.exported=enforce,chain.exposed-restore=enforce";
    let plan = plan_for(&config(modes), &events, Rule::SnapshotPublic);
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveIamMembers {
            resource: gcp_snapshot.into(),
            members: vec!["allUsers".into(), "allAuthenticatedUsers".into()],
        }]
    );
    let plan = plan_for(&config(modes), &events, Rule::SnapshotSharedExternal);
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveIamMembers {
            resource: gcp_snapshot.into(),
            members: vec!["user:eve@evil.example".into()],
        }]
    );
    // Azure: a SAS export is ended on the snapshot itself.
    let azure_snapshot =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/snapshots/s1";
    events = vec![ev_as(
        Cloud::Azure,
        "a1",
        "Microsoft.Compute/snapshots/beginGetAccess/action",
        0,
        vec![Fact::SnapshotExported {
            snapshot: Resource::new(K::Snapshot, azure_snapshot),
            method: crate::parse::azure::SAS_EXPORT_METHOD.into(),
        }],
    )];
    let plan = plan_for(&config(modes), &events, Rule::SnapshotExported);
    assert_eq!(
        undos(&plan),
        vec![&Undo::EndDiskAccess {
            resource: azure_snapshot.into(),
        }]
    );
}

/// What the chain's `Open-SSH` rule opened, as the action carries it for the re-read.
fn ssh_from_anywhere() -> crate::response::Opening {
    crate::response::Opening {
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(22)],
        sources: vec!["0.0.0.0/0".into()],
        target_tags: vec![],
    }
}

#[test]
fn network_rules_on_gcp_and_azure_name_the_rule_itself() {
    let actions = |cloud: Cloud, group: &str| {
        let mut events = exposed_restore(vec![Fact::IngressOpened {
            group: Resource::new(K::NetworkGroup, group),
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(22)],
            sources: vec!["0.0.0.0/0".into()],
            target_tags: vec![],
            rule: Some("Open-SSH".into()),
        }]);
        for e in &mut events {
            e.meta.cloud = cloud;
            for fact in &mut e.facts {
                if let Fact::NetworkMember { group: g, .. } = fact {
                    g.id = group.into();
                }
            }
        }
        plan_for(
            &config("chain.exposed-restore=enforce"),
            &events,
            Rule::ChainExposedRestore,
        )
    };
    assert_eq!(
        undos(&actions(Cloud::Gcp, "projects/p1/global/networks/default")),
        vec![&Undo::DisableFirewallRule {
            firewall: "projects/p1/global/firewalls/Open-SSH".into(),
            opened: vec![ssh_from_anywhere()],
        }]
    );
    let nsg =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/nsg1";
    assert_eq!(
        undos(&actions(Cloud::Azure, nsg)),
        vec![&Undo::DeleteNsgRule {
            rule: format!("{nsg}/securityrules/open-ssh"),
            opened: vec![ssh_from_anywhere()],
        }]
    );
}

#[test]
fn the_response_variable_is_parsed_and_every_bad_value_names_it() {
    let lookup = |pairs: &'static [(&'static str, &'static str)]| {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |name: &str| map.get(name).map(|v| v.to_string())
    };
    let config = Config::from_lookup(lookup(&[(
        env::RESPONSE,
        "snapshot.public=enforce, chain.exposed-restore=dry-run",
    )]))
    .unwrap();
    assert_eq!(
        config.response.mode(Rule::SnapshotPublic),
        ResponseMode::Enforce
    );
    assert_eq!(
        config.response.mode(Rule::ChainExposedRestore),
        ResponseMode::DryRun
    );
    assert_eq!(
        config.response.mode(Rule::SnapshotSharedExternal),
        ResponseMode::Off
    );
    assert_eq!(config.response.exempt_tag, "snapwatch-exempt");
    assert!(!config.response.all_off());
    assert!(Config::default().response.all_off());
    for bad in [
        "snapshot.public=on",
        "snapshot.pubic=enforce",
        "snapshot.public",
        "snapshot.unexplained=enforce",
        "snapshot.public=enforce,snapshot.public=off",
    ] {
        let map: HashMap<&str, String> = [(env::RESPONSE, bad.to_string())].into();
        let err = Config::from_lookup(|n| map.get(n).cloned()).unwrap_err();
        assert_eq!(err.name, env::RESPONSE, "{bad}: {err}");
        assert_eq!(err.value, bad);
    }
    let config = Config::from_lookup(lookup(&[(env::RESPONSE_EXEMPT_TAG, "no-auto-fix")])).unwrap();
    assert_eq!(config.response.exempt_tag, "no-auto-fix");
}

#[test]
fn the_toml_form_has_a_response_section() {
    let config: Config = toml::from_str(
        "[response]\nexempt_tag = \"keep\"\n[response.modes]\n\"snapshot.public\" = \"dry-run\"\n",
    )
    .unwrap();
    assert_eq!(
        config.response.mode(Rule::SnapshotPublic),
        ResponseMode::DryRun
    );
    assert_eq!(config.response.exempt_tag, "keep");
    let bad: Config =
        toml::from_str("[response.modes]\n\"snapshot.used-externally\" = \"enforce\"\n").unwrap();
    assert_eq!(bad.validate().unwrap_err().name, "response.modes");
}

// ---- the engine's respond step ------------------------------------------------------------

/// Processes `events`, responds and delivers as a handler does; returns what the sink got.
fn handle(
    detector: &Detector<&MemoryStore>,
    responder: &MemoryResponder,
    sink: &MemorySink,
    event: &ParsedEvent,
) -> Vec<Finding> {
    block_on(async {
        let now = event.meta.time;
        let mut findings = detector.process(event, now).await.unwrap();
        let responses = detector
            .respond(&mut findings, responder, now)
            .await
            .unwrap();
        let findings = responses.deliverable(findings);
        detector.deliver(&findings, sink, now).await.unwrap();
        detector.settle(&responses).await.unwrap();
        findings
    })
}

#[test]
fn the_alert_carries_what_the_response_did() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.public=enforce"));
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    handle(
        &detector,
        &responder,
        &sink,
        &share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
    );
    let sent = sink.sent();
    assert_eq!(sent.len(), 1);
    let response = sent[0].response.as_ref().unwrap();
    assert_eq!(response.mode, ResponseMode::Enforce);
    assert_eq!(response.actions.len(), 1);
    let action = &response.actions[0];
    assert_eq!(action.call, "ec2:ModifySnapshotAttribute");
    assert_eq!(action.target, "snap-1");
    assert_eq!(action.result, ActionResult::Done);
    assert_eq!(action.at, t0());
    let json = serde_json::to_value(&sent[0]).unwrap();
    assert_eq!(json["response"]["mode"], "enforce");
    assert_eq!(json["response"]["actions"][0]["result"], "done");
    assert_eq!(responder.executed().len(), 1);
}

#[test]
fn an_off_rule_leaves_the_finding_json_as_before() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("chain.exposed-restore=enforce"));
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    handle(
        &detector,
        &responder,
        &sink,
        &share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
    );
    assert_eq!(sink.sent()[0].response, None);
    let json = serde_json::to_value(&sink.sent()[0]).unwrap();
    assert!(json.get("response").is_none(), "{json}");
    assert!(responder.executed().is_empty());
}

#[test]
fn a_failed_action_still_alerts_and_says_why() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.public=enforce"));
    let responder = MemoryResponder::new();
    responder.fail("snap-1", false, "UnauthorizedOperation: not allowed");
    let sink = MemorySink::new();
    handle(
        &detector,
        &responder,
        &sink,
        &share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
    );
    let sent = sink.sent();
    assert_eq!(sent.len(), 1, "the alert must go out");
    let response = sent[0].response.as_ref().unwrap();
    assert!(response.failed());
    assert_eq!(response.actions[0].result, ActionResult::Failed);
    assert_eq!(
        response.actions[0].reason.as_deref(),
        Some("UnauthorizedOperation: not allowed")
    );
    let retryable = MemoryResponder::new();
    retryable.fail("snap-2", true, "RequestLimitExceeded");
    let sink = MemorySink::new();
    handle(
        &detector,
        &retryable,
        &sink,
        &share("s2", 0, K::Snapshot, "snap-2", Audience::Public),
    );
    assert_eq!(
        sink.sent()[0].response.as_ref().unwrap().actions[0]
            .reason
            .as_deref(),
        Some("temporary failure: RequestLimitExceeded")
    );
}

#[test]
fn skips_are_reported_as_the_responder_decided() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.public=dry-run"));
    let responder = MemoryResponder::new();
    responder.answer(
        "snap-1",
        ResponseOutcome::new(ActionResult::SkippedExempt, "tagged snapwatch-exempt"),
    );
    let sink = MemorySink::new();
    handle(
        &detector,
        &responder,
        &sink,
        &share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
    );
    let sent = sink.sent();
    let action = &sent[0].response.as_ref().unwrap().actions[0];
    assert_eq!(action.result, ActionResult::SkippedExempt);
    assert_eq!(responder.executed()[0].1, ResponseMode::DryRun);
}

#[test]
fn a_finding_with_nothing_exact_to_undo_says_so() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.exported=enforce"));
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    // An EBS direct read: no call takes it back.
    handle(
        &detector,
        &responder,
        &sink,
        &ev(
            "x1",
            "GetSnapshotBlock",
            0,
            vec![Fact::SnapshotExported {
                snapshot: Resource::new(K::Snapshot, "snap-1"),
                method: "ebs-direct".into(),
            }],
        ),
    );
    let response = sink.sent()[0].response.clone().unwrap();
    assert!(response.actions.is_empty());
    assert_eq!(response.note.as_deref(), Some(NOTHING_TO_UNDO_NOTE));
    assert!(responder.executed().is_empty());
}

#[test]
fn redelivery_responds_once_and_a_retried_alert_says_so() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.public=enforce"));
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    sink.fail_next(
        1,
        crate::memory::SinkFault::Transient {
            retry_after_secs: None,
        },
    );
    let event = share("s1", 0, K::Snapshot, "snap-1", Audience::Public);
    handle(&detector, &responder, &sink, &event);
    assert!(sink.sent().is_empty(), "the first delivery failed");
    handle(&detector, &responder, &sink, &event);
    handle(&detector, &responder, &sink, &event);
    assert_eq!(responder.executed().len(), 1, "acted once");
    let sent = sink.sent();
    assert_eq!(sent.len(), 1, "alerted once");
    assert_eq!(
        sent[0].response.as_ref().unwrap().note.as_deref(),
        Some(EARLIER_ATTEMPT_NOTE)
    );
}

#[test]
fn eight_racing_handlers_act_once_and_alert_once() {
    let store = Arc::new(MemoryStore::new());
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    let event = share("s1", 0, K::Snapshot, "snap-1", Audience::Public);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handlers: Vec<_> = (0..8)
        .map(|_| {
            let (store, responder, sink, event, barrier) = (
                store.clone(),
                responder.clone(),
                sink.clone(),
                event.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                let detector = Detector::new(&*store, config("snapshot.public=enforce"));
                barrier.wait();
                handle(&detector, &responder, &sink, &event);
            })
        })
        .collect();
    for h in handlers {
        h.join().unwrap();
    }
    assert_eq!(responder.executed().len(), 1);
    let sent = sink.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].response.as_ref().unwrap().actions[0].result,
        ActionResult::Done,
        "the alert that went out is the one that acted"
    );
}

#[test]
fn every_renderer_shows_the_response_and_its_failure() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.public=enforce"));
    let responder = MemoryResponder::new();
    responder.fail("snap-1", false, "UnauthorizedOperation <denied>");
    let sink = MemorySink::new();
    handle(
        &detector,
        &responder,
        &sink,
        &share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
    );
    let finding = &sink.sent()[0];
    let line = "failed: ec2:ModifySnapshotAttribute on snap-1: remove createVolumePermission group all (UnauthorizedOperation <denied>)";
    let text = crate::render::text(finding);
    assert!(text.contains("Response (enforce) FAILED:"), "{text}");
    assert!(text.contains(line), "{text}");
    let slack = crate::render::slack_message(finding).to_string();
    assert!(slack.contains("*Response (enforce) FAILED*"), "{slack}");
    assert!(
        slack.contains("UnauthorizedOperation &lt;denied&gt;"),
        "{slack}"
    );
    let html = crate::render_html::page(&[finding], t0());
    assert!(
        html.contains("<h3>Response (enforce) FAILED</h3>"),
        "{html}"
    );
    assert!(html.contains("UnauthorizedOperation &lt;denied&gt;"));
    let sns: serde_json::Value =
        serde_json::from_str(&crate::render::sns_message(finding)).unwrap();
    assert_eq!(sns["response"]["actions"][0]["result"], "failed");
}

#[test]
fn a_gcp_rule_is_disabled_once_carrying_every_opening_its_events_recorded() {
    let opening = |protocol, port| Fact::IngressOpened {
        group: Resource::new(K::NetworkGroup, "projects/p1/global/networks/default"),
        protocol,
        ports: vec![PortRange::single(port)],
        sources: vec!["0.0.0.0/0".into()],
        target_tags: vec![],
        rule: Some("open-ssh".into()),
    };
    // One firewall write with two allowed entries: SSH (an admin port) and DNS (not one).
    let mut events = exposed_restore(vec![opening(Protocol::Tcp, 22), opening(Protocol::Udp, 53)]);
    for e in &mut events {
        e.meta.cloud = Cloud::Gcp;
        for fact in &mut e.facts {
            if let Fact::NetworkMember { group, .. } = fact {
                group.id = "projects/p1/global/networks/default".into();
            }
        }
    }
    let plan = plan_for(
        &config("chain.exposed-restore=dry-run"),
        &events,
        Rule::ChainExposedRestore,
    );
    let dns = crate::response::Opening {
        protocol: Protocol::Udp,
        ports: vec![PortRange::single(53)],
        sources: vec!["0.0.0.0/0".into()],
        target_tags: vec![],
    };
    let Some(Undo::DisableFirewallRule { firewall, opened }) = undos(&plan).first().copied() else {
        panic!("{plan:?}")
    };
    assert_eq!(undos(&plan).len(), 1, "{plan:?}");
    assert_eq!(firewall, "projects/p1/global/firewalls/open-ssh");
    let mut expected = vec![ssh_from_anywhere(), dns];
    expected.sort();
    assert_eq!(opened, &expected);
}

// ---- re-adds by someone else after the chain's event (issue 13) -----------------------------

const TRUDY: &str = "arn:aws:iam::111122223333:user/trudy";

/// `event` made by `actor` instead of the attacker.
fn by(actor: &str, mut event: ParsedEvent) -> ParsedEvent {
    event.meta.actor = Some(actor.into());
    event
}

fn skipped(plan: &Option<Plan>) -> Vec<(&Undo, &str)> {
    plan.as_ref()
        .unwrap()
        .skipped
        .iter()
        .map(|s| (&s.action.undo, s.reason.as_str()))
        .collect()
}

fn remove_accounts(snapshot: &str, ids: &[&str]) -> Undo {
    Undo::RemoveSnapshotPermission {
        snapshot_id: snapshot.into(),
        grantees: Grantees {
            public: false,
            accounts: ids.iter().map(|s| s.to_string()).collect(),
        },
    }
}

#[test]
fn an_account_a_trusted_principal_re_added_later_is_left_and_named() {
    // The attacker shares with two outside accounts; an administrator removes the share and
    // later grants OUTSIDE again (a partner they mean to share with, not yet in the trust list).
    let events = [
        share(
            "s1",
            0,
            K::Snapshot,
            "snap-1",
            accounts(&[OUTSIDE, "222233334444"]),
        ),
        by(
            ADMIN,
            share("s2", 30, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        ),
    ];
    let plan = plan_for(
        &config("snapshot.shared-external=enforce"),
        &events,
        Rule::SnapshotSharedExternal,
    );
    assert_eq!(
        undos(&plan),
        vec![&remove_accounts("snap-1", &["222233334444"])]
    );
    let skips = skipped(&plan);
    assert_eq!(skips.len(), 1, "{plan:?}");
    assert_eq!(skips[0].0, &remove_accounts("snap-1", &[OUTSIDE]));
    let reason = skips[0].1;
    for named in ["s2", ADMIN, "2026-03-01T12:30:00Z"] {
        assert!(reason.contains(named), "{named} not in {reason:?}");
    }
}

#[test]
fn a_re_add_by_another_untrusted_principal_is_undone() {
    let events = [
        share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        by(
            TRUDY,
            share("s2", 30, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        ),
    ];
    let plan = plan_for(
        &config("snapshot.shared-external=enforce"),
        &events,
        Rule::SnapshotSharedExternal,
    );
    assert_eq!(undos(&plan), vec![&remove_accounts("snap-1", &[OUTSIDE])]);
    assert!(skipped(&plan).is_empty(), "{plan:?}");
}

#[test]
fn a_trusted_share_before_the_attackers_does_not_keep_the_grant() {
    // Only a re-add AFTER the chain's own add keeps it: here the attacker's add is the last.
    let events = [
        by(
            ADMIN,
            share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        ),
        share("s2", 30, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
    ];
    let plan = plan_for(
        &config("snapshot.shared-external=enforce"),
        &events,
        Rule::SnapshotSharedExternal,
    );
    assert_eq!(undos(&plan), vec![&remove_accounts("snap-1", &[OUTSIDE])]);
    assert!(skipped(&plan).is_empty(), "{plan:?}");
}

#[test]
fn an_unrelated_later_share_of_another_account_does_not_block_the_undo() {
    let mut backup = by(
        ADMIN,
        share("s2", 30, K::Snapshot, "snap-1", accounts(&["555566667777"])),
    );
    backup.meta.automation = Some("aws-backup".into());
    let events = [
        share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        backup,
    ];
    let config = config("snapshot.shared-external=enforce");
    let all = findings_of(&config, &events[..1]);
    let (finding, mut chain) = all.into_iter().next().unwrap();
    // Automation's later share of another account, stored under the snapshot.
    chain.extend(
        findings_of(&config, &events)
            .into_iter()
            .flat_map(|(_, c)| c)
            .filter(|o| o.event.id == "s2"),
    );
    assert!(chain.iter().any(|o| o.event.id == "s2"), "{chain:?}");
    let plan = Some(plan(&finding, &chain, &config).unwrap());
    assert_eq!(undos(&plan), vec![&remove_accounts("snap-1", &[OUTSIDE])]);
    assert!(skipped(&plan).is_empty(), "{plan:?}");
}

#[test]
fn automations_later_identical_share_keeps_the_grant() {
    let mut backup = share("s2", 30, K::Snapshot, "snap-1", accounts(&[OUTSIDE]));
    backup.meta.actor = Some("backup.amazonaws.com".into());
    backup.meta.automation = Some("aws-backup".into());
    let events = [
        share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
        backup,
    ];
    let config = config("snapshot.shared-external=enforce");
    let all = findings_of(&config, &events);
    let (finding, chain) = all
        .iter()
        .find(|(f, _)| f.rule == Rule::SnapshotSharedExternal)
        .unwrap();
    let plan = Some(plan(finding, chain, &config).unwrap());
    assert!(undos(&plan).is_empty(), "{plan:?}");
    let skips = skipped(&plan);
    assert_eq!(skips.len(), 1, "{plan:?}");
    assert!(skips[0].1.contains("s2") && skips[0].1.contains("aws-backup"));
}

#[test]
fn a_trusted_principals_later_public_grant_never_keeps_a_public_exposure() {
    let events = [
        share("s1", 0, K::Snapshot, "snap-1", Audience::Public),
        by(
            ADMIN,
            share("s2", 30, K::Snapshot, "snap-1", Audience::Public),
        ),
    ];
    let plan = plan_for(
        &config("snapshot.public=enforce"),
        &events,
        Rule::SnapshotPublic,
    );
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveSnapshotPermission {
            snapshot_id: "snap-1".into(),
            grantees: Grantees {
                public: true,
                accounts: vec![],
            },
        }]
    );
    assert!(skipped(&plan).is_empty(), "{plan:?}");
}

#[test]
fn a_gcp_member_a_trusted_principal_re_added_later_is_left() {
    let snapshot = "projects/p1/global/snapshots/s1";
    let grant = |id: &str, minutes: i64, members: &[&str]| {
        ev_as(
            Cloud::Gcp,
            id,
            "v1.compute.snapshots.setIamPolicy",
            minutes,
            vec![Fact::SnapshotShared {
                snapshot: Resource::new(K::Snapshot, snapshot),
                audience: Audience::Principals(members.iter().map(|m| m.to_string()).collect()),
            }],
        )
    };
    let mut config = config("snapshot.shared-external=enforce");
    config.trust.principals.push("admin@example.com".into());
    let events = [
        by(
            "mallory@evil.example",
            grant("g1", 0, &["user:eve@evil.example", "user:joe@evil.example"]),
        ),
        by(
            "admin@example.com",
            grant("g2", 45, &["user:eve@evil.example"]),
        ),
    ];
    let plan = plan_for(&config, &events, Rule::SnapshotSharedExternal);
    assert_eq!(
        undos(&plan),
        vec![&Undo::RemoveIamMembers {
            resource: snapshot.into(),
            members: vec!["user:joe@evil.example".into()],
        }]
    );
    let skips = skipped(&plan);
    assert_eq!(skips.len(), 1, "{plan:?}");
    assert_eq!(
        skips[0].0,
        &Undo::RemoveIamMembers {
            resource: snapshot.into(),
            members: vec!["user:eve@evil.example".into()],
        }
    );
    assert!(skips[0].1.contains("g2") && skips[0].1.contains("admin@example.com"));
}

/// The exposed-restore chain on Azure, the NSG rule `Open-SSH` opened by the attacker (`e3`),
/// then `Open-SSH` created again by `actor` (`e4`).
fn azure_rule_recreated_by(actor: &str) -> Option<Plan> {
    let nsg =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/nsg1";
    let open_ssh = || Fact::IngressOpened {
        group: Resource::new(K::NetworkGroup, nsg),
        protocol: Protocol::Tcp,
        ports: vec![PortRange::single(22)],
        sources: vec!["0.0.0.0/0".into()],
        target_tags: vec![],
        rule: Some("Open-SSH".into()),
    };
    let mut events = exposed_restore(vec![open_ssh()]);
    events.push(by(
        actor,
        ev(
            "e4",
            "Microsoft.Network/networkSecurityGroups/securityRules/write",
            50,
            vec![open_ssh()],
        ),
    ));
    for e in &mut events {
        e.meta.cloud = Cloud::Azure;
        for fact in &mut e.facts {
            if let Fact::NetworkMember { group, .. } = fact {
                group.id = nsg.into();
            }
        }
    }
    let mut config = config("chain.exposed-restore=enforce");
    config.trust.principals.push("admin@example.com".into());
    plan_for(&config, &events, Rule::ChainExposedRestore)
}

#[test]
fn an_azure_rule_a_trusted_principal_re_created_is_not_deleted() {
    let plan = azure_rule_recreated_by("admin@example.com");
    assert!(undos(&plan).is_empty(), "{plan:?}");
    let skips = skipped(&plan);
    assert_eq!(skips.len(), 1, "{plan:?}");
    assert!(
        matches!(skips[0].0, Undo::DeleteNsgRule { rule, .. } if rule.ends_with("/securityrules/open-ssh"))
    );
    assert!(skips[0].1.contains("e4") && skips[0].1.contains("admin@example.com"));
}

#[test]
fn an_azure_rule_an_untrusted_principal_re_created_is_deleted() {
    let plan = azure_rule_recreated_by("eve@evil.example");
    assert_eq!(undos(&plan).len(), 1, "{plan:?}");
    assert!(matches!(undos(&plan)[0], Undo::DeleteNsgRule { .. }));
    assert!(skipped(&plan).is_empty(), "{plan:?}");
}

#[test]
fn an_ec2_permission_a_trusted_principal_opened_again_is_not_revoked() {
    let mut events = exposed_restore(vec![opening(22, "0.0.0.0/0", None)]);
    events.push(by(
        ADMIN,
        ev(
            "e4",
            "AuthorizeSecurityGroupIngress",
            50,
            vec![opening(22, "0.0.0.0/0", None)],
        ),
    ));
    let plan = plan_for(
        &config("chain.exposed-restore=enforce"),
        &events,
        Rule::ChainExposedRestore,
    );
    assert!(undos(&plan).is_empty(), "{plan:?}");
    assert_eq!(skipped(&plan).len(), 1, "{plan:?}");
}

#[test]
fn the_alert_says_skipped_changed_and_no_call_is_made_for_a_re_add() {
    let store = MemoryStore::new();
    let detector = Detector::new(&store, config("snapshot.shared-external=enforce"));
    let responder = MemoryResponder::new();
    let sink = MemorySink::new();
    // Both events in one record batch's time, responded to after the second: as a late
    // delivery of the attacker's event would be.
    block_on(async {
        let first = share("s1", 0, K::Snapshot, "snap-1", accounts(&[OUTSIDE]));
        detector.process(&first, first.meta.time).await.unwrap();
    });
    let re_add = by(
        ADMIN,
        share("s2", 30, K::Snapshot, "snap-1", accounts(&[OUTSIDE])),
    );
    let findings = handle(&detector, &responder, &sink, &re_add);
    assert!(
        responder.executed().is_empty(),
        "{:?}",
        responder.executed()
    );
    let response = findings
        .iter()
        .find(|f| f.rule == Rule::SnapshotSharedExternal)
        .and_then(|f| f.response.clone())
        .unwrap();
    assert_eq!(response.actions.len(), 1, "{response:?}");
    assert_eq!(response.actions[0].result, ActionResult::SkippedChanged);
    assert!(response.actions[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("s2"));
    assert_eq!(response.note, None);
}

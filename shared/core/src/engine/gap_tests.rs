//! Rule tests for the managed-database form of `chain.exposed-restore` and for managed-service
//! shares followed by the service's own use (issue 10, section 2).

use super::test_support::*;
use super::*;
use crate::memory::MemoryStore;
use crate::model::{Audience, Fact, Protocol, Resource};
use crate::model::{PortRange, ResourceKind as K};
use crate::rules::share::audience_admits;
use pollster::block_on;
use std::collections::BTreeSet;

const SERVICE: &str = "999988887777";
const OUTSIDE: &str = "444455556666";
const GUARDDUTY: &str = "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAmazonGuardDutyMalwareProtection/GuardDutyMalwareProtection";
const DB: &str = "arn:aws:rds:eu-west-1:111122223333:db:payroll-restored";
const SNAPSHOT: &str = "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:payroll-2025-03-05";

/// The database and its snapshot live in this region.
fn ev(id: &str, name: &str, minutes: i64, actor: &str, facts: Vec<Fact>) -> ParsedEvent {
    ev_in("eu-west-1", id, name, minutes, actor, facts)
}

fn public_endpoint(resource: &str, sources: &[&str]) -> Fact {
    Fact::PublicEndpoint {
        resource: r(K::Database, resource),
        setting: "publiclyAccessible".into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

/// RestoreDBInstanceFromDBSnapshot of an automated snapshot (no creation event exists for it),
/// into `sg-db`, public or not.
fn restore(minutes: i64, public: bool) -> ParsedEvent {
    let mut facts = vec![
        Fact::RestoredFrom {
            resource: r(K::Database, DB),
            snapshot: r(K::DbSnapshot, SNAPSHOT),
        },
        Fact::NetworkMember {
            member: r(K::Database, DB),
            group: r(K::NetworkGroup, "sg-db"),
            tags: vec![],
        },
    ];
    if public {
        facts.insert(1, public_endpoint(DB, &[]));
    }
    ev(
        "restore",
        "RestoreDBInstanceFromDBSnapshot",
        minutes,
        MALLORY,
        facts,
    )
}

fn made_public(minutes: i64, sources: &[&str]) -> ParsedEvent {
    ev(
        "modify",
        "ModifyDBInstance",
        minutes,
        MALLORY,
        vec![public_endpoint(DB, sources)],
    )
}

fn ingress(minutes: i64, port: u16, source: &str) -> ParsedEvent {
    ev(
        "ingress",
        "AuthorizeSecurityGroupIngress",
        minutes,
        MALLORY,
        vec![Fact::IngressOpened {
            group: r(K::NetworkGroup, "sg-db"),
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(port)],
            sources: vec![source.into()],
            target_tags: vec![],
            rule: None,
        }],
    )
}

fn batch(config: &Config, events: &[ParsedEvent]) -> Vec<Finding> {
    let detector = Detector::new(MemoryStore::new(), config.clone());
    block_on(async {
        let mut touched = BTreeSet::new();
        for e in events {
            touched.extend(detector.ingest(e).await.unwrap().touched);
        }
        let now = events.iter().map(|e| e.meta.time).max().unwrap_or_else(t0);
        detector
            .evaluate(&touched.into_iter().collect::<Vec<_>>(), now)
            .await
            .unwrap()
    })
}

/// Each event processed on arrival, as the functions do: every finding any step raised.
fn streaming(config: &Config, events: &[ParsedEvent]) -> BTreeSet<String> {
    let detector = Detector::new(MemoryStore::new(), config.clone());
    block_on(async {
        let mut raised = BTreeSet::new();
        let mut now = t0();
        for e in events {
            now = now.max(e.meta.time);
            for f in detector.process(e, now).await.unwrap() {
                raised.insert(f.rule.id().to_owned());
            }
        }
        raised
    })
}

#[test]
fn database_restore_exposure_table() {
    let c = Config::default();
    let late = c.window_secs() / 60 + 10;
    let exposed = vec!["chain.exposed-restore"];
    let none: Vec<&str> = vec![];
    let cases: Vec<(&str, Vec<ParsedEvent>, &Vec<&str>)> = vec![
        (
            "restored publicly accessible",
            vec![restore(0, true)],
            &exposed,
        ),
        (
            "restored private, nothing else",
            vec![restore(0, false)],
            &none,
        ),
        (
            "restored private, later made public",
            vec![restore(0, false), made_public(30, &[])],
            &exposed,
        ),
        (
            "made public outside the window",
            vec![restore(0, false), made_public(late, &[])],
            &none,
        ),
        (
            "public only to a private range",
            vec![restore(0, false), made_public(30, &["10.0.0.0/8"])],
            &none,
        ),
        (
            "public to the world by an authorized network",
            vec![
                restore(0, false),
                made_public(30, &["10.0.0.0/8", "0.0.0.0/0"]),
            ],
            &exposed,
        ),
        (
            "its database port opened to the internet",
            vec![restore(0, false), ingress(30, 5432, "0.0.0.0/0")],
            &exposed,
        ),
        (
            "another engine's port counts too",
            vec![restore(0, false), ingress(30, 3306, "::/0")],
            &exposed,
        ),
        (
            "an admin port counts as for instances",
            vec![restore(0, false), ingress(30, 22, "0.0.0.0/0")],
            &exposed,
        ),
        (
            "a web port on a database group exposes no database",
            vec![restore(0, false), ingress(30, 443, "0.0.0.0/0")],
            &none,
        ),
        (
            "database port opened to the office only",
            vec![restore(0, false), ingress(30, 5432, "203.0.113.0/24")],
            &none,
        ),
        (
            "restored by AWS Backup, public",
            vec![automated(restore(0, true), "aws-backup")],
            &none,
        ),
        (
            "made public by automation",
            vec![
                restore(0, false),
                automated(made_public(30, &[]), "cloudformation"),
            ],
            &none,
        ),
        (
            "opening first, restore later (any order)",
            vec![ingress(0, 5432, "0.0.0.0/0"), restore(30, false)],
            &exposed,
        ),
    ];
    for (name, events, expected) in cases {
        assert_eq!(&rules_of(&batch(&c, &events)), expected, "{name}");
        let streamed: Vec<String> = streaming(&c, &events).into_iter().collect();
        assert_eq!(&streamed, expected, "{name} (streaming)");
    }
}

#[test]
fn database_exposure_finding_tells_the_story() {
    let f = batch(
        &Config::default(),
        &[restore(0, false), made_public(30, &[])],
    );
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.snapshot, SNAPSHOT);
    assert_eq!(
        f.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        vec!["RestoreDBInstanceFromDBSnapshot", "ModifyDBInstance"]
    );
    assert!(f.summary.contains("was restored from"), "{}", f.summary);
    assert!(
        f.summary.contains("its endpoint (publiclyAccessible)"),
        "{}",
        f.summary
    );
    // A restore that is its own opening is listed once.
    let f = batch(&Config::default(), &[restore(0, true)]);
    assert_eq!(f[0].events.len(), 1);
}

#[test]
fn instances_still_need_a_watched_snapshot() {
    // The database exemption must not make every launch from a marketplace image a chain.
    let launch = ev(
        "run",
        "RunInstances",
        0,
        MALLORY,
        vec![
            Fact::RestoredFrom {
                resource: r(K::Instance, "i-1"),
                snapshot: r(K::Image, "ami-marketplace"),
            },
            Fact::NetworkMember {
                member: r(K::Instance, "i-1"),
                group: r(K::NetworkGroup, "sg-db"),
                tags: vec![],
            },
        ],
    );
    assert!(batch(&Config::default(), &[launch, ingress(10, 22, "0.0.0.0/0")]).is_empty());
}

fn snap() -> Resource {
    r(K::Snapshot, "snap-gd")
}

fn share(id: &str, minutes: i64, actor: &str, audience: Audience) -> ParsedEvent {
    ev(
        id,
        "ModifySnapshotAttribute",
        minutes,
        actor,
        vec![Fact::SnapshotShared {
            snapshot: snap(),
            audience,
        }],
    )
}

fn service_share(minutes: i64, account: &str) -> ParsedEvent {
    automated(
        share(
            "gd-share",
            minutes,
            GUARDDUTY,
            Audience::Accounts(vec![account.into()]),
        ),
        "guardduty-malware-protection",
    )
}

fn person_share(minutes: i64, audience: Audience) -> ParsedEvent {
    share("person-share", minutes, MALLORY, audience)
}

fn used_by(minutes: i64, account: &str) -> ParsedEvent {
    ev(
        "used",
        "SharedSnapshotVolumeCreated",
        minutes,
        &format!("arn:aws:iam::{account}:root"),
        vec![Fact::UsedExternally {
            snapshot: snap(),
            account: account.into(),
        }],
    )
}

#[test]
fn managed_service_share_table() {
    let c = Config::default();
    let created = automated(
        ev(
            "gd-create",
            "CreateSnapshot",
            0,
            GUARDDUTY,
            vec![Fact::SnapshotCreated {
                snapshot: snap(),
                source: Some(r(K::Disk, "vol-1")),
            }],
        ),
        "guardduty-malware-protection",
    );
    let accounts = |ids: &[&str]| Audience::Accounts(ids.iter().map(|s| s.to_string()).collect());
    let used = vec!["snapshot.used-externally"];
    let shared_and_used = vec!["snapshot.shared-external", "snapshot.used-externally"];
    let public_and_used = vec!["snapshot.public", "snapshot.used-externally"];
    let none: Vec<&str> = vec![];
    let cases: Vec<(&str, Vec<ParsedEvent>, &Vec<&str>)> = vec![
        (
            "the service uses what it shared with itself",
            vec![
                created.clone(),
                service_share(1, SERVICE),
                used_by(3, SERVICE),
            ],
            &none,
        ),
        (
            "use arrives before the share in a batch",
            vec![
                used_by(3, SERVICE),
                service_share(1, SERVICE),
                created.clone(),
            ],
            &none,
        ),
        (
            "nobody shared with the user",
            vec![created.clone(), used_by(3, SERVICE)],
            &used,
        ),
        (
            "the service shared with one account, another used it",
            vec![
                created.clone(),
                service_share(1, SERVICE),
                used_by(3, OUTSIDE),
            ],
            &used,
        ),
        (
            "a person also shared with the service's account",
            vec![
                created.clone(),
                service_share(1, SERVICE),
                person_share(2, accounts(&[SERVICE])),
                used_by(3, SERVICE),
            ],
            &shared_and_used,
        ),
        (
            "a person made the snapshot public",
            vec![
                created.clone(),
                service_share(1, SERVICE),
                person_share(2, Audience::Public),
                used_by(3, SERVICE),
            ],
            &public_and_used,
        ),
        (
            "a person shared, the account used it",
            vec![
                created.clone(),
                person_share(1, accounts(&[OUTSIDE])),
                used_by(3, OUTSIDE),
            ],
            &shared_and_used,
        ),
        (
            // DLM shares with whatever accounts a person put in its policy.
            "a DLM policy shared, the account used it",
            vec![
                created,
                automated(person_share(1, accounts(&[OUTSIDE])), "dlm"),
                used_by(3, OUTSIDE),
            ],
            &used,
        ),
    ];
    for (name, events, expected) in cases {
        assert_eq!(&rules_of(&batch(&c, &events)), expected, "{name}");
    }
}

#[test]
fn gcp_members_grant_their_principal_and_project() {
    let agent = "service-123456789012@gcp-sa-backupdr.iam.gserviceaccount.com";
    let members = |m: &str| Audience::Principals(vec![m.to_string()]);
    assert!(audience_admits(
        &members("serviceAccount:scanner@vendor-prj.iam.gserviceaccount.com"),
        "vendor-prj",
        None
    ));
    assert!(audience_admits(
        &members(&format!("serviceAccount:{agent}")),
        "google-tenant-prj",
        Some(agent)
    ));
    assert!(!audience_admits(
        &members(&format!("serviceAccount:{agent}")),
        "google-tenant-prj",
        Some("mallory@outsider.example")
    ));
    assert!(!audience_admits(
        &members("user:someone@vendor-prj.example"),
        "vendor-prj",
        None
    ));
    assert!(audience_admits(&Audience::Public, "anyone", None));
    assert!(!audience_admits(
        &Audience::Accounts(vec!["1".into()]),
        "2",
        None
    ));
}

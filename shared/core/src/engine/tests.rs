//! Rule table tests and engine semantics (order independence, idempotency, delivery).

use super::test_support::*;
use super::*;
use crate::finding::finding_id;
use crate::memory::{MemorySink, MemoryStore, SinkFault};
use crate::model::{Audience, Fact, Protocol, Rule};
use crate::model::{Cloud, PortRange, ResourceKind as K, Severity};
use crate::rules::exposed_restore::{is_internet_source, opens_admin_port};
use chrono::Duration;
use pollster::block_on;
use std::collections::BTreeSet;
use std::sync::Mutex;

const OUTSIDE: &str = "999988887777";

/// Every event of these cases happens in one region.
fn ev(id: &str, name: &str, minutes: i64, actor: &str, facts: Vec<Fact>) -> ParsedEvent {
    ev_in("us-east-1", id, name, minutes, actor, facts)
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

fn created(id: &str, minutes: i64, actor: &str, snap: &str) -> ParsedEvent {
    ev(
        id,
        "CreateSnapshot",
        minutes,
        actor,
        vec![Fact::SnapshotCreated {
            snapshot: r(K::Snapshot, snap),
            source: Some(r(K::Disk, "vol-0a")),
        }],
    )
}

fn shared(id: &str, minutes: i64, snap: &str, audience: Audience) -> ParsedEvent {
    ev(
        id,
        "ModifySnapshotAttribute",
        minutes,
        MALLORY,
        vec![Fact::SnapshotShared {
            snapshot: r(K::Snapshot, snap),
            audience,
        }],
    )
}

fn run_instance(id: &str, minutes: i64, instance: &str, snap: &str, group: &str) -> ParsedEvent {
    ev(
        id,
        "RunInstances",
        minutes,
        MALLORY,
        vec![
            Fact::RestoredFrom {
                resource: r(K::Instance, instance),
                snapshot: r(K::Snapshot, snap),
            },
            Fact::NetworkMember {
                member: r(K::Instance, instance),
                group: r(K::NetworkGroup, group),
                tags: vec![],
            },
        ],
    )
}

fn ingress(
    id: &str,
    minutes: i64,
    group: &str,
    protocol: Protocol,
    ports: Vec<PortRange>,
    source: &str,
) -> ParsedEvent {
    ev(
        id,
        "AuthorizeSecurityGroupIngress",
        minutes,
        MALLORY,
        vec![Fact::IngressOpened {
            group: r(K::NetworkGroup, group),
            protocol,
            ports,
            sources: vec![source.into()],
            target_tags: vec![],
            rule: None,
        }],
    )
}

fn attack_chain() -> Vec<ParsedEvent> {
    vec![
        created("e1", 0, ALICE, "snap-1"),
        run_instance("e2", 30, "i-1", "snap-1", "sg-1"),
        ingress(
            "e3",
            40,
            "sg-1",
            Protocol::Tcp,
            vec![PortRange::single(22)],
            "0.0.0.0/0",
        ),
    ]
}

/// Batch mode: ingest everything, then evaluate everything touched over every held fact, as
/// the CLI does.
fn batch(config: &Config, events: &[ParsedEvent]) -> Vec<Finding> {
    let detector = Detector::new(MemoryStore::new(), config.clone());
    block_on(async {
        let mut touched = BTreeSet::new();
        for e in events {
            touched.extend(detector.ingest(e).await.unwrap().touched);
        }
        detector
            .evaluate_held(&touched.into_iter().collect::<Vec<_>>(), 2)
            .await
            .unwrap()
    })
}

/// Streaming mode: each event processed and delivered on arrival, as the functions do.
fn streaming(config: &Config, events: &[ParsedEvent]) -> Vec<String> {
    let detector = Detector::new(MemoryStore::new(), config.clone());
    let sink = MemorySink::new();
    block_on(async {
        let mut now = t0();
        for e in events {
            now = now.max(e.meta.time);
            let findings = detector.process(e, now).await.unwrap();
            detector.deliver(&findings, &sink, now).await.unwrap();
        }
    });
    let mut sent = sink.sent_ids();
    sent.sort();
    sent
}

#[test]
fn exposed_restore_chain_raises_one_critical_finding_with_the_whole_story() {
    let findings = batch(&Config::default(), &attack_chain());
    assert_eq!(
        rules_of(&findings),
        vec!["chain.exposed-restore", "snapshot.restored-by-other"]
    );
    let f = &findings[0];
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.snapshot, "snap-1");
    assert_eq!(f.account, OWN);
    assert_eq!(f.region.as_deref(), Some("us-east-1"));
    assert_eq!(f.techniques, vec!["T1578.001", "T1578.002"]);
    let names: Vec<&str> = f.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "CreateSnapshot",
            "RunInstances",
            "AuthorizeSecurityGroupIngress"
        ]
    );
    assert_eq!(f.resources, vec!["i-1", "sg-1", "snap-1", "vol-0a"]);
    assert_eq!(f.actors, vec![ALICE, MALLORY]);
    assert_eq!(f.first_seen, t0());
    assert_eq!(f.last_seen, t0() + Duration::minutes(40));
    assert!(f.summary.contains("port 22"), "{}", f.summary);
    assert_eq!(
        f.id,
        finding_id(Rule::ChainExposedRestore, Cloud::Aws, "i-1")
    );
}

#[test]
fn exposed_restore_table() {
    let c = Config::default();
    let tcp = |p: u16| vec![PortRange::single(p)];
    let cases: Vec<(&str, ParsedEvent, bool)> = vec![
        (
            "ssh world",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(22), "0.0.0.0/0"),
            true,
        ),
        (
            "rdp world",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(3389), "0.0.0.0/0"),
            true,
        ),
        (
            "https only",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(443), "0.0.0.0/0"),
            false,
        ),
        (
            "ssh narrow",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(22), "203.0.113.0/24"),
            false,
        ),
        (
            "ssh private /8",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(22), "10.0.0.0/8"),
            false,
        ),
        (
            "ipv6 all",
            ingress("x", 40, "sg-1", Protocol::Tcp, tcp(22), "::/0"),
            true,
        ),
        (
            "range containing 22",
            ingress(
                "x",
                40,
                "sg-1",
                Protocol::Tcp,
                vec![PortRange { from: 20, to: 30 }],
                "0.0.0.0/0",
            ),
            true,
        ),
        (
            "all protocols",
            ingress("x", 40, "sg-1", Protocol::All, vec![], "0.0.0.0/0"),
            true,
        ),
        (
            "icmp",
            ingress("x", 40, "sg-1", Protocol::Other, vec![], "0.0.0.0/0"),
            false,
        ),
        (
            "other group",
            ingress("x", 40, "sg-2", Protocol::Tcp, tcp(22), "0.0.0.0/0"),
            false,
        ),
        (
            "opened before restore",
            ingress("x", -600, "sg-1", Protocol::Tcp, tcp(22), "0.0.0.0/0"),
            true,
        ),
        (
            "opened 31 days later",
            ingress(
                "x",
                31 * 24 * 60,
                "sg-1",
                Protocol::Tcp,
                tcp(22),
                "0.0.0.0/0",
            ),
            false,
        ),
        (
            "opened by automation",
            automated(
                ingress("x", 40, "sg-1", Protocol::Tcp, tcp(22), "0.0.0.0/0"),
                "gcp-service-agent",
            ),
            false,
        ),
    ];
    for (name, opening, fires) in cases {
        let events = vec![
            created("e1", 0, ALICE, "snap-1"),
            run_instance("e2", 30, "i-1", "snap-1", "sg-1"),
            opening,
        ];
        let found = batch(&c, &events)
            .iter()
            .any(|f| f.rule == "chain.exposed-restore");
        assert_eq!(found, fires, "case {name}");
    }
}

#[test]
fn instance_from_an_unwatched_image_is_not_a_chain() {
    // A launch from a public AMI whose creation we never saw must not count as a restore.
    let events = vec![
        ev(
            "e2",
            "RunInstances",
            30,
            MALLORY,
            vec![
                Fact::RestoredFrom {
                    resource: r(K::Instance, "i-1"),
                    snapshot: r(K::Image, "ami-public"),
                },
                Fact::NetworkMember {
                    member: r(K::Instance, "i-1"),
                    group: r(K::NetworkGroup, "sg-1"),
                    tags: vec![],
                },
            ],
        ),
        ingress(
            "e3",
            40,
            "sg-1",
            Protocol::Tcp,
            vec![PortRange::single(22)],
            "0.0.0.0/0",
        ),
    ];
    assert!(batch(&Config::default(), &events).is_empty());
    // Once the image's creation is known, the same launch is a chain.
    let mut with_origin = events.clone();
    with_origin.push(ev(
        "e0",
        "CreateImage",
        0,
        ALICE,
        vec![Fact::SnapshotCreated {
            snapshot: r(K::Image, "ami-public"),
            source: Some(r(K::Instance, "i-0")),
        }],
    ));
    assert!(rules_of(&batch(&Config::default(), &with_origin)).contains(&"chain.exposed-restore"));
}

#[test]
fn restore_through_volume_attach_and_nic_groups_links_up() {
    // Azure shape: snapshot → disk → VM uses disk; VM → NIC → NSG; NSG rule opens 3389.
    let events = vec![
        ev(
            "a1",
            "snapshots/write",
            0,
            ALICE,
            vec![Fact::SnapshotCreated {
                snapshot: r(K::Snapshot, "/s/snap"),
                source: None,
            }],
        ),
        ev(
            "a2",
            "disks/write",
            10,
            MALLORY,
            vec![Fact::RestoredFrom {
                resource: r(K::Disk, "/s/disk"),
                snapshot: r(K::Snapshot, "/s/snap"),
            }],
        ),
        ev(
            "a3",
            "virtualMachines/write",
            20,
            MALLORY,
            vec![
                Fact::Uses {
                    instance: r(K::Instance, "/s/vm"),
                    disk: r(K::Disk, "/s/disk"),
                },
                Fact::NetworkMember {
                    member: r(K::Instance, "/s/vm"),
                    group: r(K::NetworkInterface, "/s/nic"),
                    tags: vec![],
                },
            ],
        ),
        ev(
            "a4",
            "networkInterfaces/write",
            21,
            MALLORY,
            vec![Fact::NetworkMember {
                member: r(K::NetworkInterface, "/s/nic"),
                group: r(K::NetworkGroup, "/s/nsg"),
                tags: vec![],
            }],
        ),
        ev(
            "a5",
            "securityRules/write",
            30,
            MALLORY,
            vec![Fact::IngressOpened {
                group: r(K::NetworkGroup, "/s/nsg"),
                protocol: Protocol::Tcp,
                ports: vec![PortRange::single(3389)],
                sources: vec!["Internet".into()],
                target_tags: vec![],
                rule: Some("allow-rdp".into()),
            }],
        ),
    ];
    let findings = batch(&Config::default(), &events);
    let f = findings
        .iter()
        .find(|f| f.rule == "chain.exposed-restore")
        .expect("exposed restore");
    assert_eq!(f.snapshot, "/s/snap");
    assert_eq!(f.events.len(), 5);
}

#[test]
fn gcp_firewall_target_tags_must_match_the_instance() {
    let mk = |target: &str| {
        vec![
            created("g1", 0, ALICE, "projects/p/global/snapshots/s"),
            ev(
                "g2",
                "v1.compute.instances.insert",
                10,
                MALLORY,
                vec![
                    Fact::RestoredFrom {
                        resource: r(K::Instance, "projects/p/zones/z/instances/vm"),
                        snapshot: r(K::Snapshot, "projects/p/global/snapshots/s"),
                    },
                    Fact::NetworkMember {
                        member: r(K::Instance, "projects/p/zones/z/instances/vm"),
                        group: r(K::NetworkGroup, "projects/p/global/networks/default"),
                        tags: vec!["web".into()],
                    },
                ],
            ),
            ev(
                "g3",
                "v1.compute.firewalls.insert",
                20,
                MALLORY,
                vec![Fact::IngressOpened {
                    group: r(K::NetworkGroup, "projects/p/global/networks/default"),
                    protocol: Protocol::Tcp,
                    ports: vec![PortRange::single(22)],
                    sources: vec!["0.0.0.0/0".into()],
                    target_tags: vec![target.into()],
                    rule: None,
                }],
            ),
        ]
    };
    assert!(rules_of(&batch(&Config::default(), &mk("web"))).contains(&"chain.exposed-restore"));
    assert!(!rules_of(&batch(&Config::default(), &mk("db"))).contains(&"chain.exposed-restore"));
}

#[test]
fn share_rules_table() {
    let mut c = Config::default();
    c.trust.accounts = vec!["444455556666".into()];
    c.trust.principals = vec!["*@example.com".into()];
    let cases: Vec<(&str, Audience, Option<&str>)> = vec![
        ("public", Audience::Public, Some("snapshot.public")),
        (
            "outside account",
            Audience::Accounts(vec![OUTSIDE.into()]),
            Some("snapshot.shared-external"),
        ),
        ("own account", Audience::Accounts(vec![OWN.into()]), None),
        (
            "trusted org account",
            Audience::Accounts(vec!["444455556666".into()]),
            None,
        ),
        (
            "mixed",
            Audience::Accounts(vec!["444455556666".into(), OUTSIDE.into()]),
            Some("snapshot.shared-external"),
        ),
        (
            "gcp outside user",
            Audience::Principals(vec!["user:attacker@gmail.com".into()]),
            Some("snapshot.shared-external"),
        ),
        (
            "gcp trusted user",
            Audience::Principals(vec!["user:ops@example.com".into()]),
            None,
        ),
    ];
    for (name, audience, want) in cases {
        let findings = batch(
            &c,
            &[
                created("e1", 0, ALICE, "snap-1"),
                shared("e2", 5, "snap-1", audience),
            ],
        );
        assert_eq!(findings.first().map(|f| f.rule.id()), want, "case {name}");
        assert!(findings.len() <= 1, "case {name}: {findings:?}");
    }
    let by_backup = automated(shared("e2", 5, "snap-1", Audience::Public), "aws-backup");
    assert!(
        batch(&c, &[by_backup]).is_empty(),
        "automation never triggers"
    );
}

#[test]
fn public_share_of_a_copy_reports_the_root_snapshot() {
    let events = vec![
        created("e1", 0, ALICE, "snap-root"),
        ev(
            "e2",
            "CopySnapshot",
            5,
            MALLORY,
            vec![Fact::SnapshotCopied {
                snapshot: r(K::Snapshot, "snap-copy"),
                source: r(K::Snapshot, "snap-root"),
            }],
        ),
        shared("e3", 6, "snap-copy", Audience::Public),
    ];
    let findings = batch(&Config::default(), &events);
    assert_eq!(rules_of(&findings), vec!["snapshot.public"]);
    let f = &findings[0];
    assert_eq!(f.snapshot, "snap-root");
    assert_eq!(
        f.events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        vec!["e1", "e2", "e3"]
    );
    assert_eq!(f.techniques, vec!["T1578.001", "T1537"]);
}

#[test]
fn exported_and_used_externally() {
    let mut c = Config::default();
    c.trust.principals = vec!["arn:aws:iam::*:role/forensics-*".into()];
    let export = |actor: &str| {
        ev(
            "x1",
            "GetSnapshotBlock",
            5,
            actor,
            vec![Fact::SnapshotExported {
                snapshot: r(K::Snapshot, "snap-1"),
                method: "ebs-direct-api".into(),
            }],
        )
    };
    assert_eq!(
        rules_of(&batch(&c, &[export(MALLORY)])),
        vec!["snapshot.exported"]
    );
    assert!(batch(
        &c,
        &[export(
            "arn:aws:sts::111122223333:assumed-role/forensics-ir/s"
        )]
    )
    .is_empty());

    let used = |account: &str| {
        automated(
            ev(
                "u1",
                "SharedSnapshotCopyInitiated",
                5,
                account,
                vec![Fact::UsedExternally {
                    snapshot: r(K::Snapshot, "snap-1"),
                    account: account.into(),
                }],
            ),
            "irrelevant-label",
        )
    };
    let f = batch(&c, &[used(OUTSIDE)]);
    assert_eq!(rules_of(&f), vec!["snapshot.used-externally"]);
    assert_eq!(f[0].severity, Severity::Critical);
    assert!(batch(&c, &[used(OWN)]).is_empty());
}

#[test]
fn restored_by_other_table() {
    let c = Config::default();
    let restore = |actor: &str, minutes: i64| {
        ev(
            "r1",
            "CreateVolume",
            minutes,
            actor,
            vec![Fact::RestoredFrom {
                resource: r(K::Disk, "vol-9"),
                snapshot: r(K::Snapshot, "snap-1"),
            }],
        )
    };
    let fire = |events: Vec<ParsedEvent>| {
        rules_of(&batch(&c, &events)).contains(&"snapshot.restored-by-other")
    };
    assert!(fire(vec![
        created("e1", 0, ALICE, "snap-1"),
        restore(MALLORY, 10)
    ]));
    assert!(
        !fire(vec![created("e1", 0, ALICE, "snap-1"), restore(ALICE, 10)]),
        "same principal"
    );
    assert!(!fire(vec![restore(MALLORY, 10)]), "creator unknown");
    assert!(
        !fire(vec![
            created("e1", 0, ALICE, "snap-1"),
            restore(MALLORY, 31 * 24 * 60)
        ]),
        "outside window"
    );
    assert!(
        !fire(vec![
            created("e1", 0, ALICE, "snap-1"),
            automated(restore(MALLORY, 10), "aws-backup")
        ]),
        "automation"
    );
}

#[test]
fn failed_or_unrelated_events_leave_no_finding_and_expired_facts_are_ignored() {
    // The snapshot creation is older than the window when the chain completes.
    let mut events = attack_chain();
    events[0].meta.time = t0() - Duration::days(60);
    let findings = batch(&Config::default(), &events);
    assert!(
        findings.iter().all(|f| f.rule != "chain.exposed-restore"),
        "{findings:?}"
    );
}

#[test]
fn redelivery_writes_nothing_and_alerts_nothing() {
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let sink = MemorySink::new();
    block_on(async {
        for e in attack_chain() {
            let first = detector.ingest(&e).await.unwrap();
            assert!(first.new_facts > 0);
            let again = detector.ingest(&e).await.unwrap();
            assert_eq!(again.new_facts, 0);
            let now = e.meta.time;
            for _ in 0..3 {
                let findings = detector.evaluate(&first.touched, now).await.unwrap();
                detector.deliver(&findings, &sink, now).await.unwrap();
            }
        }
    });
    assert_eq!(
        sink.sent().len(),
        2,
        "exposed-restore and restored-by-other, once each"
    );
}

#[test]
fn transient_sink_failure_is_retried_once_and_permanent_is_settled() {
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let sink = MemorySink::new();
    let findings = batch(&Config::default(), &attack_chain());
    let now = t0();
    block_on(async {
        sink.fail_next(
            1,
            SinkFault::Transient {
                retry_after_secs: Some(1),
            },
        );
        let d = detector.deliver(&findings[..1], &sink, now).await.unwrap();
        assert!(d.needs_retry());
        assert!(sink.sent().is_empty());
        let d = detector.deliver(&findings[..1], &sink, now).await.unwrap();
        assert_eq!(d.sent.len(), 1);
        let d = detector.deliver(&findings[..1], &sink, now).await.unwrap();
        assert_eq!(d.already_sent, 1);

        sink.fail_next(1, SinkFault::Permanent);
        let d = detector.deliver(&findings[1..2], &sink, now).await.unwrap();
        assert_eq!(d.rejected.len(), 1);
        let d = detector.deliver(&findings[1..2], &sink, now).await.unwrap();
        assert_eq!(
            d.already_sent, 1,
            "a permanent rejection is not retried forever"
        );
    });
    assert_eq!(sink.sent().len(), 1);
}

#[test]
fn findings_below_min_severity_are_not_sent() {
    let mut c = Config::default();
    c.alerts.min_severity = Severity::Critical;
    let detector = Detector::new(MemoryStore::new(), c.clone());
    let sink = MemorySink::new();
    let findings = batch(&c, &attack_chain());
    let d = block_on(detector.deliver(&findings, &sink, t0())).unwrap();
    assert_eq!(d.sent.len(), 1);
    assert_eq!(d.below_threshold, 1);
}

#[test]
fn concurrent_deliveries_of_one_chain_send_once() {
    let detector = std::sync::Arc::new(Detector::new(MemoryStore::new(), Config::default()));
    let sink = MemorySink::new();
    let events = attack_chain();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let detector = detector.clone();
            let sink = sink.clone();
            let events = events.clone();
            std::thread::spawn(move || {
                block_on(async {
                    // Each thread handles the events in a different rotation, as racing handlers would.
                    for k in 0..events.len() {
                        let e = &events[(i + k) % events.len()];
                        let findings = detector
                            .process(e, t0() + Duration::hours(1))
                            .await
                            .unwrap();
                        detector
                            .deliver(&findings, &sink, t0() + Duration::hours(1))
                            .await
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut sent = sink.sent_ids();
    sent.sort();
    let before = sent.len();
    sent.dedup();
    assert_eq!(before, sent.len(), "no finding sent twice");
    assert_eq!(sent.len(), 2);
}

#[test]
fn internet_sources_are_decided_on_prefix_length() {
    for s in [
        "0.0.0.0/0",
        "0.0.0.0/00",
        " 0.0.0.0/0 ",
        "::/0",
        "0::0/0",
        "*",
        "Internet",
        "any",
        "64.0.0.0/2",
        "2000::/3",
    ] {
        assert!(is_internet_source(s), "{s}");
    }
    for s in [
        "10.0.0.0/8",
        "203.0.113.0/24",
        "0.0.0.0/16",
        "127.0.0.1/32",
        "VirtualNetwork",
        "fc00::/7",
        "garbage",
        "1.2.3.4",
    ] {
        assert!(!is_internet_source(s), "{s}");
    }
}

#[test]
fn admin_ports() {
    let admin = [22, 3389];
    assert!(opens_admin_port(Protocol::All, &[], &admin));
    assert!(opens_admin_port(Protocol::Tcp, &[PortRange::ALL], &admin));
    assert!(opens_admin_port(
        Protocol::Udp,
        &[PortRange {
            from: 3000,
            to: 4000
        }],
        &admin
    ));
    assert!(!opens_admin_port(
        Protocol::Tcp,
        &[PortRange::single(80)],
        &admin
    ));
    assert!(!opens_admin_port(
        Protocol::Other,
        &[PortRange::ALL],
        &admin
    ));
}

mod own_time {
    use super::*;
    use crate::ports::{ResourceFacts, StoreError};
    use std::collections::BTreeMap;

    const DAY: i64 = 24 * 60;

    /// A share judged at the end of a scan that reaches far past it is still a share.
    #[test]
    fn a_single_event_chain_is_judged_whenever_the_scan_ends() {
        let events = vec![
            shared("s1", 0, "snap-1", Audience::Accounts(vec![OUTSIDE.into()])),
            ingress(
                "late",
                400 * DAY,
                "sg-9",
                Protocol::Tcp,
                vec![PortRange::single(22)],
                "0.0.0.0/0",
            ),
        ];
        assert_eq!(
            rules_of(&batch(&Config::default(), &events)),
            vec!["snapshot.shared-external"]
        );
        assert_eq!(streaming(&Config::default(), &events).len(), 1);
    }

    /// A late event is judged at its own time by the per-event path: it links to the facts that
    /// were within the window of it, even when the wall clock is months later.
    #[test]
    fn the_per_event_path_judges_a_late_event_at_its_own_time() {
        let detector = Detector::new(MemoryStore::new(), Config::default());
        let months_later = t0() + Duration::days(90);
        block_on(async {
            detector
                .ingest(&created("e1", 0, ALICE, "snap-1"))
                .await
                .unwrap();
            let restore = ev(
                "r1",
                "CreateVolume",
                10,
                MALLORY,
                vec![Fact::RestoredFrom {
                    resource: r(K::Disk, "vol-9"),
                    snapshot: r(K::Snapshot, "snap-1"),
                }],
            );
            let found = detector.process(&restore, months_later).await.unwrap();
            assert_eq!(rules_of(&found), vec!["snapshot.restored-by-other"]);
        });
    }

    /// Every pair of an exposed restore is within the window, but the whole chain is not: the
    /// snapshot's origin and the opening are 40 days apart, so they were never held together.
    #[test]
    fn an_exposed_restore_must_fit_in_one_window() {
        let chain = |open_at: i64| {
            vec![
                created("e1", 0, ALICE, "snap-1"),
                run_instance("e2", 20 * DAY, "i-1", "snap-1", "sg-1"),
                ingress(
                    "e3",
                    open_at,
                    "sg-1",
                    Protocol::Tcp,
                    vec![PortRange::single(22)],
                    "0.0.0.0/0",
                ),
            ]
        };
        let c = Config::default();
        let exposed = |events: &[ParsedEvent]| {
            rules_of(&batch(&c, events)).contains(&"chain.exposed-restore")
        };
        assert!(exposed(&chain(29 * DAY)));
        assert!(!exposed(&chain(40 * DAY)));
        let streamed = |events: &[ParsedEvent]| streaming(&c, events).len();
        assert_eq!(
            streamed(&chain(29 * DAY)),
            2,
            "exposed-restore and restored-by-other"
        );
        assert_eq!(streamed(&chain(40 * DAY)), 1, "restored-by-other only");
    }

    /// Counts how often each resource is read from the store, and the reads themselves.
    #[derive(Default)]
    struct CountingStore {
        inner: MemoryStore,
        loads: Mutex<BTreeMap<String, usize>>,
        /// The resources of each `load_facts` call, in order.
        requests: Mutex<Vec<Vec<String>>>,
    }

    impl StateStore for CountingStore {
        async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
            self.inner.add_facts(batch).await
        }
        async fn load_facts(
            &self,
            resources: &[String],
            now: DateTime<Utc>,
        ) -> Result<Vec<ResourceFacts>, StoreError> {
            {
                let mut loads = self.loads.lock().unwrap();
                for r in resources {
                    *loads.entry(r.clone()).or_default() += 1;
                }
                self.requests.lock().unwrap().push(resources.to_vec());
            }
            self.inner.load_facts(resources, now).await
        }
        async fn claim_alert(
            &self,
            finding_id: &str,
            now: DateTime<Utc>,
            lease_secs: i64,
            expires_at: i64,
        ) -> Result<Claim, StoreError> {
            self.inner
                .claim_alert(finding_id, now, lease_secs, expires_at)
                .await
        }
        async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
            self.inner.mark_alert_sent(finding_id).await
        }
        async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
            self.inner.release_alert(finding_id).await
        }
    }

    /// A snapshot with thousands of dependents is read once per evaluation, not once per chunk:
    /// reloading it per chunk made evaluation quadratic in the hub's size.
    #[test]
    fn a_hub_is_loaded_once_however_many_chunks_reach_it() {
        let detector = Detector::new(CountingStore::default(), Config::default());
        let dependents = 3 * crate::graph::HUB_OBSERVATIONS;
        let findings = block_on(async {
            let mut touched = BTreeSet::new();
            let mut events = vec![created("c1", 0, ALICE, "snap-hub")];
            for i in 0..dependents {
                events.push(ev(
                    &format!("r{i}"),
                    "CreateVolume",
                    1 + i as i64,
                    ALICE,
                    vec![Fact::RestoredFrom {
                        resource: r(K::Disk, &format!("vol-{i:05}")),
                        snapshot: r(K::Snapshot, "snap-hub"),
                    }],
                ));
            }
            for e in &events {
                touched.extend(detector.ingest(e).await.unwrap().touched);
            }
            let touched: Vec<String> = touched.into_iter().collect();
            detector.evaluate_held(&touched, 50).await.unwrap()
        });
        assert!(
            findings.is_empty(),
            "the creator's own restores: {findings:?}"
        );
        let loads = detector.store().loads.lock().unwrap();
        assert_eq!(loads["snap-hub"], 1, "hub reloaded per chunk");
        assert!(loads.values().all(|&n| n <= 2), "{loads:?}");
    }

    /// A node first reached upstream (a source of an image) and later downstream (a copy of a
    /// copy) is an anchor, and its own dependents are walked: the walk in both directions at once
    /// loads what walking down and then up loaded.
    #[test]
    fn a_node_reached_upstream_first_is_walked_downstream_when_reached_again() {
        let detector = Detector::new(MemoryStore::new(), Config::default());
        let copy = |id: &str, minutes: i64, snapshot: &str, source: &str| {
            ev(
                id,
                "CopySnapshot",
                minutes,
                ALICE,
                vec![Fact::SnapshotCopied {
                    snapshot: r(K::Snapshot, snapshot),
                    source: r(K::Snapshot, source),
                }],
            )
        };
        let events = vec![
            created("d1", 0, ALICE, "snap-t"),
            copy("d2", 1, "snap-k1", "snap-t"),
            copy("d3", 2, "snap-k2", "snap-k1"),
            copy("d4", 3, "snap-n", "snap-k2"),
            ev(
                "d5",
                "RegisterImage",
                4,
                ALICE,
                vec![Fact::ImageRegistered {
                    image: r(K::Image, "ami-i"),
                    snapshots: vec![r(K::Snapshot, "snap-t"), r(K::Snapshot, "snap-n")],
                }],
            ),
            ev(
                "d6",
                "CreateVolume",
                5,
                MALLORY,
                vec![Fact::RestoredFrom {
                    resource: r(K::Disk, "vol-n"),
                    snapshot: r(K::Snapshot, "snap-n"),
                }],
            ),
        ];
        let anchors = block_on(async {
            for e in &events {
                detector.ingest(e).await.unwrap();
            }
            let mut loader =
                crate::graph::GraphLoader::new(detector.store(), DateTime::<Utc>::MIN_UTC);
            loader
                .load_chains(&["snap-t".to_string()], &BTreeSet::new())
                .await
                .unwrap()
        });
        let expected: BTreeSet<String> =
            ["ami-i", "snap-k1", "snap-k2", "snap-n", "snap-t", "vol-n"]
                .map(String::from)
                .into();
        assert_eq!(anchors, expected);
    }

    /// The walk reads one level of the chain per store request, downstream and upstream together:
    /// a share of a copied snapshot whose copy was restored and launched needs the copy, then its
    /// source and the volume at once, then the instance. Walking down and then up read the source
    /// in a request of its own (4 reads), a DynamoDB request per level on the per-event path.
    #[test]
    fn the_walk_reads_each_level_once_in_both_directions() {
        let detector = Detector::new(CountingStore::default(), Config::default());
        let events = vec![
            created("c1", 0, ALICE, "snap-a"),
            ev(
                "c2",
                "CopySnapshot",
                1,
                ALICE,
                vec![Fact::SnapshotCopied {
                    snapshot: r(K::Snapshot, "snap-b"),
                    source: r(K::Snapshot, "snap-a"),
                }],
            ),
            ev(
                "c3",
                "CreateVolume",
                2,
                MALLORY,
                vec![Fact::RestoredFrom {
                    resource: r(K::Disk, "vol-b"),
                    snapshot: r(K::Snapshot, "snap-b"),
                }],
            ),
            ev(
                "c4",
                "AttachVolume",
                3,
                MALLORY,
                vec![Fact::Uses {
                    instance: r(K::Instance, "i-b"),
                    disk: r(K::Disk, "vol-b"),
                }],
            ),
        ];
        let share = shared("c5", 4, "snap-b", Audience::Public);
        let (findings, requests) = block_on(async {
            for e in &events {
                detector.ingest(e).await.unwrap();
            }
            detector.store().requests.lock().unwrap().clear();
            let findings = detector.process(&share, share.meta.time).await.unwrap();
            let requests = detector.store().requests.lock().unwrap().clone();
            (findings, requests)
        });
        assert!(
            rules_of(&findings).contains(&"snapshot.public"),
            "the share is judged with its whole chain: {findings:?}"
        );
        let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requests,
            vec![ids(&["snap-b"]), ids(&["snap-a", "vol-b"]), ids(&["i-b"])],
            "one read per level"
        );
    }
}

mod order_independence {
    use super::*;
    use proptest::prelude::*;

    /// Several interleaved chains: an exposed restore, a public copy, an external share and a
    /// benign backup flow.
    fn scenario() -> Vec<ParsedEvent> {
        let mut events = attack_chain();
        events.push(created("b1", 1, ALICE, "snap-2"));
        events.push(ev(
            "b2",
            "CopySnapshot",
            2,
            MALLORY,
            vec![Fact::SnapshotCopied {
                snapshot: r(K::Snapshot, "snap-3"),
                source: r(K::Snapshot, "snap-2"),
            }],
        ));
        events.push(shared("b3", 3, "snap-3", Audience::Public));
        events.push(shared(
            "c1",
            4,
            "snap-2",
            Audience::Accounts(vec![OUTSIDE.into()]),
        ));
        events.push(automated(
            created("d1", 5, "backup.amazonaws.com", "snap-9"),
            "aws-backup",
        ));
        events.push(automated(
            ev(
                "d2",
                "CreateVolume",
                6,
                "backup.amazonaws.com",
                vec![Fact::RestoredFrom {
                    resource: r(K::Disk, "vol-9"),
                    snapshot: r(K::Snapshot, "snap-9"),
                }],
            ),
            "aws-backup",
        ));
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn any_permutation_with_duplicates_yields_the_same_findings(
            order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(),
            dups in proptest::collection::vec(0..9usize, 0..6),
        ) {
            let base = scenario();
            let reference = batch(&Config::default(), &base);
            prop_assert_eq!(
                rules_of(&reference),
                vec!["chain.exposed-restore", "snapshot.restored-by-other", "snapshot.public", "snapshot.shared-external"]
            );
            let mut events: Vec<ParsedEvent> = order.iter().map(|&i| base[i].clone()).collect();
            for d in dups {
                let at = d % (events.len() + 1);
                events.insert(at, base[d].clone());
            }
            prop_assert_eq!(&batch(&Config::default(), &events), &reference);
            let mut reference_ids: Vec<String> = reference.iter().map(|f| f.id.clone()).collect();
            reference_ids.sort();
            prop_assert_eq!(streaming(&Config::default(), &events), reference_ids);
        }
    }
}

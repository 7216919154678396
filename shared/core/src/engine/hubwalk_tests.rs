//! The per-event path does not re-walk a hub's dependents when an event only links a new child
//! to it (a launch from a golden image, a new member of a default security group): the reads per
//! launch stay flat however many instances the image has, and the findings delivered are those
//! of the full walk, on every stream under `tests/` and on generated hub-heavy streams.

use super::test_support::*;
use super::*;
use crate::graph::names_only_children;
use crate::memory::{MemorySink, MemoryStore};
use crate::model::{Audience, Fact, PortRange, Protocol, ResourceKind as K};
use crate::parse::detect::{for_each_contained_record, for_each_record};
use crate::parse::Parsed;
use crate::ports::{Claim, StoreError};
use pollster::block_on;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const OUTSIDE: &str = "999988887777";

/// Counts the resources each evaluation reads from the store.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    reads: Mutex<Vec<Vec<String>>>,
}

impl CountingStore {
    /// The resources read since the last call, and the number of requests.
    fn take_reads(&self) -> (usize, usize) {
        let mut reads = self.reads.lock().unwrap();
        let out = (reads.iter().map(Vec::len).sum(), reads.len());
        reads.clear();
        out
    }
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
        self.reads.lock().unwrap().push(resources.to_vec());
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

fn ev(id: &str, name: &str, minutes: i64, actor: &str, facts: Vec<Fact>) -> ParsedEvent {
    ev_in("us-east-1", id, name, minutes, actor, facts)
}

/// `RunInstances` of `instance` from `image` into `group`, as the AWS parser states it.
fn launch(
    id: &str,
    minutes: i64,
    actor: &str,
    instance: &str,
    image: &str,
    group: &str,
) -> ParsedEvent {
    ev(
        id,
        "RunInstances",
        minutes,
        actor,
        vec![
            Fact::RestoredFrom {
                resource: r(K::Instance, instance),
                snapshot: r(K::Image, image),
            },
            Fact::NetworkMember {
                member: r(K::Instance, instance),
                group: r(K::NetworkGroup, group),
                tags: vec![],
            },
        ],
    )
}

fn ssh_opened(id: &str, minutes: i64, group: &str) -> ParsedEvent {
    ev(
        id,
        "AuthorizeSecurityGroupIngress",
        minutes,
        MALLORY,
        vec![Fact::IngressOpened {
            group: r(K::NetworkGroup, group),
            protocol: Protocol::Tcp,
            ports: vec![PortRange { from: 22, to: 22 }],
            sources: vec!["0.0.0.0/0".into()],
            target_tags: vec![],
            rule: None,
        }],
    )
}

/// A golden image: a snapshot Alice took, registered as `ami-gold`.
fn golden_image() -> Vec<ParsedEvent> {
    vec![
        ev(
            "g1",
            "CreateSnapshot",
            0,
            ALICE,
            vec![Fact::SnapshotCreated {
                snapshot: r(K::Snapshot, "snap-gold"),
                source: None,
            }],
        ),
        ev(
            "g2",
            "RegisterImage",
            1,
            ALICE,
            vec![Fact::ImageRegistered {
                image: r(K::Image, "ami-gold"),
                snapshots: vec![r(K::Snapshot, "snap-gold")],
            }],
        ),
    ]
}

/// Which facts change a node's dependents' chains, and which only name a new child of it.
#[test]
fn only_a_link_naming_a_child_leaves_the_dependents_alone() {
    let run = launch("l", 2, ALICE, "i-1", "ami-gold", "sg-default");
    assert!(names_only_children(&run.facts, "ami-gold"), "a launch");
    assert!(names_only_children(&run.facts, "sg-default"), "a member");
    assert!(!names_only_children(&run.facts, "i-1"), "the new child");
    let [created, registered] = <[ParsedEvent; 2]>::try_from(golden_image()).unwrap();
    assert!(!names_only_children(&created.facts, "snap-gold"));
    assert!(
        names_only_children(&registered.facts, "snap-gold"),
        "a registration over it"
    );
    assert!(
        !names_only_children(&registered.facts, "ami-gold"),
        "its origin"
    );
    assert!(!names_only_children(
        &ssh_opened("o", 3, "sg-default").facts,
        "sg-default"
    ));
    let share = ev(
        "s",
        "ModifyImageAttribute",
        4,
        MALLORY,
        vec![Fact::SnapshotShared {
            snapshot: r(K::Image, "ami-gold"),
            audience: Audience::Public,
        }],
    );
    assert!(!names_only_children(&share.facts, "ami-gold"));
    assert!(
        !names_only_children(&share.facts, "sg-default"),
        "not stored there"
    );
}

/// A node the event only linked a child to, but that is downstream of another node the same
/// event changed, has its dependents walked after all: `snap-b` (copied from `snap-a`) is
/// reached from `snap-a`, so the volume restored from it is judged with `snap-a`'s change.
#[test]
fn a_pruned_node_reached_from_a_changed_one_is_walked() {
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let events = [
        ev(
            "c1",
            "CopySnapshot",
            1,
            ALICE,
            vec![Fact::SnapshotCopied {
                snapshot: r(K::Snapshot, "snap-b"),
                source: r(K::Snapshot, "snap-a"),
            }],
        ),
        ev(
            "c2",
            "CreateVolume",
            2,
            MALLORY,
            vec![Fact::RestoredFrom {
                resource: r(K::Disk, "vol-b"),
                snapshot: r(K::Snapshot, "snap-b"),
            }],
        ),
    ];
    let touched = ["snap-b".to_string(), "snap-a".to_string()];
    let (pruned, full) = block_on(async {
        for e in &events {
            detector.ingest(e).await.unwrap();
        }
        let walk = |parent_only: BTreeSet<String>| {
            let (store, touched) = (detector.store(), &touched);
            async move {
                let mut loader = crate::graph::GraphLoader::new(store, DateTime::<Utc>::MIN_UTC);
                loader.load_chains(touched, &parent_only).await.unwrap()
            }
        };
        (
            walk(BTreeSet::from(["snap-b".to_string()])).await,
            walk(BTreeSet::new()).await,
        )
    });
    assert!(pruned.contains("vol-b"), "{pruned:?}");
    assert_eq!(pruned, full);
}

/// N launches from one image into one group: what each further launch reads does not grow with
/// N. The full walk re-read every earlier instance of the image (and, through the group, every
/// member) at each launch: 89.5 read units per event in the organization load test.
#[test]
fn a_launch_from_a_golden_image_reads_the_same_whatever_the_image_has_launched() {
    let detector = Detector::new(CountingStore::default(), Config::default());
    let reads_per_launch: Vec<(usize, usize)> = block_on(async {
        for e in golden_image() {
            detector.process(&e, e.meta.time).await.unwrap();
        }
        let mut per_launch = Vec::new();
        for i in 0..200 {
            let e = launch(
                &format!("l{i}"),
                2 + i,
                ALICE,
                &format!("i-{i:05}"),
                "ami-gold",
                "sg-default",
            );
            detector.store().take_reads();
            assert!(detector.process(&e, e.meta.time).await.unwrap().is_empty());
            per_launch.push(detector.store().take_reads());
        }
        per_launch
    });
    // The instance, the image and the group in one request; the snapshot under the image.
    assert_eq!(reads_per_launch[10], (4, 2), "{reads_per_launch:?}");
    assert_eq!(
        reads_per_launch[199], reads_per_launch[10],
        "reads grow with the hub"
    );
}

/// The pruning keeps what a hub's own change must reach: an opening of the group after the
/// launches reaches every member, a share of the image every instance's finding context.
#[test]
fn a_change_of_the_hub_itself_still_reaches_every_dependent() {
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let sink = MemorySink::new();
    let launches = 30;
    block_on(async {
        let mut events = golden_image();
        for i in 0..launches {
            events.push(launch(
                &format!("l{i}"),
                2 + i,
                MALLORY,
                &format!("i-{i:05}"),
                "ami-gold",
                "sg-default",
            ));
        }
        events.push(ssh_opened("o1", 60, "sg-default"));
        for e in &events {
            let findings = detector.process(e, e.meta.time).await.unwrap();
            detector
                .deliver(&findings, &sink, e.meta.time)
                .await
                .unwrap();
        }
    });
    let exposed = sink
        .sent()
        .iter()
        .filter(|f| f.rule.id() == "chain.exposed-restore")
        .count();
    assert_eq!(
        exposed, launches as usize,
        "every member of the opened group"
    );
}

/// Each finding as first delivered, in delivery order, through `process` (pruned or full walk)
/// and `deliver`, one event at a time in the given order, each judged at its own time.
///
/// Later deliveries of the same id are left out: an alert claim lives one window, so a finding
/// re-judged more than a window after it was sent is sent again, and the full walk re-judges a
/// hub's every dependent at each new link to the hub, the pruned walk only when its chain
/// changed. Those repeats say nothing new about the chain.
fn delivered(events: &[ParsedEvent], prune: bool) -> Vec<Finding> {
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let sink = MemorySink::new();
    block_on(async {
        for e in events {
            let findings = if prune {
                detector.process(e, e.meta.time).await.unwrap()
            } else {
                detector.process_full_walk(e, e.meta.time).await.unwrap()
            };
            detector
                .deliver(&findings, &sink, e.meta.time)
                .await
                .unwrap();
        }
    });
    let mut seen = BTreeSet::new();
    sink.sent()
        .into_iter()
        .filter(|f| seen.insert(f.id.clone()))
        .collect()
}

/// The events of every record in `path`, read as the CLI reads it: the elements of a top-level
/// array, a whole JSON document, or JSON lines.
fn events_of(path: &Path) -> Vec<ParsedEvent> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut events = Vec::new();
    let mut keep = |o: crate::parse::detect::RecordOutcome<'_>| {
        if let Ok(Parsed::Event(e)) = o.result {
            events.push(e);
        }
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) => {
            for item in items {
                for_each_contained_record(&item.to_string(), &mut keep);
            }
        }
        Ok(_) => for_each_record(&text, &mut keep),
        Err(_) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                for_each_record(line, &mut keep);
            }
        }
    }
    events
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path
            .extension()
            .is_some_and(|x| x == "json" || x == "jsonl")
        {
            out.push(path);
        }
    }
    out
}

/// Every stream the repository's tests replay: each scenario's input, each cloud's fixtures
/// and each demo file, as one stream each.
fn repository_streams() -> Vec<(String, Vec<ParsedEvent>)> {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests");
    let mut dirs: Vec<PathBuf> = Vec::new();
    for group in ["scenarios", "fixtures"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(tests.join(group))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    let mut streams: Vec<(String, Vec<ParsedEvent>)> = dirs
        .iter()
        .map(|d| {
            (
                d.display().to_string(),
                files_under(d).iter().flat_map(|f| events_of(f)).collect(),
            )
        })
        .collect();
    for demo in files_under(&tests.join("demo")) {
        streams.push((demo.display().to_string(), events_of(&demo)));
    }
    streams
}

/// The pruned walk delivers what the full walk delivers on every stream under `tests/`: as
/// stored, in time order and in reverse time order (every event late).
#[test]
fn the_pruned_walk_delivers_the_full_walks_findings_on_every_test_stream() {
    // The baseline fixtures are inventories, not events.
    let streams: Vec<_> = repository_streams()
        .into_iter()
        .filter(|(_, events)| !events.is_empty())
        .collect();
    assert!(streams.len() >= 18, "{} streams", streams.len());
    let mut findings = 0;
    for (name, mut events) in streams {
        for order in 0..3 {
            match order {
                1 => {
                    events.sort_by(|a, b| (a.meta.time, &a.meta.id).cmp(&(b.meta.time, &b.meta.id)))
                }
                2 => events.reverse(),
                _ => {}
            }
            let full = delivered(&events, false);
            assert_eq!(delivered(&events, true), full, "{name}, order {order}");
            findings += full.len();
        }
    }
    assert!(findings > 30, "the streams alert: {findings}");
}

/// One step of a generated history.
#[derive(Debug, Clone)]
enum Step {
    Create {
        snap: usize,
    },
    Copy {
        from: usize,
        to: usize,
    },
    Register {
        snap: usize,
    },
    Share {
        image: bool,
        snap: usize,
        public: bool,
    },
    Export {
        snap: usize,
    },
    UsedOutside {
        snap: usize,
    },
    /// Several launches from one image into one group in a row: the hub.
    Launches {
        count: usize,
        golden: bool,
        group: usize,
    },
    Volume {
        snap: usize,
        disk: usize,
    },
    Attach {
        instance: usize,
        disk: usize,
    },
    Open {
        group: usize,
        admin: bool,
    },
    RestoreDb {
        snap: usize,
        db: usize,
        group: usize,
        public: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..3usize).prop_map(|snap| Step::Create { snap }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Copy { from, to }),
        1 => (0..3usize).prop_map(|snap| Step::Register { snap }),
        1 => (any::<bool>(), 0..3usize, any::<bool>())
            .prop_map(|(image, snap, public)| Step::Share { image, snap, public }),
        1 => (0..3usize).prop_map(|snap| Step::Export { snap }),
        1 => (0..3usize).prop_map(|snap| Step::UsedOutside { snap }),
        3 => (1..12usize, any::<bool>(), 0..2usize)
            .prop_map(|(count, golden, group)| Step::Launches { count, golden, group }),
        1 => (0..3usize, 0..4usize).prop_map(|(snap, disk)| Step::Volume { snap, disk }),
        1 => (0..40usize, 0..4usize).prop_map(|(instance, disk)| Step::Attach { instance, disk }),
        2 => (0..2usize, any::<bool>()).prop_map(|(group, admin)| Step::Open { group, admin }),
        1 => (0..3usize, 0..2usize, 0..2usize, any::<bool>())
            .prop_map(|(snap, db, group, public)| Step::RestoreDb { snap, db, group, public }),
    ]
}

const ACTORS: [&str; 3] = [ALICE, MALLORY, "arn:aws:iam::111122223333:user/bob"];

/// The events of `steps`, the i-th at `times[i]` minutes by `actors[i]`, some as automation.
fn history(steps: &[(Step, i64, usize, bool)]) -> Vec<ParsedEvent> {
    let snap = |k: usize| r(K::Snapshot, &format!("snap-{k}"));
    let group = |g: usize| {
        r(
            K::NetworkGroup,
            if g == 0 { "sg-default" } else { "sg-web" },
        )
    };
    let mut events = Vec::new();
    let mut launched = 0;
    for (i, (step, minutes, actor, automation)) in steps.iter().enumerate() {
        let id = format!("e{i}");
        let actor = ACTORS[*actor];
        let mut push = |name: &str, facts: Vec<Fact>| {
            let mut e = ev(
                &format!("{id}-{}", events.len()),
                name,
                *minutes,
                actor,
                facts,
            );
            if *automation {
                e = automated(e, "aws-backup");
            }
            events.push(e);
        };
        match step {
            Step::Create { snap: k } => push(
                "CreateSnapshot",
                vec![Fact::SnapshotCreated {
                    snapshot: snap(*k),
                    source: None,
                }],
            ),
            Step::Copy { from, to } => push(
                "CopySnapshot",
                vec![Fact::SnapshotCopied {
                    snapshot: snap(*to),
                    source: snap(*from),
                }],
            ),
            Step::Register { snap: k } => push(
                "RegisterImage",
                vec![Fact::ImageRegistered {
                    image: r(K::Image, "ami-gold"),
                    snapshots: vec![snap(*k)],
                }],
            ),
            Step::Share {
                image,
                snap: k,
                public,
            } => push(
                "ModifySnapshotAttribute",
                vec![Fact::SnapshotShared {
                    snapshot: if *image {
                        r(K::Image, "ami-gold")
                    } else {
                        snap(*k)
                    },
                    audience: if *public {
                        Audience::Public
                    } else {
                        Audience::Accounts(vec![OUTSIDE.into()])
                    },
                }],
            ),
            Step::Export { snap: k } => push(
                "GetSnapshotBlock",
                vec![Fact::SnapshotExported {
                    snapshot: snap(*k),
                    method: "ebs-direct".into(),
                }],
            ),
            Step::UsedOutside { snap: k } => push(
                "SharedSnapshotCopyInitiated",
                vec![Fact::UsedExternally {
                    snapshot: snap(*k),
                    account: OUTSIDE.into(),
                }],
            ),
            Step::Launches {
                count,
                golden,
                group: g,
            } => {
                let image = if *golden { "ami-gold" } else { "ami-market" };
                for _ in 0..*count {
                    let instance = r(K::Instance, &format!("i-{launched:03}"));
                    launched += 1;
                    push(
                        "RunInstances",
                        vec![
                            Fact::RestoredFrom {
                                resource: instance.clone(),
                                snapshot: r(K::Image, image),
                            },
                            Fact::NetworkMember {
                                member: instance,
                                group: group(*g),
                                tags: vec![],
                            },
                        ],
                    );
                }
            }
            Step::Volume { snap: k, disk } => push(
                "CreateVolume",
                vec![Fact::RestoredFrom {
                    resource: r(K::Disk, &format!("vol-{disk}")),
                    snapshot: snap(*k),
                }],
            ),
            Step::Attach { instance, disk } => push(
                "AttachVolume",
                vec![Fact::Uses {
                    instance: r(K::Instance, &format!("i-{instance:03}")),
                    disk: r(K::Disk, &format!("vol-{disk}")),
                }],
            ),
            Step::Open { group: g, admin } => push(
                "AuthorizeSecurityGroupIngress",
                vec![Fact::IngressOpened {
                    group: group(*g),
                    protocol: Protocol::Tcp,
                    ports: vec![if *admin {
                        PortRange { from: 22, to: 22 }
                    } else {
                        PortRange { from: 443, to: 443 }
                    }],
                    sources: vec!["0.0.0.0/0".into()],
                    target_tags: vec![],
                    rule: None,
                }],
            ),
            Step::RestoreDb {
                snap: k,
                db,
                group: g,
                public,
            } => {
                let database = r(K::Database, &format!("db-{db}"));
                let mut facts = vec![
                    Fact::RestoredFrom {
                        resource: database.clone(),
                        snapshot: snap(*k),
                    },
                    Fact::NetworkMember {
                        member: database.clone(),
                        group: group(*g),
                        tags: vec![],
                    },
                ];
                if *public {
                    facts.push(Fact::PublicEndpoint {
                        resource: database,
                        setting: "publiclyAccessible".into(),
                        sources: vec![],
                    });
                }
                push("RestoreDBInstanceFromDBSnapshot", facts);
            }
        }
    }
    events
}

/// A deterministic shuffle (proptest picks the seed).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]
    /// Generated histories around hubs (a golden image launched many times, a default group with
    /// many members, shares and openings before and after the launches), delivered in a
    /// shuffled order with some events repeated, some days or months apart: the pruned walk
    /// delivers the full walk's findings, the same ids with the same content, at the same event.
    #[test]
    fn the_pruned_walk_delivers_the_full_walks_findings_on_generated_hubs(
        steps in proptest::collection::vec(
            (step(), prop_oneof![3 => 0i64..600, 1 => 0i64..(90 * 24 * 60)], 0..3usize, proptest::bool::weighted(0.1)),
            1..40,
        ),
        repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        seed in any::<u64>(),
    ) {
        let mut events = history(&steps);
        for i in &repeats {
            let again = events[i.index(events.len())].clone();
            events.push(again);
        }
        shuffle(&mut events, seed);
        let full = delivered(&events, false);
        prop_assert_eq!(delivered(&events, true), full);
    }
}

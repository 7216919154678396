//! Streaming equivalence: for any set of events, one `scan` over all of them reports the same
//! findings as the events split into per-day files scanned one after another with `--state`, and
//! as the events fed one at a time, in event-time order, through the per-event path the cloud
//! functions use (`Detector::process` + `deliver`). Histories span months with gaps longer than
//! the window; records are shuffled within their files, duplicated, and two accounts interleave.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::{MemorySink, MemoryStore};
use snapwatch_core::model::ParsedEvent;
use snapwatch_core::parse::detect::for_each_record;
use snapwatch_core::parse::Parsed;
use snapwatch_core::Config;
use std::collections::{BTreeMap, BTreeSet};
use support::*;

const ACCOUNTS: [&str; 2] = [OWN, OTHER_OWN];
const ACTORS: [&str; 3] = ["alice", "bob", "mallory"];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Share,
    Public,
    Volume,
    Launch,
    Open,
    Noise,
}

#[derive(Debug, Clone)]
struct Step {
    day: i64,
    kind: Kind,
    account: usize,
    snap: usize,
    actor: usize,
    group: usize,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Share),
        Just(Kind::Public),
        Just(Kind::Volume),
        Just(Kind::Launch),
        Just(Kind::Launch),
        Just(Kind::Open),
        Just(Kind::Open),
        Just(Kind::Noise),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        0i64..150,
        kind(),
        0..2usize,
        0..3usize,
        0..3usize,
        0..2usize,
    )
        .prop_map(|(day, kind, account, snap, actor, group)| Step {
            day,
            kind,
            account,
            snap,
            actor,
            group,
        })
}

fn snap_id(account: usize, snap: usize) -> String {
    format!("snap-{account}{snap}0a1b2c3d4e5f607")
}

fn group_id(account: usize, group: usize) -> String {
    format!("sg-{account}{group}0123456789abcde")
}

/// The records of one generated history, each with its day.
fn history(creations: &[Option<(i64, usize)>], steps: &[Step]) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    // Every snapshot is created at most once, as in real logs.
    for (k, creation) in creations.iter().enumerate() {
        if let Some((day, actor)) = creation {
            let (account, snap) = (k / 3, k % 3);
            out.push((
                *day,
                create_snapshot(
                    &format!("c-{k}"),
                    at(*day, 86_399 - k as i64),
                    ACCOUNTS[account],
                    ACTORS[*actor],
                    &snap_id(account, snap),
                ),
            ));
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let id = format!("e-{i}");
        // Distinct seconds keep event-time order total.
        let time = at(s.day, (i as i64 * 97) % 80_000);
        let account = ACCOUNTS[s.account];
        let actor = ACTORS[s.actor];
        let snap = snap_id(s.account, s.snap);
        let group = group_id(s.account, s.group);
        let record = match s.kind {
            Kind::Share => share(&id, time, account, actor, &snap, OUTSIDE),
            Kind::Public => make_public(&id, time, account, actor, &snap),
            Kind::Volume => {
                create_volume(&id, time, account, actor, &snap, &format!("vol-{i:017x}"))
            }
            Kind::Launch => launch(
                &id,
                time,
                account,
                actor,
                &snap,
                &format!("i-{i:017x}"),
                &group,
            ),
            Kind::Open => open_ssh(&id, time, account, "us-east-1", actor, &group),
            Kind::Noise => record(
                &id,
                time,
                (account, "eu-west-1"),
                actor,
                "DescribeInstances",
                json!({"instancesSet": {}}),
                Value::Null,
            ),
        };
        out.push((s.day, record));
    }
    out
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

/// The functions' path: one event at a time, in event-time order, judged and delivered at its
/// own time.
fn per_event(records: &[Value]) -> BTreeSet<String> {
    let mut events: Vec<ParsedEvent> = Vec::new();
    for r in records {
        let text = r.to_string();
        for_each_record(&text, &mut |o| {
            if let Ok(Parsed::Event(e)) = o.result {
                events.push(e);
            }
        });
    }
    events.sort_by(|a, b| (a.meta.time, &a.meta.id).cmp(&(b.meta.time, &b.meta.id)));
    let detector = Detector::new(MemoryStore::new(), Config::default());
    let sink = MemorySink::new();
    pollster::block_on(async {
        for e in &events {
            let findings = detector.process(e, e.meta.time).await.unwrap();
            detector
                .deliver(&findings, &sink, e.meta.time)
                .await
                .unwrap();
        }
    });
    sink.sent_ids().into_iter().collect()
}

fn ids(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn one_scan_equals_daily_batches_equals_the_per_event_path(
        creations in proptest::collection::vec(proptest::option::of((0i64..150, 0..3usize)), 6),
        steps in proptest::collection::vec(step(), 1..24),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        seed in any::<u64>(),
    ) {
        let mut records = history(&creations, &steps);
        for d in &duplicates {
            let copy = records[d.index(records.len())].clone();
            records.push(copy);
        }
        let mut by_day: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
        for (day, r) in &records {
            by_day.entry(*day).or_default().push(r.clone());
        }
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let mut files = Vec::new();
        for (day, day_records) in &mut by_day {
            shuffle(day_records, seed ^ *day as u64);
            let file = logs.join(format!("day-{day:03}.jsonl"));
            write_lines(&file, day_records);
            files.push(file);
        }

        let (all, stderr) = scan(None, &[&logs]);
        let once: BTreeSet<String> = ids(&all).into_iter().collect();
        prop_assert_eq!(once.len(), all.len(), "a finding printed twice: {}", stderr);

        let state = dir.path().join("state.db");
        let mut batched = Vec::new();
        for file in &files {
            let (found, _) = scan(Some(&state), &[file]);
            batched.extend(ids(&found));
        }
        let batched_set: BTreeSet<String> = batched.iter().cloned().collect();
        prop_assert_eq!(batched_set.len(), batched.len(), "a finding printed in two batches");
        prop_assert_eq!(&batched_set, &once, "daily --state batches differ from one scan");

        let plain: Vec<Value> = records.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(&per_event(&plain), &once, "per-event path differs from the scan");
    }
}

//! The SQLite store against the shared conformance suite, plus what only a file store has:
//! persistence, several processes on one file, bad files, purging.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use chrono::{DateTime, Utc};
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoredFact};
use snapwatch_sqlite::{SqliteError, SqliteStore, SCHEMA_VERSION};
use snapwatch_testkit::{assert_single_winner, fact, run_conformance};
use std::path::Path;
use std::sync::Barrier;

const RACERS: usize = 8;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("test instant in range")
}

fn state_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    (dir, path)
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.pragma_query_value(None, "user_version", |row| row.get(0)))
        .expect("read user_version")
}

fn sorted(mut loaded: Vec<ResourceFacts>) -> Vec<ResourceFacts> {
    loaded.sort_by(|a, b| a.resource.cmp(&b.resource));
    for rf in &mut loaded {
        rf.facts.sort_by(|a, b| a.key.cmp(&b.key));
    }
    loaded
}

#[test]
fn file_store_passes_conformance() {
    let (_dir, path) = state_file();
    let store = SqliteStore::open(&path).expect("open");
    pollster::block_on(run_conformance(&store, "first"));
    // Again on the now non-empty file, as the suite promises to cloud tables.
    pollster::block_on(run_conformance(&store, "second"));
}

#[test]
fn in_memory_store_passes_conformance() {
    let store = SqliteStore::open_in_memory().expect("open in memory");
    assert_eq!(store.path(), Path::new(":memory:"));
    pollster::block_on(run_conformance(&store, "mem"));
}

#[test]
fn state_survives_reopen() {
    let (_dir, path) = state_file();
    let batch = vec![ResourceFacts {
        resource: "snap-0123".into(),
        facts: vec![
            fact("evt-1#0", 2_000, "{\"k\":1}"),
            fact("evt-2#0", 3_000, "{}"),
        ],
    }];
    {
        let store = SqliteStore::open(&path).expect("first open");
        assert_eq!(pollster::block_on(store.add_facts(&batch)).unwrap(), 2);
        let won = pollster::block_on(store.claim_alert("finding-1", at(1_000), 60, 5_000));
        assert_eq!(won.unwrap(), Claim::Won);
        pollster::block_on(store.mark_alert_sent("finding-1")).unwrap();
        let held = pollster::block_on(store.claim_alert("finding-2", at(1_000), 60, 5_000));
        assert_eq!(held.unwrap(), Claim::Won);
    }
    assert_eq!(user_version(&path), SCHEMA_VERSION);

    let store = SqliteStore::open(&path).expect("reopen");
    let loaded = pollster::block_on(store.load_facts(&["snap-0123".into()], at(1_000))).unwrap();
    assert_eq!(sorted(loaded), batch);
    // Redelivery after a restart is still recognized.
    assert_eq!(pollster::block_on(store.add_facts(&batch)).unwrap(), 0);
    let sent = pollster::block_on(store.claim_alert("finding-1", at(1_100), 60, 5_000));
    assert_eq!(sent.unwrap(), Claim::AlreadySent);
    let held = pollster::block_on(store.claim_alert("finding-2", at(1_010), 60, 5_000));
    assert_eq!(held.unwrap(), Claim::HeldByOther);
}

#[test]
fn racing_claims_from_two_stores_have_one_winner() {
    let (_dir, path) = state_file();
    let stores = [
        SqliteStore::open(&path).expect("open a"),
        SqliteStore::open(&path).expect("open b"),
    ];
    let start = Barrier::new(RACERS);
    let outcomes: Vec<Claim> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = &stores[i % stores.len()];
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    pollster::block_on(store.claim_alert("finding-race", at(1_000), 300, 10_000))
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| {
                racer
                    .join()
                    .expect("racer thread panicked")
                    .expect("claim failed")
            })
            .collect()
    });
    assert_eq!(outcomes.len(), RACERS);
    assert_single_winner(&outcomes);
    assert!(
        outcomes.iter().all(|c| *c != Claim::AlreadySent),
        "{outcomes:?}"
    );
}

#[test]
fn concurrent_writers_lose_no_facts() {
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 8;
    let (_dir, path) = state_file();
    let stores = [
        SqliteStore::open(&path).expect("open a"),
        SqliteStore::open(&path).expect("open b"),
    ];
    let start = Barrier::new(RACERS);
    let added: usize = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..RACERS)
            .map(|writer| {
                let store = &stores[writer % stores.len()];
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let mut added = 0;
                    for b in 0..BATCHES {
                        let facts = (0..PER_BATCH)
                            .map(|i| fact(&format!("w{writer}-b{b}#{i}"), 10_000, "{}"))
                            .collect();
                        let batch = [ResourceFacts {
                            resource: "vol-shared".into(),
                            facts,
                        }];
                        added += pollster::block_on(store.add_facts(&batch)).expect("add_facts");
                    }
                    added
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer thread panicked"))
            .sum()
    });
    let total = RACERS * BATCHES * PER_BATCH;
    assert_eq!(added, total);

    let loaded =
        pollster::block_on(stores[0].load_facts(&["vol-shared".into()], at(1_000))).unwrap();
    assert_eq!(loaded.len(), 1);
    let mut keys: Vec<&str> = loaded[0].facts.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    let mut wanted: Vec<String> = (0..RACERS)
        .flat_map(|w| {
            (0..BATCHES).flat_map(move |b| (0..PER_BATCH).map(move |i| format!("w{w}-b{b}#{i}")))
        })
        .collect();
    wanted.sort_unstable();
    assert_eq!(keys, wanted);
}

#[test]
fn large_batch_is_added_in_one_call() {
    let store = SqliteStore::open_in_memory().unwrap();
    let batch: Vec<ResourceFacts> = (0..2_000)
        .map(|r| ResourceFacts {
            resource: format!("snap-{r}"),
            facts: (0..10)
                .map(|i| fact(&format!("evt-{r}-{i}#0"), 10_000, "{\"kind\":\"x\"}"))
                .collect(),
        })
        .collect();
    assert_eq!(pollster::block_on(store.add_facts(&batch)).unwrap(), 20_000);
    assert_eq!(pollster::block_on(store.add_facts(&batch)).unwrap(), 0);
    let loaded = pollster::block_on(store.load_facts(&["snap-1999".into()], at(0))).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].facts.len(), 10);
}

#[test]
fn purge_removes_only_expired_rows() {
    let store = SqliteStore::open_in_memory().unwrap();
    let batch = vec![
        ResourceFacts {
            resource: "snap-a".into(),
            facts: vec![
                fact("old#0", 100, "old"),
                fact("edge#0", 200, "expires at purge time"),
                fact("new#0", 201, "new"),
            ],
        },
        ResourceFacts {
            resource: "snap-b".into(),
            facts: vec![fact("old#1", 150, "old")],
        },
    ];
    assert_eq!(pollster::block_on(store.add_facts(&batch)).unwrap(), 4);
    for (finding, expires_at) in [("gone", 199), ("edge", 200), ("kept", 500)] {
        let claim = pollster::block_on(store.claim_alert(finding, at(50), 10, expires_at));
        assert_eq!(claim.unwrap(), Claim::Won);
    }

    // Three facts and two claims have `expires_at <= 200`.
    assert_eq!(store.purge_expired(at(200)).unwrap(), 5);
    assert_eq!(store.purge_expired(at(200)).unwrap(), 0);

    // Read "in the past": only what survived the purge is still there.
    let loaded = pollster::block_on(store.load_facts(&["snap-a".into(), "snap-b".into()], at(0)));
    let expected = vec![ResourceFacts {
        resource: "snap-a".into(),
        facts: vec![StoredFact {
            key: "new#0".into(),
            expires_at: 201,
            body: "new".into(),
        }],
    }];
    assert_eq!(loaded.unwrap(), expected);
    // The kept claim is still held; the purged ones are free again.
    let kept = pollster::block_on(store.claim_alert("kept", at(55), 10, 500)).unwrap();
    assert_eq!(kept, Claim::HeldByOther);
    let gone = pollster::block_on(store.claim_alert("gone", at(55), 10, 500)).unwrap();
    assert_eq!(gone, Claim::Won);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_untouched() {
    let (_dir, path) = state_file();
    let content = "this is a log file, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();

    let err = SqliteStore::open(&path).expect_err("a text file must be refused");
    assert!(
        matches!(&err, SqliteError::NotADatabase { path: p, .. } if p == &path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not an SQLite database"), "{message}");
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

#[test]
fn a_newer_schema_version_is_refused() {
    let (_dir, path) = state_file();
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .and_then(|c| c.pragma_update(None, "user_version", SCHEMA_VERSION + 1))
        .unwrap();

    let err = SqliteStore::open(&path).expect_err("a newer schema must be refused");
    match &err {
        SqliteError::UnsupportedVersion {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let newer = format!("schema version {}", SCHEMA_VERSION + 1);
    assert!(err.to_string().contains(&newer), "{err}");
    // Refusing must not rewrite the version.
    assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
}

#[test]
fn another_programs_database_is_refused() {
    let (_dir, path) = state_file();
    rusqlite::Connection::open(&path)
        .and_then(|c| c.execute_batch("CREATE TABLE users (name TEXT)"))
        .unwrap();
    let err = SqliteStore::open(&path).expect_err("a foreign database must be refused");
    assert!(
        matches!(&err, SqliteError::ForeignDatabase { path: p } if p == &path),
        "{err:?}"
    );
    assert_eq!(user_version(&path), 0);
}

#[test]
fn a_missing_folder_is_an_open_error() {
    let (dir, _) = state_file();
    let path = dir.path().join("no-such-folder").join("state.db");
    let err = SqliteStore::open(&path).expect_err("cannot create a file in a missing folder");
    assert!(
        matches!(&err, SqliteError::Open { path: p, .. } if p == &path),
        "{err:?}"
    );
}

/// Issue 12: `scan s3://… --state` remembers each finished object by name and ETag, and a
/// version-1 state file (facts and claims only) is upgraded in place, its facts kept.
#[test]
fn finished_objects_persist_and_a_version_1_file_is_upgraded() {
    let (_dir, path) = state_file();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE facts (resource TEXT NOT NULL, key TEXT NOT NULL, expires_at INTEGER NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY (resource, key)) STRICT;
             CREATE INDEX facts_by_expiry ON facts (expires_at);
             CREATE TABLE alert_claims (finding_id TEXT NOT NULL PRIMARY KEY, sent INTEGER NOT NULL,
                 claimed_at INTEGER NOT NULL, expires_at INTEGER NOT NULL) STRICT, WITHOUT ROWID;
             INSERT INTO facts VALUES ('snap-1', 'evt-1#0', 5000, '{}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).expect("a version-1 file opens");
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.fact_count().unwrap(), 1, "facts survive the upgrade");
    let object = "s3://trail/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/20/a.json.gz";
    assert!(!store.object_finished(object, "etag-1").unwrap());
    store.finish_object(object, "etag-1", at(1_000)).unwrap();
    store.finish_object(object, "etag-1", at(1_001)).unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.object_finished(object, "etag-1").unwrap());
    assert!(
        !store.object_finished(object, "etag-2").unwrap(),
        "an object rewritten under its key is read again"
    );
}

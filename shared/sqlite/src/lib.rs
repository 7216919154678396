//! snapwatch chain state in an embedded SQLite file: the store behind `snapwatch scan --state FILE`,
//! so scans of consecutive log batches link up.
//!
//! One [`rusqlite::Connection`] behind a mutex. The file is in WAL mode with a busy timeout, so
//! several processes (or several [`SqliteStore`]s) can share it: every write runs in an `IMMEDIATE`
//! transaction, which takes the write lock up front and waits for it rather than failing halfway.
//!
//! The [`StateStore`] methods do their (fast, local) I/O synchronously inside the returned future;
//! the CLI drives them with a trivial executor.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use snapwatch_core::ports::{
    AlertClaim, Claim, ClaimStatus, ResourceFacts, StateStore, StoreError, StoredFact,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The schema this code reads and writes, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a write waits for another process holding the file's write lock before giving up
/// with [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What `path` shows for a store that has no file.
const IN_MEMORY: &str = ":memory:";

/// Version 1. Facts are keyed per resource, like every other store: one event yields the same
/// fact key under each resource it touches. `STRICT` makes SQLite reject mistyped values instead
/// of silently converting them. The claims table is `WITHOUT ROWID` (small rows looked up by
/// key); facts keep a rowid because bodies can be large.
const SCHEMA_V1: &str = "
CREATE TABLE facts (
    resource   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (resource, key)
) STRICT;
CREATE INDEX facts_by_expiry ON facts (expires_at);
CREATE TABLE alert_claims (
    finding_id TEXT    NOT NULL PRIMARY KEY,
    sent       INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX alert_claims_by_expiry ON alert_claims (expires_at);
";

/// Version 2: the log objects a scan finished (`scan s3://… --state`), so a rerun of an
/// interrupted backfill skips them. Keyed by the object's name and ETag: an object rewritten
/// under the same key is read again.
const SCHEMA_V2: &str = "
CREATE TABLE finished_objects (
    source      TEXT    NOT NULL,
    etag        TEXT    NOT NULL,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (source, etag)
) STRICT, WITHOUT ROWID;
";

const INSERT_FACT: &str = "
INSERT INTO facts (resource, key, expires_at, body) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (resource, key) DO NOTHING";

const SELECT_LIVE_FACTS: &str = "
SELECT key, expires_at, body FROM facts WHERE resource = ?1 AND expires_at > ?2";

const SELECT_CLAIM: &str =
    "SELECT sent, claimed_at, expires_at FROM alert_claims WHERE finding_id = ?1";

/// Writes a won claim over whatever was there; only after the core's claim decision, under the
/// write lock.
const WRITE_CLAIM: &str = "
INSERT INTO alert_claims (finding_id, sent, claimed_at, expires_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (finding_id) DO UPDATE
    SET sent = excluded.sent, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at";

const MARK_SENT: &str = "UPDATE alert_claims SET sent = 1 WHERE finding_id = ?1";

const RELEASE_UNSENT: &str = "DELETE FROM alert_claims WHERE finding_id = ?1 AND sent = 0";

#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file could not be opened or created (missing folder, permissions).
    #[error("cannot open state file {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not an SQLite database at all.
    #[error("state file {} is not an SQLite database; pass a new file name or a snapwatch state file", .path.display())]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// An SQLite database that belongs to something else (it has tables but no snapwatch version).
    #[error("state file {} is an SQLite database of another program (it has tables but no snapwatch schema); pass a new file name", .path.display())]
    ForeignDatabase { path: PathBuf },
    /// Written by a newer snapwatch (or tampered with): refuse rather than misread it.
    #[error("state file {} has schema version {found}, but this snapwatch understands only version {supported}; upgrade snapwatch or use another state file", .path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Setting the journal mode or creating the schema failed.
    #[error("cannot set up the schema of state file {}", .path.display())]
    Schema {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A maintenance statement (such as purging expired rows) failed.
    #[error("{operation} failed on state file {}", .path.display())]
    Query {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// The embedded [`StateStore`]. Cheap to share by reference across threads; several stores (or
/// processes) may open the same file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens `path`, creating the file and its schema if needed, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT)
    }

    /// A private store that lives as long as the value (tests, one-shot scans).
    pub fn open_in_memory() -> Result<Self, SqliteError> {
        let path = PathBuf::from(IN_MEMORY);
        let conn = Connection::open_in_memory().map_err(|source| SqliteError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path, BUSY_TIMEOUT)
    }

    /// Like [`SqliteStore::open`], with a chosen wait for other writers (tests use a short one).
    pub(crate) fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, SqliteError> {
        let conn = Connection::open(path).map_err(|source| SqliteError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path.to_path_buf(), busy_timeout)
    }

    fn init(
        mut conn: Connection,
        path: PathBuf,
        busy_timeout: Duration,
    ) -> Result<Self, SqliteError> {
        // Set first, so that even the setup below waits for another process instead of failing.
        if let Err(source) = conn.busy_timeout(busy_timeout) {
            return Err(SqliteError::Open { path, source });
        }
        // The first statements that read the file: a file that is not a database fails here.
        // WAL lets readers and a writer proceed together; NORMAL sync is durable in WAL mode except
        // for the last commits on power loss, which a rescan of the logs repairs.
        let pragmas = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .and_then(|_mode| conn.pragma_update(None, "synchronous", "NORMAL"));
        if let Err(source) = pragmas {
            return Err(setup_error(path, source));
        }
        match migrate(&mut conn) {
            Ok(Migration::Ready) => Ok(SqliteStore {
                conn: Mutex::new(conn),
                path,
            }),
            Ok(Migration::Foreign) => Err(SqliteError::ForeignDatabase { path }),
            Ok(Migration::Unsupported(found)) => Err(SqliteError::UnsupportedVersion {
                path,
                found,
                supported: SCHEMA_VERSION,
            }),
            Err(source) => Err(setup_error(path, source)),
        }
    }

    /// Deletes expired facts and claims (bounded state); returns rows removed.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> Result<usize, SqliteError> {
        purge_before(&mut self.lock(), now.timestamp()).map_err(|source| SqliteError::Query {
            path: self.path.clone(),
            operation: "purging expired state",
            source,
        })
    }

    /// Deletes facts that expired at or before `at` (unix seconds); returns rows removed. A scan
    /// passes its event-time watermark rather than the wall clock: old logs keep their facts for
    /// as long as later events of the same logs can link to them.
    pub fn purge_facts_expired(&self, at: i64) -> Result<usize, SqliteError> {
        self.lock()
            .execute("DELETE FROM facts WHERE expires_at <= ?1", params![at])
            .map_err(|source| SqliteError::Query {
                path: self.path.clone(),
                operation: "purging expired facts",
                source,
            })
    }

    /// Deletes alert claims that expired at or before `at` (unix seconds); returns rows removed.
    pub fn purge_claims_expired(&self, at: i64) -> Result<usize, SqliteError> {
        self.lock()
            .execute(
                "DELETE FROM alert_claims WHERE expires_at <= ?1",
                params![at],
            )
            .map_err(|source| SqliteError::Query {
                path: self.path.clone(),
                operation: "purging expired alert claims",
                source,
            })
    }

    /// Whether a scan already finished the log object `source` (`s3://bucket/key`) with this
    /// `etag`.
    pub fn object_finished(&self, source: &str, etag: &str) -> Result<bool, SqliteError> {
        self.lock()
            .prepare_cached("SELECT 1 FROM finished_objects WHERE source = ?1 AND etag = ?2")
            .and_then(|mut select| select.exists(params![source, etag]))
            .map_err(|source| SqliteError::Query {
                path: self.path.clone(),
                operation: "reading finished objects",
                source,
            })
    }

    /// Records that every record of `source` with this `etag` was read, and its chains
    /// evaluated and delivered: a later scan with this file skips it.
    pub fn finish_object(
        &self,
        source: &str,
        etag: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SqliteError> {
        self.lock()
            .prepare_cached(
                "INSERT INTO finished_objects (source, etag, finished_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, etag) DO UPDATE SET finished_at = excluded.finished_at",
            )
            .and_then(|mut insert| insert.execute(params![source, etag, now.timestamp()]))
            .map(|_| ())
            .map_err(|source| SqliteError::Query {
                path: self.path.clone(),
                operation: "recording a finished object",
                source,
            })
    }

    /// Distinct facts held (one per event fact, however many resources it is stored under).
    pub fn fact_count(&self) -> Result<u64, SqliteError> {
        self.lock()
            .query_row("SELECT count(DISTINCT key) FROM facts", [], |row| {
                row.get(0)
            })
            .map_err(|source| SqliteError::Query {
                path: self.path.clone(),
                operation: "counting facts",
                source,
            })
    }

    /// Bytes the state takes on disk (the database and its write-ahead log); 0 in memory.
    pub fn file_size(&self) -> u64 {
        if self.path == Path::new(IN_MEMORY) {
            return 0;
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The file this store keeps its state in (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recovers from a poisoned mutex: a panic elsewhere cannot leave the connection inside a
    /// half-done write, because an unfinished rusqlite transaction rolls back when dropped.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Busy/locked means another writer held the file past the timeout: worth retrying.
    fn store_error(&self, operation: &str, source: rusqlite::Error) -> StoreError {
        let message = format!("{operation} on state file {}", self.path.display());
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::unavailable_from(message, source)
            }
            _ => StoreError::permanent_from(message, source),
        }
    }

    fn add_facts_now(&self, batch: &[ResourceFacts]) -> rusqlite::Result<usize> {
        let mut conn = self.lock();
        // One transaction for the whole batch: atomic, and one fsync instead of one per fact.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut insert = tx.prepare_cached(INSERT_FACT)?;
            for rf in batch {
                for f in &rf.facts {
                    added += insert.execute(params![rf.resource, f.key, f.expires_at, f.body])?;
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn load_facts_now(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<ResourceFacts>> {
        let now = now.timestamp();
        let mut conn = self.lock();
        // A read transaction, so all resources are read from one consistent snapshot.
        let tx = conn.transaction()?;
        let mut loaded = Vec::new();
        {
            let mut select = tx.prepare_cached(SELECT_LIVE_FACTS)?;
            let mut seen = HashSet::new();
            for resource in resources {
                if !seen.insert(resource.as_str()) {
                    continue;
                }
                let facts = select
                    .query_map(params![resource, now], |row| {
                        Ok(StoredFact {
                            key: row.get(0)?,
                            expires_at: row.get(1)?,
                            body: row.get(2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if !facts.is_empty() {
                    loaded.push(ResourceFacts {
                        resource: resource.clone(),
                        facts,
                    });
                }
            }
        }
        tx.commit()?;
        Ok(loaded)
    }

    fn claim_alert_now(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        take_claim(&mut self.lock(), finding_id, now, lease_secs, expires_at)
            .map_err(|source| self.store_error("claim_alert", source))
    }
}

impl StateStore for SqliteStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        self.add_facts_now(batch)
            .map_err(|e| self.store_error("add_facts", e))
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        self.load_facts_now(resources, now)
            .map_err(|e| self.store_error("load_facts", e))
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        self.claim_alert_now(finding_id, now, lease_secs, expires_at)
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        let updated = self
            .lock()
            .prepare_cached(MARK_SENT)
            .and_then(|mut update| update.execute(params![finding_id]))
            .map_err(|e| self.store_error("mark_alert_sent", e))?;
        if updated == 0 {
            return Err(StoreError::permanent(format!(
                "mark_alert_sent on state file {}: no claim for {finding_id}",
                self.path.display()
            )));
        }
        Ok(())
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(RELEASE_UNSENT)
            .and_then(|mut delete| delete.execute(params![finding_id]))
            .map(|_| ())
            .map_err(|e| self.store_error("release_alert", e))
    }
}

enum Migration {
    Ready,
    /// Version 0 but already holding tables: not ours to write into.
    Foreign,
    Unsupported(i64),
}

/// Brings the schema to [`SCHEMA_VERSION`]. Runs under the write lock and re-reads the version
/// inside it, so two processes opening a new file at once create the schema once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<Migration> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let outcome = match version {
        SCHEMA_VERSION => Migration::Ready,
        0 => {
            let tables: i64 = tx.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )?;
            if tables > 0 {
                Migration::Foreign
            } else {
                tx.execute_batch(SCHEMA_V1)?;
                tx.execute_batch(SCHEMA_V2)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                Migration::Ready
            }
        }
        // A version-1 file (facts and claims only) gains the finished-objects table.
        1 => {
            tx.execute_batch(SCHEMA_V2)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Migration::Ready
        }
        other => Migration::Unsupported(other),
    };
    if matches!(outcome, Migration::Ready) {
        tx.commit()?;
    }
    Ok(outcome)
}

fn purge_before(conn: &mut Connection, now: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let facts = tx.execute("DELETE FROM facts WHERE expires_at <= ?1", params![now])?;
    let claims = tx.execute(
        "DELETE FROM alert_claims WHERE expires_at <= ?1",
        params![now],
    )?;
    tx.commit()?;
    Ok(facts + claims)
}

/// Reads the claim, decides with the core's [`ClaimStatus`], and writes a won claim, all in one
/// `IMMEDIATE` transaction: the write lock is held from the read on, so no racer can change the
/// row between the decision and the write.
fn take_claim(
    conn: &mut Connection,
    finding_id: &str,
    now: DateTime<Utc>,
    lease_secs: i64,
    expires_at: i64,
) -> rusqlite::Result<Claim> {
    let now = now.timestamp();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = tx
        .prepare_cached(SELECT_CLAIM)?
        .query_row(params![finding_id], |row| {
            Ok(AlertClaim {
                sent: row.get(0)?,
                claimed_at: row.get(1)?,
                expires_at: row.get(2)?,
            })
        })
        .optional()?;
    let outcome = match ClaimStatus::of(stored.as_ref(), now, lease_secs).refusal() {
        Some(refused) => refused,
        None => {
            let won = AlertClaim::won(now, expires_at);
            tx.prepare_cached(WRITE_CLAIM)?.execute(params![
                finding_id,
                won.sent,
                won.claimed_at,
                won.expires_at
            ])?;
            Claim::Won
        }
    };
    tx.commit()?;
    Ok(outcome)
}

fn setup_error(path: PathBuf, source: rusqlite::Error) -> SqliteError {
    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        SqliteError::NotADatabase { path, source }
    } else {
        SqliteError::Schema { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapwatch_testkit::fact;

    /// Another process holding the write lock past the busy timeout is a retryable condition.
    #[test]
    fn held_write_lock_is_unavailable_not_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteStore::open_with_busy_timeout(&path, Duration::from_millis(50)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let batch = [ResourceFacts {
            resource: "snap-1".into(),
            facts: vec![fact("evt-1#0", 10, "{}")],
        }];
        let err = pollster::block_on(store.add_facts(&batch)).unwrap_err();
        assert!(err.is_retryable(), "expected Unavailable, got {err:?}");
        let source = std::error::Error::source(&err).expect("the rusqlite error is kept");
        assert!(
            source.to_string().contains("locked"),
            "unexpected source {source}"
        );
        let claim = pollster::block_on(store.claim_alert("f-1", Utc::now(), 60, i64::MAX));
        assert!(
            matches!(claim, Err(StoreError::Unavailable { .. })),
            "{claim:?}"
        );

        other.execute_batch("ROLLBACK").unwrap();
        let added = pollster::block_on(store.add_facts(&batch)).unwrap();
        assert_eq!(added, 1);
    }

    /// Facts and claims are purged on separate clocks: facts by the scan's event time, claims
    /// by the wall clock, each only once expired.
    #[test]
    fn purges_remove_only_expired_rows() {
        let store = SqliteStore::open_in_memory().unwrap();
        let batch = [ResourceFacts {
            resource: "snap-1".into(),
            facts: vec![fact("evt-1#0", 100, "{}"), fact("evt-2#0", 200, "{}")],
        }];
        pollster::block_on(store.add_facts(&batch)).unwrap();
        let now = Utc::now();
        pollster::block_on(store.claim_alert("old", now, 60, 1_000)).unwrap();
        pollster::block_on(store.claim_alert("live", now, 60, 2_000)).unwrap();

        assert_eq!(store.purge_facts_expired(99).unwrap(), 0);
        assert_eq!(store.purge_facts_expired(100).unwrap(), 1);
        assert_eq!(store.fact_count().unwrap(), 1);
        assert_eq!(store.purge_claims_expired(1_000).unwrap(), 1);
        assert_eq!(store.purge_claims_expired(1_000).unwrap(), 0);
        assert_eq!(store.file_size(), 0, "in memory");
    }

    #[test]
    fn mark_sent_without_claim_is_permanent() {
        let store = SqliteStore::open_in_memory().unwrap();
        let err = pollster::block_on(store.mark_alert_sent("never-claimed")).unwrap_err();
        assert!(!err.is_retryable(), "{err:?}");
        assert!(err.to_string().contains("never-claimed"), "{err}");
    }
}

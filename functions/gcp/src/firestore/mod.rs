//! Firestore [`StateStore`]: chain facts, alert claims and rejected events in three collections.
//!
//! Layout (document ids are SHA-256 hex, because resource ids carry `/` which Firestore forbids
//! in ids; the readable ids are kept in fields):
//! - `<prefix>facts/<sha(resource)>~<sha(key)>`: one fact. `resource`, `expires_at` (Timestamp:
//!   the TTL policy deletes the document once the fact is dead) and `facts`, a map holding the
//!   one entry `f<sha(key)>` → `{key, expires_at (integer seconds), body}`.
//! - `<prefix>facts/<sha(resource)>`: the legacy shape, every fact of a resource in that map.
//!   Versions before per-fact documents wrote it; it is still read (and its keys still count as
//!   known) until its TTL deletes it, and never written. One document per resource outgrew
//!   Firestore's 1 MiB limit on hubs (a golden image launched thousands of times, a default
//!   network) and made every writer on a hub race for one document.
//! - `<prefix>alerts/<sha(finding id)>`: `finding_id`, `sent`, `claimed_at`, `expires_at`.
//! - `<prefix>rejects/<sha(event id or body)>`: malformed events kept for a person to look at.
//!
//! Both fact shapes share the collection, the `facts` map field and the `resource` field, so
//! the deployed TTL policy and index exemption cover both and one `resource IN [...]` query per
//! 30 resources reads both. Requests per event: writing its facts is one `:batchGet` (masked to
//! the entries asked about) and one `:commit`; reading a resource is one `:runQuery`. The price
//! is billing: a query is charged one document read per fact returned, so a hub with N live facts
//! costs N reads each time it is loaded, where a map document cost one.
//!
//! Every write carries a precondition: `exists: false` to create (a fact; a redelivered fact
//! loses to the stored copy, whose body wins), the `updateTime` read to change (a claim). A failed
//! precondition means another writer got there first: re-read and retry, so no write is a blind
//! read-modify-write. Writers of different facts on one hub touch different documents and never
//! contend. Readers filter on `expires_at` themselves, since TTL deletion runs lazily (up to a
//! day late).

mod client;

pub use client::{
    Auth, FirestoreClient, FirestoreError, FirestoreTarget, BATCH_GET_LIMIT, IN_FILTER_LIMIT,
};

use crate::rejects::{RejectStore, RejectedEvent};
use chrono::{DateTime, SecondsFormat, Utc};
use client::{Document, COMMIT_WRITE_LIMIT};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use snapwatch_core::ports::{
    AlertClaim, Claim, ClaimStatus, ResourceFacts, StateStore, StoreError, StoredFact,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Optimistic writes retried this often under contention before the caller is told to retry.
const MAX_ATTEMPTS: u32 = 12;
/// Facts per commit: well below the 500 writes a commit takes, so its pre-read stays a few
/// `:batchGet` pages.
const FACTS_PER_COMMIT: usize = 250;
const _: () = assert!(FACTS_PER_COMMIT <= COMMIT_WRITE_LIMIT);
/// Bodies per commit, well below the 10 MiB a request may carry.
const COMMIT_BODY_BYTES: usize = 4 * 1024 * 1024;
/// A rejected event body is cut to this size, well below Firestore's 1 MiB document limit.
const MAX_REJECT_BODY_BYTES: usize = 256 * 1024;
/// How long rejected events are kept for inspection.
const REJECT_RETENTION_SECS: i64 = 30 * 86_400;

/// Collection names, so deployments (and tests) can share a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collections {
    pub facts: String,
    pub alerts: String,
    pub rejects: String,
}

impl Collections {
    /// `<prefix>facts`, `<prefix>alerts`, `<prefix>rejects`.
    pub fn with_prefix(prefix: &str) -> Self {
        Collections {
            facts: format!("{prefix}facts"),
            alerts: format!("{prefix}alerts"),
            rejects: format!("{prefix}rejects"),
        }
    }
}

impl Default for Collections {
    fn default() -> Self {
        Collections::with_prefix("snapwatch_")
    }
}

/// Chain state in Firestore. Clones share one HTTP client and token cache, so the service can
/// hand one to the detector and one to the reject path.
#[derive(Debug, Clone)]
pub struct FirestoreStore {
    client: Arc<FirestoreClient>,
    collections: Collections,
}

impl FirestoreStore {
    pub fn new(target: FirestoreTarget, collections: Collections) -> Result<Self, StoreError> {
        let client = FirestoreClient::new(target)
            .map_err(|e| StoreError::permanent_from("cannot build the Firestore client", e))?;
        Ok(FirestoreStore {
            client: Arc::new(client),
            collections,
        })
    }

    pub fn collections(&self) -> &Collections {
        &self.collections
    }

    /// The client, whose token cache the baseline's Compute Engine calls share.
    pub fn client(&self) -> Arc<FirestoreClient> {
        self.client.clone()
    }

    fn fact_doc(&self, resource: &str) -> String {
        self.client
            .document_name(&self.collections.facts, &sha_hex(resource))
    }

    fn alert_doc(&self, finding_id: &str) -> String {
        self.client
            .document_name(&self.collections.alerts, &sha_hex(finding_id))
    }

    /// The document of one fact: `<sha(resource)>~<sha(key)>`, beside the resource's legacy
    /// document `<sha(resource)>` in the same collection.
    fn entry_doc(&self, resource: &str, key: &str) -> String {
        self.client.document_name(
            &self.collections.facts,
            &format!("{}~{}", sha_hex(resource), sha_hex(key)),
        )
    }

    /// Creates the chunk's facts that are not stored yet, in one atomic commit; returns how
    /// many were new.
    async fn add_chunk(&self, chunk: &[(&str, &StoredFact)]) -> Result<usize, StoreError> {
        let targets: Vec<FactTarget> = chunk
            .iter()
            .map(|(resource, fact)| FactTarget {
                resource,
                fact,
                legacy_doc: self.fact_doc(resource),
                entry_doc: self.entry_doc(resource, &fact.key),
            })
            .collect();
        let mut names: Vec<String> = targets.iter().map(|t| t.entry_doc.clone()).collect();
        let legacy: BTreeSet<&String> = targets.iter().map(|t| &t.legacy_doc).collect();
        names.extend(legacy.into_iter().cloned());
        // Only the entries this chunk asks about: a legacy hub document can be near 1 MiB.
        let mut mask = vec!["resource".to_string()];
        let fields: BTreeSet<String> = targets.iter().map(|t| fact_field(&t.fact.key)).collect();
        mask.extend(fields.into_iter().map(|f| format!("facts.{f}")));
        for attempt in 0..MAX_ATTEMPTS {
            let docs = self
                .client
                .batch_get_masked(&names, Some(&mask))
                .await
                .map_err(|e| store_error("reading fact documents", e))?;
            let writes = targets
                .iter()
                .filter(|t| !t.is_stored(&docs))
                .map(FactTarget::create)
                .collect::<Result<Vec<_>, _>>()?;
            let added = writes.len();
            match self.client.commit(writes).await {
                Ok(()) => return Ok(added),
                // A racer created one of our facts first: re-read, its copy wins.
                Err(FirestoreError::Conflict { .. }) => backoff(attempt).await,
                Err(e) => return Err(store_error("writing facts", e)),
            }
        }
        Err(StoreError::unavailable(format!(
            "facts still contended after {MAX_ATTEMPTS} attempts"
        )))
    }
}

/// One fact to store and the two documents that may already hold it.
struct FactTarget<'a> {
    resource: &'a str,
    fact: &'a StoredFact,
    /// The resource's map document, as versions before per-fact documents wrote it.
    legacy_doc: String,
    /// The fact's own document.
    entry_doc: String,
}

impl FactTarget<'_> {
    /// Whether the fact is already stored, in its own document or the legacy map.
    fn is_stored(&self, docs: &HashMap<String, Document>) -> bool {
        docs.contains_key(&self.entry_doc)
            || docs.get(&self.legacy_doc).is_some_and(|doc| {
                stored_entries(doc)
                    .is_ok_and(|entries| entries.contains_key(&fact_field(&self.fact.key)))
            })
    }

    /// Create-if-absent of the fact's document: a racer's or an earlier delivery's copy wins.
    fn create(&self) -> Result<Value, StoreError> {
        let mut entry = Map::new();
        entry.insert(
            fact_field(&self.fact.key),
            json!({ "mapValue": { "fields": {
                "key": { "stringValue": self.fact.key },
                "expires_at": { "integerValue": self.fact.expires_at.to_string() },
                "body": { "stringValue": self.fact.body },
            }}}),
        );
        Ok(json!({
            "update": {
                "name": self.entry_doc,
                "fields": {
                    "resource": { "stringValue": self.resource },
                    "expires_at": { "timestampValue": timestamp(self.fact.expires_at)? },
                    "facts": { "mapValue": { "fields": entry } },
                }
            },
            "currentDocument": { "exists": false },
        }))
    }
}

/// Splits facts into commits of at most [`FACTS_PER_COMMIT`] facts and about
/// [`COMMIT_BODY_BYTES`] of bodies (a commit request is capped at 10 MiB).
fn commit_chunks<'a>(facts: &[(&'a str, &'a StoredFact)]) -> Vec<Vec<(&'a str, &'a StoredFact)>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for &(resource, fact) in facts {
        let size = fact.body.len() + fact.key.len() + resource.len();
        if !current.is_empty()
            && (current.len() == FACTS_PER_COMMIT || bytes + size > COMMIT_BODY_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((resource, fact));
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

impl StateStore for FirestoreStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        // One entry per resource and key: the first copy of a key in the batch wins, as a
        // later redelivery would lose to it too.
        let mut grouped: BTreeMap<&str, BTreeMap<&str, &StoredFact>> = BTreeMap::new();
        for rf in batch {
            let slot = grouped.entry(rf.resource.as_str()).or_default();
            for fact in &rf.facts {
                slot.entry(fact.key.as_str()).or_insert(fact);
            }
        }
        let facts: Vec<(&str, &StoredFact)> = grouped
            .into_iter()
            .flat_map(|(resource, facts)| facts.into_values().map(move |fact| (resource, fact)))
            .collect();
        let mut added = 0;
        // Each chunk is one atomic commit; chunks are independent (the engine relies on no
        // more: a fact is written whole or not at all, and a redelivery fills the gaps).
        for chunk in commit_chunks(&facts) {
            added += self.add_chunk(&chunk).await?;
        }
        Ok(added)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let now = now.timestamp();
        let mut seen = HashSet::new();
        let unique: Vec<&str> = resources
            .iter()
            .filter(|r| seen.insert(*r))
            .map(String::as_str)
            .collect();
        // One query per 30 resources finds both document shapes: each fact's own document and
        // the legacy map document, which all carry the `resource` field. The queries run at
        // once, so a page of 100 resources waits for one round trip, not four.
        let mut queries = tokio::task::JoinSet::new();
        for chunk in unique.chunks(IN_FILTER_LIMIT) {
            let client = Arc::clone(&self.client);
            let collection = self.collections.facts.clone();
            let values: Vec<String> = chunk.iter().map(|r| r.to_string()).collect();
            queries.spawn(async move {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                client.query_in(&collection, "resource", &values).await
            });
        }
        let mut docs = Vec::new();
        while let Some(joined) = queries.join_next().await {
            let answer = joined.map_err(|e| {
                StoreError::unavailable(format!("a Firestore query did not finish: {e}"))
            })?;
            docs.extend(answer.map_err(|e| store_error("querying fact documents", e))?);
        }
        let wanted: HashSet<&str> = unique.iter().copied().collect();
        let mut by_resource: BTreeMap<&str, BTreeMap<String, StoredFact>> = BTreeMap::new();
        // Documents in name order: a legacy map document sorts before its resource's own ones.
        docs.sort_by(|a, b| a.name.cmp(&b.name));
        for doc in &docs {
            let resource = string_field(&doc.fields, "resource")
                .and_then(|r| wanted.get(r).copied())
                .ok_or_else(|| {
                    StoreError::permanent(format!(
                        "fact document {} answers a query for other resources",
                        doc.name
                    ))
                })?;
            let held = by_resource.entry(resource).or_default();
            for (field, entry) in stored_entries(doc)? {
                let fact = decode_entry(&entry).ok_or_else(|| {
                    StoreError::permanent(format!("fact {field} in {} is malformed", doc.name))
                })?;
                // Both shapes can hold a key only if an old and a new writer raced on it;
                // either copy is a first delivery, keep one.
                if fact.expires_at > now && !held.contains_key(&fact.key) {
                    held.insert(fact.key.clone(), fact);
                }
            }
        }
        Ok(by_resource
            .into_iter()
            .filter(|(_, facts)| !facts.is_empty())
            .map(|(resource, facts)| ResourceFacts {
                resource: resource.to_string(),
                facts: facts.into_values().collect(),
            })
            .collect())
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let name = self.alert_doc(finding_id);
        let now = now.timestamp();
        for attempt in 0..MAX_ATTEMPTS {
            let existing = self
                .client
                .get(&name)
                .await
                .map_err(|e| store_error("reading an alert claim", e))?;
            let stored = existing.as_ref().map(decode_claim).transpose()?;
            if let Some(refused) = ClaimStatus::of(stored.as_ref(), now, lease_secs).refusal() {
                return Ok(refused);
            }
            // Absent, expired, or a stale lease: take it, guarded by what we just read.
            let write = json!({
                "update": {
                    "name": name,
                    "fields": {
                        "finding_id": { "stringValue": finding_id },
                        "sent": { "booleanValue": false },
                        "claimed_at": { "integerValue": now.to_string() },
                        "expires_at": { "timestampValue": timestamp(expires_at)? },
                    }
                },
                "currentDocument": precondition(existing.as_ref()),
            });
            match self.client.commit(vec![write]).await {
                Ok(()) => return Ok(Claim::Won),
                Err(FirestoreError::Conflict { .. }) => backoff(attempt).await,
                Err(e) => return Err(store_error("claiming an alert", e)),
            }
        }
        Err(StoreError::unavailable(format!(
            "alert claim {finding_id} still contended after {MAX_ATTEMPTS} attempts"
        )))
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        // Setting `sent` is monotonic, so the only guard needed is that the claim exists.
        let write = json!({
            "update": {
                "name": self.alert_doc(finding_id),
                "fields": { "sent": { "booleanValue": true } }
            },
            "updateMask": { "fieldPaths": ["sent"] },
            "currentDocument": { "exists": true },
        });
        match self.client.commit(vec![write]).await {
            Ok(()) => Ok(()),
            Err(FirestoreError::NotFound { .. }) => Err(StoreError::permanent(format!(
                "mark_alert_sent: no claim for {finding_id}"
            ))),
            Err(e) => Err(store_error("marking an alert sent", e)),
        }
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        let name = self.alert_doc(finding_id);
        for attempt in 0..MAX_ATTEMPTS {
            let Some(doc) = self
                .client
                .get(&name)
                .await
                .map_err(|e| store_error("reading an alert claim", e))?
            else {
                return Ok(());
            };
            if decode_claim(&doc)?.sent {
                return Ok(());
            }
            let delete = json!({
                "delete": name,
                "currentDocument": { "updateTime": doc.update_time },
            });
            match self.client.commit(vec![delete]).await {
                Ok(()) | Err(FirestoreError::NotFound { .. }) => return Ok(()),
                Err(FirestoreError::Conflict { .. }) => backoff(attempt).await,
                Err(e) => return Err(store_error("releasing an alert claim", e)),
            }
        }
        Err(StoreError::unavailable(format!(
            "alert claim {finding_id} still contended after {MAX_ATTEMPTS} attempts"
        )))
    }
}

impl RejectStore for FirestoreStore {
    async fn keep(&self, rejected: &RejectedEvent) -> Result<(), StoreError> {
        // The same event redelivered lands on the same document; the first copy is kept.
        let identity = rejected.event_id.as_deref().unwrap_or(&rejected.body);
        let name = self
            .client
            .document_name(&self.collections.rejects, &sha_hex(identity));
        let received = rejected.received_at.timestamp();
        let write = json!({
            "update": {
                "name": name,
                "fields": {
                    "event_id": { "stringValue": rejected.event_id.as_deref().unwrap_or_default() },
                    "reason": { "stringValue": rejected.reason },
                    "content_type": { "stringValue": rejected.content_type },
                    "body": { "stringValue": truncate(&rejected.body, MAX_REJECT_BODY_BYTES) },
                    "body_bytes": { "integerValue": rejected.body.len().to_string() },
                    "received_at": { "timestampValue": timestamp(received)? },
                    "expires_at": { "timestampValue": timestamp(received + REJECT_RETENTION_SECS)? },
                }
            },
            "currentDocument": { "exists": false },
        });
        match self.client.commit(vec![write]).await {
            Ok(()) | Err(FirestoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(store_error("keeping a rejected event", e)),
        }
    }
}

/// Create-if-absent for a document we saw missing, else "unchanged since we read it".
fn precondition(existing: Option<&Document>) -> Value {
    match existing {
        Some(doc) => json!({ "updateTime": doc.update_time }),
        None => json!({ "exists": false }),
    }
}

fn decode_claim(doc: &Document) -> Result<AlertClaim, StoreError> {
    let malformed = || StoreError::permanent(format!("alert claim {} is malformed", doc.name));
    let sent = doc
        .fields
        .get("sent")
        .and_then(|v| v.get("booleanValue"))
        .and_then(Value::as_bool)
        .ok_or_else(malformed)?;
    let claimed_at = doc
        .fields
        .get("claimed_at")
        .and_then(integer_value)
        .ok_or_else(malformed)?;
    let expires_at = doc_expiry(doc)?;
    Ok(AlertClaim {
        sent,
        claimed_at,
        expires_at,
    })
}

/// The `facts` map of a fact document (empty when the document has none).
fn stored_entries(doc: &Document) -> Result<Map<String, Value>, StoreError> {
    match doc.fields.get("facts") {
        None => Ok(Map::new()),
        Some(value) => value
            .get("mapValue")
            .map(|m| {
                m.get("fields")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            })
            .ok_or_else(|| StoreError::permanent(format!("`facts` of {} is not a map", doc.name))),
    }
}

fn decode_entry(entry: &Value) -> Option<StoredFact> {
    let fields = entry.get("mapValue")?.get("fields")?.as_object()?;
    Some(StoredFact {
        key: string_field(fields, "key")?.to_string(),
        expires_at: integer_value(fields.get("expires_at")?)?,
        body: string_field(fields, "body")?.to_string(),
    })
}

fn doc_expiry(doc: &Document) -> Result<i64, StoreError> {
    doc.fields
        .get("expires_at")
        .and_then(|v| v.get("timestampValue"))
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .ok_or_else(|| StoreError::permanent(format!("`expires_at` of {} is missing", doc.name)))
}

fn string_field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields.get(name)?.get("stringValue")?.as_str()
}

/// Firestore sends 64-bit integers as JSON strings.
fn integer_value(value: &Value) -> Option<i64> {
    match value.get("integerValue")? {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}

/// RFC 3339 for a Firestore Timestamp.
fn timestamp(secs: i64) -> Result<String, StoreError> {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .ok_or_else(|| StoreError::permanent(format!("expiry {secs} is not a valid timestamp")))
}

/// The map field name for a fact key: a plain identifier, so it needs no backtick quoting in
/// field paths whatever characters the key holds.
fn fact_field(key: &str) -> String {
    format!("f{}", sha_hex(key))
}

fn sha_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn store_error(what: &str, e: FirestoreError) -> StoreError {
    if e.is_retryable() {
        StoreError::unavailable_from(format!("Firestore: {what}"), e)
    } else {
        StoreError::permanent_from(format!("Firestore: {what}"), e)
    }
}

/// Jittered exponential backoff between optimistic attempts, so racers spread out.
async fn backoff(attempt: u32) {
    snapwatch_http::Backoff::CONTENTION.sleep(attempt + 1).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_with(fields: Value) -> Document {
        Document {
            name: "projects/p/databases/(default)/documents/snapwatch_facts/x".into(),
            fields: fields.as_object().cloned().unwrap_or_default(),
            update_time: "2024-01-01T00:00:00.000001Z".into(),
        }
    }

    #[test]
    fn field_names_are_plain_identifiers_whatever_the_key() {
        let field = fact_field("evt `odd` key#0 / ünï");
        assert_eq!(field.len(), 65);
        assert!(field.starts_with('f'));
        assert!(field.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(fact_field("a#0"), fact_field("a#1"));
    }

    fn target<'a>(resource: &'a str, fact: &'a StoredFact) -> FactTarget<'a> {
        FactTarget {
            resource,
            fact,
            legacy_doc: "legacy".into(),
            entry_doc: "entry".into(),
        }
    }

    #[test]
    fn a_fact_is_created_in_its_own_document_only_if_still_absent() {
        let fact = StoredFact {
            key: "evt-1#0".into(),
            expires_at: 4_000_000_000,
            body: "b".into(),
        };
        let write = target("snap-1", &fact).create().expect("write");
        assert_eq!(write["currentDocument"], json!({ "exists": false }));
        assert_eq!(write["update"]["name"], "entry");
        assert_eq!(
            write["update"]["fields"]["expires_at"]["timestampValue"],
            "2096-10-02T07:06:40Z"
        );
        let entries = write["update"]["fields"]["facts"]["mapValue"]["fields"]
            .as_object()
            .expect("entries");
        assert_eq!(entries.len(), 1);
        let entry = entries
            .get(&fact_field("evt-1#0"))
            .expect("the fact's entry");
        assert_eq!(decode_entry(entry), Some(fact.clone()));
    }

    #[test]
    fn a_fact_counts_as_stored_in_its_own_document_or_the_legacy_map() {
        let known = StoredFact {
            key: "evt-old#0".into(),
            expires_at: 4_070_908_800,
            body: "again".into(),
        };
        let unknown = StoredFact {
            key: "evt-new#0".into(),
            ..known.clone()
        };
        let legacy = doc_with(json!({
            "resource": { "stringValue": "snap-1" },
            "facts": { "mapValue": { "fields": {
                fact_field("evt-old#0"): { "mapValue": { "fields": {
                    "key": { "stringValue": "evt-old#0" },
                    "expires_at": { "integerValue": "4070908800" },
                    "body": { "stringValue": "first" } } } },
            } } },
        }));
        let docs = HashMap::from([("legacy".to_string(), legacy.clone())]);
        assert!(target("snap-1", &known).is_stored(&docs));
        assert!(!target("snap-1", &unknown).is_stored(&docs));
        let own = HashMap::from([("entry".to_string(), legacy)]);
        assert!(target("snap-1", &unknown).is_stored(&own));
        assert!(!target("snap-1", &unknown).is_stored(&HashMap::new()));
    }

    #[test]
    fn commits_stay_below_the_write_and_size_limits() {
        let small = StoredFact {
            key: "k".into(),
            expires_at: 1,
            body: "b".into(),
        };
        let big = StoredFact {
            body: "x".repeat(64 * 1024),
            ..small.clone()
        };
        let many: Vec<(&str, &StoredFact)> = (0..600).map(|_| ("r", &small)).collect();
        let sizes: Vec<usize> = commit_chunks(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![250, 250, 100]);
        let heavy: Vec<(&str, &StoredFact)> = (0..100).map(|_| ("r", &big)).collect();
        let chunks = commit_chunks(&heavy);
        assert!(chunks.len() >= 2, "6.4 MiB of bodies need two commits");
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100);
        assert!(commit_chunks(&[]).is_empty());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("日本語", 4), "日");
        assert_eq!(truncate("abc", 10), "abc");
    }
}

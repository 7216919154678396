//! Firestore [`StateStore`]: chain facts, alert claims and rejected events in three collections.
//!
//! Layout (document ids are SHA-256 hex, because resource ids carry `/` which Firestore forbids
//! in ids; the readable id is kept in a field):
//! - `<prefix>facts/<sha(resource)>`: `resource`, `expires_at` (Timestamp, the latest fact
//!   expiry: the TTL policy deletes the document once every fact in it is dead) and `facts`, a
//!   map `f<sha(key)>` → `{key, expires_at (integer seconds), body}`.
//! - `<prefix>alerts/<sha(finding id)>`: `finding_id`, `sent`, `claimed_at`, `expires_at`.
//! - `<prefix>rejects/<sha(event id or body)>`: malformed events kept for a person to look at.
//!
//! Every write carries a precondition: `exists: false` to create, the `updateTime` read to
//! change. A failed precondition means another writer got there first: re-read and retry, so no
//! write is a blind read-modify-write. Readers filter on `expires_at` themselves, since TTL
//! deletion runs lazily (up to a day late).

mod client;

pub use client::{Auth, FirestoreClient, FirestoreError, FirestoreTarget, BATCH_GET_LIMIT};

use crate::rejects::{RejectStore, RejectedEvent};
use chrono::{DateTime, SecondsFormat, Utc};
use client::{Document, COMMIT_WRITE_LIMIT};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use snapwatch_core::ports::{
    AlertClaim, Claim, ClaimStatus, ResourceFacts, StateStore, StoreError, StoredFact,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Optimistic writes retried this often under contention before the caller is told to retry.
const MAX_ATTEMPTS: u32 = 12;
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

    /// Writes one commit's worth of resources; returns how many facts were new.
    async fn add_chunk(
        &self,
        chunk: &[(&str, BTreeMap<&str, &StoredFact>)],
    ) -> Result<usize, StoreError> {
        let names: Vec<String> = chunk.iter().map(|(r, _)| self.fact_doc(r)).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let docs = self
                .client
                .batch_get(&names)
                .await
                .map_err(|e| store_error("reading fact documents", e))?;
            let wall_clock = Utc::now().timestamp();
            let mut writes = Vec::new();
            let mut added = 0;
            for ((resource, facts), name) in chunk.iter().zip(&names) {
                let existing = docs.get(name);
                let plan = plan_fact_write(resource, facts, existing, wall_clock)?;
                if let Some(plan) = plan {
                    added += plan.added;
                    writes.push(plan.into_write(name, existing)?);
                }
            }
            match self.client.commit(writes).await {
                Ok(()) => return Ok(added),
                Err(FirestoreError::Conflict { .. }) => backoff(attempt).await,
                Err(e) => return Err(store_error("writing facts", e)),
            }
        }
        Err(StoreError::unavailable(format!(
            "facts still contended after {MAX_ATTEMPTS} attempts"
        )))
    }
}

/// What one resource document needs: new fact entries, expired entries to drop.
struct FactWrite<'a> {
    resource: &'a str,
    added: usize,
    new_entries: Map<String, Value>,
    expired_fields: Vec<String>,
    doc_expires_at: i64,
}

impl FactWrite<'_> {
    fn into_write(self, name: &str, existing: Option<&Document>) -> Result<Value, StoreError> {
        let mut mask = vec!["resource".to_string(), "expires_at".to_string()];
        mask.extend(self.new_entries.keys().map(|f| format!("facts.{f}")));
        // A field path in the mask but absent from the data is deleted: this drops dead facts
        // so a busy resource (a default network) stays far below the 1 MiB document limit.
        mask.extend(self.expired_fields.iter().map(|f| format!("facts.{f}")));
        Ok(json!({
            "update": {
                "name": name,
                "fields": {
                    "resource": { "stringValue": self.resource },
                    "expires_at": { "timestampValue": timestamp(self.doc_expires_at)? },
                    "facts": { "mapValue": { "fields": self.new_entries } },
                }
            },
            "updateMask": { "fieldPaths": mask },
            "currentDocument": precondition(existing),
        }))
    }
}

/// Decides the write for one resource given its current document (`None`: nothing to write).
fn plan_fact_write<'a>(
    resource: &'a str,
    facts: &BTreeMap<&str, &StoredFact>,
    existing: Option<&Document>,
    wall_clock: i64,
) -> Result<Option<FactWrite<'a>>, StoreError> {
    let stored = match existing {
        Some(doc) => stored_entries(doc)?,
        None => Map::new(),
    };
    let mut doc_expires_at = match existing {
        Some(doc) => doc_expiry(doc)?,
        None => i64::MIN,
    };
    let mut new_entries = Map::new();
    for (key, fact) in facts {
        let field = fact_field(key);
        if stored.contains_key(&field) {
            continue;
        }
        doc_expires_at = doc_expires_at.max(fact.expires_at);
        new_entries.insert(
            field,
            json!({ "mapValue": { "fields": {
                "key": { "stringValue": fact.key },
                "expires_at": { "integerValue": fact.expires_at.to_string() },
                "body": { "stringValue": fact.body },
            }}}),
        );
    }
    let mut expired_fields = Vec::new();
    for (field, entry) in &stored {
        if entry_expiry(entry).is_some_and(|at| at <= wall_clock) {
            expired_fields.push(field.clone());
        }
    }
    if new_entries.is_empty() && expired_fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(FactWrite {
        resource,
        added: new_entries.len(),
        new_entries,
        expired_fields,
        doc_expires_at,
    }))
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
        let grouped: Vec<(&str, BTreeMap<&str, &StoredFact>)> = grouped.into_iter().collect();
        let mut added = 0;
        // Each chunk is one atomic commit; chunks are independent (writes are atomic per
        // resource, which is all the engine relies on).
        for chunk in grouped.chunks(BATCH_GET_LIMIT.min(COMMIT_WRITE_LIMIT)) {
            added += self.add_chunk(chunk).await?;
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
        let unique: Vec<&String> = resources.iter().filter(|r| seen.insert(*r)).collect();
        let names: Vec<String> = unique.iter().map(|r| self.fact_doc(r)).collect();
        let docs = self
            .client
            .batch_get(&names)
            .await
            .map_err(|e| store_error("reading fact documents", e))?;
        let mut out = Vec::new();
        for (resource, name) in unique.into_iter().zip(&names) {
            let Some(doc) = docs.get(name) else { continue };
            if string_field(&doc.fields, "resource") != Some(resource.as_str()) {
                return Err(StoreError::permanent(format!(
                    "fact document {name} does not belong to resource {resource:?}"
                )));
            }
            let mut facts = Vec::new();
            for (field, entry) in stored_entries(doc)? {
                let fact = decode_entry(&entry).ok_or_else(|| {
                    StoreError::permanent(format!("fact {field} in {name} is malformed"))
                })?;
                if fact.expires_at > now {
                    facts.push(fact);
                }
            }
            if !facts.is_empty() {
                out.push(ResourceFacts {
                    resource: resource.clone(),
                    facts,
                });
            }
        }
        Ok(out)
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

fn entry_expiry(entry: &Value) -> Option<i64> {
    integer_value(entry.get("mapValue")?.get("fields")?.get("expires_at")?)
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

    #[test]
    fn a_new_resource_is_created_only_if_still_absent() {
        let fact = StoredFact {
            key: "evt-1#0".into(),
            expires_at: 4_000_000_000,
            body: "b".into(),
        };
        let facts = BTreeMap::from([("evt-1#0", &fact)]);
        let plan = plan_fact_write("snap-1", &facts, None, 1_700_000_000)
            .expect("plan")
            .expect("a write");
        assert_eq!(plan.added, 1);
        let write = plan.into_write("docname", None).expect("write");
        assert_eq!(write["currentDocument"], json!({ "exists": false }));
        assert_eq!(
            write["update"]["fields"]["expires_at"]["timestampValue"],
            "2096-10-02T07:06:40Z"
        );
        let mask = write["updateMask"]["fieldPaths"].as_array().expect("mask");
        assert_eq!(mask.len(), 3);
        assert_eq!(mask[2], format!("facts.{}", fact_field("evt-1#0")));
    }

    #[test]
    fn known_keys_are_not_rewritten_and_dead_entries_are_dropped() {
        let live_field = fact_field("evt-live#0");
        let dead_field = fact_field("evt-dead#0");
        let doc = doc_with(json!({
            "resource": { "stringValue": "snap-1" },
            "expires_at": { "timestampValue": "2099-01-01T00:00:00Z" },
            "facts": { "mapValue": { "fields": {
                live_field.clone(): { "mapValue": { "fields": {
                    "key": { "stringValue": "evt-live#0" },
                    "expires_at": { "integerValue": "4070908800" },
                    "body": { "stringValue": "live" } } } },
                dead_field.clone(): { "mapValue": { "fields": {
                    "key": { "stringValue": "evt-dead#0" },
                    "expires_at": { "integerValue": "1000" },
                    "body": { "stringValue": "dead" } } } },
            } } },
        }));
        let again = StoredFact {
            key: "evt-live#0".into(),
            expires_at: 4_070_908_800,
            body: "other body".into(),
        };
        let facts = BTreeMap::from([("evt-live#0", &again)]);
        let plan = plan_fact_write("snap-1", &facts, Some(&doc), 1_700_000_000)
            .expect("plan")
            .expect("the dead entry is dropped");
        assert_eq!(plan.added, 0);
        assert_eq!(plan.expired_fields, vec![dead_field]);
        let write = plan.into_write("docname", Some(&doc)).expect("write");
        assert_eq!(
            write["currentDocument"],
            json!({ "updateTime": "2024-01-01T00:00:00.000001Z" })
        );
        assert_eq!(
            write["update"]["fields"]["expires_at"]["timestampValue"], "2099-01-01T00:00:00Z",
            "a document's expiry never moves backwards"
        );

        let nothing_new = plan_fact_write("snap-1", &facts, Some(&doc), 999).expect("plan");
        assert!(nothing_new.is_none(), "no write when nothing changes");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("日本語", 4), "日");
        assert_eq!(truncate("abc", 10), "abc");
    }
}

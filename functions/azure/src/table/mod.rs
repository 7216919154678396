//! Chain state in Azure Table Storage: the [`StateStore`] port over [`client::TableClient`].
//!
//! Layout (one table, two kinds of partition):
//! - a fact is an entity in partition `r-<sha256(resource id)>`, row `f-<sha256(fact key)>`.
//!   Resource ids and fact keys carry `/`, `#`, `'`, spaces and case that Table keys forbid or
//!   compare awkwardly, so keys are digests and the originals ride along as properties. The body
//!   is split over `Body0…BodyN` because one string property holds at most 64 KiB of UTF-16.
//!   Facts are insert-only: a 409 means the fact is already there (a redelivery), not an error.
//! - an alert claim is the entity (`a-<sha256(claim id)>`, `claim`): created with an
//!   insert-if-absent, changed only with `If-Match` on the ETag read just before, so two racers
//!   can never both win.
//!
//! Table Storage has no TTL: every read filters on `ExpiresAt` (in the query and again here), and
//! [`TableStore::purge_expired`] (the timer-triggered `Purge` function) deletes expired facts and
//! claims in bounded runs, so the table stays as large as the chain window, not the app's age.

pub mod client;

use crate::table::client::{
    BatchDeletion, Deletion, Entity, EntityKey, Guarded, Inserted, PageRequest, TableClient,
    TableError, MAX_BATCH_OPERATIONS,
};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use snapwatch_core::ports::{
    AlertClaim, Claim, ClaimStatus, ResourceFacts, StateStore, StoreError, StoredFact,
};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;

/// Requests in flight at once for one batch; the service handles far more, the function's
/// small instance and the engine's 100-resource loads do not need more.
const CONCURRENCY: usize = 16;
/// A string property holds 64 KiB = 32,768 UTF-16 units; stay clear of the edge.
const BODY_CHUNK_UTF16: usize = 30_000;
/// An entity holds at most 1 MiB and 252 properties; a fact body above this cannot be kept.
const MAX_BODY_UTF16: usize = 400_000;
/// Optimistic-concurrency rounds before contention on one claim is reported as transient.
const MAX_GUARDED_ATTEMPTS: usize = 8;
const CLAIM_ROW: &str = "claim";
/// Deletes (batches or single rows) in flight at once during a purge: enough to keep a
/// backlog moving, few enough to leave the table's throughput to the live functions.
const PURGE_CONCURRENCY: usize = 8;
/// What the purge scan reads: the keys to delete, and `ExpiresAt` to check the service's
/// filter once more before deleting anything.
const PURGE_SELECT: &str = "PartitionKey,RowKey,ExpiresAt";

/// What one purge run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Expired rows the run took on (at most its budget).
    pub expired: usize,
    /// Rows this run deleted.
    pub deleted: usize,
    /// Rows someone else deleted between the scan and the delete.
    pub already_gone: usize,
    /// Rows rewritten since the scan (an expired claim taken over by a new alert): kept.
    pub changed: usize,
    /// More expired rows than the budget: the next run carries on.
    pub more_remaining: bool,
    /// Requests sent: scan pages, batches and single deletes.
    pub requests: usize,
}

impl PurgeReport {
    fn add(&mut self, tally: &PurgeReport) {
        self.deleted += tally.deleted;
        self.already_gone += tally.already_gone;
        self.changed += tally.changed;
        self.requests += tally.requests;
    }
}

/// The purge the `Purge` function runs, as a port so the handler can be tested without a table.
pub trait ExpiryPurge: Send + Sync {
    /// Deletes at most `max_rows` rows whose expiry is at or before `now`.
    fn purge(
        &self,
        now: DateTime<Utc>,
        max_rows: usize,
    ) -> impl Future<Output = Result<PurgeReport, StoreError>> + Send;
}

impl ExpiryPurge for TableStore {
    async fn purge(&self, now: DateTime<Utc>, max_rows: usize) -> Result<PurgeReport, StoreError> {
        Ok(self.purge_expired(now, max_rows).await?)
    }
}

impl From<TableError> for StoreError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::Unavailable { message, source } => {
                StoreError::Unavailable { message, source }
            }
            TableError::Permanent { message, source } => StoreError::Permanent { message, source },
        }
    }
}

/// The Table Storage state store.
#[derive(Debug, Clone)]
pub struct TableStore {
    client: TableClient,
}

impl TableStore {
    pub fn new(client: TableClient) -> Self {
        TableStore { client }
    }

    pub fn client(&self) -> &TableClient {
        &self.client
    }

    /// Deletes facts and claims whose `ExpiresAt` is at or before `now`, at most `max_rows` of
    /// them; `more_remaining` says whether a further run has work. Rows of one partition go in
    /// entity-group transactions of up to 100 deletes, a lone row in a plain delete. Every
    /// delete is guarded by the ETag the scan saw, so a claim taken over after the scan (it
    /// then carries a new expiry) is never deleted; a row already gone is no error.
    pub async fn purge_expired(
        &self,
        now: DateTime<Utc>,
        max_rows: usize,
    ) -> Result<PurgeReport, TableError> {
        let now = now.timestamp();
        let filter = format!("ExpiresAt le {now}L");
        let mut report = PurgeReport::default();
        let mut expired: Vec<EntityKey> = Vec::new();
        let mut continuation = None;
        // One row beyond the budget tells "more remain" from "exactly the budget".
        while expired.len() <= max_rows {
            let page = self
                .client
                .query_page(
                    &PageRequest {
                        filter: &filter,
                        select: Some(PURGE_SELECT),
                        top: max_rows.saturating_add(1) - expired.len(),
                        with_etags: true,
                    },
                    continuation.as_ref(),
                )
                .await?;
            report.requests += 1;
            for entity in &page.entities {
                let key = purge_key(entity)?;
                // The filter already chose; a row the service should not have sent stays.
                if get_i64(entity, "ExpiresAt").is_some_and(|at| at <= now) {
                    expired.push(key);
                }
            }
            match page.next {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        if expired.len() > max_rows {
            expired.truncate(max_rows);
            report.more_remaining = true;
        }
        report.expired = expired.len();

        let mut partitions: BTreeMap<String, Vec<EntityKey>> = BTreeMap::new();
        for key in expired {
            partitions
                .entry(key.partition.clone())
                .or_default()
                .push(key);
        }
        let groups: Vec<Vec<EntityKey>> = partitions
            .into_values()
            .flat_map(|keys| {
                keys.chunks(MAX_BATCH_OPERATIONS)
                    .map(<[EntityKey]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let tallies: Vec<PurgeReport> = stream::iter(groups)
            .map(|group| async move { self.delete_group(&group).await })
            .buffer_unordered(PURGE_CONCURRENCY)
            .try_collect()
            .await?;
        for tally in &tallies {
            report.add(tally);
        }
        Ok(report)
    }

    /// Deletes one partition's group: one transaction, or row by row when it is a lone row or
    /// when the transaction rolled back because one of its rows had gone or changed.
    async fn delete_group(&self, group: &[EntityKey]) -> Result<PurgeReport, TableError> {
        let mut tally = PurgeReport::default();
        if group.len() > 1 {
            tally.requests += 1;
            match self.client.delete_batch(group).await? {
                BatchDeletion::Deleted => {
                    tally.deleted = group.len();
                    return Ok(tally);
                }
                BatchDeletion::RolledBack { status } => {
                    tracing::debug!(
                        status,
                        rows = group.len(),
                        "purge batch rolled back; deleting its rows one by one"
                    );
                }
            }
        }
        for key in group {
            tally.requests += 1;
            match self.client.delete_entity(key).await? {
                Deletion::Deleted => tally.deleted += 1,
                Deletion::AlreadyGone => tally.already_gone += 1,
                Deletion::Changed => tally.changed += 1,
            }
        }
        Ok(tally)
    }

    async fn insert_fact(&self, resource: &str, fact: &StoredFact) -> Result<bool, StoreError> {
        let mut entity = Map::new();
        entity.insert("PartitionKey".into(), fact_partition(resource).into());
        entity.insert("RowKey".into(), fact_row(&fact.key).into());
        entity.insert("Resource".into(), resource.into());
        entity.insert("FactKey".into(), fact.key.as_str().into());
        put_i64(&mut entity, "ExpiresAt", fact.expires_at);
        let chunks = split_body(&fact.body)?;
        put_i64(&mut entity, "BodyParts", chunks.len() as i64);
        for (i, chunk) in chunks.into_iter().enumerate() {
            entity.insert(format!("Body{i}"), chunk.into());
        }
        Ok(self.client.insert(&entity).await? == Inserted::Created)
    }

    async fn load_resource(
        &self,
        resource: &str,
        now: i64,
    ) -> Result<Option<ResourceFacts>, StoreError> {
        let filter = format!(
            "PartitionKey eq '{}' and ExpiresAt gt {now}L",
            fact_partition(resource)
        );
        let mut facts = Vec::new();
        for entity in self.client.query(&filter).await? {
            let fact = decode_fact(&entity)?;
            // The query already filtered; `load_facts` promises only unexpired facts, so check
            // again rather than trust the service's filter alone.
            if fact.expires_at > now {
                facts.push(fact);
            }
        }
        Ok((!facts.is_empty()).then(|| ResourceFacts {
            resource: resource.to_owned(),
            facts,
        }))
    }

    async fn read_claim(&self, claim_id: &str) -> Result<Option<(AlertClaim, String)>, StoreError> {
        let Some(Entity { properties, etag }) = self
            .client
            .get(&claim_partition(claim_id), CLAIM_ROW)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((decode_claim(&properties)?, etag)))
    }

    async fn write_claim(
        &self,
        claim_id: &str,
        state: &AlertClaim,
        etag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let partition = claim_partition(claim_id);
        let mut entity = Map::new();
        entity.insert("PartitionKey".into(), partition.clone().into());
        entity.insert("RowKey".into(), CLAIM_ROW.into());
        entity.insert("ClaimId".into(), claim_id.into());
        entity.insert("Sent".into(), state.sent.into());
        put_i64(&mut entity, "ClaimedAt", state.claimed_at);
        put_i64(&mut entity, "ExpiresAt", state.expires_at);
        match etag {
            None => Ok(self.client.insert(&entity).await? == Inserted::Created),
            Some(etag) => Ok(self
                .client
                .replace(&entity, &partition, CLAIM_ROW, etag)
                .await?
                == Guarded::Done),
        }
    }
}

/// Before each optimistic round but the first: a jittered pause, so two writers that just
/// collided do not collide again at once.
async fn contention_pause(attempt: usize) {
    if attempt > 0 {
        let failed = u32::try_from(attempt).unwrap_or(u32::MAX);
        snapwatch_http::Backoff::CONTENTION.sleep(failed).await;
    }
}

fn contention(what: &str, claim_id: &str) -> StoreError {
    StoreError::unavailable(format!(
        "{what} {claim_id:?}: the claim kept changing under us for {MAX_GUARDED_ATTEMPTS} attempts"
    ))
}

impl StateStore for TableStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        // A key repeated within the batch is one fact: send it once, so it counts once.
        let mut seen = HashSet::new();
        // Owned items: borrowed ones trip the compiler's `Send` proof for the buffered stream.
        let unique: Vec<(String, StoredFact)> = batch
            .iter()
            .flat_map(|rf| rf.facts.iter().map(move |f| (rf.resource.as_str(), f)))
            .filter(|(resource, fact)| seen.insert((*resource, fact.key.as_str())))
            .map(|(resource, fact)| (resource.to_owned(), fact.clone()))
            .collect();
        let created: Vec<bool> = stream::iter(unique)
            .map(|(resource, fact)| async move { self.insert_fact(&resource, &fact).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(created.into_iter().filter(|new| *new).count())
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let now = now.timestamp();
        let mut seen = HashSet::new();
        let unique: Vec<String> = resources
            .iter()
            .filter(|r| seen.insert(r.as_str()))
            .cloned()
            .collect();
        // One partition query per resource (Table Storage has no batch get), a few at a time.
        let loaded: Vec<Option<ResourceFacts>> = stream::iter(unique)
            .map(|resource| async move { self.load_resource(&resource, now).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(loaded.into_iter().flatten().collect())
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let now = now.timestamp();
        let fresh = AlertClaim::won(now, expires_at);
        for attempt in 0..MAX_GUARDED_ATTEMPTS {
            contention_pause(attempt).await;
            let current = self.read_claim(finding_id).await?;
            let stored = current.as_ref().map(|(state, _)| state);
            if let Some(refused) = ClaimStatus::of(stored, now, lease_secs).refusal() {
                return Ok(refused);
            }
            // Absent, expired, or a stale lease whose holder crashed: take it over, guarded.
            let etag = current.as_ref().map(|(_, etag)| etag.as_str());
            if self.write_claim(finding_id, &fresh, etag).await? {
                return Ok(Claim::Won);
            }
            // Someone wrote between our read and our write: look again.
        }
        Err(contention("claim_alert", finding_id))
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        for attempt in 0..MAX_GUARDED_ATTEMPTS {
            contention_pause(attempt).await;
            let Some((mut state, etag)) = self.read_claim(finding_id).await? else {
                return Err(StoreError::permanent(format!(
                    "mark_alert_sent: no claim for {finding_id:?}"
                )));
            };
            if state.sent {
                return Ok(());
            }
            state.sent = true;
            if self.write_claim(finding_id, &state, Some(&etag)).await? {
                return Ok(());
            }
        }
        Err(contention("mark_alert_sent", finding_id))
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        for attempt in 0..MAX_GUARDED_ATTEMPTS {
            contention_pause(attempt).await;
            let Some((state, etag)) = self.read_claim(finding_id).await? else {
                return Ok(());
            };
            if state.sent {
                // Delivered stays delivered.
                return Ok(());
            }
            if self
                .client
                .delete(&claim_partition(finding_id), CLAIM_ROW, &etag)
                .await?
                == Guarded::Done
            {
                return Ok(());
            }
        }
        Err(contention("release_alert", finding_id))
    }
}

fn decode_claim(entity: &Map<String, Value>) -> Result<AlertClaim, StoreError> {
    Ok(AlertClaim {
        sent: entity
            .get("Sent")
            .and_then(Value::as_bool)
            .ok_or_else(|| corrupt("claim", "Sent"))?,
        claimed_at: get_i64(entity, "ClaimedAt").ok_or_else(|| corrupt("claim", "ClaimedAt"))?,
        expires_at: get_i64(entity, "ExpiresAt").ok_or_else(|| corrupt("claim", "ExpiresAt"))?,
    })
}

fn corrupt(what: &str, property: &str) -> StoreError {
    StoreError::permanent(format!(
        "stored {what} entity has no usable `{property}` property"
    ))
}

fn decode_fact(entity: &Map<String, Value>) -> Result<StoredFact, StoreError> {
    let key = entity
        .get("FactKey")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("fact", "FactKey"))?;
    let expires_at = get_i64(entity, "ExpiresAt").ok_or_else(|| corrupt("fact", "ExpiresAt"))?;
    let parts = get_i64(entity, "BodyParts").ok_or_else(|| corrupt("fact", "BodyParts"))?;
    let mut body = String::new();
    for i in 0..parts {
        let name = format!("Body{i}");
        let chunk = entity
            .get(&name)
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("fact", &name))?;
        body.push_str(chunk);
    }
    Ok(StoredFact {
        key: key.to_owned(),
        expires_at,
        body,
    })
}

/// Splits `body` on character boundaries into chunks of at most [`BODY_CHUNK_UTF16`] UTF-16
/// units (how the service measures a string property). An empty body is one empty chunk.
fn split_body(body: &str) -> Result<Vec<String>, StoreError> {
    let total: usize = body.encode_utf16().count();
    if total > MAX_BODY_UTF16 {
        return Err(StoreError::permanent(format!(
            "fact body of {total} UTF-16 units exceeds the {MAX_BODY_UTF16} one Table entity can hold"
        )));
    }
    let mut chunks = vec![String::new()];
    let mut units = 0;
    for c in body.chars() {
        if units + c.len_utf16() > BODY_CHUNK_UTF16 {
            chunks.push(String::new());
            units = 0;
        }
        units += c.len_utf16();
        if let Some(last) = chunks.last_mut() {
            last.push(c);
        }
    }
    Ok(chunks)
}

/// The address and ETag of a row the purge scan returned.
fn purge_key(entity: &Map<String, Value>) -> Result<EntityKey, TableError> {
    let text = |name: &str| {
        entity
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| TableError::Permanent {
                message: format!("purge scan answered a row without `{name}`"),
                source: None,
            })
    };
    Ok(EntityKey {
        partition: text("PartitionKey")?,
        row: text("RowKey")?,
        etag: text("odata.etag")?,
    })
}

fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fact_partition(resource: &str) -> String {
    format!("r-{}", digest(resource))
}

fn fact_row(fact_key: &str) -> String {
    format!("f-{}", digest(fact_key))
}

fn claim_partition(claim_id: &str) -> String {
    format!("a-{}", digest(claim_id))
}

/// Table Storage keeps Int64 as a string with an `Edm.Int64` annotation.
fn put_i64(entity: &mut Map<String, Value>, name: &str, value: i64) {
    entity.insert(name.to_owned(), value.to_string().into());
    entity.insert(format!("{name}@odata.type"), "Edm.Int64".into());
}

/// Int64 as the service answers it: a string without metadata, a number from some emulators.
fn get_i64(entity: &Map<String, Value>, name: &str) -> Option<i64> {
    match entity.get(name)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bodies_on_char_boundaries_under_the_property_limit() {
        assert_eq!(split_body("").unwrap(), vec![String::new()]);
        // 🚀 takes two UTF-16 units: a chunk must never end between them.
        let body = "🚀".repeat(BODY_CHUNK_UTF16);
        let chunks = split_body(&body).unwrap();
        assert_eq!(chunks.len(), 2);
        assert!(chunks
            .iter()
            .all(|c| c.encode_utf16().count() <= BODY_CHUNK_UTF16));
        assert_eq!(chunks.concat(), body);
        let ascii = "x".repeat(BODY_CHUNK_UTF16 + 1);
        assert_eq!(
            split_body(&ascii)
                .unwrap()
                .iter()
                .map(String::len)
                .collect::<Vec<_>>(),
            vec![BODY_CHUNK_UTF16, 1]
        );
        assert!(split_body(&"x".repeat(MAX_BODY_UTF16 + 1)).is_err());
    }

    #[test]
    fn keys_are_digests_that_keep_case_apart() {
        assert_ne!(
            fact_partition("Mixed Case Id"),
            fact_partition("mixed case id")
        );
        let key = fact_row("evt-1#0");
        assert!(key.starts_with("f-") && key.len() == 66);
        assert!(key[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn reads_int64_in_either_form() {
        let mut entity = Map::new();
        put_i64(&mut entity, "ExpiresAt", 4_070_908_800);
        assert_eq!(
            entity.get("ExpiresAt@odata.type"),
            Some(&Value::from("Edm.Int64"))
        );
        assert_eq!(get_i64(&entity, "ExpiresAt"), Some(4_070_908_800));
        entity.insert("N".into(), 7.into());
        assert_eq!(get_i64(&entity, "N"), Some(7));
        entity.insert("Bad".into(), true.into());
        assert_eq!(get_i64(&entity, "Bad"), None);
    }
}

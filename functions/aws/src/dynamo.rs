//! DynamoDB [`StateStore`]: one table, string keys `pk` (partition) and `sk` (sort), TTL on
//! `expires_at`.
//!
//! Item layout:
//! - facts of one resource: `pk = "res#<resource id>"`, `sk = "facts"`; the set `fact_keys` holds
//!   every fact key, each fact is a top-level attribute `"f:<fact key>"` = `{e: N expires_at,
//!   b: S body}`, and `expires_at` is the newest fact's expiry (the item's TTL).
//! - an alert claim: `pk = "alert#<claim id>"`, `sk = "claim"`, with `claimed_at`, `sent`,
//!   `expires_at`.
//!
//! Every write is one atomic `UpdateItem` (or conditional `DeleteItem`); nothing reads, modifies
//! and writes back. A fact is written with `if_not_exists`, so the first body of a key wins, and
//! its key is `ADD`ed to `fact_keys`; the old item that `UpdateItem` returns tells which keys were
//! new. Transactions and the TTL API are not used (dynalite has neither). Readers drop facts whose
//! `expires_at <= now` themselves, since DynamoDB deletes expired items lazily (and moto never).
//!
//! Request economy (the per-event cost): [`DynamoStore::session`] gives a per-invocation view
//! that remembers the state each `UpdateItem` returned, so the engine's first read of the
//! resources it just wrote costs no request. That state is exactly what a consistent read right
//! after our own atomic write would return, so the engine's "the later writer sees both facts"
//! argument for concurrent events still holds.
//!
//! The engine then walks the chain one level per read. The store remembers, per resource, the
//! ids of the chains walked through it lately (at most 32 ids; larger walks, hubs, are not
//! remembered), and the first read a walk needs also reads the remembered chain members it has
//! not asked for yet, in the same `BatchGetItem` (at most 32 more keys, within its 100). The
//! levels after it then cost nothing when the chain is as remembered, and one read each where
//! it grew. Only ids are remembered: the items come from a consistent read made after this
//! invocation's writes, as the walk's own reads would, and each serves one load in the same
//! evaluation (same `now`, no write in between). A stale memory costs read units for items the
//! walk does not need, never a wrong answer.
//!
//! The item's TTL only moves forward (a late event must not make DynamoDB delete newer facts
//! early). The usual in-order write raises it under a condition; a late write keeps it with
//! `if_not_exists`. The store remembers the TTL each of its writes left on an item, so a late
//! write to a resource this process has written before goes straight to the keeping form: one
//! request instead of a failed conditional write plus a retry. The memory is only a lower bound
//! (TTLs never go down while the item lives), so a stale entry at worst costs that retry.
//!
//! Limit: one resource's facts live in one item, so a resource is capped by DynamoDB's 400 KB item
//! size (some hundreds of facts within the chain window). Writes beyond it fail permanently with a
//! message saying so.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use snapwatch_aws_inventory::classify::sdk_error_class;
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoreError, StoredFact};
use snapwatch_http::{Backoff, Class};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PK: &str = "pk";
const SK: &str = "sk";
const FACTS_SK: &str = "facts";
const CLAIM_SK: &str = "claim";
const RESOURCE_PREFIX: &str = "res#";
const ALERT_PREFIX: &str = "alert#";
const FACT_ATTR_PREFIX: &str = "f:";
const FACT_KEYS: &str = "fact_keys";
const EXPIRES_AT: &str = "expires_at";
const FACT_EXPIRES: &str = "e";
const FACT_BODY: &str = "b";
/// `BatchGetItem` takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Facts per `UpdateItem`: keeps the update expression well under DynamoDB's 4 KB limit.
const FACTS_PER_UPDATE: usize = 40;
/// Rounds of `UnprocessedKeys` retries before the read is reported as throttled.
const UNPROCESSED_ROUNDS: u32 = 8;
/// The pause before re-reading unprocessed keys: 50 ms doubling to 800 ms, jittered.
const UNPROCESSED_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(50), Duration::from_millis(800));

/// The table a deployment keeps its chain state in.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    /// Claims known to be delivered, with their expiry. "Sent" is final until the claim expires,
    /// so a warm function answers `AlreadySent` for re-evaluated chains without a request.
    sent: Arc<Mutex<HashMap<String, i64>>>,
    /// Claims this process won and has not marked sent yet, with their expiry.
    won: Arc<Mutex<HashMap<String, i64>>>,
    /// Resource → a TTL its item is known to have reached (see the module docs).
    item_ttl: Arc<Mutex<HashMap<String, i64>>>,
    /// Resource → the other resources of the chains walked from or through it lately: which
    /// items to read ahead (see the module docs). Ids only; facts always come from the table.
    chains: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
}

/// A walk of more resources than this is not remembered (a hub: a default security group, a
/// golden image); a remembered chain that would grow past it is replaced by the latest walk.
const CHAIN_MEMORY_IDS: usize = 32;
/// Resources whose chains are remembered; past it the memory is simply cleared.
const CHAIN_MEMORY_RESOURCES: usize = 4_096;

/// Bound on each memory (claims, item TTLs); past it that memory is simply cleared.
const REMEMBERED_CLAIMS: usize = 10_000;

/// Records that `resource`'s item TTL has reached `ttl` (keeping the higher of two records).
fn remember_ttl(map: &Mutex<HashMap<String, i64>>, resource: &str, ttl: i64) {
    let known = map.lock().ok().and_then(|m| m.get(resource).copied());
    if known.is_none_or(|k| k < ttl) {
        remember(map, resource, ttl);
    }
}

fn remember(map: &Mutex<HashMap<String, i64>>, id: &str, expires_at: i64) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= REMEMBERED_CLAIMS {
            m.clear();
        }
        m.insert(id.to_string(), expires_at);
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: Arc::from(table.into()),
            sent: Arc::default(),
            won: Arc::default(),
            item_ttl: Arc::default(),
            chains: Arc::default(),
        }
    }

    /// Remembers a finished walk under each of its resources (see the module docs).
    fn remember_walk(&self, walked: &BTreeSet<String>) {
        if walked.len() < 2 || walked.len() > CHAIN_MEMORY_IDS {
            return;
        }
        let Ok(mut chains) = self.chains.lock() else {
            return;
        };
        if chains.len() + walked.len() > CHAIN_MEMORY_RESOURCES {
            chains.clear();
        }
        for resource in walked {
            let chain = chains.entry(resource.clone()).or_default();
            chain.extend(walked.iter().cloned());
            if chain.len() > CHAIN_MEMORY_IDS {
                chain.clone_from(walked);
            }
        }
    }

    /// Up to `room` remembered chain members of `walked` not in it yet, to read ahead.
    fn chain_neighbours(&self, walked: &BTreeSet<String>, room: usize) -> Vec<String> {
        if room == 0 {
            return Vec::new();
        }
        let Ok(chains) = self.chains.lock() else {
            return Vec::new();
        };
        let mut ahead = BTreeSet::new();
        for resource in walked {
            for member in chains.get(resource).into_iter().flatten() {
                if !walked.contains(member) {
                    ahead.insert(member);
                }
            }
        }
        ahead.into_iter().take(room).cloned().collect()
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, e.g. for inspecting the table in tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A view for one invocation: same table, plus memory of what this invocation's writes
    /// returned (see the module docs). Cheap; make one per event.
    pub fn session(&self) -> DynamoSession<'_> {
        DynamoSession {
            store: self,
            known: Mutex::default(),
        }
    }

    /// Creates the table with the key schema the store expects (on-demand). For tests and local
    /// servers; deployments create it with Terraform.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| StoreError::permanent_from("invalid attribute definition", e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| StoreError::permanent_from("invalid key schema", e))
        };
        self.client
            .create_table()
            .table_name(self.table.as_ref())
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| classify("CreateTable", e))?;
        // CreateTable returns while the table is still CREATING (dynalite too, even with
        // --createTableMs 0); writes before ACTIVE fail with ResourceNotFoundException.
        for _ in 0..300 {
            let described = self
                .client
                .describe_table()
                .table_name(self.table.as_ref())
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(StoreError::unavailable(format!(
            "table {} did not become ACTIVE within 30 s",
            self.table
        )))
    }

    /// Adds facts; returns the number of new facts and, per resource written in a single update,
    /// the resource's facts right after the write.
    async fn write_facts(
        &self,
        batch: &[ResourceFacts],
    ) -> Result<(usize, HashMap<String, Vec<StoredFact>>), StoreError> {
        // Dedupe: a key may appear twice for one resource within a batch; the first one counts.
        let mut per_resource: BTreeMap<&str, Vec<&StoredFact>> = BTreeMap::new();
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for rf in batch {
            for fact in &rf.facts {
                if seen.insert((rf.resource.as_str(), fact.key.as_str())) {
                    per_resource.entry(&rf.resource).or_default().push(fact);
                }
            }
        }
        let mut added = 0;
        let mut after_write = HashMap::new();
        for (resource, facts) in per_resource {
            let chunks: Vec<&[&StoredFact]> = facts.chunks(FACTS_PER_UPDATE).collect();
            let single_update = chunks.len() == 1;
            for chunk in chunks {
                let old = self.update_resource(resource, chunk).await?;
                let old_facts = decode_facts(resource, &old)?;
                let old_keys: HashSet<&str> = old_facts.iter().map(|f| f.key.as_str()).collect();
                let new: Vec<StoredFact> = chunk
                    .iter()
                    .filter(|f| !old_keys.contains(f.key.as_str()))
                    .map(|f| (*f).clone())
                    .collect();
                added += new.len();
                if single_update {
                    let mut state = old_facts;
                    state.extend(new);
                    after_write.insert(resource.to_string(), state);
                }
            }
        }
        Ok((added, after_write))
    }

    /// One atomic update of a resource's item; returns the item as it was before.
    async fn update_resource(
        &self,
        resource: &str,
        facts: &[&StoredFact],
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let newest = facts.iter().map(|f| f.expires_at).max().unwrap_or(0);
        let mut sets = Vec::with_capacity(facts.len() + 1);
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, fact) in facts.iter().enumerate() {
            sets.push(format!("#f{i} = if_not_exists(#f{i}, :f{i})"));
            names.insert(format!("#f{i}"), format!("{FACT_ATTR_PREFIX}{}", fact.key));
            values.insert(
                format!(":f{i}"),
                AttributeValue::M(HashMap::from([
                    (
                        FACT_EXPIRES.to_string(),
                        AttributeValue::N(fact.expires_at.to_string()),
                    ),
                    (FACT_BODY.to_string(), AttributeValue::S(fact.body.clone())),
                ])),
            );
        }
        names.insert("#keys".into(), FACT_KEYS.into());
        names.insert("#exp".into(), EXPIRES_AT.into());
        values.insert(
            ":keys".into(),
            AttributeValue::Ss(facts.iter().map(|f| f.key.clone()).collect()),
        );
        values.insert(":exp".into(), AttributeValue::N(newest.to_string()));

        // The item's TTL only moves forward (see the module docs): raise it under a condition,
        // or, for a write known to be late, keep it.
        let known_ttl = self
            .item_ttl
            .lock()
            .ok()
            .and_then(|m| m.get(resource).copied());
        if known_ttl.is_none_or(|ttl| ttl <= newest) {
            let extend_ttl = format!("SET {}, #exp = :exp ADD #keys :keys", sets.join(", "));
            let first = self
                .client
                .update_item()
                .table_name(self.table.as_ref())
                .set_key(Some(resource_key(resource)))
                .update_expression(extend_ttl)
                .condition_expression("attribute_not_exists(#exp) OR #exp <= :exp")
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            match first {
                Ok(out) => {
                    remember_ttl(&self.item_ttl, resource, newest);
                    return Ok(out.attributes.unwrap_or_default());
                }
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(classify_write(resource, err)),
            }
        }
        // Late: the item's TTL is already later. `if_not_exists` still gives a TTL to an item
        // that expired and was deleted in the meantime.
        let keep_ttl = format!(
            "SET {}, #exp = if_not_exists(#exp, :exp) ADD #keys :keys",
            sets.join(", ")
        );
        let out = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(resource_key(resource)))
            .update_expression(keep_ttl)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|err| classify_write(resource, err))?;
        let old = out.attributes.unwrap_or_default();
        // What the item holds now, which beats an older memory of it.
        let ttl_after = old
            .get(EXPIRES_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(newest);
        remember(&self.item_ttl, resource, ttl_after);
        Ok(old)
    }

    /// Consistent batch read of resource items, with only the facts alive at `now`.
    async fn read_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let now = now.timestamp();
        Ok(self
            .read_items(resources)
            .await?
            .into_iter()
            .filter_map(|(resource, facts)| {
                let facts: Vec<StoredFact> =
                    facts.into_iter().filter(|f| f.expires_at > now).collect();
                (!facts.is_empty()).then_some(ResourceFacts { resource, facts })
            })
            .collect())
    }

    /// Consistent batch read of resource items, paged by 100 keys and over `UnprocessedKeys`:
    /// every fact of each item found, expired ones included.
    async fn read_items(
        &self,
        resources: &[String],
    ) -> Result<Vec<(String, Vec<StoredFact>)>, StoreError> {
        let mut unique: Vec<&str> = Vec::with_capacity(resources.len());
        let mut seen = HashSet::new();
        for r in resources {
            if seen.insert(r.as_str()) {
                unique.push(r);
            }
        }
        let mut out = Vec::new();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|r| resource_key(r)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::permanent_from("invalid BatchGetItem keys", e))?,
            );
            let mut round = 0;
            while let Some(request) = pending.take() {
                if round > 0 {
                    if round > UNPROCESSED_ROUNDS {
                        return Err(StoreError::unavailable(format!(
                            "BatchGetItem on {} left keys unprocessed after {UNPROCESSED_ROUNDS} retries (throttled)",
                            self.table
                        )));
                    }
                    UNPROCESSED_BACKOFF.sleep(round).await;
                }
                round += 1;
                let response = self
                    .client
                    .batch_get_item()
                    .request_items(self.table.as_ref(), request)
                    .send()
                    .await
                    .map_err(|e| classify("BatchGetItem", e))?;
                for item in response
                    .responses
                    .and_then(|mut r| r.remove(self.table.as_ref()))
                    .unwrap_or_default()
                {
                    let resource = resource_of(&item)?;
                    let facts = decode_facts(&resource, &item)?;
                    out.push((resource, facts));
                }
                pending = response
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(self.table.as_ref()))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(out)
    }

    async fn read_claim(
        &self,
        finding_id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(claim_key(finding_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item)
    }
}

impl StateStore for DynamoStore {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        Ok(self.write_facts(batch).await?.0)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        self.read_facts(resources, now).await
    }

    async fn claim_alert(
        &self,
        finding_id: &str,
        now: DateTime<Utc>,
        lease_secs: i64,
        expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let now = now.timestamp();
        let known_sent = self
            .sent
            .lock()
            .ok()
            .and_then(|m| m.get(finding_id).copied())
            .is_some_and(|expiry| now < expiry);
        if known_sent {
            return Ok(Claim::AlreadySent);
        }
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(claim_key(finding_id)))
            .update_expression("SET claimed_at = :now, sent = :false, #exp = :exp")
            // The core's `ClaimStatus::Free` as a condition, so the service decides atomically:
            // never claimed, expired (a new chain window), or unsent with a lapsed lease.
            .condition_expression(
                "attribute_not_exists(pk) OR #exp <= :now OR (sent = :false AND claimed_at <= :stale)",
            )
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(
                ":stale",
                AttributeValue::N(now.saturating_sub(lease_secs).to_string()),
            )
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                remember(&self.won, finding_id, expires_at);
                Ok(Claim::Won)
            }
            Err(err) if is_condition_failure(&err) => {
                // Lost: someone holds or delivered it. The failure carries the item where the
                // server supports it; otherwise (dynalite) one read tells which.
                let returned = match &err {
                    SdkError::ServiceError(service) => match service.err() {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e) => e.item.clone(),
                        _ => None,
                    },
                    _ => None,
                };
                let item = match returned {
                    Some(item) => Some(item),
                    None => self.read_claim(finding_id).await?,
                };
                let sent = item
                    .as_ref()
                    .and_then(|i| i.get("sent"))
                    .is_some_and(|v| matches!(v, AttributeValue::Bool(true)));
                if sent {
                    let expiry = item
                        .as_ref()
                        .and_then(|i| i.get(EXPIRES_AT))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok());
                    if let Some(expiry) = expiry {
                        remember(&self.sent, finding_id, expiry);
                    }
                    Ok(Claim::AlreadySent)
                } else {
                    Ok(Claim::HeldByOther)
                }
            }
            Err(err) => Err(classify("UpdateItem (claim)", err)),
        }
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(claim_key(finding_id)))
            .update_expression("SET sent = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => {
                let expiry = self.won.lock().ok().and_then(|mut m| m.remove(finding_id));
                if let Some(expiry) = expiry {
                    remember(&self.sent, finding_id, expiry);
                }
                Ok(())
            }
            Err(err) if is_condition_failure(&err) => Err(StoreError::permanent(format!(
                "mark_alert_sent: no claim for {finding_id}"
            ))),
            Err(err) => Err(classify("UpdateItem (mark sent)", err)),
        }
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(claim_key(finding_id)))
            // A delivered alert stays delivered: only an unsent claim is given back.
            .condition_expression("sent = :false")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        if let Ok(mut won) = self.won.lock() {
            won.remove(finding_id);
        }
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(classify("DeleteItem (release)", err)),
        }
    }
}

/// One invocation's view of a [`DynamoStore`] (see the module docs).
pub struct DynamoSession<'a> {
    store: &'a DynamoStore,
    /// What this invocation knows without asking the table.
    known: Mutex<Known>,
}

/// Items an invocation has seen since its last write, each handed to the engine once: the engine
/// loads a node once per evaluation, and a second evaluation must read the table again.
#[derive(Default)]
struct Known {
    /// Resource → its facts right after this invocation's write.
    written: HashMap<String, Vec<StoredFact>>,
    /// Resource → its facts as a read-ahead found them (empty: no item), for loads at
    /// `read_ahead_at` (one evaluation asks every load with the same `now`).
    read_ahead: HashMap<String, Vec<StoredFact>>,
    read_ahead_at: Option<DateTime<Utc>>,
    /// Every resource written or asked for since the last write: the chains walked so far.
    walked: BTreeSet<String>,
}

impl DynamoSession<'_> {
    /// Takes what is known of `resources` and tells which must be read, plus the resources to
    /// read ahead in the same request (see the module docs).
    fn take_known(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> (HashMap<String, Vec<StoredFact>>, Vec<String>, Vec<String>) {
        let mut found = HashMap::new();
        let mut rest = Vec::new();
        // A poisoned lock only loses the shortcuts; reading from the table is always correct.
        let Ok(mut known) = self.known.lock() else {
            let unique: BTreeSet<&String> = resources.iter().collect();
            return (found, unique.into_iter().cloned().collect(), Vec::new());
        };
        if known.read_ahead_at != Some(now) {
            known.read_ahead.clear();
        }
        let mut asked = HashSet::new();
        for r in resources {
            if !asked.insert(r.as_str()) {
                continue;
            }
            let facts = known
                .written
                .remove(r)
                .or_else(|| known.read_ahead.remove(r));
            match facts {
                Some(facts) => {
                    found.insert(r.clone(), facts);
                }
                None => rest.push(r.clone()),
            }
        }
        known.walked.extend(resources.iter().cloned());
        let ahead = if rest.is_empty() {
            Vec::new()
        } else {
            // At most one remembered chain's worth, and never a second request.
            let room = BATCH_GET_MAX
                .saturating_sub(rest.len())
                .min(CHAIN_MEMORY_IDS);
            self.store.chain_neighbours(&known.walked, room)
        };
        (found, rest, ahead)
    }
}

impl Drop for DynamoSession<'_> {
    fn drop(&mut self) {
        if let Ok(known) = self.known.get_mut() {
            self.store.remember_walk(&known.walked);
        }
    }
}

impl StateStore for DynamoSession<'_> {
    async fn add_facts(&self, batch: &[ResourceFacts]) -> Result<usize, StoreError> {
        let (added, after_write) = self.store.write_facts(batch).await?;
        if let Ok(mut known) = self.known.lock() {
            // A write starts a new walk: remember the one before, forget what it read ahead.
            self.store.remember_walk(&known.walked);
            known.walked = batch.iter().map(|rf| rf.resource.clone()).collect();
            known.read_ahead.clear();
            known.written.extend(after_write);
        }
        Ok(added)
    }

    async fn load_facts(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<ResourceFacts>, StoreError> {
        let (mut found, rest, ahead) = self.take_known(resources, now);
        if !rest.is_empty() {
            let mut ask = rest.clone();
            ask.extend(ahead.iter().cloned());
            let mut items: HashMap<String, Vec<StoredFact>> =
                self.store.read_items(&ask).await?.into_iter().collect();
            for r in rest {
                if let Some(facts) = items.remove(&r) {
                    found.insert(r, facts);
                }
            }
            if let Ok(mut known) = self.known.lock() {
                known.read_ahead_at = Some(now);
                for r in ahead {
                    let facts = items.remove(&r).unwrap_or_default();
                    known.read_ahead.insert(r, facts);
                }
            }
        }
        let now = now.timestamp();
        Ok(found
            .into_iter()
            .filter_map(|(resource, facts)| {
                let facts: Vec<StoredFact> =
                    facts.into_iter().filter(|f| f.expires_at > now).collect();
                (!facts.is_empty()).then_some(ResourceFacts { resource, facts })
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
        self.store
            .claim_alert(finding_id, now, lease_secs, expires_at)
            .await
    }

    async fn mark_alert_sent(&self, finding_id: &str) -> Result<(), StoreError> {
        self.store.mark_alert_sent(finding_id).await
    }

    async fn release_alert(&self, finding_id: &str) -> Result<(), StoreError> {
        self.store.release_alert(finding_id).await
    }
}

fn resource_key(resource: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            PK.to_string(),
            AttributeValue::S(format!("{RESOURCE_PREFIX}{resource}")),
        ),
        (SK.to_string(), AttributeValue::S(FACTS_SK.to_string())),
    ])
}

fn claim_key(finding_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            PK.to_string(),
            AttributeValue::S(format!("{ALERT_PREFIX}{finding_id}")),
        ),
        (SK.to_string(), AttributeValue::S(CLAIM_SK.to_string())),
    ])
}

fn resource_of(item: &HashMap<String, AttributeValue>) -> Result<String, StoreError> {
    item.get(PK)
        .and_then(|v| v.as_s().ok())
        .and_then(|pk| pk.strip_prefix(RESOURCE_PREFIX))
        .map(str::to_owned)
        .ok_or_else(|| {
            StoreError::permanent("a fact item in the table has no `res#` partition key")
        })
}

/// The facts held in one resource item (expired ones included; callers filter).
fn decode_facts(
    resource: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Vec<StoredFact>, StoreError> {
    let mut facts = Vec::new();
    for (name, value) in item {
        let Some(key) = name.strip_prefix(FACT_ATTR_PREFIX) else {
            continue;
        };
        let corrupt = |what: &str| {
            StoreError::permanent(format!(
                "stored fact {key:?} under {resource:?} is corrupt: {what}"
            ))
        };
        let map = value.as_m().map_err(|_| corrupt("not a map"))?;
        let expires_at = map
            .get(FACT_EXPIRES)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| corrupt("no numeric expiry"))?;
        let body = map
            .get(FACT_BODY)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt("no body"))?;
        facts.push(StoredFact {
            key: key.to_string(),
            expires_at,
            body: body.clone(),
        });
    }
    Ok(facts)
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(_))
        && err.code() == Some("ConditionalCheckFailedException")
}

fn classify_write<E>(resource: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let too_big = matches!(err, SdkError::ServiceError(_))
        && err.code() == Some("ValidationException")
        && err
            .message()
            .is_some_and(|m| m.to_ascii_lowercase().contains("size"));
    if too_big {
        return StoreError::permanent_from(
            format!("the facts of {resource:?} exceed DynamoDB's 400 KB item size"),
            err,
        );
    }
    classify("UpdateItem (facts)", err)
}

/// Maps an SDK failure to retryable (throttling, 5xx, network) or permanent (validation, access,
/// missing table), keeping the SDK error as the source.
pub(crate) fn classify<E>(operation: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = sdk_error_class(&err) == Class::Transient;
    let message = format!(
        "DynamoDB {operation} failed: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    if retryable {
        StoreError::unavailable_from(message, err)
    } else {
        StoreError::permanent_from(message, err)
    }
}

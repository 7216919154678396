//! DynamoDB [`StateStore`]: one table, string keys `pk` (partition) and `sk` (sort), TTL on
//! `expires_at`.
//!
//! Item layout:
//! - facts of one resource: `pk = "res#<resource id>"`, pages `sk = "facts"` (the first),
//!   `"facts#1"`, `"facts#2"`…; in each page the set `fact_keys` holds the page's fact keys, each
//!   fact is a top-level attribute `"f:<fact key>"` = `{e: N expires_at, b: S body}`,
//!   `expires_at` is the newest fact's expiry rounded up to the whole hour (the page's TTL) and
//!   `bytes` the page's estimated size. The first page of a resource with more than one page holds `pages`, their count.
//! - an alert claim: `pk = "alert#<claim id>"`, `sk = "claim"`, with `claimed_at`, `sent`,
//!   `expires_at`.
//!
//! Every write is one atomic `UpdateItem` (or conditional `DeleteItem`); nothing reads, modifies
//! and writes back. A fact is written with `if_not_exists`, so the first body of a key wins, and
//! its key is `ADD`ed to `fact_keys`; the old page that `UpdateItem` returns tells which keys were
//! new. Transactions and the TTL API are not used (dynalite has neither). Readers drop facts whose
//! `expires_at <= now` themselves, since DynamoDB deletes expired items lazily (and moto never).
//!
//! Pages (hubs: a golden AMI, a default security group linked to thousands of resources). A
//! resource's facts would outgrow DynamoDB's 400 KB item, and an update is billed on the larger
//! of the old and new item, so a write to a big item costs its whole size. Each write therefore
//! adds its estimated size to the page's `bytes` under the condition that the page is below a
//! 48 KB budget (writes add at most 16 KB, so a page stays near 64 KB: a hub write costs at most
//! about 64 write units). The first write that finds the page over budget makes it final: no
//! write ever changes it again. That writer reads the full page's fact keys, raises the count on
//! the first page (a guarded "only upwards" update, made before anything goes to the new page, so
//! readers always find it) and writes to the next page. Idempotency per fact key follows: a writer
//! only writes to a page after it has seen the final key sets of all the pages before it, and
//! drops the keys it finds there (not new); within the page, `if_not_exists` and the returned old
//! page decide as before. So a key is on one page only, and a redelivery counts 0 however old. A
//! process remembers a hub's final pages ([`hubs`]: bounded in hubs, bytes and age), so a warm
//! writer goes straight to the last page; a cold one pays a failed write and one batch read of
//! the other full pages' keys. The writer whose write fills a page knows it (the page's old size,
//! returned, plus its own) and holds the page whole, so its next write goes to the next page
//! without failing first. The failed write asks for the page back
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`): the page's facts, keys and TTL and the first
//! page's count come with the failure, so neither a read nor a raise of the first page's TTL
//! follows. dynalite returns nothing: there a read of the page stands in (see below). An item
//! written before pages existed has no `bytes`, fails the guard, and is therefore a final first
//! page: read as before, no migration. Every later page records
//! `base`, the digest of the keys on the pages before it (set by its first writer, the same for
//! every writer since those pages are final). A page that exists was counted by its creator, so
//! a writer that finds a later page full (most often one that another writer filled and moved on
//! from) writes to the next page only if it exists, and raises the count and creates the page
//! only when it does not: the writers after the first spare a raise that would fail. DynamoDB
//! says "no item" by returning none with the failure; dynalite never returns one, so there a
//! read of the page stands in: at once on a later page (most often full), and on a first page
//! (more often late than full) only after the keeping form below has failed too. Once the server
//! has returned an item with a failure, the store trusts its silence.
//!
//! Reads: the first pages in one `BatchGetItem`, plus, in the same request, the further pages of
//! the hubs this process knows; one more `BatchGetItem` only for pages the first pages' counts
//! name and it did not ask for (a hub seen for the first time, or grown). Ordinary resources have
//! one page and cost what they did. A hub whose full pages the process holds (learned from a
//! read, a failed write or its own filling write; at most 8 MB of facts, an hour) is read by its
//! last page alone: that page's `base` must match the pages held (a hub that expired and was
//! rebuilt does not), and it must not be full (else a page may follow it: that one is read next,
//! once, then the whole hub). A full page never changes, so held pages plus the last page read
//! are what a consistent read of every page would return; a warm instance reads a 30-page hub
//! for the read units of one page. The first page's TTL must outlive every page (it holds the
//! count): before a write to a later page, it is raised to that write's newest expiry plus a day
//! unless the process knows it is late enough (which recreates a deleted first page with its
//! count).
//!
//! Request economy (the per-event cost): [`DynamoStore::session`] gives a per-invocation view
//! that remembers the state each `UpdateItem` returned, so the engine's first read of the
//! resources it just wrote costs no request. That state is exactly what a consistent read right
//! after our own atomic write would return, so the engine's "the later writer sees both facts"
//! argument for concurrent events still holds. A write to a hub's later page returns only that
//! page; with the full pages held and the page's `base` matching them (or the page new), that
//! page and the held ones are the hub at the write (a page gets a successor only once full), so
//! a hub written costs no read either. Otherwise it is read from the table.
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
//! A page's TTL only moves forward (a late event must not make DynamoDB delete newer facts
//! early). The usual in-order write raises it under a condition; a late write keeps it with
//! `if_not_exists`. The TTL is rounded up to the hour, so a write whose facts expire within the
//! hour of the page's newest passes the raising condition: one request, even from an instance
//! that never wrote the page. A page lives at most an hour longer; readers still drop each fact
//! at its own expiry. A failed raise returns the page where the server supports it (DynamoDB,
//! moto), which tells a late write (retried in the keeping form) from a full page (no retry). The store remembers the TTL each of its writes left on a page, so a late
//! write to a page this process has written before goes straight to the keeping form: one
//! request instead of a failed conditional write plus a retry. The memory is only a lower bound
//! (TTLs never go down while the page lives), so a stale entry at worst costs that retry.
//!
//! Limit: a single fact must fit in one item (400 KB); the core keeps observations far smaller.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use snapwatch_aws_inventory::classify::sdk_error_class;
use snapwatch_core::ports::{Claim, ResourceFacts, StateStore, StoreError, StoredFact};
use snapwatch_http::{Backoff, Class};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod hubs;
use hubs::Hubs;

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
/// A page's estimated size in bytes, raised by every write to it (see the module docs).
const PAGE_BYTES: &str = "bytes";
/// On the first page of a hub: how many pages the resource has (absent: one).
const PAGE_COUNT: &str = "pages";
/// On a later page: the digest of the fact keys on the pages before it (see [`hubs`]).
const PAGE_BASE: &str = "base";
/// A page takes writes while its estimated size is below this; the first write past it makes the
/// page final. With [`CHUNK_BYTES`] per write a page stays near 64 KB, so an update of a hub's
/// page costs at most about 64 write units and an item never nears the 400 KB limit.
const PAGE_BUDGET: u64 = 48 * 1024;
/// The estimated size one `UpdateItem` may add (a single larger fact goes alone).
const CHUNK_BYTES: u64 = 16 * 1024;
/// A page's TTL is its newest fact's expiry rounded up to this grain: writes of facts expiring
/// within one grain leave the same TTL, so a late one (another instance's, unknown to this one)
/// passes the "TTL only moves forward" condition in one request. Facts keep their exact expiry.
const PAGE_TTL_GRAIN_SECS: i64 = 3_600;
/// How much later than the facts the first page of a hub expires: its TTL must cover every page
/// (it holds the page count), and the slack spares raising it at every write.
const HUB_TTL_SLACK_SECS: i64 = 86_400;
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
    /// What this process knows of hubs' pages (see the module docs).
    hubs: Arc<Mutex<Hubs>>,
    /// The server has returned an item with a failed conditional write: it implements
    /// `ReturnValuesOnConditionCheckFailure` (DynamoDB, moto; not dynalite), so a failure without
    /// one means there is no item.
    failures_return_items: Arc<AtomicBool>,
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
            hubs: Arc::default(),
            failures_return_items: Arc::default(),
        }
    }

    /// The item a failed conditional write returned, noting that the server returns them.
    fn failed_item(
        &self,
        err: &SdkError<UpdateItemError, HttpResponse>,
    ) -> Option<HashMap<String, AttributeValue>> {
        let item = failed_write_item(err);
        if item.is_some() {
            self.failures_return_items.store(true, Ordering::Relaxed);
        }
        item
    }

    /// Reads the hub memory; `None` if its lock is poisoned (then the table answers).
    fn with_hubs<T>(&self, read: impl FnOnce(&Hubs) -> T) -> Option<T> {
        self.hubs.lock().ok().map(|hubs| read(&hubs))
    }

    /// Adds to the hub memory (nothing if its lock is poisoned: it is only a shortcut).
    fn learn_hub(&self, learn: impl FnOnce(&mut Hubs)) {
        if let Ok(mut hubs) = self.hubs.lock() {
            learn(&mut hubs);
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

    /// Adds facts; returns the number of new facts and, per resource written in a single update
    /// to its only page, the resource's facts right after the write.
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
            let chunks = update_chunks(&facts);
            let single_update = chunks.len() == 1;
            for chunk in chunks {
                let (new, state) = self.write_chunk(resource, chunk).await?;
                added += new;
                if let (true, Some(state)) = (single_update, state) {
                    after_write.insert(resource.to_string(), state);
                }
            }
        }
        Ok((added, after_write))
    }

    /// Writes facts of one resource to its last page, moving on past full pages. Returns the
    /// number of new facts and, where this process can tell, the resource's facts right after
    /// the write: always for a resource of one page; for a hub, when its full pages are held
    /// (see [`hubs`]) and the page written is built on them.
    async fn write_chunk(
        &self,
        resource: &str,
        chunk: &[&StoredFact],
    ) -> Result<(usize, Option<Vec<StoredFact>>), StoreError> {
        let newest = chunk.iter().map(|f| f.expires_at).max().unwrap_or(0);
        let (mut page, mut counted) = self
            .with_hubs(|h| h.write_target(resource))
            .unwrap_or((0, 0));
        // Keys on a full page are stored for good: they are not new and need no write.
        let mut pending: Vec<&StoredFact> = self
            .with_hubs(|h| {
                chunk
                    .iter()
                    .filter(|f| !h.is_final(resource, &f.key))
                    .copied()
                    .collect()
            })
            .unwrap_or_else(|| chunk.to_vec());
        // Whether this call reached `page` by finding the later page before it full: then
        // another writer most likely moved on first (see below).
        let mut found_full = false;
        loop {
            if pending.is_empty() {
                return Ok((0, None));
            }
            let mut base = None;
            // Readers find pages through the first page's count: it is raised before anything
            // goes to a new page. A page that exists was therefore counted by its creator, so a
            // writer that found the page before it full first writes only if the page exists,
            // and raises the count (then creates the page) only if it does not: the writers that
            // come after the first spare a raise that would fail.
            let mut must_exist = false;
            if page > 0 {
                if counted < page + 1 {
                    if found_full {
                        must_exist = true;
                    } else {
                        self.raise_page_count(resource, page + 1, newest).await?;
                        counted = page + 1;
                        self.learn_hub(|h| h.learn_counted(resource, counted));
                    }
                }
                self.cover_pages_ttl(resource, page + 1, newest).await?;
                base = self.with_hubs(|h| h.base(resource, page)).flatten();
            }
            let size: u64 = pending.iter().map(|f| fact_bytes(f)).sum();
            let page_item = match self
                .update_page(resource, page, &pending, base.as_deref(), must_exist)
                .await?
            {
                PageWrite::Missing => {
                    found_full = false;
                    continue;
                }
                PageWrite::Written(old) => {
                    let old_facts = decode_facts(resource, &old)?;
                    let old_keys: HashSet<&str> =
                        old_facts.iter().map(|f| f.key.as_str()).collect();
                    let new: Vec<StoredFact> = pending
                        .iter()
                        .filter(|f| !old_keys.contains(f.key.as_str()))
                        .map(|f| (*f).clone())
                        .collect();
                    let count = new.len();
                    if must_exist {
                        // The page existed, so its creator counted it.
                        self.learn_hub(|h| h.learn_counted(resource, page + 1));
                    }
                    let mut after = old_facts;
                    after.extend(new);
                    if page_bytes(&old) + size >= PAGE_BUDGET {
                        // This write filled the page: it is final, and known whole. The next
                        // write goes to the next page without failing on this one first.
                        let keys = after.iter().map(|f| f.key.clone()).collect();
                        let whole = after.clone();
                        self.learn_hub(|h| {
                            h.learn_final(resource, page, keys, Some(whole));
                            h.learn_last(resource, page + 1);
                        });
                    }
                    let state = if page == 0 {
                        Some(after)
                    } else {
                        self.hub_after_write(resource, page, &old, base.as_deref(), after)
                    };
                    return Ok((count, state));
                }
                PageWrite::Full(page_item) => page_item,
            };
            // The page is full, hence final: learn its keys (and, from the first page, how many
            // pages there are, all but the last of them full too), then go on to the next.
            let item = page_item;
            // The first page's count tells whether the next page is counted; a later page's
            // does not (see `must_exist` above).
            found_full = page > 0;
            if must_exist {
                counted = counted.max(page + 1);
            }
            let (keys, facts, count) = (
                fact_keys(&item),
                Some(decode_facts(resource, &item)?),
                page_count(&item),
            );
            pending.retain(|f| !keys.contains(&f.key));
            self.learn_hub(|h| h.learn_final(resource, page, keys, facts));
            let mut next = page + 1;
            if page == 0 {
                counted = counted.max(count);
                self.learn_hub(|h| h.learn_counted(resource, count));
                if count > 2 {
                    for (full, keys) in self.read_keys_of_pages(resource, 1..count - 1).await? {
                        pending.retain(|f| !keys.contains(&f.key));
                        self.learn_hub(|h| h.learn_final(resource, full, keys, None));
                    }
                    next = count - 1;
                }
            }
            self.learn_hub(|h| h.learn_last(resource, next));
            page = next;
        }
    }

    /// A hub's facts right after a write to its page `page` (`old`: the page before it,
    /// `after`: the page after it), as a consistent read then would find them: the full pages
    /// before it, held by this process, and this page; nothing after it, since a page gets a
    /// successor only once full. Only when the page's base shows it was built on the pages
    /// held (or this write made it); otherwise the table is read.
    fn hub_after_write(
        &self,
        resource: &str,
        page: u32,
        old: &HashMap<String, AttributeValue>,
        base: Option<&str>,
        after: Vec<StoredFact>,
    ) -> Option<Vec<StoredFact>> {
        let base = base?;
        let built_on_held = match old.get(PAGE_BASE).and_then(|v| v.as_s().ok()) {
            Some(stored) => stored == base,
            None => old.is_empty(),
        };
        if !built_on_held {
            return None;
        }
        let mut facts = self.with_hubs(|h| h.facts_before(resource, page))??;
        let held: HashSet<String> = facts.iter().map(|f| f.key.clone()).collect();
        facts.extend(after.into_iter().filter(|f| !held.contains(&f.key)));
        Some(facts)
    }

    /// Records on the first page that the resource has at least `pages` pages, before anything
    /// is written to the new one, so readers always find every page that holds facts.
    async fn raise_page_count(
        &self,
        resource: &str,
        pages: u32,
        newest: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(page_key(resource, 0)))
            .update_expression("SET #pages = :pages, #exp = if_not_exists(#exp, :exp)")
            .condition_expression("attribute_not_exists(#pages) OR #pages < :pages")
            .expression_attribute_names("#pages", PAGE_COUNT)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":pages", AttributeValue::N(pages.to_string()))
            .expression_attribute_values(
                ":exp",
                AttributeValue::N((newest + HUB_TTL_SLACK_SECS).to_string()),
            )
            .send()
            .await;
        match result {
            // A concurrent writer counted the page first.
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(classify("UpdateItem (page count)", err)),
        }
    }

    /// Keeps the first page alive at least as long as the facts about to go to a later page: its
    /// TTL deleting it would hide the other pages. Costs a request only when the process does not
    /// know the first page's TTL to be late enough; it is raised with a day's slack. Should the
    /// first page be gone (all facts expired), this recreates it with the page count.
    async fn cover_pages_ttl(
        &self,
        resource: &str,
        pages: u32,
        newest: i64,
    ) -> Result<(), StoreError> {
        let known_ttl = self
            .item_ttl
            .lock()
            .ok()
            .and_then(|m| m.get(resource).copied());
        if known_ttl.is_some_and(|ttl| ttl >= newest) {
            return Ok(());
        }
        let ttl = newest + HUB_TTL_SLACK_SECS;
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(page_key(resource, 0)))
            .update_expression("SET #exp = :exp, #pages = if_not_exists(#pages, :pages)")
            .condition_expression("attribute_not_exists(#exp) OR #exp < :exp")
            .expression_attribute_names("#pages", PAGE_COUNT)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":pages", AttributeValue::N(pages.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(ttl.to_string()))
            .send()
            .await;
        match result {
            // Either way the first page now lives until `ttl` or later.
            Ok(_) => {}
            Err(err) if is_condition_failure(&err) => {}
            Err(err) => return Err(classify("UpdateItem (first page TTL)", err)),
        }
        remember_ttl(&self.item_ttl, resource, ttl);
        Ok(())
    }

    /// One (full) page, read where the failed write did not return it: what DynamoDB's
    /// failure would have carried (its facts, keys, count on the first page, TTL).
    async fn read_full_page(
        &self,
        resource: &str,
        page: u32,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(page_key(resource, page)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem (full page)", e))?;
        let item = out.item.unwrap_or_default();
        // A true lower bound of the page's TTL, as the failed write would have returned it.
        if let Some(ttl) = item_expiry(&item) {
            remember_ttl(&self.item_ttl, &page_ttl_key(resource, page), ttl);
        }
        Ok(item)
    }

    /// The fact keys of each of the given (full) pages of a resource, in one batch read; a page
    /// not found (expired and deleted) holds none.
    async fn read_keys_of_pages(
        &self,
        resource: &str,
        pages: std::ops::Range<u32>,
    ) -> Result<BTreeMap<u32, HashSet<String>>, StoreError> {
        let keys = pages.clone().map(|p| page_key(resource, p)).collect();
        let mut out: BTreeMap<u32, HashSet<String>> = pages.map(|p| (p, HashSet::new())).collect();
        for item in self.batch_get(keys, &[SK, FACT_KEYS]).await? {
            let Some(sk) = item.get(SK).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            out.insert(page_of_sk(sk)?, fact_keys(&item));
        }
        Ok(out)
    }

    /// One atomic update of a resource's page, guarded by the page's byte budget: the page as it
    /// was before, or that it is full. A later page is given `base` unless it has one. With
    /// `must_exist` the page is not created: [`PageWrite::Missing`] if there is none.
    async fn update_page(
        &self,
        resource: &str,
        page: u32,
        facts: &[&StoredFact],
        base: Option<&str>,
        must_exist: bool,
    ) -> Result<PageWrite, StoreError> {
        let newest = page_ttl(facts.iter().map(|f| f.expires_at).max().unwrap_or(0));
        let size: u64 = facts.iter().map(|f| fact_bytes(f)).sum();
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
        names.insert("#pk".into(), PK.into());
        names.insert("#bytes".into(), PAGE_BYTES.into());
        values.insert(
            ":keys".into(),
            AttributeValue::Ss(facts.iter().map(|f| f.key.clone()).collect()),
        );
        values.insert(":exp".into(), AttributeValue::N(newest.to_string()));
        values.insert(":size".into(), AttributeValue::N(size.to_string()));
        values.insert(":budget".into(), AttributeValue::N(PAGE_BUDGET.to_string()));
        if let Some(base) = base {
            sets.push("#base = if_not_exists(#base, :base)".to_string());
            names.insert("#base".into(), PAGE_BASE.into());
            values.insert(":base".into(), AttributeValue::S(base.to_string()));
        }
        // A page takes writes while under budget. A page written before pages existed has no
        // size, fails the guard and stays as it is: no migration, its facts read as before.
        let not_full = if must_exist {
            "(attribute_exists(#pk) AND #bytes < :budget)"
        } else {
            "(attribute_not_exists(#pk) OR #bytes < :budget)"
        };
        let ttl_key = page_ttl_key(resource, page);

        // The page's TTL only moves forward (see the module docs): raise it under a condition,
        // or, for a write known to be late, keep it.
        let known_ttl = self
            .item_ttl
            .lock()
            .ok()
            .and_then(|m| m.get(&ttl_key).copied());
        if known_ttl.is_none_or(|ttl| ttl <= newest) {
            let extend_ttl = format!(
                "SET {}, #exp = :exp ADD #keys :keys, #bytes :size",
                sets.join(", ")
            );
            let first = self
                .client
                .update_item()
                .table_name(self.table.as_ref())
                .set_key(Some(page_key(resource, page)))
                .update_expression(extend_ttl)
                .condition_expression(format!(
                    "{not_full} AND (attribute_not_exists(#exp) OR #exp <= :exp)"
                ))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match first {
                Ok(out) => {
                    remember_ttl(&self.item_ttl, &ttl_key, newest);
                    return Ok(PageWrite::Written(out.attributes.unwrap_or_default()));
                }
                // Late, full, or (`must_exist`) missing. The page the failed write returns tells
                // which (its TTL, a true lower bound, also spares a full first page's TTL raise
                // in `cover_pages_ttl`). Where the server returns none (dynalite), a read stands
                // in for it on a later page, which is most likely full; on a first page, most
                // likely late, the keeping form below is tried first and the read follows only
                // if that fails too.
                Err(err) if is_condition_failure(&err) => {
                    let item = match self.failed_item(&err) {
                        Some(item) => {
                            if let Some(ttl) = item_expiry(&item) {
                                remember_ttl(&self.item_ttl, &ttl_key, ttl);
                            }
                            Some(item)
                        }
                        // A server known to return items returned none: there is no page.
                        None if self.failures_return_items.load(Ordering::Relaxed) => {
                            Some(HashMap::new())
                        }
                        None if page > 0 => Some(self.read_full_page(resource, page).await?),
                        None => None,
                    };
                    match item {
                        Some(item) if item.is_empty() && must_exist => {
                            return Ok(PageWrite::Missing);
                        }
                        Some(item) if !item.is_empty() && page_is_full(&item) => {
                            return Ok(PageWrite::Full(item));
                        }
                        _ => {}
                    }
                }
                Err(err) => return Err(classify_write(resource, err)),
            }
        }
        // Late: the page's TTL is already later. `if_not_exists` still gives a TTL to a page
        // that expired and was deleted in the meantime.
        let keep_ttl = format!(
            "SET {}, #exp = if_not_exists(#exp, :exp) ADD #keys :keys, #bytes :size",
            sets.join(", ")
        );
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(page_key(resource, page)))
            .update_expression(keep_ttl)
            .condition_expression(not_full)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            // Full, or (`must_exist`) missing.
            Err(err) if is_condition_failure(&err) => {
                let item = match self.failed_item(&err) {
                    Some(item) => {
                        if let Some(ttl) = item_expiry(&item) {
                            remember_ttl(&self.item_ttl, &ttl_key, ttl);
                        }
                        item
                    }
                    None if self.failures_return_items.load(Ordering::Relaxed) => HashMap::new(),
                    None => self.read_full_page(resource, page).await?,
                };
                if !item.is_empty() {
                    return Ok(PageWrite::Full(item));
                }
                if must_exist {
                    return Ok(PageWrite::Missing);
                }
                // Full when written, gone when read: it expired in between. Retried, the write
                // finds the page as it is then.
                return Err(StoreError::unavailable(format!(
                    "page {page} of {resource} changed while being written"
                )));
            }
            Err(err) => return Err(classify_write(resource, err)),
        };
        // What the page holds now, which beats an older memory of it.
        let ttl_after = item_expiry(&old).unwrap_or(newest);
        remember(&self.item_ttl, &ttl_key, ttl_after);
        Ok(PageWrite::Written(old))
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
            .filter_map(|(resource, facts)| live_facts(resource, facts, now))
            .collect())
    }

    /// Consistent batch read of resources: every fact of each resource found, expired ones
    /// included, in as few `BatchGetItem`s as what is known allows. A hub whose full pages this
    /// process holds is read by its last page alone, which must be built on those pages (its
    /// base) and not full (a full page may have a successor: then that one is read next, once);
    /// any other resource by its first page and the pages it had lately. Another round follows
    /// only for pages a first page's count names that were not read (a hub seen for the first
    /// time, or grown), or for a held hub that was not as held. What a read shows of a hub's
    /// full pages is learned for the next read and write.
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
        let mut held: Vec<(&str, u32)> = Vec::new();
        let mut general: Vec<&str> = Vec::new();
        let mut ask: Vec<(&str, u32)> = Vec::with_capacity(unique.len());
        for r in unique {
            match self.with_hubs(|h| h.held_last(r)).flatten() {
                Some(last) => {
                    held.push((r, last));
                    ask.push((r, last));
                }
                None => {
                    general.push(r);
                    let known = self.with_hubs(|h| h.pages_to_read(r)).unwrap_or(1);
                    ask.extend((0..known).map(|p| (r, p)));
                }
            }
        }
        let mut pages: HashMap<(String, u32), HashMap<String, AttributeValue>> = HashMap::new();
        let mut asked: HashSet<(&str, u32)> = HashSet::new();
        let mut out: BTreeMap<String, Vec<StoredFact>> = BTreeMap::new();
        let mut probes = 0;
        while !ask.is_empty() {
            let keys = ask
                .drain(..)
                .filter(|page| asked.insert(*page))
                .map(|(r, p)| page_key(r, p))
                .collect::<Vec<_>>();
            for item in self.batch_get(keys, &[]).await? {
                pages.insert((resource_of(&item)?, page_of(&item)?), item);
            }
            probes += 1;
            let mut still_held = Vec::new();
            for (r, last) in held.drain(..) {
                let page = pages.get(&(r.to_string(), last));
                match page.map(|page| self.held_hub(r, last, page)).transpose()? {
                    Some(HeldRead::Whole(facts)) => {
                        out.insert(r.to_string(), facts);
                    }
                    // Filled since: learned as final; its successor, if any, is read once.
                    Some(HeldRead::Grown) if probes < 2 => {
                        still_held.push((r, last + 1));
                        ask.push((r, last + 1));
                    }
                    _ => {
                        general.push(r);
                        let known = self.with_hubs(|h| h.pages_to_read(r)).unwrap_or(1);
                        ask.extend((0..known.max(last + 1)).map(|p| (r, p)));
                    }
                }
            }
            held = still_held;
            for r in &general {
                if let Some(first) = pages.get(&(r.to_string(), 0)) {
                    ask.extend((1..page_count(first)).map(|p| (*r, p)));
                }
            }
            ask.retain(|page| !asked.contains(page));
        }

        for r in general {
            let Some(first) = pages.get(&(r.to_string(), 0)) else {
                // No first page: the resource has no facts (a later page without its first
                // expired with it).
                continue;
            };
            let count = page_count(first);
            let mut facts: Vec<StoredFact> = Vec::new();
            let mut known: HashSet<String> = HashSet::new();
            for index in 0..count {
                let page = pages.get(&(r.to_string(), index));
                let page_facts = match page {
                    Some(page) => decode_facts(r, page)?,
                    None => Vec::new(),
                };
                if index + 1 < count {
                    // A page before the last is full: learn it for the next read and write.
                    let keys = page.map(fact_keys).unwrap_or_default();
                    let whole = page_facts.clone();
                    self.learn_hub(|h| h.learn_final(r, index, keys, Some(whole)));
                }
                // A key lives on one page; should it be on two, the earlier page's fact wins,
                // as the first write of a key does.
                for fact in page_facts {
                    if known.insert(fact.key.clone()) {
                        facts.push(fact);
                    }
                }
            }
            if count > 1 {
                self.learn_hub(|h| {
                    h.learn_counted(r, count);
                    h.learn_last(r, count - 1);
                });
            }
            out.insert(r.to_string(), facts);
        }
        Ok(out.into_iter().collect())
    }

    /// What the last page of a held hub, as read, tells: if it is built on the full pages held
    /// (its base) and not full, no page follows it and the hub is the held pages and this one;
    /// if it is built on them but full, it is learned as final and the hub has grown by it.
    fn held_hub(
        &self,
        resource: &str,
        last: u32,
        page: &HashMap<String, AttributeValue>,
    ) -> Result<HeldRead, StoreError> {
        let stored = page.get(PAGE_BASE).and_then(|v| v.as_s().ok());
        let held = self
            .with_hubs(|h| {
                let base = h.base(resource, last)?;
                if stored != Some(&base) {
                    return None;
                }
                h.facts_before(resource, last)
            })
            .flatten();
        let Some(mut facts) = held else {
            return Ok(HeldRead::NotAsHeld);
        };
        let page_facts = decode_facts(resource, page)?;
        if page_is_full(page) {
            let keys = fact_keys(page);
            self.learn_hub(|h| {
                h.learn_final(resource, last, keys, Some(page_facts));
                h.learn_last(resource, last + 1);
            });
            return Ok(HeldRead::Grown);
        }
        let keys: HashSet<String> = facts.iter().map(|f| f.key.clone()).collect();
        facts.extend(page_facts.into_iter().filter(|f| !keys.contains(&f.key)));
        Ok(HeldRead::Whole(facts))
    }

    /// Consistent `BatchGetItem` of `keys`, paged by 100 keys and over `UnprocessedKeys`,
    /// optionally projected to one attribute.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        projection: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true);
            if !projection.is_empty() {
                let names: Vec<String> = (0..projection.len()).map(|i| format!("#p{i}")).collect();
                request = request.projection_expression(names.join(", "));
                for (name, attribute) in names.iter().zip(projection) {
                    request = request.expression_attribute_names(name, *attribute);
                }
            }
            let mut pending = Some(
                request
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
                out.extend(
                    response
                        .responses
                        .and_then(|mut r| r.remove(self.table.as_ref()))
                        .unwrap_or_default(),
                );
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
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
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
                let item = match failed_write_item(&err) {
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
            .filter_map(|(resource, facts)| live_facts(resource, facts, now))
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

/// The key of a resource's page: `sk = "facts"` for the first, `"facts#<n>"` after it.
fn page_key(resource: &str, page: u32) -> HashMap<String, AttributeValue> {
    let sk = if page == 0 {
        FACTS_SK.to_string()
    } else {
        format!("{FACTS_SK}#{page}")
    };
    HashMap::from([
        (
            PK.to_string(),
            AttributeValue::S(format!("{RESOURCE_PREFIX}{resource}")),
        ),
        (SK.to_string(), AttributeValue::S(sk)),
    ])
}

/// The TTL memory's key for a page (the first page's is the resource id).
fn page_ttl_key(resource: &str, page: u32) -> String {
    if page == 0 {
        resource.to_string()
    } else {
        format!("{resource}\u{0}{page}")
    }
}

/// The page index of a fact item, from its sort key.
fn page_of(item: &HashMap<String, AttributeValue>) -> Result<u32, StoreError> {
    match item.get(SK).and_then(|v| v.as_s().ok()) {
        Some(sk) => page_of_sk(sk),
        None => Err(StoreError::permanent("a fact item has no sort key")),
    }
}

/// The page index a fact item's sort key names.
fn page_of_sk(sk: &str) -> Result<u32, StoreError> {
    if sk == FACTS_SK {
        return Ok(0);
    }
    sk.strip_prefix(FACTS_SK)
        .and_then(|rest| rest.strip_prefix('#'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::permanent(format!("a fact item has sort key {sk:?}")))
}

/// A page's estimated size (0 for no page).
fn page_bytes(item: &HashMap<String, AttributeValue>) -> u64 {
    item.get(PAGE_BYTES)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

/// The outcome of a guarded write to a page.
enum PageWrite {
    /// Written; the page as it was before.
    Written(HashMap<String, AttributeValue>),
    /// The page is full (final) and was not changed; the page as the failed write found it
    /// (returned with the failure, or read where the server does not return it).
    Full(HashMap<String, AttributeValue>),
    /// The write required an existing page and there is none.
    Missing,
}

/// What a held hub's last page, as read, tells (see `DynamoStore::held_hub`).
enum HeldRead {
    /// The hub's facts: the held pages and this one.
    Whole(Vec<StoredFact>),
    /// The page filled since: learned as final; its successor tells the rest.
    Grown,
    /// Not built on the pages held: read the hub from the table.
    NotAsHeld,
}

/// The TTL a page gets for facts whose newest expires at `newest`: rounded up to the grain.
fn page_ttl(newest: i64) -> i64 {
    newest.div_euclid(PAGE_TTL_GRAIN_SECS) * PAGE_TTL_GRAIN_SECS
        + if newest.rem_euclid(PAGE_TTL_GRAIN_SECS) == 0 {
            0
        } else {
            PAGE_TTL_GRAIN_SECS
        }
}

/// The item a failed conditional update returned (`ReturnValuesOnConditionCheckFailure`).
fn failed_write_item(
    err: &SdkError<UpdateItemError, HttpResponse>,
) -> Option<HashMap<String, AttributeValue>> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
        _ => None,
    }
}

/// Whether a page fails the byte budget guard: over budget, or written before pages existed
/// (no size).
fn page_is_full(item: &HashMap<String, AttributeValue>) -> bool {
    item.get(PAGE_BYTES)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .is_none_or(|bytes| bytes >= PAGE_BUDGET)
}

/// An item's TTL attribute.
fn item_expiry(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    item.get(EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
}

/// How many pages a first page says its resource has (at least one).
fn page_count(item: &HashMap<String, AttributeValue>) -> u32 {
    item.get(PAGE_COUNT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

fn fact_keys(item: &HashMap<String, AttributeValue>) -> HashSet<String> {
    item.get(FACT_KEYS)
        .and_then(|v| v.as_ss().ok())
        .map(|keys| keys.iter().cloned().collect())
        .unwrap_or_default()
}

/// A fact's share of its page's size, as counted against [`PAGE_BUDGET`]: its attribute name,
/// its key in `fact_keys`, its body and the map around them.
fn fact_bytes(fact: &StoredFact) -> u64 {
    (FACT_ATTR_PREFIX.len() + 2 * fact.key.len() + fact.body.len() + 32) as u64
}

/// Splits one resource's facts into updates of at most [`FACTS_PER_UPDATE`] facts and
/// [`CHUNK_BYTES`] (a larger single fact goes alone).
fn update_chunks<'a, 'f>(facts: &'a [&'f StoredFact]) -> Vec<&'a [&'f StoredFact]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, fact) in facts.iter().enumerate() {
        let size = fact_bytes(fact);
        if i > start && (i - start >= FACTS_PER_UPDATE || bytes + size > CHUNK_BYTES) {
            chunks.push(&facts[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < facts.len() {
        chunks.push(&facts[start..]);
    }
    chunks
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
            format!("a write of facts of {resource:?} exceeds DynamoDB's 400 KB item size"),
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

/// The facts of `resource` still alive at `now` (unix seconds), or `None` when none are: DynamoDB
/// deletes expired items lazily, so readers drop expired facts themselves.
fn live_facts(resource: String, facts: Vec<StoredFact>, now: i64) -> Option<ResourceFacts> {
    let facts: Vec<StoredFact> = facts.into_iter().filter(|f| f.expires_at > now).collect();
    (!facts.is_empty()).then_some(ResourceFacts { resource, facts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact_of(key: &str, body_len: usize) -> StoredFact {
        StoredFact {
            key: key.to_string(),
            expires_at: 1,
            body: "x".repeat(body_len),
        }
    }

    #[test]
    fn updates_stay_within_the_fact_and_byte_limits_and_a_big_fact_goes_alone() {
        let facts: Vec<StoredFact> = (0..100)
            .map(|i| fact_of(&format!("k{i}"), if i == 50 { 60_000 } else { 600 }))
            .collect();
        let refs: Vec<&StoredFact> = facts.iter().collect();
        let chunks = update_chunks(&refs);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 100);
        for chunk in &chunks {
            let bytes: u64 = chunk.iter().map(|f| fact_bytes(f)).sum();
            assert!(chunk.len() <= FACTS_PER_UPDATE);
            assert!(bytes <= CHUNK_BYTES || chunk.len() == 1, "{bytes} bytes");
        }
        assert!(chunks.iter().any(|c| c.len() == 1 && c[0].key == "k50"));
        assert!(update_chunks(&[]).is_empty());
    }

    #[test]
    fn page_keys_and_sort_keys_round_trip() {
        for page in [0, 1, 17] {
            let key = page_key("ami-1", page);
            assert_eq!(page_of(&key).unwrap(), page);
            assert_eq!(resource_of(&key).unwrap(), "ami-1");
        }
        let odd = HashMap::from([(SK.to_string(), AttributeValue::S("facts#x".into()))]);
        assert!(page_of(&odd).is_err());
        assert_eq!(page_count(&HashMap::new()), 1);
    }
}

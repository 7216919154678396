//! The organization load test (`make load`, not part of `make test`): replays a generated day of
//! an organization through the real event function ([`App`] over [`DynamoStore`]) with N
//! concurrent invocations against dynalite, restarts dynalite once mid-run, and checks that no
//! fact was lost and that every planted attack chain alerted exactly once.
//!
//! `org_load <mix.jsonl>`: the mix comes from `gen_cloudtrail --org` (its planted chains in
//! `<mix.jsonl>.chains`). Only the records the EventBridge rule matches (the core's
//! `CONSUMED_EVENTS`) are invoked, as EventBridge would. Settings (environment):
//! - `LOAD_CONCURRENCY` (default `8,32`): concurrent invocations, one run (and table) per value;
//! - `LOAD_DYNALITE`: dynalite's `cli.js`; the driver starts it with `--path LOAD_DIR/dynalite`
//!   (persistent, so a restart keeps the table) and restarts it once per run;
//! - `LOAD_DIR` (default `target/load`): dynalite's data and log;
//! - `LOAD_RESTART` (default `on`): `off` skips the mid-run restart;
//! - `LOAD_MOTO`: moto's `moto_server`; when set, the runs go to moto instead of dynalite, without
//!   the restart (moto keeps its tables in memory only). moto, like DynamoDB and unlike dynalite,
//!   returns the item with a failed conditional write (`ReturnValuesOnConditionCheckFailure`), so
//!   its request counts are the ones DynamoDB would see; dynalite's include a read in its stead.
//!
//! A failed invocation is retried with exponential backoff and jitter until it succeeds: a
//! retryable error (the store or a sink unavailable) up to [`MAX_ATTEMPTS`] times, a permanent one
//! [`PERMANENT_ATTEMPTS`] times, as the deployed function's asynchronous invocation config
//! (`maximum_retry_attempts = 2`) does before the event goes to the on-failure destination.
//! Exits 1 if a check fails.

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::KeyType;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{DateTime, Duration as Days, Utc};
use serde_json::Value;
use snapwatch_aws::clients::RequestCounter;
use snapwatch_aws::dead_letter::{DeadLetter, DeadLetterError, Rejected};
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::App;
use snapwatch_core::memory::MemorySink;
use snapwatch_core::parse::{aws, Parsed};
use snapwatch_core::ports::{FixedClock, StateStore};
use snapwatch_core::{Config, Rule};
use snapwatch_http::Backoff;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Attempts per event before the run gives up on it (EventBridge's own limit is 185 or 24 h).
const MAX_ATTEMPTS: u32 = 40;
/// Attempts of an event failing permanently: the first and the function's two retries.
const PERMANENT_ATTEMPTS: u32 = 3;
/// EventBridge's retry backoff, compressed from minutes to what a load test can wait for.
const EVENTBRIDGE_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5));
/// How long dynalite stays down during the restart: invocations in flight fail and retry.
const DOWNTIME: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let passed = runtime.block_on(run())?;
    if !passed {
        eprintln!("org_load: a check FAILED (see above)");
        std::process::exit(1);
    }
    Ok(())
}

/// The day's events as EventBridge would deliver them, and what the checks compare against.
struct Day {
    records: u64,
    /// EventBridge envelopes of the records the rule matches.
    events: Vec<String>,
    /// Every fact the parser makes of them: resource id → fact keys.
    facts: BTreeMap<String, BTreeSet<String>>,
    /// Root snapshot ids of the planted attack chains.
    planted: BTreeSet<String>,
}

async fn run() -> anyhow::Result<bool> {
    let input = std::env::args()
        .nth(1)
        .context("usage: org_load <mix.jsonl> (from gen_cloudtrail --org)")?;
    let concurrency: Vec<usize> = std::env::var("LOAD_CONCURRENCY")
        .unwrap_or_else(|_| "8,32".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .context("LOAD_CONCURRENCY: numbers, e.g. 8,32")
        })
        .collect::<anyhow::Result<_>>()?;
    let moto = std::env::var("LOAD_MOTO").ok().filter(|m| !m.is_empty());
    let program = match &moto {
        Some(moto) => ServerProgram::Moto(moto.clone()),
        None => ServerProgram::Dynalite(
            std::env::var("LOAD_DYNALITE")
                .context("LOAD_DYNALITE: the path of dynalite's cli.js (or LOAD_MOTO)")?,
        ),
    };
    let dir = std::path::PathBuf::from(
        std::env::var("LOAD_DIR").unwrap_or_else(|_| "target/load".into()),
    );
    let restart = moto.is_none() && std::env::var("LOAD_RESTART").map_or(true, |v| v != "off");

    let day = read_day(&input)?;
    let fact_count: usize = day.facts.values().map(BTreeSet::len).sum();
    println!(
        "org_load: {} records, {} matched by the EventBridge rule ({:.2} %), {} facts under {} resources, {} planted chains",
        day.records,
        day.events.len(),
        day.events.len() as f64 * 100.0 / day.records.max(1) as f64,
        fact_count,
        day.facts.len(),
        day.planted.len()
    );

    println!("org_load: server {}", program.name());
    let server = Dynalite::start(program, &dir.join("dynalite"))?;
    let server = Arc::new(Mutex::new(server));
    let mut passed = true;
    for &c in &concurrency {
        let run = replay(&day, c, restart, &server).await;
        match run {
            Ok(ok) => passed &= ok,
            Err(e) => {
                println!("== {c} concurrent: FAILED to run: {e:#}");
                passed = false;
            }
        }
    }
    if let Ok(mut s) = server.lock() {
        s.stop();
    }
    Ok(passed)
}

fn read_day(input: &str) -> anyhow::Result<Day> {
    let rule: HashSet<(&str, &str)> = aws::CONSUMED_EVENTS.iter().copied().collect();
    // Line by line: the day is gigabytes at the default scale, its consumed share megabytes.
    let file = std::fs::File::open(input).with_context(|| format!("reading {input}"))?;
    let chains = format!("{input}.chains");
    let planted = std::fs::read_to_string(&chains)
        .with_context(|| format!("reading {chains} (written by gen_cloudtrail --org)"))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut day = Day {
        records: 0,
        events: Vec::new(),
        facts: BTreeMap::new(),
        planted,
    };
    for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
        let line = line.with_context(|| format!("reading {input}"))?;
        if line.trim().is_empty() {
            continue;
        }
        day.records += 1;
        let record: Value = serde_json::from_str(&line)
            .with_context(|| format!("record {} is not JSON", day.records))?;
        let source = record["eventSource"].as_str().unwrap_or_default();
        let name = record["eventName"].as_str().unwrap_or_default();
        if !rule.contains(&(source, name)) {
            continue;
        }
        let raw = envelope(&record);
        if let Ok(Parsed::Event(event)) = aws::parse_eventbridge(&raw) {
            for (index, fact) in event.facts.iter().enumerate() {
                for resource in fact.linked_resources() {
                    day.facts
                        .entry(resource.id.clone())
                        .or_default()
                        .insert(format!("{}#{index}", event.meta.id));
                }
            }
        }
        day.events.push(raw);
    }
    Ok(day)
}

/// The EventBridge envelope of a CloudTrail record (`aws.<service>`, "AWS API Call via CloudTrail").
fn envelope(record: &Value) -> String {
    let service = record["eventSource"]
        .as_str()
        .and_then(|s| s.strip_suffix(".amazonaws.com"))
        .unwrap_or("ec2");
    serde_json::json!({
        "version": "0",
        "id": format!("eb-{}", record["eventID"].as_str().unwrap_or("none")),
        "detail-type": "AWS API Call via CloudTrail",
        "source": format!("aws.{service}"),
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    })
    .to_string()
}

/// One run at `concurrency` on a fresh table; prints its figures and checks, returns whether the
/// checks passed.
async fn replay(
    day: &Day,
    concurrency: usize,
    restart: bool,
    server: &Arc<Mutex<Dynalite>>,
) -> anyhow::Result<bool> {
    let endpoint = server
        .lock()
        .map_err(|_| anyhow::anyhow!("dynalite handle poisoned"))?
        .endpoint();
    let sdk = local_sdk(&endpoint).await;
    let counter = RequestCounter::new();
    let keys = KeyCounter::default();
    let meter = CapacityMeter::default();
    let purposes = WritePurposes::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .interceptor(keys.clone())
        .interceptor(meter.clone())
        .interceptor(purposes.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("snapwatch-load-{concurrency}-{}", std::process::id());
    let store = DynamoStore::new(client.clone(), table.clone());
    store.create_table().await.context("creating the table")?;
    // The partition key's name, so the hot-key count follows whatever layout the store uses.
    let described = client.describe_table().table_name(&table).send().await?;
    let partition_key = described
        .table()
        .and_then(|t| {
            t.key_schema()
                .iter()
                .find(|k| k.key_type() == &KeyType::Hash)
        })
        .map(|k| k.attribute_name().to_string())
        .context("the table has no partition key")?;
    keys.set_partition_key(&partition_key, &table);
    counter.reset();
    meter.reset();
    purposes.reset();

    // The clock stands just after the generated day, so every fact is inside the chain window.
    let now = last_event_time(day).unwrap_or_else(Utc::now) + Days::hours(1);
    let sink = MemorySink::named("sns");
    let dead_letter = CountingDeadLetter::default();
    // One App per concurrent invocation, as Lambda runs one invocation per instance at a time:
    // each has its own store memory (the write-returned state, the read-ahead, the page keys), so
    // the figures are those of N warm instances, not of one instance shared by all of them.
    let apps: Vec<_> = (0..concurrency)
        .map(|_| {
            Arc::new(App {
                store: DynamoStore::new(client.clone(), table.clone()),
                config: Config::default(),
                dead_letter: dead_letter.clone(),
                sns: Some(sink.clone()),
                slack: None::<MemorySink>,
                securityhub: None,
                responder: None,
                clock: Arc::new(FixedClock(now)),
            })
        })
        .collect();

    let events = Arc::new(day.events.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(RunStats::default()));
    let started = Instant::now();
    let restarter = restart.then(|| {
        let (server, done) = (server.clone(), done.clone());
        let half = day.events.len() / 2;
        tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < half {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let at = started.elapsed();
            let restarted = tokio::task::spawn_blocking(move || {
                server
                    .lock()
                    .map_err(|_| anyhow::anyhow!("dynalite handle poisoned"))?
                    .restart(DOWNTIME)
            })
            .await;
            match restarted {
                Ok(Ok(())) => Ok(at),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("restart task: {e}")),
            }
        })
    });
    let mut workers = Vec::new();
    for app in &apps {
        let (app, events, next, done, retries, stats) = (
            app.clone(),
            events.clone(),
            next.clone(),
            done.clone(),
            retries.clone(),
            stats.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(raw) = events.get(i) else { break };
                let first = Instant::now();
                let mut attempt = 0u32;
                let result = loop {
                    attempt += 1;
                    let t = Instant::now();
                    match app.handle(raw).await {
                        Ok(outcome) => break Ok((outcome.status, t.elapsed())),
                        Err(e) => {
                            if !e.is_retryable() {
                                if let Ok(mut s) = stats.lock() {
                                    let message: String = e.to_string().chars().take(300).collect();
                                    *s.permanent_errors.entry(message).or_insert(0) += 1;
                                }
                            }
                            let limit = if e.is_retryable() {
                                MAX_ATTEMPTS
                            } else {
                                PERMANENT_ATTEMPTS
                            };
                            if attempt >= limit {
                                break Err(e);
                            }
                            retries.fetch_add(1, Ordering::Relaxed);
                            if e.is_retryable() {
                                if let Ok(mut s) = stats.lock() {
                                    s.transient_retries += 1;
                                }
                            }
                            EVENTBRIDGE_BACKOFF.sleep(attempt).await;
                        }
                    }
                };
                if let Ok(mut s) = stats.lock() {
                    match result {
                        Ok((status, took)) => {
                            s.latencies.push(took);
                            s.end_to_end.push(first.elapsed());
                            *s.statuses.entry(format!("{status:?}")).or_insert(0) += 1;
                        }
                        Err(e) => s.given_up.push(format!("event {i}: {e}")),
                    }
                }
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished % (events.len() / 10).max(1) == 0 {
                    eprintln!(
                        "org_load: {concurrency} concurrent: {finished}/{} events, {:.0} s, {} retries",
                        events.len(),
                        started.elapsed().as_secs_f64(),
                        retries.load(Ordering::Relaxed)
                    );
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let wall = started.elapsed();
    let restarted_at = match restarter {
        Some(task) => Some(task.await??),
        None => None,
    };
    let requests = counter.by_operation();
    let total_requests: u64 = requests.values().sum();
    let (write_units, read_units) = meter.units();
    let hot = keys.top(5);

    let stats = std::mem::take(&mut *stats.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let n = day.events.len().max(1) as f64;
    let mut latencies = stats.latencies.clone();
    let mut end_to_end = stats.end_to_end.clone();
    println!("== {concurrency} concurrent invocations, table {table}");
    println!(
        "throughput: {:.0} events/s ({} events in {:.1} s; {:.0} organization records/s at the mix's match rate)",
        n / wall.as_secs_f64(),
        day.events.len(),
        wall.as_secs_f64(),
        day.records as f64 / wall.as_secs_f64()
    );
    println!(
        "latency per event (successful invocation): p50 {:.1} ms, p99 {:.1} ms; first attempt to success: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
        percentile(&mut end_to_end, 0.50),
        percentile(&mut end_to_end, 0.99)
    );
    let retried = retries.load(Ordering::Relaxed);
    let transient = stats.transient_retries;
    match restarted_at {
        Some(at) => println!(
            "dynalite restarted at {:.1} s ({} s down); retried invocations: {transient} after a transient error, {} after a permanent one",
            at.as_secs_f64(),
            DOWNTIME.as_secs(),
            retried - transient
        ),
        None => println!(
            "no restart; retried invocations: {transient} after a transient error, {} after a permanent one",
            retried - transient
        ),
    }
    println!("outcomes: {:?}", stats.statuses);
    println!(
        "DynamoDB: {:.2} requests per event ({total_requests} requests, every attempt counted: {requests:?}); {:.2} write and {:.2} read capacity units per event",
        total_requests as f64 / n,
        write_units / n,
        read_units / n
    );
    println!(
        "UpdateItem and BatchGetItem by purpose (succeeded / condition failed / other error):"
    );
    for (purpose, o) in purposes.counts() {
        println!(
            "  {purpose}: {} / {} / {} ({:.3} per event)",
            o.succeeded,
            o.condition_failed,
            o.other_error,
            (o.succeeded + o.condition_failed + o.other_error) as f64 / n
        );
    }
    println!("hot keys (partition key: requests naming it, a batch counting once per key):");
    for (key, count) in &hot {
        println!(
            "  {key}: {count} ({:.1} % of all requests)",
            *count as f64 * 100.0 / total_requests.max(1) as f64
        );
    }
    for (message, count) in &stats.permanent_errors {
        println!("permanent error ({count} attempts): {message}");
    }

    // The checks read the table after the run (their requests are not in the figures above).
    let mut passed = true;
    if !stats.given_up.is_empty() {
        passed = false;
        println!(
            "CHECK FAILED: {} events still failing after their last attempt (on-failure destination), first: {}",
            stats.given_up.len(),
            stats.given_up[0]
        );
    }
    let kept = dead_letter.count();
    if kept > 0 {
        passed = false;
        println!("CHECK FAILED: {kept} events dead-lettered (the generator writes none)");
    }
    let (expected, lost, lost_example) = lost_facts(&store, &day.facts, now).await?;
    if lost == 0 {
        println!(
            "check: zero lost facts ({expected} facts the generator produced are all in the table)"
        );
    } else {
        passed = false;
        println!(
            "CHECK FAILED: {lost} of {expected} facts lost, e.g. {}",
            lost_example.unwrap_or_default()
        );
    }
    passed &= check_alerts(&sink, &day.planted);
    Ok(passed)
}

fn last_event_time(day: &Day) -> Option<DateTime<Utc>> {
    day.events
        .iter()
        .filter_map(|raw| serde_json::from_str::<Value>(raw).ok())
        .filter_map(|v| v["time"].as_str().and_then(|t| t.parse().ok()))
        .max()
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
}

/// Facts the generator produced, how many are missing from the table, and one missing example.
async fn lost_facts(
    store: &DynamoStore,
    expected: &BTreeMap<String, BTreeSet<String>>,
    now: DateTime<Utc>,
) -> anyhow::Result<(usize, usize, Option<String>)> {
    let resources: Vec<String> = expected.keys().cloned().collect();
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    for chunk in resources.chunks(50) {
        let mut attempt = 0;
        let found = loop {
            attempt += 1;
            match store.load_facts(chunk, now).await {
                Ok(found) => break found,
                Err(e) if e.is_retryable() && attempt < 5 => {
                    EVENTBRIDGE_BACKOFF.sleep(attempt).await
                }
                Err(e) => return Err(e).context("reading the facts back"),
            }
        };
        for rf in found {
            stored
                .entry(rf.resource)
                .or_default()
                .extend(rf.facts.into_iter().map(|f| f.key));
        }
    }
    let (mut total, mut lost, mut example) = (0, 0, None);
    for (resource, keys) in expected {
        let have = stored.get(resource);
        for key in keys {
            total += 1;
            if !have.is_some_and(|h| h.contains(key)) {
                lost += 1;
                example.get_or_insert_with(|| format!("{key} under {resource}"));
            }
        }
    }
    Ok((total, lost, example))
}

/// Exactly one `chain.exposed-restore` alert per planted chain, no finding delivered twice, and
/// no alert about a snapshot that was not planted.
fn check_alerts(sink: &MemorySink, planted: &BTreeSet<String>) -> bool {
    let sent = sink.sent();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut chain_alerts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut extra = Vec::new();
    for f in &sent {
        *by_rule.entry(f.rule.to_string()).or_default() += 1;
        *ids.entry(f.id.as_str()).or_default() += 1;
        if !planted.contains(&f.snapshot) {
            extra.push(format!("{} on {}", f.rule, f.snapshot));
        }
        if f.rule == Rule::ChainExposedRestore {
            *chain_alerts.entry(f.snapshot.as_str()).or_default() += 1;
        }
    }
    println!("alerts: {} delivered, by rule {by_rule:?}", sent.len());
    let twice = ids.values().filter(|&&n| n > 1).count();
    let missing: Vec<&String> = planted
        .iter()
        .filter(|s| !chain_alerts.contains_key(s.as_str()))
        .collect();
    let repeated = chain_alerts.values().filter(|&&n| n > 1).count();
    let mut passed = true;
    if missing.is_empty() && repeated == 0 {
        println!(
            "check: exactly one chain.exposed-restore alert for each of the {} planted chains",
            planted.len()
        );
    } else {
        passed = false;
        println!(
            "CHECK FAILED: {} planted chains without their alert (e.g. {:?}), {repeated} alerted more than once",
            missing.len(),
            missing.first()
        );
    }
    if twice > 0 {
        passed = false;
        println!("CHECK FAILED: {twice} findings delivered more than once");
    }
    if extra.is_empty() {
        println!("check: no alert beyond the planted chains");
    } else {
        passed = false;
        println!(
            "CHECK FAILED: {} alerts about snapshots no chain was planted on, e.g. {}",
            extra.len(),
            extra[0]
        );
    }
    passed
}

#[derive(Default)]
struct RunStats {
    latencies: Vec<Duration>,
    end_to_end: Vec<Duration>,
    statuses: BTreeMap<String, u64>,
    /// Retries after a retryable error (the restart's downtime, throttling).
    transient_retries: u64,
    /// Permanent handler errors, by message (each attempt counted).
    permanent_errors: BTreeMap<String, u64>,
    given_up: Vec<String>,
}

/// Counts rejected events (the generator writes only well-formed ones, so any is a failure).
#[derive(Clone, Default)]
struct CountingDeadLetter {
    kept: Arc<AtomicU64>,
}

impl CountingDeadLetter {
    fn count(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }
}

impl DeadLetter for CountingDeadLetter {
    async fn keep(&self, _rejected: &Rejected) -> Result<(), DeadLetterError> {
        self.kept.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// SDK config for the local server: fake credentials, us-east-1, the function's HTTP client.
async fn local_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "org-load",
        ))
        .endpoint_url(endpoint)
        .http_client(snapwatch_aws::clients::http_client())
        .load()
        .await
}

/// dynalite as a child process with a persistent path, on a fixed port across restarts.
/// Which DynamoDB-compatible server a run talks to.
#[derive(Debug, Clone)]
enum ServerProgram {
    /// dynalite's `cli.js`, run by node with a data path (so a restart keeps the tables).
    Dynalite(String),
    /// moto's `moto_server` (tables in memory only).
    Moto(String),
}

impl ServerProgram {
    fn name(&self) -> &'static str {
        match self {
            ServerProgram::Dynalite(_) => "dynalite",
            ServerProgram::Moto(_) => "moto",
        }
    }
}

struct Dynalite {
    program: ServerProgram,
    path: std::path::PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Dynalite {
    fn start(program: ServerProgram, path: &std::path::Path) -> anyhow::Result<Dynalite> {
        std::fs::create_dir_all(path)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = Dynalite {
            program,
            path: path.to_path_buf(),
            port,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.with_extension("log"))?;
        let port = self.port.to_string();
        let mut command = match &self.program {
            ServerProgram::Dynalite(cli_js) => {
                let mut command = Command::new("node");
                command
                    .arg(cli_js)
                    .args(["--host", "127.0.0.1", "--port", &port])
                    .arg("--path")
                    .arg(&self.path)
                    .args(["--createTableMs", "0", "--deleteTableMs", "0"]);
                command
            }
            ServerProgram::Moto(moto) => {
                let mut command = Command::new(moto);
                command.args(["-H", "127.0.0.1", "-p", &port]);
                command
            }
        };
        let child = command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.program.name()))?;
        self.child = Some(child);
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} did not listen on port {} within 30 s",
            self.program.name(),
            self.port
        )
    }

    /// Kills the server (SIGKILL: no chance to flush anything more), waits, starts it again on
    /// the same port and data path.
    fn restart(&mut self, downtime: Duration) -> anyhow::Result<()> {
        self.stop();
        std::thread::sleep(downtime);
        self.spawn()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Requests per partition key, read from each request's body: `Key`/`Item` values of the
/// partition key attribute (any operation, batches and transactions included) and the equality
/// on it in a `Query`'s key condition.
#[derive(Debug, Clone, Default)]
struct KeyCounter {
    inner: Arc<Mutex<KeyCounts>>,
}

#[derive(Debug, Default)]
struct KeyCounts {
    partition_key: String,
    table: String,
    counts: HashMap<String, u64>,
}

impl KeyCounter {
    fn set_partition_key(&self, name: &str, table: &str) {
        if let Ok(mut k) = self.inner.lock() {
            k.partition_key = name.to_string();
            k.table = table.to_string();
            k.counts.clear();
        }
    }

    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .inner
            .lock()
            .map(|k| k.counts.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// Every `{"<pk>": {"S": value}}` in a request body, at any depth.
fn collect_keys(value: &Value, pk: &str, out: &mut HashSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == pk {
                    if let Some(s) = v.get("S").and_then(Value::as_str) {
                        out.insert(s.to_string());
                        continue;
                    }
                }
                collect_keys(v, pk, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, pk, out)),
        _ => {}
    }
}

/// The partition key value a `Query` selects: `<pk or #alias> = :value` in its key condition.
fn query_key(body: &Value, pk: &str) -> Option<String> {
    let condition = body["KeyConditionExpression"].as_str()?;
    for part in condition.split(" AND ").chain(condition.split(" and ")) {
        let Some((left, right)) = part.split_once('=') else {
            continue;
        };
        let left = left.trim().trim_start_matches('(');
        let name = if left.starts_with('#') {
            body["ExpressionAttributeNames"][left]
                .as_str()
                .unwrap_or(left)
        } else {
            left
        };
        if name == pk {
            let placeholder = right.trim().trim_end_matches(')');
            return body["ExpressionAttributeValues"][placeholder]["S"]
                .as_str()
                .map(str::to_string);
        }
    }
    None
}

impl Intercept for KeyCounter {
    fn name(&self) -> &'static str {
        "KeyCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(bytes) = context.request().body().bytes() else {
            return Ok(());
        };
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        if let Ok(mut k) = self.inner.lock() {
            if k.partition_key.is_empty() {
                return Ok(());
            }
            let mut found = HashSet::new();
            if let Some(key) = query_key(&body, &k.partition_key) {
                found.insert(key);
            } else {
                collect_keys(&body, &k.partition_key, &mut found);
            }
            let table = k.table.clone();
            for key in found.into_iter().filter(|key| key != &table) {
                *k.counts.entry(key).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// What each `UpdateItem` was for, read from its key and update expression, and how it ended:
/// shows where requests beyond one write per linked resource go.
#[derive(Debug, Clone, Default)]
struct WritePurposes {
    counts: Arc<Mutex<BTreeMap<&'static str, Outcomes>>>,
}

/// How the requests of one purpose ended.
#[derive(Debug, Clone, Copy, Default)]
struct Outcomes {
    succeeded: u64,
    condition_failed: u64,
    other_error: u64,
}

#[derive(Debug)]
struct WritePurpose(&'static str);

impl aws_smithy_types::config_bag::Storable for WritePurpose {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl WritePurposes {
    fn counts(&self) -> BTreeMap<&'static str, Outcomes> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn reset(&self) {
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
    }

    /// The purpose of an update, from the store's key layout and expressions.
    fn of(input: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput) -> &'static str {
        let pk = input
            .key()
            .and_then(|k| k.get("pk"))
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        let sk = input
            .key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        let expression = input.update_expression().unwrap_or("");
        if pk.starts_with("alert#") {
            "alert claim"
        } else if expression.starts_with("SET #pages") {
            "page count"
        } else if expression.starts_with("SET #exp = :exp, #pages") {
            "first page TTL"
        } else if sk != "facts" {
            if expression.contains("if_not_exists(#exp") {
                "facts, later page, keeping TTL"
            } else {
                "facts, later page, raising TTL"
            }
        } else if expression.contains("if_not_exists(#exp") {
            "facts, keeping TTL"
        } else {
            "facts, raising TTL"
        }
    }
}

impl Intercept for WritePurposes {
    fn name(&self) -> &'static str {
        "WritePurposes"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
        use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
        if let Some(input) = context.input().downcast_ref::<UpdateItemInput>() {
            cfg.interceptor_state()
                .store_put(WritePurpose(Self::of(input)));
        } else if let Some(input) = context.input().downcast_ref::<BatchGetItemInput>() {
            let asks = input.request_items().into_iter().flat_map(|m| m.values());
            let mut purpose = "BatchGetItem: first pages only";
            for ask in asks {
                if ask.projection_expression().is_some() {
                    purpose = "BatchGetItem: full pages' keys (write)";
                    break;
                }
                let later = ask.keys().iter().any(|k| {
                    k.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) != Some("facts")
                });
                if later {
                    purpose = "BatchGetItem: with later pages";
                }
            }
            cfg.interceptor_state().store_put(WritePurpose(purpose));
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(purpose) = cfg.load::<WritePurpose>().map(|p| p.0) else {
            return Ok(());
        };
        let failed = match context.output_or_error() {
            Ok(_) => 0,
            Err(error) => {
                use aws_sdk_dynamodb::error::ProvideErrorMetadata;
                let code = error
                    .as_operation_error()
                    .and_then(|e| {
                        e.downcast_ref::<aws_sdk_dynamodb::operation::update_item::UpdateItemError>(
                        )
                    })
                    .and_then(|e| e.code());
                if code == Some("ConditionalCheckFailedException") {
                    1
                } else {
                    2
                }
            }
        };
        if let Ok(mut c) = self.counts.lock() {
            let slot = c.entry(purpose).or_default();
            match failed {
                0 => slot.succeeded += 1,
                1 => slot.condition_failed += 1,
                _ => slot.other_error += 1,
            }
        }
        Ok(())
    }
}

/// Consumed capacity, asked for on every call that can return it.
#[derive(Debug, Clone, Default)]
struct CapacityMeter {
    units: Arc<Mutex<(f64, f64)>>,
}

impl CapacityMeter {
    /// (write units, read units) so far.
    fn units(&self) -> (f64, f64) {
        self.units.lock().map(|u| *u).unwrap_or_default()
    }

    fn reset(&self) {
        if let Ok(mut u) = self.units.lock() {
            *u = (0.0, 0.0);
        }
    }
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::*;
        use aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total;
        let input = context.input_mut();
        if let Some(i) = input.downcast_mut::<update_item::UpdateItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<put_item::PutItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<delete_item::DeleteItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<batch_write_item::BatchWriteItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) =
            input.downcast_mut::<transact_write_items::TransactWriteItemsInput>()
        {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<get_item::GetItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<batch_get_item::BatchGetItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<query::QueryInput>() {
            i.return_consumed_capacity = Some(Total);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::*;
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let one = |c: Option<&ConsumedCapacity>| c.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let all = |c: &[ConsumedCapacity]| c.iter().map(|c| one(Some(c))).sum::<f64>();
        let (write, read) = if let Some(o) = output.downcast_ref::<update_item::UpdateItemOutput>()
        {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<put_item::PutItemOutput>() {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<delete_item::DeleteItemOutput>() {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<batch_write_item::BatchWriteItemOutput>() {
            (all(o.consumed_capacity()), 0.0)
        } else if let Some(o) =
            output.downcast_ref::<transact_write_items::TransactWriteItemsOutput>()
        {
            (all(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<get_item::GetItemOutput>() {
            (0.0, one(o.consumed_capacity()))
        } else if let Some(o) = output.downcast_ref::<batch_get_item::BatchGetItemOutput>() {
            (0.0, all(o.consumed_capacity()))
        } else if let Some(o) = output.downcast_ref::<query::QueryOutput>() {
            (0.0, one(o.consumed_capacity()))
        } else {
            (0.0, 0.0)
        };
        if let Ok(mut u) = self.units.lock() {
            u.0 += write;
            u.1 += read;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_key_reads_the_partition_key_equality() {
        let body = serde_json::json!({
            "KeyConditionExpression": "#p = :p AND begins_with(sk, :s)",
            "ExpressionAttributeNames": {"#p": "pk"},
            "ExpressionAttributeValues": {":p": {"S": "res#ami-1"}, ":s": {"S": "f"}}
        });
        assert_eq!(query_key(&body, "pk").as_deref(), Some("res#ami-1"));
    }

    #[test]
    fn query_key_skips_conditions_that_are_no_equality() {
        let body = serde_json::json!({
            "KeyConditionExpression": "begins_with(sk, :s) AND pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "res#sg-1"}, ":s": {"S": "f"}}
        });
        assert_eq!(query_key(&body, "pk").as_deref(), Some("res#sg-1"));
    }

    #[test]
    fn collect_keys_finds_batch_keys() {
        let body = serde_json::json!({"RequestItems": {"t": {"Keys": [
            {"pk": {"S": "a"}, "sk": {"S": "facts"}}, {"pk": {"S": "b"}, "sk": {"S": "facts"}}
        ]}}});
        let mut found = HashSet::new();
        collect_keys(&body, "pk", &mut found);
        assert_eq!(found, HashSet::from(["a".to_string(), "b".to_string()]));
    }
}

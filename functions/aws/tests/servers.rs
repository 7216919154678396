//! Tests against real local servers (moto, dynalite) started by tests/servers/with-servers.sh:
//! the store conformance suite, and whole chains through the handler ending in SNS (read back
//! through an SQS subscription) and in a local Slack-like receiver.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use snapwatch_aws::clients::RequestCounter;
use snapwatch_aws::dead_letter::SqsDeadLetter;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::{App, HandlerError, Status};
use snapwatch_aws::settings::SnsFormat;
use snapwatch_aws::sns::SnsSink;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{FixedClock, ResourceFacts, StateStore};
use snapwatch_core::{Config, Severity};
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const DYNALITE: &str = "SNAPWATCH_DYNALITE_ENDPOINT";

async fn new_store(endpoint_variable: &str, counter: Option<&RequestCounter>) -> DynamoStore {
    new_metered_store(endpoint_variable, counter, None).await
}

async fn new_metered_store(
    endpoint_variable: &str,
    counter: Option<&RequestCounter>,
    meter: Option<&CapacityMeter>,
) -> DynamoStore {
    let sdk = local_sdk(&server_endpoint(endpoint_variable)).await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(counter) = counter {
        config = config.interceptor(counter.clone());
    }
    if let Some(meter) = meter {
        config = config.interceptor(meter.clone());
    }
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config.build()),
        unique_name("snapwatch"),
    );
    store.create_table().await.expect("create the table");
    store
}

#[tokio::test]
async fn the_store_passes_the_conformance_suite_on_moto() {
    let store = new_store(MOTO, None).await;
    snapwatch_testkit::run_conformance(&store, "direct").await;
    // The per-invocation view answers reads of its own writes from memory: it must conform too.
    snapwatch_testkit::run_conformance(&store.session(), "session").await;
}

#[tokio::test]
async fn the_store_passes_the_conformance_suite_on_dynalite() {
    let store = new_store(DYNALITE, None).await;
    snapwatch_testkit::run_conformance(&store, "direct").await;
    snapwatch_testkit::run_conformance(&store.session(), "session").await;
}

/// A deployment against moto: table, topic with an SQS subscription, dead-letter queue, and a
/// Slack receiver.
struct Deployment {
    app: App<DynamoStore, SqsDeadLetter, SnsSink, SlackSink>,
    sqs: aws_sdk_sqs::Client,
    alerts_queue: String,
    dead_letter_queue: String,
    slack: SlackReceiver,
}

async fn deploy(slack_script: Vec<u16>) -> Deployment {
    let sdk = local_sdk(&server_endpoint(MOTO)).await;
    let AlertTopic {
        sns,
        topic_arn,
        sqs,
        queue_url: alerts_queue,
    } = AlertTopic::create(&sdk).await;
    let dead_letter_queue = sqs
        .create_queue()
        .queue_name(unique_name("dlq"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");

    let (slack, webhook) = SlackReceiver::start(slack_script).await;
    let policy = RetryPolicy {
        attempts: 3,
        max_wait: Duration::from_secs(2),
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
    };
    // Only critical findings are sent, so the single-instance chain yields exactly one alert;
    // `snapshot.restored-by-other` (medium) is recorded, not sent.
    let mut config = Config::default();
    config.alerts.min_severity = Severity::Critical;
    let store = new_store(MOTO, None).await;
    let app = App {
        store,
        config,
        dead_letter: SqsDeadLetter::new(sqs.clone(), &dead_letter_queue),
        sns: Some(SnsSink::new(sns, topic_arn)),
        slack: Some(SlackSink::new(WebhookUrl::parse(&webhook).unwrap(), policy).unwrap()),
        securityhub: None,
        responder: None,
        clock: Arc::new(FixedClock(fixture_now())),
    };
    Deployment {
        app,
        sqs,
        alerts_queue,
        dead_letter_queue,
        slack,
    }
}

/// The SNS notifications in the alerts queue, as JSON envelopes.
async fn notifications(d: &Deployment) -> Vec<serde_json::Value> {
    drain(&d.sqs, &d.alerts_queue)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or("null")).expect("SNS envelope JSON"))
        .collect()
}

fn slack_text(body: &serde_json::Value) -> String {
    body.to_string()
}

#[tokio::test]
async fn a_chain_ends_in_one_sns_message_and_one_slack_post_even_when_delivered_three_times() {
    let d = deploy(vec![]).await;
    for round in 0..3 {
        for raw in single_instance_chain() {
            let outcome = d.app.handle(&raw).await.expect("handled");
            assert_eq!(outcome.status, Status::Processed, "round {round}");
        }
    }
    let messages = notifications(&d).await;
    assert_eq!(messages.len(), 1, "one SNS message: {messages:#?}");
    let note = &messages[0];
    let finding: serde_json::Value =
        serde_json::from_str(note["Message"].as_str().expect("Message")).expect("finding JSON");
    assert_eq!(finding["rule"], "chain.exposed-restore");
    assert_eq!(finding["severity"], "critical");
    assert_eq!(finding["snapshot"], "snap-0f1e2d3c4b5a69788");
    let subject = note["Subject"].as_str().expect("Subject");
    assert!(
        subject.starts_with("[CRITICAL] snapwatch chain.exposed-restore aws"),
        "{subject}"
    );
    let attributes = &note["MessageAttributes"];
    assert_eq!(attributes["rule"]["Value"], "chain.exposed-restore");
    assert_eq!(attributes["severity"]["Value"], "critical");
    assert_eq!(attributes["cloud"]["Value"], "aws");
    assert_eq!(attributes["found_by"]["Value"], "events");

    let posts = d.slack.delivered();
    assert_eq!(posts.len(), 1, "one Slack post");
    assert_eq!(d.slack.requests(), 1, "no Slack retries were needed");
    let id = finding["id"].as_str().expect("finding id");
    assert!(
        slack_text(&posts[0]).contains(id),
        "the Slack post names finding {id}"
    );
}

#[tokio::test]
async fn eight_concurrent_handlers_on_one_chain_alert_once_and_lose_no_fact() {
    let d = Arc::new(deploy(vec![]).await);
    let events = single_instance_chain();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let d = d.clone();
        let mut order = events.clone();
        order.rotate_left(task % events.len());
        if task % 2 == 1 {
            order.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for raw in order {
                // A transient loss of the claim race is fine; errors are not.
                d.app.handle(&raw).await.expect("handled");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task finished");
    }
    assert_eq!(notifications(&d).await.len(), 1, "exactly one SNS message");
    assert_eq!(d.slack.delivered().len(), 1, "exactly one Slack post");

    // No lost fact: the table holds exactly what a sequential in-memory run stores.
    let reference = MemoryStore::new();
    let detector = snapwatch_core::engine::Detector::new(reference, Config::default());
    let mut resources = BTreeSet::new();
    for raw in &events {
        let snapwatch_core::parse::Parsed::Event(ev) =
            snapwatch_core::parse::aws::parse_eventbridge(raw).expect("parses")
        else {
            panic!("fixture is relevant");
        };
        resources.extend(detector.ingest(&ev).await.expect("ingest").touched);
    }
    let resources: Vec<String> = resources.into_iter().collect();
    let keys = |loaded: Vec<snapwatch_core::ports::ResourceFacts>| {
        loaded
            .into_iter()
            .map(|rf| {
                let keys: BTreeSet<String> = rf.facts.into_iter().map(|f| f.key).collect();
                (rf.resource, keys)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let want = keys(
        detector
            .store()
            .load_facts(&resources, fixture_now())
            .await
            .unwrap(),
    );
    let got = keys(
        d.app
            .store
            .load_facts(&resources, fixture_now())
            .await
            .unwrap(),
    );
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test]
async fn slack_down_then_up_gives_one_alert_and_sns_is_not_resent() {
    // Three 500s exhaust the sink's in-invocation retries; the platform retry then succeeds.
    let d = deploy(vec![500, 500, 500]).await;
    let chain = single_instance_chain();
    let (raw, first) = chain.split_last().expect("chain");
    for earlier in first {
        d.app.handle(earlier).await.expect("handled");
    }
    let err = d.app.handle(raw).await.expect_err("Slack is down");
    assert!(
        matches!(err, HandlerError::SinkUnavailable { .. }),
        "{err:?}"
    );
    assert_eq!(d.slack.delivered().len(), 0);
    let outcome = d.app.handle(raw).await.expect("the retry succeeds");
    assert_eq!(
        outcome.sent.keys().copied().collect::<Vec<_>>(),
        vec!["slack"]
    );
    assert_eq!(d.slack.delivered().len(), 1, "one Slack alert");
    assert_eq!(d.slack.requests(), 4, "three failures, one success");
    assert_eq!(
        notifications(&d).await.len(),
        1,
        "SNS sent once, not again on the retry"
    );
}

#[tokio::test]
async fn a_malformed_event_is_kept_in_the_dead_letter_queue_and_acknowledged() {
    let d = deploy(vec![]).await;
    let raw = r#"{"version":"0","id":"eb-broken","detail-type":"AWS API Call via CloudTrail","source":"aws.ec2","detail":{"eventName":"CreateSnapshot","eventSource":"ec2.amazonaws.com","eventTime":"yesterday","recipientAccountId":"111122223333"}}"#;
    let outcome = d.app.handle(raw).await.expect("acknowledged");
    assert_eq!(outcome.status, Status::DeadLettered);
    let kept = drain(&d.sqs, &d.dead_letter_queue).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body(), Some(raw));
    let attributes = kept[0].message_attributes().expect("attributes");
    assert_eq!(attributes["event_id"].string_value(), Some("eb-broken"));
    let reason = attributes["reason"].string_value().unwrap_or_default();
    assert!(reason.contains("eventTime"), "{reason}");
    assert!(notifications(&d).await.is_empty());
}

/// DynamoDB requests per relevant event over the fixture stream (every fixture, in event-time
/// order as EventBridge delivers them, then the attack chain), and warm per-event latency. Run
/// with two sinks (the alert-dense figure) and with none (what ordinary traffic, where alerts are
/// rare, costs: fact writes and chain reads only).
#[tokio::test]
async fn dynamodb_requests_per_relevant_event() {
    // Each server: with two sinks, without sinks, and without sinks with every event on a fresh
    // function instance (a store with nothing remembered: no item TTLs, no chains walked).
    let runs = [(MOTO, "moto"), (DYNALITE, "dynalite")]
        .into_iter()
        .flat_map(|server| {
            [
                (server, true, false),
                (server, false, false),
                (server, false, true),
            ]
        });
    let mut warm_reads = BTreeMap::new();
    for ((variable, server_name), with_sinks, cold) in runs {
        let server = match (with_sinks, cold) {
            (true, _) => server_name.to_string(),
            (false, false) => format!("{server_name} without sinks"),
            (false, true) => format!("{server_name} without sinks, a fresh instance per event"),
        };
        let counter = RequestCounter::new();
        let meter = CapacityMeter::default();
        let store = new_metered_store(variable, Some(&counter), Some(&meter)).await;
        counter.reset();
        meter.reset();
        let app = App {
            store,
            config: Config::default(),
            dead_letter: RecordingDeadLetter::default(),
            sns: with_sinks.then(|| MemorySink::named("sns")),
            slack: with_sinks.then(|| MemorySink::named("slack")),
            securityhub: None,
            responder: None,
            clock: Arc::new(FixedClock(fixture_now())),
        };
        let mut stream: Vec<String> = fixture_names()
            .iter()
            .filter(|n| !CHAIN.contains(&n.as_str()))
            .map(|n| envelope(&fixture(n)))
            .collect();
        stream.sort_by_key(|raw| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
            v["detail"]["eventTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        stream.extend(CHAIN.iter().map(|n| envelope(&fixture(n))));
        let mut relevant = 0u64;
        let mut latencies = Vec::new();
        for raw in &stream {
            let started = Instant::now();
            let outcome = if cold {
                let fresh = App {
                    store: DynamoStore::new(app.store.client().clone(), app.store.table()),
                    config: Config::default(),
                    dead_letter: RecordingDeadLetter::default(),
                    sns: None::<MemorySink>,
                    slack: None::<MemorySink>,
                    securityhub: None,
                    responder: None,
                    clock: Arc::new(FixedClock(fixture_now())),
                };
                fresh.handle(raw).await.expect("handled")
            } else {
                app.handle(raw).await.expect("handled")
            };
            if outcome.status == Status::Processed {
                relevant += 1;
                latencies.push(started.elapsed());
            }
        }
        let total = counter.total();
        let (write_units, read_units) = meter.units();
        // What the engine asks the store to write: one item update per resource an event
        // touches. A late event (older than the newest fact of the item) costs no second update:
        // the store remembers the TTL its earlier write left on the item.
        let mut touched = 0usize;
        let mut late = 0usize;
        let mut newest: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
        for raw in &stream {
            let Ok(snapwatch_core::parse::Parsed::Event(ev)) =
                snapwatch_core::parse::aws::parse_eventbridge(raw)
            else {
                continue;
            };
            let resources: BTreeSet<String> = ev
                .facts
                .iter()
                .flat_map(|f| f.linked_resources())
                .map(|r| r.id.clone())
                .collect();
            for resource in resources {
                touched += 1;
                let seen = newest.entry(resource).or_insert(ev.meta.time);
                if *seen > ev.meta.time {
                    late += 1;
                } else {
                    *seen = ev.meta.time;
                }
            }
        }
        let (items, bytes, largest) = fact_item_sizes(&app.store).await;
        let alerts = app.sns.as_ref().map_or(0, |s| s.sent().len())
            + app.slack.as_ref().map_or(0, |s| s.sent().len());
        let average = total as f64 / relevant as f64;
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
        eprintln!(
            "FIGURE {server}: {relevant} relevant events, {total} DynamoDB requests ({:?}), {average:.2} per event; consumed {write_units} WCU ({:.2} per event), {read_units} RCU ({:.2} per event) as the server reports them; {touched} resource writes ({late} late), {alerts} alerts sent; {items} fact items, average {} B, largest {largest} B; latency p50 {:?} p99 {:?}",
            counter.by_operation(),
            write_units / relevant as f64,
            read_units / relevant as f64,
            bytes / items.max(1),
            pct(0.5),
            pct(0.99)
        );
        if let Some(sns) = &app.sns {
            assert!(
                sent_rules(sns).contains(&"chain.exposed-restore".to_string()),
                "{server}: the stream ends with the attack chain, which must alert"
            );
        }
        assert!(relevant > 30, "the stream holds the relevant fixtures");
        // Exactly: one update per resource written (late ones too), claim + mark per alert;
        // re-evaluated, already delivered findings cost nothing; at most one read per event.
        let by_operation = counter.by_operation();
        let updates = by_operation.get("UpdateItem").copied().unwrap_or(0);
        if cold {
            // A late write to an item the instance has not written costs a second update.
            assert!(
                (touched as u64..=(touched + late) as u64).contains(&updates),
                "{server}: UpdateItem requests {updates}"
            );
        } else {
            assert_eq!(
                updates,
                (touched + 2 * alerts) as u64,
                "{server}: UpdateItem requests"
            );
        }
        assert_eq!(
            by_operation.get("GetItem"),
            None,
            "{server}: no claim lookups"
        );
        let reads = by_operation.get("BatchGetItem").copied().unwrap_or(0);
        assert!(
            reads <= relevant,
            "{server}: at most one batch read per event"
        );
        // A warm instance reads the chains it walked before ahead, in the walk's first read.
        if !with_sinks && !cold {
            warm_reads.insert(server_name, reads);
        }
        if cold {
            assert!(
                warm_reads[server_name] < reads,
                "{server}: reading ahead saves reads ({} warm, {reads} cold)",
                warm_reads[server_name]
            );
        }
    }
}

/// Sums the capacity units DynamoDB reports it consumed (write, read), asking for them on every
/// request the store sends: what the README's cost per million events is computed from.
#[derive(Debug, Clone, Default)]
struct CapacityMeter {
    units: Arc<std::sync::Mutex<(f64, f64)>>,
}

impl CapacityMeter {
    fn units(&self) -> (f64, f64) {
        *self.units.lock().unwrap()
    }

    fn reset(&self) {
        *self.units.lock().unwrap() = (0.0, 0.0);
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::*;
        use aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total;
        let input = context.input_mut();
        if let Some(i) = input.downcast_mut::<update_item::UpdateItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<batch_get_item::BatchGetItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<get_item::GetItemInput>() {
            i.return_consumed_capacity = Some(Total);
        } else if let Some(i) = input.downcast_mut::<delete_item::DeleteItemInput>() {
            i.return_consumed_capacity = Some(Total);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::*;
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let units =
            |c: Option<&ConsumedCapacity>| c.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let (write, read) = if let Some(o) = output.downcast_ref::<update_item::UpdateItemOutput>()
        {
            (units(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<delete_item::DeleteItemOutput>() {
            (units(o.consumed_capacity()), 0.0)
        } else if let Some(o) = output.downcast_ref::<get_item::GetItemOutput>() {
            (0.0, units(o.consumed_capacity()))
        } else if let Some(o) = output.downcast_ref::<batch_get_item::BatchGetItemOutput>() {
            (
                0.0,
                o.consumed_capacity().iter().map(|c| units(Some(c))).sum(),
            )
        } else {
            (0.0, 0.0)
        };
        let mut sums = self.units.lock().unwrap();
        sums.0 += write;
        sums.1 += read;
        Ok(())
    }
}

/// A late write (facts older than the item's newest) costs one `UpdateItem` when this store wrote
/// the item before, and never lowers the item's TTL. A store with no memory of the item (another
/// function instance) pays a failed conditional write plus the keeping one, and then knows.
#[tokio::test]
async fn a_late_write_keeps_the_item_ttl_in_one_request_when_the_store_knows_the_item() {
    const NEWER: i64 = 4_073_500_800; // 2099-01-31
    const OLDER: i64 = NEWER - 3_600;
    const OLDEST: i64 = NEWER - 7_200;
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let counter = RequestCounter::new();
        let store = new_store(variable, Some(&counter)).await;
        let resource = unique_name("snap-late");
        let write = |key: &str, expires_at: i64| {
            vec![ResourceFacts {
                resource: resource.clone(),
                facts: vec![snapwatch_testkit::fact(key, expires_at, "{}")],
            }]
        };
        let updates = |counter: &RequestCounter| {
            let n = counter.by_operation().get("UpdateItem").copied();
            counter.reset();
            n.unwrap_or(0)
        };
        store.add_facts(&write("evt-new#0", NEWER)).await.unwrap();
        assert_eq!(updates(&counter), 1, "{server}: the first write");

        assert_eq!(
            store.add_facts(&write("evt-old#0", OLDER)).await.unwrap(),
            1
        );
        assert_eq!(
            updates(&counter),
            1,
            "{server}: a late write to a known item"
        );
        assert_eq!(item_ttl(&store, &resource).await, Some(NEWER), "{server}");

        let other = DynamoStore::new(store.client().clone(), store.table());
        assert_eq!(
            other
                .add_facts(&write("evt-older#0", OLDEST))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            updates(&counter),
            2,
            "{server}: a late write to an unknown item"
        );
        assert_eq!(item_ttl(&store, &resource).await, Some(NEWER), "{server}");
        assert_eq!(
            other
                .add_facts(&write("evt-older#1", OLDEST))
                .await
                .unwrap(),
            1
        );
        assert_eq!(updates(&counter), 1, "{server}: the item is known now");

        // An in-order write still raises the TTL, whatever the memory holds.
        store
            .add_facts(&write("evt-newest#0", NEWER + 60))
            .await
            .unwrap();
        // The page's TTL is rounded up to the hour (see the module docs).
        assert_eq!(
            item_ttl(&store, &resource).await,
            Some(NEWER + 3_600),
            "{server}"
        );
        let loaded = store
            .load_facts(std::slice::from_ref(&resource), fixture_now())
            .await
            .unwrap();
        let mut keys: Vec<&str> = loaded[0].facts.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "evt-new#0",
                "evt-newest#0",
                "evt-old#0",
                "evt-older#0",
                "evt-older#1"
            ],
            "{server}: no fact lost"
        );

        // The item expired and was deleted while the store remembered its TTL: the late write
        // recreates it with a TTL of its own, never without one.
        store
            .client()
            .delete_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S(format!("res#{resource}")))
            .key("sk", AttributeValue::S("facts".into()))
            .send()
            .await
            .unwrap();
        store
            .add_facts(&write("evt-again#0", OLDEST))
            .await
            .unwrap();
        assert_eq!(item_ttl(&store, &resource).await, Some(OLDEST), "{server}");
    }
}

/// A page's TTL is rounded up to the hour, so a late write from an instance that never wrote the
/// page (each Lambda instance has its own memory) costs one `UpdateItem` when its facts expire
/// within the hour the page's newest do: no failed conditional write first. Facts keep their
/// exact expiry: a reader drops each one at its own time.
#[tokio::test]
async fn a_fresh_instance_s_late_write_within_the_ttl_grain_costs_one_update() {
    const NEWER: i64 = 4_073_500_800 - 600; // 2099-01-30 23:50
    const GRAIN_END: i64 = 4_073_500_800; // the next whole hour
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let counter = RequestCounter::new();
        let store = new_store(variable, Some(&counter)).await;
        let resource = unique_name("snap-grain");
        let write = |key: &str, expires_at: i64| {
            vec![ResourceFacts {
                resource: resource.clone(),
                facts: vec![snapwatch_testkit::fact(key, expires_at, "{}")],
            }]
        };
        store.add_facts(&write("evt-new#0", NEWER)).await.unwrap();
        counter.reset();

        for (i, late) in [NEWER - 1, NEWER - 1_800, GRAIN_END - 3_599]
            .into_iter()
            .enumerate()
        {
            let fresh = DynamoStore::new(store.client().clone(), store.table());
            assert_eq!(
                fresh
                    .add_facts(&write(&format!("evt-late-{i}#0"), late))
                    .await
                    .unwrap(),
                1,
                "{server}"
            );
            assert_eq!(
                counter.by_operation(),
                BTreeMap::from([("UpdateItem".to_string(), 1)]),
                "{server}: a fresh instance's late write within the hour, expiring at {late}"
            );
            counter.reset();
        }
        assert_eq!(
            item_ttl(&store, &resource).await,
            Some(GRAIN_END),
            "{server}"
        );

        // Each fact still expires at its own time.
        let at = chrono::DateTime::from_timestamp(NEWER - 1_000, 0).unwrap();
        let loaded = store
            .load_facts(std::slice::from_ref(&resource), at)
            .await
            .unwrap();
        let mut keys: Vec<&str> = loaded[0].facts.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["evt-late-0#0", "evt-new#0"], "{server}");
    }
}

/// A fresh instance's first write to a hub: the guarded write to the full first page fails and,
/// where the server returns the page with the failure (DynamoDB, moto), that page gives the page
/// count, the keys and the TTL, so no `GetItem` and no first-page TTL raise follow. dynalite
/// returns nothing: one `GetItem` of the first page (which gives its TTL too) stands in, after
/// the keeping form has failed too (a first page that fails is more often late than full).
#[tokio::test]
async fn a_fresh_instance_s_first_write_to_a_hub_skips_the_reads_the_failed_write_answers() {
    for (variable, server, expected) in [
        (
            MOTO,
            "moto",
            [("BatchGetItem", 1), ("UpdateItem", 2)].as_slice(),
        ),
        (
            DYNALITE,
            "dynalite",
            [("BatchGetItem", 1), ("GetItem", 1), ("UpdateItem", 3)].as_slice(),
        ),
    ] {
        let counter = RequestCounter::new();
        let store = new_store(variable, Some(&counter)).await;
        let hub = unique_name("ami-golden");
        // Two full pages of 100 facts each and a last one of 50 that takes writes.
        let all = hub_facts("launch", 0..250);
        add_in_calls(&store, &hub, &all, 50).await;
        let pages = hub_pages(&store, &hub).await.len();
        assert!(pages > 2, "{server}: {pages} pages");

        counter.reset();
        let fresh = DynamoStore::new(store.client().clone(), store.table());
        let mut facts = hub_facts("fresh", 0..1);
        facts.push(all[100].clone());
        assert_eq!(
            fresh
                .add_facts(&[ResourceFacts {
                    resource: hub.clone(),
                    facts,
                }])
                .await
                .unwrap(),
            1,
            "{server}: one new fact and one on a full page"
        );
        let expected = requests(expected);
        assert_eq!(
            counter.by_operation(),
            expected,
            "{server}: requests of a fresh instance's first write to a {pages}-page hub"
        );
        let loaded = fresh
            .load_facts(std::slice::from_ref(&hub), fixture_now())
            .await
            .unwrap();
        assert_eq!(loaded[0].facts.len(), 251, "{server}: every hub fact");
    }
}

/// A warm instance reads a chain it walked before in one request: the walk's first read also
/// reads the items the last walk through the same resources needed. Only ids are remembered:
/// what is read ahead comes from the table, so a fact another instance wrote since is seen, a
/// read-ahead item serves one load at the same `now`, and a new write forgets it.
#[tokio::test]
async fn a_warm_instance_reads_a_chain_it_walked_before_in_one_request() {
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let counter = RequestCounter::new();
        let store = new_store(variable, Some(&counter)).await;
        let [a, b, c] = ["snap-a", "ami-b", "snap-c"].map(unique_name);
        let write = facts_of;
        for (resource, key) in [(&a, "e1#0"), (&b, "e2#0"), (&c, "e3#0")] {
            store.add_facts(&write(resource, key)).await.unwrap();
        }
        let reads = |counter: &RequestCounter| {
            let n = counter.by_operation().get("BatchGetItem").copied();
            counter.reset();
            n.unwrap_or(0)
        };
        let keys = keys_of;
        let now = fixture_now();
        let chain = [a.clone(), b.clone(), c.clone()];
        counter.reset();
        let first = store.session();
        walk_chain(&first, &chain, "e4#0", now).await;
        drop(first);
        assert_eq!(reads(&counter), 2, "{server}: a cold walk reads each level");

        // Another instance adds to c meanwhile: the read-ahead must see it.
        let other = DynamoStore::new(store.client().clone(), store.table());
        other.add_facts(&write(&c, "e5#0")).await.unwrap();
        counter.reset();
        let second = store.session();
        let seen = walk_chain(&second, &chain, "e6#0", now).await;
        assert_eq!(
            reads(&counter),
            1,
            "{server}: the warm walk reads b and c at once"
        );
        assert_eq!(
            seen,
            ["e1#0", "e2#0", "e3#0", "e4#0", "e5#0", "e6#0"],
            "{server}: every fact, the other instance's too"
        );
        // Read ahead, c is handed out once: a second load of it reads the table again.
        other.add_facts(&write(&c, "e7#0")).await.unwrap();
        counter.reset();
        assert_eq!(
            keys(
                second
                    .load_facts(std::slice::from_ref(&c), now)
                    .await
                    .unwrap()
            ),
            ["e3#0", "e5#0", "e7#0"],
            "{server}"
        );
        assert_eq!(reads(&counter), 1, "{server}: c read again");
        // A read-ahead item serves only loads at the same `now`, and a write forgets it.
        let third = store.session();
        third.add_facts(&write(&a, "e8#0")).await.unwrap();
        for level in [&a, &b] {
            third
                .load_facts(std::slice::from_ref(level), now)
                .await
                .unwrap();
        }
        other.add_facts(&write(&c, "e9#0")).await.unwrap();
        counter.reset();
        let later = now + chrono::Duration::seconds(1);
        assert!(
            keys(
                third
                    .load_facts(std::slice::from_ref(&c), later)
                    .await
                    .unwrap()
            )
            .contains(&"e9#0".to_string()),
            "{server}: a load at another `now` sees the table"
        );
        assert_eq!(
            reads(&counter),
            1,
            "{server}: another `now` reads the table"
        );
        let fourth = store.session();
        fourth.add_facts(&write(&a, "e10#0")).await.unwrap();
        for level in [&a, &b] {
            fourth
                .load_facts(std::slice::from_ref(level), now)
                .await
                .unwrap();
        }
        fourth.add_facts(&write(&a, "e11#0")).await.unwrap();
        other.add_facts(&write(&c, "e12#0")).await.unwrap();
        counter.reset();
        assert!(
            keys(
                fourth
                    .load_facts(std::slice::from_ref(&c), now)
                    .await
                    .unwrap()
            )
            .contains(&"e12#0".to_string()),
            "{server}: after a write, a load sees the table"
        );
        assert_eq!(
            reads(&counter),
            1,
            "{server}: after a write c is read again"
        );
    }
}

/// One fact, its body its key, under `resource`, alive for the whole test.
fn facts_of(resource: &str, key: &str) -> Vec<ResourceFacts> {
    vec![ResourceFacts {
        resource: resource.to_string(),
        facts: vec![snapwatch_testkit::fact(key, 4_073_500_800, key)],
    }]
}

/// The keys of the loaded facts, sorted.
fn keys_of(loaded: Vec<ResourceFacts>) -> Vec<String> {
    let mut keys: Vec<String> = loaded
        .into_iter()
        .flat_map(|rf| rf.facts.into_iter().map(|f| f.key))
        .collect();
    keys.sort();
    keys
}

/// An event on `chain[0]` and the engine's walk after it, level by level: the written item, then
/// `chain[1]`, then `chain[2]`. Returns every fact key seen.
async fn walk_chain(
    session: &snapwatch_aws::dynamo::DynamoSession<'_>,
    chain: &[String; 3],
    event: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    session
        .add_facts(&facts_of(&chain[0], event))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for level in chain {
        seen.extend(keys_of(
            session
                .load_facts(std::slice::from_ref(level), now)
                .await
                .unwrap(),
        ));
    }
    seen.sort();
    seen
}

/// The TTL attribute of a resource's fact item.
async fn item_ttl(store: &DynamoStore, resource: &str) -> Option<i64> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("res#{resource}")))
        .key("sk", AttributeValue::S("facts".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?
        .get("expires_at")?
        .as_n()
        .ok()?
        .parse()
        .ok()
}

/// Fact items in the table and their sizes as DynamoDB bills them (attribute names + values),
/// the input of the write-unit estimate in the README.
async fn fact_item_sizes(store: &DynamoStore) -> (usize, usize, usize) {
    fn size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + 1 + size(v)).sum::<usize>(),
            _ => 1,
        }
    }
    let mut items = 0;
    let mut total = 0;
    let mut largest = 0;
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let is_fact = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("res#"));
            if is_fact {
                let bytes: usize = item.iter().map(|(k, v)| k.len() + size(v)).sum();
                items += 1;
                total += bytes;
                largest = largest.max(bytes);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return (items, total, largest);
        }
    }
}

#[tokio::test]
async fn with_sns_format_ocsf_subscribers_get_an_ocsf_detection_finding() {
    let sdk = local_sdk(&server_endpoint(MOTO)).await;
    let topic = AlertTopic::create(&sdk).await;
    let mut config = Config::default();
    config.alerts.min_severity = Severity::Critical;
    let app: App<DynamoStore, RecordingDeadLetter, SnsSink, SlackSink> = App {
        store: new_store(MOTO, None).await,
        config,
        dead_letter: RecordingDeadLetter::default(),
        sns: Some(SnsSink::new(topic.sns.clone(), &topic.topic_arn).with_format(SnsFormat::Ocsf)),
        slack: None,
        securityhub: None,
        responder: None,
        clock: Arc::new(FixedClock(fixture_now())),
    };
    for raw in single_instance_chain() {
        app.handle(&raw).await.expect("handled");
    }
    let messages = topic.findings().await;
    assert_eq!(messages.len(), 1, "one SNS message: {messages:#?}");
    let ocsf = &messages[0];
    assert_eq!(ocsf["class_uid"], 2004);
    assert_eq!(ocsf["type_uid"], 200401);
    assert_eq!(
        ocsf["metadata"]["version"],
        snapwatch_core::render::ocsf::OCSF_VERSION
    );
    assert_eq!(
        ocsf["finding_info"]["types"],
        serde_json::json!(["chain.exposed-restore"])
    );
    assert_eq!(ocsf["severity_id"], 5);
    assert_eq!(ocsf["cloud"]["provider"], "AWS");
    assert_eq!(
        ocsf["unmapped"]["snapshot"], "snap-0f1e2d3c4b5a69788",
        "{ocsf:#}"
    );
}

/// Alive for the whole test (2099-01-31).
const HUB_EXPIRY: i64 = 4_073_500_800;

/// `n` facts `<prefix>-<i>#0` of about 600 bytes each, the size of a real observation.
fn hub_facts(
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Vec<snapwatch_core::ports::StoredFact> {
    range
        .map(|i| {
            let key = format!("{prefix}-{i}#0");
            let body = format!("{key} {}", "x".repeat(580));
            snapwatch_testkit::fact(&key, HUB_EXPIRY, &body)
        })
        .collect()
}

/// Requests per operation, as `RequestCounter::by_operation` gives them.
fn requests(counts: &[(&str, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

/// Adds `facts` to `hub` `per_call` at a time, as launches arrive; returns how many were new.
async fn add_in_calls(
    store: &DynamoStore,
    hub: &str,
    facts: &[snapwatch_core::ports::StoredFact],
    per_call: usize,
) -> usize {
    let mut added = 0;
    for chunk in facts.chunks(per_call) {
        added += store
            .add_facts(&[ResourceFacts {
                resource: hub.to_string(),
                facts: chunk.to_vec(),
            }])
            .await
            .unwrap();
    }
    added
}

/// The fact items of one resource (its pages): sort key → (size in bytes, fact keys).
async fn hub_pages(store: &DynamoStore, resource: &str) -> BTreeMap<String, (usize, Vec<String>)> {
    let mut pages = BTreeMap::new();
    let mut start = None;
    loop {
        let out = store
            .client()
            .query()
            .table_name(store.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("res#{resource}")))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query the pages");
        for item in out.items() {
            let sk = item["sk"].as_s().unwrap().clone();
            let bytes: usize = item
                .iter()
                .map(|(k, v)| {
                    k.len()
                        + match v {
                            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                            AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
                            AttributeValue::M(m) => m
                                .values()
                                .map(|v| v.as_s().or(v.as_n()).map_or(0, String::len) + 4)
                                .sum(),
                            _ => 1,
                        }
                })
                .sum();
            let mut keys: Vec<String> = item
                .keys()
                .filter_map(|k| k.strip_prefix("f:").map(str::to_owned))
                .collect();
            keys.sort();
            pages.insert(sk, (bytes, keys));
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return pages;
        }
    }
}

/// A hub (a golden AMI) receives 1.2 MB of facts: it spreads over pages that each stay far
/// below the 400 KB item limit (so a write costs at most ~64 write units), every key is on one
/// page only, an ordinary resource still costs one read, the hub two, and a fresh instance (no
/// memory of the hub's pages) counts a redelivery of a fact on any earlier page as known.
#[tokio::test]
async fn a_hub_spreads_over_bounded_pages_and_a_fresh_instance_knows_its_stored_facts() {
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let counter = RequestCounter::new();
        let meter = CapacityMeter::default();
        let store = new_metered_store(variable, Some(&counter), Some(&meter)).await;
        let hub = unique_name("ami-golden");
        let instance = unique_name("i-ordinary");
        let all = hub_facts("launch", 0..2_000);
        let added = add_in_calls(&store, &hub, &all, 50).await;
        assert_eq!(added, 2_000, "{server}: every hub fact is new once");
        store
            .add_facts(&facts_of(&instance, "run#0"))
            .await
            .unwrap();

        let pages = hub_pages(&store, &hub).await;
        assert!(pages.len() >= 10, "{server}: {} pages", pages.len());
        for (sk, (bytes, _)) in &pages {
            assert!(
                *bytes < 80 * 1024,
                "{server}: page {sk} holds {bytes} bytes, over the page budget"
            );
        }
        let mut on_pages: Vec<&String> = pages.values().flat_map(|(_, keys)| keys).collect();
        on_pages.sort();
        let before = on_pages.len();
        on_pages.dedup();
        assert_eq!(
            before,
            on_pages.len(),
            "{server}: a key stored on two pages"
        );
        assert_eq!(on_pages.len(), 2_000, "{server}: facts on the pages");

        // Writing to a grown hub costs about a page, not the whole hub.
        meter.reset();
        store
            .add_facts(&[ResourceFacts {
                resource: hub.clone(),
                facts: hub_facts("late", 0..1),
            }])
            .await
            .unwrap();
        let (write_units, _) = meter.units();
        eprintln!("FIGURE {server}: one write to a 1.2 MB hub: {write_units} WCU");
        assert!(
            write_units <= 80.0,
            "{server}: {write_units} WCU for one hub write"
        );

        // A fresh instance: redeliveries of the first, a middle and the last fact are not new.
        let fresh = DynamoStore::new(store.client().clone(), store.table());
        let redelivered: Vec<_> = [0, 1_000, 1_999].iter().map(|&i| all[i].clone()).collect();
        assert_eq!(
            fresh
                .add_facts(&[ResourceFacts {
                    resource: hub.clone(),
                    facts: redelivered,
                }])
                .await
                .unwrap(),
            0,
            "{server}: redelivered facts on earlier pages, to an instance that never saw them"
        );
        let fresh = DynamoStore::new(store.client().clone(), store.table());
        let mut mixed = vec![all[500].clone()];
        mixed.extend(hub_facts("new", 0..1));
        assert_eq!(
            fresh
                .add_facts(&[ResourceFacts {
                    resource: hub.clone(),
                    facts: mixed,
                }])
                .await
                .unwrap(),
            1,
            "{server}: one redelivered and one new fact"
        );

        // Another fresh instance, which has not written to the hub either.
        let fresh = DynamoStore::new(store.client().clone(), store.table());
        counter.reset();
        let loaded = fresh
            .load_facts(std::slice::from_ref(&instance), fixture_now())
            .await
            .unwrap();
        assert_eq!(keys_of(loaded), ["run#0"], "{server}");
        assert_eq!(
            counter.by_operation().get("BatchGetItem"),
            Some(&1),
            "{server}: an ordinary resource costs one read"
        );
        counter.reset();
        let loaded = fresh
            .load_facts(&[hub.clone(), instance.clone()], fixture_now())
            .await
            .unwrap();
        assert_eq!(
            counter.by_operation().get("BatchGetItem"),
            Some(&2),
            "{server}: a hub with an ordinary resource costs two reads"
        );
        let keys = keys_of(loaded);
        assert_eq!(keys.len(), 2_000 + 3, "{server}: every fact loads back");
        // Now the instance knows the hub's pages and asks for them with the first ones.
        counter.reset();
        let again = fresh
            .load_facts(&[hub.clone(), instance.clone()], fixture_now())
            .await
            .unwrap();
        assert_eq!(
            counter.by_operation().get("BatchGetItem"),
            Some(&1),
            "{server}: a hub read by a warm instance costs one read"
        );
        assert_eq!(keys_of(again), keys, "{server}: the same facts");
        let hub_loaded = fresh
            .load_facts(std::slice::from_ref(&hub), fixture_now())
            .await
            .unwrap();
        let first = hub_loaded[0]
            .facts
            .iter()
            .find(|f| f.key == all[1_000].key)
            .unwrap();
        assert_eq!(first, &all[1_000], "{server}: the first body wins");
    }
}

/// An item written before pages existed (no size, no page count) is read as before; it takes no
/// more writes, a redelivery of one of its facts is known, and new facts go to a second page.
#[tokio::test]
async fn an_item_from_before_pages_is_read_as_before_and_new_facts_go_to_a_second_page() {
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let store = new_store(variable, None).await;
        let resource = unique_name("ami-legacy");
        let fact_value = |body: &str| {
            AttributeValue::M(
                [
                    ("e".to_string(), AttributeValue::N(HUB_EXPIRY.to_string())),
                    ("b".to_string(), AttributeValue::S(body.to_string())),
                ]
                .into(),
            )
        };
        store
            .client()
            .put_item()
            .table_name(store.table())
            .item("pk", AttributeValue::S(format!("res#{resource}")))
            .item("sk", AttributeValue::S("facts".into()))
            .item("fact_keys", AttributeValue::Ss(vec!["old#0".into()]))
            .item("f:old#0", fact_value("old"))
            .item("expires_at", AttributeValue::N(HUB_EXPIRY.to_string()))
            .send()
            .await
            .unwrap();
        let write = |key: &str| {
            vec![ResourceFacts {
                resource: resource.clone(),
                facts: vec![snapwatch_testkit::fact(key, HUB_EXPIRY, "new")],
            }]
        };
        assert_eq!(
            store.add_facts(&write("old#0")).await.unwrap(),
            0,
            "{server}"
        );
        assert_eq!(
            store.add_facts(&write("new#0")).await.unwrap(),
            1,
            "{server}"
        );
        let fresh = DynamoStore::new(store.client().clone(), store.table());
        assert_eq!(
            fresh.add_facts(&write("old#0")).await.unwrap(),
            0,
            "{server}"
        );
        assert_eq!(
            fresh.add_facts(&write("new#0")).await.unwrap(),
            0,
            "{server}"
        );

        let pages = hub_pages(&store, &resource).await;
        let layout: Vec<(&str, &[String])> = pages
            .iter()
            .map(|(sk, (_, keys))| (sk.as_str(), keys.as_slice()))
            .collect();
        assert_eq!(
            layout,
            [
                ("facts", &["old#0".to_string()][..]),
                ("facts#1", &["new#0".to_string()][..])
            ],
            "{server}: the old item is left as it was"
        );
        let loaded = fresh
            .load_facts(std::slice::from_ref(&resource), fixture_now())
            .await
            .unwrap();
        assert_eq!(keys_of(loaded), ["new#0", "old#0"], "{server}");
    }
}

/// Eight instances (no shared memory) write overlapping facts to one hub at once while it grows
/// past several pages: every key is counted new exactly once in total and stored on one page.
/// Each reads the hub after each of its writes, as the engine does, from what it holds of the
/// hub's full pages and what the table says: it sees every fact it has written, and never fewer
/// facts than before; at the end each sees them all.
/// On dynalite only: moto serves requests on threads without item locks, so its conditional
/// writes are not atomic under concurrency (this test counts some facts twice there).
#[tokio::test]
async fn concurrent_writers_to_a_growing_hub_count_each_fact_once() {
    {
        let (variable, server) = (DYNALITE, "dynalite");
        let store = new_store(variable, None).await;
        let hub = unique_name("sg-default");
        let all = hub_facts("ingress", 0..800);
        let now = fixture_now();
        let writers = (0..8).map(|w| {
            let instance = DynamoStore::new(store.client().clone(), store.table());
            let mut facts = all.clone();
            // Each writer its own order, so they meet on every page.
            facts.rotate_left(w * 100);
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut added = 0;
                let mut written = BTreeSet::new();
                let mut seen_before = 0;
                for chunk in facts.chunks(25) {
                    let session = instance.session();
                    added += session
                        .add_facts(&[ResourceFacts {
                            resource: hub.clone(),
                            facts: chunk.to_vec(),
                        }])
                        .await
                        .unwrap();
                    written.extend(chunk.iter().map(|f| f.key.clone()));
                    let seen: BTreeSet<String> = keys_of(
                        session
                            .load_facts(std::slice::from_ref(&hub), now)
                            .await
                            .unwrap(),
                    )
                    .into_iter()
                    .collect();
                    let missing = written.difference(&seen).count();
                    assert_eq!(
                        missing, 0,
                        "writer {w}: its own facts missing from its read"
                    );
                    assert!(seen.len() >= seen_before, "writer {w}: facts vanished");
                    seen_before = seen.len();
                }
                let last = instance
                    .load_facts(std::slice::from_ref(&hub), now)
                    .await
                    .unwrap();
                assert_eq!(
                    keys_of(last).len(),
                    800,
                    "writer {w}: every fact at the end"
                );
                added
            })
        });
        let mut added = 0;
        for writer in writers.collect::<Vec<_>>() {
            added += writer.await.unwrap();
        }
        assert_eq!(added, 800, "{server}: facts counted new");
        let pages = hub_pages(&store, &hub).await;
        assert!(pages.len() >= 3, "{server}: {} pages", pages.len());
        let mut on_pages: Vec<&String> = pages.values().flat_map(|(_, keys)| keys).collect();
        on_pages.sort();
        let before = on_pages.len();
        on_pages.dedup();
        assert_eq!(
            before,
            on_pages.len(),
            "{server}: a key stored on two pages"
        );
        let loaded = store
            .load_facts(std::slice::from_ref(&hub), fixture_now())
            .await
            .unwrap();
        assert_eq!(keys_of(loaded).len(), 800, "{server}: facts loaded");
    }
}

/// A warm instance keeps a hub's full pages (they never change) and reads the hub by its last
/// page alone; right after its own write to the last page it reads nothing. What it holds is
/// checked against the table on every read: another instance's fact on the last page is seen,
/// a hub grown by pages another instance filled is read whole, and a hub that expired and was
/// rebuilt with other facts is never answered from the old pages.
#[tokio::test]
async fn a_warm_instance_reads_a_hub_by_its_last_page_and_still_sees_every_change() {
    for (variable, server) in [(MOTO, "moto"), (DYNALITE, "dynalite")] {
        let counter = RequestCounter::new();
        let meter = CapacityMeter::default();
        let store = new_metered_store(variable, Some(&counter), Some(&meter)).await;
        let hub = unique_name("ami-golden");
        let now = fixture_now();
        let all = hub_facts("launch", 0..400);
        add_in_calls(&store, &hub, &all, 50).await;
        let pages = hub_pages(&store, &hub).await.len();
        assert!(pages >= 4, "{server}: {pages} pages");
        let event = |warm: &DynamoStore, key: String| {
            let warm = warm.clone();
            let hub = hub.clone();
            async move {
                let session = warm.session();
                let added = session
                    .add_facts(&[ResourceFacts {
                        resource: hub.clone(),
                        facts: vec![snapwatch_testkit::fact(&key, HUB_EXPIRY, &key)],
                    }])
                    .await
                    .unwrap();
                let loaded = session
                    .load_facts(std::slice::from_ref(&hub), now)
                    .await
                    .unwrap();
                (
                    added,
                    loaded.into_iter().map(|rf| rf.facts.len()).sum::<usize>(),
                )
            }
        };
        let warm = DynamoStore::new(store.client().clone(), store.table());
        // The first event teaches the instance the hub (its pages are read whole once).
        assert_eq!(event(&warm, "e1#0".into()).await, (1, 401), "{server}");

        counter.reset();
        meter.reset();
        assert_eq!(event(&warm, "e2#0".into()).await, (1, 402), "{server}");
        let requests = counter.by_operation();
        assert_eq!(
            requests.get("BatchGetItem"),
            None,
            "{server}: the hub as the write left it needs no read: {requests:?}"
        );

        // Another instance writes to the last page: a read asks for that page alone.
        let other = DynamoStore::new(store.client().clone(), store.table());
        other
            .add_facts(&[ResourceFacts {
                resource: hub.clone(),
                facts: hub_facts("other", 0..1),
            }])
            .await
            .unwrap();
        counter.reset();
        meter.reset();
        let loaded = warm
            .session()
            .load_facts(std::slice::from_ref(&hub), now)
            .await
            .unwrap();
        assert_eq!(
            keys_of(loaded).len(),
            403,
            "{server}: the other's fact seen"
        );
        assert_eq!(
            counter.by_operation().get("BatchGetItem"),
            Some(&1),
            "{server}"
        );
        let (_, read_units) = meter.units();
        eprintln!("FIGURE {server}: warm read of a {pages}-page hub: {read_units} RCU");
        if server == "dynalite" {
            assert!(
                read_units <= 20.0,
                "{server}: {read_units} RCU: more than the last page was read"
            );
        }

        // The other instance fills the last page and the next: the warm read sees it all.
        let grown = hub_facts("grown", 0..250);
        add_in_calls(&other, &hub, &grown, 50).await;
        assert!(hub_pages(&store, &hub).await.len() > pages, "{server}");
        let loaded = warm
            .session()
            .load_facts(std::slice::from_ref(&hub), now)
            .await
            .unwrap();
        assert_eq!(keys_of(loaded).len(), 653, "{server}: the grown hub whole");
        assert_eq!(event(&warm, "e3#0".into()).await, (1, 654), "{server}");

        // The hub expires and is rebuilt with other facts, as many pages as before (its last
        // page a little emptier, so not full): none of the old pages may come back from memory.
        let before = hub_pages(&store, &hub).await;
        for sk in before.keys().cloned() {
            store
                .client()
                .delete_item()
                .table_name(store.table())
                .key("pk", AttributeValue::S(format!("res#{hub}")))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap();
        }
        // Written by an instance started since, until the hub has as many pages as before:
        // its last page has just begun.
        let rebuilder = DynamoStore::new(store.client().clone(), store.table());
        let rebuilt = hub_facts("rebuilt", 0..2_000);
        let mut written = 0;
        while hub_pages(&store, &hub).await.len() < before.len() {
            rebuilder
                .add_facts(&[ResourceFacts {
                    resource: hub.clone(),
                    facts: rebuilt[written..written + 10].to_vec(),
                }])
                .await
                .unwrap();
            written += 10;
        }
        let loaded = keys_of(
            warm.session()
                .load_facts(std::slice::from_ref(&hub), now)
                .await
                .unwrap(),
        );
        assert_eq!(
            loaded.len(),
            written,
            "{server}: the rebuilt hub, nothing else"
        );
        assert!(
            loaded.iter().all(|k| k.starts_with("rebuilt-")),
            "{server}: an old fact came back"
        );
    }
}

/// Two instances write to a growing hub. When one finds that the page it wrote last has been
/// filled and the other has moved on, it writes to the next page (which exists, so it is counted)
/// without raising the page count first: one failed write and one write. On dynalite, which does
/// not return the page with the failure, a `GetItem` stands in for it, and nothing more.
#[tokio::test]
async fn a_writer_that_finds_its_page_filled_by_another_spares_the_page_count_raise() {
    for (variable, server, expected) in [
        (MOTO, "moto", [("UpdateItem", 2)].as_slice()),
        (
            DYNALITE,
            "dynalite",
            [("GetItem", 1), ("UpdateItem", 2)].as_slice(),
        ),
    ] {
        let counter = RequestCounter::new();
        let store = new_store(variable, Some(&counter)).await;
        let hub = unique_name("sg-default");
        let mover = DynamoStore::new(store.client().clone(), store.table());
        let laggard = DynamoStore::new(store.client().clone(), store.table());
        let write = |instance: &DynamoStore, facts: Vec<snapwatch_core::ports::StoredFact>| {
            let instance = instance.clone();
            let hub = hub.clone();
            async move {
                instance
                    .add_facts(&[ResourceFacts {
                        resource: hub,
                        facts,
                    }])
                    .await
                    .unwrap()
            }
        };
        let facts = hub_facts("launch", 0..1_000);
        let mut next = 0;
        // The mover fills the first page and begins the second.
        while hub_pages(&store, &hub).await.len() < 2 {
            write(&mover, facts[next..next + 10].to_vec()).await;
            next += 10;
        }
        // The laggard learns the hub: its writes go to the second page.
        assert_eq!(write(&laggard, hub_facts("laggard", 0..1)).await, 1);
        // The mover fills the second page and begins the third.
        while hub_pages(&store, &hub).await.len() < 3 {
            write(&mover, facts[next..next + 10].to_vec()).await;
            next += 10;
        }
        counter.reset();
        assert_eq!(
            write(&laggard, hub_facts("laggard", 1..2)).await,
            1,
            "{server}"
        );
        let expected = requests(expected);
        assert_eq!(
            counter.by_operation(),
            expected,
            "{server}: a write that finds its page filled and the next one begun"
        );

        // The mover fills the third page but has not begun the fourth: the laggard is the first
        // to move on. Its write that requires the page fails (one more request than a raise
        // alone would cost; on DynamoDB and moto the failure itself says there is no page), then
        // it raises the count and creates the page.
        let page_bytes = |store: &DynamoStore| {
            let store = store.clone();
            let hub = hub.clone();
            async move {
                let item = store
                    .client()
                    .get_item()
                    .table_name(store.table())
                    .key("pk", AttributeValue::S(format!("res#{hub}")))
                    .key("sk", AttributeValue::S("facts#2".into()))
                    .consistent_read(true)
                    .send()
                    .await
                    .unwrap()
                    .item
                    .unwrap_or_default();
                item.get("bytes")
                    .and_then(|v| v.as_n().ok())
                    .map_or(0, |n| n.parse::<u64>().unwrap())
            }
        };
        while page_bytes(&store).await < 48 * 1024 {
            write(&mover, facts[next..next + 10].to_vec()).await;
            next += 10;
        }
        assert_eq!(hub_pages(&store, &hub).await.len(), 3, "{server}");
        let first_mover = requests(if server == "moto" {
            &[("UpdateItem", 4)]
        } else {
            &[("GetItem", 2), ("UpdateItem", 4)]
        });
        counter.reset();
        assert_eq!(
            write(&laggard, hub_facts("laggard", 2..3)).await,
            1,
            "{server}"
        );
        assert_eq!(
            counter.by_operation(),
            first_mover,
            "{server}: the first to move on to a new page"
        );
        assert_eq!(hub_pages(&store, &hub).await.len(), 4, "{server}");
        let loaded = laggard
            .load_facts(std::slice::from_ref(&hub), fixture_now())
            .await
            .unwrap();
        assert_eq!(keys_of(loaded).len(), next + 3, "{server}: every fact");
    }
}

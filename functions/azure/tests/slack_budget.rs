//! Retries do not stack on Azure: the handler's delivery rounds are the only retry budget, and
//! the Slack sink the handler is built with (`handler::slack_sink`) posts once per round. A
//! local receiver stands in for the webhook and counts the POSTs one finding costs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use snapwatch_azure::arm::{LookupError, ResourceReader};
use snapwatch_azure::handler::{
    app, slack_sink, Alerts, AppState, RetryBudget, EVENT_HUB_FUNCTION,
};
use snapwatch_azure::table::{ExpiryPurge, PurgeReport};
use snapwatch_core::engine::Detector;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{FixedClock, StoreError};
use snapwatch_core::Config;
use snapwatch_slack::{SlackSink, WebhookUrl};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const BATCH_A: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_a.json");
const BATCH_B: &str = include_str!("../../../tests/fixtures/azure/functions/chain_batch_b.json");
const ARM_RESOURCES: &str =
    include_str!("../../../tests/fixtures/azure/functions/arm_resources.json");

/// ARM as a map of lower-cased resource id → body.
struct FixtureArm(HashMap<String, Value>);

impl ResourceReader for FixtureArm {
    async fn read(&self, resource_id: &str) -> Result<Option<Value>, LookupError> {
        Ok(self.0.get(&resource_id.to_ascii_lowercase()).cloned())
    }
}

struct NoPurge;

impl ExpiryPurge for NoPurge {
    async fn purge(
        &self,
        _now: chrono::DateTime<Utc>,
        _max_rows: usize,
    ) -> Result<PurgeReport, StoreError> {
        Ok(PurgeReport::default())
    }
}

/// (status, Retry-After) of one scripted answer.
type Reply = (u16, Option<&'static str>);

/// A webhook that answers scripted replies, then `fallback`, and counts the POSTs.
#[derive(Clone)]
struct Webhook {
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: u16,
    posts: Arc<Mutex<usize>>,
}

async fn hook(State(webhook): State<Webhook>) -> impl IntoResponse {
    *webhook.posts.lock().unwrap() += 1;
    let (status, retry_after) = webhook
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((webhook.fallback, None));
    let mut headers = HeaderMap::new();
    if let Some(secs) = retry_after {
        headers.insert("retry-after", secs.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, "answer")
}

async fn start_webhook(
    script: Vec<(u16, Option<&'static str>)>,
    fallback: u16,
) -> (Webhook, String) {
    let webhook = Webhook {
        script: Arc::new(Mutex::new(script.into())),
        fallback,
        posts: Arc::default(),
    };
    let app = Router::new()
        .route("/services/T/B/X", post(hook))
        .with_state(webhook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (webhook, format!("http://{addr}/services/T/B/X"))
}

type SlackState = AppState<MemoryStore, FixtureArm, SlackSink, NoPurge>;

fn state(url: &str, attempts: u32) -> Arc<SlackState> {
    let arm: HashMap<String, Value> = serde_json::from_str(ARM_RESOURCES).unwrap();
    let sink = slack_sink(WebhookUrl::parse(url).unwrap()).unwrap();
    Arc::new(AppState {
        purger: NoPurge,
        purge_max_rows: 100,
        detector: Detector::new(MemoryStore::new(), Config::default()),
        reader: FixtureArm(
            arm.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        alerts: Alerts::Sink(sink),
        clock: Arc::new(FixedClock(
            Utc.with_ymd_and_hms(2024, 4, 15, 12, 0, 0).unwrap(),
        )),
        retry: RetryBudget {
            attempts,
            backoff: Duration::from_millis(1),
        },
        deadline: Duration::from_secs(240),
        responder: None,
    })
}

/// The two halves of one exposed-restore chain in one Event Hubs batch: one finding.
async fn invoke_chain(state: Arc<SlackState>) -> Value {
    let request = Request::post(format!("/{EVENT_HUB_FUNCTION}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"Data": {"messages": [BATCH_B, BATCH_A]}, "Metadata": {}}).to_string(),
        ))
        .unwrap();
    let response = app(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_failing_webhook_sees_at_most_the_handlers_attempts_per_finding() {
    let (webhook, url) = start_webhook(vec![], 500).await;
    let body = invoke_chain(state(&url, 4)).await;
    let summary = body["Logs"][0].as_str().unwrap_or_default();
    assert!(summary.contains("findings=1 sent=0"), "{body}");
    // 4 delivery rounds × 1 POST, not 4 rounds × the sink's own 3 attempts.
    assert_eq!(*webhook.posts.lock().unwrap(), 4);
    let rejects = body["Outputs"]["rejects"].as_str().unwrap_or_default();
    assert!(
        rejects.contains("undelivered") && rejects.contains("HTTP 500"),
        "{rejects}"
    );
}

#[tokio::test]
async fn a_short_retry_after_from_slack_is_waited_out_by_the_next_round() {
    let (webhook, url) = start_webhook(vec![(429, Some("1"))], 200).await;
    let started = Instant::now();
    let body = invoke_chain(state(&url, 4)).await;
    let summary = body["Logs"][0].as_str().unwrap_or_default();
    assert!(summary.contains("findings=1 sent=1"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(*webhook.posts.lock().unwrap(), 2);
}

//! The Slack sink against a local HTTP receiver that behaves like a Slack webhook: records
//! requests and answers 200, 429 with Retry-After, 500 or 400 on demand.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::{TimeZone, Utc};
use snapwatch_core::ports::{AlertSink, SinkError};
use snapwatch_core::{ChainEvent, Cloud, Finding, Severity};
use snapwatch_slack::{RetryPolicy, SlackSink, WebhookUrl};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (status, Retry-After, body) answered to successive requests; 200 once the script runs out.
type Reply = (u16, Option<&'static str>, &'static str);

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn hook(State(rx): State<Receiver>, body: String) -> impl IntoResponse {
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    rx.bodies.lock().unwrap().push(value);
    let (status, retry_after, text) = rx
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, None, "ok"));
    let mut headers = HeaderMap::new();
    if let Some(secs) = retry_after {
        headers.insert("retry-after", secs.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, text)
}

async fn start(script: Vec<Reply>) -> (Receiver, String) {
    let rx = Receiver::default();
    rx.script.lock().unwrap().extend(script);
    let app = Router::new()
        .route("/services/T000/B000/XXXX", post(hook))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rx, format!("http://{addr}/services/T000/B000/XXXX"))
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        max_wait: Duration::from_secs(2),
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
    }
}

fn finding() -> Finding {
    let t = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    Finding {
        id: "sw-0123456789abcdef01234567".into(),
        rule: snapwatch_core::rules::Rule::ChainExposedRestore,
        severity: Severity::Critical,
        cloud: Cloud::Aws,
        account: "111122223333".into(),
        region: Some("us-east-1".into()),
        snapshot: "snap-0d1e2f3a4b5c6d7e8".into(),
        resources: vec!["i-1".into(), "sg-1".into(), "snap-0d1e2f3a4b5c6d7e8".into()],
        actors: vec!["<!channel> @here <https://evil.example|click>".into()],
        techniques: vec!["T1578.001".into(), "T1578.002".into()],
        events: vec![ChainEvent {
            id: "e1".into(),
            name: "RunInstances".into(),
            time: t,
            actor: Some("mallory".into()),
            source_ip: None,
        }],
        first_seen: t,
        last_seen: t,
        title: "instance i-1 restored from a snapshot and opened to the internet".into(),
        summary: "summary".into(),
        next_steps: vec!["Isolate the instance.".into()],
        found_by: snapwatch_core::FoundBy::Events,
        response: None,
    }
}

fn sink(url: &str) -> SlackSink {
    SlackSink::new(WebhookUrl::parse(url).unwrap(), policy()).unwrap()
}

#[tokio::test]
async fn posts_block_kit_with_attacker_text_escaped() {
    let (rx, url) = start(vec![]).await;
    sink(&url).send(&finding()).await.unwrap();
    let bodies = rx.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    let text = bodies[0].to_string();
    assert!(bodies[0]["blocks"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
    assert!(
        !text.contains("<!channel>"),
        "mention must be escaped: {text}"
    );
    assert!(
        !text.contains("<https://evil.example"),
        "link injection must be escaped"
    );
    assert!(text.contains("&lt;!channel&gt;"));
}

#[tokio::test]
async fn waits_out_a_429_with_retry_after_then_delivers_once() {
    let (rx, url) = start(vec![(429, Some("1"), "rate_limited")]).await;
    let started = std::time::Instant::now();
    sink(&url).send(&finding()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(rx.bodies.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_as_retryable() {
    let (rx, url) = start(vec![(429, Some("120"), "rate_limited")]).await;
    let err = sink(&url).send(&finding()).await.unwrap_err();
    match err {
        SinkError::Retryable {
            retry_after_secs, ..
        } => assert_eq!(retry_after_secs, Some(120)),
        other => panic!("expected retryable, got {other:?}"),
    }
    assert_eq!(
        rx.bodies.lock().unwrap().len(),
        1,
        "no waiting beyond max_wait"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_retryable() {
    let (rx, url) = start(vec![
        (500, None, "oops"),
        (503, None, "oops"),
        (500, None, "oops"),
    ])
    .await;
    let err = sink(&url).send(&finding()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(rx.bodies.lock().unwrap().len(), 3);
    let (rx, url) = start(vec![(500, None, "oops")]).await;
    sink(&url).send(&finding()).await.unwrap();
    assert_eq!(
        rx.bodies.lock().unwrap().len(),
        2,
        "recovered on the second attempt"
    );
}

#[tokio::test]
async fn a_4xx_is_permanent_and_not_retried() {
    let (rx, url) = start(vec![(400, None, "invalid_payload")]).await;
    let err = sink(&url).send(&finding()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("invalid_payload"), "{err}");
    assert_eq!(rx.bodies.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retryable_and_never_leaks_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/SECRETTOKEN");
    let err = sink(&url).send(&finding()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");
    assert!(!format!("{:?}", WebhookUrl::parse(&url).unwrap()).contains("SECRETTOKEN"));
}

#[test]
fn webhook_must_be_https_except_on_loopback() {
    assert!(WebhookUrl::parse("https://hooks.slack.com/services/T/B/X").is_ok());
    assert!(WebhookUrl::parse("http://hooks.slack.com/services/T/B/X").is_err());
    assert!(WebhookUrl::parse("http://127.0.0.1:9/x").is_ok());
    assert!(WebhookUrl::parse("not a url").is_err());
}

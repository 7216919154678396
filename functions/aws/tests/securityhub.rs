//! The Security Hub sink: findings imported on moto (started by tests/servers/with-servers.sh)
//! and read back with GetFindings, a re-import that updates instead of duplicating, and the
//! partial failures of a 200 answer (`FailedFindings`) retried or reported, from a local stub.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::Duration as ChronoDuration;
use common::*;
use snapwatch_aws::handler::{App, HandlerError, Status};
use snapwatch_aws::securityhub::{SecurityHubClient, SecurityHubSink};
use snapwatch_aws_inventory::RetryPolicy;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::{AlertSink, FixedClock, SinkError};
use snapwatch_core::{Config, Finding};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const REGION: &str = "us-east-1";

fn credentials() -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new("testing", "testing", None, None, "snapwatch-tests"),
    )
}

fn client(endpoint: &str) -> SecurityHubClient {
    SecurityHubClient::new(
        reqwest::Client::new(),
        credentials(),
        REGION,
        Some(endpoint),
    )
    .expect("valid endpoint")
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn sink(endpoint: &str, account: &str, clock: FixedClock) -> SecurityHubSink {
    SecurityHubSink::new(client(endpoint), account, Arc::new(clock)).with_retry(quick_retry())
}

/// The chain fixtures through the handler with only a Security Hub sink (plus a recording SNS
/// sink, to see that each sink keeps its own claim).
fn app(hub: SecurityHubSink) -> App<MemoryStore, RecordingDeadLetter, MemorySink, MemorySink> {
    App {
        store: MemoryStore::new(),
        config: Config::default(),
        dead_letter: RecordingDeadLetter::default(),
        sns: Some(MemorySink::named("sns")),
        slack: None,
        securityhub: Some(hub),
        responder: None,
        clock: Arc::new(FixedClock(fixture_now())),
    }
}

/// Every finding moto holds (it ignores filters), following NextToken.
async fn all_findings(client: &SecurityHubClient) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = serde_json::json!({ "MaxResults": 100 });
        if let Some(t) = &token {
            request["NextToken"] = t.clone().into();
        }
        let (status, body) = client
            .post("/findings", &request.to_string())
            .await
            .expect("GetFindings");
        assert_eq!(status, 200, "GetFindings: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        all.extend(v["Findings"].as_array().cloned().unwrap_or_default());
        token = v["NextToken"]
            .as_str()
            .map(str::to_owned)
            .filter(|t| !t.is_empty());
        if token.is_none() {
            return all;
        }
    }
}

async fn with_id(client: &SecurityHubClient, id: &str) -> Vec<serde_json::Value> {
    all_findings(client)
        .await
        .into_iter()
        .filter(|f| f["Id"] == id)
        .collect()
}

#[tokio::test]
async fn a_chain_is_imported_into_security_hub_and_read_back_and_a_reimport_updates_it() {
    let moto = server_endpoint("SNAPWATCH_MOTO_ENDPOINT");
    let account = moto_lister().account_id(REGION).await.expect("STS account");
    // As the functions build it: the account is read from STS at the first delivery.
    let hub = SecurityHubSink::resolving_account(
        client(&moto),
        moto_lister(),
        Arc::new(FixedClock(fixture_now())),
    )
    .with_retry(quick_retry());
    let app = app(hub);
    let mut last = None;
    for event in single_instance_chain() {
        last = Some(app.handle(&event).await.expect("handled"));
    }
    let outcome = last.expect("events");
    assert_eq!(outcome.status, Status::Processed);
    let imported = outcome.sent.get("securityhub").cloned().unwrap_or_default();
    assert!(!imported.is_empty(), "nothing imported: {outcome:?}");
    let reader = client(&moto);
    for id in &imported {
        let found = with_id(&reader, id).await;
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        let f = &found[0];
        assert_eq!(
            f["ProductArn"],
            format!("arn:aws:securityhub:{REGION}:{account}:product/{account}/default")
        );
        assert_eq!(f["AwsAccountId"], account.as_str());
        assert_eq!(f["SchemaVersion"], "2018-10-08");
        if f["GeneratorId"] == "snapwatch/chain.exposed-restore" {
            assert_eq!(f["Severity"]["Label"], "CRITICAL");
            let types: Vec<&str> = f["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Type"].as_str().unwrap())
                .collect();
            for expected in ["AwsEc2Snapshot", "AwsEc2Instance", "AwsEc2SecurityGroup"] {
                assert!(types.contains(&expected), "{expected} missing in {types:?}");
            }
            assert!(f["Remediation"]["Recommendation"]["Text"]
                .as_str()
                .is_some_and(|t| !t.is_empty()));
        }
    }
    // The same findings went to SNS: take the exposed restore as the engine made it.
    let mut again: Finding = app
        .sns
        .as_ref()
        .unwrap()
        .sent()
        .into_iter()
        .find(|f| f.rule == "chain.exposed-restore")
        .expect("a chain.exposed-restore finding");
    assert!(imported.contains(&again.id));
    // A later evaluation (the baseline function, or after the claim window) imports it again.
    again.last_seen = fixture_now() + ChronoDuration::hours(1);
    let later = sink(
        &moto,
        &account,
        FixedClock(fixture_now() + ChronoDuration::hours(2)),
    );
    later.send(&again).await.expect("re-import");
    let found = with_id(&reader, &again.id).await;
    assert_eq!(
        found.len(),
        1,
        "a re-import must update, not duplicate: {found:?}"
    );
    assert_eq!(found[0]["UpdatedAt"], "2025-03-10T14:00:00.000Z");
    assert_eq!(found[0]["LastObservedAt"], "2025-03-10T13:00:00.000Z");
}

/// A finding with the given id, as the engine would re-evaluate it (only the id matters to
/// Security Hub's update).
fn placeholder(id: &str) -> Finding {
    Finding {
        id: id.to_string(),
        rule: snapwatch_core::rules::Rule::ChainExposedRestore,
        severity: snapwatch_core::Severity::Critical,
        cloud: snapwatch_core::Cloud::Aws,
        account: "123456789012".into(),
        region: Some(REGION.into()),
        snapshot: "snap-0123456789abcdef0".into(),
        resources: vec!["i-0123456789abcdef0".into()],
        actors: vec![],
        techniques: vec!["T1578.001".into()],
        events: vec![],
        first_seen: fixture_now(),
        last_seen: fixture_now(),
        title: "re-evaluated".into(),
        summary: "re-evaluated".into(),
        next_steps: vec![],
        found_by: snapwatch_core::FoundBy::Baseline,
        response: None,
    }
}

/// A Security Hub stand-in: answers the scripted (status, body) pairs in order, then success;
/// records each request's Authorization header and body.
#[derive(Clone, Default)]
struct StubHub {
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    requests: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl StubHub {
    async fn start(script: Vec<(u16, String)>) -> (StubHub, String) {
        let stub = StubHub::default();
        stub.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/findings/import", post(import))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, format!("http://{addr}"))
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn import(
    State(stub): State<StubHub>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, String) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    stub.requests.lock().unwrap().push((
        authorization,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    ));
    let (status, body) = stub.script.lock().unwrap().pop_front().unwrap_or((
        200,
        r#"{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}"#.to_string(),
    ));
    (axum::http::StatusCode::from_u16(status).unwrap(), body)
}

fn failed(id: &str, code: &str) -> (u16, String) {
    (
        200,
        serde_json::json!({
            "FailedCount": 1,
            "SuccessCount": 0,
            "FailedFindings": [{ "Id": id, "ErrorCode": code, "ErrorMessage": format!("{code} from the stub") }],
        })
        .to_string(),
    )
}

#[tokio::test]
async fn a_throttled_finding_in_failed_findings_is_retried_until_imported() {
    let f = placeholder("sw-throttled000000000000000");
    let (stub, endpoint) = StubHub::start(vec![
        failed(&f.id, "ThrottlingException"),
        failed(&f.id, "InternalException"),
    ])
    .await;
    sink(&endpoint, "123456789012", FixedClock(fixture_now()))
        .send(&f)
        .await
        .expect("imported on the third attempt");
    assert_eq!(stub.count(), 3);
    let requests = stub.requests.lock().unwrap().clone();
    for (authorization, body) in &requests {
        assert!(
            authorization.contains("/us-east-1/securityhub/aws4_request"),
            "unsigned or wrongly scoped: {authorization}"
        );
        assert_eq!(body["Findings"][0]["Id"], f.id.as_str());
    }
}

#[tokio::test]
async fn persistent_throttling_is_a_retryable_error_and_a_rejection_is_permanent() {
    let f = placeholder("sw-rejected00000000000000000");
    let (stub, endpoint) = StubHub::start(vec![failed(&f.id, "ThrottlingException"); 5]).await;
    let err = sink(&endpoint, "123456789012", FixedClock(fixture_now()))
        .send(&f)
        .await
        .expect_err("still throttled");
    assert!(
        matches!(
            err,
            SinkError::Retryable {
                sink: "securityhub",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(stub.count(), 3, "the retry budget is 3 attempts");

    let (stub, endpoint) = StubHub::start(vec![failed(&f.id, "InvalidInput")]).await;
    let err = sink(&endpoint, "123456789012", FixedClock(fixture_now()))
        .send(&f)
        .await
        .expect_err("rejected");
    match &err {
        SinkError::Permanent { sink, message } => {
            assert_eq!(*sink, "securityhub");
            assert!(
                message.contains("InvalidInput") && message.contains(&f.id),
                "{message}"
            );
        }
        other => panic!("expected a permanent rejection, got {other}"),
    }
    assert_eq!(stub.count(), 1, "a permanent rejection is not retried");

    let (stub, endpoint) = StubHub::start(vec![(
        403,
        r#"{"Code":"AccessDeniedException","Message":"not allowed"}"#.to_string(),
    )])
    .await;
    let err = sink(&endpoint, "123456789012", FixedClock(fixture_now()))
        .send(&f)
        .await
        .expect_err("denied");
    assert!(matches!(err, SinkError::Permanent { .. }), "{err}");
    assert_eq!(stub.count(), 1);
}

#[tokio::test]
async fn moto_reports_an_invalid_finding_in_failed_findings() {
    // The same partial-failure shape from moto itself: a finding without resources.
    let moto = server_endpoint("SNAPWATCH_MOTO_ENDPOINT");
    let body = serde_json::json!({ "Findings": [{ "Id": "sw-invalid", "Resources": [] }] });
    let (status, text) = client(&moto)
        .post("/findings/import", &body.to_string())
        .await
        .expect("BatchImportFindings");
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["FailedCount"], 1);
    assert_eq!(v["FailedFindings"][0]["ErrorCode"], "InvalidInput");
}

#[tokio::test]
async fn a_security_hub_outage_retries_the_event_without_resending_to_other_sinks() {
    let (stub, endpoint) = StubHub::start(vec![(503, String::new()); 3]).await;
    let app = app(sink(&endpoint, "123456789012", FixedClock(fixture_now())));
    let sns_sent = || app.sns.as_ref().unwrap().sent().len();
    let mut failed_once = false;
    for event in single_instance_chain() {
        let err = match app.handle(&event).await {
            Ok(_) => continue,
            Err(err) => err,
        };
        // The first event that yields a finding meets the outage (3 attempts, all 503).
        assert!(
            !failed_once,
            "only the first import meets the outage: {err}"
        );
        failed_once = true;
        assert!(matches!(err, HandlerError::SinkUnavailable { .. }), "{err}");
        assert!(err.is_retryable());
        let sns_first = sns_sent();
        assert!(
            sns_first > 0,
            "SNS got the findings before Security Hub failed"
        );
        // The event is redelivered: Security Hub is back.
        let outcome = app.handle(&event).await.expect("retried");
        assert!(outcome.sent.contains_key("securityhub"), "{outcome:?}");
        assert!(
            !outcome.sent.contains_key("sns"),
            "SNS must not be sent twice: {outcome:?}"
        );
        assert_eq!(sns_sent(), sns_first);
    }
    assert!(failed_once, "no finding met the outage");
    assert!(stub.count() > 3);
}

//! The opt-in response against moto's EC2 and RDS: each exposure a chain adds is undone exactly
//! (public and outside shares, a DB snapshot, an AMI launch permission, an opened ingress rule),
//! what someone else added stays, a dry run and an exempt tag change nothing, and redelivery or
//! eight racing handlers act once (chain state in dynalite). Started by
//! tests/servers/with-servers.sh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use snapwatch_aws::dynamo::DynamoStore;
use snapwatch_aws::handler::{App, SessionStore, Status};
use snapwatch_aws_inventory::{AwsResponder, QueryClient, RetryPolicy};
use snapwatch_core::config::ResponseConfig;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::ports::FixedClock;
use snapwatch_core::{ActionResult, Config, Finding, ResponseMode};
use std::sync::Arc;

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const DYNALITE: &str = "SNAPWATCH_DYNALITE_ENDPOINT";
/// moto's account.
const OWN: &str = "123456789012";
const PARTNER: &str = "444455556666";
const OUTSIDE: &str = "999988887777";
const SOMEONE_ELSE: &str = "222233334444";
/// The account and region the fixtures were written in; retargeted to moto's.
const FIXTURE_ACCOUNT: &str = "111122223333";

fn query_client() -> QueryClient {
    let credentials =
        aws_credential_types::Credentials::new("testing", "testing", None, None, "snapwatch-tests");
    QueryClient::new(
        reqwest::Client::new(),
        aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        Some(server_endpoint(MOTO)),
    )
    .with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
    })
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn config(modes: &str) -> Config {
    let mut config = Config::default();
    config.response.modes = ResponseConfig::parse_modes(modes).unwrap();
    config.trust.accounts = vec![PARTNER.into()];
    config
}

fn app<St: SessionStore>(
    store: St,
    modes: &str,
) -> App<St, RecordingDeadLetter, MemorySink, MemorySink> {
    App {
        store,
        config: config(modes),
        dead_letter: RecordingDeadLetter::default(),
        sns: Some(MemorySink::named("sns")),
        slack: None,
        securityhub: None,
        responder: Some(AwsResponder::new(query_client(), OWN)),
        clock: Arc::new(FixedClock(now())),
    }
}

/// A fixture as an EventBridge event in moto's account and `region`, a minute ago, with a fresh
/// event id, and every `(from, to)` replaced in its text (resource ids).
fn event(name: &str, region: &str, replace: &[(&str, &str)]) -> String {
    let mut text = fixture(name).replace(FIXTURE_ACCOUNT, OWN);
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["awsRegion"] = region.into();
    record["eventID"] = unique_name("ev").into();
    retimed(
        &envelope(&record.to_string()),
        now() - Duration::minutes(1),
        None,
    )
}

fn moto(region: &str) -> Moto {
    Moto {
        lister: moto_lister(),
        region: region.into(),
    }
}

/// Who may create volumes from the snapshot: (`group all`?, user ids, sorted).
async fn snapshot_grants(m: &Moto, snapshot: &str) -> (bool, Vec<String>) {
    let body = m
        .ec2(
            "DescribeSnapshotAttribute",
            &[
                ("SnapshotId", snapshot),
                ("Attribute", "createVolumePermission"),
            ],
        )
        .await;
    grants_in(&body)
}

fn grants_in(body: &str) -> (bool, Vec<String>) {
    let public = body.contains("<group>all</group>");
    let mut accounts: Vec<String> = body
        .split("<userId>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</userId>").map(|(id, _)| id.to_string()))
        .collect();
    accounts.sort();
    (public, accounts)
}

async fn add_snapshot_grants(m: &Moto, snapshot: &str, public: bool, accounts: &[&str]) {
    let mut params: Vec<(String, String)> = vec![
        ("SnapshotId".into(), snapshot.into()),
        ("Attribute".into(), "createVolumePermission".into()),
        ("OperationType".into(), "add".into()),
    ];
    if public {
        params.push(("UserGroup.1".into(), "all".into()));
    }
    for (n, a) in accounts.iter().enumerate() {
        params.push((format!("UserId.{}", n + 1), (*a).into()));
    }
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    m.ec2("ModifySnapshotAttribute", &params).await;
}

/// The one alert the app sent, with its response.
fn the_alert(
    app: &App<impl SessionStore, RecordingDeadLetter, MemorySink, MemorySink>,
    rule: &str,
) -> Finding {
    let sent: Vec<Finding> = app
        .sns
        .as_ref()
        .unwrap()
        .sent()
        .into_iter()
        .filter(|f| f.rule == rule)
        .collect();
    assert_eq!(sent.len(), 1, "one {rule} alert: {sent:?}");
    sent.into_iter().next().unwrap()
}

fn results(finding: &Finding) -> Vec<ActionResult> {
    finding
        .response
        .as_ref()
        .expect("the alert carries the response")
        .actions
        .iter()
        .map(|a| a.result)
        .collect()
}

#[tokio::test]
async fn a_public_share_is_removed_and_an_account_someone_else_added_stays() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    // The attacker's call, then someone else's share of the same snapshot.
    add_snapshot_grants(&m, &snapshot, true, &[]).await;
    add_snapshot_grants(&m, &snapshot, false, &[SOMEONE_ELSE]).await;
    let app = app(MemoryStore::new(), "snapshot.public=enforce");
    let raw = event(
        "modify_snapshot_attribute_group_all.json",
        region,
        &[("snap-0f1e2d3c4b5a69788", &snapshot)],
    );
    let outcome = app.handle(&raw).await.unwrap();
    assert_eq!(outcome.status, Status::Processed);
    assert_eq!(outcome.responded.len(), 1);
    assert_eq!(
        snapshot_grants(&m, &snapshot).await,
        (false, vec![SOMEONE_ELSE.to_string()])
    );
    let alert = the_alert(&app, "snapshot.public");
    let response = alert.response.as_ref().unwrap();
    assert_eq!(response.mode, ResponseMode::Enforce);
    assert_eq!(results(&alert), vec![ActionResult::Done]);
    assert_eq!(response.actions[0].call, "ec2:ModifySnapshotAttribute");
    assert_eq!(response.actions[0].target, snapshot);
}

#[tokio::test]
async fn an_outside_share_loses_only_the_outside_account() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    add_snapshot_grants(&m, &snapshot, false, &[OUTSIDE, PARTNER]).await;
    add_snapshot_grants(&m, &snapshot, false, &[SOMEONE_ELSE]).await;
    let app = app(MemoryStore::new(), "snapshot.shared-external=enforce");
    let mut record: serde_json::Value =
        serde_json::from_str(&fixture("modify_snapshot_attribute_add_accounts.json")).unwrap();
    record["requestParameters"]["snapshotId"] = snapshot.clone().into();
    record["requestParameters"]["createVolumePermission"]["add"]["items"] =
        serde_json::json!([{ "userId": OUTSIDE }, { "userId": PARTNER }]);
    let mut raw: serde_json::Value = serde_json::from_str(&envelope(&record.to_string())).unwrap();
    raw["detail"]["recipientAccountId"] = OWN.into();
    raw["detail"]["userIdentity"]["accountId"] = OWN.into();
    raw["detail"]["awsRegion"] = region.into();
    raw["detail"]["eventID"] = unique_name("ev").into();
    let raw = retimed(&raw.to_string(), now() - Duration::minutes(1), None);
    app.handle(&raw).await.unwrap();
    assert_eq!(
        snapshot_grants(&m, &snapshot).await,
        (false, vec![SOMEONE_ELSE.to_string(), PARTNER.to_string()])
    );
    assert_eq!(
        results(&the_alert(&app, "snapshot.shared-external")),
        vec![ActionResult::Done]
    );
}

#[tokio::test]
async fn a_public_db_snapshot_stops_being_restorable_by_all() {
    let region = "eu-west-3";
    let m = moto(region);
    let name = unique_name("payroll").to_ascii_lowercase();
    let arn = m.db_snapshot(&name, DbSnapshotAccess::Public).await;
    let app = app(MemoryStore::new(), "snapshot.public=enforce");
    let mut record: serde_json::Value =
        serde_json::from_str(&fixture("modify_db_snapshot_attribute_public.json")).unwrap();
    record["requestParameters"]["dBSnapshotIdentifier"] = name.clone().into();
    record["requestParameters"]["valuesToAdd"] = serde_json::json!(["all"]);
    record["responseElements"]["dBSnapshotIdentifier"] = name.clone().into();
    record["responseElements"]["dBSnapshotAttributes"] =
        serde_json::json!([{ "attributeName": "restore", "attributeValues": ["all"] }]);
    let text = record.to_string().replace(FIXTURE_ACCOUNT, OWN);
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["awsRegion"] = region.into();
    record["eventID"] = unique_name("ev").into();
    let raw = retimed(
        &envelope(&record.to_string()),
        now() - Duration::minutes(1),
        None,
    );
    app.handle(&raw).await.unwrap();
    let alert = the_alert(&app, "snapshot.public");
    assert_eq!(results(&alert), vec![ActionResult::Done], "{alert:?}");
    assert_eq!(alert.response.unwrap().actions[0].target, arn);
    let attributes = m
        .rds(
            "DescribeDBSnapshotAttributes",
            &[("DBSnapshotIdentifier", &name)],
        )
        .await;
    assert!(
        !attributes.contains("<AttributeValue>all</AttributeValue>"),
        "{attributes}"
    );
}

#[tokio::test]
async fn an_ami_launch_permission_is_removed() {
    let region = "eu-west-3";
    let m = moto(region);
    let instance = tag(
        &m.ec2(
            "RunInstances",
            &[
                ("ImageId", "ami-03cf127a"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
            ],
        )
        .await,
        "instanceId",
    );
    let image = tag(
        &m.ec2(
            "CreateImage",
            &[("InstanceId", &instance), ("Name", &unique_name("img"))],
        )
        .await,
        "imageId",
    );
    m.ec2(
        "ModifyImageAttribute",
        &[
            ("ImageId", &image),
            ("Attribute", "launchPermission"),
            ("OperationType", "add"),
            ("UserGroup.1", "all"),
        ],
    )
    .await;
    let app = app(MemoryStore::new(), "snapshot.public=enforce");
    let raw = event(
        "modify_image_attribute_public.json",
        region,
        &[("ami-0a1b2c3d4e5f60718", &image)],
    );
    app.handle(&raw).await.unwrap();
    assert_eq!(
        results(&the_alert(&app, "snapshot.public")),
        vec![ActionResult::Done]
    );
    let attribute = m
        .ec2(
            "DescribeImageAttribute",
            &[("ImageId", &image), ("Attribute", "launchPermission")],
        )
        .await;
    assert!(!grants_in(&attribute).0, "{attribute}");
}

/// The ingress rules of `group` as `(id, port, cidr)`.
async fn ingress_rules(m: &Moto, group: &str) -> Vec<(String, String, String)> {
    let body = m
        .ec2(
            "DescribeSecurityGroupRules",
            &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", group)],
        )
        .await;
    let mut rules = Vec::new();
    for item in body.split("<item>").skip(1) {
        if item.contains("<isEgress>true</isEgress>") || !item.contains("<securityGroupRuleId>") {
            continue;
        }
        let cidr = if item.contains("<cidrIpv4>") {
            tag(item, "cidrIpv4")
        } else {
            String::new()
        };
        rules.push((
            tag(item, "securityGroupRuleId"),
            tag(item, "fromPort"),
            cidr,
        ));
    }
    rules.sort();
    rules
}

#[tokio::test]
async fn the_opened_ingress_rule_is_revoked_by_its_id_and_nothing_else() {
    let region = "eu-west-3";
    let m = moto(region);
    let group = tag(
        &m.ec2(
            "CreateSecurityGroup",
            &[
                ("GroupName", &unique_name("web")),
                ("GroupDescription", "snapwatch response test"),
            ],
        )
        .await,
        "groupId",
    );
    let authorize = |port: &'static str, cidr: &'static str| {
        let group = group.clone();
        let m = &m;
        async move {
            m.ec2(
                "AuthorizeSecurityGroupIngress",
                &[
                    ("GroupId", &group),
                    ("IpPermissions.1.IpProtocol", "tcp"),
                    ("IpPermissions.1.FromPort", port),
                    ("IpPermissions.1.ToPort", port),
                    ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
                ],
            )
            .await;
        }
    };
    authorize("22", "0.0.0.0/0").await;
    let opened = ingress_rules(&m, &group).await;
    assert_eq!(opened.len(), 1);
    let opened_id = opened[0].0.clone();
    // Someone else's rules on the same group, later: not the chain's.
    authorize("443", "0.0.0.0/0").await;
    authorize("22", "203.0.113.0/24").await;

    let app = app(MemoryStore::new(), "chain.exposed-restore=enforce");
    let replace = [
        ("sg-0123abcd4567ef890", group.as_str()),
        ("sgr-0a1a1a1a1a1a1a1a1", opened_id.as_str()),
        ("us-east-1", region),
    ];
    for raw in single_instance_chain() {
        let mut text = raw.replace(FIXTURE_ACCOUNT, OWN);
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        let text = retimed(&text, now() - Duration::minutes(1), None);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["detail"]["eventID"] = unique_name("ev").into();
        app.handle(&v.to_string()).await.unwrap();
    }
    let alert = the_alert(&app, "chain.exposed-restore");
    let response = alert.response.as_ref().unwrap();
    // The fixture's call also opened ::/0 (sgr-0b2b…, not on moto): gone, reported as such.
    let mut by_target: Vec<(String, ActionResult)> = response
        .actions
        .iter()
        .map(|a| (a.change.clone(), a.result))
        .collect();
    by_target.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        by_target.contains(&(
            format!("revoke ingress rule {opened_id}"),
            ActionResult::Done
        )),
        "{response:?}"
    );
    assert!(
        by_target
            .iter()
            .all(|(change, result)| change.contains(&opened_id)
                || *result == ActionResult::SkippedGone),
        "{response:?}"
    );
    let mut left: Vec<(String, String)> = ingress_rules(&m, &group)
        .await
        .into_iter()
        .map(|(_, port, cidr)| (port, cidr))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            ("22".to_string(), "203.0.113.0/24".to_string()),
            ("443".to_string(), "0.0.0.0/0".to_string())
        ]
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_says_which_call_it_would_make() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    add_snapshot_grants(&m, &snapshot, true, &[]).await;
    let app = app(MemoryStore::new(), "snapshot.public=dry-run");
    let raw = event(
        "modify_snapshot_attribute_group_all.json",
        region,
        &[("snap-0f1e2d3c4b5a69788", &snapshot)],
    );
    app.handle(&raw).await.unwrap();
    assert_eq!(snapshot_grants(&m, &snapshot).await, (true, vec![]));
    let alert = the_alert(&app, "snapshot.public");
    let action = &alert.response.as_ref().unwrap().actions[0];
    assert_eq!(action.result, ActionResult::WouldDo);
    assert!(
        action
            .reason
            .as_deref()
            .unwrap()
            .contains("would call ec2:ModifySnapshotAttribute"),
        "{action:?}"
    );
}

#[tokio::test]
async fn an_exempt_tag_is_respected() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    add_snapshot_grants(&m, &snapshot, true, &[]).await;
    m.ec2(
        "CreateTags",
        &[
            ("ResourceId.1", &snapshot),
            ("Tag.1.Key", "snapwatch-exempt"),
            ("Tag.1.Value", "public dataset"),
        ],
    )
    .await;
    let app = app(MemoryStore::new(), "snapshot.public=enforce");
    let raw = event(
        "modify_snapshot_attribute_group_all.json",
        region,
        &[("snap-0f1e2d3c4b5a69788", &snapshot)],
    );
    app.handle(&raw).await.unwrap();
    assert_eq!(snapshot_grants(&m, &snapshot).await, (true, vec![]));
    assert_eq!(
        results(&the_alert(&app, "snapshot.public")),
        vec![ActionResult::SkippedExempt]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivery_and_eight_racing_handlers_act_once() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    add_snapshot_grants(&m, &snapshot, true, &[]).await;
    let dynalite = local_sdk(&server_endpoint(DYNALITE)).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&dynalite),
        unique_name("snapwatch-respond"),
    );
    store.create_table().await.expect("create the table");
    let app = Arc::new(app(store, "snapshot.public=enforce"));
    let raw = event(
        "modify_snapshot_attribute_group_all.json",
        region,
        &[("snap-0f1e2d3c4b5a69788", &snapshot)],
    );
    let handlers: Vec<_> = (0..8)
        .map(|_| {
            let (app, raw) = (app.clone(), raw.clone());
            tokio::spawn(async move { app.handle(&raw).await.unwrap() })
        })
        .collect();
    let mut responded = 0;
    for h in handlers {
        responded += h.await.unwrap().responded.len();
    }
    assert_eq!(responded, 1, "one handler acted");
    // A redelivery later acts on nothing and alerts nothing new.
    assert!(app.handle(&raw).await.unwrap().responded.is_empty());
    assert_eq!(snapshot_grants(&m, &snapshot).await, (false, vec![]));
    let alert = the_alert(&app, "snapshot.public");
    assert_eq!(
        results(&alert),
        vec![ActionResult::Done],
        "the alert that went out is the one that acted"
    );
}

#[tokio::test]
async fn a_failed_action_still_alerts_and_says_why() {
    let region = "eu-west-3";
    let m = moto(region);
    let snapshot = m.snapshot().await;
    add_snapshot_grants(&m, &snapshot, true, &[]).await;
    // The responder acts only in its own account: a chain logged in another one fails.
    let mut app = app(MemoryStore::new(), "snapshot.public=enforce");
    app.responder = Some(AwsResponder::new(query_client(), "555566667777"));
    let raw = event(
        "modify_snapshot_attribute_group_all.json",
        region,
        &[("snap-0f1e2d3c4b5a69788", &snapshot)],
    );
    let outcome = app.handle(&raw).await.unwrap();
    assert_eq!(outcome.status, Status::Processed);
    let alert = the_alert(&app, "snapshot.public");
    let action = &alert.response.as_ref().unwrap().actions[0];
    assert_eq!(action.result, ActionResult::Failed);
    assert!(
        action
            .reason
            .as_deref()
            .unwrap()
            .contains("acts only in its own account 555566667777"),
        "{action:?}"
    );
    assert_eq!(snapshot_grants(&m, &snapshot).await, (true, vec![]));
}

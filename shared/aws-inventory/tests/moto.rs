//! The listing against moto's server (started by tests/servers/with-servers.sh, which exports
//! SNAPWATCH_MOTO_ENDPOINT): state is set up with `QueryClient::call` itself, and each test works
//! in its own region so the tests can share one server in parallel (ap-southeast-3, me-south-1,
//! af-south-1, il-central-1: regions no other test of the workspace uses).
//!
//! moto does not paginate the list calls, so the pagination test puts a small proxy in front of
//! it that pages the item sets (`MaxResults`/`NextToken`, `MaxRecords`/`Marker`) and throttles
//! the first request of every action.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use snapwatch_aws_inventory::{InventoryError, QueryClient, RetryPolicy, Service, SnapshotLister};
use snapwatch_core::baseline::{InventoryItem, Permissions};
use snapwatch_core::{Cloud, Resource, ResourceKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
/// The account moto answers as.
const MOTO_ACCOUNT: &str = "123456789012";
const OUTSIDE_ACCOUNT: &str = "999988887777";
const ORGANIZATION: &str = "arn:aws:organizations::123456789012:organization/o-abcde12345";

/// The endpoint the wrapper started; fails (never skips) when the test runs without it.
fn moto_endpoint() -> String {
    std::env::var(MOTO).unwrap_or_else(|_| {
        panic!("{MOTO} is not set: run under tests/servers/with-servers.sh (make test does)")
    })
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
    }
}

fn client(endpoint: &str) -> QueryClient {
    let credentials = Credentials::new("testing", "testing", None, None, "moto-tests");
    QueryClient::new(
        reqwest::Client::new(),
        SharedCredentialsProvider::new(credentials),
        Some(endpoint.to_string()),
    )
    .with_retry(fast_retries())
}

/// The text of the first element named `name` anywhere in a response.
fn first_text(body: &str, name: &str) -> String {
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("not XML ({e}): {body}"));
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <{name}> in {body}"))
        .to_string()
}

/// Sets up state on moto through the client under test.
struct Setup {
    client: QueryClient,
    region: String,
}

impl Setup {
    async fn call(&self, service: Service, action: &str, params: &[(&str, &str)]) -> String {
        self.client
            .call(service, &self.region, action, params)
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    async fn volume(&self) -> String {
        let zone = format!("{}a", self.region);
        let body = self
            .call(
                Service::Ec2,
                "CreateVolume",
                &[("AvailabilityZone", &zone), ("Size", "1")],
            )
            .await;
        first_text(&body, "volumeId")
    }

    async fn snapshot(&self, volume: &str, description: &str) -> String {
        let body = self
            .call(
                Service::Ec2,
                "CreateSnapshot",
                &[("VolumeId", volume), ("Description", description)],
            )
            .await;
        first_text(&body, "snapshotId")
    }

    async fn share_snapshot(&self, snapshot: &str, grantee: (&str, &str)) {
        self.call(
            Service::Ec2,
            "ModifySnapshotAttribute",
            &[
                ("SnapshotId", snapshot),
                ("Attribute", "createVolumePermission"),
                ("OperationType", "add"),
                grantee,
            ],
        )
        .await;
    }

    async fn image(&self, name: &str) -> String {
        let body = self
            .call(Service::Ec2, "RegisterImage", &[("Name", name)])
            .await;
        first_text(&body, "imageId")
    }

    async fn share_image(&self, image: &str, grantee: (&str, &str)) {
        self.call(
            Service::Ec2,
            "ModifyImageAttribute",
            &[
                ("ImageId", image),
                ("Attribute", "launchPermission"),
                ("OperationType", "add"),
                grantee,
            ],
        )
        .await;
    }

    async fn db_instance(&self, id: &str) {
        self.call(
            Service::Rds,
            "CreateDBInstance",
            &[
                ("DBInstanceIdentifier", id),
                ("DBInstanceClass", "db.t3.micro"),
                ("Engine", "postgres"),
                ("MasterUsername", "admin_user"),
                ("MasterUserPassword", "not-a-real-password"),
                ("AllocatedStorage", "20"),
            ],
        )
        .await;
    }

    /// Returns the snapshot's ARN as moto reports it.
    async fn db_snapshot(&self, instance: &str, id: &str) -> String {
        let body = self
            .call(
                Service::Rds,
                "CreateDBSnapshot",
                &[
                    ("DBInstanceIdentifier", instance),
                    ("DBSnapshotIdentifier", id),
                ],
            )
            .await;
        first_text(&body, "DBSnapshotArn")
    }

    async fn share_db_snapshot(&self, id: &str, value: &str) {
        self.call(
            Service::Rds,
            "ModifyDBSnapshotAttribute",
            &[
                ("DBSnapshotIdentifier", id),
                ("AttributeName", "restore"),
                ("ValuesToAdd.AttributeValue.1", value),
            ],
        )
        .await;
    }

    async fn db_cluster(&self, id: &str) {
        self.call(
            Service::Rds,
            "CreateDBCluster",
            &[
                ("DBClusterIdentifier", id),
                ("Engine", "aurora-postgresql"),
                ("MasterUsername", "admin_user"),
                ("MasterUserPassword", "not-a-real-password"),
            ],
        )
        .await;
    }

    async fn cluster_snapshot(&self, cluster: &str, id: &str) -> String {
        let body = self
            .call(
                Service::Rds,
                "CreateDBClusterSnapshot",
                &[
                    ("DBClusterIdentifier", cluster),
                    ("DBClusterSnapshotIdentifier", id),
                ],
            )
            .await;
        first_text(&body, "DBClusterSnapshotArn")
    }

    async fn share_cluster_snapshot(&self, id: &str, value: &str) {
        self.call(
            Service::Rds,
            "ModifyDBClusterSnapshotAttribute",
            &[
                ("DBClusterSnapshotIdentifier", id),
                ("AttributeName", "restore"),
                ("ValuesToAdd.AttributeValue.1", value),
            ],
        )
        .await;
    }
}

fn grants(public: bool, accounts: &[&str], principals: &[&str]) -> Permissions {
    Permissions {
        public,
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        principals: principals.iter().map(|p| p.to_string()).collect(),
        ..Permissions::default()
    }
}

/// An item as the test expects it; `created` is checked separately (moto stamps it).
type Expected = (Resource, Permissions, Option<Resource>, &'static str);

fn without_time(item: &InventoryItem) -> Expected {
    let via: &'static str = match item.observed_via.as_str() {
        "DescribeSnapshotAttribute" => "DescribeSnapshotAttribute",
        "DescribeImageAttribute" => "DescribeImageAttribute",
        "DescribeDBSnapshotAttributes" => "DescribeDBSnapshotAttributes",
        "DescribeDBClusterSnapshotAttributes" => "DescribeDBClusterSnapshotAttributes",
        other => panic!("unexpected observed_via {other:?}"),
    };
    (
        item.resource.clone(),
        item.permissions.clone(),
        item.created_with.clone(),
        via,
    )
}

#[tokio::test]
async fn lists_every_kind_with_its_permissions_on_moto() {
    let endpoint = moto_endpoint();
    let setup = Setup {
        client: client(&endpoint),
        region: "ap-southeast-3".to_string(),
    };
    let started = Utc::now() - chrono::Duration::seconds(5);

    // EBS snapshots: private, shared with an outside account (and with ourselves, which grants
    // nothing), public, and one whose description says CreateImage made it for an AMI.
    let volume = setup.volume().await;
    let private_snapshot = setup.snapshot(&volume, "nightly").await;
    let shared_snapshot = setup.snapshot(&volume, "handed over").await;
    setup
        .share_snapshot(&shared_snapshot, ("UserId.1", OUTSIDE_ACCOUNT))
        .await;
    setup
        .share_snapshot(&shared_snapshot, ("UserId.1", MOTO_ACCOUNT))
        .await;
    let public_snapshot = setup.snapshot(&volume, "oops").await;
    setup
        .share_snapshot(&public_snapshot, ("UserGroup.1", "all"))
        .await;
    let image_snapshot = setup
        .snapshot(
            &volume,
            &format!("Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0 from {volume}"),
        )
        .await;

    // AMIs: private, shared with an account and an organization, public. moto's RegisterImage
    // also creates one private "Auto-created snapshot for AMI …" EBS snapshot per image.
    let private_image = setup.image("private").await;
    let shared_image = setup.image("shared").await;
    setup
        .share_image(&shared_image, ("UserId.1", OUTSIDE_ACCOUNT))
        .await;
    setup
        .share_image(&shared_image, ("OrganizationArn.1", ORGANIZATION))
        .await;
    let public_image = setup.image("public").await;
    setup
        .share_image(&public_image, ("UserGroup.1", "all"))
        .await;

    // RDS DB snapshots (identifiers in mixed case: the ids must come out lower-cased ARNs).
    setup.db_instance("orders").await;
    let private_db = setup.db_snapshot("orders", "Orders-Private").await;
    let shared_db = setup.db_snapshot("orders", "orders-shared").await;
    setup
        .share_db_snapshot("orders-shared", OUTSIDE_ACCOUNT)
        .await;
    let public_db = setup.db_snapshot("orders", "orders-public").await;
    setup.share_db_snapshot("orders-public", "all").await;

    // DB cluster snapshots (moto also keeps an automated one, which must not be listed).
    setup.db_cluster("ledger").await;
    let private_cluster = setup.cluster_snapshot("ledger", "ledger-private").await;
    let shared_cluster = setup.cluster_snapshot("ledger", "ledger-shared").await;
    setup
        .share_cluster_snapshot("ledger-shared", OUTSIDE_ACCOUNT)
        .await;
    let public_cluster = setup.cluster_snapshot("ledger", "ledger-public").await;
    setup.share_cluster_snapshot("ledger-public", "all").await;

    // The AMIs' own snapshots, found by their moto-specific description.
    let described = setup
        .call(Service::Ec2, "DescribeSnapshots", &[("Owner.1", "self")])
        .await;
    let doc = roxmltree::Document::parse(&described).expect("XML");
    let auto_snapshots: Vec<String> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "item")
        .filter(|n| {
            n.children().any(|c| {
                c.tag_name().name() == "description"
                    && c.text()
                        .is_some_and(|t| t.starts_with("Auto-created snapshot for AMI"))
            })
        })
        .filter_map(|n| {
            n.children()
                .find(|c| c.tag_name().name() == "snapshotId")
                .and_then(|c| c.text())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(auto_snapshots.len(), 3, "{described}");

    let lister = SnapshotLister::new(setup.client.clone());
    assert_eq!(
        lister.account_id(&setup.region).await.expect("account"),
        MOTO_ACCOUNT
    );
    let taken_at = Utc::now();
    let inventory = lister
        .list_region(MOTO_ACCOUNT, &setup.region, taken_at)
        .await
        .expect("listing");

    assert_eq!(inventory.cloud, Cloud::Aws);
    assert_eq!(inventory.account, MOTO_ACCOUNT);
    assert_eq!(inventory.region, setup.region);
    assert_eq!(inventory.taken_at, taken_at);

    let snapshot = |id: &str| Resource::new(ResourceKind::Snapshot, id);
    let image = |id: &str| Resource::new(ResourceKind::Image, id);
    let db = |arn: &str| Resource::new(ResourceKind::DbSnapshot, arn.to_ascii_lowercase());
    let ebs = "DescribeSnapshotAttribute";
    let ami = "DescribeImageAttribute";
    let rds = "DescribeDBSnapshotAttributes";
    let aurora = "DescribeDBClusterSnapshotAttributes";
    let mut expected: Vec<Expected> = vec![
        (
            snapshot(&private_snapshot),
            grants(false, &[], &[]),
            None,
            ebs,
        ),
        (
            snapshot(&shared_snapshot),
            grants(false, &[OUTSIDE_ACCOUNT], &[]),
            None,
            ebs,
        ),
        (
            snapshot(&public_snapshot),
            grants(true, &[], &[]),
            None,
            ebs,
        ),
        (
            snapshot(&image_snapshot),
            grants(false, &[], &[]),
            Some(image("ami-0123456789abcdef0")),
            ebs,
        ),
        (image(&private_image), grants(false, &[], &[]), None, ami),
        (
            image(&shared_image),
            grants(false, &[OUTSIDE_ACCOUNT], &[ORGANIZATION]),
            None,
            ami,
        ),
        (image(&public_image), grants(true, &[], &[]), None, ami),
        (db(&private_db), grants(false, &[], &[]), None, rds),
        (
            db(&shared_db),
            grants(false, &[OUTSIDE_ACCOUNT], &[]),
            None,
            rds,
        ),
        (db(&public_db), grants(true, &[], &[]), None, rds),
        (db(&private_cluster), grants(false, &[], &[]), None, aurora),
        (
            db(&shared_cluster),
            grants(false, &[OUTSIDE_ACCOUNT], &[]),
            None,
            aurora,
        ),
        (db(&public_cluster), grants(true, &[], &[]), None, aurora),
    ];
    expected.extend(
        auto_snapshots
            .iter()
            .map(|id| (snapshot(id), grants(false, &[], &[]), None, ebs)),
    );
    expected.sort_by(|a, b| a.0.id.cmp(&b.0.id));

    let actual: Vec<Expected> = inventory.items.iter().map(without_time).collect();
    assert_eq!(actual, expected);
    assert_eq!(
        db(&private_db).id,
        format!("arn:aws:rds:ap-southeast-3:{MOTO_ACCOUNT}:snapshot:orders-private")
    );
    assert_eq!(
        db(&public_cluster).id,
        format!("arn:aws:rds:ap-southeast-3:{MOTO_ACCOUNT}:cluster-snapshot:ledger-public")
    );

    // Every creation time came through, and is from this test run.
    let finished = Utc::now() + chrono::Duration::seconds(5);
    for item in &inventory.items {
        let created: DateTime<Utc> = item
            .created
            .unwrap_or_else(|| panic!("{} has no creation time", item.resource.id));
        assert!(
            created >= started && created <= finished,
            "{}: {created} not within the test run",
            item.resource.id
        );
    }
}

// ---- the paging proxy ----------------------------------------------------------------------

#[derive(Debug, Default)]
struct ProxyStats {
    /// Actions whose first request was answered with a throttling error.
    throttled_once: BTreeSet<String>,
    throttles: BTreeMap<String, u32>,
    /// List responses served (pages), per action.
    pages: BTreeMap<String, u32>,
    /// Every request that reached moto, per action.
    forwarded: BTreeMap<String, u32>,
}

#[derive(Debug, Default, Clone)]
struct ProxyBehaviour {
    throttle_first_request_of_each_action: bool,
    /// Answer these ids' attribute calls as if they had been deleted after the list call.
    vanished: BTreeSet<String>,
    /// Answer this action with an access-denied error.
    denied: Option<String>,
    /// Throttle this action on every request.
    always_throttled: Option<String>,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    behaviour: ProxyBehaviour,
    stats: Mutex<ProxyStats>,
}

struct ListShape {
    container: &'static str,
    item: &'static str,
    page_size_param: &'static str,
    token_param: &'static str,
    token_element: &'static str,
}

fn list_shape(action: &str) -> Option<ListShape> {
    let ec2 = |container| ListShape {
        container,
        item: "item",
        page_size_param: "MaxResults",
        token_param: "NextToken",
        token_element: "nextToken",
    };
    let rds = |container, item| ListShape {
        container,
        item,
        page_size_param: "MaxRecords",
        token_param: "Marker",
        token_element: "Marker",
    };
    match action {
        "DescribeSnapshots" => Some(ec2("snapshotSet")),
        "DescribeImages" => Some(ec2("imagesSet")),
        "DescribeDBSnapshots" => Some(rds("DBSnapshots", "DBSnapshot")),
        "DescribeDBClusterSnapshots" => Some(rds("DBClusterSnapshots", "DBClusterSnapshot")),
        _ => None,
    }
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

fn form(body: &[u8]) -> HashMap<String, String> {
    std::str::from_utf8(body)
        .expect("form body is text")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn signing_service(headers: &HeaderMap) -> String {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("signed request");
    // Credential=AKID/yyyymmdd/region/service/aws4_request
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .expect("credential scope")
        .to_string()
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/xml")], body).into_response()
}

fn ec2_error(status: StatusCode, code: &str, message: &str) -> Response {
    xml_response(
        status,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>proxy-request</RequestID></Response>"#
        ),
    )
}

fn rds_error(status: StatusCode, code: &str, message: &str) -> Response {
    xml_response(
        status,
        format!(
            r#"<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy-request</RequestId></ErrorResponse>"#
        ),
    )
}

fn throttle(service: &str) -> Response {
    if service == "ec2" {
        ec2_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        )
    } else {
        rds_error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded")
    }
}

/// Cuts one page out of moto's complete list: the container keeps only the items from the
/// offset in the token, and a next-token element follows it when items remain.
fn page_of(body: &str, shape: &ListShape, params: &HashMap<String, String>) -> String {
    let doc = roxmltree::Document::parse(body).expect("moto answers XML");
    let Some(container) = doc
        .descendants()
        .find(|n| n.tag_name().name() == shape.container)
    else {
        return body.to_string();
    };
    let items: Vec<&str> = container
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == shape.item)
        .map(|n| &body[n.range()])
        .collect();
    let offset: usize = params
        .get(shape.token_param)
        .map(|t| {
            t.strip_prefix("offset-")
                .and_then(|o| o.parse().ok())
                .expect("a token this proxy issued")
        })
        .unwrap_or(0);
    let size: usize = params
        .get(shape.page_size_param)
        .map(|s| s.parse().expect("numeric page size"))
        .unwrap_or(items.len().max(1));
    let end = (offset + size).min(items.len());
    let page = items.get(offset..end).unwrap_or_default().concat();
    let token = if end < items.len() {
        format!("<{0}>offset-{end}</{0}>", shape.token_element)
    } else {
        String::new()
    };
    let range = container.range();
    format!(
        "{}<{container}>{page}</{container}>{token}{}",
        &body[..range.start],
        &body[range.end..],
        container = shape.container
    )
}

async fn proxy_handler(
    State(proxy): State<Arc<Proxy>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let action = params.get("Action").cloned().expect("Action parameter");
    let service = signing_service(&headers);
    {
        let mut stats = proxy.stats.lock().expect("stats lock");
        let throttle_now = proxy.behaviour.always_throttled.as_deref() == Some(action.as_str())
            || (proxy.behaviour.throttle_first_request_of_each_action
                && stats.throttled_once.insert(action.clone()));
        if throttle_now {
            *stats.throttles.entry(action.clone()).or_default() += 1;
            return throttle(&service);
        }
    }
    if proxy.behaviour.denied.as_deref() == Some(action.as_str()) {
        return if service == "ec2" {
            ec2_error(
                StatusCode::FORBIDDEN,
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            )
        } else {
            rds_error(StatusCode::FORBIDDEN, "AccessDenied", "not authorized")
        };
    }
    let vanished = ["SnapshotId", "ImageId", "DBSnapshotIdentifier"]
        .iter()
        .filter_map(|p| params.get(*p))
        .find(|id| proxy.behaviour.vanished.contains(*id));
    if let Some(id) = vanished {
        return match action.as_str() {
            "DescribeSnapshotAttribute" => ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidSnapshot.NotFound",
                &format!("The snapshot '{id}' does not exist."),
            ),
            "DescribeImageAttribute" => ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidAMIID.NotFound",
                &format!("The image id '[{id}]' does not exist"),
            ),
            _ => rds_error(
                StatusCode::NOT_FOUND,
                "DBSnapshotNotFound",
                &format!("DBSnapshot {id} not found."),
            ),
        };
    }

    let mut upstream = proxy.http.post(&proxy.upstream).body(body.clone());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let response = upstream.send().await.expect("moto answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("moto's body");
    let mut stats = proxy.stats.lock().expect("stats lock");
    *stats.forwarded.entry(action.clone()).or_default() += 1;
    let status = StatusCode::from_u16(status).expect("status");
    match list_shape(&action) {
        Some(shape) if status.is_success() => {
            *stats.pages.entry(action.clone()).or_default() += 1;
            xml_response(status, page_of(&text, &shape, &params))
        }
        _ => xml_response(status, text),
    }
}

async fn start_proxy(upstream: &str, behaviour: ProxyBehaviour) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream: format!("{}/", upstream.trim_end_matches('/')),
        http: reqwest::Client::new(),
        behaviour,
        stats: Mutex::new(ProxyStats::default()),
    });
    let app = Router::new()
        .route("/", post(proxy_handler))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let address = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("proxy serves");
    });
    (format!("http://{address}"), proxy)
}

fn counts(map: &BTreeMap<String, u32>) -> Vec<(&str, u32)> {
    map.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_1050_snapshots_and_rides_out_throttling() {
    const SNAPSHOTS: usize = 1050;
    let endpoint = moto_endpoint();
    let setup = Setup {
        client: client(&endpoint),
        region: "me-south-1".to_string(),
    };
    let volume = setup.volume().await;
    let created_at = Instant::now();
    let created: BTreeSet<String> = stream::iter(0..SNAPSHOTS)
        .map(|n| {
            let setup = &setup;
            let volume = &volume;
            async move { setup.snapshot(volume, &format!("bulk {n}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), SNAPSHOTS);
    eprintln!(
        "created {SNAPSHOTS} snapshots on moto in {:?}",
        created_at.elapsed()
    );
    // Five manual DB snapshots, listed in RDS pages of 2.
    setup.db_instance("paged").await;
    let mut db_arns = BTreeSet::new();
    for n in 0..5 {
        db_arns.insert(setup.db_snapshot("paged", &format!("paged-{n}")).await);
    }

    for (ec2_page, expected_pages) in [(1000, 2), (100, 11)] {
        let behaviour = ProxyBehaviour {
            throttle_first_request_of_each_action: true,
            ..ProxyBehaviour::default()
        };
        let (proxy_url, proxy) = start_proxy(&endpoint, behaviour).await;
        let lister = SnapshotLister::new(client(&proxy_url)).with_page_sizes(ec2_page, 2);
        let listing_started = Instant::now();
        let inventory = lister
            .list_region(MOTO_ACCOUNT, &setup.region, Utc::now())
            .await
            .expect("listing through the proxy");
        eprintln!(
            "listed {} items (EC2 pages of {ec2_page}) in {:?}",
            inventory.items.len(),
            listing_started.elapsed()
        );

        let snapshot_ids: BTreeSet<String> = inventory
            .items
            .iter()
            .filter(|i| i.resource.kind == ResourceKind::Snapshot)
            .map(|i| i.resource.id.clone())
            .collect();
        assert_eq!(snapshot_ids, created, "EC2 pages of {ec2_page}");
        let db_ids: BTreeSet<String> = inventory
            .items
            .iter()
            .filter(|i| i.resource.kind == ResourceKind::DbSnapshot)
            .map(|i| i.resource.id.clone())
            .collect();
        assert_eq!(
            db_ids,
            db_arns.iter().map(|a| a.to_ascii_lowercase()).collect()
        );
        assert_eq!(inventory.items.len(), SNAPSHOTS + 5);
        let ids: Vec<&str> = inventory
            .items
            .iter()
            .map(|i| i.resource.id.as_str())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "items sorted by id, no duplicates"
        );

        let stats = proxy.stats.lock().expect("stats");
        assert_eq!(
            counts(&stats.pages),
            vec![
                ("DescribeDBClusterSnapshots", 1),
                ("DescribeDBSnapshots", 3),
                ("DescribeImages", 1),
                ("DescribeSnapshots", expected_pages),
            ],
            "EC2 pages of {ec2_page}"
        );
        // The first request of every action was throttled once and retried.
        assert_eq!(
            counts(&stats.throttles),
            vec![
                ("DescribeDBClusterSnapshots", 1),
                ("DescribeDBSnapshotAttributes", 1),
                ("DescribeDBSnapshots", 1),
                ("DescribeImages", 1),
                ("DescribeSnapshotAttribute", 1),
                ("DescribeSnapshots", 1),
            ]
        );
        assert_eq!(
            stats.forwarded.get("DescribeSnapshotAttribute"),
            Some(&(SNAPSHOTS as u32))
        );
        assert_eq!(
            stats.forwarded.get("DescribeDBSnapshotAttributes"),
            Some(&5)
        );
    }
}

#[tokio::test]
async fn skips_resources_that_vanish_between_list_and_attribute_call() {
    let endpoint = moto_endpoint();
    let setup = Setup {
        client: client(&endpoint),
        region: "af-south-1".to_string(),
    };
    let volume = setup.volume().await;
    let kept = setup.snapshot(&volume, "kept").await;
    let gone = setup.snapshot(&volume, "gone").await;
    setup.db_instance("vanishing").await;
    let kept_db = setup.db_snapshot("vanishing", "kept-db").await;
    setup.db_snapshot("vanishing", "gone-db").await;

    let behaviour = ProxyBehaviour {
        vanished: BTreeSet::from([gone.clone(), "gone-db".to_string()]),
        ..ProxyBehaviour::default()
    };
    let (proxy_url, _proxy) = start_proxy(&endpoint, behaviour).await;
    let inventory = SnapshotLister::new(client(&proxy_url))
        .list_region(MOTO_ACCOUNT, &setup.region, Utc::now())
        .await
        .expect("listing");
    let ids: Vec<&str> = inventory
        .items
        .iter()
        .map(|i| i.resource.id.as_str())
        .collect();
    let kept_db = kept_db.to_ascii_lowercase();
    let mut expected = vec![kept_db.as_str(), kept.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn denial_and_endless_throttling_are_errors_that_say_so() {
    let endpoint = moto_endpoint();
    let region = "il-central-1";

    let (denying, _proxy) = start_proxy(
        &endpoint,
        ProxyBehaviour {
            denied: Some("DescribeImages".to_string()),
            ..ProxyBehaviour::default()
        },
    )
    .await;
    let error = SnapshotLister::new(client(&denying))
        .list_region(MOTO_ACCOUNT, region, Utc::now())
        .await
        .expect_err("denied");
    match &error {
        InventoryError::Denied { action, code, .. } => {
            assert_eq!(action, "DescribeImages");
            assert_eq!(code, "UnauthorizedOperation");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    assert!(!error.is_retryable());

    let (throttling, proxy) = start_proxy(
        &endpoint,
        ProxyBehaviour {
            always_throttled: Some("DescribeDBSnapshots".to_string()),
            ..ProxyBehaviour::default()
        },
    )
    .await;
    let error = SnapshotLister::new(client(&throttling))
        .list_region(MOTO_ACCOUNT, region, Utc::now())
        .await
        .expect_err("throttled");
    match &error {
        InventoryError::Throttled {
            action,
            code,
            attempts,
            region: where_,
        } => {
            assert_eq!(action, "DescribeDBSnapshots");
            assert_eq!(code, "Throttling");
            assert_eq!(*attempts, fast_retries().max_attempts);
            assert_eq!(where_, region);
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert!(error.is_retryable());
    let stats = proxy.stats.lock().expect("stats");
    assert_eq!(stats.throttles.get("DescribeDBSnapshots"), Some(&6));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_after_the_retries() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let client = client(&format!("http://127.0.0.1:{port}")).with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    });
    let error = SnapshotLister::new(client)
        .account_id("eu-west-1")
        .await
        .expect_err("nothing listens");
    match &error {
        InventoryError::Unavailable {
            action, attempts, ..
        } => {
            assert_eq!(action, "GetCallerIdentity");
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(error.is_retryable());
}

//! Writes a realistic CloudTrail mix for `make bench`:
//! `gen_cloudtrail <records> <out-file> [jsonl|array|records|pretty] [--days N]`: JSON lines
//! (default), one top-level array (an element per line), one `{"Records":[...]}` line (the
//! CloudTrail S3 file shape), or concatenated pretty-printed documents, spread over N days of
//! event time; or a hub: `gen_cloudtrail --hub N <out-file>`.
//!
//! About 99 % of records are calls the chain does not consume (Describe*, AssumeRole, GetObject,
//! KMS Decrypt…), the rest are snapshot/instance/security-group calls: mostly benign (backups,
//! routine launches), with one complete attack chain per 50,000 records. Deterministic output.
//! `--days N` spreads the records evenly over N days of event time (a long history) instead of
//! the default few hours. `--hub N` writes one snapshot and N instances launched from it into
//! one security group: a node with N dependents.
//!
//! `--org ACCOUNTS REGIONS` (after the layout and `--days`) spreads the same mix over an
//! organization for the load test (`make load`): each record, or each attack chain as a whole,
//! lands in one account and region, accounts Zipf-distributed (a few busy production accounts, a
//! long tail) and regions weighted towards us-east-1. Routine launches then use the two hot keys
//! of a real estate: their account-region's default security group and the region's golden AMI
//! (half the routine ingress changes are on the default group too). The planted chains'
//! snapshot ids are written to `<out-file>.chains`, one per line.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds of event time between consecutive records when `--days` is given; 0 keeps the
/// default clock (20 records per second from 2026-05-01).
static MILLIS_PER_RECORD: AtomicU64 = AtomicU64::new(0);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, dependency-free, good enough for a workload mix.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

const ACCOUNT: &str = "111122223333";

/// The regions enabled by default in an account, in the order the `--org` weights use.
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "us-east-2",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
    "us-west-1",
    "eu-west-2",
    "ap-southeast-1",
    "ca-central-1",
    "ap-south-1",
    "eu-north-1",
    "eu-west-3",
    "ap-northeast-2",
    "ap-northeast-3",
    "sa-east-1",
];

/// Where the records being written happen: one account and region (the defaults outside `--org`).
#[derive(Clone)]
struct Placement {
    account: String,
    region: &'static str,
    /// Set in `--org` mode: the account-region's default security group and the region's AMI.
    hot: Option<(String, String)>,
}

thread_local! {
    static PLACE: std::cell::RefCell<Placement> = std::cell::RefCell::new(Placement {
        account: ACCOUNT.to_string(),
        region: "us-east-1",
        hot: None,
    });
}

fn place() -> Placement {
    PLACE.with(|p| p.borrow().clone())
}

/// Ids derived from names, so a key is the same every time its account or region recurs.
fn stable_hex(seed: &str, len: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Rng(h | 1).hex(len)
}

/// Picks the account (Zipf over `accounts`) and region (weighted) of the next batch, with its own
/// generator so the mix itself stays the same stream as without `--org`.
fn pick_placement(rng: &mut Rng, accounts: u64, regions: usize) {
    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let k = (((accounts as f64 + 1.0).ln() * u).exp() as u64).clamp(1, accounts) - 1;
    let account = format!("{:012}", 200_000_000_000 + k * 7_919);
    // us-east-1 40 %, us-west-2 15 %, eu-west-1 10 %, the rest evenly.
    let roll = rng.below(100);
    let region = match roll {
        0..=39 => 0,
        40..=54 => 1,
        55..=64 => 2,
        _ if regions > 3 => 3 + (roll as usize) % (regions - 3),
        _ => (roll as usize) % regions,
    }
    .min(regions - 1);
    let region = REGIONS[region];
    let group = format!(
        "sg-{}",
        stable_hex(&format!("default/{account}/{region}"), 17)
    );
    let ami = format!("ami-{}", stable_hex(&format!("golden/{region}"), 17));
    PLACE.with(|p| {
        *p.borrow_mut() = Placement {
            account,
            region,
            hot: Some((group, ami)),
        }
    });
}

fn identity(rng: &mut Rng) -> Value {
    let account = place().account;
    let roles = [
        "app-backend",
        "ci-deployer",
        "data-pipeline",
        "ops-admin",
        "lambda-exec",
    ];
    let role = roles[rng.below(roles.len() as u64) as usize];
    json!({
        "type": "AssumedRole",
        "principalId": format!("AROA{}:{}", rng.hex(16).to_uppercase(), rng.hex(8)),
        "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/session-{}", rng.hex(6)),
        "accountId": account,
        "accessKeyId": format!("ASIA{}", rng.hex(16).to_uppercase()),
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account, "userName": role},
            "attributes": {"creationDate": "2026-05-01T10:00:00Z", "mfaAuthenticated": "false"}
        }
    })
}

fn record(
    rng: &mut Rng,
    i: u64,
    source: &str,
    name: &str,
    user: Value,
    req: Value,
    resp: Value,
) -> Value {
    let step = MILLIS_PER_RECORD.load(Ordering::Relaxed);
    let time = if step == 0 {
        let secs = i / 20;
        format!(
            "2026-05-{:02}T{:02}:{:02}:{:02}Z",
            1 + (secs / 86_400) % 28,
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        )
    } else {
        let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let at = start + Duration::milliseconds((i * step) as i64);
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    let Placement {
        account, region, ..
    } = place();
    json!({
        "eventVersion": "1.09",
        "userIdentity": user,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256)),
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.173.0",
        "requestParameters": req,
        "responseElements": resp,
        "requestID": rng.uuid(),
        "eventID": rng.uuid(),
        "readOnly": name.starts_with("Describe") || name.starts_with("Get") || name.starts_with("List"),
        "eventType": "AwsApiCall",
        "managementEvent": source != "s3.amazonaws.com",
        "recipientAccountId": account,
        "eventCategory": if source == "s3.amazonaws.com" { "Data" } else { "Management" },
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": format!("{}.{region}.amazonaws.com", source.split('.').next().unwrap_or("ec2"))}
    })
}

fn unrelated(rng: &mut Rng, i: u64) -> Value {
    let user = identity(rng);
    let (source, name, req, resp) = match rng.below(8) {
        0 => (
            "ec2.amazonaws.com",
            "DescribeInstances",
            json!({"instancesSet": {}, "filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": "payments"}]}}]}}),
            Value::Null,
        ),
        1 => {
            let session = rng.hex(12);
            let key = rng.hex(16);
            let token = rng.hex(64);
            let role_id = rng.hex(20);
            (
                "sts.amazonaws.com",
                "AssumeRole",
                json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/worker"), "roleSessionName": session, "durationSeconds": 3600}),
                json!({"credentials": {"accessKeyId": format!("ASIA{key}"), "expiration": "May 1, 2026, 11:00:00 AM", "sessionToken": token}, "assumedRoleUser": {"assumedRoleId": role_id, "arn": "arn:aws:sts::111122223333:assumed-role/worker/x"}}),
            )
        }
        2 => (
            "s3.amazonaws.com",
            "GetObject",
            json!({"bucketName": "app-assets", "Host": "app-assets.s3.us-east-1.amazonaws.com", "key": format!("static/{}/bundle.js", rng.hex(8))}),
            Value::Null,
        ),
        3 => (
            "kms.amazonaws.com",
            "Decrypt",
            json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"aws:lambda:FunctionArn": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn-{}", rng.hex(4))}}),
            Value::Null,
        ),
        4 => (
            "ec2.amazonaws.com",
            "DescribeSnapshots",
            json!({"snapshotSet": {}, "ownersSet": {"items": [{"owner": "self"}]}, "maxResults": 1000}),
            Value::Null,
        ),
        5 => (
            "logs.amazonaws.com",
            "CreateLogStream",
            json!({"logGroupName": "/aws/lambda/fn", "logStreamName": format!("2026/05/01/[$LATEST]{}", rng.hex(32))}),
            Value::Null,
        ),
        6 => (
            "s3.amazonaws.com",
            "PutObject",
            json!({"bucketName": "data-lake-raw", "key": format!("events/dt=2026-05-01/{}.parquet", rng.uuid()), "x-amz-server-side-encryption": "aws:kms"}),
            Value::Null,
        ),
        _ => (
            "ec2.amazonaws.com",
            "DescribeSecurityGroups",
            json!({"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}),
            Value::Null,
        ),
    };
    record(rng, i, source, name, user, req, resp)
}

/// Benign consumed events: routine snapshots and launches.
fn benign(rng: &mut Rng, i: u64) -> Value {
    let user = identity(rng);
    let (name, req, resp) = match rng.below(3) {
        0 => {
            let volume = format!("vol-{}", rng.hex(17));
            let snap = format!("snap-{}", rng.hex(17));
            (
                "CreateSnapshot",
                json!({"volumeId": volume, "description": "nightly"}),
                json!({"snapshotId": snap, "status": "pending", "volumeSize": 100}),
            )
        }
        1 => {
            let instance = format!("i-{}", rng.hex(17));
            let mut group = format!("sg-{}", rng.hex(17));
            let mut image = "ami-0abcdef1234567890".to_string();
            if let Some((default_group, golden)) = place().hot {
                (group, image) = (default_group, golden);
            }
            (
                "RunInstances",
                json!({"instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": 1}]}, "groupSet": {"items": [{"groupId": group}]}, "instanceType": "m6i.large"}),
                json!({"instancesSet": {"items": [{"instanceId": instance, "imageId": image, "groupSet": {"items": [{"groupId": group}]}}]}}),
            )
        }
        _ => {
            let mut group = format!("sg-{}", rng.hex(17));
            if let Some((default_group, _)) = place().hot {
                if group.ends_with(['0', '2', '4', '6', '8', 'a', 'c', 'e']) {
                    group = default_group;
                }
            }
            (
                "AuthorizeSecurityGroupIngress",
                json!({"groupId": group, "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}),
                json!({"_return": true}),
            )
        }
    };
    record(rng, i, "ec2.amazonaws.com", name, user, req, resp)
}

/// One complete attack chain: snapshot, external share, restore into an instance, SSH opened.
fn attack(rng: &mut Rng, i: u64) -> Vec<Value> {
    let snap = format!("snap-{}", rng.hex(17));
    let instance = format!("i-{}", rng.hex(17));
    let group = format!("sg-{}", rng.hex(17));
    let volume = format!("vol-{}", rng.hex(17));
    let creator = identity(rng);
    let image = place()
        .hot
        .map_or_else(|| "ami-0abcdef1234567890".to_string(), |(_, ami)| ami);
    let mallory = json!({"type": "IAMUser", "principalId": "AIDAMALLORY", "arn": format!("arn:aws:iam::{}:user/mallory-{}", place().account, rng.hex(4)), "accountId": place().account, "userName": "mallory"});
    vec![
        record(
            rng,
            i,
            "ec2.amazonaws.com",
            "CreateSnapshot",
            creator,
            json!({"volumeId": volume}),
            json!({"snapshotId": snap, "status": "pending"}),
        ),
        record(
            rng,
            i + 1,
            "ec2.amazonaws.com",
            "ModifySnapshotAttribute",
            mallory.clone(),
            json!({"snapshotId": snap, "createVolumePermission": {"add": {"items": [{"userId": "999988887777"}]}}, "attributeType": "CREATE_VOLUME_PERMISSION"}),
            json!({"_return": true}),
        ),
        record(
            rng,
            i + 2,
            "ec2.amazonaws.com",
            "RunInstances",
            mallory.clone(),
            json!({"instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": 1}]}, "groupSet": {"items": [{"groupId": group}]}, "blockDeviceMapping": {"items": [{"deviceName": "/dev/sdf", "ebs": {"snapshotId": snap}}]}}),
            json!({"instancesSet": {"items": [{"instanceId": instance, "groupSet": {"items": [{"groupId": group}]}}]}}),
        ),
        record(
            rng,
            i + 3,
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            mallory,
            json!({"groupId": group, "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}),
            json!({"_return": true}),
        ),
    ]
}

/// One snapshot and `n` instances launched from it into one security group, by its creator.
fn hub(n: u64, out: &str) -> anyhow::Result<()> {
    let mut rng = Rng(0x4ab_cafe_f00d_d00d);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let snap = "snap-0a0b0c0d0e0f01234";
    let group = "sg-0a0b0c0d0e0f01234";
    let creator = identity(&mut rng);
    let first = record(
        &mut rng,
        0,
        "ec2.amazonaws.com",
        "CreateSnapshot",
        creator.clone(),
        json!({"volumeId": "vol-0a0b0c0d0e0f01234"}),
        json!({"snapshotId": snap, "status": "pending"}),
    );
    serde_json::to_writer(&mut w, &first)?;
    w.write_all(b"\n")?;
    for i in 1..=n {
        let instance = format!("i-{}", rng.hex(17));
        let r = record(
            &mut rng,
            i,
            "ec2.amazonaws.com",
            "RunInstances",
            creator.clone(),
            json!({"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}, "groupSet": {"items": [{"groupId": group}]}, "blockDeviceMapping": {"items": [{"deviceName": "/dev/sdf", "ebs": {"snapshotId": snap}}]}}),
            json!({"instancesSet": {"items": [{"instanceId": instance, "groupSet": {"items": [{"groupId": group}]}}]}}),
        );
        serde_json::to_writer(&mut w, &r)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    eprintln!("gen_cloudtrail: snapshot {snap} with {n} dependent instances in {group} -> {out}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--hub") {
        let (Some(n), Some(out)) = (args.get(2), args.get(3)) else {
            anyhow::bail!("usage: gen_cloudtrail --hub <dependents> <out-file>");
        };
        return hub(n.parse()?, out);
    }
    let (Some(count), Some(out)) = (args.get(1), args.get(2)) else {
        anyhow::bail!(
            "usage: gen_cloudtrail <records> <out-file> [jsonl|array|records|pretty] [--days N] [--org ACCOUNTS REGIONS]"
        );
    };
    let rest = &args[3.min(args.len())..];
    let (layout, rest) = match rest.first().map(String::as_str) {
        Some(l) if !l.starts_with("--") => (l, &rest[1..]),
        _ => ("jsonl", rest),
    };
    let (open, separator, close): (&[u8], &[u8], &[u8]) = match layout {
        "jsonl" | "pretty" => (b"", b"\n", b"\n"),
        "array" => (b"[\n", b",\n", b"\n]\n"),
        "records" => (b"{\"Records\":[", b",", b"]}\n"),
        other => anyhow::bail!("unknown layout {other:?}: jsonl, array, records or pretty"),
    };
    let count: u64 = count.parse()?;
    let mut org: Option<(u64, usize)> = None;
    let mut flags = rest.iter().map(String::as_str);
    while let Some(flag) = flags.next() {
        let mut number = |what: &str| -> anyhow::Result<u64> {
            Ok(flags
                .next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs {what}"))?
                .parse()?)
        };
        match flag {
            "--days" => {
                let days = number("a number of days")?;
                MILLIS_PER_RECORD
                    .store((days * 86_400_000 / count.max(1)).max(1), Ordering::Relaxed);
            }
            "--org" => {
                let accounts = number("ACCOUNTS REGIONS")?.max(1);
                let regions = number("ACCOUNTS REGIONS")?.clamp(1, REGIONS.len() as u64);
                org = Some((accounts, regions as usize));
            }
            other => anyhow::bail!("unknown option {other:?}: --days N or --org ACCOUNTS REGIONS"),
        }
    }
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut placement_rng = Rng(0x0e9a_11ce_5ca1_e000);
    let mut planted = Vec::new();
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let (mut written, mut consumed, mut chains) = (0u64, 0u64, 0u64);
    w.write_all(open)?;
    while written < count {
        if let Some((accounts, regions)) = org {
            pick_placement(&mut placement_rng, accounts, regions);
        }
        let roll = rng.below(10_000);
        let batch = if written % 50_000 == 25_000 {
            chains += 1;
            let chain = attack(&mut rng, written);
            if let Some(snapshot) = chain[0]["responseElements"]["snapshotId"].as_str() {
                planted.push(snapshot.to_string());
            }
            chain
        } else if roll < 90 {
            vec![benign(&mut rng, written)]
        } else {
            vec![unrelated(&mut rng, written)]
        };
        for r in batch {
            if r["eventName"].as_str().is_some_and(|n| {
                !matches!(
                    n,
                    "DescribeInstances"
                        | "AssumeRole"
                        | "GetObject"
                        | "Decrypt"
                        | "DescribeSnapshots"
                        | "CreateLogStream"
                        | "PutObject"
                        | "DescribeSecurityGroups"
                )
            }) {
                consumed += 1;
            }
            if written > 0 {
                w.write_all(separator)?;
            }
            if layout == "pretty" {
                serde_json::to_writer_pretty(&mut w, &r)?;
            } else {
                serde_json::to_writer(&mut w, &r)?;
            }
            written += 1;
        }
    }
    w.write_all(close)?;
    w.flush()?;
    if org.is_some() {
        let mut lines = planted.join("\n");
        lines.push('\n');
        std::fs::write(format!("{out}.chains"), lines)?;
    }
    eprintln!("gen_cloudtrail: {written} records, {consumed} consumed by the chain ({:.2} %), {chains} attack chains -> {out}", consumed as f64 * 100.0 / written as f64);
    Ok(())
}

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

fn identity(rng: &mut Rng) -> Value {
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
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-{}", rng.hex(6)),
        "accountId": ACCOUNT,
        "accessKeyId": format!("ASIA{}", rng.hex(16).to_uppercase()),
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}"), "accountId": ACCOUNT, "userName": role},
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
    json!({
        "eventVersion": "1.09",
        "userIdentity": user,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256)),
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.173.0",
        "requestParameters": req,
        "responseElements": resp,
        "requestID": rng.uuid(),
        "eventID": rng.uuid(),
        "readOnly": name.starts_with("Describe") || name.starts_with("Get") || name.starts_with("List"),
        "eventType": "AwsApiCall",
        "managementEvent": source != "s3.amazonaws.com",
        "recipientAccountId": ACCOUNT,
        "eventCategory": if source == "s3.amazonaws.com" { "Data" } else { "Management" },
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": format!("{}.us-east-1.amazonaws.com", source.split('.').next().unwrap_or("ec2"))}
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
            let group = format!("sg-{}", rng.hex(17));
            (
                "RunInstances",
                json!({"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}, "groupSet": {"items": [{"groupId": group}]}, "instanceType": "m6i.large"}),
                json!({"instancesSet": {"items": [{"instanceId": instance, "imageId": "ami-0abcdef1234567890", "groupSet": {"items": [{"groupId": group}]}}]}}),
            )
        }
        _ => {
            let group = format!("sg-{}", rng.hex(17));
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
    let mallory = json!({"type": "IAMUser", "principalId": "AIDAMALLORY", "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory-{}", rng.hex(4)), "accountId": ACCOUNT, "userName": "mallory"});
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
            json!({"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}, "groupSet": {"items": [{"groupId": group}]}, "blockDeviceMapping": {"items": [{"deviceName": "/dev/sdf", "ebs": {"snapshotId": snap}}]}}),
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
            "usage: gen_cloudtrail <records> <out-file> [jsonl|array|records|pretty] [--days N]"
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
    if rest.first().map(String::as_str) == Some("--days") {
        let days: u64 = rest
            .get(1)
            .ok_or_else(|| anyhow::anyhow!("--days needs a number"))?
            .parse()?;
        MILLIS_PER_RECORD.store((days * 86_400_000 / count.max(1)).max(1), Ordering::Relaxed);
    }
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let (mut written, mut consumed, mut chains) = (0u64, 0u64, 0u64);
    w.write_all(open)?;
    while written < count {
        let roll = rng.below(10_000);
        let batch = if written % 50_000 == 25_000 {
            chains += 1;
            attack(&mut rng, written)
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
    eprintln!("gen_cloudtrail: {written} records, {consumed} consumed by the chain ({:.2} %), {chains} attack chains -> {out}", consumed as f64 * 100.0 / written as f64);
    Ok(())
}

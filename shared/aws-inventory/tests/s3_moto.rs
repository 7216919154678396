//! The S3 client against moto's server (started by tests/servers/with-servers.sh, which exports
//! SNAPWATCH_MOTO_ENDPOINT), with the CloudTrail key layout, gzip objects of realistic size, a
//! KMS-encrypted bucket and more than one page of keys; and against a tiny local server for what
//! moto cannot do (throttle, cut a body short). Each test uses its own bucket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use chrono::NaiveDate;
use futures_util::stream::{self, StreamExt};
use snapwatch_aws_inventory::s3::{ListRequest, TrailDay};
use snapwatch_aws_inventory::signing::signed_post_headers;
use snapwatch_aws_inventory::{RetryPolicy, S3Client, S3Error};
use std::io::{Read, Write};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MOTO: &str = "SNAPWATCH_MOTO_ENDPOINT";
const REGION: &str = "us-east-1";

fn moto_endpoint() -> String {
    std::env::var(MOTO).unwrap_or_else(|_| {
        panic!("{MOTO} is not set: run under tests/servers/with-servers.sh (make test does)")
    })
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "s3-tests")
}

fn client(endpoint: &str) -> S3Client {
    S3Client::new(
        reqwest::Client::new(),
        SharedCredentialsProvider::new(credentials()),
        REGION,
        Some(endpoint),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
    })
}

async fn bucket(s3: &S3Client, name: &str) {
    s3.put(name, "", None, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {name}: {e}"));
}

/// A KMS key on moto (TrentService JSON protocol, signed like every call here).
async fn kms_key(endpoint: &str) -> String {
    let url = reqwest::Url::parse(endpoint).unwrap();
    let body = r#"{"Description":"snapwatch trail key","KeyUsage":"ENCRYPT_DECRYPT"}"#;
    let content_type = "application/x-amz-json-1.1";
    let headers = signed_post_headers(
        &credentials(),
        "kms",
        REGION,
        &url,
        content_type,
        body,
        SystemTime::now(),
    )
    .unwrap();
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("x-amz-target", "TrentService.CreateKey")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "CreateKey: {status} {text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
}

/// A CloudTrail-shaped object: `{"Records":[…]}` of `records` events, each with its own ids so
/// gzip compresses it as much as a real one and no more.
fn trail_object(records: usize, seed: u64) -> Vec<u8> {
    let mut json = String::from("{\"Records\":[");
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut hex = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        format!("{state:016x}")
    };
    for i in 0..records {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROA{a}:session-{i}","arn":"arn:aws:sts::111122223333:assumed-role/app/session-{i}","accountId":"111122223333","accessKeyId":"ASIA{b}"}},"eventTime":"2026-11-20T10:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"10.0.{o}.{p}","userAgent":"aws-sdk-java/2.20","requestParameters":{{"bucketName":"data-{c}","key":"objects/{d}.parquet"}},"responseElements":null,"requestID":"{e}","eventID":"{f}-{g}","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333"}}"#,
            a = hex(),
            b = hex(),
            c = hex(),
            d = hex(),
            e = hex(),
            f = hex(),
            g = hex(),
            m = i % 60,
            s = (i / 60) % 60,
            o = i % 256,
            p = (i / 256) % 256,
        ));
    }
    json.push_str("]}");
    json.into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_past_a_thousand_keys_with_start_after() {
    let s3 = client(&moto_endpoint());
    let name = "snapwatch-s3read-pages";
    bucket(&s3, name).await;
    let keys: Vec<String> = (0..1205).map(|i| format!("logs/{i:05}.json.gz")).collect();
    stream::iter(keys.iter())
        .for_each_concurrent(16, |key| {
            let s3 = &s3;
            async move { s3.put(name, key, None, b"x".to_vec()).await.unwrap() }
        })
        .await;
    s3.put(name, "other/a.json.gz", None, b"y".to_vec())
        .await
        .unwrap();

    let first = s3
        .list_objects(
            name,
            &ListRequest {
                prefix: "logs/",
                ..ListRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.objects.len(), 1000, "S3 pages by 1000 keys");
    assert!(first.next.is_some(), "a truncated page carries a token");

    let all = s3.list_all_objects(name, "logs/", None).await.unwrap();
    let listed: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(listed, keys.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(all.iter().all(|o| o.size == 1 && !o.etag.is_empty()));
    assert!(all.iter().all(|o| o.last_modified.is_some()));

    let after = s3
        .list_all_objects(name, "logs/", Some("logs/01100.json.gz"))
        .await
        .unwrap();
    assert_eq!(after.len(), 104);
    assert_eq!(after[0].key, "logs/01101.json.gz");

    let folders = s3.list_prefixes(name, "").await.unwrap();
    assert_eq!(folders, vec!["logs/".to_string(), "other/".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_encrypted_gzip_object_of_several_megabytes_is_streamed() {
    let endpoint = moto_endpoint();
    let s3 = client(&endpoint);
    let name = "snapwatch-s3read-kms";
    bucket(&s3, name).await;
    let key_arn = kms_key(&endpoint).await;
    let encryption = format!(
        r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key_arn}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#
    );
    s3.put(name, "", Some("encryption"), encryption.into_bytes())
        .await
        .unwrap();

    let plain = trail_object(24_000, 7);
    let packed = gzip(&plain);
    assert!(
        packed.len() > 2 << 20,
        "a realistic object: {} bytes gzipped",
        packed.len()
    );
    let key = "AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/eu-west-1/2026/11/20/111122223333_CloudTrail_eu-west-1_20261120T1005Z_AbCdEf.json.gz";
    s3.put(name, key, None, packed.clone()).await.unwrap();

    let listed = s3.list_all_objects(name, "AWSLogs/", None).await.unwrap();
    assert_eq!(listed.len(), 1);
    let body = s3.get_object(name, key).await.unwrap();
    assert_eq!(body.server_side_encryption.as_deref(), Some("aws:kms"));
    assert_eq!(body.etag.as_deref(), Some(listed[0].etag.as_str()));
    assert_eq!(body.content_length, Some(packed.len() as u64));
    assert_eq!(body.target(), format!("s3://{name}/{key}"));

    // Read through gzip on a blocking thread, as the CLI and the archive function do.
    let runtime = tokio::runtime::Handle::current();
    let (decoded, received) = tokio::task::spawn_blocking(move || {
        let mut reader = body.into_blocking_read(runtime);
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&mut reader)
            .read_to_end(&mut decoded)
            .unwrap();
        (decoded, reader.received())
    })
    .await
    .unwrap();
    assert_eq!(received, packed.len() as u64);
    assert!(decoded == plain, "the object comes back byte for byte");
    let parsed: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(parsed["Records"].as_array().unwrap().len(), 24_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_and_buckets_are_named() {
    let s3 = client(&moto_endpoint());
    let name = "snapwatch-s3read-missing";
    bucket(&s3, name).await;
    let err = s3
        .get_object(name, "AWSLogs/nope.json.gz")
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("s3://snapwatch-s3read-missing/AWSLogs/nope.json.gz"),
        "{err}"
    );
    let err = s3
        .list_all_objects("snapwatch-s3read-no-such-bucket", "", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, S3Error::NotFound { code, .. } if code == "NoSuchBucket"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudtrail_layout_is_walked_for_the_days_in_range_only() {
    let s3 = client(&moto_endpoint());
    let name = "snapwatch-s3read-layout";
    bucket(&s3, name).await;
    let keys = [
        // Organization trail under a trail prefix.
        "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/eu-west-1/2026/11/19/a.json.gz",
        "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/eu-west-1/2026/11/20/b.json.gz",
        "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/us-east-1/2026/11/21/c.json.gz",
        "trail/AWSLogs/o-ab12cd34ef/444455556666/CloudTrail/eu-west-1/2026/11/20/d.json.gz",
        "trail/AWSLogs/o-ab12cd34ef/444455556666/CloudTrail-Digest/eu-west-1/2026/11/20/x.json.gz",
        // The management account's own trail, per-account layout, beside the organization one.
        "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/2026/11/20/e.json.gz",
        "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/2026/10/01/old.json.gz",
        // Not the layout.
        "trail/AWSLogs/readme.txt",
    ];
    for key in keys {
        s3.put(name, key, None, b"{}".to_vec()).await.unwrap();
    }
    let from = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let until = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let days = s3
        .cloudtrail_days(name, "trail", from, until)
        .await
        .unwrap();
    let prefixes: Vec<&str> = days.iter().map(|d| d.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        vec![
            "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/2026/11/20/",
            "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/eu-west-1/2026/11/20/",
            "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/us-east-1/2026/11/20/",
            "trail/AWSLogs/o-ab12cd34ef/444455556666/CloudTrail/eu-west-1/2026/11/20/",
            "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/2026/11/21/",
            "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/eu-west-1/2026/11/21/",
            "trail/AWSLogs/o-ab12cd34ef/111122223333/CloudTrail/us-east-1/2026/11/21/",
            "trail/AWSLogs/o-ab12cd34ef/444455556666/CloudTrail/eu-west-1/2026/11/21/",
        ],
        "day by day, every account and region, never the digest folder"
    );
    assert_eq!(
        days[1],
        TrailDay {
            organization: Some("o-ab12cd34ef".into()),
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            day: from,
            prefix: prefixes[1].to_string(),
        }
    );
    assert_eq!(days[0].organization, None);
    let mut found = Vec::new();
    for day in &days {
        for object in s3.list_all_objects(name, &day.prefix, None).await.unwrap() {
            found.push(object.key.rsplit('/').next().unwrap().to_string());
        }
    }
    found.sort();
    assert_eq!(
        found,
        vec!["b.json.gz", "c.json.gz", "d.json.gz", "e.json.gz"]
    );

    // A deeper root: one account of the organization; and one region.
    let one = s3
        .cloudtrail_days(name, "trail/AWSLogs/o-ab12cd34ef/444455556666", from, from)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].account, "444455556666");
    let region = s3
        .cloudtrail_days(
            name,
            "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/",
            from,
            until,
        )
        .await
        .unwrap();
    assert_eq!(region.len(), 2);
    let err = s3
        .cloudtrail_days(
            name,
            "trail/AWSLogs/777788889999/CloudTrail/ap-south-1/2026/",
            from,
            until,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::InvalidEndpoint { .. }), "{err:?}");
}

/// Serves `answers` in turn, one per connection, as raw HTTP responses; returns the endpoint.
async fn raw_server(answers: Vec<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for answer in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 16 * 1024];
            let _ = socket.read(&mut request).await.unwrap();
            socket.write_all(&answer).await.unwrap();
            socket.shutdown().await.unwrap();
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_get_is_retried_and_a_body_cut_short_is_an_error_naming_the_object() {
    let slow_down = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 63\r\nConnection: close\r\n\r\n<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>\r\n".to_vec();
    let cut = b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789".to_vec();
    let endpoint = raw_server(vec![slow_down, cut]).await;
    let s3 = client(&endpoint);
    let mut body = s3.get_object("trail-bucket", "k.json.gz").await.unwrap();
    assert_eq!(body.etag.as_deref(), Some("abc"));
    let mut received = 0;
    let err = loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => panic!("a body 90 bytes short ended without an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(received, 10);
    assert!(matches!(err, S3Error::Body { bytes: 10, .. }), "{err:?}");
    assert!(
        err.to_string().contains("s3://trail-bucket/k.json.gz"),
        "{err}"
    );
}

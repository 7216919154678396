//! `snapwatch scan s3://BUCKET/PREFIX --since DAY --until DAY`: a backfill from a CloudTrail
//! archive bucket. The day folders of the range are listed account by account and region by
//! region (day by day, so events arrive roughly in time order), and each object is streamed
//! through the same reader as a local file: gzip, the record splitter, the scanner.
//!
//! After each object its chains are evaluated and delivered, and then, with `--state`, the
//! object (name and ETag) is recorded as finished: an interrupted backfill rerun with the same
//! state skips what was finished and reads the rest, and prints what the uninterrupted run
//! would have printed. An object that fails is reported by name and left unfinished.

use super::{ScanState, Scanner};
use crate::input;
use anyhow::Context;
use chrono::NaiveDate;
use indicatif::ProgressStyle;
use snapwatch_aws_inventory::s3::S3Body;
use snapwatch_aws_inventory::s3::TrailDay;
use snapwatch_aws_inventory::S3Client;
use snapwatch_core::render;
use snapwatch_http::error_chain;
use std::collections::VecDeque;
use std::time::Duration;

/// GETs in flight ahead of the object being parsed.
const PREFETCH: usize = 8;

/// The days of the archive to read, and where S3 is.
#[derive(Debug, Clone)]
pub struct Archive {
    /// First delivery day (UTC) read.
    pub since: NaiveDate,
    /// Last delivery day (UTC) read, inclusive.
    pub until: NaiveDate,
    /// Send S3 calls here instead of AWS (a local test server); path-style addressing.
    pub endpoint_url: Option<String>,
}

/// `s3://BUCKET/PREFIX` split into bucket and prefix; `None` for anything else.
pub fn parse_url(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

/// Reads the days of `archive` under `url`. Errors that stop the whole archive (no
/// credentials, a bucket that cannot be listed) are returned; an object that fails is reported
/// and counted, and the scan goes on.
pub(super) fn scan<S: ScanState>(
    scanner: &mut Scanner<'_, S>,
    url: &str,
    archive: &Archive,
    limits: &input::Limits,
) -> anyhow::Result<()> {
    let (bucket, prefix) =
        parse_url(url).with_context(|| format!("{url} is not an s3://BUCKET/PREFIX URL"))?;
    // One worker drives the downloads while this thread parses: the body reader blocks on the
    // runtime from outside it, which a current-thread runtime's handle cannot drive.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let s3 = runtime.block_on(client(bucket, archive))?;
    scanner.progress.set_message(format!("listing {url}"));
    let days = runtime
        .block_on(s3.cloudtrail_days(bucket, prefix, archive.since, archive.until))
        .with_context(|| format!("cannot list the CloudTrail folders of {url}"))?;
    if days.is_empty() {
        anyhow::bail!(
            "no CloudTrail folders (AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/) under {url}"
        );
    }
    scanner.progress.set_length(days.len() as u64);
    scanner.progress.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} day folders {elapsed}, ETA {eta} {prefix} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for day in &days {
        read_day(scanner, &runtime, &s3, bucket, day, limits)?;
        scanner.progress.inc(1);
        if scanner.store_error.is_some() {
            break;
        }
    }
    Ok(())
}

/// The S3 client for `bucket`: credentials and region from the AWS default chain (environment,
/// profiles, SSO, instance role), signed for the bucket's own region on AWS.
async fn client(bucket: &str, archive: &Archive) -> anyhow::Result<S3Client> {
    let sdk = snapwatch_aws_inventory::sdk::sdk_config(None).await;
    let credentials = sdk
        .credentials_provider()
        .context("no AWS credentials found (environment, ~/.aws profiles, SSO or instance role)")?;
    let endpoint = archive
        .endpoint_url
        .clone()
        .or_else(|| sdk.endpoint_url().map(str::to_string));
    let region = sdk.region().map_or("us-east-1", |r| r.as_ref()).to_string();
    // S3 answers a request in the wrong region with a redirect carrying the bucket's region;
    // `bucket_region` reads it, so it must not be followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")?;
    let s3 = S3Client::new(
        http.clone(),
        credentials.clone(),
        &region,
        endpoint.as_deref(),
    )?;
    if endpoint.is_some() {
        return Ok(s3);
    }
    let home = s3
        .bucket_region(bucket)
        .await
        .with_context(|| format!("cannot find the region of bucket {bucket}"))?;
    if home == region {
        return Ok(s3);
    }
    Ok(S3Client::new(http, credentials, &home, None)?)
}

fn read_day<S: ScanState>(
    scanner: &mut Scanner<'_, S>,
    runtime: &tokio::runtime::Runtime,
    s3: &S3Client,
    bucket: &str,
    day: &TrailDay,
    limits: &input::Limits,
) -> anyhow::Result<()> {
    let listed = runtime
        .block_on(s3.list_all_objects(bucket, &day.prefix, None))
        .with_context(|| format!("cannot list s3://{bucket}/{}", day.prefix))?;
    let mut unread = Vec::with_capacity(listed.len());
    for object in listed {
        if object.key.ends_with('/') {
            continue; // a folder marker, not a log file
        }
        let source = format!("s3://{bucket}/{}", object.key);
        match scanner
            .detector
            .store()
            .object_finished(&source, &object.etag)
        {
            Ok(true) => scanner.report.archive.already_finished += 1,
            Ok(false) => unread.push((source, object)),
            Err(e) => {
                scanner.store_error = Some(e.context("chain state store failed"));
                return Ok(());
            }
        }
    }
    // The next few GETs are started while one object is parsed: objects are small and many, so a
    // backfill waits on request latency far more than on bandwidth. Each body is read in order,
    // and only as far as the connection buffers until its turn.
    let fetch = |key: &str| {
        let (s3, bucket, key) = (s3.clone(), bucket.to_string(), key.to_string());
        runtime.spawn(async move { s3.get_object(&bucket, &key).await })
    };
    let mut queue = unread.into_iter();
    let mut inflight = VecDeque::with_capacity(PREFETCH);
    for (source, object) in queue.by_ref().take(PREFETCH) {
        let started = fetch(&object.key);
        inflight.push_back((source, object, started));
    }
    while let Some((source, object, started)) = inflight.pop_front() {
        if let Some((next_source, next)) = queue.next() {
            let next_started = fetch(&next.key);
            inflight.push_back((next_source, next, next_started));
        }
        let body = match runtime.block_on(started) {
            Ok(body) => body.map_err(|e| error_chain(&e)),
            Err(join) => Err(format!("the download task failed: {join}")),
        };
        match body.and_then(|body| read_object(scanner, runtime, body, &source, limits)) {
            Ok(etag) => {
                // Its chains are evaluated and delivered before it counts as finished, so a
                // rerun that skips it loses nothing.
                if let Err(e) = scanner.flush() {
                    scanner.store_error = Some(e.context("chain state store failed"));
                }
                if scanner.store_error.is_some() {
                    return Ok(());
                }
                let etag = etag.unwrap_or(object.etag);
                if let Err(e) = scanner.detector.store().finish_object(&source, &etag) {
                    scanner.store_error = Some(e.context("chain state store failed"));
                    return Ok(());
                }
                scanner.report.archive.objects += 1;
                scanner.report.archive.bytes += object.size;
                scanner.progress.set_prefix(format!(
                    "{} objects, {} MB",
                    scanner.report.archive.objects,
                    scanner.report.archive.bytes / 1_000_000
                ));
            }
            Err(message) => {
                scanner.report.archive.failed += 1;
                scanner.report.unreadable_paths += 1;
                let (source, message) =
                    (render::escape_line(&source), render::escape_line(&message));
                scanner
                    .progress
                    .suspend(|| eprintln!("snapwatch: error: cannot read {source}: {message}"));
            }
        }
        if scanner.store_error.is_some() {
            return Ok(());
        }
    }
    Ok(())
}

/// Streams one object's body through the reader; its ETag on success, what failed otherwise.
fn read_object<S: ScanState>(
    scanner: &mut Scanner<'_, S>,
    runtime: &tokio::runtime::Runtime,
    body: S3Body,
    source: &str,
    limits: &input::Limits,
) -> Result<Option<String>, String> {
    let etag = body.etag.clone();
    let reader = body.into_blocking_read(runtime.handle().clone());
    input::read_stream(source, reader, limits, scanner).map_err(|e| error_chain(&e))?;
    Ok(etag)
}

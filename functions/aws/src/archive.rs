//! The CloudTrail archive as a source: S3 object-created notifications arrive through SQS, each
//! `.json.gz` log file under `AWSLogs/…/CloudTrail/` is streamed (gunzip over the streamed body,
//! records split as they arrive), and only the records the chain consumes go through the event
//! function's core path ([`App::detect`]): the same DynamoDB state, claims and sinks, so a chain
//! seen through EventBridge and through the archive alerts once.
//!
//! Per object: a ledger item (bucket, key, ETag or version id) marks it finished, so a
//! redelivered notification processes nothing twice. A message whose object fails is reported
//! alone in `batchItemFailures` (SQS retries it, then moves it to the queue's dead-letter
//! queue); a record that cannot be parsed is kept in the event function's dead-letter queue with
//! the object key, line and position, and the object still completes.

pub mod ledger;
pub mod s3;
pub mod split;

use crate::dead_letter::{DeadLetter, DeadLetterError, Rejected};
use crate::handler::{diagnostic, App, HandlerError, SessionStore};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use ledger::ObjectLedger;
use serde::{Deserialize, Serialize};
use snapwatch_core::parse::detect::for_each_contained_record_prefiltered;
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{AlertSink, StoreError};
use snapwatch_core::ParsedEvent;
use std::collections::BTreeMap;
use std::future::Future;
use tracing::Instrument;

/// One S3 object version a notification names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key, URL-decoded (notifications encode it, with `+` for a space).
    pub key: String,
    /// The ETag without quotes, when the notification carries one.
    pub etag: Option<String>,
    /// The version id in a versioned bucket.
    pub version_id: Option<String>,
    /// Size in bytes as notified.
    pub size: Option<u64>,
}

impl ObjectRef {
    /// `s3://bucket/key`, for logs and dead-letter reasons.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Why reading an object failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ObjectError {
    pub message: String,
    /// Throttling or network: a later delivery may succeed.
    pub retryable: bool,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The body of one object, read chunk by chunk.
pub trait ObjectBody: Send {
    /// The next chunk of the (compressed) body; `None` at its end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, ObjectError>> + Send;
}

/// Opens objects for streaming (S3 GetObject in the function; memory in tests).
pub trait ObjectReader: Send + Sync {
    type Body: ObjectBody;
    fn open(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<Self::Body, ObjectError>> + Send;
}

/// What a key under the trail bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `[prefix/]AWSLogs/[o-org/]ACCOUNT/CloudTrail/…​.json.gz`: a log file to read.
    CloudTrail,
    /// `AWSLogs/…/CloudTrail-Digest/…`: integrity digests, no events.
    Digest,
    /// Anything else (Insights, Config, other services' logs, other files).
    Other,
}

/// Classifies a (decoded) key by the layouts CloudTrail writes: the per-account
/// `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/FILE.json.gz` and the organization
/// `AWSLogs/o-ORG/ACCOUNT/CloudTrail/…`, each under an optional trail prefix.
pub fn classify_key(key: &str) -> KeyKind {
    let segments: Vec<&str> = key.split('/').collect();
    let Some(logs) = segments.iter().position(|s| *s == "AWSLogs") else {
        return KeyKind::Other;
    };
    let rest = &segments[logs + 1..];
    let rest = match rest.first() {
        Some(org) if org.starts_with("o-") => &rest[1..],
        _ => rest,
    };
    let is_account = |s: &&str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    match rest {
        [account, "CloudTrail", .., file] if is_account(account) && file.ends_with(".json.gz") => {
            KeyKind::CloudTrail
        }
        [account, "CloudTrail-Digest", ..] if is_account(account) => KeyKind::Digest,
        _ => KeyKind::Other,
    }
}

/// Decodes a key as S3 notifications write it: form encoding, `+` for a space and `%XX` bytes.
/// A malformed escape is kept as written.
pub fn decode_key(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Option<Vec<NotificationRecord>>,
    /// `s3:TestEvent` when S3 checks the queue as the notification is configured.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct NotificationRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: NotifiedS3,
}

#[derive(Deserialize)]
struct NotifiedS3 {
    bucket: NotifiedBucket,
    object: NotifiedObject,
}

#[derive(Deserialize)]
struct NotifiedBucket {
    name: String,
}

#[derive(Deserialize)]
struct NotifiedObject {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

/// What one SQS message asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// S3's `s3:TestEvent`: nothing to read.
    Test,
    /// The objects created (one per record; S3 sends one).
    Objects(Vec<ObjectRef>),
}

/// Reads an SQS message body as an S3 event notification.
pub fn parse_notification(body: &str) -> Result<Notice, String> {
    let notification: Notification =
        serde_json::from_str(body).map_err(|e| format!("not an S3 event notification: {e}"))?;
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notice::Test);
    }
    let records = notification
        .records
        .ok_or("not an S3 event notification: no Records")?;
    Ok(Notice::Objects(
        records
            .into_iter()
            .filter(|r| r.event_name.starts_with("ObjectCreated:"))
            .map(|r| ObjectRef {
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key),
                etag: r
                    .s3
                    .object
                    .etag
                    .map(|e| e.trim_matches('"').to_string())
                    .filter(|e| !e.is_empty()),
                version_id: r.s3.object.version_id.filter(|v| !v.is_empty()),
                size: r.s3.object.size,
            })
            .collect(),
    ))
}

/// Why an object could not be completed (its message is reported as a batch item failure).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: ObjectError,
    },
    /// Not gzip, a truncated stream, or not a CloudTrail log file.
    #[error("{url} is not a readable CloudTrail log file: {reason}")]
    Corrupt { url: String, reason: String },
    #[error("{url}: {source}")]
    Handler {
        url: String,
        #[source]
        source: HandlerError,
    },
    #[error("{url}: cannot keep a rejected record: {source}")]
    DeadLetter {
        url: String,
        #[source]
        source: DeadLetterError,
    },
    #[error("{url}: object ledger: {source}")]
    Ledger {
        url: String,
        #[source]
        source: StoreError,
    },
}

impl ArchiveError {
    /// The stable type logged with a failed message (as the event function's `errorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            ArchiveError::Read { source, .. } if source.retryable => "ObjectUnavailable",
            ArchiveError::Read { .. } => "ObjectFailed",
            ArchiveError::Corrupt { .. } => "ObjectCorrupt",
            ArchiveError::Handler { source, .. } => source.error_type(),
            ArchiveError::DeadLetter { source, .. } if source.is_retryable() => {
                "DeadLetterUnavailable"
            }
            ArchiveError::DeadLetter { .. } => "DeadLetterFailed",
            ArchiveError::Ledger {
                source: StoreError::Unavailable { .. },
                ..
            } => "StoreUnavailable",
            ArchiveError::Ledger { .. } => "StoreFailed",
        }
    }
}

/// What was done with one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectOutcome {
    pub key: String,
    /// `processed`, `already_done`, `digest` or `not_cloudtrail`.
    pub status: &'static str,
    /// Records in the object.
    pub records: u64,
    /// Records the chain consumes, ingested.
    pub events: u64,
    /// Well-formed records that are not chain evidence, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records kept in the dead-letter queue.
    pub dead_lettered: u64,
    /// Ids of the findings the object's events yield.
    pub findings: Vec<String>,
    /// Finding ids delivered while reading it, per sink.
    pub sent: BTreeMap<&'static str, Vec<String>>,
}

/// What was done with one SQS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageOutcome {
    pub message_id: String,
    /// `test_event`, `dead_lettered` (a body that is no notification), `done` or `failed`.
    pub status: &'static str,
    pub objects: Vec<ObjectOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One batch: the partial batch response the function returns, and what each message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub messages: Vec<MessageOutcome>,
}

/// A record kept in the dead-letter queue is cut to this size (an SQS message holds 256 KiB).
const MAX_KEPT_RECORD_BYTES: usize = 200 * 1024;
/// A CloudTrail record is at most a few hundred KB; a larger element is rejected unread.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// The ledger keeps a finished object this long: past SQS's longest retention (14 days).
const LEDGER_DAYS: i64 = 30;

/// The archive function: the event function's [`App`] plus an object reader and the ledger.
pub struct ArchiveApp<St, Dl, Sn, Sl, R, L> {
    pub app: App<St, Dl, Sn, Sl>,
    pub reader: R,
    pub ledger: L,
}

#[derive(Deserialize)]
struct EventIdOnly {
    #[serde(rename = "eventID")]
    event_id: Option<String>,
}

impl<St, Dl, Sn, Sl, R, L> ArchiveApp<St, Dl, Sn, Sl, R, L>
where
    St: SessionStore,
    Dl: DeadLetter,
    Sn: AlertSink,
    Sl: AlertSink,
    R: ObjectReader,
    L: ObjectLedger,
{
    /// Handles one SQS batch; each message succeeds or fails on its own.
    pub async fn handle(&self, event: SqsEvent) -> BatchOutcome {
        self.handle_until(event, None).await
    }

    /// Like [`ArchiveApp::handle`], starting no message after `stop_at`: those are reported as
    /// failures (SQS redelivers them) instead of the invocation timing out, which would
    /// redeliver the whole batch.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        stop_at: Option<std::time::SystemTime>,
    ) -> BatchOutcome {
        let mut failures = Vec::new();
        let mut messages = Vec::new();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if stop_at.is_some_and(|stop| std::time::SystemTime::now() >= stop) {
                tracing::warn!(message_id = %id, "not started: the invocation is running out of time");
                failures.push(BatchItemFailure {
                    item_identifier: id.clone(),
                });
                messages.push(MessageOutcome {
                    message_id: id,
                    status: "failed",
                    objects: Vec::new(),
                    error: Some("not started: the invocation ran out of time".into()),
                });
                continue;
            }
            let span = tracing::info_span!("message", message_id = %id);
            let outcome = self.message(&message, &id).instrument(span).await;
            if outcome.status == "failed" {
                failures.push(BatchItemFailure {
                    item_identifier: id,
                });
            }
            messages.push(outcome);
        }
        BatchOutcome {
            response: SqsBatchResponse {
                batch_item_failures: failures,
            },
            messages,
        }
    }

    async fn message(&self, message: &SqsMessage, id: &str) -> MessageOutcome {
        let body = message.body.as_deref().unwrap_or("");
        let mut outcome = MessageOutcome {
            message_id: id.to_string(),
            status: "done",
            objects: Vec::new(),
            error: None,
        };
        let objects = match parse_notification(body) {
            Ok(Notice::Test) => {
                tracing::info!("s3:TestEvent skipped");
                outcome.status = "test_event";
                return outcome;
            }
            Ok(Notice::Objects(objects)) => objects,
            Err(reason) => {
                // Not a notification: retrying cannot help, so it is kept with its reason.
                tracing::warn!(reason = %reason, "message kept in the dead-letter queue");
                let kept = self
                    .app
                    .dead_letter
                    .keep(&Rejected {
                        event_id: Some(id.to_string()),
                        reason: reason.clone(),
                        raw: body.to_string(),
                    })
                    .await;
                return match kept {
                    Ok(()) => MessageOutcome {
                        status: "dead_lettered",
                        error: Some(reason),
                        ..outcome
                    },
                    Err(err) => MessageOutcome {
                        status: "failed",
                        error: Some(format!("{reason}; and cannot keep it: {err}")),
                        ..outcome
                    },
                };
            }
        };
        for object in objects {
            match self.object(&object).await {
                Ok(done) => outcome.objects.push(done),
                Err(err) => {
                    let diagnostic = diagnostic(&err, err.error_type());
                    tracing::error!(
                        object = %object.url(),
                        error_type = %diagnostic.error_type,
                        error = %diagnostic.error_message,
                        "object not completed; the message will be redelivered"
                    );
                    outcome.status = "failed";
                    outcome.error = Some(diagnostic.error_message);
                    // The message is redelivered whole: later objects wait for that delivery.
                    break;
                }
            }
        }
        outcome
    }

    /// Reads one object unless the ledger says it is done.
    pub async fn object(&self, object: &ObjectRef) -> Result<ObjectOutcome, ArchiveError> {
        let mut outcome = ObjectOutcome {
            key: object.key.clone(),
            ..ObjectOutcome::default()
        };
        match classify_key(&object.key) {
            KeyKind::CloudTrail => {}
            KeyKind::Digest => {
                outcome.status = "digest";
                tracing::info!(object = %object.url(), "digest file skipped");
                return Ok(outcome);
            }
            KeyKind::Other => {
                outcome.status = "not_cloudtrail";
                tracing::info!(object = %object.url(), "not a CloudTrail log file; skipped");
                return Ok(outcome);
            }
        }
        let ledger = |source| ArchiveError::Ledger {
            url: object.url(),
            source,
        };
        if self.ledger.is_finished(object).await.map_err(ledger)? {
            outcome.status = "already_done";
            tracing::info!(object = %object.url(), "already processed; skipped");
            return Ok(outcome);
        }
        self.read(object, &mut outcome).await?;
        let now: DateTime<Utc> = self.app.clock.now();
        self.ledger
            .finish(object, now, now + chrono::Duration::days(LEDGER_DAYS))
            .await
            .map_err(ledger)?;
        outcome.status = "processed";
        outcome.findings.sort();
        outcome.findings.dedup();
        tracing::info!(
            object = %object.url(),
            records = outcome.records,
            events = outcome.events,
            dead_lettered = outcome.dead_lettered,
            findings = ?outcome.findings,
            sent = ?outcome.sent,
            "object processed"
        );
        Ok(outcome)
    }

    /// Streams the object. Shape: the async side reads the compressed chunks and hands them
    /// through a bounded channel to a blocking thread, where gzip and the core's splitter (the
    /// CLI's) read them as a `Read`; each record comes back through a second bounded channel and
    /// is handled (facts stored, findings sent) while the next ones are split.
    async fn read(
        &self,
        object: &ObjectRef,
        outcome: &mut ObjectOutcome,
    ) -> Result<(), ArchiveError> {
        let read_error = |source| ArchiveError::Read {
            url: object.url(),
            source,
        };
        let mut body = self.reader.open(object).await.map_err(read_error)?;
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel(split::CHUNKS_IN_FLIGHT);
        let (record_tx, mut record_rx) = tokio::sync::mpsc::channel(split::RECORDS_IN_FLIGHT);
        let splitting = tokio::task::spawn_blocking(move || {
            split::split_object(chunk_rx, record_tx, MAX_RECORD_BYTES)
        });
        let pump = async move {
            while let Some(chunk) = body.next_chunk().await? {
                if chunk_tx.send(chunk).await.is_err() {
                    break; // the split ended early: its result says why
                }
            }
            // Dropping the sender ends the splitter's input.
            Ok::<(), ObjectError>(())
        };
        let handle = async move {
            // Records split before a corrupt stretch are still handled.
            while let Some(piece) = record_rx.recv().await {
                // Returning drops the receiver, which stops the splitter.
                self.piece(object, piece, outcome).await?;
            }
            Ok::<(), ArchiveError>(())
        };
        let (pumped, handled) = tokio::join!(pump, handle);
        let split = splitting.await;
        pumped.map_err(read_error)?;
        handled?;
        match split {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ArchiveError::Corrupt {
                url: object.url(),
                reason,
            }),
            Err(join) => Err(ArchiveError::Corrupt {
                url: object.url(),
                reason: format!("the splitting thread failed: {join}"),
            }),
        }
    }

    async fn piece(
        &self,
        object: &ObjectRef,
        piece: split::Piece,
        outcome: &mut ObjectOutcome,
    ) -> Result<(), ArchiveError> {
        outcome.records += 1;
        let (line, index, events, rejects) = match piece {
            split::Piece::Record { text, line, index } => {
                let (events, rejects) = parse_record(&text);
                (line, index, events, rejects)
            }
            // Not held, so not kept: the reason says where it is.
            split::Piece::Skipped { line, index, why } => (
                line,
                index,
                Vec::new(),
                vec![(why.to_string(), String::new())],
            ),
        };
        for (reason, raw) in rejects {
            self.keep_rejected(object, line, index, reason, raw).await?;
            outcome.dead_lettered += 1;
        }
        for parsed in events {
            match parsed {
                Parsed::Skipped(skip) => *outcome.skipped.entry(skip.as_str()).or_default() += 1,
                Parsed::Event(event) => {
                    outcome.events += 1;
                    self.detect(object, &event, outcome).await?;
                }
            }
        }
        Ok(())
    }

    async fn detect(
        &self,
        object: &ObjectRef,
        event: &ParsedEvent,
        outcome: &mut ObjectOutcome,
    ) -> Result<(), ArchiveError> {
        let detected = self
            .app
            .detect(event)
            .await
            .map_err(|source| ArchiveError::Handler {
                url: object.url(),
                source,
            })?;
        outcome.findings.extend(detected.findings);
        for (sink, ids) in detected.sent {
            outcome.sent.entry(sink).or_default().extend(ids);
        }
        Ok(())
    }

    async fn keep_rejected(
        &self,
        object: &ObjectRef,
        line: usize,
        index: usize,
        reason: String,
        raw: String,
    ) -> Result<(), ArchiveError> {
        let reason = format!("{} line {line} record {index}: {reason}", object.url());
        tracing::warn!(reason = %reason, "record cannot be parsed; keeping it in the dead-letter queue");
        let event_id = serde_json::from_str::<EventIdOnly>(&raw)
            .ok()
            .and_then(|r| r.event_id);
        self.app
            .dead_letter
            .keep(&Rejected {
                event_id,
                reason,
                raw,
            })
            .await
            .map_err(|source| ArchiveError::DeadLetter {
                url: object.url(),
                source,
            })
    }
}

/// Parses one `Records` element with the core's prefiltered parser: its parsed outcomes, and
/// its rejects as (reason, record text cut to what a dead-letter message holds).
fn parse_record(text: &str) -> (Vec<Parsed>, Vec<(String, String)>) {
    let mut parsed = Vec::new();
    let mut rejects = Vec::new();
    let cut = |text: &str| {
        let mut end = text.len().min(MAX_KEPT_RECORD_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    };
    for_each_contained_record_prefiltered(text, &mut |o| match o.result {
        Ok(p) => parsed.push(p),
        Err(reason) => rejects.push((reason.to_string(), cut(o.raw))),
    });
    (parsed, rejects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_the_layouts_cloudtrail_writes() {
        let cases = [
            ("AWSLogs/111122223333/CloudTrail/eu-west-1/2025/03/10/111122223333_CloudTrail_eu-west-1_20250310T1200Z_abc.json.gz", KeyKind::CloudTrail),
            ("AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1/2025/03/10/f.json.gz", KeyKind::CloudTrail),
            ("trail prefix/AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/10/f.json.gz", KeyKind::CloudTrail),
            ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/10/f.json.gz", KeyKind::Digest),
            ("AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail-Digest/us-east-1/f.json.gz", KeyKind::Digest),
            ("AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2025/03/10/f.json.gz", KeyKind::Other),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/10/f.json", KeyKind::Other),
            ("AWSLogs/111122223333/Config/us-east-1/f.json.gz", KeyKind::Other),
            ("AWSLogs/1111/CloudTrail/us-east-1/f.json.gz", KeyKind::Other),
            ("AWSLogs/111122223333/CloudTrail", KeyKind::Other),
            ("elsewhere/f.json.gz", KeyKind::Other),
        ];
        for (key, kind) in cases {
            assert_eq!(classify_key(key), kind, "{key}");
        }
    }

    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(
            decode_key("trail+logs/a%2Bb%3D%E2%9C%93"),
            "trail logs/a+b=✓"
        );
        assert_eq!(decode_key("bad%zz%4"), "bad%zz%4");
        assert_eq!(decode_key("end%"), "end%");
    }

    #[test]
    fn notifications_name_created_objects_and_the_test_event_is_recognised() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-03-10T12:00:00.000Z","Bucket":"trail","RequestId":"R","HostId":"H"}"#;
        assert_eq!(parse_notification(test), Ok(Notice::Test));
        let created = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"trail","arn":"arn:aws:s3:::trail"},"object":{"key":"my+prefix/AWSLogs/111122223333/CloudTrail/x.json.gz","size":12,"eTag":"\"abc\"","versionId":"v1","sequencer":"0A"}}},{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"trail"},"object":{"key":"gone"}}}]}"#;
        assert_eq!(
            parse_notification(created),
            Ok(Notice::Objects(vec![ObjectRef {
                bucket: "trail".into(),
                key: "my prefix/AWSLogs/111122223333/CloudTrail/x.json.gz".into(),
                etag: Some("abc".into()),
                version_id: Some("v1".into()),
                size: Some(12),
            }]))
        );
        assert!(parse_notification("{}").is_err());
        assert!(parse_notification("not json").is_err());
    }
}

//! `snapwatch scan`: every record through the parsers into the detector, then the findings out.
//!
//! Each chain is judged in its own time: evaluation sees every fact still held and the rules
//! check the window between a chain's own events, so a finding does not depend on where the scan
//! ends. Facts are stored as records are read; the touched chains are evaluated in intervals (one
//! window of event time, or [`FLUSH_EVENTS`] events), after which facts that no record read in
//! the interval could link to are dropped, so memory follows one window of history, not all of it.

#[cfg(feature = "baseline")]
#[path = "scan_s3.rs"]
pub mod s3;

use crate::input::{self, UnitHandler};
use crate::OutputFormat;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapwatch_core::engine::{Delivery, Detector};
use snapwatch_core::finding::sort_findings;
use snapwatch_core::memory::MemoryStore;
use snapwatch_core::parse::detect::{
    for_each_contained_record_prefiltered, for_each_record_prefiltered, RecordOutcome,
};
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{AlertSink, SinkError, StateStore};
use snapwatch_core::{render, Config, Finding};
use snapwatch_sqlite::SqliteStore;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

pub struct Options {
    pub format: OutputFormat,
    /// Whether chain state persists (`--state`): undelivered findings then wait for the next scan.
    pub state: bool,
    pub paths: Vec<PathBuf>,
    pub read: input::ReadOptions,
    /// The days to read of `s3://` paths.
    #[cfg(feature = "baseline")]
    pub archive: Option<s3::Archive>,
}

/// Whether a PATH names an S3 archive (`s3://BUCKET/PREFIX`) rather than a file.
pub fn is_s3_url(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("s3://"))
}

/// What a scan of `s3://` archives read, for the summary.
#[derive(Debug, Default)]
pub struct ArchiveReport {
    /// Objects read to their end.
    pub objects: u64,
    /// Bytes of those objects, as stored (compressed).
    pub bytes: u64,
    /// Objects skipped because the state says an earlier scan finished them.
    pub already_finished: u64,
    /// Objects that could not be read (reported by name; not finished, so a rerun tries again).
    pub failed: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub records: u64,
    pub events: u64,
    pub facts: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    pub rejected: u64,
    pub findings: usize,
    pub printed: usize,
    pub below_threshold: usize,
    pub already_reported: usize,
    /// Findings stdout did not take (closed pipe, full disk); with `--state` they stay unreported.
    pub not_delivered: usize,
    pub unreadable_paths: usize,
    pub hidden_paths: usize,
    pub special_files: usize,
    pub walk_loops: usize,
    /// Findings whose chain ended more than the window before the newest event of the scan:
    /// history the scan judged in its own time.
    pub from_history: usize,
    /// Bytes of the state file, when it is large enough to mention.
    pub state_bytes: Option<u64>,
    /// `s3://` archives read.
    pub archive: ArchiveReport,
}

/// The state a scan keeps, and how to drop what no later record can use.
pub trait ScanState: StateStore {
    /// Deletes facts that expired at or before `at` (unix seconds, event time).
    fn purge_facts(&self, at: i64) -> anyhow::Result<usize>;
    /// Deletes alert claims that expired at or before `at` (unix seconds, wall clock).
    fn purge_claims(&self, at: i64) -> anyhow::Result<usize>;
    /// Bytes on disk (0 in memory).
    fn bytes_on_disk(&self) -> u64;
    /// Whether an earlier scan with this state finished the archive object `source` (its
    /// `s3://` name) with this ETag. Never, without a state file.
    #[cfg_attr(
        not(feature = "baseline"),
        expect(dead_code, reason = "used by `scan s3://`")
    )]
    fn object_finished(&self, source: &str, etag: &str) -> anyhow::Result<bool>;
    /// Records that the archive object's records were read and their chains delivered.
    #[cfg_attr(
        not(feature = "baseline"),
        expect(dead_code, reason = "used by `scan s3://`")
    )]
    fn finish_object(&self, source: &str, etag: &str) -> anyhow::Result<()>;
}

impl ScanState for MemoryStore {
    fn purge_facts(&self, at: i64) -> anyhow::Result<usize> {
        Ok(self.purge_facts_expired(at))
    }
    fn purge_claims(&self, at: i64) -> anyhow::Result<usize> {
        Ok(self.purge_claims_expired(at))
    }
    fn bytes_on_disk(&self) -> u64 {
        0
    }
    fn object_finished(&self, _source: &str, _etag: &str) -> anyhow::Result<bool> {
        Ok(false)
    }
    fn finish_object(&self, _source: &str, _etag: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

impl ScanState for SqliteStore {
    fn purge_facts(&self, at: i64) -> anyhow::Result<usize> {
        Ok(self.purge_facts_expired(at)?)
    }
    fn purge_claims(&self, at: i64) -> anyhow::Result<usize> {
        Ok(self.purge_claims_expired(at)?)
    }
    fn bytes_on_disk(&self) -> u64 {
        self.file_size()
    }
    fn object_finished(&self, source: &str, etag: &str) -> anyhow::Result<bool> {
        Ok(SqliteStore::object_finished(self, source, etag)?)
    }
    fn finish_object(&self, source: &str, etag: &str) -> anyhow::Result<()> {
        Ok(SqliteStore::finish_object(self, source, etag, Utc::now())?)
    }
}

/// A state file at least this large is mentioned in the summary.
const LARGE_STATE_BYTES: u64 = 64 << 20;

/// Chain events after which the touched chains are evaluated and old facts dropped, even when
/// the interval spans less than a window of event time.
pub const FLUSH_EVENTS: u64 = 250_000;

/// Prints findings on stdout, one per line (jsonl) or as text blocks.
///
/// A finding counts as delivered only once it is written and flushed: a write error (closed
/// pipe, full disk) is retryable, so the engine releases its claim and a later scan with the
/// same `--state` prints it. After the first error nothing more is written, so no finding is
/// left half on stdout behind one that failed.
pub(crate) struct StdoutSink {
    format: OutputFormat,
    broken: Mutex<Option<String>>,
}

impl StdoutSink {
    pub(crate) fn new(format: OutputFormat) -> Self {
        StdoutSink {
            format,
            broken: Mutex::new(None),
        }
    }

    /// Why stdout stopped taking findings, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.broken.lock().ok().and_then(|b| b.clone())
    }
}

impl AlertSink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let mut rendered = match self.format {
            OutputFormat::Jsonl => render::finding_json(finding),
            OutputFormat::Text => render::text(finding),
            // One page holds every finding: `write_page`, never one finding at a time.
            OutputFormat::Html => {
                return Err(SinkError::Permanent {
                    sink: "stdout",
                    message: "an HTML report is written as one page".into(),
                })
            }
            OutputFormat::Ocsf => render::ocsf::detection_finding_json(finding),
        };
        rendered.push('\n');
        self.write(&rendered)
    }
}

impl StdoutSink {
    /// The whole HTML report, written and flushed at once: its findings count as delivered
    /// only when this returns `Ok`.
    pub(crate) fn write_page(
        &self,
        findings: &[&Finding],
        now: DateTime<Utc>,
    ) -> Result<(), SinkError> {
        self.write(&snapwatch_core::render_html::page(findings, now))
    }

    fn write(&self, rendered: &str) -> Result<(), SinkError> {
        let mut broken = self.broken.lock().map_err(|_| SinkError::Permanent {
            sink: "stdout",
            message: "stdout lock poisoned".into(),
        })?;
        let result = match broken.as_ref() {
            Some(earlier) => Err(earlier.clone()),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(rendered.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())
            }
        };
        result.map_err(|message| {
            *broken = Some(message.clone());
            SinkError::Retryable {
                sink: "stdout",
                message,
                retry_after_secs: None,
            }
        })
    }
}

struct Scanner<'d, S> {
    detector: &'d Detector<S>,
    report: Report,
    touched: BTreeSet<String>,
    /// The newest event time read so far (the event-time watermark).
    newest: Option<DateTime<Utc>>,
    /// Oldest and newest event times read since the last evaluation.
    interval: Option<(DateTime<Utc>, DateTime<Utc>)>,
    interval_events: u64,
    /// Every finding evaluated so far, by id.
    found: BTreeMap<String, Found>,
    /// Findings printed by this scan.
    printed: BTreeSet<String>,
    /// Findings stdout did not take (a finding printed in a later interval is not counted).
    undelivered: BTreeSet<String>,
    /// With `--format html`, the findings held for the one page written at the end.
    page: Option<BTreeMap<String, Finding>>,
    sink: &'d StdoutSink,
    store_error: Option<anyhow::Error>,
    progress: ProgressBar,
}

struct Found {
    /// When the chain's last event happened.
    ended: DateTime<Utc>,
    below_threshold: bool,
}

impl<S: ScanState> Scanner<'_, S> {
    fn record(&mut self, outcome: RecordOutcome<'_>, source: &str, lines: &mut input::RecordLines) {
        self.report.records += 1;
        if self.report.records.is_multiple_of(16_384) {
            self.progress.set_message(format!(
                "{} records, {} chain events",
                self.report.records, self.report.events
            ));
        }
        match outcome.result {
            Ok(Parsed::Skipped(skip)) => {
                *self.report.skipped.entry(skip.as_str()).or_default() += 1
            }
            Ok(Parsed::Event(event)) => {
                self.report.events += 1;
                self.report.facts += event.facts.len() as u64;
                let time = event.meta.time;
                self.newest = Some(self.newest.map_or(time, |t| t.max(time)));
                if self.store_error.is_some() {
                    return;
                }
                match pollster::block_on(self.detector.ingest(&event)) {
                    Ok(ingested) => self.touched.extend(ingested.touched),
                    Err(e) => {
                        self.store_error =
                            Some(anyhow::Error::new(e).context("chain state store failed"));
                        return;
                    }
                }
                let (from, to) = self
                    .interval
                    .map_or((time, time), |(a, b)| (a.min(time), b.max(time)));
                self.interval = Some((from, to));
                self.interval_events += 1;
                let window = chrono::Duration::seconds(self.detector.config().window_secs());
                if to - from > window || self.interval_events >= FLUSH_EVENTS {
                    if let Err(e) = self.flush() {
                        self.store_error = Some(e.context("chain state store failed"));
                    }
                }
            }
            Err(reason) => {
                // Records inside a container start later than the container's first line.
                let record_line = lines.line_of(outcome.raw);
                self.reject(source, record_line, reason.to_string());
            }
        }
    }

    /// Evaluates every chain touched since the last flush over all held facts, delivers the
    /// findings, then drops the facts that no record of this interval could link to: those more
    /// than a window older than its oldest record. A later record older than that is late and
    /// links only to the facts still held (README, "Evaluation clock").
    fn flush(&mut self) -> anyhow::Result<()> {
        let touched: Vec<String> = std::mem::take(&mut self.touched).into_iter().collect();
        let interval = self.interval.take();
        self.interval_events = 0;
        if !touched.is_empty() {
            let findings =
                pollster::block_on(self.detector.evaluate_held(&touched, EVALUATION_CHUNK))?;
            // Claims are about delivery, which happens now: their lease and expiry follow the
            // wall clock, whatever the age of the logs.
            match &mut self.page {
                // One HTML document: its findings are delivered together at the end, and a
                // chain evaluated again in a later interval keeps its fullest version.
                Some(page) => {
                    for finding in &findings {
                        page.insert(finding.id.clone(), finding.clone());
                    }
                }
                None => {
                    let delivery = pollster::block_on(self.detector.deliver(
                        &findings,
                        self.sink,
                        Utc::now(),
                    ))?;
                    self.delivered(delivery);
                }
            }
            // A chain evaluated in several intervals is counted once.
            let min_severity = self.detector.config().alerts.min_severity;
            for finding in findings {
                let entry = self.found.entry(finding.id).or_insert(Found {
                    ended: finding.last_seen,
                    below_threshold: finding.severity < min_severity,
                });
                entry.ended = entry.ended.max(finding.last_seen);
            }
        }
        if let Some((oldest, _)) = interval {
            // expires_at = event time + window: facts expired at the interval's oldest record.
            let cutoff = oldest.timestamp() - 1;
            self.detector.store().purge_facts(cutoff)?;
        }
        Ok(())
    }

    fn delivered(&mut self, delivery: Delivery) {
        self.printed.extend(delivery.sent);
        self.undelivered
            .extend(delivery.retry.into_iter().map(|(id, _)| id));
        self.undelivered
            .extend(delivery.rejected.into_iter().map(|(id, _)| id));
    }

    /// Writes the HTML page of every finding held for it, as one delivery: each finding counts
    /// as printed only once the whole page is written and flushed.
    fn deliver_page(&mut self) -> anyhow::Result<()> {
        let Some(page) = self.page.take() else {
            return Ok(());
        };
        let mut findings: Vec<Finding> = page.into_values().collect();
        sort_findings(&mut findings);
        let generated_at = self.newest.unwrap_or_else(Utc::now);
        let sink = self.sink;
        let write = |page: &[&Finding]| sink.write_page(page, generated_at);
        let delivery = pollster::block_on(self.detector.deliver_as_one(
            &findings,
            sink.name(),
            write,
            Utc::now(),
        ))?;
        self.delivered(delivery);
        Ok(())
    }

    fn reject(&mut self, source: &str, line: usize, reason: String) {
        self.report.rejected += 1;
        // File names and reasons carry attacker-chosen text: one escaped line per reject.
        let (source, reason) = (render::escape_line(source), render::escape_line(&reason));
        self.progress
            .suspend(|| eprintln!("snapwatch: rejected {source}:{line}: {reason}"));
    }
}

impl<S: ScanState> UnitHandler for Scanner<'_, S> {
    // Each record is handled as the parser yields it: nothing per record is kept.
    fn unit(&mut self, text: &str, source: &str, line: usize) {
        let mut lines = input::RecordLines::new(text, line);
        // Bulk logs are mostly unrelated records: a byte search rules them out before the probe.
        for_each_record_prefiltered(text, &mut |o| self.record(o, source, &mut lines));
    }

    fn element(&mut self, text: &str, source: &str, line: usize) {
        let mut lines = input::RecordLines::new(text, line);
        for_each_contained_record_prefiltered(text, &mut |o| self.record(o, source, &mut lines));
    }

    fn reject(&mut self, source: &str, line: usize, why: input::Rejection) {
        // Whatever was rejected counts as a record, so `rejected` never exceeds `records`.
        self.report.records += 1;
        Scanner::reject(self, source, line, input::reason(&why));
    }
}

impl<S: ScanState> input::PathHandler for Scanner<'_, S> {
    fn skipped_path(&mut self, path: &str, why: input::PathSkip) {
        let why = match why {
            input::PathSkip::Hidden => return self.report.hidden_paths += 1,
            input::PathSkip::NotRegular(kind) => {
                self.report.special_files += 1;
                format!("{kind}, not a regular file")
            }
            input::PathSkip::Loop => {
                self.report.walk_loops += 1;
                "directory already walked (symlink loop)".to_string()
            }
        };
        // Path names are attacker-chosen too: one escaped line per skipped path.
        let path = render::escape_line(path);
        self.progress
            .suspend(|| eprintln!("snapwatch: skipped {path}: {why}"));
    }
}

/// Resources evaluated per engine call: bounds the facts held decoded at once, so peak memory
/// follows the stored state rather than doubling it (hubs stay decoded, see the engine).
const EVALUATION_CHUNK: usize = 2_000;

pub fn run<S: ScanState>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let detector = Detector::new(store, config);
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let sink = StdoutSink::new(options.format);
    let mut scanner = Scanner {
        detector: &detector,
        report: Report::default(),
        touched: BTreeSet::new(),
        newest: None,
        interval: None,
        interval_events: 0,
        found: BTreeMap::new(),
        printed: BTreeSet::new(),
        undelivered: BTreeSet::new(),
        page: (options.format == OutputFormat::Html).then(BTreeMap::new),
        sink: &sink,
        store_error: None,
        progress,
    };
    for path in &options.paths {
        #[cfg(feature = "baseline")]
        if let (Some(url), Some(archive)) =
            (path.to_str().filter(|_| is_s3_url(path)), &options.archive)
        {
            if let Err(e) = s3::scan(&mut scanner, url, archive, &options.read.limits) {
                scanner.report.unreadable_paths += 1;
                let message = render::escape_line(&format!("{e:#}"));
                scanner
                    .progress
                    .suspend(|| eprintln!("snapwatch: error: {message}"));
            }
            continue;
        }
        for (name, error) in input::read_path(path, &options.read, &mut scanner) {
            scanner.report.unreadable_paths += 1;
            scanner.progress.suspend(|| {
                eprintln!(
                    "snapwatch: error: cannot read {}: {}",
                    render::escape_line(&name),
                    render::escape_line(&error.to_string())
                )
            });
        }
    }
    scanner.progress.finish_and_clear();
    if let Some(e) = scanner.store_error.take() {
        return Err(e);
    }
    scanner
        .flush()
        .and_then(|()| scanner.deliver_page())
        .map_err(|e| e.context("chain state store failed"))?;
    detector
        .store()
        .purge_claims(Utc::now().timestamp())
        .map_err(|e| e.context("chain state store failed"))?;
    let mut report = std::mem::take(&mut scanner.report);
    report.findings = scanner.found.len();
    report.printed = scanner.printed.len();
    report.not_delivered = scanner.undelivered.difference(&scanner.printed).count();
    report.below_threshold = scanner.found.values().filter(|f| f.below_threshold).count();
    report.already_reported = report
        .findings
        .saturating_sub(report.printed + report.not_delivered + report.below_threshold);
    if let Some(newest) = scanner.newest {
        let window = chrono::Duration::seconds(detector.config().window_secs());
        report.from_history = scanner
            .found
            .values()
            .filter(|f| f.ended < newest - window)
            .count();
    }
    let bytes = detector.store().bytes_on_disk();
    report.state_bytes = (bytes >= LARGE_STATE_BYTES).then_some(bytes);
    summarize(
        &report,
        detector.config().chain.window_days,
        started.elapsed().as_secs_f64(),
    );
    if let Some(reason) = sink.failure() {
        eprintln!(
            "snapwatch: error: cannot write findings to stdout: {}; {} not delivered{}",
            render::escape_line(&reason),
            report.not_delivered,
            if options.state {
                ", kept for the next scan with this --state"
            } else {
                ""
            }
        );
    }
    Ok(report)
}

fn summarize(r: &Report, window_days: u32, secs: f64) {
    let rate = if secs > 0.0 {
        r.records as f64 / secs
    } else {
        0.0
    };
    let skipped: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "snapwatch: {} records in {secs:.2}s ({rate:.0}/s); chain events {} ({} facts); skipped {}; rejected {}",
        r.records,
        r.events,
        r.facts,
        if skipped.is_empty() { "0".to_string() } else { skipped.join(", ") },
        r.rejected,
    );
    let not_delivered = if r.not_delivered > 0 {
        format!(", not delivered {}", r.not_delivered)
    } else {
        String::new()
    };
    eprintln!(
        "snapwatch: findings {} (printed {}{not_delivered}, below min_severity {}, already reported in state {}, from chains that ended more than {window_days} days before the newest event {})",
        r.findings, r.printed, r.below_threshold, r.already_reported, r.from_history
    );
    if r.hidden_paths + r.special_files + r.walk_loops > 0 {
        eprintln!(
            "snapwatch: paths not read: hidden {} (--include-hidden reads them), not regular files {}, symlink loops {}",
            r.hidden_paths, r.special_files, r.walk_loops
        );
    }
    let a = &r.archive;
    if a.objects + a.already_finished + a.failed > 0 {
        eprintln!(
            "snapwatch: s3 objects read {} ({} MB), skipped as finished in state {}, failed {}",
            a.objects,
            a.bytes / 1_000_000,
            a.already_finished,
            a.failed
        );
    }
    if let Some(bytes) = r.state_bytes {
        eprintln!(
            "snapwatch: state file {} MB (expired facts and claims are purged; the file reuses the freed space)",
            bytes / 1_000_000
        );
    }
}

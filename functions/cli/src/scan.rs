//! `snapwatch scan`: every record through the parsers into the detector, then the findings out.
//!
//! Exported logs are evaluated as one batch: all facts are stored first and every touched chain
//! is evaluated once at the end, against the newest event time seen (old logs are judged by their
//! own clock, not today's), so the output does not depend on file or record order.

use crate::input::{self, UnitHandler};
use crate::OutputFormat;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapwatch_core::engine::{sort_findings, Delivery, Detector};
use snapwatch_core::parse::detect::{for_each_contained_record, for_each_record, RecordOutcome};
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{AlertSink, SinkError, StateStore};
use snapwatch_core::{render, Config, Finding};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

pub struct Options {
    pub format: OutputFormat,
    pub paths: Vec<PathBuf>,
    pub read: input::ReadOptions,
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
    pub unreadable_paths: usize,
    pub hidden_paths: usize,
    pub special_files: usize,
    pub walk_loops: usize,
}

/// Prints findings on stdout, one per line (jsonl) or as text blocks.
pub(crate) struct StdoutSink {
    format: OutputFormat,
    out: Mutex<BufWriter<Stdout>>,
}

impl StdoutSink {
    pub(crate) fn new(format: OutputFormat) -> Self {
        StdoutSink {
            format,
            out: Mutex::new(BufWriter::new(std::io::stdout())),
        }
    }

    /// A closed stdout (`| head`) is not worth an error after the findings were produced.
    pub(crate) fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

impl AlertSink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn send(&self, finding: &Finding) -> Result<(), SinkError> {
        let rendered = match self.format {
            OutputFormat::Jsonl => render::finding_json(finding),
            OutputFormat::Text => render::text(finding),
        };
        let mut out = self.out.lock().map_err(|_| SinkError::Permanent {
            sink: "stdout",
            message: "stdout lock poisoned".into(),
        })?;
        writeln!(out, "{rendered}").map_err(|e| SinkError::Permanent {
            sink: "stdout",
            message: e.to_string(),
        })
    }
}

struct Scanner<'d, S> {
    detector: &'d Detector<S>,
    report: Report,
    touched: BTreeSet<String>,
    newest: Option<DateTime<Utc>>,
    store_error: Option<snapwatch_core::engine::EngineError>,
    progress: ProgressBar,
}

impl<S: StateStore> Scanner<'_, S> {
    fn record(&mut self, outcome: RecordOutcome<'_>, source: &str, lines: &mut input::RecordLines) {
        self.report.records += 1;
        if self.report.records % 16_384 == 0 {
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
                self.newest = Some(
                    self.newest
                        .map_or(event.meta.time, |t| t.max(event.meta.time)),
                );
                if self.store_error.is_some() {
                    return;
                }
                match pollster::block_on(self.detector.ingest(&event)) {
                    Ok(ingested) => self.touched.extend(ingested.touched),
                    Err(e) => self.store_error = Some(e),
                }
            }
            Err(reason) => {
                // Records inside a container start later than the container's first line.
                let record_line = lines.line_of(outcome.raw);
                self.reject(source, record_line, reason.to_string());
            }
        }
    }

    fn reject(&mut self, source: &str, line: usize, reason: String) {
        self.report.rejected += 1;
        self.progress
            .suspend(|| eprintln!("snapwatch: rejected {source}:{line}: {reason}"));
    }
}

impl<S: StateStore> UnitHandler for Scanner<'_, S> {
    // Each record is handled as the parser yields it: nothing per record is kept.
    fn unit(&mut self, text: &str, source: &str, line: usize) {
        let mut lines = input::RecordLines::new(text, line);
        for_each_record(text, &mut |o| self.record(o, source, &mut lines));
    }

    fn element(&mut self, text: &str, source: &str, line: usize) {
        let mut lines = input::RecordLines::new(text, line);
        for_each_contained_record(text, &mut |o| self.record(o, source, &mut lines));
    }

    fn reject(&mut self, source: &str, line: usize, reason: String) {
        // Whatever was rejected counts as a record, so `rejected` never exceeds `records`.
        self.report.records += 1;
        Scanner::reject(self, source, line, reason);
    }

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
        self.progress
            .suspend(|| eprintln!("snapwatch: skipped {path}: {why}"));
    }
}

/// Resources evaluated per engine call at the end of a scan: bounds the facts held decoded at
/// once, so peak memory follows the stored state rather than doubling it.
const EVALUATION_CHUNK: usize = 2_000;

/// Evaluation is a pure function of the stored state, so chunks can be evaluated separately; a
/// chain reached from two chunks yields the identical finding twice and is kept once.
fn evaluate_in_chunks<S: StateStore>(
    detector: &Detector<S>,
    touched: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Finding>> {
    let mut by_id: BTreeMap<String, Finding> = BTreeMap::new();
    for chunk in touched.chunks(EVALUATION_CHUNK) {
        for finding in pollster::block_on(detector.evaluate(chunk, now))? {
            by_id.insert(finding.id.clone(), finding);
        }
    }
    let mut findings: Vec<Finding> = by_id.into_values().collect();
    sort_findings(&mut findings);
    Ok(findings)
}

pub fn run<S: StateStore>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let detector = Detector::new(store, config);
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut scanner = Scanner {
        detector: &detector,
        report: Report::default(),
        touched: BTreeSet::new(),
        newest: None,
        store_error: None,
        progress,
    };
    for path in &options.paths {
        for (name, error) in input::read_path(path, &options.read, &mut scanner) {
            scanner.report.unreadable_paths += 1;
            scanner
                .progress
                .suspend(|| eprintln!("snapwatch: error: cannot read {name}: {error}"));
        }
    }
    scanner.progress.finish_and_clear();
    if let Some(e) = scanner.store_error.take() {
        return Err(anyhow::Error::new(e).context("chain state store failed"));
    }
    let mut report = std::mem::take(&mut scanner.report);
    let touched: Vec<String> = std::mem::take(&mut scanner.touched).into_iter().collect();
    let now = scanner.newest.unwrap_or_else(Utc::now);
    let findings = evaluate_in_chunks(&detector, &touched, now)?;
    let sink = StdoutSink::new(options.format);
    let delivery: Delivery = pollster::block_on(detector.deliver(&findings, &sink, now))?;
    sink.flush();
    report.findings = findings.len();
    report.printed = delivery.sent.len();
    report.below_threshold = delivery.below_threshold;
    report.already_reported = delivery.already_sent + delivery.held_by_other;
    summarize(&report, started.elapsed().as_secs_f64());
    Ok(report)
}

fn summarize(r: &Report, secs: f64) {
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
    eprintln!(
        "snapwatch: findings {} (printed {}, below min_severity {}, already reported in state {})",
        r.findings, r.printed, r.below_threshold, r.already_reported
    );
    if r.hidden_paths + r.special_files + r.walk_loops > 0 {
        eprintln!(
            "snapwatch: paths not read: hidden {} (--include-hidden reads them), not regular files {}, symlink loops {}",
            r.hidden_paths, r.special_files, r.walk_loops
        );
    }
}

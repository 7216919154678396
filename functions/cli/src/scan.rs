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
use snapwatch_core::parse::detect::{for_each_record, RecordOutcome};
use snapwatch_core::parse::Parsed;
use snapwatch_core::ports::{AlertSink, SinkError, StateStore};
use snapwatch_core::{render, Config, Finding};
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
}

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
            OutputFormat::Ocsf => render::ocsf::detection_finding_json(finding),
        };
        rendered.push('\n');
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
    newest: Option<DateTime<Utc>>,
    store_error: Option<snapwatch_core::engine::EngineError>,
    progress: ProgressBar,
}

impl<S: StateStore> Scanner<'_, S> {
    fn record(&mut self, outcome: RecordOutcome<'_>, source: &str, unit: &str, line: usize) {
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
                let record_line = line + input::line_offset(unit, outcome.raw);
                self.reject(source, record_line, reason.to_string());
            }
        }
    }

    fn reject(&mut self, source: &str, line: usize, reason: String) {
        self.report.rejected += 1;
        // File names and reasons carry attacker-chosen text: one escaped line per reject.
        let (source, reason) = (render::escape_line(source), render::escape_line(&reason));
        self.progress
            .suspend(|| eprintln!("snapwatch: rejected {source}:{line}: {reason}"));
    }
}

impl<S: StateStore> UnitHandler for Scanner<'_, S> {
    fn unit(&mut self, text: &str, source: &str, line: usize) {
        let mut outcomes = Vec::new();
        for_each_record(text, &mut |o| outcomes.push(o));
        for outcome in outcomes {
            self.record(outcome, source, text, line);
        }
    }

    fn reject(&mut self, source: &str, line: usize, reason: String) {
        Scanner::reject(self, source, line, reason);
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
        for (name, error) in input::read_path(path, &mut scanner) {
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
        return Err(anyhow::Error::new(e).context("chain state store failed"));
    }
    let mut report = std::mem::take(&mut scanner.report);
    let touched: Vec<String> = std::mem::take(&mut scanner.touched).into_iter().collect();
    let now = scanner.newest.unwrap_or_else(Utc::now);
    let findings = evaluate_in_chunks(&detector, &touched, now)?;
    let sink = StdoutSink::new(options.format);
    let delivery: Delivery = pollster::block_on(detector.deliver(&findings, &sink, now))?;
    report.findings = findings.len();
    report.printed = delivery.sent.len();
    report.not_delivered = delivery.retry.len() + delivery.rejected.len();
    report.below_threshold = delivery.below_threshold;
    report.already_reported = delivery.already_sent + delivery.held_by_other;
    summarize(&report, started.elapsed().as_secs_f64());
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
    let not_delivered = if r.not_delivered > 0 {
        format!(", not delivered {}", r.not_delivered)
    } else {
        String::new()
    };
    eprintln!(
        "snapwatch: findings {} (printed {}{not_delivered}, below min_severity {}, already reported in state {})",
        r.findings, r.printed, r.below_threshold, r.already_reported
    );
}

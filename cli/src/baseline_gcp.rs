//! `snapwatch baseline --project`: the Cloud Run service's snapshot baseline for GCP, run once
//! from a workstation with Application Default Credentials and the embedded store.

use crate::baseline::Report;
use crate::scan::StdoutSink;
use crate::OutputFormat;
use anyhow::Context;
use chrono::Utc;
use snapwatch_core::baseline;
use snapwatch_core::engine::Detector;
use snapwatch_core::ports::StateStore;
use snapwatch_core::Config;
use snapwatch_gcp_inventory::adc::{ApplicationDefault, Origin};
use snapwatch_gcp_inventory::{ComputeLister, COMPUTE_ENDPOINT};

/// What `--project` runs need.
pub struct Options {
    pub format: OutputFormat,
    pub projects: Vec<String>,
    /// Compute Engine calls go here instead of `compute.googleapis.com` (a local test server).
    pub endpoint_url: Option<String>,
}

pub fn run<S: StateStore>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.format != OutputFormat::Html,
        "--format html is for `snapwatch scan`; baseline prints text or jsonl"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(store, config, options))
}

async fn run_async<S: StateStore>(
    store: S,
    config: Config,
    options: &Options,
) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let credentials =
        ApplicationDefault::discover(|name| std::env::var(name).ok(), home.as_deref(), http)
            .context("no usable Application Default Credentials")?;
    match credentials.origin() {
        Origin::File(path) => eprintln!("snapwatch: credentials from {}", path.display()),
        Origin::MetadataServer => eprintln!(
            "snapwatch: no credentials file (GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`): using the metadata server"
        ),
    }
    let endpoint = options.endpoint_url.as_deref().unwrap_or(COMPUTE_ENDPOINT);
    let lister = ComputeLister::new(endpoint, credentials).context("Compute Engine client")?;
    let detector = Detector::new(store, config);
    let sink = StdoutSink::new(options.format);
    let mut report = Report::default();
    for project in &options.projects {
        let now = Utc::now();
        let inventory = lister
            .list_project(project, now)
            .await
            .with_context(|| format!("cannot list project {project}"))?;
        let check = baseline::check(&detector, &inventory, now)
            .await
            .with_context(|| format!("chain state store failed ({project})"))?;
        let delivery = detector.deliver(&check.findings, &sink, now).await?;
        if let Some(reason) = sink.failure() {
            // Before the commit: the next run judges this project again and prints what was lost.
            anyhow::bail!(
                "cannot write findings to stdout: {}; {} not delivered ({project} not recorded)",
                snapwatch_core::render::escape_line(&reason),
                delivery.retry.len() + delivery.rejected.len()
            );
        }
        baseline::commit(&detector, &check)
            .await
            .with_context(|| format!("cannot record the baseline of {project}"))?;
        let stats = &check.stats;
        eprintln!(
            "snapwatch: {project}: {} snapshots/images/disks listed{}; {} new, {} with changed IAM members; {} exposure(s) no event explains; {} unexplained",
            stats.items,
            if stats.first_run { " (first baseline of this project: recorded, nothing judged unexplained)" } else { "" },
            stats.new_items,
            stats.changed_items,
            stats.exposures_found_by_baseline,
            stats.unexplained,
        );
        report.items += stats.items;
        report.unexplained += stats.unexplained;
        report.first_run_regions += usize::from(stats.first_run);
        report.findings += check.findings.len();
        report.printed += delivery.sent.len();
        report.below_threshold += delivery.below_threshold;
        report.already_reported += delivery.already_sent + delivery.held_by_other;
    }
    eprintln!(
        "snapwatch: {} request(s) to Compute Engine; findings {} (printed {}, below min_severity {}, already reported in state {})",
        lister.requests_sent(), report.findings, report.printed, report.below_threshold, report.already_reported
    );
    Ok(report)
}

//! `snapwatch baseline --project`: the Cloud Run service's snapshot baseline for GCP, run once
//! from a workstation with Application Default Credentials and the embedded store.

use crate::baseline::{judge, Report};
use crate::scan::StdoutSink;
use crate::OutputFormat;
use anyhow::Context;
use chrono::Utc;
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

/// Lists each project, prints what is new, records it in `store`.
pub fn run<S: StateStore>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    crate::baseline::block_on(options.format, run_async(store, config, options))
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
        judge(
            &detector,
            &sink,
            &inventory,
            ("project", project),
            &mut report,
        )
        .await?;
    }
    eprintln!(
        "snapwatch: {} request(s) to Compute Engine; findings {} (printed {}, below min_severity {}, already reported in state {})",
        lister.requests_sent(), report.findings, report.printed, report.below_threshold, report.already_reported
    );
    Ok(report)
}

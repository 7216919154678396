//! `snapwatch baseline`: the scheduled Lambda's snapshot baseline, run once from a workstation
//! with the caller's AWS credentials and the embedded store.
//!
//! Built only with the cargo feature `baseline`: it needs aws-config (the credential chain:
//! environment, profiles, SSO, instance roles), which the default CLI build does without.

use crate::scan::StdoutSink;
use crate::OutputFormat;
use anyhow::Context;
use chrono::Utc;
use snapwatch_aws_inventory::{QueryClient, SnapshotLister};
use snapwatch_core::baseline;
use snapwatch_core::engine::Detector;
use snapwatch_core::inventory::Inventory;
use snapwatch_core::ports::StateStore;
use snapwatch_core::Config;

pub struct Options {
    pub format: OutputFormat,
    pub regions: Vec<String>,
    pub endpoint_url: Option<String>,
    /// Azure subscriptions to list instead of AWS regions (`crate::baseline_azure`).
    pub subscriptions: Vec<String>,
}

/// Totals over every region, for the summary line and the exit code.
#[derive(Debug, Default)]
pub struct Report {
    pub items: usize,
    pub findings: usize,
    pub printed: usize,
    pub already_reported: usize,
    pub below_threshold: usize,
    pub unexplained: usize,
    pub first_run_regions: usize,
}

pub fn run<S: StateStore>(store: S, config: Config, options: &Options) -> anyhow::Result<Report> {
    block_on(options.format, run_async(store, config, options))
}

/// Runs one cloud's baseline to completion on a current-thread runtime, for every `--region`,
/// `--subscription` and `--project` form alike: a baseline prints findings as text, jsonl or
/// OCSF lines, never as an HTML page.
pub(crate) fn block_on(
    format: OutputFormat,
    work: impl std::future::Future<Output = anyhow::Result<Report>>,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        format != OutputFormat::Html,
        "--format html is for `snapwatch scan`; baseline prints text or jsonl"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(work)
}

async fn run_async<S: StateStore>(
    store: S,
    config: Config,
    options: &Options,
) -> anyhow::Result<Report> {
    let first_region = options
        .regions
        .first()
        .context("at least one --region is required")?;
    // The same SDK bootstrap as the Lambda's, in the first region asked for.
    let sdk = snapwatch_aws_inventory::sdk::sdk_config(Some(first_region.clone())).await;
    let credentials = sdk
        .credentials_provider()
        .context("no AWS credentials found (environment, ~/.aws profiles, SSO or instance role)")?;
    let lister = SnapshotLister::new(QueryClient::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?,
        credentials,
        options.endpoint_url.clone(),
    ));
    let account = lister
        .account_id(first_region)
        .await
        .context("cannot read the account id (sts:GetCallerIdentity)")?;
    let detector = Detector::new(store, config);
    let sink = StdoutSink::new(options.format);
    let mut report = Report::default();
    for region in &options.regions {
        let now = Utc::now();
        let inventory = lister
            .list_region(&account, region, now)
            .await
            .with_context(|| format!("cannot list snapshots in {region}"))?;
        judge(
            &detector,
            &sink,
            &inventory,
            ("region", region),
            &mut report,
        )
        .await?;
    }
    eprintln!(
        "snapwatch: account {account}: findings {} (printed {}, below min_severity {}, already reported in state {})",
        report.findings, report.printed, report.below_threshold, report.already_reported
    );
    Ok(report)
}

/// Compares one listing with the state, prints its findings, then records it; not when printing
/// failed, so the next run judges the scope again and prints what was lost. `scope` is
/// (`region`, `subscription` or `project`, its name), for the messages.
pub(crate) async fn judge<S: StateStore>(
    detector: &Detector<S>,
    sink: &StdoutSink,
    inventory: &Inventory,
    (kind, scope): (&str, &str),
    report: &mut Report,
) -> anyhow::Result<()> {
    let now = inventory.taken_at;
    let check = baseline::check(detector, inventory, now)
        .await
        .with_context(|| format!("chain state store failed ({scope})"))?;
    let delivery = detector.deliver(&check.findings, sink, now).await?;
    if let Some(reason) = sink.failure() {
        anyhow::bail!(
            "cannot write findings to stdout: {}; {} not delivered ({scope} not recorded)",
            snapwatch_core::render::escape_line(&reason),
            delivery.retry.len() + delivery.rejected.len()
        );
    }
    baseline::commit(detector, &check)
        .await
        .with_context(|| format!("cannot record the baseline of {scope}"))?;
    let stats = &check.stats;
    let first = format!(" (first baseline of this {kind}: recorded, nothing judged unexplained)");
    eprintln!(
        "snapwatch: {scope}: {} snapshots/images listed{}; {} new, {} with changed permissions; {} exposure(s) no event explains; {} unexplained",
        stats.items,
        if stats.first_run { first.as_str() } else { "" },
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
    Ok(())
}

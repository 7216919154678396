//! `snapwatch`: run the snapwatch detector over exported CloudTrail, Azure Activity Log and GCP
//! audit log files. `main` parses arguments and configuration once; `scan` does the work.

#[cfg(feature = "baseline")]
mod baseline;
#[cfg(feature = "baseline")]
mod baseline_azure;
#[cfg(feature = "baseline")]
mod baseline_gcp;
mod scan;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use snapwatch_cli::input;
use snapwatch_core::rules::Rule;
use snapwatch_core::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "snapwatch",
    version,
    about = "Detect cloud snapshot abuse chains (ATT&CK T1578.001) in audit logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan log files, directories or stdin (`-`) and print the findings.
    Scan(ScanArgs),
    /// List the account's EBS snapshots, RDS DB and cluster snapshots and AMIs with their
    /// permissions (AWS, the caller's credentials) and report exposures and changes no event
    /// explains. Needs the cargo feature `baseline`; keep `--state` between runs.
    Baseline(BaselineArgs),
    /// List the rules with their severity and ATT&CK techniques.
    Rules,
    /// Print, as JSON, the operations the detector consumes for one cloud: what the EventBridge
    /// rule, Event Grid subscription and Eventarc triggers must deliver.
    Consumed {
        #[arg(value_enum)]
        cloud: CloudArg,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CloudArg {
    Aws,
    Azure,
    Gcp,
}

#[derive(clap::Args)]
struct ScanArgs {
    /// How findings are printed on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// TOML configuration (trusted accounts and principals, chain window, admin ports).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep chain state in this embedded database so consecutive scans link up.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Largest record (a line, an array element, a non-container document) held in memory;
    /// larger ones are rejected with their location. Bytes, or with K, M or G.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = input::parse_size)]
    max_record_bytes: u64,
    /// Largest top-level document (a whole array or `Records` file) read from one input; past
    /// it the rest of that input is rejected. Bytes, or with K, M or G.
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = input::parse_size)]
    max_document_bytes: u64,
    /// Also read entries whose name starts with `.` (and `.git/`) when walking directories.
    #[arg(long)]
    include_hidden: bool,
    /// With an `s3://` PATH: the first delivery day (UTC, YYYY-MM-DD) of the archive to read.
    #[arg(long, value_name = "DAY")]
    since: Option<chrono::NaiveDate>,
    /// With an `s3://` PATH: the last delivery day read, inclusive (default: today, UTC).
    #[arg(long, value_name = "DAY")]
    until: Option<chrono::NaiveDate>,
    /// Send the S3 calls of `s3://` PATHs here instead of AWS (a local test server).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Files, directories (walked), `-` for stdin, or `s3://BUCKET/PREFIX`, a CloudTrail archive
    /// (cargo feature `baseline`). `.gz` files are decompressed.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct BaselineArgs {
    /// AWS region to list; repeat for several.
    #[arg(
        long = "region",
        required_unless_present_any = ["subscriptions", "projects"],
        value_name = "REGION"
    )]
    regions: Vec<String>,
    /// Azure: a subscription whose managed disks, snapshots and galleries to list instead (repeat for
    /// several); credentials from AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, else `az`.
    #[arg(
        long = "subscription",
        value_name = "SUBSCRIPTION_ID",
        conflicts_with_all = ["regions", "projects"]
    )]
    subscriptions: Vec<String>,
    /// GCP project to list instead (Application Default Credentials); repeat for several.
    #[arg(long = "project", conflicts_with = "regions", value_name = "PROJECT")]
    projects: Vec<String>,
    /// Send the cloud's API calls here instead (a local test server): EC2, RDS and STS,
    /// Resource Manager with `--subscription`, or Compute Engine with `--project`.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// How findings are printed on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// TOML configuration (trusted accounts and principals, window, min_severity).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The embedded database holding the previous baseline and chain state (the same file
    /// `scan --state` uses links both). Without it every run is a first run.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Jsonl,
    /// One self-contained HTML page (`scan` only), written when every finding is known.
    Html,
    /// One OCSF 1.5.0 Detection Finding per line.
    Ocsf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SNAPWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Rules => {
            print_rules();
            ExitCode::SUCCESS
        }
        Command::Consumed { cloud } => {
            println!("{}", consumed(cloud));
            ExitCode::SUCCESS
        }
        Command::Baseline(args) => match run_baseline(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("snapwatch: error: {err:#}");
                ExitCode::from(2)
            }
        },
        Command::Scan(args) => match run_scan(args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("snapwatch: error: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => load_config(path)?,
        None => Config::default(),
    };
    #[cfg(feature = "baseline")]
    let archive = archive_range(&args)?;
    #[cfg(not(feature = "baseline"))]
    archive_range(&args)?;
    // An unreadable PATH is the same failure whether found now or mid-scan: exit 1.
    for path in args.paths.iter().filter(|p| !scan::is_s3_url(p)) {
        if let Err(message) = input::check_readable(path) {
            eprintln!(
                "snapwatch: error: {}",
                snapwatch_core::render::escape_line(&message)
            );
            return Ok(ExitCode::from(1));
        }
    }
    let options = scan::Options {
        format: args.format,
        state: args.state.is_some(),
        paths: args.paths,
        read: input::ReadOptions {
            limits: input::Limits {
                max_record_bytes: usize::try_from(args.max_record_bytes).unwrap_or(usize::MAX),
                max_document_bytes: args.max_document_bytes,
            },
            include_hidden: args.include_hidden,
        },
        #[cfg(feature = "baseline")]
        archive,
    };
    let report = match &args.state {
        Some(path) => {
            let store = snapwatch_sqlite::SqliteStore::open(path)
                .with_context(|| format!("cannot open state file {}", path.display()))?;
            scan::run(store, config, &options)?
        }
        None => scan::run(snapwatch_core::memory::MemoryStore::new(), config, &options)?,
    };
    // Lost findings outrank an unreadable path: the reader saw less than the scan found.
    Ok(if report.not_delivered > 0 {
        ExitCode::from(3)
    } else if report.unreadable_paths > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The days of the `s3://` PATHs (`--since`, `--until`), refused where they mean nothing.
#[cfg(feature = "baseline")]
fn archive_range(args: &ScanArgs) -> anyhow::Result<Option<scan::s3::Archive>> {
    if !args.paths.iter().any(|p| scan::is_s3_url(p)) {
        anyhow::ensure!(
            args.since.is_none() && args.until.is_none() && args.endpoint_url.is_none(),
            "--since, --until and --endpoint-url apply to s3://BUCKET/PREFIX paths only"
        );
        return Ok(None);
    }
    let since = args.since.context(
        "an s3:// PATH needs --since DAY (YYYY-MM-DD): the first day of the archive to read",
    )?;
    let until = args
        .until
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    anyhow::ensure!(since <= until, "--since {since} is after --until {until}");
    Ok(Some(scan::s3::Archive {
        since,
        until,
        endpoint_url: args.endpoint_url.clone(),
    }))
}

#[cfg(not(feature = "baseline"))]
fn archive_range(args: &ScanArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.paths.iter().any(|p| scan::is_s3_url(p)),
        "this snapwatch was built without the `baseline` feature, which s3:// paths need; rebuild with `cargo build --release -p snapwatch-cli --features baseline`"
    );
    anyhow::ensure!(
        args.since.is_none() && args.until.is_none() && args.endpoint_url.is_none(),
        "--since, --until and --endpoint-url apply to s3://BUCKET/PREFIX paths only"
    );
    Ok(())
}

#[cfg(feature = "baseline")]
fn run_baseline(args: BaselineArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => load_config(path)?,
        None => Config::default(),
    };
    let gcp = (!args.projects.is_empty()).then(|| baseline_gcp::Options {
        format: args.format,
        projects: args.projects,
        endpoint_url: args.endpoint_url.clone(),
    });
    let options = baseline::Options {
        format: args.format,
        regions: args.regions,
        endpoint_url: args.endpoint_url,
        subscriptions: args.subscriptions,
    };
    match &args.state {
        Some(path) => {
            let store = snapwatch_sqlite::SqliteStore::open(path)
                .with_context(|| format!("cannot open state file {}", path.display()))?;
            baseline_in(store, config, &options, gcp.as_ref())
        }
        None => baseline_in(
            snapwatch_core::memory::MemoryStore::new(),
            config,
            &options,
            gcp.as_ref(),
        ),
    }
}

/// One cloud's baseline over `store`: GCP's when projects are given, Azure's when subscriptions
/// are, else AWS's (clap lets only one of the three be given).
#[cfg(feature = "baseline")]
fn baseline_in<S: snapwatch_core::ports::StateStore>(
    store: S,
    config: Config,
    options: &baseline::Options,
    gcp: Option<&baseline_gcp::Options>,
) -> anyhow::Result<()> {
    match gcp {
        Some(gcp) => {
            baseline_gcp::run(store, config, gcp)?;
        }
        None if options.subscriptions.is_empty() => {
            baseline::run(store, config, options)?;
        }
        None => {
            baseline_azure::run(store, config, options)?;
        }
    }
    Ok(())
}

#[cfg(not(feature = "baseline"))]
fn run_baseline(_args: BaselineArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this snapwatch was built without the `baseline` feature; rebuild with `cargo build --release -p snapwatch-cli --features baseline`"
    )
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    config
        .validate()
        .with_context(|| format!("invalid config file {}", path.display()))?;
    Ok(config)
}

fn consumed(cloud: CloudArg) -> serde_json::Value {
    use snapwatch_core::parse::{aws, azure, gcp};
    match cloud {
        CloudArg::Aws => aws::CONSUMED_EVENTS
            .iter()
            .map(|(source, name)| serde_json::json!({"eventSource": source, "eventName": name}))
            .collect(),
        CloudArg::Azure => serde_json::json!(azure::CONSUMED_OPERATIONS),
        CloudArg::Gcp => serde_json::json!(gcp::trigger_method_names()),
    }
}

fn print_rules() {
    println!(
        "{:<28} {:<9} {:<22} DESCRIPTION",
        "RULE", "SEVERITY", "TECHNIQUES"
    );
    for rule in Rule::ALL {
        println!(
            "{:<28} {:<9} {:<22} {}",
            rule.id(),
            rule.severity().as_str(),
            rule.techniques().join(","),
            rule.description()
        );
    }
}

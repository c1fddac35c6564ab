//! `finopsia`: the command-line front end. Parses arguments, loads config,
//! and calls the pipeline library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use finopsia_pipeline::import::run_source;
use finopsia_pipeline::input::Format;
use finopsia_pipeline::source::FileSource;
use finopsia_pipeline::{service, Config, Engine};

#[derive(Parser)]
#[command(
    name = "finopsia",
    version,
    about = "Streaming financial operations for small and medium businesses"
)]
struct Cli {
    /// Configuration file (TOML). Keys can also be set with FINOPSIA__SECTION__KEY variables.
    #[arg(long, global = true, env = "FINOPSIA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormat {
    Csv,
    Ndjson,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest files through the pipeline (validate, dedup, transform, store, windows).
    Import {
        /// Data directory (default: data_dir from config, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Source name stored with each record; (source, transaction_id) is the dedup key.
        #[arg(long, default_value = "import")]
        source: String,
        /// Input format (default: from each file's extension).
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// Input preset: canonical, finopsia-seed, or one from [presets] in the config.
        #[arg(long, default_value = "canonical")]
        preset: String,
        /// Directory of pipeline SQL files (default: built-in queries).
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Print one JSON object with accepted, quarantined, duplicates, rows, elapsed_ms.
        #[arg(long)]
        json: bool,
        /// Files to ingest.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run SQL over transactions, quarantine, cashflow_daily and every other table.
    Query {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// The SQL statement.
        sql: String,
    },
    /// The long-running service: watches the inbox directory and ingests dropped files.
    Run {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Load the bundled public sample (3,000 SME transactions) first.
        #[arg(long)]
        sample: bool,
        #[arg(long)]
        queries: Option<PathBuf>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Import throughput on a generated canonical CSV: arrow-csv baseline,
    /// parse+validate, end to end into the store.
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Work directory (CSV and store).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    // Our crates log at the configured level; dependencies only warnings.
    let level = &config.log.level;
    let default = if level.contains('=') || level.contains(',') {
        level.clone()
    } else {
        format!("warn,buoyant_kernel::snapshot::builder=off,deltalake_core::writer::stats=error,finopsia={level},finopsia_pipeline={level},finopsia_udfs={level}")
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    match cli.command {
        Command::Import {
            data_dir,
            source,
            format,
            preset,
            queries,
            json,
            files,
        } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if queries.is_some() {
                config.queries_dir = queries;
            }
            let preset = config.preset(&preset)?;
            let format = format.map(|f| match f {
                InputFormat::Csv => Format::Csv,
                InputFormat::Ndjson => Format::Ndjson,
            });
            let src = FileSource::new(&source, &files, format, preset)?;
            let mut engine = Engine::open(
                &config.data_dir,
                &config.engine,
                service::load_queries(&config)?,
            )
            .await?;
            let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = run_source(
                &mut engine,
                Box::new(src),
                config.engine.batch_rows,
                progress,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "accepted {} quarantined {} duplicates {} ({} rows in {} ms, {:.0} rows/s)",
                    report.counts.accepted,
                    report.counts.quarantined,
                    report.counts.duplicates,
                    report.rows,
                    report.elapsed_ms,
                    report.rows_per_sec
                );
            }
        }
        Command::Query {
            data_dir,
            format,
            sql,
        } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            finopsia_pipeline::service::print_query(
                &config.data_dir,
                &sql,
                match format {
                    OutputFormat::Table => "table",
                    OutputFormat::Csv => "csv",
                    OutputFormat::Json => "json",
                },
            )
            .await?;
        }
        Command::Run {
            data_dir,
            sample,
            queries,
        } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if queries.is_some() {
                config.queries_dir = queries;
            }
            service::run(config, sample, shutdown_signal()).await?;
        }
        Command::Bench {
            what: BenchCommand::Import { rows, dir, json },
        } => {
            let r = finopsia_pipeline::bench::import_bench(&dir, rows).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("rows: {} ({} MB)", r.rows, r.file_bytes / 1_000_000);
                println!(
                    "arrow-csv read (baseline): {:>12.0} rows/s",
                    r.arrow_csv_rows_per_sec
                );
                println!(
                    "parse+validate:            {:>12.0} rows/s  ({:.2}x arrow-csv time)",
                    r.parse_validate_rows_per_sec, r.parse_vs_arrow_csv_time_ratio
                );
                println!(
                    "end to end into store:     {:>12.0} rows/s",
                    r.end_to_end_rows_per_sec
                );
            }
        }
    }
    Ok(())
}

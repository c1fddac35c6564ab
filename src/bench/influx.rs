//! `finopsia bench influx`: the InfluxDB sink against `curl`, and ingestion
//! with the sink on against off.
//!
//! Starts a real `influxd` 1.x on 127.0.0.1 (free ports, data under the
//! work directory) and measures, in the same run:
//! - **write throughput**: `points` cash-flow window rows (the
//!   `cashflow_daily` shape) as line protocol, written by the sink's
//!   `deliver_many` (encoding included, requests of `batch_lines`), gzip
//!   off and on, against the baseline of the same lines, pre-encoded, posted
//!   by one `curl` process over one keep-alive connection in the same
//!   request sizes. Each contender writes into a fresh database; rounds
//!   alternate the contenders and the median is reported.
//! - **ingestion**: importing `import_rows` generated transactions into a
//!   fresh store without sinks, and with the InfluxDB sink's outbox and
//!   delivery task running (its time until everything is delivered too).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use finopsia_connectors::files::FileSource;
use finopsia_connectors::influx::{lp, InfluxConfig, InfluxSink, SinkContext};
use finopsia_core::input::{Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::sink::{Emission, Sink};
use finopsia_engine::import::run_source;
use finopsia_engine::outbox::Outbox;
use finopsia_engine::sql::Queries;
use finopsia_engine::{Engine, EngineConfig};
use serde::Serialize;

use super::{free_port, io_err, Result, Server};

#[derive(Debug, Serialize)]
pub struct InfluxBenchReport {
    pub points: usize,
    pub batch_lines: usize,
    pub rounds: usize,
    /// Encoding alone (rows → line protocol), one thread.
    pub encode_points_per_sec: f64,
    /// `curl` posting the pre-encoded lines (median of the rounds).
    pub curl_points_per_sec: f64,
    /// The sink, encoding included, gzip off / on (medians).
    pub sink_points_per_sec: f64,
    pub sink_gzip_points_per_sec: f64,
    pub sink_vs_curl: f64,
    pub sink_gzip_vs_curl: f64,
    pub import_rows: u64,
    pub import_sink_off_rows_per_sec: f64,
    pub import_sink_on_rows_per_sec: f64,
    pub import_on_vs_off: f64,
    /// With the sink on: from the import's start until every emission was
    /// delivered.
    pub sink_caught_up_seconds: f64,
}

fn start_influxd(bin: &Path, dir: &Path) -> Result<(Server, String)> {
    let port = free_port()?;
    let rpc = free_port()?;
    let d = dir.display();
    let config = format!(
        "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
         [monitor]\n  store-enabled = false\n\
         [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
         [logging]\n  level = \"warn\"\n"
    );
    let conf = dir.join("influxd.conf");
    std::fs::write(&conf, config).map_err(io_err(&conf))?;
    let child = Command::new(bin)
        .arg("run")
        .arg("-config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    let server = Server(child);
    super::wait_port(port, "influxd")?;
    Ok((server, format!("http://127.0.0.1:{port}")))
}

fn influxql(url: &str, q: &str) -> Result<()> {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-XPOST", &format!("{url}/query")])
        .arg("--data-urlencode")
        .arg(format!("q={q}"))
        .output()?;
    if !out.status.success() {
        anyhow::bail!("{q}: {}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

/// `points` window rows in emissions of `per` rows.
fn emissions(points: usize, per: usize) -> Result<Vec<Emission>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("window_start", finopsia_core::schema::ts_type(), false),
        Field::new("window_end", finopsia_core::schema::ts_type(), false),
        Field::new(
            "account_id",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        Field::new(
            "currency",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        Field::new(
            "category",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        Field::new(
            "inflow_minor",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        Field::new(
            "outflow_minor",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        Field::new(
            "net_minor",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        Field::new(
            "tx_count",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]));
    const DAY: i64 = 86_400_000_000;
    let start = 1_577_836_800_000_000i64; // 2020-01-01
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < points {
        let n = per.min(points - i);
        let idx: Vec<usize> = (i..i + n).collect();
        // 40 accounts × 25 categories per day.
        let day = |k: usize| start + (k / 1000) as i64 * DAY;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(idx.iter().map(|&k| day(k)))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(idx.iter().map(|&k| day(k) + DAY))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                idx.iter().map(|&k| format!("acc-{}", k % 40)),
            )),
            Arc::new(StringArray::from_iter_values(idx.iter().map(|_| "NGN"))),
            Arc::new(StringArray::from_iter_values(
                idx.iter().map(|&k| format!("Category {}", (k / 40) % 25)),
            )),
            Arc::new(Int64Array::from_iter_values(
                idx.iter().map(|&k| (k as i64 * 7919) % 10_000_000),
            )),
            Arc::new(Int64Array::from_iter_values(
                idx.iter().map(|&k| (k as i64 * 104_729) % 5_000_000),
            )),
            Arc::new(Int64Array::from_iter_values(idx.iter().map(|&k| {
                (k as i64 * 7919) % 10_000_000 - (k as i64 * 104_729) % 5_000_000
            }))),
            Arc::new(Int64Array::from_iter_values(
                idx.iter().map(|&k| 1 + (k % 17) as i64),
            )),
        ];
        out.push(Emission {
            id: format!("{:020}-cashflow_daily", out.len()),
            seq: out.len() as i64,
            table: "cashflow_daily".into(),
            keys: vec!["account_id".into(), "currency".into(), "category".into()],
            rows: RecordBatch::try_new(schema.clone(), cols)?,
        });
        i += n;
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn sink(url: &str, db: &str, gzip: bool, batch_lines: usize, dir: &Path) -> Result<InfluxSink> {
    let cfg = InfluxConfig {
        url: url.to_string(),
        database: db.to_string(),
        gzip,
        batch_lines,
        ..InfluxConfig::default()
    };
    Ok(InfluxSink::new(
        "bench",
        &cfg,
        &SinkContext {
            data_dir: dir.to_path_buf(),
            quarantine: None,
        },
    )?)
}

pub async fn influx_bench(
    work_dir: &Path,
    influxd: &Path,
    points: usize,
    batch_lines: usize,
    rounds: usize,
    import_rows: u64,
) -> Result<InfluxBenchReport> {
    let root = work_dir.join("influx-bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(io_err(&root))?;
    let (_server, url) = start_influxd(influxd, &root)?;
    let batch_lines = batch_lines.max(1);
    let all = emissions(points, 5000)?;

    // Encoding alone, and the request files curl posts.
    let t = Instant::now();
    let mut lines = Vec::with_capacity(points);
    for e in &all {
        lines.extend(lp::window_lines(&e.table, &e.keys, &e.rows, lp::Precision::Ns).0);
    }
    let encode_s = t.elapsed().as_secs_f64();
    let chunks_dir = root.join("chunks");
    std::fs::create_dir_all(&chunks_dir).map_err(io_err(&chunks_dir))?;
    let mut files = Vec::new();
    for (i, c) in lines.chunks(batch_lines).enumerate() {
        let p = chunks_dir.join(format!("{i:05}.lp"));
        let mut body = c.join("\n");
        body.push('\n');
        std::fs::write(&p, body).map_err(io_err(&p))?;
        files.push(p);
    }
    drop(lines);

    let (mut curl_r, mut sink_r, mut gz_r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        eprintln!("round {}/{}…", round + 1, rounds.max(1));
        // curl: one process, one keep-alive connection, same request sizes.
        let db = format!("curl{round}");
        influxql(&url, &format!("CREATE DATABASE {db}"))?;
        let mut cmd = Command::new("curl");
        for (i, f) in files.iter().enumerate() {
            if i > 0 {
                cmd.arg("--next");
            }
            cmd.args(["-sS", "--fail", "-o", "/dev/null", "-XPOST"])
                .arg("--data-binary")
                .arg(format!("@{}", f.display()))
                .arg(format!("{url}/write?db={db}&precision=ns"));
        }
        let t = Instant::now();
        let status = cmd.status()?;
        let curl_s = t.elapsed().as_secs_f64();
        if !status.success() {
            anyhow::bail!("curl failed: {status}");
        }
        curl_r.push(points as f64 / curl_s);
        influxql(&url, &format!("DROP DATABASE {db}"))?;
        // The sink, gzip off and on.
        for (gzip, out) in [(false, &mut sink_r), (true, &mut gz_r)] {
            let db = format!("sink{round}{}", if gzip { "gz" } else { "" });
            influxql(&url, &format!("CREATE DATABASE {db}"))?;
            let s = sink(&url, &db, gzip, batch_lines, &root)?;
            let t = Instant::now();
            for group in all.chunks(64) {
                s.deliver_many(group)
                    .await
                    .map_err(|e| anyhow::anyhow!("sink: {e}"))?;
            }
            out.push(points as f64 / t.elapsed().as_secs_f64());
            influxql(&url, &format!("DROP DATABASE {db}"))?;
        }
    }

    // Ingestion with the sink off and on.
    let csv = root.join("import.csv");
    super::import::generate_csv(&csv, import_rows)?;
    let cfg = EngineConfig::default();
    let import = |dir: std::path::PathBuf, outbox: Option<Outbox>| {
        let csv = csv.clone();
        let cfg = cfg.clone();
        async move {
            let mut engine = Engine::open_with(&dir, &cfg, Queries::builtin()?, outbox).await?;
            let source = FileSource::single(
                "bench",
                &csv,
                Format::Csv,
                Preset::default(),
                Bounds::default(),
            )?;
            let r = run_source(&mut engine, Box::new(source), cfg.batch_rows, false).await?;
            anyhow::ensure!(r.counts.accepted == import_rows, "imported {:?}", r.counts);
            Ok::<_, anyhow::Error>(())
        }
    };
    let t = Instant::now();
    import(root.join("store-off"), None).await?;
    let off_s = t.elapsed().as_secs_f64();

    influxql(&url, "CREATE DATABASE ingest")?;
    let on_dir = root.join("store-on");
    let s: Arc<dyn Sink> = Arc::new(sink(&url, "ingest", true, batch_lines, &on_dir)?);
    let outbox = Outbox::open(
        &on_dir,
        &[("bench".to_string(), s.buffer())],
        10_000,
        Default::default(),
    )?;
    // A new InfluxDB sink is marked for a backfill of the (empty) store.
    let _ = std::fs::remove_file(on_dir.join("state/sinks/bench.backfill"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(
        outbox
            .clone()
            .deliver_to(s, stop_rx, Duration::from_secs(1), None),
    );
    let t = Instant::now();
    import(on_dir.clone(), Some(outbox.clone())).await?;
    let on_s = t.elapsed().as_secs_f64();
    while !outbox.all_delivered()? {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caught_up = t.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    task.await??;

    let curl = median(curl_r);
    let (plain, gz) = (median(sink_r), median(gz_r));
    Ok(InfluxBenchReport {
        points,
        batch_lines,
        rounds: rounds.max(1),
        encode_points_per_sec: points as f64 / encode_s,
        curl_points_per_sec: curl,
        sink_points_per_sec: plain,
        sink_gzip_points_per_sec: gz,
        sink_vs_curl: plain / curl,
        sink_gzip_vs_curl: gz / curl,
        import_rows,
        import_sink_off_rows_per_sec: import_rows as f64 / off_s,
        import_sink_on_rows_per_sec: import_rows as f64 / on_s,
        import_on_vs_off: off_s / on_s,
        sink_caught_up_seconds: caught_up,
    })
}

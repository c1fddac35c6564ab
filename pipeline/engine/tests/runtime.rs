//! The streaming runtime through the library API with a real store: readers
//! on consistent snapshots while the engine ingests, positions committed
//! with the records (also by a batch of only duplicates), and a trickle of
//! records committed by `max_batch_delay` rather than waiting for a full
//! batch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use finopsia_core::input::{Chunk, FileDecoder, Format, Preset};
use finopsia_core::stream::{Ack, Feed, Position, StreamSource};
use finopsia_engine::runtime::{self, Reopen, Statuses};
use finopsia_engine::sql::Queries;
use finopsia_engine::{Engine, EngineConfig};
use finopsia_store::snapshot::QueryService;

const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";

fn chunk(source: &str, rows: &[String]) -> Chunk {
    let text = format!("{HEADER}{}\n", rows.join("\n"));
    let mut d = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        "t.csv",
        Format::Csv,
        &Preset::default(),
        finopsia_core::limits::Bounds::default(),
        source,
    )
    .unwrap();
    d.next_chunk(usize::MAX).unwrap().unwrap()
}

/// Sends its chunks (each with its position), waits for every answer, then
/// idles until shutdown. The answers are kept for the test.
struct ListSource {
    name: String,
    chunks: Vec<(Chunk, Position)>,
    answers: Arc<Mutex<Vec<Ack>>>,
    resumed_from: Arc<Mutex<Option<Position>>>,
}

#[async_trait::async_trait]
impl StreamSource for ListSource {
    fn name(&self) -> &str {
        &self.name
    }
    async fn run(&mut self, resume: Option<Position>, mut feed: Feed) -> finopsia_core::Result<()> {
        *self.resumed_from.lock().unwrap() = resume;
        let mut pending = Vec::new();
        for (c, p) in std::mem::take(&mut self.chunks) {
            pending.push(feed.send(c, p, false).await.expect("engine running"));
        }
        for rx in pending {
            let a = rx.await.expect("answered");
            self.answers.lock().unwrap().push(a);
        }
        feed.stopped().await;
        Ok(())
    }
}

fn cfg(batch_rows: usize, delay: &str) -> EngineConfig {
    EngineConfig {
        batch_rows,
        watermark_delay: "0".into(),
        allowed_lateness: "0".into(),
        max_batch_delay: delay.into(),
        ..EngineConfig::default()
    }
}

fn reopen(dir: std::path::PathBuf, c: EngineConfig) -> Reopen {
    Box::new(move || {
        let (dir, c) = (dir.clone(), c.clone());
        Box::pin(async move { Engine::open(&dir, &c, Queries::builtin().unwrap()).await })
    })
}

async fn run_until(
    dir: &std::path::Path,
    engine: Engine,
    c: &EngineConfig,
    source: impl StreamSource + 'static,
    done: impl Fn() -> bool,
) -> Engine {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sources: Vec<Box<dyn StreamSource>> = vec![Box::new(source)];
    let rt = runtime::run(
        engine,
        c,
        sources,
        stop_rx,
        reopen(dir.to_path_buf(), c.clone()),
        Box::new(|_| {}),
        Statuses::default(),
        tokio::sync::mpsc::channel(1).1,
    );
    tokio::pin!(rt);
    let t = std::time::Instant::now();
    loop {
        tokio::select! {
            e = &mut rt => return e.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                if done() {
                    stop_tx.send(true).unwrap();
                }
                assert!(t.elapsed() < Duration::from_secs(120), "runtime did not finish");
            }
        }
    }
}

fn n(b: &[datafusion::arrow::array::RecordBatch], col: usize) -> i64 {
    b[0].column(col).as_primitive::<Int64Type>().value(0)
}

/// Window totals and the transactions of the emitted windows agree in every
/// query, while batches (with late records re-emitting earlier windows)
/// commit underneath.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_transactions_and_windows_of_one_micro_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(400, "5ms");
    let engine = Engine::open(tmp.path(), &c, Queries::builtin().unwrap())
        .await
        .unwrap();
    let qs = QueryService::live(tmp.path(), engine.models(), &[], engine.snapshots());
    let mut chunks = Vec::new();
    let mut id = 0;
    for k in 0..60usize {
        let rows: Vec<String> = (0..100)
            .map(|j| {
                id += 1;
                // Mostly in order; every 10th record is late by a few days.
                let day = if j % 10 == 9 {
                    (k / 2).saturating_sub(3)
                } else {
                    k / 2
                };
                format!(
                    "r{id},acc-{},{}.{:02},USD,{},x,2024-01-01T{:02}:00:00Z",
                    j % 3,
                    1 + j,
                    j % 100,
                    if j % 4 == 0 { "outflow" } else { "inflow" },
                    j % 24
                )
                .replace(
                    "2024-01-01",
                    &format!("2024-{:02}-{:02}", 1 + day / 28, 1 + day % 28),
                )
            })
            .collect();
        chunks.push((chunk("feed", &rows), serde_json::json!({ "n": k })));
    }
    let answers = Arc::new(Mutex::new(Vec::new()));
    let source = ListSource {
        name: "feed".into(),
        chunks,
        answers: answers.clone(),
        resumed_from: Arc::default(),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (qs, stop) = (qs.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut checked = 0;
            let sql = "SELECT \
                (SELECT CAST(COALESCE(SUM(net_minor), 0) AS BIGINT) FROM cashflow_daily) AS w, \
                (SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM transactions \
                 WHERE date_bin(INTERVAL '1 day', event_time) IN (SELECT window_start FROM cashflow_daily)) AS t, \
                (SELECT COUNT(*) FROM transactions) AS n";
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let b = qs.query(sql).await.unwrap();
                assert_eq!(n(&b, 0), n(&b, 1), "windows and transactions disagree");
                if n(&b, 2) > 0 {
                    checked += 1;
                }
            }
            checked
        }));
    }
    let a = answers.clone();
    let mut engine = run_until(tmp.path(), engine, &c, source, move || {
        a.lock().unwrap().len() == 60
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut checked = 0;
    for r in readers {
        checked += r.await.unwrap();
    }
    assert!(
        checked >= 5,
        "readers compared {checked} snapshots during ingestion"
    );
    assert!(answers.lock().unwrap().iter().all(|a| a.is_ok()));
    let b = engine
        .store()
        .query("SELECT COUNT(*) FROM transactions")
        .await
        .unwrap();
    assert_eq!(n(&b, 0), 6000);
}

/// Positions ride on the records' commit, a batch of only duplicates still
/// advances them, and a restarted source is given the committed one.
#[tokio::test]
async fn positions_are_committed_and_given_back() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(1_000_000, "20ms");
    let rows: Vec<String> = (0..5)
        .map(|i| format!("p{i},acc,1.00,USD,inflow,x,2024-01-0{}", i + 1))
        .collect();
    let run = |chunks: Vec<(Chunk, Position)>| {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let resumed = Arc::new(Mutex::new(None));
        let s = ListSource {
            name: "feed".into(),
            chunks,
            answers: answers.clone(),
            resumed_from: resumed.clone(),
        };
        (s, answers, resumed)
    };
    // 1. A trickle: one chunk, far below batch_rows, is committed by the delay.
    let engine = Engine::open(tmp.path(), &c, Queries::builtin().unwrap())
        .await
        .unwrap();
    let (s, answers, resumed) = run(vec![(chunk("feed", &rows), serde_json::json!({"seq": 1}))]);
    let a = answers.clone();
    let engine = run_until(tmp.path(), engine, &c, s, move || {
        a.lock().unwrap().len() == 1
    })
    .await;
    assert!(
        resumed.lock().unwrap().is_none(),
        "first start: no position"
    );
    let got = answers.lock().unwrap()[0].clone().unwrap();
    assert_eq!(got.counts.accepted, 5);
    assert_eq!(engine.positions()["feed"], serde_json::json!({"seq": 1}));
    drop(engine);

    // 2. Only duplicates: nothing new stored, yet the position advances.
    let engine = Engine::open(tmp.path(), &c, Queries::builtin().unwrap())
        .await
        .unwrap();
    assert_eq!(
        engine.positions()["feed"],
        serde_json::json!({"seq": 1}),
        "read back from the store"
    );
    let (s, answers, resumed) = run(vec![(chunk("feed", &rows), serde_json::json!({"seq": 2}))]);
    let a = answers.clone();
    let engine = run_until(tmp.path(), engine, &c, s, move || {
        a.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(
        *resumed.lock().unwrap(),
        Some(serde_json::json!({"seq": 1}))
    );
    let got = answers.lock().unwrap()[0].clone().unwrap();
    assert_eq!((got.counts.accepted, got.counts.duplicates), (0, 5));
    drop(engine);
    let mut engine = Engine::open(tmp.path(), &c, Queries::builtin().unwrap())
        .await
        .unwrap();
    assert_eq!(engine.positions()["feed"], serde_json::json!({"seq": 2}));
    let b = engine
        .store()
        .query("SELECT COUNT(*) FROM transactions")
        .await
        .unwrap();
    assert_eq!(n(&b, 0), 5, "duplicates not stored");
}

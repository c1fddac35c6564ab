//! Watermarks, allowed lateness, eviction and late-data correction, through
//! the engine's library API with a real store in a temp directory.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use finopsia_core::input::{FileDecoder, Format, Preset};
use finopsia_engine::sql::Queries;
use finopsia_engine::Engine;
use finopsia_engine::EngineConfig;

const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";

fn chunk(rows: &[(&str, &str, &str)]) -> finopsia_core::input::Chunk {
    chunk_with(rows, finopsia_core::limits::Bounds::default())
}

fn chunk_with(
    rows: &[(&str, &str, &str)],
    bounds: finopsia_core::limits::Bounds,
) -> finopsia_core::input::Chunk {
    let mut text = HEADER.to_string();
    for (id, amount, ts) in rows {
        text.push_str(&format!("{id},acc,{amount},USD,inflow,x,{ts}\n"));
    }
    let mut d = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        "t.csv",
        Format::Csv,
        &Preset::default(),
        bounds,
        "test",
    )
    .unwrap();
    d.next_chunk(1000).unwrap().unwrap()
}

async fn daily(engine: &mut Engine) -> BTreeMap<String, (i64, i64)> {
    let batches = engine
        .store()
        .query("SELECT CAST(window_start AS VARCHAR) AS d, net_minor, tx_count FROM cashflow_daily")
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for b in batches {
        let d = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let d = d.as_string::<i32>();
        let net = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(!d.is_null(i));
            let prev = out.insert(d.value(i)[..10].to_string(), (net.value(i), n.value(i)));
            assert!(prev.is_none(), "one row per window and key");
        }
    }
    out
}

/// Ingests one chunk of rows (id, amount, event time) as a micro-batch.
async fn ingest(engine: &mut Engine, rows: &[(&str, &str, &str)]) {
    engine.ingest(chunk(rows)).await.unwrap();
}

fn cfg(lateness: &str) -> EngineConfig {
    EngineConfig {
        batch_rows: 1000,
        watermark_delay: "0".into(),
        allowed_lateness: lateness.into(),
        ..EngineConfig::default()
    }
}

#[tokio::test]
async fn windows_emit_at_watermark_and_late_data_corrects_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(tmp.path(), &cfg("0"), Queries::builtin().unwrap())
        .await
        .unwrap();

    engine
        .ingest(chunk(&[
            ("a", "1.00", "2024-01-01T10:00:00Z"),
            ("b", "2.00", "2024-01-01T11:00:00Z"),
        ]))
        .await
        .unwrap();
    assert!(
        daily(&mut engine).await.is_empty(),
        "window still open: watermark before its end"
    );

    ingest(&mut engine, &[("c", "4.00", "2024-01-03T08:00:00Z")]).await;
    let d = daily(&mut engine).await;
    assert_eq!(
        d.get("2024-01-01"),
        Some(&(300, 2)),
        "emitted once the watermark passed the end"
    );
    assert!(!d.contains_key("2024-01-03"), "day 3 still open");

    // Late record for the emitted (and evicted) day 1: read back, corrected, re-emitted.
    ingest(&mut engine, &[("d", "8.00", "2024-01-01T23:00:00Z")]).await;
    let d = daily(&mut engine).await;
    assert_eq!(
        d.get("2024-01-01"),
        Some(&(1100, 3)),
        "late data is never dropped"
    );

    engine.flush().await.unwrap();
    let d = daily(&mut engine).await;
    assert_eq!(
        d.get("2024-01-03"),
        Some(&(400, 1)),
        "end of bounded input flushes"
    );
    drop(engine);

    // State survives a restart: a late record after reopening still corrects day 3.
    let mut engine = Engine::open(tmp.path(), &cfg("0"), Queries::builtin().unwrap())
        .await
        .unwrap();
    ingest(&mut engine, &[("e", "16.00", "2024-01-03T09:00:00Z")]).await;
    engine.flush().await.unwrap();
    let d = daily(&mut engine).await;
    assert_eq!(d.get("2024-01-03"), Some(&(2000, 2)));
    assert_eq!(d.get("2024-01-01"), Some(&(1100, 3)));
}

#[tokio::test]
async fn allowed_lateness_delays_emission() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(tmp.path(), &cfg("2d"), Queries::builtin().unwrap())
        .await
        .unwrap();
    ingest(&mut engine, &[("a", "1.00", "2024-01-01T10:00:00Z")]).await;
    ingest(&mut engine, &[("b", "1.00", "2024-01-03T10:00:00Z")]).await;
    assert!(
        daily(&mut engine).await.is_empty(),
        "end + 2d not yet passed"
    );
    ingest(&mut engine, &[("c", "1.00", "2024-01-04T00:00:00Z")]).await;
    let d = daily(&mut engine).await;
    assert_eq!(d.get("2024-01-01"), Some(&(100, 1)));
    assert!(!d.contains_key("2024-01-03"));
}

/// Records emissions: (table, window start date, net_minor) per row; fails
/// (transiently) its first `fail_first` deliveries.
struct Recorder {
    log: std::sync::Arc<std::sync::Mutex<Vec<(String, String, i64)>>>,
    fail_first: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl finopsia_core::sink::Sink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn deliver(
        &self,
        e: &finopsia_core::sink::Emission,
    ) -> Result<(), finopsia_core::sink::SinkError> {
        use std::sync::atomic::Ordering;
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(finopsia_core::sink::SinkError::Transient("down".into()));
        }
        let rows = &e.rows;
        let starts = datafusion::arrow::compute::cast(
            rows.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let net = rows
            .column_by_name("net_minor")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..rows.num_rows() {
            self.log.lock().unwrap().push((
                e.table.clone(),
                starts.as_string::<i32>().value(i)[..10].to_string(),
                net.value(i),
            ));
        }
        Ok(())
    }
}

/// Every emission and corrected re-emission reaches a sink through the
/// outbox, in order, also when the sink fails for a while first.
#[tokio::test]
async fn sinks_see_first_and_corrected_emissions_after_failing_for_a_while() {
    use finopsia_engine::outbox::Outbox;
    let tmp = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = std::sync::Arc::new(Recorder {
        log: log.clone(),
        fail_first: std::sync::atomic::AtomicUsize::new(3),
    });
    let outbox = Outbox::open(
        tmp.path(),
        &[("recorder".to_string(), Default::default())],
        100,
        Default::default(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(outbox.clone().deliver_to(
        recorder.clone(),
        stop_rx,
        std::time::Duration::from_millis(20),
        None,
    ));
    let mut engine = Engine::open_with(
        tmp.path(),
        &cfg("0"),
        Queries::builtin().unwrap(),
        Some(outbox.clone()),
    )
    .await
    .unwrap();
    ingest(&mut engine, &[("a", "1.00", "2024-01-01T10:00:00Z")]).await;
    ingest(&mut engine, &[("b", "1.00", "2024-01-05T10:00:00Z")]).await;
    ingest(&mut engine, &[("late", "2.00", "2024-01-01T12:00:00Z")]).await;
    let t = std::time::Instant::now();
    while !outbox.all_delivered().unwrap() {
        assert!(t.elapsed().as_secs() < 30, "sink never caught up");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        recorder
            .fail_first
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the sink failed first"
    );
    let got = log.lock().unwrap().clone();
    let day1: Vec<i64> = got
        .iter()
        .filter(|(t, d, _)| t == "cashflow_daily" && d == "2024-01-01")
        .map(|(_, _, n)| *n)
        .collect();
    assert_eq!(day1, vec![100, 300], "emitted, then re-emitted corrected");
    // The received state (last value per key) equals the window table.
    let mut received = BTreeMap::new();
    for (_, d, n) in got {
        received.insert(d, n);
    }
    let table: BTreeMap<String, i64> = daily(&mut engine)
        .await
        .into_iter()
        .map(|(d, (n, _))| (d, n))
        .collect();
    assert_eq!(received, table);
    // Delivered entries leave the outbox.
    let left = std::fs::read_dir(tmp.path().join("state/outbox"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "outbox emptied after delivery");
}

/// A writer that delivers nothing itself (`finopsia import` while the
/// service is down) keeps its emissions in the outbox; when a `Wait` sink's
/// buffer is full it marks the sink for a backfill instead of waiting
/// forever for a delivery task that is not running.
#[tokio::test]
async fn a_writer_without_delivery_marks_a_full_wait_sink_for_backfill() {
    use finopsia_core::sink::{Buffer, WhenFull};
    use finopsia_engine::outbox::Outbox;
    let tmp = tempfile::tempdir().unwrap();
    let buffer = Buffer {
        entries: Some(2),
        when_full: WhenFull::Wait,
        ..Buffer::default()
    };
    let outbox = Outbox::open_writer(tmp.path(), &[("later".to_string(), buffer)], 100).unwrap();
    assert_eq!(outbox.backfill_pending("later"), None);
    let mut engine = Engine::open_with(
        tmp.path(),
        &cfg("0"),
        Queries::builtin().unwrap(),
        Some(outbox.clone()),
    )
    .await
    .unwrap();
    let entries = || {
        std::fs::read_dir(tmp.path().join("state/outbox"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".arrow"))
            .count()
    };
    ingest(&mut engine, &[("a", "1.00", "2024-01-01T10:00:00Z")]).await;
    ingest(&mut engine, &[("b", "1.00", "2024-01-02T10:00:00Z")]).await;
    assert!(entries() > 0, "emissions wait in the outbox");
    assert_eq!(outbox.backfill_pending("later"), None, "not full yet");
    let more = async {
        for day in 3..=9 {
            let id = format!("d{day}");
            let ts = format!("2024-01-{day:02}T10:00:00Z");
            ingest(&mut engine, &[(id.as_str(), "1.00", ts.as_str())]).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), more)
        .await
        .expect("the writer never waits for a sink nobody delivers to");
    assert!(
        outbox.backfill_pending("later").is_some(),
        "the full sink is marked for a backfill"
    );
    assert!(!outbox.all_delivered().unwrap());
}

/// The engine reads chunk columns by position: a chunk whose schema is not
/// the incoming one (a source bug) is refused with a clear error, and
/// nothing is written.
#[tokio::test]
async fn a_chunk_with_another_schema_is_refused() {
    use datafusion::arrow::array::{ArrayRef, RecordBatch};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(tmp.path(), &cfg("0"), Queries::builtin().unwrap())
        .await
        .unwrap();
    let good = chunk(&[("a", "1.00", "2024-01-01T10:00:00Z")]);
    // Swap two columns: same count and types, other order.
    let mut swapped = good.records.columns().to_vec();
    swapped.swap(1, 2);
    let mut fields: Vec<_> = good.records.schema().fields().iter().cloned().collect();
    fields.swap(1, 2);
    let mut bad = chunk(&[("a", "1.00", "2024-01-01T10:00:00Z")]);
    bad.records = RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        swapped,
    )
    .unwrap();
    let err = engine.ingest(bad).await.unwrap_err().to_string();
    assert!(
        err.contains("source test") && err.contains("column 2 is account_id"),
        "{err}"
    );
    // A column of the wrong type.
    let mut typed = chunk(&[("a", "1.00", "2024-01-01T10:00:00Z")]);
    let mut cols = typed.records.columns().to_vec();
    let mut fields: Vec<_> = typed.records.schema().fields().iter().cloned().collect();
    cols[3] = Arc::new(datafusion::arrow::array::StringArray::from(vec!["1.00"])) as ArrayRef;
    fields[3] = Arc::new(datafusion::arrow::datatypes::Field::new(
        "amount_minor",
        datafusion::arrow::datatypes::DataType::Utf8,
        true,
    ));
    typed.records = RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap();
    let err = engine.ingest(typed).await.unwrap_err().to_string();
    assert!(err.contains("column 4 is amount_minor Utf8"), "{err}");
    let n = engine
        .store()
        .query("SELECT COUNT(*) AS n FROM transactions")
        .await
        .unwrap();
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    // The engine still takes good chunks afterwards.
    engine.ingest(good).await.unwrap();
}

/// Rows decoded without an amount limit (as a configuration with
/// `limits.max_amount_minor = i64::MAX` and `engine.batch_rows = 1` allows).
fn unlimited_chunk(rows: &[(&str, &str, &str)]) -> finopsia_core::input::Chunk {
    let bounds = finopsia_core::limits::Limits {
        max_amount_minor: i64::MAX,
        ..Default::default()
    }
    .bounds()
    .unwrap();
    chunk_with(rows, bounds)
}

#[tokio::test]
async fn a_sum_overflow_inside_one_batch_is_an_error_not_a_wrap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(tmp.path(), &cfg("0"), Queries::builtin().unwrap())
        .await
        .unwrap();
    ingest(&mut engine, &[("ok", "1.00", "2024-01-01")]).await;
    // Two amounts that fit in i64 alone but not together, in one batch:
    // DataFusion's integer SUM would wrap; the widened partial sum does not.
    let err = engine
        .ingest(unlimited_chunk(&[
            ("a", "50000000000000000.00", "2024-01-02"),
            ("b", "50000000000000000.00", "2024-01-02"),
        ]))
        .await
        .expect_err("an overflowing window sum fails the batch")
        .to_string();
    assert!(
        err.contains("cashflow_daily")
            && err.contains("overflows i64")
            && err.contains("2024-01-02")
            && err.contains("nothing of this batch was stored"),
        "{err}"
    );
    drop(engine);
    // Reopened: the failed batch is not in transactions, and the windows
    // agree with what is.
    let mut engine = Engine::open(tmp.path(), &cfg("0"), Queries::builtin().unwrap())
        .await
        .unwrap();
    engine.flush().await.unwrap();
    let n = engine
        .store()
        .query("SELECT COUNT(*) AS n FROM transactions")
        .await
        .unwrap();
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 1);
    let d = daily(&mut engine).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d["2024-01-01"], (100, 1));
    // Across batches, the merge is checked too.
    let c = engine
        .ingest(unlimited_chunk(&[(
            "c",
            "50000000000000000.00",
            "2024-01-03",
        )]))
        .await
        .unwrap();
    assert_eq!(c.accepted, 1);
    let err = engine
        .ingest(unlimited_chunk(&[(
            "d",
            "50000000000000000.00",
            "2024-01-03",
        )]))
        .await
        .expect_err("overflow across batches")
        .to_string();
    assert!(
        err.contains("overflows i64") && err.contains("2024-01-03"),
        "{err}"
    );
}

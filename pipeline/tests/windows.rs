//! Watermarks, allowed lateness, eviction and late-data correction, through
//! the engine's library API with a real store in a temp directory.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use finopsia_pipeline::config::EngineConfig;
use finopsia_pipeline::input::{FileDecoder, Format, Preset};
use finopsia_pipeline::sql::Queries;
use finopsia_pipeline::Engine;

const HEADER: &str =
    "transaction_id,account_id,amount,currency,direction,description,transaction_date\n";

fn chunk(rows: &[(&str, &str, &str)]) -> finopsia_pipeline::input::Chunk {
    let mut text = HEADER.to_string();
    for (id, amount, ts) in rows {
        text.push_str(&format!("{id},acc,{amount},USD,inflow,x,{ts}\n"));
    }
    let mut d = FileDecoder::from_reader(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        "t.csv",
        Format::Csv,
        &Preset::default(),
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

/// Records emissions: (table, window start date, net_minor) per row.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(String, String, i64)>>>);

impl finopsia_pipeline::engine::Sink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn emit(
        &mut self,
        table: &str,
        rows: &datafusion::arrow::array::RecordBatch,
    ) -> finopsia_pipeline::Result<()> {
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
            self.0.lock().unwrap().push((
                table.to_string(),
                starts.as_string::<i32>().value(i)[..10].to_string(),
                net.value(i),
            ));
        }
        Ok(())
    }
}

#[tokio::test]
async fn sinks_see_first_and_corrected_emissions() {
    let tmp = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sinks: Vec<Box<dyn finopsia_pipeline::engine::Sink>> =
        vec![Box::new(Recorder(log.clone()))];
    let mut engine =
        Engine::open_with_sinks(tmp.path(), &cfg("0"), Queries::builtin().unwrap(), sinks)
            .await
            .unwrap();
    ingest(&mut engine, &[("a", "1.00", "2024-01-01T10:00:00Z")]).await;
    ingest(&mut engine, &[("b", "1.00", "2024-01-05T10:00:00Z")]).await;
    ingest(&mut engine, &[("late", "2.00", "2024-01-01T12:00:00Z")]).await;
    let got = log.lock().unwrap().clone();
    let day1: Vec<i64> = got
        .iter()
        .filter(|(t, d, _)| t == "cashflow_daily" && d == "2024-01-01")
        .map(|(_, _, n)| *n)
        .collect();
    assert_eq!(day1, vec![100, 300], "emitted, then re-emitted corrected");
}

//! The readers' in-memory file cache and shared session answer exactly what
//! reading the Delta files answers: after appends, after a column is added to
//! the table, after an overwrite, and when the budget is too small (then the
//! table is read from Parquet).

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use finopsia_store::snapshot::QueryService;
use finopsia_store::Store;
use finopsia_udfs::registry::Registry;
use finopsia_udfs::ModelHandle;

fn batch(from: i64, n: i64, note: bool) -> RecordBatch {
    let mut fields = vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount_minor", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ];
    let ids: Vec<i64> = (from..from + n).collect();
    let mut columns: Vec<Arc<dyn datafusion::arrow::array::Array>> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int64Array::from(
            ids.iter().map(|i| i * 101 - 7).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter().map(|i| format!("name {i}")).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|i| 1_700_000_000_000_000 + i * 86_400_000_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
    ];
    if note {
        fields.push(Field::new("note", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(
            ids.iter().map(|i| format!("note {i}")).collect::<Vec<_>>(),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

async fn text(q: &QueryService, sql: &str) -> String {
    pretty_format_batches(&q.query(sql).await.unwrap())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_equal_parquet_reads_through_appends_schema_change_and_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path()).unwrap();
    let models = || ModelHandle::open(Registry::for_data_dir(tmp.path()), 0.5).unwrap();
    let cached = QueryService::open(tmp.path(), models(), &[]).with_file_cache(64 << 20);
    let tiny = QueryService::open(tmp.path(), models(), &[]).with_file_cache(1);
    let queries = [
        "SELECT * FROM t ORDER BY id",
        "SELECT * FROM t WHERE name LIKE '%7%' AND amount_minor > 500 ORDER BY at DESC LIMIT 5",
        "SELECT COUNT(*) AS n, SUM(amount_minor) AS s FROM t",
    ];
    // The truth: a new service (no session or file kept) at each stage.
    let check = |stage: &'static str| {
        let parquet = QueryService::open(tmp.path(), models(), &[]);
        let (cached, tiny) = (cached.clone(), tiny.clone());
        async move {
            for sql in queries {
                let want = text(&parquet, sql).await;
                for (name, q) in [("cached", &cached), ("over budget", &tiny)] {
                    let got = text(q, sql).await;
                    assert!(
                        got == want,
                        "{stage}, {name}: {sql}: {} lines, from the files {}",
                        got.lines().count(),
                        want.lines().count()
                    );
                }
            }
            assert!(cached.cached_bytes() > 0, "{stage}: served from memory");
            assert_eq!(tiny.cached_bytes(), 0, "{stage}: over budget, from Parquet");
        }
    };

    store
        .append("t", vec![batch(0, 300, false)], None)
        .await
        .unwrap();
    check("first commit").await;
    store
        .append("t", vec![batch(300, 200, false)], None)
        .await
        .unwrap();
    check("second commit").await;
    let before = cached.cached_bytes();
    store
        .append("t", vec![batch(500, 100, true)], None)
        .await
        .unwrap();
    check("a column added").await;
    assert!(
        cached.cached_bytes() > before,
        "only the new file is decoded and added"
    );
    let all = text(&cached, "SELECT COUNT(*) AS n, COUNT(note) AS notes FROM t").await;
    assert!(all.contains("| 600 | 100   |"), "{all}");
    store.overwrite("t", batch(1000, 10, true)).await.unwrap();
    check("overwrite").await;
    let n = text(&cached, "SELECT COUNT(*) AS n FROM t").await;
    assert!(n.contains("| 10 |"), "{n}");
    // The files the overwrite removed are no longer held.
    assert!(cached.cached_bytes() < before, "{}", cached.cached_bytes());
}

//! Categorization computed ahead on the import's decoder thread: each
//! micro-batch is evaluated by the model once, and the stored categories are
//! those of evaluating in the transform query — also when duplicates are
//! dropped from a batch.

use datafusion::arrow::util::display::array_value_to_string;
use finopsia_connectors::files::FileSource;
use finopsia_core::input::{FileDecoder, Format, Preset};
use finopsia_engine::import::run_source;
use finopsia_engine::sql::Queries;
use finopsia_engine::Engine;
use finopsia_engine::EngineConfig;

const DESCS: [&str; 6] = [
    "Office Rent Payment",
    "Product Sale",
    "Fuel for generator",
    "Staff salaries March",
    "POS settlement",
    "Internet subscription",
];

fn csv() -> String {
    let mut text = String::from(
        "transaction_id,account_id,amount,currency,direction,description,transaction_date,category\n",
    );
    let row = |i: usize| {
        let dir = if i.is_multiple_of(3) {
            "inflow"
        } else {
            "outflow"
        };
        let cat = if i.is_multiple_of(11) { "Custom" } else { "" };
        format!(
            "t{i},acc{},{}.{:02},NGN,{dir},{},2024-03-{:02},{cat}\n",
            i % 4,
            1000 + i * 37,
            i % 100,
            DESCS[i % DESCS.len()],
            1 + i % 28
        )
    };
    for i in 0..230 {
        text.push_str(&row(i));
        // Exact repeats of earlier rows: duplicates the engine drops.
        if i % 25 == 24 {
            text.push_str(&row(i - 20));
        }
    }
    text
}

async fn categories(engine: &mut Engine) -> Vec<String> {
    let batches = engine
        .store()
        .query(
            "SELECT transaction_id, category, category_confidence, category_source, needs_review \
             FROM transactions ORDER BY transaction_id",
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| array_value_to_string(b.column(c), i).unwrap())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

#[tokio::test]
async fn categorized_ahead_once_per_batch_with_the_query_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, csv()).unwrap();
    let cfg = EngineConfig::default();

    // The import path: categorized on the decoder thread.
    let mut ahead = Engine::open(&dir.path().join("a"), &cfg, Queries::builtin().unwrap())
        .await
        .unwrap();
    assert!(ahead.categorize_ahead().is_some());
    let source = FileSource::single(
        "test",
        &path,
        Format::Csv,
        Preset::default(),
        finopsia_core::limits::Bounds::default(),
    )
    .unwrap();
    let report = run_source(&mut ahead, Box::new(source), 40, false)
        .await
        .unwrap();
    assert_eq!(report.counts.accepted, 230);
    assert_eq!(report.counts.duplicates, 9);
    assert!(report.batches >= 6, "{report:?}");
    assert_eq!(
        ahead.store().models().evaluations(),
        report.batches,
        "one model evaluation per micro-batch: the prepared results were used"
    );

    // Reference: chunks without a prepared categorization, evaluated in the
    // transform query.
    let mut plain = Engine::open(&dir.path().join("b"), &cfg, Queries::builtin().unwrap())
        .await
        .unwrap();
    let mut d = FileDecoder::from_reader(
        Box::new(std::fs::File::open(&path).unwrap()),
        "in.csv",
        Format::Csv,
        &Preset::default(),
        finopsia_core::limits::Bounds::default(),
        "test",
    )
    .unwrap();
    while let Some(chunk) = d.next_chunk(40).unwrap() {
        assert!(chunk.prepared.is_none());
        plain.ingest(chunk).await.unwrap();
    }
    plain.flush().await.unwrap();
    let (a, b) = (categories(&mut ahead).await, categories(&mut plain).await);
    assert_eq!(a.len(), 230);
    assert_eq!(a, b);
    let model_rows = a.iter().filter(|r| r.contains("|model|")).count();
    assert!(model_rows > 150, "{model_rows}");
}

/// A transform that calls `categorize()` on derived inputs is not
/// categorized ahead (the prepared result could never be used).
#[tokio::test]
async fn other_transform_queries_are_not_categorized_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Queries::builtin().unwrap();
    let sql = builtin
        .transform
        .select_sql
        .replace("categorize(description,", "categorize(upper(description),");
    assert!(sql.contains("upper(description)"), "{sql}");
    let text = format!("INSERT INTO transactions\n{sql};\n");
    let queries = Queries::parse([("transform.sql", text.as_str())]).unwrap();
    let engine = Engine::open(&dir.path().join("a"), &EngineConfig::default(), queries)
        .await
        .unwrap();
    assert!(engine.categorize_ahead().is_none());
}

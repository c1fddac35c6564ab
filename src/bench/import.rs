//! `finopsia bench import`: import throughput on a generated canonical CSV.
//!
//! Three measurements over the same file in one run:
//! - baseline: `arrow-csv` reading every column as Utf8 (no validation);
//! - parse+validate: our decoder (RFC 4180, money, dates, hashing) alone;
//! - end to end: a fresh store, the full import path (dedup, transform SQL,
//!   Delta commits, windows) exactly as `finopsia import` runs it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;

use super::{io_err, Result};
use finopsia_connectors::files::FileSource;
use finopsia_core::input::{FileDecoder, Format, Preset, FIELDS};
use finopsia_core::limits::Bounds;
use finopsia_engine::import::run_source;
use finopsia_engine::sql::Queries;
use finopsia_engine::{Engine, EngineConfig};

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub rows: u64,
    pub file_bytes: u64,
    pub arrow_csv_rows_per_sec: f64,
    pub parse_validate_rows_per_sec: f64,
    pub end_to_end_rows_per_sec: f64,
    /// parse+validate time / arrow-csv time (lower is better; aim ≤ 2).
    pub parse_vs_arrow_csv_time_ratio: f64,
}

/// Writes `rows` deterministic canonical CSV rows sorted by date (2020–2024).
pub fn generate_csv(path: &Path, rows: u64) -> Result<()> {
    let file = File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = io_err(path);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const CATS: [&str; 10] = [
        "Payroll",
        "Rent",
        "Sales",
        "Utilities",
        "Marketing",
        "Supplies",
        "Inventory",
        "Tax",
        "Travel",
        "",
    ];
    const DESCS: [&str; 8] = [
        "Invoice payment",
        "Card purchase",
        "Transfer \"ref\"",
        "POS sale, shop 2",
        "Monthly rent",
        "Salary batch",
        "Fuel station",
        "Cloud hosting",
    ];
    const CURS: [&str; 2] = ["USD", "NGN"];
    let start_day = 18262i64; // 2020-01-01
    let days = 1826u64;
    let out = (|| -> std::io::Result<()> {
        writeln!(w, "{}", FIELDS.join(","))?;
        for i in 0..rows {
            let day = start_day + (i * days / rows.max(1)) as i64;
            let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
                .unwrap_or_default()
                .date_naive();
            let r = next();
            let cur = CURS[(r % 2) as usize];
            let cat = CATS[((r >> 8) % 10) as usize];
            let desc = DESCS[((r >> 16) % 8) as usize];
            let dir = if (r >> 24) % 3 == 0 {
                "inflow"
            } else {
                "outflow"
            };
            let major = (r >> 32) % 100_000;
            let minor = (r >> 12) % 100;
            let desc_field = if desc.contains(['"', ',']) {
                format!("\"{}\"", desc.replace('"', "\"\""))
            } else {
                desc.to_string()
            };
            writeln!(
                w,
                "tx{i:08},acc-{},{major}.{minor:02},{cur},{dir},{desc_field},{date},{date}T12:00:00Z,{cat},cp-{}",
                (r >> 40) % 5,
                (r >> 44) % 50
            )?;
        }
        w.flush()
    })();
    out.map_err(io)
}

fn arrow_csv_rows(path: &Path) -> Result<u64> {
    let schema = Arc::new(Schema::new(
        FIELDS
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let file = File::open(path).map_err(io_err(path))?;
    let reader = ReaderBuilder::new(schema)
        .with_header(true)
        .with_batch_size(65_536)
        .build(file)?;
    let mut n = 0;
    for b in reader {
        n += b?.num_rows() as u64;
    }
    Ok(n)
}

fn decode_rows(path: &Path, batch_rows: usize) -> Result<u64> {
    let mut d = FileDecoder::open(
        path,
        Format::Csv,
        &Preset::default(),
        Bounds::default(),
        "bench",
    )?;
    let mut n = 0;
    while let Some(c) = d.next_chunk(batch_rows)? {
        n += (c.records.num_rows() + c.rejects.len()) as u64;
    }
    Ok(n)
}

/// Runs the three measurements; `work_dir` holds the CSV and the store.
pub async fn import_bench(work_dir: &Path, rows: u64) -> Result<BenchReport> {
    std::fs::create_dir_all(work_dir).map_err(io_err(work_dir))?;
    let csv = work_dir.join(format!("bench-{rows}.csv"));
    if !csv.exists() {
        eprintln!("generating {} ({rows} rows)…", csv.display());
        generate_csv(&csv, rows)?;
    }
    let file_bytes = std::fs::metadata(&csv).map_err(io_err(&csv))?.len();
    let cfg = EngineConfig::default();
    // Warm the page cache so every contender reads from memory.
    let _ = std::fs::read(&csv);

    let t = Instant::now();
    let n_arrow = arrow_csv_rows(&csv)?;
    let arrow_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let n_parse = decode_rows(&csv, cfg.batch_rows)?;
    let parse_s = t.elapsed().as_secs_f64();

    let store_dir: PathBuf = work_dir.join("store");
    let _ = std::fs::remove_dir_all(&store_dir);
    let t = Instant::now();
    let mut engine = Engine::open(&store_dir, &cfg, Queries::builtin()?).await?;
    let source = FileSource::single(
        "bench",
        &csv,
        Format::Csv,
        Preset::default(),
        Bounds::default(),
    )?;
    let report = run_source(&mut engine, Box::new(source), cfg.batch_rows, false).await?;
    let e2e_s = t.elapsed().as_secs_f64();
    assert_eq!(n_arrow, rows);
    assert_eq!(n_parse, rows);
    assert_eq!(report.counts.accepted, rows);

    Ok(BenchReport {
        rows,
        file_bytes,
        arrow_csv_rows_per_sec: rows as f64 / arrow_s,
        parse_validate_rows_per_sec: rows as f64 / parse_s,
        end_to_end_rows_per_sec: rows as f64 / e2e_s,
        parse_vs_arrow_csv_time_ratio: parse_s / arrow_s,
    })
}

/// `finopsia bench categorize`: the CatBoost evaluator and `categorize()`.
#[derive(Debug, Serialize)]
pub struct CategorizeBenchReport {
    pub rows: u64,
    pub model_version: String,
    /// Micro-batches of the import, and how many times the model evaluated
    /// a batch during it (one per batch when the categorization computed
    /// ahead on the decoder thread is used).
    pub import_batches: u64,
    pub import_model_evaluations: u64,
    pub trees: usize,
    pub classes: usize,
    /// Evaluator alone, one thread, features already hashed (what CatBoost's
    /// applier does after its Pool is built).
    pub evaluator_rows_per_sec: f64,
    /// Normalization + hashing + evaluator, one thread (the UDF's work per row).
    pub categorizer_rows_per_sec: f64,
    /// Python catboost `predict_proba(pool, thread_count=1)` on the same model
    /// and rows, measured in the same run (None without a Python).
    pub python_predict_proba_rows_per_sec: Option<f64>,
    /// Max |Rust − Python| over all probabilities (None without a Python).
    pub python_max_abs_diff: Option<f64>,
    /// evaluator rate / Python rate.
    pub evaluator_vs_python: Option<f64>,
    /// `finopsia import` of the rows (no input categories, so the model
    /// fills every one) with the built-in queries, each micro-batch
    /// categorized ahead on the decoder thread (the default).
    pub end_to_end_rows_per_sec: f64,
    /// End-to-end rate / evaluator rate (aim ≥ 0.8).
    pub end_to_end_vs_evaluator: f64,
    /// Baseline in the same run: the import with the model evaluated only
    /// in the transform query (`engine.categorize_ahead = false`).
    pub in_query_rows_per_sec: f64,
    pub in_query_vs_evaluator: f64,
}

/// Generates `rows` uncategorized transactions from the public sample's
/// descriptions (amounts jittered), as canonical CSV.
fn generate_uncategorized(path: &Path, rows: u64) -> Result<()> {
    let sample = finopsia_core::SAMPLE_CSV;
    let mut lines = sample.lines();
    lines.next();
    let seeds: Vec<(String, String, String)> = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 6).then(|| (f[1].to_string(), f[2].to_string(), f[5].to_string()))
        })
        .collect();
    let file = File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let out = (|| -> std::io::Result<()> {
        writeln!(
            w,
            "transaction_id,account_id,amount,currency,direction,description,transaction_date"
        )?;
        for i in 0..rows {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (acct, desc, dir) = &seeds[(state % seeds.len() as u64) as usize];
            let major = 1_000 + (state >> 20) % 90_000;
            let day = 18262 + (i * 1826 / rows.max(1)) as i64;
            let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
                .unwrap_or_default()
                .date_naive();
            writeln!(
                w,
                "c{i:09},{acct},{major}.{:02},NGN,{dir},{desc},{date}",
                (state >> 8) % 100
            )?;
        }
        w.flush()
    })();
    out.map_err(io_err(path))
}

const PYTHON_BENCH: &str = r#"
import sys, time
import numpy as np, pandas as pd, catboost
model_path, feats, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
X = pd.read_csv(feats, dtype=str, keep_default_na=False)
X["amount"] = X["amount"].astype(float)
cats = [c for c in X.columns if c != "amount"]
m = catboost.CatBoostClassifier()
m.load_model(model_path, format="json")
X = X[m.feature_names_]
pool = catboost.Pool(X, cat_features=[c for c in m.feature_names_ if c in cats])
best = 1e9
for _ in range(3):
    t = time.perf_counter()
    p = m.predict_proba(pool, thread_count=1)
    best = min(best, time.perf_counter() - t)
np.save(out_path, np.ascontiguousarray(p))
print(len(X) / best)
"#;

/// Runs the categorization benchmark in `work_dir`; `python` (with catboost)
/// adds the side-by-side Python measurement.
pub async fn categorize_bench(
    work_dir: &Path,
    rows: u64,
    python: Option<&str>,
) -> Result<CategorizeBenchReport> {
    use finopsia_udfs::core::catboost::Column;
    use finopsia_udfs::core::categorizer::TxnRow;
    use finopsia_udfs::core::cityhash::cat_hash;
    use finopsia_udfs::core::text::{amount_major, normalize_description, token_features};
    use finopsia_udfs::registry::LoadedModel;

    std::fs::create_dir_all(work_dir).map_err(io_err(work_dir))?;
    let csv = work_dir.join(format!("categorize-{rows}.csv"));
    if !csv.exists() {
        eprintln!("generating {} ({rows} rows)…", csv.display());
        generate_uncategorized(&csv, rows)?;
    }
    let loaded = LoadedModel::bundled();
    let model = loaded.categorizer.model();

    // Raw fields, parsed once outside the timings.
    let text = std::fs::read_to_string(&csv).map_err(io_err(&csv))?;
    struct Raw {
        account: String,
        minor: i64,
        direction: String,
        description: String,
    }
    let raws: Vec<Raw> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Raw {
                account: f[1].to_string(),
                minor: f[2].replace('.', "").parse().unwrap_or(0),
                direction: f[4].to_string(),
                description: f[5].to_string(),
            }
        })
        .collect();
    let n = raws.len();
    let txn: Vec<TxnRow<'_>> = raws
        .iter()
        .map(|r| TxnRow {
            description: &r.description,
            amount_minor: r.minor,
            exponent: 2,
            currency: "NGN",
            direction: &r.direction,
            account: &r.account,
        })
        .collect();

    // Feature columns in the model's order (names from the categorizer spec).
    let norm: Vec<String> = raws
        .iter()
        .map(|r| normalize_description(&r.description))
        .collect();
    let text_of = |name: &str, i: usize| -> String {
        let d = &norm[i];
        let (a, b, c) = token_features(d);
        match name {
            "direction" => raws[i].direction.to_ascii_lowercase(),
            "account" => raws[i].account.clone(),
            "currency" => "NGN".into(),
            "desc" => d.clone(),
            "tok_first" => a.into(),
            "tok_first2" => b.into(),
            "tok_last" => c.into(),
            _ => String::new(),
        }
    };
    let mut floats = Vec::new();
    let mut cats = Vec::new();
    let feats_path = work_dir.join(format!("categorize-{rows}-features.csv"));
    {
        let f = File::create(&feats_path).map_err(io_err(&feats_path))?;
        let mut w = BufWriter::new(f);
        let names: Vec<&str> = model.features().iter().map(|f| f.name.as_str()).collect();
        let io = io_err(&feats_path);
        let res = (|| -> std::io::Result<()> {
            writeln!(w, "{}", names.join(","))?;
            for (i, raw) in raws.iter().enumerate() {
                let row: Vec<String> = names
                    .iter()
                    .map(|name| {
                        if *name == "amount" {
                            format!("{:?}", amount_major(raw.minor, 2))
                        } else {
                            text_of(name, i)
                        }
                    })
                    .collect();
                writeln!(w, "{}", row.join(","))?;
            }
            w.flush()
        })();
        res.map_err(io)?;
        for spec in model.features() {
            if spec.name == "amount" {
                floats.push(
                    raws.iter()
                        .map(|r| amount_major(r.minor, 2) as f32)
                        .collect::<Vec<f32>>(),
                );
            } else {
                cats.push(
                    (0..n)
                        .map(|i| cat_hash(&text_of(&spec.name, i)))
                        .collect::<Vec<u32>>(),
                );
            }
        }
    }
    let (mut fi, mut ci) = (0, 0);
    let columns: Vec<Column<'_>> = model
        .features()
        .iter()
        .map(|f| {
            if f.name == "amount" {
                fi += 1;
                Column::Float(&floats[fi - 1])
            } else {
                ci += 1;
                Column::Cat(&cats[ci - 1])
            }
        })
        .collect();

    let best_of = |f: &mut dyn FnMut()| -> f64 {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        best
    };
    let mut probs = Vec::new();
    let eval_s = best_of(&mut || {
        model
            .predict(&columns, n, &mut probs)
            .expect("bundled model evaluates")
    });
    let cat_s = best_of(&mut || {
        loaded
            .categorizer
            .categorize(&txn)
            .expect("bundled model categorizes");
    });

    let (py_rate, py_diff) = match python {
        Some(py) => {
            let script = work_dir.join("bench_predict_proba.py");
            std::fs::write(&script, PYTHON_BENCH).map_err(io_err(&script))?;
            let model_path = work_dir.join("bundled-model.json");
            std::fs::write(&model_path, finopsia_udfs::registry::BUNDLED_MODEL)
                .map_err(io_err(&model_path))?;
            let npy = work_dir.join("python-probs.npy");
            let out = std::process::Command::new(py)
                .arg(&script)
                .arg(&model_path)
                .arg(&feats_path)
                .arg(&npy)
                .output()
                .map_err(io_err(py))?;
            if !out.status.success() {
                return Err(anyhow::anyhow!(format!(
                    "python benchmark failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let rate: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0.0);
            let diff = read_npy_f64(&npy)?
                .iter()
                .zip(&probs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f64, f64::max);
            (Some(rate), Some(diff))
        }
        None => (None, None),
    };

    // The import, categorized ahead on the decoder thread (the default),
    // and as a baseline in the same run with the model evaluated only in
    // the transform query (`engine.categorize_ahead = false`).
    let import = |ahead: bool| {
        let store_dir = work_dir.join("categorize-store");
        let csv = csv.clone();
        async move {
            let _ = std::fs::remove_dir_all(&store_dir);
            let cfg = EngineConfig {
                categorize_ahead: ahead,
                ..EngineConfig::default()
            };
            let t = Instant::now();
            let mut engine = Engine::open(&store_dir, &cfg, Queries::builtin()?).await?;
            let source = FileSource::single(
                "bench",
                &csv,
                Format::Csv,
                Preset::default(),
                Bounds::default(),
            )?;
            let report = run_source(&mut engine, Box::new(source), cfg.batch_rows, false).await?;
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(report.counts.accepted, rows);
            let evaluations = engine.store().models().evaluations();
            Ok::<_, anyhow::Error>((secs, report.batches, evaluations))
        }
    };
    let (in_query_s, _, _) = import(false).await?;
    let (e2e_s, import_batches, import_model_evaluations) = import(true).await?;

    let eval_rate = n as f64 / eval_s;
    let e2e = rows as f64 / e2e_s;
    Ok(CategorizeBenchReport {
        rows,
        model_version: loaded.version.clone(),
        import_batches,
        import_model_evaluations,
        trees: model.tree_count(),
        classes: model.class_names().len(),
        evaluator_rows_per_sec: eval_rate,
        categorizer_rows_per_sec: n as f64 / cat_s,
        python_predict_proba_rows_per_sec: py_rate,
        python_max_abs_diff: py_diff,
        evaluator_vs_python: py_rate.map(|p| eval_rate / p),
        end_to_end_rows_per_sec: e2e,
        end_to_end_vs_evaluator: e2e / eval_rate,
        in_query_rows_per_sec: rows as f64 / in_query_s,
        in_query_vs_evaluator: rows as f64 / in_query_s / eval_rate,
    })
}

/// Reads a little-endian f64 `.npy` file (numpy's `np.save` of a float array).
fn read_npy_f64(path: &Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = || anyhow::anyhow!(format!("{}: not a float64 .npy", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad());
    }
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).map_err(|_| bad())?;
    if !header.contains("'<f8'") || header.contains("'fortran_order': True") {
        return Err(bad());
    }
    Ok(bytes[start + header_len..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

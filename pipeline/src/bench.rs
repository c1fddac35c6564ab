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

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{io_err, Result};
use crate::import::run_source;
use crate::input::{FileDecoder, Format, Preset, FIELDS};
use crate::source::FileSource;
use crate::sql::Queries;

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
    let mut d = FileDecoder::open(path, Format::Csv, &Preset::default(), "bench")?;
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
    let source = FileSource::single("bench", &csv, Format::Csv, Preset::default())?;
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

//! Categorization models: applying any CatBoost JSON model to a CSV
//! (`finopsia model eval`), exporting labelled transactions and running the
//! training script (`finopsia train`), and category corrections
//! (`finopsia correct`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use finopsia_udfs::core::catboost::{Column, FeatureKind, Model, Output};
use finopsia_udfs::core::cityhash::cat_hash;
use serde::Serialize;

use crate::error::{io_err, Error, Result};
use finopsia_core::csv::{field_text, split_record, SplitLimits, Step};

/// Outcome of [`eval_csv`].
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub rows: usize,
    pub features: usize,
    pub outputs: Vec<String>,
    pub eval_ms: f64,
    pub rows_per_sec: f64,
}

/// Reads a whole CSV file: header and rows of field texts.
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let buf = std::fs::read(path).map_err(io_err(path))?;
    let file = path.display().to_string();
    let bad = |line: usize, message: String| Error::Input {
        file: file.clone(),
        message: format!("line {line}: {message}"),
    };
    let start = if buf.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut pos = start;
    let mut line = 1usize;
    let mut fields = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    while pos < buf.len() {
        match split_record(&buf, pos, true, &SplitLimits::NONE, &mut fields) {
            Step::Record { end, newlines } => {
                let mut rec = Vec::with_capacity(fields.len());
                for f in &fields {
                    rec.push(
                        field_text(&buf, f)
                            .ok_or_else(|| bad(line, "not UTF-8".into()))?
                            .into_owned(),
                    );
                }
                match &header {
                    None => header = Some(rec),
                    Some(h) if h.len() != rec.len() => {
                        return Err(bad(
                            line,
                            format!("{} fields, header has {}", rec.len(), h.len()),
                        ))
                    }
                    Some(_) => rows.push(rec),
                }
                line += 1 + newlines;
                pos = end;
            }
            Step::Blank { end } => {
                line += 1;
                pos = end;
            }
            Step::Malformed(m) => return Err(bad(line, m.message().to_string())),
            Step::NeedMore => unreachable!("eof"),
        }
    }
    let header = header.ok_or_else(|| Error::Input {
        file: file.clone(),
        message: "empty file (no header)".into(),
    })?;
    Ok((header, rows))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Parses a float feature value: empty, `nan`, `NaN`, `null` are missing (NaN).
fn parse_float(text: &str) -> Option<f32> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("nan") || t.eq_ignore_ascii_case("null") {
        return Some(f32::NAN);
    }
    t.parse::<f64>().ok().map(|x| x as f32)
}

/// Applies a CatBoost JSON model to a CSV whose columns include the model's
/// feature names; writes the input columns plus `prob_<class>` per class
/// (or `prediction` for regression) with full (round-trip) precision.
pub fn eval_csv(model_path: &Path, input: &Path, out: &mut dyn Write) -> Result<EvalReport> {
    let text = std::fs::read_to_string(model_path).map_err(io_err(model_path))?;
    let model = Model::from_json(&text)
        .map_err(|e| Error::Model(format!("{}: {e}", model_path.display())))?;
    let (header, rows) = read_csv(input)?;
    let n = rows.len();
    let mut floats: Vec<Vec<f32>> = Vec::new();
    let mut cats: Vec<Vec<u32>> = Vec::new();
    let mut plan = Vec::new();
    for spec in model.features() {
        let col = header
            .iter()
            .position(|h| h == &spec.name)
            .ok_or_else(|| Error::Input {
                file: input.display().to_string(),
                message: format!(
                    "no column {:?} (the model's features: {})",
                    spec.name,
                    model
                        .features()
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        match spec.kind {
            FeatureKind::Float => {
                let mut v = Vec::with_capacity(n);
                for (i, r) in rows.iter().enumerate() {
                    v.push(parse_float(&r[col]).ok_or_else(|| Error::Input {
                        file: input.display().to_string(),
                        message: format!(
                            "row {}: column {} = {:?} is not a number",
                            i + 2,
                            spec.name,
                            r[col]
                        ),
                    })?);
                }
                plan.push((FeatureKind::Float, floats.len()));
                floats.push(v);
            }
            FeatureKind::Categorical => {
                plan.push((FeatureKind::Categorical, cats.len()));
                cats.push(rows.iter().map(|r| cat_hash(&r[col])).collect());
            }
        }
    }
    let columns: Vec<Column<'_>> = plan
        .iter()
        .map(|(k, i)| match k {
            FeatureKind::Float => Column::Float(&floats[*i]),
            FeatureKind::Categorical => Column::Cat(&cats[*i]),
        })
        .collect();
    let started = Instant::now();
    let mut values = Vec::new();
    model
        .predict(&columns, n, &mut values)
        .map_err(|e| Error::Model(e.to_string()))?;
    let eval_ms = started.elapsed().as_secs_f64() * 1e3;
    let outputs: Vec<String> = match model.output() {
        Output::Regression => vec!["prediction".into()],
        _ => model
            .class_names()
            .iter()
            .map(|c| format!("prob_{c}"))
            .collect(),
    };
    let width = outputs.len();
    let mut w = std::io::BufWriter::new(out);
    let io = io_err("output");
    let mut line = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>();
    line.extend(outputs.iter().map(|o| csv_field(o)));
    writeln!(w, "{}", line.join(",")).map_err(io_err("output"))?;
    for (r, vals) in rows.iter().zip(values.chunks_exact(width)) {
        let mut line = r.iter().map(|f| csv_field(f)).collect::<Vec<_>>();
        // `{:?}` prints the shortest text that parses back to the same f64.
        line.extend(vals.iter().map(|v| format!("{v:?}")));
        writeln!(w, "{}", line.join(",")).map_err(io_err("output"))?;
    }
    w.flush().map_err(io)?;
    Ok(EvalReport {
        rows: n,
        features: model.features().len(),
        outputs,
        eval_ms,
        rows_per_sec: if eval_ms > 0.0 {
            n as f64 / (eval_ms / 1e3)
        } else {
            0.0
        },
    })
}

/// Where the training script lives: `FINOPSIA_TRAIN_SCRIPT`, else
/// `udfs/python/train.py` next to the binary's source tree or the current
/// directory.
pub fn train_script() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FINOPSIA_TRAIN_SCRIPT") {
        return Some(PathBuf::from(p));
    }
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../udfs/python/train.py"),
        PathBuf::from("udfs/python/train.py"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// The `corrections` table: user-set categories, newest wins.
pub static CORRECTIONS: std::sync::LazyLock<datafusion::arrow::datatypes::SchemaRef> =
    std::sync::LazyLock::new(|| {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        std::sync::Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, true),
            Field::new("transaction_id", DataType::Utf8, true),
            Field::new("category", DataType::Utf8, true),
            Field::new("previous_category", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("corrected_at", finopsia_core::schema::ts_type(), true),
        ]))
    });

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Records a category correction for a stored transaction; returns the
/// category it had.
pub async fn correct(
    data_dir: &Path,
    source: &str,
    transaction_id: &str,
    category: &str,
    note: Option<&str>,
) -> Result<Option<String>> {
    use datafusion::arrow::array::{
        Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    let category = category.trim();
    if category.is_empty() {
        return Err(Error::Input {
            file: "correct".into(),
            message: "the category must not be empty".into(),
        });
    }
    let mut store = finopsia_store::Store::open(data_dir)?;
    if !store.exists("transactions") {
        return Err(Error::Config(format!(
            "no transactions in {} (import data first, or pass --data-dir)",
            data_dir.display()
        )));
    }
    let found = store
        .query(&format!(
            "SELECT category FROM transactions WHERE source = {} AND transaction_id = {}",
            sql_str(source),
            sql_str(transaction_id)
        ))
        .await?;
    let mut previous = None;
    let mut n = 0;
    for b in &found {
        let col = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let col = col.as_string::<i32>();
        for i in 0..b.num_rows() {
            n += 1;
            if !col.is_null(i) {
                previous = Some(col.value(i).to_string());
            }
        }
    }
    if n == 0 {
        return Err(Error::Input {
            file: "correct".into(),
            message: format!(
                "no transaction with source {source:?} and transaction_id {transaction_id:?}"
            ),
        });
    }
    let now = chrono::Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        CORRECTIONS.clone(),
        vec![
            std::sync::Arc::new(StringArray::from(vec![source])) as ArrayRef,
            std::sync::Arc::new(StringArray::from(vec![transaction_id])),
            std::sync::Arc::new(StringArray::from(vec![category])),
            std::sync::Arc::new(StringArray::from(vec![previous.clone()])),
            std::sync::Arc::new(StringArray::from(vec![note])),
            std::sync::Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )?;
    store.ensure("corrections", CORRECTIONS.clone()).await?;
    store.append("corrections", vec![batch], None).await?;
    Ok(previous)
}

/// SQL selecting the training rows: input labels, overridden by the newest
/// correction of each transaction (corrections also label model-filled rows).
fn training_sql(has_corrections: bool) -> String {
    let input_label =
        "CASE WHEN t.category_source IS NULL OR t.category_source = 'input' THEN t.category END";
    let (join, label, label_source) = if has_corrections {
        (
            "LEFT JOIN (SELECT source, transaction_id, category, ROW_NUMBER() OVER \
               (PARTITION BY source, transaction_id ORDER BY corrected_at DESC) AS rn \
               FROM corrections) c \
             ON c.rn = 1 AND c.source = t.source AND c.transaction_id = t.transaction_id",
            format!("COALESCE(c.category, {input_label})"),
            "CASE WHEN c.category IS NOT NULL THEN 'correction' ELSE 'input' END",
        )
    } else {
        ("", input_label.to_string(), "'input'")
    };
    format!(
        "SELECT * FROM (SELECT t.source, t.transaction_id, t.description, t.amount_minor, t.currency, \
           currency_exponent(t.currency) AS currency_exponent, t.direction, t.account_id, \
           {label} AS label, {label_source} AS label_source \
         FROM transactions t {join}) WHERE label IS NOT NULL"
    )
}

/// Options of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub python: String,
    pub script: Option<PathBuf>,
    pub iterations: u32,
    pub register: bool,
    /// Extra arguments for the script (e.g. `--no-unseen-eval`).
    pub extra_args: Vec<String>,
}

/// Outcome of [`train`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub version: String,
    pub rows: u64,
    pub registered: bool,
    pub holdout_accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub unseen_description_accuracy: Option<f64>,
    pub model_dir: PathBuf,
    pub elapsed_ms: u128,
}

/// Exports the labelled transactions, trains a model with the Python script
/// (PyPI `catboost`), stores it in the registry and (by default) registers it.
pub async fn train(data_dir: &Path, opts: &TrainOptions) -> Result<TrainReport> {
    use finopsia_udfs::registry::Registry;
    let started = Instant::now();
    let script = opts.script.clone().or_else(train_script).ok_or_else(|| {
        Error::Config(
            "training script udfs/python/train.py not found; set FINOPSIA_TRAIN_SCRIPT".into(),
        )
    })?;
    let mut store = finopsia_store::Store::open(data_dir)?;
    if !store.exists("transactions") {
        return Err(Error::Config(format!(
            "no transactions in {} (import data first, or pass --data-dir)",
            data_dir.display()
        )));
    }
    let sql = training_sql(store.exists("corrections"));
    let batches = store.query(&sql).await?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let registry = Registry::for_data_dir(data_dir);
    std::fs::create_dir_all(registry.dir()).map_err(io_err(registry.dir()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut version = format!("cb-{stamp}");
    let mut k = 2;
    while registry.version_dir(&version).exists() {
        version = format!("cb-{stamp}-{k}");
        k += 1;
    }
    let work = registry.dir().join(format!(".train-{version}"));
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let csv_path = work.join("training.csv");
    {
        let file = std::fs::File::create(&csv_path).map_err(io_err(&csv_path))?;
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(std::io::BufWriter::new(file));
        for b in &batches {
            w.write(b)?;
        }
    }
    tracing::info!(rows, version = %version, "training a categorization model");
    let out_dir = work.join("model");
    let status = std::process::Command::new(&opts.python)
        .arg(&script)
        .arg("--input")
        .arg(&csv_path)
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--version")
        .arg(&version)
        .arg("--iterations")
        .arg(opts.iterations.to_string())
        .args(&opts.extra_args)
        // Progress goes to stderr (shown); the script's summary line on
        // stdout is only logged, so `--json` output stays one object.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::Config(format!(
                "cannot run {} (set train.python or FINOPSIA_PYTHON to a Python with catboost): {e}",
                opts.python
            ))
        })?;
    tracing::debug!(summary = %String::from_utf8_lossy(&status.stdout).trim(), "train.py done");
    if !status.status.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(Error::Model(format!(
            "training script failed ({}); no model was registered",
            status.status
        )));
    }
    let final_dir = registry.version_dir(&version);
    std::fs::rename(&out_dir, &final_dir).map_err(io_err(&final_dir))?;
    let _ = std::fs::remove_dir_all(&work);
    let loaded = if opts.register {
        registry.register(&version)
    } else {
        registry.load(&version)
    }
    .map_err(|e| Error::Model(e.to_string()))?;
    let holdout = loaded.metadata.get("holdout");
    let num = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64);
    Ok(TrainReport {
        version,
        rows,
        registered: opts.register,
        holdout_accuracy: num(holdout.and_then(|h| h.get("accuracy"))),
        macro_f1: num(holdout.and_then(|h| h.get("macro_f1"))),
        unseen_description_accuracy: num(holdout
            .and_then(|h| h.get("unseen_descriptions"))
            .and_then(|u| u.get("accuracy"))),
        model_dir: final_dir,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// What the `categorizer_retrain` job did.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    /// Corrections made since the model in use was trained.
    pub new_corrections: u64,
    pub trained: Option<TrainReport>,
}

/// Trains and registers a new model when at least `min_corrections`
/// corrections were made since the model in use was trained (its metadata's
/// `created_at`); a running service switches to it at its next batch.
pub async fn retrain_if_due(
    data_dir: &Path,
    opts: &TrainOptions,
    min_corrections: u32,
) -> Result<RetrainReport> {
    let registry = finopsia_udfs::registry::Registry::for_data_dir(data_dir);
    let current = registry
        .load_current()
        .map_err(|e| Error::Model(e.to_string()))?;
    let since_us = current
        .metadata
        .get("created_at")
        .and_then(|v| v.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros())
        .unwrap_or(0);
    let mut store = finopsia_store::Store::open(data_dir)?;
    let new_corrections = if store.exists("corrections") {
        let b = store
            .query_readonly(&format!(
                "SELECT COUNT(*) AS n FROM corrections WHERE CAST(corrected_at AS BIGINT) > {since_us}"
            ))
            .await?;
        let c = datafusion::arrow::compute::cast(
            b.first()
                .map(|b| b.column(0).clone())
                .ok_or_else(|| Error::Model("counting corrections returned nothing".into()))?
                .as_ref(),
            &datafusion::arrow::datatypes::DataType::Int64,
        )?;
        use datafusion::arrow::array::AsArray;
        c.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
            .max(0) as u64
    } else {
        0
    };
    if new_corrections < u64::from(min_corrections.max(1)) {
        return Ok(RetrainReport {
            new_corrections,
            trained: None,
        });
    }
    tracing::info!(new_corrections, model = %current.version, "retraining the categorization model");
    let trained = train(data_dir, opts).await?;
    Ok(RetrainReport {
        new_corrections,
        trained: Some(trained),
    })
}

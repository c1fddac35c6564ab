//! What `/metrics` reads from the store: every table's Delta version and
//! data files, the categorization model in use and its age, and each
//! series' latest forecast run. Reading them opens every table's log, too
//! much for each scrape, so a task reads them at start, every minute and
//! after each job run, and `/metrics` serves the last reading. Nothing is
//! written: it only reads committed state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use finopsia_core::sink::{Metrics, StoreGauges};
use finopsia_udfs::ModelHandle;
use tokio::sync::{watch, Notify};

/// How often the store is read without a job run in between.
pub const PERIOD: Duration = Duration::from_secs(60);

/// Reads the gauges once.
pub async fn read(data_dir: &Path, models: &ModelHandle) -> anyhow::Result<StoreGauges> {
    let mut g = StoreGauges::default();
    for (name, t) in finopsia_store::store::all_stats(data_dir).await? {
        g.tables.insert(name, (t.version, t.files as u64));
    }
    let model = models.current();
    g.model_version = Some(model.version.clone());
    g.model_created_ms = model
        .metadata
        .get("created_at")
        .and_then(|v| v.as_str())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    if g.tables.contains_key("forecast_runs") {
        let mut store = finopsia_store::Store::open(data_dir)?;
        let batches = store
            .query_readonly(
                "SELECT CAST(series_id AS VARCHAR) AS s, CAST(MAX(run_at) AS BIGINT) AS us \
                 FROM forecast_runs WHERE status IN ('ok', 'short_history', 'fallback') \
                 GROUP BY series_id",
            )
            .await?;
        for b in &batches {
            // Strings may come back as views: cast rather than assume.
            let s = cast(b.column(0), &DataType::Utf8)?;
            let us = cast(b.column(1), &DataType::Int64)?;
            let s = s.as_string::<i32>();
            let us = us.as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                if !s.is_null(i) && !us.is_null(i) {
                    g.forecast_run_ms
                        .insert(s.value(i).to_string(), us.value(i) / 1000);
                }
            }
        }
    }
    Ok(g)
}

/// Reads the gauges into `metrics` at start, every [`PERIOD`] and whenever
/// `kick` is notified, until `stop` turns true.
pub async fn refresh_loop(
    data_dir: PathBuf,
    models: Arc<ModelHandle>,
    metrics: Arc<Metrics>,
    kick: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match read(&data_dir, &models).await {
            Ok(g) => metrics.set_store(g),
            Err(e) => tracing::warn!(error = %e, "store gauges for /metrics not read"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = kick.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

//! One series of a forecast relation per request, without a query per
//! request.
//!
//! `GET /api/v1/forecasts/{series}/points` and `…/runs` read one series of
//! `forecasts_latest` (a view joining every series' runs) or `forecast_runs`.
//! These change only when forecasts are refreshed, yet planning and running
//! the view for each request costs time in proportion to every series. So
//! the relation is read once per version of the tables it reads, sorted by
//! series and by the answer's order, and kept as one batch with each
//! series' slice; a request converts its slice to JSON.
//!
//! Nothing here is state: a slot is rebuilt from the snapshot when one of
//! the tables it reads moves, and is as of the snapshot it was built from,
//! like any other answer. Memory: one copy of each relation (the forecast
//! points of every series' latest run; every run of every series).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::col;
use finopsia_store::snapshot::Snapshot;

use crate::error::ApiError;
use crate::rows::{rows, Row};

/// A relation read whole, sliced by its key column.
#[derive(Debug)]
struct Grouped {
    /// The versions of the tables it reads, as built.
    versions: Vec<Option<u64>>,
    groups: HashMap<String, RecordBatch>,
}

/// How to read one relation.
#[derive(Debug, Clone, Copy)]
pub struct Relation {
    pub name: &'static str,
    /// Tables it reads (a change to any rebuilds it).
    pub reads: &'static [&'static str],
    /// The column a request selects by.
    pub key: &'static str,
    /// The answer's order within a key: column, ascending.
    pub order: (&'static str, bool),
}

/// The latest points of each series (`forecasts_latest`), by day.
pub const FORECAST_POINTS: Relation = Relation {
    name: "forecasts_latest",
    reads: &["forecast_runs", "forecasts"],
    key: "series_id",
    order: ("ds", true),
};

/// Every run of each series, newest first.
pub const FORECAST_RUNS: Relation = Relation {
    name: "forecast_runs",
    reads: &["forecast_runs"],
    key: "series_id",
    order: ("run_id", false),
};

/// The relations read so far, each as of the last snapshot that asked.
#[derive(Debug, Default)]
pub struct GroupedCache {
    slots: tokio::sync::Mutex<HashMap<&'static str, Arc<Grouped>>>,
}

impl GroupedCache {
    /// The rows of `rel` whose key is `key`, in the relation's order, as of
    /// `snap` (an empty list when the relation does not exist yet).
    pub async fn rows(
        &self,
        snap: &Snapshot,
        rel: Relation,
        key: &str,
    ) -> Result<Vec<Row>, ApiError> {
        let versions: Vec<Option<u64>> = rel.reads.iter().map(|t| snap.version_of(t)).collect();
        let grouped = {
            let mut slots = self.slots.lock().await;
            match slots.get(rel.name).filter(|g| g.versions == versions) {
                Some(g) => g.clone(),
                None => {
                    let g = Arc::new(build(snap, rel, versions).await?);
                    slots.insert(rel.name, g.clone());
                    g
                }
            }
        };
        Ok(grouped
            .groups
            .get(key)
            .map(|b| rows(std::slice::from_ref(b)))
            .unwrap_or_default())
    }
}

async fn build(
    snap: &Snapshot,
    rel: Relation,
    versions: Vec<Option<u64>>,
) -> Result<Grouped, ApiError> {
    let mut groups = HashMap::new();
    if !snap.ctx.table_exist(rel.name)? {
        return Ok(Grouped { versions, groups });
    }
    let df = snap.ctx.table(rel.name).await?.sort(vec![
        col(rel.key).sort(true, false),
        col(rel.order.0).sort(rel.order.1, false),
    ])?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let all = concat_batches(&schema, &batches)?;
    let keys = cast(
        all.column_by_name(rel.key)
            .ok_or_else(|| ApiError::internal(format!("{} has no {}", rel.name, rel.key)))?,
        &DataType::Utf8,
    )?;
    let keys = keys.as_string::<i32>();
    let mut start = 0;
    while start < all.num_rows() {
        let mut end = start + 1;
        while end < all.num_rows()
            && keys.is_valid(start) == keys.is_valid(end)
            && keys.value(start) == keys.value(end)
        {
            end += 1;
        }
        if keys.is_valid(start) {
            groups.insert(keys.value(start).to_string(), all.slice(start, end - start));
        }
        start = end;
    }
    Ok(Grouped { versions, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
    use finopsia_store::snapshot::QueryService;
    use finopsia_store::Store;
    use finopsia_udfs::registry::Registry;
    use finopsia_udfs::ModelHandle;

    fn runs_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::Utf8, true),
            Field::new("run_id", DataType::Int64, true),
            Field::new("status", DataType::Utf8, true),
        ]))
    }

    fn points_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::Utf8, true),
            Field::new("run_id", DataType::Int64, true),
            Field::new("ds", DataType::Int64, true),
            Field::new("yhat", DataType::Float64, true),
        ]))
    }

    /// A run of `series` with `n` points (days given in reverse, so the
    /// answer's order is not the stored one).
    async fn add_run(store: &mut Store, series: &str, run: i64, status: &str, n: i64) {
        let runs = RecordBatch::try_new(
            runs_schema(),
            vec![
                Arc::new(StringArray::from(vec![series])) as ArrayRef,
                Arc::new(Int64Array::from(vec![run])),
                Arc::new(StringArray::from(vec![status])),
            ],
        )
        .unwrap();
        let days: Vec<i64> = (0..n).rev().collect();
        let points = RecordBatch::try_new(
            points_schema(),
            vec![
                Arc::new(StringArray::from(vec![series; n as usize])) as ArrayRef,
                Arc::new(Int64Array::from(vec![run; n as usize])),
                Arc::new(Int64Array::from(days.clone())),
                Arc::new(Float64Array::from(
                    days.iter()
                        .map(|d| (run * 100 + d) as f64)
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        store
            .append("forecast_runs", vec![runs], None)
            .await
            .unwrap();
        store.append("forecasts", vec![points], None).await.unwrap();
    }

    /// Each series' rows from the cache against the same SQL over the same
    /// snapshot.
    async fn check(q: &QueryService, cache: &GroupedCache) -> Vec<Vec<Row>> {
        let snap = q.snapshot().await.unwrap();
        let mut out = Vec::new();
        for (rel, order) in [(FORECAST_POINTS, "ds"), (FORECAST_RUNS, "run_id DESC")] {
            for series in ["a", "b", "none"] {
                let got = cache.rows(&snap, rel, series).await.unwrap();
                let sql = format!(
                    "SELECT * FROM {} WHERE series_id = '{series}' ORDER BY {order}",
                    rel.name
                );
                let want = if snap.ctx.table_exist(rel.name).unwrap() {
                    rows(&q.query(&sql).await.unwrap())
                } else {
                    Vec::new()
                };
                assert_eq!(got, want, "{} {series}", rel.name);
                out.push(got);
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn series_slices_equal_sql_and_follow_new_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(tmp.path()).unwrap();
        let models = ModelHandle::open(Registry::for_data_dir(tmp.path()), 0.5).unwrap();
        let q = QueryService::open(tmp.path(), models, &finopsia_ops::forecasts::VIEWS[..2]);
        let cache = GroupedCache::default();
        // No forecast tables yet: empty answers.
        assert!(check(&q, &cache).await.iter().all(Vec::is_empty));

        store.ensure("forecast_runs", runs_schema()).await.unwrap();
        store.ensure("forecasts", points_schema()).await.unwrap();
        add_run(&mut store, "a", 1, "ok", 5).await;
        add_run(&mut store, "b", 2, "ok", 3).await;
        let first = check(&q, &cache).await;
        assert_eq!(first[0].len(), 5);
        assert_eq!(first[1].len(), 3);

        // A failed run is in the runs but not served; a new run replaces
        // the points.
        add_run(&mut store, "a", 3, "failed", 4).await;
        add_run(&mut store, "b", 4, "ok", 2).await;
        let second = check(&q, &cache).await;
        assert_eq!(second[0], first[0]);
        assert_eq!(second[1].len(), 2);
        assert_eq!(second[3].len(), 2, "runs of a, newest first");
    }
}

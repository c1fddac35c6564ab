//! `categorize(description, amount_minor, currency, direction, account_id, category)`
//! → `STRUCT<category VARCHAR, confidence DOUBLE, model_version VARCHAR,
//! source VARCHAR, needs_review BOOLEAN>`.
//!
//! A category present in the input is kept (`source = 'input'`, confidence
//! 1, no model version, not flagged); otherwise the current CatBoost model
//! fills it (`source = 'model'`) and the record is flagged `needs_review`
//! when the confidence is below the handle's threshold. Take fields with
//! `categorize(...)['category']`; DataFusion evaluates identical calls in
//! one projection once (common subexpression elimination).
//!
//! The model comes from a [`ModelHandle`], which the engine refreshes from
//! the registry before each micro-batch: `finopsia train` registers a new
//! version and the running service uses it from its next batch on, without
//! a restart. A batch is categorized entirely by one model version.

use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use finopsia_udf_core::catboost::ModelError;
use finopsia_udf_core::categorizer::{Categorizer, Prediction, TxnRow};

use crate::currency;
use crate::registry::{Error, LoadedModel, Registry};

/// The model `categorize()` uses, swappable at run time.
#[derive(Debug)]
pub struct ModelHandle {
    current: RwLock<Arc<LoadedModel>>,
    registry: Option<Registry>,
    review_below: f64,
    /// Model evaluations (batches) so far.
    evaluations: std::sync::atomic::AtomicU64,
    /// A categorization computed ahead of its query (see [`Prepared`]).
    prepared: std::sync::Mutex<Option<Prepared>>,
}

/// A categorization computed before the query that needs it, e.g. on an
/// import's decoder thread while the previous micro-batch is committed, so
/// that model evaluation overlaps the rest of the engine. The next
/// `categorize()` call whose six argument columns are equal to `inputs`
/// (same contents) with the same model uses `output` instead of evaluating;
/// any other call evaluates as usual.
#[derive(Debug, Clone)]
pub struct Prepared {
    inputs: Vec<ArrayRef>,
    model: Arc<LoadedModel>,
    output: ArrayRef,
}

impl Prepared {
    /// The rows where `mask` is true (as the engine drops duplicates).
    pub fn filter(&self, mask: &datafusion::arrow::array::BooleanArray) -> Result<Prepared> {
        use datafusion::arrow::compute::filter;
        Ok(Prepared {
            inputs: self
                .inputs
                .iter()
                .map(|a| filter(a.as_ref(), mask))
                .collect::<std::result::Result<_, _>>()?,
            model: self.model.clone(),
            output: filter(self.output.as_ref(), mask)?,
        })
    }

    pub fn len(&self) -> usize {
        self.output.len()
    }

    pub fn is_empty(&self) -> bool {
        self.output.is_empty()
    }

    fn matches(&self, inputs: &[ArrayRef], model: &Arc<LoadedModel>) -> bool {
        Arc::ptr_eq(&self.model, model)
            && self.inputs.len() == inputs.len()
            && self.inputs.iter().zip(inputs).all(|(a, b)| {
                // The same buffers (the usual case: the engine passes
                // the chunk's columns through), else equal contents.
                a.len() == b.len() && (a.to_data().ptr_eq(&b.to_data()) || a.as_ref() == b.as_ref())
            })
    }
}

/// Default confidence below which a model-filled category is flagged.
pub const DEFAULT_REVIEW_BELOW: f64 = 0.6;

impl ModelHandle {
    /// The bundled model only (no registry).
    pub fn bundled() -> Arc<ModelHandle> {
        Arc::new(ModelHandle {
            current: RwLock::new(Arc::new(LoadedModel::bundled())),
            registry: None,
            review_below: DEFAULT_REVIEW_BELOW,
            evaluations: Default::default(),
            prepared: Default::default(),
        })
    }

    /// The registry's current model (or the bundled one if none is registered).
    pub fn open(registry: Registry, review_below: f64) -> Result<Arc<ModelHandle>, Error> {
        let loaded = registry.load_current()?;
        Ok(Arc::new(ModelHandle {
            current: RwLock::new(Arc::new(loaded)),
            registry: Some(registry),
            review_below,
            evaluations: Default::default(),
            prepared: Default::default(),
        }))
    }

    pub fn current(&self) -> Arc<LoadedModel> {
        self.current.read().expect("model lock").clone()
    }

    pub fn review_below(&self) -> f64 {
        self.review_below
    }

    /// How many batches `categorize()` has evaluated with the model.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Categorizes the six `categorize()` argument columns now with the
    /// current model, on the calling thread or (`parallel`) split over the
    /// cores.
    pub fn prepare(&self, inputs: Vec<ArrayRef>, parallel: bool) -> Result<Prepared> {
        let model = self.current();
        let output = categorize_arrays(self, &model, &inputs, parallel)?;
        Ok(Prepared {
            inputs,
            model,
            output,
        })
    }

    /// Offers `prepared` to the next `categorize()` call (replacing any
    /// earlier offer).
    pub fn offer(&self, prepared: Prepared) {
        *self.prepared.lock().expect("prepared lock") = Some(prepared);
    }

    /// Drops an offer no call took.
    pub fn withdraw(&self) {
        *self.prepared.lock().expect("prepared lock") = None;
    }

    /// Takes the offered categorization if it is for these inputs and model.
    fn take_prepared(&self, inputs: &[ArrayRef], model: &Arc<LoadedModel>) -> Option<ArrayRef> {
        let mut slot = self.prepared.lock().expect("prepared lock");
        if slot.as_ref().is_some_and(|p| p.matches(inputs, model)) {
            slot.take().map(|p| p.output)
        } else {
            None
        }
    }

    /// Re-reads the registry's `CURRENT`; loads and swaps in a new version.
    /// Returns the new version if it changed. On a load error the old model
    /// stays in use and the error is returned.
    pub fn refresh(&self) -> Result<Option<String>, Error> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let wanted = registry.current()?;
        let have = self.current().version.clone();
        let loaded = match wanted {
            Some(v) if v != have => registry.load(&v)?,
            None if have != LoadedModel::bundled_version() => LoadedModel::bundled(),
            _ => return Ok(None),
        };
        let version = loaded.version.clone();
        *self.current.write().expect("model lock") = Arc::new(loaded);
        tracing::info!(model_version = %version, "categorization model swapped in");
        Ok(Some(version))
    }
}

impl LoadedModel {
    /// Version of the bundled model (from its metadata; the model itself is
    /// not parsed for this).
    pub fn bundled_version() -> &'static str {
        static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        V.get_or_init(|| {
            serde_json::from_str::<serde_json::Value>(crate::registry::BUNDLED_METADATA)
                .ok()
                .and_then(|m| m.get("version")?.as_str().map(str::to_string))
                .expect("the bundled metadata names its version")
        })
    }
}

/// Rows per thread below which a batch is categorized on the calling thread.
const PARALLEL_MIN_ROWS: usize = 8192;

/// Categorizes a batch, split over the machine's cores when it is large
/// (DataFusion runs a micro-batch's projection as one partition).
pub fn categorize_parallel(
    categorizer: &Categorizer,
    rows: &[TxnRow<'_>],
) -> std::result::Result<Vec<Prediction>, ModelError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(rows.len() / PARALLEL_MIN_ROWS)
        .max(1);
    if threads == 1 {
        return categorizer.categorize(rows);
    }
    let chunk = rows.len().div_ceil(threads);
    let parts: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(move || categorizer.categorize(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("categorize thread"))
            .collect()
    });
    let mut out = Vec::with_capacity(rows.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// The struct type `categorize()` returns.
pub fn return_fields() -> Fields {
    Fields::from(vec![
        Field::new("category", DataType::Utf8, true),
        Field::new("confidence", DataType::Float64, true),
        Field::new("model_version", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("needs_review", DataType::Boolean, true),
    ])
}

/// The last batch's inputs and result. DataFusion evaluates
/// `categorize(...)['category']`, `categorize(...)['confidence']`, … as
/// separate expressions over the same input arrays; this makes them one
/// model evaluation. The cached input arrays are kept alive, so equal
/// buffers mean equal contents.
#[derive(Default)]
struct LastBatch {
    inputs: Vec<ArrayRef>,
    model: Option<Arc<LoadedModel>>,
    output: Option<ArrayRef>,
}

impl LastBatch {
    fn hit(&self, inputs: &[ArrayRef], model: &Arc<LoadedModel>) -> Option<ArrayRef> {
        let same_model = self.model.as_ref().is_some_and(|m| Arc::ptr_eq(m, model));
        let same_inputs = self.inputs.len() == inputs.len()
            && self
                .inputs
                .iter()
                .zip(inputs)
                .all(|(a, b)| a.len() == b.len() && a.to_data().ptr_eq(&b.to_data()));
        if same_model && same_inputs {
            self.output.clone()
        } else {
            None
        }
    }
}

pub(crate) fn udf(models: Arc<ModelHandle>) -> ScalarUDF {
    let last = Arc::new(std::sync::Mutex::new(LastBatch::default()));
    create_udf(
        "categorize",
        vec![
            DataType::Utf8,
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ],
        DataType::Struct(return_fields()),
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let model = models.current();
            if let Some(out) = last.lock().expect("cache lock").hit(&arrays, &model) {
                return Ok(ColumnarValue::Array(out));
            }
            let out = match models.take_prepared(&arrays, &model) {
                Some(out) => out,
                None => categorize_arrays(&models, &model, &arrays, true)?,
            };
            *last.lock().expect("cache lock") = LastBatch {
                inputs: arrays,
                model: Some(model),
                output: Some(out.clone()),
            };
            Ok(ColumnarValue::Array(out))
        }),
    )
}

fn categorize_arrays(
    models: &ModelHandle,
    model: &LoadedModel,
    arrays: &[ArrayRef],
    parallel: bool,
) -> Result<ArrayRef> {
    if arrays.len() != 6 {
        return Err(DataFusionError::Execution(format!(
            "categorize() takes 6 arguments, got {}",
            arrays.len()
        )));
    }
    let desc = arrays[0].as_string::<i32>();
    let amount = arrays[1].as_primitive::<Int64Type>();
    let currency_col = arrays[2].as_string::<i32>();
    let direction = arrays[3].as_string::<i32>();
    let account = arrays[4].as_string::<i32>();
    let category = arrays[5].as_string::<i32>();
    let n = desc.len();
    fn text(a: &datafusion::arrow::array::StringArray, i: usize) -> &str {
        if a.is_null(i) {
            ""
        } else {
            a.value(i)
        }
    }

    // Rows without an input category go to the model, in one batch.
    let mut todo = Vec::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let has_category = !category.is_null(i) && !category.value(i).trim().is_empty();
        if has_category {
            continue;
        }
        let cur = text(currency_col, i);
        todo.push(i);
        rows.push(TxnRow {
            description: text(desc, i),
            amount_minor: if amount.is_null(i) {
                0
            } else {
                amount.value(i)
            },
            exponent: currency::exponent(cur).unwrap_or(2),
            currency: cur,
            direction: text(direction, i),
            account: text(account, i),
        });
    }
    models
        .evaluations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let predictions = if parallel {
        categorize_parallel(&model.categorizer, &rows)
    } else {
        model.categorizer.categorize(&rows)
    }
    .map_err(|e| DataFusionError::Execution(format!("categorize(): {e}")))?;
    let classes = model.categorizer.classes();

    let mut cat_b = StringBuilder::with_capacity(n, n * 10);
    let mut conf_b = Float64Builder::with_capacity(n);
    let mut ver_b = StringBuilder::with_capacity(n, n * 8);
    let mut src_b = StringBuilder::with_capacity(n, n * 5);
    let mut rev_b = BooleanBuilder::with_capacity(n);
    let mut next = todo.iter().zip(&predictions).peekable();
    for i in 0..n {
        match next.peek() {
            Some((&j, p)) if j == i => {
                cat_b.append_value(&classes[p.class]);
                conf_b.append_value(p.confidence);
                ver_b.append_value(&model.version);
                src_b.append_value("model");
                rev_b.append_value(p.confidence < models.review_below);
                next.next();
            }
            _ => {
                cat_b.append_value(category.value(i).trim());
                conf_b.append_value(1.0);
                ver_b.append_null();
                src_b.append_value("input");
                rev_b.append_value(false);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(cat_b.finish()),
        Arc::new(conf_b.finish()),
        Arc::new(ver_b.finish()),
        Arc::new(src_b.finish()),
        Arc::new(rev_b.finish()),
    ];
    Ok(Arc::new(StructArray::new(return_fields(), columns, None)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::ModelHandle;

    #[tokio::test]
    async fn categorize_in_sql_keeps_input_and_fills_the_rest() {
        let ctx = SessionContext::new();
        let models = ModelHandle::bundled();
        crate::register_all(&ctx, &models);
        let sql = "WITH t(d, a, c, dir, acct, cat) AS (VALUES \
              ('Office Rent Payment', CAST(2000000 AS BIGINT), 'NGN', 'outflow', '1', CAST(NULL AS VARCHAR)), \
              ('Product Sale', CAST(5000000 AS BIGINT), 'NGN', 'inflow', '2', NULL), \
              ('anything', CAST(1 AS BIGINT), 'NGN', 'outflow', '2', 'Custom')) \
            SELECT categorize(d, a, c, dir, acct, cat)['category'] AS category, \
                   categorize(d, a, c, dir, acct, cat)['source'] AS source, \
                   categorize(d, a, c, dir, acct, cat)['model_version'] IS NOT NULL AS has_version, \
                   categorize(d, a, c, dir, acct, cat)['confidence'] > 0.5 AS confident \
            FROM t";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert!(
            text.contains("| Rent     | model  | true        | true      |"),
            "{text}"
        );
        assert!(
            text.contains("| Revenue  | model  | true        | true      |"),
            "{text}"
        );
        assert!(
            text.contains("| Custom   | input  | false       | true      |"),
            "{text}"
        );
        assert!(Arc::strong_count(&models) >= 1);
    }

    /// The transform takes five fields of one call: the model runs once per batch.
    #[tokio::test]
    async fn one_evaluation_per_batch_for_all_fields() {
        use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;

        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("dir", DataType::Utf8, true),
            Field::new("acct", DataType::Utf8, true),
            Field::new("cat", DataType::Utf8, true),
        ]));
        let n = 1000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["Office Rent Payment"; n])),
                Arc::new(Int64Array::from(vec![2_000_000i64; n])),
                Arc::new(StringArray::from(vec!["NGN"; n])),
                Arc::new(StringArray::from(vec!["outflow"; n])),
                Arc::new(StringArray::from(vec!["1"; n])),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        let models = ModelHandle::bundled();
        crate::register_all(&ctx, &models);
        let mem = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(mem)).unwrap();
        let call = "categorize(d, a, c, dir, acct, cat)";
        let sql = format!(
            "SELECT {call}['category'] AS k, {call}['confidence'] AS p, {call}['model_version'] AS v, \
             {call}['source'] AS s, {call}['needs_review'] AS r FROM t"
        );
        let out = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), n);
        assert_eq!(models.evaluations(), 1);
    }

    /// A categorization prepared ahead (as the import's decoder thread
    /// does) is used by the query call with equal inputs, and gives the same
    /// result as evaluating in the query; a call with other inputs, or after
    /// the offer is withdrawn, evaluates.
    #[tokio::test]
    async fn prepared_categorization_is_used_only_for_its_inputs() {
        use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;

        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("dir", DataType::Utf8, true),
            Field::new("acct", DataType::Utf8, true),
            Field::new("cat", DataType::Utf8, true),
        ]));
        let descs = [
            "Office Rent Payment",
            "Product Sale",
            "Fuel for generator",
            "Staff salaries",
        ];
        let batch = |shift: usize| {
            let n = 400;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(
                        (0..n).map(|i| descs[(i + shift) % 4]).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(
                        (0..n).map(|i| 10_000 + i as i64 * 731).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(vec!["NGN"; n])),
                    Arc::new(StringArray::from(
                        (0..n)
                            .map(|i| if i % 3 == 0 { "inflow" } else { "outflow" })
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(vec!["1"; n])),
                    Arc::new(StringArray::from(
                        (0..n)
                            .map(|i| (i % 10 == 0).then_some("Custom"))
                            .collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap()
        };
        let query = |models: Arc<ModelHandle>, b: RecordBatch| async move {
            let ctx = SessionContext::new();
            crate::register_all(&ctx, &models);
            let mem = MemTable::try_new(b.schema(), vec![vec![b]]).unwrap();
            ctx.register_table("t", Arc::new(mem)).unwrap();
            let call = "categorize(d, a, c, dir, acct, cat)";
            let out = ctx
                .sql(&format!(
                    "SELECT {call}['category'] AS k, {call}['confidence'] AS p, {call}['source'] AS s FROM t"
                ))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            pretty_format_batches(&out).unwrap().to_string()
        };
        // Reference: evaluated in the query.
        let plain = ModelHandle::bundled();
        let expected = query(plain.clone(), batch(0)).await;
        assert_eq!(plain.evaluations(), 1);

        let models = ModelHandle::bundled();
        let b = batch(0);
        let prepared = models.prepare(b.columns().to_vec(), false).unwrap();
        assert_eq!(models.evaluations(), 1);
        models.offer(prepared.clone());
        assert_eq!(query(models.clone(), b.clone()).await, expected);
        assert_eq!(models.evaluations(), 1, "the prepared result was used");

        // Offered for other inputs: not used, the query evaluates.
        models.offer(prepared.clone());
        let other = query(models.clone(), batch(1)).await;
        assert_eq!(models.evaluations(), 2);
        assert_ne!(other, expected);
        assert_eq!(other, query(ModelHandle::bundled(), batch(1)).await);

        // Withdrawn: evaluates.
        models.offer(prepared.clone());
        models.withdraw();
        assert_eq!(query(models.clone(), b.clone()).await, expected);
        assert_eq!(models.evaluations(), 3);

        // Filtered like the engine's duplicate filter: still matches.
        let mask = datafusion::arrow::array::BooleanArray::from(
            (0..400).map(|i| i % 7 != 0).collect::<Vec<_>>(),
        );
        let fb = datafusion::arrow::compute::filter_record_batch(&b, &mask).unwrap();
        models.offer(prepared.filter(&mask).unwrap());
        assert_eq!(
            query(models.clone(), fb.clone()).await,
            query(ModelHandle::bundled(), fb).await
        );
        assert_eq!(
            models.evaluations(),
            3,
            "the filtered prepared result was used"
        );
    }
}

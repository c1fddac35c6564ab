//! Evaluator of CatBoost models exported as JSON (`save_model(format="json")`).
//!
//! Supported: oblivious (symmetric) trees over float features, one-hot
//! categorical features and CTR features (`Borders`, `Buckets`, `Counter`,
//! `FeatureFreq`) on single categorical features or combinations (with
//! binarized float / exact categorical elements); multiclass (softmax),
//! one-vs-all, binary (sigmoid) and regression outputs. Anything else is a
//! load error, never a silently wrong answer.
//!
//! Format facts (CatBoost 1.2): a categorical value is hashed as
//! `(u32)CityHash64(utf8)`; split `k` of a tree sets bit `k` of the leaf
//! index; `leaf_values` hold `2^depth × dimension` values, leaf-major; the raw
//! value is `scale · Σ leaves + bias[k]`. A float split is `x > border` in
//! f32. CTR splits name their binary feature through `split_index` into one
//! global list: every float border, then every one-hot value, then each CTR's
//! borders in `features_info.ctrs` order. A CTR looks up the projection hash
//! of its elements (`h = M·(h + M·v)`) in `ctr_data[identifier].hash_map`
//! (`[hash, counts…]` with stride `hash_stride`; the slot key `u64::MAX`
//! marks an empty slot) and computes, in f32,
//! `((good + prior_numerator) / (total + prior_denomerator) + shift) · scale`.
//!
//! Evaluation works on blocks of documents: binarize every feature of the
//! block into one byte per (binary feature, document), then walk each tree
//! for all documents of the block, so the inner loops are contiguous.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

/// Documents evaluated together (bins for a block stay in L1/L2 cache).
const BLOCK: usize = 128;
/// The multiplier of CatBoost's projection hash.
const MAGIC_MULT: u64 = 0x4906_ba49_4954_cb65;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ModelError> {
    Err(ModelError(msg.into()))
}

/// What the model predicts and how raw values become outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Softmax over `dimension` raw values (`MultiClass`).
    MultiClass,
    /// Independent sigmoid per class (`MultiClassOneVsAll`).
    OneVsAll,
    /// One raw value, `P(class 1) = sigmoid(raw)` (`Logloss`, `CrossEntropy`).
    Binary,
    /// Raw value is the prediction (RMSE, MAE, Quantile, …).
    Regression,
}

/// Kind of an input feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    Float,
    Categorical,
}

/// One input feature, in the model's flat (column) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSpec {
    pub name: String,
    pub kind: FeatureKind,
}

/// One input column for [`Model::predict_raw`].
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// Float feature values (NaN = missing).
    Float(&'a [f32]),
    /// Categorical feature values already hashed with [`crate::cityhash::cat_hash`].
    Cat(&'a [u32]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nan {
    /// NaN compares false with every border (counts as below all).
    AsFalse,
    /// NaN counts as above every border.
    AsTrue,
}

#[derive(Debug, Clone)]
struct FloatFeature {
    flat: usize,
    borders: Vec<f32>,
    nan: Nan,
}

#[derive(Debug, Clone)]
struct CatFeature {
    flat: usize,
    /// One-hot values (hashes), if the model one-hot encodes this feature.
    onehot: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Element {
    /// The categorical feature's hash (sign-extended).
    CatValue(usize),
    /// `x > border` of a float feature.
    FloatBorder(usize, f32),
    /// `hash == value` of a categorical feature.
    CatExact(usize, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CtrKind {
    Borders,
    Buckets,
    Counter,
}

#[derive(Debug, Clone)]
struct CtrTable {
    projection: usize,
    kind: CtrKind,
    /// Projection hash → bucket.
    index: HashMap<u64, u32, IdentityHasher>,
    /// Counts per bucket, `stride` values each.
    counts: Vec<f32>,
    stride: usize,
    counter_denominator: f32,
}

#[derive(Debug, Clone)]
struct Ctr {
    table: usize,
    target_border_idx: usize,
    prior_num: f32,
    prior_denom: f32,
    shift: f32,
    scale: f32,
    borders: Vec<f32>,
    /// The CTR's bin for every bucket of its table, computed at load time:
    /// index 0 = unseen projection, index b + 1 = bucket b.
    bin_of_bucket: Vec<u8>,
}

/// Where a binary feature's byte comes from.
#[derive(Debug, Clone)]
enum BinSource {
    Float(usize),
    OneHot(usize),
    Ctr(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cond {
    /// `bin >= t` (float and CTR borders: x > border_k ⇔ bin ≥ k+1).
    Ge(u8),
    /// `bin == t` (one-hot value j ⇔ bin = j+1).
    Eq(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Split {
    bin: u32,
    cond: Cond,
}

#[derive(Debug, Clone)]
struct Tree {
    splits: Vec<u32>,
    leaf_offset: usize,
}

/// A loaded CatBoost model; immutable, `Send + Sync`, shared across threads.
#[derive(Debug, Clone)]
pub struct Model {
    features: Vec<FeatureSpec>,
    floats: Vec<FloatFeature>,
    cats: Vec<CatFeature>,
    projections: Vec<Vec<Element>>,
    tables: Vec<CtrTable>,
    ctrs: Vec<Ctr>,
    bins: Vec<BinSource>,
    splits: Vec<Split>,
    trees: Vec<Tree>,
    leaf_values: Vec<f64>,
    dimension: usize,
    scale: f64,
    bias: Vec<f64>,
    output: Output,
    loss: String,
    class_names: Vec<String>,
}

fn get<'a>(v: &'a Value, key: &str, ctx: &str) -> Result<&'a Value, ModelError> {
    v.get(key)
        .ok_or_else(|| ModelError(format!("{ctx}: missing `{key}`")))
}

fn as_f64(v: &Value, ctx: &str) -> Result<f64, ModelError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ModelError(format!("{ctx}: bad number"))),
        Value::String(s) => s
            .parse::<f64>()
            .map_err(|_| ModelError(format!("{ctx}: bad number {s:?}"))),
        _ => err(format!("{ctx}: expected a number, got {v}")),
    }
}

fn as_usize(v: &Value, ctx: &str) -> Result<usize, ModelError> {
    v.as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| ModelError(format!("{ctx}: expected a non-negative integer, got {v}")))
}

/// A 64-bit hash key written as a JSON string or number.
fn as_u64_key(v: &Value, ctx: &str) -> Result<u64, ModelError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|i| i as u64))
            .ok_or_else(|| ModelError(format!("{ctx}: bad hash key {n}"))),
        Value::String(s) => s
            .parse::<u64>()
            .or_else(|_| s.parse::<i64>().map(|i| i as u64))
            .map_err(|_| ModelError(format!("{ctx}: bad hash key {s:?}"))),
        _ => err(format!("{ctx}: bad hash key {v}")),
    }
}

/// A categorical hash value (stored as i32 or u32 in the JSON).
fn as_cat_hash(v: &Value, ctx: &str) -> Result<u32, ModelError> {
    let x = v
        .as_i64()
        .ok_or_else(|| ModelError(format!("{ctx}: bad categorical hash {v}")))?;
    if x < i32::MIN as i64 || x > u32::MAX as i64 {
        return err(format!("{ctx}: categorical hash out of range: {x}"));
    }
    Ok(x as u32)
}

fn array<'a>(v: &'a Value, ctx: &str) -> Result<&'a Vec<Value>, ModelError> {
    v.as_array()
        .ok_or_else(|| ModelError(format!("{ctx}: expected an array")))
}

fn f32_list(v: &Value, ctx: &str) -> Result<Vec<f32>, ModelError> {
    array(v, ctx)?
        .iter()
        .map(|b| as_f64(b, ctx).map(|x| x as f32))
        .collect()
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Model {
    /// Loads a model from CatBoost JSON text.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| ModelError(format!("invalid JSON: {e}")))?;
        Self::from_value(&root)
    }

    pub fn from_value(root: &Value) -> Result<Model, ModelError> {
        if root.get("trees").is_some() && root.get("oblivious_trees").is_none() {
            return err("non-symmetric trees (grow_policy Depthwise/Lossguide) are not supported; train with the default SymmetricTree");
        }
        let info = get(root, "features_info", "model")?;
        for unsupported in ["text_features", "embedding_features"] {
            if info
                .get(unsupported)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return err(format!(
                    "{unsupported} are not supported (CatBoost does not export them to JSON)"
                ));
            }
        }

        // Loss function → output kind.
        let model_info = root.get("model_info");
        let params = model_info.and_then(|m| m.get("params")).map(|p| match p {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            other => other.clone(),
        });
        let loss = params
            .as_ref()
            .and_then(|p| p.get("loss_function"))
            .and_then(|l| l.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("RMSE")
            .to_string();
        let output = match loss.as_str() {
            "MultiClass" => Output::MultiClass,
            "MultiClassOneVsAll" => Output::OneVsAll,
            "Logloss" | "CrossEntropy" => Output::Binary,
            "RMSE" | "MAE" | "Quantile" | "MAPE" | "Huber" | "Lq" | "Expectile" | "LogCosh" => {
                Output::Regression
            }
            other => {
                return err(format!(
                    "loss function {other} is not supported (supported: MultiClass, MultiClassOneVsAll, Logloss, CrossEntropy, RMSE, MAE, Quantile, MAPE, Huber, Lq, Expectile, LogCosh)"
                ))
            }
        };
        let mut class_names: Vec<String> = model_info
            .and_then(|m| m.get("class_params"))
            .and_then(|c| c.get("class_names"))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(label_text).collect())
            .unwrap_or_default();

        // Features.
        let mut features: Vec<(usize, FeatureSpec)> = Vec::new();
        let mut floats = Vec::new();
        if let Some(list) = info.get("float_features") {
            for (i, f) in array(list, "float_features")?.iter().enumerate() {
                let ctx = format!("float_features[{i}]");
                if as_usize(get(f, "feature_index", &ctx)?, &ctx)? != i {
                    return err(format!("{ctx}: feature_index out of order"));
                }
                let flat = as_usize(get(f, "flat_feature_index", &ctx)?, &ctx)?;
                let borders = match f.get("borders") {
                    Some(Value::Null) | None => Vec::new(),
                    Some(b) => f32_list(b, &ctx)?,
                };
                if borders.windows(2).any(|w| w[0] >= w[1]) {
                    return err(format!("{ctx}: borders are not strictly increasing"));
                }
                if borders.len() > 254 {
                    return err(format!("{ctx}: more than 254 borders"));
                }
                let nan = match f.get("nan_value_treatment").and_then(Value::as_str) {
                    None | Some("AsIs") | Some("AsFalse") => Nan::AsFalse,
                    Some("AsTrue") => Nan::AsTrue,
                    Some(other) => return err(format!("{ctx}: nan_value_treatment {other}")),
                };
                let name = f
                    .get("feature_id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| flat.to_string());
                features.push((
                    flat,
                    FeatureSpec {
                        name,
                        kind: FeatureKind::Float,
                    },
                ));
                floats.push(FloatFeature { flat, borders, nan });
            }
        }
        let mut cats = Vec::new();
        if let Some(list) = info.get("categorical_features") {
            for (i, f) in array(list, "categorical_features")?.iter().enumerate() {
                let ctx = format!("categorical_features[{i}]");
                if as_usize(get(f, "feature_index", &ctx)?, &ctx)? != i {
                    return err(format!("{ctx}: feature_index out of order"));
                }
                let flat = as_usize(get(f, "flat_feature_index", &ctx)?, &ctx)?;
                let onehot = match f.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => array(v, &ctx)?
                        .iter()
                        .map(|x| as_cat_hash(x, &ctx))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                if onehot.len() > 254 {
                    return err(format!("{ctx}: more than 254 one-hot values"));
                }
                let name = f
                    .get("feature_id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| flat.to_string());
                features.push((
                    flat,
                    FeatureSpec {
                        name,
                        kind: FeatureKind::Categorical,
                    },
                ));
                cats.push(CatFeature { flat, onehot });
            }
        }
        features.sort_by_key(|(flat, _)| *flat);
        for (i, (flat, _)) in features.iter().enumerate() {
            if *flat != i {
                return err(format!(
                    "flat feature indexes are not 0..n (missing index {i})"
                ));
            }
        }
        let features: Vec<FeatureSpec> = features.into_iter().map(|(_, f)| f).collect();

        // Binary features and the global split list (split_index order).
        let mut bins = Vec::new();
        let mut global: Vec<(u32, Cond, f64)> = Vec::new();
        for (i, f) in floats.iter().enumerate() {
            if f.borders.is_empty() {
                continue;
            }
            let bin = bins.len() as u32;
            bins.push(BinSource::Float(i));
            for (k, b) in f.borders.iter().enumerate() {
                global.push((bin, Cond::Ge(k as u8 + 1), *b as f64));
            }
        }
        for (i, c) in cats.iter().enumerate() {
            if c.onehot.is_empty() {
                continue;
            }
            let bin = bins.len() as u32;
            bins.push(BinSource::OneHot(i));
            for (j, v) in c.onehot.iter().enumerate() {
                global.push((bin, Cond::Eq(j as u8 + 1), *v as i32 as f64));
            }
        }

        // CTRs.
        let mut projections: Vec<Vec<Element>> = Vec::new();
        let mut tables: Vec<CtrTable> = Vec::new();
        let mut table_ids: HashMap<String, usize> = HashMap::new();
        let mut ctrs = Vec::new();
        let ctr_data = root.get("ctr_data");
        if let Some(list) = info.get("ctrs") {
            for (i, c) in array(list, "ctrs")?.iter().enumerate() {
                let ctx = format!("ctrs[{i}]");
                let ctr_type = get(c, "ctr_type", &ctx)?.as_str().unwrap_or("");
                let kind = match ctr_type {
                    "Borders" => CtrKind::Borders,
                    "Buckets" => CtrKind::Buckets,
                    "Counter" | "FeatureFreq" => CtrKind::Counter,
                    other => {
                        return err(format!(
                            "{ctx}: CTR type {other} is not supported (supported: Borders, Buckets, Counter, FeatureFreq)"
                        ))
                    }
                };
                let mut elements = Vec::new();
                for e in array(get(c, "elements", &ctx)?, &ctx)? {
                    let what = get(e, "combination_element", &ctx)?.as_str().unwrap_or("");
                    elements.push(match what {
                        "cat_feature_value" => {
                            let idx = as_usize(get(e, "cat_feature_index", &ctx)?, &ctx)?;
                            if idx >= cats.len() {
                                return err(format!("{ctx}: cat_feature_index {idx} out of range"));
                            }
                            Element::CatValue(idx)
                        }
                        "float_feature" => {
                            let idx = as_usize(get(e, "float_feature_index", &ctx)?, &ctx)?;
                            if idx >= floats.len() {
                                return err(format!(
                                    "{ctx}: float_feature_index {idx} out of range"
                                ));
                            }
                            Element::FloatBorder(idx, as_f64(get(e, "border", &ctx)?, &ctx)? as f32)
                        }
                        "cat_feature_exact_value" => {
                            let idx = as_usize(get(e, "cat_feature_index", &ctx)?, &ctx)?;
                            if idx >= cats.len() {
                                return err(format!("{ctx}: cat_feature_index {idx} out of range"));
                            }
                            Element::CatExact(idx, as_cat_hash(get(e, "value", &ctx)?, &ctx)?)
                        }
                        other => {
                            return err(format!(
                                "{ctx}: combination element {other:?} is not supported"
                            ))
                        }
                    });
                }
                let projection = match projections.iter().position(|p| *p == elements) {
                    Some(p) => p,
                    None => {
                        projections.push(elements);
                        projections.len() - 1
                    }
                };
                let identifier = get(c, "identifier", &ctx)?
                    .as_str()
                    .ok_or_else(|| ModelError(format!("{ctx}: identifier is not a string")))?;
                let table = match table_ids.get(identifier) {
                    Some(t) => *t,
                    None => {
                        let data = ctr_data.and_then(|d| d.get(identifier)).ok_or_else(|| {
                            ModelError(format!("{ctx}: no ctr_data for {identifier}"))
                        })?;
                        let t = load_table(data, projection, kind, &ctx)?;
                        tables.push(t);
                        table_ids.insert(identifier.to_string(), tables.len() - 1);
                        tables.len() - 1
                    }
                };
                if tables[table].kind != kind || tables[table].projection != projection {
                    return err(format!("{ctx}: identifier does not match its CTR"));
                }
                let target_border_idx = c
                    .get("target_border_idx")
                    .map(|v| as_usize(v, &ctx))
                    .transpose()?
                    .unwrap_or(0);
                let t = &tables[table];
                let classes = t.stride;
                if matches!(kind, CtrKind::Borders | CtrKind::Buckets)
                    && target_border_idx >= classes
                {
                    return err(format!("{ctx}: target_border_idx out of range"));
                }
                let borders = f32_list(get(c, "borders", &ctx)?, &ctx)?;
                if borders.windows(2).any(|w| w[0] >= w[1]) || borders.len() > 254 {
                    return err(format!(
                        "{ctx}: borders not strictly increasing or too many"
                    ));
                }
                let mut ctr = Ctr {
                    table,
                    target_border_idx,
                    prior_num: as_f64(get(c, "prior_numerator", &ctx)?, &ctx)? as f32,
                    prior_denom: as_f64(get(c, "prior_denomerator", &ctx)?, &ctx)? as f32,
                    shift: as_f64(get(c, "shift", &ctx)?, &ctx)? as f32,
                    scale: as_f64(get(c, "scale", &ctx)?, &ctx)? as f32,
                    borders,
                    bin_of_bucket: Vec::new(),
                };
                ctr.bin_of_bucket = ctr_bins(&ctr, &tables[table]);
                let bin = bins.len() as u32;
                bins.push(BinSource::Ctr(ctrs.len()));
                for (k, b) in ctr.borders.iter().enumerate() {
                    global.push((bin, Cond::Ge(k as u8 + 1), *b as f64));
                }
                ctrs.push(ctr);
            }
        }

        // Trees.
        let mut splits: Vec<Split> = Vec::new();
        let mut split_ids: HashMap<Split, u32> = HashMap::new();
        let mut trees = Vec::new();
        let mut leaf_values: Vec<f64> = Vec::new();
        let mut dimension = 0usize;
        for (ti, t) in array(get(root, "oblivious_trees", "model")?, "oblivious_trees")?
            .iter()
            .enumerate()
        {
            let ctx = format!("oblivious_trees[{ti}]");
            let list = match t.get("splits") {
                None | Some(Value::Null) => &Vec::new(),
                Some(s) => array(s, &ctx)?,
            };
            if list.len() > 16 {
                return err(format!("{ctx}: depth {} > 16", list.len()));
            }
            let mut ids = Vec::with_capacity(list.len());
            for s in list {
                let index = as_usize(get(s, "split_index", &ctx)?, &ctx)?;
                let &(bin, cond, expect) = global.get(index).ok_or_else(|| {
                    ModelError(format!("{ctx}: split_index {index} out of range"))
                })?;
                let kind = get(s, "split_type", &ctx)?.as_str().unwrap_or("");
                let (ok, value) = match kind {
                    "FloatFeature" => (
                        matches!(bins[bin as usize], BinSource::Float(_)),
                        as_f64(get(s, "border", &ctx)?, &ctx)? as f32 as f64,
                    ),
                    "OneHotFeature" => (
                        matches!(bins[bin as usize], BinSource::OneHot(_)),
                        as_cat_hash(get(s, "value", &ctx)?, &ctx)? as i32 as f64,
                    ),
                    "OnlineCtr" => (
                        matches!(bins[bin as usize], BinSource::Ctr(_)),
                        as_f64(get(s, "border", &ctx)?, &ctx)? as f32 as f64,
                    ),
                    other => return err(format!("{ctx}: split type {other} is not supported")),
                };
                if !ok || value != expect {
                    return err(format!(
                        "{ctx}: split_index {index} ({kind} {value}) does not match the model's feature borders"
                    ));
                }
                let split = Split { bin, cond };
                let id = *split_ids.entry(split).or_insert_with(|| {
                    splits.push(split);
                    splits.len() as u32 - 1
                });
                ids.push(id);
            }
            let leaves = array(get(t, "leaf_values", &ctx)?, &ctx)?;
            let n_leaves = 1usize << ids.len();
            if leaves.is_empty() || leaves.len() % n_leaves != 0 {
                return err(format!("{ctx}: leaf_values length {}", leaves.len()));
            }
            let dim = leaves.len() / n_leaves;
            if dimension == 0 {
                dimension = dim;
            } else if dim != dimension {
                return err(format!("{ctx}: dimension {dim} differs from {dimension}"));
            }
            let offset = leaf_values.len();
            for v in leaves {
                leaf_values.push(as_f64(v, &ctx)?);
            }
            trees.push(Tree {
                splits: ids,
                leaf_offset: offset,
            });
        }
        if trees.is_empty() {
            return err("model has no trees");
        }

        let (scale, bias) = match root.get("scale_and_bias") {
            None => (1.0, vec![0.0; dimension]),
            Some(sb) => {
                let sb = array(sb, "scale_and_bias")?;
                if sb.len() != 2 {
                    return err("scale_and_bias: expected [scale, bias]");
                }
                let scale = as_f64(&sb[0], "scale_and_bias")?;
                let bias = match &sb[1] {
                    Value::Array(a) => a
                        .iter()
                        .map(|b| as_f64(b, "scale_and_bias"))
                        .collect::<Result<Vec<_>, _>>()?,
                    v => vec![as_f64(v, "scale_and_bias")?],
                };
                let bias = if bias.is_empty() {
                    vec![0.0; dimension]
                } else {
                    bias
                };
                if bias.len() != dimension {
                    return err("scale_and_bias: bias length differs from the model dimension");
                }
                (scale, bias)
            }
        };

        match output {
            Output::MultiClass | Output::OneVsAll => {
                if class_names.is_empty() {
                    class_names = (0..dimension).map(|i| i.to_string()).collect();
                }
                if class_names.len() != dimension {
                    return err(format!(
                        "{} class names for a model of dimension {dimension}",
                        class_names.len()
                    ));
                }
            }
            Output::Binary => {
                if dimension != 1 {
                    return err("binary model with more than one output");
                }
                if class_names.is_empty() {
                    class_names = vec!["0".into(), "1".into()];
                }
                if class_names.len() != 2 {
                    return err("binary model needs two class names");
                }
            }
            Output::Regression => {
                if dimension != 1 {
                    return err("multi-output regression is not supported");
                }
                class_names.clear();
            }
        }

        Ok(Model {
            features,
            floats,
            cats,
            projections,
            tables,
            ctrs,
            bins,
            splits,
            trees,
            leaf_values,
            dimension,
            scale,
            bias,
            output,
            loss,
            class_names,
        })
    }

    /// Input features in flat (column) order.
    pub fn features(&self) -> &[FeatureSpec] {
        &self.features
    }

    pub fn output(&self) -> Output {
        self.output
    }

    /// The loss function the model was trained with.
    pub fn loss(&self) -> &str {
        &self.loss
    }

    /// Class labels (empty for regression).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Raw values per document.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    /// Values per document of [`Model::predict`]: one probability per class,
    /// or one prediction for regression.
    pub fn output_width(&self) -> usize {
        match self.output {
            Output::Regression => 1,
            _ => self.class_names.len(),
        }
    }

    fn check_columns(&self, columns: &[Column<'_>], n: usize) -> Result<(), ModelError> {
        if columns.len() != self.features.len() {
            return err(format!(
                "{} input columns for a model with {} features",
                columns.len(),
                self.features.len()
            ));
        }
        for (i, (c, f)) in columns.iter().zip(&self.features).enumerate() {
            let (len, kind) = match c {
                Column::Float(v) => (v.len(), FeatureKind::Float),
                Column::Cat(v) => (v.len(), FeatureKind::Categorical),
            };
            if kind != f.kind {
                return err(format!(
                    "column {i} ({}) must be {:?}, got {kind:?}",
                    f.name, f.kind
                ));
            }
            if len != n {
                return err(format!(
                    "column {i} ({}) has {len} rows, expected {n}",
                    f.name
                ));
            }
        }
        Ok(())
    }

    /// Raw formula values: `n × dimension`, document-major, into `out`.
    pub fn predict_raw(
        &self,
        columns: &[Column<'_>],
        n: usize,
        out: &mut Vec<f64>,
    ) -> Result<(), ModelError> {
        self.check_columns(columns, n)?;
        out.clear();
        out.resize(n * self.dimension, 0.0);
        let mut scratch = Scratch::new(self);
        let mut start = 0;
        while start < n {
            let len = BLOCK.min(n - start);
            let block = &mut out[start * self.dimension..(start + len) * self.dimension];
            self.eval_block_dispatch(columns, start, len, &mut scratch, block);
            start += len;
        }
        Ok(())
    }

    /// Like CatBoost's `predict_proba` (classification: `n × classes`
    /// probabilities) or `predict` (regression: `n` values).
    pub fn predict(
        &self,
        columns: &[Column<'_>],
        n: usize,
        out: &mut Vec<f64>,
    ) -> Result<(), ModelError> {
        let mut raw = Vec::new();
        self.predict_raw(columns, n, &mut raw)?;
        out.clear();
        match self.output {
            Output::Regression => out.extend_from_slice(&raw),
            Output::Binary => {
                for r in raw {
                    let p = sigmoid(r);
                    out.push(1.0 - p);
                    out.push(p);
                }
            }
            Output::OneVsAll => out.extend(raw.iter().map(|r| sigmoid(*r))),
            Output::MultiClass => {
                for doc in raw.chunks_exact(self.dimension) {
                    let max = doc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let start = out.len();
                    let mut sum = 0.0;
                    for r in doc {
                        let e = (r - max).exp();
                        sum += e;
                        out.push(e);
                    }
                    for p in &mut out[start..] {
                        *p /= sum;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs [`Model::eval_block`] compiled for the widest vector unit the
    /// CPU has (same arithmetic in the same order, so the same results).
    fn eval_block_dispatch(
        &self,
        columns: &[Column<'_>],
        start: usize,
        len: usize,
        s: &mut Scratch,
        out: &mut [f64],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the CPU supports the enabled features (checked above).
                unsafe { self.eval_block_avx512(columns, start, len, s, out) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked above).
                unsafe { self.eval_block_avx2(columns, start, len, s, out) };
                return;
            }
        }
        self.eval_block(columns, start, len, s, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn eval_block_avx2(
        &self,
        columns: &[Column<'_>],
        start: usize,
        len: usize,
        s: &mut Scratch,
        out: &mut [f64],
    ) {
        self.eval_block(columns, start, len, s, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    unsafe fn eval_block_avx512(
        &self,
        columns: &[Column<'_>],
        start: usize,
        len: usize,
        s: &mut Scratch,
        out: &mut [f64],
    ) {
        self.eval_block(columns, start, len, s, out)
    }

    #[inline(always)]
    fn eval_block(
        &self,
        columns: &[Column<'_>],
        start: usize,
        len: usize,
        s: &mut Scratch,
        out: &mut [f64],
    ) {
        let end = start + len;
        // 1. Binarize.
        for (b, src) in self.bins.iter().enumerate() {
            let row = &mut s.bins[b * BLOCK..b * BLOCK + len];
            match *src {
                BinSource::Float(i) => {
                    let f = &self.floats[i];
                    let Column::Float(xs) = columns[f.flat] else {
                        unreachable!("checked")
                    };
                    for (dst, &x) in row.iter_mut().zip(&xs[start..end]) {
                        *dst = if x.is_nan() {
                            match f.nan {
                                Nan::AsFalse => 0,
                                Nan::AsTrue => f.borders.len() as u8,
                            }
                        } else {
                            f.borders.partition_point(|&b| b < x) as u8
                        };
                    }
                }
                BinSource::OneHot(i) => {
                    let c = &self.cats[i];
                    let Column::Cat(hs) = columns[c.flat] else {
                        unreachable!("checked")
                    };
                    for (dst, &h) in row.iter_mut().zip(&hs[start..end]) {
                        *dst = c
                            .onehot
                            .iter()
                            .position(|v| *v == h)
                            .map_or(0, |j| j as u8 + 1);
                    }
                }
                BinSource::Ctr(_) => {}
            }
        }
        if !self.ctrs.is_empty() {
            // Projection hashes.
            for (p, elements) in self.projections.iter().enumerate() {
                let hashes = &mut s.proj[p * BLOCK..p * BLOCK + len];
                hashes.fill(0);
                for e in elements {
                    match *e {
                        Element::CatValue(c) => {
                            let Column::Cat(hs) = columns[self.cats[c].flat] else {
                                unreachable!("checked")
                            };
                            for (h, &v) in hashes.iter_mut().zip(&hs[start..end]) {
                                *h = calc_hash(*h, v as i32 as i64 as u64);
                            }
                        }
                        Element::FloatBorder(f, border) => {
                            let Column::Float(xs) = columns[self.floats[f].flat] else {
                                unreachable!("checked")
                            };
                            let nan_true = self.floats[f].nan == Nan::AsTrue;
                            for (h, &x) in hashes.iter_mut().zip(&xs[start..end]) {
                                let bit = if x.is_nan() { nan_true } else { x > border };
                                *h = calc_hash(*h, bit as u64);
                            }
                        }
                        Element::CatExact(c, value) => {
                            let Column::Cat(hs) = columns[self.cats[c].flat] else {
                                unreachable!("checked")
                            };
                            for (h, &v) in hashes.iter_mut().zip(&hs[start..end]) {
                                *h = calc_hash(*h, (v == value) as u64);
                            }
                        }
                    }
                }
            }
            // Buckets per table.
            for (t, table) in self.tables.iter().enumerate() {
                let hashes = &s.proj[table.projection * BLOCK..table.projection * BLOCK + len];
                for (dst, h) in s.bucket[t * BLOCK..t * BLOCK + len].iter_mut().zip(hashes) {
                    *dst = table.index.get(h).copied().unwrap_or(u32::MAX);
                }
            }
            // CTR values → bins.
            for (b, src) in self.bins.iter().enumerate() {
                let BinSource::Ctr(ci) = *src else { continue };
                let ctr = &self.ctrs[ci];
                let buckets = &s.bucket[ctr.table * BLOCK..ctr.table * BLOCK + len];
                let row = &mut s.bins[b * BLOCK..b * BLOCK + len];
                let bins = &ctr.bin_of_bucket;
                for (dst, &bucket) in row.iter_mut().zip(buckets) {
                    // u32::MAX (unseen) wraps to index 0.
                    *dst = bins[bucket.wrapping_add(1) as usize];
                }
            }
        }
        // 2. Split bits (one byte per document).
        for (i, split) in self.splits.iter().enumerate() {
            let row = &s.bins[split.bin as usize * BLOCK..split.bin as usize * BLOCK + len];
            let bits = &mut s.bits[i * BLOCK..i * BLOCK + len];
            match split.cond {
                Cond::Ge(t) => {
                    for (d, &v) in bits.iter_mut().zip(row) {
                        *d = (v >= t) as u8;
                    }
                }
                Cond::Eq(t) => {
                    for (d, &v) in bits.iter_mut().zip(row) {
                        *d = (v == t) as u8;
                    }
                }
            }
        }
        // 3. Trees.
        let dim = self.dimension;
        let index = &mut s.index[..len];
        for tree in &self.trees {
            index.fill(0);
            for (k, &sid) in tree.splits.iter().enumerate() {
                let bits = &s.bits[sid as usize * BLOCK..sid as usize * BLOCK + len];
                for (ix, &b) in index.iter_mut().zip(bits) {
                    *ix |= (b as u32) << k;
                }
            }
            let leaves = &self.leaf_values[tree.leaf_offset..];
            match dim {
                1 => add_leaves::<1>(out, index, leaves),
                2 => add_leaves::<2>(out, index, leaves),
                3 => add_leaves::<3>(out, index, leaves),
                4 => add_leaves::<4>(out, index, leaves),
                5 => add_leaves::<5>(out, index, leaves),
                6 => add_leaves::<6>(out, index, leaves),
                7 => add_leaves::<7>(out, index, leaves),
                8 => add_leaves::<8>(out, index, leaves),
                9 => add_leaves::<9>(out, index, leaves),
                10 => add_leaves::<10>(out, index, leaves),
                12 => add_leaves::<12>(out, index, leaves),
                16 => add_leaves::<16>(out, index, leaves),
                _ => {
                    for (o, &ix) in out.chunks_exact_mut(dim).zip(index.iter()) {
                        let leaf = &leaves[ix as usize * dim..ix as usize * dim + dim];
                        for (a, b) in o.iter_mut().zip(leaf) {
                            *a += b;
                        }
                    }
                }
            }
        }
        for doc in out.chunks_exact_mut(dim) {
            for (v, b) in doc.iter_mut().zip(&self.bias) {
                *v = self.scale * *v + b;
            }
        }
    }
}

/// Adds each document's leaf (`D` values) to its outputs; `D` known at
/// compile time so the inner loop is one or two vector adds.
#[inline(always)]
fn add_leaves<const D: usize>(out: &mut [f64], index: &[u32], leaves: &[f64]) {
    for (o, &ix) in out.chunks_exact_mut(D).zip(index) {
        let start = ix as usize * D;
        let leaf: &[f64; D] = leaves[start..start + D].try_into().expect("D leaf values");
        let o: &mut [f64; D] = o.try_into().expect("D outputs");
        let mut acc = *o;
        for (a, l) in acc.iter_mut().zip(leaf) {
            *a += l;
        }
        *o = acc;
    }
}

/// Per-call working memory for one block.
struct Scratch {
    bins: Vec<u8>,
    proj: Vec<u64>,
    bucket: Vec<u32>,
    bits: Vec<u8>,
    index: Vec<u32>,
}

impl Scratch {
    fn new(m: &Model) -> Scratch {
        Scratch {
            bins: vec![0; m.bins.len() * BLOCK],
            proj: vec![0; m.projections.len() * BLOCK],
            bucket: vec![0; m.tables.len() * BLOCK],
            bits: vec![0; m.splits.len() * BLOCK],
            index: vec![0; BLOCK],
        }
    }
}

/// The bin (number of borders below the CTR value) for an unseen projection
/// and for every bucket of the table. The value is computed in f32 as
/// CatBoost does: `((good + prior_num) / (total + prior_denom) + shift) * scale`.
fn ctr_bins(ctr: &Ctr, table: &CtrTable) -> Vec<u8> {
    let bin = |good: f32, total: f32| -> u8 {
        let value = ((good + ctr.prior_num) / (total + ctr.prior_denom) + ctr.shift) * ctr.scale;
        ctr.borders.partition_point(|&b| b < value) as u8
    };
    let mut out = vec![bin(0.0, 0.0)];
    for counts in table.counts.chunks_exact(table.stride) {
        let (good, total) = match table.kind {
            CtrKind::Counter => (counts[0], table.counter_denominator),
            CtrKind::Buckets => (counts[ctr.target_border_idx], counts.iter().sum::<f32>()),
            CtrKind::Borders => {
                if table.stride == 2 {
                    (counts[1], counts[0] + counts[1])
                } else {
                    let good: f32 = counts[ctr.target_border_idx + 1..].iter().sum();
                    let below: f32 = counts[..=ctr.target_border_idx].iter().sum();
                    (good, below + good)
                }
            }
        };
        out.push(bin(good, total));
    }
    out
}

#[inline]
fn calc_hash(a: u64, b: u64) -> u64 {
    MAGIC_MULT.wrapping_mul(a.wrapping_add(MAGIC_MULT.wrapping_mul(b)))
}

#[inline]
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn load_table(
    data: &Value,
    projection: usize,
    kind: CtrKind,
    ctx: &str,
) -> Result<CtrTable, ModelError> {
    let stride = as_usize(get(data, "hash_stride", ctx)?, ctx)?;
    if stride < 2 {
        return err(format!("{ctx}: hash_stride {stride}"));
    }
    let counter_denominator = data
        .get("counter_denominator")
        .map(|v| as_f64(v, ctx))
        .transpose()?
        .unwrap_or(0.0) as f32;
    let flat = array(get(data, "hash_map", ctx)?, ctx)?;
    if flat.len() % stride != 0 {
        return err(format!(
            "{ctx}: hash_map length is not a multiple of hash_stride"
        ));
    }
    match kind {
        CtrKind::Counter if stride != 2 => {
            return err(format!("{ctx}: Counter table with stride {stride}"))
        }
        CtrKind::Borders | CtrKind::Buckets if stride < 3 => {
            return err(format!("{ctx}: class-count table with stride {stride}"))
        }
        _ => {}
    }
    let mut index = HashMap::with_hasher(IdentityHasher);
    let mut counts = Vec::new();
    for entry in flat.chunks_exact(stride) {
        let key = as_u64_key(&entry[0], ctx)?;
        if key == u64::MAX {
            continue; // empty slot of CatBoost's dense hash
        }
        let bucket = (counts.len() / (stride - 1)) as u32;
        for c in &entry[1..] {
            counts.push(as_f64(c, ctx)? as f32);
        }
        index.insert(key, bucket);
    }
    Ok(CtrTable {
        projection,
        kind,
        index,
        counts,
        stride: stride - 1,
        counter_denominator,
    })
}

/// Hasher for keys that are already uniformly distributed 64-bit hashes.
#[derive(Default, Clone, Copy, Debug)]
struct IdentityHasher;

impl std::hash::BuildHasher for IdentityHasher {
    type Hasher = IdentityState;
    fn build_hasher(&self) -> IdentityState {
        IdentityState(0)
    }
}

#[derive(Default)]
struct IdentityState(u64);

impl std::hash::Hasher for IdentityState {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

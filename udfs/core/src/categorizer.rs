//! The transaction categorizer: a CatBoost multiclass model over features
//! computed from a transaction, by name. A model may use any subset of:
//!
//! | feature | kind | value |
//! |---|---|---|
//! | `amount` | float | `abs(amount_minor) / 10^exponent` (major units) |
//! | `direction` | categorical | `inflow` / `outflow` (lower-case) |
//! | `account` | categorical | `account_id` as text |
//! | `currency` | categorical | ISO 4217 code (upper-case) |
//! | `desc` | categorical | normalized description ([`crate::text`]) |
//! | `tok_first`, `tok_first2`, `tok_last` | categorical | its first, first two and last tokens |
//!
//! The training script computes the same features with the same rules.

use crate::catboost::{Column, FeatureKind, Model, ModelError, Output};
use crate::cityhash::cat_hash;
use crate::text::{amount_major, normalize_description, token_features};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    Amount,
    Direction,
    Account,
    Currency,
    Desc,
    TokFirst,
    TokFirst2,
    TokLast,
}

/// Names of the features a categorizer model may use.
pub const FEATURE_NAMES: &[&str] = &[
    "amount",
    "direction",
    "account",
    "currency",
    "desc",
    "tok_first",
    "tok_first2",
    "tok_last",
];

fn feature(name: &str) -> Option<(Feature, FeatureKind)> {
    use FeatureKind::*;
    Some(match name {
        "amount" => (Feature::Amount, Float),
        "direction" => (Feature::Direction, Categorical),
        "account" => (Feature::Account, Categorical),
        "currency" => (Feature::Currency, Categorical),
        "desc" => (Feature::Desc, Categorical),
        "tok_first" => (Feature::TokFirst, Categorical),
        "tok_first2" => (Feature::TokFirst2, Categorical),
        "tok_last" => (Feature::TokLast, Categorical),
        _ => return None,
    })
}

/// One transaction's fields, as the categorizer reads them.
#[derive(Debug, Clone, Copy)]
pub struct TxnRow<'a> {
    pub description: &'a str,
    pub amount_minor: i64,
    /// Minor-unit digits of the currency.
    pub exponent: u8,
    pub currency: &'a str,
    pub direction: &'a str,
    pub account: &'a str,
}

/// A model's prediction for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Index into [`Categorizer::classes`].
    pub class: usize,
    /// Probability of that class.
    pub confidence: f64,
}

/// A categorization model, loaded once and shared across threads.
#[derive(Debug, Clone)]
pub struct Categorizer {
    model: Model,
    features: Vec<Feature>,
}

impl Categorizer {
    /// Wraps a CatBoost model whose feature names are categorizer features.
    pub fn new(model: Model) -> Result<Categorizer, ModelError> {
        if !matches!(model.output(), Output::MultiClass | Output::OneVsAll) {
            return Err(ModelError(format!(
                "a categorizer needs a MultiClass model, this one is {}",
                model.loss()
            )));
        }
        let mut features = Vec::new();
        for spec in model.features() {
            let (f, kind) = feature(&spec.name).ok_or_else(|| {
                ModelError(format!(
                    "unknown categorizer feature {:?} (known: {})",
                    spec.name,
                    FEATURE_NAMES.join(", ")
                ))
            })?;
            if kind != spec.kind {
                return Err(ModelError(format!(
                    "feature {} must be {kind:?} in the model",
                    spec.name
                )));
            }
            features.push(f);
        }
        Ok(Categorizer { model, features })
    }

    pub fn from_json(text: &str) -> Result<Categorizer, ModelError> {
        Self::new(Model::from_json(text)?)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn classes(&self) -> &[String] {
        self.model.class_names()
    }

    /// One transaction's category and confidence: the input category (with
    /// confidence 1) when present, else the model's most probable class.
    pub fn category_of(
        &self,
        description: &str,
        amount_minor: i64,
        currency: &str,
        direction: &str,
        account: &str,
        category: Option<&str>,
    ) -> Result<(String, f64), ModelError> {
        if let Some(c) = category.map(str::trim).filter(|c| !c.is_empty()) {
            return Ok((c.to_string(), 1.0));
        }
        let row = TxnRow {
            description,
            amount_minor,
            exponent: crate::currency::exponent(currency).unwrap_or(2),
            currency,
            direction,
            account,
        };
        let p = self.categorize(&[row])?[0];
        Ok((self.classes()[p.class].clone(), p.confidence))
    }

    /// Categorizes rows: most probable class and its probability.
    pub fn categorize(&self, rows: &[TxnRow<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let n = rows.len();
        let mut floats: Vec<Vec<f32>> = Vec::new();
        let mut cats: Vec<Vec<u32>> = Vec::new();
        let needs_text = self.features.iter().any(|f| {
            matches!(
                f,
                Feature::Desc | Feature::TokFirst | Feature::TokFirst2 | Feature::TokLast
            )
        });
        // Descriptions repeat (merchants, payees): normalize and hash each
        // distinct text once per batch. text[i] = hashes of (desc, first,
        // first two, last token) of row i's description.
        let mut text: Vec<u32> = Vec::new();
        let mut hashes: Vec<[u32; 4]> = Vec::new();
        if needs_text {
            let mut seen: std::collections::HashMap<&str, u32> =
                std::collections::HashMap::with_capacity(1024);
            text.reserve(n);
            for r in rows {
                let id = *seen.entry(r.description).or_insert_with(|| {
                    let d = normalize_description(r.description);
                    let (a, b, c) = token_features(&d);
                    hashes.push([cat_hash(&d), cat_hash(a), cat_hash(b), cat_hash(c)]);
                    hashes.len() as u32 - 1
                });
                text.push(id);
            }
        }
        let text_feature =
            |k: usize| -> Vec<u32> { text.iter().map(|&i| hashes[i as usize][k]).collect() };
        for f in &self.features {
            match f {
                Feature::Amount => floats.push(
                    rows.iter()
                        .map(|r| amount_major(r.amount_minor, r.exponent) as f32)
                        .collect(),
                ),
                Feature::Direction => cats.push(
                    rows.iter()
                        .map(|r| {
                            if r.direction.bytes().any(|b| b.is_ascii_uppercase()) {
                                cat_hash(&r.direction.to_ascii_lowercase())
                            } else {
                                cat_hash(r.direction)
                            }
                        })
                        .collect(),
                ),
                Feature::Account => cats.push(rows.iter().map(|r| cat_hash(r.account)).collect()),
                Feature::Currency => cats.push(
                    rows.iter()
                        .map(|r| cat_hash(&r.currency.to_ascii_uppercase()))
                        .collect(),
                ),
                Feature::Desc => cats.push(text_feature(0)),
                Feature::TokFirst => cats.push(text_feature(1)),
                Feature::TokFirst2 => cats.push(text_feature(2)),
                Feature::TokLast => cats.push(text_feature(3)),
            }
        }
        let (mut fi, mut ci) = (0, 0);
        let mut columns = Vec::with_capacity(self.features.len());
        for spec in self.model.features() {
            match spec.kind {
                FeatureKind::Float => {
                    columns.push(Column::Float(&floats[fi]));
                    fi += 1;
                }
                FeatureKind::Categorical => {
                    columns.push(Column::Cat(&cats[ci]));
                    ci += 1;
                }
            }
        }
        let mut probs = Vec::new();
        self.model.predict(&columns, n, &mut probs)?;
        let k = self.model.output_width();
        Ok(probs
            .chunks_exact(k)
            .map(|p| {
                let mut best = 0;
                for (i, v) in p.iter().enumerate() {
                    if *v > p[best] {
                        best = i;
                    }
                }
                Prediction {
                    class: best,
                    confidence: p[best],
                }
            })
            .collect())
    }
}

//! FinOpsia UDF core: plain Rust with no Arrow or chrono types, so the
//! DataFusion UDFs (`finopsia-udfs`) and the Arroyo `#[udf]` wrappers
//! (`udfs/arroyo/`, arrow 51) share one implementation.
//!
//! - [`cityhash`]: CityHash64 v1.0.2 and CatBoost's categorical hash.
//! - [`catboost`]: evaluator of CatBoost JSON models.
//! - [`text`]: the description normalization used by training and serving.
//! - [`currency`]: ISO 4217 minor units and exact formatting.
//! - [`categorizer`]: the transaction categorizer's features over a model.

pub mod catboost;
pub mod categorizer;
pub mod cityhash;
pub mod currency;
pub mod text;

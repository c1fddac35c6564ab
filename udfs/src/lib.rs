//! FinOpsia UDF library.
//!
//! Each UDF is a plain Rust function (unit-tested on its own) plus a thin
//! DataFusion wrapper; [`register_all`] is the single registry the engine calls
//! on every `SessionContext` it creates, so a new UDF touches one module and one
//! line in that list. The plain functions carry no Arrow/chrono types so the
//! Arroyo wrappers in `udfs/arroyo/` can reuse them; the CatBoost evaluator
//! and the text normalization live in `udfs/core` (`finopsia-udf-core`).

pub mod categorize;
mod finance;
pub mod registry;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use categorize::{ModelHandle, Prepared};
pub use finopsia_udf_core as core;
pub use finopsia_udf_core::currency;

/// Registers every FinOpsia UDF on a DataFusion session; `categorize()`
/// uses the model currently in `models`.
pub fn register_all(ctx: &SessionContext, models: &Arc<ModelHandle>) {
    for udf in finance::udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udf(categorize::udf(models.clone()));
}

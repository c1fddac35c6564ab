//! FinOpsia UDF library.
//!
//! Each UDF is a plain Rust function (unit-tested on its own) plus a thin
//! DataFusion wrapper; [`register_all`] is the single registry the engine calls
//! on every `SessionContext` it creates, so a new UDF touches one module and one
//! line in that list. The plain functions carry no Arrow/chrono types so the
//! Arroyo wrappers in `udfs/arroyo/` can reuse them.

pub mod currency;
mod finance;

use datafusion::prelude::SessionContext;

/// Registers every FinOpsia UDF on a DataFusion session.
pub fn register_all(ctx: &SessionContext) {
    for udf in finance::udfs() {
        ctx.register_udf(udf);
    }
}

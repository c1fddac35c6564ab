//! FinOpsia's engine.
//!
//! Data path: a source ([`source`]) decodes and validates input ([`input`],
//! [`csv`], [`money`], [`timefmt`]) into Arrow micro-batches; the [`engine`]
//! drops duplicates, runs the transform SQL ([`sql`]) with DataFusion, commits
//! records and rejects to the Delta Lake [`store`], and folds each window
//! query's partial aggregates into event-time [`window`] state that is emitted
//! as the watermark passes. [`service`] is the long-running process (inbox
//! watcher); [`import`] drives bounded file imports; [`bench`] measures them.

pub mod bench;
pub mod bench_forecast;
pub mod config;
pub mod csv;
pub mod engine;
pub mod error;
pub mod forecasts;
pub mod import;
pub mod input;
pub mod models;
pub mod money;
pub mod schema;
pub mod service;
pub mod source;
pub mod sql;
pub mod store;
pub mod timefmt;
pub mod window;

pub use config::Config;
pub use engine::{Counts, Engine};
pub use error::{Error, Result};

//! FinOpsia engine: the one writer of a data directory.
//!
//! Its part of the data path is everything between a decoded chunk and the
//! store: [`engine::Engine`] drops duplicates, runs the transform SQL
//! ([`sql`]) with DataFusion, commits records and rejects, and folds each
//! window query's partial aggregates into event-time [`window`] state that is
//! emitted as the watermark passes, with checkpoints for crash recovery.
//! [`runtime`] feeds it from many streaming sources at once in micro-batches
//! closed by size or delay; [`import`] drives one bounded source (a file
//! import); [`outbox`] delivers every window emission to each sink at least
//! once.

pub mod config;
pub mod engine;
pub mod error;
pub mod import;
pub mod outbox;
pub mod runtime;
pub mod sql;
pub mod widen;
pub mod window;

pub use config::EngineConfig;
pub use engine::Engine;
pub use error::{Error, Result};

//! FinOpsia store: where every committed record lives.
//!
//! Its part of the data path is the end of each micro-batch: [`store::Store`]
//! keeps one Delta Lake table per name under `<data_dir>/tables/` and
//! commits atomically, optionally with application transactions (the
//! engine's batch sequence) and commit metadata (source positions), so a
//! crash between two commits is detected and replayed exactly once.
//! [`snapshot`] gives readers (`finopsia query`, the servers) the tables as
//! of one completed micro-batch without the writer's lock. [`lock`] makes
//! sure one process at a time writes a data directory.

pub mod cache;
pub mod error;
pub mod lock;
pub mod snapshot;
pub mod store;

pub use error::{Error, Result};
pub use store::{new_context, new_context_with, Store, View};

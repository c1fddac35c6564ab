//! The engine crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] finopsia_core::Error),
    #[error(transparent)]
    Store(#[from] finopsia_store::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    /// A chunk the engine cannot take as a whole (wrong schema, say).
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error("query {file}: {message}")]
    Query { file: String, message: String },
    /// An engine-internal failure (state files, the decoder thread…).
    #[error("engine: {0}")]
    Engine(String),
    /// A micro-batch's records (and source positions) are committed, but a
    /// later step (checkpoint, window emission) failed. The window tables
    /// catch up from `transactions` when the engine is reopened.
    #[error("{source} (the batch's records are stored; the window tables catch up when the engine is reopened)")]
    Stored {
        /// Each chunk's counts, as if the batch had succeeded.
        counts: Vec<finopsia_core::Counts>,
        source: Box<Error>,
    },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

impl Error {
    /// Whether the error concerns one input as a whole and left the engine's
    /// state untouched (no reopen needed).
    pub fn is_input(&self) -> bool {
        match self {
            Error::Input { .. } => true,
            Error::Core(e) => e.is_input(),
            _ => false,
        }
    }
}

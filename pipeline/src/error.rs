//! The pipeline crate's error type.

use std::path::PathBuf;

/// Errors at the pipeline's seams. Record-level problems are never errors:
/// they become quarantine rows. These are the failures that stop an operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    /// A whole input cannot be read (missing header column, unknown format…).
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error("query {file}: {message}")]
    Query { file: String, message: String },
    #[error("model: {0}")]
    Model(String),
    #[error("store: {0}")]
    Store(String),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

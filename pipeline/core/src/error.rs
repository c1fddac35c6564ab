//! The core crate's error type, also the base that the other pipeline
//! crates wrap.

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
    #[error("model: {0}")]
    Model(String),
    /// A source or sink failed as a whole (broker down, endpoint refused…).
    #[error("{name}: {message}")]
    Connector { name: String, message: String },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `map_err(io_err(path))`: an I/O error with the path it concerns.
pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

impl Error {
    /// Whether the error is about one input as a whole (a file that cannot
    /// be read), which leaves the engine's state untouched.
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input { .. })
    }
}

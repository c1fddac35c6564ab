//! The store crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] finopsia_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(String),
    #[error("model: {0}")]
    Model(String),
    /// Another process writes this data directory ([`crate::lock`]).
    #[error("{} is being written by {holder}: {advice}", data_dir.display())]
    Locked {
        data_dir: PathBuf,
        holder: String,
        advice: String,
    },
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
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

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

//! The connectors crate's error type.

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
    #[error("configuration: {0}")]
    Config(String),
    /// A broker or remote endpoint failed (connect, fetch, ack…).
    #[error("{connector}: {message}")]
    Remote { connector: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

impl From<Error> for finopsia_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            Error::Io { path, source } => finopsia_core::Error::Io { path, source },
            Error::Remote { connector, message } => finopsia_core::Error::Connector {
                name: connector,
                message,
            },
            Error::Config(m) => finopsia_core::Error::Config(m),
        }
    }
}

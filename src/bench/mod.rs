//! Benchmarks (`finopsia bench`): kept out of the library crates; each
//! measures a library path against a baseline run in the same invocation.

pub mod forecast;
pub mod import;
pub mod nats;

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// `map_err(io_err(path))`: an I/O error with the path it concerns.
pub fn io_err(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> anyhow::Error {
    let path = path.as_ref().display().to_string();
    move |e| anyhow::anyhow!("{path}: {e}")
}

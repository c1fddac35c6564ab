//! FinOpsia forecasting, independent of the store: Prophet fits matching
//! Python Prophet ([`model`]), daily series from transactions ([`series`]),
//! recurring-transaction detection ([`recurring`]), rolling-origin backtests
//! ([`backtest`]), runway ([`runway`]), a parallel refresh of many series
//! ([`refresh`]) and the `ds,y` / holidays CSV files of `finopsia forecast
//! --input` ([`io`]).

pub mod backtest;
pub mod baseline;
pub mod io;
pub mod model;
pub mod recurring;
pub mod refresh;
pub mod runway;
pub mod series;
pub mod weekly;

pub use model::{
    Fitted, Forecast, Forecaster, HolidayRow, ModelKind, Params, ProphetSettings, Series,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(String),
    #[error("model: {0}")]
    Model(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

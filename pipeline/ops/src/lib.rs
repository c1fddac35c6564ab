//! FinOpsia operations: the work that runs beside the writer.
//!
//! Its part of the data path is after the store: [`forecasts`] refreshes the
//! cash-flow forecasts of every series whose data changed (augurs Prophet,
//! recurring transactions as holidays, backtests, runway) into its own
//! tables and defines their views; [`models`] trains CatBoost categorization
//! models with the Python script, keeps the model registry, stores user
//! corrections and evaluates a model on a CSV; [`scheduler`] runs them as
//! jobs (cron or interval, after new data, by hand) with retries
//! ([`retry`]), timeouts, no overlap and a missed-run policy, and keeps
//! their history in `job_runs`; [`maintenance`] compacts and vacuums every
//! table; [`alerts`] evaluates alert rules, keeps their firing/resolved state
//! and delivers notifications to channels.

pub mod alerts;
pub mod balances;
pub mod config;
pub mod error;
pub mod forecasts;
pub mod jobs;
pub mod maintenance;
pub mod models;
pub mod retry;
pub mod scheduler;

pub use config::{ForecastConfig, TrainConfig};

/// Every view the ops crate defines (forecasts, runway, firing alerts), for
/// the store's query sessions.
pub fn views() -> &'static [finopsia_store::View] {
    static VIEWS: std::sync::LazyLock<Vec<finopsia_store::View>> =
        std::sync::LazyLock::new(|| [forecasts::VIEWS, alerts::VIEWS].concat());
    &VIEWS
}
pub use error::{Error, Result};

//! The `[train]` and `[forecast]` configuration sections.

use std::collections::BTreeMap;
use std::time::Duration;

use finopsia_core::settings::text_or_number;
use finopsia_core::timefmt::parse_duration;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `finopsia train`: how the training script runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Python interpreter with PyPI `catboost` installed.
    pub python: String,
    /// Boosting iterations (trees).
    pub iterations: u32,
    /// The `categorizer_retrain` job trains and registers a new model when
    /// at least this many corrections were made since the model in use was
    /// trained (`0`, the default: the job is off; it needs `python`).
    pub retrain_after_corrections: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            python: "python3".into(),
            iterations: 300,
            retrain_after_corrections: 0,
        }
    }
}

/// `finopsia forecast` and the service's forecast refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Days forecast after the last day of data.
    pub horizon_days: usize,
    /// Width of the forecast interval (0..1).
    pub interval_width: f64,
    /// Prophet samples drawn for the interval (0 = no interval).
    pub uncertainty_samples: u32,
    /// Prophet priors (Python Prophet's defaults).
    pub changepoint_prior_scale: f64,
    pub seasonality_prior_scale: f64,
    pub holidays_prior_scale: f64,
    /// Series with fewer days use the seasonal-naive fallback (labelled
    /// `short_history`).
    pub min_history_days: usize,
    /// Fit on at most this many recent days (0 = all history).
    pub training_window_days: usize,
    /// Rolling-origin backtest folds (0 = none) and days held out per fold.
    pub backtest_folds: usize,
    pub backtest_days: usize,
    /// The backtest folds' optimizer tolerance (see
    /// `RefreshConfig::backtest_tolerance`).
    pub backtest_tolerance: f64,
    /// Prophet's forecast is served only when its backtest skill over the
    /// best baseline (weekly totals) is at least this (0.05: 5% better);
    /// otherwise the best baseline is, labelled with its name in `model`.
    pub choice_margin: f64,
    /// When the backtest's 80% interval (`interval_width`) covers a share of
    /// held-out days further than this from its width, the interval is
    /// rescaled from the backtest errors (`interval_scale` in
    /// `forecast_runs`).
    pub calibration_margin: f64,
    /// A refit series reruns its backtest once this has passed since the
    /// last one (`0` = every refit); in between the last scores are kept.
    #[serde(deserialize_with = "text_or_number")]
    pub backtest_interval: String,
    /// Worker threads for a refresh (0 = one per core).
    pub threads: usize,
    /// A series refit after new data starts Prophet's optimizer from the
    /// parameters of its previous fit (Prophet's documented "warm start"),
    /// several times faster than from scratch. Refits that rerun the
    /// backtest (once per `backtest_interval`) and `forecast --all` start
    /// from scratch, so every series gets a fit from scratch at least that
    /// often.
    pub warm_start: bool,
    /// Runway threshold, in major units: runway reports the first day the
    /// projected balance (and its lower bound) drops below it.
    #[serde(deserialize_with = "text_or_number")]
    pub runway_threshold: String,
    /// Opening balance per account id, in major units (decimal text), as of
    /// the day before the account's first transaction. Default 0.
    pub opening_balances: BTreeMap<String, String>,
    /// Known balances: `[[forecast.anchors]]` with `account`, `as_of` (the
    /// balance at the end of that day) and `balance` (major units, decimal
    /// text). Anchors recorded with `finopsia balance set` win ties.
    pub anchors: Vec<crate::balances::AnchorConfig>,
    /// The service refreshes forecasts this often, and after new data once
    /// `refresh_debounce` has passed without more (`0` turns both off).
    #[serde(deserialize_with = "text_or_number")]
    pub refresh_interval: String,
    #[serde(deserialize_with = "text_or_number")]
    pub refresh_debounce: String,
    /// At most this many recurring patterns (largest total amount first)
    /// are given to one series as holidays.
    pub max_recurring_per_series: usize,
    /// Recurring-transaction detection.
    pub recurring: finopsia_forecast::recurring::RecurringConfig,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        let r = finopsia_forecast::refresh::RefreshConfig::default();
        ForecastConfig {
            horizon_days: r.horizon_days,
            interval_width: r.interval_width,
            uncertainty_samples: r.uncertainty_samples,
            changepoint_prior_scale: r.changepoint_prior_scale,
            seasonality_prior_scale: r.seasonality_prior_scale,
            holidays_prior_scale: r.holidays_prior_scale,
            min_history_days: r.min_history_days,
            training_window_days: r.training_window_days,
            backtest_folds: r.backtest_folds,
            backtest_days: r.backtest_days,
            backtest_tolerance: r.backtest_tolerance,
            choice_margin: r.choice_margin,
            calibration_margin: r.calibration_margin,
            backtest_interval: "1d".into(),
            threads: r.threads,
            warm_start: true,
            runway_threshold: "0".into(),
            opening_balances: BTreeMap::new(),
            anchors: Vec::new(),
            refresh_interval: "1h".into(),
            refresh_debounce: "5s".into(),
            max_recurring_per_series: 20,
            recurring: Default::default(),
        }
    }
}

impl ForecastConfig {
    pub fn refresh_config(&self) -> finopsia_forecast::refresh::RefreshConfig {
        finopsia_forecast::refresh::RefreshConfig {
            horizon_days: self.horizon_days,
            interval_width: self.interval_width,
            uncertainty_samples: self.uncertainty_samples,
            changepoint_prior_scale: self.changepoint_prior_scale,
            seasonality_prior_scale: self.seasonality_prior_scale,
            holidays_prior_scale: self.holidays_prior_scale,
            min_history_days: self.min_history_days,
            training_window_days: self.training_window_days,
            backtest_folds: self.backtest_folds,
            backtest_days: self.backtest_days,
            backtest_tolerance: self.backtest_tolerance,
            choice_margin: self.choice_margin,
            calibration_margin: self.calibration_margin,
            threads: self.threads,
        }
    }

    pub fn settings(&self) -> finopsia_forecast::ProphetSettings {
        self.refresh_config().settings()
    }

    /// A decimal amount in major units, at most 4 decimals (parsed exactly,
    /// then converted to f64 for the models).
    pub fn major(name: &str, text: &str) -> Result<f64> {
        let t = text.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let minor =
            finopsia_core::money::parse_amount(digits, finopsia_core::money::AmountUnit::Major, 4)
                .map_err(|_| {
                    Error::Config(format!(
                        "{name} = {text:?} is not a decimal amount (at most 4 decimals)"
                    ))
                })?;
        let v = minor as f64 / 1e4;
        Ok(if neg { -v } else { v })
    }

    pub fn threshold(&self) -> Result<f64> {
        Self::major("forecast.runway_threshold", &self.runway_threshold)
    }

    pub fn validate(&self) -> Result<()> {
        self.refresh_config()
            .validate()
            .map_err(|e| Error::Config(format!("forecast: {e}")))?;
        self.threshold()?;
        for (account, v) in &self.opening_balances {
            Self::major(&format!("forecast.opening_balances.{account}"), v)?;
        }
        crate::balances::from_config(&self.anchors)?;
        for (name, v) in [
            ("forecast.refresh_interval", &self.refresh_interval),
            ("forecast.refresh_debounce", &self.refresh_debounce),
            ("forecast.backtest_interval", &self.backtest_interval),
        ] {
            if parse_duration(v).is_none() {
                return Err(Error::Config(format!(
                    "{name} = {v:?} is not a duration like 30s, 15m, 1h"
                )));
            }
        }
        let r = &self.recurring;
        if r.min_occurrences < 2
            || !(0.0..=1.0).contains(&r.min_share)
            || r.amount_tolerance < 0.0
            || r.day_tolerance < 0
        {
            return Err(Error::Config(
                "forecast.recurring: min_occurrences >= 2, min_share in 0..1, tolerances >= 0"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn refresh_interval(&self) -> Duration {
        parse_duration(&self.refresh_interval).unwrap_or_default()
    }

    pub fn backtest_interval(&self) -> Duration {
        parse_duration(&self.backtest_interval).unwrap_or_default()
    }

    pub fn refresh_debounce(&self) -> Duration {
        parse_duration(&self.refresh_debounce).unwrap_or_default()
    }
}

//! Service configuration: `finopsia.toml` plus `FINOPSIA__SECTION__KEY` env overrides.
//!
//! Every key has a default, so an empty file (or none) runs on embedded
//! defaults. Unknown keys are errors. See `finopsia.example.toml` for the
//! documented example, which a test parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{Format, Preset};
use crate::timefmt::parse_duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: tables, checkpoints, inbox (default `./data`).
    pub data_dir: PathBuf,
    /// Directory of the pipeline's SQL files; unset = the built-in queries
    /// (the repository's `queries/`, compiled in).
    pub queries_dir: Option<PathBuf>,
    pub engine: EngineConfig,
    pub inbox: InboxConfig,
    /// Named input presets, usable with `--preset NAME` and `inbox.preset`.
    pub presets: BTreeMap<String, Preset>,
    pub log: LogConfig,
    pub train: TrainConfig,
    pub forecast: ForecastConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            queries_dir: None,
            engine: EngineConfig::default(),
            inbox: InboxConfig::default(),
            presets: BTreeMap::new(),
            log: LogConfig::default(),
            train: TrainConfig::default(),
            forecast: ForecastConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Maximum records per micro-batch (one store commit each).
    pub batch_rows: usize,
    /// Watermark = highest event time seen minus this delay.
    #[serde(deserialize_with = "text_or_number")]
    pub watermark_delay: String,
    /// A window is emitted (and its state leaves memory) once the watermark
    /// passes its end plus this lateness. Later records still update it.
    #[serde(deserialize_with = "text_or_number")]
    pub allowed_lateness: String,
    /// Records whose category the model filled with a confidence below this
    /// are flagged `needs_review` (0 flags none, 1 flags all).
    pub review_below: f64,
    /// During an import, categorize each micro-batch on the decoder thread
    /// while the previous one is committed (when the transform calls
    /// `categorize()` on the incoming columns as they are).
    pub categorize_ahead: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_rows: 262_144,
            watermark_delay: "1h".into(),
            allowed_lateness: "1d".into(),
            review_below: finopsia_udfs::categorize::DEFAULT_REVIEW_BELOW,
            categorize_ahead: true,
        }
    }
}

impl EngineConfig {
    pub fn watermark_delay(&self) -> Duration {
        parse_duration(&self.watermark_delay).unwrap_or_default()
    }
    pub fn allowed_lateness(&self) -> Duration {
        parse_duration(&self.allowed_lateness).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxConfig {
    /// Watched directory (default `<data_dir>/inbox`); files move to the
    /// sibling `processed/` or `failed/` directories.
    pub dir: Option<PathBuf>,
    /// How often the inbox is scanned.
    #[serde(deserialize_with = "text_or_number")]
    pub poll_interval: String,
    /// Source name recorded for inbox files.
    pub source: String,
    /// Preset applied to inbox files.
    pub preset: String,
    /// Format for files whose extension says nothing (`csv` or `ndjson`).
    pub default_format: Format,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            dir: None,
            poll_interval: "250ms".into(),
            source: "inbox".into(),
            preset: "canonical".into(),
            default_format: Format::Csv,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `finopsia=debug` (RUST_LOG wins).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `finopsia train`: how the training script runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Python interpreter with PyPI `catboost` installed.
    pub python: String,
    /// Boosting iterations (trees).
    pub iterations: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            python: "python3".into(),
            iterations: 300,
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
            backtest_interval: "1d".into(),
            threads: r.threads,
            warm_start: true,
            runway_threshold: "0".into(),
            opening_balances: BTreeMap::new(),
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
        let minor = crate::money::parse_amount(digits, crate::money::AmountUnit::Major, 4)
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

impl Config {
    /// Loads `path` (if given) and applies `FINOPSIA__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(crate::error::io_err(p))?;
                text.parse::<toml::Table>()
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut value, std::env::vars())?;
        let cfg: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let dur = |name: &str, v: &str| {
            parse_duration(v).map(|_| ()).ok_or_else(|| {
                Error::Config(format!(
                    "{name} = {v:?} is not a duration like 250ms, 10s, 5m, 1h, 1d"
                ))
            })
        };
        dur("engine.watermark_delay", &self.engine.watermark_delay)?;
        dur("engine.allowed_lateness", &self.engine.allowed_lateness)?;
        dur("inbox.poll_interval", &self.inbox.poll_interval)?;
        if !(0.0..=1.0).contains(&self.engine.review_below) {
            return Err(Error::Config(format!(
                "engine.review_below = {} must be between 0 and 1",
                self.engine.review_below
            )));
        }
        if self.train.iterations == 0 {
            return Err(Error::Config("train.iterations must be at least 1".into()));
        }
        self.forecast.validate()?;
        if self.engine.batch_rows == 0 {
            return Err(Error::Config("engine.batch_rows must be at least 1".into()));
        }
        for (name, preset) in &self.presets {
            preset.validate(name)?;
        }
        self.preset(&self.inbox.preset)?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(Error::Config(format!(
                "log.format = {:?}: use text or json",
                self.log.format
            )));
        }
        Ok(())
    }

    /// A preset by name: configured ones first, then the built-ins.
    pub fn preset(&self, name: &str) -> Result<Preset> {
        if let Some(p) = self.presets.get(name) {
            return Ok(p.clone());
        }
        Preset::builtin(name).ok_or_else(|| {
            let mut names: Vec<&str> = Preset::BUILTIN_NAMES.to_vec();
            names.extend(self.presets.keys().map(String::as_str));
            Error::Config(format!(
                "unknown preset {name:?} (known: {})",
                names.join(", ")
            ))
        })
    }

    pub fn inbox_dir(&self) -> PathBuf {
        self.inbox
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("inbox"))
    }
}

/// Accepts a string or a bare number (so `FINOPSIA__ENGINE__ALLOWED_LATENESS=0`
/// works although the env value parses as an integer).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Int(i64),
        Float(f64),
    }
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(s) => s,
        TextOrNumber::Int(i) => i.to_string(),
        TextOrNumber::Float(f) => f.to_string(),
    })
}

/// `FINOPSIA__ENGINE__BATCH_ROWS=1000` sets `engine.batch_rows`. Values are
/// parsed as TOML when they parse (numbers, booleans), else taken as strings.
fn apply_env(table: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) -> Result<()> {
    for (key, val) in vars {
        let Some(rest) = key.strip_prefix("FINOPSIA__") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let value = format!("v = {val}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(val));
        let mut cur = &mut *table;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur.insert(part.clone(), value.clone());
            } else {
                let entry = cur
                    .entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                cur = entry
                    .as_table_mut()
                    .ok_or_else(|| Error::Config(format!("{key}: {part} is not a section")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../finopsia.example.toml");
        let cfg = Config::load(Some(&path)).unwrap();
        assert!(cfg.presets.contains_key("mybank"));
        assert_eq!(cfg.engine.allowed_lateness().as_secs(), 86_400);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let bad: std::result::Result<Config, _> = toml::from_str("[engine]\nbatch_row = 5\n");
        assert!(bad.is_err());
        let cfg: Config = toml::from_str("[engine]\nallowed_lateness = \"soon\"\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_lateness"));
        let cfg: Config = toml::from_str("[inbox]\npreset = \"nope\"\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown preset"));
    }

    #[test]
    fn env_overrides() {
        let mut t = toml::Table::new();
        let vars = vec![
            (
                "FINOPSIA__ENGINE__BATCH_ROWS".to_string(),
                "1000".to_string(),
            ),
            ("FINOPSIA__DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "FINOPSIA__ENGINE__ALLOWED_LATENESS".to_string(),
                "0".to_string(),
            ),
            ("OTHER".to_string(), "1".to_string()),
        ];
        apply_env(&mut t, vars.into_iter()).unwrap();
        let cfg: Config = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(cfg.engine.batch_rows, 1000);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.engine.allowed_lateness, "0");
        cfg.validate().unwrap();
    }
}

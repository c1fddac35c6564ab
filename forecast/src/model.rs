//! Prophet through augurs with the WebAssembly Stan optimizer, set up to
//! match Python Prophet's defaults, plus the seasonal-naive fallback used when
//! a series is too short for Prophet.

use std::collections::HashMap;

use augurs::prophet::optimizer::{InitialParams, OptimizeOpts};
use augurs::prophet::wasmstan::WasmstanOptimizer;
use augurs::prophet::Algorithm;
use augurs::prophet::{
    Holiday, HolidayOccurrence, IntervalWidth, OptProphetOptions, PositiveFloat, PredictionData,
    Prophet, TrainingData,
};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const DAY: i64 = 86_400;

/// A daily series: `ds` strictly increasing dates, `y` finite values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub ds: Vec<NaiveDate>,
    pub y: Vec<f64>,
}

impl Series {
    pub fn new(ds: Vec<NaiveDate>, y: Vec<f64>) -> Result<Series> {
        if ds.len() != y.len() {
            return Err(Error::Input(format!(
                "{} dates but {} values",
                ds.len(),
                y.len()
            )));
        }
        for w in ds.windows(2) {
            if w[1] <= w[0] {
                return Err(Error::Input(format!(
                    "dates must be strictly increasing: {} follows {}",
                    w[1], w[0]
                )));
            }
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("value on {} is not finite", ds[i])));
        }
        Ok(Series { ds, y })
    }

    pub fn len(&self) -> usize {
        self.ds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ds.is_empty()
    }

    /// The first `n` points.
    pub fn head(&self, n: usize) -> Series {
        Series {
            ds: self.ds[..n].to_vec(),
            y: self.y[..n].to_vec(),
        }
    }

    /// Points from index `from` on.
    pub fn tail_from(&self, from: usize) -> Series {
        Series {
            ds: self.ds[from..].to_vec(),
            y: self.y[from..].to_vec(),
        }
    }

    /// Calendar days covered, first to last inclusive.
    pub fn span_days(&self) -> i64 {
        match (self.ds.first(), self.ds.last()) {
            (Some(a), Some(b)) => (*b - *a).num_days() + 1,
            _ => 0,
        }
    }
}

/// One row of a Prophet holidays frame: the event `name` on `ds`, also
/// affecting the days `ds + lower_window ..= ds + upper_window`
/// (`lower_window <= 0 <= upper_window`), each offset its own effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayRow {
    pub name: String,
    pub ds: NaiveDate,
    pub lower_window: i32,
    pub upper_window: i32,
}

/// Model settings. The defaults are Python Prophet's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProphetSettings {
    pub interval_width: f64,
    pub uncertainty_samples: u32,
    pub changepoint_prior_scale: f64,
    pub seasonality_prior_scale: f64,
    pub holidays_prior_scale: f64,
    pub n_changepoints: u32,
    pub changepoint_range: f64,
    /// L-BFGS convergence on the objective's relative change, in units of
    /// machine epsilon (Stan's `tol_rel_obj`); `None`: Stan's and Python
    /// Prophet's 1e4. Looser values stop earlier (backtest folds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tol_rel_obj: Option<f64>,
}

impl Default for ProphetSettings {
    fn default() -> Self {
        ProphetSettings {
            interval_width: 0.8,
            uncertainty_samples: 1000,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            holidays_prior_scale: 10.0,
            n_changepoints: 25,
            changepoint_range: 0.8,
            tol_rel_obj: None,
        }
    }
}

impl ProphetSettings {
    pub fn validate(&self) -> Result<()> {
        if !(self.interval_width > 0.0 && self.interval_width < 1.0) {
            return Err(Error::Input(format!(
                "interval width must be between 0 and 1 (exclusive), got {}",
                self.interval_width
            )));
        }
        if let Some(t) = self.tol_rel_obj {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Input(format!(
                    "the optimizer tolerance must be positive, got {t}"
                )));
            }
        }
        for (name, v) in [
            ("changepoint_prior_scale", self.changepoint_prior_scale),
            ("seasonality_prior_scale", self.seasonality_prior_scale),
            ("holidays_prior_scale", self.holidays_prior_scale),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Input(format!("{name} must be positive, got {v}")));
            }
        }
        if !(self.changepoint_range > 0.0 && self.changepoint_range <= 1.0) {
            return Err(Error::Input(format!(
                "changepoint_range must be in (0, 1], got {}",
                self.changepoint_range
            )));
        }
        Ok(())
    }
}

/// Forecast values for consecutive days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forecast {
    pub ds: Vec<NaiveDate>,
    pub yhat: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// Prophet's fitted parameters, in its scaled space (`y` divided by the
/// largest |y|, time scaled to the history). Kept per series so that the next
/// fit of the same series, after new data, can start from them: Python
/// Prophet's documented "warm start" (`fit(df, init=...)`). The optimum does
/// not depend on the starting point; the number of optimizer iterations does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub k: f64,
    pub m: f64,
    pub sigma_obs: f64,
    pub delta: Vec<f64>,
    pub beta: Vec<f64>,
}

/// A Prophet fit and its forecast.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub forecast: Forecast,
    pub params: Params,
    /// The optimizer started from the given parameters (and succeeded).
    pub warm: bool,
}

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Prophet,
    SeasonalNaive,
    /// A baseline served because the model did not beat it on the backtest.
    Baseline(crate::baseline::Baseline),
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Prophet => "prophet",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Baseline(b) => b.as_str(),
        }
    }
}

/// Fits Prophet models. Holds the compiled Stan optimizer (costly to create),
/// which each fit clones; clone the `Forecaster` to use it on other threads.
#[derive(Clone)]
pub struct Forecaster {
    optimizer: WasmstanOptimizer,
}

impl std::fmt::Debug for Forecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Forecaster")
    }
}

impl Default for Forecaster {
    fn default() -> Self {
        Self::new()
    }
}

fn ts(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
}

fn positive(name: &str, v: f64) -> Result<PositiveFloat> {
    PositiveFloat::try_from(v).map_err(|_| Error::Input(format!("{name} must be positive")))
}

/// The Prophet holidays: one feature per event name and window offset, named
/// like Python Prophet's columns (`name_delim_+1`).
fn holidays(rows: &[HolidayRow]) -> Result<HashMap<String, Holiday>> {
    let mut by_feature: HashMap<String, Vec<HolidayOccurrence>> = HashMap::new();
    for row in rows {
        if row.lower_window > 0 || row.upper_window < 0 {
            return Err(Error::Input(format!(
                "holiday {:?} on {}: lower_window must be <= 0 and upper_window >= 0",
                row.name, row.ds
            )));
        }
        for offset in row.lower_window..=row.upper_window {
            let sign = if offset < 0 { '-' } else { '+' };
            let feature = format!("{}_delim_{}{}", row.name, sign, offset.abs());
            let day = row.ds + Duration::days(offset as i64);
            by_feature
                .entry(feature)
                .or_default()
                .push(HolidayOccurrence::new(ts(day), ts(day) + DAY));
        }
    }
    Ok(by_feature
        .into_iter()
        .map(|(k, v)| (k, Holiday::new(v)))
        .collect())
}

impl Forecaster {
    /// Compiles the Stan model (about 0.4 s optimised): do it once.
    pub fn new() -> Forecaster {
        Forecaster {
            optimizer: WasmstanOptimizer::new(),
        }
    }

    /// Fits Prophet to `series` (at least two points) and forecasts the
    /// `horizon` days after its last date.
    pub fn prophet(
        &self,
        series: &Series,
        holiday_rows: &[HolidayRow],
        horizon: usize,
        settings: &ProphetSettings,
    ) -> Result<Forecast> {
        let last = *series
            .ds
            .last()
            .ok_or_else(|| Error::Input("empty series".into()))?;
        let days: Vec<NaiveDate> = (1..=horizon as i64)
            .map(|i| last + Duration::days(i))
            .collect();
        self.prophet_at(series, holiday_rows, &days, settings)
    }

    /// Fits Prophet to `series` and predicts on the given dates.
    pub fn prophet_at(
        &self,
        series: &Series,
        holiday_rows: &[HolidayRow],
        days: &[NaiveDate],
        settings: &ProphetSettings,
    ) -> Result<Forecast> {
        self.prophet_from(series, holiday_rows, days, settings, None)
            .map(|f| f.forecast)
    }

    /// Fits Prophet to `series`, starting the optimizer from `init` when
    /// given and it fits this model (same number of changepoints and
    /// features), else from Prophet's default initialization; predicts on
    /// the given dates. A failed warm start is retried from the default
    /// initialization.
    pub fn prophet_from(
        &self,
        series: &Series,
        holiday_rows: &[HolidayRow],
        days: &[NaiveDate],
        settings: &ProphetSettings,
        init: Option<&Params>,
    ) -> Result<Fitted> {
        settings.validate()?;
        if series.len() < 2 {
            return Err(Error::Input(format!(
                "Prophet needs at least 2 points, the series has {}",
                series.len()
            )));
        }
        let opts = OptProphetOptions {
            interval_width: Some(
                IntervalWidth::try_new(settings.interval_width)
                    .map_err(|e| Error::Input(e.to_string()))?,
            ),
            uncertainty_samples: Some(settings.uncertainty_samples),
            changepoint_prior_scale: Some(positive(
                "changepoint_prior_scale",
                settings.changepoint_prior_scale,
            )?),
            seasonality_prior_scale: Some(positive(
                "seasonality_prior_scale",
                settings.seasonality_prior_scale,
            )?),
            holidays_prior_scale: Some(positive(
                "holidays_prior_scale",
                settings.holidays_prior_scale,
            )?),
            n_changepoints: Some(settings.n_changepoints),
            changepoint_range: Some(positive("changepoint_range", settings.changepoint_range)?),
            holidays: if holiday_rows.is_empty() {
                None
            } else {
                Some(holidays(holiday_rows)?)
            },
            ..Default::default()
        };
        let opts: augurs::prophet::ProphetOptions = opts.into();
        let data = TrainingData::new(series.ds.iter().map(|d| ts(*d)).collect(), series.y.clone())
            .map_err(|e| Error::Model(e.to_string()))?;
        // Python Prophet runs Stan's L-BFGS for up to 10,000 iterations and,
        // when L-BFGS fails, falls back to Newton's method. In the WebAssembly
        // build of Stan a domain error inside a line search (a step so long
        // that the likelihood overflows) aborts the optimization instead of
        // shortening the step, so before Newton we retry L-BFGS with a much
        // shorter first step.
        let cold = [
            OptimizeOpts {
                iter: Some(10_000),
                tol_rel_obj: settings.tol_rel_obj,
                ..Default::default()
            },
            OptimizeOpts {
                iter: Some(10_000),
                init_alpha: Some(1e-6),
                ..Default::default()
            },
            OptimizeOpts {
                iter: Some(10_000),
                algorithm: Some(Algorithm::Newton),
                ..Default::default()
            },
        ];
        let init = init.and_then(|p| {
            Some(InitialParams {
                k: p.k,
                m: p.m,
                sigma_obs: PositiveFloat::try_from(p.sigma_obs).ok()?,
                delta: p.delta.clone(),
                beta: p.beta.clone(),
            })
        });
        // A warm start first (when given), then the cold chain.
        let attempts = init
            .map(|i| (Some(i), cold[0].clone()))
            .into_iter()
            .chain(cold.into_iter().map(|o| (None, o)));
        let mut model = Prophet::new(opts.clone(), self.optimizer.clone());
        let mut errors = Vec::new();
        let mut warm = false;
        let mut fitted = false;
        for (init, attempt) in attempts {
            let tried_warm = init.is_some();
            match model.fit_from(data.clone(), attempt, init) {
                Ok(used_init) => {
                    warm = tried_warm && used_init;
                    fitted = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!("Prophet fit attempt failed: {}", first_line(&e.to_string()));
                    if !tried_warm {
                        errors.push(first_line(&e.to_string()).to_string());
                    }
                    model = Prophet::new(opts.clone(), self.optimizer.clone());
                }
            }
        }
        if !fitted {
            return Err(Error::Model(format!(
                "L-BFGS, L-BFGS with a short first step and Newton all failed: {}",
                errors.first().map_or("", |e| e.as_str())
            )));
        }
        let op = model
            .optimized_params()
            .ok_or_else(|| Error::Model("Prophet fit left no parameters".into()))?;
        let params = Params {
            k: op.k,
            m: op.m,
            sigma_obs: *op.sigma_obs,
            delta: op.delta.clone(),
            beta: op.beta.clone(),
        };
        let future = PredictionData::new(days.iter().map(|d| ts(*d)).collect());
        let p = model
            .predict(future)
            .map_err(|e| Error::Model(e.to_string()))?;
        let n = days.len();
        let yhat = p.yhat.point;
        let lower = p.yhat.lower.unwrap_or_else(|| yhat.clone());
        let upper = p.yhat.upper.unwrap_or_else(|| yhat.clone());
        if yhat.len() != n || lower.len() != n || upper.len() != n {
            return Err(Error::Model(format!(
                "Prophet returned {} predictions for {} days",
                yhat.len(),
                n
            )));
        }
        Ok(Fitted {
            forecast: Forecast {
                ds: days.to_vec(),
                yhat,
                lower,
                upper,
            },
            params,
            warm,
        })
    }
}

/// The first line of an error (wasm errors carry a long backtrace).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim_end_matches(':')
}

/// The seasonal-naive fallback for short series: each future day repeats the
/// value `period` days earlier (the mean when the series is shorter than one
/// period). The interval is the empirical quantile of the absolute one-period
/// errors in the history, scaled by the square root of the number of periods
/// ahead.
pub fn seasonal_naive(
    series: &Series,
    days: &[NaiveDate],
    period: usize,
    interval_width: f64,
) -> Result<Forecast> {
    if series.is_empty() {
        return Err(Error::Input("empty series".into()));
    }
    let last = *series.ds.last().expect("non-empty");
    // Work on the dense daily history (missing days are zero flow).
    let first = series.ds[0];
    let n = ((last - first).num_days() + 1) as usize;
    let mut dense = vec![0.0; n];
    for (d, y) in series.ds.iter().zip(&series.y) {
        dense[(*d - first).num_days() as usize] = *y;
    }
    let mean = dense.iter().sum::<f64>() / n as f64;
    let seasonal = n >= period;
    let mut errors: Vec<f64> = if n > period {
        (period..n)
            .map(|i| (dense[i] - dense[i - period]).abs())
            .collect()
    } else {
        dense.iter().map(|v| (v - mean).abs()).collect()
    };
    errors.sort_by(|a, b| a.total_cmp(b));
    let q = if errors.is_empty() {
        0.0
    } else {
        let idx = ((errors.len() - 1) as f64 * interval_width).round() as usize;
        errors[idx.min(errors.len() - 1)]
    };
    let mut fc = Forecast::default();
    for d in days {
        let ahead = (*d - last).num_days();
        let value = if seasonal && ahead >= 1 {
            let back = ((ahead - 1) as usize % period) + 1;
            dense[n - 1 - (period - back)]
        } else if seasonal {
            // A date inside the history: its own value.
            let i = (*d - first).num_days();
            if i >= 0 && (i as usize) < n {
                dense[i as usize]
            } else {
                mean
            }
        } else {
            mean
        };
        let periods_ahead = ((ahead.max(1) as f64) / period as f64).ceil().max(1.0);
        let half = q * periods_ahead.sqrt();
        fc.ds.push(*d);
        fc.yhat.push(value);
        fc.lower.push(value - half);
        fc.upper.push(value + half);
    }
    Ok(fc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three years of daily values with trend, weekly and yearly seasonality
    /// and noise (xorshift, deterministic), plus `extra` more days.
    fn series(extra: usize) -> Series {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut unit = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let start = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
        let mut s = Series::default();
        for t in 0..(1095 + extra) {
            let tf = t as f64;
            s.ds.push(start + Duration::days(t as i64));
            s.y.push(
                1000.0
                    + 0.4 * tf
                    + 150.0 * (2.0 * std::f64::consts::PI * tf / 365.25).sin()
                    + 60.0 * (2.0 * std::f64::consts::PI * tf / 7.0).cos()
                    + 80.0 * (unit() - 0.5),
            );
        }
        s
    }

    fn rel_diff(a: &Forecast, b: &Forecast, s: &Series) -> f64 {
        let scale = s.y.iter().map(|v| v.abs()).sum::<f64>() / s.len() as f64;
        let mad = a
            .yhat
            .iter()
            .zip(&b.yhat)
            .map(|(x, y)| (x - y).abs())
            .sum::<f64>()
            / a.yhat.len() as f64;
        mad / scale
    }

    /// A fit started from the previous fit's parameters, after new data,
    /// reaches the forecast of a fit from Prophet's default initialization;
    /// parameters that do not fit the model are ignored (a cold fit, the
    /// same forecast bit for bit).
    #[test]
    fn warm_start_reaches_the_cold_forecast() {
        let fx = Forecaster::new();
        let settings = ProphetSettings {
            uncertainty_samples: 0,
            ..ProphetSettings::default()
        };
        let first = series(0);
        let days: Vec<NaiveDate> = (1..=30)
            .map(|i| *first.ds.last().unwrap() + Duration::days(i))
            .collect();
        let old = fx
            .prophet_from(&first, &[], &days, &settings, None)
            .unwrap();
        assert!(!old.warm);
        assert_eq!(old.params.delta.len(), 25);
        assert_eq!(old.params.beta.len(), 26, "yearly 20 + weekly 6 features");

        let next = series(7);
        let days: Vec<NaiveDate> = (1..=30)
            .map(|i| *next.ds.last().unwrap() + Duration::days(i))
            .collect();
        let cold = fx.prophet_from(&next, &[], &days, &settings, None).unwrap();
        let warm = fx
            .prophet_from(&next, &[], &days, &settings, Some(&old.params))
            .unwrap();
        assert!(warm.warm);
        let d = rel_diff(&warm.forecast, &cold.forecast, &next);
        eprintln!("warm vs cold: mean |yhat diff| = {d:.2e} of mean |y|");
        // The same bar as against Python Prophet: L-BFGS stops within its
        // tolerances, a little differently from each start.
        assert!(d < 1e-3, "warm start forecast differs by {d:.2e}");

        // Parameters of another model shape: ignored.
        let mut wrong = old.params.clone();
        wrong.beta.pop();
        let ignored = fx
            .prophet_from(&next, &[], &days, &settings, Some(&wrong))
            .unwrap();
        assert!(!ignored.warm);
        assert_eq!(ignored.forecast.yhat, cold.forecast.yhat);
        // Non-finite or non-positive values: ignored as well.
        let mut bad = old.params.clone();
        bad.sigma_obs = 0.0;
        let ignored = fx
            .prophet_from(&next, &[], &days, &settings, Some(&bad))
            .unwrap();
        assert!(!ignored.warm);
        assert_eq!(ignored.forecast.yhat, cold.forecast.yhat);
    }
}

//! Forecasting many series on all cores: for each series, Prophet (with the
//! series' recurring patterns as holidays) or the seasonal-naive fallback when
//! the history is short, a rolling-origin backtest, and for flow series the
//! projected balance and runway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::backtest::{cutoffs, with_skill, CashScorer, Score, Scorer};
use crate::baseline::Baseline;
use crate::model::{
    seasonal_naive, Fitted, Forecast, Forecaster, ModelKind, Params, ProphetSettings, Series,
};
use crate::recurring::{holiday_rows, Recurring};
use crate::runway::{project_balance, runway, Runway};
use crate::series::SeriesKey;

/// How series are forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshConfig {
    /// Days forecast after the last day of data.
    pub horizon_days: usize,
    /// Width of the forecast interval (0..1).
    pub interval_width: f64,
    /// Prophet samples for the interval (0 = no interval).
    pub uncertainty_samples: u32,
    pub changepoint_prior_scale: f64,
    pub seasonality_prior_scale: f64,
    pub holidays_prior_scale: f64,
    /// Series with fewer days of history use the seasonal-naive fallback.
    pub min_history_days: usize,
    /// Only the most recent days are used for fitting (0 = all).
    pub training_window_days: usize,
    /// Rolling-origin backtest: number of folds (0 = no backtest) and the
    /// days each fold holds out.
    pub backtest_folds: usize,
    pub backtest_days: usize,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            horizon_days: 90,
            interval_width: 0.8,
            uncertainty_samples: 1000,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            holidays_prior_scale: 10.0,
            min_history_days: 56,
            training_window_days: 0,
            backtest_folds: 2,
            backtest_days: 30,
            threads: 0,
        }
    }
}

impl RefreshConfig {
    pub fn settings(&self) -> ProphetSettings {
        ProphetSettings {
            interval_width: self.interval_width,
            uncertainty_samples: self.uncertainty_samples,
            changepoint_prior_scale: self.changepoint_prior_scale,
            seasonality_prior_scale: self.seasonality_prior_scale,
            holidays_prior_scale: self.holidays_prior_scale,
            ..ProphetSettings::default()
        }
    }

    pub fn validate(&self) -> crate::Result<()> {
        self.settings().validate()?;
        if self.horizon_days == 0 || self.horizon_days > 3660 {
            return Err(crate::Error::Input(format!(
                "horizon must be 1..=3660 days, got {}",
                self.horizon_days
            )));
        }
        if self.backtest_folds > 0 && self.backtest_days == 0 {
            return Err(crate::Error::Input(
                "backtest_days must be positive when backtest_folds > 0".into(),
            ));
        }
        Ok(())
    }

    fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// One series to forecast.
#[derive(Debug, Clone)]
pub struct Job {
    pub key: SeriesKey,
    /// Daily values (consecutive days).
    pub series: Series,
    /// Recurring patterns that affect this series (its holidays).
    pub recurring: Vec<Recurring>,
    /// For flow series: the balance at the end of `series`, from which the
    /// balance is projected and the runway computed.
    pub balance: Option<f64>,
    /// Runway threshold for the balance.
    pub threshold: f64,
    /// Run the backtest (when `backtest_folds > 0`); false reuses earlier scores.
    pub backtest: bool,
    /// Parameters of the series' previous Prophet fit, to warm-start this
    /// one (used when they still fit the model; backtest folds start cold).
    pub init: Option<Params>,
}

/// Per-series result status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Prophet fitted.
    Ok,
    /// Too little history for Prophet: the fallback model was used.
    ShortHistory,
    /// Prophet failed to fit (see `error`): the fallback model was used.
    Fallback,
    /// Nothing to forecast (fewer than two days).
    NoData,
    /// Fitting failed; `error` says why.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ShortHistory => "short_history",
            Status::Fallback => "fallback",
            Status::NoData => "no_data",
            Status::Failed => "failed",
        }
    }
}

/// What a refresh produced for one series.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub key: SeriesKey,
    pub status: Status,
    pub model: Option<ModelKind>,
    pub error: Option<String>,
    pub train_start: Option<NaiveDate>,
    pub train_end: Option<NaiveDate>,
    pub forecast: Option<Forecast>,
    pub backtest: Option<Score>,
    /// Recurring patterns given to the model as holidays.
    pub holidays: usize,
    /// Projected balance and runway (flow series with a balance).
    pub balance: Option<Forecast>,
    pub runway: Option<Runway>,
    /// Prophet's fitted parameters (for the next warm start).
    pub params: Option<Params>,
    /// The fit started from `Job::init`.
    pub warm: bool,
    pub seconds: f64,
}

fn fit(
    fx: &Forecaster,
    cfg: &RefreshConfig,
    series: &Series,
    recurring: &[&Recurring],
    days: &[NaiveDate],
    prophet: bool,
    init: Option<&Params>,
) -> crate::Result<(Forecast, Option<Fitted>)> {
    if !prophet {
        return Ok((seasonal_naive(series, days, 7, cfg.interval_width)?, None));
    }
    let train_end = *series.ds.last().expect("non-empty");
    let until = *days.last().unwrap_or(&train_end);
    let holidays = holiday_rows(recurring, train_end, until);
    let mut fitted = fx.prophet_from(series, &holidays, days, &cfg.settings(), init)?;
    Ok((std::mem::take(&mut fitted.forecast), Some(fitted)))
}

/// Forecasts one series.
pub fn run_one(fx: &Forecaster, cfg: &RefreshConfig, job: &Job) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome {
        key: job.key.clone(),
        status: Status::NoData,
        model: None,
        error: None,
        train_start: None,
        train_end: None,
        forecast: None,
        backtest: None,
        holidays: 0,
        balance: None,
        runway: None,
        params: None,
        warm: false,
        seconds: 0.0,
    };
    let mut series = job.series.clone();
    if cfg.training_window_days > 0 && series.len() > cfg.training_window_days {
        series = series.tail_from(series.len() - cfg.training_window_days);
    }
    if series.len() < 2 {
        out.seconds = started.elapsed().as_secs_f64();
        return out;
    }
    let prophet = series.len() >= cfg.min_history_days.max(2);
    let last = *series.ds.last().expect("non-empty");
    out.train_start = series.ds.first().copied();
    out.train_end = Some(last);
    out.model = Some(if prophet {
        ModelKind::Prophet
    } else {
        ModelKind::SeasonalNaive
    });
    // Patterns still going at the end of the data become holidays.
    let recurring: Vec<&Recurring> = job.recurring.iter().filter(|r| r.active(last)).collect();
    out.holidays = if prophet { recurring.len() } else { 0 };
    let days: Vec<NaiveDate> = (1..=cfg.horizon_days as i64)
        .map(|i| last + Duration::days(i))
        .collect();
    let mut recurring = recurring;
    let mut prophet = prophet;
    let mut result = fit(
        fx,
        cfg,
        &series,
        &recurring,
        &days,
        prophet,
        job.init.as_ref(),
    );
    if let (Err(e), true) = (&result, prophet && !recurring.is_empty()) {
        // Rare optimizer failures depend on the feature set: keep a
        // Prophet forecast without the holidays rather than none.
        out.error = Some(format!(
            "with {} recurring holidays: {e}; fitted without them",
            recurring.len()
        ));
        recurring.clear();
        out.holidays = 0;
        result = fit(fx, cfg, &series, &recurring, &days, prophet, None);
    }
    let mut fallback = false;
    if let (Err(e), true) = (&result, prophet) {
        out.error = Some(format!(
            "Prophet failed ({e}); seasonal-naive fallback used"
        ));
        prophet = false;
        fallback = true;
        out.model = Some(ModelKind::SeasonalNaive);
        result = fit(fx, cfg, &series, &recurring, &days, prophet, None);
    }
    match result {
        Ok((fc, fitted)) => {
            if let Some(f) = fitted {
                out.params = Some(f.params);
                out.warm = f.warm;
            }
            out.status = if fallback {
                Status::Fallback
            } else if prophet {
                Status::Ok
            } else {
                Status::ShortHistory
            };
            if let Some(b) = job.balance {
                let bal = project_balance(b, &fc);
                out.runway = runway(&bal, job.threshold);
                out.balance = Some(bal);
            }
            out.forecast = Some(fc);
        }
        Err(e) => {
            out.status = Status::Failed;
            out.error = Some(e.to_string());
        }
    }
    if out.status != Status::Failed && cfg.backtest_folds > 0 && job.backtest {
        let mut scorer = Scorer::default();
        let mut cash = CashScorer::default();
        // A baseline that does not apply to one fold's history is left out.
        let mut baselines: Vec<(Baseline, Option<CashScorer>)> = Baseline::ALL
            .into_iter()
            .map(|b| (b, Some(CashScorer::default())))
            .collect();
        let min_train = if prophet { cfg.min_history_days } else { 2 };
        for cut in cutoffs(
            series.len(),
            cfg.backtest_folds,
            cfg.backtest_days,
            min_train,
        ) {
            let train = series.head(cut);
            let end = (cut + cfg.backtest_days).min(series.len());
            let hold = &series.ds[cut..end];
            let actual = &series.y[cut..end];
            match fit(fx, cfg, &train, &recurring, hold, prophet, None) {
                Ok((fc, _)) => {
                    scorer.add(actual, &fc);
                    cash.add(&train.y, actual, &fc.yhat);
                    // The baselines on the same fold (only where the model
                    // produced one, so both are scored on the same days).
                    for (b, slot) in &mut baselines {
                        if !b.applies(&train.y) {
                            *slot = None;
                        } else if let Some(s) = slot {
                            s.add(&train.y, actual, &b.forecast(&train.y, actual.len()));
                        }
                    }
                }
                Err(e) => tracing::warn!(series = %job.key.id(), "backtest fold failed: {e}"),
            }
        }
        let baselines: Vec<(Baseline, crate::backtest::CashScore)> = baselines
            .iter()
            .filter_map(|(b, s)| Some((*b, s.as_ref()?.score()?)))
            .collect();
        out.backtest = match (scorer.score(), cash.score()) {
            (Some(score), Some(c)) => Some(with_skill(score, &c, &baselines)),
            (score, _) => score,
        };
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

/// Forecasts all `jobs` on `cfg.threads` threads (each with its own clone of
/// the optimizer), calling `progress(done, total)` after each series.
/// Outcomes are in job order.
pub fn run(
    fx: &Forecaster,
    cfg: &RefreshConfig,
    jobs: &[Job],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    let threads = cfg.threads().min(jobs.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let fx = fx.clone();
            s.spawn(|| {
                let fx = fx;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() {
                        return;
                    }
                    let o = run_one(&fx, cfg, &jobs[i]);
                    results.lock().expect("results")[i] = Some(o);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, jobs.len());
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

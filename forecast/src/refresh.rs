//! Forecasting many series on all cores: for each series, Prophet (with the
//! series' recurring patterns as holidays) or the seasonal-naive fallback when
//! the history is short, a rolling-origin backtest, and for flow series the
//! projected balance and runway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::backtest::{
    cutoffs, rescale, with_skill, Calibrator, CashScore, CashScorer, Score, Scorer,
};
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
    /// The folds' Prophet fits stop when the objective changes by less
    /// than this many machine epsilons (Stan's `tol_rel_obj`; the served
    /// fit keeps Prophet's 1e4). 1e9 (a relative change of 2e-7) halves the
    /// backtest's cost with the same scores (BENCHMARKS.md).
    pub backtest_tolerance: f64,
    /// The model's forecast is served only when its backtest skill over the
    /// best baseline (on weekly totals) is at least this; otherwise that
    /// baseline is, with an interval from its own backtest errors.
    pub choice_margin: f64,
    /// When the backtest's interval coverage is further than this from
    /// `interval_width`, the interval is rescaled from the backtest errors.
    pub calibration_margin: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            horizon_days: 91,
            interval_width: 0.8,
            uncertainty_samples: 1000,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            holidays_prior_scale: 10.0,
            min_history_days: 56,
            training_window_days: 0,
            backtest_folds: 12,
            backtest_days: 30,
            backtest_tolerance: 1e9,
            choice_margin: 0.05,
            calibration_margin: 0.05,
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
        if !(self.backtest_tolerance.is_finite() && self.backtest_tolerance > 0.0) {
            return Err(crate::Error::Input(format!(
                "backtest_tolerance must be positive, got {}",
                self.backtest_tolerance
            )));
        }
        if self.horizon_days == 0 || self.horizon_days > 3660 {
            return Err(crate::Error::Input(format!(
                "horizon must be 1..=3660 days, got {}",
                self.horizon_days
            )));
        }
        if !(0.0..1.0).contains(&self.choice_margin) {
            return Err(crate::Error::Input(format!(
                "choice_margin must be in 0..1, got {}",
                self.choice_margin
            )));
        }
        if !(0.0..1.0).contains(&self.calibration_margin) {
            return Err(crate::Error::Input(format!(
                "calibration_margin must be in 0..1, got {}",
                self.calibration_margin
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
    /// The model's scores from its last backtest, when `backtest` is false:
    /// the model choice uses them (the baselines are rescored, cheaply).
    pub carried: Option<Score>,
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

#[allow(clippy::too_many_arguments)]
fn fit(
    fx: &Forecaster,
    cfg: &RefreshConfig,
    series: &Series,
    recurring: &[&Recurring],
    days: &[NaiveDate],
    prophet: bool,
    init: Option<&Params>,
    tol_rel_obj: Option<f64>,
) -> crate::Result<(Forecast, Option<Fitted>)> {
    if !prophet {
        return Ok((seasonal_naive(series, days, 7, cfg.interval_width)?, None));
    }
    let train_end = *series.ds.last().expect("non-empty");
    let until = *days.last().unwrap_or(&train_end);
    let holidays = holiday_rows(recurring, train_end, until);
    let settings = ProphetSettings {
        tol_rel_obj,
        ..cfg.settings()
    };
    let mut fitted = fx.prophet_from(series, &holidays, days, &settings, init)?;
    Ok((std::mem::take(&mut fitted.forecast), Some(fitted)))
}

/// Each baseline that applies to every fold's history, with its scores and
/// its signed errors (actual − forecast) over all held-out days.
fn baseline_backtest(
    cfg: &RefreshConfig,
    series: &Series,
    cuts: &[usize],
) -> Vec<(Baseline, CashScore, Vec<f64>)> {
    let mut out = Vec::new();
    for b in Baseline::ALL {
        let mut cash = CashScorer::default();
        let mut residuals = Vec::new();
        let mut applies = !cuts.is_empty();
        for &cut in cuts {
            let train = &series.y[..cut];
            if !b.applies(train) {
                applies = false;
                break;
            }
            let end = (cut + cfg.backtest_days).min(series.len());
            let actual = &series.y[cut..end];
            let fc = b.forecast(train, actual.len());
            cash.add(train, actual, &fc);
            residuals.extend(actual.iter().zip(&fc).map(|(a, f)| a - f));
        }
        if let (true, Some(score)) = (applies, cash.score()) {
            out.push((b, score, residuals));
        }
    }
    out
}

/// A baseline's forecast of `days` from `history`, with the interval of
/// width `width` taken from the empirical quantiles of its backtest errors.
fn baseline_forecast(
    b: Baseline,
    history: &[f64],
    days: &[NaiveDate],
    residuals: &[f64],
    width: f64,
) -> Forecast {
    let yhat = b.forecast(history, days.len());
    let mut r = residuals.to_vec();
    r.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        if r.is_empty() {
            0.0
        } else {
            r[((r.len() - 1) as f64 * p).round() as usize]
        }
    };
    let (lo, hi) = (q((1.0 - width) / 2.0), q((1.0 + width) / 2.0));
    Forecast {
        ds: days.to_vec(),
        lower: yhat.iter().map(|y| y + lo.min(0.0)).collect(),
        upper: yhat.iter().map(|y| y + hi.max(0.0)).collect(),
        yhat,
    }
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
        None,
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
        result = fit(fx, cfg, &series, &recurring, &days, prophet, None, None);
    }
    let mut fallback = false;
    if let (Err(e), true) = (&result, prophet) {
        out.error = Some(format!(
            "Prophet failed ({e}); seasonal-naive fallback used"
        ));
        prophet = false;
        fallback = true;
        out.model = Some(ModelKind::SeasonalNaive);
        result = fit(fx, cfg, &series, &recurring, &days, prophet, None, None);
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
            out.forecast = Some(fc);
        }
        Err(e) => {
            out.status = Status::Failed;
            out.error = Some(e.to_string());
        }
    }
    if out.status != Status::Failed && cfg.backtest_folds > 0 {
        let min_train = if prophet { cfg.min_history_days } else { 2 };
        let cuts = cutoffs(
            series.len(),
            cfg.backtest_folds,
            cfg.backtest_days,
            min_train,
        );
        // The baselines on every fold: cheap, so rescored at each refit.
        let baselines = baseline_backtest(cfg, &series, &cuts);
        let scores: Vec<(Baseline, CashScore)> =
            baselines.iter().map(|(b, c, _)| (*b, *c)).collect();
        if job.backtest {
            let fold_init = out.params.clone();
            let fold_init = fold_init.as_ref();
            let mut scorer = Scorer::default();
            let mut cash = CashScorer::default();
            let mut calibrator = Calibrator::default();
            for &cut in &cuts {
                let train = series.head(cut);
                let end = (cut + cfg.backtest_days).min(series.len());
                let hold = &series.ds[cut..end];
                let actual = &series.y[cut..end];
                // Each fold starts the optimizer from the full fit's
                // parameters (a starting point only: the fold's optimum
                // is its own), faster than from scratch.
                let tol = Some(cfg.backtest_tolerance);
                match fit(fx, cfg, &train, &recurring, hold, prophet, fold_init, tol) {
                    Ok((fc, _)) => {
                        scorer.add(actual, &fc);
                        cash.add(&train.y, actual, &fc.yhat);
                        calibrator.add(actual, &fc);
                    }
                    Err(e) => {
                        tracing::warn!(series = %job.key.id(), "backtest fold failed: {e}")
                    }
                }
            }
            out.backtest = match (scorer.score(), cash.score()) {
                (Some(score), Some(c)) => Some(with_skill(score, &c, &scores)),
                (score, _) => score,
            };
            // Interval calibration: when the folds' coverage is off the
            // nominal width by more than the margin, the interval's
            // distances are scaled to match it.
            if let Some(b) = &mut out.backtest {
                let scale = if (b.coverage - cfg.interval_width).abs() > cfg.calibration_margin {
                    calibrator.scale(cfg.interval_width)
                } else {
                    None
                };
                let scale = scale.unwrap_or(1.0);
                b.interval_scale = Some(scale);
                b.calibrated_coverage = Some(calibrator.coverage(scale));
            }
        }
        let evidence = out.backtest.or(job.carried);
        if let (Some(fc), Some(scale)) = (
            out.forecast.as_mut(),
            evidence.and_then(|e| e.interval_scale),
        ) {
            if scale != 1.0 {
                rescale(fc, scale);
            }
        }
        // Model choice: the model's forecast only where it beats the best
        // baseline that may be served by the margin, on its own backtest
        // (fresh or carried). For intermittent series a repeated or
        // last-week baseline is not served: after a quiet week it forecasts
        // no spending at all.
        let key = |c: &CashScore| c.weekly_mae.unwrap_or(c.total_error);
        let servable = baselines
            .iter()
            .filter(|(b, _, _)| b.servable(&series.y))
            .min_by(|x, y| key(&x.1).total_cmp(&key(&y.1)));
        let model_error = evidence.and_then(|sc| sc.weekly_mae.or(sc.total_error));
        if let (Some(err), Some((b, best, residuals))) = (model_error, servable) {
            if err > (1.0 - cfg.choice_margin) * key(best) {
                let fc = baseline_forecast(*b, &series.y, &days, residuals, cfg.interval_width);
                out.model = Some(ModelKind::Baseline(*b));
                out.holidays = 0;
                out.forecast = Some(fc);
            }
        }
    }
    // The balance and runway from the served forecast (its calibrated
    // interval drives the runway's lower bound).
    if let (Some(b), Some(fc)) = (job.balance, &out.forecast) {
        let bal = project_balance(b, fc);
        out.runway = runway(&bal, job.threshold);
        out.balance = Some(bal);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Kind;

    /// A deterministic stand-in for N(0, 1) noise (sum of uniforms).
    fn noise(seed: &mut u64) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            sum += (*seed >> 11) as f64 / (1u64 << 53) as f64;
        }
        sum - 6.0
    }

    fn job(y: Vec<f64>) -> Job {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let ds = (0..y.len() as i64)
            .map(|i| start + Duration::days(i))
            .collect();
        Job {
            key: SeriesKey {
                kind: Kind::CategoryOutflow,
                currency: "EUR".into(),
                subject: "test".into(),
            },
            series: Series::new(ds, y).unwrap(),
            recurring: Vec::new(),
            balance: None,
            threshold: 0.0,
            backtest: true,
            init: None,
            carried: None,
        }
    }

    fn cfg() -> RefreshConfig {
        RefreshConfig {
            horizon_days: 28,
            uncertainty_samples: 50,
            backtest_folds: 6,
            backtest_days: 28,
            threads: 1,
            ..RefreshConfig::default()
        }
    }

    fn total(o: &Outcome) -> f64 {
        o.forecast.as_ref().unwrap().yhat.iter().sum()
    }

    #[test]
    fn noise_is_served_a_baseline_no_worse_than_the_mean() {
        let mut seed = 7;
        let y: Vec<f64> = (0..420)
            .map(|_| 1000.0 + 300.0 * noise(&mut seed))
            .collect();
        let o = run_one(&Forecaster::new(), &cfg(), &job(y.clone()));
        assert_eq!(o.status, Status::Ok, "{:?}", o.error);
        let Some(ModelKind::Baseline(b)) = o.model else {
            panic!(
                "white noise must be served a baseline, got {:?} ({:?})",
                o.model, o.backtest
            );
        };
        let cuts = cutoffs(y.len(), 6, 28, cfg().min_history_days);
        let scores = baseline_backtest(&cfg(), &job(y).series, &cuts);
        let weekly = |x: Baseline| {
            scores
                .iter()
                .find(|s| s.0 == x)
                .unwrap()
                .1
                .weekly_mae
                .unwrap()
        };
        assert!(weekly(b) <= weekly(Baseline::MeanRate), "{b:?}");
        let fc = o.forecast.as_ref().unwrap();
        assert!(
            fc.lower.iter().zip(&fc.upper).all(|(l, u)| l < u),
            "an interval"
        );
    }

    #[test]
    fn intermittent_spending_is_never_forecast_as_zero() {
        let mut seed = 11;
        // About one day in six spends around 600: a rate of about 100/day.
        let y: Vec<f64> = (0..420)
            .map(|_| {
                let u = noise(&mut seed);
                if u > 1.0 {
                    600.0 + 50.0 * noise(&mut seed)
                } else {
                    0.0
                }
            })
            .collect();
        let rate = y.iter().sum::<f64>() / y.len() as f64;
        let o = run_one(&Forecaster::new(), &cfg(), &job(y));
        assert_eq!(o.status, Status::Ok, "{:?}", o.error);
        let t = total(&o);
        assert!(
            t > 0.5 * rate * 28.0 && t < 1.5 * rate * 28.0,
            "28-day total {t} against a rate of {rate}/day ({:?})",
            o.model
        );
    }

    #[test]
    fn a_trend_is_served_prophet_with_skill() {
        let mut seed = 3;
        let y: Vec<f64> = (0..420)
            .map(|i| 200.0 + 5.0 * i as f64 + 20.0 * noise(&mut seed))
            .collect();
        let o = run_one(&Forecaster::new(), &cfg(), &job(y));
        assert_eq!(o.model, Some(ModelKind::Prophet), "{:?}", o.backtest);
        let skill = o.backtest.and_then(|b| b.skill).unwrap();
        assert!(skill > 0.2, "skill {skill}");
    }

    #[test]
    fn the_folds_looser_optimizer_stop_keeps_the_scores_and_the_served_fit() {
        // A weekly pattern on a trend: the optimizer has work to do.
        let mut seed = 5;
        let y: Vec<f64> = (0..420)
            .map(|i| {
                300.0 + 2.0 * i as f64 + 80.0 * ((i % 7) as f64 - 3.0) + 25.0 * noise(&mut seed)
            })
            .collect();
        let strict = RefreshConfig {
            backtest_tolerance: 1e4,
            ..cfg()
        };
        let a = run_one(&Forecaster::new(), &strict, &job(y.clone()));
        let b = run_one(&Forecaster::new(), &cfg(), &job(y));
        let (sa, sb) = (a.backtest.unwrap(), b.backtest.unwrap());
        let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(1e-9);
        let (wa, wb) = (sa.weekly_mae.unwrap(), sb.weekly_mae.unwrap());
        assert!(rel(wa, wb) < 0.01, "weekly MAE {wa} against {wb}");
        assert!(
            rel(sa.mae, sb.mae) < 0.01,
            "MAE {} against {}",
            sa.mae,
            sb.mae
        );
        assert!((sa.coverage - sb.coverage).abs() < 0.02);
        // The served forecast is fitted at Prophet's own tolerance either way.
        assert_eq!(a.forecast.unwrap().yhat, b.forecast.unwrap().yhat);
    }
}

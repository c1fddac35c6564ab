//! Rolling-origin backtest scores.
//!
//! With `folds` F and holdout length H, fold k (1..=F) fits on the series up
//! to `n - k*H` points and forecasts the next H days; the scores pool the
//! errors of all folds.
//!
//! Besides daily errors, each fold is scored on what cash planning uses
//! ([`CashScorer`]): the totals of each whole week of the holdout and the
//! cumulative total at its end, which a balance projection depends on. The
//! [`crate::baseline`] methods are scored on the same folds, and a model's
//! skill is `1 − its weekly-total error / the best baseline's`.

use serde::Serialize;

use crate::baseline::Baseline;
use crate::model::Forecast;

/// Backtest scores over all holdout days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// Mean absolute error, in the series' unit.
    pub mae: f64,
    /// Symmetric mean absolute percentage error, 0..2 (days where both the
    /// actual and the forecast are 0 count as 0 error).
    pub smape: f64,
    /// Share of actual values inside the forecast interval.
    pub coverage: f64,
    /// Holdout days scored.
    pub days: usize,
    /// Mean absolute error of weekly totals (whole weeks of each holdout).
    pub weekly_mae: Option<f64>,
    /// Mean absolute error of each holdout's cumulative total.
    pub total_error: Option<f64>,
    /// Weighted absolute percentage error: Σ|error| / Σ|actual| (none when
    /// every actual is 0).
    pub wape: Option<f64>,
    /// Mean absolute scaled error: the daily MAE over the in-sample MAE of
    /// a 7-day seasonal naive forecast, averaged over folds.
    pub mase: Option<f64>,
    /// The baseline with the lowest weekly-total error on the same folds.
    pub baseline: Option<Baseline>,
    pub baseline_weekly_mae: Option<f64>,
    pub baseline_total_error: Option<f64>,
    /// `1 − weekly_mae / baseline_weekly_mae`: above 0 the model beats the
    /// best baseline, below 0 it loses to it.
    pub skill: Option<f64>,
    /// The factor applied to the interval's distances from the point
    /// forecast so that the backtest's coverage matches the nominal width
    /// (1 when the raw coverage was within the calibration margin).
    pub interval_scale: Option<f64>,
    /// Coverage on the backtest folds with `interval_scale` applied.
    pub calibrated_coverage: Option<f64>,
}

/// Interval calibration from backtest errors: each held-out day's error as
/// a multiple of the interval's distance on its side (above the point
/// forecast: to the upper bound; below: to the lower bound).
#[derive(Debug, Default, Clone)]
pub struct Calibrator {
    ratios: Vec<f64>,
}

impl Calibrator {
    pub fn add(&mut self, actual: &[f64], fc: &Forecast) {
        for (i, y) in actual.iter().enumerate() {
            let e = y - fc.yhat[i];
            let half = if e >= 0.0 {
                fc.upper[i] - fc.yhat[i]
            } else {
                fc.yhat[i] - fc.lower[i]
            };
            self.ratios.push(if e == 0.0 {
                0.0
            } else if half > 0.0 {
                e.abs() / half
            } else {
                f64::INFINITY
            });
        }
    }

    pub fn len(&self) -> usize {
        self.ratios.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ratios.is_empty()
    }

    /// The scale that puts a share `width` of the errors inside the
    /// interval (`None` without errors, or when the interval has no width
    /// where it would need one).
    pub fn scale(&self, width: f64) -> Option<f64> {
        if self.ratios.is_empty() {
            return None;
        }
        let mut r = self.ratios.clone();
        r.sort_by(|a, b| a.total_cmp(b));
        let k = ((r.len() as f64 * width).ceil() as usize).clamp(1, r.len()) - 1;
        let s = r[k];
        (s.is_finite() && s > 0.0).then_some(s)
    }

    /// Share of errors inside the interval scaled by `scale`.
    pub fn coverage(&self, scale: f64) -> f64 {
        if self.ratios.is_empty() {
            return 0.0;
        }
        self.ratios.iter().filter(|r| **r <= scale).count() as f64 / self.ratios.len() as f64
    }
}

/// Scales the interval's distances from the point forecast by `scale`.
pub fn rescale(fc: &mut Forecast, scale: f64) {
    for i in 0..fc.yhat.len() {
        fc.lower[i] = fc.yhat[i] - scale * (fc.yhat[i] - fc.lower[i]);
        fc.upper[i] = fc.yhat[i] + scale * (fc.upper[i] - fc.yhat[i]);
    }
}

/// Accumulates holdout errors.
#[derive(Debug, Default, Clone)]
pub struct Scorer {
    abs: f64,
    smape: f64,
    smape_n: usize,
    inside: usize,
    n: usize,
}

impl Scorer {
    /// Adds actual values against a forecast for the same days.
    pub fn add(&mut self, actual: &[f64], fc: &Forecast) {
        for (i, y) in actual.iter().enumerate() {
            let (f, lo, hi) = (fc.yhat[i], fc.lower[i], fc.upper[i]);
            let err = (y - f).abs();
            self.abs += err;
            // sMAPE is meaningless where the actual is 0 (any forecast
            // scores the maximum): those days are left out of it.
            if *y != 0.0 {
                self.smape += 2.0 * err / (y.abs() + f.abs());
                self.smape_n += 1;
            }
            if lo <= *y && *y <= hi {
                self.inside += 1;
            }
            self.n += 1;
        }
    }

    pub fn score(&self) -> Option<Score> {
        (self.n > 0).then(|| Score {
            mae: self.abs / self.n as f64,
            smape: if self.smape_n > 0 {
                self.smape / self.smape_n as f64
            } else {
                0.0
            },
            coverage: self.inside as f64 / self.n as f64,
            days: self.n,
            ..Score::default()
        })
    }
}

/// Errors of one forecaster in cash-planning terms, pooled over folds.
#[derive(Debug, Default, Clone)]
pub struct CashScorer {
    daily_abs: f64,
    actual_abs: f64,
    days: usize,
    weekly_abs: f64,
    weeks: usize,
    total_abs: f64,
    folds: usize,
    mase_sum: f64,
    mase_folds: usize,
}

/// What [`CashScorer`] found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CashScore {
    pub daily_mae: f64,
    /// `None` when the holdouts hold no whole week.
    pub weekly_mae: Option<f64>,
    pub total_error: f64,
    pub wape: Option<f64>,
    pub mase: Option<f64>,
}

impl CashScorer {
    /// One fold: its training values, the held-out actuals and the point
    /// forecast for the same days.
    pub fn add(&mut self, train: &[f64], actual: &[f64], forecast: &[f64]) {
        let n = actual.len().min(forecast.len());
        if n == 0 {
            return;
        }
        let (actual, forecast) = (&actual[..n], &forecast[..n]);
        let fold_abs: f64 = actual
            .iter()
            .zip(forecast)
            .map(|(a, f)| (a - f).abs())
            .sum();
        self.daily_abs += fold_abs;
        self.actual_abs += actual.iter().map(|a| a.abs()).sum::<f64>();
        self.days += n;
        for (a, f) in actual.chunks_exact(7).zip(forecast.chunks_exact(7)) {
            self.weekly_abs += (a.iter().sum::<f64>() - f.iter().sum::<f64>()).abs();
            self.weeks += 1;
        }
        self.total_abs += (actual.iter().sum::<f64>() - forecast.iter().sum::<f64>()).abs();
        self.folds += 1;
        if train.len() > 7 {
            let scale = (7..train.len())
                .map(|i| (train[i] - train[i - 7]).abs())
                .sum::<f64>()
                / (train.len() - 7) as f64;
            if scale > 0.0 {
                self.mase_sum += fold_abs / n as f64 / scale;
                self.mase_folds += 1;
            }
        }
    }

    pub fn score(&self) -> Option<CashScore> {
        (self.days > 0).then(|| CashScore {
            daily_mae: self.daily_abs / self.days as f64,
            weekly_mae: (self.weeks > 0).then(|| self.weekly_abs / self.weeks as f64),
            total_error: self.total_abs / self.folds as f64,
            wape: (self.actual_abs > 0.0).then(|| self.daily_abs / self.actual_abs),
            mase: (self.mase_folds > 0).then(|| self.mase_sum / self.mase_folds as f64),
        })
    }
}

/// Fills `score`'s cash-planning fields from the model's [`CashScore`] and
/// the baselines' on the same folds: the best baseline is the one with the
/// lowest weekly-total error (the cumulative error when no whole week was
/// held out).
pub fn with_skill(
    mut score: Score,
    model: &CashScore,
    baselines: &[(Baseline, CashScore)],
) -> Score {
    let key = |c: &CashScore| c.weekly_mae.unwrap_or(c.total_error);
    score.weekly_mae = model.weekly_mae;
    score.total_error = Some(model.total_error);
    score.wape = model.wape;
    score.mase = model.mase;
    if let Some((b, best)) = baselines
        .iter()
        .min_by(|x, y| key(&x.1).total_cmp(&key(&y.1)))
    {
        score.baseline = Some(*b);
        score.baseline_weekly_mae = best.weekly_mae;
        score.baseline_total_error = Some(best.total_error);
        let (m, b) = (key(model), key(best));
        score.skill = if b > 0.0 {
            Some(1.0 - m / b)
        } else if m == 0.0 {
            Some(0.0)
        } else {
            None
        };
    }
    score
}

/// Fold cut points (training lengths) for a series of `n` points, newest
/// first, keeping at least `min_train` training points.
pub fn cutoffs(n: usize, folds: usize, holdout: usize, min_train: usize) -> Vec<usize> {
    (1..=folds)
        .map_while(|k| n.checked_sub(k * holdout))
        .filter(|c| *c >= min_train.max(2))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores() {
        let fc = Forecast {
            ds: vec![],
            yhat: vec![1.0, 0.0, 3.0],
            lower: vec![0.0, -1.0, 3.5],
            upper: vec![2.0, 1.0, 4.0],
        };
        let mut s = Scorer::default();
        s.add(&[2.0, 0.0, 3.0], &fc);
        let sc = s.score().unwrap();
        assert!((sc.mae - 1.0 / 3.0).abs() < 1e-12);
        // The zero-actual day is left out of sMAPE: (2/3 + 0) / 2.
        assert!((sc.smape - (2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((sc.coverage - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Scorer::default().score(), None);
        assert_eq!(cutoffs(100, 3, 30, 20), vec![70, 40]);
    }

    #[test]
    fn calibration_moves_a_misscaled_interval_to_its_width_on_held_out_origins() {
        // N(0, 1)-like errors (sum of uniforms) against an interval of ±0.4:
        // far too narrow for 80%.
        let mut seed = 42u64;
        let mut noise = || {
            let mut sum = 0.0;
            for _ in 0..12 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                sum += (seed >> 11) as f64 / (1u64 << 53) as f64;
            }
            sum - 6.0
        };
        let origin = |noise: &mut dyn FnMut() -> f64| {
            let actual: Vec<f64> = (0..30).map(|_| 100.0 + noise()).collect();
            let fc = Forecast {
                ds: vec![],
                yhat: vec![100.0; 30],
                lower: vec![99.6; 30],
                upper: vec![100.4; 30],
            };
            (actual, fc)
        };
        let mut cal = Calibrator::default();
        for _ in 0..24 {
            let (a, f) = origin(&mut noise);
            cal.add(&a, &f);
        }
        assert!(
            cal.coverage(1.0) < 0.45,
            "mis-scaled: {}",
            cal.coverage(1.0)
        );
        let s = cal.scale(0.8).unwrap();
        assert!((cal.coverage(s) - 0.8).abs() < 0.01);
        // Held-out origins, scored with the calibrated interval.
        let mut held = Scorer::default();
        let mut raw = Scorer::default();
        for _ in 0..24 {
            let (a, mut f) = origin(&mut noise);
            raw.add(&a, &f);
            rescale(&mut f, s);
            held.add(&a, &f);
        }
        let (before, after) = (
            raw.score().unwrap().coverage,
            held.score().unwrap().coverage,
        );
        assert!(
            (after - 0.8).abs() <= 0.05,
            "held-out coverage {before} -> {after} (scale {s})"
        );
        // No width where one is needed: no scale.
        let mut flat = Calibrator::default();
        flat.add(
            &[1.0; 10],
            &Forecast {
                ds: vec![],
                yhat: vec![0.0; 10],
                lower: vec![0.0; 10],
                upper: vec![0.0; 10],
            },
        );
        assert_eq!(flat.scale(0.8), None);
    }

    #[test]
    fn cash_scores_and_skill() {
        // A training week of 0..6 (seasonal-7 scale: |7-0|... = 7 per day
        // for the second week), 16 held-out days of 10 against 8.
        let train: Vec<f64> = (0..14).map(|i| i as f64).collect();
        let mut c = CashScorer::default();
        c.add(&train, &[10.0; 16], &[8.0; 16]);
        let s = c.score().unwrap();
        assert_eq!(s.daily_mae, 2.0);
        assert_eq!(s.weekly_mae, Some(14.0), "two whole weeks, 14 off each");
        assert_eq!(s.total_error, 32.0);
        assert_eq!(s.wape, Some(0.2));
        assert_eq!(s.mase, Some(2.0 / 7.0));
        let base = |w: f64| CashScore {
            daily_mae: 0.0,
            weekly_mae: Some(w),
            total_error: w,
            wape: None,
            mase: None,
        };
        let b = [
            (Baseline::MeanRate, base(28.0)),
            (Baseline::LastWeekMean, base(20.0)),
        ];
        let score = with_skill(Score::default(), &s, &b);
        assert_eq!(score.baseline, Some(Baseline::LastWeekMean));
        assert!((score.skill.unwrap() - 0.3).abs() < 1e-12, "1 - 14/20");
        // Losing to the baseline is negative skill.
        let worse = with_skill(score, &base(40.0), &b);
        assert!((worse.skill.unwrap() + 1.0).abs() < 1e-12);
        // All zero: no baseline, no skill.
        assert_eq!(CashScorer::default().score(), None);
    }
}

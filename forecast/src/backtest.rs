//! Rolling-origin backtest scores.
//!
//! With `folds` F and holdout length H, fold k (1..=F) fits on the series up
//! to `n - k*H` points and forecasts the next H days; the scores pool the
//! errors of all folds.

use serde::Serialize;

use crate::model::Forecast;

/// Backtest scores over all holdout days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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
}

/// Accumulates holdout errors.
#[derive(Debug, Default, Clone)]
pub struct Scorer {
    abs: f64,
    smape: f64,
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
            let denom = y.abs() + f.abs();
            if denom > 0.0 {
                self.smape += 2.0 * err / denom;
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
            smape: self.smape / self.n as f64,
            coverage: self.inside as f64 / self.n as f64,
            days: self.n,
        })
    }
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
        assert!((sc.smape - (2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((sc.coverage - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Scorer::default().score(), None);
        assert_eq!(cutoffs(100, 3, 30, 20), vec![70, 40]);
    }
}

//! The obvious guesses a forecast has to beat.
//!
//! Every backtest scores these beside the model, on the same folds, so a
//! forecast's skill (how much better than the best of them it is) can be
//! reported. They work on a dense daily history (one value per day) and
//! forecast a flat rate or a repeated week:
//!
//! - `mean_rate`: the training window's mean per day;
//! - `seasonal_naive_7`: each day repeats the same weekday of the last week;
//! - `trailing_28_mean`: the mean of the last 28 days;
//! - `last_week_mean`: the mean of the last 7 days;
//! - for intermittent series (never negative, some days zero): Croston's
//!   method with the Syntetos–Boylan correction (`croston_sba`) and
//!   Teunter–Syntetos–Babai (`tsb`), which forecast the rate of spending, so
//!   totals come out right where a daily-error-minimising forecast says zero.

use serde::Serialize;

/// A baseline method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    MeanRate,
    SeasonalNaive7,
    Trailing28Mean,
    LastWeekMean,
    CrostonSba,
    Tsb,
}

/// Smoothing constants of Croston/SBA and TSB (the literature's defaults).
const ALPHA: f64 = 0.1;
const BETA: f64 = 0.1;

impl Baseline {
    pub const ALL: [Baseline; 6] = [
        Baseline::MeanRate,
        Baseline::SeasonalNaive7,
        Baseline::Trailing28Mean,
        Baseline::LastWeekMean,
        Baseline::CrostonSba,
        Baseline::Tsb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::MeanRate => "mean_rate",
            Baseline::SeasonalNaive7 => "seasonal_naive_7",
            Baseline::Trailing28Mean => "trailing_28_mean",
            Baseline::LastWeekMean => "last_week_mean",
            Baseline::CrostonSba => "croston_sba",
            Baseline::Tsb => "tsb",
        }
    }

    pub fn parse(text: &str) -> Option<Baseline> {
        Baseline::ALL.into_iter().find(|b| b.as_str() == text)
    }

    /// Whether the method applies to a history: the intermittent-demand
    /// methods only to series that are never negative and have a zero day
    /// and a non-zero day.
    pub fn applies(self, history: &[f64]) -> bool {
        match self {
            Baseline::CrostonSba | Baseline::Tsb => intermittent(history),
            _ => !history.is_empty(),
        }
    }

    /// Whether the method may be served as a series' forecast (it is always
    /// scored): not a repeated week or the last week's mean for an
    /// intermittent series, which forecast no spending after a quiet week.
    pub fn servable(self, history: &[f64]) -> bool {
        match self {
            Baseline::SeasonalNaive7 | Baseline::LastWeekMean => !intermittent(history),
            _ => true,
        }
    }

    /// The point forecast of the `h` days after `history`.
    pub fn forecast(self, history: &[f64], h: usize) -> Vec<f64> {
        let n = history.len();
        if n == 0 {
            return vec![0.0; h];
        }
        let mean_of = |tail: usize| {
            let t = &history[n - tail.min(n)..];
            t.iter().sum::<f64>() / t.len() as f64
        };
        match self {
            Baseline::MeanRate => vec![mean_of(n); h],
            Baseline::Trailing28Mean => vec![mean_of(28); h],
            Baseline::LastWeekMean => vec![mean_of(7); h],
            Baseline::SeasonalNaive7 => {
                if n < 7 {
                    return vec![mean_of(n); h];
                }
                (0..h).map(|i| history[n - 7 + i % 7]).collect()
            }
            Baseline::CrostonSba => vec![croston_sba(history); h],
            Baseline::Tsb => vec![tsb(history); h],
        }
    }
}

/// Never negative, with at least one zero and one non-zero day.
pub fn intermittent(history: &[f64]) -> bool {
    history.iter().all(|v| *v >= 0.0) && history.contains(&0.0) && history.iter().any(|v| *v > 0.0)
}

/// Croston's method with the Syntetos–Boylan bias correction: demand size
/// `z` and interval `p` smoothed at each non-zero day, rate
/// `(1 − α/2)·z/p`. Initialised with the first demand and its interval.
fn croston_sba(history: &[f64]) -> f64 {
    let mut z: Option<f64> = None;
    let mut p = 0.0;
    let mut since = 0.0;
    for &y in history {
        since += 1.0;
        if y > 0.0 {
            match z {
                None => {
                    z = Some(y);
                    p = since;
                }
                Some(zz) => {
                    z = Some(zz + ALPHA * (y - zz));
                    p += ALPHA * (since - p);
                }
            }
            since = 0.0;
        }
    }
    match z {
        Some(z) if p > 0.0 => (1.0 - ALPHA / 2.0) * z / p,
        _ => 0.0,
    }
}

/// Teunter–Syntetos–Babai: the probability of a demand `q` is smoothed every
/// day (so it decays while nothing is spent), the size `z` at demands; rate
/// `q·z`. Initialised with the history's demand share and first demand.
fn tsb(history: &[f64]) -> f64 {
    let demands = history.iter().filter(|v| **v > 0.0).count();
    if demands == 0 {
        return 0.0;
    }
    let mut q = demands as f64 / history.len() as f64;
    let mut z = *history.iter().find(|v| **v > 0.0).expect("a demand");
    for &y in history {
        if y > 0.0 {
            q += BETA * (1.0 - q);
            z += ALPHA * (y - z);
        } else {
            q += BETA * (0.0 - q);
        }
    }
    q * z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_weekly_baselines() {
        let h: Vec<f64> = (0..35).map(|i| (i % 7) as f64).collect();
        assert_eq!(Baseline::MeanRate.forecast(&h, 3), vec![3.0; 3]);
        assert_eq!(
            Baseline::SeasonalNaive7.forecast(&h, 9),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 1.0]
        );
        assert_eq!(Baseline::LastWeekMean.forecast(&h, 1), vec![3.0]);
        let ramp: Vec<f64> = (0..56).map(f64::from).collect();
        // The last 28 days are 28..=55: mean 41.5.
        assert_eq!(Baseline::Trailing28Mean.forecast(&ramp, 2), vec![41.5; 2]);
        assert_eq!(
            Baseline::SeasonalNaive7.forecast(&[2.0, 4.0], 2),
            vec![3.0; 2]
        );
        assert_eq!(Baseline::parse("tsb"), Some(Baseline::Tsb));
        assert_eq!(Baseline::parse("prophet"), None);
    }

    #[test]
    fn intermittent_methods_forecast_the_rate() {
        // 70 every 7th day: a rate of 10 per day.
        let h: Vec<f64> = (0..140)
            .map(|i| if i % 7 == 6 { 70.0 } else { 0.0 })
            .collect();
        assert!(intermittent(&h));
        assert!(Baseline::CrostonSba.applies(&h) && Baseline::Tsb.applies(&h));
        // Croston: z = 70, p = 7 throughout; SBA scales by 1 − α/2.
        let sba = Baseline::CrostonSba.forecast(&h, 1)[0];
        assert!((sba - 0.95 * 10.0).abs() < 1e-9, "{sba}");
        // TSB: q settles around 1/7 (it peaks after a demand day, as here).
        let t = Baseline::Tsb.forecast(&h, 1)[0];
        assert!((8.0..16.0).contains(&t), "{t}");
        // Signed or dense series are not intermittent.
        assert!(!intermittent(&[1.0, -2.0, 0.0]));
        assert!(!intermittent(&[1.0, 2.0]));
        assert!(!Baseline::Tsb.applies(&[1.0, 2.0]));
        assert!(!Baseline::SeasonalNaive7.servable(&h) && !Baseline::LastWeekMean.servable(&h));
        assert!(Baseline::SeasonalNaive7.servable(&[1.0, -2.0, 0.0]));
        // Hand-computed Croston: demands 4 (after 2 days), 8 (after 3):
        // z = 4 + 0.1·4 = 4.4, p = 2 + 0.1·1 = 2.1, rate 0.95·4.4/2.1.
        let r = Baseline::CrostonSba.forecast(&[0.0, 4.0, 0.0, 0.0, 8.0], 1)[0];
        assert!((r - 0.95 * 4.4 / 2.1).abs() < 1e-12, "{r}");
    }
}

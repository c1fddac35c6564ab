//! Balance projection from a net-flow forecast, and runway.
//!
//! The projected balance is the last known balance plus the cumulative
//! forecast flow. Its interval treats daily errors as independent: the
//! distance to the lower (upper) bound grows as the square root of the sum of
//! the squared daily distances.

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::Forecast;

/// Projects the balance from `last_balance` and a flow forecast.
pub fn project_balance(last_balance: f64, flow: &Forecast) -> Forecast {
    let mut out = Forecast::default();
    let (mut level, mut down, mut up) = (last_balance, 0.0, 0.0);
    for i in 0..flow.ds.len() {
        level += flow.yhat[i];
        down += (flow.yhat[i] - flow.lower[i]).max(0.0).powi(2);
        up += (flow.upper[i] - flow.yhat[i]).max(0.0).powi(2);
        out.ds.push(flow.ds[i]);
        out.yhat.push(level);
        out.lower.push(level - down.sqrt());
        out.upper.push(level + up.sqrt());
    }
    out
}

/// Runway of a projected balance against a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runway {
    pub threshold: f64,
    /// Lowest projected balance within the horizon, and its date.
    pub lowest: f64,
    pub lowest_date: NaiveDate,
    /// First date the projected balance is below the threshold.
    pub below_date: Option<NaiveDate>,
    /// First date the interval's lower bound is below the threshold.
    pub lower_below_date: Option<NaiveDate>,
}

/// Runway of `balance` (a projected balance); `None` for an empty forecast.
pub fn runway(balance: &Forecast, threshold: f64) -> Option<Runway> {
    let (mut lowest, mut lowest_date) = (f64::INFINITY, *balance.ds.first()?);
    let (mut below, mut lower_below) = (None, None);
    for i in 0..balance.ds.len() {
        let d = balance.ds[i];
        if balance.yhat[i] < lowest {
            lowest = balance.yhat[i];
            lowest_date = d;
        }
        if below.is_none() && balance.yhat[i] < threshold {
            below = Some(d);
        }
        if lower_below.is_none() && balance.lower[i] < threshold {
            lower_below = Some(d);
        }
    }
    Some(Runway {
        threshold,
        lowest,
        lowest_date,
        below_date: below,
        lower_below_date: lower_below,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_and_runway() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let flow = Forecast {
            ds: vec![d("2025-01-01"), d("2025-01-02"), d("2025-01-03")],
            yhat: vec![-40.0, -40.0, 50.0],
            lower: vec![-43.0, -44.0, 50.0],
            upper: vec![-40.0, -40.0, 52.0],
        };
        let b = project_balance(100.0, &flow);
        assert_eq!(b.yhat, vec![60.0, 20.0, 70.0]);
        assert_eq!(b.lower, vec![57.0, 15.0, 65.0]);
        assert_eq!(b.upper[2], 72.0);
        let r = runway(&b, 18.0).unwrap();
        assert_eq!((r.lowest, r.lowest_date), (20.0, d("2025-01-02")));
        assert_eq!(r.below_date, None);
        assert_eq!(r.lower_below_date, Some(d("2025-01-02")));
        let r0 = runway(&b, 0.0).unwrap();
        assert_eq!((r0.below_date, r0.lower_below_date), (None, None));
    }
}

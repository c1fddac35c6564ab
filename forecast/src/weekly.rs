//! The 13-week cash view: per ISO week, inflow, outflow and net with an
//! interval, the known recurring items in it, and the balance at the
//! week's end with its band.
//!
//! The weeks come from the served daily net-flow forecast, so the weeks
//! sum to the daily forecast's total over the same days. Known recurring
//! items (payroll, rent, taxes, subscriptions) are placed on their expected
//! dates: when the served model already places them (Prophet with the
//! patterns as holidays) its days are used as they are; when it spreads
//! them over every day (a baseline's average rate), that spread-out share
//! is taken back evenly and each item is put on its own date, which moves
//! money between weeks without changing the total.
//!
//! The rest of each week's net (net − known items) is split into inflow and
//! outflow with the history's non-recurring gross rates: the split keeps
//! `inflow − outflow = net` exactly and neither side below zero.

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::model::Forecast;
use crate::recurring::Recurring;

/// A recurring item expected on a date (signed, inflow positive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KnownItem {
    pub date: NaiveDate,
    pub amount: f64,
}

/// The expected occurrences of `patterns` after `after` up to `until`.
pub fn known_items<'a>(
    patterns: impl IntoIterator<Item = &'a Recurring>,
    after: NaiveDate,
    until: NaiveDate,
) -> Vec<KnownItem> {
    let mut out: Vec<KnownItem> = patterns
        .into_iter()
        .filter(|r| r.active(after))
        .flat_map(|r| {
            r.projected(after, until).into_iter().map(|date| KnownItem {
                date,
                amount: r.amount,
            })
        })
        .collect();
    out.sort_by_key(|k| k.date);
    out
}

/// Average daily non-recurring inflow and outflow (both ≥ 0) of the
/// history, used to split the statistical part of a week's net.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Gross {
    pub inflow_per_day: f64,
    pub outflow_per_day: f64,
}

/// One week of the view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// 1..=13.
    pub week: usize,
    /// The ISO week's Monday, and its label (`2026-W02`).
    pub week_start: NaiveDate,
    pub iso_week: String,
    /// Forecast days in the week (the first week starts the day after the
    /// data ends, so it may be shorter).
    pub days: usize,
    pub inflow: f64,
    pub outflow: f64,
    pub net: f64,
    pub net_lower: f64,
    pub net_upper: f64,
    /// Known recurring items expected in the week.
    pub known_inflow: f64,
    pub known_outflow: f64,
    pub known_items: usize,
    /// Balance at the end of the week, and its band.
    pub balance: f64,
    pub balance_lower: f64,
    pub balance_upper: f64,
}

/// Builds up to `weeks` ISO weeks from the daily net-flow forecast `flow`.
/// `placed`: the forecast already puts the known items on their dates.
pub fn build(
    flow: &Forecast,
    placed: bool,
    known: &[KnownItem],
    gross: Gross,
    start_balance: f64,
    weeks: usize,
) -> Vec<Week> {
    let monday = |d: NaiveDate| d - Duration::days(d.weekday().num_days_from_monday() as i64);
    // The days of the first `weeks` weeks.
    let n = match flow.ds.first() {
        Some(first) => {
            let end = monday(*first) + Duration::days(7 * weeks as i64);
            flow.ds.iter().take_while(|d| **d < end).count()
        }
        None => 0,
    };
    let ds = &flow.ds[..n];
    let known: Vec<KnownItem> = known
        .iter()
        .filter(|k| {
            ds.first().is_some_and(|f| k.date >= *f) && ds.last().is_some_and(|l| k.date <= *l)
        })
        .copied()
        .collect();
    // Daily point forecast with the known items on their dates.
    let spread = if placed || n == 0 {
        0.0
    } else {
        known.iter().map(|k| k.amount).sum::<f64>() / n as f64
    };
    let mut y: Vec<f64> = flow.yhat[..n].iter().map(|v| v - spread).collect();
    if !placed {
        for k in &known {
            let i = (k.date - ds[0]).num_days() as usize;
            y[i] += k.amount;
        }
    }
    let mut out: Vec<Week> = Vec::new();
    let (mut level, mut down, mut up) = (start_balance, 0.0f64, 0.0f64);
    let (mut wdown, mut wup) = (0.0f64, 0.0f64);
    for i in 0..n {
        let d = ds[i];
        let start = monday(d);
        if out.last().is_none_or(|w| w.week_start != start) {
            wdown = 0.0;
            wup = 0.0;
            let iso = d.iso_week();
            out.push(Week {
                week: out.len() + 1,
                week_start: start,
                iso_week: format!("{}-W{:02}", iso.year(), iso.week()),
                days: 0,
                inflow: 0.0,
                outflow: 0.0,
                net: 0.0,
                net_lower: 0.0,
                net_upper: 0.0,
                known_inflow: 0.0,
                known_outflow: 0.0,
                known_items: 0,
                balance: 0.0,
                balance_lower: 0.0,
                balance_upper: 0.0,
            });
        }
        let lo = (flow.yhat[i] - flow.lower[i]).max(0.0).powi(2);
        let hi = (flow.upper[i] - flow.yhat[i]).max(0.0).powi(2);
        wdown += lo;
        wup += hi;
        down += lo;
        up += hi;
        level += y[i];
        let w = out.last_mut().expect("a week");
        w.days += 1;
        w.net += y[i];
        w.net_lower = w.net - wdown.sqrt();
        w.net_upper = w.net + wup.sqrt();
        w.balance = level;
        w.balance_lower = level - down.sqrt();
        w.balance_upper = level + up.sqrt();
        for k in known.iter().filter(|k| k.date == d) {
            if k.amount >= 0.0 {
                w.known_inflow += k.amount;
            } else {
                w.known_outflow -= k.amount;
            }
            w.known_items += 1;
        }
    }
    for w in &mut out {
        // The statistical rest, split with the non-recurring gross rates.
        let rest = w.net - (w.known_inflow - w.known_outflow);
        let days = w.days as f64;
        let (a, b) = (gross.inflow_per_day * days, gross.outflow_per_day * days);
        let shift = (rest - (a - b)) / 2.0;
        let (mut inflow, mut outflow) = (a + shift, b - shift);
        if inflow < 0.0 {
            (inflow, outflow) = (0.0, -rest);
        } else if outflow < 0.0 {
            (inflow, outflow) = (rest, 0.0);
        }
        w.inflow = w.known_inflow + inflow;
        w.outflow = w.known_outflow + outflow;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn flat(first: &str, n: usize, v: f64) -> Forecast {
        let ds: Vec<NaiveDate> = (0..n as i64)
            .map(|i| d(first) + Duration::days(i))
            .collect();
        Forecast {
            yhat: vec![v; n],
            lower: vec![v - 3.0; n],
            upper: vec![v + 4.0; n],
            ds,
        }
    }

    #[test]
    fn weeks_sum_to_the_daily_total_and_items_land_on_their_weeks() {
        // Data ended on Wednesday 2025-12-03: week 1 is Thu..Sun (4 days).
        let fc = flat("2025-12-04", 91, -10.0);
        let payroll = KnownItem {
            date: d("2025-12-25"),
            amount: -700.0,
        };
        let sales = KnownItem {
            date: d("2026-01-05"),
            amount: 70.0,
        };
        let gross = Gross {
            inflow_per_day: 20.0,
            outflow_per_day: 25.0,
        };
        let w = build(&fc, false, &[payroll, sales], gross, 1000.0, 13);
        assert_eq!(w.len(), 13);
        assert_eq!(w[0].days, 4);
        assert_eq!(w[0].week_start, d("2025-12-01"));
        assert_eq!(w[0].iso_week, "2025-W49");
        assert!(w[1..].iter().all(|w| w.days == 7));
        let days: usize = w.iter().map(|w| w.days).sum();
        let total: f64 = w.iter().map(|w| w.net).sum();
        let daily: f64 = fc.yhat[..days].iter().sum();
        assert!((total - daily).abs() < 1e-9, "{total} vs {daily}");
        // Payroll in the week of 2025-12-22, the sales in 2026-W02.
        let of = |s: &str| w.iter().find(|w| w.week_start == d(s)).unwrap();
        assert_eq!(of("2025-12-22").known_outflow, 700.0);
        assert_eq!(of("2026-01-05").known_inflow, 70.0);
        assert!(of("2025-12-22").net < of("2025-12-15").net - 600.0);
        for x in &w {
            assert!((x.inflow - x.outflow - x.net).abs() < 1e-9);
            assert!(x.inflow >= 0.0 && x.outflow >= 0.0);
            assert!(x.net_lower < x.net && x.net < x.net_upper);
        }
        let last = w.last().unwrap();
        assert!((last.balance - (1000.0 + total)).abs() < 1e-9);
        // Already placed by the model: the days are used as they are.
        let p = build(&fc, true, &[payroll], gross, 0.0, 13);
        assert_eq!(p[0].net, -40.0);
        assert_eq!(of("2025-12-22").week, 4);
        assert_eq!(p[3].known_outflow, 700.0);
        assert_eq!(p[3].net, -70.0);
    }
}

//! Recurring-transaction detection: payroll, rent, taxes, subscriptions.
//!
//! Transactions are grouped by account, currency, direction and a key (the
//! normalised counterparty or description). Same-day transactions of a group
//! are one occurrence (their sum). A group is recurring when it has at least
//! `min_occurrences` occurrences, at least `min_share` of the gaps between
//! consecutive occurrences match one cadence within its tolerance, and at
//! least `min_share` of the amounts lie within `amount_tolerance` (relative)
//! of the median amount. Cadences are tried from the shortest:
//!
//! | cadence   | gap (days)          |
//! |-----------|---------------------|
//! | weekly    | 7 ± 1               |
//! | biweekly  | 14 ± 2              |
//! | monthly   | 28–31 ± `day_tolerance` |
//! | quarterly | 89–92 ± 2×`day_tolerance` |
//! | yearly    | 365–366 ± 3×`day_tolerance` |
//!
//! The next expected date steps from the last occurrence: by 7 or 14 days,
//! or by 1, 3 or 12 months on the median day of the month (clamped to the
//! month's length).

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::model::HolidayRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Weekly,
    Biweekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Cadence {
    pub const ALL: [Cadence; 5] = [
        Cadence::Weekly,
        Cadence::Biweekly,
        Cadence::Monthly,
        Cadence::Quarterly,
        Cadence::Yearly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Weekly => "weekly",
            Cadence::Biweekly => "biweekly",
            Cadence::Monthly => "monthly",
            Cadence::Quarterly => "quarterly",
            Cadence::Yearly => "yearly",
        }
    }

    /// Whether a gap of `days` matches this cadence.
    fn matches(self, days: i64, tol: i64) -> bool {
        let (lo, hi) = match self {
            Cadence::Weekly => (6, 8),
            Cadence::Biweekly => (12, 16),
            Cadence::Monthly => (28 - tol, 31 + tol),
            Cadence::Quarterly => (89 - 2 * tol, 92 + 2 * tol),
            Cadence::Yearly => (365 - 3 * tol, 366 + 3 * tol),
        };
        (lo..=hi).contains(&days)
    }

    /// The occurrence after `from`, on `day_of_month` for monthly cadences.
    pub fn step(self, from: NaiveDate, day_of_month: u32) -> NaiveDate {
        let months = match self {
            Cadence::Weekly => return from + Duration::days(7),
            Cadence::Biweekly => return from + Duration::days(14),
            Cadence::Monthly => 1,
            Cadence::Quarterly => 3,
            Cadence::Yearly => 12,
        };
        let first = from.with_day(1).expect("day 1") + Months::new(months);
        let len = days_in_month(first);
        first
            .with_day(day_of_month.clamp(1, len))
            .expect("clamped day")
    }
}

fn days_in_month(first: NaiveDate) -> u32 {
    let next = first + Months::new(1);
    (next - first).num_days() as u32
}

/// A transaction as detection needs it (`amount` signed, major units).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub date: NaiveDate,
    pub account_id: String,
    pub currency: String,
    pub key: String,
    pub category: Option<String>,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecurringConfig {
    /// Fewest occurrences for a pattern.
    pub min_occurrences: usize,
    /// Share of gaps (and of amounts) that must fit the pattern.
    pub min_share: f64,
    /// Relative distance from the median amount that still counts as similar.
    pub amount_tolerance: f64,
    /// Slack in days around a monthly gap (doubled for quarterly, tripled
    /// for yearly).
    pub day_tolerance: i64,
}

impl Default for RecurringConfig {
    fn default() -> Self {
        RecurringConfig {
            min_occurrences: 3,
            min_share: 0.8,
            amount_tolerance: 0.2,
            day_tolerance: 3,
        }
    }
}

/// A detected pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recurring {
    pub account_id: String,
    pub currency: String,
    pub key: String,
    /// The most frequent category among the occurrences, if any.
    pub category: Option<String>,
    /// `inflow` or `outflow`.
    pub direction: &'static str,
    pub cadence: Cadence,
    pub day_of_month: u32,
    /// Median amount per occurrence (signed, major units).
    pub amount: f64,
    pub occurrences: Vec<NaiveDate>,
    pub next_expected: NaiveDate,
}

impl Recurring {
    pub fn first(&self) -> NaiveDate {
        self.occurrences[0]
    }

    pub fn last(&self) -> NaiveDate {
        *self.occurrences.last().expect("non-empty")
    }

    /// Still going at `as_of`: the next expected date is not more than one
    /// cadence step overdue.
    pub fn active(&self, as_of: NaiveDate) -> bool {
        self.cadence.step(self.next_expected, self.day_of_month) >= as_of
    }

    /// Expected dates after `after` up to `until`, stepping from the last
    /// occurrence on or before `after`.
    pub fn projected(&self, after: NaiveDate, until: NaiveDate) -> Vec<NaiveDate> {
        let Some(mut d) = self
            .occurrences
            .iter()
            .rev()
            .find(|d| **d <= after)
            .copied()
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            d = self.cadence.step(d, self.day_of_month);
            if d > until {
                return out;
            }
            if d > after {
                out.push(d);
            }
        }
    }

    /// A name usable as a Prophet holiday: `rec_<cadence>_<key>`.
    pub fn name(&self) -> String {
        let slug: String = self
            .key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        format!("rec_{}_{}_{}", self.cadence.as_str(), self.direction, slug)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Finds recurring patterns in `events`, ordered by account, currency and key.
pub fn detect(events: &[Event], cfg: &RecurringConfig) -> Vec<Recurring> {
    type GroupKey<'a> = (&'a str, &'a str, bool, &'a str);
    let mut groups: BTreeMap<GroupKey, BTreeMap<NaiveDate, (f64, Vec<&str>)>> = BTreeMap::new();
    for e in events {
        if e.key.is_empty() || e.amount == 0.0 {
            continue;
        }
        let g = groups
            .entry((&e.account_id, &e.currency, e.amount > 0.0, &e.key))
            .or_default();
        let day = g.entry(e.date).or_insert((0.0, Vec::new()));
        day.0 += e.amount;
        if let Some(c) = e.category.as_deref().filter(|c| !c.is_empty()) {
            day.1.push(c);
        }
    }
    let mut out = Vec::new();
    for ((account, currency, inflow, key), days) in groups {
        if days.len() < cfg.min_occurrences.max(2) {
            continue;
        }
        let dates: Vec<NaiveDate> = days.keys().copied().collect();
        let gaps: Vec<i64> = dates.windows(2).map(|w| (w[1] - w[0]).num_days()).collect();
        let need = cfg.min_share * gaps.len() as f64;
        let Some(cadence) = Cadence::ALL.into_iter().find(|c| {
            gaps.iter()
                .filter(|g| c.matches(**g, cfg.day_tolerance))
                .count() as f64
                >= need
        }) else {
            continue;
        };
        let mut amounts: Vec<f64> = days.values().map(|d| d.0).collect();
        let m = median(&mut amounts.clone());
        let similar = amounts
            .iter()
            .filter(|a| (**a - m).abs() <= cfg.amount_tolerance * m.abs())
            .count();
        if (similar as f64) < cfg.min_share * amounts.len() as f64 {
            continue;
        }
        let mut doms: Vec<f64> = dates.iter().map(|d| d.day() as f64).collect();
        let day_of_month = median(&mut doms).round() as u32;
        let mut cats: BTreeMap<&str, usize> = BTreeMap::new();
        for c in days.values().flat_map(|d| d.1.iter()) {
            *cats.entry(c).or_default() += 1;
        }
        let category = cats
            .iter()
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
            .map(|(c, _)| c.to_string());
        amounts.clear();
        let last = *dates.last().expect("non-empty");
        out.push(Recurring {
            account_id: account.to_string(),
            currency: currency.to_string(),
            key: key.to_string(),
            category,
            direction: if inflow { "inflow" } else { "outflow" },
            cadence,
            day_of_month,
            amount: m,
            next_expected: cadence.step(last, day_of_month),
            occurrences: dates,
        });
    }
    out
}

/// Prophet holidays for `patterns`: each pattern is one event (its own
/// name) on its occurrences up to `train_end` and on its projected dates
/// after `train_end` up to `until`.
pub fn holiday_rows(
    patterns: &[&Recurring],
    train_end: NaiveDate,
    until: NaiveDate,
) -> Vec<HolidayRow> {
    let mut rows = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let name = format!("{}_{i}", p.name());
        let past = p.occurrences.iter().copied().filter(|d| *d <= train_end);
        for ds in past.chain(p.projected(train_end, until)) {
            rows.push(HolidayRow {
                name: name.clone(),
                ds,
                lower_window: 0,
                upper_window: 0,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn ev(date: NaiveDate, key: &str, amount: f64) -> Event {
        Event {
            date,
            account_id: "a".into(),
            currency: "NGN".into(),
            key: key.into(),
            category: Some("Payroll".into()),
            amount,
        }
    }

    #[test]
    fn monthly_steps_keep_the_day_of_month() {
        assert_eq!(Cadence::Monthly.step(d("2024-01-31"), 31), d("2024-02-29"));
        assert_eq!(Cadence::Monthly.step(d("2024-02-29"), 31), d("2024-03-31"));
        assert_eq!(
            Cadence::Quarterly.step(d("2024-01-21"), 21),
            d("2024-04-21")
        );
        assert_eq!(Cadence::Weekly.step(d("2024-01-01"), 1), d("2024-01-08"));
    }

    #[test]
    fn finds_monthly_and_ignores_irregular() {
        let mut events = Vec::new();
        let mut day = d("2023-01-25");
        for i in 0..12 {
            events.push(ev(day, "payroll", -1000.0 - i as f64));
            day = Cadence::Monthly.step(day, 25);
        }
        // Irregular gaps: 3, 40, 9, 70 days.
        for date in [
            "2023-01-02",
            "2023-01-05",
            "2023-02-14",
            "2023-02-23",
            "2023-05-04",
        ] {
            events.push(ev(d(date), "supplies", -50.0));
        }
        let found = detect(&events, &RecurringConfig::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let p = &found[0];
        assert_eq!(p.cadence, Cadence::Monthly);
        assert_eq!(p.day_of_month, 25);
        assert_eq!(p.next_expected, d("2024-01-25"));
        assert_eq!(p.direction, "outflow");
        assert!(p.active(d("2024-01-10")));
        assert!(!p.active(d("2024-06-01")));
        assert_eq!(
            p.projected(d("2023-12-31"), d("2024-03-01")),
            vec![d("2024-01-25"), d("2024-02-25")]
        );
        let rows = holiday_rows(&[p], d("2023-06-30"), d("2023-08-31"));
        assert_eq!(rows.len(), 6 + 2);
        assert_eq!(rows.last().unwrap().ds, d("2023-08-25"));
    }

    #[test]
    fn amounts_must_be_similar() {
        let mut events = Vec::new();
        let mut day = d("2023-01-01");
        for i in 0..10 {
            events.push(ev(day, "transfer", if i % 2 == 0 { -10.0 } else { -900.0 }));
            day += Duration::days(7);
        }
        assert!(detect(&events, &RecurringConfig::default()).is_empty());
    }
}

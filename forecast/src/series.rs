//! Daily series from transactions: per account net flow (and balance), per
//! category outflow, and the organisation's net flow (and balance) per
//! currency. Every series runs over consecutive days from its first
//! transaction to the common end date; days without transactions are zero
//! flow, not missing.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::model::Series;

/// One transaction as the series need it. `amount` is signed (inflow
/// positive) in the currency's major unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    pub date: NaiveDate,
    pub account_id: String,
    pub currency: String,
    pub category: Option<String>,
    pub amount: f64,
}

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An account's daily net flow (inflow - outflow).
    AccountNetFlow,
    /// A category's daily outflow (a positive number).
    CategoryOutflow,
    /// The organisation's daily net flow in one currency.
    OrgNetFlow,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AccountNetFlow => "account_net_flow",
            Kind::CategoryOutflow => "category_outflow",
            Kind::OrgNetFlow => "org_net_flow",
        }
    }

    /// The balance series derived from this flow, if any.
    pub fn balance_name(self) -> Option<&'static str> {
        match self {
            Kind::AccountNetFlow => Some("account_balance"),
            Kind::OrgNetFlow => Some("org_balance"),
            Kind::CategoryOutflow => None,
        }
    }
}

/// Identifies a series: its kind, currency and the account or category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub kind: Kind,
    pub currency: String,
    /// Account id for account series, category for category series, empty
    /// for the organisation.
    pub subject: String,
}

impl SeriesKey {
    /// A stable text id, e.g. `account_net_flow/NGN/acc-1`.
    pub fn id(&self) -> String {
        if self.subject.is_empty() {
            format!("{}/{}", self.kind.as_str(), self.currency)
        } else {
            format!("{}/{}/{}", self.kind.as_str(), self.currency, self.subject)
        }
    }
}

/// Builds all series from `txns`, each ending on `end` (default: the last
/// transaction date of its currency). Categories missing on a transaction
/// count as `uncategorized`.
pub fn build(txns: &[Txn], end: Option<NaiveDate>) -> BTreeMap<SeriesKey, Series> {
    // Sum per (key, day).
    let mut sums: BTreeMap<SeriesKey, BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    let mut last_by_currency: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for t in txns {
        let last = last_by_currency.entry(&t.currency).or_insert(t.date);
        *last = (*last).max(t.date);
        let mut add = |kind, subject: &str, v: f64| {
            *sums
                .entry(SeriesKey {
                    kind,
                    currency: t.currency.clone(),
                    subject: subject.to_string(),
                })
                .or_default()
                .entry(t.date)
                .or_insert(0.0) += v;
        };
        add(Kind::AccountNetFlow, &t.account_id, t.amount);
        add(Kind::OrgNetFlow, "", t.amount);
        if t.amount < 0.0 {
            let cat = t
                .category
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or("uncategorized");
            add(Kind::CategoryOutflow, cat, -t.amount);
        }
    }
    sums.into_iter()
        .map(|(key, days)| {
            let first = *days.keys().next().expect("non-empty");
            let last = end.unwrap_or(last_by_currency[key.currency.as_str()]);
            (key, dense(first, last, &days))
        })
        .collect()
}

/// Consecutive days `first..=last`, zero where `days` has no value. Values
/// after `last` are dropped.
pub fn dense(first: NaiveDate, last: NaiveDate, days: &BTreeMap<NaiveDate, f64>) -> Series {
    let mut s = Series::default();
    let mut d = first;
    while d <= last {
        s.ds.push(d);
        s.y.push(days.get(&d).copied().unwrap_or(0.0));
        d = d.succ_opt().expect("date in range");
    }
    s
}

/// Running balance: `opening` plus the cumulative flow.
pub fn balance(flow: &Series, opening: f64) -> Series {
    let mut acc = opening;
    Series {
        ds: flow.ds.clone(),
        y: flow
            .y
            .iter()
            .map(|v| {
                acc += v;
                acc
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn fills_missing_days_with_zero() {
        let t = |date: &str, acc: &str, amount: f64, cat: Option<&str>| Txn {
            date: d(date),
            account_id: acc.into(),
            currency: "NGN".into(),
            category: cat.map(String::from),
            amount,
        };
        let txns = vec![
            t("2024-01-01", "a", 100.0, None),
            t("2024-01-04", "a", -30.0, Some("Rent")),
            t("2024-01-04", "b", -5.0, None),
            t("2024-01-02", "b", 7.0, None),
        ];
        let all = build(&txns, None);
        let key = |kind, s: &str| SeriesKey {
            kind,
            currency: "NGN".into(),
            subject: s.into(),
        };
        let a = &all[&key(Kind::AccountNetFlow, "a")];
        assert_eq!(a.y, vec![100.0, 0.0, 0.0, -30.0]);
        let b = &all[&key(Kind::AccountNetFlow, "b")];
        assert_eq!(b.ds[0], d("2024-01-02"));
        assert_eq!(b.y, vec![7.0, 0.0, -5.0]);
        assert_eq!(
            all[&key(Kind::OrgNetFlow, "")].y,
            vec![100.0, 7.0, 0.0, -35.0]
        );
        assert_eq!(all[&key(Kind::CategoryOutflow, "Rent")].y, vec![30.0]);
        assert_eq!(
            all[&key(Kind::CategoryOutflow, "uncategorized")].y,
            vec![5.0]
        );
        assert_eq!(balance(a, 10.0).y, vec![110.0, 110.0, 110.0, 80.0]);
        // An explicit end extends every series with zero days.
        let ext = build(&txns, Some(d("2024-01-06")));
        assert_eq!(
            ext[&key(Kind::CategoryOutflow, "Rent")].y,
            vec![30.0, 0.0, 0.0]
        );
    }
}

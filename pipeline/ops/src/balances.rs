//! Balance anchors: known account balances at a date, from which balance
//! series and their projections start.
//!
//! An anchor says "account A held B (its currency) at the end of day D".
//! They come from three places, latest date first per account:
//!
//! - the `account_balances` table, filled by `finopsia balance set` (and
//!   later by a bank-statement import; `finopsia run --sample` adds the
//!   sample's made-up anchors with `source = 'sample'`);
//! - `[[forecast.anchors]]` in the configuration;
//! - `forecast.opening_balances` (the balance the day before an account's
//!   first transaction), the older way of saying the same.
//!
//! A balance is then the anchor plus the flows of the days after it. An
//! account without any anchor has no known balance: its balance series is
//! the cumulative flow from the last day of data (`balance_basis = 'flows
//! only'`) and it gets no runway.
//!
//! What is committed where: one Delta append to `account_balances` per
//! `set` (a row is never updated; the latest `recorded_at` for an account
//! and date wins). Nothing else is stored, so a crash leaves either the
//! whole row or nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use finopsia_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The table anchors are stored in.
pub const TABLE: &str = "account_balances";

/// Schema of `account_balances`.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("as_of", DataType::Date32, false),
        Field::new("balance_minor", DataType::Int64, false),
        Field::new("balance", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("recorded_at", finopsia_core::schema::ts_type(), false),
    ]))
});

/// One anchor as configured in `[[forecast.anchors]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorConfig {
    pub account: String,
    /// ISO date: the balance at the end of this day.
    pub as_of: String,
    /// Decimal text in major units, e.g. "1500000.00" or "-20.5".
    pub balance: String,
}

/// A known balance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anchor {
    pub account_id: String,
    /// Empty for anchors from the configuration (the account's currency).
    pub currency: String,
    pub as_of: NaiveDate,
    /// Major units (exact decimal in `text`).
    pub balance: f64,
    pub text: String,
    /// `cli`, `sample`, `config`, `opening_balances`, …
    pub source: String,
    pub note: Option<String>,
}

const EPOCH_DAYS_CE: i32 = 719_163;

fn to_days(d: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_CE
}

fn from_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_CE).expect("date in range")
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Parses a signed decimal amount in major units to minor units of a
/// currency with `exponent` decimals, exactly.
pub fn parse_signed(text: &str, exponent: u8) -> Result<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let minor = finopsia_core::money::parse_amount(
        digits,
        finopsia_core::money::AmountUnit::Major,
        exponent,
    )
    .map_err(|e| Error::Input {
        file: "balance".into(),
        message: format!(
            "{text:?} is not a decimal amount with at most {exponent} decimals ({})",
            match e {
                finopsia_core::money::AmountError::Syntax => "syntax",
                finopsia_core::money::AmountError::Precision => "too many decimals",
                finopsia_core::money::AmountError::Range => "out of range",
            }
        ),
    })?;
    Ok(if neg { -minor } else { minor })
}

/// Parses an ISO date (`YYYY-MM-DD`).
pub fn parse_date(text: &str) -> Result<NaiveDate> {
    text.trim().parse().map_err(|_| Error::Input {
        file: "balance".into(),
        message: format!("{text:?} is not a date like 2025-06-30"),
    })
}

/// The anchors of `[[forecast.anchors]]`.
pub fn from_config(anchors: &[AnchorConfig]) -> Result<Vec<Anchor>> {
    anchors
        .iter()
        .map(|a| {
            let name = format!("forecast.anchors ({})", a.account);
            if a.account.trim().is_empty() {
                return Err(Error::Config(format!("{name}: account must not be empty")));
            }
            let as_of =
                parse_date(&a.as_of).map_err(|e| Error::Config(format!("{name}: as_of: {e}")))?;
            let balance = crate::config::ForecastConfig::major(&name, &a.balance)?;
            Ok(Anchor {
                account_id: a.account.clone(),
                currency: String::new(),
                as_of,
                balance,
                text: a.balance.trim().to_string(),
                source: "config".into(),
                note: None,
            })
        })
        .collect()
}

/// The currencies `account` has transactions in.
async fn account_currencies(store: &mut Store, account: &str) -> Result<Vec<String>> {
    if !store.exists("transactions") {
        return Ok(Vec::new());
    }
    let batches = store
        .query(&format!(
            "SELECT DISTINCT CAST(currency AS VARCHAR) AS c FROM transactions WHERE account_id = {} ORDER BY c",
            sql_str(account)
        ))
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let c = c.as_string::<i32>();
        for i in 0..b.num_rows() {
            if !c.is_null(i) {
                out.push(c.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// Records that `account` held `balance` (major units, decimal text) at the
/// end of `as_of`. The currency defaults to the one the account's
/// transactions are in.
pub async fn set(
    store: &mut Store,
    account: &str,
    balance: &str,
    as_of: NaiveDate,
    currency: Option<&str>,
    source: &str,
    note: Option<&str>,
) -> Result<Anchor> {
    let account = account.trim();
    if account.is_empty() {
        return Err(Error::Input {
            file: "balance".into(),
            message: "the account id must not be empty".into(),
        });
    }
    let currency = match currency {
        Some(c) => c.trim().to_ascii_uppercase(),
        None => {
            let found = account_currencies(store, account).await?;
            match found.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::Input {
                        file: "balance".into(),
                        message: format!(
                            "account {account:?} has no transactions: pass --currency"
                        ),
                    })
                }
                many => {
                    return Err(Error::Input {
                        file: "balance".into(),
                        message: format!(
                            "account {account:?} has transactions in {}: pass --currency",
                            many.join(", ")
                        ),
                    })
                }
            }
        }
    };
    let exponent =
        finopsia_udf_core::currency::exponent(&currency).ok_or_else(|| Error::Input {
            file: "balance".into(),
            message: format!("{currency:?} is not an ISO 4217 currency code"),
        })?;
    let minor = parse_signed(balance, exponent)?;
    let text = finopsia_udf_core::currency::format_minor(minor, exponent);
    let now = chrono::Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        SCHEMA.clone(),
        vec![
            Arc::new(StringArray::from(vec![account])) as ArrayRef,
            Arc::new(StringArray::from(vec![currency.as_str()])),
            Arc::new(Date32Array::from(vec![to_days(as_of)])),
            Arc::new(Int64Array::from(vec![minor])),
            Arc::new(StringArray::from(vec![text.as_str()])),
            Arc::new(StringArray::from(vec![source])),
            Arc::new(StringArray::from(vec![note])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )?;
    store.ensure(TABLE, SCHEMA.clone()).await?;
    store.append(TABLE, vec![batch], None).await?;
    Ok(Anchor {
        account_id: account.to_string(),
        balance: minor as f64 / 10f64.powi(exponent as i32),
        currency,
        as_of,
        text,
        source: source.to_string(),
        note: note.map(String::from),
    })
}

/// The stored anchors: the latest recorded per account and date, ordered
/// by account and date.
pub async fn stored(store: &mut Store) -> Result<Vec<Anchor>> {
    if !store.exists(TABLE) {
        return Ok(Vec::new());
    }
    let batches = store
        .query(&format!(
            "SELECT account_id, currency, CAST(as_of AS INT) AS d, balance_minor, balance, source, note \
             FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account_id, as_of ORDER BY recorded_at DESC) AS rn \
                   FROM {TABLE}) WHERE rn = 1 ORDER BY account_id, as_of"
        ))
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let s = |i: usize| -> Result<StringArray> {
            let c = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)?;
            Ok(c.as_string::<i32>().clone())
        };
        let (acc, cur, text, src, note) = (s(0)?, s(1)?, s(4)?, s(5)?, s(6)?);
        let d = datafusion::arrow::compute::cast(b.column(2), &DataType::Int32)?;
        let d = d.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let m = datafusion::arrow::compute::cast(b.column(3), &DataType::Int64)?;
        let m = m.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            let exp = finopsia_udf_core::currency::exponent(cur.value(i)).unwrap_or(2);
            out.push(Anchor {
                account_id: acc.value(i).to_string(),
                currency: cur.value(i).to_string(),
                as_of: from_days(d.value(i)),
                balance: m.value(i) as f64 / 10f64.powi(exp as i32),
                text: text.value(i).to_string(),
                source: src.value(i).to_string(),
                note: (!note.is_null(i)).then(|| note.value(i).to_string()),
            });
        }
    }
    Ok(out)
}

/// The anchor each account's balance starts from: the latest `as_of` among
/// `anchors` (earlier entries win ties, so list the stored ones first).
pub fn latest(anchors: &[Anchor]) -> BTreeMap<String, Anchor> {
    let mut out: BTreeMap<String, Anchor> = BTreeMap::new();
    for a in anchors {
        match out.get(&a.account_id) {
            Some(b) if b.as_of >= a.as_of => {}
            _ => {
                out.insert(a.account_id.clone(), a.clone());
            }
        }
    }
    out
}

/// The balance at the end of the last day of `ds`/`flows` (consecutive
/// days, daily net flow), starting from `anchor`: its balance plus the
/// flows of the days after its date.
pub fn balance_at_end(anchor: &Anchor, ds: &[NaiveDate], flows: &[f64]) -> f64 {
    anchor.balance
        + ds.iter()
            .zip(flows)
            .filter(|(d, _)| **d > anchor.as_of)
            .map(|(_, y)| y)
            .sum::<f64>()
}

/// The bundled sample's made-up anchors (`source = 'sample'`), recorded
/// once: nothing is written when the table already holds sample anchors.
pub async fn load_sample(store: &mut Store) -> Result<usize> {
    if stored(store).await?.iter().any(|a| a.source == "sample") {
        return Ok(0);
    }
    let mut n = 0;
    for line in finopsia_core::SAMPLE_BALANCES_CSV.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let [account, currency, as_of, balance, note] = f.as_slice() {
            set(
                store,
                account,
                balance,
                parse_date(as_of)?,
                Some(currency),
                "sample",
                Some(note),
            )
            .await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(acc: &str, as_of: &str, balance: f64, source: &str) -> Anchor {
        Anchor {
            account_id: acc.into(),
            currency: "EUR".into(),
            as_of: as_of.parse().unwrap(),
            balance,
            text: balance.to_string(),
            source: source.into(),
            note: None,
        }
    }

    #[test]
    fn latest_anchor_and_flows_after_it() {
        let all = [
            anchor("a", "2025-01-03", 100.0, "cli"),
            anchor("a", "2025-01-01", 5.0, "config"),
            anchor("a", "2025-01-03", 7.0, "config"),
            anchor("b", "2024-12-31", 1.0, "opening_balances"),
        ];
        let l = latest(&all);
        assert_eq!(
            l["a"].balance, 100.0,
            "latest date; stored first wins a tie"
        );
        let ds: Vec<NaiveDate> = (1..=5)
            .map(|d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap())
            .collect();
        let flows = [1.0, 2.0, 4.0, 8.0, 16.0];
        // Days after the 3rd: 8 + 16.
        assert_eq!(balance_at_end(&l["a"], &ds, &flows), 124.0);
        // Before the first day: every flow counts.
        assert_eq!(balance_at_end(&l["b"], &ds, &flows), 32.0);
        assert_eq!(parse_signed("-12.5", 2).unwrap(), -1250);
        assert!(parse_signed("12.345", 2).is_err());
        assert_eq!(parse_signed("+3", 0).unwrap(), 3);
    }
}

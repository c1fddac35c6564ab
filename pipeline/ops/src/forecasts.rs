//! Forecast refresh over the store: builds the daily series from
//! `transactions`, detects recurring transactions, forecasts every series
//! whose data changed since its last forecast (all cores), and stores
//!
//! - `forecasts`: one row per series, run and forecast day (`ds, yhat,
//!   yhat_lower, yhat_upper`), every run kept;
//! - `forecast_runs`: one row per series and run: status, model, settings,
//!   training window, backtest scores, data fingerprint and, for balance
//!   series, the runway;
//! - `recurring`: the detected patterns (replaced by each refresh);
//! - `cash_13w`: per run and balance series (account, organisation), the
//!   13-week view of the served forecast.
//!
//! The views `forecast_runs_latest`, `forecasts_latest`, `cash_13w_latest`
//! and `runway` (see [`VIEWS`]) select the latest run of each series.
//!
//! What is committed where, in order: one refresh appends its rows to
//! `forecasts`, then `cash_13w`, then `forecast_runs`, then replaces
//! `recurring`. A run becomes visible only through its `forecast_runs` rows
//! (every view joins on them), so a crash before that append leaves
//! invisible rows and the next refresh, finding no run with the series'
//! fingerprint, fits it again. Balance anchors are read from
//! `account_balances` (see [`crate::balances`]), never written here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use finopsia_forecast::backtest::Score;
use finopsia_forecast::baseline::Baseline;
use finopsia_forecast::recurring::{self, Event, Recurring};
use finopsia_forecast::refresh::{self, Job, Outcome, Status};
use finopsia_forecast::series::{self, Kind, SeriesKey, Txn};
use finopsia_forecast::weekly::{self, Gross};
use finopsia_forecast::{Forecast, Forecaster, Params, Series};
use serde::Serialize;

use crate::balances;
use crate::config::ForecastConfig;
use crate::error::{Error, Result};
use finopsia_store::{Store, View};

const EPOCH_DAYS_CE: i32 = 719_163;

fn to_days(d: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_CE
}

fn from_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_CE).expect("date in range")
}

/// One line of the refresh summary.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub series_id: String,
    pub status: &'static str,
    pub model: Option<&'static str>,
    pub refitted: bool,
    pub history_days: usize,
    pub holidays: usize,
    /// Sum of the forecast over the next 30 days (flow series).
    pub next_30_days: Option<f64>,
    pub backtest_mae: Option<f64>,
    pub backtest_smape: Option<f64>,
    pub backtest_coverage: Option<f64>,
    /// Mean absolute error of weekly totals in the backtest.
    pub backtest_weekly_mae: Option<f64>,
    /// The best baseline on the same folds, and the model's skill over it
    /// (1 − weekly error / the baseline's; below 0: the baseline is better).
    pub backtest_baseline: Option<&'static str>,
    pub backtest_skill: Option<f64>,
    /// Interval rescaling from the backtest (1: coverage was within the
    /// margin) and the folds' coverage with it.
    pub interval_scale: Option<f64>,
    pub calibrated_coverage: Option<f64>,
    /// The balance at the end of the data (anchored balance series only).
    pub last_balance: Option<f64>,
    /// `anchored` or `flows only` (balance series only).
    pub balance_basis: Option<&'static str>,
    pub lowest_balance: Option<f64>,
    pub lowest_date: Option<NaiveDate>,
    pub below_threshold_date: Option<NaiveDate>,
    pub lower_below_threshold_date: Option<NaiveDate>,
    pub error: Option<String>,
}

/// What `finopsia forecast` did.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub run_id: i64,
    pub series: usize,
    pub refitted: usize,
    pub unchanged: usize,
    pub short_history: usize,
    pub failed: usize,
    pub recurring_patterns: usize,
    pub seconds: f64,
    pub rows: Vec<SummaryRow>,
}

impl RefreshReport {
    /// A plain-text table of the series and their runway.
    pub fn table(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
        let d = |v: Option<NaiveDate>| v.map_or("-".to_string(), |v| v.to_string());
        let mut out = format!(
            "{:<44} {:<13} {:<16} {:>5} {:>16} {:>14} {:>6} {:>9} {:>6} {:<16} {:>16} {:>10} {:>10}\n",
            "series",
            "status",
            "model",
            "days",
            "next 30 days",
            "backtest MAE",
            "sMAPE",
            "cover",
            "skill",
            "best baseline",
            "lowest balance",
            "on",
            "below on"
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:<44} {:<13} {:<16} {:>5} {:>16} {:>14} {:>6} {:>9} {:>6} {:<16} {:>16} {:>10} {:>10}{}\n",
                r.series_id,
                r.status,
                r.model.unwrap_or("-"),
                r.history_days,
                f(r.next_30_days),
                f(r.backtest_mae),
                pct(r.backtest_smape.map(|v| v / 2.0)),
                match (r.backtest_coverage, r.interval_scale, r.calibrated_coverage) {
                    (Some(raw), Some(s), Some(cal)) if s != 1.0 =>
                        format!("{}>{}", pct(Some(raw)), pct(Some(cal))),
                    (raw, _, _) => pct(raw),
                },
                pct(r.backtest_skill),
                r.backtest_baseline.unwrap_or("-"),
                f(r.lowest_balance),
                d(r.lowest_date),
                d(r.below_threshold_date.or(r.lower_below_threshold_date)),
                if r.refitted { "" } else { "  (unchanged)" },
            ));
            if let Some(e) = &r.error {
                out.push_str(&format!("    error: {e}\n"));
            }
        }
        out.push_str(&format!(
            "{} series: {} refitted, {} unchanged, {} short history, {} failed; {} recurring patterns; {:.1} s\n",
            self.series,
            self.refitted,
            self.unchanged,
            self.short_history,
            self.failed,
            self.recurring_patterns,
            self.seconds
        ));
        out
    }
}

/// Transactions as the forecasts read them.
struct Loaded {
    txns: Vec<Txn>,
    events: Vec<Event>,
}

fn strings(col: &ArrayRef) -> Result<StringArray> {
    let c = datafusion::arrow::compute::cast(col, &DataType::Utf8)?;
    Ok(c.as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8")
        .clone())
}

async fn load(store: &mut Store) -> Result<Loaded> {
    if !store.exists("transactions") {
        return Err(Error::Config(
            "no transactions in the store yet (import data first, or pass --data-dir)".into(),
        ));
    }
    let batches = store
        .query(
            "SELECT CAST(CAST(event_time AS DATE) AS INT) AS day, account_id, currency, category, \
             amount_minor, COALESCE(NULLIF(counterparty, ''), description) AS label \
             FROM transactions WHERE amount_minor IS NOT NULL AND event_time IS NOT NULL",
        )
        .await?;
    let mut out = Loaded {
        txns: Vec::new(),
        events: Vec::new(),
    };
    let mut norm_cache: HashMap<String, String> = HashMap::new();
    for b in &batches {
        let day = datafusion::arrow::compute::cast(b.column(0), &DataType::Int32)?;
        let day = day
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int32Array>()
            .expect("int32");
        let account = strings(b.column(1))?;
        let currency = strings(b.column(2))?;
        let category = strings(b.column(3))?;
        let amount = datafusion::arrow::compute::cast(b.column(4), &DataType::Int64)?;
        let amount = amount.as_any().downcast_ref::<Int64Array>().expect("i64");
        let label = strings(b.column(5))?;
        for i in 0..b.num_rows() {
            let cur = currency.value(i);
            let exp = finopsia_udf_core::currency::exponent(cur).unwrap_or(2);
            // Signed (inflow positive), major units.
            let major = amount.value(i) as f64 / 10f64.powi(exp as i32);
            let date = from_days(day.value(i));
            let cat = (!category.is_null(i)).then(|| category.value(i).to_string());
            let raw = if label.is_null(i) { "" } else { label.value(i) };
            let key = match norm_cache.get(raw) {
                Some(k) => k.clone(),
                None => {
                    let k = finopsia_udf_core::text::normalize_description(raw);
                    norm_cache.insert(raw.to_string(), k.clone());
                    k
                }
            };
            out.events.push(Event {
                date,
                account_id: account.value(i).to_string(),
                currency: cur.to_string(),
                key,
                category: cat.clone(),
                amount: major,
            });
            out.txns.push(Txn {
                date,
                account_id: account.value(i).to_string(),
                currency: cur.to_string(),
                category: cat,
                amount: major,
            });
        }
    }
    Ok(out)
}

/// The patterns that affect a series, largest total amount first.
fn patterns_for(key: &SeriesKey, all: &[Recurring], max: usize) -> Vec<Recurring> {
    let mut v: Vec<&Recurring> = all
        .iter()
        .filter(|r| r.currency == key.currency)
        .filter(|r| match key.kind {
            Kind::AccountNetFlow => r.account_id == key.subject,
            Kind::OrgNetFlow => true,
            Kind::CategoryOutflow => {
                r.direction == "outflow" && r.category.as_deref() == Some(key.subject.as_str())
            }
        })
        .collect();
    v.sort_by(|a, b| {
        let w = |r: &Recurring| r.amount.abs() * r.occurrences.len() as f64;
        w(b).total_cmp(&w(a))
    });
    v.into_iter().take(max).cloned().collect()
}

fn fingerprint(
    series: &Series,
    patterns: &[Recurring],
    settings: &str,
    balance: Option<f64>,
    basis: Option<Basis>,
) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(settings.as_bytes());
    for (d, y) in series.ds.iter().zip(&series.y) {
        h.update(&to_days(*d).to_le_bytes());
        h.update(&y.to_bits().to_le_bytes());
    }
    for p in patterns {
        h.update(p.name().as_bytes());
        for d in &p.occurrences {
            h.update(&to_days(*d).to_le_bytes());
        }
    }
    if let Some(b) = balance {
        h.update(&b.to_bits().to_le_bytes());
    }
    if let Some(Basis::Anchored { as_of, anchor, .. }) = basis {
        h.update(&to_days(as_of).to_le_bytes());
        h.update(&anchor.to_bits().to_le_bytes());
    }
    h.digest() as i64
}

/// Where a balance series starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Basis {
    /// From an anchor: `anchor` at the end of `as_of` (summed over accounts
    /// for the organisation, `as_of` the latest), `balance` at the end of
    /// the data.
    Anchored {
        balance: f64,
        as_of: NaiveDate,
        anchor: f64,
    },
    /// No anchor: the cumulative flow from the last day of data.
    FlowsOnly,
}

impl Basis {
    fn as_str(self) -> &'static str {
        match self {
            Basis::Anchored { .. } => "anchored",
            Basis::FlowsOnly => "flows only",
        }
    }
}

/// What the latest successful run of a series left.
struct Previous {
    fingerprint: i64,
    backtest: Option<Score>,
    backtest_at_us: Option<i64>,
    /// Prophet's parameters, to warm-start the next fit.
    params: Option<Params>,
}

/// The backtest columns added with the baselines (name, SQL type), in the
/// order `previous_runs` reads them.
const SKILL_COLUMNS: [(&str, &str); 10] = [
    ("backtest_weekly_mae", "DOUBLE"),
    ("backtest_total_error", "DOUBLE"),
    ("backtest_wape", "DOUBLE"),
    ("backtest_mase", "DOUBLE"),
    ("backtest_baseline", "VARCHAR"),
    ("baseline_weekly_mae", "DOUBLE"),
    ("baseline_total_error", "DOUBLE"),
    ("backtest_skill", "DOUBLE"),
    ("interval_scale", "DOUBLE"),
    ("calibrated_coverage", "DOUBLE"),
];

/// The latest successful run per series id from `forecast_runs`.
async fn previous_runs(store: &mut Store) -> Result<HashMap<String, Previous>> {
    let mut out = HashMap::new();
    if !store.exists("forecast_runs") {
        return Ok(out);
    }
    let ctx = store.context().await?;
    // Columns added by later versions are NULL in runs written before them.
    let schema = ctx.table("forecast_runs").await?.schema().clone();
    let has = |c: &str| schema.has_column_with_unqualified_name(c);
    let backtest_at = if has("backtest_at") {
        "CAST(backtest_at AS BIGINT)"
    } else {
        "CAST(NULL AS BIGINT)"
    };
    let params = if has("params") {
        "params"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    // Cash-planning scores and skill (NULL before they were recorded).
    let extra: Vec<String> = SKILL_COLUMNS
        .iter()
        .map(|(c, t)| {
            if has(c) {
                c.to_string()
            } else {
                format!("CAST(NULL AS {t}) AS {c}")
            }
        })
        .collect();
    let extra = extra.join(", ");
    let sql = format!(
        "SELECT series_id, fingerprint, backtest_mae, backtest_smape, backtest_coverage, \
         backtest_days, {backtest_at}, {params}, {extra} FROM forecast_runs r JOIN \
         (SELECT series_id AS sid, MAX(run_id) AS rid FROM forecast_runs \
          WHERE status IN ('ok', 'short_history', 'fallback') GROUP BY series_id) l \
         ON r.series_id = l.sid AND r.run_id = l.rid"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    for b in &batches {
        let ids = strings(b.column(0))?;
        let col = |i: usize| -> Result<Float64Array> {
            let c = datafusion::arrow::compute::cast(b.column(i), &DataType::Float64)?;
            Ok(c.as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64")
                .clone())
        };
        let icol = |i: usize| -> Result<Int64Array> {
            let c = datafusion::arrow::compute::cast(b.column(i), &DataType::Int64)?;
            Ok(c.as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64")
                .clone())
        };
        let (fp, mae, smape, cov, days, at) =
            (icol(1)?, col(2)?, col(3)?, col(4)?, icol(5)?, icol(6)?);
        let params = strings(b.column(7))?;
        let (weekly, total, wape, mase) = (col(8)?, col(9)?, col(10)?, col(11)?);
        let baseline = strings(b.column(12))?;
        let (b_weekly, b_total, skill) = (col(13)?, col(14)?, col(15)?);
        let (scale, calibrated) = (col(16)?, col(17)?);
        let opt = |a: &Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
        for i in 0..b.num_rows() {
            if fp.is_null(i) {
                continue;
            }
            let backtest = (!mae.is_null(i)).then(|| Score {
                mae: mae.value(i),
                smape: smape.value(i),
                coverage: cov.value(i),
                days: if days.is_null(i) {
                    0
                } else {
                    days.value(i) as usize
                },
                weekly_mae: opt(&weekly, i),
                total_error: opt(&total, i),
                wape: opt(&wape, i),
                mase: opt(&mase, i),
                baseline: (!baseline.is_null(i))
                    .then(|| Baseline::parse(baseline.value(i)))
                    .flatten(),
                baseline_weekly_mae: opt(&b_weekly, i),
                baseline_total_error: opt(&b_total, i),
                skill: opt(&skill, i),
                interval_scale: opt(&scale, i),
                calibrated_coverage: opt(&calibrated, i),
            });
            out.insert(
                ids.value(i).to_string(),
                Previous {
                    fingerprint: fp.value(i),
                    backtest,
                    backtest_at_us: (!at.is_null(i)).then(|| at.value(i)),
                    // Unreadable parameters only cost a cold start.
                    params: (!params.is_null(i))
                        .then(|| serde_json::from_str(params.value(i)).ok())
                        .flatten(),
                },
            );
        }
    }
    Ok(out)
}

/// Refreshes forecasts in the store under `data_dir`.
pub async fn refresh(
    data_dir: &Path,
    cfg: &ForecastConfig,
    all: bool,
    progress: bool,
) -> Result<RefreshReport> {
    let mut store = Store::open(data_dir)?.with_views(VIEWS);
    let fx = tokio::task::spawn_blocking(Forecaster::new)
        .await
        .map_err(|e| Error::Config(format!("forecaster start-up: {e}")))?;
    refresh_store(&mut store, &fx, cfg, all, progress).await
}

/// Refreshes forecasts in `store` with an existing forecaster.
pub async fn refresh_store(
    store: &mut Store,
    fx: &Forecaster,
    cfg: &ForecastConfig,
    all: bool,
    progress: bool,
) -> Result<RefreshReport> {
    cfg.validate()?;
    let started = Instant::now();
    let run_at_us = chrono::Utc::now().timestamp_micros();
    let run_id = run_at_us;
    let loaded = load(store).await?;
    let all_series = series::build(&loaded.txns, None);
    let patterns = recurring::detect(&loaded.events, &cfg.recurring);
    let threshold = cfg.threshold()?;
    let rc = cfg.refresh_config();
    let settings_json = serde_json::to_string(&rc).expect("settings serialize");
    // Balance anchors: stored ones first (they win ties), then the
    // configured ones, then opening balances (the day before an account's
    // first transaction).
    let mut anchors = balances::stored(store).await?;
    anchors.extend(balances::from_config(&cfg.anchors)?);
    for (acc, v) in &cfg.opening_balances {
        let first = all_series
            .iter()
            .filter(|(k, _)| k.kind == Kind::AccountNetFlow && &k.subject == acc)
            .filter_map(|(_, s)| s.ds.first().copied())
            .min();
        if let Some(first) = first {
            anchors.push(balances::Anchor {
                account_id: acc.clone(),
                currency: String::new(),
                as_of: first.pred_opt().expect("date in range"),
                balance: ForecastConfig::major("opening balance", v)?,
                text: v.clone(),
                source: "opening_balances".into(),
                note: None,
            });
        }
    }
    let latest = balances::latest(&anchors);
    // Each account's balance at the end of its data, when anchored; the
    // organisation's per currency when every account in it is.
    let mut account_balance: BTreeMap<String, Basis> = BTreeMap::new();
    let mut org_balance: BTreeMap<String, Basis> = BTreeMap::new();
    for (key, s) in all_series
        .iter()
        .filter(|(k, _)| k.kind == Kind::AccountNetFlow)
    {
        let basis = match latest.get(&key.subject) {
            Some(a) => Basis::Anchored {
                balance: balances::balance_at_end(a, &s.ds, &s.y),
                as_of: a.as_of,
                anchor: a.balance,
            },
            None => Basis::FlowsOnly,
        };
        let org = org_balance
            .entry(key.currency.clone())
            .or_insert(Basis::Anchored {
                balance: 0.0,
                as_of: NaiveDate::MIN,
                anchor: 0.0,
            });
        *org = match (&*org, &basis) {
            (
                Basis::Anchored {
                    balance,
                    as_of,
                    anchor,
                },
                Basis::Anchored {
                    balance: b,
                    as_of: d,
                    anchor: a,
                },
            ) => Basis::Anchored {
                balance: balance + b,
                as_of: (*as_of).max(*d),
                anchor: anchor + a,
            },
            _ => Basis::FlowsOnly,
        };
        account_balance.insert(key.subject.clone(), basis);
    }
    let previous = previous_runs(store).await?;
    let backtest_every = cfg.backtest_interval().as_micros() as i64;

    let mut jobs = Vec::new();
    let mut unchanged = Vec::new();
    for (key, s) in &all_series {
        let recurring = patterns_for(key, &patterns, cfg.max_recurring_per_series);
        let basis = match key.kind {
            Kind::AccountNetFlow => account_balance.get(&key.subject).copied(),
            Kind::OrgNetFlow => org_balance.get(&key.currency).copied(),
            Kind::CategoryOutflow => None,
        };
        // Without an anchor the "balance" is the cumulative flow from the
        // last day of data: a projected change, never a level.
        let balance = basis.map(|b| match b {
            Basis::Anchored { balance, .. } => balance,
            Basis::FlowsOnly => 0.0,
        });
        let fp = fingerprint(s, &recurring, &settings_json, balance, basis);
        let prev = previous.get(&key.id());
        if !all && prev.is_some_and(|p| p.fingerprint == fp) {
            unchanged.push((key.clone(), s.len()));
            continue;
        }
        // Backtests are costly (one fit per fold): rerun them once
        // `backtest_interval` has passed, else keep the last scores.
        let carried = prev.and_then(|p| {
            let at = p.backtest_at_us?;
            let due = all || run_at_us - at >= backtest_every;
            if due {
                None
            } else {
                Some((p.backtest?, at))
            }
        });
        // Warm-start from the previous fit, except with `--all` and when the
        // backtest is rerun: then from scratch, as an anchor.
        let cold = !cfg.warm_start || all || (cfg.backtest_folds > 0 && carried.is_none());
        jobs.push((
            fp,
            carried,
            basis,
            Job {
                key: key.clone(),
                series: s.clone(),
                recurring,
                balance,
                threshold,
                backtest: carried.is_none(),
                init: if cold {
                    None
                } else {
                    prev.and_then(|p| p.params.clone())
                },
                carried: carried.map(|c| c.0),
            },
        ));
    }

    let fps: Vec<i64> = jobs.iter().map(|j| j.0).collect();
    let carried: Vec<Option<(Score, i64)>> = jobs.iter().map(|j| j.1).collect();
    let bases: Vec<Option<Basis>> = jobs.iter().map(|j| j.2).collect();
    let jobs: Vec<Job> = jobs.into_iter().map(|j| j.3).collect();
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(jobs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "forecasting {bar:30} {pos}/{len} series ({per_sec}, eta {eta})",
            )
            .expect("template"),
        );
        b
    });
    let outcomes = {
        let fx = fx.clone();
        let bar2 = bar.clone();
        tokio::task::spawn_blocking(move || {
            let tick = move |done: usize, _total: usize| {
                if let Some(b) = &bar2 {
                    b.set_position(done as u64);
                }
            };
            let out = refresh::run(&fx, &rc, &jobs, &tick);
            (jobs, out)
        })
        .await
        .map_err(|e| Error::Config(format!("forecast workers: {e}")))?
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (jobs, mut outcomes) = outcomes;
    // Runway only where the balance is known.
    for (o, b) in outcomes.iter_mut().zip(&bases) {
        if *b == Some(Basis::FlowsOnly) {
            o.runway = None;
        }
    }
    // When each outcome's backtest scores were computed.
    let mut backtest_at = Vec::with_capacity(outcomes.len());
    for (o, c) in outcomes.iter_mut().zip(&carried) {
        match c {
            Some((score, at)) if o.backtest.is_none() && o.status != Status::Failed => {
                o.backtest = Some(*score);
                backtest_at.push(Some(*at));
            }
            _ => backtest_at.push(o.backtest.map(|_| run_at_us)),
        }
    }

    // Store.
    let cfg_rc = cfg.refresh_config();
    if !outcomes.is_empty() {
        let fc_batch = forecasts_batch(run_id, &outcomes)?;
        let runs = runs_batch(
            run_id,
            run_at_us,
            &cfg_rc,
            &settings_json,
            &jobs,
            &outcomes,
            &fps,
            &backtest_at,
            &bases,
        )?;
        let weeks = cash_13w_batch(run_id, &cfg_rc, &jobs, &outcomes, &bases, &loaded.txns)?;
        // `forecast_runs` last: it is what makes a run visible.
        store.append("forecasts", vec![fc_batch], None).await?;
        if weeks.num_rows() > 0 {
            store.append(CASH_13W, vec![weeks], None).await?;
        }
        store.append("forecast_runs", vec![runs], None).await?;
    }
    store
        .overwrite("recurring", recurring_batch(&patterns)?)
        .await?;

    let mut rows: Vec<SummaryRow> = jobs
        .iter()
        .zip(&outcomes)
        .zip(&bases)
        .map(|((j, o), b)| summary_row(j, o, *b))
        .collect();
    for (key, days) in &unchanged {
        rows.push(SummaryRow {
            series_id: key.id(),
            status: "ok",
            model: None,
            refitted: false,
            history_days: *days,
            holidays: 0,
            next_30_days: None,
            backtest_mae: None,
            backtest_smape: None,
            backtest_coverage: None,
            backtest_weekly_mae: None,
            backtest_baseline: None,
            backtest_skill: None,
            interval_scale: None,
            calibrated_coverage: None,
            last_balance: None,
            balance_basis: None,
            lowest_balance: None,
            lowest_date: None,
            below_threshold_date: None,
            lower_below_threshold_date: None,
            error: None,
        });
    }
    rows.sort_by(|a, b| a.series_id.cmp(&b.series_id));
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let report = RefreshReport {
        run_id,
        series: all_series.len(),
        refitted: outcomes.len(),
        unchanged: unchanged.len(),
        short_history: count(Status::ShortHistory),
        failed: count(Status::Failed),
        recurring_patterns: patterns.len(),
        seconds: started.elapsed().as_secs_f64(),
        rows,
    };
    tracing::info!(
        series = report.series,
        refitted = report.refitted,
        unchanged = report.unchanged,
        failed = report.failed,
        seconds = report.seconds,
        "forecasts refreshed"
    );
    Ok(report)
}

fn summary_row(job: &Job, o: &Outcome, basis: Option<Basis>) -> SummaryRow {
    let next_30 = o
        .forecast
        .as_ref()
        .map(|f| f.yhat.iter().take(30).sum::<f64>());
    SummaryRow {
        series_id: o.key.id(),
        status: o.status.as_str(),
        model: o.model.map(|m| m.as_str()),
        refitted: true,
        history_days: o
            .train_start
            .zip(o.train_end)
            .map_or(0, |(a, b)| (b - a).num_days() as usize + 1),
        holidays: o.holidays,
        next_30_days: next_30,
        backtest_mae: o.backtest.map(|b| b.mae),
        backtest_smape: o.backtest.map(|b| b.smape),
        backtest_coverage: o.backtest.map(|b| b.coverage),
        backtest_weekly_mae: o.backtest.and_then(|b| b.weekly_mae),
        backtest_baseline: o.backtest.and_then(|b| b.baseline.map(|b| b.as_str())),
        backtest_skill: o.backtest.and_then(|b| b.skill),
        interval_scale: o.backtest.and_then(|b| b.interval_scale),
        calibrated_coverage: o.backtest.and_then(|b| b.calibrated_coverage),
        last_balance: job.balance.filter(|_| basis != Some(Basis::FlowsOnly)),
        balance_basis: basis.map(|b| b.as_str()),
        lowest_balance: o.runway.as_ref().map(|r| r.lowest),
        lowest_date: o.runway.as_ref().map(|r| r.lowest_date),
        below_threshold_date: o.runway.as_ref().and_then(|r| r.below_date),
        lower_below_threshold_date: o.runway.as_ref().and_then(|r| r.lower_below_date),
        error: o.error.clone(),
    }
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn f64f(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn i64f(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn datef(name: &str) -> Field {
    Field::new(name, DataType::Date32, true)
}

/// Schema of `forecasts`.
pub fn forecasts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        i64f("run_id"),
        utf8("series_id"),
        utf8("kind"),
        utf8("currency"),
        utf8("subject"),
        utf8("model"),
        datef("ds"),
        f64f("yhat"),
        f64f("yhat_lower"),
        f64f("yhat_upper"),
    ]))
}

fn balance_key(key: &SeriesKey) -> Option<(String, &'static str)> {
    let name = key.kind.balance_name()?;
    let id = if key.subject.is_empty() {
        format!("{name}/{}", key.currency)
    } else {
        format!("{name}/{}/{}", key.currency, key.subject)
    };
    Some((id, name))
}

fn forecasts_batch(run_id: i64, outcomes: &[Outcome]) -> Result<RecordBatch> {
    let mut run = Vec::new();
    let (mut id, mut kind, mut cur, mut subj, mut model) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ds, mut yhat, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut push = |sid: &str, k: &str, key: &SeriesKey, m: &str, f: &Forecast| {
        for i in 0..f.ds.len() {
            run.push(run_id);
            id.push(sid.to_string());
            kind.push(k.to_string());
            cur.push(key.currency.clone());
            subj.push(key.subject.clone());
            model.push(m.to_string());
            ds.push(to_days(f.ds[i]));
            yhat.push(f.yhat[i]);
            lo.push(f.lower[i]);
            hi.push(f.upper[i]);
        }
    };
    for o in outcomes {
        let m = o.model.map_or("", |m| m.as_str());
        if let Some(f) = &o.forecast {
            push(&o.key.id(), o.key.kind.as_str(), &o.key, m, f);
        }
        if let (Some(b), Some((bid, bkind))) = (&o.balance, balance_key(&o.key)) {
            push(&bid, bkind, &o.key, m, b);
        }
    }
    Ok(RecordBatch::try_new(
        forecasts_schema(),
        vec![
            Arc::new(Int64Array::from(run)),
            Arc::new(StringArray::from(id)),
            Arc::new(StringArray::from(kind)),
            Arc::new(StringArray::from(cur)),
            Arc::new(StringArray::from(subj)),
            Arc::new(StringArray::from(model)),
            Arc::new(Date32Array::from(ds)),
            Arc::new(Float64Array::from(yhat)),
            Arc::new(Float64Array::from(lo)),
            Arc::new(Float64Array::from(hi)),
        ],
    )?)
}

#[allow(clippy::too_many_arguments)]
fn runs_batch(
    run_id: i64,
    run_at_us: i64,
    rc: &finopsia_forecast::refresh::RefreshConfig,
    settings_json: &str,
    jobs: &[Job],
    outcomes: &[Outcome],
    fps: &[i64],
    backtest_at: &[Option<i64>],
    bases: &[Option<Basis>],
) -> Result<RecordBatch> {
    #[derive(Default)]
    struct Cols {
        id: Vec<String>,
        kind: Vec<String>,
        cur: Vec<String>,
        subj: Vec<String>,
        status: Vec<String>,
        model: Vec<Option<String>>,
        error: Vec<Option<String>>,
        train_start: Vec<Option<i32>>,
        train_end: Vec<Option<i32>>,
        history: Vec<i64>,
        holidays: Vec<i64>,
        mae: Vec<Option<f64>>,
        smape: Vec<Option<f64>>,
        coverage: Vec<Option<f64>>,
        bt_days: Vec<Option<i64>>,
        bt_at: Vec<Option<i64>>,
        fp: Vec<i64>,
        secs: Vec<f64>,
        last_balance: Vec<Option<f64>>,
        lowest: Vec<Option<f64>>,
        lowest_date: Vec<Option<i32>>,
        below: Vec<Option<i32>>,
        lower_below: Vec<Option<i32>>,
        warm: Vec<Option<bool>>,
        params: Vec<Option<String>>,
        weekly_mae: Vec<Option<f64>>,
        total_error: Vec<Option<f64>>,
        wape: Vec<Option<f64>>,
        mase: Vec<Option<f64>>,
        baseline: Vec<Option<&'static str>>,
        baseline_weekly_mae: Vec<Option<f64>>,
        baseline_total_error: Vec<Option<f64>>,
        skill: Vec<Option<f64>>,
        interval_scale: Vec<Option<f64>>,
        calibrated_coverage: Vec<Option<f64>>,
        basis: Vec<Option<&'static str>>,
        anchor_date: Vec<Option<i32>>,
        anchor_balance: Vec<Option<f64>>,
    }
    let mut c = Cols::default();
    for ((((job, o), fp), bt_at), basis) in jobs
        .iter()
        .zip(outcomes)
        .zip(fps)
        .zip(backtest_at)
        .zip(bases)
    {
        let mut row = |id: String, kind: &str, is_balance: bool| {
            c.id.push(id);
            c.kind.push(kind.to_string());
            c.cur.push(o.key.currency.clone());
            c.subj.push(o.key.subject.clone());
            c.status.push(o.status.as_str().to_string());
            c.model.push(o.model.map(|m| m.as_str().to_string()));
            c.error.push(o.error.clone());
            c.train_start.push(o.train_start.map(to_days));
            c.train_end.push(o.train_end.map(to_days));
            c.history.push(job.series.len() as i64);
            c.holidays.push(o.holidays as i64);
            let bt = if is_balance { None } else { o.backtest };
            c.mae.push(bt.map(|b| b.mae));
            c.smape.push(bt.map(|b| b.smape));
            c.coverage.push(bt.map(|b| b.coverage));
            c.bt_days.push(bt.map(|b| b.days as i64));
            c.weekly_mae.push(bt.and_then(|b| b.weekly_mae));
            c.total_error.push(bt.and_then(|b| b.total_error));
            c.wape.push(bt.and_then(|b| b.wape));
            c.mase.push(bt.and_then(|b| b.mase));
            c.baseline
                .push(bt.and_then(|b| b.baseline.map(|b| b.as_str())));
            c.baseline_weekly_mae
                .push(bt.and_then(|b| b.baseline_weekly_mae));
            c.baseline_total_error
                .push(bt.and_then(|b| b.baseline_total_error));
            c.skill.push(bt.and_then(|b| b.skill));
            c.interval_scale.push(bt.and_then(|b| b.interval_scale));
            c.calibrated_coverage
                .push(bt.and_then(|b| b.calibrated_coverage));
            c.bt_at.push(if is_balance { None } else { *bt_at });
            c.fp.push(*fp);
            c.secs.push(o.seconds);
            let rw = if is_balance { o.runway.as_ref() } else { None };
            let anchored = match basis {
                Some(Basis::Anchored { as_of, anchor, .. }) if is_balance => {
                    Some((*as_of, *anchor))
                }
                _ => None,
            };
            c.last_balance.push(anchored.and(job.balance));
            c.basis
                .push(basis.filter(|_| is_balance).map(|b| b.as_str()));
            c.anchor_date.push(anchored.map(|a| to_days(a.0)));
            c.anchor_balance.push(anchored.map(|a| a.1));
            c.lowest.push(rw.map(|r| r.lowest));
            c.lowest_date.push(rw.map(|r| to_days(r.lowest_date)));
            c.below.push(rw.and_then(|r| r.below_date.map(to_days)));
            c.lower_below
                .push(rw.and_then(|r| r.lower_below_date.map(to_days)));
            let fitted = o.params.is_some() && !is_balance;
            c.warm.push(fitted.then_some(o.warm));
            c.params.push(if fitted {
                o.params
                    .as_ref()
                    .map(|p| serde_json::to_string(p).expect("params serialize"))
            } else {
                None
            });
        };
        row(o.key.id(), o.key.kind.as_str(), false);
        if let Some((bid, bkind)) = balance_key(&o.key) {
            if job.balance.is_some() {
                row(bid, bkind, true);
            }
        }
    }
    let n = c.id.len();
    let schema = runs_schema();
    let threshold = jobs.first().map_or(0.0, |j| j.threshold);
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![run_id; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![run_at_us; n]).with_timezone("UTC")),
            Arc::new(StringArray::from(c.id)),
            Arc::new(StringArray::from(c.kind)),
            Arc::new(StringArray::from(c.cur)),
            Arc::new(StringArray::from(c.subj)),
            Arc::new(StringArray::from(c.status)),
            Arc::new(StringArray::from(c.model)),
            Arc::new(StringArray::from(c.error)),
            Arc::new(Date32Array::from(c.train_start)),
            Arc::new(Date32Array::from(c.train_end)),
            Arc::new(Int64Array::from(c.history)),
            Arc::new(Int64Array::from(vec![rc.horizon_days as i64; n])),
            Arc::new(Float64Array::from(vec![rc.interval_width; n])),
            Arc::new(StringArray::from(vec![settings_json.to_string(); n])),
            Arc::new(Int64Array::from(c.holidays)),
            Arc::new(Float64Array::from(c.mae)),
            Arc::new(Float64Array::from(c.smape)),
            Arc::new(Float64Array::from(c.coverage)),
            Arc::new(Int64Array::from(c.bt_days)),
            Arc::new(TimestampMicrosecondArray::from(c.bt_at).with_timezone("UTC")),
            Arc::new(Int64Array::from(c.fp)),
            Arc::new(Float64Array::from(c.secs)),
            Arc::new(Float64Array::from(c.last_balance)),
            Arc::new(Float64Array::from(vec![threshold; n])),
            Arc::new(Float64Array::from(c.lowest)),
            Arc::new(Date32Array::from(c.lowest_date)),
            Arc::new(Date32Array::from(c.below)),
            Arc::new(Date32Array::from(c.lower_below)),
            Arc::new(BooleanArray::from(c.warm)),
            Arc::new(StringArray::from(c.params)),
            Arc::new(Float64Array::from(c.weekly_mae)),
            Arc::new(Float64Array::from(c.total_error)),
            Arc::new(Float64Array::from(c.wape)),
            Arc::new(Float64Array::from(c.mase)),
            Arc::new(StringArray::from(c.baseline)),
            Arc::new(Float64Array::from(c.baseline_weekly_mae)),
            Arc::new(Float64Array::from(c.baseline_total_error)),
            Arc::new(Float64Array::from(c.skill)),
            Arc::new(Float64Array::from(c.interval_scale)),
            Arc::new(Float64Array::from(c.calibrated_coverage)),
            Arc::new(StringArray::from(c.basis)),
            Arc::new(Date32Array::from(c.anchor_date)),
            Arc::new(Float64Array::from(c.anchor_balance)),
        ],
    )?)
}

/// Schema of `forecast_runs`.
pub fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        i64f("run_id"),
        Field::new("run_at", finopsia_core::schema::ts_type(), true),
        utf8("series_id"),
        utf8("kind"),
        utf8("currency"),
        utf8("subject"),
        utf8("status"),
        utf8("model"),
        utf8("error"),
        datef("train_start"),
        datef("train_end"),
        i64f("history_days"),
        i64f("horizon_days"),
        f64f("interval_width"),
        utf8("settings"),
        i64f("holidays"),
        f64f("backtest_mae"),
        f64f("backtest_smape"),
        f64f("backtest_coverage"),
        i64f("backtest_days"),
        Field::new("backtest_at", finopsia_core::schema::ts_type(), true),
        i64f("fingerprint"),
        f64f("fit_seconds"),
        f64f("last_balance"),
        f64f("runway_threshold"),
        f64f("lowest_balance"),
        datef("lowest_date"),
        datef("below_threshold_date"),
        datef("lower_below_threshold_date"),
        Field::new("warm_start", DataType::Boolean, true),
        utf8("params"),
        // Backtest in cash-planning terms, and against the baselines.
        f64f("backtest_weekly_mae"),
        f64f("backtest_total_error"),
        f64f("backtest_wape"),
        f64f("backtest_mase"),
        utf8("backtest_baseline"),
        f64f("baseline_weekly_mae"),
        f64f("baseline_total_error"),
        f64f("backtest_skill"),
        // Interval calibration from the backtest errors.
        f64f("interval_scale"),
        f64f("calibrated_coverage"),
        // Balance series: where the balance starts from.
        utf8("balance_basis"),
        datef("anchor_date"),
        f64f("anchor_balance"),
    ]))
}

/// The 13-week cash view's table.
pub const CASH_13W: &str = "cash_13w";

/// Schema of `cash_13w`: per run, balance series (account and organisation
/// per currency) and ISO week, the weekly view of its forecast.
pub fn cash_13w_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        i64f("run_id"),
        utf8("series_id"),
        utf8("kind"),
        utf8("currency"),
        utf8("subject"),
        utf8("model"),
        utf8("balance_basis"),
        i64f("week"),
        datef("week_start"),
        utf8("iso_week"),
        i64f("days"),
        f64f("inflow"),
        f64f("outflow"),
        f64f("net"),
        f64f("net_lower"),
        f64f("net_upper"),
        f64f("known_inflow"),
        f64f("known_outflow"),
        i64f("known_items"),
        f64f("balance"),
        f64f("balance_lower"),
        f64f("balance_upper"),
    ]))
}

/// The latest 13-week view of every balance series as text (or, with
/// `json`, one JSON array of its rows): organisation first, then accounts.
pub async fn weekly_view(data_dir: &Path, json: bool) -> Result<String> {
    let mut store = Store::open(data_dir)?.with_views(VIEWS);
    if !store.exists(CASH_13W) {
        return Err(Error::Config(
            "no 13-week view yet: run `finopsia forecast` first".into(),
        ));
    }
    let batches = store
        .query(
            "SELECT series_id, kind, currency, subject, model, balance_basis, week, \
             CAST(week_start AS VARCHAR) AS week_start, iso_week, days, inflow, outflow, net, \
             net_lower, net_upper, known_inflow, known_outflow, known_items, balance, \
             balance_lower, balance_upper FROM cash_13w_latest \
             ORDER BY CASE WHEN kind = 'org' THEN 0 ELSE 1 END, series_id, week",
        )
        .await?;
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
        for b in &batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    let rows: Vec<serde_json::Value> = if buf.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&buf).expect("arrow json")
    };
    if json {
        return Ok(serde_json::to_string_pretty(&rows).expect("json"));
    }
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    let t = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("-").to_string();
    let mut out = String::new();
    let mut current = String::new();
    for r in &rows {
        let id = t(r, "series_id");
        if id != current {
            let basis = t(r, "balance_basis");
            out.push_str(&format!(
                "\n{id}  (model {}; balance {})\n{:<9} {:<10} {:>4} {:>14} {:>14} {:>14} {:>29} {:>14} {:>16} {:>29}\n",
                t(r, "model"),
                if basis == "flows only" {
                    "flows only: no anchor, the change from the last day of data".to_string()
                } else {
                    basis
                },
                "week",
                "starts",
                "days",
                "inflow",
                "outflow",
                "net",
                "net (80% interval)",
                "known items",
                "balance",
                "balance band"
            ));
            current = id;
        }
        let known = f(r, "known_inflow") - f(r, "known_outflow");
        out.push_str(&format!(
            "{:<9} {:<10} {:>4} {:>14.0} {:>14.0} {:>14.0} {:>29} {:>14} {:>16.0} {:>29}\n",
            t(r, "iso_week"),
            t(r, "week_start"),
            r["days"].as_i64().unwrap_or(0),
            f(r, "inflow"),
            f(r, "outflow"),
            f(r, "net"),
            format!("{:.0} .. {:.0}", f(r, "net_lower"), f(r, "net_upper")),
            if r["known_items"].as_i64().unwrap_or(0) > 0 {
                format!("{known:.0}")
            } else {
                "-".into()
            },
            f(r, "balance"),
            format!(
                "{:.0} .. {:.0}",
                f(r, "balance_lower"),
                f(r, "balance_upper")
            ),
        ));
    }
    Ok(out)
}

/// Average daily inflow and outflow over the last 91 days of `key`'s
/// transactions up to `end`, less the occurrences of its recurring patterns.
fn gross_rates(txns: &[Txn], patterns: &[Recurring], key: &SeriesKey, end: NaiveDate) -> Gross {
    let start = end - chrono::Duration::days(90);
    let mine = |account: &str, currency: &str| {
        currency == key.currency
            && (key.kind == Kind::OrgNetFlow
                || (key.kind == Kind::AccountNetFlow && account == key.subject))
    };
    let (mut inflow, mut outflow) = (0.0, 0.0);
    let mut first = end;
    for t in txns.iter().filter(|t| t.date >= start && t.date <= end) {
        if mine(&t.account_id, &t.currency) {
            first = first.min(t.date);
            if t.amount >= 0.0 {
                inflow += t.amount;
            } else {
                outflow -= t.amount;
            }
        }
    }
    for p in patterns.iter().filter(|p| mine(&p.account_id, &p.currency)) {
        let n = p
            .occurrences
            .iter()
            .filter(|d| **d >= start && **d <= end)
            .count() as f64;
        if p.amount >= 0.0 {
            inflow -= n * p.amount;
        } else {
            outflow += n * p.amount;
        }
    }
    let days = ((end - first).num_days() + 1).max(1) as f64;
    Gross {
        inflow_per_day: inflow.max(0.0) / days,
        outflow_per_day: outflow.max(0.0) / days,
    }
}

fn cash_13w_batch(
    run_id: i64,
    rc: &finopsia_forecast::refresh::RefreshConfig,
    jobs: &[Job],
    outcomes: &[Outcome],
    bases: &[Option<Basis>],
    txns: &[Txn],
) -> Result<RecordBatch> {
    type WeekRow<'a> = (&'a Outcome, &'static str, Option<Basis>, weekly::Week);
    let mut rows: Vec<WeekRow> = Vec::new();
    for ((job, o), basis) in jobs.iter().zip(outcomes).zip(bases) {
        let (Some(fc), Some(last)) = (&o.forecast, o.train_end) else {
            continue;
        };
        let kind = match o.key.kind {
            Kind::AccountNetFlow => "account",
            Kind::OrgNetFlow => "org",
            Kind::CategoryOutflow => continue,
        };
        let until = last + chrono::Duration::days(rc.horizon_days as i64);
        let known = weekly::known_items(job.recurring.iter(), last, until);
        // Prophet with the patterns as holidays puts them on their dates.
        let placed = o.model == Some(finopsia_forecast::ModelKind::Prophet) && o.holidays > 0;
        let gross = gross_rates(txns, &job.recurring, &o.key, last);
        for w in weekly::build(fc, placed, &known, gross, job.balance.unwrap_or(0.0), 13) {
            rows.push((o, kind, *basis, w));
        }
    }
    let s = |f: &dyn Fn(&WeekRow) -> Option<String>| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let f = |f: &dyn Fn(&weekly::Week) -> f64| {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(&r.3)))) as ArrayRef
    };
    let i = |f: &dyn Fn(&weekly::Week) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(&r.3)))) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        cash_13w_schema(),
        vec![
            Arc::new(Int64Array::from(vec![run_id; rows.len()])),
            s(&|r| Some(r.0.key.id())),
            s(&|r| Some(r.1.to_string())),
            s(&|r| Some(r.0.key.currency.clone())),
            s(&|r| Some(r.0.key.subject.clone())),
            s(&|r| r.0.model.map(|m| m.as_str().to_string())),
            s(&|r| r.2.map(|b| b.as_str().to_string())),
            i(&|w| w.week as i64),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| to_days(r.3.week_start)),
            )),
            s(&|r| Some(r.3.iso_week.clone())),
            i(&|w| w.days as i64),
            f(&|w| w.inflow),
            f(&|w| w.outflow),
            f(&|w| w.net),
            f(&|w| w.net_lower),
            f(&|w| w.net_upper),
            f(&|w| w.known_inflow),
            f(&|w| w.known_outflow),
            i(&|w| w.known_items as i64),
            f(&|w| w.balance),
            f(&|w| w.balance_lower),
            f(&|w| w.balance_upper),
        ],
    )?)
}

/// Schema of `recurring`.
pub fn recurring_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("account_id"),
        utf8("currency"),
        utf8("key"),
        utf8("category"),
        utf8("direction"),
        utf8("cadence"),
        i64f("day_of_month"),
        f64f("amount"),
        i64f("occurrences"),
        datef("first_date"),
        datef("last_date"),
        datef("next_expected"),
    ]))
}

fn recurring_batch(patterns: &[Recurring]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        recurring_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.account_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.currency.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.key.as_str()),
            )),
            Arc::new(StringArray::from(
                patterns
                    .iter()
                    .map(|p| p.category.clone())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.direction),
            )),
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.cadence.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                patterns.iter().map(|p| p.day_of_month as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                patterns.iter().map(|p| p.amount),
            )),
            Arc::new(Int64Array::from_iter_values(
                patterns.iter().map(|p| p.occurrences.len() as i64),
            )),
            Arc::new(Date32Array::from_iter_values(
                patterns.iter().map(|p| to_days(p.first())),
            )),
            Arc::new(Date32Array::from_iter_values(
                patterns.iter().map(|p| to_days(p.last())),
            )),
            Arc::new(Date32Array::from_iter_values(
                patterns.iter().map(|p| to_days(p.next_expected)),
            )),
        ],
    )?)
}

/// Views over the forecast tables, created on every session that has them
/// (give them to [`Store::with_views`] and the query service).
pub const VIEWS: &[View] = &[
    View {
        name: "forecast_runs_latest",
        needs: &["forecast_runs", "forecasts"],
        sql: "SELECT r.* FROM forecast_runs r JOIN \
         (SELECT series_id AS sid, MAX(run_id) AS rid FROM forecast_runs GROUP BY series_id) l \
         ON r.series_id = l.sid AND r.run_id = l.rid",
        fallback: None,
    },
    View {
        name: "forecasts_latest",
        needs: &["forecast_runs", "forecasts"],
        sql: "SELECT f.* FROM forecasts f JOIN \
         (SELECT series_id AS sid, MAX(run_id) AS rid FROM forecast_runs \
          WHERE status IN ('ok', 'short_history', 'fallback') GROUP BY series_id) l \
         ON f.series_id = l.sid AND f.run_id = l.rid",
        fallback: None,
    },
    View {
        name: "cash_13w_latest",
        needs: &["cash_13w", "forecast_runs"],
        sql: "SELECT c.* FROM cash_13w c JOIN \
         (SELECT series_id AS sid, MAX(run_id) AS rid FROM forecast_runs \
          WHERE status IN ('ok', 'short_history', 'fallback') GROUP BY series_id) l \
         ON c.series_id = l.sid AND c.run_id = l.rid",
        fallback: None,
    },
    View {
        name: "runway",
        needs: &["forecast_runs", "forecasts"],
        // Only balances that are known: series without an anchor
        // (`balance_basis = 'flows only'`) have no runway.
        sql: "SELECT series_id, currency, subject AS account_id, run_at, train_end AS as_of, \
         last_balance, runway_threshold, lowest_balance, lowest_date, below_threshold_date, \
         lower_below_threshold_date, model, status, balance_basis, anchor_date, anchor_balance \
         FROM forecast_runs_latest WHERE kind IN ('account_balance', 'org_balance') \
         AND COALESCE(balance_basis, 'anchored') <> 'flows only'",
        fallback: Some(
            "SELECT series_id, currency, subject AS account_id, run_at, train_end AS as_of, \
             last_balance, runway_threshold, lowest_balance, lowest_date, below_threshold_date, \
             lower_below_threshold_date, model, status, CAST(NULL AS VARCHAR) AS balance_basis, \
             CAST(NULL AS DATE) AS anchor_date, CAST(NULL AS DOUBLE) AS anchor_balance \
             FROM forecast_runs_latest WHERE kind IN ('account_balance', 'org_balance')",
        ),
    },
];

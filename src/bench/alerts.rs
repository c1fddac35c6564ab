//! `finopsia bench alerts`: how long one alert evaluation takes over N
//! series. Builds a store with N anchored balance series (forecast runs
//! and 90 days of forecast points each), N spending categories with 13
//! weeks of daily spend, N recurring payments, quarantined rows and job
//! history, then times each of the eight rule types on its own and whole
//! evaluations (the first records every firing alert; the later ones find
//! nothing changed), without channels.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use finopsia_ops::alerts::{self, AlertsConfig, Facts};
use finopsia_ops::scheduler::JobRuns;
use finopsia_store::Store;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct RuleTiming {
    pub rule: String,
    pub seconds: f64,
    pub firing: usize,
}

#[derive(Debug, Serialize)]
pub struct AlertBenchReport {
    pub series: usize,
    pub forecast_points: usize,
    pub transactions: usize,
    pub setup_seconds: f64,
    pub rules: Vec<RuleTiming>,
    /// The first evaluation: every firing alert becomes an event.
    pub first_evaluation_seconds: f64,
    pub first_new_events: usize,
    /// Later evaluations (nothing changes), each.
    pub steady_evaluation_seconds: Vec<f64>,
    pub firing: usize,
}

/// Columns by name as text (empty: null), cast to the table's types;
/// columns not given are null.
fn batch(
    schema: &SchemaRef,
    cols: &BTreeMap<&str, Vec<String>>,
    rows: usize,
) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match cols.get(f.name().as_str()) {
            Some(v) => {
                // An empty text is a null.
                let a: ArrayRef = Arc::new(StringArray::from(
                    v.iter()
                        .map(|s| (!s.is_empty()).then_some(s.as_str()))
                        .collect::<Vec<_>>(),
                ));
                Ok(cast(&a, f.data_type())?)
            }
            None => Ok(new_null_array(f.data_type(), rows)),
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(
        finopsia_core::schema::nullable(schema),
        arrays,
    )?)
}

async fn build(dir: &Path, n: usize) -> Result<(usize, usize)> {
    let mut store = Store::open(dir)?;
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
    // Balance series: every tenth one falls below zero within 30 days.
    let mut runs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut points: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut npoints = 0;
    for s in 0..n {
        let id = format!("account_balance/NGN/acc-{s}");
        let falls = s % 10 == 0;
        for (k, v) in [
            ("run_id", "1".to_string()),
            ("series_id", id.clone()),
            ("kind", "account_balance".into()),
            ("currency", "NGN".into()),
            ("subject", format!("acc-{s}")),
            ("status", "ok".into()),
            ("train_end", as_of.to_string()),
            ("runway_threshold", "0".into()),
            ("balance_basis", "anchored".into()),
            (
                "below_threshold_date",
                if falls {
                    (as_of + chrono::Duration::days(21)).to_string()
                } else {
                    String::new()
                },
            ),
            (
                "lower_below_threshold_date",
                if falls {
                    (as_of + chrono::Duration::days(20)).to_string()
                } else {
                    String::new()
                },
            ),
        ] {
            runs.entry(k).or_default().push(v);
        }
        for d in 1..=90i64 {
            let y = if falls {
                200_000.0 - 10_000.0 * d as f64
            } else {
                500_000.0 + d as f64
            };
            for (k, v) in [
                ("run_id", "1".to_string()),
                ("series_id", id.clone()),
                ("kind", "account_balance".into()),
                ("currency", "NGN".into()),
                ("ds", (as_of + chrono::Duration::days(d)).to_string()),
                ("yhat", y.to_string()),
                ("yhat_lower", (y - 5_000.0).to_string()),
            ] {
                points.entry(k).or_default().push(v);
            }
            npoints += 1;
        }
    }
    store
        .append(
            "forecast_runs",
            vec![batch(&finopsia_ops::forecasts::runs_schema(), &runs, n)?],
            None,
        )
        .await?;
    store
        .append(
            "forecasts",
            vec![batch(
                &finopsia_ops::forecasts::forecasts_schema(),
                &points,
                npoints,
            )?],
            None,
        )
        .await?;
    // Spending: n categories, 91 days; every tenth spikes in the last week.
    let mut tx: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut ntx = 0;
    let end = as_of;
    for c in 0..n {
        for d in 0..91i64 {
            let day = end - chrono::Duration::days(d);
            let base = 10_000 + ((c as i64 * 31 + d * 7) % 10) * 1_000;
            let amount = if d < 7 && c % 10 == 0 { base * 6 } else { base };
            for (k, v) in [
                ("source", "bank".to_string()),
                ("transaction_id", format!("t{c}-{d}")),
                ("amount_minor", (-amount).to_string()),
                ("currency", "NGN".into()),
                ("category", format!("cat-{c}")),
                ("account_id", "acc-spend".into()),
                ("counterparty", format!("Supplier {c}")),
                ("event_time", format!("{day}T10:00:00Z")),
                ("ingested_at", format!("{day}T10:00:01Z")),
            ] {
                tx.entry(k).or_default().push(v);
            }
            ntx += 1;
        }
    }
    // One rent payment per account on its pattern's last date; every tenth
    // twice the usual.
    for s in 0..n {
        let amount: i64 = if s % 10 == 0 { 50_000_000 } else { 25_000_000 };
        for (k, v) in [
            ("source", "bank".to_string()),
            ("transaction_id", format!("rent-{s}")),
            ("account_id", format!("acc-{s}")),
            ("amount_minor", (-amount).to_string()),
            ("currency", "NGN".into()),
            ("category", "Rent".into()),
            ("counterparty", "Landlord".into()),
            (
                "event_time",
                format!("{}T09:00:00Z", as_of - chrono::Duration::days(21)),
            ),
            ("ingested_at", format!("{as_of}T10:00:01Z")),
        ] {
            tx.entry(k).or_default().push(v);
        }
        ntx += 1;
    }
    store
        .append(
            "transactions",
            vec![batch(&finopsia_core::schema::INCOMING, &tx, ntx)?],
            None,
        )
        .await?;
    // Recurring payments: every tenth overdue.
    let mut rec: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in 0..n {
        let next = if s % 10 == 0 {
            as_of - chrono::Duration::days(9)
        } else {
            as_of + chrono::Duration::days(9)
        };
        for (k, v) in [
            ("account_id", format!("acc-{s}")),
            ("currency", "NGN".to_string()),
            ("key", "landlord".to_string()),
            ("category", "Rent".into()),
            ("direction", "outflow".into()),
            ("cadence", "monthly".into()),
            ("amount", "-250000".into()),
            (
                "last_date",
                (as_of - chrono::Duration::days(21)).to_string(),
            ),
            ("next_expected", next.to_string()),
        ] {
            rec.entry(k).or_default().push(v);
        }
    }
    store
        .append(
            "recurring",
            vec![batch(
                &finopsia_ops::forecasts::recurring_schema(),
                &rec,
                n,
            )?],
            None,
        )
        .await?;
    Ok((npoints, ntx))
}

fn rules() -> Result<AlertsConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "repeat_interval": "24h",
        "rules": {
            "low_balance": {"type": "balance_below", "currency": "NGN", "threshold": "100000", "within_days": 30},
            "short_runway": {"type": "runway_below", "days": 30},
            "spend": {"type": "spend_spike"},
            "rent": {"type": "recurring_missing"},
            "rent_up": {"type": "recurring_larger"},
            "big_payment": {"type": "transaction_spike"},
            "rejects": {"type": "quarantine_rate", "percent": 5},
            "bank_quiet": {"type": "source_silent", "source": "bank", "after": "1h"},
            "jobs": {"type": "job_failed"},
            "sinks": {"type": "sink_backlog", "max_buffered": 100}
        }
    }))?)
}

pub async fn alerts_bench(dir: &Path, series: usize) -> Result<AlertBenchReport> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(super::io_err(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
    let t = Instant::now();
    let (forecast_points, transactions) = build(dir, series).await?;
    let setup_seconds = t.elapsed().as_secs_f64();
    let cfg = rules()?;
    let facts = || Facts {
        now: "2026-03-01T12:00:00Z".parse().expect("time"),
        sink_buffered: (0..series)
            .map(|i| (format!("sink-{i}"), if i % 10 == 0 { 500 } else { 0 }))
            .collect(),
    };
    let mut timings = Vec::new();
    let runs = JobRuns::open(dir)?;
    for (name, rule) in &cfg.rules {
        let mut store = Store::open(dir)?.with_views(finopsia_ops::views());
        let t = Instant::now();
        let found = alerts::evaluate(rule, &mut store, &runs, &facts()).await?;
        timings.push(RuleTiming {
            rule: name.clone(),
            seconds: t.elapsed().as_secs_f64(),
            firing: found.len(),
        });
    }
    let channels = BTreeMap::new();
    let t = Instant::now();
    let first = alerts::run(dir, &cfg, &channels, facts(), None).await?;
    let first_evaluation_seconds = t.elapsed().as_secs_f64();
    let mut steady = Vec::new();
    let mut firing = first.firing;
    for _ in 0..3 {
        let t = Instant::now();
        let r = alerts::run(dir, &cfg, &channels, facts(), None).await?;
        steady.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            r.new_events == 0,
            "a steady evaluation found changes: {r:?}"
        );
        firing = r.firing;
    }
    Ok(AlertBenchReport {
        series,
        forecast_points,
        transactions,
        setup_seconds,
        rules: timings,
        first_evaluation_seconds,
        first_new_events: first.new_events,
        steady_evaluation_seconds: steady,
        firing,
    })
}

//! Every alert rule fires on data that should fire it and stays quiet on
//! data that should not; one evaluation after another keeps the state
//! (no second `firing`, a `repeat` only after `repeat_interval`, one
//! `resolved`), with the clock injected through `Facts::now`.
//!
//! Tables are written with only the columns the rules read (the others
//! null), through the real store. The channel here records what it is
//! given: HTTP delivery, signatures and the kill -9 case are in the
//! workspace's `tests/alerts.rs` against a real receiver.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use datafusion::arrow::compute::cast;
use finopsia_core::notify::{Channel, Notification};
use finopsia_ops::alerts::{self, AlertsConfig, Facts, RuleConfig};
use finopsia_ops::scheduler::{History, JobRuns, RunRecord};
use finopsia_store::Store;

mod common;
use common::put;

fn rule(v: serde_json::Value) -> RuleConfig {
    serde_json::from_value(v).unwrap()
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

async fn eval(dir: &Path, r: &RuleConfig, facts: &Facts) -> Vec<alerts::Finding> {
    let mut store = Store::open(dir).unwrap().with_views(finopsia_ops::views());
    let runs = JobRuns::open(dir).unwrap();
    alerts::evaluate(r, &mut store, &runs, facts).await.unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

fn facts() -> Facts {
    Facts {
        now: now(),
        sink_buffered: BTreeMap::new(),
    }
}

/// An anchored NGN organisation balance whose forecast (from 2026-03-01)
/// falls by 10,000 a day from 200,000; its lower bound 5,000 under it.
async fn forecast(dir: &Path) {
    let runs = vec![vec![
        ("run_id", "1".to_string()),
        ("series_id", "org_balance/NGN".into()),
        ("kind", "org_balance".into()),
        ("currency", "NGN".into()),
        ("status", "ok".into()),
        ("train_end", "2026-03-01".into()),
        ("runway_threshold", "0".into()),
        ("below_threshold_date", "2026-03-22".into()),
        ("lower_below_threshold_date", "2026-03-21".into()),
        ("balance_basis", "anchored".into()),
    ]];
    put(
        dir,
        "forecast_runs",
        finopsia_ops::forecasts::runs_schema(),
        &runs,
    )
    .await;
    let points: Vec<Vec<(&str, String)>> = (1..=40)
        .map(|d| {
            let ds = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + Duration::days(d);
            let y = 200_000.0 - 10_000.0 * d as f64;
            vec![
                ("run_id", "1".to_string()),
                ("series_id", "org_balance/NGN".into()),
                ("kind", "org_balance".into()),
                ("currency", "NGN".into()),
                ("ds", ds.to_string()),
                ("yhat", y.to_string()),
                ("yhat_lower", (y - 5_000.0).to_string()),
            ]
        })
        .collect();
    put(
        dir,
        "forecasts",
        finopsia_ops::forecasts::forecasts_schema(),
        &points,
    )
    .await;
}

#[tokio::test]
async fn balance_below_fires_within_its_horizon_only() {
    let tmp = tempfile::tempdir().unwrap();
    forecast(tmp.path()).await;
    // Lower bound: 200,000 - 10,000 d - 5,000 < 100,000 from day 10 (95,000).
    let r = rule(serde_json::json!({
        "type": "balance_below", "currency": "NGN", "threshold": "100000.00", "within_days": 30
    }));
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].key, "org_balance/NGN");
    assert!(
        f[0].message.contains("NGN 95000.00 on 2026-03-11"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("below NGN 100000.00"),
        "{}",
        f[0].message
    );
    // Not within 9 days; and the forecast itself (yhat) only from day 11.
    let r = rule(serde_json::json!({
        "type": "balance_below", "currency": "NGN", "threshold": "100000", "within_days": 9
    }));
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    let r = rule(serde_json::json!({
        "type": "balance_below", "currency": "NGN", "threshold": "100000", "within_days": 10, "bound": "yhat"
    }));
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    // Another currency's threshold says nothing about NGN.
    let r = rule(serde_json::json!({
        "type": "balance_below", "currency": "USD", "threshold": "100000", "within_days": 30
    }));
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

#[tokio::test]
async fn runway_below_compares_days_to_the_threshold_date() {
    let tmp = tempfile::tempdir().unwrap();
    forecast(tmp.path()).await;
    // Lower bound crosses on 03-21: 20 days after 03-01.
    let r = rule(serde_json::json!({"type": "runway_below", "days": 30}));
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].value, Some(20.0));
    assert!(f[0].message.contains("runway 20 days"), "{}", f[0].message);
    let r = rule(serde_json::json!({"type": "runway_below", "days": 20}));
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    // The forecast itself crosses a day later.
    let r = rule(serde_json::json!({"type": "runway_below", "days": 22, "bound": "yhat"}));
    assert_eq!(eval(tmp.path(), &r, &facts()).await[0].value, Some(21.0));
}

async fn spending(dir: &Path, last_week: i64) {
    // 13 weeks of Marketing spend around 1,000.00 a week (7 days of
    // 10,000-20,000 minor units), the last week `last_week` minor units.
    let end = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let mut rows = Vec::new();
    for d in 0..91i64 {
        let day = end - Duration::days(d);
        let amount = if d < 7 {
            last_week / 7
        } else {
            10_000 + (d * 7919 % 10) * 1_000
        };
        rows.push(vec![
            ("source", "bank".to_string()),
            ("transaction_id", format!("t{d}")),
            ("amount_minor", (-amount).to_string()),
            ("currency", "NGN".into()),
            ("category", "Marketing".into()),
            ("event_time", format!("{day}T10:00:00Z")),
            ("ingested_at", ts(now())),
        ]);
        // Revenue does not count as spend.
        rows.push(vec![
            ("source", "bank".to_string()),
            ("transaction_id", format!("r{d}")),
            ("amount_minor", "5000000".to_string()),
            ("currency", "NGN".into()),
            ("category", "Revenue".into()),
            ("event_time", format!("{day}T11:00:00Z")),
            ("ingested_at", ts(now())),
        ]);
    }
    put(
        dir,
        "transactions",
        finopsia_core::schema::INCOMING.clone(),
        &rows,
    )
    .await;
}

#[tokio::test]
async fn spend_spike_fires_far_above_the_usual_week_only() {
    let tmp = tempfile::tempdir().unwrap();
    spending(tmp.path(), 7 * 60_000).await;
    let r = rule(serde_json::json!({"type": "spend_spike"}));
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].key, "NGN/Marketing");
    assert!(
        f[0].message.contains("Marketing spend NGN 4200.00"),
        "{}",
        f[0].message
    );

    let tmp = tempfile::tempdir().unwrap();
    spending(tmp.path(), 7 * 15_000).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

/// 60 Supplies outflows on the days before 2026-03-03 between 10,000.00
/// and 30,000.00, then `recent` (minor units) on 2026-03-09; a large
/// inflow and a Travel category with too little history beside them.
async fn supplies(dir: &Path, recent: i64) {
    let end = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let row = |id: String, amount: i64, cat: &str, day: chrono::NaiveDate| {
        vec![
            ("source", "bank".to_string()),
            ("transaction_id", id),
            ("amount_minor", amount.to_string()),
            ("currency", "NGN".into()),
            ("category", cat.into()),
            ("counterparty", "Acme Supplies Ltd".into()),
            ("event_time", format!("{day}T10:00:00Z")),
            ("ingested_at", ts(now())),
        ]
    };
    let mut rows = Vec::new();
    for i in 0..60i64 {
        let amount = 1_000_000 + (i * 7919 % 21) * 100_000;
        rows.push(row(
            format!("s{i}"),
            -amount,
            "Supplies",
            end - Duration::days(7 + i),
        ));
    }
    for i in 0..5i64 {
        rows.push(row(
            format!("t{i}"),
            -50_000,
            "Travel",
            end - Duration::days(8 + i),
        ));
    }
    rows.push(row("big-travel".into(), -9_000_000, "Travel", end));
    rows.push(row("big-inflow".into(), 90_000_000, "Supplies", end));
    rows.push(row("recent".into(), -recent, "Supplies", end));
    put(
        dir,
        "transactions",
        finopsia_core::schema::INCOMING.clone(),
        &rows,
    )
    .await;
}

#[tokio::test]
async fn transaction_spike_fires_on_one_outflow_far_above_its_category_only() {
    let r = rule(serde_json::json!({"type": "transaction_spike"}));
    let spike = tempfile::tempdir().unwrap();
    supplies(spike.path(), 30_000_000).await;
    let f = eval(spike.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].key, "bank/recent");
    assert_eq!(f[0].value, Some(30_000_000.0));
    assert!(
        f[0].message
            .starts_with("Supplies payment NGN 300000.00 (Acme Supplies Ltd) on 2026-03-09"),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("its 50 outflows"), "{}", f[0].message);
    // Travel's 90,000.00 is 180× its usual, but 5 earlier outflows are too
    // few to know what is usual (and the inflow is no payment).
    let travel = rule(serde_json::json!({"type": "transaction_spike", "category": "Travel"}));
    assert!(eval(spike.path(), &travel, &facts()).await.is_empty());

    // The largest usual payment (3,000,000) and a bit more stay quiet.
    let tmp = tempfile::tempdir().unwrap();
    supplies(tmp.path(), 3_500_000).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());

    // Once newer data moves it out of `window_days`, it is no longer news.
    put(
        spike.path(),
        "transactions",
        finopsia_core::schema::INCOMING.clone(),
        &[vec![
            ("source", "bank".to_string()),
            ("transaction_id", "later".into()),
            ("amount_minor", "-1500000".into()),
            ("currency", "NGN".into()),
            ("category", "Supplies".into()),
            ("event_time", "2026-03-17T10:00:00Z".into()),
        ]],
    )
    .await;
    assert!(eval(spike.path(), &r, &facts()).await.is_empty());
    let wide = rule(serde_json::json!({"type": "transaction_spike", "window_days": 9}));
    assert_eq!(eval(spike.path(), &wide, &facts()).await.len(), 1);
}

/// A monthly landlord pattern of 250,000.00 last seen on `last`, and the
/// payments to the landlord (day, minor units).
async fn rent(dir: &Path, last: &str, payments: &[(&str, i64)]) {
    put(
        dir,
        "recurring",
        finopsia_ops::forecasts::recurring_schema(),
        &[vec![
            ("account_id", "acc-1".to_string()),
            ("currency", "NGN".into()),
            ("key", "landlord properties".into()),
            ("category", "Rent".into()),
            ("direction", "outflow".into()),
            ("cadence", "monthly".into()),
            ("amount", "-250000".into()),
            ("last_date", last.into()),
        ]],
    )
    .await;
    let rows: Vec<_> = payments
        .iter()
        .enumerate()
        .map(|(i, (d, minor))| {
            vec![
                ("source", "bank".to_string()),
                ("transaction_id", format!("p{i}")),
                ("account_id", "acc-1".into()),
                ("amount_minor", minor.to_string()),
                ("currency", "NGN".into()),
                ("counterparty", "LANDLORD Properties".into()),
                ("event_time", format!("{d}T09:00:00Z")),
            ]
        })
        .collect();
    put(
        dir,
        "transactions",
        finopsia_core::schema::INCOMING.clone(),
        &rows,
    )
    .await;
}

#[tokio::test]
async fn recurring_larger_fires_on_a_latest_payment_above_its_percent_until_a_usual_one() {
    let r = rule(serde_json::json!({"type": "recurring_larger", "percent": 50}));
    // The latest payment, split in two on one day, is 60% above.
    let tmp = tempfile::tempdir().unwrap();
    rent(
        tmp.path(),
        "2026-02-01",
        &[
            ("2026-02-01", -25_000_000),
            ("2026-03-01", -30_000_000),
            ("2026-03-01", -10_000_000),
        ],
    )
    .await;
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].key, "acc-1/landlord properties");
    assert!(
        f[0].message
            .contains("was NGN 400000.00 on 2026-03-01, 60% above its usual NGN 250000.00"),
        "{}",
        f[0].message
    );
    // 40% above is under the rule's 50%.
    let tmp = tempfile::tempdir().unwrap();
    rent(tmp.path(), "2026-03-01", &[("2026-03-01", -35_000_000)]).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    // A usual payment after the large one resolves it.
    let tmp = tempfile::tempdir().unwrap();
    rent(
        tmp.path(),
        "2026-02-01",
        &[("2026-02-01", -40_000_000), ("2026-03-01", -25_000_000)],
    )
    .await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

async fn recurring(dir: &Path, next: &str) {
    put(
        dir,
        "recurring",
        finopsia_ops::forecasts::recurring_schema(),
        &[vec![
            ("account_id", "acc-1".to_string()),
            ("currency", "NGN".into()),
            ("key", "landlord".into()),
            ("category", "Rent".into()),
            ("cadence", "monthly".into()),
            ("amount", "-250000".into()),
            ("next_expected", next.into()),
        ]],
    )
    .await;
    put(
        dir,
        "transactions",
        finopsia_core::schema::INCOMING.clone(),
        &[vec![
            ("source", "bank".to_string()),
            ("amount_minor", "-100".into()),
            ("currency", "NGN".into()),
            ("event_time", "2026-03-09T10:00:00Z".into()),
        ]],
    )
    .await;
}

#[tokio::test]
async fn recurring_missing_fires_after_its_grace_days() {
    let r = rule(serde_json::json!({"type": "recurring_missing", "grace_days": 3}));
    let tmp = tempfile::tempdir().unwrap();
    recurring(tmp.path(), "2026-03-01").await;
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("NGN 250000.00"), "{}", f[0].message);
    assert!(f[0].message.contains("8 days late"), "{}", f[0].message);
    let tmp = tempfile::tempdir().unwrap();
    recurring(tmp.path(), "2026-03-07").await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

async fn arrivals(dir: &Path, good: usize, bad: usize, at: DateTime<Utc>) {
    let rows: Vec<Vec<(&str, String)>> = (0..good)
        .map(|i| {
            vec![
                ("source", "bank".to_string()),
                ("transaction_id", format!("g{i}")),
                ("ingested_at", ts(at)),
            ]
        })
        .collect();
    if good > 0 {
        put(
            dir,
            "transactions",
            finopsia_core::schema::INCOMING.clone(),
            &rows,
        )
        .await;
    }
    let rows: Vec<Vec<(&str, String)>> = (0..bad)
        .map(|i| {
            vec![
                ("source", "bank".to_string()),
                ("line", i.to_string()),
                ("quarantined_at", ts(at)),
            ]
        })
        .collect();
    if bad > 0 {
        put(
            dir,
            "quarantine",
            finopsia_core::schema::QUARANTINE.clone(),
            &rows,
        )
        .await;
    }
}

#[tokio::test]
async fn quarantine_rate_fires_above_its_percent_in_its_window() {
    let r = rule(serde_json::json!({"type": "quarantine_rate", "percent": 5, "window": "1h"}));
    let tmp = tempfile::tempdir().unwrap();
    arrivals(tmp.path(), 20, 10, now() - Duration::minutes(10)).await;
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("10 of 30 rows"), "{}", f[0].message);
    let tmp = tempfile::tempdir().unwrap();
    arrivals(tmp.path(), 100, 1, now() - Duration::minutes(10)).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    // Old rejects are outside the window.
    let tmp = tempfile::tempdir().unwrap();
    arrivals(tmp.path(), 1, 10, now() - Duration::hours(2)).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

#[tokio::test]
async fn source_silent_fires_after_its_silence_and_for_a_source_never_seen() {
    let r = rule(serde_json::json!({"type": "source_silent", "source": "bank", "after": "30m"}));
    let tmp = tempfile::tempdir().unwrap();
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("ever"), "{}", f[0].message);
    arrivals(tmp.path(), 1, 0, now() - Duration::hours(2)).await;
    let f = eval(tmp.path(), &r, &facts()).await;
    assert!(
        f[0].message.contains("since 2026-03-10 10:00:00 UTC"),
        "{}",
        f[0].message
    );
    arrivals(tmp.path(), 0, 1, now() - Duration::minutes(1)).await;
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

fn run_record(job: &str, id: &str, outcome: &str, at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        job: job.into(),
        run_id: id.into(),
        trigger: "schedule".into(),
        scheduled_for: None,
        started_at: at,
        finished_at: Some(at),
        attempts: 3,
        outcome: outcome.into(),
        error: (outcome != "ok").then(|| "store: conflict".to_string()),
        detail: None,
    }
}

#[tokio::test]
async fn job_failed_follows_the_newest_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = JobRuns::open(tmp.path()).unwrap();
    let r = rule(serde_json::json!({"type": "job_failed"}));
    runs.record(&run_record(
        "forecast_refresh",
        "a",
        "ok",
        now() - Duration::hours(3),
    ))
    .await
    .unwrap();
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
    runs.record(&run_record(
        "forecast_refresh",
        "b",
        "failed",
        now() - Duration::hours(2),
    ))
    .await
    .unwrap();
    let f = eval(tmp.path(), &r, &facts()).await;
    assert_eq!(f.len(), 1);
    assert!(
        f[0].message.contains("failed after 3 attempt(s)"),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("store: conflict"), "{}", f[0].message);
    // A run still going does not hide the failure; a later success does.
    let mut running = run_record(
        "forecast_refresh",
        "c",
        "running",
        now() - Duration::hours(1),
    );
    running.finished_at = None;
    runs.record(&running).await.unwrap();
    assert_eq!(eval(tmp.path(), &r, &facts()).await.len(), 1);
    runs.record(&run_record("forecast_refresh", "c", "ok", now()))
        .await
        .unwrap();
    assert!(eval(tmp.path(), &r, &facts()).await.is_empty());
}

#[tokio::test]
async fn sink_backlog_fires_above_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rule(serde_json::json!({"type": "sink_backlog", "max_buffered": 100}));
    let mut f = facts();
    f.sink_buffered = BTreeMap::from([("influx".to_string(), 5000), ("hook".to_string(), 3)]);
    let found = eval(tmp.path(), &r, &f).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "influx");
    f.sink_buffered.insert("influx".into(), 100);
    assert!(eval(tmp.path(), &r, &f).await.is_empty());
}

#[test]
fn rule_keys_are_checked_against_their_type() {
    let cfg = |rules: serde_json::Value| -> AlertsConfig {
        serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap()
    };
    let none = Default::default();
    let e = cfg(serde_json::json!({"x": {"type": "runway_below"}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("needs days"), "{e}");
    let e = cfg(serde_json::json!({"x": {"type": "job_failed", "percent": 5}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("percent does not apply"), "{e}");
    let e = cfg(serde_json::json!({"x": {"type": "balance_below", "currency": "NGN", "threshold": "1.234"}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("threshold"), "{e}");
    let e = cfg(serde_json::json!({"x": {"type": "job_failed", "channels": ["nope"]}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("no channel \"nope\""), "{e}");
    assert!(serde_json::from_value::<RuleConfig>(serde_json::json!({"type": "nonsense"})).is_err());
    let e = cfg(serde_json::json!({"x": {"type": "quarantine_rate", "percent": 150}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("between 0 and 100"), "{e}");
    cfg(serde_json::json!({"x": {"type": "recurring_larger", "percent": 150}}))
        .validate(&none)
        .unwrap();
    let e = cfg(serde_json::json!({"x": {"type": "transaction_spike", "k": -1}}))
        .validate(&none)
        .unwrap_err();
    assert!(e.to_string().contains("k = -1"), "{e}");
}

/// Records what it is asked to send; fails while `down`.
struct Recorder {
    sent: Mutex<Vec<Notification>>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Channel for Recorder {
    fn name(&self) -> &str {
        "rec"
    }
    async fn send(&self, n: &Notification) -> Result<(), String> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("receiver down".into());
        }
        self.sent.lock().unwrap().push(n.clone());
        Ok(())
    }
}

#[tokio::test]
async fn state_survives_runs_repeats_are_throttled_and_failed_sends_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg: AlertsConfig = serde_json::from_value(serde_json::json!({
        "channels": ["rec"],
        "repeat_interval": "24h",
        "rules": {"quiet_bank": {"type": "source_silent", "source": "bank", "after": "30m", "severity": "critical"}}
    }))
    .unwrap();
    let rec = Arc::new(Recorder {
        sent: Mutex::new(Vec::new()),
        down: false.into(),
    });
    let channels: BTreeMap<String, Arc<dyn Channel>> =
        BTreeMap::from([("rec".to_string(), rec.clone() as Arc<dyn Channel>)]);
    let at = |t: DateTime<Utc>| Facts {
        now: t,
        sink_buffered: BTreeMap::new(),
    };
    let statuses = |rec: &Recorder| -> Vec<String> {
        rec.sent
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.status.clone())
            .collect()
    };
    let t0 = now();
    // Fires once; the next runs (new processes would do the same: the
    // state is in the store) do not fire it again.
    let r = alerts::run(dir, &cfg, &channels, at(t0), None)
        .await
        .unwrap();
    assert_eq!((r.firing, r.new_events, r.delivered), (1, 1, 1));
    alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(1)), None)
        .await
        .unwrap();
    assert_eq!(statuses(&rec), ["firing"]);
    let first = rec.sent.lock().unwrap()[0].clone();
    assert_eq!(first.severity, "critical");
    assert_eq!(first.labels["source"], "bank");
    // After the repeat interval: one repeat, then quiet again.
    alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(25)), None)
        .await
        .unwrap();
    alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(26)), None)
        .await
        .unwrap();
    assert_eq!(statuses(&rec), ["firing", "repeat"]);
    // Data arrives: resolved once, sent when the channel is back.
    arrivals(dir, 1, 0, t0 + Duration::hours(27)).await;
    rec.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(27)), None)
        .await
        .unwrap();
    assert_eq!((r.new_events, r.delivered, r.failed), (1, 0, 1));
    rec.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(27)), None)
        .await
        .unwrap();
    assert_eq!((r.new_events, r.delivered, r.failed), (0, 1, 0));
    alerts::run(dir, &cfg, &channels, at(t0 + Duration::hours(27)), None)
        .await
        .unwrap();
    assert_eq!(statuses(&rec), ["firing", "repeat", "resolved"]);
    let ids: std::collections::BTreeSet<String> = rec
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.event_id.clone())
        .collect();
    assert_eq!(ids.len(), 3, "every change has its own event id");
    // The firing view is empty again; the history has every change.
    let mut store = Store::open(dir).unwrap().with_views(finopsia_ops::views());
    let firing = store
        .query_readonly("SELECT COUNT(*) AS n FROM alerts_firing")
        .await
        .unwrap();
    assert_eq!(firing[0].num_rows(), 1);
    let n = cast(
        firing[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .unwrap();
    assert_eq!(
        n.as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        0
    );
}

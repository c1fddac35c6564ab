//! Alert rules, their firing/resolved state, and notification delivery
//! (the `alert_evaluation` job).
//!
//! Each run evaluates every rule in `[alerts.rules.NAME]` against the store
//! (and the sinks' backlogs), compares what fires with the state kept in the
//! store, records each change as an event, and delivers the events to the
//! rule's channels.
//!
//! What is committed where, in order:
//! 1. `alert_events` (append-only): one row per change: `firing` when an
//!    alert starts, `repeat` when it still fires `alerts.repeat_interval`
//!    after its last notification, `resolved` when it stops. The newest
//!    event of an alert is its state (the `alerts_firing` view), so a
//!    restart neither fires an alert again nor forgets a resolution.
//! 2. Delivery to each channel (webhook, Slack, e-mail), concurrently per
//!    channel and in event order within one.
//! 3. `alert_deliveries` (append-only): one row per event, channel and
//!    attempt, `ok` or not. An event is delivered to a channel until it has
//!    an `ok` row there (at least once: a crash between 2 and 3 sends it
//!    again, with the same `event_id` for the receiver to drop; failed
//!    channels are retried at the next run, for `alerts.max_delivery_age`).
//!
//! A rule whose evaluation fails (a table it reads is being rewritten, say)
//! keeps its alerts as they are; a rule whose tables do not exist yet has
//! nothing firing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use finopsia_core::notify::{Channel, Notification};
use finopsia_core::settings::{duration, text_or_number};
use finopsia_core::sink::Metrics;
use finopsia_store::{Store, View};
use finopsia_udf_core::currency;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scheduler::JobRuns;

/// Events: one row per change of an alert.
pub const EVENTS: &str = "alert_events";
/// Deliveries: one row per event, channel and attempt.
pub const DELIVERIES: &str = "alert_deliveries";

/// Views over the alert tables.
pub const VIEWS: &[View] = &[View {
    name: "alerts_firing",
    needs: &[EVENTS],
    sql: "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY alert_id ORDER BY at DESC, event_id DESC) AS rn \
          FROM alert_events) WHERE rn = 1 AND kind <> 'resolved'",
    fallback: None,
}];

/// The kinds of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A projected balance below `threshold` within `within_days`.
    BalanceBelow,
    /// Runway (days until the projected balance crosses the forecast's
    /// runway threshold) shorter than `days`.
    RunwayBelow,
    /// A category's spend over the last `window_days` far above its usual
    /// level (median and MAD of the `history` windows before).
    SpendSpike,
    /// One outflow in the last `window_days` far above its category's usual
    /// transaction (median and MAD of the log amounts of the `history`
    /// outflows before).
    TransactionSpike,
    /// A recurring payment more than `grace_days` overdue.
    RecurringMissing,
    /// A recurring payment's latest occurrence more than `percent` above its
    /// usual (median) amount.
    RecurringLarger,
    /// Quarantined rows above `percent` of a source's rows over `window`.
    QuarantineRate,
    /// No rows from `source` for `after` (a deadman).
    SourceSilent,
    /// A job's last run failed after all its retries.
    JobFailed,
    /// A sink's outbox backlog above `max_buffered` entries.
    SinkBacklog,
}

/// One `[alerts.rules.NAME]` section. Which keys apply depends on `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Channels to notify (default: `alerts.channels`).
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Extra labels sent with each notification.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `balance_below`: the amount, exact decimal text in `currency`.
    #[serde(default)]
    pub threshold: Option<String>,
    /// `balance_below` (required), `spend_spike`, `transaction_spike`,
    /// `recurring_missing`, `recurring_larger`: only this currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// `balance_below`: how far ahead to look (default 30).
    #[serde(default)]
    pub within_days: Option<u32>,
    /// `balance_below`, `runway_below`: `lower` (the interval's lower
    /// bound, the default) or `yhat` (the forecast itself).
    #[serde(default)]
    pub bound: Option<String>,
    /// `runway_below`: fewer days than this fires.
    #[serde(default)]
    pub days: Option<u32>,
    /// `spend_spike`, `transaction_spike`: only this category.
    #[serde(default)]
    pub category: Option<String>,
    /// `spend_spike`: window length in days (default 7);
    /// `transaction_spike`: how recent a transaction must be (default 7).
    #[serde(default)]
    pub window_days: Option<u32>,
    /// `spend_spike`: earlier windows that make the usual level (default
    /// 12); `transaction_spike`: earlier outflows of the category (default
    /// 50).
    #[serde(default)]
    pub history: Option<u32>,
    /// `spend_spike` (default 3.5), `transaction_spike` (default 4): the
    /// robust z-score above which it fires.
    #[serde(default)]
    pub k: Option<f64>,
    /// `recurring_missing`: days late before it fires (default 3).
    #[serde(default)]
    pub grace_days: Option<u32>,
    /// `quarantine_rate`: percent of a source's rows (default 5);
    /// `recurring_larger`: percent above the usual amount (default 50).
    #[serde(default)]
    pub percent: Option<f64>,
    /// `quarantine_rate`: the look-back (default `1h`).
    #[serde(default)]
    pub window: Option<String>,
    /// `source_silent` (required), `quarantine_rate`: the source.
    #[serde(default)]
    pub source: Option<String>,
    /// `source_silent`: silence that fires (default `30m`).
    #[serde(default)]
    pub after: Option<String>,
    /// `job_failed`: only this job (default every job).
    #[serde(default)]
    pub job: Option<String>,
    /// `sink_backlog`: only this sink (default every sink).
    #[serde(default)]
    pub sink: Option<String>,
    /// `sink_backlog`: entries waiting above this fire (default 1000).
    #[serde(default)]
    pub max_buffered: Option<u64>,
}

fn default_severity() -> String {
    "warning".into()
}

/// The `[alerts]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Channels of every rule that names none.
    pub channels: Vec<String>,
    /// A still-firing alert is notified again after this (`0`: never).
    #[serde(deserialize_with = "text_or_number")]
    pub repeat_interval: String,
    /// Undelivered events older than this are no longer retried.
    #[serde(deserialize_with = "text_or_number")]
    pub max_delivery_age: String,
    /// Each channel send is cut off after this.
    #[serde(deserialize_with = "text_or_number")]
    pub send_timeout: String,
    pub rules: BTreeMap<String, RuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            channels: Vec::new(),
            repeat_interval: "24h".into(),
            max_delivery_age: "7d".into(),
            send_timeout: "10s".into(),
            rules: BTreeMap::new(),
        }
    }
}

impl AlertsConfig {
    /// Checks every rule's keys, and that each channel it names exists.
    pub fn validate(&self, channels: &BTreeSet<String>) -> Result<()> {
        duration("alerts.repeat_interval", &self.repeat_interval)?;
        duration("alerts.max_delivery_age", &self.max_delivery_age)?;
        duration("alerts.send_timeout", &self.send_timeout)?;
        for c in &self.channels {
            if !channels.contains(c) {
                return Err(Error::Config(format!(
                    "alerts.channels: no channel {c:?} (define [channels.{c}])"
                )));
            }
        }
        for (name, r) in &self.rules {
            r.validate(name)?;
            for c in r.channels.iter().flatten() {
                if !channels.contains(c) {
                    return Err(Error::Config(format!(
                        "alerts.rules.{name}.channels: no channel {c:?} (define [channels.{c}])"
                    )));
                }
            }
        }
        Ok(())
    }

    fn repeat(&self) -> Duration {
        duration("", &self.repeat_interval).unwrap_or(Duration::ZERO)
    }
}

impl RuleConfig {
    fn validate(&self, name: &str) -> Result<()> {
        let err = |m: String| Err(Error::Config(format!("alerts.rules.{name}: {m}")));
        if !matches!(self.severity.as_str(), "info" | "warning" | "critical") {
            return err(format!(
                "severity = {:?}: use info, warning or critical",
                self.severity
            ));
        }
        if let Some(b) = &self.bound {
            if !matches!(b.as_str(), "lower" | "yhat") {
                return err(format!("bound = {b:?}: use lower or yhat"));
            }
        }
        let allowed: &[&str] = match self.kind {
            RuleKind::BalanceBelow => &["threshold", "currency", "within_days", "bound"],
            RuleKind::RunwayBelow => &["days", "bound", "currency"],
            RuleKind::SpendSpike => &["currency", "category", "window_days", "history", "k"],
            RuleKind::TransactionSpike => &["currency", "category", "window_days", "history", "k"],
            RuleKind::RecurringMissing => &["grace_days", "currency"],
            RuleKind::RecurringLarger => &["percent", "currency"],
            RuleKind::QuarantineRate => &["percent", "window", "source"],
            RuleKind::SourceSilent => &["source", "after"],
            RuleKind::JobFailed => &["job"],
            RuleKind::SinkBacklog => &["sink", "max_buffered"],
        };
        for (key, set) in [
            ("threshold", self.threshold.is_some()),
            ("currency", self.currency.is_some()),
            ("within_days", self.within_days.is_some()),
            ("bound", self.bound.is_some()),
            ("days", self.days.is_some()),
            ("category", self.category.is_some()),
            ("window_days", self.window_days.is_some()),
            ("history", self.history.is_some()),
            ("k", self.k.is_some()),
            ("grace_days", self.grace_days.is_some()),
            ("percent", self.percent.is_some()),
            ("window", self.window.is_some()),
            ("source", self.source.is_some()),
            ("after", self.after.is_some()),
            ("job", self.job.is_some()),
            ("sink", self.sink.is_some()),
            ("max_buffered", self.max_buffered.is_some()),
        ] {
            if set && !allowed.contains(&key) {
                return err(format!(
                    "{key} does not apply to type {:?} (it takes {})",
                    self.kind,
                    allowed.join(", ")
                ));
            }
        }
        match self.kind {
            RuleKind::BalanceBelow => {
                let Some(c) = &self.currency else {
                    return err("balance_below needs currency (the threshold's)".into());
                };
                let Some(exp) = currency::exponent(c) else {
                    return err(format!("currency {c:?} is not an ISO 4217 code"));
                };
                let Some(t) = &self.threshold else {
                    return err("balance_below needs threshold".into());
                };
                parse_money(t, exp).map_err(|m| {
                    Error::Config(format!("alerts.rules.{name}.threshold = {t:?}: {m}"))
                })?;
            }
            RuleKind::RunwayBelow if self.days.is_none() => {
                return err("runway_below needs days".into());
            }
            RuleKind::SourceSilent if self.source.is_none() => {
                return err("source_silent needs source".into());
            }
            _ => {}
        }
        for (key, v) in [("window", &self.window), ("after", &self.after)] {
            if let Some(v) = v {
                duration(&format!("alerts.rules.{name}.{key}"), v)?;
            }
        }
        if let Some(p) = self.percent {
            let max = if self.kind == RuleKind::QuarantineRate {
                100.0
            } else {
                f64::MAX
            };
            if !(p >= 0.0 && p <= max) {
                return err(format!("percent = {p}: between 0 and {max}"));
            }
        }
        if let Some(k) = self.k {
            if !(k > 0.0 && k.is_finite()) {
                return err(format!("k = {k}: a positive number"));
            }
        }
        Ok(())
    }
}

/// Exact decimal text (optionally negative) to minor units.
fn parse_money(text: &str, exponent: u8) -> std::result::Result<i64, String> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = finopsia_core::money::parse_amount(
        digits,
        finopsia_core::money::AmountUnit::Major,
        exponent,
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok(if neg { -v } else { v })
}

/// Money for a message: `NGN 1234.50`.
fn money_minor(minor: i64, cur: &str) -> String {
    let exp = currency::exponent(cur).unwrap_or(2);
    format!("{cur} {}", currency::format_minor(minor, exp))
}

/// A forecast value (major units, estimated) for a message.
fn money_major(v: f64, cur: &str) -> String {
    let exp = currency::exponent(cur).unwrap_or(2) as usize;
    format!("{cur} {v:.exp$}")
}

/// What a rule found firing: one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Identifies the alert within its rule (a series, a category…).
    pub key: String,
    pub message: String,
    /// The number the rule compared (a balance, a count, days…).
    pub value: Option<f64>,
    pub labels: BTreeMap<String, String>,
}

/// What the rules see besides the store.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: DateTime<Utc>,
    /// Outbox entries waiting per sink.
    pub sink_buffered: BTreeMap<String, u64>,
}

/// Every column as text (`None` for null), one row per entry.
fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<ArrayRef> = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        (!s.is_null(i)).then(|| s.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn num(v: &Option<String>) -> Option<f64> {
    v.as_deref().and_then(|s| s.parse().ok())
}

fn day(v: &Option<String>) -> Option<NaiveDate> {
    v.as_deref()
        .and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Evaluates one rule. `Ok(None)`: its tables do not exist (nothing fires).
pub async fn evaluate(
    rule: &RuleConfig,
    store: &mut Store,
    runs: &JobRuns,
    facts: &Facts,
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let bound_col = |r: &RuleConfig| match r.bound.as_deref() {
        Some("yhat") => ("yhat", "below_threshold_date", "forecast"),
        _ => ("yhat_lower", "lower_below_threshold_date", "lower bound"),
    };
    match rule.kind {
        RuleKind::BalanceBelow => {
            if !store.exists("forecasts") || !store.exists("forecast_runs") {
                return Ok(out);
            }
            let cur = rule.currency.clone().unwrap_or_default();
            let exp = currency::exponent(&cur).unwrap_or(2);
            let threshold_minor = parse_money(rule.threshold.as_deref().unwrap_or("0"), exp)
                .map_err(Error::Config)?;
            let threshold = threshold_minor as f64 / 10f64.powi(exp as i32);
            let (col, _, what) = bound_col(rule);
            let within = rule.within_days.unwrap_or(30);
            let rows = text_rows(
                &store
                    .query_readonly(&format!(
                        "SELECT f.series_id, f.ds, f.{col}, r.as_of FROM forecasts_latest f \
                         JOIN runway r ON f.series_id = r.series_id \
                         WHERE f.currency = {} AND f.ds > r.as_of \
                         AND f.ds <= r.as_of + INTERVAL '{within} days' AND f.{col} < {threshold} \
                         ORDER BY f.series_id, f.ds",
                        quote(&cur)
                    ))
                    .await?,
            )?;
            let mut seen = BTreeSet::new();
            for r in rows {
                let series = r[0].clone().unwrap_or_default();
                if !seen.insert(series.clone()) {
                    continue; // the first day below is the one to report
                }
                let v = num(&r[2]).unwrap_or(0.0);
                out.push(Finding {
                    key: series.clone(),
                    message: format!(
                        "{series}: projected balance ({what}) falls to {} on {}, below {} (within {within} days of {})",
                        money_major(v, &cur),
                        r[1].as_deref().unwrap_or("?"),
                        money_minor(threshold_minor, &cur),
                        r[3].as_deref().unwrap_or("?"),
                    ),
                    value: Some(v),
                    labels: BTreeMap::from([
                        ("series".into(), series),
                        ("currency".into(), cur.clone()),
                    ]),
                });
            }
        }
        RuleKind::RunwayBelow => {
            if !store.exists("forecasts") || !store.exists("forecast_runs") {
                return Ok(out);
            }
            let (_, date_col, what) = bound_col(rule);
            let days = rule.days.unwrap_or(0) as i64;
            let filter = rule
                .currency
                .as_deref()
                .map(|c| format!("WHERE currency = {}", quote(c)))
                .unwrap_or_default();
            let rows = text_rows(
                &store
                    .query_readonly(&format!(
                        "SELECT series_id, currency, as_of, {date_col}, runway_threshold FROM runway {filter}"
                    ))
                    .await?,
            )?;
            for r in rows {
                let (Some(as_of), Some(below)) = (day(&r[2]), day(&r[3])) else {
                    continue; // never below the threshold within the horizon
                };
                let runway = (below - as_of).num_days();
                if runway < days {
                    let series = r[0].clone().unwrap_or_default();
                    let cur = r[1].clone().unwrap_or_default();
                    out.push(Finding {
                        key: series.clone(),
                        message: format!(
                            "{series}: runway {runway} days ({what}): the balance is projected below {} on {below} (as of {as_of}; alert under {days} days)",
                            money_major(num(&r[4]).unwrap_or(0.0), &cur),
                        ),
                        value: Some(runway as f64),
                        labels: BTreeMap::from([
                            ("series".into(), series),
                            ("currency".into(), cur),
                        ]),
                    });
                }
            }
        }
        RuleKind::SpendSpike => {
            if !store.exists("transactions") {
                return Ok(out);
            }
            let w = rule.window_days.unwrap_or(7).max(1) as i64;
            let h = rule.history.unwrap_or(12).max(3) as i64;
            let k = rule.k.unwrap_or(3.5);
            let mut filter = String::new();
            if let Some(c) = &rule.currency {
                filter.push_str(&format!(" AND currency = {}", quote(c)));
            }
            if let Some(c) = &rule.category {
                filter.push_str(&format!(" AND category = {}", quote(c)));
            }
            // Windows end at the newest transaction; only the `history`
            // windows before the current one are read.
            let Some(as_of) = latest_day(store).await? else {
                return Ok(out);
            };
            let since = as_of - chrono::Duration::days(w * (h + 1) - 1);
            let rows = text_rows(
                &store
                    .query_readonly(&format!(
                        "SELECT currency, COALESCE(category, '(none)'), \
                         CAST(date_trunc('day', event_time) AS DATE) AS d, SUM(-amount_minor) \
                         FROM transactions WHERE amount_minor < 0 \
                         AND event_time >= CAST('{since}' AS DATE){filter} GROUP BY 1, 2, 3"
                    ))
                    .await?,
            )?;
            // (currency, category) → spend per window back from as_of.
            let mut buckets: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
            for r in &rows {
                let Some(d) = day(&r[2]) else { continue };
                let b = (as_of - d).num_days() / w;
                if b > h {
                    continue;
                }
                let v: i64 = r[3].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
                let e = buckets
                    .entry((
                        r[0].clone().unwrap_or_default(),
                        r[1].clone().unwrap_or_default(),
                    ))
                    .or_insert_with(|| vec![0; h as usize + 1]);
                e[b as usize] += v;
            }
            for ((cur, cat), spend) in buckets {
                let current = spend[0];
                let mut past: Vec<i64> = spend[1..].to_vec();
                if past.iter().filter(|v| **v > 0).count() < (h as usize).div_ceil(2) {
                    continue; // too little history to know what is usual
                }
                past.sort_unstable();
                let median = past[past.len() / 2] as f64;
                let mut dev: Vec<f64> = past.iter().map(|v| (*v as f64 - median).abs()).collect();
                dev.sort_by(f64::total_cmp);
                let mad = dev[dev.len() / 2] * 1.4826;
                let scale = mad.max(0.1 * median).max(1.0);
                let z = (current as f64 - median) / scale;
                if z > k {
                    out.push(Finding {
                        key: format!("{cur}/{cat}"),
                        message: format!(
                            "{cat} spend {} in the {w} days to {as_of} is {:.1}× the usual {} (median of the {h} windows before; robust z {z:.1} > {k})",
                            money_minor(current, &cur),
                            current as f64 / median.max(1.0),
                            money_minor(median as i64, &cur),
                        ),
                        value: Some(current as f64),
                        labels: BTreeMap::from([
                            ("category".into(), cat.clone()),
                            ("currency".into(), cur.clone()),
                        ]),
                    });
                }
            }
        }
        RuleKind::TransactionSpike => transaction_spike(rule, store, &mut out).await?,
        RuleKind::RecurringLarger => recurring_larger(rule, store, &mut out).await?,
        RuleKind::RecurringMissing => {
            if !store.exists("recurring") || !store.exists("transactions") {
                return Ok(out);
            }
            let grace = rule.grace_days.unwrap_or(3) as i64;
            let Some(as_of) = latest_day(store).await? else {
                return Ok(out);
            };
            let filter = rule
                .currency
                .as_deref()
                .map(|c| format!("WHERE currency = {}", quote(c)))
                .unwrap_or_default();
            let rows = text_rows(
                &store
                    .query_readonly(&format!(
                        "SELECT account_id, currency, key, category, cadence, amount, next_expected FROM recurring {filter}"
                    ))
                    .await?,
            )?;
            for r in rows {
                let Some(next) = day(&r[6]) else { continue };
                let late = (as_of - next).num_days();
                if late > grace {
                    let cur = r[1].clone().unwrap_or_default();
                    let what = r[3].clone().or_else(|| r[2].clone()).unwrap_or_default();
                    let key = format!(
                        "{}/{}",
                        r[0].as_deref().unwrap_or(""),
                        r[2].as_deref().unwrap_or("")
                    );
                    out.push(Finding {
                        key,
                        message: format!(
                            "The {} {what} payment of about {} on account {} was expected on {next} and has not arrived ({late} days late as of {as_of})",
                            r[4].as_deref().unwrap_or(""),
                            money_major(num(&r[5]).unwrap_or(0.0).abs(), &cur),
                            r[0].as_deref().unwrap_or("?"),
                        ),
                        value: Some(late as f64),
                        labels: BTreeMap::from([
                            ("account".into(), r[0].clone().unwrap_or_default()),
                            ("currency".into(), cur),
                        ]),
                    });
                }
            }
        }
        RuleKind::QuarantineRate => {
            if !store.exists("quarantine") {
                return Ok(out);
            }
            let window = duration("window", rule.window.as_deref().unwrap_or("1h"))?;
            let percent = rule.percent.unwrap_or(5.0);
            let cutoff = (facts.now - chrono::Duration::from_std(window).unwrap_or_default())
                .timestamp_micros();
            let filter = rule
                .source
                .as_deref()
                .map(|s| format!(" AND source = {}", quote(s)))
                .unwrap_or_default();
            let q = text_rows(
                &store
                    .query_readonly(&format!(
                        "SELECT source, COUNT(*) FROM quarantine \
                         WHERE CAST(quarantined_at AS BIGINT) > {cutoff}{filter} GROUP BY source"
                    ))
                    .await?,
            )?;
            let t: BTreeMap<String, f64> = if store.exists("transactions") {
                text_rows(
                    &store
                        .query_readonly(&format!(
                            "SELECT source, COUNT(*) FROM transactions \
                             WHERE CAST(ingested_at AS BIGINT) > {cutoff}{filter} GROUP BY source"
                        ))
                        .await?,
                )?
                .into_iter()
                .map(|r| (r[0].clone().unwrap_or_default(), num(&r[1]).unwrap_or(0.0)))
                .collect()
            } else {
                BTreeMap::new()
            };
            for r in q {
                let source = r[0].clone().unwrap_or_default();
                let bad = num(&r[1]).unwrap_or(0.0);
                let good = t.get(&source).copied().unwrap_or(0.0);
                let rate = 100.0 * bad / (bad + good).max(1.0);
                if rate > percent {
                    out.push(Finding {
                        key: source.clone(),
                        message: format!(
                            "{source}: {bad} of {} rows quarantined in the last {} ({rate:.1}% > {percent}%)",
                            bad + good,
                            rule.window.as_deref().unwrap_or("1h"),
                        ),
                        value: Some(rate),
                        labels: BTreeMap::from([("source".into(), source)]),
                    });
                }
            }
        }
        RuleKind::SourceSilent => {
            let source = rule.source.clone().unwrap_or_default();
            let after = duration("after", rule.after.as_deref().unwrap_or("30m"))?;
            let mut last: Option<i64> = None;
            for (table, col) in [
                ("transactions", "ingested_at"),
                ("quarantine", "quarantined_at"),
            ] {
                if store.exists(table) {
                    let r = text_rows(
                        &store
                            .query_readonly(&format!(
                                "SELECT MAX(CAST({col} AS BIGINT)) FROM {table} WHERE source = {}",
                                quote(&source)
                            ))
                            .await?,
                    )?;
                    let v = r.first().and_then(|r| r[0].as_deref()?.parse::<i64>().ok());
                    last = last.max(v);
                }
            }
            let silent_for = last.map(|us| facts.now.timestamp_micros() - us);
            if silent_for.is_none_or(|s| s > after.as_micros() as i64) {
                let since = last
                    .and_then(DateTime::<Utc>::from_timestamp_micros)
                    .map(|t| format!("since {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                    .unwrap_or_else(|| "ever".into());
                out.push(Finding {
                    key: source.clone(),
                    message: format!(
                        "No data from source {source} {since} (alert after {})",
                        rule.after.as_deref().unwrap_or("30m")
                    ),
                    value: silent_for.map(|s| s as f64 / 1e6),
                    labels: BTreeMap::from([("source".into(), source)]),
                });
            }
        }
        RuleKind::JobFailed => {
            let runs = runs.runs(rule.job.as_deref(), 10_000).await?;
            let mut seen = BTreeSet::new();
            for r in runs {
                if !matches!(r.outcome.as_str(), "ok" | "failed" | "timeout") {
                    continue;
                }
                if !seen.insert(r.job.clone()) {
                    continue; // newest finished run of the job only
                }
                if r.outcome != "ok" {
                    out.push(Finding {
                        key: r.job.clone(),
                        message: format!(
                            "Job {} {} after {} attempt(s) at {}: {}",
                            r.job,
                            if r.outcome == "timeout" {
                                "timed out"
                            } else {
                                "failed"
                            },
                            r.attempts,
                            r.finished_at
                                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                                .unwrap_or_default(),
                            r.error.clone().unwrap_or_default()
                        ),
                        value: Some(r.attempts as f64),
                        labels: BTreeMap::from([("job".into(), r.job.clone())]),
                    });
                }
            }
        }
        RuleKind::SinkBacklog => {
            let max = rule.max_buffered.unwrap_or(1000);
            for (sink, n) in &facts.sink_buffered {
                if rule.sink.as_ref().is_some_and(|s| s != sink) {
                    continue;
                }
                if *n > max {
                    out.push(Finding {
                        key: sink.clone(),
                        message: format!(
                            "Sink {sink} has {n} emissions waiting in its outbox (alert above {max})"
                        ),
                        value: Some(*n as f64),
                        labels: BTreeMap::from([("sink".into(), sink.clone())]),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The date of the newest transaction: what "now" is for rules over
/// event time (an import of last year's file is judged as of its own end).
async fn latest_day(store: &mut Store) -> Result<Option<NaiveDate>> {
    let latest = text_rows(
        &store
            .query_readonly("SELECT CAST(MAX(event_time) AS DATE) FROM transactions")
            .await?,
    )?;
    Ok(latest.first().and_then(|r| day(&r[0])))
}

fn median_of(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `transaction_spike`: each outflow of the last `window_days` against the
/// `history` outflows of its currency and category before the window.
/// Amounts of money are spread multiplicatively (a supplier bill of 10k
/// and one of 1M are both usual), so the robust z-score is taken on their
/// logarithms: `(ln x − median) / (1.4826 · MAD)`, the scale floored at
/// 0.1 (±10%) so that a category of identical amounts still needs a real
/// jump. At least 10 earlier outflows are needed to know what is usual.
async fn transaction_spike(
    rule: &RuleConfig,
    store: &mut Store,
    out: &mut Vec<Finding>,
) -> Result<()> {
    if !store.exists("transactions") {
        return Ok(());
    }
    let Some(as_of) = latest_day(store).await? else {
        return Ok(());
    };
    let w = rule.window_days.unwrap_or(7).max(1) as i64;
    let h = rule.history.unwrap_or(50).max(10) as usize;
    let k = rule.k.unwrap_or(4.0);
    let since = as_of - chrono::Duration::days(w);
    let mut filter = String::new();
    if let Some(c) = &rule.currency {
        filter.push_str(&format!(" AND currency = {}", quote(c)));
    }
    if let Some(c) = &rule.category {
        filter.push_str(&format!(" AND category = {}", quote(c)));
    }
    // Newest first; the history is bounded to the year before the window.
    let rows = text_rows(
        &store
            .query_readonly(&format!(
                "SELECT source, transaction_id, currency, COALESCE(category, '(none)'), \
                 CAST(event_time AS DATE) AS d, -amount_minor, \
                 COALESCE(NULLIF(counterparty, ''), description) \
                 FROM transactions WHERE amount_minor < 0 \
                 AND event_time >= CAST('{}' AS DATE){filter} \
                 ORDER BY event_time DESC, source, transaction_id",
                since - chrono::Duration::days(366)
            ))
            .await?,
    )?;
    let mut groups: BTreeMap<(String, String), Vec<&Vec<Option<String>>>> = BTreeMap::new();
    for r in &rows {
        groups
            .entry((
                r[2].clone().unwrap_or_default(),
                r[3].clone().unwrap_or_default(),
            ))
            .or_default()
            .push(r);
    }
    for ((cur, cat), txns) in groups {
        let recent = txns
            .iter()
            .take_while(|r| day(&r[4]).is_some_and(|d| d > since))
            .count();
        let mut past: Vec<f64> = txns[recent..]
            .iter()
            .take(h)
            .filter_map(|r| r[5].as_deref()?.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .map(|v| (v as f64).ln())
            .collect();
        if recent == 0 || past.len() < 10 {
            continue;
        }
        past.sort_by(f64::total_cmp);
        let median = median_of(&past);
        let mut dev: Vec<f64> = past.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let scale = (median_of(&dev) * 1.4826).max(0.1);
        for r in &txns[..recent] {
            let Some(amount) = r[5].as_deref().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let z = ((amount as f64).ln() - median) / scale;
            if z <= k {
                continue;
            }
            let source = r[0].clone().unwrap_or_default();
            let id = r[1].clone().unwrap_or_default();
            let usual = median.exp().round() as i64;
            let to = r[6]
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            out.push(Finding {
                key: format!("{source}/{id}"),
                message: format!(
                    "{cat} payment {}{to} on {} is {:.1}× the category's usual {} (median of its {} outflows before; robust z {z:.1} > {k} on log amounts)",
                    money_minor(amount, &cur),
                    r[4].as_deref().unwrap_or("?"),
                    amount as f64 / usual.max(1) as f64,
                    money_minor(usual, &cur),
                    past.len(),
                ),
                value: Some(amount as f64),
                labels: BTreeMap::from([
                    ("category".into(), cat.clone()),
                    ("currency".into(), cur.clone()),
                    ("source".into(), source),
                    ("transaction_id".into(), id),
                ]),
            });
        }
    }
    Ok(())
}

/// `recurring_larger`: each detected recurring outflow's latest occurrence
/// (on or after the pattern's last known date; same-day payments of the
/// pattern summed, as detection does) against the pattern's median amount.
/// It resolves when a later occurrence is usual again.
async fn recurring_larger(
    rule: &RuleConfig,
    store: &mut Store,
    out: &mut Vec<Finding>,
) -> Result<()> {
    if !store.exists("recurring") || !store.exists("transactions") {
        return Ok(());
    }
    let percent = rule.percent.unwrap_or(50.0);
    let filter = rule
        .currency
        .as_deref()
        .map(|c| format!(" AND currency = {}", quote(c)))
        .unwrap_or_default();
    let patterns = text_rows(
        &store
            .query_readonly(&format!(
                "SELECT account_id, currency, key, category, cadence, amount, last_date \
                 FROM recurring WHERE direction = 'outflow'{filter}"
            ))
            .await?,
    )?;
    let Some(since) = patterns.iter().filter_map(|p| day(&p[6])).min() else {
        return Ok(());
    };
    let accounts: BTreeSet<String> = patterns.iter().filter_map(|p| p[0].clone()).collect();
    let list = accounts
        .iter()
        .map(|a| quote(a))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = text_rows(
        &store
            .query_readonly(&format!(
                "SELECT account_id, currency, CAST(event_time AS DATE), -amount_minor, \
                 COALESCE(NULLIF(counterparty, ''), description) FROM transactions \
                 WHERE amount_minor < 0 AND account_id IN ({list}) \
                 AND event_time >= CAST('{since}' AS DATE){filter}"
            ))
            .await?,
    )?;
    // (account, currency, key) → day → outflow, keyed as detection keys.
    let mut paid: BTreeMap<(String, String, String), BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for r in &rows {
        let (Some(d), Some(v)) = (
            day(&r[2]),
            r[3].as_deref().and_then(|s| s.parse::<i64>().ok()),
        ) else {
            continue;
        };
        let raw = r[4].clone().unwrap_or_default();
        let key = keys
            .entry(raw)
            .or_insert_with_key(|raw| finopsia_udf_core::text::normalize_description(raw))
            .clone();
        *paid
            .entry((
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
                key,
            ))
            .or_default()
            .entry(d)
            .or_default() += v;
    }
    for p in patterns {
        let (account, cur, key) = (
            p[0].clone().unwrap_or_default(),
            p[1].clone().unwrap_or_default(),
            p[2].clone().unwrap_or_default(),
        );
        let Some(last) = day(&p[6]) else { continue };
        let Some((on, amount)) = paid
            .get(&(account.clone(), cur.clone(), key.clone()))
            .and_then(|days| days.range(last..).next_back())
        else {
            continue;
        };
        let exp = currency::exponent(&cur).unwrap_or(2);
        let usual = (num(&p[5]).unwrap_or(0.0).abs() * 10f64.powi(exp as i32)).round() as i64;
        if usual <= 0 || (*amount as f64) <= usual as f64 * (1.0 + percent / 100.0) {
            continue;
        }
        let what = p[3].clone().unwrap_or_else(|| key.clone());
        out.push(Finding {
            key: format!("{account}/{key}"),
            message: format!(
                "The {} {what} payment on account {account} was {} on {on}, {:.0}% above its usual {} (alert above {percent}%)",
                p[4].as_deref().unwrap_or(""),
                money_minor(*amount, &cur),
                100.0 * (*amount - usual) as f64 / usual as f64,
                money_minor(usual, &cur),
            ),
            value: Some(*amount as f64),
            labels: BTreeMap::from([
                ("account".into(), account.clone()),
                ("currency".into(), cur.clone()),
            ]),
        });
    }
    Ok(())
}

fn events_schema() -> SchemaRef {
    let ts = || {
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("alert_id", DataType::Utf8, true),
        Field::new("rule", DataType::Utf8, true),
        Field::new("type", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, true),
        Field::new("severity", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, true),
        Field::new("labels", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("channels", DataType::Utf8, true),
        Field::new("at", ts(), true),
    ]))
}

fn deliveries_schema() -> SchemaRef {
    let ts = || {
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("at", ts(), true),
    ]))
}

/// A stored event with its channels.
#[derive(Debug, Clone)]
struct Event {
    n: Notification,
    channels: Vec<String>,
}

fn rule_kind_name(k: RuleKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn load_events(store: &mut Store, since_us: i64) -> Result<Vec<Event>> {
    if !store.exists(EVENTS) {
        return Ok(Vec::new());
    }
    let rows = text_rows(
        &store
            .query_readonly(&format!(
                "SELECT event_id, alert_id, rule, type, kind, severity, message, labels, value, channels, \
                 CAST(at AS BIGINT) AS at_us FROM {EVENTS} WHERE CAST(at AS BIGINT) >= {since_us} \
                 ORDER BY at_us, event_id"
            ))
            .await?,
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let s = |i: usize| r[i].clone().unwrap_or_default();
            Event {
                n: Notification {
                    event_id: s(0),
                    alert_id: s(1),
                    rule: s(2),
                    kind: s(3),
                    status: s(4),
                    severity: s(5),
                    message: s(6),
                    labels: serde_json::from_str(&s(7)).unwrap_or_default(),
                    value: num(&r[8]),
                    at: r[10]
                        .as_deref()
                        .and_then(|v| v.parse().ok())
                        .and_then(DateTime::<Utc>::from_timestamp_micros)
                        .unwrap_or_default(),
                },
                channels: s(9)
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect())
}

/// Per alert: (its newest event's status, when it was last notified).
async fn load_state(store: &mut Store) -> Result<BTreeMap<String, (String, i64)>> {
    let mut out = BTreeMap::new();
    if !store.exists(EVENTS) {
        return Ok(out);
    }
    let rows = text_rows(
        &store
            .query_readonly(&format!(
                "SELECT alert_id, kind, CAST(at AS BIGINT) AS at_us FROM {EVENTS} ORDER BY at_us, event_id"
            ))
            .await?,
    )?;
    for r in rows {
        let at: i64 = r[2].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        out.insert(
            r[0].clone().unwrap_or_default(),
            (r[1].clone().unwrap_or_default(), at),
        );
    }
    Ok(out)
}

async fn delivered(store: &mut Store) -> Result<BTreeSet<(String, String)>> {
    if !store.exists(DELIVERIES) {
        return Ok(BTreeSet::new());
    }
    Ok(text_rows(
        &store
            .query_readonly(&format!(
                "SELECT event_id, channel FROM {DELIVERIES} WHERE ok"
            ))
            .await?,
    )?
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
        )
    })
    .collect())
}

fn events_batch(events: &[Event]) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&Event) -> String| -> ArrayRef {
        Arc::new(StringArray::from(events.iter().map(f).collect::<Vec<_>>()))
    };
    Ok(RecordBatch::try_new(
        events_schema(),
        vec![
            s(&|e| e.n.event_id.clone()),
            s(&|e| e.n.alert_id.clone()),
            s(&|e| e.n.rule.clone()),
            s(&|e| e.n.kind.clone()),
            s(&|e| {
                e.n.alert_id
                    .split_once('/')
                    .map(|(_, k)| k.to_string())
                    .unwrap_or_default()
            }),
            s(&|e| e.n.status.clone()),
            s(&|e| e.n.severity.clone()),
            s(&|e| e.n.message.clone()),
            s(&|e| serde_json::to_string(&e.n.labels).unwrap_or_default()),
            Arc::new(Float64Array::from(
                events.iter().map(|e| e.n.value).collect::<Vec<_>>(),
            )),
            s(&|e| e.channels.join(",")),
            Arc::new(
                TimestampMicrosecondArray::from(
                    events
                        .iter()
                        .map(|e| e.n.at.timestamp_micros())
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )?)
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub firing: usize,
    pub new_events: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Rules whose evaluation failed (their alerts are left as they were).
    pub rule_errors: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} firing, {} new events, {} notifications delivered, {} failed",
            self.firing, self.new_events, self.delivered, self.failed
        );
        if !self.rule_errors.is_empty() {
            s.push_str(&format!(
                "; rules not evaluated: {}",
                self.rule_errors.join("; ")
            ));
        }
        s
    }
}

/// One evaluation: rules, state changes, deliveries (see the module doc).
pub async fn run(
    data_dir: &Path,
    cfg: &AlertsConfig,
    channels: &BTreeMap<String, Arc<dyn Channel>>,
    facts: Facts,
    metrics: Option<&Metrics>,
) -> Result<Report> {
    let mut report = Report::default();
    let mut store = Store::open(data_dir)?.with_views(crate::views());
    let runs = JobRuns::open(data_dir)?;
    let now = facts.now;
    let state = load_state(&mut store).await?;
    let mut new_events = Vec::new();
    let mut seq = 0u32;
    let mut event = |alert_id: &str,
                     rule: &str,
                     r: &RuleConfig,
                     status: &str,
                     f: Option<&Finding>,
                     message: String| {
        seq += 1;
        let mut labels = r.labels.clone();
        if let Some(f) = f {
            labels.extend(f.labels.clone());
        }
        labels.insert("rule".into(), rule.to_string());
        labels.insert("severity".into(), r.severity.clone());
        Event {
            n: Notification {
                event_id: format!("{alert_id}@{}.{seq}", now.timestamp_micros()),
                alert_id: alert_id.to_string(),
                rule: rule.to_string(),
                kind: rule_kind_name(r.kind),
                status: status.to_string(),
                severity: r.severity.clone(),
                message,
                labels,
                value: f.and_then(|f| f.value),
                at: now,
            },
            channels: r.channels.clone().unwrap_or_else(|| cfg.channels.clone()),
        }
    };
    let repeat = cfg.repeat();
    for (name, rule) in &cfg.rules {
        let span =
            tracing::info_span!("alert_rule", rule = %name, kind = %rule_kind_name(rule.kind));
        let findings =
            match tracing::Instrument::instrument(evaluate(rule, &mut store, &runs, &facts), span)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(rule = %name, error = %e, "alert rule not evaluated");
                    report.rule_errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
        let mut firing_now = BTreeSet::new();
        for f in &findings {
            let alert_id = format!("{name}/{}", f.key);
            firing_now.insert(alert_id.clone());
            match state.get(&alert_id) {
                Some((status, at)) if status != "resolved" => {
                    let since = Duration::from_micros((now.timestamp_micros() - at).max(0) as u64);
                    if !repeat.is_zero() && since >= repeat {
                        new_events.push(event(
                            &alert_id,
                            name,
                            rule,
                            "repeat",
                            Some(f),
                            f.message.clone(),
                        ));
                    }
                }
                _ => new_events.push(event(
                    &alert_id,
                    name,
                    rule,
                    "firing",
                    Some(f),
                    f.message.clone(),
                )),
            }
        }
        report.firing += findings.len();
        if let Some(m) = metrics {
            m.alerts_firing(name, findings.len() as u64);
        }
        let prefix = format!("{name}/");
        for (alert_id, (status, _)) in &state {
            if alert_id.starts_with(&prefix)
                && status != "resolved"
                && !firing_now.contains(alert_id)
            {
                new_events.push(event(
                    alert_id,
                    name,
                    rule,
                    "resolved",
                    None,
                    format!(
                        "Resolved: {}",
                        alert_id.strip_prefix(&prefix).unwrap_or(alert_id)
                    ),
                ));
            }
        }
    }
    report.new_events = new_events.len();
    if !new_events.is_empty() {
        store
            .append(EVENTS, vec![events_batch(&new_events)?], None)
            .await?;
        for e in &new_events {
            tracing::info!(alert = %e.n.alert_id, status = %e.n.status, message = %e.n.message, "alert");
        }
    }

    // Deliveries: every recent event not yet delivered to each channel.
    let max_age = duration("alerts.max_delivery_age", &cfg.max_delivery_age)?;
    let since = now.timestamp_micros() - max_age.as_micros() as i64;
    let events = load_events(&mut store, since).await?;
    let done = delivered(&mut store).await?;
    let timeout = duration("alerts.send_timeout", &cfg.send_timeout)?;
    let mut per_channel: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
    for e in events {
        for c in &e.channels {
            if !done.contains(&(e.n.event_id.clone(), c.clone())) {
                per_channel.entry(c.clone()).or_default().push(e.n.clone());
            }
        }
    }
    let sends = per_channel.into_iter().map(|(name, list)| {
        let channel = channels.get(&name).cloned();
        async move {
            let mut rows = Vec::new();
            let Some(channel) = channel else {
                for n in list {
                    rows.push((
                        n.event_id,
                        name.clone(),
                        Err(format!("no channel {name:?}")),
                    ));
                }
                return rows;
            };
            for n in list {
                let r = match tokio::time::timeout(timeout, channel.send(&n)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                };
                let failed = r.is_err();
                rows.push((n.event_id, name.clone(), r));
                if failed {
                    break; // keep the order: later events wait for the next run
                }
            }
            rows
        }
    });
    let results: Vec<(String, String, std::result::Result<(), String>)> =
        futures::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect();
    if !results.is_empty() {
        for (event_id, channel, r) in &results {
            if let Some(m) = metrics {
                m.alert_notification(channel, r.is_ok());
            }
            match r {
                Ok(()) => report.delivered += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(channel = %channel, event = %event_id, error = %e, "alert notification not delivered; retried at the next evaluation");
                }
            }
        }
        let batch = RecordBatch::try_new(
            deliveries_schema(),
            vec![
                Arc::new(StringArray::from(
                    results.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    results.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
                )),
                Arc::new(BooleanArray::from(
                    results.iter().map(|r| r.2.is_ok()).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    results
                        .iter()
                        .map(|r| r.2.clone().err())
                        .collect::<Vec<_>>(),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Utc::now().timestamp_micros();
                        results.len()
                    ])
                    .with_timezone("UTC"),
                ),
            ],
        )?;
        store.append(DELIVERIES, vec![batch], None).await?;
    }
    Ok(report)
}

//! The built-in jobs and their `[jobs.NAME]` configuration: what each one
//! does, when it is due by default, and which of its failures are worth a
//! retry. The scheduler ([`crate::scheduler`]) runs them.
//!
//! - `forecast_refresh`: refits the forecasts of the series whose data
//!   changed (as `finopsia forecast`). By default every
//!   `forecast.refresh_interval`, at start, and `forecast.refresh_debounce`
//!   after new data; `forecast.refresh_interval = "0"` turns it off.
//! - `alert_evaluation`: evaluates the alert rules and delivers their
//!   notifications ([`crate::alerts`]). Every minute, at start and 5 s
//!   after new data; only when rules are configured.
//! - `categorizer_retrain`: trains and registers a new categorization
//!   model when `train.retrain_after_corrections` corrections were made
//!   since the model in use was trained ([`crate::models::retrain_if_due`]).
//!   Daily at 02:30 in the job's time zone; off while that setting is 0.
//! - `store_maintenance`: compacts and vacuums every table
//!   ([`crate::maintenance`]). By default daily at 03:30 in the job's time
//!   zone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use finopsia_core::settings::{duration, text_or_number};
use finopsia_core::timefmt::parse_duration;
use serde::{Deserialize, Serialize};

use crate::alerts::AlertsConfig;
use crate::config::{ForecastConfig, TrainConfig};
use crate::error::{Error, Result};
use crate::maintenance::{MaintenanceConfig, WindowCompactor};
use crate::retry::{Failure, RetryPolicy};
use crate::scheduler::{JobFn, JobSpec, Missed, Schedule};
use finopsia_core::notify::Channel;
use finopsia_core::sink::Metrics;

/// The forecast refresh's job name.
pub const FORECAST_REFRESH: &str = "forecast_refresh";

/// The store maintenance job's name.
pub const STORE_MAINTENANCE: &str = "store_maintenance";
/// Its default schedule (cron, in the job's time zone).
pub const STORE_MAINTENANCE_CRON: &str = "30 3 * * *";

/// The alert evaluation job's name.
pub const ALERT_EVALUATION: &str = "alert_evaluation";

/// The categorizer retraining job's name.
pub const CATEGORIZER_RETRAIN: &str = "categorizer_retrain";
/// Its default schedule.
pub const CATEGORIZER_RETRAIN_CRON: &str = "30 2 * * *";

/// Every built-in job.
pub const BUILTIN: &[&str] = &[
    FORECAST_REFRESH,
    STORE_MAINTENANCE,
    ALERT_EVALUATION,
    CATEGORIZER_RETRAIN,
];

/// Outbox entries waiting per sink, for the `sink_backlog` rule.
pub type SinkBacklog = Arc<dyn Fn() -> BTreeMap<String, u64> + Send + Sync>;

/// One `[jobs.NAME]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Run it at all.
    pub enabled: bool,
    /// A cron expression (`min hour day month weekday`, seconds optional in
    /// front), in `timezone`. Exclusive with `every`.
    pub schedule: Option<String>,
    /// A fixed interval instead of a cron expression.
    pub every: Option<String>,
    /// IANA time zone of `schedule`.
    pub timezone: String,
    /// A run (every attempt and wait) is cut off after this.
    #[serde(deserialize_with = "text_or_number")]
    pub timeout: String,
    /// Attempts per run, the first included (transient failures only).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time, with ±20% jitter.
    #[serde(deserialize_with = "text_or_number")]
    pub retry_initial: String,
    /// Longest wait between attempts.
    #[serde(deserialize_with = "text_or_number")]
    pub retry_max_interval: String,
    /// No attempt starts later than this after the first.
    #[serde(deserialize_with = "text_or_number")]
    pub retry_max_elapsed: String,
    /// Scheduled runs missed while the service was down: `run_once` or `skip`.
    pub missed: Missed,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            enabled: true,
            schedule: None,
            every: None,
            timezone: "UTC".into(),
            timeout: "1h".into(),
            attempts: 3,
            retry_initial: "30s".into(),
            retry_max_interval: "10m".into(),
            retry_max_elapsed: "30m".into(),
            missed: Missed::RunOnce,
        }
    }
}

impl JobConfig {
    fn schedule(&self, name: &str, default: Schedule) -> Result<Schedule> {
        match (&self.schedule, &self.every) {
            (Some(_), Some(_)) => Err(Error::Config(format!(
                "jobs.{name}: set schedule (cron) or every (interval), not both"
            ))),
            (Some(cron), None) => Schedule::cron(cron, &self.timezone).map_err(|e| match e {
                Error::Config(m) => Error::Config(format!("jobs.{name}.{m}")),
                other => other,
            }),
            (None, Some(every)) => {
                let d = duration(&format!("jobs.{name}.every"), every)?;
                Ok(if d.is_zero() {
                    Schedule::Never
                } else {
                    Schedule::Every(d)
                })
            }
            (None, None) => Ok(default),
        }
    }

    fn retry(&self, name: &str) -> Result<RetryPolicy> {
        let d = |key: &str, v: &str| duration(&format!("jobs.{name}.{key}"), v);
        Ok(RetryPolicy {
            initial: d("retry_initial", &self.retry_initial)?,
            multiplier: 2.0,
            max_interval: d("retry_max_interval", &self.retry_max_interval)?,
            max_elapsed: d("retry_max_elapsed", &self.retry_max_elapsed)?,
            max_attempts: self.attempts.max(1),
            jitter: 0.2,
        })
    }
}

/// A job's default cron schedule in its configured time zone (errors name
/// the job's `timezone` key).
fn default_cron(job: &str, cron: &str, tz: &str) -> Result<Schedule> {
    Schedule::cron(cron, tz).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("jobs.{job}.{m}")),
        other => other,
    })
}

/// Bad input or configuration fails the same way again; the rest (a
/// store conflict, a file system hiccup) is worth a retry.
fn classify(e: Error) -> Failure<String> {
    match e {
        Error::Config(_) | Error::Input { .. } | Error::Model(_) => {
            Failure::Permanent(e.to_string())
        }
        other => Failure::Transient(other.to_string()),
    }
}

/// Checks `[jobs]`: known names, schedules, time zones, durations.
pub fn validate(jobs: &BTreeMap<String, JobConfig>) -> Result<()> {
    for (name, cfg) in jobs {
        if !BUILTIN.contains(&name.as_str()) {
            return Err(Error::Config(format!(
                "jobs.{name}: no such job (built-in jobs: {})",
                BUILTIN.join(", ")
            )));
        }
        cfg.schedule(name, Schedule::Never)?;
        cfg.retry(name)?;
        duration(&format!("jobs.{name}.timeout"), &cfg.timeout)?;
    }
    Ok(())
}

/// What the built-in jobs need.
pub struct Builtin<'a> {
    pub data_dir: &'a Path,
    pub forecast: &'a ForecastConfig,
    pub maintenance: &'a MaintenanceConfig,
    pub jobs: &'a BTreeMap<String, JobConfig>,
    /// The running service's writer; `None` when this process holds the
    /// writer lock itself (`finopsia job run` without a service).
    pub writer: Option<Arc<dyn WindowCompactor>>,
    pub alerts: &'a AlertsConfig,
    pub channels: BTreeMap<String, Arc<dyn Channel>>,
    pub sink_backlog: Option<SinkBacklog>,
    pub metrics: Option<Arc<Metrics>>,
    pub train: &'a TrainConfig,
}

/// The built-in jobs as configured (disabled ones left out).
pub fn builtin(b: Builtin<'_>) -> Result<Vec<JobSpec>> {
    let Builtin {
        data_dir,
        forecast,
        maintenance,
        jobs,
        writer,
        alerts,
        channels,
        sink_backlog,
        metrics,
        train,
    } = b;
    validate(jobs)?;
    maintenance.validate()?;
    let mut out = Vec::new();
    let cfg = jobs.get(FORECAST_REFRESH).cloned().unwrap_or_default();
    let every = forecast.refresh_interval();
    if cfg.enabled && !(every.is_zero() && cfg.schedule.is_none() && cfg.every.is_none()) {
        let default = Schedule::Every(every);
        let run: JobFn = {
            let data_dir: PathBuf = data_dir.to_path_buf();
            let forecast = forecast.clone();
            Arc::new(move |_ctx| {
                let data_dir = data_dir.clone();
                let forecast = forecast.clone();
                Box::pin(async move {
                    if !data_dir.join("tables/transactions/_delta_log").is_dir() {
                        return Ok("no transactions yet".to_string());
                    }
                    let r = crate::forecasts::refresh(&data_dir, &forecast, false, false)
                        .await
                        .map_err(classify)?;
                    if r.failed > 0 && r.refitted == 0 {
                        return Err(Failure::Transient(format!(
                            "all {} series failed to fit",
                            r.failed
                        )));
                    }
                    Ok(format!(
                        "{} series: {} refitted, {} unchanged, {} failed in {:.1} s",
                        r.series, r.refitted, r.unchanged, r.failed, r.seconds
                    ))
                })
            })
        };
        out.push(JobSpec {
            name: FORECAST_REFRESH.into(),
            schedule: cfg.schedule(FORECAST_REFRESH, default)?,
            timeout: parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(3600)),
            retry: cfg.retry(FORECAST_REFRESH)?,
            missed: cfg.missed,
            run_at_start: true,
            after_data: Some(forecast.refresh_debounce()),
            run,
        });
    }
    let cfg = jobs.get(STORE_MAINTENANCE).cloned().unwrap_or_default();
    if cfg.enabled {
        let default = default_cron(STORE_MAINTENANCE, STORE_MAINTENANCE_CRON, &cfg.timezone)?;
        let run: JobFn = {
            let data_dir: PathBuf = data_dir.to_path_buf();
            let maintenance = maintenance.clone();
            Arc::new(move |_ctx| {
                let data_dir = data_dir.clone();
                let maintenance = maintenance.clone();
                let writer = writer.clone();
                Box::pin(async move {
                    let r = crate::maintenance::run(&data_dir, &maintenance, writer.as_deref())
                        .await
                        .map_err(classify)?;
                    Ok(r.summary())
                })
            })
        };
        out.push(JobSpec {
            name: STORE_MAINTENANCE.into(),
            schedule: cfg.schedule(STORE_MAINTENANCE, default)?,
            timeout: parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(3600)),
            retry: cfg.retry(STORE_MAINTENANCE)?,
            missed: cfg.missed,
            run_at_start: false,
            after_data: None,
            run,
        });
    }
    let cfg = jobs.get(CATEGORIZER_RETRAIN).cloned().unwrap_or_default();
    if cfg.enabled && train.retrain_after_corrections > 0 {
        let default = default_cron(CATEGORIZER_RETRAIN, CATEGORIZER_RETRAIN_CRON, &cfg.timezone)?;
        let run: JobFn = {
            let data_dir: PathBuf = data_dir.to_path_buf();
            let train = train.clone();
            Arc::new(move |_ctx| {
                let data_dir = data_dir.clone();
                let train = train.clone();
                Box::pin(async move {
                    let opts = crate::models::TrainOptions {
                        python: train.python.clone(),
                        script: None,
                        iterations: train.iterations,
                        register: true,
                        extra_args: Vec::new(),
                    };
                    // Training runs a Python process: keep it off the
                    // runtime's worker threads.
                    let handle = tokio::runtime::Handle::current();
                    let r = tokio::task::spawn_blocking(move || {
                        handle.block_on(crate::models::retrain_if_due(
                            &data_dir,
                            &opts,
                            train.retrain_after_corrections,
                        ))
                    })
                    .await
                    .map_err(|e| Failure::Transient(e.to_string()))?
                    .map_err(classify)?;
                    Ok(match r.trained {
                        Some(t) => format!(
                            "{} new corrections: model {} trained on {} rows and registered (holdout accuracy {})",
                            r.new_corrections,
                            t.version,
                            t.rows,
                            t.holdout_accuracy
                                .map(|a| format!("{:.1}%", a * 100.0))
                                .unwrap_or_else(|| "-".into())
                        ),
                        None => format!(
                            "{} new corrections since the model in use, fewer than {}: not retrained",
                            r.new_corrections, train.retrain_after_corrections
                        ),
                    })
                })
            })
        };
        out.push(JobSpec {
            name: CATEGORIZER_RETRAIN.into(),
            schedule: cfg.schedule(CATEGORIZER_RETRAIN, default)?,
            timeout: parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(3600)),
            retry: cfg.retry(CATEGORIZER_RETRAIN)?,
            missed: cfg.missed,
            run_at_start: false,
            after_data: None,
            run,
        });
    }
    let cfg = jobs.get(ALERT_EVALUATION).cloned().unwrap_or_default();
    if cfg.enabled && !alerts.rules.is_empty() {
        let run: JobFn = {
            let data_dir: PathBuf = data_dir.to_path_buf();
            let alerts = alerts.clone();
            let channels = Arc::new(channels);
            Arc::new(move |_ctx| {
                let data_dir = data_dir.clone();
                let alerts = alerts.clone();
                let channels = channels.clone();
                let sink_backlog = sink_backlog.clone();
                let metrics = metrics.clone();
                Box::pin(async move {
                    let facts = crate::alerts::Facts {
                        now: chrono::Utc::now(),
                        sink_buffered: sink_backlog.map(|f| f()).unwrap_or_default(),
                    };
                    let r = crate::alerts::run(
                        &data_dir,
                        &alerts,
                        &channels,
                        facts,
                        metrics.as_deref(),
                    )
                    .await
                    .map_err(classify)?;
                    Ok(r.summary())
                })
            })
        };
        out.push(JobSpec {
            name: ALERT_EVALUATION.into(),
            schedule: cfg.schedule(ALERT_EVALUATION, Schedule::Every(Duration::from_secs(60)))?,
            timeout: parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(3600)),
            retry: cfg.retry(ALERT_EVALUATION)?,
            missed: cfg.missed,
            run_at_start: true,
            after_data: Some(Duration::from_secs(5)),
            run,
        });
    }
    Ok(out)
}

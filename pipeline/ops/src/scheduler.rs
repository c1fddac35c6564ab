//! The scheduler: background jobs (the forecast refresh today; retraining,
//! store maintenance and alert evaluation join it) on cron expressions in a
//! time zone or fixed intervals, after new data, at start, or by hand
//! (`finopsia job run NAME`). Each job runs in its own task beside the
//! writer, never inside it: a job never blocks ingestion.
//!
//! Per run: attempts are retried with backoff for transient failures only
//! ([`crate::retry`]); the whole run is bounded by the job's timeout; a
//! job never runs twice at once (a trigger that arrives while it runs is
//! dropped: overlapping triggers run once); after downtime a missed
//! scheduled run is run once, or skipped, as the job's `missed` policy says.
//!
//! What is committed where, and in what order: every run appends a row to
//! the `job_runs` table when it starts (`outcome = 'running'`) and another
//! when it ends (`ok`, `failed`, `timeout`), both with the same `run_id`;
//! the newest row of a run is its state. A run that was cut off by a crash
//! (`kill -9`) has only its `running` row: at the next start the scheduler
//! appends `interrupted` for it before anything else, then applies the
//! missed-run policy from the newest `scheduled_for` of the job's rows. A
//! skipped missed run is recorded too (`skipped`). Manual triggers for a
//! running service are files in `<data_dir>/state/jobs/`, removed once
//! their run's first row is committed (a crash in between runs it again).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::retry::{retry, Failure, RetryPolicy};

/// The history table.
pub const TABLE: &str = "job_runs";

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its schedule came due.
    Schedule,
    /// A scheduled run was missed while the service was down.
    Missed,
    /// `finopsia job run` (or later the API).
    Manual,
    /// New data arrived (after the job's debounce).
    Data,
    /// The service started.
    Start,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Missed => "missed",
            Trigger::Manual => "manual",
            Trigger::Data => "data",
            Trigger::Start => "start",
        }
    }
}

/// What to do about scheduled runs missed while the service was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run once at start (however many were missed).
    RunOnce,
    /// Record them as skipped and wait for the next one.
    Skip,
}

/// When a job is due.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression (seconds optional) in a time zone.
    Cron {
        cron: Box<croner::Cron>,
        tz: chrono_tz::Tz,
        text: String,
    },
    /// Every so often.
    Every(Duration),
    /// Only when triggered.
    Never,
}

impl Schedule {
    /// Parses a cron expression in `tz` (an IANA name, e.g. `Africa/Lagos`).
    pub fn cron(text: &str, tz: &str) -> Result<Schedule> {
        let cron = croner::Cron::from_str(text.trim())
            .map_err(|e| Error::Config(format!("schedule {text:?}: {e}")))?;
        let tz = chrono_tz::Tz::from_str(tz.trim()).map_err(|_| {
            Error::Config(format!(
                "timezone {tz:?} is not an IANA name like UTC or Africa/Lagos"
            ))
        })?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
            text: text.trim().to_string(),
        })
    }

    /// The first due time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&t.with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| t + d),
            Schedule::Never => None,
        }
    }

    /// The latest due time in `(after, until]`, if any.
    pub fn latest_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_previous_occurrence(&until.with_timezone(tz), true)
                .ok()
                .map(|d| d.with_timezone(&Utc))
                .filter(|d| *d > after),
            Schedule::Every(d) => {
                let step = chrono::Duration::from_std(*d).ok()?;
                if step <= chrono::Duration::zero() || until - after < step {
                    return None;
                }
                let n = (until - after).num_microseconds()? / step.num_microseconds()?;
                Some(after + step * n as i32)
            }
            Schedule::Never => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { text, tz, .. } => format!("cron {text} ({tz})"),
            Schedule::Every(d) => format!("every {}", humantime(*d)),
            Schedule::Never => "on demand".into(),
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{:?}", d)
    }
}

/// What a job's attempt gets.
#[derive(Debug, Clone, Copy)]
pub struct JobContext {
    pub attempt: u32,
    pub trigger: Trigger,
}

/// One attempt of a job: a short summary, or why it failed.
pub type JobFn = Arc<
    dyn Fn(JobContext) -> BoxFuture<'static, std::result::Result<String, Failure<String>>>
        + Send
        + Sync,
>;

/// A job and its policies.
#[derive(Clone)]
pub struct JobSpec {
    pub name: String,
    pub schedule: Schedule,
    /// The whole run (every attempt and wait) is cut off after this.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub missed: Missed,
    /// Run once when the scheduler starts.
    pub run_at_start: bool,
    /// Run this long after new data arrived (the last arrival restarts
    /// nothing: the first one starts the wait).
    pub after_data: Option<Duration>,
    pub run: JobFn,
}

/// One row of `job_runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub job: String,
    pub run_id: String,
    pub trigger: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    /// `running`, `ok`, `failed`, `timeout`, `skipped` or `interrupted`.
    pub outcome: String,
    pub error: Option<String>,
    pub detail: Option<String>,
}

/// Where runs are recorded.
#[async_trait::async_trait]
pub trait History: Send + Sync {
    async fn record(&self, r: &RunRecord) -> std::result::Result<(), String>;
    /// The newest `scheduled_for` among the job's rows.
    async fn last_scheduled(&self, job: &str)
        -> std::result::Result<Option<DateTime<Utc>>, String>;
    /// Runs of the job whose newest row is `running`.
    async fn unfinished(&self, job: &str) -> std::result::Result<Vec<RunRecord>, String>;
}

/// The time the scheduler plans with.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall-clock time that moves with tokio's clock from a given start: under
/// `tokio::time::pause()` it jumps as sleeps are auto-advanced.
pub struct TokioClock {
    base: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> TokioClock {
        TokioClock {
            base,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default()
    }
}

/// Job start/finish notices (for metrics).
pub trait Observer: Send + Sync {
    fn started(&self, job: &str);
    fn finished(&self, job: &str, result: std::result::Result<(), String>);
}

/// A running scheduler: trigger jobs, tell it about new data.
#[derive(Clone)]
pub struct SchedulerHandle {
    triggers: Arc<HashMap<String, mpsc::Sender<Trigger>>>,
    data: Arc<Vec<Arc<Notify>>>,
}

impl SchedulerHandle {
    /// Asks for a run of `job`; false when there is no such job or a
    /// trigger is already waiting (it will run once).
    pub fn trigger(&self, job: &str, why: Trigger) -> bool {
        self.triggers
            .get(job)
            .is_some_and(|tx| tx.try_send(why).is_ok())
    }

    /// New data was committed.
    pub fn new_data(&self) {
        for n in self.data.iter() {
            n.notify_one();
        }
    }

    pub fn has_job(&self, job: &str) -> bool {
        self.triggers.contains_key(job)
    }
}

/// Starts one task per job; they stop when `stop` turns true (a run in
/// progress is finished first, within its timeout).
pub fn start(
    jobs: Vec<JobSpec>,
    history: Arc<dyn History>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn Observer>>,
    stop: watch::Receiver<bool>,
) -> (SchedulerHandle, Vec<tokio::task::JoinHandle<()>>) {
    let mut triggers = HashMap::new();
    let mut data = Vec::new();
    let mut tasks = Vec::new();
    for spec in jobs {
        let (tx, rx) = mpsc::channel(1);
        triggers.insert(spec.name.clone(), tx);
        let notify = Arc::new(Notify::new());
        if spec.after_data.is_some() {
            data.push(notify.clone());
        }
        tasks.push(tokio::spawn(job_loop(
            Arc::new(spec),
            history.clone(),
            clock.clone(),
            observer.clone(),
            rx,
            notify,
            stop.clone(),
        )));
    }
    (
        SchedulerHandle {
            triggers: Arc::new(triggers),
            data: Arc::new(data),
        },
        tasks,
    )
}

fn until(clock: &dyn Clock, t: DateTime<Utc>) -> Duration {
    (t - clock.now()).to_std().unwrap_or(Duration::ZERO)
}

async fn job_loop(
    spec: Arc<JobSpec>,
    history: Arc<dyn History>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn Observer>>,
    mut triggers: mpsc::Receiver<Trigger>,
    data: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let name = spec.name.as_str();
    // Runs cut off by a crash.
    match history.unfinished(name).await {
        Ok(runs) => {
            for mut r in runs {
                tracing::warn!(job = name, run_id = %r.run_id, "a run was interrupted (the process stopped during it)");
                r.outcome = "interrupted".into();
                r.finished_at = Some(clock.now());
                r.error = Some("the process stopped during this run".into());
                if let Err(error) = history.record(&r).await {
                    tracing::error!(job = name, %error, "cannot record an interrupted run");
                }
            }
        }
        Err(error) => tracing::error!(job = name, %error, "cannot read the job history"),
    }
    let now = clock.now();
    let mut pending: Option<(Trigger, Option<DateTime<Utc>>)> = None;
    let last = history.last_scheduled(name).await.unwrap_or_else(|error| {
        tracing::error!(job = name, %error, "cannot read the job history");
        None
    });
    if let Some(missed_at) = last.and_then(|l| spec.schedule.latest_between(l, now)) {
        match spec.missed {
            Missed::RunOnce => pending = Some((Trigger::Missed, Some(missed_at))),
            Missed::Skip => {
                let r = RunRecord {
                    job: name.to_string(),
                    run_id: format!("{name}-{}", now.timestamp_micros()),
                    trigger: Trigger::Missed.as_str().into(),
                    scheduled_for: Some(missed_at),
                    started_at: now,
                    finished_at: Some(now),
                    attempts: 0,
                    outcome: "skipped".into(),
                    error: None,
                    detail: Some("missed while the service was down (missed = \"skip\")".into()),
                };
                if let Err(error) = history.record(&r).await {
                    tracing::error!(job = name, %error, "cannot record a skipped run");
                }
            }
        }
    }
    if pending.is_none() && spec.run_at_start {
        pending = Some((Trigger::Start, None));
    }
    // The next due time: after the last one (kept across restarts), never
    // in the past.
    let mut due = match (&spec.schedule, last) {
        (Schedule::Every(_), Some(l)) => spec.schedule.next_after(l).map(|d| d.max(now)),
        _ => spec.schedule.next_after(now),
    };
    let mut dirty_since: Option<tokio::time::Instant> = None;
    loop {
        if let Some((trigger, scheduled_for)) = pending.take() {
            run_once(
                &spec,
                &*history,
                &*clock,
                observer.as_deref(),
                trigger,
                scheduled_for,
            )
            .await;
            // Triggers that came while it ran were served by this run.
            while let Ok(t) = triggers.try_recv() {
                tracing::info!(
                    job = name,
                    trigger = t.as_str(),
                    "a trigger came while the job ran; not run again"
                );
            }
            if *stop.borrow() {
                return;
            }
        }
        let sleep_due = due.map(|d| until(&*clock, d));
        let debounce = match (spec.after_data, dirty_since) {
            (Some(wait), Some(since)) => Some(wait.saturating_sub(since.elapsed())),
            _ => None,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep_due.unwrap_or(Duration::MAX)), if sleep_due.is_some() => {
                let d = due.expect("due");
                if clock.now() >= d {
                    pending = Some((Trigger::Schedule, Some(d)));
                    due = spec.schedule.next_after(d.max(clock.now()));
                }
            }
            t = triggers.recv() => match t {
                Some(t) => pending = Some((t, None)),
                None => return,
            },
            _ = data.notified(), if spec.after_data.is_some() && dirty_since.is_none() => {
                dirty_since = Some(tokio::time::Instant::now());
            }
            _ = tokio::time::sleep(debounce.unwrap_or(Duration::MAX)), if debounce.is_some() => {
                dirty_since = None;
                // Arrivals during the wait are served by this run (a
                // stored permit would start another wait at once).
                let _ = futures::FutureExt::now_or_never(data.notified());
                pending = Some((Trigger::Data, None));
            }
            _ = stop.changed() => {
                if *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// One run: its first row, the attempts within the timeout, its last row.
pub async fn run_once(
    spec: &JobSpec,
    history: &dyn History,
    clock: &dyn Clock,
    observer: Option<&dyn Observer>,
    trigger: Trigger,
    scheduled_for: Option<DateTime<Utc>>,
) -> RunRecord {
    let started = clock.now();
    let mut rec = RunRecord {
        job: spec.name.clone(),
        run_id: format!("{}-{}", spec.name, started.timestamp_micros()),
        trigger: trigger.as_str().into(),
        scheduled_for,
        started_at: started,
        finished_at: None,
        attempts: 0,
        outcome: "running".into(),
        error: None,
        detail: None,
    };
    // Everything the run logs (its job's own events too) is in its span.
    let span = tracing::info_span!(
        "job",
        job = %spec.name,
        run_id = %rec.run_id,
        trigger = trigger.as_str()
    );
    async {
        if let Err(error) = history.record(&rec).await {
            tracing::error!(job = %spec.name, %error, "cannot record the start of a run");
        }
        if let Some(o) = observer {
            o.started(&spec.name);
        }
        tracing::info!(job = %spec.name, trigger = trigger.as_str(), "job started");
        let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = attempts.clone();
        let run = spec.run.clone();
        let outcome = tokio::time::timeout(
            spec.timeout,
            retry(&spec.retry, move |attempt| {
                counted.store(attempt, std::sync::atomic::Ordering::SeqCst);
                run(JobContext { attempt, trigger })
            }),
        )
        .await;
        rec.finished_at = Some(clock.now());
        rec.attempts = attempts.load(std::sync::atomic::Ordering::SeqCst);
        match outcome {
            Ok(r) => {
                rec.attempts = r.attempts;
                match r.result {
                    Ok(detail) => {
                        rec.outcome = "ok".into();
                        rec.detail = Some(detail);
                    }
                    Err(e) => {
                        rec.outcome = "failed".into();
                        rec.error = Some(e);
                    }
                }
            }
            Err(_) => {
                rec.outcome = "timeout".into();
                rec.error = Some(format!(
                    "cut off after its timeout of {}",
                    humantime(spec.timeout)
                ));
            }
        }
        if let Some(o) = observer {
            o.finished(
                &spec.name,
                if rec.outcome == "ok" {
                    Ok(())
                } else {
                    Err(rec.error.clone().unwrap_or_default())
                },
            );
        }
        match rec.outcome.as_str() {
            "ok" => {
                tracing::info!(job = %spec.name, attempts = rec.attempts, detail = rec.detail.as_deref().unwrap_or(""), "job finished")
            }
            _ => {
                tracing::error!(job = %spec.name, attempts = rec.attempts, outcome = %rec.outcome, error = rec.error.as_deref().unwrap_or(""), "job failed")
            }
        }
        if let Err(error) = history.record(&rec).await {
            tracing::error!(job = %spec.name, %error, "cannot record the end of a run");
        }
        rec
    }
    .instrument(span)
    .await
}

// ---------------------------------------------------------------- the table

fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("scheduled_for", ts(), true),
        Field::new("started_at", ts(), false),
        Field::new("finished_at", ts(), true),
        Field::new("attempts", DataType::Int32, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
        Field::new("recorded_at", ts(), false),
    ]))
}

/// `job_runs` in the store of a data directory.
pub struct JobRuns {
    store: tokio::sync::Mutex<finopsia_store::Store>,
}

/// The newest row of each run.
const LATEST: &str = "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY recorded_at DESC) AS rn FROM job_runs) WHERE rn = 1";

impl JobRuns {
    pub fn open(data_dir: &Path) -> Result<JobRuns> {
        Ok(JobRuns {
            store: tokio::sync::Mutex::new(finopsia_store::Store::open(data_dir)?),
        })
    }

    /// The newest row of each run (of `job`, or all), newest first.
    pub async fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut store = self.store.lock().await;
        if !store.exists(TABLE) {
            return Ok(Vec::new());
        }
        let filter = job
            .map(|j| format!("WHERE job = '{}'", j.replace('\'', "''")))
            .unwrap_or_default();
        let batches = store
            .query(&format!(
                "SELECT job, run_id, trigger, scheduled_for, started_at, finished_at, attempts, outcome, error, detail \
                 FROM ({LATEST}) {filter} ORDER BY started_at DESC, recorded_at DESC LIMIT {limit}"
            ))
            .await?;
        Ok(decode(&batches))
    }
}

fn decode(batches: &[RecordBatch]) -> Vec<RunRecord> {
    let mut out = Vec::new();
    for b in batches {
        // Strings may come back as views, integers widened: cast.
        let cast = |i: usize, to: &DataType| {
            datafusion::arrow::compute::cast(b.column(i), to).expect("job_runs column")
        };
        let s = |i: usize| cast(i, &DataType::Utf8).as_string::<i32>().clone();
        let t = |i: usize| {
            cast(
                i,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .clone()
        };
        let (job, run_id, trigger, outcome, error, detail) = (s(0), s(1), s(2), s(7), s(8), s(9));
        let (sched, started, finished) = (t(3), t(4), t(5));
        let attempts = cast(6, &DataType::Int32)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .clone();
        let time = |a: &TimestampMicrosecondArray, i: usize| {
            (!a.is_null(i))
                .then(|| DateTime::from_timestamp_micros(a.value(i)))
                .flatten()
        };
        let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            out.push(RunRecord {
                job: job.value(i).into(),
                run_id: run_id.value(i).into(),
                trigger: trigger.value(i).into(),
                scheduled_for: time(&sched, i),
                started_at: time(&started, i).unwrap_or_default(),
                finished_at: time(&finished, i),
                attempts: attempts.value(i).max(0) as u32,
                outcome: outcome.value(i).into(),
                error: text(&error, i),
                detail: text(&detail, i),
            });
        }
    }
    out
}

#[async_trait::async_trait]
impl History for JobRuns {
    async fn record(&self, r: &RunRecord) -> std::result::Result<(), String> {
        let us = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        let ts = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![r.job.as_str()])) as ArrayRef,
                Arc::new(StringArray::from(vec![r.run_id.as_str()])),
                Arc::new(StringArray::from(vec![r.trigger.as_str()])),
                ts(vec![us(r.scheduled_for)]),
                ts(vec![Some(r.started_at.timestamp_micros())]),
                ts(vec![us(r.finished_at)]),
                Arc::new(Int32Array::from(vec![
                    r.attempts.min(i32::MAX as u32) as i32
                ])),
                Arc::new(StringArray::from(vec![r.outcome.as_str()])),
                Arc::new(StringArray::from(vec![r.error.as_deref()])),
                Arc::new(StringArray::from(vec![r.detail.as_deref()])),
                ts(vec![Some(Utc::now().timestamp_micros())]),
            ],
        )
        .map_err(|e| e.to_string())?;
        let mut store = self.store.lock().await;
        store
            .ensure(TABLE, schema())
            .await
            .map_err(|e| e.to_string())?;
        store
            .append(TABLE, vec![batch], None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn last_scheduled(
        &self,
        job: &str,
    ) -> std::result::Result<Option<DateTime<Utc>>, String> {
        let mut store = self.store.lock().await;
        if !store.exists(TABLE) {
            return Ok(None);
        }
        let b = store
            .query(&format!(
                "SELECT CAST(MAX(scheduled_for) AS BIGINT) AS t FROM job_runs WHERE job = '{}'",
                job.replace('\'', "''")
            ))
            .await
            .map_err(|e| e.to_string())?;
        let v = b.iter().find(|b| b.num_rows() > 0).and_then(|b| {
            let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64).ok()?;
            let a = c.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            (!a.is_null(0)).then(|| a.value(0))
        });
        Ok(v.and_then(DateTime::from_timestamp_micros))
    }

    async fn unfinished(&self, job: &str) -> std::result::Result<Vec<RunRecord>, String> {
        let runs = self
            .runs(Some(job), 10_000)
            .await
            .map_err(|e| e.to_string())?;
        Ok(runs
            .into_iter()
            .filter(|r| r.outcome == "running")
            .collect())
    }
}

// ---------------------------------------------------------------- manual triggers of a running service

/// Where a running service picks up manual triggers.
pub fn trigger_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join("jobs")
}

/// Asks the service running on `data_dir` to run `job` (a file it picks up
/// within a second).
pub fn request_run(data_dir: &Path, job: &str) -> Result<PathBuf> {
    let dir = trigger_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    let path = dir.join(format!("{job}.trigger"));
    std::fs::write(&path, Utc::now().to_rfc3339()).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    Ok(path)
}

/// Watches the trigger directory and triggers the jobs asked for; a file is
/// removed once its run has started (see the module docs).
pub async fn watch_triggers(
    data_dir: PathBuf,
    handle: SchedulerHandle,
    mut stop: watch::Receiver<bool>,
) {
    let dir = trigger_dir(&data_dir);
    loop {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let path = e.path();
                let Some(job) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".trigger"))
                    .map(str::to_string)
                else {
                    continue;
                };
                if !handle.has_job(&job) {
                    tracing::warn!(job, "a trigger for an unknown job was ignored");
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if handle.trigger(&job, Trigger::Manual) {
                    tracing::info!(job, "manual trigger");
                }
                let _ = std::fs::remove_file(&path);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    /// History in memory (the Delta table is tested end to end).
    #[derive(Default)]
    struct Memory(Mutex<Vec<RunRecord>>);

    impl Memory {
        fn latest(&self) -> Vec<RunRecord> {
            let rows = self.0.lock().unwrap();
            let mut out: Vec<RunRecord> = Vec::new();
            for r in rows.iter() {
                match out.iter_mut().find(|o| o.run_id == r.run_id) {
                    Some(o) => *o = r.clone(),
                    None => out.push(r.clone()),
                }
            }
            out
        }
    }

    #[async_trait::async_trait]
    impl History for Memory {
        async fn record(&self, r: &RunRecord) -> std::result::Result<(), String> {
            self.0.lock().unwrap().push(r.clone());
            Ok(())
        }
        async fn last_scheduled(
            &self,
            job: &str,
        ) -> std::result::Result<Option<DateTime<Utc>>, String> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.job == job)
                .filter_map(|r| r.scheduled_for)
                .max())
        }
        async fn unfinished(&self, job: &str) -> std::result::Result<Vec<RunRecord>, String> {
            Ok(self
                .latest()
                .into_iter()
                .filter(|r| r.job == job && r.outcome == "running")
                .collect())
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn policy() -> RetryPolicy {
        crate::retry::test_policy(4)
    }

    fn spec(name: &str, schedule: Schedule, run: JobFn) -> JobSpec {
        JobSpec {
            name: name.into(),
            schedule,
            timeout: Duration::from_secs(120),
            retry: policy(),
            missed: Missed::RunOnce,
            run_at_start: false,
            after_data: None,
            run,
        }
    }

    /// A job that counts its calls and fails the first `fail` attempts of
    /// each run, taking `takes` per attempt.
    fn counting(calls: Arc<AtomicU32>, fail: u32, takes: Duration) -> JobFn {
        Arc::new(move |ctx: JobContext| {
            let calls = calls.clone();
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(takes).await;
                if ctx.attempt <= fail {
                    Err(Failure::Transient(format!(
                        "attempt {} failed",
                        ctx.attempt
                    )))
                } else {
                    Ok(format!("done on attempt {}", ctx.attempt))
                }
            })
        })
    }

    #[test]
    fn cron_in_a_time_zone_and_intervals() {
        // 02:00 in Lagos (UTC+1) is 01:00 UTC.
        let s = Schedule::cron("0 2 * * *", "Africa/Lagos").unwrap();
        let next = s.next_after(t0()).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-03-03T01:00:00+00:00");
        // Seconds are optional.
        let s = Schedule::cron("30 */15 * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(t0()).unwrap().to_rfc3339(),
            "2026-03-02T09:30:30+00:00"
        );
        assert!(Schedule::cron("61 * * * *", "UTC").is_err());
        assert!(Schedule::cron("0 * * * *", "Mars/Olympus").is_err());
        let hourly = Schedule::cron("0 * * * *", "UTC").unwrap();
        let missed = hourly
            .latest_between(t0(), t0() + chrono::Duration::hours(3))
            .unwrap();
        assert_eq!(missed.to_rfc3339(), "2026-03-02T12:00:00+00:00");
        assert!(hourly
            .latest_between(t0(), t0() + chrono::Duration::minutes(20))
            .is_none());
        let every = Schedule::Every(Duration::from_secs(3600));
        assert_eq!(
            every.latest_between(t0(), t0() + chrono::Duration::minutes(150)),
            Some(t0() + chrono::Duration::hours(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_failing_twice_is_retried_with_backoff_and_recorded_with_its_attempts() {
        let history = Arc::new(Memory::default());
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let s = spec(
            "flaky",
            Schedule::Never,
            counting(calls.clone(), 2, Duration::from_secs(1)),
        );
        let start = tokio::time::Instant::now();
        let rec = run_once(&s, &*history, &*clock, None, Trigger::Manual, None).await;
        assert_eq!(rec.outcome, "ok", "{rec:?}");
        assert_eq!(rec.attempts, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // 3 attempts of 1 s, waits of 10 s and 20 s.
        assert_eq!(start.elapsed(), Duration::from_secs(33));
        let rows = history.0.lock().unwrap().clone();
        assert_eq!(rows.len(), 2, "a start row and an end row");
        assert_eq!(rows[0].outcome, "running");
        assert_eq!(rows[1].run_id, rows[0].run_id);
        assert_eq!(
            rows[1].finished_at.unwrap() - rows[1].started_at,
            chrono::Duration::seconds(33)
        );
        assert_eq!(rows[1].detail.as_deref(), Some("done on attempt 3"));
        // A permanent failure is not retried.
        let perm: JobFn =
            Arc::new(|_| Box::pin(async { Err(Failure::Permanent("bad config".to_string())) }));
        let rec = run_once(
            &spec("broken", Schedule::Never, perm),
            &*history,
            &*clock,
            None,
            Trigger::Manual,
            None,
        )
        .await;
        assert_eq!((rec.outcome.as_str(), rec.attempts), ("failed", 1));
        assert_eq!(rec.error.as_deref(), Some("bad config"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_job_is_timed_out() {
        let history = Arc::new(Memory::default());
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let mut s = spec(
            "hangs",
            Schedule::Never,
            counting(calls, 0, Duration::from_secs(86_400)),
        );
        s.timeout = Duration::from_secs(90);
        let start = tokio::time::Instant::now();
        let rec = run_once(&s, &*history, &*clock, None, Trigger::Manual, None).await;
        assert_eq!(rec.outcome, "timeout");
        assert_eq!(rec.attempts, 1);
        assert_eq!(start.elapsed(), Duration::from_secs(90));
        assert!(rec.error.unwrap().contains("timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_triggers_run_once() {
        let history = Arc::new(Memory::default());
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let s = spec(
            "slow",
            Schedule::Never,
            counting(calls.clone(), 0, Duration::from_secs(60)),
        );
        let (stop_tx, stop) = watch::channel(false);
        let (handle, tasks) = start(vec![s], history.clone(), clock, None, stop);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(handle.trigger("slow", Trigger::Manual));
        tokio::time::sleep(Duration::from_secs(5)).await;
        // While it runs: more triggers, from the CLI and from a schedule.
        for _ in 0..5 {
            handle.trigger("slow", Trigger::Manual);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one run for overlapping triggers"
        );
        assert_eq!(history.latest().len(), 1);
        assert!(!handle.trigger("nope", Trigger::Manual));
        // Once it is done, a new trigger runs it again.
        assert!(handle.trigger("slow", Trigger::Manual));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn scheduled_runs_come_due_in_the_time_zone() {
        let history = Arc::new(Memory::default());
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let s = spec(
            "hourly",
            Schedule::cron("0 * * * *", "Asia/Kolkata").unwrap(),
            counting(calls.clone(), 0, Duration::from_secs(1)),
        );
        let (stop_tx, stop) = watch::channel(false);
        let (_handle, tasks) = start(vec![s], history.clone(), clock, None, stop);
        // 09:30 UTC is 15:00 in Kolkata (UTC+5:30): due at 10:30, 11:30, 12:30 UTC.
        tokio::time::sleep(Duration::from_secs(3 * 3600 + 60)).await;
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let runs = history.latest();
        let due: Vec<String> = runs
            .iter()
            .map(|r| r.scheduled_for.unwrap().format("%H:%M").to_string())
            .collect();
        assert_eq!(due, ["10:30", "11:30", "12:30"]);
        assert!(runs
            .iter()
            .all(|r| r.outcome == "ok" && r.trigger == "schedule"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    async fn after_downtime(missed: Missed) -> (Vec<RunRecord>, u32) {
        let history = Arc::new(Memory::default());
        // The last scheduled run was at 06:00; the service comes back at
        // 09:30 (runs at 07:00, 08:00, 09:00 were missed), and a run was
        // cut off by a crash.
        let six = t0() - chrono::Duration::minutes(210);
        for (outcome, at) in [
            ("ok", six),
            ("running", six + chrono::Duration::minutes(30)),
        ] {
            history
                .record(&RunRecord {
                    job: "hourly".into(),
                    run_id: format!("hourly-{}", at.timestamp_micros()),
                    trigger: "schedule".into(),
                    scheduled_for: (outcome == "ok").then_some(six),
                    started_at: at,
                    finished_at: (outcome == "ok").then_some(at),
                    attempts: 1,
                    outcome: outcome.into(),
                    error: None,
                    detail: None,
                })
                .await
                .unwrap();
        }
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let mut s = spec(
            "hourly",
            Schedule::cron("0 * * * *", "UTC").unwrap(),
            counting(calls.clone(), 0, Duration::from_secs(1)),
        );
        s.missed = missed;
        let (stop_tx, stop) = watch::channel(false);
        let (_h, tasks) = start(vec![s], history.clone(), clock, None, stop);
        // Until 09:50: before the next scheduled run at 10:00.
        tokio::time::sleep(Duration::from_secs(20 * 60)).await;
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        (history.latest(), calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_run_after_downtime_runs_once() {
        let (runs, calls) = after_downtime(Missed::RunOnce).await;
        assert_eq!(calls, 1, "three missed runs are run once");
        let outcomes: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.trigger.as_str(), r.outcome.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("schedule", "ok"),
                ("schedule", "interrupted"),
                ("missed", "ok")
            ]
        );
        assert_eq!(
            runs[2].scheduled_for.unwrap().format("%H:%M").to_string(),
            "09:00"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_run_after_downtime_can_be_skipped() {
        let (runs, calls) = after_downtime(Missed::Skip).await;
        assert_eq!(calls, 0);
        let outcomes: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.trigger.as_str(), r.outcome.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("schedule", "ok"),
                ("schedule", "interrupted"),
                ("missed", "skipped")
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_data_triggers_a_run_after_the_debounce() {
        let history = Arc::new(Memory::default());
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let calls = Arc::new(AtomicU32::new(0));
        let mut s = spec(
            "refresh",
            Schedule::Every(Duration::from_secs(3600)),
            counting(calls.clone(), 0, Duration::from_secs(1)),
        );
        s.after_data = Some(Duration::from_secs(5));
        s.run_at_start = true;
        let (stop_tx, stop) = watch::channel(false);
        let (handle, tasks) = start(vec![s], history.clone(), clock, None, stop);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "run at start");
        handle.new_data();
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.new_data();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "debounced");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one run for both arrivals");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the hourly run");
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let triggers: Vec<String> = history.latest().iter().map(|r| r.trigger.clone()).collect();
        assert_eq!(triggers, ["start", "data", "schedule"]);
    }
}

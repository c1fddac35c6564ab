//! The sink contract: where window emissions go after the store.
//!
//! Every emission (a window's first result and every corrected re-emission
//! after late data) is delivered at least once. An [`Emission`] is keyed by
//! table, group keys and `window_start`, so delivering it twice overwrites
//! itself; sinks must keep that property (InfluxDB does: same series and
//! timestamp). The runtime gives each sink its own queue and task, and
//! persists how far each sink got; see the engine's `outbox` module.
//!
//! A sink also says what its buffer is ([`Buffer`]): how many entries the
//! outbox may hold for it, and what happens when it is that far behind
//! (the engine waits, or the sink is backfilled from the window tables
//! once it recovers). A sink may do periodic work over the store
//! ([`Sink::sync`]: forecasts, pipeline metrics) through [`StoreReader`],
//! and hand records its receiver refuses to the quarantine
//! ([`Quarantine`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;

use crate::input::Reject;
use crate::stream::Counts;

/// One committed window emission.
#[derive(Debug, Clone)]
pub struct Emission {
    /// Its place in the emission order (`<seq>-<table>`, sortable).
    pub id: String,
    /// The micro-batch sequence of the commit.
    pub seq: i64,
    /// The window table.
    pub table: String,
    /// The table's group-key columns (besides `window_start`/`window_end`).
    pub keys: Vec<String>,
    /// Rows with the table's schema: window_start, window_end, keys, aggregates.
    pub rows: RecordBatch,
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (transport error, 429, 5xx): retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (the receiver rejects this emission): logged
    /// and skipped; the rows stay in the store.
    #[error("{0}")]
    Permanent(String),
}

/// What the outbox does once a sink is its whole buffer behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Ingestion waits for the sink (backpressure; nothing dropped).
    Wait,
    /// Ingestion goes on: the sink's buffered entries are dropped and it is
    /// marked for a backfill, which re-delivers every window table's rows
    /// from the store (emissions are keyed, so this restores everything the
    /// dropped entries carried) before its next entry.
    Backfill,
}

/// A sink's buffer in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Entries the outbox holds for it (`None`: the service's `sink_queue`).
    pub entries: Option<usize>,
    pub when_full: WhenFull,
    /// Up to this many entries are handed to [`Sink::deliver_many`] at once.
    pub batch: usize,
    /// With fewer than `batch` entries pending, wait this long for more.
    pub linger: Duration,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            entries: None,
            when_full: WhenFull::Wait,
            batch: 1,
            linger: Duration::ZERO,
        }
    }
}

/// Read-only access to the store for sinks (one snapshot per query).
#[async_trait::async_trait]
pub trait StoreReader: Send + Sync {
    /// Runs read-only SQL.
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, String>;
    /// Every window table with its group-key columns.
    fn window_tables(&self) -> Vec<(String, Vec<String>)>;
}

/// Puts records a sink's receiver refused into the quarantine table.
#[async_trait::async_trait]
pub trait Quarantine: Send + Sync {
    /// Commits `rejects` for outbox entry `entry` and returns once they are
    /// stored. Idempotent per entry: rejects for an entry already committed
    /// (a redelivery after a crash) are not stored again.
    async fn quarantine(&self, entry: &str, rejects: Vec<Reject>) -> Result<(), String>;
}

/// Counters of one sink, kept by the outbox and the sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounters {
    /// Outbox entries delivered.
    pub delivered: u64,
    /// Failed delivery attempts that were retried.
    pub retries: u64,
    /// Entries waiting in the outbox for this sink.
    pub buffered: u64,
    /// Times the buffer was full and was dropped for a backfill.
    pub overflows: u64,
    /// Backfills completed.
    pub backfills: u64,
    /// Lines the receiver refused (quarantined).
    pub rejected: u64,
    /// Points written.
    pub points: u64,
}

/// The pipeline after its last committed micro-batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineGauges {
    /// Wall-clock time of the last commit (ms since the epoch; 0: none).
    pub last_commit_ms: i64,
    /// How long the last commit took (ms).
    pub last_batch_ms: u64,
    /// Event-time watermark (µs since the epoch).
    pub watermark_us: Option<i64>,
    /// Newest event time seen (µs since the epoch).
    pub max_event_time_us: Option<i64>,
}

/// Runs of one background job since the service started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounters {
    pub runs: u64,
    pub failures: u64,
    pub running: bool,
    /// Outcome of the last finished run (`None`: none finished yet).
    pub last_ok: Option<bool>,
    /// Start of the last run (ms since the epoch).
    pub last_start_ms: i64,
    pub last_duration_ms: u64,
    /// The last failure's message (kept after later successes).
    pub last_error: Option<String>,
}

/// A Prometheus-style histogram: counts per upper bound (cumulative when
/// rendered), their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending (`+Inf` is implied).
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative); one more than `bounds`.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Buckets of micro-batch commit durations (seconds).
pub const BATCH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of job run durations (seconds).
pub const JOB_BUCKETS: &[f64] = &[0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, seconds: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// (upper bound, cumulative count) per bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total)
            })
            .collect()
    }
}

/// What the service reads from the store now and then (not on every
/// scrape): table versions and files, the model in use, forecast ages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreGauges {
    /// Table → (Delta version, data files).
    pub tables: BTreeMap<String, (u64, u64)>,
    /// The categorization model in use and when it was trained (ms since
    /// the epoch, from its metadata).
    pub model_version: Option<String>,
    pub model_created_ms: Option<i64>,
    /// Series → its latest successful forecast run (ms since the epoch).
    pub forecast_run_ms: BTreeMap<String, i64>,
    /// When these were read (ms since the epoch; 0: never).
    pub read_ms: i64,
}

/// Pipeline counters since the service started, for sinks that report
/// them and `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (source, reason code) → rejects quarantined.
    rejects: Mutex<BTreeMap<(String, String), u64>>,
    batch_seconds: Mutex<Option<Histogram>>,
    /// Window table → windows held open in memory.
    open_windows: Mutex<BTreeMap<String, u64>>,
    job_seconds: Mutex<BTreeMap<String, Histogram>>,
    store: Mutex<StoreGauges>,
    /// Rule → alerts firing at its last evaluation.
    alerts_firing: Mutex<BTreeMap<String, u64>>,
    /// (channel, ok) → notifications sent.
    notifications: Mutex<BTreeMap<(String, bool), u64>>,
    sources: Mutex<BTreeMap<String, Counts>>,
    /// Per source: when it last had records committed (ms since the epoch).
    source_seen_ms: Mutex<BTreeMap<String, i64>>,
    sinks: Mutex<BTreeMap<String, SinkCounters>>,
    batches: Mutex<u64>,
    pipeline: Mutex<PipelineGauges>,
    jobs: Mutex<BTreeMap<String, JobCounters>>,
}

/// A copy of [`Metrics`] at one moment.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub sources: BTreeMap<String, Counts>,
    pub source_seen_ms: BTreeMap<String, i64>,
    pub sinks: BTreeMap<String, SinkCounters>,
    pub batches: u64,
    pub pipeline: PipelineGauges,
    pub jobs: BTreeMap<String, JobCounters>,
    pub rejects: BTreeMap<(String, String), u64>,
    pub batch_seconds: Histogram,
    pub open_windows: BTreeMap<String, u64>,
    pub job_seconds: BTreeMap<String, Histogram>,
    pub store: StoreGauges,
    pub alerts_firing: BTreeMap<String, u64>,
    pub notifications: BTreeMap<(String, bool), u64>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Metrics {
    /// Counts one committed micro-batch.
    pub fn batch(&self, per_source: &BTreeMap<String, Counts>) {
        let now = now_ms();
        let mut s = self.sources.lock().expect("metrics");
        let mut seen = self.source_seen_ms.lock().expect("metrics");
        for (name, c) in per_source {
            *s.entry(name.clone()).or_default() += *c;
            if c.accepted + c.duplicates + c.quarantined > 0 {
                seen.insert(name.clone(), now);
            }
        }
        *self.batches.lock().expect("metrics") += 1;
    }

    /// Counts one micro-batch's rejects by source and reason code, and the
    /// windows each window table holds open after it.
    pub fn rejects_and_windows(
        &self,
        rejects: &BTreeMap<(String, &'static str), u64>,
        open_windows: &[(String, usize)],
    ) {
        let mut r = self.rejects.lock().expect("metrics");
        for ((source, reason), n) in rejects {
            *r.entry((source.clone(), reason.to_string())).or_default() += n;
        }
        let mut w = self.open_windows.lock().expect("metrics");
        for (table, n) in open_windows {
            w.insert(table.clone(), *n as u64);
        }
    }

    /// Alerts of `rule` firing at its last evaluation.
    pub fn alerts_firing(&self, rule: &str, n: u64) {
        self.alerts_firing
            .lock()
            .expect("metrics")
            .insert(rule.to_string(), n);
    }

    /// One notification sent to `channel`, delivered or not.
    pub fn alert_notification(&self, channel: &str, ok: bool) {
        *self
            .notifications
            .lock()
            .expect("metrics")
            .entry((channel.to_string(), ok))
            .or_default() += 1;
    }

    /// Replaces what was read from the store.
    pub fn set_store(&self, mut g: StoreGauges) {
        g.read_ms = now_ms();
        *self.store.lock().expect("metrics") = g;
    }

    /// Records the event time and latency of the last commit.
    pub fn event_time(
        &self,
        watermark_us: Option<i64>,
        max_event_time_us: Option<i64>,
        took: Duration,
    ) {
        self.batch_seconds
            .lock()
            .expect("metrics")
            .get_or_insert_with(|| Histogram::new(BATCH_BUCKETS))
            .observe(took.as_secs_f64());
        *self.pipeline.lock().expect("metrics") = PipelineGauges {
            last_commit_ms: now_ms(),
            last_batch_ms: took.as_millis() as u64,
            watermark_us,
            max_event_time_us,
        };
    }

    /// A run of job `name` starts.
    pub fn job_started(&self, name: &str) {
        let mut jobs = self.jobs.lock().expect("metrics");
        let j = jobs.entry(name.to_string()).or_default();
        j.running = true;
        j.last_start_ms = now_ms();
    }

    /// A run of job `name` ended with `outcome`.
    pub fn job_finished(&self, name: &str, outcome: Result<(), String>) {
        let mut jobs = self.jobs.lock().expect("metrics");
        let j = jobs.entry(name.to_string()).or_default();
        j.running = false;
        j.runs += 1;
        j.last_duration_ms = (now_ms() - j.last_start_ms).max(0) as u64;
        self.job_seconds
            .lock()
            .expect("metrics")
            .entry(name.to_string())
            .or_insert_with(|| Histogram::new(JOB_BUCKETS))
            .observe(j.last_duration_ms as f64 / 1000.0);
        match outcome {
            Ok(()) => j.last_ok = Some(true),
            Err(e) => {
                j.failures += 1;
                j.last_ok = Some(false);
                j.last_error = Some(e);
            }
        }
    }

    /// Updates one sink's counters.
    pub fn sink(&self, name: &str, f: impl FnOnce(&mut SinkCounters)) {
        f(self
            .sinks
            .lock()
            .expect("metrics")
            .entry(name.to_string())
            .or_default());
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            sources: self.sources.lock().expect("metrics").clone(),
            source_seen_ms: self.source_seen_ms.lock().expect("metrics").clone(),
            sinks: self.sinks.lock().expect("metrics").clone(),
            batches: *self.batches.lock().expect("metrics"),
            pipeline: self.pipeline.lock().expect("metrics").clone(),
            jobs: self.jobs.lock().expect("metrics").clone(),
            rejects: self.rejects.lock().expect("metrics").clone(),
            batch_seconds: self
                .batch_seconds
                .lock()
                .expect("metrics")
                .clone()
                .unwrap_or_else(|| Histogram::new(BATCH_BUCKETS)),
            open_windows: self.open_windows.lock().expect("metrics").clone(),
            job_seconds: self.job_seconds.lock().expect("metrics").clone(),
            store: self.store.lock().expect("metrics").clone(),
            alerts_firing: self.alerts_firing.lock().expect("metrics").clone(),
            notifications: self.notifications.lock().expect("metrics").clone(),
        }
    }
}

/// What [`Sink::sync`] can use.
pub struct SyncContext<'a> {
    pub store: &'a dyn StoreReader,
    pub metrics: MetricsSnapshot,
}

/// A destination for emissions.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    /// Delivers one emission.
    async fn deliver(&self, emission: &Emission) -> Result<(), SinkError>;
    /// Delivers several emissions, in order (all or, on error, to be
    /// retried as a whole; a repeat overwrites itself).
    async fn deliver_many(&self, emissions: &[Emission]) -> Result<(), SinkError> {
        for e in emissions {
            self.deliver(e).await?;
        }
        Ok(())
    }
    /// Its buffer in the outbox.
    fn buffer(&self) -> Buffer {
        Buffer::default()
    }
    /// How often [`Sink::sync`] runs (`None`: never).
    fn sync_every(&self) -> Option<Duration> {
        None
    }
    /// Periodic work over the store. Errors are logged and retried at the
    /// next period.
    async fn sync(&self, _ctx: &SyncContext<'_>) -> Result<(), SinkError> {
        Ok(())
    }
}

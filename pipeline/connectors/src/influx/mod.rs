//! InfluxDB sink: window emissions, forecasts, runway, recurring events and
//! pipeline metrics as line protocol ([`lp`]) over HTTP.
//!
//! Writes go to the v1 `/write?db=&rp=`, the v2 `/api/v2/write?org=&bucket=`
//! (`Authorization: Token`) or the v3 `/api/v3/write_lp?db=` API, chosen by
//! `api`; a path in `url` is kept as a prefix. Each request carries at most
//! `batch_lines` lines, gzip-compressed unless `gzip = false`, with the
//! precision named. Transport errors, 429 and 5xx are retried with
//! exponential backoff (the `backoff` crate, jittered, honouring
//! `Retry-After`) for up to `retry_max_elapsed`, after which the outbox
//! retries the entries later (they stay buffered). 401, 403 and 404 (a
//! wrong token or database) are retried the same way: they are fixed by
//! configuration, and the data waits. Any other 4xx (400, 413, 422) is
//! narrowed down by halving the request until the lines the server refuses
//! are found; each goes to the quarantine (reason `sink_rejected`, the
//! server's message as detail, the line as raw text) and the rest is
//! delivered. Nothing is retried forever for the same bad line.
//!
//! State, and its order: the outbox keeps this sink's buffered emissions
//! and its delivered cursor (see the engine's `outbox`); a delivery returns
//! only after the server accepted every line (or the refused ones are
//! committed to the quarantine), so a crash repeats at most a delivery,
//! which rewrites the same points. [`Sink::sync`] writes the latest
//! forecast run's points, the runway and the recurring patterns when
//! `forecast_runs` has a newer run than `<data_dir>/state/sinks/<name>.sync.json`
//! records, and records it after the write (a crash repeats the write);
//! pipeline metrics are written every sync, time-stamped then.

pub mod lp;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use finopsia_core::input::{Reason, Reject};
use finopsia_core::sink::{Buffer, Emission, Quarantine, Sink, SinkError, SyncContext, WhenFull};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use lp::{Point, Precision, Value};

/// `[sinks.NAME]` with `type = "influxdb"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// Base URL (http or https); a path is kept as a prefix.
    pub url: String,
    /// https: a PEM file of certificates to trust besides the system's
    /// roots (a private CA or a self-signed server certificate).
    pub ca_file: Option<PathBuf>,
    /// `v1`, `v2` or `v3`.
    pub api: String,
    /// v1 and v3: the database.
    pub database: String,
    /// v1: the retention policy (empty: the database's default).
    pub retention_policy: String,
    /// v2: organisation and bucket.
    pub org: String,
    pub bucket: String,
    /// v2: `Authorization: Token …`; v3: `Authorization: Bearer …`; v1:
    /// sent as a token too (InfluxDB 1.8+ with auth).
    pub token: Option<String>,
    /// v1: basic-auth user and password.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Timestamp precision: ns, us, ms, s.
    pub precision: String,
    /// Lines per write request.
    pub batch_lines: usize,
    /// Outbox entries written together.
    pub batch_entries: usize,
    /// With fewer than `batch_entries` entries pending, wait this long.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub flush_interval: String,
    pub gzip: bool,
    /// Per-request timeout.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub timeout: String,
    /// Retries of one request before the outbox takes over.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub retry_max_elapsed: String,
    /// Outbox entries kept while InfluxDB is unreachable.
    pub buffer_entries: usize,
    /// `backfill` (default: ingestion goes on; the buffer is dropped and the
    /// window tables are re-sent once InfluxDB is back) or `wait`
    /// (ingestion waits for InfluxDB).
    pub when_full: String,
    /// How often forecasts, runway, recurring events and pipeline metrics
    /// are synced (`0`: never).
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub sync_interval: String,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: String::new(),
            ca_file: None,
            api: "v1".into(),
            database: "finopsia".into(),
            retention_policy: String::new(),
            org: String::new(),
            bucket: String::new(),
            token: None,
            username: None,
            password: None,
            precision: "ns".into(),
            batch_lines: 5000,
            batch_entries: 64,
            flush_interval: "1s".into(),
            gzip: true,
            timeout: "10s".into(),
            retry_max_elapsed: "30s".into(),
            buffer_entries: 10_000,
            when_full: "backfill".into(),
            sync_interval: "10s".into(),
        }
    }
}

fn dur(section: &str, key: &str, value: &str) -> Result<Duration> {
    Ok(finopsia_core::settings::duration(
        &format!("{section}.{key}"),
        value,
    )?)
}

impl InfluxConfig {
    pub fn validate(&self, section: &str) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad(format!(
                "{section}.url = {:?}: give an http:// or https:// URL",
                self.url
            ));
        }
        if self.ca_file.is_some() && !self.url.starts_with("https://") {
            return bad(format!(
                "{section}.ca_file is set but url {:?} is not https",
                self.url
            ));
        }
        match self.api.as_str() {
            "v1" | "v3" if self.database.is_empty() => {
                return bad(format!(
                    "{section}.database: api {} needs a database",
                    self.api
                ))
            }
            "v2" if self.org.is_empty() || self.bucket.is_empty() => {
                return bad(format!("{section}: api v2 needs org and bucket"))
            }
            "v1" | "v2" | "v3" => {}
            other => return bad(format!("{section}.api = {other:?}: use v1, v2 or v3")),
        }
        if Precision::parse(&self.precision).is_none() {
            return bad(format!(
                "{section}.precision = {:?}: use ns, us, ms or s",
                self.precision
            ));
        }
        if !matches!(self.when_full.as_str(), "backfill" | "wait") {
            return bad(format!(
                "{section}.when_full = {:?}: use backfill or wait",
                self.when_full
            ));
        }
        for (k, v) in [
            ("batch_lines", self.batch_lines),
            ("batch_entries", self.batch_entries),
            ("buffer_entries", self.buffer_entries),
        ] {
            if v == 0 {
                return bad(format!("{section}.{k}: must be at least 1"));
            }
        }
        dur(section, "flush_interval", &self.flush_interval)?;
        dur(section, "timeout", &self.timeout)?;
        dur(section, "retry_max_elapsed", &self.retry_max_elapsed)?;
        dur(section, "sync_interval", &self.sync_interval)?;
        Ok(())
    }

    /// The write URL (base path kept) with its query.
    pub fn write_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        let p = Precision::parse(&self.precision).unwrap_or(Precision::Ns);
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&")
        };
        match self.api.as_str() {
            "v2" => format!(
                "{base}/api/v2/write?{}",
                q(&[
                    ("org", &self.org),
                    ("bucket", &self.bucket),
                    ("precision", p.v2())
                ])
            ),
            "v3" => format!(
                "{base}/api/v3/write_lp?{}",
                q(&[("db", &self.database), ("precision", p.v3())])
            ),
            _ => format!(
                "{base}/write?{}",
                q(&[
                    ("db", &self.database),
                    ("rp", &self.retention_policy),
                    ("precision", p.v1())
                ])
            ),
        }
    }
}

/// An error with its causes (reqwest's own message hides why a
/// connection failed, for example an untrusted certificate).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What building the sink needs from the service.
#[derive(Clone)]
pub struct SinkContext {
    pub data_dir: PathBuf,
    /// Where refused lines go (`None`: logged only).
    pub quarantine: Option<Arc<dyn Quarantine>>,
}

pub struct InfluxSink {
    name: String,
    cfg: InfluxConfig,
    url: String,
    precision: Precision,
    client: reqwest::Client,
    retry_max_elapsed: Duration,
    linger: Duration,
    sync_every: Option<Duration>,
    state: PathBuf,
    quarantine: Option<Arc<dyn Quarantine>>,
    /// Points written, lines refused (for the metrics).
    counters: std::sync::Mutex<(u64, u64)>,
}

/// Why one request failed.
enum Failure {
    /// Retried by the outbox later.
    Transient(String),
    /// The server refuses (some of) these lines: narrow them down.
    Refused(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncState {
    /// The newest `forecast_runs.run_id` written.
    forecast_run: i64,
}

impl InfluxSink {
    pub fn new(name: &str, cfg: &InfluxConfig, ctx: &SinkContext) -> Result<InfluxSink> {
        let section = format!("sinks.{name}");
        cfg.validate(&section)?;
        let timeout = dur(&section, "timeout", &cfg.timeout)?;
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("{section}.ca_file = {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!("{section}.ca_file = {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "{section}.ca_file = {}: no PEM certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("{section}: {e}")))?;
        let sync = dur(&section, "sync_interval", &cfg.sync_interval)?;
        Ok(InfluxSink {
            name: name.to_string(),
            url: cfg.write_url(),
            precision: Precision::parse(&cfg.precision).expect("validated"),
            client,
            retry_max_elapsed: dur(&section, "retry_max_elapsed", &cfg.retry_max_elapsed)?,
            linger: dur(&section, "flush_interval", &cfg.flush_interval)?,
            sync_every: (!sync.is_zero()).then_some(sync),
            state: ctx
                .data_dir
                .join("state/sinks")
                .join(format!("{name}.sync.json")),
            quarantine: ctx.quarantine.clone(),
            cfg: cfg.clone(),
            counters: std::sync::Mutex::new((0, 0)),
        })
    }

    /// One request, once.
    async fn post(&self, body: &[u8]) -> std::result::Result<(), (Failure, Option<Duration>)> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "text/plain; charset=utf-8");
        let payload = if self.cfg.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = enc.write_all(body);
            req = req.header("content-encoding", "gzip");
            enc.finish().unwrap_or_default()
        } else {
            body.to_vec()
        };
        if let Some(t) = &self.cfg.token {
            let scheme = if self.cfg.api == "v3" {
                "Bearer"
            } else {
                "Token"
            };
            req = req.header("authorization", format!("{scheme} {t}"));
        } else if let Some(u) = &self.cfg.username {
            req = req.basic_auth(u, self.cfg.password.as_deref());
        }
        let resp = match req.body(payload).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err((
                    Failure::Transient(format!("POST {}: {}", self.url, error_chain(&e))),
                    None,
                ))
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let message = format!(
            "{status}: {}",
            text.trim().chars().take(500).collect::<String>()
        );
        let code = status.as_u16();
        if status.is_server_error() || matches!(code, 401 | 403 | 404 | 408 | 429) {
            Err((
                Failure::Transient(format!("POST {}: {message}", self.url)),
                retry_after,
            ))
        } else {
            Err((Failure::Refused(message), None))
        }
    }

    /// One request, retried with backoff while it fails transiently.
    async fn post_retrying(&self, body: &[u8]) -> std::result::Result<(), Failure> {
        let policy = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(Duration::from_millis(100))
            .with_max_interval(Duration::from_secs(10))
            .with_max_elapsed_time(Some(self.retry_max_elapsed))
            .build();
        let mut attempts = 0u32;
        backoff::future::retry(policy, || {
            attempts += 1;
            let attempt = attempts;
            async move {
                match self.post(body).await {
                    Ok(()) => Ok(()),
                    Err((Failure::Refused(m), _)) => Err(backoff::Error::permanent(Failure::Refused(m))),
                    Err((Failure::Transient(m), retry_after)) => {
                        if attempt == 1 || attempt.is_power_of_two() {
                            tracing::warn!(sink = %self.name, attempt, message = %m, "InfluxDB write failed; retrying");
                        }
                        Err(backoff::Error::Transient {
                            err: Failure::Transient(m),
                            retry_after,
                        })
                    }
                }
            }
        })
        .await
    }

    /// Writes `lines`, up to `CONCURRENT_REQUESTS` requests at a time
    /// (requests never share a series and timestamp: see [`last_per_point`]);
    /// returns the lines the server refused, with its message. `Err` only
    /// for a transient failure (retry the whole).
    async fn write_lines(
        &self,
        lines: &[String],
    ) -> std::result::Result<Vec<(usize, String)>, SinkError> {
        use futures::StreamExt;
        let n = self.cfg.batch_lines;
        let ranges: Vec<(usize, usize)> = (0..lines.len())
            .step_by(n)
            .map(|s| (s, (s + n).min(lines.len())))
            .collect();
        let results: Vec<_> = futures::stream::iter(ranges)
            .map(|(a, b)| async move {
                let mut refused = Vec::new();
                self.write_narrowing(lines, a, b, &mut refused)
                    .await
                    .map(|()| refused)
            })
            .buffer_unordered(CONCURRENT_REQUESTS)
            .collect()
            .await;
        let mut refused = Vec::new();
        for r in results {
            refused.extend(r?);
        }
        refused.sort_by_key(|(i, _)| *i);
        let mut c = self.counters.lock().expect("counters");
        c.0 += (lines.len() - refused.len()) as u64;
        c.1 += refused.len() as u64;
        Ok(refused)
    }

    /// Writes `lines[start..end]`, halving a refused request until the
    /// refused lines are single.
    async fn write_narrowing(
        &self,
        lines: &[String],
        start: usize,
        end: usize,
        refused: &mut Vec<(usize, String)>,
    ) -> std::result::Result<(), SinkError> {
        let mut stack = vec![(start, end)];
        while let Some((a, b)) = stack.pop() {
            if a >= b {
                continue;
            }
            let mut body = String::with_capacity((b - a) * 96);
            for l in &lines[a..b] {
                body.push_str(l);
                body.push('\n');
            }
            match self.post_retrying(body.as_bytes()).await {
                Ok(()) => {}
                Err(Failure::Transient(m)) => return Err(SinkError::Transient(m)),
                Err(Failure::Refused(m)) if b - a == 1 => refused.push((a, m)),
                Err(Failure::Refused(_)) => {
                    let mid = a + (b - a) / 2;
                    // Popped in order: the first half first.
                    stack.push((mid, b));
                    stack.push((a, mid));
                }
            }
        }
        Ok(())
    }

    /// Writes lines, quarantining refused ones under outbox entry `entry`.
    async fn write_all(
        &self,
        entry: &str,
        origin: &str,
        lines: Vec<String>,
    ) -> std::result::Result<(), SinkError> {
        let refused = self.write_lines(&lines).await?;
        if refused.is_empty() {
            return Ok(());
        }
        tracing::error!(sink = %self.name, lines = refused.len(), first = %refused[0].1, "InfluxDB refused lines; they go to the quarantine");
        let rejects: Vec<Reject> = refused
            .into_iter()
            .map(|(i, message)| Reject {
                source: format!("sinks.{}", self.name),
                file: Some(origin.to_string()),
                line: Some(i as u64 + 1),
                transaction_id: None,
                reason: Reason::SinkRejected,
                detail: message,
                raw: lines[i].as_bytes().to_vec(),
            })
            .collect();
        match &self.quarantine {
            Some(q) => q
                .quarantine(entry, rejects)
                .await
                .map_err(|e| SinkError::Transient(format!("quarantining refused lines: {e}"))),
            None => Ok(()),
        }
    }

    fn load_state(&self) -> SyncState {
        std::fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn store_state(&self, s: &SyncState) -> std::result::Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError::Transient(format!("{}: {e}", self.state.display()));
        let tmp = self.state.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default()).map_err(io)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, &self.state).map_err(io)
    }

    /// Lines of the latest forecasts, runway and recurring patterns.
    async fn forecast_lines(
        &self,
        ctx: &SyncContext<'_>,
    ) -> std::result::Result<Option<(i64, Vec<String>)>, SinkError> {
        let latest = match ctx
            .store
            .query("SELECT MAX(run_id) AS r FROM forecast_runs")
            .await
        {
            Ok(b) => b,
            // No forecast yet (the table appears with the first refresh).
            Err(_) => return Ok(None),
        };
        let run = latest
            .first()
            .filter(|b| b.num_rows() > 0)
            .and_then(|b| lp::cell_value(b.column(0).as_ref(), 0));
        let Some(Value::Int(run)) = run else {
            return Ok(None);
        };
        if run <= self.load_state().forecast_run {
            return Ok(None);
        }
        let read = |sql: &'static str| async move {
            ctx.store
                .query(sql)
                .await
                .map_err(|e| SinkError::Transient(format!("{sql}: {e}")))
        };
        let mut lines = Vec::new();
        for b in read("SELECT * FROM forecasts_latest").await? {
            FORECAST.lines(&b, self.precision, &mut lines);
        }
        for b in read("SELECT * FROM runway").await? {
            RUNWAY.lines(&b, self.precision, &mut lines);
        }
        if let Ok(batches) = ctx.store.query("SELECT * FROM recurring").await {
            for b in batches {
                RECURRING.lines(&b, self.precision, &mut lines);
            }
        }
        Ok(Some((run, lines)))
    }

    fn metric_lines(&self, ctx: &SyncContext<'_>) -> Vec<String> {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let ts = self.precision.from_nanos(now);
        let now_ms = now / 1_000_000;
        let secs_since = |ms: i64| Value::Float((now_ms - ms) as f64 / 1000.0);
        let m = &ctx.metrics;
        let mut lines = Vec::new();
        for (source, c) in &m.sources {
            let mut p = Point::default();
            p.tag("source", source)
                .field("accepted", Value::Int(c.accepted as i64))
                .field("quarantined", Value::Int(c.quarantined as i64))
                .field("duplicates", Value::Int(c.duplicates as i64));
            if let Some(seen) = m.source_seen_ms.get(source) {
                p.field("idle_s", secs_since(*seen));
            }
            lines.extend(p.line("finopsia_source", ts));
        }
        for (sink, c) in &m.sinks {
            let mut p = Point::default();
            p.tag("sink", sink)
                .field("delivered", Value::Int(c.delivered as i64))
                .field("retries", Value::Int(c.retries as i64))
                .field("buffered", Value::Int(c.buffered as i64))
                .field("overflows", Value::Int(c.overflows as i64))
                .field("backfills", Value::Int(c.backfills as i64));
            if *sink == self.name {
                let (points, rejected) = *self.counters.lock().expect("counters");
                p.field("points", Value::Int(points as i64))
                    .field("rejected", Value::Int(rejected as i64));
            }
            lines.extend(p.line("finopsia_sink", ts));
        }
        let mut p = Point::default();
        p.field("batches", Value::Int(m.batches as i64));
        let g = &m.pipeline;
        if g.last_commit_ms > 0 {
            p.field("last_batch_ms", Value::Int(g.last_batch_ms as i64))
                .field("since_commit_s", secs_since(g.last_commit_ms));
        }
        if let Some(w) = g.watermark_us {
            p.field("watermark", Value::Int(w / 1000))
                .field("watermark_delay_s", secs_since(w / 1000));
        }
        if let Some(t) = g.max_event_time_us {
            p.field("max_event_time", Value::Int(t / 1000))
                .field("event_lag_s", secs_since(t / 1000));
        }
        lines.extend(p.line("finopsia_pipeline", ts));
        for (job, j) in &m.jobs {
            let status = match (j.running, j.last_ok) {
                (true, _) => "running",
                (false, Some(true)) => "ok",
                (false, Some(false)) => "failed",
                (false, None) => "never",
            };
            let mut p = Point::default();
            p.tag("job", job)
                .field("status", Value::Str(status.into()))
                .field("ok", Value::Int(i64::from(j.last_ok != Some(false))))
                .field("runs", Value::Int(j.runs as i64))
                .field("failures", Value::Int(j.failures as i64))
                .field("last_duration_ms", Value::Int(j.last_duration_ms as i64))
                .field("last_start", Value::Int(j.last_start_ms));
            if let Some(e) = &j.last_error {
                p.field("last_error", Value::Str(e.clone()));
            }
            lines.extend(p.line("finopsia_job", ts));
        }
        lines
    }
}

/// Requests in flight at once.
const CONCURRENT_REQUESTS: usize = 2;

/// Keeps, of lines for the same point (series and timestamp), only the
/// last: a window emitted twice in one delivery (first result, then a
/// correction) is written once with its newest values, and requests that
/// run concurrently never race on one point.
pub fn last_per_point(lines: Vec<String>) -> Vec<String> {
    fn point_key(line: &str) -> (&str, &str) {
        // The series is everything before the first unescaped space; the
        // timestamp follows the last space.
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b' ' => break,
                _ => i += 1,
            }
        }
        let series = &line[..i.min(line.len())];
        let ts = line.rsplit_once(' ').map_or("", |(_, ts)| ts);
        (series, ts)
    }
    let mut last: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        last.insert(point_key(l), i);
    }
    if last.len() == lines.len() {
        return lines;
    }
    let keep: std::collections::HashSet<usize> = last.into_values().collect();
    lines
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, l)| l)
        .collect()
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a dyn datafusion::arrow::array::Array> {
    b.column_by_name(name).map(|c| c.as_ref())
}

fn text(b: &RecordBatch, name: &str, row: usize) -> Option<String> {
    col(b, name).and_then(|c| lp::cell_text(c, row))
}

fn value(b: &RecordBatch, name: &str, row: usize) -> Option<Value> {
    col(b, name).and_then(|c| lp::cell_value(c, row))
}

fn nanos(b: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    col(b, name).and_then(|c| lp::cell_nanos(c, row))
}

/// How rows of a store table become points: measurement, the timestamp
/// column, (tag, column) and (field, column) pairs.
pub struct Mapping {
    pub measurement: &'static str,
    pub time: &'static str,
    pub tags: &'static [(&'static str, &'static str)],
    pub fields: &'static [(&'static str, &'static str)],
}

impl Mapping {
    /// Appends one line per row with a timestamp and a field.
    pub fn lines(&self, b: &RecordBatch, precision: Precision, out: &mut Vec<String>) {
        for row in 0..b.num_rows() {
            let Some(ts) = nanos(b, self.time, row) else {
                continue;
            };
            let mut p = Point::default();
            for (tag, column) in self.tags {
                if let Some(v) = text(b, column, row) {
                    p.tag(tag, &v);
                }
            }
            for (field, column) in self.fields {
                if let Some(v) = value(b, column, row) {
                    p.field(field, v);
                }
            }
            out.extend(p.line(self.measurement, precision.from_nanos(ts)));
        }
    }
}

/// `forecast` (from `forecasts_latest`): timestamp = the forecast day.
pub const FORECAST: Mapping = Mapping {
    measurement: "forecast",
    time: "ds",
    tags: &[
        ("series", "series_id"),
        ("kind", "kind"),
        ("currency", "currency"),
        ("subject", "subject"),
        ("model", "model"),
    ],
    fields: &[
        ("yhat", "yhat"),
        ("lower", "yhat_lower"),
        ("upper", "yhat_upper"),
        ("run_id", "run_id"),
    ],
};

/// `runway` (from the `runway` view): dates as `YYYY-MM-DD` text;
/// timestamp = the day the forecast starts from (`as_of`).
pub const RUNWAY: Mapping = Mapping {
    measurement: "runway",
    time: "as_of",
    tags: &[
        ("series", "series_id"),
        ("currency", "currency"),
        ("account", "account_id"),
    ],
    fields: &[
        ("last_balance", "last_balance"),
        ("lowest_balance", "lowest_balance"),
        ("runway_threshold", "runway_threshold"),
        ("lowest_date", "lowest_date"),
        ("below_threshold_date", "below_threshold_date"),
        ("lower_below_threshold_date", "lower_below_threshold_date"),
        ("status", "status"),
        ("model", "model"),
    ],
};

/// `recurring` (from the `recurring` table): timestamp = the next
/// expected date.
pub const RECURRING: Mapping = Mapping {
    measurement: "recurring",
    time: "next_expected",
    tags: &[
        ("account", "account_id"),
        ("currency", "currency"),
        ("key", "key"),
        ("category", "category"),
        ("direction", "direction"),
        ("cadence", "cadence"),
    ],
    fields: &[
        ("amount", "amount"),
        ("day_of_month", "day_of_month"),
        ("occurrences", "occurrences"),
        ("last_date", "last_date"),
    ],
};

#[async_trait::async_trait]
impl Sink for InfluxSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, emission: &Emission) -> std::result::Result<(), SinkError> {
        self.deliver_many(std::slice::from_ref(emission)).await
    }

    async fn deliver_many(&self, emissions: &[Emission]) -> std::result::Result<(), SinkError> {
        let mut lines = Vec::new();
        for e in emissions {
            let (l, skipped) = lp::window_lines(&e.table, &e.keys, &e.rows, self.precision);
            if skipped > 0 {
                tracing::warn!(sink = %self.name, table = %e.table, skipped, "rows without window_start or fields are not written");
            }
            lines.extend(l);
        }
        let Some(last) = emissions.last() else {
            return Ok(());
        };
        self.write_all(&last.id, &last.id, last_per_point(lines))
            .await
    }

    fn buffer(&self) -> Buffer {
        Buffer {
            entries: Some(self.cfg.buffer_entries),
            when_full: if self.cfg.when_full == "wait" {
                WhenFull::Wait
            } else {
                WhenFull::Backfill
            },
            batch: self.cfg.batch_entries,
            linger: self.linger,
        }
    }

    fn sync_every(&self) -> Option<Duration> {
        self.sync_every
    }

    async fn sync(&self, ctx: &SyncContext<'_>) -> std::result::Result<(), SinkError> {
        if let Some((run, lines)) = self.forecast_lines(ctx).await? {
            self.write_all(
                &format!("forecast-run-{run:020}"),
                &format!("forecast run {run}"),
                lines,
            )
            .await?;
            self.store_state(&SyncState { forecast_run: run })?;
        }
        let metrics = self.metric_lines(ctx);
        // Metrics are a sample: a refused or failed one is not retried.
        if let Err(e) = self.write_lines(&metrics).await {
            tracing::debug!(sink = %self.name, error = %e, "metrics not written");
        }
        Ok(())
    }
}

/// Where the sink named `name` keeps its sync state.
pub fn state_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir
        .join("state/sinks")
        .join(format!("{name}.sync.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_urls_keep_the_base_path_and_name_the_precision() {
        let mut c = InfluxConfig {
            url: "http://h:8086/influx/".into(),
            ..InfluxConfig::default()
        };
        c.retention_policy = "one year".into();
        assert_eq!(
            c.write_url(),
            "http://h:8086/influx/write?db=finopsia&rp=one%20year&precision=ns"
        );
        c.api = "v2".into();
        c.org = "acme & co".into();
        c.bucket = "cash".into();
        c.precision = "us".into();
        assert_eq!(
            c.write_url(),
            "http://h:8086/influx/api/v2/write?org=acme%20%26%20co&bucket=cash&precision=us"
        );
        c.api = "v3".into();
        assert_eq!(
            c.write_url(),
            "http://h:8086/influx/api/v3/write_lp?db=finopsia&precision=microsecond"
        );
    }

    #[test]
    fn only_the_last_line_of_a_point_is_kept() {
        let lines = vec![
            "m,a=x\\ y f=1i 10".to_string(),
            "m,a=x\\ y f=2i 20".to_string(),
            "m,a=z f=3i 10".to_string(),
            "m,a=x\\ y f=4i,s=\"a b\" 10".to_string(),
        ];
        assert_eq!(
            last_per_point(lines),
            vec![
                "m,a=x\\ y f=2i 20".to_string(),
                "m,a=z f=3i 10".to_string(),
                "m,a=x\\ y f=4i,s=\"a b\" 10".to_string(),
            ]
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let base = InfluxConfig {
            url: "http://127.0.0.1:8086".into(),
            ..InfluxConfig::default()
        };
        base.validate("sinks.i").unwrap();
        let cases = [
            (
                InfluxConfig {
                    url: "127.0.0.1".into(),
                    ..base.clone()
                },
                "sinks.i.url",
            ),
            (
                InfluxConfig {
                    api: "v4".into(),
                    ..base.clone()
                },
                "sinks.i.api",
            ),
            (
                InfluxConfig {
                    api: "v2".into(),
                    ..base.clone()
                },
                "org and bucket",
            ),
            (
                InfluxConfig {
                    precision: "m".into(),
                    ..base.clone()
                },
                "sinks.i.precision",
            ),
            (
                InfluxConfig {
                    when_full: "drop".into(),
                    ..base.clone()
                },
                "sinks.i.when_full",
            ),
            (
                InfluxConfig {
                    batch_lines: 0,
                    ..base.clone()
                },
                "sinks.i.batch_lines",
            ),
            (
                InfluxConfig {
                    sync_interval: "soon".into(),
                    ..base.clone()
                },
                "sinks.i.sync_interval",
            ),
        ];
        for (c, want) in cases {
            let e = c.validate("sinks.i").unwrap_err().to_string();
            assert!(e.contains(want), "{e} should name {want}");
        }
    }
}

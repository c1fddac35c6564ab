//! Store maintenance: retention, compaction and vacuum of every table (the
//! `store_maintenance` job).
//!
//! Retention first deletes what is older than its `keep_*` setting: job
//! history (`job_runs`), forecast runs (never a series' latest run; its
//! points in `forecasts` and `cash_13w` go with it), alert history (never
//! the newest event of an alert that still fires, so its state stays;
//! deliveries) and, only when `keep_quarantine` is set, quarantined rows
//! (a re-delivered old bad line is then quarantined again). Each delete is
//! one commit on an append-only table; concurrent appends add newer rows
//! that the age predicate does not match.
//!
//! Streaming commits small micro-batches, so tables collect many small
//! files; reading them gets slower with every file. Compaction (Delta
//! `OPTIMIZE`) rewrites small files into files of about
//! `maintenance.target_file_mb`; vacuum (Delta `VACUUM`) then deletes the
//! files no version newer than `maintenance.vacuum_retain` reads.
//!
//! Who compacts what, so nothing races a writer:
//! - tables written only by appends (`transactions`, `quarantine`,
//!   `job_runs`, forecast tables, corrections, balances) are compacted here,
//!   beside the running writer: a compaction commit removes files with
//!   `dataChange = false`, which concurrent blind appends neither conflict
//!   with nor lose (Delta retries the later commit on top of the earlier);
//! - window tables are rewritten by the writer (`replace_where`), and Delta
//!   would let such a replace commit on top of a compaction that already
//!   copied the rows it removes, so a running service compacts them on its
//!   writer task between two micro-batches ([`WindowCompactor`]);
//! - `recurring` is replaced whole by each forecast refresh, which may run
//!   at the same time, so it is never compacted (it is one small file).
//!
//! The order: the append-only tables, then the writer's window tables
//! (after which the writer publishes the newest version of every table it
//! serves, so no published snapshot still reads the files compacted away),
//! then vacuum.
//!
//! Nothing here is stateful beyond the Delta commits themselves: each
//! compaction is one atomic commit (a crash before it leaves the old files
//! in use and new, unreferenced files that a later vacuum deletes); vacuum
//! only deletes files that no retained version reads. A run interrupted by
//! a crash is simply run again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use finopsia_core::settings::{duration, text_or_number};
use finopsia_store::store::Compaction;
use finopsia_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Tables replaced whole by a job that may run beside maintenance.
pub const NEVER_COMPACTED: &[&str] = &["recurring"];

/// The `[maintenance]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Compaction writes files of about this many MiB (smaller files are
    /// merged; files at least this big are left alone).
    pub target_file_mb: u64,
    /// Vacuum deletes files that the table stopped reading longer ago than
    /// this. Queries, REST and Flight SQL readers hold a version for at
    /// most the length of a query, so hours are plenty; the default keeps a
    /// week of time travel.
    #[serde(deserialize_with = "text_or_number")]
    pub vacuum_retain: String,
    /// Job runs older than this are deleted (`0`: kept forever).
    #[serde(deserialize_with = "text_or_number")]
    pub keep_job_runs: String,
    /// Forecast runs older than this are deleted, except each series'
    /// latest (`0`: kept forever).
    #[serde(deserialize_with = "text_or_number")]
    pub keep_forecast_runs: String,
    /// Alert events and deliveries older than this are deleted, except the
    /// newest event of a firing alert (`0`: kept forever).
    #[serde(deserialize_with = "text_or_number")]
    pub keep_alert_history: String,
    /// Quarantined rows older than this are deleted (`0`, the default:
    /// kept forever; they are the evidence of what was refused).
    #[serde(deserialize_with = "text_or_number")]
    pub keep_quarantine: String,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            target_file_mb: 32,
            vacuum_retain: "7d".into(),
            keep_job_runs: "90d".into(),
            keep_forecast_runs: "180d".into(),
            keep_alert_history: "365d".into(),
            keep_quarantine: "0".into(),
        }
    }
}

impl MaintenanceConfig {
    pub fn validate(&self) -> Result<()> {
        if self.target_file_mb == 0 {
            return Err(Error::Config(
                "maintenance.target_file_mb must be at least 1".into(),
            ));
        }
        self.retain()?;
        for (key, v) in self.keeps() {
            duration(&format!("maintenance.{key}"), v)?;
        }
        Ok(())
    }

    fn keeps(&self) -> [(&'static str, &String); 4] {
        [
            ("keep_job_runs", &self.keep_job_runs),
            ("keep_forecast_runs", &self.keep_forecast_runs),
            ("keep_alert_history", &self.keep_alert_history),
            ("keep_quarantine", &self.keep_quarantine),
        ]
    }

    /// The cut-off (µs since the epoch) of a `keep_*` setting, `None` for `0`.
    fn cutoff(
        &self,
        key: &str,
        v: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<i64>> {
        let d = duration(&format!("maintenance.{key}"), v)?;
        if d.is_zero() {
            return Ok(None);
        }
        Ok(Some(now.timestamp_micros() - d.as_micros() as i64))
    }

    fn retain(&self) -> Result<Duration> {
        Ok(duration("maintenance.vacuum_retain", &self.vacuum_retain)?)
    }

    fn target_bytes(&self) -> u64 {
        self.target_file_mb.max(1).saturating_mul(1024 * 1024)
    }
}

/// The writer of a running service, which compacts its window tables
/// between micro-batches.
#[async_trait::async_trait]
pub trait WindowCompactor: Send + Sync {
    /// Every window table the writer writes.
    fn window_tables(&self) -> Vec<String>;

    /// Compacts every existing window table, then points readers at the
    /// newest version of every table the writer publishes (compacted
    /// beside it or not), so that no published snapshot reads files a later
    /// vacuum deletes.
    async fn compact_windows(
        &self,
        target_bytes: u64,
    ) -> std::result::Result<Vec<Compaction>, String>;
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Rows deleted by retention per table.
    pub deleted: BTreeMap<String, usize>,
    pub compacted: Vec<Compaction>,
    /// Data files deleted by vacuum, over all tables.
    pub vacuumed_files: usize,
    pub seconds: f64,
}

impl Report {
    /// One line for the job history.
    pub fn summary(&self) -> String {
        let changed: Vec<&Compaction> = self
            .compacted
            .iter()
            .filter(|c| c.files_removed > 0)
            .collect();
        let before: usize = changed.iter().map(|c| c.files_before).sum();
        let after: usize = changed.iter().map(|c| c.files_after).sum();
        let tables: Vec<String> = changed
            .iter()
            .map(|c| format!("{} {}→{}", c.table, c.files_before, c.files_after))
            .collect();
        let deleted: Vec<String> = self
            .deleted
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let retention = if deleted.is_empty() {
            String::new()
        } else {
            format!("retention deleted rows: {}; ", deleted.join(", "))
        };
        format!(
            "{retention}{} tables checked, {} compacted ({} → {} files{}{}), {} files vacuumed in {:.1} s",
            self.compacted.len(),
            changed.len(),
            before,
            after,
            if tables.is_empty() { "" } else { ": " },
            tables.join(", "),
            self.vacuumed_files,
            self.seconds
        )
    }
}

/// Compacts and vacuums every table of `data_dir`. With `writer` (a running
/// service) its window tables are compacted by it; without, this process
/// must hold the writer lock and compacts them itself.
pub async fn run(
    data_dir: &Path,
    cfg: &MaintenanceConfig,
    writer: Option<&dyn WindowCompactor>,
) -> Result<Report> {
    cfg.validate()?;
    let started = std::time::Instant::now();
    let mut report = Report::default();
    let mut skip: BTreeSet<String> = NEVER_COMPACTED.iter().map(|s| s.to_string()).collect();
    if let Some(writer) = writer {
        skip.extend(writer.window_tables());
    }
    let mut store = Store::open(data_dir)?;
    report.deleted = retention(&mut store, cfg, chrono::Utc::now()).await?;
    let names = store.table_names()?;
    for name in &names {
        if skip.contains(name) {
            continue;
        }
        let done = store.compact(name, cfg.target_bytes()).await?;
        if done.files_removed > 0 {
            tracing::info!(
                table = %name,
                files_before = done.files_before,
                files_after = done.files_after,
                "table compacted"
            );
        }
        report.compacted.push(done);
    }
    match writer {
        Some(writer) => {
            let done = writer
                .compact_windows(cfg.target_bytes())
                .await
                .map_err(Error::Writer)?;
            report.compacted.extend(done);
        }
        // No writer runs: the published snapshot still names the versions
        // before compaction; point it at the new ones before vacuum.
        None => finopsia_store::snapshot::republish_latest(data_dir).await?,
    }
    let retain = cfg.retain()?;
    for name in &names {
        let n = store.vacuum(name, retain).await?;
        if n > 0 {
            tracing::info!(table = %name, files = n, "old files vacuumed");
        }
        report.vacuumed_files += n;
    }
    report.compacted.sort_by(|a, b| a.table.cmp(&b.table));
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Texts of the first column of `sql`'s answer.
async fn column(store: &mut Store, sql: &str) -> Result<Vec<String>> {
    use datafusion::arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in store.query_readonly(sql).await? {
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let c = c.as_string::<i32>();
        for i in 0..c.len() {
            if !c.is_null(i) {
                out.push(c.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// Deletes what is older than the `keep_*` settings (see the module doc).
pub async fn retention(
    store: &mut Store,
    cfg: &MaintenanceConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<String, usize>> {
    let mut deleted = BTreeMap::new();
    let mut note = |t: &str, n: Option<usize>| {
        *deleted.entry(t.to_string()).or_insert(0) += n.unwrap_or(0);
    };
    let ts = |us: i64| format!("CAST({us} AS BIGINT)");
    if let Some(c) = cfg.cutoff("keep_job_runs", &cfg.keep_job_runs, now)? {
        if store.exists("job_runs") {
            let n = store
                .delete(
                    "job_runs",
                    &format!("CAST(recorded_at AS BIGINT) < {}", ts(c)),
                )
                .await?;
            note("job_runs", n);
        }
    }
    if let Some(c) = cfg.cutoff("keep_quarantine", &cfg.keep_quarantine, now)? {
        if store.exists("quarantine") {
            let n = store
                .delete(
                    "quarantine",
                    &format!("CAST(quarantined_at AS BIGINT) < {}", ts(c)),
                )
                .await?;
            note("quarantine", n);
        }
    }
    if let Some(c) = cfg.cutoff("keep_alert_history", &cfg.keep_alert_history, now)? {
        if store.exists(crate::alerts::DELIVERIES) {
            let n = store
                .delete(
                    crate::alerts::DELIVERIES,
                    &format!("CAST(at AS BIGINT) < {}", ts(c)),
                )
                .await?;
            note(crate::alerts::DELIVERIES, n);
        }
        if store.exists(crate::alerts::EVENTS) {
            // Keep the newest event of every alert that still fires.
            let keep = column(
                store,
                &format!(
                    "SELECT event_id FROM (SELECT event_id, kind, ROW_NUMBER() OVER \
                     (PARTITION BY alert_id ORDER BY at DESC, event_id DESC) AS rn FROM {}) \
                     WHERE rn = 1 AND kind <> 'resolved'",
                    crate::alerts::EVENTS
                ),
            )
            .await?;
            let mut pred = format!("CAST(at AS BIGINT) < {}", ts(c));
            if !keep.is_empty() {
                pred.push_str(&format!(" AND event_id NOT IN ({})", list(&keep)));
            }
            let n = store.delete(crate::alerts::EVENTS, &pred).await?;
            note(crate::alerts::EVENTS, n);
        }
    }
    if let Some(c) = cfg.cutoff("keep_forecast_runs", &cfg.keep_forecast_runs, now)? {
        if store.exists("forecast_runs") {
            // Per series, runs older than the cut-off and older than its
            // latest run; grouped by that latest run for one predicate.
            let rows = column(
                store,
                &format!(
                    "SELECT CONCAT(CAST(r.series_id AS VARCHAR), '\t', CAST(l.latest AS VARCHAR)) \
                     FROM (SELECT DISTINCT series_id FROM forecast_runs \
                           WHERE CAST(run_at AS BIGINT) < {c}) r \
                     JOIN (SELECT series_id, MAX(run_id) AS latest FROM forecast_runs GROUP BY series_id) l \
                     ON r.series_id = l.series_id"
                ),
            )
            .await?;
            let mut by_latest: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in rows {
                if let Some((series, latest)) = r.split_once('\t') {
                    by_latest
                        .entry(latest.to_string())
                        .or_default()
                        .push(series.to_string());
                }
            }
            if !by_latest.is_empty() {
                let old_runs = column(
                    store,
                    &format!(
                        "SELECT DISTINCT run_id FROM forecast_runs WHERE CAST(run_at AS BIGINT) < {c}"
                    ),
                )
                .await?;
                let groups: Vec<String> = by_latest
                    .iter()
                    .map(|(latest, series)| {
                        format!("(series_id IN ({}) AND run_id < {latest})", list(series))
                    })
                    .collect();
                let pred = format!(
                    "run_id IN ({}) AND ({})",
                    old_runs.join(", "),
                    groups.join(" OR ")
                );
                // Points first: a run is visible through its forecast_runs rows.
                for t in ["forecasts", crate::forecasts::CASH_13W, "forecast_runs"] {
                    if store.exists(t) {
                        let n = store.delete(t, &pred).await?;
                        note(t, n);
                    }
                }
            }
        }
    }
    Ok(deleted)
}

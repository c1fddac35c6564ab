//! Store maintenance: compaction and vacuum of every table (the
//! `store_maintenance` job).
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

use std::collections::BTreeSet;
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
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            target_file_mb: 32,
            vacuum_retain: "7d".into(),
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
        self.retain().map(|_| ())
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
        format!(
            "{} tables checked, {} compacted ({} → {} files{}{}), {} files vacuumed in {:.1} s",
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

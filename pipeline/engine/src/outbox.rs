//! Sinks at least once: the outbox and one delivery task per sink.
//!
//! What is committed where, and in what order:
//!
//! 1. Before a window emission is committed to its table, the engine writes
//!    it to `<data_dir>/state/outbox/<seq>-<table>.arrow` (Arrow IPC,
//!    written to a temporary name, fsynced, renamed). A crash before the
//!    table commit makes recovery finish the same emission (same seq, same
//!    rows from the checkpoint), which rewrites the same file.
//! 2. Each sink's task delivers outbox entries in order and, after each
//!    success, records the entry's id in `<data_dir>/state/sinks/<name>.json`
//!    (temporary file + rename). A crash between delivery and that record
//!    delivers the entry again after the restart; emissions are keyed
//!    (table, group keys, window_start), so the repeat overwrites itself.
//! 3. An entry is deleted once every configured sink has recorded it.
//!
//! A sink seen for the first time starts after the newest entry present. A
//! slow or failing sink delays only itself: its task retries with backoff
//! while the engine keeps writing, until the sink is `queue` entries behind;
//! then the engine waits for it (backpressure, nothing dropped) and says so
//! in the log. Each sink has its own task, so one never blocks another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use finopsia_core::sink::{Emission, Sink, SinkError};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::error::{io_err, Error, Result};

/// The engine's side of the outbox.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    cursors: PathBuf,
    sinks: Vec<String>,
    queue: usize,
    /// Woken when the engine committed a new entry.
    written: Notify,
    /// Woken when a sink recorded progress.
    delivered: Notify,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Id of the last entry delivered (`""`: none).
    delivered: String,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.inner.dir)
            .field("sinks", &self.inner.sinks)
            .finish()
    }
}

fn entry_id(seq: i64, table: &str) -> String {
    format!("{seq:020}-{table}")
}

/// Sidecar with an entry's group-key columns.
#[derive(Serialize, Deserialize)]
struct EntryMeta {
    keys: Vec<String>,
}

impl Outbox {
    /// Opens the outbox under `data_dir` for the sinks `names`, creating the
    /// cursor of each new sink at the newest entry present.
    pub fn open(data_dir: &Path, names: &[String], queue: usize) -> Result<Outbox> {
        let state = data_dir.join("state");
        let dir = state.join("outbox");
        let cursors = state.join("sinks");
        for d in [&dir, &cursors] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let outbox = Outbox {
            inner: Arc::new(Shared {
                dir,
                cursors,
                sinks: names.to_vec(),
                queue: queue.max(1),
                written: Notify::new(),
                delivered: Notify::new(),
            }),
        };
        let newest = outbox.entries("")?.pop().unwrap_or_default();
        for name in names {
            if !outbox.cursor_path(name).is_file() {
                outbox.store_cursor(name, &newest)?;
            }
        }
        Ok(outbox)
    }

    fn cursor_path(&self, sink: &str) -> PathBuf {
        self.inner.cursors.join(format!("{sink}.json"))
    }

    /// The id of the last entry `sink` recorded as delivered.
    pub fn cursor(&self, sink: &str) -> Result<String> {
        let path = self.cursor_path(sink);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<Cursor>(&b)
                .map(|c| c.delivered)
                .map_err(|e| Error::Engine(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn store_cursor(&self, sink: &str, id: &str) -> Result<()> {
        let path = self.cursor_path(sink);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(&Cursor {
            delivered: id.to_string(),
        })
        .map_err(|e| Error::Engine(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Entry ids after `after`, oldest first.
    fn entries(&self, after: &str) -> Result<Vec<String>> {
        let dir = &self.inner.dir;
        let mut ids: Vec<String> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".arrow").map(str::to_string)
            })
            .filter(|id| id.as_str() > after)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Writes one emission (engine side, before the table commit), waiting
    /// first while the slowest sink is `queue` entries behind.
    pub async fn write(
        &self,
        seq: i64,
        table: &str,
        keys: &[String],
        rows: &RecordBatch,
    ) -> Result<()> {
        self.wait_for_room().await?;
        let id = entry_id(seq, table);
        let dir = &self.inner.dir;
        let meta = dir.join(format!("{id}.keys.json"));
        std::fs::write(
            &meta,
            serde_json::to_vec(&EntryMeta {
                keys: keys.to_vec(),
            })
            .map_err(|e| Error::Engine(e.to_string()))?,
        )
        .map_err(io_err(&meta))?;
        let tmp = dir.join(format!(".{id}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer = FileWriter::try_new(file, rows.schema().as_ref())?;
        writer.write(rows)?;
        writer.finish()?;
        writer.into_inner()?.sync_all().map_err(io_err(&tmp))?;
        let path = dir.join(format!("{id}.arrow"));
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Whether every sink has delivered every entry.
    pub fn all_delivered(&self) -> Result<bool> {
        Ok(self.entries(&self.slowest()?)?.is_empty())
    }

    /// Tells the sink tasks that new entries are committed.
    pub fn committed(&self) {
        self.inner.written.notify_waiters();
    }

    async fn wait_for_room(&self) -> Result<()> {
        let mut warned = false;
        loop {
            let slowest = self.slowest()?;
            let behind = self.entries(&slowest)?.len();
            if behind < self.inner.queue {
                return Ok(());
            }
            if !warned {
                tracing::warn!(
                    behind,
                    queue = self.inner.queue,
                    "a sink is a full queue behind; ingestion waits for it"
                );
                warned = true;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(200), self.inner.delivered.notified())
                    .await;
        }
    }

    /// The cursor of the sink furthest behind.
    fn slowest(&self) -> Result<String> {
        let mut min: Option<String> = None;
        for name in &self.inner.sinks {
            let c = self.cursor(name)?;
            if min.as_ref().is_none_or(|m| c < *m) {
                min = Some(c);
            }
        }
        Ok(min.unwrap_or_default())
    }

    /// Deletes entries every sink has delivered.
    fn collect_garbage(&self) -> Result<()> {
        let slowest = self.slowest()?;
        let dir = &self.inner.dir;
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name
                .strip_suffix(".keys.json")
                .or_else(|| name.strip_suffix(".arrow"));
            if id.is_some_and(|id| id <= slowest.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn read(&self, id: &str) -> Result<Emission> {
        let path = self.inner.dir.join(format!("{id}.arrow"));
        let file = std::fs::File::open(&path).map_err(io_err(&path))?;
        let reader = FileReader::try_new(file, None)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
        let meta_path = self.inner.dir.join(format!("{id}.keys.json"));
        let keys = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<EntryMeta>(&b).ok())
            .map(|m| m.keys)
            .unwrap_or_default();
        let (seq, table) = id.split_once('-').unwrap_or((id, ""));
        Ok(Emission {
            id: id.to_string(),
            seq: seq.parse().unwrap_or(0),
            table: table.to_string(),
            keys,
            rows,
        })
    }

    /// Runs `sink`'s delivery task until `shutdown` turns true: delivers
    /// every entry after its cursor, in order, retrying transient failures
    /// with exponential backoff (capped at `max_backoff`).
    pub async fn deliver_to(
        self,
        sink: Arc<dyn Sink>,
        mut shutdown: watch::Receiver<bool>,
        max_backoff: Duration,
    ) -> Result<()> {
        let name = sink.name().to_string();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // Registered before looking, so a commit in between is not missed.
            let notified = self.inner.written.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let cursor = self.cursor(&name)?;
            let pending = self.entries(&cursor)?;
            if pending.is_empty() {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            for id in pending {
                let emission = self.read(&id)?;
                let mut backoff = Duration::from_millis(100);
                let mut failures = 0u32;
                loop {
                    match sink.deliver(&emission).await {
                        Ok(()) => {
                            if failures > 0 {
                                tracing::info!(sink = %name, entry = %id, failures, "sink recovered");
                            }
                            break;
                        }
                        Err(SinkError::Permanent(message)) => {
                            tracing::error!(sink = %name, entry = %id, %message, "sink refused an emission; skipped (the rows stay in the store)");
                            break;
                        }
                        Err(SinkError::Transient(message)) => {
                            failures += 1;
                            if failures == 1 || failures.is_power_of_two() {
                                tracing::warn!(sink = %name, entry = %id, failures, %message, "sink delivery failed; retrying");
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = shutdown.changed() => {}
                            }
                            if *shutdown.borrow() {
                                return Ok(());
                            }
                            backoff = (backoff * 2).min(max_backoff);
                        }
                    }
                }
                self.store_cursor(&name, &id)?;
                self.inner.delivered.notify_waiters();
                self.collect_garbage()?;
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

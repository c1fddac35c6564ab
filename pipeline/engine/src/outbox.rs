//! Sinks at least once: the outbox and one delivery task per sink.
//!
//! What is committed where, and in what order:
//!
//! 1. Before a window emission is committed to its table, the engine writes
//!    it to `<data_dir>/state/outbox/<seq>-<table>.arrow` (Arrow IPC,
//!    written to a temporary name, fsynced, renamed). A crash before the
//!    table commit makes recovery finish the same emission (same seq, same
//!    rows from the checkpoint), which rewrites the same file.
//! 2. Each sink's task delivers outbox entries in order (up to its
//!    `Buffer::batch` at once) and, after each success, records the last
//!    entry's id in `<data_dir>/state/sinks/<name>.json` (temporary file +
//!    rename; a cursor only moves forward). A crash between delivery and
//!    that record delivers the entries again after the restart; emissions
//!    are keyed (table, group keys, window_start), so the repeat overwrites
//!    itself.
//! 3. An entry is deleted once every configured sink has recorded it.
//!
//! A sink seen for the first time starts after the newest entry present
//! (a `Backfill` sink is first marked for a backfill, below, so that it
//! receives the window tables' history). A
//! slow or failing sink delays only itself: its task retries with backoff
//! while the engine keeps writing, until the sink is its buffer
//! (`Buffer::entries`, default `queue`) behind. Then, for a sink whose
//! `when_full` is `Wait`, the engine waits for it (backpressure, nothing
//! dropped) and says so in the log. For a `Backfill` sink the engine does
//! not wait: it first writes `<data_dir>/state/sinks/<name>.backfill`
//! (fsynced; its content is a generation number), then moves the sink's
//! cursor to the newest entry, so the dropped entries can be deleted. The
//! sink's task, before delivering anything after that, re-delivers every
//! window table's current rows from the store (through its
//! [`StoreReader`]) and only then removes the marker (if its generation is
//! unchanged). The table rows hold every value the dropped entries
//! carried, so nothing is lost; a crash during the backfill repeats it.
//! Each sink has its own task, so one never blocks another.
//!
//! A one-shot writer ([`Outbox::open_writer`], used by `finopsia import`)
//! writes entries the same way (step 1) but delivers nothing: the entries
//! wait for the service's next start. Since nothing can drain them
//! meanwhile, a sink that falls its whole buffer behind is marked for a
//! backfill whatever its `when_full`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use finopsia_core::sink::{Buffer, Emission, Metrics, Sink, SinkError, StoreReader, WhenFull};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::error::{io_err, Error, Result};

/// The engine's side of the outbox.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Shared>,
}

struct SinkSlot {
    name: String,
    capacity: usize,
    when_full: WhenFull,
}

struct Shared {
    dir: PathBuf,
    cursors: PathBuf,
    sinks: Vec<SinkSlot>,
    /// Cursor and marker updates (the engine's overflow and the sink tasks).
    lock: Mutex<()>,
    metrics: Arc<Metrics>,
    /// Woken when the engine committed a new entry.
    written: Notify,
    /// Woken when a sink recorded progress.
    delivered: Notify,
    /// Whether delivery tasks run beside this writer (`false` for a
    /// one-shot writer such as `finopsia import`).
    delivering: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Id of the last entry delivered (`""`: none).
    delivered: String,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.sinks.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Outbox")
            .field("dir", &self.inner.dir)
            .field("sinks", &names)
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

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

impl Outbox {
    /// Opens the outbox under `data_dir` for `sinks` (name and buffer; a
    /// buffer without its own size holds `queue` entries), creating the
    /// cursor of each new sink at the newest entry present.
    pub fn open(
        data_dir: &Path,
        sinks: &[(String, Buffer)],
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Outbox> {
        Outbox::open_mode(data_dir, sinks, queue, metrics, true)
    }

    /// Opens the outbox for a writer that runs no delivery task (`finopsia
    /// import` while the service is down): its emissions wait here for the
    /// service's next start. No sink can make progress meanwhile, so a
    /// sink whose buffer fills is marked for a backfill (as a `Backfill`
    /// sink always is) instead of making the writer wait forever.
    pub fn open_writer(
        data_dir: &Path,
        sinks: &[(String, Buffer)],
        queue: usize,
    ) -> Result<Outbox> {
        Outbox::open_mode(data_dir, sinks, queue, Arc::default(), false)
    }

    fn open_mode(
        data_dir: &Path,
        sinks: &[(String, Buffer)],
        queue: usize,
        metrics: Arc<Metrics>,
        delivering: bool,
    ) -> Result<Outbox> {
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
                sinks: sinks
                    .iter()
                    .map(|(name, b)| SinkSlot {
                        name: name.clone(),
                        capacity: b.entries.unwrap_or(queue).max(1),
                        when_full: b.when_full,
                    })
                    .collect(),
                lock: Mutex::new(()),
                metrics,
                written: Notify::new(),
                delivered: Notify::new(),
                delivering,
            }),
        };
        let newest = outbox.entries("")?.pop().unwrap_or_default();
        for (name, buffer) in sinks {
            if !outbox.cursor_path(name).is_file() {
                if buffer.when_full == WhenFull::Backfill {
                    // A new sink of this kind gets the tables' history.
                    write_synced(&outbox.marker_path(name), b"1")?;
                }
                outbox.store_cursor(name, &newest)?;
            }
        }
        outbox.count_buffered()?;
        Ok(outbox)
    }

    fn cursor_path(&self, sink: &str) -> PathBuf {
        self.inner.cursors.join(format!("{sink}.json"))
    }

    fn marker_path(&self, sink: &str) -> PathBuf {
        self.inner.cursors.join(format!("{sink}.backfill"))
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

    /// Moves `sink`'s cursor forward to `id` (never back).
    fn store_cursor(&self, sink: &str, id: &str) -> Result<()> {
        let _guard = self.inner.lock.lock().expect("outbox lock");
        if self.cursor_path(sink).is_file() && self.cursor(sink)?.as_str() >= id {
            return Ok(());
        }
        let text = serde_json::to_vec(&Cursor {
            delivered: id.to_string(),
        })
        .map_err(|e| Error::Engine(e.to_string()))?;
        write_synced(&self.cursor_path(sink), &text)
    }

    /// The backfill marker's generation, if `sink` is marked.
    pub fn backfill_pending(&self, sink: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.marker_path(sink)).ok()?;
        Some(text.trim().parse().unwrap_or(0))
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
    /// first while a `Wait` sink is its whole buffer behind, and dropping
    /// the buffer of a `Backfill` sink that is.
    pub async fn write(
        &self,
        seq: i64,
        table: &str,
        keys: &[String],
        rows: &RecordBatch,
    ) -> Result<()> {
        self.make_room(seq).await?;
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

    /// Whether every sink has delivered every entry (and has no backfill
    /// pending).
    pub fn all_delivered(&self) -> Result<bool> {
        for s in &self.inner.sinks {
            if self.backfill_pending(&s.name).is_some() {
                return Ok(false);
            }
        }
        Ok(self.entries(&self.slowest()?)?.is_empty())
    }

    /// Tells the sink tasks that new entries are committed.
    pub fn committed(&self) {
        let _ = self.count_buffered();
        self.inner.written.notify_waiters();
    }

    /// Updates each sink's `buffered` counter.
    fn count_buffered(&self) -> Result<()> {
        let all = self.entries("")?;
        for s in &self.inner.sinks {
            let c = self.cursor(&s.name)?;
            let n = all.iter().filter(|id| id.as_str() > c.as_str()).count() as u64;
            self.inner.metrics.sink(&s.name, |m| m.buffered = n);
        }
        Ok(())
    }

    async fn make_room(&self, seq: i64) -> Result<()> {
        let mut warned = false;
        loop {
            let all = self.entries("")?;
            let mut waiting_for = None;
            for s in &self.inner.sinks {
                let c = self.cursor(&s.name)?;
                let behind = all.iter().filter(|id| id.as_str() > c.as_str()).count();
                if behind < s.capacity {
                    continue;
                }
                match s.when_full {
                    WhenFull::Wait if self.inner.delivering => {
                        waiting_for = Some((s.name.clone(), behind, s.capacity))
                    }
                    _ => self.overflow(&s.name, behind, &all, seq)?,
                }
            }
            let Some((sink, behind, capacity)) = waiting_for else {
                return Ok(());
            };
            if !warned {
                tracing::warn!(
                    %sink,
                    behind,
                    capacity,
                    "a sink is its whole buffer behind; ingestion waits for it"
                );
                warned = true;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(200), self.inner.delivered.notified())
                    .await;
        }
    }

    /// Drops a `Backfill` sink's buffer: marker first, then the cursor,
    /// which moves to the newest entry of an earlier micro-batch than
    /// `seq` (those are committed to their tables, so the backfill will
    /// read them; entries of the batch being written stay).
    fn overflow(&self, sink: &str, behind: usize, all: &[String], seq: i64) -> Result<()> {
        let bound = entry_id(seq, "");
        let Some(newest) = all.iter().rfind(|id| **id < bound).cloned() else {
            return Ok(());
        };
        {
            let _guard = self.inner.lock.lock().expect("outbox lock");
            let generation = self.backfill_pending(sink).unwrap_or(0) + 1;
            write_synced(&self.marker_path(sink), generation.to_string().as_bytes())?;
        }
        self.store_cursor(sink, &newest)?;
        self.inner.metrics.sink(sink, |m| {
            m.overflows += 1;
            m.buffered = 0;
        });
        tracing::warn!(
            %sink,
            dropped = behind,
            "sink buffer full: its buffered emissions are dropped and it will be backfilled from the window tables when it recovers (ingestion goes on)"
        );
        self.collect_garbage()
    }

    /// The cursor of the sink furthest behind.
    fn slowest(&self) -> Result<String> {
        let mut min: Option<String> = None;
        for s in &self.inner.sinks {
            let c = self.cursor(&s.name)?;
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

    /// Reads an entry; `None` if it is gone (dropped by an overflow).
    fn read(&self, id: &str) -> Result<Option<Emission>> {
        let path = self.inner.dir.join(format!("{id}.arrow"));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
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
        Ok(Some(Emission {
            id: id.to_string(),
            seq: seq.parse().unwrap_or(0),
            table: table.to_string(),
            keys,
            rows,
        }))
    }

    /// Delivers `emissions` to `sink`, retrying transient failures with
    /// exponential backoff (capped at `max_backoff`). `false` if shutdown
    /// came first.
    async fn deliver_retrying(
        &self,
        sink: &dyn Sink,
        emissions: &[Emission],
        what: &str,
        shutdown: &mut watch::Receiver<bool>,
        max_backoff: Duration,
    ) -> bool {
        let name = sink.name();
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            match sink.deliver_many(emissions).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(sink = %name, entry = %what, failures, "sink recovered");
                    }
                    return true;
                }
                Err(SinkError::Permanent(message)) => {
                    tracing::error!(sink = %name, entry = %what, %message, "sink refused an emission; skipped (the rows stay in the store)");
                    return true;
                }
                Err(SinkError::Transient(message)) => {
                    failures += 1;
                    self.inner.metrics.sink(name, |m| m.retries += 1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(sink = %name, entry = %what, failures, %message, "sink delivery failed; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    if *shutdown.borrow() {
                        return false;
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }

    /// Re-delivers every window table's rows to `sink` (after an overflow).
    async fn backfill(
        &self,
        sink: &dyn Sink,
        store: Option<&dyn StoreReader>,
        shutdown: &mut watch::Receiver<bool>,
        max_backoff: Duration,
    ) -> Result<bool> {
        let name = sink.name().to_string();
        let Some(generation) = self.backfill_pending(&name) else {
            return Ok(true);
        };
        let Some(store) = store else {
            return Err(Error::Engine(format!(
                "sink {name} needs a backfill but has no store reader"
            )));
        };
        tracing::info!(sink = %name, "backfilling the sink from the window tables");
        let tables_dir = self
            .inner
            .dir
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("tables"))
            .unwrap_or_default();
        for (table, keys) in store.window_tables() {
            if !tables_dir.join(&table).join("_delta_log").is_dir() {
                // Not created yet: nothing to send.
                continue;
            }
            let batches = loop {
                match store.query(&format!("SELECT * FROM \"{table}\"")).await {
                    Ok(b) => break b,
                    Err(e) => {
                        tracing::warn!(sink = %name, %table, error = %e, "backfill read failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        if *shutdown.borrow() {
                            return Ok(false);
                        }
                    }
                }
            };
            let emissions: Vec<Emission> = batches
                .into_iter()
                .filter(|b| b.num_rows() > 0)
                .map(|rows| Emission {
                    id: format!("backfill-{table}"),
                    seq: 0,
                    table: table.clone(),
                    keys: keys.clone(),
                    rows,
                })
                .collect();
            if !emissions.is_empty()
                && !self
                    .deliver_retrying(
                        sink,
                        &emissions,
                        &format!("backfill of {table}"),
                        shutdown,
                        max_backoff,
                    )
                    .await
            {
                return Ok(false);
            }
        }
        let _guard = self.inner.lock.lock().expect("outbox lock");
        if self.backfill_pending(&name) == Some(generation) {
            let path = self.marker_path(&name);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        self.inner.metrics.sink(&name, |m| m.backfills += 1);
        tracing::info!(sink = %name, "backfill done");
        Ok(true)
    }

    /// Runs `sink`'s delivery task until `shutdown` turns true: delivers
    /// every entry after its cursor, in order, retrying transient failures
    /// with exponential backoff (capped at `max_backoff`); after an
    /// overflow, backfills it from `store` first.
    pub async fn deliver_to(
        self,
        sink: Arc<dyn Sink>,
        mut shutdown: watch::Receiver<bool>,
        max_backoff: Duration,
        store: Option<Arc<dyn StoreReader>>,
    ) -> Result<()> {
        let name = sink.name().to_string();
        let buffer = sink.buffer();
        let batch = buffer.batch.max(1);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if !self
                .backfill(sink.as_ref(), store.as_deref(), &mut shutdown, max_backoff)
                .await?
            {
                return Ok(());
            }
            // Registered before looking, so a commit in between is not missed.
            let notified = self.inner.written.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let cursor = self.cursor(&name)?;
            let mut pending = self.entries(&cursor)?;
            if pending.is_empty() {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            if pending.len() < batch && !buffer.linger.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(buffer.linger) => {}
                    _ = shutdown.changed() => {}
                }
                pending = self.entries(&self.cursor(&name)?)?;
            }
            for ids in pending.chunks(batch) {
                if self.backfill_pending(&name).is_some() {
                    break;
                }
                let mut emissions = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(e) = self.read(id)? {
                        emissions.push(e);
                    }
                }
                let last = ids.last().expect("chunk");
                if !emissions.is_empty()
                    && !self
                        .deliver_retrying(
                            sink.as_ref(),
                            &emissions,
                            last,
                            &mut shutdown,
                            max_backoff,
                        )
                        .await
                {
                    return Ok(());
                }
                self.store_cursor(&name, last)?;
                let delivered = emissions.len() as u64;
                self.inner.metrics.sink(&name, |m| m.delivered += delivered);
                self.count_buffered()?;
                self.inner.delivered.notify_waiters();
                self.collect_garbage()?;
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

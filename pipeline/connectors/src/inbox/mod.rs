//! The inbox: a watched directory as a streaming source.
//!
//! Each CSV/NDJSON file dropped in the inbox is read as one bounded unit:
//! its chunks go to the engine writer, the last one asking for a window
//! flush (as at the end of an import), and once every chunk's micro-batch
//! has committed the file moves to the sibling `processed/` directory, or
//! to `failed/` with a `.error.txt` beside it when the file as a whole
//! cannot be read or its batch could not be committed. A file is picked up
//! once its size has been stable for one poll interval, so files being
//! written are not read half-way; names starting with `.` or ending in
//! `.tmp`/`.part` are ignored.
//!
//! Position (committed with the records): `{"file": NAME, "size": N,
//! "mtime_ns": T, "bytes": N, "done": BOOL}` for the file in progress. What happens after a crash:
//! a file whose last chunk committed (`done`) but which was not moved yet
//! is moved to `processed/` without being read again; a file interrupted
//! part-way is read again from its start, and its committed records are
//! duplicates (never stored twice) and its committed rejects are not
//! quarantined twice (quarantine rows are unique by source, file, line and
//! raw bytes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use finopsia_core::input::{Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::source::Source;
use finopsia_core::stream::{Ack, Counts, Feed, Position, StreamSource};
use finopsia_core::timefmt::parse_duration;
use finopsia_udfs::ModelHandle;
use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result};
use crate::files::FileSource;

/// `[inbox]`, or `[sources.NAME]` with `type = "inbox"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxConfig {
    /// `[inbox]` only: run the default inbox (set `false` to use only the
    /// sources under `[sources]`).
    #[serde(skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Watched directory (default `<data_dir>/inbox` for `[inbox]`;
    /// required under `[sources]`); files move to the sibling `processed/`
    /// or `failed/` directories.
    pub dir: Option<PathBuf>,
    /// How often the inbox is scanned.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub poll_interval: String,
    /// `[inbox]` only: the source name recorded for inbox files (under
    /// `[sources]` the section name is the source name).
    pub source: String,
    /// Preset applied to inbox files.
    pub preset: String,
    /// Format for files whose extension says nothing (`csv` or `ndjson`).
    pub default_format: Format,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            enabled: true,
            dir: None,
            poll_interval: "250ms".into(),
            source: "inbox".into(),
            preset: "canonical".into(),
            default_format: Format::Csv,
        }
    }
}

impl InboxConfig {
    pub fn validate(&self, section: &str) -> Result<()> {
        finopsia_core::settings::duration(
            &format!("{section}.poll_interval"),
            &self.poll_interval,
        )?;
        Ok(())
    }
}

/// A running inbox.
pub struct InboxSource {
    name: String,
    dir: PathBuf,
    processed: PathBuf,
    failed: PathBuf,
    poll: Duration,
    preset: Preset,
    bounds: Bounds,
    default_format: Format,
    batch_rows: usize,
    ahead: Option<Arc<ModelHandle>>,
}

impl InboxSource {
    /// `ahead`: categorize each chunk on the reading thread with this model
    /// (when the engine says the transform allows it).
    pub fn new(
        name: &str,
        dir: &Path,
        cfg: &InboxConfig,
        preset: Preset,
        bounds: Bounds,
        batch_rows: usize,
        ahead: Option<Arc<ModelHandle>>,
    ) -> Result<InboxSource> {
        let parent = dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let processed = parent.join("processed");
        let failed = parent.join("failed");
        for d in [dir, &processed, &failed] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        Ok(InboxSource {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            processed,
            failed,
            poll: parse_duration(&cfg.poll_interval).unwrap_or(Duration::from_millis(250)),
            preset,
            bounds,
            default_format: cfg.default_format,
            batch_rows,
            ahead,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads one file into the engine; `Ok(counts)` once all of it committed.
    async fn ingest_file(&self, path: &Path, feed: &Feed) -> std::result::Result<Counts, String> {
        let format = Format::from_path(path).unwrap_or(self.default_format);
        let file_name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let file_id = identity(path);
        let mut source =
            FileSource::single(&self.name, path, format, self.preset.clone(), self.bounds)
                .map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let rows = self.batch_rows;
        let ahead = self.ahead.clone();
        // Decoding and categorizing ahead on a blocking thread; one chunk of
        // look-ahead so the last chunk is known (it asks for the flush).
        let reader = tokio::task::spawn_blocking(move || loop {
            match source.next_chunk(rows) {
                Ok(Some(mut chunk)) => {
                    if let Some(models) = &ahead {
                        if let Err(e) = chunk.prepare(models) {
                            tracing::debug!("categorizing ahead failed: {e}");
                        }
                    }
                    if tx.blocking_send(Ok(Some(chunk))).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = tx.blocking_send(Ok(None));
                    return;
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            }
        });
        let mut acks: Vec<tokio::sync::oneshot::Receiver<Ack>> = Vec::new();
        let mut next = rx.recv().await.unwrap_or(Ok(None))?;
        if next.is_none() {
            // An empty file (or only a header): nothing to commit.
            let _ = reader.await;
            return Ok(Counts::default());
        }
        let mut read_error = None;
        while let Some(chunk) = next {
            let following = rx.recv().await.unwrap_or(Ok(None));
            let following = match following {
                Ok(f) => f,
                Err(e) => {
                    drop(chunk);
                    read_error = Some(format!("reading the file failed: {e}"));
                    break;
                }
            };
            let done = following.is_none();
            let position = serde_json::json!({
                "file": file_name,
                "size": file_id.0,
                "mtime_ns": file_id.1,
                "bytes": chunk.bytes_read,
                "done": done,
            });
            match feed.send(chunk, position, done).await {
                Some(ack) => acks.push(ack),
                None => return Err("the engine stopped".into()),
            }
            next = following;
        }
        let _ = reader.await;
        // Every sent chunk is answered (a batch after a failed one may still
        // commit once the engine is reopened), so the outcome says exactly
        // what of this file was stored.
        let (sent, mut committed) = (acks.len(), 0);
        let (mut total, mut failures) = (Counts::default(), Vec::new());
        for ack in acks {
            match ack.await {
                Ok(Ok(c)) => {
                    total += c.counts;
                    committed += 1;
                }
                Ok(Err(message)) => failures.push(message),
                Err(_) => failures.push("the engine stopped before committing".into()),
            }
        }
        let unread = read_error.is_some();
        failures.extend(read_error);
        if failures.is_empty() {
            return Ok(total);
        }
        Err(format!(
            "{}\n\nStored from this file: accepted {}, quarantined {}, duplicates {} ({} of {} micro-batches committed); the failed batches{} were not stored.\nFix the problem and drop the file in the inbox again: stored records count as duplicates and rejects are not quarantined twice.",
            failures.join("\n"),
            total.accepted,
            total.quarantined,
            total.duplicates,
            committed,
            sent,
            if unread { " and the rest of the file" } else { "" },
        ))
    }
}

#[async_trait::async_trait]
impl StreamSource for InboxSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&mut self, resume: Option<Position>, mut feed: Feed) -> finopsia_core::Result<()> {
        // A file committed whole before a crash, but not moved yet.
        if let Some(p) = resume {
            if p["done"].as_bool() == Some(true) {
                if let Some(name) = p["file"].as_str() {
                    let path = self.dir.join(name);
                    // The same file (size and modification time), not a new
                    // one dropped under the same name since.
                    let (size, mtime) = identity(&path);
                    if path.is_file()
                        && p["size"].as_u64() == Some(size)
                        && p["mtime_ns"].as_u64() == Some(mtime)
                    {
                        tracing::info!(file = %path.display(), "already ingested before the restart; moving it to processed/");
                        move_unique(&path, &self.processed.join(name))?;
                    }
                }
            }
        }
        tracing::info!(inbox = %self.dir.display(), source = %self.name, "watching inbox; drop CSV or NDJSON files there");
        let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = feed.stopped() => return Ok(()),
                _ = tokio::time::sleep(self.poll) => {}
            }
            for (path, size) in scan(&self.dir)? {
                if feed.stopping() {
                    return Ok(());
                }
                if sizes.get(&path) != Some(&size) {
                    sizes.insert(path, size);
                    continue;
                }
                sizes.remove(&path);
                let name = path.file_name().unwrap_or_default().to_owned();
                match self.ingest_file(&path, &feed).await {
                    Ok(c) => {
                        tracing::info!(file = %path.display(), accepted = c.accepted, quarantined = c.quarantined, duplicates = c.duplicates, "file ingested");
                        move_unique(&path, &self.processed.join(&name))?;
                    }
                    Err(_) if feed.stopping() => return Ok(()),
                    Err(error) => {
                        tracing::error!(file = %path.display(), %error, "file failed");
                        let dest = move_unique(&path, &self.failed.join(&name))?;
                        let note = dest.with_file_name(format!(
                            "{}.error.txt",
                            dest.file_name().unwrap_or_default().to_string_lossy()
                        ));
                        std::fs::write(&note, format!("{error}\n")).map_err(io_err(&note))?;
                    }
                }
            }
        }
    }
}

/// (size, modification time in ns) of a file, to recognise it after a restart.
fn identity(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (size, mtime)
}

fn scan(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
            continue;
        }
        let meta = entry.metadata().map_err(io_err(entry.path()))?;
        if meta.is_file() {
            out.push((entry.path(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Renames `from` to `to`, adding a numeric suffix if `to` exists.
pub fn move_unique(from: &Path, to: &Path) -> Result<PathBuf> {
    let mut dest = to.to_path_buf();
    let mut n = 1;
    while dest.exists() {
        dest = to.with_file_name(format!(
            "{}.{n}",
            to.file_name().unwrap_or_default().to_string_lossy()
        ));
        n += 1;
    }
    std::fs::rename(from, &dest).map_err(io_err(from))?;
    Ok(dest)
}

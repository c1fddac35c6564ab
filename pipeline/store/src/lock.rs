//! One writer per data directory.
//!
//! Every command that writes the store (`run`, `import`, `correct`, `balance set`,
//! `forecast`) first takes an exclusive advisory lock (`flock`) on
//! `<data_dir>/finopsia.lock` and keeps it until it exits. The file then
//! holds a small JSON note of who holds it (pid, command, start time, inbox),
//! which a refused writer prints with what to do instead.
//!
//! What is committed where: nothing durable depends on this file. The lock
//! lives in the kernel, tied to the open file: when the holder exits or is
//! killed (`kill -9` included) the kernel releases it, so a stale note of a
//! dead process is simply overwritten by the next writer (taken over
//! safely, never "broken" by guessing from a pid). Readers (`finopsia
//! query`, the servers' query service) never take it.
//!
//! Within one process the lock is shared: a second acquisition of the same
//! directory (the service's forecast refresh, say) gets the same guard.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};

/// The lock file's name inside a data directory.
pub const LOCK_FILE: &str = "finopsia.lock";

/// Who holds a data directory (the lock file's content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The command line, e.g. `finopsia run --data-dir data`.
    pub command: String,
    /// RFC 3339 UTC.
    pub since: String,
    /// The inbox the holder watches, if it is a service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
}

/// Held while alive; dropping the last clone releases the lock.
#[derive(Debug, Clone)]
pub struct WriterLock(#[allow(dead_code)] Arc<Inner>);

#[derive(Debug)]
struct Inner {
    file: File,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.file.unlock();
        held().lock().expect("lock table").remove(&self.path);
    }
}

fn held() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static HELD: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> =
        std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

impl WriterLock {
    /// Takes the writer lock of `data_dir` (creating the directory), or
    /// fails at once with [`Error::Locked`] naming the holder.
    pub fn acquire(data_dir: &Path, inbox: Option<&Path>) -> Result<WriterLock> {
        std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        let path = std::fs::canonicalize(data_dir)
            .map_err(io_err(data_dir))?
            .join(LOCK_FILE);
        let mut table = held().lock().expect("lock table");
        if let Some(inner) = table.get(&path).and_then(Weak::upgrade) {
            return Ok(WriterLock(inner));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text).ok();
                return Err(Error::Locked {
                    data_dir: data_dir.to_path_buf(),
                    holder: holder.as_ref().map_or_else(
                        || "another process (no holder note yet)".to_string(),
                        describe,
                    ),
                    advice: advice(data_dir, holder.as_ref()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            command: command_line(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            inbox: inbox.map(Path::to_path_buf),
        };
        let note = serde_json::to_vec(&holder).map_err(|e| Error::Store(e.to_string()))?;
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&note))
            .and_then(|_| file.write_all(b"\n"))
            .map_err(io_err(&path))?;
        let inner = Arc::new(Inner {
            file,
            path: path.clone(),
        });
        table.insert(path, Arc::downgrade(&inner));
        Ok(WriterLock(inner))
    }

    /// The holder note of `data_dir`'s lock, if a live process holds it.
    pub fn holder(data_dir: &Path) -> Option<Holder> {
        let path = data_dir.join(LOCK_FILE);
        let file = File::open(&path).ok()?;
        match file.try_lock_shared() {
            // Nobody holds it (a stale note at most).
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(_) => {
                let text = std::fs::read_to_string(&path).ok()?;
                serde_json::from_str(&text).ok()
            }
        }
    }
}

fn describe(h: &Holder) -> String {
    format!("`{}` (pid {}, since {})", h.command, h.pid, h.since)
}

fn advice(data_dir: &Path, holder: Option<&Holder>) -> String {
    let inbox = holder
        .and_then(|h| h.inbox.clone())
        .unwrap_or_else(|| data_dir.join("inbox"));
    format!(
        "only one process may write a data directory. To add files while the service runs, drop them into its inbox ({}); for anything else, stop that process first (Ctrl-C, or SIGTERM to its pid). `finopsia query` reads at any time",
        inbox.display()
    )
}

fn command_line() -> String {
    let mut args = std::env::args();
    let first = args
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "finopsia".into());
    std::iter::once(first)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_process_shares_the_lock_and_drop_releases_it() {
        let tmp = tempfile::tempdir().unwrap();
        let a = WriterLock::acquire(tmp.path(), None).unwrap();
        let b = WriterLock::acquire(tmp.path(), None).unwrap();
        let h = WriterLock::holder(tmp.path()).expect("held");
        assert_eq!(h.pid, std::process::id());
        drop(a);
        assert!(WriterLock::holder(tmp.path()).is_some(), "b still holds it");
        drop(b);
        assert!(WriterLock::holder(tmp.path()).is_none(), "released");
        // A stale note (no live holder) is taken over.
        std::fs::write(
            tmp.path().join(LOCK_FILE),
            r#"{"pid":1,"command":"gone","since":"2020-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let _c = WriterLock::acquire(tmp.path(), None).unwrap();
        assert_eq!(
            WriterLock::holder(tmp.path()).unwrap().pid,
            std::process::id()
        );
    }
}

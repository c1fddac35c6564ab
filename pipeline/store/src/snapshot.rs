//! Readers on fresh, consistent snapshots.
//!
//! After every completed micro-batch (records, rejects and the window
//! emissions it caused all committed) the engine publishes the versions of
//! the tables it writes as one [`Versions`]. A reader's query sees exactly
//! those versions of `transactions`, `quarantine` and the window tables, so
//! totals across them agree, and never waits for the writer.
//!
//! Published two ways, both after the commits they name:
//! - in the writer's process, through a `watch` channel ([`Publisher`]);
//! - for other processes (`finopsia query`), in `<data_dir>/state/snapshot.json`,
//!   replaced atomically (temporary file + rename).
//!
//! The file is only a pointer to committed versions, so losing it loses
//! nothing: without it (or for a table it does not name, such as `forecasts`)
//! a reader uses the latest committed version. Old versions stay readable
//! until a vacuum removes their files, which keeps far more than a query's
//! lifetime.
//!
//! Building a session (listing the tables, loading their logs, registering
//! providers and views) costs far more than a small read, so the last session
//! is kept and shared by every query until its key changes: the published
//! versions, the set of tables, and the latest version of each table the
//! snapshot does not name (probed by looking for its next commit file in
//! `_delta_log`, one `stat` per such table).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use finopsia_udfs::ModelHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use crate::cache::{CachedFile, FileCache, TableFiles};
use crate::error::{io_err, Error, Result};
use crate::store::{new_context, register_views, View};

/// Table versions as of one completed micro-batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The micro-batch sequence they are as of.
    pub seq: i64,
    /// Table name → Delta version.
    pub tables: BTreeMap<String, u64>,
}

const SNAPSHOT_FILE: &str = "snapshot.json";

fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join(SNAPSHOT_FILE)
}

/// The writer's side: publishes each completed micro-batch's versions.
#[derive(Debug)]
pub struct Publisher {
    path: PathBuf,
    tx: watch::Sender<Arc<Versions>>,
}

impl Publisher {
    pub fn new(data_dir: &Path) -> Publisher {
        let (tx, _) = watch::channel(Arc::new(Versions::default()));
        Publisher {
            path: snapshot_path(data_dir),
            tx,
        }
    }

    /// Publishes `v` to in-process readers and to the snapshot file.
    pub fn publish(&self, v: Versions) -> Result<()> {
        let text = serde_json::to_vec(&v).map_err(|e| Error::Store(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        self.tx.send_replace(Arc::new(v));
        Ok(())
    }

    /// A receiver for in-process readers.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Versions>> {
        self.tx.subscribe()
    }
}

/// For a process that holds the writer lock and rewrote tables without
/// changing their rows (compaction): points the snapshot file at the
/// newest version of every table it names, keeping its `seq`, so that no
/// reader is sent to files a later vacuum deletes. Without a snapshot file
/// there is nothing to do.
pub async fn republish_latest(data_dir: &Path) -> Result<()> {
    let path = snapshot_path(data_dir);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let mut v: Versions = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
    let stats = crate::store::all_stats(data_dir).await?;
    for (name, version) in v.tables.iter_mut() {
        if let Some(s) = stats.get(name) {
            *version = s.version;
        }
    }
    Publisher::new(data_dir).publish(v)
}

/// Read-only SQL over the store, each query on one snapshot. Cheap to clone
/// and safe to share between tasks.
#[derive(Clone)]
pub struct QueryService {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    models: Arc<ModelHandle>,
    views: Vec<View>,
    live: Option<watch::Receiver<Arc<Versions>>>,
    /// One loaded table per name, moved forward (or back) to the version a
    /// query needs.
    tables: Mutex<HashMap<String, DeltaTable>>,
    /// The last session built, shared until its key changes.
    session: std::sync::Mutex<Option<(SessionKey, Snapshot)>>,
    /// Decoded files, when reads are served from memory.
    files: Option<FileCache>,
}

/// One snapshot as a reader sees it: a session with every table registered
/// as of one completed micro-batch, what it was built from, and the decoded
/// files of the tables served from memory. Cheap to clone.
#[derive(Clone)]
pub struct Snapshot {
    pub ctx: SessionContext,
    pub versions: Versions,
    /// Every table present with the Delta version registered.
    tables: Arc<Vec<(String, Option<u64>)>>,
    /// Tables served from memory: their files' batches, in the session.
    memory: Arc<HashMap<String, Vec<CachedFile>>>,
}

impl Snapshot {
    /// The Delta version of `table` in this snapshot (`None` when absent).
    pub fn version_of(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(n, _)| n == table)
            .and_then(|(_, v)| *v)
    }

    /// The decoded files of `table` when the session reads it from memory
    /// (the same batches its queries scan).
    pub fn in_memory(&self, table: &str) -> Option<&[CachedFile]> {
        self.memory.get(table).map(Vec::as_slice)
    }
}

/// What a session was built from: the published versions, and every table
/// present with the version it was registered at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionKey {
    versions: Versions,
    tables: Vec<(String, Option<u64>)>,
}

impl std::fmt::Debug for QueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryService")
            .field("data_dir", &self.inner.data_dir)
            .finish()
    }
}

impl QueryService {
    /// Queries the store under `data_dir` from another process: snapshots
    /// come from the snapshot file the writer keeps.
    pub fn open(data_dir: &Path, models: Arc<ModelHandle>, views: &[View]) -> QueryService {
        Self::new(data_dir, models, views, None)
    }

    /// Queries in the writer's process: snapshots come from `live`.
    pub fn live(
        data_dir: &Path,
        models: Arc<ModelHandle>,
        views: &[View],
        live: watch::Receiver<Arc<Versions>>,
    ) -> QueryService {
        Self::new(data_dir, models, views, Some(live))
    }

    fn new(
        data_dir: &Path,
        models: Arc<ModelHandle>,
        views: &[View],
        live: Option<watch::Receiver<Arc<Versions>>>,
    ) -> QueryService {
        QueryService {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                models,
                views: views.to_vec(),
                live,
                tables: Mutex::new(HashMap::new()),
                session: std::sync::Mutex::new(None),
                files: None,
            }),
        }
    }

    /// Serves tables from decoded files kept in memory, up to `bytes` of
    /// them (see [`crate::cache`]); 0 leaves reads on Parquet. Call before
    /// the service is cloned.
    pub fn with_file_cache(mut self, bytes: usize) -> QueryService {
        let inner = Arc::get_mut(&mut self.inner).expect("with_file_cache before sharing");
        inner.files = (bytes > 0).then(|| FileCache::new(bytes));
        self
    }

    /// Bytes of decoded files held in memory.
    pub fn cached_bytes(&self) -> usize {
        self.inner.files.as_ref().map_or(0, |f| f.used())
    }

    /// The versions the next query would see.
    pub fn versions(&self) -> Versions {
        match &self.inner.live {
            Some(rx) => (**rx.borrow()).clone(),
            None => std::fs::read(snapshot_path(&self.inner.data_dir))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        }
    }

    fn tables_dir(&self) -> PathBuf {
        self.inner.data_dir.join("tables")
    }

    /// Names of the tables present.
    fn table_names(&self) -> Result<Vec<String>> {
        let root = self.tables_dir();
        let mut names = Vec::new();
        let Ok(dir) = std::fs::read_dir(&root) else {
            return Ok(names);
        };
        for entry in dir {
            let entry = entry.map_err(io_err(&root))?;
            if entry.path().join("_delta_log").is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether `name` has a commit after `version` (its next log entry).
    fn has_commit_after(&self, name: &str, version: u64) -> bool {
        self.tables_dir()
            .join(name)
            .join("_delta_log")
            .join(format!("{:020}.json", version + 1))
            .exists()
    }

    /// The cached session, if it still is the one `versions` and `names`
    /// ask for.
    fn cached(&self, versions: &Versions, names: &[String]) -> Option<Snapshot> {
        let cache = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
        let (key, snap) = cache.as_ref()?;
        if key.versions != *versions
            || key.tables.len() != names.len()
            || key.tables.iter().zip(names).any(|((a, _), b)| a != b)
        {
            return None;
        }
        for (name, registered) in &key.tables {
            if versions.tables.contains_key(name) {
                continue;
            }
            match registered {
                Some(at) if !self.has_commit_after(name, *at) => {}
                _ => return None,
            }
        }
        Some(snap.clone())
    }

    /// A session with every table registered as of one snapshot (tables the
    /// snapshot does not name at their latest version) and the views. The
    /// same session is handed to every caller until the snapshot or a table
    /// outside it moves; callers must not register anything in it.
    pub async fn context(&self) -> Result<(SessionContext, Versions)> {
        let s = self.snapshot().await?;
        Ok((s.ctx, s.versions))
    }

    /// The latest snapshot: the session [`QueryService::context`] hands out,
    /// with what it was built from.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let versions = self.versions();
        let names = self.table_names()?;
        if let Some(hit) = self.cached(&versions, &names) {
            return Ok(hit);
        }
        let ctx = new_context(&self.inner.models);
        let mut registered = Vec::with_capacity(names.len());
        let mut live = std::collections::HashSet::new();
        let mut memory = HashMap::new();
        let mut cache = self.inner.tables.lock().await;
        for name in names {
            let want = versions.tables.get(&name).copied();
            let table = match cache.remove(&name) {
                Some(mut t) => {
                    match want {
                        Some(v) if t.version() != Some(v) => t.load_version(v).await?,
                        Some(_) => {}
                        None => t.update_incremental(None).await?,
                    }
                    t
                }
                None => {
                    let url = deltalake::ensure_table_uri(
                        self.tables_dir().join(&name).to_string_lossy(),
                    )?;
                    match want {
                        Some(v) => deltalake::open_table_with_version(url, v).await?,
                        None => deltalake::open_table(url).await?,
                    }
                }
            };
            let mut provider = table.table_provider().await?;
            if let Some(cache) = &self.inner.files {
                let dir = self.tables_dir().join(&name);
                if let Some(files) = TableFiles::of(&table, &dir) {
                    match cache.table(&name, &files, &provider.schema(), 2) {
                        Ok(Some((mem, by_file))) => {
                            live.extend(files.paths().iter().cloned());
                            provider = Arc::new(mem);
                            memory.insert(name.clone(), by_file);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(table = %name, error = %e, "read cache: reading from Parquet")
                        }
                    }
                }
            }
            registered.push((name.clone(), table.version()));
            cache.insert(name.clone(), table);
            ctx.register_table(name.as_str(), provider)?;
        }
        drop(cache);
        if let Some(files) = &self.inner.files {
            files.retain(&live);
        }
        register_views(&ctx, &self.inner.views).await?;
        let snap = Snapshot {
            ctx,
            versions: versions.clone(),
            tables: Arc::new(registered.clone()),
            memory: Arc::new(memory),
        };
        let key = SessionKey {
            versions,
            tables: registered,
        };
        *self.inner.session.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, snap.clone()));
        Ok(snap)
    }

    /// Runs one read-only statement (no DDL, DML or statements such as SET).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let (ctx, _) = self.context().await?;
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        Ok(ctx.sql_with_options(sql, options).await?.collect().await?)
    }
}

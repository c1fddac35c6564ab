//! The embedded store: one Delta Lake table per name under `<data_dir>/tables/`.
//!
//! Writes are atomic Delta commits. A commit may carry an application
//! transaction (app id + version); the engine uses it as its batch sequence so
//! a crash between two commits is detected and replayed exactly once. Window
//! tables are updated with `replace_where` on the emitted window starts, so a
//! corrected window replaces its old rows in the same commit.
//! Every table is queryable with DataFusion SQL through [`Store::context`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::{Expr, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use finopsia_udfs::registry::Registry;
use finopsia_udfs::ModelHandle;

use crate::error::{io_err, Error, Result};

pub struct Store {
    root: PathBuf,
    cache: HashMap<String, DeltaTable>,
    models: Arc<ModelHandle>,
    views: Vec<View>,
}

/// A SQL view registered on every session of a store, when the tables it
/// reads exist. The crates that own tables define their views (the ops
/// crate's forecast views, say); the store only registers them.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    /// Tables the view reads.
    pub needs: &'static [&'static str],
    pub sql: &'static str,
    /// Used instead of `sql` when that fails on tables written before a
    /// column the view reads existed (until the next write adds it).
    pub fallback: Option<&'static str>,
}

impl Store {
    /// Opens (creating the directory if needed) the store under `data_dir`,
    /// with the categorization model registered under `<data_dir>/models`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with(data_dir, finopsia_udfs::categorize::DEFAULT_REVIEW_BELOW)
    }

    /// Like [`Store::open`]; model-filled categories with a confidence below
    /// `review_below` are flagged `needs_review`.
    pub fn open_with(data_dir: &Path, review_below: f64) -> Result<Store> {
        let root = data_dir.join("tables");
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let models = ModelHandle::open(Registry::for_data_dir(data_dir), review_below)
            .map_err(|e| Error::Model(e.to_string()))?;
        Ok(Store {
            root,
            cache: HashMap::new(),
            models,
            views: Vec::new(),
        })
    }

    /// Registers `views` on every session from now on.
    pub fn with_views(mut self, views: &[View]) -> Store {
        self.views.extend_from_slice(views);
        self
    }

    /// The directory holding the tables.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The categorization model `categorize()` uses on this store's sessions.
    pub fn models(&self) -> &Arc<ModelHandle> {
        &self.models
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).join("_delta_log").is_dir()
    }

    /// Names of all tables present.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.exists(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn url(&self, name: &str) -> Result<url::Url> {
        let path = self.path(name);
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(deltalake::ensure_table_uri(path.to_string_lossy())?)
    }

    async fn take(&mut self, name: &str) -> Result<DeltaTable> {
        if let Some(t) = self.cache.remove(name) {
            return Ok(t);
        }
        let url = self.url(name)?;
        if self.exists(name) {
            Ok(deltalake::open_table(url).await?)
        } else {
            Ok(DeltaTable::try_from_url(url).await?)
        }
    }

    /// Creates an empty table with this schema if it does not exist.
    pub async fn ensure(&mut self, name: &str, schema: SchemaRef) -> Result<()> {
        if self.exists(name) {
            return Ok(());
        }
        let empty = RecordBatch::new_empty(finopsia_core::schema::nullable(&schema));
        self.append(name, vec![empty], None).await
    }

    /// Appends batches in one commit, optionally recording `(app_id, version)`.
    /// New columns are merged into the table schema.
    pub async fn append(
        &mut self,
        name: &str,
        batches: Vec<RecordBatch>,
        txn: Option<(&str, i64)>,
    ) -> Result<()> {
        self.append_with(name, batches, txn, None).await
    }

    /// Like [`Store::append`], also recording `metadata` (key, JSON value)
    /// in the commit's `commitInfo`, read back with [`Store::last_metadata`].
    /// An empty `batches` still commits (the transaction and metadata).
    pub async fn append_with(
        &mut self,
        name: &str,
        batches: Vec<RecordBatch>,
        txn: Option<(&str, i64)>,
        metadata: Option<(&str, serde_json::Value)>,
    ) -> Result<()> {
        let table = self.take(name).await?;
        let batches = batches
            .into_iter()
            .map(|b| relax(&b))
            .collect::<Result<Vec<_>>>()?;
        let builder = table
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge);
        let mut props = commit_properties(txn);
        if let Some((key, value)) = metadata {
            props = props.with_metadata([(key.to_string(), value)]);
        }
        let table = builder.with_commit_properties(props).await?;
        self.cache.insert(name.to_string(), table);
        Ok(())
    }

    /// Drops the cached state of `name`: its next use reads the newest
    /// version from the log (after another process or task committed).
    pub fn forget(&mut self, name: &str) {
        self.cache.remove(name);
    }

    /// The table's current version (`None` if it does not exist).
    pub async fn version(&mut self, name: &str) -> Result<Option<u64>> {
        if !self.exists(name) {
            return Ok(None);
        }
        let table = self.take(name).await?;
        let v = table.version();
        self.cache.insert(name.to_string(), table);
        Ok(v)
    }

    /// The value of `key` in the newest commit of `name` that recorded it
    /// with [`Store::append_with`].
    pub async fn last_metadata(
        &mut self,
        name: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>> {
        use futures::TryStreamExt;
        if !self.exists(name) {
            return Ok(None);
        }
        let table = self.take(name).await?;
        let mut found = None;
        // Newest first; the engine writes the key on every commit it makes,
        // so the first few commits normally hold it.
        for limit in [Some(64), None] {
            let infos: Vec<_> = table.history(limit).try_collect().await?;
            found = infos.into_iter().find_map(|c| c.info.get(key).cloned());
            if found.is_some() {
                break;
            }
        }
        self.cache.insert(name.to_string(), table);
        Ok(found)
    }

    /// Replaces the rows matching `predicate` with `batch` in one commit.
    pub async fn replace(
        &mut self,
        name: &str,
        batch: RecordBatch,
        predicate: Expr,
        txn: Option<(&str, i64)>,
    ) -> Result<()> {
        if !self.exists(name) {
            return self.append(name, vec![batch], txn).await;
        }
        let table = self.take(name).await?;
        let builder = table
            .write(vec![relax(&batch)?])
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(predicate);
        let table = builder
            .with_commit_properties(commit_properties(txn))
            .await?;
        self.cache.insert(name.to_string(), table);
        Ok(())
    }

    /// Replaces the whole table with `batch` in one commit.
    pub async fn overwrite(&mut self, name: &str, batch: RecordBatch) -> Result<()> {
        if !self.exists(name) {
            return self.append(name, vec![batch], None).await;
        }
        let table = self.take(name).await?;
        let table = table
            .write(vec![relax(&batch)?])
            .with_save_mode(SaveMode::Overwrite)
            .await?;
        self.cache.insert(name.to_string(), table);
        Ok(())
    }

    /// The table's version and the number of data files its current
    /// version reads (`None` if it does not exist).
    pub async fn stats(&mut self, name: &str) -> Result<Option<TableStats>> {
        if !self.exists(name) {
            return Ok(None);
        }
        let table = self.take(name).await?;
        let stats = table_stats(&table);
        self.cache.insert(name.to_string(), table);
        stats.map(Some)
    }

    /// Rewrites the table's small data files into files of about
    /// `target_bytes` (Delta `OPTIMIZE`, compaction). The rows do not
    /// change; the commit's `remove` actions carry `dataChange = false`, so
    /// concurrent blind appends (the engine's `transactions` and
    /// `quarantine` commits, job history) neither conflict with it nor are
    /// touched by it. A table whose writer replaces rows (`replace`,
    /// `overwrite`) must be compacted by that writer, between its writes:
    /// Delta's conflict check lets such a replace commit after a
    /// compaction that already rewrote the rows it removes.
    pub async fn compact(&mut self, name: &str, target_bytes: u64) -> Result<Compaction> {
        let table = self.take(name).await?;
        let before = table_stats(&table)?;
        let target = std::num::NonZeroU64::new(target_bytes.max(1)).expect("nonzero");
        // On failure the table is not cached: the next use reloads it.
        let (table, metrics) = table.optimize().with_target_size(target).await?;
        let after = table_stats(&table)?;
        self.cache.insert(name.to_string(), table);
        Ok(Compaction {
            table: name.to_string(),
            files_before: before.files,
            files_after: after.files,
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            version: after.version,
        })
    }

    /// Deletes the rows matching `predicate` (SQL) in one commit; returns
    /// how many (when known). Files holding such rows are rewritten without
    /// them. Concurrent blind appends do not conflict with it unless their
    /// new files could match the predicate (Delta checks their statistics).
    pub async fn delete(&mut self, name: &str, predicate: &str) -> Result<Option<usize>> {
        if !self.exists(name) {
            return Ok(Some(0));
        }
        let table = self.take(name).await?;
        let (table, metrics) = table.delete().with_predicate(predicate.to_string()).await?;
        self.cache.insert(name.to_string(), table);
        Ok(metrics.num_deleted_rows)
    }

    /// Deletes data files that no version newer than `retain` ago reads
    /// (Delta `VACUUM`, lite mode: files the log removed). Readers of a
    /// snapshot older than `retain` would lose their files, so keep it
    /// well above the longest query. Returns the number of files deleted.
    pub async fn vacuum(&mut self, name: &str, retain: std::time::Duration) -> Result<usize> {
        let table = self.take(name).await?;
        let retain = chrono::Duration::from_std(retain)
            .map_err(|e| Error::Store(format!("vacuum retention: {e}")))?;
        // The log keeps tombstones after their files are gone, and vacuum
        // lists them again each time: count only the files still there.
        let (table, candidates) = table
            .vacuum()
            .with_retention_period(retain)
            .with_enforce_retention_duration(false)
            .with_dry_run(true)
            .await?;
        let dir = self.path(name);
        let present = candidates
            .files_deleted
            .iter()
            .filter(|f| {
                let rel = f
                    .rsplit_once(&format!("/{name}/"))
                    .map_or(f.as_str(), |(_, r)| r);
                dir.join(rel).exists()
            })
            .count();
        if present == 0 {
            self.cache.insert(name.to_string(), table);
            return Ok(0);
        }
        let (table, _) = table
            .vacuum()
            .with_retention_period(retain)
            .with_enforce_retention_duration(false)
            .await?;
        self.cache.insert(name.to_string(), table);
        Ok(present)
    }

    /// The last version committed for an application id, if any.
    pub async fn app_version(&mut self, name: &str, app_id: &str) -> Result<Option<i64>> {
        if !self.exists(name) {
            return Ok(None);
        }
        let table = self.take(name).await?;
        let v = table
            .snapshot()?
            .transaction_version(table.log_store().as_ref(), app_id)
            .await;
        self.cache.insert(name.to_string(), table);
        Ok(v?)
    }

    /// Registers a table (if it exists) on a session under its own name.
    pub async fn register(&mut self, ctx: &SessionContext, name: &str) -> Result<bool> {
        if !self.exists(name) {
            return Ok(false);
        }
        let table = self.take(name).await?;
        let provider = table.table_provider().await;
        self.cache.insert(name.to_string(), table);
        ctx.deregister_table(name)?;
        ctx.register_table(name, provider?)?;
        Ok(true)
    }

    /// A session with every table registered and the UDFs available.
    pub async fn context(&mut self) -> Result<SessionContext> {
        let ctx = new_context(&self.models);
        for name in self.table_names()? {
            self.register(&ctx, &name).await?;
        }
        register_views(&ctx, &self.views).await?;
        Ok(ctx)
    }

    /// Runs a read-only statement over all tables (no DDL, DML or
    /// statements such as SET): what `finopsia query` accepts.
    pub async fn query_readonly(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.context().await?;
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        Ok(ctx.sql_with_options(sql, options).await?.collect().await?)
    }

    /// Runs SQL over all tables.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.context().await?;
        Ok(ctx.sql(sql).await?.collect().await?)
    }
}

/// Creates each view whose tables are registered on `ctx`.
pub async fn register_views(ctx: &SessionContext, views: &[View]) -> Result<()> {
    for view in views {
        let mut present = true;
        for t in view.needs {
            present &= ctx.table_exist(*t)?;
        }
        if present {
            let create = |sql: &str| format!("CREATE OR REPLACE VIEW {} AS {sql}", view.name);
            match (ctx.sql(&create(view.sql)).await, view.fallback) {
                (Ok(df), _) => {
                    df.collect().await?;
                }
                (Err(_), Some(old)) => {
                    ctx.sql(&create(old)).await?.collect().await?;
                }
                (Err(e), None) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A DataFusion session with FinOpsia's UDFs registered.
pub fn new_context(models: &Arc<ModelHandle>) -> SessionContext {
    new_context_with(
        models,
        datafusion::prelude::SessionConfig::new().batch_size(),
    )
}

/// A session whose execution batches hold up to `batch_size` rows. The
/// engine uses its micro-batch size, so that a micro-batch reaches
/// `categorize()` whole (one model evaluation, split over the cores) instead
/// of in DataFusion's default 8,192-row slices.
pub fn new_context_with(models: &Arc<ModelHandle>, batch_size: usize) -> SessionContext {
    let config = datafusion::prelude::SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(batch_size.max(1))
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    finopsia_udfs::register_all(&ctx, models);
    ctx
}

/// Commit properties carrying an application transaction, if any.
fn commit_properties(txn: Option<(&str, i64)>) -> CommitProperties {
    let props = CommitProperties::default();
    match txn {
        Some((app, version)) => props.with_application_transaction(Transaction::new(app, version)),
        None => props,
    }
}

/// Re-labels a batch with an all-nullable schema (tables are all-nullable).
fn relax(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = finopsia_core::schema::nullable(batch.schema().as_ref());
    Ok(RecordBatch::try_new_with_options(
        schema,
        batch.columns().to_vec(),
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// A table's version and its current version's data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    pub version: u64,
    pub files: usize,
}

fn table_stats(table: &DeltaTable) -> Result<TableStats> {
    let snapshot = table.snapshot()?;
    Ok(TableStats {
        version: snapshot.version(),
        files: snapshot.log_data().num_files(),
    })
}

/// The version and data files of every table under `<data_dir>/tables`,
/// read from the Delta logs (no lock, no model registry).
pub async fn all_stats(data_dir: &Path) -> Result<std::collections::BTreeMap<String, TableStats>> {
    let root = data_dir.join("tables");
    let mut out = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(&root) else {
        return Ok(out);
    };
    for entry in dir {
        let entry = entry.map_err(io_err(&root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // A table being created has its log directory before its first
        // commit: not a table yet.
        let committed = std::fs::read_dir(path.join("_delta_log"))
            .map(|d| {
                d.flatten().any(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.ends_with(".json") || n.ends_with(".parquet")
                })
            })
            .unwrap_or(false);
        if !committed {
            continue;
        }
        let url = deltalake::ensure_table_uri(path.to_string_lossy())?;
        let table = deltalake::open_table(url).await?;
        out.insert(name.clone(), table_stats(&table)?);
    }
    Ok(out)
}

/// What [`Store::compact`] did to one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    pub table: String,
    pub files_before: usize,
    pub files_after: usize,
    pub files_removed: u64,
    pub files_added: u64,
    /// The table's version after the compaction.
    pub version: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

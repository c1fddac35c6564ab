//! Decoded table files kept in memory for readers.
//!
//! A Delta table's data files never change once committed, so a reader that
//! serves many small queries (the REST API, the dashboard) keeps each file's
//! decoded Arrow batches and registers a table as an in-memory table over
//! exactly the files of the version it reads, instead of decoding Parquet on
//! every query. Nothing here is state: it is rebuilt from the files, and a
//! table it cannot hold (over the byte budget, or using Delta features it does
//! not read: partition columns, deletion vectors) is read from Parquet as
//! before.
//!
//! Memory: at most `budget` bytes of decoded batches (Arrow's own count).
//! Files no longer referenced by the tables of the latest session are
//! dropped when the next session is built; a table whose files would exceed
//! what is left is not cached, and is not tried again until its files shrink.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use datafusion::arrow::array::{new_null_array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemTable;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::DeltaTable;

use crate::error::{Error, Result};

/// Decoded files, shared by every session of one query service.
#[derive(Debug)]
pub struct FileCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<PathBuf, Decoded>,
    used: usize,
    /// Tables found too big, with their on-disk bytes then.
    oversize: HashMap<String, u64>,
}

#[derive(Debug)]
struct Decoded {
    batches: Vec<RecordBatch>,
    bytes: usize,
}

/// One data file's decoded batches, conformed to the table's schema.
#[derive(Debug, Clone)]
pub struct CachedFile {
    pub path: PathBuf,
    pub batches: Vec<RecordBatch>,
}

/// The files of one table version, as the cache sees them.
pub struct TableFiles {
    paths: Vec<PathBuf>,
    disk_bytes: u64,
}

impl TableFiles {
    /// The data files of `table` as loaded, or `None` when it uses what the
    /// cache does not read (partition columns, deletion vectors).
    pub fn of(table: &DeltaTable, dir: &Path) -> Option<TableFiles> {
        let snapshot = table.snapshot().ok()?;
        if !snapshot.metadata().partition_columns().is_empty() {
            return None;
        }
        let mut paths = Vec::new();
        let mut disk_bytes = 0u64;
        for file in snapshot.log_data() {
            if file.deletion_vector_descriptor().is_some() {
                return None;
            }
            let rel = file.path();
            if rel.contains("://") || rel.starts_with('/') {
                return None;
            }
            paths.push(dir.join(rel.as_ref()));
            disk_bytes += u64::try_from(file.size()).unwrap_or(0);
        }
        Some(TableFiles { paths, disk_bytes })
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl FileCache {
    pub fn new(budget: usize) -> FileCache {
        FileCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of decoded batches held.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// An in-memory table over `files` with `schema` (the Delta provider's),
    /// decoding the files not held yet, and the same batches file by file
    /// (they share their buffers); `None` when the table does not fit.
    /// `partitions` is how many scan partitions the table offers.
    pub fn table(
        &self,
        name: &str,
        files: &TableFiles,
        schema: &SchemaRef,
        partitions: usize,
    ) -> Result<Option<(MemTable, Vec<CachedFile>)>> {
        if self.budget == 0 {
            return Ok(None);
        }
        let missing: Vec<&PathBuf> = {
            let mut inner = self.lock();
            match inner.oversize.get(name) {
                Some(&at) if files.disk_bytes >= at => return Ok(None),
                Some(_) => {
                    inner.oversize.remove(name);
                }
                None => {}
            }
            files
                .paths
                .iter()
                .filter(|p| !inner.files.contains_key(*p))
                .collect()
        };
        let mut decoded = Vec::with_capacity(missing.len());
        let mut new_bytes = 0usize;
        for path in missing {
            let d = decode(path)?;
            new_bytes += d.bytes;
            decoded.push((path.clone(), d));
        }
        let mut inner = self.lock();
        if inner.used + new_bytes > self.budget {
            inner.oversize.insert(name.to_string(), files.disk_bytes);
            return Ok(None);
        }
        for (path, d) in decoded {
            if !inner.files.contains_key(&path) {
                inner.used += d.bytes;
                inner.files.insert(path, d);
            }
        }
        let parts = partitions.clamp(1, files.paths.len().max(1));
        let mut out: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
        let mut rows = vec![0usize; parts];
        let mut by_file = Vec::with_capacity(files.paths.len());
        for path in &files.paths {
            let held = &mut *inner;
            let d = held.files.get_mut(path).expect("held above");
            let n: usize = d.batches.iter().map(|b| b.num_rows()).sum();
            // The partition with the fewest rows so far takes the file.
            let i = (0..parts).min_by_key(|&i| rows[i]).unwrap_or(0);
            rows[i] += n;
            // Conformed once and kept so (a cast, such as to string views,
            // is done once per file, not once per session).
            if d.batches.iter().any(|b| b.schema_ref() != schema) {
                let conformed = d
                    .batches
                    .iter()
                    .map(|b| conform(b, schema))
                    .collect::<Result<Vec<_>>>()?;
                let bytes = conformed.iter().map(|b| b.get_array_memory_size()).sum();
                held.used = held.used - d.bytes + bytes;
                *d = Decoded {
                    batches: conformed,
                    bytes,
                };
            }
            let batches = d.batches.clone();
            out[i].extend(batches.iter().cloned());
            by_file.push(CachedFile {
                path: path.clone(),
                batches,
            });
        }
        drop(inner);
        Ok(Some((MemTable::try_new(schema.clone(), out)?, by_file)))
    }

    /// Drops every file not in `live`.
    pub fn retain(&self, live: &HashSet<PathBuf>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut freed = 0;
        inner.files.retain(|p, d| {
            let keep = live.contains(p);
            if !keep {
                freed += d.bytes;
            }
            keep
        });
        inner.used -= freed;
    }
}

fn decode(path: &Path) -> Result<Decoded> {
    let file = std::fs::File::open(path).map_err(crate::error::io_err(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
    let mut batches = Vec::new();
    let mut bytes = 0;
    for b in reader {
        let b = b.map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        bytes += b.get_array_memory_size();
        batches.push(b);
    }
    Ok(Decoded { batches, bytes })
}

/// `batch` with exactly the columns of `schema`: a column the file lacks
/// (added to the table later) is all null, one of another type is cast.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

//! The engine: dedup → transform SQL → store → windows, one micro-batch at a time.
//!
//! One or more [`Chunk`]s (from one or more sources) become one micro-batch
//! with a sequence number `seq`. What is committed where, in this order:
//!
//! 1. duplicates (same source + transaction_id) are dropped if identical and
//!    quarantined as `conflicting_duplicate` if not (the first version stays);
//!    the transform query runs on the rest with DataFusion;
//! 2. each window query's partial aggregates are computed and their merge
//!    into window state is staged with checked arithmetic. Nothing is
//!    committed yet: a batch whose windows cannot be computed (an overflow)
//!    fails here and stores nothing;
//! 3. rejects are appended to `quarantine` (deduplicated by source, position
//!    and raw bytes, so a replay never adds a row twice);
//! 4. the records go to `transactions` in one Delta commit carrying the
//!    application transaction (`finopsia-transactions`, seq) and, in its
//!    commit metadata ([`POSITIONS_KEY`]), every streaming source's position
//!    after this batch. Only after this commit does the runtime acknowledge
//!    the sources; a restart resumes each source from the positions of the
//!    newest commit;
//! 5. the staged merges are applied, the watermark advances, and a
//!    checkpoint (window state, the emissions about to be made, watermark)
//!    is written atomically under `<data_dir>/state/checkpoints/`. A failure
//!    from here on is [`Error::Stored`]: the records are stored and the
//!    window tables catch up when the engine is reopened;
//! 6. each due window emission is written to the sinks' outbox (if sinks are
//!    configured), then to its window table with `replace_where` in a commit
//!    tagged (`finopsia-windows`, seq);
//! 7. the versions of all these tables are published to readers
//!    (`finopsia_store::snapshot`).
//!
//! On start the engine loads the latest checkpoint, finishes any emission it
//! records (same seq and rows, so outbox and table agree), and replays
//! transactions committed after it, so a crash at any point leaves every
//! record counted exactly once and every emission delivered at least once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, filter_record_batch, max};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::MemTable;
use datafusion::common::ScalarValue;
use datafusion::prelude::{col, lit, Expr, SessionContext};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use xxhash_rust::xxh3::xxh3_128;

use finopsia_core::input::{Chunk, Reason, Reject};
use finopsia_core::schema::{ts_type, INCOMING, QUARANTINE, TRANSACTION_REQUIRED};
use finopsia_core::stream::{Counts, Position};
use finopsia_store::snapshot::{Publisher, Versions};
use finopsia_store::{new_context, new_context_with, Store};

use crate::config::EngineConfig;
use crate::error::{io_err, Error, Result};
use crate::outbox::Outbox;
use crate::sql::{Queries, INCOMING as INCOMING_TABLE, TRANSACTIONS};
use crate::window::WindowState;

const TX_APP: &str = "finopsia-transactions";
const WINDOW_APP: &str = "finopsia-windows";

/// Engine settings in microseconds.
#[derive(Debug, Clone, Copy)]
struct Timing {
    delay_us: i64,
    lateness_us: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckpointMeta {
    seq: i64,
    watermark: Option<i64>,
    max_event_time: Option<i64>,
    /// Per window table: highest window start ever emitted, last applied seq,
    /// and the window starts being emitted by this checkpoint's batch.
    tables: BTreeMap<String, TableMeta>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TableMeta {
    max_emitted: Option<i64>,
    applied_seq: i64,
    pending: Vec<i64>,
}

pub struct Engine {
    store: Store,
    ctx: SessionContext,
    queries: Queries,
    /// [`EngineConfig::categorize_ahead`].
    categorize_ahead: bool,
    windows: Vec<WindowState>,
    meta: BTreeMap<String, TableMeta>,
    timing: Timing,
    /// (source, transaction_id) hash → content hash.
    seen: HashMap<u128, i64, KeyBuild>,
    /// Hashes of quarantined (source, file, line, raw).
    quarantined: HashSet<u128, KeyBuild>,
    next_seq: i64,
    watermark: Option<i64>,
    max_event_time: Option<i64>,
    checkpoint_dir: PathBuf,
    transform_checked: bool,
    /// Emissions for the sinks, written before each window commit.
    outbox: Option<Outbox>,
    /// Every streaming source's committed position, recorded in each
    /// `transactions` commit (commit metadata [`POSITIONS_KEY`]).
    positions: BTreeMap<String, Position>,
    publisher: Publisher,
    /// The transform's output schema (the `transactions` table).
    tx_schema: datafusion::arrow::datatypes::SchemaRef,
    /// Per chunk of the last [`Engine::ingest_many`]: the records (row
    /// index, whether it was a conflicting duplicate) that were not stored.
    not_stored: Vec<Vec<(u32, bool)>>,
    /// The last micro-batch's rejects by (source, reason code).
    reject_reasons: BTreeMap<(String, &'static str), u64>,
}

/// Commit-metadata key of the source positions on `transactions` commits.
pub const POSITIONS_KEY: &str = "finopsia.positions";

/// Keys of the dedup maps are already xxh3-128 hashes: use their low bits
/// directly instead of hashing them again.
#[derive(Default)]
struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type KeyBuild = std::hash::BuildHasherDefault<PrehashedKey>;

/// Fault injection for crash tests: with `FINOPSIA_CRASH_AT=<point>` (and
/// optionally `FINOPSIA_CRASH_AFTER=<n>`, default 1) the process aborts, like
/// `kill -9`, the n-th time it reaches that point. Points: `after_quarantine`,
/// `after_transactions`, `after_checkpoint`, `after_emission`. Unset in
/// normal operation (one relaxed atomic load per commit).
fn crash_point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;
    static TARGET: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
        let at = std::env::var("FINOPSIA_CRASH_AT").ok()?;
        let after = std::env::var("FINOPSIA_CRASH_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        Some((at, after))
    });
    static HITS: AtomicU64 = AtomicU64::new(0);
    if let Some((at, after)) = TARGET.as_ref() {
        if at == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 >= *after {
            eprintln!("FINOPSIA_CRASH_AT={name}: aborting");
            std::process::abort();
        }
    }
}

/// Failure injection for tests: with `FINOPSIA_FAIL_AT=<point>` the n-th
/// time the point is reached (`FINOPSIA_FAIL_AFTER=<n>`, default 1) and the
/// `FINOPSIA_FAIL_COUNT - 1` times after it (default 1 in all) return an
/// error instead of going on, like a full disk would. Points:
/// `before_checkpoint` (after the batch's records are committed). Unset in
/// normal operation (one relaxed atomic load per batch).
fn fail_point(name: &str) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;
    static TARGET: LazyLock<Option<(String, u64, u64)>> = LazyLock::new(|| {
        let at = std::env::var("FINOPSIA_FAIL_AT").ok()?;
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
        Some((
            at,
            num("FINOPSIA_FAIL_AFTER").unwrap_or(1),
            num("FINOPSIA_FAIL_COUNT").unwrap_or(1),
        ))
    });
    static HITS: AtomicU64 = AtomicU64::new(0);
    if let Some((at, after, count)) = TARGET.as_ref() {
        if at == name {
            let hit = HITS.fetch_add(1, Ordering::Relaxed) + 1;
            if hit >= *after && hit < after + count {
                return Err(Error::Engine(format!(
                    "injected failure at {name} (FINOPSIA_FAIL_AT)"
                )));
            }
        }
    }
    Ok(())
}

/// Seed for the dedup key hashes of one source.
fn source_seed(source: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(source.as_bytes())
}

/// Hash of the dedup key (source, transaction_id).
fn key_hash(seed: u64, txid: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(txid.as_bytes(), seed)
}

fn reject_hash(source: &str, file: Option<&str>, line: Option<i64>, raw: &[u8]) -> u128 {
    let mut buf = Vec::with_capacity(raw.len() + 64);
    for part in [source.as_bytes(), file.unwrap_or("\u{0}").as_bytes()] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part);
    }
    buf.extend_from_slice(&line.unwrap_or(-1).to_le_bytes());
    buf.extend_from_slice(raw);
    xxh3_128(&buf)
}

/// The `categorize()` call of the built-in transform, without whitespace,
/// and its argument columns of `incoming`.
const CATEGORIZE_CALL: &str =
    "categorize(description,amount_minor,currency,direction,account_id,category)";

fn ts_lit(us: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(us),
        Some("UTC".into()),
    ))
}

fn starts_predicate(starts: &[i64]) -> Expr {
    col("window_start").in_list(starts.iter().map(|s| ts_lit(*s)).collect(), false)
}

async fn run_sql(
    ctx: &SessionContext,
    table: &str,
    batches: Vec<RecordBatch>,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Ok(Vec::new()),
    };
    let mem = MemTable::try_new(schema, vec![batches])?;
    ctx.deregister_table(table)?;
    ctx.register_table(table, Arc::new(mem))?;
    let out = ctx.sql(sql).await?.collect().await;
    ctx.deregister_table(table)?;
    Ok(out?)
}

impl Engine {
    /// Opens the store under `data_dir`, plans the queries, and recovers.
    pub async fn open(data_dir: &Path, cfg: &EngineConfig, queries: Queries) -> Result<Engine> {
        Self::open_with(data_dir, cfg, queries, None).await
    }

    /// Like [`Engine::open`], writing every window emission to `outbox`
    /// for the sinks (also those finished while recovering).
    pub async fn open_with(
        data_dir: &Path,
        cfg: &EngineConfig,
        queries: Queries,
        outbox: Option<Outbox>,
    ) -> Result<Engine> {
        let store = Store::open_with(data_dir, cfg.review_below)?;
        let ctx = new_context_with(store.models(), cfg.batch_rows);
        ctx.register_udf(crate::widen::udf());
        let checkpoint_dir = data_dir.join("state").join("checkpoints");
        std::fs::create_dir_all(&checkpoint_dir).map_err(io_err(&checkpoint_dir))?;
        let mut engine = Engine {
            store,
            ctx,
            categorize_ahead: cfg.categorize_ahead,
            queries,
            windows: Vec::new(),
            meta: BTreeMap::new(),
            timing: Timing {
                delay_us: cfg.watermark_delay().as_micros() as i64,
                lateness_us: cfg.allowed_lateness().as_micros() as i64,
            },
            seen: HashMap::default(),
            quarantined: HashSet::default(),
            next_seq: 1,
            watermark: None,
            max_event_time: None,
            checkpoint_dir,
            transform_checked: false,
            outbox,
            positions: BTreeMap::new(),
            publisher: Publisher::new(data_dir),
            tx_schema: INCOMING.clone(),
            not_stored: Vec::new(),
            reject_reasons: BTreeMap::new(),
        };
        engine.plan().await?;
        engine.recover().await?;
        Ok(engine)
    }

    /// Plans every query on an empty batch: checks the transform's output and
    /// derives each window table's schema; creates missing tables.
    async fn plan(&mut self) -> Result<()> {
        let empty = RecordBatch::new_empty(INCOMING.clone());
        let tx_schema = {
            let mem = MemTable::try_new(INCOMING.clone(), vec![vec![empty]])?;
            self.ctx.register_table(INCOMING_TABLE, Arc::new(mem))?;
            let df = self
                .ctx
                .sql(&self.queries.transform.select_sql)
                .await
                .map_err(|e| Error::Query {
                    file: self.queries.transform.file.clone(),
                    message: e.to_string(),
                })?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            self.ctx.deregister_table(INCOMING_TABLE)?;
            schema
        };
        for (name, dt) in TRANSACTION_REQUIRED {
            match tx_schema.field_with_name(name) {
                Ok(f) if f.data_type() == &dt() => {}
                _ => {
                    return Err(Error::Query {
                        file: self.queries.transform.file.clone(),
                        message: format!("output must keep column {name} of type {}", dt()),
                    })
                }
            }
        }
        self.store.ensure(TRANSACTIONS, tx_schema.clone()).await?;
        self.tx_schema = tx_schema.clone();
        self.store.ensure("quarantine", QUARANTINE.clone()).await?;
        let empty_tx = RecordBatch::new_empty(tx_schema.clone());
        for q in self.queries.windows.clone() {
            let mem = MemTable::try_new(tx_schema.clone(), vec![vec![empty_tx.clone()]])?;
            self.ctx.register_table(TRANSACTIONS, Arc::new(mem))?;
            let df = self
                .ctx
                .sql(&q.partial_sql)
                .await
                .map_err(|e| Error::Query {
                    file: q.file.clone(),
                    message: e.to_string(),
                });
            self.ctx.deregister_table(TRANSACTIONS)?;
            let partial_schema = df?.schema().as_arrow().clone();
            let state = WindowState::new(q, &partial_schema)?;
            self.store
                .ensure(&state.query.target, state.output_schema.clone())
                .await?;
            self.windows.push(state);
        }
        self.transform_checked = true;
        Ok(())
    }

    async fn recover(&mut self) -> Result<()> {
        let started = Instant::now();
        // Dedup indexes from the store.
        for b in self
            .store
            .query("SELECT source, transaction_id, content_hash FROM transactions")
            .await?
        {
            let src = cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let txid = cast(b.column(1), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let (src, txid) = (src.as_string::<i32>(), txid.as_string::<i32>());
            let hash = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                self.seen.insert(
                    key_hash(source_seed(src.value(i)), txid.value(i)),
                    hash.value(i),
                );
            }
        }
        for b in self
            .store
            .query("SELECT source, file, line, raw_bytes FROM quarantine")
            .await?
        {
            let src = cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let file = cast(b.column(1), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let raw = cast(b.column(3), &datafusion::arrow::datatypes::DataType::Binary)?;
            let (src, file, raw) = (
                src.as_string::<i32>(),
                file.as_string::<i32>(),
                raw.as_binary::<i32>(),
            );
            let line = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let f = (!file.is_null(i)).then(|| file.value(i));
                let l = (!line.is_null(i)).then(|| line.value(i));
                self.quarantined
                    .insert(reject_hash(src.value(i), f, l, raw.value(i)));
            }
        }
        let tx_version = self
            .store
            .app_version(TRANSACTIONS, TX_APP)
            .await?
            .unwrap_or(0);
        if let Some(serde_json::Value::Object(map)) = self
            .store
            .last_metadata(TRANSACTIONS, POSITIONS_KEY)
            .await?
        {
            self.positions = map.into_iter().collect();
        }
        let checkpoint = self.load_checkpoint()?;
        let ck_seq = checkpoint.as_ref().map_or(0, |(m, _)| m.seq);
        if let Some((meta, states)) = checkpoint {
            self.watermark = meta.watermark;
            self.max_event_time = meta.max_event_time;
            for w in &mut self.windows {
                if let Some(batch) = states.get(&w.query.target) {
                    let dirty = batch
                        .column_by_name("__dirty")
                        .map(|d| d.as_boolean().clone());
                    w.load(std::slice::from_ref(batch), dirty.as_ref())?;
                }
            }
            self.meta = meta.tables;
            // Finish emissions recorded by the checkpoint but not committed.
            for i in 0..self.windows.len() {
                let target = self.windows[i].query.target.clone();
                let m = self.meta.get(&target).cloned().unwrap_or_default();
                if m.pending.is_empty() {
                    continue;
                }
                let committed = self
                    .store
                    .app_version(&target, WINDOW_APP)
                    .await?
                    .unwrap_or(0);
                if committed < meta.seq {
                    tracing::info!(table = %target, windows = m.pending.len(), "finishing interrupted window emission");
                    self.commit_emission(i, &m.pending, meta.seq).await?;
                } else {
                    // Committed before the crash: these windows are in the
                    // table, so a later late record must read them back.
                    self.windows[i].mark_clean(&m.pending);
                    let e = self.meta.entry(target.clone()).or_default();
                    e.max_emitted = e.max_emitted.max(m.pending.iter().copied().max());
                }
                if let Some(m) = self.meta.get_mut(&target) {
                    m.pending.clear();
                }
                self.windows[i].evict(self.watermark, self.timing.lateness_us);
            }
        }
        self.next_seq = tx_version.max(ck_seq) + 1;
        // Replay transactions the window tables have not seen (crash after the
        // transactions commit, or a newly added query).
        let mut replayed = 0usize;
        for i in 0..self.windows.len() {
            let target = self.windows[i].query.target.clone();
            let applied = self.meta.get(&target).map_or(0, |m| m.applied_seq);
            if self.meta.get(&target).and_then(|m| m.max_emitted).is_none() {
                // No checkpoint for this table (new query, or state/ lost):
                // learn what it holds so late data is merged, not overwritten.
                let top = self
                    .store
                    .query(&format!(
                        "SELECT CAST(MAX(window_start) AS BIGINT) AS m FROM {target}"
                    ))
                    .await?;
                let m = top
                    .first()
                    .filter(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
                    .map(|b| b.column(0).as_primitive::<Int64Type>().value(0));
                self.meta.entry(target.clone()).or_default().max_emitted = m;
            }
            if applied >= tx_version {
                continue;
            }
            let rows = self
                .store
                .query(&format!(
                    "SELECT * FROM transactions WHERE ingest_seq > {applied}"
                ))
                .await?;
            replayed += rows.iter().map(|b| b.num_rows()).sum::<usize>();
            // From seq 0 the replay sees every record of every window it
            // touches: rebuild those windows instead of merging stored rows.
            if let Some(staged) = self.aggregate(i, rows, applied > 0).await? {
                self.windows[i].apply(staged);
            }
        }
        if replayed > 0 {
            tracing::info!(
                records = replayed,
                "replayed transactions into window tables"
            );
            let seq = self.take_seq();
            self.finish_batch(seq, true).await?;
        }
        self.publish(self.next_seq - 1).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            seen = self.seen.len(),
            "engine recovered"
        );
        Ok(())
    }

    /// The sequence number of the last micro-batch (or flush) taken.
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    fn take_seq(&mut self) -> i64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The model handle to categorize chunks with ahead of their micro-batch
    /// (on the decoder thread, overlapping the commit of the previous one),
    /// when the transform query calls `categorize()` on the incoming
    /// columns as they are — the prepared result is used only by a call with
    /// exactly those inputs. `None` for other transform queries.
    pub fn categorize_ahead(&self) -> Option<Arc<finopsia_udfs::ModelHandle>> {
        let sql: String = self
            .queries
            .transform
            .select_sql
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        (self.categorize_ahead && sql.contains(CATEGORIZE_CALL))
            .then(|| self.store.models().clone())
    }

    /// Categorizes a chunk's records for [`Chunk::prepared`] with `models`.
    pub fn prepare_chunk(models: &finopsia_udfs::ModelHandle, chunk: &mut Chunk) -> Result<()> {
        Ok(chunk.prepare(models)?)
    }

    /// The categorization model handle (for readers' sessions).
    pub fn models(&self) -> Arc<finopsia_udfs::ModelHandle> {
        self.store.models().clone()
    }

    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The newest event time seen (µs since the epoch).
    pub fn max_event_time(&self) -> Option<i64> {
        self.max_event_time
    }

    /// Window tables produced by the queries.
    pub fn window_tables(&self) -> Vec<String> {
        self.windows
            .iter()
            .map(|w| w.query.target.clone())
            .collect()
    }

    /// Compacts every window table that exists ([`Store::compact`]), then
    /// reloads `transactions` and `quarantine` (compacted beside the writer
    /// by the maintenance job) and publishes the newest versions, so that no
    /// published snapshot reads files a later vacuum deletes. Run by the
    /// writer between micro-batches: window tables are rewritten by
    /// `replace_where`, which must not race a compaction.
    pub async fn compact_windows(
        &mut self,
        target_bytes: u64,
    ) -> Result<Vec<finopsia_store::store::Compaction>> {
        let mut done = Vec::new();
        for table in self.window_tables() {
            if self.store.exists(&table) {
                done.push(self.store.compact(&table, target_bytes).await?);
            }
        }
        self.store.forget(TRANSACTIONS);
        self.store.forget("quarantine");
        self.publish(self.last_seq()).await?;
        Ok(done)
    }

    /// Window tables with their group-key columns.
    pub fn window_keys(&self) -> Vec<(String, Vec<String>)> {
        self.windows
            .iter()
            .map(|w| (w.query.target.clone(), w.query.keys.clone()))
            .collect()
    }

    /// Processes one chunk as a micro-batch.
    pub async fn ingest(&mut self, chunk: Chunk) -> Result<Counts> {
        Ok(self
            .ingest_many(vec![chunk], Vec::new())
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// Processes several chunks (from one or more sources) as one
    /// micro-batch, and records `positions` (source → position after its
    /// chunks) in the same `transactions` commit as the records. A batch of
    /// only duplicates or rejects still commits, so the positions advance.
    /// Returns each chunk's counts.
    pub async fn ingest_many(
        &mut self,
        chunks: Vec<Chunk>,
        positions: Vec<(String, Position)>,
    ) -> Result<Vec<Counts>> {
        // Columns are read by position below: a source whose chunks do not
        // have the incoming schema fails here, before anything changes.
        for chunk in &chunks {
            check_incoming(chunk)?;
        }
        // Pick up a newly registered model (hot swap); a broken registration
        // keeps the model in use and is logged, never stops ingestion.
        if let Err(e) = self.store.models().refresh() {
            tracing::error!(error = %e, "cannot load the registered model; keeping the current one");
        }
        let seq = self.take_seq();
        let single = chunks.len() == 1;
        let mut all_counts = Vec::with_capacity(chunks.len());
        let mut kept = Vec::with_capacity(chunks.len());
        let mut rejects = Vec::new();
        let mut prepared = None;
        self.not_stored.clear();
        for chunk in chunks {
            // 1. Dedup against the store and earlier rows of this batch.
            let mut counts = Counts::default();
            let mut fates = Vec::new();
            let keep = self.dedup(&chunk, &mut counts, &mut rejects, &mut fates);
            self.not_stored.push(fates);
            let records = &chunk.records;
            let mask = BooleanArray::from(keep);
            let filtered = filter_record_batch(records, &mask)?;
            if single {
                if let Some(p) = chunk.prepared.filter(|p| p.len() == records.num_rows()) {
                    prepared = Some(if filtered.num_rows() == records.num_rows() {
                        p
                    } else {
                        p.filter(&mask)?
                    });
                }
            }
            counts.accepted = filtered.num_rows() as u64;
            counts.quarantined += chunk.rejects.len() as u64;
            rejects.extend(chunk.rejects);
            kept.push(filtered);
            all_counts.push(counts);
        }
        self.reject_reasons.clear();
        for r in &rejects {
            *self
                .reject_reasons
                .entry((r.source.clone(), r.reason.code()))
                .or_default() += 1;
        }
        let records = if kept.len() == 1 {
            kept.pop().expect("one batch")
        } else {
            let cols = (0..INCOMING.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> =
                        kept.iter().map(|b| b.column(c).as_ref()).collect();
                    datafusion::arrow::compute::concat(&arrays)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new_with_options(
                INCOMING.clone(),
                cols,
                &datafusion::arrow::array::RecordBatchOptions::new()
                    .with_row_count(Some(kept.iter().map(|b| b.num_rows()).sum())),
            )?
        };
        let advance = !positions.is_empty();
        self.positions.extend(positions);
        // On error the in-memory state may be ahead of the store; callers
        // that continue must reopen the engine (the service does).
        self.commit_batch(seq, records, rejects, prepared, advance)
            .await?;
        // The records are committed: a failure from here on leaves the
        // window tables behind `transactions` until the engine is reopened
        // (its recovery replays them), and says so.
        if let Err(e) = self.finish_batch(seq, false).await {
            return Err(Error::Stored {
                counts: all_counts,
                source: Box::new(e),
            });
        }
        Ok(all_counts)
    }

    /// The records of each chunk of the last [`Engine::ingest_many`] that
    /// were not stored: (row index in the chunk, whether it was a
    /// conflicting duplicate, now quarantined). Taken once.
    pub fn take_not_stored(&mut self) -> Vec<Vec<(u32, bool)>> {
        std::mem::take(&mut self.not_stored)
    }

    /// The last micro-batch's rejects by (source, reason code), as counted
    /// in its `quarantined`. Taken once.
    pub fn take_reject_reasons(&mut self) -> BTreeMap<(String, &'static str), u64> {
        std::mem::take(&mut self.reject_reasons)
    }

    /// Windows each window table holds open in memory (not yet evicted).
    pub fn open_windows(&self) -> Vec<(String, usize)> {
        self.windows
            .iter()
            .map(|w| (w.query.target.clone(), w.window_count()))
            .collect()
    }

    /// Marks each record of `chunk` kept (new) or not (an identical
    /// duplicate, counted; or a conflicting one, added to `rejects`), and
    /// notes the ones not kept in `fates`.
    fn dedup(
        &mut self,
        chunk: &Chunk,
        counts: &mut Counts,
        rejects: &mut Vec<Reject>,
        fates: &mut Vec<(u32, bool)>,
    ) -> Vec<bool> {
        let records = &chunk.records;
        let n = records.num_rows();
        let txid = records.column(1).as_string::<i32>();
        let hash = records.column(11).as_primitive::<Int64Type>();
        let mut keep = Vec::with_capacity(n);
        let seed = source_seed(&chunk.source);
        for i in 0..n {
            let key = key_hash(seed, txid.value(i));
            match self.seen.get(&key) {
                None => {
                    self.seen.insert(key, hash.value(i));
                    keep.push(true);
                }
                Some(h) if *h == hash.value(i) => {
                    counts.duplicates += 1;
                    fates.push((i as u32, false));
                    keep.push(false);
                }
                Some(_) => {
                    counts.quarantined += 1;
                    fates.push((i as u32, true));
                    rejects.push(Reject {
                        source: chunk.source.clone(),
                        file: chunk.positions.file.as_deref().map(str::to_string),
                        line: (i < chunk.positions.len()).then(|| chunk.positions.line(i)),
                        transaction_id: Some(txid.value(i).to_string()),
                        reason: Reason::ConflictingDuplicate,
                        detail: "same source and transaction_id as a stored record with different content; the first version is kept".into(),
                        raw: if i < chunk.positions.len() { chunk.positions.raw(i) } else { Vec::new() },
                    });
                    keep.push(false);
                }
            }
        }
        keep
    }

    async fn commit_batch(
        &mut self,
        seq: i64,
        filtered: RecordBatch,
        rejects: Vec<Reject>,
        prepared: Option<finopsia_udfs::Prepared>,
        advance: bool,
    ) -> Result<()> {
        if let Some(p) = prepared {
            self.store.models().offer(p);
        }
        let accepted = filtered.num_rows();
        let now = chrono::Utc::now().timestamp_micros();
        let mut cols = filtered.columns().to_vec();
        cols[12] =
            Arc::new(TimestampMicrosecondArray::from(vec![now; accepted]).with_timezone("UTC"))
                as ArrayRef;
        cols[13] = Arc::new(Int64Array::from(vec![seq; accepted])) as ArrayRef;
        let incoming = RecordBatch::try_new(INCOMING.clone(), cols)?;

        // 2. Transform.
        let tx = if accepted > 0 {
            let tx = run_sql(
                &self.ctx,
                INCOMING_TABLE,
                vec![incoming],
                &self.queries.transform.select_sql,
            )
            .instrument(tracing::debug_span!("transform", rows = accepted))
            .await;
            self.store.models().withdraw();
            tx?
        } else {
            Vec::new()
        };

        // 3. Window partials, merged with checked arithmetic but not applied
        // yet: a batch whose windows cannot be computed (an overflow, say)
        // stores nothing, so transactions and window tables never disagree.
        let mut staged = Vec::with_capacity(self.windows.len());
        for i in 0..self.windows.len() {
            let span = tracing::debug_span!("window", table = %self.windows[i].query.target);
            staged.push(
                self.aggregate(i, tx.clone(), true)
                    .instrument(span)
                    .await
                    .map_err(|e| Error::Engine(format!("{e}; nothing of this batch was stored")))?,
            );
        }

        // 4. Quarantine (dedup by position + raw text, also within the
        // batch: a redelivery may share it), then transactions.
        let mut in_batch = HashSet::new();
        let fresh: Vec<(u128, Reject)> = rejects
            .into_iter()
            .map(|r| {
                (
                    reject_hash(
                        &r.source,
                        r.file.as_deref(),
                        r.line.map(|l| l as i64),
                        &r.raw,
                    ),
                    r,
                )
            })
            .filter(|(h, _)| !self.quarantined.contains(h) && in_batch.insert(*h))
            .collect();
        if !fresh.is_empty() {
            let batch = quarantine_batch(fresh.iter().map(|(_, r)| r), now)?;
            self.store
                .append("quarantine", vec![batch], None)
                .instrument(tracing::debug_span!(
                    "store",
                    table = "quarantine",
                    rows = fresh.len()
                ))
                .await?;
            crash_point("after_quarantine");
            self.quarantined.extend(fresh.iter().map(|(h, _)| *h));
        }
        if accepted > 0 || advance {
            // Every source's position rides on the same commit as the
            // records it covers (all of them, so the newest commit holds all).
            let positions = (!self.positions.is_empty()).then(|| {
                (
                    POSITIONS_KEY,
                    serde_json::Value::Object(self.positions.clone().into_iter().collect()),
                )
            });
            let batches = if tx.is_empty() {
                vec![RecordBatch::new_empty(self.tx_schema.clone())]
            } else {
                tx.clone()
            };
            self.store
                .append_with(TRANSACTIONS, batches, Some((TX_APP, seq)), positions)
                .instrument(tracing::debug_span!(
                    "store",
                    table = TRANSACTIONS,
                    rows = accepted
                ))
                .await?;
            crash_point("after_transactions");
        }

        // 5. Windows.
        for (i, s) in staged.into_iter().enumerate() {
            if let Some(s) = s {
                self.windows[i].apply(s);
            }
        }
        if let Some(m) = tx
            .iter()
            .filter_map(|b| b.column_by_name("event_time"))
            .filter_map(|c| max(c.as_primitive::<TimestampMicrosecondType>()))
            .max()
        {
            self.max_event_time = Some(self.max_event_time.map_or(m, |x| x.max(m)));
            self.watermark = self.max_event_time.map(|t| t - self.timing.delay_us);
        }
        Ok(())
    }

    /// Runs window query `i` on transformed records and stages the merge of
    /// its partials ([`WindowState::stage`]), reloading evicted windows from
    /// the store first. `None`: no records.
    async fn aggregate(
        &mut self,
        i: usize,
        tx: Vec<RecordBatch>,
        read_back: bool,
    ) -> Result<Option<crate::window::Staged>> {
        if tx.iter().all(|b| b.num_rows() == 0) {
            return Ok(None);
        }
        let sql = self.windows[i].query.partial_sql.clone();
        let partials = run_sql(&self.ctx, TRANSACTIONS, tx, &sql).await?;
        let target = self.windows[i].query.target.clone();
        let max_emitted = self.meta.get(&target).and_then(|m| m.max_emitted);
        let missing: BTreeSet<i64> = self.windows[i]
            .missing(&partials)?
            .into_iter()
            .filter(|s| read_back && max_emitted.is_some_and(|m| *s <= m))
            .collect();
        if !missing.is_empty() {
            let ctx = new_context(self.store.models());
            self.store.register(&ctx, &target).await?;
            let starts: Vec<i64> = missing.iter().copied().collect();
            let stored = ctx
                .table(target.as_str())
                .await?
                .filter(starts_predicate(&starts))?
                .collect()
                .await?;
            self.windows[i].load(&stored, None)?;
            self.windows[i].touch(&missing);
        }
        self.windows[i].stage(&partials).map(Some)
    }

    /// Ends a micro-batch: checkpoint, emit due windows, evict.
    async fn finish_batch(&mut self, seq: i64, flush: bool) -> Result<()> {
        let mut due = Vec::new();
        for w in &self.windows {
            let starts = w.due(self.watermark, self.timing.lateness_us, flush);
            let m = self.meta.entry(w.query.target.clone()).or_default();
            m.pending = starts.clone();
            m.applied_seq = m.applied_seq.max(seq);
            due.push(starts);
        }
        fail_point("before_checkpoint")?;
        self.write_checkpoint(seq)?;
        crash_point("after_checkpoint");
        for (i, starts) in due.iter().enumerate() {
            if !starts.is_empty() {
                let span = tracing::debug_span!(
                    "emit",
                    table = %self.windows[i].query.target,
                    windows = starts.len()
                );
                self.commit_emission(i, starts, seq)
                    .instrument(span)
                    .await?;
                crash_point("after_emission");
            }
            let lateness = self.timing.lateness_us;
            let wm = self.watermark;
            self.windows[i].evict(wm, lateness);
            if let Some(m) = self.meta.get_mut(&self.windows[i].query.target) {
                m.pending.clear();
            }
        }
        self.publish(seq).await
    }

    /// Tells readers that everything up to `seq` is committed: the versions
    /// of every table this engine writes, as of now.
    async fn publish(&mut self, seq: i64) -> Result<()> {
        let mut tables = BTreeMap::new();
        let names = [TRANSACTIONS.to_string(), "quarantine".to_string()]
            .into_iter()
            .chain(self.windows.iter().map(|w| w.query.target.clone()));
        for name in names {
            if let Some(v) = self.store.version(&name).await? {
                tables.insert(name, v);
            }
        }
        self.publisher.publish(Versions { seq, tables })?;
        Ok(())
    }

    /// In-process readers' view of the published snapshots.
    pub fn snapshots(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<Versions>> {
        self.publisher.subscribe()
    }

    /// Every streaming source's committed position.
    pub fn positions(&self) -> &BTreeMap<String, Position> {
        &self.positions
    }

    async fn commit_emission(&mut self, i: usize, starts: &[i64], seq: i64) -> Result<()> {
        let batch = self.windows[i].build(starts, false)?;
        let target = self.windows[i].query.target.clone();
        // The outbox first: a crash after the table commit must not lose the
        // emission for the sinks. (A crash before the table commit finishes
        // the same emission, same seq and rows, on recovery.)
        if let Some(outbox) = &self.outbox {
            outbox
                .write(seq, &target, &self.windows[i].query.keys, &batch)
                .await?;
        }
        self.store
            .replace(
                &target,
                batch.clone(),
                starts_predicate(starts),
                Some((WINDOW_APP, seq)),
            )
            .await?;
        self.windows[i].mark_clean(starts);
        if let Some(outbox) = &self.outbox {
            outbox.committed();
        }
        let m = self.meta.entry(target).or_default();
        let top = starts.iter().copied().max();
        m.max_emitted = m.max_emitted.max(top);
        Ok(())
    }

    /// End of a bounded input: emits every changed window.
    pub async fn flush(&mut self) -> Result<()> {
        let seq = self.take_seq();
        self.finish_batch(seq, true).await
    }

    fn write_checkpoint(&self, seq: i64) -> Result<()> {
        let meta = CheckpointMeta {
            seq,
            watermark: self.watermark,
            max_event_time: self.max_event_time,
            tables: self.meta.clone(),
        };
        let tmp = self.checkpoint_dir.join(format!(".tmp-{seq}"));
        let dir = self.checkpoint_dir.join(format!("{seq:020}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        for w in &self.windows {
            let path = tmp.join(format!("{}.arrow", w.query.target));
            let batch = w.snapshot()?;
            let file = std::fs::File::create(&path).map_err(io_err(&path))?;
            let mut writer = FileWriter::try_new(file, batch.schema().as_ref())?;
            writer.write(&batch)?;
            writer.finish()?;
            writer.into_inner()?.sync_all().map_err(io_err(&path))?;
        }
        let meta_path = tmp.join("meta.json");
        let text = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Engine(e.to_string()))?;
        std::fs::write(&meta_path, text).map_err(io_err(&meta_path))?;
        std::fs::File::open(&meta_path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&meta_path))?;
        std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        if let Ok(d) = std::fs::File::open(&self.checkpoint_dir) {
            let _ = d.sync_all();
        }
        // Keep only the newest checkpoint.
        for entry in std::fs::read_dir(&self.checkpoint_dir)
            .map_err(io_err(&self.checkpoint_dir))?
            .flatten()
        {
            let p = entry.path();
            if p != dir
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        Ok(())
    }

    fn load_checkpoint(&self) -> Result<Option<(CheckpointMeta, HashMap<String, RecordBatch>)>> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.checkpoint_dir)
            .map_err(io_err(&self.checkpoint_dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                    && p.join("meta.json").is_file()
            })
            .collect();
        dirs.sort();
        let Some(dir) = dirs.pop() else {
            return Ok(None);
        };
        let meta_path = dir.join("meta.json");
        let text = std::fs::read(&meta_path).map_err(io_err(&meta_path))?;
        let meta: CheckpointMeta = serde_json::from_slice(&text)
            .map_err(|e| Error::Engine(format!("{}: {e}", meta_path.display())))?;
        let mut states = HashMap::new();
        for w in &self.windows {
            let path = dir.join(format!("{}.arrow", w.query.target));
            if !path.is_file() {
                continue;
            }
            let file = std::fs::File::open(&path).map_err(io_err(&path))?;
            let reader = FileReader::try_new(file, None)?;
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            if let Some(b) = batches.first() {
                let all = datafusion::arrow::compute::concat_batches(&b.schema(), &batches)?;
                states.insert(w.query.target.clone(), all);
            }
        }
        Ok(Some((meta, states)))
    }
}

/// A chunk's records must have [`INCOMING`]'s columns, in order, with its types.
fn check_incoming(chunk: &Chunk) -> Result<()> {
    let got = chunk.records.schema();
    let want = INCOMING.fields();
    let problem = if got.fields().len() != want.len() {
        Some(format!(
            "{} columns, expected {}",
            got.fields().len(),
            want.len()
        ))
    } else {
        got.fields()
            .iter()
            .zip(want.iter())
            .enumerate()
            .find(|(_, (g, w))| g.name() != w.name() || g.data_type() != w.data_type())
            .map(|(i, (g, w))| {
                format!(
                    "column {} is {} {}, expected {} {}",
                    i + 1,
                    g.name(),
                    g.data_type(),
                    w.name(),
                    w.data_type()
                )
            })
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(Error::Input {
            file: format!("source {}", chunk.source),
            message: format!("chunk does not have the incoming record schema: {p}"),
        }),
    }
}

fn quarantine_batch<'a>(
    rejects: impl Iterator<Item = &'a Reject>,
    now: i64,
) -> Result<RecordBatch> {
    let rejects: Vec<&Reject> = rejects.collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rejects.iter().map(|r| r.source.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            rejects.iter().map(|r| r.file.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(
            rejects.iter().map(|r| r.line.map(|l| l as i64)),
        )),
        Arc::new(StringArray::from_iter(
            rejects.iter().map(|r| r.transaction_id.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            rejects.iter().map(|r| r.reason.code()),
        )),
        Arc::new(StringArray::from_iter_values(
            rejects.iter().map(|r| r.detail.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rejects
                .iter()
                .map(|r| String::from_utf8_lossy(&r.raw).into_owned()),
        )),
        Arc::new(BinaryArray::from_iter_values(
            rejects.iter().map(|r| r.raw.as_slice()),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![now; rejects.len()]).with_timezone("UTC")),
    ];
    let _ = ts_type();
    Ok(RecordBatch::try_new(QUARANTINE.clone(), cols)?)
}

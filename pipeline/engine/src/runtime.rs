//! The streaming runtime: many live sources into one writer.
//!
//! Every source runs as its own task and sends [`Delivery`]s through one
//! bounded channel (`engine.source_queue` chunks per source) to the engine
//! task, which owns the store. The engine task closes a micro-batch when it
//! holds `engine.batch_rows` rows or `engine.max_batch_delay` has passed
//! since its first chunk (or a chunk ends a bounded unit, such as an inbox
//! file, whose windows are then flushed), commits it with every source's
//! position ([`Engine::ingest_many`]), and only then answers each delivery's
//! acknowledgement. A source that fails is restarted with exponential
//! backoff from its last committed position, without stopping the others. A
//! failed commit reopens the engine from the store (its in-memory state may
//! be ahead of it), flushes windows if the batch ended a bounded unit, and
//! then answers its deliveries with the error. A batch whose records were
//! stored but whose window step failed ([`crate::Error::Stored`]) is
//! answered as committed, and the engine is reopened so that its recovery
//! brings the window tables up to date.
//!
//! Nothing is committed by this module itself: positions are committed with
//! the records (see [`crate::engine`]), sink progress by [`crate::outbox`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use finopsia_core::stream::{Committed, Delivery, Feed, Position, StreamSource};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Reopens the engine after a failed commit.
pub type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Engine>> + Send>> + Send>;

/// What one committed micro-batch did, for [`OnCommit`].
#[derive(Debug)]
pub struct CommitInfo<'a> {
    /// Counts per source name.
    pub counts: &'a BTreeMap<String, finopsia_core::Counts>,
    /// The committed position per source name.
    pub positions: &'a BTreeMap<String, Position>,
    /// The engine's last committed micro-batch.
    pub seq: i64,
    /// Event-time watermark after the batch (µs since the epoch).
    pub watermark: Option<i64>,
    /// Newest event time seen (µs since the epoch).
    pub max_event_time: Option<i64>,
    /// How long the commit took.
    pub elapsed: Duration,
    /// Rejects of the batch by (source, reason code).
    pub rejects: &'a BTreeMap<(String, &'static str), u64>,
    /// Windows each window table holds open after the batch.
    pub open_windows: &'a [(String, usize)],
}

/// Called after each committed micro-batch.
pub type OnCommit = Box<dyn FnMut(&CommitInfo<'_>) + Send>;

/// Work the writer does between two micro-batches, for jobs that must not
/// race its commits.
#[derive(Debug)]
pub enum WriterTask {
    /// [`Engine::compact_windows`], answered on `reply`.
    CompactWindows {
        target_bytes: u64,
        reply: tokio::sync::oneshot::Sender<
            std::result::Result<Vec<finopsia_store::store::Compaction>, String>,
        >,
    },
}

impl WriterTask {
    async fn perform(self, engine: &mut Engine) {
        match self {
            WriterTask::CompactWindows {
                target_bytes,
                reply,
            } => {
                let started = Instant::now();
                let r = engine.compact_windows(target_bytes).await;
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    ok = r.is_ok(),
                    "window tables compacted between micro-batches"
                );
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
        }
    }
}

/// The state of one source, for `/ready` and the log.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub running: bool,
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// Shared view of every source's status.
pub type Statuses = Arc<Mutex<BTreeMap<String, SourceStatus>>>;

/// Runs `sources` into `engine` until `shutdown` turns true; then stops the
/// sources, commits what is pending and returns the engine. Between two
/// micro-batches it performs the [`WriterTask`]s sent on `tasks`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut engine: Engine,
    cfg: &EngineConfig,
    sources: Vec<Box<dyn StreamSource>>,
    mut shutdown: watch::Receiver<bool>,
    reopen: Reopen,
    mut on_commit: OnCommit,
    statuses: Statuses,
    mut tasks_rx: mpsc::Receiver<WriterTask>,
) -> Result<Engine> {
    let capacity = cfg.source_queue.max(1) * sources.len().max(1);
    let (tx, mut rx) = mpsc::channel::<Delivery>(capacity);
    let (stop_tx, stop_rx) = watch::channel(false);
    let committed: Arc<Mutex<BTreeMap<String, Position>>> =
        Arc::new(Mutex::new(engine.positions().clone()));
    let mut tasks = Vec::new();
    for source in sources {
        let feed = Feed::new(tx.clone(), stop_rx.clone());
        // Everything a source logs is in its `source` span.
        let span = tracing::info_span!("source", source = %source.name());
        tasks.push(tokio::spawn(
            supervise(source, feed, committed.clone(), statuses.clone()).instrument(span),
        ));
    }
    drop(tx);
    let max_rows = cfg.batch_rows.max(1);
    let max_delay = cfg.max_batch_delay();
    let mut stopping = false;
    while !stopping {
        // Wait for a first chunk.
        let first = tokio::select! {
            d = rx.recv() => d,
            Some(task) = tasks_rx.recv() => {
                task.perform(&mut engine).await;
                continue;
            }
            _ = shutdown.changed() => None,
        };
        let Some(first) = first else {
            break;
        };
        let deadline = tokio::time::Instant::now() + max_delay;
        let mut rows = rows_of(&first);
        let mut flush = first.flush;
        let mut batch = vec![first];
        while rows < max_rows && !flush {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => {
                        rows += rows_of(&d);
                        flush |= d.flush;
                        batch.push(d);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => { stopping = true; break; }
            }
        }
        // One `batch` span per micro-batch: the engine's stages (transform,
        // windows, store, emit) are its children.
        let sources: BTreeSet<&str> = batch.iter().map(|d| d.chunk.source.as_str()).collect();
        let span = tracing::info_span!(
            "batch",
            chunks = batch.len(),
            rows,
            flush,
            sources = %sources.into_iter().collect::<Vec<_>>().join(","),
        );
        engine = commit(engine, batch, flush, &reopen, &mut on_commit, &committed)
            .instrument(span)
            .await?;
        stopping |= *shutdown.borrow();
    }
    let _ = stop_tx.send(true);
    // Deliveries still queued were not committed: their sources get no
    // acknowledgement and resume from the committed position next start.
    rx.close();
    while rx.recv().await.is_some() {}
    for t in tasks {
        let _ = t.await;
    }
    Ok(engine)
}

fn rows_of(d: &Delivery) -> usize {
    d.chunk.records.num_rows() + d.chunk.rejects.len()
}

/// Commits one micro-batch and answers its deliveries.
async fn commit(
    mut engine: Engine,
    batch: Vec<Delivery>,
    flush: bool,
    reopen: &Reopen,
    on_commit: &mut OnCommit,
    committed: &Arc<Mutex<BTreeMap<String, Position>>>,
) -> Result<Engine> {
    let started = Instant::now();
    let mut positions: BTreeMap<String, Position> = BTreeMap::new();
    let mut chunks = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    for d in batch {
        if !d.position.is_null() {
            positions.insert(d.chunk.source.clone(), d.position);
        }
        acks.push((d.chunk.source.clone(), d.ack));
        chunks.push(d.chunk);
    }
    let n = chunks.len();
    let mut outcome = engine
        .ingest_many(chunks, positions.clone().into_iter().collect())
        .await;
    if flush {
        if let Ok(counts) = &outcome {
            if let Err(e) = engine.flush().await {
                outcome = Err(Error::Stored {
                    counts: counts.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
    // Stored, but a later step failed: the deliveries are committed (their
    // sources may acknowledge upstream), and the engine is reopened so that
    // its recovery brings the window tables up to date.
    let (outcome, reopen_after) = match outcome {
        Err(Error::Stored { counts, source }) => {
            tracing::error!(error = %source, "micro-batch stored, but its window step failed; reopening the engine");
            (Ok(counts), true)
        }
        other => (other, false),
    };
    match outcome {
        Ok(counts) => {
            let seq = engine.last_seq();
            let mut not_stored = engine.take_not_stored().into_iter();
            committed
                .lock()
                .expect("positions")
                .extend(positions.clone());
            let mut per_source: BTreeMap<String, finopsia_core::Counts> = BTreeMap::new();
            for ((source, ack), c) in acks.into_iter().zip(counts) {
                *per_source.entry(source).or_default() += c;
                let not_stored = not_stored.next().unwrap_or_default();
                if let Some(ack) = ack {
                    let _ = ack.send(Ok(Committed {
                        seq,
                        counts: c,
                        not_stored,
                    }));
                }
            }
            let total = per_source
                .values()
                .fold(finopsia_core::Counts::default(), |mut a, c| {
                    a += *c;
                    a
                });
            tracing::debug!(
                seq,
                chunks = n,
                accepted = total.accepted,
                duplicates = total.duplicates,
                quarantined = total.quarantined,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "micro-batch committed"
            );
            let rejects = engine.take_reject_reasons();
            on_commit(&CommitInfo {
                counts: &per_source,
                positions: &positions,
                seq,
                watermark: engine.watermark(),
                max_event_time: engine.max_event_time(),
                elapsed: started.elapsed(),
                rejects: &rejects,
                open_windows: &engine.open_windows(),
            });
            if reopen_after {
                drop(engine);
                return Ok(reopen_until_open(reopen, committed).await);
            }
            Ok(engine)
        }
        Err(error) => {
            let message = error.to_string();
            tracing::error!(%message, "micro-batch failed");
            let answer = |acks: Vec<(String, Option<tokio::sync::oneshot::Sender<_>>)>| {
                for (_, ack) in acks {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(message.clone()));
                    }
                }
            };
            if error.is_input() {
                // Refused before anything changed: the engine is intact.
                answer(acks);
                return Ok(engine);
            }
            drop(engine);
            let mut engine = reopen_until_open(reopen, committed).await;
            if flush {
                // The end of a bounded unit (an inbox file) whose last batch
                // failed: what of it was committed is still aggregated, as
                // after a failed import, before the source hears of it.
                if let Err(e) = engine.flush().await {
                    tracing::error!(error = %e, "flushing windows after a failed batch");
                    drop(engine);
                    engine = reopen_until_open(reopen, committed).await;
                }
            }
            answer(acks);
            Ok(engine)
        }
    }
}

/// Reopens the engine (its recovery replays what the window tables miss),
/// retrying with backoff until it opens.
async fn reopen_until_open(
    reopen: &Reopen,
    committed: &Arc<Mutex<BTreeMap<String, Position>>>,
) -> Engine {
    let mut wait = Duration::from_millis(500);
    loop {
        match reopen().await {
            Ok(e) => {
                committed
                    .lock()
                    .expect("positions")
                    .clone_from(e.positions());
                return e;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the engine; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs one source, restarting it with backoff after a failure, from the
/// last committed position, until the feed stops.
async fn supervise(
    mut source: Box<dyn StreamSource>,
    feed: Feed,
    committed: Arc<Mutex<BTreeMap<String, Position>>>,
    statuses: Statuses,
) {
    let name = source.name().to_string();
    let mut wait = Duration::from_millis(200);
    loop {
        let resume = committed.lock().expect("positions").get(&name).cloned();
        set(&statuses, &name, |s| s.running = true);
        let started = Instant::now();
        let result = source.run(resume, feed.clone()).await;
        if feed.stopping() {
            set(&statuses, &name, |s| s.running = false);
            return;
        }
        let message = match result {
            Ok(()) => "stopped without being asked to".to_string(),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > Duration::from_secs(30) {
            wait = Duration::from_millis(200);
        }
        tracing::error!(source = %name, error = %message, retry_in_ms = wait.as_millis() as u64, "source failed; restarting it");
        set(&statuses, &name, |s| {
            s.running = false;
            s.restarts += 1;
            s.last_error = Some(message.clone());
        });
        let mut f = feed.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = f.stopped() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

fn set(statuses: &Statuses, name: &str, f: impl FnOnce(&mut SourceStatus)) {
    f(statuses
        .lock()
        .expect("statuses")
        .entry(name.to_string())
        .or_default());
}

//! Driving a source through the engine: decoding runs on its own thread,
//! overlapping with SQL and store commits; progress is shown on a terminal.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use finopsia_core::source::Source;
use finopsia_core::Counts;

use crate::engine::Engine;
use crate::error::Error;

/// What an import did (when it failed: what it had stored by then).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Rows stored: accepted into `transactions`, quarantined, or
    /// recognised as duplicates, in committed micro-batches only.
    #[serde(flatten)]
    pub counts: Counts,
    /// Input rows seen (accepted + quarantined + duplicates).
    pub rows: u64,
    /// Micro-batches committed.
    pub batches: u64,
    pub elapsed_ms: u64,
    pub rows_per_sec: f64,
    /// Whether the whole input was read and stored.
    pub complete: bool,
    /// Why the import stopped early; the failed batch and the rest of the
    /// input were not stored (unless the message says the batch's records
    /// are stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImportReport {
    /// One line for people: the counts, and on failure what was and was
    /// not stored.
    pub fn summary(&self) -> String {
        let counts = format!(
            "accepted {} quarantined {} duplicates {}",
            self.counts.accepted, self.counts.quarantined, self.counts.duplicates
        );
        match &self.error {
            None => format!(
                "{counts} ({} rows in {} ms, {:.0} rows/s)",
                self.rows, self.elapsed_ms, self.rows_per_sec
            ),
            Some(e) => format!(
                "import stopped: {e}\nstored before it stopped: {counts} in {} micro-batch(es); the rest of the input was not stored. Importing the same input again is safe: stored records count as duplicates and rejects are not quarantined twice.",
                self.batches
            ),
        }
    }
}

/// An import that stopped on an error, with what it had stored by then.
#[derive(Debug, thiserror::Error)]
#[error("{}", report.summary())]
pub struct ImportFailed {
    pub report: ImportReport,
    pub error: Error,
}

/// Runs a source to its end (bounded) and flushes windows.
pub async fn run_source(
    engine: &mut Engine,
    source: Box<dyn Source>,
    batch_rows: usize,
    show_progress: bool,
) -> std::result::Result<ImportReport, Box<ImportFailed>> {
    let started = Instant::now();
    let (_, total) = source.progress();
    let bar = if show_progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let bounded = source.bounded();
    let ahead = engine.categorize_ahead();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let decoder = tokio::task::spawn_blocking(move || {
        let mut source = source;
        loop {
            match source.next_chunk(batch_rows) {
                Ok(Some(mut chunk)) => {
                    // Model evaluation here overlaps the engine's commit of
                    // the previous chunk; on an error the transform query
                    // evaluates (and reports it).
                    if let Some(models) = &ahead {
                        if let Err(e) = Engine::prepare_chunk(models, &mut chunk) {
                            tracing::debug!("categorizing ahead failed: {e}");
                        }
                    }
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut counts = Counts::default();
    let mut batches = 0;
    let mut failure: Option<Error> = None;
    while let Some(item) = rx.recv().await {
        let chunk = match item {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        let pos = chunk.bytes_read;
        let span = tracing::info_span!(
            "batch",
            chunks = 1,
            rows = chunk.records.num_rows() + chunk.rejects.len(),
            sources = %chunk.source,
        );
        match tracing::Instrument::instrument(engine.ingest(chunk), span).await {
            Ok(c) => counts += c,
            Err(Error::Stored { counts: c, source }) => {
                // The batch is committed; only its window step failed.
                for c in &c {
                    counts += *c;
                }
                batches += 1;
                failure = Some(Error::Stored { counts: c, source });
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        batches += 1;
        bar.set_position(pos);
        bar.set_message(format!(
            "accepted {} quarantined {} duplicates {}",
            counts.accepted, counts.quarantined, counts.duplicates
        ));
    }
    drop(rx);
    if let Err(e) = decoder.await {
        failure.get_or_insert(Error::Engine(format!("decoder thread: {e}")));
    }
    if bounded {
        // Flush even after a failure, so what was committed is aggregated.
        if let Err(e) = engine.flush().await {
            failure.get_or_insert(Error::Stored {
                counts: vec![counts],
                source: Box::new(e),
            });
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let rows = counts.accepted + counts.quarantined + counts.duplicates;
    let report = ImportReport {
        counts,
        rows,
        batches,
        elapsed_ms: elapsed.as_millis() as u64,
        rows_per_sec: rows as f64 / elapsed.as_secs_f64().max(1e-9),
        complete: failure.is_none(),
        error: failure.as_ref().map(|e| e.to_string()),
    };
    match failure {
        None => Ok(report),
        Some(error) => Err(Box::new(ImportFailed { report, error })),
    }
}

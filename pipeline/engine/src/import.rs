//! Driving a source through the engine: decoding runs on its own thread,
//! overlapping with SQL and store commits; progress is shown on a terminal.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use finopsia_core::source::Source;
use finopsia_core::Counts;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    #[serde(flatten)]
    pub counts: Counts,
    /// Input rows seen (accepted + quarantined + duplicates).
    pub rows: u64,
    pub batches: u64,
    pub elapsed_ms: u64,
    pub rows_per_sec: f64,
}

/// Runs a source to its end (bounded) and flushes windows.
pub async fn run_source(
    engine: &mut Engine,
    source: Box<dyn Source>,
    batch_rows: usize,
    show_progress: bool,
) -> Result<ImportReport> {
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
        match engine.ingest(chunk).await {
            Ok(c) => counts += c,
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
    decoder
        .await
        .map_err(|e| Error::Engine(format!("decoder thread: {e}")))?;
    if bounded {
        // Flush even after a failure, so what was committed is aggregated.
        let flushed = engine.flush().await;
        if failure.is_none() {
            flushed?;
        }
    }
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = started.elapsed();
    let rows = counts.accepted + counts.quarantined + counts.duplicates;
    Ok(ImportReport {
        counts,
        rows,
        batches,
        elapsed_ms: elapsed.as_millis() as u64,
        rows_per_sec: rows as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

//! The sink contract: where window emissions go after the store.
//!
//! Every emission (a window's first result and every corrected re-emission
//! after late data) is delivered at least once. An [`Emission`] is keyed by
//! table, group keys and `window_start`, so delivering it twice overwrites
//! itself; sinks must keep that property (InfluxDB does: same series and
//! timestamp). The runtime gives each sink its own queue and task, and
//! persists how far each sink got; see the engine's `outbox` module.

use datafusion::arrow::array::RecordBatch;

/// One committed window emission.
#[derive(Debug, Clone)]
pub struct Emission {
    /// Its place in the emission order (`<seq>-<table>`, sortable).
    pub id: String,
    /// The micro-batch sequence of the commit.
    pub seq: i64,
    /// The window table.
    pub table: String,
    /// The table's group-key columns (besides `window_start`/`window_end`).
    pub keys: Vec<String>,
    /// Rows with the table's schema: window_start, window_end, keys, aggregates.
    pub rows: RecordBatch,
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (transport error, 429, 5xx): retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (the receiver rejects this emission): logged
    /// and skipped; the rows stay in the store.
    #[error("{0}")]
    Permanent(String),
}

/// A destination for emissions.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    /// Delivers one emission.
    async fn deliver(&self, emission: &Emission) -> Result<(), SinkError>;
}

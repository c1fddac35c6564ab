//! The push contract of a streaming source, and what the engine tells it back.
//!
//! A [`StreamSource`] runs as its own task and sends [`Delivery`]s through a
//! bounded channel ([`Feed`]) to the one engine writer. Each delivery carries
//! the source's [`Position`] *after* its chunk. The engine commits the chunk's
//! records together with every source's latest position in one store commit,
//! and only then answers the delivery's `ack`. A source therefore
//! acknowledges its upstream (a broker message, an inbox file) only after
//! the answer, and on restart resumes from the position it is given, which
//! is the last committed one. Redelivered records are duplicates (same
//! source + transaction_id) and are never stored twice.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Result;
use crate::input::Chunk;

/// A source's position: opaque JSON to the engine (a file and byte offset, a
/// broker stream sequence, …), committed with the records it covers.
/// `null` means the source has no position to resume from (HTTP ingest):
/// nothing is recorded for it.
pub type Position = serde_json::Value;

/// Counts for one micro-batch or a whole import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New records stored.
    pub accepted: u64,
    /// Rows rejected (each is in the quarantine table exactly once).
    pub quarantined: u64,
    /// Identical re-deliveries, not stored again.
    pub duplicates: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.accepted += o.accepted;
        self.quarantined += o.quarantined;
        self.duplicates += o.duplicates;
    }
}

/// The engine's answer to one delivery, sent after its micro-batch committed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The micro-batch sequence number it was committed in.
    pub seq: i64,
    /// Counts of this delivery's rows alone.
    pub counts: Counts,
    /// The delivery's records that were not stored: (row index in the
    /// chunk's records, whether it was a conflicting duplicate, which is
    /// quarantined; else an identical duplicate). Every other record was
    /// stored.
    pub not_stored: Vec<(u32, bool)>,
}

/// `Err` carries the engine's message when the batch could not be committed;
/// the source must not acknowledge upstream and will be restarted from its
/// last committed position.
pub type Ack = std::result::Result<Committed, String>;

/// One chunk on its way from a source to the engine writer.
#[derive(Debug)]
pub struct Delivery {
    pub chunk: Chunk,
    /// The source's position after this chunk.
    pub position: Position,
    /// The chunk ends a bounded unit (an inbox file): windows are flushed
    /// after its micro-batch, as at the end of an import.
    pub flush: bool,
    /// Answered once the chunk's micro-batch has committed (or failed).
    pub ack: Option<oneshot::Sender<Ack>>,
}

/// A source's side of its bounded channel to the engine.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: mpsc::Sender<Delivery>,
    shutdown: watch::Receiver<bool>,
}

impl Feed {
    pub fn new(tx: mpsc::Sender<Delivery>, shutdown: watch::Receiver<bool>) -> Feed {
        Feed { tx, shutdown }
    }

    /// Sends a chunk and returns the receiver of its answer. Waits while the
    /// channel is full (backpressure); `None` once the engine has stopped.
    pub async fn send(
        &self,
        chunk: Chunk,
        position: Position,
        flush: bool,
    ) -> Option<oneshot::Receiver<Ack>> {
        let (tx, rx) = oneshot::channel();
        let d = Delivery {
            chunk,
            position,
            flush,
            ack: Some(tx),
        };
        self.tx.send(d).await.ok()?;
        Some(rx)
    }

    /// Whether shutdown was requested.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Completes when shutdown is requested.
    pub async fn stopped(&mut self) {
        while !*self.shutdown.borrow_and_update() {
            if self.shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A streaming source: runs until shutdown (or a fatal error, after which
/// the runtime restarts it with backoff from its last committed position).
#[async_trait::async_trait]
pub trait StreamSource: Send {
    /// The configured name (also the `source` recorded with its records
    /// unless the source says otherwise).
    fn name(&self) -> &str;
    /// Runs until shutdown. `resume` is the last committed position, `None`
    /// on the first start.
    async fn run(&mut self, resume: Option<Position>, feed: Feed) -> Result<()>;
}

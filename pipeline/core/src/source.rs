//! The pull contract of a bounded source: where an import's records come from.
//!
//! A [`Source`] yields [`Chunk`]s of validated records and rejects; the
//! engine does the rest. A bounded source (a set of files) ends, and its end
//! flushes all windows. Streaming sources (inbox, brokers, HTTP) use the push
//! contract in [`crate::stream`]. Implementations live in the connectors
//! crate, one folder each.

use crate::error::Result;
use crate::input::Chunk;

pub trait Source: Send {
    /// Source name recorded with every record (part of the dedup key).
    fn name(&self) -> &str;
    /// The next chunk of at most `max_rows` input rows; `None` when exhausted.
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>>;
    /// Whether the source ends (files) or streams until shutdown.
    fn bounded(&self) -> bool;
    /// (bytes consumed, total bytes if known), for progress display.
    fn progress(&self) -> (u64, Option<u64>);
}

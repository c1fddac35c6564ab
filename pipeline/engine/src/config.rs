//! The `[engine]` configuration section.

use std::time::Duration;

use finopsia_core::settings::{duration, text_or_number};
use finopsia_core::timefmt::parse_duration;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Maximum records per micro-batch (one store commit each).
    pub batch_rows: usize,
    /// Watermark = highest event time seen minus this delay.
    #[serde(deserialize_with = "text_or_number")]
    pub watermark_delay: String,
    /// A window is emitted (and its state leaves memory) once the watermark
    /// passes its end plus this lateness. Later records still update it.
    #[serde(deserialize_with = "text_or_number")]
    pub allowed_lateness: String,
    /// Records whose category the model filled with a confidence below this
    /// are flagged `needs_review` (0 flags none, 1 flags all).
    pub review_below: f64,
    /// During an import, categorize each micro-batch on the decoder thread
    /// while the previous one is committed (when the transform calls
    /// `categorize()` on the incoming columns as they are).
    pub categorize_ahead: bool,
    /// The service closes a micro-batch at `batch_rows` records or once this
    /// has passed since its first record, whichever comes first, so a
    /// trickle of streaming records is committed promptly.
    #[serde(deserialize_with = "text_or_number")]
    pub max_batch_delay: String,
    /// Chunks each source may have waiting for the engine writer before it
    /// has to wait (backpressure instead of unbounded memory).
    pub source_queue: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_rows: 262_144,
            watermark_delay: "1h".into(),
            allowed_lateness: "1d".into(),
            review_below: finopsia_udfs::categorize::DEFAULT_REVIEW_BELOW,
            categorize_ahead: true,
            max_batch_delay: "250ms".into(),
            source_queue: 4,
        }
    }
}

impl EngineConfig {
    pub fn watermark_delay(&self) -> Duration {
        parse_duration(&self.watermark_delay).unwrap_or_default()
    }
    pub fn allowed_lateness(&self) -> Duration {
        parse_duration(&self.allowed_lateness).unwrap_or_default()
    }
    pub fn max_batch_delay(&self) -> Duration {
        parse_duration(&self.max_batch_delay).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<()> {
        duration("engine.watermark_delay", &self.watermark_delay)?;
        duration("engine.allowed_lateness", &self.allowed_lateness)?;
        duration("engine.max_batch_delay", &self.max_batch_delay)?;
        if !(0.0..=1.0).contains(&self.review_below) {
            return Err(Error::Config(format!(
                "engine.review_below = {} must be between 0 and 1",
                self.review_below
            )));
        }
        if self.batch_rows == 0 {
            return Err(Error::Config("engine.batch_rows must be at least 1".into()));
        }
        if self.source_queue == 0 {
            return Err(Error::Config(
                "engine.source_queue must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

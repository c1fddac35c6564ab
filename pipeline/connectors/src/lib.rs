//! FinOpsia connectors: where records come from and where results go.
//!
//! Its part of the data path is both ends. One folder per connector:
//! [`files`] (bounded file sources for imports), [`inbox`] (a watched
//! directory), [`nats`] (NATS JetStream) as sources, meeting the core
//! crate's source contracts; [`webhook`] as a sink, meeting its sink
//! contract. [`registry`] is the one list that maps a config section's
//! `type` to a connector, validates it and builds it. MQTT, Kafka and
//! InfluxDB come next, each in its own folder.

pub mod error;
pub mod files;
pub mod inbox;
pub mod nats;
pub mod registry;
pub mod webhook;

pub use error::{Error, Result};
pub use registry::{SinkConfig, SourceConfig};

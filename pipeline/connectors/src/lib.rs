//! FinOpsia connectors: where records come from and where results go.
//!
//! Its part of the data path is both ends. One folder per connector:
//! [`files`] (bounded file sources for imports), [`inbox`] (a watched
//! directory), [`nats`] (NATS JetStream) as sources, meeting the core
//! crate's source contracts; [`webhook`] and [`influx`] (InfluxDB 1.x, 2.x,
//! 3.x) as sinks, meeting its sink contract, with [`rejects`] taking the
//! lines a sink's receiver refuses to the quarantine. [`registry`] is the
//! one list that maps a config section's `type` to a connector, validates
//! it and builds it. MQTT and Kafka come next, each in its own folder.

pub mod error;
pub mod files;
pub mod inbox;
pub mod influx;
pub mod nats;
pub mod notify;
pub mod registry;
pub mod rejects;
pub mod webhook;

pub use error::{Error, Result};
pub use registry::{SinkConfig, SourceConfig};

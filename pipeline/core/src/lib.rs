//! FinOpsia core: the record model and everything a source needs.
//!
//! Its part of the data path is the first step: input bytes become validated
//! records. [`input`] (with [`csv`], [`money`], [`timefmt`]) decodes CSV and
//! NDJSON into Arrow [`input::Chunk`]s of records in the [`schema::INCOMING`]
//! schema plus quarantine [`input::Reject`]s. The contracts the other crates
//! meet here: [`source::Source`] (bounded, pulled by an import),
//! [`stream::StreamSource`] (streaming, pushing into the engine writer with
//! positions and acknowledgements) and [`sink::Sink`] (window emissions, at
//! least once). No I/O beyond reading inputs; no store.

pub mod csv;
pub mod error;
pub mod input;
pub mod limits;
pub mod money;
pub mod notify;
pub mod schema;
pub mod settings;
pub mod sink;
pub mod source;
pub mod stream;
pub mod timefmt;

pub use error::{Error, Result};
pub use stream::Counts;

/// The public sample data set (3,000 SME transactions, `finopsia-seed`
/// preset), bundled for `finopsia run --sample` and the benchmarks.
pub const SAMPLE_CSV: &str = include_str!("../data/finopsia-seed-transactions.csv");
/// Made-up balance anchors for the sample's four accounts (the sample has
/// no balances; these are invented so that its runway tells a plausible
/// story): `account_id,currency,as_of,balance,note`.
pub const SAMPLE_BALANCES_CSV: &str = include_str!("../data/finopsia-seed-balances.csv");

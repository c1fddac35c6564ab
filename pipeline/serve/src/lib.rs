//! FinOpsia serving: programs and people read the store, and write through
//! the one writer, over HTTP.
//!
//! Its part of the data path is at the end, beside the engine: `finopsia
//! run` starts [`server::start`] in the same process. Reads go through the
//! store's `QueryService`, so every answer is as of one published
//! micro-batch (totals across tables agree) and never waits for the writer;
//! they run on the service's runtime with a timeout. Transactions pages and
//! forecast series are read from structures derived from each snapshot
//! ([`index`]: transactions in page order; [`grouped`]: forecast relations
//! sliced by series), not planned per request. Corrections are
//! committed to the `corrections` table one at a time. Requests carry a
//! bearer token whose role ([`tokens::Role`]: read, ingest, admin) decides
//! what they may do; tokens are stored only as hashes ([`tokens`]). The
//! OpenAPI document ([`openapi`]) is generated from the handlers ([`api`]).
//! Every refusal is one JSON shape with a stable code ([`error`]).
//!
//! People use the web dashboard ([`dashboard`]): one embedded page served
//! at `/` that reads and writes only through these endpoints, logged in
//! with a one-time link or an API token (session cookie, CSRF token).
//!
//! Analysts and BI tools read the same snapshots as Arrow over Flight SQL
//! ([`flight`], its own port), with the same tokens.
//!
//! Nothing here keeps state across a crash except the token list (see
//! [`tokens`] for its commit order) and `<data_dir>/state/http.json`, a
//! note of the address in use that is rewritten at every start.

pub mod api;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod flight;
pub mod grouped;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod rows;
pub mod server;
pub mod tokens;

pub use config::HttpConfig;
pub use error::{ApiError, Error, Result};
pub use flight::{FlightConfig, FlightServer};
pub use ingest::{FeedSlot, IngestContext, IngestSource};
pub use server::{start, Component, ComponentsFn, ServeContext, Server};
pub use tokens::{Role, TokenStore};

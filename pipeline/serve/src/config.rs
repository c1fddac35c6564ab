//! The `[http]` configuration section.

use std::net::SocketAddr;
use std::time::Duration;

use finopsia_core::settings::{duration, text_or_number};
use finopsia_core::timefmt::parse_duration;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the REST API from `finopsia run`.
    pub enabled: bool,
    /// Listen address, `HOST:PORT` (`--http-addr` overrides it). Port 0
    /// picks a free port; the address in use is logged and written to
    /// `<data_dir>/state/http.json`.
    pub addr: String,
    /// Whether `/health`, `/ready` and `/metrics` need a token (any role):
    /// `loopback` (open while the server listens on a loopback address,
    /// else a token), `open`, or `token`.
    pub probes: String,
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Page size of lists when `limit` is not given.
    pub default_page_size: usize,
    /// Largest `limit` a list accepts (larger: 400).
    pub max_page_size: usize,
    /// Origins allowed to call the API from a browser (exact
    /// `scheme://host[:port]`, or `*`); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Ingest requests per second each token may make (a token bucket).
    pub ingest_rate: f64,
    /// Ingest requests a token may make at once above the rate.
    pub ingest_burst: u32,
    /// A read that takes longer is cancelled (503).
    #[serde(deserialize_with = "text_or_number")]
    pub query_timeout: String,
    /// Server worker threads (each runs its own event loop; queries run on
    /// the service's shared runtime).
    pub workers: usize,
    /// Stored `Idempotency-Key` answers older than this are removed (at
    /// most hourly, when answers are stored); `0` keeps them forever.
    #[serde(deserialize_with = "text_or_number")]
    pub idempotency_ttl: String,
    /// MiB of decoded table files the API keeps in memory, so that reads do
    /// not decode Parquet each time; a table that does not fit is read from
    /// its files. 0 turns the cache off.
    pub read_cache_mb: usize,
    /// Serve the web dashboard at `/` (a one-time login link is printed at
    /// start and written to `<data_dir>/state/dashboard-login`).
    pub dashboard: bool,
    /// How long a dashboard login lasts.
    #[serde(deserialize_with = "text_or_number")]
    pub session_ttl: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            addr: "127.0.0.1:8080".into(),
            probes: "loopback".into(),
            max_body_bytes: 16 * 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
            cors_origins: Vec::new(),
            ingest_rate: 50.0,
            ingest_burst: 100,
            query_timeout: "30s".into(),
            workers: 2,
            idempotency_ttl: "24h".into(),
            read_cache_mb: 256,
            dashboard: true,
            session_ttl: "12h".into(),
        }
    }
}

impl HttpConfig {
    pub fn query_timeout(&self) -> Duration {
        parse_duration(&self.query_timeout).unwrap_or(Duration::from_secs(30))
    }

    /// How long stored idempotency answers are kept (`None`: forever).
    pub fn idempotency_ttl(&self) -> Option<Duration> {
        parse_duration(&self.idempotency_ttl).filter(|d| !d.is_zero())
    }

    /// How long a dashboard login lasts (at least a minute).
    pub fn session_ttl(&self) -> Duration {
        parse_duration(&self.session_ttl)
            .unwrap_or(Duration::from_secs(12 * 3600))
            .max(Duration::from_secs(60))
    }

    pub fn socket_addr(&self) -> Result<SocketAddr> {
        self.addr.parse().map_err(|_| {
            Error::Config(format!(
                "http.addr = {:?} is not HOST:PORT with a numeric host, e.g. 127.0.0.1:8080",
                self.addr
            ))
        })
    }

    pub fn validate(&self) -> Result<()> {
        self.socket_addr()?;
        duration("http.query_timeout", &self.query_timeout)
            .map_err(|e| Error::Config(e.to_string()))?;
        duration("http.idempotency_ttl", &self.idempotency_ttl)
            .map_err(|e| Error::Config(e.to_string()))?;
        duration("http.session_ttl", &self.session_ttl)
            .map_err(|e| Error::Config(e.to_string()))?;
        if !matches!(self.probes.as_str(), "loopback" | "open" | "token") {
            return Err(Error::Config(format!(
                "http.probes = {:?}: use loopback, open or token",
                self.probes
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::Config(
                "http.max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.default_page_size == 0 || self.max_page_size < self.default_page_size {
            return Err(Error::Config(
                "http.default_page_size must be at least 1 and at most http.max_page_size".into(),
            ));
        }
        if !(self.ingest_rate > 0.0 && self.ingest_rate.is_finite()) || self.ingest_burst == 0 {
            return Err(Error::Config(
                "http.ingest_rate must be above 0 and http.ingest_burst at least 1".into(),
            ));
        }
        if self.workers == 0 {
            return Err(Error::Config("http.workers must be at least 1".into()));
        }
        for o in &self.cors_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "http.cors_origins: {o:?} is not an origin like https://example.com or *"
                )));
            }
        }
        Ok(())
    }

    /// Whether the probes are open for this listening address.
    pub fn probes_open(&self, bound: &SocketAddr) -> bool {
        match self.probes.as_str() {
            "open" => true,
            "token" => false,
            _ => bound.ip().is_loopback(),
        }
    }
}

//! Webhook sink: each window emission as one JSON `POST`.
//!
//! Body: `{"id": "<seq>-<table>", "seq": N, "table": "...", "keys": [...],
//! "rows": [{"window_start": "...", "window_end": "...", <keys>, <aggregates>}]}`.
//! An emission is keyed by `table`, `keys` and `window_start`: a receiver
//! upserts rows on that key, so a repeated delivery overwrites itself.
//! A 2xx answer is a delivery. Transport errors, 408, 429 and 5xx are
//! retried with backoff by the sink's task (see the engine's outbox); any
//! other answer is logged with the server's message and the emission is
//! skipped (the rows stay in the store). No state of its own: its delivered
//! position is kept by the outbox.

use std::time::Duration;

use finopsia_core::sink::{Emission, Sink, SinkError};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[sinks.NAME]` with `type = "webhook"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to POST (http or https).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Per-request timeout.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub timeout: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            token: None,
            timeout: "10s".into(),
        }
    }
}

impl WebhookConfig {
    pub fn validate(&self, section: &str) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "{section}.url = {:?}: give an http:// or https:// URL",
                self.url
            )));
        }
        finopsia_core::settings::duration(&format!("{section}.timeout"), &self.timeout)?;
        Ok(())
    }
}

pub struct WebhookSink {
    name: String,
    cfg: WebhookConfig,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<WebhookSink> {
        let timeout =
            finopsia_core::timefmt::parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(10));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("sinks.{name}: {e}")))?;
        Ok(WebhookSink {
            name: name.to_string(),
            cfg: cfg.clone(),
            client,
        })
    }
}

/// The JSON body of one emission.
pub fn body(e: &Emission) -> std::result::Result<Vec<u8>, SinkError> {
    let mut rows = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut rows);
        w.write(&e.rows)
            .and_then(|_| w.finish())
            .map_err(|err| SinkError::Permanent(format!("cannot encode the rows: {err}")))?;
    }
    if rows.is_empty() {
        rows.extend_from_slice(b"[]");
    }
    let rows: serde_json::Value = serde_json::from_slice(&rows)
        .map_err(|err| SinkError::Permanent(format!("cannot encode the rows: {err}")))?;
    serde_json::to_vec(&serde_json::json!({
        "id": e.id,
        "seq": e.seq,
        "table": e.table,
        "keys": e.keys,
        "rows": rows,
    }))
    .map_err(|err| SinkError::Permanent(err.to_string()))
}

#[async_trait::async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, emission: &Emission) -> std::result::Result<(), SinkError> {
        let mut req = self
            .client
            .post(&self.cfg.url)
            .header("content-type", "application/json")
            .body(body(emission)?);
        if let Some(t) = &self.cfg.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SinkError::Transient(format!("POST {}: {e}", self.cfg.url)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = format!(
            "POST {}: {status}: {}",
            self.cfg.url,
            text.chars().take(500).collect::<String>()
        );
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(SinkError::Transient(message))
        } else {
            Err(SinkError::Permanent(message))
        }
    }
}

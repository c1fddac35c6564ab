//! NATS JetStream source: a durable pull consumer on a stream.
//!
//! Each message's payload is one or more records, NDJSON lines or a
//! canonical CSV with its header (`format`); each message becomes one chunk
//! whose rejects are quarantined with `file = "<subject>#<stream sequence>"`
//! and the line within the message. The message's stream sequence is the
//! source's position.
//!
//! What is committed where, and in what order: the records (and the
//! position, `{"stream_seq": N}`) are committed by the engine in one
//! `transactions` commit; only after that commit is the message acked to
//! JetStream. A message whose records were all rejected is acked the same
//! way once its rejects are committed. A message whose batch failed is
//! nak'ed (redelivered at once). After a crash, JetStream redelivers every
//! message that was not acked; their records that had committed are
//! duplicates (same source + transaction_id) and are not stored twice, and
//! their rejects are not quarantined twice (same source, position and raw
//! bytes). The consumer is durable, so its progress survives restarts on
//! the server; when it has to be created, it starts after the committed
//! position.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use finopsia_core::input::{FileDecoder, Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::stream::{Feed, Position, StreamSource};
use finopsia_core::timefmt::parse_duration;
use finopsia_udfs::ModelHandle;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[sources.NAME]` with `type = "nats"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URLs.
    pub servers: Vec<String>,
    /// The JetStream stream to consume (it must exist).
    pub stream: String,
    /// Subject filter of the consumer (empty: every subject of the stream).
    pub subject: String,
    /// Durable consumer name (default: the source name).
    pub durable: Option<String>,
    /// Payload format: `ndjson` (one or more JSON records per message) or
    /// `csv` (a canonical CSV with its header line in each message).
    pub format: Format,
    /// Preset applied to the records (column names, date format, …).
    pub preset: String,
    /// Credentials: a token, or a user and password.
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Messages fetched per request, and how long a fetch waits for them.
    pub batch: usize,
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub max_wait: String,
    /// How long JetStream waits for an ack before redelivering.
    #[serde(deserialize_with = "finopsia_core::settings::text_or_number")]
    pub ack_wait: String,
    /// Messages in flight (delivered, not yet acked) at most.
    pub max_ack_pending: i64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            stream: String::new(),
            subject: String::new(),
            durable: None,
            format: Format::Ndjson,
            preset: "canonical".into(),
            token: None,
            user: None,
            password: None,
            batch: 1000,
            max_wait: "500ms".into(),
            ack_wait: "30s".into(),
            max_ack_pending: 20_000,
        }
    }
}

impl NatsConfig {
    pub fn validate(&self, section: &str) -> Result<()> {
        if self.stream.is_empty() {
            return Err(Error::Config(format!(
                "{section}.stream: name the JetStream stream to consume"
            )));
        }
        if self.servers.is_empty() {
            return Err(Error::Config(format!(
                "{section}.servers: give at least one server URL"
            )));
        }
        if self.batch == 0 || self.max_ack_pending < 1 {
            return Err(Error::Config(format!(
                "{section}: batch and max_ack_pending must be at least 1"
            )));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(Error::Config(format!(
                "{section}: user and password go together"
            )));
        }
        if self.token.is_some() && self.user.is_some() {
            return Err(Error::Config(format!(
                "{section}: use a token or a user and password, not both"
            )));
        }
        finopsia_core::settings::duration(&format!("{section}.max_wait"), &self.max_wait)?;
        finopsia_core::settings::duration(&format!("{section}.ack_wait"), &self.ack_wait)?;
        Ok(())
    }
}

/// A running NATS JetStream source.
pub struct NatsSource {
    name: String,
    cfg: NatsConfig,
    preset: Preset,
    bounds: Bounds,
    ahead: Option<Arc<ModelHandle>>,
}

impl NatsSource {
    pub fn new(
        name: &str,
        cfg: &NatsConfig,
        preset: Preset,
        bounds: Bounds,
        ahead: Option<Arc<ModelHandle>>,
    ) -> NatsSource {
        NatsSource {
            name: name.to_string(),
            cfg: cfg.clone(),
            preset,
            bounds,
            ahead,
        }
    }

    fn remote(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Remote {
            connector: format!("source {} (nats)", self.name),
            message: format!("{what}: {e}"),
        }
    }

    async fn consumer(
        &self,
        resume: Option<&Position>,
    ) -> Result<jetstream::consumer::PullConsumer> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("finopsia source {}", self.name))
            .connection_timeout(Duration::from_secs(5));
        if let Some(t) = &self.cfg.token {
            opts = opts.token(t.clone());
        }
        if let (Some(u), Some(p)) = (&self.cfg.user, &self.cfg.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .cfg
            .servers
            .iter()
            .map(|s| s.parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.remote("server URL", e))?;
        let client = opts
            .connect(servers)
            .await
            .map_err(|e| self.remote("connect", e))?;
        let js = jetstream::new(client);
        let stream = js
            .get_stream(&self.cfg.stream)
            .await
            .map_err(|e| self.remote(&format!("stream {}", self.cfg.stream), e))?;
        let durable = self
            .cfg
            .durable
            .clone()
            .unwrap_or_else(|| self.name.clone());
        let start = resume.and_then(|p| p["stream_seq"].as_u64()).map_or(
            jetstream::consumer::DeliverPolicy::All,
            |s| jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: s + 1,
            },
        );
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: self.cfg.subject.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: parse_duration(&self.cfg.ack_wait).unwrap_or(Duration::from_secs(30)),
            max_ack_pending: self.cfg.max_ack_pending,
            deliver_policy: start,
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| self.remote(&format!("consumer {durable}"), e))
    }

    /// The message's payload as a chunk of this source.
    fn decode(
        &self,
        subject: &str,
        seq: u64,
        payload: &[u8],
    ) -> Result<finopsia_core::input::Chunk> {
        let label = format!("{subject}#{seq}");
        let mut d = FileDecoder::from_reader(
            Box::new(std::io::Cursor::new(payload.to_vec())),
            &label,
            self.cfg.format,
            &self.preset,
            self.bounds,
            &self.name,
        )?;
        let mut chunk = match d.next_chunk(usize::MAX)? {
            Some(c) => c,
            None => finopsia_core::input::Chunk::empty(&self.name),
        };
        if let Some(models) = &self.ahead {
            if let Err(e) = chunk.prepare(models) {
                tracing::debug!("categorizing ahead failed: {e}");
            }
        }
        Ok(chunk)
    }
}

#[async_trait::async_trait]
impl StreamSource for NatsSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&mut self, resume: Option<Position>, mut feed: Feed) -> finopsia_core::Result<()> {
        let consumer = self.consumer(resume.as_ref()).await?;
        tracing::info!(source = %self.name, stream = %self.cfg.stream, subject = %self.cfg.subject, resume = ?resume, "consuming NATS JetStream");
        let max_wait = parse_duration(&self.cfg.max_wait).unwrap_or(Duration::from_millis(500));
        // Acks go out in delivery order once each message's batch committed.
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(
            jetstream::Message,
            tokio::sync::oneshot::Receiver<finopsia_core::stream::Ack>,
        )>();
        let name = self.name.clone();
        let acker = tokio::spawn(async move {
            while let Some((msg, ack)) = ack_rx.recv().await {
                let result = match ack.await {
                    Ok(Ok(_)) => msg.ack().await,
                    // Not committed: redeliver at once (or after ack_wait if
                    // this nak is lost).
                    _ => msg.ack_with(AckKind::Nak(None)).await,
                };
                if let Err(e) = result {
                    tracing::warn!(source = %name, error = %e, "ack failed; JetStream will redeliver the message");
                }
            }
        });
        let outcome: Result<()> = async {
            loop {
                if feed.stopping() {
                    return Ok(());
                }
                let mut batch = consumer
                    .fetch()
                    .max_messages(self.cfg.batch)
                    .expires(max_wait)
                    .messages()
                    .await
                    .map_err(|e| self.remote("fetch", e))?;
                loop {
                    let next = tokio::select! {
                        m = batch.next() => m,
                        _ = feed.stopped() => return Ok(()),
                    };
                    let Some(msg) = next else { break };
                    let msg = msg.map_err(|e| self.remote("message", e))?;
                    let seq = msg
                        .info()
                        .map_err(|e| self.remote("message info", e))?
                        .stream_sequence;
                    let chunk = self.decode(msg.subject.as_str(), seq, &msg.payload)?;
                    let position = serde_json::json!({ "stream_seq": seq });
                    match feed.send(chunk, position, false).await {
                        Some(ack) => {
                            let _ = ack_tx.send((msg, ack));
                        }
                        None => return Ok(()),
                    }
                }
            }
        }
        .await;
        drop(ack_tx);
        let _ = acker.await;
        outcome.map_err(Into::into)
    }
}

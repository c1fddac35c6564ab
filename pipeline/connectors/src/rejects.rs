//! The quarantine for sinks: lines a sink's receiver refused reach the
//! `quarantine` table through the one writer, as a source named `sinks`.
//!
//! A sink calls [`SinkRejects::quarantine`] with an outbox entry id and its
//! rejects; they go to the engine as a chunk of rejects only, with the
//! position `{"entry": id}`, and the call returns once that micro-batch has
//! committed. The committed position is the newest entry whose rejects are
//! stored: after a crash, a redelivered entry at or before it is not
//! quarantined again (entry ids sort in delivery order). While the runtime
//! is not running (before it starts, after it stops) the call fails, and
//! the sink retries the delivery later.

use std::sync::{Arc, Mutex};

use finopsia_core::input::{Chunk, Reject};
use finopsia_core::sink::Quarantine;
use finopsia_core::stream::{Feed, Position, StreamSource};
use tokio::sync::{mpsc, oneshot};

/// The source name the refused lines are committed under.
pub const SOURCE: &str = "sinks";

type Request = (String, Vec<Reject>, oneshot::Sender<Result<(), String>>);

/// The sinks' handle (cheap to clone).
#[derive(Clone)]
pub struct SinkRejects {
    tx: mpsc::Sender<Request>,
    committed: Arc<Mutex<Option<String>>>,
}

/// The source side, run by the runtime.
pub struct RejectsSource {
    rx: mpsc::Receiver<Request>,
    committed: Arc<Mutex<Option<String>>>,
}

/// A connected handle and source.
pub fn channel() -> (SinkRejects, RejectsSource) {
    let (tx, rx) = mpsc::channel(16);
    let committed = Arc::new(Mutex::new(None));
    (
        SinkRejects {
            tx,
            committed: committed.clone(),
        },
        RejectsSource { rx, committed },
    )
}

#[async_trait::async_trait]
impl Quarantine for SinkRejects {
    async fn quarantine(&self, entry: &str, rejects: Vec<Reject>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((entry.to_string(), rejects, tx))
            .await
            .map_err(|_| "the engine is not running".to_string())?;
        rx.await
            .map_err(|_| "the engine stopped before committing".to_string())?
    }
}

impl SinkRejects {
    /// The newest entry whose rejects are committed (known once the
    /// runtime has started the source).
    pub fn committed(&self) -> Option<String> {
        self.committed.lock().expect("rejects").clone()
    }
}

fn entry_of(p: &Position) -> Option<String> {
    p.get("entry").and_then(|e| e.as_str()).map(str::to_string)
}

#[async_trait::async_trait]
impl StreamSource for RejectsSource {
    fn name(&self) -> &str {
        SOURCE
    }

    async fn run(&mut self, resume: Option<Position>, mut feed: Feed) -> finopsia_core::Result<()> {
        let mut done = resume.as_ref().and_then(entry_of);
        *self.committed.lock().expect("rejects") = done.clone();
        loop {
            let request = tokio::select! {
                r = self.rx.recv() => r,
                _ = feed.stopped() => return Ok(()),
            };
            let Some((entry, rejects, answer)) = request else {
                // Every sink is gone: idle until shutdown.
                feed.stopped().await;
                return Ok(());
            };
            if done.as_ref().is_some_and(|d| entry.as_str() <= d.as_str()) {
                let _ = answer.send(Ok(()));
                continue;
            }
            let mut chunk = Chunk::empty(SOURCE);
            chunk.rejects = rejects;
            let position = serde_json::json!({ "entry": entry });
            let Some(ack) = feed.send(chunk, position, false).await else {
                let _ = answer.send(Err("the engine is not running".into()));
                return Ok(());
            };
            match ack.await {
                Ok(Ok(_)) => {
                    done = Some(entry);
                    *self.committed.lock().expect("rejects") = done.clone();
                    let _ = answer.send(Ok(()));
                }
                Ok(Err(e)) => {
                    let _ = answer.send(Err(e));
                }
                Err(_) => {
                    let _ = answer.send(Err("the engine stopped before committing".into()));
                    return Ok(());
                }
            }
        }
    }
}

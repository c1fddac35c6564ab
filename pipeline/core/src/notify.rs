//! The alert channel contract: what a notification is and how a channel
//! (webhook, Slack, e-mail; in `finopsia-connectors`) sends one. The alert
//! rules and their state live in `finopsia-ops`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One notification: an alert starting, still firing, or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Unique per change: a receiver drops one it has already seen (a
    /// channel may deliver it again after a crash).
    pub event_id: String,
    /// `RULE/KEY`: the alert, stable across its changes.
    pub alert_id: String,
    pub rule: String,
    /// The rule's type (`balance_below`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// `firing`, `repeat` or `resolved`.
    pub status: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What is wrong, with the numbers and money in its currency.
    pub message: String,
    pub labels: BTreeMap<String, String>,
    /// The number the rule compared (a balance, a rate, days…).
    pub value: Option<f64>,
    pub at: DateTime<Utc>,
}

/// A way to notify people.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    /// Sends one notification (with the channel's own retries and
    /// timeouts); `Err` says why it was not delivered.
    async fn send(&self, n: &Notification) -> Result<(), String>;
}

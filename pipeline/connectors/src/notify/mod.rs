//! Alert channels (`[channels.NAME]`): where alert notifications go.
//!
//! - `webhook`: the notification as JSON in a `POST`, signed: the header
//!   `X-FinOpsia-Signature: sha256=<hex>` is the HMAC-SHA256, keyed with
//!   `secret`, of `<X-FinOpsia-Timestamp>.<body>`; `X-FinOpsia-Event` is
//!   the event id a receiver drops when it sees it again;
//! - `slack`: a Slack-compatible incoming webhook (`{"text": …}`);
//! - `email`: a plain-text message over SMTP ([`email`]).
//!
//! Each send makes up to `attempts` tries, `timeout` each, with doubling
//! waits, on transport errors, 408, 429 and 5xx; any other answer fails at
//! once with the server's message. No state of its own: what was delivered
//! is recorded by the alert evaluation (`finopsia-ops`'s `alerts`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use finopsia_core::notify::{Channel, Notification};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub mod email;

/// One `[channels.NAME]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// `webhook`, `slack` or `email`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `webhook`, `slack`: where to POST (http or https).
    #[serde(default)]
    pub url: String,
    /// `webhook`: the HMAC-SHA256 key of the signature header (required).
    #[serde(default)]
    pub secret: Option<String>,
    /// Per-attempt timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "finopsia_core::settings::text_or_number"
    )]
    pub timeout: String,
    /// Tries per notification, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// `email`: the SMTP server.
    #[serde(default)]
    pub host: Option<String>,
    /// `email`: its port (default 587; 465 with `tls = "implicit"`, 25
    /// with `none`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `email`: `starttls_when_offered` (default), `starttls`, `implicit`
    /// or `none`.
    #[serde(default = "default_tls")]
    pub tls: String,
    /// `email`: a PEM root certificate to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// `email`: SMTP credentials (both or neither).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// `email`: the sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// `email`: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
}

fn default_tls() -> String {
    "starttls_when_offered".into()
}

fn default_timeout() -> String {
    "10s".into()
}

fn default_attempts() -> u32 {
    3
}

impl ChannelConfig {
    pub fn validate(&self, name: &str) -> Result<()> {
        let section = format!("channels.{name}");
        let email_keys = self.host.is_some()
            || self.port.is_some()
            || self.ca_file.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.from.is_some()
            || !self.to.is_empty()
            || self.tls != default_tls();
        match self.kind.as_str() {
            "email" => {
                if !self.url.is_empty() || self.secret.is_some() {
                    return Err(Error::Config(format!(
                        "{section}: url and secret do not apply to email (host, port, tls, from, to do)"
                    )));
                }
                email::validate(&section, self)?;
            }
            "webhook" | "slack" => {
                if email_keys {
                    return Err(Error::Config(format!(
                        "{section}: host, port, tls, ca_file, username, password, from and to apply to email only"
                    )));
                }
                if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
                    return Err(Error::Config(format!(
                        "{section}.url = {:?}: give an http:// or https:// URL",
                        self.url
                    )));
                }
                match (self.kind.as_str(), &self.secret) {
                    ("webhook", None) => {
                        return Err(Error::Config(format!(
                        "{section}: a webhook channel needs secret (the HMAC key receivers verify)"
                    )))
                    }
                    ("slack", Some(_)) => {
                        return Err(Error::Config(format!(
                            "{section}: secret does not apply to slack (the URL is the secret)"
                        )))
                    }
                    _ => {}
                }
            }
            other => {
                return Err(Error::Config(format!(
                    "{section}.type = {other:?}: use webhook, slack or email"
                )))
            }
        }
        if self.attempts == 0 {
            return Err(Error::Config(format!(
                "{section}.attempts must be at least 1"
            )));
        }
        finopsia_core::settings::duration(&format!("{section}.timeout"), &self.timeout)?;
        Ok(())
    }
}

/// Checks every channel.
pub fn validate(channels: &BTreeMap<String, ChannelConfig>) -> Result<()> {
    for (name, c) in channels {
        c.validate(name)?;
    }
    Ok(())
}

/// Builds the configured channels.
pub fn build(
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<BTreeMap<String, Arc<dyn Channel>>> {
    validate(channels)?;
    let mut out: BTreeMap<String, Arc<dyn Channel>> = BTreeMap::new();
    for (name, c) in channels {
        let timeout = finopsia_core::settings::duration("timeout", &c.timeout)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("channels.{name}: {e}")))?;
        let mailer = if c.kind == "email" {
            Some(email::build(&format!("channels.{name}"), c, timeout)?)
        } else {
            None
        };
        out.insert(
            name.clone(),
            Arc::new(HttpChannel {
                name: name.clone(),
                cfg: c.clone(),
                client,
                mailer,
            }),
        );
    }
    Ok(out)
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> Vec<u8> { k.iter().map(|b| b ^ byte).collect() };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Slack's text for a notification.
fn slack_text(n: &Notification) -> String {
    let head = match n.status.as_str() {
        "resolved" => "RESOLVED".to_string(),
        "repeat" => format!("STILL FIRING [{}]", n.severity.to_uppercase()),
        _ => format!("FIRING [{}]", n.severity.to_uppercase()),
    };
    format!("*{head}* {}: {}", n.rule, n.message)
}

/// A configured channel: HTTP (webhook, Slack) or e-mail.
struct HttpChannel {
    name: String,
    cfg: ChannelConfig,
    client: reqwest::Client,
    mailer: Option<email::Mailer>,
}

impl HttpChannel {
    async fn post_once(&self, n: &Notification) -> std::result::Result<(), (bool, String)> {
        if let Some(m) = &self.mailer {
            return m.send(n).await;
        }
        let (body, mut headers) = match self.cfg.kind.as_str() {
            "slack" => (
                serde_json::json!({ "text": slack_text(n) }).to_string(),
                Vec::new(),
            ),
            _ => {
                let body = serde_json::to_string(n).map_err(|e| (false, e.to_string()))?;
                let ts = chrono::Utc::now().timestamp().to_string();
                let secret = self.cfg.secret.as_deref().unwrap_or_default();
                let sig = hmac_sha256(secret.as_bytes(), format!("{ts}.{body}").as_bytes());
                (
                    body,
                    vec![
                        ("X-FinOpsia-Event", n.event_id.clone()),
                        ("X-FinOpsia-Timestamp", ts),
                        ("X-FinOpsia-Signature", format!("sha256={}", hex(&sig))),
                    ],
                )
            }
        };
        headers.push(("Content-Type", "application/json".into()));
        let mut req = self.client.post(&self.cfg.url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Err(e) => Err((true, format!("{}: {e}", self.cfg.url))),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = resp.text().await.unwrap_or_default();
                let retry =
                    status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
                Err((
                    retry,
                    format!("{} answered {status}: {}", self.cfg.url, text.trim()),
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl Channel for HttpChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> std::result::Result<(), String> {
        let mut wait = Duration::from_millis(500);
        let mut last = String::new();
        for attempt in 1..=self.cfg.attempts {
            match self.post_once(n).await {
                Ok(()) => return Ok(()),
                Err((retry, e)) => {
                    last = e;
                    if !retry || attempt == self.cfg.attempts {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn webhook_needs_a_secret_and_slack_refuses_one() {
        let c = |kind: &str, secret: Option<&str>| ChannelConfig {
            kind: kind.into(),
            url: "http://127.0.0.1:1/x".into(),
            secret: secret.map(str::to_string),
            timeout: "1s".into(),
            attempts: 1,
            host: None,
            port: None,
            tls: default_tls(),
            ca_file: None,
            username: None,
            password: None,
            from: None,
            to: Vec::new(),
        };
        assert!(c("webhook", None)
            .validate("a")
            .unwrap_err()
            .to_string()
            .contains("secret"));
        assert!(c("webhook", Some("k")).validate("a").is_ok());
        assert!(c("slack", Some("k")).validate("a").is_err());
        assert!(c("slack", None).validate("a").is_ok());
        assert!(c("pager", None).validate("a").is_err());
    }
}

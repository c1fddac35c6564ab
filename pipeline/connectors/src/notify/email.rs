//! The `email` alert channel: one plain-text message per notification over
//! SMTP (lettre, rustls). `tls`: `starttls_when_offered` (the default:
//! STARTTLS when the server offers it), `starttls` (refuse a server that
//! does not), `implicit` (TLS from the first byte, port 465) or `none`.
//! `ca_file` adds a PEM root certificate for a private CA. Credentials are
//! sent only when `username` is set.

use std::time::Duration;

use finopsia_core::notify::Notification;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::ChannelConfig;
use crate::error::{Error, Result};

pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn mailbox(section: &str, key: &str, v: &str) -> Result<Mailbox> {
    v.parse()
        .map_err(|e| Error::Config(format!("{section}.{key} = {v:?}: {e}")))
}

/// Checks the e-mail keys of `[channels.NAME]`.
pub(super) fn validate(section: &str, c: &ChannelConfig) -> Result<()> {
    let Some(host) = c.host.as_deref().filter(|h| !h.is_empty()) else {
        return Err(Error::Config(format!(
            "{section}: an email channel needs host"
        )));
    };
    let _ = host;
    let Some(from) = &c.from else {
        return Err(Error::Config(format!(
            "{section}: an email channel needs from"
        )));
    };
    mailbox(section, "from", from)?;
    if c.to.is_empty() {
        return Err(Error::Config(format!(
            "{section}: an email channel needs to (a list of addresses)"
        )));
    }
    for t in &c.to {
        mailbox(section, "to", t)?;
    }
    if !matches!(
        c.tls.as_str(),
        "starttls_when_offered" | "starttls" | "implicit" | "none"
    ) {
        return Err(Error::Config(format!(
            "{section}.tls = {:?}: use starttls_when_offered, starttls, implicit or none",
            c.tls
        )));
    }
    if c.username.is_some() != c.password.is_some() {
        return Err(Error::Config(format!(
            "{section}: give both username and password, or neither"
        )));
    }
    if let Some(f) = &c.ca_file {
        let pem = std::fs::read(f)
            .map_err(|e| Error::Config(format!("{section}.ca_file = {f:?}: {e}")))?;
        Certificate::from_pem(&pem)
            .map_err(|e| Error::Config(format!("{section}.ca_file = {f:?}: {e}")))?;
    }
    Ok(())
}

pub(super) fn build(section: &str, c: &ChannelConfig, timeout: Duration) -> Result<Mailer> {
    validate(section, c)?;
    let host = c.host.clone().unwrap_or_default();
    let mut params = TlsParameters::builder(host.clone());
    if let Some(f) = &c.ca_file {
        let pem = std::fs::read(f)
            .map_err(|e| Error::Config(format!("{section}.ca_file = {f:?}: {e}")))?;
        params = params.add_root_certificate(
            Certificate::from_pem(&pem)
                .map_err(|e| Error::Config(format!("{section}.ca_file: {e}")))?,
        );
    }
    let params = || -> Result<TlsParameters> {
        params
            .clone()
            .build_rustls()
            .map_err(|e| Error::Config(format!("{section}: TLS: {e}")))
    };
    let (tls, default_port) = match c.tls.as_str() {
        "none" => (Tls::None, 25),
        "implicit" => (Tls::Wrapper(params()?), 465),
        "starttls" => (Tls::Required(params()?), 587),
        _ => (Tls::Opportunistic(params()?), 587),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(c.port.unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(Mailer {
        transport: b.build(),
        from: mailbox(section, "from", c.from.as_deref().unwrap_or_default())?,
        to: c
            .to
            .iter()
            .map(|t| mailbox(section, "to", t))
            .collect::<Result<_>>()?,
    })
}

/// The subject line: what changed, how bad, which alert.
pub fn subject(n: &Notification) -> String {
    let what = match n.status.as_str() {
        "resolved" => "RESOLVED".to_string(),
        "repeat" => format!("STILL FIRING [{}]", n.severity.to_uppercase()),
        _ => format!("FIRING [{}]", n.severity.to_uppercase()),
    };
    format!("[FinOpsia] {what} {}", n.alert_id)
}

fn body(n: &Notification) -> String {
    let mut s = format!("{}\n\n", n.message);
    s.push_str(&format!(
        "Alert: {}\nRule: {} ({})\nStatus: {}\nSeverity: {}\nAt: {}\n",
        n.alert_id,
        n.rule,
        n.kind,
        n.status,
        n.severity,
        n.at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    if let Some(v) = n.value {
        s.push_str(&format!("Value: {v}\n"));
    }
    for (k, v) in &n.labels {
        s.push_str(&format!("Label {k}: {v}\n"));
    }
    s.push_str(&format!("Event: {}\n", n.event_id));
    s
}

impl Mailer {
    /// Sends one message; `Err(retry?, why)`.
    pub(super) async fn send(&self, n: &Notification) -> std::result::Result<(), (bool, String)> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject(n))
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            m = m.to(t.clone());
        }
        let msg = m.body(body(n)).map_err(|e| (false, e.to_string()))?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            // A permanent SMTP answer (5xx) will not change on a retry.
            Err(e) => Err((!e.is_permanent(), e.to_string())),
        }
    }
}

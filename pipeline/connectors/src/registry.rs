//! The one list of connectors: which `type` names which source or sink, how
//! each is validated and built. A new connector gets a folder and a line in
//! each `match` here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use finopsia_core::input::Preset;
use finopsia_core::sink::Sink;
use finopsia_core::stream::StreamSource;
use finopsia_udfs::ModelHandle;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inbox::{InboxConfig, InboxSource};
use crate::influx::{InfluxConfig, InfluxSink, SinkContext};
use crate::nats::{NatsConfig, NatsSource};
use crate::webhook::{WebhookConfig, WebhookSink};

/// `[sources.NAME]`: a streaming source; `type` picks the connector. The
/// section name is the source name stored with its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    Inbox(InboxConfig),
    Nats(NatsConfig),
}

/// `[sinks.NAME]`: where window emissions are delivered; `type` picks the
/// connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Webhook(WebhookConfig),
    Influxdb(Box<InfluxConfig>),
}

/// What building sources needs from the rest of the service.
pub struct BuildContext<'a> {
    pub data_dir: &'a Path,
    pub batch_rows: usize,
    /// The model to categorize chunks with ahead of the engine, if the
    /// transform allows it.
    pub ahead: Option<Arc<ModelHandle>>,
    /// Resolves a preset name (configured ones and the built-ins).
    pub preset: &'a dyn Fn(&str) -> finopsia_core::Result<Preset>,
    /// The `[limits]` every decoder applies.
    pub bounds: finopsia_core::limits::Bounds,
}

fn valid_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Config(format!(
            "{kind}.{name:?}: names use letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// Checks every source section (and that names are unique, counting the
/// default inbox's source name).
pub fn validate_sources(
    inbox: &InboxConfig,
    sources: &BTreeMap<String, SourceConfig>,
    preset: &dyn Fn(&str) -> finopsia_core::Result<Preset>,
) -> Result<()> {
    inbox.validate("inbox")?;
    if inbox.enabled {
        preset(&inbox.preset)?;
    }
    for (name, cfg) in sources {
        valid_name("sources", name)?;
        let section = format!("sources.{name}");
        if name == crate::rejects::SOURCE {
            return Err(Error::Config(format!(
                "{section}: the source name {name:?} is reserved for lines sinks refuse"
            )));
        }
        if inbox.enabled && *name == inbox.source {
            return Err(Error::Config(format!(
                "{section}: the default inbox already uses the source name {name:?} (set inbox.source or inbox.enabled = false)"
            )));
        }
        match cfg {
            SourceConfig::Inbox(c) => {
                c.validate(&section)?;
                if c.dir.is_none() {
                    return Err(Error::Config(format!(
                        "{section}.dir: an inbox source needs its directory"
                    )));
                }
                preset(&c.preset)?;
            }
            SourceConfig::Nats(c) => {
                c.validate(&section)?;
                preset(&c.preset)?;
            }
        }
    }
    Ok(())
}

pub fn validate_sinks(sinks: &BTreeMap<String, SinkConfig>) -> Result<()> {
    for (name, cfg) in sinks {
        valid_name("sinks", name)?;
        match cfg {
            SinkConfig::Webhook(c) => c.validate(&format!("sinks.{name}"))?,
            SinkConfig::Influxdb(c) => c.validate(&format!("sinks.{name}"))?,
        }
    }
    Ok(())
}

/// The default inbox's directory.
pub fn inbox_dir(data_dir: &Path, inbox: &InboxConfig) -> PathBuf {
    inbox.dir.clone().unwrap_or_else(|| data_dir.join("inbox"))
}

/// Builds the default inbox (if enabled) and every configured source.
pub fn build_sources(
    inbox: &InboxConfig,
    sources: &BTreeMap<String, SourceConfig>,
    ctx: &BuildContext<'_>,
) -> Result<Vec<Box<dyn StreamSource>>> {
    let mut out: Vec<Box<dyn StreamSource>> = Vec::new();
    let make_inbox = |name: &str, dir: &Path, c: &InboxConfig| -> Result<Box<dyn StreamSource>> {
        let s = InboxSource::new(
            name,
            dir,
            c,
            (ctx.preset)(&c.preset)?,
            ctx.bounds,
            ctx.batch_rows,
            ctx.ahead.clone(),
        )?;
        Ok(Box::new(s))
    };
    if inbox.enabled {
        out.push(make_inbox(
            &inbox.source,
            &inbox_dir(ctx.data_dir, inbox),
            inbox,
        )?);
    }
    for (name, cfg) in sources {
        match cfg {
            SourceConfig::Inbox(c) => {
                let dir = c.dir.clone().expect("validated");
                out.push(make_inbox(name, &dir, c)?);
            }
            SourceConfig::Nats(c) => out.push(Box::new(NatsSource::new(
                name,
                c,
                (ctx.preset)(&c.preset)?,
                ctx.bounds,
                ctx.ahead.clone(),
            ))),
        }
    }
    Ok(out)
}

/// Builds every configured sink.
pub fn build_sinks(
    sinks: &BTreeMap<String, SinkConfig>,
    ctx: &SinkContext,
) -> Result<Vec<Arc<dyn Sink>>> {
    let mut out: Vec<Arc<dyn Sink>> = Vec::new();
    for (name, cfg) in sinks {
        match cfg {
            SinkConfig::Webhook(c) => out.push(Arc::new(WebhookSink::new(name, c)?)),
            SinkConfig::Influxdb(c) => out.push(Arc::new(InfluxSink::new(name, c, ctx)?)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sections {
        #[serde(default)]
        sources: BTreeMap<String, SourceConfig>,
        #[serde(default)]
        sinks: BTreeMap<String, SinkConfig>,
    }

    fn parse(text: &str) -> std::result::Result<Sections, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_sections_parse_and_bad_ones_say_what_is_wrong() {
        let s = parse(
            "[sources.orders]\ntype = \"nats\"\nstream = \"ORDERS\"\nsubject = \"orders.>\"\n\
             [sinks.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n",
        )
        .unwrap();
        let SourceConfig::Nats(n) = &s.sources["orders"] else {
            panic!("nats")
        };
        assert_eq!(n.stream, "ORDERS");
        assert_eq!(n.batch, 1000, "defaults fill the rest");
        validate_sinks(&s.sinks).unwrap();
        let builtin = |name: &str| {
            Preset::builtin(name)
                .ok_or_else(|| finopsia_core::Error::Config(format!("unknown preset {name}")))
        };
        validate_sources(&InboxConfig::default(), &s.sources, &builtin).unwrap();

        let e = parse("[sources.x]\ntype = \"kafka\"\n").err().unwrap();
        assert!(e.contains("kafka") && e.contains("nats"), "{e}");
        let e = parse("[sources.x]\ntype = \"nats\"\nstreem = \"A\"\n")
            .err()
            .unwrap();
        assert!(e.contains("streem"), "{e}");
        let e = parse("[sources.x]\nstream = \"A\"\n").err().unwrap();
        assert!(e.contains("type"), "{e}");

        let s = parse("[sources.x]\ntype = \"nats\"\n").unwrap();
        let e = validate_sources(&InboxConfig::default(), &s.sources, &builtin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.x.stream"), "{e}");
        let s = parse("[sources.inbox]\ntype = \"nats\"\nstream = \"A\"\n").unwrap();
        let e = validate_sources(&InboxConfig::default(), &s.sources, &builtin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default inbox"), "{e}");
        let s = parse("[sinks.h]\ntype = \"webhook\"\nurl = \"ftp://x\"\n").unwrap();
        assert!(validate_sinks(&s.sinks)
            .unwrap_err()
            .to_string()
            .contains("sinks.h.url"));
    }
}

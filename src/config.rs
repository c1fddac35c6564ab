//! Service configuration: `finopsia.toml` plus `FINOPSIA__SECTION__KEY` env overrides.
//!
//! Every key has a default, so an empty file (or none) runs on embedded
//! defaults. Unknown keys are errors. See `finopsia.example.toml` for the
//! documented example, which a test parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow as error, Result};
use finopsia_connectors::inbox::InboxConfig;
use finopsia_connectors::registry::{self, SinkConfig, SourceConfig};
use finopsia_core::input::Preset;
use finopsia_core::limits::{Bounds, Limits};
use finopsia_engine::EngineConfig;
use finopsia_ops::{ForecastConfig, TrainConfig};
use finopsia_serve::HttpConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: tables, checkpoints, inbox (default `./data`).
    pub data_dir: PathBuf,
    /// Directory of the pipeline's SQL files; unset = the built-in queries
    /// (the repository's `queries/`, compiled in).
    pub queries_dir: Option<PathBuf>,
    pub engine: EngineConfig,
    /// What one input record may be (bytes, dates, amounts); breaches are
    /// quarantined with their reason.
    pub limits: Limits,
    /// The default source: a watched directory.
    pub inbox: InboxConfig,
    /// More streaming sources, by name (`type = "inbox"` or `"nats"`).
    pub sources: BTreeMap<String, SourceConfig>,
    /// Where window emissions are delivered, by name (`type = "webhook"`).
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Emissions a sink may be behind before ingestion waits for it.
    pub sink_queue: usize,
    /// Named input presets, usable with `--preset NAME` and `inbox.preset`.
    pub presets: BTreeMap<String, Preset>,
    pub log: LogConfig,
    pub train: TrainConfig,
    pub forecast: ForecastConfig,
    /// The REST API served by `finopsia run`.
    pub http: HttpConfig,
    /// Arrow Flight SQL served by `finopsia run`.
    pub flight: finopsia_serve::FlightConfig,
    /// Background jobs by name (`forecast_refresh`): schedule, time zone,
    /// timeout, retries, missed-run policy.
    pub jobs: BTreeMap<String, finopsia_ops::jobs::JobConfig>,
    /// The `store_maintenance` job: compaction file size, vacuum retention.
    pub maintenance: finopsia_ops::maintenance::MaintenanceConfig,
    /// Alert rules (`[alerts.rules.NAME]`) and their defaults.
    pub alerts: finopsia_ops::alerts::AlertsConfig,
    /// Where alert notifications go, by name (`type = "webhook"` or `"slack"`).
    pub channels: BTreeMap<String, finopsia_connectors::notify::ChannelConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            queries_dir: None,
            engine: EngineConfig::default(),
            limits: Limits::default(),
            inbox: InboxConfig::default(),
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            sink_queue: 10_000,
            presets: BTreeMap::new(),
            log: LogConfig::default(),
            train: TrainConfig::default(),
            forecast: ForecastConfig::default(),
            http: HttpConfig::default(),
            flight: finopsia_serve::FlightConfig::default(),
            jobs: BTreeMap::new(),
            maintenance: Default::default(),
            alerts: Default::default(),
            channels: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `finopsia=debug` (RUST_LOG wins).
    pub level: String,
    /// Also log each span's end (a micro-batch, its stages, a job run, an
    /// HTTP request, an alert rule) with its busy and idle time.
    pub span_timings: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
            span_timings: false,
        }
    }
}

impl Config {
    /// Loads `path` (if given) and applies `FINOPSIA__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| error!("configuration {}: {e}", p.display()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| error!("configuration {}: {e}", p.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut value, std::env::vars())?;
        let cfg: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| error!("configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.engine.validate()?;
        self.limits.validate(self.engine.batch_rows)?;
        if self.train.iterations == 0 {
            return Err(error!("configuration: train.iterations must be at least 1"));
        }
        self.forecast.validate()?;
        self.http.validate()?;
        self.flight.validate()?;
        finopsia_ops::jobs::validate(&self.jobs)?;
        self.maintenance.validate()?;
        finopsia_connectors::notify::validate(&self.channels)?;
        self.alerts
            .validate(&self.channels.keys().cloned().collect())?;
        for (name, preset) in &self.presets {
            preset.validate(name)?;
        }
        let preset = |name: &str| {
            self.preset(name)
                .map_err(|e| finopsia_core::Error::Config(e.to_string()))
        };
        registry::validate_sources(&self.inbox, &self.sources, &preset)?;
        registry::validate_sinks(&self.sinks)?;
        if self.sink_queue == 0 {
            return Err(error!("configuration: sink_queue must be at least 1"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(error!(
                "configuration: log.format = {:?}: use text or json",
                self.log.format
            ));
        }
        Ok(())
    }

    /// A preset by name: configured ones first, then the built-ins.
    pub fn preset(&self, name: &str) -> Result<Preset> {
        if let Some(p) = self.presets.get(name) {
            return Ok(p.clone());
        }
        Preset::builtin(name).ok_or_else(|| {
            let mut names: Vec<&str> = Preset::BUILTIN_NAMES.to_vec();
            names.extend(self.presets.keys().map(String::as_str));
            error!("unknown preset {name:?} (known: {})", names.join(", "))
        })
    }

    /// The validated `[limits]`.
    pub fn bounds(&self) -> Result<Bounds> {
        Ok(self.limits.bounds()?)
    }

    pub fn inbox_dir(&self) -> PathBuf {
        registry::inbox_dir(&self.data_dir, &self.inbox)
    }
}

/// `FINOPSIA__ENGINE__BATCH_ROWS=1000` sets `engine.batch_rows`. Values are
/// parsed as TOML when they parse (numbers, booleans), else taken as strings.
fn apply_env(table: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) -> Result<()> {
    for (key, val) in vars {
        let Some(rest) = key.strip_prefix("FINOPSIA__") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let value = format!("v = {val}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(val));
        let mut cur = &mut *table;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur.insert(part.clone(), value.clone());
            } else {
                let entry = cur
                    .entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                cur = entry
                    .as_table_mut()
                    .ok_or_else(|| error!("configuration: {key}: {part} is not a section"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("finopsia.example.toml");
        let cfg = Config::load(Some(&path)).unwrap();
        assert!(cfg.presets.contains_key("mybank"));
        assert_eq!(cfg.engine.allowed_lateness().as_secs(), 86_400);
        assert_eq!(
            cfg.limits,
            Limits::default(),
            "the example shows the defaults"
        );
    }

    #[test]
    fn limits_without_headroom_for_a_batch_are_refused() {
        let mut cfg = Config::default();
        cfg.limits.max_amount_minor = i64::MAX / 1000;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("engine.batch_rows"), "{e}");
        cfg.engine.batch_rows = 1000;
        cfg.validate().unwrap();
    }

    #[test]
    fn example_sources_and_sinks_parse_and_validate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("finopsia.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# --- example: sources and sinks").unwrap();
        let end = text.find("# --- end").unwrap();
        let block: String = text[start..end]
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg: Config = toml::from_str(&block).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.sources.len(), 2);
        assert_eq!(cfg.sinks.len(), 2);
    }

    #[test]
    fn example_alerts_and_channels_parse_and_validate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("finopsia.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# --- example: alerts").unwrap();
        let end = start + text[start..].find("# --- end alerts").unwrap();
        let block: String = text[start..end]
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg: Config = toml::from_str(&block).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.alerts.rules.len(), 1);
        assert_eq!(cfg.channels.len(), 3);
    }

    /// The compose file configures the service through FINOPSIA__ variables
    /// only: they must make a valid configuration.
    #[test]
    fn compose_environment_is_a_valid_configuration() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
        let text = std::fs::read_to_string(path).unwrap();
        let vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .filter(|(k, _)| k.starts_with("FINOPSIA__"))
            .map(|(k, v)| {
                let v = v.trim();
                let v = v
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                    .unwrap_or(v);
                // ${VAR:?message} is filled in by docker-compose.
                let v = if v.starts_with("${") {
                    "from-the-environment"
                } else {
                    v
                };
                (k.to_string(), v.to_string())
            })
            .collect();
        assert!(vars.len() >= 10, "{vars:?}");
        let mut table = toml::Table::new();
        apply_env(&mut table, vars.into_iter()).unwrap();
        let cfg: Config = toml::Value::Table(table).try_into().unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.sinks.len(), 1);
        assert_eq!(cfg.sources.len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let bad: std::result::Result<Config, _> = toml::from_str("[engine]\nbatch_row = 5\n");
        assert!(bad.is_err());
        let cfg: Config = toml::from_str("[engine]\nallowed_lateness = \"soon\"\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_lateness"));
        let cfg: Config = toml::from_str("[inbox]\npreset = \"nope\"\n").unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown preset"));
    }

    #[test]
    fn env_overrides() {
        let mut t = toml::Table::new();
        let vars = vec![
            (
                "FINOPSIA__ENGINE__BATCH_ROWS".to_string(),
                "1000".to_string(),
            ),
            ("FINOPSIA__DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "FINOPSIA__ENGINE__ALLOWED_LATENESS".to_string(),
                "0".to_string(),
            ),
            ("OTHER".to_string(), "1".to_string()),
        ];
        apply_env(&mut t, vars.into_iter()).unwrap();
        let cfg: Config = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(cfg.engine.batch_rows, 1000);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.engine.allowed_lateness, "0");
        cfg.validate().unwrap();
    }
}

//! The model registry: versioned categorization models in the data directory.
//!
//! ```text
//! <data_dir>/models/<version>/model.json      CatBoost JSON export
//! <data_dir>/models/<version>/metadata.json   version, classes, features,
//!                                             holdout accuracy, per-class F1,
//!                                             training-data fingerprint
//! <data_dir>/models/CURRENT                   the registered version's name
//! ```
//!
//! `CURRENT` is replaced atomically (write + rename), so a reader sees the
//! old or the new version, never half of one. Without `CURRENT` the model
//! bundled in the binary (`udfs/models/default/`) is used.

use std::path::{Path, PathBuf};

use finopsia_udf_core::categorizer::Categorizer;
use serde_json::Value;

/// The default model shipped in the repository (trained on the public sample).
pub const BUNDLED_MODEL: &str = include_str!("../models/default/model.json");
pub const BUNDLED_METADATA: &str = include_str!("../models/default/metadata.json");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model {version}: {message}")]
    Model { version: String, message: String },
    #[error("invalid model version name {0:?} (letters, digits, '.', '-', '_')")]
    BadVersion(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A loaded, ready-to-use model.
#[derive(Debug)]
pub struct LoadedModel {
    pub version: String,
    pub categorizer: Categorizer,
    pub metadata: Value,
}

impl LoadedModel {
    pub fn from_texts(model: &str, metadata: &str) -> Result<LoadedModel, Error> {
        let metadata: Value = serde_json::from_str(metadata).map_err(|e| Error::Model {
            version: "?".into(),
            message: format!("metadata.json: {e}"),
        })?;
        let version = metadata
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Model {
                version: "?".into(),
                message: "metadata.json has no version".into(),
            })?
            .to_string();
        let categorizer = Categorizer::from_json(model).map_err(|e| Error::Model {
            version: version.clone(),
            message: e.to_string(),
        })?;
        Ok(LoadedModel {
            version,
            categorizer,
            metadata,
        })
    }

    /// The model compiled into the binary.
    pub fn bundled() -> LoadedModel {
        Self::from_texts(BUNDLED_MODEL, BUNDLED_METADATA).expect("the bundled model loads")
    }
}

pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 100
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The registry directory `<data_dir>/models`.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(models_dir: impl Into<PathBuf>) -> Registry {
        Registry {
            dir: models_dir.into(),
        }
    }

    pub fn for_data_dir(data_dir: &Path) -> Registry {
        Self::new(data_dir.join("models"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }

    /// The registered version, if any.
    pub fn current(&self) -> Result<Option<String>, Error> {
        let path = self.dir.join("CURRENT");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v = text.trim().to_string();
                if !valid_version(&v) {
                    return Err(Error::BadVersion(v));
                }
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Loads one stored version.
    pub fn load(&self, version: &str) -> Result<LoadedModel, Error> {
        if !valid_version(version) {
            return Err(Error::BadVersion(version.into()));
        }
        let dir = self.version_dir(version);
        let model_path = dir.join("model.json");
        let meta_path = dir.join("metadata.json");
        let model = std::fs::read_to_string(&model_path).map_err(io(&model_path))?;
        let meta = std::fs::read_to_string(&meta_path).map_err(io(&meta_path))?;
        let loaded = LoadedModel::from_texts(&model, &meta)?;
        if loaded.version != version {
            return Err(Error::Model {
                version: version.into(),
                message: format!(
                    "metadata.json says version {:?}, directory is {version:?}",
                    loaded.version
                ),
            });
        }
        Ok(loaded)
    }

    /// The model in use: the registered version, else the bundled one.
    pub fn load_current(&self) -> Result<LoadedModel, Error> {
        match self.current()? {
            Some(v) => self.load(&v),
            None => Ok(LoadedModel::bundled()),
        }
    }

    /// Makes a stored version the current one (after checking it loads).
    pub fn register(&self, version: &str) -> Result<LoadedModel, Error> {
        let loaded = self.load(version)?;
        let tmp = self.dir.join(".CURRENT.tmp");
        std::fs::write(&tmp, format!("{version}\n")).map_err(io(&tmp))?;
        let path = self.dir.join("CURRENT");
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(loaded)
    }

    /// Stored versions with their metadata, oldest first (by name: versions
    /// made by `finopsia train` start with a UTC timestamp).
    pub fn list(&self) -> Result<Vec<(String, Value)>, Error> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.path().join("metadata.json");
            if !valid_version(&name) || !meta.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&meta).map_err(io(&meta))?;
            let value = serde_json::from_str(&text).unwrap_or(Value::Null);
            out.push((name, value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

//! API tokens with roles: created, listed and revoked by the CLI, verified
//! by the servers.
//!
//! A token is `fin_` followed by 43 characters (32 random bytes from the
//! operating system, base64url). It is printed once, when it is created, and
//! never stored or logged: the store keeps its SHA-256 hash, and a presented
//! token is hashed and compared with every stored hash in constant time.
//!
//! What is committed where: `<data_dir>/state/tokens.json` holds every token
//! ever created (id, name, role, hash, created and revoked times). A change
//! takes `<data_dir>/state/tokens.lock` (an exclusive `flock`, so two CLI
//! calls never lose each other's change), reads the file, writes the whole new
//! list to a temporary file, fsyncs it, renames it over the old one and
//! fsyncs the directory: a crash (`kill -9` included) leaves either the old
//! or the new list, whole. A running server notices the change (the file's
//! length, modification time or inode differ) at the next request, so a
//! revoked token is refused from then on without a restart.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// What a token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read every table, aggregate, forecast and model.
    Read,
    /// Read, plus ingest records, correct categories and re-submit
    /// quarantined records.
    Ingest,
    /// Everything, including registering models.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "ingest" => Ok(Role::Ingest),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Config(format!(
                "unknown role {other:?}: use read, ingest or admin"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }
}

/// One token as stored (its hash, never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Stable id, used to revoke it (`tok_` + 12 hex digits).
    pub id: String,
    /// A name to tell tokens apart.
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, once revoked.
    pub revoked_at: Option<String>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// The file's identity, to notice a change made by another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp {
    len: u64,
    modified_ns: i128,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        inode: m.ino(),
    })
}

/// The token store of one data directory.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<(Option<Stamp>, Vec<TokenRecord>)>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("random bytes: {e}")))?;
    Ok(b)
}

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl TokenStore {
    pub fn open(data_dir: &Path) -> TokenStore {
        TokenStore {
            path: data_dir.join("state").join("tokens.json"),
            cache: Mutex::new((None, Vec::new())),
        }
    }

    fn read_file(&self) -> Result<Vec<TokenRecord>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Config(format!("{}: not a token list: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io(self.path.clone(), e)),
        }
    }

    /// Applies `change` to the list under the store's lock and writes it
    /// back atomically (see the module docs).
    fn update<T>(&self, change: impl FnOnce(&mut Vec<TokenRecord>) -> Result<T>) -> Result<T> {
        let dir = self.path.parent().expect("state dir");
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let lock_path = dir.join("tokens.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::Io(lock_path.clone(), e))?;
        lock.lock().map_err(|e| Error::Io(lock_path.clone(), e))?;
        let mut list = self.read_file()?;
        let out = change(&mut list)?;
        let text = serde_json::to_vec_pretty(&list).map_err(|e| Error::Internal(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = File::create(&tmp).map_err(|e| Error::Io(tmp.clone(), e))?;
            f.write_all(&text).map_err(|e| Error::Io(tmp.clone(), e))?;
            f.sync_all().map_err(|e| Error::Io(tmp.clone(), e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::Io(self.path.clone(), e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        drop(lock);
        Ok(out)
    }

    /// Creates a token; returns its record and the token itself (shown once).
    pub fn create(&self, role: Role, name: Option<&str>) -> Result<(TokenRecord, String)> {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let token = format!("fin_{secret}");
        let id_bytes = random_bytes::<6>()?;
        let id = format!(
            "tok_{}",
            id_bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(role.as_str())
            .to_string();
        if name.chars().any(char::is_control) || name.len() > 200 {
            return Err(Error::Config(
                "a token name must be at most 200 bytes without control characters".into(),
            ));
        }
        let record = TokenRecord {
            id,
            name,
            role,
            hash: hash_token(&token),
            created_at: now(),
            revoked_at: None,
        };
        let r = record.clone();
        self.update(move |list| {
            list.push(r);
            Ok(())
        })?;
        Ok((record, token))
    }

    /// Every token ever created, revoked ones included.
    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        self.read_file()
    }

    /// Revokes a token by id (revoking twice keeps the first time).
    pub fn revoke(&self, id: &str) -> Result<TokenRecord> {
        self.update(|list| {
            let Some(t) = list.iter_mut().find(|t| t.id == id) else {
                return Err(Error::NotFound(format!("no token with id {id:?}")));
            };
            if t.revoked_at.is_none() {
                t.revoked_at = Some(now());
            }
            Ok(t.clone())
        })
    }

    /// The cached list, re-read when the file changed since the last call.
    fn fresh(&self) -> Result<std::sync::MutexGuard<'_, (Option<Stamp>, Vec<TokenRecord>)>> {
        let mut cache = self.cache.lock().expect("token cache");
        let now_stamp = stamp(&self.path);
        if cache.0.is_none() || cache.0 != now_stamp {
            let list = self.read_file()?;
            *cache = (now_stamp, list);
        }
        Ok(cache)
    }

    /// The principal of token `id` while it is not revoked (a dashboard
    /// session made with a token lasts only as long as the token).
    pub fn active(&self, id: &str) -> Result<Option<Principal>> {
        let cache = self.fresh()?;
        Ok(cache
            .1
            .iter()
            .find(|t| t.id == id && t.revoked_at.is_none())
            .map(|t| Principal {
                id: t.id.clone(),
                name: t.name.clone(),
                role: t.role,
            }))
    }

    /// The principal of a presented token, if it is known and not revoked.
    /// Re-reads the file when it changed since the last call.
    pub fn verify(&self, token: &str) -> Result<Option<Principal>> {
        let cache = self.fresh()?;
        let presented = hash_token(token);
        let mut found: Option<&TokenRecord> = None;
        // Compare with every stored hash, in constant time each.
        for t in &cache.1 {
            if bool::from(t.hash.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(t);
            }
        }
        Ok(found.filter(|t| t.revoked_at.is_none()).map(|t| Principal {
            id: t.id.clone(),
            name: t.name.clone(),
            role: t.role,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        let (rec, token) = store.create(Role::Ingest, Some("ci")).unwrap();
        assert!(token.starts_with("fin_") && token.len() == 47, "{token}");
        assert_eq!(rec.hash, hash_token(&token));
        let text = std::fs::read_to_string(dir.path().join("state/tokens.json")).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let p = store.verify(&token).unwrap().unwrap();
        assert_eq!((p.id.as_str(), p.role), (rec.id.as_str(), Role::Ingest));
        assert!(store.verify("fin_nope").unwrap().is_none());
        assert_eq!(store.active(&rec.id).unwrap(), Some(p.clone()));
        // Another process (a second store on the same directory) revokes it:
        // the first one notices without a restart.
        TokenStore::open(dir.path()).revoke(&rec.id).unwrap();
        assert!(store.verify(&token).unwrap().is_none());
        assert!(store.active(&rec.id).unwrap().is_none());
        assert!(matches!(store.revoke("tok_x"), Err(Error::NotFound(_))));
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin > Role::Ingest && Role::Ingest > Role::Read);
        assert_eq!(Role::parse("INGEST").unwrap(), Role::Ingest);
        assert!(Role::parse("root").is_err());
    }
}

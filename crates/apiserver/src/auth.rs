//! Bearer-token authentication. Tokens live in `DATA_DIR/tokens.json`; the admin token is
//! made on first start and node tokens are added by `weft token create`. The file is
//! re-read when it changes, so a new node token works without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub token: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

pub struct Authenticator {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, HashMap<String, User>)>,
}

pub const ADMIN_USER: &str = "admin";

fn new_token() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 48)
}

fn read_file(path: &Path) -> Result<TokenFile> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_file(path: &Path, file: &TokenFile) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(file)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Returns the token of `user`, adding one to the data dir's token file if it has none.
pub fn ensure_token(data_dir: &Path, user: &str, groups: &[&str]) -> Result<String> {
    let path = data_dir.join("tokens.json");
    let mut file = read_file(&path)?;
    if let Some(existing) = file.tokens.iter().find(|t| t.user == user) {
        return Ok(existing.token.clone());
    }
    let token = new_token();
    file.tokens.push(TokenEntry {
        token: token.clone(),
        user: user.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    });
    write_file(&path, &file)?;
    Ok(token)
}

impl Authenticator {
    pub fn new(data_dir: &Path) -> Self {
        Authenticator {
            path: data_dir.join("tokens.json"),
            cache: Mutex::new((None, HashMap::new())),
        }
    }

    /// The token of `user` (the API server uses a node's own token to reach its agent).
    pub fn token_of(&self, user: &str) -> Option<String> {
        read_file(&self.path)
            .ok()?
            .tokens
            .into_iter()
            .find(|t| t.user == user)
            .map(|t| t.token)
    }

    /// The user a bearer token belongs to, re-reading the token file if it changed.
    pub fn authenticate(&self, token: &str) -> Option<User> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != mtime || cache.1.is_empty() {
            match read_file(&self.path) {
                Ok(file) => {
                    cache.1 = file
                        .tokens
                        .into_iter()
                        .map(|t| {
                            (
                                t.token,
                                User {
                                    name: t.user,
                                    groups: t.groups,
                                },
                            )
                        })
                        .collect();
                    cache.0 = mtime;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "token file unreadable; keeping the tokens already loaded")
                }
            }
        }
        cache.1.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_new_ones_are_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let admin = ensure_token(dir.path(), ADMIN_USER, &["system:masters"]).unwrap();
        assert_eq!(admin, ensure_token(dir.path(), ADMIN_USER, &[]).unwrap());
        let auth = Authenticator::new(dir.path());
        assert_eq!(auth.authenticate(&admin).unwrap().name, "admin");
        assert!(auth.authenticate("wrong").is_none());
        // Make sure the modification time differs on coarse-grained filesystems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let node = ensure_token(dir.path(), "system:node:n1", &["system:nodes"]).unwrap();
        let file = dir.path().join("tokens.json");
        let f = std::fs::File::options().append(true).open(&file).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(auth.authenticate(&node).unwrap().name, "system:node:n1");
    }
}

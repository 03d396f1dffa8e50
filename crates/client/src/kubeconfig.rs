//! The standard kubeconfig file: clusters, users, contexts and the current context.
//!
//! Reading is lenient about fields Weft does not use (kubectl writes `preferences`,
//! `extensions`, ...), so a file kubectl wrote loads unchanged; what Weft needs is checked
//! when a context is resolved into a [`ClientConfig`], and every error names the file and
//! the field. Writing produces the same layout kubectl does, mode 0600 because the file
//! holds a bearer token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};

/// Where the API server writes its admin kubeconfig; the last place `resolve` looks.
pub const ADMIN_KUBECONFIG: &str = "/var/lib/weft/admin.kubeconfig";

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("reading kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde_yaml's message carries the line and column.
    #[error("parsing kubeconfig {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("writing kubeconfig {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serializing kubeconfig: {0}")]
    Serialize(#[source] serde_yaml::Error),
    /// A field Weft needs is missing or unusable; `field` is its path in the file.
    #[error("kubeconfig {path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
    #[error("no kubeconfig found: tried {tried} (pass --kubeconfig or set $KUBECONFIG)")]
    NotFound { tried: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    // Field order is alphabetical, as kubectl writes its files.
    #[serde(rename = "apiVersion", default = "v1")]
    pub api_version: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default"
    )]
    pub current_context: String,
    #[serde(default = "config_kind")]
    pub kind: String,
    #[serde(default = "empty_map", deserialize_with = "null_as_default")]
    pub preferences: serde_yaml::Mapping,
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    /// The file this was loaded from: relative `certificate-authority` and `tokenFile`
    /// paths are resolved against its directory, as kubectl does, and errors name it.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    #[serde(default)]
    pub cluster: Cluster,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Base64 of the PEM CA bundle.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// Path of a PEM CA bundle.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    #[serde(default)]
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    #[serde(default)]
    pub context: Context,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Kept only to say clearly that client certificates are not supported, rather than
    /// failing later with an authentication error.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
}

/// Everything a [`crate::Client`] needs, resolved from one kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub server: String,
    /// Bearer token; `None` sends no `Authorization` header (an `--insecure` server).
    pub token: Option<String>,
    /// PEM CA bundle to trust; the only roots trusted.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// The context's namespace, or `default`.
    pub namespace: String,
}

fn v1() -> String {
    "v1".into()
}
fn config_kind() -> String {
    "Config".into()
}
fn empty_map() -> serde_yaml::Mapping {
    serde_yaml::Mapping::new()
}

/// kubectl writes `clusters: null` for an empty list; treat null as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Kubeconfig {
    /// A kubeconfig with one cluster, user and context, all named `context_name`, and that
    /// context current: what the API server writes for its admin.
    pub fn new_single(
        server: &str,
        ca_pem: Option<&[u8]>,
        token: &str,
        context_name: &str,
    ) -> Self {
        let engine = base64::engine::general_purpose::STANDARD;
        Kubeconfig {
            api_version: v1(),
            kind: config_kind(),
            preferences: empty_map(),
            clusters: vec![NamedCluster {
                name: context_name.to_string(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: ca_pem.map(|pem| engine.encode(pem)),
                    ..Default::default()
                },
            }],
            users: vec![NamedUser {
                name: context_name.to_string(),
                user: User {
                    token: Some(token.to_string()),
                    ..Default::default()
                },
            }],
            contexts: vec![NamedContext {
                name: context_name.to_string(),
                context: Context {
                    cluster: context_name.to_string(),
                    user: context_name.to_string(),
                    namespace: None,
                },
            }],
            current_context: context_name.to_string(),
            path: None,
        }
    }

    /// Parses kubeconfig YAML; `path` is only used in error messages and to resolve
    /// relative file references.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, KubeconfigError> {
        let mut kc: Kubeconfig =
            serde_yaml::from_str(text).map_err(|source| KubeconfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        kc.path = Some(path.to_path_buf());
        Ok(kc)
    }

    pub fn load(path: &Path) -> Result<Self, KubeconfigError> {
        let text = fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Finds the kubeconfig to use: the explicit `--kubeconfig`, then `$KUBECONFIG` (the
    /// first existing entry of its colon-separated list), then `~/.kube/config` if it
    /// exists, then the API server's admin kubeconfig.
    pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, KubeconfigError> {
        resolve_with(
            explicit,
            std::env::var_os("KUBECONFIG").as_deref(),
            std::env::var_os("HOME").as_deref(),
            Path::new(ADMIN_KUBECONFIG),
        )
    }

    /// `resolve` then `load`.
    pub fn load_default(explicit: Option<&Path>) -> Result<Self, KubeconfigError> {
        Self::load(&Self::resolve(explicit)?)
    }

    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        serde_yaml::to_string(self).map_err(KubeconfigError::Serialize)
    }

    /// Writes the file with mode 0600, creating its directory. The content is written to a
    /// temporary file in the same directory and renamed over the target, so a reader never
    /// sees half a file and an existing file's looser mode is not inherited.
    pub fn write_to(&self, path: &Path) -> Result<(), KubeconfigError> {
        let werr = |source| KubeconfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = self.to_yaml()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(werr)?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            file_name.as_deref().unwrap_or("kubeconfig"),
            std::process::id()
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // The mode above is filtered by the umask and ignored for an existing file.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(werr)
    }

    fn display_path(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<in memory>".to_string())
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> KubeconfigError {
        KubeconfigError::Invalid {
            path: self.display_path(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A referenced file path, relative to the kubeconfig's directory when relative.
    fn resolve_file(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        match (&self.path, p.is_relative()) {
            (Some(base), true) => base.parent().unwrap_or(Path::new(".")).join(p),
            _ => p.to_path_buf(),
        }
    }

    /// Resolves `context` (or the current context) into what a client needs, reading any
    /// referenced CA or token file.
    pub fn client_config(&self, context: Option<&str>) -> Result<ClientConfig, KubeconfigError> {
        let ctx_name = match context {
            Some(c) => c,
            None if self.current_context.is_empty() => {
                return Err(self.invalid("current-context", "not set and no --context given"))
            }
            None => self.current_context.as_str(),
        };
        let ctx = &self
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .ok_or_else(|| {
                let from = if context.is_some() {
                    "--context"
                } else {
                    "current-context"
                };
                self.invalid(
                    "contexts",
                    format!("no context named {ctx_name:?} (from {from})"),
                )
            })?
            .context;
        let cfield = format!("clusters[name={:?}]", ctx.cluster);
        let cluster = &self
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .ok_or_else(|| {
                self.invalid(
                    "clusters",
                    format!(
                        "no cluster named {:?} (used by context {ctx_name:?})",
                        ctx.cluster
                    ),
                )
            })?
            .cluster;
        if cluster.server.is_empty() {
            return Err(self.invalid(format!("{cfield}.cluster.server"), "missing"));
        }
        if !(cluster.server.starts_with("https://") || cluster.server.starts_with("http://")) {
            return Err(self.invalid(
                format!("{cfield}.cluster.server"),
                format!("{:?} is not an http:// or https:// URL", cluster.server),
            ));
        }
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) if !data.is_empty() => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        self.invalid(
                            format!("{cfield}.cluster.certificate-authority-data"),
                            format!("invalid base64: {e}"),
                        )
                    })?,
            ),
            (_, Some(file)) if !file.is_empty() => {
                let p = self.resolve_file(file);
                Some(fs::read(&p).map_err(|e| {
                    self.invalid(
                        format!("{cfield}.cluster.certificate-authority"),
                        format!("reading {}: {e}", p.display()),
                    )
                })?)
            }
            _ => None,
        };
        let ufield = format!("users[name={:?}]", ctx.user);
        let token = if ctx.user.is_empty() {
            None
        } else {
            let user = &self
                .users
                .iter()
                .find(|u| u.name == ctx.user)
                .ok_or_else(|| {
                    self.invalid(
                        "users",
                        format!(
                            "no user named {:?} (used by context {ctx_name:?})",
                            ctx.user
                        ),
                    )
                })?
                .user;
            match (&user.token, &user.token_file) {
                (Some(t), _) if !t.is_empty() => Some(t.clone()),
                (_, Some(file)) if !file.is_empty() => {
                    let p = self.resolve_file(file);
                    let t = fs::read_to_string(&p).map_err(|e| {
                        self.invalid(
                            format!("{ufield}.user.tokenFile"),
                            format!("reading {}: {e}", p.display()),
                        )
                    })?;
                    Some(t.trim().to_string())
                }
                _ if user.client_certificate_data.is_some() || user.client_certificate.is_some() => {
                    return Err(self.invalid(
                        format!("{ufield}.user"),
                        "client certificate authentication is not supported; use token or tokenFile",
                    ))
                }
                _ => None,
            }
        };
        Ok(ClientConfig {
            server: cluster.server.trim_end_matches('/').to_string(),
            token,
            ca_pem,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            namespace: ctx
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
        })
    }
}

/// `resolve` with its environment passed in, so tests need not touch the process's.
fn resolve_with(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
    admin: &Path,
) -> Result<PathBuf, KubeconfigError> {
    if let Some(p) = explicit {
        // An explicit path is used even if missing, so the error names it.
        return Ok(p.to_path_buf());
    }
    let mut tried = Vec::new();
    if let Some(env) = kubeconfig_env.filter(|e| !e.is_empty()) {
        let entries: Vec<PathBuf> = std::env::split_paths(env)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(p) = entries.iter().find(|p| p.exists()) {
            return Ok(p.clone());
        }
        if let Some(first) = entries.first() {
            // $KUBECONFIG is as explicit as the flag: report its file, not a fallback.
            return Ok(first.clone());
        }
    }
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        let p = Path::new(home).join(".kube").join("config");
        if p.exists() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    if admin.exists() {
        return Ok(admin.to_path_buf());
    }
    tried.push(admin.display().to_string());
    Err(KubeconfigError::NotFound {
        tried: tried.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl config set-cluster/set-credentials/set-context/use-context` writes.
    const KUBECTL_FILE: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: weft
- cluster:
    certificate-authority: ca.crt
    server: https://10.0.0.1:6443
  name: other
contexts:
- context:
    cluster: weft
    namespace: shop
    user: admin
  name: admin@weft
- context:
    cluster: other
    user: file-user
  name: other
current-context: admin@weft
kind: Config
preferences: {}
users:
- name: admin
  user:
    token: s3cret
- name: file-user
  user:
    tokenFile: token
";

    const CA_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn parses_kubectl_file() {
        let kc = Kubeconfig::from_yaml(KUBECTL_FILE, Path::new("/x/config")).unwrap();
        let cfg = kc.client_config(None).unwrap();
        assert_eq!(
            cfg,
            ClientConfig {
                server: "https://127.0.0.1:6443".into(),
                token: Some("s3cret".into()),
                ca_pem: Some(CA_PEM.to_vec()),
                insecure_skip_tls_verify: false,
                namespace: "shop".into(),
            }
        );
    }

    #[test]
    fn relative_files_resolve_against_the_kubeconfig_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ca.crt"), CA_PEM).unwrap();
        fs::write(dir.path().join("token"), "tok\n").unwrap();
        let path = dir.path().join("config");
        fs::write(&path, KUBECTL_FILE).unwrap();
        let kc = Kubeconfig::load(&path).unwrap();
        let cfg = kc.client_config(Some("other")).unwrap();
        assert_eq!(cfg.ca_pem.as_deref(), Some(CA_PEM));
        assert_eq!(cfg.token.as_deref(), Some("tok"));
        assert_eq!(cfg.namespace, "default");
    }

    #[test]
    fn round_trip_matches_kubectl_layout() {
        let kc = Kubeconfig::new_single("https://127.0.0.1:6443", Some(CA_PEM), "s3cret", "weft");
        let yaml = kc.to_yaml().unwrap();
        assert_eq!(
            yaml,
            "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: weft
contexts:
- context:
    cluster: weft
    user: weft
  name: weft
current-context: weft
kind: Config
preferences: {}
users:
- name: weft
  user:
    token: s3cret
"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.kubeconfig");
        kc.write_to(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Kubeconfig::load(&path).unwrap();
        assert_eq!(back.path.as_deref(), Some(path.as_path()));
        assert_eq!(Kubeconfig { path: None, ..back }, kc);
        // Overwriting an existing, world-readable file tightens its mode.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        kc.write_to(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn errors_name_file_and_field() {
        let p = Path::new("/etc/kc");
        let err = Kubeconfig::from_yaml("clusters: [\n", p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("parsing kubeconfig /etc/kc: "), "{msg}");
        assert!(msg.contains("line"), "{msg}");

        let kc = Kubeconfig::from_yaml(
            "clusters:\n- name: c\n  cluster: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers: null\n",
            p,
        )
        .unwrap();
        assert_eq!(
            kc.client_config(None).unwrap_err().to_string(),
            "kubeconfig /etc/kc: clusters[name=\"c\"].cluster.server: missing"
        );
        assert_eq!(
            kc.client_config(Some("nope")).unwrap_err().to_string(),
            "kubeconfig /etc/kc: contexts: no context named \"nope\" (from --context)"
        );
        let kc = Kubeconfig::from_yaml(
            "clusters:\n- name: c\n  cluster: {server: 'https://a', certificate-authority-data: '!!'}\ncontexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
            p,
        )
        .unwrap();
        let msg = kc.client_config(None).unwrap_err().to_string();
        assert!(
            msg.starts_with("kubeconfig /etc/kc: clusters[name=\"c\"].cluster.certificate-authority-data: invalid base64"),
            "{msg}"
        );
        let kc = Kubeconfig::from_yaml("current-context: ''\n", p).unwrap();
        assert_eq!(
            kc.client_config(None).unwrap_err().to_string(),
            "kubeconfig /etc/kc: current-context: not set and no --context given"
        );
    }

    #[test]
    fn resolve_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let admin = dir.path().join("admin.kubeconfig");
        let explicit = Path::new("/explicit");
        // Explicit wins, even when missing.
        assert_eq!(
            resolve_with(Some(explicit), None, None, &admin).unwrap(),
            explicit
        );
        // Nothing exists: the error lists what was tried.
        let err = resolve_with(None, None, Some(home.as_os_str()), &admin).unwrap_err();
        assert!(err.to_string().contains("admin.kubeconfig"), "{err}");
        // Admin kubeconfig is the last resort.
        fs::write(&admin, "").unwrap();
        assert_eq!(
            resolve_with(None, None, Some(home.as_os_str()), &admin).unwrap(),
            admin
        );
        // ~/.kube/config beats it.
        fs::create_dir_all(home.join(".kube")).unwrap();
        fs::write(home.join(".kube/config"), "").unwrap();
        assert_eq!(
            resolve_with(None, None, Some(home.as_os_str()), &admin).unwrap(),
            home.join(".kube/config")
        );
        // $KUBECONFIG beats both; its first existing entry is taken.
        let env = format!("/missing:{}", admin.display());
        assert_eq!(
            resolve_with(
                None,
                Some(std::ffi::OsStr::new(&env)),
                Some(home.as_os_str()),
                &admin
            )
            .unwrap(),
            admin
        );
    }
}

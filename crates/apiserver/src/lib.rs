//! The Weft API server: Kubernetes REST paths and watches over an embedded (redb) or etcd
//! store, with admission (defaulting, validation, ClusterIP / NodePort / podCIDR allocation),
//! bearer-token authentication over TLS, and the built-in controllers.

pub mod admission;
pub mod alloc;
pub mod auth;
pub mod bootstrap;
pub mod controllers;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod keys;
pub mod logs;
pub mod pki;
pub mod registry;
pub mod rest;
pub mod server;
pub mod table;
pub mod watch_cache;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use weft_store::{EtcdStore, RedbStore, Store};

use crate::alloc::Ranges;
use crate::registry::Registry;
use crate::rest::AppState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded default: one redb file in the data dir.
    Redb,
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// The address written into kubeconfigs and the `kubernetes` Endpoints.
    pub advertise_address: Option<IpAddr>,
    pub ranges: Ranges,
    pub insecure: bool,
    pub store: StoreBackend,
    pub tls_sans: Vec<String>,
    pub max_body: usize,
    pub controllers: controllers::Settings,
    /// Events kept in memory per resource for watches that start behind the present.
    pub watch_cache_events: usize,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([0, 0, 0, 0], 6443)),
            advertise_address: None,
            ranges: Ranges::default(),
            insecure: false,
            store: StoreBackend::Redb,
            tls_sans: Vec::new(),
            max_body: rest::DEFAULT_MAX_BODY,
            controllers: controllers::Settings::default(),
            watch_cache_events: registry::DEFAULT_WATCH_CACHE_EVENTS,
        }
    }
}

/// A started API server.
pub struct Running {
    pub address: SocketAddr,
    /// `https://IP:PORT` (or `http://` with `--insecure`), as written into kubeconfigs.
    pub url: String,
    pub admin_token: String,
    pub ca_pem: Option<String>,
    pub kubeconfig_path: PathBuf,
    pub registry: Arc<Registry>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Serves until shutdown is requested or the listener fails.
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("server task")?
    }

    /// Stops serving and the controllers, then closes the store (releasing redb's file).
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let store = self.registry.store().clone();
        let served = self.task.await.context("server task")?;
        store.close().await.context("closing the store")?;
        served
    }
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreBackend::Redb => {
            let path = config.data_dir.join("weft.redb");
            Arc::new(
                RedbStore::open(&path)
                    .with_context(|| format!("opening the store {}", path.display()))?,
            )
        }
        StoreBackend::Etcd { endpoints, prefix } => {
            if endpoints.is_empty() {
                bail!("--store etcd needs --etcd-servers");
            }
            Arc::new(
                EtcdStore::connect(endpoints, prefix)
                    .await
                    .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?,
            )
        }
    })
}

fn default_sans(advertise: IpAddr, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = vec![
        "127.0.0.1".into(),
        "::1".into(),
        "localhost".into(),
        advertise.to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            sans.push(host.to_string());
        }
    }
    sans.extend(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from),
    );
    sans.extend(extra.iter().cloned());
    sans.sort();
    sans.dedup();
    sans
}

/// Revisions of history kept for watches that resume (as redb keeps by default).
const HISTORY_KEPT: u64 = 100_000;

async fn compact_periodically(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match store.current_revision().await {
            Ok(rev) if rev > HISTORY_KEPT => {
                if let Err(e) = store.compact(rev - HISTORY_KEPT).await {
                    tracing::warn!(error = %e, "compacting the store's history failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the store revision failed"),
        }
    }
}

/// Opens the store, bootstraps built-in objects, writes credentials and starts serving.
pub async fn start(config: Config) -> Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let store = open_store(&config).await?;
    let registry = Registry::new(store, config.ranges.clone(), config.watch_cache_events)
        .await
        .map_err(|e| anyhow::anyhow!("loading allocations: {e}"))?;

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let address = listener.local_addr()?;
    let advertise = config.advertise_address.unwrap_or_else(|| {
        if address.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            address.ip()
        }
    });
    bootstrap::run(&registry, advertise, address.port())
        .await
        .map_err(|e| anyhow::anyhow!("creating built-in objects: {e}"))?;

    let admin_token = auth::ensure_token(&config.data_dir, auth::ADMIN_USER, &["system:masters"])?;
    let (tls, ca_pem, scheme) = if config.insecure {
        (None, None, "http")
    } else {
        let pki =
            pki::Pki::load_or_create(&config.data_dir, &default_sans(advertise, &config.tls_sans))?;
        (Some(pki.server_config()?), Some(pki.ca_pem), "https")
    };
    let host = match advertise {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let url = format!("{scheme}://{host}:{}", address.port());
    let kubeconfig_path = config.data_dir.join("admin.kubeconfig");
    weft_client::kubeconfig::Kubeconfig::new_single(
        &url,
        ca_pem.as_deref().map(str::as_bytes),
        &admin_token,
        "weft",
    )
    .write_to(&kubeconfig_path)
    .with_context(|| format!("writing {}", kubeconfig_path.display()))?;

    let state = Arc::new(AppState {
        registry: registry.clone(),
        auth: Arc::new(auth::Authenticator::new(&config.data_dir)),
        server_address: format!("{host}:{}", address.port()),
        max_body: config.max_body,
    });
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    controllers::spawn(
        registry.clone(),
        config.controllers.clone(),
        shutdown_rx.clone(),
    );
    if matches!(config.store, StoreBackend::Etcd { .. }) {
        // redb trims its own history; etcd keeps every revision until told otherwise.
        tokio::spawn(compact_periodically(
            registry.store().clone(),
            shutdown_rx.clone(),
        ));
    }
    let router = rest::router(state);
    tracing::info!(%url, data_dir = %config.data_dir.display(), "API server listening");
    let task = tokio::spawn(server::serve(listener, router, tls, shutdown_rx));
    Ok(Running {
        address,
        url,
        admin_token,
        ca_pem,
        kubeconfig_path,
        registry,
        shutdown,
        task,
    })
}

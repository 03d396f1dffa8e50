//! Weft's service proxy: the desired [`ServiceTable`] computed from Services and Endpoints
//! (pure, in [`table`]), and backends that program it into the kernel behind
//! [`ProxyBackend`]. The nftables backend ([`NftProxy`]) works on any kernel with nftables;
//! the IPVS backend ([`IpvsProxy`]) needs a kernel with IPVS (`ip_vs`).
//!
//! ```no_run
//! # async fn demo(services: Vec<weft_api::core::Service>,
//! #               endpoints: Vec<weft_api::core::Endpoints>) -> weft_proxy::Result<()> {
//! use weft_proxy::{NftConfig, NftProxy, NodeContext, ProxyBackend, ServiceTable};
//!
//! let node = NodeContext {
//!     node_name: "node-1".into(),
//!     addresses: vec!["192.168.56.11".parse().unwrap()],
//!     nodeport_addresses: vec![], // every node address
//! };
//! let mut backend = NftProxy::new(NftConfig {
//!     cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
//!     netns: None,
//! });
//! // On every informer change (debounced): recompute, sync. The first sync reconciles
//! // against what the kernel already holds; later ones send only the changed Services.
//! let table = ServiceTable::build(&services, &endpoints, &node);
//! for p in &table.problems {
//!     eprintln!("service {}: {}", p.service, p.message);
//! }
//! let stats = backend.sync(&table).await?;
//! println!("{stats:?}");
//! // `weft proxy --cleanup`:
//! backend.cleanup().await?;
//! # Ok(()) }
//! ```

pub mod builder;
pub mod ipvs;
pub mod nftables;
pub mod table;

pub use builder::TableBuilder;

pub use ipvs::{IpvsConfig, IpvsProxy};
pub use nftables::{NftConfig, NftProxy};
pub use table::{
    diff, Changes, Endpoint, NodeContext, Problem, Protocol, ServicePortName, ServiceTable,
    VirtualService,
};

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("running {command}: {message}")]
    Command { command: String, message: String },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("reading the kernel's table: {0}")]
    Parse(String),
    #[error(transparent)]
    Netlink(#[from] weft_netlink::NetlinkError),
}

impl From<weft_netlink::nft::NftError> for ProxyError {
    fn from(e: weft_netlink::nft::NftError) -> Self {
        use weft_netlink::nft::NftError;
        match e {
            NftError::Run { command, message } => ProxyError::Command { command, message },
            NftError::Failed { command, stderr } => ProxyError::Failed { command, stderr },
        }
    }
}

pub type Result<T, E = ProxyError> = std::result::Result<T, E>;

/// What one [`ProxyBackend::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// True when the kernel's state was read and reconciled (first sync, or after a failed
    /// one), false for an incremental sync from the previous table.
    pub full: bool,
    /// Service ports added, changed or removed.
    pub services_touched: usize,
    pub chains_added: usize,
    pub chains_rewritten: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    /// Size of the transaction sent to the kernel (0: nothing to do).
    pub script_bytes: usize,
    /// IPVS changes sent (IPVS mode).
    pub ipvs_ops: usize,
    /// Services the kernel refused (e.g. a protocol it lacks), one per Service port; the
    /// others were programmed. For the caller to log and report as Events.
    pub problems: Vec<table::Problem>,
    pub elapsed: Duration,
}

/// A kernel backend of the service proxy.
#[async_trait::async_trait]
pub trait ProxyBackend: Send {
    /// Makes the kernel hold `desired`, changing only what differs. The first call (and
    /// the first after a failure) reads the kernel's state instead of trusting memory, so a
    /// restarted proxy changes nothing that is already right.
    async fn sync(&mut self, desired: &ServiceTable) -> Result<SyncStats>;
    /// Like [`ProxyBackend::sync`], told which Service ports differ from the table of the
    /// previous call (as [`TableBuilder::take_changes`] reports them), so a backend may
    /// skip diffing the whole table. The default diffs anyway.
    async fn sync_changed(
        &mut self,
        desired: &ServiceTable,
        _changes: &Changes,
    ) -> Result<SyncStats> {
        self.sync(desired).await
    }
    /// Removes everything this backend installed (`kube-proxy --cleanup`).
    async fn cleanup(&mut self) -> Result<()>;
    /// When to sync again even if nothing changes (IPVS mode: to finish terminating
    /// real servers); None: only on changes.
    fn next_wakeup(&self) -> Option<Duration> {
        None
    }
}

//! Weft's cluster DNS: the Kubernetes DNS specification 1.1.0 for the cluster zone, served
//! over UDP and TCP, with everything else forwarded to the node's resolvers.
//!
//! - [`records`]: the zone snapshot and the pure answer function (the spec lives here);
//! - [`handler`]: one request to one response (ACL, EDNS0, truncation, forwarding);
//! - [`server`]: the UDP and TCP loops;
//! - [`forward`], `cache`: upstream queries and their bounded TTL cache.
//!
//! The caller (the `weft dns` command) keeps informers on Services, Endpoints, Pods and DNS
//! objects, builds a [`Zone`] with [`Zone::build`] on every change and sends it through a
//! `watch` channel to [`serve`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;

mod cache;
pub mod forward;
pub mod handler;
pub mod records;
pub mod server;

pub use forward::{upstreams_from_resolv_conf, Forwarder};
pub use handler::{Handler, Transport};
pub use records::{Answer, Zone, ZoneError, ZoneSettings, SPEC_VERSION};
pub use server::DnsServer;

/// How long one upstream may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Upstream answers kept at most.
const CACHE_ENTRIES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Zone(#[from] ZoneError),
}

pub type Result<T, E = DnsError> = std::result::Result<T, E>;

/// Everything `weft dns` configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where to answer, UDP and TCP: `0.0.0.0:53` in a cluster.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub zone: String,
    /// TTL of cluster records, seconds.
    pub ttl: u32,
    /// Where outside names go. Empty: the `nameserver`s of the node's `/etc/resolv.conf`.
    pub upstreams: Vec<SocketAddr>,
    /// Source networks that may ask anything at all (cluster CIDR, service CIDR, node
    /// CIDRs, loopback); everyone else gets REFUSED, so this is never an open resolver.
    pub allowed: Vec<IpNet>,
    /// The path router's ClusterIP, the address of every DNS object's host.
    pub router_ip: Option<IpAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        let net = |s: &str| s.parse::<IpNet>().expect("constant CIDR");
        DnsConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
            zone: "cluster.local".into(),
            ttl: 5,
            upstreams: Vec::new(),
            // Weft's default cluster and service CIDRs plus loopback; add the node CIDRs.
            allowed: vec![
                net("127.0.0.0/8"),
                net("::1/128"),
                net("10.244.0.0/16"),
                net("10.96.0.0/12"),
            ],
            router_ip: None,
        }
    }
}

impl DnsConfig {
    /// The settings [`Zone::build`] needs, from this configuration.
    pub fn zone_settings(&self) -> ZoneSettings {
        ZoneSettings {
            zone: self.zone.clone(),
            ttl: self.ttl,
            router_ip: self.router_ip,
        }
    }

    /// The configured upstreams, or the node's resolv.conf ones; never ourselves (that
    /// would loop every outside query back into this server).
    pub fn effective_upstreams(&self) -> Vec<SocketAddr> {
        let mut ups = if self.upstreams.is_empty() {
            upstreams_from_resolv_conf(Path::new("/etc/resolv.conf")).unwrap_or_else(|e| {
                tracing::warn!("reading /etc/resolv.conf: {e}; outside names will fail");
                Vec::new()
            })
        } else {
            self.upstreams.clone()
        };
        ups.retain(|u| *u != self.listen);
        ups
    }

    /// A handler for this configuration, starting from `zone`.
    pub fn handler(&self, zone: Arc<Zone>) -> Handler {
        let forwarder = Forwarder::new(self.effective_upstreams(), UPSTREAM_TIMEOUT, CACHE_ENTRIES);
        Handler::new(zone, self.allowed.clone(), forwarder)
    }
}

/// Serves cluster DNS until a socket fails, taking each zone snapshot sent on `zone_rx`
/// (the latest wins; queries never wait for an update).
pub async fn serve(config: DnsConfig, mut zone_rx: watch::Receiver<Arc<Zone>>) -> Result<()> {
    let zone = zone_rx.borrow_and_update().clone();
    let server = DnsServer::bind(config.listen, config.handler(zone)).await?;
    tracing::info!(
        "cluster DNS for {} on {} (UDP and TCP)",
        config.zone,
        server.local_addr()?
    );
    let handler = server.handler();
    let updates = tokio::spawn(async move {
        while zone_rx.changed().await.is_ok() {
            let zone = zone_rx.borrow_and_update().clone();
            handler.update(zone);
        }
    });
    let result = server.run().await;
    updates.abort();
    result
}

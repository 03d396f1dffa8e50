//! IPVS (the kernel's L4 load balancer) over generic netlink, family `"IPVS"`
//! (`linux/ip_vs.h`).
//!
//! Our own codec: no maintained Rust crate covers the IPVS family (the netlink-packet-*
//! crates cover route, audit, generic control, wireguard, but not IPVS), and the protocol
//! is small. Written from the uapi header, with ipvsadm's libipvs and moby/ipvs read for
//! how the kernel expects requests; no code copied.
//!
//! - [`codec`]: pure encode/decode of requests and replies, tested against byte fixtures;
//! - [`IpvsSocket`]: a blocking NETLINK_GENERIC socket (optionally opened inside a named
//!   netns) that resolves the family and pipelines batches of changes, mapping each
//!   error ack back to its [`IpvsOp`];
//! - [`IpvsOps`]: the async seam the service proxy uses, implemented by [`IpvsHandle`]
//!   (the kernel) and [`MemoryIpvs`] (tests).

pub mod codec;
mod fake;
pub mod nl;
mod socket;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::{NetlinkError, Result};

pub use fake::MemoryIpvs;
pub use socket::IpvsSocket;

/// A kernel reply this crate cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// `IP_VS_SVC_F_PERSISTENT`: the service keeps a client on one destination.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_HASHED`: set by the kernel on every listed service; not a setting.
pub const SVC_F_HASHED: u32 = 0x0002;

/// The transport protocol of a virtual service (IPPROTO_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Other(u16),
}

impl Protocol {
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Other(n) => n,
        }
    }

    pub fn from_number(n: u16) -> Self {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(n) => write!(f, "proto {n}"),
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// A firewall-mark service (`ipvsadm -f`); `ipv6` picks its address family.
    Fwmark { mark: u32, ipv6: bool },
}

impl ServiceKey {
    pub fn addr(protocol: Protocol, addr: IpAddr, port: u16) -> Self {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        }
    }

    pub fn af(&self) -> u16 {
        let v6 = match self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        };
        if v6 {
            AF_INET6
        } else {
            AF_INET
        }
    }
}

impl fmt::Display for ServiceKey {
    /// As `ipvsadm -Ln` writes it: `TCP 10.96.0.1:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{protocol} [{a}]:{port}"),
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => write!(f, "{protocol} {addr}:{port}"),
            ServiceKey::Fwmark { mark, .. } => write!(f, "fwmark {mark}"),
        }
    }
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Traffic counters of a service or destination (from `STATS64` when the kernel sends it,
/// else `STATS`). Rates are per second, as the kernel's estimator computes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// `rr`, `wrr`, `sh`, …
    pub scheduler: String,
    /// `IP_VS_SVC_F_*`; in dumps [`SVC_F_HASHED`] is masked off so a dump compares equal
    /// to what was asked for.
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with [`SVC_F_PERSISTENT`]).
    pub timeout: u32,
    /// Persistence netmask: a mask for IPv4 (`0xffff_ffff`: per client), a prefix
    /// length for IPv6.
    pub netmask: u32,
    /// Persistence engine (`sip`), rarely set.
    pub pe_name: Option<String>,
    /// Only in dumps.
    pub stats: Option<Stats>,
}

impl Service {
    /// A service with ipvsadm's defaults: no persistence, netmask /32 (/128).
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Self {
            key,
            scheduler: scheduler.to_string(),
            flags: 0,
            timeout: 0,
            netmask: if key.af() == AF_INET6 {
                128
            } else {
                0xffff_ffff
            },
            pe_name: None,
            stats: None,
        }
    }

    /// `ipvsadm -p TIMEOUT`.
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags |= SVC_F_PERSISTENT;
        self.timeout = timeout;
        self
    }

    /// Whether the settings (not counters) are the same.
    pub fn same_settings(&self, other: &Service) -> bool {
        self.key == other.key
            && self.scheduler == other.scheduler
            && self.flags & !SVC_F_HASHED == other.flags & !SVC_F_HASHED
            && self.pe_name == other.pe_name
            && (self.flags & SVC_F_PERSISTENT == 0
                || (self.timeout == other.timeout && self.netmask == other.netmask))
    }
}

/// How a destination is reached (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// NAT (`ipvsadm -m`): what a service proxy uses.
    Masq,
    Local,
    Tunnel,
    Route,
    Bypass,
    Other(u32),
}

impl Forward {
    pub fn number(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
            Forward::Bypass => 4,
            Forward::Other(n) => n,
        }
    }

    pub fn from_number(n: u32) -> Self {
        match n & 0x7 {
            0 => Forward::Masq,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::Route,
            4 => Forward::Bypass,
            n => Forward::Other(n),
        }
    }
}

/// What identifies a destination within its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
            a => write!(f, "{a}:{}", self.port),
        }
    }
}

/// A destination (real server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Only in dumps.
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub stats: Option<Stats>,
}

impl Destination {
    /// A masquerading destination with no thresholds.
    pub fn masq(addr: IpAddr, port: u16, weight: u32) -> Self {
        Self {
            addr,
            port,
            forward: Forward::Masq,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    pub fn key(&self) -> DestKey {
        DestKey {
            addr: self.addr,
            port: self.port,
        }
    }

    /// Whether the settings (not counters) are the same.
    pub fn same_settings(&self, other: &Destination) -> bool {
        self.key() == other.key()
            && self.forward == other.forward
            && self.weight == other.weight
            && self.upper_threshold == other.upper_threshold
            && self.lower_threshold == other.lower_threshold
    }
}

/// `IPVS_CMD_GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// `0x010201` is 1.2.1.
    pub version: u32,
    pub conn_table_size: u32,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsOp {
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    NewDest(ServiceKey, Destination),
    SetDest(ServiceKey, Destination),
    DelDest(ServiceKey, DestKey),
    /// Every service and destination (`ipvsadm -C`).
    Flush,
}

impl fmt::Display for IpvsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsOp::NewService(s) => write!(f, "ipvs add service {}", s.key),
            IpvsOp::SetService(s) => write!(f, "ipvs edit service {}", s.key),
            IpvsOp::DelService(k) => write!(f, "ipvs delete service {k}"),
            IpvsOp::NewDest(k, d) => write!(f, "ipvs add dest {} to {k}", d.key()),
            IpvsOp::SetDest(k, d) => write!(f, "ipvs edit dest {} of {k}", d.key()),
            IpvsOp::DelDest(k, d) => write!(f, "ipvs delete dest {d} of {k}"),
            IpvsOp::Flush => f.write_str("ipvs flush"),
        }
    }
}

impl IpvsOp {
    /// The service the op is about (None for a flush).
    pub fn service(&self) -> Option<&ServiceKey> {
        match self {
            IpvsOp::NewService(s) | IpvsOp::SetService(s) => Some(&s.key),
            IpvsOp::DelService(k)
            | IpvsOp::NewDest(k, _)
            | IpvsOp::SetDest(k, _)
            | IpvsOp::DelDest(k, _) => Some(k),
            IpvsOp::Flush => None,
        }
    }
}

/// One op of a batch the kernel refused.
#[derive(Debug)]
pub struct OpFailure {
    /// Its index in the batch.
    pub index: usize,
    pub error: NetlinkError,
}

/// The kernel's IPVS table, as the service proxy needs it. Behind a trait so the proxy's
/// logic is tested against [`MemoryIpvs`].
#[async_trait]
pub trait IpvsOps: Send {
    async fn info(&mut self) -> Result<Info>;
    /// Every virtual service (with stats).
    async fn services(&mut self) -> Result<Vec<Service>>;
    /// The destinations of one service (with connection counts and stats); none for an
    /// unknown service (the kernel answers an empty dump, not an error).
    async fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<Destination>>;
    /// The destinations of each of `services`, in order (a restart reads thousands).
    async fn destinations_of(
        &mut self,
        services: Vec<ServiceKey>,
    ) -> Result<Vec<Vec<Destination>>> {
        let mut out = Vec::with_capacity(services.len());
        for key in &services {
            out.push(self.destinations(key).await?);
        }
        Ok(out)
    }
    /// Applies `ops` in order. The kernel goes on past a refused op, so the result lists
    /// every refusal with its index; `Err` only when the conversation itself failed (then
    /// an unknown prefix of `ops` was applied).
    async fn apply(&mut self, ops: Vec<IpvsOp>) -> Result<Vec<OpFailure>>;
}

/// [`IpvsOps`] on the kernel: an [`IpvsSocket`] used from tokio's blocking pool, so a
/// large batch never stalls the async workers.
#[derive(Clone)]
pub struct IpvsHandle {
    socket: Arc<Mutex<IpvsSocket>>,
}

impl IpvsHandle {
    /// In the caller's network namespace.
    pub fn new() -> Result<Self> {
        Ok(Self::from_socket(IpvsSocket::open()?))
    }

    /// Inside the namespace at `ns_path` (`/run/netns/NAME`).
    pub fn in_netns(ns_path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_socket(IpvsSocket::open_in_netns(ns_path)?))
    }

    pub fn from_socket(socket: IpvsSocket) -> Self {
        Self {
            socket: Arc::new(Mutex::new(socket)),
        }
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut IpvsSocket) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = socket
                .lock()
                .map_err(|_| NetlinkError::protocol("ipvs", "socket lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| NetlinkError::protocol("ipvs", e))?
    }
}

#[async_trait]
impl IpvsOps for IpvsHandle {
    async fn info(&mut self) -> Result<Info> {
        self.with(|s| s.info()).await
    }

    async fn services(&mut self) -> Result<Vec<Service>> {
        self.with(|s| s.services()).await
    }

    async fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<Destination>> {
        let key = *service;
        self.with(move |s| s.destinations(&key)).await
    }

    /// One trip to the blocking pool for all of them, not one per service.
    async fn destinations_of(
        &mut self,
        services: Vec<ServiceKey>,
    ) -> Result<Vec<Vec<Destination>>> {
        self.with(move |s| services.iter().map(|k| s.destinations(k)).collect())
            .await
    }

    async fn apply(&mut self, ops: Vec<IpvsOp>) -> Result<Vec<OpFailure>> {
        self.with(move |s| s.apply(&ops)).await
    }
}

#[cfg(test)]
mod tests;

//! Allocators for Service ClusterIPs, NodePorts and Node podCIDRs.
//!
//! Each allocation is a key in the store (`/registry/allocations/...`) written in the same
//! transaction as the object that holds it, so an object and its allocations appear and
//! vanish together: a failed create leaks nothing and a restart forgets nothing. The
//! in-memory "used" sets only speed up picking a candidate; the store's create-if-absent is
//! what makes two API servers on one etcd never hand out the same value.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use rand::Rng;
use weft_store::Store;

pub const ALLOCATIONS_PREFIX: &str = "/registry/allocations/";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Allocation {
    ClusterIp(IpAddr),
    NodePort(u16),
    PodCidr(IpNet),
}

impl Allocation {
    pub fn key(&self) -> String {
        match self {
            Allocation::ClusterIp(ip) => format!("{ALLOCATIONS_PREFIX}clusterips/{ip}"),
            Allocation::NodePort(port) => format!("{ALLOCATIONS_PREFIX}nodeports/{port}"),
            Allocation::PodCidr(net) => format!(
                "{ALLOCATIONS_PREFIX}podcidrs/{}",
                net.to_string().replace('/', "_")
            ),
        }
    }

    fn from_key(key: &str) -> Option<Allocation> {
        let rest = key.strip_prefix(ALLOCATIONS_PREFIX)?;
        let (kind, value) = rest.split_once('/')?;
        match kind {
            "clusterips" => value.parse().ok().map(Allocation::ClusterIp),
            "nodeports" => value.parse().ok().map(Allocation::NodePort),
            "podcidrs" => value
                .replace('_', "/")
                .parse()
                .ok()
                .map(Allocation::PodCidr),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("provided IP is not in the valid range. The range of valid IPs is {0}")]
    IpOutOfRange(IpNet),
    #[error("provided IP is already allocated")]
    IpTaken,
    #[error("no ClusterIP is left in {0}")]
    IpExhausted(IpNet),
    #[error("provided port is not in the valid range. The range of valid ports is {0}-{1}")]
    PortOutOfRange(u16, u16),
    #[error("provided port is already allocated")]
    PortTaken,
    #[error("no NodePort is left in {0}-{1}")]
    PortsExhausted(u16, u16),
    #[error("provided podCIDR is not a /{1} inside the cluster CIDR {0}")]
    CidrOutOfRange(IpNet, u8),
    #[error("provided podCIDR is already allocated")]
    CidrTaken,
    #[error("no /{1} is left in the cluster CIDR {0}")]
    CidrsExhausted(IpNet, u8),
}

#[derive(Debug, Clone)]
pub struct Ranges {
    pub service_cidr: IpNet,
    pub node_ports: RangeInclusive<u16>,
    pub cluster_cidr: IpNet,
    pub node_cidr_prefix: u8,
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            service_cidr: "10.96.0.0/12".parse().expect("literal CIDR"),
            node_ports: 30000..=32767,
            cluster_cidr: "10.244.0.0/16".parse().expect("literal CIDR"),
            node_cidr_prefix: 24,
        }
    }
}

#[derive(Debug, Default)]
struct Used {
    set: HashSet<Allocation>,
}

#[derive(Debug)]
pub struct Allocators {
    pub ranges: Ranges,
    used: Mutex<Used>,
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn u128_to_ip(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

impl Allocators {
    pub fn new(ranges: Ranges) -> Arc<Self> {
        Arc::new(Allocators {
            ranges,
            used: Mutex::new(Used::default()),
        })
    }

    /// Reads every allocation the store holds.
    pub async fn load(&self, store: &dyn Store) -> weft_store::Result<()> {
        let (kvs, _) = store.list(ALLOCATIONS_PREFIX).await?;
        let mut used = self.lock();
        used.set.clear();
        for kv in kvs {
            if let Some(a) = Allocation::from_key(&kv.key) {
                used.set.insert(a);
            }
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Used> {
        // A poisoned lock only means another request panicked mid-update of a HashSet of
        // plain values; the set is still consistent.
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a value used (the store said it was taken, or a commit succeeded).
    pub fn mark_used(&self, a: &Allocation) {
        self.lock().set.insert(a.clone());
    }

    pub fn release(&self, a: &Allocation) {
        self.lock().set.remove(a);
    }

    pub fn is_used(&self, a: &Allocation) -> bool {
        self.lock().set.contains(a)
    }

    /// Reserves a ClusterIP: the requested one if in range and free, else a random free one.
    pub fn reserve_cluster_ip(&self, requested: Option<IpAddr>) -> Result<Allocation, AllocError> {
        let net = self.ranges.service_cidr;
        let first = ip_to_u128(net.network());
        let last = ip_to_u128(net.broadcast());
        // Skip the network address, and the broadcast address for IPv4.
        let (low, high) = match net {
            IpNet::V4(_) => (first + 1, last.saturating_sub(1)),
            IpNet::V6(_) => (first + 1, last),
        };
        let mut used = self.lock();
        if let Some(ip) = requested {
            let n = ip_to_u128(ip);
            if !net.contains(&ip) || n < low || n > high {
                return Err(AllocError::IpOutOfRange(net));
            }
            let a = Allocation::ClusterIp(ip);
            if !used.set.insert(a.clone()) {
                return Err(AllocError::IpTaken);
            }
            return Ok(a);
        }
        let size = high - low + 1;
        let start = rand::thread_rng().gen_range(0..size);
        // Linear probe from a random start: O(1) while the range is mostly free.
        for i in 0..size.min(1 << 24) {
            let n = low + (start + i) % size;
            let a = Allocation::ClusterIp(u128_to_ip(net.network(), n));
            if used.set.insert(a.clone()) {
                return Ok(a);
            }
        }
        Err(AllocError::IpExhausted(net))
    }

    pub fn reserve_node_port(&self, requested: Option<u16>) -> Result<Allocation, AllocError> {
        let (low, high) = (
            *self.ranges.node_ports.start(),
            *self.ranges.node_ports.end(),
        );
        let mut used = self.lock();
        if let Some(port) = requested {
            if !(low..=high).contains(&port) {
                return Err(AllocError::PortOutOfRange(low, high));
            }
            let a = Allocation::NodePort(port);
            if !used.set.insert(a.clone()) {
                return Err(AllocError::PortTaken);
            }
            return Ok(a);
        }
        let size = u32::from(high - low) + 1;
        let start = rand::thread_rng().gen_range(0..size);
        for i in 0..size {
            let port = low + ((start + i) % size) as u16;
            let a = Allocation::NodePort(port);
            if used.set.insert(a.clone()) {
                return Ok(a);
            }
        }
        Err(AllocError::PortsExhausted(low, high))
    }

    /// Reserves a node's podCIDR: the requested one if it is a free subnet of the cluster
    /// CIDR of the node prefix length, else the lowest free one (so node 1 gets .0.0/24).
    pub fn reserve_pod_cidr(&self, requested: Option<IpNet>) -> Result<Allocation, AllocError> {
        let cluster = self.ranges.cluster_cidr;
        let prefix = self.ranges.node_cidr_prefix;
        let mut used = self.lock();
        if let Some(net) = requested {
            if net.prefix_len() != prefix || !cluster.contains(&net) || net.trunc() != net {
                return Err(AllocError::CidrOutOfRange(cluster, prefix));
            }
            let a = Allocation::PodCidr(net);
            if !used.set.insert(a.clone()) {
                return Err(AllocError::CidrTaken);
            }
            return Ok(a);
        }
        let subnets = cluster
            .subnets(prefix)
            .map_err(|_| AllocError::CidrsExhausted(cluster, prefix))?;
        for net in subnets {
            let a = Allocation::PodCidr(net);
            if used.set.insert(a.clone()) {
                return Ok(a);
            }
        }
        Err(AllocError::CidrsExhausted(cluster, prefix))
    }
}

/// Allocations reserved for one request: released on drop unless the request committed.
pub struct Reservation {
    allocators: Arc<Allocators>,
    pub items: Vec<Allocation>,
    committed: bool,
}

impl Reservation {
    pub fn new(allocators: Arc<Allocators>) -> Self {
        Reservation {
            allocators,
            items: Vec::new(),
            committed: false,
        }
    }

    pub fn push(&mut self, a: Allocation) {
        self.items.push(a);
    }

    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            for a in &self.items {
                self.allocators.release(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Arc<Allocators> {
        Allocators::new(Ranges {
            service_cidr: "10.96.0.0/29".parse().unwrap(),
            node_ports: 30000..=30002,
            cluster_cidr: "10.244.0.0/23".parse().unwrap(),
            node_cidr_prefix: 24,
        })
    }

    #[test]
    fn cluster_ips_skip_network_and_broadcast_and_exhaust() {
        let a = small();
        let mut got = HashSet::new();
        for _ in 0..6 {
            match a.reserve_cluster_ip(None).unwrap() {
                Allocation::ClusterIp(ip) => assert!(got.insert(ip)),
                other => panic!("{other:?}"),
            }
        }
        assert!(!got.contains(&"10.96.0.0".parse::<IpAddr>().unwrap()));
        assert!(!got.contains(&"10.96.0.7".parse::<IpAddr>().unwrap()));
        assert!(matches!(
            a.reserve_cluster_ip(None),
            Err(AllocError::IpExhausted(_))
        ));
    }

    #[test]
    fn requested_ip_honoured_once_and_range_checked() {
        let a = small();
        let ip: IpAddr = "10.96.0.3".parse().unwrap();
        assert_eq!(
            a.reserve_cluster_ip(Some(ip)),
            Ok(Allocation::ClusterIp(ip))
        );
        assert_eq!(a.reserve_cluster_ip(Some(ip)), Err(AllocError::IpTaken));
        let out: IpAddr = "10.97.0.3".parse().unwrap();
        assert!(matches!(
            a.reserve_cluster_ip(Some(out)),
            Err(AllocError::IpOutOfRange(_))
        ));
        a.release(&Allocation::ClusterIp(ip));
        assert!(a.reserve_cluster_ip(Some(ip)).is_ok());
    }

    #[test]
    fn node_ports_and_reservation_release() {
        let a = small();
        {
            let mut r = Reservation::new(a.clone());
            r.push(a.reserve_node_port(Some(30001)).unwrap());
            // dropped uncommitted: released
        }
        assert!(a.reserve_node_port(Some(30001)).is_ok());
        assert_eq!(a.reserve_node_port(Some(30001)), Err(AllocError::PortTaken));
        assert!(matches!(
            a.reserve_node_port(Some(29999)),
            Err(AllocError::PortOutOfRange(..))
        ));
        a.reserve_node_port(None).unwrap();
        a.reserve_node_port(None).unwrap();
        assert!(matches!(
            a.reserve_node_port(None),
            Err(AllocError::PortsExhausted(..))
        ));
    }

    #[test]
    fn pod_cidrs_lowest_first() {
        let a = small();
        assert_eq!(
            a.reserve_pod_cidr(None).unwrap(),
            Allocation::PodCidr("10.244.0.0/24".parse().unwrap())
        );
        assert_eq!(
            a.reserve_pod_cidr(None).unwrap(),
            Allocation::PodCidr("10.244.1.0/24".parse().unwrap())
        );
        assert!(matches!(
            a.reserve_pod_cidr(None),
            Err(AllocError::CidrsExhausted(..))
        ));
        let bad: IpNet = "10.244.0.0/25".parse().unwrap();
        assert!(matches!(
            a.reserve_pod_cidr(Some(bad)),
            Err(AllocError::CidrOutOfRange(..))
        ));
    }

    #[test]
    fn keys_round_trip() {
        for a in [
            Allocation::ClusterIp("10.96.0.10".parse().unwrap()),
            Allocation::NodePort(30080),
            Allocation::PodCidr("10.244.3.0/24".parse().unwrap()),
        ] {
            assert_eq!(Allocation::from_key(&a.key()), Some(a));
        }
    }
}

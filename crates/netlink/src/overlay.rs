//! The VXLAN overlay as the node agent sees it: one [`PeerEntry`] per remote node, kept in
//! the kernel as flannel's static-VXLAN triple on the local VXLAN device —
//!
//! * a route `POD_CIDR via GATEWAY dev VXLAN onlink`,
//! * a permanent neighbour `GATEWAY lladdr VTEP_MAC`,
//! * a permanent FDB entry `VTEP_MAC dst UNDERLAY_IP`.
//!
//! [`OverlayKernel`] is the seam: [`VxlanOverlay`] programs the kernel, [`MemoryOverlay`]
//! stands in for it in unit tests, and [`diff_peers`] is the pure part of reconciling.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};

use crate::error::Result;
use crate::mac::{format_mac, Mac};
use crate::route::{Route, RouteSpec};
use crate::{Netlink, RouteProtocol, RouteScope};

/// One remote node as the overlay needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerEntry {
    /// The remote node's pod CIDR, routed through the tunnel.
    pub pod_cidr: Ipv4Net,
    /// The next hop for that CIDR: the remote's `.0`, held by its VXLAN device.
    pub gateway: Ipv4Addr,
    /// The MAC of the remote node's VXLAN device.
    pub vtep_mac: Mac,
    /// The remote node's underlay address, where the encapsulated packets go.
    pub underlay_ip: Ipv4Addr,
}

impl PeerEntry {
    /// A peer whose gateway is the network address of its pod CIDR, as flannel does it.
    pub fn new(pod_cidr: Ipv4Net, vtep_mac: Mac, underlay_ip: Ipv4Addr) -> Self {
        Self {
            pod_cidr,
            gateway: pod_cidr.network(),
            vtep_mac,
            underlay_ip,
        }
    }
}

impl fmt::Display for PeerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer {} via {} (vtep {} at {})",
            self.pod_cidr,
            self.gateway,
            format_mac(&self.vtep_mac),
            self.underlay_ip
        )
    }
}

/// The kernel side of the overlay, small enough to fake.
#[async_trait]
pub trait OverlayKernel: Send + Sync {
    /// What the kernel holds now, read from the routes, neighbours and FDB of the VXLAN
    /// device. A route whose neighbour or FDB entry is missing is reported with a zero MAC
    /// or unspecified underlay address, so it differs from any desired entry and is redone.
    async fn peers(&self) -> Result<Vec<PeerEntry>>;
    /// Adds (or overwrites) the peer: neighbour and FDB first, then the route.
    async fn add_peer(&self, p: &PeerEntry) -> Result<()>;
    /// Removes the peer: route first, then neighbour and FDB. Parts already gone are fine.
    async fn remove_peer(&self, p: &PeerEntry) -> Result<()>;
}

/// What to change so the kernel's peers (`actual`) become `desired`:
/// `(to_add, to_remove)`, both sorted by pod CIDR. Apply the removals first: a peer whose
/// MAC or underlay address changed appears in both. If `desired` names a CIDR twice, the
/// first entry wins.
pub fn diff_peers(desired: &[PeerEntry], actual: &[PeerEntry]) -> (Vec<PeerEntry>, Vec<PeerEntry>) {
    let mut wanted: BTreeMap<Ipv4Net, PeerEntry> = BTreeMap::new();
    for p in desired {
        wanted.entry(p.pod_cidr).or_insert(*p);
    }
    let mut to_remove: Vec<PeerEntry> = actual
        .iter()
        .filter(|a| wanted.get(&a.pod_cidr) != Some(a))
        .copied()
        .collect();
    let to_add: Vec<PeerEntry> = wanted
        .into_values()
        .filter(|w| !actual.contains(w))
        .collect();
    to_remove.sort();
    to_remove.dedup();
    (to_add, to_remove)
}

/// [`OverlayKernel`] on a real VXLAN device.
#[derive(Debug, Clone)]
pub struct VxlanOverlay {
    pub netlink: Netlink,
    /// Index of the local VXLAN device (in `netlink`'s namespace).
    pub vxlan_index: u32,
}

impl VxlanOverlay {
    pub fn new(netlink: Netlink, vxlan_index: u32) -> Self {
        Self {
            netlink,
            vxlan_index,
        }
    }

    fn route(&self, p: &PeerEntry) -> RouteSpec {
        RouteSpec {
            dst: IpNet::V4(p.pod_cidr),
            gateway: Some(IpAddr::V4(p.gateway)),
            oif: Some(self.vxlan_index),
            onlink: true,
        }
    }
}

/// Keeps the first error of a teardown while letting the teardown go on; "already gone"
/// counts as done.
fn keep_first(first: &mut Option<crate::NetlinkError>, result: Result<()>) {
    if let Err(e) = result {
        if e.is_not_found() {
            return;
        }
        tracing::warn!(error = %e, "overlay teardown step failed");
        first.get_or_insert(e);
    }
}

#[async_trait]
impl OverlayKernel for VxlanOverlay {
    async fn peers(&self) -> Result<Vec<PeerEntry>> {
        let index = self.vxlan_index;
        let routes = self.netlink.routes().await?;
        // Only permanent entries count: a dynamic one would be the kernel's own guess.
        let macs: HashMap<IpAddr, Mac> = self
            .netlink
            .neighbours(index)
            .await?
            .into_iter()
            .filter(|n| n.is_permanent())
            .filter_map(|n| Some((n.ip, n.mac?)))
            .collect();
        let mut remotes: HashMap<Mac, Ipv4Addr> = HashMap::new();
        for entry in self.netlink.fdb(index).await? {
            if let (true, Some(IpAddr::V4(dst))) = (entry.own, entry.dst) {
                remotes.entry(entry.mac).or_insert(dst);
            }
        }
        let mut peers: Vec<PeerEntry> = routes
            .into_iter()
            .filter(|r| r.oif == Some(index))
            .filter_map(|r| match (r.dst, r.gateway) {
                (IpNet::V4(pod_cidr), Some(IpAddr::V4(gateway))) => {
                    let vtep_mac = macs.get(&IpAddr::V4(gateway)).copied().unwrap_or([0; 6]);
                    let underlay_ip = remotes
                        .get(&vtep_mac)
                        .copied()
                        .unwrap_or(Ipv4Addr::UNSPECIFIED);
                    Some(PeerEntry {
                        pod_cidr,
                        gateway,
                        vtep_mac,
                        underlay_ip,
                    })
                }
                _ => None,
            })
            .collect();
        peers.sort();
        Ok(peers)
    }

    async fn add_peer(&self, p: &PeerEntry) -> Result<()> {
        let nl = &self.netlink;
        let index = self.vxlan_index;
        let gateway = IpAddr::V4(p.gateway);
        let underlay = IpAddr::V4(p.underlay_ip);
        // As flannel: the route goes last. With the route in place but no permanent
        // neighbour, the kernel would ARP for the gateway into a tunnel that has no FDB
        // entry yet, and the traffic would go nowhere.
        nl.add_permanent_neighbour(index, gateway, p.vtep_mac)
            .await?;
        // Replace rather than append: for a unicast MAC, append keeps a stale remote.
        if let Err(e) = nl.replace_fdb(index, p.vtep_mac, underlay).await {
            let _ = nl.del_neighbour(index, gateway).await;
            return Err(e);
        }
        if let Err(e) = nl.replace_route(&self.route(p)).await {
            let _ = nl.del_fdb(index, p.vtep_mac, Some(underlay)).await;
            let _ = nl.del_neighbour(index, gateway).await;
            return Err(e);
        }
        Ok(())
    }

    async fn remove_peer(&self, p: &PeerEntry) -> Result<()> {
        let nl = &self.netlink;
        let index = self.vxlan_index;
        let spec = self.route(p);
        let route = Route {
            dst: spec.dst,
            gateway: spec.gateway,
            oif: spec.oif,
            onlink: true,
            scope: RouteScope::Universe,
            protocol: RouteProtocol::Unspec,
        };
        let mut first = None;
        // Route first, so nothing is sent towards the peer while its entries go.
        keep_first(&mut first, nl.del_route(&route).await);
        keep_first(
            &mut first,
            nl.del_neighbour(index, IpAddr::V4(p.gateway)).await,
        );
        // A placeholder from `peers()` (zero MAC, no remote) names no FDB entry; deleting
        // the all-zeros MAC would drop the flood list instead.
        if p.vtep_mac != [0; 6] && !p.underlay_ip.is_unspecified() {
            keep_first(
                &mut first,
                nl.del_fdb(index, p.vtep_mac, Some(IpAddr::V4(p.underlay_ip)))
                    .await,
            );
        }
        first.map_or(Ok(()), Err)
    }
}

/// One change made through a [`MemoryOverlay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayCall {
    Add(PeerEntry),
    Remove(PeerEntry),
}

/// An in-memory [`OverlayKernel`] for tests of code above the kernel: holds peers keyed
/// by pod CIDR and records every change.
#[derive(Debug, Default)]
pub struct MemoryOverlay {
    peers: Mutex<BTreeMap<Ipv4Net, PeerEntry>>,
    calls: Mutex<Vec<OverlayCall>>,
}

impl MemoryOverlay {
    /// Starts out holding `peers`, as a kernel left by a previous run would.
    pub fn with_peers(peers: &[PeerEntry]) -> Self {
        let overlay = Self::default();
        overlay
            .lock_peers()
            .extend(peers.iter().map(|p| (p.pod_cidr, *p)));
        overlay
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<Ipv4Net, PeerEntry>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: OverlayCall) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    /// The changes made so far, in order.
    pub fn calls(&self) -> Vec<OverlayCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl OverlayKernel for MemoryOverlay {
    async fn peers(&self) -> Result<Vec<PeerEntry>> {
        Ok(self.lock_peers().values().copied().collect())
    }

    async fn add_peer(&self, p: &PeerEntry) -> Result<()> {
        self.record(OverlayCall::Add(*p));
        self.lock_peers().insert(p.pod_cidr, *p);
        Ok(())
    }

    async fn remove_peer(&self, p: &PeerEntry) -> Result<()> {
        self.record(OverlayCall::Remove(*p));
        let mut peers = self.lock_peers();
        if peers.get(&p.pod_cidr) == Some(p) {
            peers.remove(&p.pod_cidr);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(cidr: &str, mac_last: u8, underlay_last: u8) -> PeerEntry {
        PeerEntry::new(
            cidr.parse().expect("cidr"),
            [0x02, 0, 0, 0, 0, mac_last],
            Ipv4Addr::new(192, 168, 50, underlay_last),
        )
    }

    #[test]
    fn gateway_is_the_network_address() {
        let p = peer("10.244.3.0/24", 3, 3);
        assert_eq!(p.gateway, Ipv4Addr::new(10, 244, 3, 0));
        assert_eq!(
            p.to_string(),
            "peer 10.244.3.0/24 via 10.244.3.0 (vtep 02:00:00:00:00:03 at 192.168.50.3)"
        );
    }

    #[test]
    fn in_sync_means_nothing_to_do() {
        let peers = [peer("10.244.1.0/24", 1, 1), peer("10.244.2.0/24", 2, 2)];
        assert_eq!(diff_peers(&peers, &peers), (vec![], vec![]));
        assert_eq!(diff_peers(&[], &[]), (vec![], vec![]));
    }

    #[test]
    fn new_and_gone_peers() {
        let a = peer("10.244.1.0/24", 1, 1);
        let b = peer("10.244.2.0/24", 2, 2);
        let c = peer("10.244.3.0/24", 3, 3);
        let (add, remove) = diff_peers(&[c, a], &[a, b]);
        assert_eq!(add, vec![c]);
        assert_eq!(remove, vec![b]);
    }

    #[test]
    fn a_changed_mac_or_underlay_is_remove_then_add() {
        let old = peer("10.244.1.0/24", 1, 1);
        let new_mac = peer("10.244.1.0/24", 9, 1);
        let new_ip = peer("10.244.1.0/24", 1, 9);
        assert_eq!(diff_peers(&[new_mac], &[old]), (vec![new_mac], vec![old]));
        assert_eq!(diff_peers(&[new_ip], &[old]), (vec![new_ip], vec![old]));
    }

    #[test]
    fn an_incomplete_kernel_entry_is_redone() {
        let want = peer("10.244.1.0/24", 1, 1);
        let mut half = want;
        half.vtep_mac = [0; 6];
        half.underlay_ip = Ipv4Addr::UNSPECIFIED;
        assert_eq!(diff_peers(&[want], &[half]), (vec![want], vec![half]));
    }

    #[test]
    fn duplicate_desired_cidrs_keep_the_first() {
        let first = peer("10.244.1.0/24", 1, 1);
        let second = peer("10.244.1.0/24", 2, 2);
        let (add, remove) = diff_peers(&[first, second], &[]);
        assert_eq!(add, vec![first]);
        assert!(remove.is_empty());
    }

    #[test]
    fn outputs_are_sorted() {
        let peers: Vec<_> = [5u8, 1, 3]
            .iter()
            .map(|i| peer(&format!("10.244.{i}.0/24"), *i, *i))
            .collect();
        let (add, _) = diff_peers(&peers, &[]);
        let (_, remove) = diff_peers(&[], &peers);
        let cidrs = |v: &[PeerEntry]| v.iter().map(|p| p.pod_cidr.to_string()).collect::<Vec<_>>();
        let want = ["10.244.1.0/24", "10.244.3.0/24", "10.244.5.0/24"];
        assert_eq!(cidrs(&add), want);
        assert_eq!(cidrs(&remove), want);
    }

    #[tokio::test]
    async fn memory_overlay_applies_a_diff() {
        let a = peer("10.244.1.0/24", 1, 1);
        let b = peer("10.244.2.0/24", 2, 2);
        let b2 = peer("10.244.2.0/24", 2, 7);
        let kernel = MemoryOverlay::with_peers(&[a, b]);
        let desired = [b2];
        let actual = kernel.peers().await.expect("peers");
        let (add, remove) = diff_peers(&desired, &actual);
        for p in &remove {
            kernel.remove_peer(p).await.expect("remove");
        }
        for p in &add {
            kernel.add_peer(p).await.expect("add");
        }
        assert_eq!(kernel.peers().await.expect("peers"), vec![b2]);
        assert_eq!(
            kernel.calls(),
            vec![
                OverlayCall::Remove(a),
                OverlayCall::Remove(b),
                OverlayCall::Add(b2)
            ]
        );
    }
}

//! The node-side state IPVS mode keeps beside the IPVS table, as sets of strings so one
//! diff serves them all: the ClusterIPs on `kube-ipvs0`, and the elements of the nftables
//! sets that a fixed handful of rules in table `ip weft-ipvs` match against
//! (kube-proxy's ipset design, in nftables).
//!
//! ```text
//! prerouting/output (nat, dstnat): jump services
//! services:
//!   ip daddr . meta l4proto . th dport @cluster-ips ip saddr != CLUSTER_CIDR → mark
//!   ip daddr @node-ips meta l4proto . th dport @nodeports-local → return (keep source)
//!   ip daddr @node-ips meta l4proto . th dport @nodeports → mark
//! input (filter): ip daddr @cluster-vips, ip . proto . port not @cluster-ips → reject
//!   (the ClusterIPs are local addresses on kube-ipvs0: without this, any node process
//!   listening on all addresses would answer on every ClusterIP, on any port)
//! postrouting (nat, srcnat):
//!   marked → masquerade
//!   ip saddr . ip daddr . meta l4proto . th dport @hairpin → masquerade (a pod reaching
//!   itself through a Service must see the reply come from the node)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use ipnet::Ipv4Net;

use crate::table::{ServiceTable, VirtualService};

pub const TABLE: &str = "weft-ipvs";
pub const DUMMY: &str = "kube-ipvs0";
/// kube-proxy's masquerade bit.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Where an element lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An address on `kube-ipvs0` (`10.96.0.1`).
    Vip,
    /// `ip . proto . port` of a ClusterIP.
    ClusterIps,
    /// A ClusterIP, as an nftables element (for the input filter).
    ClusterVips,
    /// `proto . port` of every NodePort.
    NodePorts,
    /// `proto . port` of NodePorts with externalTrafficPolicy Local.
    NodePortsLocal,
    NodeIps,
    /// `ip . ip . proto . port`: an endpoint talking to itself.
    Hairpin,
}

impl Kind {
    pub const NFT: [Kind; 6] = [
        Kind::ClusterIps,
        Kind::ClusterVips,
        Kind::NodePorts,
        Kind::NodePortsLocal,
        Kind::NodeIps,
        Kind::Hairpin,
    ];

    pub fn set_name(self) -> &'static str {
        match self {
            Kind::Vip => "vips",
            Kind::ClusterIps => "cluster-ips",
            Kind::ClusterVips => "cluster-vips",
            Kind::NodePorts => "nodeports",
            Kind::NodePortsLocal => "nodeports-local",
            Kind::NodeIps => "node-ips",
            Kind::Hairpin => "hairpin",
        }
    }

    pub fn from_set_name(name: &str) -> Option<Kind> {
        Kind::NFT.into_iter().find(|k| k.set_name() == name)
    }

    fn set_type(self) -> &'static str {
        match self {
            Kind::Vip | Kind::ClusterVips | Kind::NodeIps => "ipv4_addr",
            Kind::ClusterIps => "ipv4_addr . inet_proto . inet_service",
            Kind::NodePorts | Kind::NodePortsLocal => "inet_proto . inet_service",
            Kind::Hairpin => "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        }
    }
}

/// Elements, each counted by how many Service ports want it (two Services may share an
/// endpoint, hence a hairpin element): an element goes when its count reaches 0.
pub type Counts = BTreeMap<(Kind, String), usize>;
pub type Elements = BTreeSet<(Kind, String)>;

/// The elements one Service port wants (NodePort ones need the node addresses too, but
/// those have their own set).
pub fn service_elements(vs: &VirtualService) -> Vec<(Kind, String)> {
    let proto = vs.protocol.as_str();
    let mut out = vec![
        (Kind::Vip, vs.cluster_ip.to_string()),
        (Kind::ClusterVips, vs.cluster_ip.to_string()),
        (
            Kind::ClusterIps,
            format!("{} . {proto} . {}", vs.cluster_ip, vs.port),
        ),
    ];
    if let Some(np) = vs.node_port {
        out.push((Kind::NodePorts, format!("{proto} . {np}")));
        if vs.external_local {
            out.push((Kind::NodePortsLocal, format!("{proto} . {np}")));
        }
    }
    for ep in vs.all_endpoints() {
        out.push((
            Kind::Hairpin,
            format!("{ip} . {ip} . {proto} . {}", ep.port, ip = ep.ip),
        ));
    }
    out
}

pub fn add_counts(counts: &mut Counts, vs: &VirtualService) {
    for e in service_elements(vs) {
        *counts.entry(e).or_default() += 1;
    }
}

/// Removes one Service port's elements; returns those whose count reached 0.
pub fn remove_counts(counts: &mut Counts, vs: &VirtualService) -> Vec<(Kind, String)> {
    let mut gone = Vec::new();
    for e in service_elements(vs) {
        if let Some(n) = counts.get_mut(&e) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&e);
                gone.push(e);
            }
        }
    }
    gone
}

/// The counts for a whole table, node addresses included.
pub fn all_counts(table: &ServiceTable) -> Counts {
    let mut counts = Counts::new();
    for vs in table.services.values() {
        add_counts(&mut counts, vs);
    }
    for a in &table.node_addresses {
        counts.insert((Kind::NodeIps, a.to_string()), 1);
    }
    counts
}

/// The fixed part of the table: sets and chains, declared idempotently (`add` does not
/// fail on what exists) and the chains' rules rewritten (`flush chain`), which leaves set
/// elements and conntrack state alone.
pub fn base_script(cluster_cidr: Option<Ipv4Net>) -> String {
    let mut s = String::new();
    let t = TABLE;
    let _ = writeln!(s, "add table ip {t}");
    for k in Kind::NFT {
        let _ = writeln!(
            s,
            "add set ip {t} {} {{ type {}; }}",
            k.set_name(),
            k.set_type()
        );
    }
    for (chain, hook) in [
        (
            "prerouting",
            "type nat hook prerouting priority -100; policy accept;",
        ),
        (
            "output",
            "type nat hook output priority -100; policy accept;",
        ),
        (
            "postrouting",
            "type nat hook postrouting priority 100; policy accept;",
        ),
    ] {
        let _ = writeln!(s, "add chain ip {t} {chain} {{ {hook} }}");
        let _ = writeln!(s, "flush chain ip {t} {chain}");
    }
    let _ = writeln!(
        s,
        "add chain ip {t} input {{ type filter hook input priority filter; policy accept; }}"
    );
    let _ = writeln!(s, "flush chain ip {t} input");
    // New connections only (kube-proxy's KUBE-IPVS-FILTER): replies to a node process
    // that spoke from a ClusterIP are addressed to it too. IPVS takes its packets later
    // on the input path (priority NAT_SRC - 2), so the Services' own ports pass here.
    let _ = writeln!(
        s,
        "add rule ip {t} input ct state new ip daddr @cluster-vips meta l4proto {{ tcp, udp, sctp }} ip daddr . meta l4proto . th dport != @cluster-ips reject"
    );
    let _ = writeln!(s, "add chain ip {t} services");
    let _ = writeln!(s, "flush chain ip {t} services");
    let _ = writeln!(s, "add rule ip {t} prerouting jump services");
    let _ = writeln!(s, "add rule ip {t} output jump services");
    let mark = format!("meta mark set meta mark or {MASQUERADE_MARK:#x}");
    if let Some(cidr) = cluster_cidr {
        let _ = writeln!(
            s,
            "add rule ip {t} services ip daddr . meta l4proto . th dport @cluster-ips ip saddr != {cidr} {mark}"
        );
    }
    let _ = writeln!(
        s,
        "add rule ip {t} services ip daddr @node-ips meta l4proto . th dport @nodeports-local return"
    );
    let _ = writeln!(
        s,
        "add rule ip {t} services ip daddr @node-ips meta l4proto . th dport @nodeports {mark}"
    );
    let _ = writeln!(
        s,
        "add rule ip {t} postrouting meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade"
    );
    let _ = writeln!(
        s,
        "add rule ip {t} postrouting ip saddr . ip daddr . meta l4proto . th dport @hairpin masquerade"
    );
    s
}

/// `add element` / `delete element` commands for the nftables kinds in `add`/`del`
/// (addresses on `kube-ipvs0` are the caller's). Deletions first: an element both deleted
/// and added cannot occur (the inputs are disjoint).
pub fn element_script<'a>(
    add: impl IntoIterator<Item = &'a (Kind, String)>,
    del: impl IntoIterator<Item = &'a (Kind, String)>,
) -> String {
    let mut s = String::new();
    let mut group = |verb: &str, items: &mut dyn Iterator<Item = &'a (Kind, String)>| {
        let mut by_set: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
        for (k, e) in items {
            if *k != Kind::Vip {
                by_set.entry(*k).or_default().push(e);
            }
        }
        for (k, elems) in by_set {
            // Chunks keep each command line reasonable at 100k elements.
            for chunk in elems.chunks(1000) {
                let _ = writeln!(
                    s,
                    "{verb} element ip {TABLE} {} {{ {} }}",
                    k.set_name(),
                    chunk.join(", ")
                );
            }
        }
    };
    group("delete", &mut del.into_iter());
    group("add", &mut add.into_iter());
    s
}

//! The nftables objects a [`ServiceTable`] stands for (kube-proxy's nftables design,
//! reshaped so that endpoint changes are map elements only): pure, so scripts can be
//! tested as text.
//!
//! A Service port without session affinity is nothing but map elements:
//! - `service-ips`: `ClusterIP . proto . port` → `goto pick-cluster-PROTO-MODE-N`, a chain
//!   shared by every Service with N endpoints, which DNATs through `cluster-backends-PROTO`,
//!   keyed `ClusterIP . port . numgen MODE mod N`;
//! - `service-nodeports`: `proto . NodePort` → `goto pick-nodeport[-local]-PROTO-MODE-N`,
//!   likewise through `nodeport-backends-PROTO`, keyed `NodePort . numgen MODE mod N`;
//! - no endpoints: the verdict `drop`.
//!
//! The backend maps are per protocol because nft 1.0.6 cannot read a map typed with `th
//! dport` back from the kernel, and a DNAT to a port needs the protocol known.
//!
//! Adding or removing an endpoint therefore changes a handful of elements and never a
//! chain, and the number of chains stays small whatever the number of Services: `nft`
//! reads every chain before each transaction, which made per-Service chains cost ~50 ms
//! per change at 10k Services.
//!
//! With ClientIP affinity a Service port keeps chains of its own (named after it, so
//! `nft list table ip weft-proxy` reads like the Services): `service-NS/NAME/PROTO/PORT`,
//! `external-…`, and per endpoint `endpoint-…__IP/PORT` with `affinity-…__IP/PORT`, the
//! clients recently sent there (a dynamic set with the affinity timeout).
//!
//! Hairpin (a pod reaching itself through a Service) is one postrouting rule over the set
//! `hairpin` of `IP . IP` pairs, one per endpoint address; the proxy keeps that set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::table::{Endpoint, Protocol, ServicePortName, ServiceTable, VirtualService};

use super::NftConfig;

pub const TABLE: &str = "weft-proxy";
/// The packet mark meaning "masquerade me in postrouting" (kube-proxy's bit).
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Chains whose last rule carries this comment prefix and a hash of the chain's content;
/// a restarted proxy compares hashes instead of parsing rules back.
pub const HASH_PREFIX: &str = "weft:";

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const CLUSTER_BACKENDS: &str = "cluster-backends";
pub const NODEPORT_BACKENDS: &str = "nodeport-backends";
/// The protocols with backend maps of their own.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// `cluster-backends-tcp` and the like.
pub fn backends_map(kind: &str, proto: Protocol) -> String {
    format!("{kind}-{proto}")
}
pub const HAIRPIN: &str = "hairpin";
const MARK_CHAIN: &str = "mark-for-masquerade";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The base-chain declaration (`type nat hook …;`) for hooked chains.
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

impl Chain {
    fn regular(rules: Vec<String>) -> Self {
        Chain { hook: None, rules }
    }

    /// A stable content hash (FNV-1a: the same across builds and Rust versions, unlike
    /// std's hasher).
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(self.hook.unwrap_or("").as_bytes());
        for r in &self.rules {
            eat(b"\n");
            eat(r.as_bytes());
        }
        format!("{h:016x}")
    }
}

/// Desired objects, or the part of them belonging to some Service ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub chains: BTreeMap<String, Chain>,
    /// Affinity sets and their timeouts (seconds).
    pub sets: BTreeMap<String, u32>,
    /// `IP . proto . port` → verdict (`goto CHAIN` or `drop`).
    pub service_ips: BTreeMap<String, String>,
    /// `proto . port` → verdict.
    pub nodeports: BTreeMap<String, String>,
    /// Per backend map (`cluster-backends-tcp`: `IP . port . index`;
    /// `nodeport-backends-tcp`: `port . index`), key → `endpoint IP . port`.
    pub backends: BTreeMap<String, BTreeMap<String, String>>,
    /// None when this rendering does not cover the node addresses (incremental syncs).
    pub nodeport_ips: Option<BTreeSet<Ipv4Addr>>,
    /// Endpoint addresses in the hairpin set; None when not covered (incremental syncs,
    /// where the proxy's reference counts decide).
    pub hairpin: Option<BTreeSet<Ipv4Addr>>,
}

/// Everything: the fixed chains, every Service port, the NodePort addresses.
pub fn full(table: &ServiceTable, cfg: &NftConfig) -> Rendered {
    let mut out = base(cfg);
    for vs in table.services.values() {
        service(vs, cfg, &mut out);
    }
    out.nodeport_ips = Some(table.node_addresses.iter().copied().collect());
    out.hairpin = Some(
        table
            .services
            .values()
            .flat_map(|vs| vs.cluster_endpoints.iter().chain(&vs.node_port_endpoints))
            .map(|ep| ep.ip)
            .collect(),
    );
    out
}

/// Only the objects of the named Service ports present in `table`.
pub fn services<'a>(
    table: &ServiceTable,
    names: impl IntoIterator<Item = &'a ServicePortName>,
    cfg: &NftConfig,
) -> Rendered {
    let mut out = Rendered::default();
    for name in names {
        if let Some(vs) = table.services.get(name) {
            service(vs, cfg, &mut out);
        }
    }
    out
}

/// The fixed part: a constant number of rules whatever the number of Services.
fn base(_cfg: &NftConfig) -> Rendered {
    let mut out = Rendered::default();
    let mut add = |name: &str, hook, rules: &[&str]| {
        out.chains.insert(
            name.to_string(),
            Chain {
                hook,
                rules: rules.iter().map(|r| r.to_string()).collect(),
            },
        );
    };
    add(
        "services",
        None,
        &[
            &format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            // NodePorts: traffic to one of this node's own addresses (fib), restricted to
            // the nodeport addresses.
            &format!(
                "fib daddr type local ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"
            ),
        ],
    );
    add(
        "nat-prerouting",
        Some("type nat hook prerouting priority -100; policy accept;"),
        &["jump services"],
    );
    add(
        "nat-output",
        Some("type nat hook output priority -100; policy accept;"),
        &["jump services"],
    );
    add(
        MARK_CHAIN,
        None,
        &[&format!("meta mark set meta mark or {MASQUERADE_MARK:#x}")],
    );
    add(
        "nat-postrouting",
        Some("type nat hook postrouting priority 100; policy accept;"),
        &[
            // A pod sent to itself must see the reply come from the Service address.
            &format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade fully-random"),
            &format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
            // Clear the bit so a packet forwarded again (e.g. into a tunnel) is not
            // masqueraded twice.
            &format!("meta mark set meta mark xor {MASQUERADE_MARK:#x}"),
            "masquerade fully-random",
        ],
    );
    out
}

fn endpoint_suffix(name: &ServicePortName, ep: &Endpoint) -> String {
    format!("{name}__{}/{}", ep.ip, ep.port)
}

/// The chain ClusterIP traffic of this Service port jumps to.
pub fn service_chain(name: &ServicePortName) -> String {
    format!("service-{name}")
}

pub fn external_chain(name: &ServicePortName) -> String {
    format!("external-{name}")
}

pub fn endpoint_chain(name: &ServicePortName, ep: &Endpoint) -> String {
    format!("endpoint-{}", endpoint_suffix(name, ep))
}

pub fn affinity_set(name: &ServicePortName, ep: &Endpoint) -> String {
    format!("affinity-{}", endpoint_suffix(name, ep))
}

fn service(vs: &VirtualService, cfg: &NftConfig, out: &mut Rendered) {
    if vs.affinity_timeout.is_some() {
        return service_with_affinity(vs, cfg, out);
    }
    let proto = vs.protocol;
    let mode = numgen_mode(vs);
    let verdict = pick(
        out,
        PickKind::Cluster,
        proto,
        mode,
        vs.cluster_endpoints.len(),
        cfg,
    );
    out.service_ips.insert(
        format!("{} . {proto} . {}", vs.cluster_ip, vs.port),
        verdict,
    );
    let map = out
        .backends
        .entry(backends_map(CLUSTER_BACKENDS, proto))
        .or_default();
    for (i, ep) in vs.cluster_endpoints.iter().enumerate() {
        map.insert(
            format!("{} . {} . {i}", vs.cluster_ip, vs.port),
            backend(ep),
        );
    }

    if let Some(node_port) = vs.node_port {
        let kind = if vs.external_local {
            PickKind::NodePortLocal
        } else {
            PickKind::NodePort
        };
        let verdict = pick(out, kind, proto, mode, vs.node_port_endpoints.len(), cfg);
        out.nodeports
            .insert(format!("{proto} . {node_port}"), verdict);
        let map = out
            .backends
            .entry(backends_map(NODEPORT_BACKENDS, proto))
            .or_default();
        for (i, ep) in vs.node_port_endpoints.iter().enumerate() {
            map.insert(format!("{node_port} . {i}"), backend(ep));
        }
    }
}

fn backend(ep: &Endpoint) -> String {
    format!("{} . {}", ep.ip, ep.port)
}

/// `numgen` mode: `inc` is round robin (the `rr` scheduler; the counter is shared by the
/// Services using one pick chain, so each still sees its endpoints in turn on average),
/// anything else random.
fn numgen_mode(vs: &VirtualService) -> &'static str {
    if vs.scheduler == "rr" {
        "inc"
    } else {
        "random"
    }
}

#[derive(Debug, Clone, Copy)]
enum PickKind {
    Cluster,
    /// externalTrafficPolicy Cluster: masquerade, the endpoint may be on another node.
    NodePort,
    /// externalTrafficPolicy Local: the client address is kept.
    NodePortLocal,
}

/// The verdict sending traffic to one of `n` endpoints, adding the shared pick chain it
/// names to `out`; `drop` when there is no endpoint (as kube-proxy does for traffic with
/// nowhere to go).
fn pick(
    out: &mut Rendered,
    kind: PickKind,
    proto: Protocol,
    mode: &str,
    n: usize,
    cfg: &NftConfig,
) -> String {
    if n == 0 {
        return "drop".to_string();
    }
    let choose = format!("{proto} dport . numgen {mode} mod {n}");
    let (name, rules) = match kind {
        PickKind::Cluster => {
            let mut rules = Vec::new();
            if let Some(cidr) = cfg.cluster_cidr {
                // From outside the cluster (the node itself, other hosts) to a ClusterIP:
                // the reply must come back through this node, so masquerade.
                rules.push(format!("ip saddr != {cidr} jump {MARK_CHAIN}"));
            }
            rules.push(format!(
                "meta l4proto {proto} dnat to ip daddr . {choose} map @{}",
                backends_map(CLUSTER_BACKENDS, proto)
            ));
            (format!("pick-cluster-{proto}-{mode}-{n}"), rules)
        }
        PickKind::NodePort | PickKind::NodePortLocal => {
            let dnat = format!(
                "meta l4proto {proto} dnat to {choose} map @{}",
                backends_map(NODEPORT_BACKENDS, proto)
            );
            if matches!(kind, PickKind::NodePort) {
                (
                    format!("pick-nodeport-{proto}-{mode}-{n}"),
                    vec![format!("jump {MARK_CHAIN}"), dnat],
                )
            } else {
                (
                    format!("pick-nodeport-local-{proto}-{mode}-{n}"),
                    vec![dnat],
                )
            }
        }
    };
    out.chains
        .entry(name.clone())
        .or_insert_with(|| Chain::regular(rules));
    format!("goto {name}")
}

/// True for the chains shared by many Services (kept while any Service uses them).
pub fn is_pick_chain(name: &str) -> bool {
    name.starts_with("pick-")
}

fn service_with_affinity(vs: &VirtualService, cfg: &NftConfig, out: &mut Rendered) {
    let name = &vs.name;
    let proto = vs.protocol.as_str();

    let mut rules = Vec::new();
    if let Some(cidr) = cfg.cluster_cidr {
        rules.push(format!("ip saddr != {cidr} jump {MARK_CHAIN}"));
    }
    rules.extend(choose(vs, &vs.cluster_endpoints));
    let chain = service_chain(name);
    out.chains.insert(chain.clone(), Chain::regular(rules));
    out.service_ips.insert(
        format!("{} . {proto} . {}", vs.cluster_ip, vs.port),
        format!("goto {chain}"),
    );

    if let Some(node_port) = vs.node_port {
        let mut rules = Vec::new();
        if !vs.external_local {
            rules.push(format!("jump {MARK_CHAIN}"));
        }
        rules.extend(choose(vs, &vs.node_port_endpoints));
        let chain = external_chain(name);
        out.chains.insert(chain.clone(), Chain::regular(rules));
        out.nodeports
            .insert(format!("{proto} . {node_port}"), format!("goto {chain}"));
    }

    let timeout = vs.affinity_timeout.unwrap_or_default();
    for ep in vs.all_endpoints() {
        let set = affinity_set(name, &ep);
        // The timeout is given per element, not only as the set's default: a changed
        // timeout then rewrites this chain, and the set itself never has to change (a set
        // still referenced by rules cannot be replaced).
        let rules = vec![
            format!("update @{set} {{ ip saddr timeout {timeout}s }}"),
            format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port),
        ];
        out.sets.insert(set, timeout);
        out.chains
            .insert(endpoint_chain(name, &ep), Chain::regular(rules));
    }
}

/// The rules choosing one of `endpoints` for a Service with affinity: clients seen
/// recently first, then `numgen`; `drop` without endpoints.
fn choose(vs: &VirtualService, endpoints: &[Endpoint]) -> Vec<String> {
    if endpoints.is_empty() {
        return vec!["drop".to_string()];
    }
    let mut rules: Vec<String> = endpoints
        .iter()
        .map(|ep| {
            format!(
                "ip saddr @{} goto {}",
                affinity_set(&vs.name, ep),
                endpoint_chain(&vs.name, ep)
            )
        })
        .collect();
    let targets: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(&vs.name, ep)))
        .collect();
    rules.push(format!(
        "numgen {} mod {} vmap {{ {} }}",
        numgen_mode(vs),
        endpoints.len(),
        targets.join(", ")
    ));
    rules
}

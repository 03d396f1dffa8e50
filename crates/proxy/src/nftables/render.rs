//! The nftables objects a [`ServiceTable`] stands for (kube-proxy's nftables design,
//! simplified): pure, so scripts can be tested as text.
//!
//! Per Service port, named after it so `nft list table ip weft-proxy` reads like the
//! Services themselves:
//! - `service-NS/NAME/PROTO/PORT`: ClusterIP traffic; picks an endpoint;
//! - `external-…`: NodePort traffic (its own chain, because the external policy can
//!   choose other endpoints and masquerade differently);
//! - `endpoint-…__IP/PORT`: DNAT to one endpoint (hairpin traffic is marked first);
//! - `affinity-…__IP/PORT`: with ClientIP affinity, the clients recently sent to that
//!   endpoint (a dynamic set with the affinity timeout).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::table::{Endpoint, ServicePortName, ServiceTable, VirtualService};

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
    /// `IP . proto . port` → chain.
    pub service_ips: BTreeMap<String, String>,
    /// `proto . port` → chain.
    pub nodeports: BTreeMap<String, String>,
    /// None when this rendering does not cover the node addresses (incremental syncs).
    pub nodeport_ips: Option<BTreeSet<Ipv4Addr>>,
}

/// Everything: the fixed chains, every Service port, the NodePort addresses.
pub fn full(table: &ServiceTable, cfg: &NftConfig) -> Rendered {
    let mut out = base(cfg);
    for vs in table.services.values() {
        service(vs, cfg, &mut out);
    }
    out.nodeport_ips = Some(table.node_addresses.iter().copied().collect());
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
    let name = &vs.name;
    let proto = vs.protocol.as_str();

    let mut rules = Vec::new();
    if let Some(cidr) = cfg.cluster_cidr {
        // From outside the cluster (the node itself, other hosts) to a ClusterIP: the
        // reply must come back through this node, so masquerade.
        rules.push(format!("ip saddr != {cidr} jump {MARK_CHAIN}"));
    }
    rules.extend(choose(vs, &vs.cluster_endpoints));
    let chain = service_chain(name);
    out.chains.insert(chain.clone(), Chain::regular(rules));
    out.service_ips
        .insert(format!("{} . {proto} . {}", vs.cluster_ip, vs.port), chain);

    if let Some(node_port) = vs.node_port {
        let mut rules = Vec::new();
        if !vs.external_local {
            // externalTrafficPolicy Cluster: the endpoint may be on another node, and its
            // reply must return through this one.
            rules.push(format!("jump {MARK_CHAIN}"));
        }
        rules.extend(choose(vs, &vs.node_port_endpoints));
        let chain = external_chain(name);
        out.chains.insert(chain.clone(), Chain::regular(rules));
        out.nodeports
            .insert(format!("{proto} . {node_port}"), chain);
    }

    for ep in vs.all_endpoints() {
        let mut rules = vec![
            // Hairpin: a pod reaching itself through the VIP must see the reply come from
            // the VIP, so its source is rewritten too.
            format!("ip saddr {} jump {MARK_CHAIN}", ep.ip),
        ];
        if let Some(timeout) = vs.affinity_timeout {
            let set = affinity_set(name, &ep);
            // The timeout is given per element, not only as the set's default: a changed
            // timeout then rewrites this chain, and the set itself never has to change
            // (a set still referenced by rules cannot be replaced).
            rules.push(format!("update @{set} {{ ip saddr timeout {timeout}s }}"));
            out.sets.insert(set, timeout);
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            ep.ip, ep.port
        ));
        out.chains
            .insert(endpoint_chain(name, &ep), Chain::regular(rules));
    }
}

/// The rules choosing one of `endpoints`: clients with affinity first, then `numgen`
/// (`inc` is round robin, the `rr` scheduler; any other scheduler is random). No endpoint:
/// drop, as kube-proxy does for traffic that has nowhere to go.
fn choose(vs: &VirtualService, endpoints: &[Endpoint]) -> Vec<String> {
    if endpoints.is_empty() {
        return vec!["drop".to_string()];
    }
    let mut rules = Vec::new();
    if vs.affinity_timeout.is_some() {
        for ep in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set(&vs.name, ep),
                endpoint_chain(&vs.name, ep)
            ));
        }
    }
    let mode = if vs.scheduler == "rr" {
        "inc"
    } else {
        "random"
    };
    let targets: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(&vs.name, ep)))
        .collect();
    rules.push(format!(
        "numgen {mode} mod {} vmap {{ {} }}",
        endpoints.len(),
        targets.join(", ")
    ));
    rules
}

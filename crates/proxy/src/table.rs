//! The desired service table: a pure function of Services, Endpoints and this node, and the
//! per-service diff between two tables. Backends (nftables now, IPVS later) only translate
//! a [`ServiceTable`] and a [`Changes`] into kernel state; every Kubernetes rule about which
//! backend serves which traffic lives here, where it is unit-tested without root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use weft_api::core::{Endpoints, Service, ServiceType};

/// The annotation choosing the scheduler (IPVS names; nftables maps `rr` to round robin
/// and everything else to random choice).
pub const SCHEDULER_ANNOTATION: &str = "weft.io/ipvs-scheduler";
pub const DEFAULT_SCHEDULER: &str = "rr";
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// The schedulers IPVS knows (`ipvsadm -s`); anything else is reported as a problem.
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes' spelling, `""` meaning TCP.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' (and /etc/protocols') lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One port of one Service: the unit the proxy programs, diffs and names chains after
/// (kube-proxy's `ServicePortName`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The Service port's name, `""` for a single unnamed port.
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    /// `ns/name/tcp/port` (`_` for an unnamed port, which no port name can be).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = if self.port.is_empty() {
            "_"
        } else {
            &self.port
        };
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace, self.name, self.protocol, port
        )
    }
}

/// A ready endpoint with the port resolved for one Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// On this node (the endpoint's `nodeName` is ours).
    pub local: bool,
}

/// Everything the kernel needs for one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub name: ServicePortName,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: String,
    /// `sessionAffinity: ClientIP`: seconds a client sticks to its endpoint.
    pub affinity_timeout: Option<u32>,
    /// Backends for traffic to the ClusterIP (only local ones with
    /// `internalTrafficPolicy: Local`), sorted.
    pub cluster_endpoints: Vec<Endpoint>,
    /// The NodePort, opened on every address of [`ServiceTable::node_addresses`].
    pub node_port: Option<u16>,
    /// `externalTrafficPolicy: Local`: NodePort traffic only goes to local endpoints and
    /// keeps its source address (no masquerade).
    pub external_local: bool,
    /// Backends for NodePort traffic (only local ones with `externalTrafficPolicy: Local`),
    /// sorted. Empty without a NodePort.
    pub node_port_endpoints: Vec<Endpoint>,
}

impl VirtualService {
    /// Every endpoint either traffic kind can reach, sorted and deduplicated.
    pub fn all_endpoints(&self) -> Vec<Endpoint> {
        let set: BTreeSet<Endpoint> = self
            .cluster_endpoints
            .iter()
            .chain(&self.node_port_endpoints)
            .copied()
            .collect();
        set.into_iter().collect()
    }
}

/// Something about one Service that kept it (or a part of it) from being programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name`.
    pub service: String,
    pub message: String,
}

/// The node the proxy runs on, as the table needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeContext {
    pub node_name: String,
    pub addresses: Vec<IpAddr>,
    /// `--nodeport-addresses`: NodePorts only on node addresses inside one of these; empty
    /// means every address.
    pub nodeport_addresses: Vec<IpNet>,
}

/// The desired state of the service proxy on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub services: BTreeMap<ServicePortName, VirtualService>,
    /// IPv4 node addresses NodePorts answer on, sorted.
    pub node_addresses: Vec<Ipv4Addr>,
    pub problems: Vec<Problem>,
}

impl ServiceTable {
    /// Computes the table. Services are visited in namespace/name order, so when two claim
    /// the same ClusterIP:port or NodePort the first keeps it and the other is a problem.
    pub fn build(services: &[Service], endpoints: &[Endpoints], node: &NodeContext) -> Self {
        let mut table = ServiceTable {
            node_addresses: nodeport_addresses(node),
            ..Default::default()
        };
        let eps: HashMap<(&str, &str), &Endpoints> = endpoints
            .iter()
            .map(|e| {
                (
                    (namespace(&e.metadata.namespace), e.metadata.name.as_str()),
                    e,
                )
            })
            .collect();
        let mut sorted: Vec<&Service> = services.iter().collect();
        sorted.sort_by(|a, b| {
            (namespace(&a.metadata.namespace), &a.metadata.name)
                .cmp(&(namespace(&b.metadata.namespace), &b.metadata.name))
        });
        let mut vips = BTreeSet::new();
        let mut node_ports = BTreeSet::new();
        for svc in sorted {
            let key = (
                namespace(&svc.metadata.namespace),
                svc.metadata.name.as_str(),
            );
            match service_ports(svc, eps.get(&key).copied(), &node.node_name) {
                Ok(ports) => {
                    // All of a Service's ports or none: half a Service is harder to debug.
                    let clash = ports.iter().find_map(|vs| {
                        if vips.contains(&(vs.cluster_ip, vs.protocol, vs.port)) {
                            Some(format!(
                                "{}:{}/{} is already used by another Service",
                                vs.cluster_ip, vs.port, vs.protocol
                            ))
                        } else {
                            vs.node_port
                                .filter(|np| node_ports.contains(&(vs.protocol, *np)))
                                .map(|np| {
                                    format!(
                                        "nodePort {np}/{} is already used by another Service",
                                        vs.protocol
                                    )
                                })
                        }
                    });
                    if let Some(message) = clash {
                        table.problems.push(Problem {
                            service: format!("{}/{}", key.0, key.1),
                            message,
                        });
                        continue;
                    }
                    for vs in ports {
                        vips.insert((vs.cluster_ip, vs.protocol, vs.port));
                        if let Some(np) = vs.node_port {
                            node_ports.insert((vs.protocol, np));
                        }
                        table.services.insert(vs.name.clone(), vs);
                    }
                }
                Err(Skip::Silently) => {}
                Err(Skip::Problem(message)) => table.problems.push(Problem {
                    service: format!("{}/{}", key.0, key.1),
                    message,
                }),
            }
        }
        table
    }
}

pub(crate) fn namespace(ns: &Option<String>) -> &str {
    ns.as_deref().unwrap_or("default")
}

pub(crate) fn nodeport_addresses(node: &NodeContext) -> Vec<Ipv4Addr> {
    let set: BTreeSet<Ipv4Addr> = node
        .addresses
        .iter()
        .filter(|a| {
            node.nodeport_addresses.is_empty()
                || node.nodeport_addresses.iter().any(|n| n.contains(*a))
        })
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    set.into_iter().collect()
}

pub(crate) enum Skip {
    /// Nothing to program, and nothing wrong (headless, ExternalName, no ClusterIP yet).
    Silently,
    Problem(String),
}

pub(crate) fn service_ports(
    svc: &Service,
    eps: Option<&Endpoints>,
    node_name: &str,
) -> Result<Vec<VirtualService>, Skip> {
    let spec = &svc.spec;
    let Some(kind) = svc.service_type() else {
        return Err(Skip::Problem(format!("unknown type {:?}", spec.type_)));
    };
    if svc.is_headless() || spec.cluster_ip.is_empty() || kind == ServiceType::ExternalName {
        return Err(Skip::Silently);
    }
    let cluster_ip = match spec.cluster_ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(_)) => {
            return Err(Skip::Problem(format!(
                "clusterIP {}: IPv6 is not supported by this proxy",
                spec.cluster_ip
            )))
        }
        Err(_) => {
            return Err(Skip::Problem(format!(
                "clusterIP {:?} is not an address",
                spec.cluster_ip
            )))
        }
    };
    let scheduler = svc
        .metadata
        .annotations
        .get(SCHEDULER_ANNOTATION)
        .map(String::as_str)
        .unwrap_or(DEFAULT_SCHEDULER);
    if !SCHEDULERS.contains(&scheduler) {
        return Err(Skip::Problem(format!(
            "annotation {SCHEDULER_ANNOTATION}: unknown scheduler {scheduler:?}"
        )));
    }
    let affinity_timeout = (spec.session_affinity == "ClientIP").then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let internal_local = spec.internal_traffic_policy == "Local";
    let external_local = kind.has_node_ports() && spec.external_traffic_policy == "Local";

    let mut ports = Vec::new();
    for sp in &spec.ports {
        let Some(protocol) = Protocol::parse(&sp.protocol) else {
            return Err(Skip::Problem(format!(
                "port {:?}: unknown protocol {:?}",
                sp.name, sp.protocol
            )));
        };
        let port = u16::try_from(sp.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Skip::Problem(format!("port {:?}: bad port {}", sp.name, sp.port)))?;
        let node_port = match sp.node_port {
            Some(np) if kind.has_node_ports() && np != 0 => {
                Some(u16::try_from(np).ok().filter(|p| *p > 0).ok_or_else(|| {
                    Skip::Problem(format!("port {:?}: bad nodePort {np}", sp.name))
                })?)
            }
            _ => None,
        };
        let ready = eps
            .map(|e| ready_endpoints(e, &sp.name, protocol, node_name))
            .unwrap_or_default();
        let local_only = |v: &Vec<Endpoint>| v.iter().copied().filter(|e| e.local).collect();
        let cluster_endpoints = if internal_local {
            local_only(&ready)
        } else {
            ready.clone()
        };
        let node_port_endpoints = match node_port {
            None => Vec::new(),
            Some(_) if external_local => local_only(&ready),
            Some(_) => ready,
        };
        ports.push(VirtualService {
            name: ServicePortName {
                namespace: namespace(&svc.metadata.namespace).to_string(),
                name: svc.metadata.name.clone(),
                port: sp.name.clone(),
                protocol,
            },
            cluster_ip,
            port,
            protocol,
            scheduler: scheduler.to_string(),
            affinity_timeout,
            cluster_endpoints,
            node_port,
            external_local,
            node_port_endpoints,
        });
    }

    // As kube-proxy: Endpoints ports are matched to Service ports by name. A name no
    // Service port has means the two disagree; programming a guess would send traffic to
    // the wrong port, so the Service is left out and reported.
    if let Some(eps) = eps {
        for subset in &eps.subsets {
            for ep in &subset.ports {
                let proto = Protocol::parse(&ep.protocol);
                let matched = ports
                    .iter()
                    .any(|vs| vs.name.port == ep.name && Some(vs.protocol) == proto);
                if !matched {
                    return Err(Skip::Problem(format!(
                        "Endpoints port {:?} ({}/{}) matches no port of the Service",
                        ep.name,
                        ep.port,
                        if ep.protocol.is_empty() {
                            "TCP"
                        } else {
                            &ep.protocol
                        }
                    )));
                }
            }
        }
    }
    Ok(ports)
}

/// The ready IPv4 addresses serving the Service port named `port_name`, each with the
/// port its subset gives that name. Sorted and deduplicated.
fn ready_endpoints(
    eps: &Endpoints,
    port_name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for subset in &eps.subsets {
        let Some(ep_port) = subset
            .ports
            .iter()
            .find(|p| p.name == port_name && Protocol::parse(&p.protocol) == Some(protocol))
        else {
            continue;
        };
        let Some(port) = u16::try_from(ep_port.port).ok().filter(|p| *p > 0) else {
            continue;
        };
        for addr in &subset.addresses {
            // IPv6 endpoints cannot be reached from an IPv4 ClusterIP: left out.
            if let Ok(ip) = addr.ip.parse::<Ipv4Addr>() {
                let local = !node_name.is_empty() && addr.node_name.as_deref() == Some(node_name);
                out.insert(Endpoint { ip, port, local });
            }
        }
    }
    out.into_iter().collect()
}

/// What changed between two tables, per Service port. Each list is sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<ServicePortName>,
    pub changed: Vec<ServicePortName>,
    pub removed: Vec<ServicePortName>,
    /// The NodePort addresses changed (a node-wide change, not a per-service one).
    pub node_addresses: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && !self.node_addresses
    }

    /// Every Service port touched, in order.
    pub fn touched(&self) -> impl Iterator<Item = &ServicePortName> {
        self.added.iter().chain(&self.changed).chain(&self.removed)
    }
}

/// The per-service difference from `old` to `new`; problems are not compared.
pub fn diff(old: &ServiceTable, new: &ServiceTable) -> Changes {
    let mut changes = Changes {
        node_addresses: old.node_addresses != new.node_addresses,
        ..Default::default()
    };
    for (name, vs) in &new.services {
        match old.services.get(name) {
            None => changes.added.push(name.clone()),
            Some(prev) if prev != vs => changes.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .services
        .keys()
        .filter(|k| !new.services.contains_key(*k))
        .cloned()
        .collect();
    changes
}

#[cfg(test)]
#[path = "table_tests.rs"]
pub(crate) mod tests;

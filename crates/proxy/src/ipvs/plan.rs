//! Pure planning for the IPVS backend: which virtual servers and real servers a
//! [`ServiceTable`] stands for, and the ops taking the kernel's table (or our model of it)
//! there, with graceful termination of removed real servers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use weft_netlink::ipvs::{self, DestKey, Destination, IpvsOp, Service, ServiceKey};

use crate::table::{Protocol, ServicePortName, ServiceTable, VirtualService};

/// One virtual server as we want it, and the Service port it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedVs {
    pub owner: ServicePortName,
    pub service: Service,
    pub dests: BTreeMap<DestKey, Destination>,
}

/// A virtual server as the kernel holds it (or as we last left it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaveVs {
    pub service: Service,
    pub dests: BTreeMap<DestKey, Destination>,
}

pub type Model = BTreeMap<ServiceKey, HaveVs>;

pub fn ipvs_protocol(p: Protocol) -> ipvs::Protocol {
    match p {
        Protocol::Tcp => ipvs::Protocol::Tcp,
        Protocol::Udp => ipvs::Protocol::Udp,
        Protocol::Sctp => ipvs::Protocol::Sctp,
    }
}

fn vs_key(vs: &VirtualService, addr: Ipv4Addr, port: u16) -> ServiceKey {
    ServiceKey::addr(ipvs_protocol(vs.protocol), IpAddr::V4(addr), port)
}

/// The virtual servers of one Service port: its ClusterIP one, and one per NodePort
/// address.
pub fn wanted(vs: &VirtualService, node_addresses: &[Ipv4Addr]) -> Vec<WantedVs> {
    let make = |key: ServiceKey, endpoints: &[crate::table::Endpoint]| {
        let mut service = Service::new(key, &vs.scheduler);
        if let Some(timeout) = vs.affinity_timeout {
            service = service.persistent(timeout);
        }
        let dests = endpoints
            .iter()
            .map(|ep| {
                let d = Destination::masq(IpAddr::V4(ep.ip), ep.port, 1);
                (d.key(), d)
            })
            .collect();
        WantedVs {
            owner: vs.name.clone(),
            service,
            dests,
        }
    };
    let mut out = vec![make(
        vs_key(vs, vs.cluster_ip, vs.port),
        &vs.cluster_endpoints,
    )];
    if let Some(np) = vs.node_port {
        for addr in node_addresses {
            out.push(make(vs_key(vs, *addr, np), &vs.node_port_endpoints));
        }
    }
    out
}

/// Every virtual server of `table`, or of only the Service ports in `names`.
pub fn wanted_for<'a>(
    table: &ServiceTable,
    names: impl IntoIterator<Item = &'a ServicePortName>,
) -> BTreeMap<ServiceKey, WantedVs> {
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(vs) = table.services.get(name) {
            for w in wanted(vs, &table.node_addresses) {
                out.insert(w.service.key, w);
            }
        }
    }
    out
}

pub fn wanted_all(table: &ServiceTable) -> BTreeMap<ServiceKey, WantedVs> {
    wanted_for(table, table.services.keys())
}

/// Real servers on their way out: weight 0 since `since`, deleted once idle or at the
/// grace period's end.
pub type Terminating = BTreeMap<(ServiceKey, DestKey), Instant>;

/// What to do to go from `have` to `want` for the virtual servers in `keys`.
///
/// - missing virtual servers are created, changed ones edited, unwanted ones deleted
///   (`keys` only ever holds ones we own);
/// - a real server no longer wanted gets weight 0 first (new connections avoid it,
///   established ones go on) and is deleted once it has no active or inactive
///   connections, or `grace` after it was set to 0 (`terminating` keeps the time);
/// - a terminating real server wanted again gets its weight back.
pub fn plan(
    want: &BTreeMap<ServiceKey, WantedVs>,
    have: &Model,
    keys: &BTreeSet<ServiceKey>,
    terminating: &mut Terminating,
    now: Instant,
    grace: Duration,
) -> Vec<IpvsOp> {
    let mut ops = Vec::new();
    for key in keys {
        match (want.get(key), have.get(key)) {
            (None, None) => {}
            (None, Some(_)) => {
                // The whole virtual server goes (as kube-proxy): its connections are
                // dropped with it; only real servers of a live Service drain.
                ops.push(IpvsOp::DelService(*key));
                terminating.retain(|(k, _), _| k != key);
            }
            (Some(w), None) => {
                ops.push(IpvsOp::NewService(w.service.clone()));
                ops.extend(w.dests.values().map(|d| IpvsOp::NewDest(*key, d.clone())));
            }
            (Some(w), Some(h)) => {
                if !w.service.same_settings(&h.service) {
                    ops.push(IpvsOp::SetService(w.service.clone()));
                }
                plan_dests(key, w, h, terminating, now, grace, &mut ops);
            }
        }
    }
    ops
}

fn plan_dests(
    key: &ServiceKey,
    w: &WantedVs,
    h: &HaveVs,
    terminating: &mut Terminating,
    now: Instant,
    grace: Duration,
    ops: &mut Vec<IpvsOp>,
) {
    for (dk, d) in &w.dests {
        match h.dests.get(dk) {
            None => ops.push(IpvsOp::NewDest(*key, d.clone())),
            Some(hd) => {
                if !d.same_settings(hd) {
                    ops.push(IpvsOp::SetDest(*key, d.clone()));
                }
                terminating.remove(&(*key, *dk));
            }
        }
    }
    for (dk, hd) in &h.dests {
        if w.dests.contains_key(dk) {
            continue;
        }
        let since = *terminating.entry((*key, *dk)).or_insert(now);
        let idle = hd.active_conns == 0 && hd.inactive_conns == 0;
        if hd.weight != 0 {
            let mut zero = hd.clone();
            zero.weight = 0;
            ops.push(IpvsOp::SetDest(*key, zero));
        } else if idle || now.saturating_duration_since(since) >= grace {
            ops.push(IpvsOp::DelDest(*key, *dk));
            terminating.remove(&(*key, *dk));
        }
    }
}

/// Updates `model` with an op the kernel accepted.
pub fn record(model: &mut Model, op: &IpvsOp) {
    match op {
        IpvsOp::NewService(s) | IpvsOp::SetService(s) => {
            let entry = model.entry(s.key).or_insert_with(|| HaveVs {
                service: s.clone(),
                dests: BTreeMap::new(),
            });
            entry.service = s.clone();
        }
        IpvsOp::DelService(k) => {
            model.remove(k);
        }
        IpvsOp::NewDest(k, d) | IpvsOp::SetDest(k, d) => {
            if let Some(h) = model.get_mut(k) {
                let entry = h.dests.entry(d.key()).or_insert_with(|| d.clone());
                entry.weight = d.weight;
                entry.forward = d.forward;
                entry.upper_threshold = d.upper_threshold;
                entry.lower_threshold = d.lower_threshold;
            }
        }
        IpvsOp::DelDest(k, d) => {
            if let Some(h) = model.get_mut(k) {
                h.dests.remove(d);
            }
        }
        IpvsOp::Flush => model.clear(),
    }
}

/// The next time a sync has work to do for terminating real servers: at the latest at
/// the end of the earliest grace period, and every `poll` meanwhile to see whether one
/// went idle.
pub fn next_wakeup(
    terminating: &Terminating,
    now: Instant,
    grace: Duration,
    poll: Duration,
) -> Option<Duration> {
    terminating
        .values()
        .map(|since| (*since + grace).saturating_duration_since(now))
        .min()
        .map(|left| left.min(poll))
}

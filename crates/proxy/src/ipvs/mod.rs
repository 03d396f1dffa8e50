//! The IPVS backend, as kube-proxy's IPVS mode:
//!
//! - every ClusterIP is a /32 on the dummy device `kube-ipvs0` (left down), so the node
//!   accepts traffic for it and IPVS (hooked on local input) takes it from there;
//! - one virtual server per ClusterIP:port/protocol and per node address:NodePort, with
//!   the Service's scheduler, and persistence for `sessionAffinity: ClientIP`;
//! - one masquerading (NAT) real server per ready endpoint, weight 1;
//! - masquerade and hairpin through a fixed set of nftables rules over sets
//!   ([`sets`]), table `ip weft-ipvs`.
//!
//! Planning is pure ([`plan`], [`sets`]); the kernel is behind [`IpvsOps`] and
//! [`HostOps`]. The first sync (and the first after a failure) reads the kernel — virtual
//! servers, real servers, `kube-ipvs0`'s addresses, the set elements — and changes only
//! what differs: nothing is flushed, so a restarted proxy drops no connection. Later
//! syncs touch only the Service ports [`diff`] reports.
//!
//! Graceful termination: a real server that is no longer wanted gets weight 0 (no new
//! connections) and is deleted once it has no active or inactive connections, or
//! [`IpvsConfig::grace_period`] (15 s by default: a terminating pod's usual grace period
//! is 30 s, and its endpoint leaves Endpoints when it starts terminating) after that,
//! whichever comes first. [`ProxyBackend::next_wakeup`] says when to sync again for it.

pub mod host;
pub mod plan;
pub mod sets;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use weft_netlink::ipvs::{IpvsHandle, IpvsOp, IpvsOps, ServiceKey};

use crate::table::{diff, Changes, Problem, ServicePortName, ServiceTable};
use crate::{ProxyBackend, ProxyError, Result, SyncStats};

pub use host::{HostOps, KernelHost, MemoryHost};
use plan::{HaveVs, Model, Terminating, WantedVs};
use sets::{Counts, Elements, Kind};

/// The sysctls kube-proxy's IPVS mode sets (DESIGN.md): conntrack for IPVS connections
/// (so nftables can masquerade them), reuse of a port's old connection entry rescheduled
/// to a live real server, dropping connections of a deleted real server at once.
pub const SYSCTLS: [(&str, &str); 4] = [
    ("net/ipv4/vs/conntrack", "1"),
    ("net/ipv4/vs/conn_reuse_mode", "1"),
    ("net/ipv4/vs/expire_nodest_conn", "1"),
    ("net/ipv4/ip_forward", "1"),
];

/// How often a sync looks at terminating real servers' connection counts.
pub const TERMINATION_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsConfig {
    /// Traffic to a ClusterIP from outside this network is masqueraded.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Work inside this named network namespace (tests, benchmarks); None: the caller's.
    pub netns: Option<String>,
    pub grace_period: Duration,
    /// A virtual server on a node address is ours (deleted when no Service wants it) only
    /// with a port in this range: an admin's own virtual servers elsewhere are left alone.
    pub nodeport_range: RangeInclusive<u16>,
}

impl Default for IpvsConfig {
    fn default() -> Self {
        Self {
            cluster_cidr: None,
            netns: None,
            grace_period: Duration::from_secs(15),
            nodeport_range: 30000..=32767,
        }
    }
}

/// What the last successful sync left, as we believe the kernel holds it.
#[derive(Debug, Clone)]
struct Applied {
    table: ServiceTable,
    model: Model,
    counts: Counts,
    /// Which Service port each virtual server belongs to.
    owners: BTreeMap<ServiceKey, ServicePortName>,
    /// Service ports the kernel refused part of: retried on every sync.
    failed: BTreeSet<ServicePortName>,
}

/// The IPVS [`ProxyBackend`].
pub struct IpvsProxy<I = IpvsHandle, H = KernelHost> {
    config: IpvsConfig,
    ipvs: I,
    host: H,
    applied: Option<Applied>,
    terminating: Terminating,
    sysctls_done: bool,
}

impl IpvsProxy<IpvsHandle, KernelHost> {
    /// On the kernel. Fails when the kernel has no IPVS.
    pub fn new(config: IpvsConfig) -> Result<Self> {
        let ipvs = match &config.netns {
            Some(ns) => IpvsHandle::in_netns(weft_netlink::netns::path(ns))?,
            None => IpvsHandle::new()?,
        };
        let host = KernelHost::new(config.netns.clone());
        Ok(Self::with_ops(config, ipvs, host))
    }
}

impl<I: IpvsOps, H: HostOps> IpvsProxy<I, H> {
    pub fn with_ops(config: IpvsConfig, ipvs: I, host: H) -> Self {
        Self {
            config,
            ipvs,
            host,
            applied: None,
            terminating: Terminating::new(),
            sysctls_done: false,
        }
    }

    pub fn config(&self) -> &IpvsConfig {
        &self.config
    }

    /// Whether a virtual server found in the kernel is one this proxy manages.
    fn owned(&self, key: &ServiceKey, vips: &BTreeSet<Ipv4Addr>, nodes: &[Ipv4Addr]) -> bool {
        let ServiceKey::Addr {
            addr: IpAddr::V4(addr),
            port,
            ..
        } = key
        else {
            return false;
        };
        vips.contains(addr) || (nodes.contains(addr) && self.config.nodeport_range.contains(port))
    }

    /// Reads the virtual servers we own, with their real servers.
    async fn read_model(&mut self, vips: &BTreeSet<Ipv4Addr>, nodes: &[Ipv4Addr]) -> Result<Model> {
        let services: Vec<_> = self
            .ipvs
            .services()
            .await?
            .into_iter()
            .filter(|s| self.owned(&s.key, vips, nodes))
            .collect();
        let dests = self
            .ipvs
            .destinations_of(services.iter().map(|s| s.key).collect())
            .await?;
        let mut model = Model::new();
        for (service, dests) in services.into_iter().zip(dests) {
            let dests = dests.into_iter().map(|d| (d.key(), d)).collect();
            model.insert(service.key, HaveVs { service, dests });
        }
        Ok(model)
    }

    /// Refreshes the connection counts of virtual servers with terminating real servers.
    async fn refresh_terminating(&mut self, model: &mut Model) -> Result<()> {
        let keys: BTreeSet<ServiceKey> = self.terminating.keys().map(|(k, _)| *k).collect();
        let keys: Vec<ServiceKey> = keys.into_iter().collect();
        let dests = self.ipvs.destinations_of(keys.clone()).await?;
        for (key, dests) in keys.into_iter().zip(dests) {
            if let Some(h) = model.get_mut(&key) {
                h.dests = dests.into_iter().map(|d| (d.key(), d)).collect();
            }
        }
        // One deleted behind our back is no longer draining.
        self.terminating
            .retain(|(k, d), _| model.get(k).is_some_and(|h| h.dests.contains_key(d)));
        Ok(())
    }

    /// Sends `ops`, records the accepted ones in `model`, and turns refusals into one
    /// problem per Service port.
    async fn apply(
        &mut self,
        ops: Vec<IpvsOp>,
        model: &mut Model,
        owners: &BTreeMap<ServiceKey, ServicePortName>,
    ) -> Result<(usize, Vec<Problem>, BTreeSet<ServicePortName>)> {
        let count = ops.len();
        if ops.is_empty() {
            return Ok((0, Vec::new(), BTreeSet::new()));
        }
        let failures = self.ipvs.apply(ops.clone()).await?;
        let refused: BTreeMap<usize, _> =
            failures.into_iter().map(|f| (f.index, f.error)).collect();
        let mut problems = Vec::new();
        let mut failed = BTreeSet::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(error) = refused.get(&i) else {
                plan::record(model, op);
                continue;
            };
            let owner = op.service().and_then(|k| owners.get(k));
            match owner {
                Some(name) => {
                    if failed.insert(name.clone()) {
                        problems.push(Problem {
                            service: format!("{}/{}", name.namespace, name.name),
                            message: format!("{name}: {error}"),
                        });
                    }
                }
                None => problems.push(Problem {
                    service: String::new(),
                    message: error.to_string(),
                }),
            }
        }
        Ok((count, problems, failed))
    }

    async fn full_sync(&mut self, desired: &ServiceTable) -> Result<(Applied, SyncStats)> {
        let vips_have = self.host.ensure_dummy().await?;
        let want = plan::wanted_all(desired);
        let mut vips_owned = vips_have.clone();
        vips_owned.extend(desired.services.values().map(|vs| vs.cluster_ip));
        let mut model = self
            .read_model(&vips_owned, &desired.node_addresses)
            .await?;
        // Terminating real servers found in the kernel (weight 0) that we did not know of
        // (a restart) start their grace period now.
        let keys: BTreeSet<ServiceKey> = want.keys().chain(model.keys()).copied().collect();
        let now = Instant::now();
        let ops = plan::plan(
            &want,
            &model,
            &keys,
            &mut self.terminating,
            now,
            self.config.grace_period,
        );
        let owners: BTreeMap<ServiceKey, ServicePortName> =
            want.iter().map(|(k, w)| (*k, w.owner.clone())).collect();
        let (ipvs_ops, problems, failed) = self.apply(ops, &mut model, &owners).await?;

        let counts = sets::all_counts(desired);
        // kube-ipvs0's addresses are diffed below, against the device.
        let want_elems: Elements = counts
            .keys()
            .filter(|(k, _)| *k != Kind::Vip)
            .cloned()
            .collect();
        let have_elems = self.host.nft_elements().await?.unwrap_or_default();
        let add: Vec<_> = want_elems.difference(&have_elems).cloned().collect();
        let del: Vec<_> = have_elems.difference(&want_elems).cloned().collect();
        let mut script = sets::base_script(self.config.cluster_cidr);
        script.push_str(&sets::element_script(&add, &del));
        let elements = (add.len(), del.len());
        self.host.nft_apply(script).await?;
        let want_vips: BTreeSet<Ipv4Addr> =
            desired.services.values().map(|vs| vs.cluster_ip).collect();
        self.change_vips(
            want_vips.difference(&vips_have).copied().collect(),
            vips_have.difference(&want_vips).copied().collect(),
        )
        .await?;
        let stats = SyncStats {
            full: true,
            services_touched: desired.services.len(),
            elements_added: elements.0,
            elements_deleted: elements.1,
            ipvs_ops,
            problems,
            ..Default::default()
        };
        let applied = Applied {
            table: desired.clone(),
            model,
            counts,
            owners,
            failed,
        };
        Ok((applied, stats))
    }

    async fn change_vips(&mut self, add: Vec<Ipv4Addr>, del: Vec<Ipv4Addr>) -> Result<()> {
        if !del.is_empty() {
            self.host.del_vips(del).await?;
        }
        if !add.is_empty() {
            self.host.add_vips(add).await?;
        }
        Ok(())
    }

    /// A sync from the last applied state; `known` are the changes when the caller knows
    /// them (else the whole table is diffed).
    async fn incremental_sync(
        &mut self,
        mut a: Applied,
        desired: &ServiceTable,
        known: Option<&Changes>,
    ) -> Result<(Applied, SyncStats)> {
        let owned;
        let changes = match known {
            Some(c) => c,
            None => {
                owned = diff(&a.table, desired);
                &owned
            }
        };
        let mut names: BTreeSet<ServicePortName> = changes.touched().cloned().collect();
        names.extend(a.failed.iter().cloned());
        if changes.node_addresses {
            let with_node_port = |t: &ServiceTable| -> Vec<ServicePortName> {
                t.services
                    .values()
                    .filter(|vs| vs.node_port.is_some())
                    .map(|vs| vs.name.clone())
                    .collect()
            };
            names.extend(with_node_port(&a.table));
            names.extend(with_node_port(desired));
        }
        // Virtual servers with draining real servers are looked at on every sync.
        for (key, _) in self.terminating.keys() {
            if let Some(owner) = a.owners.get(key) {
                names.insert(owner.clone());
            }
        }
        let old_want = plan::wanted_for(&a.table, &names);
        let want = plan::wanted_for(desired, &names);
        let keys: BTreeSet<ServiceKey> = old_want
            .keys()
            .chain(want.keys())
            .chain(self.terminating.keys().map(|(k, _)| k))
            .copied()
            .collect();
        self.refresh_terminating(&mut a.model).await?;
        for k in old_want.keys() {
            a.owners.remove(k);
        }
        a.owners.extend(
            want.iter()
                .map(|(k, w): (&ServiceKey, &WantedVs)| (*k, w.owner.clone())),
        );
        let ops = plan::plan(
            &want,
            &a.model,
            &keys,
            &mut self.terminating,
            Instant::now(),
            self.config.grace_period,
        );
        // Borrowed, not cloned: a copy of every owner would make each sync O(Services).
        let (ipvs_ops, problems, failed) = self.apply(ops, &mut a.model, &a.owners).await?;
        a.failed = failed;

        // Elements: take the changed Service ports' out, put the new ones in; what
        // reaches 0 goes, what leaves 0 comes.
        let before: Elements = element_keys(&a.counts, &a.table, desired, &names);
        for name in &names {
            if let Some(vs) = a.table.services.get(name) {
                sets::remove_counts(&mut a.counts, vs);
            }
            if let Some(vs) = desired.services.get(name) {
                sets::add_counts(&mut a.counts, vs);
            }
        }
        if changes.node_addresses {
            a.counts.retain(|(k, _), _| *k != Kind::NodeIps);
            for ip in &desired.node_addresses {
                a.counts.insert((Kind::NodeIps, ip.to_string()), 1);
            }
        }
        let after: Elements = element_keys(&a.counts, &a.table, desired, &names);
        let add: Vec<_> = after.difference(&before).cloned().collect();
        let del: Vec<_> = before.difference(&after).cloned().collect();
        self.host
            .nft_apply(sets::element_script(&add, &del))
            .await?;
        let vips = |v: &[(Kind, String)]| -> Vec<Ipv4Addr> {
            v.iter()
                .filter(|(k, _)| *k == Kind::Vip)
                .filter_map(|(_, ip)| ip.parse().ok())
                .collect()
        };
        self.change_vips(vips(&add), vips(&del)).await?;
        let stats = SyncStats {
            full: false,
            services_touched: changes.touched().count(),
            elements_added: add.iter().filter(|(k, _)| *k != Kind::Vip).count(),
            elements_deleted: del.iter().filter(|(k, _)| *k != Kind::Vip).count(),
            ipvs_ops,
            problems,
            ..Default::default()
        };
        // Only what changed is copied: cloning the whole table would make every sync
        // O(Services).
        for name in &names {
            match desired.services.get(name) {
                Some(vs) => {
                    a.table.services.insert(name.clone(), vs.clone());
                }
                None => {
                    a.table.services.remove(name);
                }
            }
        }
        a.table.node_addresses.clone_from(&desired.node_addresses);
        a.table.problems.clone_from(&desired.problems);
        debug_assert!(a.table == *desired);
        Ok((a, stats))
    }
}

/// The elements (present in `counts`) that the Service ports in `names` of either table
/// could have, and every node address: the ones an incremental sync may change.
fn element_keys(
    counts: &Counts,
    old: &ServiceTable,
    new: &ServiceTable,
    names: &BTreeSet<ServicePortName>,
) -> Elements {
    let mut candidates: BTreeSet<(Kind, String)> = BTreeSet::new();
    for name in names {
        for t in [old, new] {
            if let Some(vs) = t.services.get(name) {
                candidates.extend(sets::service_elements(vs));
            }
        }
    }
    for t in [old, new] {
        candidates.extend(
            t.node_addresses
                .iter()
                .map(|a| (Kind::NodeIps, a.to_string())),
        );
    }
    candidates
        .into_iter()
        .filter(|e| counts.contains_key(e))
        .collect()
}

/// What [`ProxyBackend::cleanup`] removes besides virtual servers, for a kernel that has
/// no IPVS (left over from a boot that had it, or from a failed start).
pub async fn cleanup_host(host: &mut impl HostOps) -> Result<()> {
    let dummy = host.delete_dummy().await;
    host.nft_delete_table().await?;
    dummy
}

impl<I: IpvsOps, H: HostOps> IpvsProxy<I, H> {
    async fn sync_with(
        &mut self,
        desired: &ServiceTable,
        changes: Option<&Changes>,
    ) -> Result<SyncStats> {
        let start = Instant::now();
        if !self.sysctls_done {
            for (name, value) in SYSCTLS {
                self.host.sysctl(name, value).await?;
            }
            self.sysctls_done = true;
        }
        // On failure `applied` stays None: the next sync reads the kernel again.
        let (applied, mut stats) = match self.applied.take() {
            Some(a) => self.incremental_sync(a, desired, changes).await?,
            None => self.full_sync(desired).await?,
        };
        self.applied = Some(applied);
        stats.elapsed = start.elapsed();
        tracing::debug!(?stats, "ipvs sync");
        Ok(stats)
    }
}

#[async_trait::async_trait]
impl<I: IpvsOps, H: HostOps> ProxyBackend for IpvsProxy<I, H> {
    async fn sync(&mut self, desired: &ServiceTable) -> Result<SyncStats> {
        self.sync_with(desired, None).await
    }

    async fn sync_changed(
        &mut self,
        desired: &ServiceTable,
        changes: &Changes,
    ) -> Result<SyncStats> {
        self.sync_with(desired, Some(changes)).await
    }

    /// Removes our virtual servers (on `kube-ipvs0` addresses, or on node addresses with a
    /// NodePort-range port), `kube-ipvs0` and table `ip weft-ipvs`. Goes on past a
    /// failure and returns the first.
    async fn cleanup(&mut self) -> Result<()> {
        self.applied = None;
        self.terminating.clear();
        let mut first: Option<ProxyError> = None;
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "ipvs cleanup");
                first.get_or_insert(e);
            }
        };
        let vips = self.host.dummy_addresses().await;
        let nodes = self.host.local_addresses().await;
        match (vips, nodes) {
            (Ok(vips), Ok(nodes)) => {
                let vips = vips.unwrap_or_default();
                match self.ipvs.services().await {
                    Ok(services) => {
                        let ops: Vec<IpvsOp> = services
                            .iter()
                            .filter(|s| self.owned(&s.key, &vips, &nodes))
                            .map(|s| IpvsOp::DelService(s.key))
                            .collect();
                        match self.ipvs.apply(ops).await {
                            Ok(fails) => {
                                for f in fails.into_iter().filter(|f| !f.error.is_not_found()) {
                                    note(Err(f.error.into()));
                                }
                            }
                            Err(e) => note(Err(e.into())),
                        }
                    }
                    Err(e) => note(Err(e.into())),
                }
            }
            (Err(e), _) | (_, Err(e)) => note(Err(e)),
        }
        note(cleanup_host(&mut self.host).await);
        first.map_or(Ok(()), Err)
    }

    fn next_wakeup(&self) -> Option<Duration> {
        plan::next_wakeup(
            &self.terminating,
            Instant::now(),
            self.config.grace_period,
            TERMINATION_POLL,
        )
    }
}

#[cfg(test)]
mod tests;

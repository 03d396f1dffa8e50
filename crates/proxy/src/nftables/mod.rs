//! The nftables backend: table `ip weft-proxy`, programmed by incremental transactions.
//!
//! ```text
//! nat-prerouting / nat-output ─▶ services
//!   ip daddr . l4proto . dport vmap @service-ips      ─▶ pick-cluster-MODE-N (shared)
//!       dnat to daddr . l4proto . dport . numgen MODE mod N map @cluster-backends
//!   fib daddr type local, @nodeport-ips,
//!   l4proto . dport vmap @service-nodeports           ─▶ pick-nodeport[-local]-MODE-N
//!       dnat to l4proto . dport . numgen MODE mod N map @nodeport-backends
//!   (ClientIP affinity: per-Service chains instead, see render)
//! nat-postrouting: hairpin pairs and packets marked 0x4000 are masqueraded
//! ```
//!
//! The first sync reads the kernel's table and writes only what differs from the desired
//! one (chains are compared by a content hash kept in a rule comment); later syncs write
//! only the objects of the Service ports that changed since the last sync, which for a
//! Service without affinity are map elements alone. The table is never flushed or
//! recreated, so conntrack entries and established connections stay.
//!
//! Transactions go through libnftables in-process ([`NftSession`]): the `nft` command
//! costs ~15 ms per run whatever the change, three times the one-change budget.

pub(crate) mod kernel;
pub mod render;
pub mod script;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Instant;

use ipnet::Ipv4Net;
use weft_netlink::nft::NftSession;

use crate::table::{diff, Changes, ServiceTable, VirtualService};
use crate::{ProxyBackend, Result, SyncStats};

pub use render::TABLE;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftConfig {
    /// The pod network. Traffic to a ClusterIP from outside it is masqueraded; without it
    /// only hairpin and NodePort (externalTrafficPolicy Cluster) traffic is.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Program the table inside this named network namespace, for tests and benchmarks;
    /// None is the caller's namespace.
    pub netns: Option<String>,
}

/// The nftables [`ProxyBackend`].
#[derive(Debug)]
pub struct NftProxy {
    config: NftConfig,
    nft: NftSession,
    /// What was last applied successfully; None until the first sync, and after a failed
    /// one (the next sync then reads the kernel again).
    applied: Option<Applied>,
}

/// What the kernel holds after a successful sync, kept so that an incremental sync does
/// work in proportion to the change, not to the number of Services.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub table: ServiceTable,
    /// Shared pick chains in the kernel, by content hash.
    pub pick_chains: BTreeMap<String, String>,
    /// Per endpoint address, the number of Service ports using it: the address stays in
    /// the hairpin set while any does.
    pub hairpin_refs: HashMap<Ipv4Addr, usize>,
}

impl Applied {
    /// The state a full sync of `table` leaves.
    pub fn of(table: &ServiceTable, cfg: &NftConfig) -> Self {
        Self::from_rendered(table, &render::full(table, cfg))
    }

    fn from_rendered(table: &ServiceTable, full: &render::Rendered) -> Self {
        let mut hairpin_refs = HashMap::new();
        for vs in table.services.values() {
            for ip in endpoint_ips(vs) {
                *hairpin_refs.entry(ip).or_insert(0) += 1;
            }
        }
        Applied {
            table: table.clone(),
            pick_chains: pick_chains(full),
            hairpin_refs,
        }
    }

    /// The transaction taking the kernel from this state to `new`; updates this state to
    /// what the kernel holds once it is applied. Only the Service ports that differ are
    /// rendered, and the table is updated in place: cloning 10k Services would cost more
    /// than the transaction itself.
    pub fn incremental(&mut self, new: &ServiceTable, cfg: &NftConfig) -> script::Script {
        let changes = diff(&self.table, new);
        self.incremental_with(new, &changes, cfg)
    }

    /// [`Applied::incremental`] with the changes already known (they must be exactly the
    /// Service ports where `new` differs from this state's table).
    pub fn incremental_with(
        &mut self,
        new: &ServiceTable,
        changes: &Changes,
        cfg: &NftConfig,
    ) -> script::Script {
        let mut have = render::services(&self.table, changes.touched(), cfg).objects();
        let mut want = render::services(new, changes.touched(), cfg);
        for (name, hash) in &self.pick_chains {
            have.chains.insert(name.clone(), hash.clone());
        }
        if changes.node_addresses {
            have.nodeport_ips = Some(self.table.node_addresses.iter().copied().collect());
            want.nodeport_ips = Some(new.node_addresses.iter().copied().collect());
        }

        // Hairpin addresses whose count crosses zero; one leaving and coming back in the
        // same sync is neither.
        let (mut unused, mut used) = (BTreeSet::new(), BTreeSet::new());
        for name in changes.touched() {
            let Some(vs) = self.table.services.get(name) else {
                continue;
            };
            for ip in endpoint_ips(vs) {
                if let Some(n) = self.hairpin_refs.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.hairpin_refs.remove(&ip);
                        unused.insert(ip);
                    }
                }
            }
        }
        for name in changes.touched() {
            let Some(vs) = new.services.get(name) else {
                continue;
            };
            for ip in endpoint_ips(vs) {
                let n = self.hairpin_refs.entry(ip).or_insert(0);
                *n += 1;
                if *n == 1 && !unused.remove(&ip) {
                    used.insert(ip);
                }
            }
        }
        have.hairpin = Some(unused);
        want.hairpin = Some(used);
        self.pick_chains.extend(pick_chains(&want));
        let script = script::generate(&have, &want, false);

        for name in &changes.removed {
            self.table.services.remove(name);
        }
        for name in changes.added.iter().chain(&changes.changed) {
            if let Some(vs) = new.services.get(name) {
                self.table.services.insert(name.clone(), vs.clone());
            }
        }
        self.table.node_addresses.clone_from(&new.node_addresses);
        self.table.problems.clone_from(&new.problems);
        script
    }
}

/// The shared pick chains of a rendering, by hash.
fn pick_chains(r: &render::Rendered) -> BTreeMap<String, String> {
    r.chains
        .iter()
        .filter(|(name, _)| render::is_pick_chain(name))
        .map(|(name, chain)| (name.clone(), chain.hash()))
        .collect()
}

/// The endpoint addresses of one Service port, each once.
fn endpoint_ips(vs: &VirtualService) -> BTreeSet<Ipv4Addr> {
    vs.cluster_endpoints
        .iter()
        .chain(&vs.node_port_endpoints)
        .map(|ep| ep.ip)
        .collect()
}

impl NftProxy {
    pub fn new(config: NftConfig) -> Self {
        let nft = NftSession::open(config.netns.as_deref());
        Self {
            config,
            nft,
            applied: None,
        }
    }

    pub fn config(&self) -> &NftConfig {
        &self.config
    }

    /// The table as the kernel holds it now, for diagnostics (`nft list table`).
    pub async fn listing(&self) -> Result<String> {
        Ok(self.nft.run(&format!("list table ip {TABLE}")).await?)
    }

    async fn apply(&self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.nft.run(text).await?;
        Ok(())
    }
}

/// The whole transaction creating `table` from nothing (what a full sync into an empty
/// kernel sends). Also what `nft -f` is benchmarked with.
pub fn full_script(table: &ServiceTable, cfg: &NftConfig) -> script::Script {
    script::generate(&script::Objects::default(), &render::full(table, cfg), true)
}

/// The transaction taking a kernel holding `old` (as a full sync of it left it) to `new`.
pub fn incremental_script(
    old: &ServiceTable,
    new: &ServiceTable,
    cfg: &NftConfig,
) -> script::Script {
    Applied::of(old, cfg).incremental(new, cfg)
}

impl NftProxy {
    /// A sync: incremental from the last applied state when there is one (with `changes`
    /// when the caller knows them, else by diff), else full against the kernel's table.
    async fn sync_with(
        &mut self,
        desired: &ServiceTable,
        changes: Option<&Changes>,
    ) -> Result<SyncStats> {
        let start = Instant::now();
        // On failure `applied` stays None: the next sync starts from the kernel's state.
        let (full, services_touched, script, next) = match self.applied.take() {
            Some(mut applied) => {
                let owned;
                let changes = match changes {
                    Some(c) => c,
                    None => {
                        owned = diff(&applied.table, desired);
                        &owned
                    }
                };
                let script = applied.incremental_with(desired, changes, &self.config);
                (false, changes.touched().count(), script, applied)
            }
            None => {
                let have = kernel::read(&self.nft).await?.unwrap_or_default();
                let want = render::full(desired, &self.config);
                let next = Applied::from_rendered(desired, &want);
                (
                    true,
                    desired.services.len(),
                    script::generate(&have, &want, true),
                    next,
                )
            }
        };
        // A failure part way leaves only unreferenced backends and hairpin pairs behind; the next
        // sync reads the kernel and carries on from there.
        for transaction in script.transactions() {
            self.apply(transaction).await?;
        }
        self.applied = Some(next);
        let stats = SyncStats {
            full,
            services_touched,
            chains_added: script.chains_added,
            chains_rewritten: script.chains_rewritten,
            chains_deleted: script.chains_deleted,
            elements_added: script.elements_added,
            elements_deleted: script.elements_deleted,
            script_bytes: script.bytes(),
            elapsed: start.elapsed(),
            ..Default::default()
        };
        tracing::debug!(
            ?stats,
            transactions = script.transactions().count(),
            "nftables sync"
        );
        Ok(stats)
    }
}

#[async_trait::async_trait]
impl ProxyBackend for NftProxy {
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

    async fn cleanup(&mut self) -> Result<()> {
        self.applied = None;
        kernel::delete_table(&self.nft, TABLE).await
    }
}

#[cfg(test)]
mod tests;

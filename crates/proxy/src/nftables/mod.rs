//! The nftables backend: table `ip weft-proxy`, programmed by incremental transactions.
//!
//! ```text
//! nat-prerouting / nat-output ─▶ services
//!   ip daddr . l4proto . dport vmap @service-ips       ─▶ service-NS/NAME/PROTO/PORT
//!   fib daddr type local, @nodeport-ips,
//!   l4proto . dport vmap @service-nodeports            ─▶ external-…
//! service-… / external-…: affinity, numgen ─▶ endpoint-…__IP/PORT: dnat to IP:PORT
//! nat-postrouting: packets marked 0x4000 are masqueraded
//! ```
//!
//! The first sync reads the kernel's table and writes only what differs from the desired
//! one (chains are compared by a content hash kept in a rule comment); later syncs write
//! only the objects of the Service ports that changed since the last sync. The table is
//! never flushed or recreated, so conntrack entries and established connections stay.

pub(crate) mod kernel;
pub mod render;
pub mod script;

use std::time::Instant;

use ipnet::Ipv4Net;

use crate::table::{diff, ServiceTable};
use crate::{ProxyBackend, Result, SyncStats};

pub use render::TABLE;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftConfig {
    /// The pod network. Traffic to a ClusterIP from outside it is masqueraded; without it
    /// only hairpin and NodePort (externalTrafficPolicy Cluster) traffic is.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Run `nft` inside this named network namespace (`ip netns exec`), for tests and
    /// benchmarks; None is the caller's namespace.
    pub netns: Option<String>,
}

/// The nftables [`ProxyBackend`].
#[derive(Debug)]
pub struct NftProxy {
    config: NftConfig,
    /// The table last applied successfully; None until the first sync, and after a failed
    /// one (the next sync then reads the kernel again).
    applied: Option<ServiceTable>,
}

impl NftProxy {
    pub fn new(config: NftConfig) -> Self {
        Self {
            config,
            applied: None,
        }
    }

    pub fn config(&self) -> &NftConfig {
        &self.config
    }

    /// The table as the kernel holds it now, for diagnostics (`nft list table`).
    pub async fn listing(&self) -> Result<String> {
        kernel::nft(
            self.config.netns.as_deref(),
            &["list", "table", "ip", TABLE],
            None,
        )
        .await
    }

    async fn apply(&self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        kernel::nft(self.config.netns.as_deref(), &["-f", "-"], Some(text)).await?;
        Ok(())
    }
}

/// The whole transaction creating `table` from nothing (what a full sync into an empty
/// kernel sends). Also what `nft -f` is benchmarked with.
pub fn full_script(table: &ServiceTable, cfg: &NftConfig) -> script::Script {
    script::generate(&script::Objects::default(), &render::full(table, cfg), true)
}

/// The transaction taking a kernel holding `old` (as applied by this backend) to `new`:
/// only the chains, sets and elements of the Service ports that differ.
pub fn incremental_script(
    old: &ServiceTable,
    new: &ServiceTable,
    cfg: &NftConfig,
) -> script::Script {
    let changes = diff(old, new);
    let mut have = render::services(old, changes.touched(), cfg).objects();
    let mut want = render::services(new, changes.touched(), cfg);
    if changes.node_addresses {
        have.nodeport_ips = Some(old.node_addresses.iter().copied().collect());
        want.nodeport_ips = Some(new.node_addresses.iter().copied().collect());
    }
    script::generate(&have, &want, false)
}

#[async_trait::async_trait]
impl ProxyBackend for NftProxy {
    async fn sync(&mut self, desired: &ServiceTable) -> Result<SyncStats> {
        let start = Instant::now();
        let (full, services_touched, script) = match self.applied.take() {
            Some(old) => {
                let touched = diff(&old, desired).touched().count();
                (
                    false,
                    touched,
                    incremental_script(&old, desired, &self.config),
                )
            }
            None => {
                let have = kernel::read(self.config.netns.as_deref())
                    .await?
                    .unwrap_or_default();
                let want = render::full(desired, &self.config);
                (
                    true,
                    desired.services.len(),
                    script::generate(&have, &want, true),
                )
            }
        };
        // On failure `applied` stays None: the next sync starts from the kernel's state.
        self.apply(&script.text).await?;
        self.applied = Some(desired.clone());
        let stats = SyncStats {
            full,
            services_touched,
            chains_added: script.chains_added,
            chains_rewritten: script.chains_rewritten,
            chains_deleted: script.chains_deleted,
            elements_added: script.elements_added,
            elements_deleted: script.elements_deleted,
            script_bytes: script.text.len(),
            elapsed: start.elapsed(),
            ..Default::default()
        };
        tracing::debug!(?stats, "nftables sync");
        Ok(stats)
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.applied = None;
        match kernel::nft(
            self.config.netns.as_deref(),
            &["delete", "table", "ip", TABLE],
            None,
        )
        .await
        {
            Err(e) if kernel::is_missing(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests;

//! Everything IPVS mode changes on the node besides the IPVS table: the `kube-ipvs0`
//! dummy device and its addresses, table `ip weft-ipvs`, sysctls. Behind [`HostOps`] so
//! the backend is tested with [`MemoryHost`].

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;
use weft_netlink::Netlink;

use super::sets::{Elements, Kind, DUMMY, TABLE};
use weft_netlink::nft::NftSession;

use crate::nftables::kernel::{delete_table, items, key_text, list_json};
use crate::{ProxyError, Result};

#[async_trait]
pub trait HostOps: Send {
    /// Creates `kube-ipvs0` if missing; the IPv4 addresses on it.
    async fn ensure_dummy(&mut self) -> Result<BTreeSet<Ipv4Addr>>;
    /// The addresses on `kube-ipvs0`; None without the device.
    async fn dummy_addresses(&mut self) -> Result<Option<BTreeSet<Ipv4Addr>>>;
    async fn add_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()>;
    async fn del_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()>;
    async fn delete_dummy(&mut self) -> Result<()>;
    /// The elements of our nftables sets; None without the table.
    async fn nft_elements(&mut self) -> Result<Option<Elements>>;
    async fn nft_apply(&mut self, script: String) -> Result<()>;
    async fn nft_delete_table(&mut self) -> Result<()>;
    /// Every IPv4 address of the namespace but loopback (NodePorts may be on any).
    async fn local_addresses(&mut self) -> Result<Vec<Ipv4Addr>>;
    async fn sysctl(&mut self, name: &str, value: &str) -> Result<()>;
}

/// [`HostOps`] on the kernel, in the caller's namespace or a named one.
pub struct KernelHost {
    netns: Option<String>,
    nl: Option<Netlink>,
    /// Opened on first use (a thread inside the netns).
    nft: Option<NftSession>,
    dummy: Option<u32>,
}

/// Address changes in flight at once on the rtnetlink connection.
const PARALLEL: usize = 64;

fn host32(ip: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::new(ip, 32).unwrap_or_default())
}

impl KernelHost {
    pub fn new(netns: Option<String>) -> Self {
        Self {
            netns,
            nl: None,
            nft: None,
            dummy: None,
        }
    }

    fn nft(&mut self) -> &NftSession {
        let netns = self.netns.as_deref();
        self.nft.get_or_insert_with(|| NftSession::open(netns))
    }

    async fn nl(&mut self) -> Result<&Netlink> {
        if self.nl.is_none() {
            self.nl = Some(match &self.netns {
                Some(name) => Netlink::in_named_netns(name).await?,
                None => Netlink::new()?,
            });
        }
        self.nl
            .as_ref()
            .ok_or_else(|| ProxyError::Parse("netlink handle".into()))
    }

    async fn dummy_index(&mut self) -> Result<Option<u32>> {
        if self.dummy.is_none() {
            self.dummy = self.nl().await?.link(DUMMY).await?.map(|l| l.index);
        }
        Ok(self.dummy)
    }

    async fn addresses_of(&mut self, index: u32) -> Result<BTreeSet<Ipv4Addr>> {
        Ok(self
            .nl()
            .await?
            .addresses(index)
            .await?
            .into_iter()
            .filter_map(|a| match a {
                IpNet::V4(v4) => Some(v4.addr()),
                IpNet::V6(_) => None,
            })
            .collect())
    }
}

#[async_trait]
impl HostOps for KernelHost {
    async fn ensure_dummy(&mut self) -> Result<BTreeSet<Ipv4Addr>> {
        let index = match self.dummy_index().await? {
            Some(i) => i,
            None => {
                // Left down, as kube-proxy leaves it: the addresses are local all the
                // same, and a down device answers no ARP for them.
                match self.nl().await?.create_dummy(DUMMY).await {
                    Err(e) if !e.is_exists() => return Err(e.into()),
                    _ => {}
                }
                self.dummy_index()
                    .await?
                    .ok_or_else(|| ProxyError::Parse(format!("{DUMMY} vanished")))?
            }
        };
        self.addresses_of(index).await
    }

    async fn dummy_addresses(&mut self) -> Result<Option<BTreeSet<Ipv4Addr>>> {
        self.dummy = None;
        match self.dummy_index().await? {
            Some(i) => Ok(Some(self.addresses_of(i).await?)),
            None => Ok(None),
        }
    }

    async fn add_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()> {
        let index = self.ensure_dummy_index().await?;
        let nl = self.nl().await?;
        let results: Vec<_> = stream::iter(ips)
            .map(|ip| nl.add_address(index, host32(ip)))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for r in results {
            match r {
                Err(e) if !e.is_exists() => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn del_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()> {
        let Some(index) = self.dummy_index().await? else {
            return Ok(());
        };
        let nl = self.nl().await?;
        let results: Vec<_> = stream::iter(ips)
            .map(|ip| nl.del_address(index, host32(ip)))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for r in results {
            match r {
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn delete_dummy(&mut self) -> Result<()> {
        self.dummy = None;
        if let Some(index) = self.dummy_index().await? {
            self.dummy = None;
            match self.nl().await?.delete_link(index).await {
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn nft_elements(&mut self) -> Result<Option<Elements>> {
        list_json(self.nft(), TABLE)
            .await?
            .map(|json| parse_elements(&json))
            .transpose()
    }

    async fn nft_apply(&mut self, script: String) -> Result<()> {
        if script.is_empty() {
            return Ok(());
        }
        self.nft().run(&script).await?;
        Ok(())
    }

    async fn nft_delete_table(&mut self) -> Result<()> {
        delete_table(self.nft(), TABLE).await
    }

    async fn local_addresses(&mut self) -> Result<Vec<Ipv4Addr>> {
        let nl = self.nl().await?;
        let mut out = Vec::new();
        for link in nl.links().await? {
            if link.name == DUMMY {
                continue;
            }
            for a in nl.addresses(link.index).await? {
                if let IpNet::V4(v4) = a {
                    if !v4.addr().is_loopback() {
                        out.push(v4.addr());
                    }
                }
            }
        }
        Ok(out)
    }

    async fn sysctl(&mut self, name: &str, value: &str) -> Result<()> {
        match &self.netns {
            None => weft_netlink::sysctl_set(name, value)?,
            Some(ns) => weft_netlink::run_in_netns(weft_netlink::netns::path(ns), || {
                weft_netlink::sysctl_set(name, value)
            })??,
        }
        Ok(())
    }
}

impl KernelHost {
    async fn ensure_dummy_index(&mut self) -> Result<u32> {
        self.ensure_dummy().await?;
        self.dummy_index()
            .await?
            .ok_or_else(|| ProxyError::Parse(format!("{DUMMY} vanished")))
    }
}

/// The elements of our sets in `nft -j list table ip weft-ipvs`.
pub fn parse_elements(json: &str) -> Result<Elements> {
    let items = items(json)?;
    let mut out = Elements::new();
    for set in items.iter().filter_map(|i| i.get("set")) {
        let Some(kind) = set
            .get("name")
            .and_then(Value::as_str)
            .and_then(Kind::from_set_name)
        else {
            continue;
        };
        for elem in set
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.insert((kind, key_text(elem)?));
        }
    }
    Ok(out)
}

/// An in-memory [`HostOps`]: clones share state, so a test keeps a handle.
#[derive(Debug, Clone, Default)]
pub struct MemoryHost {
    state: Arc<Mutex<MemoryHostState>>,
}

#[derive(Debug, Default)]
pub struct MemoryHostState {
    pub dummy: Option<BTreeSet<Ipv4Addr>>,
    /// None: no table.
    pub elements: Option<Elements>,
    pub local: Vec<Ipv4Addr>,
    pub sysctls: Vec<(String, String)>,
    /// Every script applied, and every VIP added or removed.
    pub scripts: Vec<String>,
    pub vip_changes: usize,
}

impl MemoryHost {
    pub fn state(&self) -> MutexGuard<'_, MemoryHostState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl HostOps for MemoryHost {
    async fn ensure_dummy(&mut self) -> Result<BTreeSet<Ipv4Addr>> {
        Ok(self.state().dummy.get_or_insert_with(BTreeSet::new).clone())
    }

    async fn dummy_addresses(&mut self) -> Result<Option<BTreeSet<Ipv4Addr>>> {
        Ok(self.state().dummy.clone())
    }

    async fn add_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()> {
        let mut s = self.state();
        s.vip_changes += ips.len();
        s.dummy.get_or_insert_with(BTreeSet::new).extend(ips);
        Ok(())
    }

    async fn del_vips(&mut self, ips: Vec<Ipv4Addr>) -> Result<()> {
        let mut s = self.state();
        s.vip_changes += ips.len();
        if let Some(d) = s.dummy.as_mut() {
            for ip in ips {
                d.remove(&ip);
            }
        }
        Ok(())
    }

    async fn delete_dummy(&mut self) -> Result<()> {
        self.state().dummy = None;
        Ok(())
    }

    async fn nft_elements(&mut self) -> Result<Option<Elements>> {
        Ok(self.state().elements.clone())
    }

    /// Understands the scripts [`super::sets`] writes: `add table`, and `add`/`delete
    /// element … { a, b }`.
    async fn nft_apply(&mut self, script: String) -> Result<()> {
        let mut s = self.state();
        for line in script.lines() {
            if line.starts_with("add table") {
                s.elements.get_or_insert_with(Elements::new);
            }
            let (add, rest) = if let Some(r) = line.strip_prefix("add element ip ") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("delete element ip ") {
                (false, r)
            } else {
                continue;
            };
            let mut words = rest.splitn(3, ' ');
            let (_, set, body) = (words.next(), words.next(), words.next());
            let kind = set
                .and_then(Kind::from_set_name)
                .ok_or_else(|| ProxyError::Parse(format!("no such set: {line}")))?;
            let body = body
                .unwrap_or("")
                .trim_matches(|c| c == '{' || c == '}' || c == ' ');
            let elements = s
                .elements
                .as_mut()
                .ok_or_else(|| ProxyError::Parse("no table".into()))?;
            for e in body.split(", ") {
                if add {
                    elements.insert((kind, e.to_string()));
                } else if !elements.remove(&(kind, e.to_string())) {
                    return Err(ProxyError::Failed {
                        command: "nft -f -".into(),
                        stderr: format!(
                            "Error: Could not process rule: No such file or directory: {e}"
                        ),
                    });
                }
            }
        }
        s.scripts.push(script);
        Ok(())
    }

    async fn nft_delete_table(&mut self) -> Result<()> {
        self.state().elements = None;
        Ok(())
    }

    async fn local_addresses(&mut self) -> Result<Vec<Ipv4Addr>> {
        Ok(self.state().local.clone())
    }

    async fn sysctl(&mut self, name: &str, value: &str) -> Result<()> {
        self.state().sysctls.push((name.into(), value.into()));
        Ok(())
    }
}

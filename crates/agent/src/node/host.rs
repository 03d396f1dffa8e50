//! The node's own network: bridge `weft0` holding the first address of the podCIDR, the
//! VXLAN device `weft.1` holding the podCIDR's `.0` (the next hop other nodes route to),
//! forwarding on. Idempotent: run at every start, it leaves a correct setup untouched (so
//! pods keep their connections across agent restarts) and repairs a wrong one.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use weft_netlink::{Link, Mac, Netlink, VxlanSpec};

use super::NodeError;

pub const BRIDGE: &str = "weft0";
pub const VXLAN: &str = "weft.1";
pub const VXLAN_VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// VXLAN over IPv4 costs 50 bytes per packet (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

#[derive(Debug, Clone)]
pub struct HostNetwork {
    pub bridge_index: u32,
    pub vxlan_index: u32,
    pub vtep_mac: Mac,
    /// MTU of pod interfaces and the overlay: underlay MTU − 50.
    pub mtu: u32,
    pub pod_cidr: Ipv4Net,
    /// `.1` of the podCIDR, on the bridge: pods' default gateway.
    pub gateway: Ipv4Addr,
}

fn ctx(what: &str) -> impl FnOnce(weft_netlink::NetlinkError) -> NodeError + '_ {
    move |e| NodeError::Network(format!("{what}: {e}"))
}

/// The link holding `node_ip` (the underlay the VXLAN tunnel runs over) and that address
/// as configured there, with its prefix: the network the other nodes are on.
pub async fn underlay(nl: &Netlink, node_ip: Ipv4Addr) -> Result<(Link, Ipv4Net), NodeError> {
    for link in nl.links().await.map_err(ctx("listing links"))? {
        let addrs = nl
            .addresses(link.index)
            .await
            .map_err(ctx("listing addresses"))?;
        let held = addrs.into_iter().find_map(|a| match a {
            IpNet::V4(v4) if v4.addr() == node_ip => Some(v4),
            _ => None,
        });
        if let Some(address) = held {
            return Ok((link, address));
        }
    }
    Err(NodeError::Config(format!(
        "--node-ip {node_ip}: no interface in this network namespace has that address"
    )))
}

/// Makes `link` hold exactly `want` among IPv4 addresses (other families untouched).
async fn ensure_only_address(nl: &Netlink, link: &Link, want: Ipv4Net) -> Result<(), NodeError> {
    let have = nl
        .addresses(link.index)
        .await
        .map_err(ctx("listing addresses"))?;
    for a in have
        .iter()
        .filter(|a| matches!(a, IpNet::V4(_)) && **a != IpNet::V4(want))
    {
        tracing::info!(link = %link.name, address = %a, "removing a stale address");
        nl.del_address(link.index, *a)
            .await
            .map_err(ctx("removing a stale address"))?;
    }
    if !have.contains(&IpNet::V4(want)) {
        nl.add_address(link.index, IpNet::V4(want))
            .await
            .map_err(ctx("adding an address"))?;
    }
    Ok(())
}

pub async fn ensure(
    nl: &Netlink,
    node_ip: Ipv4Addr,
    pod_cidr: Ipv4Net,
) -> Result<HostNetwork, NodeError> {
    weft_netlink::sysctl_set("net.ipv4.ip_forward", "1")
        .map_err(ctx("enabling IPv4 forwarding"))?;
    let (underlay, _) = underlay(nl, node_ip).await?;
    let mtu = underlay.mtu.saturating_sub(VXLAN_OVERHEAD);
    let spec = VxlanSpec {
        name: VXLAN.into(),
        vni: VXLAN_VNI,
        local: node_ip,
        underlay_dev_index: Some(underlay.index),
        port: VXLAN_PORT,
        learning: false,
        mtu: Some(mtu),
    };
    match nl
        .vxlan_info(VXLAN)
        .await
        .map_err(ctx("reading the VXLAN device"))?
    {
        Some(info) if spec.matches(&info) => {}
        Some(info) => {
            tracing::warn!(
                ?info,
                "VXLAN device does not match this node; recreating it"
            );
            nl.delete_link(info.index)
                .await
                .map_err(ctx("deleting the stale VXLAN device"))?;
            nl.create_vxlan(&spec)
                .await
                .map_err(ctx("creating the VXLAN device"))?;
        }
        None => nl
            .create_vxlan(&spec)
            .await
            .map_err(ctx("creating the VXLAN device"))?,
    }
    let vxlan = nl
        .link(VXLAN)
        .await
        .map_err(ctx("reading the VXLAN device"))?
        .ok_or_else(|| NodeError::Network("the VXLAN device vanished".into()))?;
    let vtep_mac = vxlan
        .mac
        .ok_or_else(|| NodeError::Network("the VXLAN device has no MAC address".into()))?;
    let network = pod_cidr.trunc();
    ensure_only_address(
        nl,
        &vxlan,
        Ipv4Net::new(network.network(), 32).map_err(|e| NodeError::Config(e.to_string()))?,
    )
    .await?;
    if !vxlan.up {
        nl.set_up(vxlan.index)
            .await
            .map_err(ctx("bringing the VXLAN device up"))?;
    }

    if nl
        .link(BRIDGE)
        .await
        .map_err(ctx("reading the bridge"))?
        .is_none()
    {
        nl.create_bridge(BRIDGE, mtu)
            .await
            .map_err(ctx("creating the bridge"))?;
    }
    let bridge = nl
        .link(BRIDGE)
        .await
        .map_err(ctx("reading the bridge"))?
        .ok_or_else(|| NodeError::Network("the bridge vanished".into()))?;
    if bridge.mtu != mtu {
        nl.set_mtu(bridge.index, mtu)
            .await
            .map_err(ctx("setting the bridge MTU"))?;
    }
    let gateway = first_host(network);
    ensure_only_address(
        nl,
        &bridge,
        Ipv4Net::new(gateway, network.prefix_len())
            .map_err(|e| NodeError::Config(e.to_string()))?,
    )
    .await?;
    if !bridge.up {
        nl.set_up(bridge.index)
            .await
            .map_err(ctx("bringing the bridge up"))?;
    }
    Ok(HostNetwork {
        bridge_index: bridge.index,
        vxlan_index: vxlan.index,
        vtep_mac,
        mtu,
        pod_cidr: network,
        gateway,
    })
}

/// The first host address of a network: `10.244.1.1` for `10.244.1.0/24`.
pub fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_host() {
        assert_eq!(
            first_host("10.244.1.0/24".parse().unwrap()),
            Ipv4Addr::new(10, 244, 1, 1)
        );
    }
}

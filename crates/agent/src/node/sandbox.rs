//! A pod's network: a named network namespace (`/run/netns/weft-<uid>`), a veth pair with
//! `eth0` inside holding the pod's address and the host end on the bridge, and a default
//! route via the bridge. Setup is idempotent and checks what already exists, so an agent
//! restart re-adopts a pod's network instead of rebuilding it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use weft_netlink::{netns, Netlink, RouteSpec, VethIntoSpec};

use super::host::HostNetwork;
use super::NodeError;

/// The uid's hex digits: names must be short (15 bytes for links) and unique per pod.
fn uid_digits(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `weft-<12 hex of uid>`: the pod's named network namespace.
pub fn netns_name(uid: &str) -> String {
    format!(
        "weft-{}",
        uid_digits(uid).chars().take(12).collect::<String>()
    )
}

/// `wv<11 hex of uid>`: the host end of the pod's veth.
pub fn host_veth_name(uid: &str) -> String {
    format!("wv{}", uid_digits(uid).chars().take(11).collect::<String>())
}

/// The temporary name of the pod end before it moves into the pod and becomes eth0.
fn peer_veth_name(uid: &str) -> String {
    format!("wp{}", uid_digits(uid).chars().take(11).collect::<String>())
}

fn ctx<'a>(
    uid: &'a str,
    what: &'a str,
) -> impl FnOnce(weft_netlink::NetlinkError) -> NodeError + 'a {
    move |e| NodeError::Network(format!("pod {uid}: {what}: {e}"))
}

/// Builds (or checks) the network of pod `uid` with address `ip`; returns the netns path.
pub async fn setup(
    nl: &Netlink,
    host: &HostNetwork,
    uid: &str,
    ip: Ipv4Addr,
) -> Result<PathBuf, NodeError> {
    let name = netns_name(uid);
    let path = if netns::exists(&name) {
        netns::path(&name)
    } else {
        netns::create(&name).map_err(ctx(uid, "creating the network namespace"))?
    };
    let pod_nl = Netlink::in_netns(&path)
        .await
        .map_err(ctx(uid, "opening the pod's netlink"))?;
    let address = IpNet::V4(
        Ipv4Net::new(ip, host.pod_cidr.prefix_len())
            .map_err(|e| NodeError::Config(e.to_string()))?,
    );
    let eth0 = pod_nl
        .link("eth0")
        .await
        .map_err(ctx(uid, "reading eth0"))?;
    let host_name = host_veth_name(uid);
    let complete = match &eth0 {
        Some(link) => {
            let addrs = pod_nl
                .addresses(link.index)
                .await
                .map_err(ctx(uid, "reading eth0's addresses"))?;
            let host_end = nl
                .link(&host_name)
                .await
                .map_err(ctx(uid, "reading the host veth"))?;
            addrs.contains(&address)
                && host_end.is_some_and(|h| h.master == Some(host.bridge_index) && h.up)
                && link.up
        }
        None => false,
    };
    if complete {
        ensure_routes(&pod_nl, uid, host.gateway).await?;
        return Ok(path);
    }
    // Start over for this pod: whatever is half there goes (its namespace holds no live
    // connection yet, since it never had a working address).
    if let Some(link) = eth0 {
        pod_nl
            .delete_link(link.index)
            .await
            .map_err(ctx(uid, "removing a half-made eth0"))?;
    }
    for stale in [host_name.clone(), peer_veth_name(uid)] {
        if let Some(link) = nl
            .link(&stale)
            .await
            .map_err(ctx(uid, "reading a stale veth"))?
        {
            nl.delete_link(link.index)
                .await
                .map_err(ctx(uid, "removing a stale veth"))?;
        }
    }
    // One request makes both ends at the overlay MTU, the host end up on the bridge and
    // eth0 born inside the pod (moving it in afterwards costs far more).
    let ns = std::fs::File::open(&path)
        .map_err(|e| NodeError::Network(format!("pod {uid}: opening {}: {e}", path.display())))?;
    nl.create_veth_into(&VethIntoSpec {
        name: &host_name,
        peer_name: "eth0",
        peer_netns: std::os::fd::AsFd::as_fd(&ns),
        mtu: host.mtu,
        master: Some(host.bridge_index),
    })
    .await
    .map_err(ctx(uid, "creating the veth pair"))?;
    let inside = pod_nl
        .link("eth0")
        .await
        .map_err(ctx(uid, "reading eth0"))?
        .ok_or_else(|| NodeError::Network(format!("pod {uid}: eth0 did not appear in the pod")))?;
    pod_nl
        .add_address(inside.index, address)
        .await
        .map_err(ctx(uid, "adding the pod address"))?;
    pod_nl
        .set_up(inside.index)
        .await
        .map_err(ctx(uid, "bringing eth0 up"))?;
    if let Some(lo) = pod_nl.link("lo").await.map_err(ctx(uid, "reading lo"))? {
        pod_nl
            .set_up(lo.index)
            .await
            .map_err(ctx(uid, "bringing lo up"))?;
    }
    let host_end = nl
        .link(&host_name)
        .await
        .map_err(ctx(uid, "reading the host veth"))?
        .ok_or_else(|| NodeError::Network(format!("pod {uid}: the host veth vanished")))?;
    // A pod reaching itself through a Service VIP comes back out its own bridge port.
    nl.set_hairpin(host_end.index, true)
        .await
        .map_err(ctx(uid, "enabling hairpin on the veth"))?;
    ensure_routes(&pod_nl, uid, host.gateway).await?;
    Ok(path)
}

async fn ensure_routes(pod_nl: &Netlink, uid: &str, gateway: Ipv4Addr) -> Result<(), NodeError> {
    let current = pod_nl
        .default_route_v4()
        .await
        .map_err(ctx(uid, "reading the default route"))?;
    if current.as_ref().and_then(|r| r.gateway) != Some(IpAddr::V4(gateway)) {
        pod_nl
            .replace_route(&RouteSpec::default_v4(gateway, None))
            .await
            .map_err(ctx(uid, "setting the default route"))?;
    }
    Ok(())
}

/// Removes the pod's network: deleting the namespace destroys eth0 and so its veth peer.
pub async fn teardown(nl: &Netlink, uid: &str) -> Result<(), NodeError> {
    let name = netns_name(uid);
    // Also removes a bare mount target a crash left, which `netns::exists` does not count.
    match netns::delete(&name) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(ctx(uid, "deleting the network namespace")(e)),
    }
    // A veth whose pod end never moved (a setup cut short) is not in the namespace.
    for stale in [host_veth_name(uid), peer_veth_name(uid)] {
        if let Some(link) = nl
            .link(&stale)
            .await
            .map_err(ctx(uid, "reading a leftover veth"))?
        {
            match nl.delete_link(link.index).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(ctx(uid, "removing a leftover veth")(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_unique_and_stable() {
        let uid = "3f2a9c1e-77b0-4c1d-9e55-0123456789ab";
        assert_eq!(netns_name(uid), "weft-3f2a9c1e77b0");
        assert_eq!(host_veth_name(uid), "wv3f2a9c1e77b");
        assert!(host_veth_name(uid).len() <= 15 && peer_veth_name(uid).len() <= 15);
        assert_ne!(host_veth_name(uid), peer_veth_name(uid));
    }
}

//! The overlay's desired state: one peer (route + ARP + FDB) per other Node that has told
//! us its podCIDR, VTEP MAC and underlay address. Pure, so it is tested without a kernel.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_api::core::Node;
use weft_netlink::{parse_mac, PeerEntry};

/// The peers `self_name` should have, given every Node. Nodes missing any of the three
/// facts are left out (their agent has not registered yet) and logged once per call.
pub fn desired_peers<'a>(
    self_name: &str,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Vec<PeerEntry> {
    let mut peers = Vec::new();
    for node in nodes {
        if node.metadata.name == self_name {
            continue;
        }
        let cidr = node.spec.pod_cidr.parse::<Ipv4Net>().ok();
        let mac = node.vtep_mac().and_then(parse_mac);
        let underlay = node
            .underlay_ip()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        match (cidr, mac, underlay) {
            (Some(cidr), Some(mac), Some(ip)) => peers.push(PeerEntry::new(cidr.trunc(), mac, ip)),
            _ => {
                tracing::debug!(node = %node.metadata.name, "node has no overlay facts yet; not a peer")
            }
        }
    }
    peers.sort_by_key(|p| p.pod_cidr);
    peers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str, mac: &str, ip: &str) -> Node {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"weft.io/vtep-mac": mac, "weft.io/underlay-ip": ip}},
            "spec": {"podCIDR": cidr}}))
        .unwrap()
    }

    #[test]
    fn every_other_complete_node_is_a_peer() {
        let nodes = [
            node("a", "10.244.0.0/24", "02:00:00:00:00:0a", "192.0.2.10"),
            node("b", "10.244.1.0/24", "02:00:00:00:00:0b", "192.0.2.11"),
            node("c", "", "02:00:00:00:00:0c", "192.0.2.12"),
            node("d", "10.244.3.0/24", "not-a-mac", "192.0.2.13"),
        ];
        let peers = desired_peers("a", &nodes);
        assert_eq!(peers.len(), 1);
        assert_eq!(
            peers[0].pod_cidr,
            "10.244.1.0/24".parse::<Ipv4Net>().unwrap()
        );
        assert_eq!(peers[0].gateway, Ipv4Addr::new(10, 244, 1, 0));
        assert_eq!(peers[0].underlay_ip, Ipv4Addr::new(192, 0, 2, 11));
    }
}

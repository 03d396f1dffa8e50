//! Interface addresses (`ip addr`).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::Netlink;

fn object(index: u32, net: &IpNet) -> String {
    format!("address {net} on link index {index}")
}

pub(crate) fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The message `ip addr add|del NET dev DEV` sends.
pub(crate) fn address_message(index: u32, net: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(&net.addr());
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    let ip = net.addr();
    if let (IpAddr::V4(_), IpNet::V4(v4)) = (ip, net) {
        // IPv4 has a local and a peer address; on a non-point-to-point link both are ours.
        msg.attributes.push(AddressAttribute::Local(ip));
        if v4.prefix_len() < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    }
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}

fn parse_address(msg: &AddressMessage) -> Option<IpNet> {
    let mut address = None;
    let mut local = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address when both are present (point-to-point).
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

impl Netlink {
    /// The addresses (IPv4 and IPv6) on link `index`, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let replies = self
            .dump(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                || format!("addresses on link index {index}"),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(msg) if msg.header.index == index => {
                    parse_address(msg)
                }
                _ => None,
            })
            .collect())
    }

    /// `ip addr add NET dev DEV`; `EEXIST` if it is already there.
    pub async fn add_address(&self, index: u32, net: IpNet) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewAddress(address_message(index, &net)),
            NLM_F_CREATE | NLM_F_EXCL,
            || object(index, &net),
        )
        .await
    }

    /// `ip addr del NET dev DEV`.
    pub async fn del_address(&self, index: u32, net: IpNet) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::DelAddress(address_message(index, &net)),
            0,
            || object(index, &net),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_carries_local_and_broadcast() {
        let net: IpNet = "10.244.1.1/24".parse().expect("net");
        let msg = address_message(4, &net);
        assert_eq!(msg.header.index, 4);
        assert_eq!(msg.header.prefix_len, 24);
        assert!(msg.attributes.contains(&AddressAttribute::Broadcast(
            "10.244.1.255".parse().expect("ip")
        )));
        assert_eq!(parse_address(&msg), Some(net));
    }

    #[test]
    fn host_routes_and_ipv6_have_no_broadcast() {
        for s in ["10.244.1.0/32", "fd00::1/64"] {
            let net: IpNet = s.parse().expect("net");
            let msg = address_message(1, &net);
            assert!(!msg
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
            assert_eq!(parse_address(&msg), Some(net));
        }
    }
}

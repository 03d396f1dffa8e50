//! Neighbour (ARP/NDP) entries (`ip neigh`).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
pub use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addr::family;
use crate::error::Result;
use crate::mac::{format_mac, mac_from_bytes, Mac};
use crate::Netlink;

/// `NUD_PERMANENT`: set by hand, never aged out or probed.
pub(crate) const NUD_PERMANENT: u16 = 0x80;

/// One neighbour entry of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    /// `None` while unresolved (`INCOMPLETE`, `FAILED`).
    pub mac: Option<Mac>,
    pub state: NeighbourState,
}

impl Neighbour {
    /// Set by hand, as [`Netlink::add_permanent_neighbour`] does.
    pub fn is_permanent(&self) -> bool {
        u16::from(self.state) & NUD_PERMANENT != 0
    }
}

fn object(index: u32, ip: &IpAddr) -> String {
    format!("neighbour {ip} on link index {index}")
}

pub(crate) fn neighbour_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

/// The message `ip neigh replace IP lladdr MAC dev DEV nud permanent` sends.
pub(crate) fn permanent_message(index: u32, ip: IpAddr, mac: Mac) -> NeighbourMessage {
    let mut msg = del_message(index, ip);
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg
}

fn del_message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(&ip);
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(neighbour_address(ip)));
    msg
}

fn parse_neighbour(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = mac_from_bytes(bytes),
            _ => {}
        }
    }
    Some(Neighbour {
        ip: ip?,
        mac,
        state: msg.header.state,
    })
}

impl Netlink {
    /// The IPv4 and IPv6 neighbour entries of link `index`.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>> {
        let mut out = Vec::new();
        // One dump per family: an AF_UNSPEC dump would bring the bridge FDB along too.
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = NeighbourMessage::default();
            request.header.family = family;
            let replies = self
                .dump(RouteNetlinkMessage::GetNeighbour(request), || {
                    format!("neighbours on link index {index}")
                })
                .await?;
            out.extend(replies.iter().filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(msg) if msg.header.ifindex == index => {
                    parse_neighbour(msg)
                }
                _ => None,
            }));
        }
        Ok(out)
    }

    /// `ip neigh replace IP lladdr MAC dev DEV nud permanent`: adds or overwrites.
    pub async fn add_permanent_neighbour(&self, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewNeighbour(permanent_message(index, ip, mac)),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("{} lladdr {}", object(index, &ip), format_mac(&mac)),
        )
        .await
    }

    /// `ip neigh del IP dev DEV`; `ENOENT` if absent.
    pub async fn del_neighbour(&self, index: u32, ip: IpAddr) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::DelNeighbour(del_message(index, ip)),
            0,
            || object(index, &ip),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_entry_round_trips() {
        let ip: IpAddr = "10.244.2.0".parse().expect("ip");
        let mac = [0x02, 0, 0, 0, 0, 2];
        let msg = permanent_message(5, ip, mac);
        assert_eq!(msg.header.family, AddressFamily::Inet);
        assert_eq!(msg.header.ifindex, 5);
        let n = parse_neighbour(&msg).expect("has a destination");
        assert_eq!((n.ip, n.mac), (ip, Some(mac)));
        assert!(n.is_permanent());
    }
}

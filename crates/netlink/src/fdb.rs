//! Forwarding database entries of a bridge or VXLAN device (`bridge fdb`).
//!
//! On a VXLAN device an entry `MAC dst IP` says which underlay address the frames for
//! that MAC are tunnelled to: the per-peer FDB entry of flannel's static VXLAN.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::mac::{format_mac, mac_from_bytes, Mac};
use crate::neigh::{neighbour_address, NUD_PERMANENT};
use crate::Netlink;

/// One FDB entry of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: Mac,
    /// The remote (underlay) address on a VXLAN device; `None` on a bridge port.
    pub dst: Option<IpAddr>,
    pub permanent: bool,
    /// In the device's own table (`self`, as VXLAN entries are) rather than one its
    /// master bridge learned for it (`master`).
    pub own: bool,
}

fn object(index: u32, mac: &Mac, dst: Option<IpAddr>) -> String {
    let mut s = format!("fdb {} on link index {index}", format_mac(mac));
    if let Some(dst) = dst {
        s.push_str(&format!(" dst {dst}"));
    }
    s
}

/// `bridge fdb … MAC dev DEV [dst IP] self permanent`.
pub(crate) fn fdb_message(index: u32, mac: Mac, dst: Option<IpAddr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: the device's own table (the VXLAN driver), not its master bridge's.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(dst) = dst {
        msg.attributes
            .push(NeighbourAttribute::Destination(neighbour_address(dst)));
    }
    msg
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn parse_fdb(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = mac_from_bytes(bytes),
            // AF_BRIDGE messages carry the remote's address as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                dst = ip_from_bytes(bytes)
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                dst = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                dst = Some(IpAddr::V6(*v6))
            }
            _ => {}
        }
    }
    Some(FdbEntry {
        mac: mac?,
        dst,
        permanent: u16::from(msg.header.state) & NUD_PERMANENT != 0,
        own: msg.header.flags.contains(NeighbourFlags::Own),
    })
}

impl Netlink {
    /// The FDB entries of device `index` (`bridge fdb show dev DEV`).
    pub async fn fdb(&self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut request = NeighbourMessage::default();
        request.header.family = AddressFamily::Bridge;
        let replies = self
            .dump(RouteNetlinkMessage::GetNeighbour(request), || {
                format!("fdb of link index {index}")
            })
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(msg) if msg.header.ifindex == index => {
                    parse_fdb(msg)
                }
                _ => None,
            })
            .collect())
    }

    /// `bridge fdb append MAC dev DEV dst IP self permanent`. Several remotes per MAC
    /// accumulate only for the all-zeros and multicast MACs (flooding lists); for a unicast
    /// MAC that already has an entry the kernel keeps the old remote — use
    /// [`Netlink::replace_fdb`] to change it.
    pub async fn append_fdb(&self, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, Some(dst))),
            NLM_F_CREATE | NLM_F_APPEND,
            || object(index, &mac, Some(dst)),
        )
        .await
    }

    /// `bridge fdb replace MAC dev DEV dst IP self permanent`: the unicast MAC's remote
    /// becomes `dst`, whatever it was (what flannel does per peer).
    pub async fn replace_fdb(&self, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, Some(dst))),
            NLM_F_CREATE | NLM_F_REPLACE,
            || object(index, &mac, Some(dst)),
        )
        .await
    }

    /// `bridge fdb del MAC dev DEV [dst IP] self`: with `dst`, only that remote goes;
    /// without, the MAC's whole entry. `ENOENT` if absent.
    pub async fn del_fdb(&self, index: u32, mac: Mac, dst: Option<IpAddr>) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, dst)),
            0,
            || object(index, &mac, dst),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_entry_is_self_and_permanent() {
        let dst: IpAddr = "192.168.50.2".parse().expect("ip");
        let msg = fdb_message(7, [0; 6], Some(dst));
        assert_eq!(msg.header.family, AddressFamily::Bridge);
        assert_eq!(msg.header.flags, NeighbourFlags::Own);
        let entry = parse_fdb(&msg).expect("has a MAC");
        assert_eq!(
            entry,
            FdbEntry {
                mac: [0; 6],
                dst: Some(dst),
                permanent: true,
                own: true
            }
        );
    }

    #[test]
    fn kernel_dumps_carry_raw_destination_bytes() {
        let mut msg = fdb_message(7, [2, 0, 0, 0, 0, 9], None);
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Other(
                vec![192, 168, 50, 3],
            )));
        let entry = parse_fdb(&msg).expect("has a MAC");
        assert_eq!(entry.dst, Some("192.168.50.3".parse().expect("ip")));
    }
}

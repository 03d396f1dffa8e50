//! Links: read them, create bridges, veth pairs and VXLAN devices, change their state.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridge, LinkDummy, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use crate::error::{NetlinkError, Result};
use crate::mac::{mac_from_bytes, Mac};
use crate::Netlink;

/// A veth pair whose peer is created inside another network namespace
/// ([`Netlink::create_veth_into`]).
#[derive(Debug, Clone, Copy)]
pub struct VethIntoSpec<'a> {
    /// The end that stays in this namespace.
    pub name: &'a str,
    /// The end created in `peer_netns` (its final name, e.g. `eth0`).
    pub peer_name: &'a str,
    pub peer_netns: BorrowedFd<'a>,
    /// Both ends' MTU.
    pub mtu: u32,
    /// A bridge to attach this namespace's end to.
    pub master: Option<u32>,
}

/// A network device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, …; `None` for devices without a kind (`lo`, physical).
    pub kind: Option<String>,
    pub mtu: u32,
    pub mac: Option<Mac>,
    /// The index of the bridge (or other master) this device is enslaved to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`), whatever the carrier.
    pub up: bool,
}

/// What a VXLAN device should be. Flannel's static VXLAN: VNI 1, port 8472, learning off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    /// Source address of the encapsulated packets: this node's underlay IP.
    pub local: Ipv4Addr,
    /// The underlay device; `None` lets the route to each peer decide.
    pub underlay_dev_index: Option<u32>,
    /// UDP destination port (8472 is Linux's and flannel's default, 4789 IANA's).
    pub port: u16,
    pub learning: bool,
    /// `None` keeps the kernel's choice (underlay MTU − 50 when the underlay is given).
    pub mtu: Option<u32>,
}

/// What an existing VXLAN device is, read back so a reconciler can spot a mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub index: u32,
    pub vni: Option<u32>,
    pub local: Option<Ipv4Addr>,
    pub underlay_dev_index: Option<u32>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
    pub mtu: u32,
}

impl VxlanSpec {
    /// Whether `info` is the device this spec describes (unset optional fields match any).
    pub fn matches(&self, info: &VxlanInfo) -> bool {
        info.vni == Some(self.vni)
            && info.local == Some(self.local)
            && info.port == Some(self.port)
            && info.learning == Some(self.learning)
            && self
                .underlay_dev_index
                .is_none_or(|i| info.underlay_dev_index == Some(i))
            && self.mtu.is_none_or(|m| info.mtu == m)
    }
}

fn by_name(name: &str) -> String {
    format!("link {name:?}")
}

fn by_index(index: u32) -> String {
    format!("link index {index}")
}

pub(crate) fn bridge_message(name: &str, mtu: u32) -> LinkMessage {
    LinkMessageBuilder::<LinkBridge>::new(name).mtu(mtu).build()
}

pub(crate) fn vxlan_message(spec: &VxlanSpec) -> LinkMessage {
    let mut builder = LinkVxlan::new(&spec.name, spec.vni)
        .local(spec.local)
        .port(spec.port)
        .learning(spec.learning);
    if let Some(dev) = spec.underlay_dev_index {
        builder = builder.dev(dev);
    }
    if let Some(mtu) = spec.mtu {
        builder = builder.mtu(mtu);
    }
    builder.build()
}

pub(crate) fn dummy_message(name: &str) -> LinkMessage {
    LinkDummy::new(name).build()
}

/// A change to one existing link, addressed by index.
fn set_message(index: u32) -> LinkMessageBuilder<LinkUnspec> {
    LinkUnspec::new_with_index(index)
}

fn info_kind(msg: &LinkMessage) -> Option<&InfoKind> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind),
            _ => None,
        }),
        _ => None,
    })
}

pub(crate) fn parse_link(msg: &LinkMessage) -> Option<Link> {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: info_kind(msg).map(|k| k.to_string()),
        mtu: 0,
        mac: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = mac_from_bytes(bytes),
            LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some(link)
}

pub(crate) fn parse_vxlan(msg: &LinkMessage) -> Option<VxlanInfo> {
    let data = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(data)) => Some(data),
            _ => None,
        }),
        _ => None,
    })?;
    let mut info = VxlanInfo {
        index: msg.header.index,
        vni: None,
        local: None,
        underlay_dev_index: None,
        port: None,
        learning: None,
        mtu: msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
            .unwrap_or(0),
    };
    for item in data {
        match item {
            InfoVxlan::Id(vni) => info.vni = Some(*vni),
            InfoVxlan::Local(ip) => info.local = Some(*ip),
            InfoVxlan::Link(dev) if *dev != 0 => info.underlay_dev_index = Some(*dev),
            InfoVxlan::Port(port) => info.port = Some(*port),
            InfoVxlan::Learning(on) => info.learning = Some(*on),
            _ => {}
        }
    }
    Some(info)
}

fn one_link(reply: RouteNetlinkMessage, object: &str) -> Result<LinkMessage> {
    match reply {
        RouteNetlinkMessage::NewLink(msg) => Ok(msg),
        other => Err(NetlinkError::protocol(
            object,
            format!("unexpected reply {:?}", other.message_type()),
        )),
    }
}

impl Netlink {
    /// The link named `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.link_message(name).await?.as_ref().and_then(parse_link))
    }

    /// The link with index `index`, if there is one.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let request = set_message(index).build();
        let reply = self
            .get(RouteNetlinkMessage::GetLink(request), || by_index(index))
            .await?;
        match reply {
            Some(reply) => Ok(parse_link(&one_link(reply, &by_index(index))?)),
            None => Ok(None),
        }
    }

    async fn link_message(&self, name: &str) -> Result<Option<LinkMessage>> {
        let request = LinkUnspec::new_with_name(name).build();
        let reply = self
            .get(RouteNetlinkMessage::GetLink(request), || by_name(name))
            .await?;
        reply.map(|r| one_link(r, &by_name(name))).transpose()
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || {
                "links".to_string()
            })
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(msg) => parse_link(msg),
                _ => None,
            })
            .collect())
    }

    async fn create(&self, name: &str, message: LinkMessage) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            || by_name(name),
        )
        .await
    }

    /// `ip link add NAME mtu MTU type bridge` (left down).
    pub async fn create_bridge(&self, name: &str, mtu: u32) -> Result<()> {
        self.create(name, bridge_message(name, mtu)).await
    }

    /// `ip link add NAME type dummy` (left down): a device that only holds addresses, as
    /// the IPVS proxy's `kube-ipvs0`. Needs the `dummy` driver, which some kernels lack.
    pub async fn create_dummy(&self, name: &str) -> Result<()> {
        self.create(name, dummy_message(name)).await
    }

    /// `ip link add NAME mtu MTU master MASTER up type veth peer name PEER mtu MTU netns NS`,
    /// in one request: the peer is born inside the namespace `peer_netns` (down: the kernel
    /// refuses to open it before the pair is joined). Moving a device between namespaces
    /// afterwards makes the kernel unregister and re-register it (about 13 ms per pod
    /// here), which this avoids.
    pub async fn create_veth_into(&self, spec: &VethIntoSpec<'_>) -> Result<()> {
        // The kernel resolves the descriptor while handling the request, before the
        // acknowledgement this waits for: `peer_netns` outlives its use.
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer_name.to_string())
            .mtu(spec.mtu)
            .setns_by_fd(spec.peer_netns.as_raw_fd())
            .build();
        let mut host = LinkVeth::new(spec.name, spec.peer_name)
            .mtu(spec.mtu)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        if let Some(master) = spec.master {
            host = host.controller(master);
        }
        self.create(spec.name, host.build()).await
    }

    /// `ip link add NAME type veth peer name PEER` (both ends down, here).
    pub async fn create_veth(&self, name: &str, peer_name: &str) -> Result<()> {
        self.create(name, LinkVeth::new(name, peer_name).build())
            .await
    }

    /// `ip link add NAME type vxlan id VNI local IP dstport PORT [nolearning] [dev DEV]`
    /// (left down).
    pub async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        self.create(&spec.name, vxlan_message(spec)).await
    }

    /// The VXLAN settings of the link named `name`; `None` if there is no such link, an
    /// `Invalid` error if it is not a VXLAN device.
    pub async fn vxlan_info(&self, name: &str) -> Result<Option<VxlanInfo>> {
        let Some(msg) = self.link_message(name).await? else {
            return Ok(None);
        };
        match parse_vxlan(&msg) {
            Some(info) => Ok(Some(info)),
            None => {
                let kind = info_kind(&msg).map_or("no kind".to_string(), |k| k.to_string());
                Err(NetlinkError::invalid(
                    by_name(name),
                    format!("not a vxlan device ({kind})"),
                ))
            }
        }
    }

    async fn set(&self, index: u32, message: LinkMessage) -> Result<()> {
        self.ack(RouteNetlinkMessage::SetLink(message), 0, || by_index(index))
            .await
    }

    /// `ip link set DEV up`.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.set(index, set_message(index).up().build()).await
    }

    /// `ip link set DEV down`.
    pub async fn set_down(&self, index: u32) -> Result<()> {
        self.set(index, set_message(index).down().build()).await
    }

    /// `ip link set DEV mtu MTU`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set(index, set_message(index).mtu(mtu).build()).await
    }

    /// `ip link set DEV master BRIDGE`.
    pub async fn set_master(&self, index: u32, master_index: u32) -> Result<()> {
        self.set(index, set_message(index).controller(master_index).build())
            .await
    }

    /// `ip link set DEV type bridge_slave hairpin on|off`: lets the bridge send a frame back
    /// out the port it came in on, which a pod reaching itself through a Service VIP needs
    /// (the kubelet's hairpin-veth mode).
    pub async fn set_hairpin(&self, index: u32, on: bool) -> Result<()> {
        // Port (slave) attributes are only applied by RTM_NEWLINK on an existing link, as
        // `ip link set … type bridge_slave` sends it; RTM_SETLINK ignores them.
        let message = rtnetlink::LinkBridgePort::new(index).hairpin(on).build();
        self.ack(RouteNetlinkMessage::NewLink(message), 0, || by_index(index))
            .await
    }

    /// `ip link set DEV nomaster`.
    pub async fn set_nomaster(&self, index: u32) -> Result<()> {
        self.set(index, set_message(index).nocontroller().build())
            .await
    }

    /// `ip link set DEV netns NS`, the namespace given by an open namespace file.
    pub async fn set_netns_by_fd(&self, index: u32, ns: BorrowedFd<'_>) -> Result<()> {
        // The kernel resolves the descriptor while handling the request, which happens
        // before the acknowledgement this waits for: `ns` outlives its use.
        self.set(
            index,
            set_message(index).setns_by_fd(ns.as_raw_fd()).build(),
        )
        .await
    }

    /// `ip link set DEV netns NS`, the namespace given by its path (`/run/netns/NAME`).
    pub async fn set_netns_by_path(&self, index: u32, ns_path: impl AsRef<Path>) -> Result<()> {
        let ns_path = ns_path.as_ref();
        let ns = File::open(ns_path)
            .map_err(|e| NetlinkError::io(format!("netns {}", ns_path.display()), &e))?;
        self.set_netns_by_fd(index, std::os::fd::AsFd::as_fd(&ns))
            .await
    }

    /// `ip link set DEV name NEW` (the kernel wants the link down).
    pub async fn rename(&self, index: u32, new_name: &str) -> Result<()> {
        self.set(index, set_message(index).name(new_name).build())
            .await
    }

    /// `ip link set DEV address MAC`.
    pub async fn set_mac(&self, index: u32, mac: Mac) -> Result<()> {
        self.set(index, set_message(index).address(mac.to_vec()).build())
            .await
    }

    /// `ip link del DEV` (a veth takes its peer with it).
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::DelLink(set_message(index).build()),
            0,
            || by_index(index),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VxlanSpec {
        VxlanSpec {
            name: "weft.1".into(),
            vni: 1,
            local: Ipv4Addr::new(192, 168, 1, 10),
            underlay_dev_index: Some(2),
            port: 8472,
            learning: false,
            mtu: Some(1450),
        }
    }

    #[test]
    fn vxlan_message_reads_back_as_its_spec() {
        let mut msg = vxlan_message(&spec());
        msg.header.index = 7;
        assert_eq!(info_kind(&msg), Some(&InfoKind::Vxlan));
        let info = parse_vxlan(&msg).expect("vxlan data");
        assert_eq!(info.vni, Some(1));
        assert_eq!(info.port, Some(8472));
        assert_eq!(info.learning, Some(false));
        assert_eq!(info.local, Some(Ipv4Addr::new(192, 168, 1, 10)));
        assert_eq!(info.underlay_dev_index, Some(2));
        assert_eq!(info.mtu, 1450);
        assert!(spec().matches(&info));
    }

    #[test]
    fn a_different_vni_or_learning_is_a_mismatch() {
        let info = parse_vxlan(&vxlan_message(&spec())).expect("vxlan data");
        let mut other = spec();
        other.vni = 2;
        assert!(!other.matches(&info));
        let mut other = spec();
        other.learning = true;
        assert!(!other.matches(&info));
        let mut loose = spec();
        loose.underlay_dev_index = None;
        loose.mtu = None;
        assert!(loose.matches(&info));
    }

    #[test]
    fn a_dummy_message_names_its_kind() {
        let link = parse_link(&dummy_message("kube-ipvs0")).expect("named link");
        assert_eq!(link.name, "kube-ipvs0");
        assert_eq!(link.kind.as_deref(), Some("dummy"));
    }

    #[test]
    fn parses_a_bridge_link() {
        let mut msg = bridge_message("weft0", 1450);
        msg.header.index = 3;
        msg.header.flags |= LinkFlags::Up;
        msg.attributes
            .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]));
        msg.attributes.push(LinkAttribute::Controller(9));
        let link = parse_link(&msg).expect("named link");
        assert_eq!(
            link,
            Link {
                index: 3,
                name: "weft0".into(),
                kind: Some("bridge".into()),
                mtu: 1450,
                mac: Some([2, 0, 0, 0, 0, 1]),
                master: Some(9),
                up: true,
            }
        );
        assert!(parse_vxlan(&msg).is_none());
    }
}

//! Routes in the main table (`ip route`).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType,
};
pub use netlink_packet_route::route::{RouteProtocol, RouteScope};
use netlink_packet_route::RouteNetlinkMessage;

use crate::addr::family;
use crate::error::{NetlinkError, Result};
use crate::Netlink;

/// A route of the main table, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The gateway is reachable on `oif` without a matching connected route.
    pub onlink: bool,
    pub scope: RouteScope,
    pub protocol: RouteProtocol,
}

/// A route to add or replace, as `ip route add DST [via GW] [dev OIF] [onlink]` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub onlink: bool,
}

impl RouteSpec {
    /// `default via GATEWAY [dev OIF]`.
    pub fn default_v4(gateway: Ipv4Addr, oif: Option<u32>) -> Self {
        Self {
            dst: IpNet::V4(Ipv4Net::default()),
            gateway: Some(IpAddr::V4(gateway)),
            oif,
            onlink: false,
        }
    }
}

impl From<&Route> for RouteSpec {
    fn from(r: &Route) -> Self {
        Self {
            dst: r.dst,
            gateway: r.gateway,
            oif: r.oif,
            onlink: r.onlink,
        }
    }
}

fn describe(dst: &IpNet, gateway: Option<IpAddr>, oif: Option<u32>, onlink: bool) -> String {
    let mut s = format!("route {dst}");
    if let Some(gw) = gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = oif {
        s.push_str(&format!(" dev index {oif}"));
    }
    if onlink {
        s.push_str(" onlink");
    }
    s
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

/// Destination, gateway and device: what both adding and deleting match on.
fn base_message(dst: &IpNet, gateway: Option<IpAddr>, oif: Option<u32>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(&dst.addr());
    msg.header.destination_prefix_length = dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    if dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_address(dst.addr())));
    }
    if let Some(gw) = gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gw)));
    }
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

/// The message `ip route add|replace` sends: protocol boot, scope link for a route with
/// no gateway, universe otherwise (iproute2's defaults).
pub(crate) fn add_message(spec: &RouteSpec) -> Result<RouteMessage> {
    if spec.dst.trunc() != spec.dst {
        return Err(NetlinkError::invalid(
            describe(&spec.dst, spec.gateway, spec.oif, spec.onlink),
            "destination has host bits set",
        ));
    }
    let mut msg = base_message(&spec.dst, spec.gateway, spec.oif);
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = if spec.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    msg.header.kind = RouteType::Unicast;
    if spec.onlink {
        msg.header.flags |= RouteFlags::Onlink;
    }
    Ok(msg)
}

/// The message `ip route del` sends: any scope, type and protocol match.
pub(crate) fn del_message(route: &Route) -> RouteMessage {
    let mut msg = base_message(&route.dst, route.gateway, route.oif);
    msg.header.scope = RouteScope::NoWhere;
    msg
}

pub(crate) fn parse_route(msg: &RouteMessage) -> Option<Route> {
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => dst = Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => dst = Some(IpAddr::V6(*v6)),
            RouteAttribute::Gateway(RouteAddress::Inet(v4)) => gateway = Some(IpAddr::V4(*v4)),
            RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => gateway = Some(IpAddr::V6(*v6)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN)
        || msg.header.flags.contains(RouteFlags::Cloned)
    {
        return None;
    }
    let dst = dst.unwrap_or(match msg.header.address_family {
        netlink_packet_route::AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    Some(Route {
        dst: IpNet::new(dst, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        onlink: msg.header.flags.contains(RouteFlags::Onlink),
        scope: msg.header.scope,
        protocol: msg.header.protocol,
    })
}

impl Netlink {
    /// The IPv4 routes of the main table.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let mut request = RouteMessage::default();
        request.header.address_family = netlink_packet_route::AddressFamily::Inet;
        let replies = self
            .dump(RouteNetlinkMessage::GetRoute(request), || {
                "routes".to_string()
            })
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(msg) => parse_route(msg),
                _ => None,
            })
            .collect())
    }

    /// The IPv4 default route of the main table, if any.
    pub async fn default_route_v4(&self) -> Result<Option<Route>> {
        Ok(self
            .routes()
            .await?
            .into_iter()
            .find(|r| r.dst.prefix_len() == 0))
    }

    /// `ip route add …`; `EEXIST` if that destination is already routed.
    pub async fn add_route(&self, spec: &RouteSpec) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewRoute(add_message(spec)?),
            NLM_F_CREATE | NLM_F_EXCL,
            || describe(&spec.dst, spec.gateway, spec.oif, spec.onlink),
        )
        .await
    }

    /// `ip route replace …`: adds, or changes the route to that destination in place.
    pub async fn replace_route(&self, spec: &RouteSpec) -> Result<()> {
        self.ack(
            RouteNetlinkMessage::NewRoute(add_message(spec)?),
            NLM_F_CREATE | NLM_F_REPLACE,
            || describe(&spec.dst, spec.gateway, spec.oif, spec.onlink),
        )
        .await
    }

    /// `ip route del …`, matching destination, gateway and device; `ESRCH` if absent.
    pub async fn del_route(&self, route: &Route) -> Result<()> {
        self.ack(RouteNetlinkMessage::DelRoute(del_message(route)), 0, || {
            describe(&route.dst, route.gateway, route.oif, route.onlink)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_route() -> RouteSpec {
        RouteSpec {
            dst: "10.244.2.0/24".parse().expect("net"),
            gateway: Some("10.244.2.0".parse().expect("ip")),
            oif: Some(5),
            onlink: true,
        }
    }

    #[test]
    fn onlink_peer_route_round_trips() {
        let msg = add_message(&peer_route()).expect("valid");
        assert_eq!(msg.header.protocol, RouteProtocol::Boot);
        assert_eq!(msg.header.scope, RouteScope::Universe);
        assert_eq!(msg.header.kind, RouteType::Unicast);
        let route = parse_route(&msg).expect("main table");
        assert_eq!(RouteSpec::from(&route), peer_route());
    }

    #[test]
    fn device_routes_are_link_scoped_and_default_has_no_destination() {
        let spec = RouteSpec {
            dst: "10.244.1.0/24".parse().expect("net"),
            gateway: None,
            oif: Some(3),
            onlink: false,
        };
        assert_eq!(
            add_message(&spec).expect("valid").header.scope,
            RouteScope::Link
        );

        let default = RouteSpec::default_v4("10.244.1.1".parse().expect("ip"), Some(2));
        let msg = add_message(&default).expect("valid");
        assert!(!msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert_eq!(
            parse_route(&msg).expect("main").dst.to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn host_bits_in_the_destination_are_refused() {
        let mut spec = peer_route();
        spec.dst = "10.244.2.1/24".parse().expect("net");
        let err = add_message(&spec).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("route 10.244.2.1/24 via 10.244.2.0"),
            "{err}"
        );
    }

    #[test]
    fn other_tables_are_not_main() {
        let mut msg = add_message(&peer_route()).expect("valid");
        msg.header.table = 255;
        assert!(parse_route(&msg).is_none());
    }

    #[test]
    fn delete_matches_any_scope() {
        let route = parse_route(&add_message(&peer_route()).expect("valid")).expect("main");
        let msg = del_message(&route);
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert_eq!(msg.header.protocol, RouteProtocol::Unspec);
    }
}

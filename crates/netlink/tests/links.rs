//! Links, addresses, routes, VXLAN devices, neighbours and FDB (root), each test in its
//! own throwaway namespaces, cross-checked with iproute2.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{bridge_in, ip_in, require_root, Namespaces};
use weft_netlink::{format_mac, IpNet, Link, Netlink, RouteSpec, VethIntoSpec, VxlanSpec};

async fn link(nl: &Netlink, name: &str) -> Link {
    nl.link(name)
        .await
        .expect("link lookup")
        .unwrap_or_else(|| panic!("no link {name}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

#[tokio::test]
async fn bridge_and_veth_with_one_end_in_another_namespace() {
    if !require_root("bridge_and_veth_with_one_end_in_another_namespace") {
        return;
    }
    let ns = Namespaces::create(2);
    let host = Netlink::in_netns(ns.path(0)).await.expect("host handle");
    let pod = Netlink::in_netns(ns.path(1)).await.expect("pod handle");

    host.create_bridge("weft0", 1400).await.expect("bridge");
    let br = link(&host, "weft0").await;
    assert_eq!(
        (br.kind.as_deref(), br.mtu, br.up),
        (Some("bridge"), 1400, false)
    );
    let dup = host.create_bridge("weft0", 1400).await.unwrap_err();
    assert!(dup.is_exists());
    assert_eq!(dup.to_string(), "link \"weft0\": File exists");

    host.create_veth("vethpod0", "vethtmp").await.expect("veth");
    let host_end = link(&host, "vethpod0").await;
    let pod_end = link(&host, "vethtmp").await;
    assert_eq!(host_end.kind.as_deref(), Some("veth"));

    host.set_master(host_end.index, br.index)
        .await
        .expect("master");
    host.set_mtu(host_end.index, 1400).await.expect("mtu");
    let mac = [0x02, 0x77, 0, 0, 0, 1];
    host.set_mac(host_end.index, mac).await.expect("mac");
    let host_end = link(&host, "vethpod0").await;
    assert_eq!(host_end.master, Some(br.index));
    assert_eq!((host_end.mtu, host_end.mac), (1400, Some(mac)));
    let shown = ip_in(ns.name(0), &["link", "show", "vethpod0"]);
    assert!(shown.contains("master weft0"), "{shown}");
    assert!(shown.contains(&format_mac(&mac)), "{shown}");
    // Hairpin on the bridge port, as `bridge -d link` reports it.
    host.set_hairpin(host_end.index, true)
        .await
        .expect("hairpin");
    let ports = std::process::Command::new("bridge")
        .args(["-n", ns.name(0), "-d", "link", "show", "dev", "vethpod0"])
        .output()
        .expect("bridge runs");
    let ports = String::from_utf8_lossy(&ports.stdout);
    assert!(ports.contains("hairpin on"), "{ports}");

    // Move the other end into the pod namespace and name it eth0 there.
    host.set_netns_by_path(pod_end.index, ns.path(1))
        .await
        .expect("move");
    assert_eq!(host.link("vethtmp").await.expect("lookup"), None);
    let moved = link(&pod, "vethtmp").await;
    pod.rename(moved.index, "eth0").await.expect("rename");
    let eth0 = link(&pod, "eth0").await;
    assert!(ip_in(ns.name(1), &["link", "show", "eth0"]).contains("eth0@"));

    for (nl, index) in [
        (&host, br.index),
        (&host, host_end.index),
        (&pod, eth0.index),
    ] {
        nl.set_up(index).await.expect("up");
    }
    assert!(link(&pod, "eth0").await.up);
    pod.set_down(eth0.index).await.expect("down");
    assert!(!link(&pod, "eth0").await.up);

    host.set_nomaster(host_end.index).await.expect("nomaster");
    assert_eq!(link(&host, "vethpod0").await.master, None);

    let names: Vec<String> = host
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(names.contains(&"weft0".to_string()) && names.contains(&"vethpod0".to_string()));

    // Deleting one end takes the peer in the other namespace with it.
    host.delete_link(host_end.index).await.expect("delete");
    assert_eq!(host.link("vethpod0").await.expect("lookup"), None);
    assert_eq!(pod.link("eth0").await.expect("lookup"), None);
    let gone = host.delete_link(host_end.index).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(
        host.link_by_index(br.index)
            .await
            .expect("lookup")
            .map(|l| l.name),
        Some("weft0".into())
    );
}

#[tokio::test]
async fn veth_born_with_its_peer_in_another_namespace() {
    if !require_root("veth_born_with_its_peer_in_another_namespace") {
        return;
    }
    let ns = Namespaces::create(2);
    let host = Netlink::in_netns(ns.path(0)).await.expect("host handle");
    let pod = Netlink::in_netns(ns.path(1)).await.expect("pod handle");
    host.create_bridge("weft0", 1400).await.expect("bridge");
    let br = link(&host, "weft0").await;
    let pod_ns = std::fs::File::open(ns.path(1)).expect("netns file");
    let spec = VethIntoSpec {
        name: "wvpod0",
        peer_name: "eth0",
        peer_netns: std::os::fd::AsFd::as_fd(&pod_ns),
        mtu: 1400,
        master: Some(br.index),
    };
    host.create_veth_into(&spec)
        .await
        .expect("veth into the pod");
    let host_end = link(&host, "wvpod0").await;
    assert_eq!(
        (
            host_end.kind.as_deref(),
            host_end.mtu,
            host_end.master,
            host_end.up
        ),
        (Some("veth"), 1400, Some(br.index), true)
    );
    // The peer never appears here: it is born inside the pod, named eth0, down.
    assert_eq!(host.link("eth0").await.expect("lookup"), None);
    let eth0 = link(&pod, "eth0").await;
    assert_eq!((eth0.mtu, eth0.up), (1400, false));
    assert!(ip_in(ns.name(1), &["link", "show", "eth0"]).contains("link-netns"));
    // A second pair with a taken name is refused, naming the link.
    let dup = host.create_veth_into(&spec).await.unwrap_err();
    assert!(dup.is_exists(), "{dup}");
    assert!(dup.to_string().contains("wvpod0"), "{dup}");
}

#[tokio::test]
async fn addresses_and_an_onlink_route() {
    if !require_root("addresses_and_an_onlink_route") {
        return;
    }
    let ns = Namespaces::create(1);
    let nl = Netlink::in_netns(ns.path(0)).await.expect("handle");
    nl.create_veth("v0", "v1").await.expect("veth");
    let v0 = link(&nl, "v0").await;
    let v1 = link(&nl, "v1").await;
    nl.set_up(v0.index).await.expect("up");
    nl.set_up(v1.index).await.expect("up");

    nl.add_address(v0.index, net("10.99.0.1/24"))
        .await
        .expect("addr");
    nl.add_address(v0.index, net("10.99.0.9/32"))
        .await
        .expect("addr");
    let addrs = nl.addresses(v0.index).await.expect("addresses");
    assert!(
        addrs.contains(&net("10.99.0.1/24")) && addrs.contains(&net("10.99.0.9/32")),
        "{addrs:?}"
    );
    assert!(nl
        .add_address(v0.index, net("10.99.0.1/24"))
        .await
        .unwrap_err()
        .is_exists());
    assert!(ip_in(ns.name(0), &["addr", "show", "dev", "v0"]).contains("inet 10.99.0.1/24"));

    // The gateway is on no connected subnet: only `onlink` makes it acceptable.
    let mut spec = RouteSpec {
        dst: net("10.98.0.0/24"),
        gateway: Some(ip("10.97.0.1")),
        oif: Some(v0.index),
        onlink: false,
    };
    let refused = nl.add_route(&spec).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("route 10.98.0.0/24 via 10.97.0.1"),
        "{refused}"
    );
    spec.onlink = true;
    nl.add_route(&spec).await.expect("onlink route");
    assert!(nl.add_route(&spec).await.unwrap_err().is_exists());
    let shown = ip_in(ns.name(0), &["route", "show", "10.98.0.0/24"]);
    assert_eq!(shown.trim(), "10.98.0.0/24 via 10.97.0.1 dev v0 onlink");

    spec.gateway = Some(ip("10.97.0.2"));
    nl.replace_route(&spec).await.expect("replace");
    let routes: Vec<_> = nl
        .routes()
        .await
        .expect("routes")
        .into_iter()
        .filter(|r| r.dst == spec.dst)
        .collect();
    assert_eq!(routes.len(), 1, "{routes:?}");
    let route = &routes[0];
    assert_eq!(
        (route.gateway, route.oif, route.onlink),
        (spec.gateway, Some(v0.index), true)
    );

    nl.replace_route(&RouteSpec::default_v4(
        Ipv4Addr::new(10, 99, 0, 254),
        Some(v0.index),
    ))
    .await
    .expect("default route");
    let default = nl
        .default_route_v4()
        .await
        .expect("routes")
        .expect("a default");
    assert_eq!(default.gateway, Some(ip("10.99.0.254")));
    assert!(ip_in(ns.name(0), &["route"]).contains("default via 10.99.0.254 dev v0"));

    nl.del_route(route).await.expect("del route");
    assert!(nl.del_route(route).await.unwrap_err().is_not_found());
    assert!(!nl
        .routes()
        .await
        .expect("routes")
        .iter()
        .any(|r| r.dst == spec.dst));

    nl.del_address(v0.index, net("10.99.0.9/32"))
        .await
        .expect("del addr");
    assert!(!nl
        .addresses(v0.index)
        .await
        .expect("addrs")
        .contains(&net("10.99.0.9/32")));
}

/// An underlay veth with an address, and a VXLAN device on it, as a node agent makes them.
async fn vxlan_node(nl: &Netlink) -> (VxlanSpec, Link) {
    nl.create_veth("ul0", "ul1").await.expect("underlay veth");
    let ul0 = link(nl, "ul0").await;
    nl.add_address(ul0.index, net("192.168.77.1/24"))
        .await
        .expect("underlay addr");
    nl.set_up(ul0.index).await.expect("up");
    let spec = VxlanSpec {
        name: "vxlan0".into(),
        vni: 1,
        local: Ipv4Addr::new(192, 168, 77, 1),
        underlay_dev_index: Some(ul0.index),
        port: 8472,
        learning: false,
        mtu: Some(1450),
    };
    nl.create_vxlan(&spec).await.expect("vxlan");
    let vx = link(nl, "vxlan0").await;
    nl.set_up(vx.index).await.expect("up");
    (spec, vx)
}

#[tokio::test]
async fn vxlan_device_reads_back_its_settings() {
    if !require_root("vxlan_device_reads_back_its_settings") {
        return;
    }
    let ns = Namespaces::create(1);
    let nl = Netlink::in_netns(ns.path(0)).await.expect("handle");
    let (spec, vx) = vxlan_node(&nl).await;
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));

    let info = nl
        .vxlan_info("vxlan0")
        .await
        .expect("info")
        .expect("exists");
    assert_eq!(info.vni, Some(1));
    assert_eq!(info.port, Some(8472));
    assert_eq!(info.learning, Some(false));
    assert_eq!(info.local, Some(Ipv4Addr::new(192, 168, 77, 1)));
    assert_eq!(info.mtu, 1450);
    assert!(spec.matches(&info));
    let other_vni = VxlanSpec {
        vni: 2,
        ..spec.clone()
    };
    assert!(!other_vni.matches(&info));

    let detail = ip_in(ns.name(0), &["-d", "link", "show", "vxlan0"]);
    for want in [
        "vxlan id 1 ",
        "local 192.168.77.1",
        "dev ul0",
        "dstport 8472",
        "nolearning",
    ] {
        assert!(detail.contains(want), "{want:?} missing in {detail}");
    }

    assert_eq!(nl.vxlan_info("nothere").await.expect("lookup"), None);
    let not_vxlan = nl.vxlan_info("ul0").await.unwrap_err();
    assert_eq!(
        not_vxlan.to_string(),
        "link \"ul0\": not a vxlan device (veth)"
    );
}

#[tokio::test]
async fn permanent_neighbours_and_fdb_entries() {
    if !require_root("permanent_neighbours_and_fdb_entries") {
        return;
    }
    let ns = Namespaces::create(1);
    let name = ns.name(0);
    let nl = Netlink::in_netns(ns.path(0)).await.expect("handle");
    let (_, vx) = vxlan_node(&nl).await;
    let mac1 = [0x02, 0x11, 0, 0, 0, 1];
    let mac2 = [0x02, 0x11, 0, 0, 0, 2];

    // Neighbour: replace semantics, permanent.
    let gw = ip("10.244.2.0");
    nl.add_permanent_neighbour(vx.index, gw, mac1)
        .await
        .expect("neigh");
    nl.add_permanent_neighbour(vx.index, gw, mac2)
        .await
        .expect("neigh replace");
    // Only IPv4: the kernel adds IPv6 multicast (NOARP) entries of its own once it is up.
    let ipv4_neighbours = || async {
        let all = nl.neighbours(vx.index).await.expect("neighbours");
        all.into_iter()
            .filter(|n| n.ip.is_ipv4())
            .collect::<Vec<_>>()
    };
    let neigh = ipv4_neighbours().await;
    assert_eq!(neigh.len(), 1, "{neigh:?}");
    assert_eq!((neigh[0].ip, neigh[0].mac), (gw, Some(mac2)));
    assert!(neigh[0].is_permanent());
    let shown = ip_in(name, &["neigh", "show", "dev", "vxlan0"]);
    assert!(
        shown.contains(&format!(
            "10.244.2.0 lladdr {} PERMANENT",
            format_mac(&mac2)
        )),
        "{shown}"
    );
    nl.del_neighbour(vx.index, gw).await.expect("del neigh");
    assert!(ipv4_neighbours().await.is_empty());
    assert!(nl
        .del_neighbour(vx.index, gw)
        .await
        .unwrap_err()
        .is_not_found());

    // FDB: the all-zeros MAC holds several remotes (a flood list).
    let zero = [0u8; 6];
    for dst in ["192.168.77.2", "192.168.77.3"] {
        nl.append_fdb(vx.index, zero, ip(dst))
            .await
            .expect("append");
    }
    let remotes_of = |entries: &[weft_netlink::FdbEntry], mac| {
        let mut v: Vec<_> = entries
            .iter()
            .filter(|e| e.mac == mac)
            .filter_map(|e| e.dst)
            .collect();
        v.sort();
        v
    };
    let fdb = nl.fdb(vx.index).await.expect("fdb");
    assert_eq!(
        remotes_of(&fdb, zero),
        vec![ip("192.168.77.2"), ip("192.168.77.3")]
    );
    assert!(
        fdb.iter()
            .filter(|e| e.mac == zero)
            .all(|e| e.permanent && e.own),
        "{fdb:?}"
    );
    let shown = bridge_in(name, &["fdb", "show", "dev", "vxlan0"]);
    assert!(
        shown.contains("00:00:00:00:00:00 dst 192.168.77.2 self permanent"),
        "{shown}"
    );

    // A unicast MAC has one remote; replace moves it.
    nl.append_fdb(vx.index, mac1, ip("192.168.77.2"))
        .await
        .expect("append");
    nl.replace_fdb(vx.index, mac1, ip("192.168.77.4"))
        .await
        .expect("replace");
    let fdb = nl.fdb(vx.index).await.expect("fdb");
    assert_eq!(remotes_of(&fdb, mac1), vec![ip("192.168.77.4")]);

    nl.del_fdb(vx.index, zero, Some(ip("192.168.77.2")))
        .await
        .expect("del one remote");
    nl.del_fdb(vx.index, mac1, None)
        .await
        .expect("del whole entry");
    let fdb = nl.fdb(vx.index).await.expect("fdb");
    assert_eq!(remotes_of(&fdb, zero), vec![ip("192.168.77.3")]);
    assert!(remotes_of(&fdb, mac1).is_empty());
    let gone = nl.del_fdb(vx.index, mac1, None).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

#[test]
fn new_uses_the_calling_threads_namespace() {
    if !require_root("new_uses_the_calling_threads_namespace") {
        return;
    }
    let ns = Namespaces::create(1);
    // Netlink::new on a thread inside the test namespace sees that namespace, not the host.
    let names = weft_netlink::run_in_netns(ns.path(0), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let nl = Netlink::new().expect("handle");
            nl.links()
                .await
                .map(|l| l.into_iter().map(|l| l.name).collect::<Vec<_>>())
        })
    })
    .expect("entered")
    .expect("links");
    assert_eq!(names, vec!["lo".to_string()]);
}

#[tokio::test]
async fn in_named_netns_finds_the_namespace_by_name() {
    if !require_root("in_named_netns_finds_the_namespace_by_name") {
        return;
    }
    let ns = Namespaces::create(1);
    let nl = Netlink::in_named_netns(ns.name(0)).await.expect("handle");
    nl.create_bridge("br-x", 1500).await.expect("bridge");
    assert!(ip_in(ns.name(0), &["link", "show", "br-x"]).contains("br-x"));
    let missing = Netlink::in_named_netns("wnl-no-such-namespace")
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

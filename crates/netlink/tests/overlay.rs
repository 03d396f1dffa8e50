//! End to end (root): two "node" namespaces joined by a veth underlay, each with a bridge
//! and a VXLAN device, peers programmed through `VxlanOverlay`, and traffic between the
//! bridges' addresses crossing the tunnel. All traffic stays in the test's namespaces.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{have, ip_in, require_root, run, Namespaces};
use weft_netlink::{
    diff_peers, run_in_netns, IpNet, Mac, Netlink, OverlayKernel, PeerEntry, RouteSpec,
    VxlanOverlay, VxlanSpec,
};

struct Node {
    ns: String,
    nl: Netlink,
    overlay: VxlanOverlay,
    /// Bridge address, the first of the node's pod CIDR.
    bridge_ip: Ipv4Addr,
    as_peer: PeerEntry,
}

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

/// Bridge `weft0` with `10.244.N.1/24`, VXLAN `vxlan0` (VNI 1, port 8472, learning off)
/// holding `10.244.N.0/32`, both up, on an underlay device `ul0` that already has
/// `192.168.200.N/24`.
async fn build_node(ns: &str, nl: Netlink, n: u8) -> Node {
    let ul0 = nl.link("ul0").await.expect("lookup").expect("underlay");
    let lo = nl.link("lo").await.expect("lookup").expect("lo");
    nl.set_up(lo.index).await.expect("lo up");

    nl.create_bridge("weft0", 1450).await.expect("bridge");
    let br = nl.link("weft0").await.expect("lookup").expect("bridge");
    nl.add_address(br.index, net(&format!("10.244.{n}.1/24")))
        .await
        .expect("bridge addr");
    nl.set_up(br.index).await.expect("bridge up");

    let local = Ipv4Addr::new(192, 168, 200, n);
    nl.create_vxlan(&VxlanSpec {
        name: "vxlan0".into(),
        vni: 1,
        local,
        underlay_dev_index: Some(ul0.index),
        port: 8472,
        learning: false,
        mtu: Some(1450),
    })
    .await
    .expect("vxlan");
    let vx = nl.link("vxlan0").await.expect("lookup").expect("vxlan");
    nl.add_address(vx.index, net(&format!("10.244.{n}.0/32")))
        .await
        .expect("vxlan addr");
    nl.set_up(vx.index).await.expect("vxlan up");
    let vtep_mac: Mac = vx.mac.expect("vxlan has a MAC");

    Node {
        ns: ns.to_string(),
        overlay: VxlanOverlay::new(nl.clone(), vx.index),
        nl,
        bridge_ip: Ipv4Addr::new(10, 244, n, 1),
        as_peer: PeerEntry::new(
            format!("10.244.{n}.0/24").parse().expect("cidr"),
            vtep_mac,
            local,
        ),
    }
}

/// What the agent's reconcile loop does: read, diff, remove, then add.
async fn reconcile(node: &Node, desired: &[PeerEntry]) {
    let actual = node.overlay.peers().await.expect("peers");
    let (to_add, to_remove) = diff_peers(desired, &actual);
    for p in &to_remove {
        node.overlay.remove_peer(p).await.expect("remove_peer");
    }
    for p in &to_add {
        node.overlay.add_peer(p).await.expect("add_peer");
    }
}

/// `ip netns exec NODE ping` from one bridge address to another.
fn ping(from: &Node, to: Ipv4Addr) -> bool {
    let (src, dst) = (from.bridge_ip.to_string(), to.to_string());
    run(
        "ip",
        &[
            "netns", "exec", &from.ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", &src, &dst,
        ],
    )
    .status
    .success()
}

/// A TCP exchange from `from`'s namespace to a listener on `to`'s bridge address: the same
/// path as ping, without needing the ping binary.
fn tcp_echo(from: &Node, to: &Node) -> bool {
    let listener = run_in_netns(common_path(&to.ns), || TcpListener::bind((to.bridge_ip, 0)))
        .expect("enter")
        .expect("listen");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().ok()?;
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).ok()?;
        conn.write_all(&buf).ok()
    });
    let ok = run_in_netns(common_path(&from.ns), || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.write_all(b"hello")?;
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf)?;
        Ok::<_, std::io::Error>(&buf == b"hello")
    })
    .expect("enter")
    .unwrap_or_else(|e| {
        println!("tcp from {} to {addr} failed: {e}", from.ns);
        false
    });
    if !ok {
        // Unblock the accept so the server thread ends.
        let _ = run_in_netns(common_path(&to.ns), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        });
    }
    let _ = server.join();
    ok
}

fn common_path(ns: &str) -> std::path::PathBuf {
    weft_netlink::netns::path(ns)
}

#[tokio::test]
async fn pods_cidrs_reach_each_other_across_vxlan() {
    if !require_root("pods_cidrs_reach_each_other_across_vxlan") {
        return;
    }
    let ping_available = have("ping");
    if !ping_available {
        assert!(
            std::env::var_os("CI").is_none(),
            "ping (iputils-ping) is needed for this test under CI"
        );
        println!("NOTE: ping not installed; reachability checked over TCP only");
    }

    let ns = Namespaces::create(2);
    let nl1 = Netlink::in_netns(ns.path(0)).await.expect("node1 handle");
    let nl2 = Netlink::in_netns(ns.path(1)).await.expect("node2 handle");

    // Underlay: a veth pair made in node1, one end moved to node2, both named ul0.
    nl1.create_veth("ul0", "ulpeer")
        .await
        .expect("underlay veth");
    let peer_end = nl1.link("ulpeer").await.expect("lookup").expect("peer end");
    nl1.set_netns_by_path(peer_end.index, ns.path(1))
        .await
        .expect("move");
    let moved = nl2.link("ulpeer").await.expect("lookup").expect("moved");
    nl2.rename(moved.index, "ul0").await.expect("rename");
    for (nl, n) in [(&nl1, 1u8), (&nl2, 2)] {
        let ul0 = nl.link("ul0").await.expect("lookup").expect("ul0");
        nl.add_address(ul0.index, net(&format!("192.168.200.{n}/24")))
            .await
            .expect("underlay addr");
        nl.set_up(ul0.index).await.expect("up");
    }

    let node1 = build_node(ns.name(0), nl1, 1).await;
    let node2 = build_node(ns.name(1), nl2, 2).await;

    // Nothing programmed yet: no way across.
    assert!(node1.overlay.peers().await.expect("peers").is_empty());
    assert!(!tcp_echo(&node1, &node2));

    reconcile(&node1, &[node2.as_peer]).await;
    reconcile(&node2, &[node1.as_peer]).await;
    assert_eq!(
        node1.overlay.peers().await.expect("peers"),
        vec![node2.as_peer]
    );
    assert_eq!(
        node2.overlay.peers().await.expect("peers"),
        vec![node1.as_peer]
    );
    let routes = ip_in(&node1.ns, &["route", "show", "10.244.2.0/24"]);
    assert_eq!(
        routes.trim(),
        "10.244.2.0/24 via 10.244.2.0 dev vxlan0 onlink"
    );
    // A second pass finds nothing to do, and adding again is harmless.
    let actual = node1.overlay.peers().await.expect("peers");
    assert_eq!(diff_peers(&[node2.as_peer], &actual), (vec![], vec![]));
    node1
        .overlay
        .add_peer(&node2.as_peer)
        .await
        .expect("idempotent add");

    if ping_available {
        assert!(
            ping(&node1, node2.bridge_ip),
            "ping 10.244.1.1 -> 10.244.2.1 over VXLAN"
        );
        assert!(
            ping(&node2, node1.bridge_ip),
            "ping 10.244.2.1 -> 10.244.1.1 over VXLAN"
        );
    }
    assert!(
        tcp_echo(&node1, &node2),
        "TCP 10.244.1.x -> 10.244.2.1 over VXLAN"
    );

    // The peer goes away: route, neighbour and FDB entry go, and so does reachability.
    node1
        .overlay
        .remove_peer(&node2.as_peer)
        .await
        .expect("remove");
    assert!(node1.overlay.peers().await.expect("peers").is_empty());
    let vx1 = node1.overlay.vxlan_index;
    let left = node1.nl.neighbours(vx1).await.expect("neigh");
    let gateway = std::net::IpAddr::V4(node2.as_peer.gateway);
    assert!(!left.iter().any(|n| n.ip == gateway), "{left:?}");
    assert!(!node1
        .nl
        .fdb(vx1)
        .await
        .expect("fdb")
        .iter()
        .any(|e| e.mac == node2.as_peer.vtep_mac));
    node1
        .overlay
        .remove_peer(&node2.as_peer)
        .await
        .expect("removing twice is fine");
    if ping_available {
        assert!(
            !ping(&node1, node2.bridge_ip),
            "ping must fail once the peer is removed"
        );
    }
    assert!(!tcp_echo(&node1, &node2));

    // A half-programmed peer (route only, as after a crash) is seen as such and redone.
    node1
        .nl
        .replace_route(&RouteSpec {
            dst: IpNet::V4(node2.as_peer.pod_cidr),
            gateway: Some(node2.as_peer.gateway.into()),
            oif: Some(vx1),
            onlink: true,
        })
        .await
        .expect("bare route");
    let half = node1.overlay.peers().await.expect("peers");
    assert_eq!(half.len(), 1);
    assert_eq!(
        (half[0].vtep_mac, half[0].underlay_ip),
        ([0; 6], Ipv4Addr::UNSPECIFIED)
    );
    reconcile(&node1, &[node2.as_peer]).await;
    assert_eq!(
        node1.overlay.peers().await.expect("peers"),
        vec![node2.as_peer]
    );
    if ping_available {
        assert!(
            ping(&node1, node2.bridge_ip),
            "ping works again after the repair"
        );
    }
    assert!(tcp_echo(&node1, &node2));
}

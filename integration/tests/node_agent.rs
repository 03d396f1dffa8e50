//! The node agent in network namespaces: each test starts its own lab (API server, node
//! namespaces on a private bridge, `weft node` per node), and the lab is torn down when
//! the test ends, also when it fails. Needs root; without it each test prints `SKIPPED`.
//! Build the binaries first: `cargo build --workspace --bins` (scripts/test does).
//!
//! Every address traffic is sent to belongs to a namespace the test made.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use weft_integration::{
    can_run, echo_pod, echo_roundtrip, pod_manifest, sleep_pod, EchoReply, Lab, ECHO_PORT,
};

const NS: &str = "default";

fn echo_url(ip: Ipv4Addr) -> String {
    format!("http://{ip}:{ECHO_PORT}/")
}

fn echo_from_pod(lab: &Lab, from: &str, to: Ipv4Addr) -> EchoReply {
    let body = lab.http_get_from_pod(NS, from, &echo_url(to));
    EchoReply::parse(&body).unwrap_or_else(|| panic!("not an echo-server answer: {body:?}"))
}

/// Pod A curls pod B and B curls A: each answer names the server's pod IP and the
/// client's own pod IP (no NAT between pods); and they ping each other.
fn assert_pods_talk(lab: &Lab, a: &str, a_ip: Ipv4Addr, b: &str, b_ip: Ipv4Addr) {
    for (from, from_ip, to, to_ip) in [(a, a_ip, b, b_ip), (b, b_ip, a, a_ip)] {
        let reply = echo_from_pod(lab, from, to_ip);
        assert_eq!(reply.hostname, to, "{from} -> {to}: {reply:?}");
        assert_eq!(reply.pod_ip, to_ip, "{from} -> {to}: {reply:?}");
        assert_eq!(
            reply.client_ip, from_ip,
            "{from} -> {to}: pod-to-pod traffic must not be NATed: {reply:?}"
        );
        assert!(
            lab.ping_from_pod(NS, from, to_ip),
            "ping {from} -> {to} ({to_ip})"
        );
    }
}

#[test]
fn pods_on_one_node_reach_each_other() {
    if !can_run("pods_on_one_node_reach_each_other") {
        return;
    }
    let lab = Lab::start(1);
    lab.apply(&echo_pod(NS, "a", Some("node1")));
    lab.apply(&echo_pod(NS, "b", Some("node1")));
    let (a_ip, a_node) = lab.wait_pod_running(NS, "a");
    let (b_ip, b_node) = lab.wait_pod_running(NS, "b");
    assert_eq!((a_node.as_str(), b_node.as_str()), ("node1", "node1"));
    assert_ne!(a_ip, b_ip);
    assert_pods_talk(&lab, "a", a_ip, "b", b_ip);
}

#[test]
fn pods_on_different_nodes_reach_each_other() {
    if !can_run("pods_on_different_nodes_reach_each_other") {
        return;
    }
    let lab = Lab::start(2);
    lab.apply(&echo_pod(NS, "a", Some("node1")));
    lab.apply(&echo_pod(NS, "b", Some("node2")));
    let (a_ip, _) = lab.wait_pod_running(NS, "a");
    let (b_ip, _) = lab.wait_pod_running(NS, "b");
    assert_pods_talk(&lab, "a", a_ip, "b", b_ip);
}

#[test]
fn nodes_reach_pods_on_every_node() {
    if !can_run("nodes_reach_pods_on_every_node") {
        return;
    }
    let lab = Lab::start(2);
    lab.apply(&echo_pod(NS, "a", Some("node1")));
    lab.apply(&echo_pod(NS, "b", Some("node2")));
    let pods = [
        ("a", lab.wait_pod_running(NS, "a").0),
        ("b", lab.wait_pod_running(NS, "b").0),
    ];
    for node in 1..=2 {
        for (name, ip) in pods {
            let body = lab.http_get_from_node(node, &echo_url(ip));
            let reply = EchoReply::parse(&body).unwrap_or_else(|| panic!("{body:?}"));
            assert_eq!(
                (reply.hostname.as_str(), reply.pod_ip),
                (name, ip),
                "node{node} -> {name}"
            );
            assert!(
                lab.ping_from_node(node, ip),
                "ping node{node} -> {name} ({ip})"
            );
        }
    }
}

#[test]
fn pod_traffic_leaving_the_cluster_is_masqueraded() {
    if !can_run("pod_traffic_leaving_the_cluster_is_masqueraded") {
        return;
    }
    let mut lab = Lab::start(1);
    let outside = lab.add_outside();
    lab.apply(&echo_pod(NS, "a", Some("node1")));
    let (a_ip, _) = lab.wait_pod_running(NS, "a");
    let reply = echo_from_pod(&lab, "a", outside);
    assert_eq!(reply.hostname, "outside");
    assert_eq!(
        reply.client_ip,
        lab.node(1).ip,
        "a pod ({a_ip}) reaching outside the cluster CIDR must appear as its node: {reply:?}"
    );
    assert!(lab.ping_from_pod(NS, "a", outside), "ping a -> outside");
}

#[test]
fn deleting_a_pod_frees_its_address_and_namespace() {
    if !can_run("deleting_a_pod_frees_its_address_and_namespace") {
        return;
    }
    let lab = Lab::start(1);
    lab.apply(&sleep_pod(NS, "doomed", Some("node1")));
    lab.apply(&sleep_pod(NS, "stays", Some("node1")));
    let (ip, _) = lab.wait_pod_running(NS, "doomed");
    let (stays_ip, _) = lab.wait_pod_running(NS, "stays");
    let netns = lab.pod_netns(NS, "doomed");
    let netns_path = Path::new("/run/netns").join(&netns);
    assert!(
        netns_path.exists(),
        "{netns} should exist while the pod runs"
    );
    lab.wait_until(
        Duration::from_secs(10),
        "the IPAM to list the pod's address",
        || lab.ipam_allocations(1).contains_key(&ip).then_some(()),
    );
    let entered = lab.exec_in_pod(NS, "doomed", &["true"]); // the namespace is enterable
    assert!(entered.status.success());

    lab.delete_pod(NS, "doomed");
    lab.wait_until(
        Duration::from_secs(30),
        &format!("{netns} to be deleted"),
        || (!netns_path.exists()).then_some(()),
    );
    lab.wait_until(
        Duration::from_secs(30),
        &format!("{ip} to be released"),
        || (!lab.ipam_allocations(1).contains_key(&ip)).then_some(()),
    );
    // The other pod is untouched.
    let allocations = lab.ipam_allocations(1);
    assert!(allocations.contains_key(&stays_ip), "{allocations:?}");
    assert!(lab.ping_from_node(1, stays_ip));
}

#[test]
fn removing_a_node_removes_its_overlay_entries_elsewhere() {
    if !can_run("removing_a_node_removes_its_overlay_entries_elsewhere") {
        return;
    }
    let mut lab = Lab::start(3);
    let peer2 = lab.peer(2);
    let peer3 = lab.peer(3);
    for node in [1, 2] {
        lab.wait_until(
            Duration::from_secs(30),
            &format!("node{node} to hold route, ARP and FDB entries for node3 ({peer3:?})"),
            || lab.peer_entries(node, &peer3).all().then_some(()),
        );
    }
    lab.wait_until(
        Duration::from_secs(30),
        "node1 to hold node2's entries",
        || lab.peer_entries(1, &peer2).all().then_some(()),
    );

    lab.remove_node(3);
    for node in [1, 2] {
        let what = format!("node{node} to drop node3's route, ARP and FDB entries");
        lab.wait_until(Duration::from_secs(30), &what, || {
            lab.peer_entries(node, &peer3).none().then_some(())
        });
    }
    assert!(
        lab.peer_entries(1, &peer2).all(),
        "node1 must keep node2's entries: {:?}",
        lab.peer_entries(1, &peer2)
    );
}

#[test]
fn agent_restart_keeps_live_connections() {
    if !can_run("agent_restart_keeps_live_connections") {
        return;
    }
    let mut lab = Lab::start(2);
    lab.apply(&pod_manifest(
        NS,
        "tcpecho",
        Some("node1"),
        &["socat", "TCP-LISTEN:9000,fork,reuseaddr", "EXEC:cat"],
    ));
    let (ip, _) = lab.wait_pod_running(NS, "tcpecho");
    let container_id = |lab: &Lab| {
        let pod = lab.pod(NS, "tcpecho").expect("pod tcpecho");
        pod["status"]["containerStatuses"][0]["containerID"].clone()
    };
    let before_id = container_id(&lab);
    let to = SocketAddr::from((ip, 9000));
    // From the pod's own node (over the bridge) and from the other node (over VXLAN).
    let mut connections = Vec::new();
    for node in [1, 2] {
        let mut stream = lab.wait_until(
            Duration::from_secs(15),
            &format!("a TCP echo connection from node{node} to {to}"),
            || {
                let mut s = lab.connect_from_node(node, to).ok()?;
                (echo_roundtrip(&mut s, "hello").ok()? == "hello").then_some(s)
            },
        );
        assert_eq!(echo_roundtrip(&mut stream, "before").unwrap(), "before");
        connections.push((node, stream));
    }

    for node in [1, 2] {
        lab.kill_agent(node);
    }
    for node in [1, 2] {
        lab.start_agent(node);
    }
    // The restarted agents are fully back once they run new pods.
    lab.apply(&sleep_pod(NS, "after-1", Some("node1")));
    lab.apply(&sleep_pod(NS, "after-2", Some("node2")));
    lab.wait_pod_running(NS, "after-1");
    lab.wait_pod_running(NS, "after-2");
    std::thread::sleep(Duration::from_secs(2));

    for (node, stream) in &mut connections {
        let got = echo_roundtrip(stream, "after").unwrap_or_else(|e| {
            panic!("the connection from node{node} did not survive the agents' restart: {e}")
        });
        assert_eq!(got, "after");
    }
    assert_eq!(
        container_id(&lab),
        before_id,
        "the pod's process must be re-adopted, not restarted"
    );
    assert_eq!(
        lab.wait_pod_running(NS, "tcpecho").0,
        ip,
        "the pod keeps its address"
    );
}

#[test]
fn ipam_never_double_allocates_across_an_agent_restart() {
    if !can_run("ipam_never_double_allocates_across_an_agent_restart") {
        return;
    }
    const FIRST: usize = 16;
    const SECOND: usize = 16;
    let mut lab = Lab::start(1);
    let batch = |from: usize, to: usize| {
        (from..to)
            .map(|i| sleep_pod(NS, &format!("p{i}"), Some("node1")))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    lab.apply(&batch(0, FIRST));
    // Kill the agent while it is still setting pods up.
    lab.wait_until(
        Duration::from_secs(60),
        "a few pods to get addresses",
        || {
            let with_ip = lab
                .pods(NS)
                .iter()
                .filter(|p| p["status"]["podIP"].as_str().is_some_and(|s| !s.is_empty()))
                .count();
            (with_ip >= 3).then_some(())
        },
    );
    lab.kill_agent(1);
    lab.start_agent(1);
    lab.apply(&batch(FIRST, FIRST + SECOND));

    let mut ips: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for i in 0..FIRST + SECOND {
        let name = format!("p{i}");
        let (ip, _) = lab.wait_pod_running(NS, &name);
        if let Some(other) = ips.insert(ip, name.clone()) {
            panic!("{ip} was given to both {other} and {name}");
        }
    }
    // Every pod's address is recorded in the IPAM, and nothing else stays allocated.
    let live_uids: BTreeSet<String> = lab
        .pods(NS)
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    let allocations = lab.wait_until(Duration::from_secs(15), "the IPAM to settle", || {
        let a = lab.ipam_allocations(1);
        (a.len() == ips.len()).then_some(a)
    });
    for (ip, name) in &ips {
        assert!(
            allocations.contains_key(ip),
            "{name}'s {ip} is not in the IPAM: {allocations:?}"
        );
    }
    for (ip, owner) in &allocations {
        let known = live_uids.contains(owner)
            || ips
                .get(ip)
                .is_some_and(|name| owner == &format!("{NS}/{name}"));
        assert!(known, "{ip} is held by {owner:?}, which is no live pod");
    }
}

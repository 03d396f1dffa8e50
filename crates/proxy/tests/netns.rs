//! Namespace tests of the nftables backend (root). Each test builds its own throwaway
//! world and removes it on drop, panics included:
//!
//! ```text
//! client netns  eth0 192.168.77.2 ──veth── uplink 192.168.77.1  node netns (table ip weft-proxy)
//!                                          br0 10.244.1.1/24 ──veth── pod-a eth0 10.244.1.2
//!                                                            ──veth── pod-b eth0 10.244.1.3
//! ```
//!
//! Each pod runs a tiny TCP server (a thread whose socket lives in the pod's namespace)
//! that answers every connection, and every line it is sent, with its own name.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use weft_api::core::{
    ClientIpConfig, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort,
    SessionAffinityConfig,
};
use weft_netlink::{netns, run_in_netns};
use weft_proxy::{NftConfig, NftProxy, NodeContext, ProxyBackend, ServiceTable};

const NODE_IP: &str = "192.168.77.1";
const VIP: &str = "10.96.0.20";
const NODE_PORT: i32 = 30080;
const PODS: [(&str, &str); 2] = [("pod-a", "10.244.1.2"), ("pod-b", "10.244.1.3")];

fn require_root(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (CI is set, so this fails instead of skipping)");
    }
    println!("SKIPPED: {test} needs root");
    false
}

fn unique_name(role: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "wpx-{}-{}-{role}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn ip(ns: &str, args: &str) {
    let mut all = vec!["-n", ns];
    all.extend(args.split_whitespace());
    let out = Command::new("ip").args(&all).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server in a pod namespace; stopped and joined on drop.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: PathBuf, name: &'static str, ip: &str) -> Server {
        let addr: SocketAddr = format!("{ip}:8080").parse().expect("address");
        let listener = run_in_netns(&ns, move || TcpListener::bind(addr))
            .expect("entering pod netns")
            .expect("binding");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let flag = flag.clone();
                        std::thread::spawn(move || serve(conn, name, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

/// Answers the connection, then each line, with `name`.
fn serve(conn: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    if writeln!(writer, "{name}").is_err() {
        return;
    }
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if writeln!(writer, "{name}").is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The namespaces and servers of one test.
struct Lab {
    node: String,
    client: String,
    pods: Vec<String>,
    servers: Vec<Server>,
}

impl Lab {
    fn new() -> Lab {
        let mut lab = Lab {
            node: unique_name("node"),
            client: unique_name("client"),
            pods: Vec::new(),
            servers: Vec::new(),
        };
        // Registered before creation, so a failure half-way still deletes what exists.
        for name in [lab.node.clone(), lab.client.clone()] {
            netns::create(&name).unwrap_or_else(|e| panic!("creating {name}: {e}"));
        }
        for (role, _) in PODS {
            let name = unique_name(role);
            lab.pods.push(name.clone());
            netns::create(&name).unwrap_or_else(|e| panic!("creating {name}: {e}"));
        }
        let (node, client) = (lab.node.clone(), lab.client.clone());
        ip(&node, "link set lo up");
        let fwd = Command::new("ip")
            .args([
                "netns",
                "exec",
                &node,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])
            .status()
            .expect("sysctl");
        assert!(fwd.success());
        ip(&node, "link add br0 type bridge");
        ip(&node, "addr add 10.244.1.1/24 dev br0");
        ip(&node, "link set br0 up");
        for (i, (pod_ns, (_, pod_ip))) in lab.pods.clone().iter().zip(PODS).enumerate() {
            ip(
                &node,
                &format!("link add v{i} type veth peer name eth0 netns {pod_ns}"),
            );
            ip(&node, &format!("link set v{i} master br0 up"));
            // As the node agent makes pod ports (Netlink::set_hairpin).
            ip(
                &node,
                &format!("link set v{i} type bridge_slave hairpin on"),
            );
            ip(pod_ns, "link set lo up");
            ip(pod_ns, &format!("addr add {pod_ip}/24 dev eth0"));
            ip(pod_ns, "link set eth0 up");
            ip(pod_ns, "route add default via 10.244.1.1");
        }
        ip(
            &node,
            &format!("link add uplink type veth peer name eth0 netns {client}"),
        );
        ip(&node, &format!("addr add {NODE_IP}/24 dev uplink"));
        ip(&node, "link set uplink up");
        ip(&client, "link set lo up");
        ip(&client, "addr add 192.168.77.2/24 dev eth0");
        ip(&client, "link set eth0 up");
        ip(&client, &format!("route add default via {NODE_IP}"));
        for (pod_ns, (name, pod_ip)) in lab.pods.clone().iter().zip(PODS) {
            lab.servers
                .push(Server::start(netns::path(pod_ns), name, pod_ip));
        }
        lab
    }

    fn proxy(&self) -> NftProxy {
        NftProxy::new(NftConfig {
            cluster_cidr: Some("10.244.0.0/16".parse().expect("cidr")),
            netns: Some(self.node.clone()),
        })
    }

    /// Connects from the client namespace and returns the stream and the first line.
    fn connect(&self, addr: &str) -> std::io::Result<(TcpStream, String)> {
        self.connect_from(&self.client, addr)
    }

    /// Connects from the named namespace and returns the stream and the first line.
    fn connect_from(&self, ns: &str, addr: &str) -> std::io::Result<(TcpStream, String)> {
        let addr: SocketAddr = addr.parse().expect("address");
        run_in_netns(netns::path(ns), move || {
            let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            conn.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut line = String::new();
            BufReader::new(conn.try_clone()?).read_line(&mut line)?;
            Ok((conn, line.trim().to_string()))
        })
        .expect("entering client netns")
    }

    /// Which servers answer `tries` fresh connections to `addr`.
    fn answers(&self, addr: &str, tries: usize) -> Vec<String> {
        self.answers_from(&self.client, addr, tries)
    }

    /// Which servers answer `tries` fresh connections from namespace `ns` to `addr`.
    fn answers_from(&self, ns: &str, addr: &str, tries: usize) -> Vec<String> {
        let mut seen: Vec<String> = (0..tries)
            .map(|_| match self.connect_from(ns, addr) {
                Ok((_, name)) => name,
                Err(e) => format!("error: {e}"),
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.servers.clear();
        for name in std::iter::once(&self.node)
            .chain(&self.pods)
            .chain(std::iter::once(&self.client))
        {
            if let Err(e) = netns::delete(name) {
                eprintln!("cleanup of {name} failed: {e}");
            }
        }
    }
}

fn service(node_port: bool) -> Service {
    service_named("web", VIP, node_port)
}

fn service_named(name: &str, vip: &str, node_port: bool) -> Service {
    let mut s = Service::default();
    s.metadata.name = name.into();
    s.metadata.namespace = Some("default".into());
    s.spec.cluster_ip = vip.into();
    if node_port {
        s.spec.type_ = "NodePort".into();
    }
    s.spec.ports = vec![ServicePort {
        name: "http".into(),
        protocol: "TCP".into(),
        port: 80,
        node_port: node_port.then_some(NODE_PORT),
        ..Default::default()
    }];
    s
}

fn endpoints(ips: &[&str]) -> Endpoints {
    endpoints_named("web", ips)
}

fn endpoints_named(name: &str, ips: &[&str]) -> Endpoints {
    let mut e = Endpoints::default();
    e.metadata.name = name.into();
    e.metadata.namespace = Some("default".into());
    e.subsets.push(EndpointSubset {
        addresses: ips
            .iter()
            .map(|ip| EndpointAddress {
                ip: (*ip).into(),
                node_name: Some("node-1".into()),
                ..Default::default()
            })
            .collect(),
        ports: vec![EndpointPort {
            name: "http".into(),
            port: 8080,
            protocol: "TCP".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    e
}

fn table(node_port: bool, ips: &[&str]) -> ServiceTable {
    build(&[service(node_port)], &[endpoints(ips)])
}

fn build(services: &[Service], endpoints: &[Endpoints]) -> ServiceTable {
    let node = NodeContext {
        node_name: "node-1".into(),
        addresses: vec![NODE_IP.parse().expect("ip")],
        nodeport_addresses: Vec::new(),
    };
    let t = ServiceTable::build(services, endpoints, &node);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    t
}

const BOTH: [&str; 2] = [PODS[0].1, PODS[1].1];

#[tokio::test]
async fn cluster_ip_reaches_both_endpoints_then_only_the_remaining_one() {
    if !require_root("cluster_ip_reaches_both_endpoints_then_only_the_remaining_one") {
        return;
    }
    let lab = Lab::new();
    let mut proxy = lab.proxy();
    let stats = proxy.sync(&table(false, &BOTH)).await.expect("first sync");
    assert!(stats.full && stats.chains_added > 0, "{stats:?}");
    let vip = format!("{VIP}:80");
    assert_eq!(lab.answers(&vip, 6), vec!["pod-a", "pod-b"]);

    let stats = proxy
        .sync(&table(false, &BOTH[..1]))
        .await
        .expect("second sync");
    assert!(!stats.full, "{stats:?}");
    // Map elements only: the shared chain for one endpoint is new, nothing is rewritten.
    assert_eq!(
        (
            stats.chains_rewritten,
            stats.chains_deleted,
            stats.chains_added
        ),
        (0, 0, 1),
        "{stats:?}"
    );
    assert!(stats.elements_deleted > 0, "{stats:?}");
    assert_eq!(lab.answers(&vip, 6), vec!["pod-a"]);
    let listing = proxy.listing().await.expect("listing");
    assert!(!listing.contains(PODS[1].1), "{listing}");

    proxy.cleanup().await.expect("cleanup");
    assert!(proxy.listing().await.is_err(), "table deleted");
    proxy.cleanup().await.expect("cleanup of nothing is fine");
}

#[tokio::test]
async fn node_port_answers_on_the_node_address() {
    if !require_root("node_port_answers_on_the_node_address") {
        return;
    }
    let lab = Lab::new();
    let mut proxy = lab.proxy();
    proxy.sync(&table(true, &BOTH)).await.expect("sync");
    assert_eq!(
        lab.answers(&format!("{NODE_IP}:{NODE_PORT}"), 6),
        vec!["pod-a", "pod-b"]
    );
    // The ClusterIP still works beside it.
    assert_eq!(lab.answers(&format!("{VIP}:80"), 2).len(), 2);
}

#[tokio::test]
async fn a_pod_reaches_itself_through_its_service() {
    if !require_root("a_pod_reaches_itself_through_its_service") {
        return;
    }
    let lab = Lab::new();
    let mut proxy = lab.proxy();
    let vip = format!("{VIP}:80");
    // Added by an incremental sync, as most endpoints are.
    proxy.sync(&table(false, &BOTH[1..])).await.expect("sync");
    proxy.sync(&table(false, &BOTH)).await.expect("sync");
    // Without hairpin masquerade pod-a's connections to itself would get no answer: the
    // reply would go straight back from its own address, not from the VIP.
    assert_eq!(
        lab.answers_from(&lab.pods[0], &vip, 6),
        vec!["pod-a", "pod-b"]
    );
    let listing = proxy.listing().await.expect("listing");
    assert!(listing.contains("10.244.1.2 . 10.244.1.2"), "{listing}");
    // The last Service using pod-a drops it from the hairpin set.
    proxy.sync(&table(false, &BOTH[1..])).await.expect("sync");
    let listing = proxy.listing().await.expect("listing");
    assert!(!listing.contains("10.244.1.2 . 10.244.1.2"), "{listing}");
    assert!(listing.contains("10.244.1.3 . 10.244.1.3"), "{listing}");
}

#[tokio::test]
async fn restart_changes_nothing_and_keeps_open_connections() {
    if !require_root("restart_changes_nothing_and_keeps_open_connections") {
        return;
    }
    let lab = Lab::new();
    let desired = table(true, &BOTH);
    let mut first = lab.proxy();
    first.sync(&desired).await.expect("sync");
    let before = first.listing().await.expect("listing");
    let (mut conn, name) = lab.connect(&format!("{VIP}:80")).expect("connect");

    // A new proxy process: reads the table, finds it right, writes nothing.
    drop(first);
    let mut second = lab.proxy();
    let stats = second.sync(&desired).await.expect("resync");
    assert!(stats.full, "{stats:?}");
    assert_eq!(stats.script_bytes, 0, "{stats:?}");
    assert_eq!(second.listing().await.expect("listing"), before);

    // The connection opened before the restart still talks to the same endpoint.
    writeln!(conn, "again").expect("write");
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), name);

    // And the restarted proxy applies later changes incrementally.
    let stats = second.sync(&table(true, &BOTH[1..])).await.expect("change");
    assert!(!stats.full && stats.elements_deleted > 0, "{stats:?}");
    assert_eq!(lab.answers(&format!("{VIP}:80"), 4), vec!["pod-b"]);
}

#[tokio::test]
async fn restart_repairs_a_tampered_chain() {
    if !require_root("restart_repairs_a_tampered_chain") {
        return;
    }
    let lab = Lab::new();
    let desired = table(false, &BOTH);
    lab.proxy().sync(&desired).await.expect("sync");
    // Someone flushes the chain picking among two endpoints and deletes one backend
    // element by hand: traffic to the VIP stops.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.node,
            "nft",
            "flush",
            "chain",
            "ip",
            "weft-proxy",
            "pick-cluster-tcp-inc-2",
        ])
        .status()
        .expect("nft");
    assert!(out.success());
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.node, "nft", "delete", "element", "ip"])
        .args(["weft-proxy", "cluster-backends-tcp"])
        .arg(format!("{{ {VIP} . 80 . 1 }}"))
        .status()
        .expect("nft");
    assert!(out.success());
    let stats = lab.proxy().sync(&desired).await.expect("resync");
    assert_eq!(stats.chains_rewritten, 1, "{stats:?}");
    assert_eq!(stats.chains_added + stats.chains_deleted, 0, "{stats:?}");
    assert_eq!(
        (stats.elements_added, stats.elements_deleted),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(lab.answers(&format!("{VIP}:80"), 4), vec!["pod-a", "pod-b"]);
}

#[tokio::test]
async fn client_ip_affinity_sticks_to_one_endpoint() {
    if !require_root("client_ip_affinity_sticks_to_one_endpoint") {
        return;
    }
    let lab = Lab::new();
    let mut svc = service(false);
    svc.spec.session_affinity = "ClientIP".into();
    let node = NodeContext {
        node_name: "node-1".into(),
        ..Default::default()
    };
    let desired = ServiceTable::build(&[svc], &[endpoints(&BOTH)], &node);
    let mut proxy = lab.proxy();
    proxy.sync(&desired).await.expect("sync");
    let seen = lab.answers(&format!("{VIP}:80"), 6);
    assert_eq!(seen.len(), 1, "{seen:?}");
    // A new timeout is applied in place (the sets stay, their rules change).
    let mut svc = service(false);
    svc.spec.session_affinity = "ClientIP".into();
    svc.spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIpConfig {
            timeout_seconds: Some(30),
        }),
    });
    let desired = ServiceTable::build(&[svc], &[endpoints(&BOTH)], &node);
    let stats = proxy.sync(&desired).await.expect("new timeout");
    assert!(!stats.full && stats.chains_rewritten == 2, "{stats:?}");
    assert_eq!(lab.answers(&format!("{VIP}:80"), 4), seen);
    // Without affinity the same client is spread again: the sets go with it.
    proxy.sync(&table(false, &BOTH)).await.expect("sync");
    assert_eq!(lab.answers(&format!("{VIP}:80"), 6), vec!["pod-a", "pod-b"]);
    let listing = proxy.listing().await.expect("listing");
    assert!(!listing.contains("affinity-"), "{listing}");
}

#[tokio::test]
async fn a_large_first_sync_goes_in_stages_and_a_restart_finds_it_whole() {
    if !require_root("a_large_first_sync_goes_in_stages_and_a_restart_finds_it_whole") {
        return;
    }
    let lab = Lab::new();
    // `web` and 2,100 Services of 10 endpoints nobody answers: 21,000 backend elements and
    // as many hairpin pairs, more than one stage (STAGE_ELEMENTS) of additions.
    let (mut services, mut all_endpoints) = (vec![service(false)], vec![endpoints(&BOTH)]);
    for i in 1..=2_100usize {
        let name = format!("s{i}");
        services.push(service_named(
            &name,
            &format!("10.97.{}.{}", i / 256, i % 256),
            false,
        ));
        let ips: Vec<String> = (0..10)
            .map(|j| {
                let k = i * 10 + j;
                format!("10.{}.{}.{}", 128 + k / 65536, k / 256 % 256, k % 256)
            })
            .collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        all_endpoints.push(endpoints_named(&name, &ips));
    }
    let desired = build(&services, &all_endpoints);
    let mut first = lab.proxy();
    let stats = first.sync(&desired).await.expect("first sync");
    assert!(stats.full && stats.elements_added > 42_000, "{stats:?}");
    assert_eq!(lab.answers(&format!("{VIP}:80"), 6), vec!["pod-a", "pod-b"]);

    // A restarted proxy reads every staged element back and finds nothing to do.
    drop(first);
    let stats = lab.proxy().sync(&desired).await.expect("resync");
    assert_eq!(stats.script_bytes, 0, "{stats:?}");
}

//! IPVS mode figures (root, a kernel with IPVS: the VM lab). Reports; asserts nothing.
//!
//! ```text
//! cargo build --release -p weft-proxy --example ipvs-bench
//! scripts/vm-lab run --mem 1536 -- target/release/examples/ipvs-bench [SERVICES] [ENDPOINTS]
//! ```
//!
//! Each measurement gets a fresh namespace: IPVS keeps deleted real servers in a per-
//! namespace trash list for two minutes and walks it on every add, so a table flushed
//! just before would make the next run look quadratic. For SERVICES (10,000) Services ×
//! ENDPOINTS (10) endpoints:
//! 1. `ipvsadm-restore` of the table (generated here) — the reference;
//! 2. the same table through our codec alone (`IpvsSocket::apply`);
//! 3. a full `IpvsProxy` sync into an empty kernel (IPVS + `kube-ipvs0` addresses +
//!    nftables sets), and the full sync of a restarted proxy (kernel already right);
//! 4. one Service changed, at 100, 1,000 and SERVICES Services: per-sync p50/p99/max;
//! 5. this process's RSS.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_netlink::ipvs::{
    Destination, IpvsOp, IpvsSocket, Protocol as IpvsProtocol, Service, ServiceKey,
};
use weft_netlink::netns;
use weft_proxy::table::{Changes, Endpoint, Protocol, ServicePortName, VirtualService};
use weft_proxy::{IpvsConfig, IpvsProxy, ProxyBackend, ServiceTable};

/// Namespaces are `wipvs-b-WHAT`.
fn ns_name(what: &str) -> String {
    format!("wipvs-b-{what}")
}

fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i)
}

fn endpoint(i: u32, j: u32, per: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i * per + j)
}

fn table(services: u32, per: u32) -> ServiceTable {
    let mut t = ServiceTable {
        node_addresses: vec![Ipv4Addr::new(192, 168, 200, 1)],
        ..Default::default()
    };
    for i in 0..services {
        let name = ServicePortName {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port: String::new(),
            protocol: Protocol::Tcp,
        };
        let eps = (0..per)
            .map(|j| Endpoint {
                ip: endpoint(i, j, per),
                port: 8080,
                local: false,
            })
            .collect();
        t.services.insert(
            name.clone(),
            VirtualService {
                name,
                cluster_ip: vip(i),
                port: 80,
                protocol: Protocol::Tcp,
                scheduler: "rr".into(),
                affinity_timeout: None,
                cluster_endpoints: eps,
                node_port: None,
                external_local: false,
                node_port_endpoints: Vec::new(),
            },
        );
    }
    t
}

/// A fresh namespace with a route to the real servers (IPVS wants a unicast route to
/// each) and the node address NodePorts would use.
fn fresh_ns(what: &str) -> (String, PathBuf) {
    let ns = ns_name(what);
    let _ = netns::delete(&ns);
    let path = netns::create(&ns).expect("netns");
    for args in [
        "link set lo up",
        "link add rt0 type dummy",
        "addr add 10.255.255.1/8 dev rt0",
        "addr add 192.168.200.1/24 dev rt0",
        "link set rt0 up",
    ] {
        let st = Command::new("ip")
            .args(["-n", &ns])
            .args(args.split_whitespace())
            .status()
            .expect("ip");
        assert!(st.success(), "ip -n {ns} {args}");
    }
    (ns, path)
}

fn ipvsadm(ns: &str, args: &[&str], stdin: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "ipvsadm"])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("ipvsadm");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("feeding ipvsadm");
    }
    let st = child.wait().expect("ipvsadm");
    assert!(st.success(), "ipvsadm {args:?}");
    start.elapsed()
}

fn restore_file(services: u32, per: u32) -> String {
    let mut s = String::new();
    for i in 0..services {
        let _ = writeln!(s, "-A -t {}:80 -s rr", vip(i));
        for j in 0..per {
            let _ = writeln!(
                s,
                "-a -t {}:80 -r {}:8080 -m -w 1",
                vip(i),
                endpoint(i, j, per)
            );
        }
    }
    s
}

fn codec_ops(services: u32, per: u32) -> Vec<IpvsOp> {
    let mut ops = Vec::new();
    for i in 0..services {
        let key = ServiceKey::addr(IpvsProtocol::Tcp, IpAddr::V4(vip(i)), 80);
        ops.push(IpvsOp::NewService(Service::new(key, "rr")));
        for j in 0..per {
            ops.push(IpvsOp::NewDest(
                key,
                Destination::masq(IpAddr::V4(endpoint(i, j, per)), 8080, 1),
            ));
        }
    }
    ops
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn proxy(ns: &str) -> IpvsProxy {
    IpvsProxy::new(IpvsConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().expect("cidr")),
        netns: Some(ns.into()),
        ..Default::default()
    })
    .expect("IPVS in the namespace")
}

async fn one_change(size: u32, per: u32) {
    let mut t = table(size, per);
    let (ns, _) = fresh_ns(&format!("change-{size}"));
    let mut p = proxy(&ns);
    p.sync(&t).await.expect("full sync");
    let names: Vec<ServicePortName> = t.services.keys().cloned().collect();
    let mut times = Vec::new();
    for round in 0..30u32 {
        let name = &names[(round as usize * 7919) % names.len()];
        let vs = t.services.get_mut(name).expect("service");
        // Swap one endpoint for a new one: one NewDest + one weight-0 SetDest.
        vs.cluster_endpoints[0].ip =
            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + round);
        // Told which Service changed, as `weft proxy` is by its TableBuilder.
        let changes = Changes {
            changed: vec![name.clone()],
            ..Default::default()
        };
        let start = Instant::now();
        let stats = p.sync_changed(&t, &changes).await.expect("sync");
        times.push(start.elapsed());
        assert!(!stats.full && stats.services_touched == 1, "{stats:?}");
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "one-Service change at {size:>6} Services: p50 {}  p99 {}  max {}",
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(pick(1.0))
    );
    drop(p);
    let _ = netns::delete(&ns);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let services: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let per: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    println!(
        "{services} Services x {per} endpoints ({} IPVS entries)",
        services * (per + 1)
    );

    let text = restore_file(services, per);
    let (ns, _) = fresh_ns("restore");
    let t_restore = ipvsadm(&ns, &["-R"], Some(&text));
    println!("ipvsadm-restore:                    {}", ms(t_restore));
    let _ = netns::delete(&ns);

    let (codec_ns, path) = fresh_ns("codec");
    let mut sock = IpvsSocket::open_in_netns(&path).expect("ipvs socket");
    let ops = codec_ops(services, per);
    let start = Instant::now();
    let fails = sock.apply(&ops).expect("apply");
    let t_codec = start.elapsed();
    assert!(
        fails.is_empty(),
        "{} refused, first: {}",
        fails.len(),
        fails[0].error
    );
    println!(
        "our codec, same table:              {}  ({:.2}x ipvsadm-restore)",
        ms(t_codec),
        t_codec.as_secs_f64() / t_restore.as_secs_f64()
    );
    let start = Instant::now();
    let dumped = sock.services().expect("dump").len();
    let t_dump = start.elapsed();
    println!("dump of {dumped} services:            {}", ms(t_dump));
    drop(sock);
    let _ = netns::delete(&codec_ns);

    let t = table(services, per);
    let (ns, _) = fresh_ns("proxy");
    let mut p = proxy(&ns);
    let start = Instant::now();
    let stats = p.sync(&t).await.expect("full sync");
    let t_full = start.elapsed();
    println!(
        "IpvsProxy full sync, empty kernel:  {}  ({} IPVS ops, {} set elements; incl. kube-ipvs0 addresses and nftables)",
        ms(t_full),
        stats.ipvs_ops,
        stats.elements_added
    );
    drop(p);
    let mut p = proxy(&ns);
    let start = Instant::now();
    let stats = p.sync(&t).await.expect("restart sync");
    println!(
        "IpvsProxy restart, kernel right:    {}  ({} IPVS ops)",
        ms(start.elapsed()),
        stats.ipvs_ops
    );
    println!(
        "RSS after a {services}-Service sync:  {} MiB",
        rss_kib() / 1024
    );
    let start = Instant::now();
    p.cleanup().await.expect("cleanup");
    println!(
        "IpvsProxy cleanup:                  {}",
        ms(start.elapsed())
    );
    drop(p);
    let _ = netns::delete(&ns);
    let (ns, path) = fresh_ns("probe");

    // What one incremental sync pays for its nftables half: starting `nft` for one
    // element (here through `ip netns exec`).
    let start = Instant::now();
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "nft",
            "add table ip wipvs-probe; delete table ip wipvs-probe",
        ])
        .status()
        .expect("nft");
    assert!(st.success());
    println!(
        "one nft process (ip netns exec):    {}",
        ms(start.elapsed())
    );
    let mut sock = IpvsSocket::open_in_netns(&path).expect("ipvs socket");
    let key = ServiceKey::addr(IpvsProtocol::Tcp, IpAddr::V4(vip(0)), 80);
    sock.apply(&[IpvsOp::NewService(Service::new(key, "rr"))])
        .expect("add");
    let start = Instant::now();
    let d = Destination::masq(IpAddr::V4(endpoint(0, 0, per)), 8080, 1);
    sock.apply(&[
        IpvsOp::NewDest(key, d.clone()),
        IpvsOp::SetDest(key, Destination { weight: 0, ..d }),
    ])
    .expect("apply");
    println!(
        "two IPVS ops through the codec:     {}",
        ms(start.elapsed())
    );
    drop(sock);
    let _ = netns::delete(&ns);

    for size in [100, 1_000, 10_000] {
        if size <= services {
            one_change(size, per).await;
        }
    }
}

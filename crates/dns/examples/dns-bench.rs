//! Cluster-name QPS and latency of the DNS server, from an in-process UDP client loop on
//! loopback. Reports figures only; asserts nothing.
//!
//!     cargo run --release -p weft-dns --example dns-bench -- [services] [clients] [seconds]
//!
//! Compare with CoreDNS's published 33.7k QPS at 2.6 ms on 2 vCPU (ANCHORS.md). Here the
//! clients share the machine's cores with the server, so the figure is a lower bound.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;
use weft_api::core::{Service, ServicePort};
use weft_dns::{DnsConfig, DnsServer, Zone};

fn services(n: usize) -> Vec<Service> {
    (0..n)
        .map(|i| {
            let mut s = Service::default();
            s.metadata.name = format!("svc-{i}");
            s.metadata.namespace = Some(format!("ns-{}", i % 50));
            s.spec.cluster_ip = Ipv4Addr::from(0x0a60_0000u32 + 16 + i as u32).to_string();
            s.spec.ports = vec![ServicePort {
                name: "http".into(),
                port: 80,
                ..Default::default()
            }];
            s
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_services = args.first().copied().unwrap_or(1000);
    let clients = args.get(1).copied().unwrap_or(32);
    let seconds = args.get(2).copied().unwrap_or(5) as u64;

    let svcs = services(n_services);
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
        ..Default::default()
    };
    // The best of a few builds: the machine is shared, and the minimum is the cost.
    let mut build = Duration::MAX;
    let mut zone = None;
    for _ in 0..5 {
        let t = Instant::now();
        zone = Some(Zone::build(&svcs, &[], &[], &[], &config.zone_settings()).unwrap());
        build = build.min(t.elapsed());
    }
    let zone = zone.unwrap();
    let server = DnsServer::bind(config.listen, config.handler(Arc::new(zone)))
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let svcs = n_services;
        tasks.push(tokio::spawn(client(addr, c, svcs, deadline)));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut lost = 0;
    for t in tasks {
        let (l, x) = t.await.unwrap();
        latencies.extend(l);
        lost += x;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "weft-dns: {n_services} services (zone built in {:.1} ms), {clients} UDP clients, {seconds} s",
        build.as_secs_f64() * 1e3
    );
    println!(
        "  {:.0} QPS for cluster names, p50 {:.3} ms, p99 {:.3} ms, lost {lost}",
        latencies.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    println!("  CoreDNS (published, 2 vCPU): 33.7k QPS at 2.6 ms");
}

/// One closed-loop client: a query, wait for its answer, next query.
async fn client(
    server: SocketAddr,
    c: usize,
    n: usize,
    deadline: Instant,
) -> (Vec<Duration>, usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut latencies = Vec::with_capacity(100_000);
    let mut lost = 0;
    let mut i = c;
    while Instant::now() < deadline {
        let name = format!("svc-{}.ns-{}.svc.cluster.local.", i % n, (i % n) % 50);
        i += 7;
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii(&name).unwrap(),
            RecordType::A,
        ));
        let packet = m.to_vec().unwrap();
        let t = Instant::now();
        sock.send(&packet).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
            Ok(Ok(_)) => latencies.push(t.elapsed()),
            _ => lost += 1,
        }
    }
    (latencies, lost)
}

//! Serves a generated cluster (N ClusterIP Services over 50 namespaces) with weft-dns, and
//! writes the same records as a zone file for Knot DNS and a query file for dnsperf, so
//! `scripts/bench-dns` can measure both servers on identical data.
//!
//!     cargo run --release -p weft-dns --example dns-fixture -- \
//!         --services 1000 --listen 127.0.0.1:15353 \
//!         --zone-file /tmp/cluster.local.zone --queries /tmp/queries.txt
//!
//! It serves until killed. `--workers` sets the server's threads (the benchmark gives
//! Knot the same number).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use weft_api::core::{Service, ServicePort};
use weft_dns::{DnsConfig, DnsServer, Zone};

struct Args {
    services: usize,
    listen: SocketAddr,
    zone_file: Option<PathBuf>,
    queries: Option<PathBuf>,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        services: 1000,
        listen: "127.0.0.1:15353".parse().expect("constant address"),
        zone_file: None,
        queries: None,
        workers: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--services" => args.services = value.parse().map_err(|e| bad(&e))?,
            "--listen" => args.listen = value.parse().map_err(|e| bad(&e))?,
            "--zone-file" => args.zone_file = Some(value.into()),
            "--queries" => args.queries = Some(value.into()),
            "--workers" => args.workers = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.services == 0 || args.services > 1_000_000 {
        return Err(format!(
            "--services {}: must be in 1..=1000000",
            args.services
        ));
    }
    Ok(args)
}

/// Service `i`: `svc-i` in `ns-(i % 50)`, ClusterIP 10.96.0.16 + i.
fn service(i: usize) -> (String, String, Ipv4Addr) {
    (
        format!("svc-{i}"),
        format!("ns-{}", i % 50),
        Ipv4Addr::from(0x0a60_0010u32 + i as u32),
    )
}

fn services(n: usize) -> Vec<Service> {
    (0..n)
        .map(|i| {
            let (name, namespace, ip) = service(i);
            let mut s = Service::default();
            s.metadata.name = name;
            s.metadata.namespace = Some(namespace);
            s.spec.cluster_ip = ip.to_string();
            s.spec.ports = vec![ServicePort {
                name: "http".into(),
                port: 80,
                ..Default::default()
            }];
            s
        })
        .collect()
}

/// The same A records in master-file form, with the SOA and NS Knot needs.
fn knot_zone(n: usize, ttl: u32) -> String {
    let mut z = format!(
        "$ORIGIN cluster.local.\n$TTL {ttl}\n\
         @ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 {ttl}\n\
         @ IN NS ns.dns.cluster.local.\n\
         ns.dns IN A 10.96.0.10\n\
         dns-version IN TXT \"1.1.0\"\n"
    );
    for i in 0..n {
        let (name, namespace, ip) = service(i);
        let _ = writeln!(z, "{name}.{namespace}.svc IN A {ip}");
    }
    z
}

/// One dnsperf line per Service, in a scattered order so neither server gets a cache-
/// friendly sequence.
fn queries(n: usize) -> String {
    let mut q = String::new();
    let step = if n.is_multiple_of(7) { 1 } else { 7 };
    for k in 0..n {
        let (name, namespace, _) = service((k * step) % n);
        let _ = writeln!(q, "{name}.{namespace}.svc.cluster.local A");
    }
    q
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let config = DnsConfig {
        listen: args.listen,
        // Nothing outside the zone is asked; point upstream at the discard port anyway.
        upstreams: vec!["127.0.0.1:9".parse().expect("constant address")],
        ..Default::default()
    };
    if let Some(path) = &args.zone_file {
        std::fs::write(path, knot_zone(args.services, config.ttl))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.queries {
        std::fs::write(path, queries(args.services))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let zone = Zone::build(
        &services(args.services),
        &[],
        &[],
        &[],
        &config.zone_settings(),
    )
    .map_err(|e| format!("building the zone: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let server = DnsServer::bind(config.listen, config.handler(Arc::new(zone)))
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "dns-fixture: {} services on {}",
            args.services,
            server.local_addr().map_err(|e| e.to_string())?
        );
        server.run().await.map_err(|e| e.to_string())
    })
}

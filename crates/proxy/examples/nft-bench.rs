//! Benchmark of the nftables backend (reports, asserts nothing). Needs root; works in a
//! throwaway network namespace it deletes at the end.
//!
//! ```sh
//! cargo run --release -p weft-proxy --example nft-bench            # 10,000 Services
//! cargo run --release -p weft-proxy --example nft-bench -- 2000    # a smaller full sync
//! ```
//!
//! 1. Full sync of N Services × 10 endpoints into an empty table, beside `nft -f` of the
//!    very same ruleset file (the floor any nft-based proxy has): the ratio is our cost.
//! 2. Time to apply one Service change at 100, 1,000 and 10,000 Services, p50 and p99 of
//!    200 changes of each kind (one endpoint removed then added back; one endpoint's
//!    address replaced then restored): the sync alone (script and
//!    transaction through libnftables), and from the changed Endpoints object on, as
//!    `weft proxy` does it (the table updated for that Service, then the sync).
//! 3. The bench process's resident memory once it holds 10,000 Services.

use std::process::Command;
use std::time::{Duration, Instant};

use weft_api::core::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort,
};
use weft_netlink::netns;
use weft_proxy::nftables::full_script;
use weft_proxy::{NftConfig, NftProxy, NodeContext, ProxyBackend, ServiceTable, TableBuilder};

const ENDPOINTS: usize = 10;

#[derive(Clone, Copy)]
enum ChangeKind {
    /// One endpoint removed, then added back.
    Count,
    /// One endpoint's address changed, then changed back (a pod replaced).
    Replace,
}

impl ChangeKind {
    fn label(self) -> &'static str {
        match self {
            ChangeKind::Count => "endpoint removed/added",
            ChangeKind::Replace => "endpoint replaced    ",
        }
    }
}

fn objects(n: usize) -> (Vec<Service>, Vec<Endpoints>) {
    let mut services = Vec::with_capacity(n);
    let mut endpoints = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("svc-{i}");
        let mut s = Service::default();
        s.metadata.name = name.clone();
        s.metadata.namespace = Some("bench".into());
        s.spec.cluster_ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        s.spec.ports = vec![ServicePort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 80,
            ..Default::default()
        }];
        services.push(s);
        let mut e = Endpoints::default();
        e.metadata.name = name;
        e.metadata.namespace = Some("bench".into());
        e.subsets.push(EndpointSubset {
            addresses: (0..ENDPOINTS)
                .map(|j| {
                    let k = i * ENDPOINTS + j;
                    EndpointAddress {
                        ip: format!("10.{}.{}.{}", 128 + k / 62500, (k / 250) % 250, k % 250 + 1),
                        node_name: Some(format!("node-{}", j % 3)),
                        ..Default::default()
                    }
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
        endpoints.push(e);
    }
    (services, endpoints)
}

fn node() -> NodeContext {
    NodeContext {
        node_name: "node-0".into(),
        addresses: vec!["192.168.77.1".parse().expect("ip")],
        nodeport_addresses: Vec::new(),
    }
}

fn build(n: usize) -> (Vec<Service>, Vec<Endpoints>, ServiceTable) {
    let (s, e) = objects(n);
    let t = ServiceTable::build(&s, &e, &node());
    (s, e, t)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The value below which `q` of the samples fall (nearest rank).
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// VmRSS of this process, from /proc.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

const CHANGES: usize = 200;

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = netns::delete(&self.0) {
            eprintln!("deleting {}: {e}", self.0);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let full_n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let ns = Netns(format!("wpx-bench-{}", std::process::id()));
    netns::create(&ns.0)?;
    let cfg = NftConfig {
        cluster_cidr: Some("10.128.0.0/9".parse()?),
        netns: Some(ns.0.clone()),
    };
    let mut proxy = NftProxy::new(cfg.clone());

    // 1. Full sync versus nft -f of the same ruleset.
    let start = Instant::now();
    let (_, _, table) = build(full_n);
    let built = start.elapsed();
    let start = Instant::now();
    let stats = proxy.sync(&table).await?;
    let sync = start.elapsed();
    let script = full_script(&table, &cfg);
    let file = std::env::temp_dir().join(format!("wpx-bench-{}.nft", std::process::id()));
    // nft -f gets everything as one transaction (weft stages new backends ahead of it).
    std::fs::write(&file, script.transactions().collect::<String>())?;
    proxy.cleanup().await?;
    let start = Instant::now();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "-f"])
        .arg(&file)
        .status()?;
    let raw = start.elapsed();
    // NFT_BENCH_KEEP=1 keeps the ruleset file for experiments with nft itself.
    if std::env::var_os("NFT_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_file(&file);
    } else {
        println!("ruleset kept in {}", file.display());
    }
    if !status.success() {
        return Err("nft -f of the generated ruleset failed".into());
    }
    println!(
        "full sync, {full_n} Services x {ENDPOINTS} endpoints ({} chains, {:.1} MB script, {} transactions):",
        stats.chains_added,
        script.bytes() as f64 / 1e6,
        script.transactions().count()
    );
    println!("  table from objects    {}", secs(built));
    println!("  weft-proxy sync       {}", secs(sync));
    println!("  nft -f same ruleset   {}", secs(raw));
    println!(
        "  ratio sync / nft -f   {:.2}",
        sync.as_secs_f64() / raw.as_secs_f64()
    );

    // 2. One Service change at growing sizes.
    println!("one Service change, {CHANGES} changes of each kind:");
    let mut rss_at_10k = f64::NAN;
    for n in [100, 1_000, 10_000] {
        let mut proxy = NftProxy::new(cfg.clone());
        proxy.cleanup().await?;
        let (services, mut endpoints, _) = build(n);
        let mut builder = TableBuilder::new(node());
        services.iter().for_each(|s| builder.set_service(s.clone()));
        endpoints
            .iter()
            .for_each(|e| builder.set_endpoints(e.clone()));
        let changes = builder.take_changes();
        proxy.sync_changed(builder.table(), &changes).await?;
        let full = endpoints[n / 2].subsets[0].addresses.clone();
        // Two kinds of change: the endpoint count changes (the Service's verdict-map element
        // moves to another pick chain), or a pod is replaced (only backend elements change).
        for kind in [ChangeKind::Count, ChangeKind::Replace] {
            let mut times = Vec::new();
            let mut applies = Vec::new();
            for round in 0..CHANGES {
                let addrs = &mut endpoints[n / 2].subsets[0].addresses;
                *addrs = full.clone();
                if round % 2 == 0 {
                    match kind {
                        ChangeKind::Count => {
                            addrs.pop();
                        }
                        ChangeKind::Replace => addrs[0].ip = "10.254.0.1".into(),
                    }
                }
                let changed = endpoints[n / 2].clone();
                let start = Instant::now();
                builder.set_endpoints(changed);
                let changes = builder.take_changes();
                let stats = proxy.sync_changed(builder.table(), &changes).await?;
                times.push(start.elapsed());
                applies.push(stats.elapsed);
                assert!(!stats.full && stats.services_touched == 1);
            }
            println!(
                "  {n:>6} Services, {}: sync p50 {} p99 {}; from the Endpoints change p50 {} p99 {}",
                kind.label(),
                ms(quantile(&mut applies, 0.5)),
                ms(quantile(&mut applies, 0.99)),
                ms(quantile(&mut times, 0.5)),
                ms(quantile(&mut times, 0.99)),
            );
        }
        if n == 10_000 {
            rss_at_10k = rss_mib();
        }
        proxy.cleanup().await?;
    }
    println!(
        "resident memory of the bench process holding 10,000 Services (its API objects, the \
         table, the proxy's state): {rss_at_10k:.0} MiB"
    );
    Ok(())
}

//! The pod network setup alone, as the agent does it for each pod, timed the way
//! `scripts/bench-pod-network` times the reference CNI plugins: from "make this pod's
//! network" (address from IPAM, namespace, veth on the bridge, address, routes) to "a ping
//! from the node answers". Run it as root inside a throwaway node namespace that holds
//! `--node-ip` on some link (the script does this):
//!
//!     nsenter --net=/run/netns/NODE -- sandbox-bench --pods 50 --node-ip 172.31.253.1 \
//!         --state-dir /tmp/x --out /tmp/weft-setup.us
//!
//! It writes one line of microseconds per pod to `--out`, then removes every pod network
//! it made, the bridge and the VXLAN device. Reports figures; asserts nothing.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use weft_agent::ipam::Ipam;
use weft_agent::node::{host, sandbox, BRIDGE, VXLAN};
use weft_netlink::Netlink;

struct Args {
    pods: usize,
    node_ip: Ipv4Addr,
    state_dir: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let (mut pods, mut node_ip, mut state_dir, mut out) = (50, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--pods" => pods = value.parse().map_err(|e| format!("--pods {value}: {e}"))?,
            "--node-ip" => {
                node_ip = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--node-ip {value}: {e}"))?,
                )
            }
            "--state-dir" => state_dir = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !(1..=250).contains(&pods) {
        return Err(format!("--pods {pods}: must be 1..=250 (one /24)"));
    }
    Ok(Args {
        pods,
        node_ip: node_ip.ok_or("--node-ip is required")?,
        state_dir: state_dir.ok_or("--state-dir is required")?,
        out: out.ok_or("--out is required")?,
    })
}

/// The same probe the script's CNI loop uses: one `ping -W 0.2` after another.
fn ping_until_answered(ip: Ipv4Addr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answered = Command::new("ping")
            .args(["-c", "1", "-W", "0.2", "-n", "-q", &ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("running ping: {e}"))?
            .success();
        if answered {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{ip} did not answer ping within 10 s"));
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let pod_cidr: Ipv4Net = "10.244.0.0/24".parse().expect("constant CIDR");
    let nl = Netlink::new().map_err(|e| format!("opening netlink: {e}"))?;
    let host = host::ensure(&nl, args.node_ip, pod_cidr)
        .await
        .map_err(|e| format!("building the node network: {e}"))?;
    let ipam = Ipam::open(args.state_dir.join("ipam"), pod_cidr)
        .map_err(|e| format!("opening IPAM: {e}"))?;
    let mut out = std::fs::File::create(&args.out)
        .map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let mut uids = Vec::new();
    let mut result = Ok(());
    for i in 0..args.pods {
        // Pod uids are UUIDs; the names the agent derives from them must stay unique.
        let uid = format!(
            "{i:08x}-bec0-4000-8000-{:012x}",
            0xbe0c_0000_0000u64 + i as u64
        );
        let t0 = Instant::now();
        let ip = match ipam.allocate(&uid) {
            Ok(ip) => ip,
            Err(e) => {
                result = Err(format!("allocating an address: {e}"));
                break;
            }
        };
        uids.push(uid.clone());
        let t_alloc = t0.elapsed();
        if let Err(e) = sandbox::setup(&nl, &host, &uid, ip).await {
            result = Err(format!("pod {i}: {e}"));
            break;
        }
        let t_setup = t0.elapsed();
        if let Err(e) = ping_until_answered(ip) {
            result = Err(e);
            break;
        }
        let _ = writeln!(out, "{}", t0.elapsed().as_micros());
        if std::env::var_os("SANDBOX_BENCH_STEPS").is_some() {
            eprintln!(
                "pod {i}: ipam {:?}, network {:?}, ping {:?}",
                t_alloc,
                t_setup - t_alloc,
                t0.elapsed() - t_setup
            );
        }
    }
    for uid in &uids {
        if let Err(e) = sandbox::teardown(&nl, uid).await {
            eprintln!("sandbox-bench: removing pod network {uid}: {e}");
        }
    }
    for name in [BRIDGE, VXLAN] {
        if let Ok(Some(link)) = nl.link(name).await {
            let _ = nl.delete_link(link.index).await;
        }
    }
    result
}

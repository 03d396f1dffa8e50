//! `weft proxy`: Services and Endpoints from informers → the desired service table → the
//! kernel, by diff, through IPVS or nftables. Bursts of changes are gathered into one sync.
//! Informer events update the table one Service at a time ([`TableBuilder`]), so a change
//! costs the same at 10 or 10,000 Services; every 30 s the whole table is rebuilt and
//! diffed as a safety net.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use weft_api::core::{Endpoints, Service};
use weft_api::meta::now_timestamp;
use weft_api::resources::EVENT;
use weft_client::{Client, Event, Informer, Kubeconfig, ListParams};
use weft_proxy::ipvs::{cleanup_host, KernelHost};
use weft_proxy::{
    IpvsConfig, IpvsProxy, NftConfig, NftProxy, NodeContext, Problem, ProxyBackend, TableBuilder,
};

const DEBOUNCE: Duration = Duration::from_millis(50);
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// IPVS when the kernel has it, else nftables.
    Auto,
    Ipvs,
    Nftables,
}

/// Program every Service's ClusterIP:port and NodePorts into the kernel, incrementally.
///
/// Example:
///   weft proxy --kubeconfig node-1.kubeconfig --node-name node-1 --node-ip 192.168.56.11
///   ipvsadm -Ln                   # IPVS mode (nft list table ip weft-ipvs: masquerade)
///   nft list table ip weft-proxy  # nftables mode
///   weft proxy --cleanup          # remove everything either mode made
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[arg(long, env = "KUBECONFIG", required_unless_present = "cleanup")]
    kubeconfig: Option<PathBuf>,
    #[arg(long, required_unless_present = "cleanup")]
    node_name: Option<String>,
    /// This node's addresses NodePorts answer on (repeatable; default: every IPv4 address
    /// of this network namespace except loopback).
    #[arg(long)]
    node_ip: Vec<IpAddr>,
    /// Only NodePorts on node addresses inside these networks.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<IpNet>,
    /// Traffic to a ClusterIP from outside this network is masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    #[arg(long, value_enum, default_value = "auto")]
    proxy_mode: Mode,
    /// Remove every rule, virtual server and device the proxy made (both modes), then exit.
    #[arg(long)]
    cleanup: bool,
}

const PROC_IPVS: &str = "/proc/net/ip_vs";

/// Whether the kernel has IPVS, loading the module if it can; and why.
async fn probe_ipvs() -> (bool, String) {
    if std::path::Path::new(PROC_IPVS).exists() {
        return (true, format!("{PROC_IPVS} exists"));
    }
    let loaded = tokio::process::Command::new("modprobe")
        .arg("ip_vs")
        .output()
        .await;
    match loaded {
        Ok(out) if out.status.success() && std::path::Path::new(PROC_IPVS).exists() => {
            (true, "modprobe ip_vs loaded it".into())
        }
        Ok(out) => (
            false,
            format!(
                "{PROC_IPVS} is absent and modprobe ip_vs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => (
            false,
            format!("{PROC_IPVS} is absent and modprobe could not run: {e}"),
        ),
    }
}

fn ipvs_backend(cidr: Ipv4Net) -> Result<Box<dyn ProxyBackend>> {
    let config = IpvsConfig {
        cluster_cidr: Some(cidr),
        ..Default::default()
    };
    Ok(Box::new(
        IpvsProxy::new(config).context("opening the kernel's IPVS")?,
    ))
}

fn nft_backend(cidr: Ipv4Net) -> Box<dyn ProxyBackend> {
    Box::new(NftProxy::new(NftConfig {
        cluster_cidr: Some(cidr),
        netns: None,
    }))
}

async fn choose_backend(mode: Mode, cidr: Ipv4Net) -> Result<Box<dyn ProxyBackend>> {
    match mode {
        Mode::Ipvs => ipvs_backend(cidr),
        Mode::Nftables => Ok(nft_backend(cidr)),
        Mode::Auto => {
            let (has, why) = probe_ipvs().await;
            if !has {
                tracing::info!(reason = %why, "proxy mode auto: using nftables");
                return Ok(nft_backend(cidr));
            }
            match ipvs_backend(cidr) {
                Ok(b) => {
                    tracing::info!(reason = %why, "proxy mode auto: using IPVS");
                    Ok(b)
                }
                Err(e) => {
                    tracing::warn!(reason = %why, error = %format!("{e:#}"),
                        "proxy mode auto: IPVS present but unusable, using nftables");
                    Ok(nft_backend(cidr))
                }
            }
        }
    }
}

/// `--cleanup`: both modes' leftovers, going on past a failure.
async fn cleanup(cidr: Ipv4Net) -> Result<()> {
    let mut failed = Vec::new();
    if let Err(e) = nft_backend(cidr).cleanup().await {
        failed.push(format!("nftables mode: {e}"));
    }
    let ipvs = if std::path::Path::new(PROC_IPVS).exists() {
        match ipvs_backend(cidr) {
            Ok(mut b) => b.cleanup().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        }
    } else {
        // No IPVS, so no virtual servers: only the device and the table can be left.
        cleanup_host(&mut KernelHost::new(None))
            .await
            .map_err(anyhow::Error::from)
    };
    if let Err(e) = ipvs {
        failed.push(format!("IPVS mode: {e:#}"));
    }
    if !failed.is_empty() {
        bail!("cleanup incomplete: {}", failed.join("; "));
    }
    eprintln!("weft proxy: removed table ip weft-proxy, IPVS virtual servers, kube-ipvs0, table ip weft-ipvs");
    Ok(())
}

async fn local_addresses() -> Result<Vec<IpAddr>> {
    let nl = weft_netlink::Netlink::new().context("opening netlink")?;
    let mut out = Vec::new();
    for link in nl.links().await.context("listing links")? {
        if link.name == weft_proxy::ipvs::sets::DUMMY {
            continue;
        }
        for a in nl
            .addresses(link.index)
            .await
            .context("listing addresses")?
        {
            if let IpNet::V4(v4) = a {
                if !v4.addr().is_loopback() {
                    out.push(IpAddr::V4(v4.addr()));
                }
            }
        }
    }
    Ok(out)
}

/// Why a Service (or part of it) is not programmed: the Event reason and the log line.
struct ProblemKind {
    reason: &'static str,
    log: &'static str,
}

const SKIPPED: ProblemKind = ProblemKind {
    reason: "ServiceSkipped",
    log: "service skipped",
};
const REFUSED: ProblemKind = ProblemKind {
    reason: "KernelRefused",
    log: "service refused by the kernel",
};

/// Logs each problem not reported on the previous sync and records it as a Warning Event
/// on its Service (`weftctl describe service` shows it); a problem that persists is
/// reported once.
fn report(
    client: &Client,
    node_name: &str,
    reported: &mut Vec<Problem>,
    problems: &[Problem],
    kind: ProblemKind,
) {
    for p in problems.iter().filter(|p| !reported.contains(p)) {
        tracing::warn!(service = %p.service, problem = %p.message, "{}", kind.log);
        let Some((event, namespace)) = problem_event(p, node_name, kind.reason) else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.create(&EVENT, Some(&namespace), &event).await {
                tracing::debug!(error = %e, "recording the problem as an Event");
            }
        });
    }
    *reported = problems.to_vec();
}

/// A Kubernetes-style Warning Event about `problem`'s Service, with its namespace.
fn problem_event(problem: &Problem, node_name: &str, reason: &str) -> Option<(Value, String)> {
    let (namespace, name) = problem.service.split_once('/')?;
    let stamp = now_timestamp();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        // As Kubernetes names them: the object's name and a unique hex suffix.
        "metadata": {"name": format!("{name}.{nanos:x}"),
                     "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": namespace, "name": name},
        "reason": reason, "message": problem.message, "type": "Warning",
        "source": {"component": "weft-proxy", "host": node_name},
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "reportingComponent": "weft-proxy", "reportingInstance": node_name,
    });
    Some((event, namespace.to_string()))
}

fn feed_service(builder: &mut TableBuilder, event: Event<Service>) {
    match event {
        Event::Added(s) | Event::Modified(s) => builder.set_service(s),
        Event::Deleted(s) => builder.delete_service(&s.metadata),
        Event::Synced => {}
    }
}

fn feed_endpoints(builder: &mut TableBuilder, event: Event<Endpoints>) {
    match event {
        Event::Added(e) | Event::Modified(e) => builder.set_endpoints(e),
        Event::Deleted(e) => builder.delete_endpoints(&e.metadata),
        Event::Synced => {}
    }
}

/// What a proxy needs besides the API client: `weft proxy`'s flags, or `weft node`'s.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub node_name: String,
    /// Addresses NodePorts answer on; empty: every IPv4 address of this network namespace.
    pub node_ips: Vec<IpAddr>,
    pub nodeport_addresses: Vec<IpNet>,
    pub cluster_cidr: Ipv4Net,
    pub mode: Mode,
}

pub async fn run(args: Args) -> Result<()> {
    if args.cleanup {
        return cleanup(args.cluster_cidr.trunc()).await;
    }
    let (Some(kubeconfig_path), Some(node_name)) = (args.kubeconfig, args.node_name) else {
        bail!("--kubeconfig and --node-name are required");
    };
    let kubeconfig = Kubeconfig::load(&kubeconfig_path)
        .with_context(|| format!("--kubeconfig {}", kubeconfig_path.display()))?;
    let client = Client::from_kubeconfig(&kubeconfig).context("building the API client")?;
    let options = ProxyOptions {
        node_name,
        node_ips: args.node_ip,
        nodeport_addresses: args.nodeport_addresses,
        cluster_cidr: args.cluster_cidr,
        mode: args.proxy_mode,
    };
    let task = start(client, options).await?;
    tokio::select! {
        result = task => result.context("proxy task")?,
        _ = super::shutdown_signal() => Ok(()),
    }
}

/// Picks the backend and starts the proxy loop: Services and Endpoints from informers →
/// the desired table → the kernel, by diff. The task ends only on a fatal error.
pub async fn start(client: Client, options: ProxyOptions) -> Result<JoinHandle<Result<()>>> {
    let mut backend = choose_backend(options.mode, options.cluster_cidr.trunc()).await?;
    weft_netlink::sysctl_set("net.ipv4.ip_forward", "1").context("enabling IPv4 forwarding")?;
    let addresses = if options.node_ips.is_empty() {
        local_addresses().await?
    } else {
        options.node_ips
    };
    let node = NodeContext {
        node_name: options.node_name,
        addresses,
        nodeport_addresses: options.nodeport_addresses,
    };
    Ok(tokio::spawn(async move {
        let (_services, mut s_rx, _s) =
            Informer::new(client.api::<Service>(None), ListParams::default()).spawn(256);
        let (_endpoints, mut e_rx, _e) =
            Informer::new(client.api::<Endpoints>(None), ListParams::default()).spawn(256);
        let (mut skipped, mut refused) = (Vec::new(), Vec::new());
        // The complete lists first: syncing a table built from part of them would remove
        // the Services not seen yet. Each informer's first events, up to its Synced, are
        // its whole list, handed over rather than copied out of its cache.
        let mut builder = TableBuilder::new(node.clone());
        let (mut services_listed, mut endpoints_listed) = (false, false);
        while !(services_listed && endpoints_listed) {
            tokio::select! {
                Some(ev) = s_rx.recv(), if !services_listed => {
                    services_listed = matches!(ev, Event::Synced);
                    feed_service(&mut builder, ev);
                }
                Some(ev) = e_rx.recv(), if !endpoints_listed => {
                    endpoints_listed = matches!(ev, Event::Synced);
                    feed_endpoints(&mut builder, ev);
                }
                else => bail!("the Service and Endpoints informers stopped before listing"),
            }
        }
        loop {
            let changes = builder.take_changes();
            let table = builder.table();
            report(
                &client,
                &node.node_name,
                &mut skipped,
                &table.problems,
                SKIPPED,
            );
            match backend.sync_changed(table, &changes).await {
                Ok(stats) => {
                    report(
                        &client,
                        &node.node_name,
                        &mut refused,
                        &stats.problems,
                        REFUSED,
                    );
                    tracing::debug!(?stats, "synced");
                }
                Err(e) => tracing::warn!(error = %e, "sync failed; will retry"),
            }
            // IPVS mode asks for an early sync while real servers drain.
            let wait = backend.next_wakeup().map_or(RESYNC, |w| w.min(RESYNC));
            tokio::select! {
                Some(ev) = s_rx.recv() => feed_service(&mut builder, ev),
                Some(ev) = e_rx.recv() => feed_endpoints(&mut builder, ev),
                _ = tokio::time::sleep(wait) => builder.force_rebuild(),
            }
            tokio::time::sleep(DEBOUNCE).await;
            loop {
                match (s_rx.try_recv(), e_rx.try_recv()) {
                    (Err(_), Err(_)) => break,
                    (s, e) => {
                        s.into_iter().for_each(|ev| feed_service(&mut builder, ev));
                        e.into_iter()
                            .for_each(|ev| feed_endpoints(&mut builder, ev));
                    }
                }
            }
        }
    }))
}

//! `weft proxy`: Services and Endpoints from informers → the desired service table → the
//! kernel, by diff. Bursts of changes are gathered into one sync.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ipnet::{IpNet, Ipv4Net};
use tokio::task::JoinHandle;
use weft_api::core::{Endpoints, Service};
use weft_client::{Client, Informer, Kubeconfig, ListParams};
use weft_proxy::{NftConfig, NftProxy, NodeContext, ProxyBackend, ServiceTable};

const DEBOUNCE: Duration = Duration::from_millis(50);

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
///   nft list table ip weft-proxy
///   weft proxy --cleanup          # remove everything it made
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
    /// Remove every rule the proxy made, then exit.
    #[arg(long)]
    cleanup: bool,
}

fn kernel_has_ipvs() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}

async fn local_addresses() -> Result<Vec<IpAddr>> {
    let nl = weft_netlink::Netlink::new().context("opening netlink")?;
    let mut out = Vec::new();
    for link in nl.links().await.context("listing links")? {
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

/// The backend `mode` asks for, with `auto` resolved and logged.
fn backend(mode: Mode, cluster_cidr: Ipv4Net) -> Result<Box<dyn ProxyBackend>> {
    let mode = match mode {
        Mode::Ipvs => bail!("--proxy-mode ipvs: the IPVS backend is not built yet; use nftables"),
        Mode::Nftables => Mode::Nftables,
        Mode::Auto => {
            if kernel_has_ipvs() {
                tracing::info!(
                    "kernel has IPVS, but the IPVS backend is not built yet: using nftables"
                );
            } else {
                tracing::info!("kernel has no IPVS (/proc/net/ip_vs is absent): using nftables");
            }
            Mode::Nftables
        }
    };
    debug_assert_eq!(mode, Mode::Nftables);
    Ok(Box::new(NftProxy::new(NftConfig {
        cluster_cidr: Some(cluster_cidr.trunc()),
        netns: None,
    })))
}

pub async fn run(args: Args) -> Result<()> {
    if args.cleanup {
        backend(args.proxy_mode, args.cluster_cidr)?
            .cleanup()
            .await
            .context("removing the proxy's rules")?;
        eprintln!("weft proxy: removed table ip weft-proxy");
        return Ok(());
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
    let mut backend = backend(options.mode, options.cluster_cidr)?;
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
        let (services, mut s_rx, _s) =
            Informer::new(client.api::<Service>(None), ListParams::default()).spawn(256);
        let (endpoints, mut e_rx, _e) =
            Informer::new(client.api::<Endpoints>(None), ListParams::default()).spawn(256);
        services.wait_synced().await;
        endpoints.wait_synced().await;
        let mut reported: Vec<String> = Vec::new();
        loop {
            let table = ServiceTable::build(&services.list(), &endpoints.list(), &node);
            let problems: Vec<String> = table.problems.iter().map(|p| format!("{p:?}")).collect();
            for p in problems.iter().filter(|p| !reported.contains(p)) {
                tracing::warn!(problem = %p, "service skipped");
            }
            reported = problems;
            match backend.sync(&table).await {
                Ok(stats) => tracing::debug!(?stats, "synced"),
                Err(e) => tracing::warn!(error = %e, "sync failed; will retry"),
            }
            tokio::select! {
                Some(_) = s_rx.recv() => {}
                Some(_) = e_rx.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            tokio::time::sleep(DEBOUNCE).await;
            while s_rx.try_recv().is_ok() || e_rx.try_recv().is_ok() {}
        }
    }))
}

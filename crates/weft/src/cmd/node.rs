//! `weft node`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use weft_agent::node::NodeConfig;

/// Run the node agent: register the Node, build the bridge and VXLAN overlay, and run the
/// Pods bound to this node (network namespace, veth, address, resolv.conf and hosts,
/// processes, readiness probes, status).
///
/// Pods keep running when the agent stops; a restarted agent re-adopts them.
///
/// Example:
///   weft token create --data-dir /var/lib/weft --node node-1 --kubeconfig-out node-1.kubeconfig
///   weft node --kubeconfig node-1.kubeconfig --node-name node-1 --node-ip 192.168.56.11
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    #[arg(long)]
    node_name: String,
    /// The node's address on the network between nodes (VXLAN runs over it).
    #[arg(long)]
    node_ip: Ipv4Addr,
    /// Where IPAM, pod records, pod files and logs are kept (default /var/lib/weft-node/NAME).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// All pods' addresses; traffic from pods leaving it is masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// The cluster DNS address written into pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: IpAddr,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Port for serving container logs to the API server.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Seconds between heartbeats (the API server marks a node NotReady after 40 s).
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/weft-node").join(&args.node_name));
    let config = NodeConfig {
        kubeconfig: args.kubeconfig,
        node_name: args.node_name,
        node_ip: args.node_ip,
        state_dir,
        cluster_cidr: args.cluster_cidr.trunc(),
        cluster_dns: args.cluster_dns,
        cluster_domain: args.cluster_domain,
        port: args.port,
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        resync: Duration::from_secs(2),
    };
    weft_agent::node::run(config, super::shutdown_signal()).await?;
    Ok(())
}

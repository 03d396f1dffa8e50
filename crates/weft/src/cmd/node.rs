//! `weft node`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipnet::{IpNet, Ipv4Net};
use tokio::task::JoinHandle;
use weft_agent::node::NodeConfig;
use weft_client::{Client, Kubeconfig};
use weft_dns::DnsConfig;

/// Run the node agent: register the Node, build the bridge and VXLAN overlay, and run the
/// Pods bound to this node (network namespace, veth, address, resolv.conf and hosts,
/// processes, readiness probes, status). It also runs the service proxy (as `weft proxy`),
/// serves cluster DNS on --node-ip:53 and the path router on --node-ip:10080, announced so
/// that the kube-dns (10.96.0.10) and weft-router (10.96.0.11) Services balance over every
/// node's servers. `--disable proxy,dns,router` leaves those to standalone `weft proxy`,
/// `weft dns`, `weft router`.
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
    /// Components not to run inside the agent (comma-separated). By default the node also
    /// runs the service proxy, serves cluster DNS on --node-ip port 53 (a backend of the
    /// kube-dns Service) and the path router on --node-ip port 10080 (of weft-router).
    #[arg(long, value_enum, value_delimiter = ',')]
    disable: Vec<Component>,
    /// The service proxy's backend (see `weft proxy --help`).
    #[arg(long, value_enum, default_value = "auto")]
    proxy_mode: super::proxy::Mode,
    /// Only NodePorts on node addresses inside these networks (default: every address).
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<IpNet>,
    /// Upstream servers for names outside the cluster (default: /etc/resolv.conf's).
    #[arg(long, value_delimiter = ',')]
    dns_upstream: Vec<SocketAddr>,
    /// Networks allowed to query DNS besides the cluster CIDR, the service CIDR and the
    /// network of --node-ip (anyone else is refused).
    #[arg(long, value_delimiter = ',')]
    dns_allow: Vec<IpNet>,
}

/// The port of the path router on each node: the targetPort of kube-system/weft-router.
const ROUTER_PORT: u16 = 10080;

/// What `weft node` runs besides the agent itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// Cluster DNS (`weft dns`) on --node-ip:53.
    Dns,
    /// The service proxy (`weft proxy`): ClusterIPs and NodePorts in this node's kernel.
    Proxy,
    /// The path router (`weft router`) on --node-ip:10080, a backend of Service
    /// kube-system/weft-router.
    Router,
}

impl Component {
    /// The name announced in the Node's `weft.io/node-services` annotation, for what
    /// serves other nodes' clients.
    fn service_name(self) -> Option<&'static str> {
        match self {
            Component::Dns => Some("dns"),
            Component::Proxy => None,
            Component::Router => Some("router"),
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    let enabled = |c: Component| !args.disable.contains(&c);
    let mut node_services = Vec::new();
    // Started before the agent announces the node as serving them, so a taken port fails
    // the start instead of sending pods to a server that is not there.
    let mut tasks = Tasks::new();
    let client = client(&args.kubeconfig)?;
    if enabled(Component::Dns) {
        let mut config = DnsConfig {
            listen: SocketAddr::new(IpAddr::V4(args.node_ip), 53),
            upstreams: args.dns_upstream.clone(),
            zone: args.cluster_domain.clone(),
            ..Default::default()
        };
        config.allowed.push(IpNet::V4(args.cluster_cidr.trunc()));
        // Pods' queries to another node's server arrive masqueraded to their node's address.
        config
            .allowed
            .push(IpNet::V4(node_network(args.node_ip).await?));
        config.allowed.extend(args.dns_allow.iter().copied());
        let dns = super::dns::start(client.clone(), config).await?;
        supervise(&mut tasks, "cluster DNS", dns);
        node_services.extend(Component::Dns.service_name().map(String::from));
    }
    if enabled(Component::Proxy) {
        let options = super::proxy::ProxyOptions {
            node_name: args.node_name.clone(),
            node_ips: Vec::new(),
            nodeport_addresses: args.nodeport_addresses.clone(),
            cluster_cidr: args.cluster_cidr,
            mode: args.proxy_mode,
        };
        let proxy = super::proxy::start(client.clone(), options).await?;
        supervise(&mut tasks, "service proxy", proxy);
    }
    if enabled(Component::Router) {
        let options = super::router::RouterOptions {
            listen: SocketAddr::new(IpAddr::V4(args.node_ip), ROUTER_PORT),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            forward: weft_router::ForwardMode::Endpoints,
            config: Default::default(),
        };
        let router = super::router::start(client, options).await?;
        supervise(&mut tasks, "path router", router);
        node_services.extend(Component::Router.service_name().map(String::from));
    }
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
        node_services,
    };
    let agent = weft_agent::node::run(config, super::shutdown_signal());
    tokio::select! {
        result = agent => Ok(result?),
        Some(Ok((what, result))) = tasks.join_next() => match result {
            Ok(()) => bail!("{what} stopped"),
            Err(e) => Err(e.context(what)),
        },
    }
}

type Tasks = tokio::task::JoinSet<(&'static str, Result<()>)>;

/// Adds a component's task to those `run` watches: its end, or failure, ends the node.
fn supervise(tasks: &mut Tasks, what: &'static str, task: JoinHandle<Result<()>>) {
    tasks.spawn(async move {
        (
            what,
            task.await.map_err(anyhow::Error::from).and_then(|r| r),
        )
    });
}

/// The network --node-ip is on: where the other nodes are.
async fn node_network(node_ip: Ipv4Addr) -> Result<Ipv4Net> {
    let nl = weft_netlink::Netlink::new().context("opening netlink")?;
    let (_, address) = weft_agent::node::host::underlay(&nl, node_ip).await?;
    Ok(address.trunc())
}

fn client(kubeconfig: &Path) -> Result<Client> {
    let loaded = Kubeconfig::load(kubeconfig)
        .with_context(|| format!("--kubeconfig {}", kubeconfig.display()))?;
    Client::from_kubeconfig(&loaded).context("building the API client")
}

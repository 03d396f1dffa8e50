//! `weft node`: the node agent. It registers its Node, builds the node's bridge and VXLAN
//! device, keeps one route + ARP + FDB entry per other node, and runs the Pods bound to it:
//! a network namespace, a veth on the bridge, an address from the node's podCIDR, the
//! kubelet's resolv.conf and hosts, the containers' processes, readiness probes, status.
//!
//! Everything is reconciled against the kernel and the state dir, so a restarted agent
//! re-adopts running pods, their addresses and their connections instead of rebuilding.

pub mod host;
mod logs;
mod masquerade;
mod peers;
mod pods;
mod register;
pub mod sandbox;
mod status;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use weft_api::core::{Node, Pod};
use weft_client::{Client, ClientError, Event, Informer, Kubeconfig, ListParams};
use weft_netlink::{diff_peers, Netlink, OverlayKernel, VxlanOverlay};

pub use host::{BRIDGE, VXLAN};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// The node's underlay address: VXLAN's local end and the Node's InternalIP.
    pub node_ip: Ipv4Addr,
    pub state_dir: PathBuf,
    pub cluster_cidr: Ipv4Net,
    /// The kube-dns ClusterIP written into pods' resolv.conf.
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    /// Where the agent serves container logs to the API server.
    pub port: u16,
    pub heartbeat: Duration,
    pub resync: Duration,
    /// Cluster services the caller runs on `node_ip` (`dns`, `router`), announced on the
    /// Node so their Services' Endpoints list this node.
    pub node_services: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Network(String),
    #[error("{context}: {source}")]
    Api {
        context: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("{0}")]
    Pod(String),
}

impl NodeError {
    fn api(context: &'static str) -> impl FnOnce(ClientError) -> NodeError {
        move |source| NodeError::Api { context, source }
    }
}

/// Tries `f` until it succeeds, logging failures: the API server may start after us.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NodeError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs the agent until `shutdown` resolves. Pods keep running after it returns.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let kubeconfig = Kubeconfig::load(&config.kubeconfig)
        .map_err(|e| NodeError::Config(format!("--kubeconfig: {e}")))?;
    let client = Client::from_kubeconfig(&kubeconfig)
        .map_err(|e| NodeError::Config(format!("--kubeconfig: {e}")))?;
    let token = kubeconfig
        .client_config(None)
        .ok()
        .and_then(|c| c.token)
        .ok_or_else(|| NodeError::Config("--kubeconfig: the node agent needs a token".into()))?;
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| NodeError::Config(format!("creating {}: {e}", config.state_dir.display())))?;
    let nl = Netlink::new().map_err(|e| NodeError::Network(format!("opening netlink: {e}")))?;
    // Fail fast on a wrong --node-ip, before touching the API.
    host::underlay(&nl, config.node_ip).await?;

    let name = config.node_name.clone();
    let node = retry("registering the Node", || {
        register::get_or_create(&client, &name, config.node_ip)
    })
    .await;
    let pod_cidr: Ipv4Net = node.spec.pod_cidr.parse().map_err(|_| {
        NodeError::Config(format!(
            "Node {name} has no valid podCIDR ({:?}); is the API server allocating them?",
            node.spec.pod_cidr
        ))
    })?;
    let host = host::ensure(&nl, config.node_ip, pod_cidr).await?;
    masquerade::ensure(config.cluster_cidr).await?;
    retry("announcing the node", || {
        register::announce(
            &client,
            &node,
            config.node_ip,
            host.vtep_mac,
            config.port,
            &config.node_services,
        )
    })
    .await;
    tracing::info!(node = %name, %pod_cidr, mtu = host.mtu, "node network ready");

    let mut pods =
        pods::PodManager::open(&config, client.clone(), nl.clone(), host.clone()).await?;
    let (node_store, mut node_events, _node_informer) =
        Informer::new(client.api::<Node>(None), ListParams::default()).spawn(64);
    let pod_params = ListParams {
        field_selector: Some(format!("spec.nodeName={name}")),
        ..Default::default()
    };
    let (pod_store, mut pod_events, _pod_informer) =
        Informer::new(client.api::<Pod>(None), pod_params).spawn(256);
    let logs_task = tokio::spawn(logs::serve(
        std::net::SocketAddr::new(IpAddr::V4(config.node_ip), config.port),
        token,
        pod_store.clone(),
        pods.runtime(),
    ));
    let heartbeat_task = {
        let (client, name, period) = (client.clone(), name.clone(), config.heartbeat);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if let Err(e) = register::heartbeat(&client, &name).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        })
    };
    let overlay = VxlanOverlay::new(nl.clone(), host.vxlan_index);
    let mut resync = tokio::time::interval(config.resync);
    tokio::pin!(shutdown);
    node_store.wait_synced().await;
    pod_store.wait_synced().await;
    let mut nodes_dirty = true;
    // A full pass on start and on every resync; in between only the pods events named, so
    // a new pod does not wait behind a pass over every other pod on the node.
    let mut work = PodWork::All;
    loop {
        if nodes_dirty {
            if let Err(e) = reconcile_overlay(&overlay, &name, &node_store.list()).await {
                tracing::warn!(error = %e, "overlay reconcile failed; will retry");
            }
            nodes_dirty = false;
        }
        match std::mem::replace(&mut work, PodWork::None) {
            PodWork::None => {}
            PodWork::All => pods.sync(&pod_store.list(), None).await,
            PodWork::Some(uids) => pods.sync(&pod_store.list(), Some(&uids)).await,
        }
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = node_events.recv() => nodes_dirty = true,
            Some(event) = pod_events.recv() => work.add(&event),
            Some(update) = pods.probe_updates() => {
                work.add_uid(update.pod_uid.clone());
                pods.record_probe(update);
            }
            _ = resync.tick() => {
                nodes_dirty = true;
                work = PodWork::All;
            }
        }
        // Coalesce whatever else is queued into this round.
        while node_events.try_recv().is_ok() {
            nodes_dirty = true;
        }
        while let Ok(event) = pod_events.try_recv() {
            work.add(&event);
        }
    }
    heartbeat_task.abort();
    logs_task.abort();
    pods.shutdown().await;
    tracing::info!("node agent stopped; pods keep running");
    Ok(())
}

/// Which pods the next round looks at.
enum PodWork {
    None,
    All,
    Some(HashSet<String>),
}

impl PodWork {
    fn add_uid(&mut self, uid: String) {
        match self {
            PodWork::All => {}
            PodWork::None => *self = PodWork::Some(HashSet::from([uid])),
            PodWork::Some(uids) => {
                uids.insert(uid);
            }
        }
    }

    fn add(&mut self, event: &Event<Pod>) {
        match event {
            Event::Added(p) | Event::Modified(p) | Event::Deleted(p) => match &p.metadata.uid {
                Some(uid) => self.add_uid(uid.clone()),
                None => *self = PodWork::All,
            },
            Event::Synced => *self = PodWork::All,
        }
    }
}

/// Brings the kernel's peers in line with the Nodes: removals first, then additions.
async fn reconcile_overlay(
    overlay: &VxlanOverlay,
    self_name: &str,
    nodes: &[Node],
) -> Result<(), NodeError> {
    let desired = peers::desired_peers(self_name, nodes);
    let actual = overlay
        .peers()
        .await
        .map_err(|e| NodeError::Network(format!("reading overlay peers: {e}")))?;
    let (add, remove) = diff_peers(&desired, &actual);
    for peer in &remove {
        tracing::info!(pod_cidr = %peer.pod_cidr, underlay = %peer.underlay_ip, "removing overlay peer");
        overlay
            .remove_peer(peer)
            .await
            .map_err(|e| NodeError::Network(format!("removing peer {}: {e}", peer.pod_cidr)))?;
    }
    for peer in &add {
        tracing::info!(pod_cidr = %peer.pod_cidr, underlay = %peer.underlay_ip, "adding overlay peer");
        overlay
            .add_peer(peer)
            .await
            .map_err(|e| NodeError::Network(format!("adding peer {}: {e}", peer.pod_cidr)))?;
    }
    Ok(())
}

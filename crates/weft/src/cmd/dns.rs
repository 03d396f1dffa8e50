//! `weft dns`: cluster DNS answering from informer caches of Services, Endpoints, Pods and
//! DNS objects. Each burst of changes rebuilds the zone once and swaps it in whole, so
//! queries never wait on an update and an update is visible within a second.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::IpNet;
use tokio::task::JoinHandle;
use weft_api::core::{Endpoints, Pod, Service};
use weft_api::weft::Dns;
use weft_client::{Client, Informer, Kubeconfig, ListParams};
use weft_dns::{DnsConfig, DnsServer, Zone};

/// The path router's built-in Service in kube-system.
const ROUTER_SERVICE: &str = "weft-router";

/// How long to gather changes before rebuilding the zone.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Serve `<svc>.<ns>.svc.cluster.local` and the rest of the Kubernetes DNS specification;
/// forward other names to the node's upstream servers. Queries from outside the allowed
/// networks are refused: this is never an open resolver.
///
/// Example:
///   weft dns --kubeconfig node-1.kubeconfig --listen 0.0.0.0:53 --allow 192.168.56.0/24
///   dig @10.96.0.10 web.default.svc.cluster.local
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Address for UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    #[arg(long, default_value = "cluster.local")]
    zone: String,
    /// TTL of cluster records, seconds.
    #[arg(long, default_value_t = 5)]
    ttl: u32,
    /// Upstream servers for other names (default: the nameservers of /etc/resolv.conf).
    #[arg(long, value_delimiter = ',')]
    upstream: Vec<SocketAddr>,
    /// Networks allowed to query, besides loopback and the default cluster and service CIDRs
    /// (add the nodes' network).
    #[arg(long, value_delimiter = ',')]
    allow: Vec<IpNet>,
    /// The path router's address: every DNS object's host resolves to it (default: the
    /// ClusterIP of Service kube-system/weft-router).
    #[arg(long)]
    router_ip: Option<IpAddr>,
}

pub async fn run(args: Args) -> Result<()> {
    let kubeconfig = Kubeconfig::load(&args.kubeconfig)
        .with_context(|| format!("--kubeconfig {}", args.kubeconfig.display()))?;
    let client = Client::from_kubeconfig(&kubeconfig).context("building the API client")?;
    let mut config = DnsConfig {
        listen: args.listen,
        zone: args.zone,
        ttl: args.ttl,
        upstreams: args.upstream,
        router_ip: args.router_ip,
        ..Default::default()
    };
    config.allowed.extend(args.allow);
    let task = start(client, config).await?;
    tokio::select! {
        result = task => result.context("DNS task")?,
        _ = super::shutdown_signal() => Ok(()),
    }
}

/// The path router's address when none is configured: the ClusterIP of the built-in
/// `kube-system/weft-router` Service.
fn router_service_ip(services: &[Service]) -> Option<IpAddr> {
    services
        .iter()
        .find(|s| {
            s.metadata.name == ROUTER_SERVICE
                && s.metadata.namespace.as_deref() == Some("kube-system")
        })
        .and_then(|s| s.spec.cluster_ip.parse().ok())
}

/// Binds the DNS server (so a taken port fails here, before anyone is told to use it) and
/// starts it with its informers; the returned task ends only when serving fails.
pub async fn start(client: Client, config: DnsConfig) -> Result<JoinHandle<Result<()>>> {
    let settings = config.zone_settings();
    let empty = Zone::build(&[], &[], &[], &[], &settings).context("--zone")?;
    let server = DnsServer::bind(config.listen, config.handler(Arc::new(empty)))
        .await
        .context("starting cluster DNS")?;
    tracing::info!(
        "cluster DNS for {} on {} (UDP and TCP)",
        config.zone,
        server.local_addr()?
    );
    let handler = server.handler();
    let mut serving = tokio::spawn(server.run());
    Ok(tokio::spawn(async move {
        let (services, mut s_rx, _s) =
            Informer::new(client.api::<Service>(None), ListParams::default()).spawn(256);
        let (endpoints, mut e_rx, _e) =
            Informer::new(client.api::<Endpoints>(None), ListParams::default()).spawn(256);
        let (pods, mut p_rx, _p) =
            Informer::new(client.api::<Pod>(None), ListParams::default()).spawn(256);
        let (dnses, mut d_rx, _d) =
            Informer::new(client.api::<Dns>(None), ListParams::default()).spawn(64);
        loop {
            tokio::select! {
                Some(_) = s_rx.recv() => {}
                Some(_) = e_rx.recv() => {}
                Some(_) = p_rx.recv() => {}
                Some(_) = d_rx.recv() => {}
                result = &mut serving => {
                    result.context("DNS server task")?.context("serving DNS")?;
                    return Ok(());
                }
            }
            tokio::time::sleep(DEBOUNCE).await;
            while s_rx.try_recv().is_ok()
                || e_rx.try_recv().is_ok()
                || p_rx.try_recv().is_ok()
                || d_rx.try_recv().is_ok()
            {}
            let services = services.list();
            let mut settings = settings.clone();
            if settings.router_ip.is_none() {
                settings.router_ip = router_service_ip(&services);
            }
            match Zone::build(
                &services,
                &endpoints.list(),
                &pods.list(),
                &dnses.list(),
                &settings,
            ) {
                Ok(zone) => handler.update(Arc::new(zone)),
                Err(e) => tracing::warn!(error = %e, "zone not rebuilt"),
            }
        }
    }))
}

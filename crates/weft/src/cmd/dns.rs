//! `weft dns`: cluster DNS answering from informer caches of Services, Endpoints, Pods and
//! DNS objects. Each burst of changes rebuilds the zone once and swaps it in whole, so
//! queries never wait on an update and an update is visible within a second.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::IpNet;
use weft_api::core::{Endpoints, Pod, Service};
use weft_api::weft::Dns;
use weft_client::{Client, Informer, Kubeconfig, ListParams};
use weft_dns::{DnsConfig, Zone};

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
    /// The path router's ClusterIP: every DNS object's host resolves to it.
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
    let settings = config.zone_settings();
    let empty = Zone::build(&[], &[], &[], &[], &settings).context("--zone")?;
    let (zone_tx, zone_rx) = tokio::sync::watch::channel(Arc::new(empty));
    let server = tokio::spawn(weft_dns::serve(config, zone_rx));

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
            _ = super::shutdown_signal() => {
                server.abort();
                return Ok(());
            }
        }
        tokio::time::sleep(DEBOUNCE).await;
        while s_rx.try_recv().is_ok()
            || e_rx.try_recv().is_ok()
            || p_rx.try_recv().is_ok()
            || d_rx.try_recv().is_ok()
        {}
        match Zone::build(
            &services.list(),
            &endpoints.list(),
            &pods.list(),
            &dnses.list(),
            &settings,
        ) {
            Ok(zone) => {
                let _ = zone_tx.send(Arc::new(zone));
            }
            Err(e) => tracing::warn!(error = %e, "zone not rebuilt"),
        }
        if server.is_finished() {
            break;
        }
    }
    server
        .await
        .context("DNS server task")?
        .context("serving DNS")?;
    Ok(())
}

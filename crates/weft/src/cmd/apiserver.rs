//! `weft apiserver`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use weft_apiserver::{Config, StoreBackend};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StoreKind {
    Redb,
    Etcd,
}

/// Serve the Kubernetes-style API.
///
/// On first start it creates DATA_DIR with a CA and serving certificate (pki/), the token
/// file (tokens.json) and an admin kubeconfig (admin.kubeconfig) for weftctl or kubectl.
///
/// Example:
///   weft apiserver --data-dir /var/lib/weft
///   weftctl --kubeconfig /var/lib/weft/admin.kubeconfig get svc -A
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where the store, certificates, tokens and admin kubeconfig live.
    #[arg(long, default_value = "/var/lib/weft")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Port to listen on (0 picks a free one; the kubeconfig records it).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address clients and the `kubernetes` Service use to reach this server
    /// (default: the bind address, or 127.0.0.1 when binding all addresses).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// ClusterIP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ipnet::IpNet,
    /// Pod address range, split into one subnet per Node.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::IpNet,
    /// Prefix length of each Node's podCIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// NodePort range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Storage engine: the embedded redb file, or an etcd cluster.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/weft")]
    etcd_prefix: String,
    /// Extra DNS names or IPs for the serving certificate.
    #[arg(long)]
    tls_san: Vec<String>,
    /// Serve plain HTTP instead of TLS (tokens are still required). Loopback tests only.
    #[arg(long)]
    insecure: bool,
    /// Largest accepted request body.
    #[arg(long, default_value_t = weft_apiserver::rest::DEFAULT_MAX_BODY)]
    max_request_bytes: usize,
}

fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = text
        .split_once('-')
        .with_context(|| format!("--service-node-port-range: {text:?} is not FIRST-LAST"))?;
    let (a, b): (u16, u16) = (
        a.trim()
            .parse()
            .with_context(|| format!("--service-node-port-range: bad port {a:?}"))?,
        b.trim()
            .parse()
            .with_context(|| format!("--service-node-port-range: bad port {b:?}"))?,
    );
    if a == 0 || a > b {
        bail!("--service-node-port-range: {text:?} is empty or starts at 0");
    }
    Ok(a..=b)
}

pub async fn run(args: Args) -> Result<()> {
    let mut config = Config::new(&args.data_dir);
    config.bind = SocketAddr::new(args.bind_address, args.secure_port);
    config.advertise_address = args.advertise_address;
    config.ranges.service_cidr = args.service_cidr.trunc();
    config.ranges.cluster_cidr = args.cluster_cidr.trunc();
    if args.node_cidr_mask_size < args.cluster_cidr.prefix_len()
        || args.node_cidr_mask_size > args.cluster_cidr.max_prefix_len()
    {
        bail!(
            "--node-cidr-mask-size {} does not fit in --cluster-cidr {}",
            args.node_cidr_mask_size,
            args.cluster_cidr
        );
    }
    config.ranges.node_cidr_prefix = args.node_cidr_mask_size;
    config.ranges.node_ports = parse_port_range(&args.service_node_port_range)?;
    config.insecure = args.insecure;
    config.tls_sans = args.tls_san;
    config.max_body = args.max_request_bytes;
    config.store = match args.store {
        StoreKind::Redb => StoreBackend::Redb,
        StoreKind::Etcd => StoreBackend::Etcd {
            endpoints: args.etcd_servers,
            prefix: args.etcd_prefix,
        },
    };
    let running = weft_apiserver::start(config).await?;
    eprintln!(
        "weft apiserver: serving {} (admin kubeconfig: {})",
        running.url,
        running.kubeconfig_path.display()
    );
    super::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-32767").unwrap(), 30000..=32767);
        assert!(parse_port_range("30000").is_err());
        assert!(parse_port_range("5-1").is_err());
        assert!(parse_port_range("0-10").is_err());
    }
}

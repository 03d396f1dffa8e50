//! `weft echo-server`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};

/// Answer HTTP with this host's name, the address the request arrived on and the client's
/// address, like Kubernetes' agnhost netexec. Paths: `/` and `/hostname`, `/clientip`,
/// `/healthz`, `/echo?msg=TEXT`.
///
/// Example (inside a pod):
///   weft echo-server --port 8080
///   curl http://10.244.1.2:8080/   # hostname=echo-1 podIP=10.244.1.2 client=10.244.2.3:51234
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The name to answer with (default: the host name, which in a pod is the pod's).
    #[arg(long)]
    hostname: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let hostname = match args.hostname {
        Some(h) => h,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    };
    let addr = SocketAddr::new(args.address, args.port);
    weft_agent::echo_server::serve(addr, hostname)
        .await
        .with_context(|| format!("serving on {addr}"))
}

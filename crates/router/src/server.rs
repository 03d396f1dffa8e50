//! The listener: accepts connections and serves HTTP/1.1 (keep-alive, upgrades) and
//! HTTP/2 cleartext with prior knowledge on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::error::RouterError;
use crate::forward::Forwarder;
use crate::routes::RouteTable;

/// The current route table, shared by the server and whoever updates it. Each request
/// reads it once, so a swap is atomic and never affects requests already routed.
#[derive(Clone, Default)]
pub struct Routes(Arc<ArcSwap<RouteTable>>);

impl Routes {
    pub fn new(table: RouteTable) -> Routes {
        Routes(Arc::new(ArcSwap::from_pointee(table)))
    }

    pub fn store(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }

    pub fn current(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connecting to a backend.
    pub connect_timeout: Duration,
    /// From sending a request to a backend until its response headers arrive (the body
    /// may then stream for as long as it takes).
    pub response_header_timeout: Duration,
    /// A client has this long to send a request's headers (HTTP/1.1).
    pub client_header_timeout: Duration,
    /// Idle pooled backend connections are closed after this.
    pub upstream_idle_timeout: Duration,
    pub upstream_max_idle_per_backend: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle_per_backend: 256,
        }
    }
}

/// Binds `addr`, then [`serve`]s.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RouterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RouterError::Listen { addr, source })
}

/// Serves until `shutdown` resolves. Connections already accepted finish on their own.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RouterError> {
    let local = listener.local_addr().map_err(RouterError::LocalAddr)?;
    tracing::debug!(listen = %local, "serving");
    let forwarder = Arc::new(Forwarder::new(routes, &config));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.client_header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let forwarder = Arc::clone(&forwarder);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&forwarder).serve(peer, req));
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
}

//! The listener: accepts connections and serves HTTP/1.1 (keep-alive, upgrades) and
//! HTTP/2 cleartext with prior knowledge on the same port.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes, BytesMut};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::error::RouterError;
use crate::forward::Forwarder;
use crate::h1::{self, Served};
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
    /// Connections kept per backend and worker (idle, or still streaming a response);
    /// more are closed once their response is done.
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
    let mut h1 = http1::Builder::new();
    // Head and body in one buffer, one write: proxied responses are mostly small, and
    // the copy costs less than hyper's vectored bookkeeping (bench-router A/B, +2-5%).
    h1.timer(TokioTimer::new())
        .writev(false)
        .header_read_timeout(config.client_header_timeout);
    let protocols = Arc::new(Protocols {
        h1,
        h2: http2::Builder::new(TokioExecutor::new()),
        first_bytes_timeout: config.client_header_timeout,
    });
    // Linux copies TCP_NODELAY from a listening socket to the connections it accepts
    // (`spawn_workers` sets it), which saves a setsockopt per connection; a listener
    // passed in without it is noticed on the first connection.
    let mut nodelay_inherited = None;
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
        if nodelay_inherited != Some(true) {
            let inherited = *nodelay_inherited.get_or_insert(stream.nodelay().unwrap_or(false));
            if !inherited {
                let _ = stream.set_nodelay(true);
            }
        }
        let forwarder = Arc::clone(&forwarder);
        tokio::spawn(Arc::clone(&protocols).serve_connection(stream, peer, forwarder));
    }
}

/// The HTTP/2 client preface: a connection that starts with it speaks HTTP/2 (prior
/// knowledge), any other HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first read from a client: room for a usual request head, so it is parsed without
/// reading again, and small enough for the allocator's fast path.
const FIRST_READ: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// How client connections are served. hyper_util's auto builder (which this replaces)
/// sniffed the protocol by reading exactly 24 bytes, so every HTTP/1 connection took a
/// second read and a reallocation of hyper's buffer.
struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    /// Time for a client's first bytes to arrive (hyper's header timeout starts after).
    first_bytes_timeout: Duration,
}

impl Protocols {
    async fn serve_connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        forwarder: Arc<Forwarder>,
    ) {
        let (protocol, first) =
            match tokio::time::timeout(self.first_bytes_timeout, sniff(&mut stream)).await {
                Ok(Ok(Some(sniffed))) => sniffed,
                // Closed before sending anything.
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "client connection failed before a request");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "client sent nothing in time; closing");
                    return;
                }
            };
        let (stream, first) = match protocol {
            Protocol::Http1 => {
                match h1::serve(stream, first, peer, &forwarder, self.first_bytes_timeout).await {
                    Served::Closed => return,
                    Served::HandOff(stream, buffered) => (stream, buffered),
                }
            }
            Protocol::Http2 => (stream, first),
        };
        // Boxed: the fast path's future, spawned per connection, stays small.
        Box::pin(self.serve_with_hyper(protocol, stream, first.freeze(), peer, forwarder)).await
    }

    async fn serve_with_hyper(
        &self,
        protocol: Protocol,
        stream: TcpStream,
        first: Bytes,
        peer: SocketAddr,
        forwarder: Arc<Forwarder>,
    ) {
        let io = ClientIo {
            first,
            io: TokioIo::new(stream),
            // HTTP/2 ends with GOAWAY and may go on reading; leave its shutdown alone.
            shutdown: protocol == Protocol::Http2,
        };
        let service = service_fn(move |req| Arc::clone(&forwarder).serve(peer, req));
        let result = match protocol {
            Protocol::Http1 => self.h1.serve_connection(io, service).with_upgrades().await,
            Protocol::Http2 => self.h2.serve_connection(io, service).await,
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        }
    }
}

/// Reads a client's first bytes, usually its whole request head in one read, and tells
/// HTTP/2's preface from HTTP/1. `None` when the client closed without sending anything.
async fn sniff(stream: &mut TcpStream) -> io::Result<Option<(Protocol, BytesMut)>> {
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    loop {
        let n = stream.read_buf(&mut buf).await?;
        let seen = buf.len().min(H2_PREFACE.len());
        let protocol = if buf[..seen] != H2_PREFACE[..seen] {
            Some(Protocol::Http1)
        } else if seen == H2_PREFACE.len() {
            Some(Protocol::Http2)
        } else {
            None
        };
        match (protocol, n) {
            (Some(p), _) => return Ok(Some((p, buf))),
            (None, 0) if buf.is_empty() => return Ok(None),
            // A cut-off preface: HTTP/1's parser rejects it.
            (None, 0) => return Ok(Some((Protocol::Http1, buf))),
            // So far a prefix of the preface: read on.
            (None, _) => {}
        }
    }
}

/// A client connection with the bytes [`sniff`] read put back in front.
pub(crate) struct ClientIo {
    first: Bytes,
    io: TokioIo<TcpStream>,
    /// Whether shutting down for writing reaches the socket. hyper's HTTP/1 does it just
    /// before dropping a finished connection, whose close sends the same FIN: skipping it
    /// saves a syscall per connection. An upgraded connection turns it on again
    /// ([`ClientIo::upgraded`]), so a half-close passes through the tunnel.
    shutdown: bool,
}

impl ClientIo {
    /// The connection hyper hands over after `101 Switching Protocols`, with the bytes
    /// hyper had read past the handshake put back in front.
    pub(crate) fn upgraded(mut self, read: Bytes) -> ClientIo {
        if !read.is_empty() {
            self.first = if self.first.is_empty() {
                read
            } else {
                let mut both = BytesMut::with_capacity(read.len() + self.first.len());
                both.extend_from_slice(&read);
                both.extend_from_slice(&self.first);
                both.freeze()
            };
        }
        self.shutdown = true;
        self
    }
}

impl Read for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.first.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.first.len().min(buf.remaining());
        buf.put_slice(&this.first[..n]);
        this.first.advance(n);
        if this.first.is_empty() {
            // Frees the first read's buffer for the rest of a long-lived connection.
            this.first = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Write for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shutdown {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

//! Keep-alive HTTP/1.1 connections to backends, pooled per worker thread by address.
//! This replaces hyper_util's legacy `Client`, whose general pool (a checkout racing a
//! lazily built connect future, keys by scheme and authority, a boxed response future,
//! a URI rewritten to origin form) took about an eighth of the router's user time per
//! request in `scripts/bench-router`.
//!
//! Two kinds of connection are pooled alike: hyper's client connections (for requests
//! the hyper path serves: HTTP/2 clients, upgrades, chunked uploads) and plain sockets
//! (for the HTTP/1.1 fast path in `h1.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

use crate::forward::UpstreamBody;
use crate::server::ServerConfig;

/// A pooled connection's state, as far as the pool can tell.
pub(crate) trait Reusable: Send + 'static {
    /// Known to be closed: dropped on sight.
    fn is_closed(&self) -> bool;
    /// Able to take a request now (not still streaming a response).
    fn is_ready(&self) -> bool;
}

impl Reusable for SendRequest<UpstreamBody> {
    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }
    fn is_ready(&self) -> bool {
        SendRequest::is_ready(self)
    }
}

/// A socket is only pooled between responses; a backend's close is noticed on use.
impl Reusable for TcpStream {
    fn is_closed(&self) -> bool {
        false
    }
    fn is_ready(&self) -> bool {
        true
    }
}

/// Connections per backend address, most recently used last.
pub(crate) struct Pool<C> {
    conns: Mutex<HashMap<SocketAddr, Vec<Pooled<C>>>>,
    pub(crate) connect_timeout: Duration,
    idle_timeout: Duration,
    max_per_backend: usize,
}

struct Pooled<C> {
    conn: C,
    since: Instant,
}

impl<C: Reusable> Pool<C> {
    /// A pool with the server's limits, and a task on the current runtime that closes
    /// idle connections.
    pub(crate) fn new(config: &ServerConfig) -> Arc<Pool<C>> {
        let pool = Arc::new(Pool {
            conns: Mutex::default(),
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_per_backend: config.upstream_max_idle_per_backend,
        });
        let weak: Weak<Pool<C>> = Arc::downgrade(&pool);
        let every = (pool.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // The pool's owner (the worker's server) is gone: so is the need.
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                pool.sweep();
            }
        });
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Pooled<C>>>> {
        // Nothing panics while holding the lock; recover the map if something ever did.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection to `addr` that can take a request now.
    pub(crate) fn checkout(&self, addr: SocketAddr) -> Option<C> {
        let mut pool = self.lock();
        let conns = pool.get_mut(&addr)?;
        conns.retain(|c| !c.conn.is_closed());
        let i = conns.iter().rposition(|c| c.conn.is_ready())?;
        Some(conns.swap_remove(i).conn)
    }

    /// Beyond the per-backend limit the connection is dropped (closed).
    pub(crate) fn checkin(&self, addr: SocketAddr, conn: C) {
        if conn.is_closed() {
            return;
        }
        let mut pool = self.lock();
        let conns = pool.entry(addr).or_default();
        if conns.len() < self.max_per_backend {
            conns.push(Pooled {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drops closed connections and closes those idle for longer than the idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        let mut pool = self.lock();
        for conns in pool.values_mut() {
            conns.retain(|c| {
                let idle_too_long =
                    c.conn.is_ready() && now.duration_since(c.since) > self.idle_timeout;
                !(c.conn.is_closed() || idle_too_long)
            });
        }
        pool.retain(|_, conns| !conns.is_empty());
    }

    /// A new TCP connection to `addr`, or why there is none.
    pub(crate) async fn connect_tcp(&self, addr: SocketAddr) -> Result<TcpStream, String> {
        let connected = tokio::time::timeout(self.connect_timeout, async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_nodelay(true)?;
            // Notices a backend that vanished while a response streams (at the kernel's
            // keep-alive timing: tokio cannot set the idle time).
            socket.set_keepalive(true)?;
            socket.connect(addr).await
        })
        .await;
        match connected {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("connect: {e}")),
            Err(_) => Err(format!(
                "connect: no answer within {:?}",
                self.connect_timeout
            )),
        }
    }
}

/// hyper's client connections, for the requests the hyper path serves.
pub(crate) struct Upstream {
    pool: Arc<Pool<SendRequest<UpstreamBody>>>,
}

pub(crate) enum UpstreamError {
    /// No connection: nothing was sent, so another endpoint may be tried; the request is
    /// handed back (a copy made up front for that case would cost every request).
    Connect(String, Box<Request<UpstreamBody>>),
    /// Sending the request or waiting for the response failed.
    Request(hyper::Error),
}

impl Upstream {
    pub(crate) fn new(pool: Arc<Pool<SendRequest<UpstreamBody>>>) -> Upstream {
        Upstream { pool }
    }

    /// Sends `req` (origin-form URI) to `addr` over a pooled connection, else a new one.
    /// The connection goes back to the pool as soon as the response headers are in: it
    /// turns ready again when the body has been read, and until then checkouts pass it by.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        while let Some(mut sender) = self.pool.checkout(addr) {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.pool.checkin(addr, sender);
                    return Ok(resp);
                }
                // The backend closed this connection before the request went out (its
                // idle timeout, say): the request is handed back, to go on another.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
        let mut sender = match self.connect(addr).await {
            Ok(sender) => sender,
            Err(why) => return Err(UpstreamError::Connect(why, Box::new(req))),
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Request)?;
        self.pool.checkin(addr, sender);
        Ok(resp)
    }

    /// A new connection, or why there is none.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<UpstreamBody>, String> {
        let stream = self.pool.connect_tcp(addr).await?;
        // One buffer per request, as on the client side (see server.rs).
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }
}

//! Keep-alive HTTP/1.1 connections to backends, pooled per worker thread by address.
//! This replaces hyper_util's legacy `Client`, whose general pool (a checkout racing a
//! lazily built connect future, keys by scheme and authority, a boxed response future,
//! a URI rewritten to origin form) took about an eighth of the router's user time per
//! request in `scripts/bench-router`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::forward::UpstreamBody;

pub(crate) struct Upstream {
    /// Per backend, its connections, idle or with a response still streaming (ready
    /// again once that body is read): most recently used last.
    pool: Mutex<HashMap<SocketAddr, Vec<Pooled>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_per_backend: usize,
}

struct Pooled {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

pub(crate) enum UpstreamError {
    /// No connection: nothing was sent, so another endpoint may be tried; the request is
    /// handed back (a copy made up front for that case would cost every request).
    Connect(String, Box<Request<UpstreamBody>>),
    /// Sending the request or waiting for the response failed.
    Request(hyper::Error),
}

impl Upstream {
    /// A pool, with a task on the current runtime that closes idle connections.
    pub(crate) fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_per_backend: usize,
    ) -> Arc<Upstream> {
        let upstream = Arc::new(Upstream {
            pool: Mutex::default(),
            connect_timeout,
            idle_timeout,
            max_per_backend,
        });
        let weak: Weak<Upstream> = Arc::downgrade(&upstream);
        let every = (idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // The pool's owner (the worker's server) is gone: so is the need.
                let Some(upstream) = weak.upgrade() else {
                    return;
                };
                upstream.sweep();
            }
        });
        upstream
    }

    /// Sends `req` (origin-form URI) to `addr` over a pooled connection, else a new one.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        while let Some(mut sender) = self.checkout(addr) {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin(addr, sender);
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
        self.checkin(addr, sender);
        Ok(resp)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Pooled>>> {
        // Nothing panics while holding the lock; recover the map if something ever did.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection to `addr` that can take a request now.
    fn checkout(&self, addr: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        let mut pool = self.lock();
        let conns = pool.get_mut(&addr)?;
        conns.retain(|c| !c.sender.is_closed());
        let i = conns.iter().rposition(|c| c.sender.is_ready())?;
        Some(conns.swap_remove(i).sender)
    }

    /// Returned as soon as the response headers are in: the connection turns ready
    /// again when the body has been read, and until then checkouts pass it by.
    fn checkin(&self, addr: SocketAddr, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut pool = self.lock();
        let conns = pool.entry(addr).or_default();
        // Beyond the limit the connection closes once its response is done.
        if conns.len() < self.max_per_backend {
            conns.push(Pooled {
                sender,
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
                    c.sender.is_ready() && now.duration_since(c.since) > self.idle_timeout;
                !(c.sender.is_closed() || idle_too_long)
            });
        }
        pool.retain(|_, conns| !conns.is_empty());
    }

    /// A new connection, or why there is none.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<UpstreamBody>, String> {
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
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => {
                return Err(format!(
                    "connect: no answer within {:?}",
                    self.connect_timeout
                ))
            }
        };
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

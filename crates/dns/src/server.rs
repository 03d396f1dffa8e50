//! UDP and TCP transport around the [`Handler`].
//!
//! UDP: a few receive loops share one socket; cluster names are answered inline (no task
//! per packet), outside names are forwarded in a spawned task so a slow upstream never
//! stalls cluster lookups. TCP: one task per connection, length-prefixed messages
//! (RFC 1035 §4.2.2, several per connection), an idle timeout and a connection limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::handler::{Handler, Step, Transport};
use crate::records::Zone;
use crate::DnsError;

/// Receive loops sharing the UDP socket.
const UDP_WORKERS: usize = 2;
/// Upstream queries in flight at once; beyond that new ones wait (backpressure instead of
/// unbounded tasks when an upstream hangs).
const MAX_FORWARDS: usize = 1024;
const MAX_TCP_CONNECTIONS: usize = 512;
/// A TCP client idle this long is disconnected (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct DnsServer {
    handler: Arc<Handler>,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen`. With port 0, UDP picks a free port and TCP takes the
    /// same one (retrying a few times if that TCP port happens to be busy).
    pub async fn bind(listen: SocketAddr, handler: Handler) -> Result<DnsServer, DnsError> {
        let bind_err = |source| DnsError::Bind {
            addr: listen,
            source,
        };
        let mut attempts = 0;
        loop {
            let udp = UdpSocket::bind(listen).await.map_err(bind_err)?;
            let addr = udp.local_addr().map_err(bind_err)?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    return Ok(DnsServer {
                        handler: Arc::new(handler),
                        udp: Arc::new(udp),
                        tcp,
                    })
                }
                Err(e) if listen.port() == 0 && attempts < 10 => {
                    attempts += 1;
                    tracing::debug!("TCP port {} busy ({e}), picking another", addr.port());
                }
                Err(e) => return Err(bind_err(e)),
            }
        }
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp.local_addr().map_err(DnsError::Io)
    }

    /// Swaps in a new zone snapshot; the next query sees it, none waits for it.
    pub fn update(&self, zone: Zone) {
        self.handler.update(Arc::new(zone));
    }

    /// A handle for swapping zones while `run` owns the server.
    pub fn handler(&self) -> Arc<Handler> {
        self.handler.clone()
    }

    /// Serves until an unrecoverable socket error.
    pub async fn run(self) -> Result<(), DnsError> {
        let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..UDP_WORKERS {
            tasks.spawn(udp_loop(
                self.udp.clone(),
                self.handler.clone(),
                forwards.clone(),
            ));
        }
        tasks.spawn(tcp_loop(self.tcp, self.handler.clone()));
        match tasks.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(DnsError::Io(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

async fn udp_loop(
    sock: Arc<UdpSocket>,
    handler: Arc<Handler>,
    forwards: Arc<Semaphore>,
) -> Result<(), DnsError> {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // Transient (e.g. ICMP errors surfacing on Linux); keep serving.
                tracing::debug!("UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        match handler.start(&buf[..n], peer.ip(), Transport::Udp) {
            Step::Reply(bytes) => send_udp(&sock, &bytes, peer).await,
            Step::Drop => {}
            Step::Forward(pending) => {
                let Ok(permit) = forwards.clone().acquire_owned().await else {
                    continue;
                };
                let (sock, handler) = (sock.clone(), handler.clone());
                tokio::spawn(async move {
                    let bytes = handler.finish(pending).await;
                    send_udp(&sock, &bytes, peer).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn send_udp(sock: &UdpSocket, bytes: &[u8], peer: SocketAddr) {
    if bytes.is_empty() {
        return;
    }
    if let Err(e) = sock.send_to(bytes, peer).await {
        tracing::debug!("UDP send to {peer}: {e}");
    }
}

async fn tcp_loop(listener: TcpListener, handler: Arc<Handler>) -> Result<(), DnsError> {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!("TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: close at once rather than queue; the client retries.
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(stream, peer, &handler).await {
                tracing::debug!("TCP {peer}: {e}");
            }
            drop(permit);
        });
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => len,
            // Closed or idle: either way the conversation is over.
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; usize::from(len)];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let Some(reply) = handler.handle(&buf, peer.ip(), Transport::Tcp).await else {
            // Not a query: nothing sensible to say on this stream.
            return Ok(());
        };
        if reply.is_empty() {
            return Ok(());
        }
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

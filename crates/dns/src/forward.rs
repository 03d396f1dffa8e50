//! Forwarding of names outside the cluster to the node's upstream resolvers, through the
//! cache.
//!
//! Each upstream query goes out on a fresh UDP socket with a random ID, so the source port
//! is random too (the usual defence against off-path spoofing), and only a reply carrying
//! the same ID and question is accepted. A truncated UDP reply is retried over TCP.
//!
//! An upstream that fails [`MAX_FAILS`] times in a row is left out for a while (as
//! CoreDNS's `forward` does with `max_fails`), and with every upstream out a query fails
//! at once: with `ndots:5`, a pod's lookup of a cluster name first tries the node's own
//! search domains, and waiting out a dead upstream on each would stall every such lookup.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::cache::Cache;

/// What we advertise to upstream servers: the DNS flag day 2020 size, which avoids IP
/// fragmentation on common paths.
const UPSTREAM_PAYLOAD: u16 = 1232;
/// Consecutive failures after which an upstream is left out.
pub const MAX_FAILS: u32 = 2;
/// How long a failing upstream is left out before a query tries it again.
const DEFAULT_DOWN_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream DNS servers configured")]
    NoUpstreams,
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("upstream {addr} sent an unusable reply: {reason}")]
    BadReply { addr: SocketAddr, reason: String },
    #[error("every upstream failed {MAX_FAILS} times in a row; retrying them in a few seconds")]
    AllDown,
}

/// An upstream's recent record.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
}

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Cache,
    /// Per upstream, in the order of `upstreams`.
    health: Mutex<Vec<Health>>,
    down_for: Duration,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache_capacity: usize) -> Self {
        Forwarder {
            health: Mutex::new(vec![Health::default(); upstreams.len()]),
            upstreams,
            timeout,
            cache: Cache::new(cache_capacity),
            down_for: DEFAULT_DOWN_FOR,
        }
    }

    /// How long an upstream that failed [`MAX_FAILS`] times in a row is left out.
    pub fn with_down_period(mut self, down_for: Duration) -> Self {
        self.down_for = down_for;
        self
    }

    /// Whether upstream `i` may be asked now.
    fn usable(&self, i: usize) -> bool {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health
            .get(i)
            .and_then(|h| h.down_until)
            .is_none_or(|until| Instant::now() >= until)
    }

    fn record(&self, i: usize, ok: bool) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = health.get_mut(i) else {
            return;
        };
        if ok {
            if h.down_until.take().is_some() {
                tracing::info!(upstream = %self.upstreams[i], "upstream DNS server answers again");
            }
            h.failures = 0;
            return;
        }
        h.failures += 1;
        if h.failures >= MAX_FAILS {
            if h.down_until.is_none() {
                tracing::warn!(upstream = %self.upstreams[i], "upstream DNS server failed {} times in a row; leaving it out for {:?}", h.failures, self.down_for);
            }
            h.down_until = Some(Instant::now() + self.down_for);
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Answers currently cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The upstream answer to one question (from the cache when fresh). Upstreams are
    /// tried in order; the first that answers wins.
    pub async fn resolve(&self, query: &Query, over_tcp: bool) -> Result<Message, ForwardError> {
        if let Some(m) = self.cache.get(query) {
            return Ok(m);
        }
        let mut last = if self.upstreams.is_empty() {
            ForwardError::NoUpstreams
        } else {
            ForwardError::AllDown
        };
        for (i, &addr) in self.upstreams.iter().enumerate() {
            if !self.usable(i) {
                continue;
            }
            let result = if over_tcp {
                self.exchange_tcp(addr, query).await
            } else {
                match self.exchange_udp(addr, query).await {
                    Ok(m) if m.metadata.truncation => self.exchange_tcp(addr, query).await,
                    other => other,
                }
            };
            // An upstream that answers, whatever it answers, is healthy; one that does
            // not answer in time or cannot be reached is not. A garbled reply says nothing.
            match &result {
                Ok(_) => self.record(i, true),
                Err(ForwardError::Timeout(_) | ForwardError::Io { .. }) => self.record(i, false),
                Err(_) => {}
            }
            match result {
                Ok(m) => {
                    self.cache.insert(query, &m);
                    return Ok(m);
                }
                Err(e) => {
                    tracing::debug!("forwarding {}: {e}", query.name());
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn request(query: &Query) -> (u16, Vec<u8>) {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_PAYLOAD);
        m.set_edns(edns);
        // A query we built from a parsed question always encodes.
        (m.metadata.id, m.to_vec().unwrap_or_default())
    }

    fn check_reply(
        addr: SocketAddr,
        id: u16,
        query: &Query,
        bytes: &[u8],
    ) -> Result<Option<Message>, ForwardError> {
        let m = Message::from_vec(bytes).map_err(|e| ForwardError::BadReply {
            addr,
            reason: e.to_string(),
        })?;
        let matches = m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
            && m.queries.len() == 1
            && m.queries[0].name() == query.name()
            && m.queries[0].query_type() == query.query_type();
        Ok(matches.then_some(m))
    }

    async fn exchange_udp(&self, addr: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
        let io_err = |source| ForwardError::Io { addr, source };
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local).await.map_err(io_err)?;
        sock.connect(addr).await.map_err(io_err)?;
        let (id, packet) = Forwarder::request(query);
        sock.send(&packet).await.map_err(io_err)?;
        let wait = async {
            let mut buf = vec![0u8; 65535];
            loop {
                let n = sock.recv(&mut buf).await.map_err(io_err)?;
                // Stray or spoofed datagrams are skipped, not fatal.
                if let Ok(Some(m)) = Forwarder::check_reply(addr, id, query, &buf[..n]) {
                    return Ok(m);
                }
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| ForwardError::Timeout(addr))?
    }

    async fn exchange_tcp(&self, addr: SocketAddr, query: &Query) -> Result<Message, ForwardError> {
        let io_err = |source| ForwardError::Io { addr, source };
        let work = async {
            let mut stream = TcpStream::connect(addr).await.map_err(io_err)?;
            let (id, packet) = Forwarder::request(query);
            let mut framed = Vec::with_capacity(packet.len() + 2);
            framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
            framed.extend_from_slice(&packet);
            stream.write_all(&framed).await.map_err(io_err)?;
            let len = stream.read_u16().await.map_err(io_err)?;
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await.map_err(io_err)?;
            Forwarder::check_reply(addr, id, query, &buf)?.ok_or(ForwardError::BadReply {
                addr,
                reason: "reply does not match the question".into(),
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ForwardError::Timeout(addr))?
    }
}

/// The `nameserver` entries of a resolv.conf, on port 53.
pub fn upstreams_from_resolv_conf(path: &Path) -> io::Result<Vec<SocketAddr>> {
    Ok(parse_resolv_conf(&std::fs::read_to_string(path)?))
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // A link-local IPv6 server may carry a `%zone`; we cannot use the zone here.
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver  2001:db8::1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
            ]
        );
    }
}

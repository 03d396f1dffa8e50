//! The server on 127.0.0.1 with a random port, spoken to with raw packets: UDP and TCP,
//! EDNS0 and truncation, forwarding and its cache, access control, malformed input, zone
//! swaps, and a time-bounded fuzz run through the request handler.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use weft_api::core::{Endpoints, Service};
use weft_dns::{DnsConfig, DnsServer, Handler, Transport, Zone, ZoneSettings};

/// A cluster with `web` (ClusterIP) and `big`, a headless Service with `n` ready endpoints.
fn zone_with(n: usize, web_ip: &str) -> Zone {
    let services: Vec<Service> = vec![
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": web_ip, "ports": [{"name": "http", "port": 80}]}}))
        .unwrap(),
        serde_json::from_value(json!({"metadata": {"name": "big", "namespace": "default"},
            "spec": {"clusterIP": "None"}}))
        .unwrap(),
    ];
    let addresses: Vec<_> = (0..n)
        .map(|i| json!({"ip": format!("10.244.{}.{}", i / 250, i % 250 + 2)}))
        .collect();
    let endpoints: Vec<Endpoints> = vec![serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default"},
        "subsets": [{"addresses": addresses}]}))
    .unwrap()];
    Zone::build(&services, &endpoints, &[], &[], &ZoneSettings::default()).unwrap()
}

fn config(upstreams: Vec<SocketAddr>) -> DnsConfig {
    DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams,
        ..Default::default()
    }
}

/// Starts a server; returns its address and the handler for zone swaps.
async fn start(config: DnsConfig, zone: Zone) -> (SocketAddr, Arc<Handler>) {
    let server = DnsServer::bind(config.listen, config.handler(Arc::new(zone)))
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let handler = server.handler();
    tokio::spawn(server.run());
    (addr, handler)
}

fn query(name: &str, t: RecordType, payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(p) = payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m
}

async fn udp_raw(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn udp(server: SocketAddr, m: &Message) -> (Message, usize) {
    let bytes = udp_raw(server, &m.to_vec().unwrap())
        .await
        .expect("a UDP reply");
    let reply = Message::from_vec(&bytes).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    (reply, bytes.len())
}

async fn tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let bytes = m.to_vec().unwrap();
    s.write_u16(bytes.len() as u16).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let len = s.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    let reply = Message::from_vec(&buf).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(A(ip)) => Some(ip),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let (addr, _) = start(config(vec![]), zone_with(3, "10.96.0.20")).await;
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    let (reply, _) = udp(addr, &q).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 96, 0, 20)]);
    let reply = tcp(addr, &q).await;
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 96, 0, 20)]);

    // NXDOMAIN carries the SOA.
    let (reply, _) = udp(
        addr,
        &query("nope.default.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.authorities.len(), 1);
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);

    // SRV brings the target's address along.
    let (reply, _) = udp(
        addr,
        &query(
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
    )
    .await;
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.additionals.len(), 1);
}

#[tokio::test]
async fn truncation_over_udp_full_over_tcp_and_edns() {
    let (addr, _) = start(config(vec![]), zone_with(100, "10.96.0.20")).await;
    let name = "big.default.svc.cluster.local.";

    let (reply, len) = udp(addr, &query(name, RecordType::A, None)).await;
    assert!(
        reply.metadata.truncation,
        "100 A records cannot fit 512 bytes"
    );
    assert!(reply.answers.is_empty());
    assert!(len <= 512);

    let reply = tcp(addr, &query(name, RecordType::A, None)).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(a_records(&reply).len(), 100);

    // A client announcing a bigger buffer gets everything over UDP.
    let (reply, len) = udp(addr, &query(name, RecordType::A, Some(4096))).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(a_records(&reply).len(), 100);
    assert!(len > 512);
    assert_eq!(reply.edns.as_ref().map(|e| e.max_payload()), Some(4096));

    // A small EDNS buffer still truncates (and 512 is the floor).
    let (reply, len) = udp(addr, &query(name, RecordType::A, Some(100))).await;
    assert!(reply.metadata.truncation);
    assert!(len <= 512);
}

/// A fake upstream on UDP and TCP (same port): answers every question with an A record
/// 192.0.2.1 (TTL 60) and counts queries per transport. With `truncate_udp`, UDP replies
/// are empty with TC set, as a real server does when the answer is too big.
struct Upstream {
    addr: SocketAddr,
    udp: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
}

fn upstream_reply(packet: &[u8], truncate: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_available = true;
    r.queries = q.queries.clone();
    if truncate {
        r.metadata.truncation = true;
    } else {
        r.add_answer(Record::from_rdata(
            q.queries.first()?.name().clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    }
    r.to_vec().ok()
}

async fn fake_upstream_with(truncate_udp: bool) -> Upstream {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (udp, tcp) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = udp.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if let Some(r) = upstream_reply(&buf[..n], truncate_udp) {
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = sock.send_to(&r, peer).await;
            }
        }
    });
    let seen = tcp.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let Ok(len) = s.read_u16().await else {
                continue;
            };
            let mut buf = vec![0u8; usize::from(len)];
            if s.read_exact(&mut buf).await.is_err() {
                continue;
            }
            if let Some(r) = upstream_reply(&buf, false) {
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_u16(r.len() as u16).await;
                let _ = s.write_all(&r).await;
            }
        }
    });
    Upstream { addr, udp, tcp }
}

async fn fake_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let u = fake_upstream_with(false).await;
    (u.addr, u.udp)
}

#[tokio::test]
async fn forwards_over_tcp_and_retries_truncated_udp_over_tcp() {
    let up = fake_upstream_with(true).await;
    let (addr, _) = start(config(vec![up.addr]), zone_with(1, "10.96.0.20")).await;
    // UDP client: upstream truncates over UDP, so the server retries over TCP.
    let (reply, _) = udp(addr, &query("big.example.net.", RecordType::A, None)).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(up.udp.load(Ordering::SeqCst), 1);
    assert_eq!(up.tcp.load(Ordering::SeqCst), 1);
    // TCP client: forwarded over TCP directly.
    let reply = tcp(addr, &query("other.example.net.", RecordType::A, None)).await;
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(up.udp.load(Ordering::SeqCst), 1);
    assert_eq!(up.tcp.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn forwards_outside_names_and_caches() {
    let (upstream, count) = fake_upstream().await;
    let (addr, handler) = start(config(vec![upstream]), zone_with(1, "10.96.0.20")).await;
    for _ in 0..3 {
        let (reply, _) = udp(addr, &query("Example.COM.", RecordType::A, None)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(!reply.metadata.authoritative);
        assert!(reply.metadata.recursion_available);
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert!(reply.answers[0].ttl <= 60);
        // The asker's spelling comes back in the question.
        assert_eq!(reply.queries[0].name().to_ascii(), "Example.COM.");
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "cache hits must not reach upstream"
    );
    assert_eq!(handler.forwarder().cached(), 1);
    // Cluster names never reach upstream.
    udp(
        addr,
        &query("web.default.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// An upstream that fails MAX_FAILS times in a row is left out, so queries fail at once
/// instead of each waiting out its timeout; after the down period it is tried again, and
/// one that answers is used first.
#[tokio::test]
async fn silent_upstream_is_left_out_then_retried() {
    // Receives and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(200);
    let forwarder = weft_dns::Forwarder::new(vec![silent_addr], timeout, 16)
        .with_down_period(Duration::from_millis(600));
    let q = Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A);
    for _ in 0..weft_dns::forward::MAX_FAILS {
        let started = std::time::Instant::now();
        let err = forwarder.resolve(&q, false).await.unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");
        assert!(started.elapsed() >= timeout);
    }
    let started = std::time::Instant::now();
    let err = forwarder.resolve(&q, false).await.unwrap_err();
    assert!(
        started.elapsed() < timeout,
        "a left-out upstream is not waited for"
    );
    assert!(err.to_string().contains("every upstream failed"), "{err}");
    // After the down period it is asked again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = std::time::Instant::now();
    forwarder.resolve(&q, false).await.unwrap_err();
    assert!(started.elapsed() >= timeout, "the upstream is tried again");

    // With a live upstream behind it, the dead one costs nothing while left out.
    let (live, count) = fake_upstream().await;
    let forwarder = weft_dns::Forwarder::new(vec![silent_addr, live], timeout, 16);
    for i in 0..4 {
        let name = format!("host{i}.example.org.");
        let q = Query::query(Name::from_ascii(&name).unwrap(), RecordType::A);
        let started = std::time::Instant::now();
        forwarder
            .resolve(&q, false)
            .await
            .expect("the live upstream answers");
        if i >= weft_dns::forward::MAX_FAILS as usize {
            assert!(
                started.elapsed() < timeout,
                "query {i} waited for the dead upstream"
            );
        }
    }
    assert_eq!(count.load(Ordering::SeqCst), 4);
    drop(silent);
}

#[tokio::test]
async fn servfail_without_upstream() {
    // A port nobody listens on: the upstream query fails fast (ICMP) or times out.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (addr, _) = start(config(vec![dead_addr]), zone_with(1, "10.96.0.20")).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = query("example.org.", RecordType::A, None);
    sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("a reply within the upstream timeout")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn refuses_sources_outside_allowed_networks() {
    let (upstream, count) = fake_upstream().await;
    let mut cfg = config(vec![upstream]);
    cfg.allowed = vec!["10.0.0.0/8".parse().unwrap()];
    let (addr, _) = start(cfg, zone_with(1, "10.96.0.20")).await;
    for name in ["web.default.svc.cluster.local.", "example.com."] {
        let (reply, _) = udp(addr, &query(name, RecordType::A, None)).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(reply.answers.is_empty());
        let reply = tcp(addr, &query(name, RecordType::A, None)).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn garbage_gets_formerr_or_nothing_and_the_server_lives_on() {
    let (addr, _) = start(config(vec![]), zone_with(1, "10.96.0.20")).await;
    // Too short for a header: dropped.
    assert!(udp_raw(addr, &[1, 2, 3]).await.is_none());
    // A header claiming a question that is not there: FORMERR with the same ID.
    let mut bad = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[0x3f, 0xff, 0xff]);
    let reply = Message::from_vec(&udp_raw(addr, &bad).await.expect("FORMERR")).unwrap();
    assert_eq!(reply.metadata.id, 0xabcd);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // Two questions: FORMERR too.
    let mut two = query("web.default.svc.cluster.local.", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_ascii("x.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let (reply, _) = udp(addr, &two).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // EDNS version 1: BADVERS (an extended rcode, carried partly in the OPT record).
    let mut v1 = query("web.default.svc.cluster.local.", RecordType::A, Some(1232));
    if let Some(e) = v1.edns.as_mut() {
        e.set_version(1);
    }
    let (reply, _) = udp(addr, &v1).await;
    // 16 is both BADVERS and BADSIG in the IANA registry; hickory decodes it as the latter.
    assert_eq!(u16::from(reply.metadata.response_code), 16);
    assert!(reply.answers.is_empty());
    // A response packet is never answered (no reflection loops).
    let mut resp = query("web.default.svc.cluster.local.", RecordType::A, None);
    resp.metadata.message_type = MessageType::Response;
    assert!(udp_raw(addr, &resp.to_vec().unwrap()).await.is_none());
    // Still serving.
    let (reply, _) = udp(
        addr,
        &query("web.default.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 96, 0, 20)]);
}

#[tokio::test]
async fn zone_swap_is_visible_to_the_next_query() {
    let (addr, handler) = start(config(vec![]), zone_with(1, "10.96.0.20")).await;
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        a_records(&udp(addr, &q).await.0),
        vec![Ipv4Addr::new(10, 96, 0, 20)]
    );
    handler.update(Arc::new(zone_with(1, "10.96.0.99")));
    assert_eq!(
        a_records(&udp(addr, &q).await.0),
        vec![Ipv4Addr::new(10, 96, 0, 99)]
    );
}

#[tokio::test]
async fn serve_takes_zones_from_the_watch_channel() {
    // Reserve a free port, then let `serve` bind it.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut cfg = config(vec![]);
    cfg.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(zone_with(1, "10.96.0.20")));
    let listen = cfg.listen;
    tokio::spawn(weft_dns::serve(cfg, rx));
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    let mut first = None;
    for _ in 0..50 {
        if let Some(b) = udp_raw(listen, &q.to_vec().unwrap()).await {
            first = Some(Message::from_vec(&b).unwrap());
            break;
        }
    }
    assert_eq!(
        a_records(&first.expect("serve answers")),
        vec![Ipv4Addr::new(10, 96, 0, 20)]
    );
    tx.send(Arc::new(zone_with(1, "10.96.0.77"))).unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = a_records(&udp(listen, &q).await.0);
        if seen == vec![Ipv4Addr::new(10, 96, 0, 77)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, vec![Ipv4Addr::new(10, 96, 0, 77)]);
}

/// What a reply looked like, coarsely: the fuzzer keeps an input in its corpus when it
/// produces a shape not seen before, so later mutations start from inputs that reached
/// different paths of the parser and the answer function (a cheap stand-in for coverage
/// feedback, which needs a nightly compiler).
fn reply_shape(packet: &[u8], reply: Option<&[u8]>) -> (u8, u16, u8, usize, usize, bool, bool) {
    let qtype = packet.get(12..).and_then(|rest| {
        let end = rest.iter().position(|b| *b == 0)?;
        rest.get(end + 1..end + 3)
            .map(|t| u16::from_be_bytes([t[0], t[1]]))
    });
    // Types the zone knows stay apart; every other number is one bucket.
    let qtype = qtype.map(|t| match t {
        1 | 2 | 5 | 6 | 12 | 16 | 28 | 33 | 255 => t,
        _ => u16::MAX,
    });
    match reply.and_then(|r| Message::from_vec(r).ok()) {
        Some(m) => (
            m.metadata.response_code.low(),
            qtype.unwrap_or(0),
            m.metadata.op_code.into(),
            m.answers.len().min(8),
            m.authorities.len().min(2),
            m.metadata.truncation,
            m.edns.is_some(),
        ),
        None => (255, qtype.unwrap_or(0), 0, 0, 0, false, false),
    }
}

fn mutate(rng: &mut StdRng, mut p: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..8) {
        match rng.gen_range(0..6) {
            0 if !p.is_empty() => {
                let at = rng.gen_range(0..p.len());
                p[at] = rng.gen();
            }
            1 if !p.is_empty() => {
                let at = rng.gen_range(0..p.len());
                p.truncate(at);
            }
            2 => {
                let extra: Vec<u8> = (0..rng.gen_range(1..40)).map(|_| rng.gen()).collect();
                p.extend(extra);
            }
            3 if p.len() > 12 => {
                // Point a name at itself: compression loops must be caught.
                let at = rng.gen_range(12..p.len());
                p[at] = 0xc0;
                if at + 1 < p.len() {
                    p[at + 1] = rng.gen_range(0..p.len().min(255) as u8);
                }
            }
            4 if p.len() > 12 => {
                // Header counts that lie about what follows.
                let at = rng.gen_range(4..12);
                p[at] = *[0u8, 1, 2, 0xff].get(rng.gen_range(0..4)).unwrap_or(&1);
            }
            5 if p.len() > 14 => {
                // A label length byte that overruns or ends the name early.
                let at = rng.gen_range(12..p.len());
                p[at] = rng.gen_range(0..70);
            }
            _ => {}
        }
    }
    p
}

/// The fuzz target: random and mutated packets through the request handler for a bounded
/// time (`WEFT_DNS_FUZZ_SECONDS`, default 10; CI runs the default), with a corpus grown by
/// reply shape. Checks that nothing panics and every reply is a well-formed response with
/// the request's ID that fits the transport. A failure prints the seed; rerun it with
/// `WEFT_DNS_FUZZ_SEED=<seed>`.
#[tokio::test]
async fn fuzz_handler_never_panics() {
    let seconds: u64 = std::env::var("WEFT_DNS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("WEFT_DNS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz: seed {seed} (WEFT_DNS_FUZZ_SEED), {seconds} s (WEFT_DNS_FUZZ_SECONDS)");
    // No upstreams: outside names fail at once (SERVFAIL) instead of waiting on a network.
    let handler = Handler::new(
        Arc::new(zone_with(20, "10.96.0.20")),
        DnsConfig::default().allowed,
        weft_dns::Forwarder::new(vec![], Duration::from_millis(10), 16),
    );
    let mut corpus: Vec<Vec<u8>> = [
        query("web.default.svc.cluster.local.", RecordType::A, None),
        query("big.default.svc.cluster.local.", RecordType::A, Some(1232)),
        query(
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
        query("20.0.96.10.in-addr.arpa.", RecordType::PTR, None),
        query("10-244-0-2.ns.pod.cluster.local.", RecordType::A, None),
        query("dns-version.cluster.local.", RecordType::TXT, None),
        query("WEB.Default.SVC.cluster.local.", RecordType::AAAA, None),
        query("missing.default.svc.cluster.local.", RecordType::A, None),
        query("example.com.", RecordType::AAAA, Some(4096)),
    ]
    .iter()
    .map(|m| m.to_vec().unwrap())
    .collect();
    let mut shapes = std::collections::HashSet::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut replies) = (0u64, 0u64);
    while runs < 2000 || std::time::Instant::now() < deadline {
        let packet: Vec<u8> = if runs % 8 == 0 {
            let len = rng.gen_range(0..600);
            (0..len).map(|_| rng.gen()).collect()
        } else {
            let parent = corpus[rng.gen_range(0..corpus.len())].clone();
            mutate(&mut rng, parent)
        };
        let transport = if runs % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        runs += 1;
        let reply = handler.handle(&packet, src, transport).await;
        if let Some(reply) = &reply {
            let m = Message::from_vec(reply).unwrap_or_else(|e| {
                panic!("seed {seed}: reply to {packet:02x?} does not parse: {e}")
            });
            assert_eq!(
                m.metadata.message_type,
                MessageType::Response,
                "seed {seed}"
            );
            assert_eq!(&reply[..2], &packet[..2], "seed {seed}: the ID is echoed");
            if transport == Transport::Udp {
                assert!(
                    reply.len() <= 4096,
                    "seed {seed}: UDP reply of {} bytes",
                    reply.len()
                );
            }
            replies += 1;
        }
        if shapes.insert(reply_shape(&packet, reply.as_deref())) && corpus.len() < 4096 {
            corpus.push(packet);
        }
    }
    eprintln!(
        "fuzz: {runs} inputs, {replies} replies, {} reply shapes, corpus {}",
        shapes.len(),
        corpus.len()
    );
    assert!(
        replies > runs / 10,
        "most mutated queries still get an answer"
    );
}

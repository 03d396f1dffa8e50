//! One request in, one response out: access control, parsing, zone or upstream, EDNS0 and
//! truncation. Transport-free, so the UDP and TCP loops stay thin and the fuzz test can
//! drive it directly.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::IpNet;

use crate::forward::Forwarder;
use crate::records::Zone;

/// The largest UDP response we send, and what we advertise in our OPT record. Clients
/// asking for more still get at most this (larger datagrams fragment and get lost).
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// Without EDNS0 a UDP response must fit in 512 bytes (RFC 1035).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the transport should do with a packet after the synchronous part of handling.
pub enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Send nothing (not a DNS query at all, or a response: answering those could make
    /// two servers bounce packets forever).
    Drop,
    /// The name is outside the cluster: ask upstream (slow; the UDP loop spawns it).
    Forward(Box<Pending>),
}

/// A parsed request waiting for the upstream answer.
pub struct Pending {
    request: Message,
    query: Query,
    transport: Transport,
}

pub struct Handler {
    zone: ArcSwap<Zone>,
    allowed: Vec<IpNet>,
    forwarder: Forwarder,
}

impl Handler {
    pub fn new(zone: Arc<Zone>, allowed: Vec<IpNet>, forwarder: Forwarder) -> Handler {
        Handler {
            zone: ArcSwap::new(zone),
            allowed,
            forwarder,
        }
    }

    /// Swaps in a new snapshot; queries in flight keep the one they started with.
    pub fn update(&self, zone: Arc<Zone>) {
        self.zone.store(zone);
    }

    pub fn zone(&self) -> Arc<Zone> {
        self.zone.load_full()
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    fn is_allowed(&self, src: IpAddr) -> bool {
        // A v4 client reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
        let src = src.to_canonical();
        self.allowed.iter().any(|net| net.contains(&src))
    }

    /// Handles one request completely (forwarding included).
    pub async fn handle(
        &self,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        match self.start(packet, src, transport) {
            Step::Reply(bytes) => Some(bytes),
            Step::Drop => None,
            Step::Forward(p) => Some(self.finish(p).await),
        }
    }

    /// Everything that needs no upstream: the answer for cluster names and errors, or the
    /// parsed request to forward.
    pub fn start(&self, packet: &[u8], src: IpAddr, transport: Transport) -> Step {
        let mut decoder = BinDecoder::new(packet);
        let Ok(header) = Header::read(&mut decoder) else {
            return Step::Drop;
        };
        if header.metadata.message_type == MessageType::Response {
            return Step::Drop;
        }
        if !self.is_allowed(src) {
            // Never an open resolver: outsiders get REFUSED and nothing else, not even
            // cluster names.
            return Step::Reply(error_reply(&header, ResponseCode::Refused));
        }
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) => return Step::Reply(error_reply(&header, ResponseCode::FormErr)),
        };
        if request.metadata.op_code != OpCode::Query {
            return Step::Reply(error_reply(&header, ResponseCode::NotImp));
        }
        if request.queries.len() != 1 {
            return Step::Reply(error_reply(&header, ResponseCode::FormErr));
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            let mut resp = response_to(&request);
            resp.metadata.response_code = ResponseCode::BADVERS;
            return Step::Reply(encode(resp, &request, transport));
        }
        let query = request.queries[0].clone();
        let zone = self.zone.load();
        if !zone.is_cluster_name(query.name()) {
            return Step::Forward(Box::new(Pending {
                request,
                query,
                transport,
            }));
        }
        let answer = zone.answer(&query);
        let mut resp = response_to(&request);
        resp.metadata.response_code = answer.rcode;
        resp.metadata.authoritative = answer.authoritative;
        resp.answers = answer.answers;
        resp.authorities = answer.authorities;
        resp.additionals = answer.additionals;
        Step::Reply(encode(resp, &request, transport))
    }

    /// Completes a forwarded request: the upstream's sections under our header, or
    /// SERVFAIL when no upstream answered.
    pub async fn finish(&self, p: Box<Pending>) -> Vec<u8> {
        let mut resp = response_to(&p.request);
        match self
            .forwarder
            .resolve(&p.query, p.transport == Transport::Tcp)
            .await
        {
            Ok(up) => {
                resp.metadata.response_code = up.metadata.response_code;
                resp.metadata.truncation = up.metadata.truncation;
                resp.answers = up.answers;
                resp.authorities = up.authorities;
                resp.additionals = up.additionals;
            }
            Err(e) => {
                tracing::debug!("no upstream answer for {}: {e}", p.query.name());
                resp.metadata.response_code = ResponseCode::ServFail;
            }
        }
        encode(resp, &p.request, p.transport)
    }
}

/// The response skeleton: same ID, question, RD and CD; RA since we forward; an OPT record
/// when the client sent one (RFC 6891 §6.1.1).
fn response_to(request: &Message) -> Message {
    let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.metadata.checking_disabled = request.metadata.checking_disabled;
    resp.metadata.recursion_available = true;
    resp.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        resp.set_edns(edns);
    }
    resp
}

/// Encodes the response within the transport's size limit: over UDP, first drop the
/// additional section (optional data, no TC needed), then everything but the question with
/// TC set so the client retries over TCP.
fn encode(mut resp: Message, request: &Message, transport: Transport) -> Vec<u8> {
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(
            request
                .edns
                .as_ref()
                .map(|e| e.max_payload().clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD))
                .unwrap_or(CLASSIC_UDP_PAYLOAD),
        ),
    };
    if let Some(bytes) = fits(&resp, limit) {
        return bytes;
    }
    resp.additionals.clear();
    if let Some(bytes) = fits(&resp, limit) {
        return bytes;
    }
    resp.answers.clear();
    resp.authorities.clear();
    resp.metadata.truncation = true;
    if let Some(bytes) = fits(&resp, limit) {
        return bytes;
    }
    // Even the bare question does not fit (or does not encode): SERVFAIL, header only.
    let mut bare = Message::error_msg(
        resp.metadata.id,
        resp.metadata.op_code,
        ResponseCode::ServFail,
    );
    bare.metadata.recursion_desired = resp.metadata.recursion_desired;
    bare.to_vec().unwrap_or_default()
}

fn fits(m: &Message, limit: usize) -> Option<Vec<u8>> {
    m.to_vec().ok().filter(|b| b.len() <= limit)
}

/// A header-only error response for a request whose header parsed.
fn error_reply(header: &Header, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::error_msg(header.metadata.id, header.metadata.op_code, rcode);
    m.metadata.recursion_desired = header.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.to_vec().unwrap_or_default()
}

//! IPVS requests and replies as bytes (`linux/ip_vs.h`, "IPVS Generic Netlink interface").
//! Pure functions: the family id and sequence number come from the caller.
//!
//! A request is a generic-netlink message whose command is `IPVS_CMD_*` and whose
//! attributes are `IPVS_CMD_ATTR_SERVICE` (nested `IPVS_SVC_ATTR_*`) and, for destination
//! commands, `IPVS_CMD_ATTR_DEST` (nested `IPVS_DEST_ATTR_*`). Addresses travel as the
//! 16-byte `union nf_inet_addr` (IPv4 in the first 4 bytes), as the kernel dumps them;
//! ports and the netmask in network byte order, everything else in host order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::nl::{self, Attr, Message, MessageWriter, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use super::{
    DecodeError, Destination, Forward, Info, IpvsOp, Protocol, Service, ServiceKey, Stats, AF_INET,
    AF_INET6, SVC_F_HASHED,
};

pub const FAMILY_NAME: &str = "IPVS";
pub const GENL_VERSION: u8 = 1;

pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;
pub const CMD_SET_INFO: u8 = 14;
pub const CMD_GET_INFO: u8 = 15;
pub const CMD_FLUSH: u8 = 17;

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;

const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_STATS: u16 = 10;
const SVC_ATTR_PE_NAME: u16 = 11;
const SVC_ATTR_STATS64: u16 = 12;

const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_PERSIST_CONNS: u16 = 9;
const DEST_ATTR_STATS: u16 = 10;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;

const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;
const STATS_ATTR_CPS: u16 = 6;
const STATS_ATTR_INPPS: u16 = 7;
const STATS_ATTR_OUTPPS: u16 = 8;
const STATS_ATTR_INBPS: u16 = 9;
const STATS_ATTR_OUTBPS: u16 = 10;

const INFO_ATTR_VERSION: u16 = 1;
const INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

fn inet_addr(addr: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// The service-identifying attributes (and with `full`, its settings) inside an open
/// `IPVS_CMD_ATTR_SERVICE` nest.
fn put_service_key(w: &mut MessageWriter<'_>, key: &ServiceKey) {
    w.u16(SVC_ATTR_AF, key.af());
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            w.u16(SVC_ATTR_PROTOCOL, protocol.number())
                .attr(SVC_ATTR_ADDR, &inet_addr(*addr))
                .attr(SVC_ATTR_PORT, &port.to_be_bytes());
        }
        ServiceKey::Fwmark { mark, .. } => {
            w.u32(SVC_ATTR_FWMARK, *mark);
        }
    }
}

fn put_service(w: &mut MessageWriter<'_>, svc: &Service) {
    w.begin_nested(CMD_ATTR_SERVICE);
    put_service_key(w, &svc.key);
    w.string(SVC_ATTR_SCHED_NAME, &svc.scheduler);
    if let Some(pe) = &svc.pe_name {
        w.string(SVC_ATTR_PE_NAME, pe);
    }
    // struct ip_vs_flags { u32 flags; u32 mask; }: the mask says which flags to set;
    // all of them, so the kernel holds exactly `svc.flags`.
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&(svc.flags & !SVC_F_HASHED).to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    w.attr(SVC_ATTR_FLAGS, &flags)
        .u32(SVC_ATTR_TIMEOUT, svc.timeout)
        .attr(SVC_ATTR_NETMASK, &svc.netmask.to_be_bytes());
    w.end_nested();
}

fn put_service_key_only(w: &mut MessageWriter<'_>, key: &ServiceKey) {
    w.begin_nested(CMD_ATTR_SERVICE);
    put_service_key(w, key);
    w.end_nested();
}

fn put_dest(w: &mut MessageWriter<'_>, dest: &Destination, full: bool) {
    w.begin_nested(CMD_ATTR_DEST);
    w.attr(DEST_ATTR_ADDR, &inet_addr(dest.addr))
        .attr(DEST_ATTR_PORT, &dest.port.to_be_bytes());
    // The kernel (4.x+) wants the family when it differs from the service's; always
    // sending it costs 8 bytes and removes the question.
    w.u16(
        DEST_ATTR_ADDR_FAMILY,
        if dest.addr.is_ipv6() {
            AF_INET6
        } else {
            AF_INET
        },
    );
    if full {
        w.u32(DEST_ATTR_FWD_METHOD, dest.forward.number())
            .u32(DEST_ATTR_WEIGHT, dest.weight)
            .u32(DEST_ATTR_U_THRESH, dest.upper_threshold)
            .u32(DEST_ATTR_L_THRESH, dest.lower_threshold);
    }
    w.end_nested();
}

/// Appends the request for `op` to `buf`, asking for an ack.
pub fn encode_op(buf: &mut Vec<u8>, family: u16, seq: u32, op: &IpvsOp) {
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    let cmd = match op {
        IpvsOp::NewService(_) => CMD_NEW_SERVICE,
        IpvsOp::SetService(_) => CMD_SET_SERVICE,
        IpvsOp::DelService(_) => CMD_DEL_SERVICE,
        IpvsOp::NewDest(..) => CMD_NEW_DEST,
        IpvsOp::SetDest(..) => CMD_SET_DEST,
        IpvsOp::DelDest(..) => CMD_DEL_DEST,
        IpvsOp::Flush => CMD_FLUSH,
    };
    let mut w = MessageWriter::new(buf, family, flags, seq, cmd, GENL_VERSION);
    match op {
        IpvsOp::NewService(s) | IpvsOp::SetService(s) => put_service(&mut w, s),
        IpvsOp::DelService(k) => put_service_key_only(&mut w, k),
        IpvsOp::NewDest(k, d) | IpvsOp::SetDest(k, d) => {
            put_service_key_only(&mut w, k);
            put_dest(&mut w, d, true);
        }
        IpvsOp::DelDest(k, d) => {
            put_service_key_only(&mut w, k);
            put_dest(&mut w, &Destination::masq(d.addr, d.port, 0), false);
        }
        IpvsOp::Flush => {}
    }
    w.finish();
}

/// `IPVS_CMD_GET_SERVICE` dump of every service.
pub fn encode_get_services(buf: &mut Vec<u8>, family: u16, seq: u32) {
    let w = MessageWriter::new(
        buf,
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        CMD_GET_SERVICE,
        GENL_VERSION,
    );
    w.finish();
}

/// `IPVS_CMD_GET_DEST` dump of one service's destinations.
pub fn encode_get_dests(buf: &mut Vec<u8>, family: u16, seq: u32, key: &ServiceKey) {
    let mut w = MessageWriter::new(
        buf,
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        CMD_GET_DEST,
        GENL_VERSION,
    );
    put_service_key_only(&mut w, key);
    w.finish();
}

/// `IPVS_CMD_GET_INFO`.
pub fn encode_get_info(buf: &mut Vec<u8>, family: u16, seq: u32) {
    let w = MessageWriter::new(buf, family, NLM_F_REQUEST, seq, CMD_GET_INFO, GENL_VERSION);
    w.finish();
}

fn expect_cmd<'a>(msg: &Message<'a>, want: u8) -> Result<&'a [u8], DecodeError> {
    let (cmd, body) = msg.genl()?;
    if cmd != want {
        return Err(DecodeError::new(format!(
            "ipvs reply: command {cmd}, want {want}"
        )));
    }
    Ok(body)
}

/// The nested attribute `kind` of a reply body.
fn nest<'a>(body: &'a [u8], kind: u16) -> Result<Attr<'a>, DecodeError> {
    for attr in nl::attrs(body) {
        let attr = attr?;
        if attr.kind == kind {
            return Ok(attr);
        }
    }
    Err(DecodeError::new(format!("ipvs reply: no attribute {kind}")))
}

fn decode_addr(attr: &Attr<'_>, af: u16) -> Result<IpAddr, DecodeError> {
    let p = attr.payload;
    match af {
        AF_INET if p.len() >= 4 => Ok(IpAddr::V4(Ipv4Addr::new(p[0], p[1], p[2], p[3]))),
        AF_INET6 if p.len() >= 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&p[..16]);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Err(DecodeError::new(format!(
            "address of {} bytes for family {af}",
            p.len()
        ))),
    }
}

fn decode_stats(attr: &Attr<'_>) -> Result<Stats, DecodeError> {
    let mut s = Stats::default();
    for a in attr.nested() {
        let a = a?;
        let slot = match a.kind {
            STATS_ATTR_CONNS => &mut s.conns,
            STATS_ATTR_INPKTS => &mut s.inpkts,
            STATS_ATTR_OUTPKTS => &mut s.outpkts,
            STATS_ATTR_INBYTES => &mut s.inbytes,
            STATS_ATTR_OUTBYTES => &mut s.outbytes,
            STATS_ATTR_CPS => &mut s.cps,
            STATS_ATTR_INPPS => &mut s.inpps,
            STATS_ATTR_OUTPPS => &mut s.outpps,
            STATS_ATTR_INBPS => &mut s.inbps,
            STATS_ATTR_OUTBPS => &mut s.outbps,
            // IPVS_STATS_ATTR_PAD and anything newer.
            _ => continue,
        };
        *slot = a.uint()?;
    }
    Ok(s)
}

/// One message of a `GET_SERVICE` dump (command `NEW_SERVICE`).
pub fn decode_service(msg: &Message<'_>) -> Result<Service, DecodeError> {
    let body = expect_cmd(msg, CMD_NEW_SERVICE)?;
    let svc = nest(body, CMD_ATTR_SERVICE)?;
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let mut out = Service {
        key: ServiceKey::Fwmark {
            mark: 0,
            ipv6: false,
        },
        scheduler: String::new(),
        flags: 0,
        timeout: 0,
        netmask: 0,
        pe_name: None,
        stats: None,
    };
    let mut stats32 = None;
    for a in svc.nested() {
        let a = a?;
        match a.kind {
            SVC_ATTR_AF => af = Some(a.u16()?),
            SVC_ATTR_PROTOCOL => protocol = Some(Protocol::from_number(a.u16()?)),
            SVC_ATTR_ADDR => addr = Some(a),
            SVC_ATTR_PORT => port = Some(a.be16()?),
            SVC_ATTR_FWMARK => fwmark = Some(a.u32()?),
            SVC_ATTR_SCHED_NAME => out.scheduler = a.string()?,
            SVC_ATTR_FLAGS => {
                let p = a.payload;
                let flags = p
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes)
                    .ok_or_else(|| DecodeError::new("service flags: truncated"))?;
                out.flags = flags & !SVC_F_HASHED;
            }
            SVC_ATTR_TIMEOUT => out.timeout = a.u32()?,
            SVC_ATTR_NETMASK => out.netmask = a.be32()?,
            SVC_ATTR_PE_NAME => out.pe_name = Some(a.string()?).filter(|s| !s.is_empty()),
            SVC_ATTR_STATS64 => out.stats = Some(decode_stats(&a)?),
            SVC_ATTR_STATS => stats32 = Some(decode_stats(&a)?),
            _ => {}
        }
    }
    if out.stats.is_none() {
        out.stats = stats32;
    }
    let af = af.ok_or_else(|| DecodeError::new("service without address family"))?;
    out.key = match (fwmark.filter(|m| *m != 0), protocol, addr, port) {
        (Some(mark), ..) => ServiceKey::Fwmark {
            mark,
            ipv6: af == AF_INET6,
        },
        (None, Some(protocol), Some(addr), Some(port)) => ServiceKey::Addr {
            protocol,
            addr: decode_addr(&addr, af)?,
            port,
        },
        _ => return Err(DecodeError::new("service without fwmark nor address")),
    };
    Ok(out)
}

/// One message of a `GET_DEST` dump (command `NEW_DEST`). `service_af` is the family
/// of the service asked about, used when the kernel does not send the destination's.
pub fn decode_dest(msg: &Message<'_>, service_af: u16) -> Result<Destination, DecodeError> {
    let body = expect_cmd(msg, CMD_NEW_DEST)?;
    let dest = nest(body, CMD_ATTR_DEST)?;
    let mut out = Destination::masq(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0);
    let (mut addr, mut af, mut port) = (None, None, None);
    let mut stats32 = None;
    for a in dest.nested() {
        let a = a?;
        match a.kind {
            DEST_ATTR_ADDR => addr = Some(a),
            DEST_ATTR_PORT => port = Some(a.be16()?),
            DEST_ATTR_FWD_METHOD => out.forward = Forward::from_number(a.u32()?),
            DEST_ATTR_WEIGHT => out.weight = a.u32()?,
            DEST_ATTR_U_THRESH => out.upper_threshold = a.u32()?,
            DEST_ATTR_L_THRESH => out.lower_threshold = a.u32()?,
            DEST_ATTR_ACTIVE_CONNS => out.active_conns = a.u32()?,
            DEST_ATTR_INACT_CONNS => out.inactive_conns = a.u32()?,
            DEST_ATTR_PERSIST_CONNS => out.persist_conns = a.u32()?,
            DEST_ATTR_ADDR_FAMILY => af = Some(a.u16()?),
            DEST_ATTR_STATS64 => out.stats = Some(decode_stats(&a)?),
            DEST_ATTR_STATS => stats32 = Some(decode_stats(&a)?),
            _ => {}
        }
    }
    if out.stats.is_none() {
        out.stats = stats32;
    }
    let addr = addr.ok_or_else(|| DecodeError::new("destination without address"))?;
    out.addr = decode_addr(&addr, af.unwrap_or(service_af))?;
    out.port = port.ok_or_else(|| DecodeError::new("destination without port"))?;
    Ok(out)
}

/// The reply to `GET_INFO` (command `SET_INFO`).
pub fn decode_info(msg: &Message<'_>) -> Result<Info, DecodeError> {
    let body = expect_cmd(msg, CMD_SET_INFO)?;
    let mut info = Info {
        version: 0,
        conn_table_size: 0,
    };
    for a in nl::attrs(body) {
        let a = a?;
        match a.kind {
            INFO_ATTR_VERSION => info.version = a.u32()?,
            INFO_ATTR_CONN_TAB_SIZE => info.conn_table_size = a.u32()?,
            _ => {}
        }
    }
    Ok(info)
}

/// What one received buffer of a dump held.
#[derive(Debug, Default)]
pub struct DumpPart<T> {
    pub items: Vec<T>,
    /// `NLMSG_DONE` seen: the dump is over.
    pub done: bool,
}

/// Decodes the messages of one received buffer of a dump requested with `seq`; an error
/// message (e.g. `ENOENT` for an unknown service) becomes `Err(errno)` on the outer
/// result's `Ok`, so the caller can name the object.
pub fn decode_dump<T>(
    buf: &[u8],
    seq: u32,
    mut item: impl FnMut(&Message<'_>) -> Result<T, DecodeError>,
) -> Result<Result<DumpPart<T>, i32>, DecodeError> {
    let mut part = DumpPart {
        items: Vec::new(),
        done: false,
    };
    for msg in nl::messages(buf) {
        let msg = msg?;
        if msg.seq != seq {
            // A late ack of an earlier conversation: not ours.
            continue;
        }
        match msg.kind {
            nl::NLMSG_DONE => {
                part.done = true;
                break;
            }
            nl::NLMSG_ERROR => {
                let code = msg.error_code()?;
                if code != 0 {
                    return Ok(Err(code));
                }
            }
            nl::NLMSG_NOOP => {}
            nl::NLMSG_OVERRUN => return Err(DecodeError::new("netlink overrun")),
            _ => part.items.push(item(&msg)?),
        }
    }
    Ok(Ok(part))
}

/// The acks in one received buffer for a window of requests numbered from `first_seq`:
/// `(offset in the window, errno)`, errno 0 for success. Messages outside the window
/// (stale acks of an earlier conversation) are skipped.
pub fn decode_acks(
    buf: &[u8],
    first_seq: u32,
    count: usize,
) -> Result<Vec<(usize, i32)>, DecodeError> {
    let mut out = Vec::new();
    for msg in nl::messages(buf) {
        let msg = msg?;
        if msg.kind != nl::NLMSG_ERROR {
            continue;
        }
        let offset = msg.seq.wrapping_sub(first_seq) as usize;
        if offset < count {
            out.push((offset, msg.error_code()?));
        }
    }
    Ok(out)
}

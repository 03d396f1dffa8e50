//! The kernel side: a blocking NETLINK_GENERIC socket speaking the IPVS family.
//!
//! Changes are pipelined: up to [`WINDOW`] requests go out in one `send` (the kernel runs
//! them in order and goes on past a failed one), then their acks are read back and each
//! error is matched to its request by sequence number. ipvsadm opens a socket, resolves
//! the family and waits for an ack per rule; this costs one round trip per window.

use std::path::Path;

use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::codec::{self, FAMILY_NAME};
use super::nl;
use super::{DecodeError, Destination, Info, IpvsOp, OpFailure, Service, ServiceKey};
use crate::error::{NetlinkError, Result};
use crate::netns::run_in_netns;

/// Requests in flight at once. Each ack is a small skb charged to our receive buffer; if
/// the buffer overflows the kernel drops acks (ENOBUFS) and we could no longer say which
/// op failed. 128 acks fit the default 208 KiB buffer with room to spare.
const WINDOW: usize = 128;
/// Enough for the kernel's largest dump skb (32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// A connection to the kernel's IPVS.
pub struct IpvsSocket {
    socket: Socket,
    family: u16,
    seq: u32,
    recv: Vec<u8>,
}

fn object() -> String {
    "ipvs".to_string()
}

fn decode_err(e: DecodeError) -> NetlinkError {
    NetlinkError::protocol(object(), e)
}

impl IpvsSocket {
    /// In the caller's network namespace. Fails with `ENOENT` when the kernel has no IPVS
    /// (module not loaded).
    pub fn open() -> Result<Self> {
        let mut socket =
            Socket::new(NETLINK_GENERIC).map_err(|e| NetlinkError::io(object(), &e))?;
        socket
            .bind_auto()
            .map_err(|e| NetlinkError::io(object(), &e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::io(object(), &e))?;
        // Error acks then carry only the header, not a copy of our request.
        let _ = socket.set_cap_ack(true);
        let mut me = Self {
            socket,
            family: 0,
            seq: 1,
            recv: Vec::with_capacity(RECV_BUF),
        };
        me.family = me.resolve_family()?;
        Ok(me)
    }

    /// Inside the namespace at `ns_path`: the socket is created there and stays there.
    pub fn open_in_netns(ns_path: impl AsRef<Path>) -> Result<Self> {
        run_in_netns(ns_path, Self::open)?
    }

    /// The IPVS generic-netlink family id.
    pub fn family(&self) -> u16 {
        self.family
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, buf: &[u8]) -> Result<()> {
        let n = self
            .socket
            .send(buf, 0)
            .map_err(|e| NetlinkError::io(object(), &e))?;
        if n != buf.len() {
            return Err(NetlinkError::protocol(object(), "short send"));
        }
        Ok(())
    }

    fn receive(&mut self) -> Result<()> {
        self.recv.clear();
        self.socket
            .recv(&mut self.recv, 0)
            .map_err(|e| NetlinkError::io(object(), &e))?;
        Ok(())
    }

    /// Sends one request and decodes the one reply with its sequence number.
    fn request<T>(
        &mut self,
        what: &str,
        encode: impl FnOnce(&mut Vec<u8>, u32),
        decode: impl FnOnce(&nl::Message<'_>) -> std::result::Result<T, DecodeError>,
    ) -> Result<T> {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        encode(&mut buf, seq);
        self.send(&buf)?;
        loop {
            self.receive()?;
            for msg in nl::messages(&self.recv) {
                let msg = msg.map_err(decode_err)?;
                if msg.seq != seq {
                    continue;
                }
                if msg.kind == nl::NLMSG_ERROR {
                    let code = msg.error_code().map_err(decode_err)?;
                    return Err(NetlinkError::os(what, code));
                }
                return decode(&msg).map_err(decode_err);
            }
        }
    }

    fn resolve_family(&mut self) -> Result<u16> {
        self.request(
            "generic netlink family \"IPVS\"",
            |buf, seq| nl::get_family(buf, seq, FAMILY_NAME),
            nl::family_id,
        )
    }

    /// `IPVS_CMD_GET_INFO`.
    pub fn info(&mut self) -> Result<Info> {
        let family = self.family;
        self.request(
            "ipvs info",
            |buf, seq| codec::encode_get_info(buf, family, seq),
            codec::decode_info,
        )
    }

    fn dump<T>(
        &mut self,
        what: &str,
        encode: impl FnOnce(&mut Vec<u8>, u16, u32),
        mut item: impl FnMut(&nl::Message<'_>) -> std::result::Result<T, DecodeError>,
    ) -> Result<Vec<T>> {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        encode(&mut buf, self.family, seq);
        self.send(&buf)?;
        let mut out = Vec::new();
        loop {
            self.receive()?;
            match codec::decode_dump(&self.recv, seq, &mut item).map_err(decode_err)? {
                Err(errno) => return Err(NetlinkError::os(what, errno)),
                Ok(part) => {
                    out.extend(part.items);
                    if part.done {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// Every virtual service.
    pub fn services(&mut self) -> Result<Vec<Service>> {
        self.dump("ipvs services", codec::encode_get_services, |m| {
            codec::decode_service(m)
        })
    }

    /// The destinations of `key`; empty for an unknown service.
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<Destination>> {
        let af = key.af();
        let what = format!("ipvs service {key}");
        self.dump(
            &what,
            |buf, family, seq| codec::encode_get_dests(buf, family, seq, key),
            |m| codec::decode_dest(m, af),
        )
    }

    /// Applies `ops` in order, [`WINDOW`] at a time; returns the refused ones.
    pub fn apply(&mut self, ops: &[IpvsOp]) -> Result<Vec<OpFailure>> {
        let mut failures = Vec::new();
        let mut buf = Vec::with_capacity(WINDOW * 160);
        for (chunk_no, chunk) in ops.chunks(WINDOW).enumerate() {
            buf.clear();
            let first_seq = self.seq.wrapping_add(1);
            for op in chunk {
                let seq = self.next_seq();
                codec::encode_op(&mut buf, self.family, seq, op);
            }
            self.send(&buf)?;
            let mut pending = chunk.len();
            while pending > 0 {
                self.receive()?;
                let acks =
                    codec::decode_acks(&self.recv, first_seq, chunk.len()).map_err(decode_err)?;
                for (offset, code) in acks {
                    pending = pending.saturating_sub(1);
                    if code != 0 {
                        let index = chunk_no * WINDOW + offset;
                        failures.push(OpFailure {
                            index,
                            error: NetlinkError::os(chunk[offset].to_string(), code),
                        });
                    }
                }
            }
        }
        Ok(failures)
    }
}

//! Netlink and generic-netlink framing, as plain bytes: writing requests and splitting
//! received buffers into messages and attributes. Nothing here knows IPVS; nothing here
//! trusts its input (a short or overlong length is an error, never a panic).
//!
//! Layouts (linux/netlink.h, linux/genetlink.h), host byte order:
//! `nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }` (16 bytes),
//! `genlmsghdr { u8 cmd; u8 version; u16 reserved }` (4 bytes),
//! `nlattr { u16 len; u16 type }` then the payload, each padded to 4 bytes.

use super::DecodeError;

pub const NLMSG_HDRLEN: usize = 16;
pub const GENL_HDRLEN: usize = 4;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;

/// The generic-netlink controller (linux/genetlink.h).
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits the kernel may set on a type.
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);
const NLA_F_NESTED: u16 = 0x8000;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one generic-netlink request; several can be appended to one send buffer.
pub struct MessageWriter<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
    nests: Vec<usize>,
}

impl<'a> MessageWriter<'a> {
    /// Starts a message at the end of `buf`: nlmsghdr (length patched in [`Self::finish`])
    /// and genlmsghdr.
    pub fn new(
        buf: &'a mut Vec<u8>,
        family: u16,
        flags: u16,
        seq: u32,
        cmd: u8,
        version: u8,
    ) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&family.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        // pid 0: the kernel.
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[cmd, version, 0, 0]);
        Self {
            buf,
            start,
            nests: Vec::new(),
        }
    }

    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        // Attribute payloads here are at most a few dozen bytes: never near u16::MAX.
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    pub fn u16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A NUL-terminated string, as the kernel's `NLA_NUL_STRING` policies want.
    pub fn string(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut bytes = Vec::with_capacity(s.len() + 1);
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    pub fn begin_nested(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end_nested(&mut self) -> &mut Self {
        if let Some(at) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn pad(&mut self) {
        let padded = align4(self.buf.len());
        self.buf.resize(padded, 0);
    }

    /// Patches the message length.
    pub fn finish(self) {
        let len = u32::try_from(self.buf.len() - self.start).unwrap_or(u32::MAX);
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One received netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// For `NLMSG_ERROR`: the (positive) errno, 0 for an ack.
    pub fn error_code(&self) -> Result<i32, DecodeError> {
        let code = read_i32(self.payload, "nlmsgerr")?;
        Ok(code.checked_neg().unwrap_or(i32::MAX))
    }

    /// For a generic-netlink message: its command and attributes.
    pub fn genl(&self) -> Result<(u8, &'a [u8]), DecodeError> {
        if self.payload.len() < GENL_HDRLEN {
            return Err(DecodeError::new("genlmsghdr: message too short"));
        }
        Ok((self.payload[0], &self.payload[GENL_HDRLEN..]))
    }
}

/// Splits a received buffer into its messages.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, DecodeError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < NLMSG_HDRLEN {
            rest = &[];
            return Some(Err(DecodeError::new("nlmsghdr: truncated")));
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return Some(Err(DecodeError::new(format!(
                "nlmsghdr: length {len} outside 16..={}",
                buf.len()
            ))));
        }
        let msg = Message {
            kind: u16::from_ne_bytes([rest[4], rest[5]]),
            flags: u16::from_ne_bytes([rest[6], rest[7]]),
            seq: u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        rest = &rest[align4(len).min(rest.len())..];
        Some(Ok(msg))
    })
}

/// One attribute: its type (flag bits removed) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u16(&self) -> Result<u16, DecodeError> {
        let b: [u8; 2] = self.fixed()?;
        Ok(u16::from_ne_bytes(b))
    }

    pub fn be16(&self) -> Result<u16, DecodeError> {
        let b: [u8; 2] = self.fixed()?;
        Ok(u16::from_be_bytes(b))
    }

    pub fn u32(&self) -> Result<u32, DecodeError> {
        let b: [u8; 4] = self.fixed()?;
        Ok(u32::from_ne_bytes(b))
    }

    pub fn be32(&self) -> Result<u32, DecodeError> {
        let b: [u8; 4] = self.fixed()?;
        Ok(u32::from_be_bytes(b))
    }

    /// A counter the kernel sends as u32 or u64 depending on the attribute set.
    pub fn uint(&self) -> Result<u64, DecodeError> {
        match self.payload.len() {
            4 => self.u32().map(u64::from),
            8 => {
                let b: [u8; 8] = self.fixed()?;
                Ok(u64::from_ne_bytes(b))
            }
            n => Err(self.bad(format!("{n} bytes for a counter"))),
        }
    }

    /// A string, with or without its NUL.
    pub fn string(&self) -> Result<String, DecodeError> {
        let bytes = match self.payload.iter().position(|b| *b == 0) {
            Some(nul) => &self.payload[..nul],
            None => self.payload,
        };
        String::from_utf8(bytes.to_vec()).map_err(|_| self.bad("string is not UTF-8"))
    }

    pub fn nested(&self) -> impl Iterator<Item = Result<Attr<'a>, DecodeError>> {
        attrs(self.payload)
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], DecodeError> {
        self.payload
            .try_into()
            .map_err(|_| self.bad(format!("{} bytes, want {N}", self.payload.len())))
    }

    fn bad(&self, what: impl std::fmt::Display) -> DecodeError {
        DecodeError::new(format!("attribute {}: {what}", self.kind))
    }
}

/// Splits an attribute area into attributes.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<Attr<'_>, DecodeError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 4 {
            rest = &[];
            return Some(Err(DecodeError::new("nlattr: truncated header")));
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            rest = &[];
            return Some(Err(DecodeError::new(format!(
                "nlattr {kind}: length {len} outside 4..={}",
                buf.len()
            ))));
        }
        let attr = Attr {
            kind,
            payload: &rest[4..len],
        };
        rest = &rest[align4(len).min(rest.len())..];
        Some(Ok(attr))
    })
}

fn read_i32(buf: &[u8], what: &str) -> Result<i32, DecodeError> {
    buf.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| DecodeError::new(format!("{what}: truncated")))
}

/// The `CTRL_CMD_GETFAMILY` request for `name`.
pub fn get_family(buf: &mut Vec<u8>, seq: u32, name: &str) {
    let mut w = MessageWriter::new(buf, GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, 1);
    w.string(CTRL_ATTR_FAMILY_NAME, name);
    w.finish();
}

/// The family id in a `CTRL_CMD_NEWFAMILY` reply.
pub fn family_id(msg: &Message<'_>) -> Result<u16, DecodeError> {
    let (cmd, body) = msg.genl()?;
    if cmd != CTRL_CMD_NEWFAMILY {
        return Err(DecodeError::new(format!(
            "controller reply: command {cmd}, want {CTRL_CMD_NEWFAMILY}"
        )));
    }
    for attr in attrs(body) {
        let attr = attr?;
        if attr.kind == CTRL_ATTR_FAMILY_ID {
            return attr.u16();
        }
    }
    Err(DecodeError::new("controller reply: no family id"))
}

//! MAC addresses as `[u8; 6]`, printed and parsed the way `ip` and `bridge` show them.

use std::fmt::Write;

/// A 48-bit Ethernet address.
pub type Mac = [u8; 6];

/// `02:42:ac:11:00:02`.
pub fn format_mac(mac: &Mac) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses `02:42:ac:11:00:02` (case-insensitive); `None` if it is not six hex octets.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for octet in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 {
            return None;
        }
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A kernel link-layer address attribute as a MAC, if it is one.
pub(crate) fn mac_from_bytes(bytes: &[u8]) -> Option<Mac> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x0f];
        assert_eq!(format_mac(&mac), "02:42:ac:11:00:0f");
        assert_eq!(parse_mac("02:42:AC:11:00:0f"), Some(mac));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:zz",
            "002:42:ac:11:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(mac_from_bytes(&[1, 2, 3]), None);
    }
}

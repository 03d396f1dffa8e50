//! Request and response header rewriting: hop-by-hop headers dropped (RFC 9110 §7.6.1),
//! X-Forwarded-* added as ingress-nginx does.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers meaningful only for one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Whether a field (named in any case) is hop-by-hop ([`HOP_BY_HOP`]).
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// Whether a field (named in any case) is one of the X-Forwarded-* fields the router sets.
pub(crate) fn is_forwarding(name: &str) -> bool {
    [
        X_FORWARDED_FOR,
        X_FORWARDED_HOST,
        X_FORWARDED_PROTO,
        X_FORWARDED_PREFIX,
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// The comma-separated tokens of a field value (`Connection`, `Transfer-Encoding`),
/// trimmed, empty ones left out; none when the value is not UTF-8.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// True for an HTTP/1.1 request asking to switch protocols (`Connection: upgrade` plus an
/// `Upgrade` header), e.g. a WebSocket handshake.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| tokens(v.as_bytes()))
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, including any the `Connection` header names. With
/// `upgrade`, `Upgrade` and `Connection: upgrade` are kept so the handshake reaches the
/// other side.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Runs twice per request. Most messages have a few headers and no hop-by-hop one but
    // `Connection`: one pass over the names finds those present, where a removal per
    // name in HOP_BY_HOP would be eight hash lookups.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| HOP_BY_HOP.contains(k))
        .cloned()
        .collect();
    for v in headers.get_all(header::CONNECTION) {
        for t in tokens(v.as_bytes()) {
            let Ok(n) = HeaderName::from_bytes(t.as_bytes()) else {
                continue;
            };
            let kept = upgrade && n == header::UPGRADE;
            if !kept && !doomed.contains(&n) {
                doomed.push(n);
            }
        }
    }
    for name in &doomed {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Appends the client to X-Forwarded-For and sets X-Forwarded-Host and -Proto (and
/// X-Forwarded-Prefix when a DNS-object route stripped a prefix).
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, host: &str, prefix: Option<&str>) {
    let mut xff = String::with_capacity(64);
    if let Some(prior) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        if !prior.trim().is_empty() {
            xff.push_str(prior);
            xff.push_str(", ");
        }
    }
    let _ = write!(xff, "{client}");
    // From the String's own buffer, not a copy of it.
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(X_FORWARDED_HOST, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match prefix.filter(|p| !p.is_empty()).map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            headers.insert(X_FORWARDED_PREFIX, v);
        }
        _ => {
            headers.remove(X_FORWARDED_PREFIX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!is_upgrade(&h));
        remove_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn upgrade_headers_survive_an_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        h.insert(X_FORWARDED_PREFIX, HeaderValue::from_static("/forged"));
        add_forwarded(
            &mut h,
            "10.0.0.7".parse().unwrap(),
            "shop.example:8080",
            None,
        );
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.9, 10.0.0.7");
        assert_eq!(h[X_FORWARDED_HOST], "shop.example:8080");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert!(!h.contains_key(X_FORWARDED_PREFIX));
        add_forwarded(&mut h, "10.0.0.8".parse().unwrap(), "s", Some("/wear"));
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.9, 10.0.0.7, 10.0.0.8");
        assert_eq!(h[X_FORWARDED_PREFIX], "/wear");
    }
}

//! The route table: host + path → a Service port's backend addresses, built from DNS
//! objects and Ingresses (see [`build`]) and looked up per request.
//!
//! Lookup order for a request's host (lower-cased, port and trailing dot removed):
//! 1. routes for exactly that host (DNS objects and Ingress rules naming it);
//! 2. Ingress rules with a wildcard host (`*.example.com` matches one label);
//! 3. Ingress rules without a host;
//! 4. an Ingress `defaultBackend`.
//!
//! Within one of these, an `Exact` path wins, else the longest prefix on segment
//! boundaries (`/wear` matches `/wear` and `/wear/x`, never `/wearable`).

mod build;
pub mod path;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use build::Sources;

/// Where the router sends a request for a Service port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardMode {
    /// Straight to the ready endpoint addresses, round-robin, over pooled connections.
    /// The default because it measured faster: in `scripts/bench-router` forwarding
    /// through a ClusterIP (DNAT by nftables, as the service proxy does) cost 10-50% of
    /// the requests/s, since every packet of every backend connection is then rewritten
    /// by NAT. It also needs no service proxy on the router's node, and lets
    /// the router retry the next endpoint when one refuses a connection, which the
    /// kernel's per-connection choice behind a ClusterIP cannot.
    #[default]
    Endpoints,
    /// To the Service's ClusterIP:port, leaving the choice of endpoint to the service
    /// proxy (IPVS or nftables). Headless Services have no ClusterIP and are reached
    /// through their endpoints either way.
    ClusterIp,
}

/// What kind of object a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Dns,
    Ingress,
}

/// The object a route came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SourceKind::Dns => "DNS",
            SourceKind::Ingress => "Ingress",
        };
        write!(f, "{kind} {}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathMatch {
    Exact,
    Prefix,
}

/// One host + path rule and where it leads.
#[derive(Debug)]
pub struct Route {
    pub source: SourceRef,
    /// The host as written (`""` for any host, `*.example.com`, or `(default backend)`).
    pub host: String,
    /// The path as written.
    pub path: String,
    pub path_match: PathMatch,
    /// The lookup key: the exact path, or the prefix without trailing slashes.
    pub key: String,
    /// DNS-object routes remove the matched prefix before forwarding.
    pub strip: bool,
    pub backend: Arc<Backend>,
}

/// A Service port and the addresses that serve it.
#[derive(Debug)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    /// The port as referenced: a number or a port name.
    pub port: String,
    /// Where requests go, per the [`ForwardMode`]; empty means 503.
    pub targets: Vec<SocketAddr>,
    /// Ready endpoint addresses with the resolved target port.
    pub endpoints: Vec<SocketAddr>,
    pub cluster_ip: Option<SocketAddr>,
    /// Why the Service port cannot be reached at all (no such Service or port).
    pub unavailable: Option<String>,
    next: AtomicUsize,
}

impl Backend {
    /// `namespace/name:port`, for messages.
    pub fn service_port(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.service, self.port)
    }

    /// Every target once, starting at the next one in round-robin order: the first is
    /// tried, the rest are the retry order.
    pub fn round_robin(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.targets.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.targets[(start + i) % n])
    }
}

/// Two or more objects claim the same host and path; the oldest (then namespace/name)
/// wins, deterministically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub host: String,
    pub path: String,
    pub winner: SourceRef,
    pub losers: Vec<SourceRef>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let losers: Vec<String> = self.losers.iter().map(ToString::to_string).collect();
        write!(
            f,
            "host {:?} path {:?} is claimed by {} (used) and {} (ignored)",
            self.host,
            self.path,
            self.winner,
            losers.join(", ")
        )
    }
}

#[derive(Debug, Default)]
struct PathRoutes {
    exact: HashMap<String, Arc<Route>>,
    prefix: HashMap<String, Arc<Route>>,
}

impl PathRoutes {
    fn find(&self, path: &str) -> Option<&Arc<Route>> {
        if let Some(r) = self.exact.get(path) {
            return Some(r);
        }
        path::prefix_candidates(path).find_map(|c| self.prefix.get(c))
    }

    fn insert(&mut self, route: Arc<Route>) {
        let map = match route.path_match {
            PathMatch::Exact => &mut self.exact,
            PathMatch::Prefix => &mut self.prefix,
        };
        map.insert(route.key.clone(), route);
    }
}

/// A request's route and the path and query to send upstream.
#[derive(Debug, Clone)]
pub struct Matched {
    pub route: Arc<Route>,
    pub upstream_path: String,
}

/// Every route, immutable once built: updates build a new table and swap it in.
#[derive(Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, PathRoutes>,
    /// Keyed by the part after `*.`.
    wildcards: HashMap<String, PathRoutes>,
    any_host: PathRoutes,
    default_backend: Option<Arc<Route>>,
    pub conflicts: Vec<Conflict>,
    /// Objects or parts of objects left out, with the reason.
    pub problems: Vec<String>,
}

/// The host part of a `Host` header or URI authority, lower-cased, without port or
/// trailing dot. `[::1]:8080` → `[::1]`.
pub fn normalize_host(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl RouteTable {
    /// Builds the table; see the module documentation for the rules.
    pub fn build(sources: &Sources<'_>, mode: ForwardMode) -> RouteTable {
        build::build(sources, mode)
    }

    /// The route for a request. `host` must be normalized ([`normalize_host`]); `path`
    /// is the URI path as sent.
    pub fn lookup(&self, host: &str, path: &str, query: Option<&str>) -> Option<Matched> {
        let route = self
            .hosts
            .get(host)
            .and_then(|p| p.find(path))
            .or_else(|| {
                let (_, parent) = host.split_once('.')?;
                self.wildcards.get(parent)?.find(path)
            })
            .or_else(|| self.any_host.find(path))
            .or(self.default_backend.as_ref())?;
        let upstream_path = if route.strip {
            path::strip_prefix(&route.key, path, query)
        } else {
            match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            }
        };
        Some(Matched {
            route: Arc::clone(route),
            upstream_path,
        })
    }

    /// Every route, for logs and tests.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        let tables = self
            .hosts
            .values()
            .chain(self.wildcards.values())
            .chain(std::iter::once(&self.any_host));
        let mut out: Vec<Arc<Route>> = tables
            .flat_map(|t| t.exact.values().chain(t.prefix.values()))
            .chain(self.default_backend.iter())
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.host, &a.key, a.path_match).cmp(&(&b.host, &b.key, b.path_match)));
        out
    }
}

//! Building a [`RouteTable`] from DNS objects, Ingresses, Services and Endpoints.
//!
//! Each rule becomes a claim on (host, path, match kind). Claims on the same key are
//! ordered oldest `creationTimestamp` first (objects without one last), then by
//! namespace/name, then kind and position: the first wins and the rest are reported as a
//! [`Conflict`]. Backends are resolved once per Service port and shared, so routes to the
//! same port share one round-robin position.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use weft_api::core::{Endpoints, Service};
use weft_api::networking::{Ingress, IngressBackend};
use weft_api::weft::Dns;
use weft_api::{IntOrString, ObjectMeta};

use super::path::prefix_key;
use super::{Backend, Conflict, ForwardMode, PathMatch, Route, RouteTable, SourceKind, SourceRef};

/// The objects a table is built from (any namespaces; matched by namespace).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub dnses: &'a [Dns],
    pub ingresses: &'a [Ingress],
    pub services: &'a [Service],
    pub endpoints: &'a [Endpoints],
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostKey {
    Exact(String),
    /// The parent domain of `*.parent`.
    Wildcard(String),
    Any,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum PortRef {
    Number(i32),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
    }
}

/// Sorts claims on one key: oldest first, objects without a timestamp last.
type Age = (bool, String, String, String, SourceKind, usize);

struct Claim {
    age: Age,
    source: SourceRef,
    host: String,
    path: String,
    strip: bool,
    service: String,
    port: PortRef,
}

fn namespace_of(meta: &ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => "default".to_string(),
    }
}

fn age(meta: &ObjectMeta, kind: SourceKind, index: usize) -> Age {
    (
        meta.creation_timestamp.is_none(),
        meta.creation_timestamp.clone().unwrap_or_default(),
        namespace_of(meta),
        meta.name.clone(),
        kind,
        index,
    )
}

type Claims = BTreeMap<(HostKey, PathMatch, String), Vec<Claim>>;

fn host_key(host: &str) -> HostKey {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        HostKey::Any
    } else if let Some(parent) = host.strip_prefix("*.") {
        HostKey::Wildcard(parent.to_string())
    } else {
        HostKey::Exact(host)
    }
}

fn dns_claims(dns: &Dns, claims: &mut Claims, problems: &mut Vec<String>) {
    let source = SourceRef {
        kind: SourceKind::Dns,
        namespace: namespace_of(&dns.metadata),
        name: dns.metadata.name.clone(),
    };
    let host = dns.spec.host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.starts_with("*.") {
        problems.push(format!(
            "{source}: spec.host {:?} must be a host name",
            dns.spec.host
        ));
        return;
    }
    for (i, p) in dns.spec.paths.iter().enumerate() {
        if !p.path.starts_with('/') {
            problems.push(format!(
                "{source}: spec.paths[{i}].path {:?} must start with '/'",
                p.path
            ));
            continue;
        }
        let port = match &p.service.port {
            IntOrString::Int(n) => PortRef::Number(*n),
            IntOrString::String(s) => PortRef::Name(s.clone()),
        };
        let key = (
            HostKey::Exact(host.clone()),
            PathMatch::Prefix,
            prefix_key(&p.path).to_string(),
        );
        claims.entry(key).or_default().push(Claim {
            age: age(&dns.metadata, SourceKind::Dns, i),
            source: source.clone(),
            host: host.clone(),
            path: p.path.clone(),
            strip: true,
            service: p.service.name.clone(),
            port,
        });
    }
}

/// The Service and port of an Ingress backend, or why it cannot be used.
fn ingress_backend(backend: &IngressBackend) -> Result<(String, PortRef), String> {
    let Some(svc) = &backend.service else {
        return Err(
            "has no service backend (resource backends are not supported by weft router)".into(),
        );
    };
    if svc.name.is_empty() {
        return Err("service.name is empty".into());
    }
    let port = match (svc.port.number, svc.port.name.as_str()) {
        (Some(n), "") => PortRef::Number(n),
        (None, name) if !name.is_empty() => PortRef::Name(name.to_string()),
        _ => return Err("service.port needs exactly one of number and name".into()),
    };
    Ok((svc.name.clone(), port))
}

fn ingress_claims(ing: &Ingress, claims: &mut Claims, problems: &mut Vec<String>) {
    let source = SourceRef {
        kind: SourceKind::Ingress,
        namespace: namespace_of(&ing.metadata),
        name: ing.metadata.name.clone(),
    };
    let mut index = 0;
    let mut claim = |key: (HostKey, PathMatch, String),
                     host: &str,
                     path: &str,
                     backend: &IngressBackend,
                     field: &str,
                     problems: &mut Vec<String>| {
        index += 1;
        match ingress_backend(backend) {
            Ok((service, port)) => claims.entry(key).or_default().push(Claim {
                age: age(&ing.metadata, SourceKind::Ingress, index),
                source: source.clone(),
                host: host.to_string(),
                path: path.to_string(),
                strip: false,
                service,
                port,
            }),
            Err(why) => problems.push(format!("{source}: {field} {why}")),
        }
    };
    if let Some(backend) = &ing.spec.default_backend {
        let key = (HostKey::Default, PathMatch::Prefix, String::new());
        claim(
            key,
            "(default backend)",
            "/",
            backend,
            "spec.defaultBackend",
            problems,
        );
    }
    for (i, rule) in ing.spec.rules.iter().enumerate() {
        let Some(http) = &rule.http else { continue };
        let host = host_key(&rule.host);
        for (j, p) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let path = if p.path.is_empty() { "/" } else { &p.path };
            if !path.starts_with('/') {
                problems.push(format!(
                    "{source}: {field}.path {path:?} must start with '/'"
                ));
                continue;
            }
            let (path_match, key) = match p.path_type.as_str() {
                "Exact" => (PathMatch::Exact, path.to_string()),
                // ImplementationSpecific is ours to define: the same as Prefix.
                "Prefix" | "ImplementationSpecific" | "" => {
                    (PathMatch::Prefix, prefix_key(path).to_string())
                }
                other => {
                    problems.push(format!(
                        "{source}: {field}.pathType {other:?} is not Exact, Prefix or ImplementationSpecific"
                    ));
                    continue;
                }
            };
            claim(
                (host.clone(), path_match, key),
                &rule.host.to_ascii_lowercase(),
                path,
                &p.backend,
                &field,
                problems,
            );
        }
    }
}

struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    endpoints: HashMap<(&'a str, &'a str), &'a Endpoints>,
    mode: ForwardMode,
    cache: HashMap<(String, String, PortRef), Arc<Backend>>,
}

fn ns_name(meta: &ObjectMeta) -> (&str, &str) {
    let ns = match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => "default",
    };
    (ns, meta.name.as_str())
}

fn is_tcp(protocol: &str) -> bool {
    protocol.is_empty() || protocol == "TCP"
}

impl<'a> Resolver<'a> {
    fn new(sources: &Sources<'a>, mode: ForwardMode) -> Self {
        Resolver {
            services: sources
                .services
                .iter()
                .map(|s| (ns_name(&s.metadata), s))
                .collect(),
            endpoints: sources
                .endpoints
                .iter()
                .map(|e| (ns_name(&e.metadata), e))
                .collect(),
            mode,
            cache: HashMap::new(),
        }
    }

    fn backend(&mut self, namespace: &str, service: &str, port: &PortRef) -> Arc<Backend> {
        let key = (namespace.to_string(), service.to_string(), port.clone());
        if let Some(b) = self.cache.get(&key) {
            return Arc::clone(b);
        }
        let backend = Arc::new(self.resolve(namespace, service, port));
        self.cache.insert(key, Arc::clone(&backend));
        backend
    }

    fn resolve(&self, namespace: &str, service: &str, port: &PortRef) -> Backend {
        let mut backend = Backend {
            namespace: namespace.to_string(),
            service: service.to_string(),
            port: port.to_string(),
            targets: Vec::new(),
            endpoints: Vec::new(),
            cluster_ip: None,
            unavailable: None,
            next: AtomicUsize::new(0),
        };
        let Some(svc) = self.services.get(&(namespace, service)) else {
            backend.unavailable = Some(format!("Service {namespace}/{service} does not exist"));
            return backend;
        };
        if svc.spec.type_ == "ExternalName" {
            backend.unavailable = Some(format!(
                "Service {namespace}/{service} is ExternalName, which weft router does not forward to"
            ));
            return backend;
        }
        let svc_port = svc.spec.ports.iter().find(|p| {
            is_tcp(&p.protocol)
                && match port {
                    PortRef::Number(n) => p.port == *n,
                    PortRef::Name(name) => p.name == *name,
                }
        });
        let Some(svc_port) = svc_port else {
            backend.unavailable = Some(format!(
                "Service {namespace}/{service} has no TCP port {port}"
            ));
            return backend;
        };
        backend.cluster_ip = svc
            .spec
            .cluster_ip
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| Some(SocketAddr::new(ip, u16::try_from(svc_port.port).ok()?)));
        // Endpoint ports carry the Service port's name: match by it, as kube-proxy does.
        if let Some(ep) = self.endpoints.get(&(namespace, service)) {
            for subset in &ep.subsets {
                let Some(ep_port) = subset
                    .ports
                    .iter()
                    .find(|p| p.name == svc_port.name && is_tcp(&p.protocol))
                else {
                    continue;
                };
                let Ok(number) = u16::try_from(ep_port.port) else {
                    continue;
                };
                for a in &subset.addresses {
                    if let Ok(ip) = a.ip.parse::<IpAddr>() {
                        backend.endpoints.push(SocketAddr::new(ip, number));
                    }
                }
            }
        }
        backend.endpoints.sort();
        backend.endpoints.dedup();
        backend.targets = match (self.mode, backend.cluster_ip) {
            (ForwardMode::ClusterIp, Some(vip)) => vec![vip],
            _ => backend.endpoints.clone(),
        };
        backend
    }
}

pub(super) fn build(sources: &Sources<'_>, mode: ForwardMode) -> RouteTable {
    let mut table = RouteTable::default();
    let mut claims = Claims::new();
    for dns in sources.dnses {
        dns_claims(dns, &mut claims, &mut table.problems);
    }
    for ing in sources.ingresses {
        ingress_claims(ing, &mut claims, &mut table.problems);
    }
    let mut resolver = Resolver::new(sources, mode);
    for ((host_key, path_match, key), mut group) in claims {
        group.sort_by(|a, b| a.age.cmp(&b.age));
        let winner = group.remove(0);
        if !group.is_empty() {
            table.conflicts.push(Conflict {
                host: winner.host.clone(),
                path: winner.path.clone(),
                winner: winner.source.clone(),
                losers: group.into_iter().map(|c| c.source).collect(),
            });
        }
        let backend = resolver.backend(&winner.source.namespace, &winner.service, &winner.port);
        let route = Arc::new(Route {
            source: winner.source,
            host: winner.host,
            path: winner.path,
            path_match,
            key,
            strip: winner.strip,
            backend,
        });
        match host_key {
            HostKey::Exact(h) => table.hosts.entry(h).or_default().insert(route),
            HostKey::Wildcard(p) => table.wildcards.entry(p).or_default().insert(route),
            HostKey::Any => table.any_host.insert(route),
            HostKey::Default => table.default_backend = Some(route),
        }
    }
    table
}

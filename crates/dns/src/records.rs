//! The cluster zone: an immutable snapshot of every record the Kubernetes DNS specification
//! 1.1.0 asks for, built from Services, Endpoints, Pods and DNS objects, and the pure
//! function that answers one question from it. No I/O here, so every row of the spec is a
//! unit test.
//!
//! Records are precomputed into a map keyed by owner name (hickory's `Name` compares and
//! hashes case-insensitively, which gives the spec's case-insensitive matching for free).
//! Only pod names (`a-b-c-d.<ns>.pod.<zone>`) are computed per query: any such name answers,
//! as CoreDNS's `pods insecure` does, so they cannot be enumerated up front.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use weft_api::core::{Endpoints, Pod, Service, ServiceType};
use weft_api::weft::Dns;

/// The version of the Kubernetes DNS specification this zone implements, served as
/// `dns-version.<zone> TXT`.
pub const SPEC_VERSION: &str = "1.1.0";

/// What the zone is built with, besides the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    /// The cluster domain, `cluster.local` by default.
    pub zone: String,
    /// TTL of every record and the SOA minimum (negative-caching TTL), in seconds.
    pub ttl: u32,
    /// The path router's ClusterIP: the address every DNS object's `spec.host` resolves to.
    /// None leaves DNS-object hosts unanswered (forwarded like any outside name).
    pub router_ip: Option<IpAddr>,
}

impl Default for ZoneSettings {
    fn default() -> Self {
        ZoneSettings {
            zone: "cluster.local".into(),
            ttl: 5,
            router_ip: None,
        }
    }
}

/// The outcome of one question: what goes into the response's sections and header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// The AA bit: set for every name the zone owns.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    /// The zone's SOA on NXDOMAIN and NODATA, so resolvers can cache the negative answer.
    pub authorities: Vec<Record>,
    /// A/AAAA of SRV targets, so clients need no second lookup.
    pub additionals: Vec<Record>,
}

impl Answer {
    fn empty(rcode: ResponseCode, authoritative: bool) -> Answer {
        Answer {
            rcode,
            authoritative,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// One immutable snapshot of the cluster's names. Cheap to query from many tasks; replaced
/// wholesale when the objects change.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    ttl: u32,
    soa: Record,
    /// Owner name → its records (every type).
    records: HashMap<Name, Vec<Record>>,
    /// Every name that exists, including empty non-terminals (`svc.<zone>`, `<ns>.svc.<zone>`,
    /// `_tcp.<svc>…`): those get NODATA, not NXDOMAIN.
    names: HashSet<Name>,
    /// `pod.<zone>`, to recognise pod names quickly.
    pod_suffix: Name,
}

/// Why a Zone could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("invalid cluster domain {zone:?}: {reason}")]
    InvalidZone { zone: String, reason: String },
}

impl Zone {
    /// Builds the snapshot. Objects whose names do not make valid DNS names are skipped
    /// (logged), never fatal: one bad object must not take the cluster's DNS down.
    pub fn build(
        services: &[Service],
        endpoints: &[Endpoints],
        pods: &[Pod],
        dnses: &[Dns],
        settings: &ZoneSettings,
    ) -> Result<Zone, ZoneError> {
        let origin = fqdn(&settings.zone).map_err(|reason| ZoneError::InvalidZone {
            zone: settings.zone.clone(),
            reason,
        })?;
        let mut b = Builder::new(origin.clone(), settings.ttl)?;

        b.add(
            b.child("dns-version")?,
            RData::TXT(TXT::new(vec![SPEC_VERSION.to_string()])),
        );
        b.add(origin.clone(), RData::SOA(b.soa_rdata.clone()));

        let endpoints_by_key: HashMap<(&str, &str), &Endpoints> = endpoints
            .iter()
            .map(|e| {
                (
                    (
                        namespace_of(&e.metadata.namespace),
                        e.metadata.name.as_str(),
                    ),
                    e,
                )
            })
            .collect();
        let pods_by_key: HashMap<(&str, &str), &Pod> = pods
            .iter()
            .map(|p| {
                (
                    (
                        namespace_of(&p.metadata.namespace),
                        p.metadata.name.as_str(),
                    ),
                    p,
                )
            })
            .collect();

        for svc in services {
            let ns = namespace_of(&svc.metadata.namespace);
            let eps = endpoints_by_key
                .get(&(ns, svc.metadata.name.as_str()))
                .copied();
            if let Err(e) = b.add_service(svc, eps, &pods_by_key) {
                tracing::warn!(namespace = ns, service = %svc.metadata.name, "skipping service in DNS: {e}");
            }
        }

        if let Some(router_ip) = settings.router_ip {
            for d in dnses {
                match fqdn(&d.spec.host) {
                    Ok(host) if !d.spec.host.is_empty() => b.add(host, ip_rdata(router_ip)),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(dns = %d.metadata.name, host = %d.spec.host, "skipping DNS object: {e}")
                    }
                }
            }
        }

        let pod_suffix = b.child("pod")?;
        // `pod.<zone>` has descendants (any pod name), so it exists.
        b.names.insert(pod_suffix.clone());
        Ok(Zone {
            soa: Record::from_rdata(origin.clone(), settings.ttl, RData::SOA(b.soa_rdata)),
            origin,
            ttl: settings.ttl,
            records: b.records,
            names: b.names,
            pod_suffix,
        })
    }

    /// The cluster domain as an FQDN.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// True for names this server answers itself: everything under the zone, plus the
    /// reverse (PTR) names of cluster IPs and DNS-object hosts. Everything else is
    /// forwarded upstream.
    pub fn is_cluster_name(&self, name: &Name) -> bool {
        self.origin.zone_of(name) || self.names.contains(name)
    }

    /// Answers one question. Pure: the same zone and question always give the same answer.
    pub fn answer(&self, query: &Query) -> Answer {
        let name = query.name();
        if !self.is_cluster_name(name) {
            // Not ours: the server forwards these; answering REFUSED here keeps a caller
            // that skips `is_cluster_name` from inventing an authoritative NXDOMAIN.
            return Answer::empty(ResponseCode::Refused, false);
        }
        if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
            return Answer::empty(ResponseCode::Refused, false);
        }
        let in_zone = self.origin.zone_of(name);
        let qtype = query.query_type();

        let pod;
        let records: &[Record] = match self.records.get(name) {
            Some(r) => r,
            None => match self.pod_record(name) {
                Some(r) => {
                    pod = [r];
                    &pod
                }
                None if self.names.contains(name) || self.is_pod_namespace(name) => &[],
                None => return self.negative(ResponseCode::NXDomain, in_zone),
            },
        };

        let mut answer = Answer::empty(ResponseCode::NoError, true);
        // A CNAME stands for every type at its name (RFC 1034 §3.6.2).
        let matching = records.iter().filter(|r| {
            qtype == RecordType::ANY
                || r.record_type() == qtype
                || r.record_type() == RecordType::CNAME
        });
        for r in matching {
            let mut r = r.clone();
            // Echo the asker's spelling (0x20 case randomisation in some resolvers).
            r.name = name.clone();
            if let RData::SRV(srv) = &r.data {
                self.add_target_addresses(&srv.target, &mut answer.additionals);
            }
            answer.answers.push(r);
        }
        if answer.answers.is_empty() {
            return self.negative(ResponseCode::NoError, in_zone);
        }
        answer
    }

    /// NXDOMAIN or NODATA: with the SOA in authority when the name is under our zone.
    fn negative(&self, rcode: ResponseCode, in_zone: bool) -> Answer {
        let mut a = Answer::empty(rcode, true);
        if in_zone {
            a.authorities.push(self.soa.clone());
        }
        a
    }

    fn add_target_addresses(&self, target: &Name, out: &mut Vec<Record>) {
        if let Some(rs) = self.records.get(target) {
            for r in rs {
                if matches!(r.record_type(), RecordType::A | RecordType::AAAA) && !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
    }

    /// `a-b-c-d.<ns>.pod.<zone>` (or an IPv6 address with dashes) → its address.
    fn pod_record(&self, name: &Name) -> Option<Record> {
        if name.num_labels() != self.pod_suffix.num_labels() + 2 || !self.pod_suffix.zone_of(name) {
            return None;
        }
        let first = name.iter().next()?;
        let label = std::str::from_utf8(first).ok()?;
        let ip = parse_dashed_ip(label)?;
        Some(Record::from_rdata(name.clone(), self.ttl, ip_rdata(ip)))
    }

    /// `<ns>.pod.<zone>`: exists because pod names may live under it.
    fn is_pod_namespace(&self, name: &Name) -> bool {
        name.num_labels() == self.pod_suffix.num_labels() + 1 && self.pod_suffix.zone_of(name)
    }

    /// Number of owner names with records (for logs and benchmarks).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Collects records while building, and the set of existing names with their ancestors.
struct Builder {
    origin: Name,
    ttl: u32,
    soa_rdata: SOA,
    records: HashMap<Name, Vec<Record>>,
    names: HashSet<Name>,
}

impl Builder {
    fn new(origin: Name, ttl: u32) -> Result<Builder, ZoneError> {
        let bad = |reason: String| ZoneError::InvalidZone {
            zone: origin.to_string(),
            reason,
        };
        let mname = fqdn(&format!("ns.dns.{origin}")).map_err(bad)?;
        let rname = fqdn(&format!("hostmaster.{origin}")).map_err(bad)?;
        // A serial that grows with every rebuild; secondaries do not exist, so it only
        // helps humans see that the zone changed.
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        let soa = SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl);
        Ok(Builder {
            origin,
            ttl,
            soa_rdata: soa,
            records: HashMap::new(),
            names: HashSet::new(),
        })
    }

    fn child(&self, relative: &str) -> Result<Name, ZoneError> {
        fqdn(&format!("{relative}.{}", self.origin)).map_err(|reason| ZoneError::InvalidZone {
            zone: self.origin.to_string(),
            reason,
        })
    }

    fn add(&mut self, owner: Name, data: RData) {
        let record = Record::from_rdata(owner.clone(), self.ttl, data);
        let list = self.records.entry(owner.clone()).or_default();
        if !list.contains(&record) {
            list.push(record);
        }
        // Mark the owner and, inside the zone, every ancestor up to the zone as existing.
        // Outside it (PTR names, DNS-object hosts) only the owner is ours: claiming
        // `in-addr.arpa.` or `com.` would stop them being forwarded.
        let mut n = owner;
        while self.names.insert(n.clone()) && n != self.origin && self.origin.zone_of(&n) {
            n = n.base_name();
        }
    }

    fn add_service(
        &mut self,
        svc: &Service,
        eps: Option<&Endpoints>,
        pods: &HashMap<(&str, &str), &Pod>,
    ) -> Result<(), String> {
        let ns = namespace_of(&svc.metadata.namespace);
        // Built label by label: much cheaper than formatting and reparsing whole names, which
        // matters when a 10k-Service zone is rebuilt on every Endpoints change.
        let svc_name = self
            .origin
            .prepend_label("svc")
            .and_then(|n| n.prepend_label(ns))
            .and_then(|n| n.prepend_label(svc.metadata.name.as_str()))
            .map_err(|e| e.to_string())?;

        if svc.service_type() == Some(ServiceType::ExternalName) {
            if svc.spec.external_name.trim_end_matches('.').is_empty() {
                return Err("ExternalName Service without externalName".into());
            }
            let target = fqdn(&svc.spec.external_name)?;
            self.add(svc_name, RData::CNAME(CNAME(target)));
            return Ok(());
        }

        if svc.is_headless() {
            return self.add_headless(svc, &svc_name, ns, eps, pods);
        }

        let mut ips: Vec<IpAddr> = Vec::new();
        for s in std::iter::once(&svc.spec.cluster_ip).chain(&svc.spec.cluster_ips) {
            if let Ok(ip) = s.parse::<IpAddr>() {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        if ips.is_empty() {
            // Not allocated yet: no name until it has an address.
            return Ok(());
        }
        for ip in &ips {
            self.add(svc_name.clone(), ip_rdata(*ip));
            self.add(reverse_name(*ip), RData::PTR(PTR(svc_name.clone())));
        }
        for p in svc.spec.ports.iter().filter(|p| !p.name.is_empty()) {
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            let srv_name = srv_owner(&p.name, &p.protocol, &svc_name)?;
            self.add(
                srv_name,
                RData::SRV(SRV::new(0, 100, port, svc_name.clone())),
            );
        }
        Ok(())
    }

    /// Headless: the ready endpoints themselves, each also under its own hostname.
    fn add_headless(
        &mut self,
        svc: &Service,
        svc_name: &Name,
        ns: &str,
        eps: Option<&Endpoints>,
        pods: &HashMap<(&str, &str), &Pod>,
    ) -> Result<(), String> {
        let Some(eps) = eps else {
            return Ok(());
        };
        for subset in &eps.subsets {
            // The endpoints controller already moves not-ready pods into `addresses` when
            // the Service publishes them, so `addresses` is exactly what DNS should serve.
            for addr in &subset.addresses {
                let Ok(ip) = addr.ip.parse::<IpAddr>() else {
                    continue;
                };
                let hostname = endpoint_hostname(addr, svc, ns, pods, ip);
                let host_name = match svc_name.prepend_label(hostname.as_str()) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%hostname, "skipping endpoint hostname: {e}");
                        continue;
                    }
                };
                self.add(svc_name.clone(), ip_rdata(ip));
                self.add(host_name.clone(), ip_rdata(ip));
                self.add(reverse_name(ip), RData::PTR(PTR(host_name.clone())));
                for p in subset.ports.iter().filter(|p| !p.name.is_empty()) {
                    let Ok(port) = u16::try_from(p.port) else {
                        continue;
                    };
                    let srv_name = srv_owner(&p.name, &p.protocol, svc_name)?;
                    self.add(
                        srv_name,
                        RData::SRV(SRV::new(0, 100, port, host_name.clone())),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The endpoint's DNS label: its `hostname`; else that of the pod it points at when the pod
/// names this Service as its subdomain; else the IP with dashes (as CoreDNS does), which is
/// stable for as long as the endpoint exists.
fn endpoint_hostname(
    addr: &weft_api::core::EndpointAddress,
    svc: &Service,
    ns: &str,
    pods: &HashMap<(&str, &str), &Pod>,
    ip: IpAddr,
) -> String {
    if !addr.hostname.is_empty() {
        return addr.hostname.clone();
    }
    if let Some(r) = &addr.target_ref {
        if r.kind == "Pod" {
            if let Some(pod) = pods.get(&(ns, r.name.as_str())) {
                if !pod.spec.hostname.is_empty() && pod.spec.subdomain == svc.metadata.name {
                    return pod.spec.hostname.clone();
                }
            }
        }
    }
    dashed_ip(ip)
}

fn namespace_of(ns: &Option<String>) -> &str {
    match ns.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => "default",
    }
}

/// `_<port>._<proto>.<svc>…`; protocol defaults to TCP, written in lower case as the spec does.
fn srv_owner(port_name: &str, protocol: &str, svc_name: &Name) -> Result<Name, String> {
    let proto = if protocol.is_empty() {
        "tcp".to_string()
    } else {
        protocol.to_ascii_lowercase()
    };
    svc_name
        .prepend_label(format!("_{proto}").as_str())
        .and_then(|n| n.prepend_label(format!("_{port_name}").as_str()))
        .map_err(|e| e.to_string())
}

/// Parses a name as absolute (a trailing dot is optional).
fn fqdn(s: &str) -> Result<Name, String> {
    let s = s.trim_end_matches('.');
    if s.is_empty() {
        return Ok(Name::root());
    }
    Name::from_ascii(format!("{s}.")).map_err(|e| e.to_string())
}

fn ip_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// `10.96.0.10` → `10.0.96.10.in-addr.arpa.`; IPv6 → nibbles under `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> Name {
    let s = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    };
    // Built from digits and dots only, so it always parses.
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// `10.244.1.5` → `10-244-1-5`; `fd00::1` → `fd00--1`.
fn dashed_ip(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The inverse of [`dashed_ip`], for pod names.
fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.bytes().filter(|&b| b == b'-').count() == 3 {
        if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests;

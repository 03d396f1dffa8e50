use serde_json::{json, Value};
use weft_api::core::{Endpoints, Service};
use weft_api::networking::Ingress;
use weft_api::weft::Dns;

use super::*;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object decodes")
}

fn service(name: &str, ip: &str, ports: Value) -> Service {
    obj(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": ports}}))
}

fn endpoints(name: &str, ips: &[&str], ports: Value) -> Endpoints {
    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    obj(json!({"metadata": {"name": name, "namespace": "default"},
        "subsets": [{"addresses": addresses, "ports": ports,
                     "notReadyAddresses": [{"ip": "10.244.9.9"}]}]}))
}

fn dns(name: &str, created: &str, host: &str, paths: Value) -> Dns {
    obj(
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"host": host, "paths": paths}}),
    )
}

fn ingress(name: &str, created: &str, spec: Value) -> Ingress {
    obj(
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": spec}),
    )
}

struct World {
    dnses: Vec<Dns>,
    ingresses: Vec<Ingress>,
    services: Vec<Service>,
    endpoints: Vec<Endpoints>,
}

impl World {
    fn new() -> World {
        World {
            dnses: vec![],
            ingresses: vec![],
            services: vec![
                service(
                    "wear",
                    "10.96.0.20",
                    json!([{"name": "http", "port": 80, "targetPort": "web"}]),
                ),
                service("watch", "10.96.0.21", json!([{"port": 8080}])),
            ],
            endpoints: vec![
                endpoints(
                    "wear",
                    &["10.244.1.2", "10.244.2.2"],
                    json!([{"name": "http", "port": 9000}]),
                ),
                endpoints("watch", &["10.244.1.3"], json!([{"port": 8080}])),
            ],
        }
    }

    fn table(&self, mode: ForwardMode) -> RouteTable {
        RouteTable::build(
            &Sources {
                dnses: &self.dnses,
                ingresses: &self.ingresses,
                services: &self.services,
                endpoints: &self.endpoints,
            },
            mode,
        )
    }
}

fn target(t: &RouteTable, host: &str, path: &str) -> Option<(String, String)> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    t.lookup(&normalize_host(host), path, query)
        .map(|m| (m.route.backend.service.clone(), m.upstream_path))
}

fn some(svc: &str, path: &str) -> Option<(String, String)> {
    Some((svc.to_string(), path.to_string()))
}

fn shop() -> World {
    let mut w = World::new();
    w.dnses.push(dns(
        "shop",
        "2026-01-01T00:00:00Z",
        "shop.example.com",
        json!([{"path": "/wear", "service": {"name": "wear", "port": 80}},
               {"path": "/watch", "service": {"name": "watch", "port": 8080}}]),
    ));
    w
}

#[test]
fn dns_object_routes_by_segment_prefix_and_strips_it() {
    let t = shop().table(ForwardMode::Endpoints);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(
        target(&t, "shop.example.com", "/wear/a?q=1"),
        some("wear", "/a?q=1")
    );
    assert_eq!(target(&t, "shop.example.com", "/wear"), some("wear", "/"));
    assert_eq!(target(&t, "shop.example.com", "/wear/"), some("wear", "/"));
    assert_eq!(
        target(&t, "shop.example.com", "/watch/x/y"),
        some("watch", "/x/y")
    );
    assert_eq!(target(&t, "shop.example.com", "/wearable"), None);
    assert_eq!(target(&t, "shop.example.com", "/"), None);
    assert_eq!(target(&t, "other.example.com", "/wear"), None);
}

#[test]
fn host_is_case_insensitive_and_port_is_ignored() {
    let t = shop().table(ForwardMode::Endpoints);
    assert_eq!(
        target(&t, "SHOP.Example.COM:8080", "/wear"),
        some("wear", "/")
    );
    assert_eq!(
        target(&t, "shop.example.com.", "/watch"),
        some("watch", "/")
    );
    assert_eq!(normalize_host("[::1]:80"), "[::1]");
}

#[test]
fn longest_prefix_wins() {
    let mut w = shop();
    w.dnses.push(dns(
        "deep",
        "2026-01-02T00:00:00Z",
        "shop.example.com",
        json!([{"path": "/wear/kids/", "service": {"name": "watch", "port": 8080}},
               {"path": "/", "service": {"name": "wear", "port": "http"}}]),
    ));
    let t = w.table(ForwardMode::Endpoints);
    assert_eq!(
        target(&t, "shop.example.com", "/wear/kids/shoes"),
        some("watch", "/shoes")
    );
    assert_eq!(
        target(&t, "shop.example.com", "/wear/kidsx"),
        some("wear", "/kidsx")
    );
    assert_eq!(
        target(&t, "shop.example.com", "/elsewhere"),
        some("wear", "/elsewhere")
    );
    assert!(t.conflicts.is_empty());
}

#[test]
fn backends_use_ready_endpoints_with_port_resolved_by_name_or_the_cluster_ip() {
    let t = shop().table(ForwardMode::Endpoints);
    let m = t.lookup("shop.example.com", "/wear", None).unwrap();
    let b = &m.route.backend;
    let want: Vec<SocketAddr> = vec![
        "10.244.1.2:9000".parse().unwrap(),
        "10.244.2.2:9000".parse().unwrap(),
    ];
    assert_eq!(
        b.endpoints, want,
        "ready addresses only, target port from Endpoints"
    );
    assert_eq!(b.targets, want);
    assert_eq!(b.cluster_ip, Some("10.96.0.20:80".parse().unwrap()));
    // Round robin visits each target once per cycle, starting one further each time.
    let first: Vec<SocketAddr> = b.round_robin().collect();
    let second: Vec<SocketAddr> = b.round_robin().collect();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], second[1]);
    assert_ne!(first[0], second[0]);

    let t = shop().table(ForwardMode::ClusterIp);
    let m = t.lookup("shop.example.com", "/wear", None).unwrap();
    assert_eq!(
        m.route.backend.targets,
        vec!["10.96.0.20:80".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn missing_service_port_or_endpoints_leave_no_targets_with_a_reason() {
    let mut w = World::new();
    w.dnses.push(dns(
        "d",
        "2026-01-01T00:00:00Z",
        "h.example",
        json!([{"path": "/gone", "service": {"name": "nope", "port": 80}},
               {"path": "/badport", "service": {"name": "wear", "port": 81}},
               {"path": "/noeps", "service": {"name": "lonely", "port": 80}}]),
    ));
    w.services
        .push(service("lonely", "10.96.0.30", json!([{"port": 80}])));
    let t = w.table(ForwardMode::Endpoints);
    let reason = |p: &str| {
        t.lookup("h.example", p, None)
            .unwrap()
            .route
            .backend
            .unavailable
            .clone()
    };
    assert_eq!(
        reason("/gone").as_deref(),
        Some("Service default/nope does not exist")
    );
    assert_eq!(
        reason("/badport").as_deref(),
        Some("Service default/wear has no TCP port 81")
    );
    assert_eq!(reason("/noeps"), None);
    assert!(t
        .lookup("h.example", "/noeps", None)
        .unwrap()
        .route
        .backend
        .targets
        .is_empty());
}

#[test]
fn ingress_exact_prefix_hostless_wildcard_and_default_backend() {
    let mut w = World::new();
    w.ingresses.push(ingress(
        "ing",
        "2026-01-01T00:00:00Z",
        json!({
            "defaultBackend": {"service": {"name": "watch", "port": {"number": 8080}}},
            "rules": [
                {"host": "Api.Example.com", "http": {"paths": [
                    {"path": "/v1", "pathType": "Exact", "backend": {"service": {"name": "wear", "port": {"name": "http"}}}},
                    {"path": "/v1/", "pathType": "Prefix", "backend": {"service": {"name": "watch", "port": {"number": 8080}}}}
                ]}},
                {"host": "*.wild.example", "http": {"paths": [
                    {"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "wear", "port": {"number": 80}}}}
                ]}},
                {"http": {"paths": [
                    {"path": "/any", "pathType": "Prefix", "backend": {"service": {"name": "wear", "port": {"number": 80}}}}
                ]}}
            ]
        }),
    ));
    let t = w.table(ForwardMode::Endpoints);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    // Exact beats an equally long prefix; Ingress never strips.
    assert_eq!(target(&t, "api.example.com", "/v1"), some("wear", "/v1"));
    assert_eq!(
        target(&t, "api.example.com", "/v1/x?y=1"),
        some("watch", "/v1/x?y=1")
    );
    // Exact /v1 does not match /v1/; the prefix /v1/ does (Kubernetes' table).
    assert_eq!(target(&t, "api.example.com", "/v1/"), some("watch", "/v1/"));
    assert_eq!(target(&t, "a.wild.example", "/z"), some("wear", "/z"));
    // A wildcard matches exactly one label.
    assert_eq!(target(&t, "a.b.wild.example", "/z"), some("watch", "/z"));
    assert_eq!(
        target(&t, "whatever", "/any/thing"),
        some("wear", "/any/thing")
    );
    assert_eq!(target(&t, "api.example.com", "/any"), some("wear", "/any"));
    // Nothing else matches: the default backend.
    assert_eq!(
        target(&t, "whatever", "/nothing"),
        some("watch", "/nothing")
    );
}

#[test]
fn conflicts_pick_the_oldest_then_namespace_and_name_and_are_reported() {
    let mut w = World::new();
    let paths = |svc: &str| json!([{"path": "/p", "service": {"name": svc, "port": "http"}}]);
    w.services.push(service(
        "other",
        "10.96.0.40",
        json!([{"name": "http", "port": 80}]),
    ));
    w.dnses.push(dns(
        "b-new",
        "2026-03-01T00:00:00Z",
        "h.example",
        paths("other"),
    ));
    w.dnses.push(dns(
        "z-old",
        "2026-01-01T00:00:00Z",
        "h.example",
        paths("wear"),
    ));
    w.dnses.push(dns(
        "a-old",
        "2026-01-01T00:00:00Z",
        "h.example",
        paths("other"),
    ));
    w.ingresses.push(ingress(
        "ing",
        "2025-12-01T00:00:00Z",
        json!({"rules": [{"host": "h.example", "http": {"paths": [
            {"path": "/p", "pathType": "Exact", "backend": {"service": {"name": "watch", "port": {"number": 8080}}}}]}}]}),
    ));
    let t = w.table(ForwardMode::Endpoints);
    // Same timestamp: namespace/name decides, so a-old beats z-old; both beat b-new.
    assert_eq!(target(&t, "h.example", "/p/x"), some("other", "/x"));
    // The Exact Ingress path is a different claim and wins for exactly /p.
    assert_eq!(target(&t, "h.example", "/p"), some("watch", "/p"));
    assert_eq!(t.conflicts.len(), 1, "{:?}", t.conflicts);
    let c = &t.conflicts[0];
    assert_eq!(c.winner.name, "a-old");
    let losers: Vec<&str> = c.losers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(losers, ["z-old", "b-new"]);
    assert!(c.to_string().contains("DNS default/a-old (used)"), "{c}");

    // Input order does not matter.
    w.dnses.reverse();
    let again = w.table(ForwardMode::Endpoints);
    assert_eq!(again.conflicts, t.conflicts);
}

#[test]
fn bad_rules_are_reported_and_skipped() {
    let mut w = World::new();
    w.ingresses.push(ingress(
        "bad",
        "2026-01-01T00:00:00Z",
        json!({"rules": [{"host": "h", "http": {"paths": [
            {"path": "/a", "pathType": "Regex", "backend": {"service": {"name": "wear", "port": {"number": 80}}}},
            {"path": "/b", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "x"}}},
            {"path": "/c", "pathType": "Prefix", "backend": {"service": {"name": "wear", "port": {}}}}
        ]}}]}),
    ));
    let t = w.table(ForwardMode::Endpoints);
    assert_eq!(t.problems.len(), 3, "{:?}", t.problems);
    assert!(
        t.problems[0].contains("pathType \"Regex\""),
        "{}",
        t.problems[0]
    );
    assert!(
        t.problems[1].contains("resource backends"),
        "{}",
        t.problems[1]
    );
    assert!(
        t.problems[2].contains("exactly one of number and name"),
        "{}",
        t.problems[2]
    );
    assert!(t.routes().is_empty());
}

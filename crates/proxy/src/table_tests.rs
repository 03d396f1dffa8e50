use weft_api::core::{
    ClientIpConfig, EndpointAddress, EndpointPort, EndpointSubset, ServicePort,
    SessionAffinityConfig,
};

use super::*;

pub(crate) fn svc(name: &str, ip: &str, ports: &[(&str, i32)]) -> Service {
    let mut s = Service::default();
    s.metadata.name = name.into();
    s.metadata.namespace = Some("default".into());
    s.spec.cluster_ip = ip.into();
    s.spec.ports = ports
        .iter()
        .map(|(n, p)| ServicePort {
            name: (*n).into(),
            protocol: "TCP".into(),
            port: *p,
            ..Default::default()
        })
        .collect();
    s
}

/// Endpoints with one subset: `(ip, node)` addresses serving `(port name, port)`s.
pub(crate) fn eps(name: &str, addrs: &[(&str, &str)], ports: &[(&str, i32)]) -> Endpoints {
    let mut e = Endpoints::default();
    e.metadata.name = name.into();
    e.metadata.namespace = Some("default".into());
    e.subsets.push(EndpointSubset {
        addresses: addrs
            .iter()
            .map(|(ip, node)| EndpointAddress {
                ip: (*ip).into(),
                node_name: Some((*node).into()),
                ..Default::default()
            })
            .collect(),
        not_ready_addresses: vec![EndpointAddress {
            ip: "10.244.9.9".into(),
            ..Default::default()
        }],
        ports: ports
            .iter()
            .map(|(n, p)| EndpointPort {
                name: (*n).into(),
                port: *p,
                protocol: "TCP".into(),
                ..Default::default()
            })
            .collect(),
    });
    e
}

fn node() -> NodeContext {
    NodeContext {
        node_name: "node-1".into(),
        addresses: vec![
            "192.168.56.11".parse().unwrap(),
            "10.0.2.15".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        ],
        nodeport_addresses: Vec::new(),
    }
}

fn key(name: &str, port: &str) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: name.into(),
        port: port.into(),
        protocol: Protocol::Tcp,
    }
}

fn ep(ip: &str, port: u16, local: bool) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
        local,
    }
}

#[test]
fn cluster_ip_ports_resolve_endpoint_ports_by_name() {
    let s = svc("web", "10.96.0.20", &[("http", 80), ("metrics", 9090)]);
    let e = eps(
        "web",
        &[("10.244.1.3", "node-1"), ("10.244.2.4", "node-2")],
        &[("metrics", 9100), ("http", 8080)],
    );
    let t = ServiceTable::build(&[s], &[e], &node());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.services.len(), 2);
    let http = &t.services[&key("web", "http")];
    assert_eq!(http.cluster_ip, "10.96.0.20".parse::<Ipv4Addr>().unwrap());
    assert_eq!((http.port, http.protocol), (80, Protocol::Tcp));
    assert_eq!(http.scheduler, "rr");
    assert_eq!(http.affinity_timeout, None);
    assert_eq!(
        http.cluster_endpoints,
        vec![ep("10.244.1.3", 8080, true), ep("10.244.2.4", 8080, false)]
    );
    assert_eq!(http.node_port, None);
    assert!(http.node_port_endpoints.is_empty());
    let metrics = &t.services[&key("web", "metrics")];
    assert_eq!(metrics.cluster_endpoints[0].port, 9100);
    assert_eq!(key("web", "").to_string(), "default/web/tcp/_");
}

#[test]
fn missing_endpoints_give_a_service_without_backends() {
    let t = ServiceTable::build(&[svc("web", "10.96.0.20", &[("", 80)])], &[], &node());
    assert!(t.services[&key("web", "")].cluster_endpoints.is_empty());
}

#[test]
fn headless_external_name_and_unallocated_produce_nothing() {
    let headless = svc("h", "None", &[("", 80)]);
    let mut ext = svc("x", "", &[]);
    ext.spec.type_ = "ExternalName".into();
    ext.spec.external_name = "example.com".into();
    let pending = svc("p", "", &[("", 80)]);
    let e = eps("h", &[("10.244.1.3", "node-1")], &[("", 80)]);
    let t = ServiceTable::build(&[headless, ext, pending], &[e], &node());
    assert!(t.services.is_empty());
    assert!(t.problems.is_empty());
}

#[test]
fn unmatched_endpoint_port_is_a_problem_and_only_that_service_is_skipped() {
    let bad = svc("bad", "10.96.0.21", &[("http", 80)]);
    let good = svc("good", "10.96.0.22", &[("http", 80)]);
    let t = ServiceTable::build(
        &[bad, good],
        &[
            eps("bad", &[("10.244.1.3", "node-1")], &[("htp", 8080)]),
            eps("good", &[("10.244.1.4", "node-1")], &[("http", 8080)]),
        ],
        &node(),
    );
    assert_eq!(t.problems.len(), 1);
    assert_eq!(t.problems[0].service, "default/bad");
    assert!(
        t.problems[0].message.contains("\"htp\""),
        "{:?}",
        t.problems
    );
    assert_eq!(
        t.services.keys().cloned().collect::<Vec<_>>(),
        vec![key("good", "http")]
    );
}

#[test]
fn scheduler_annotation_and_unknown_scheduler() {
    let mut s = svc("web", "10.96.0.20", &[("", 80)]);
    s.metadata
        .annotations
        .insert(SCHEDULER_ANNOTATION.into(), "sh".into());
    let mut bad = svc("odd", "10.96.0.21", &[("", 80)]);
    bad.metadata
        .annotations
        .insert(SCHEDULER_ANNOTATION.into(), "fastest".into());
    let t = ServiceTable::build(&[s, bad], &[], &node());
    assert_eq!(t.services[&key("web", "")].scheduler, "sh");
    assert_eq!(t.problems.len(), 1);
    assert!(t.problems[0].message.contains("fastest"));
}

#[test]
fn client_ip_affinity_with_default_and_given_timeout() {
    let mut a = svc("a", "10.96.0.20", &[("", 80)]);
    a.spec.session_affinity = "ClientIP".into();
    let mut b = svc("b", "10.96.0.21", &[("", 80)]);
    b.spec.session_affinity = "ClientIP".into();
    b.spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIpConfig {
            timeout_seconds: Some(60),
        }),
    });
    let mut c = svc("c", "10.96.0.22", &[("", 80)]);
    c.spec.session_affinity = "None".into();
    let t = ServiceTable::build(&[a, b, c], &[], &node());
    assert_eq!(t.services[&key("a", "")].affinity_timeout, Some(10800));
    assert_eq!(t.services[&key("b", "")].affinity_timeout, Some(60));
    assert_eq!(t.services[&key("c", "")].affinity_timeout, None);
}

fn node_port_svc(policy: &str) -> Service {
    let mut s = svc("np", "10.96.0.30", &[("http", 80)]);
    s.spec.type_ = "NodePort".into();
    s.spec.ports[0].node_port = Some(30080);
    s.spec.external_traffic_policy = policy.into();
    s
}

fn two_nodes() -> Endpoints {
    eps(
        "np",
        &[("10.244.1.3", "node-1"), ("10.244.2.4", "node-2")],
        &[("http", 8080)],
    )
}

#[test]
fn node_ports_on_ipv4_node_addresses_with_cluster_policy() {
    let t = ServiceTable::build(&[node_port_svc("Cluster")], &[two_nodes()], &node());
    assert_eq!(
        t.node_addresses,
        vec![
            "10.0.2.15".parse::<Ipv4Addr>().unwrap(),
            "192.168.56.11".parse().unwrap()
        ]
    );
    let vs = &t.services[&key("np", "http")];
    assert_eq!(vs.node_port, Some(30080));
    assert!(!vs.external_local);
    assert_eq!(vs.node_port_endpoints.len(), 2);
    assert_eq!(vs.cluster_endpoints.len(), 2);
}

#[test]
fn nodeport_addresses_restrict_where_node_ports_answer() {
    let mut n = node();
    n.nodeport_addresses = vec!["192.168.56.0/24".parse().unwrap()];
    let t = ServiceTable::build(&[node_port_svc("Cluster")], &[two_nodes()], &n);
    assert_eq!(
        t.node_addresses,
        vec!["192.168.56.11".parse::<Ipv4Addr>().unwrap()]
    );
}

#[test]
fn external_traffic_policy_local_keeps_node_port_traffic_on_this_node() {
    let t = ServiceTable::build(&[node_port_svc("Local")], &[two_nodes()], &node());
    let vs = &t.services[&key("np", "http")];
    assert!(vs.external_local);
    assert_eq!(vs.node_port_endpoints, vec![ep("10.244.1.3", 8080, true)]);
    // ClusterIP traffic is not affected by the external policy.
    assert_eq!(vs.cluster_endpoints.len(), 2);
    assert_eq!(vs.all_endpoints().len(), 2);
}

#[test]
fn internal_traffic_policy_local_keeps_cluster_ip_traffic_on_this_node() {
    let mut s = node_port_svc("Cluster");
    s.spec.internal_traffic_policy = "Local".into();
    let t = ServiceTable::build(&[s], &[two_nodes()], &node());
    let vs = &t.services[&key("np", "http")];
    assert_eq!(vs.cluster_endpoints, vec![ep("10.244.1.3", 8080, true)]);
    assert_eq!(vs.node_port_endpoints.len(), 2);
}

#[test]
fn node_port_ignored_for_cluster_ip_type() {
    let mut s = node_port_svc("Local");
    s.spec.type_ = "ClusterIP".into();
    let t = ServiceTable::build(&[s], &[two_nodes()], &node());
    let vs = &t.services[&key("np", "http")];
    assert_eq!(vs.node_port, None);
    assert!(!vs.external_local);
}

#[test]
fn clashing_vip_or_node_port_is_a_problem_for_the_later_service() {
    let a = svc("a", "10.96.0.20", &[("", 80)]);
    let b = svc("b", "10.96.0.20", &[("", 80)]);
    let mut c = node_port_svc("Cluster");
    c.metadata.name = "c".into();
    let mut d = node_port_svc("Cluster");
    d.metadata.name = "d".into();
    d.spec.cluster_ip = "10.96.0.31".into();
    let t = ServiceTable::build(&[b, a, d, c], &[], &node());
    let names: Vec<_> = t.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, vec!["a", "c"]);
    let bad: Vec<_> = t.problems.iter().map(|p| p.service.as_str()).collect();
    assert_eq!(bad, vec!["default/b", "default/d"]);
}

#[test]
fn ipv6_and_bad_cluster_ips_are_problems() {
    let t = ServiceTable::build(
        &[
            svc("six", "fd00::10", &[("", 80)]),
            svc("junk", "ten", &[("", 80)]),
        ],
        &[],
        &node(),
    );
    assert!(t.services.is_empty());
    assert_eq!(t.problems.len(), 2);
}

#[test]
fn diff_is_per_service_port() {
    let n = node();
    let services = vec![
        svc("a", "10.96.0.20", &[("", 80)]),
        svc("b", "10.96.0.21", &[("", 80)]),
        svc("c", "10.96.0.22", &[("", 80)]),
    ];
    let before = ServiceTable::build(
        &services,
        &[
            eps("a", &[("10.244.1.3", "node-1")], &[("", 80)]),
            eps("b", &[("10.244.1.4", "node-1")], &[("", 80)]),
        ],
        &n,
    );
    assert!(diff(&before, &before).is_empty());
    let mut later = services.clone();
    later.remove(2); // c goes
    later.push(svc("d", "10.96.0.23", &[("", 80)])); // d comes
    let after = ServiceTable::build(
        &later,
        &[
            eps("a", &[("10.244.1.3", "node-1")], &[("", 80)]),
            eps(
                "b",
                &[("10.244.1.4", "node-1"), ("10.244.1.5", "node-1")],
                &[("", 80)],
            ),
        ],
        &n,
    );
    let changes = diff(&before, &after);
    assert_eq!(changes.added, vec![key("d", "")]);
    assert_eq!(changes.changed, vec![key("b", "")]);
    assert_eq!(changes.removed, vec![key("c", "")]);
    assert!(!changes.node_addresses);
    assert_eq!(changes.touched().count(), 3);

    let mut moved = n.clone();
    moved.addresses.pop();
    moved.addresses.pop();
    let t = ServiceTable::build(&services, &[], &moved);
    let c = diff(&ServiceTable::build(&services, &[], &n), &t);
    assert!(c.node_addresses && c.touched().count() == 0);
}

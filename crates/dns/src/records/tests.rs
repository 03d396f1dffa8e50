//! Every row of the Kubernetes DNS specification 1.1.0 against one fixture cluster.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;
use weft_api::core::{Endpoints, Pod, Service};
use weft_api::weft::Dns;

use super::*;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("fixture service")
}

fn fixture_objects() -> (Vec<Service>, Vec<Endpoints>, Vec<Pod>, Vec<Dns>) {
    let services = vec![
        svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
        svc(
            json!({"metadata": {"name": "plain", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.21", "ports": [{"port": 8080}]}}),
        ),
        svc(json!({"metadata": {"name": "v6", "namespace": "default"},
            "spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]}})),
        svc(json!({"metadata": {"name": "db", "namespace": "data"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
        svc(json!({"metadata": {"name": "empty", "namespace": "data"},
            "spec": {"clusterIP": "None"}})),
        svc(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        svc(
            json!({"metadata": {"name": "pending", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}),
        ),
    ];
    let endpoints: Vec<Endpoints> = vec![
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "data"},
            "subsets": [{
                "addresses": [
                    {"ip": "10.244.1.5", "hostname": "db-0"},
                    {"ip": "10.244.1.6"},
                    {"ip": "10.244.2.9", "targetRef": {"kind": "Pod", "name": "db-x", "namespace": "data"}}],
                "notReadyAddresses": [{"ip": "10.244.1.7", "hostname": "db-2"}],
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}, {"port": 9999}]}]}))
        .unwrap(),
        serde_json::from_value(json!({"metadata": {"name": "empty", "namespace": "data"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.244.1.8"}]}]}))
        .unwrap(),
    ];
    let pods: Vec<Pod> = vec![serde_json::from_value(json!({
        "metadata": {"name": "db-x", "namespace": "data"},
        "spec": {"hostname": "db-1", "subdomain": "db", "containers": [{"name": "c", "image": "x"}]}}))
    .unwrap()];
    let dnses: Vec<Dns> = vec![serde_json::from_value(json!({
        "metadata": {"name": "shop", "namespace": "demo"},
        "spec": {"host": "shop.example.com", "paths": []}}))
    .unwrap()];
    (services, endpoints, pods, dnses)
}

fn fixture() -> Zone {
    let (s, e, p, d) = fixture_objects();
    let settings = ZoneSettings {
        router_ip: Some("10.96.0.50".parse().unwrap()),
        ..Default::default()
    };
    Zone::build(&s, &e, &p, &d, &settings).unwrap()
}

fn ask(zone: &Zone, name: &str, t: RecordType) -> Answer {
    zone.answer(&Query::query(Name::from_ascii(name).unwrap(), t))
}

fn a(ip: &str) -> RData {
    RData::A(A(ip.parse::<Ipv4Addr>().unwrap()))
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn data(ans: &Answer) -> Vec<RData> {
    ans.answers.iter().map(|r| r.data.clone()).collect()
}

fn sorted(mut v: Vec<RData>) -> Vec<RData> {
    v.sort_by_key(|r| r.to_string());
    v
}

fn assert_soa(ans: &Answer) {
    assert_eq!(ans.authorities.len(), 1, "{ans:?}");
    assert_eq!(ans.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(ans.authorities[0].name, n("cluster.local."));
}

#[test]
fn dns_version() {
    let ans = ask(&fixture(), "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.authoritative);
    assert_eq!(ans.answers.len(), 1);
    assert_eq!(ans.answers[0].data.to_string(), "1.1.0");
}

#[test]
fn cluster_ip_a_and_aaaa() {
    let z = fixture();
    let ans = ask(&z, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.authoritative);
    assert_eq!(data(&ans), vec![a("10.96.0.20")]);
    assert_eq!(ans.answers[0].ttl, 5);

    let ans = ask(&z, "v6.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        data(&ans),
        vec![RData::AAAA(AAAA("fd00::10".parse::<Ipv6Addr>().unwrap()))]
    );
}

#[test]
fn nodata_vs_nxdomain_with_soa() {
    let z = fixture();
    // Exists, wrong type.
    let ans = ask(&z, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.answers.is_empty());
    assert_soa(&ans);
    // Empty non-terminals exist too.
    for name in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "_tcp.web.default.svc.cluster.local.",
        "demo.pod.cluster.local.",
    ] {
        let ans = ask(&z, name, RecordType::A);
        assert_eq!(ans.rcode, ResponseCode::NoError, "{name}");
        assert_soa(&ans);
    }
    // Does not exist.
    for name in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "x.web.default.svc.cluster.local.",
        "pending.default.svc.cluster.local.",
        "nothing.cluster.local.",
    ] {
        let ans = ask(&z, name, RecordType::A);
        assert_eq!(ans.rcode, ResponseCode::NXDomain, "{name}");
        assert!(ans.authoritative);
        assert!(ans.answers.is_empty());
        assert_soa(&ans);
    }
}

#[test]
fn case_insensitive() {
    let z = fixture();
    let ans = ask(&z, "WeB.DeFault.SVC.Cluster.Local.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.96.0.20")]);
    // The answer echoes the asker's spelling.
    assert_eq!(
        ans.answers[0].name.to_ascii(),
        "WeB.DeFault.SVC.Cluster.Local."
    );
    let ans = ask(
        &z,
        "_HTTP._TCP.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(ans.answers.len(), 1);
    assert!(z.is_cluster_name(&n("X.CLUSTER.LOCAL.")));
}

#[test]
fn srv_only_for_named_ports() {
    let z = fixture();
    let ans = ask(
        &z,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        data(&ans),
        vec![RData::SRV(SRV::new(
            0,
            100,
            80,
            n("web.default.svc.cluster.local.")
        ))]
    );
    assert_eq!(
        ans.additionals
            .iter()
            .map(|r| r.data.clone())
            .collect::<Vec<_>>(),
        vec![a("10.96.0.20")]
    );
    let ans = ask(
        &z,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(ans.answers.len(), 1);
    // Wrong protocol: no such name.
    let ans = ask(
        &z,
        "_dns._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(ans.rcode, ResponseCode::NXDomain);
    // The unnamed port has no SRV record at all; the name itself has no SRV either.
    let ans = ask(&z, "plain.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.answers.is_empty());
    assert!(!z.records.keys().any(
        |k| k.to_ascii().ends_with("plain.default.svc.cluster.local.")
            && k.to_ascii().starts_with('_')
    ));
}

#[test]
fn ptr_for_cluster_ips() {
    let z = fixture();
    let ans = ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        data(&ans),
        vec![RData::PTR(PTR(n("web.default.svc.cluster.local.")))]
    );
    assert!(z.is_cluster_name(&n("20.0.96.10.in-addr.arpa.")));
    let v6 = reverse_name("fd00::10".parse().unwrap());
    let ans = z.answer(&Query::query(v6, RecordType::PTR));
    assert_eq!(
        data(&ans),
        vec![RData::PTR(PTR(n("v6.default.svc.cluster.local.")))]
    );
    // Unknown addresses and the reverse tree itself are not ours: they are forwarded.
    assert!(!z.is_cluster_name(&n("99.0.96.10.in-addr.arpa.")));
    assert!(!z.is_cluster_name(&n("in-addr.arpa.")));
}

#[test]
fn headless_a_lists_ready_endpoints_only() {
    let z = fixture();
    let ans = ask(&z, "db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(
        sorted(data(&ans)),
        sorted(vec![a("10.244.1.5"), a("10.244.1.6"), a("10.244.2.9")])
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let ans = ask(&fixture(), "empty.data.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NXDomain);
    assert_soa(&ans);
}

#[test]
fn headless_hostnames() {
    let z = fixture();
    // From the endpoint's hostname.
    let ans = ask(&z, "db-0.db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.244.1.5")]);
    // Generated from the IP.
    let ans = ask(&z, "10-244-1-6.db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.244.1.6")]);
    // From the pod's hostname + subdomain (pod hostname.subdomain records).
    let ans = ask(&z, "db-1.db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.244.2.9")]);
    // A not-ready endpoint has no name.
    let ans = ask(&z, "db-2.db.data.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NXDomain);
}

#[test]
fn headless_srv_per_ready_endpoint_and_named_port() {
    let z = fixture();
    let ans = ask(&z, "_pg._tcp.db.data.svc.cluster.local.", RecordType::SRV);
    let mut targets: Vec<String> = ans
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => {
                assert_eq!(s.port, 5432);
                s.target.to_ascii()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "10-244-1-6.db.data.svc.cluster.local.",
            "db-0.db.data.svc.cluster.local.",
            "db-1.db.data.svc.cluster.local.",
        ]
    );
    assert_eq!(ans.additionals.len(), 3);
}

#[test]
fn headless_ptr() {
    let ans = ask(&fixture(), "5.1.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        data(&ans),
        vec![RData::PTR(PTR(n("db-0.db.data.svc.cluster.local.")))]
    );
}

#[test]
fn external_name_is_cname() {
    let z = fixture();
    for t in [RecordType::CNAME, RecordType::A, RecordType::AAAA] {
        let ans = ask(&z, "ext.default.svc.cluster.local.", t);
        assert_eq!(
            data(&ans),
            vec![RData::CNAME(CNAME(n("example.com.")))],
            "{t}"
        );
    }
}

#[test]
fn pod_names() {
    let z = fixture();
    let ans = ask(&z, "10-244-1-5.anything.pod.cluster.local.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.244.1.5")]);
    let ans = ask(&z, "fd00--1.demo.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(
        data(&ans),
        vec![RData::AAAA(AAAA("fd00::1".parse::<Ipv6Addr>().unwrap()))]
    );
    let ans = ask(&z, "10-244-1-5.demo.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.answers.is_empty());
    for bad in [
        "10-244-1.demo.pod.cluster.local.",
        "300-1-1-1.demo.pod.cluster.local.",
        "x.10-244-1-5.demo.pod.cluster.local.",
    ] {
        assert_eq!(
            ask(&z, bad, RecordType::A).rcode,
            ResponseCode::NXDomain,
            "{bad}"
        );
    }
}

#[test]
fn dns_object_host_points_at_router() {
    let z = fixture();
    let ans = ask(&z, "Shop.Example.com.", RecordType::A);
    assert_eq!(data(&ans), vec![a("10.96.0.50")]);
    assert!(ans.authoritative);
    assert!(z.is_cluster_name(&n("shop.example.com.")));
    assert!(!z.is_cluster_name(&n("example.com.")));
    assert!(!z.is_cluster_name(&n("www.shop.example.com.")));

    // Without a router address there is nothing to point at.
    let (s, e, p, d) = fixture_objects();
    let z = Zone::build(&s, &e, &p, &d, &ZoneSettings::default()).unwrap();
    assert!(!z.is_cluster_name(&n("shop.example.com.")));
}

#[test]
fn outside_names_are_not_answered() {
    let z = fixture();
    assert!(!z.is_cluster_name(&n("example.com.")));
    let ans = ask(&z, "example.com.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::Refused);
    assert!(!ans.authoritative);
}

#[test]
fn custom_zone_and_ttl() {
    let (s, e, p, d) = fixture_objects();
    let settings = ZoneSettings {
        zone: "Weft.Test".into(),
        ttl: 30,
        router_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 50))),
    };
    let z = Zone::build(&s, &e, &p, &d, &settings).unwrap();
    let ans = ask(&z, "web.default.svc.weft.test.", RecordType::A);
    assert_eq!(ans.answers[0].ttl, 30);
    let ans = ask(&z, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::Refused);
    let ans = ask(&z, "nope.weft.test.", RecordType::A);
    match &ans.authorities[0].data {
        RData::SOA(soa) => assert_eq!(soa.minimum, 30),
        other => panic!("{other:?}"),
    }
}

#[test]
fn soa_at_apex() {
    let ans = ask(&fixture(), "cluster.local.", RecordType::SOA);
    assert_eq!(ans.answers.len(), 1);
    assert_eq!(ans.answers[0].record_type(), RecordType::SOA);
}

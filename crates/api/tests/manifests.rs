//! Real Kubernetes manifests from `tests/fixtures/` must decode, validate and round-trip
//! unchanged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_api::{decode_documents, parse_documents, AnyObject};

/// Every fixture and the kinds it holds, in order.
const FIXTURES: &[(&str, &[&str])] = &[
    ("dns.yaml", &["DNS"]),
    ("ingress.yaml", &["Ingress"]),
    ("list.json", &["Service", "NetworkPolicy"]),
    (
        "multi.yaml",
        &["Namespace", "Service", "Endpoints", "Pod", "Node", "Event"],
    ),
    ("networkpolicy.yaml", &["NetworkPolicy"]),
    ("pod-dns.yaml", &["Pod"]),
    ("service-externalname.yaml", &["Service"]),
    ("service-headless.yaml", &["Service"]),
    ("service-named-targetport.yaml", &["Service"]),
    ("service-nodeport.yaml", &["Service"]),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(name: &str) -> String {
    let path = fixture_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decode_all(name: &str) -> Vec<AnyObject> {
    decode_documents(&read(name), name)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn decode_one(name: &str) -> AnyObject {
    let mut objects = decode_all(name);
    assert_eq!(objects.len(), 1, "{name}");
    objects.remove(0)
}

/// Drops what carries no information (nulls, `{}`, `[]`), so `status: {loadBalancer: {}}`
/// and an absent status compare equal. Everything else must match exactly.
fn normalize(value: &mut Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => {
            map.retain(|_, v| normalize(v));
            !map.is_empty()
        }
        Value::Array(items) => {
            items.iter_mut().for_each(|v| {
                normalize(v);
            });
            !items.is_empty()
        }
        _ => true,
    }
}

#[test]
fn every_fixture_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn fixtures_decode_to_the_expected_kinds() {
    for (name, kinds) in FIXTURES {
        let got: Vec<&str> = decode_all(name).iter().map(|o| o.kind()).collect();
        assert_eq!(&got, kinds, "{name}");
    }
}

#[test]
fn fixtures_validate_as_written_and_after_defaulting() {
    for (name, _) in FIXTURES {
        for mut object in decode_all(name) {
            let what = format!("{name}: {} {}", object.kind(), object.name());
            if let Err(e) = object.validate() {
                panic!("{what}: {e}");
            }
            object.apply_defaults();
            if let Err(e) = object.validate() {
                panic!("{what} after defaulting: {e}");
            }
        }
    }
}

#[test]
fn fixtures_round_trip_every_field() {
    for (name, _) in FIXTURES {
        let text = read(name);
        let values: Vec<Value> = parse_documents(&text, name)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let objects = decode_all(name);
        assert_eq!(values.len(), objects.len(), "{name}");
        for (mut original, object) in values.into_iter().zip(objects) {
            let mut encoded = object.to_value();
            normalize(&mut original);
            normalize(&mut encoded);
            assert_eq!(encoded, original, "{name}: {}", object.name());
            // And back again: the encoded form decodes to the same object.
            let again = AnyObject::decode(object.to_value()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, object, "{name}");
        }
    }
}

#[test]
fn kubernetes_field_names_are_kept() {
    let headless = decode_one("service-headless.yaml").to_value();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(headless["spec"]["ports"][0]["targetPort"], 5432);

    let named = decode_one("service-named-targetport.yaml").to_value();
    assert_eq!(named["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        named["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        600
    );

    let nodeport = decode_one("service-nodeport.yaml").to_value();
    assert_eq!(nodeport["spec"]["clusterIPs"][0], "10.96.0.50");
    assert_eq!(nodeport["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(nodeport["spec"]["externalTrafficPolicy"], "Local");

    let pod = decode_one("pod-dns.yaml").to_value();
    assert_eq!(pod["spec"]["hostAliases"][0]["ip"], "127.0.0.1");
    assert_eq!(pod["spec"]["dnsConfig"]["nameservers"][0], "10.96.0.10");
    assert_eq!(pod["spec"]["dnsConfig"]["options"][0]["value"], "2");
    assert_eq!(
        pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
        "http"
    );

    let multi = decode_all("multi.yaml");
    let node = multi
        .iter()
        .find(|o| o.kind() == "Node")
        .expect("a Node")
        .to_value();
    assert_eq!(node["spec"]["podCIDR"], "10.244.1.0/24");
    assert_eq!(node["spec"]["podCIDRs"][0], "10.244.1.0/24");
    let pod = multi
        .iter()
        .find(|o| o.kind() == "Pod")
        .expect("a Pod")
        .to_value();
    assert_eq!(pod["status"]["podIP"], "10.244.1.5");
    assert_eq!(pod["status"]["hostIP"], "192.168.56.11");
}

#[test]
fn typed_access_to_fixtures() {
    let AnyObject::Pod(pod) = decode_one("pod-dns.yaml") else {
        panic!("not a Pod");
    };
    assert_eq!(pod.container_port_by_name("http"), Some((80, "TCP")));
    assert_eq!(pod.container_port_by_name("https"), None);
    assert!(!pod.is_ready());

    let multi = decode_all("multi.yaml");
    for object in multi {
        match object {
            AnyObject::Pod(p) => assert!(p.is_ready()),
            AnyObject::Node(n) => {
                assert!(n.is_ready());
                assert_eq!(n.vtep_mac(), Some("0a:58:0a:f4:01:01"));
                assert_eq!(n.underlay_ip(), Some("192.168.56.11"));
                assert_eq!(n.address("InternalIP"), Some("192.168.56.11"));
            }
            _ => {}
        }
    }

    let AnyObject::Dns(dns) = decode_one("dns.yaml") else {
        panic!("not a DNS object");
    };
    let paths: Vec<&str> = dns.spec.paths.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/wear", "/watch"]);
}

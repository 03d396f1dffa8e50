//! The endpoints controller's pure part: a Service's selector × the Pods of its namespace →
//! the Endpoints Kubernetes would write.

use std::collections::BTreeMap;

use weft_api::core::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, ObjectReference, Pod, Service,
    ANNOTATION_SERVED_BY_NODES,
};
use weft_api::{IntOrString, ObjectMeta};

/// Kubernetes marks a headless Service's Endpoints with this label.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A pod's resolved ports: (name, number, protocol), sorted.
type PortSet = Vec<(String, i32, String)>;

/// The container port a Service port targets on one pod, or None if the pod has no such
/// named port (the pod is then left out for that port, as Kubernetes does).
pub fn resolve_target_port(pod: &Pod, port: &weft_api::core::ServicePort) -> Option<i32> {
    let protocol = if port.protocol.is_empty() {
        "TCP"
    } else {
        port.protocol.as_str()
    };
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .find(|p| {
                p.name == *name
                    && (if p.protocol.is_empty() {
                        "TCP"
                    } else {
                        p.protocol.as_str()
                    }) == protocol
            })
            .map(|p| p.container_port),
    }
}

fn serves_traffic(pod: &Pod) -> bool {
    !pod.status.pod_ip.is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
}

/// The Endpoints a Service with a selector should have, or None for a Service the
/// controller leaves alone (no selector, or ExternalName).
pub fn desired_endpoints<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<Endpoints> {
    if svc.spec.selector.is_empty() || svc.spec.type_ == "ExternalName" {
        return None;
    }
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    // Addresses grouped by the exact port list they serve (named ports may differ per pod).
    let mut groups: BTreeMap<PortSet, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods {
        if pod.metadata.namespace.as_deref().unwrap_or("") != namespace
            || !svc.selects(&pod.metadata.labels)
            || !serves_traffic(pod)
        {
            continue;
        }
        let mut ports: PortSet = Vec::new();
        for port in &svc.spec.ports {
            if let Some(target) = resolve_target_port(pod, port) {
                let protocol = if port.protocol.is_empty() {
                    "TCP".to_string()
                } else {
                    port.protocol.clone()
                };
                ports.push((port.name.clone(), target, protocol));
            }
        }
        if ports.is_empty() && !svc.spec.ports.is_empty() {
            continue;
        }
        ports.sort();
        let hostname = if !pod.spec.hostname.is_empty() && pod.spec.subdomain == svc.metadata.name {
            pod.spec.hostname.clone()
        } else {
            String::new()
        };
        let address = EndpointAddress {
            ip: pod.status.pod_ip.clone(),
            hostname,
            node_name: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: "Pod".into(),
                namespace: namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                ..Default::default()
            }),
        };
        let entry = groups.entry(ports).or_default();
        if svc.spec.publish_not_ready_addresses || pod.is_ready() {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: ready,
                not_ready_addresses: not_ready,
                ports: ports
                    .into_iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        name,
                        port,
                        protocol,
                        ..Default::default()
                    })
                    .collect(),
            }
        })
        .collect();
    Some(endpoints_of(svc, subsets))
}

/// The Endpoints object of `svc` holding `subsets`.
fn endpoints_of(svc: &Service, subsets: Vec<EndpointSubset>) -> Endpoints {
    let mut labels = svc.metadata.labels.clone();
    if svc.is_headless() {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    Endpoints {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels,
            ..Default::default()
        },
        subsets,
    }
}

/// The Endpoints of a Service, counting both its selected Pods and, for a Service
/// annotated `weft.io/served-by-nodes: <name>` (kube-dns), every Ready Node whose agent
/// serves `<name>` on its InternalIP. Node addresses use the Service's numeric target
/// ports (a named target port means nothing on a node); None for a Service the controller
/// leaves alone.
pub fn desired_endpoints_with_nodes<'a, 'n>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    nodes: impl IntoIterator<Item = &'n Node>,
) -> Option<Endpoints> {
    let from_pods = desired_endpoints(svc, pods);
    let Some(served) = svc.metadata.annotations.get(ANNOTATION_SERVED_BY_NODES) else {
        return from_pods;
    };
    if svc.spec.type_ == "ExternalName" {
        return None;
    }
    let ports: Vec<EndpointPort> = svc
        .spec
        .ports
        .iter()
        .filter_map(|p| {
            let port = match &p.target_port {
                None | Some(IntOrString::Int(0)) => p.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(_)) => return None,
            };
            Some(EndpointPort {
                name: p.name.clone(),
                port,
                protocol: if p.protocol.is_empty() {
                    "TCP".into()
                } else {
                    p.protocol.clone()
                },
                ..Default::default()
            })
        })
        .collect();
    let mut addresses: Vec<EndpointAddress> = nodes
        .into_iter()
        .filter(|n| n.is_ready() && n.serves(served))
        .filter_map(|n| {
            let ip = n.address("InternalIP")?;
            Some(EndpointAddress {
                ip: ip.to_string(),
                hostname: String::new(),
                node_name: Some(n.metadata.name.clone()),
                target_ref: Some(ObjectReference {
                    kind: "Node".into(),
                    name: n.metadata.name.clone(),
                    uid: n.metadata.uid.clone().unwrap_or_default(),
                    ..Default::default()
                }),
            })
        })
        .collect();
    addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    let mut endpoints = from_pods.unwrap_or_else(|| endpoints_of(svc, Vec::new()));
    if !addresses.is_empty() && !ports.is_empty() {
        endpoints.subsets.push(EndpointSubset {
            addresses,
            not_ready_addresses: Vec::new(),
            ports,
        });
    }
    Some(endpoints)
}

/// True when `current` already says what `desired` says (ignoring server-set metadata).
pub fn endpoints_match(current: &Endpoints, desired: &Endpoints) -> bool {
    current.subsets == desired.subsets && current.metadata.labels == desired.metadata.labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Pod {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}, "uid": format!("uid-{name}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": ip, "phase": "Running",
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn ready_and_not_ready_pods_with_named_target_port() {
        let s = svc(
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}),
        );
        let pods = [
            pod("b", "10.244.1.3", true, json!({})),
            pod("a", "10.244.1.2", true, json!({})),
            pod("c", "10.244.2.2", false, json!({})),
        ];
        let ep = desired_endpoints(&s, &pods).unwrap();
        assert_eq!(ep.subsets.len(), 1);
        let ips: Vec<&str> = ep.subsets[0]
            .addresses
            .iter()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.244.1.2", "10.244.1.3"]);
        assert_eq!(ep.subsets[0].not_ready_addresses[0].ip, "10.244.2.2");
        assert_eq!(ep.subsets[0].ports[0].port, 8080);
        assert_eq!(
            ep.subsets[0].addresses[0].target_ref.as_ref().unwrap().name,
            "a"
        );
    }

    #[test]
    fn publish_not_ready_addresses_and_unresolvable_ports() {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"name": "metrics", "port": 9000, "protocol": "TCP", "targetPort": "metrics"}]}),
        );
        let pods = [pod("a", "10.244.1.2", false, json!({}))];
        // The pod has no port named "metrics": it is left out entirely.
        assert!(desired_endpoints(&s, &pods).unwrap().subsets.is_empty());
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}),
        );
        let ep = desired_endpoints(&s, &pods).unwrap();
        assert_eq!(
            ep.subsets[0].addresses[0].ip, "10.244.1.2",
            "not-ready pod published as ready"
        );
    }

    #[test]
    fn hostname_only_when_subdomain_names_the_service() {
        let s = svc(
            json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}),
        );
        let pods = [
            pod(
                "a",
                "10.244.1.2",
                true,
                json!({"hostname": "web-0", "subdomain": "web"}),
            ),
            pod(
                "b",
                "10.244.1.3",
                true,
                json!({"hostname": "other", "subdomain": "elsewhere"}),
            ),
        ];
        let ep = desired_endpoints(&s, &pods).unwrap();
        assert_eq!(ep.subsets[0].addresses[0].hostname, "web-0");
        assert_eq!(ep.subsets[0].addresses[1].hostname, "");
        assert!(ep.metadata.labels.contains_key(HEADLESS_LABEL));
    }

    #[test]
    fn unselected_terminal_and_addressless_pods_are_excluded() {
        let s =
            svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}));
        let mut other = pod("x", "10.244.1.9", true, json!({}));
        other.metadata.labels.insert("app".into(), "db".into());
        let mut done = pod("y", "10.244.1.8", true, json!({}));
        done.status.phase = "Succeeded".into();
        let pending = pod("z", "", true, json!({}));
        assert!(desired_endpoints(&s, &[other, done, pending])
            .unwrap()
            .subsets
            .is_empty());
        let no_selector = svc(json!({"ports": [{"port": 80}]}));
        assert!(
            desired_endpoints(&no_selector, &[pod("a", "10.244.1.2", true, json!({}))]).is_none()
        );
    }

    #[test]
    fn pods_serving_different_port_sets_get_separate_subsets() {
        let s = svc(
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}),
        );
        let mut alt = pod("b", "10.244.1.3", true, json!({}));
        alt.spec.containers[0].ports[0].container_port = 9090;
        let ep = desired_endpoints(&s, &[pod("a", "10.244.1.2", true, json!({})), alt]).unwrap();
        assert_eq!(ep.subsets.len(), 2);
    }

    fn node(name: &str, ip: &str, ready: bool, serves: Option<&str>) -> Node {
        let mut meta = json!({"name": name, "uid": format!("uid-{name}")});
        if let Some(list) = serves {
            meta["annotations"] = json!({"weft.io/node-services": list});
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": meta,
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"Unknown"}}]}}))
        .unwrap()
    }

    #[test]
    fn service_served_by_nodes_lists_ready_serving_nodes_and_selected_pods() {
        let mut s = svc(json!({"selector": {"app": "web"}, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "named", "port": 80, "targetPort": "http"}]}));
        s.metadata
            .annotations
            .insert(ANNOTATION_SERVED_BY_NODES.into(), "dns".into());
        let nodes = [
            node("n2", "172.30.0.12", true, Some("router, dns")),
            node("n1", "172.30.0.11", true, Some("dns")),
            node("n3", "172.30.0.13", false, Some("dns")),
            node("n4", "172.30.0.14", true, Some("router")),
            node("n5", "172.30.0.15", true, None),
        ];
        let pods = [pod("a", "10.244.1.2", true, json!({}))];
        let ep = desired_endpoints_with_nodes(&s, &pods, &nodes).unwrap();
        assert_eq!(ep.subsets.len(), 2, "{ep:?}");
        let from_nodes = &ep.subsets[1];
        let ips: Vec<&str> = from_nodes.addresses.iter().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, ["172.30.0.11", "172.30.0.12"]);
        assert_eq!(from_nodes.addresses[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            from_nodes.addresses[0].target_ref.as_ref().unwrap().kind,
            "Node"
        );
        // The named target port means nothing on a node: only the numeric ones.
        let ports: Vec<(i32, &str)> = from_nodes
            .ports
            .iter()
            .map(|p| (p.port, p.protocol.as_str()))
            .collect();
        assert_eq!(ports, [(53, "UDP"), (53, "TCP")]);

        // Without the annotation, nodes are ignored; without a selector, nodes alone.
        s.metadata.annotations.clear();
        assert_eq!(
            desired_endpoints_with_nodes(&s, &pods, &nodes)
                .unwrap()
                .subsets
                .len(),
            1
        );
        s.metadata
            .annotations
            .insert(ANNOTATION_SERVED_BY_NODES.into(), "dns".into());
        s.spec.selector.clear();
        let ep = desired_endpoints_with_nodes(&s, &pods, &nodes).unwrap();
        assert_eq!(ep.subsets.len(), 1);
        assert_eq!(ep.subsets[0].addresses.len(), 2);
        // No serving node ready: an empty Endpoints object, not none.
        let ep = desired_endpoints_with_nodes(&s, &pods, &nodes[2..]).unwrap();
        assert!(ep.subsets.is_empty());
    }

    #[test]
    fn router_service_endpoints_are_the_ready_nodes_running_the_router() {
        let cidr: ipnet::IpNet = "10.96.0.0/12".parse().unwrap();
        let s: Service = serde_json::from_value(crate::bootstrap::router_service(&cidr)).unwrap();
        assert_eq!(s.metadata.name, "weft-router");
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.spec.cluster_ip, "10.96.0.11");
        assert!(s.spec.selector.is_empty());
        let nodes = [
            node("n2", "172.30.0.12", true, Some("dns,router")),
            node("n1", "172.30.0.11", true, Some("router")),
            node("n3", "172.30.0.13", false, Some("router")),
            node("n4", "172.30.0.14", true, Some("dns")),
        ];
        let ep = desired_endpoints_with_nodes(&s, &[], &nodes).unwrap();
        assert_eq!(ep.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(ep.subsets.len(), 1, "{ep:?}");
        let addrs: Vec<(&str, Option<&str>)> = ep.subsets[0]
            .addresses
            .iter()
            .map(|a| (a.ip.as_str(), a.node_name.as_deref()))
            .collect();
        assert_eq!(
            addrs,
            [("172.30.0.11", Some("n1")), ("172.30.0.12", Some("n2"))]
        );
        let ports: Vec<(&str, i32, &str)> = ep.subsets[0]
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.port, p.protocol.as_str()))
            .collect();
        assert_eq!(ports, [("http", 10080, "TCP")]);
    }
}

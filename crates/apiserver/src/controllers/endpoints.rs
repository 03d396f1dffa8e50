//! The endpoints controller's pure part: a Service's selector × the Pods of its namespace →
//! the Endpoints Kubernetes would write.

use std::collections::BTreeMap;

use weft_api::core::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
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
    let mut labels = svc.metadata.labels.clone();
    if svc.is_headless() {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    Some(Endpoints {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: Some(namespace),
            labels,
            ..Default::default()
        },
        subsets,
    })
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
}

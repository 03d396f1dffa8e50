//! Admission of allocated fields: ClusterIPs and NodePorts of Services, podCIDRs of Nodes.
//! Works on the JSON form, after defaulting and validation, so it depends only on the wire
//! field names (which are Kubernetes') and not on the typed structs.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::{json, Value};
use weft_api::resources::{NODE, SERVICE};
use weft_api::ResourceInfo;

use crate::alloc::{Allocation, Allocators, Reservation};
use crate::error::ApiError;

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn service_type(svc: &Value) -> &str {
    match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName" && str_at(svc, "/spec/clusterIP") != "None"
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

fn port_node_port(port: &Value) -> u16 {
    port.get("nodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0)
}

/// The allocations an admitted object holds.
pub fn allocations_of(info: &ResourceInfo, object: &Value) -> HashSet<Allocation> {
    let mut held = HashSet::new();
    if *info == SERVICE {
        if let Ok(ip) = str_at(object, "/spec/clusterIP").parse::<IpAddr>() {
            held.insert(Allocation::ClusterIp(ip));
        }
        if let Some(ports) = object.pointer("/spec/ports").and_then(Value::as_array) {
            for port in ports {
                let p = port_node_port(port);
                if p != 0 {
                    held.insert(Allocation::NodePort(p));
                }
            }
        }
    } else if *info == NODE {
        if let Ok(net) = str_at(object, "/spec/podCIDR").parse::<IpNet>() {
            held.insert(Allocation::PodCidr(net));
        }
    }
    held
}

/// Fills allocated fields Kubernetes carries over on update when the new object leaves them
/// empty (a re-applied manifest without `clusterIP` keeps its ClusterIP and NodePorts).
pub fn carry_allocated_fields(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if *info == SERVICE {
        if needs_cluster_ip(new) && str_at(new, "/spec/clusterIP").is_empty() {
            let old_ip = str_at(old, "/spec/clusterIP");
            if old_ip.parse::<IpAddr>().is_ok() {
                let ips = old
                    .pointer("/spec/clusterIPs")
                    .cloned()
                    .unwrap_or_else(|| json!([old_ip]));
                new["spec"]["clusterIP"] = json!(old_ip);
                new["spec"]["clusterIPs"] = ips;
            }
        }
        if needs_node_ports(new) {
            let old_ports: Vec<Value> = old
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut() {
                    if port_node_port(port) != 0 {
                        continue;
                    }
                    // The new object is not defaulted yet: an absent protocol means TCP.
                    let protocol = |p: &Value| {
                        p.get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("TCP")
                            .to_string()
                    };
                    let same = old_ports.iter().find(|o| {
                        o.get("port") == port.get("port") && protocol(o) == protocol(port)
                    });
                    if let Some(p) = same.map(port_node_port).filter(|p| *p != 0) {
                        port["nodePort"] = json!(p);
                    }
                }
            }
        }
    } else if *info == NODE && str_at(new, "/spec/podCIDR").is_empty() {
        if let Some(cidr) = old.pointer("/spec/podCIDR").cloned() {
            new["spec"]["podCIDR"] = cidr;
            if let Some(cidrs) = old.pointer("/spec/podCIDRs").cloned() {
                new["spec"]["podCIDRs"] = cidrs;
            }
        }
    }
}

/// Reserves what `object` requests or needs and is not already `held` (by the old version
/// of the same object), writing allocated values into it.
pub fn allocate(
    allocators: &Arc<Allocators>,
    info: &ResourceInfo,
    object: &mut Value,
    held: &HashSet<Allocation>,
) -> Result<Reservation, ApiError> {
    let mut reservation = Reservation::new(allocators.clone());
    let name = str_at(object, "/metadata/name").to_string();
    if *info == SERVICE {
        allocate_service(allocators, object, held, &name, &mut reservation)?;
    } else if *info == NODE {
        let requested = str_at(object, "/spec/podCIDR").to_string();
        let requested_net = if requested.is_empty() {
            None
        } else {
            Some(requested.parse::<IpNet>().map_err(|_| {
                ApiError::invalid_field("Node", &name, "spec.podCIDR", &requested, "must be a CIDR")
            })?)
        };
        let already = requested_net.is_some_and(|n| held.contains(&Allocation::PodCidr(n)));
        if !already {
            let a = allocators.reserve_pod_cidr(requested_net).map_err(|e| {
                ApiError::invalid_field("Node", &name, "spec.podCIDR", &requested, &e.to_string())
            })?;
            if let Allocation::PodCidr(net) = &a {
                object["spec"]["podCIDR"] = json!(net.to_string());
                object["spec"]["podCIDRs"] = json!([net.to_string()]);
            }
            reservation.push(a);
        }
    }
    Ok(reservation)
}

fn allocate_service(
    allocators: &Arc<Allocators>,
    svc: &mut Value,
    held: &HashSet<Allocation>,
    name: &str,
    reservation: &mut Reservation,
) -> Result<(), ApiError> {
    if needs_cluster_ip(svc) {
        let requested = str_at(svc, "/spec/clusterIP").to_string();
        let requested_ip = if requested.is_empty() {
            None
        } else {
            Some(requested.parse::<IpAddr>().map_err(|_| {
                ApiError::invalid_field(
                    "Service",
                    name,
                    "spec.clusterIP",
                    &requested,
                    "must be a valid IP address",
                )
            })?)
        };
        let already = requested_ip.is_some_and(|ip| held.contains(&Allocation::ClusterIp(ip)));
        if !already {
            let a = allocators.reserve_cluster_ip(requested_ip).map_err(|e| {
                ApiError::invalid_field(
                    "Service",
                    name,
                    "spec.clusterIP",
                    &requested,
                    &e.to_string(),
                )
            })?;
            if let Allocation::ClusterIp(ip) = &a {
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
            reservation.push(a);
        }
    } else if str_at(svc, "/spec/clusterIP") == "None" {
        svc["spec"]["clusterIPs"] = json!(["None"]);
    }
    if !needs_node_ports(svc) {
        return Ok(());
    }
    // A Service may list one nodePort twice (same port over TCP and UDP); reserve it once.
    let mut own: HashSet<u16> = HashSet::new();
    let count = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..count {
        let port = &svc["spec"]["ports"][i];
        let requested = port_node_port(port);
        if requested != 0
            && (held.contains(&Allocation::NodePort(requested)) || own.contains(&requested))
        {
            own.insert(requested);
            continue;
        }
        let a = allocators
            .reserve_node_port((requested != 0).then_some(requested))
            .map_err(|e| {
                ApiError::invalid_field(
                    "Service",
                    name,
                    &format!("spec.ports[{i}].nodePort"),
                    &requested.to_string(),
                    &e.to_string(),
                )
            })?;
        if let Allocation::NodePort(p) = &a {
            svc["spec"]["ports"][i]["nodePort"] = json!(p);
            own.insert(*p);
        }
        reservation.push(a);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Ranges;

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn service_gets_ip_and_node_ports() {
        let a = Allocators::new(Ranges::default());
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        let r = allocate(&a, &SERVICE, &mut s, &HashSet::new()).unwrap();
        assert_eq!(r.items.len(), 3);
        let ip: IpAddr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(a.ranges.service_cidr.contains(&ip));
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 30053);
        assert!(s["spec"]["ports"][0]["nodePort"].as_u64().unwrap() >= 30000);
        r.commit();
        // The same requested port again is refused, naming the field.
        let mut t = svc(json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30053}]}));
        let err = allocate(&a, &SERVICE, &mut t, &HashSet::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("spec.ports[0].nodePort"), "{err}");
    }

    #[test]
    fn failed_request_releases_earlier_reservations() {
        let a = Allocators::new(Ranges::default());
        let mut first = svc(json!({"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}));
        allocate(&a, &SERVICE, &mut first, &HashSet::new())
            .unwrap()
            .commit();
        // Second service: its ClusterIP is free but its NodePort is out of range.
        let mut second = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.51",
            "ports": [{"port": 80, "nodePort": 80}]}));
        assert!(allocate(&a, &SERVICE, &mut second, &HashSet::new()).is_err());
        assert!(!a.is_used(&Allocation::ClusterIp("10.96.0.51".parse().unwrap())));
    }

    #[test]
    fn headless_and_external_name_take_no_ip() {
        let a = Allocators::new(Ranges::default());
        let mut h = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(allocate(&a, &SERVICE, &mut h, &HashSet::new())
            .unwrap()
            .items
            .is_empty());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut e = svc(json!({"type": "ExternalName", "externalName": "example.org"}));
        assert!(allocate(&a, &SERVICE, &mut e, &HashSet::new())
            .unwrap()
            .items
            .is_empty());
    }

    #[test]
    fn update_keeps_allocations_when_manifest_omits_them() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}),
        );
        let mut new = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}));
        carry_allocated_fields(&SERVICE, &old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(
            allocations_of(&SERVICE, &old),
            allocations_of(&SERVICE, &new)
        );
    }
}

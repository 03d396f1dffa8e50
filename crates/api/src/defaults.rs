//! Kubernetes' defaulting: the values the API server fills in before validating and storing,
//! so every reader sees the same explicit object.

use std::net::IpAddr;

use crate::core::{
    ClientIpConfig, Container, Endpoints, Namespace, Pod, Probe, Service, ServiceType,
    SessionAffinityConfig,
};
use crate::meta::IntOrString;
use crate::networking::NetworkPolicy;
use crate::weft::Dns;

/// Kubernetes' default ClientIP affinity: three hours.
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

fn set_if_empty(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

pub fn default_service(svc: &mut Service) {
    let spec = &mut svc.spec;
    set_if_empty(&mut spec.type_, "ClusterIP");
    let type_ = ServiceType::parse(&spec.type_);
    for port in &mut spec.ports {
        set_if_empty(&mut port.protocol, "TCP");
        // 0 and "" are how Go clients write "unset".
        let unset = match &port.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    set_if_empty(&mut spec.session_affinity, "None");
    if spec.session_affinity == "ClientIP" {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default);
        let client_ip = config.client_ip.get_or_insert_with(ClientIpConfig::default);
        client_ip
            .timeout_seconds
            .get_or_insert(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
    }
    if type_ != Some(ServiceType::ExternalName) {
        set_if_empty(&mut spec.internal_traffic_policy, "Cluster");
    }
    if type_.is_some_and(ServiceType::has_node_ports) {
        set_if_empty(&mut spec.external_traffic_policy, "Cluster");
    }
    if type_ == Some(ServiceType::LoadBalancer) && spec.allocate_load_balancer_node_ports.is_none()
    {
        spec.allocate_load_balancer_node_ports = Some(true);
    }
    // Only Services that get a virtual IP have a family; a requested address decides it.
    let gets_cluster_ip =
        type_.is_some() && type_ != Some(ServiceType::ExternalName) && spec.cluster_ip != "None";
    if gets_cluster_ip {
        if spec.ip_families.is_empty() {
            let family = match spec.cluster_ip.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => "IPv6",
                _ => "IPv4",
            };
            spec.ip_families.push(family.to_string());
        }
        set_if_empty(&mut spec.ip_family_policy, "SingleStack");
    }
}

pub fn default_pod(pod: &mut Pod) {
    // A new pod is Pending until a node agent reports otherwise, as Kubernetes sets it.
    set_if_empty(&mut pod.status.phase, "Pending");
    let spec = &mut pod.spec;
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    set_if_empty(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network;
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut())
    {
        default_container(c, host_network);
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    for port in &mut c.ports {
        set_if_empty(&mut port.protocol, "TCP");
        // In the host's namespace the container port is the host port.
        if host_network && port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
    set_if_empty(
        &mut c.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    set_if_empty(&mut c.termination_message_policy, "File");
    if c.image_pull_policy.is_empty() {
        c.image_pull_policy = image_pull_policy(&c.image).to_string();
    }
    for probe in [
        &mut c.readiness_probe,
        &mut c.liveness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

/// `Always` for `:latest` or an untagged image (it may change under the same name),
/// `IfNotPresent` for a fixed tag or digest.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag follows the last ':' after the last '/' (a registry may have a port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Probe) {
    // 0 is what an unset Go int looks like; Kubernetes treats it as unset here.
    for (field, default) in [
        (&mut probe.timeout_seconds, 1),
        (&mut probe.period_seconds, 10),
        (&mut probe.success_threshold, 1),
        (&mut probe.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(default);
        }
    }
    if let Some(http) = &mut probe.http_get {
        set_if_empty(&mut http.path, "/");
        set_if_empty(&mut http.scheme, "HTTP");
    }
}

pub fn default_endpoints(ep: &mut Endpoints) {
    for port in ep.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
        set_if_empty(&mut port.protocol, "TCP");
    }
}

pub fn default_namespace(ns: &mut Namespace) {
    set_if_empty(&mut ns.status.phase, "Active");
}

pub fn default_network_policy(np: &mut NetworkPolicy) {
    let spec = &mut np.spec;
    // A policy always isolates ingress; egress only when it says something about egress.
    if spec.policy_types.is_empty() {
        spec.policy_types.push("Ingress".into());
        if !spec.egress.is_empty() {
            spec.policy_types.push("Egress".into());
        }
    }
    let ports = spec
        .ingress
        .iter_mut()
        .flat_map(|r| r.ports.iter_mut())
        .chain(spec.egress.iter_mut().flat_map(|r| r.ports.iter_mut()));
    for port in ports {
        set_if_empty(&mut port.protocol, "TCP");
    }
}

/// Host names are case-insensitive; one stored spelling lets the router compare exactly.
pub fn default_dns(dns: &mut Dns) {
    dns.spec.host = dns.spec.host.to_ascii_lowercase();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ContainerPort, HttpGetAction, ServicePort};
    use crate::networking::NetworkPolicyEgressRule;

    fn service(type_: &str, cluster_ip: &str) -> Service {
        let mut s = Service::default();
        s.spec.type_ = type_.into();
        s.spec.cluster_ip = cluster_ip.into();
        s.spec.ports.push(ServicePort {
            port: 80,
            ..Default::default()
        });
        s.spec.ports.push(ServicePort {
            port: 53,
            protocol: "UDP".into(),
            target_port: Some(IntOrString::String("dns".into())),
            ..Default::default()
        });
        default_service(&mut s);
        s
    }

    #[test]
    fn service_defaults() {
        let s = service("", "");
        assert_eq!(s.spec.type_, "ClusterIP");
        assert_eq!(s.spec.ports[0].protocol, "TCP");
        assert_eq!(s.spec.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(s.spec.ports[1].protocol, "UDP");
        assert_eq!(
            s.spec.ports[1].target_port,
            Some(IntOrString::String("dns".into()))
        );
        assert_eq!(s.spec.session_affinity, "None");
        assert_eq!(s.spec.session_affinity_config, None);
        assert_eq!(s.spec.internal_traffic_policy, "Cluster");
        assert_eq!(s.spec.external_traffic_policy, "");
        assert_eq!(s.spec.ip_families, vec!["IPv4"]);
        assert_eq!(s.spec.ip_family_policy, "SingleStack");
    }

    #[test]
    fn service_defaults_by_type() {
        let s = service("NodePort", "fd00::10");
        assert_eq!(s.spec.external_traffic_policy, "Cluster");
        assert_eq!(s.spec.ip_families, vec!["IPv6"]);
        let s = service("LoadBalancer", "");
        assert_eq!(s.spec.allocate_load_balancer_node_ports, Some(true));
        let s = service("ExternalName", "");
        assert_eq!(s.spec.internal_traffic_policy, "");
        assert!(s.spec.ip_families.is_empty());
        assert_eq!(s.spec.ip_family_policy, "");
        let s = service("", "None");
        assert!(s.spec.ip_families.is_empty());
        assert_eq!(s.spec.internal_traffic_policy, "Cluster");
    }

    #[test]
    fn client_ip_timeout() {
        let mut s = Service::default();
        s.spec.session_affinity = "ClientIP".into();
        default_service(&mut s);
        let timeout = s
            .spec
            .session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds);
        assert_eq!(timeout, Some(10800));
    }

    #[test]
    fn target_port_zero_means_port() {
        let mut s = Service::default();
        s.spec.ports.push(ServicePort {
            port: 8080,
            target_port: Some(IntOrString::Int(0)),
            ..Default::default()
        });
        default_service(&mut s);
        assert_eq!(s.spec.ports[0].target_port, Some(IntOrString::Int(8080)));
    }

    #[test]
    fn pod_defaults() {
        let mut p = Pod::default();
        p.spec.containers.push(Container {
            name: "web".into(),
            image: "nginx".into(),
            ports: vec![ContainerPort {
                container_port: 80,
                ..Default::default()
            }],
            readiness_probe: Some(Probe {
                http_get: Some(HttpGetAction {
                    path: String::new(),
                    port: IntOrString::Int(80),
                    host: String::new(),
                    scheme: String::new(),
                    http_headers: vec![],
                }),
                period_seconds: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        });
        p.spec.init_containers.push(Container {
            name: "init".into(),
            image: "busybox:1.36".into(),
            ..Default::default()
        });
        default_pod(&mut p);
        let spec = &p.spec;
        assert_eq!(spec.restart_policy, "Always");
        assert_eq!(spec.dns_policy, "ClusterFirst");
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.scheduler_name, "default-scheduler");
        let c = &spec.containers[0];
        assert_eq!(c.ports[0].protocol, "TCP");
        assert_eq!(c.ports[0].host_port, None);
        assert_eq!(c.image_pull_policy, "Always");
        assert_eq!(c.termination_message_path, "/dev/termination-log");
        assert_eq!(c.termination_message_policy, "File");
        let probe = c.readiness_probe.as_ref().expect("probe kept");
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(3));
        let http = probe.http_get.as_ref().expect("httpGet kept");
        assert_eq!((http.path.as_str(), http.scheme.as_str()), ("/", "HTTP"));
        assert_eq!(spec.init_containers[0].image_pull_policy, "IfNotPresent");
    }

    #[test]
    fn host_network_ports_default_host_port() {
        let mut p = Pod::default();
        p.spec.host_network = true;
        p.spec.containers.push(Container {
            ports: vec![ContainerPort {
                container_port: 9100,
                ..Default::default()
            }],
            ..Default::default()
        });
        default_pod(&mut p);
        assert_eq!(p.spec.containers[0].ports[0].host_port, Some(9100));
    }

    #[test]
    fn pull_policy_from_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            image_pull_policy("localhost:5000/nginx:1.27"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
    }

    #[test]
    fn network_policy_types() {
        let mut np = NetworkPolicy::default();
        default_network_policy(&mut np);
        assert_eq!(np.spec.policy_types, vec!["Ingress"]);
        let mut np = NetworkPolicy::default();
        np.spec.egress.push(NetworkPolicyEgressRule::default());
        default_network_policy(&mut np);
        assert_eq!(np.spec.policy_types, vec!["Ingress", "Egress"]);
        let mut np = NetworkPolicy::default();
        np.spec.policy_types = vec!["Egress".into()];
        default_network_policy(&mut np);
        assert_eq!(np.spec.policy_types, vec!["Egress"]);
    }

    #[test]
    fn namespace_endpoints_dns() {
        let mut ns = Namespace::default();
        default_namespace(&mut ns);
        assert_eq!(ns.status.phase, "Active");
        let mut ep = Endpoints::default();
        ep.subsets.push(crate::core::EndpointSubset {
            ports: vec![crate::core::EndpointPort {
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        });
        default_endpoints(&mut ep);
        assert_eq!(ep.subsets[0].ports[0].protocol, "TCP");
        let mut dns = Dns::default();
        dns.spec.host = "Example.COM".into();
        default_dns(&mut dns);
        assert_eq!(dns.spec.host, "example.com");
    }
}

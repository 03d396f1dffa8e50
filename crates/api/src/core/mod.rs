//! core/v1 kinds with Kubernetes' exact JSON field names, one file per kind.
//!
//! Every struct denies unknown fields, so a misspelled field in a manifest is an error
//! instead of being silently dropped. Sub-objects Weft does not interpret are kept as
//! opaque JSON so real manifests still apply and round-trip.

mod container;
mod endpoints;
mod event;
mod namespace;
mod node;
mod pod;
mod pod_status;
mod reference;
mod service;

pub use container::{
    Container, ContainerPort, EnvVar, ExecAction, GrpcAction, HttpGetAction, HttpHeader, Probe,
    TcpSocketAction,
};
pub use endpoints::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
pub use event::{Event, EventSource};
pub use namespace::{Namespace, NamespaceSpec, NamespaceStatus};
pub use node::{
    Node, NodeAddress, NodeSpec, NodeStatus, ANNOTATION_NODE_SERVICES, ANNOTATION_SERVED_BY_NODES,
    ANNOTATION_UNDERLAY_IP, ANNOTATION_VTEP_MAC,
};
pub use pod::{HostAlias, Pod, PodDnsConfig, PodDnsConfigOption, PodSpec};
pub use pod_status::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIp, PodIp, PodStatus,
};
pub use reference::ObjectReference;
pub use service::{
    ClientIpConfig, LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec,
    ServiceStatus, ServiceType, SessionAffinityConfig,
};

/// Implements [`crate::Object`] and a `Default` that fills `apiVersion` and `kind`, so a
/// kind built in code serializes like one read from a manifest.
macro_rules! object {
    ($ty:ident, $info:path, $($field:ident),*) => {
        impl crate::Object for $ty {
            const INFO: &'static crate::ResourceInfo = &$info;
            fn meta(&self) -> &crate::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut crate::ObjectMeta {
                &mut self.metadata
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty {
                    api_version: $info.api_version(),
                    kind: $info.kind.to_string(),
                    metadata: Default::default(),
                    $($field: Default::default(),)*
                }
            }
        }
    };
}
pub(crate) use object;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::meta::IntOrString;
    use crate::Object;

    #[test]
    fn service_type_and_headless() {
        let mut svc = Service::default();
        assert_eq!(svc.service_type(), Some(ServiceType::ClusterIP));
        assert!(!svc.is_headless());
        svc.spec.cluster_ip = "None".into();
        assert!(svc.is_headless());
        svc.spec.type_ = "NodePort".into();
        assert_eq!(svc.service_type(), Some(ServiceType::NodePort));
        assert!(ServiceType::NodePort.has_node_ports());
        assert!(!ServiceType::ClusterIP.has_node_ports());
        svc.spec.type_ = "nodeport".into();
        assert_eq!(svc.service_type(), None);
    }

    #[test]
    fn object_info_and_defaults() {
        assert_eq!(Service::INFO.kind, "Service");
        assert_eq!(Endpoints::INFO.plural, "endpoints");
        let ns = Namespace::default();
        assert_eq!(
            (ns.api_version.as_str(), ns.kind.as_str()),
            ("v1", "Namespace")
        );
        let ev = Event::default();
        assert_eq!(ev.kind, "Event");
    }

    #[test]
    fn int_or_string_accepts_both_and_says_what_it_wants() {
        let port: IntOrString = serde_json::from_value(json!(8080)).expect("int");
        assert_eq!(port, IntOrString::Int(8080));
        let port: IntOrString = serde_json::from_value(json!("http")).expect("string");
        assert_eq!(port, IntOrString::String("http".into()));
        let err = serde_json::from_value::<IntOrString>(json!(1.5)).expect_err("float");
        assert!(
            err.to_string().contains("a 32-bit integer or a string"),
            "{err}"
        );
        let err = serde_json::from_value::<IntOrString>(json!(-3_000_000_000i64)).expect_err("big");
        assert!(err.to_string().contains("invalid value"), "{err}");
        assert_eq!(
            serde_json::to_value(IntOrString::Int(80)).ok(),
            Some(json!(80))
        );
    }

    #[test]
    fn node_quantities_accept_numbers() {
        let status: NodeStatus = serde_json::from_value(json!({
            "capacity": {"cpu": 4, "memory": "8Gi", "fraction": 0.5}
        }))
        .expect("decodes");
        assert_eq!(status.capacity["cpu"], "4");
        assert_eq!(status.capacity["memory"], "8Gi");
        assert_eq!(status.capacity["fraction"], "0.5");
    }

    #[test]
    fn container_port_lookup_defaults_protocol() {
        let mut pod = Pod::default();
        pod.spec.containers.push(Container {
            ports: vec![
                ContainerPort {
                    name: "dns".into(),
                    container_port: 53,
                    protocol: "UDP".into(),
                    ..Default::default()
                },
                ContainerPort {
                    container_port: 9000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        pod.spec.containers.push(Container {
            ports: vec![ContainerPort {
                name: "http".into(),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(pod.container_port_by_name("dns"), Some((53, "UDP")));
        assert_eq!(pod.container_port_by_name("http"), Some((8080, "TCP")));
        assert_eq!(pod.container_port_by_name(""), None);
    }

    #[test]
    fn readiness_follows_the_ready_condition() {
        let cond = |status: &str| crate::Condition {
            type_: "Ready".into(),
            status: status.into(),
            ..Default::default()
        };
        let mut pod = Pod::default();
        assert!(!pod.is_ready());
        pod.status.conditions.push(cond("False"));
        assert!(!pod.is_ready());
        pod.status.conditions[0] = cond("True");
        assert!(pod.is_ready());
        let mut node = Node::default();
        node.status.conditions.push(cond("Unknown"));
        assert!(!node.is_ready());
        node.status.conditions[0] = cond("True");
        assert!(node.is_ready());
    }
}

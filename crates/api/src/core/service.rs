use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{Condition, IntOrString, ObjectMeta};
use crate::resources;
use crate::util::{is_default, is_false};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: ServiceStatus,
}
super::object!(Service, resources::SERVICE, spec, status);

/// `spec.type`. An empty type means ClusterIP, Kubernetes' default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl ServiceType {
    pub const ALL: [ServiceType; 4] = [
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
        ServiceType::ExternalName,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }

    /// Parses `spec.type`; "" is ClusterIP. None for a type Kubernetes does not have.
    pub fn parse(s: &str) -> Option<ServiceType> {
        if s.is_empty() {
            return Some(ServiceType::ClusterIP);
        }
        ServiceType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// NodePort and LoadBalancer Services open a port on every node.
    pub fn has_node_ports(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

impl std::fmt::Display for ServiceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Service {
    /// `clusterIP: None`: no virtual IP; DNS answers with the endpoints themselves.
    pub fn is_headless(&self) -> bool {
        self.spec.cluster_ip == "None"
    }

    /// The Service's type; None when `spec.type` is not a Kubernetes type (validation
    /// rejects those).
    pub fn service_type(&self) -> Option<ServiceType> {
        ServiceType::parse(&self.spec.type_)
    }

    /// True when this Service's selector picks a pod with these labels. A Service without a
    /// selector selects nothing: its Endpoints are managed by hand, as in Kubernetes.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.spec.selector.is_empty() && crate::selector::map_matches(&self.spec.selector, labels)
    }

    /// The port with this name (`""` for a single unnamed port).
    pub fn port_by_name(&self, name: &str) -> Option<&ServicePort> {
        self.spec.ports.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// "" (allocate), "None" (headless) or an address.
    #[serde(
        default,
        rename = "clusterIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster_ip: String,
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    #[serde(
        default,
        rename = "externalName",
        skip_serializing_if = "String::is_empty"
    )]
    pub external_name: String,
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// `None` (default) or `ClientIP`.
    #[serde(
        default,
        rename = "sessionAffinity",
        skip_serializing_if = "String::is_empty"
    )]
    pub session_affinity: String,
    #[serde(
        default,
        rename = "sessionAffinityConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// `Cluster` or `Local`; only for NodePort and LoadBalancer.
    #[serde(
        default,
        rename = "externalTrafficPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub external_traffic_policy: String,
    /// `Cluster` or `Local`.
    #[serde(
        default,
        rename = "internalTrafficPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub internal_traffic_policy: String,
    #[serde(
        default,
        rename = "publishNotReadyAddresses",
        skip_serializing_if = "is_false"
    )]
    pub publish_not_ready_addresses: bool,
    /// `IPv4` and/or `IPv6`.
    #[serde(default, rename = "ipFamilies", skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    /// `SingleStack`, `PreferDualStack` or `RequireDualStack`.
    #[serde(
        default,
        rename = "ipFamilyPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub ip_family_policy: String,
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub load_balancer_ip: String,
    #[serde(
        default,
        rename = "loadBalancerSourceRanges",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancer_source_ranges: Vec<String>,
    #[serde(
        default,
        rename = "loadBalancerClass",
        skip_serializing_if = "String::is_empty"
    )]
    pub load_balancer_class: String,
    #[serde(
        default,
        rename = "healthCheckNodePort",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_node_port: Option<i32>,
    #[serde(
        default,
        rename = "allocateLoadBalancerNodePorts",
        skip_serializing_if = "Option::is_none"
    )]
    pub allocate_load_balancer_node_ports: Option<bool>,
    #[serde(
        default,
        rename = "trafficDistribution",
        skip_serializing_if = "String::is_empty"
    )]
    pub traffic_distribution: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// Required (a DNS-1123 label) when the Service has more than one port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default)]
    pub port: i32,
    /// A number, or the name of a container port looked up in each selected pod. Defaults
    /// to `port`.
    #[serde(
        default,
        rename = "targetPort",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_port: Option<IntOrString>,
    #[serde(default, rename = "nodePort", skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    #[serde(
        default,
        rename = "appProtocol",
        skip_serializing_if = "String::is_empty"
    )]
    pub app_protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionAffinityConfig {
    #[serde(default, rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    /// Seconds a client sticks to one endpoint: 1..86400, default 10800.
    #[serde(
        default,
        rename = "timeoutSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStatus {
    #[serde(default, rename = "loadBalancer", skip_serializing_if = "is_default")]
    pub load_balancer: LoadBalancerStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Also used for an Ingress' `status.loadBalancer`, which has the same shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerIngress {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, rename = "ipMode", skip_serializing_if = "String::is_empty")]
    pub ip_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Value>,
}

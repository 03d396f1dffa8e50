use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{Condition, ObjectMeta};
use crate::resources;
use crate::util::{is_default, is_false, quantity_map};

/// Annotation carrying the MAC address of the node's VXLAN device; peers install it as the
/// permanent ARP and FDB entry for this node.
pub const ANNOTATION_VTEP_MAC: &str = "weft.io/vtep-mac";
/// Annotation carrying the underlay address VXLAN packets to this node are sent to.
pub const ANNOTATION_UNDERLAY_IP: &str = "weft.io/underlay-ip";
/// Annotation listing the cluster services the node agent serves itself on the node's
/// InternalIP, comma-separated: `dns`, `router`.
pub const ANNOTATION_NODE_SERVICES: &str = "weft.io/node-services";
/// Service annotation naming one of those (`dns`): the Service's Endpoints then hold every
/// Ready node serving it, at the Service's target ports, besides any selected Pods.
pub const ANNOTATION_SERVED_BY_NODES: &str = "weft.io/served-by-nodes";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
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
    #[serde(default, skip_serializing_if = "is_default")]
    pub spec: NodeSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: NodeStatus,
}
super::object!(Node, resources::NODE, spec, status);

impl Node {
    /// True when the `Ready` condition is `"True"`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// The first address of the given type (`InternalIP`, `Hostname`, ...).
    pub fn address(&self, type_: &str) -> Option<&str> {
        self.status
            .addresses
            .iter()
            .find(|a| a.type_ == type_)
            .map(|a| a.address.as_str())
    }

    /// Whether this node's agent serves `service` (see [`ANNOTATION_NODE_SERVICES`]).
    pub fn serves(&self, service: &str) -> bool {
        self.metadata
            .annotations
            .get(ANNOTATION_NODE_SERVICES)
            .is_some_and(|list| list.split(',').any(|s| s.trim() == service))
    }

    pub fn vtep_mac(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(ANNOTATION_VTEP_MAC)
            .map(String::as_str)
    }

    pub fn underlay_ip(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(ANNOTATION_UNDERLAY_IP)
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default, rename = "podCIDR", skip_serializing_if = "String::is_empty")]
    pub pod_cidr: String,
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Value>,
    /// Deprecated Kubernetes fields, accepted so old exports still apply.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "String::is_empty"
    )]
    pub external_id: String,
    #[serde(
        default,
        rename = "configSource",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_source: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(
        default,
        deserialize_with = "quantity_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub capacity: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "quantity_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub allocatable: BTreeMap<String, String>,
    #[serde(default, rename = "nodeInfo", skip_serializing_if = "Option::is_none")]
    pub node_info: Option<Value>,
    #[serde(
        default,
        rename = "daemonEndpoints",
        skip_serializing_if = "Option::is_none"
    )]
    pub daemon_endpoints: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    // Written by a kubelet; accepted so `kubectl get node -o yaml` output applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Value>,
    #[serde(
        default,
        rename = "volumesInUse",
        skip_serializing_if = "Option::is_none"
    )]
    pub volumes_in_use: Option<Value>,
    #[serde(
        default,
        rename = "volumesAttached",
        skip_serializing_if = "Option::is_none"
    )]
    pub volumes_attached: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(
        default,
        rename = "runtimeHandlers",
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_handlers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, ...
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

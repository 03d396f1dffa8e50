use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::container::Container;
use super::pod_status::PodStatus;
use crate::meta::ObjectMeta;
use crate::resources;
use crate::util::{is_default, is_false};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pod {
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
    pub spec: PodSpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: PodStatus,
}
super::object!(Pod, resources::POD, spec, status);

impl Pod {
    /// True when the `Ready` condition is `"True"`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// Resolves a named container port (a Service's `targetPort: http`) to its number and
    /// protocol, searching containers in order as Kubernetes does. An unset protocol is TCP.
    pub fn container_port_by_name(&self, name: &str) -> Option<(i32, &str)> {
        self.spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .find(|p| !name.is_empty() && p.name == name)
            .map(|p| {
                let protocol = if p.protocol.is_empty() {
                    "TCP"
                } else {
                    p.protocol.as_str()
                };
                (p.container_port, protocol)
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(
        default,
        rename = "initContainers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub init_containers: Vec<Container>,
    #[serde(default, rename = "nodeName", skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subdomain: String,
    #[serde(default, rename = "hostAliases", skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// `ClusterFirst` (default), `ClusterFirstWithHostNet`, `Default` or `None`.
    #[serde(
        default,
        rename = "dnsPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub dns_policy: String,
    #[serde(default, rename = "dnsConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    #[serde(
        default,
        rename = "restartPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub restart_policy: String,
    #[serde(
        default,
        rename = "terminationGracePeriodSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(
        default,
        rename = "activeDeadlineSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, rename = "hostNetwork", skip_serializing_if = "is_false")]
    pub host_network: bool,
    #[serde(default, rename = "hostPID", skip_serializing_if = "is_false")]
    pub host_pid: bool,
    #[serde(default, rename = "hostIPC", skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    #[serde(
        default,
        rename = "serviceAccountName",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_account_name: String,
    /// Deprecated alias of `serviceAccountName`, still written by Kubernetes.
    #[serde(
        default,
        rename = "serviceAccount",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_account: String,
    #[serde(
        default,
        rename = "automountServiceAccountToken",
        skip_serializing_if = "Option::is_none"
    )]
    pub automount_service_account_token: Option<bool>,
    #[serde(
        default,
        rename = "nodeSelector",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Value>,
    #[serde(
        default,
        rename = "securityContext",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_context: Option<Value>,
    #[serde(
        default,
        rename = "imagePullSecrets",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_pull_secrets: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(
        default,
        rename = "priorityClassName",
        skip_serializing_if = "String::is_empty"
    )]
    pub priority_class_name: String,
    #[serde(
        default,
        rename = "enableServiceLinks",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_service_links: Option<bool>,
    #[serde(
        default,
        rename = "readinessGates",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_gates: Option<Value>,
    #[serde(
        default,
        rename = "schedulerName",
        skip_serializing_if = "String::is_empty"
    )]
    pub scheduler_name: String,
    #[serde(
        default,
        rename = "setHostnameAsFQDN",
        skip_serializing_if = "Option::is_none"
    )]
    pub set_hostname_as_fqdn: Option<bool>,
    #[serde(
        default,
        rename = "shareProcessNamespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub share_process_namespace: Option<bool>,
    // Kubernetes fields Weft does not interpret, accepted so exported manifests apply.
    #[serde(
        default,
        rename = "preemptionPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub preemption_policy: String,
    #[serde(
        default,
        rename = "runtimeClassName",
        skip_serializing_if = "String::is_empty"
    )]
    pub runtime_class_name: String,
    #[serde(
        default,
        rename = "topologySpreadConstraints",
        skip_serializing_if = "Option::is_none"
    )]
    pub topology_spread_constraints: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<Value>,
    #[serde(
        default,
        rename = "ephemeralContainers",
        skip_serializing_if = "Option::is_none"
    )]
    pub ephemeral_containers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Value>,
    #[serde(
        default,
        rename = "schedulingGates",
        skip_serializing_if = "Option::is_none"
    )]
    pub scheduling_gates: Option<Value>,
    #[serde(
        default,
        rename = "resourceClaims",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_claims: Option<Value>,
    #[serde(default, rename = "hostUsers", skip_serializing_if = "Option::is_none")]
    pub host_users: Option<bool>,
    /// Pod-level resources (Kubernetes 1.32+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
}

/// An `/etc/hosts` entry added to the pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAlias {
    #[serde(default)]
    pub ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// Extra resolver settings, merged into what `dnsPolicy` generates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodDnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// A resolv.conf option such as `ndots:2` (`name: ndots, value: "2"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodDnsConfigOption {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

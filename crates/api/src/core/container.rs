use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::IntOrString;
use crate::util::is_false;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(
        default,
        rename = "workingDir",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, rename = "envFrom", skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    #[serde(
        default,
        rename = "volumeMounts",
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_mounts: Option<Value>,
    #[serde(
        default,
        rename = "volumeDevices",
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_devices: Option<Value>,
    #[serde(
        default,
        rename = "readinessProbe",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_probe: Option<Probe>,
    #[serde(
        default,
        rename = "livenessProbe",
        skip_serializing_if = "Option::is_none"
    )]
    pub liveness_probe: Option<Probe>,
    #[serde(
        default,
        rename = "startupProbe",
        skip_serializing_if = "Option::is_none"
    )]
    pub startup_probe: Option<Probe>,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(
        default,
        rename = "imagePullPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    #[serde(
        default,
        rename = "securityContext",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_context: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin: bool,
    #[serde(default, rename = "stdinOnce", skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Value>,
    #[serde(
        default,
        rename = "terminationMessagePath",
        skip_serializing_if = "String::is_empty"
    )]
    pub termination_message_path: String,
    #[serde(
        default,
        rename = "terminationMessagePolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub termination_message_policy: String,
    #[serde(
        default,
        rename = "resizePolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub resize_policy: Option<Value>,
    /// Only on init containers: `Always` makes it a sidecar.
    #[serde(
        default,
        rename = "restartPolicy",
        skip_serializing_if = "String::is_empty"
    )]
    pub restart_policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, rename = "valueFrom", skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerPort {
    /// An IANA_SVC_NAME a Service's `targetPort` may refer to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, rename = "containerPort")]
    pub container_port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, rename = "hostPort", skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A readiness, liveness or startup check. Exactly one handler (`httpGet`, `tcpSocket`,
/// `exec`, `grpc`) must be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    #[serde(default, rename = "httpGet", skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, rename = "tcpSocket", skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    #[serde(
        default,
        rename = "initialDelaySeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_delay_seconds: Option<i32>,
    #[serde(
        default,
        rename = "periodSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub period_seconds: Option<i32>,
    #[serde(
        default,
        rename = "timeoutSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_seconds: Option<i32>,
    #[serde(
        default,
        rename = "successThreshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub success_threshold: Option<i32>,
    #[serde(
        default,
        rename = "failureThreshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_threshold: Option<i32>,
    #[serde(
        default,
        rename = "terminationGracePeriodSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub termination_grace_period_seconds: Option<i64>,
}

impl Probe {
    /// How many handlers are set; a valid probe has exactly one.
    pub fn handler_count(&self) -> usize {
        [
            self.http_get.is_some(),
            self.tcp_socket.is_some(),
            self.exec.is_some(),
            self.grpc.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGetAction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// A number or the name of a container port.
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `HTTP` (default) or `HTTPS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, rename = "httpHeaders", skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSocketAction {
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcAction {
    #[serde(default)]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

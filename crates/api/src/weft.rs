//! weft.io/v1 kinds: Minik8s' `DNS` path-routing object.

use serde::{Deserialize, Serialize};

use crate::meta::{IntOrString, ObjectMeta};
use crate::resources;

/// A host name plus URL paths, each routed to a Service port by the path router:
/// `http://<host>/<path>` → `<service>:<port>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
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
    pub spec: DnsSpec,
}
crate::core::object!(Dns, resources::DNS, spec);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub paths: Vec<DnsPath>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPath {
    pub path: String,
    pub service: DnsServiceRef,
}

/// A Service in the DNS object's namespace and one of its ports, by number or name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsServiceRef {
    pub name: String,
    pub port: IntOrString,
}

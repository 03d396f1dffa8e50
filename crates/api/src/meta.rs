//! Object metadata shared by every kind: `metadata`, list metadata and the `Status` body
//! the API server answers errors with. Field names are exactly Kubernetes'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of every stored object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        default,
        rename = "generateName",
        skip_serializing_if = "Option::is_none"
    )]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by the API server from the store's revision; a client sends it back on update
    /// for compare-and-swap.
    #[serde(
        default,
        rename = "resourceVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(
        default,
        rename = "creationTimestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_timestamp: Option<String>,
    #[serde(
        default,
        rename = "deletionTimestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub deletion_timestamp: Option<String>,
    #[serde(
        default,
        rename = "deletionGracePeriodSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "ownerReferences",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub owner_references: Vec<OwnerReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Accepted so manifests exported from Kubernetes apply; never interpreted.
    #[serde(
        default,
        rename = "managedFields",
        skip_serializing_if = "Option::is_none"
    )]
    pub managed_fields: Option<serde_json::Value>,
    #[serde(default, rename = "selfLink", skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerReference {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(
        default,
        rename = "blockOwnerDeletion",
        skip_serializing_if = "Option::is_none"
    )]
    pub block_owner_deletion: Option<bool>,
}

/// `metadata` of a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(
        default,
        rename = "resourceVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_version: Option<String>,
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// The `Status` object (meta/v1) the API server returns for errors and for deletes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default = "status_kind")]
    pub kind: String,
    #[serde(rename = "apiVersion", default = "v1")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ListMeta,
    /// "Success" or "Failure".
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    /// Machine-readable reason: NotFound, AlreadyExists, Conflict, Invalid, Gone, ...
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default)]
    pub code: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub field: String,
}

fn status_kind() -> String {
    "Status".into()
}
fn v1() -> String {
    "v1".into()
}

impl Status {
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: status_kind(),
            api_version: v1(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
            ..Default::default()
        }
    }
    pub fn success() -> Self {
        Status {
            kind: status_kind(),
            api_version: v1(),
            status: "Success".into(),
            code: 200,
            ..Default::default()
        }
    }
}

/// A condition as Kubernetes writes them on Pods and Nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(
        default,
        rename = "lastProbeTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_probe_time: Option<String>,
    #[serde(
        default,
        rename = "lastHeartbeatTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_heartbeat_time: Option<String>,
    #[serde(
        default,
        rename = "lastTransitionTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Written by Kubernetes 1.33+ on Pod conditions and by metav1.Condition (Service status).
    #[serde(
        default,
        rename = "observedGeneration",
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_generation: Option<i64>,
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, `Z`).
pub fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `conditions` as JSON with the condition of type `type_` replaced by `replacement` (or
/// `replacement` appended): what a status writer sends when one condition changes.
pub fn with_condition(
    conditions: &[Condition],
    type_: &str,
    replacement: serde_json::Value,
) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = conditions
        .iter()
        .filter(|c| c.type_ != type_)
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    out.push(replacement);
    out
}

/// Kubernetes' int-or-string (`targetPort: 8080` or `targetPort: http`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

// Hand-written rather than `untagged` so a wrong value says what was expected instead of
// "data did not match any variant".
impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntOrStringVisitor;
        impl serde::de::Visitor<'_> for IntOrStringVisitor {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a 32-bit integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        deserializer.deserialize_any(IntOrStringVisitor)
    }
}

impl From<i32> for IntOrString {
    fn from(v: i32) -> Self {
        IntOrString::Int(v)
    }
}

impl From<&str> for IntOrString {
    fn from(v: &str) -> Self {
        IntOrString::String(v.to_string())
    }
}

impl std::fmt::Display for IntOrString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod condition_tests {
    use super::*;

    #[test]
    fn with_condition_replaces_only_its_type() {
        let conds = vec![
            Condition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            },
            Condition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                ..Default::default()
            },
        ];
        let out = with_condition(
            &conds,
            "Ready",
            serde_json::json!({"type": "Ready", "status": "Unknown"}),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["type"], "PodScheduled");
        assert_eq!(
            out[1],
            serde_json::json!({"type": "Ready", "status": "Unknown"})
        );
        assert!(now_timestamp().ends_with('Z'));
    }
}

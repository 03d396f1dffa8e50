use serde::{Deserialize, Serialize};

/// A pointer to another object: Endpoints' `targetRef`, an Event's `involvedObject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(
        default,
        rename = "resourceVersion",
        skip_serializing_if = "String::is_empty"
    )]
    pub resource_version: String,
    #[serde(
        default,
        rename = "fieldPath",
        skip_serializing_if = "String::is_empty"
    )]
    pub field_path: String,
}

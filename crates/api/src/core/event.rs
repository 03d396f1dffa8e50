use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reference::ObjectReference;
use crate::meta::ObjectMeta;
use crate::resources;
use crate::util::is_default;

/// A core/v1 Event: something that happened to `involvedObject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
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
    #[serde(default, rename = "involvedObject")]
    pub involved_object: ObjectReference,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub source: EventSource,
    #[serde(
        default,
        rename = "firstTimestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_timestamp: Option<String>,
    #[serde(
        default,
        rename = "lastTimestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, rename = "eventTime", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(
        default,
        rename = "reportingComponent",
        skip_serializing_if = "String::is_empty"
    )]
    pub reporting_component: String,
    #[serde(
        default,
        rename = "reportingInstance",
        skip_serializing_if = "String::is_empty"
    )]
    pub reporting_instance: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Value>,
}

super::object!(
    Event,
    resources::EVENT,
    involved_object,
    reason,
    message,
    source,
    first_timestamp,
    last_timestamp,
    count,
    type_,
    event_time,
    reporting_component,
    reporting_instance,
    action,
    related,
    series
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

//! Decoding manifests and request bodies into typed objects, strictly: the kind comes from
//! `apiVersion` + `kind`, and an unknown field is an error naming its path.

mod documents;
mod error;
mod locate;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use documents::{decode_documents, parse_documents};
pub use error::DecodeError;

use crate::core::{Endpoints, Event, Namespace, Node, Pod, Service};
use crate::meta::ObjectMeta;
use crate::networking::{Ingress, NetworkPolicy};
use crate::resources::{self, ResourceInfo};
use crate::util::quote;
use crate::validation::{self, ValidationErrors};
use crate::weft::Dns;
use crate::{defaults, Object};

/// Any object the API serves.
// Unboxed so callers can match and build variants directly; objects are moved rarely
// enough that the size of a Pod does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnyObject {
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    Service(Service),
    Endpoints(Endpoints),
    Event(Event),
    Dns(Dns),
    Ingress(Ingress),
    NetworkPolicy(NetworkPolicy),
}

/// Runs `$body` with `$o` bound to the inner object, whatever the variant.
macro_rules! each {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            AnyObject::Namespace($o) => $body,
            AnyObject::Node($o) => $body,
            AnyObject::Pod($o) => $body,
            AnyObject::Service($o) => $body,
            AnyObject::Endpoints($o) => $body,
            AnyObject::Event($o) => $body,
            AnyObject::Dns($o) => $body,
            AnyObject::Ingress($o) => $body,
            AnyObject::NetworkPolicy($o) => $body,
        }
    };
}

macro_rules! conversions {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for AnyObject {
            fn from(o: $ty) -> Self {
                AnyObject::$variant(o)
            }
        }

        /// Gives the object back when it is of another kind.
        impl TryFrom<AnyObject> for $ty {
            type Error = AnyObject;
            fn try_from(o: AnyObject) -> Result<Self, AnyObject> {
                match o {
                    AnyObject::$variant(o) => Ok(o),
                    other => Err(other),
                }
            }
        }
    )*};
}

conversions!(
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    Service(Service),
    Endpoints(Endpoints),
    Event(Event),
    Dns(Dns),
    Ingress(Ingress),
    NetworkPolicy(NetworkPolicy)
);

/// A path segment of a decode error, kept structured so the YAML source can be searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

pub(crate) fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A decode error and where it points, before the path is rendered.
pub(crate) struct Located {
    pub(crate) segments: Vec<Segment>,
    pub(crate) message: String,
    /// Line and column when already known (YAML syntax errors).
    pub(crate) position: Option<(usize, usize)>,
    /// The path only locates the error; the message already names the field.
    pub(crate) hide_path: bool,
}

impl Located {
    pub(crate) fn new(segments: Vec<Segment>, message: impl Into<String>) -> Self {
        Located {
            segments,
            message: message.into(),
            position: None,
            hide_path: false,
        }
    }
}

impl AnyObject {
    /// Decodes one object from its JSON form, choosing the type by `apiVersion` and `kind`.
    pub fn decode(value: Value) -> Result<AnyObject, DecodeError> {
        decode_located(value).map_err(|e| {
            let mut err = DecodeError::new(e.message);
            if !e.segments.is_empty() && !e.hide_path {
                err.path = Some(render_path(&e.segments));
            }
            err
        })
    }

    pub fn info(&self) -> &'static ResourceInfo {
        fn info_of<T: Object>(_: &T) -> &'static ResourceInfo {
            T::INFO
        }
        each!(self, o => info_of(o))
    }

    pub fn kind(&self) -> &'static str {
        self.info().kind
    }

    pub fn meta(&self) -> &ObjectMeta {
        each!(self, o => o.meta())
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => o.meta_mut())
    }

    pub fn name(&self) -> &str {
        &self.meta().name
    }

    /// None for cluster-scoped objects and for namespaced ones not yet given a namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref().filter(|ns| !ns.is_empty())
    }

    /// The JSON form, always with `apiVersion` and `kind` set.
    pub fn to_value(&self) -> Value {
        // Cannot fail: every map in these types has string keys.
        let mut value = each!(self, o => serde_json::to_value(o)).unwrap_or_default();
        if let Value::Object(map) = &mut value {
            let info = self.info();
            map.insert("apiVersion".into(), Value::String(info.api_version()));
            map.insert("kind".into(), Value::String(info.kind.into()));
        }
        value
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            AnyObject::Namespace(o) => validation::validate_namespace(o),
            AnyObject::Node(o) => validation::validate_node(o),
            AnyObject::Pod(o) => validation::validate_pod(o),
            AnyObject::Service(o) => validation::validate_service(o),
            AnyObject::Endpoints(o) => validation::validate_endpoints(o),
            AnyObject::Event(o) => validation::validate_event(o),
            AnyObject::Dns(o) => validation::validate_dns(o),
            AnyObject::Ingress(o) => validation::validate_ingress(o),
            AnyObject::NetworkPolicy(o) => validation::validate_network_policy(o),
        }
    }

    /// Validates `self` as the replacement of `old`; see [`validation::validate_update`].
    pub fn validate_update(&self, old: &AnyObject) -> Result<(), ValidationErrors> {
        validation::validate_update(self, old)
    }

    /// Fills the values Kubernetes defaults, and `apiVersion`/`kind`.
    pub fn apply_defaults(&mut self) {
        let info = self.info();
        each!(self, o => {
            o.api_version = info.api_version();
            o.kind = info.kind.to_string();
        });
        match self {
            AnyObject::Namespace(o) => defaults::default_namespace(o),
            AnyObject::Pod(o) => defaults::default_pod(o),
            AnyObject::Service(o) => defaults::default_service(o),
            AnyObject::Endpoints(o) => defaults::default_endpoints(o),
            AnyObject::Dns(o) => defaults::default_dns(o),
            AnyObject::NetworkPolicy(o) => defaults::default_network_policy(o),
            AnyObject::Node(_) | AnyObject::Event(_) | AnyObject::Ingress(_) => {}
        }
    }
}

impl Serialize for AnyObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        AnyObject::decode(value).map_err(serde::de::Error::custom)
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_field<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, Located> {
    match map.get(field) {
        None | Some(Value::Null) => Err(Located::new(
            vec![],
            format!("missing field {}", quote(field)),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Located::new(
            vec![Segment::Key(field.into())],
            format!("must be a string, found {}", json_type(other)),
        )),
    }
}

/// `null` means "unset" in Kubernetes manifests (`creationTimestamp: null`, `ports: null`);
/// dropping nulls up front lets non-Option fields take their defaults.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

pub(crate) fn decode_located(mut value: Value) -> Result<AnyObject, Located> {
    let Value::Object(map) = &value else {
        return Err(Located::new(
            vec![],
            format!(
                "expected a mapping with apiVersion and kind, found {}",
                json_type(&value)
            ),
        ));
    };
    let api_version = type_field(map, "apiVersion")?;
    let kind = type_field(map, "kind")?;
    let Some(info) = resources::by_kind(api_version, kind) else {
        let mut message = format!(
            "unknown kind {} (apiVersion {})",
            quote(kind),
            quote(api_version)
        );
        // A known kind under an old group (extensions/v1beta1 Ingress) deserves a hint.
        if let Some(known) = resources::RESOURCES.iter().find(|r| r.kind == kind) {
            message.push_str(&format!(
                "; {} is served as apiVersion {}",
                known.kind,
                quote(&known.api_version())
            ));
        }
        return Err(Located {
            hide_path: true,
            ..Located::new(vec![Segment::Key("kind".into())], message)
        });
    };
    strip_nulls(&mut value);
    let kind = info.kind;
    Ok(match kind {
        "Namespace" => AnyObject::Namespace(typed(value)?),
        "Node" => AnyObject::Node(typed(value)?),
        "Pod" => AnyObject::Pod(typed(value)?),
        "Service" => AnyObject::Service(typed(value)?),
        "Endpoints" => AnyObject::Endpoints(typed(value)?),
        "Event" => AnyObject::Event(typed(value)?),
        "DNS" => AnyObject::Dns(typed(value)?),
        "Ingress" => AnyObject::Ingress(typed(value)?),
        "NetworkPolicy" => AnyObject::NetworkPolicy(typed(value)?),
        // The resource table lists a kind this enum lacks: a programming error, reported
        // rather than panicking.
        other => {
            return Err(Located::new(
                vec![Segment::Key("kind".into())],
                format!("kind {} is not decodable", quote(other)),
            ))
        }
    })
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Located> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let segments = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    Some(Segment::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        Located::new(segments, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests;

//! Object output: `-o yaml`, `-o json`, `-o name`.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use weft_api::ResourceInfo;

use crate::kinds::object_ref;

/// Items of a list response may leave out `apiVersion` and `kind`; printed objects always
/// carry them, as kubectl's do.
pub fn with_type(info: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(info.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::String(info.kind.to_string()));
    }
    obj
}

/// kubectl's wrapper for several objects.
pub fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

pub fn yaml(out: &mut dyn Write, v: &Value) -> Result<()> {
    let text = serde_yaml::to_string(v).context("encoding YAML")?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// JSON indented by four spaces, as kubectl prints it.
pub fn json(out: &mut dyn Write, v: &Value) -> Result<()> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    v.serialize(&mut ser).context("encoding JSON")?;
    buf.push(b'\n');
    out.write_all(&buf)?;
    Ok(())
}

/// `service/web`.
pub fn name(out: &mut dyn Write, info: &ResourceInfo, v: &Value) -> Result<()> {
    let n = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    writeln!(out, "{}", object_ref(info, n))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_four_spaces() {
        let mut out = Vec::new();
        json(&mut out, &json!({"a": {"b": 1}})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n    \"a\": {\n        \"b\": 1\n    }\n}\n"
        );
    }

    #[test]
    fn list_items_get_their_type() {
        let v = with_type(
            &weft_api::resources::INGRESS,
            json!({"metadata": {"name": "x"}}),
        );
        assert_eq!(v["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(v["kind"], "Ingress");
        let mut out = Vec::new();
        yaml(&mut out, &list(vec![v])).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("apiVersion: v1\nitems:\n- apiVersion: networking.k8s.io/v1\n"),
            "{text}"
        );
        assert!(
            text.ends_with("kind: List\nmetadata:\n  resourceVersion: ''\n"),
            "{text}"
        );
    }
}

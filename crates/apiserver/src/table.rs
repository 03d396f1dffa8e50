//! Server-side printing: the `meta.k8s.io` Table kubectl asks for with
//! `Accept: application/json;as=Table;...`, built from the same printers `weftctl` uses.

use serde_json::{json, Value};
use weft_api::printers;
use weft_api::ResourceInfo;

/// Which Table version (if any) an Accept header asks for.
pub fn wanted_table_version(accept: &str) -> Option<&'static str> {
    let mut best = None;
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if !params.contains(&"as=Table") || !params.contains(&"g=meta.k8s.io") {
            continue;
        }
        if params.contains(&"v=v1") {
            return Some("meta.k8s.io/v1");
        }
        if params.contains(&"v=v1beta1") {
            best = Some("meta.k8s.io/v1beta1");
        }
    }
    best
}

fn partial_metadata(object: &Value, api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

/// A Table of `objects`; `include_object` is the `includeObject` query parameter.
pub fn to_table(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    api_version: &str,
    include_object: Option<&str>,
) -> Value {
    let table = printers::table(info, objects, chrono::Utc::now());
    let columns: Vec<Value> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c.name,
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": if c.wide_only { 1 } else { 0 },
            })
        })
        .collect();
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => row.object.clone(),
                _ => partial_metadata(&row.object, api_version),
            };
            json!({"cells": row.cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(wanted_table_version(kubectl), Some("meta.k8s.io/v1"));
        assert_eq!(
            wanted_table_version("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some("meta.k8s.io/v1beta1")
        );
        assert_eq!(wanted_table_version("application/json"), None);
    }
}

//! Multi-document YAML (and JSON, which is YAML) manifests.

use serde::Deserialize;
use serde_json::Value;

use super::locate::locate;
use super::{decode_located, render_path, AnyObject, DecodeError, Located, Segment};

/// One object found in a manifest: which document (0-based) it came from and, for a
/// `kind: List`, which item.
struct Found {
    document: usize,
    item: Option<usize>,
    value: Result<Value, Located>,
}

/// Splits `text` into objects. Empty documents are skipped; a `kind: List` document
/// expands to its `items`. `source` names the text in errors (a file name; "" for none).
pub fn parse_documents(text: &str, source: &str) -> Vec<Result<Value, DecodeError>> {
    let mut out = Vec::new();
    for found in split(text) {
        let (document, item) = (found.document, found.item);
        out.push(
            found
                .value
                .map_err(|e| place(e, text, source, document, item)),
        );
    }
    out
}

/// [`parse_documents`], then [`AnyObject::decode`] on each object, with errors located in
/// `text` by line and column.
pub fn decode_documents(text: &str, source: &str) -> Vec<Result<AnyObject, DecodeError>> {
    let mut out = Vec::new();
    for found in split(text) {
        let (document, item) = (found.document, found.item);
        out.push(
            found
                .value
                .and_then(decode_located)
                .map_err(|e| place(e, text, source, document, item)),
        );
    }
    out
}

/// Fills in the source, document, line and column of an error, and prefixes the path of a
/// List item with `items[i]`.
fn place(
    e: Located,
    text: &str,
    source: &str,
    document: usize,
    item: Option<usize>,
) -> DecodeError {
    let mut full = Vec::new();
    if let Some(i) = item {
        full.push(Segment::Key("items".into()));
        full.push(Segment::Index(i));
    }
    full.extend(e.segments);
    let (line, column) = match e.position.or_else(|| locate(text, document, &full)) {
        Some((l, c)) => (Some(l), Some(c)),
        None => (None, None),
    };
    DecodeError {
        source: (!source.is_empty()).then(|| source.to_string()),
        document: Some(document + 1),
        line,
        column,
        path: (!full.is_empty() && !e.hide_path).then(|| render_path(&full)),
        message: e.message,
    }
}

fn split(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for (document, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(value) if is_list(&value) => expand_list(value, document, &mut out),
            Ok(value) => out.push(Found {
                document,
                item: None,
                value: Ok(value),
            }),
            Err(e) => {
                out.push(syntax_error(&e, document));
                // After a syntax error the parser cannot find the next document reliably.
                break;
            }
        }
    }
    out
}

fn syntax_error(e: &serde_yaml::Error, document: usize) -> Found {
    let mut message = e.to_string();
    // The position goes into the error's own fields; keep it out of the message.
    if let Some(loc) = e.location() {
        let at = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(start) = message.find(&at) {
            message.replace_range(start..start + at.len(), "");
        }
    }
    Found {
        document,
        item: None,
        value: Err(Located {
            segments: vec![],
            message,
            position: e.location().map(|l| (l.line(), l.column())),
            hide_path: false,
        }),
    }
}

/// `kind: List`, or a typed list such as `ServiceList` as the API returns it.
fn is_list(value: &Value) -> bool {
    match value.get("kind").and_then(Value::as_str) {
        Some("List") => true,
        Some(kind) => kind.ends_with("List") && value.get("items").is_some(),
        None => false,
    }
}

/// One object per item. Items of a typed list may leave out `apiVersion` and `kind` (the
/// API server writes them that way); they are taken from the list.
fn expand_list(value: Value, document: usize, out: &mut Vec<Found>) {
    let error = |segments, message: &str| Found {
        document,
        item: None,
        value: Err(Located::new(segments, message)),
    };
    let item_kind = value
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| k.strip_suffix("List"))
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let api_version = value.get("apiVersion").cloned();
    let Value::Object(mut map) = value else {
        return;
    };
    let items = match map.remove("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return out.push(error(vec![Segment::Key("items".into())], "must be a list")),
        None => return out.push(error(vec![], "a List needs items")),
    };
    for (i, mut item) in items.into_iter().enumerate() {
        if let (Value::Object(fields), Some(kind)) = (&mut item, &item_kind) {
            if !fields.contains_key("kind") {
                fields.insert("kind".into(), Value::String(kind.clone()));
            }
            if let Some(api_version) = api_version
                .as_ref()
                .filter(|_| !fields.contains_key("apiVersion"))
            {
                fields.insert("apiVersion".into(), api_version.clone());
            }
        }
        out.push(Found {
            document,
            item: Some(i),
            value: Ok(item),
        });
    }
}

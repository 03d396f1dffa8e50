//! Reading manifests for `apply -f` and `delete -f`: files, directories and stdin, split
//! into documents and decoded strictly, each document either a [`Manifest`] or an error
//! message that names the file, the document and the object.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use weft_api::codec::{decode_documents, parse_documents};
use weft_api::resources::{self, ResourceInfo};
use weft_api::DecodeError;

use crate::kinds::kind_ref;

/// One input: a file's name (`<stdin>` for `-`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Reads every `-f` argument before anything is applied, so a mistyped path fails the
/// command up front, as in kubectl. A directory contributes its `.yaml`, `.yml` and `.json`
/// files (not recursively), sorted by name.
pub fn read_sources(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("reading manifests from stdin")?;
            out.push(Source {
                name: "<stdin>".into(),
                text,
            });
            continue;
        }
        if !path.exists() {
            bail!("the path {:?} does not exist", path.display().to_string());
        }
        if path.is_dir() {
            for file in manifest_files(path)? {
                out.push(read_file(&file)?);
            }
        } else {
            out.push(read_file(path)?);
        }
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Source> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let is_manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A document that decoded: the user's JSON (sent as is, and recorded as the
/// last-applied configuration) and what it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub info: &'static ResourceInfo,
    pub name: String,
    /// `metadata.namespace` as written, if any.
    pub namespace: Option<String>,
    pub value: Value,
}

/// One document of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub source: String,
    /// 1-based YAML document number in the source.
    pub number: usize,
    /// `service/web` when known (even for a document that failed to decode).
    pub object: Option<String>,
    pub manifest: Result<Manifest, String>,
}

impl Doc {
    /// `web.yaml: document 2 (service/web)`: the prefix of every message about it.
    pub fn label(&self) -> String {
        match &self.object {
            Some(o) => format!("{}: document {} ({o})", self.source, self.number),
            None => format!("{}: document {}", self.source, self.number),
        }
    }

    /// The error line (without `error: `) for a failure of this document.
    pub fn error(&self, message: impl std::fmt::Display) -> String {
        format!("{}: {message}", self.label())
    }
}

/// A decode error's detail, the file and document being said by the label:
/// `spec.ports[0]: unknown field "protocl" (line 12, column 7)`.
pub fn decode_detail(e: &DecodeError) -> String {
    let mut s = String::new();
    if let Some(path) = &e.path {
        s.push_str(path);
        s.push_str(": ");
    }
    s.push_str(&e.message);
    match (e.line, e.column) {
        (Some(l), Some(c)) => s.push_str(&format!(" (line {l}, column {c})")),
        (Some(l), None) => s.push_str(&format!(" (line {l})")),
        _ => {}
    }
    s
}

/// `service/web` from a raw document, as far as it says: the kind (lower-case and
/// group-qualified when known) and the name.
fn raw_object_ref(v: &Value) -> Option<String> {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())?;
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = match resources::by_kind(api_version, kind) {
        Some(info) => kind_ref(info),
        None => kind.to_string(),
    };
    match v.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => Some(format!("{kind}/{name}")),
        _ => Some(kind),
    }
}

/// Splits and strictly decodes a source. Every object of the source yields one `Doc`,
/// in order; a syntax error ends the source (the parser cannot find the next document).
pub fn parse_source(src: &Source) -> Vec<Doc> {
    let raw = parse_documents(&src.text, &src.name);
    let decoded = decode_documents(&src.text, &src.name);
    let numbers = document_numbers(&src.text, decoded.len());
    decoded
        .into_iter()
        .enumerate()
        .map(|(i, result)| {
            let number = numbers.get(i).copied().unwrap_or(i + 1);
            let raw_value = raw.get(i).and_then(|r| r.as_ref().ok());
            let object = raw_value.and_then(raw_object_ref);
            match result {
                Err(e) => Doc {
                    source: src.name.clone(),
                    number: e.document.unwrap_or(number),
                    object,
                    manifest: Err(decode_detail(&e)),
                },
                Ok(obj) => {
                    let info = obj.info();
                    let name = obj.name().to_string();
                    let manifest = if name.is_empty() {
                        Err("metadata.name: resource name may not be empty".to_string())
                    } else {
                        Ok(Manifest {
                            info,
                            name,
                            namespace: obj.namespace().map(str::to_string),
                            value: raw_value.cloned().unwrap_or_else(|| obj.to_value()),
                        })
                    };
                    Doc {
                        source: src.name.clone(),
                        number,
                        object,
                        manifest,
                    }
                }
            }
        })
        .collect()
}

/// The 1-based YAML document number of each object `parse_documents` yields, mirroring
/// its rules (empty documents skipped, a List expands to its items, a syntax error ends
/// the text). Should the two ever disagree on the count, objects are numbered in order.
fn document_numbers(text: &str, count: usize) -> Vec<usize> {
    let mut numbers = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(v) => {
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
                let items = v.get("items");
                let is_list = kind == "List" || (kind.ends_with("List") && items.is_some());
                match items.and_then(Value::as_array) {
                    Some(items) if is_list => {
                        numbers.extend(std::iter::repeat_n(i + 1, items.len()))
                    }
                    _ => numbers.push(i + 1),
                }
            }
            Err(_) => {
                numbers.push(i + 1);
                break;
            }
        }
    }
    if numbers.len() != count {
        numbers = (1..=count).collect();
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source {
            name: "web.yaml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn documents_are_numbered_and_named() {
        let docs = parse_source(&src(
            "---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n\
             ---\n\
             ---\n\
             apiVersion: weft.io/v1\nkind: DNS\nmetadata: {name: shop, namespace: shop}\nspec: {host: shop.example.com}\n",
        ));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].label(), "web.yaml: document 1 (service/web)");
        let m = docs[0].manifest.as_ref().unwrap();
        assert_eq!(m.info.kind, "Service");
        assert_eq!(m.namespace, None);
        assert_eq!(m.value["spec"]["ports"][0]["port"], 80);
        assert_eq!(docs[1].label(), "web.yaml: document 3 (dns.weft.io/shop)");
        assert_eq!(
            docs[1].manifest.as_ref().unwrap().namespace.as_deref(),
            Some("shop")
        );
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let docs = parse_source(&src(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n    protocl: TCP\n",
        ));
        let d = &docs[0];
        let msg = d.error(d.manifest.as_ref().unwrap_err());
        assert!(
            msg.starts_with("web.yaml: document 1 (service/web): spec.ports[0]"),
            "{msg}"
        );
        assert!(msg.contains("protocl"), "{msg}");
        assert!(msg.contains("(line 8, column"), "{msg}");
    }

    #[test]
    fn unknown_kinds_and_syntax_errors() {
        let docs = parse_source(&src(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\nkind: [\n",
        ));
        assert_eq!(docs.len(), 2);
        let first = docs[0].error(docs[0].manifest.as_ref().unwrap_err());
        assert!(
            first.starts_with("web.yaml: document 1 (Deployment/web): "),
            "{first}"
        );
        assert!(first.contains("Deployment"), "{first}");
        let second = docs[1].error(docs[1].manifest.as_ref().unwrap_err());
        assert!(second.starts_with("web.yaml: document 2: "), "{second}");
        assert!(second.contains("line"), "{second}");
    }

    #[test]
    fn lists_expand() {
        let docs = parse_source(&src(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n",
        ));
        let labels: Vec<String> = docs.iter().map(Doc::label).collect();
        assert_eq!(
            labels,
            [
                "web.yaml: document 1 (namespace/a)",
                "web.yaml: document 1 (namespace/b)",
                "web.yaml: document 2 (namespace/c)"
            ]
        );
    }

    #[test]
    fn missing_name_is_an_error() {
        let docs = parse_source(&src("apiVersion: v1\nkind: Namespace\nmetadata: {}\n"));
        assert_eq!(
            docs[0].error(docs[0].manifest.as_ref().unwrap_err()),
            "web.yaml: document 1 (namespace): metadata.name: resource name may not be empty"
        );
    }

    #[test]
    fn directories_are_read_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("b.yaml", "b"),
            ("a.yml", "a"),
            ("c.json", "c"),
            ("notes.txt", "x"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let srcs = read_sources(
            &[dir.path().to_path_buf(), PathBuf::from("-")],
            &mut &b"from stdin"[..],
        )
        .unwrap();
        let texts: Vec<&str> = srcs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", "from stdin"]);
        assert_eq!(srcs[3].name, "<stdin>");
        let err = read_sources(&[PathBuf::from("/nonexistent.yaml")], &mut &b""[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the path \"/nonexistent.yaml\" does not exist"
        );
    }
}

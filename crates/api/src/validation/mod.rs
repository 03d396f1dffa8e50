//! Validation as Kubernetes does it: every problem found, each naming the field path, the
//! offending value and what is wrong (`spec.ports[1].port: 70000 is not in 1..65535`).

mod endpoints;
mod meta;
pub mod names;
mod networking;
mod node;
mod pod;
mod service;
mod update;
mod weft;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

pub use endpoints::validate_endpoints;
pub use meta::validate_meta;
pub use networking::{validate_ingress, validate_network_policy};
pub use node::{validate_event, validate_namespace, validate_node};
pub use pod::validate_pod;
pub use service::validate_service;
pub use update::validate_update;
pub use weft::validate_dns;

use crate::meta::IntOrString;
use crate::util::quote;

/// One problem: where, the value found there (rendered as written; empty when the problem
/// is an absence) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub value: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            value: value.into(),
            message: message.into(),
        }
    }

    /// A missing value: `spec.containers: is required`.
    pub fn required(path: impl Into<String>) -> Self {
        FieldError::new(path, "", "is required")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}: {} {}", self.path, self.value, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Every problem found in one object; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// `Ok` when there is nothing to report.
    pub fn check(errors: Vec<FieldError>) -> Result<(), ValidationErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoIterator for ValidationErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

// Shared checks. Each appends what it finds to `errs`.

pub(crate) type Errors = Vec<FieldError>;

pub(crate) const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

pub(crate) fn check_port(errs: &mut Errors, path: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::new(
            path,
            port.to_string(),
            "is not in 1..65535",
        ));
    }
}

/// `value` must be one of `allowed`; empty passes when `allow_empty` (defaulting fills it).
pub(crate) fn check_one_of(
    errs: &mut Errors,
    path: &str,
    value: &str,
    allowed: &[&str],
    allow_empty: bool,
) {
    if (value.is_empty() && allow_empty) || allowed.contains(&value) {
        return;
    }
    errs.push(FieldError::new(
        path,
        quote(value),
        format!("must be one of {}", allowed.join(", ")),
    ));
}

pub(crate) fn check_protocol(errs: &mut Errors, path: &str, protocol: &str) {
    check_one_of(errs, path, protocol, PROTOCOLS, true);
}

pub(crate) fn check_dns1123_label(errs: &mut Errors, path: &str, value: &str) {
    if !names::is_dns1123_label(value) {
        errs.push(FieldError::new(
            path,
            quote(value),
            names::DNS1123_LABEL_MSG,
        ));
    }
}

pub(crate) fn check_dns1123_subdomain(errs: &mut Errors, path: &str, value: &str) {
    if !names::is_dns1123_subdomain(value) {
        errs.push(FieldError::new(
            path,
            quote(value),
            names::DNS1123_SUBDOMAIN_MSG,
        ));
    }
}

pub(crate) fn check_ip(errs: &mut Errors, path: &str, value: &str) -> Option<IpAddr> {
    let ip = value.parse::<IpAddr>().ok();
    if ip.is_none() {
        errs.push(FieldError::new(
            path,
            quote(value),
            "is not a valid IP address",
        ));
    }
    ip
}

pub(crate) fn check_cidr(errs: &mut Errors, path: &str, value: &str) -> Option<ipnet::IpNet> {
    let net = value.parse::<ipnet::IpNet>().ok();
    if net.is_none() {
        errs.push(FieldError::new(
            path,
            quote(value),
            "is not a valid CIDR (address/prefix-length)",
        ));
    }
    net
}

/// Label keys and values; `path` is the map's path (`metadata.labels`, `spec.selector`).
pub(crate) fn check_labels(errs: &mut Errors, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if !names::is_qualified_name(k) {
            errs.push(FieldError::new(path, quote(k), names::QUALIFIED_NAME_MSG));
        }
        if !names::is_label_value(v) {
            errs.push(FieldError::new(
                format!("{path}.{k}"),
                quote(v),
                names::LABEL_VALUE_MSG,
            ));
        }
    }
}

/// A port given as a number (1..65535) or as a name (IANA_SVC_NAME).
pub(crate) fn check_int_or_name_port(errs: &mut Errors, path: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => check_port(errs, path, *n),
        IntOrString::String(s) => check_port_name(errs, path, s),
    }
}

pub(crate) fn check_port_name(errs: &mut Errors, path: &str, name: &str) {
    if !names::is_iana_svc_name(name) {
        errs.push(FieldError::new(path, quote(name), names::IANA_SVC_NAME_MSG));
    }
}

/// Reports the second and later occurrence of a value.
pub(crate) struct Unique<'a> {
    seen: HashSet<&'a str>,
}

impl<'a> Unique<'a> {
    pub(crate) fn new() -> Self {
        Unique {
            seen: HashSet::new(),
        }
    }

    pub(crate) fn check(&mut self, errs: &mut Errors, path: &str, value: &'a str) {
        if !self.seen.insert(value) {
            errs.push(FieldError::new(path, quote(value), "is a duplicate"));
        }
    }
}

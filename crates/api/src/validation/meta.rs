use super::{check_dns1123_label, names, Errors, FieldError};
use crate::meta::ObjectMeta;
use crate::resources::{self, ResourceInfo};
use crate::util::quote;

/// Kubernetes' limit on all annotations of one object together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// `metadata` of an object of kind `info`: name, namespace, labels, annotations.
///
/// A namespaced object may come without a namespace (the API server fills it from the
/// request path before storing); a cluster-scoped object must not carry one.
pub fn validate_meta(meta: &ObjectMeta, info: &ResourceInfo) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // Service names become DNS labels (`<svc>.<ns>.svc`), and so do namespace names.
    let label_names = *info == resources::SERVICE || *info == resources::NAMESPACE;
    let check_name = |value: &str| {
        if label_names {
            names::is_dns1123_label(value)
        } else {
            names::is_dns1123_subdomain(value)
        }
    };
    let name_msg = if label_names {
        names::DNS1123_LABEL_MSG
    } else {
        names::DNS1123_SUBDOMAIN_MSG
    };

    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if meta.name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::new(
                "metadata.name",
                "",
                "is required (or metadata.generateName)",
            ));
        }
    } else if !check_name(&meta.name) {
        errs.push(FieldError::new(
            "metadata.name",
            quote(&meta.name),
            name_msg,
        ));
    }
    // The server appends a random suffix, so a trailing '-' is fine.
    if !generate_name.is_empty() && !check_name(generate_name.trim_end_matches('-')) {
        errs.push(FieldError::new(
            "metadata.generateName",
            quote(generate_name),
            name_msg,
        ));
    }

    let namespace = meta.namespace.as_deref().unwrap_or("");
    if info.namespaced {
        if !namespace.is_empty() {
            check_dns1123_label(&mut errs, "metadata.namespace", namespace);
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::new(
            "metadata.namespace",
            quote(namespace),
            format!("is not allowed: {} is cluster-scoped", info.kind),
        ));
    }

    super::check_labels(&mut errs, "metadata.labels", &meta.labels);
    let mut total = 0;
    for (k, v) in &meta.annotations {
        // Kubernetes checks annotation keys case-insensitively.
        if !names::is_qualified_name(&k.to_ascii_lowercase()) {
            errs.push(FieldError::new(
                "metadata.annotations",
                quote(k),
                names::QUALIFIED_NAME_MSG,
            ));
        }
        total += k.len() + v.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(FieldError::new(
            "metadata.annotations",
            format!("{total} bytes"),
            format!("is more than the limit of {ANNOTATIONS_MAX_BYTES}"),
        ));
    }
    errs
}

pub(crate) fn check_meta(errs: &mut Errors, meta: &ObjectMeta, info: &ResourceInfo) {
    errs.extend(validate_meta(meta, info));
}

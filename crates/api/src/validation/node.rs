//! Cluster-scoped kinds (Node, Namespace) and Events, which need little beyond metadata.

use super::meta::check_meta;
use super::{check_cidr, check_ip, check_one_of, FieldError, ValidationErrors};
use crate::core::{Event, Namespace, Node, ANNOTATION_UNDERLAY_IP, ANNOTATION_VTEP_MAC};
use crate::resources;
use crate::util::quote;

pub fn validate_node(node: &Node) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &node.metadata, &resources::NODE);
    let spec = &node.spec;
    if !spec.pod_cidr.is_empty() {
        check_cidr(&mut errs, "spec.podCIDR", &spec.pod_cidr);
    }
    // At most one CIDR per IP family; the first is `podCIDR`.
    if spec.pod_cidrs.len() > 2 {
        errs.push(FieldError::new(
            "spec.podCIDRs",
            "",
            format!("must have at most 2 entries, has {}", spec.pod_cidrs.len()),
        ));
    }
    for (i, cidr) in spec.pod_cidrs.iter().enumerate() {
        check_cidr(&mut errs, &format!("spec.podCIDRs[{i}]"), cidr);
    }
    if let Some(first) = spec.pod_cidrs.first() {
        if !spec.pod_cidr.is_empty() && *first != spec.pod_cidr {
            errs.push(FieldError::new(
                "spec.podCIDRs[0]",
                quote(first),
                format!("must equal spec.podCIDR {}", quote(&spec.pod_cidr)),
            ));
        }
    }
    // Weft's overlay reads these; a bad value would program a broken FDB/ARP entry.
    if let Some(mac) = node.metadata.annotations.get(ANNOTATION_VTEP_MAC) {
        if !is_mac(mac) {
            errs.push(FieldError::new(
                format!("metadata.annotations.{ANNOTATION_VTEP_MAC}"),
                quote(mac),
                "is not a MAC address (six hex pairs separated by ':')",
            ));
        }
    }
    if let Some(ip) = node.metadata.annotations.get(ANNOTATION_UNDERLAY_IP) {
        check_ip(
            &mut errs,
            &format!("metadata.annotations.{ANNOTATION_UNDERLAY_IP}"),
            ip,
        );
    }
    ValidationErrors::check(errs)
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn validate_namespace(ns: &Namespace) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &ns.metadata, &resources::NAMESPACE);
    check_one_of(
        &mut errs,
        "status.phase",
        &ns.status.phase,
        &["Active", "Terminating"],
        true,
    );
    ValidationErrors::check(errs)
}

pub fn validate_event(event: &Event) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &event.metadata, &resources::EVENT);
    ValidationErrors::check(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node::default();
        n.metadata.name = "node-1".into();
        n.spec.pod_cidr = "10.244.1.0/24".into();
        n
    }

    fn errors(n: &Node) -> Vec<String> {
        match validate_node(n) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn pod_cidr() {
        assert!(errors(&node()).is_empty());
        let mut n = node();
        n.spec.pod_cidr = "10.244.1.0/33".into();
        assert_eq!(
            errors(&n),
            vec!["spec.podCIDR: \"10.244.1.0/33\" is not a valid CIDR (address/prefix-length)"]
        );
    }

    #[test]
    fn overlay_annotations() {
        let mut n = node();
        n.metadata
            .annotations
            .insert(ANNOTATION_VTEP_MAC.into(), "0a:58:0a:f4:01:01".into());
        n.metadata
            .annotations
            .insert(ANNOTATION_UNDERLAY_IP.into(), "192.168.56.11".into());
        assert!(errors(&n).is_empty());
        n.metadata
            .annotations
            .insert(ANNOTATION_VTEP_MAC.into(), "0a:58:0a:f4:01".into());
        assert_eq!(
            errors(&n),
            vec!["metadata.annotations.weft.io/vtep-mac: \"0a:58:0a:f4:01\" is not a MAC address (six hex pairs separated by ':')"]
        );
    }

    #[test]
    fn cluster_scoped_kinds_reject_a_namespace() {
        let mut n = node();
        n.metadata.namespace = Some("default".into());
        assert_eq!(
            errors(&n),
            vec!["metadata.namespace: \"default\" is not allowed: Node is cluster-scoped"]
        );
    }
}

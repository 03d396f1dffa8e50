//! Rules for replacing a stored object: what may not change.

use serde_json::Value;

use super::{Errors, FieldError, ValidationErrors};
use crate::codec::AnyObject;
use crate::core::{Node, Pod, PodSpec, Service};
use crate::util::quote;

/// Validates `new` as a replacement of `old`: everything [`AnyObject::validate`] checks,
/// plus the fields that are immutable.
///
/// The API server is expected to carry server-filled fields over from `old` before calling
/// this (an update that leaves `spec.clusterIP` empty keeps the allocated address); an
/// empty new `clusterIP` is therefore not an error, a different one is.
pub fn validate_update(new: &AnyObject, old: &AnyObject) -> Result<(), ValidationErrors> {
    let mut errs = match new.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    if new.info() != old.info() {
        errs.push(FieldError::new(
            "kind",
            quote(new.info().kind),
            format!("may not replace a {}", old.info().kind),
        ));
        return ValidationErrors::check(errs);
    }
    if new.name() != old.name() {
        errs.push(FieldError::new(
            "metadata.name",
            quote(new.name()),
            format!("cannot replace {}: field is immutable", quote(old.name())),
        ));
    }
    let (new_ns, old_ns) = (new.namespace().unwrap_or(""), old.namespace().unwrap_or(""));
    if new_ns != old_ns {
        errs.push(FieldError::new(
            "metadata.namespace",
            quote(new_ns),
            format!("cannot replace {}: field is immutable", quote(old_ns)),
        ));
    }
    match (new, old) {
        (AnyObject::Service(n), AnyObject::Service(o)) => service(&mut errs, n, o),
        (AnyObject::Node(n), AnyObject::Node(o)) => node(&mut errs, n, o),
        (AnyObject::Pod(n), AnyObject::Pod(o)) => pod(&mut errs, n, o),
        _ => {}
    }
    ValidationErrors::check(errs)
}

fn service(errs: &mut Errors, new: &Service, old: &Service) {
    let (n, o) = (&new.spec.cluster_ip, &old.spec.cluster_ip);
    if !n.is_empty() && !o.is_empty() && n != o {
        errs.push(FieldError::new(
            "spec.clusterIP",
            quote(n),
            format!("cannot replace {}: field is immutable", quote(o)),
        ));
    }
}

fn node(errs: &mut Errors, new: &Node, old: &Node) {
    // Pod addresses on the node were handed out from this range.
    let (n, o) = (&new.spec.pod_cidr, &old.spec.pod_cidr);
    if !o.is_empty() && n != o {
        errs.push(FieldError::new(
            "spec.podCIDR",
            quote(n),
            format!("cannot replace {}: field is immutable once set", quote(o)),
        ));
    }
}

/// A pod's spec is fixed once created, except images, activeDeadlineSeconds, tolerations,
/// and nodeName going from unset to set (the scheduler binding the pod).
fn pod(errs: &mut Errors, new: &Pod, old: &Pod) {
    let binding = old.spec.node_name.is_empty();
    let blanked = |spec: &PodSpec| {
        let mut spec = spec.clone();
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut())
        {
            c.image.clear();
        }
        spec.active_deadline_seconds = None;
        spec.tolerations = None;
        if binding {
            spec.node_name.clear();
        }
        serde_json::to_value(spec).unwrap_or(Value::Null)
    };
    let (n, o) = (blanked(&new.spec), blanked(&old.spec));
    if n == o {
        return;
    }
    let (Value::Object(n), Value::Object(o)) = (n, o) else {
        return;
    };
    let mut keys: Vec<&String> = n.keys().chain(o.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if n.get(key) != o.get(key) {
            errs.push(FieldError::new(
                format!("spec.{key}"),
                "",
                "is immutable (only containers[*].image, initContainers[*].image, activeDeadlineSeconds, tolerations and an unset nodeName may change)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Container, ServicePort};

    fn svc(ip: &str) -> AnyObject {
        let mut s = Service::default();
        s.metadata.name = "web".into();
        s.spec.cluster_ip = ip.into();
        s.spec.ports.push(ServicePort {
            port: 80,
            ..Default::default()
        });
        s.into()
    }

    fn errors(new: &AnyObject, old: &AnyObject) -> Vec<String> {
        match validate_update(new, old) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn cluster_ip_is_immutable_once_set() {
        let old = svc("10.96.0.4");
        assert!(errors(&svc("10.96.0.4"), &old).is_empty());
        assert!(errors(&svc(""), &old).is_empty());
        assert!(errors(&svc("10.96.0.9"), &svc("")).is_empty());
        assert_eq!(
            errors(&svc("10.96.0.5"), &old),
            vec!["spec.clusterIP: \"10.96.0.5\" cannot replace \"10.96.0.4\": field is immutable"]
        );
    }

    #[test]
    fn name_and_kind_are_immutable() {
        let old = svc("");
        let mut new = svc("");
        new.meta_mut().name = "web2".into();
        new.meta_mut().namespace = Some("prod".into());
        assert_eq!(
            errors(&new, &old),
            vec![
                "metadata.name: \"web2\" cannot replace \"web\": field is immutable",
                "metadata.namespace: \"prod\" cannot replace \"\": field is immutable",
            ]
        );
        let mut ns = crate::core::Namespace::default();
        ns.metadata.name = "web".into();
        assert_eq!(
            errors(&ns.into(), &old),
            vec!["kind: \"Namespace\" may not replace a Service"]
        );
    }

    #[test]
    fn node_pod_cidr_is_immutable_once_set() {
        let node = |cidr: &str| {
            let mut n = Node::default();
            n.metadata.name = "n1".into();
            n.spec.pod_cidr = cidr.into();
            AnyObject::from(n)
        };
        assert!(errors(&node("10.244.1.0/24"), &node("")).is_empty());
        assert_eq!(
            errors(&node("10.244.2.0/24"), &node("10.244.1.0/24")).len(),
            1
        );
        assert_eq!(errors(&node(""), &node("10.244.1.0/24")).len(), 1);
    }

    #[test]
    fn pod_spec_is_immutable_except_images() {
        let pod = |image: &str, hostname: &str, node: &str| {
            let mut p = Pod::default();
            p.metadata.name = "p".into();
            p.spec.hostname = hostname.into();
            p.spec.node_name = node.into();
            p.spec.containers.push(Container {
                name: "c".into(),
                image: image.into(),
                ..Default::default()
            });
            AnyObject::from(p)
        };
        let old = pod("nginx:1", "a", "");
        assert!(errors(&pod("nginx:2", "a", ""), &old).is_empty());
        assert!(errors(&pod("nginx:1", "a", "node-1"), &old).is_empty());
        assert_eq!(
            errors(&pod("nginx:1", "b", ""), &old),
            vec!["spec.hostname: is immutable (only containers[*].image, initContainers[*].image, activeDeadlineSeconds, tolerations and an unset nodeName may change)"]
        );
        let bound = pod("nginx:1", "a", "node-1");
        assert_eq!(errors(&pod("nginx:1", "a", "node-2"), &bound).len(), 1);
    }
}

//! Store keys of objects: `/registry/[group/]plural/[namespace/]name`, as the Kubernetes
//! API server lays out etcd, so a list of one namespace or of all is a prefix scan.

use weft_api::ResourceInfo;

fn resource_root(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        format!("/registry/{}/", info.plural)
    } else {
        format!("/registry/{}/{}/", info.group, info.plural)
    }
}

/// The prefix holding every object of `info` (in `namespace`, when given and namespaced).
pub fn prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    match (info.namespaced, namespace) {
        (true, Some(ns)) => format!("{}{ns}/", resource_root(info)),
        _ => resource_root(info),
    }
}

pub fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(info, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::resources::{INGRESS, NODE, SERVICE};

    #[test]
    fn keys_separate_scopes_and_groups() {
        assert_eq!(
            key(&SERVICE, Some("default"), "web"),
            "/registry/services/default/web"
        );
        assert_eq!(prefix(&SERVICE, None), "/registry/services/");
        assert_eq!(key(&NODE, None, "n1"), "/registry/nodes/n1");
        // A namespace given for a cluster-scoped kind is ignored, not put into the key.
        assert_eq!(key(&NODE, Some("default"), "n1"), "/registry/nodes/n1");
        assert_eq!(
            prefix(&INGRESS, Some("shop")),
            "/registry/networking.k8s.io/ingresses/shop/"
        );
    }
}

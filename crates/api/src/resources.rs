//! The table of kinds the API serves: group, version, plural, short names, scope.
//! Discovery, REST routing and `weftctl`'s kind names all read this one table.

#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
}

impl ResourceInfo {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The list kind, e.g. `ServiceList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// True when a user-typed name (`svc`, `services`, `Service`, `services.networking.k8s.io`)
    /// names this resource. Case-insensitive, as kubectl's.
    pub fn is_named(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        if let Some(g) = group {
            if g != self.group {
                return false;
            }
        }
        base == self.plural
            || base == self.singular
            || base == self.kind.to_ascii_lowercase()
            || self.short_names.contains(&base.as_str())
    }
}

pub const NAMESPACE: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
};
pub const NODE: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
    namespaced: false,
};
pub const POD: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    namespaced: true,
};
pub const SERVICE: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    namespaced: true,
};
pub const ENDPOINTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    short_names: &["ep"],
    namespaced: true,
};
pub const EVENT: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    namespaced: true,
};
/// Minik8s' path-routing object: a host name plus URL paths, each mapped to a Service port.
pub const DNS: ResourceInfo = ResourceInfo {
    group: "weft.io",
    version: "v1",
    kind: "DNS",
    plural: "dnses",
    singular: "dns",
    short_names: &[],
    namespaced: true,
};
pub const INGRESS: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    singular: "ingress",
    short_names: &["ing"],
    namespaced: true,
};
pub const NETWORK_POLICY: ResourceInfo = ResourceInfo {
    group: "networking.k8s.io",
    version: "v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    singular: "networkpolicy",
    short_names: &["netpol"],
    namespaced: true,
};

pub static RESOURCES: &[&ResourceInfo] = &[
    &NAMESPACE,
    &NODE,
    &POD,
    &SERVICE,
    &ENDPOINTS,
    &EVENT,
    &DNS,
    &INGRESS,
    &NETWORK_POLICY,
];

/// The resource a user-typed name refers to.
pub fn by_name(name: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().copied().find(|r| r.is_named(name))
}

/// The resource of an `apiVersion` + `kind` pair, as written in a manifest.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The resource at a REST path segment: group ("" core), version, plural.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

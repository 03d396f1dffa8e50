use super::meta::check_meta;
use super::{
    check_cidr, check_dns1123_label, check_dns1123_subdomain, check_int_or_name_port, check_one_of,
    check_port, check_port_name, check_protocol, names, Errors, FieldError, Unique,
    ValidationErrors,
};
use crate::meta::IntOrString;
use crate::networking::{
    Ingress, IngressBackend, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use crate::resources;
use crate::util::quote;

const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];
const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];

pub fn validate_ingress(ing: &Ingress) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &ing.metadata, &resources::INGRESS);
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::new(
            "spec",
            "",
            "must have at least one of rules and defaultBackend",
        ));
    }
    if let Some(class) = spec.ingress_class_name.as_deref() {
        check_dns1123_subdomain(&mut errs, "spec.ingressClassName", class);
    }
    if let Some(backend) = &spec.default_backend {
        check_backend(&mut errs, "spec.defaultBackend", backend);
    }
    for (i, tls) in spec.tls.iter().enumerate() {
        for (j, host) in tls.hosts.iter().enumerate() {
            check_host(&mut errs, &format!("spec.tls[{i}].hosts[{j}]"), host);
        }
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if !rule.host.is_empty() {
            check_host(&mut errs, &format!("{path}.host"), &rule.host);
        }
        let Some(http) = &rule.http else { continue };
        if http.paths.is_empty() {
            errs.push(FieldError::new(
                format!("{path}.http.paths"),
                "",
                "must have at least one path",
            ));
        }
        for (j, p) in http.paths.iter().enumerate() {
            let pp = format!("{path}.http.paths[{j}]");
            if p.path_type.is_empty() {
                errs.push(FieldError::new(
                    format!("{pp}.pathType"),
                    "",
                    "is required (Exact, Prefix or ImplementationSpecific)",
                ));
            } else {
                check_one_of(
                    &mut errs,
                    &format!("{pp}.pathType"),
                    &p.path_type,
                    PATH_TYPES,
                    false,
                );
            }
            // ImplementationSpecific may leave the path empty; the others match on it.
            let path_required = p.path_type == "Exact" || p.path_type == "Prefix";
            if (path_required || !p.path.is_empty()) && !p.path.starts_with('/') {
                errs.push(FieldError::new(
                    format!("{pp}.path"),
                    quote(&p.path),
                    "must be an absolute path (start with '/')",
                ));
            }
            check_backend(&mut errs, &format!("{pp}.backend"), &p.backend);
        }
    }
    ValidationErrors::check(errs)
}

fn check_host(errs: &mut Errors, path: &str, host: &str) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errs.push(FieldError::new(
            path,
            quote(host),
            "must be a DNS name, not an IP address",
        ));
    } else if !names::is_wildcard_dns1123_subdomain(host) {
        errs.push(FieldError::new(
            path,
            quote(host),
            format!("{} ('*.' may lead)", names::DNS1123_SUBDOMAIN_MSG),
        ));
    }
}

fn check_backend(errs: &mut Errors, path: &str, backend: &IngressBackend) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::new(
            path,
            "",
            "may not set both service and resource",
        )),
        (None, None) => errs.push(FieldError::new(path, "", "must set service or resource")),
        _ => {}
    }
    let Some(svc) = &backend.service else { return };
    if svc.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.service.name")));
    } else {
        check_dns1123_label(errs, &format!("{path}.service.name"), &svc.name);
    }
    let port_path = format!("{path}.service.port");
    match (svc.port.number, svc.port.name.as_str()) {
        (Some(n), "") => check_port(errs, &format!("{port_path}.number"), n),
        (None, name) if !name.is_empty() => {
            check_port_name(errs, &format!("{port_path}.name"), name)
        }
        (Some(_), _) => errs.push(FieldError::new(
            port_path,
            "",
            "must set exactly one of number and name, not both",
        )),
        (None, _) => errs.push(FieldError::new(
            port_path,
            "",
            "must set exactly one of number and name",
        )),
    }
}

pub fn validate_network_policy(np: &NetworkPolicy) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &np.metadata, &resources::NETWORK_POLICY);
    let spec = &np.spec;
    errs.extend(spec.pod_selector.validate("spec.podSelector"));
    let mut seen = Unique::new();
    for (i, t) in spec.policy_types.iter().enumerate() {
        let path = format!("spec.policyTypes[{i}]");
        check_one_of(&mut errs, &path, t, POLICY_TYPES, false);
        seen.check(&mut errs, &path, t);
    }
    for (i, rule) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        for (j, peer) in rule.from.iter().enumerate() {
            check_peer(&mut errs, &format!("{path}.from[{j}]"), peer);
        }
        for (j, port) in rule.ports.iter().enumerate() {
            check_policy_port(&mut errs, &format!("{path}.ports[{j}]"), port);
        }
    }
    for (i, rule) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        for (j, peer) in rule.to.iter().enumerate() {
            check_peer(&mut errs, &format!("{path}.to[{j}]"), peer);
        }
        for (j, port) in rule.ports.iter().enumerate() {
            check_policy_port(&mut errs, &format!("{path}.ports[{j}]"), port);
        }
    }
    ValidationErrors::check(errs)
}

fn check_peer(errs: &mut Errors, path: &str, peer: &NetworkPolicyPeer) {
    let selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    match (&peer.ip_block, selectors) {
        (None, false) => errs.push(FieldError::new(
            path,
            "",
            "must set at least one of podSelector, namespaceSelector and ipBlock",
        )),
        (Some(_), true) => errs.push(FieldError::new(
            path,
            "",
            "may not combine ipBlock with podSelector or namespaceSelector",
        )),
        _ => {}
    }
    if let Some(sel) = &peer.pod_selector {
        errs.extend(sel.validate(&format!("{path}.podSelector")));
    }
    if let Some(sel) = &peer.namespace_selector {
        errs.extend(sel.validate(&format!("{path}.namespaceSelector")));
    }
    let Some(block) = &peer.ip_block else { return };
    let cidr_path = format!("{path}.ipBlock.cidr");
    let cidr = if block.cidr.is_empty() {
        errs.push(FieldError::required(cidr_path));
        None
    } else {
        check_cidr(errs, &cidr_path, &block.cidr)
    };
    for (i, except) in block.except.iter().enumerate() {
        let except_path = format!("{path}.ipBlock.except[{i}]");
        let (Some(net), Some(cidr)) = (check_cidr(errs, &except_path, except), cidr) else {
            continue;
        };
        if !(cidr.contains(&net) && net.prefix_len() > cidr.prefix_len()) {
            errs.push(FieldError::new(
                except_path,
                quote(except),
                format!("must be a strict subset of cidr {}", quote(&block.cidr)),
            ));
        }
    }
}

fn check_policy_port(errs: &mut Errors, path: &str, port: &NetworkPolicyPort) {
    check_protocol(errs, &format!("{path}.protocol"), &port.protocol);
    if let Some(p) = &port.port {
        check_int_or_name_port(errs, &format!("{path}.port"), p);
    }
    let Some(end) = port.end_port else { return };
    let end_path = format!("{path}.endPort");
    match port.port {
        Some(IntOrString::Int(start)) => {
            if end < start || end > 65535 {
                errs.push(FieldError::new(
                    end_path,
                    end.to_string(),
                    format!("is not in {start}..65535"),
                ));
            }
        }
        _ => errs.push(FieldError::new(
            end_path,
            end.to_string(),
            "may only be set with a numeric port",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networking::{
        HttpIngressPath, HttpIngressRuleValue, IngressRule, IngressServiceBackend, IpBlock,
        NetworkPolicyIngressRule, ServiceBackendPort,
    };
    use crate::selector::{LabelSelector, LabelSelectorRequirement};

    fn errors(r: Result<(), ValidationErrors>) -> Vec<String> {
        match r {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn backend(name: &str, number: Option<i32>, port_name: &str) -> IngressBackend {
        IngressBackend {
            service: Some(IngressServiceBackend {
                name: name.into(),
                port: ServiceBackendPort {
                    number,
                    name: port_name.into(),
                },
            }),
            resource: None,
        }
    }

    fn ingress() -> Ingress {
        let mut ing = Ingress::default();
        ing.metadata.name = "web".into();
        ing.spec.rules.push(IngressRule {
            host: "example.com".into(),
            http: Some(HttpIngressRuleValue {
                paths: vec![HttpIngressPath {
                    path: "/api".into(),
                    path_type: "Prefix".into(),
                    backend: backend("api", Some(80), ""),
                }],
            }),
        });
        ing
    }

    #[test]
    fn ingress_rules() {
        assert!(errors(validate_ingress(&ingress())).is_empty());
        let mut ing = ingress();
        let http = ing.spec.rules[0].http.as_mut().map(|h| &mut h.paths[0]);
        if let Some(p) = http {
            p.path_type = String::new();
            p.path = "api".into();
            p.backend = backend("api", Some(80), "http");
        }
        ing.spec.rules[0].host = "10.0.0.1".into();
        assert_eq!(
            errors(validate_ingress(&ing)),
            vec![
                "spec.rules[0].host: \"10.0.0.1\" must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].pathType: is required (Exact, Prefix or ImplementationSpecific)",
                "spec.rules[0].http.paths[0].path: \"api\" must be an absolute path (start with '/')",
                "spec.rules[0].http.paths[0].backend.service.port: must set exactly one of number and name, not both",
            ]
        );
    }

    #[test]
    fn ingress_needs_rules_or_default_backend() {
        let mut ing = ingress();
        ing.spec.rules.clear();
        assert_eq!(
            errors(validate_ingress(&ing)),
            vec!["spec: must have at least one of rules and defaultBackend"]
        );
        ing.spec.default_backend = Some(backend("web", None, ""));
        assert_eq!(
            errors(validate_ingress(&ing)),
            vec!["spec.defaultBackend.service.port: must set exactly one of number and name"]
        );
        ing.spec.default_backend = Some(backend("web", None, "http"));
        assert!(errors(validate_ingress(&ing)).is_empty());
    }

    #[test]
    fn exact_paths_must_be_absolute() {
        let mut ing = ingress();
        if let Some(h) = ing.spec.rules[0].http.as_mut() {
            h.paths[0].path_type = "Exact".into();
            h.paths[0].path = String::new();
        }
        assert_eq!(
            errors(validate_ingress(&ing)),
            vec![
                "spec.rules[0].http.paths[0].path: \"\" must be an absolute path (start with '/')"
            ]
        );
        if let Some(h) = ing.spec.rules[0].http.as_mut() {
            h.paths[0].path_type = "ImplementationSpecific".into();
        }
        assert!(errors(validate_ingress(&ing)).is_empty());
    }

    fn policy() -> NetworkPolicy {
        let mut np = NetworkPolicy::default();
        np.metadata.name = "db".into();
        np.spec
            .pod_selector
            .match_labels
            .insert("app".into(), "db".into());
        np.spec.ingress.push(NetworkPolicyIngressRule {
            from: vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }],
            ports: vec![NetworkPolicyPort {
                protocol: "TCP".into(),
                port: Some(IntOrString::Int(5432)),
                end_port: None,
            }],
        });
        np
    }

    #[test]
    fn network_policy_peers_and_ports() {
        assert!(errors(validate_network_policy(&policy())).is_empty());
        let mut np = policy();
        np.spec.policy_types = vec!["Ingress".into(), "Ingres".into()];
        np.spec.ingress[0].from.push(NetworkPolicyPeer::default());
        np.spec.ingress[0].from.push(NetworkPolicyPeer {
            ip_block: Some(IpBlock {
                cidr: "10.0.0.0/16".into(),
                except: vec!["10.1.0.0/24".into(), "10.0.0.0/16".into()],
            }),
            ..Default::default()
        });
        np.spec.ingress[0].ports[0].end_port = Some(5000);
        np.spec
            .pod_selector
            .match_expressions
            .push(LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Equals".into(),
                values: vec![],
            });
        assert_eq!(
            errors(validate_network_policy(&np)),
            vec![
                "spec.podSelector.matchExpressions[0].operator: \"Equals\" must be one of In, NotIn, Exists, DoesNotExist",
                "spec.policyTypes[1]: \"Ingres\" must be one of Ingress, Egress",
                "spec.ingress[0].from[1]: must set at least one of podSelector, namespaceSelector and ipBlock",
                "spec.ingress[0].from[2].ipBlock.except[0]: \"10.1.0.0/24\" must be a strict subset of cidr \"10.0.0.0/16\"",
                "spec.ingress[0].from[2].ipBlock.except[1]: \"10.0.0.0/16\" must be a strict subset of cidr \"10.0.0.0/16\"",
                "spec.ingress[0].ports[0].endPort: 5000 is not in 5432..65535",
            ]
        );
    }
}

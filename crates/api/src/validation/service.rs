use std::collections::HashSet;

use super::meta::check_meta;
use super::{
    check_cidr, check_dns1123_label, check_int_or_name_port, check_ip, check_labels, check_one_of,
    check_port, check_protocol, names, Errors, FieldError, Unique, ValidationErrors,
};
use crate::core::{Service, ServiceType};
use crate::meta::IntOrString;
use crate::resources;
use crate::util::quote;

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const AFFINITIES: &[&str] = &["None", "ClientIP"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const IP_FAMILY_POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];

pub fn validate_service(svc: &Service) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &svc.metadata, &resources::SERVICE);
    check_spec(&mut errs, svc);
    ValidationErrors::check(errs)
}

fn check_spec(errs: &mut Errors, svc: &Service) {
    let spec = &svc.spec;
    check_one_of(errs, "spec.type", &spec.type_, TYPES, true);
    // Checks that depend on the type are skipped when the type itself is wrong.
    let Some(type_) = svc.service_type() else {
        return;
    };
    let external_name = type_ == ServiceType::ExternalName;

    if spec.ports.is_empty() && !external_name && !svc.is_headless() {
        errs.push(FieldError::new(
            "spec.ports",
            "",
            "must have at least one port (only ExternalName and headless Services may have none)",
        ));
    }
    check_ports(errs, svc, type_);

    // clusterIP / clusterIPs
    if external_name {
        if !spec.cluster_ip.is_empty() {
            errs.push(FieldError::new(
                "spec.clusterIP",
                quote(&spec.cluster_ip),
                "must be empty for an ExternalName Service",
            ));
        }
        let host = spec
            .external_name
            .strip_suffix('.')
            .unwrap_or(&spec.external_name);
        if spec.external_name.is_empty() {
            errs.push(FieldError::new(
                "spec.externalName",
                "",
                "is required for an ExternalName Service",
            ));
        } else if !names::is_dns1123_subdomain(host) {
            errs.push(FieldError::new(
                "spec.externalName",
                quote(&spec.external_name),
                names::DNS1123_SUBDOMAIN_MSG,
            ));
        }
    } else if !spec.cluster_ip.is_empty() && spec.cluster_ip != "None" {
        check_ip(errs, "spec.clusterIP", &spec.cluster_ip);
    }
    for (i, ip) in spec.cluster_ips.iter().enumerate() {
        let path = format!("spec.clusterIPs[{i}]");
        if ip == "None" {
            if spec.cluster_ips.len() > 1 || spec.cluster_ip != "None" {
                errs.push(FieldError::new(
                    path,
                    quote(ip),
                    "must be the only entry, with clusterIP \"None\"",
                ));
            }
        } else {
            check_ip(errs, &path, ip);
        }
    }
    if let Some(first) = spec.cluster_ips.first() {
        if !spec.cluster_ip.is_empty() && *first != spec.cluster_ip {
            errs.push(FieldError::new(
                "spec.clusterIPs[0]",
                quote(first),
                format!("must equal spec.clusterIP {}", quote(&spec.cluster_ip)),
            ));
        }
    }

    for (i, ip) in spec.external_ips.iter().enumerate() {
        check_ip(errs, &format!("spec.externalIPs[{i}]"), ip);
    }
    check_labels(errs, "spec.selector", &spec.selector);

    // Session affinity.
    check_one_of(
        errs,
        "spec.sessionAffinity",
        &spec.session_affinity,
        AFFINITIES,
        true,
    );
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    if spec.session_affinity == "ClientIP" {
        if let Some(t) = timeout {
            if !(1..=86400).contains(&t) {
                errs.push(FieldError::new(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t.to_string(),
                    "is not in 1..86400",
                ));
            }
        }
    } else if spec.session_affinity_config.is_some() {
        errs.push(FieldError::new(
            "spec.sessionAffinityConfig",
            "",
            "may only be set when sessionAffinity is ClientIP",
        ));
    }

    // Traffic policies.
    if !spec.external_traffic_policy.is_empty() {
        if type_.has_node_ports() {
            check_one_of(
                errs,
                "spec.externalTrafficPolicy",
                &spec.external_traffic_policy,
                TRAFFIC_POLICIES,
                false,
            );
        } else {
            errs.push(FieldError::new(
                "spec.externalTrafficPolicy",
                quote(&spec.external_traffic_policy),
                "may only be set when type is NodePort or LoadBalancer",
            ));
        }
    }
    check_one_of(
        errs,
        "spec.internalTrafficPolicy",
        &spec.internal_traffic_policy,
        TRAFFIC_POLICIES,
        true,
    );
    if let Some(port) = spec.health_check_node_port {
        if !(0..=65535).contains(&port) {
            errs.push(FieldError::new(
                "spec.healthCheckNodePort",
                port.to_string(),
                "is not in 0..65535",
            ));
        }
    }

    // IP families.
    if external_name && (!spec.ip_families.is_empty() || !spec.ip_family_policy.is_empty()) {
        errs.push(FieldError::new(
            "spec.ipFamilies",
            "",
            "must be empty (with ipFamilyPolicy) for an ExternalName Service",
        ));
    }
    let mut families = Unique::new();
    for (i, family) in spec.ip_families.iter().enumerate() {
        let path = format!("spec.ipFamilies[{i}]");
        check_one_of(errs, &path, family, IP_FAMILIES, false);
        families.check(errs, &path, family);
    }
    check_one_of(
        errs,
        "spec.ipFamilyPolicy",
        &spec.ip_family_policy,
        IP_FAMILY_POLICIES,
        true,
    );

    // Load balancer fields.
    if !spec.load_balancer_ip.is_empty() {
        check_ip(errs, "spec.loadBalancerIP", &spec.load_balancer_ip);
    }
    for (i, range) in spec.load_balancer_source_ranges.iter().enumerate() {
        check_cidr(
            errs,
            &format!("spec.loadBalancerSourceRanges[{i}]"),
            range.trim(),
        );
    }
}

fn check_ports(errs: &mut Errors, svc: &Service, type_: ServiceType) {
    let ports = &svc.spec.ports;
    let mut names_seen = Unique::new();
    let mut port_protocols = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if p.name.is_empty() {
            if ports.len() > 1 {
                errs.push(FieldError::new(
                    format!("{path}.name"),
                    "",
                    "is required when a Service has more than one port",
                ));
            }
        } else {
            check_dns1123_label(errs, &format!("{path}.name"), &p.name);
            names_seen.check(errs, &format!("{path}.name"), &p.name);
        }
        check_port(errs, &format!("{path}.port"), p.port);
        check_protocol(errs, &format!("{path}.protocol"), &p.protocol);
        let protocol = if p.protocol.is_empty() {
            "TCP"
        } else {
            &p.protocol
        };
        if !port_protocols.insert((p.port, protocol)) {
            errs.push(FieldError::new(
                path.clone(),
                format!("{}/{protocol}", p.port),
                "is a duplicate port and protocol",
            ));
        }
        match &p.target_port {
            // 0 and "" mean unset; defaulting turns them into `port`.
            None | Some(IntOrString::Int(0)) => {}
            Some(IntOrString::String(s)) if s.is_empty() => {}
            Some(t) => check_int_or_name_port(errs, &format!("{path}.targetPort"), t),
        }
        if let Some(node_port) = p.node_port.filter(|n| *n != 0) {
            let np_path = format!("{path}.nodePort");
            if !type_.has_node_ports() {
                errs.push(FieldError::new(
                    np_path,
                    node_port.to_string(),
                    format!("may not be set when type is {type_}"),
                ));
            } else {
                check_port(errs, &np_path, node_port);
                if !node_ports.insert((node_port, protocol)) {
                    errs.push(FieldError::new(
                        np_path,
                        node_port.to_string(),
                        "is a duplicate",
                    ));
                }
            }
        }
        if !p.app_protocol.is_empty() && !names::is_qualified_name(&p.app_protocol) {
            errs.push(FieldError::new(
                format!("{path}.appProtocol"),
                quote(&p.app_protocol),
                names::QUALIFIED_NAME_MSG,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ServicePort, SessionAffinityConfig};

    fn svc() -> Service {
        let mut s = Service::default();
        s.metadata.name = "web".into();
        s.spec.selector.insert("app".into(), "web".into());
        s.spec.ports.push(ServicePort {
            name: "http".into(),
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        });
        s
    }

    fn errors(s: &Service) -> Vec<String> {
        match validate_service(s) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_service_passes() {
        assert_eq!(errors(&svc()), Vec::<String>::new());
    }

    #[test]
    fn port_out_of_range_names_path_and_value() {
        let mut s = svc();
        s.spec.ports.push(ServicePort {
            name: "big".into(),
            port: 70000,
            ..Default::default()
        });
        assert_eq!(
            errors(&s),
            vec!["spec.ports[1].port: 70000 is not in 1..65535"]
        );
    }

    #[test]
    fn several_ports_need_unique_names() {
        let mut s = svc();
        s.spec.ports.push(ServicePort {
            port: 81,
            ..Default::default()
        });
        s.spec.ports.push(ServicePort {
            name: "http".into(),
            port: 82,
            ..Default::default()
        });
        assert_eq!(
            errors(&s),
            vec![
                "spec.ports[1].name: is required when a Service has more than one port",
                "spec.ports[2].name: \"http\" is a duplicate",
            ]
        );
    }

    #[test]
    fn duplicate_port_and_protocol() {
        let mut s = svc();
        s.spec.ports.push(ServicePort {
            name: "again".into(),
            port: 80,
            protocol: "TCP".into(),
            ..Default::default()
        });
        assert_eq!(
            errors(&s),
            vec!["spec.ports[1]: 80/TCP is a duplicate port and protocol"]
        );
        s.spec.ports[1].protocol = "UDP".into();
        assert!(errors(&s).is_empty());
    }

    #[test]
    fn protocol_and_target_port() {
        let mut s = svc();
        s.spec.ports[0].protocol = "HTTP".into();
        s.spec.ports[0].target_port = Some(IntOrString::String("8080".into()));
        assert_eq!(
            errors(&s),
            vec![
                "spec.ports[0].protocol: \"HTTP\" must be one of TCP, UDP, SCTP",
                format!(
                    "spec.ports[0].targetPort: \"8080\" {}",
                    names::IANA_SVC_NAME_MSG
                )
                .as_str(),
            ]
        );
        s.spec.ports[0].protocol = "SCTP".into();
        s.spec.ports[0].target_port = Some(IntOrString::Int(65536));
        assert_eq!(
            errors(&s),
            vec!["spec.ports[0].targetPort: 65536 is not in 1..65535"]
        );
    }

    #[test]
    fn type_rules() {
        let mut s = svc();
        s.spec.type_ = "Internal".into();
        assert_eq!(
            errors(&s),
            vec!["spec.type: \"Internal\" must be one of ClusterIP, NodePort, LoadBalancer, ExternalName"]
        );
        s.spec.type_ = "ClusterIP".into();
        s.spec.ports[0].node_port = Some(30080);
        s.spec.external_traffic_policy = "Local".into();
        assert_eq!(
            errors(&s),
            vec![
                "spec.ports[0].nodePort: 30080 may not be set when type is ClusterIP",
                "spec.externalTrafficPolicy: \"Local\" may only be set when type is NodePort or LoadBalancer",
            ]
        );
        s.spec.type_ = "NodePort".into();
        assert!(errors(&s).is_empty());
        s.spec.ports[0].node_port = Some(65536);
        s.spec.external_traffic_policy = "Everywhere".into();
        assert_eq!(
            errors(&s),
            vec![
                "spec.ports[0].nodePort: 65536 is not in 1..65535",
                "spec.externalTrafficPolicy: \"Everywhere\" must be one of Cluster, Local",
            ]
        );
    }

    #[test]
    fn ports_required_unless_headless_or_external_name() {
        let mut s = svc();
        s.spec.ports.clear();
        assert_eq!(errors(&s).len(), 1);
        assert!(errors(&s)[0].starts_with("spec.ports: must have at least one port"));
        s.spec.cluster_ip = "None".into();
        assert!(errors(&s).is_empty());
    }

    #[test]
    fn external_name_rules() {
        let mut s = svc();
        s.spec.type_ = "ExternalName".into();
        assert_eq!(
            errors(&s),
            vec!["spec.externalName: is required for an ExternalName Service"]
        );
        s.spec.external_name = "db.example.com.".into();
        assert!(errors(&s).is_empty());
        s.spec.external_name = "DB_host".into();
        s.spec.cluster_ip = "10.96.0.5".into();
        assert_eq!(
            errors(&s),
            vec![
                "spec.clusterIP: \"10.96.0.5\" must be empty for an ExternalName Service",
                format!(
                    "spec.externalName: \"DB_host\" {}",
                    names::DNS1123_SUBDOMAIN_MSG
                )
                .as_str(),
            ]
        );
    }

    #[test]
    fn cluster_ip_forms() {
        let mut s = svc();
        for ok in ["", "None", "10.96.0.10", "fd00::10"] {
            s.spec.cluster_ip = ok.into();
            assert!(errors(&s).is_empty(), "{ok}");
        }
        s.spec.cluster_ip = "10.96.0.300".into();
        assert_eq!(
            errors(&s),
            vec!["spec.clusterIP: \"10.96.0.300\" is not a valid IP address"]
        );
        s.spec.cluster_ip = "10.96.0.1".into();
        s.spec.cluster_ips = vec!["10.96.0.2".into()];
        assert_eq!(
            errors(&s),
            vec!["spec.clusterIPs[0]: \"10.96.0.2\" must equal spec.clusterIP \"10.96.0.1\""]
        );
    }

    #[test]
    fn session_affinity() {
        let mut s = svc();
        s.spec.session_affinity = "Sticky".into();
        assert_eq!(
            errors(&s),
            vec!["spec.sessionAffinity: \"Sticky\" must be one of None, ClientIP"]
        );
        s.spec.session_affinity = "ClientIP".into();
        s.spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(crate::core::ClientIpConfig {
                timeout_seconds: Some(86401),
            }),
        });
        assert_eq!(
            errors(&s),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is not in 1..86400"]
        );
        s.spec.session_affinity = "None".into();
        assert_eq!(
            errors(&s),
            vec!["spec.sessionAffinityConfig: may only be set when sessionAffinity is ClientIP"]
        );
    }

    #[test]
    fn selector_and_policies() {
        let mut s = svc();
        s.spec.selector.insert("bad key".into(), "v".into());
        s.spec.internal_traffic_policy = "Node".into();
        let errs = errors(&s);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("spec.selector: \"bad key\" is not a valid key"));
        assert!(errs[1].starts_with("spec.internalTrafficPolicy: \"Node\" must be one of"));
    }

    #[test]
    fn service_names_are_labels() {
        let mut s = svc();
        s.metadata.name = "web.v1".into();
        assert_eq!(
            errors(&s),
            vec![format!(
                "metadata.name: \"web.v1\" {}",
                names::DNS1123_LABEL_MSG
            )]
        );
    }
}

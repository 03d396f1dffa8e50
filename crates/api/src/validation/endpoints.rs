use std::net::IpAddr;

use super::meta::check_meta;
use super::{
    check_dns1123_label, check_dns1123_subdomain, check_ip, check_port, check_protocol, Errors,
    FieldError, Unique, ValidationErrors,
};
use crate::core::{EndpointAddress, Endpoints};
use crate::resources;
use crate::util::quote;

pub fn validate_endpoints(ep: &Endpoints) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &ep.metadata, &resources::ENDPOINTS);
    for (i, subset) in ep.subsets.iter().enumerate() {
        let path = format!("subsets[{i}]");
        for (j, a) in subset.addresses.iter().enumerate() {
            check_address(&mut errs, &format!("{path}.addresses[{j}]"), a);
        }
        for (j, a) in subset.not_ready_addresses.iter().enumerate() {
            check_address(&mut errs, &format!("{path}.notReadyAddresses[{j}]"), a);
        }
        let mut names = Unique::new();
        for (j, p) in subset.ports.iter().enumerate() {
            let pp = format!("{path}.ports[{j}]");
            if p.name.is_empty() {
                // Each port must say which Service port it serves when there are several.
                if subset.ports.len() > 1 {
                    errs.push(FieldError::new(
                        format!("{pp}.name"),
                        "",
                        "is required when a subset has more than one port",
                    ));
                }
            } else {
                check_dns1123_label(&mut errs, &format!("{pp}.name"), &p.name);
                names.check(&mut errs, &format!("{pp}.name"), &p.name);
            }
            check_port(&mut errs, &format!("{pp}.port"), p.port);
            check_protocol(&mut errs, &format!("{pp}.protocol"), &p.protocol);
        }
    }
    ValidationErrors::check(errs)
}

fn check_address(errs: &mut Errors, path: &str, a: &EndpointAddress) {
    // Proxies would forward to themselves or nowhere: Kubernetes rejects these too.
    if let Some(ip) = check_ip(errs, &format!("{path}.ip"), &a.ip) {
        if let Some(kind) = special_ip(ip) {
            errs.push(FieldError::new(
                format!("{path}.ip"),
                quote(&a.ip),
                format!("may not be a {kind} address"),
            ));
        }
    }
    if !a.hostname.is_empty() {
        check_dns1123_label(errs, &format!("{path}.hostname"), &a.hostname);
    }
    if let Some(node) = a.node_name.as_deref().filter(|n| !n.is_empty()) {
        check_dns1123_subdomain(errs, &format!("{path}.nodeName"), node);
    }
}

fn special_ip(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V4(v4) if v4.octets()[..3] == [224, 0, 0] => Some("link-local multicast"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xff0f) == 0xff02 => Some("link-local multicast"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EndpointPort, EndpointSubset};

    fn errors(ep: &Endpoints) -> Vec<String> {
        match validate_endpoints(ep) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn addresses_and_ports() {
        let mut ep = Endpoints::default();
        ep.metadata.name = "web".into();
        ep.subsets.push(EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: "10.244.1.5".into(),
                ..Default::default()
            }],
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                name: "http".into(),
                port: 8080,
                ..Default::default()
            }],
        });
        assert!(errors(&ep).is_empty());
        ep.subsets[0].addresses.push(EndpointAddress {
            ip: "127.0.0.1".into(),
            ..Default::default()
        });
        ep.subsets[0].not_ready_addresses.push(EndpointAddress {
            ip: "10.244.1.x".into(),
            ..Default::default()
        });
        ep.subsets[0].ports.push(EndpointPort {
            port: 0,
            protocol: "tcp".into(),
            ..Default::default()
        });
        assert_eq!(
            errors(&ep),
            vec![
                "subsets[0].addresses[1].ip: \"127.0.0.1\" may not be a loopback address",
                "subsets[0].notReadyAddresses[0].ip: \"10.244.1.x\" is not a valid IP address",
                "subsets[0].ports[1].name: is required when a subset has more than one port",
                "subsets[0].ports[1].port: 0 is not in 1..65535",
                "subsets[0].ports[1].protocol: \"tcp\" must be one of TCP, UDP, SCTP",
            ]
        );
    }
}

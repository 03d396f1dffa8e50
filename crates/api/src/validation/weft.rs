use super::meta::check_meta;
use super::{
    check_dns1123_label, check_int_or_name_port, names, FieldError, Unique, ValidationErrors,
};
use crate::resources;
use crate::util::quote;
use crate::weft::Dns;

/// The DNS object: a host and unique absolute paths, each to a Service port.
pub fn validate_dns(dns: &Dns) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &dns.metadata, &resources::DNS);
    let spec = &dns.spec;
    // Host names are case-insensitive; defaulting stores them lower-cased.
    if spec.host.is_empty() {
        errs.push(FieldError::required("spec.host"));
    } else if !names::is_dns1123_subdomain(&spec.host.to_ascii_lowercase()) {
        errs.push(FieldError::new(
            "spec.host",
            quote(&spec.host),
            names::DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if spec.paths.is_empty() {
        errs.push(FieldError::new(
            "spec.paths",
            "",
            "must have at least one path",
        ));
    }
    let mut seen = Unique::new();
    for (i, p) in spec.paths.iter().enumerate() {
        let path = format!("spec.paths[{i}]");
        if !p.path.starts_with('/') {
            errs.push(FieldError::new(
                format!("{path}.path"),
                quote(&p.path),
                "must start with '/'",
            ));
        }
        seen.check(&mut errs, &format!("{path}.path"), &p.path);
        if p.service.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.service.name")));
        } else {
            check_dns1123_label(&mut errs, &format!("{path}.service.name"), &p.service.name);
        }
        check_int_or_name_port(&mut errs, &format!("{path}.service.port"), &p.service.port);
    }
    ValidationErrors::check(errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::IntOrString;
    use crate::weft::{DnsPath, DnsServiceRef};

    fn path(p: &str, svc: &str, port: IntOrString) -> DnsPath {
        DnsPath {
            path: p.into(),
            service: DnsServiceRef {
                name: svc.into(),
                port,
            },
        }
    }

    fn errors(d: &Dns) -> Vec<String> {
        match validate_dns(d) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn paths() {
        let mut d = Dns::default();
        d.metadata.name = "app".into();
        d.spec.host = "Example.com".into();
        d.spec.paths = vec![
            path("/wear", "wear", IntOrString::Int(80)),
            path("/watch", "watch", IntOrString::String("http".into())),
        ];
        assert!(errors(&d).is_empty());
        d.spec.paths.push(path("wear", "Wear", IntOrString::Int(0)));
        d.spec
            .paths
            .push(path("/wear", "wear", IntOrString::Int(80)));
        let errs = errors(&d);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert_eq!(errs[0], "spec.paths[2].path: \"wear\" must start with '/'");
        assert!(errs[1].starts_with("spec.paths[2].service.name: \"Wear\" is not a DNS-1123 label"));
        assert_eq!(errs[2], "spec.paths[2].service.port: 0 is not in 1..65535");
        assert_eq!(errs[3], "spec.paths[3].path: \"/wear\" is a duplicate");
        d.spec.paths.clear();
        d.spec.host = "bad host".into();
        let errs = errors(&d);
        assert!(errs[0].starts_with("spec.host: \"bad host\" is not a DNS-1123 subdomain"));
        assert_eq!(errs[1], "spec.paths: must have at least one path");
    }
}

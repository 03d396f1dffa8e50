//! Kubernetes' name syntaxes as predicates, and the messages that explain them.

pub const DNS1123_LABEL_MSG: &str = "is not a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)";
pub const DNS1123_SUBDOMAIN_MSG: &str = "is not a DNS-1123 subdomain (at most 253 characters: dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit)";
pub const QUALIFIED_NAME_MSG: &str = "is not a valid key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)";
pub const LABEL_VALUE_MSG: &str = "is not a valid label value (empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)";
pub const IANA_SVC_NAME_MSG: &str = "is not a valid port name (at most 15 lowercase letters, digits and '-', with at least one letter and no leading, trailing or double '-')";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// One part of a DNS name: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, no length limit of its own.
fn is_dns_part(s: &str) -> bool {
    s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// Service and Namespace names, container names, hostnames.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_part(s)
}

/// Most object names, DNS names.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_part)
}

/// `*.example.com` or a plain subdomain, as Ingress hosts allow.
pub fn is_wildcard_dns1123_subdomain(s: &str) -> bool {
    match s.strip_prefix("*.") {
        Some(rest) => is_dns1123_subdomain(rest),
        None => is_dns1123_subdomain(s),
    }
}

/// The name part of a label key, and a non-empty label value.
fn is_qualified_name_part(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Label and annotation keys: `name` or `prefix/name`, the prefix a DNS-1123 subdomain.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty() && is_dns1123_subdomain(prefix) && is_qualified_name_part(name)
        }
        None => is_qualified_name_part(s),
    }
}

pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// Named ports (IANA_SVC_NAME, RFC 6335): `http`, `dns-tcp`.
pub fn is_iana_svc_name(s: &str) -> bool {
    s.len() <= 15
        && is_dns_part(s)
        && !s.contains("--")
        && s.chars().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns1123_label("web-1"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label("web-"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("a.b"));
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("a.b."));
        assert!(!is_dns1123_subdomain("A.b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_wildcard_dns1123_subdomain("*.example.com"));
        assert!(!is_wildcard_dns1123_subdomain("*example.com"));
        assert!(!is_wildcard_dns1123_subdomain("a.*.com"));
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(is_qualified_name("app"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("A_b.c-D"));
        assert!(!is_qualified_name("/name"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name("Example.com/name"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("_a"));
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3-x"));
        assert!(!is_label_value("a b"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn iana_service_names() {
        assert!(is_iana_svc_name("http"));
        assert!(is_iana_svc_name("dns-tcp"));
        assert!(is_iana_svc_name("h2c"));
        assert!(!is_iana_svc_name("8080"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(!is_iana_svc_name("-a"));
        assert!(!is_iana_svc_name("Http"));
        assert!(!is_iana_svc_name("a-very-long-port-name"));
    }
}

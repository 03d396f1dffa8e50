use super::meta::check_meta;
use super::{
    check_dns1123_label, check_dns1123_subdomain, check_int_or_name_port, check_ip, check_labels,
    check_one_of, check_port, check_port_name, check_protocol, names, Errors, FieldError, Unique,
    ValidationErrors,
};
use crate::core::{Container, Pod, PodDnsConfig, Probe};
use crate::resources;
use crate::util::quote;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
// resolv.conf limits Kubernetes enforces.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

pub fn validate_pod(pod: &Pod) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    check_meta(&mut errs, &pod.metadata, &resources::POD);
    let spec = &pod.spec;

    if spec.containers.is_empty() {
        errs.push(FieldError::new(
            "spec.containers",
            "",
            "must have at least one container",
        ));
    }
    // Container names are unique across init and regular containers.
    let mut container_names = Unique::new();
    let all = spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c)),
        );
    for (path, c) in all {
        if c.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name")));
        } else {
            check_dns1123_label(&mut errs, &format!("{path}.name"), &c.name);
            container_names.check(&mut errs, &format!("{path}.name"), &c.name);
        }
        check_container(&mut errs, &path, c, spec.host_network);
    }

    check_one_of(
        &mut errs,
        "spec.restartPolicy",
        &spec.restart_policy,
        RESTART_POLICIES,
        true,
    );
    check_one_of(
        &mut errs,
        "spec.dnsPolicy",
        &spec.dns_policy,
        DNS_POLICIES,
        true,
    );
    if spec.dns_policy == "None"
        && spec
            .dns_config
            .as_ref()
            .is_none_or(|c| c.nameservers.is_empty())
    {
        errs.push(FieldError::new(
            "spec.dnsConfig.nameservers",
            "",
            "must have at least one nameserver when dnsPolicy is None",
        ));
    }
    if let Some(config) = &spec.dns_config {
        check_dns_config(&mut errs, config);
    }

    for (i, alias) in spec.host_aliases.iter().enumerate() {
        let path = format!("spec.hostAliases[{i}]");
        check_ip(&mut errs, &format!("{path}.ip"), &alias.ip);
        for (j, host) in alias.hostnames.iter().enumerate() {
            check_dns1123_subdomain(&mut errs, &format!("{path}.hostnames[{j}]"), host);
        }
    }
    if !spec.hostname.is_empty() {
        check_dns1123_label(&mut errs, "spec.hostname", &spec.hostname);
    }
    if !spec.subdomain.is_empty() {
        check_dns1123_label(&mut errs, "spec.subdomain", &spec.subdomain);
    }
    if !spec.node_name.is_empty() {
        check_dns1123_subdomain(&mut errs, "spec.nodeName", &spec.node_name);
    }
    if !spec.service_account_name.is_empty() {
        check_dns1123_subdomain(
            &mut errs,
            "spec.serviceAccountName",
            &spec.service_account_name,
        );
    }
    check_labels(&mut errs, "spec.nodeSelector", &spec.node_selector);
    if let Some(t) = spec.termination_grace_period_seconds.filter(|t| *t < 0) {
        errs.push(FieldError::new(
            "spec.terminationGracePeriodSeconds",
            t.to_string(),
            "must be at least 0",
        ));
    }
    if let Some(t) = spec.active_deadline_seconds.filter(|t| *t < 1) {
        errs.push(FieldError::new(
            "spec.activeDeadlineSeconds",
            t.to_string(),
            "must be at least 1",
        ));
    }
    ValidationErrors::check(errs)
}

fn check_container(errs: &mut Errors, path: &str, c: &Container, host_network: bool) {
    if c.image.trim().is_empty() {
        errs.push(FieldError::required(format!("{path}.image")));
    }
    let mut port_names = Unique::new();
    for (i, p) in c.ports.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        check_port(errs, &format!("{pp}.containerPort"), p.container_port);
        if let Some(host_port) = p.host_port.filter(|h| *h != 0) {
            check_port(errs, &format!("{pp}.hostPort"), host_port);
            // With the host's network namespace there is no translation between the two.
            if host_network && host_port != p.container_port {
                errs.push(FieldError::new(
                    format!("{pp}.hostPort"),
                    host_port.to_string(),
                    "must equal containerPort when hostNetwork is true",
                ));
            }
        }
        if !p.name.is_empty() {
            check_port_name(errs, &format!("{pp}.name"), &p.name);
            port_names.check(errs, &format!("{pp}.name"), &p.name);
        }
        check_protocol(errs, &format!("{pp}.protocol"), &p.protocol);
        if !p.host_ip.is_empty() {
            check_ip(errs, &format!("{pp}.hostIP"), &p.host_ip);
        }
    }
    for (i, env) in c.env.iter().enumerate() {
        let ep = format!("{path}.env[{i}]");
        if env.name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name")));
        } else if env.name.contains('=') || env.name.chars().any(|ch| ch.is_ascii_control()) {
            errs.push(FieldError::new(
                format!("{ep}.name"),
                quote(&env.name),
                "must consist of printable characters other than '='",
            ));
        }
        if env.value.as_deref().is_some_and(|v| !v.is_empty()) && env.value_from.is_some() {
            errs.push(FieldError::new(
                format!("{ep}.valueFrom"),
                "",
                "may not be set together with value",
            ));
        }
    }
    let probes = [
        ("readinessProbe", &c.readiness_probe, false),
        ("livenessProbe", &c.liveness_probe, true),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (field, probe, single_success) in probes {
        if let Some(probe) = probe {
            check_probe(errs, &format!("{path}.{field}"), probe, single_success);
        }
    }
    check_one_of(
        errs,
        &format!("{path}.imagePullPolicy"),
        &c.image_pull_policy,
        PULL_POLICIES,
        true,
    );
    check_one_of(
        errs,
        &format!("{path}.terminationMessagePolicy"),
        &c.termination_message_policy,
        MESSAGE_POLICIES,
        true,
    );
    check_one_of(
        errs,
        &format!("{path}.restartPolicy"),
        &c.restart_policy,
        RESTART_POLICIES,
        true,
    );
}

/// `single_success`: liveness and startup probes must have successThreshold 1.
fn check_probe(errs: &mut Errors, path: &str, probe: &Probe, single_success: bool) {
    match probe.handler_count() {
        1 => {}
        0 => errs.push(FieldError::new(
            path,
            "",
            "must have exactly one handler (httpGet, tcpSocket, exec or grpc), found none",
        )),
        n => errs.push(FieldError::new(
            path,
            "",
            format!("must have exactly one handler (httpGet, tcpSocket, exec or grpc), found {n}"),
        )),
    }
    if let Some(h) = &probe.http_get {
        check_int_or_name_port(errs, &format!("{path}.httpGet.port"), &h.port);
        check_one_of(
            errs,
            &format!("{path}.httpGet.scheme"),
            &h.scheme,
            &["HTTP", "HTTPS"],
            true,
        );
        if !h.path.is_empty() && !h.path.starts_with('/') {
            errs.push(FieldError::new(
                format!("{path}.httpGet.path"),
                quote(&h.path),
                "must start with '/'",
            ));
        }
    }
    if let Some(t) = &probe.tcp_socket {
        check_int_or_name_port(errs, &format!("{path}.tcpSocket.port"), &t.port);
    }
    if let Some(e) = &probe.exec {
        if e.command.is_empty() {
            errs.push(FieldError::required(format!("{path}.exec.command")));
        }
    }
    if let Some(g) = &probe.grpc {
        check_port(errs, &format!("{path}.grpc.port"), g.port);
    }
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in numbers {
        if let Some(v) = value.filter(|v| *v < 0) {
            errs.push(FieldError::new(
                format!("{path}.{field}"),
                v.to_string(),
                "must be at least 0",
            ));
        }
    }
    // 0 means unset (defaulted to 1).
    if let Some(v) = probe.success_threshold.filter(|v| single_success && *v > 1) {
        errs.push(FieldError::new(
            format!("{path}.successThreshold"),
            v.to_string(),
            "must be 1 for liveness and startup probes",
        ));
    }
}

fn check_dns_config(errs: &mut Errors, config: &PodDnsConfig) {
    if config.nameservers.len() > MAX_NAMESERVERS {
        errs.push(FieldError::new(
            "spec.dnsConfig.nameservers",
            "",
            format!(
                "must have at most {MAX_NAMESERVERS} entries, has {}",
                config.nameservers.len()
            ),
        ));
    }
    for (i, ns) in config.nameservers.iter().enumerate() {
        check_ip(errs, &format!("spec.dnsConfig.nameservers[{i}]"), ns);
    }
    if config.searches.len() > MAX_SEARCHES {
        errs.push(FieldError::new(
            "spec.dnsConfig.searches",
            "",
            format!(
                "must have at most {MAX_SEARCHES} entries, has {}",
                config.searches.len()
            ),
        ));
    }
    let chars: usize = config.searches.iter().map(|s| s.len()).sum::<usize>()
        + config.searches.len().saturating_sub(1);
    if chars > MAX_SEARCH_CHARS {
        errs.push(FieldError::new(
            "spec.dnsConfig.searches",
            "",
            format!("must be at most {MAX_SEARCH_CHARS} characters in total, is {chars}"),
        ));
    }
    for (i, search) in config.searches.iter().enumerate() {
        // A trailing dot (fully qualified) is allowed in resolv.conf.
        let domain = search.strip_suffix('.').unwrap_or(search);
        if !names::is_dns1123_subdomain(domain) {
            errs.push(FieldError::new(
                format!("spec.dnsConfig.searches[{i}]"),
                quote(search),
                names::DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }
    for (i, option) in config.options.iter().enumerate() {
        if option.name.is_empty() {
            errs.push(FieldError::required(format!(
                "spec.dnsConfig.options[{i}].name"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ContainerPort, HostAlias, HttpGetAction, TcpSocketAction};
    use crate::meta::IntOrString;

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "web-0".into();
        p.spec.containers.push(Container {
            name: "web".into(),
            image: "nginx:1.27".into(),
            ports: vec![ContainerPort {
                name: "http".into(),
                container_port: 80,
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn errors(p: &Pod) -> Vec<String> {
        match validate_pod(p) {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_pod_passes() {
        assert_eq!(errors(&pod()), Vec::<String>::new());
    }

    #[test]
    fn containers_required_and_unique() {
        let mut p = pod();
        p.spec.containers.clear();
        assert_eq!(
            errors(&p),
            vec!["spec.containers: must have at least one container"]
        );
        let mut p = pod();
        let mut again = p.spec.containers[0].clone();
        again.image = String::new();
        p.spec.containers.push(again);
        assert_eq!(
            errors(&p),
            vec![
                "spec.containers[1].name: \"web\" is a duplicate",
                "spec.containers[1].image: is required",
            ]
        );
    }

    #[test]
    fn container_ports() {
        let mut p = pod();
        p.spec.containers[0].ports.push(ContainerPort {
            name: "http".into(),
            container_port: 0,
            protocol: "ICMP".into(),
            ..Default::default()
        });
        assert_eq!(
            errors(&p),
            vec![
                "spec.containers[0].ports[1].containerPort: 0 is not in 1..65535",
                "spec.containers[0].ports[1].name: \"http\" is a duplicate",
                "spec.containers[0].ports[1].protocol: \"ICMP\" must be one of TCP, UDP, SCTP",
            ]
        );
    }

    #[test]
    fn policies() {
        let mut p = pod();
        p.spec.restart_policy = "Sometimes".into();
        p.spec.dns_policy = "None".into();
        assert_eq!(
            errors(&p),
            vec![
                "spec.restartPolicy: \"Sometimes\" must be one of Always, OnFailure, Never",
                "spec.dnsConfig.nameservers: must have at least one nameserver when dnsPolicy is None",
            ]
        );
        p.spec.restart_policy = "Never".into();
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["1.1.1.1".into()],
            ..Default::default()
        });
        assert!(errors(&p).is_empty());
        p.spec.dns_policy = "ClusterLast".into();
        assert_eq!(errors(&p).len(), 1);
    }

    #[test]
    fn dns_config_limits() {
        let mut p = pod();
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec![
                "1.1.1.1".into(),
                "8.8.8.8".into(),
                "9.9.9.9".into(),
                "x".into(),
            ],
            searches: (0..33).map(|i| format!("s{i}.example.com")).collect(),
            ..Default::default()
        });
        assert_eq!(
            errors(&p),
            vec![
                "spec.dnsConfig.nameservers: must have at most 3 entries, has 4",
                "spec.dnsConfig.nameservers[3]: \"x\" is not a valid IP address",
                "spec.dnsConfig.searches: must have at most 32 entries, has 33",
            ]
        );
    }

    #[test]
    fn host_aliases_and_names() {
        let mut p = pod();
        p.spec.host_aliases.push(HostAlias {
            ip: "127.0.0.300".into(),
            hostnames: vec!["foo.local".into()],
        });
        p.spec.hostname = "Web".into();
        p.spec.subdomain = "svc.x".into();
        let errs = errors(&p);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(
            errs[0],
            "spec.hostAliases[0].ip: \"127.0.0.300\" is not a valid IP address"
        );
        assert!(errs[1].starts_with("spec.hostname: \"Web\" is not a DNS-1123 label"));
        assert!(errs[2].starts_with("spec.subdomain: \"svc.x\" is not a DNS-1123 label"));
    }

    #[test]
    fn probes_need_exactly_one_handler() {
        let mut p = pod();
        p.spec.containers[0].readiness_probe = Some(Probe::default());
        p.spec.containers[0].liveness_probe = Some(Probe {
            http_get: Some(HttpGetAction {
                path: "/".into(),
                port: IntOrString::String("http".into()),
                host: String::new(),
                scheme: String::new(),
                http_headers: vec![],
            }),
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::Int(80),
                host: String::new(),
            }),
            success_threshold: Some(2),
            ..Default::default()
        });
        assert_eq!(
            errors(&p),
            vec![
                "spec.containers[0].readinessProbe: must have exactly one handler (httpGet, tcpSocket, exec or grpc), found none",
                "spec.containers[0].livenessProbe: must have exactly one handler (httpGet, tcpSocket, exec or grpc), found 2",
                "spec.containers[0].livenessProbe.successThreshold: 2 must be 1 for liveness and startup probes",
            ]
        );
    }
}

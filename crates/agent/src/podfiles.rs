//! The per-pod `/etc/resolv.conf` and `/etc/hosts`, byte for byte as the kubelet (with
//! containerd rendering the DNS config) writes them, so tools and habits carry over.
//!
//! The generators are pure; [`write_pod_files`] puts them in the pod's directory, from
//! where the runtime bind-mounts them over the container's `/etc` files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use weft_api::core::{Pod, PodDnsConfig};

use crate::fsutil;

/// glibc reads at most three nameservers; the kubelet keeps the first three.
pub const MAX_NAMESERVERS: usize = 3;
/// The kubelet's limits on the search line (validation.MaxDNSSearchPaths / ...Chars).
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_CHARS: usize = 2048;
/// A search domain longer than a DNS name makes some glibc versions abort; dropped.
const MAX_DOMAIN_LEN: usize = 253;
const MAX_HOSTNAME_LEN: usize = 63;
/// The kubelet refuses host resolv.conf files larger than this.
const MAX_RESOLV_CONF_LEN: usize = 10 << 20;

const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

/// What the agent knows about cluster DNS: the kube-dns Service IP and the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub nameserver: IpAddr,
    /// The cluster domain, e.g. `cluster.local`; empty means none.
    pub zone: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PodFileError {
    #[error(
        "dnsPolicy {policy:?} is not one of ClusterFirst, ClusterFirstWithHostNet, \
         Default, None"
    )]
    InvalidDnsPolicy { policy: String },
    #[error("dnsPolicy None needs spec.dnsConfig with at least one nameserver")]
    NoneWithoutDnsConfig,
    #[error("host resolv.conf is larger than {MAX_RESOLV_CONF_LEN} bytes")]
    HostResolvTooLarge,
    #[error("pod {field} {value:?} is not a valid DNS label: {reason}")]
    InvalidName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("pod hostname {value:?} is empty once truncated to 63 characters")]
    EmptyHostname { value: String },
    #[error("writing pod file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The resolver configuration a pod gets, before rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`, in file order.
    pub options: Vec<String>,
    /// Limits that cut the configuration, worded like the kubelet's `DNSConfigForming`
    /// events, for the agent to report on the pod.
    pub warnings: Vec<String>,
}

impl DnsConfig {
    /// Renders as containerd does: search, then nameservers, then options.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The pod's `/etc/resolv.conf` content. `host_resolv` is the node's resolv.conf text.
pub fn resolv_conf(pod: &Pod, dns: &ClusterDns, host_resolv: &str) -> Result<String, PodFileError> {
    Ok(dns_config(pod, dns, host_resolv)?.render())
}

/// The kubelet's `GetPodDNS`: the policy picks the base, `dnsConfig` is merged on top,
/// then the glibc limits are applied.
pub fn dns_config(
    pod: &Pod,
    dns: &ClusterDns,
    host_resolv: &str,
) -> Result<DnsConfig, PodFileError> {
    if host_resolv.len() > MAX_RESOLV_CONF_LEN {
        return Err(PodFileError::HostResolvTooLarge);
    }
    let host = parse_resolv_conf(host_resolv);
    let mut config = match policy(pod)? {
        Policy::None => {
            let has_ns = pod
                .spec
                .dns_config
                .as_ref()
                .is_some_and(|c| !c.nameservers.is_empty());
            if !has_ns {
                return Err(PodFileError::NoneWithoutDnsConfig);
            }
            DnsConfig::default()
        }
        Policy::Cluster => {
            // Cluster DNS is the only nameserver: it forwards what it does not serve
            // itself. The host's options are dropped, its search domains kept.
            let mut searches = Vec::new();
            if !dns.zone.is_empty() {
                searches.push(format!("{}.svc.{}", namespace(pod), dns.zone));
                searches.push(format!("svc.{}", dns.zone));
                searches.push(dns.zone.clone());
            }
            searches.extend(host.searches);
            DnsConfig {
                nameservers: vec![dns.nameserver.to_string()],
                searches: dedup(searches),
                options: vec!["ndots:5".into()],
                warnings: Vec::new(),
            }
        }
        Policy::Host => DnsConfig {
            nameservers: host.nameservers,
            searches: host.searches,
            options: host.options,
            warnings: Vec::new(),
        },
    };
    if let Some(extra) = &pod.spec.dns_config {
        merge_dns_config(&mut config, extra);
    }
    fit_limits(&mut config);
    Ok(config)
}

enum Policy {
    Cluster,
    Host,
    None,
}

fn policy(pod: &Pod) -> Result<Policy, PodFileError> {
    match pod.spec.dns_policy.as_str() {
        "None" => Ok(Policy::None),
        "ClusterFirstWithHostNet" => Ok(Policy::Cluster),
        // A host-network pod with ClusterFirst falls back to the node's resolver, as the
        // kubelet does: only ClusterFirstWithHostNet opts such a pod into cluster DNS.
        "ClusterFirst" | "" if pod.spec.host_network => Ok(Policy::Host),
        "ClusterFirst" | "" => Ok(Policy::Cluster),
        "Default" => Ok(Policy::Host),
        other => Err(PodFileError::InvalidDnsPolicy {
            policy: other.to_string(),
        }),
    }
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

struct HostResolv {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

/// The kubelet's `parseResolvConf`: nameservers accumulate, the last `search` line wins
/// (trailing dots trimmed, `.` dropped), options merge by name.
fn parse_resolv_conf(text: &str) -> HostResolv {
    let mut host = HostResolv {
        nameservers: Vec::new(),
        searches: Vec::new(),
        options: Vec::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => {
                if let Some(ns) = fields.next() {
                    host.nameservers.push(ns.to_string());
                }
            }
            Some("search") => {
                host.searches = fields
                    .filter(|s| *s != ".")
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some("options") => {
                for option in fields {
                    set_option(&mut host.options, option.to_string());
                }
            }
            _ => {}
        }
    }
    host
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// Replaces an option of the same name in place, or appends it. (The kubelet merges
/// through a Go map, so its order is random; first-seen order is stable.)
fn set_option(options: &mut Vec<String>, option: String) {
    match options
        .iter_mut()
        .find(|o| option_name(o) == option_name(&option))
    {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

/// The kubelet's `appendDNSConfig`.
fn merge_dns_config(config: &mut DnsConfig, extra: &PodDnsConfig) {
    config.nameservers.extend(extra.nameservers.iter().cloned());
    config.nameservers = dedup(std::mem::take(&mut config.nameservers));
    config.searches.extend(extra.searches.iter().cloned());
    config.searches = dedup(std::mem::take(&mut config.searches));
    for option in &extra.options {
        let rendered = match option.value.as_deref() {
            Some(value) if !value.is_empty() => format!("{}:{value}", option.name),
            _ => option.name.clone(),
        };
        set_option(&mut config.options, rendered);
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// The kubelet's `formDNSConfigFitsLimits`.
fn fit_limits(config: &mut DnsConfig) {
    if config.nameservers.len() > MAX_NAMESERVERS {
        config.nameservers.truncate(MAX_NAMESERVERS);
        config.warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, \
             the applied nameserver line is: {}",
            config.nameservers.join(" ")
        ));
    }
    let mut exceeded = false;
    if config.searches.len() > MAX_SEARCH_PATHS {
        config.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = config.searches.len();
    config.searches.retain(|s| s.len() <= MAX_DOMAIN_LEN);
    exceeded |= config.searches.len() != before;
    // Cut whole domains from the end until the line fits.
    while config.searches.join(" ").len() > MAX_SEARCH_CHARS {
        config.searches.pop();
        exceeded = true;
    }
    if exceeded {
        config.warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, \
             the applied search line is: {}",
            config.searches.join(" ")
        ));
    }
}

/// The pod's `/etc/hosts` for a pod on the pod network, as the kubelet's
/// `managedHostsFileContent` writes it (tab-separated).
pub fn hosts_file(pod: &Pod, pod_ip: IpAddr, zone: &str) -> Result<String, PodFileError> {
    let (hostname, domain) = hostname_and_domain(pod, zone)?;
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    match domain {
        Some(domain) => out.push_str(&format!("{pod_ip}\t{hostname}.{domain}\t{hostname}\n")),
        None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    out.push_str(&host_alias_entries(pod));
    Ok(out)
}

/// A host-network pod's `/etc/hosts`: the node's file under the kubelet's header, plus
/// the pod's hostAliases.
pub fn host_network_hosts_file(pod: &Pod, node_hosts: &str) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    out.push_str(&host_alias_entries(pod));
    out
}

fn host_alias_entries(pod: &Pod) -> String {
    if pod.spec.host_aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in &pod.spec.host_aliases {
        out.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
    }
    out
}

/// The pod's hostname (spec.hostname, else the pod name, cut to 63 characters) and, when
/// spec.subdomain is set, its domain `<subdomain>.<ns>.svc.<zone>`: the kubelet's
/// `GeneratePodHostNameAndDomain`.
pub fn hostname_and_domain(
    pod: &Pod,
    zone: &str,
) -> Result<(String, Option<String>), PodFileError> {
    let mut hostname = pod.metadata.name.clone();
    if !pod.spec.hostname.is_empty() {
        check_dns_label("hostname", &pod.spec.hostname)?;
        hostname = pod.spec.hostname.clone();
    }
    if hostname.len() > MAX_HOSTNAME_LEN {
        // Names are ASCII once validated; cut on a char boundary regardless.
        let mut cut = MAX_HOSTNAME_LEN;
        while !hostname.is_char_boundary(cut) {
            cut -= 1;
        }
        let truncated = hostname[..cut].trim_end_matches(['-', '.']).to_string();
        if truncated.is_empty() {
            return Err(PodFileError::EmptyHostname { value: hostname });
        }
        hostname = truncated;
    }
    let domain = if pod.spec.subdomain.is_empty() {
        None
    } else {
        check_dns_label("subdomain", &pod.spec.subdomain)?;
        Some(format!(
            "{}.{}.svc.{zone}",
            pod.spec.subdomain,
            namespace(pod)
        ))
    };
    Ok((hostname, domain))
}

fn check_dns_label(field: &'static str, value: &str) -> Result<(), PodFileError> {
    let bytes = value.as_bytes();
    let reason = if bytes.is_empty() {
        Some("it is empty")
    } else if bytes.len() > MAX_HOSTNAME_LEN {
        Some("it is longer than 63 characters")
    } else if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        Some("it may contain only lower-case letters, digits and '-'")
    } else if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        Some("it must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PodFileError::InvalidName {
            field,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Where a pod's files live: `<state_dir>/pods/<uid>/`.
pub fn pod_dir(state_dir: &Path, uid: &str) -> PathBuf {
    state_dir.join("pods").join(uid)
}

/// The written files, ready for [`crate::runtime::PodSandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFilePaths {
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
}

/// Writes `resolv.conf` and `hosts` into `dir` (created if missing), each atomically so a
/// running container never reads a half-written file.
pub fn write_pod_files(
    dir: &Path,
    resolv_conf: &str,
    hosts: &str,
) -> Result<PodFilePaths, PodFileError> {
    std::fs::create_dir_all(dir).map_err(|source| PodFileError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let paths = PodFilePaths {
        resolv_conf: dir.join("resolv.conf"),
        hosts: dir.join("hosts"),
    };
    for (path, content) in [(&paths.resolv_conf, resolv_conf), (&paths.hosts, hosts)] {
        fsutil::atomic_write(path, content.as_bytes()).map_err(|source| PodFileError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use weft_api::core::{HostAlias, PodDnsConfigOption};

    use super::*;

    const HOST_RESOLV: &str = "\
# Generated by NetworkManager
search corp.example. lab.example
nameserver 192.168.1.1
nameserver 8.8.8.8
options edns0 timeout:2
";

    fn cluster_dns() -> ClusterDns {
        ClusterDns {
            nameserver: "10.96.0.10".parse().expect("ip"),
            zone: "cluster.local".into(),
        }
    }

    fn pod(ns: &str, name: &str, policy: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = Some(ns.into());
        pod.spec.dns_policy = policy.into();
        pod
    }

    fn resolv(pod: &Pod) -> String {
        resolv_conf(pod, &cluster_dns(), HOST_RESOLV).expect("resolv.conf")
    }

    #[test]
    fn cluster_first_is_kubelets_file() {
        for policy in ["ClusterFirst", "", "ClusterFirstWithHostNet"] {
            assert_eq!(
                resolv(&pod("web", "frontend", policy)),
                "search web.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
                 nameserver 10.96.0.10\n\
                 options ndots:5\n",
                "policy {policy:?}"
            );
        }
        // With a bare host file it is exactly the file the Kubernetes docs show.
        assert_eq!(
            resolv_conf(
                &pod("default", "p", "ClusterFirst"),
                &cluster_dns(),
                "nameserver 1.1.1.1\n"
            )
            .expect("resolv"),
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn host_search_domains_are_deduplicated() {
        let host = "search cluster.local example.com example.com.\nnameserver 1.1.1.1\n";
        assert_eq!(
            resolv_conf(&pod("default", "p", "ClusterFirst"), &cluster_dns(), host)
                .expect("resolv"),
            "search default.svc.cluster.local svc.cluster.local cluster.local example.com\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn default_policy_copies_the_node() {
        assert_eq!(
            resolv(&pod("web", "frontend", "Default")),
            "search corp.example lab.example\n\
             nameserver 192.168.1.1\n\
             nameserver 8.8.8.8\n\
             options edns0 timeout:2\n"
        );
        // A host-network pod with ClusterFirst falls back to Default, as in the kubelet.
        let mut host_net = pod("web", "frontend", "ClusterFirst");
        host_net.spec.host_network = true;
        assert_eq!(
            resolv(&host_net),
            resolv(&pod("web", "frontend", "Default"))
        );
        // ... unless it asks for ClusterFirstWithHostNet.
        host_net.spec.dns_policy = "ClusterFirstWithHostNet".into();
        assert!(resolv(&host_net).contains("nameserver 10.96.0.10\n"));
    }

    #[test]
    fn none_policy_uses_only_dns_config() {
        let mut p = pod("web", "frontend", "None");
        let err = resolv_conf(&p, &cluster_dns(), HOST_RESOLV).expect_err("needs config");
        assert!(matches!(err, PodFileError::NoneWithoutDnsConfig), "{err}");
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["1.2.3.4".into()],
            searches: vec![
                "ns1.svc.cluster-domain.example".into(),
                "my.dns.search.suffix".into(),
            ],
            options: vec![
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                PodDnsConfigOption {
                    name: "edns0".into(),
                    value: None,
                },
            ],
        });
        // The example from the Kubernetes "DNS for Services and Pods" page.
        assert_eq!(
            resolv(&p),
            "search ns1.svc.cluster-domain.example my.dns.search.suffix\n\
             nameserver 1.2.3.4\n\
             options ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_into_every_policy() {
        let mut p = pod("web", "frontend", "ClusterFirst");
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["10.96.0.10".into(), "1.1.1.1".into(), "9.9.9.9".into()],
            searches: vec!["extra.example".into(), "svc.cluster.local".into()],
            options: vec![
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("1".into()),
                },
                PodDnsConfigOption {
                    name: "single-request-reopen".into(),
                    value: None,
                },
            ],
        });
        let config = dns_config(&p, &cluster_dns(), HOST_RESOLV).expect("config");
        assert_eq!(config.nameservers, ["10.96.0.10", "1.1.1.1", "9.9.9.9"]);
        assert_eq!(
            config.render(),
            "search web.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\n\
             nameserver 10.96.0.10\n\
             nameserver 1.1.1.1\n\
             nameserver 9.9.9.9\n\
             options ndots:1 single-request-reopen\n"
        );
        assert!(config.warnings.is_empty());

        // Default + dnsConfig: a fourth nameserver is cut, with the kubelet's warning.
        p.spec.dns_policy = "Default".into();
        let config = dns_config(&p, &cluster_dns(), HOST_RESOLV).expect("config");
        assert_eq!(config.nameservers, ["192.168.1.1", "8.8.8.8", "10.96.0.10"]);
        assert_eq!(
            config.options,
            ["edns0", "timeout:2", "ndots:1", "single-request-reopen"]
        );
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].contains("Nameserver limits were exceeded"));
    }

    #[test]
    fn search_limits_match_the_kubelet() {
        let mut p = pod("default", "p", "None");
        let long = format!("{}.example", "a".repeat(250));
        let mut searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        searches.insert(0, long);
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["1.1.1.1".into()],
            searches,
            options: vec![],
        });
        let config = dns_config(&p, &cluster_dns(), "").expect("config");
        // Cut to 32, then the over-long domain dropped: 31 remain.
        assert_eq!(config.searches.len(), 31);
        assert_eq!(config.searches[0], "d0.example");
        assert!(config.warnings[0].starts_with("Search Line limits were exceeded"));

        // The character limit cuts whole domains from the end.
        let searches: Vec<String> = (0..20)
            .map(|i| format!("{i:02}{}", "x".repeat(198)))
            .collect();
        p.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["1.1.1.1".into()],
            searches,
            options: vec![],
        });
        let config = dns_config(&p, &cluster_dns(), "").expect("config");
        assert_eq!(config.searches.len(), 10);
        assert!(config.searches.join(" ").len() <= MAX_SEARCH_CHARS);
    }

    #[test]
    fn invalid_policy_is_an_error() {
        let err = resolv_conf(&pod("a", "b", "clusterfirst"), &cluster_dns(), "").expect_err("bad");
        assert!(err.to_string().contains("\"clusterfirst\""), "{err}");
    }

    #[test]
    fn hosts_file_matches_the_kubelet() {
        let ip: IpAddr = "10.244.1.5".parse().expect("ip");
        let p = pod("default", "nginx", "ClusterFirst");
        assert_eq!(
            hosts_file(&p, ip, "cluster.local").expect("hosts"),
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.244.1.5\tnginx\n"
        );

        let mut p = pod("web", "busybox-1", "ClusterFirst");
        p.spec.hostname = "busybox-1".into();
        p.spec.subdomain = "busybox-subdomain".into();
        p.spec.host_aliases = vec![
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: vec!["foo.local".into(), "bar.local".into()],
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: vec!["foo.remote".into(), "bar.remote".into()],
            },
        ];
        assert_eq!(
            hosts_file(&p, ip, "cluster.local").expect("hosts"),
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.244.1.5\tbusybox-1.busybox-subdomain.web.svc.cluster.local\tbusybox-1\n\
             \n\
             # Entries added by HostAliases.\n\
             127.0.0.1\tfoo.local\tbar.local\n\
             10.1.2.3\tfoo.remote\tbar.remote\n"
        );
    }

    #[test]
    fn hostname_is_truncated_like_the_kubelet() {
        let mut p = pod("default", &format!("{}-{}", "a".repeat(62), "tail"), "");
        let (hostname, domain) = hostname_and_domain(&p, "cluster.local").expect("name");
        // 63 characters end in '-', which is trimmed.
        assert_eq!(hostname, "a".repeat(62));
        assert_eq!(domain, None);
        p.spec.hostname = "Bad_Name".into();
        let err = hostname_and_domain(&p, "cluster.local").expect_err("invalid");
        assert!(err.to_string().contains("\"Bad_Name\""), "{err}");
    }

    #[test]
    fn host_network_hosts_keeps_the_node_file() {
        let mut p = pod("default", "h", "");
        p.spec.host_aliases = vec![HostAlias {
            ip: "10.0.0.1".into(),
            hostnames: vec!["db".into()],
        }];
        assert_eq!(
            host_network_hosts_file(&p, "127.0.0.1\tlocalhost\n"),
            "# Kubernetes-managed hosts file (host network).\n\
             127.0.0.1\tlocalhost\n\
             \n\
             # Entries added by HostAliases.\n\
             10.0.0.1\tdb\n"
        );
    }

    #[test]
    fn files_are_written_into_the_pod_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_dir = pod_dir(dir.path(), "uid-1");
        let paths = write_pod_files(
            &pod_dir,
            "nameserver 10.96.0.10\n",
            "127.0.0.1\tlocalhost\n",
        )
        .expect("write");
        assert_eq!(paths.resolv_conf, dir.path().join("pods/uid-1/resolv.conf"));
        assert_eq!(
            std::fs::read_to_string(&paths.hosts).expect("hosts"),
            "127.0.0.1\tlocalhost\n"
        );
    }
}

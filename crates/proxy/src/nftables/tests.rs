use super::render::{Rendered, HAIRPIN};
use super::script::{generate, Objects, Script};
use super::*;
use crate::table::tests::{eps, svc};
use crate::table::NodeContext;

fn node() -> NodeContext {
    NodeContext {
        node_name: "node-1".into(),
        addresses: vec!["192.168.56.11".parse().unwrap()],
        nodeport_addresses: Vec::new(),
    }
}

fn cfg() -> NftConfig {
    NftConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        netns: None,
    }
}

/// Hashes vary with every rule wording change; the tests compare the rest exactly.
fn unhashed(script: &str) -> String {
    script
        .lines()
        .map(|l| match l.find("comment \"weft:") {
            Some(i) => format!("{}comment \"weft:HASH\"", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn web(endpoints: &[(&str, &str)]) -> ServiceTable {
    let mut np = svc("np", "10.96.0.30", &[("http", 80)]);
    np.spec.type_ = "NodePort".into();
    np.spec.ports[0].node_port = Some(30080);
    np.spec.external_traffic_policy = "Local".into();
    np.spec.session_affinity = "ClientIP".into();
    ServiceTable::build(
        &[svc("web", "10.96.0.20", &[("", 80)]), np],
        &[
            eps("web", endpoints, &[("", 8080)]),
            eps("np", &[("10.244.1.5", "node-1")], &[("http", 8080)]),
        ],
        &node(),
    )
}

fn two() -> ServiceTable {
    web(&[("10.244.1.3", "node-1"), ("10.244.2.4", "node-2")])
}

#[test]
fn full_script_for_a_small_table() {
    let want = "\
add table ip weft-proxy
add map ip weft-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip weft-proxy service-nodeports { type inet_proto . inet_service : verdict ; }
add set ip weft-proxy nodeport-ips { type ipv4_addr ; }
add map ip weft-proxy cluster-backends-tcp { typeof ip daddr . tcp dport . numgen random mod 1 : ip daddr . tcp dport ; }
add map ip weft-proxy nodeport-backends-tcp { typeof tcp dport . numgen random mod 1 : ip daddr . tcp dport ; }
add map ip weft-proxy cluster-backends-udp { typeof ip daddr . udp dport . numgen random mod 1 : ip daddr . udp dport ; }
add map ip weft-proxy nodeport-backends-udp { typeof udp dport . numgen random mod 1 : ip daddr . udp dport ; }
add map ip weft-proxy cluster-backends-sctp { typeof ip daddr . sctp dport . numgen random mod 1 : ip daddr . sctp dport ; }
add map ip weft-proxy nodeport-backends-sctp { typeof sctp dport . numgen random mod 1 : ip daddr . sctp dport ; }
add set ip weft-proxy hairpin { type ipv4_addr . ipv4_addr ; }
add set ip weft-proxy affinity-default/np/tcp/http__10.244.1.5/8080 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add chain ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080
add chain ip weft-proxy external-default/np/tcp/http
add chain ip weft-proxy mark-for-masquerade
add chain ip weft-proxy nat-output { type nat hook output priority -100; policy accept; }
add chain ip weft-proxy nat-postrouting { type nat hook postrouting priority 100; policy accept; }
add chain ip weft-proxy nat-prerouting { type nat hook prerouting priority -100; policy accept; }
add chain ip weft-proxy pick-cluster-tcp-inc-2
add chain ip weft-proxy service-default/np/tcp/http
add chain ip weft-proxy services
add rule ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080 update @affinity-default/np/tcp/http__10.244.1.5/8080 { ip saddr timeout 10800s }
add rule ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080 meta l4proto tcp dnat to 10.244.1.5:8080 comment \"weft:HASH\"
add rule ip weft-proxy external-default/np/tcp/http ip saddr @affinity-default/np/tcp/http__10.244.1.5/8080 goto endpoint-default/np/tcp/http__10.244.1.5/8080
add rule ip weft-proxy external-default/np/tcp/http numgen inc mod 1 vmap { 0 : goto endpoint-default/np/tcp/http__10.244.1.5/8080 } comment \"weft:HASH\"
add rule ip weft-proxy mark-for-masquerade meta mark set meta mark or 0x4000 comment \"weft:HASH\"
add rule ip weft-proxy nat-output jump services comment \"weft:HASH\"
add rule ip weft-proxy nat-postrouting ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random
add rule ip weft-proxy nat-postrouting meta mark & 0x4000 == 0 return
add rule ip weft-proxy nat-postrouting meta mark set meta mark xor 0x4000
add rule ip weft-proxy nat-postrouting masquerade fully-random comment \"weft:HASH\"
add rule ip weft-proxy nat-prerouting jump services comment \"weft:HASH\"
add rule ip weft-proxy pick-cluster-tcp-inc-2 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip weft-proxy pick-cluster-tcp-inc-2 meta l4proto tcp dnat to ip daddr . tcp dport . numgen inc mod 2 map @cluster-backends-tcp comment \"weft:HASH\"
add rule ip weft-proxy service-default/np/tcp/http ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip weft-proxy service-default/np/tcp/http ip saddr @affinity-default/np/tcp/http__10.244.1.5/8080 goto endpoint-default/np/tcp/http__10.244.1.5/8080
add rule ip weft-proxy service-default/np/tcp/http numgen inc mod 1 vmap { 0 : goto endpoint-default/np/tcp/http__10.244.1.5/8080 } comment \"weft:HASH\"
add rule ip weft-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip weft-proxy services fib daddr type local ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports comment \"weft:HASH\"
add element ip weft-proxy cluster-backends-tcp { 10.96.0.20 . 80 . 0 : 10.244.1.3 . 8080, 10.96.0.20 . 80 . 1 : 10.244.2.4 . 8080 }
add element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 : goto pick-cluster-tcp-inc-2, 10.96.0.30 . tcp . 80 : goto service-default/np/tcp/http }
add element ip weft-proxy service-nodeports { tcp . 30080 : goto external-default/np/tcp/http }
add element ip weft-proxy nodeport-ips { 192.168.56.11 }
add element ip weft-proxy hairpin { 10.244.1.3 . 10.244.1.3, 10.244.1.5 . 10.244.1.5, 10.244.2.4 . 10.244.2.4 }";
    let s = full_script(&two(), &cfg());
    assert_eq!(unhashed(&s.text), want);
    assert_eq!((s.chains_added, s.elements_added), (9, 9));
}

#[test]
fn removing_an_endpoint_changes_elements_not_chains() {
    let one = web(&[("10.244.1.3", "node-1")]);
    let s = incremental_script(&two(), &one, &cfg());
    // The shared chain for one endpoint is new; no chain is rewritten or deleted.
    let want = "\
add chain ip weft-proxy pick-cluster-tcp-inc-1
add rule ip weft-proxy pick-cluster-tcp-inc-1 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip weft-proxy pick-cluster-tcp-inc-1 meta l4proto tcp dnat to ip daddr . tcp dport . numgen inc mod 1 map @cluster-backends-tcp comment \"weft:HASH\"
delete element ip weft-proxy cluster-backends-tcp { 10.96.0.20 . 80 . 1 }
delete element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 }
add element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 : goto pick-cluster-tcp-inc-1 }
delete element ip weft-proxy hairpin { 10.244.2.4 . 10.244.2.4 }";
    assert_eq!(unhashed(&s.text), want);
    assert_eq!(
        (s.chains_added, s.chains_rewritten, s.chains_deleted),
        (1, 0, 0)
    );
    assert_eq!((s.elements_added, s.elements_deleted), (1, 3));

    // And back, on a kernel that already has both shared chains: elements only.
    let mut applied = Applied::of(&two(), &cfg());
    let s = applied.incremental(&one, &cfg());
    assert_eq!(s.chains_added, 1);
    let s = applied.incremental(&two(), &cfg());
    assert_eq!(
        s.text,
        "add element ip weft-proxy cluster-backends-tcp { 10.96.0.20 . 80 . 1 : 10.244.2.4 . 8080 }\n\
         delete element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 }\n\
         add element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 : goto pick-cluster-tcp-inc-2 }\n\
         add element ip weft-proxy hairpin { 10.244.2.4 . 10.244.2.4 }\n"
    );
    // The state followed: nothing more to do.
    assert_eq!(applied.incremental(&two(), &cfg()).text, "");
}

#[test]
fn a_hairpin_address_stays_while_any_service_uses_it() {
    let mut both = two();
    let web_port = both.services.values().find(|v| v.name.name == "web");
    let mut other = web_port.unwrap().clone();
    other.name.name = "other".into();
    other.cluster_ip = "10.96.0.21".parse().unwrap();
    both.services.insert(other.name.clone(), other);
    let mut applied = Applied::of(&both, &cfg());
    let mut without_web = both.clone();
    without_web.services.retain(|k, _| k.name != "web");
    let s = applied.incremental(&without_web, &cfg());
    assert!(!s.text.contains("hairpin"), "{}", s.text);
    let mut none = without_web.clone();
    none.services.retain(|k, _| k.name == "np");
    let s = applied.incremental(&none, &cfg());
    assert!(
        s.text
            .contains("delete element ip weft-proxy hairpin { 10.244.1.3 . 10.244.1.3, 10.244.2.4 . 10.244.2.4 }"),
        "{}",
        s.text
    );
}

#[test]
fn removing_a_service_deletes_its_elements_chains_and_sets() {
    let mut only_web = two();
    only_web.services.retain(|k, _| k.name == "web");
    let s = incremental_script(&two(), &only_web, &cfg());
    let want = "\
delete element ip weft-proxy service-ips { 10.96.0.30 . tcp . 80 }
delete element ip weft-proxy service-nodeports { tcp . 30080 }
delete element ip weft-proxy hairpin { 10.244.1.5 . 10.244.1.5 }
flush chain ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080
flush chain ip weft-proxy external-default/np/tcp/http
flush chain ip weft-proxy service-default/np/tcp/http
delete chain ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080
delete chain ip weft-proxy external-default/np/tcp/http
delete chain ip weft-proxy service-default/np/tcp/http
delete set ip weft-proxy affinity-default/np/tcp/http__10.244.1.5/8080";
    assert_eq!(s.text, want.to_string() + "\n");
}

#[test]
fn a_new_cluster_ip_replaces_the_map_elements() {
    let mut moved = two();
    for vs in moved.services.values_mut().filter(|v| v.name.name == "web") {
        vs.cluster_ip = "10.96.0.99".parse().unwrap();
    }
    let s = incremental_script(&two(), &moved, &cfg());
    assert_eq!(
        s.text,
        "delete element ip weft-proxy cluster-backends-tcp { 10.96.0.20 . 80 . 0, 10.96.0.20 . 80 . 1 }\n\
         add element ip weft-proxy cluster-backends-tcp { 10.96.0.99 . 80 . 0 : 10.244.1.3 . 8080, 10.96.0.99 . 80 . 1 : 10.244.2.4 . 8080 }\n\
         delete element ip weft-proxy service-ips { 10.96.0.20 . tcp . 80 }\n\
         add element ip weft-proxy service-ips { 10.96.0.99 . tcp . 80 : goto pick-cluster-tcp-inc-2 }\n"
    );
}

#[test]
fn node_address_changes_only_touch_the_address_set() {
    let mut moved = two();
    moved.node_addresses = vec!["192.168.56.12".parse().unwrap()];
    let s = incremental_script(&two(), &moved, &cfg());
    assert_eq!(
        s.text,
        "delete element ip weft-proxy nodeport-ips { 192.168.56.11 }\n\
         add element ip weft-proxy nodeport-ips { 192.168.56.12 }\n"
    );
}

#[test]
fn nothing_changed_means_no_transaction() {
    assert_eq!(incremental_script(&two(), &two(), &cfg()).text, "");
    // A full sync against a kernel already holding the table: nothing either.
    let want = render::full(&two(), &cfg());
    assert_eq!(generate(&want.objects(), &want, true).text, "");
}

#[test]
fn full_sync_repairs_only_what_differs_in_the_kernel() {
    let want: Rendered = render::full(&two(), &cfg());
    let mut have: Objects = want.objects();
    have.chains
        .insert("pick-cluster-tcp-inc-2".into(), "stale".into());
    have.chains
        .insert("service-default/gone/tcp/_".into(), String::new());
    have.chains
        .insert("pick-cluster-tcp-inc-7".into(), String::new());
    have.service_ips.insert(
        "10.96.0.77 . udp . 53".into(),
        "goto service-default/gone/tcp/_".into(),
    );
    have.backends
        .get_mut("cluster-backends-tcp")
        .unwrap()
        .remove("10.96.0.20 . 80 . 1");
    have.hairpin
        .as_mut()
        .unwrap()
        .insert("10.244.9.9".parse().unwrap());
    let s = generate(&have, &want, true);
    let body: Vec<String> = unhashed(&s.text)
        .lines()
        .skip(11)
        .map(str::to_string)
        .collect();
    assert_eq!(
        body,
        [
            "flush chain ip weft-proxy pick-cluster-tcp-inc-2",
            "add rule ip weft-proxy pick-cluster-tcp-inc-2 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
            "add rule ip weft-proxy pick-cluster-tcp-inc-2 meta l4proto tcp dnat to ip daddr . tcp dport . numgen inc mod 2 map @cluster-backends-tcp comment \"weft:HASH\"",
            "add element ip weft-proxy cluster-backends-tcp { 10.96.0.20 . 80 . 1 : 10.244.2.4 . 8080 }",
            "delete element ip weft-proxy service-ips { 10.96.0.77 . udp . 53 }",
            "delete element ip weft-proxy hairpin { 10.244.9.9 . 10.244.9.9 }",
            // A full sync also removes shared chains nothing uses any more.
            "flush chain ip weft-proxy pick-cluster-tcp-inc-7",
            "flush chain ip weft-proxy service-default/gone/tcp/_",
            "delete chain ip weft-proxy pick-cluster-tcp-inc-7",
            "delete chain ip weft-proxy service-default/gone/tcp/_",
        ],
        "{}",
        s.text
    );
    assert_eq!(
        (s.chains_rewritten, s.chains_deleted, s.elements_deleted),
        (1, 2, 2)
    );
}

#[test]
fn random_scheduler_and_no_endpoints() {
    let mut t = two();
    for vs in t.services.values_mut() {
        vs.scheduler = "sh".into();
    }
    let s = full_script(&t, &cfg()).text;
    assert!(
        s.contains("pick-cluster-tcp-random-2 meta l4proto tcp dnat to ip daddr . tcp dport . numgen random mod 2 map @cluster-backends-tcp"),
        "{s}"
    );
    let empty = web(&[]);
    let s = full_script(&empty, &NftConfig::default()).text;
    assert!(s.contains("10.96.0.20 . tcp . 80 : drop"), "{s}");
    assert!(
        !s.contains("pick-cluster"),
        "no endpoints, no pick chain: {s}"
    );
    assert!(
        !s.contains("10.244.0.0/16"),
        "no cluster CIDR, no rule using it"
    );
}

#[test]
fn a_new_affinity_timeout_rewrites_the_endpoint_chain_not_the_set() {
    let mut longer = two();
    for vs in longer.services.values_mut().filter(|v| v.name.name == "np") {
        vs.affinity_timeout = Some(60);
    }
    let s = incremental_script(&two(), &longer, &cfg());
    assert_eq!(
        unhashed(&s.text),
        "flush chain ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080
add rule ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080 update @affinity-default/np/tcp/http__10.244.1.5/8080 { ip saddr timeout 60s }
add rule ip weft-proxy endpoint-default/np/tcp/http__10.244.1.5/8080 meta l4proto tcp dnat to 10.244.1.5:8080 comment \"weft:HASH\""
    );
}

/// `n` Services with `per` endpoints each; Service 1's first endpoint is `first`.
fn many(n: usize, per: usize, first: &str) -> ServiceTable {
    let (mut services, mut endpoints) = (Vec::new(), Vec::new());
    for i in 1..=n {
        let name = format!("s{i}");
        let vip = format!("10.97.{}.{}", i / 256, i % 256);
        services.push(svc(&name, &vip, &[("", 80)]));
        let ips: Vec<String> = (0..per)
            .map(|j| match (i, j) {
                (1, 0) => first.to_string(),
                _ => {
                    let k = i * per + j;
                    format!("10.{}.{}.{}", 128 + k / 65536, k / 256 % 256, k % 256)
                }
            })
            .collect();
        let addrs: Vec<(&str, &str)> = ips.iter().map(|ip| (ip.as_str(), "node-2")).collect();
        endpoints.push(eps(&name, &addrs, &[("", 8080)]));
    }
    ServiceTable::build(&services, &endpoints, &node())
}

type Elements = BTreeMap<String, BTreeMap<String, String>>;

/// The elements that may be staged: backend maps and the hairpin set (its pairs as keys).
fn stageable(o: &Objects) -> Elements {
    let mut all = o.backends.clone();
    let pairs = o
        .hairpin
        .iter()
        .flatten()
        .map(|ip| (format!("{ip} . {ip}"), String::new()));
    all.insert(HAIRPIN.to_string(), pairs.collect());
    all.retain(|_, m| !m.is_empty());
    all
}

/// Replays a script's element statements on `have`'s stageable elements, checking on the
/// way that staged transactions only add keys the kernel does not hold yet.
fn replay(have: &Objects, s: &Script) -> Elements {
    let mut all = stageable(have);
    let staged = s.staged.len();
    for (n, tx) in s.transactions().enumerate() {
        for line in tx.lines() {
            let Some((head, list)) = line.split_once(" { ") else {
                continue;
            };
            let words: Vec<&str> = head.split(' ').collect();
            let is_stage = n < staged;
            let (verb, target) = (words[0], words[4]);
            if words[1] != "element" {
                assert!(!is_stage || n == 0, "only the first stage declares: {line}");
                continue;
            }
            if !target.contains("backends") && target != HAIRPIN {
                assert!(!is_stage, "a staged verdict or set element: {line}");
                continue;
            }
            let elements = all.entry(target.to_string()).or_default();
            for item in list.trim_end_matches(" }").split(", ") {
                match verb {
                    "add" => {
                        let (k, v) = item.split_once(" : ").unwrap_or((item, ""));
                        let old = elements.insert(k.to_string(), v.to_string());
                        assert!(old.is_none(), "{k} added twice (the kernel refuses)");
                    }
                    "delete" => {
                        assert!(!is_stage, "a staged delete: {line}");
                        assert!(elements.remove(item).is_some(), "{item} deleted but absent");
                    }
                    other => panic!("unexpected {other}: {line}"),
                }
            }
        }
    }
    all.retain(|_, m| !m.is_empty());
    all
}

#[test]
fn a_large_first_sync_stages_new_backends_ahead_of_the_switch() {
    let table = many(2_100, 10, "10.128.0.10");
    let s = full_script(&table, &cfg());
    let want = render::full(&table, &cfg());
    // 21,000 new backend elements and as many hairpin pairs: stages of 20,000.
    let sizes: Vec<usize> = s
        .staged
        .iter()
        .map(|t| {
            t.lines()
                .filter(|l| l.starts_with("add element"))
                .map(|l| l.split(", ").count())
                .sum()
        })
        .collect();
    assert_eq!(
        sizes,
        [script::STAGE_ELEMENTS, script::STAGE_ELEMENTS, 2_000]
    );
    assert!(
        s.staged[0].starts_with("add table ip weft-proxy\n"),
        "maps first"
    );
    assert!(
        !s.text
            .contains("add element ip weft-proxy cluster-backends-tcp"),
        "no backend left for the switch"
    );
    assert_eq!(
        s.text.matches(" : goto pick-cluster-tcp-inc-10").count(),
        2_100
    );
    assert!(!s.text.contains("add element ip weft-proxy hairpin"));
    assert_eq!(replay(&Objects::default(), &s), stageable(&want.objects()));
    // Backends, hairpin pairs, verdicts, the node address.
    assert_eq!(s.elements_added, 21_000 + 21_000 + 2_100 + 1);
}

#[test]
fn staging_leaves_changed_backends_in_the_switching_transaction() {
    let before = render::full(&many(10, 10, "10.128.0.10"), &cfg()).objects();
    // Service 1 gets a pod replaced while 2,090 Services arrive.
    let table = many(2_100, 10, "10.200.0.1");
    let s = generate(&before, &render::full(&table, &cfg()), true);
    assert_eq!(
        s.staged.len(),
        3,
        "20,900 new backend elements, 20,901 hairpin pairs"
    );
    for stage in &s.staged {
        assert!(!stage.contains("10.97.0.1 . 80 ."), "{stage}");
    }
    assert!(
        s.text
            .contains("delete element ip weft-proxy cluster-backends-tcp { 10.97.0.1 . 80 ."),
        "{}",
        s.text
    );
    assert!(s.text.contains("10.200.0.1 . 8080"), "{}", s.text);
    let want = render::full(&table, &cfg());
    assert_eq!(replay(&before, &s), stageable(&want.objects()));
}

#[test]
fn small_changes_stay_one_transaction() {
    let s = incremental_script(&two(), &web(&[("10.244.1.3", "node-1")]), &cfg());
    assert!(s.staged.is_empty());
    assert_eq!(s.transactions().count(), 1);
    let s = full_script(&many(1_000, 10, "10.128.0.10"), &cfg());
    assert!(
        s.staged.is_empty(),
        "10,000 backends and 10,000 hairpin pairs: not more than one stage"
    );
}

//! Cluster DNS end to end in the namespace lab: every `weft node` serves DNS on its address
//! and runs the service proxy, kube-dns (10.96.0.10) lists the nodes, and `dig` from a pod,
//! through the nameserver of the pod's own resolv.conf, asks for every kind of record of
//! the Kubernetes DNS specification; then `curl` reaches a Service by its names.
//! Needs root; without it the test prints `SKIPPED`. Build the binaries first
//! (`cargo build --workspace --bins`, as scripts/test does).

use std::time::Duration;

use serde_json::json;
use weft_integration::{can_run, echo_pod, sleep_pod, EchoReply, Lab};

const NS: &str = "default";

/// `dig` from the client pod to the nameserver of its resolv.conf (kube-dns).
fn dig(lab: &Lab, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+time=2", "+tries=2"];
    argv.extend_from_slice(args);
    let out = lab.exec_in_pod(NS, "client", &argv);
    assert!(
        out.status.success(),
        "dig {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn dig_from_a_pod_gets_every_kind_of_record() {
    if !can_run("dig_from_a_pod_gets_every_kind_of_record") {
        return;
    }
    assert!(
        std::process::Command::new("dig").arg("-v").output().is_ok(),
        "dig is required (scripts/install-deps installs dnsutils)"
    );
    let lab = Lab::start(2);
    lab.apply(&sleep_pod(NS, "client", Some("node1")));
    // Two endpoints of a headless Service, one with a hostname under it.
    for (name, hostname) in [("web-0", Some("web-0")), ("web-1", None)] {
        let mut pod: serde_json::Value = serde_json::from_str(&echo_pod(NS, name, None)).unwrap();
        pod["metadata"]["labels"] = json!({"app": "web"});
        if let Some(h) = hostname {
            pod["spec"]["hostname"] = json!(h);
            pod["spec"]["subdomain"] = json!("web");
        }
        lab.apply(&pod.to_string());
    }
    let services = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": NS},
         "spec": {"type": "ExternalName", "externalName": "db.example.org"}},
    ]});
    lab.apply(&services.to_string());
    lab.wait_pod_running(NS, "client");
    let (web0, _) = lab.wait_pod_ready(NS, "web-0");
    let (web1, _) = lab.wait_pod_ready(NS, "web-1");
    let api_ip = lab.get_json(&["get", "svc", "api", "-n", NS]).unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    // kube-dns is served by the nodes themselves: its Endpoints list both addresses.
    lab.wait_endpoints_are_nodes("kube-system", "kube-dns", &[1, 2]);
    // The pod asks the nameserver of its own resolv.conf: the kube-dns ClusterIP.
    let resolv = lab.exec_in_pod(NS, "client", &["cat", "/etc/resolv.conf"]);
    let resolv = String::from_utf8_lossy(&resolv.stdout);
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    // The server answers the spec version once the proxy sends 10.96.0.10 to it.
    lab.wait_until(Duration::from_secs(30), "cluster DNS to answer", || {
        (dig(&lab, &["+short", "TXT", "dns-version.cluster.local"]) == "\"1.1.0\"").then_some(())
    });
    let mut want_headless = vec![web0.to_string(), web1.to_string()];
    want_headless.sort();
    lab.wait_until(
        Duration::from_secs(30),
        "the headless Service's endpoints in DNS",
        || {
            (sorted_lines(&dig(&lab, &["+short", "web.default.svc.cluster.local"]))
                == want_headless)
                .then_some(())
        },
    );

    // Each node's server answers the pod, the other node's too (the query arrives
    // masqueraded to node 1's address, which is on the node network it allows).
    for node in [1, 2] {
        let at = format!("@{}", lab.node(node).ip);
        assert_eq!(
            dig(&lab, &[&at, "+short", "api.default.svc.cluster.local"]),
            api_ip,
            "node {node}'s DNS server"
        );
    }

    // ClusterIP Service: A, case-insensitively; SRV for the named port; PTR.
    assert_eq!(
        dig(&lab, &["+short", "api.default.svc.cluster.local"]),
        api_ip
    );
    assert_eq!(
        dig(&lab, &["+short", "API.Default.SVC.cluster.LOCAL"]),
        api_ip
    );
    assert_eq!(
        dig(
            &lab,
            &["+short", "SRV", "_http._tcp.api.default.svc.cluster.local"]
        ),
        "0 100 80 api.default.svc.cluster.local."
    );
    assert_eq!(
        dig(&lab, &["+short", "-x", &api_ip]),
        "api.default.svc.cluster.local."
    );
    // Headless: the endpoint with a hostname, its PTR, SRV per endpoint.
    assert_eq!(
        dig(&lab, &["+short", "web-0.web.default.svc.cluster.local"]),
        web0.to_string()
    );
    assert_eq!(
        dig(&lab, &["+short", "-x", &web0.to_string()]),
        "web-0.web.default.svc.cluster.local."
    );
    let srv = dig(
        &lab,
        &["+short", "SRV", "_http._tcp.web.default.svc.cluster.local"],
    );
    assert_eq!(srv.lines().count(), 2, "{srv}");
    assert!(
        srv.contains("8080 web-0.web.default.svc.cluster.local."),
        "{srv}"
    );
    // ExternalName, pod names, NXDOMAIN vs NODATA.
    assert_eq!(
        dig(&lab, &["+short", "CNAME", "db.default.svc.cluster.local"]),
        "db.example.org."
    );
    let dashed = web1.to_string().replace('.', "-");
    assert_eq!(
        dig(
            &lab,
            &["+short", &format!("{dashed}.default.pod.cluster.local")]
        ),
        web1.to_string()
    );
    let missing = dig(&lab, &["nothere.default.svc.cluster.local"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    let nodata = dig(&lab, &["AAAA", "api.default.svc.cluster.local"]);
    assert!(
        nodata.contains("status: NOERROR")
            && nodata.contains("ANSWER: 0")
            && nodata.contains("SOA"),
        "{nodata}"
    );
    // Over TCP too.
    assert_eq!(
        dig(&lab, &["+tcp", "+short", "api.default.svc.cluster.local"]),
        api_ip
    );

    // By name, as an application would: the full name, then the short one through the
    // search path; the proxy sends both to one of the Service's pods.
    for url in [
        "http://api.default.svc.cluster.local/",
        "http://api.default/",
        "http://api/",
    ] {
        let body = lab.http_get_from_pod(NS, "client", url);
        let reply =
            EchoReply::parse(&body).unwrap_or_else(|| panic!("{url}: not an echo reply: {body:?}"));
        assert!(
            [web0, web1].contains(&reply.pod_ip),
            "{url} answered by {reply:?}, not a pod of Service api"
        );
    }

    // Hairpin: a pod of Service api reaches itself through the ClusterIP (round robin
    // sends every other connection back to it). Its reply must seem to come from the
    // ClusterIP, so the proxy masquerades it: the pod sees a node address as the client.
    let mut itself = None;
    for _ in 0..8 {
        let body = lab.http_get_from_pod(NS, "web-0", &format!("http://{api_ip}/"));
        let reply =
            EchoReply::parse(&body).unwrap_or_else(|| panic!("not an echo reply: {body:?}"));
        if reply.pod_ip == web0 {
            itself = Some(reply);
            break;
        }
    }
    let itself = itself.expect("web-0 never reached itself through its Service");
    assert_ne!(
        itself.client_ip, web0,
        "hairpin traffic is masqueraded: {itself:?}"
    );

    // A Service the proxy cannot program is skipped and reported as a Warning Event on it.
    lab.apply(
        &json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "odd", "namespace": NS,
                         "annotations": {"weft.io/ipvs-scheduler": "bogus"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        .to_string(),
    );
    let message = lab.wait_until(
        Duration::from_secs(30),
        "a Warning Event on Service odd",
        || {
            let events = lab.get_json(&["get", "events", "-n", NS])?;
            events["items"].as_array()?.iter().find_map(|e| {
                (e["involvedObject"]["name"] == "odd"
                    && e["reason"] == "ServiceSkipped"
                    && e["type"] == "Warning")
                    .then(|| e["message"].as_str().unwrap_or_default().to_string())
            })
        },
    );
    assert!(message.contains("bogus"), "{message}");
    // The other Services are still served.
    let body = lab.http_get_from_pod(NS, "client", "http://api/");
    assert!(EchoReply::parse(&body).is_some(), "{body}");
}

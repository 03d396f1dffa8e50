//! The path router end to end in the namespace lab: every `weft node` runs the router on
//! its address, the built-in `weft-router` Service (10.96.0.11) lists the nodes, cluster
//! DNS maps a DNS object's host to that address, and `curl http://<host>/<path>` from a
//! pod reaches the Service the path names, with the path prefix stripped. Updating the
//! object moves traffic within a second, and a streaming response that started before
//! the change finishes intact.
//! Needs root; without it the test prints `SKIPPED`. Build the binaries first
//! (`cargo build --workspace --bins`, as scripts/test does).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weft_integration::{can_run, echo_pod, sleep_pod, Lab};

const NS: &str = "default";
const HOST: &str = "shop.example.com";

fn labelled_echo_pod(name: &str, app: &str, node: &str) -> String {
    let mut pod: Value = serde_json::from_str(&echo_pod(NS, name, Some(node))).unwrap();
    pod["metadata"]["labels"] = json!({ "app": app });
    pod.to_string()
}

fn dns_object(wear_service: &str) -> String {
    json!({"apiVersion": "weft.io/v1", "kind": "DNS",
    "metadata": {"name": "shop", "namespace": NS},
    "spec": {"host": HOST, "paths": [
        {"path": "/wear", "service": {"name": wear_service, "port": 80}},
        {"path": "/watch", "service": {"name": "watch", "port": "http"}},
    ]}})
    .to_string()
}

/// `curl` from the client pod: (HTTP status, body); status 0 when nothing answered.
fn curl(lab: &Lab, url: &str) -> (u16, String) {
    let out = lab.exec_in_pod(
        NS,
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            "-w",
            "\n%{http_code}",
            url,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn curl_by_host_and_path_reaches_each_service() {
    if !can_run("curl_by_host_and_path_reaches_each_service") {
        return;
    }
    let lab = Lab::start(2);
    lab.apply(&labelled_echo_pod("wear-1", "wear", "node2"));
    lab.apply(&labelled_echo_pod("watch-1", "watch", "node1"));
    lab.apply(&sleep_pod(NS, "client", Some("node1")));
    let services = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wear", "namespace": NS},
         "spec": {"selector": {"app": "wear"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "watch", "namespace": NS},
         "spec": {"selector": {"app": "watch"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    ]});
    lab.apply(&services.to_string());
    lab.apply(&dns_object("wear"));
    lab.wait_pod_ready(NS, "wear-1");
    lab.wait_pod_ready(NS, "watch-1");
    lab.wait_pod_running(NS, "client");

    // The router's Service lists both nodes, as kube-dns does.
    lab.wait_endpoints_are_nodes("kube-system", "weft-router", &[1, 2]);

    // By host name from the pod: cluster DNS gives the router's ClusterIP, the proxy sends
    // it to a node's router, which strips the matched prefix (/wear/hostname → /hostname).
    let wear = format!("http://{HOST}/wear/hostname");
    let watch = format!("http://{HOST}/watch/hostname");
    lab.wait_until(
        Duration::from_secs(30),
        "the router to answer by host name",
        || (curl(&lab, &wear) == (200, "wear-1".to_string())).then_some(()),
    );
    assert_eq!(curl(&lab, &watch), (200, "watch-1".into()));
    // Host names match case-insensitively; the port in Host is ignored.
    let upper = format!("http://{}:80/WATCH/hostname", HOST.to_uppercase());
    assert_eq!(curl(&lab, &upper).0, 404, "paths are case-sensitive");
    let upper = format!("http://{}:80/watch/hostname", HOST.to_uppercase());
    assert_eq!(curl(&lab, &upper), (200, "watch-1".into()));
    // Unknown paths and prefixes that are not whole segments: a 404 naming them.
    let (code, body) = curl(&lab, &format!("http://{HOST}/wearable"));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("/wearable"), "{body}");

    // A long streaming response through /watch, started before the object changes.
    let stream_url = format!("http://{HOST}/watch/stream?lines=8&interval_ms=250");
    let mut stream = lab.spawn_in_pod(
        NS,
        "client",
        &["curl", "-sSN", "--max-time", "20", &stream_url],
    );
    let mut lines = BufReader::new(stream.stdout.take().expect("piped stdout")).lines();
    let first = lines.next().expect("a first line").expect("readable");
    assert_eq!(first, "line 1/8 from watch-1");

    // Point /wear at the watch Service: traffic moves within a second of the change.
    lab.apply(&dns_object("watch"));
    let changed = Instant::now();
    loop {
        if curl(&lab, &wear) == (200, "watch-1".to_string()) {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "/wear still not moved {:?} after the change",
            changed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("route change took effect after {:?}", changed.elapsed());

    // The stream in flight was not cut: every line arrived.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = stream.wait().expect("curl exits");
    let want: Vec<String> = (2..=8)
        .map(|i| format!("line {i}/8 from watch-1"))
        .collect();
    assert_eq!(rest, want, "curl {status}");
    assert!(status.success(), "curl {status}");
}

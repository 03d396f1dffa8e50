//! The built-in controllers against a live API server: endpoints follow pods and readiness,
//! the scheduler binds pending pods, and a silent node turns NotReady and loses its endpoints.

mod common;

use std::time::Duration;

use common::{service, TestServer};
use serde_json::{json, Value};

const NS: &str = "/api/v1/namespaces/default";

async fn eventually<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node(name: &str, heartbeat: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}]}})
}

fn pod(name: &str, app: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"],
                 "ports": [{"name": "http", "containerPort": 8080}]}]}})
}

async fn set_pod_status(s: &TestServer, name: &str, ip: &str, ready: bool) {
    let (code, mut p) = s.get(&format!("{NS}/pods/{name}")).await;
    assert_eq!(code, 200);
    p["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]});
    let (code, body) = s.put(&format!("{NS}/pods/{name}/status"), &p).await;
    assert_eq!(code, 200, "{body}");
}

fn ready_ips(ep: &Value) -> Vec<String> {
    let mut ips: Vec<String> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| a["ip"].as_str().unwrap_or("").to_string())
        .collect();
    ips.sort();
    ips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods_and_readiness() {
    let s = TestServer::start().await;
    let now = chrono_now();
    assert_eq!(s.post("/api/v1/nodes", &node("n1", &now)).await.0, 201);
    let (code, svc) = s
        .post(
            &format!("{NS}/services"),
            &service(
                "web",
                json!({"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{svc}");
    for (name, ip) in [("web-1", "10.244.0.2"), ("web-2", "10.244.0.3")] {
        assert_eq!(
            s.post(&format!("{NS}/pods"), &pod(name, "web", "n1"))
                .await
                .0,
            201
        );
        set_pod_status(&s, name, ip, true).await;
    }
    let ep = eventually("both pods in endpoints", || async {
        let (code, ep) = s.get(&format!("{NS}/endpoints/web")).await;
        (code == 200 && ready_ips(&ep) == ["10.244.0.2", "10.244.0.3"]).then_some(ep)
    })
    .await;
    assert_eq!(
        ep["subsets"][0]["ports"][0]["port"], 8080,
        "named targetPort resolved"
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "http");

    // Not ready → moved to notReadyAddresses.
    set_pod_status(&s, "web-2", "10.244.0.3", false).await;
    let ep = eventually("web-2 not ready", || async {
        let (_, ep) = s.get(&format!("{NS}/endpoints/web")).await;
        (ready_ips(&ep) == ["10.244.0.2"]).then_some(ep)
    })
    .await;
    assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "10.244.0.3");

    // Pod deleted → gone; Service deleted → Endpoints deleted.
    assert_eq!(s.delete(&format!("{NS}/pods/web-1")).await.0, 200);
    eventually("web-1 gone", || async {
        let (_, ep) = s.get(&format!("{NS}/endpoints/web")).await;
        ready_ips(&ep).is_empty().then_some(ep)
    })
    .await;
    assert_eq!(s.delete(&format!("{NS}/services/web")).await.0, 200);
    eventually("endpoints deleted with the service", || async {
        let (code, ep) = s.get(&format!("{NS}/endpoints/web")).await;
        (code == 404).then_some(ep)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_binds_to_the_least_loaded_ready_node() {
    let s = TestServer::start().await;
    let now = chrono_now();
    for n in ["n1", "n2"] {
        assert_eq!(s.post("/api/v1/nodes", &node(n, &now)).await.0, 201);
    }
    assert_eq!(
        s.post(&format!("{NS}/pods"), &pod("busy", "x", "n1"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.post(&format!("{NS}/pods"), &pod("new", "x", "")).await.0,
        201
    );
    let p = eventually("pod bound", || async {
        let (_, p) = s.get(&format!("{NS}/pods/new")).await;
        (!p["spec"]["nodeName"].as_str().unwrap_or("").is_empty()).then_some(p)
    })
    .await;
    assert_eq!(p["spec"]["nodeName"], "n2");
    // A bound pod's node cannot be changed by an update.
    let mut moved = p.clone();
    moved["spec"]["nodeName"] = json!("n1");
    let (code, _) = s.put(&format!("{NS}/pods/new"), &moved).await;
    assert_eq!(code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_turns_not_ready_and_its_pods_leave_endpoints() {
    // The grace period is several heartbeats long, so a healthy node never looks stale
    // (the heartbeats below have one-second resolution).
    let s = TestServer::start_with(|c| {
        c.controllers.node_monitor_grace = Duration::from_secs(5);
        c.controllers.node_monitor_period = Duration::from_millis(200);
    })
    .await;
    // n1 heartbeats every 300 ms, as its agent would; n2's heartbeat is already old.
    assert_eq!(
        s.post("/api/v1/nodes", &node("n1", &chrono_now())).await.0,
        201
    );
    let heartbeats = {
        let (client, url, token) = (s.client.clone(), s.url.clone(), s.token.clone());
        tokio::spawn(async move {
            loop {
                let beat = json!({"status": {"conditions": [
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": chrono_now()}]}});
                let _ = client
                    .patch(format!("{url}/api/v1/nodes/n1/status"))
                    .bearer_auth(&token)
                    .header("content-type", "application/merge-patch+json")
                    .body(beat.to_string())
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    assert_eq!(
        s.post("/api/v1/nodes", &node("n2", "2020-01-01T00:00:00Z"))
            .await
            .0,
        201
    );
    s.post(
        &format!("{NS}/services"),
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        ),
    )
    .await;
    for (name, ip, n) in [("a", "10.244.0.2", "n1"), ("b", "10.244.1.2", "n2")] {
        assert_eq!(
            s.post(&format!("{NS}/pods"), &pod(name, "web", n)).await.0,
            201
        );
        set_pod_status(&s, name, ip, true).await;
    }
    let node2 = eventually("n2 Unknown", || async {
        let (_, n) = s.get("/api/v1/nodes/n2").await;
        (n["status"]["conditions"][0]["status"] == "Unknown").then_some(n)
    })
    .await;
    assert_eq!(
        node2["status"]["conditions"][0]["reason"],
        "NodeStatusUnknown"
    );
    eventually("only n1's pod ready", || async {
        let (_, ep) = s.get(&format!("{NS}/endpoints/web")).await;
        (ready_ips(&ep) == ["10.244.0.2"]).then_some(ep)
    })
    .await;
    let (_, n1) = s.get("/api/v1/nodes/n1").await;
    assert_eq!(
        n1["status"]["conditions"][0]["status"], "True",
        "a node within its grace stays Ready"
    );
    heartbeats.abort();
}

fn chrono_now() -> String {
    // RFC 3339 without pulling chrono into the test: the system clock via `date`.
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_router_service_lists_the_ready_nodes_running_the_router() {
    let s = TestServer::start().await;
    let path = "/api/v1/namespaces/kube-system";
    let (code, svc) = s.get(&format!("{path}/services/weft-router")).await;
    assert_eq!(code, 200, "{svc}");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.11");
    assert_eq!(svc["spec"]["ports"][0]["name"], "http");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 10080);
    for (name, ip, serves) in [
        ("n1", "192.168.56.11", "router"),
        ("n2", "192.168.56.12", "dns"),
    ] {
        let mut n = node(name, &chrono_now());
        n["metadata"]["annotations"] = json!({"weft.io/node-services": serves});
        n["status"]["addresses"] = json!([{"type": "InternalIP", "address": ip}]);
        assert_eq!(s.post("/api/v1/nodes", &n).await.0, 201);
    }
    let ep = eventually("the router node in weft-router's endpoints", || async {
        let (code, ep) = s.get(&format!("{path}/endpoints/weft-router")).await;
        (code == 200 && ready_ips(&ep) == ["192.168.56.11"]).then_some(ep)
    })
    .await;
    assert_eq!(ep["subsets"][0]["addresses"][0]["nodeName"], "n1");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 10080);
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "http");
}

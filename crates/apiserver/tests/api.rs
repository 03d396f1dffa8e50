//! The API server end to end over HTTPS: built-in objects, authentication, CRUD with
//! compare-and-swap, strict decoding and validation errors, allocations, watches.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{node, service, TestServer};
use serde_json::{json, Value};

const SVCS: &str = "/api/v1/namespaces/default/services";

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric rv")
}

#[tokio::test]
async fn built_in_objects_exist_from_first_start() {
    let s = TestServer::start().await;
    for ns in ["default", "kube-system"] {
        let (code, _) = s.get(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(code, 200, "namespace {ns}");
    }
    let (code, k) = s
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(code, 200);
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    let (code, dns) = s
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .await;
    assert_eq!(code, 200);
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
    let ports: Vec<(String, String, u64)> = dns["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["protocol"].as_str().unwrap().into(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            ("dns".into(), "UDP".into(), 53),
            ("dns-tcp".into(), "TCP".into(), 53)
        ]
    );
    // Advertised on loopback, the API server is no endpoint pods could use.
    let (code, _) = s
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await;
    assert_eq!(code, 404);
    // Discovery documents kubectl reads.
    let (code, core) = s.get("/api/v1").await;
    assert_eq!(code, 200);
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "services"));
    let (code, groups) = s.get("/apis").await;
    assert_eq!(code, 200);
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "networking.k8s.io"));
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let s = TestServer::start().await;
    for path in ["/api/v1/namespaces", "/healthz", "/version", "/apis"] {
        let resp = s
            .client
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} without a token");
        let resp = s
            .client
            .get(format!("{}{path}", s.url))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} with a wrong token");
    }
    let (code, _) = s.get("/healthz").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn crud_with_compare_and_swap() {
    let s = TestServer::start().await;
    let (code, created) = s
        .post(SVCS, &service("web", json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]})))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["type"], "ClusterIP", "defaulted");
    assert_eq!(created["spec"]["ports"][0]["protocol"], "TCP", "defaulted");
    assert!(created["metadata"]["uid"].as_str().is_some());
    let first_rv = rv(&created);

    let (code, again) = s
        .post(SVCS, &service("web", json!({"ports": [{"port": 80}]})))
        .await;
    assert_eq!(code, 409, "{again}");
    assert_eq!(again["reason"], "AlreadyExists");

    // Update with the current resourceVersion succeeds and keeps the ClusterIP.
    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"tier": "front"});
    let (code, updated) = s.put(&format!("{SVCS}/web"), &changed).await;
    assert_eq!(code, 200, "{updated}");
    assert!(rv(&updated) > first_rv);
    assert_eq!(updated["spec"]["clusterIP"], created["spec"]["clusterIP"]);

    // The same write with the old resourceVersion is a conflict and changes nothing.
    changed["metadata"]["labels"] = json!({"tier": "back"});
    let (code, conflict) = s.put(&format!("{SVCS}/web"), &changed).await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["reason"], "Conflict");
    let (_, current) = s.get(&format!("{SVCS}/web")).await;
    assert_eq!(current["metadata"]["labels"]["tier"], "front");

    // Writing the object back unchanged does not bump its resourceVersion.
    let (code, same) = s.put(&format!("{SVCS}/web"), &current).await;
    assert_eq!(code, 200);
    assert_eq!(rv(&same), rv(&current));

    // A merge patch.
    let (code, patched) = s
        .call(reqwest::Method::PATCH, &format!("{SVCS}/web"), None)
        .await;
    assert_eq!(
        code, 415,
        "a patch without a merge-patch content type is refused: {patched}"
    );
    let resp = s
        .request(reqwest::Method::PATCH, &format!("{SVCS}/web"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"annotations":{"note":"hi"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, current) = s.get(&format!("{SVCS}/web")).await;
    assert_eq!(current["metadata"]["annotations"]["note"], "hi");

    let (code, deleted) = s.delete(&format!("{SVCS}/web")).await;
    assert_eq!(code, 200);
    assert_eq!(deleted["metadata"]["name"], "web");
    let (code, missing) = s.get(&format!("{SVCS}/web")).await;
    assert_eq!(code, 404);
    assert_eq!(missing["message"], "services \"web\" not found");
}

#[tokio::test]
async fn bad_input_is_named_and_stores_nothing() {
    let s = TestServer::start().await;
    // A misspelled field, named by its path.
    let (code, err) = s
        .post(
            SVCS,
            &service("typo", json!({"ports": [{"port": 80, "targetport": 8080}]})),
        )
        .await;
    assert_eq!(code, 400, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("spec.ports[0]") && message.contains("targetport"),
        "{message}"
    );
    // A value out of range, named by path and value.
    let (code, err) = s
        .post(
            SVCS,
            &service(
                "range",
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 70000}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("spec.ports[1].port") && message.contains("70000"),
        "{message}"
    );
    assert_eq!(err["details"]["causes"][0]["field"], "spec.ports[1].port");
    // An unknown kind, named.
    let (code, err) = s
        .post(
            SVCS,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        err["message"].as_str().unwrap().contains("Deployment"),
        "{err}"
    );
    // A kind that does not belong at this path.
    let (code, _) = s.post(SVCS, &node("n")).await;
    assert_eq!(code, 400);
    // Not JSON at all.
    let resp = s
        .request(reqwest::Method::POST, SVCS)
        .header("content-type", "application/json")
        .body("{\"apiVersion\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Oversized body.
    let big = "x".repeat(4 * 1024 * 1024);
    let resp = s
        .request(reqwest::Method::POST, SVCS)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // A namespace that does not exist.
    let (code, err) = s
        .post(
            "/api/v1/namespaces/nope/services",
            &service("x", json!({"ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 404, "{err}");
    // Unknown resources.
    assert_eq!(s.get("/api/v1/deployments").await.0, 404);
    assert_eq!(
        s.get("/apis/apps/v1/namespaces/default/deployments")
            .await
            .0,
        404
    );
    // None of the rejected requests stored anything.
    let (_, list) = s.get(SVCS).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["kubernetes"]);
}

#[tokio::test]
async fn cluster_ips_are_allocated_honoured_and_freed() {
    let s = TestServer::start().await;
    let (code, a) = s
        .post(SVCS, &service("a", json!({"ports": [{"port": 80}]})))
        .await;
    assert_eq!(code, 201, "{a}");
    let ip: std::net::IpAddr = a["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!("10.96.0.0/12"
        .parse::<ipnet::IpNet>()
        .unwrap()
        .contains(&ip));
    assert_eq!(a["spec"]["clusterIPs"], json!([ip.to_string()]));

    let (code, b) = s
        .post(
            SVCS,
            &service(
                "b",
                json!({"clusterIP": "10.96.5.5", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    assert_eq!(b["spec"]["clusterIP"], "10.96.5.5");

    let (code, taken) = s
        .post(
            SVCS,
            &service(
                "c",
                json!({"clusterIP": "10.96.5.5", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{taken}");
    assert!(
        taken["message"]
            .as_str()
            .unwrap()
            .contains("spec.clusterIP"),
        "{taken}"
    );
    assert!(
        taken["message"]
            .as_str()
            .unwrap()
            .contains("already allocated"),
        "{taken}"
    );

    let (code, out) = s
        .post(
            SVCS,
            &service(
                "c",
                json!({"clusterIP": "192.168.9.9", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("valid range"),
        "{out}"
    );

    // A request rejected for a later field leaks no ClusterIP: 10.96.7.7 is still free after.
    let (code, _) = s
        .post(SVCS, &service("d", json!({"type": "NodePort", "clusterIP": "10.96.7.7", "ports": [{"port": 80, "nodePort": 1234}]})))
        .await;
    assert_eq!(code, 422);
    let (code, e) = s
        .post(
            SVCS,
            &service(
                "e",
                json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{e}");

    // Headless and ExternalName Services take no address.
    let (code, h) = s
        .post(
            SVCS,
            &service("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 201, "{h}");
    assert_eq!(h["spec"]["clusterIP"], "None");
    let (code, x) = s
        .post(
            SVCS,
            &service(
                "x",
                json!({"type": "ExternalName", "externalName": "db.example.org"}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{x}");
    assert!(
        x["spec"]
            .get("clusterIP")
            .is_none_or(|v| v == "" || v.is_null()),
        "{x}"
    );

    // Deleting frees the address for reuse.
    assert_eq!(s.delete(&format!("{SVCS}/b")).await.0, 200);
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "c",
                json!({"clusterIP": "10.96.5.5", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn node_ports_are_allocated_in_range() {
    let s = TestServer::start().await;
    let (code, svc) = s
        .post(SVCS, &service("np", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]})))
        .await;
    assert_eq!(code, 201, "{svc}");
    let p0 = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&p0));
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30081);
    let (code, err) = s
        .post(
            SVCS,
            &service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("spec.ports[0].nodePort"),
        "{err}"
    );
    // Re-applying the manifest without nodePorts keeps them.
    let mut reapply = service(
        "np",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
    );
    reapply["metadata"]["resourceVersion"] = svc["metadata"]["resourceVersion"].clone();
    let (code, updated) = s.put(&format!("{SVCS}/np"), &reapply).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        updated["spec"]["ports"][0]["nodePort"].as_u64().unwrap(),
        p0
    );
    assert_eq!(updated["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
    // Switching to ClusterIP frees them.
    let mut cluster = service(
        "np",
        json!({"type": "ClusterIP", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
    );
    cluster["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"].clone();
    let (code, c) = s.put(&format!("{SVCS}/np"), &cluster).await;
    assert_eq!(code, 200, "{c}");
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "np3",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn nodes_get_pod_cidrs_and_allocations_survive_restart() {
    let mut s = TestServer::start().await;
    let (code, n1) = s.post("/api/v1/nodes", &node("n1")).await;
    assert_eq!(code, 201, "{n1}");
    assert_eq!(n1["spec"]["podCIDR"], "10.244.0.0/24");
    assert_eq!(n1["spec"]["podCIDRs"], json!(["10.244.0.0/24"]));
    let (_, n2) = s.post("/api/v1/nodes", &node("n2")).await;
    assert_eq!(n2["spec"]["podCIDR"], "10.244.1.0/24");
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "keep",
                json!({"clusterIP": "10.96.3.3", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201);

    s.restart().await;

    let (code, _) = s
        .post(
            SVCS,
            &service(
                "steal",
                json!({"clusterIP": "10.96.3.3", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(
        code, 422,
        "the ClusterIP is still allocated after a restart"
    );
    let (_, n3) = s.post("/api/v1/nodes", &node("n3")).await;
    assert_eq!(n3["spec"]["podCIDR"], "10.244.2.0/24");
    assert_eq!(s.delete("/api/v1/nodes/n1").await.0, 200);
    let (_, n4) = s.post("/api/v1/nodes", &node("n4")).await;
    assert_eq!(
        n4["spec"]["podCIDR"], "10.244.0.0/24",
        "a deleted node's podCIDR is reused"
    );
    // Bootstrapping again did not duplicate or disturb the built-ins.
    let (_, dns) = s
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .await;
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
}

#[tokio::test]
async fn selectors_filter_lists_and_tables_serve_kubectl() {
    let s = TestServer::start().await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let mut svc = service(name, json!({"ports": [{"port": 80}]}));
        svc["metadata"]["labels"] = json!({"app": app});
        assert_eq!(s.post(SVCS, &svc).await.0, 201);
    }
    let names = |v: &Value| -> BTreeSet<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, web) = s.get(&format!("{SVCS}?labelSelector=app%3Dweb")).await;
    assert_eq!(names(&web), ["a", "b"].map(String::from).into());
    let (_, not_web) = s.get(&format!("{SVCS}?labelSelector=app!%3Dweb")).await;
    assert_eq!(
        names(&not_web),
        ["c", "kubernetes"].map(String::from).into()
    );
    let (_, by_name) = s
        .get(&format!("{SVCS}?fieldSelector=metadata.name%3Dc"))
        .await;
    assert_eq!(names(&by_name), ["c"].map(String::from).into());
    let (code, bad) = s.get(&format!("{SVCS}?labelSelector=app%20in%20(")).await;
    assert_eq!(code, 400, "{bad}");

    let resp = s
        .request(reqwest::Method::GET, "/api/v1/services")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let table: Value = resp.json().await.unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect();
    assert_eq!(
        &columns[..6],
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let dns_row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "kube-dns")
        .expect("kube-dns row");
    assert_eq!(dns_row["cells"][2], "10.96.0.10");
    assert_eq!(dns_row["cells"][4], "53/UDP,53/TCP");
    assert_eq!(dns_row["object"]["metadata"]["namespace"], "kube-system");
}

#[tokio::test]
async fn namespaces_delete_their_contents_and_system_ones_stay() {
    let s = TestServer::start().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    assert_eq!(s.post("/api/v1/namespaces", &ns).await.0, 201);
    let (code, svc) = s
        .post(
            "/api/v1/namespaces/shop/services",
            &service(
                "cart",
                json!({"clusterIP": "10.96.9.9", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{svc}");
    assert_eq!(s.delete("/api/v1/namespaces/shop").await.0, 200);
    assert_eq!(s.get("/api/v1/namespaces/shop/services/cart").await.0, 404);
    // The deleted Service's address is free again.
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "reuse",
                json!({"clusterIP": "10.96.9.9", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = s.delete("/api/v1/namespaces/kube-system").await;
    assert_eq!(code, 403);
}

/// A list followed by a watch from the list's resourceVersion sees every write exactly
/// once, while a writer runs concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_then_watch_misses_and_repeats_nothing() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            for i in 0..150 {
                let (code, v) = s
                    .post(
                        SVCS,
                        &service(&format!("w{i}"), json!({"ports": [{"port": 80}]})),
                    )
                    .await;
                assert_eq!(code, 201, "{v}");
                acked.insert(format!("w{i}"));
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (_, list) = s.get(SVCS).await;
    let list_rv = rv(&list);
    let mut seen: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let acked = writer.await.unwrap();
    let expected = acked.len() + 1; // + kubernetes
    let events = s
        .watch_events(
            &format!("{SVCS}?watch=true&resourceVersion={list_rv}"),
            Duration::from_secs(20),
            |events| seen.len() + events.len() >= expected,
        )
        .await;
    let mut last = list_rv;
    for e in &events {
        assert_eq!(e["type"], "ADDED", "{e}");
        let r = rv(&e["object"]);
        assert!(r > last, "events in revision order, after the list");
        last = r;
        seen.push(
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for name in &acked {
        assert!(unique.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_current_objects() {
    let s = TestServer::start().await;
    let events = s
        .watch_events(
            "/api/v1/namespaces?watch=true",
            Duration::from_secs(5),
            |e| e.len() >= 3,
        )
        .await;
    let names: BTreeSet<&str> = events
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "kube-public", "kube-system"].into());
    assert!(events.iter().all(|e| e["type"] == "ADDED"));
}

#[tokio::test]
async fn watch_from_compacted_revision_is_gone() {
    // A watch older than both the in-memory window and the store's history gets 410.
    let s = TestServer::start_with(|c| c.watch_cache_events = 2).await;
    let (_, first) = s
        .post(SVCS, &service("old", json!({"ports": [{"port": 80}]})))
        .await;
    let old_rv = rv(&first);
    for i in 0..3 {
        s.post(
            SVCS,
            &service(&format!("n{i}"), json!({"ports": [{"port": 80}]})),
        )
        .await;
    }
    let store = s.registry().store().clone();
    let current = store.current_revision().await.unwrap();
    store.compact(current).await.unwrap();
    let events = s
        .watch_events(
            &format!("{SVCS}?watch=true&resourceVersion={old_rv}"),
            Duration::from_secs(5),
            |e| !e.is_empty(),
        )
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
}

#[tokio::test]
async fn label_selected_watch_only_sees_matching_objects() {
    let s = TestServer::start().await;
    let (_, list) = s.get(SVCS).await;
    let from = rv(&list);
    for (name, app) in [("x", "other"), ("y", "web")] {
        let mut svc = service(name, json!({"ports": [{"port": 80}]}));
        svc["metadata"]["labels"] = json!({"app": app});
        s.post(SVCS, &svc).await;
    }
    assert_eq!(s.delete(&format!("{SVCS}/y")).await.0, 200);
    let events = s
        .watch_events(
            &format!("{SVCS}?watch=true&resourceVersion={from}&labelSelector=app%3Dweb"),
            Duration::from_secs(5),
            |e| e.len() >= 2,
        )
        .await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("ADDED", "y"), ("DELETED", "y")]);
}

//! The API server on etcd: the same admission, allocation and watch behaviour as on redb,
//! and state that outlives the API server process.

mod common;

use std::time::Duration;

use common::{service, TestServer};
use serde_json::json;
use weft_apiserver::StoreBackend;
use weft_store::testing::EtcdProcess;

const SVCS: &str = "/api/v1/namespaces/default/services";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_on_etcd() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let backend = StoreBackend::Etcd {
        endpoints: vec![etcd.endpoint.clone()],
        prefix: "/weft-test".into(),
    };
    let mut s = TestServer::start_on(backend).await;
    let (_, dns) = s
        .get("/api/v1/namespaces/kube-system/services/kube-dns")
        .await;
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");

    let (code, a) = s
        .post(
            SVCS,
            &service(
                "a",
                json!({"clusterIP": "10.96.1.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "b",
                json!({"clusterIP": "10.96.1.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422);
    let mut stale = a.clone();
    stale["metadata"]["labels"] = json!({"x": "1"});
    assert_eq!(s.put(&format!("{SVCS}/a"), &stale).await.0, 200);
    assert_eq!(
        s.put(&format!("{SVCS}/a"), &stale).await.0,
        409,
        "stale resourceVersion"
    );

    let from = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let events = s
        .watch_events(
            &format!("{SVCS}?watch=true&resourceVersion={from}"),
            Duration::from_secs(10),
            |e| !e.is_empty(),
        )
        .await;
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["metadata"]["labels"]["x"], "1");

    // A restart on the same etcd keeps objects and allocations.
    s.restart().await;
    assert_eq!(s.get(&format!("{SVCS}/a")).await.0, 200);
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "c",
                json!({"clusterIP": "10.96.1.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "allocation remembered across restart");
    assert_eq!(s.delete(&format!("{SVCS}/a")).await.0, 200);
    let (code, _) = s
        .post(
            SVCS,
            &service(
                "c",
                json!({"clusterIP": "10.96.1.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "freed on delete");
}

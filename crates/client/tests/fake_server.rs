//! The client and the informer against a small in-process fake of the API server's REST
//! contract (Services only): verbs, Status errors, watch streams, BOOKMARKs, and 410 Gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weft_api::{Object, ObjectMeta, ResourceInfo};
use weft_client::informer::Event;
use weft_client::{Client, ClientError, Informer, ListParams, WatchEvent};

const TOKEN: &str = "s3cret";

#[derive(Default)]
struct Inner {
    rv: u64,
    /// Watches asking for a version older than this get ERROR 410.
    compacted: u64,
    objects: BTreeMap<String, Value>,
    watchers: Vec<UnboundedSender<Result<String, std::io::Error>>>,
    /// Query strings seen, for assertions.
    queries: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Inner>>);

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

impl Fake {
    /// Stores an object under the next resourceVersion and tells the watchers.
    fn put(&self, mut obj: Value, event: &str) -> Value {
        let mut s = self.0.lock().unwrap();
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if event == "DELETED" {
            s.objects.remove(&name);
        } else {
            s.objects.insert(name, obj.clone());
        }
        let line = format!("{}\n", json!({"type": event, "object": obj}));
        s.watchers
            .retain(|w| w.unbounded_send(Ok(line.clone())).is_ok());
        obj
    }

    fn send_line(&self, line: Value) {
        let mut s = self.0.lock().unwrap();
        let line = format!("{line}\n");
        s.watchers
            .retain(|w| w.unbounded_send(Ok(line.clone())).is_ok());
    }

    /// Ends every open watch, as a server restart would.
    fn close_watches(&self) {
        self.0.lock().unwrap().watchers.clear();
    }

    fn watcher_count(&self) -> usize {
        self.0.lock().unwrap().watchers.len()
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn collection(
    State(fake): State<Fake>,
    Path(_ns): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let mut s = fake.0.lock().unwrap();
    s.queries.push(
        q.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    );
    if q.get("watch").map(String::as_str) == Some("true") {
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = unbounded();
        if from != 0 && from < s.compacted {
            let line = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "Gone", "code": 410,
                "message": format!("too old resource version: {from} ({})", s.compacted)}});
            let _ = tx.unbounded_send(Ok(format!("{line}\n")));
            drop(tx);
        } else {
            if from == 0 {
                for o in s.objects.values() {
                    let _ = tx
                        .unbounded_send(Ok(format!("{}\n", json!({"type": "ADDED", "object": o}))));
                }
            }
            s.watchers.push(tx);
        }
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(rx))
            .unwrap();
    }
    let items: Vec<Value> = s.objects.values().cloned().collect();
    axum::Json(json!({"kind": "ServiceList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}))
    .into_response()
}

async fn create(
    State(fake): State<Fake>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    axum::Json(mut obj): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if fake.0.lock().unwrap().objects.contains_key(&name) {
        return status(
            409,
            "AlreadyExists",
            &format!("services \"{name}\" already exists"),
        );
    }
    obj["metadata"]["namespace"] = json!(ns);
    let stored = fake.put(obj, "ADDED");
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

async fn item(
    State(fake): State<Fake>,
    Path((_ns, name)): Path<(String, String)>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let current = fake.0.lock().unwrap().objects.get(&name).cloned();
    let Some(current) = current else {
        return status(404, "NotFound", &format!("services \"{name}\" not found"));
    };
    match method.as_str() {
        "GET" => axum::Json(current).into_response(),
        "DELETE" => axum::Json(fake.put(current, "DELETED")).into_response(),
        "PUT" => {
            let obj: Value = serde_json::from_slice(&body).unwrap_or_default();
            let sent_rv = obj["metadata"]["resourceVersion"].as_str();
            if sent_rv.is_some() && sent_rv != current["metadata"]["resourceVersion"].as_str() {
                return status(
                    409,
                    "Conflict",
                    &format!("Operation cannot be fulfilled on services \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                );
            }
            axum::Json(fake.put(obj, "MODIFIED")).into_response()
        }
        "PATCH" => {
            if headers.get("content-type").and_then(|v| v.to_str().ok())
                != Some("application/merge-patch+json")
            {
                return status(415, "UnsupportedMediaType", "wrong patch type");
            }
            let patch: Value = serde_json::from_slice(&body).unwrap_or_default();
            let mut obj = current;
            merge(&mut obj, &patch);
            axum::Json(fake.put(obj, "MODIFIED")).into_response()
        }
        _ => status(405, "MethodNotAllowed", "no"),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn start() -> (Fake, String) {
    let fake = Fake::default();
    let app = Router::new()
        .route(
            "/api/v1/namespaces/{ns}/services",
            get(collection).post(create),
        )
        .route(
            "/api/v1/namespaces/{ns}/services/{name}",
            get(item).put(item).delete(item).patch(item),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, format!("http://{addr}"))
}

fn svc(name: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"ports": [{"port": port}]}})
}

/// A minimal typed object for the typed layer and the informer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Svc {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Value,
}

impl Object for Svc {
    const INFO: &'static ResourceInfo = &weft_api::resources::SERVICE;
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

const SERVICE: &ResourceInfo = &weft_api::resources::SERVICE;

#[tokio::test]
async fn dynamic_verbs_and_status_errors() {
    let (_fake, url) = start().await;
    let c = Client::new(&url, TOKEN, None).unwrap();
    let ns = Some("default");

    let err = c.get(SERVICE, ns, "web").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), "services \"web\" not found");

    let created = c.create(SERVICE, ns, &svc("web", 80)).await.unwrap();
    assert_eq!(created["metadata"]["resourceVersion"], "1");
    let err = c.create(SERVICE, ns, &svc("web", 80)).await.unwrap_err();
    assert!(err.is_already_exists(), "{err:?}");

    // Compare-and-swap: a stale resourceVersion is a conflict.
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("0");
    assert!(c
        .update(SERVICE, ns, &stale)
        .await
        .unwrap_err()
        .is_conflict());
    let mut fresh = created.clone();
    fresh["spec"]["ports"][0]["port"] = json!(8080);
    let updated = c.update(SERVICE, ns, &fresh).await.unwrap();
    assert_eq!(updated["spec"]["ports"][0]["port"], 8080);

    let patched = c
        .patch_merge(
            SERVICE,
            ns,
            "web",
            &json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched["metadata"]["labels"]["app"], "web");

    let list = c
        .list(SERVICE, ns, &ListParams::labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.resource_version(), "3");

    let deleted = c.delete(SERVICE, ns, "web").await.unwrap();
    assert_eq!(deleted["metadata"]["name"], "web");

    let bad = Client::new(&url, "wrong", None).unwrap();
    let err = bad.get(SERVICE, ns, "web").await.unwrap_err();
    assert_eq!(err.code(), Some(401));
}

#[tokio::test]
async fn typed_layer_round_trips() {
    let (fake, url) = start().await;
    let c = Client::new(&url, TOKEN, None).unwrap();
    let api = c.api::<Svc>(Some("default"));
    fake.put(svc("a", 80), "ADDED");
    let a = api.get("a").await.unwrap();
    assert_eq!(a.metadata.name, "a");
    assert_eq!(api.get_opt("zz").await.unwrap(), None);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items, vec![a.clone()]);
    let mut b = a.clone();
    b.metadata.name = "b".into();
    b.metadata.resource_version = None;
    let b = api.create(&b).await.unwrap();
    assert_eq!(b.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(
        api.delete("b").await.unwrap().map(|o| o.metadata.name),
        Some("b".into())
    );
}

#[tokio::test]
async fn watch_streams_events_and_reports_gone() {
    let (fake, url) = start().await;
    let c = Client::new(&url, TOKEN, None).unwrap();
    fake.put(svc("a", 80), "ADDED");
    let mut w = c
        .watch(SERVICE, Some("default"), &ListParams::default(), "")
        .await
        .unwrap();
    use futures::StreamExt;
    assert!(matches!(w.next().await, Some(Ok(WatchEvent::Added(_)))));
    fake.put(svc("a", 81), "MODIFIED");
    assert!(
        matches!(w.next().await, Some(Ok(WatchEvent::Modified(o))) if o["spec"]["ports"][0]["port"] == 81)
    );
    fake.send_line(
        json!({"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1",
                          "metadata": {"resourceVersion": "2"}}}),
    );
    assert!(
        matches!(w.next().await, Some(Ok(WatchEvent::Bookmark { resource_version })) if resource_version == "2")
    );
    fake.close_watches();
    assert!(w.next().await.is_none());

    fake.0.lock().unwrap().compacted = 10;
    let mut w = c
        .watch(SERVICE, Some("default"), &ListParams::default(), "1")
        .await
        .unwrap();
    match w.next().await {
        Some(Ok(WatchEvent::Error(s))) => assert!(ClientError::from_status(&s).is_gone()),
        other => panic!("{other:?}"),
    }
    let queries = fake.0.lock().unwrap().queries.clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("allowWatchBookmarks=true")
                && q.contains("resourceVersion=1")
                && q.contains("watch=true")),
        "{queries:?}"
    );
}

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<Event<Svc>>) -> Event<Svc> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("informer event in time")
        .expect("informer alive")
}

fn describe(ev: &Event<Svc>) -> String {
    match ev {
        Event::Added(o) => format!("added {}", o.metadata.name),
        Event::Modified(o) => format!("modified {}", o.metadata.name),
        Event::Deleted(o) => format!("deleted {}", o.metadata.name),
        Event::Synced => "synced".into(),
    }
}

async fn wait_for_watchers(fake: &Fake, n: usize) {
    for _ in 0..200 {
        if fake.watcher_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no watch opened");
}

#[tokio::test]
async fn informer_lists_watches_resumes_and_relists_without_gaps() {
    let (fake, url) = start().await;
    let c = Client::new(&url, TOKEN, None).unwrap();
    fake.put(svc("a", 80), "ADDED"); // rv 1
    fake.put(svc("b", 80), "ADDED"); // rv 2

    let informer = Informer::new(c.api::<Svc>(Some("default")), ListParams::default());
    let (store, mut rx, task) = informer.spawn(16);
    assert_eq!(describe(&next_event(&mut rx).await), "added a");
    assert_eq!(describe(&next_event(&mut rx).await), "added b");
    assert_eq!(describe(&next_event(&mut rx).await), "synced");
    assert!(store.is_synced());
    assert_eq!(store.len(), 2);

    // Watch events flow into the cache before they reach the consumer.
    wait_for_watchers(&fake, 1).await;
    fake.put(svc("a", 81), "MODIFIED"); // rv 3
    assert_eq!(describe(&next_event(&mut rx).await), "modified a");
    assert_eq!(store.get("default/a").unwrap().spec["ports"][0]["port"], 81);

    // The stream ends (server restart): the informer resumes from rv 3 and sees what
    // happened next, without a relist (no Synced).
    fake.close_watches();
    wait_for_watchers(&fake, 1).await;
    fake.put(svc("c", 80), "ADDED"); // rv 4
    assert_eq!(describe(&next_event(&mut rx).await), "added c");

    // While disconnected, b is deleted and history is compacted: the resume gets 410,
    // and the relist diff reports b's deletion.
    {
        let mut s = fake.0.lock().unwrap();
        s.rv += 1; // rv 5: b's deletion, never seen by a watch
        s.objects.remove("b");
        s.compacted = s.rv;
        s.watchers.clear();
    }
    assert_eq!(describe(&next_event(&mut rx).await), "deleted b");
    assert_eq!(describe(&next_event(&mut rx).await), "synced");
    assert_eq!(
        store.snapshot().keys().cloned().collect::<Vec<_>>(),
        ["default/a", "default/c"]
    );

    // Dropping the receiver stops the informer, even while its watch is quiet.
    wait_for_watchers(&fake, 1).await;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("informer stops when its consumer is gone")
        .unwrap();
}

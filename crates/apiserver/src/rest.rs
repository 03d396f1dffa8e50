//! Kubernetes REST paths over the registry: discovery, CRUD, `/status`, lists with
//! selectors, watches, and server-side Tables for kubectl.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use weft_api::resources::{self, POD};
use weft_api::ResourceInfo;
use weft_store::{EventType, Revision};

use crate::auth::{Authenticator, User};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::filter::Filter;
use crate::registry::{Part, Registry};
use crate::table;

/// Kubernetes' default request body limit.
pub const DEFAULT_MAX_BODY: usize = 3 * 1024 * 1024;
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// Largest watch chunk assembled from events already queued.
const WATCH_CHUNK: usize = 256 * 1024;

pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<Authenticator>,
    pub server_address: String,
    pub max_body: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/api",
            get(|State(s): State<Arc<AppState>>| async move {
                Json(discovery::api_versions(&s.server_address))
            }),
        )
        .route("/apis", get(|| async { Json(discovery::api_group_list()) }))
        .fallback(resource_handler)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// Every request needs a valid bearer token; nothing is served anonymously.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| state.auth.authenticate(t)) {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => ApiError::Unauthorized("Unauthorized: a valid bearer token is required".into())
            .into_response(),
    }
}

/// What a resource path names.
#[derive(Debug, PartialEq)]
enum Target {
    Discovery(Value),
    Collection {
        info: &'static ResourceInfo,
        namespace: Option<String>,
    },
    Item {
        info: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        sub: Option<String>,
    },
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("the server could not find the requested resource ({path})"),
    }
}

fn parse_target(path: &str) -> ApiResult<Target> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group] => {
            return discovery::api_group(group)
                .map(Target::Discovery)
                .ok_or_else(|| not_found_path(path))
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found_path(path)),
    };
    let resource = |plural: &str| {
        resources::by_path(group, version, plural).ok_or_else(|| not_found_path(path))
    };
    let namespaced_collection =
        |plural: &str| resources::by_path(group, version, plural).filter(|r| r.namespaced);
    let target = match rest {
        [] => {
            return discovery::resource_list(group, version)
                .map(Target::Discovery)
                .ok_or_else(|| not_found_path(path))
        }
        [plural] => Target::Collection {
            info: resource(plural)?,
            namespace: None,
        },
        ["namespaces", ns, plural] if namespaced_collection(plural).is_some() => {
            Target::Collection {
                info: resource(plural)?,
                namespace: Some(ns.to_string()),
            }
        }
        [plural, name] | [plural, name, _] => {
            let info = resource(plural)?;
            if info.namespaced {
                return Err(not_found_path(path));
            }
            Target::Item {
                info,
                namespace: None,
                name: name.to_string(),
                sub: rest.get(2).map(|s| s.to_string()),
            }
        }
        ["namespaces", ns, plural, name] | ["namespaces", ns, plural, name, _] => {
            let info = resource(plural)?;
            if !info.namespaced {
                return Err(not_found_path(path));
            }
            Target::Item {
                info,
                namespace: Some(ns.to_string()),
                name: name.to_string(),
                sub: rest.get(4).map(|s| s.to_string()),
            }
        }
        _ => return Err(not_found_path(path)),
    };
    Ok(target)
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(percent_decode(k), percent_decode(v));
    }
    params
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn read_json_body(body: Body, headers: &HeaderMap, limit: usize) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.contains("json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({content_type}); expected application/json"
        )));
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!("Request entity too large: limit is {limit} bytes"))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

fn list_body(info: &ResourceInfo, items: Vec<Value>, rev: Revision) -> Value {
    json!({
        "kind": info.list_kind(),
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": items,
    })
}

/// A list built from stamped stored JSON without decoding any item.
fn raw_list_response(info: &ResourceInfo, items: &[Vec<u8>], rev: Revision) -> Response {
    let head = format!(
        r#"{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{rev}"}},"items":["#,
        info.list_kind(),
        info.api_version()
    );
    let mut body =
        Vec::with_capacity(head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.extend_from_slice(head.as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| ApiError::Internal("building the list response".into()).into_response())
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (code, Json(value)).into_response()
}

async fn resource_handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let params = query_params(parts.uri.query());
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table_version = table::wanted_table_version(accept);
    let user = parts
        .extensions
        .get::<User>()
        .map_or("?", |u| u.name.as_str())
        .to_string();
    let registry = &state.registry;
    let target = parse_target(&path)?;
    let response = match (target, &parts.method) {
        (Target::Discovery(doc), &Method::GET) => json_response(StatusCode::OK, &doc),
        (Target::Collection { info, namespace }, &Method::GET) => {
            let filter = Filter::parse(
                params.get("labelSelector").map(String::as_str),
                params.get("fieldSelector").map(String::as_str),
            )?;
            if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) {
                return watch(state, info, namespace, filter, &params, table_version).await;
            }
            if filter.is_everything() && table_version.is_none() {
                let (items, rev) = registry.list_raw(info, namespace.as_deref()).await?;
                return Ok(raw_list_response(info, &items, rev));
            }
            let (items, rev) = registry.list(info, namespace.as_deref(), &filter).await?;
            match table_version {
                Some(v) => json_response(
                    StatusCode::OK,
                    &table::to_table(
                        info,
                        &items,
                        &rev.to_string(),
                        v,
                        params.get("includeObject").map(String::as_str),
                    ),
                ),
                None => json_response(StatusCode::OK, &list_body(info, items, rev)),
            }
        }
        (Target::Collection { info, namespace }, &Method::POST) => {
            let body = read_json_body(body, &parts.headers, state.max_body).await?;
            let created = registry.create(info, namespace.as_deref(), body).await?;
            tracing::info!(%user, kind = info.kind, name = %created["metadata"]["name"], "created");
            json_response(StatusCode::CREATED, &created)
        }
        (
            Target::Item {
                info,
                namespace,
                name,
                sub,
            },
            method,
        ) => {
            item(
                state,
                info,
                namespace.as_deref(),
                &name,
                sub.as_deref(),
                method,
                &parts.headers,
                body,
                table_version,
                &params,
                &user,
            )
            .await?
        }
        (_, method) => {
            return Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow method {method} on {path}"
            )))
        }
    };
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
async fn item(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    sub: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    table_version: Option<&str>,
    params: &HashMap<String, String>,
    user: &str,
) -> ApiResult<Response> {
    let registry = &state.registry;
    let part = match sub {
        None => Part::Main,
        Some("status") => Part::Status,
        Some("binding") if *info == POD && *method == Method::POST => {
            let body = read_json_body(body, headers, state.max_body).await?;
            let node = body
                .pointer("/target/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "Binding",
                        name,
                        "target.name",
                        "",
                        "a node name is required",
                    )
                })?;
            let namespace = namespace.unwrap_or("default");
            registry.bind_pod(namespace, name, node).await?;
            tracing::info!(%user, pod = %name, %node, "bound");
            return Ok(json_response(
                StatusCode::CREATED,
                &json!(weft_api::Status::success()),
            ));
        }
        Some("log") if *info == POD && *method == Method::GET => {
            let follow = matches!(params.get("follow").map(String::as_str), Some("true" | "1"));
            return crate::logs::pod_log(
                registry,
                &state.auth,
                namespace.unwrap_or("default"),
                name,
                params.get("container").map(String::as_str),
                follow,
            )
            .await;
        }
        Some(other) => {
            return Err(ApiError::NotFound {
                message: format!(
                    "{} has no subresource \"{other}\"",
                    crate::error::qualified(info)
                ),
            })
        }
    };
    let response = match *method {
        Method::GET => {
            let object = registry.get(info, namespace, name).await?;
            match table_version {
                Some(v) => {
                    let rv = object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    json_response(
                        StatusCode::OK,
                        &table::to_table(
                            info,
                            &[object],
                            &rv,
                            v,
                            params.get("includeObject").map(String::as_str),
                        ),
                    )
                }
                None => json_response(StatusCode::OK, &object),
            }
        }
        Method::PUT => {
            let body = read_json_body(body, headers, state.max_body).await?;
            let (object, changed) = registry.update(info, namespace, name, body, part).await?;
            if changed {
                tracing::info!(%user, kind = info.kind, %name, "updated");
            }
            json_response(StatusCode::OK, &object)
        }
        Method::PATCH => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // Strategic merge patch equals merge patch for everything but lists of objects,
            // which Weft's patches (labels, annotations, status fields) do not rely on.
            if !(content_type.starts_with("application/merge-patch+json")
                || content_type.starts_with("application/strategic-merge-patch+json"))
            {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "patch type {content_type:?} is not supported; use application/merge-patch+json"
                )));
            }
            let patch = read_json_body(body, headers, state.max_body).await?;
            let object = registry.patch(info, namespace, name, &patch, part).await?;
            tracing::info!(%user, kind = info.kind, %name, "patched");
            json_response(StatusCode::OK, &object)
        }
        Method::DELETE if part == Part::Main => {
            // Optional DeleteOptions body with preconditions.resourceVersion.
            let bytes = axum::body::to_bytes(body, state.max_body)
                .await
                .map_err(|_| ApiError::TooLarge("Request entity too large".into()))?;
            let precondition = if bytes.is_empty() {
                None
            } else {
                let options: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::BadRequest(format!("DeleteOptions: {e}")))?;
                options
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(|rv| {
                        rv.parse::<Revision>().map_err(|_| {
                            ApiError::BadRequest(format!(
                                "preconditions.resourceVersion: invalid value {rv:?}"
                            ))
                        })
                    })
                    .transpose()?
            };
            let object = registry.delete(info, namespace, name, precondition).await?;
            tracing::info!(%user, kind = info.kind, %name, "deleted");
            json_response(StatusCode::OK, &object)
        }
        ref m => {
            return Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow method {m} here"
            )))
        }
    };
    Ok(response)
}

fn event_name(t: EventType) -> &'static str {
    match t {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

/// A watch line around already-serialized object JSON.
fn raw_event_line(kind: &str, object_json: &[u8], into: &mut Vec<u8>) {
    into.extend_from_slice(b"{\"type\":\"");
    into.extend_from_slice(kind.as_bytes());
    into.extend_from_slice(b"\",\"object\":");
    into.extend_from_slice(object_json);
    into.extend_from_slice(b"}\n");
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch: `{type, object}` lines. Without a resourceVersion (or with "0") it starts with
/// ADDED for every current object, then continues from the list's revision, so a consumer
/// never misses or repeats an event.
async fn watch(
    state: &AppState,
    info: &'static ResourceInfo,
    namespace: Option<String>,
    filter: Filter,
    params: &HashMap<String, String>,
    table_version: Option<&str>,
) -> ApiResult<Response> {
    let registry = state.registry.clone();
    let requested = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let (initial, after) = match requested {
        "" | "0" => {
            let (items, rev) = registry.list(info, namespace.as_deref(), &filter).await?;
            (items, rev)
        }
        rv => (
            Vec::new(),
            rv.parse::<Revision>().map_err(|_| {
                ApiError::BadRequest(format!("resourceVersion: invalid value {rv:?}"))
            })?,
        ),
    };
    let bookmarks = matches!(
        params.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let wants_table = table_version.is_some();
    let table_version = table_version.map(str::to_string);
    let render = move |object: Value| -> Value {
        match &table_version {
            Some(v) => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                table::to_table(info, &[object], &rv, v, None)
            }
            None => object,
        }
    };
    let initial_render = render.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let stream = registry.watch_raw(info, namespace.as_deref(), after).await;
    let raw = filter.is_everything() && !wants_table;
    // Appends one event's line to `out`; false when the stream must end after `out` is sent.
    let append = move |event: ApiResult<Arc<crate::watch_cache::CachedEvent>>,
                       out: &mut Vec<u8>,
                       last_revision: &mut Revision|
          -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                out.extend_from_slice(&event_line("ERROR", json!(e.to_status())));
                return false;
            }
        };
        *last_revision = event.revision;
        let kind = event_name(event.event_type);
        if raw {
            raw_event_line(kind, &event.json, out);
            return true;
        }
        match event.decode() {
            Ok(object) if filter.matches(&object) => {
                out.extend_from_slice(&event_line(kind, render(object)))
            }
            Ok(_) => {}
            Err(e) => {
                out.extend_from_slice(&event_line("ERROR", json!(e.to_status())));
                return false;
            }
        }
        true
    };
    tokio::spawn(async move {
        for object in initial {
            if tx
                .send(Ok(event_line("ADDED", initial_render(object))))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut stream = match stream {
            Ok(s) => Box::pin(s),
            Err(e) => {
                let _ = tx.send(Ok(event_line("ERROR", json!(e.to_status())))).await;
                return;
            }
        };
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut last_revision = after;
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            let sleep_until = deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let mark = json!({
                        "kind": info.kind,
                        "apiVersion": info.api_version(),
                        "metadata": {"resourceVersion": last_revision.to_string()},
                    });
                    if tx.send(Ok(event_line("BOOKMARK", mark))).await.is_err() {
                        return;
                    }
                }
                next = stream.next() => {
                    let Some(first) = next else { return };
                    // Under load, send what is already queued as one chunk: far fewer writes
                    // (and TLS records) than one per event.
                    let mut out = Vec::new();
                    let mut going = append(first, &mut out, &mut last_revision);
                    while going && out.len() < WATCH_CHUNK {
                        match futures::FutureExt::now_or_never(stream.next()) {
                            Some(Some(event)) => going = append(event, &mut out, &mut last_revision),
                            Some(None) => going = false,
                            None => break,
                        }
                    }
                    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                        return;
                    }
                    if !going {
                        return;
                    }
                }
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| {
            ApiError::Internal("building the watch response".into()).into_response()
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::resources::{INGRESS, NAMESPACE, NODE, SERVICE};

    #[test]
    fn paths_map_to_targets() {
        assert_eq!(
            parse_target("/api/v1/namespaces/default/services").unwrap(),
            Target::Collection {
                info: &SERVICE,
                namespace: Some("default".into())
            }
        );
        assert_eq!(
            parse_target("/api/v1/services").unwrap(),
            Target::Collection {
                info: &SERVICE,
                namespace: None
            }
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/default").unwrap(),
            Target::Item {
                info: &NAMESPACE,
                namespace: None,
                name: "default".into(),
                sub: None
            }
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/default/status").unwrap(),
            Target::Item {
                info: &NAMESPACE,
                namespace: None,
                name: "default".into(),
                sub: Some("status".into())
            }
        );
        assert_eq!(
            parse_target("/api/v1/nodes/n1/status").unwrap(),
            Target::Item {
                info: &NODE,
                namespace: None,
                name: "n1".into(),
                sub: Some("status".into())
            }
        );
        assert_eq!(
            parse_target("/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web").unwrap(),
            Target::Item {
                info: &INGRESS,
                namespace: Some("shop".into()),
                name: "web".into(),
                sub: None
            }
        );
        assert!(matches!(
            parse_target("/api/v1").unwrap(),
            Target::Discovery(_)
        ));
        assert!(parse_target("/api/v1/services/web").is_err());
        assert!(parse_target("/api/v1/deployments").is_err());
        assert!(parse_target("/apis/apps/v1/deployments").is_err());
    }

    #[test]
    fn query_decoding() {
        let p = query_params(Some("labelSelector=app%3Dweb%2Ctier%21%3Ddb&watch=true"));
        assert_eq!(p["labelSelector"], "app=web,tier!=db");
        assert_eq!(p["watch"], "true");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}

//! Container logs for the API server (which serves `pods/{name}/log` by asking the pod's
//! node): `GET /containerLogs/{namespace}/{pod}/{container}?follow=true`. Only a caller
//! holding this node's own token is served: the API server looks it up for the node.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use weft_api::core::Pod;
use weft_client::Store;

use crate::runtime::{PodRuntime, ProcessRuntime};

struct LogState {
    token: String,
    pods: Store<Pod>,
    runtime: Arc<ProcessRuntime>,
}

#[derive(serde::Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
}

pub async fn serve(
    addr: SocketAddr,
    token: String,
    pods: Store<Pod>,
    runtime: Arc<ProcessRuntime>,
) {
    let state = Arc::new(LogState {
        token,
        pods,
        runtime,
    });
    let app = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(state);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve container logs");
            return;
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "log server stopped");
    }
}

fn text(code: StatusCode, message: String) -> Response {
    (code, message).into_response()
}

async fn container_logs(
    State(state): State<Arc<LogState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == state.token);
    if !authorized {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
    }
    let Some(uid) = state
        .pods
        .get(&format!("{namespace}/{pod}"))
        .and_then(|p| p.metadata.uid)
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not on this node"),
        );
    };
    let follow = matches!(query.follow.as_deref(), Some("true" | "1"));
    match state.runtime.read_logs(&uid, &container, follow).await {
        Ok(stream) => Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
    }
}

//! `pods/{name}/log`: served by asking the pod's node agent, which holds the logs. The API
//! server reaches the agent at the Node's InternalIP and `daemonEndpoints` port and
//! presents that node's own token, so an agent serves only its own API server.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use weft_api::resources::{NODE, POD};

use crate::auth::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

const DEFAULT_AGENT_PORT: u64 = 10250;

/// The container whose log is asked for: the named one, or the only one.
fn container_of(pod: &Value, name: &str, requested: Option<&str>) -> ApiResult<String> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}; choose one of: [{}]",
            names.join(" ")
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

pub async fn pod_log(
    registry: &Registry,
    auth: &Authenticator,
    namespace: &str,
    name: &str,
    container: Option<&str>,
    follow: bool,
) -> ApiResult<Response> {
    let pod = registry.get(&POD, Some(namespace), name).await?;
    let container = container_of(&pod, name, container)?;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} is not scheduled to a node yet"
        )));
    }
    let node = registry.get(&NODE, None, node_name).await?;
    let address = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "node {node_name} has no InternalIP to fetch logs from"
            ))
        })?
        .to_string();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_AGENT_PORT);
    let token = auth
        .token_of(&format!("system:node:{node_name}"))
        .ok_or_else(|| ApiError::Internal(format!("no token is known for node {node_name}")))?;
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    let url = format!(
        "http://{host}:{port}/containerLogs/{namespace}/{name}/{container}?follow={follow}"
    );
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("reaching the node agent of {node_name}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(if status.as_u16() == 404 {
            ApiError::NotFound { message: text }
        } else {
            ApiError::Internal(format!("node agent of {node_name}: {status}: {text}"))
        });
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_stream(response.bytes_stream()))
        .map_err(|e| ApiError::Internal(format!("streaming logs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_is_explicit_when_ambiguous() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container_of(&one, "p", None).unwrap(), "a");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert!(container_of(&two, "p", None)
            .unwrap_err()
            .to_string()
            .contains("choose one of: [a b]"));
        assert_eq!(container_of(&two, "p", Some("b")).unwrap(), "b");
        assert!(container_of(&two, "p", Some("c")).is_err());
    }
}

//! The Node object: created on first start (the API server then allocates its podCIDR),
//! told this node's VTEP MAC and underlay address, and kept Ready by heartbeats. Without a
//! heartbeat for 40 s the API server marks the Node NotReady and drops its pods from
//! Endpoints.

use std::net::Ipv4Addr;

use serde_json::{json, Value};
use weft_api::core::{Node, ANNOTATION_NODE_SERVICES, ANNOTATION_UNDERLAY_IP, ANNOTATION_VTEP_MAC};
use weft_api::meta::{now_timestamp, with_condition};
use weft_api::resources::NODE;
use weft_client::Client;
use weft_netlink::{format_mac, Mac};

use super::NodeError;

fn ready_condition(transition: &str) -> Value {
    json!({"type": "Ready", "status": "True", "reason": "NodeAgentReady",
           "message": "weft node agent is posting ready status",
           "lastHeartbeatTime": now_timestamp(), "lastTransitionTime": transition})
}

/// The Ready condition's lastTransitionTime to keep: unchanged while it stays True.
fn transition_time(node: &Node) -> String {
    node.status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now_timestamp)
}

/// Gets or creates the Node; returns it with its allocated podCIDR.
pub async fn get_or_create(
    client: &Client,
    name: &str,
    node_ip: Ipv4Addr,
) -> Result<Node, NodeError> {
    let api = client.api::<Node>(None);
    if let Some(node) = api
        .get_opt(name)
        .await
        .map_err(NodeError::api("reading the Node"))?
    {
        return Ok(node);
    }
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                     "annotations": {ANNOTATION_UNDERLAY_IP: node_ip.to_string()}},
    });
    match client.create(&NODE, None, &node).await {
        Ok(created) => serde_json::from_value(created)
            .map_err(|e| NodeError::Config(format!("the created Node: {e}"))),
        // Another start of this agent won the race: read what it made.
        Err(e) if e.is_already_exists() => api
            .get(name)
            .await
            .map_err(NodeError::api("reading the Node")),
        Err(e) => Err(NodeError::api("creating the Node")(e)),
    }
}

/// Writes the overlay facts, the cluster services this agent serves on the node's address,
/// and the node's status (addresses, Ready, agent endpoint).
pub async fn announce(
    client: &Client,
    node: &Node,
    node_ip: Ipv4Addr,
    vtep_mac: Mac,
    port: u16,
    node_services: &[String],
) -> Result<(), NodeError> {
    let name = &node.metadata.name;
    // null removes the annotation: a node restarted without them serves nothing.
    let services = if node_services.is_empty() {
        Value::Null
    } else {
        Value::String(node_services.join(","))
    };
    let meta = json!({"metadata": {"annotations": {
        ANNOTATION_VTEP_MAC: format_mac(&vtep_mac),
        ANNOTATION_UNDERLAY_IP: node_ip.to_string(),
        ANNOTATION_NODE_SERVICES: services,
    }}});
    client
        .patch_merge(&NODE, None, name, &meta)
        .await
        .map_err(NodeError::api("annotating the Node"))?;
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": node_ip.to_string()}, {"type": "Hostname", "address": name}],
        "conditions": [ready_condition(&transition_time(node))],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"kubeletVersion": concat!("weft-", env!("CARGO_PKG_VERSION")),
                     "containerRuntimeVersion": "weft-process://", "operatingSystem": "linux",
                     "architecture": std::env::consts::ARCH, "osImage": os_image(),
                     "kernelVersion": kernel_version()},
    }});
    client
        .patch_status_merge(&NODE, None, name, &status)
        .await
        .map_err(NodeError::api("writing the Node's status"))?;
    Ok(())
}

/// One heartbeat: the Ready condition with a fresh lastHeartbeatTime.
pub async fn heartbeat(client: &Client, name: &str) -> Result<(), NodeError> {
    let api = client.api::<Node>(None);
    let node = api
        .get(name)
        .await
        .map_err(NodeError::api("reading the Node"))?;
    let conditions = with_condition(
        &node.status.conditions,
        "Ready",
        ready_condition(&transition_time(&node)),
    );
    client
        .patch_status_merge(
            &NODE,
            None,
            name,
            &json!({"status": {"conditions": conditions}}),
        )
        .await
        .map_err(NodeError::api("posting a heartbeat"))?;
    Ok(())
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "linux".into())
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

//! The scheduler's pure part: a Ready, schedulable node matching the pod's nodeSelector,
//! with the fewest pods (ties broken by name, so placement is deterministic).

use std::collections::HashMap;

use weft_api::core::{Node, Pod};

/// Pods that count against a node: bound and not finished.
fn occupies(pod: &Pod) -> bool {
    !pod.spec.node_name.is_empty() && !matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
}

/// True for a pod the scheduler should place.
pub fn needs_scheduling(pod: &Pod) -> bool {
    pod.spec.node_name.is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && matches!(pod.spec.scheduler_name.as_str(), "" | "default-scheduler")
}

pub fn pick_node<'a>(
    pod: &Pod,
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<String> {
    let mut load: HashMap<&str, usize> = HashMap::new();
    for p in pods.into_iter().filter(|p| occupies(p)) {
        *load.entry(p.spec.node_name.as_str()).or_default() += 1;
    }
    nodes
        .into_iter()
        .filter(|n| n.is_ready() && !n.spec.unschedulable)
        .filter(|n| {
            pod.spec
                .node_selector
                .iter()
                .all(|(k, v)| n.metadata.labels.get(k) == Some(v))
        })
        .min_by_key(|n| {
            (
                load.get(n.metadata.name.as_str()).copied().unwrap_or(0),
                n.metadata.name.clone(),
            )
        })
        .map(|n| n.metadata.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap()
    }

    fn pod(name: &str, node: &str) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}}))
        .unwrap()
    }

    #[test]
    fn fewest_pods_among_ready_nodes() {
        let nodes = [
            node("a", true, json!({})),
            node("b", true, json!({})),
            node("c", false, json!({})),
        ];
        let pods = [pod("p1", "a"), pod("p2", "a"), pod("p3", "b")];
        assert_eq!(pick_node(&pod("new", ""), &nodes, &pods), Some("b".into()));
        assert_eq!(
            pick_node(&pod("new", ""), &nodes, &[]),
            Some("a".into()),
            "tie broken by name"
        );
        assert_eq!(
            pick_node(&pod("new", ""), &nodes[2..], &[]),
            None,
            "no Ready node"
        );
    }

    #[test]
    fn node_selector_and_unschedulable() {
        let mut cordoned = node("a", true, json!({"disk": "ssd"}));
        cordoned.spec.unschedulable = true;
        let nodes = [
            cordoned,
            node("b", true, json!({"disk": "ssd"})),
            node("c", true, json!({})),
        ];
        let mut p = pod("new", "");
        p.spec.node_selector.insert("disk".into(), "ssd".into());
        assert_eq!(pick_node(&p, &nodes, &[]), Some("b".into()));
        assert!(needs_scheduling(&p));
        assert!(!needs_scheduling(&pod("bound", "b")));
    }
}

//! Node lifecycle's pure part: a Node whose agent stopped posting heartbeats for longer than
//! the grace period gets its Ready condition set to Unknown, as Kubernetes' node lifecycle
//! controller does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use weft_api::core::Node;
use weft_api::Condition;

/// The Ready condition to write if `node`'s heartbeat is stale, else None. Nodes that never
/// sent a heartbeat (no `lastHeartbeatTime`) are not monitored.
pub fn stale_ready_condition(
    node: &Node,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<Condition> {
    let ready = node.status.conditions.iter().find(|c| c.type_ == "Ready")?;
    if ready.status == "Unknown" {
        return None;
    }
    let heartbeat = ready.last_heartbeat_time.as_deref()?;
    let heartbeat = DateTime::parse_from_rfc3339(heartbeat)
        .ok()?
        .with_timezone(&Utc);
    let age = now
        .signed_duration_since(heartbeat)
        .to_std()
        .unwrap_or_default();
    if age <= grace {
        return None;
    }
    Some(Condition {
        type_: "Ready".into(),
        status: "Unknown".into(),
        last_heartbeat_time: ready.last_heartbeat_time.clone(),
        last_transition_time: Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        reason: Some("NodeStatusUnknown".into()),
        message: Some("Node agent stopped posting node status.".into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(status: &str, heartbeat: Option<&str>) -> Node {
        let mut cond = json!({"type": "Ready", "status": status});
        if let Some(h) = heartbeat {
            cond["lastHeartbeatTime"] = json!(h);
        }
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "status": {"conditions": [cond]}}),
        )
        .unwrap()
    }

    #[test]
    fn stale_heartbeats_turn_unknown() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let grace = Duration::from_secs(40);
        assert!(
            stale_ready_condition(&node("True", Some("2026-01-01T00:00:30Z")), now, grace)
                .is_none()
        );
        let c =
            stale_ready_condition(&node("True", Some("2026-01-01T00:00:10Z")), now, grace).unwrap();
        assert_eq!(c.status, "Unknown");
        assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
        assert!(
            stale_ready_condition(&node("Unknown", Some("2026-01-01T00:00:10Z")), now, grace)
                .is_none()
        );
        assert!(stale_ready_condition(&node("True", None), now, grace).is_none());
    }
}

//! A pod's status as the node reports it, computed from the runtime's container states and
//! the readiness probes. Pure, so it is tested without processes.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::{json, Value};
use weft_api::core::{ContainerStatus, Pod};

use crate::runtime::PodRuntimeStatus;

/// What the probes said per container: Some(ready) for containers with a readiness probe.
pub type Readiness = HashMap<String, bool>;

/// The `status` to write for `pod`, given its runtime state.
pub fn pod_status(
    pod: &Pod,
    runtime: &PodRuntimeStatus,
    probes: &Readiness,
    pod_ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    start_time: &str,
    now: &str,
) -> Value {
    let with_probe: std::collections::HashSet<&str> = pod
        .spec
        .containers
        .iter()
        .filter(|c| c.readiness_probe.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let containers: Vec<ContainerStatus> = runtime
        .containers
        .iter()
        .cloned()
        .map(|mut c| {
            if with_probe.contains(c.name.as_str()) {
                c.ready =
                    c.state.running.is_some() && probes.get(&c.name).copied().unwrap_or(false);
            }
            c
        })
        .collect();
    let initialized = runtime.init_containers.iter().all(|c| {
        c.state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0)
    });
    let all_ready = !containers.is_empty()
        && containers.len() == pod.spec.containers.len()
        && containers.iter().all(|c| c.ready);
    let phase = runtime.phase(&pod.spec.restart_policy);
    // Keep each condition's transition time while its status does not change.
    let previous = |kind: &str, status: &str| -> String {
        pod.status
            .conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string())
    };
    let condition = |kind: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        json!({"type": kind, "status": status, "lastTransitionTime": previous(kind, status)})
    };
    let mut status = json!({
        "phase": phase,
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "startTime": start_time,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodScheduled", true),
            condition("Initialized", initialized),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
        ],
        "containerStatuses": containers,
    });
    if !runtime.init_containers.is_empty() {
        status["initContainerStatuses"] = json!(runtime.init_containers);
    }
    status
}

/// True when the stored status already says what `wanted` says (ignoring field order).
pub fn same_status(pod: &Pod, wanted: &Value) -> bool {
    serde_json::to_value(&pod.status).is_ok_and(|current| current == *wanted)
}

/// The merge patch turning the stored status into `wanted`: fields the node no longer
/// reports are removed (a merge patch only removes what it sets to null).
pub fn status_patch(pod: &Pod, wanted: &Value) -> Value {
    let mut status = wanted.clone();
    if let (Ok(Value::Object(current)), Some(obj)) =
        (serde_json::to_value(&pod.status), status.as_object_mut())
    {
        for key in current.keys() {
            if !obj.contains_key(key) {
                obj.insert(key.clone(), Value::Null);
            }
        }
    }
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::core::{ContainerState, ContainerStateRunning, ContainerStateWaiting};

    fn pod(probe: bool) -> Pod {
        let mut c = serde_json::json!({"name": "web", "image": "x", "command": ["sleep", "9"]});
        if probe {
            c["readinessProbe"] = serde_json::json!({"tcpSocket": {"port": 80}});
        }
        serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [c]}}))
        .unwrap()
    }

    fn running(ready: bool) -> PodRuntimeStatus {
        PodRuntimeStatus {
            init_containers: vec![],
            containers: vec![ContainerStatus {
                name: "web".into(),
                ready,
                state: ContainerState {
                    running: Some(ContainerStateRunning { started_at: None }),
                    ..Default::default()
                },
                ..Default::default()
            }],
        }
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
    const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    #[test]
    fn ready_follows_probes_when_there_are_probes() {
        let p = pod(true);
        let mut probes = Readiness::new();
        let s = pod_status(&p, &running(false), &probes, IP, HOST, "t0", "t1");
        assert_eq!(s["phase"], "Running");
        assert_eq!(
            s["conditions"][3],
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "t1"})
        );
        probes.insert("web".into(), true);
        let s = pod_status(&p, &running(false), &probes, IP, HOST, "t0", "t1");
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["podIP"], "10.244.1.5");
    }

    #[test]
    fn without_probes_a_running_container_is_ready_and_waiting_is_pending() {
        let p = pod(false);
        let s = pod_status(&p, &running(true), &Readiness::new(), IP, HOST, "t0", "t1");
        assert_eq!(s["conditions"][3]["status"], "True");
        let waiting = PodRuntimeStatus {
            init_containers: vec![],
            containers: vec![ContainerStatus {
                name: "web".into(),
                state: ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: "ImageNotSupported".into(),
                        message: "set command".into(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }],
        };
        let s = pod_status(&p, &waiting, &Readiness::new(), IP, HOST, "t0", "t1");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImageNotSupported"
        );
    }
}

//! Running a pod's containers: the [`PodRuntime`] trait the agent programs against, and
//! the [`ProcessRuntime`] that runs each container's command as a process inside the
//! pod's network namespace.
//!
//! A runtime reports container states in the shapes of `status.containerStatuses`, keeps
//! what it started on disk so a restarted agent re-adopts running pods instead of
//! restarting them, and serves container logs.

pub mod backoff;
mod launch;
mod logs;
mod process;
mod procfs;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use weft_api::core::{ContainerStatus, Pod};

pub use backoff::{Backoff, BackoffPolicy};
pub use launch::{command_in_pod, container_env};
pub use process::{ProcessRuntime, ProcessRuntimeConfig};

/// Where and how a pod's processes run. The namespace and file fields are optional so the
/// runtime also works unprivileged (and in tests): with all of them `None` a container is
/// an ordinary process on the host network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandbox {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod's network namespace, e.g. `/run/netns/<name>`.
    #[serde(default)]
    pub netns_path: Option<PathBuf>,
    /// Bind-mounted over `/etc/resolv.conf` in the pod's mount namespace.
    #[serde(default)]
    pub resolv_conf_path: Option<PathBuf>,
    /// Bind-mounted over `/etc/hosts` in the pod's mount namespace.
    #[serde(default)]
    pub hosts_path: Option<PathBuf>,
    /// Set in a UTS namespace of the pod's processes (see `podfiles::hostname_and_domain`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// `<log_dir>/<container>.log` receives each container's stdout and stderr.
    pub log_dir: PathBuf,
}

impl PodSandbox {
    /// True when containers need the `pod-exec` helper (any namespace or mount).
    pub fn isolated(&self) -> bool {
        self.netns_path.is_some()
            || self.resolv_conf_path.is_some()
            || self.hosts_path.is_some()
            || self.hostname.is_some()
    }
}

/// Container statuses of one pod, ready for `status.initContainerStatuses` and
/// `status.containerStatuses`.
///
/// `ready` is the runtime's view only: true for a running container without a readiness
/// probe (and for a completed init container). For containers with a readiness probe the
/// agent sets it from the probe worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRuntimeStatus {
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
}

impl PodRuntimeStatus {
    /// The pod phase these statuses imply, following the kubelet's `getPhase`.
    pub fn phase(&self, restart_policy: &str) -> &'static str {
        let policy = RestartPolicy::parse(restart_policy);
        for init in &self.init_containers {
            match &init.state.terminated {
                Some(t) if t.exit_code == 0 => continue,
                Some(_) if policy == RestartPolicy::Never => return "Failed",
                _ => {}
            }
            // A failed init container that will be retried sits in back-off (waiting);
            // with Never it stays terminated, handled above.
            let failed_last = init
                .last_state
                .terminated
                .as_ref()
                .is_some_and(|t| t.exit_code != 0);
            if failed_last && policy == RestartPolicy::Never {
                return "Failed";
            }
            return "Pending";
        }
        let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in &self.containers {
            if c.state.running.is_some() {
                running += 1;
            } else if let Some(t) = &c.state.terminated {
                stopped += 1;
                succeeded += usize::from(t.exit_code == 0);
            } else if let Some(t) = &c.last_state.terminated {
                // Waiting to be restarted: counts by how it last ended.
                stopped += 1;
                succeeded += usize::from(t.exit_code == 0);
            } else {
                waiting += 1;
            }
        }
        if waiting > 0 || self.containers.is_empty() {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if policy == RestartPolicy::Always {
            // All stopped, but each is about to be restarted.
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == RestartPolicy::Never {
            "Failed"
        } else {
            "Running"
        }
    }
}

/// The pod's `restartPolicy`; empty means `Always`, the API default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(policy: &str) -> RestartPolicy {
        match policy {
            "Never" => RestartPolicy::Never,
            "OnFailure" => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("pod {uid} is not known to the runtime")]
    NotFound { uid: String },
    #[error("pod {uid} has no container {container:?}")]
    UnknownContainer { uid: String, container: String },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("restartPolicy {0:?} is not one of Always, OnFailure, Never")]
    InvalidRestartPolicy(String),
    #[error("runtime state {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("runtime state file {} is corrupt: {reason}; fix or remove it (the pod's processes, if any, are left alone)", path.display())]
    CorruptState { path: PathBuf, reason: String },
    #[error("no logs for container {container:?} of pod {uid} yet ({}): {source}", path.display())]
    Logs {
        uid: String,
        container: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A container's log as it is appended to.
pub type LogStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What the agent needs from a container runtime.
#[async_trait]
pub trait PodRuntime: Send + Sync {
    /// Starts the pod's containers (init containers first, one after another). Starting a
    /// pod the runtime already runs is a no-op: the agent can call it on every sync.
    async fn start_pod(&self, sandbox: &PodSandbox, pod: &Pod) -> Result<(), RuntimeError>;

    /// Stops every container: SIGTERM to each process group, SIGKILL after the grace
    /// period (`grace_period`, else the pod's terminationGracePeriodSeconds, else 30 s),
    /// then forgets the pod. Stopping an unknown pod is a no-op.
    async fn stop_pod(&self, uid: &str, grace_period: Option<Duration>)
        -> Result<(), RuntimeError>;

    async fn pod_status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError>;

    /// Every pod the runtime runs, including those re-adopted after an agent restart, so
    /// the agent can stop the ones no longer bound to its node.
    async fn list(&self) -> Result<Vec<PodSandbox>, RuntimeError>;

    /// The container's log from the beginning; with `follow`, the stream goes on with new
    /// output until the container stops running.
    async fn read_logs(
        &self,
        uid: &str,
        container: &str,
        follow: bool,
    ) -> Result<LogStream, RuntimeError>;
}

/// Names become file names (`<uid>.json`, `<container>.log`): refuse anything that could
/// step out of the directory.
pub(crate) fn check_file_name(what: &'static str, value: &str) -> Result<(), RuntimeError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value == "." || value == ".." {
        Some("it is a relative path component")
    } else if value.contains(['/', '\0']) {
        Some("it contains '/' or NUL")
    } else if value.len() > 200 {
        Some("it is longer than 200 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RuntimeError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use weft_api::core::{ContainerState, ContainerStateRunning, ContainerStateTerminated};

    use super::*;

    fn running() -> ContainerStatus {
        ContainerStatus {
            state: ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn exited(code: i32) -> ContainerStatus {
        ContainerStatus {
            state: ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        let status = |containers| PodRuntimeStatus {
            init_containers: vec![],
            containers,
        };
        assert_eq!(
            status(vec![ContainerStatus::default()]).phase("Always"),
            "Pending"
        );
        assert_eq!(status(vec![running(), exited(1)]).phase("Never"), "Running");
        assert_eq!(
            status(vec![exited(0), exited(0)]).phase("Never"),
            "Succeeded"
        );
        assert_eq!(status(vec![exited(0), exited(2)]).phase("Never"), "Failed");
        assert_eq!(status(vec![exited(2)]).phase("OnFailure"), "Running");
        assert_eq!(status(vec![exited(0)]).phase("Always"), "Running");
        let init = PodRuntimeStatus {
            init_containers: vec![exited(1)],
            containers: vec![ContainerStatus::default()],
        };
        assert_eq!(init.phase("Never"), "Failed");
        assert_eq!(init.phase("Always"), "Pending");
    }

    #[test]
    fn file_names_are_checked() {
        assert!(check_file_name("uid", "1f0c-22").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_file_name("uid", bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod process_tests;

//! What the process runtime remembers about each pod, one JSON file per pod
//! (`<state_dir>/<uid>.json`), rewritten atomically on every change so a restarted agent
//! finds every process it started.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weft_api::core::{ContainerState, ContainerStateTerminated, ContainerStateWaiting, Pod};

use super::backoff::Backoff;
use super::procfs::ProcessId;
use super::{PodSandbox, RuntimeError};
use crate::fsutil;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PodRecord {
    pub sandbox: PodSandbox,
    /// The pod as started: containers, restart policy, grace period.
    pub pod: Pod,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Set (and saved) before a stop begins, so an agent that dies halfway through a stop
    /// finishes it on restart instead of restarting the containers.
    #[serde(default)]
    pub stopping: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub name: String,
    pub restart_count: i32,
    pub state: ContainerState,
    pub last_state: ContainerState,
    /// The current (or last) process.
    #[serde(default)]
    pub process: Option<ProcessId>,
    /// When the current process started, in Unix milliseconds, for back-off resets.
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub backoff: Backoff,
}

impl ContainerRecord {
    pub fn waiting(name: &str, reason: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            state: waiting(reason, ""),
            ..Default::default()
        }
    }

    pub fn is_running(&self) -> bool {
        self.state.running.is_some()
    }

    /// The exit it is waiting to be restarted from, if any.
    pub fn pending_restart(&self) -> Option<&ContainerStateTerminated> {
        match &self.state.waiting {
            Some(w) if w.reason == "CrashLoopBackOff" => self.last_state.terminated.as_ref(),
            _ => None,
        }
    }
}

pub(crate) fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.to_string(),
            message: message.to_string(),
        }),
        ..Default::default()
    }
}

pub(crate) fn record_path(state_dir: &Path, uid: &str) -> PathBuf {
    state_dir.join(format!("{uid}.json"))
}

pub(crate) fn save(path: &Path, record: &PodRecord) -> Result<(), RuntimeError> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| RuntimeError::CorruptState {
        path: path.to_path_buf(),
        reason: format!("cannot encode: {e}"),
    })?;
    fsutil::atomic_write(path, &json).map_err(|source| RuntimeError::State {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn remove(path: &Path) -> Result<(), RuntimeError> {
    fsutil::remove_durably(path).map_err(|source| RuntimeError::State {
        path: path.to_path_buf(),
        source,
    })
}

/// Every record in the directory. A record that cannot be read fails the whole load,
/// naming the file: guessing would risk starting a second copy of a running pod.
pub(crate) fn load_all(state_dir: &Path) -> Result<Vec<PodRecord>, RuntimeError> {
    let dir_err = |source| RuntimeError::State {
        path: state_dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(state_dir).map_err(dir_err)?;
    let mut records = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(state_dir)
        .map_err(dir_err)?
        .collect::<Result<_, _>>()
        .map_err(dir_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if fsutil::is_temporary(&name) {
            let _ = fs::remove_file(&path);
            continue;
        }
        let Some(uid) = name.strip_suffix(".json") else {
            continue;
        };
        let bytes = fs::read(&path).map_err(|source| RuntimeError::State {
            path: path.clone(),
            source,
        })?;
        if bytes.is_empty() {
            // Renamed into place but never flushed before the host went down (see
            // fsutil): that crash ended the pod's processes too.
            tracing::warn!(path = %path.display(), "removing an empty pod record left by a host crash");
            let _ = fs::remove_file(&path);
            continue;
        }
        let record: PodRecord =
            serde_json::from_slice(&bytes).map_err(|e| RuntimeError::CorruptState {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if record.sandbox.uid != uid {
            return Err(RuntimeError::CorruptState {
                path,
                reason: format!("it records pod uid {:?}", record.sandbox.uid),
            });
        }
        records.push(record);
    }
    Ok(records)
}

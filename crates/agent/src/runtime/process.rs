//! The process runtime: each container's command runs as a process (through the
//! `pod-exec` helper when the pod has namespaces), supervised by a task that applies the
//! pod's restartPolicy with the kubelet's back-off.
//!
//! Processes are not tied to the agent: each leads its own process group with its output
//! going straight to its log file, so an agent restart leaves pods and their connections
//! alone. Every change is saved in the state directory; a new runtime re-adopts the
//! processes it finds still alive (same pid and start time) and watches them by polling
//! /proc, since they are no longer its children.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_api::core::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    Pod,
};

use super::backoff::BackoffPolicy;
use super::launch;
use super::logs;
use super::procfs::ProcessId;
use super::state::{self, ContainerRecord, PodRecord};
use super::{
    check_file_name, LogStream, PodRuntime, PodRuntimeStatus, PodSandbox, RestartPolicy,
    RuntimeError,
};

const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How long to wait for a SIGKILLed process to disappear before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// Where pod records live (`<uid>.json`); keep it across agent restarts.
    pub state_dir: PathBuf,
    /// The binary that implements the `pod-exec` subcommand: the `weft` binary.
    pub pod_exec_binary: PathBuf,
    pub backoff: BackoffPolicy,
    /// How often to look at processes re-adopted from an earlier agent.
    pub adopted_poll_interval: Duration,
}

impl ProcessRuntimeConfig {
    /// Kubelet timings, with this executable as the `pod-exec` helper.
    pub fn new(state_dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        Ok(ProcessRuntimeConfig {
            state_dir: state_dir.into(),
            pod_exec_binary: std::env::current_exe()?,
            backoff: BackoffPolicy::default(),
            adopted_poll_interval: Duration::from_secs(1),
        })
    }
}

/// See the module documentation. Dropping it detaches from the pods (they keep running
/// and a later [`ProcessRuntime::open`] re-adopts them); it never stops them.
pub struct ProcessRuntime {
    config: Arc<ProcessRuntimeConfig>,
    pods: Mutex<HashMap<String, PodHandle>>,
}

struct PodHandle {
    shared: Arc<PodShared>,
    stop: CancellationToken,
    detach: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// One pod's record, shared by its supervisor tasks and the runtime's readers.
struct PodShared {
    path: PathBuf,
    record: Mutex<PodRecord>,
    grace_override: Mutex<Option<Duration>>,
}

impl PodShared {
    fn read<R>(&self, f: impl FnOnce(&PodRecord) -> R) -> R {
        f(&lock(&self.record))
    }

    /// Changes the record and saves it. A failed save is logged, not fatal: the process
    /// exists either way, and the next change saves again.
    fn update<R>(&self, f: impl FnOnce(&mut PodRecord) -> R) -> R {
        let mut record = lock(&self.record);
        let result = f(&mut record);
        if let Err(e) = state::save(&self.path, &record) {
            tracing::warn!(error = %e, "saving pod runtime state");
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Records are plain data updated in one step; a panicked holder leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessRuntime {
    /// Opens the state directory and re-adopts every pod recorded in it: live processes
    /// are watched again, dead ones are handled by their restart policy, and stops that
    /// an earlier agent left half done are finished. Must run inside a tokio runtime.
    pub async fn open(config: ProcessRuntimeConfig) -> Result<ProcessRuntime, RuntimeError> {
        let records = state::load_all(&config.state_dir)?;
        let runtime = ProcessRuntime {
            config: Arc::new(config),
            pods: Mutex::new(HashMap::new()),
        };
        for record in records {
            let path = state::record_path(&runtime.config.state_dir, &record.sandbox.uid);
            if record.stopping {
                for c in record.init_containers.iter().chain(&record.containers) {
                    if let Some(p) = c.process.filter(|p| p.is_alive()) {
                        signal_group(p.pid, Signal::SIGKILL);
                    }
                }
                state::remove(&path)?;
                continue;
            }
            tracing::info!(uid = %record.sandbox.uid, pod = %record.sandbox.name, "re-adopting pod");
            let uid = record.sandbox.uid.clone();
            let handle = runtime.spawn_pod(path, record);
            lock(&runtime.pods).insert(uid, handle);
        }
        Ok(runtime)
    }

    /// Stops supervising without touching the processes, and waits for the supervisor
    /// tasks to finish; what dropping the runtime does, made awaitable.
    pub async fn shutdown(self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut pods = lock(&self.pods);
            pods.values_mut()
                .filter_map(|h| {
                    h.detach.cancel();
                    h.task.take()
                })
                .collect()
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Starts the pod's supervisor; the caller inserts the handle into `pods`.
    fn spawn_pod(&self, path: PathBuf, record: PodRecord) -> PodHandle {
        let shared = Arc::new(PodShared {
            path,
            record: Mutex::new(record),
            grace_override: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        let detach = CancellationToken::new();
        let task = tokio::spawn(run_pod(
            Arc::clone(&self.config),
            Arc::clone(&shared),
            stop.clone(),
            detach.clone(),
        ));
        PodHandle {
            shared,
            stop,
            detach,
            task: Some(task),
        }
    }

    fn shared(&self, uid: &str) -> Result<Arc<PodShared>, RuntimeError> {
        lock(&self.pods)
            .get(uid)
            .map(|h| Arc::clone(&h.shared))
            .ok_or_else(|| RuntimeError::NotFound {
                uid: uid.to_string(),
            })
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        for handle in lock(&self.pods).values() {
            handle.detach.cancel();
        }
    }
}

#[async_trait]
impl PodRuntime for ProcessRuntime {
    async fn start_pod(&self, sandbox: &PodSandbox, pod: &Pod) -> Result<(), RuntimeError> {
        check_file_name("pod uid", &sandbox.uid)?;
        for c in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
            check_file_name("container name", &c.name)?;
        }
        match pod.spec.restart_policy.as_str() {
            "" | "Always" | "OnFailure" | "Never" => {}
            other => return Err(RuntimeError::InvalidRestartPolicy(other.to_string())),
        }
        let has_init = !pod.spec.init_containers.is_empty();
        let first_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let record = PodRecord {
            sandbox: sandbox.clone(),
            pod: pod.clone(),
            init_containers: pod
                .spec
                .init_containers
                .iter()
                .map(|c| ContainerRecord::waiting(&c.name, "PodInitializing"))
                .collect(),
            containers: pod
                .spec
                .containers
                .iter()
                .map(|c| ContainerRecord::waiting(&c.name, first_reason))
                .collect(),
            stopping: false,
        };
        let path = state::record_path(&self.config.state_dir, &sandbox.uid);
        std::fs::create_dir_all(&self.config.state_dir).map_err(|source| RuntimeError::State {
            path: self.config.state_dir.clone(),
            source,
        })?;
        // Check, save and spawn under one lock so concurrent starts of a pod run it once.
        let mut pods = lock(&self.pods);
        if pods.contains_key(&sandbox.uid) {
            return Ok(());
        }
        // Saved before anything runs, so a crash from here on is recovered from the record.
        state::save(&path, &record)?;
        let handle = self.spawn_pod(path, record);
        pods.insert(sandbox.uid.clone(), handle);
        Ok(())
    }

    async fn stop_pod(
        &self,
        uid: &str,
        grace_period: Option<Duration>,
    ) -> Result<(), RuntimeError> {
        let Some(mut handle) = lock(&self.pods).remove(uid) else {
            return Ok(());
        };
        *lock(&handle.shared.grace_override) = grace_period;
        handle.shared.update(|r| r.stopping = true);
        handle.stop.cancel();
        if let Some(task) = handle.task.take() {
            let _ = task.await;
        }
        state::remove(&handle.shared.path)
    }

    async fn pod_status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError> {
        let shared = self.shared(uid)?;
        Ok(shared.read(|r| PodRuntimeStatus {
            init_containers: r
                .init_containers
                .iter()
                .zip(&r.pod.spec.init_containers)
                .map(|(rec, spec)| container_status(rec, spec, true))
                .collect(),
            containers: r
                .containers
                .iter()
                .zip(&r.pod.spec.containers)
                .map(|(rec, spec)| container_status(rec, spec, false))
                .collect(),
        }))
    }

    async fn list(&self) -> Result<Vec<PodSandbox>, RuntimeError> {
        let mut sandboxes: Vec<PodSandbox> = lock(&self.pods)
            .values()
            .map(|h| h.shared.read(|r| r.sandbox.clone()))
            .collect();
        sandboxes.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(sandboxes)
    }

    async fn read_logs(
        &self,
        uid: &str,
        container: &str,
        follow: bool,
    ) -> Result<LogStream, RuntimeError> {
        let shared = self.shared(uid)?;
        let (path, slot) = shared.read(|r| {
            let slot = find_slot(r, container);
            (r.sandbox.log_dir.join(format!("{container}.log")), slot)
        });
        let slot = slot.ok_or_else(|| RuntimeError::UnknownContainer {
            uid: uid.to_string(),
            container: container.to_string(),
        })?;
        let watched = Arc::clone(&shared);
        let running = Arc::new(move || watched.read(|r| slot.record(r).is_running()));
        logs::read_log(&path, follow, running)
            .await
            .map_err(|source| RuntimeError::Logs {
                uid: uid.to_string(),
                container: container.to_string(),
                path,
                source,
            })
    }
}

fn container_status(rec: &ContainerRecord, spec: &Container, init: bool) -> ContainerStatus {
    let running = rec.is_running();
    let ready = if init {
        rec.state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0)
    } else {
        running && spec.readiness_probe.is_none()
    };
    ContainerStatus {
        name: rec.name.clone(),
        ready,
        restart_count: rec.restart_count,
        state: rec.state.clone(),
        last_state: rec.last_state.clone(),
        image: spec.image.clone(),
        container_id: rec.process.map(|p| container_id(p.pid)).unwrap_or_default(),
        started: Some(running),
        ..Default::default()
    }
}

fn container_id(pid: i32) -> String {
    format!("process://{pid}")
}

/// Which container of the record a supervisor works on.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Init(usize),
    App(usize),
}

impl Slot {
    fn record(self, r: &PodRecord) -> &ContainerRecord {
        match self {
            Slot::Init(i) => &r.init_containers[i],
            Slot::App(i) => &r.containers[i],
        }
    }
    fn record_mut(self, r: &mut PodRecord) -> &mut ContainerRecord {
        match self {
            Slot::Init(i) => &mut r.init_containers[i],
            Slot::App(i) => &mut r.containers[i],
        }
    }
    fn spec(self, r: &PodRecord) -> &Container {
        match self {
            Slot::Init(i) => &r.pod.spec.init_containers[i],
            Slot::App(i) => &r.pod.spec.containers[i],
        }
    }
    /// Init containers run to success: retried on failure unless the policy is Never.
    /// App containers follow the policy.
    fn should_restart(self, policy: RestartPolicy, exit_code: i32) -> bool {
        match (self, policy) {
            (Slot::Init(_), RestartPolicy::Never) => false,
            (Slot::Init(_), _) => exit_code != 0,
            (Slot::App(_), RestartPolicy::Always) => true,
            (Slot::App(_), RestartPolicy::OnFailure) => exit_code != 0,
            (Slot::App(_), RestartPolicy::Never) => false,
        }
    }
}

fn find_slot(r: &PodRecord, container: &str) -> Option<Slot> {
    r.init_containers
        .iter()
        .position(|c| c.name == container)
        .map(Slot::Init)
        .or_else(|| {
            r.containers
                .iter()
                .position(|c| c.name == container)
                .map(Slot::App)
        })
}

/// How a container process ended.
#[derive(Debug, Clone)]
struct ExitInfo {
    code: i32,
    signal: Option<i32>,
    reason: String,
    message: String,
}

impl ExitInfo {
    fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        // Like container runtimes, a death by signal N reads as exit code 128+N.
        let (code, signal) = match (status.code(), status.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (128, None),
        };
        ExitInfo {
            code,
            signal,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
        }
    }

    /// The process is gone but was not our child, so its status was reaped elsewhere.
    /// Reported as the kubelet reports containers it lost track of.
    fn unknown(message: impl Into<String>) -> Self {
        ExitInfo {
            code: 137,
            signal: None,
            reason: "ContainerStatusUnknown".into(),
            message: message.into(),
        }
    }

    fn start_error(message: String) -> Self {
        ExitInfo {
            code: 128,
            signal: None,
            reason: "StartError".into(),
            message,
        }
    }
}

/// A container process: our child, or one adopted from an earlier agent.
enum Proc {
    Child(tokio::process::Child, ProcessId),
    Adopted(ProcessId),
}

impl Proc {
    fn id(&self) -> ProcessId {
        match self {
            Proc::Child(_, id) | Proc::Adopted(id) => *id,
        }
    }

    async fn wait(&mut self, poll: Duration) -> ExitInfo {
        match self {
            Proc::Child(child, _) => match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(e) => ExitInfo::unknown(format!("waiting for the process: {e}")),
            },
            Proc::Adopted(id) => {
                while id.is_alive() {
                    tokio::time::sleep(poll).await;
                }
                ExitInfo::unknown(
                    "the process was started by an earlier agent, so its exit status is unknown",
                )
            }
        }
    }

    /// Signals the process group; falls back to the process alone while it is still
    /// alive but not yet a group leader (the helper has not called setsid yet).
    fn signal(&mut self, signal: Signal) {
        let id = self.id();
        if let Err(Errno::ESRCH) = killpg(Pid::from_raw(id.pid), signal) {
            let alive = match self {
                Proc::Child(child, _) => child.id().is_some(),
                Proc::Adopted(id) => id.is_alive(),
            };
            if alive {
                let _ = kill(Pid::from_raw(id.pid), signal);
            }
        }
    }
}

/// SIGKILLs what is left of a process group whose leader has exited. A group id cannot be
/// reused while any member lives, so this never hits an unrelated process.
fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

async fn run_pod(
    config: Arc<ProcessRuntimeConfig>,
    shared: Arc<PodShared>,
    stop: CancellationToken,
    detach: CancellationToken,
) {
    let (init_count, app_count) = shared.read(|r| (r.init_containers.len(), r.containers.len()));
    for i in 0..init_count {
        match supervise(&config, &shared, Slot::Init(i), &stop, &detach).await {
            Outcome::Exited(0) => {}
            // Failed for good (restartPolicy Never) or not runnable: the app containers
            // never start, as with the kubelet.
            Outcome::Exited(_) | Outcome::NotRunnable | Outcome::Stopped | Outcome::Detached => {
                return
            }
        }
    }
    if init_count > 0 {
        shared.update(|r| {
            for c in &mut r.containers {
                if c.state
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.reason == "PodInitializing")
                {
                    c.state = state::waiting("ContainerCreating", "");
                }
            }
        });
    }
    let supervisors =
        (0..app_count).map(|i| supervise(&config, &shared, Slot::App(i), &stop, &detach));
    futures::future::join_all(supervisors).await;
}

enum Outcome {
    /// Exited and will not be restarted.
    Exited(i32),
    NotRunnable,
    Stopped,
    Detached,
}

enum Step {
    Launch,
    Watch(Proc),
    Exited(ExitInfo),
}

/// One container's life: launch, wait, apply the restart policy with back-off, repeat.
async fn supervise(
    config: &ProcessRuntimeConfig,
    shared: &PodShared,
    slot: Slot,
    stop: &CancellationToken,
    detach: &CancellationToken,
) -> Outcome {
    let policy = shared.read(|r| RestartPolicy::parse(&r.pod.spec.restart_policy));
    // Pick up where the record says the container is, which for a new pod is "waiting".
    let mut step = {
        let record = shared.read(|r| slot.record(r).clone());
        if record.is_running() {
            match record.process.filter(|p| p.is_alive()) {
                Some(id) => Step::Watch(Proc::Adopted(id)),
                None => Step::Exited(ExitInfo::unknown(
                    "the process exited while no agent was watching it, so its exit status is unknown",
                )),
            }
        } else if let Some(t) = &record.state.terminated {
            if !slot.should_restart(policy, t.exit_code) {
                return Outcome::Exited(t.exit_code);
            }
            Step::Launch
        } else {
            Step::Launch
        }
    };
    loop {
        step = match step {
            Step::Launch => match launch(config, shared, slot) {
                Ok(Some(proc)) => Step::Watch(proc),
                Ok(None) => return Outcome::NotRunnable,
                Err(exit) => Step::Exited(exit),
            },
            Step::Watch(mut proc) => {
                let exit = tokio::select! {
                    exit = proc.wait(config.adopted_poll_interval) => exit,
                    _ = stop.cancelled() => {
                        let grace = lock(&shared.grace_override).unwrap_or_else(|| {
                            shared.read(|r| {
                                r.pod.spec.termination_grace_period_seconds
                                    .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
                            })
                        });
                        let exit = terminate(&mut proc, grace, config.adopted_poll_interval).await;
                        record_exit(shared, slot, &exit);
                        return Outcome::Stopped;
                    }
                    _ = detach.cancelled() => return Outcome::Detached,
                };
                // A container's processes end with it, as when a PID namespace's init exits.
                signal_group(proc.id().pid, Signal::SIGKILL);
                Step::Exited(exit)
            }
            Step::Exited(exit) => {
                record_exit(shared, slot, &exit);
                if !slot.should_restart(policy, exit.code) {
                    return Outcome::Exited(exit.code);
                }
                let delay = shared.update(|r| {
                    let c = slot.record_mut(r);
                    let ran_for = c
                        .started_at_ms
                        .map(|ms| chrono::Utc::now().timestamp_millis().saturating_sub(ms))
                        .map_or(Duration::ZERO, |ms| Duration::from_millis(ms.max(0) as u64));
                    c.backoff.next_delay(&config.backoff, ran_for)
                });
                if !delay.is_zero() {
                    shared.update(|r| {
                        let name = r.sandbox.name.clone();
                        let ns = r.sandbox.namespace.clone();
                        let uid = r.sandbox.uid.clone();
                        let c = slot.record_mut(r);
                        if let Some(t) = c.state.terminated.take() {
                            c.last_state = ContainerState {
                                terminated: Some(t),
                                ..Default::default()
                            };
                        }
                        c.state = state::waiting(
                            "CrashLoopBackOff",
                            &format!(
                                "back-off {} restarting failed container={} pod={name}_{ns}({uid})",
                                human(delay),
                                c.name
                            ),
                        );
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return Outcome::Stopped,
                        _ = detach.cancelled() => return Outcome::Detached,
                    }
                }
                Step::Launch
            }
        };
    }
}

/// Starts the container's process and records it as running. `Ok(None)`: the spec cannot
/// run here (recorded as waiting with the reason). `Err`: starting failed.
fn launch(
    config: &ProcessRuntimeConfig,
    shared: &PodShared,
    slot: Slot,
) -> Result<Option<Proc>, ExitInfo> {
    let (prepared, sandbox) = shared.read(|r| {
        (
            launch::prepare(&r.pod, &r.sandbox, slot.spec(r)),
            r.sandbox.clone(),
        )
    });
    let prepared = match prepared {
        Ok(p) => p,
        Err(not_runnable) => {
            shared.update(|r| {
                slot.record_mut(r).state =
                    state::waiting(not_runnable.reason, &not_runnable.message)
            });
            return Ok(None);
        }
    };
    let name = shared.read(|r| slot.record(r).name.clone());
    let log_path = sandbox.log_dir.join(format!("{name}.log"));
    let stdio = std::fs::create_dir_all(&sandbox.log_dir)
        .and_then(|()| OpenOptions::new().create(true).append(true).open(&log_path))
        .and_then(|file| Ok((Stdio::from(file.try_clone()?), Stdio::from(file))))
        .map_err(|e| {
            ExitInfo::start_error(format!("opening log file {}: {e}", log_path.display()))
        })?;
    let mut cmd = launch::command_in_pod(
        &config.pod_exec_binary,
        &sandbox,
        &prepared.argv,
        &prepared.env,
        prepared.workdir.as_deref(),
    );
    cmd.stdout(stdio.0).stderr(stdio.1);
    let child = cmd.spawn().map_err(|e| {
        ExitInfo::start_error(format!(
            "starting {:?}: {e}",
            prepared.argv.first().map_or("", String::as_str)
        ))
    })?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| {
            ExitInfo::start_error("the process exited before it could be recorded".into())
        })?;
    let id = ProcessId::of(pid).unwrap_or_else(|e| {
        // Without a start time the process cannot be re-adopted after a restart; it is
        // still supervised now.
        tracing::warn!(pid, error = %e, "reading the start time of a container process");
        ProcessId {
            pid,
            start_ticks: 0,
        }
    });
    shared.update(|r| {
        let c = slot.record_mut(r);
        if let Some(t) = c.state.terminated.take() {
            c.last_state = ContainerState {
                terminated: Some(t),
                ..Default::default()
            };
            c.restart_count += 1;
        } else if c.pending_restart().is_some() {
            c.restart_count += 1;
        }
        c.state = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..Default::default()
        };
        c.process = Some(id);
        c.started_at_ms = Some(chrono::Utc::now().timestamp_millis());
    });
    Ok(Some(Proc::Child(child, id)))
}

fn record_exit(shared: &PodShared, slot: Slot, exit: &ExitInfo) {
    shared.update(|r| {
        let c = slot.record_mut(r);
        let started_at = c.state.running.as_ref().and_then(|s| s.started_at.clone());
        c.state = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: exit.code,
                signal: exit.signal,
                reason: exit.reason.clone(),
                message: exit.message.clone(),
                started_at,
                finished_at: Some(now()),
                container_id: c.process.map(|p| container_id(p.pid)).unwrap_or_default(),
            }),
            ..Default::default()
        };
    });
}

/// SIGTERM to the group, SIGKILL after the grace period, as the kubelet stops containers.
async fn terminate(proc: &mut Proc, grace: Duration, poll: Duration) -> ExitInfo {
    proc.signal(Signal::SIGTERM);
    let exit = match tokio::time::timeout(grace, proc.wait(poll)).await {
        Ok(exit) => exit,
        Err(_) => {
            proc.signal(Signal::SIGKILL);
            match tokio::time::timeout(KILL_WAIT, proc.wait(poll)).await {
                Ok(exit) => exit,
                Err(_) => ExitInfo::unknown("the process did not exit after SIGKILL"),
            }
        }
    };
    signal_group(proc.id().pid, Signal::SIGKILL);
    exit
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Durations as Go prints them in the kubelet's back-off message (`10s`, `5m0s`, `250ms`).
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

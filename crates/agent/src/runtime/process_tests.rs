//! Process runtime tests with plain `sh` commands and no namespaces (no root needed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use weft_api::core::{Container, Pod};

use super::*;

fn config(dir: &Path) -> ProcessRuntimeConfig {
    ProcessRuntimeConfig {
        state_dir: dir.join("state"),
        // Never used: these sandboxes have no namespaces, so commands run directly.
        pod_exec_binary: PathBuf::from("/nonexistent/weft"),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
        },
        adopted_poll_interval: Duration::from_millis(50),
    }
}

fn sandbox(dir: &Path, uid: &str) -> PodSandbox {
    PodSandbox {
        uid: uid.into(),
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        netns_path: None,
        resolv_conf_path: None,
        hosts_path: None,
        hostname: None,
        log_dir: dir.join("logs").join(uid),
    }
}

fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn pod(policy: &str, containers: Vec<Container>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = "p".into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.restart_policy = policy.into();
    pod.spec.containers = containers;
    pod
}

async fn wait_for(
    rt: &ProcessRuntime,
    uid: &str,
    what: &str,
    done: impl Fn(&PodRuntimeStatus) -> bool,
) -> PodRuntimeStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = rt.pod_status(uid).await.expect("status");
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn logs(rt: &ProcessRuntime, uid: &str, container: &str, follow: bool) -> String {
    let mut stream = rt.read_logs(uid, container, follow).await.expect("logs");
    let mut out = Vec::new();
    let collect = async {
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("log stream ends");
    String::from_utf8_lossy(&out).into_owned()
}

fn pid_of(status: &ContainerStatus) -> i32 {
    status
        .container_id
        .strip_prefix("process://")
        .and_then(|p| p.parse().ok())
        .expect("process container id")
}

/// Gone, or a zombie nobody has reaped yet.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_dead(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn terminated(status: &ContainerStatus) -> Option<&weft_api::core::ContainerStateTerminated> {
    status.state.terminated.as_ref()
}

#[tokio::test]
async fn never_records_the_exit_and_the_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let sb = sandbox(dir.path(), "u1");
    rt.start_pod(
        &sb,
        &pod("Never", vec![sh("main", "echo hi; echo oops >&2; exit 3")]),
    )
    .await
    .expect("start");
    let status = wait_for(&rt, "u1", "exit", |s| {
        terminated(&s.containers[0]).is_some()
    })
    .await;
    let t = terminated(&status.containers[0]).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_str()), (3, "Error"));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert_eq!(status.containers[0].restart_count, 0);
    assert!(!status.containers[0].ready);
    assert_eq!(status.phase("Never"), "Failed");
    assert_eq!(logs(&rt, "u1", "main", false).await, "hi\noops\n");
    // Never means never: still the same exit a while later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = rt.pod_status("u1").await.expect("status");
    assert_eq!(again.containers[0].restart_count, 0);
    assert!(sb.log_dir.join("main.log").exists());
}

#[tokio::test]
async fn on_failure_restarts_until_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let counter = dir.path().join("count");
    // Fails twice, then succeeds.
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo run $n; [ $n -ge 3 ]",
        c = counter.display()
    );
    rt.start_pod(
        &sandbox(dir.path(), "u2"),
        &pod("OnFailure", vec![sh("job", &script)]),
    )
    .await
    .expect("start");
    let status = wait_for(&rt, "u2", "success", |s| {
        terminated(&s.containers[0]).is_some_and(|t| t.exit_code == 0)
    })
    .await;
    let c = &status.containers[0];
    assert_eq!(c.restart_count, 2);
    assert_eq!(terminated(c).map(|t| t.reason.as_str()), Some("Completed"));
    assert_eq!(
        c.last_state.terminated.as_ref().map(|t| t.exit_code),
        Some(1)
    );
    assert_eq!(status.phase("OnFailure"), "Succeeded");
    assert_eq!(logs(&rt, "u2", "job", false).await, "run 1\nrun 2\nrun 3\n");
}

#[tokio::test]
async fn always_restarts_with_growing_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let stamps = dir.path().join("stamps");
    let script = format!("date +%s%N >> {}; exit 0", stamps.display());
    rt.start_pod(
        &sandbox(dir.path(), "u3"),
        &pod("Always", vec![sh("loop", &script)]),
    )
    .await
    .expect("start");
    let backoff = wait_for(&rt, "u3", "CrashLoopBackOff", |s| {
        s.containers[0]
            .state
            .waiting
            .as_ref()
            .is_some_and(|w| w.reason == "CrashLoopBackOff")
    })
    .await;
    let waiting = backoff.containers[0]
        .state
        .waiting
        .as_ref()
        .expect("waiting");
    assert!(
        waiting.message.starts_with("back-off ") && waiting.message.contains("container=loop"),
        "{}",
        waiting.message
    );
    assert_eq!(
        backoff.containers[0]
            .last_state
            .terminated
            .as_ref()
            .map(|t| t.reason.as_str()),
        Some("Completed")
    );
    // Exit 0 with Always is still restarted; the pod stays Running.
    assert_eq!(backoff.phase("Always"), "Running");
    wait_for(&rt, "u3", "5 restarts", |s| {
        s.containers[0].restart_count >= 5
    })
    .await;
    // The count goes up when a start is launched; its stamp follows once the process runs.
    let read_times = || -> Vec<u128> {
        std::fs::read_to_string(&stamps)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read_times().len() < 6 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt.stop_pod("u3", Some(Duration::from_secs(1)))
        .await
        .expect("stop");

    let times = read_times();
    assert!(times.len() >= 6, "{times:?}");
    let gaps: Vec<Duration> = times
        .windows(2)
        .map(|w| Duration::from_nanos((w[1] - w[0]) as u64))
        .collect();
    // Immediate, then 100 ms, 200 ms, 400 ms (the cap), 400 ms.
    let ms = Duration::from_millis;
    assert!(gaps[1] >= ms(100), "{gaps:?}");
    assert!(gaps[2] >= ms(200), "{gaps:?}");
    assert!(gaps[3] >= ms(400), "{gaps:?}");
    assert!(gaps[4] >= ms(400) && gaps[4] < ms(1500), "capped: {gaps:?}");
}

#[tokio::test]
async fn stop_terminates_the_whole_group_and_forgets_the_pod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let child_file = dir.path().join("child");
    let script = format!("sleep 1000 & echo $! > {}; wait", child_file.display());
    rt.start_pod(
        &sandbox(dir.path(), "u4"),
        &pod("Always", vec![sh("main", &script)]),
    )
    .await
    .expect("start");
    let status = wait_for(&rt, "u4", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    assert!(
        status.containers[0].ready,
        "no readiness probe: ready while running"
    );
    let pid = pid_of(&status.containers[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let child: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&child_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "background child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let started = Instant::now();
    rt.stop_pod("u4", Some(Duration::from_secs(5)))
        .await
        .expect("stop");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGTERM was enough"
    );
    wait_dead(pid).await;
    wait_dead(child).await;
    assert!(matches!(
        rt.pod_status("u4").await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(!dir.path().join("state/u4.json").exists());
    assert!(rt.list().await.expect("list").is_empty());
    rt.stop_pod("u4", None)
        .await
        .expect("stopping twice is fine");
}

#[tokio::test]
async fn stop_kills_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let mut p = pod(
        "Always",
        vec![sh(
            "stubborn",
            "trap '' TERM; while true; do sleep 0.05; done",
        )],
    );
    p.spec.termination_grace_period_seconds = Some(1);
    rt.start_pod(&sandbox(dir.path(), "u5"), &p)
        .await
        .expect("start");
    let status = wait_for(&rt, "u5", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    let pid = pid_of(&status.containers[0]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    // No override: the pod's terminationGracePeriodSeconds (1 s) applies.
    rt.stop_pod("u5", None).await.expect("stop");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "waited the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "then killed: {took:?}");
    wait_dead(pid).await;
}

#[tokio::test]
async fn a_new_runtime_re_adopts_running_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(dir.path(), "u6");
    let first = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    first
        .start_pod(
            &sb,
            &pod("Always", vec![sh("server", "echo up; exec sleep 1000")]),
        )
        .await
        .expect("start");
    let before = wait_for(&first, "u6", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    let pid = pid_of(&before.containers[0]);
    // The agent goes away; the pod must not.
    first.shutdown().await;
    assert!(!is_dead(pid), "process survived the runtime");

    let second = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("reopen");
    assert_eq!(second.list().await.expect("list"), vec![sb.clone()]);
    let after = second.pod_status("u6").await.expect("status");
    assert_eq!(
        after.containers[0].container_id,
        before.containers[0].container_id
    );
    assert_eq!(after.containers[0].restart_count, 0);
    assert_eq!(after.containers[0].state, before.containers[0].state);
    // Starting it again (the agent's first sync after restart) changes nothing.
    second
        .start_pod(
            &sb,
            &pod("Always", vec![sh("server", "echo up; exec sleep 1000")]),
        )
        .await
        .expect("start again");
    assert_eq!(
        second.pod_status("u6").await.expect("status").containers[0].container_id,
        before.containers[0].container_id
    );
    assert_eq!(logs(&second, "u6", "server", false).await, "up\n");
    second
        .stop_pod("u6", Some(Duration::from_secs(2)))
        .await
        .expect("stop");
    wait_dead(pid).await;
}

#[tokio::test]
async fn a_process_that_died_unwatched_is_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(dir.path(), "u7");
    let first = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    first
        .start_pod(&sb, &pod("Always", vec![sh("main", "exec sleep 1000")]))
        .await
        .expect("start");
    let before = wait_for(&first, "u7", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    let pid = pid_of(&before.containers[0]);
    first.shutdown().await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_dead(pid).await;

    let second = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("reopen");
    let status = wait_for(&second, "u7", "restart", |s| {
        s.containers[0].restart_count == 1 && s.containers[0].state.running.is_some()
    })
    .await;
    let last = status.containers[0]
        .last_state
        .terminated
        .as_ref()
        .expect("last state");
    assert_eq!(last.reason, "ContainerStatusUnknown");
    assert_ne!(pid_of(&status.containers[0]), pid);
    second
        .stop_pod("u7", Some(Duration::from_secs(2)))
        .await
        .expect("stop");
}

#[tokio::test]
async fn an_adopted_process_is_watched_until_it_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(dir.path(), "u8");
    let first = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    first
        .start_pod(&sb, &pod("Never", vec![sh("main", "exec sleep 1000")]))
        .await
        .expect("start");
    let before = wait_for(&first, "u8", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    let pid = pid_of(&before.containers[0]);
    first.shutdown().await;

    let second = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("reopen");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = wait_for(&second, "u8", "exit", |s| {
        terminated(&s.containers[0]).is_some()
    })
    .await;
    let t = terminated(&status.containers[0]).expect("terminated");
    assert_eq!(t.reason, "ContainerStatusUnknown");
    assert_eq!(
        status.containers[0].restart_count, 0,
        "Never: not restarted"
    );
    second.stop_pod("u8", None).await.expect("stop");
}

#[tokio::test]
async fn an_interrupted_stop_is_finished_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(dir.path(), "u9");
    let first = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    first
        .start_pod(&sb, &pod("Always", vec![sh("main", "exec sleep 1000")]))
        .await
        .expect("start");
    let status = wait_for(&first, "u9", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    let pid = pid_of(&status.containers[0]);
    first.shutdown().await;
    // As if the agent died right after marking the stop.
    let path = dir.path().join("state/u9.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    record["stopping"] = serde_json::Value::Bool(true);
    std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");

    let second = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("reopen");
    wait_dead(pid).await;
    assert!(second.list().await.expect("list").is_empty());
    assert!(!path.exists());
}

#[tokio::test]
async fn corrupt_state_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("state")).expect("mkdir");
    std::fs::write(dir.path().join("state/bad.json"), b"{").expect("write");
    let err = ProcessRuntime::open(config(dir.path()))
        .await
        .err()
        .expect("corrupt");
    assert!(err.to_string().contains("bad.json"), "{err}");
}

#[tokio::test]
async fn image_only_containers_wait_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let nginx = Container {
        name: "web".into(),
        image: "nginx:1.27".into(),
        ..Default::default()
    };
    rt.start_pod(&sandbox(dir.path(), "u10"), &pod("Always", vec![nginx]))
        .await
        .expect("start");
    let status = wait_for(&rt, "u10", "ImageNotSupported", |s| {
        s.containers[0]
            .state
            .waiting
            .as_ref()
            .is_some_and(|w| w.reason == "ImageNotSupported")
    })
    .await;
    let waiting = status.containers[0]
        .state
        .waiting
        .as_ref()
        .expect("waiting");
    assert_eq!(
        waiting.message,
        "the process runtime runs commands; this container has only an image (nginx:1.27): \
         set command, or use a containerd runtime"
    );
    assert_eq!(status.containers[0].image, "nginx:1.27");
    assert_eq!(status.phase("Always"), "Pending");
    assert!(matches!(
        rt.read_logs("u10", "web", false).await,
        Err(RuntimeError::Logs { .. })
    ));
}

#[tokio::test]
async fn follow_streams_until_the_container_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    rt.start_pod(
        &sandbox(dir.path(), "u11"),
        &pod("Never", vec![sh("talk", "echo a; sleep 0.5; echo b")]),
    )
    .await
    .expect("start");
    wait_for(&rt, "u11", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    assert_eq!(logs(&rt, "u11", "talk", true).await, "a\nb\n");
    assert!(matches!(
        rt.read_logs("u11", "nope", false).await,
        Err(RuntimeError::UnknownContainer { .. })
    ));
}

#[tokio::test]
async fn init_containers_run_first_and_env_and_workdir_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let shared = dir.path().join("shared");
    let mut p = pod("Never", vec![]);
    p.spec.init_containers = vec![sh(
        "setup",
        &format!("sleep 0.2; echo ready > {}", shared.display()),
    )];
    let mut main = sh(
        "main",
        &format!(
            "cat {}; echo \"$GREETING\" $(GREETING); pwd",
            shared.display()
        ),
    );
    main.env = vec![weft_api::core::EnvVar {
        name: "GREETING".into(),
        value: Some("hello".into()),
        ..Default::default()
    }];
    main.working_dir = dir.path().display().to_string();
    p.spec.containers = vec![main];
    rt.start_pod(&sandbox(dir.path(), "u12"), &p)
        .await
        .expect("start");
    let early = rt.pod_status("u12").await.expect("status");
    assert_eq!(
        early.containers[0]
            .state
            .waiting
            .as_ref()
            .map(|w| w.reason.as_str()),
        Some("PodInitializing")
    );
    let status = wait_for(&rt, "u12", "main exit", |s| {
        terminated(&s.containers[0]).is_some()
    })
    .await;
    assert!(status.init_containers[0].ready);
    assert_eq!(
        terminated(&status.containers[0]).map(|t| t.exit_code),
        Some(0)
    );
    assert_eq!(
        logs(&rt, "u12", "main", false).await,
        format!("ready\nhello hello\n{}\n", dir.path().display())
    );
    assert_eq!(status.phase("Never"), "Succeeded");
}

#[tokio::test]
async fn a_command_that_does_not_exist_is_a_start_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = ProcessRuntime::open(config(dir.path()))
        .await
        .expect("open");
    let missing = Container {
        name: "c".into(),
        command: vec!["/nonexistent/binary".into()],
        ..Default::default()
    };
    rt.start_pod(&sandbox(dir.path(), "u13"), &pod("Never", vec![missing]))
        .await
        .expect("start");
    let status = wait_for(&rt, "u13", "start error", |s| {
        terminated(&s.containers[0]).is_some()
    })
    .await;
    let t = terminated(&status.containers[0]).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_str()), (128, "StartError"));
    assert!(t.message.contains("/nonexistent/binary"), "{}", t.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_run_the_pod_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = std::sync::Arc::new(
        ProcessRuntime::open(config(dir.path()))
            .await
            .expect("open"),
    );
    let sb = sandbox(dir.path(), "u14");
    let p = pod("Never", vec![sh("main", "echo once; exec sleep 1000")]);
    let starts = (0..5).map(|_| {
        let (rt, sb, p) = (std::sync::Arc::clone(&rt), sb.clone(), p.clone());
        tokio::spawn(async move { rt.start_pod(&sb, &p).await })
    });
    for start in futures::future::join_all(starts).await {
        start.expect("task").expect("start");
    }
    let status = wait_for(&rt, "u14", "running", |s| {
        s.containers[0].state.running.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logs(&rt, "u14", "main", false).await, "once\n");
    rt.stop_pod("u14", Some(Duration::from_secs(2)))
        .await
        .expect("stop");
    wait_dead(pid_of(&status.containers[0])).await;
}

//! `pod-exec` for real: a network namespace, the pod's resolv.conf and hosts bind-mounted
//! in a private mount namespace, through the helper directly and through the process
//! runtime. Needs root; without it the namespace cases print `SKIPPED: needs root`, and
//! fail instead when `CI` is set.
//!
//! Runs with its own `main` (harness = false) so that this test binary can be the
//! `pod-exec` helper it spawns, exactly as the `weft` binary is in production.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use futures::StreamExt;
use weft_agent::podfiles::{self, ClusterDns};
use weft_agent::runtime::{PodRuntime, PodSandbox, ProcessRuntime, ProcessRuntimeConfig};
use weft_api::core::{Container, Pod};

type Case = (&'static str, bool, fn() -> Result<(), String>);

const CASES: &[Case] = &[
    ("helper_exit_codes", false, helper_exit_codes),
    (
        "pod_exec_sees_pod_files_in_netns",
        true,
        pod_exec_sees_pod_files_in_netns,
    ),
    (
        "runtime_runs_containers_in_netns",
        true,
        runtime_runs_containers_in_netns,
    ),
];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == weft_agent::pod_exec::SUBCOMMAND)
    {
        weft_agent::pod_exec_main(args.into_iter().skip(2));
    }
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in CASES {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // Positional arguments are name filters, as with the standard harness.
    let filters: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with('-'))
        .collect();
    let root = nix::unistd::geteuid().is_root();
    let ci = std::env::var_os("CI").is_some();
    let mut failed = 0;
    for (name, needs_root, case) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if *needs_root && !root {
            if ci {
                println!("test {name} ... FAILED: needs root (CI is set, so this is not skipped)");
                failed += 1;
            } else {
                println!("test {name} ... SKIPPED: needs root");
            }
            continue;
        }
        match case() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn helper() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("current_exe: {e}"))
}

/// A throwaway network namespace, deleted on drop even when the case fails.
struct Netns {
    name: String,
}

impl Netns {
    fn add() -> Result<Netns, String> {
        let name = format!("wag-{}", std::process::id());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(|e| format!("running ip netns add: {e}"))?;
        if !status.success() {
            return Err(format!("ip netns add {name} failed: {status}"));
        }
        Ok(Netns { name })
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The pod's files as the agent would write them.
fn pod_files(dir: &Path) -> Result<(Pod, String, String, podfiles::PodFilePaths), String> {
    let mut pod = Pod::default();
    pod.metadata.name = "wag-pod".into();
    pod.metadata.namespace = Some("default".into());
    let dns = ClusterDns {
        nameserver: "10.96.0.10".parse().map_err(|e| format!("{e}"))?,
        zone: "cluster.local".into(),
    };
    let resolv =
        podfiles::resolv_conf(&pod, &dns, "nameserver 192.0.2.53\n").map_err(|e| e.to_string())?;
    let ip = "10.244.1.2".parse().map_err(|e| format!("{e}"))?;
    let hosts = podfiles::hosts_file(&pod, ip, "cluster.local").map_err(|e| e.to_string())?;
    let paths = podfiles::write_pod_files(&podfiles::pod_dir(dir, "uid-1"), &resolv, &hosts)
        .map_err(|e| e.to_string())?;
    Ok((pod, resolv, hosts, paths))
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn helper_exit_codes() -> Result<(), String> {
    let run = |args: &[&str]| {
        Command::new(helper()?)
            .arg("pod-exec")
            .args(args)
            .output()
            .map_err(|e| format!("spawning the helper: {e}"))
    };
    let out = run(&["--", "/nonexistent/cmd"])?;
    check(out.status.code() == Some(127), || {
        format!("missing command: {out:?}")
    })?;
    check(
        String::from_utf8_lossy(&out.stderr).contains("pod-exec: exec \"/nonexistent/cmd\""),
        || format!("stderr: {out:?}"),
    )?;
    let out = run(&["--bogus"])?;
    check(out.status.code() == Some(125), || {
        format!("usage error: {out:?}")
    })?;
    let out = run(&["--workdir", "/nonexistent/dir", "--", "true"])?;
    check(out.status.code() == Some(125), || {
        format!("bad workdir: {out:?}")
    })?;
    check(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir"),
        || format!("stderr names the directory: {out:?}"),
    )?;
    let out = run(&["--", "sh", "-c", "exit 7"])?;
    check(out.status.code() == Some(7), || {
        format!("exit code passes through: {out:?}")
    })
}

fn pod_exec_sees_pod_files_in_netns() -> Result<(), String> {
    let host_resolv =
        std::fs::read("/etc/resolv.conf").map_err(|e| format!("host resolv.conf: {e}"))?;
    let host_hosts = std::fs::read("/etc/hosts").map_err(|e| format!("host hosts: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_, resolv, hosts, paths) = pod_files(dir.path())?;
    let netns = Netns::add()?;

    let out = Command::new(helper()?)
        .arg("pod-exec")
        .arg("--netns")
        .arg(netns.path())
        .arg("--resolv")
        .arg(&paths.resolv_conf)
        .arg("--hosts")
        .arg(&paths.hosts)
        .args(["--hostname", "wag-pod", "--workdir", "/tmp", "--"])
        .args([
            "sh",
            "-c",
            "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname; pwd; echo ---; ip -o link show | cut -d: -f2",
        ])
        .output()
        .map_err(|e| format!("spawning the helper: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    check(out.status.success(), || format!("pod-exec failed: {out:?}"))?;
    let sections: Vec<&str> = stdout.split("---\n").collect();
    check(sections.len() == 4, || format!("output: {stdout}"))?;
    check(sections[0] == resolv, || {
        format!("resolv.conf inside: {:?}", sections[0])
    })?;
    check(sections[1] == hosts, || {
        format!("hosts inside: {:?}", sections[1])
    })?;
    check(sections[2] == "wag-pod\n/tmp\n", || {
        format!("hostname, cwd: {:?}", sections[2])
    })?;
    check(sections[3].trim() == "lo", || {
        format!("links in the pod netns: {:?}", sections[3])
    })?;

    // The host saw none of it.
    let after = std::fs::read("/etc/resolv.conf").map_err(|e| format!("host resolv.conf: {e}"))?;
    check(after == host_resolv, || {
        "the host's /etc/resolv.conf changed".into()
    })?;
    let after = std::fs::read("/etc/hosts").map_err(|e| format!("host hosts: {e}"))?;
    check(after == host_hosts, || {
        "the host's /etc/hosts changed".into()
    })?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    check(!mounts.contains(&dir.path().display().to_string()), || {
        "a pod bind mount leaked into the host's mount namespace".into()
    })?;
    let hostname = nix::unistd::gethostname().map_err(|e| e.to_string())?;
    check(hostname != "wag-pod", || {
        "the host's hostname changed".into()
    })
}

fn runtime_runs_containers_in_netns() -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (mut pod, resolv, _, paths) = pod_files(dir.path())?;
        let netns = Netns::add()?;
        pod.spec.restart_policy = "Never".into();
        pod.spec.containers = vec![Container {
            name: "main".into(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "cat /etc/resolv.conf; hostname".into(),
            ],
            ..Default::default()
        }];
        let sandbox = PodSandbox {
            uid: "uid-1".into(),
            namespace: "default".into(),
            name: "wag-pod".into(),
            netns_path: Some(netns.path()),
            resolv_conf_path: Some(paths.resolv_conf.clone()),
            hosts_path: Some(paths.hosts.clone()),
            hostname: Some("wag-pod".into()),
            log_dir: dir.path().join("logs"),
        };
        let mut config =
            ProcessRuntimeConfig::new(dir.path().join("runtime")).map_err(|e| e.to_string())?;
        config.pod_exec_binary = helper()?;
        let runtime = ProcessRuntime::open(config)
            .await
            .map_err(|e| e.to_string())?;
        runtime
            .start_pod(&sandbox, &pod)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let status = runtime
                .pod_status("uid-1")
                .await
                .map_err(|e| e.to_string())?;
            if status.containers[0].state.terminated.is_some() {
                break status;
            }
            check(Instant::now() < deadline, || {
                format!("container never finished: {status:?}")
            })?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let exit = status.containers[0]
            .state
            .terminated
            .as_ref()
            .map(|t| t.exit_code);
        check(exit == Some(0), || format!("exit: {status:?}"))?;
        let mut stream = runtime
            .read_logs("uid-1", "main", false)
            .await
            .map_err(|e| e.to_string())?;
        let mut log = Vec::new();
        while let Some(chunk) = stream.next().await {
            log.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        let log = String::from_utf8_lossy(&log);
        check(log == format!("{resolv}wag-pod\n"), || {
            format!("container log: {log:?}")
        })?;
        runtime
            .stop_pod("uid-1", None)
            .await
            .map_err(|e| e.to_string())
    })
}

//! `pod-exec`: the re-exec helper that puts a command inside a pod.
//!
//! The runtime (and exec probes) spawn `<weft> pod-exec --netns PATH --resolv FILE
//! --hosts FILE [--hostname NAME] [--workdir DIR] -- CMD ARGS…`. The helper starts a new
//! session (so the pod's processes form their own process group and outlive the agent),
//! joins the pod's network namespace, enters a private mount namespace where the pod's
//! files are bind-mounted over `/etc/resolv.conf` and `/etc/hosts` (the host's files stay
//! untouched), and then execs the command, so the pid the runtime recorded is the
//! command's. Doing this in a fresh process instead of a `pre_exec` hook keeps the agent
//! free of `unsafe` and of the fork-in-a-threaded-process hazards.
//!
//! Exit codes when the helper itself fails: 125 for setup errors (as `podman`/`docker`
//! use), 126 when the command cannot be executed, 127 when it is not found.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// The subcommand name the `weft` binary must route to [`pod_exec_main`].
pub const SUBCOMMAND: &str = "pod-exec";

pub const EXIT_SETUP_FAILED: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// What the helper does, and the arguments that say it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodExecSpec {
    pub netns: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// Set in a new UTS namespace, so `hostname` inside the pod says the pod's name.
    pub hostname: Option<String>,
    pub workdir: Option<PathBuf>,
    /// The program and its arguments; the program is looked up in `PATH`.
    pub command: Vec<OsString>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodExecArgsError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown option {0:?} (expected --netns, --resolv, --hosts, --hostname, --workdir, then -- and the command)")]
    UnknownOption(String),
    #[error("no command given after --")]
    NoCommand,
}

impl PodExecSpec {
    /// The arguments after the subcommand name.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: Option<OsString>| {
            if let Some(value) = value {
                args.push(OsString::from(flag));
                args.push(value);
            }
        };
        push("--netns", self.netns.clone().map(Into::into));
        push("--resolv", self.resolv_conf.clone().map(Into::into));
        push("--hosts", self.hosts.clone().map(Into::into));
        push("--hostname", self.hostname.clone().map(Into::into));
        push("--workdir", self.workdir.clone().map(Into::into));
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }

    /// Parses the arguments after the subcommand name.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, PodExecArgsError> {
        let mut spec = PodExecSpec::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let flag = arg.to_string_lossy().into_owned();
            if flag == "--" {
                spec.command = args.collect();
                break;
            }
            let slot: &mut Option<PathBuf> = match flag.as_str() {
                "--netns" => &mut spec.netns,
                "--resolv" => &mut spec.resolv_conf,
                "--hosts" => &mut spec.hosts,
                "--workdir" => &mut spec.workdir,
                "--hostname" => {
                    let value = args.next().ok_or(PodExecArgsError::MissingValue(flag))?;
                    spec.hostname = Some(value.to_string_lossy().into_owned());
                    continue;
                }
                _ => return Err(PodExecArgsError::UnknownOption(flag)),
            };
            *slot = Some(
                args.next()
                    .ok_or(PodExecArgsError::MissingValue(flag))?
                    .into(),
            );
        }
        if spec.command.is_empty() {
            return Err(PodExecArgsError::NoCommand);
        }
        Ok(spec)
    }

    fn needs_mount_ns(&self) -> bool {
        self.resolv_conf.is_some() || self.hosts.is_some()
    }

    fn needs_single_thread(&self) -> bool {
        self.netns.is_some() || self.needs_mount_ns() || self.hostname.is_some()
    }
}

/// Entry point of the hidden `pod-exec` subcommand; `args` are the arguments after it.
/// Never returns: it execs the command or exits with 125/126/127 and a message on stderr.
///
/// Call it before starting the async runtime or any other thread: namespace changes
/// apply to the calling thread only, so the process must be single-threaded.
pub fn pod_exec_main(args: impl IntoIterator<Item = OsString>) -> ! {
    let spec = match PodExecSpec::parse(args) {
        Ok(spec) => spec,
        Err(e) => fail(EXIT_SETUP_FAILED, &format!("usage: {e}")),
    };
    if let Err(e) = enter_pod(&spec) {
        fail(EXIT_SETUP_FAILED, &e);
    }
    let (code, message) = exec(&spec.command);
    fail(code, &message)
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("pod-exec: {message}");
    std::process::exit(code)
}

fn enter_pod(spec: &PodExecSpec) -> Result<(), String> {
    // A new session makes this process a session and process group leader: the runtime
    // signals the whole group on stop, and the agent's terminal or exit does not reach it.
    // EPERM means the caller already made us a group leader, which serves as well.
    match nix::unistd::setsid() {
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => return Err(format!("setsid: {e}")),
    }
    if spec.needs_single_thread() {
        check_single_threaded()?;
    }
    if let Some(netns) = &spec.netns {
        let file = File::open(netns)
            .map_err(|e| format!("opening network namespace {}: {e}", netns.display()))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("joining network namespace {}: {e}", netns.display()))?;
    }
    let mut flags = CloneFlags::empty();
    if spec.needs_mount_ns() {
        flags |= CloneFlags::CLONE_NEWNS;
    }
    if spec.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if !flags.is_empty() {
        unshare(flags).map_err(|e| format!("unshare({flags:?}): {e}"))?;
    }
    if spec.needs_mount_ns() {
        // Without this, on a host whose / is a shared mount (systemd's default) the bind
        // mounts below would propagate back and cover the host's own files.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("making / a private mount: {e}"))?;
        if let Some(resolv) = &spec.resolv_conf {
            bind(resolv, Path::new("/etc/resolv.conf"))?;
        }
        if let Some(hosts) = &spec.hosts {
            bind(hosts, Path::new("/etc/hosts"))?;
        }
    }
    if let Some(hostname) = &spec.hostname {
        nix::unistd::sethostname(hostname)
            .map_err(|e| format!("setting hostname {hostname:?}: {e}"))?;
    }
    if let Some(dir) = &spec.workdir {
        std::env::set_current_dir(dir)
            .map_err(|e| format!("changing to working directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path) -> Result<(), String> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "bind-mounting {} over {}: {e}",
            source.display(),
            target.display()
        )
    })
}

fn check_single_threaded() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(1);
    if threads > 1 {
        return Err(format!(
            "the process has {threads} threads; pod-exec must run before any thread \
             (e.g. the async runtime) is started, since namespaces are per thread"
        ));
    }
    Ok(())
}

/// Replaces the process with the command; returns only on failure.
fn exec(command: &[OsString]) -> (i32, String) {
    let to_c = |s: &OsString| CString::new(s.as_bytes());
    let argv: Result<Vec<CString>, _> = command.iter().map(to_c).collect();
    let argv = match argv {
        Ok(argv) if !argv.is_empty() => argv,
        Ok(_) => return (EXIT_SETUP_FAILED, "no command".into()),
        Err(_) => return (EXIT_SETUP_FAILED, "command contains a NUL byte".into()),
    };
    let err = match nix::unistd::execvp(&argv[0], &argv) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = if err == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    };
    (
        code,
        format!("exec {:?}: {err}", command[0].to_string_lossy()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn args_round_trip() {
        let spec = PodExecSpec {
            netns: Some("/run/netns/pod".into()),
            resolv_conf: Some("/var/lib/weft/pods/u/resolv.conf".into()),
            hosts: Some("/var/lib/weft/pods/u/hosts".into()),
            hostname: Some("web-1".into()),
            workdir: Some("/srv".into()),
            command: os(&["sh", "-c", "echo --netns"]),
        };
        let args = spec.to_args();
        assert_eq!(args[0], "--netns");
        assert_eq!(PodExecSpec::parse(args), Ok(spec));
        let minimal = PodExecSpec {
            command: os(&["true"]),
            ..Default::default()
        };
        assert_eq!(minimal.to_args(), os(&["--", "true"]));
    }

    #[test]
    fn bad_args_are_explained() {
        assert_eq!(
            PodExecSpec::parse(os(&["--netns"])),
            Err(PodExecArgsError::MissingValue("--netns".into()))
        );
        assert_eq!(
            PodExecSpec::parse(os(&["--net", "x", "--", "true"])),
            Err(PodExecArgsError::UnknownOption("--net".into()))
        );
        assert_eq!(
            PodExecSpec::parse(os(&["--"])),
            Err(PodExecArgsError::NoCommand)
        );
    }
}

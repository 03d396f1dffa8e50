//! nftables rules are written as nft scripts and applied as one transaction, either by
//! running the `nft` command (the node agent's masquerade table: rare, small changes) or
//! through an [`NftSession`] holding libnftables in-process (the service proxy: frequent
//! one-element changes that must not pay a process start each).

mod ffi;

use std::fs::File;
use std::process::Stdio;
use std::sync::mpsc;

use nix::sched::{setns, CloneFlags};

use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// nft could not be started or spoken to.
    #[error("running {command} (install the nftables package): {message}")]
    Run { command: String, message: String },
    /// nft ran and refused.
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Runs `nft ARGS` (inside the named netns through `ip netns exec` when given), feeding
/// `stdin`; returns stdout.
pub async fn nft(
    netns: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NftError> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => tokio::process::Command::new("nft"),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let command = format!("nft {}", args.join(" "));
    let err = |e: std::io::Error| NftError::Run {
        command: command.clone(),
        message: e.to_string(),
    };
    let mut child = cmd.spawn().map_err(err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(err)?;
        // Dropping the pipe closes it: nft reads to end of file.
    }
    let out = child.wait_with_output().await.map_err(err)?;
    if !out.status.success() {
        return Err(NftError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A long-lived nftables handle for one network namespace: libnftables on a thread of its
/// own inside that namespace when the library loads, else the `nft` command (same scripts,
/// same errors, ~15 ms more per call).
#[derive(Debug)]
pub struct NftSession {
    netns: Option<String>,
    library: Option<mpsc::Sender<Job>>,
}

struct Job {
    script: String,
    json: bool,
    reply: tokio::sync::oneshot::Sender<ffi::Outcome>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("json", &self.json).finish()
    }
}

impl NftSession {
    /// Opens a session in the named netns (None: the caller's). Never fails: without the
    /// library it logs why and runs the `nft` command instead.
    pub fn open(netns: Option<&str>) -> Self {
        let library = match spawn_worker(netns) {
            Ok(jobs) => Some(jobs),
            Err(why) => {
                tracing::warn!(%why, "libnftables unusable; running the nft command instead");
                None
            }
        };
        NftSession {
            netns: netns.map(str::to_string),
            library,
        }
    }

    /// True when commands go through libnftables in-process.
    pub fn in_process(&self) -> bool {
        self.library.is_some()
    }

    /// Applies an nft script as one transaction (`nft -f -`); returns what it printed.
    pub async fn run(&self, script: &str) -> Result<String, NftError> {
        self.call(script, false, &["-f", "-"]).await
    }

    /// Runs one command with JSON output (`nft -j COMMAND`), e.g. `list table ip t`.
    pub async fn run_json(&self, command: &str) -> Result<String, NftError> {
        self.call(command, true, &["-j", "-f", "-"]).await
    }

    async fn call(&self, script: &str, json: bool, cli_args: &[&str]) -> Result<String, NftError> {
        let Some(jobs) = &self.library else {
            return nft(self.netns.as_deref(), cli_args, Some(script)).await;
        };
        let command = if json {
            format!("nft -j {}", script.trim())
        } else {
            "nft -f -".to_string()
        };
        let gone = || NftError::Run {
            command: command.clone(),
            message: "the libnftables thread has stopped".into(),
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        jobs.send(Job {
            script: script.to_string(),
            json,
            reply,
        })
        .map_err(|_| gone())?;
        match outcome.await.map_err(|_| gone())? {
            Ok(out) => Ok(out),
            Err(stderr) => Err(NftError::Failed {
                command: command.clone(),
                stderr,
            }),
        }
    }
}

/// Starts the thread owning a libnftables context inside `netns`; it ends when the
/// session (the only sender) is dropped.
fn spawn_worker(netns: Option<&str>) -> Result<mpsc::Sender<Job>, String> {
    let ns_file = match netns {
        Some(name) => {
            let path = crate::netns::path(name);
            Some(File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let (jobs, queue) = mpsc::channel::<Job>();
    let (ready, started) = mpsc::sync_channel::<Result<(), String>>(1);
    std::thread::Builder::new()
        .name("libnftables".into())
        .spawn(move || {
            if let Some(ns) = ns_file {
                // The thread stays in the namespace for its whole life: the context's
                // socket and anything libnftables opens later belong there.
                if let Err(e) = setns(&ns, CloneFlags::CLONE_NEWNET) {
                    let _ = ready.send(Err(format!("entering the netns: {e}")));
                    return;
                }
            }
            let mut ctx = match ffi::Context::new() {
                Ok(ctx) => ctx,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            while let Ok(job) = queue.recv() {
                let _ = job.reply.send(ctx.run(&job.script, job.json));
            }
        })
        .map_err(|e| format!("starting the libnftables thread: {e}"))?;
    started
        .recv()
        .map_err(|_| "the libnftables thread ended while starting".to_string())??;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root with nftables: the library applies a transaction, lists it as JSON, and
    /// reports nft's own error text (what callers match on).
    #[tokio::test]
    async fn session_applies_lists_and_reports_errors() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP session_applies_lists_and_reports_errors: needs root");
            return;
        }
        let ns = format!("wnft-{}", std::process::id());
        crate::netns::create(&ns).expect("netns");
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = crate::netns::delete(&self.0);
            }
        }
        let _gone = Gone(ns.clone());
        let session = NftSession::open(Some(&ns));
        assert!(session.in_process(), "libnftables did not load");
        session
            .run("add table ip t\nadd set ip t s { type ipv4_addr ; }\nadd element ip t s { 10.0.0.1 }\n")
            .await
            .expect("applies");
        let json = session.run_json("list set ip t s").await.expect("lists");
        assert!(json.contains("\"10.0.0.1\""), "{json}");
        let err = session
            .run("delete element ip t s { 10.0.0.2 }")
            .await
            .expect_err("missing element");
        match err {
            NftError::Failed { stderr, .. } => {
                assert!(stderr.contains("No such file or directory"), "{stderr}")
            }
            other => panic!("{other}"),
        }
        // A failed transaction left the table as it was.
        let text = session.run("list table ip t").await.expect("lists");
        assert!(text.contains("10.0.0.1"), "{text}");
        // The host's namespace does not see the table.
        let host = NftSession::open(None);
        assert!(host.run("list table ip t").await.is_err());
    }
}

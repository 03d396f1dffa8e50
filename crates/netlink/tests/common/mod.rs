//! Shared by the namespace tests: the root check, throwaway namespaces torn down on drop
//! (panics included), and iproute2 cross-checks. Nothing here touches the host's own
//! namespace: every link, address, route and neighbour lives in a namespace made here.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use weft_netlink::netns;

/// True when the test can run. Without root it prints `SKIPPED: …` and returns false,
/// unless `CI` is set: then a missing privilege is a failure, not a skip.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (CI is set, so this fails instead of skipping)");
    }
    println!("SKIPPED: {test} needs root");
    false
}

/// `wnl-PID-N`: unique across the test binaries (pid) and the threads of one (counter).
pub fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "wnl-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Named namespaces that are deleted when this goes out of scope, even on panic.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// `count` fresh namespaces.
    pub fn create(count: usize) -> Self {
        let mut made = Self { names: Vec::new() };
        for _ in 0..count {
            let name = unique_name();
            netns::create(&name).unwrap_or_else(|e| panic!("creating {name}: {e}"));
            made.names.push(name);
        }
        made
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn path(&self, i: usize) -> PathBuf {
        netns::path(&self.names[i])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = netns::delete(name) {
                eprintln!("cleanup of {name} failed: {e}");
            }
        }
    }
}

/// Runs a command, returning its output whatever the exit status.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n NS ARGS…`, which must succeed.
pub fn ip_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run_ok("ip", &all)
}

/// `bridge -n NS ARGS…`, which must succeed.
pub fn bridge_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run_ok("bridge", &all)
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

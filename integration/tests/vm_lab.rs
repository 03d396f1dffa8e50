//! The VM lab's IPVS scenario in CI: `scripts/vm-lab test ipvs` boots two VMs on Debian's
//! own kernel (which has IPVS; the CI machine's kernel does not), runs the API server,
//! `weft node` and `weft proxy --proxy-mode ipvs` inside, and checks a Service end to end
//! (both backends answer the ClusterIP, `ipvsadm -Ln` shows two Masq real servers, the
//! NodePort answers from the other node, a connection survives a proxy restart, deleting a
//! pod updates the table). See `scripts/vm-lab --help`.
//!
//! The script's output streams to this test's stderr as it runs (not captured), and is also
//! written to `.vm-lab/test-<scenario>.log`; on failure the test fails with its last lines.
//! It has a hard time limit (`WEFT_VM_LAB_TEST_LIMIT` seconds, default 600), after which
//! the script is stopped (it removes its VMs on the way out).
//!
//! weft and weftctl are taken from where the other integration tests take them
//! (`$WEFT_BIN_DIR`, else `target/debug`): build them first (`cargo build --workspace
//! --bins`, as scripts/test does).
//!
//! Needs root; without it the test prints `SKIPPED` (with `CI` set it fails instead).
//! qemu and the kernel come from `scripts/vm-lab prepare`, which this test runs first
//! (scripts/install-deps runs it too): a missing qemu is never a skip.
//! `WEFT_VM_LAB_SCENARIO=nftables` runs the nftables mode instead, `=both` runs both.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace directory")
}

/// Writes straight to the process's stderr, past the test harness's capture, so CI shows
/// the scenario's progress while it runs.
fn stream(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    let why = "needs root (it runs qemu and, for 3+ VMs, makes taps)";
    if std::env::var_os("CI").is_some() {
        panic!("{test} {why} (CI is set, so this fails instead of skipping)");
    }
    println!("SKIPPED: {test} {why}");
    stream(&format!("SKIPPED: {test} {why}"));
    true
}

fn stop(child: &mut Child) {
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// Runs `scripts/vm-lab ARGS`, streaming its output; returns (success, whole output).
fn run_vm_lab(args: &[&str], limit: Duration, log: &Path) -> (bool, String) {
    let mut child = Command::new(repo().join("scripts/vm-lab"))
        .args(args)
        .current_dir(repo())
        // The binaries the other integration tests use (`cargo build --workspace --bins`).
        .env("WEFT_BIN_DIR", weft_integration::bin_dir())
        // The script's own watchdog stops the scenario a little before this test's limit.
        .env(
            "WEFT_VM_TEST_TIMEOUT",
            limit
                .saturating_sub(Duration::from_secs(45))
                .as_secs()
                .max(60)
                .to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("running scripts/vm-lab");
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|pipe| {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut file = std::fs::File::create(log).ok();
    let mut output = String::new();
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                stream(&line);
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            let msg = format!(
                "vm_lab test: scripts/vm-lab {} ran past {} s; stopping it",
                args.join(" "),
                limit.as_secs()
            );
            stream(&msg);
            output.push_str(&msg);
            output.push('\n');
            stop(&mut child);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().expect("waiting for scripts/vm-lab");
    (status.success() && !timed_out, output)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn ipvs_scenario_in_vms() {
    if skip_unless_root("ipvs_scenario_in_vms") {
        return;
    }
    let scenarios: Vec<&str> = match std::env::var("WEFT_VM_LAB_SCENARIO").as_deref() {
        Ok("nftables") => vec!["nftables"],
        Ok("both") => vec!["ipvs", "nftables"],
        Ok("ipvs") | Err(_) => vec!["ipvs"],
        Ok(other) => panic!("WEFT_VM_LAB_SCENARIO={other}: use ipvs, nftables or both"),
    };
    let limit = Duration::from_secs(
        std::env::var("WEFT_VM_LAB_TEST_LIMIT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    std::fs::create_dir_all(repo().join(".vm-lab")).expect("making .vm-lab");

    let log = repo().join(".vm-lab/prepare.log");
    let (ok, output) = run_vm_lab(&["prepare"], Duration::from_secs(600), &log);
    assert!(
        ok,
        "scripts/vm-lab prepare failed; last lines:\n{}",
        tail(&output, 40)
    );

    for scenario in scenarios {
        let log = repo().join(format!(".vm-lab/test-{scenario}.log"));
        let started = Instant::now();
        let (ok, output) = run_vm_lab(&["test", scenario], limit, &log);
        assert!(
            ok,
            "scripts/vm-lab test {scenario} failed after {} s (whole log: {}); last lines:\n{}",
            started.elapsed().as_secs(),
            log.display(),
            tail(&output, 60)
        );
        let pass = format!("PASS: vm-lab test {scenario}");
        assert!(
            output.contains(&pass),
            "scripts/vm-lab test {scenario} exited 0 without printing '{pass}'; last lines:\n{}",
            tail(&output, 60)
        );
    }
}

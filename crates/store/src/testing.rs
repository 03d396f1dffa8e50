//! A throwaway single-node etcd for tests, on free loopback ports with its data in a
//! temporary directory. The process is killed and the directory removed when the
//! [`EtcdProcess`] is dropped, which also happens when the test panics.
//!
//! ```no_run
//! # async fn t() {
//! let Some(etcd) = weft_store::testing::EtcdProcess::start() else {
//!     return; // etcd is not installed; a SKIPPED line was printed
//! };
//! let store = etcd.connect("/weft").await.unwrap();
//! # }
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EtcdStore, Result};

/// Where Debian's `etcd-server` package puts the binary. `WEFT_ETCD_BIN` overrides it.
pub const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";

/// How long etcd gets to report healthy. It usually needs about a second; a loaded CI machine
/// can need much more.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct EtcdProcess {
    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    child: Child,
    dir: tempfile::TempDir,
    bin: PathBuf,
    client_port: u16,
    peer_port: u16,
}

impl EtcdProcess {
    /// Starts etcd and waits until it is healthy.
    ///
    /// Returns `None` after printing `SKIPPED: etcd not installed ...` when the binary is
    /// missing, unless the `CI` environment variable is set: CI must run the etcd tests, so
    /// there it panics. Also panics if etcd is installed but does not come up (with its log).
    pub fn start() -> Option<EtcdProcess> {
        let bin = std::env::var_os("WEFT_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ETCD_BIN));
        if !bin.exists() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "etcd not installed at {} but CI is set, and CI must run the etcd tests \
                     (apt-get install etcd-server, or set WEFT_ETCD_BIN)",
                    bin.display()
                );
            }
            println!("SKIPPED: etcd not installed (apt-get install etcd-server)");
            return None;
        }
        // A free port found by binding port 0 can be taken by someone else before etcd binds
        // it; a few attempts with fresh ports make that race harmless.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(&bin) {
                Ok(p) => return Some(p),
                Err(e) => failures.push(e),
            }
        }
        panic!("etcd did not start:\n{}", failures.join("\n---\n"));
    }

    fn try_start(bin: &Path) -> Result<EtcdProcess, String> {
        let dir = tempfile::Builder::new()
            .prefix("weft-etcd-")
            .tempdir()
            .map_err(|e| format!("create etcd temp dir: {e}"))?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let child = spawn(bin, dir.path(), client_port, peer_port)?;
        // From here on, dropping `process` kills etcd, including on the error path below.
        let mut process = EtcdProcess {
            endpoint: format!("http://127.0.0.1:{client_port}"),
            child,
            dir,
            bin: bin.to_owned(),
            client_port,
            peer_port,
        };
        process.wait_healthy()?;
        Ok(process)
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("etcd.log");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "etcd exited with {status} during startup; log:\n{}",
                    log_tail(&log_path)
                ));
            }
            if healthy(self.client_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy after {START_TIMEOUT:?}; log:\n{}",
                    log_tail(&log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills etcd (SIGKILL) and starts it again on the same ports and data, waiting until it
    /// is healthy: for testing how clients ride out an etcd restart. Panics if it does not
    /// come back.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        match spawn(&self.bin, self.dir.path(), self.client_port, self.peer_port) {
            Ok(child) => self.child = child,
            Err(e) => panic!("etcd restart: {e}"),
        }
        if let Err(e) = self.wait_healthy() {
            panic!("etcd restart: {e}");
        }
    }

    /// The endpoint list for [`EtcdStore::connect`].
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }

    /// A store on this etcd, keys under `prefix`.
    pub async fn connect(&self, prefix: &str) -> Result<EtcdStore> {
        EtcdStore::connect(&self.endpoints(), prefix).await
    }

    /// The directory holding etcd's data and its log (`etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        // SIGKILL: the data is thrown away anyway, and it cannot be ignored or delayed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts etcd with its data in `dir/data` and its output appended to `dir/etcd.log`.
fn spawn(bin: &Path, dir: &Path, client_port: u16, peer_port: u16) -> Result<Child, String> {
    let log_path = dir.join("etcd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("open {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("clone etcd log handle: {e}"))?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    Command::new(bin)
        .arg("--name=default")
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=default={peer_url}"))
        // A lone member elects itself after one election timeout: keep it short so tests
        // start quickly (no peers, so no risk of spurious elections).
        .arg("--heartbeat-interval=50")
        .arg("--election-timeout=500")
        .arg("--logger=zap")
        .arg("--log-outputs=stderr")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

/// etcd's `/health` endpoint answers `{"health":"true",...}` once the member has a leader and
/// serves requests.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

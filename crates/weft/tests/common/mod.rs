//! Runs the real `weft apiserver` binary as a child process in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `weft apiserver` process; killed on drop, even when the test fails.
pub struct ApiServerProcess {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub url: String,
    pub token: String,
    pub ca_pem: String,
    pub log: PathBuf,
}

fn read_kubeconfig(path: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))?
        .trim()
        .trim_matches('"')
        .to_string();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))?
        .trim()
        .trim_matches('"')
        .to_string();
    let ca_b64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))?
        .trim()
        .trim_matches('"')
        .to_string();
    Some((server, token, ca_b64))
}

fn decode_base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

impl ApiServerProcess {
    pub fn start(data_dir: &Path, port: u16) -> ApiServerProcess {
        let log = PathBuf::from(format!("{}-apiserver-{port}.log", data_dir.display()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "apiserver",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("weft apiserver starts");
        let mut process = ApiServerProcess {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            port,
            url: String::new(),
            token: String::new(),
            ca_pem: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((server, token, ca)) = read_kubeconfig(&kubeconfig) {
                process.url = server;
                process.token = token;
                process.ca_pem = String::from_utf8(decode_base64(&ca)).expect("CA PEM");
                break;
            }
            if let Some(status) = process
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "weft apiserver exited ({status}): {}",
                    std::fs::read_to_string(&process.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "API server did not write its kubeconfig within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA"),
            )
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Waits until `/readyz` answers.
    pub async fn wait_ready(&self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client
                .get(format!("{}/readyz", self.url))
                .bearer_auth(&self.token)
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "API server not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for ApiServerProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

pub fn service(name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

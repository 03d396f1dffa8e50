//! Readiness probes, run by the agent the way the kubelet runs them: `httpGet` (a GET to
//! podIP:port, success for 200–399), `tcpSocket` (a connect) and `exec` (the command run
//! inside the pod through `pod-exec`, success for exit 0), every `periodSeconds` after
//! `initialDelaySeconds`, each attempt bounded by `timeoutSeconds`, and the container's
//! readiness flipping only after `successThreshold` / `failureThreshold` consecutive
//! results.
//!
//! Like the kubelet, probes connect from the node's network namespace: the pod IP is
//! reachable over the bridge. Connections and exec go through [`ProbeTransport`] so tests
//! run against listeners on 127.0.0.1.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weft_api::core::{Container, Probe};
use weft_api::IntOrString;

use crate::runtime::{command_in_pod, PodSandbox};

/// Output beyond this is not read: the kubelet keeps 10 KiB of probe output too.
const MAX_OUTPUT: usize = 10 * 1024;
/// Sent as the kubelet sends it; some applications recognise probes by this prefix.
const USER_AGENT: &str = "kube-probe/1.31";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error(
        "the probe sets {0} handlers; exactly one of httpGet, tcpSocket, exec, grpc is required"
    )]
    HandlerCount(usize),
    #[error("probe port {port:?} is not a port of container {container:?}")]
    NamedPortNotFound { port: String, container: String },
    #[error("probe port {0} is not in 1-65535")]
    PortOutOfRange(i32),
    #[error("{0} probes are not supported by the Weft agent yet")]
    Unsupported(&'static str),
}

/// What a probe attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    HttpGet {
        /// Empty: the pod IP.
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: String,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

/// A probe with its timings resolved (defaults applied, named ports looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSpec {
    /// Resolves `probe` for `container` with Kubernetes' defaults: period 10 s, timeout
    /// 1 s, success threshold 1, failure threshold 3, no initial delay.
    pub fn from_probe(probe: &Probe, container: &Container) -> Result<ProbeSpec, ProbeError> {
        let count = probe.handler_count();
        if count != 1 {
            return Err(ProbeError::HandlerCount(count));
        }
        let action = if let Some(http) = &probe.http_get {
            if http.scheme.eq_ignore_ascii_case("HTTPS") {
                return Err(ProbeError::Unsupported("HTTPS"));
            }
            let path = if http.path.is_empty() {
                "/".to_string()
            } else if http.path.starts_with('/') {
                http.path.clone()
            } else {
                format!("/{}", http.path)
            };
            ProbeAction::HttpGet {
                host: http.host.clone(),
                port: resolve_port(&http.port, container)?,
                path,
                headers: http
                    .http_headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            ProbeAction::TcpSocket {
                host: tcp.host.clone(),
                port: resolve_port(&tcp.port, container)?,
            }
        } else if let Some(exec) = &probe.exec {
            ProbeAction::Exec {
                command: exec.command.clone(),
            }
        } else {
            return Err(ProbeError::Unsupported("gRPC"));
        };
        let secs = |v: Option<i32>, default: u64, min: u64| {
            Duration::from_secs(
                v.map_or(default, |s| u64::try_from(s).unwrap_or(0))
                    .max(min),
            )
        };
        let count = |v: Option<i32>, default: u32| {
            v.map_or(default, |n| u32::try_from(n).unwrap_or(1).max(1))
        };
        Ok(ProbeSpec {
            action,
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        })
    }
}

/// A port number, or the name of one of the container's ports (only that container's, as
/// the kubelet resolves it).
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, ProbeError> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .find(|p| p.name == *name)
                .map(|p| p.container_port)
                .ok_or_else(|| ProbeError::NamedPortNotFound {
                    port: name.clone(),
                    container: container.name.clone(),
                })?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(ProbeError::PortOutOfRange(number))
}

/// A byte stream to the probed port.
pub trait ProbeConn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ProbeConn for T {}

/// How an exec probe's command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// stdout then stderr, at most 10 KiB of each.
    pub output: Vec<u8>,
}

/// The side effects a probe needs.
#[async_trait]
pub trait ProbeTransport: Send + Sync {
    async fn connect(&self, host: &str, port: u16) -> io::Result<Box<dyn ProbeConn>>;
    async fn exec(&self, command: &[String]) -> io::Result<ExecOutput>;
}

/// The real transport: TCP from the node, exec inside the pod through `pod-exec` with the
/// container's environment.
pub struct PodProbeTransport {
    pub pod_exec_binary: PathBuf,
    pub sandbox: PodSandbox,
    /// The container's environment, from [`crate::runtime::container_env`].
    pub env: Vec<(String, String)>,
}

#[async_trait]
impl ProbeTransport for PodProbeTransport {
    async fn connect(&self, host: &str, port: u16) -> io::Result<Box<dyn ProbeConn>> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        Ok(Box::new(stream))
    }

    async fn exec(&self, command: &[String]) -> io::Result<ExecOutput> {
        if command.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "exec probe has no command",
            ));
        }
        let mut cmd = command_in_pod(
            &self.pod_exec_binary,
            &self.sandbox,
            command,
            &self.env,
            None,
        );
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        // The command leads its own process group; if the probe times out (this future is
        // dropped) everything it started goes with it.
        let _group = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(GroupKiller);
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let (out, err, status) = tokio::join!(
            read_capped(stdout.as_mut()),
            read_capped(stderr.as_mut()),
            child.wait()
        );
        let status = status?;
        let mut output = out?;
        output.extend(err?);
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok(ExecOutput { exit_code, output })
    }
}

struct GroupKiller(i32);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<&mut R>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(reader) = reader {
        reader.take(MAX_OUTPUT as u64).read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// One attempt, bounded by the probe's timeout. `Err` carries the failure message.
pub async fn probe_once(
    spec: &ProbeSpec,
    pod_ip: IpAddr,
    transport: &dyn ProbeTransport,
) -> Result<(), String> {
    match tokio::time::timeout(spec.timeout, attempt(&spec.action, pod_ip, transport)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{} timed out after {:?}",
            describe(&spec.action, pod_ip),
            spec.timeout
        )),
    }
}

fn target(host: &str, pod_ip: IpAddr) -> String {
    if host.is_empty() {
        pod_ip.to_string()
    } else {
        host.to_string()
    }
}

/// `host:port`, with IPv6 literals bracketed.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

fn describe(action: &ProbeAction, pod_ip: IpAddr) -> String {
    match action {
        ProbeAction::HttpGet {
            host, port, path, ..
        } => format!(
            "GET http://{}{path}",
            host_port(&target(host, pod_ip), *port)
        ),
        ProbeAction::TcpSocket { host, port } => {
            format!("dial tcp {}", host_port(&target(host, pod_ip), *port))
        }
        ProbeAction::Exec { command } => format!("command {command:?}"),
    }
}

async fn attempt(
    action: &ProbeAction,
    pod_ip: IpAddr,
    transport: &dyn ProbeTransport,
) -> Result<(), String> {
    match action {
        ProbeAction::TcpSocket { host, port } => {
            let host = target(host, pod_ip);
            transport
                .connect(&host, *port)
                .await
                .map(drop)
                .map_err(|e| format!("{}: {e}", describe(action, pod_ip)))
        }
        ProbeAction::HttpGet {
            host,
            port,
            path,
            headers,
        } => {
            let connect_host = target(host, pod_ip);
            let mut conn = transport
                .connect(&connect_host, *port)
                .await
                .map_err(|e| format!("{}: {e}", describe(action, pod_ip)))?;
            let code = http_get(&mut conn, &host_port(&connect_host, *port), path, headers)
                .await
                .map_err(|e| format!("{}: {e}", describe(action, pod_ip)))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        ProbeAction::Exec { command } => {
            let out = transport
                .exec(command)
                .await
                .map_err(|e| format!("{}: {e}", describe(action, pod_ip)))?;
            if out.exit_code == 0 {
                Ok(())
            } else {
                let text = String::from_utf8_lossy(&out.output);
                Err(format!(
                    "{} exited with {}: {}",
                    describe(action, pod_ip),
                    out.exit_code,
                    text.trim_end()
                ))
            }
        }
    }
}

/// A minimal HTTP/1.1 GET returning the status code. `Connection: close`, as the kubelet
/// disables keep-alive for probes; redirects are not followed (3xx is already success).
async fn http_get(
    conn: &mut Box<dyn ProbeConn>,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut fields: Vec<(String, String)> = vec![
        ("Host".into(), authority.to_string()),
        ("User-Agent".into(), USER_AGENT.into()),
        ("Accept".into(), "*/*".into()),
    ];
    for (name, value) in headers {
        match fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(field) => field.1 = value.clone(),
            None => fields.push((name.clone(), value.clone())),
        }
    }
    fields.push(("Connection".into(), "close".into()));
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in &fields {
        if [name, value].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err(format!("header {name:?} contains a line break"));
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if path.contains(['\r', '\n', ' ']) {
        return Err(format!("path {path:?} contains whitespace"));
    }
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // Only the status line matters.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') {
        let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_OUTPUT {
            return Err("response status line too long".into());
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => Ok(code),
        _ => Err(format!(
            "malformed HTTP response: {:?}",
            line.lines().next().unwrap_or_default()
        )),
    }
}

/// Who is probed, for the updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub pod_uid: String,
    pub container: String,
    pub pod_ip: IpAddr,
}

/// A readiness transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub pod_uid: String,
    pub container: String,
    pub ready: bool,
    /// Why it became not ready (the last failure); empty when ready.
    pub message: String,
}

/// Probes one container instance until stopped or dropped. Readiness starts false and
/// each change is sent once. Start a new worker when the container restarts, as the
/// kubelet resets readiness with each new container.
pub struct ProbeWorker {
    task: JoinHandle<()>,
}

impl ProbeWorker {
    pub fn spawn(
        target: ProbeTarget,
        spec: ProbeSpec,
        transport: Arc<dyn ProbeTransport>,
        updates: mpsc::Sender<ProbeUpdate>,
    ) -> ProbeWorker {
        let task = tokio::spawn(async move {
            tokio::time::sleep(spec.initial_delay).await;
            let mut interval = tokio::time::interval(spec.period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ready = false;
            let mut last: Option<bool> = None;
            let mut run = 0u32;
            loop {
                interval.tick().await;
                let result = probe_once(&spec, target.pod_ip, transport.as_ref()).await;
                let ok = result.is_ok();
                if last == Some(ok) {
                    run = run.saturating_add(1);
                } else {
                    last = Some(ok);
                    run = 1;
                }
                let threshold = if ok {
                    spec.success_threshold
                } else {
                    spec.failure_threshold
                };
                if run < threshold || ok == ready {
                    continue;
                }
                ready = ok;
                let update = ProbeUpdate {
                    pod_uid: target.pod_uid.clone(),
                    container: target.container.clone(),
                    ready,
                    message: result.err().unwrap_or_default(),
                };
                if updates.send(update).await.is_err() {
                    return;
                }
            }
        });
        ProbeWorker { task }
    }

    /// Stops probing (as dropping the worker does).
    pub fn stop(self) {}
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::time::Instant;

    use tokio::net::TcpListener;
    use weft_api::core::{ContainerPort, ExecAction, HttpGetAction, TcpSocketAction};

    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Answers every request with the current status; counts requests.
    struct TestServer {
        addr: SocketAddr,
        status: Arc<AtomicU16>,
        hits: Arc<AtomicUsize>,
    }

    async fn server(status: u16) -> TestServer {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let status = Arc::new(AtomicU16::new(status));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (Arc::clone(&status), Arc::clone(&hits));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (s, h) = (Arc::clone(&s), Arc::clone(&h));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut req = Vec::new();
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let code = s.load(Ordering::SeqCst);
                    let resp = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        TestServer { addr, status, hits }
    }

    fn transport() -> Arc<dyn ProbeTransport> {
        Arc::new(PodProbeTransport {
            pod_exec_binary: "/nonexistent/weft".into(),
            sandbox: PodSandbox {
                uid: "u".into(),
                namespace: "default".into(),
                name: "p".into(),
                netns_path: None,
                resolv_conf_path: None,
                hosts_path: None,
                hostname: None,
                log_dir: std::env::temp_dir(),
            },
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        })
    }

    fn spec(action: ProbeAction, success: u32, failure: u32) -> ProbeSpec {
        ProbeSpec {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn http(port: u16) -> ProbeAction {
        ProbeAction::HttpGet {
            host: String::new(),
            port,
            path: "/healthz".into(),
            headers: vec![],
        }
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_uid: "uid".into(),
            container: "web".into(),
            pod_ip: LOCALHOST,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<ProbeUpdate>) -> ProbeUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("update in time")
            .expect("channel open")
    }

    #[test]
    fn from_probe_applies_defaults_and_named_ports() {
        let container = Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: "http".into(),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        };
        let probe = Probe {
            http_get: Some(HttpGetAction {
                path: "ready".into(),
                port: IntOrString::String("http".into()),
                host: String::new(),
                scheme: String::new(),
                http_headers: vec![],
            }),
            ..Default::default()
        };
        let spec = ProbeSpec::from_probe(&probe, &container).expect("spec");
        assert_eq!(
            spec,
            ProbeSpec {
                action: ProbeAction::HttpGet {
                    host: String::new(),
                    port: 8080,
                    path: "/ready".into(),
                    headers: vec![],
                },
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let missing = Probe {
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::String("metrics".into()),
                host: String::new(),
            }),
            ..Default::default()
        };
        assert_eq!(
            ProbeSpec::from_probe(&missing, &container),
            Err(ProbeError::NamedPortNotFound {
                port: "metrics".into(),
                container: "web".into()
            })
        );
        assert_eq!(
            ProbeSpec::from_probe(&Probe::default(), &container),
            Err(ProbeError::HandlerCount(0))
        );
        let exec = Probe {
            exec: Some(ExecAction {
                command: vec!["true".into()],
            }),
            period_seconds: Some(0),
            success_threshold: Some(2),
            ..Default::default()
        };
        let spec = ProbeSpec::from_probe(&exec, &container).expect("exec");
        assert_eq!(
            spec.period,
            Duration::from_secs(1),
            "period has a floor of 1 s"
        );
        assert_eq!(spec.success_threshold, 2);
    }

    #[tokio::test]
    async fn http_200_is_ready_after_success_threshold() {
        let srv = server(200).await;
        let (tx, mut rx) = mpsc::channel(4);
        let started = Instant::now();
        let _worker =
            ProbeWorker::spawn(target(), spec(http(srv.addr.port()), 3, 1), transport(), tx);
        let update = next(&mut rx).await;
        assert!(update.ready);
        assert_eq!(
            (update.pod_uid.as_str(), update.container.as_str()),
            ("uid", "web")
        );
        assert!(
            srv.hits.load(Ordering::SeqCst) >= 3,
            "three successes first"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "two periods"
        );
    }

    #[tokio::test]
    async fn http_500_is_not_ready_after_failure_threshold() {
        let srv = server(200).await;
        let (tx, mut rx) = mpsc::channel(4);
        let _worker =
            ProbeWorker::spawn(target(), spec(http(srv.addr.port()), 1, 3), transport(), tx);
        assert!(next(&mut rx).await.ready);
        srv.status.store(500, Ordering::SeqCst);
        let hits_at_switch = srv.hits.load(Ordering::SeqCst);
        let update = next(&mut rx).await;
        assert!(!update.ready);
        assert_eq!(update.message, "HTTP probe failed with statuscode: 500");
        // Three failures in a row; one may have been counted just before the switch.
        assert!(srv.hits.load(Ordering::SeqCst) >= hits_at_switch + 2);
        // Redirects count as success, as in the kubelet.
        srv.status.store(302, Ordering::SeqCst);
        assert!(next(&mut rx).await.ready);
    }

    #[tokio::test]
    async fn tcp_refused_and_accepted() {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tcp = spec(
            ProbeAction::TcpSocket {
                host: String::new(),
                port,
            },
            1,
            1,
        );
        assert_eq!(
            probe_once(&tcp, LOCALHOST, transport().as_ref()).await,
            Ok(())
        );
        drop(listener);
        let err = probe_once(&tcp, LOCALHOST, transport().as_ref())
            .await
            .expect_err("refused");
        assert!(
            err.starts_with(&format!("dial tcp 127.0.0.1:{port}: ")),
            "{err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn exec_exit_codes() {
        let ok = spec(
            ProbeAction::Exec {
                command: vec!["sh".into(), "-c".into(), "exit 0".into()],
            },
            1,
            1,
        );
        assert_eq!(
            probe_once(&ok, LOCALHOST, transport().as_ref()).await,
            Ok(())
        );
        let fail = spec(
            ProbeAction::Exec {
                command: vec!["sh".into(), "-c".into(), "echo not yet; exit 2".into()],
            },
            1,
            1,
        );
        let err = probe_once(&fail, LOCALHOST, transport().as_ref())
            .await
            .expect_err("exit 2");
        assert!(err.ends_with("exited with 2: not yet"), "{err}");
        // Through a worker: exit 0 makes the container ready.
        let (tx, mut rx) = mpsc::channel(4);
        let _worker = ProbeWorker::spawn(target(), ok, transport(), tx);
        assert!(next(&mut rx).await.ready);
    }

    #[tokio::test]
    async fn timeouts_fail_the_probe() {
        // Accepts and never answers.
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let mut slow = spec(http(port), 1, 1);
        slow.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let err = probe_once(&slow, LOCALHOST, transport().as_ref())
            .await
            .expect_err("timeout");
        assert!(err.contains("timed out after 200ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("late");
        let mut sleepy = spec(
            ProbeAction::Exec {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("sleep 1; touch {}", marker.display()),
                ],
            },
            1,
            1,
        );
        sleepy.timeout = Duration::from_millis(200);
        let err = probe_once(&sleepy, LOCALHOST, transport().as_ref())
            .await
            .expect_err("timeout");
        assert!(err.contains("timed out"), "{err}");
        // The timed-out command was killed, not left to finish.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn initial_delay_holds_the_first_probe() {
        let srv = server(200).await;
        let (tx, mut rx) = mpsc::channel(4);
        let mut delayed = spec(http(srv.addr.port()), 1, 1);
        delayed.initial_delay = Duration::from_millis(300);
        let started = Instant::now();
        let _worker = ProbeWorker::spawn(target(), delayed, transport(), tx);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(srv.hits.load(Ordering::SeqCst), 0);
        assert!(next(&mut rx).await.ready);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}

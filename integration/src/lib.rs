//! The namespace-tier harness for Weft's node agent: a throwaway cluster on one machine.
//!
//! [`Lab::start`] does what `scripts/lab up` does, with names of its own so tests run in
//! parallel: a host bridge `<prefix>br` holding `172.30.<k>.1/24` (no uplink, nothing else
//! attached), and per node `i` (numbered from 1, like their names `node1`, `node2`, …) a
//! network namespace `<prefix>node<i>` joined to the bridge by a veth (host end
//! `<prefix>n<i>`, node end `eth0` = `172.30.<k>.(10+i)/24`, default route via `.1`,
//! `ip_forward=1`); `weft apiserver` on the bridge address (a free port), a node token and
//! kubeconfig per node, and `weft node` in each node namespace. It returns once every Node
//! is Ready. The prefix is `wt<pid % 10000, 4 digits><counter>-`; `<k>` is the first subnet
//! no interface of the machine and no other live lab uses.
//!
//! Dropping the [`Lab`] tears everything down, also when the test panics: the agents and
//! the API server are killed, every pod namespace of this lab (the pods the API lists, the
//! uids found in the agents' state dirs, and any `weft-*` namespace whose `eth0` is peered
//! with one of this lab's nodes) is deleted with the processes inside it, then the node
//! namespaces, veths and the bridge. Each live lab is recorded in `/run/weft-integration/`;
//! a lab whose test process died without cleaning up (SIGKILL) is removed by the next
//! `Lab::start`. On panic the last lines of every log are printed, and `WEFT_KEEP_LAB=1`
//! keeps the lab's directory (logs, state) for inspection.
//!
//! The binaries are not built by `cargo test` for this package: run
//! `cargo build --workspace --bins` first (`scripts/test` does). They are looked for in
//! `$WEFT_BIN_DIR`, else `$CARGO_TARGET_DIR/debug`, else `target/debug` of the workspace.
//! Tools used from the host: `ip`, `bridge`, `nsenter` and `setpriv` (util-linux), `curl`,
//! `ping`, `socat`, `nft` (`scripts/install-deps` installs them).
//!
//! The API server and the agents run under `setpriv --pdeathsig KILL`, so they die with
//! the thread that started them even if the test process is killed: keep a `Lab` on the
//! thread that made it.
//!
//! Agents are started with `nsenter --net=…`, not `ip netns exec`: the latter gives the
//! agent a private mount namespace, so the pod namespaces it bind-mounts on `/run/netns`
//! would be invisible to the host (`ip netns exec weft-…` from a test) and to a restarted
//! agent.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// Where live labs are recorded (one file per lab, named by its prefix).
const REGISTRY: &str = "/run/weft-integration";
/// The pod network every lab's API server hands podCIDRs from.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The VXLAN device the agent makes on every node.
pub const VXLAN_DEV: &str = "weft.1";
/// The bridge the agent makes on every node.
pub const POD_BRIDGE: &str = "weft0";
/// The port `weft echo-server` listens on in [`echo_pod`].
pub const ECHO_PORT: u16 = 8080;

/// Host tools the harness and the tests run.
const TOOLS: &[&str] = &[
    "ip", "bridge", "nsenter", "setpriv", "curl", "ping", "socat", "nft",
];

/// True when a namespace test can run here. Without root (or a tool) it prints
/// `SKIPPED: …` and returns false, unless `CI` is set: then that is a failure.
pub fn can_run(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root".to_string()
    } else {
        let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
        if missing.is_empty() {
            return true;
        }
        format!("needs {} (run scripts/install-deps)", missing.join(", "))
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test} {why} (CI is set, so this fails instead of skipping)");
    }
    println!("SKIPPED: {test} {why}");
    false
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(tool).is_file())
}

/// Where `weft` and `weftctl` are: `$WEFT_BIN_DIR`, `$CARGO_TARGET_DIR/debug`, or the
/// workspace's `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir).join("debug"),
        None => workspace.join("target").join("debug"),
    }
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` before these tests \
         (scripts/test does), or point WEFT_BIN_DIR at the binaries",
        path.display()
    );
    path
}

/// A pod's network namespace as the agent names it: `weft-` and the first 12 hex digits
/// of the uid (dashes dropped).
pub fn pod_netns_name(uid: &str) -> String {
    let digits: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("weft-{}", digits.to_ascii_lowercase())
}

/// A Pod manifest (JSON, which `weftctl apply` reads as YAML): one container running
/// `command`, bound to `node` when given (else the scheduler picks).
pub fn pod_manifest(namespace: &str, name: &str, node: Option<&str>, command: &[&str]) -> String {
    let mut spec = json!({
        "containers": [{"name": "main", "image": "weft/toolbox", "command": command}],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    })
    .to_string()
}

/// A pod running `weft echo-server --port 8080`.
pub fn echo_pod(namespace: &str, name: &str, node: Option<&str>) -> String {
    pod_manifest(
        namespace,
        name,
        node,
        &["weft", "echo-server", "--port", &ECHO_PORT.to_string()],
    )
}

/// A pod that only sleeps.
pub fn sleep_pod(namespace: &str, name: &str, node: Option<&str>) -> String {
    pod_manifest(namespace, name, node, &["sleep", "infinity"])
}

/// The answer of `weft echo-server`: `hostname=H podIP=IP client=IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub hostname: String,
    pub pod_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    pub client_port: u16,
}

impl EchoReply {
    pub fn parse(answer: &str) -> Option<EchoReply> {
        let mut fields = BTreeMap::new();
        for word in answer.split_whitespace() {
            let (k, v) = word.split_once('=')?;
            fields.insert(k, v);
        }
        let client: SocketAddr = fields.get("client")?.parse().ok()?;
        let SocketAddr::V4(client) = client else {
            return None;
        };
        Some(EchoReply {
            hostname: fields.get("hostname")?.to_string(),
            pod_ip: fields.get("podIP")?.parse().ok()?,
            client_ip: *client.ip(),
            client_port: client.port(),
        })
    }
}

/// One node of a [`Lab`].
#[derive(Debug)]
pub struct LabNode {
    /// The Node's name in the API: `node<i>`.
    pub name: String,
    /// The node's network namespace (`ip netns exec NAME …`, `ip -n NAME …`).
    pub netns: String,
    /// The node's underlay address (its `eth0`).
    pub ip: Ipv4Addr,
    /// The agent's `--state-dir`.
    pub state_dir: PathBuf,
    pub log: PathBuf,
    veth: String,
    kubeconfig: PathBuf,
    agent: Option<Child>,
}

/// What a node must hold for a remote node, per the overlay design: a route to its
/// podCIDR via its gateway (`.0`) on the VXLAN device, a permanent neighbour entry for the
/// gateway with the peer's VTEP MAC, and an FDB entry sending that MAC to its underlay IP.
#[derive(Debug, Clone)]
pub struct Peer {
    pub pod_cidr: String,
    pub gateway: Ipv4Addr,
    pub vtep_mac: String,
    pub underlay_ip: Ipv4Addr,
}

/// Which of a [`Peer`]'s entries a node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEntries {
    pub route: bool,
    pub neigh: bool,
    pub fdb: bool,
}

impl PeerEntries {
    pub fn all(self) -> bool {
        self.route && self.neigh && self.fdb
    }
    pub fn none(self) -> bool {
        !self.route && !self.neigh && !self.fdb
    }
}

/// A throwaway cluster: see the crate documentation.
pub struct Lab {
    prefix: String,
    subnet: u8,
    dir: PathBuf,
    bridge: String,
    nodes: Vec<LabNode>,
    apiserver: Option<Child>,
    kubeconfig: PathBuf,
    weft: PathBuf,
    weftctl: PathBuf,
    outside: Option<Child>,
    uids: Mutex<BTreeSet<String>>,
    manifests: AtomicUsize,
}

impl Lab {
    /// Starts a lab of `nodes` nodes and waits until they are Ready. Panics (after
    /// cleaning up) when something does not come up.
    pub fn start(nodes: usize) -> Lab {
        assert!((1..=200).contains(&nodes), "a lab has 1..=200 nodes");
        let weft = binary("weft");
        let weftctl = binary("weftctl");
        reap_stale_labs();
        let (prefix, subnet, dir) = claim();
        let mut lab = Lab {
            bridge: format!("{prefix}br"),
            kubeconfig: dir.join("data").join("admin.kubeconfig"),
            prefix,
            subnet,
            dir,
            nodes: Vec::new(),
            apiserver: None,
            weft,
            weftctl,
            outside: None,
            uids: Mutex::new(BTreeSet::new()),
            manifests: AtomicUsize::new(0),
        };
        // From here on, a panic drops `lab`, which removes whatever exists so far.
        ip_ok(&["link", "add", &lab.bridge, "type", "bridge"]);
        let address = format!("{}/24", lab.underlay_ip(1));
        ip_ok(&["addr", "add", &address, "dev", &lab.bridge]);
        ip_ok(&["link", "set", &lab.bridge, "up"]);
        for i in 1..=nodes {
            lab.add_node_namespace(i);
        }
        lab.start_apiserver();
        for i in 1..=nodes {
            lab.mint_node_token(i);
            lab.start_agent(i);
        }
        lab.wait_nodes_ready(Duration::from_secs(90));
        lab
    }

    /// This lab's name prefix (`wt…-`): every namespace and host link it makes starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `172.30.<k>.<host>` on this lab's underlay.
    pub fn underlay_ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 30, self.subnet, host)
    }

    /// The lab's directory: API server data, kubeconfigs, agents' state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`, numbered from 1.
    pub fn node(&self, i: usize) -> &LabNode {
        assert!(
            (1..=self.nodes.len()).contains(&i),
            "node {i}: this lab has nodes 1..={}",
            self.nodes.len()
        );
        &self.nodes[i - 1]
    }

    fn node_mut(&mut self, i: usize) -> &mut LabNode {
        assert!((1..=self.nodes.len()).contains(&i), "no node {i}");
        &mut self.nodes[i - 1]
    }

    // ------------------------------------------------------------------ setup

    fn add_node_namespace(&mut self, i: usize) {
        let host = u8::try_from(10 + i).expect("node number");
        let node = LabNode {
            name: format!("node{i}"),
            netns: format!("{}node{i}", self.prefix),
            ip: self.underlay_ip(host),
            state_dir: self.dir.join(format!("node{i}")),
            log: self.dir.join(format!("node{i}.log")),
            veth: format!("{}n{i}", self.prefix),
            kubeconfig: self.dir.join(format!("node{i}.kubeconfig")),
            agent: None,
        };
        let (netns, veth, ip) = (node.netns.clone(), node.veth.clone(), node.ip);
        self.nodes.push(node);
        self.attach_namespace(&netns, &veth, ip);
        ip_ok(&[
            "netns",
            "exec",
            &netns,
            "sh",
            "-c",
            "echo 1 >/proc/sys/net/ipv4/ip_forward",
        ]);
    }

    /// A namespace joined to the underlay bridge: `eth0` with `ip/24`, `lo` up, default
    /// route via the bridge address.
    fn attach_namespace(&self, netns: &str, veth: &str, ip: Ipv4Addr) {
        ip_ok(&["netns", "add", netns]);
        ip_ok(&[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ]);
        ip_ok(&["link", "set", veth, "master", &self.bridge, "up"]);
        ip_ok(&["-n", netns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", netns, "link", "set", "eth0", "up"]);
        let gateway = self.underlay_ip(1).to_string();
        ip_ok(&["-n", netns, "route", "add", "default", "via", &gateway]);
    }

    fn start_apiserver(&mut self) {
        let log = open_log(&self.dir.join("apiserver.log"));
        let address = self.underlay_ip(1).to_string();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(&self.weft)
            .arg("apiserver")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--bind-address", &address, "--secure-port", "0"])
            .args(["--advertise-address", &address])
            .args(["--cluster-cidr", CLUSTER_CIDR])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting weft apiserver");
        self.apiserver = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.kubeconfig.exists() && self.weftctl(&["get", "ns"]).status.success() {
                return;
            }
            if let Some(status) = self
                .apiserver
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("weft apiserver exited ({status}); see the log below");
            }
            assert!(
                Instant::now() < deadline,
                "weft apiserver did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn mint_node_token(&self, i: usize) {
        let node = self.node(i);
        let out = Command::new(&self.weft)
            .args(["token", "create", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--node", &node.name, "--kubeconfig-out"])
            .arg(&node.kubeconfig)
            .output()
            .expect("running weft token create");
        assert!(
            out.status.success(),
            "weft token create --node {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_nodes_ready(&self, timeout: Duration) {
        let want = self.nodes.len();
        self.wait_until(timeout, &format!("{want} Ready node(s)"), || {
            let list = self.get_json(&["get", "nodes"])?;
            let ready = list["items"]
                .as_array()?
                .iter()
                .filter(|n| condition_true(n, "Ready"))
                .count();
            (ready >= want).then_some(())
        });
    }

    // ----------------------------------------------------------------- agents

    /// Starts node `i`'s agent (`weft node`) in its namespace; its output is appended to
    /// the node's log. Panics if it is running already.
    pub fn start_agent(&mut self, i: usize) {
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let weft = self.weft.clone();
        let node = self.node_mut(i);
        assert!(
            node.agent.is_none(),
            "the agent of {} is running",
            node.name
        );
        fs::create_dir_all(&node.state_dir).expect("state dir");
        let mut log = open_log(&node.log);
        let _ = writeln!(
            log,
            "==== weft-integration: starting the agent of {}",
            node.name
        );
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "nsenter"])
            .arg(format!("--net=/run/netns/{}", node.netns))
            .arg("--")
            .arg(weft)
            .args(["node", "--kubeconfig"])
            .arg(&node.kubeconfig)
            .args(["--node-name", &node.name, "--node-ip", &node.ip.to_string()])
            .arg("--state-dir")
            .arg(&node.state_dir)
            .args(["--cluster-cidr", CLUSTER_CIDR])
            // Containers' commands (`weft echo-server`) find this build's weft first.
            .env("PATH", path)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting weft node");
        node.agent = Some(child);
    }

    /// Kills node `i`'s agent with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill_agent(&mut self, i: usize) {
        let node = self.node_mut(i);
        let mut child = node
            .agent
            .take()
            .unwrap_or_else(|| panic!("the agent of {} is not running", node.name));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops node `i`'s agent with SIGTERM (SIGKILL after 10 s).
    pub fn stop_agent(&mut self, i: usize) {
        let node = self.node_mut(i);
        if let Some(mut child) = node.agent.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Whether node `i`'s agent process is alive.
    pub fn agent_running(&mut self, i: usize) -> bool {
        match self.node_mut(i).agent.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Takes node `i` out of the cluster: stops its agent, then deletes its Node object.
    /// Its namespace (and its pods' namespaces) stay until the lab is dropped.
    pub fn remove_node(&mut self, i: usize) {
        self.stop_agent(i);
        let name = self.node(i).name.clone();
        self.weftctl_ok(&["delete", "node", &name]);
    }

    // -------------------------------------------------------------------- API

    /// Runs `weftctl --kubeconfig <admin> ARGS…`.
    pub fn weftctl(&self, args: &[&str]) -> Output {
        Command::new(&self.weftctl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running weftctl")
    }

    /// Runs weftctl and panics unless it succeeds; returns its stdout.
    pub fn weftctl_ok(&self, args: &[&str]) -> String {
        let out = self.weftctl(args);
        assert!(
            out.status.success(),
            "weftctl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `weftctl ARGS… -o json`, parsed; None when weftctl fails (e.g. not found).
    pub fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.weftctl(&all);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `weftctl apply -f` of a manifest (YAML or JSON, one or more documents).
    pub fn apply(&self, manifest: &str) {
        let n = self.manifests.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("manifest-{n}.yaml"));
        fs::write(&path, manifest).expect("writing a manifest");
        let path = path.to_string_lossy();
        let args = ["apply", "-f", &path];
        // Apply is idempotent: a failure that persists for 10 s is reported (a busy
        // machine can time a request out once).
        if retry(Duration::from_secs(10), || {
            self.weftctl(&args).status.success().then_some(())
        })
        .is_none()
        {
            self.weftctl_ok(&args);
        }
    }

    /// The Pod, or None when it does not exist.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        let pod = self.get_json(&["get", "pod", name, "-n", namespace])?;
        if let Some(uid) = pod["metadata"]["uid"].as_str() {
            self.uids.lock().unwrap().insert(uid.to_string());
        }
        Some(pod)
    }

    /// Every pod in the namespace.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        let list = self
            .get_json(&["get", "pods", "-n", namespace])
            .expect("listing pods");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let mut uids = self.uids.lock().unwrap();
        for pod in &items {
            if let Some(uid) = pod["metadata"]["uid"].as_str() {
                uids.insert(uid.to_string());
            }
        }
        items
    }

    /// The Node object of node `i`.
    pub fn node_object(&self, i: usize) -> Value {
        let name = &self.node(i).name;
        self.get_json(&["get", "node", name])
            .unwrap_or_else(|| panic!("getting node {name}"))
    }

    /// Waits (60 s) until the pod is Running with an address; returns the address and the
    /// name of its node.
    pub fn wait_pod_running(&self, namespace: &str, name: &str) -> (Ipv4Addr, String) {
        self.wait_until(
            Duration::from_secs(60),
            &format!("pod {namespace}/{name} Running with an IP"),
            || running_ip(&self.pod(namespace, name)?),
        )
    }

    /// Waits (60 s) until the pod is Running and Ready; returns like [`Lab::wait_pod_running`].
    pub fn wait_pod_ready(&self, namespace: &str, name: &str) -> (Ipv4Addr, String) {
        self.wait_until(
            Duration::from_secs(60),
            &format!("pod {namespace}/{name} Ready"),
            || {
                let pod = self.pod(namespace, name)?;
                if !condition_true(&pod, "Ready") {
                    return None;
                }
                running_ip(&pod)
            },
        )
    }

    /// `weftctl delete pod`, then waits (30 s) until the API no longer has it.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.pod(namespace, name); // remembers the uid for the teardown
        self.weftctl_ok(&["delete", "pod", name, "-n", namespace]);
        self.wait_until(
            Duration::from_secs(30),
            &format!("pod {namespace}/{name} gone from the API"),
            || self.pod(namespace, name).is_none().then_some(()),
        );
    }

    /// Waits until the Endpoints `namespace/name` hold exactly the addresses of nodes
    /// `nodes` (Services served by the node agents themselves: kube-dns, weft-router).
    pub fn wait_endpoints_are_nodes(&self, namespace: &str, name: &str, nodes: &[usize]) {
        let mut want: Vec<String> = nodes.iter().map(|&i| self.node(i).ip.to_string()).collect();
        want.sort();
        self.wait_until(
            Duration::from_secs(30),
            &format!("Endpoints {namespace}/{name} to list nodes {nodes:?}"),
            || {
                let ep = self.get_json(&["get", "endpoints", name, "-n", namespace])?;
                let mut ips: Vec<String> = ep["subsets"]
                    .as_array()?
                    .iter()
                    .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
                    .filter_map(|a| a["ip"].as_str().map(str::to_string))
                    .collect();
                ips.sort();
                (ips == want).then_some(())
            },
        );
    }

    /// The pod's network namespace name (from its uid).
    pub fn pod_netns(&self, namespace: &str, name: &str) -> String {
        let pod = self
            .pod(namespace, name)
            .unwrap_or_else(|| panic!("no pod {namespace}/{name}"));
        let uid = pod["metadata"]["uid"].as_str().expect("pod uid");
        pod_netns_name(uid)
    }

    // ------------------------------------------------------------- commands

    /// Runs `argv` as the pod's containers would: in its network namespace, with its
    /// resolv.conf and hosts (`weft pod-exec`), so names resolve through cluster DNS.
    pub fn exec_in_pod(&self, namespace: &str, name: &str, argv: &[&str]) -> Output {
        run(&mut self.pod_command(namespace, name, argv))
    }

    /// Starts `argv` as [`Lab::exec_in_pod`] would, with stdout piped, without waiting.
    /// The caller kills and reaps it.
    pub fn spawn_in_pod(&self, namespace: &str, name: &str, argv: &[&str]) -> Child {
        self.pod_command(namespace, name, argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?} in pod {namespace}/{name}: {e}"))
    }

    fn pod_command(&self, namespace: &str, name: &str, argv: &[&str]) -> Command {
        let pod = self
            .pod(namespace, name)
            .unwrap_or_else(|| panic!("no pod {namespace}/{name}"));
        let uid = pod["metadata"]["uid"].as_str().expect("pod uid");
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == node_name)
            .unwrap_or_else(|| panic!("pod {namespace}/{name} is not on a lab node"));
        let files = node.state_dir.join("pods").join(uid);
        let mut command = Command::new(&self.weft);
        command
            .args(["pod-exec", "--netns"])
            .arg(format!("/run/netns/{}", pod_netns_name(uid)))
            .arg("--resolv")
            .arg(files.join("resolv.conf"))
            .arg("--hosts")
            .arg(files.join("hosts"))
            .arg("--")
            .args(argv);
        command
    }

    /// Runs `argv` inside node `i`'s network namespace.
    pub fn exec_on_node(&self, i: usize, argv: &[&str]) -> Output {
        let netns = self.node(i).netns.clone();
        run(Command::new("ip")
            .args(["netns", "exec", &netns])
            .args(argv))
    }

    /// `curl` from inside a pod, retried for up to 15 s until it answers; the body.
    pub fn http_get_from_pod(&self, namespace: &str, name: &str, url: &str) -> String {
        self.wait_until(
            Duration::from_secs(15),
            &format!("{url} to answer pod {namespace}/{name}"),
            || {
                let out = self.exec_in_pod(namespace, name, &curl_argv(url));
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        )
    }

    /// `curl` from node `i`'s namespace, retried for up to 15 s; the body.
    pub fn http_get_from_node(&self, i: usize, url: &str) -> String {
        self.wait_until(
            Duration::from_secs(15),
            &format!("{url} to answer node {i}"),
            || {
                let out = self.exec_on_node(i, &curl_argv(url));
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        )
    }

    /// Whether `ping` from the pod to `ip` gets an answer within 10 s.
    pub fn ping_from_pod(&self, namespace: &str, name: &str, ip: Ipv4Addr) -> bool {
        let target = ip.to_string();
        retry(Duration::from_secs(10), || {
            let argv = ["ping", "-n", "-q", "-c", "1", "-W", "1", &target];
            self.exec_in_pod(namespace, name, &argv)
                .status
                .success()
                .then_some(())
        })
        .is_some()
    }

    /// Whether `ping` from node `i` to `ip` gets an answer within 10 s.
    pub fn ping_from_node(&self, i: usize, ip: Ipv4Addr) -> bool {
        let target = ip.to_string();
        retry(Duration::from_secs(10), || {
            let argv = ["ping", "-n", "-q", "-c", "1", "-W", "1", &target];
            self.exec_on_node(i, &argv).status.success().then_some(())
        })
        .is_some()
    }

    /// A TCP connection opened from node `i`'s network namespace (the socket stays in
    /// that namespace; the calling thread does not move).
    pub fn connect_from_node(&self, i: usize, to: SocketAddr) -> std::io::Result<TcpStream> {
        let ns = File::open(format!("/run/netns/{}", self.node(i).netns))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                TcpStream::connect_timeout(&to, Duration::from_secs(5))
            })
            .join()
            .expect("connect thread")
        })
    }

    /// An "outside" host: namespace `<prefix>out` on the underlay at `.250`, running
    /// `weft echo-server` on port 8080 (answering as `outside`). Returns its address.
    pub fn add_outside(&mut self) -> Ipv4Addr {
        assert!(self.outside.is_none(), "the outside host exists already");
        let netns = format!("{}out", self.prefix);
        let ip = self.underlay_ip(250);
        self.attach_namespace(&netns, &format!("{}o", self.prefix), ip);
        let log = open_log(&self.dir.join("outside.log"));
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "nsenter"])
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("--")
            .arg(&self.weft)
            .args(["echo-server", "--port", &ECHO_PORT.to_string()])
            .args(["--hostname", "outside"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting the outside echo server");
        self.outside = Some(child);
        let url = format!("http://127.0.0.1:{ECHO_PORT}/healthz");
        self.wait_until(Duration::from_secs(15), "the outside echo server", || {
            run(Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(curl_argv(&url)))
            .status
            .success()
            .then_some(())
        });
        ip
    }

    // ---------------------------------------------------------------- kernel

    /// Node `i` as a peer of the others: its podCIDR (API), VTEP MAC (its VXLAN device)
    /// and underlay address.
    pub fn peer(&self, i: usize) -> Peer {
        let node = self.node_object(i);
        let pod_cidr = node["spec"]["podCIDR"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("node {i} has no podCIDR"))
            .to_string();
        let gateway: Ipv4Addr = pod_cidr
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("podCIDR address");
        let netns = self.node(i).netns.clone();
        let link = self.wait_until(
            Duration::from_secs(30),
            &format!("{VXLAN_DEV} on node {i}"),
            || {
                let out =
                    run(Command::new("ip").args(["-n", &netns, "-j", "link", "show", VXLAN_DEV]));
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                v[0]["address"].as_str().map(str::to_ascii_lowercase)
            },
        );
        Peer {
            pod_cidr,
            gateway,
            vtep_mac: link,
            underlay_ip: self.node(i).ip,
        }
    }

    /// Which of `peer`'s route, neighbour and FDB entries node `i` holds.
    pub fn peer_entries(&self, i: usize, peer: &Peer) -> PeerEntries {
        let netns = &self.node(i).netns;
        let json = |cmd: &mut Command| -> Vec<Value> {
            let out = run(cmd);
            serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
        };
        let gateway = peer.gateway.to_string();
        let routes =
            json(Command::new("ip").args(["-n", netns, "-j", "route", "show", &peer.pod_cidr]));
        let route = routes.iter().any(|r| {
            r["dev"] == VXLAN_DEV
                && (r["dst"] == peer.pod_cidr.as_str()
                    || peer.pod_cidr.ends_with("/32") && r["dst"] == gateway.as_str())
        });
        let neighs =
            json(Command::new("ip").args(["-n", netns, "-j", "neigh", "show", "dev", VXLAN_DEV]));
        let neigh = neighs.iter().any(|n| {
            n["dst"] == gateway.as_str()
                && n["lladdr"].as_str().map(str::to_ascii_lowercase).as_deref()
                    == Some(peer.vtep_mac.as_str())
        });
        let fdbs =
            json(Command::new("bridge").args(["-n", netns, "-j", "fdb", "show", "dev", VXLAN_DEV]));
        let underlay = peer.underlay_ip.to_string();
        let fdb = fdbs.iter().any(|f| {
            f["mac"].as_str().map(str::to_ascii_lowercase).as_deref()
                == Some(peer.vtep_mac.as_str())
                && f["dst"] == underlay.as_str()
        });
        PeerEntries { route, neigh, fdb }
    }

    /// The addresses node `i`'s IPAM holds, with their owners: files named by an IPv4
    /// address anywhere under the agent's state dir (host-local layout).
    pub fn ipam_allocations(&self, i: usize) -> BTreeMap<Ipv4Addr, String> {
        let mut found = BTreeMap::new();
        walk(&self.node(i).state_dir, &mut |path| {
            if let Some(ip) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            {
                let owner = fs::read_to_string(path).unwrap_or_default();
                found.insert(ip, owner.trim().to_string());
            }
        });
        found
    }

    // ---------------------------------------------------------------- waiting

    /// Calls `f` every 200 ms until it returns Some, for at most `timeout`; panics naming
    /// `what` when time runs out (the lab's logs are printed as it drops).
    pub fn wait_until<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
        retry(timeout, f)
            .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
    }

    // --------------------------------------------------------------- teardown

    fn dump_diagnostics(&self) {
        eprintln!(
            "==== weft-integration lab {} ({}) failed; diagnostics:",
            self.prefix,
            self.dir.display()
        );
        if self.apiserver.is_some() {
            for args in [
                &["get", "nodes", "-o", "wide"][..],
                &["get", "pods", "-A", "-o", "wide"][..],
            ] {
                let out = self.weftctl(args);
                eprintln!(
                    "---- weftctl {}\n{}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut logs = vec![self.dir.join("apiserver.log")];
        logs.extend(self.nodes.iter().map(|n| n.log.clone()));
        logs.push(self.dir.join("outside.log"));
        for log in logs {
            if let Ok(text) = fs::read_to_string(&log) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("---- last lines of {}\n{}", log.display(), tail.join("\n"));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump_diagnostics();
        }
        // Every pod the API knows, before the API server goes.
        let mut uids = std::mem::take(&mut *self.uids.lock().unwrap_or_else(|e| e.into_inner()));
        if self.apiserver.is_some() {
            if let Some(list) = self.get_json(&["get", "pods", "-A"]) {
                for pod in list["items"].as_array().into_iter().flatten() {
                    if let Some(uid) = pod["metadata"]["uid"].as_str() {
                        uids.insert(uid.to_string());
                    }
                }
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.agent.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for child in [self.apiserver.take(), self.outside.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let errors = teardown(&self.prefix, &self.dir, uids);
        for e in &errors {
            eprintln!("weft-integration teardown of {}: {e}", self.prefix);
        }
        let _ = fs::remove_file(Path::new(REGISTRY).join(&self.prefix));
        if std::env::var_os("WEFT_KEEP_LAB").is_some() {
            eprintln!("WEFT_KEEP_LAB: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if !errors.is_empty() && !failed {
            panic!("tearing down lab {}: {}", self.prefix, errors.join("; "));
        }
    }
}

// ------------------------------------------------------------------ lab registry

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Picks a free prefix and subnet and records the lab, under the registry lock, so
/// parallel tests (threads or processes) never collide: the record claims both.
fn claim() -> (String, u8, PathBuf) {
    fs::create_dir_all(REGISTRY).expect("creating /run/weft-integration");
    let _lock = registry_lock();
    let pid = std::process::id();
    let prefix = loop {
        let prefix = format!(
            "wt{:04}{}-",
            pid % 10_000,
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        if !link_exists(&format!("{prefix}br")) && !Path::new(REGISTRY).join(&prefix).exists() {
            break prefix;
        }
    };
    let mut used: BTreeSet<u8> = BTreeSet::new();
    let addrs = run(Command::new("ip").args(["-o", "-4", "addr", "show"]));
    for word in String::from_utf8_lossy(&addrs.stdout).split_whitespace() {
        let mut octets = word.split(['.', '/']);
        if let (Some("172"), Some("30"), Some(k)) = (octets.next(), octets.next(), octets.next()) {
            if let Ok(k) = k.parse() {
                used.insert(k);
            }
        }
    }
    for entry in registry_entries() {
        if let Some(k) = entry.subnet {
            used.insert(k);
        }
    }
    let subnet = (1..=254u8)
        .find(|k| !used.contains(k))
        .expect("no free 172.30.<k>.0/24 for another lab");
    let dir = std::env::temp_dir().join(format!("weft-it-{prefix}{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating the lab dir");
    let me = proc_start_time(pid).unwrap_or_default();
    fs::write(
        Path::new(REGISTRY).join(&prefix),
        format!(
            "pid={pid}\nstart={me}\nsubnet={subnet}\ndir={}\n",
            dir.display()
        ),
    )
    .expect("recording the lab");
    (prefix, subnet, dir)
}

fn registry_lock() -> Flock<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(REGISTRY).join(".lock"))
        .expect("opening the registry lock");
    Flock::lock(file, FlockArg::LockExclusive).expect("locking the registry")
}

struct RegistryEntry {
    prefix: String,
    pid: u32,
    start: u64,
    subnet: Option<u8>,
    dir: Option<PathBuf>,
}

impl RegistryEntry {
    fn alive(&self) -> bool {
        proc_start_time(self.pid) == Some(self.start)
    }
}

fn registry_entries() -> Vec<RegistryEntry> {
    let Ok(dir) = fs::read_dir(REGISTRY) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for entry in dir.flatten() {
        let prefix = entry.file_name().to_string_lossy().into_owned();
        if !prefix.starts_with("wt") {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
        };
        entries.push(RegistryEntry {
            pid: field("pid").and_then(|v| v.parse().ok()).unwrap_or(0),
            start: field("start").and_then(|v| v.parse().ok()).unwrap_or(0),
            subnet: field("subnet").and_then(|v| v.parse().ok()),
            dir: field("dir").map(PathBuf::from),
            prefix,
        });
    }
    entries
}

/// Removes labs whose test process is gone (killed before its `Drop` ran).
fn reap_stale_labs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if fs::create_dir_all(REGISTRY).is_err() {
            return;
        }
        let _lock = registry_lock();
        for entry in registry_entries() {
            if entry.alive() {
                continue;
            }
            eprintln!(
                "weft-integration: removing lab {} left by process {}",
                entry.prefix, entry.pid
            );
            let dir = entry.dir.clone().unwrap_or_default();
            // Its agents and API server died with pdeathsig; pod processes are killed
            // with their namespaces.
            for e in teardown(&entry.prefix, &dir, BTreeSet::new()) {
                eprintln!("weft-integration: {e}");
            }
            if entry.dir.is_some() {
                let _ = fs::remove_dir_all(&dir);
            }
            let _ = fs::remove_file(Path::new(REGISTRY).join(&entry.prefix));
        }
    });
}

/// Deletes, by name, everything a lab made: pod namespaces (of `uids`, of uids found in
/// the lab dir, and those peered with the lab's node namespaces), the lab's namespaces,
/// its host links. Goes on past failures and returns them.
fn teardown(prefix: &str, dir: &Path, mut uids: BTreeSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut processes = BTreeSet::new();
    if dir.as_os_str().len() > 1 {
        walk(dir, &mut |path| {
            if let Some(name) = path.to_str() {
                find_uuids(name, &mut uids);
            }
            let size = fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
            if size > 1024 * 1024 {
                return;
            }
            if let Ok(bytes) = fs::read(path) {
                if size <= 64 * 1024 {
                    find_uuids(&String::from_utf8_lossy(&bytes), &mut uids);
                }
                if path.extension().is_some_and(|e| e == "json") {
                    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                        find_processes(&v, &mut processes);
                    }
                }
            }
        });
    }
    // The pods' processes, as the agents' runtime recorded them: they outlive the agents
    // on purpose (a restarted agent re-adopts them). Killed with their process groups.
    for (pid, start) in processes {
        if proc_start_time(pid) != Some(start) {
            continue; // gone, or the pid now belongs to someone else
        }
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        let pid = Pid::from_raw(raw);
        if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
            let _ = killpg(pid, Signal::SIGKILL);
        } else {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    let named = list_netns();
    let ours: Vec<String> = named
        .iter()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect();
    let mut pod_namespaces: BTreeSet<String> = uids.iter().map(|u| pod_netns_name(u)).collect();
    for ns in named.iter().filter(|n| n.starts_with("weft-")) {
        let out = run(Command::new("ip").args(["-n", ns, "-o", "link", "show"]));
        let text = String::from_utf8_lossy(&out.stdout);
        let peered = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "link-netns" && ours.iter().any(|o| o == w[1]));
        if peered {
            pod_namespaces.insert(ns.clone());
        }
    }
    for ns in pod_namespaces.iter().chain(ours.iter()) {
        if let Err(e) = delete_netns(ns) {
            errors.push(e);
        }
    }
    let links = run(Command::new("ip").args(["-o", "link", "show"]));
    let mut host_links: Vec<String> = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    // Veths first (most went with their namespaces already), the bridge last.
    host_links.sort_by_key(|n| n.ends_with("br"));
    for link in host_links {
        let out = run(Command::new("ip").args(["link", "del", &link]));
        if !out.status.success() && link_exists(&link) {
            errors.push(format!(
                "ip link del {link}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    errors
}

/// Kills every process in the namespace, then deletes it. Absent is fine.
fn delete_netns(ns: &str) -> Result<(), String> {
    let path = Path::new("/run/netns").join(ns);
    if !path.exists() {
        return Ok(());
    }
    for _ in 0..3 {
        let out = run(Command::new("ip").args(["netns", "pids", ns]));
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(Command::new("ip").args(["netns", "del", ns]));
    if out.status.success() || !path.exists() {
        Ok(())
    } else {
        Err(format!(
            "ip netns del {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ------------------------------------------------------------------------ helpers

fn list_netns() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn link_exists(name: &str) -> bool {
    run(Command::new("ip").args(["link", "show", "dev", name]))
        .status
        .success()
}

/// Field 22 of `/proc/PID/stat`: when the process started (tells a reused pid apart).
fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Every `{"pid": P, "start_ticks": T, ...}` object in a runtime record.
fn find_processes(v: &Value, out: &mut BTreeSet<(u32, u64)>) {
    match v {
        Value::Object(map) => {
            if let (Some(pid), Some(start)) = (
                map.get("pid").and_then(Value::as_u64),
                map.get("start_ticks").and_then(Value::as_u64),
            ) {
                if let Ok(pid) = u32::try_from(pid) {
                    out.insert((pid, start));
                }
            }
            map.values().for_each(|v| find_processes(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| find_processes(v, out)),
        _ => {}
    }
}

fn find_uuids(text: &str, out: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let is_uuid = |s: &[u8]| {
        s.iter().enumerate().all(|(j, c)| {
            if matches!(j, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
    };
    let mut i = 0;
    while i + 36 <= bytes.len() {
        if is_uuid(&bytes[i..i + 36]) {
            out.insert(text[i..i + 36].to_ascii_lowercase());
            i += 36;
        } else {
            i += 1;
        }
    }
}

/// Visits every regular file under `dir` (symlinks not followed).
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), f);
        } else if kind.is_file() {
            f(&entry.path());
        }
    }
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn ip_ok(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn curl_argv(url: &str) -> Vec<&str> {
    vec!["curl", "-sS", "--fail", "--max-time", "3", url]
}

fn retry<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if retry(grace, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// `status.phase == Running` with a `podIP`: the address and the node.
fn running_ip(pod: &Value) -> Option<(Ipv4Addr, String)> {
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ip = pod["status"]["podIP"].as_str()?.parse().ok()?;
    let node = pod["spec"]["nodeName"].as_str()?.to_string();
    Some((ip, node))
}

fn condition_true(object: &Value, type_: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// Sends `line` (newline added) on a connection to a line echo and reads the echo back.
pub fn echo_roundtrip(stream: &mut TcpStream, line: &str) -> std::io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        match stream.read(&mut byte)? {
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection was closed",
                ))
            }
            _ => got.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&got).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_netns_names_match_the_agents() {
        assert_eq!(
            pod_netns_name("3f2a9c1e-77b0-4c1d-9e8f-0123456789ab"),
            "weft-3f2a9c1e77b0"
        );
    }

    #[test]
    fn echo_replies_parse() {
        let r =
            EchoReply::parse("hostname=echo-1 podIP=10.244.0.2 client=10.244.1.3:45448\n").unwrap();
        assert_eq!(r.hostname, "echo-1");
        assert_eq!(r.pod_ip, Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(r.client_ip, Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(r.client_port, 45448);
        assert!(EchoReply::parse("not an answer").is_none());
    }

    #[test]
    fn uuids_are_found_in_text() {
        let mut found = BTreeSet::new();
        find_uuids(
            "x/3F2A9C1E-77b0-4c1d-9e8f-0123456789ab/y 11111111-2222-3333-4444-555555555555",
            &mut found,
        );
        assert_eq!(found.len(), 2);
        assert!(found.contains("3f2a9c1e-77b0-4c1d-9e8f-0123456789ab"));
    }

    #[test]
    fn runtime_records_name_their_processes() {
        let record = json!({"containers": [
            {"name": "a", "process": {"pid": 42, "start_ticks": 7}},
            {"name": "b", "process": null},
        ]});
        let mut found = BTreeSet::new();
        find_processes(&record, &mut found);
        assert_eq!(found.into_iter().collect::<Vec<_>>(), vec![(42, 7)]);
    }

    #[test]
    fn pod_manifests_are_valid_json() {
        let m: Value = serde_json::from_str(&pod_manifest(
            "default",
            "a",
            Some("node1"),
            &["sleep", "1"],
        ))
        .unwrap();
        assert_eq!(m["spec"]["nodeName"], "node1");
        assert_eq!(m["spec"]["containers"][0]["command"][1], "1");
    }
}

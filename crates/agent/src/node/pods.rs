//! The pods bound to this node: desired (from the API) against running (from the runtime
//! and the state dir). New pods get an address, a network and their processes; pods gone
//! from the API are stopped and their network and address released; every pod's status is
//! written back when it changes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use weft_api::core::Pod;
use weft_api::meta::now_timestamp;
use weft_api::resources::POD;
use weft_client::Client;
use weft_netlink::Netlink;

use super::host::HostNetwork;
use super::status::{pod_status, same_status, status_patch, Readiness};
use super::{sandbox, NodeConfig, NodeError};
use crate::ipam::Ipam;
use crate::podfiles::{self, ClusterDns};
use crate::probes::{PodProbeTransport, ProbeSpec, ProbeTarget, ProbeUpdate, ProbeWorker};
use crate::runtime::{container_env, PodRuntime, PodSandbox, ProcessRuntime, ProcessRuntimeConfig};

pub struct PodManager {
    client: Client,
    nl: Netlink,
    host: HostNetwork,
    node_ip: Ipv4Addr,
    state_dir: PathBuf,
    dns: ClusterDns,
    ipam: Ipam,
    runtime: Arc<ProcessRuntime>,
    pod_exec: PathBuf,
    /// Pods whose network was built or checked by this agent process.
    networked: HashSet<String>,
    /// uid → first time this agent saw it running (the pod's startTime).
    started: HashMap<String, String>,
    /// (uid, container) → the worker and the restart count it was started for.
    probes: HashMap<(String, String), (ProbeWorker, i32)>,
    readiness: HashMap<String, Readiness>,
    probe_tx: mpsc::Sender<ProbeUpdate>,
    probe_rx: mpsc::Receiver<ProbeUpdate>,
}

impl PodManager {
    pub async fn open(
        config: &NodeConfig,
        client: Client,
        nl: Netlink,
        host: HostNetwork,
    ) -> Result<Self, NodeError> {
        let ipam = Ipam::open(config.state_dir.join("ipam"), host.pod_cidr)
            .map_err(|e| NodeError::Config(format!("IPAM: {e}")))?;
        let runtime_config =
            ProcessRuntimeConfig::new(config.state_dir.join("runtime")).map_err(|e| {
                NodeError::Config(format!("locating the weft binary for pod-exec: {e}"))
            })?;
        let pod_exec = runtime_config.pod_exec_binary.clone();
        let runtime = ProcessRuntime::open(runtime_config)
            .await
            .map_err(|e| NodeError::Config(format!("opening the runtime: {e}")))?;
        let (probe_tx, probe_rx) = mpsc::channel(256);
        Ok(PodManager {
            client,
            nl,
            host,
            node_ip: config.node_ip,
            state_dir: config.state_dir.clone(),
            dns: ClusterDns {
                nameserver: config.cluster_dns,
                zone: config.cluster_domain.clone(),
            },
            ipam,
            runtime: Arc::new(runtime),
            pod_exec,
            networked: HashSet::new(),
            started: HashMap::new(),
            probes: HashMap::new(),
            readiness: HashMap::new(),
            probe_tx,
            probe_rx,
        })
    }

    pub fn runtime(&self) -> Arc<ProcessRuntime> {
        self.runtime.clone()
    }

    pub async fn probe_updates(&mut self) -> Option<ProbeUpdate> {
        self.probe_rx.recv().await
    }

    pub fn record_probe(&mut self, update: ProbeUpdate) {
        self.readiness
            .entry(update.pod_uid)
            .or_default()
            .insert(update.container, update.ready);
    }

    pub async fn shutdown(self) {
        drop(self.probes);
        if let Ok(runtime) = Arc::try_unwrap(self.runtime) {
            runtime.shutdown().await;
        }
    }

    /// One reconcile round over the pods bound to this node: all of them (`only` None), or
    /// just the pods with these uids (new, changed, deleted, or with a probe result).
    pub async fn sync(&mut self, pods: &[Pod], only: Option<&HashSet<String>>) {
        let desired: HashMap<String, &Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.uid.clone().map(|uid| (uid, p)))
            .collect();
        let wanted = |uid: &str| only.is_none_or(|o| o.contains(uid));
        // Stop what is no longer wanted first: its address may be needed by a new pod.
        let running = match self.runtime.list().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing running pods failed");
                return;
            }
        };
        for sandbox in running
            .iter()
            .filter(|s| wanted(&s.uid) && !desired.contains_key(&s.uid))
        {
            if let Err(e) = self.remove(&sandbox.uid).await {
                tracing::warn!(pod = %format!("{}/{}", sandbox.namespace, sandbox.name), error = %e, "removing pod failed; will retry");
            }
        }
        // Addresses or networks left by a pod whose processes were never recorded.
        let running_uids: HashSet<&str> = running.iter().map(|s| s.uid.as_str()).collect();
        for alloc in self.ipam.allocations() {
            if wanted(&alloc.owner)
                && !desired.contains_key(&alloc.owner)
                && !running_uids.contains(alloc.owner.as_str())
            {
                if let Err(e) = self.remove(&alloc.owner).await {
                    tracing::warn!(owner = %alloc.owner, error = %e, "releasing a leftover address failed");
                }
            }
        }
        for (uid, pod) in desired.into_iter().filter(|(uid, _)| wanted(uid)) {
            if let Err(e) = self.ensure(uid.as_str(), pod).await {
                tracing::warn!(pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name), error = %e, "pod not ready yet; will retry");
            }
        }
    }

    fn sandbox_for(
        &self,
        uid: &str,
        pod: &Pod,
        netns: PathBuf,
        files: &podfiles::PodFilePaths,
    ) -> Result<PodSandbox, NodeError> {
        let (hostname, _) = podfiles::hostname_and_domain(pod, &self.dns.zone)
            .map_err(|e| NodeError::Pod(e.to_string()))?;
        Ok(PodSandbox {
            uid: uid.to_string(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone(),
            netns_path: Some(netns),
            resolv_conf_path: Some(files.resolv_conf.clone()),
            hosts_path: Some(files.hosts.clone()),
            hostname: Some(hostname),
            log_dir: podfiles::pod_dir(&self.state_dir, uid).join("logs"),
        })
    }

    async fn ensure(&mut self, uid: &str, pod: &Pod) -> Result<(), NodeError> {
        let ip = self
            .ipam
            .allocate(uid)
            .map_err(|e| NodeError::Pod(format!("allocating an address: {e}")))?;
        let netns = if self.networked.contains(uid) {
            weft_netlink::netns::path(&sandbox::netns_name(uid))
        } else {
            let path = sandbox::setup(&self.nl, &self.host, uid, ip).await?;
            self.networked.insert(uid.to_string());
            path
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = podfiles::resolv_conf(pod, &self.dns, &host_resolv)
            .map_err(|e| NodeError::Pod(e.to_string()))?;
        let hosts = podfiles::hosts_file(pod, IpAddr::V4(ip), &self.dns.zone)
            .map_err(|e| NodeError::Pod(e.to_string()))?;
        let files =
            podfiles::write_pod_files(&podfiles::pod_dir(&self.state_dir, uid), &resolv, &hosts)
                .map_err(|e| NodeError::Pod(format!("writing resolv.conf and hosts: {e}")))?;
        let sandbox = self.sandbox_for(uid, pod, netns, &files)?;
        let mut with_ip = pod.clone();
        with_ip.status.pod_ip = ip.to_string();
        self.runtime
            .start_pod(&sandbox, &with_ip)
            .await
            .map_err(|e| NodeError::Pod(format!("starting containers: {e}")))?;
        let runtime_status = self
            .runtime
            .pod_status(uid)
            .await
            .map_err(|e| NodeError::Pod(format!("reading container states: {e}")))?;
        self.ensure_probes(uid, &with_ip, &sandbox, ip, &runtime_status.containers);
        let start = self
            .started
            .entry(uid.to_string())
            .or_insert_with(|| pod.status.start_time.clone().unwrap_or_else(now_timestamp))
            .clone();
        let readiness = self.readiness.get(uid).cloned().unwrap_or_default();
        let wanted = pod_status(
            pod,
            &runtime_status,
            &readiness,
            ip,
            self.node_ip,
            &start,
            &now_timestamp(),
        );
        if !same_status(pod, &wanted) {
            let ns = pod.metadata.namespace.as_deref();
            self.client
                .patch_status_merge(&POD, ns, &pod.metadata.name, &status_patch(pod, &wanted))
                .await
                .map_err(|e| NodeError::Pod(format!("writing status: {e}")))?;
        }
        Ok(())
    }

    /// One readiness worker per container with a probe, restarted when the container
    /// restarts (readiness starts over, as with the kubelet).
    fn ensure_probes(
        &mut self,
        uid: &str,
        pod: &Pod,
        sandbox: &PodSandbox,
        ip: Ipv4Addr,
        statuses: &[weft_api::core::ContainerStatus],
    ) {
        for container in pod.spec.containers.iter() {
            let Some(probe) = &container.readiness_probe else {
                continue;
            };
            let restarts = statuses
                .iter()
                .find(|s| s.name == container.name)
                .map_or(0, |s| s.restart_count);
            let key = (uid.to_string(), container.name.clone());
            if self.probes.get(&key).is_some_and(|(_, r)| *r == restarts) {
                continue;
            }
            let spec = match ProbeSpec::from_probe(probe, container) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%uid, container = %container.name, error = %e, "readiness probe not run");
                    continue;
                }
            };
            let env = container_env(pod, sandbox, container).unwrap_or_default();
            let transport = Arc::new(PodProbeTransport {
                pod_exec_binary: self.pod_exec.clone(),
                sandbox: sandbox.clone(),
                env,
            });
            let target = ProbeTarget {
                pod_uid: uid.to_string(),
                container: container.name.clone(),
                pod_ip: IpAddr::V4(ip),
            };
            self.readiness
                .entry(uid.to_string())
                .or_default()
                .insert(container.name.clone(), false);
            let worker = ProbeWorker::spawn(target, spec, transport, self.probe_tx.clone());
            self.probes.insert(key, (worker, restarts));
        }
    }

    /// Stops a pod and releases everything it held. Each step is done even if an earlier
    /// one failed, so cleanup goes as far as it can; the first error is returned.
    async fn remove(&mut self, uid: &str) -> Result<(), NodeError> {
        let mut first_error = None;
        self.probes.retain(|(u, _), _| u != uid);
        self.readiness.remove(uid);
        self.started.remove(uid);
        if let Err(e) = self.runtime.stop_pod(uid, None).await {
            first_error.get_or_insert(NodeError::Pod(format!("stopping: {e}")));
        }
        if let Err(e) = sandbox::teardown(&self.nl, uid).await {
            first_error.get_or_insert(e);
        }
        self.networked.remove(uid);
        if let Err(e) = self.ipam.release(uid) {
            first_error.get_or_insert(NodeError::Pod(format!("releasing the address: {e}")));
        }
        let dir = podfiles::pod_dir(&self.state_dir, uid);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                first_error
                    .get_or_insert(NodeError::Pod(format!("removing {}: {e}", dir.display())));
            }
        }
        tracing::info!(%uid, "pod removed from this node");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

//! Controllers that run inside the API server: endpoints (Service selector × Pods →
//! Endpoints), the scheduler (binds pending Pods to the least-loaded Ready Node) and node
//! lifecycle (stale heartbeat → Node Ready Unknown and its Pods not Ready).
//!
//! One loop keeps a cache of Services, Pods, Nodes and Endpoints from list + watch, marks
//! what an event affects as dirty, and reconciles only that: a change to one Service touches
//! only that Service's Endpoints, whatever the total.

pub mod endpoints;
pub mod nodes;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{select_all, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use weft_api::core::{Endpoints, Node, Pod, Service, ANNOTATION_SERVED_BY_NODES};
use weft_api::meta::{now_timestamp, with_condition};
use weft_api::resources::{ENDPOINTS, NODE, POD, SERVICE};
use weft_api::ResourceInfo;
use weft_store::{EventType, Revision};

use crate::error::{ApiError, ApiResult};
use crate::filter::Filter;
use crate::registry::{Part, Registry};

#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    /// A Node whose heartbeat is older than this is marked NotReady.
    pub node_monitor_grace: Duration,
    /// How often heartbeats are checked.
    pub node_monitor_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            node_monitor_grace: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
        }
    }
}

pub fn spawn(
    registry: Arc<Registry>,
    settings: Settings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if !settings.enabled {
        return;
    }
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        loop {
            let run = run_once(&registry, &settings);
            tokio::select! {
                result = run => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "controllers restarting from a fresh list");
                    }
                }
                _ = shutdown.changed() => return,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

type Key = (String, String);

#[derive(Default)]
struct Cache {
    services: BTreeMap<Key, Service>,
    pods: BTreeMap<Key, Pod>,
    nodes: BTreeMap<String, Node>,
    endpoints: BTreeMap<Key, Endpoints>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Service,
    Pod,
    Node,
    Endpoints,
}

type Change = (Kind, EventType, Value);
type ChangeStream = Pin<Box<dyn Stream<Item = ApiResult<Change>> + Send>>;

fn key_of(value: &Value) -> Key {
    let meta = &value["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("").to_string(),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

fn decode<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_json::from_value(value).map_err(|e| ApiError::Internal(format!("controller cache: {e}")))
}

async fn list_and_watch(
    registry: &Registry,
    info: &'static ResourceInfo,
    kind: Kind,
) -> ApiResult<(Vec<Value>, ChangeStream)> {
    let (items, rev): (Vec<Value>, Revision) =
        registry.list(info, None, &Filter::default()).await?;
    let stream = registry.watch(info, None, rev).await?;
    Ok((
        items,
        Box::pin(stream.map(move |e| e.map(|(t, v)| (kind, t, v)))),
    ))
}

#[derive(Default)]
struct Dirty {
    services: BTreeSet<Key>,
    pending_pods: BTreeSet<Key>,
}

impl Cache {
    fn apply(
        &mut self,
        kind: Kind,
        event: EventType,
        value: Value,
        dirty: &mut Dirty,
    ) -> ApiResult<()> {
        let key = key_of(&value);
        let deleted = event == EventType::Deleted;
        match kind {
            Kind::Service => {
                dirty.services.insert(key.clone());
                if deleted {
                    self.services.remove(&key);
                } else {
                    self.services.insert(key, decode(value)?);
                }
            }
            Kind::Pod => {
                let pod: Pod = decode(value)?;
                // Services selecting the pod before or after the change need a look.
                let before = self.pods.get(&key).map(|p| p.metadata.labels.clone());
                for (svc_key, svc) in self.services.range((key.0.clone(), String::new())..) {
                    if svc_key.0 != key.0 {
                        break;
                    }
                    if svc.selects(&pod.metadata.labels)
                        || before.as_ref().is_some_and(|l| svc.selects(l))
                    {
                        dirty.services.insert(svc_key.clone());
                    }
                }
                if deleted {
                    self.pods.remove(&key);
                    dirty.pending_pods.remove(&key);
                } else {
                    if scheduler::needs_scheduling(&pod) {
                        dirty.pending_pods.insert(key.clone());
                    }
                    self.pods.insert(key, pod);
                }
            }
            Kind::Node => {
                // Services served by nodes (kube-dns) follow every node's readiness.
                dirty.services.extend(
                    self.services
                        .iter()
                        .filter(|(_, s)| {
                            s.metadata
                                .annotations
                                .contains_key(ANNOTATION_SERVED_BY_NODES)
                        })
                        .map(|(k, _)| k.clone()),
                );
                let name = key.1;
                if deleted {
                    self.nodes.remove(&name);
                } else {
                    let node: Node = decode(value)?;
                    let became_ready =
                        node.is_ready() && !self.nodes.get(&name).is_some_and(Node::is_ready);
                    self.nodes.insert(name, node);
                    if became_ready {
                        // Pods that waited for a node may fit now.
                        dirty.pending_pods.extend(
                            self.pods
                                .iter()
                                .filter(|(_, p)| scheduler::needs_scheduling(p))
                                .map(|(k, _)| k.clone()),
                        );
                    }
                }
            }
            Kind::Endpoints => {
                if deleted {
                    self.endpoints.remove(&key);
                } else {
                    let ep: Endpoints = decode(value)?;
                    if let Some(svc) = self.services.get(&key) {
                        // Someone else changed managed Endpoints: put them back.
                        if endpoints::desired_endpoints_with_nodes(
                            svc,
                            self.pods.values(),
                            self.nodes.values(),
                        )
                        .is_some_and(|d| !endpoints::endpoints_match(&ep, &d))
                        {
                            dirty.services.insert(key.clone());
                        }
                    }
                    self.endpoints.insert(key, ep);
                }
            }
        }
        Ok(())
    }
}

async fn run_once(registry: &Registry, settings: &Settings) -> ApiResult<()> {
    let mut cache = Cache::default();
    let mut dirty = Dirty::default();
    let mut streams = Vec::new();
    for (info, kind) in [
        (&SERVICE, Kind::Service),
        (&POD, Kind::Pod),
        (&NODE, Kind::Node),
        (&ENDPOINTS, Kind::Endpoints),
    ] {
        let (items, stream) = list_and_watch(registry, info, kind).await?;
        for item in items {
            cache.apply(kind, EventType::Added, item, &mut dirty)?;
        }
        streams.push(stream);
    }
    let mut changes = select_all(streams);
    let mut ticker = tokio::time::interval(settings.node_monitor_period);
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else {
                    return Err(ApiError::Internal("watch ended".into()));
                };
                let (kind, event, value) = change?;
                cache.apply(kind, event, value, &mut dirty)?;
                // Take whatever else is already queued before reconciling: bursts coalesce.
                while let Some(Some(more)) = futures::FutureExt::now_or_never(changes.next()) {
                    let (kind, event, value) = more?;
                    cache.apply(kind, event, value, &mut dirty)?;
                }
            }
            _ = ticker.tick() => {
                monitor_nodes(registry, &cache, settings).await;
            }
        }
        reconcile_endpoints(registry, &mut cache, &mut dirty).await;
        schedule(registry, &mut cache, &mut dirty).await;
    }
}

async fn reconcile_endpoints(registry: &Registry, cache: &mut Cache, dirty: &mut Dirty) {
    let keys: Vec<Key> = std::mem::take(&mut dirty.services).into_iter().collect();
    for key in keys {
        let ns = key.0.as_str();
        let desired = cache.services.get(&key).and_then(|svc| {
            endpoints::desired_endpoints_with_nodes(
                svc,
                cache
                    .pods
                    .range((key.0.clone(), String::new())..)
                    .take_while(|(k, _)| k.0 == key.0)
                    .map(|(_, p)| p),
                cache.nodes.values(),
            )
        });
        let result = match (desired, cache.endpoints.get(&key)) {
            (None, Some(_)) if !cache.services.contains_key(&key) => registry
                .delete(&ENDPOINTS, Some(ns), &key.1, None)
                .await
                .map(|_| None),
            (None, _) => Ok(None),
            (Some(d), Some(current)) if endpoints::endpoints_match(current, &d) => Ok(None),
            (Some(d), current) => {
                let mut value = json!(d);
                match current {
                    Some(c) => {
                        value["metadata"]["resourceVersion"] = json!(c.metadata.resource_version);
                        registry
                            .update(&ENDPOINTS, Some(ns), &key.1, value, Part::Main)
                            .await
                            .map(|(v, _)| Some(v))
                    }
                    None => match registry.create(&ENDPOINTS, Some(ns), value.clone()).await {
                        // Created by hand or by an earlier run that the cache has not seen yet.
                        Err(ApiError::AlreadyExists { .. }) => registry
                            .update(&ENDPOINTS, Some(ns), &key.1, value, Part::Main)
                            .await
                            .map(|(v, _)| Some(v)),
                        other => other.map(Some),
                    },
                }
            }
        };
        match result {
            Ok(Some(written)) => {
                if let Ok(ep) = decode::<Endpoints>(written) {
                    cache.endpoints.insert(key, ep);
                }
            }
            Ok(None) => {}
            Err(ApiError::NotFound { .. }) => {
                cache.endpoints.remove(&key);
            }
            Err(e) => {
                tracing::warn!(namespace = %key.0, service = %key.1, error = %e, "endpoints not written; will retry");
                dirty.services.insert(key);
            }
        }
    }
}

async fn schedule(registry: &Registry, cache: &mut Cache, dirty: &mut Dirty) {
    let keys: Vec<Key> = std::mem::take(&mut dirty.pending_pods)
        .into_iter()
        .collect();
    for key in keys {
        let Some(pod) = cache.pods.get(&key) else {
            continue;
        };
        if !scheduler::needs_scheduling(pod) {
            continue;
        }
        let Some(node) = scheduler::pick_node(pod, cache.nodes.values(), cache.pods.values())
        else {
            tracing::info!(namespace = %key.0, pod = %key.1, "no Ready node fits; pod stays pending");
            continue;
        };
        match registry.bind_pod(&key.0, &key.1, &node).await {
            Ok(bound) => {
                tracing::info!(namespace = %key.0, pod = %key.1, %node, "scheduled");
                if let Ok(p) = decode::<Pod>(bound) {
                    cache.pods.insert(key, p);
                }
            }
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(namespace = %key.0, pod = %key.1, error = %e, "binding failed; will retry");
                dirty.pending_pods.insert(key);
            }
        }
    }
}

async fn monitor_nodes(registry: &Registry, cache: &Cache, settings: &Settings) {
    let now = chrono::Utc::now();
    let mut lost: Vec<&str> = Vec::new();
    for (name, node) in &cache.nodes {
        let already_unknown = node
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown");
        if already_unknown {
            lost.push(name);
            continue;
        }
        let Some(unknown) = nodes::stale_ready_condition(node, now, settings.node_monitor_grace)
        else {
            continue;
        };
        tracing::warn!(node = %name, "no heartbeat within {:?}: marking NotReady", settings.node_monitor_grace);
        let patch = json!({"status": {"conditions": with_condition(&node.status.conditions, "Ready", json!(unknown))}});
        match registry
            .patch(&NODE, None, name, &patch, Part::Status)
            .await
        {
            Ok(_) => lost.push(name),
            Err(e) => tracing::warn!(node = %name, error = %e, "could not mark node NotReady"),
        }
    }
    // Pods on a lost node stop receiving traffic: Ready=False drops them from Endpoints.
    // Checked on every pass, not only when the node turns Unknown, so a pod that reports
    // Ready later (or was written Ready by someone else) is caught too.
    for ((ns, pod_name), pod) in cache
        .pods
        .iter()
        .filter(|(_, p)| lost.contains(&p.spec.node_name.as_str()) && p.is_ready())
    {
        let not_ready = json!({"type": "Ready", "status": "False", "reason": "NodeNotReady",
            "lastTransitionTime": now_timestamp()});
        let conditions = with_condition(&pod.status.conditions, "Ready", not_ready);
        if let Err(e) = registry
            .patch(
                &POD,
                Some(ns),
                pod_name,
                &json!({"status": {"conditions": conditions}}),
                Part::Status,
            )
            .await
        {
            tracing::warn!(namespace = %ns, pod = %pod_name, error = %e, "could not mark pod not ready");
        }
    }
}

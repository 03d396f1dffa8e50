//! Objects present from the first start: namespaces `default`, `kube-system` and
//! `kube-public`; Service `kubernetes` (first address of the service CIDR) with Endpoints
//! pointing at this API server; Service `kube-dns` (tenth address) in kube-system; Service
//! `weft-router` (eleventh address) in kube-system, the path router's address.

use std::net::IpAddr;

use serde_json::{json, Value};
use weft_api::core::ANNOTATION_SERVED_BY_NODES;
use weft_api::resources::{ENDPOINTS, NAMESPACE, SERVICE};
use weft_api::ResourceInfo;

use crate::error::{ApiError, ApiResult};
use crate::registry::{Part, Registry};

/// The path router's Service in kube-system; cluster DNS maps DNS-object hosts to its
/// ClusterIP.
pub const ROUTER_SERVICE: &str = "weft-router";
/// The port `weft router` listens on on each node (the Service's targetPort).
pub const ROUTER_NODE_PORT: u16 = 10080;
/// What a node announces in `weft.io/node-services` when it runs the router.
pub const ROUTER_NODE_SERVICE: &str = "router";

/// The `weft-router` Service: port 80 (`http`) → every node running the router, port
/// 10080. It has no selector; the endpoints controller lists the Ready nodes that
/// announce `router` (see [`ANNOTATION_SERVED_BY_NODES`]), each with its nodeName.
pub fn router_service(service_cidr: &ipnet::IpNet) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": ROUTER_SERVICE, "namespace": "kube-system",
                     "labels": {"k8s-app": ROUTER_SERVICE},
                     "annotations": {ANNOTATION_SERVED_BY_NODES: ROUTER_NODE_SERVICE}},
        "spec": {"clusterIP": nth_address(service_cidr, 11).to_string(),
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": ROUTER_NODE_PORT}]}
    })
}

/// The n-th address of a network (n = 1 for `10.96.0.1` in `10.96.0.0/12`).
pub fn nth_address(net: &ipnet::IpNet, n: u32) -> IpAddr {
    match net.network() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + n).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + u128::from(n)).into()),
    }
}

async fn ensure(
    registry: &Registry,
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    object: Value,
) -> ApiResult<()> {
    match registry.create(info, namespace, object).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(
    registry: &Registry,
    advertise_address: IpAddr,
    secure_port: u16,
) -> ApiResult<()> {
    for ns in crate::registry::SYSTEM_NAMESPACES {
        ensure(
            registry,
            &NAMESPACE,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let service_cidr = registry.ranges().service_cidr;
    ensure(
        registry,
        &SERVICE,
        Some("default"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": nth_address(&service_cidr, 1).to_string(),
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]}
        }),
    )
    .await?;
    ensure(
        registry,
        &SERVICE,
        Some("kube-system"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                         // Each `weft node` answers DNS itself; pods labelled
                         // k8s-app=kube-dns are added too.
                         "annotations": {ANNOTATION_SERVED_BY_NODES: "dns"}},
            "spec": {"clusterIP": nth_address(&service_cidr, 10).to_string(),
                     "selector": {"k8s-app": "kube-dns"},
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
        }),
    )
    .await?;
    ensure(
        registry,
        &SERVICE,
        Some("kube-system"),
        router_service(&service_cidr),
    )
    .await?;
    // The `kubernetes` Service has no selector: its Endpoints name this API server, and are
    // rewritten when the advertised address or port changes. A loopback address is useless
    // to pods (and invalid in Endpoints), so then there are none.
    if advertise_address.is_loopback() || advertise_address.is_unspecified() {
        tracing::info!(%advertise_address, "not writing Endpoints for Service kubernetes: set --advertise-address to an address pods can reach");
        return Ok(());
    }
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": advertise_address.to_string()}],
                     "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}]
    });
    match registry
        .get(&ENDPOINTS, Some("default"), "kubernetes")
        .await
    {
        Ok(_) => {
            registry
                .update(
                    &ENDPOINTS,
                    Some("default"),
                    "kubernetes",
                    endpoints,
                    Part::Main,
                )
                .await?;
        }
        Err(ApiError::NotFound { .. }) => {
            ensure(registry, &ENDPOINTS, Some("default"), endpoints).await?
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

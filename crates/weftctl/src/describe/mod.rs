//! `weftctl describe`: kubectl-like multi-line descriptions with the object's events.
//!
//! Fetching is here; the describers themselves are pure functions of the objects
//! (`core`, `routing`), so their layout is tested without a server.

mod core;
mod routing;
pub mod writer;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;
use weft_api::printers::str_at;
use weft_api::resources::{self, ResourceInfo};
use weft_client::{Client, ListParams};

use crate::cli::DescribeArgs;
use crate::get::{no_resources_message, scope};
use crate::kinds::parse_targets;
use crate::{output, Ctx, Outcome};

pub use routing::{Backend, Backends};

pub async fn run(ctx: &mut Ctx<'_>, args: &DescribeArgs) -> Result<Outcome> {
    let targets = parse_targets(&args.args)?;
    let now = Utc::now();
    let mut ok = true;
    let mut first = true;
    for t in &targets {
        let ns = scope(
            t.info,
            &ctx.namespace,
            args.all_namespaces && t.names.is_empty(),
        )
        .map(str::to_string);
        let mut objects = Vec::new();
        if t.names.is_empty() {
            let params = ListParams {
                label_selector: args.selector.clone(),
                ..Default::default()
            };
            objects = ctx.client.list(t.info, ns.as_deref(), &params).await?.items;
            if objects.is_empty() {
                let msg = no_resources_message(&[t.info], &ctx.namespace, args.all_namespaces);
                writeln!(ctx.err, "{msg}")?;
            }
        } else {
            for name in &t.names {
                match ctx.client.get(t.info, ns.as_deref(), name).await {
                    Ok(v) => objects.push(v),
                    Err(e) => {
                        ctx.report(&e)?;
                        ok = false;
                    }
                }
            }
        }
        for obj in objects {
            let text = describe(&ctx.client, t.info, &obj, now).await?;
            // kubectl separates descriptions by two blank lines.
            if !first {
                write!(ctx.out, "\n\n")?;
            }
            first = false;
            ctx.out.write_all(text.as_bytes())?;
        }
    }
    Ok(Outcome::from_ok(ok))
}

/// Fetches what the description of `obj` shows besides the object and describes it.
/// Related objects that cannot be fetched are shown as absent rather than failing the
/// description, as in kubectl.
pub async fn describe(
    client: &Client,
    info: &'static ResourceInfo,
    obj: &Value,
    now: DateTime<Utc>,
) -> Result<String> {
    let name = str_at(obj, &["metadata", "name"]);
    let ns = str_at(obj, &["metadata", "namespace"]);
    let ns_opt = (info.namespaced && !ns.is_empty()).then_some(ns);
    let events = events_for(client, info, name, ns_opt).await;
    Ok(match (info.group, info.kind) {
        ("", "Service") => {
            let ep = client.get(&resources::ENDPOINTS, ns_opt, name).await.ok();
            core::service(obj, ep.as_ref(), &events, now)
        }
        ("", "Pod") => core::pod(obj, &events, now),
        ("", "Node") => {
            let pods = pods_on(client, name).await;
            core::node(obj, &pods, &events, now)
        }
        ("", "Endpoints") => core::endpoints(obj, &events, now),
        ("", "Namespace") => core::namespace(obj),
        ("weft.io", "DNS") => {
            let backends = backends(client, ns_opt, &routing::backend_services("DNS", obj)).await;
            routing::dns(obj, &backends, &events, now)
        }
        ("networking.k8s.io", "Ingress") => {
            let names = routing::backend_services("Ingress", obj);
            let backends = backends(client, ns_opt, &names).await;
            routing::ingress(obj, &backends, &events, now)
        }
        _ => {
            let mut buf = Vec::new();
            output::yaml(&mut buf, &output::with_type(info, obj.clone()))?;
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}

/// Whether an event is about the object: the server may ignore the field selector, so
/// the match is checked here too.
pub fn is_about(event: &Value, info: &ResourceInfo, name: &str, ns: Option<&str>) -> bool {
    let io = event.get("involvedObject").unwrap_or(&Value::Null);
    let kind = str_at(io, &["kind"]);
    let io_ns = str_at(io, &["namespace"]);
    str_at(io, &["name"]) == name
        && (kind.is_empty() || kind == info.kind)
        && match ns {
            Some(ns) => io_ns.is_empty() || io_ns == ns,
            None => true,
        }
}

async fn events_for(
    client: &Client,
    info: &ResourceInfo,
    name: &str,
    ns: Option<&str>,
) -> Vec<Value> {
    let params = ListParams::fields(&format!("involvedObject.name={name}"));
    // Events about cluster-scoped objects live in some namespace: look in all.
    match client.list(&resources::EVENT, ns, &params).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| is_about(e, info, name, ns))
            .collect(),
        // Events are an extra: without them the description is still worth printing.
        Err(_) => Vec::new(),
    }
}

/// The pods placed on a node that have not terminated.
async fn pods_on(client: &Client, node: &str) -> Vec<Value> {
    let params = ListParams::fields(&format!("spec.nodeName={node}"));
    match client.list(&resources::POD, None, &params).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|p| {
                str_at(p, &["spec", "nodeName"]) == node
                    && !matches!(str_at(p, &["status", "phase"]), "Succeeded" | "Failed")
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn backends(client: &Client, ns: Option<&str>, names: &[String]) -> Backends {
    let mut out = Backends::new();
    for name in names {
        let service = client.get(&resources::SERVICE, ns, name).await.ok();
        let endpoints = client.get(&resources::ENDPOINTS, ns, name).await.ok();
        out.insert(name.clone(), Backend { service, endpoints });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_match_kind_name_and_namespace() {
        let ev =
            json!({"involvedObject": {"kind": "Service", "name": "web", "namespace": "default"}});
        assert!(is_about(&ev, &resources::SERVICE, "web", Some("default")));
        assert!(!is_about(&ev, &resources::POD, "web", Some("default")));
        assert!(!is_about(&ev, &resources::SERVICE, "web", Some("shop")));
        assert!(!is_about(&ev, &resources::SERVICE, "api", Some("default")));
        let node_ev = json!({"involvedObject": {"kind": "Node", "name": "n1"}});
        assert!(is_about(&node_ev, &resources::NODE, "n1", None));
    }
}

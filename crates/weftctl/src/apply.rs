//! `weftctl apply -f`: create what is absent, replace what differs, leave the rest.
//!
//! Like kubectl, the applied manifest is recorded in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation. An object is
//! `unchanged` when the manifest equals that record and the live object still holds every
//! field the manifest sets; otherwise the manifest is PUT with the live resourceVersion
//! (fields the server allocates, such as clusterIP and nodePort, are kept by the server
//! when the manifest leaves them empty).

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use crate::cli::ApplyArgs;
use crate::kinds::object_ref;
use crate::manifests::{parse_source, read_sources, Manifest};
use crate::{error_chain, Ctx, Outcome};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What apply does with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    /// PUT, compare-and-swap on the live object's resourceVersion.
    Update {
        resource_version: String,
    },
    Unchanged,
}

/// Decides from the live object (None: absent) and the manifest (without the
/// last-applied annotation).
pub fn decide(live: Option<&Value>, manifest: &Value) -> Action {
    let Some(live) = live else {
        return Action::Create;
    };
    let recorded = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if recorded.as_ref() == Some(manifest) && holds(live, manifest) {
        return Action::Unchanged;
    }
    Action::Update {
        resource_version: live
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// Whether `live` still holds every value `want` sets. Fields the server added (defaults,
/// allocations, status) do not matter, and neither do fields `want` leaves empty (`""`,
/// `[]`, `{}`, `false`, `0`, `null`): the server omits those or fills them in
/// (`clusterIP: ""` becomes an allocated address).
fn holds(live: &Value, want: &Value) -> bool {
    if is_zero(want) {
        return true;
    }
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w
            .iter()
            .all(|(k, wv)| l.get(k).is_some_and(|lv| holds(lv, wv)) || is_zero(wv)),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(wv, lv)| holds(lv, wv))
        }
        (w, l) => w == l,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// The `metadata` map of an object, created if absent. `None` if the object or its
/// metadata is not a map (the decoder has already rejected such manifests).
fn metadata_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// The manifest without a last-applied annotation of its own (e.g. one exported with
/// `get -o yaml`), so the record never nests.
pub fn strip_last_applied(manifest: &Value) -> Value {
    let mut v = manifest.clone();
    if let Some(meta) = metadata_mut(&mut v) {
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// The body to send: the manifest plus its own record in the annotation (compact JSON
/// with a trailing newline, as kubectl writes it).
pub fn with_last_applied(manifest: &Value) -> Value {
    let record = format!("{manifest}\n");
    let mut v = manifest.clone();
    if let Some(meta) = metadata_mut(&mut v) {
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(ann) = ann.as_object_mut() {
            ann.insert(LAST_APPLIED.to_string(), Value::String(record));
        }
    }
    v
}

/// The namespace an object goes to: the manifest's, else `-n`/the context's. A manifest
/// naming another namespace than an explicit `-n` is an error, as in kubectl.
pub fn target_namespace(m: &Manifest, namespace: &str, explicit: bool) -> Result<Option<String>> {
    if !m.info.namespaced {
        return Ok(None);
    }
    match &m.namespace {
        Some(ns) if explicit && ns != namespace => bail!(
            "the namespace from the provided object {ns:?} does not match the namespace {namespace:?}. You must pass '--namespace={ns}' to perform this operation."
        ),
        Some(ns) => Ok(Some(ns.clone())),
        None => Ok(Some(namespace.to_string())),
    }
}

pub async fn run(ctx: &mut Ctx<'_>, args: &ApplyArgs) -> Result<Outcome> {
    let sources = read_sources(&args.files, ctx.stdin)?;
    let mut ok = true;
    let mut objects = 0;
    for src in &sources {
        for doc in parse_source(src) {
            objects += 1;
            match &doc.manifest {
                Err(message) => {
                    ctx.report(doc.error(message))?;
                    ok = false;
                }
                Ok(m) => match apply_one(ctx, m).await {
                    Ok(result) => writeln!(ctx.out, "{} {result}", object_ref(m.info, &m.name))?,
                    Err(e) => {
                        ctx.report(doc.error(error_chain(&e)))?;
                        ok = false;
                    }
                },
            }
        }
    }
    if objects == 0 {
        bail!("no objects passed to apply");
    }
    Ok(Outcome::from_ok(ok))
}

/// Applies one object; returns what happened (`created`, `configured`, `unchanged`).
async fn apply_one(ctx: &Ctx<'_>, m: &Manifest) -> Result<&'static str> {
    let ns = target_namespace(m, &ctx.namespace, ctx.namespace_explicit)?;
    let mut manifest = strip_last_applied(&m.value);
    if let (Some(ns), Some(meta)) = (&ns, metadata_mut(&mut manifest)) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    let client = &ctx.client;
    // A concurrent writer can make the create or the compare-and-swap fail; look again
    // and retry, as kubectl does.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let live = match client.get(m.info, ns.as_deref(), &m.name).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let retry = attempt < ATTEMPTS;
        match decide(live.as_ref(), &manifest) {
            Action::Unchanged => return Ok("unchanged"),
            Action::Create => {
                match client
                    .create(m.info, ns.as_deref(), &with_last_applied(&manifest))
                    .await
                {
                    Ok(_) => return Ok("created"),
                    Err(e) if retry && e.is_already_exists() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Action::Update { resource_version } => {
                let mut body = with_last_applied(&manifest);
                if let Some(meta) = metadata_mut(&mut body) {
                    meta.insert("resourceVersion".into(), Value::String(resource_version));
                }
                match client.update(m.info, ns.as_deref(), &body).await {
                    Ok(_) => return Ok("configured"),
                    Err(e) if retry && (e.is_conflict() || e.is_not_found()) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(anyhow!(
        "the object kept changing; gave up after {ATTEMPTS} attempts"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}],
                        "clusterIP": "", "publishNotReadyAddresses": false}})
    }

    /// What the server would hold after applying `m`: defaults and allocations added.
    fn live_from(m: &Value, rv: &str) -> Value {
        let mut live = with_last_applied(m);
        live["metadata"]["resourceVersion"] = json!(rv);
        live["metadata"]["uid"] = json!("u-1");
        live["spec"]["clusterIP"] = json!("10.96.0.20");
        live["spec"]["type"] = json!("ClusterIP");
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        live["spec"]
            .as_object_mut()
            .unwrap()
            .remove("publishNotReadyAddresses");
        live
    }

    #[test]
    fn absent_is_created() {
        assert_eq!(decide(None, &manifest()), Action::Create);
    }

    #[test]
    fn same_manifest_is_unchanged_despite_server_defaults() {
        let m = manifest();
        assert_eq!(decide(Some(&live_from(&m, "7")), &m), Action::Unchanged);
    }

    #[test]
    fn changed_manifest_is_configured() {
        let m = manifest();
        let live = live_from(&m, "7");
        let mut changed = m.clone();
        changed["spec"]["ports"][0]["port"] = json!(81);
        assert_eq!(
            decide(Some(&live), &changed),
            Action::Update {
                resource_version: "7".into()
            }
        );
    }

    #[test]
    fn drift_of_the_live_object_is_configured() {
        let m = manifest();
        let mut live = live_from(&m, "9");
        live["metadata"]["labels"]["app"] = json!("edited");
        assert_eq!(
            decide(Some(&live), &m),
            Action::Update {
                resource_version: "9".into()
            }
        );
    }

    #[test]
    fn object_created_without_apply_is_configured() {
        let m = manifest();
        let mut live = m.clone();
        live["metadata"]["resourceVersion"] = json!("3");
        assert_eq!(
            decide(Some(&live), &m),
            Action::Update {
                resource_version: "3".into()
            }
        );
    }

    #[test]
    fn last_applied_record_round_trips() {
        let m = manifest();
        let body = with_last_applied(&m);
        let record = body["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(record.ends_with("}\n"));
        assert_eq!(serde_json::from_str::<Value>(record).unwrap(), m);
        // Re-applying an exported object does not nest the record.
        assert_eq!(strip_last_applied(&body), m);
    }

    #[test]
    fn namespace_rules() {
        let m = |ns: Option<&str>| Manifest {
            info: &weft_api::resources::SERVICE,
            name: "web".into(),
            namespace: ns.map(str::to_string),
            value: json!({}),
        };
        assert_eq!(
            target_namespace(&m(None), "shop", false)
                .unwrap()
                .as_deref(),
            Some("shop")
        );
        assert_eq!(
            target_namespace(&m(Some("a")), "default", false)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        let err = target_namespace(&m(Some("a")), "b", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation."
        );
        let node = Manifest {
            info: &weft_api::resources::NODE,
            ..m(None)
        };
        assert_eq!(target_namespace(&node, "x", true).unwrap(), None);
    }
}

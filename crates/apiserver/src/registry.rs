//! Object storage semantics on top of the store: strict decoding, defaulting, validation,
//! admission (allocations), resourceVersion handling and compare-and-swap. The REST layer
//! and the in-process controllers both go through here.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use weft_api::resources::{self, NAMESPACE, NODE, POD, SERVICE};
use weft_api::{AnyObject, ResourceInfo};
use weft_store::{EventType, KeyValue, Op, Revision, Store, StoreError};

use crate::admission;
use crate::alloc::{Allocation, Allocators, Ranges, ALLOCATIONS_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::filter::Filter;
use crate::keys;
use crate::watch_cache::{EventStream, WatchCache};

/// Namespaces that exist from the first start and may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// How many times a write is retried after losing a race it can safely redo.
const MAX_ATTEMPTS: usize = 16;

/// Which part of an object an update writes, as Kubernetes' main resource vs `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

pub struct Registry {
    store: Arc<dyn Store>,
    allocators: Arc<Allocators>,
    cache: WatchCache,
}

/// Events kept in memory per resource for watches that start a little behind.
pub const DEFAULT_WATCH_CACHE_EVENTS: usize = 10_000;

/// Kinds whose `status` is written only through the `/status` subresource.
fn has_status_subresource(info: &ResourceInfo) -> bool {
    [&POD, &SERVICE, &NODE, &NAMESPACE, &resources::INGRESS].contains(&info)
}

fn parse_revision(rv: &str) -> ApiResult<Revision> {
    rv.parse().map_err(|_| {
        ApiError::BadRequest(format!("metadata.resourceVersion: invalid value {rv:?}"))
    })
}

/// Decodes a stored value and stamps it with its resourceVersion.
pub fn decode_stored(kv: &KeyValue) -> ApiResult<Value> {
    let mut value: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    set_resource_version(&mut value, kv.mod_revision);
    Ok(value)
}

/// Where the top-level `"metadata":{` object's contents start in serialized JSON, found by
/// a scan that tracks strings and nesting (so a nested `metadata` key never matches).
fn top_level_metadata(bytes: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"metadata\"";
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                if depth == 1 && bytes[i..].starts_with(KEY) {
                    let mut j = i + KEY.len();
                    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    if bytes.get(j) == Some(&b':') {
                        j += 1;
                        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                            j += 1;
                        }
                        return (bytes.get(j) == Some(&b'{')).then_some(j + 1);
                    }
                }
                in_string = true;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The stored JSON with `metadata.resourceVersion` inserted, without decoding it: lists
/// and watches serve thousands of objects, and this is a scan and a copy instead of a parse
/// and a serialisation. Stored objects never hold a resourceVersion (it is the store's
/// revision), so inserting cannot duplicate the key.
pub fn stamp_stored(bytes: &[u8], rv: Revision) -> Result<Vec<u8>, serde_json::Error> {
    if let Some(insert) = top_level_metadata(bytes) {
        let field = format!("\"resourceVersion\":\"{rv}\"");
        let mut out = Vec::with_capacity(bytes.len() + field.len() + 1);
        out.extend_from_slice(&bytes[..insert]);
        out.extend_from_slice(field.as_bytes());
        let rest = &bytes[insert..];
        if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Ok(out);
    }
    let mut value: Value = serde_json::from_slice(bytes)?;
    set_resource_version(&mut value, rv);
    serde_json::to_vec(&value)
}

pub fn set_resource_version(value: &mut Value, rv: Revision) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

fn strip_resource_version(value: &mut Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
}

fn encode(value: &Value) -> ApiResult<Vec<u8>> {
    let mut stored = value.clone();
    strip_resource_version(&mut stored);
    serde_json::to_vec(&stored).map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

fn name_of(value: &Value) -> &str {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn resource_version_of(value: &Value) -> Option<&str> {
    value
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The error for a write that kept losing races to other writers.
fn gave_up(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        message: format!(
            "{} {name}: gave up after {MAX_ATTEMPTS} conflicting writes",
            info.kind
        ),
    }
}

fn alloc_ops(
    owner: &str,
    created: &[Allocation],
    freed: &[Allocation],
    skip: &HashSet<String>,
) -> Vec<Op> {
    let mut ops: Vec<Op> = created
        .iter()
        .map(|a| Op::Create {
            key: a.key(),
            value: owner.as_bytes().to_vec(),
        })
        .collect();
    ops.extend(
        freed
            .iter()
            .map(Allocation::key)
            .filter(|k| !skip.contains(k))
            .map(|key| Op::Delete {
                key,
                expected: None,
            }),
    );
    ops
}

impl Registry {
    /// Opens the registry over `store`, reading the allocations it holds.
    pub async fn new(
        store: Arc<dyn Store>,
        ranges: Ranges,
        watch_cache_events: usize,
    ) -> ApiResult<Arc<Self>> {
        let allocators = Allocators::new(ranges);
        allocators.load(store.as_ref()).await?;
        let cache = WatchCache::new(store.clone(), watch_cache_events);
        Ok(Arc::new(Registry {
            store,
            allocators,
            cache,
        }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn ranges(&self) -> &Ranges {
        &self.allocators.ranges
    }

    /// Strict decode, scope and kind checks, defaulting and validation of a request body.
    fn admit_body(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        body: Value,
    ) -> ApiResult<AnyObject> {
        let mut object = AnyObject::decode(body)
            .map_err(|e| ApiError::BadRequest(format!("strict decoding error: {e}")))?;
        if object.info() != info {
            return Err(ApiError::BadRequest(format!(
                "the object's apiVersion/kind ({}/{}) does not match the request path ({}/{})",
                object.info().api_version(),
                object.info().kind,
                info.api_version(),
                info.kind
            )));
        }
        let meta = object.meta_mut();
        if info.namespaced {
            let ns = namespace.unwrap_or("default");
            match meta.namespace.as_deref() {
                Some(given) if !given.is_empty() && given != ns => {
                    return Err(ApiError::BadRequest(format!(
                        "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
                    )))
                }
                _ => meta.namespace = Some(ns.to_string()),
            }
        } else {
            meta.namespace = None;
        }
        if meta.name.is_empty() {
            if let Some(prefix) = meta.generate_name.clone().filter(|p| !p.is_empty()) {
                let suffix = Alphanumeric
                    .sample_string(&mut rand::thread_rng(), 5)
                    .to_lowercase();
                meta.name = format!("{prefix}{suffix}");
            } else {
                return Err(ApiError::invalid_field(
                    info.kind,
                    "",
                    "metadata.name",
                    "",
                    "name or generateName is required",
                ));
            }
        }
        object.apply_defaults();
        object
            .validate()
            .map_err(|e| ApiError::invalid(info.kind, object.name(), &e))?;
        Ok(object)
    }

    async fn get_kv(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<KeyValue> {
        self.store
            .get(&keys::key(info, namespace, name))
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        decode_stored(&self.get_kv(info, namespace, name).await?)
    }

    pub async fn list(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        filter: &Filter,
    ) -> ApiResult<(Vec<Value>, Revision)> {
        let (kvs, rev) = self.store.list(&keys::prefix(info, namespace)).await?;
        let mut items = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let value = decode_stored(kv)?;
            if filter.matches(&value) {
                items.push(value);
            }
        }
        Ok((items, rev))
    }

    /// Every object under `info` (in `namespace`) as stamped stored JSON, unfiltered: the
    /// fast path of a plain list.
    pub async fn list_raw(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
    ) -> ApiResult<(Vec<Vec<u8>>, Revision)> {
        let (kvs, rev) = self.store.list(&keys::prefix(info, namespace)).await?;
        let items = kvs
            .iter()
            .map(|kv| {
                stamp_stored(&kv.value, kv.mod_revision).map_err(|e| {
                    ApiError::Internal(format!("stored object {} is corrupt: {e}", kv.key))
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((items, rev))
    }

    async fn ensure_namespace(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
    ) -> ApiResult<()> {
        if let (true, Some(ns)) = (info.namespaced, namespace) {
            if self
                .store
                .get(&keys::key(&NAMESPACE, None, ns))
                .await?
                .is_none()
            {
                return Err(ApiError::not_found(&NAMESPACE, ns));
            }
        }
        Ok(())
    }

    pub async fn create(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        body: Value,
    ) -> ApiResult<Value> {
        let object = self.admit_body(info, namespace, body)?;
        let namespace = object.namespace().map(str::to_string);
        self.ensure_namespace(info, namespace.as_deref()).await?;
        let name = object.name().to_string();
        let key = keys::key(info, namespace.as_deref(), &name);
        // A duplicate name is the error to report, not whatever its fields would collide on.
        if self.store.get(&key).await?.is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        let mut base = object.to_value();
        {
            let meta = &mut base["metadata"];
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
            meta["creationTimestamp"] = json!(weft_api::meta::now_timestamp());
            meta["generation"] = json!(1);
            if let Some(m) = meta.as_object_mut() {
                m.remove("resourceVersion");
                m.remove("deletionTimestamp");
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let mut value = base.clone();
            let reservation =
                admission::allocate(&self.allocators, info, &mut value, &HashSet::new())?;
            let mut ops = vec![Op::Create {
                key: key.clone(),
                value: encode(&value)?,
            }];
            ops.extend(alloc_ops(&key, &reservation.items, &[], &HashSet::new()));
            match self.store.txn(ops).await {
                Ok(rev) => {
                    reservation.commit();
                    set_resource_version(&mut value, rev);
                    return Ok(value);
                }
                Err(StoreError::AlreadyExists { key: k }) if k == key => {
                    return Err(ApiError::already_exists(info, &name));
                }
                Err(StoreError::AlreadyExists { key: k }) if k.starts_with(ALLOCATIONS_PREFIX) => {
                    // Another API server took it first: remember and allocate again. A value the
                    // user asked for explicitly now fails allocation with a clear error.
                    for a in &reservation.items {
                        if a.key() == k {
                            self.allocators.mark_used(a);
                        }
                    }
                    drop(reservation);
                    for a in admission::allocations_of(info, &base) {
                        if a.key() == k {
                            self.allocators.mark_used(&a);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Internal(format!(
            "could not allocate for {} {name}: too much contention",
            info.kind
        )))
    }

    /// Replaces an object (or its status). Returns the stored object and whether it changed;
    /// an update that changes nothing writes nothing and keeps the resourceVersion.
    pub async fn update(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
    ) -> ApiResult<(Value, bool)> {
        let precondition = resource_version_of(&body).map(parse_revision).transpose()?;
        if name_of(&body) != name {
            return Err(ApiError::BadRequest(format!(
                "metadata.name: the name of the object ({:?}) does not match the name on the URL ({name:?})",
                name_of(&body)
            )));
        }
        let key = keys::key(info, namespace, name);
        let mut skip_missing = HashSet::new();
        for _ in 0..MAX_ATTEMPTS {
            let kv = self.get_kv(info, namespace, name).await?;
            if let Some(expected) = precondition {
                if expected != kv.mod_revision {
                    return Err(ApiError::conflict(info, name));
                }
            }
            let old = decode_stored(&kv)?;
            let candidate = match part {
                Part::Status => {
                    let mut merged = old.clone();
                    merged["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                    if merged["status"].is_null() {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                    merged
                }
                Part::Main => {
                    let mut merged = body.clone();
                    if has_status_subresource(info) {
                        match old.get("status") {
                            Some(status) => merged["status"] = status.clone(),
                            None => {
                                if let Some(m) = merged.as_object_mut() {
                                    m.remove("status");
                                }
                            }
                        }
                    }
                    admission::carry_allocated_fields(info, &old, &mut merged);
                    merged
                }
            };
            let new_object = self.admit_body(info, namespace, candidate)?;
            let old_object = AnyObject::decode(old.clone()).map_err(|e| {
                ApiError::Internal(format!(
                    "stored {} {name} no longer decodes: {e}",
                    info.kind
                ))
            })?;
            new_object
                .validate_update(&old_object)
                .map_err(|e| ApiError::invalid(info.kind, name, &e))?;
            let mut value = new_object.to_value();
            // Identity and bookkeeping come from the stored object, never from the client.
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => value["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = value["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            set_resource_version(&mut value, kv.mod_revision);
            if value == old {
                return Ok((old, false));
            }
            if value.get("spec") != old.get("spec") {
                let generation = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                value["metadata"]["generation"] = json!(generation + 1);
            }
            let held = admission::allocations_of(info, &old);
            let reservation = admission::allocate(&self.allocators, info, &mut value, &held)?;
            let now_held = admission::allocations_of(info, &value);
            let freed: Vec<Allocation> = held.difference(&now_held).cloned().collect();
            let mut ops = vec![Op::Update {
                key: key.clone(),
                value: encode(&value)?,
                expected: Some(kv.mod_revision),
            }];
            ops.extend(alloc_ops(&key, &reservation.items, &freed, &skip_missing));
            match self.store.txn(ops).await {
                Ok(rev) => {
                    reservation.commit();
                    for a in &freed {
                        self.allocators.release(a);
                    }
                    set_resource_version(&mut value, rev);
                    return Ok((value, true));
                }
                Err(StoreError::Conflict { key: k, .. }) if k == key => {
                    if precondition.is_some() {
                        return Err(ApiError::conflict(info, name));
                    }
                }
                Err(StoreError::NotFound { key: k }) if k == key => {
                    return Err(ApiError::not_found(info, name));
                }
                Err(StoreError::NotFound { key: k }) if k.starts_with(ALLOCATIONS_PREFIX) => {
                    skip_missing.insert(k);
                }
                Err(StoreError::AlreadyExists { key: k }) if k.starts_with(ALLOCATIONS_PREFIX) => {
                    for a in &reservation.items {
                        if a.key() == k {
                            self.allocators.mark_used(a);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(gave_up(info, name))
    }

    /// JSON merge patch (RFC 7386) of an object or its status.
    pub async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        part: Part,
    ) -> ApiResult<Value> {
        if !patch.is_object() {
            return Err(ApiError::BadRequest(
                "a merge patch must be a JSON object".into(),
            ));
        }
        let precondition = resource_version_of(patch).map(str::to_string);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(info, namespace, name).await?;
            let mut target = current.clone();
            merge_patch(&mut target, patch);
            // Pin the write to what we read, unless the patch carries its own precondition.
            if precondition.is_none() {
                target["metadata"]["resourceVersion"] =
                    current["metadata"]["resourceVersion"].clone();
            }
            match self.update(info, namespace, name, target, part).await {
                Ok((value, _)) => return Ok(value),
                Err(ApiError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(info, name))
    }

    /// Deletes an object and frees its allocations; returns the object as it was.
    pub async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
    ) -> ApiResult<Value> {
        if *info == NAMESPACE {
            if SYSTEM_NAMESPACES.contains(&name) {
                return Err(ApiError::Forbidden(format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                )));
            }
            self.get_kv(info, None, name).await?;
            self.delete_namespace_contents(name).await?;
        }
        self.delete_object(info, namespace, name, precondition)
            .await
    }

    async fn delete_object(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
    ) -> ApiResult<Value> {
        let key = keys::key(info, namespace, name);
        let mut skip_missing = HashSet::new();
        for _ in 0..MAX_ATTEMPTS {
            let kv = self.get_kv(info, namespace, name).await?;
            if precondition.is_some_and(|p| p != kv.mod_revision) {
                return Err(ApiError::conflict(info, name));
            }
            let old = decode_stored(&kv)?;
            let freed: Vec<Allocation> =
                admission::allocations_of(info, &old).into_iter().collect();
            let mut ops = vec![Op::Delete {
                key: key.clone(),
                expected: Some(kv.mod_revision),
            }];
            ops.extend(alloc_ops(&key, &[], &freed, &skip_missing));
            match self.store.txn(ops).await {
                Ok(_) => {
                    for a in &freed {
                        self.allocators.release(a);
                    }
                    return Ok(old);
                }
                Err(StoreError::Conflict { key: k, .. }) if k == key => {
                    if precondition.is_some() {
                        return Err(ApiError::conflict(info, name));
                    }
                }
                Err(StoreError::NotFound { key: k }) if k == key => {
                    return Err(ApiError::not_found(info, name))
                }
                Err(StoreError::NotFound { key: k }) if k.starts_with(ALLOCATIONS_PREFIX) => {
                    skip_missing.insert(k);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(gave_up(info, name))
    }

    /// Binds a pending Pod to a node: the scheduler's write, the one way `spec.nodeName`
    /// changes after creation (Kubernetes' `pods/binding`).
    pub async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> ApiResult<Value> {
        for _ in 0..MAX_ATTEMPTS {
            let kv = self.get_kv(&POD, Some(namespace), name).await?;
            let mut value = decode_stored(&kv)?;
            let current = value
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !current.is_empty() {
                return Err(ApiError::Conflict {
                    message: format!("pod {name:?} is already assigned to node {current:?}"),
                });
            }
            value["spec"]["nodeName"] = json!(node);
            match self
                .store
                .update(&kv.key, encode(&value)?, Some(kv.mod_revision))
                .await
            {
                Ok(rev) => {
                    set_resource_version(&mut value, rev);
                    return Ok(value);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found(&POD, name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict {
            message: format!("pod {name}: gave up binding after {MAX_ATTEMPTS} conflicting writes"),
        })
    }

    async fn delete_namespace_contents(&self, namespace: &str) -> ApiResult<()> {
        for info in resources::RESOURCES
            .iter()
            .copied()
            .filter(|r| r.namespaced)
        {
            let (items, _) = self.list(info, Some(namespace), &Filter::default()).await?;
            for item in items {
                match self
                    .delete_object(info, Some(namespace), name_of(&item), None)
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Changes under `info` (in `namespace`) after revision `after`, as stamped stored JSON
    /// shared through the watch cache.
    pub async fn watch_raw(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        after: Revision,
    ) -> ApiResult<EventStream> {
        self.cache
            .watch(
                &keys::prefix(info, None),
                &keys::prefix(info, namespace),
                after,
            )
            .await
    }

    /// Changes under `info` (in `namespace`) after revision `after`, as (type, object) with
    /// each object's resourceVersion set to the revision of the change.
    pub async fn watch(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        after: Revision,
    ) -> ApiResult<impl Stream<Item = ApiResult<(EventType, Value)>> + Send + 'static> {
        let stream = self.watch_raw(info, namespace, after).await?;
        Ok(stream.map(|event| {
            let event = event?;
            Ok((event.event_type, event.decode()?))
        }))
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(entries) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(map) = target.as_object_mut() {
                for (k, v) in entries {
                    if v.is_null() {
                        map.remove(k);
                    } else {
                        merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_stored_json_matches_decoding() {
        for stored in [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "labels": {"metadata": "x"}}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
            json!({"kind": "X", "spec": {"metadata": {"nested": true}}, "metadata": {"name": "b"}}),
            json!({"apiVersion": "v1", "data": {"metadata": {"x": "\"metadata\":{"}}, "metadata": {"name": "c"}}),
        ] {
            let bytes = serde_json::to_vec(&stored).unwrap();
            let stamped: Value =
                serde_json::from_slice(&stamp_stored(&bytes, 42).unwrap()).unwrap();
            let mut expected = stored.clone();
            set_resource_version(&mut expected, 42);
            assert_eq!(stamped, expected);
        }
        // Spacing as another serializer might write it, with the nested key first.
        let text = br#"{ "data" : { "metadata" : { } }, "metadata" : { "name" : "d" } }"#;
        let stamped: Value = serde_json::from_slice(&stamp_stored(text, 7).unwrap()).unwrap();
        assert_eq!(stamped["metadata"]["resourceVersion"], "7");
        assert!(stamped["data"]["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut doc, &json!({"c": [1, 2]}));
        assert_eq!(doc, json!({"a": "z", "c": [1, 2]}));
    }
}

//! The typed layer: `client.api::<Service>(Some("default"))` gives the same verbs as the
//! dynamic API over `weft_api` object types.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use weft_api::Object;

use crate::client::{Client, ListParams, ObjectList};
use crate::error::{ClientError, Result};
use crate::watch::WatchStream;

/// Verbs on one kind, in one namespace (or all namespaces / cluster-scoped when `None`).
pub struct Api<T> {
    client: Client,
    namespace: Option<String>,
    _kind: PhantomData<fn() -> T>,
}

// Derived Clone/Debug would require `T: Clone/Debug` for no reason.
impl<T> Clone for Api<T> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Api<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("kind", &std::any::type_name::<T>())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Client {
    /// Typed verbs for `T`. `namespace` None: cluster-scoped kinds, or namespaced kinds
    /// across all namespaces (item verbs then take the object's own namespace).
    pub fn api<T: Object>(&self, namespace: Option<&str>) -> Api<T> {
        Api {
            client: self.clone(),
            namespace: namespace.map(str::to_string),
            _kind: PhantomData,
        }
    }
}

/// Decodes a server object as `T`, naming the field path and the object on failure.
pub(crate) fn decode<T: DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    let name = object_ref(&v);
    serde_path_to_error::deserialize(v).map_err(|e| ClientError::Decode {
        context: format!("{what} {name}"),
        message: format!("{}: {}", e.path(), e.inner()),
    })
}

/// [`decode`] from an item's JSON text, without building its `Value` first.
fn decode_raw<T: DeserializeOwned>(raw: &RawValue, what: impl FnOnce() -> String) -> Result<T> {
    let mut json = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let name = serde_json::from_str::<Value>(raw.get())
            .map(|v| object_ref(&v))
            .unwrap_or_default();
        ClientError::Decode {
            context: format!("{} {name}", what()),
            message: format!("{}: {}", e.path(), e.inner()),
        }
    })
}

/// `ns/name` or `name`, for messages.
fn object_ref(v: &Value) -> String {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn encode<T: Object>(obj: &T) -> Result<Value> {
    serde_json::to_value(obj)
        .map_err(|e| ClientError::InvalidRequest(format!("encoding {}: {e}", T::INFO.kind)))
}

impl<T: Object> Api<T> {
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub async fn get(&self, name: &str) -> Result<T> {
        let v = self.client.get(T::INFO, self.namespace(), name).await?;
        decode(v, T::INFO.kind)
    }

    /// `get`, with NotFound as `None`.
    pub async fn get_opt(&self, name: &str) -> Result<Option<T>> {
        match self.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<T>> {
        let list = self
            .client
            .list_raw(T::INFO, self.namespace(), params)
            .await?;
        let mut items = Vec::with_capacity(list.items.len());
        for (i, item) in list.items.into_iter().enumerate() {
            items.push(decode_raw(&item, || {
                format!("{} items[{i}]", T::INFO.list_kind())
            })?);
        }
        Ok(ObjectList {
            kind: list.kind,
            api_version: list.api_version,
            metadata: list.metadata,
            items,
        })
    }

    pub async fn create(&self, obj: &T) -> Result<T> {
        let v = self
            .client
            .create(T::INFO, self.namespace(), &encode(obj)?)
            .await?;
        decode(v, T::INFO.kind)
    }

    /// PUT; compare-and-swap when the object carries a resourceVersion.
    pub async fn update(&self, obj: &T) -> Result<T> {
        let v = self
            .client
            .update(T::INFO, self.namespace(), &encode(obj)?)
            .await?;
        decode(v, T::INFO.kind)
    }

    pub async fn update_status(&self, obj: &T) -> Result<T> {
        let v = self
            .client
            .update_status(T::INFO, self.namespace(), &encode(obj)?)
            .await?;
        decode(v, T::INFO.kind)
    }

    pub async fn patch_merge(&self, name: &str, patch: &Value) -> Result<T> {
        let v = self
            .client
            .patch_merge(T::INFO, self.namespace(), name, patch)
            .await?;
        decode(v, T::INFO.kind)
    }

    /// Deletes; returns the deleted object, or `None` if the server answered with a
    /// `Status` instead.
    pub async fn delete(&self, name: &str) -> Result<Option<T>> {
        let v = self.client.delete(T::INFO, self.namespace(), name).await?;
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            return Ok(None);
        }
        decode(v, T::INFO.kind).map(Some)
    }

    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<T>> {
        self.client
            .watch_typed(T::INFO, self.namespace(), params, resource_version)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::core::Service;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn list_items_decode_from_their_text_and_errors_name_item_object_and_field() {
        let good =
            raw(r#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"ports":[{"port":80}]}}"#);
        let svc: Service = decode_raw(&good, || "ServiceList items[0]".into()).unwrap();
        assert_eq!(svc.metadata.name, "web");
        assert_eq!(svc.spec.ports[0].port, 80);

        let bad = raw(
            r#"{"metadata":{"name":"db","namespace":"shop"},"spec":{"ports":[{"port":"eighty"}]}}"#,
        );
        let err = decode_raw::<Service>(&bad, || "ServiceList items[1]".into()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ServiceList items[1] shop/db"), "{text}");
        assert!(text.contains("spec.ports[0].port"), "{text}");
    }
}

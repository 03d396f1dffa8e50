//! The HTTP client and its dynamic API: every verb over `serde_json::Value`, keyed by a
//! [`ResourceInfo`] and an optional namespace, on Kubernetes' REST paths.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use weft_api::{ListMeta, ResourceInfo};

use crate::error::{api_error, ClientError, Result};
use crate::kubeconfig::{ClientConfig, Kubeconfig};
use crate::watch::{event_stream, WatchStream};

/// How long a plain request may take. Watches and followed logs have no limit: they are
/// long-lived by design, and TCP keepalive notices a dead peer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the API server. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<Arc<str>>,
    namespace: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Query parameters of list and watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Asks the server to end a watch after this long; the informer reconnects, which
    /// guards against connections that died without a FIN.
    pub timeout_seconds: Option<u32>,
}

impl ListParams {
    pub fn labels(selector: &str) -> Self {
        ListParams {
            label_selector: Some(selector.to_string()),
            ..Default::default()
        }
    }
    pub fn fields(selector: &str) -> Self {
        ListParams {
            field_selector: Some(selector.to_string()),
            ..Default::default()
        }
    }
}

/// Options of `logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogParams {
    pub container: Option<String>,
    pub follow: bool,
}

/// A list response: `{"kind":"ServiceList","metadata":{"resourceVersion":"1"},"items":[..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct ObjectList<T> {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub items: Vec<T>,
}

impl<T> ObjectList<T> {
    /// The list's resourceVersion, from which a watch continues; "" when the server sent
    /// none.
    pub fn resource_version(&self) -> &str {
        self.metadata.resource_version.as_deref().unwrap_or("")
    }
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl Client {
    /// A client for `base_url` (`https://127.0.0.1:6443`, or `http://` for an `--insecure`
    /// server) that sends `token` as bearer token (none when empty) and trusts exactly the
    /// certificates in `ca_pem`.
    pub fn new(base_url: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        Self::from_config(&ClientConfig {
            server: base_url.to_string(),
            token: Some(token.to_string()).filter(|t| !t.is_empty()),
            ca_pem: ca_pem.map(<[u8]>::to_vec),
            insecure_skip_tls_verify: false,
            namespace: "default".to_string(),
        })
    }

    /// A client for the kubeconfig's current context.
    pub fn from_kubeconfig(kubeconfig: &Kubeconfig) -> Result<Self> {
        Self::from_config(&kubeconfig.client_config(None)?)
    }

    pub fn from_config(config: &ClientConfig) -> Result<Self> {
        let base = Url::parse(&config.server)
            .map_err(|e| ClientError::Config(format!("server URL {:?}: {e}", config.server)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "server URL {:?}: scheme must be http or https",
                config.server
            )));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            // Trust only the cluster's CA: a public CA has no say over cluster identity.
            .tls_built_in_root_certs(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("weft-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Config(format!("certificate authority: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config(
                    "certificate authority: no PEM certificate found".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.insecure_skip_tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| {
            // reqwest's own message is "builder error"; the cause (a malformed CA
            // certificate, typically) is in the chain.
            ClientError::Config(format!(
                "building HTTP client: {}",
                crate::error::error_chain(&e)
            ))
        })?;
        Ok(Client {
            http,
            base,
            token: config.token.as_deref().map(Arc::from),
            namespace: Arc::from(config.namespace.as_str()),
        })
    }

    /// The namespace of the kubeconfig context (`default` when it names none).
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The URL of a collection (`name` None) or item, e.g.
    /// `/apis/networking.k8s.io/v1/namespaces/default/ingresses/web`. A namespaced
    /// resource with no namespace gives the all-namespaces collection.
    pub fn url(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
    ) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            // Path segments are pushed, not formatted, so a name can never escape its
            // segment ('/' and '?' are percent-encoded).
            segs.pop_if_empty();
            if info.group.is_empty() {
                segs.extend(["api", info.version]);
            } else {
                segs.extend(["apis", info.group, info.version]);
            }
            if let (true, Some(ns)) = (info.namespaced, namespace) {
                segs.extend(["namespaces", ns]);
            }
            segs.push(info.plural);
            if let Some(name) = name {
                segs.push(name);
            }
            if let Some(sub) = subresource {
                segs.push(sub);
            }
        }
        url
    }

    /// The namespace an item verb uses: the one passed, else the object's own. Errors
    /// for a namespaced resource with neither.
    fn item_namespace<'a>(
        info: &ResourceInfo,
        namespace: Option<&'a str>,
        obj: Option<&'a Value>,
    ) -> Result<Option<&'a str>> {
        if !info.namespaced {
            return Ok(None);
        }
        let from_obj = obj
            .and_then(|o| o.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        match namespace.filter(|s| !s.is_empty()).or(from_obj) {
            Some(ns) => Ok(Some(ns)),
            None => Err(ClientError::InvalidRequest(format!(
                "a namespace is required for {}",
                info.plural
            ))),
        }
    }

    fn object_name<'a>(info: &ResourceInfo, obj: &'a Value) -> Result<&'a str> {
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ClientError::InvalidRequest(format!("{} object has no metadata.name", info.kind))
            })
    }

    /// Sends a request and returns the response if its status is 2xx; otherwise the
    /// server's `Status` as [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, Vec<u8>)>,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            // As kubectl: JSON preferred, anything accepted (pod logs are plain text).
            .header(ACCEPT, HeaderValue::from_static("application/json, */*"));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes);
        }
        if !streaming {
            req = req.timeout(REQUEST_TIMEOUT);
        }
        let transport = |source| ClientError::transport(&method, &url, source);
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(transport)?;
        Err(api_error(status.as_u16(), &body))
    }

    /// A request whose answer is one JSON document.
    async fn json(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Value> {
        let resp = self.send(method.clone(), url.clone(), body, false).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::transport(&method, &url, source))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            context: format!("response of {method} {url}"),
            message: e.to_string(),
        })
    }

    fn json_body(obj: &Value) -> Result<Option<(&'static str, Vec<u8>)>> {
        let bytes = serde_json::to_vec(obj)
            .map_err(|e| ClientError::InvalidRequest(format!("encoding request body: {e}")))?;
        Ok(Some(("application/json", bytes)))
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, None)?;
        self.json(Method::GET, self.url(info, ns, Some(name), None), None)
            .await
    }

    /// Lists a collection; a namespaced resource with `namespace` None lists across all
    /// namespaces.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<Value>> {
        self.list_as(info, namespace, params).await
    }

    /// [`Client::list`] with each item left as its JSON text, to be decoded one at a time:
    /// a tree of `Value`s for a whole list of 10,000 objects costs several times the
    /// response's size at once.
    pub async fn list_raw(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<Box<RawValue>>> {
        self.list_as(info, namespace, params).await
    }

    /// A list response decoded straight from its bytes, items as `I`.
    async fn list_as<I: DeserializeOwned>(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<I>> {
        let mut url = self.url(info, namespace, None, None);
        add_list_query(&mut url, params);
        let resp = self.send(Method::GET, url.clone(), None, false).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::transport(&Method::GET, &url, source))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            context: format!("response of GET {url}"),
            message: format!("not a {}: {e}", info.list_kind()),
        })
    }

    /// POSTs `obj` to its collection; the namespace defaults to `metadata.namespace`.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, Some(obj))?;
        self.json(
            Method::POST,
            self.url(info, ns, None, None),
            Self::json_body(obj)?,
        )
        .await
    }

    /// PUTs `obj`; a `metadata.resourceVersion` in it makes this a compare-and-swap
    /// (409 Conflict when stale).
    pub async fn update(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, Some(obj))?;
        let name = Self::object_name(info, obj)?;
        self.json(
            Method::PUT,
            self.url(info, ns, Some(name), None),
            Self::json_body(obj)?,
        )
        .await
    }

    /// PUTs `obj` to the `/status` subresource.
    pub async fn update_status(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, Some(obj))?;
        let name = Self::object_name(info, obj)?;
        self.json(
            Method::PUT,
            self.url(info, ns, Some(name), Some("status")),
            Self::json_body(obj)?,
        )
        .await
    }

    /// Applies a JSON merge patch (RFC 7386) to the named object.
    pub async fn patch_merge(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.patch_merge_at(info, namespace, name, None, patch)
            .await
    }

    /// Applies a JSON merge patch to the named object's `status` subresource.
    pub async fn patch_status_merge(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.patch_merge_at(info, namespace, name, Some("status"), patch)
            .await
    }

    async fn patch_merge_at(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Value,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, None)?;
        let bytes = serde_json::to_vec(patch)
            .map_err(|e| ClientError::InvalidRequest(format!("encoding patch: {e}")))?;
        self.json(
            Method::PATCH,
            self.url(info, ns, Some(name), subresource),
            Some(("application/merge-patch+json", bytes)),
        )
        .await
    }

    /// Deletes the named object; returns what the server answers (the deleted object).
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        let ns = Self::item_namespace(info, namespace, None)?;
        self.json(Method::DELETE, self.url(info, ns, Some(name), None), None)
            .await
    }

    /// Watches a collection from `resource_version` ("" or "0": start with an ADDED event
    /// for every existing object). The stream ends when the server closes it; an
    /// `Error` event with code 410 means: relist.
    pub async fn watch(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<Value>> {
        self.watch_typed(info, namespace, params, resource_version)
            .await
    }

    /// `watch`, decoding each event's object as `T`.
    pub(crate) async fn watch_typed<T>(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let mut url = self.url(info, namespace, None, None);
        add_list_query(&mut url, params);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("watch", "true");
            q.append_pair("allowWatchBookmarks", "true");
            if !resource_version.is_empty() {
                q.append_pair("resourceVersion", resource_version);
            }
            if let Some(t) = params.timeout_seconds {
                q.append_pair("timeoutSeconds", &t.to_string());
            }
        }
        let resp = self.send(Method::GET, url.clone(), None, true).await?;
        Ok(event_stream(resp.bytes_stream(), url.to_string()))
    }

    /// A pod's log as it streams: GET `/api/v1/namespaces/{ns}/pods/{name}/log`.
    pub async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        params: &LogParams,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let mut url = self.url(
            &weft_api::resources::POD,
            Some(namespace),
            Some(pod),
            Some("log"),
        );
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = &params.container {
                q.append_pair("container", c);
            }
            if params.follow {
                q.append_pair("follow", "true");
            }
        }
        // An empty query string would leave a bare '?'.
        if url.query() == Some("") {
            url.set_query(None);
        }
        let resp = self
            .send(Method::GET, url.clone(), None, params.follow)
            .await?;
        let url = url.to_string();
        Ok(resp
            .bytes_stream()
            .map(move |r| r.map_err(|source| ClientError::transport("GET", &url, source)))
            .boxed())
    }
}

fn add_list_query(url: &mut Url, params: &ListParams) {
    if params.label_selector.is_none() && params.field_selector.is_none() {
        return;
    }
    let mut q = url.query_pairs_mut();
    if let Some(s) = &params.label_selector {
        q.append_pair("labelSelector", s);
    }
    if let Some(s) = &params.field_selector {
        q.append_pair("fieldSelector", s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::resources;

    fn client(base: &str) -> Client {
        Client::new(base, "t", None).unwrap()
    }

    #[test]
    fn urls_follow_kubernetes_paths() {
        let c = client("https://127.0.0.1:6443");
        let u = |info, ns, name, sub| c.url(info, ns, name, sub).to_string();
        assert_eq!(
            u(&resources::SERVICE, Some("default"), Some("web"), None),
            "https://127.0.0.1:6443/api/v1/namespaces/default/services/web"
        );
        assert_eq!(
            u(&resources::SERVICE, None, None, None),
            "https://127.0.0.1:6443/api/v1/services"
        );
        assert_eq!(
            u(
                &resources::NODE,
                Some("ignored"),
                Some("n1"),
                Some("status")
            ),
            "https://127.0.0.1:6443/api/v1/nodes/n1/status"
        );
        assert_eq!(
            u(&resources::INGRESS, Some("shop"), None, None),
            "https://127.0.0.1:6443/apis/networking.k8s.io/v1/namespaces/shop/ingresses"
        );
        assert_eq!(
            u(&resources::DNS, Some("a"), Some("x/../y?z"), None),
            "https://127.0.0.1:6443/apis/weft.io/v1/namespaces/a/dnses/x%2F..%2Fy%3Fz"
        );
        // A base URL with a path prefix keeps it.
        let c = client("http://proxy/k8s/");
        assert_eq!(
            c.url(&resources::POD, Some("d"), None, None).to_string(),
            "http://proxy/k8s/api/v1/namespaces/d/pods"
        );
    }

    #[test]
    fn list_query_is_encoded() {
        let c = client("http://h");
        let mut url = c.url(&resources::POD, Some("d"), None, None);
        add_list_query(
            &mut url,
            &ListParams {
                label_selector: Some("app=web,tier in (a,b)".into()),
                field_selector: Some("spec.nodeName=n1".into()),
                timeout_seconds: None,
            },
        );
        assert_eq!(
            url.as_str(),
            "http://h/api/v1/namespaces/d/pods?labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&fieldSelector=spec.nodeName%3Dn1"
        );
    }

    #[test]
    fn namespace_is_required_for_namespaced_items() {
        let err = Client::item_namespace(&resources::SERVICE, None, None).unwrap_err();
        assert_eq!(err.to_string(), "a namespace is required for services");
        let obj = serde_json::json!({"metadata": {"namespace": "x"}});
        assert_eq!(
            Client::item_namespace(&resources::SERVICE, None, Some(&obj)).unwrap(),
            Some("x")
        );
        assert_eq!(
            Client::item_namespace(&resources::NODE, Some("x"), None).unwrap(),
            None
        );
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(matches!(
            Client::new("ftp://x", "", None),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            Client::new("https://x", "", Some(b"not pem")),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn list_decodes_null_items() {
        let l: ObjectList<Value> = serde_json::from_str(
            r#"{"kind":"ServiceList","metadata":{"resourceVersion":"9"},"items":null}"#,
        )
        .unwrap();
        assert!(l.items.is_empty());
        assert_eq!(l.resource_version(), "9");
    }
}

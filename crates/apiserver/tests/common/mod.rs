//! An in-process API server over TLS in a temp dir, and a small HTTP helper.
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::Value;
use weft_apiserver::{Config, Running, StoreBackend};

pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub url: String,
    pub token: String,
    pub config: Config,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config
}

fn client_for(running: &Running) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    if let Some(ca) = &running.ca_pem {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM"));
    }
    builder.build().expect("HTTP client")
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_on(store: StoreBackend) -> TestServer {
        Self::start_with(move |c| c.store = store.clone()).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let running = weft_apiserver::start(config.clone())
            .await
            .expect("API server starts");
        TestServer {
            client: client_for(&running),
            url: running.url.clone(),
            token: running.admin_token.clone(),
            running: Some(running),
            dir,
            config,
        }
    }

    /// Stops the server and starts it again on the same data dir and port.
    pub async fn restart(&mut self) {
        let running = self.running.take().expect("running");
        let port = running.address.port();
        running.stop().await.expect("clean stop");
        self.config.bind.set_port(port);
        let running = weft_apiserver::start(self.config.clone())
            .await
            .expect("API server restarts");
        self.client = client_for(&running);
        self.url = running.url.clone();
        self.token = running.admin_token.clone();
        self.running = Some(running);
    }

    pub fn registry(&self) -> &std::sync::Arc<weft_apiserver::registry::Registry> {
        &self.running.as_ref().expect("running").registry
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request sent");
        let code = resp.status().as_u16();
        let text = resp.text().await.expect("body read");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Reads a watch stream until `stop` says enough or `timeout` passes.
    pub async fn watch_events(
        &self,
        path: &str,
        timeout: std::time::Duration,
        mut stop: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        use futures::StreamExt;
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("watch starts");
        assert_eq!(resp.status().as_u16(), 200, "watch {path}");
        let mut stream = resp.bytes_stream();
        let mut buffer = Vec::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !stop(&events) {
            let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(c))) => c,
                _ => break,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                events.push(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
        }
        events
    }
}

pub fn service(name: &str, spec: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

pub fn node(name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

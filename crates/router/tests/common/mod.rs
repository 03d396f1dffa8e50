//! Backends and a router, in process, on loopback addresses the tests bind themselves.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use weft_router::{ForwardMode, RouteTable, Routes, ServerConfig};

/// A body fed chunk by chunk from a channel: streams, never buffered.
pub struct ChanBody(pub mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

type BackendBody = Either<Full<Bytes>, Either<ChanBody, Incoming>>;

/// A backend that answers:
/// - `/stream`: 10 chunks `chunk-N\n`, 150 ms apart;
/// - `/echo-body`: the request body, streamed back as it arrives;
/// - an `Upgrade` request: 101, then echoes bytes;
/// - anything else: a line naming itself, the path and the forwarding headers it saw.
pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

pub async fn backend(ip: &str, name: &'static str) -> Backend {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind backend");
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(move |req| answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend { addr, connections }
}

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<BackendBody>, Infallible> {
    if req.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "echo")
            .header("connection", "upgrade")
            .body(Either::Left(Full::new(Bytes::new())))
            .unwrap();
        return Ok(resp);
    }
    match req.uri().path() {
        "/stream" => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..10 {
                    if tx.send(Bytes::from(format!("chunk-{i}\n"))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            });
            Ok(Response::new(Either::Right(Either::Left(ChanBody(rx)))))
        }
        "/echo-body" => Ok(Response::new(Either::Right(Either::Right(req.into_body())))),
        _ => {
            let text = format!(
                "{name} path={} host={} xff={} xfh={} xfp={} xfprefix={} conn={}",
                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
                header(&req, "host"),
                header(&req, "x-forwarded-for"),
                header(&req, "x-forwarded-host"),
                header(&req, "x-forwarded-proto"),
                header(&req, "x-forwarded-prefix"),
                header(&req, "x-hop"),
            );
            Ok(Response::new(Either::Left(Full::new(Bytes::from(text)))))
        }
    }
}

/// An address on `ip` where nothing listens: connections are refused.
pub async fn refusing(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).expect("bind");
    l.local_addr().unwrap()
}

pub struct Router {
    pub addr: SocketAddr,
    pub routes: Routes,
}

pub fn table(yaml: &str) -> RouteTable {
    let objects = weft_router::source::parse(yaml, "test").expect("test routes parse");
    RouteTable::build(&objects.sources(), ForwardMode::Endpoints)
}

pub async fn router(ip: &str, yaml: &str) -> Router {
    let routes = Routes::new(table(yaml));
    let listener = TcpListener::bind((ip, 0)).await.expect("bind router");
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        connect_timeout: Duration::from_secs(1),
        response_header_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    tokio::spawn(weft_router::serve(
        listener,
        routes.clone(),
        config,
        std::future::pending(),
    ));
    Router { addr, routes }
}

/// A Service `name` with port 80 → Endpoints at `addrs` (one port, unnamed).
pub fn service_yaml(name: &str, addrs: &[SocketAddr]) -> String {
    let mut s = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  clusterIP: 10.96.7.7\n  ports: [{{port: 80}}]\n"
    );
    if !addrs.is_empty() {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\nsubsets:\n"
        ));
        for a in addrs {
            s.push_str(&format!(
                "- addresses: [{{ip: \"{}\"}}]\n  ports: [{{port: {}}}]\n",
                a.ip(),
                a.port()
            ));
        }
    }
    s
}

pub fn http_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET through the router with this Host; (status, body).
pub async fn get(router: SocketAddr, host: &str, path: &str) -> (u16, String) {
    get_with(router, host, path, &[]).await
}

pub async fn get_with(
    router: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = Request::builder()
        .uri(format!("http://{router}{path}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = http_client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("request through the router");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

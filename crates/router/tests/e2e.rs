//! End to end: real HTTP through the router to backends, all in process on 127.0.0.x.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn shop(wear: &str, watch: &str) -> String {
    format!(
        "apiVersion: weft.io/v1\nkind: DNS\nmetadata: {{name: shop}}\nspec:\n  host: shop.example.com\n  paths:\n  - {{path: /wear, service: {{name: {wear}, port: 80}}}}\n  - {{path: /watch, service: {{name: {watch}, port: 80}}}}\n"
    )
}

/// A `wear` backend on `backend_ip` behind a router on `router_ip` serving [`shop`].
async fn wear_behind_router(backend_ip: &str, router_ip: &str) -> (Backend, Router) {
    let wear = backend(backend_ip, "wear").await;
    let yaml = shop("wear", "wear") + &service_yaml("wear", &[wear.addr]);
    (wear, router(router_ip, &yaml).await)
}

#[tokio::test]
async fn two_services_behind_one_dns_object_with_stripping_and_forwarded_headers() {
    let wear = backend("127.0.0.2", "wear").await;
    let watch = backend("127.0.0.3", "watch").await;
    let yaml = shop("wear", "watch")
        + &service_yaml("wear", &[wear.addr])
        + &service_yaml("watch", &[watch.addr]);
    let r = router("127.0.0.4", &yaml).await;

    let (code, body) = get(r.addr, "shop.example.com", "/wear/a?q=1").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("wear path=/a?q=1 "), "{body}");
    let (code, body) = get(r.addr, "Shop.Example.COM:8080", "/watch").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("watch path=/ "), "{body}");
    // Host is passed on unchanged; X-Forwarded-* describe the client's request.
    assert!(body.contains("host=Shop.Example.COM:8080"), "{body}");
    assert!(body.contains("xfh=Shop.Example.COM:8080"), "{body}");
    assert!(
        body.contains("xff=127.0.0.1 ") || body.contains("xff=127."),
        "{body}"
    );
    assert!(body.contains("xfp=http"), "{body}");
    assert!(body.contains("xfprefix=/watch"), "{body}");

    let (_, body) = get_with(
        r.addr,
        "shop.example.com",
        "/wear//x",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("connection", "x-hop"),
            ("x-hop", "secret"),
        ],
    )
    .await;
    assert!(body.contains("xff=203.0.113.7, 127."), "{body}");
    assert!(
        body.contains("conn=-"),
        "headers named by Connection are dropped: {body}"
    );
    // The client's own double slash after the prefix is kept, not invented.
    assert!(body.starts_with("wear path=//x "), "{body}");

    // Segment boundaries: /wearable is not /wear.
    let (code, body) = get(r.addr, "shop.example.com", "/wearable").await;
    assert_eq!(code, 404);
    assert!(
        body.contains("\"shop.example.com\"") && body.contains("\"/wearable\""),
        "404 names host and path: {body}"
    );
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_reused() {
    let (wear, r) = wear_behind_router("127.0.0.5", "127.0.0.6").await;
    for _ in 0..20 {
        // A new client connection each time: the router's upstream side still reuses one.
        let (code, _) = get(r.addr, "shop.example.com", "/wear").await;
        assert_eq!(code, 200);
    }
    assert_eq!(wear.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn ingress_exact_prefix_and_default_backend() {
    let a = backend("127.0.0.7", "a").await;
    let b = backend("127.0.0.7", "b").await;
    let d = backend("127.0.0.7", "d").await;
    let ing = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing}
spec:
  defaultBackend: {service: {name: d, port: {number: 80}}}
  rules:
  - host: api.example.com
    http:
      paths:
      - {path: /v1, pathType: Exact, backend: {service: {name: a, port: {number: 80}}}}
      - {path: /v1, pathType: Prefix, backend: {service: {name: b, port: {number: 80}}}}
  - http:
      paths:
      - {path: /any, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#;
    let yaml = ing.to_string()
        + &service_yaml("a", &[a.addr])
        + &service_yaml("b", &[b.addr])
        + &service_yaml("d", &[d.addr]);
    let r = router("127.0.0.8", &yaml).await;
    let hit = |(code, body): (u16, String)| {
        assert_eq!(code, 200, "{body}");
        body.split(" host=").next().unwrap_or("").to_string()
    };
    assert_eq!(
        hit(get(r.addr, "api.example.com", "/v1").await),
        "a path=/v1"
    );
    assert_eq!(
        hit(get(r.addr, "api.example.com", "/v1/x").await),
        "b path=/v1/x"
    );
    assert_eq!(hit(get(r.addr, "other", "/any/y").await), "a path=/any/y");
    assert_eq!(hit(get(r.addr, "other", "/v1").await), "d path=/v1");
}

#[tokio::test]
async fn missing_endpoints_503_and_refusing_backend_502_name_the_service() {
    let dead = refusing("127.0.0.9").await;
    let yaml = r#"
apiVersion: weft.io/v1
kind: DNS
metadata: {name: errs}
spec:
  host: errs.example
  paths:
  - {path: /empty, service: {name: empty, port: 80}}
  - {path: /dead, service: {name: dead, port: 80}}
  - {path: /ghost, service: {name: ghost, port: 80}}
"#
    .to_string()
        + &service_yaml("empty", &[])
        + &service_yaml("dead", &[dead]);
    let r = router("127.0.0.10", &yaml).await;

    let (code, body) = get(r.addr, "errs.example", "/empty").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no ready endpoint for Service default/empty:80"),
        "{body}"
    );
    let (code, body) = get(r.addr, "errs.example", "/ghost/x").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("Service default/ghost does not exist"),
        "{body}"
    );
    let (code, body) = get(r.addr, "errs.example", "/dead").await;
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("Service default/dead:80") && body.contains(&dead.to_string()),
        "{body}"
    );
    let (code, body) = get(r.addr, "nobody.example", "/x").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("nobody.example"), "{body}");
}

#[tokio::test]
async fn refused_connections_are_retried_on_the_next_endpoint_for_idempotent_requests_only() {
    let live = backend("127.0.0.11", "live").await;
    let dead = refusing("127.0.0.12").await;
    let yaml = shop("wear", "wear") + &service_yaml("wear", &[live.addr, dead]);
    let r = router("127.0.0.13", &yaml).await;
    for _ in 0..6 {
        let (code, body) = get(r.addr, "shop.example.com", "/wear").await;
        assert_eq!(code, 200, "GET retried past the refusing endpoint: {body}");
    }
    // A POST with a body is not retried: half of them meet the refusing endpoint.
    let mut codes = Vec::new();
    for _ in 0..6 {
        let req = Request::post(format!("http://{}/wear", r.addr))
            .header("host", "shop.example.com")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        codes.push(http_client().request(req).await.unwrap().status().as_u16());
    }
    assert!(codes.contains(&502) && codes.contains(&200), "{codes:?}");
}

#[tokio::test]
async fn http2_cleartext_client_with_prior_knowledge() {
    let (_wear, r) = wear_behind_router("127.0.0.14", "127.0.0.15").await;
    let tcp = TcpStream::connect(r.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    for path in ["/wear/h2?x=1", "/wear/again"] {
        let req = Request::get(format!("http://shop.example.com{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.expect("h2 response");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        let want = format!("wear path={} ", path.trim_start_matches("/wear"));
        assert!(body.starts_with(&want), "{body}");
        assert!(body.contains("host=shop.example.com"), "{body}");
    }
}

#[tokio::test]
async fn upgrade_is_passed_through_both_ways() {
    let (_wear, r) = wear_behind_router("127.0.0.16", "127.0.0.17").await;
    let mut tcp = send_raw(r.addr, b"GET /wear/ws HTTP/1.1\r\nHost: shop.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "connection closed early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"hello"[..], b"second message"] {
        tcp.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut got))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn request_and_response_bodies_stream() {
    let (_wear, r) = wear_behind_router("127.0.0.18", "127.0.0.19").await;
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let req = Request::post(format!("http://{}/wear/echo-body", r.addr))
        .header("host", "shop.example.com")
        .body(ChanBody(rx))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .expect("response headers before the request body ends")
        .unwrap();
    let mut body = resp.into_body();
    // Each chunk comes back before the next is sent: nothing waits for the whole body.
    for next in ["second", "third"] {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("echoed chunk in time")
            .unwrap()
            .unwrap();
        assert!(frame.data_ref().is_some_and(|d| !d.is_empty()));
        tx.send(Bytes::from(next)).await.unwrap();
    }
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&rest).ends_with("third"),
        "{rest:?}"
    );
}

#[tokio::test]
async fn route_change_applies_within_a_second_and_streams_in_flight_survive() {
    let old = backend("127.0.0.20", "old").await;
    let new = backend("127.0.0.21", "new").await;
    let services = service_yaml("old", &[old.addr]) + &service_yaml("new", &[new.addr]);
    let r = router("127.0.0.22", &(shop("old", "old") + &services)).await;

    let req = Request::get(format!("http://{}/wear/stream", r.addr))
        .header("host", "shop.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = http_client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body();
    let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "chunk-0\n");

    // The object now points /wear at another Service.
    let changed = Instant::now();
    r.routes.store(table(&(shop("new", "new") + &services)));
    loop {
        let (code, body) = get(r.addr, "shop.example.com", "/wear").await;
        assert_eq!(code, 200);
        if body.starts_with("new ") {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still routed to {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let rest = stream.collect().await.expect("stream completes").to_bytes();
    let want: String = (1..10).map(|i| format!("chunk-{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&rest), want);
}

#[tokio::test]
async fn worker_threads_share_one_port_and_serve() {
    let wear = backend("127.0.0.23", "wear").await;
    let yaml = shop("wear", "wear") + &service_yaml("wear", &[wear.addr]);
    let routes = weft_router::Routes::new(table(&yaml));
    let workers = weft_router::spawn_workers(
        "127.0.0.24:0".parse().unwrap(),
        3,
        routes,
        weft_router::ServerConfig::default(),
    )
    .expect("workers start");
    let addr = workers.local_addr();
    assert_ne!(addr.port(), 0);
    for i in 0..20 {
        let (code, body) = get(addr, "shop.example.com", &format!("/wear/{i}")).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with(&format!("wear path=/{i} ")), "{body}");
    }
    assert!(!workers.any_exited());
    tokio::task::spawn_blocking(move || workers.stop())
        .await
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens once stopped"
    );
}

#[tokio::test]
async fn dropped_workers_stop_listening() {
    let workers = weft_router::spawn_workers(
        "127.0.0.25:0".parse().unwrap(),
        2,
        weft_router::Routes::default(),
        weft_router::ServerConfig::default(),
    )
    .expect("workers start");
    let addr = workers.local_addr();
    let (code, _) = get(addr, "any", "/").await;
    assert_eq!(code, 404);
    drop(workers);
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads an HTTP/1 response to the end of the connection: (head, body).
async fn read_to_close(tcp: &mut TcpStream) -> (String, String) {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut all))
        .await
        .expect("the router closes the connection in time")
        .expect("read");
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn http1_requests_however_their_first_bytes_arrive() {
    let (_wear, r) = wear_behind_router("127.0.0.26", "127.0.0.27").await;

    // "P" could begin HTTP/2's preface: the router must read on, then serve HTTP/1.
    let mut tcp = send_raw(r.addr, b"P").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tcp.write_all(b"OST /wear/split HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.starts_with("wear path=/split "), "{body}");

    // A head longer than the router's first read.
    let long = "x".repeat(3000);
    let req = format!(
        "GET /wear/long HTTP/1.1\r\nHost: shop.example.com\r\nX-Long: {long}\r\nConnection: close\r\n\r\n"
    );
    let mut tcp = send_raw(r.addr, req).await;
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(body.starts_with("wear path=/long "), "{body}");

    // Connecting and closing without a request harms nothing.
    drop(TcpStream::connect(r.addr).await.unwrap());
    let (code, body) = get(r.addr, "shop.example.com", "/wear/after").await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn bytes_sent_with_an_upgrade_handshake_reach_the_backend() {
    let (_wear, r) = wear_behind_router("127.0.0.28", "127.0.0.29").await;
    // One write: the router's first read takes the handshake and the first message.
    let mut tcp = send_raw(r.addr, b"GET /wear/ws HTTP/1.1\r\nHost: shop.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly").await;
    tcp.shutdown().await.unwrap();
    let (head, echoed) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert_eq!(echoed, "early");
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_not_used_again() {
    // Answers one request per connection, keep-alive in name only: it closes right after.
    let listener = tokio::net::TcpListener::bind("127.0.0.30:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let yaml = shop("once", "once") + &service_yaml("once", &[addr]);
    let r = router("127.0.0.31", &yaml).await;
    for i in 0..5 {
        let (code, body) = get(r.addr, "shop.example.com", &format!("/wear/{i}")).await;
        assert_eq!((code, body.as_str()), (200, "ok"), "request {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A POST is never sent on a connection the backend has closed (it could not be
    // sent again): each gets an answer.
    for i in 0..5 {
        let req = format!(
            "POST /wear/{i} HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        let mut tcp = send_raw(r.addr, req).await;
        let (head, body) = read_to_close(&mut tcp).await;
        assert!(head.starts_with("http/1.1 200"), "POST {i}: {head} {body}");
        assert_eq!(body, "ok", "POST {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw connection to the router with `request` written: for bytes hyper's client would
/// not send, and for reading the router's answer as it is on the wire.
async fn send_raw(addr: std::net::SocketAddr, request: impl AsRef<[u8]>) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_ref()).await.unwrap();
    tcp
}

/// Reads from `tcp` until `buf` contains `needle` (or panics after 5 s).
async fn read_until(tcp: &mut TcpStream, buf: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(buf).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, tcp.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} in time; got {:?}",
                    String::from_utf8_lossy(buf)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn pipelined_keep_alive_requests_head_and_errors_answer_in_order() {
    let (wear, r) = wear_behind_router("127.0.0.32", "127.0.0.33").await;
    // Four requests in one write; the 404 carries a body the router must skip.
    let mut tcp = send_raw(
        r.addr,
        b"GET /wear/a HTTP/1.1\r\nHost: shop.example.com\r\n\r\n\
          HEAD /wear/b HTTP/1.1\r\nHost: shop.example.com\r\n\r\n\
          POST /nowhere HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 4\r\n\r\nbody\
          GET /wear/c HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut all))
        .await
        .expect("closed after the last request")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {text}"))
    };
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    assert!(at("wear path=/a ") < at("HTTP/1.1 404"), "{text}");
    assert!(at("HTTP/1.1 404") < at("wear path=/c "), "{text}");
    assert!(
        !text.contains("path=/b"),
        "a HEAD response has no body: {text}"
    );
    assert!(text.contains("no route for host"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        wear.connections.load(Ordering::SeqCst),
        1,
        "one backend connection served all"
    );
}

#[tokio::test]
async fn a_request_body_with_a_length_streams_both_ways_and_the_connection_goes_on() {
    let (_wear, r) = wear_behind_router("127.0.0.34", "127.0.0.35").await;
    let mut tcp = send_raw(r.addr, b"POST /wear/echo-body HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 10\r\n\r\nhello").await;
    // The first half comes back before the second is sent: nothing waits for the body.
    let mut got = Vec::new();
    read_until(&mut tcp, &mut got, "hello").await;
    tcp.write_all(b"world").await.unwrap();
    read_until(&mut tcp, &mut got, "helloworld").await;
    // The response ends with the body, and the same connection serves again.
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    tcp.write_all(b"GET /wear/again HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut again = Vec::new();
    read_until(&mut tcp, &mut again, "wear path=/again ").await;
}

/// A backend that answers every request with `response` and closes.
async fn raw_backend(ip: &str, response: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(response).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_response_without_length_ends_with_the_connection() {
    let addr = raw_backend(
        "127.0.0.36",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    )
    .await;
    let yaml = shop("raw", "raw") + &service_yaml("raw", &[addr]);
    let r = router("127.0.0.37", &yaml).await;
    let mut tcp = send_raw(
        r.addr,
        b"GET /wear HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    )
    .await;
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "until the end");
}

#[tokio::test]
async fn a_backend_that_breaks_the_protocol_is_a_502() {
    let addr = raw_backend("127.0.0.38", b"SMTP ready\r\n\r\n").await;
    let yaml = shop("raw", "raw") + &service_yaml("raw", &[addr]);
    let r = router("127.0.0.39", &yaml).await;
    let (code, body) = get(r.addr, "shop.example.com", "/wear").await;
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("default/raw:80") && body.contains("unparsable response head"),
        "{body}"
    );
}

#[tokio::test]
async fn http_1_0_bad_and_oversized_requests() {
    let (_wear, r) = wear_behind_router("127.0.0.40", "127.0.0.41").await;

    let mut tcp = send_raw(
        r.addr,
        b"GET /wear/old HTTP/1.0\r\nHost: shop.example.com\r\n\r\n",
    )
    .await;
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(body.starts_with("wear path=/old "), "{body}");

    let mut tcp = send_raw(
        r.addr,
        b"GET /wear HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    )
    .await;
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(body.contains("more than one Host header"), "{body}");

    let mut tcp = TcpStream::connect(r.addr).await.unwrap();
    let huge = format!(
        "GET /wear HTTP/1.1\r\nHost: shop.example.com\r\nX-Big: {}\r\n\r\n",
        "x".repeat(70 * 1024)
    );
    // The router may answer and close before it has read all of it.
    let _ = tcp.write_all(huge.as_bytes()).await;
    let (head, body) = read_to_close(&mut tcp).await;
    assert!(head.starts_with("http/1.1 431"), "{head}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");
}

//! A tiny HTTP/1.1 server in the spirit of Kubernetes' `agnhost netexec`, for checking
//! Service load balancing and source addresses from inside pods:
//!
//! - `GET /` answers `hostname=<h> podIP=<address the connection arrived on> client=<ip:port>`
//! - `/hostname` the hostname, `/clientip` the client's `ip:port`, `/healthz` `ok`
//! - `/echo?msg=…` the message
//! - `/stream?lines=N&interval_ms=M` N lines (default 10), one every M ms (default 200),
//!   `line i/N from <hostname>`: a long streaming response
//!
//! Connections are kept alive, so a test can tell connection reuse from new connections.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Binds `addr` and serves until an unrecoverable error.
pub async fn serve(addr: SocketAddr, hostname: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_listener(listener, hostname).await
}

/// Serves on a bound listener (lets callers pick port 0 and learn the port first).
pub async fn serve_listener(listener: TcpListener, hostname: String) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like pass; keep serving.
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                tracing::debug!(error = %e, "connection closed before it was served");
                continue;
            }
        };
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&req, &hostname, local, peer);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "echo connection");
            }
        });
    }
}

// Too many open files (process, system): transient, connections close and free them.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE)
}

fn respond<B>(
    req: &Request<B>,
    hostname: &str,
    local: SocketAddr,
    peer: SocketAddr,
) -> Response<BoxBody<Bytes, Infallible>> {
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; print them as IPv4.
    let pod_ip = local.ip().to_canonical();
    let client = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let (status, body) = match req.uri().path() {
        "/" => (
            StatusCode::OK,
            format!("hostname={hostname} podIP={pod_ip} client={client}\n"),
        ),
        "/hostname" => (StatusCode::OK, hostname.to_string()),
        "/clientip" => (StatusCode::OK, client.to_string()),
        "/healthz" => (StatusCode::OK, "ok".to_string()),
        "/echo" => (
            StatusCode::OK,
            query_param(req.uri().query().unwrap_or(""), "msg"),
        ),
        "/stream" => {
            let query = req.uri().query().unwrap_or("");
            let number = |name: &str, default: u64| {
                query_param(query, name)
                    .parse::<u64>()
                    .map_or(default, |n| n.min(100_000))
            };
            return text_response(
                StatusCode::OK,
                stream_lines(
                    hostname.to_string(),
                    number("lines", 10),
                    Duration::from_millis(number("interval_ms", 200)),
                ),
            );
        }
        _ => (StatusCode::NOT_FOUND, "404 page not found\n".to_string()),
    };
    text_response(status, Full::new(Bytes::from(body)).boxed())
}

/// `lines` lines, the first at once, then one every `interval`.
fn stream_lines(hostname: String, lines: u64, interval: Duration) -> BoxBody<Bytes, Infallible> {
    let frames = futures::stream::unfold(1u64, move |i| {
        let hostname = hostname.clone();
        async move {
            if i > lines {
                return None;
            }
            if i > 1 {
                tokio::time::sleep(interval).await;
            }
            let line = format!("line {i}/{lines} from {hostname}\n");
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), i + 1))
        }
    });
    StreamBody::new(frames).boxed()
}

fn text_response(
    status: StatusCode,
    body: BoxBody<Bytes, Infallible>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The percent-decoded value of `name` in a query string, or empty.
fn query_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::*;

    /// Reads one response: status code and body (by Content-Length).
    async fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, String) {
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .await
            .expect("status line");
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.expect("body");
        (code, String::from_utf8(body).expect("utf-8"))
    }

    #[tokio::test]
    async fn streams_lines_one_interval_apart() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_listener(listener, "echo-1".into()));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // HTTP/1.0: the body ends when the server closes, with no chunk framing to undo.
        let started = std::time::Instant::now();
        stream
            .write_all(b"GET /stream?lines=3&interval_ms=100 HTTP/1.0\r\n\r\n")
            .await
            .expect("request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("response");
        let body = response.split("\r\n\r\n").nth(1).expect("body");
        assert_eq!(
            body,
            "line 1/3 from echo-1\nline 2/3 from echo-1\nline 3/3 from echo-1\n"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "the lines were spread out"
        );
    }

    #[tokio::test]
    async fn answers_like_netexec_over_one_kept_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_listener(listener, "echo-1".into()));

        let stream = TcpStream::connect(addr).await.expect("connect");
        let client = stream.local_addr().expect("client addr");
        let mut reader = BufReader::new(stream);
        let ask = |path: &'static str| {
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
        };
        let requests = [
            (
                "/",
                200,
                format!("hostname=echo-1 podIP=127.0.0.1 client={client}\n"),
            ),
            ("/hostname", 200, "echo-1".to_string()),
            ("/clientip", 200, client.to_string()),
            ("/healthz", 200, "ok".to_string()),
            (
                "/echo?msg=hello%20there+you",
                200,
                "hello there you".to_string(),
            ),
            ("/nope", 404, "404 page not found\n".to_string()),
        ];
        // All on the same connection: keep-alive works, and the client port stays put.
        for (path, code, body) in requests {
            reader.get_mut().write_all(&ask(path)).await.expect("send");
            assert_eq!(read_response(&mut reader).await, (code, body), "{path}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
        assert_eq!(query_param("x=1&msg=hi", "msg"), "hi");
        assert_eq!(query_param("msg", "msg"), "");
        assert_eq!(query_param("", "msg"), "");
    }
}

//! The HTTP/1.1 fast path: requests are parsed with `httparse`, their heads rewritten in
//! one buffer and written to a pooled backend socket; the response head is rewritten the
//! same way and bodies are relayed as the bytes arrive (chunked bodies as they are, their
//! framing followed only to find the end).
//!
//! Why not hyper here: hyper's server and client spend 6–9 µs of user time per proxied
//! keep-alive request in `scripts/bench-router` (typed header maps built and torn down
//! on both sides, a body channel per message), nginx about 3 µs. The fast path does
//! what nginx does and nothing more. Anything unusual — HTTP/1.0, an upgrade,
//! `Expect`, a request body with a transfer coding, an absolute-form target — hands the
//! connection, from that request on, to hyper ([`Served::HandOff`]), which serves it
//! as before.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Failure;
use crate::forward::{failure_body, is_idempotent_method, Forwarder};
use crate::headers::{self, tokens};
use crate::routes::{normalize_host, Backend, Route};

/// The largest request or response head accepted (nginx's large_client_header_buffers
/// default is 4 × 8 KiB; hyper's is about 400 KiB).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Header fields per head.
const MAX_HEADERS: usize = 100;
/// Read size for bodies.
const READ_CHUNK: usize = 16 * 1024;

/// Never copied from a response. `Transfer-Encoding` and `Trailer` stay: a chunked body
/// is relayed as it is, trailers included.
const RESPONSE_DROPPED: [&str; 4] = ["connection", "keep-alive", "proxy-connection", "upgrade"];

/// How a client connection ended on the fast path.
pub(crate) enum Served {
    /// Done: closed by either side, or after an answer that closes it.
    Closed,
    /// To be served by hyper from the buffered bytes on (a request the fast path leaves
    /// to it; nothing of that request has been answered).
    HandOff(TcpStream, BytesMut),
}

/// Serves HTTP/1.1 requests on `client`, `buffered` being what was already read.
pub(crate) async fn serve(
    mut client: TcpStream,
    mut buffered: BytesMut,
    peer: SocketAddr,
    forwarder: &Forwarder,
    head_timeout: Duration,
) -> Served {
    let mut response_buf = BytesMut::new();
    loop {
        let plan = loop {
            let planned = if buffered.is_empty() {
                Ok(None)
            } else {
                plan(&buffered, peer, forwarder)
            };
            match planned {
                Ok(Some(plan)) => break plan,
                Ok(None) => {}
                Err(Early::HandOff) => return Served::HandOff(client, buffered),
                Err(Early::Refuse {
                    failure,
                    request_len,
                    close,
                }) => {
                    failure.log();
                    // The request's body is dropped with it when all of it is here;
                    // otherwise the connection closes after the answer.
                    let whole = request_len.is_some_and(|n| n <= buffered.len() as u64);
                    let close = close || !whole;
                    if write_failure(&mut client, &failure, close).await.is_err() {
                        return Served::Closed;
                    }
                    if close {
                        linger(client).await;
                        return Served::Closed;
                    }
                    buffered.advance(request_len.unwrap_or(0) as usize);
                    continue;
                }
            }
            if buffered.capacity() - buffered.len() < 1024 {
                buffered.reserve(4096);
            }
            match tokio::time::timeout(head_timeout, client.read_buf(&mut buffered)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) | Ok(Err(_)) => return Served::Closed,
                Err(_) => {
                    tracing::debug!(%peer, "no complete request head in time; closing");
                    return Served::Closed;
                }
            }
        };
        match forward(
            &mut client,
            &mut buffered,
            &mut response_buf,
            plan,
            forwarder,
        )
        .await
        {
            Next::KeepAlive => {}
            Next::Close => return Served::Closed,
            Next::Linger => {
                linger(client).await;
                return Served::Closed;
            }
        }
    }
}

/// A request head the fast path serves, ready to go upstream.
struct Plan {
    /// Bytes of the client's head.
    head_len: usize,
    body_len: u64,
    /// The rewritten head for the backend.
    upstream_head: Vec<u8>,
    route: Arc<Route>,
    /// The client asked to close after this request.
    close: bool,
    head_method: bool,
    /// Sending it twice is harmless (RFC 9110 §9.2.2).
    idempotent: bool,
}

/// Why a request does not become a [`Plan`].
enum Early {
    HandOff,
    /// Answered by the router itself. `request_len` is the head and body length when
    /// known (the body can then be skipped and the connection kept).
    Refuse {
        failure: Failure,
        request_len: Option<u64>,
        close: bool,
    },
}

fn bad(why: impl Into<String>) -> Early {
    Early::Refuse {
        failure: Failure::BadRequest(why.into()),
        request_len: None,
        close: true,
    }
}

/// Parses the head at the start of `buf` and routes it. `Ok(None)`: not all there yet.
fn plan(buf: &[u8], peer: SocketAddr, forwarder: &Forwarder) -> Result<Option<Plan>, Early> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match within_limits(req.parse(buf), buf.len()) {
        HeadParse::Complete(n) => n,
        HeadParse::Partial => return Ok(None),
        HeadParse::TooLarge => {
            return Err(Early::Refuse {
                failure: Failure::HeadTooLarge {
                    bytes: MAX_HEAD,
                    fields: MAX_HEADERS,
                },
                request_len: None,
                close: true,
            })
        }
        HeadParse::Bad(e) => return Err(bad(format!("unparsable request head: {e}"))),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        // HTTP/1.0 and its keep-alive rules: hyper's.
        return Err(Early::HandOff);
    };
    if !target.starts_with('/') {
        return Err(Early::HandOff);
    }

    let mut authority: Option<&str> = None;
    let mut content_length: Option<u64> = None;
    let mut close = false;
    let mut prior_forwarded_for: Option<&[u8]> = None;
    // Fields the client's `Connection` header names: hop-by-hop as well.
    let mut named: Vec<&str> = Vec::new();
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            if authority.is_some() {
                return Err(bad("more than one Host header"));
            }
            let value = std::str::from_utf8(field.value)
                .map_err(|_| bad("the Host header is not UTF-8"))?;
            authority = Some(value.trim());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = content_length_value(field.value).ok_or_else(|| {
                bad(format!(
                    "Content-Length {:?} is not a length",
                    String::from_utf8_lossy(field.value)
                ))
            })?;
            if content_length.is_some_and(|c| c != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if ["transfer-encoding", "upgrade", "expect"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            return Err(Early::HandOff);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    return Err(Early::HandOff);
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    named.push(token);
                }
            }
        } else if name.eq_ignore_ascii_case("x-forwarded-for") && prior_forwarded_for.is_none() {
            prior_forwarded_for = Some(field.value).filter(|v| !v.trim_ascii().is_empty());
        }
    }
    let body_len = content_length.unwrap_or(0);
    let request_len = head_len as u64 + body_len;
    let authority = authority.unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let matched = match forwarder.route(authority, path, query) {
        Ok(matched) => matched,
        Err(failure) => {
            return Err(Early::Refuse {
                failure,
                request_len: Some(request_len),
                close,
            })
        }
    };

    let mut head = Vec::with_capacity(head_len + 160);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(matched.upstream_path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for field in req.headers.iter() {
        let name = field.name;
        // Hop-by-hop fields and those the router sets itself are never copied.
        let dropped = headers::is_hop_by_hop(name)
            || headers::is_forwarding(name)
            || named.iter().any(|h| name.eq_ignore_ascii_case(h));
        if !dropped {
            push_field(&mut head, name.as_bytes(), field.value);
        }
    }
    let mut forwarded_for = Vec::with_capacity(48);
    if let Some(prior) = prior_forwarded_for {
        forwarded_for.extend_from_slice(prior);
        forwarded_for.extend_from_slice(b", ");
    }
    let _ = write!(forwarded_for, "{}", peer.ip());
    push_field(&mut head, b"X-Forwarded-For", &forwarded_for);
    push_field(&mut head, b"X-Forwarded-Host", authority.as_bytes());
    push_field(&mut head, b"X-Forwarded-Proto", b"http");
    let route = matched.route;
    if route.strip && !route.key.is_empty() {
        push_field(&mut head, b"X-Forwarded-Prefix", route.key.as_bytes());
    }
    head.extend_from_slice(b"\r\n");

    Ok(Some(Plan {
        head_len,
        body_len,
        upstream_head: head,
        close,
        head_method: method == "HEAD",
        idempotent: is_idempotent_method(method),
        route,
    }))
}

/// A head parse held to [`MAX_HEAD`] and [`MAX_HEADERS`].
enum HeadParse {
    Complete(usize),
    /// Not all there yet, and within the limits so far.
    Partial,
    TooLarge,
    Bad(httparse::Error),
}

fn within_limits(parsed: httparse::Result<usize>, buffered: usize) -> HeadParse {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => HeadParse::Complete(n),
        Ok(httparse::Status::Partial) if buffered < MAX_HEAD => HeadParse::Partial,
        Ok(_) | Err(httparse::Error::TooManyHeaders) => HeadParse::TooLarge,
        Err(e) => HeadParse::Bad(e),
    }
}

fn push_field(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Digits only (RFC 9110 §8.6), at most 18 of them.
fn content_length_value(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// What the client connection does after a request.
enum Next {
    KeepAlive,
    Close,
    /// Close once the client has stopped sending (see [`linger`]).
    Linger,
}

/// How one exchange with a backend went.
enum Exchange {
    /// The response went to the client.
    Done { client_keep_alive: bool },
    /// A reused connection the backend had closed: nothing was answered, and the
    /// request (whole in hand) can go again on another connection.
    Stale,
    /// No answer from the backend; nothing was sent to the client yet.
    Failed(Failure),
    /// The client went away, or the response was cut off after it started.
    Broken,
}

async fn forward(
    client: &mut TcpStream,
    buffered: &mut BytesMut,
    response_buf: &mut BytesMut,
    plan: Plan,
    forwarder: &Forwarder,
) -> Next {
    let in_hand = plan.body_len.min((buffered.len() - plan.head_len) as u64) as usize;
    let mut request = plan.upstream_head;
    request.extend_from_slice(&buffered[plan.head_len..plan.head_len + in_hand]);
    buffered.advance(plan.head_len + in_hand);
    let body_to_read = plan.body_len - in_hand as u64;
    let backend = &plan.route.backend;
    let exchange = Request {
        backend,
        bytes: &request,
        body_to_read,
        head_method: plan.head_method,
        client_close: plan.close,
        response_header_timeout: forwarder.response_header_timeout,
    };

    // Idempotent and without a body: another endpoint may be tried.
    let tries = if plan.idempotent && plan.body_len == 0 {
        backend.targets.len()
    } else {
        1
    };
    let mut failure = None;
    'targets: for (attempt, addr) in backend.round_robin().take(tries).enumerate() {
        let checkout = || loop {
            let socket = forwarder.sockets.checkout(addr)?;
            // A request that must not go twice takes no connection the backend has
            // already closed (tokio knows without a syscall unless data is pending).
            if plan.idempotent || still_open(&socket) {
                return Some(socket);
            }
        };
        let mut pooled = checkout();
        loop {
            let reused = pooled.is_some();
            let mut upstream = match pooled.take() {
                Some(socket) => socket,
                None => match forwarder.sockets.connect_tcp(addr).await {
                    Ok(socket) => socket,
                    Err(detail) => {
                        if attempt + 1 < tries {
                            tracing::warn!(service = %backend.service_port(), %addr, error = %detail, "connect failed; trying the next endpoint");
                            continue 'targets;
                        }
                        failure = Some(Failure::Backend {
                            service: backend.service_port(),
                            addr,
                            detail,
                        });
                        break 'targets;
                    }
                },
            };
            match exchange
                .run(client, &mut upstream, response_buf, addr, reused)
                .await
            {
                (Exchange::Done { client_keep_alive }, reusable) => {
                    if reusable {
                        forwarder.sockets.checkin(addr, upstream);
                    }
                    return if client_keep_alive {
                        Next::KeepAlive
                    } else {
                        Next::Close
                    };
                }
                // Sent again only if that is harmless, on the next pooled connection
                // or a new one.
                (Exchange::Stale, _) if plan.idempotent && body_to_read == 0 => {
                    pooled = checkout();
                }
                (Exchange::Stale, _) => {
                    failure = Some(Failure::Backend {
                        service: backend.service_port(),
                        addr,
                        detail: "closed a kept-alive connection before answering".into(),
                    });
                    break 'targets;
                }
                (Exchange::Failed(f), _) => {
                    failure = Some(f);
                    break 'targets;
                }
                (Exchange::Broken, _) => return Next::Close,
            }
        }
    }
    let failure = failure.unwrap_or_else(|| Failure::NoEndpoints {
        service: backend.service_port(),
        host: normalize_host(&plan.route.host),
        path: plan.route.path.clone(),
    });
    failure.log();
    // A request body not read in full leaves the connection unusable.
    let close = plan.close || body_to_read > 0;
    match write_failure(client, &failure, close).await {
        Ok(()) if !close => Next::KeepAlive,
        Ok(()) if body_to_read > 0 => Next::Linger,
        _ => Next::Close,
    }
}

/// Whether a pooled connection is still open: no end of stream nor stray bytes waiting.
fn still_open(socket: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(socket.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// One request as it goes to a backend.
struct Request<'a> {
    backend: &'a Backend,
    /// The rewritten head and the body bytes already read.
    bytes: &'a [u8],
    /// Body bytes still to come from the client.
    body_to_read: u64,
    head_method: bool,
    client_close: bool,
    response_header_timeout: Duration,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes; the client connection closes after it too.
    Close,
}

/// A response head, rewritten for the client.
struct ResponseHead {
    len: usize,
    status: u16,
    rewritten: Vec<u8>,
    framing: Framing,
    /// The backend connection can serve another request afterwards.
    reusable: bool,
}

impl Request<'_> {
    fn failed(&self, addr: SocketAddr, detail: String) -> Exchange {
        Exchange::Failed(Failure::Backend {
            service: self.backend.service_port(),
            addr,
            detail,
        })
    }

    /// Sends the request over `upstream` and relays the response. Also says whether the
    /// connection can go back to the pool.
    async fn run(
        &self,
        client: &mut TcpStream,
        upstream: &mut TcpStream,
        buf: &mut BytesMut,
        addr: SocketAddr,
        reused: bool,
    ) -> (Exchange, bool) {
        let failed = |detail| self.failed(addr, detail);
        if let Err(e) = upstream.write_all(self.bytes).await {
            return (
                if reused {
                    Exchange::Stale
                } else {
                    failed(format!("sending the request: {e}"))
                },
                false,
            );
        }
        if self.body_to_read == 0 {
            return self.respond(client, upstream, buf, addr, reused).await;
        }
        // The rest of the body streams to the backend while its response is awaited and
        // relayed: a backend may answer (and echo) before the body ends.
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let mut body_buf = BytesMut::new();
        let (body, (exchange, reusable)) = tokio::join!(
            copy_exact(
                &mut client_read,
                &mut upstream_write,
                self.body_to_read,
                &mut body_buf
            ),
            self.respond(&mut client_write, &mut upstream_read, buf, addr, false),
        );
        match (body, exchange) {
            (Ok(()), exchange) => (exchange, reusable),
            // Answered before the body was all read: the client connection cannot go on.
            (Err(_), Exchange::Done { .. }) => (
                Exchange::Done {
                    client_keep_alive: false,
                },
                false,
            ),
            (Err(broken), _) => (broken, false),
        }
    }

    /// Reads the response head (passing interim responses on) and relays the response.
    async fn respond(
        &self,
        client: &mut (impl AsyncWrite + Unpin),
        upstream: &mut (impl AsyncRead + Unpin),
        buf: &mut BytesMut,
        addr: SocketAddr,
        reused: bool,
    ) -> (Exchange, bool) {
        let failed = |detail| self.failed(addr, detail);
        buf.clear();
        let head = loop {
            let read = tokio::time::timeout(
                self.response_header_timeout,
                read_response_head(upstream, buf, self.head_method, self.client_close),
            )
            .await;
            match read {
                Err(_) => {
                    return (
                        Exchange::Failed(Failure::Timeout {
                            service: self.backend.service_port(),
                            addr,
                            secs: self.response_header_timeout.as_secs_f64(),
                        }),
                        false,
                    );
                }
                Ok(Err(HeadError::Closed)) if reused => return (Exchange::Stale, false),
                Ok(Err(HeadError::Closed)) => {
                    return (
                        failed("closed the connection without a response".into()),
                        false,
                    )
                }
                Ok(Err(HeadError::Bad(why))) => return (failed(why), false),
                Ok(Ok(head)) if is_interim(head.status) => {
                    // Interim responses (100 Continue, 103 Early Hints) pass through;
                    // 101 was never asked for (upgrades go through hyper).
                    if head.status == 101 {
                        return (
                            failed("switched protocols without being asked to".into()),
                            false,
                        );
                    }
                    if client.write_all(&head.rewritten).await.is_err() {
                        return (Exchange::Broken, false);
                    }
                    buf.advance(head.len);
                }
                Ok(Ok(head)) => break head,
            }
        };
        buf.advance(head.len);
        let client_keep_alive = !self.client_close && head.framing != Framing::Close;
        match relay_body(client, upstream, buf, head.rewritten, head.framing).await {
            Ok(clean_end) => (
                Exchange::Done { client_keep_alive },
                head.reusable && clean_end,
            ),
            Err(()) => (Exchange::Broken, false),
        }
    }
}

/// 1xx: an interim response, another follows.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status)
}

enum HeadError {
    /// The backend closed (or reset) the connection before any response byte.
    Closed,
    Bad(String),
}

/// Reads until `buf` holds a whole response head and parses it.
async fn read_response_head(
    upstream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    head_method: bool,
    client_close: bool,
) -> Result<ResponseHead, HeadError> {
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_response_head(buf, head_method, client_close)? {
                return Ok(head);
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        match upstream.read_buf(buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(HeadError::Closed),
            Ok(0) => return Err(HeadError::Bad("closed the connection mid-response".into())),
            Err(e) => return Err(HeadError::Bad(format!("reading the response: {e}"))),
            Ok(_) => {}
        }
    }
}

fn parse_response_head(
    buf: &[u8],
    head_method: bool,
    client_close: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match within_limits(resp.parse(buf), buf.len()) {
        HeadParse::Complete(n) => n,
        HeadParse::Partial => return Ok(None),
        HeadParse::TooLarge => return Err(HeadError::Bad("response head too large".into())),
        HeadParse::Bad(e) => return Err(HeadError::Bad(format!("unparsable response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let version = resp.version.unwrap_or(0);

    let mut length = None;
    let mut chunked = None;
    let mut backend_close = version == 0;
    let mut dated = false;
    let mut named: Vec<&str> = Vec::new();
    for field in resp.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("date") {
            dated = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = content_length_value(field.value)
                .ok_or_else(|| HeadError::Bad("unreadable Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Bad("conflicting Content-Length headers".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding (RFC 9112 §6.3).
            chunked = Some(
                tokens(field.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case("chunked")),
            );
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                if token.eq_ignore_ascii_case("close") {
                    backend_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    // An HTTP/1.0 backend that keeps the connection open is still one
                    // whose rules differ; it is not reused.
                } else {
                    named.push(token);
                }
            }
        }
    }
    let interim = is_interim(status);
    let framing = if head_method || status == 204 || status == 304 || interim {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    let client_close = client_close || framing == Framing::Close;

    let mut rewritten = Vec::with_capacity(len + 32);
    let _ = write!(rewritten, "HTTP/1.1 {status} ");
    rewritten.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    rewritten.extend_from_slice(b"\r\n");
    for field in resp.headers.iter() {
        let name = field.name;
        let dropped = RESPONSE_DROPPED.iter().any(|h| name.eq_ignore_ascii_case(h))
            || named.iter().any(|h| name.eq_ignore_ascii_case(h))
            // A transfer coding wins over a length (RFC 9112 §6.3).
            || (chunked.is_some() && name.eq_ignore_ascii_case("content-length"));
        if !dropped {
            push_field(&mut rewritten, name.as_bytes(), field.value);
        }
    }
    if !dated && !interim {
        // RFC 9110 §6.6.1: a recipient with a clock adds the Date it received it at.
        now_http_date(|date| push_field(&mut rewritten, b"Date", date.as_bytes()));
    }
    if client_close && !interim {
        push_field(&mut rewritten, b"Connection", b"close");
    }
    rewritten.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        status,
        rewritten,
        framing,
        reusable: !backend_close && framing != Framing::Close,
    }))
}

/// Sends the rewritten head with whatever body bytes `buf` already holds, then relays the
/// rest of the body. `Ok(true)`: the body ended where its framing said and nothing
/// followed it (the backend connection is clean for another request).
async fn relay_body(
    client: &mut (impl AsyncWrite + Unpin),
    upstream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    mut head: Vec<u8>,
    framing: Framing,
) -> Result<bool, ()> {
    let mut remaining = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunks = ChunkedEnd::default();
    let mut first = true;
    loop {
        // How much of `buf` belongs to this body, and whether the body is complete.
        let (take, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = remaining.min(buf.len() as u64) as usize;
                remaining -= take as u64;
                (take, remaining == 0)
            }
            Framing::Chunked => match chunks.feed(buf).map_err(|_| ())? {
                Some(end) => (end, true),
                None => (buf.len(), false),
            },
            Framing::Close => (buf.len(), false),
        };
        if first {
            // The head and the body's first bytes in one write.
            head.extend_from_slice(&buf[..take]);
            client.write_all(&head).await.map_err(|_| ())?;
            first = false;
        } else if take > 0 {
            client.write_all(&buf[..take]).await.map_err(|_| ())?;
        }
        let extra = buf.len() > take;
        buf.clear();
        if done {
            return Ok(!extra);
        }
        if buf.capacity() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        match upstream.read_buf(buf).await {
            Ok(0) if framing == Framing::Close => return Ok(false),
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

/// Copies exactly `n` bytes of request body from the client to the backend.
async fn copy_exact(
    client: &mut (impl AsyncRead + Unpin),
    upstream: &mut (impl AsyncWrite + Unpin),
    mut n: u64,
    buf: &mut BytesMut,
) -> Result<(), Exchange> {
    while n > 0 {
        buf.clear();
        let want = n.min(READ_CHUNK as u64) as usize;
        buf.reserve(want);
        let got = match client.read_buf(&mut (&mut *buf).limit(want)).await {
            Ok(0) | Err(_) => return Err(Exchange::Broken),
            Ok(got) => got,
        };
        if upstream.write_all(&buf[..got]).await.is_err() {
            return Err(Exchange::Broken);
        }
        n -= got as u64;
    }
    Ok(())
}

/// Follows chunked framing (RFC 9112 §7.1) over the bytes as they pass, only to find
/// where the body ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkedEnd {
    #[default]
    SizeStart,
    Size(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLineLf,
    FinalLf,
    Done,
}

#[derive(Debug)]
struct BadChunk;

impl ChunkedEnd {
    /// Feeds the next bytes; `Some(n)`: the body ends after the first `n` of them.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        use ChunkedEnd::*;
        let mut i = 0;
        while i < bytes.len() {
            if let Data(left) = *self {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                *self = if take == left {
                    DataCr
                } else {
                    Data(left - take)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            *self = match (*self, b) {
                (SizeStart, _) => Size(u64::from(hex(b).ok_or(BadChunk)?)),
                (Size(n), b'\r') => SizeLf(n),
                (Size(n), b';' | b' ' | b'\t') => Extension(n),
                (Size(n), _) => {
                    let digit = u64::from(hex(b).ok_or(BadChunk)?);
                    Size(n.checked_mul(16).ok_or(BadChunk)? + digit)
                }
                (Extension(n), b'\r') => SizeLf(n),
                (Extension(n), _) => Extension(n),
                (SizeLf(0), b'\n') => TrailerStart,
                (SizeLf(n), b'\n') => Data(n),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => SizeStart,
                (TrailerStart, b'\r') => FinalLf,
                (TrailerLine, b'\r') => TrailerLineLf,
                (TrailerStart | TrailerLine, _) => TrailerLine,
                (TrailerLineLf, b'\n') => TrailerStart,
                (FinalLf, b'\n') => {
                    *self = Done;
                    return Ok(Some(i));
                }
                _ => return Err(BadChunk),
            };
        }
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The current time as an HTTP date, formatted at most once a second per thread.
fn now_http_date<T>(use_it: impl FnOnce(&str) -> T) -> T {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        use_it(&cached.1)
    })
}

/// Closes a connection the client may still be sending on: a close with unread data
/// would reset it and could destroy the answer before the client reads it, so the
/// write side is shut first and what arrives is read and dropped for a little while
/// (nginx's lingering close).
async fn linger(mut client: TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const AT_MOST: usize = 1 << 20;
    if client.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; READ_CHUNK];
    let mut dropped = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < AT_MOST {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// The router's own answer (4xx/5xx) with its plain-text body.
async fn write_failure(
    client: &mut TcpStream,
    failure: &Failure,
    close: bool,
) -> std::io::Result<()> {
    let body = failure_body(failure);
    let status = failure.status();
    let connection = if close { "connection: close\r\n" } else { "" };
    let date = now_http_date(str::to_string);
    let response = format!(
        "HTTP/1.1 {} {}\r\ndate: {date}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{connection}\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    client.write_all(response.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(input: &[&[u8]]) -> Result<Option<usize>, BadChunk> {
        let mut state = ChunkedEnd::default();
        let mut offset = 0;
        for part in input {
            if let Some(end) = state.feed(part)? {
                return Ok(Some(offset + end));
            }
            offset += part.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_end_is_found_across_any_split() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(ends(&[a, b]).unwrap(), Some(end), "split at {split}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(ends(&bytes).unwrap(), Some(end));
    }

    #[test]
    fn chunked_without_trailers_and_unfinished_bodies() {
        assert_eq!(ends(&[b"0\r\n\r\n"]).unwrap(), Some(5));
        assert_eq!(ends(&[b"3\r\nabc\r\n"]).unwrap(), None);
        assert_eq!(ends(&[b"3\r\nabc\r\n0\r\n"]).unwrap(), None);
    }

    #[test]
    fn malformed_chunks_are_errors() {
        assert!(ends(&[b"zz\r\n"]).is_err());
        assert!(ends(&[b"3\r\nabcX"]).is_err());
        assert!(ends(&[b"3\n"]).is_err());
        assert!(ends(&[b"fffffffffffffffffff\r\n"]).is_err());
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length_value(b"42"), Some(42));
        assert_eq!(content_length_value(b" 7 "), Some(7));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1,1",
            b"0x10",
            b"1234567890123456789",
        ] {
            assert_eq!(content_length_value(bad), None, "{bad:?}");
        }
    }

    fn head(raw: &str, head_method: bool) -> ResponseHead {
        match parse_response_head(raw.as_bytes(), head_method, false) {
            Ok(Some(h)) => h,
            Ok(None) => panic!("incomplete"),
            Err(HeadError::Bad(why)) => panic!("{why}"),
            Err(HeadError::Closed) => panic!("closed"),
        }
    }

    #[test]
    fn response_framing_and_rewriting() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\nhello";
        let h = head(raw, false);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        assert_eq!(
            String::from_utf8(h.rewritten).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n\r\n"
        );
        assert_eq!(h.len, raw.len() - "hello".len());

        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!String::from_utf8_lossy(&h.rewritten).contains("Content-Length"));

        let h = head("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false);
        assert_eq!(h.framing, Framing::Close);
        let text = String::from_utf8_lossy(&h.rewritten);
        assert!(
            text.contains("\r\nDate: ") && text.ends_with(" GMT\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
        assert!(!h.reusable);
        assert!(String::from_utf8_lossy(&h.rewritten).contains("Connection: close\r\n"));

        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.1 304 Not Modified\r\n\r\n", false);
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            false,
        );
        assert!(!h.reusable);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!h.reusable);
    }
}

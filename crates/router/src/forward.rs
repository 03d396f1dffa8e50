//! Forwarding one request: route lookup, header rewriting, the upstream request over
//! pooled connections with round-robin and retry, and protocol upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::Failure;
use crate::headers;
use crate::routes::{normalize_host, Backend, Matched};
use crate::server::{ClientIo, Routes, ServerConfig};
use crate::upstream::{Pool, Upstream, UpstreamError};

/// What clients receive: a backend's streamed body, or the router's own short message.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;
/// What backends receive: the client's streamed body, or nothing (a retryable request's
/// empty body, recreated per attempt).
pub(crate) type UpstreamBody = Either<Incoming, Empty<Bytes>>;

pub(crate) struct Forwarder {
    routes: Routes,
    upstream: Upstream,
    /// Plain backend sockets for the HTTP/1.1 fast path.
    pub(crate) sockets: Arc<Pool<TcpStream>>,
    pub(crate) response_header_timeout: Duration,
}

impl Forwarder {
    /// Within a runtime: the backend pools start their idle sweepers there.
    pub(crate) fn new(routes: Routes, config: &ServerConfig) -> Forwarder {
        Forwarder {
            routes,
            upstream: Upstream::new(Pool::new(config)),
            sockets: Pool::new(config),
            response_header_timeout: config.response_header_timeout,
        }
    }

    /// The route for a request to `authority` (Host) and `path`, with at least one
    /// target, read from the current table once: the request keeps this route even if
    /// the table changes.
    pub(crate) fn route(
        &self,
        authority: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<Matched, Failure> {
        let host = normalize_host(authority);
        let Some(matched) = self.routes.current().lookup(&host, path, query) else {
            return Err(Failure::NoRoute {
                host,
                path: path.to_string(),
            });
        };
        let backend = &matched.route.backend;
        if let Some(reason) = &backend.unavailable {
            return Err(Failure::Unavailable {
                reason: reason.clone(),
                host,
                path: path.to_string(),
            });
        }
        if backend.targets.is_empty() {
            return Err(Failure::NoEndpoints {
                service: backend.service_port(),
                host,
                path: path.to_string(),
            });
        }
        Ok(matched)
    }

    /// hyper's service function: never fails, failures become responses.
    pub(crate) async fn serve(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        Ok(match self.forward(peer, req).await {
            Ok(resp) => resp,
            Err(failure) => {
                failure.log();
                failure_response(&failure)
            }
        })
    }

    async fn forward(
        &self,
        peer: SocketAddr,
        mut req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Failure> {
        // HTTP/2 and absolute-form requests carry the host in the URI, HTTP/1.1 in Host.
        let authority = match req.uri().authority() {
            Some(a) => a.as_str().to_string(),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string(),
        };
        let Matched {
            route,
            upstream_path,
        } = self.route(&authority, req.uri().path(), req.uri().query())?;
        let backend = &route.backend;

        let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        headers::remove_hop_by_hop(&mut headers, upgrade);
        let prefix = route.strip.then_some(route.key.as_str());
        headers::add_forwarded(&mut headers, peer.ip(), &authority, prefix);
        if !headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                headers.insert(header::HOST, v);
            }
        }

        // A request may go to the next endpoint only if sending it twice is harmless and
        // nothing of it was consumed: idempotent, with an empty body. Only a request that
        // never left (no connection) is tried again, and it comes back whole for that.
        let retryable = is_idempotent(&parts.method) && body.is_end_stream() && !upgrade;
        let tries = if retryable { backend.targets.len() } else { 1 };
        // Origin form: the connection already says which backend.
        let uri: Uri = upstream_path
            .parse()
            .map_err(|e| Failure::BadRequest(format!("path {upstream_path:?}: {e}")))?;
        let mut up = Request::new(if retryable {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        });
        *up.method_mut() = parts.method;
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers;
        for (attempt, addr) in backend.round_robin().take(tries).enumerate() {
            let sent =
                tokio::time::timeout(self.response_header_timeout, self.upstream.send(addr, up));
            match sent.await {
                Ok(Ok(resp)) => return Ok(respond(resp, client_upgrade, backend)),
                Ok(Err(UpstreamError::Connect(e, unsent))) if attempt + 1 < tries => {
                    tracing::warn!(service = %backend.service_port(), %addr, error = %e, "connect failed; trying the next endpoint");
                    up = *unsent;
                }
                Ok(Err(e)) => {
                    return Err(Failure::Backend {
                        service: backend.service_port(),
                        addr,
                        detail: match e {
                            UpstreamError::Connect(detail, _) => detail,
                            UpstreamError::Request(e) => error_chain(&e),
                        },
                    })
                }
                Err(_) => {
                    return Err(Failure::Timeout {
                        service: backend.service_port(),
                        addr,
                        secs: self.response_header_timeout.as_secs_f64(),
                    })
                }
            }
        }
        // Unreachable with at least one target; answer sanely anyway.
        Err(Failure::NoEndpoints {
            service: backend.service_port(),
            host: normalize_host(&authority),
            path: path_of(&upstream_path),
        })
    }
}

fn path_of(p: &str) -> String {
    p.split('?').next().unwrap_or(p).to_string()
}

fn is_idempotent(m: &Method) -> bool {
    is_idempotent_method(m.as_str())
}

/// Methods a request may be sent twice with (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent_method(m: &str) -> bool {
    matches!(m, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE")
}

/// The error and its causes: hyper's top-level messages alone ("client error (Connect)")
/// do not say what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The backend's response for the client; on `101 Switching Protocols` both connections
/// are joined and bytes copied both ways until either side closes.
fn respond(
    mut resp: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    backend: &Backend,
) -> Response<ResponseBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    match client_upgrade {
        Some(client_side) if switching => {
            let backend_side = hyper::upgrade::on(&mut resp);
            let service = backend.service_port();
            tokio::spawn(async move {
                let copied = match tokio::try_join!(client_side, backend_side) {
                    // The client's own connection, to shut it down for real again.
                    Ok((c, b)) => match c.downcast::<ClientIo>() {
                        Ok(parts) => {
                            let c = parts.io.upgraded(parts.read_buf);
                            copy_both_ways(TokioIo::new(c), TokioIo::new(b)).await
                        }
                        Err(c) => copy_both_ways(TokioIo::new(c), TokioIo::new(b)).await,
                    },
                    Err(e) => {
                        tracing::warn!(%service, error = %e, "protocol upgrade failed");
                        return;
                    }
                };
                if let Err(e) = copied {
                    tracing::debug!(%service, error = %e, "upgraded connection ended");
                }
            });
        }
        _ => headers::remove_hop_by_hop(resp.headers_mut(), false),
    }
    resp.map(Either::Left)
}

async fn copy_both_ways(
    mut client: impl AsyncRead + AsyncWrite + Unpin,
    mut backend: impl AsyncRead + AsyncWrite + Unpin,
) -> std::io::Result<(u64, u64)> {
    tokio::io::copy_bidirectional(&mut client, &mut backend).await
}

/// The plain-text body of the router's own error responses.
pub(crate) fn failure_body(failure: &Failure) -> String {
    format!("weft-router: {failure}\n")
}

fn failure_response(failure: &Failure) -> Response<ResponseBody> {
    let body = failure_body(failure);
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = failure.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

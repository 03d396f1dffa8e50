//! Errors: the server's own, and the failures a request can meet, each with the status
//! and the plain-text body the client gets.

use std::net::SocketAddr;

use http::StatusCode;

/// Why `serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading the local address of the listener: {0}")]
    LocalAddr(std::io::Error),
    #[error("starting a worker runtime: {0}")]
    Runtime(std::io::Error),
    #[error("starting a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker thread exited while starting")]
    WorkerExited,
}

/// A request the router could not forward.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no route for host {host:?} path {path:?}")]
    NoRoute { host: String, path: String },
    #[error("{reason} (route for host {host:?} path {path:?})")]
    Unavailable {
        reason: String,
        host: String,
        path: String,
    },
    #[error("no ready endpoint for Service {service} (route for host {host:?} path {path:?})")]
    NoEndpoints {
        service: String,
        host: String,
        path: String,
    },
    #[error("Service {service}: backend {addr} failed: {detail}")]
    Backend {
        service: String,
        addr: SocketAddr,
        detail: String,
    },
    #[error("Service {service}: backend {addr} sent no response headers within {secs:.1}s")]
    Timeout {
        service: String,
        addr: SocketAddr,
        secs: f64,
    },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request head larger than {bytes} bytes or with more than {fields} header fields")]
    HeadTooLarge { bytes: usize, fields: usize },
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::NoRoute { .. } => StatusCode::NOT_FOUND,
            Failure::Unavailable { .. } | Failure::NoEndpoints { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::Backend { .. } => StatusCode::BAD_GATEWAY,
            Failure::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Logs at a level matching whose fault it is: unknown routes are the client's.
    pub fn log(&self) {
        match self {
            Failure::NoRoute { .. } | Failure::BadRequest(_) | Failure::HeadTooLarge { .. } => {
                tracing::info!(status = self.status().as_u16(), "{self}")
            }
            _ => tracing::warn!(status = self.status().as_u16(), "{self}"),
        }
    }
}

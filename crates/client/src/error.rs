//! The client's error type.

use weft_api::Status;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a `Status` (or at least an error code). Displays the
    /// server's message verbatim: it already names the object and field.
    #[error("{message}")]
    Api {
        code: u16,
        /// Kubernetes' machine-readable reason: NotFound, AlreadyExists, Conflict, ...
        reason: String,
        message: String,
    },
    /// The request never got an answer: connection refused, TLS failure, timeout.
    #[error("{method} {url}: {}", error_chain(source))]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 2xx with a body that is not what the request expects.
    /// `context` says what was being decoded ("response of GET <url>", "Service default/web").
    #[error("decoding {context}: {message}")]
    Decode { context: String, message: String },
    /// A watch line that is not a watch event.
    #[error("decoding watch event from {url}: {message}")]
    WatchDecode { url: String, message: String },
    /// The client cannot be built from its configuration (bad CA PEM, bad URL, ...).
    #[error("client configuration: {0}")]
    Config(String),
    /// The request is malformed before it is sent: no name, no namespace, ...
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::KubeconfigError),
}

impl ClientError {
    /// A transport error; the URL is said once, by this error, not again by reqwest's.
    pub(crate) fn transport(
        method: impl ToString,
        url: impl ToString,
        source: reqwest::Error,
    ) -> Self {
        ClientError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: source.without_url(),
        }
    }

    pub fn from_status(status: &Status) -> Self {
        ClientError::Api {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        }
    }

    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The Kubernetes reason of an API error.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Api { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
    pub fn is_already_exists(&self) -> bool {
        self.reason() == Some("AlreadyExists")
    }
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409) && !self.is_already_exists()
    }
    /// The resourceVersion asked for is compacted away: relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
            || self.reason() == Some("Gone")
            || self.reason() == Some("Expired")
    }
}

/// reqwest's own message is terse ("error sending request"); the cause (connection
/// refused, certificate unknown) is what the user needs, so print the whole chain.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The error for a non-2xx answer: the `Status` body when there is one, else the HTTP
/// status and the start of whatever the body was (a proxy's HTML page, ...).
pub(crate) fn api_error(code: u16, body: &[u8]) -> ClientError {
    if let Ok(status) = serde_json::from_slice::<Status>(body) {
        if status.kind == "Status" && !status.message.is_empty() {
            return ClientError::Api {
                // Trust the HTTP code when the body omits its own.
                code: if status.code == 0 { code } else { status.code },
                reason: if status.reason.is_empty() {
                    reason_for(code).to_string()
                } else {
                    status.reason
                },
                message: status.message,
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let snippet: String = text.chars().take(200).collect();
    let message = if snippet.is_empty() {
        format!("the server responded with status {code}")
    } else {
        format!("the server responded with status {code}: {snippet}")
    };
    ClientError::Api {
        code,
        reason: reason_for(code).to_string(),
        message,
    }
}

/// Kubernetes' reason for an HTTP code, for bodies that carry none.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_is_decoded() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"web\" not found","reason":"NotFound","details":{"name":"web","kind":"services"},"code":404}"#;
        let e = api_error(404, body);
        assert!(e.is_not_found());
        assert_eq!(e.reason(), Some("NotFound"));
        assert_eq!(e.to_string(), "services \"web\" not found");
    }

    #[test]
    fn non_status_body_keeps_code() {
        let e = api_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(e.code(), Some(502));
        assert_eq!(
            e.to_string(),
            "the server responded with status 502: <html>Bad Gateway</html>"
        );
        let e = api_error(409, b"");
        assert!(e.is_conflict());
        assert_eq!(e.to_string(), "the server responded with status 409");
    }

    #[test]
    fn already_exists_is_not_a_conflict() {
        let body = br#"{"kind":"Status","message":"services \"web\" already exists","reason":"AlreadyExists","code":409}"#;
        let e = api_error(409, body);
        assert!(e.is_already_exists());
        assert!(!e.is_conflict());
    }
}

//! Watch streams: one JSON event per line, `{"type": "...", "object": {...}}`.

use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use weft_api::Status;

use crate::error::{ClientError, Result};

/// One event of a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Progress marker: nothing changed up to this resourceVersion. Resume from it.
    Bookmark {
        resource_version: String,
    },
    /// The server ends the watch with a `Status`; code 410 means the resourceVersion
    /// asked for is too old and the client must relist. Boxed: it is rare and large.
    Error(Box<Status>),
}

impl<T> WatchEvent<T> {
    /// Maps the object of an Added/Modified/Deleted event.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<WatchEvent<U>, E> {
        Ok(match self {
            WatchEvent::Added(o) => WatchEvent::Added(f(o)?),
            WatchEvent::Modified(o) => WatchEvent::Modified(f(o)?),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(f(o)?),
            WatchEvent::Bookmark { resource_version } => WatchEvent::Bookmark { resource_version },
            WatchEvent::Error(s) => WatchEvent::Error(s),
        })
    }
}

/// A watch as a stream of events; ends when the server closes the response.
pub type WatchStream<T> = BoxStream<'static, Result<WatchEvent<T>>>;

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    object: Value,
}

/// Parses one line of a watch response. Errors say what is wrong, with the field path
/// when the object does not decode as `T`.
pub fn parse_watch_line<T: DeserializeOwned>(line: &[u8]) -> Result<WatchEvent<T>, String> {
    let raw: RawEvent = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let object = |v: Value| -> Result<T, String> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("{} object: {}", raw.type_, e.inner())
            } else {
                format!("{} object: {path}: {}", raw.type_, e.inner())
            }
        })
    };
    match raw.type_.as_str() {
        "ADDED" => Ok(WatchEvent::Added(object(raw.object)?)),
        "MODIFIED" => Ok(WatchEvent::Modified(object(raw.object)?)),
        "DELETED" => Ok(WatchEvent::Deleted(object(raw.object)?)),
        // A bookmark's object carries only kind, apiVersion and metadata.resourceVersion,
        // so it is read as JSON, never as `T` (which may require more fields).
        "BOOKMARK" => {
            let rv = raw
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .ok_or("BOOKMARK without metadata.resourceVersion")?;
            Ok(WatchEvent::Bookmark {
                resource_version: rv.to_string(),
            })
        }
        "ERROR" => {
            let status: Status = serde_json::from_value(raw.object)
                .map_err(|e| format!("ERROR event without a Status object: {e}"))?;
            Ok(WatchEvent::Error(Box::new(status)))
        }
        other => Err(format!("unknown event type {other:?}")),
    }
}

/// Splits a byte stream into lines. Chunk boundaries fall anywhere, so bytes are carried
/// over until their newline arrives.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
}

/// A single event larger than this is a broken stream, not an object.
const MAX_LINE: usize = 64 << 20;

impl LineDecoder {
    /// Feeds a chunk; returns the complete, non-blank lines it finished.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.buf);
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line);
            }
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() > MAX_LINE {
            return Err(format!("watch event longer than {MAX_LINE} bytes"));
        }
        Ok(lines)
    }

    /// The last line when the stream ends without a newline.
    pub fn finish(self) -> Option<Vec<u8>> {
        Some(self.buf).filter(|b| !b.iter().all(u8::is_ascii_whitespace))
    }
}

/// Turns a response body into watch events.
pub(crate) fn event_stream<T, S>(body: S, url: String) -> WatchStream<T>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
{
    let lines = stream::unfold(
        (Box::pin(body), Some(LineDecoder::default()), url.clone()),
        |(mut body, decoder, url)| async move {
            let mut decoder = decoder?;
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => match decoder.push(&chunk) {
                        Ok(lines) if lines.is_empty() => continue,
                        Ok(lines) => {
                            let items: Vec<Result<Vec<u8>>> = lines.into_iter().map(Ok).collect();
                            return Some((stream::iter(items), (body, Some(decoder), url)));
                        }
                        Err(message) => {
                            let err = ClientError::WatchDecode {
                                url: url.clone(),
                                message,
                            };
                            return Some((stream::iter(vec![Err(err)]), (body, None, url)));
                        }
                    },
                    Some(Err(source)) => {
                        let err = ClientError::transport("GET", &url, source);
                        return Some((stream::iter(vec![Err(err)]), (body, None, url)));
                    }
                    None => {
                        let last: Vec<Result<Vec<u8>>> =
                            decoder.finish().into_iter().map(Ok).collect();
                        return Some((stream::iter(last), (body, None, url)));
                    }
                }
            }
        },
    )
    .flatten();
    lines
        .map(move |line| {
            let line = line?;
            parse_watch_line::<T>(&line).map_err(|message| ClientError::WatchDecode {
                url: url.clone(),
                message,
            })
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_object_events() {
        let ev: WatchEvent<Value> = parse_watch_line(
            br#"{"type":"ADDED","object":{"kind":"Service","metadata":{"name":"web"}}}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            WatchEvent::Added(json!({"kind":"Service","metadata":{"name":"web"}}))
        );
        let ev: WatchEvent<Value> =
            parse_watch_line(br#"{"type":"DELETED","object":{"metadata":{"name":"web"}}}"#)
                .unwrap();
        assert!(matches!(ev, WatchEvent::Deleted(_)));
    }

    #[test]
    fn parses_bookmark_without_decoding_the_object() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct NeedsSpec {
            spec: Value,
        }
        let ev: WatchEvent<NeedsSpec> = parse_watch_line(
            br#"{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"42"}}}"#,
        )
        .unwrap();
        assert!(
            matches!(ev, WatchEvent::Bookmark { resource_version } if resource_version == "42")
        );
    }

    #[test]
    fn parses_error_410() {
        let ev: WatchEvent<Value> = parse_watch_line(
            br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (90)","reason":"Gone","code":410}}"#,
        )
        .unwrap();
        match ev {
            WatchEvent::Error(s) => {
                assert_eq!(s.code, 410);
                assert_eq!(s.reason, "Gone");
                assert!(ClientError::from_status(&s).is_gone());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse_watch_line::<Value>(b"{not json").is_err());
        assert_eq!(
            parse_watch_line::<Value>(br#"{"type":"RENAMED","object":{}}"#).unwrap_err(),
            "unknown event type \"RENAMED\""
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            spec: Spec,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Spec {
            port: u16,
        }
        let err = parse_watch_line::<Typed>(br#"{"type":"ADDED","object":{"spec":{"port":"x"}}}"#)
            .unwrap_err();
        assert!(
            err.starts_with("ADDED object: spec.port: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn line_decoder_handles_split_chunks() {
        let mut d = LineDecoder::default();
        assert!(d.push(b"{\"a\":").unwrap().is_empty());
        assert_eq!(
            d.push(b"1}\n\n{\"b\"").unwrap(),
            vec![b"{\"a\":1}".to_vec()]
        );
        assert_eq!(
            d.push(b":2}\n{\"c\":3}").unwrap(),
            vec![b"{\"b\":2}".to_vec()]
        );
        assert_eq!(d.finish(), Some(b"{\"c\":3}".to_vec()));
    }

    #[tokio::test]
    async fn event_stream_decodes_chunked_body() {
        let chunks: Vec<Result<bytes::Bytes, reqwest::Error>> = vec![
            Ok(bytes::Bytes::from_static(
                b"{\"type\":\"ADDED\",\"object\":{\"x\":1}}\n{\"type\":",
            )),
            Ok(bytes::Bytes::from_static(
                b"\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\n",
            )),
        ];
        let events: Vec<_> = event_stream::<Value, _>(stream::iter(chunks), "u".into())
            .collect()
            .await;
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0], Ok(WatchEvent::Added(v)) if v == &json!({"x": 1})));
        assert!(
            matches!(&events[1], Ok(WatchEvent::Bookmark { resource_version }) if resource_version == "7")
        );
    }
}

//! kubectl's describe layout: lines of tab-separated cells, indented two spaces per
//! level, aligned by Go's tabwriter (min width 0, padding 2), plus the sections every
//! describer shares (labels, annotations, events).

use chrono::{DateTime, Utc};
use serde_json::Value;
use weft_api::printers::{self, age_since, event_times, str_at, tabwrite};

use crate::apply::LAST_APPLIED;

/// kubectl's `PrefixWriter` into a buffer.
#[derive(Default)]
pub struct Writer {
    buf: String,
}

impl Writer {
    /// Writes `text` (cells separated by `\t`) at `level`, followed by a newline.
    pub fn line(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.buf.push_str("  ");
        }
        self.buf.push_str(text);
        self.buf.push('\n');
    }

    /// The aligned text.
    pub fn finish(self) -> String {
        tabwrite(&self.buf, 0, 2)
    }
}

/// `<none>` for an empty value, as kubectl prints it.
pub fn or_none(s: &str) -> &str {
    if s.is_empty() {
        printers::NONE
    } else {
        s
    }
}

/// RFC 1123 with numeric zone, kubectl's describe time format (in UTC).
pub fn time(ts: &str) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `Labels:  a=b` with further labels on continuation lines; `<none>` when empty.
pub fn labels(w: &mut Writer, title: &str, map: Option<&Value>) {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect()
        })
        .unwrap_or_default();
    multiline(w, title, &pairs);
}

/// A title cell followed by one value per line, all in the value column.
pub fn multiline(w: &mut Writer, title: &str, values: &[String]) {
    if values.is_empty() {
        w.line(0, &format!("{title}:\t<none>"));
        return;
    }
    for (i, v) in values.iter().enumerate() {
        if i == 0 {
            w.line(0, &format!("{title}:\t{v}"));
        } else {
            w.line(0, &format!("\t{v}"));
        }
    }
}

/// kubectl's limit on an annotation printed on one line.
const MAX_ANNOTATION_LEN: usize = 140;

/// `Annotations:  key: value`, leaving out the last-applied record (it repeats the
/// manifest), long or multi-line values on their own indented lines.
pub fn annotations(w: &mut Writer, map: Option<&Value>) {
    let entries: Vec<(&String, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != LAST_APPLIED)
                .map(|(k, v)| (k, scalar(v)))
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() {
        w.line(0, "Annotations:\t<none>");
        return;
    }
    for (i, (key, value)) in entries.iter().enumerate() {
        let lead = if i == 0 { "Annotations:\t" } else { "\t" };
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.line(0, &format!("{lead}{key}:"));
            for part in value.split('\n') {
                w.line(0, &format!("\t  {}", shorten(part, MAX_ANNOTATION_LEN - 2)));
            }
        } else {
            w.line(0, &format!("{lead}{key}: {value}"));
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The events about an object, oldest first, as kubectl's `DescribeEvents` prints them.
pub fn events(w: &mut Writer, events: &[Value], now: DateTime<Utc>) {
    if events.is_empty() {
        w.line(0, "Events:\t<none>");
        return;
    }
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| last_seen(e).to_string());
    w.line(0, "Events:");
    w.line(1, "Type\tReason\tAge\tFrom\tMessage");
    w.line(1, "----\t------\t----\t----\t-------");
    for e in sorted {
        let (first, _, count) = event_times(e, now);
        let interval = if let Some(series) = e.get("series").filter(|s| s.is_object()) {
            format!(
                "{} (x{} over {first})",
                age_since(str_at(series, &["lastObservedTime"]), now),
                series.get("count").and_then(Value::as_i64).unwrap_or(0)
            )
        } else if count > 1 {
            format!(
                "{} (x{count} over {first})",
                age_since(str_at(e, &["lastTimestamp"]), now)
            )
        } else {
            first
        };
        let source = match str_at(e, &["source", "component"]) {
            "" => str_at(e, &["reportingComponent"]),
            s => s,
        };
        w.line(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{}",
                str_at(e, &["type"]),
                str_at(e, &["reason"]),
                str_at(e, &["message"]).trim()
            ),
        );
    }
}

/// The timestamp events are ordered by: RFC 3339 strings sort as times.
fn last_seen(e: &Value) -> &str {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .map(|k| str_at(e, &[k]))
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_annotations_align() {
        let mut w = Writer::default();
        w.line(0, "Name:\tweb");
        labels(&mut w, "Labels", Some(&json!({"tier": "fe", "app": "web"})));
        annotations(
            &mut w,
            Some(&json!({LAST_APPLIED: "{}", "note": "hi", "long": "x".repeat(150)})),
        );
        labels(&mut w, "Selector", None);
        assert_eq!(
            w.finish(),
            format!(
                "Name:         web\n\
                 Labels:       app=web\n\
                 \x20             tier=fe\n\
                 Annotations:  long:\n\
                 \x20               {}...\n\
                 \x20             note: hi\n\
                 Selector:     <none>\n",
                "x".repeat(138)
            )
        );
    }

    #[test]
    fn events_table() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let evs = [
            json!({"type": "Normal", "reason": "Synced", "message": "ok ",
                   "source": {"component": "endpoints-controller"},
                   "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:59:00Z", "count": 4}),
            json!({"type": "Warning", "reason": "NoEndpoints", "message": "none ready",
                   "reportingComponent": "weft-proxy", "eventTime": "2024-05-01T11:00:00Z"}),
        ];
        let mut w = Writer::default();
        events(&mut w, &evs, now);
        assert_eq!(
            w.finish(),
            "Events:\n\
             \x20 Type     Reason       Age                From                  Message\n\
             \x20 ----     ------       ----               ----                  -------\n\
             \x20 Warning  NoEndpoints  60m                weft-proxy            none ready\n\
             \x20 Normal   Synced       60s (x4 over 10m)  endpoints-controller  ok\n"
        );
        let mut w = Writer::default();
        w.line(0, "Name:\tx");
        events(&mut w, &[], now);
        assert_eq!(w.finish(), "Name:    x\nEvents:  <none>\n");
    }

    #[test]
    fn times_are_rfc1123z() {
        assert_eq!(
            time("2024-05-01T11:50:00Z"),
            "Wed, 01 May 2024 11:50:00 +0000"
        );
        assert_eq!(time("garbage"), "garbage");
    }
}

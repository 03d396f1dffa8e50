//! Table printers: the columns kubectl prints per kind, and kubectl's plain-text layout.
//!
//! Everything here works on the JSON form of objects (`serde_json::Value`) rather than the
//! typed structs, so `weftctl get` can print whatever the server returns (even objects a
//! newer server knows more fields of) and the API server can answer kubectl's
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` requests with the same rows.
//! `table()` is pure: the caller passes `now` so AGE columns are deterministic in tests.
//!
//! As the Kubernetes API server does, `table()` always produces every column including the
//! wide-only ones; `render()` drops those unless asked for `-o wide`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::resources::ResourceInfo;

/// One column. `name` is Kubernetes' column name ("Cluster-IP"); kubectl upper-cases it in
/// the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// Shown only with `-o wide` (Kubernetes' column priority 1).
    pub wide_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// One cell per column of the table, wide-only columns included.
    pub cells: Vec<String>,
    /// The object the row was printed from.
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

const fn col(name: &'static str) -> Column {
    Column {
        name,
        wide_only: false,
    }
}

const fn wide(name: &'static str) -> Column {
    Column {
        name,
        wide_only: true,
    }
}

/// The printed form of an absent value, as kubectl writes it.
pub const NONE: &str = "<none>";

/// Computes one row's cells from an object and the current time.
type RowFn = fn(&Value, DateTime<Utc>) -> Vec<String>;

/// Builds the table kubectl would print for `objects` of kind `info`.
pub fn table(info: &ResourceInfo, objects: &[Value], now: DateTime<Utc>) -> Table {
    let (columns, row_fn): (Vec<Column>, RowFn) = match (info.group, info.kind) {
        ("", "Service") => (service_columns(), service_row),
        ("", "Pod") => (pod_columns(), pod_row),
        ("", "Node") => (node_columns(), node_row),
        ("", "Endpoints") => (
            vec![col("Name"), col("Endpoints"), col("Age")],
            endpoints_row,
        ),
        ("", "Namespace") => (vec![col("Name"), col("Status"), col("Age")], namespace_row),
        ("", "Event") => (event_columns(), event_row),
        ("weft.io", "DNS") => (
            vec![
                col("Name"),
                col("Host"),
                col("Paths"),
                col("Age"),
                wide("Services"),
            ],
            dns_row,
        ),
        ("networking.k8s.io", "Ingress") => (
            vec![
                col("Name"),
                col("Class"),
                col("Hosts"),
                col("Address"),
                col("Ports"),
                col("Age"),
            ],
            ingress_row,
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![col("Name"), col("Pod-Selector"), col("Age")],
            network_policy_row,
        ),
        _ => (vec![col("Name"), col("Age")], generic_row),
    };
    let rows = objects
        .iter()
        .map(|o| Row {
            cells: row_fn(o, now),
            object: o.clone(),
        })
        .collect();
    Table { columns, rows }
}

/// kubectl's plain-text table: header in caps, columns left-aligned and padded by 3 spaces
/// (minimum width 6), `NAMESPACE` first when listing across namespaces.
pub fn render(table: &Table, wide: bool, with_namespace: bool) -> String {
    let mut widths = Vec::new();
    render_lines(table, wide, with_namespace, true, &mut widths)
}

/// Renders the header (if `header`) and the rows, never letting a column be narrower than
/// in `widths`, and widens `widths` to what was printed. `get -w` passes the same `widths`
/// for every event so later rows stay aligned with the first table (what kubectl's
/// tabwriter does with `RememberWidths`).
pub fn render_lines(
    table: &Table,
    wide: bool,
    with_namespace: bool,
    header: bool,
    widths: &mut Vec<usize>,
) -> String {
    let lines = cell_lines(table, wide, with_namespace, header);
    if lines.is_empty() {
        return String::new();
    }
    let ncols = lines.iter().map(Vec::len).max().unwrap_or(0);
    if widths.len() < ncols {
        widths.resize(ncols, 0);
    }
    // Every column but the last is padded, as kubectl's cells are tab-terminated except
    // the last one on each line.
    for line in &lines {
        for (i, cell) in line.iter().enumerate().take(ncols.saturating_sub(1)) {
            let w = (text_width(cell) + TABLE_PADDING).max(TABLE_MIN_WIDTH);
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                pad(&mut out, widths[i].saturating_sub(text_width(cell)));
            }
        }
        out.push('\n');
    }
    out
}

/// kubectl's table tabwriter settings (`pkg/printers/tabwriter.go`).
const TABLE_MIN_WIDTH: usize = 6;
const TABLE_PADDING: usize = 3;

/// Header + rows as cells, with wide-only columns dropped unless `wide`.
fn cell_lines(table: &Table, wide: bool, with_namespace: bool, header: bool) -> Vec<Vec<String>> {
    let keep: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || !c.wide_only)
        .map(|(i, _)| i)
        .collect();
    let mut lines = Vec::with_capacity(table.rows.len() + 1);
    if header {
        let mut h = Vec::with_capacity(keep.len() + 1);
        if with_namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(keep.iter().map(|&i| table.columns[i].name.to_uppercase()));
        lines.push(h);
    }
    for row in &table.rows {
        let mut cells = Vec::with_capacity(keep.len() + 1);
        if with_namespace {
            cells.push(str_at(&row.object, &["metadata", "namespace"]).to_string());
        }
        cells.extend(
            keep.iter()
                .map(|&i| sanitize(row.cells.get(i).map(String::as_str).unwrap_or(""))),
        );
        lines.push(cells);
    }
    lines
}

/// A cell must stay on one line, or the table falls apart.
fn sanitize(cell: &str) -> String {
    cell.replace(['\n', '\r', '\t'], " ")
}

fn text_width(s: &str) -> usize {
    s.chars().count()
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Go's `text/tabwriter` with padchar ' ' and no flags: cells are tab-terminated, a column
/// block is a run of consecutive lines that have a cell in that column, and every cell of
/// a block is padded to the block's widest cell + `padding` (at least `min_width`). The
/// last cell of a line is never padded. `weftctl describe` uses it with kubectl's
/// describe settings (min width 0, padding 2) so its output lines up exactly as kubectl's.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        min_width,
        padding,
        &mut out,
    );
    out
}

/// The recursive step of Go's tabwriter (`Writer.format`): `widths` holds the widths of
/// the columns to the left, already fixed for lines `start..end`.
fn format_block(
    lines: &[Vec<&str>],
    start: usize,
    end: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut line0 = start;
    let mut this = start;
    while this < end {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A block of lines with a cell in this column starts here: print the lines above
        // it, then find the block's end and width.
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = min_width;
        while this < end && column + 1 < lines[this].len() {
            width = width.max(text_width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, min_width, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, end, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                pad(out, widths[j].saturating_sub(text_width(cell)));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON access helpers: absent fields read as empty, never as errors, because a table must
// print whatever the server holds.

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The string at `path`, or "" when absent or not a string.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// A scalar as text: strings as-is, numbers printed, anything else "".
fn scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        NONE.to_string()
    } else {
        s
    }
}

fn name(o: &Value) -> String {
    str_at(o, &["metadata", "name"]).to_string()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's `translateTimestampSince`: `<unknown>` for an absent timestamp.
pub fn age_since(timestamp: &str, now: DateTime<Utc>) -> String {
    match parse_time(timestamp) {
        Some(t) => human_duration((now - t).num_seconds()),
        None => "<unknown>".to_string(),
    }
}

fn age(o: &Value, now: DateTime<Utc>) -> String {
    age_since(str_at(o, &["metadata", "creationTimestamp"]), now)
}

/// apimachinery's `duration.HumanDuration`: two significant units while they matter
/// (`3m20s`, `5h10m`, `2d3h`), one unit once the number is large.
pub fn human_duration(seconds: i64) -> String {
    // Up to a second of clock skew between client and server is "now".
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, h)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{}d", hours / 24 / 365, days)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", scalar(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    // serde_json's map is ordered by key, so the pairs are already sorted.
    or_none(pairs.join(","))
}

/// `metav1.FormatLabelSelector`: matchLabels and matchExpressions as one selector string,
/// requirements sorted by key; `<none>` for the empty (match-everything) selector.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return NONE.to_string();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", scalar(Some(v)))));
        }
    }
    for e in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(e, &["key"]);
        let mut values: Vec<String> = arr_at(e, &["values"])
            .iter()
            .map(|v| scalar(Some(v)))
            .collect();
        values.sort();
        let text = match str_at(e, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        reqs.push((key.to_string(), text));
    }
    // Stable sort by key, as the Go selector sorts its requirements.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    or_none(
        reqs.into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `host:port` with IPv6 hosts in brackets (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------
// Services

fn service_columns() -> Vec<Column> {
    vec![
        col("Name"),
        col("Type"),
        col("Cluster-IP"),
        col("External-IP"),
        col("Port(s)"),
        col("Age"),
        wide("Selector"),
    ]
}

fn service_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let svc_type = match str_at(spec, &["type"]) {
        // The server defaults the type; an object without one is a ClusterIP Service.
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = arr_at(spec, &["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(spec, &["clusterIP"]))
        .to_string();
    vec![
        name(o),
        svc_type.to_string(),
        or_none(cluster_ip),
        service_external_ip(o, svc_type),
        or_none(service_ports(spec)),
        age(o, now),
        format_labels(spec.get("selector")),
    ]
}

/// kubectl's `getServiceExternalIP`.
fn service_external_ip(o: &Value, svc_type: &str) -> String {
    let external: Vec<String> = arr_at(o, &["spec", "externalIPs"])
        .iter()
        .map(|v| scalar(Some(v)))
        .collect();
    match svc_type {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let mut all: Vec<String> = arr_at(o, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| {
                    let ip = str_at(i, &["ip"]);
                    if ip.is_empty() {
                        str_at(i, &["hostname"]).to_string()
                    } else {
                        ip.to_string()
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(o, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `80/TCP`, `80:30080/TCP`, `53/UDP,53/TCP`.
fn service_ports(spec: &Value) -> String {
    arr_at(spec, &["ports"])
        .iter()
        .map(|p| {
            let port = scalar(p.get("port"));
            let proto = match str_at(p, &["protocol"]) {
                "" => "TCP",
                x => x,
            };
            match i64_at(p, &["nodePort"]) {
                Some(np) if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------
// Pods

fn pod_columns() -> Vec<Column> {
    vec![
        col("Name"),
        col("Ready"),
        col("Status"),
        col("Restarts"),
        col("Age"),
        wide("IP"),
        wide("Node"),
        wide("Nominated Node"),
        wide("Readiness Gates"),
    ]
}

/// kubectl's `printPod`, without init containers (Weft pods have none).
fn pod_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let total = arr_at(o, &["spec", "containers"]).len();
    let phase = str_at(o, &["status", "phase"]);
    let mut reason = match str_at(o, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut has_running = false;
    // kubectl walks the statuses last to first, so the first container's state wins.
    for cs in arr_at(o, &["status", "containerStatuses"]).iter().rev() {
        restarts += i64_at(cs, &["restartCount"]).unwrap_or(0);
        if let Some(t) = parse_time(str_at(cs, &["lastState", "terminated", "finishedAt"])) {
            if last_restart.is_none_or(|l| l < t) {
                last_restart = Some(t);
            }
        }
        let state = cs.get("state").unwrap_or(&Value::Null);
        let waiting = str_at(state, &["waiting", "reason"]);
        let terminated = state.get("terminated");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if let Some(t) = terminated {
            let r = str_at(t, &["reason"]);
            reason = if !r.is_empty() {
                r.to_string()
            } else if let Some(sig) = i64_at(t, &["signal"]).filter(|s| *s != 0) {
                format!("Signal:{sig}")
            } else {
                format!("ExitCode:{}", i64_at(t, &["exitCode"]).unwrap_or(0))
            };
        } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
            && state.get("running").is_some()
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = if condition_true(o, "Ready") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    let deleting = !str_at(o, &["metadata", "deletionTimestamp"]).is_empty();
    if deleting && str_at(o, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration((now - t).num_seconds())
            )
        }
        _ => restarts.to_string(),
    };
    let gates = arr_at(o, &["spec", "readinessGates"]);
    let gates = if gates.is_empty() {
        NONE.to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(o, str_at(g, &["conditionType"])))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(o),
        format!("{ready}/{total}"),
        reason,
        restarts,
        age(o, now),
        or_none(str_at(o, &["status", "podIP"]).to_string()),
        or_none(str_at(o, &["spec", "nodeName"]).to_string()),
        or_none(str_at(o, &["status", "nominatedNodeName"]).to_string()),
        gates,
    ]
}

fn condition_true(o: &Value, cond_type: &str) -> bool {
    arr_at(o, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == cond_type && str_at(c, &["status"]) == "True")
}

// ---------------------------------------------------------------------------------------
// Nodes

fn node_columns() -> Vec<Column> {
    vec![
        col("Name"),
        col("Status"),
        col("Roles"),
        col("Age"),
        col("Version"),
        wide("Internal-IP"),
        wide("External-IP"),
        wide("OS-Image"),
        wide("Kernel-Version"),
        wide("Container-Runtime"),
        // Not in kubectl; the first thing to check when the overlay misbehaves.
        wide("Pod-CIDR"),
    ]
}

/// The STATUS column: `Ready`, `NotReady`, `Unknown`, plus `SchedulingDisabled`.
pub fn node_status(o: &Value) -> String {
    let mut status = Vec::new();
    if let Some(c) = arr_at(o, &["status", "conditions"])
        .iter()
        .rfind(|c| str_at(c, &["type"]) == "Ready")
    {
        status.push(if str_at(c, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
pub fn node_roles(o: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(o, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    or_none(roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_address(o: &Value, addr_type: &str) -> String {
    or_none(
        arr_at(o, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == addr_type)
            .map(|a| str_at(a, &["address"]).to_string())
            .unwrap_or_default(),
    )
}

fn node_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let info = |k: &str| {
        let v = str_at(o, &["status", "nodeInfo", k]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name(o),
        node_status(o),
        node_roles(o),
        age(o, now),
        str_at(o, &["status", "nodeInfo", "kubeletVersion"]).to_string(),
        node_address(o, "InternalIP"),
        node_address(o, "ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
        or_none(str_at(o, &["spec", "podCIDR"]).to_string()),
    ]
}

// ---------------------------------------------------------------------------------------
// Endpoints

fn endpoints_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    vec![name(o), format_endpoints(o), age(o, now)]
}

/// kubectl's `formatEndpoints`: ready `ip:port` pairs, the first three, then `+ N more...`.
pub fn format_endpoints(o: &Value) -> String {
    format_endpoints_for_ports(o, None)
}

/// `format_endpoints` limited to the endpoint ports named in `port_names` (`describe`
/// prints one line per Service port this way); `None` keeps every port.
pub fn format_endpoints_for_ports(o: &Value, port_names: Option<&[&str]>) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(o, &["subsets"]);
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless Services may have no ports: print bare addresses.
            count += addrs.len();
            for a in addrs {
                if list.len() < MAX {
                    list.push(str_at(a, &["ip"]).to_string());
                }
            }
            continue;
        }
        for p in ports {
            if port_names.is_some_and(|names| !names.contains(&str_at(p, &["name"]))) {
                continue;
            }
            count += addrs.len();
            for a in addrs {
                if list.len() < MAX {
                    list.push(join_host_port(str_at(a, &["ip"]), &scalar(p.get("port"))));
                }
            }
        }
    }
    if list.is_empty() {
        return NONE.to_string();
    }
    let ret = list.join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces, events

fn namespace_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let phase = match str_at(o, &["status", "phase"]) {
        "" if !str_at(o, &["metadata", "deletionTimestamp"]).is_empty() => "Terminating",
        // A namespace the server has not given a phase yet is usable.
        "" => "Active",
        p => p,
    };
    vec![name(o), phase.to_string(), age(o, now)]
}

fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen"),
        col("Type"),
        col("Reason"),
        col("Object"),
        wide("Subobject"),
        wide("Source"),
        col("Message"),
        wide("First Seen"),
        wide("Count"),
        wide("Name"),
    ]
}

/// First and last seen of an event, as kubectl derives them from the old and new fields.
pub fn event_times(o: &Value, now: DateTime<Utc>) -> (String, String, i64) {
    let first_ts = match str_at(o, &["firstTimestamp"]) {
        "" => str_at(o, &["eventTime"]),
        t => t,
    };
    let first = age_since(first_ts, now);
    let mut last = match str_at(o, &["lastTimestamp"]) {
        "" => first.clone(),
        t => age_since(t, now),
    };
    let mut count = i64_at(o, &["count"]).unwrap_or(0);
    if let Some(series) = o.get("series").filter(|s| s.is_object()) {
        last = age_since(str_at(series, &["lastObservedTime"]), now);
        count = i64_at(series, &["count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    (first, last, count)
}

fn event_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let (first, last, count) = event_times(o, now);
    let kind = str_at(o, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = str_at(o, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = first_non_empty(
        str_at(o, &["source", "component"]),
        str_at(o, &["reportingComponent"]),
    );
    let instance = first_non_empty(
        str_at(o, &["source", "host"]),
        str_at(o, &["reportingInstance"]),
    );
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last,
        str_at(o, &["type"]).to_string(),
        str_at(o, &["reason"]).to_string(),
        target,
        str_at(o, &["involvedObject", "fieldPath"]).to_string(),
        source,
        str_at(o, &["message"]).trim().to_string(),
        first,
        count.to_string(),
        name(o),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------------
// DNS (weft.io), Ingress, NetworkPolicy

fn dns_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let paths = arr_at(o, &["spec", "paths"]);
    let path_list: Vec<String> = paths
        .iter()
        .map(|p| str_at(p, &["path"]).to_string())
        .collect();
    let services: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                str_at(p, &["service", "name"]),
                scalar(at(p, &["service", "port"]))
            )
        })
        .collect();
    vec![
        name(o),
        or_none(str_at(o, &["spec", "host"]).to_string()),
        or_none(path_list.join(",")),
        age(o, now),
        or_none(services.join(",")),
    ]
}

fn ingress_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    let class = match at(o, &["spec", "ingressClassName"]).and_then(Value::as_str) {
        Some(c) => c.to_string(),
        None => NONE.to_string(),
    };
    vec![
        name(o),
        class,
        ingress_hosts(arr_at(o, &["spec", "rules"])),
        ingress_address(o),
        if arr_at(o, &["spec", "tls"]).is_empty() {
            "80".to_string()
        } else {
            "80, 443".to_string()
        },
        age(o, now),
    ]
}

/// kubectl's `formatHosts`: `*` when no rule names a host; past three hosts, the count of
/// the remaining rules (hostless ones included, as kubectl counts them).
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

/// Load-balancer addresses, shortened past 16 characters as kubectl does without wide.
fn ingress_address(o: &Value) -> String {
    let addrs: Vec<&str> = arr_at(o, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .collect();
    let s = addrs.join(",");
    if s.chars().count() > 16 {
        format!("{}...", s.chars().take(13).collect::<String>())
    } else {
        s
    }
}

fn network_policy_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    vec![
        name(o),
        format_label_selector(at(o, &["spec", "podSelector"])),
        age(o, now),
    ]
}

fn generic_row(o: &Value, now: DateTime<Utc>) -> Vec<String> {
    vec![name(o), age(o, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    /// RFC 3339 timestamp `secs` before `now()`.
    fn ago(secs: i64) -> String {
        (now() - chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn cells(info: &ResourceInfo, o: Value) -> Vec<String> {
        table(info, &[o], now()).rows.remove(0).cells
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 60 * 7, "5h7m"),
            (8 * 3600 + 60 * 7, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn tabwrite_matches_go_semantics() {
        // Column blocks end at a line without the column; the last cell is not padded.
        let text = "Name:\tweb\nNamespace:\tdefault\nEvents:\n  Type\tReason\n  ----\t------\n";
        let want =
            "Name:       web\nNamespace:  default\nEvents:\n  Type  Reason\n  ----  ------\n";
        assert_eq!(tabwrite(text, 0, 2), want);
        // Lines with a continuation cell (empty first cell) stay in the block.
        let text = "Labels:\ta=b\n\tc=d\nSelector:\tx=y\n";
        let want = "Labels:    a=b\n           c=d\nSelector:  x=y\n";
        assert_eq!(tabwrite(text, 0, 2), want);
    }

    #[test]
    fn render_aligns_like_kubectl() {
        let svc = json!({
            "metadata": {"name": "kubernetes", "namespace": "default", "creationTimestamp": ago(5 * 86400)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]}
        });
        let t = table(&resources::SERVICE, &[svc], now());
        assert_eq!(
            render(&t, false, false),
            "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\n\
             kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP   5d\n"
        );
        assert_eq!(
            render(&t, true, true),
            "NAMESPACE   NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE   SELECTOR\n\
             default     kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP   5d    <none>\n"
        );
    }

    #[test]
    fn render_min_width_is_six() {
        let ns = json!({"metadata": {"name": "a", "creationTimestamp": ago(30)}, "status": {"phase": "Active"}});
        let t = table(&resources::NAMESPACE, &[ns], now());
        assert_eq!(
            render(&t, false, false),
            "NAME   STATUS   AGE\na      Active   30s\n"
        );
    }

    #[test]
    fn render_lines_remembers_widths() {
        let ns = |n: &str| json!({"metadata": {"name": n, "creationTimestamp": ago(30)}});
        let mut widths = Vec::new();
        let first = table(&resources::NAMESPACE, &[ns("a")], now());
        let head = render_lines(&first, false, false, true, &mut widths);
        assert_eq!(head, "NAME   STATUS   AGE\na      Active   30s\n");
        let later = table(&resources::NAMESPACE, &[ns("longer-name")], now());
        let line = render_lines(&later, false, false, false, &mut widths);
        assert_eq!(line, "longer-name   Active   30s\n");
    }

    #[test]
    fn service_rows() {
        let np = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(200)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.5.5", "clusterIPs": ["10.96.5.5"],
                     "selector": {"tier": "fe", "app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP", "targetPort": 8080}]}
        });
        assert_eq!(
            cells(&resources::SERVICE, np),
            [
                "web",
                "NodePort",
                "10.96.5.5",
                "<none>",
                "80:30080/TCP",
                "3m20s",
                "app=web,tier=fe"
            ]
        );
        let dns = json!({
            "metadata": {"name": "kube-dns", "creationTimestamp": ago(45)},
            "spec": {"clusterIP": "10.96.0.10",
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]}
        });
        let c = cells(&resources::SERVICE, dns);
        assert_eq!(c[1], "ClusterIP");
        assert_eq!(c[4], "53/UDP,53/TCP");
        assert_eq!(c[5], "45s");
        let ext = json!({
            "metadata": {"name": "db"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}
        });
        let c = cells(&resources::SERVICE, ext);
        assert_eq!(c[2..5], ["<none>", "db.example.com", "<none>"]);
        assert_eq!(c[5], "<unknown>");
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert_eq!(cells(&resources::SERVICE, headless)[2], "None");
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(cells(&resources::SERVICE, lb)[3], "<pending>");
    }

    #[test]
    fn pod_rows() {
        let running = json!({
            "metadata": {"name": "web-1", "creationTimestamp": ago(3600 * 5)},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        assert_eq!(
            cells(&resources::POD, running),
            [
                "web-1",
                "1/2",
                "CrashLoopBackOff",
                "2 (10m ago)",
                "5h",
                "10.244.1.5",
                "node1",
                "<none>",
                "<none>"
            ]
        );
        let pending = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x"}]},
            "status": {"phase": "Pending"}
        });
        let c = cells(&resources::POD, pending);
        assert_eq!(c[1..4], ["0/1", "Pending", "0"]);
        assert_eq!(c[5..], ["<none>", "<none>", "<none>", "0/1"]);
        let deleting = json!({
            "metadata": {"name": "d", "deletionTimestamp": ago(1)},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}
        });
        assert_eq!(
            cells(&resources::POD, deleting)[1..3],
            ["1/1", "Terminating"]
        );
        let failed = json!({
            "metadata": {"name": "f"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 137}}}]}
        });
        assert_eq!(cells(&resources::POD, failed)[2], "ExitCode:137");
    }

    #[test]
    fn node_rows() {
        let node = json!({
            "metadata": {"name": "node1", "creationTimestamp": ago(51 * 3600),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node1"}},
            "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": true},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node1"}, {"type": "InternalIP", "address": "192.168.56.11"}],
                "nodeInfo": {"kubeletVersion": "v0.1.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64"}
            }
        });
        assert_eq!(
            cells(&resources::NODE, node),
            [
                "node1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "2d3h",
                "v0.1.0",
                "192.168.56.11",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "<unknown>",
                "10.244.1.0/24"
            ]
        );
        let unknown = json!({"metadata": {"name": "n2"}, "status": {}});
        let c = cells(&resources::NODE, unknown);
        assert_eq!(c[1..3], ["Unknown", "<none>"]);
        let not_ready = json!({"metadata": {"name": "n3"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(cells(&resources::NODE, not_ready)[1], "NotReady");
    }

    #[test]
    fn endpoints_rows() {
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(90)},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
                         "notReadyAddresses": [{"ip": "10.244.3.3"}],
                         "ports": [{"port": 8080, "protocol": "TCP"}]}]
        });
        assert_eq!(
            cells(&resources::ENDPOINTS, ep),
            ["web", "10.244.1.5:8080,10.244.2.3:8080", "90s"]
        );
        let many = json!({
            "metadata": {"name": "kube-dns"},
            "subsets": [{"addresses": [{"ip": "10.1.0.20"}, {"ip": "10.1.0.21"}, {"ip": "fd00::1"}],
                         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]
        });
        assert_eq!(
            cells(&resources::ENDPOINTS, many)[1],
            "10.1.0.20:53,10.1.0.21:53,[fd00::1]:53 + 3 more..."
        );
        let headless =
            json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.244.1.9"}]}]});
        assert_eq!(cells(&resources::ENDPOINTS, headless)[1], "10.244.1.9");
        let empty = json!({"metadata": {"name": "e"}});
        assert_eq!(cells(&resources::ENDPOINTS, empty)[1], "<none>");
        let named = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                           "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}]});
        assert_eq!(
            format_endpoints_for_ports(&named, Some(&["metrics"])),
            "10.0.0.1:9090"
        );
        assert_eq!(format_endpoints_for_ports(&named, Some(&[""])), "<none>");
    }

    #[test]
    fn namespace_rows() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(7200)},
                        "status": {"phase": "Active"}});
        assert_eq!(
            cells(&resources::NAMESPACE, ns),
            ["kube-system", "Active", "120m"]
        );
    }

    #[test]
    fn event_rows() {
        let ev = json!({
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
            "reason": "Scheduled", "type": "Normal", "message": "Successfully assigned default/web to node1\n",
            "source": {"component": "default-scheduler"},
            "firstTimestamp": ago(300), "lastTimestamp": ago(60), "count": 3
        });
        let t = table(&resources::EVENT, &[ev], now());
        assert_eq!(
            t.rows[0].cells,
            [
                "60s",
                "Normal",
                "Scheduled",
                "pod/web",
                "spec.containers{web}",
                "default-scheduler",
                "Successfully assigned default/web to node1",
                "5m",
                "3",
                "web.17a"
            ]
        );
        assert_eq!(
            render(&t, false, false),
            "LAST SEEN   TYPE     REASON      OBJECT    MESSAGE\n\
             60s         Normal   Scheduled   pod/web   Successfully assigned default/web to node1\n"
        );
    }

    #[test]
    fn dns_rows() {
        let d = json!({
            "metadata": {"name": "shop", "creationTimestamp": ago(10)},
            "spec": {"host": "shop.example.com", "paths": [
                {"path": "/cart", "service": {"name": "cart", "port": 80}},
                {"path": "/pay", "service": {"name": "pay", "port": "http"}}
            ]}
        });
        assert_eq!(
            cells(&resources::DNS, d),
            [
                "shop",
                "shop.example.com",
                "/cart,/pay",
                "10s",
                "cart:80,pay:http"
            ]
        );
    }

    #[test]
    fn ingress_rows() {
        let ing = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(10)},
            "spec": {"ingressClassName": "weft", "tls": [{"hosts": ["a.com"]}],
                     "rules": [{"host": "a.com"}, {"host": "b.com"}, {"host": "c.com"}, {}, {"host": "e.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.56.11"}, {"ip": "192.168.56.12"}]}}
        });
        assert_eq!(
            cells(&resources::INGRESS, ing),
            [
                "web",
                "weft",
                "a.com,b.com,c.com + 2 more...",
                "192.168.56.11...",
                "80, 443",
                "10s"
            ]
        );
        let bare = json!({"metadata": {"name": "x"}, "spec": {"rules": [{}]}});
        assert_eq!(
            cells(&resources::INGRESS, bare)[1..5],
            ["<none>", "*", "", "80"]
        );
    }

    #[test]
    fn network_policy_rows() {
        let np = json!({
            "metadata": {"name": "deny", "creationTimestamp": ago(10)},
            "spec": {"podSelector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                          {"key": "canary", "operator": "DoesNotExist"}]}}
        });
        assert_eq!(
            cells(&resources::NETWORK_POLICY, np),
            ["deny", "app=web,!canary,tier in (be,fe)", "10s"]
        );
        let all = json!({"metadata": {"name": "all"}, "spec": {"podSelector": {}}});
        assert_eq!(cells(&resources::NETWORK_POLICY, all)[1], "<none>");
    }
}

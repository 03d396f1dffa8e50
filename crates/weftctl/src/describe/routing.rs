//! Describers of the routing kinds, DNS (weft.io) and Ingress, whose backends are shown
//! with the endpoints behind them, as kubectl shows Ingress backends.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use weft_api::printers::{format_endpoints_for_ports, str_at};

use super::writer::{self, Writer};

/// A backend Service and its Endpoints, as fetched (`None`: not found).
#[derive(Debug, Clone, Default)]
pub struct Backend {
    pub service: Option<Value>,
    pub endpoints: Option<Value>,
}

/// Backends by Service name.
pub type Backends = BTreeMap<String, Backend>;

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A port given by number or name, as text.
fn port_text(port: Option<&Value>) -> String {
    match port {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// `web:80 (10.244.1.5:8080,10.244.2.3:8080)`: kubectl's `describeBackendV1`. The
/// Service port the backend names selects the endpoint port by name.
pub fn backend_text(name: &str, port: Option<&Value>, backends: &Backends) -> String {
    let port_str = port_text(port);
    let b = backends.get(name).cloned().unwrap_or_default();
    let (Some(svc), Some(ep)) = (&b.service, &b.endpoints) else {
        let what = if b.service.is_none() {
            "services"
        } else {
            "endpoints"
        };
        return format!("{name}:{port_str} (<error: {what} {name:?} not found>)");
    };
    let port_name = arr(svc, &["spec", "ports"])
        .iter()
        .find(|sp| match port {
            Some(Value::Number(n)) => sp.get("port").and_then(Value::as_i64) == n.as_i64(),
            Some(Value::String(s)) => str_at(sp, &["name"]) == s,
            _ => false,
        })
        .map(|sp| str_at(sp, &["name"]))
        .unwrap_or("");
    format!(
        "{name}:{port_str} ({})",
        format_endpoints_for_ports(ep, Some(&[port_name]))
    )
}

/// The Service names a DNS object or Ingress routes to, for fetching.
pub fn backend_services(kind: &str, o: &Value) -> Vec<String> {
    let mut names: Vec<String> = match kind {
        "DNS" => arr(o, &["spec", "paths"])
            .iter()
            .map(|p| str_at(p, &["service", "name"]).to_string())
            .collect(),
        "Ingress" => {
            let mut names: Vec<String> = arr(o, &["spec", "rules"])
                .iter()
                .flat_map(|r| arr(r, &["http", "paths"]))
                .map(|p| str_at(p, &["backend", "service", "name"]).to_string())
                .collect();
            names.push(str_at(o, &["spec", "defaultBackend", "service", "name"]).to_string());
            names
        }
        _ => Vec::new(),
    };
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

pub fn dns(o: &Value, backends: &Backends, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    w.line(
        0,
        &format!("Namespace:\t{}", str_at(o, &["metadata", "namespace"])),
    );
    writer::labels(&mut w, "Labels", o.pointer("/metadata/labels"));
    writer::annotations(&mut w, o.pointer("/metadata/annotations"));
    w.line(
        0,
        &format!("Host:\t{}", writer::or_none(str_at(o, &["spec", "host"]))),
    );
    let paths = arr(o, &["spec", "paths"]);
    if paths.is_empty() {
        w.line(0, "Paths:\t<none>");
    } else {
        w.line(0, "Paths:");
        w.line(1, "Path\tBackends");
        w.line(1, "----\t--------");
        for p in paths {
            let backend = backend_text(
                str_at(p, &["service", "name"]),
                p.pointer("/service/port"),
                backends,
            );
            w.line(1, &format!("{}\t{backend}", str_at(p, &["path"])));
        }
    }
    writer::events(&mut w, events, now);
    w.finish()
}

/// An Ingress backend (`service: {name, port: {number|name}}`) as text.
fn ingress_backend(b: &Value, backends: &Backends) -> String {
    let name = str_at(b, &["service", "name"]);
    if name.is_empty() {
        // A resource backend: name its kind and object.
        let kind = str_at(b, &["resource", "kind"]);
        return format!(
            "APIGroup: {}, Kind: {kind}, Name: {}",
            str_at(b, &["resource", "apiGroup"]),
            str_at(b, &["resource", "name"])
        );
    }
    let port = b
        .pointer("/service/port/number")
        .or_else(|| b.pointer("/service/port/name"));
    backend_text(name, port, backends)
}

/// kubectl's `describeIngressV1`.
pub fn ingress(o: &Value, backends: &Backends, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    writer::labels(&mut w, "Labels", o.pointer("/metadata/labels"));
    w.line(
        0,
        &format!("Namespace:\t{}", str_at(o, &["metadata", "namespace"])),
    );
    let addresses: Vec<&str> = arr(o, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .collect();
    w.line(0, &format!("Address:\t{}", addresses.join(",")));
    let class = o
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    w.line(0, &format!("Ingress Class:\t{class}"));
    let default_backend = o.pointer("/spec/defaultBackend").filter(|d| d.is_object());
    let default_text = match default_backend {
        Some(d) => ingress_backend(d, backends),
        None => "<default>".to_string(),
    };
    w.line(0, &format!("Default backend:\t{default_text}"));
    let tls = arr(o, &["spec", "tls"]);
    if !tls.is_empty() {
        w.line(0, "TLS:");
        for t in tls {
            let hosts: Vec<&str> = arr(t, &["hosts"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match str_at(t, &["secretName"]) {
                "" => w.line(1, &format!("SNI routes {}", hosts.join(","))),
                secret => w.line(1, &format!("{secret} terminates {}", hosts.join(","))),
            }
        }
    }
    w.line(0, "Rules:");
    w.line(1, "Host\tPath\tBackends");
    w.line(1, "----\t----\t--------");
    let mut count = 0;
    for rule in arr(o, &["spec", "rules"]) {
        let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
            continue;
        };
        count += 1;
        let host = match str_at(rule, &["host"]) {
            "" => "*",
            h => h,
        };
        w.line(1, &format!("{host}\t"));
        for p in arr(http, &["paths"]) {
            let backend = p.get("backend").unwrap_or(&Value::Null);
            w.line(
                2,
                &format!(
                    "\t{} \t{}",
                    str_at(p, &["path"]),
                    ingress_backend(backend, backends)
                ),
            );
        }
    }
    if count == 0 {
        w.line(1, &format!("*\t*\t{default_text}"));
    }
    writer::annotations(&mut w, o.pointer("/metadata/annotations"));
    writer::events(&mut w, events, now);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn backends() -> Backends {
        let mut b = Backends::new();
        b.insert(
            "cart".into(),
            Backend {
                service: Some(json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
                endpoints: Some(json!({"subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                                                      "ports": [{"name": "http", "port": 8080}]}]})),
            },
        );
        b
    }

    #[test]
    fn dns_paths_show_endpoints() {
        let d = json!({"metadata": {"name": "shop", "namespace": "default"},
                       "spec": {"host": "shop.example.com", "paths": [
                           {"path": "/cart", "service": {"name": "cart", "port": 80}},
                           {"path": "/pay", "service": {"name": "pay", "port": "http"}}]}});
        assert_eq!(
            dns(&d, &backends(), &[], now()),
            "\
Name:         shop
Namespace:    default
Labels:       <none>
Annotations:  <none>
Host:         shop.example.com
Paths:
  Path   Backends
  ----   --------
  /cart  cart:80 (10.244.1.5:8080)
  /pay   pay:http (<error: services \"pay\" not found>)
Events:  <none>
"
        );
        assert_eq!(backend_services("DNS", &d), ["cart", "pay"]);
    }

    #[test]
    fn ingress_rules_match_kubectl_layout() {
        let ing = json!({"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"ingressClassName": "weft", "rules": [{"host": "shop.example.com", "http": {"paths": [
                             {"path": "/cart", "pathType": "Prefix",
                              "backend": {"service": {"name": "cart", "port": {"name": "http"}}}}]}}]}});
        assert_eq!(
            ingress(&ing, &backends(), &[], now()),
            "\
Name:             web
Labels:           <none>
Namespace:        default
Address:          
Ingress Class:    weft
Default backend:  <default>
Rules:
  Host              Path  Backends
  ----              ----  --------
  shop.example.com  
                    /cart   cart:http (10.244.1.5:8080)
Annotations:        <none>
Events:             <none>
"
        );
        assert_eq!(backend_services("Ingress", &ing), ["cart"]);
    }
}

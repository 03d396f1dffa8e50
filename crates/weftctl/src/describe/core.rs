//! Describers of core kinds: Service, Pod, Node, Endpoints, Namespace. Each is a pure
//! function of the object, the related objects fetched for it, and the time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use weft_api::printers::{
    age_since, format_endpoints_for_ports, format_labels, node_roles, str_at,
};

use super::writer::{self, or_none, time, Writer};

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn num(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn protocol(p: &Value) -> &str {
    match str_at(p, &["protocol"]) {
        "" => "TCP",
        x => x,
    }
}

fn header(w: &mut Writer, o: &Value) {
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    w.line(
        0,
        &format!("Namespace:\t{}", str_at(o, &["metadata", "namespace"])),
    );
    writer::labels(w, "Labels", o.pointer("/metadata/labels"));
    writer::annotations(w, o.pointer("/metadata/annotations"));
}

/// kubectl's `describeService`; `endpoints` is the Service's Endpoints object, if any.
pub fn service(
    o: &Value,
    endpoints: Option<&Value>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::default();
    header(&mut w, o);
    let spec = o.get("spec").unwrap_or(&Value::Null);
    w.line(
        0,
        &format!("Selector:\t{}", format_labels(spec.get("selector"))),
    );
    let svc_type = match str_at(spec, &["type"]) {
        "" => "ClusterIP",
        t => t,
    };
    w.line(0, &format!("Type:\t{svc_type}"));
    if !str_at(spec, &["ipFamilyPolicy"]).is_empty() {
        w.line(
            0,
            &format!("IP Family Policy:\t{}", str_at(spec, &["ipFamilyPolicy"])),
        );
    }
    let families: Vec<&str> = arr(spec, &["ipFamilies"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.line(
        0,
        &format!("IP Families:\t{}", or_none(&families.join(","))),
    );
    w.line(0, &format!("IP:\t{}", str_at(spec, &["clusterIP"])));
    let ips: Vec<&str> = arr(spec, &["clusterIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.line(0, &format!("IPs:\t{}", or_none(&ips.join(","))));
    let external: Vec<&str> = arr(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !external.is_empty() {
        w.line(0, &format!("External IPs:\t{}", external.join(",")));
    }
    if !str_at(spec, &["externalName"]).is_empty() {
        w.line(
            0,
            &format!("External Name:\t{}", str_at(spec, &["externalName"])),
        );
    }
    let empty = Value::Null;
    let endpoints = endpoints.unwrap_or(&empty);
    for p in arr(spec, &["ports"]) {
        let name = or_none_unset(str_at(p, &["name"]));
        let proto = protocol(p);
        let port = num(p.get("port"));
        w.line(0, &format!("Port:\t{name}\t{port}/{proto}"));
        // The server defaults targetPort to port; show that for objects without one.
        let target = match p.get("targetPort") {
            Some(t) if !t.is_null() => num(Some(t)),
            _ => port.clone(),
        };
        w.line(0, &format!("TargetPort:\t{target}/{proto}"));
        if let Some(np) = p
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            w.line(0, &format!("NodePort:\t{name}\t{np}/{proto}"));
        }
        let port_name = str_at(p, &["name"]);
        w.line(
            0,
            &format!(
                "Endpoints:\t{}",
                format_endpoints_for_ports(endpoints, Some(&[port_name]))
            ),
        );
    }
    let affinity = match str_at(spec, &["sessionAffinity"]) {
        "" => "None",
        a => a,
    };
    w.line(0, &format!("Session Affinity:\t{affinity}"));
    for (title, key) in [
        ("External Traffic Policy", "externalTrafficPolicy"),
        ("Internal Traffic Policy", "internalTrafficPolicy"),
    ] {
        if !str_at(spec, &[key]).is_empty() {
            w.line(0, &format!("{title}:\t{}", str_at(spec, &[key])));
        }
    }
    writer::events(&mut w, events, now);
    w.finish()
}

fn or_none_unset(s: &str) -> &str {
    if s.is_empty() {
        "<unset>"
    } else {
        s
    }
}

/// kubectl's `describePod`, for the fields Weft pods have.
pub fn pod(o: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    let status = o.get("status").unwrap_or(&Value::Null);
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    w.line(
        0,
        &format!("Namespace:\t{}", str_at(o, &["metadata", "namespace"])),
    );
    match str_at(o, &["spec", "nodeName"]) {
        "" => w.line(0, "Node:\t<none>"),
        node => w.line(0, &format!("Node:\t{node}/{}", str_at(status, &["hostIP"]))),
    }
    if !str_at(status, &["startTime"]).is_empty() {
        w.line(
            0,
            &format!("Start Time:\t{}", time(str_at(status, &["startTime"]))),
        );
    }
    writer::labels(&mut w, "Labels", o.pointer("/metadata/labels"));
    writer::annotations(&mut w, o.pointer("/metadata/annotations"));
    let phase = str_at(status, &["phase"]);
    let deletion = str_at(o, &["metadata", "deletionTimestamp"]);
    if !deletion.is_empty() && phase != "Failed" && phase != "Succeeded" {
        w.line(0, "Status:\tTerminating");
    } else {
        w.line(0, &format!("Status:\t{phase}"));
    }
    for (title, key) in [("Reason", "reason"), ("Message", "message")] {
        if !str_at(status, &[key]).is_empty() {
            w.line(0, &format!("{title}:\t{}", str_at(status, &[key])));
        }
    }
    let pod_ip = str_at(status, &["podIP"]);
    w.line(0, &format!("IP:\t{pod_ip}"));
    let mut ips: Vec<&str> = arr(status, &["podIPs"])
        .iter()
        .map(|p| str_at(p, &["ip"]))
        .collect();
    if ips.is_empty() && !pod_ip.is_empty() {
        ips.push(pod_ip);
    }
    if ips.is_empty() {
        w.line(0, "IPs:\t<none>");
    } else {
        w.line(0, "IPs:");
        for ip in ips {
            w.line(1, &format!("IP:\t{ip}"));
        }
    }
    w.line(0, "Containers:");
    for c in arr(o, &["spec", "containers"]) {
        let name = str_at(c, &["name"]);
        let cs = arr(status, &["containerStatuses"])
            .iter()
            .find(|s| str_at(s, &["name"]) == name);
        container(&mut w, c, cs);
    }
    let gates = arr(o, &["spec", "readinessGates"]);
    if !gates.is_empty() {
        w.line(0, "Readiness Gates:");
        w.line(1, "Type\tStatus");
        for g in gates {
            let t = str_at(g, &["conditionType"]);
            let st = arr(status, &["conditions"])
                .iter()
                .find(|c| str_at(c, &["type"]) == t)
                .map(|c| str_at(c, &["status"]))
                .unwrap_or("<none>");
            w.line(1, &format!("{t} \t{st} "));
        }
    }
    let conditions = arr(status, &["conditions"]);
    if !conditions.is_empty() {
        w.line(0, "Conditions:");
        w.line(1, "Type\tStatus");
        for c in conditions {
            // kubectl's cells end in a space; kept so columns line up as in kubectl.
            w.line(
                1,
                &format!("{} \t{} ", str_at(c, &["type"]), str_at(c, &["status"])),
            );
        }
    }
    writer::events(&mut w, events, now);
    w.finish()
}

fn container(w: &mut Writer, c: &Value, status: Option<&Value>) {
    w.line(1, &format!("{}:", str_at(c, &["name"])));
    if let Some(s) = status {
        w.line(
            2,
            &format!("Container ID:\t{}", str_at(s, &["containerID"])),
        );
    }
    w.line(2, &format!("Image:\t{}", str_at(c, &["image"])));
    if let Some(s) = status {
        w.line(2, &format!("Image ID:\t{}", str_at(s, &["imageID"])));
    }
    let ports = arr(c, &["ports"]);
    let port_list: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", num(p.get("containerPort")), protocol(p)))
        .collect();
    let host_list: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                num(p.get("hostPort")).parse::<i64>().unwrap_or(0),
                protocol(p)
            )
        })
        .collect();
    let (title, host_title) = if ports.len() > 1 {
        ("Ports", "Host Ports")
    } else {
        ("Port", "Host Port")
    };
    w.line(2, &format!("{title}:\t{}", or_none(&port_list.join(", "))));
    w.line(
        2,
        &format!("{host_title}:\t{}", or_none(&host_list.join(", "))),
    );
    for (title, key) in [("Command", "command"), ("Args", "args")] {
        let items = arr(c, &[key]);
        if !items.is_empty() {
            w.line(2, &format!("{title}:"));
            for item in items {
                for line in item.as_str().unwrap_or("").split('\n') {
                    w.line(3, line);
                }
            }
        }
    }
    if let Some(s) = status {
        container_state(w, "State", s.get("state"));
        if s.pointer("/lastState/terminated").is_some() {
            container_state(w, "Last State", s.get("lastState"));
        }
        let ready = s.get("ready").and_then(Value::as_bool).unwrap_or(false);
        w.line(
            2,
            &format!("Ready:\t{}", if ready { "True" } else { "False" }),
        );
        w.line(
            2,
            &format!(
                "Restart Count:\t{}",
                num(s.get("restartCount")).parse::<i64>().unwrap_or(0)
            ),
        );
    }
    for (title, key) in [
        ("Liveness", "livenessProbe"),
        ("Readiness", "readinessProbe"),
        ("Startup", "startupProbe"),
    ] {
        if let Some(p) = c.get(key).filter(|p| p.is_object()) {
            w.line(2, &format!("{title}:\t{}", probe(p)));
        }
    }
    let env = arr(c, &["env"]);
    if env.is_empty() {
        w.line(2, "Environment:\t<none>");
    } else {
        w.line(2, "Environment:");
        for e in env {
            let value = match e.get("value").and_then(Value::as_str) {
                Some(v) => v.to_string(),
                None => match e
                    .pointer("/valueFrom/fieldRef/fieldPath")
                    .and_then(Value::as_str)
                {
                    Some(path) => {
                        let api = match str_at(e, &["valueFrom", "fieldRef", "apiVersion"]) {
                            "" => "v1",
                            v => v,
                        };
                        format!(" ({api}:{path})")
                    }
                    None if e.get("valueFrom").is_some() => "<set from source>".to_string(),
                    None => String::new(),
                },
            };
            w.line(3, &format!("{}:\t{value}", str_at(e, &["name"])));
        }
    }
}

/// kubectl's `describeStatus`.
fn container_state(w: &mut Writer, title: &str, state: Option<&Value>) {
    let state = state.unwrap_or(&Value::Null);
    if let Some(r) = state.get("running").filter(|v| v.is_object()) {
        w.line(2, &format!("{title}:\tRunning"));
        w.line(3, &format!("Started:\t{}", time(str_at(r, &["startedAt"]))));
    } else if let Some(t) = state.get("terminated").filter(|v| v.is_object()) {
        w.line(2, &format!("{title}:\tTerminated"));
        for (k, key) in [("Reason", "reason"), ("Message", "message")] {
            if !str_at(t, &[key]).is_empty() {
                w.line(3, &format!("{k}:\t{}", str_at(t, &[key])));
            }
        }
        w.line(
            3,
            &format!(
                "Exit Code:\t{}",
                num(t.get("exitCode")).parse::<i64>().unwrap_or(0)
            ),
        );
        if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s > 0) {
            w.line(3, &format!("Signal:\t{sig}"));
        }
        w.line(3, &format!("Started:\t{}", time(str_at(t, &["startedAt"]))));
        w.line(
            3,
            &format!("Finished:\t{}", time(str_at(t, &["finishedAt"]))),
        );
    } else {
        w.line(2, &format!("{title}:\tWaiting"));
        let reason = str_at(state, &["waiting", "reason"]);
        if !reason.is_empty() {
            w.line(3, &format!("Reason:\t{reason}"));
        }
    }
}

/// kubectl's `DescribeProbe`: `http-get http://:8080/healthz delay=0s timeout=1s ...`,
/// with Kubernetes' defaults for fields the object leaves out.
pub fn probe(p: &Value) -> String {
    let field = |k: &str, default: i64| p.get(k).and_then(Value::as_i64).unwrap_or(default);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        field("initialDelaySeconds", 0),
        field("timeoutSeconds", 1),
        field("periodSeconds", 10),
        field("successThreshold", 1),
        field("failureThreshold", 3)
    );
    if let Some(h) = p.get("httpGet").filter(|v| v.is_object()) {
        let scheme = match str_at(h, &["scheme"]) {
            "" => "http".to_string(),
            s => s.to_lowercase(),
        };
        let port = num(h.get("port"));
        let host = str_at(h, &["host"]);
        let host = if port.is_empty() {
            host.to_string()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        return format!("http-get {scheme}://{host}{} {attrs}", str_at(h, &["path"]));
    }
    if let Some(t) = p.get("tcpSocket").filter(|v| v.is_object()) {
        return format!(
            "tcp-socket {}:{} {attrs}",
            str_at(t, &["host"]),
            num(t.get("port"))
        );
    }
    if let Some(e) = p.get("exec").filter(|v| v.is_object()) {
        let cmd: Vec<&str> = arr(e, &["command"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        return format!("exec [{}] {attrs}", cmd.join(" "));
    }
    if let Some(g) = p.get("grpc").filter(|v| v.is_object()) {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            num(g.get("port")),
            str_at(g, &["service"])
        );
    }
    format!("unknown {attrs}")
}

/// kubectl's `describeNode`, with the pods placed on it (Weft tracks no resource
/// requests, so the pod table shows addresses instead).
pub fn node(o: &Value, pods: &[Value], events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let status = o.get("status").unwrap_or(&Value::Null);
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    w.line(0, &format!("Roles:\t{}", node_roles(o)));
    writer::labels(&mut w, "Labels", o.pointer("/metadata/labels"));
    writer::annotations(&mut w, o.pointer("/metadata/annotations"));
    w.line(
        0,
        &format!(
            "CreationTimestamp:\t{}",
            time(str_at(o, &["metadata", "creationTimestamp"]))
        ),
    );
    let taints: Vec<String> = arr(spec, &["taints"])
        .iter()
        .map(|t| {
            let (k, v, e) = (
                str_at(t, &["key"]),
                str_at(t, &["value"]),
                str_at(t, &["effect"]),
            );
            if v.is_empty() {
                format!("{k}:{e}")
            } else {
                format!("{k}={v}:{e}")
            }
        })
        .collect();
    writer::multiline(&mut w, "Taints", &taints);
    let unschedulable = spec
        .get("unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    w.line(0, &format!("Unschedulable:\t{unschedulable}"));
    let conditions = arr(status, &["conditions"]);
    if !conditions.is_empty() {
        w.line(0, "Conditions:");
        w.line(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        w.line(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conditions {
            w.line(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}",
                    str_at(c, &["type"]),
                    str_at(c, &["status"]),
                    time(str_at(c, &["lastHeartbeatTime"])),
                    time(str_at(c, &["lastTransitionTime"])),
                    str_at(c, &["reason"]),
                    str_at(c, &["message"])
                ),
            );
        }
    }
    w.line(0, "Addresses:");
    for a in arr(status, &["addresses"]) {
        w.line(
            1,
            &format!("{}:\t{}", str_at(a, &["type"]), str_at(a, &["address"])),
        );
    }
    if let Some(info) = status.get("nodeInfo").filter(|v| v.is_object()) {
        w.line(0, "System Info:");
        for (title, key) in [
            ("Machine ID", "machineID"),
            ("System UUID", "systemUUID"),
            ("Boot ID", "bootID"),
            ("Kernel Version", "kernelVersion"),
            ("OS Image", "osImage"),
            ("Operating System", "operatingSystem"),
            ("Architecture", "architecture"),
            ("Container Runtime Version", "containerRuntimeVersion"),
            ("Kubelet Version", "kubeletVersion"),
        ] {
            w.line(1, &format!("{title}:\t{}", str_at(info, &[key])));
        }
    }
    if !str_at(spec, &["podCIDR"]).is_empty() {
        w.line(0, &format!("PodCIDR:\t{}", str_at(spec, &["podCIDR"])));
    }
    let cidrs: Vec<&str> = arr(spec, &["podCIDRs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.line(0, &format!("PodCIDRs:\t{}", cidrs.join(",")));
    }
    w.line(
        0,
        &format!("Non-terminated Pods:\t({} in total)", pods.len()),
    );
    if !pods.is_empty() {
        w.line(1, "Namespace\tName\tIP\tAge");
        w.line(1, "---------\t----\t--\t---");
        for p in pods {
            w.line(
                1,
                &format!(
                    "{}\t{}\t{}\t{}",
                    str_at(p, &["metadata", "namespace"]),
                    str_at(p, &["metadata", "name"]),
                    or_none(str_at(p, &["status", "podIP"])),
                    age_since(str_at(p, &["metadata", "creationTimestamp"]), now)
                ),
            );
        }
    }
    writer::events(&mut w, events, now);
    w.finish()
}

/// kubectl's `describeEndpoints`.
pub fn endpoints(o: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    header(&mut w, o);
    w.line(0, "Subsets:");
    for ss in arr(o, &["subsets"]) {
        for (title, key) in [
            ("Addresses", "addresses"),
            ("NotReadyAddresses", "notReadyAddresses"),
        ] {
            let ips: Vec<&str> = arr(ss, &[key]).iter().map(|a| str_at(a, &["ip"])).collect();
            w.line(1, &format!("{title}:\t{}", or_none(&ips.join(","))));
        }
        let ports = arr(ss, &["ports"]);
        if !ports.is_empty() {
            w.line(1, "Ports:");
            w.line(2, "Name\tPort\tProtocol");
            w.line(2, "----\t----\t--------");
            for p in ports {
                w.line(
                    2,
                    &format!(
                        "{}\t{}\t{}",
                        or_none_unset(str_at(p, &["name"])),
                        num(p.get("port")),
                        protocol(p)
                    ),
                );
            }
        }
        w.line(0, "");
    }
    writer::events(&mut w, events, now);
    w.finish()
}

/// kubectl's `describeNamespace`, without quotas (Weft has none).
pub fn namespace(o: &Value) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", str_at(o, &["metadata", "name"])));
    writer::labels(&mut w, "Labels", o.pointer("/metadata/labels"));
    writer::annotations(&mut w, o.pointer("/metadata/annotations"));
    let phase = match str_at(o, &["status", "phase"]) {
        "" => "Active",
        p => p,
    };
    w.line(0, &format!("Status:\t{phase}"));
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

    #[test]
    fn service_matches_kubectl_layout() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.12.34",
                     "clusterIPs": ["10.96.12.34"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}],
                     "sessionAffinity": "None", "externalTrafficPolicy": "Cluster"}
        });
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
                                     "ports": [{"name": "http", "port": 8080}]}]});
        assert_eq!(
            service(&svc, Some(&ep), &[], now()),
            "\
Name:                     web
Namespace:                default
Labels:                   app=web
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.12.34
IPs:                      10.96.12.34
Port:                     http  80/TCP
TargetPort:               8080/TCP
NodePort:                 http  30080/TCP
Endpoints:                10.244.1.5:8080,10.244.2.3:8080
Session Affinity:         None
External Traffic Policy:  Cluster
Events:                   <none>
"
        );
    }

    #[test]
    fn pod_lists_containers_and_conditions() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "node1", "containers": [{
                "name": "web", "image": "nginx:1.25", "command": ["nginx", "-g", "daemon off;"],
                "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}},
                "env": [{"name": "MODE", "value": "prod"}]}]},
            "status": {"phase": "Running", "hostIP": "192.168.56.11", "podIP": "10.244.1.5",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": "2024-05-01T11:00:00Z"}}}]}
        });
        let text = pod_text(&pod);
        for want in [
            "Node:         node1/192.168.56.11\n",
            "IPs:\n  IP:  10.244.1.5\n",
            // "Command:" has no value cell, so it ends the alignment block above it,
            // exactly as Go's tabwriter does in kubectl.
            "    Image:         nginx:1.25\n",
            "    Port:          80/TCP\n",
            "    Command:\n      nginx\n      -g\n      daemon off;\n",
            "    State:          Running\n      Started:      Wed, 01 May 2024 11:00:00 +0000\n",
            "    Ready:          True\n",
            "    Readiness:      http-get http://:80/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n",
            "    Environment:\n      MODE:  prod\n",
            "Conditions:\n  Type    Status\n  Ready   True \n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    fn pod_text(p: &Value) -> String {
        pod(p, &[], now())
    }

    #[test]
    fn probes() {
        assert_eq!(
            probe(&json!({"tcpSocket": {"port": 53}, "periodSeconds": 5})),
            "tcp-socket :53 delay=0s timeout=1s period=5s #success=1 #failure=3"
        );
        assert_eq!(
            probe(&json!({"exec": {"command": ["cat", "/tmp/ok"]}})),
            "exec [cat /tmp/ok] delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
    }

    #[test]
    fn node_shows_addresses_and_pod_cidr() {
        let node_obj = json!({
            "metadata": {"name": "node1", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.11"}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "WeftReady"}],
                       "nodeInfo": {"kernelVersion": "6.1.0"}}
        });
        let pods = [
            json!({"metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:00Z"},
                           "status": {"podIP": "10.244.1.5"}}),
        ];
        let text = node(&node_obj, &pods, &[], now());
        for want in [
            "Roles:              <none>\n",
            "Unschedulable:      false\n",
            "Addresses:\n  InternalIP:  192.168.56.11\n",
            "  Kernel Version:             6.1.0\n",
            "PodCIDR:                      10.244.1.0/24\n",
            "Non-terminated Pods:          (1 in total)\n",
            "  default                     web-0  10.244.1.5  60s\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn endpoints_subsets() {
        let ep = json!({"metadata": {"name": "web", "namespace": "default"},
                        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080, "protocol": "TCP"}]}]});
        assert_eq!(
            endpoints(&ep, &[], now()),
            "\
Name:         web
Namespace:    default
Labels:       <none>
Annotations:  <none>
Subsets:
  Addresses:          10.244.1.5
  NotReadyAddresses:  <none>
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  8080  TCP

Events:  <none>
"
        );
    }
}

//! weftctl's commands end to end against a real in-process API server over TLS.

use clap::Parser;
use serde_json::Value;
use weft_client::{Client, Kubeconfig};
use weftctl::cli::Cli;
use weftctl::{run, Ctx};

struct Output {
    code: i32,
    out: String,
    err: String,
}

/// An API server in a temp dir and a client built from the kubeconfig it wrote, exactly as
/// `weftctl --kubeconfig` would build it.
async fn start() -> (tempfile::TempDir, weft_apiserver::Running, Client) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = weft_apiserver::Config::new(dir.path());
    config.bind = ([127, 0, 0, 1], 0).into();
    let running = weft_apiserver::start(config).await.unwrap();
    let kubeconfig = Kubeconfig::load(&running.kubeconfig_path).unwrap();
    let client = Client::from_kubeconfig(&kubeconfig).unwrap();
    (dir, running, client)
}

async fn weftctl(client: &Client, args: &[&str], stdin: &str) -> Output {
    let cli = Cli::try_parse_from(std::iter::once("weftctl").chain(args.iter().copied())).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let code = {
        let mut ctx = Ctx::new(&cli, client.clone(), &mut out, &mut err, &mut input);
        run(&cli, &mut ctx).await
    };
    Output {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: weft.io/v1
kind: DNS
metadata:
  name: shop
  namespace: shop
spec:
  host: shop.example.com
  paths:
  - path: /
    service: {name: web, port: 80}
";

#[tokio::test]
async fn apply_creates_then_is_unchanged_then_configures() {
    let (_dir, _server, client) = start().await;
    let o = weftctl(&client, &["apply", "-f", "-"], MANIFEST).await;
    assert_eq!(o.err, "");
    assert_eq!(
        o.out,
        "namespace/shop created\nservice/web created\ndns.weft.io/shop created\n"
    );
    assert_eq!(o.code, 0);

    let first_ip = client
        .get(&weft_api::resources::SERVICE, Some("shop"), "web")
        .await
        .unwrap()["spec"]["clusterIP"]
        .clone();
    assert!(first_ip.as_str().unwrap().starts_with("10."), "{first_ip}");

    // The server allocated a clusterIP the manifest leaves out: still unchanged.
    let o = weftctl(&client, &["apply", "-f", "-"], MANIFEST).await;
    assert_eq!(
        o.out,
        "namespace/shop unchanged\nservice/web unchanged\ndns.weft.io/shop unchanged\n"
    );

    let changed = MANIFEST.replace("port: 80\n    targetPort", "port: 81\n    targetPort");
    let o = weftctl(&client, &["apply", "-f", "-"], &changed).await;
    assert_eq!(
        o.out,
        "namespace/shop unchanged\nservice/web configured\ndns.weft.io/shop unchanged\n"
    );
    let svc = client
        .get(&weft_api::resources::SERVICE, Some("shop"), "web")
        .await
        .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 81);
    assert_eq!(
        svc["spec"]["clusterIP"], first_ip,
        "the ClusterIP survives re-apply"
    );
}

#[tokio::test]
async fn apply_reports_bad_documents_and_goes_on() {
    let (_dir, _server, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "\
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports:
  - port: 80
    protocl: TCP
---
apiVersion: v1
kind: Service
metadata: {name: good}
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
",
    )
    .unwrap();
    let path = file.display().to_string();
    let o = weftctl(&client, &["apply", "-f", &path], "").await;
    assert_eq!(o.code, 1);
    assert_eq!(o.out, "service/good created\n");
    let lines: Vec<&str> = o.err.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.err);
    assert!(
        lines[0].starts_with(&format!(
            "error: {path}: document 1 (service/bad): spec.ports[0]"
        )),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("protocl"), "{}", lines[0]);
    assert!(
        lines[1].starts_with(&format!("error: {path}: document 3 (Deployment/web): ")),
        "{}",
        lines[1]
    );

    // A server-side rejection is reported with the document, message verbatim.
    let bad_port =
        "apiVersion: v1\nkind: Service\nmetadata: {name: good}\nspec:\n  ports: [{port: 0}]\n";
    let o = weftctl(&client, &["apply", "-f", "-"], bad_port).await;
    assert_eq!(o.code, 1);
    assert!(
        o.err.starts_with("error: <stdin>: document 1 (service/good): Service \"good\" is invalid: spec.ports[0].port"),
        "{}",
        o.err
    );
    assert_eq!(o.err.lines().count(), 1, "{}", o.err);
}

#[tokio::test]
async fn get_describe_delete() {
    let (_dir, _server, client) = start().await;
    weftctl(&client, &["apply", "-f", "-"], MANIFEST).await;
    let cluster_ip = client
        .get(&weft_api::resources::SERVICE, Some("shop"), "web")
        .await
        .unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    let o = weftctl(&client, &["get", "svc", "-n", "kube-public"], "").await;
    assert_eq!(o.out, "");
    assert_eq!(o.err, "No resources found in kube-public namespace.\n");

    let o = weftctl(&client, &["get", "svc", "-n", "shop"], "").await;
    assert_eq!(o.code, 0);
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        &["web", "ClusterIP", cluster_ip.as_str(), "<none>", "80/TCP"],
        "{}",
        o.out
    );
    // Columns are aligned: every header starts where its cells start.
    assert_eq!(
        lines[0].find("TYPE"),
        lines[1].find("ClusterIP"),
        "{}",
        o.out
    );

    let o = weftctl(&client, &["get", "svc,dns", "-A"], "").await;
    assert!(
        o.out
            .starts_with("NAMESPACE     NAME                  TYPE"),
        "{}",
        o.out
    );
    assert!(
        o.out
            .contains("\nkube-system   service/kube-dns      ClusterIP   10.96.0.10 "),
        "{}",
        o.out
    );
    assert!(
        o.out.contains("\n\nNAMESPACE   NAME               HOST"),
        "{}",
        o.out
    );
    assert!(
        o.out
            .contains("shop        dns.weft.io/shop   shop.example.com   /"),
        "{}",
        o.out
    );

    let o = weftctl(&client, &["get", "-n", "shop", "svc/web", "-o", "json"], "").await;
    let v: Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(v["kind"], "Service");
    assert!(o.out.starts_with("{\n    \""), "{}", o.out);

    let o = weftctl(&client, &["get", "ns", "-o", "name"], "").await;
    assert_eq!(
        o.out,
        "namespace/default\nnamespace/kube-public\nnamespace/kube-system\nnamespace/shop\n"
    );

    let o = weftctl(&client, &["get", "svc", "nope", "-n", "shop"], "").await;
    assert_eq!(o.code, 1);
    assert_eq!(o.err, "error: services \"nope\" not found\n");

    let o = weftctl(&client, &["describe", "svc", "web", "-n", "shop"], "").await;
    assert_eq!(o.code, 0, "{}", o.err);
    let fields: Vec<Vec<&str>> = o
        .out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(fields[0], ["Name:", "web"], "{}", o.out);
    assert_eq!(fields[1], ["Namespace:", "shop"], "{}", o.out);
    assert!(
        fields.contains(&vec!["IP:", cluster_ip.as_str()]),
        "{}",
        o.out
    );
    assert!(
        fields.contains(&vec!["TargetPort:", "8080/TCP"]),
        "{}",
        o.out
    );
    // The endpoints controller wrote Endpoints with no ready pod behind them.
    assert!(fields.contains(&vec!["Endpoints:", "<none>"]), "{}", o.out);
    assert_eq!(
        fields.last().unwrap(),
        &vec!["Events:", "<none>"],
        "{}",
        o.out
    );

    let o = weftctl(&client, &["describe", "dns", "shop", "-n", "shop"], "").await;
    assert!(o.out.contains("  /      web:80 (<none>)\n"), "{}", o.out);

    let o = weftctl(&client, &["delete", "svc", "web", "-n", "shop"], "").await;
    assert_eq!((o.code, o.out.as_str()), (0, "service \"web\" deleted\n"));
    let o = weftctl(&client, &["delete", "svc", "web", "-n", "shop"], "").await;
    assert_eq!(o.code, 1);
    assert_eq!(o.err, "error: services \"web\" not found\n");
    let o = weftctl(
        &client,
        &["delete", "svc", "web", "-n", "shop", "--ignore-not-found"],
        "",
    )
    .await;
    assert_eq!(o.code, 0);

    // Deleting the namespace takes its contents with it, so the later documents are gone:
    // each is reported, and the command fails.
    let o = weftctl(&client, &["delete", "-f", "-"], MANIFEST).await;
    assert_eq!(o.code, 1);
    assert_eq!(o.out, "namespace \"shop\" deleted\n");
    assert_eq!(
        o.err,
        "error: <stdin>: document 2 (service/web): services \"web\" not found\n\
         error: <stdin>: document 3 (dns.weft.io/shop): dnses.weft.io \"shop\" not found\n"
    );
}

#[tokio::test]
async fn usage_errors_are_one_line() {
    let (_dir, _server, client) = start().await;
    let o = weftctl(&client, &["get", "deployments"], "").await;
    assert_eq!(
        (o.code, o.err.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"deployments\"\n"
        )
    );
    let o = weftctl(&client, &["apply", "-f", "/does/not/exist.yaml"], "").await;
    assert_eq!(
        o.err,
        "error: the path \"/does/not/exist.yaml\" does not exist\n"
    );
    let o = weftctl(&client, &["apply", "-n", "other", "-f", "-"], MANIFEST).await;
    assert!(
        o.err.contains("does not match the namespace \"other\""),
        "{}",
        o.err
    );
}

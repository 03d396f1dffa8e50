//! Peak memory of listing 10,000 Endpoints × 10 addresses (the informers' first list at
//! 10k Services), from a local HTTP server, one way per process so peaks do not mix:
//!
//! ```sh
//! cargo run --release -p weft-client --example list-memory -- typed   # Api::list
//! cargo run --release -p weft-client --example list-memory -- value   # Value tree, then typed
//! ```
//!
//! `typed` is what informers do; `value` is how `Api::list` decoded before (the whole list
//! as `serde_json::Value`s, then each item into its type). Reports VmHWM (peak RSS)
//! before and after, and the time taken.

use std::time::Instant;

use axum::routing::get;
use axum::Router;
use weft_api::core::Endpoints;
use weft_client::{Client, ListParams};

/// Written as text: building it as `Value`s would raise the peak before the measurement.
fn body(n: usize) -> Vec<u8> {
    let mut out = String::from(
        r#"{"apiVersion":"v1","kind":"EndpointsList","metadata":{"resourceVersion":"1"},"items":["#,
    );
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let addresses: Vec<String> = (0..10)
            .map(|j| {
                let k = i * 10 + j;
                format!(
                    r#"{{"ip":"10.{}.{}.{}","nodeName":"node-{}","targetRef":{{"kind":"Pod","namespace":"bench","name":"svc-{i}-{j}"}}}}"#,
                    128 + k / 62500,
                    (k / 250) % 250,
                    k % 250 + 1,
                    j % 3
                )
            })
            .collect();
        out.push_str(&format!(
            r#"{{"apiVersion":"v1","kind":"Endpoints","metadata":{{"name":"svc-{i}","namespace":"bench","resourceVersion":"1","uid":"00000000-0000-0000-0000-{i:012}","creationTimestamp":"2026-11-21T00:00:00Z"}},"subsets":[{{"addresses":[{}],"ports":[{{"name":"http","port":8080,"protocol":"TCP"}}]}}]}}"#,
            addresses.join(",")
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let how = std::env::args().nth(1).unwrap_or_else(|| "typed".into());
    let bytes = body(10_000);
    let size = bytes.len();
    let app = Router::new().route(
        "/api/v1/namespaces/bench/endpoints",
        get(move || {
            let bytes = bytes.clone();
            async move { ([("content-type", "application/json")], bytes) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new(&url, "token", None).unwrap();

    let before = peak_mib();
    let start = Instant::now();
    let count = match how.as_str() {
        "value" => {
            let info = <Endpoints as weft_api::Object>::INFO;
            let list = client
                .list(info, Some("bench"), &ListParams::default())
                .await
                .unwrap();
            let typed: Vec<Endpoints> = list
                .items
                .into_iter()
                .map(|v| serde_json::from_value(v).unwrap())
                .collect();
            typed.len()
        }
        _ => client
            .api::<Endpoints>(Some("bench"))
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
    };
    println!(
        "{how}: {count} Endpoints from a {:.1} MB list in {:.0} ms; peak RSS {:.0} MiB before the list, {:.0} MiB after (+{:.0})",
        size as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3,
        before,
        peak_mib(),
        peak_mib() - before
    );
}

//! API server benchmark, over HTTPS against an in-process server on loopback:
//! 1. preload N Services (concurrent creates), then time M more creates: creates/s with N stored;
//! 2. list all N Services: p50 and max latency;
//! 3. W watchers on Services while one writer updates at R writes/s: delivery latency p50/p99
//!    (send time carried in an annotation, compared on receipt).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use weft_apiserver::{Config, StoreBackend};
use weft_store::testing::EtcdProcess;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Store {
    Redb,
    Etcd,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "redb")]
    store: Store,
    /// Services stored before measuring.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Creates timed after the preload.
    #[arg(long, default_value_t = 2_000)]
    measured_creates: usize,
    /// Concurrent clients for creates.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes per second during the watch test.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

const SVCS: &str = "/api/v1/namespaces/default/services";

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name, "tier": "bench"}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Target {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Target {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }
}

async fn create_range(
    target: &Arc<Target>,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> Result<Duration> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, next, prefix) = (target.clone(), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let resp = target
                        .req(reqwest::Method::POST, SVCS)
                        .json(&service(&format!("{prefix}-{i}")))
                        .send()
                        .await?;
                    if resp.status().as_u16() != 201 {
                        bail!(
                            "create failed: {} {}",
                            resp.status(),
                            resp.text().await.unwrap_or_default()
                        );
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

pub async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let etcd;
    let mut config = Config::new(dir.path());
    config.bind = ([127, 0, 0, 1], 0).into();
    // A large service CIDR is the default (/12): room for every benchmark Service.
    match args.store {
        Store::Redb => {}
        Store::Etcd => {
            etcd = EtcdProcess::start()
                .context("etcd is not installed (apt-get install etcd-server)")?;
            config.store = StoreBackend::Etcd {
                endpoints: vec![etcd.endpoint.clone()],
                prefix: "/weft-bench".into(),
            };
        }
    }
    let running = weft_apiserver::start(config).await?;
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(256);
    if let Some(ca) = &running.ca_pem {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
    }
    let target = Arc::new(Target {
        client: builder.build()?,
        url: running.url.clone(),
        token: running.admin_token.clone(),
    });
    println!(
        "weft-bench apiserver: store={:?} objects={} concurrency={}",
        args.store, args.objects, args.concurrency
    );

    let preload = create_range(&target, "pre", args.objects, args.concurrency).await?;
    println!(
        "preload:      {} creates in {:.2}s = {:.0} creates/s",
        args.objects,
        preload.as_secs_f64(),
        args.objects as f64 / preload.as_secs_f64()
    );

    // List latency with exactly `objects` stored (+ the built-in `kubernetes`).
    let mut lists = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let body = target
            .req(reqwest::Method::GET, SVCS)
            .send()
            .await?
            .bytes()
            .await?;
        lists.push(start.elapsed());
        let list: Value = serde_json::from_slice(&body)?;
        let n = list["items"].as_array().map_or(0, Vec::len);
        if n < args.objects {
            bail!(
                "list returned {n} items, expected at least {}",
                args.objects
            );
        }
    }
    lists.sort();
    println!(
        "list:         {} Services: p50 {:.1} ms, max {:.1} ms",
        args.objects,
        percentile(&lists, 0.5).as_secs_f64() * 1e3,
        lists.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );

    let measured = create_range(&target, "more", args.measured_creates, args.concurrency).await?;
    println!(
        "creates:      {} more with {} stored in {:.2}s = {:.0} creates/s",
        args.measured_creates,
        args.objects,
        measured.as_secs_f64(),
        args.measured_creates as f64 / measured.as_secs_f64()
    );

    watch_latency(&target, &args).await?;
    running.stop().await?;
    Ok(())
}

async fn watch_latency(target: &Arc<Target>, args: &Args) -> Result<()> {
    let list: Value = target
        .req(
            reqwest::Method::GET,
            &format!("{SVCS}?labelSelector=app%3Dpre-0"),
        )
        .send()
        .await?
        .json()
        .await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    // (send stamp, receive time) of every delivery, in nanoseconds since the epoch.
    let deliveries: Arc<Mutex<Vec<(u128, u128)>>> = Arc::default();
    let expected = (args.rate * args.seconds) as usize;
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let resp = target
            .req(
                reqwest::Method::GET,
                &format!("{SVCS}?watch=true&resourceVersion={from}"),
            )
            .send()
            .await?;
        let deliveries = deliveries.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            let mut seen = 0usize;
            let marker = "\"bench/sent\":\"";
            while let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_secs(10), stream.next()).await
            {
                let received = now_nanos();
                buffer.extend_from_slice(&chunk);
                // Whole lines only; the rest waits for the next chunk. One drain per chunk
                // keeps the client's cost linear, so the figure is the server's.
                let Some(end) = buffer.iter().rposition(|b| *b == b'\n') else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buffer[..=end]).into_owned();
                buffer.drain(..=end);
                let mut found = Vec::new();
                for line in text.lines() {
                    if let Some(at) = line.find(marker) {
                        let digits: String = line[at + marker.len()..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        if let Ok(sent) = digits.parse::<u128>() {
                            found.push((sent, received));
                        }
                    }
                }
                seen += found.len();
                deliveries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(found);
                if seen >= expected {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One writer paced at `rate`: merge-patch an annotation on existing Services.
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut sent = 0usize;
    let mut inflight = futures::stream::FuturesUnordered::new();
    // Send stamp → when the write was acknowledged.
    let mut acked: std::collections::HashMap<u128, u128> = std::collections::HashMap::new();
    while sent < expected {
        let due = start + interval * sent as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let name = format!("pre-{}", sent % args.objects.max(1));
        let stamp = now_nanos();
        let patch = json!({"metadata": {"annotations": {"bench/sent": stamp.to_string()}}});
        let req = target
            .req(reqwest::Method::PATCH, &format!("{SVCS}/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        // Spawned, so every request runs on its own at once (a FuturesUnordered only makes
        // progress while polled, which would hold requests back between sends).
        inflight.push(tokio::spawn(async move {
            req.send().await.map(|r| (stamp, r.status(), now_nanos()))
        }));
        sent += 1;
        while inflight.len() > 64 {
            if let Some(r) = inflight.next().await {
                let (stamp, status, at) = r??;
                if !status.is_success() {
                    bail!("write failed: {status}");
                }
                acked.insert(stamp, at);
            }
        }
    }
    while let Some(r) = inflight.next().await {
        let (stamp, status, at) = r??;
        if !status.is_success() {
            bail!("write failed: {status}");
        }
        acked.insert(stamp, at);
    }
    let write_time = start.elapsed();
    for w in watchers {
        let _ = w.await;
    }
    let deliveries = deliveries.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    // From the write request to the watcher: includes the write path (decode, validate,
    // fsync) as well as the fan-out.
    let mut end_to_end: Vec<Duration> = deliveries
        .iter()
        .map(|(s, r)| Duration::from_nanos(r.saturating_sub(*s) as u64))
        .collect();
    end_to_end.sort();
    // From the write's acknowledgement to the watcher: the delivery a client waits for after
    // its write returned (0 when watchers had it before the writer did).
    let mut after_ack: Vec<Duration> = deliveries
        .iter()
        .filter_map(|(s, r)| {
            acked
                .get(s)
                .map(|a| Duration::from_nanos(r.saturating_sub(*a) as u64))
        })
        .collect();
    after_ack.sort();
    // Fan-out: how long after the first watcher got an event the others got it. The first
    // delivery follows the commit closely, so this is the commit-to-watcher delay of the
    // watch path itself, without the write path before it.
    let mut first: std::collections::HashMap<u128, u128> = std::collections::HashMap::new();
    for (s, r) in &deliveries {
        let e = first.entry(*s).or_insert(*r);
        *e = (*e).min(*r);
    }
    let mut fan_out: Vec<Duration> = deliveries
        .iter()
        .map(|(s, r)| Duration::from_nanos(r.saturating_sub(first[s]) as u64))
        .collect();
    fan_out.sort();
    let mut writes: Vec<Duration> = acked
        .iter()
        .map(|(s, a)| Duration::from_nanos(a.saturating_sub(*s) as u64))
        .collect();
    writes.sort();
    println!(
        "watch:        {} watchers, {} writes in {:.2}s ({:.0}/s), {} deliveries",
        args.watchers,
        expected,
        write_time.as_secs_f64(),
        expected as f64 / write_time.as_secs_f64(),
        deliveries.len(),
    );
    println!(
        "  write acknowledged:      p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&writes, 0.5)),
        ms(percentile(&writes, 0.99))
    );
    println!(
        "  fan-out to all watchers: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&fan_out, 0.5)),
        ms(percentile(&fan_out, 0.99)),
        ms(fan_out.last().copied().unwrap_or_default())
    );
    println!(
        "  delivery after the ack:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&after_ack, 0.5)),
        ms(percentile(&after_ack, 0.99)),
        ms(after_ack.last().copied().unwrap_or_default())
    );
    println!(
        "  write sent to delivered: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&end_to_end, 0.5)),
        ms(percentile(&end_to_end, 0.99)),
        ms(end_to_end.last().copied().unwrap_or_default())
    );
    Ok(())
}

//! Measures both store backends; reports, asserts nothing.
//!
//!     cargo run --release -p weft-store --example store-bench [-- --keys N --concurrency N
//!         --watchers N --rate N --seconds N --no-redb --no-etcd]
//!
//! Per backend (redb in a temp dir on the temp dir's disk; etcd started by the test harness):
//! - creates/s of `keys` ~600-byte JSON objects with `concurrency` writers, first into an
//!   empty store, then as many again with those already stored;
//! - latency of listing all of them;
//! - watch delivery latency (write issued → event received) across `watchers` watchers while
//!   updates arrive at ~`rate`/s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use weft_store::testing::EtcdProcess;
use weft_store::{RedbStore, Store};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    keys: usize,
    concurrency: usize,
    watchers: usize,
    rate: usize,
    seconds: u64,
    redb: bool,
    etcd: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        keys: 10_000,
        concurrency: 64,
        watchers: 100,
        rate: 1000,
        seconds: 5,
        redb: true,
        etcd: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, BoxError> {
            Ok(it.next().ok_or(format!("{flag} needs a value"))?.parse()?)
        };
        match flag.as_str() {
            "--keys" => a.keys = value()?,
            "--concurrency" => a.concurrency = value()?.max(1),
            "--watchers" => a.watchers = value()?,
            "--rate" => a.rate = value()?.max(1),
            "--seconds" => a.seconds = value()? as u64,
            "--no-etcd" => a.etcd = false,
            "--no-redb" => a.redb = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// A Service-shaped JSON object of about 600 bytes. `seq` sits at a fixed offset so watchers
/// can read it without parsing.
fn object(name: &str, seq: usize) -> Vec<u8> {
    let mut v = format!(
        r#"{{"seq":{seq:>12},"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}","namespace":"bench","uid":"6f1c2a9e-3b7d-4c1e-9a55-0d6b7f3e2c11","labels":{{"app":"{name}","tier":"backend","team":"networking"}},"annotations":{{"weft.io/note":""#
    );
    while v.len() < 380 {
        v.push('x');
    }
    v.push_str(r#""}},"spec":{"type":"ClusterIP","clusterIP":"10.96.12.34","selector":{"app":"web"},"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080},{"name":"https","protocol":"TCP","port":443,"targetPort":8443}],"sessionAffinity":"None"}}"#);
    v.into_bytes()
}

fn seq_of(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value.get(7..19)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

async fn creates(
    store: &Arc<dyn Store>,
    args: &Args,
    namespace: &'static str,
    offset: usize,
) -> Result<(f64, Vec<Duration>), BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (store, next, keys) = (store.clone(), next.clone(), args.keys);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return Ok::<_, weft_store::StoreError>(lat);
                }
                let name = format!("svc-{:06}", offset + i);
                let t = Instant::now();
                store
                    .create(
                        &format!("/registry/services/{namespace}/{name}"),
                        object(&name, 0),
                    )
                    .await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let rate = args.keys as f64 / start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok((rate, lat))
}

async fn bench(name: &str, store: Arc<dyn Store>, args: &Args) -> Result<(), BoxError> {
    println!("== {name}");
    let (rate, lat) = creates(&store, args, "bench", 0).await?;
    println!(
        "creates (empty store):      {:>8.0}/s  latency p50 {} p99 {}",
        rate,
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    let mut lists = Vec::new();
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (kvs, _) = store.list("/registry/services/bench/").await?;
        lists.push(t.elapsed());
        n = kvs.len();
    }
    lists.sort_unstable();
    println!(
        "list {n} keys:              min {} median {} max {}",
        ms(lists[0]),
        ms(lists[lists.len() / 2]),
        ms(lists[lists.len() - 1])
    );

    let (rate, lat) = creates(&store, args, "bench2", args.keys).await?;
    println!(
        "creates ({} stored):     {:>8.0}/s  latency p50 {} p99 {}",
        args.keys,
        rate,
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );

    // Watch delivery under a steady write rate.
    let total = args.rate * args.seconds as usize;
    let sent: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..total).map(|_| OnceLock::new()).collect());
    let from = store.current_revision().await?;
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let mut w = store.watch("/registry/services/", from).await?;
        let sent = sent.clone();
        watchers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while lat.len() < total {
                match tokio::time::timeout_at(deadline, w.next()).await {
                    Ok(Some(Ok(ev))) => {
                        let now = Instant::now();
                        if let Some(t) = seq_of(&ev.value).and_then(|s| sent.get(s)?.get()) {
                            lat.push(now.duration_since(*t));
                        }
                    }
                    _ => break,
                }
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut writes = Vec::new();
    // Issue the writes in small groups every 10ms: a steady rate that does not depend on
    // how long each write takes.
    let per_tick = (args.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0;
    while seq < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - seq) {
            let name = format!("svc-{:06}", seq % args.keys.max(1));
            let value = object(&name, seq);
            let (store, sent) = (store.clone(), sent.clone());
            let s = seq;
            writes.push(tokio::spawn(async move {
                let t = Instant::now();
                let _ = sent[s].set(t);
                store
                    .update(&format!("/registry/services/bench/{name}"), value, None)
                    .await
                    .map(|_| t.elapsed())
            }));
            seq += 1;
        }
    }
    let mut ack = Vec::new();
    let mut failed = Vec::new();
    for w in writes {
        match w.await? {
            Ok(d) => ack.push(d),
            Err(e) => failed.push(e),
        }
    }
    let elapsed = start.elapsed();
    ack.sort_unstable();
    let mut delivered = Vec::new();
    for w in watchers {
        delivered.extend(w.await?);
    }
    delivered.sort_unstable();
    println!(
        "watch: {} watchers, {} updates in {:.1}s ({:.0}/s), write ack p50 {} p99 {}",
        args.watchers,
        total,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        ms(pct(&ack, 0.5)),
        ms(pct(&ack, 0.99))
    );
    if let Some(e) = failed.first() {
        println!("  {} updates failed, e.g.: {e}", failed.len());
    }
    println!(
        "watch delivery (issued → received): p50 {} p99 {} max {}  ({} of {} events delivered)",
        ms(pct(&delivered, 0.5)),
        ms(pct(&delivered, 0.99)),
        ms(delivered.last().copied().unwrap_or_default()),
        delivered.len(),
        total * args.watchers
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    println!(
        "store-bench: {} keys of {} bytes, {} concurrent writers; {} watchers at ~{} updates/s for {}s",
        args.keys,
        object("svc-000000", 0).len(),
        args.concurrency,
        args.watchers,
        args.rate,
        args.seconds
    );

    if args.redb {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bench.redb");
        let redb = Arc::new(RedbStore::open(&path)?);
        bench("redb", redb.clone(), &args).await?;
        redb.close().await?;
        if let Ok(meta) = std::fs::metadata(&path) {
            println!("redb file: {:.1} MiB", meta.len() as f64 / (1 << 20) as f64);
        }
    }

    if args.etcd {
        match EtcdProcess::start() {
            Some(etcd) => {
                let store = Arc::new(etcd.connect("/weft").await?);
                bench("etcd", store, &args).await?;
            }
            None => println!("== etcd: skipped"),
        }
    }
    Ok(())
}

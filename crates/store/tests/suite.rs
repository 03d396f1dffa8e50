//! One behavioural suite, run against both backends: every `async fn` listed in
//! `backend_tests!` becomes `on_redb::<name>` and `on_etcd::<name>`. The etcd variants start a
//! real etcd (see `weft_store::testing`) and are skipped with a message when it is not
//! installed, unless `CI` is set. Tests specific to one backend follow the suite.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use weft_store::testing::EtcdProcess;
use weft_store::{
    EtcdOptions, EtcdStore, EventType, KeyValue, Op, RedbOptions, RedbStore, Revision, Store,
    StoreError, WatchEvent, WatchStream,
};

/// Generous: the machine running the suite may be busy with other builds.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Backends

/// A store plus whatever must live as long as it (temp dir, etcd process).
struct Backend {
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

fn redb_backend() -> Backend {
    redb_backend_with(RedbOptions::default())
}

fn redb_backend_with(options: RedbOptions) -> Backend {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = RedbStore::open_with(dir.path().join("store.redb"), options).expect("open redb");
    Backend {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

async fn etcd_backend() -> Option<Backend> {
    let etcd = EtcdProcess::start()?;
    let store = etcd.connect("/weft").await.expect("connect to etcd");
    Some(Backend {
        store: Arc::new(store),
        _guard: Box::new(etcd),
    })
}

macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::redb_backend();
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
        mod on_etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::etcd_backend().await else {
                        return;
                    };
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
    };
}

backend_tests!(
    crud_semantics,
    list_is_sorted_and_prefix_isolated,
    txn_is_all_or_nothing,
    txn_is_one_revision,
    invalid_txns,
    watch_replays_history_then_goes_live,
    watch_is_prefix_isolated,
    list_then_watch_has_no_gap_under_concurrent_writes,
    long_replay_while_writes_continue,
    watch_from_compacted_revision_is_gone,
    compact_edge_cases,
    hundred_watchers_each_see_every_event,
    concurrent_writers_get_distinct_revisions_and_correct_conflicts,
    close_ends_watches_and_fails_later_calls,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn json(n: usize) -> Vec<u8> {
    format!(r#"{{"kind":"Service","metadata":{{"name":"svc-{n}"}},"spec":{{"n":{n}}}}}"#)
        .into_bytes()
}

/// The next `n` items of a watch, failing the test on a timeout, an error or the stream's end.
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(ev))) => out.push(ev),
            Ok(Some(Err(e))) => panic!("watch error after {} events: {e}", out.len()),
            Ok(None) => panic!("watch ended after {} of {n} events", out.len()),
            Err(_) => panic!("timed out after {} of {n} events: {out:?}", out.len()),
        }
    }
    out
}

/// Asserts that nothing more arrives for a short while.
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

/// A watch from a compacted revision fails with Gone, either from the call or as the first
/// item (the trait allows both). Returns (requested, compacted).
async fn expect_gone(store: &dyn Store, prefix: &str, after: Revision) -> (Revision, Revision) {
    match store.watch(prefix, after).await {
        Err(StoreError::Gone {
            requested,
            compacted,
        }) => (requested, compacted),
        Err(e) => panic!("watch from {after}: expected Gone, got {e}"),
        Ok(mut stream) => match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Err(StoreError::Gone {
                requested,
                compacted,
            }))) => (requested, compacted),
            other => panic!("watch from {after}: expected Gone, got {other:?}"),
        },
    }
}

fn ev(event_type: EventType, key: &str, value: &[u8], revision: Revision) -> WatchEvent {
    WatchEvent {
        event_type,
        key: key.into(),
        value: value.to_vec(),
        revision,
    }
}

// ---------------------------------------------------------------------------------------------
// The suite

async fn crud_semantics(s: Arc<dyn Store>) {
    let key = "/registry/services/default/web";
    assert_eq!(s.get(key).await.unwrap(), None);
    let start = s.current_revision().await.unwrap();

    let r1 = s.create(key, b"v1".to_vec()).await.unwrap();
    assert!(r1 > start, "create must advance the revision");
    assert_eq!(s.current_revision().await.unwrap(), r1);
    assert_eq!(
        s.get(key).await.unwrap(),
        Some(KeyValue {
            key: key.into(),
            value: b"v1".to_vec(),
            create_revision: r1,
            mod_revision: r1,
        })
    );

    assert_eq!(
        s.create(key, b"again".to_vec()).await,
        Err(StoreError::AlreadyExists { key: key.into() })
    );

    // Unconditional update keeps the create revision.
    let r2 = s.update(key, b"v2".to_vec(), None).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"v2"[..], r1, r2)
    );

    // Compare-and-swap: a stale expected revision conflicts and reports both revisions.
    assert_eq!(
        s.update(key, b"stale".to_vec(), Some(r1)).await,
        Err(StoreError::Conflict {
            key: key.into(),
            expected: r1,
            actual: r2,
        })
    );
    let r3 = s.update(key, b"v3".to_vec(), Some(r2)).await.unwrap();
    assert!(r3 > r2);

    assert_eq!(
        s.delete(key, Some(r2)).await,
        Err(StoreError::Conflict {
            key: key.into(),
            expected: r2,
            actual: r3,
        })
    );
    let r4 = s.delete(key, Some(r3)).await.unwrap();
    assert!(r4 > r3);
    assert_eq!(s.get(key).await.unwrap(), None);

    assert_eq!(
        s.delete(key, None).await,
        Err(StoreError::NotFound { key: key.into() })
    );
    assert_eq!(
        s.update(key, b"x".to_vec(), None).await,
        Err(StoreError::NotFound { key: key.into() })
    );
    // Absent beats a revision mismatch: the object is gone, not modified.
    assert_eq!(
        s.update(key, b"x".to_vec(), Some(r3)).await,
        Err(StoreError::NotFound { key: key.into() })
    );
    // Failed writes do not consume revisions.
    assert_eq!(s.current_revision().await.unwrap(), r4);

    // Re-creating gets a fresh create revision.
    let r5 = s.create(key, b"v5".to_vec()).await.unwrap();
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r5, r5));
    assert!(r5 > r4);
}

async fn list_is_sorted_and_prefix_isolated(s: Arc<dyn Store>) {
    let keys = [
        "/registry/services/default/web",
        "/registry/services/default/api",
        "/registry/services/kube-system/kube-dns",
        "/registry/servicesx/default/impostor",
        "/registry/services", // the prefix minus its slash: not under "/registry/services/"
        "/registry/pods/default/p",
    ];
    for (i, k) in keys.iter().enumerate() {
        s.create(k, json(i)).await.unwrap();
    }
    let current = s.current_revision().await.unwrap();

    let (all, rev) = s.list("/registry/services/").await.unwrap();
    assert_eq!(rev, current, "list reports the revision it was read at");
    let names: Vec<&str> = all.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "/registry/services/default/api",
            "/registry/services/default/web",
            "/registry/services/kube-system/kube-dns",
        ]
    );
    assert_eq!(all[1].value, json(0));

    let (ns, _) = s.list("/registry/services/default/").await.unwrap();
    assert_eq!(ns.len(), 2);
    let (x, _) = s.list("/registry/servicesx/").await.unwrap();
    assert_eq!(x.len(), 1);
    let (none, rev) = s.list("/registry/nothing/").await.unwrap();
    assert!(none.is_empty());
    assert_eq!(rev, current);
    let (everything, _) = s.list("").await.unwrap();
    assert_eq!(everything.len(), keys.len());
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();
    let got: Vec<&str> = everything.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(got, sorted);
}

async fn txn_is_all_or_nothing(s: Arc<dyn Store>) {
    let a = "/registry/services/default/a";
    let b = "/registry/services/default/b";
    let c = "/registry/services/default/c";
    let rb = s.create(b, b"b".to_vec()).await.unwrap();
    let before = s.current_revision().await.unwrap();

    // The second op fails: the first must not be written.
    let r = s
        .txn(vec![
            Op::Create {
                key: a.into(),
                value: b"a".to_vec(),
            },
            Op::Create {
                key: b.into(),
                value: b"b2".to_vec(),
            },
        ])
        .await;
    assert_eq!(r, Err(StoreError::AlreadyExists { key: b.into() }));
    assert_eq!(s.get(a).await.unwrap(), None);

    let r = s
        .txn(vec![
            Op::Create {
                key: c.into(),
                value: b"c".to_vec(),
            },
            Op::Update {
                key: b.into(),
                value: b"b3".to_vec(),
                expected: Some(rb + 1000),
            },
        ])
        .await;
    assert_eq!(
        r,
        Err(StoreError::Conflict {
            key: b.into(),
            expected: rb + 1000,
            actual: rb,
        })
    );
    assert_eq!(s.get(c).await.unwrap(), None);

    let r = s
        .txn(vec![
            Op::Update {
                key: b.into(),
                value: b"b4".to_vec(),
                expected: None,
            },
            Op::Delete {
                key: a.into(),
                expected: None,
            },
        ])
        .await;
    assert_eq!(r, Err(StoreError::NotFound { key: a.into() }));
    assert_eq!(s.get(b).await.unwrap().unwrap().value, b"b".to_vec());
    assert_eq!(s.current_revision().await.unwrap(), before);
}

async fn txn_is_one_revision(s: Arc<dyn Store>) {
    let a = "/registry/services/default/a";
    let b = "/registry/services/default/b";
    let alloc = "/registry/allocations/ip/10.96.0.5";
    let ra = s.create(a, b"a".to_vec()).await.unwrap();
    let mut watch = s.watch("/registry/", ra).await.unwrap();
    let r = s
        .txn(vec![
            Op::Create {
                key: b.into(),
                value: b"b".to_vec(),
            },
            Op::Create {
                key: alloc.into(),
                value: b"b".to_vec(),
            },
            Op::Delete {
                key: a.into(),
                expected: Some(ra),
            },
        ])
        .await
        .unwrap();
    assert_eq!(r, ra + 1, "one transaction, one revision");
    assert_eq!(s.get(b).await.unwrap().unwrap().mod_revision, r);
    assert_eq!(s.get(alloc).await.unwrap().unwrap().create_revision, r);
    let mut events = next_events(&mut watch, 3).await;
    events.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        events,
        [
            ev(EventType::Added, alloc, b"b", r),
            ev(EventType::Deleted, a, b"a", r),
            ev(EventType::Added, b, b"b", r),
        ]
    );
    assert_quiet(&mut watch).await;
}

async fn invalid_txns(s: Arc<dyn Store>) {
    let before = s.current_revision().await.unwrap();
    assert_eq!(
        s.txn(vec![]).await,
        Ok(before),
        "an empty txn writes nothing"
    );
    let dup = s
        .txn(vec![
            Op::Create {
                key: "/k".into(),
                value: vec![],
            },
            Op::Delete {
                key: "/k".into(),
                expected: None,
            },
        ])
        .await;
    assert!(matches!(dup, Err(StoreError::Backend(_))), "{dup:?}");
    assert_eq!(s.current_revision().await.unwrap(), before);
    assert_eq!(s.get("/k").await.unwrap(), None);
}

async fn watch_replays_history_then_goes_live(s: Arc<dyn Store>) {
    let p = "/registry/pods/default/";
    let k1 = "/registry/pods/default/one";
    let k2 = "/registry/pods/default/two";
    let start = s.current_revision().await.unwrap();
    let r1 = s.create(k1, b"1".to_vec()).await.unwrap();
    let r2 = s.create(k2, b"2".to_vec()).await.unwrap();
    let r3 = s.update(k1, b"1b".to_vec(), Some(r1)).await.unwrap();
    let r4 = s.delete(k2, None).await.unwrap();

    let mut w = s.watch(p, start).await.unwrap();
    assert_eq!(
        next_events(&mut w, 4).await,
        [
            ev(EventType::Added, k1, b"1", r1),
            ev(EventType::Added, k2, b"2", r2),
            ev(EventType::Modified, k1, b"1b", r3),
            // Deleted carries the last value.
            ev(EventType::Deleted, k2, b"2", r4),
        ]
    );
    let r5 = s.delete(k1, Some(r3)).await.unwrap();
    let r6 = s.create(k2, b"2again".to_vec()).await.unwrap();
    assert_eq!(
        next_events(&mut w, 2).await,
        [
            ev(EventType::Deleted, k1, b"1b", r5),
            ev(EventType::Added, k2, b"2again", r6),
        ]
    );
    assert_quiet(&mut w).await;

    // From the middle of the history.
    let mut w = s.watch(p, r3).await.unwrap();
    let got = next_events(&mut w, 3).await;
    assert_eq!(
        got.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [r4, r5, r6]
    );
    // From the present: only new events.
    let mut w = s.watch(p, r6).await.unwrap();
    assert_quiet(&mut w).await;
    let r7 = s.update(k2, b"x".to_vec(), None).await.unwrap();
    assert_eq!(
        next_events(&mut w, 1).await,
        [ev(EventType::Modified, k2, b"x", r7)]
    );
}

async fn watch_is_prefix_isolated(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/registry/services/", start).await.unwrap();
    s.create("/registry/servicesx/default/a", b"x".to_vec())
        .await
        .unwrap();
    s.create("/registry/services", b"x".to_vec()).await.unwrap();
    s.create("/registry/pods/default/a", b"x".to_vec())
        .await
        .unwrap();
    let r = s
        .create("/registry/services/default/a", b"mine".to_vec())
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut w, 1).await,
        [ev(
            EventType::Added,
            "/registry/services/default/a",
            b"mine",
            r
        )]
    );
    assert_quiet(&mut w).await;
}

/// The informer pattern under load: list, then watch from the list's revision while writers
/// keep writing. Every acknowledged write under the prefix after the list's revision must
/// arrive exactly once and in order, and list + events must equal a fresh list.
async fn list_then_watch_has_no_gap_under_concurrent_writes(s: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 60;
    let prefix = "/registry/pods/";
    let start = s.current_revision().await.unwrap();
    // (revision, under prefix?) of every acknowledged write.
    let acked: Arc<Mutex<Vec<(Revision, bool)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (s, acked) = (s.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut live: Vec<(String, Revision)> = Vec::new();
            for i in 0..PER_WRITER {
                let (rev, ours) = match i % 5 {
                    // Writes outside the prefix must not show up.
                    4 => {
                        let key = format!("/registry/podsx/w{w}/{i}");
                        (s.create(&key, json(i)).await.unwrap(), false)
                    }
                    3 if !live.is_empty() => {
                        let (key, r) = live.remove(0);
                        (s.delete(&key, Some(r)).await.unwrap(), true)
                    }
                    2 if !live.is_empty() => {
                        let (key, r) = live.pop().unwrap();
                        let rev = s.update(&key, json(i), Some(r)).await.unwrap();
                        live.push((key, rev));
                        (rev, true)
                    }
                    _ => {
                        let key = format!("/registry/pods/w{w}/{i}");
                        let rev = s.create(&key, json(i)).await.unwrap();
                        live.push((key, rev));
                        (rev, true)
                    }
                };
                acked.lock().unwrap().push((rev, ours));
            }
        }));
    }
    // List in the middle of the writes.
    while acked.lock().unwrap().len() < WRITERS * PER_WRITER / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (listed, list_rev) = s.list(prefix).await.unwrap();
    let mut w = s.watch(prefix, list_rev).await.unwrap();
    // And one replaying everything since before the writes, while they go on.
    let mut from_start = s.watch(prefix, start).await.unwrap();
    for t in writers {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let all: HashSet<Revision> = acked.iter().map(|(r, _)| *r).collect();
    assert_eq!(all.len(), acked.len(), "revisions must be distinct");
    let mut expected: Vec<Revision> = acked
        .iter()
        .filter(|(r, ours)| *ours && *r > list_rev)
        .map(|(r, _)| *r)
        .collect();
    expected.sort_unstable();
    assert!(
        !expected.is_empty(),
        "the list should have happened mid-way"
    );
    let events = next_events(&mut w, expected.len()).await;
    let got: Vec<Revision> = events.iter().map(|e| e.revision).collect();
    assert_eq!(
        got, expected,
        "exactly the acknowledged writes after the list, in order"
    );
    assert_quiet(&mut w).await;
    let mut everything: Vec<Revision> = acked
        .iter()
        .filter(|(_, ours)| *ours)
        .map(|(r, _)| *r)
        .collect();
    everything.sort_unstable();
    let replayed = next_events(&mut from_start, everything.len()).await;
    let replayed: Vec<Revision> = replayed.iter().map(|e| e.revision).collect();
    assert_eq!(
        replayed, everything,
        "history then live, no gap, no duplicate"
    );
    assert_quiet(&mut from_start).await;

    // list + events == the state now.
    let mut state: BTreeMap<String, Vec<u8>> =
        listed.into_iter().map(|kv| (kv.key, kv.value)).collect();
    for e in events {
        assert!(e.key.starts_with(prefix));
        match e.event_type {
            EventType::Added => assert!(state.insert(e.key, e.value).is_none()),
            EventType::Modified => assert!(state.insert(e.key, e.value).is_some()),
            EventType::Deleted => assert_eq!(state.remove(&e.key), Some(e.value)),
        }
    }
    let (now, _) = s.list(prefix).await.unwrap();
    let now: BTreeMap<String, Vec<u8>> = now.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(state, now);
}

/// A watcher replaying a long history (longer than one read or one etcd response) while new
/// writes keep arriving live must stitch the two together without a gap or a duplicate.
async fn long_replay_while_writes_continue(s: Arc<dyn Store>) {
    let prefix = "/registry/pods/";
    let start = s.current_revision().await.unwrap();
    // Another watcher first, so live delivery is already running when the replay starts.
    let _other = s.watch("/registry/nodes/", start).await.unwrap();
    let acked: Arc<Mutex<Vec<Revision>>> = Arc::default();
    let history = futures::future::join_all((0..16).map(|t| {
        let (s, acked) = (s.clone(), acked.clone());
        async move {
            for i in 0..150 {
                let rev = s
                    .create(&format!("/registry/pods/h{t}/{i}"), json(i))
                    .await
                    .unwrap();
                acked.lock().unwrap().push(rev);
            }
        }
    }));
    history.await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live: Vec<_> = (0..4)
        .map(|t| {
            let (s, acked, stop) = (s.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rev = s
                        .create(&format!("/registry/pods/l{t}/{i}"), json(i))
                        .await
                        .unwrap();
                    acked.lock().unwrap().push(rev);
                    i += 1;
                }
            })
        })
        .collect();
    // Live writes are flowing; now replay 2,400 events of history.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut w = s.watch(prefix, start).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in live {
        t.await.unwrap();
    }
    let mut expected = acked.lock().unwrap().clone();
    expected.sort_unstable();
    let got = next_events(&mut w, expected.len()).await;
    let got: Vec<Revision> = got.iter().map(|e| e.revision).collect();
    if got != expected {
        let missing: Vec<_> = expected
            .iter()
            .filter(|r| !got.contains(r))
            .take(10)
            .collect();
        panic!(
            "replay+live differs from the acknowledged writes: {} events, {} expected, first \
             missing {missing:?}",
            got.len(),
            expected.len()
        );
    }
    assert_quiet(&mut w).await;
}

async fn watch_from_compacted_revision_is_gone(s: Arc<dyn Store>) {
    let p = "/registry/services/";
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(
            s.create(&format!("/registry/services/default/s{i}"), json(i))
                .await
                .unwrap(),
        );
    }
    let compact_at = revs[4];
    // Leave a newer revision so both backends drop exactly "at or below compact_at".
    s.compact(compact_at).await.unwrap();

    let (requested, compacted) = expect_gone(&*s, p, revs[1]).await;
    assert_eq!(requested, revs[1]);
    assert_eq!(compacted, compact_at);
    expect_gone(&*s, p, compact_at - 1).await;

    // From the compaction point on, history is complete.
    let mut w = s.watch(p, compact_at).await.unwrap();
    let got = next_events(&mut w, 5).await;
    assert_eq!(
        got.iter().map(|e| e.revision).collect::<Vec<_>>(),
        revs[5..].to_vec()
    );
    // The objects themselves are untouched by compaction.
    let (listed, _) = s.list(p).await.unwrap();
    assert_eq!(listed.len(), 10);
}

async fn compact_edge_cases(s: Arc<dyn Store>) {
    let r1 = s.create("/a", b"1".to_vec()).await.unwrap();
    let r2 = s.create("/b", b"2".to_vec()).await.unwrap();
    assert!(
        s.compact(r2 + 100).await.is_err(),
        "a future revision cannot be compacted"
    );
    s.compact(r1).await.unwrap();
    s.compact(r1).await.unwrap(); // again: no-op
    s.compact(r1 - 1).await.unwrap(); // below: no-op
    s.create("/c", b"3".to_vec()).await.unwrap();
    assert_eq!(s.get("/a").await.unwrap().unwrap().mod_revision, r1);
}

async fn hundred_watchers_each_see_every_event(s: Arc<dyn Store>) {
    const WATCHERS: usize = 100;
    const WRITES: usize = 50;
    let p = "/registry/endpoints/";
    let start = s.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..WATCHERS {
        watches.push(s.watch(p, start).await.unwrap());
    }
    let mut revs = Vec::new();
    for i in 0..WRITES {
        let key = format!("/registry/endpoints/default/e{}", i % 10);
        let rev = if i < 10 {
            s.create(&key, json(i)).await.unwrap()
        } else {
            s.update(&key, json(i), None).await.unwrap()
        };
        revs.push(rev);
    }
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let got = next_events(&mut w, WRITES).await;
                got.iter().map(|e| e.revision).collect::<Vec<_>>()
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.await.unwrap(), revs);
    }
}

/// Many writers at once (for redb: many transactions per group commit). Independent creates
/// all succeed with distinct revisions; racing compare-and-swaps on one key: exactly one wins,
/// the others get a Conflict naming the winner's revision.
async fn concurrent_writers_get_distinct_revisions_and_correct_conflicts(s: Arc<dyn Store>) {
    const TASKS: usize = 32;
    let before = s.current_revision().await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..10 {
                revs.push(
                    s.create(&format!("/registry/pods/t{t}/{i}"), json(i))
                        .await
                        .unwrap(),
                );
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let revs = t.await.unwrap();
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "one writer's revisions increase"
        );
        all.extend(revs);
    }
    let distinct: HashSet<Revision> = all.iter().copied().collect();
    assert_eq!(distinct.len(), TASKS * 10);
    assert_eq!(
        s.current_revision().await.unwrap(),
        before + (TASKS * 10) as Revision,
        "no revision skipped or reused"
    );

    let key = "/registry/services/default/contested";
    let base = s.create(key, b"0".to_vec()).await.unwrap();
    let results = futures::future::join_all((0..TASKS).map(|t| {
        let s = s.clone();
        async move { s.update(key, json(t), Some(base)).await }
    }))
    .await;
    let winners: Vec<Revision> = results.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one CAS wins: {results:?}");
    for r in &results {
        match r {
            Ok(_) => {}
            Err(StoreError::Conflict {
                key: k,
                expected,
                actual,
            }) => {
                assert_eq!((k.as_str(), *expected, *actual), (key, base, winners[0]));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(s.get(key).await.unwrap().unwrap().mod_revision, winners[0]);
}

async fn close_ends_watches_and_fails_later_calls(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut live = s.watch("/a/", start).await.unwrap();
    let r = s.create("/a/1", b"1".to_vec()).await.unwrap();
    assert_eq!(next_events(&mut live, 1).await[0].revision, r);
    // One still catching up (no event delivered yet) must end too.
    let fresh = s.watch("/b/", r).await.unwrap();
    s.close().await.unwrap();
    for w in [live, fresh] {
        let rest = tokio::time::timeout(WAIT, w.collect::<Vec<_>>())
            .await
            .expect("watch streams end when the store closes");
        assert!(rest.is_empty(), "{rest:?}");
    }
    assert!(matches!(
        s.create("/a/2", vec![]).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(s.get("/a/1").await, Err(StoreError::Backend(_))));
    assert!(matches!(s.list("/a/").await, Err(StoreError::Backend(_))));
    assert!(matches!(
        s.watch("/a/", r).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        s.current_revision().await,
        Err(StoreError::Backend(_))
    ));
    s.close().await.unwrap(); // twice is fine
}

// ---------------------------------------------------------------------------------------------
// redb only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_survives_reopen_and_continues_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path).unwrap();
    let r1 = store.create("/a", b"1".to_vec()).await.unwrap();
    let r2 = store.create("/b", b"2".to_vec()).await.unwrap();
    let r3 = store.delete("/a", None).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.create("/c", vec![]).await,
        Err(StoreError::Backend(_))
    ));
    drop(store);

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), r3);
    assert_eq!(store.get("/a").await.unwrap(), None);
    let b = store.get("/b").await.unwrap().unwrap();
    assert_eq!((b.value.as_slice(), b.mod_revision), (&b"2"[..], r2));
    // History survives too.
    let mut w = store.watch("", 0).await.unwrap();
    assert_eq!(
        next_events(&mut w, 3).await,
        [
            ev(EventType::Added, "/a", b"1", r1),
            ev(EventType::Added, "/b", b"2", r2),
            ev(EventType::Deleted, "/a", b"1", r3),
        ]
    );
    assert_eq!(store.create("/c", vec![]).await.unwrap(), r3 + 1);
    // The stream ends when the store closes.
    store.close().await.unwrap();
    let rest = tokio::time::timeout(WAIT, w.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "the live event, then the end: {rest:?}");
}

/// A watcher that is not polled while 800 writes happen falls far behind the in-memory
/// buffer of live events (set to one batch by the caller); it must still get every event, in
/// order, once it reads again.
async fn lagging_watcher_recovers(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/k/", start).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                s.create(&format!("/k/{t}/{i}"), json(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = s.current_revision().await.unwrap();
    let got = next_events(&mut w, 800).await;
    let revs: Vec<Revision> = got.iter().map(|e| e.revision).collect();
    assert_eq!(revs, (start + 1..=end).collect::<Vec<_>>());
    assert_quiet(&mut w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_lagging_watcher_recovers_from_the_log() {
    let b = redb_backend_with(RedbOptions {
        watch_buffer: 1,
        ..RedbOptions::default()
    });
    lagging_watcher_recovers(b.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lagging_watcher_recovers_through_etcd() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let options = EtcdOptions {
        watch_buffer: 1,
        ..EtcdOptions::default()
    };
    let s = EtcdStore::connect_with(&etcd.endpoints(), "/weft", options)
        .await
        .unwrap();
    lagging_watcher_recovers(Arc::new(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_lagging_watcher_gets_gone_when_its_history_was_compacted() {
    let b = redb_backend_with(RedbOptions {
        watch_buffer: 1,
        history_limit: 10,
    });
    let s = b.store.clone();
    let mut w = s.watch("/k/", 0).await.unwrap();
    for i in 0..1000 {
        s.create(&format!("/k/{i}"), json(i)).await.unwrap();
    }
    // Whatever was buffered arrives in order without gaps, then Gone.
    let mut expect = 1;
    loop {
        match tokio::time::timeout(WAIT, w.next()).await {
            Ok(Some(Ok(e))) => {
                assert_eq!(e.revision, expect);
                expect += 1;
            }
            Ok(Some(Err(StoreError::Gone { requested, .. }))) => {
                assert_eq!(requested, expect - 1);
                break;
            }
            other => panic!("expected events then Gone, got {other:?}"),
        }
    }
    assert!(expect < 1000, "the watcher cannot have seen everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_automatic_compaction_keeps_history_limit() {
    let b = redb_backend_with(RedbOptions {
        history_limit: 50,
        ..RedbOptions::default()
    });
    let s = b.store.clone();
    for i in 0..200 {
        s.create(&format!("/k/{i}"), json(i)).await.unwrap();
    }
    let mut w = s.watch("/k/", 150).await.unwrap();
    assert_eq!(next_events(&mut w, 50).await[0].revision, 151);
    let (_, compacted) = expect_gone(&*s, "/k/", 100).await;
    assert_eq!(compacted, 150);
}

/// Child side of `redb_acknowledged_writes_survive_sigkill`: writes until killed, printing
/// each acknowledged write. Does nothing when run as a normal test.
#[test]
fn redb_crash_child() {
    let Some(path) = std::env::var_os("WEFT_STORE_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Arc::new(RedbStore::open(path).unwrap());
        let mut tasks = Vec::new();
        for t in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded, in case the parent dies without killing us.
                for i in 0..10_000 {
                    let key = format!("/crash/{t}/{i}");
                    let rev = store.create(&key, json(i)).await.unwrap();
                    println!("ACK {key} {rev}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_acknowledged_writes_survive_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "redb_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WEFT_STORE_CRASH_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("ACK "))
        .count()
        < 500
    {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => lines.push(l),
            Err(_) if std::time::Instant::now() < deadline => {}
            Err(_) => {
                let _ = child.kill();
                panic!("child acknowledged too few writes: {lines:?}");
            }
        }
    }
    // SIGKILL in the middle of the writes.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    // Acks already in the pipe when the child died were acknowledged too.
    lines.extend(rx.try_iter());
    let acked: Vec<(String, Revision)> = lines
        .iter()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("ACK ")?.split(' ');
            Some((parts.next()?.to_owned(), parts.next()?.parse().ok()?))
        })
        .collect();
    assert!(acked.len() >= 500);

    let store = RedbStore::open(&path).unwrap();
    let current = store.current_revision().await.unwrap();
    for (key, rev) in &acked {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} at {rev} lost"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert!(*rev <= current);
    }
    // The history is contiguous up to the recovered revision, and revisions continue.
    let (listed, list_rev) = store.list("/crash/").await.unwrap();
    assert_eq!(list_rev, current);
    assert_eq!(listed.len() as Revision, current, "one create per revision");
    let mut w = store.watch("/crash/", 0).await.unwrap();
    let events = next_events(&mut w, current as usize).await;
    assert!(events.iter().zip(1..).all(|(e, r)| e.revision == r));
    assert_eq!(store.create("/after", vec![]).await.unwrap(), current + 1);
}

// ---------------------------------------------------------------------------------------------
// etcd only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_keys_live_under_the_prefix() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let a = etcd.connect("/weft").await.unwrap();
    let b = etcd.connect("/other").await.unwrap();
    let r = a.create("/registry/x", b"a".to_vec()).await.unwrap();
    assert_eq!(b.get("/registry/x").await.unwrap(), None);
    let (listed, _) = a.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "/registry/x");
    let mut w = b.watch("", r - 1).await.unwrap();
    b.create("/registry/y", b"b".to_vec()).await.unwrap();
    let got = next_events(&mut w, 1).await;
    assert_eq!(got[0].key, "/registry/y", "b's watch does not see a's keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unreachable_is_a_backend_error() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let r = EtcdStore::connect(&["http://127.0.0.1:1".to_owned()], "/weft").await;
    assert!(matches!(r, Err(StoreError::Backend(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paged_list_is_one_snapshot() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let s = etcd.connect("/weft").await.unwrap();
    // More than one page (1000 keys per page).
    let ops: Vec<Op> = (0..100)
        .map(|i| Op::Create {
            key: format!("/p/{i:05}"),
            value: vec![b'x'; 10],
        })
        .collect();
    for i in 0..25 {
        let batch = ops
            .iter()
            .map(|op| match op {
                Op::Create { key, value } => Op::Create {
                    key: format!("{key}-{i}"),
                    value: value.clone(),
                },
                _ => unreachable!(),
            })
            .collect();
        s.txn(batch).await.unwrap();
    }
    let (listed, rev) = s.list("/p/").await.unwrap();
    assert_eq!(listed.len(), 2500);
    assert_eq!(rev, s.current_revision().await.unwrap());
    assert!(listed.windows(2).all(|w| w[0].key < w[1].key));
}

/// Watchers that follow the shared etcd watch ride out an etcd restart: the shared watch
/// resumes from the last revision it saw, so nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_survives_etcd_restart() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    let s = etcd.connect("/weft").await.unwrap();
    let start = s.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..3 {
        watches.push(s.watch("/registry/", start).await.unwrap());
    }
    let r1 = s.create("/registry/a", b"1".to_vec()).await.unwrap();
    for w in &mut watches {
        assert_eq!(next_events(w, 1).await[0].revision, r1);
    }
    // Let the watchers move from their own etcd watch to the shared one (they do once both
    // have delivered r1).
    tokio::time::sleep(Duration::from_secs(1)).await;

    tokio::task::block_in_place(|| etcd.restart());
    // The client reconnects on demand; the first requests may still see the old connection.
    let mut revs = Vec::new();
    for i in 0..3 {
        let key = format!("/registry/after-{i}");
        let mut attempt = 0;
        let rev = loop {
            match s.create(&key, b"x".to_vec()).await {
                Ok(r) => break r,
                Err(StoreError::Backend(e)) if attempt < 50 => {
                    attempt += 1;
                    eprintln!("retrying create after restart: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create after restart: {e}"),
            }
        };
        revs.push(rev);
    }
    for w in &mut watches {
        let got = next_events(w, 3).await;
        assert_eq!(got.iter().map(|e| e.revision).collect::<Vec<_>>(), revs);
        assert_quiet(w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_ends_when_the_store_is_dropped() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let s = etcd.connect("/weft").await.unwrap();
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/", start).await.unwrap();
    s.create("/a", b"1".to_vec()).await.unwrap();
    next_events(&mut w, 1).await;
    drop(s);
    let rest = tokio::time::timeout(WAIT, w.collect::<Vec<_>>())
        .await
        .expect("the stream must end once the store is gone");
    assert!(rest.is_empty(), "{rest:?}");
}

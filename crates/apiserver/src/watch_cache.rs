//! The watch cache: one store watch per resource, shared by every client watching it, as the
//! Kubernetes API server's cacher does. Each change is stamped with its resourceVersion once
//! and fanned out as shared bytes, and the last events are kept in a ring so a watch that
//! starts a little behind (a list, then a watch from its revision) is served from memory.
//! A watch from before the ring, or a watcher too slow for the live fan-out, reads from the
//! store's own history instead, so no one ever misses an event.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use weft_store::{EventType, Revision, Store};

use crate::error::{ApiError, ApiResult};
use crate::registry::stamp_stored;

/// One change, stamped once and shared by every watcher.
#[derive(Debug)]
pub struct CachedEvent {
    pub event_type: EventType,
    pub revision: Revision,
    pub key: String,
    /// The object's JSON with its resourceVersion.
    pub json: Bytes,
}

impl CachedEvent {
    pub fn decode(&self) -> ApiResult<serde_json::Value> {
        serde_json::from_slice(&self.json)
            .map_err(|e| ApiError::Internal(format!("stored object {} is corrupt: {e}", self.key)))
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = ApiResult<Arc<CachedEvent>>> + Send>>;

const LIVE_BUFFER: usize = 4096;

struct Ring {
    events: VecDeque<Arc<CachedEvent>>,
    /// Every event with a revision above this is in `events` (or still to come live).
    covered_after: Revision,
    /// The hub's store watch ended; new watchers must not join it.
    closed: bool,
}

struct Hub {
    ring: Mutex<Ring>,
    /// Dropped when the source ends, which ends every follower's receiver.
    live: Mutex<Option<broadcast::Sender<Arc<CachedEvent>>>>,
}

pub struct WatchCache {
    store: Arc<dyn Store>,
    capacity: usize,
    live_buffer: usize,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn stamp(event: weft_store::WatchEvent) -> ApiResult<Arc<CachedEvent>> {
    let json = stamp_stored(&event.value, event.revision)
        .map_err(|e| ApiError::Internal(format!("stored object {} is corrupt: {e}", event.key)))?;
    Ok(Arc::new(CachedEvent {
        event_type: event.event_type,
        revision: event.revision,
        key: event.key,
        json: Bytes::from(json),
    }))
}

impl WatchCache {
    /// `capacity`: events kept per resource for watchers that start behind.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        Self::with_live_buffer(store, capacity, LIVE_BUFFER)
    }

    /// As `new`, with the live fan-out buffer (events a watcher may fall behind by before it
    /// continues from the store) set explicitly.
    pub fn with_live_buffer(store: Arc<dyn Store>, capacity: usize, live_buffer: usize) -> Self {
        WatchCache {
            store,
            capacity: capacity.max(1),
            live_buffer: live_buffer.max(1),
            hubs: Mutex::new(HashMap::new()),
        }
    }

    /// The hub for a resource root, started on first use from the store's current revision.
    async fn hub(&self, root: &str) -> ApiResult<Arc<Hub>> {
        if let Some(hub) = lock(&self.hubs).get(root).filter(|h| !lock(&h.ring).closed) {
            return Ok(hub.clone());
        }
        let start = self.store.current_revision().await?;
        let mut source = self.store.watch(root, start).await?;
        let (live, _) = broadcast::channel(self.live_buffer);
        let hub = Arc::new(Hub {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                covered_after: start,
                closed: false,
            }),
            live: Mutex::new(Some(live)),
        });
        {
            let mut hubs = lock(&self.hubs);
            if let Some(existing) = hubs.get(root).filter(|h| !lock(&h.ring).closed) {
                // Lost a race to another first watcher: use theirs.
                return Ok(existing.clone());
            }
            hubs.insert(root.to_string(), hub.clone());
        }
        let feeding = hub.clone();
        let capacity = self.capacity;
        tokio::spawn(async move {
            while let Some(next) = source.next().await {
                let event = match next.map_err(ApiError::from).and_then(stamp) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "watch cache source failed; watchers will restart");
                        break;
                    }
                };
                let mut ring = lock(&feeding.ring);
                if ring.events.len() >= capacity {
                    if let Some(old) = ring.events.pop_front() {
                        ring.covered_after = old.revision;
                    }
                }
                ring.events.push_back(event.clone());
                // Sent under the ring lock: a joining watcher sees each event exactly once,
                // either in the ring copy or on its receiver.
                if let Some(live) = lock(&feeding.live).as_ref() {
                    let _ = live.send(event);
                }
            }
            lock(&feeding.ring).closed = true;
            lock(&feeding.live).take();
        });
        Ok(hub)
    }

    /// Events under `prefix` (inside the resource root `root`) with revision > `after`.
    pub async fn watch(&self, root: &str, prefix: &str, after: Revision) -> ApiResult<EventStream> {
        let hub = self.hub(root).await?;
        let joined = {
            let ring = lock(&hub.ring);
            let receiver = lock(&hub.live).as_ref().map(broadcast::Sender::subscribe);
            match receiver {
                Some(receiver) if !ring.closed && after >= ring.covered_after => {
                    let backlog: Vec<Arc<CachedEvent>> = ring
                        .events
                        .iter()
                        .filter(|e| e.revision > after)
                        .cloned()
                        .collect();
                    Some((backlog, receiver))
                }
                _ => None,
            }
        };
        let Some((backlog, receiver)) = joined else {
            return self.store_history(prefix, after).await;
        };
        let store = self.store.clone();
        let prefix = prefix.to_string();
        let state = Following {
            backlog: backlog.into(),
            receiver,
            last: after,
            store,
            prefix,
            fallback: None,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut s| async move { s.next().await.map(|item| (item, s)) },
        )))
    }

    async fn store_history(&self, prefix: &str, after: Revision) -> ApiResult<EventStream> {
        let stream = self.store.watch(prefix, after).await?;
        Ok(Box::pin(
            stream.map(|e| e.map_err(ApiError::from).and_then(stamp)),
        ))
    }
}

/// A watcher following a hub: its backlog from the ring, then live events; if it falls
/// behind the live buffer it continues from the store's history at its last revision.
struct Following {
    backlog: VecDeque<Arc<CachedEvent>>,
    receiver: broadcast::Receiver<Arc<CachedEvent>>,
    last: Revision,
    store: Arc<dyn Store>,
    prefix: String,
    fallback: Option<weft_store::WatchStream>,
}

impl Following {
    async fn next(&mut self) -> Option<ApiResult<Arc<CachedEvent>>> {
        loop {
            if let Some(stream) = &mut self.fallback {
                return stream.next().await.map(|e| {
                    let e = stamp(e.map_err(ApiError::from)?)?;
                    self.last = e.revision;
                    Ok(e)
                });
            }
            let event = match self.backlog.pop_front() {
                Some(e) => e,
                None => match self.receiver.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => {
                        match self.store.watch(&self.prefix, self.last).await {
                            Ok(stream) => self.fallback = Some(stream),
                            Err(e) => return Some(Err(e.into())),
                        }
                        continue;
                    }
                    // The hub's source ended: end the watch; the client watches again.
                    Err(RecvError::Closed) => return None,
                },
            };
            if event.revision <= self.last || !event.key.starts_with(&self.prefix) {
                continue;
            }
            self.last = event.revision;
            return Some(Ok(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_store::RedbStore;

    async fn put(store: &Arc<dyn Store>, key: &str) -> Revision {
        store
            .create(
                key,
                format!(r#"{{"apiVersion":"v1","kind":"X","metadata":{{"name":"{key}"}}}}"#)
                    .into_bytes(),
            )
            .await
            .unwrap()
    }

    async fn take(stream: &mut EventStream, n: usize) -> Vec<(Revision, String)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let e = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
                .await
                .expect("event in time")
                .expect("stream open")
                .expect("no error");
            let v = e.decode().unwrap();
            assert_eq!(v["metadata"]["resourceVersion"], e.revision.to_string());
            out.push((e.revision, e.key.clone()));
        }
        out
    }

    #[tokio::test]
    async fn ring_backlog_then_live_and_store_history_before_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
        let cache = WatchCache::new(store.clone(), 2);
        let r0 = store.current_revision().await.unwrap();
        // Start the hub, then write four events: the ring keeps the last two.
        let mut from_start = cache.watch("/r/", "/r/", r0).await.unwrap();
        let revs = [
            put(&store, "/r/a/1").await,
            put(&store, "/r/b/2").await,
            put(&store, "/r/a/3").await,
            put(&store, "/r/a/4").await,
        ];
        assert_eq!(
            take(&mut from_start, 4)
                .await
                .iter()
                .map(|e| e.0)
                .collect::<Vec<_>>(),
            revs
        );
        // Within the ring: served from memory, namespace-filtered.
        let mut ns_a = cache.watch("/r/", "/r/a/", revs[1]).await.unwrap();
        assert_eq!(
            take(&mut ns_a, 2).await,
            vec![(revs[2], "/r/a/3".into()), (revs[3], "/r/a/4".into())]
        );
        // Before the ring: served from the store's history, same events.
        let mut old = cache.watch("/r/", "/r/", r0).await.unwrap();
        assert_eq!(
            take(&mut old, 4)
                .await
                .iter()
                .map(|e| e.0)
                .collect::<Vec<_>>(),
            revs
        );
        // Live continues for all of them.
        let r5 = put(&store, "/r/a/5").await;
        assert_eq!(take(&mut ns_a, 1).await[0].0, r5);
        assert_eq!(take(&mut old, 1).await[0].0, r5);
    }

    #[tokio::test]
    async fn a_lagging_watcher_continues_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
        let cache = WatchCache::with_live_buffer(store.clone(), 100, 2);
        let r0 = store.current_revision().await.unwrap();
        let mut slow = cache.watch("/r/", "/r/", r0).await.unwrap();
        let mut revs = Vec::new();
        for i in 0..20 {
            revs.push(put(&store, &format!("/r/x/{i}")).await);
        }
        // The watcher read nothing while 20 events went by a buffer of 2: it still gets all.
        let got: Vec<Revision> = take(&mut slow, 20).await.iter().map(|e| e.0).collect();
        assert_eq!(got, revs);
    }
}

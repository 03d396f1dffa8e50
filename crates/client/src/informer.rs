//! The informer: a local cache of one kind, kept current by list + watch (kube-rs'
//! watcher → reflector pattern).
//!
//! It lists, then watches from the list's resourceVersion. When a watch ends it resumes
//! from the last resourceVersion seen (events and BOOKMARKs advance it). When the server
//! says that version is gone (410), it lists again and emits the difference between its
//! cache and the new list — objects that vanished meanwhile become `Deleted` events — so
//! consumers never miss a change, even across a compaction. After every (re)list it emits
//! `Synced`: from then on the cache is a complete view, which is when a reconcile loop may
//! safely delete what the cache does not hold.
//!
//! The cache is updated before an event is sent, so a consumer reading the snapshot when
//! it receives an event sees at least that event's state.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weft_api::{Object, ObjectMeta};

use crate::api::Api;
use crate::client::ListParams;
use crate::error::ClientError;
use crate::watch::WatchEvent;

/// What consumers receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// The cache now reflects a complete list (sent after the first list and after each
    /// relist).
    Synced,
}

/// The cache key: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_key(meta: &ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name),
        _ => meta.name.clone(),
    }
}

fn rv_of<T: Object>(obj: &T) -> Option<&str> {
    obj.meta().resource_version.as_deref()
}

/// Whether `new` is a different state of the object than `old`. Objects without a
/// resourceVersion are always treated as changed.
fn changed<T: Object>(old: &T, new: &T) -> bool {
    match (rv_of(old), rv_of(new)) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// The cache after a relist, and the events that take a consumer from `cache` to it:
/// `Deleted` for objects that vanished, `Added` for new ones, `Modified` for those whose
/// resourceVersion changed, nothing for the rest.
pub fn relist_diff<T: Object>(
    cache: &BTreeMap<String, T>,
    items: Vec<T>,
) -> (BTreeMap<String, T>, Vec<Event<T>>) {
    let fresh: BTreeMap<String, T> = items
        .into_iter()
        .map(|o| (object_key(o.meta()), o))
        .collect();
    let mut events: Vec<Event<T>> = cache
        .iter()
        .filter(|(k, _)| !fresh.contains_key(*k))
        .map(|(_, o)| Event::Deleted(o.clone()))
        .collect();
    for (k, o) in &fresh {
        match cache.get(k) {
            None => events.push(Event::Added(o.clone())),
            Some(old) if changed(old, o) => events.push(Event::Modified(o.clone())),
            Some(_) => {}
        }
    }
    (fresh, events)
}

/// Applies one object event of a watch to the cache; returns the event for consumers, or
/// `None` when it changes nothing (a replayed event after a resume, or the deletion of
/// an object the cache never held). Bookmark and Error events change no object: `None`.
pub fn apply_watch_event<T: Object>(
    cache: &mut BTreeMap<String, T>,
    event: WatchEvent<T>,
) -> Option<Event<T>> {
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            let key = object_key(o.meta());
            let out = match cache.get(&key) {
                None => Event::Added(o.clone()),
                Some(old) if changed(old, &o) => Event::Modified(o.clone()),
                Some(_) => return None,
            };
            cache.insert(key, o);
            Some(out)
        }
        WatchEvent::Deleted(o) => {
            // Only an object the consumer has seen is reported gone; the event carries the
            // final state the server sent rather than the cached one.
            cache.remove(&object_key(o.meta()))?;
            Some(Event::Deleted(o))
        }
        WatchEvent::Bookmark { .. } | WatchEvent::Error(_) => None,
    }
}

/// A read handle on an informer's cache. Cheap to clone.
pub struct Store<T> {
    map: Arc<RwLock<BTreeMap<String, T>>>,
    synced: watch::Receiver<bool>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store {
            map: self.map.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<T: Clone> Store<T> {
    // A panic while holding the lock cannot leave the map half-updated (every write is a
    // single insert/remove/replace), so a poisoned lock is still safe to read.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, T>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the whole cache.
    pub fn snapshot(&self) -> BTreeMap<String, T> {
        self.read().clone()
    }

    /// The object at `key` (`ns/name`, or `name` when cluster-scoped).
    pub fn get(&self, key: &str) -> Option<T> {
        self.read().get(key).cloned()
    }

    pub fn list(&self) -> Vec<T> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Runs `f` on the cache without copying it. Keep `f` short: the informer waits.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<String, T>) -> R) -> R {
        f(&self.read())
    }

    /// Whether the first list has completed.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has completed. Returns at once if the informer is gone
    /// (the cache then holds whatever it last had).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Retry delays: doubling from 500ms to 30s, with up to 25% jitter so many agents do not
/// reconnect to a restarted API server in lockstep.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff { next: Self::MIN }
    }
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
    async fn wait(&mut self) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = self.next.mul_f64(f64::from(nanos % 1000) / 4000.0);
        tokio::time::sleep(self.next + jitter).await;
        self.next = (self.next * 2).min(Self::MAX);
    }
}

/// How a watch ended.
enum WatchEnd {
    /// Resume from the last resourceVersion.
    Resume,
    /// The resourceVersion is gone, or the stream said something the informer cannot
    /// resume from: list again.
    Relist,
    /// The consumer hung up.
    Closed,
}

/// The informer for kind `T`. Build it, take its [`Store`], then `run` (or `spawn`) it.
pub struct Informer<T> {
    api: Api<T>,
    params: ListParams,
    map: Arc<RwLock<BTreeMap<String, T>>>,
    synced_tx: watch::Sender<bool>,
    synced_rx: watch::Receiver<bool>,
}

/// The server is asked to end each watch after this long, and the informer gives up on a
/// watch silent for longer (plus a margin): a connection that died without a FIN would
/// otherwise hang forever. Resuming costs one request, no relist.
const WATCH_TIMEOUT_SECS: u32 = 290;

impl<T: Object> Informer<T> {
    /// An informer over `api` (its namespace, or all namespaces when `None`), filtered by
    /// `params`' label and field selectors.
    pub fn new(api: Api<T>, params: ListParams) -> Self {
        let (synced_tx, synced_rx) = watch::channel(false);
        Informer {
            api,
            params,
            map: Arc::new(RwLock::new(BTreeMap::new())),
            synced_tx,
            synced_rx,
        }
    }

    pub fn store(&self) -> Store<T> {
        Store {
            map: self.map.clone(),
            synced: self.synced_rx.clone(),
        }
    }

    /// Runs the informer in a task; events arrive on the returned channel.
    pub fn spawn(self, capacity: usize) -> (Store<T>, mpsc::Receiver<Event<T>>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let store = self.store();
        let handle = tokio::spawn(self.run(tx));
        (store, rx, handle)
    }

    /// Lists and watches until `tx`'s receiver is dropped. Errors are logged and retried
    /// with backoff, never returned: an informer outlives API server restarts.
    pub async fn run(self, tx: mpsc::Sender<Event<T>>) {
        // Stop as soon as the consumer is gone, even while idle in a quiet watch.
        tokio::select! {
            _ = tx.closed() => {}
            _ = self.run_until_closed(&tx) => {}
        }
    }

    async fn run_until_closed(&self, tx: &mpsc::Sender<Event<T>>) {
        let kind = T::INFO.plural;
        let mut backoff = Backoff::new();
        loop {
            // List, then replace the cache, emitting the difference.
            let list = match self.api.list(&self.params).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(resource = kind, error = %e, "informer list failed; retrying");
                    backoff.wait().await;
                    continue;
                }
            };
            backoff.reset();
            let mut rv = list.resource_version().to_string();
            let events = {
                let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
                let (fresh, events) = relist_diff(&map, list.items);
                *map = fresh;
                events
            };
            self.synced_tx.send_replace(true);
            for ev in events.into_iter().chain([Event::Synced]) {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            tracing::debug!(resource = kind, resource_version = %rv, "informer listed");

            // Watch, resuming from the last resourceVersion until told to relist.
            loop {
                if rv.is_empty() {
                    // Without a version there is nothing to resume from.
                    break;
                }
                match self.watch_once(tx, &mut rv, &mut backoff).await {
                    WatchEnd::Resume => continue,
                    WatchEnd::Relist => break,
                    WatchEnd::Closed => return,
                }
            }
            backoff.wait().await;
        }
    }

    /// One watch request, read to its end.
    async fn watch_once(
        &self,
        tx: &mpsc::Sender<Event<T>>,
        rv: &mut String,
        backoff: &mut Backoff,
    ) -> WatchEnd {
        let kind = T::INFO.plural;
        let mut params = self.params.clone();
        let timeout = *params.timeout_seconds.get_or_insert(WATCH_TIMEOUT_SECS);
        let idle = Duration::from_secs(u64::from(timeout) + 30);
        let mut stream = match self.api.watch(&params, rv).await {
            Ok(s) => s,
            Err(e) if e.is_gone() => return WatchEnd::Relist,
            Err(e) => {
                tracing::warn!(resource = kind, error = %e, "informer watch failed; retrying");
                backoff.wait().await;
                return WatchEnd::Resume;
            }
        };
        loop {
            let item = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(item)) => item,
                // Server closed the stream (its timeout, a restart): resume.
                Ok(None) => return WatchEnd::Resume,
                Err(_) => {
                    tracing::debug!(resource = kind, "watch idle too long; reconnecting");
                    return WatchEnd::Resume;
                }
            };
            let event = match item {
                Ok(WatchEvent::Bookmark { resource_version }) => {
                    *rv = resource_version;
                    continue;
                }
                Ok(WatchEvent::Error(status)) => {
                    let err = ClientError::from_status(&status);
                    if err.is_gone() {
                        tracing::debug!(resource = kind, "resourceVersion {rv} gone; relisting");
                    } else {
                        tracing::warn!(resource = kind, error = %err, "watch error event; relisting");
                    }
                    return WatchEnd::Relist;
                }
                Ok(ev) => ev,
                Err(e @ ClientError::WatchDecode { .. }) => {
                    // A line we cannot read is an event we would miss: relist.
                    tracing::warn!(resource = kind, error = %e, "undecodable watch event; relisting");
                    return WatchEnd::Relist;
                }
                Err(e) => {
                    tracing::debug!(resource = kind, error = %e, "watch stream broke; resuming");
                    return WatchEnd::Resume;
                }
            };
            backoff.reset();
            if let WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) = &event
            {
                if let Some(v) = rv_of(o).filter(|v| !v.is_empty()) {
                    *rv = v.to_string();
                }
            }
            let out = {
                let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
                apply_watch_event(&mut map, event)
            };
            if let Some(ev) = out {
                if tx.send(ev).await.is_err() {
                    return WatchEnd::Closed;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use weft_api::ResourceInfo;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Thing {
        metadata: ObjectMeta,
    }

    impl Object for Thing {
        const INFO: &'static ResourceInfo = &weft_api::resources::SERVICE;
        fn meta(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    }

    fn thing(name: &str, rv: &str) -> Thing {
        Thing {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
        }
    }

    fn cache(items: &[Thing]) -> BTreeMap<String, Thing> {
        items
            .iter()
            .map(|t| (object_key(t.meta()), t.clone()))
            .collect()
    }

    #[test]
    fn keys() {
        assert_eq!(object_key(thing("a", "1").meta()), "default/a");
        let meta = ObjectMeta {
            name: "node1".into(),
            ..Default::default()
        };
        assert_eq!(object_key(&meta), "node1");
    }

    #[test]
    fn relist_emits_the_difference() {
        let old = cache(&[
            thing("gone", "1"),
            thing("same", "2"),
            thing("changed", "3"),
        ]);
        let (fresh, events) = relist_diff(
            &old,
            vec![
                thing("same", "2"),
                thing("changed", "9"),
                thing("new", "10"),
            ],
        );
        assert_eq!(
            events,
            vec![
                Event::Deleted(thing("gone", "1")),
                Event::Modified(thing("changed", "9")),
                Event::Added(thing("new", "10")),
            ]
        );
        assert_eq!(
            fresh.keys().collect::<Vec<_>>(),
            ["default/changed", "default/new", "default/same"]
        );
    }

    #[test]
    fn relist_of_empty_cache_adds_everything() {
        let (_, events) = relist_diff(&BTreeMap::new(), vec![thing("a", "1"), thing("b", "2")]);
        assert_eq!(
            events,
            vec![Event::Added(thing("a", "1")), Event::Added(thing("b", "2"))]
        );
    }

    #[test]
    fn watch_events_update_the_cache() {
        let mut c = cache(&[thing("a", "1")]);
        // A replayed event after a resume changes nothing.
        assert_eq!(
            apply_watch_event(&mut c, WatchEvent::Added(thing("a", "1"))),
            None
        );
        assert_eq!(
            apply_watch_event(&mut c, WatchEvent::Modified(thing("a", "2"))),
            Some(Event::Modified(thing("a", "2")))
        );
        // MODIFIED of an object never seen (e.g. it entered the label selector) is an add.
        assert_eq!(
            apply_watch_event(&mut c, WatchEvent::Modified(thing("b", "3"))),
            Some(Event::Added(thing("b", "3")))
        );
        assert_eq!(
            apply_watch_event(&mut c, WatchEvent::Deleted(thing("a", "4"))),
            Some(Event::Deleted(thing("a", "4")))
        );
        assert_eq!(
            apply_watch_event(&mut c, WatchEvent::Deleted(thing("zz", "5"))),
            None
        );
        assert_eq!(
            apply_watch_event::<Thing>(
                &mut c,
                WatchEvent::Bookmark {
                    resource_version: "6".into()
                }
            ),
            None
        );
        assert_eq!(c.keys().collect::<Vec<_>>(), ["default/b"]);
    }
}

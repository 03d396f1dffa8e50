//! The etcd backend, for clusters that already run etcd or want it replicated.
//!
//! Keys live under a prefix (e.g. `/weft`) and are returned without it. The store revision is
//! the etcd revision, so one etcd transaction is one revision, as in the redb backend.
//!
//! Watches: one etcd watch per `Store::watch` does not scale: etcd serializes every event once
//! per watch, and on a 2-core machine 30 watchers at 1,000 writes/s already saturate it (write
//! latency goes to seconds). So an `EtcdStore` keeps one shared etcd watch over its whole prefix
//! (the hub) and fans its events out in memory, as kube-apiserver's watch cache does. A new
//! watcher first replays history through a private etcd watch from its `after` revision (over
//! the whole prefix, filtered locally), and switches to the hub as soon as the two overlap: once
//! the private watch has delivered the revision just below the first hub batch it holds. A
//! watcher that lags behind the hub goes back to a private watch from where it was, so it is
//! never dropped; `Gone` comes from etcd itself when that history was compacted.
//!
//! Built on `etcd-client` 0.8: every later release generates its gRPC code at build time with
//! `protoc` (0.9 with `cmake`), which would make both a build requirement of the workspace.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, EventType as EtcdEventType,
    GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchResponse, Watcher,
};
use futures::{FutureExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    check_ops, op_failure, EventType, KeyValue, Op, Result, Revision, Store, StoreError,
    WatchEvent, WatchStream,
};

/// Default bound on every unary request, so a dead or partitioned etcd turns into an error
/// instead of a request that hangs forever. Watches are streams and are not bounded.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys per range request when listing: keeps each response far below gRPC message limits
/// while the pages stay one consistent snapshot (all read at the first page's revision).
const LIST_PAGE: i64 = 1000;
/// A failed transaction is re-read to say why; if the re-read finds nothing wrong (the keys
/// changed back in between), the transaction is simply tried again, this many times.
const TXN_ATTEMPTS: usize = 16;
/// Events buffered between a watcher's task and its consumer.
const WATCH_CHANNEL: usize = 256;
/// Longest pause between the hub's attempts to re-establish its etcd watch.
const HUB_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Tuning for [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Bound on every request other than watches.
    pub request_timeout: Duration,
    /// Batches of the shared watch (one per etcd watch response) buffered in memory for
    /// watchers. A watcher further behind does not lose events: it catches up through its own
    /// etcd watch, which costs etcd more.
    pub watch_buffer: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: REQUEST_TIMEOUT,
            watch_buffer: 1024,
        }
    }
}

pub struct EtcdStore {
    conn: Conn,
    watch_buffer: usize,
    hub: Mutex<HubState>,
}

enum HubState {
    /// No watch yet: the hub starts with the first one.
    Idle,
    Running(Hub),
    /// `close` was called: every call fails.
    Closed,
}

/// What every etcd call needs; cheap to clone (the client shares one channel).
#[derive(Clone)]
struct Conn {
    client: Client,
    /// Prepended to every key; stripped from every key returned.
    base: String,
    timeout: Duration,
}

impl Conn {
    /// Runs one unary etcd request with the request timeout.
    async fn call<T>(
        &self,
        context: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        call(context, self.timeout, request).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_count_only();
        // Any key will do, only the header matters; etcd rejects an empty one.
        let key = if self.base.is_empty() {
            vec![0]
        } else {
            self.base.as_bytes().to_vec()
        };
        let resp = self
            .call("read revision", kv.get(key, Some(options)))
            .await?;
        resp.header()
            .map(|h| rev(h.revision()))
            .ok_or_else(|| StoreError::Backend("etcd: response without header".into()))
    }
}

/// The shared etcd watch: its task and the channel it publishes on.
struct Hub {
    tx: broadcast::Sender<HubMsg>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
enum HubMsg {
    /// The events of one etcd watch response: whole revisions, in order, every key under the
    /// store prefix. Consecutive batches leave no gap.
    Events(Arc<[WatchEvent]>),
    /// The hub lost events (its history was compacted while it was disconnected) and
    /// restarted from the present: what follows does not continue what came before.
    Reset,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Ends the shared watch; watchers on it see the channel close and end too.
        if let HubState::Running(hub) = &*lock(&self.hub) {
            hub.task.abort();
        }
    }
}

/// A poisoned lock only means a thread panicked while holding it; the state it guards is
/// replaced whole, so it is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn etcd_err(context: impl std::fmt::Display) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |e| StoreError::Backend(format!("etcd {context}: {e}"))
}

/// Runs one unary etcd request with a timeout.
async fn call<T>(
    context: &str,
    timeout: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(etcd_err(context)),
        Err(_) => Err(StoreError::Backend(format!(
            "etcd {context}: no answer within {timeout:?}"
        ))),
    }
}

/// etcd revisions are i64 and never negative.
fn rev(r: i64) -> Revision {
    Revision::try_from(r).unwrap_or(0)
}

fn etcd_rev(r: Revision) -> i64 {
    // A revision beyond i64 cannot exist in etcd; saturating keeps comparisons meaningful
    // (a compare against it fails, as it should).
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// The end of the key range holding every key that starts with `prefix` (etcd's
/// `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented and
/// the rest dropped; "\0" (everything) when no such byte exists.
fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers. `prefix` is prepended to every key.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        Self::connect_with(endpoints, prefix, EtcdOptions::default()).await
    }

    /// [`EtcdStore::connect`] with options.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        options: EtcdOptions,
    ) -> Result<Self> {
        // HTTP/2 keep-alive notices a dead connection under an idle watch, which otherwise
        // would wait forever for the next event.
        let connect =
            ConnectOptions::new().with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = call(
            &format!("connect to {}", endpoints.join(",")),
            options.request_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await?;
        let store = EtcdStore {
            conn: Conn {
                client,
                base: prefix.to_owned(),
                timeout: options.request_timeout,
            },
            watch_buffer: options.watch_buffer.max(1),
            hub: Mutex::new(HubState::Idle),
        };
        // The channel connects lazily; ask for something so a wrong endpoint fails here.
        store.current_revision().await?;
        Ok(store)
    }

    fn check_open(&self) -> Result<()> {
        match *lock(&self.hub) {
            HubState::Closed => Err(StoreError::Backend("store closed".into())),
            _ => Ok(()),
        }
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.conn.base.len() + key.len());
        full.extend_from_slice(self.conn.base.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: strip_prefix(&self.conn.base, kv.key())?,
            value: kv.value().to_vec(),
            create_revision: rev(kv.create_revision()),
            mod_revision: rev(kv.mod_revision()),
        })
    }

    /// Reads the keys of `ops` in one snapshot and returns the first op's reason to fail, if
    /// any. Used after a failed compare to report which key failed and why.
    async fn diagnose(&self, ops: &[Op]) -> Result<Option<StoreError>> {
        let gets: Vec<TxnOp> = ops
            .iter()
            .map(|op| TxnOp::get(self.full_key(op.key()), None))
            .collect();
        let mut kv = self.conn.client.kv_client();
        let resp = self
            .conn
            .call(
                "read keys of a failed txn",
                kv.txn(Txn::new().and_then(gets)),
            )
            .await?;
        let responses = resp.op_responses();
        if responses.len() != ops.len() {
            return Err(StoreError::Backend(format!(
                "etcd: read of {} keys returned {} results",
                ops.len(),
                responses.len()
            )));
        }
        for (op, response) in ops.iter().zip(responses) {
            let TxnOpResponse::Get(get) = response else {
                return Err(StoreError::Backend(
                    "etcd: unexpected txn response to a get".into(),
                ));
            };
            let current = get.kvs().first().map(|kv| rev(kv.mod_revision()));
            if let Some(e) = op_failure(op, current) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }
}

fn strip_prefix(prefix: &str, key: &[u8]) -> Result<String> {
    let key = std::str::from_utf8(key)
        .map_err(|_| StoreError::Backend("etcd: key is not UTF-8".into()))?;
    key.strip_prefix(prefix)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Backend(format!("etcd: key {key} is outside prefix {prefix}")))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.check_open()?;
        let mut kv = self.conn.client.kv_client();
        let resp = self
            .conn
            .call("get", kv.get(self.full_key(key), None))
            .await?;
        resp.kvs().first().map(|k| self.kv(k)).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        self.check_open()?;
        let full = self.full_key(prefix);
        let end = prefix_range_end(&full);
        // etcd rejects an empty key; "\0" is the smallest non-empty one.
        let mut start = if full.is_empty() { vec![0] } else { full };
        let mut kv = self.conn.client.kv_client();
        let mut out = Vec::new();
        // 0 until the first page answers; later pages read at that revision, so the pages
        // form one snapshot and the returned revision is the one it was read at.
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = self
                .conn
                .call("list", kv.get(start.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for k in resp.kvs() {
                out.push(self.kv(k)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    // Continue just after the last key of this page.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok((out, rev(revision)))
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision> {
        self.check_open()?;
        check_ops(&ops)?;
        if ops.is_empty() {
            return self.current_revision().await;
        }
        let mut compares = Vec::new();
        let mut writes = Vec::new();
        for op in &ops {
            let key = self.full_key(op.key());
            match op {
                Op::Create { value, .. } => {
                    // create_revision is 0 exactly when the key does not exist.
                    compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                    writes.push(TxnOp::put(key, value.clone(), None));
                }
                Op::Update {
                    value, expected, ..
                } => {
                    compares.push(Compare::version(key.clone(), CompareOp::Greater, 0));
                    if let Some(e) = expected {
                        compares.push(Compare::mod_revision(
                            key.clone(),
                            CompareOp::Equal,
                            etcd_rev(*e),
                        ));
                    }
                    writes.push(TxnOp::put(key, value.clone(), None));
                }
                Op::Delete { expected, .. } => {
                    compares.push(Compare::version(key.clone(), CompareOp::Greater, 0));
                    if let Some(e) = expected {
                        compares.push(Compare::mod_revision(
                            key.clone(),
                            CompareOp::Equal,
                            etcd_rev(*e),
                        ));
                    }
                    writes.push(TxnOp::delete(key, None));
                }
            }
        }
        let mut kv = self.conn.client.kv_client();
        for _ in 0..TXN_ATTEMPTS {
            let txn = Txn::new().when(compares.clone()).and_then(writes.clone());
            let resp = self.conn.call("txn", kv.txn(txn)).await?;
            if resp.succeeded() {
                return resp.header().map(|h| rev(h.revision())).ok_or_else(|| {
                    StoreError::Backend("etcd: txn response without header".into())
                });
            }
            if let Some(e) = self.diagnose(&ops).await? {
                return Err(e);
            }
            // The keys changed between the failed compare and the re-read, back into a state
            // where the ops apply: try again.
        }
        Err(StoreError::Backend(format!(
            "etcd: txn compares failed {TXN_ATTEMPTS} times but the keys looked fine each time"
        )))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Subscribe before anything else: the hub batches received from now on are the ones
        // the watcher may switch to.
        let hub_rx = {
            let mut state = lock(&self.hub);
            if let HubState::Idle = *state {
                let (tx, _) = broadcast::channel(self.watch_buffer);
                let task = tokio::spawn(run_hub(self.conn.clone(), tx.clone()));
                *state = HubState::Running(Hub { tx, task });
            }
            match &*state {
                HubState::Running(hub) => hub.tx.subscribe(),
                _ => return Err(StoreError::Backend("store closed".into())),
            }
        };
        // Opened here rather than in the task so that an unreachable etcd fails this call.
        let private = PrivateWatch::open(&self.conn, after).await?;
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL);
        let watcher = Watch {
            conn: self.conn.clone(),
            prefix: prefix.to_owned(),
            last: after,
            out: tx,
        };
        tokio::spawn(watcher.run(private, hub_rx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.check_open()?;
        self.conn.current_revision().await
    }

    /// Stops the shared watch (so every watch stream ends) and fails later calls. The etcd
    /// data is untouched, and writes already answered were committed by etcd.
    async fn close(&self) -> Result<()> {
        let previous = std::mem::replace(&mut *lock(&self.hub), HubState::Closed);
        if let HubState::Running(hub) = previous {
            hub.task.abort();
            // Dropping the last sender tells every watcher that the store is gone.
            drop(hub.tx);
        }
        Ok(())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.check_open()?;
        if revision == 0 {
            return Ok(());
        }
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::Backend(format!(
                "cannot compact revision {revision}: the latest revision is {current}"
            )));
        }
        // etcd's compact(r) keeps the events of r itself; ours drops them too, hence r + 1.
        // etcd refuses to compact past its current revision, so compacting exactly the current
        // revision keeps its events (a watch from one below it still works).
        let target = if revision < current {
            revision + 1
        } else {
            revision
        };
        let mut kv = self.conn.client.kv_client();
        // Physical: return once the history is really gone, so a watch started afterwards
        // reliably gets Gone.
        let options = CompactionOptions::new().with_physical();
        match tokio::time::timeout(
            self.conn.timeout,
            kv.compact(etcd_rev(target), Some(options)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            // Already compacted at or past the target: nothing left to do.
            Ok(Err(e))
                if e.to_string()
                    .contains("required revision has been compacted") =>
            {
                Ok(())
            }
            Ok(Err(e)) => Err(etcd_err("compact")(e)),
            Err(_) => Err(StoreError::Backend(format!(
                "etcd compact: no answer within {:?}",
                self.conn.timeout
            ))),
        }
    }
}

/// One etcd watch over the whole store prefix, from a given revision, with previous values
/// (the value a `Deleted` event carries).
struct PrivateWatch {
    /// Kept alive for as long as the stream: dropping it closes the request side.
    _watcher: Watcher,
    stream: etcd_client::WatchStream,
    base: String,
}

impl PrivateWatch {
    async fn open(conn: &Conn, after: Revision) -> Result<Self> {
        let start = after
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("watch revision out of range".into()))?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(etcd_rev(start))
            .with_prev_key();
        let mut client = conn.client.watch_client();
        // etcd-client 0.8 asserts that the first response is a creation response; a server
        // answering otherwise must be an error here, not a panic of the caller's task.
        let (watcher, stream) = AssertUnwindSafe(conn.call(
            "watch",
            client.watch(conn.base.as_bytes().to_vec(), Some(options)),
        ))
        .catch_unwind()
        .await
        .map_err(|_| StoreError::Backend("etcd watch: unexpected first response".into()))??;
        Ok(PrivateWatch {
            _watcher: watcher,
            stream,
            base: conn.base.clone(),
        })
    }

    /// The events of the next response that has any (all keys under the store prefix, whole
    /// revisions in order), or why the watch ended: `Gone` if its start was compacted,
    /// `Backend` for anything else. `after` is only used to word `Gone`.
    async fn next_batch(&mut self, after: Revision) -> Result<Vec<WatchEvent>> {
        loop {
            let resp = match self.stream.next().await {
                Some(Ok(resp)) => resp,
                Some(Err(e)) => return Err(StoreError::Backend(format!("etcd watch: {e}"))),
                None => return Err(StoreError::Backend("etcd closed the watch stream".into())),
            };
            let batch = self.convert(resp, after)?;
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }

    fn convert(&self, resp: WatchResponse, after: Revision) -> Result<Vec<WatchEvent>> {
        if resp.compact_revision() > 0 {
            // etcd's compact revision r means history below r is gone, so the oldest `after`
            // that still works is r - 1.
            return Err(StoreError::Gone {
                requested: after,
                compacted: rev(resp.compact_revision()).saturating_sub(1),
            });
        }
        if resp.canceled() {
            return Err(StoreError::Backend(format!(
                "etcd canceled the watch: {}",
                resp.cancel_reason()
            )));
        }
        let mut out = Vec::with_capacity(resp.events().len());
        for ev in resp.events() {
            let Some(kv) = ev.kv() else {
                continue;
            };
            let (event_type, value) = match ev.event_type() {
                EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => {
                    (EventType::Added, kv.value().to_vec())
                }
                EtcdEventType::Put => (EventType::Modified, kv.value().to_vec()),
                // The previous value is absent only if it was compacted away meanwhile.
                EtcdEventType::Delete => (
                    EventType::Deleted,
                    ev.prev_kv().map(|p| p.value().to_vec()).unwrap_or_default(),
                ),
            };
            out.push(WatchEvent {
                event_type,
                key: strip_prefix(&self.base, kv.key())?,
                value,
                // For a delete, etcd sets the kv's mod revision to the delete's revision.
                revision: rev(kv.mod_revision()),
            });
        }
        Ok(out)
    }
}

/// Keeps one etcd watch over the store prefix running and publishes its batches. After a
/// failure it resumes from the revision after the last one it published, so the batches stay
/// gap-free; only if that history was compacted meanwhile does it publish `Reset` and start
/// again from the present.
async fn run_hub(conn: Conn, tx: broadcast::Sender<HubMsg>) {
    // The last revision covered: everything at or below it was published (or predates us).
    let mut position: Option<Revision> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        // Runs until the etcd watch fails; only the failure comes out.
        let run: Result<std::convert::Infallible> = async {
            let from = match position {
                Some(p) => p,
                None => conn.current_revision().await?,
            };
            position = Some(from);
            let mut watch = PrivateWatch::open(&conn, from).await?;
            loop {
                let batch = watch.next_batch(from).await?;
                backoff = Duration::from_millis(100);
                position = batch.last().map(|e| e.revision).or(position);
                // No receivers is fine: nobody watches right now.
                let _ = tx.send(HubMsg::Events(batch.into()));
            }
        }
        .await;
        let Err(failure) = run;
        if let StoreError::Gone { .. } = failure {
            tracing::warn!("etcd shared watch lost history ({failure}); restarting from now");
            position = None;
            let _ = tx.send(HubMsg::Reset);
        } else {
            tracing::warn!("etcd shared watch failed ({failure}); retrying in {backoff:?}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(HUB_MAX_BACKOFF);
    }
}

/// One `Store::watch`: its state while it alternates between a private etcd watch (to catch
/// up) and the hub (once caught up).
struct Watch {
    conn: Conn,
    prefix: String,
    /// Every event at or below this revision has been delivered or skipped; never again.
    last: Revision,
    out: mpsc::Sender<Result<WatchEvent>>,
}

/// Why a watcher stops following the hub.
enum Leave {
    /// It fell behind or the hub reset: catch up privately from `last`.
    CatchUp,
    /// The consumer is gone or the store closed.
    Stop,
}

impl Watch {
    async fn run(mut self, mut private: PrivateWatch, mut hub: broadcast::Receiver<HubMsg>) {
        loop {
            let Some(first) = self.catch_up(&mut private, &mut hub).await else {
                return;
            };
            drop(private); // frees the etcd watch: from here the hub has everything
            match self.follow_hub(first, &mut hub).await {
                Leave::Stop => return,
                Leave::CatchUp => {}
            }
            private = match PrivateWatch::open(&self.conn, self.last).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = self.out.send(Err(e)).await;
                    return;
                }
            };
        }
    }

    /// Sends the events of a batch above `last` that match the prefix; false once the
    /// consumer is gone.
    async fn deliver(&mut self, batch: &[WatchEvent]) -> bool {
        for ev in batch.iter().filter(|ev| ev.revision > self.last) {
            if ev.key.starts_with(&self.prefix) && self.out.send(Ok(ev.clone())).await.is_err() {
                return false;
            }
        }
        if let Some(ev) = batch.last() {
            self.last = self.last.max(ev.revision);
        }
        true
    }

    /// Follows the private watch until it meets the hub: returns the first hub batch of an
    /// unbroken run whose start the private watch has reached, or `None` if the watch is over.
    async fn catch_up(
        &mut self,
        private: &mut PrivateWatch,
        hub: &mut broadcast::Receiver<HubMsg>,
    ) -> Option<Arc<[WatchEvent]>> {
        // The first hub batch received since the hub's run became unbroken for us; the later
        // ones wait in the broadcast buffer (if they overflow it, we notice Lagged).
        let mut held: Option<Arc<[WatchEvent]>> = None;
        loop {
            if let Some(first) = &held {
                // The private watch covers (after, last], the hub [first revision, ...): when
                // they touch, nothing is missing.
                if first.first().is_none_or(|e| self.last + 1 >= e.revision) {
                    return held;
                }
            }
            tokio::select! {
                _ = self.out.closed() => return None,
                batch = private.next_batch(self.last) => match batch {
                    Ok(batch) => {
                        if !self.deliver(&batch).await {
                            return None;
                        }
                    }
                    Err(e) => {
                        // Gone (history compacted) or a failed etcd watch: the watch is over.
                        let _ = self.out.send(Err(e)).await;
                        return None;
                    }
                },
                msg = hub.recv(), if held.is_none() => match msg {
                    Ok(HubMsg::Events(batch)) => held = Some(batch),
                    // A break in the hub's run: wait for a batch after it.
                    Ok(HubMsg::Reset) | Err(RecvError::Lagged(_)) => held = None,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    async fn follow_hub(
        &mut self,
        first: Arc<[WatchEvent]>,
        hub: &mut broadcast::Receiver<HubMsg>,
    ) -> Leave {
        if !self.deliver(&first).await {
            return Leave::Stop;
        }
        loop {
            let msg = tokio::select! {
                _ = self.out.closed() => return Leave::Stop,
                msg = hub.recv() => msg,
            };
            match msg {
                Ok(HubMsg::Events(batch)) => {
                    if !self.deliver(&batch).await {
                        return Leave::Stop;
                    }
                }
                Ok(HubMsg::Reset) => return Leave::CatchUp,
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        "watcher on {} lagged {missed} batches; catching up through etcd",
                        self.prefix
                    );
                    return Leave::CatchUp;
                }
                Err(RecvError::Closed) => return Leave::Stop,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_end_matches_etcd() {
        assert_eq!(prefix_range_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_range_end(b""), vec![0]);
    }
}

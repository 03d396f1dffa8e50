//! The embedded backend: one redb file.
//!
//! Layout (three tables):
//! - `objects`: key → (create revision, mod revision, value);
//! - `events`: revision → the encoded events of the transaction committed at that revision,
//!   the history that watches replay;
//! - `meta`: `revision` (the latest commit) and `compacted` (history at or below it is gone).
//!
//! Writes: one writer thread owns the write path. It drains every queued transaction, applies
//! them one after another inside a single redb write transaction (each still gets its own
//! revision and its own success or failure), commits once with `Durability::Immediate` (an
//! fsync), and only then answers the callers and publishes the events. One fsync per batch
//! instead of one per object is what makes thousands of creates per second possible on a slow
//! disk (group commit).
//!
//! Watches: live events go out through an in-memory broadcast after the commit. A watcher
//! subscribes first and then replays the log, dropping anything at or below the last revision
//! it has seen, so no commit falls between history and live and none is delivered twice. A
//! watcher that falls behind the broadcast re-reads the missed range from the log instead of
//! being dropped; only if that range has been compacted meanwhile does it get `Gone`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    check_ops, op_failure, EventType, KeyValue, Op, Result, Revision, Store, StoreError,
    WatchEvent, WatchStream,
};

/// key → (create revision, mod revision, value)
const OBJECTS: TableDefinition<&str, (u64, u64, &[u8])> = TableDefinition::new("objects");
/// revision → events of the transaction committed at that revision (see `encode_events`)
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Upper bound on the queued transactions folded into one commit, so one batch cannot hold
/// its first caller waiting for an unbounded amount of work.
const MAX_BATCH_TXNS: usize = 1024;
/// Upper bound on the value bytes folded into one commit, for the same reason.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Automatic compaction removes at most this many log entries per commit, so that raising
/// the load or lowering `history_limit` never turns one commit into a long stall.
const MAX_AUTO_COMPACT_PER_BATCH: u64 = 8192;
/// Revisions read from the log per read transaction while a watcher catches up.
const REPLAY_CHUNK: usize = 1024;
/// Events buffered between a watcher's task and its consumer.
const WATCH_CHANNEL: usize = 256;

/// Tuning for [`RedbStore`].
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Events kept for watch replay: automatic compaction keeps at least this many of the
    /// most recent events (it keeps the last `history_limit` revisions, each holding one or
    /// more events).
    pub history_limit: usize,
    /// Commits buffered in memory for live watchers. A watcher further behind than this does
    /// not lose events: it re-reads them from the log, which costs a read transaction.
    pub watch_buffer: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            history_limit: 100_000,
            watch_buffer: 4096,
        }
    }
}

/// The embedded store. See the module documentation for how writes and watches work.
///
/// Dropping the store lets the writer thread finish the queued writes and exit; the file is
/// released once the writer and every watch stream are gone. Call [`RedbStore::close`] to wait
/// for that (e.g. before reopening the same file in the same process).
pub struct RedbStore {
    /// Taken by `close`, so the file lock goes with the last in-flight user.
    db: Mutex<Option<Arc<Database>>>,
    requests: mpsc::UnboundedSender<Request>,
    /// Kept only to subscribe new watchers; taken by `close` so that watch streams end.
    events: Mutex<Option<broadcast::Sender<Arc<[WatchEvent]>>>>,
    counters: Arc<Counters>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The committed state, published by the writer after each commit so readers need no read
/// transaction for `current_revision` or for the fast `Gone` check of a new watch.
struct Counters {
    revision: AtomicU64,
    compacted: AtomicU64,
}

enum Request {
    Txn {
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Sent by `close`: the writer commits what it has and exits.
    Shutdown,
}

impl Request {
    fn payload_bytes(&self) -> usize {
        match self {
            Request::Txn { ops, .. } => ops
                .iter()
                .map(|op| {
                    op.key().len()
                        + match op {
                            Op::Create { value, .. } | Op::Update { value, .. } => value.len(),
                            Op::Delete { .. } => 0,
                        }
                })
                .sum(),
            Request::Compact { .. } | Request::Shutdown => 0,
        }
    }
}

fn backend(context: impl std::fmt::Display) -> impl FnOnce(redb::Error) -> StoreError {
    move |e| StoreError::Backend(format!("redb: {context}: {e}"))
}

impl RedbStore {
    /// Opens (or creates) the store file with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens (or creates) the store file. Blocks while redb checks the file (after a crash it
    /// repairs it, which reads the whole file), so call it before serving or from a blocking
    /// context.
    pub fn open_with(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self> {
        let path = path.as_ref();
        let db = Database::create(path)
            .map_err(|e| StoreError::Backend(format!("redb: open {}: {e}", path.display())))?;
        let (revision, compacted) =
            init_tables(&db).map_err(backend(format_args!("initialize {}", path.display())))?;
        let db = Arc::new(db);
        let counters = Arc::new(Counters {
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
        });
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let (requests, queue) = mpsc::unbounded_channel();
        let writer = Writer {
            db: db.clone(),
            queue,
            events: events.clone(),
            counters: counters.clone(),
            revision,
            compacted,
            history_limit: options.history_limit as u64,
        };
        let handle = std::thread::Builder::new()
            .name("weft-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Backend(format!("spawn store writer thread: {e}")))?;
        Ok(RedbStore {
            db: Mutex::new(Some(db)),
            requests,
            events: Mutex::new(Some(events)),
            counters,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Stops accepting writes, lets the writer commit what was already queued, and waits for
    /// it to exit. Live watch streams end. Later writes fail with `Backend("store closed")`.
    pub async fn close(&self) -> Result<()> {
        // The writer exits at the Shutdown marker; a failed send means it is already gone.
        let _ = self.requests.send(Request::Shutdown);
        lock(&self.events).take();
        let handle = lock(&self.writer).take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Backend(format!("join store writer: {e}")))?
                .map_err(|_| StoreError::Backend("store writer thread panicked".into()))?;
        }
        // Watch tasks see the closed broadcast and end, dropping their handles on the file;
        // wait for them (and any read in flight) so the file can be reopened at once.
        let db = lock(&self.db).take();
        if let Some(db) = db {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while Arc::strong_count(&db) > 1 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    fn db(&self) -> Result<Arc<Database>> {
        lock(&self.db)
            .clone()
            .ok_or_else(|| StoreError::Backend("store closed".into()))
    }

    /// Runs a read on the blocking pool: redb reads touch the disk and must not stall the
    /// async workers.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db()?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store read task failed: {e}")))?
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data (an Option
/// taken once) is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn init_tables(db: &Database) -> Result<(Revision, Revision), redb::Error> {
    let mut wtx = db.begin_write()?;
    wtx.set_durability(Durability::Immediate)?;
    let counters;
    {
        // Opening a table in a write transaction creates it, so that read transactions can
        // always open all three.
        wtx.open_table(OBJECTS)?;
        wtx.open_table(EVENTS)?;
        let meta = wtx.open_table(META)?;
        counters = (
            meta_get(&meta, META_REVISION)?,
            meta_get(&meta, META_COMPACTED)?,
        );
    }
    wtx.commit()?;
    Ok(counters)
}

fn meta_get(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<u64, redb::Error> {
    Ok(meta.get(name)?.map(|g| g.value()).unwrap_or(0))
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |db| {
            let inner = || -> Result<Option<KeyValue>, redb::Error> {
                let rtx = db.begin_read()?;
                let objects = rtx.open_table(OBJECTS)?;
                let found = objects.get(key.as_str())?;
                Ok(found.map(|g| {
                    let (create_revision, mod_revision, value) = g.value();
                    KeyValue {
                        key: key.clone(),
                        value: value.to_vec(),
                        create_revision,
                        mod_revision,
                    }
                }))
            };
            inner().map_err(backend("get"))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let prefix = prefix.to_owned();
        self.read(move |db| {
            let inner = || -> Result<(Vec<KeyValue>, Revision), redb::Error> {
                // One read transaction: the objects and the revision are the same snapshot,
                // which is what lets a watch from that revision continue the list exactly.
                let rtx = db.begin_read()?;
                let revision = meta_get(&rtx.open_table(META)?, META_REVISION)?;
                let objects = rtx.open_table(OBJECTS)?;
                let mut out = Vec::new();
                for entry in objects.range::<&str>(prefix.as_str()..)? {
                    let (k, v) = entry?;
                    let key = k.value();
                    if !key.starts_with(prefix.as_str()) {
                        break;
                    }
                    let (create_revision, mod_revision, value) = v.value();
                    out.push(KeyValue {
                        key: key.to_owned(),
                        value: value.to_vec(),
                        create_revision,
                        mod_revision,
                    });
                }
                Ok((out, revision))
            };
            inner().map_err(backend("list"))
        })
        .await
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision> {
        check_ops(&ops)?;
        if ops.is_empty() {
            return self.current_revision().await;
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Txn { ops, reply })
            .map_err(|_| StoreError::Backend("store closed".into()))?;
        // A dropped reply means the writer exited (closed, or panicked) before answering; the
        // write may or may not have been committed, exactly like a lost connection to etcd.
        answer.await.map_err(|_| {
            StoreError::Backend("store closed before the write was acknowledged".into())
        })?
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Subscribe before reading anything: every commit is then either in the log we are
        // about to read or in the broadcast (it is published after it is committed).
        let live = lock(&self.events)
            .as_ref()
            .map(|tx| tx.subscribe())
            .ok_or_else(|| StoreError::Backend("store closed".into()))?;
        // Fast path for the common failure, so the caller gets Gone from the call itself.
        // The replay re-checks inside its read transaction, which is authoritative.
        let compacted = self.counters.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Gone {
                requested: after,
                compacted,
            });
        }
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL);
        tokio::spawn(run_watch(self.db()?, live, prefix.to_owned(), after, tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        // Fails after close like every other call.
        self.db()?;
        Ok(self.counters.revision.load(Ordering::Acquire))
    }

    async fn close(&self) -> Result<()> {
        RedbStore::close(self).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, reply })
            .map_err(|_| StoreError::Backend("store closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("store closed before compaction finished".into()))?
    }
}

// ---------------------------------------------------------------------------------------------
// Write path

struct Writer {
    db: Arc<Database>,
    queue: mpsc::UnboundedReceiver<Request>,
    events: broadcast::Sender<Arc<[WatchEvent]>>,
    counters: Arc<Counters>,
    /// Committed state; only advanced after a successful commit.
    revision: Revision,
    compacted: Revision,
    history_limit: u64,
}

/// One queued request of a batch and the answer owed to its caller (`None` until decided).
enum Pending {
    Txn {
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<Revision>>,
        result: Option<Result<Revision>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
        result: Option<Result<()>>,
    },
}

impl Pending {
    /// Answers the caller. `commit_error` is set when the batch was not committed: then
    /// nothing of it was written, and every request that had not failed on its own fails
    /// with that error.
    fn answer(self, commit_error: Option<&StoreError>) {
        fn settle<T>(result: Option<Result<T>>, commit_error: Option<&StoreError>) -> Result<T> {
            match (result, commit_error) {
                (Some(Err(own)), _) => Err(own),
                (Some(Ok(v)), None) => Ok(v),
                (_, Some(e)) => Err(e.clone()),
                (None, None) => Err(StoreError::Backend("write was not processed".into())),
            }
        }
        // A caller that gave up waiting (dropped its future) needs no answer.
        match self {
            Pending::Txn { reply, result, .. } => {
                let _ = reply.send(settle(result, commit_error));
            }
            Pending::Compact { reply, result, .. } => {
                let _ = reply.send(settle(result, commit_error));
            }
        }
    }
}

/// What the writer learned about a key while checking a transaction.
struct Prior {
    create_revision: Revision,
    /// Only read for deletes: the value a `Deleted` event carries.
    value: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        let mut shutdown = false;
        while !shutdown {
            let Some(first) = self.queue.blocking_recv() else {
                break; // every RedbStore handle is gone
            };
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(req) = next.take() {
                if matches!(req, Request::Shutdown) {
                    shutdown = true;
                    break;
                }
                bytes += req.payload_bytes();
                batch.push(req);
                if batch.len() >= MAX_BATCH_TXNS || bytes >= MAX_BATCH_BYTES {
                    break;
                }
                next = self.queue.try_recv().ok();
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
        }
        tracing::debug!("store writer stopped at revision {}", self.revision);
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        let mut pending: Vec<Pending> = batch
            .into_iter()
            .filter_map(|req| match req {
                Request::Txn { ops, reply } => Some(Pending::Txn {
                    ops,
                    reply,
                    result: None,
                }),
                Request::Compact { revision, reply } => Some(Pending::Compact {
                    revision,
                    reply,
                    result: None,
                }),
                Request::Shutdown => None,
            })
            .collect();
        let mut events = Vec::new();
        match self.write_batch(&mut pending, &mut events) {
            Ok((revision, compacted)) => {
                self.revision = revision;
                self.compacted = compacted;
                self.counters.revision.store(revision, Ordering::Release);
                self.counters.compacted.store(compacted, Ordering::Release);
                if !events.is_empty() {
                    // No receivers is not an error: nobody is watching.
                    let _ = self.events.send(Arc::from(events));
                }
                pending.into_iter().for_each(|p| p.answer(None));
            }
            Err(e) => {
                // The write transaction was dropped uncommitted, so the file holds none of the
                // batch and the committed state (self.revision) is unchanged.
                tracing::error!("store commit failed: {e}");
                let err = StoreError::Backend(format!("redb: commit: {e}"));
                pending.into_iter().for_each(|p| p.answer(Some(&err)));
            }
        }
    }

    /// Applies the batch in one write transaction and commits it, deciding each request's
    /// own result and collecting the events to publish. Returns the new (revision, compacted);
    /// on error nothing was committed.
    fn write_batch(
        &self,
        pending: &mut [Pending],
        events: &mut Vec<WatchEvent>,
    ) -> Result<(Revision, Revision), redb::Error> {
        let mut wtx = self.db.begin_write()?;
        // The default, but stated: an acknowledged write must survive a crash.
        wtx.set_durability(Durability::Immediate)?;
        let mut revision = self.revision;
        let mut compacted = self.compacted;
        {
            let mut objects = wtx.open_table(OBJECTS)?;
            let mut log = wtx.open_table(EVENTS)?;
            let mut meta = wtx.open_table(META)?;
            for p in pending.iter_mut() {
                match p {
                    Pending::Txn { ops, result, .. } => match check_txn(&objects, ops)? {
                        Err(e) => *result = Some(Err(e)),
                        Ok(priors) => {
                            revision += 1;
                            let start = events.len();
                            apply_txn(&mut objects, std::mem::take(ops), priors, revision, events)?;
                            log.insert(revision, encode_events(&events[start..]).as_slice())?;
                            *result = Some(Ok(revision));
                        }
                    },
                    Pending::Compact {
                        revision: target,
                        result,
                        ..
                    } => {
                        let target = *target;
                        *result = Some(if target > revision {
                            Err(StoreError::Backend(format!(
                                "cannot compact revision {target}: the latest revision is {revision}"
                            )))
                        } else {
                            if target > compacted {
                                remove_log_range(&mut log, compacted, target)?;
                                compacted = target;
                            }
                            Ok(())
                        });
                    }
                }
            }
            // Automatic compaction: keep the last `history_limit` revisions.
            let floor = revision.saturating_sub(self.history_limit);
            if floor > compacted {
                let upto = floor.min(compacted + MAX_AUTO_COMPACT_PER_BATCH);
                remove_log_range(&mut log, compacted, upto)?;
                compacted = upto;
            }
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_COMPACTED, compacted)?;
        }
        wtx.commit()?;
        Ok((revision, compacted))
    }
}

/// Removes the log entries in (from, to].
fn remove_log_range(
    log: &mut Table<'_, u64, &'static [u8]>,
    from: Revision,
    to: Revision,
) -> Result<(), redb::Error> {
    for r in from + 1..=to {
        log.remove(r)?;
    }
    Ok(())
}

/// Checks every op of one transaction against the current state (which includes the earlier
/// transactions of the batch). The outer error is a storage failure; the inner one is this
/// transaction's own failure, which leaves the rest of the batch unaffected.
fn check_txn(
    objects: &Table<'_, &'static str, (u64, u64, &'static [u8])>,
    ops: &[Op],
) -> Result<Result<Vec<Option<Prior>>>, redb::Error> {
    let mut priors = Vec::with_capacity(ops.len());
    for op in ops {
        let current = objects.get(op.key())?.map(|g| {
            let (create_revision, mod_revision, value) = g.value();
            let value = if matches!(op, Op::Delete { .. }) {
                value.to_vec()
            } else {
                Vec::new()
            };
            (
                Prior {
                    create_revision,
                    value,
                },
                mod_revision,
            )
        });
        let failure = op_failure(op, current.as_ref().map(|(_, m)| *m));
        if let Some(e) = failure {
            return Ok(Err(e));
        }
        priors.push(current.map(|(p, _)| p));
    }
    Ok(Ok(priors))
}

/// Writes one checked transaction at `revision` and appends its events.
fn apply_txn(
    objects: &mut Table<'_, &'static str, (u64, u64, &'static [u8])>,
    ops: Vec<Op>,
    priors: Vec<Option<Prior>>,
    revision: Revision,
    events: &mut Vec<WatchEvent>,
) -> Result<(), redb::Error> {
    for (op, prior) in ops.into_iter().zip(priors) {
        let event = match op {
            Op::Create { key, value } => {
                objects.insert(key.as_str(), (revision, revision, value.as_slice()))?;
                (EventType::Added, key, value)
            }
            Op::Update { key, value, .. } => {
                // check_txn guarantees the key exists; the fallback is never taken.
                let create = prior.map_or(revision, |p| p.create_revision);
                objects.insert(key.as_str(), (create, revision, value.as_slice()))?;
                (EventType::Modified, key, value)
            }
            Op::Delete { key, .. } => {
                objects.remove(key.as_str())?;
                (
                    EventType::Deleted,
                    key,
                    prior.map(|p| p.value).unwrap_or_default(),
                )
            }
        };
        events.push(WatchEvent {
            event_type: event.0,
            key: event.1,
            value: event.2,
            revision,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Event log encoding: per event, a type byte, then key and value each as a little-endian u64
// length followed by the bytes. The revision is the table key.

fn encode_events(events: &[WatchEvent]) -> Vec<u8> {
    let size = events
        .iter()
        .map(|e| 17 + e.key.len() + e.value.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for e in events {
        out.push(match e.event_type {
            EventType::Added => 1,
            EventType::Modified => 2,
            EventType::Deleted => 3,
        });
        for field in [e.key.as_bytes(), e.value.as_slice()] {
            out.extend_from_slice(&(field.len() as u64).to_le_bytes());
            out.extend_from_slice(field);
        }
    }
    out
}

/// Decodes the events of `revision`, keeping those whose key starts with `prefix`.
fn decode_events(
    revision: Revision,
    mut bytes: &[u8],
    prefix: &str,
    out: &mut Vec<WatchEvent>,
) -> Result<()> {
    let corrupt = || StoreError::Backend(format!("redb: event log entry {revision} is corrupt"));
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Some(head)
    }
    fn field<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?);
        take(bytes, usize::try_from(len).ok()?)
    }
    while !bytes.is_empty() {
        let event_type = match take(&mut bytes, 1).ok_or_else(corrupt)?[0] {
            1 => EventType::Added,
            2 => EventType::Modified,
            3 => EventType::Deleted,
            _ => return Err(corrupt()),
        };
        let key = field(&mut bytes).ok_or_else(corrupt)?;
        let value = field(&mut bytes).ok_or_else(corrupt)?;
        let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
        if key.starts_with(prefix) {
            out.push(WatchEvent {
                event_type,
                key: key.to_owned(),
                value: value.to_vec(),
                revision,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Watch

/// Reads up to `REPLAY_CHUNK` revisions after `after` from the log: the matching events and
/// the last revision read (`after` if the log holds nothing newer).
fn read_log(db: &Database, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision)> {
    let inner = || -> Result<Result<(Vec<WatchEvent>, Revision)>, redb::Error> {
        let rtx = db.begin_read()?;
        // Checked in the same snapshot as the read, so a compaction cannot slip in between.
        let compacted = meta_get(&rtx.open_table(META)?, META_COMPACTED)?;
        if after < compacted {
            return Ok(Err(StoreError::Gone {
                requested: after,
                compacted,
            }));
        }
        let log = rtx.open_table(EVENTS)?;
        let mut events = Vec::new();
        let mut last = after;
        for entry in log.range(after + 1..)?.take(REPLAY_CHUNK) {
            let (rev, bytes) = entry?;
            last = rev.value();
            if let Err(e) = decode_events(last, bytes.value(), prefix, &mut events) {
                return Ok(Err(e));
            }
        }
        Ok(Ok((events, last)))
    };
    inner().map_err(backend("read event log"))?
}

/// Sends every logged event after `*last` to the watcher, advancing `*last`. Returns false if
/// the watch is over (consumer gone, or an error was delivered).
async fn catch_up(
    db: &Arc<Database>,
    prefix: &Arc<str>,
    last: &mut Revision,
    tx: &mpsc::Sender<Result<WatchEvent>>,
) -> bool {
    loop {
        let (db2, prefix2, after) = (db.clone(), prefix.clone(), *last);
        let chunk = tokio::task::spawn_blocking(move || read_log(&db2, &prefix2, after))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Backend(format!(
                    "watch replay task failed: {e}"
                )))
            });
        let (events, through) = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return false;
            }
        };
        if through == *last {
            return true; // the log holds nothing newer: switch to live events
        }
        for ev in events {
            if tx.send(Ok(ev)).await.is_err() {
                return false;
            }
        }
        *last = through;
    }
}

async fn run_watch(
    db: Arc<Database>,
    mut live: broadcast::Receiver<Arc<[WatchEvent]>>,
    prefix: String,
    after: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    let prefix: Arc<str> = prefix.into();
    // Highest revision delivered or skipped: everything at or below it is never sent again.
    let mut last = after;
    if !catch_up(&db, &prefix, &mut last, &tx).await {
        return;
    }
    loop {
        let received = tokio::select! {
            // Ends the task promptly when the consumer drops the stream, even if no write
            // ever comes again.
            _ = tx.closed() => return,
            r = live.recv() => r,
        };
        match received {
            Ok(batch) => {
                let mut through = last;
                for ev in batch.iter().filter(|ev| ev.revision > last) {
                    through = ev.revision;
                    if ev.key.starts_with(&*prefix) && tx.send(Ok(ev.clone())).await.is_err() {
                        return;
                    }
                }
                last = through;
            }
            Err(RecvError::Lagged(missed)) => {
                // Too slow for the in-memory buffer: the missed commits are in the log.
                tracing::debug!(
                    "watcher on {prefix} lagged {missed} commits; replaying from the log"
                );
                if !catch_up(&db, &prefix, &mut last, &tx).await {
                    return;
                }
            }
            Err(RecvError::Closed) => return, // store closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_encoding_round_trips_and_filters() {
        let events = vec![
            WatchEvent {
                event_type: EventType::Added,
                key: "/a/1".into(),
                value: b"one".to_vec(),
                revision: 7,
            },
            WatchEvent {
                event_type: EventType::Deleted,
                key: "/b/2".into(),
                value: Vec::new(),
                revision: 7,
            },
            WatchEvent {
                event_type: EventType::Modified,
                key: "/a/3".into(),
                value: vec![0; 1000],
                revision: 7,
            },
        ];
        let bytes = encode_events(&events);
        let mut all = Vec::new();
        decode_events(7, &bytes, "", &mut all).unwrap();
        assert_eq!(all, events);
        let mut some = Vec::new();
        decode_events(7, &bytes, "/a/", &mut some).unwrap();
        assert_eq!(some, vec![events[0].clone(), events[2].clone()]);
        let mut none = Vec::new();
        assert!(decode_events(7, &bytes[..bytes.len() - 1], "", &mut none).is_err());
        assert!(decode_events(7, &[9], "", &mut none).is_err());
    }
}

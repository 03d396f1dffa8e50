//! The object store behind the API server: a key-value space with a global revision, where
//! every write bumps the revision, updates can compare-and-swap on a key's mod revision, and
//! watches replay history from a revision before going live.
//!
//! Two backends pass the same suite (`tests/suite.rs`): redb, the embedded default, and etcd.

use std::pin::Pin;

use futures::Stream;

pub mod etcd;
pub mod redb_store;
/// Test support shared with other crates' tests: a throwaway etcd server.
#[cfg(feature = "testing")]
pub mod testing;

pub use etcd::{EtcdOptions, EtcdStore};
pub use redb_store::{RedbOptions, RedbStore};

/// A store revision. Every committed write gets the next one; 0 means "nothing yet".
pub type Revision = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (unchanged by later updates).
    pub create_revision: Revision,
    /// Revision of the write that last changed the key: the object's resourceVersion.
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub event_type: EventType,
    pub key: String,
    /// The new value; for `Deleted`, the value the key held just before deletion.
    pub value: Vec<u8>,
    /// The revision of the write (for `Deleted`, the revision of the delete).
    pub revision: Revision,
}

/// One write inside an atomic transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Fails with `AlreadyExists` if the key is present.
    Create { key: String, value: Vec<u8> },
    /// Fails with `NotFound` if absent; with `Conflict` if `expected` is set and differs
    /// from the key's mod revision.
    Update {
        key: String,
        value: Vec<u8>,
        expected: Option<Revision>,
    },
    /// Fails with `NotFound` if absent; with `Conflict` as for `Update`.
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl Op {
    /// The key this op writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// Rejects a transaction that names one key twice. etcd refuses such transactions
/// ("duplicate key given in txn request"); checking it here, before either backend sees the
/// ops, keeps the two backends answering the same way.
pub(crate) fn check_ops(ops: &[Op]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::Backend(format!(
                "invalid transaction: key {} appears more than once",
                op.key()
            )));
        }
    }
    Ok(())
}

/// Why `op` cannot apply to a key whose current mod revision is `current` (`None`: absent),
/// or `None` if it can. Both backends decide with this, so they report failures alike.
pub(crate) fn op_failure(op: &Op, current: Option<Revision>) -> Option<StoreError> {
    match (op, current) {
        (Op::Create { key, .. }, Some(_)) => Some(StoreError::AlreadyExists { key: key.clone() }),
        (Op::Create { .. }, None) => None,
        (Op::Update { key, .. } | Op::Delete { key, .. }, None) => {
            Some(StoreError::NotFound { key: key.clone() })
        }
        (Op::Update { key, expected, .. } | Op::Delete { key, expected }, Some(actual)) => {
            match *expected {
                Some(expected) if expected != actual => Some(StoreError::Conflict {
                    key: key.clone(),
                    expected,
                    actual,
                }),
                _ => None,
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Gone {
        requested: Revision,
        compacted: Revision,
    },
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, sorted by key, and the store revision the list
    /// was read at (a watch from that revision continues it with no gap or duplicate).
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)>;

    /// Applies all ops or none; returns the revision of the commit. When an op fails, the
    /// error names that op's key. A transaction may name each key at most once. An empty
    /// transaction writes nothing and returns the current revision.
    async fn txn(&self, ops: Vec<Op>) -> Result<Revision>;

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        self.txn(vec![Op::Create {
            key: key.into(),
            value,
        }])
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        self.txn(vec![Op::Update {
            key: key.into(),
            value,
            expected,
        }])
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Revision> {
        self.txn(vec![Op::Delete {
            key: key.into(),
            expected,
        }])
        .await
    }

    /// Events for keys under `prefix` with revision > `after`, in revision order: first the
    /// stored history, then live changes. `Gone` if `after` is older than the compacted
    /// history: either as the error of this call or as the first item of the stream (etcd
    /// reports compaction asynchronously), so handle both. The stream ends only when the
    /// store shuts down or the watcher falls hopelessly behind (it then yields `Gone`, and
    /// the client relists) or the backend fails (it then yields `Backend`).
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The revision of the latest commit.
    async fn current_revision(&self) -> Result<Revision>;

    /// Drops history at or below `revision`: a watch with `after < revision` gets `Gone`,
    /// one with `after >= revision` still works. Compacting at or below an earlier compaction
    /// is a no-op; compacting a revision that does not exist yet is an error. (etcd keeps the
    /// events of the current revision itself when asked to compact exactly there.)
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Finishes queued writes and releases the backend (for redb, the file lock, so the same
    /// file can be reopened in this process). Later calls fail with `Backend`.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

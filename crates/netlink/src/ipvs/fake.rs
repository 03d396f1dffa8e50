//! An in-memory [`IpvsOps`] that answers as the kernel does (`EEXIST`, `ESRCH`, `ENOENT`),
//! records every op it is sent and can be told to refuse a protocol or scheduler, for tests
//! of code above the kernel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use nix::errno::Errno;

use super::{Destination, Info, IpvsOp, IpvsOps, OpFailure, Protocol, Service, ServiceKey};
use crate::error::{NetlinkError, Result};

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<ServiceKey, (Service, Vec<Destination>)>,
    log: Vec<IpvsOp>,
    refused_protocols: Vec<(Protocol, i32)>,
}

/// Clones share one table, so a test keeps a handle while the code under test owns another.
#[derive(Debug, Clone, Default)]
pub struct MemoryIpvs {
    state: Arc<Mutex<State>>,
}

impl MemoryIpvs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread poisons the lock; the table is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Services on `protocol` are refused with `errno`, as a kernel without that
    /// protocol's IPVS support does.
    pub fn refuse_protocol(&self, protocol: Protocol, errno: i32) {
        self.lock().refused_protocols.push((protocol, errno));
    }

    /// The ops applied since the last call (refused ones included).
    pub fn take_log(&self) -> Vec<IpvsOp> {
        std::mem::take(&mut self.lock().log)
    }

    /// The table: each service with its destinations, sorted.
    pub fn table(&self) -> Vec<(Service, Vec<Destination>)> {
        self.lock().services.values().cloned().collect()
    }

    /// Sets the connection counters of a destination, as traffic would.
    pub fn set_conns(&self, key: &ServiceKey, dest: &super::DestKey, active: u32, inactive: u32) {
        if let Some((_, dests)) = self.lock().services.get_mut(key) {
            for d in dests.iter_mut().filter(|d| d.key() == *dest) {
                d.active_conns = active;
                d.inactive_conns = inactive;
            }
        }
    }

    fn apply_one(state: &mut State, op: &IpvsOp) -> std::result::Result<(), Errno> {
        match op {
            IpvsOp::NewService(s) => {
                if let ServiceKey::Addr { protocol, .. } = s.key {
                    if let Some((_, errno)) =
                        state.refused_protocols.iter().find(|(p, _)| *p == protocol)
                    {
                        return Err(Errno::from_raw(*errno));
                    }
                }
                if state.services.contains_key(&s.key) {
                    return Err(Errno::EEXIST);
                }
                let mut s = s.clone();
                s.stats = None;
                state.services.insert(s.key, (s, Vec::new()));
            }
            IpvsOp::SetService(s) => {
                let (have, _) = state.services.get_mut(&s.key).ok_or(Errno::ESRCH)?;
                *have = s.clone();
            }
            IpvsOp::DelService(k) => {
                state.services.remove(k).ok_or(Errno::ESRCH)?;
            }
            IpvsOp::NewDest(k, d) => {
                let (_, dests) = state.services.get_mut(k).ok_or(Errno::ESRCH)?;
                if dests.iter().any(|x| x.key() == d.key()) {
                    return Err(Errno::EEXIST);
                }
                dests.push(d.clone());
                dests.sort_by_key(|d| d.key());
            }
            IpvsOp::SetDest(k, d) => {
                let (_, dests) = state.services.get_mut(k).ok_or(Errno::ESRCH)?;
                let have = dests
                    .iter_mut()
                    .find(|x| x.key() == d.key())
                    .ok_or(Errno::ENOENT)?;
                // Settings change; the kernel's counters stay.
                have.forward = d.forward;
                have.weight = d.weight;
                have.upper_threshold = d.upper_threshold;
                have.lower_threshold = d.lower_threshold;
            }
            IpvsOp::DelDest(k, d) => {
                let (_, dests) = state.services.get_mut(k).ok_or(Errno::ESRCH)?;
                let before = dests.len();
                dests.retain(|x| x.key() != *d);
                if dests.len() == before {
                    return Err(Errno::ENOENT);
                }
            }
            IpvsOp::Flush => state.services.clear(),
        }
        Ok(())
    }
}

#[async_trait]
impl IpvsOps for MemoryIpvs {
    async fn info(&mut self) -> Result<Info> {
        Ok(Info {
            version: 0x010201,
            conn_table_size: 4096,
        })
    }

    async fn services(&mut self) -> Result<Vec<Service>> {
        Ok(self
            .lock()
            .services
            .values()
            .map(|(s, _)| s.clone())
            .collect())
    }

    async fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<Destination>> {
        // As the kernel: an unknown service has an empty dump, not an error.
        Ok(self
            .lock()
            .services
            .get(service)
            .map(|(_, d)| d.clone())
            .unwrap_or_default())
    }

    async fn apply(&mut self, ops: Vec<IpvsOp>) -> Result<Vec<OpFailure>> {
        let mut state = self.lock();
        let mut failures = Vec::new();
        for (index, op) in ops.into_iter().enumerate() {
            if let Err(errno) = Self::apply_one(&mut state, &op) {
                failures.push(OpFailure {
                    index,
                    error: NetlinkError::os(op.to_string(), errno as i32),
                });
            }
            state.log.push(op);
        }
        Ok(failures)
    }
}

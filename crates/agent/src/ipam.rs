//! Host-local IPAM for one node's podCIDR.
//!
//! Layout follows the reference `host-local` CNI plugin so an operator can read it with
//! `ls`: in the state directory every allocated address is a file named by the address
//! whose content is the owner (a pod uid or `namespace/name`), `last_reserved_ip` holds
//! the most recently handed-out address, and `podcidr` records the range the files belong
//! to. One file per address means a damaged file concerns one address only, and each
//! allocation is a single atomic rename.
//!
//! Addresses: `.0` is the network, `.1` the bridge (gateway), pods get `.2` up to the last
//! address before the broadcast. Allocation is round-robin from the last reserved address,
//! like host-local, so a just-freed address is not handed to the next pod while stale ARP
//! entries or conntrack state for the old pod may still point at it.
//!
//! The state is guarded by a mutex within the process; one agent owns a state directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ipnet::Ipv4Net;

use crate::fsutil;

const CIDR_FILE: &str = "podcidr";
const LAST_FILE: &str = "last_reserved_ip";

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(
        "podCIDR {cidr} has no room for pods: it needs at least a /30 \
         (network, gateway, one pod, broadcast)"
    )]
    CidrTooSmall { cidr: Ipv4Net },
    #[error("podCIDR {cidr} is exhausted: all {usable} pod addresses are allocated")]
    Exhausted { cidr: Ipv4Net, usable: u32 },
    #[error("IPAM state directory {}: {source}", path.display())]
    StateDir { path: PathBuf, source: io::Error },
    #[error(
        "IPAM state file {} is corrupt: {reason}; fix or remove that file \
         (nothing else was changed)",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the node's podCIDR changed from {old} to {new} while {live} addresses are still \
         allocated in {} (e.g. {example}); delete those pods (or the files) before \
         changing the podCIDR",
        dir.display()
    )]
    CidrChanged {
        old: String,
        new: Ipv4Net,
        live: usize,
        dir: PathBuf,
        example: Ipv4Addr,
    },
    #[error("writing IPAM state file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("invalid IPAM owner {owner:?}: {reason}")]
    InvalidOwner { owner: String, reason: &'static str },
}

pub type Result<T, E = IpamError> = std::result::Result<T, E>;

/// One allocated address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    pub owner: String,
}

/// Address management for one podCIDR, persisted in a directory.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Net,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_ip: BTreeMap<Ipv4Addr, String>,
    by_owner: BTreeMap<String, Ipv4Addr>,
    last: Option<Ipv4Addr>,
}

impl Ipam {
    /// Opens (creating if needed) the state directory for `cidr` and loads every recorded
    /// allocation. Fails rather than guess: a corrupt file or a podCIDR that changed under
    /// live allocations is an error, and nothing on disk is modified in that case.
    pub fn open(dir: impl Into<PathBuf>, cidr: Ipv4Net) -> Result<Ipam> {
        let dir = dir.into();
        let cidr = cidr.trunc();
        if cidr.prefix_len() > 30 {
            return Err(IpamError::CidrTooSmall { cidr });
        }
        let dir_err = |source| IpamError::StateDir {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(dir_err)?;
        let loaded = load(&dir)?;

        let mut state = State {
            last: loaded.last.filter(|ip| usable(cidr, *ip)),
            ..State::default()
        };
        let cidr_changed = loaded.cidr.is_some_and(|old| old != cidr);
        if let Some((ip, _)) = loaded.allocations.iter().find(|(ip, _)| !usable(cidr, *ip)) {
            return Err(IpamError::CidrChanged {
                old: loaded
                    .cidr
                    .map_or_else(|| "unknown".into(), |c| c.to_string()),
                new: cidr,
                live: loaded.allocations.len(),
                dir,
                example: *ip,
            });
        }
        if cidr_changed && !loaded.allocations.is_empty() {
            let example = loaded.allocations[0].0;
            return Err(IpamError::CidrChanged {
                old: loaded.cidr.map_or_else(String::new, |c| c.to_string()),
                new: cidr,
                live: loaded.allocations.len(),
                dir,
                example,
            });
        }
        for (ip, owner) in loaded.allocations {
            state.by_owner.insert(owner.clone(), ip);
            state.by_ip.insert(ip, owner);
        }
        if loaded.cidr != Some(cidr) {
            let path = dir.join(CIDR_FILE);
            fsutil::atomic_write(&path, format!("{cidr}\n").as_bytes())
                .map_err(|source| IpamError::Write { path, source })?;
            if cidr_changed {
                state.last = None;
            }
        }
        Ok(Ipam {
            dir,
            cidr,
            state: Mutex::new(state),
        })
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The bridge's address: the first in the podCIDR.
    pub fn gateway(&self) -> Ipv4Addr {
        offset(self.cidr, 1)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns `owner`'s address, allocating one if it has none yet; calling it again for
    /// the same owner returns the same address.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        check_owner(owner)?;
        let mut state = self.lock();
        if let Some(ip) = state.by_owner.get(owner) {
            return Ok(*ip);
        }
        let ip = next_free(self.cidr, &state).ok_or(IpamError::Exhausted {
            cidr: self.cidr,
            usable: usable_count(self.cidr),
        })?;
        let path = self.dir.join(ip.to_string());
        fsutil::atomic_write(&path, format!("{owner}\n").as_bytes())
            .map_err(|source| IpamError::Write { path, source })?;
        state.by_ip.insert(ip, owner.to_string());
        state.by_owner.insert(owner.to_string(), ip);
        state.last = Some(ip);
        // The allocation file above is what makes the address taken; the cursor only
        // spreads reuse, so failing to save it is not worth failing the allocation.
        let last_path = self.dir.join(LAST_FILE);
        if let Err(e) = fsutil::atomic_write(&last_path, format!("{ip}\n").as_bytes()) {
            tracing::warn!(path = %last_path.display(), error = %e, "saving the IPAM cursor");
        }
        Ok(ip)
    }

    /// Frees `owner`'s address; returns it, or `None` if the owner held none.
    pub fn release(&self, owner: &str) -> Result<Option<Ipv4Addr>> {
        let mut state = self.lock();
        let Some(ip) = state.by_owner.get(owner).copied() else {
            return Ok(None);
        };
        let path = self.dir.join(ip.to_string());
        fsutil::remove_durably(&path).map_err(|source| IpamError::Write { path, source })?;
        state.by_owner.remove(owner);
        state.by_ip.remove(&ip);
        Ok(Some(ip))
    }

    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        self.lock().by_owner.get(owner).copied()
    }

    /// Every allocation, ordered by address.
    pub fn allocations(&self) -> Vec<Allocation> {
        self.lock()
            .by_ip
            .iter()
            .map(|(ip, owner)| Allocation {
                ip: *ip,
                owner: owner.clone(),
            })
            .collect()
    }

    /// Releases every allocation whose owner `keep` rejects, e.g. after an agent restart,
    /// the owners of pods no longer bound to this node. Returns what was released.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<Allocation>> {
        let stale: Vec<String> = self
            .lock()
            .by_owner
            .keys()
            .filter(|owner| !keep(owner))
            .cloned()
            .collect();
        let mut released = Vec::new();
        for owner in stale {
            if let Some(ip) = self.release(&owner)? {
                released.push(Allocation { ip, owner });
            }
        }
        Ok(released)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Maps are only changed after the disk write succeeded, so a panic elsewhere while
        // holding the lock cannot leave them inconsistent: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_owner(owner: &str) -> Result<()> {
    let reason = if owner.trim().is_empty() {
        "it is empty"
    } else if owner.contains(['\n', '\r', '\0']) {
        "it contains a line break or NUL"
    } else if owner.len() > 1024 {
        "it is longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(IpamError::InvalidOwner {
        owner: owner.to_string(),
        reason,
    })
}

struct Loaded {
    cidr: Option<Ipv4Net>,
    last: Option<Ipv4Addr>,
    allocations: Vec<(Ipv4Addr, String)>,
}

/// Reads the directory without changing it (apart from removing interrupted
/// temporaries, which never held committed state).
fn load(dir: &Path) -> Result<Loaded> {
    let dir_err = |source| IpamError::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut loaded = Loaded {
        cidr: None,
        last: None,
        allocations: Vec::new(),
    };
    let mut owners: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(dir_err)?
        .collect::<io::Result<_>>()
        .map_err(dir_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if fsutil::is_temporary(&name) {
            let _ = fs::remove_file(&path);
            continue;
        }
        let corrupt = |reason: String| IpamError::Corrupt {
            path: path.clone(),
            reason,
        };
        // Renamed into place but never flushed before the host went down (see fsutil): the
        // host crash ended the pod it named, so the address is free again.
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            tracing::warn!(path = %path.display(), "removing an empty IPAM file left by a host crash");
            let _ = fs::remove_file(&path);
            continue;
        }
        if name == CIDR_FILE {
            let text = read_text(&path)?;
            let cidr = text
                .parse::<Ipv4Net>()
                .map_err(|_| corrupt(format!("{text:?} is not an IPv4 CIDR")))?;
            loaded.cidr = Some(cidr);
        } else if name == LAST_FILE {
            let text = read_text(&path)?;
            let ip = text
                .parse::<Ipv4Addr>()
                .map_err(|_| corrupt(format!("{text:?} is not an IPv4 address")))?;
            loaded.last = Some(ip);
        } else if let Ok(ip) = name.parse::<Ipv4Addr>() {
            let owner = read_text(&path)?;
            if owner.is_empty() || owner.contains('\n') {
                return Err(corrupt(format!(
                    "expected one line naming the owner, found {owner:?}"
                )));
            }
            if let Some(other) = owners.insert(owner.clone(), ip) {
                return Err(corrupt(format!("owner {owner:?} also holds {other}")));
            }
            loaded.allocations.push((ip, owner));
        } else {
            tracing::debug!(path = %path.display(), "ignoring unknown file in the IPAM directory");
        }
    }
    loaded.allocations.sort();
    Ok(loaded)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|source| IpamError::StateDir {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| IpamError::Corrupt {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    Ok(text.trim().to_string())
}

fn offset(cidr: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(n))
}

/// Pod addresses: after the network and the gateway, before the broadcast.
fn usable(cidr: Ipv4Net, ip: Ipv4Addr) -> bool {
    let (first, last) = usable_bounds(cidr);
    (first..=last).contains(&u32::from(ip))
}

fn usable_bounds(cidr: Ipv4Net) -> (u32, u32) {
    (
        u32::from(cidr.network()) + 2,
        u32::from(cidr.broadcast()) - 1,
    )
}

fn usable_count(cidr: Ipv4Net) -> u32 {
    let (first, last) = usable_bounds(cidr);
    last - first + 1
}

/// The first free address after the last reserved one, wrapping around once.
fn next_free(cidr: Ipv4Net, state: &State) -> Option<Ipv4Addr> {
    let (first, last) = usable_bounds(cidr);
    let count = last - first + 1;
    let start = match state.last {
        Some(ip) if usable(cidr, ip) => u32::from(ip) - first + 1,
        _ => 0,
    };
    (0..count)
        .map(|i| Ipv4Addr::from(first + (start + i) % count))
        .find(|ip| !state.by_ip.contains_key(ip))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn cidr(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn hands_out_from_dot_two_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
        assert_eq!(ipam.gateway(), ip("10.244.1.1"));
        assert_eq!(ipam.allocate("uid-a").expect("a"), ip("10.244.1.2"));
        assert_eq!(ipam.allocate("uid-b").expect("b"), ip("10.244.1.3"));
        assert_eq!(ipam.allocate("uid-a").expect("a again"), ip("10.244.1.2"));
        assert_eq!(ipam.lookup("uid-b"), Some(ip("10.244.1.3")));
        assert_eq!(ipam.lookup("uid-c"), None);
        assert_eq!(
            ipam.allocations(),
            vec![
                Allocation {
                    ip: ip("10.244.1.2"),
                    owner: "uid-a".into()
                },
                Allocation {
                    ip: ip("10.244.1.3"),
                    owner: "uid-b".into()
                },
            ]
        );
        // Readable like host-local's directory.
        let content = fs::read_to_string(dir.path().join("10.244.1.2")).expect("read");
        assert_eq!(content, "uid-a\n");
    }

    #[test]
    fn exhaustion_names_the_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        // /29: .0 network, .1 gateway, .2-.6 pods, .7 broadcast.
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/29")).expect("open");
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("pod-{i}")).expect("allocate"))
            .collect();
        assert_eq!(got.first(), Some(&ip("10.244.1.2")));
        assert_eq!(got.last(), Some(&ip("10.244.1.6")));
        let err = ipam.allocate("pod-5").expect_err("exhausted");
        assert!(
            matches!(err, IpamError::Exhausted { usable: 5, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("10.244.1.0/29"), "{err}");
        // Still idempotent for existing owners when full.
        assert_eq!(ipam.allocate("pod-0").expect("existing"), ip("10.244.1.2"));
    }

    #[test]
    fn released_address_is_not_reused_immediately() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/29")).expect("open");
        assert_eq!(ipam.allocate("a").expect("a"), ip("10.244.1.2"));
        assert_eq!(ipam.allocate("b").expect("b"), ip("10.244.1.3"));
        assert_eq!(ipam.release("a").expect("release"), Some(ip("10.244.1.2")));
        assert_eq!(ipam.release("a").expect("release again"), None);
        assert!(!dir.path().join("10.244.1.2").exists());
        // Round-robin continues after .3 rather than going back to the freed .2 ...
        assert_eq!(ipam.allocate("c").expect("c"), ip("10.244.1.4"));
        assert_eq!(ipam.allocate("d").expect("d"), ip("10.244.1.5"));
        assert_eq!(ipam.allocate("e").expect("e"), ip("10.244.1.6"));
        // ... and only wraps around to it once the top of the range is used.
        assert_eq!(ipam.allocate("f").expect("f"), ip("10.244.1.2"));
    }

    #[test]
    fn allocations_and_cursor_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
            ipam.allocate("default/web-1").expect("1");
            ipam.allocate("default/web-2").expect("2");
            ipam.release("default/web-1").expect("release");
        }
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("reopen");
        assert_eq!(ipam.lookup("default/web-2"), Some(ip("10.244.1.3")));
        assert_eq!(ipam.lookup("default/web-1"), None);
        // The cursor was persisted too: no immediate reuse of .2 after a restart.
        assert_eq!(ipam.allocate("default/web-3").expect("3"), ip("10.244.1.4"));
        assert_eq!(ipam.allocate("default/web-2").expect("2"), ip("10.244.1.3"));
    }

    #[test]
    fn corrupt_file_is_named_and_nothing_else_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
            ipam.allocate("a").expect("a");
            ipam.allocate("b").expect("b");
        }
        let bad = dir.path().join("10.244.1.3");
        fs::write(&bad, b"\xff\xfe").expect("corrupt");
        let err = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect_err("corrupt");
        assert!(matches!(err, IpamError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains(&bad.display().to_string()),
            "{err}"
        );
        // The failed open changed nothing: the other allocation is intact.
        assert_eq!(
            fs::read_to_string(dir.path().join("10.244.1.2")).expect("a"),
            "a\n"
        );
        fs::write(&bad, b"b\n").expect("repair");
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("reopen");
        assert_eq!(ipam.lookup("a"), Some(ip("10.244.1.2")));
        assert_eq!(ipam.lookup("b"), Some(ip("10.244.1.3")));

        fs::write(dir.path().join("last_reserved_ip"), b"nonsense").expect("corrupt");
        let err = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect_err("corrupt");
        assert!(err.to_string().contains("last_reserved_ip"), "{err}");
    }

    #[test]
    fn empty_file_left_by_a_host_crash_frees_its_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
            ipam.allocate("a").expect("a");
            ipam.allocate("b").expect("b");
        }
        // What a rename that reached the disk without its data looks like after a reboot.
        fs::write(dir.path().join("10.244.1.3"), b"").expect("empty");
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("reopen");
        assert_eq!(ipam.lookup("a"), Some(ip("10.244.1.2")));
        assert_eq!(ipam.lookup("b"), None);
        assert!(!dir.path().join("10.244.1.3").exists());
    }

    #[test]
    fn podcidr_change_with_live_allocations_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
            ipam.allocate("a").expect("a");
        }
        let err = Ipam::open(dir.path(), cidr("10.244.2.0/24")).expect_err("changed");
        assert!(
            matches!(err, IpamError::CidrChanged { live: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("10.244.1.0/24"), "{err}");
        // Once the allocation is gone the new range is accepted.
        fs::remove_file(dir.path().join("10.244.1.2")).expect("remove");
        let ipam = Ipam::open(dir.path(), cidr("10.244.2.0/24")).expect("new range");
        assert_eq!(ipam.allocate("b").expect("b"), ip("10.244.2.2"));
        assert_eq!(
            fs::read_to_string(dir.path().join("podcidr")).expect("cidr"),
            "10.244.2.0/24\n"
        );
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Ipam::open(dir.path(), cidr("10.244.1.0/31")),
            Err(IpamError::CidrTooSmall { .. })
        ));
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/30")).expect("open");
        assert!(matches!(
            ipam.allocate(""),
            Err(IpamError::InvalidOwner { .. })
        ));
        assert!(matches!(
            ipam.allocate("a\nb"),
            Err(IpamError::InvalidOwner { .. })
        ));
        assert_eq!(ipam.allocate("only").expect("one"), ip("10.244.1.2"));
        assert!(matches!(
            ipam.allocate("second"),
            Err(IpamError::Exhausted { usable: 1, .. })
        ));
    }

    #[test]
    fn unreadable_state_dir_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").expect("file");
        let err = Ipam::open(&file, cidr("10.244.1.0/24")).expect_err("not a dir");
        assert!(matches!(err, IpamError::StateDir { .. }), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn retain_releases_stale_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open");
        ipam.allocate("live").expect("live");
        ipam.allocate("gone").expect("gone");
        let released = ipam.retain(|owner| owner == "live").expect("retain");
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].owner, "gone");
        assert_eq!(ipam.allocations().len(), 1);
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Arc::new(Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let ipam = Arc::clone(&ipam);
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| ipam.allocate(&format!("pod-{t}-{i}")))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().expect("thread").expect("allocations"));
        }
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 160);
        let reopened = Ipam::open(dir.path(), cidr("10.244.1.0/24")).expect("reopen");
        assert_eq!(reopened.allocations().len(), 160);
    }
}

//! Named network namespaces exactly as `ip netns add/del` makes them: a new net namespace
//! bind-mounted on `/run/netns/NAME`, with `/run/netns` a shared mount point, so
//! `ip netns exec NAME …` and `ip -n NAME …` work on them.
//!
//! Entering a namespace is per thread (`setns(CLONE_NEWNET)`), so every function here that
//! needs another namespace does it on a dedicated, short-lived thread: the caller's threads
//! (and tokio's pools) never change namespace.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::error::{NetlinkError, Result};

/// Where iproute2 keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The calling thread's own namespace (`/proc/self` would name the main thread's).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

fn object(name: &str) -> String {
    format!("netns {name:?}")
}

/// The path of the named namespace (whether or not it exists).
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Names iproute2 accepts: a single, non-empty path component.
fn validate(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(NetlinkError::invalid(
            object(name),
            "not a valid namespace name",
        ));
    }
    Ok(())
}

/// Creates the named namespace, like `ip netns add NAME`; fails with `EEXIST` if it exists.
/// Returns its path, usable with [`run_in_netns`] and [`crate::Netlink::in_netns`].
pub fn create(name: &str) -> Result<PathBuf> {
    validate(name)?;
    let dir_lock = prepare_run_dir()?;

    let ns_path = path(name);
    // iproute2 creates the mount target with mode 0 and O_EXCL: an existing name fails here.
    let create_target = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&ns_path)
    };
    match create_target() {
        Ok(_) => {}
        // A bare mount target is what a process killed between the two steps below leaves:
        // no namespace lives there, so the name is free (the directory lock is held).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !is_namespace(&ns_path) => {
            fs::remove_file(&ns_path).map_err(|e| NetlinkError::io(object(name), &e))?;
            create_target().map_err(|e| NetlinkError::io(object(name), &e))?;
        }
        Err(e) => return Err(NetlinkError::io(object(name), &e)),
    }
    drop(dir_lock);

    let mounted = std::thread::scope(|s| {
        s.spawn(|| -> nix::Result<()> {
            // Only this thread moves into the new namespace, and it ends right after: the
            // bind mount is what keeps the namespace alive.
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some(THREAD_NETNS),
                &ns_path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or(Err(Errno::EIO))
    });
    if let Err(e) = mounted {
        let _ = fs::remove_file(&ns_path);
        return Err(NetlinkError::nix(object(name), e));
    }
    Ok(ns_path)
}

/// Makes `/run/netns` exist and be a shared mount point, as iproute2's `netns_add` does,
/// so unmounting a namespace here unmounts it in every mount namespace too. Returns the
/// directory lock (`flock`, iproute2's lock too; it serialises threads as well as
/// processes, each call having its own open file), held until the namespace file exists.
fn prepare_run_dir() -> Result<Flock<File>> {
    let dir_err = |e: std::io::Error| NetlinkError::io(NETNS_RUN_DIR, &e);
    match fs::DirBuilder::new().mode(0o755).create(NETNS_RUN_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(dir_err(e)),
    }
    let dir = File::open(NETNS_RUN_DIR).map_err(dir_err)?;
    let lock = Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, e)| NetlinkError::nix(NETNS_RUN_DIR, e))?;

    let make_shared = || {
        mount(
            Some(""),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    let shared = match make_shared() {
        // EINVAL: not a mount point yet; bind it onto itself, then share it.
        Err(Errno::EINVAL) => mount(
            Some(NETNS_RUN_DIR),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| make_shared()),
        other => other,
    };
    shared.map_err(|e| NetlinkError::nix(format!("making {NETNS_RUN_DIR} a shared mount"), e))?;
    Ok(lock)
}

/// Deletes the named namespace, like `ip netns del NAME`. Its links go with it once the
/// last process or socket inside lets go.
pub fn delete(name: &str) -> Result<()> {
    validate(name)?;
    let ns_path = path(name);
    // As iproute2: a failed unmount (e.g. a bare file left by a crash) does not stop the
    // unlink, which is what reports a missing namespace.
    let _ = umount2(&ns_path, MntFlags::MNT_DETACH);
    fs::remove_file(&ns_path).map_err(|e| NetlinkError::io(object(name), &e))
}

/// Whether a namespace of that name exists: its file is a mounted namespace, not a bare
/// mount target left by a crash in the middle of [`create`] (which reuses such a name).
pub fn exists(name: &str) -> bool {
    validate(name).is_ok() && is_namespace(&path(name))
}

fn is_namespace(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// The named namespaces, sorted (`ip netns list`). None when `/run/netns` is missing.
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetlinkError::io(NETNS_RUN_DIR, &e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| NetlinkError::io(NETNS_RUN_DIR, &e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs blocking `f` on a dedicated thread inside the namespace at `ns_path` (a
/// `/run/netns/NAME` or `/proc/PID/ns/net` file) and returns its result. Sockets `f`
/// creates stay in that namespace; `/proc/sys/net` read by `f` is that namespace's.
/// A panic in `f` is resumed on the caller's thread.
pub fn run_in_netns<T: Send>(ns_path: impl AsRef<Path>, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns_path = ns_path.as_ref();
    let what = || format!("netns {}", ns_path.display());
    let ns = File::open(ns_path).map_err(|e| NetlinkError::io(what(), &e))?;
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            // The thread ends after `f`: no need (and no way to forget) to switch back.
            setns(&ns, CloneFlags::CLONE_NEWNET).map(|()| f())
        });
        match worker.join() {
            Ok(result) => result.map_err(|e| NetlinkError::nix(what(), e)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_that_are_not_one_path_component() {
        for bad in ["", ".", "..", "a/b", "/abs"] {
            assert!(validate(bad).is_err(), "{bad:?}");
            assert!(!exists(bad));
        }
        assert!(validate("wnl-1-2").is_ok());
    }

    #[test]
    fn paths_live_under_run_netns() {
        assert_eq!(path("blue"), PathBuf::from("/run/netns/blue"));
    }

    #[test]
    fn run_in_missing_namespace_names_it() {
        let err = run_in_netns("/run/netns/wnl-definitely-missing", || ()).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("wnl-definitely-missing"), "{err}");
    }
}

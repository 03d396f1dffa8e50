//! Small-file writes shared by the modules that keep state on disk.
//!
//! Every file the agent keeps (IPAM allocations, pod records, pod files) describes live
//! pods. A restarted agent must find exactly what was written, which the page cache
//! guarantees: writes are atomic renames, so no reader ever sees a torn file. Surviving a
//! crash of the whole host matters less, since a host crash ends every pod; so instead of
//! fsyncing on the pod-start path (about ten fsyncs per pod, each milliseconds), a
//! background thread flushes the filesystem shortly after each change, and loaders drop
//! the empty files a host crash in that window can leave.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long the flusher gathers changes before one `syncfs`.
const FLUSH_DELAY: Duration = Duration::from_millis(100);

/// Writes `data` to `path` so that readers, and a restarted agent, see either the old or
/// the new content, never a torn file: write a temporary sibling, rename it over `path`.
/// The change reaches the disk shortly after (see the module doc).
pub(crate) fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(data)?;
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    flush_soon(dir);
    Ok(())
}

/// Removes `path` (a missing file is fine); the removal reaches the disk shortly after.
pub(crate) fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            flush_soon(parent_dir(path));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Asks the background flusher to `syncfs` the filesystem holding `dir` soon. Changes
/// that arrive while it waits share one flush.
fn flush_soon(dir: &Path) {
    static FLUSHER: OnceLock<Mutex<Sender<PathBuf>>> = OnceLock::new();
    let sender = FLUSHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new()
            .name("weft-state-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    std::thread::sleep(FLUSH_DELAY);
                    let mut dirs = vec![first];
                    dirs.extend(rx.try_iter());
                    dirs.sort();
                    dirs.dedup();
                    for dir in dirs {
                        if let Err(e) = syncfs(&dir) {
                            tracing::warn!(dir = %dir.display(), error = %e, "flushing agent state to disk");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no background flusher: agent state reaches the disk when the kernel writes it back");
        }
        Mutex::new(tx)
    });
    if let Ok(tx) = sender.lock() {
        let _ = tx.send(dir.to_path_buf());
    }
}

fn syncfs(dir: &Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    nix::unistd::syncfs(handle.as_raw_fd()).map_err(io::Error::from)
}

/// True for the temporaries [`atomic_write`] leaves behind if it is interrupted.
pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        atomic_write(&path, b"one").expect("first write");
        atomic_write(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        remove_durably(&path).expect("remove");
        remove_durably(&path).expect("removing a missing file is fine");
        assert!(is_temporary(".state.json.tmp"));
        assert!(!is_temporary("10.244.1.2"));
    }
}

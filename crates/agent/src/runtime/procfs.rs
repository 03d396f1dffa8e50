//! Identifying a process across agent restarts: a pid alone can be reused, a pid plus
//! its start time (field 22 of `/proc/PID/stat`, in clock ticks since boot) cannot.

use std::io;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcessId {
    /// Identifies a process that exists now (a zombie counts: it has not been reaped).
    pub fn of(pid: i32) -> io::Result<ProcessId> {
        let (_, start_ticks) = stat(pid)?;
        Ok(ProcessId { pid, start_ticks })
    }

    /// True while the same process is running: it exists, was started at the recorded
    /// time (so the pid was not reused) and is not a zombie awaiting its reaper.
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Ok((state, ticks)) if ticks == self.start_ticks && !matches!(state, 'Z' | 'X'))
    }
}

/// The state letter and start time of `pid`.
fn stat(pid: i32) -> io::Result<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

/// `pid (comm) S ppid … starttime …`: comm may contain spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; starttime is field 22, i.e. 19 fields further.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn identifies_this_process() {
        let me = ProcessId::of(std::process::id() as i32).expect("own stat");
        assert!(me.is_alive());
        let reused = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }
}

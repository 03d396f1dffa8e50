//! One error type for everything this crate does, always naming the object it was about
//! (`link "weft0": File exists`), so a log line is enough to know what failed.

use std::io;

/// `Result` with [`NetlinkError`].
pub type Result<T, E = NetlinkError> = std::result::Result<T, E>;

/// A failure talking to the kernel, naming the object concerned.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel (a netlink request or a system call) refused with an errno.
    #[error("{object}: {}", errno_text(*errno))]
    Os { object: String, errno: i32 },
    /// The netlink conversation itself failed: connection gone, unexpected reply.
    #[error("{object}: netlink: {message}")]
    Protocol { object: String, message: String },
    /// An argument or a kernel reply this crate cannot work with.
    #[error("{object}: {reason}")]
    Invalid { object: String, reason: String },
}

impl NetlinkError {
    pub(crate) fn os(object: impl Into<String>, errno: i32) -> Self {
        Self::Os {
            object: object.into(),
            errno: errno.abs(),
        }
    }

    /// From an `io::Error`; keeps the errno when there is one.
    pub(crate) fn io(object: impl Into<String>, err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(errno) => Self::os(object, errno),
            None => Self::Invalid {
                object: object.into(),
                reason: err.to_string(),
            },
        }
    }

    pub(crate) fn nix(object: impl Into<String>, err: nix::errno::Errno) -> Self {
        Self::os(object, err as i32)
    }

    pub(crate) fn invalid(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            object: object.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn protocol(object: impl Into<String>, message: impl ToString) -> Self {
        Self::Protocol {
            object: object.into(),
            message: message.to_string(),
        }
    }

    /// The positive errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The object already exists (`EEXIST`): a reconciler can treat an add as done.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc_errno::EEXIST)
    }

    /// The object is not there (`ENOENT`, `ESRCH` for routes, `ENODEV` for links,
    /// `EADDRNOTAVAIL` for addresses): a reconciler can treat a delete as done.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(
                libc_errno::ENOENT
                    | libc_errno::ESRCH
                    | libc_errno::ENODEV
                    | libc_errno::EADDRNOTAVAIL
            )
        )
    }
}

/// The errno values the helpers above test, without a direct `libc` dependency.
mod libc_errno {
    use nix::errno::Errno;
    pub const ENOENT: i32 = Errno::ENOENT as i32;
    pub const ESRCH: i32 = Errno::ESRCH as i32;
    pub const EEXIST: i32 = Errno::EEXIST as i32;
    pub const ENODEV: i32 = Errno::ENODEV as i32;
    pub const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
}

/// "File exists" rather than io::Error's "File exists (os error 17)".
fn errno_text(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_object_and_the_errno() {
        let e = NetlinkError::os("link \"weft0\"", -17);
        assert_eq!(e.to_string(), "link \"weft0\": File exists");
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        assert_eq!(e.errno(), Some(17));
    }

    #[test]
    fn not_found_covers_the_kernels_spellings() {
        for errno in [2, 3, 19, 99] {
            assert!(NetlinkError::os("x", errno).is_not_found(), "{errno}");
        }
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let e = NetlinkError::io("netns \"a\"", &io::Error::from_raw_os_error(1));
        assert_eq!(e.to_string(), "netns \"a\": Operation not permitted");
        let e = NetlinkError::io("sysctl x", &io::Error::other("bad"));
        assert_eq!(e.to_string(), "sysctl x: bad");
    }
}

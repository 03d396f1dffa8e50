//! Sysctls as plain files under `/proc/sys`. `net.*` ones belong to the network namespace
//! of the calling thread: wrap in [`crate::run_in_netns`] to reach another namespace's.

use std::fs;
use std::path::PathBuf;

use crate::error::{NetlinkError, Result};

const PROC_SYS: &str = "/proc/sys";

/// `net/ipv4/ip_forward`, `net.ipv4.ip_forward` and `/proc/sys/net/ipv4/ip_forward` all
/// name the same file. Use the slash form when a component has dots (interface names).
pub fn sysctl_path(name: &str) -> PathBuf {
    let name = name.strip_prefix(PROC_SYS).unwrap_or(name);
    let name = name.trim_start_matches('/');
    let relative = if name.contains('/') {
        name.to_string()
    } else {
        name.replace('.', "/")
    };
    PathBuf::from(PROC_SYS).join(relative)
}

fn object(name: &str) -> String {
    format!("sysctl {name}")
}

/// Writes `value` (`sysctl -w name=value`).
pub fn sysctl_set(name: &str, value: &str) -> Result<()> {
    fs::write(sysctl_path(name), value).map_err(|e| NetlinkError::io(object(name), &e))
}

/// Reads the value, without the trailing newline.
pub fn sysctl_get(name: &str) -> Result<String> {
    let value =
        fs::read_to_string(sysctl_path(name)).map_err(|e| NetlinkError::io(object(name), &e))?;
    Ok(value.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_slashed_and_absolute_names() {
        let want = PathBuf::from("/proc/sys/net/ipv4/ip_forward");
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), want);
        assert_eq!(sysctl_path("net/ipv4/ip_forward"), want);
        assert_eq!(sysctl_path("/proc/sys/net/ipv4/ip_forward"), want);
        assert_eq!(
            sysctl_path("net/ipv4/conf/weft.1/forwarding"),
            PathBuf::from("/proc/sys/net/ipv4/conf/weft.1/forwarding")
        );
    }

    #[test]
    fn reads_without_newline_and_names_missing_keys() {
        // Readable without root on every Linux.
        let value = sysctl_get("kernel.ostype").expect("readable");
        assert_eq!(value, "Linux");
        let err = sysctl_get("net.ipv4.wnl_no_such_key").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(
            err.to_string()
                .starts_with("sysctl net.ipv4.wnl_no_such_key"),
            "{err}"
        );
    }
}

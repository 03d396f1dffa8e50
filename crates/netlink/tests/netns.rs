//! Named namespaces (root): made and removed the way iproute2 does it, and entered only by
//! dedicated threads.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{ip_in, require_root, run, run_ok, unique_name, Namespaces};
use weft_netlink::{netns, run_in_netns, sysctl_get, sysctl_set};

#[test]
fn named_netns_is_what_ip_netns_makes() {
    if !require_root("named_netns_is_what_ip_netns_makes") {
        return;
    }
    let ns = Namespaces::create(1);
    let name = ns.name(0);
    assert_eq!(
        ns.path(0),
        std::path::PathBuf::from("/run/netns").join(name)
    );
    assert!(netns::exists(name));
    assert!(netns::list().expect("list").iter().any(|n| n == name));

    let listed = run_ok("ip", &["netns", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name)),
        "{listed}"
    );
    // A fresh namespace: loopback only, down.
    let links = ip_in(name, &["-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");
    let exec = run_ok("ip", &["netns", "exec", name, "ip", "-o", "link", "show"]);
    assert_eq!(exec, links);

    let again = netns::create(name).unwrap_err();
    assert!(again.is_exists(), "{again}");
    assert_eq!(again.to_string(), format!("netns {name:?}: File exists"));
}

#[test]
fn delete_removes_it_everywhere() {
    if !require_root("delete_removes_it_everywhere") {
        return;
    }
    let name = unique_name();
    netns::create(&name).expect("create");
    netns::delete(&name).expect("delete");
    assert!(!netns::exists(&name));
    let listed = run_ok("ip", &["netns", "list"]);
    assert!(!listed.contains(&name), "{listed}");
    assert!(!run("ip", &["-n", &name, "link"]).status.success());
    let missing = netns::delete(&name).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[test]
fn a_bare_mount_target_left_by_a_crash_is_no_namespace_and_is_reused() {
    if !require_root("a_bare_mount_target_left_by_a_crash_is_no_namespace_and_is_reused") {
        return;
    }
    let name = unique_name();
    // What a process killed between creating the mount target and mounting leaves behind.
    std::fs::create_dir_all("/run/netns").expect("mkdir /run/netns");
    std::fs::write(netns::path(&name), b"").expect("bare file");
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status();
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = Remove(netns::path(&name));

    assert!(!netns::exists(&name), "a bare file is not a namespace");
    let path = netns::create(&name).expect("create over the leftover");
    assert!(netns::exists(&name));
    let links = ip_in(&name, &["-o", "link", "show"]);
    assert!(links.contains("lo:"), "{links}");
    assert_eq!(path, netns::path(&name));
    netns::delete(&name).expect("delete");
}

#[test]
fn a_namespace_made_by_iproute2_is_usable_here() {
    if !require_root("a_namespace_made_by_iproute2_is_usable_here") {
        return;
    }
    let name = unique_name();
    run_ok("ip", &["netns", "add", &name]);
    let inside = run_in_netns(netns::path(&name), || {
        std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
    });
    let outer = std::fs::metadata(netns::path(&name)).map(|m| m.ino());
    netns::delete(&name).expect("delete what ip made");
    assert_eq!(
        inside.expect("entered").expect("stat"),
        outer.expect("stat")
    );
}

#[test]
fn run_in_netns_acts_inside_only() {
    if !require_root("run_in_netns_acts_inside_only") {
        return;
    }
    let ns = Namespaces::create(1);
    let host_before = sysctl_get("net.ipv4.ip_forward").expect("host value");
    let inside = run_in_netns(ns.path(0), || {
        sysctl_set("net/ipv4/ip_forward", "1")?;
        sysctl_get("net.ipv4.ip_forward")
    })
    .expect("entered")
    .expect("sysctl inside");
    assert_eq!(inside, "1");
    let seen_by_ip = run_ok(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(0),
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    );
    assert_eq!(seen_by_ip.trim(), "1");
    // The caller's thread (and so the host) never moved.
    assert_eq!(
        sysctl_get("net.ipv4.ip_forward").expect("host value"),
        host_before
    );

    let panicked = std::panic::catch_unwind(|| run_in_netns(ns.path(0), || panic!("inside")));
    assert!(panicked.is_err(), "a panic inside comes back out");
}

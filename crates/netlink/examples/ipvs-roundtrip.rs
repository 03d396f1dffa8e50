//! Our IPVS codec against a real kernel and ipvsadm, both ways (root, a kernel with IPVS:
//! run it in the VM lab):
//!
//! ```text
//! cargo build -p weft-netlink --example ipvs-roundtrip
//! scripts/vm-lab run -- target/debug/examples/ipvs-roundtrip
//! ```
//!
//! 1. ipvsadm programs a table; our dump must read back what it was told.
//! 2. our codec programs a table; `ipvsadm -Sn` must print what we asked for.
//!
//! Works in a throwaway namespace (`wipvs-rt`), so the host's own table is not touched.
//! Exits non-zero on any difference.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, ExitCode};

use weft_netlink::ipvs::{
    DestKey, Destination, Forward, IpvsOp, IpvsSocket, Protocol, Service, ServiceKey,
    SVC_F_PERSISTENT,
};
use weft_netlink::netns;

const NS: &str = "wipvs-rt";

fn ipvsadm(args: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", NS, "ipvsadm"])
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("ipvsadm {args}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ipvsadm {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// IPVS refuses real servers it has no unicast route to (EINVAL): give the fresh
/// namespace one for 10/8, as a node has for its pod network.
fn add_route() -> Result<(), String> {
    for args in [
        "link add rt0 type dummy",
        "addr add 10.255.255.1/8 dev rt0",
        "link set rt0 up",
    ] {
        let st = Command::new("ip")
            .args(["-n", NS])
            .args(args.split_whitespace())
            .status()
            .map_err(|e| format!("ip {args}: {e}"))?;
        if !st.success() {
            return Err(format!("ip -n {NS} {args} failed"));
        }
    }
    Ok(())
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("address"))
}

fn check(what: &str, ok: bool, detail: impl std::fmt::Debug, failures: &mut u32) {
    if ok {
        println!("ok    {what}");
    } else {
        println!("FAIL  {what}: {detail:?}");
        *failures += 1;
    }
}

fn run(failures: &mut u32) -> Result<(), String> {
    let path = netns::create(NS).map_err(|e| e.to_string())?;
    add_route()?;
    let mut s = IpvsSocket::open_in_netns(&path).map_err(|e| e.to_string())?;
    let info = s.info().map_err(|e| e.to_string())?;
    println!(
        "IPVS family {} version {}.{}.{} conn table {}",
        s.family(),
        info.version >> 16,
        (info.version >> 8) & 0xff,
        info.version & 0xff,
        info.conn_table_size
    );

    // 1. ipvsadm → our dump.
    ipvsadm("-A -t 10.96.0.1:80 -s rr -p 600")?;
    ipvsadm("-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1")?;
    ipvsadm("-a -t 10.96.0.1:80 -r 10.244.1.3:8080 -m -w 3 -x 100 -y 10")?;
    ipvsadm("-A -u 10.96.0.10:53 -s sh")?;
    ipvsadm("-a -u 10.96.0.10:53 -r 10.244.2.2:53 -m -w 0")?;
    ipvsadm("-A -f 7 -s wlc")?;
    let services = s.services().map_err(|e| e.to_string())?;
    println!("dump: {services:#?}");
    let tcp = ServiceKey::addr(Protocol::Tcp, v4("10.96.0.1"), 80);
    let udp = ServiceKey::addr(Protocol::Udp, v4("10.96.0.10"), 53);
    let fw = ServiceKey::Fwmark {
        mark: 7,
        ipv6: false,
    };
    let find = |k: &ServiceKey| services.iter().find(|x| x.key == *k).cloned();
    check(
        "tcp service: rr, persistent 600",
        find(&tcp).is_some_and(|x| {
            x.scheduler == "rr" && x.flags & SVC_F_PERSISTENT != 0 && x.timeout == 600
        }),
        find(&tcp),
        failures,
    );
    check(
        "udp service: sh, not persistent",
        find(&udp).is_some_and(|x| x.scheduler == "sh" && x.flags & SVC_F_PERSISTENT == 0),
        find(&udp),
        failures,
    );
    check(
        "fwmark service",
        find(&fw).is_some_and(|x| x.scheduler == "wlc"),
        find(&fw),
        failures,
    );
    let dests = s.destinations(&tcp).map_err(|e| e.to_string())?;
    println!("dests of {tcp}: {dests:#?}");
    let d3 = dests.iter().find(|d| d.addr == v4("10.244.1.3"));
    check(
        "dest 10.244.1.3: masq, weight 3, thresholds 100/10",
        d3.is_some_and(|d| {
            d.port == 8080
                && d.forward == Forward::Masq
                && d.weight == 3
                && d.upper_threshold == 100
                && d.lower_threshold == 10
        }),
        d3,
        failures,
    );
    check("two dests", dests.len() == 2, dests.len(), failures);
    let udp_dests = s.destinations(&udp).map_err(|e| e.to_string())?;
    check(
        "weight 0 dest",
        udp_dests.len() == 1 && udp_dests[0].weight == 0,
        &udp_dests,
        failures,
    );
    let missing = s.destinations(&ServiceKey::addr(Protocol::Tcp, v4("10.96.9.9"), 1));
    check(
        "dests of a missing service: an empty dump",
        missing.as_ref().is_ok_and(|d| d.is_empty()),
        missing.map_err(|e| e.to_string()),
        failures,
    );

    // 2. our codec → ipvsadm.
    let fails = s.apply(&[IpvsOp::Flush]).map_err(|e| e.to_string())?;
    check("flush", fails.is_empty(), &fails, failures);
    let svc = ServiceKey::addr(Protocol::Tcp, v4("10.96.0.20"), 443);
    let ops = vec![
        IpvsOp::NewService(Service::new(svc, "wrr").persistent(30)),
        IpvsOp::NewDest(svc, Destination::masq(v4("10.244.3.2"), 8443, 1)),
        IpvsOp::NewDest(svc, Destination::masq(v4("10.244.3.3"), 8443, 5)),
        IpvsOp::NewDest(svc, Destination::masq(v4("10.244.3.4"), 8443, 1)),
        // Refused: the service exists (EEXIST), and one for a missing service (ESRCH).
        IpvsOp::NewService(Service::new(svc, "rr")),
        IpvsOp::NewDest(
            ServiceKey::addr(Protocol::Tcp, v4("10.96.9.9"), 1),
            Destination::masq(v4("10.244.3.2"), 1, 1),
        ),
        IpvsOp::SetDest(svc, Destination::masq(v4("10.244.3.4"), 8443, 0)),
        IpvsOp::DelDest(
            svc,
            DestKey {
                addr: v4("10.244.3.2"),
                port: 8443,
            },
        ),
        IpvsOp::NewService(Service::new(
            ServiceKey::addr(Protocol::Sctp, v4("10.96.0.21"), 9000),
            "rr",
        )),
    ];
    let fails = s.apply(&ops).map_err(|e| e.to_string())?;
    let got: Vec<(usize, Option<i32>)> = fails.iter().map(|f| (f.index, f.error.errno())).collect();
    for f in &fails {
        println!("refused as expected? #{} {}", f.index, f.error);
    }
    check(
        "errors mapped to their ops: #4 EEXIST, #5 ESRCH",
        got.iter().take(2).copied().collect::<Vec<_>>() == vec![(4, Some(17)), (5, Some(3))],
        &got,
        failures,
    );
    let saved = ipvsadm("-Sn")?;
    println!("ipvsadm -Sn:\n{saved}");
    let want = [
        "-A -t 10.96.0.20:443 -s wrr -p 30",
        "-a -t 10.96.0.20:443 -r 10.244.3.3:8443 -m -w 5",
        "-a -t 10.96.0.20:443 -r 10.244.3.4:8443 -m -w 0",
    ];
    for line in want {
        check(
            &format!("ipvsadm shows {line:?}"),
            saved.lines().any(|l| l.trim() == line),
            (),
            failures,
        );
    }
    check(
        "deleted dest is gone",
        !saved.contains("10.244.3.2"),
        (),
        failures,
    );
    check(
        "sctp service (ip_vs built with SCTP)",
        saved.contains("--sctp-service 10.96.0.21:9000") || fails.len() == 3,
        (),
        failures,
    );
    let listing = ipvsadm("-Ln")?;
    println!("ipvsadm -Ln:\n{listing}");
    Ok(())
}

fn main() -> ExitCode {
    let mut failures = 0;
    let result = run(&mut failures);
    let _ = netns::delete(NS);
    match result {
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
        Ok(()) if failures > 0 => {
            println!("{failures} check(s) failed");
            ExitCode::FAILURE
        }
        Ok(()) => {
            println!("ipvs round trip: all checks passed");
            ExitCode::SUCCESS
        }
    }
}

//! IPVS mode's nftables table in a throwaway namespace (root; this kernel has nftables but
//! no IPVS, so only the table is tested here — the IPVS side runs in the VM lab).

use weft_netlink::netns;
use weft_proxy::ipvs::sets::{base_script, element_script, Kind};
use weft_proxy::ipvs::{HostOps, KernelHost};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

#[tokio::test]
async fn the_table_applies_reapplies_and_reads_back() {
    if !nix_is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let ns = Ns(format!("wipvs-{}", std::process::id()));
    netns::create(&ns.0).expect("netns");
    let mut host = KernelHost::new(Some(ns.0.clone()));
    assert_eq!(host.nft_elements().await.unwrap(), None);

    let elements = vec![
        (Kind::ClusterIps, "10.96.0.1 . tcp . 80".to_string()),
        (Kind::ClusterIps, "10.96.0.2 . sctp . 9000".to_string()),
        (Kind::ClusterVips, "10.96.0.1".to_string()),
        (Kind::NodePorts, "udp . 30053".to_string()),
        (Kind::NodePortsLocal, "udp . 30053".to_string()),
        (Kind::NodeIps, "192.168.56.11".to_string()),
        (
            Kind::Hairpin,
            "10.244.1.2 . 10.244.1.2 . tcp . 8080".to_string(),
        ),
    ];
    let cidr = Some("10.244.0.0/16".parse().unwrap());
    let mut script = base_script(cidr);
    script.push_str(&element_script(&elements, &[]));
    host.nft_apply(script).await.expect("first apply");
    let got = host.nft_elements().await.unwrap().expect("table");
    assert_eq!(got, elements.iter().cloned().collect());

    // A restart re-declares the fixed part: elements stay.
    host.nft_apply(base_script(cidr)).await.expect("re-apply");
    let del = vec![elements[1].clone()];
    host.nft_apply(element_script(&[], &del))
        .await
        .expect("delete");
    let got = host.nft_elements().await.unwrap().expect("table");
    assert_eq!(got.len(), elements.len() - 1);

    host.nft_delete_table().await.unwrap();
    host.nft_delete_table()
        .await
        .expect("deleting twice is fine");
    assert_eq!(host.nft_elements().await.unwrap(), None);
}

/// The input filter: a ClusterIP answers only on its Services' ports, though a node
/// process listens on all addresses (kube-ipvs0 makes ClusterIPs local). No IPVS here: the
/// ClusterIP sits on lo, and the listeners stand in for any node process.
#[tokio::test]
async fn a_cluster_ip_answers_only_on_its_service_ports() {
    if !nix_is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let ns = Ns(format!("wipvsf-{}", std::process::id()));
    netns::create(&ns.0).expect("netns");
    for args in [
        ["link", "set", "lo", "up"].as_slice(),
        &["addr", "add", "10.96.0.1/32", "dev", "lo"],
    ] {
        let ok = std::process::Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .status()
            .expect("ip");
        assert!(ok.success(), "ip {args:?}");
    }
    let mut host = KernelHost::new(Some(ns.0.clone()));
    let elements = vec![
        (Kind::ClusterIps, "10.96.0.1 . tcp . 80".to_string()),
        (Kind::ClusterVips, "10.96.0.1".to_string()),
    ];
    let mut script = base_script(None);
    script.push_str(&element_script(&elements, &[]));
    host.nft_apply(script).await.expect("apply");

    let path = netns::path(&ns.0);
    let outcome = weft_netlink::run_in_netns(&path, || {
        use std::net::{TcpListener, TcpStream};
        use std::time::Duration;
        let _service = TcpListener::bind("0.0.0.0:80").expect("listen 80");
        let _other = TcpListener::bind("0.0.0.0:2222").expect("listen 2222");
        let connect = |port: u16| {
            let addr = format!("10.96.0.1:{port}").parse().unwrap();
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ())
        };
        // 127.0.0.1 is not a ClusterIP: the filter leaves it alone.
        let loopback = TcpStream::connect("127.0.0.1:2222").map(|_| ());
        (connect(80), connect(2222), loopback)
    })
    .expect("in the netns");
    assert!(outcome.0.is_ok(), "the Service's port: {:?}", outcome.0);
    let refused = outcome
        .1
        .expect_err("another port of the ClusterIP must be refused");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(outcome.2.is_ok(), "loopback: {:?}", outcome.2);
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

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

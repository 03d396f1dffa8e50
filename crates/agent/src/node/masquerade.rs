//! Masquerade for traffic from pods leaving the cluster CIDR, and forwarding for the
//! cluster CIDR, in one nftables table of our own (`ip weft-node`). Pod-to-pod traffic is
//! never NATed. The table is fixed-size, so it is replaced whole, atomically, and only when
//! it differs from what the kernel holds; established connections live in conntrack and
//! are unaffected.

use ipnet::Ipv4Net;

use super::NodeError;

pub const TABLE: &str = "weft-node";

pub fn ruleset(cluster_cidr: Ipv4Net) -> String {
    format!(
        "table ip {TABLE} {{
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr {cluster_cidr} ip daddr != {cluster_cidr} masquerade
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		ip saddr {cluster_cidr} accept
		ip daddr {cluster_cidr} accept
	}}
}}
"
    )
}

async fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, NodeError> {
    weft_netlink::nft::nft(None, args, stdin)
        .await
        .map_err(|e| NodeError::Network(e.to_string()))
}

/// Rule lines of a listed table, without handles or whitespace differences.
fn normalized(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

pub async fn ensure(cluster_cidr: Ipv4Net) -> Result<(), NodeError> {
    let want = ruleset(cluster_cidr);
    if let Ok(current) = nft(&["list", "table", "ip", TABLE], None).await {
        if normalized(&current) == normalized(&want) {
            return Ok(());
        }
    }
    // One transaction: create-if-missing, delete, recreate. Nothing is ever half-applied.
    let script = format!("table ip {TABLE}\ndelete table ip {TABLE}\n{want}");
    nft(&["-f", "-"], Some(&script)).await?;
    tracing::info!(table = TABLE, %cluster_cidr, "masquerade rules installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_masquerades_only_traffic_leaving_the_cluster() {
        let r = ruleset("10.244.0.0/16".parse().unwrap());
        assert!(r.contains("ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade"));
        assert_eq!(normalized(&r), normalized(&r.replace('\t', "    ")));
    }
}

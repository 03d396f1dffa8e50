//! Reading our table back from the kernel (`nft -j list table`) into [`Objects`].

use std::collections::BTreeSet;

use serde_json::Value;
use weft_netlink::nft::NftSession;

use super::render::{
    CLUSTER_BACKENDS, HAIRPIN, HASH_PREFIX, NODEPORT_BACKENDS, NODEPORT_IPS, SERVICE_IPS,
    SERVICE_NODEPORTS, TABLE,
};
use super::script::Objects;
use crate::{ProxyError, Result};

/// True for nft's "the table is not there" error.
pub fn is_missing(err: &ProxyError) -> bool {
    matches!(err, ProxyError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
}

/// What our table holds; `None` when it does not exist.
pub async fn read(nft: &NftSession) -> Result<Option<Objects>> {
    list_json(nft, TABLE)
        .await?
        .map(|json| parse(&json))
        .transpose()
}

/// `nft -j list table ip TABLE`; None when the table does not exist.
pub async fn list_json(nft: &NftSession, table: &str) -> Result<Option<String>> {
    match nft.run_json(&format!("list table ip {table}")).await {
        Ok(json) => Ok(Some(json)),
        Err(e) => missing_is_none(e.into()),
    }
}

/// Deletes table `ip TABLE`; one already gone is fine.
pub async fn delete_table(nft: &NftSession, table: &str) -> Result<()> {
    match nft.run(&format!("delete table ip {table}")).await {
        Ok(_) => Ok(()),
        Err(e) => missing_is_none(e.into()).map(|_| ()),
    }
}

fn missing_is_none(e: ProxyError) -> Result<Option<String>> {
    if is_missing(&e) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The items of an `nft -j list …` document.
pub(crate) fn items(json: &str) -> Result<Vec<Value>> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| ProxyError::Parse(format!("not JSON: {e}")))?;
    match doc {
        Value::Object(mut o) => match o.remove("nftables") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(ProxyError::Parse("no \"nftables\" array".into())),
        },
        _ => Err(ProxyError::Parse("no \"nftables\" array".into())),
    }
}

/// Parses `nft -j list table ip weft-proxy`.
pub fn parse(json: &str) -> Result<Objects> {
    let items = items(json)?;
    let mut objects = Objects {
        nodeport_ips: Some(BTreeSet::new()),
        hairpin: Some(BTreeSet::new()),
        ..Default::default()
    };
    for item in &items {
        if let Some(chain) = item.get("chain") {
            let name = str_field(chain, "name")?;
            // A chain without our hash comment is rewritten on the next sync.
            objects.chains.entry(name).or_default();
        } else if let Some(rule) = item.get("rule") {
            let chain = str_field(rule, "chain")?;
            if let Some(hash) = rule
                .get("comment")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix(HASH_PREFIX))
            {
                objects.chains.insert(chain, hash.to_string());
            }
        } else if let Some(map) = item.get("map") {
            let name = str_field(map, "name")?;
            let target = match name.as_str() {
                SERVICE_IPS => &mut objects.service_ips,
                SERVICE_NODEPORTS => &mut objects.nodeports,
                n if n.starts_with(CLUSTER_BACKENDS) || n.starts_with(NODEPORT_BACKENDS) => {
                    objects.backends.entry(name.clone()).or_default()
                }
                _ => continue,
            };
            for elem in elems(map) {
                let (key, value) = match elem.as_array().map(Vec::as_slice) {
                    Some([k, v]) => (k, v),
                    _ => return Err(ProxyError::Parse(format!("map {name}: element {elem}"))),
                };
                let value = verdict_text(value)
                    .or_else(|| key_text(value).ok())
                    .ok_or_else(|| ProxyError::Parse(format!("map {name}: value {value}")))?;
                target.insert(key_text(key)?, value);
            }
        } else if let Some(set) = item.get("set") {
            let name = str_field(set, "name")?;
            if name == NODEPORT_IPS || name == HAIRPIN {
                let ips = if name == HAIRPIN {
                    objects.hairpin.get_or_insert_with(BTreeSet::new)
                } else {
                    objects.nodeport_ips.get_or_insert_with(BTreeSet::new)
                };
                for elem in elems(set) {
                    // The hairpin set holds `IP . IP` pairs: the first part is the address.
                    let first = elem.get("concat").and_then(|c| c.get(0)).unwrap_or(elem);
                    let ip = first
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| ProxyError::Parse(format!("set {name}: element {elem}")))?;
                    ips.insert(ip);
                }
            } else if name.starts_with("affinity-") {
                let timeout = set
                    .get("timeout")
                    .and_then(Value::as_u64)
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(0);
                objects.sets.insert(name, timeout);
            }
        }
    }
    Ok(objects)
}

/// The elements of a set or map in a listing (none when it has none).
fn elems(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("elem")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A verdict as our scripts spell it (`goto CHAIN`, `jump CHAIN`, `drop`, `accept`).
fn verdict_text(v: &Value) -> Option<String> {
    for kind in ["goto", "jump"] {
        if let Some(chain) = v
            .get(kind)
            .and_then(|j| j.get("target"))
            .and_then(Value::as_str)
        {
            return Some(format!("{kind} {chain}"));
        }
    }
    ["drop", "accept"]
        .into_iter()
        .find(|kind| v.get(kind).is_some())
        .map(str::to_string)
}

fn str_field(v: &Value, field: &str) -> Result<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProxyError::Parse(format!("no {field:?} in {v}")))
}

/// A map key as our scripts spell it: `10.96.0.1 . tcp . 80`.
pub(crate) fn key_text(key: &Value) -> Result<String> {
    let parts: Vec<&Value> = match key.get("concat").and_then(Value::as_array) {
        Some(parts) => parts.iter().collect(),
        None => vec![key],
    };
    let words: Result<Vec<String>> = parts
        .into_iter()
        .map(|p| match p {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(ProxyError::Parse(format!("map key part {other}"))),
        })
        .collect();
    Ok(words?.join(" . "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing() {
        let json = r#"{"nftables": [
          {"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "ip", "name": "weft-proxy", "handle": 1}},
          {"map": {"family": "ip", "name": "service-ips", "table": "weft-proxy",
            "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict",
            "elem": [[{"concat": ["10.96.0.1", "tcp", 80]}, {"goto": {"target": "service-a"}}],
                     [{"concat": ["10.96.0.2", "tcp", 80]}, {"drop": null}]]}},
          {"map": {"family": "ip", "name": "cluster-backends-tcp", "table": "weft-proxy",
            "elem": [[{"concat": ["10.96.0.1", 80, 1]}, {"concat": ["10.244.1.5", 8080]}]]}},
          {"set": {"family": "ip", "name": "hairpin", "table": "weft-proxy",
            "elem": [{"concat": ["10.244.1.5", "10.244.1.5"]}]}},
          {"map": {"family": "ip", "name": "service-nodeports", "table": "weft-proxy",
            "type": ["inet_proto", "inet_service"], "map": "verdict",
            "elem": [[{"concat": ["udp", 30053]}, {"goto": {"target": "external-a"}}]]}},
          {"set": {"family": "ip", "name": "nodeport-ips", "table": "weft-proxy",
            "type": "ipv4_addr", "elem": ["192.168.56.11"]}},
          {"set": {"family": "ip", "name": "affinity-x", "table": "weft-proxy",
            "type": "ipv4_addr", "flags": ["timeout"], "timeout": 60}},
          {"chain": {"family": "ip", "table": "weft-proxy", "name": "service-a", "handle": 3}},
          {"chain": {"family": "ip", "table": "weft-proxy", "name": "stray", "handle": 4}},
          {"rule": {"family": "ip", "table": "weft-proxy", "chain": "service-a", "handle": 5,
            "comment": "weft:00ff", "expr": []}}
        ]}"#;
        let o = parse(json).expect("parses");
        assert_eq!(o.service_ips["10.96.0.1 . tcp . 80"], "goto service-a");
        assert_eq!(o.service_ips["10.96.0.2 . tcp . 80"], "drop");
        assert_eq!(o.nodeports["udp . 30053"], "goto external-a");
        assert_eq!(
            o.backends["cluster-backends-tcp"]["10.96.0.1 . 80 . 1"],
            "10.244.1.5 . 8080"
        );
        assert_eq!(
            o.hairpin,
            Some(["10.244.1.5".parse().unwrap()].into_iter().collect())
        );
        assert_eq!(o.sets["affinity-x"], 60);
        assert_eq!(o.chains["service-a"], "00ff");
        assert_eq!(o.chains["stray"], "");
        assert_eq!(
            o.nodeport_ips,
            Some(["192.168.56.11".parse().unwrap()].into_iter().collect())
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("nope").is_err());
        assert!(parse("{}").is_err());
        let bad = r#"{"nftables": [{"map": {"name": "service-ips", "elem": [[1]]}}]}"#;
        assert!(parse(bad).is_err());
    }
}

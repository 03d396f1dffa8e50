//! One `nft -f -` transaction taking the kernel from what it holds ([`Objects`]) to what
//! is wanted ([`Rendered`]): only differing chains, sets and map elements are written.
//! The table itself is never flushed, so nothing unchanged is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::render::{
    backends_map, is_pick_chain, Rendered, CLUSTER_BACKENDS, HAIRPIN, HASH_PREFIX,
    NODEPORT_BACKENDS, NODEPORT_IPS, PROTOCOLS, SERVICE_IPS, SERVICE_NODEPORTS, TABLE,
};

/// What the kernel holds, reduced to what a diff needs: chains by content hash (from the
/// comment on their last rule), sets, and map elements (map values as nft spells them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects {
    pub chains: BTreeMap<String, String>,
    pub sets: BTreeMap<String, u32>,
    pub service_ips: BTreeMap<String, String>,
    pub nodeports: BTreeMap<String, String>,
    pub backends: BTreeMap<String, BTreeMap<String, String>>,
    /// None: not covered (leave the kernel's as it is).
    pub nodeport_ips: Option<BTreeSet<Ipv4Addr>>,
    /// None: not covered.
    pub hairpin: Option<BTreeSet<Ipv4Addr>>,
}

impl Rendered {
    /// What the kernel holds once this rendering is applied.
    pub fn objects(&self) -> Objects {
        Objects {
            chains: self
                .chains
                .iter()
                .map(|(n, c)| (n.clone(), c.hash()))
                .collect(),
            sets: self.sets.clone(),
            service_ips: self.service_ips.clone(),
            nodeports: self.nodeports.clone(),
            backends: self.backends.clone(),
            nodeport_ips: self.nodeport_ips.clone(),
            hairpin: self.hairpin.clone(),
        }
    }
}

/// A generated transaction and what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// Transactions to apply before `text`, in order: only backend elements under keys the
    /// kernel does not hold yet and new hairpin pairs (see [`STAGE_ELEMENTS`]). Usually none.
    pub staged: Vec<String>,
    /// The transaction that switches traffic, atomically.
    pub text: String,
    pub chains_added: usize,
    pub chains_rewritten: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
}

impl Script {
    /// Every transaction, in the order they are applied.
    pub fn transactions(&self) -> impl Iterator<Item = &str> {
        self.staged
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.text.as_str()))
            .filter(|t| !t.is_empty())
    }

    /// The length of all transactions together.
    pub fn bytes(&self) -> usize {
        self.transactions().map(str::len).sum()
    }
}

/// Elements per `add element` statement: large enough that nft parses few statements,
/// small enough to keep lines readable in an error message.
const ELEMENTS_PER_LINE: usize = 1000;

/// libnftables holds ~2 KB per element while it parses and commits a transaction: ~450 MB
/// for the 210,000 elements (hairpin pairs included) of a first sync at 10,000 Services × 10
/// endpoints. A backend element under a key the kernel does not hold yet, or a new hairpin
/// pair, changes nothing until a verdict leads to it, so when there are more of those than
/// this they go ahead in transactions of this many, and the transaction that switches
/// traffic (verdicts, changed backends, chains) stays one.
pub const STAGE_ELEMENTS: usize = 20_000;

/// The transaction from `have` to `want`. With `header` (a full sync), the table, its maps
/// and sets are declared first (`add` is a no-op for existing ones), as needed when the
/// table may not exist yet, and shared pick chains no longer used are deleted; without it
/// (an incremental sync, which sees only some Services) pick chains are never deleted.
pub fn generate(have: &Objects, want: &Rendered, header: bool) -> Script {
    let mut s = Script::default();
    let mut out = String::new();
    let t = format!("ip {TABLE}");
    let empty = BTreeMap::new();
    let no_hairpin = BTreeSet::new();
    let have_hairpin = have.hairpin.as_ref().unwrap_or(&no_hairpin);
    // What may go ahead: backend elements under new keys, and new hairpin pairs (they only
    // masquerade DNATed traffic from an endpoint to itself, which needs a verdict first).
    let new_backends = || {
        want.backends.iter().flat_map(|(map, want_map)| {
            let have_map = have.backends.get(map).unwrap_or(&empty);
            want_map
                .iter()
                .filter(move |(k, _)| !have_map.contains_key(*k))
                .map(move |kv| (map.as_str(), kv))
        })
    };
    let new_hairpin = || want.hairpin.iter().flat_map(|w| w.difference(have_hairpin));
    let stage = new_backends().count() + new_hairpin().count() > STAGE_ELEMENTS;
    if header {
        let _ = writeln!(out, "add table {t}");
        let _ = writeln!(
            out,
            "add map {t} {SERVICE_IPS} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"
        );
        let _ = writeln!(
            out,
            "add map {t} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}"
        );
        let _ = writeln!(out, "add set {t} {NODEPORT_IPS} {{ type ipv4_addr ; }}");
        for proto in PROTOCOLS {
            let cluster = backends_map(CLUSTER_BACKENDS, proto);
            let nodeport = backends_map(NODEPORT_BACKENDS, proto);
            let _ = writeln!(
                out,
                "add map {t} {cluster} {{ typeof ip daddr . {proto} dport . numgen random mod 1 : ip daddr . {proto} dport ; }}"
            );
            let _ = writeln!(
                out,
                "add map {t} {nodeport} {{ typeof {proto} dport . numgen random mod 1 : ip daddr . {proto} dport ; }}"
            );
        }
        let _ = writeln!(
            out,
            "add set {t} {HAIRPIN} {{ type ipv4_addr . ipv4_addr ; }}"
        );
    }

    if stage {
        // The maps and sets must exist before the staged elements go in.
        let staged: Vec<(&str, String)> = new_backends()
            .map(|(map, (k, v))| (map, format!("{k} : {v}")))
            .chain(new_hairpin().map(|ip| (HAIRPIN, hairpin_pair(ip))))
            .collect();
        s.elements_added += staged.len();
        for chunk in staged.chunks(STAGE_ELEMENTS) {
            let mut tx = if s.staged.is_empty() {
                out.clone()
            } else {
                String::new()
            };
            for same in chunk.chunk_by(|a, b| a.0 == b.0) {
                let items: Vec<&str> = same.iter().map(|(_, e)| e.as_str()).collect();
                batch(&mut tx, &format!("add element {t} {}", same[0].0), &items);
            }
            s.staged.push(tx);
        }
    }

    // Sets and chains first, so rules and elements below may refer to them.
    for (name, timeout) in &want.sets {
        // Only existence matters: the timeout that counts is the one each `update` rule
        // gives its elements (see render), so a set is never replaced.
        if !have.sets.contains_key(name) {
            let _ = writeln!(out, "{}", add_set(&t, name, *timeout));
        }
    }
    let mut rules = String::new();
    for (name, chain) in &want.chains {
        let hash = chain.hash();
        match have.chains.get(name) {
            Some(h) if *h == hash => continue,
            Some(_) => {
                s.chains_rewritten += 1;
                let _ = writeln!(out, "flush chain {t} {name}");
            }
            None => {
                s.chains_added += 1;
                match chain.hook {
                    Some(hook) => {
                        let _ = writeln!(out, "add chain {t} {name} {{ {hook} }}");
                    }
                    None => {
                        let _ = writeln!(out, "add chain {t} {name}");
                    }
                }
            }
        }
        let last = chain.rules.len().saturating_sub(1);
        for (i, rule) in chain.rules.iter().enumerate() {
            let _ = write!(rules, "add rule {t} {name} {rule}");
            if i == last {
                let _ = write!(rules, " comment \"{HASH_PREFIX}{hash}\"");
            }
            rules.push('\n');
        }
    }
    out.push_str(&rules);

    // Backends before the verdicts that lead to them.
    let maps: BTreeSet<&String> = have.backends.keys().chain(want.backends.keys()).collect();
    for map in maps {
        let have_map = have.backends.get(map).unwrap_or(&empty);
        let want_map = want.backends.get(map).unwrap_or(&empty);
        elements(&mut out, &mut s, &t, map, have_map, want_map, stage);
    }
    for (map, have_map, want_map) in [
        (SERVICE_IPS, &have.service_ips, &want.service_ips),
        (SERVICE_NODEPORTS, &have.nodeports, &want.nodeports),
    ] {
        elements(&mut out, &mut s, &t, map, have_map, want_map, false);
    }
    set_elements(
        &mut out,
        &mut s,
        &format!("{t} {NODEPORT_IPS}"),
        have.nodeport_ips.as_ref(),
        want.nodeport_ips.as_ref(),
        |ip| ip.to_string(),
        false,
    );
    set_elements(
        &mut out,
        &mut s,
        &format!("{t} {HAIRPIN}"),
        have.hairpin.as_ref(),
        want.hairpin.as_ref(),
        hairpin_pair,
        stage,
    );

    // Removed chains last, once nothing refers to them: flush them all first, since they
    // may refer to each other (a service chain to its endpoint chains).
    let gone: Vec<&String> = have
        .chains
        .keys()
        .filter(|n| !want.chains.contains_key(*n) && (header || !is_pick_chain(n)))
        .collect();
    for name in &gone {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    for name in &gone {
        s.chains_deleted += 1;
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    for name in have.sets.keys().filter(|n| !want.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete set {t} {name}");
    }
    // Everything already as wanted: no transaction at all (not even the header's
    // no-op declarations), so a restarted proxy leaves the kernel alone.
    let set_changes = want.sets.keys().any(|n| !have.sets.contains_key(n))
        || have.sets.keys().any(|n| !want.sets.contains_key(n));
    if s.chains_added
        + s.chains_rewritten
        + s.chains_deleted
        + s.elements_added
        + s.elements_deleted
        == 0
        && !set_changes
    {
        out.clear();
    }
    s.text = out;
    s
}

fn hairpin_pair(ip: &Ipv4Addr) -> String {
    format!("{ip} . {ip}")
}

fn add_set(t: &str, name: &str, timeout: u32) -> String {
    format!(
        "add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
    )
}

/// Set element changes from `have` to `want`; nothing when `want` is None (not covered).
/// With `staged`, additions are left out (they went ahead in [`Script::staged`]).
fn set_elements(
    out: &mut String,
    s: &mut Script,
    set: &str,
    have: Option<&BTreeSet<Ipv4Addr>>,
    want: Option<&BTreeSet<Ipv4Addr>>,
    spell: impl Fn(&Ipv4Addr) -> String,
    staged: bool,
) {
    let Some(want) = want else { return };
    let empty = BTreeSet::new();
    let have = have.unwrap_or(&empty);
    let gone: Vec<String> = have.difference(want).map(&spell).collect();
    let new: Vec<String> = match staged {
        true => Vec::new(),
        false => want.difference(have).map(&spell).collect(),
    };
    s.elements_deleted += gone.len();
    s.elements_added += new.len();
    batch(out, &format!("delete element {set}"), &gone);
    batch(out, &format!("add element {set}"), &new);
}

/// Map element changes: a key whose value changed is deleted and added again in the same
/// transaction (an `add` of an existing key with another value fails). With `staged`, keys
/// new to the kernel are left out (they went ahead in [`Script::staged`]).
fn elements(
    out: &mut String,
    s: &mut Script,
    t: &str,
    map: &str,
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    staged: bool,
) {
    let gone: Vec<String> = have
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    let new: Vec<String> = want
        .iter()
        .filter(|(k, v)| match have.get(*k) {
            None => !staged,
            Some(old) => old != *v,
        })
        .map(|(k, v)| format!("{k} : {v}"))
        .collect();
    s.elements_deleted += gone.len();
    s.elements_added += new.len();
    batch(out, &format!("delete element {t} {map}"), &gone);
    batch(out, &format!("add element {t} {map}"), &new);
}

fn batch<S: std::borrow::Borrow<str>>(out: &mut String, command: &str, items: &[S]) {
    for chunk in items.chunks(ELEMENTS_PER_LINE) {
        let _ = writeln!(out, "{command} {{ {} }}", chunk.join(", "));
    }
}

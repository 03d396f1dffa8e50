//! The [`ServiceTable`] kept up to date one Service at a time, so that a change costs in
//! proportion to itself: rebuilding and diffing a table of 10,000 Services takes ~30 ms,
//! six times the budget for applying one change.
//!
//! Feed it informer events ([`TableBuilder::set_service`], [`TableBuilder::set_endpoints`],
//! and the deletes); [`TableBuilder::take_changes`] then recomputes only the Services that
//! were touched and returns exactly which Service ports changed, for
//! [`ProxyBackend::sync_changed`](crate::ProxyBackend::sync_changed).
//!
//! The result is always what [`ServiceTable::build`] gives for the same objects. Where a
//! local update could disagree with it (two Services claiming one ClusterIP:port or
//! NodePort, decided by name order; a Service with a problem) the builder rebuilds the
//! whole table and diffs it instead: rare, and correct.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use weft_api::core::{Endpoints, Service};

use crate::table::{
    diff, namespace, service_ports, Changes, NodeContext, Protocol, ServicePortName, ServiceTable,
    Skip, VirtualService,
};

/// `(namespace, name)` of a Service and of its Endpoints.
type Key = (String, String);

#[derive(Debug)]
pub struct TableBuilder {
    node: NodeContext,
    services: BTreeMap<Key, Service>,
    endpoints: HashMap<Key, Endpoints>,
    table: ServiceTable,
    /// The Service ports each Service put in the table.
    ports: HashMap<Key, Vec<ServicePortName>>,
    /// Who holds each ClusterIP:port and NodePort (to see clashes without a scan).
    vips: HashMap<(Ipv4Addr, Protocol, u16), Key>,
    node_ports: HashMap<(Protocol, u16), Key>,
    /// Services touched since the last [`TableBuilder::take_changes`].
    dirty: BTreeSet<Key>,
    /// Everything changed (the first call, or a forced rebuild).
    rebuild: bool,
}

fn key_of(meta: &weft_api::meta::ObjectMeta) -> Key {
    (namespace(&meta.namespace).to_string(), meta.name.clone())
}

impl TableBuilder {
    pub fn new(node: NodeContext) -> Self {
        TableBuilder {
            table: ServiceTable {
                node_addresses: crate::table::nodeport_addresses(&node),
                ..Default::default()
            },
            node,
            services: BTreeMap::new(),
            endpoints: HashMap::new(),
            ports: HashMap::new(),
            vips: HashMap::new(),
            node_ports: HashMap::new(),
            dirty: BTreeSet::new(),
            rebuild: true,
        }
    }

    /// The table as of the last [`TableBuilder::take_changes`].
    pub fn table(&self) -> &ServiceTable {
        &self.table
    }

    /// A Service was added or modified.
    pub fn set_service(&mut self, svc: Service) {
        let key = key_of(&svc.metadata);
        self.services.insert(key.clone(), svc);
        self.dirty.insert(key);
    }

    pub fn delete_service(&mut self, meta: &weft_api::meta::ObjectMeta) {
        let key = key_of(meta);
        self.services.remove(&key);
        self.dirty.insert(key);
    }

    /// Endpoints were added or modified.
    pub fn set_endpoints(&mut self, eps: Endpoints) {
        let key = key_of(&eps.metadata);
        self.endpoints.insert(key.clone(), eps);
        self.dirty.insert(key);
    }

    pub fn delete_endpoints(&mut self, meta: &weft_api::meta::ObjectMeta) {
        let key = key_of(meta);
        self.endpoints.remove(&key);
        self.dirty.insert(key);
    }

    /// Makes the next [`TableBuilder::take_changes`] rebuild and diff everything (the
    /// periodic resync: a safety net that costs nothing when all is right).
    pub fn force_rebuild(&mut self) {
        self.rebuild = true;
    }

    /// Brings the table up to date with everything fed since the last call and returns the
    /// Service ports that changed. The first call reports every Service port as added.
    pub fn take_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        if self.rebuild || !self.table.problems.is_empty() {
            return self.rebuild_all();
        }
        // Recompute each touched Service; bail out to a full rebuild at the first case a
        // local update might decide differently from ServiceTable::build.
        let mut computed = Vec::with_capacity(dirty.len());
        for key in &dirty {
            let ports = match self.services.get(key) {
                None => Vec::new(),
                Some(svc) => {
                    match service_ports(svc, self.endpoints.get(key), &self.node.node_name) {
                        Ok(ports) => ports,
                        Err(Skip::Silently) => Vec::new(),
                        Err(Skip::Problem(_)) => return self.rebuild_all(),
                    }
                }
            };
            computed.push((key, ports));
        }
        // Claims by the touched Services, after the update: none may be held by another
        // Service, nor claimed twice among them.
        let mut vips: HashMap<(Ipv4Addr, Protocol, u16), &Key> = HashMap::new();
        let mut node_ports: HashMap<(Protocol, u16), &Key> = HashMap::new();
        for (key, ports) in &computed {
            for vs in ports {
                let vip = (vs.cluster_ip, vs.protocol, vs.port);
                let clash = |holder: Option<&Key>| holder.is_some_and(|h| h != *key);
                if clash(vips.insert(vip, key))
                    || clash(self.vips.get(&vip).filter(|h| !dirty.contains(*h)))
                {
                    return self.rebuild_all();
                }
                if let Some(np) = vs.node_port {
                    if clash(node_ports.insert((vs.protocol, np), key))
                        || clash(
                            self.node_ports
                                .get(&(vs.protocol, np))
                                .filter(|h| !dirty.contains(*h)),
                        )
                    {
                        return self.rebuild_all();
                    }
                }
            }
        }

        let mut changes = Changes::default();
        for (key, ports) in computed {
            let old_names = self.ports.remove(key).unwrap_or_default();
            let mut old: BTreeMap<ServicePortName, VirtualService> = BTreeMap::new();
            for name in old_names {
                if let Some(vs) = self.table.services.remove(&name) {
                    self.unclaim(&vs);
                    old.insert(name, vs);
                }
            }
            let mut names = Vec::with_capacity(ports.len());
            for vs in ports {
                self.claim(&vs, key);
                match old.remove(&vs.name) {
                    None => changes.added.push(vs.name.clone()),
                    Some(prev) if prev != vs => changes.changed.push(vs.name.clone()),
                    Some(_) => {}
                }
                names.push(vs.name.clone());
                self.table.services.insert(vs.name.clone(), vs);
            }
            changes.removed.extend(old.into_keys());
            if !names.is_empty() {
                self.ports.insert(key.clone(), names);
            }
        }
        changes
    }

    fn claim(&mut self, vs: &VirtualService, key: &Key) {
        self.vips
            .insert((vs.cluster_ip, vs.protocol, vs.port), key.clone());
        if let Some(np) = vs.node_port {
            self.node_ports.insert((vs.protocol, np), key.clone());
        }
    }

    fn unclaim(&mut self, vs: &VirtualService) {
        self.vips.remove(&(vs.cluster_ip, vs.protocol, vs.port));
        if let Some(np) = vs.node_port {
            self.node_ports.remove(&(vs.protocol, np));
        }
    }

    fn rebuild_all(&mut self) -> Changes {
        self.rebuild = false;
        self.dirty.clear();
        let services: Vec<Service> = self.services.values().cloned().collect();
        let endpoints: Vec<Endpoints> = self.endpoints.values().cloned().collect();
        let new = ServiceTable::build(&services, &endpoints, &self.node);
        let changes = diff(&self.table, &new);
        self.ports.clear();
        self.vips.clear();
        self.node_ports.clear();
        for vs in new.services.values() {
            let key = (vs.name.namespace.clone(), vs.name.name.clone());
            self.ports
                .entry(key.clone())
                .or_default()
                .push(vs.name.clone());
            self.claim(vs, &key);
        }
        self.table = new;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::{eps, svc};

    fn node() -> NodeContext {
        NodeContext {
            node_name: "node-1".into(),
            addresses: vec!["192.168.56.11".parse().unwrap()],
            nodeport_addresses: Vec::new(),
        }
    }

    /// The builder's table after each step equals a full build of the same objects, and
    /// its changes equal the diff between consecutive full builds.
    struct Twin {
        builder: TableBuilder,
        services: BTreeMap<Key, Service>,
        endpoints: BTreeMap<Key, Endpoints>,
        last: ServiceTable,
    }

    impl Twin {
        fn new() -> Self {
            let mut builder = TableBuilder::new(node());
            let first = builder.take_changes();
            assert!(first.is_empty());
            Twin {
                builder,
                services: BTreeMap::new(),
                endpoints: BTreeMap::new(),
                last: ServiceTable {
                    node_addresses: vec!["192.168.56.11".parse().unwrap()],
                    ..Default::default()
                },
            }
        }

        fn service(&mut self, s: Service) {
            self.services.insert(key_of(&s.metadata), s.clone());
            self.builder.set_service(s);
        }

        fn endpoints(&mut self, e: Endpoints) {
            self.endpoints.insert(key_of(&e.metadata), e.clone());
            self.builder.set_endpoints(e);
        }

        fn delete_service(&mut self, name: &str) {
            let s = self
                .services
                .remove(&("default".to_string(), name.to_string()))
                .unwrap();
            self.builder.delete_service(&s.metadata);
        }

        /// Checks the step against full builds; returns the changes.
        fn check(&mut self) -> Changes {
            let services: Vec<Service> = self.services.values().cloned().collect();
            let endpoints: Vec<Endpoints> = self.endpoints.values().cloned().collect();
            let want = ServiceTable::build(&services, &endpoints, &node());
            let mut want_changes = diff(&self.last, &want);
            let mut got = self.builder.take_changes();
            assert_eq!(self.builder.table(), &want);
            for c in [&mut got, &mut want_changes] {
                c.added.sort();
                c.changed.sort();
                c.removed.sort();
            }
            assert_eq!(got, want_changes);
            self.last = want;
            got
        }
    }

    #[test]
    fn follows_full_builds_through_adds_changes_and_deletes() {
        let mut t = Twin::new();
        t.service(svc("web", "10.96.0.20", &[("http", 80), ("admin", 81)]));
        t.endpoints(eps(
            "web",
            &[("10.244.1.3", "node-1")],
            &[("http", 8080), ("admin", 8081)],
        ));
        t.service(svc("api", "10.96.0.21", &[("", 80)]));
        assert_eq!(t.check().added.len(), 3);
        // One endpoint more for web: both its ports change, api is not looked at.
        t.endpoints(eps(
            "web",
            &[("10.244.1.3", "node-1"), ("10.244.2.4", "node-2")],
            &[("http", 8080), ("admin", 8081)],
        ));
        assert_eq!(t.check().changed.len(), 2);
        // A port dropped from web before its Endpoints follow: a problem, as in a full
        // build (Endpoints naming a port the Service lacks), then resolved.
        t.service(svc("web", "10.96.0.20", &[("http", 80)]));
        assert_eq!(t.check().removed.len(), 2);
        assert_eq!(t.builder.table().problems.len(), 1);
        t.endpoints(eps("web", &[("10.244.1.3", "node-1")], &[("http", 8080)]));
        assert_eq!(t.check().added.len(), 1);
        assert!(t.builder.table().problems.is_empty());
        // Nothing changed: nothing reported.
        t.service(svc("web", "10.96.0.20", &[("http", 80)]));
        assert!(t.check().is_empty());
        t.delete_service("web");
        assert_eq!(t.check().removed.len(), 1);
    }

    #[test]
    fn clashes_and_problems_resolve_as_a_full_build_does() {
        let mut t = Twin::new();
        t.service(svc("b", "10.96.0.20", &[("", 80)]));
        t.check();
        // "a" sorts first, so it takes the ClusterIP:port from "b".
        t.service(svc("a", "10.96.0.20", &[("", 80)]));
        let c = t.check();
        assert_eq!(t.builder.table().problems.len(), 1, "{c:?}");
        // A Service with a bad ClusterIP is a problem, the others stay.
        t.service(svc("bad", "not-an-ip", &[("", 80)]));
        t.check();
        assert_eq!(t.builder.table().problems.len(), 2);
        // Once "a" goes, "b" gets its port back.
        t.delete_service("a");
        t.delete_service("bad");
        let c = t.check();
        assert!(t.builder.table().problems.is_empty(), "{c:?}");
        // And later changes are incremental again, still equal to full builds.
        t.service(svc("c", "10.96.0.22", &[("", 80)]));
        assert_eq!(t.check().added.len(), 1);
    }
}

//! The IPVS backend against [`MemoryIpvs`] and [`MemoryHost`]: what it programs, what a
//! restart and a one-Service change send, graceful termination, refusals.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use weft_netlink::ipvs::{
    DestKey, Destination, IpvsOp, IpvsOps, MemoryIpvs, Protocol as IpvsProtocol, Service,
    ServiceKey, SVC_F_PERSISTENT,
};

use super::sets::Kind;
use super::*;
use crate::table::{Endpoint, Protocol, VirtualService};

const NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 11);

fn ep(last: u8, port: u16, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 244, 1, last),
        port,
        local,
    }
}

fn vs(n: u16, protocol: Protocol, endpoints: Vec<Endpoint>) -> VirtualService {
    VirtualService {
        name: ServicePortName {
            namespace: "default".into(),
            name: format!("svc-{n}"),
            port: String::new(),
            protocol,
        },
        cluster_ip: Ipv4Addr::new(10, 96, (n >> 8) as u8, n as u8),
        port: 80,
        protocol,
        scheduler: "rr".into(),
        affinity_timeout: None,
        cluster_endpoints: endpoints,
        node_port: None,
        external_local: false,
        node_port_endpoints: Vec::new(),
    }
}

fn table(services: Vec<VirtualService>) -> ServiceTable {
    ServiceTable {
        services: services.into_iter().map(|v| (v.name.clone(), v)).collect(),
        node_addresses: vec![NODE],
        problems: Vec::new(),
    }
}

fn key(ip: Ipv4Addr, port: u16) -> ServiceKey {
    ServiceKey::addr(IpvsProtocol::Tcp, IpAddr::V4(ip), port)
}

fn proxy(
    ipvs: &MemoryIpvs,
    host: &MemoryHost,
    grace: Duration,
) -> IpvsProxy<MemoryIpvs, MemoryHost> {
    IpvsProxy::with_ops(
        IpvsConfig {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            grace_period: grace,
            ..Default::default()
        },
        ipvs.clone(),
        host.clone(),
    )
}

fn dests_of(ipvs: &MemoryIpvs, k: &ServiceKey) -> Vec<(DestKey, u32)> {
    ipvs.table()
        .into_iter()
        .find(|(s, _)| s.key == *k)
        .map(|(_, d)| d.iter().map(|d| (d.key(), d.weight)).collect())
        .unwrap_or_default()
}

fn dk(e: Endpoint) -> DestKey {
    DestKey {
        addr: IpAddr::V4(e.ip),
        port: e.port,
    }
}

#[tokio::test]
async fn first_sync_programs_everything_and_a_restart_sends_nothing() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let mut web = vs(
        1,
        Protocol::Tcp,
        vec![ep(2, 8080, true), ep(3, 8080, false)],
    );
    web.node_port = Some(30080);
    web.node_port_endpoints = web.cluster_endpoints.clone();
    let t = table(vec![
        web.clone(),
        vs(2, Protocol::Udp, vec![ep(4, 53, false)]),
    ]);

    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    let stats = p.sync(&t).await.unwrap();
    assert!(stats.full && stats.problems.is_empty(), "{stats:?}");
    let got: Vec<(ServiceKey, String, usize)> = ipvs
        .table()
        .into_iter()
        .map(|(s, d)| (s.key, s.scheduler, d.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            (key(web.cluster_ip, 80), "rr".into(), 2),
            (key(NODE, 30080), "rr".into(), 2),
            (
                ServiceKey::addr(
                    IpvsProtocol::Udp,
                    IpAddr::V4(Ipv4Addr::new(10, 96, 0, 2)),
                    80
                ),
                "rr".into(),
                1
            ),
        ]
    );
    for (_, dests) in ipvs.table() {
        assert!(dests
            .iter()
            .all(|d| d.weight == 1 && d.forward == weft_netlink::ipvs::Forward::Masq));
    }
    {
        let h = host.state();
        let vips: Vec<Ipv4Addr> = h.dummy.clone().unwrap().into_iter().collect();
        assert_eq!(
            vips,
            vec![Ipv4Addr::new(10, 96, 0, 1), Ipv4Addr::new(10, 96, 0, 2)]
        );
        let e = h.elements.clone().unwrap();
        assert!(e.contains(&(Kind::ClusterIps, "10.96.0.1 . tcp . 80".into())));
        assert!(e.contains(&(Kind::NodePorts, "tcp . 30080".into())));
        assert!(e.contains(&(Kind::NodeIps, "192.168.56.11".into())));
        assert!(e.contains(&(Kind::Hairpin, "10.244.1.2 . 10.244.1.2 . tcp . 8080".into())));
        assert!(!e.iter().any(|(k, _)| *k == Kind::NodePortsLocal));
        let base = &h.scripts[0];
        assert!(base.contains("ip saddr != 10.244.0.0/16 meta mark set meta mark or 0x4000"));
    }
    ipvs.take_log();
    let changes_before = host.state().vip_changes;

    // A restarted proxy reads the kernel and finds nothing to do.
    let mut restarted = proxy(&ipvs, &host, Duration::from_secs(15));
    let stats = restarted.sync(&t).await.unwrap();
    assert!(stats.full);
    assert_eq!(
        (stats.ipvs_ops, stats.elements_added, stats.elements_deleted),
        (0, 0, 0)
    );
    assert!(ipvs.take_log().is_empty());
    assert_eq!(host.state().vip_changes, changes_before);
    let last = host.state().scripts.last().cloned().unwrap();
    assert!(!last.contains("element"), "{last}");
}

#[tokio::test]
async fn one_service_change_touches_only_its_entries() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let services: Vec<VirtualService> = (1..=100)
        .map(|n| {
            vs(
                n,
                Protocol::Tcp,
                vec![ep(2, 8080, false), ep(3, 8080, false)],
            )
        })
        .collect();
    let mut t = table(services);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    p.sync(&t).await.unwrap();
    ipvs.take_log();

    let name = t.services.keys().nth(41).unwrap().clone();
    let target = t.services[&name].cluster_ip;
    t.services
        .get_mut(&name)
        .unwrap()
        .cluster_endpoints
        .push(ep(9, 8080, false));
    let stats = p.sync(&t).await.unwrap();
    assert!(!stats.full);
    assert_eq!(stats.services_touched, 1);
    let log = ipvs.take_log();
    assert_eq!(
        log,
        vec![IpvsOp::NewDest(
            key(target, 80),
            Destination::masq(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 9)), 8080, 1)
        )]
    );
    let last = host.state().scripts.last().cloned().unwrap();
    assert_eq!(
        last.trim(),
        "add element ip weft-ipvs hairpin { 10.244.1.9 . 10.244.1.9 . tcp . 8080 }"
    );

    // The same change with the changes told (as TableBuilder reports them) sends the same.
    let mut told = t.clone();
    told.services
        .get_mut(&name)
        .unwrap()
        .cluster_endpoints
        .push(ep(10, 8080, false));
    let changes = crate::table::Changes {
        changed: vec![name.clone()],
        ..Default::default()
    };
    let stats = p.sync_changed(&told, &changes).await.unwrap();
    assert_eq!((stats.full, stats.services_touched), (false, 1));
    assert_eq!(
        ipvs.take_log(),
        vec![IpvsOp::NewDest(
            key(target, 80),
            Destination::masq(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 10)), 8080, 1)
        )]
    );

    // Removing the Service deletes its virtual server and VIP; the hairpin element
    // 10.244.1.2 stays, the other 99 Services still use it.
    let removed = t.services.remove(&name).unwrap();
    p.sync(&t).await.unwrap();
    assert_eq!(ipvs.take_log(), vec![IpvsOp::DelService(key(target, 80))]);
    let h = host.state();
    assert!(!h.dummy.as_ref().unwrap().contains(&removed.cluster_ip));
    let e = h.elements.as_ref().unwrap();
    assert!(e.contains(&(Kind::Hairpin, "10.244.1.2 . 10.244.1.2 . tcp . 8080".into())));
    assert!(!e.contains(&(Kind::Hairpin, "10.244.1.9 . 10.244.1.9 . tcp . 8080".into())));
    assert!(!e.contains(&(Kind::ClusterIps, format!("{target} . tcp . 80"))));
}

#[tokio::test]
async fn a_removed_endpoint_drains_then_goes() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let (a, b) = (ep(2, 8080, false), ep(3, 8080, false));
    let mut t = table(vec![vs(1, Protocol::Tcp, vec![a, b])]);
    let k = key(Ipv4Addr::new(10, 96, 0, 1), 80);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(3600));
    p.sync(&t).await.unwrap();
    assert_eq!(p.next_wakeup(), None);
    ipvs.set_conns(&k, &dk(b), 2, 1);

    t.services.values_mut().next().unwrap().cluster_endpoints = vec![a];
    p.sync(&t).await.unwrap();
    assert_eq!(
        dests_of(&ipvs, &k),
        vec![(dk(a), 1), (dk(b), 0)],
        "weight 0 first"
    );
    assert_eq!(p.next_wakeup(), Some(TERMINATION_POLL));

    // Still busy: nothing happens on the periodic sync.
    ipvs.take_log();
    p.sync(&t).await.unwrap();
    assert!(ipvs.take_log().is_empty());

    // Idle: deleted.
    ipvs.set_conns(&k, &dk(b), 0, 0);
    p.sync(&t).await.unwrap();
    assert_eq!(ipvs.take_log(), vec![IpvsOp::DelDest(k, dk(b))]);
    assert_eq!(dests_of(&ipvs, &k), vec![(dk(a), 1)]);
    assert_eq!(p.next_wakeup(), None);
}

#[tokio::test]
async fn a_draining_endpoint_goes_at_the_end_of_the_grace_period_or_comes_back() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let (a, b) = (ep(2, 8080, false), ep(3, 8080, false));
    let mut t = table(vec![vs(1, Protocol::Tcp, vec![a, b])]);
    let k = key(Ipv4Addr::new(10, 96, 0, 1), 80);

    // Back before it went: weight 1 again.
    let mut p = proxy(&ipvs, &host, Duration::from_secs(3600));
    p.sync(&t).await.unwrap();
    ipvs.set_conns(&k, &dk(b), 5, 0);
    let both = t.clone();
    t.services.values_mut().next().unwrap().cluster_endpoints = vec![a];
    p.sync(&t).await.unwrap();
    p.sync(&both).await.unwrap();
    assert_eq!(dests_of(&ipvs, &k), vec![(dk(a), 1), (dk(b), 1)]);
    assert_eq!(p.next_wakeup(), None);

    // Grace period 0: deleted on the sync after the weight went to 0, busy or not.
    let mut p = proxy(&ipvs, &host, Duration::ZERO);
    p.sync(&t).await.unwrap();
    assert_eq!(dests_of(&ipvs, &k), vec![(dk(a), 1), (dk(b), 0)]);
    assert_eq!(p.next_wakeup(), Some(Duration::ZERO));
    p.sync(&t).await.unwrap();
    assert_eq!(dests_of(&ipvs, &k), vec![(dk(a), 1)]);
}

#[tokio::test]
async fn client_ip_affinity_is_persistence_with_the_timeout() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let mut s = vs(1, Protocol::Tcp, vec![ep(2, 8080, false)]);
    s.affinity_timeout = Some(600);
    s.scheduler = "sh".into();
    let mut t = table(vec![s]);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    p.sync(&t).await.unwrap();
    let (svc, _) = ipvs.table().remove(0);
    assert_eq!(
        (
            svc.flags & SVC_F_PERSISTENT,
            svc.timeout,
            svc.scheduler.as_str()
        ),
        (SVC_F_PERSISTENT, 600, "sh")
    );
    ipvs.take_log();
    t.services.values_mut().next().unwrap().affinity_timeout = None;
    p.sync(&t).await.unwrap();
    let log = ipvs.take_log();
    assert!(
        matches!(&log[..], [IpvsOp::SetService(s)] if s.flags & SVC_F_PERSISTENT == 0),
        "{log:?}"
    );
}

#[tokio::test]
async fn external_policy_local_sends_nodeport_traffic_to_local_endpoints_unmasqueraded() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let (local, remote) = (ep(2, 8080, true), ep(3, 8080, false));
    let mut s = vs(1, Protocol::Tcp, vec![local, remote]);
    s.node_port = Some(30081);
    s.external_local = true;
    s.node_port_endpoints = vec![local];
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    p.sync(&table(vec![s])).await.unwrap();
    assert_eq!(dests_of(&ipvs, &key(NODE, 30081)), vec![(dk(local), 1)]);
    assert_eq!(
        dests_of(&ipvs, &key(Ipv4Addr::new(10, 96, 0, 1), 80)).len(),
        2
    );
    let e = host.state().elements.clone().unwrap();
    assert!(e.contains(&(Kind::NodePortsLocal, "tcp . 30081".into())));
}

#[tokio::test]
async fn a_protocol_the_kernel_lacks_fails_only_its_service() {
    let (ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    ipvs.refuse_protocol(IpvsProtocol::Sctp, 93); // EPROTONOSUPPORT
    let t = table(vec![
        vs(1, Protocol::Tcp, vec![ep(2, 8080, false)]),
        vs(2, Protocol::Sctp, vec![ep(3, 9000, false)]),
        vs(3, Protocol::Udp, vec![ep(4, 53, false)]),
    ]);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    let stats = p.sync(&t).await.unwrap();
    assert_eq!(stats.problems.len(), 1, "{:?}", stats.problems);
    assert_eq!(stats.problems[0].service, "default/svc-2");
    assert!(
        stats.problems[0].message.contains("Protocol not supported"),
        "{}",
        stats.problems[0].message
    );
    assert_eq!(ipvs.table().len(), 2);

    // Retried on the next sync (a module may have been loaded), still reported.
    ipvs.take_log();
    let stats = p.sync(&t).await.unwrap();
    assert_eq!(stats.problems.len(), 1);
    let log = ipvs.take_log();
    assert!(log.iter().all(|op| op.service().is_some_and(|k| matches!(
        k,
        ServiceKey::Addr {
            protocol: IpvsProtocol::Sctp,
            ..
        }
    ))));
}

#[tokio::test]
async fn a_restart_removes_what_is_stale_and_leaves_what_is_not_ours() {
    let (mut ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let stale_vip = Ipv4Addr::new(10, 96, 9, 9);
    let admin = key(NODE, 22);
    let stale_np = key(NODE, 30999);
    ipvs.apply(vec![
        IpvsOp::NewService(Service::new(key(stale_vip, 80), "rr")),
        IpvsOp::NewService(Service::new(admin, "wlc")),
        IpvsOp::NewService(Service::new(stale_np, "rr")),
        // The real one, with the wrong scheduler and an extra real server.
        IpvsOp::NewService(Service::new(key(Ipv4Addr::new(10, 96, 0, 1), 80), "lc")),
        IpvsOp::NewDest(
            key(Ipv4Addr::new(10, 96, 0, 1), 80),
            Destination::masq(IpAddr::V4(Ipv4Addr::new(10, 244, 7, 7)), 80, 1),
        ),
    ])
    .await
    .unwrap();
    {
        let mut h = host.state();
        h.dummy = Some([stale_vip, Ipv4Addr::new(10, 96, 0, 1)].into());
        h.elements = Some([(Kind::ClusterIps, "10.96.9.9 . tcp . 80".to_string())].into());
    }
    ipvs.take_log();
    let t = table(vec![vs(1, Protocol::Tcp, vec![ep(2, 8080, false)])]);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    p.sync(&t).await.unwrap();
    let keys: Vec<ServiceKey> = ipvs.table().into_iter().map(|(s, _)| s.key).collect();
    assert_eq!(keys, vec![key(Ipv4Addr::new(10, 96, 0, 1), 80), admin]);
    let log = ipvs.take_log();
    assert!(log.contains(&IpvsOp::DelService(key(stale_vip, 80))));
    assert!(log.contains(&IpvsOp::DelService(stale_np)));
    assert!(log
        .iter()
        .any(|op| matches!(op, IpvsOp::SetService(s) if s.scheduler == "rr")));
    let h = host.state();
    assert_eq!(
        h.dummy.clone().unwrap().into_iter().collect::<Vec<_>>(),
        vec![Ipv4Addr::new(10, 96, 0, 1)]
    );
    assert!(!h
        .elements
        .as_ref()
        .unwrap()
        .contains(&(Kind::ClusterIps, "10.96.9.9 . tcp . 80".to_string())));
}

#[tokio::test]
async fn cleanup_removes_ours_only() {
    let (mut ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    host.state().local = vec![NODE];
    let mut s = vs(1, Protocol::Tcp, vec![ep(2, 8080, false)]);
    s.node_port = Some(30080);
    s.node_port_endpoints = s.cluster_endpoints.clone();
    let mut p = proxy(&ipvs, &host, Duration::from_secs(15));
    p.sync(&table(vec![s])).await.unwrap();
    let admin = key(NODE, 22);
    ipvs.apply(vec![IpvsOp::NewService(Service::new(admin, "rr"))])
        .await
        .unwrap();
    p.cleanup().await.unwrap();
    let keys: Vec<ServiceKey> = ipvs.table().into_iter().map(|(s, _)| s.key).collect();
    assert_eq!(keys, vec![admin]);
    let h = host.state();
    assert!(h.dummy.is_none() && h.elements.is_none());
}

#[test]
fn parses_set_elements_from_nft_json() {
    let json = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6"}},
      {"set": {"family": "ip", "name": "cluster-ips", "table": "weft-ipvs",
        "type": ["ipv4_addr", "inet_proto", "inet_service"],
        "elem": [{"concat": ["10.96.0.1", "tcp", 80]}]}},
      {"set": {"family": "ip", "name": "node-ips", "table": "weft-ipvs",
        "type": "ipv4_addr", "elem": ["192.168.56.11"]}},
      {"set": {"family": "ip", "name": "someone-elses", "table": "weft-ipvs",
        "type": "ipv4_addr", "elem": ["1.2.3.4"]}}
    ]}"#;
    let e = host::parse_elements(json).unwrap();
    let want: sets::Elements = [
        (Kind::ClusterIps, "10.96.0.1 . tcp . 80".to_string()),
        (Kind::NodeIps, "192.168.56.11".to_string()),
    ]
    .into();
    assert_eq!(e, want);
    assert!(host::parse_elements("[]").is_err());
}

#[tokio::test]
async fn a_draining_endpoint_deleted_by_someone_else_stops_the_wakeups() {
    let (mut ipvs, host) = (MemoryIpvs::new(), MemoryHost::default());
    let (a, b) = (ep(2, 8080, false), ep(3, 8080, false));
    let mut t = table(vec![vs(1, Protocol::Tcp, vec![a, b])]);
    let k = key(Ipv4Addr::new(10, 96, 0, 1), 80);
    let mut p = proxy(&ipvs, &host, Duration::from_secs(3600));
    p.sync(&t).await.unwrap();
    ipvs.set_conns(&k, &dk(b), 1, 0);
    t.services.values_mut().next().unwrap().cluster_endpoints = vec![a];
    p.sync(&t).await.unwrap();
    assert!(p.next_wakeup().is_some());
    ipvs.apply(vec![IpvsOp::DelDest(k, dk(b))]).await.unwrap();
    ipvs.take_log();
    p.sync(&t).await.unwrap();
    assert!(ipvs.take_log().is_empty());
    assert_eq!(p.next_wakeup(), None);
}

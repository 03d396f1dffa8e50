//! Byte fixtures written by hand from the layouts in linux/ip_vs.h, linux/netlink.h and
//! linux/genetlink.h (little-endian host, as the lab and CI machines): nlmsghdr
//! `len type flags seq pid`, genlmsghdr `cmd version 0 0`, nlattr `len type` (nested
//! types carry 0x8000), payloads padded to 4 bytes. Dump fixtures follow the attribute
//! order of the kernel's `ip_vs_genl_fill_service`/`_dest`.

use std::net::{IpAddr, Ipv4Addr};

use super::codec::*;
use super::nl::{self, messages};
use super::*;

const FAMILY: u16 = 0x24;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tcp_80() -> ServiceKey {
    ServiceKey::addr(Protocol::Tcp, v4(10, 96, 0, 1), 80)
}

/// `IPVS_SVC_ATTR_ADDR` for 10.96.0.1: 4 + 16 bytes (`union nf_inet_addr`).
const ADDR_10_96_0_1: [u8; 20] = [
    0x14, 0, 3, 0, 10, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[cfg(target_endian = "little")]
#[test]
fn encodes_new_service_as_the_header_lays_it_out() {
    let mut buf = Vec::new();
    encode_op(
        &mut buf,
        FAMILY,
        7,
        &IpvsOp::NewService(Service::new(tcp_80(), "rr")),
    );
    let want: Vec<u8> = [
        // nlmsghdr: len 104, type = family 0x24, flags REQUEST|ACK, seq 7, pid 0
        &[104, 0, 0, 0, 0x24, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0][..],
        // genlmsghdr: cmd NEW_SERVICE (1), version 1
        &[1, 1, 0, 0],
        // IPVS_CMD_ATTR_SERVICE, nested: 4 + 8+8+20+8+8+12+8+8 = 84
        &[84, 0, 1, 0x80],
        &[6, 0, 1, 0, 2, 0, 0, 0],       // AF = AF_INET, padded
        &[6, 0, 2, 0, 6, 0, 0, 0],       // PROTOCOL = 6 (TCP)
        &ADDR_10_96_0_1,                 // ADDR
        &[6, 0, 4, 0, 0, 80, 0, 0],      // PORT, big endian
        &[7, 0, 6, 0, b'r', b'r', 0, 0], // SCHED_NAME "rr\0", padded
        &[12, 0, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // FLAGS {flags 0, mask ~0}
        &[8, 0, 8, 0, 0, 0, 0, 0],       // TIMEOUT 0
        &[8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff], // NETMASK 255.255.255.255
    ]
    .concat();
    assert_eq!(buf, want);
}

#[cfg(target_endian = "little")]
#[test]
fn encodes_new_dest_and_delete_dest() {
    let mut buf = Vec::new();
    let dest = Destination::masq(v4(10, 244, 1, 5), 8080, 1);
    encode_op(&mut buf, FAMILY, 9, &IpvsOp::NewDest(tcp_80(), dest));
    let service_nest: Vec<u8> = [
        &[48, 0, 1, 0x80][..], // 4 + 8 + 8 + 20 + 8
        &[6, 0, 1, 0, 2, 0, 0, 0],
        &[6, 0, 2, 0, 6, 0, 0, 0],
        &ADDR_10_96_0_1,
        &[6, 0, 4, 0, 0, 80, 0, 0],
    ]
    .concat();
    let dest_addr: [u8; 20] = [
        0x14, 0, 1, 0, 10, 244, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let want: Vec<u8> = [
        // 16 + 4 + 48 + 72
        &[140, 0, 0, 0, 0x24, 0, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0][..],
        &[5, 1, 0, 0], // NEW_DEST
        &service_nest,
        // IPVS_CMD_ATTR_DEST (2), nested: 4 + 20 + 8 + 8 + 4*8 = 72
        &[72, 0, 2, 0x80],
        &dest_addr,
        &[6, 0, 2, 0, 0x1f, 0x90, 0, 0], // PORT 8080
        &[6, 0, 11, 0, 2, 0, 0, 0],      // ADDR_FAMILY AF_INET
        &[8, 0, 3, 0, 0, 0, 0, 0],       // FWD_METHOD Masq
        &[8, 0, 4, 0, 1, 0, 0, 0],       // WEIGHT 1
        &[8, 0, 5, 0, 0, 0, 0, 0],       // U_THRESH
        &[8, 0, 6, 0, 0, 0, 0, 0],       // L_THRESH
    ]
    .concat();
    assert_eq!(buf, want);

    buf.clear();
    let key = DestKey {
        addr: v4(10, 244, 1, 5),
        port: 8080,
    };
    encode_op(&mut buf, FAMILY, 10, &IpvsOp::DelDest(tcp_80(), key));
    // A delete names the destination only: 4 + 20 + 8 + 8.
    assert_eq!(&buf[..4], &[16 + 4 + 48 + 40, 0, 0, 0]);
    assert_eq!(buf[16], CMD_DEL_DEST);
    assert_eq!(&buf[20 + 48..20 + 48 + 4], &[40, 0, 2, 0x80]);
}

#[cfg(target_endian = "little")]
#[test]
fn encodes_dumps_info_flush_and_family_lookup() {
    let mut buf = Vec::new();
    encode_get_services(&mut buf, FAMILY, 3);
    // flags REQUEST|DUMP = 0x301, cmd GET_SERVICE (4), no attributes.
    assert_eq!(
        buf,
        [20, 0, 0, 0, 0x24, 0, 0x01, 0x03, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0]
    );
    buf.clear();
    encode_get_info(&mut buf, FAMILY, 4);
    assert_eq!(&buf[4..8], &[0x24, 0, 1, 0]);
    assert_eq!(buf[16], CMD_GET_INFO);
    buf.clear();
    encode_op(&mut buf, FAMILY, 5, &IpvsOp::Flush);
    assert_eq!(buf.len(), 20);
    assert_eq!(buf[16], CMD_FLUSH);
    buf.clear();
    encode_get_dests(&mut buf, FAMILY, 6, &tcp_80());
    assert_eq!(buf.len(), 20 + 48);
    assert_eq!(buf[16], CMD_GET_DEST);
    buf.clear();
    nl::get_family(&mut buf, 1, "IPVS");
    assert_eq!(
        buf,
        [
            // len 16 + 4 + 12, type GENL_ID_CTRL 0x10, flags REQUEST, seq 1
            32, 0, 0, 0, 0x10, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
            3, 1, 0, 0, // CTRL_CMD_GETFAMILY, version 1
            9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0, // FAMILY_NAME "IPVS\0", padded
        ]
    );
}

/// A kernel `GET_SERVICE` dump as one received buffer: two services, then DONE.
fn service_dump() -> Vec<u8> {
    let stats32: Vec<u8> = [
        &[4 + 8 + 12 + 8, 0, 10, 0x80][..], // SVC_ATTR_STATS, nested
        &[8, 0, 1, 0, 5, 0, 0, 0],          // CONNS 5 (u32)
        &[12, 0, 4, 0, 0xe8, 3, 0, 0, 0, 0, 0, 0], // INBYTES 1000 (u64)
        &[8, 0, 6, 0, 2, 0, 0, 0],          // CPS 2
    ]
    .concat();
    let stats64: Vec<u8> = [
        &[4 + 12 + 4 + 12, 0, 12, 0x80][..], // SVC_ATTR_STATS64, nested
        &[12, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0], // CONNS 6 (u64)
        &[4, 0, 11, 0],                      // STATS_ATTR_PAD, empty
        &[12, 0, 4, 0, 0xe9, 3, 0, 0, 0, 0, 0, 0], // INBYTES 1001
    ]
    .concat();
    let svc1_nest_len = 4 + 8 + 8 + 20 + 8 + 8 + 12 + 8 + 8 + stats32.len() + stats64.len();
    let svc1: Vec<u8> = [
        &[(svc1_nest_len as u8), 0, 1, 0x80][..],
        &[6, 0, 1, 0, 2, 0, 0, 0],
        &[6, 0, 2, 0, 6, 0, 0, 0],
        &ADDR_10_96_0_1,
        &[6, 0, 4, 0, 0, 80, 0, 0],
        &[7, 0, 6, 0, b'r', b'r', 0, 0],
        // FLAGS: PERSISTENT | HASHED, mask ~0
        &[12, 0, 7, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        &[8, 0, 8, 0, 0x30, 0x2a, 0, 0], // TIMEOUT 10800
        &[8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff],
        &stats32,
        &stats64,
    ]
    .concat();
    let svc2: Vec<u8> = [
        &[4 + 8 + 8 + 20 + 8 + 8 + 12 + 8 + 8, 0, 1, 0x80][..],
        &[6, 0, 1, 0, 2, 0, 0, 0],
        &[6, 0, 2, 0, 17, 0, 0, 0], // UDP
        &[
            0x14, 0, 3, 0, 10, 96, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        &[6, 0, 4, 0, 0, 53, 0, 0],
        &[7, 0, 6, 0, b's', b'h', 0, 0],
        &[12, 0, 7, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // HASHED only
        &[8, 0, 8, 0, 0, 0, 0, 0],
        &[8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff],
    ]
    .concat();
    let msg = |seq: u8, body: &[u8]| -> Vec<u8> {
        let len = 16 + 4 + body.len();
        // type = family, flags NLM_F_MULTI, pid 1234 (ours)
        [
            &[
                len as u8, 0, 0, 0, 0x24, 0, 2, 0, seq, 0, 0, 0, 0xd2, 4, 0, 0,
            ][..],
            &[CMD_NEW_SERVICE, 1, 0, 0],
            body,
        ]
        .concat()
    };
    let done = [
        20, 0, 0, 0, 3, 0, 2, 0, 3, 0, 0, 0, 0xd2, 4, 0, 0, 0, 0, 0, 0,
    ];
    [msg(3, &svc1), msg(3, &svc2), done.to_vec()].concat()
}

#[cfg(target_endian = "little")]
#[test]
fn decodes_a_multi_message_service_dump() {
    let buf = service_dump();
    let part = decode_dump(&buf, 3, decode_service)
        .expect("decodes")
        .expect("no error");
    assert!(part.done);
    assert_eq!(part.items.len(), 2);
    let a = &part.items[0];
    assert_eq!(a.key, tcp_80());
    assert_eq!(a.scheduler, "rr");
    assert_eq!(a.flags, SVC_F_PERSISTENT, "HASHED is masked off");
    assert_eq!(a.timeout, 10800);
    assert_eq!(a.netmask, 0xffff_ffff);
    let stats = a.stats.expect("stats");
    assert_eq!((stats.conns, stats.inbytes), (6, 1001), "STATS64 wins");
    assert!(a.same_settings(&Service::new(tcp_80(), "rr").persistent(10800)));
    let b = &part.items[1];
    assert_eq!(
        b.key,
        ServiceKey::addr(Protocol::Udp, v4(10, 96, 0, 10), 53)
    );
    assert_eq!((b.scheduler.as_str(), b.flags, b.stats), ("sh", 0, None));

    // The same dump split across two reads: the first has no DONE yet.
    let cut = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
    let first = decode_dump(&buf[..cut], 3, decode_service)
        .unwrap()
        .unwrap();
    assert_eq!((first.items.len(), first.done), (1, false));
    // Messages of another conversation are ignored.
    let other = decode_dump(&buf, 99, decode_service).unwrap().unwrap();
    assert_eq!((other.items.len(), other.done), (0, false));
}

#[cfg(target_endian = "little")]
#[test]
fn decodes_a_destination_dump_with_counters() {
    let dest: Vec<u8> = [
        &[4 + 20 + 8 + 8 * 8 + 8, 0, 2, 0x80][..],
        &[
            0x14, 0, 1, 0, 10, 244, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        &[6, 0, 2, 0, 0x1f, 0x90, 0, 0],
        &[8, 0, 3, 0, 0, 0, 0, 0], // Masq
        &[8, 0, 4, 0, 0, 0, 0, 0], // weight 0: terminating
        &[8, 0, 5, 0, 0, 0, 0, 0],
        &[8, 0, 6, 0, 0, 0, 0, 0],
        &[8, 0, 7, 0, 3, 0, 0, 0], // ACTIVE 3
        &[8, 0, 8, 0, 4, 0, 0, 0], // INACT 4
        &[8, 0, 9, 0, 0, 0, 0, 0],
        &[6, 0, 11, 0, 2, 0, 0, 0],   // ADDR_FAMILY
        &[8, 0, 0x7f, 0, 0, 0, 0, 0], // an attribute from a newer kernel: skipped
    ]
    .concat();
    let len = 16 + 4 + dest.len();
    let buf: Vec<u8> = [
        &[len as u8, 0, 0, 0, 0x24, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 0][..],
        &[CMD_NEW_DEST, 1, 0, 0],
        &dest,
        &[20, 0, 0, 0, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let part = decode_dump(&buf, 8, |m| decode_dest(m, AF_INET))
        .unwrap()
        .unwrap();
    assert!(part.done);
    let d = &part.items[0];
    assert_eq!(
        d.key(),
        DestKey {
            addr: v4(10, 244, 1, 5),
            port: 8080
        }
    );
    assert_eq!((d.forward, d.weight), (Forward::Masq, 0));
    assert_eq!((d.active_conns, d.inactive_conns), (3, 4));
}

#[cfg(target_endian = "little")]
#[test]
fn a_dump_error_is_the_errno() {
    // NLMSG_ERROR, error -3 (ESRCH): the service asked about does not exist.
    let buf = [
        36, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, //
        20, 0, 0, 0, 0x24, 0, 0x01, 0x03, 8, 0, 0, 0, 0, 0, 0, 0,
    ];
    let r = decode_dump(&buf, 8, |m| decode_dest(m, AF_INET)).unwrap();
    assert_eq!(r.err(), Some(3));
}

#[cfg(target_endian = "little")]
#[test]
fn acks_are_mapped_to_their_request() {
    // Two acks as the kernel sends them with NETLINK_CAP_ACK: errno, then the request's
    // header. seq 11 is refused with EEXIST; seq 5 is stale.
    let ack = |seq: u8, err: i32| -> Vec<u8> {
        [
            &[36, 0, 0, 0, 2, 0, 0x01, 0x01, seq, 0, 0, 0, 0, 0, 0, 0][..],
            &err.to_ne_bytes(),
            &[104, 0, 0, 0, 0x24, 0, 5, 0, seq, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat()
    };
    let buf = [ack(10, 0), ack(11, -17), ack(5, -2)].concat();
    assert_eq!(decode_acks(&buf, 10, 2).unwrap(), vec![(0, 0), (1, 17)]);
}

#[cfg(target_endian = "little")]
#[test]
fn decodes_info_and_family_replies() {
    let info = [
        36,
        0,
        0,
        0,
        0x24,
        0,
        0,
        0,
        4,
        0,
        0,
        0,
        0,
        0,
        0,
        0, //
        CMD_SET_INFO,
        1,
        0,
        0, //
        8,
        0,
        1,
        0,
        0x01,
        0x02,
        0x01,
        0, // VERSION 0x010201
        8,
        0,
        2,
        0,
        0,
        0x10,
        0,
        0, // CONN_TAB_SIZE 4096
    ];
    let msg = messages(&info).next().unwrap().unwrap();
    assert_eq!(
        decode_info(&msg).unwrap(),
        Info {
            version: 0x010201,
            conn_table_size: 4096
        }
    );
    let family = [
        40, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
        1, 2, 0, 0, // CTRL_CMD_NEWFAMILY
        9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0, //
        6, 0, 1, 0, 0x24, 0, 0, 0, // FAMILY_ID 0x24
    ];
    let msg = messages(&family).next().unwrap().unwrap();
    assert_eq!(nl::family_id(&msg).unwrap(), 0x24);
}

#[test]
fn what_is_encoded_decodes_back() {
    let svc = Service::new(
        ServiceKey::addr(Protocol::Sctp, v4(10, 96, 3, 4), 9000),
        "wrr",
    )
    .persistent(60);
    let dest = Destination {
        upper_threshold: 10,
        ..Destination::masq(v4(10, 244, 2, 2), 9001, 3)
    };
    let mut buf = Vec::new();
    encode_op(&mut buf, FAMILY, 1, &IpvsOp::NewService(svc.clone()));
    encode_op(&mut buf, FAMILY, 2, &IpvsOp::NewDest(svc.key, dest.clone()));
    let mut msgs = messages(&buf);
    let got = decode_service(&msgs.next().unwrap().unwrap()).unwrap();
    assert_eq!(got, svc);
    let got = decode_dest(&msgs.next().unwrap().unwrap(), AF_INET).unwrap();
    assert_eq!(got, dest);
    assert!(msgs.next().is_none());
    drop(msgs);

    let fw = Service::new(
        ServiceKey::Fwmark {
            mark: 7,
            ipv6: true,
        },
        "rr",
    );
    buf.clear();
    encode_op(&mut buf, FAMILY, 3, &IpvsOp::NewService(fw.clone()));
    let got = decode_service(&messages(&buf).next().unwrap().unwrap()).unwrap();
    assert_eq!(got, fw);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let good = service_dump();
    // Every truncation and every single-byte corruption of a valid dump either decodes
    // or fails cleanly.
    for cut in 0..good.len() {
        let _ = decode_dump(&good[..cut], 3, decode_service);
    }
    for i in 0..good.len() {
        for v in [0u8, 1, 3, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] = v;
            let _ = decode_dump(&bad, 3, decode_service);
            let _ = decode_dump(&bad, 3, |m| decode_dest(m, AF_INET));
            let _ = decode_acks(&bad, 3, 4);
        }
    }
    // A length past the end, and one below the header size, are errors.
    let mut bad = good.clone();
    bad[0] = 0xff;
    bad[1] = 0xff;
    assert!(decode_dump(&bad, 3, decode_service).is_err());
    bad[0] = 8;
    bad[1] = 0;
    assert!(decode_dump(&bad, 3, decode_service).is_err());
    // A service without a family is refused.
    let no_af = [
        28, 0, 0, 0, 0x24, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, //
        8, 0, 1, 0x80, 6, 0, 2, 0, // (a truncated nested protocol)
    ];
    assert!(decode_dump(&no_af, 3, decode_service).is_err());
}

#[tokio::test]
async fn the_memory_table_answers_like_the_kernel() {
    let mut m = MemoryIpvs::new();
    let svc = Service::new(tcp_80(), "rr");
    let d = Destination::masq(v4(10, 244, 1, 5), 8080, 1);
    let fails = m
        .apply(vec![
            IpvsOp::NewDest(tcp_80(), d.clone()),
            IpvsOp::NewService(svc.clone()),
            IpvsOp::NewService(svc.clone()),
            IpvsOp::NewDest(tcp_80(), d.clone()),
        ])
        .await
        .unwrap();
    let got: Vec<(usize, Option<i32>)> = fails.iter().map(|f| (f.index, f.error.errno())).collect();
    assert_eq!(got, vec![(0, Some(3)), (2, Some(17))]);
    assert_eq!(m.destinations(&tcp_80()).await.unwrap(), vec![d]);
    m.refuse_protocol(Protocol::Sctp, 93);
    let sctp = Service::new(ServiceKey::addr(Protocol::Sctp, v4(10, 96, 0, 2), 1), "rr");
    let fails = m.apply(vec![IpvsOp::NewService(sctp)]).await.unwrap();
    assert_eq!(fails[0].error.errno(), Some(93));
    assert_eq!(m.take_log().len(), 5);
}

/// Against the kernel, when it has IPVS (the VM lab; skipped where `ip_vs` is missing).
#[test]
fn kernel_round_trip_when_ipvs_exists() {
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipped: this kernel has no IPVS");
        return;
    }
    let mut s = IpvsSocket::open().expect("open");
    let info = s.info().expect("info");
    assert!(info.version >= 0x010200, "{info:?}");
    let key = ServiceKey::addr(Protocol::Tcp, v4(10, 255, 254, 1), 4242);
    let svc = Service::new(key, "rr").persistent(30);
    let d = Destination::masq(v4(10, 255, 253, 1), 80, 2);
    let fails = s
        .apply(&[
            IpvsOp::NewService(svc.clone()),
            IpvsOp::NewDest(key, d.clone()),
        ])
        .expect("apply");
    assert!(fails.is_empty(), "{fails:?}");
    let got = s.services().expect("dump");
    let found = got.iter().find(|x| x.key == key).expect("listed");
    assert!(found.same_settings(&svc), "{found:?}");
    let dests = s.destinations(&key).expect("dests");
    assert!(dests.len() == 1 && dests[0].same_settings(&d), "{dests:?}");
    let fails = s.apply(&[IpvsOp::NewService(svc)]).expect("apply");
    assert_eq!(fails[0].error.errno(), Some(17));
    let fails = s.apply(&[IpvsOp::DelService(key)]).expect("apply");
    assert!(fails.is_empty(), "{fails:?}");
}

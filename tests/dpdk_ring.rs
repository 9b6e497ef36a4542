//! The DPDK transport in one process over `net_ring`, whose TX queue `k` loops back
//! to its RX queue `k`: frames injected on worker 0's queue (0) reach the
//! dispatcher's RX queue (0), and so do worker 0's replies. Requests are addressed
//! from the server's own MAC, IP and port, so that their replies (sent back to the
//! source) are again frames for the server and come back through the parser.
//!
//! One scenario per test binary: EAL initialises once per process.
#![cfg(feature = "dpdk")]

mod ring;

use std::net::{Ipv4Addr, SocketAddrV4};

use persephone::net::dpdk::{self, Dpdk, DpdkConfig, Error};
use persephone::net::frame;
use persephone::net::{Packet, RxQueue, Transport, TxQueue};

#[test]
fn ring_loopback() {
    dpdk::init_eal(&test_support::eal_args("ring", "net_ring0")).expect("EAL");
    let _cleanup = test_support::Cleanup(vec![dpdk::runtime_dir().expect("EAL runtime dir")]);
    assert!(
        matches!(
            dpdk::init_eal(&test_support::eal_args("ring", "net_ring0")),
            Err(Error::EalAlreadyInitialised)
        ),
        "a second init is an error"
    );
    let main_lcore = dpdk::current_lcore().expect("the init thread is the main lcore");

    let cfg = ring::config();
    assert!(matches!(
        Dpdk::new(&DpdkConfig {
            port: 7,
            ..cfg.clone()
        }),
        Err(Error::NoSuchPort {
            port: 7,
            available: 1,
            ..
        })
    ));
    // A pool larger than EAL's memory (-m 256; 1 Mi mbufs of 2 KiB and more) is refused
    // with the count and DPDK's reason, and the port claimed for it is let go.
    match Dpdk::new(&DpdkConfig {
        mbufs: DpdkConfig::MAX_MBUFS,
        ..cfg.clone()
    }) {
        Err(e @ Error::Mempool { n, .. }) => {
            assert_eq!(n, DpdkConfig::MAX_MBUFS);
            let msg = e.to_string();
            let reason = msg
                .strip_prefix("cannot create mempool of 1048576 mbufs: ")
                .unwrap_or_else(|| panic!("message: {msg}"));
            assert!(!reason.trim().is_empty(), "no reason in: {msg}");
        }
        other => panic!("a 1 Mi-mbuf pool in 256 MiB: {other:?}"),
    }
    let transport = Dpdk::new(&cfg).expect("port 0");
    assert!(matches!(Dpdk::new(&cfg), Err(Error::PortInUse(0))));
    let local = transport.local();
    let parts = transport.split(1).expect("configure and start");
    let (mut rx, mut dtx) = (parts.rx, parts.tx);
    let mut wtx = parts.workers.into_iter().next().unwrap();
    assert_eq!(
        (wtx.queue(), dtx.queue()),
        (0, 1),
        "worker 0, then the dispatcher"
    );
    let baseline = rx.mbufs_in_use();

    // Requests, then one frame for each drop reason we can make, then ARP.
    let n = 20;
    let requests: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("request {i}").into_bytes())
        .collect();
    for r in &requests {
        assert!(wtx.send_frame(&ring::hairpin(&local, r)));
    }
    let good = ring::hairpin(&local, b"good");
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut g = good.clone();
        f(&mut g);
        g
    };
    let bad = [
        edit(&|g| g.truncate(20)),                           // runt
        edit(&|g| g[0] ^= 0x04),                             // not_our_mac
        edit(&|g| g[12..14].copy_from_slice(&[0x86, 0xdd])), // not_ipv4
        edit(&|g| g[22] = 1),                                // bad_ip_checksum (TTL changed)
        edit(&|g| g[36..38].copy_from_slice(&[0, 53])), // not_our_port (checked before the UDP checksum)
        edit(&|g| *g.last_mut().unwrap() ^= 1),         // bad_udp_checksum
        ring::hairpin(&local, &[7; 300]),               // oversized (max_msg 256)
    ];
    for f in &bad {
        assert!(wtx.send_frame(f));
    }
    let mut arp = [0u8; 60];
    let asker = ([2, 0, 0, 0, 0, 9], Ipv4Addr::new(10, 0, 0, 9));
    frame::write_arp_request(&mut arp, asker.0, asker.1, local.ip).unwrap();
    assert!(wtx.send_frame(&arp));
    frame::write_arp_request(&mut arp, asker.0, asker.1, Ipv4Addr::new(10, 0, 0, 77)).unwrap();
    assert!(wtx.send_frame(&arp));

    let pkts = ring::receive(&mut rx, n, |rx| {
        let c = rx.counters();
        c.frames.total() + c.oversized + c.arp_answered >= 9
    });
    assert_eq!(pkts.len(), n, "requests delivered");
    let c = rx.counters();
    let f = c.frames;
    assert_eq!(
        (f.runt, f.not_our_mac, f.not_ipv4, f.bad_ip_checksum),
        (1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(
        (f.not_our_port, f.bad_udp_checksum, f.arp_not_for_us),
        (1, 1, 1),
        "{c:?}"
    );
    assert_eq!(f.total(), 7, "{c:?}");
    assert_eq!((c.oversized, c.arp_answered), (1, 1), "{c:?}");
    assert_eq!(rx.drops().oversized, 1);
    assert_eq!(
        rx.drops().bad_frame,
        7,
        "the dispatcher's final counters show them"
    );
    assert_eq!(
        dtx.sent(),
        1,
        "the ARP reply left on the dispatcher's queue"
    );

    // Each request is what was sent; answer it in place with a longer reply.
    let me = SocketAddrV4::new(local.ip, local.udp_port);
    let mut replies = Vec::new();
    for (i, mut p) in pkts.into_iter().enumerate() {
        assert_eq!(p.msg(), requests[i].as_slice());
        assert_eq!(p.peer(), me);
        assert!(p.buf_mut().len() >= 1400, "room for a long reply");
        let reply = format!("reply {i}: {}", "x".repeat(100 + i)).into_bytes();
        p.buf_mut()[..reply.len()].copy_from_slice(&reply);
        p.set_len(reply.len());
        assert!(wtx.send(p).is_none(), "DPDK takes the mbuf");
        replies.push(reply);
    }
    // A worker's replies wait for its flush (the worker loop's, when its ring runs dry).
    let before = wtx.sent();
    let mut early = Vec::new();
    assert_eq!(
        rx.rx_burst(&mut early, 32).unwrap(),
        0,
        "queued until the flush"
    );
    wtx.flush();
    assert_eq!(wtx.sent() - before, n as u64, "one burst");
    let back = ring::receive(&mut rx, n, |_| true);
    assert_eq!(back.len(), n, "replies looped back");
    for (i, p) in back.iter().enumerate() {
        assert_eq!(p.msg(), replies[i].as_slice());
        let f = p.frame();
        let ip_len = u16::from_be_bytes([f[16], f[17]]) as usize;
        let udp_len = u16::from_be_bytes([f[38], f[39]]) as usize;
        assert_eq!(
            (ip_len, udp_len),
            (28 + replies[i].len(), 8 + replies[i].len())
        );
        let (ip_sum, udp_sum) = dpdk::dpdk_checksums(f).expect("a UDP frame");
        assert_eq!(
            ip_sum,
            [f[24], f[25]],
            "IPv4 checksum agrees with rte_ipv4_cksum"
        );
        assert_eq!(
            udp_sum,
            [f[40], f[41]],
            "UDP checksum agrees with rte_ipv4_udptcp_cksum"
        );
    }
    let mut back = back.into_iter();
    // The dispatcher's own replies (rejections) leave on its queue.
    assert!(dtx.send(back.next().unwrap()).is_none());
    assert_eq!(dtx.sent(), 2);
    drop(back);

    // A full TX queue: bounded retries, then drops counted, never a failure.
    let burst = 1100;
    let sent = (0..burst)
        .filter(|_| wtx.send_frame(&ring::hairpin(&local, b"flood")))
        .count();
    assert!(sent < burst && sent >= 1000, "the ring holds ~1023: {sent}");
    assert_eq!(wtx.errors(), (burst - sent) as u64);
    assert_eq!(ring::receive(&mut rx, sent, |_| true).len(), sent);

    // A worker thread registers with EAL at start and gets its own lcore.
    let wtx = std::thread::spawn(move || {
        wtx.thread_init();
        let lcore = dpdk::current_lcore().expect("registered");
        assert_ne!(lcore, main_lcore);
        assert!(wtx.send_frame(&ring::hairpin(&local, b"from a worker thread")));
        wtx
    })
    .join()
    .expect("worker thread");
    assert_eq!(wtx.errors(), (burst - sent) as u64, "no new drops");
    let last = ring::receive(&mut rx, 1, |_| true);
    assert_eq!(last[0].msg(), b"from a worker thread");
    drop(last);

    // Every mbuf is back, except the two frames sitting in ring 1 (the
    // dispatcher's queue, which loops to an RX queue nobody polls).
    assert_eq!(rx.mbufs_in_use(), baseline + 2);
    assert_eq!(dtx.errors() + rx.drops().no_buffer, 0);
}

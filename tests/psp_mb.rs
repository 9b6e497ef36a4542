//! `net.wire: psp_mb` (`configs/psp-mb.yml`): the daemon answers what Perséphone's own
//! client sends (its `PSP_MB` request, built here byte by byte as its `gen_next_req`
//! does) with the 16-byte reply that client reads, and counts what it cannot answer
//! in that format.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::Duration;

use persephone::config::Config;
use persephone::proto::{self, Status};
use persephone::App;

/// u32 id, u32 type, u32 size (4), u32 run_ns: little-endian words.
fn psp_mb(words: [u32; 4]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn the_original_clients_requests_are_served_in_its_format() {
    // The shipped config, on an ephemeral port.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/psp-mb.yml");
    let mut cfg = Config::load_unvalidated(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    let server = App::new(cfg).start().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let to = server.local_addr();

    // Not PSP_MB requests: one byte short, a wrong size field, and one of our native
    // requests. Then a PSP_MB request of a type the server lacks.
    let mut native = vec![0; proto::HEADER_LEN + 8];
    proto::encode_request(&mut native, 1, 7, 0, &proto::spin_payload(100)).unwrap();
    let good = psp_mb([1, 1, 4, 100]);
    for bad in [&good[..15], &psp_mb([1, 1, 8, 100]), &native] {
        sock.send_to(bad, to).unwrap();
    }
    sock.send_to(&psp_mb([2, 9, 4, 100]), to).unwrap();

    // What Perséphone's client sends: its thread id in the top bits of the id; every
    // tenth request with stale bytes after the 16, as it may send them.
    let n = 200u32;
    let id = |i: u32| (3 << 27) | i;
    let ty = |i: u32| 1 + i % 2;
    for i in 0..n {
        let run_ns = if ty(i) == 1 { 1_000 } else { 20_000 };
        let mut req = psp_mb([id(i), ty(i), 4, run_ns]);
        if i % 10 == 0 {
            req.extend_from_slice(&[0xee; 6]);
        }
        sock.send_to(&req, to).unwrap();
    }
    let mut seen = HashSet::new();
    let mut buf = [0u8; 2048];
    for _ in 0..n {
        let (len, _) = sock.recv_from(&mut buf).expect("a reply");
        let reply = &buf[..len];
        assert_eq!(len, 16, "a PSP_MB reply: {reply:?}");
        let word = |k: usize| u32::from_le_bytes(reply[4 * k..4 * k + 4].try_into().unwrap());
        let i = word(0) ^ (3 << 27);
        assert!(
            i < n && seen.insert(i),
            "a reply to no request or twice: {reply:?}"
        );
        assert_eq!(word(1), ty(i), "the type echoed");
        assert_eq!((word(2), word(3)), (4, 0), "size 4 and run_ns zeroed");
    }

    let stats = server.shutdown();
    assert_eq!(stats.replies_with(Status::Ok), n as u64);
    assert_eq!(stats.rx_drops.bad_psp_mb, 3, "{stats}");
    assert_eq!(stats.replies_with(Status::UnknownType), 1, "{stats}");
    assert_eq!(
        stats.withheld, 1,
        "the unknown type's rejection is not sent"
    );
    assert_eq!(
        stats.received,
        n as u64 + 1,
        "the dropped ones are not received"
    );
    assert!(stats.balanced(), "{stats}");
}

/// The periodic stats carry the workers' own counters as the run goes (here the
/// overruns of `workers.budget_us`, whose `timeout` replies PSP_MB cannot carry and
/// so are withheld), not only the final report; and the final report counts each once.
#[test]
fn the_periodic_stats_show_what_the_workers_withheld() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/psp-mb.yml");
    let mut cfg = Config::load_unvalidated(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 10;
    cfg.workers.budget_us = Some(50);
    let server = App::new(cfg).start().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // 1 ms each, past the 50 µs budget: answered `timeout`, which PSP_MB withholds.
    for i in 0..5 {
        sock.send_to(&psp_mb([i, 1, 4, 1_000_000]), server.local_addr())
            .unwrap();
    }
    // Snapshots come every 10 ms: within 30 s one must show all five.
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let (mut seen, mut last) = (0, None);
    while std::time::Instant::now() < give_up {
        let Some((n, s)) = server.next_stats(seen, Duration::from_secs(1)) else {
            continue;
        };
        seen = n;
        // The worker publishes its counters after the completions the dispatcher
        // counts: wait for both.
        if (s.withheld, s.overruns, s.replies_with(Status::Timeout)) == (5, 5, 5) {
            last = Some(s);
            break;
        }
        assert!(s.withheld <= 5 && s.overruns <= 5, "{s}");
    }
    last.expect("a snapshot with the workers' counters");
    let end = server.shutdown();
    assert_eq!((end.withheld, end.overruns), (5, 5), "counted once: {end}");
    assert!(end.balanced(), "{end}");
}

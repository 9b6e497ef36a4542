//! Malformed network input: the daemon never panics, counts every bad datagram
//! under its reason, and keeps serving the good requests interleaved with them.

use std::net::UdpSocket;
use std::time::Duration;

use persephone::config::Config;
use persephone::dispatcher::Malformed;
use persephone::proto::{self, Header, Kind, ParseError, Status, HEADER_LEN};
use persephone::App;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const MAX_MSG: usize = 512;

fn good(id: u64) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN + 4];
    proto::encode_request(&mut buf, 1, id, 7, b"ping").unwrap();
    buf
}

/// What the daemon should make of a datagram.
enum Expect {
    Malformed(fn(&mut Malformed)),
    Oversized,
    UnknownType,
}

fn expect(d: &[u8]) -> Option<Expect> {
    if d.len() > MAX_MSG {
        return Some(Expect::Oversized);
    }
    Some(match Header::parse(d) {
        Err(ParseError::Short { .. }) => Expect::Malformed(|m| m.short += 1),
        Err(ParseError::BadMagic(_)) => Expect::Malformed(|m| m.bad_magic += 1),
        Err(ParseError::BadVersion(_)) => Expect::Malformed(|m| m.bad_version += 1),
        Err(ParseError::BadFlags(_)) => Expect::Malformed(|m| m.bad_flags += 1),
        Err(ParseError::BadLength { .. }) => Expect::Malformed(|m| m.bad_length += 1),
        Ok(h) if h.kind != Kind::Request => Expect::Malformed(|m| m.not_request += 1),
        Ok(h) if h.ty != 1 => Expect::UnknownType,
        Ok(_) => return None, // a valid request after all
    })
}

/// Hand-made bad datagrams, one of each kind.
fn crafted() -> Vec<Vec<u8>> {
    let g = good(0);
    let mut v = vec![Vec::new(), g[..10].to_vec(), g[..HEADER_LEN - 1].to_vec()];
    let mut m = g.clone();
    m[0] ^= 0xff;
    v.push(m);
    let mut m = g.clone();
    m[2] = 9;
    v.push(m);
    let mut m = g.clone();
    m[3] = 0x01;
    v.push(m);
    let mut m = g.clone();
    proto::make_reply(&mut m, Status::Ok, 4);
    v.push(m);
    let mut m = g.clone();
    m[24..28].copy_from_slice(&100u32.to_le_bytes());
    v.push(m);
    let mut m = g.clone();
    m[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    v.push(m);
    let mut m = g.clone();
    m[4..8].copy_from_slice(&77u32.to_le_bytes());
    v.push(m);
    let mut big = vec![0u8; MAX_MSG + 1];
    proto::encode_request(&mut big, 1, 1, 1, &vec![0; MAX_MSG + 1 - HEADER_LEN]).unwrap();
    v.push(big);
    v.push(vec![0xaa; 1400]);
    v
}

/// Random garbage, biased towards almost-valid headers.
fn random(rng: &mut SmallRng) -> Vec<u8> {
    let len = match rng.random_range(0..4) {
        0 => rng.random_range(0..HEADER_LEN + 8),
        1 => rng.random_range(0..MAX_MSG + 64),
        _ => HEADER_LEN + rng.random_range(0..16),
    };
    let mut d: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    if d.len() >= HEADER_LEN && rng.random_bool(0.7) {
        // Keep magic and version so the later checks get exercised.
        d[0..2].copy_from_slice(&proto::MAGIC.to_le_bytes());
        d[2] = proto::VERSION;
        if rng.random_bool(0.5) {
            d[3] = 0;
        }
        if rng.random_bool(0.5) {
            let n = (d.len() - HEADER_LEN) as u32;
            d[24..28].copy_from_slice(&n.to_le_bytes());
        }
    }
    d
}

#[test]
fn garbage_is_counted_by_reason_and_good_requests_are_still_served() {
    let cfg = Config::parse(&format!(
        "pin: false
dispatcher: {{ idle: park }}
workers: {{ number: 2, handler: echo, idle: park }}
policy: {{ kind: darc, window: 100 }}
net: {{ bind: 127.0.0.1:0, max_msg: {MAX_MSG} }}
requests: [{{ id: 1, name: PING }}]
stats: {{ interval_ms: 0 }}
"
    ))
    .unwrap();
    let server = App::new(cfg).start().unwrap();
    let addr = server.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut want = Malformed::default();
    let (mut oversized, mut unknown, mut good_sent, mut bad_sent) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = [0u8; 2048];
    let rounds = 300;
    for round in 0..rounds {
        let batch: Vec<Vec<u8>> = if round == 0 {
            crafted()
        } else {
            (0..8).map(|_| random(&mut rng)).collect()
        };
        let mut replies_due = 1;
        for d in &batch {
            match expect(d) {
                Some(Expect::Malformed(count)) => count(&mut want),
                Some(Expect::Oversized) => oversized += 1,
                Some(Expect::UnknownType) => {
                    unknown += 1;
                    replies_due += 1;
                }
                None => replies_due += 1, // random bytes that happen to be valid
            }
            sock.send_to(d, addr).unwrap();
            bad_sent += 1;
        }
        let id = 1_000_000 + round;
        sock.send_to(&good(id), addr).unwrap();
        good_sent += 1;
        // Every round ends with its good request answered; replies to valid-looking
        // garbage (unknown types) may come before it.
        let mut got_good = false;
        for _ in 0..replies_due {
            let (n, _) = sock
                .recv_from(&mut buf)
                .expect("the daemon stopped answering");
            let h = Header::parse(&buf[..n]).expect("the daemon sent a malformed reply");
            if h.id == id {
                assert_eq!(h.kind, Kind::Reply(Status::Ok));
                assert_eq!(&buf[HEADER_LEN..n], b"ping");
                got_good = true;
            }
        }
        assert!(got_good, "round {round}: no reply to the good request");
    }
    let stats = server.shutdown();
    assert_eq!(stats.malformed, want, "{stats}");
    assert_eq!(stats.rx_drops.oversized, oversized, "{stats}");
    assert!(
        oversized >= 2 && want.short >= 3 && want.bad_length >= 2,
        "the crafted cases ran"
    );
    assert!(
        stats.replies_with(Status::UnknownType) >= unknown,
        "{stats}"
    );
    assert!(stats.replies_with(Status::Ok) >= good_sent, "{stats}");
    assert_eq!(stats.received + oversized, good_sent + bad_sent, "{stats}");
    assert!(stats.balanced(), "{stats}");
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Twice the server's capacity for a few seconds: full queues answer `queue_full` at
/// once (nothing is silently lost), memory does not grow, and once the overload
/// stops the queues drain and requests are served again.
#[test]
fn overload_is_rejected_not_dropped_and_service_recovers() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    // One worker spinning 200 us per request: capacity 5 000 requests/s.
    let service_ns = 200_000u64;
    let cfg = Config::parse(
        "pin: false
dispatcher: { idle: park }
workers: { number: 1, handler: spin, idle: park }
policy: { kind: cfcfs }
net: { bind: 127.0.0.1:0 }
queues: { capacity: 64 }
requests: [{ id: 1, name: WORK }]
stats: { interval_ms: 10 }
",
    )
    .unwrap();
    let server = App::new(cfg).start().unwrap();
    let addr = server.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let rx_sock = sock.try_clone().unwrap();
    // Replies the kernel drops at our socket when the receiver thread is slow to run
    // (a loaded machine): counted, so that the accounting below stays exact.
    let client_drops = || persephone::net::udp::socket_drops(&sock).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (done, ok, rejected) = (done.clone(), ok.clone(), rejected.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, _)) = rx_sock.recv_from(&mut buf) {
                    match Header::parse(&buf[..n]).unwrap().kind {
                        Kind::Reply(Status::Ok) => ok.fetch_add(1, Ordering::Relaxed),
                        Kind::Reply(Status::QueueFull) => rejected.fetch_add(1, Ordering::Relaxed),
                        k => panic!("unexpected reply {k:?}"),
                    };
                }
            }
        })
    };

    // 10 000 requests/s (2x capacity) for 3 s, in bursts of 10 every millisecond.
    let mut payload = [0u8; HEADER_LEN + 8];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut rss_after_1s = None;
    while start.elapsed() < Duration::from_secs(3) {
        let due = (start.elapsed().as_micros() as u64) / 100;
        while sent < due {
            proto::encode_request(&mut payload, 1, sent, 0, &proto::spin_payload(service_ns))
                .unwrap();
            sock.send_to(&payload, addr).unwrap();
            sent += 1;
        }
        if rss_after_1s.is_none() && start.elapsed() > Duration::from_secs(1) {
            rss_after_1s = Some(rss_kib());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let rss_end = rss_kib();

    // The overload is over: wait (bounded) for every request to be answered and the
    // queue to drain, then check requests are served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::Relaxed)
        + rejected.load(Ordering::Relaxed)
        + server.stats().rx_drops.overflow
        + client_drops()
        < sent
    {
        assert!(
            Instant::now() < deadline,
            "replies missing after the overload: ok {} rejected {} server overflow {} \
             client drops {} of {sent}",
            ok.load(Ordering::Relaxed),
            rejected.load(Ordering::Relaxed),
            server.stats().rx_drops.overflow,
            client_drops()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..20 {
        proto::encode_request(
            &mut payload,
            1,
            1_000_000 + i,
            0,
            &proto::spin_payload(1_000),
        )
        .unwrap();
        let before = ok.load(Ordering::Relaxed);
        sock.send_to(&payload, addr).unwrap();
        while ok.load(Ordering::Relaxed) == before {
            assert!(Instant::now() < deadline, "not served after the overload");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    done.store(true, Ordering::Relaxed);
    receiver.join().unwrap();
    let stats = server.shutdown();

    let (ok, rejected) = (ok.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    let lost_here = client_drops();
    assert!(
        rejected > sent / 10,
        "a 2x overload must be rejected in part: {rejected} of {sent}\n{stats}"
    );
    assert!(ok > 0);
    // Everything sent was answered or counted by the kernel as dropped.
    // (A reply dropped at our socket is one the daemon sent: `lost_here`.)
    assert_eq!(
        ok + rejected + lost_here + stats.rx_drops.overflow,
        sent + 20,
        "client drops {lost_here}\n{stats}"
    );
    assert_eq!(
        stats.replies_with(Status::Ok) + stats.replies_with(Status::QueueFull),
        ok + rejected + lost_here,
        "{stats}"
    );
    assert!(stats.replies_with(Status::QueueFull) >= rejected, "{stats}");
    assert!(stats.balanced(), "{stats}");
    // Bounded memory: nothing grows with the backlog (allow allocator noise).
    let growth = rss_end.saturating_sub(rss_after_1s.unwrap());
    assert!(
        growth < 8 * 1024,
        "RSS grew by {growth} KiB during the overload"
    );
}

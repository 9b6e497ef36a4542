//! The examples serve: `examples/custom_handler` is compiled into this test from its
//! own source and run through its `serve` function on loopback, answering HASH and
//! PRIMES requests correctly and refusing bad ones. (psp-client drives the same
//! service under load in `client/tests/examples.rs`.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use persephone::config::Config;
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};

#[allow(dead_code)]
#[path = "../examples/custom_handler/main.rs"]
mod custom_handler;

use custom_handler::service::{self, HASH, PRIMES};

/// The example's documented config, on an ephemeral port.
fn config() -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.yml");
    let mut cfg = Config::load_unvalidated(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    cfg
}

fn ask(
    sock: &UdpSocket,
    server: SocketAddr,
    ty: u32,
    id: u64,
    payload: &[u8],
) -> (Header, Vec<u8>) {
    let mut buf = vec![0; HEADER_LEN + payload.len()];
    proto::encode_request(&mut buf, ty, id, 0, payload).unwrap();
    sock.send_to(&buf, server).unwrap();
    let mut r = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut r).expect("no reply");
    let h = Header::parse(&r[..n]).unwrap();
    assert_eq!(h.id, id);
    (h, r[HEADER_LEN..n].to_vec())
}

#[test]
fn custom_handler_serves_its_types_and_refuses_bad_payloads() {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            custom_handler::serve(config(), &stop, |a| addr_tx.send(a).unwrap())
        })
    };
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example did not start");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let answer = |p: &[u8]| u64::from_le_bytes(p.try_into().expect("an 8-byte answer"));
    let (h, p) = ask(&sock, addr, HASH, 1, b"hello");
    assert_eq!(h.kind, Kind::Reply(Status::Ok));
    assert_eq!(answer(&p), service::fnv1a(b"hello"));
    assert_eq!(service::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    for (n, primes) in [(0u64, 0u64), (2, 1), (100, 25), (100_000, 9_592)] {
        let (h, p) = ask(&sock, addr, PRIMES, 10 + n, &n.to_le_bytes());
        assert_eq!(h.kind, Kind::Reply(Status::Ok), "n = {n}");
        assert_eq!(answer(&p), primes, "primes <= {n}");
    }
    // Bad payloads are refused, and the service goes on.
    let too_big = (service::MAX_N + 1).to_le_bytes();
    for (id, payload) in [(20, &b"short"[..]), (21, &too_big[..])] {
        let (h, p) = ask(&sock, addr, PRIMES, id, payload);
        assert_eq!(h.kind, Kind::Reply(Status::BadRequest), "{payload:?}");
        assert!(p.is_empty());
    }
    let (h, p) = ask(&sock, addr, PRIMES, 22, &10u64.to_le_bytes());
    assert_eq!((h.kind, answer(&p)), (Kind::Reply(Status::Ok), 4));
    // The config's types 1 and 2 were replaced by the ones declared in code; others
    // are unknown.
    let (h, _) = ask(&sock, addr, 3, 23, b"");
    assert_eq!(h.kind, Kind::Reply(Status::UnknownType));

    stop.store(true, Ordering::Relaxed);
    let stats = server.join().unwrap().unwrap();
    assert_eq!(stats.received, 9);
    assert_eq!(stats.answered(), 9);
    assert_eq!(stats.replies_with(Status::Ok), 6);
    assert_eq!(stats.replies_with(Status::BadRequest), 2);
    assert_eq!(stats.replies_with(Status::UnknownType), 1);
    assert_eq!(stats.types[0].name, "HASH");
}

#[test]
fn the_example_counts_primes_like_trial_division() {
    let is_prime = |k: u64| k >= 2 && (2..).take_while(|d| d * d <= k).all(|d| k % d != 0);
    let mut s = service::Service::new();
    let mut want = 0;
    for n in 0..3000u64 {
        want += is_prime(n) as u64;
        assert_eq!(s.count_primes(n), want, "n = {n}");
    }
}

/// The configuration reference in README.md ("## Configuration", the first YAML block)
/// is a valid config as written: every key exists and every value passes validation.
#[test]
fn the_readme_configuration_reference_is_valid() {
    let readme = include_str!("../README.md");
    let section = &readme[readme.find("## Configuration").expect("the section")..];
    let start = section.find("```yaml\n").expect("a YAML block") + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").expect("its end")];
    let mut cfg = Config::parse_unvalidated(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(cfg.cpus.len(), cfg.workers.number + 1, "cpus for pin: true");
    // It shows every policy's keys at once: only those of the other policies (and
    // EDF's per-type deadline) draw the no-effect warning.
    for w in cfg.unused_settings() {
        let edf_deadline = w.starts_with("requests[") && w.contains("].deadline_ns is set");
        assert!(w.starts_with("policy.") || edf_deadline, "{w}");
    }
    // Which cores exist depends on the machine.
    cfg.pin = false;
    cfg.validate().unwrap_or_else(|e| panic!("{e}\n{yaml}"));
}

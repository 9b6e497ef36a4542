//! The engine against a scripted fake server on loopback: every request is accounted
//! for, malformed and duplicate replies are counted (not matched, not fatal), and
//! latency is measured from the scheduled send time.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use persephone::proto::{self, Header, Kind, Status};
use persephone::workload::Workload;
use psp_client::engine::{self, Live, Options, INDEX_BITS};
use psp_client::measure::{self, Meta, Rules};
use psp_client::schedule::{Arrival, Phase, Schedule};

/// A schedule of one phase of `preset` at `rate` for `ms` ms, after `warmup_ms` of
/// warm-up.
fn one_phase(
    preset: &str,
    rate: f64,
    ms: u64,
    warmup_ms: u64,
    arrival: Arrival,
    seed: u64,
) -> Schedule {
    Schedule::build(
        &[Phase {
            workload: Workload::preset(preset).unwrap(),
            rate,
            load: None,
            duration: Duration::from_millis(ms),
        }],
        Duration::from_millis(warmup_ms),
        arrival,
        seed,
    )
    .unwrap()
}

/// Plays `schedule` against `serve`, which runs on its own thread until the run is over
/// (then its flag is set).
fn run_against(
    schedule: &Schedule,
    opts: &Options,
    serve: impl FnOnce(&AtomicBool) + Send,
) -> engine::Outcome {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| serve(&stop));
        let o = engine::run(schedule, opts, &Live::default(), |_| {});
        stop.store(true, Ordering::Release);
        o
    })
    .unwrap()
}

/// The measuring rules of a run with `opts`: 10 µs of slack, its timeout.
fn rules(opts: &Options) -> Rules {
    Rules {
        slack: Duration::from_micros(10),
        timeout: opts.timeout,
    }
}

/// What the fake server does with request number `i`.
fn script(i: u64) -> &'static str {
    match i % 50 {
        7 => "garbage-then-reply",
        8 => "reply-twice",
        9 => "drop",
        10 => "queue-full",
        11 => "wrong-id",
        _ => "reply",
    }
}

fn fake_server(sock: UdpSocket, stop: &AtomicBool) {
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Acquire) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(h) = Header::parse(&buf[..n]) else {
            continue;
        };
        assert_eq!(h.kind, Kind::Request);
        // The spin payload carries the service time.
        assert!(proto::parse_spin_payload(&buf[proto::HEADER_LEN..n]).is_some());
        let i = h.id & ((1 << INDEX_BITS) - 1);
        let status = if script(i) == "queue-full" {
            Status::QueueFull
        } else {
            Status::Ok
        };
        let len = proto::make_reply(&mut buf[..n], status, 0);
        match script(i) {
            "drop" => continue,
            "garbage-then-reply" => {
                sock.send_to(b"not a reply", from).unwrap();
            }
            "reply-twice" => {
                sock.send_to(&buf[..len], from).unwrap();
            }
            "wrong-id" => {
                buf[8..16].copy_from_slice(&(h.id ^ (1 << 50)).to_le_bytes());
            }
            _ => {}
        }
        sock.send_to(&buf[..len], from).unwrap();
    }
}

#[test]
fn every_request_is_accounted_for_against_a_scripted_server() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    psp_client::sys::set_buffers(&server, 4 << 20);
    let addr = server.local_addr().unwrap();
    let schedule = one_phase("tpcc", 10_000.0, 200, 20, Arrival::Exponential, 5);
    let mut opts = Options::new(addr);
    // Generous: nothing the fake server answers may be counted lost on a busy machine.
    opts.timeout = Duration::from_secs(1);
    let outcome = run_against(&schedule, &opts, |stop| fake_server(server, stop));
    let rules = rules(&opts);
    let reports = measure::reports(&schedule, &outcome, &Meta::default(), &rules);
    assert_eq!(reports.len(), 1, "warm-up is not reported");
    let all = reports[0].overall();
    let span = &schedule.spans[1];
    let measured = span.first..span.end;
    let count = |what: &str| {
        measured
            .clone()
            .filter(|&i| script(i as u64) == what)
            .count() as u64
    };
    assert_eq!(all.sent, (span.end - span.first) as u64);
    assert_eq!(all.lost, count("drop") + count("wrong-id"));
    assert_eq!(all.rejected_for(Status::QueueFull), count("queue-full"));
    assert_eq!(all.ok + all.rejected_total() + all.lost, all.sent);
    // Over the whole run (warm-up included): one garbage datagram per scripted request,
    // one duplicate and one foreign id each.
    let whole = |what: &str| {
        (0..schedule.len())
            .filter(|&i| script(i as u64) == what)
            .count() as u64
    };
    assert_eq!(outcome.malformed, whole("garbage-then-reply"));
    assert_eq!(outcome.unexpected, whole("reply-twice") + whole("wrong-id"));
    assert_eq!(outcome.send_errors, 0);
    // Latency is measured from the scheduled time: never below the actual send delay.
    for i in measured {
        if let (measure::Fate::Replied { latency_ns, .. }, _, delay) =
            measure::judge(&schedule, &outcome, &rules, i)
        {
            assert!(latency_ns >= delay, "request {i}: {latency_ns} < {delay}");
        }
    }
    for t in &reports[0].types {
        assert!(t.sent > 0, "{} never drawn", t.name);
    }
}

/// Answers every request, and with every 10th also forges `ok` replies to the next
/// three (their ids and types, from `schedule`) before the client has sent them.
fn forging_server(sock: UdpSocket, stop: &AtomicBool, schedule: &Schedule) -> u64 {
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut forged = 0;
    while !stop.load(Ordering::Acquire) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let h = Header::parse(&buf[..n]).unwrap();
        let i = h.id & ((1 << INDEX_BITS) - 1);
        let len = proto::make_reply(&mut buf[..n], Status::Ok, 0);
        sock.send_to(&buf[..len], from).unwrap();
        if i % 10 != 0 {
            continue;
        }
        for k in 1..=3 {
            let j = (i + k) as usize;
            if j >= schedule.len() {
                break;
            }
            let ty = schedule.types[schedule.ty[j] as usize].id;
            let mut fake = [0u8; 64];
            let l = proto::encode_request(&mut fake, ty, h.id + k, 0, &[]).unwrap();
            let l = proto::make_reply(&mut fake[..l], Status::Ok, 0);
            sock.send_to(&fake[..l], from).unwrap();
            forged += 1;
        }
    }
    forged
}

/// A reply to a request not yet sent is no reply to it: counted unexpected, and the
/// request's own reply still measures it (before, the forgery matched and the request
/// showed a latency of 0, its real reply counted unexpected).
#[test]
fn a_reply_ahead_of_its_request_is_unexpected() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    // 2 ms apart: a forgery comes long before the request it answers is due.
    let schedule = one_phase("high-bimodal", 500.0, 200, 0, Arrival::Uniform, 3);
    let mut opts = Options::new(addr);
    opts.timeout = Duration::from_secs(1);
    let forged = std::sync::atomic::AtomicU64::new(0);
    let outcome = run_against(&schedule, &opts, |stop| {
        forged.store(forging_server(server, stop, &schedule), Ordering::Release);
    });
    let forged = forged.load(Ordering::Acquire);
    assert!(forged >= 20, "only {forged} forged");
    // Each forgery, or the real reply it would have displaced, is unexpected.
    assert_eq!(outcome.unexpected, forged);
    let rules = rules(&opts);
    for i in 0..schedule.len() {
        if let (measure::Fate::Replied { latency_ns, .. }, _, _) =
            measure::judge(&schedule, &outcome, &rules, i)
        {
            assert!(latency_ns > 0, "request {i} answered before it was due");
        }
    }
}

#[test]
fn a_server_that_never_answers_loses_everything_and_the_run_ends() {
    // A bound socket that never reads: every request is lost after the timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let schedule = one_phase("high-bimodal", 2_000.0, 50, 0, Arrival::Uniform, 1);
    let mut opts = Options::new(silent.local_addr().unwrap());
    opts.timeout = Duration::from_millis(50);
    let o = engine::run(&schedule, &opts, &Live::default(), |_| {}).unwrap();
    let rules = rules(&opts);
    let r = &measure::reports(&schedule, &o, &Meta::default(), &rules)[0];
    let all = r.overall();
    assert_eq!(all.sent, 99);
    assert_eq!(all.lost, 99);
    assert_eq!(all.ok, 0);
    assert!(all.latency_us().is_none());
}

/// Answers every request but the first `drop`.
fn dropping_server(sock: UdpSocket, stop: &AtomicBool, drop: u64) {
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut seen = 0;
    while !stop.load(Ordering::Acquire) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        seen += 1;
        if seen > drop {
            let len = proto::make_reply(&mut buf[..n], Status::Ok, 0);
            sock.send_to(&buf[..len], from).unwrap();
        }
    }
}

#[test]
fn lost_requests_free_their_places_under_max_concurrency() {
    // The first 3 requests are lost. With at most 3 outstanding, the 4th waits for the
    // first one's timeout; then the lost ones no longer count, and the rest are
    // answered. (If lost requests held their places for good, every later send would
    // wait out its own timeout and be lost: not one `ok`.)
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let schedule = one_phase("high-bimodal", 500.0, 100, 0, Arrival::Uniform, 1);
    let mut opts = Options::new(addr);
    opts.timeout = Duration::from_millis(100);
    opts.max_concurrency = Some(3);
    let o = run_against(&schedule, &opts, |stop| dropping_server(server, stop, 3));
    let all = measure::reports(&schedule, &o, &Meta::default(), &rules(&opts))[0].overall();
    assert_eq!(all.sent, 49);
    assert!(o.sent_at.iter().all(|&t| t != 0), "every request was sent");
    assert!(all.lost >= 3);
    // Once the first timeouts free their places the backlog goes out (requests in
    // the second half have 50 ms or more to spare): some are answered in time. The
    // bound is low so that a loaded machine cannot fail it; without the fix not one is.
    assert!(
        all.ok >= 5,
        "{} ok of {} sent, {} lost",
        all.ok,
        all.sent,
        all.lost
    );
}

#[test]
fn max_concurrency_delays_sends_instead_of_dropping_them() {
    // A silent server never answers, so with at most 3 requests outstanding every later
    // send waits for the cap (up to the timeout): all requests still go out, late, and
    // their lateness counts (no request silently skipped).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let schedule = one_phase("high-bimodal", 2_000.0, 10, 0, Arrival::Uniform, 1);
    let mut opts = Options::new(silent.local_addr().unwrap());
    opts.timeout = Duration::from_millis(20);
    opts.max_concurrency = Some(3);
    let o = engine::run(&schedule, &opts, &Live::default(), |_| {}).unwrap();
    let rules = rules(&opts);
    let all = measure::reports(&schedule, &o, &Meta::default(), &rules)[0].overall();
    assert_eq!(all.sent, 19);
    assert!(o.sent_at.iter().all(|&t| t != 0), "every request was sent");
    assert_eq!(all.lost, 19);
    // Requests 4.. waited for the cap: at least 16 late sends.
    assert!(all.late >= 16, "{} late", all.late);
}

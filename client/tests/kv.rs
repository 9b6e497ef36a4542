//! The kv workloads end to end: the KV store served by the daemon (in-process, from
//! `configs/kv.yml` on an ephemeral port) under psp-client's `kv` and `kv-99.5` loads.
//! No request may be lost and every answer is checked against the values the store
//! was pre-populated with; a client that expects other values sees every answer wrong.

use std::time::Duration;

use persephone::config::Config;
use persephone::proto::Status;
use persephone::App;
use psp_client::config::Plan;
use psp_client::kv::{KeyDist, KvSpec};
use psp_client::measure::{self, Meta};
use psp_client::runner::Net;

/// configs/kv.yml with `keys` keys of `value_size` bytes, on an ephemeral port, with
/// queues and buffers for every request of a test run: a machine busy with other work
/// may stall the daemon for a while, which must delay requests, not reject them.
fn server_config(keys: u64, value_size: usize) -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/kv.yml");
    let mut cfg = Config::load(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.queues.capacity = 4096;
    cfg.net.buffers = 4096;
    cfg.stats.interval_ms = 0;
    let kv = cfg.kv.as_mut().unwrap();
    kv.keys = keys;
    kv.value_size = value_size;
    cfg
}

fn plan(server: std::net::SocketAddr, preset: &str, spec: KvSpec, rate: f64) -> Plan {
    let mut p = Plan::new(
        server,
        spec.preset(preset).unwrap(),
        rate,
        Duration::from_secs(1),
    );
    p.meta = Meta {
        label: format!("e2e-{preset}"),
        policy: "darc".into(),
        workers: Some(2),
    };
    p.warmup = Duration::from_millis(200);
    // Generous: a loaded machine may delay replies, but must not lose them.
    p.timeout = Duration::from_secs(10);
    p.kv = Some(spec);
    p
}

/// Runs `preset` at `rate` against a fresh KV daemon and checks that nothing was
/// lost and every answer was verified.
fn run_and_verify(preset: &str, spec: KvSpec, rate: f64) {
    let server = App::new(server_config(spec.keys, spec.value_size))
        .start()
        .unwrap();
    let p = plan(server.local_addr(), preset, spec, rate);
    let result = psp_client::runner::run_point(&p, &mut Net::Udp, &p.points[0], 0, 1);
    let stats = server.shutdown();
    let (reports, outcome, schedule) = result.unwrap();
    assert_eq!(stats.answered(), stats.received);
    assert_eq!(
        stats.received,
        schedule.len() as u64,
        "the daemon saw every request"
    );
    let r = &reports[0];
    assert!(schedule.len() < 4096, "a run must fit the queues");
    for t in &r.types {
        assert!(t.sent > 0, "{preset}: no {} sent", t.name);
        assert_eq!(t.lost, 0, "{preset}: {} lost", t.name);
        assert_eq!(
            t.ok, t.sent,
            "{preset}: {} not all ok (rejected {:?})",
            t.name, t.rejected
        );
    }
    let checks = measure::checks(&schedule, &outcome);
    assert_eq!(checks.len(), 2, "warm-up and the measured phase");
    let measured = &checks[1];
    assert_eq!(measured.phase, Some(0));
    for t in &r.types {
        let c = measured.types.iter().find(|c| c.id == t.id).unwrap();
        // Every answer of the measured window, GETs and SCANs, was checked and right.
        assert_eq!((c.verified, c.wrong), (t.ok, 0), "{preset} {}", t.name);
    }
    assert_eq!(checks.iter().map(|c| c.wrong()).sum::<u64>(), 0);
    // The classifier put GETs and SCANs in their own queues.
    let accepted = |name: &str| {
        stats
            .types
            .iter()
            .find(|t| t.name == name)
            .map_or(0, |t| t.accepted)
    };
    let sent = |name: &str| {
        let id = if name == "GET" { 1 } else { 2 };
        (0..schedule.len())
            .filter(|&i| schedule.types[schedule.ty[i] as usize].id == id)
            .count() as u64
    };
    assert_eq!(accepted("GET"), sent("GET"));
    assert_eq!(accepted("SCAN"), sent("SCAN"));
}

#[test]
fn kv_50_50_uniform_loses_nothing_and_every_answer_is_right() {
    let spec = KvSpec {
        keys: 20_000,
        value_size: 32,
        scan_len: 256,
        dist: KeyDist::Uniform,
    };
    run_and_verify("kv", spec, 1000.0);
}

#[test]
fn kv_99_5_zipf_loses_nothing_and_every_answer_is_right() {
    let spec = KvSpec {
        keys: 20_000,
        value_size: 16,
        scan_len: 100,
        dist: KeyDist::Zipf(0.99),
    };
    run_and_verify("kv-99.5", spec, 1500.0);
}

#[test]
fn answers_for_other_values_are_counted_wrong_and_fail_the_run() {
    // The server stores 16-byte values; the client expects 32: every answer is wrong.
    let server = App::new(server_config(5_000, 16)).start().unwrap();
    let spec = KvSpec {
        keys: 5_000,
        value_size: 32,
        scan_len: 10,
        dist: KeyDist::Uniform,
    };
    let p = plan(server.local_addr(), "kv", spec, 500.0);
    let (reports, outcome, schedule) =
        psp_client::runner::run_point(&p, &mut Net::Udp, &p.points[0], 0, 1).unwrap();
    // Wrong answers are not `ok` in the report: they are handler errors.
    for t in &reports[0].types {
        assert!(t.sent > 0);
        assert_eq!(t.ok, 0, "{}", t.name);
        assert_eq!(t.rejected_for(Status::HandlerError), t.sent, "{}", t.name);
    }
    let checks = measure::checks(&schedule, &outcome);
    assert!(checks
        .iter()
        .all(|c| c.types.iter().all(|t| t.verified == 0 && t.wrong > 0)));
    // The whole run fails, after printing what it measured.
    let mut out = Vec::new();
    let e = psp_client::runner::run(&p, &mut out)
        .unwrap_err()
        .to_string();
    server.shutdown();
    let text = String::from_utf8(out).unwrap();
    assert!(e.contains("kv replies were wrong"), "{e}");
    assert!(
        text.contains("checked answers (phase 0): GET 0 verified"),
        "{text}"
    );
}

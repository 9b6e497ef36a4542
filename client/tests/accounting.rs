//! The client and the daemon agree on every request: sent = ok + rejected + lost on
//! the client, and the daemon's counters match the client's, also under overload and
//! when a client is killed mid-run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use persephone::config::Config;
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
use persephone::{App, Server};

/// One worker burning what each request asks, a small queue so overload is rejected.
fn server() -> Server {
    let cfg = Config::parse(
        "pin: false
dispatcher: { idle: park }
workers: { number: 1, handler: spin, idle: park }
policy: { kind: cfcfs }
net: { bind: 127.0.0.1:0 }
queues: { capacity: 16 }
requests: [{ id: 1, name: WORK }]
stats: { interval_ms: 5 }
",
    )
    .unwrap();
    App::new(cfg).start().unwrap()
}

const WORKLOAD: &str = "name: work
types:
  - { id: 1, name: WORK, ratio: 1, service: { kind: constant, ns: 100000 } }
";

fn client(server: &Server, dir: &tempfile::TempDir, rate: u32, duration: &str) -> Command {
    let wl = dir.path().join("workload.yml");
    std::fs::write(&wl, WORKLOAD).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_psp-client"));
    c.args(["--server", &server.local_addr().to_string()])
        .args(["--workload", wl.to_str().unwrap()])
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            duration,
            "--warmup",
            "0",
        ])
        .args(["--timeout", "2s", "-q"])
        .arg("--outdir")
        .arg(dir.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn client_and_daemon_agree_under_overload() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    // 1.5x the worker's 10 000 requests/s: part of the load must be rejected.
    let status = client(&server, &dir, 15_000, "2s").status().unwrap();
    // Under 95 % schedule adherence the client marks the run invalid but still
    // reports; only a crash or a bad flag is a failure here.
    assert!(status.code().is_some(), "client killed by a signal");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    let all = &json["runs"][0]["overall"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let (sent, ok, lost) = (n(&all["sent"]), n(&all["ok"]), n(&all["lost"]));
    let rejected: u64 = all["rejected"].as_object().unwrap().values().map(n).sum();
    let queue_full = n(&all["rejected"]["queue_full"]);
    assert_eq!(sent, ok + rejected + lost, "client: {all}");

    wait_until("the daemon to go idle", || {
        let s = server.stats();
        s.received >= sent && s.in_flight == 0
    });
    let stats = server.shutdown();
    assert!(stats.balanced(), "{stats}");
    // Loopback loses nothing unless the kernel says so.
    assert_eq!(stats.received + stats.rx_drops.overflow, sent, "{stats}");
    assert_eq!(stats.replies_with(Status::Ok), ok, "{stats}");
    assert_eq!(stats.replies_with(Status::QueueFull), queue_full, "{stats}");
    assert_eq!(lost, stats.rx_drops.overflow, "{stats}\nclient: {all}");
    assert!(
        queue_full > 0,
        "a 1.5x overload must be rejected in part: {all}"
    );
}

#[test]
fn a_client_killed_mid_run_leaves_the_daemon_serving() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = client(&server, &dir, 5_000, "60s").spawn().unwrap();
    wait_until("the client's requests", || server.stats().received > 500);
    child.kill().unwrap();
    child.wait().unwrap();
    // The daemon answers what it accepted (to a socket nobody reads) and goes idle.
    wait_until("the daemon to drain", || server.stats().in_flight == 0);

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = proto::encode_request(&mut buf, 1, 7, 0, &proto::spin_payload(1_000)).unwrap();
    sock.send_to(&buf[..n], server.local_addr()).unwrap();
    let (len, _) = sock.recv_from(&mut buf).unwrap();
    let h = Header::parse(&buf[..len]).unwrap();
    assert_eq!((h.id, h.kind), (7, Kind::Reply(Status::Ok)));
    assert_eq!(len, HEADER_LEN);

    let stats = server.shutdown();
    assert!(stats.balanced(), "{stats}");
    assert_eq!(stats.in_flight, 0);
}

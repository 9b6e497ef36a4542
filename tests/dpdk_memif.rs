//! End to end over DPDK: the `psp-app` binary (built with `--features dpdk`) serves
//! on a `net_memif` server port, and a second process, this test binary re-run as a
//! client (`net::dpdk::DpdkClient` on the memif client port), resolves the server's
//! MAC by ARP and drives 10 000 requests through it, under each policy.
//!
//! Each EAL runs in its own process with `--no-huge --no-pci` and its own
//! `--file-prefix`. The server starts first (it prints `listening on` once its port
//! listens), the client retries the device start and waits for the link, the server
//! is stopped with SIGTERM only after the client is done, the client lets go of its
//! port only after the server has exited (so no side is polling when the memif link
//! goes down), and every wait is bounded.
#![cfg(feature = "dpdk")]

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use persephone::net::dpdk::{self, ClientConfig, DpdkClient};
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
use test_support::{counter, kill, lines_of, read, wait_timeout, Cleanup};

const ROLE: &str = "PSP_DPDK_MEMIF_ROLE";
const SOCKET: &str = "PSP_DPDK_MEMIF_SOCKET";
const PREFIX: &str = "PSP_DPDK_MEMIF_PREFIX";
const TEST: &str = "PSP_DPDK_MEMIF_TEST";

const SERVER_MAC: &str = "02:00:00:00:00:01";
const CLIENT_MAC: &str = "02:00:00:00:00:02";
const WORKERS: u16 = 2;
const REQUESTS: u64 = 10_000;
/// Server start, client run, server shutdown: each bounded by this.
const STEP: Duration = Duration::from_secs(120);

/// The three scenarios share the machine's two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn cfcfs_serves_10k_requests_over_memif() {
    scenario("cfcfs_serves_10k_requests_over_memif", "cfcfs");
}

#[test]
fn dfcfs_serves_10k_requests_over_memif() {
    scenario("dfcfs_serves_10k_requests_over_memif", "dfcfs");
}

#[test]
fn darc_serves_10k_requests_over_memif() {
    scenario("darc_serves_10k_requests_over_memif", "darc");
}

fn scenario(test: &str, policy: &str) {
    if std::env::var(ROLE).as_deref() == Ok("client") {
        // Re-run by `parent` below, as the client process; only the matching test
        // runs (it is selected with --exact).
        return client();
    }
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    parent(test, policy);
}

fn request(ty: u32, id: u64, service_ns: u64) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN + 8];
    let n = proto::encode_request(&mut buf, ty, id, 0, &proto::spin_payload(service_ns)).unwrap();
    buf.truncate(n);
    buf
}

/// The client process: ARP, a junk datagram, an unknown type, then 10 000
/// requests of two types with at most 32 outstanding; every reply checked.
fn client() {
    let socket = PathBuf::from(std::env::var(SOCKET).unwrap());
    let prefix = std::env::var(PREFIX).unwrap();
    dpdk::init_eal(&dpdk::memif_eal_args(
        &prefix, "client", &socket, CLIENT_MAC,
    ))
    .expect("client EAL");
    let runtime_dir = dpdk::runtime_dir();
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6789);
    let mut cfg = ClientConfig::new(0, Ipv4Addr::new(10, 0, 0, 2), 4000, server);
    cfg.rx_queues = WORKERS + 1;
    cfg.start_timeout = Duration::from_secs(30);
    let mut c = DpdkClient::connect(&cfg).expect("connect (ARP)");
    assert_eq!(
        Some(c.server_mac()),
        dpdk::parse_mac(SERVER_MAC),
        "learnt by ARP"
    );

    let deadline = Instant::now() + Duration::from_secs(100);
    let wait_one = |c: &mut DpdkClient| -> Header {
        let mut got = None;
        while got.is_none() {
            assert!(Instant::now() < deadline, "no reply");
            if c.recv(|p| got = Some(Header::parse(p).expect("well-formed reply"))) == 0 {
                std::thread::yield_now();
            }
        }
        got.unwrap()
    };

    assert!(c.send(&[0xab; 40]), "junk sent"); // bad magic: counted, never answered
    assert!(c.send(&request(77, 5, 0)));
    let h = wait_one(&mut c);
    assert_eq!(
        (h.kind, h.id, h.ty),
        (Kind::Reply(Status::UnknownType), 5, 77)
    );

    let mut replies: HashMap<u64, Header> = HashMap::new();
    let (mut sent, window) = (0u64, 32u64);
    while (replies.len() as u64) < REQUESTS {
        assert!(
            Instant::now() < deadline,
            "only {} of {REQUESTS} replies; {:?}",
            replies.len(),
            c.counters()
        );
        while sent < REQUESTS && sent - (replies.len() as u64) < window {
            let ty = 1 + (sent % 2) as u32;
            let service = if ty == 1 { 1_000 } else { 5_000 };
            assert!(c.send(&request(ty, sent, service)), "TX queue full");
            sent += 1;
        }
        let got = c.recv(|p| {
            let h = Header::parse(p).expect("well-formed reply");
            assert!(
                replies.insert(h.id, h).is_none(),
                "duplicate reply {}",
                h.id
            );
        });
        if got == 0 {
            std::thread::yield_now();
        }
    }
    for id in 0..REQUESTS {
        let h = &replies[&id];
        assert_eq!(h.kind, Kind::Reply(Status::Ok), "request {id}");
        assert_eq!(h.ty, 1 + (id % 2) as u32, "request {id}");
    }
    let counters = c.counters();
    assert_eq!(counters.tx_dropped, 0, "{counters:?}");
    assert_eq!(
        counters.frames.total() + counters.foreign,
        0,
        "{counters:?}"
    );
    println!("client: {REQUESTS} replies, {counters:?}");
    // Stay connected, and not polling, until the parent has stopped the server (it
    // then closes our stdin): a memif peer that disconnects while the other side is
    // inside rx_burst can crash that side in DPDK 22.11's memif PMD (README, DPDK,
    // Limits). This way neither side polls when the link goes down.
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    drop(c);
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn parent(test: &str, policy: &str) {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("psp-dpdk-memif-{pid}-{policy}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(vec![
        dir.clone(),
        dpdk::runtime_dir_for(&format!("psp-memif-srv-{pid}-{policy}")),
    ]);
    let socket = dir.join("memif.sock");
    let args = dpdk::memif_eal_args(
        &format!("psp-memif-srv-{pid}-{policy}"),
        "server",
        &socket,
        SERVER_MAC,
    );
    let cfg = dir.join("server.yml");
    std::fs::write(
        &cfg,
        format!(
            "pin: false
dispatcher: {{ idle: park, drain_timeout_ms: 5000 }}
workers: {{ number: {WORKERS}, handler: spin, idle: park }}
policy: {{ kind: {policy}, window: 500 }}
net:
  backend: dpdk
  eal_args: {args:?}
  port: 0
  ip: 10.0.0.1
  udp_port: 6789
requests:
  - {{ id: 1, name: SHORT, mean_ns: 1000 }}
  - {{ id: 2, name: LONG, mean_ns: 5000 }}
stats: {{ interval_ms: 200 }}
"
        ),
    )
    .unwrap();

    let server_log = dir.join("server.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_psp-app"))
        .arg("--cfg")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(File::create(&server_log).unwrap())
        .spawn()
        .expect("spawn psp-app");
    let lines = lines_of(server.stdout.take().unwrap());
    let mut procs = Procs(vec![server]);
    let first = lines.recv_timeout(STEP);
    assert_eq!(
        first.as_deref().ok(),
        Some("listening on 10.0.0.1:6789"),
        "psp-app did not start:\n{}",
        read(&server_log)
    );

    let client_log = dir.join("client.log");
    let client = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, "client")
        .env(SOCKET, &socket)
        .env(PREFIX, format!("psp-memif-cli-{pid}-{policy}"))
        .env(TEST, test)
        .stdin(Stdio::piped())
        .stdout(File::create(&client_log).unwrap())
        .stderr(File::create(dir.join("client.err")).unwrap())
        .spawn()
        .expect("spawn the client");
    procs.0.push(client);
    // The client says when it has every reply, then waits on its stdin.
    let client_stdin = procs.0[1].stdin.take();
    let done = format!("client: {REQUESTS} replies");
    let deadline = Instant::now() + STEP;
    while !read(&client_log).contains(&done) {
        let exited = procs.0[1].try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= deadline {
            panic!(
                "client failed ({exited:?}):\n{}{}\n--- server ---\n{}",
                read(&client_log),
                read(&dir.join("client.err")),
                read(&server_log)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // The client is done: stop the server and read its final counters.
    let server_pid = procs.0[0].id().to_string();
    let killed = Command::new("kill").args(["-TERM", &server_pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {server_pid}");
    let status = procs.wait(0, STEP);
    let mut out = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        out.push_str(&line);
        out.push('\n');
    }
    let log = read(&server_log);
    // The server is gone: let the client go.
    drop(client_stdin);
    let client_status = procs.wait(1, STEP);
    let client_out = format!("{}{}", read(&client_log), read(&dir.join("client.err")));
    assert!(
        client_status.is_some_and(|s| s.success()),
        "client failed ({client_status:?}):\n{client_out}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "psp-app exited with {status:?}:\n{out}\n{log}"
    );
    assert!(out.contains("final counters:"), "{out}\n{log}");
    assert_eq!(counter(&out, "received"), REQUESTS + 2, "{out}");
    assert_eq!(counter(&out, "ok"), REQUESTS, "{out}");
    assert_eq!(counter(&out, "unknown_type"), 1, "{out}");
    assert_eq!(counter(&out, "bad_magic"), 1, "{out}");
    assert_eq!(counter(&out, "malformed"), 1, "{out}");
    assert_eq!(counter(&out, "in_flight"), 0, "{out}");
    assert_eq!(counter(&out, "tx_errors"), 0, "{out}");
    assert!(out.contains("balanced        true"), "{out}");
    assert!(
        log.contains("arp answered=1"),
        "the server answered the client's ARP request:\n{log}"
    );
    eprintln!(
        "--- client ---\n{client_out}--- psp-app stdout ---\n{out}--- psp-app stderr ---\n{log}"
    );
}

/// Child processes, killed if still running when the test ends.
struct Procs(Vec<Child>);

impl Procs {
    /// Waits up to `timeout` for child `i`; `None` if it is still running.
    fn wait(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.0[i], timeout)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(kill);
    }
}

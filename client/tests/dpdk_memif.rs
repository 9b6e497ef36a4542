//! psp-client's DPDK backend end to end: the `psp-client` binary (built with the
//! `dpdk` feature) drives a daemon over `net_memif`, two processes sharing memory.
//!
//! The daemon is this test binary re-run as a server process: [`persephone::App`] on a
//! memif server port, which is all `psp-app` is (psp-app's binary belongs to another
//! package, so cargo gives this test no path to it; tests/dpdk_memif.rs at the root
//! runs the psp-app binary itself). The server reads commands on stdin: `stats`
//! answers one counters line, end of input shuts it down and prints the final
//! counters.
//!
//! - Under each policy, psp-client sends 10 000 requests (uniform arrivals, so the
//!   count is exact) and every one is answered `ok`: zero lost, zero rejected, and the
//!   daemon's counters agree.
//! - The memif peer restarting (issue 7): a first psp-client is killed (SIGKILL) in
//!   the middle of its run; a second one, a new process on the same memif socket,
//!   gets every request answered; the daemon's counters stay balanced.
//! - The same 10 000 in Perséphone's PSP_MB format (`wire: psp_mb` on both sides).
//!
//! Each EAL has its own `--file-prefix`; every wait is bounded.
#![cfg(feature = "dpdk")]

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use persephone::config::Config;
use persephone::net::dpdk;
use persephone::App;
use test_support::{kill, lines_of, read, wait_timeout, Cleanup};

const ROLE: &str = "PSP_CLIENT_MEMIF_ROLE";
const SERVER_CFG: &str = "PSP_CLIENT_MEMIF_SERVER_CFG";

const WORKERS: u16 = 2;
const REQUESTS: u64 = 10_000;
/// Server start, a client run, server shutdown: each bounded by this.
const STEP: Duration = Duration::from_secs(120);

/// The scenarios share the machine's cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn psp_client_over_memif_cfcfs() {
    scenario("psp_client_over_memif_cfcfs", "cfcfs", false, "native");
}

#[test]
fn psp_client_over_memif_dfcfs() {
    scenario("psp_client_over_memif_dfcfs", "dfcfs", false, "native");
}

#[test]
fn psp_client_over_memif_darc() {
    scenario("psp_client_over_memif_darc", "darc", false, "native");
}

/// Perséphone's PSP_MB requests, over DPDK on both sides (`net.wire: psp_mb`).
#[test]
fn psp_client_over_memif_psp_mb() {
    scenario("psp_client_over_memif_psp_mb", "darc", false, "psp_mb");
}

#[test]
fn the_daemon_serves_a_memif_client_that_restarts() {
    scenario(
        "the_daemon_serves_a_memif_client_that_restarts",
        "darc",
        true,
        "native",
    );
}

fn scenario(test: &str, policy: &str, restart: bool, wire: &str) {
    if std::env::var(ROLE).as_deref() == Ok("server") {
        // Re-run by `parent` below as the server process (selected with --exact).
        return server();
    }
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    parent(test, policy, restart, wire);
}

/// The server process: the daemon on a memif server port, driven through stdin.
fn server() {
    // The daemon's log (reservations, the DPDK counters at exit) goes to the log file.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let cfg = Config::load(std::env::var(SERVER_CFG).unwrap()).expect("server config");
    let server = App::new(cfg).start().expect("start the daemon");
    println!("listening on {}", server.local_addr());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stats" {
            let s = server.stats();
            println!(
                "stats received {} answered {} in_flight {}",
                s.received,
                s.answered(),
                s.in_flight
            );
        }
    }
    let s = server.shutdown();
    println!(
        "final received {} answered {} ok {} in_flight {} balanced {}",
        s.received,
        s.answered(),
        s.replies_with(persephone::proto::Status::Ok),
        s.in_flight,
        s.balanced()
    );
    println!("{s}");
}

struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Daemon {
    /// The next line the server prints, within [`STEP`].
    fn line(&self) -> String {
        self.lines
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("the server said nothing:\n{}", read(&self.log)))
    }

    /// `(received, answered, in_flight)` now.
    fn stats(&mut self) -> (u64, u64, u64) {
        writeln!(self.stdin.as_mut().unwrap(), "stats").unwrap();
        let l = self.line();
        let f = fields(&l);
        (f["received"], f["answered"], f["in_flight"])
    }

    /// Shuts the server down; its final counters line and the rest of its output.
    fn finish(&mut self) -> (std::collections::HashMap<String, u64>, String, String) {
        drop(self.stdin.take());
        let fin = self.line();
        let mut rest = String::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push_str(&l);
            rest.push('\n');
        }
        let status = wait_timeout(&mut self.child, STEP);
        assert!(
            status.is_some_and(|s| s.success()),
            "server exited with {status:?}:\n{fin}\n{rest}\n{}",
            read(&self.log)
        );
        let balanced = fin.ends_with("balanced true");
        let mut f = fields(&fin);
        f.insert("balanced".into(), balanced as u64);
        (f, fin, rest)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `name value` pairs of a counters line.
fn fields(line: &str) -> std::collections::HashMap<String, u64> {
    let w: Vec<&str> = line.split_whitespace().collect();
    w.windows(2)
        .filter_map(|p| Some((p[0].to_string(), p[1].parse().ok()?)))
        .collect()
}

fn parent(test: &str, policy: &str, restart: bool, wire: &str) {
    let pid = std::process::id();
    let tag = format!("{pid}-{policy}-{}-{wire}", restart as u8);
    let dir = std::env::temp_dir().join(format!("psp-client-memif-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prefixes = ["srv", "cli", "cli2"].map(|p| format!("psp-cm-{p}-{tag}"));
    let mut cleanup = vec![dir.clone()];
    cleanup.extend(prefixes.iter().map(|p| dpdk::runtime_dir_for(p)));
    let _cleanup = Cleanup(cleanup);
    let socket = dir.join("memif.sock");

    let server_cfg = dir.join("server.yml");
    let args = dpdk::memif_eal_args(&prefixes[0], "server", &socket, "02:00:00:00:00:01");
    std::fs::write(
        &server_cfg,
        format!(
            "pin: false
dispatcher: {{ idle: park, drain_timeout_ms: 5000 }}
workers: {{ number: {WORKERS}, handler: spin, idle: park }}
policy: {{ kind: {policy}, window: 500 }}
net:
  backend: dpdk
  wire: {wire}
  eal_args: {args:?}
  port: 0
  ip: 10.0.0.1
  udp_port: 6789
requests:
  - {{ id: 1, name: SHORT, mean_ns: 1000 }}
  - {{ id: 2, name: LONG, mean_ns: 5000 }}
stats: {{ interval_ms: 20 }}
"
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, "server")
        .env(SERVER_CFG, &server_cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn the server");
    let mut d = Daemon {
        stdin: child.stdin.take(),
        lines: lines_of(child.stdout.take().unwrap()),
        child,
        log: log.clone(),
    };
    // The test harness prints its own words first, on the same line.
    let up = loop {
        let l = d.line();
        if let Some(at) = l.find("listening on") {
            break l[at..].to_string();
        }
    };
    assert_eq!(up, "listening on 10.0.0.1:6789");

    let mut killed_sent = 0;
    if restart {
        // A first client at 2 000 requests/s for a minute, killed once the daemon
        // has answered some of its requests.
        let mut first = client(&dir, "first", &prefixes[1], &socket, 2_000, "60s", wire)
            .spawn()
            .expect("spawn psp-client");
        let deadline = Instant::now() + STEP;
        while d.stats().1 < 500 {
            assert!(
                Instant::now() < deadline,
                "the first client got no replies:\n{}\n{}",
                read(&dir.join("first.err")),
                read(&log)
            );
            if let Ok(Some(s)) = first.try_wait() {
                panic!(
                    "the first client exited early ({s}):\n{}",
                    read(&dir.join("first.err"))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        first.kill().unwrap();
        first.wait().unwrap();
        // What reached the daemon from the killed client (its replies go nowhere).
        // Nothing answers "the dead client's ring is empty": requests it queued before
        // dying keep arriving until the daemon has read them all, so one sample with
        // nothing in flight can come between two of them (CI saw 19 arrive after such
        // a sample). Wait until `received` holds still, with nothing in flight, for ten
        // samples in a row: 200 ms, ten of the daemon's stats intervals (`stats`
        // reads its last published snapshot), where it reads a ring in microseconds.
        let deadline = Instant::now() + STEP;
        let mut still = 0;
        loop {
            let (received, _, in_flight) = d.stats();
            if in_flight == 0 && received == killed_sent {
                still += 1;
                if still == 10 {
                    break;
                }
            } else {
                still = 0;
                killed_sent = received;
            }
            assert!(Instant::now() < deadline, "the daemon did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // 10 000 requests, exactly: uniform arrivals at k / 5 000 s, k = 1, 2, ... while
    // under 2.0001 s.
    let name = if restart { "second" } else { "run" };
    let status = client(&dir, name, &prefixes[2], &socket, 5_000, "2.0001s", wire)
        .status()
        .expect("run psp-client");
    let out = read(&dir.join(format!("{name}.out")));
    let err = read(&dir.join(format!("{name}.err")));
    assert!(
        status.success(),
        "psp-client failed ({status}):\n{out}\n{err}\n--- server ---\n{}",
        read(&log)
    );
    let json: serde_json::Value =
        serde_json::from_str(&read(&dir.join(name).join("results.json"))).unwrap();
    let all = &json["runs"][0]["overall"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {all}"));
    let rejected: u64 = all["rejected"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&all["sent"]), REQUESTS, "{all}\n{out}");
    assert_eq!(n(&all["ok"]), REQUESTS, "{all}\n{out}");
    assert_eq!((n(&all["lost"]), rejected), (0, 0), "{all}\n{out}");
    assert!(out.contains("SHORT") && out.contains("LONG"), "{out}");

    let (fin, line, rest) = d.finish();
    let log = read(&log);
    assert_eq!(fin["balanced"], 1, "{line}\n{rest}");
    assert_eq!(fin["in_flight"], 0, "{line}");
    assert_eq!(fin["received"], killed_sent + REQUESTS, "{line}\n{rest}");
    assert_eq!(fin["ok"], killed_sent + REQUESTS, "{line}\n{rest}");
    if restart {
        assert!(killed_sent >= 500, "{killed_sent}");
        // Each client process resolved the server's MAC afresh.
        assert!(log.contains("arp answered=2"), "{log}");
    }
    eprintln!("--- psp-client ---\n{out}--- server ---\n{line}\n{rest}{log}");
}

/// psp-client over memif: `--backend dpdk` from its config file, results in `dir/name`.
fn client(
    dir: &Path,
    name: &str,
    prefix: &str,
    socket: &Path,
    rate: u32,
    dur: &str,
    wire: &str,
) -> Command {
    let args = dpdk::memif_eal_args(prefix, "client", socket, "02:00:00:00:00:02");
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "server: 10.0.0.1:6789
label: memif
policy: test
workers: {WORKERS}
workload:
  name: two
  types:
    - {{ id: 1, name: SHORT, ratio: 0.5, service: {{ kind: constant, ns: 1000 }} }}
    - {{ id: 2, name: LONG, ratio: 0.5, service: {{ kind: constant, ns: 5000 }} }}
arrival: uniform
warmup: 0s
timeout: 5s
wire: {wire}
backend: dpdk
dpdk:
  eal_args: {args:?}
  ip: 10.0.0.2
  rx_queues: {}
",
            WORKERS + 1
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_psp-client"));
    c.arg("--config-path")
        .arg(&cfg)
        .args(["--rate", &rate.to_string(), "--duration", dur, "--quiet"])
        .arg("--outdir")
        .arg(dir.join(name))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap());
    c
}

//! End to end over kernel UDP: the `psp-app` binary on loopback, driven by a plain
//! socket client, under each policy.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
use test_support::counter;

/// A `psp-app` child process and the address it serves on.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
    _dir: tempfile::TempDir,
}

/// A config for `policy` in a fresh directory (removed when the `TempDir` drops).
fn config(policy: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("psp-e2e-{policy}-"))
        .tempdir()
        .unwrap();
    let cfg = dir.path().join("cfg.yml");
    std::fs::write(
        &cfg,
        format!(
            "pin: false
dispatcher: {{ idle: park, drain_timeout_ms: 5000 }}
workers: {{ number: 2, handler: spin, idle: park }}
policy: {{ kind: {policy}, window: 500 }}
net: {{ backend: udp, bind: 127.0.0.1:0 }}
requests:
  - {{ id: 1, name: SHORT, mean_ns: 1000 }}
  - {{ id: 2, name: LONG, mean_ns: 10000 }}
stats: {{ interval_ms: 200 }}
"
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// `psp-app --cfg cfg`, its stdout piped, its stderr to `stderr`.
fn spawn(cfg: &std::path::Path, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_psp-app"))
        .arg("--cfg")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn psp-app")
}

/// A child process, killed when dropped: a failed assertion leaves no daemon behind.
struct Killed(Child);

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address in the daemon's first line, `listening on ADDR`.
fn listening_on(line: &str) -> SocketAddr {
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap()
}

impl Daemon {
    fn start(policy: &str) -> Daemon {
        let (dir, cfg) = config(policy);
        let mut child = spawn(&cfg, Stdio::null());
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // From here on the guard kills the child if anything fails.
        let mut d = Daemon {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            stdout,
            _dir: dir,
        };
        // The daemon prints its address once it serves (it exits, closing stdout, if
        // it cannot start).
        let mut line = String::new();
        d.stdout.read_line(&mut line).unwrap();
        d.addr = listening_on(&line);
        d
    }

    /// SIGTERM, then the exit status and everything printed after the first line.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        let status = self.child.wait().unwrap();
        (status, out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon whose log (stderr) is read line by line, and a client socket.
struct Logged {
    child: Killed,
    log: std::sync::mpsc::Receiver<String>,
    /// After the first line.
    stdout: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
    /// Bound, with a 10 s read timeout.
    sock: UdpSocket,
    _dir: tempfile::TempDir,
}

impl Logged {
    fn start(policy: &str) -> Logged {
        let (_dir, cfg) = config(policy);
        let mut child = Killed(spawn(&cfg, Stdio::piped()));
        let log = test_support::lines_of(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = listening_on(&line);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Logged {
            child,
            log,
            stdout,
            addr,
            sock,
            _dir,
        }
    }

    /// Sends `n` LONG requests of 1 s each (the spin handler's most), waits for the
    /// stats line (every 200 ms) that counts them all received, and sends SIGTERM: a
    /// drain of `n / 2` s on the two workers, begun with every request in.
    fn drain_long_requests(&self, n: u64) {
        for id in 0..n {
            self.sock
                .send_to(&request(2, id, 1_000_000_000), self.addr)
                .unwrap();
        }
        let want = format!("rx {n} answered ");
        if let Err(seen) = test_support::line_containing(&self.log, &want, Duration::from_secs(10))
        {
            panic!("the {n} requests were never all received:\n{seen:#?}");
        }
        self.signal();
    }

    fn signal(&self) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }
}

/// Whoever reads the daemon's output may go away (`psp-app ... | head -1`): its log
/// lines and its final report then fail to write, and it must go on serving, drain on
/// SIGTERM and exit 0 (it used to panic, exit 101, at the first failed write).
#[test]
fn a_closed_stdout_and_stderr_do_not_stop_the_daemon() {
    let (_dir, cfg) = config("cfcfs");
    let mut child = Killed(spawn(&cfg, Stdio::piped()));
    // The log's reader is gone before the first log line.
    drop(child.stderr.take());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = listening_on(&line);
    drop(stdout);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&request(1, 7, 1_000), addr).unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("an answer");
    let h = Header::parse(&buf[..n]).unwrap();
    assert_eq!((h.id, h.kind), (7, Kind::Reply(Status::Ok)));
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = test_support::wait_timeout(&mut child, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "psp-app exited with {status:?}"
    );
}

/// A request that arrives while the daemon drains is answered `shutdown` and counted,
/// not left unread in the socket when the daemon exits.
#[test]
fn requests_arriving_during_the_drain_are_answered_shutdown() {
    let logged = Logged::start("cfcfs");
    // Both workers busy for 1 s: the drain lasts that long, time enough to see it begin
    // and send more. Both received before the stop (else the second may arrive during
    // the drain and be answered `shutdown`, as it was once on a loaded machine).
    logged.drain_long_requests(2);
    let Logged {
        mut child,
        log,
        mut stdout,
        addr,
        sock,
        _dir,
    } = logged;
    if let Err(seen) =
        test_support::line_containing(&log, "shutting down: draining", Duration::from_secs(10))
    {
        panic!("no drain started:\n{seen:#?}");
    }
    for id in 10..15 {
        sock.send_to(&request(1, id, 1_000), addr).unwrap();
    }
    let mut status = HashMap::new();
    let mut buf = [0u8; 256];
    while status.len() < 7 {
        let n = sock.recv(&mut buf).expect("every request answered");
        let h = Header::parse(&buf[..n]).unwrap();
        status.insert(h.id, h.kind);
    }
    for id in 0..2 {
        assert_eq!(status[&id], Kind::Reply(Status::Ok), "{status:?}");
    }
    for id in 10..15 {
        assert_eq!(status[&id], Kind::Reply(Status::Shutdown), "{status:?}");
    }
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "psp-app exited with {exit}:\n{out}");
    assert_eq!(counter(&out, "received"), 7, "{out}");
    assert!(out.contains("balanced        true"), "{out}");
}

/// A second SIGTERM, once the first is a moment old, exits at once with status 1: an
/// operator is not held by a drain (here about 6 s: the 5 s drain timeout, then the
/// requests still running).
#[test]
fn a_second_signal_exits_without_waiting_for_the_drain() {
    let logged = Logged::start("cfcfs");
    // Sixteen 1 s requests on two workers: 8 s of work, more than the 5 s drain
    // timeout, so that however late the signals come (within reason) the drain has not
    // ended; a drain that ends prints the final counters and exits 0.
    logged.drain_long_requests(16);
    // The first signal's own second delivery (`timeout` sends one to the child, then
    // to its group) does not count: a second signal exits only from this line on.
    if let Err(seen) = test_support::line_containing(
        &logged.log,
        "a second signal now exits at once",
        Duration::from_secs(10),
    ) {
        panic!("the second signal was never armed:\n{seen:#?}");
    }
    logged.signal();
    let Logged {
        mut child,
        mut stdout,
        ..
    } = logged;
    let exit = test_support::wait_timeout(&mut child, Duration::from_secs(20))
        .expect("psp-app still running 20 s after the second signal");
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(exit.code(), Some(1), "psp-app exited with {exit}:\n{out}");
    assert!(
        !out.contains("final counters"),
        "the drain ran to its end:\n{out}"
    );
}

/// The periodic stats line (every `stats.interval_ms`, 200 here) reports the counters
/// of a snapshot taken after the requests were answered, with the dispatcher's load.
#[test]
fn the_periodic_stats_line_reports_the_counters() {
    // Kept whole: dropping it kills the daemon.
    let d = Logged::start("darc");
    let (log, addr, sock) = (&d.log, d.addr, &d.sock);
    for id in 0..3 {
        sock.send_to(&request(1 + id as u32 % 2, id, 1_000), addr)
            .unwrap();
    }
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        let n = sock.recv(&mut buf).expect("an answer");
        assert_eq!(
            Header::parse(&buf[..n]).unwrap().kind,
            Kind::Reply(Status::Ok)
        );
    }
    // A snapshot may fall between the last receive and its answer: the next one (200
    // ms later) shows all three answered.
    let want = "rx 3 answered 3 ok 3 in_flight 0 | queues SHORT=0 LONG=0";
    let stats = test_support::line_containing(log, want, Duration::from_secs(20))
        .unwrap_or_else(|seen| panic!("no stats line with the 3 requests answered:\n{seen:#?}"));
    assert!(stats.contains("| dispatcher busy "), "{stats}");
    // Its stderr is a pipe, not a terminal: no colour codes in the log.
    assert!(!stats.contains('\x1b'), "{stats:?}");
}

/// A log filter that does not parse is a usage error naming `--log` (it was ignored
/// with a note, the daemon logging at its default level).
#[test]
fn a_bad_log_filter_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_psp-app"))
        .args(["--cfg", "configs/quickstart.yml", "--log", "bogus=["])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--log \"bogus=[\""), "{err}");
    assert!(out.stdout.is_empty(), "nothing started");
    // A misspelt level is valid EnvFilter syntax (a target name) that would silence
    // everything: refused too.
    let out = Command::new(env!("CARGO_BIN_EXE_psp-app"))
        .args(["--cfg", "configs/quickstart.yml", "--log", "warn,debugg"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean \"debug\""), "{err}");
    assert!(out.stdout.is_empty(), "nothing started");
    // RUST_LOG overrides --log, and is held to the same rules, by name.
    for (bad, says) in [("wran", "did you mean \"warn\""), ("[", "RUST_LOG \"[\"")] {
        let out = Command::new(env!("CARGO_BIN_EXE_psp-app"))
            .args(["--cfg", "configs/quickstart.yml", "--log", "info"])
            .env("RUST_LOG", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("RUST_LOG") && err.contains(says),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing started");
    }
}

/// A port already taken is a start-up error naming the key, with the system's reason
/// said once.
#[test]
fn a_taken_port_is_named_once() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_dir, cfg) = config("cfcfs");
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        yaml.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_psp-app"))
        .arg("--cfg")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("psp-app: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(
        line.starts_with(&format!(
            "psp-app: net.bind: cannot bind 127.0.0.1:{port}: "
        )),
        "{line}"
    );
    assert_eq!(line.matches("os error").count(), 1, "{line}");
    assert!(line.contains("pick another port, or port 0"), "{line}");
}

fn request(ty: u32, id: u64, service_ns: u64) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN + 8];
    let n = proto::encode_request(&mut buf, ty, id, 0, &proto::spin_payload(service_ns)).unwrap();
    buf.truncate(n);
    buf
}

/// Sends `n` requests alternating between two types, at most `window` outstanding,
/// and returns the replies by id.
fn drive(addr: SocketAddr, n: u64, window: u64) -> HashMap<u64, Header> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut replies = HashMap::new();
    let mut sent = 0u64;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(120);
    while (replies.len() as u64) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} replies",
            replies.len()
        );
        while sent < n && sent - (replies.len() as u64) < window {
            let ty = 1 + (sent % 2) as u32;
            let service = if ty == 1 { 1_000 } else { 5_000 };
            sock.send_to(&request(ty, sent, service), addr).unwrap();
            sent += 1;
        }
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                let h = Header::parse(&buf[..len]).expect("server sent a malformed reply");
                assert!(
                    replies.insert(h.id, h).is_none(),
                    "duplicate reply for {}",
                    h.id
                );
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Loopback does not lose datagrams under this window; resend nothing,
                // just keep waiting (the deadline above bounds the test).
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    replies
}

fn serves_10k_requests_of_two_types(policy: &str) {
    let d = Daemon::start(policy);
    let addr = d.addr;

    // A malformed datagram first: it must be counted and not disturb the rest.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.send_to(&[0xab; 40], addr).unwrap();

    let n = 10_000;
    let replies = drive(addr, n, 32);
    for id in 0..n {
        let h = replies
            .get(&id)
            .unwrap_or_else(|| panic!("no reply for {id}"));
        assert_eq!(h.kind, Kind::Reply(Status::Ok), "request {id}");
        assert_eq!(
            h.ty,
            1 + (id % 2) as u32,
            "request {id} came back with the wrong type"
        );
    }

    let (status, out) = d.terminate();
    assert!(status.success(), "psp-app exited with {status}:\n{out}");
    assert!(out.contains("final counters:"), "{out}");
    assert_eq!(counter(&out, "received"), n + 1, "{out}");
    assert_eq!(counter(&out, "ok"), n, "{out}");
    assert_eq!(counter(&out, "malformed"), 1, "{out}");
    assert_eq!(counter(&out, "bad_magic"), 1, "{out}");
    assert_eq!(counter(&out, "in_flight"), 0, "{out}");
    assert!(out.contains("balanced        true"), "{out}");
    // The binary's report carries the dispatcher's load. A turn receives at most
    // `rx_batch` (32 by default) requests, so serving n took at least n / 32 busy turns.
    let load = out
        .lines()
        .find_map(|l| l.strip_prefix("dispatcher busy "))
        .unwrap_or_else(|| panic!("no load line in\n{out}"));
    let turns: u64 = load
        .rsplit_once(" in ")
        .and_then(|(_, t)| t.strip_suffix(" turns"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("unexpected load line {load:?}"));
    assert!(turns >= n / 32, "{load}");
    if policy == "sjf" || policy == "edf" {
        // Their state line: each type's expected service time.
        assert!(
            out.lines().any(|l| l.starts_with("policy ")
                && l.contains("expected ns: SHORT=")
                && l.contains(" LONG=")),
            "{out}"
        );
    }
}

#[test]
fn cfcfs_serves_10k_requests() {
    serves_10k_requests_of_two_types("cfcfs");
}

#[test]
fn dfcfs_serves_10k_requests() {
    serves_10k_requests_of_two_types("dfcfs");
}

#[test]
fn darc_serves_10k_requests() {
    serves_10k_requests_of_two_types("darc");
}

#[test]
fn sjf_serves_10k_requests() {
    serves_10k_requests_of_two_types("sjf");
}

#[test]
fn edf_serves_10k_requests() {
    serves_10k_requests_of_two_types("edf");
}

#[test]
fn unknown_types_are_answered_and_counted() {
    let d = Daemon::start("cfcfs");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&request(77, 5, 0), d.addr).unwrap();
    let mut buf = [0u8; 256];
    let (len, _) = sock.recv_from(&mut buf).unwrap();
    let h = Header::parse(&buf[..len]).unwrap();
    assert_eq!(
        (h.kind, h.id, h.ty),
        (Kind::Reply(Status::UnknownType), 5, 77)
    );
    let (status, out) = d.terminate();
    assert!(status.success());
    assert_eq!(counter(&out, "unknown_type"), 1, "{out}");
}

#[test]
fn sigterm_under_load_drains_and_every_answer_arrives() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let d = Daemon::start("darc");
    let addr = d.addr;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The drain answers thousands of requests at once: room for them while this
    // thread waits for a core (what still overflows is counted below).
    persephone::net::udp::set_rcvbuf(&sock, 16 << 20).unwrap();
    let tx = sock.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let ty = 1 + (i % 2) as u32;
                    tx.send_to(&request(ty, i, 20_000), addr).unwrap();
                    i += 1;
                }
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Let requests pile up in the daemon's queues, then terminate it under load.
    let mut buf = [0u8; 256];
    let mut answered = 0u64;
    while answered < 200 {
        if sock.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM) };
    // Collect replies until the daemon has been gone for a while.
    let mut quiet = 0;
    while quiet < 5 {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let h = Header::parse(&buf[..n]).unwrap();
                assert!(
                    matches!(
                        h.kind,
                        Kind::Reply(Status::Ok | Status::Shutdown | Status::QueueFull)
                    ),
                    "{h:?}"
                );
                answered += 1;
                quiet = 0;
            }
            Err(_) => quiet += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let (status, out) = d.terminate();
    assert!(status.success(), "psp-app exited with {status}:\n{out}");
    assert!(out.contains("balanced        true"), "{out}");
    assert_eq!(counter(&out, "in_flight"), 0, "{out}");
    // Every request the daemon accepted was answered, and every answer arrived, or
    // was dropped by this socket's full buffer (a loaded machine).
    let dropped = persephone::net::udp::socket_drops(&sock).unwrap_or(0);
    assert_eq!(
        counter(&out, "answered"),
        answered + dropped,
        "client socket drops {dropped}:\n{out}"
    );
    assert!(answered <= sent.load(Ordering::Relaxed));
}

#[test]
fn serves_as_an_unprivileged_user() {
    let Some(mut cmd) = test_support::unprivileged(env!("CARGO_BIN_EXE_psp-app")) else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("psp-e2e-nobody-")
        // The unprivileged daemon reads its config from here.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .tempdir()
        .unwrap();
    let cfg = dir.path().join("cfg.yml");
    std::fs::write(
        &cfg,
        "pin: false
dispatcher: { idle: park }
workers: { number: 1, handler: echo, idle: park }
net: { bind: 127.0.0.1:0 }
requests: [{ id: 1, name: A }]
stats: { interval_ms: 0 }
",
    )
    .unwrap();
    let mut child = cmd
        .arg("--cfg")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("psp-app did not start unprivileged: {line:?}");
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.send_to(&request(1, 3, 0), addr).unwrap();
    let mut buf = [0u8; 128];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(
        Header::parse(&buf[..n]).unwrap().kind,
        Kind::Reply(Status::Ok)
    );
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("balanced        true"), "{rest}");
}

/// `policy.n_resas` with more entries than the groups its types form (delta merges
/// SHORT and LONG into one here): the entries past the last group are ignored, and the
/// log says so when the reservation is made, instead of dropping them in silence.
#[test]
fn n_resas_entries_past_the_groups_are_named_as_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yml");
    std::fs::write(
        &cfg,
        "pin: false
dispatcher: { idle: park }
workers: { number: 2, handler: spin, idle: park }
policy: { kind: darc, profile: static, delta: 10, n_resas: [1, 1] }
net: { backend: udp, bind: 127.0.0.1:0 }
requests:
  - { id: 1, name: SHORT, mean_ns: 1000, ratio: 0.5 }
  - { id: 2, name: LONG, mean_ns: 10000, ratio: 0.5 }
",
    )
    .unwrap();
    let mut child = Killed(spawn(&cfg, Stdio::piped()));
    let log = test_support::lines_of(child.stderr.take().unwrap());
    let want = "policy.n_resas: its last 1 entry is ignored: the types formed 1 group(s)";
    if let Err(seen) = test_support::line_containing(&log, want, Duration::from_secs(10)) {
        panic!("no warning {want:?}:\n{seen:#?}");
    }
}

//! Two EAL processes joined by `net_memif`: a server and a client exchange
//! one UDP frame each way over shared memory.
//!
//! The test re-runs its own binary twice, as server and client (the role
//! comes in an environment variable), because each process can initialise
//! EAL only once. The parent starts the server first, waits for its socket
//! file, then starts the client; every wait is bounded and children still
//! running at the deadline are killed.
// Built without DPDK (see build.rs), there is nothing to test.
#![cfg(not(dpdk_sys_stub))]

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Eal, Port};
use dpdk_sys as sys;

const ROLE_ENV: &str = "PSP_MEMIF_TEST_ROLE";
const SOCKET_ENV: &str = "PSP_MEMIF_TEST_SOCKET";
const TEST_NAME: &str = "memif_server_client_exchange";

/// Link-up, RX and shutdown waits inside each child.
const STEP: Duration = Duration::from_secs(20);
/// The whole exchange, as seen by the parent.
const OVERALL: Duration = Duration::from_secs(90);

#[test]
fn memif_server_client_exchange() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("server") => server(&socket_from_env()),
        Ok("client") => client(&socket_from_env()),
        _ => parent(),
    }
}

fn socket_from_env() -> String {
    std::env::var(SOCKET_ENV).expect("parent sets the socket path")
}

/// `--vdev` for one side. A filesystem socket (`socket-abstract=no`) rather
/// than memif's default abstract one, so the parent can see when the server
/// listens and the path is unique to this run.
fn memif_vdev(role: &str, socket: &str) -> String {
    format!("--vdev=net_memif0,role={role},id=0,socket={socket},socket-abstract=no")
}

fn ping() -> Vec<u8> {
    common::udp_frame(b"ping from the memif client")
}

fn pong() -> Vec<u8> {
    common::udp_frame(b"pong from the memif server")
}

fn server(socket: &str) {
    let mut args = common::base_args("memif-server");
    args.push(memif_vdev("server", socket));
    let eal = Eal::init(&args);
    // SAFETY: EAL is initialised.
    assert_eq!(unsafe { sys::rte_eth_dev_count_avail() }, 1, "memif probe");
    let mp = common::pool("psp_memif_server", 1023);
    let port = Port::start(
        common::port_by_name("net_memif0"),
        mp,
        Duration::from_secs(1),
    );
    eprintln!("server: listening on {socket}");
    assert!(port.wait_link(true, STEP), "server: no client connected");

    let rx = port.rx_until(1, STEP);
    assert_eq!(rx.len(), 1, "server: ping");
    // SAFETY: rx[0] is a received mbuf we own until free_all.
    assert_eq!(unsafe { common::data(rx[0]) }, ping().as_slice());
    common::free_all(&rx);
    let mut reply = [common::mbuf_with(mp, &pong())];
    assert_eq!(port.tx_all(&mut reply, STEP), 1, "server: pong sent");
    eprintln!("server: answered; waiting for the client to disconnect");

    // The client reads the pong from shared memory and exits; stay up (and
    // connected) until then so the client never sees the link drop first.
    assert!(
        port.wait_link(false, STEP),
        "server: client never disconnected"
    );
    drop(port);
    drop(eal);
}

fn client(socket: &str) {
    let mut args = common::base_args("memif-client");
    args.push(memif_vdev("client", socket));
    let eal = Eal::init(&args);
    // SAFETY: EAL is initialised.
    assert_eq!(unsafe { sys::rte_eth_dev_count_avail() }, 1, "memif probe");
    let mp = common::pool("psp_memif_client", 1023);
    // Start fails while the server is not (yet) accepting: retry, bounded.
    let port = Port::start(common::port_by_name("net_memif0"), mp, STEP);
    assert!(port.wait_link(true, STEP), "client: never connected");
    eprintln!("client: connected");

    let mut ping_mbuf = [common::mbuf_with(mp, &ping())];
    assert_eq!(port.tx_all(&mut ping_mbuf, STEP), 1, "client: ping sent");
    let rx = port.rx_until(1, STEP);
    assert_eq!(rx.len(), 1, "client: pong");
    // SAFETY: rx[0] is a received mbuf we own until free_all.
    assert_eq!(unsafe { common::data(rx[0]) }, pong().as_slice());
    common::free_all(&rx);
    assert_eq!(common::in_use(mp), 0);
    eprintln!("client: got the pong");
    drop(port);
    drop(eal);
}

/// Runs server and client as children and checks that both succeed.
fn parent() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("psp-memif-test-{pid}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket = dir.join("memif.sock");
    let mut children = Children::default();

    let server = spawn_role("server", &socket, &dir);
    children.0.push(("server", server, dir.join("server.log")));
    let listening = common::wait_for(STEP, || {
        socket.exists() || children.0[0].1.try_wait().ok().flatten().is_some()
    });
    assert!(
        listening && socket.exists(),
        "server did not create {}\n{}",
        socket.display(),
        children.logs()
    );
    let client = spawn_role("client", &socket, &dir);
    children.0.push(("client", client, dir.join("client.log")));

    let statuses = children.wait_all(OVERALL);
    let all_ok = statuses.iter().all(|s| s.is_some_and(|s| s.success()));
    assert!(all_ok, "children: {statuses:?}\n{}", children.logs());
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}

fn spawn_role(role: &str, socket: &Path, dir: &Path) -> Child {
    let log = File::create(dir.join(format!("{role}.log"))).expect("log file");
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(SOCKET_ENV, socket)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn test binary")
}

/// Child processes with their log files; any still running when this is
/// dropped (a failed assertion in the parent) are killed.
#[derive(Default)]
struct Children(Vec<(&'static str, Child, PathBuf)>);

impl Children {
    /// Wait for every child until `timeout`, then kill the rest. `None`
    /// marks a child that had to be killed.
    fn wait_all(&mut self, timeout: Duration) -> Vec<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut statuses = vec![None; self.0.len()];
        while Instant::now() < deadline && statuses.iter().any(Option::is_none) {
            for (status, (_, child, _)) in statuses.iter_mut().zip(&mut self.0) {
                if status.is_none() {
                    *status = child.try_wait().expect("try_wait");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        statuses
    }

    fn logs(&self) -> String {
        self.0
            .iter()
            .map(|(role, _, log)| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                format!("----- {role} ({}) -----\n{text}", log.display())
            })
            .collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

//! The DPDK client resolves the server by ARP on a port that offers IPv4/UDP checksum
//! offload: `net_tap`, whose kernel side (an interface with an address) answers the
//! ARP request. The ARP request must leave without the offload flags, which would
//! have the port write "checksums" over its sender MAC and target IP (it did: no
//! reply ever came).
//!
//! Then the kernel sends the client a datagram, which needs the client to answer the
//! kernel's ARP request for the client's IP.
//!
//! Needs root (a tap interface); skipped otherwise. One scenario per test binary: EAL
//! initialises once per process.
#![cfg(feature = "dpdk")]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use persephone::net::dpdk::{self, ClientConfig, DpdkClient};

#[test]
fn arp_resolves_on_a_port_with_checksum_offload() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: needs root and /dev/net/tun");
        return;
    }
    let iface = format!("psptap{}", std::process::id() % 100_000);
    let args = test_support::eal_args("tap", &format!("net_tap0,iface={iface}"));
    dpdk::init_eal(&args).expect("EAL");
    let _cleanup = test_support::Cleanup(vec![dpdk::runtime_dir().expect("EAL runtime dir")]);
    // The kernel side: 10.99.0.1 on the tap interface, which answers ARP for it.
    let ip = |a: &[&str]| {
        let s = Command::new("ip").args(a).status().expect("ip(8)");
        assert!(s.success(), "ip {a:?}: {s}");
    };
    ip(&["addr", "add", "10.99.0.1/24", "dev", &iface]);
    ip(&["link", "set", &iface, "up"]);
    let kernel_mac = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .expect("the tap interface's MAC");

    let mut cfg = ClientConfig::new(
        0,
        Ipv4Addr::new(10, 99, 0, 2),
        4000,
        SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 6789),
    );
    cfg.arp_timeout = Duration::from_secs(10);
    let start = Instant::now();
    let mut client = DpdkClient::connect(&cfg).expect("ARP resolved");
    let mac = client.server_mac();
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(mac, kernel_mac.trim(), "resolved in {:?}", start.elapsed());

    // The other way: the kernel sends a datagram to the client's IP, which it can only
    // do once the client has answered its ARP request. The datagram is not from the
    // server's port, so the client counts it as foreign.
    // The kernel learnt the client's MAC from its ARP request: forget it first.
    ip(&["neigh", "flush", "dev", &iface]);
    let sock = std::net::UdpSocket::bind("10.99.0.1:0").expect("a kernel UDP socket");
    sock.send_to(b"hello", "10.99.0.2:4000")
        .expect("send to the client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.counters().foreign == 0 && Instant::now() < deadline {
        client.recv(|_| {});
    }
    let c = client.counters();
    assert!(
        c.arp_answered >= 1 && c.foreign == 1,
        "the kernel's datagram never arrived: {c:?}"
    );
}

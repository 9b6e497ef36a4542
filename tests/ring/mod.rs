//! What the one-process `net_ring` tests share (tests/dpdk_ring.rs, dpdk_psp_mb.rs):
//! frames the server sends to itself, and a bounded receive loop.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use persephone::net::dpdk::{DpdkConfig, DpdkPkt};
use persephone::net::frame::{self, Local, TxChecksums, HEADERS_LEN};
use persephone::net::RxQueue;

/// How long a receive waits for what it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `net_ring` port's settings: 10.0.0.1:6789, requests up to 256 bytes.
pub fn config() -> DpdkConfig {
    DpdkConfig {
        port: 0,
        ip: Ipv4Addr::new(10, 0, 0, 1),
        udp_port: 6789,
        max_msg: 256,
        mbufs: 4095,
        start_timeout: Duration::from_secs(5),
    }
}

/// A UDP frame from `local` to `local` carrying `payload` (with its checksums): on
/// `net_ring` its reply, sent back to the source, is again a frame for the server.
pub fn hairpin(local: &Local, payload: &[u8]) -> Vec<u8> {
    let me = (local.mac, SocketAddrV4::new(local.ip, local.udp_port));
    let mut f = vec![0; HEADERS_LEN + payload.len()];
    f[HEADERS_LEN..].copy_from_slice(payload);
    frame::write_udp_headers(&mut f, me, me, payload.len(), TxChecksums::Software).unwrap();
    f
}

/// Receives until `want` packets arrived and `until` holds, or [`WAIT`] passes.
pub fn receive<R: RxQueue<Pkt = DpdkPkt>>(
    rx: &mut R,
    want: usize,
    until: impl Fn(&R) -> bool,
) -> Vec<DpdkPkt> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while (out.len() < want || !until(rx)) && Instant::now() < deadline {
        if rx.rx_burst(&mut out, 32).unwrap() == 0 {
            std::thread::yield_now();
        }
    }
    out
}

//! `net.wire: psp_mb` over the DPDK transport, in one process over `net_ring` (as
//! tests/dpdk_ring.rs: TX queue `k` loops back to RX queue `k`, and a frame addressed
//! from the server to itself comes back through the parser). A PSP_MB request goes
//! in; the reply that leaves is the 16-byte PSP_MB reply, with UDP checksum 0 and a
//! valid IPv4 checksum (Perséphone's client sends the UDP checksum field back as it
//! found it); a rejection is withheld and counted, not sent.
//!
//! One scenario per test binary: EAL initialises once per process.
#![cfg(feature = "dpdk")]

mod ring;

use persephone::net::dpdk::{self, Dpdk};
use persephone::net::psp_mb::{Message, PspMb};
use persephone::net::{Packet, RxQueue, Transport, TxQueue};
use persephone::proto::{self, Header, Status};

#[test]
fn psp_mb_over_dpdk_replies_without_udp_checksum() {
    dpdk::init_eal(&test_support::eal_args("pspmb", "net_ring0")).expect("EAL");
    let _cleanup = test_support::Cleanup(vec![dpdk::runtime_dir().expect("EAL runtime dir")]);
    let transport = Dpdk::new(&ring::config()).expect("port 0");
    let local = transport.local();
    let parts = PspMb(transport).split(1).expect("configure and start");
    let (mut rx, mut dtx) = (parts.rx, parts.tx);
    let mut wtx = parts.workers.into_iter().next().unwrap();

    // Two PSP_MB requests (one with stale bytes after the 16) and one that is not.
    let request = |id: u32| Message {
        id,
        ty: 2,
        run_ns: 1500,
    };
    let mut first = [0u8; 16];
    request(0x1800_0007).write(&mut first).unwrap();
    let mut second = [0xeeu8; 20];
    request(8).write(&mut second).unwrap();
    for payload in [&first[..], &second[..], b"not psp_mb"] {
        assert!(wtx.inner().send_frame(&ring::hairpin(&local, payload)));
    }
    let pkts = ring::receive(&mut rx, 2, |_| true);
    assert_eq!(pkts.len(), 2, "the two requests");
    assert_eq!(rx.drops().bad_psp_mb, 1, "the other counted");
    let mut pkts = pkts.into_iter();

    // The first, served: the reply frame that loops back.
    let mut p = pkts.next().unwrap();
    let h = Header::parse(p.msg()).expect("a native request inside");
    assert_eq!((h.id, h.ty), (0x1800_0007, 2));
    assert_eq!(
        proto::parse_spin_payload(&p.msg()[proto::HEADER_LEN..]),
        Some(1500)
    );
    let len = proto::make_reply(p.buf_mut(), Status::Ok, 0);
    p.set_len(len);
    assert!(wtx.send(p).is_none(), "DPDK takes the mbuf");
    wtx.flush();
    // The second, rejected by the dispatcher: not sent.
    let mut p = pkts.next().unwrap();
    let len = proto::make_reply(p.buf_mut(), Status::QueueFull, 0);
    p.set_len(len);
    assert!(dtx.send(p).is_some(), "withheld: the buffer comes back");
    assert_eq!((dtx.withheld(), wtx.withheld()), (1, 0));

    // Back through the receive side, which takes a reply like a request (size 4) and
    // rewrites it into a native one: its id, type and run_ns are the reply's.
    let back = ring::receive(&mut rx, 1, |_| true);
    assert_eq!(back.len(), 1, "one reply left");
    let h = Header::parse(back[0].msg()).expect("read back");
    assert_eq!((h.id, h.ty), (0x1800_0007, 2), "id and type echoed");
    assert_eq!(
        proto::parse_spin_payload(&back[0].msg()[proto::HEADER_LEN..]),
        Some(0),
        "run_ns zeroed"
    );
    let f = back[0].frame();
    let udp_len = u16::from_be_bytes([f[38], f[39]]) as usize;
    assert_eq!(udp_len, 8 + 16, "a 16-byte PSP_MB reply");
    assert_eq!([f[40], f[41]], [0, 0], "no UDP checksum");
    let (ip_sum, _) = dpdk::dpdk_checksums(f).expect("a UDP frame");
    assert_eq!(ip_sum, [f[24], f[25]], "the IPv4 checksum is set");
    assert_eq!(rx.drops().bad_psp_mb, 1, "nothing else dropped");
}

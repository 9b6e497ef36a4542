//! A server port on a driver whose RX and TX queues come in pairs (`net_af_packet`,
//! `net_tap`) is refused with a reason: the daemon polls one RX queue and needs a TX
//! queue per worker, and `net_af_packet` spread the flows over every queue's socket,
//! losing those of the unpolled ones without a counter.
//!
//! One scenario per test binary: EAL initialises once per process.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::time::Duration;

use persephone::net::dpdk::{self, Dpdk, DpdkConfig, Error};
use persephone::net::Transport;

#[test]
fn a_port_that_pairs_its_queues_is_refused_for_the_server() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // net_af_packet opens raw sockets (CAP_NET_RAW).
        eprintln!("skipped: not root");
        return;
    }
    let args = test_support::eal_args("paired", "net_af_packet0,iface=lo");
    dpdk::init_eal(&args).expect("EAL");
    let _cleanup = test_support::Cleanup(vec![dpdk::runtime_dir().expect("EAL runtime dir")]);
    let transport = Dpdk::new(&DpdkConfig {
        port: 0,
        ip: Ipv4Addr::new(10, 0, 0, 1),
        udp_port: 6789,
        max_msg: 256,
        mbufs: 1023,
        start_timeout: Duration::from_secs(5),
    })
    .expect("port 0");
    let err = match transport.split(2) {
        Ok(_) => panic!("2 workers on net_af_packet: accepted"),
        Err(e) => e,
    };
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
    assert!(
        matches!(
            inner,
            Some(Error::PairedQueues { driver, rx: 1, tx: 3, .. }) if driver == "net_af_packet"
        ),
        "{err}"
    );
}

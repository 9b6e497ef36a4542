//! EAL with one `net_null` port: TX frees what it is given, RX hands out
//! packets of the configured size; plus registering a non-EAL thread.
// Built without DPDK (see build.rs), there is nothing to test.
#![cfg(not(dpdk_sys_stub))]

mod common;

use std::time::Duration;

use common::{Eal, Port};
use dpdk_sys as sys;

#[test]
fn null_port_tx_rx_and_thread_register() {
    let mut args = common::base_args("null");
    args.push("--vdev=net_null0,size=96".into());
    let eal = Eal::init(&args);
    // SAFETY: EAL is initialised.
    assert_eq!(unsafe { sys::rte_eth_dev_count_avail() }, 1);
    let port_id = common::port_by_name("net_null0");
    let mp = common::pool("psp_null_pool", 1023);
    let port = Port::start(port_id, mp, Duration::from_secs(1));
    assert!(
        port.wait_link(true, Duration::from_secs(2)),
        "net_null link down"
    );

    // TX: the null PMD accepts and frees every mbuf.
    let frame = common::udp_frame(b"into the void");
    let mut tx: Vec<_> = (0..64).map(|_| common::mbuf_with(mp, &frame)).collect();
    assert_eq!(common::in_use(mp), 64);
    assert_eq!(port.tx_all(&mut tx, Duration::from_secs(2)), 64);
    assert_eq!(common::in_use(mp), 0, "net_null frees what it sends");

    // RX: a full burst of `size`-byte packets allocated from our pool.
    let rx = port.rx_until(32, Duration::from_secs(2));
    assert!(rx.len() >= 32);
    for &m in &rx {
        // SAFETY: m is a received mbuf, owned until free_all below.
        unsafe {
            assert_eq!(sys::psp_pktmbuf_data_len(m), 96);
            assert_eq!(sys::psp_pktmbuf_pkt_len(m), 96);
            assert_eq!(sys::psp_pktmbuf_port(m), port_id);
        }
    }
    assert_eq!(common::in_use(mp) as usize, rx.len());
    common::free_all(&rx);
    assert_eq!(common::in_use(mp), 0);
    let (ipackets, opackets) = port.packet_counts();
    assert_eq!((ipackets as usize, opackets), (rx.len(), 64));

    thread_register();

    drop(port);
    // SAFETY: the pool is idle and the port that used it is closed.
    unsafe { sys::rte_mempool_free(mp) };
    drop(eal);
}

/// A thread EAL did not create has no lcore id until `rte_thread_register`.
fn thread_register() {
    std::thread::spawn(|| {
        // SAFETY: EAL is initialised; the thread registers and unregisters
        // itself and touches no other DPDK state.
        unsafe {
            assert_eq!(sys::psp_lcore_id(), sys::LCORE_ID_ANY);
            assert_eq!(sys::rte_thread_register(), 0, "{}", common::last_error());
            let id = sys::psp_lcore_id();
            assert_ne!(id, sys::LCORE_ID_ANY);
            assert_ne!(id, sys::rte_get_main_lcore());
            sys::rte_thread_unregister();
            assert_eq!(sys::psp_lcore_id(), sys::LCORE_ID_ANY);
        }
    })
    .join()
    .expect("registered thread");
}

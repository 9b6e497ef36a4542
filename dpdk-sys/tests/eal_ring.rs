//! EAL with one `net_ring` port: mbuf API through the shim, and TX looping
//! back to RX (a `--vdev=net_ring0` port uses the same rings for RX and TX).
// Built without DPDK (see build.rs), there is nothing to test.
#![cfg(not(dpdk_sys_stub))]

mod common;

use std::time::Duration;

use common::{Eal, Port};
use dpdk_sys as sys;

#[test]
fn ring_loopback_and_mbuf_api() {
    let mut args = common::base_args("ring");
    args.push("--vdev=net_ring0".into());
    let eal = Eal::init(&args);
    // A vdev that fails to probe still lets rte_eal_init succeed: count ports.
    // SAFETY: EAL is initialised.
    assert_eq!(unsafe { sys::rte_eth_dev_count_avail() }, 1);
    let port_id = common::port_by_name("net_ring0");
    let mp = common::pool("psp_ring_pool", 1023);

    mbuf_api(mp);
    checksums();
    eal_misc();

    let port = Port::start(port_id, mp, Duration::from_secs(1));
    assert!(
        port.wait_link(true, Duration::from_secs(2)),
        "net_ring link down"
    );

    let frames: Vec<Vec<u8>> = (0..4u8)
        .map(|i| common::udp_frame(&[i; 37][..usize::from(20 + i)]))
        .collect();
    let mut tx: Vec<_> = frames.iter().map(|f| common::mbuf_with(mp, f)).collect();
    assert_eq!(port.tx_all(&mut tx, Duration::from_secs(2)), 4);

    let rx = port.rx_until(4, Duration::from_secs(2));
    assert_eq!(rx.len(), 4, "looped-back packets");
    for (m, want) in rx.iter().zip(&frames) {
        // SAFETY: m is a received mbuf we own until free_all below.
        assert_eq!(unsafe { common::data(*m) }, want.as_slice());
    }
    common::free_all(&rx);
    assert_eq!(port.packet_counts(), (4, 4));
    assert_eq!(common::in_use(mp), 0, "every mbuf back in the pool");

    drop(port);
    // SAFETY: no mbuf of the pool is in use and the port using it is closed.
    unsafe { sys::rte_mempool_free(mp) };
    drop(eal);
}

/// The mbuf data-area wrappers behave like DPDK documents.
fn mbuf_api(mp: *mut sys::rte_mempool) {
    // SAFETY: every mbuf below comes from the live pool `mp` and is freed
    // before returning; pointers compared or dereferenced stay inside its
    // data room.
    unsafe {
        let m = sys::psp_pktmbuf_alloc(mp);
        assert!(!m.is_null());
        assert_eq!(
            u32::from(sys::psp_pktmbuf_headroom(m)),
            sys::RTE_PKTMBUF_HEADROOM
        );
        assert_eq!(sys::psp_pktmbuf_data_len(m), 0);
        let room = sys::psp_pktmbuf_tailroom(m);
        assert_eq!(
            u32::from(room),
            sys::RTE_MBUF_DEFAULT_BUF_SIZE - sys::RTE_PKTMBUF_HEADROOM
        );

        let p = sys::psp_pktmbuf_append(m, 100);
        assert_eq!(p.cast::<u8>(), sys::psp_pktmbuf_mtod(m).cast::<u8>());
        assert_eq!(sys::psp_pktmbuf_data_len(m), 100);
        assert_eq!(sys::psp_pktmbuf_pkt_len(m), 100);
        assert_eq!(sys::psp_pktmbuf_tailroom(m), room - 100);
        assert!(
            sys::psp_pktmbuf_append(m, room).is_null(),
            "append past tailroom"
        );

        let h = sys::psp_pktmbuf_prepend(m, 14);
        assert_eq!(h.cast::<u8>(), sys::psp_pktmbuf_mtod(m).cast::<u8>());
        assert_eq!(h.add(14), p);
        assert_eq!(sys::psp_pktmbuf_headroom(m), 128 - 14);
        assert_eq!(sys::psp_pktmbuf_data_len(m), 114);
        assert_eq!(
            sys::psp_pktmbuf_mtod_offset(m, 14).cast::<u8>(),
            p.cast::<u8>()
        );

        assert_eq!(sys::psp_pktmbuf_adj(m, 14), p);
        assert_eq!(sys::psp_pktmbuf_data_len(m), 100);
        assert_eq!(sys::psp_pktmbuf_trim(m, 50), 0);
        assert_eq!(sys::psp_pktmbuf_pkt_len(m), 50);
        assert_eq!(sys::psp_pktmbuf_trim(m, 51), -1, "trim past data");

        sys::psp_pktmbuf_set_data_len(m, 60);
        sys::psp_pktmbuf_set_pkt_len(m, 60);
        assert_eq!(
            (sys::psp_pktmbuf_data_len(m), sys::psp_pktmbuf_pkt_len(m)),
            (60, 60)
        );
        assert_eq!(sys::psp_pktmbuf_is_contiguous(m), 1);
        assert_eq!(sys::psp_pktmbuf_nb_segs(m), 1);

        let flags =
            sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM | sys::RTE_MBUF_F_TX_UDP_CKSUM;
        sys::psp_pktmbuf_set_tx_offload(m, flags, 14, 20, 8);
        assert_eq!(sys::psp_pktmbuf_ol_flags(m) & flags, flags);
        assert_eq!(
            (
                sys::psp_pktmbuf_l2_len(m),
                sys::psp_pktmbuf_l3_len(m),
                sys::psp_pktmbuf_l4_len(m)
            ),
            (14, 20, 8)
        );
        sys::psp_pktmbuf_set_ol_flags(m, 0);
        assert_eq!(sys::psp_pktmbuf_ol_flags(m), 0);

        sys::psp_pktmbuf_reset(m);
        assert_eq!(sys::psp_pktmbuf_data_len(m), 0);
        assert_eq!(sys::psp_pktmbuf_headroom(m), 128);
        sys::psp_pktmbuf_free(m);
        assert_eq!(common::in_use(mp), 0);

        let mut bulk = [std::ptr::null_mut(); 8];
        assert_eq!(sys::psp_pktmbuf_alloc_bulk(mp, bulk.as_mut_ptr(), 8), 0);
        assert_eq!(common::in_use(mp), 8);
        sys::rte_pktmbuf_free_bulk(bulk.as_mut_ptr(), 8);
        assert_eq!(common::in_use(mp), 0);
    }
}

/// DPDK's checksum helpers agree with an independent RFC 1071 sum.
fn checksums() {
    let mut frame = common::udp_frame(b"persephone");
    let want_ip = [frame[24], frame[25]];
    let want_udp = [frame[40], frame[41]];
    frame[24..26].fill(0);
    frame[40..42].fill(0);
    let ip = frame[14..].as_ptr().cast::<sys::rte_ipv4_hdr>();
    // SAFETY: `ip` points at a complete IPv4 header (IHL 5) followed by the
    // whole UDP datagram, all inside `frame`; rte_ipv4_hdr is packed (align 1).
    let (ip_csum, udp_csum, phdr) = unsafe {
        (
            sys::psp_ipv4_cksum(ip),
            sys::psp_ipv4_udptcp_cksum(ip, frame[34..].as_ptr().cast()),
            sys::psp_ipv4_phdr_cksum(ip, 0),
        )
    };
    // The results are in network order in memory, ready to store.
    assert_eq!(ip_csum.to_ne_bytes(), want_ip);
    assert_eq!(udp_csum.to_ne_bytes(), want_udp);
    assert_ne!(phdr, 0);
}

/// lcore id, errno, TSC.
fn eal_misc() {
    // SAFETY: plain EAL queries on an initialised EAL, from the main lcore.
    unsafe {
        assert_eq!(sys::psp_lcore_id(), sys::rte_get_main_lcore());
        let hz = sys::psp_get_tsc_hz();
        assert!(hz > 1_000_000, "TSC at {hz} Hz");
        assert_eq!(hz, sys::rte_get_tsc_hz());
        let t0 = sys::psp_rdtsc();
        std::thread::sleep(Duration::from_millis(10));
        let t1 = sys::psp_rdtsc_precise();
        let ms = (t1 - t0) * 1000 / hz;
        assert!((9..1000).contains(&ms), "10 ms measured as {ms} ms of TSC");
        sys::psp_pause();
    }
    // A second pool with a taken name fails with EEXIST in rte_errno.
    let name = std::ffi::CString::new("psp_ring_pool").unwrap();
    // SAFETY: valid C string; the call fails without side effects.
    let dup =
        unsafe { sys::rte_pktmbuf_pool_create(name.as_ptr(), 63, 0, 0, 2048, sys::SOCKET_ID_ANY) };
    assert!(dup.is_null());
    // SAFETY: reads this thread's rte_errno.
    assert_eq!(unsafe { sys::psp_errno() }, EEXIST);
}

/// EEXIST on Linux (no libc dependency for one constant).
const EEXIST: i32 = 17;

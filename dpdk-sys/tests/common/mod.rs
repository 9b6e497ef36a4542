//! Helpers shared by the EAL tests: init/cleanup, port setup, bounded waits,
//! and a test frame. Each test binary initialises EAL once (EAL cannot be
//! initialised twice in one process), so each scenario has its own file.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;
use std::time::{Duration, Instant};

use dpdk_sys as sys;

/// EAL arguments that run without a NIC, hugepages, or root-only files:
/// anonymous memory (`--no-huge`, 128 MiB), no PCI scan, a file prefix unique
/// to this process so runs never share a runtime directory, and no telemetry
/// socket thread. (`--in-memory` is not allowed together with `--no-huge` on
/// 22.11.)
pub fn base_args(tag: &str) -> Vec<String> {
    vec![
        format!("psp-sys-{tag}"),
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "128".into(),
        "--file-prefix".into(),
        format!("psp-sys-{tag}-{}", std::process::id()),
        "--no-telemetry".into(),
    ]
}

/// The initialised EAL of this process. Dropping it calls `rte_eal_cleanup`
/// and removes the runtime directory EAL created for the file prefix.
pub struct Eal {
    runtime_dir: String,
}

impl Eal {
    /// `rte_eal_init(args)`; panics with `rte_strerror(rte_errno)` on failure.
    pub fn init(args: &[String]) -> Eal {
        eprintln!("EAL args: {}", args.join(" "));
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).expect("no NUL in EAL args"))
            .collect();
        // EAL may permute argv, so hand it a mutable array it can own for the
        // process lifetime; the strings themselves must outlive EAL too.
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = i32::try_from(argv.len()).expect("few args");
        // SAFETY: argv holds argc valid NUL-terminated strings that are never
        // freed; EAL is initialised once per process (one test per binary).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        assert!(ret >= 0, "rte_eal_init failed: {}", last_error());
        // SAFETY: EAL is initialised; the result points to a static
        // NUL-terminated buffer inside EAL.
        let runtime_dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) }
            .to_string_lossy()
            .into_owned();
        Eal { runtime_dir }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every DPDK object of the test is released
        // (ports stopped and closed by `Port::drop`, which runs first).
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret != 0 {
            eprintln!("rte_eal_cleanup: {ret}");
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// `rte_strerror(rte_errno)` as a string.
pub fn last_error() -> String {
    // SAFETY: psp_errno reads a thread-local; rte_strerror returns a pointer
    // to a static or thread-local NUL-terminated string.
    unsafe {
        let errno = sys::psp_errno();
        format!(
            "{} (rte_errno {errno})",
            CStr::from_ptr(sys::rte_strerror(errno)).to_string_lossy()
        )
    }
}

/// An mbuf pool of `n` default-sized mbufs with no per-lcore cache, so that
/// `rte_mempool_in_use_count` is exact.
pub fn pool(name: &str, n: u32) -> *mut sys::rte_mempool {
    let cname = CString::new(name).expect("no NUL");
    // SAFETY: EAL is initialised; cname is a valid C string for the call.
    let mp = unsafe {
        sys::rte_pktmbuf_pool_create(
            cname.as_ptr(),
            n,
            0,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as i32,
        )
    };
    assert!(!mp.is_null(), "rte_pktmbuf_pool_create: {}", last_error());
    mp
}

/// mbufs of `mp` currently allocated.
pub fn in_use(mp: *mut sys::rte_mempool) -> u32 {
    // SAFETY: mp is a live pool from `pool`.
    unsafe { sys::rte_mempool_in_use_count(mp) }
}

/// The port id of a probed device, by its vdev name.
pub fn port_by_name(name: &str) -> u16 {
    let cname = CString::new(name).expect("no NUL");
    let mut port = u16::MAX;
    // SAFETY: cname is a valid C string and port a valid out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) };
    assert_eq!(ret, 0, "no port named {name}");
    port
}

/// A started port with 1 RX and 1 TX queue. Dropping it stops and closes it.
pub struct Port {
    pub id: u16,
}

impl Port {
    /// Configure 1 RX queue (fed from `mp`) and 1 TX queue, then start the
    /// port, retrying `rte_eth_dev_start` until `start_timeout` (a memif
    /// client's start fails until its server listens).
    pub fn start(id: u16, mp: *mut sys::rte_mempool, start_timeout: Duration) -> Port {
        let conf = sys::rte_eth_conf::default();
        // SAFETY: `id` is a valid port; conf lives across the call.
        let ret = unsafe { sys::rte_eth_dev_configure(id, 1, 1, &conf) };
        assert_eq!(ret, 0, "rte_eth_dev_configure: {ret}");
        // SAFETY: valid port id, configured above.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        // SAFETY: configured port, queue 0 exists, NULL conf means the
        // driver's defaults, mp is a live pktmbuf pool.
        let ret = unsafe { sys::rte_eth_rx_queue_setup(id, 0, 256, socket, ptr::null(), mp) };
        assert_eq!(ret, 0, "rte_eth_rx_queue_setup: {ret}");
        // SAFETY: as above, for the TX queue.
        let ret = unsafe { sys::rte_eth_tx_queue_setup(id, 0, 256, socket, ptr::null()) };
        assert_eq!(ret, 0, "rte_eth_tx_queue_setup: {ret}");
        let deadline = Instant::now() + start_timeout;
        loop {
            // SAFETY: queues are set up.
            let ret = unsafe { sys::rte_eth_dev_start(id) };
            if ret == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rte_eth_dev_start({id}) still failing after {start_timeout:?}: {ret}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Port { id }
    }

    /// Link status right now (no waiting inside DPDK).
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port, link is a valid out pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        ret == 0 && link.link_status() == sys::RTE_ETH_LINK_UP as u16
    }

    /// Wait until the link is up or `timeout` passes; true if up.
    pub fn wait_link(&self, up: bool, timeout: Duration) -> bool {
        wait_for(timeout, || self.link_up() == up)
    }

    /// Send all of `pkts`, retrying short bursts until `timeout`; any mbuf
    /// not sent by then is freed. Returns how many were sent.
    pub fn tx_all(&self, pkts: &mut [*mut sys::rte_mbuf], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut sent = 0;
        while sent < pkts.len() && Instant::now() < deadline {
            let rest = &mut pkts[sent..];
            // SAFETY: `rest` holds valid mbufs we own; the PMD takes ownership
            // of the first `n` it returns.
            let n =
                unsafe { sys::psp_eth_tx_burst(self.id, 0, rest.as_mut_ptr(), rest.len() as u16) };
            sent += usize::from(n);
            if sent < pkts.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for &m in &pkts[sent..] {
            // SAFETY: not taken by the PMD, still ours.
            unsafe { sys::psp_pktmbuf_free(m) };
        }
        sent
    }

    /// Poll RX until at least `want` mbufs arrived or `timeout` passes.
    pub fn rx_until(&self, want: usize, timeout: Duration) -> Vec<*mut sys::rte_mbuf> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut burst = [ptr::null_mut::<sys::rte_mbuf>(); 32];
        while got.len() < want && Instant::now() < deadline {
            // SAFETY: burst has room for 32 mbuf pointers; the PMD fills the
            // first `n` with mbufs that we then own.
            let n = unsafe { sys::psp_eth_rx_burst(self.id, 0, burst.as_mut_ptr(), 32) };
            got.extend_from_slice(&burst[..usize::from(n)]);
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        got
    }

    /// `(ipackets, opackets)` from the port's basic stats.
    pub fn packet_counts(&self) -> (u64, u64) {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: valid port; stats is a valid out pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.id, &mut stats) };
        assert_eq!(ret, 0);
        (stats.ipackets, stats.opackets)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port was started by `Port::start`; no queue is polled
        // after this (single-threaded tests).
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

/// Poll `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A new mbuf from `mp` holding `bytes`.
pub fn mbuf_with(mp: *mut sys::rte_mempool, bytes: &[u8]) -> *mut sys::rte_mbuf {
    // SAFETY: mp is a live pool.
    let m = unsafe { sys::psp_pktmbuf_alloc(mp) };
    assert!(!m.is_null(), "pool empty");
    let len = u16::try_from(bytes.len()).expect("fits an mbuf");
    // SAFETY: m is a fresh mbuf; append returns room for `len` bytes or NULL.
    let dst = unsafe { sys::psp_pktmbuf_append(m, len) };
    assert!(!dst.is_null(), "no tailroom for {len} bytes");
    // SAFETY: dst points to `len` writable bytes inside m's data room.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
    m
}

/// The data of a single-segment mbuf.
///
/// # Safety
/// `m` must be a valid mbuf that stays alive and unmodified while the slice
/// is used.
pub unsafe fn data<'a>(m: *mut sys::rte_mbuf) -> &'a [u8] {
    // SAFETY: per the contract m is valid; mtod/data_len describe the
    // first (here: only) segment's initialised bytes.
    unsafe {
        assert_eq!(sys::psp_pktmbuf_nb_segs(m), 1);
        let len = usize::from(sys::psp_pktmbuf_data_len(m));
        std::slice::from_raw_parts(sys::psp_pktmbuf_mtod(m).cast::<u8>(), len)
    }
}

/// Free every mbuf of `pkts`.
pub fn free_all(pkts: &[*mut sys::rte_mbuf]) {
    for &m in pkts {
        // SAFETY: each mbuf is owned by the caller and not used again.
        unsafe { sys::psp_pktmbuf_free(m) };
    }
}

/// An Ethernet/IPv4/UDP frame carrying `payload`, with valid IPv4 and UDP
/// checksums (computed here in Rust, independent of DPDK).
pub fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + 8 + payload.len();
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]); // id, DF, ttl, UDP, csum
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let csum = internet_checksum(&f[ip_start..ip_start + 20]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&f[ip_start + 12..ip_start + 20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&6789u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    pseudo.extend_from_slice(&f[udp_start..]);
    let csum = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    f[udp_start + 6..udp_start + 8].copy_from_slice(&csum.to_be_bytes());
    f
}

/// RFC 1071 checksum of `bytes`, as a big-endian value.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

//! dpdk.rs - the DPDK transport: poll-mode RX/TX on one port, frames parsed and
//! rewritten in Rust, and a small client for load generators and tests.
//!
//! # Shape
//! - **EAL** is initialised once per process ([`init_eal`], from `net.eal_args`);
//!   a second call is an error ([`Error::EalAlreadyInitialised`]), never a second
//!   `rte_eal_init`.
//! - **One port** ([`Dpdk`]), configured by [`Transport::split`] with 1 RX queue,
//!   polled by the dispatcher ([`DpdkRx`]), and `n + 1` TX queues: queue `i` for
//!   worker `i`, queue `n` for the dispatcher's own replies (rejections, and ARP
//!   replies sent from the receive path). **One mempool** feeds RX.
//! - **Packets** ([`DpdkPkt`]) are mbuf handles that free on drop. Ethernet, IPv4
//!   and UDP are parsed by [`frame::parse`]; the reply is written over the request
//!   in place by [`frame::udp_reply_in_place`] (checksums in software, or offloaded
//!   when the port offers both IPv4 and UDP checksum offload). ARP requests for our
//!   IP are answered, so clients need no static MAC.
//! - **TX in bursts, never aborting**: a worker's replies are queued and leave in
//!   one `tx_burst` when its ring runs dry ([`TxQueue::flush`]) or [`MAX_BURST`] are
//!   waiting; the dispatcher's own replies leave at once. A queue that takes nothing
//!   is retried [`TX_RETRIES`] times, then what is left is freed and counted
//!   ([`TxQueue::errors`]).
//! - **Threads**: workers register with EAL (`rte_thread_register`) through
//!   [`TxQueue::thread_init`] when they start; the dispatcher's thread registers on
//!   its first receive. A registered thread gets an lcore id, hence a per-lcore
//!   mempool cache.
//! - [`DpdkClient`]: the client side (ARP resolution, request frames out, reply
//!   payloads in), for `psp-client` and the tests.
//!
//! # Unsafe
//! Every call into DPDK is here or in `dpdk-sys`, each `unsafe` block with its
//! argument. The invariants they lean on: EAL is initialised before any port or
//! mempool call (checked by [`Dpdk::new`] and [`DpdkClient::connect`]); a port's
//! queues are each reached through exactly one `&mut` owner (one [`DpdkTx`] or a
//! mutex-guarded lane per TX queue, one [`DpdkRx`] or client for RX); an mbuf is
//! owned by exactly one handle; mempools live until the process exits (an mbuf may
//! outlive the port it came from, never its pool).
//!
//! # Memif queue pairs
//! A memif server's TX queue `k` writes the client's RX ring `k`, and the client
//! decides how many rings exist: a memif client must open as many RX queues as the
//! server has TX queues (`workers.number + 1`), see [`ClientConfig::rx_queues`].

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dpdk_sys as sys;
use thiserror::Error;

use super::frame::{self, Frame, Local, Mac, RxChecks, TxChecksums, HEADERS_LEN};
use super::{Packet, RxDrops, RxQueue, Split, Transport, TxQueue};

const _: () = assert!(
    sys::AVAILABLE,
    "DPDK not found by pkg-config: run scripts/setup-dpdk.sh"
);

/// Most packets taken by one `rx_burst`.
pub const MAX_BURST: usize = 32;
/// Attempts to transmit a packet before it is dropped and counted.
pub const TX_RETRIES: u32 = 64;
/// RX and TX descriptors asked for per queue (adjusted to the device's limits).
const RING_DESC: u16 = 1024;
/// Per-lcore mempool cache size.
const POOL_CACHE: u32 = 64;

/// What can go wrong setting DPDK up. (The data path never fails: it counts.)
#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "EAL is already initialised in this process (DPDK allows one rte_eal_init per process)"
    )]
    EalAlreadyInitialised,
    #[error("an earlier rte_eal_init in this process failed; EAL cannot be initialised again")]
    EalFailedEarlier,
    #[error("EAL is not initialised: call net::dpdk::init_eal first")]
    EalNotInitialised,
    #[error("EAL argument {0:?} contains a NUL byte")]
    EalArgNul(String),
    #[error("rte_eal_init({args}) failed: {reason}")]
    EalInit { args: String, reason: String },
    #[error("port {port} does not exist ({available} port(s) probed){hint}")]
    NoSuchPort {
        port: u16,
        available: u16,
        hint: String,
    },
    #[error("port {0} is already in use in this process")]
    PortInUse(u16),
    #[error("port {port}: needs {want} {what} queues, the device offers {max}")]
    TooManyQueues {
        port: u16,
        what: &'static str,
        want: usize,
        max: u16,
    },
    #[error("cannot create mempool of {n} mbufs: {reason}")]
    Mempool { n: u32, reason: String },
    #[error("port {port}: {step} failed: {reason}")]
    Port {
        port: u16,
        step: &'static str,
        reason: String,
    },
    #[error("port {port}: rte_eth_dev_start still failing after {waited:?}: {reason}")]
    StartTimeout {
        port: u16,
        waited: Duration,
        reason: String,
    },
    #[error("port {port}: link still down after {waited:?}")]
    LinkDown { port: u16, waited: Duration },
    #[error("no ARP reply from {ip} within {waited:?}")]
    ArpTimeout { ip: Ipv4Addr, waited: Duration },
    #[error(
        "port {port}: driver {driver} pairs its RX and TX queues, but this needs {rx} RX and \
         {tx} TX queues (a server: use net_memif, net_ring or a NIC; a client: \
         dpdk.rx_queues 1)"
    )]
    PairedQueues {
        port: u16,
        driver: String,
        rx: u16,
        tx: u16,
    },
}

/// Drivers whose RX and TX queues come in pairs (one socket or fd each): with fewer RX
/// queues than TX queues they either refuse to configure (`net_tap`) or spread the
/// received flows over sockets nobody polls (`net_af_packet`'s fanout).
const PAIRED_QUEUE_DRIVERS: [&str; 2] = ["net_af_packet", "net_tap"];

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::other(e)
    }
}

/// `rte_strerror(code)` (for a negative return value or `rte_errno`).
fn strerror(code: i32) -> String {
    let code = code.saturating_abs();
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static
    // or thread-local NUL-terminated string.
    let s = unsafe { CStr::from_ptr(sys::rte_strerror(code)) };
    format!("{} (errno {code})", s.to_string_lossy())
}

/// `rte_strerror(rte_errno)`.
fn last_error() -> String {
    // SAFETY: psp_errno reads the calling thread's rte_errno.
    strerror(unsafe { sys::psp_errno() })
}

// ---------------------------------------------------------------------------------
// EAL

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EalState {
    Uninit,
    Ready,
    Failed,
}

static EAL: Mutex<EalState> = Mutex::new(EalState::Uninit);

/// Initialises DPDK's EAL with `args` (EAL options only: the program name is
/// added in front). Once per process: a second call returns
/// [`Error::EalAlreadyInitialised`], and after a failure every call returns
/// [`Error::EalFailedEarlier`].
///
/// `rte_eal_init` pins the calling thread to the main lcore's core; this puts the
/// thread's CPU affinity back afterwards, so that threads it spawns later (the
/// daemon's workers, with `pin: false`) are not all confined to that one core.
///
/// Argument lists that need no NIC, hugepages or root-only files:
/// `--no-huge --no-pci -m 256 --file-prefix <unique> --no-telemetry
/// --vdev=net_memif0,...` (see the README). `--in-memory` cannot be combined with
/// `--no-huge` on DPDK 22.11. A failed `--vdev` probe does not fail
/// `rte_eal_init`; [`Dpdk::new`] reports the missing port.
pub fn init_eal(args: &[String]) -> Result<(), Error> {
    let mut state = EAL.lock().unwrap_or_else(PoisonError::into_inner);
    match *state {
        EalState::Ready => return Err(Error::EalAlreadyInitialised),
        EalState::Failed => return Err(Error::EalFailedEarlier),
        EalState::Uninit => {}
    }
    let mut owned = Vec::with_capacity(args.len() + 1);
    owned.push(CString::new("psp").expect("no NUL"));
    for a in args {
        owned.push(CString::new(a.as_str()).map_err(|_| Error::EalArgNul(a.clone()))?);
    }
    // EAL may permute argv and keep pointers into it: hand it an array and strings
    // that live for the rest of the process (once per process, a few bytes).
    let argv: &'static mut [*mut c_char] = Box::leak(
        owned
            .into_iter()
            .map(CString::into_raw)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let argc = i32::try_from(argv.len()).map_err(|_| Error::EalInit {
        args: args.join(" "),
        reason: "too many arguments".into(),
    })?;
    let affinity = current_affinity();
    // SAFETY: argv holds argc valid NUL-terminated strings that are never freed;
    // the EAL mutex guarantees this is the only rte_eal_init of the process.
    let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        *state = EalState::Failed;
        return Err(Error::EalInit {
            args: args.join(" "),
            reason: last_error(),
        });
    }
    if let Some(set) = affinity {
        restore_affinity(&set);
    }
    *state = EalState::Ready;
    tracing::info!(args = %args.join(" "), "DPDK EAL initialised");
    Ok(())
}

/// EAL's runtime directory for this process (`/var/run/dpdk/<file-prefix>` when
/// run as root). EAL leaves it behind at exit; tools that run many short EAL
/// processes remove it when done.
pub fn runtime_dir() -> Option<std::path::PathBuf> {
    require_eal().ok()?;
    // SAFETY: EAL is initialised; the result points to a static NUL-terminated
    // buffer inside EAL.
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    Some(dir.to_string_lossy().into_owned().into())
}

/// The runtime directory EAL uses for `--file-prefix prefix` in a process of this
/// user (`/var/run/dpdk/<prefix>` for root, else under `$XDG_RUNTIME_DIR` or
/// `/tmp`), for cleaning up after a process that is gone: EAL leaves it behind at
/// exit, and a killed process cannot remove it itself.
pub fn runtime_dir_for(prefix: &str) -> std::path::PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let base = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from("/tmp"))
    };
    base.join("dpdk").join(prefix)
}

/// EAL options for one `net_memif` port (port 0) with no hugepages and no PCI scan:
/// `role` is `server` or `client`, `socket` a filesystem path (not abstract), `mac`
/// the port's address, and `prefix` this process's `--file-prefix` (each EAL process
/// on a host needs its own). The tests and benchmarks run memif pairs with these.
pub fn memif_eal_args(
    prefix: &str,
    role: &str,
    socket: &std::path::Path,
    mac: &str,
) -> Vec<String> {
    vec![
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "256".into(),
        "--file-prefix".into(),
        prefix.into(),
        "--no-telemetry".into(),
        format!(
            "--vdev=net_memif0,role={role},id=0,socket={},socket-abstract=no,mac={mac}",
            socket.display()
        ),
    ]
}

/// Whether [`init_eal`] succeeded in this process.
pub fn eal_initialised() -> bool {
    *EAL.lock().unwrap_or_else(PoisonError::into_inner) == EalState::Ready
}

fn require_eal() -> Result<(), Error> {
    if eal_initialised() {
        Ok(())
    } else {
        Err(Error::EalNotInitialised)
    }
}

fn current_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    (r == 0).then_some(set)
}

fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
    if r != 0 {
        tracing::warn!(
            "cannot restore the CPU affinity rte_eal_init changed: {}",
            io::Error::last_os_error()
        );
    }
}

/// The EAL lcore id of the calling thread: `Some` for the thread that
/// initialised EAL and for registered threads.
pub fn current_lcore() -> Option<u32> {
    if !eal_initialised() {
        return None;
    }
    // SAFETY: reads the calling thread's lcore id (a thread-local).
    let id = unsafe { sys::psp_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// Unregisters the thread from EAL when it exits (held in a thread-local).
struct Registration;

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: this thread registered with rte_thread_register and is exiting;
        // unregistering releases its lcore id.
        unsafe { sys::rte_thread_unregister() };
    }
}

thread_local! {
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static REGISTRATION: Cell<Option<Registration>> = const { Cell::new(None) };
}

/// Gives the calling thread an EAL lcore id (`rte_thread_register`) unless it
/// has one; it is released when the thread exits. A thread without one still
/// works (mempool operations then bypass the per-lcore cache); failing to
/// register is logged, not fatal.
pub fn register_thread() {
    if REGISTERED.with(Cell::get) || !eal_initialised() {
        return;
    }
    REGISTERED.with(|r| r.set(true));
    if current_lcore().is_some() {
        return; // the main lcore, or registered outside this module
    }
    // SAFETY: EAL is initialised; registering the calling thread has no other
    // precondition.
    if unsafe { sys::rte_thread_register() } != 0 {
        tracing::warn!(
            thread = std::thread::current().name().unwrap_or("?"),
            "rte_thread_register failed ({}): running without an lcore id",
            last_error()
        );
        return;
    }
    REGISTRATION.with(|r| r.set(Some(Registration)));
}

// ---------------------------------------------------------------------------------
// Mempool and mbufs

/// A pktmbuf pool. Never freed: an mbuf may be dropped after everything else (in a
/// queue being torn down), and freeing it needs its pool.
#[derive(Debug, Clone, Copy)]
struct Pool(NonNull<sys::rte_mempool>);

// SAFETY: a mempool is made for concurrent use: get and put go through the
// multi-producer multi-consumer ring (ring_mp_mc) or the calling thread's own
// per-lcore cache; and the pool is never freed, so the pointer stays valid.
unsafe impl Send for Pool {}
// SAFETY: as above; shared references only call thread-safe mempool functions.
unsafe impl Sync for Pool {}

impl Pool {
    fn create(n: u32, socket: i32) -> Result<Pool, Error> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("psp_pool_{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let cname = CString::new(name).expect("no NUL");
        // SAFETY: EAL is initialised (checked by the callers); cname is a valid C
        // string for the duration of the call.
        let mp = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n,
                POOL_CACHE,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        NonNull::new(mp).map(Pool).ok_or_else(|| Error::Mempool {
            n,
            reason: last_error(),
        })
    }

    fn alloc(self) -> Option<Mbuf> {
        // SAFETY: the pool is live; a non-null result is a fresh mbuf we own.
        NonNull::new(unsafe { sys::psp_pktmbuf_alloc(self.0.as_ptr()) }).map(Mbuf)
    }

    fn in_use(self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }
}

/// An owned mbuf (freed on drop).
#[derive(Debug)]
struct Mbuf(NonNull<sys::rte_mbuf>);

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (see `Mbuf::from_rx`/`Pool::alloc`) and it is
        // not used after this.
        unsafe { sys::psp_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl Mbuf {
    /// Takes ownership of an mbuf that `rx_burst` returned.
    ///
    /// # Safety
    /// `m` must be a valid mbuf owned by the caller and not used through any other
    /// pointer afterwards.
    unsafe fn from_raw(m: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(m).map(Mbuf)
    }

    /// Gives up ownership (to a `tx_burst` that accepted it).
    fn into_raw(self) -> *mut sys::rte_mbuf {
        let m = self.0.as_ptr();
        std::mem::forget(self);
        m
    }

    /// Whether the data is one segment in a buffer this mbuf alone owns, so that
    /// writing it in place and moving the handle between threads are sound.
    fn is_simple(&self) -> bool {
        // SAFETY: we own a valid mbuf; reading its header fields.
        let m = unsafe { self.0.as_ref() };
        let shared = sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL;
        m.nb_segs == 1 && m.refcnt == 1 && m.ol_flags & shared == 0 && !m.buf_addr.is_null()
    }

    fn ol_flags(&self) -> u64 {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref().ol_flags }
    }

    /// Start of the data and the bytes after it in the buffer (data + tailroom).
    fn data_room(&mut self) -> (NonNull<u8>, usize) {
        // SAFETY: we own a valid direct mbuf: its data starts `data_off` bytes into
        // its buffer of `buf_len` bytes.
        unsafe {
            let m = self.0.as_ref();
            let off = usize::from(m.data_off);
            let start = m.buf_addr.cast::<u8>().add(off);
            let room = usize::from(m.buf_len).saturating_sub(off);
            (NonNull::new_unchecked(start), room)
        }
    }

    fn data_len(&self) -> usize {
        // SAFETY: we own a valid mbuf.
        usize::from(unsafe { self.0.as_ref().data_len })
    }

    /// The packet data (first and only segment).
    fn data(&mut self) -> &[u8] {
        let len = self.data_len();
        let (start, room) = self.data_room();
        // SAFETY: `len <= room` bytes from `start` are the initialised packet data
        // of an mbuf we own; the borrow of `self` keeps it alive and unaliased.
        unsafe { std::slice::from_raw_parts(start.as_ptr(), len.min(room)) }
    }

    /// The whole data room, from the packet start to the end of the buffer.
    fn room_mut(&mut self) -> &mut [u8] {
        let (start, room) = self.data_room();
        // SAFETY: `room` bytes from `start` lie inside the mbuf's own buffer (it is
        // direct and not shared, see `is_simple`/`Pool::alloc`); that buffer is plain
        // bytes from DPDK's memory, mmap'd pages the kernel zero-fills and that are
        // only ever written as bytes, so every byte has a value; the exclusive borrow
        // of `self` rules out aliasing.
        unsafe { std::slice::from_raw_parts_mut(start.as_ptr(), room) }
    }

    /// Turns the ARP request held here (a [`Frame::ArpRequest`] for `local`) into
    /// the reply, in place: it keeps the request's length (and its padding, if any)
    /// and leaves without offload flags. `false` if the frame is too short to answer.
    fn arp_reply(&mut self, local: &Local) -> bool {
        let data_len = self.data_len();
        let request = self.room_mut().get_mut(..data_len);
        match request.and_then(|f| frame::arp_reply_in_place(f, local)) {
            Some(len) => {
                self.set_len(len, TxChecksums::Software);
                true
            }
            None => false,
        }
    }

    /// Sets the packet length (one segment), with TX offload flags or none.
    fn set_len(&mut self, len: usize, csum: TxChecksums) {
        let len = len.min(self.data_room().1) as u16;
        // SAFETY: we own the mbuf exclusively; a single-segment packet's pkt_len
        // equals its data_len, and `len` fits the buffer.
        unsafe {
            let m = self.0.as_mut();
            m.data_len = len;
            m.pkt_len = u32::from(len);
            m.ol_flags = 0;
        }
        if csum == TxChecksums::Offload {
            let flags = sys::RTE_MBUF_F_TX_IPV4
                | sys::RTE_MBUF_F_TX_IP_CKSUM
                | sys::RTE_MBUF_F_TX_UDP_CKSUM;
            // SAFETY: we own the mbuf; this sets its offload flags and header lengths.
            unsafe {
                sys::psp_pktmbuf_set_tx_offload(
                    self.0.as_ptr(),
                    flags,
                    frame::ETH_LEN as u16,
                    frame::IPV4_LEN as u16,
                    frame::UDP_LEN as u16,
                )
            };
        }
    }
}

// ---------------------------------------------------------------------------------
// Ports

/// Ports this process has claimed (so two transports never share queues).
static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A claimed port; stopped, closed and released when the last holder drops it.
#[derive(Debug)]
struct PortHandle {
    id: u16,
    started: AtomicBool,
}

impl PortHandle {
    fn claim(id: u16) -> Result<PortHandle, Error> {
        require_eal()?;
        // SAFETY: EAL is initialised.
        let valid = unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1;
        if !valid {
            // SAFETY: EAL is initialised.
            let available = unsafe { sys::rte_eth_dev_count_avail() };
            let hint = match (available, sys::EAL_PMD_PATH) {
                (0, Some(dir)) => format!(
                    ": did a --vdev fail to probe? (drivers are loaded from {dir}; see the EAL log above)"
                ),
                (0, None) => ": pass --vdev or -d <driver.so> in net.eal_args".into(),
                _ => String::new(),
            };
            return Err(Error::NoSuchPort {
                port: id,
                available,
                hint,
            });
        }
        let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
        if claimed.contains(&id) {
            return Err(Error::PortInUse(id));
        }
        claimed.push(id);
        Ok(PortHandle {
            id,
            started: AtomicBool::new(false),
        })
    }

    fn err(&self, step: &'static str, code: i32) -> Error {
        Error::Port {
            port: self.id,
            step,
            reason: strerror(code),
        }
    }

    fn info(&self) -> Result<sys::rte_eth_dev_info, Error> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port (claimed); `info` is a valid out pointer.
        let r = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        if r != 0 {
            return Err(self.err("rte_eth_dev_info_get", r));
        }
        Ok(info)
    }

    fn mac(&self) -> Result<Mac, Error> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; `addr` is a valid out pointer.
        let r = unsafe { sys::rte_eth_macaddr_get(self.id, &mut addr) };
        if r != 0 {
            return Err(self.err("rte_eth_macaddr_get", r));
        }
        Ok(addr.addr_bytes)
    }

    /// Largest UDP payload the port's MTU allows in one frame.
    fn max_payload(&self) -> usize {
        let mut mtu = 0u16;
        // SAFETY: valid port; `mtu` is a valid out pointer.
        let r = unsafe { sys::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        let mtu = if r == 0 && mtu >= 576 {
            usize::from(mtu)
        } else {
            1500
        };
        mtu - frame::IPV4_LEN - frame::UDP_LEN
    }

    fn socket(&self) -> i32 {
        // SAFETY: valid port.
        let s = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        s.max(0)
    }

    /// Configures `rx` RX queues fed from `pool` and `tx` TX queues, with checksum
    /// offloads when the device has both IPv4 and UDP ones; then starts the port,
    /// retrying `rte_eth_dev_start` until `start_timeout` (a memif client cannot
    /// start before its server listens). Returns the checksum modes in use.
    fn configure_and_start(
        &self,
        rx: u16,
        tx: u16,
        pool: Pool,
        start_timeout: Duration,
    ) -> Result<(TxChecksums, bool), Error> {
        let info = self.info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK's driver name, a NUL-terminated static string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if rx != tx && PAIRED_QUEUE_DRIVERS.contains(&driver.as_str()) {
            // The server: 1 RX and a TX queue per worker; a client: rx_queues RX and 1
            // TX (which works there with rx_queues: 1).
            return Err(Error::PairedQueues {
                port: self.id,
                driver,
                rx,
                tx,
            });
        }
        if usize::from(rx) > usize::from(info.max_rx_queues) {
            return Err(Error::TooManyQueues {
                port: self.id,
                what: "RX",
                want: rx.into(),
                max: info.max_rx_queues,
            });
        }
        if usize::from(tx) > usize::from(info.max_tx_queues) {
            return Err(Error::TooManyQueues {
                port: self.id,
                what: "TX",
                want: tx.into(),
                max: info.max_tx_queues,
            });
        }
        let tx_csum = sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
        let rx_csum = sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | sys::RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
        let tx_offload = info.tx_offload_capa & tx_csum == tx_csum;
        let rx_offload = info.rx_offload_capa & rx_csum == rx_csum;
        let mut conf = sys::rte_eth_conf::default();
        if tx_offload {
            conf.txmode.offloads = tx_csum;
        }
        if rx_offload {
            conf.rxmode.offloads = rx_csum;
        }
        // SAFETY: valid, claimed port; `conf` lives across the call.
        let r = unsafe { sys::rte_eth_dev_configure(self.id, rx, tx, &conf) };
        if r != 0 {
            return Err(self.err("rte_eth_dev_configure", r));
        }
        let (mut nb_rx, mut nb_tx) = (RING_DESC, RING_DESC);
        // SAFETY: configured port; valid out pointers.
        let r = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        if r != 0 {
            return Err(self.err("rte_eth_dev_adjust_nb_rx_tx_desc", r));
        }
        let socket = self.socket() as u32;
        for q in 0..rx {
            // SAFETY: configured port with `rx` RX queues; NULL rxconf means the
            // driver's defaults; the pool is a live pktmbuf pool that outlives the
            // port.
            let r = unsafe {
                sys::rte_eth_rx_queue_setup(self.id, q, nb_rx, socket, ptr::null(), pool.0.as_ptr())
            };
            if r != 0 {
                return Err(self.err("rte_eth_rx_queue_setup", r));
            }
        }
        for q in 0..tx {
            // SAFETY: configured port with `tx` TX queues; NULL txconf means the
            // driver's defaults (the port-level offloads above apply).
            let r = unsafe { sys::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, ptr::null()) };
            if r != 0 {
                return Err(self.err("rte_eth_tx_queue_setup", r));
            }
        }
        let deadline = Instant::now() + start_timeout;
        loop {
            // SAFETY: every queue is set up.
            let r = unsafe { sys::rte_eth_dev_start(self.id) };
            if r == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    port: self.id,
                    waited: start_timeout,
                    reason: strerror(r),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.started.store(true, Ordering::Relaxed);
        let csum = if tx_offload {
            TxChecksums::Offload
        } else {
            TxChecksums::Software
        };
        Ok((csum, rx_offload))
    }

    fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port; `link` is a valid out pointer; _nowait never blocks.
        let r = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        r == 0 && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP
    }

    fn stats(&self) -> Option<sys::rte_eth_stats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port; `s` is a valid out pointer.
        (unsafe { sys::rte_eth_stats_get(self.id, &mut s) } == 0).then_some(s)
    }
}

impl Drop for PortHandle {
    fn drop(&mut self) {
        if self.started.load(Ordering::Relaxed) {
            // SAFETY: the last holder of the port is going away: no queue of it is
            // polled after this (every RX/TX handle holds this Arc).
            unsafe {
                sys::rte_eth_dev_stop(self.id);
                sys::rte_eth_dev_close(self.id);
            }
        }
        CLAIMED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&p| p != self.id);
    }
}

// ---------------------------------------------------------------------------------
// TX lanes

/// One TX queue, its counters, and the replies waiting to leave together.
#[derive(Debug)]
struct Lane {
    port: Arc<PortHandle>,
    queue: u16,
    sent: u64,
    dropped: u64,
    /// Mbufs owned by this lane, queued by [`Lane::push`] for the next
    /// [`Lane::flush`]: `pending[..len]`.
    pending: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: the pending mbufs are owned by the lane alone (handed over by `push`,
// never shared), and an mbuf may be transmitted or freed from any thread; the
// rest is plain data and an Arc of a Sync port handle.
unsafe impl Send for Lane {}

impl Lane {
    fn new(port: Arc<PortHandle>, queue: u16) -> Lane {
        Lane {
            port,
            queue,
            sent: 0,
            dropped: 0,
            pending: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }

    /// Queues `m` to leave with the next [`Lane::flush`]; a full burst leaves now.
    #[inline]
    fn push(&mut self, m: Mbuf) {
        self.pending[self.len] = m.into_raw();
        self.len += 1;
        if self.len == MAX_BURST {
            self.flush();
        }
    }

    /// Transmits the queued mbufs in one `tx_burst` (more if the queue takes them in
    /// parts), retrying up to [`TX_RETRIES`] times while the queue takes none; frees
    /// and counts what is left.
    fn flush(&mut self) {
        let (mut done, mut stalls) = (0, 0);
        while done < self.len && stalls < TX_RETRIES {
            // SAFETY: `pending[done..len]` are valid mbufs this lane owns; the queue
            // is set up and only this lane (reached through `&mut`) transmits on it.
            // The PMD takes ownership of the first `n` it returns.
            let n = unsafe {
                sys::psp_eth_tx_burst(
                    self.port.id,
                    self.queue,
                    self.pending.as_mut_ptr().add(done),
                    (self.len - done) as u16,
                )
            };
            if n == 0 {
                stalls += 1;
                std::hint::spin_loop();
            }
            done += usize::from(n);
            self.sent += u64::from(n);
        }
        for &raw in &self.pending[done..self.len] {
            // SAFETY: the PMD did not take it: still ours, freed once.
            drop(unsafe { Mbuf::from_raw(raw) });
            self.dropped += 1;
        }
        self.len = 0;
    }

    /// Transmits `m`, retrying a short burst up to [`TX_RETRIES`] times; frees and
    /// counts it if the queue stays full. Returns whether it left.
    #[inline]
    fn tx(&mut self, m: Mbuf) -> bool {
        if self.len > 0 {
            self.flush(); // keep the queue's order
        }
        let mut raw = m.into_raw();
        for _ in 0..TX_RETRIES {
            // SAFETY: `raw` is a valid mbuf we own; the queue is set up and only
            // this lane (reached through `&mut`) transmits on it. When the PMD
            // accepts it (returns 1), it owns the mbuf.
            if unsafe { sys::psp_eth_tx_burst(self.port.id, self.queue, &mut raw, 1) } == 1 {
                self.sent += 1;
                return true;
            }
            std::hint::spin_loop();
        }
        // SAFETY: the PMD did not take it: still ours, freed once.
        drop(unsafe { Mbuf::from_raw(raw) });
        self.dropped += 1;
        false
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Replies queued and never flushed still leave (the port outlives the lane:
        // it holds an Arc of it).
        self.flush();
    }
}

/// The dispatcher's TX queue is used by two handles on the dispatcher thread (the
/// receive path, for ARP replies, and the dispatcher's own `DpdkTx`): they share it
/// behind a mutex, uncontended in practice. Worker lanes are owned outright.
#[derive(Debug)]
// A worker's lane lives inline in its DpdkTx, which is built once and stays put:
// no box between the worker and its burst on the hot path.
#[allow(clippy::large_enum_variant)]
enum LaneRef {
    Own(Lane),
    Shared(Arc<Mutex<Lane>>),
}

impl LaneRef {
    #[inline]
    fn with<R>(&mut self, f: impl FnOnce(&mut Lane) -> R) -> R {
        match self {
            LaneRef::Own(l) => f(l),
            LaneRef::Shared(l) => f(&mut l.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

// ---------------------------------------------------------------------------------
// Packets

/// A received request: an mbuf holding a UDP datagram for us. Freed on drop.
///
/// [`Packet::msg`] is the UDP payload; [`Packet::buf_mut`] runs from the payload
/// start to the end of the mbuf's buffer (capped by the port's MTU), so a reply may
/// be longer than its request.
#[derive(Debug)]
pub struct DpdkPkt {
    mbuf: Mbuf,
    /// The UDP payload: `HEADERS_LEN` bytes into the mbuf's data.
    payload: NonNull<u8>,
    len: u16,
    cap: u16,
}

// SAFETY: a DpdkPkt is the only handle to its mbuf and the mbuf's data buffer:
// rx_burst hands each mbuf it returns to the caller (the PMD keeps no pointer to
// it), `DpdkRx` accepts only mbufs with refcnt 1 that are direct and not
// external (`Mbuf::is_simple`: no other mbuf shares the bytes), and DpdkPkt is
// neither Clone nor Copy. `payload` points into that same buffer. Moving the
// handle to another thread therefore moves sole ownership of the memory; the only
// state it shares with other threads is its mempool, whose put (on drop) is
// thread-safe (mp/mc ring, or the dropping thread's own lcore cache).
unsafe impl Send for DpdkPkt {}

impl DpdkPkt {
    /// The Ethernet frame as it stands: headers and the current message.
    pub fn frame(&self) -> &[u8] {
        // SAFETY: `payload` is HEADERS_LEN bytes into the data of the mbuf we own;
        // headers and `len` message bytes are initialised buffer memory; borrowing
        // `self` keeps the mbuf alive and unchanged.
        unsafe {
            std::slice::from_raw_parts(
                self.payload.as_ptr().sub(HEADERS_LEN),
                HEADERS_LEN + usize::from(self.len),
            )
        }
    }

    /// Where the request came from (and the reply goes).
    pub fn peer(&self) -> SocketAddrV4 {
        let f = self.frame();
        SocketAddrV4::new(
            Ipv4Addr::new(f[26], f[27], f[28], f[29]),
            u16::from_be_bytes([f[34], f[35]]),
        )
    }
}

impl Packet for DpdkPkt {
    #[inline]
    fn msg(&self) -> &[u8] {
        // SAFETY: `len <= cap` bytes from `payload` lie in the mbuf we own (see
        // `DpdkRx::accept`); borrowing `self` keeps them alive and unaliased.
        unsafe { std::slice::from_raw_parts(self.payload.as_ptr(), usize::from(self.len)) }
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        // SAFETY: `cap` bytes from `payload` lie in the buffer of the mbuf we own
        // exclusively (direct, refcnt 1); `&mut self` rules out other borrows.
        unsafe { std::slice::from_raw_parts_mut(self.payload.as_ptr(), usize::from(self.cap)) }
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        debug_assert!(len <= usize::from(self.cap));
        self.len = len.min(usize::from(self.cap)) as u16;
    }
}

// ---------------------------------------------------------------------------------
// The transport

/// Settings of a [`Dpdk`] transport.
#[derive(Debug, Clone)]
pub struct DpdkConfig {
    /// Port id (`net.port`).
    pub port: u16,
    /// Our IPv4 address (`net.ip`): answered in ARP, required on receive.
    pub ip: Ipv4Addr,
    /// The UDP port we serve (`net.udp_port`).
    pub udp_port: u16,
    /// Largest request message accepted (`net.max_msg`); longer ones are counted
    /// as `oversized` and dropped.
    pub max_msg: usize,
    /// mbufs in the pool: requests queued and in flight, plus RX and TX rings.
    pub mbufs: u32,
    /// How long `rte_eth_dev_start` is retried.
    pub start_timeout: Duration,
}

impl DpdkConfig {
    /// mbufs for `packets` requests held at once (queued or in flight), plus what
    /// the RX ring and `tx_queues` TX rings may hold, plus per-lcore caches.
    pub fn mbufs_for(packets: usize, tx_queues: usize) -> u32 {
        let rings = usize::from(RING_DESC) * (1 + tx_queues);
        let caches = POOL_CACHE as usize * (tx_queues + 2);
        (packets + rings + caches + MAX_BURST).min(Self::MAX_MBUFS as usize) as u32
    }

    /// The most mbufs [`DpdkConfig::mbufs_for`] asks for.
    pub const MAX_MBUFS: u32 = 1 << 20;
}

/// A DPDK port before it is split between dispatcher and workers.
#[derive(Debug)]
pub struct Dpdk {
    port: PortHandle,
    pool: Pool,
    local: Local,
    max_msg: usize,
    max_payload: usize,
    start_timeout: Duration,
    /// Replies carry a UDP checksum (else 0: [`Transport::omit_udp_checksums`]).
    udp_checksums: bool,
}

impl Dpdk {
    /// Claims port `cfg.port` and creates its mempool. EAL must be initialised
    /// ([`init_eal`]). The port is configured and started by [`Transport::split`].
    pub fn new(cfg: &DpdkConfig) -> Result<Dpdk, Error> {
        let port = PortHandle::claim(cfg.port)?;
        let local = Local {
            mac: port.mac()?,
            ip: cfg.ip,
            udp_port: cfg.udp_port,
        };
        let pool = Pool::create(cfg.mbufs, port.socket())?;
        let max_payload = port.max_payload();
        Ok(Dpdk {
            port,
            pool,
            local,
            max_msg: cfg.max_msg,
            max_payload,
            start_timeout: cfg.start_timeout,
            udp_checksums: true,
        })
    }

    /// Our MAC (the port's), IP and UDP port.
    pub fn local(&self) -> Local {
        self.local
    }
}

impl Transport for Dpdk {
    type Pkt = DpdkPkt;
    type Rx = DpdkRx;
    type Tx = DpdkTx;

    fn omit_udp_checksums(&mut self) -> io::Result<()> {
        self.udp_checksums = false;
        Ok(())
    }

    fn split(self, n_workers: usize) -> io::Result<Split<DpdkRx, DpdkTx>> {
        let tx_queues = u16::try_from(n_workers + 1).map_err(|_| Error::TooManyQueues {
            port: self.port.id,
            what: "TX",
            want: n_workers + 1,
            max: u16::MAX,
        })?;
        let (csum, rx_offload) =
            self.port
                .configure_and_start(1, tx_queues, self.pool, self.start_timeout)?;
        let csum = if self.udp_checksums {
            csum
        } else {
            TxChecksums::IpOnly
        };
        tracing::info!(
            port = self.port.id,
            mac = %fmt_mac(&self.local.mac),
            ip = %self.local.ip,
            udp_port = self.local.udp_port,
            tx_queues,
            checksums = ?csum,
            "DPDK port started: RX queue 0 for the dispatcher, TX queue i for worker i, \
             TX queue {n_workers} for the dispatcher (a memif client needs {tx_queues} RX queues)"
        );
        let port = Arc::new(self.port);
        let lane = |queue| Lane::new(port.clone(), queue);
        let tx = |lane| DpdkTx {
            lane,
            local: self.local,
            csum,
            pool: self.pool,
        };
        let workers = (0..n_workers as u16)
            .map(|q| tx(LaneRef::Own(lane(q))))
            .collect();
        let shared = Arc::new(Mutex::new(lane(n_workers as u16)));
        let rx = DpdkRx {
            port: port.clone(),
            pool: self.pool,
            local: self.local,
            trust_offload: rx_offload,
            arp_lane: LaneRef::Shared(shared.clone()),
            max_msg: self.max_msg,
            max_payload: self.max_payload,
            burst: [ptr::null_mut(); MAX_BURST],
            counters: RxCounters::default(),
            logged: Cell::new(0),
        };
        Ok(Split {
            rx,
            tx: tx(LaneRef::Shared(shared)),
            workers,
        })
    }
}

/// Receive-side counters beyond [`RxDrops`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Frames dropped by [`frame::parse`], by reason.
    pub frames: frame::Drops,
    /// Chained, indirect or shared mbufs (never produced by our PMDs for frames
    /// this small; dropped rather than copied).
    pub unsupported_mbuf: u64,
    /// UDP payloads longer than `net.max_msg`.
    pub oversized: u64,
    /// ARP requests for our IP that were answered.
    pub arp_answered: u64,
    /// ARP replies received (the server never asks), and ARP requests too short to
    /// answer: ignored.
    pub arp_ignored: u64,
}

impl RxCounters {
    fn total(&self) -> u64 {
        self.frames.total() + self.unsupported_mbuf + self.oversized + self.arp_ignored
    }
}

/// The dispatcher's receive side: RX queue 0.
#[derive(Debug)]
pub struct DpdkRx {
    port: Arc<PortHandle>,
    pool: Pool,
    local: Local,
    /// The port checks RX checksums: trust its GOOD flags.
    trust_offload: bool,
    arp_lane: LaneRef,
    max_msg: usize,
    max_payload: usize,
    burst: [*mut sys::rte_mbuf; MAX_BURST],
    counters: RxCounters,
    /// Non-request frames already logged (the log says when this grows).
    logged: Cell<u64>,
}

// SAFETY: DpdkRx is the only handle that polls RX queue 0 of its port (made once
// by `split`), and it needs `&mut self` to do so; `burst` only holds pointers
// between an rx_burst and the loop that takes ownership of them, within one call;
// the ARP lane is a mutex-guarded TX queue; the pool is thread-safe.
unsafe impl Send for DpdkRx {}

impl DpdkRx {
    /// Counters of frames that did not become requests.
    pub fn counters(&self) -> RxCounters {
        self.counters
    }

    /// mbufs of the pool currently allocated (held by packets, rings and caches).
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Our MAC, IP and UDP port.
    pub fn local(&self) -> Local {
        self.local
    }

    #[inline]
    fn accept(&mut self, mut m: Mbuf, out: &mut Vec<DpdkPkt>) -> bool {
        if !m.is_simple() {
            self.counters.unsupported_mbuf += 1;
            return false;
        }
        let ol = m.ol_flags();
        let ip_flags = ol & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        let l4_flags = ol & u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK);
        if self.trust_offload && ip_flags == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) {
            self.counters.frames.count(frame::Drop::BadIpChecksum);
            return false;
        }
        if self.trust_offload && l4_flags == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD) {
            self.counters.frames.count(frame::Drop::BadUdpChecksum);
            return false;
        }
        let checks = RxChecks {
            ip: !(self.trust_offload && ip_flags == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD)),
            udp: !(self.trust_offload && l4_flags == u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD)),
        };
        match frame::parse(m.data(), &self.local, checks) {
            Ok(Frame::Udp { payload_len, .. }) => {
                if payload_len > self.max_msg {
                    self.counters.oversized += 1;
                    return false;
                }
                let (start, room) = m.data_room();
                let cap = room
                    .saturating_sub(HEADERS_LEN)
                    .min(self.max_payload)
                    .max(payload_len)
                    .min(usize::from(u16::MAX));
                // SAFETY: parse checked that the frame holds HEADERS_LEN + payload_len
                // bytes, all inside the data room, so the offset is in bounds.
                let payload = unsafe { NonNull::new_unchecked(start.as_ptr().add(HEADERS_LEN)) };
                out.push(DpdkPkt {
                    mbuf: m,
                    payload,
                    len: payload_len as u16,
                    cap: cap as u16,
                });
                true
            }
            Ok(Frame::ArpRequest { .. }) => {
                // A failed send is counted by the lane; a request too short to answer
                // is ignored, as replies are.
                if !m.arp_reply(&self.local) {
                    self.counters.arp_ignored += 1;
                } else if self.arp_lane.with(|l| l.tx(m)) {
                    self.counters.arp_answered += 1;
                }
                false
            }
            Ok(Frame::ArpReply { .. }) => {
                self.counters.arp_ignored += 1;
                false
            }
            Err(d) => {
                self.counters.frames.count(d);
                false
            }
        }
    }
}

impl RxQueue for DpdkRx {
    type Pkt = DpdkPkt;

    fn rx_burst(&mut self, out: &mut Vec<DpdkPkt>, max: usize) -> io::Result<usize> {
        register_thread();
        let n = max.min(MAX_BURST) as u16;
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: `burst` has room for MAX_BURST >= n pointers; queue 0 is set up
        // and only this handle polls it. The PMD fills the first `got` entries
        // with mbufs that now belong to us.
        let got = unsafe { sys::psp_eth_rx_burst(self.port.id, 0, self.burst.as_mut_ptr(), n) };
        let mut delivered = 0;
        for i in 0..usize::from(got) {
            // SAFETY: entry i was just filled by rx_burst: an mbuf we own, whose
            // pointer is not used again (the array is overwritten by the next burst).
            if let Some(m) = unsafe { Mbuf::from_raw(self.burst[i]) } {
                delivered += usize::from(self.accept(m, out));
            }
        }
        Ok(delivered)
    }

    #[inline]
    fn recycle(&mut self, pkt: DpdkPkt) {
        drop(pkt);
    }

    /// DPDK queues have no file descriptor to sleep on: sleep on the doorbell (a
    /// worker's completion) for at most `timeout`. A packet arriving meanwhile
    /// waits for the next poll, so `idle: park` adds up to `max_park_us`.
    fn wait(&mut self, timeout: Duration, also: Option<RawFd>) {
        let Some(fd) = also else {
            std::thread::sleep(timeout);
            return;
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one initialised pollfd and a valid timespec, alive for the call; a
        // null sigmask leaves the signal mask unchanged.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, ptr::null()) };
    }

    fn drops(&self) -> RxDrops {
        let total = self.counters.total();
        if total != self.logged.get() {
            self.logged.set(total);
            tracing::info!(
                "dpdk rx: dropped frames: {} unsupported_mbuf={} oversized={} | arp answered={} ignored={}",
                self.counters.frames,
                self.counters.unsupported_mbuf,
                self.counters.oversized,
                self.counters.arp_answered,
                self.counters.arp_ignored
            );
        }
        let stats = self.port.stats().unwrap_or_default();
        RxDrops {
            no_buffer: stats.rx_nombuf,
            overflow: stats.imissed,
            oversized: self.counters.oversized,
            bad_frame: self.counters.frames.total()
                + self.counters.unsupported_mbuf
                + self.counters.arp_ignored,
            bad_psp_mb: 0,
        }
    }
}

impl Drop for DpdkRx {
    fn drop(&mut self) {
        let c = &self.counters;
        if c.total() + c.arp_answered > 0 {
            tracing::info!(
                "dpdk rx final: dropped frames: {} unsupported_mbuf={} oversized={} | arp answered={} ignored={}",
                c.frames,
                c.unsupported_mbuf,
                c.oversized,
                c.arp_answered,
                c.arp_ignored
            );
        }
    }
}

/// A transmit side: one TX queue (a worker's own, or the dispatcher's).
#[derive(Debug)]
pub struct DpdkTx {
    lane: LaneRef,
    local: Local,
    csum: TxChecksums,
    pool: Pool,
}

// SAFETY: an owned lane's TX queue is reached only through this handle's `&mut
// self`; a shared lane is behind a mutex; the port handle is an Arc of plain data;
// the pool is thread-safe.
unsafe impl Send for DpdkTx {}

impl DpdkTx {
    /// Frames sent so far on this handle's queue (for the dispatcher's queue, also
    /// the ARP replies sent by the receive side).
    pub fn sent(&mut self) -> u64 {
        self.lane.with(|l| l.sent)
    }

    /// The TX queue id.
    pub fn queue(&mut self) -> u16 {
        self.lane.with(|l| l.queue)
    }

    /// Sends a raw Ethernet frame (copied into a fresh mbuf). Returns whether it
    /// left; a frame that does not fit an mbuf, an empty pool or a full queue is
    /// counted in [`TxQueue::errors`].
    pub fn send_frame(&mut self, bytes: &[u8]) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            self.lane.with(|l| l.dropped += 1);
            return false;
        };
        let room = m.room_mut();
        let Some(dst) = room.get_mut(..bytes.len()) else {
            self.lane.with(|l| l.dropped += 1);
            return false;
        };
        dst.copy_from_slice(bytes);
        m.set_len(bytes.len(), TxChecksums::Software);
        self.lane.with(|l| l.tx(m))
    }
}

impl TxQueue for DpdkTx {
    type Pkt = DpdkPkt;

    fn thread_init(&mut self) {
        register_thread();
    }

    /// Rewrites the request's frame into the reply (addresses swapped, lengths and
    /// checksums set) and transmits it. The mbuf goes to the PMD: returns `None`.
    #[inline]
    fn send(&mut self, pkt: DpdkPkt) -> Option<DpdkPkt> {
        let DpdkPkt { mut mbuf, len, .. } = pkt;
        let (local, csum) = (self.local, self.csum);
        match frame::udp_reply_in_place(mbuf.room_mut(), &local, usize::from(len), csum) {
            Some(n) => {
                mbuf.set_len(n, csum);
                match &mut self.lane {
                    // A worker's replies leave in bursts: when the worker's ring runs
                    // dry (`flush`) or MAX_BURST are queued.
                    LaneRef::Own(l) => l.push(mbuf),
                    // The dispatcher's queue is shared with ARP replies and has no
                    // flush point: at once.
                    LaneRef::Shared(_) => {
                        self.lane.with(|l| l.tx(mbuf));
                    }
                }
            }
            // Unreachable: the packet's capacity was checked against the buffer.
            None => self.lane.with(|l| l.dropped += 1),
        }
        None
    }

    fn flush(&mut self) {
        if let LaneRef::Own(l) = &mut self.lane {
            l.flush();
        }
    }

    fn errors(&self) -> u64 {
        match &self.lane {
            LaneRef::Own(l) => l.dropped,
            LaneRef::Shared(l) => l.lock().unwrap_or_else(PoisonError::into_inner).dropped,
        }
    }
}

fn fmt_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// DPDK's own IPv4 header and UDP checksums of `frame` (an Ethernet/IPv4/UDP
/// frame without IP options), as the two bytes each would occupy in the header;
/// the frame's own checksum fields are ignored. For cross-checking
/// [`frame`] against DPDK's `rte_ipv4_cksum` and `rte_ipv4_udptcp_cksum`; no EAL
/// needed. `None` if the frame is not such a frame.
pub fn dpdk_checksums(frame: &[u8]) -> Option<([u8; 2], [u8; 2])> {
    let total = usize::from(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]));
    if frame.get(14) != Some(&0x45)
        || total < frame::IPV4_LEN + frame::UDP_LEN
        || frame.len() < frame::ETH_LEN + total
    {
        return None;
    }
    let mut f = frame[..frame::ETH_LEN + total].to_vec();
    f[24..26].fill(0);
    f[40..42].fill(0);
    let ip = f[14..].as_ptr().cast::<sys::rte_ipv4_hdr>();
    // SAFETY: `ip` points at a 20-byte IPv4 header (rte_ipv4_hdr is packed,
    // alignment 1) inside `f`, and its total length says the UDP header and
    // payload follow within `f`, which both functions read and nothing writes.
    let (ipc, udpc) = unsafe {
        (
            sys::psp_ipv4_cksum(ip),
            sys::psp_ipv4_udptcp_cksum(ip, f[34..].as_ptr().cast()),
        )
    };
    // DPDK returns the checksum as stored in memory (network order) on this host.
    Some((ipc.to_ne_bytes(), udpc.to_ne_bytes()))
}

// ---------------------------------------------------------------------------------
// Client

/// Settings of a [`DpdkClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Port id.
    pub port: u16,
    /// Our IPv4 address.
    pub ip: Ipv4Addr,
    /// Our UDP source port (replies come back to it).
    pub udp_port: u16,
    /// The server's IPv4 address and UDP port.
    pub server: SocketAddrV4,
    /// The server's MAC; `None` resolves it by ARP.
    pub server_mac: Option<Mac>,
    /// RX queues to open and poll. Over memif this must equal the server's TX
    /// queues, `workers.number + 1`: memif pairs server TX queue `k` with client RX
    /// queue `k`, and the client's count decides which rings exist.
    pub rx_queues: u16,
    /// mbufs in the client's pool.
    pub mbufs: u32,
    /// How long to retry `rte_eth_dev_start` and wait for the link (each).
    pub start_timeout: Duration,
    /// How long to keep asking for the server's MAC.
    pub arp_timeout: Duration,
}

impl ClientConfig {
    /// A config for `server` with the defaults: 1 RX queue, ARP resolution,
    /// 8191 mbufs, 10 s start and link timeouts, 5 s of ARP.
    pub fn new(port: u16, ip: Ipv4Addr, udp_port: u16, server: SocketAddrV4) -> ClientConfig {
        ClientConfig {
            port,
            ip,
            udp_port,
            server,
            server_mac: None,
            rx_queues: 1,
            mbufs: 8191,
            start_timeout: Duration::from_secs(10),
            arp_timeout: Duration::from_secs(5),
        }
    }
}

/// The `dpdk:` section of a client's YAML config (configs/dpdk-memif-client.yml):
/// what [`ClientConfig`] needs besides the server's address.
///
/// ```yaml
/// dpdk:
///   eal_args: [--no-huge, --no-pci, --file-prefix, psp-client, "--vdev=net_memif0,role=client,..."]
///   port: 0                          # default 0
///   ip: 10.0.0.2                     # ours
///   udp_port: 4000                   # ours; default 4000
///   rx_queues: 3                     # memif: the server's workers.number + 1; default 1
///   server_mac: 02:00:00:00:00:01    # default: resolved by ARP
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// EAL options ([`init_eal`]).
    pub eal_args: Vec<String>,
    #[serde(default)]
    pub port: u16,
    pub ip: Ipv4Addr,
    #[serde(default = "default_client_udp_port")]
    pub udp_port: u16,
    #[serde(default = "default_rx_queues")]
    pub rx_queues: u16,
    #[serde(default)]
    pub server_mac: Option<String>,
}

fn default_client_udp_port() -> u16 {
    4000
}

fn default_rx_queues() -> u16 {
    1
}

impl ClientSection {
    /// The client settings for `server`, or an error naming the bad key.
    pub fn client_config(&self, server: SocketAddrV4) -> Result<ClientConfig, String> {
        let mut cfg = ClientConfig::new(self.port, self.ip, self.udp_port, server);
        if self.rx_queues == 0 {
            return Err("dpdk.rx_queues: must be at least 1".into());
        }
        cfg.rx_queues = self.rx_queues;
        if let Some(mac) = &self.server_mac {
            cfg.server_mac = Some(parse_mac(mac).ok_or_else(|| {
                format!("dpdk.server_mac: {mac:?} is not a MAC (aa:bb:cc:dd:ee:ff)")
            })?);
        }
        Ok(cfg)
    }
}

/// Client-side counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Request frames handed to the NIC.
    pub sent: u64,
    /// Requests not sent (empty pool or TX queue full after retries).
    pub tx_dropped: u64,
    /// Reply payloads delivered.
    pub received: u64,
    /// Frames dropped by [`frame::parse`], by reason.
    pub frames: frame::Drops,
    /// UDP datagrams for us from someone other than the server.
    pub foreign: u64,
    /// ARP requests for our IP, answered (a peer that replies by IP, such as a
    /// kernel, asks).
    pub arp_answered: u64,
    /// ARP replies after resolution, and ARP requests too short to answer: ignored.
    pub ignored: u64,
    /// Frames in chained mbufs (larger than one mbuf's room): not read. A reply among
    /// them is lost to the client, so psp-client counts these as malformed.
    pub chained: u64,
}

/// A DPDK client of a persephone server: sends request payloads as UDP frames to
/// the server and hands back reply payloads. Single-threaded (one TX queue, and
/// [`ClientConfig::rx_queues`] RX queues polled in turn).
///
/// ```no_run
/// use persephone::net::dpdk::{self, ClientConfig, DpdkClient};
/// # fn main() -> Result<(), dpdk::Error> {
/// dpdk::init_eal(&["--no-huge".into(), "--no-pci".into(), "--vdev=net_memif0,role=client".into()])?;
/// let server = "10.0.0.1:6789".parse().unwrap();
/// let mut cfg = ClientConfig::new(0, "10.0.0.2".parse().unwrap(), 4000, server);
/// cfg.rx_queues = 3; // the server runs 2 workers
/// let mut client = DpdkClient::connect(&cfg)?;
/// client.send(b"request bytes");
/// client.recv(|reply| println!("{} bytes back", reply.len()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DpdkClient {
    port: Arc<PortHandle>,
    pool: Pool,
    local: Local,
    server: SocketAddrV4,
    server_mac: Mac,
    rx_queues: u16,
    next_rx: u16,
    csum: TxChecksums,
    lane: Lane,
    burst: [*mut sys::rte_mbuf; MAX_BURST],
    counters: ClientCounters,
}

// SAFETY: the client owns its port's queues outright (it claimed the port) and
// reaches them only through `&mut self`; `burst` holds pointers only within a
// call; the pool is thread-safe.
unsafe impl Send for DpdkClient {}

impl DpdkClient {
    /// Claims and starts the port (retrying start, then waiting for the link, each
    /// up to `start_timeout`), then resolves the server's MAC by ARP unless given.
    /// EAL must be initialised ([`init_eal`]).
    pub fn connect(cfg: &ClientConfig) -> Result<DpdkClient, Error> {
        let port = PortHandle::claim(cfg.port)?;
        let local = Local {
            mac: port.mac()?,
            ip: cfg.ip,
            udp_port: cfg.udp_port,
        };
        let pool = Pool::create(cfg.mbufs, port.socket())?;
        let rx_queues = cfg.rx_queues.max(1);
        let (csum, _) = port.configure_and_start(rx_queues, 1, pool, cfg.start_timeout)?;
        let deadline = Instant::now() + cfg.start_timeout;
        while !port.link_up() {
            if Instant::now() >= deadline {
                return Err(Error::LinkDown {
                    port: port.id,
                    waited: cfg.start_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let port = Arc::new(port);
        let mut client = DpdkClient {
            lane: Lane::new(port.clone(), 0),
            port,
            pool,
            local,
            server: cfg.server,
            server_mac: cfg.server_mac.unwrap_or(frame::BROADCAST),
            rx_queues,
            next_rx: 0,
            csum,
            burst: [ptr::null_mut(); MAX_BURST],
            counters: ClientCounters::default(),
        };
        if cfg.server_mac.is_none() {
            client.server_mac = client.resolve(cfg.arp_timeout)?;
        }
        tracing::info!(
            server = %cfg.server,
            server_mac = %fmt_mac(&client.server_mac),
            mac = %fmt_mac(&local.mac),
            "DPDK client connected"
        );
        Ok(client)
    }

    /// Asks for the server's MAC every 100 ms until a reply comes or `timeout`.
    fn resolve(&mut self, timeout: Duration) -> Result<Mac, Error> {
        let ip = *self.server.ip();
        let deadline = Instant::now() + timeout;
        let mut next_ask = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::ArpTimeout {
                    ip,
                    waited: timeout,
                });
            }
            if now >= next_ask {
                let (mac, me) = (self.local.mac, self.local.ip);
                // Not a UDP frame: no checksum offload, which would have the NIC
                // write "checksums" over the ARP sender MAC and target IP.
                self.send_raw(TxChecksums::Software, |room| {
                    frame::write_arp_request(room, mac, me, ip)
                });
                next_ask = now + Duration::from_millis(100);
            }
            let mut found = None;
            self.poll(|_, f| {
                if let Frame::ArpReply {
                    sender_mac,
                    sender_ip,
                } = f
                {
                    if sender_ip == ip {
                        found = Some(sender_mac);
                    }
                }
            });
            if let Some(mac) = found {
                return Ok(mac);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Our MAC, IP and UDP port.
    pub fn local(&self) -> Local {
        self.local
    }

    /// The server's MAC (configured or learnt by ARP).
    pub fn server_mac(&self) -> Mac {
        self.server_mac
    }

    /// Counters so far.
    pub fn counters(&self) -> ClientCounters {
        self.counters
    }

    /// Sends `payload` to the server in one UDP frame. Returns whether it left.
    pub fn send(&mut self, payload: &[u8]) -> bool {
        self.send_with(|buf| {
            let dst = buf.get_mut(..payload.len())?;
            dst.copy_from_slice(payload);
            Some(payload.len())
        })
    }

    /// Sends one request written in place: `fill` gets the payload area of a fresh
    /// mbuf and returns the payload length (or `None` to send nothing). Saves the
    /// copy of [`DpdkClient::send`]. Returns whether a frame left.
    pub fn send_with(&mut self, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let src = (
            self.local.mac,
            SocketAddrV4::new(self.local.ip, self.local.udp_port),
        );
        let dst = (self.server_mac, self.server);
        let csum = self.csum;
        let ok = self.send_raw(csum, |room| {
            let max = room.len().min(frame::HEADERS_LEN + frame::MAX_PAYLOAD_1500);
            let len = fill(room.get_mut(frame::HEADERS_LEN..max)?)?;
            frame::write_udp_headers(room, src, dst, len, csum)
        });
        if ok {
            self.counters.sent += 1;
        } else {
            self.counters.tx_dropped += 1;
        }
        ok
    }

    /// Allocates an mbuf, lets `write` fill its data room and return the frame
    /// length, and transmits it, its checksums done as `csum` says (`Offload` only
    /// for an IPv4/UDP frame).
    fn send_raw(
        &mut self,
        csum: TxChecksums,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            return false;
        };
        let Some(len) = write(m.room_mut()) else {
            return false;
        };
        m.set_len(len, csum);
        self.lane.tx(m)
    }

    /// Polls every RX queue once and calls `on_reply` with each reply payload from
    /// the server. Returns how many there were.
    pub fn recv(&mut self, mut on_reply: impl FnMut(&[u8])) -> usize {
        let server = self.server;
        let mut n = 0;
        let mut foreign = 0;
        let mut ignored = 0;
        self.poll(|payload, f| match f {
            Frame::Udp { src, .. } if src == server => {
                on_reply(payload);
                n += 1;
            }
            Frame::Udp { .. } => foreign += 1,
            _ => ignored += 1,
        });
        self.counters.received += n as u64;
        self.counters.foreign += foreign;
        self.counters.ignored += ignored;
        n
    }

    /// One burst from each RX queue; `each` sees every valid frame (with its UDP
    /// payload, empty for ARP).
    fn poll(&mut self, mut each: impl FnMut(&[u8], Frame)) {
        for _ in 0..self.rx_queues {
            let q = self.next_rx;
            self.next_rx = (q + 1) % self.rx_queues;
            // SAFETY: `burst` has room for MAX_BURST pointers; queue q < rx_queues
            // is set up and polled only by this client. The PMD fills the first
            // `got` entries with mbufs that now belong to us.
            let got = unsafe {
                sys::psp_eth_rx_burst(self.port.id, q, self.burst.as_mut_ptr(), MAX_BURST as u16)
            };
            for i in 0..usize::from(got) {
                // SAFETY: entry i was just filled by rx_burst: an mbuf we own.
                let Some(mut m) = (unsafe { Mbuf::from_raw(self.burst[i]) }) else {
                    continue;
                };
                if !m.is_simple() {
                    self.counters.chained += 1;
                    continue;
                }
                let data = m.data();
                match frame::parse(data, &self.local, RxChecks::ALL) {
                    Ok(f @ Frame::Udp { payload_len, .. }) => {
                        each(&data[HEADERS_LEN..HEADERS_LEN + payload_len], f)
                    }
                    Ok(Frame::ArpRequest { .. }) => {
                        // A failed send is counted by the lane.
                        if !m.arp_reply(&self.local) {
                            self.counters.ignored += 1;
                        } else if self.lane.tx(m) {
                            self.counters.arp_answered += 1;
                        }
                    }
                    Ok(f) => each(&[], f),
                    Err(d) => self.counters.frames.count(d),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_agree_with_dpdk() {
        let src = (
            [2, 0, 0, 0, 0, 2],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000),
        );
        let dst = (
            [2, 0, 0, 0, 0, 1],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6789),
        );
        for len in [0usize, 1, 2, 3, 28, 36, 99, 1472] {
            let mut f = vec![0u8; HEADERS_LEN + len];
            for (i, b) in f[HEADERS_LEN..].iter_mut().enumerate() {
                *b = (i * 7 + len) as u8;
            }
            let n = frame::write_udp_headers(&mut f, src, dst, len, TxChecksums::Software).unwrap();
            let (ip, udp) = dpdk_checksums(&f[..n]).unwrap();
            assert_eq!(ip, [f[24], f[25]], "IPv4 checksum, payload {len}");
            assert_eq!(udp, [f[40], f[41]], "UDP checksum, payload {len}");
        }
        assert_eq!(dpdk_checksums(&[0; 20]), None);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
        assert_eq!(fmt_mac(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
    }

    #[test]
    fn client_section_from_yaml() {
        let text = std::fs::read_to_string("configs/dpdk-memif-client.yml").unwrap();
        #[derive(serde::Deserialize)]
        struct File {
            server: String,
            dpdk: ClientSection,
        }
        let f: File = serde_yaml::from_str(&text).unwrap();
        let server: SocketAddrV4 = f.server.parse().unwrap();
        let cfg = f.dpdk.client_config(server).unwrap();
        assert_eq!(
            (cfg.ip, cfg.udp_port, cfg.rx_queues),
            (Ipv4Addr::new(10, 0, 0, 2), 4000, 3)
        );
        assert_eq!(cfg.server_mac, None, "ARP by default");
        let bad = ClientSection {
            server_mac: Some("nope".into()),
            ..f.dpdk
        };
        assert!(bad
            .client_config(server)
            .unwrap_err()
            .contains("dpdk.server_mac"));
    }

    #[test]
    fn ports_need_eal() {
        // This unit-test process never initialises EAL.
        assert!(matches!(
            PortHandle::claim(0),
            Err(Error::EalNotInitialised)
        ));
        assert_eq!(current_lcore(), None);
    }
}

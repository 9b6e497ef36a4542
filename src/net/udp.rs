//! udp.rs - the kernel UDP transport: one socket, batched receive, per-worker send.
//!
//! The dispatcher receives in batches with `recvmmsg` into a pool of buffers allocated
//! once at start-up. A buffer travels by `Box` pointer to a worker, becomes the reply in
//! place, is sent with `sendto` on the worker's own duplicate of the socket, and comes
//! back to the pool with the worker's completion. No allocation per request.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::{Packet, RxDrops, RxQueue, Split, Transport, TxQueue};

/// Most datagrams taken by one `recvmmsg` call.
const MAX_BURST: usize = 64;

/// A request buffer: the datagram and where it came from.
#[derive(Debug)]
pub struct UdpPkt(Box<Buf>);

#[derive(Debug)]
struct Buf {
    data: Box<[u8]>,
    len: usize,
    peer: SocketAddr,
}

impl UdpPkt {
    fn new(capacity: usize) -> UdpPkt {
        UdpPkt(Box::new(Buf {
            data: vec![0; capacity].into_boxed_slice(),
            len: 0,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        }))
    }

    /// Where the request came from (and the reply goes).
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }
}

impl Packet for UdpPkt {
    #[inline]
    fn msg(&self) -> &[u8] {
        &self.0.data[..self.0.len]
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        // The last byte only tells an oversized datagram from one that fits: a reply
        // may use `net.max_msg` bytes, never a byte more than UDP allows.
        let cap = self.0.data.len() - 1;
        &mut self.0.data[..cap]
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.0.data.len());
        self.0.len = len.min(self.0.data.len());
    }

    #[inline]
    fn head(&self) -> (Option<&[u8; crate::proto::HEADER_LEN]>, usize) {
        (self.0.data.first_chunk(), self.0.len)
    }
}

/// A bound UDP socket, before it is split between dispatcher and workers.
#[derive(Debug)]
pub struct Udp {
    socket: UdpSocket,
    max_msg: usize,
    buffers: usize,
}

impl Udp {
    /// Binds `addr` with receive buffers of `max_msg` bytes, `buffers` of them, and a
    /// kernel receive buffer of `rcvbuf` bytes (0: the system default).
    pub fn bind(
        addr: SocketAddr,
        max_msg: usize,
        buffers: usize,
        rcvbuf: usize,
    ) -> io::Result<Udp> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        if rcvbuf > 0 {
            set_rcvbuf(&socket, rcvbuf)?;
        }
        Ok(Udp {
            socket,
            max_msg,
            buffers: buffers.max(MAX_BURST),
        })
    }

    /// The bound address (with the port the OS picked if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Transport for Udp {
    type Pkt = UdpPkt;
    type Rx = UdpRx;
    type Tx = UdpTx;

    /// `SO_NO_CHECK` on the socket (its duplicates, the workers', share it).
    fn omit_udp_checksums(&mut self) -> io::Result<()> {
        set_int_option(&self.socket, libc::SO_NO_CHECK, 1)
    }

    fn split(self, n_workers: usize) -> io::Result<Split<UdpRx, UdpTx>> {
        let mut txs = Vec::with_capacity(n_workers);
        for _ in 0..n_workers {
            txs.push(UdpTx::new(self.socket.try_clone()?));
        }
        let disp_tx = UdpTx::new(self.socket.try_clone()?);
        // One extra byte per buffer tells an oversized datagram from one that fits.
        let capacity = self.max_msg + 1;
        let rx = UdpRx {
            pool: (0..self.buffers).map(|_| UdpPkt::new(capacity)).collect(),
            staged: Vec::with_capacity(MAX_BURST),
            socket: self.socket,
            max_msg: self.max_msg,
            no_buffer: 0,
            stalled: false,
            oversized: 0,
            bad_source: 0,
        };
        Ok(Split {
            rx,
            tx: disp_tx,
            workers: txs,
        })
    }
}

/// The dispatcher's receive side: the socket and the buffer pool.
#[derive(Debug)]
pub struct UdpRx {
    socket: UdpSocket,
    pool: Vec<UdpPkt>,
    staged: Vec<UdpPkt>,
    max_msg: usize,
    no_buffer: u64,
    /// Whether the last receive found no free buffer.
    stalled: bool,
    oversized: u64,
    /// Datagrams from a source no reply can go to (port 0, or an address family we
    /// do not speak): counted as `bad_frame`, as DPDK counts its bad sources.
    bad_source: u64,
}

impl UdpRx {
    /// Free buffers in the pool.
    pub fn free_buffers(&self) -> usize {
        self.pool.len()
    }
}

impl RxQueue for UdpRx {
    type Pkt = UdpPkt;

    fn rx_burst(&mut self, out: &mut Vec<UdpPkt>, max: usize) -> io::Result<usize> {
        let n = max.min(MAX_BURST).min(self.pool.len());
        if n == 0 {
            // Count stalls, not the polls made during one.
            if max > 0 && !self.stalled {
                self.stalled = true;
                self.no_buffer += 1;
            }
            return Ok(0);
        }
        self.stalled = false;
        // SAFETY: all-zero bytes are a valid value of these plain C structs (null
        // pointers and zero lengths), which are filled in below before use.
        let mut hdrs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; MAX_BURST] = unsafe { std::mem::zeroed() };
        let mut addrs: [MaybeUninit<libc::sockaddr_storage>; MAX_BURST] =
            [MaybeUninit::uninit(); MAX_BURST];
        for i in 0..n {
            let mut b = self.pool.pop().expect("checked pool length");
            iovs[i] = libc::iovec {
                iov_base: b.0.data.as_mut_ptr().cast(),
                iov_len: b.0.data.len(),
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = addrs[i].as_mut_ptr().cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            self.staged.push(b);
        }
        // SAFETY: `hdrs[..n]` point at `n` live iovecs, each covering the whole data
        // of a buffer held in `self.staged` (heap memory that does not move while the
        // Box does), and at `n` sockaddr_storage slots; all outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            self.pool.append(&mut self.staged);
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        let mut delivered = 0;
        for (i, mut b) in self.staged.drain(..).enumerate() {
            if i >= got {
                self.pool.push(b);
                continue;
            }
            let h = &hdrs[i];
            let len = h.msg_len as usize;
            // SAFETY: the kernel wrote `msg_namelen` bytes of a valid address into the
            // slot (we only read it for the datagrams it returned).
            let peer = unsafe { sockaddr_to_std(addrs[i].as_ptr(), h.msg_hdr.msg_namelen) };
            match judge(
                peer,
                len,
                h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                self.max_msg,
            ) {
                Ok(peer) => {
                    b.0.len = len;
                    b.0.peer = peer;
                    out.push(b);
                    delivered += 1;
                }
                Err(Refused::BadSource) => {
                    self.bad_source += 1;
                    self.pool.push(b);
                }
                Err(Refused::Oversized) => {
                    self.oversized += 1;
                    self.pool.push(b);
                }
            }
        }
        Ok(delivered)
    }

    #[inline]
    fn recycle(&mut self, pkt: UdpPkt) {
        self.pool.push(pkt);
    }

    fn wait(&mut self, timeout: Duration, also: Option<RawFd>) {
        let mut fds = [
            libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: also.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        let nfds = if also.is_some() { 2 } else { 1 };
        // SAFETY: `fds` holds `nfds` initialised pollfds and `ts` a valid timespec, both
        // alive for the call; a null sigmask leaves the signal mask unchanged.
        unsafe {
            libc::ppoll(fds.as_mut_ptr(), nfds, &ts, std::ptr::null());
        }
    }

    fn drops(&self) -> RxDrops {
        RxDrops {
            no_buffer: self.no_buffer,
            overflow: socket_drops(&self.socket).unwrap_or(0),
            oversized: self.oversized,
            bad_frame: self.bad_source,
            ..RxDrops::default()
        }
    }
}

/// Why a received datagram is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// No reply can reach its source (port 0, or an address family we do not
    /// speak): serving it would only take a worker's time.
    BadSource,
    /// Longer than `max_msg` (or cut short by the kernel).
    Oversized,
}

/// Whether a datagram of `len` bytes from `peer` is delivered, and to whom replies go.
fn judge(
    peer: Option<SocketAddr>,
    len: usize,
    truncated: bool,
    max_msg: usize,
) -> Result<SocketAddr, Refused> {
    match peer {
        Some(p) if p.port() != 0 => {
            if len <= max_msg && !truncated {
                Ok(p)
            } else {
                Err(Refused::Oversized)
            }
        }
        _ => Err(Refused::BadSource),
    }
}

/// A transmit side: a duplicate of the server socket, so replies come from the port
/// the client sent to.
#[derive(Debug)]
pub struct UdpTx {
    socket: UdpSocket,
    errors: u64,
}

impl UdpTx {
    fn new(socket: UdpSocket) -> UdpTx {
        UdpTx { socket, errors: 0 }
    }
}

impl TxQueue for UdpTx {
    type Pkt = UdpPkt;

    #[inline]
    fn send(&mut self, pkt: UdpPkt) -> Option<UdpPkt> {
        if self.socket.send_to(pkt.msg(), pkt.0.peer).is_err() {
            self.errors += 1;
        }
        Some(pkt)
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}

/// Converts a kernel socket address to std's.
///
/// # Safety
/// `sa` must point at `len` initialised bytes of a socket address.
unsafe fn sockaddr_to_std(
    sa: *const libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    // SAFETY: the caller guarantees `sa` points at an initialised address; ss_family is
    // the first field of every sockaddr variant.
    let family = unsafe { (*sa).ss_family } as libc::c_int;
    match family {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in.
            let a = unsafe { &*(sa as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6.
            let a = unsafe { &*(sa as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sets the socket's receive buffer to `bytes`: past `net.core.rmem_max` where
/// permitted (SO_RCVBUFFORCE, CAP_NET_ADMIN), else capped at it by the kernel.
pub fn set_rcvbuf(socket: &UdpSocket, bytes: usize) -> io::Result<()> {
    set_buffer(socket, bytes, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)
}

/// Sets the socket's send buffer to `bytes`, as [`set_rcvbuf`] does the receive
/// buffer (SO_SNDBUFFORCE past `net.core.wmem_max`, else capped at it).
pub fn set_sndbuf(socket: &UdpSocket, bytes: usize) -> io::Result<()> {
    set_buffer(socket, bytes, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)
}

/// Sets a buffer size with the `forced` option, or else the `capped` one.
fn set_buffer(
    socket: &UdpSocket,
    bytes: usize,
    forced: libc::c_int,
    capped: libc::c_int,
) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    set_int_option(socket, forced, v).or_else(|_| set_int_option(socket, capped, v))
}

/// `setsockopt` of an `int` socket-level option.
fn set_int_option(socket: &UdpSocket, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd, and a pointer to a c_int with its exact size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt` of an `int` socket-level option.
#[cfg(test)]
fn int_option(socket: &UdpSocket, opt: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, and a c_int out pointer with its size in `len`.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// Datagrams the kernel dropped on this socket (receive buffer full), from
/// `SO_MEMINFO`'s `SK_MEMINFO_DROPS`; `None` if the kernel does not say. (psp-client
/// reports its own socket's drops with it.)
pub fn socket_drops(socket: &UdpSocket) -> Option<u64> {
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: a valid fd, and a buffer of `len` writable bytes with `len` updated.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (r == 0 && len as usize > SK_MEMINFO_DROPS * 4).then(|| info[SK_MEMINFO_DROPS] as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_the_buffers_first_bytes_and_the_messages_length() {
        crate::net::check_head(UdpPkt::new(64));
        // A buffer shorter than a header has none.
        let short = UdpPkt::new(crate::proto::HEADER_LEN - 1);
        assert_eq!(short.head(), (None, 0));
    }

    fn transport(max_msg: usize, buffers: usize) -> (UdpRx, UdpTx, Vec<UdpTx>, SocketAddr) {
        let t = Udp::bind("127.0.0.1:0".parse().unwrap(), max_msg, buffers, 0).unwrap();
        let addr = t.local_addr().unwrap();
        let s = t.split(2).unwrap();
        (s.rx, s.tx, s.workers, addr)
    }

    /// A datagram from port 0 (which the kernel delivers; only a raw socket sends
    /// one) can never be answered: it is refused as a bad source before a worker
    /// spends time on it, and so is a source address we cannot parse.
    #[test]
    fn a_source_no_reply_can_reach_is_refused() {
        let from = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(judge(from(5000), 10, false, 64), Ok(from(5000).unwrap()));
        assert_eq!(judge(from(0), 10, false, 64), Err(Refused::BadSource));
        assert_eq!(judge(None, 10, false, 64), Err(Refused::BadSource));
        let v6 = Some(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0)));
        assert_eq!(judge(v6, 10, false, 64), Err(Refused::BadSource));
        assert_eq!(judge(from(5000), 65, false, 64), Err(Refused::Oversized));
        assert_eq!(judge(from(5000), 64, true, 64), Err(Refused::Oversized));
        // Counted, and shown as `bad_frame`.
        let (mut rx, ..) = transport(64, 4);
        rx.bad_source = 3;
        assert_eq!(rx.drops().bad_frame, 3);
    }

    /// `net.wire: psp_mb` replies carry UDP checksum 0, on every sender's socket.
    #[test]
    fn udp_checksums_can_be_omitted_on_every_sender() {
        let no_check = |s: &UdpSocket| int_option(s, libc::SO_NO_CHECK).unwrap();
        let t = Udp::bind("127.0.0.1:0".parse().unwrap(), 64, 4, 0).unwrap();
        let s = t.split(1).unwrap();
        assert_eq!(no_check(&s.workers[0].socket), 0, "checksummed by default");
        let mut t = Udp::bind("127.0.0.1:0".parse().unwrap(), 64, 4, 0).unwrap();
        t.omit_udp_checksums().unwrap();
        let s = t.split(2).unwrap();
        for tx in s.workers.iter().chain([&s.tx]) {
            assert_eq!(no_check(&tx.socket), 1);
        }
    }

    fn recv_all(rx: &mut UdpRx, want: usize) -> Vec<UdpPkt> {
        let mut out = Vec::new();
        while out.len() < want {
            rx.wait(Duration::from_millis(100), None);
            rx.rx_burst(&mut out, 32).unwrap();
        }
        out
    }

    #[test]
    fn receives_a_batch_and_replies_from_each_worker() {
        let (mut rx, _dtx, mut txs, addr) = transport(256, 64);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for i in 0..10u8 {
            client.send_to(&[i; 10], addr).unwrap();
        }
        let pkts = recv_all(&mut rx, 10);
        assert_eq!(rx.free_buffers(), 64 - 10);
        for (i, mut p) in pkts.into_iter().enumerate() {
            assert_eq!(p.msg(), &[i as u8; 10]);
            assert_eq!(p.peer(), client.local_addr().unwrap());
            assert_eq!(
                p.buf_mut().len(),
                256,
                "replies get max_msg bytes, not one more"
            );
            p.buf_mut()[0] = 0xff;
            p.set_len(3);
            let back = txs[i % 2].send(p).expect("udp gives buffers back");
            rx.recycle(back);
        }
        assert_eq!(rx.free_buffers(), 64);
        let mut buf = [0u8; 64];
        for _ in 0..10 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(n, 3);
            assert_eq!(buf[0], 0xff);
            assert_eq!(from, addr);
        }
        assert_eq!(txs[0].errors() + txs[1].errors(), 0);
    }

    #[test]
    fn oversized_datagrams_are_counted_and_dropped() {
        let (mut rx, _dtx, _txs, addr) = transport(100, 64);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(&[1; 101], addr).unwrap();
        client.send_to(&[2; 100], addr).unwrap();
        let mut out = Vec::new();
        while rx.drops().oversized + (out.len() as u64) < 2 {
            rx.wait(Duration::from_millis(100), None);
            rx.rx_burst(&mut out, 32).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].msg().len(), 100);
        assert_eq!(rx.drops().oversized, 1);
        assert_eq!(rx.free_buffers(), 63);
    }

    #[test]
    fn an_empty_pool_stops_receiving_and_counts() {
        let (mut rx, _dtx, _txs, addr) = transport(100, 1);
        // The pool never holds fewer than one burst's worth of buffers.
        assert_eq!(rx.free_buffers(), MAX_BURST);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..MAX_BURST + 1 {
            client.send_to(&[0; 30], addr).unwrap();
        }
        let held = recv_all(&mut rx, MAX_BURST);
        assert_eq!(rx.free_buffers(), 0);
        let mut out = Vec::new();
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 0);
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 0);
        assert_eq!(rx.drops().no_buffer, 1, "one stall, however many polls");
        for p in held {
            rx.recycle(p);
        }
        assert_eq!(recv_all(&mut rx, 1).len(), 1);
    }

    #[test]
    fn kernel_drop_counter_is_readable() {
        let (rx, _dtx, _txs, _addr) = transport(100, 64);
        assert_eq!(socket_drops(&rx.socket), Some(0));
    }
}

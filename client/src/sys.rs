//! sys.rs - the few system calls std does not expose: batched UDP send/receive
//! (`sendmmsg`/`recvmmsg`), socket buffer sizes, and the thread's timer slack.
//!
//! Everything is Linux-first; on other systems the batches degrade to one datagram per
//! call through std, and the tuning calls do nothing.

use std::io;
use std::net::UdpSocket;

/// Largest datagram the receiver takes (bigger ones are truncated and then fail to
/// parse, which counts them as malformed).
pub const MAX_DATAGRAM: usize = 2048;

/// Datagrams per batched call.
pub const BATCH: usize = 32;

/// Asks the kernel to wake this thread from `sleep` within `ns` of the deadline (the
/// default slack is 50 µs, too coarse for a sender that sleeps between requests).
pub fn set_timer_slack(ns: u64) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long argument and only changes the
    // calling thread's timer slack; the unused arguments are ignored.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ns;
}

/// Moves the calling thread to the real-time FIFO class at priority 1: it then runs as
/// soon as it is runnable, ahead of every ordinary thread (the kernel's RT throttling
/// still leaves others 5 % of each core). Needs root or CAP_SYS_NICE.
pub fn set_realtime() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: pthread_self() is the calling thread, alive for the call; `param` is a
        // valid sched_param that outlives it.
        let r =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(std::io::Error::other("real-time scheduling needs Linux"))
    }
}

/// Whether this process may make threads real-time (tried on a throwaway thread).
pub fn realtime_permitted() -> bool {
    std::thread::spawn(|| set_realtime().is_ok())
        .join()
        .unwrap_or(false)
}

/// Sets the socket's receive and send buffers to `bytes`: past the kernel's
/// maxima (`net.core.rmem_max`, `wmem_max`) where permitted (SO_RCVBUFFORCE needs
/// CAP_NET_ADMIN, e.g. root), else capped at them. Best effort.
pub fn set_buffers(sock: &UdpSocket, bytes: usize) {
    use persephone::net::udp::{set_rcvbuf, set_sndbuf};
    let _ = set_rcvbuf(sock, bytes);
    let _ = set_sndbuf(sock, bytes);
}

/// Up to [`BATCH`] outgoing datagrams, sent with one `sendmmsg` on a connected socket.
#[derive(Debug)]
pub struct SendBatch {
    bufs: Box<[[u8; 64]; BATCH]>,
    lens: [usize; BATCH],
    n: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            bufs: Box::new([[0; 64]; BATCH]),
            lens: [0; BATCH],
            n: 0,
        }
    }
}

impl SendBatch {
    /// Room left.
    pub fn is_full(&self) -> bool {
        self.n == BATCH
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Lets `fill` write the next datagram into a 64-byte buffer and return its length.
    pub fn push(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) {
        assert!(self.n < BATCH, "push on a full batch");
        let len = fill(&mut self.bufs[self.n]);
        self.lens[self.n] = len.min(64);
        self.n += 1;
    }

    /// Sends the batch; returns how many of its datagrams (from the front) left, or the
    /// error of the first one that could not. The batch is emptied either way.
    pub fn send(&mut self, sock: &UdpSocket) -> (usize, Option<io::Error>) {
        let n = std::mem::take(&mut self.n);
        let mut done = 0;
        while done < n {
            match self.send_some(sock, done, n) {
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    #[cfg(target_os = "linux")]
    fn send_some(&mut self, sock: &UdpSocket, from: usize, to: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid iovec/mmsghdr (null pointers, zero lengths).
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let count = to - from;
        for k in 0..count {
            iov[k].iov_base = self.bufs[from + k].as_mut_ptr().cast();
            iov[k].iov_len = self.lens[from + k];
            msgs[k].msg_hdr.msg_iov = &mut iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..count]` point to iovecs that point into `self.bufs`, all alive
        // and unaliased for the duration of the call; the socket is connected, so no
        // address is needed.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), count as _, 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_some(&mut self, sock: &UdpSocket, from: usize, _to: usize) -> io::Result<usize> {
        sock.send(&self.bufs[from][..self.lens[from]]).map(|_| 1)
    }
}

/// Buffers for receiving up to [`BATCH`] datagrams with one `recvmmsg`.
#[derive(Debug)]
pub struct RecvBatch {
    /// `BATCH` buffers of `size` bytes, back to back.
    bufs: Box<[u8]>,
    size: usize,
    lens: [usize; BATCH],
}

impl Default for RecvBatch {
    /// Buffers of [`MAX_DATAGRAM`] bytes.
    fn default() -> Self {
        RecvBatch::new(MAX_DATAGRAM)
    }
}

impl RecvBatch {
    /// Buffers for datagrams of up to `size` bytes (longer ones are cut and so fail
    /// to parse: size them for the largest reply expected).
    pub fn new(size: usize) -> RecvBatch {
        let size = size.max(1);
        RecvBatch {
            bufs: vec![0; size * BATCH].into_boxed_slice(),
            size,
            lens: [0; BATCH],
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout), then takes
    /// whatever else is already queued. Returns how many were received.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: all-zero is a valid iovec/mmsghdr (null pointers, zero lengths).
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (k, buf) in self.bufs.chunks_exact_mut(self.size).enumerate() {
                iov[k].iov_base = buf.as_mut_ptr().cast();
                iov[k].iov_len = self.size;
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every mmsghdr points to one iovec over a distinct `size`-byte
            // chunk of `self.bufs`, all alive and exclusively borrowed for the call; no
            // source address is asked for; a null timeout defers to SO_RCVTIMEO.
            let r = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as _,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = r as usize;
            for (len, m) in self.lens.iter_mut().zip(&msgs[..n]) {
                // Never trust a length beyond the buffer.
                *len = (m.msg_len as usize).min(self.size);
            }
            Ok(n)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let n = sock.recv(&mut self.bufs[..self.size])?;
            self.lens[0] = n;
            Ok(1)
        }
    }

    /// The `k`-th datagram of the last [`RecvBatch::recv`].
    pub fn get(&self, k: usize) -> &[u8] {
        &self.bufs[k * self.size..][..self.lens[k]]
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use persephone::net::udp::socket_drops;

    /// The engine reports its socket's drops with the library's `socket_drops`.
    #[test]
    fn socket_drops_counts_what_a_full_receive_buffer_refused() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(socket_drops(&rx), Some(0));
        // The smallest buffer the kernel allows holds a few datagrams; loopback
        // delivers synchronously, so the rest are dropped by the time send returns.
        let v: libc::c_int = 1;
        // SAFETY: live fd; a c_int value with its exact size.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let sent = 500u64;
        for _ in 0..sent {
            tx.send_to(&[7u8; 200], rx.local_addr().unwrap()).unwrap();
        }
        rx.set_nonblocking(true).unwrap();
        let mut got = 0u64;
        let mut buf = [0u8; 256];
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        let drops = socket_drops(&rx).unwrap();
        assert!(got < sent && drops > 0, "got {got}, drops {drops}");
        assert_eq!(got + drops, sent);
    }

    #[test]
    fn set_buffers_sets_at_least_the_kernels_cap() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_buffers(&s, 8 << 20);
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: live fd; `v` is a writable c_int and `len` its size.
        let r = unsafe {
            use std::os::fd::AsRawFd;
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        // The kernel doubles what it was given (bookkeeping); capped at rmem_max
        // unless forced.
        let rmem_max: i64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .map(|t| t.trim().parse().unwrap())
            .unwrap_or(0);
        assert!(
            i64::from(v) >= (2 * rmem_max).min(16 << 20),
            "{v} (rmem_max {rmem_max})"
        );
    }
}

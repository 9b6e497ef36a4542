//! net - transports: how request packets reach the dispatcher and replies leave.
//!
//! A [`Transport`] splits into one receive side, polled by the dispatcher, and one
//! transmit side per sender (each worker, plus the dispatcher for its immediate
//! rejections). Packets move by handle ([`Packet`]): the buffer that carried a request
//! carries its reply, rewritten in place.
//!
//! - [`udp`]: kernel UDP sockets, the embedded default.
//! - `dpdk` (cargo feature `dpdk`): DPDK poll-mode drivers.
//! - [`frame`]: Ethernet/IPv4/UDP/ARP parsing and in-place replies over plain bytes,
//!   for the DPDK transport (no `unsafe`, tested and fuzzed without DPDK).
//! - [`psp_mb`]: Perséphone's `PSP_MB` wire format over any of them (`net.wire`).

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod frame;
pub mod mem;
pub mod psp_mb;
pub mod udp;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// `addr:port` or `host:port` to an address (a host's first IPv4 address, else its
/// first: our sockets are IPv4 unless told otherwise). The error quotes `s` and says
/// whether it is malformed or did not resolve. Shared by the daemon's `net.bind` and
/// psp-client's `--server`.
pub fn resolve(s: &str) -> Result<SocketAddr, String> {
    match s.to_socket_addrs() {
        Ok(a) => {
            let addrs: Vec<SocketAddr> = a.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| format!("{s:?} resolves to no address"))
        }
        // Without a port, or with one that is not a number, the parse failed;
        // otherwise the name did not resolve, and the system says why.
        Err(_)
            if s.rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err()) =>
        {
            Err(format!("{s:?} is not a HOST:PORT address"))
        }
        Err(e) => Err(format!("cannot resolve {s:?}: {e}")),
    }
}

/// A request buffer held by handle. Its message is our header plus payload (the UDP
/// payload); the transport keeps addressing aside.
pub trait Packet: Send + 'static {
    /// The message as received (or as last set by [`Packet::set_len`]).
    fn msg(&self) -> &[u8];
    /// The whole buffer from the start of the message, up to its capacity: a reply may
    /// be written in place, up to this length.
    fn buf_mut(&mut self) -> &mut [u8];
    /// Sets the message length after a reply was written in place.
    fn set_len(&mut self, len: usize);

    /// The buffer's first [`HEADER_LEN`](crate::proto::HEADER_LEN) bytes, where a
    /// message's header is, and the message's length: what the dispatcher's check for
    /// a well-formed request reads. The bytes are the buffer's whatever the message's
    /// length (past its end, stale: the check compares the header's length field with
    /// the message's); `None` if the buffer is shorter than a header. The default
    /// takes them from [`Packet::msg`]; a transport whose buffers are arrays can give
    /// them with no bounds check.
    #[inline]
    fn head(&self) -> (Option<&[u8; crate::proto::HEADER_LEN]>, usize) {
        let m = self.msg();
        (m.first_chunk(), m.len())
    }
}

/// The dispatcher's receive side.
pub trait RxQueue: Send {
    type Pkt: Packet;

    /// Appends up to `max` received packets to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Vec<Self::Pkt>, max: usize) -> io::Result<usize>;

    /// Takes back a buffer whose request is finished (for transports that reuse
    /// buffers; others just drop it).
    fn recycle(&mut self, pkt: Self::Pkt);

    /// Blocks until a packet may be ready or `timeout` passes (for `idle: park`).
    /// `also` is another file descriptor to wake on (the dispatcher's doorbell).
    fn wait(&mut self, timeout: Duration, also: Option<std::os::fd::RawFd>);

    /// Packets that could not be received for want of a free buffer, and the
    /// datagrams the kernel dropped because our socket buffer was full, so far.
    fn drops(&self) -> RxDrops {
        RxDrops::default()
    }
}

/// Receive-side losses a transport can see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxDrops {
    /// Running out of request buffers. Kernel UDP: times receiving stalled because
    /// every buffer was in use (the datagrams then wait in the socket, and what
    /// overflows it is counted under `overflow`). DPDK: packets the NIC dropped for
    /// want of an mbuf.
    pub no_buffer: u64,
    /// Datagrams the kernel (or NIC) dropped before we could receive them.
    pub overflow: u64,
    /// Datagrams larger than `net.max_msg` (truncated, then dropped).
    pub oversized: u64,
    /// Frames dropped below our header because they were not for us, not well
    /// formed, or from a source no reply can go to (DPDK: the Ethernet/IPv4/UDP
    /// checks, ARP not for us, unsupported mbufs; the log names each reason. Kernel
    /// UDP, where the kernel filters the rest: datagrams from port 0).
    pub bad_frame: u64,
    /// Datagrams dropped for not being `PSP_MB` requests (`net.wire: psp_mb` only).
    pub bad_psp_mb: u64,
}

/// A transmit side (one per thread that sends).
pub trait TxQueue: Send {
    type Pkt: Packet;

    /// Sends `pkt`, already turned into a reply, back to where its request came from.
    /// Returns the buffer if the transport wants it given back to the receive side
    /// (kernel UDP copies into the kernel and reuses the buffer), `None` if the
    /// transport took it (DPDK frees the mbuf after transmission).
    fn send(&mut self, pkt: Self::Pkt) -> Option<Self::Pkt>;

    /// Called once by the thread that will use this transmit side, before its
    /// first send (DPDK registers the thread with EAL here).
    fn thread_init(&mut self) {}

    /// Pushes out anything buffered. Workers call it whenever their channel runs dry
    /// after sending, so a transport may batch the replies of a burst in `send`.
    fn flush(&mut self) {}

    /// Replies that could not be sent so far.
    fn errors(&self) -> u64;

    /// Replies not sent because the wire format cannot carry their status (`net.wire:
    /// psp_mb` has none: only `ok` replies go out), so far.
    fn withheld(&self) -> u64 {
        0
    }
}

/// A network backend, split into its parts once at start-up.
pub trait Transport {
    type Pkt: Packet;
    type Rx: RxQueue<Pkt = Self::Pkt>;
    type Tx: TxQueue<Pkt = Self::Pkt>;

    /// The receive side, the dispatcher's transmit side, and one transmit side for
    /// each of `n_workers` workers.
    fn split(self, n_workers: usize) -> io::Result<Split<Self::Rx, Self::Tx>>;

    /// From now on, send replies with UDP checksum 0 (IPv4's "no checksum"), for
    /// peers that send our reply's checksum field back in their next request
    /// unchanged (Perséphone's client: [`psp_mb`]). The IPv4 header checksum is still
    /// set. Transports without UDP headers have nothing to do.
    fn omit_udp_checksums(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A transport's parts.
#[derive(Debug)]
pub struct Split<R, T> {
    /// The dispatcher's receive side.
    pub rx: R,
    /// The dispatcher's transmit side (for rejections it answers itself).
    pub tx: T,
    /// One transmit side per worker.
    pub workers: Vec<T>,
}

/// Checks a transport's [`Packet::head`] against what it must mean: the buffer's first
/// header's worth of bytes and the message's length, stale bytes included once the
/// message is cut short. (An override that got this wrong would not fail any request:
/// the dispatcher would take its slow path for all of them.)
#[cfg(test)]
pub(crate) fn check_head<P: Packet>(mut p: P) {
    use crate::proto::{encode_request, HEADER_LEN};
    let n = encode_request(p.buf_mut(), 7, 42, 0, b"abc").expect("room for a request");
    p.set_len(n);
    let (head, len) = p.head();
    assert_eq!(len, n);
    assert_eq!(head.map(|h| &h[..]), Some(&p.msg()[..HEADER_LEN]));
    let whole: [u8; HEADER_LEN] = *head.unwrap();
    p.set_len(5);
    let (head, len) = p.head();
    assert_eq!(
        (head, len),
        (Some(&whole), 5),
        "stale bytes past a cut message"
    );
}

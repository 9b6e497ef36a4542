//! psp_mb.rs - Perséphone's `PSP_MB` wire format (`net.wire: psp_mb`), spoken at the
//! transport's edge so that the original Perséphone client can load our server.
//!
//! ```text
//! offset size field    (little-endian, as Perséphone writes it on x86)
//!      0    4 id       chosen by the client, echoed in the reply
//!      4    4 type     request type id (Perséphone: 1 = SHORT, 2 = LONG, ...)
//!      8    4 size     bytes of request after this field: always 4
//!     12    4 run_ns   the service time to spin, in ns; 0 in a reply
//! ```
//!
//! A request is these 16 bytes of UDP payload (over DPDK, right after the 42-byte
//! Ethernet/IPv4/UDP header; the NIC pads the frame to the Ethernet minimum).
//! Perséphone's client may send a few bytes more: it sizes a datagram by reading a
//! length from the buffer just past the request, which a reused buffer may hold
//! (`prepare_outbound_packet`'s "dirty trick"), so bytes after the 16 are ignored.
//!
//! [`PspMb`] wraps any [`Transport`]. Its receive side rewrites each request in place
//! into a native one (type, id, `sent_at` 0, and `run_ns` as the `spin` handler's
//! payload), so the dispatcher, the policies, the workers and the handlers are the
//! native ones and the native path pays nothing for the mode. A datagram that is not
//! a `PSP_MB` request is dropped and counted (`bad_psp_mb`). Its transmit sides
//! rewrite each `ok` reply back: id, type, size 4 and `run_ns` 0, 16 bytes, with
//! UDP checksum 0 (see [`PspMb`]'s `split`). Perséphone's client reads the id alone.
//! The format has no status, so a rejection or a handler's error is not sent
//! (Perséphone's dispatcher, too, drops a request its queue has no room for); it is
//! counted under its status as usual and as `withheld`.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Packet, RxDrops, RxQueue, Split, Transport, TxQueue};
use crate::proto::{self, Header, Kind, Status};

/// Bytes of a `PSP_MB` request and reply.
pub const LEN: usize = 16;
/// The `size` field of every request: the 4 bytes of `run_ns`.
pub const SIZE: u32 = 4;
/// What a request becomes in place (a native header and the spin payload): the
/// buffers must hold this much (`net.max_msg`).
pub const NATIVE_LEN: usize = proto::HEADER_LEN + 8;

/// A `PSP_MB` request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub id: u32,
    pub ty: u32,
    pub run_ns: u32,
}

impl Message {
    /// Parses the first [`LEN`] bytes of `msg`, which must hold that many, with
    /// `size` [`SIZE`]; what follows them is ignored.
    pub fn parse(msg: &[u8]) -> Option<Message> {
        let m: &[u8; LEN] = msg.first_chunk()?;
        let word = |i: usize| u32::from_le_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
        (word(8) == SIZE).then(|| Message {
            id: word(0),
            ty: word(4),
            run_ns: word(12),
        })
    }

    /// Writes the message into the first [`LEN`] bytes of `buf`; returns [`LEN`], or
    /// `None` if `buf` is shorter.
    pub fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let b: &mut [u8; LEN] = buf.get_mut(..LEN)?.try_into().ok()?;
        b[0..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.ty.to_le_bytes());
        b[8..12].copy_from_slice(&SIZE.to_le_bytes());
        b[12..16].copy_from_slice(&self.run_ns.to_le_bytes());
        Some(LEN)
    }
}

/// Rewrites the `PSP_MB` request in `pkt` into a native request, in place. `false`
/// (and `pkt` unchanged) if it is not one, or its buffer cannot hold the native form.
pub fn to_native<P: Packet>(pkt: &mut P) -> bool {
    let Some(m) = Message::parse(pkt.msg()) else {
        return false;
    };
    let payload = proto::spin_payload(m.run_ns.into());
    match proto::encode_request(pkt.buf_mut(), m.ty, m.id.into(), 0, &payload) {
        Ok(len) => {
            pkt.set_len(len);
            true
        }
        Err(_) => false,
    }
}

/// Rewrites the native reply in `pkt` into a `PSP_MB` reply, in place, if it is an
/// `ok` one; `false` (and `pkt` unchanged) otherwise: the format has no status.
pub fn to_psp_mb<P: Packet>(pkt: &mut P) -> bool {
    let Ok(h) = Header::parse(pkt.msg()) else {
        return false;
    };
    if h.kind != Kind::Reply(Status::Ok) {
        return false;
    }
    let reply = Message {
        // The id came from a PSP_MB request's 32 bits.
        id: h.id as u32,
        ty: h.ty,
        run_ns: 0,
    };
    match reply.write(pkt.buf_mut()) {
        Some(len) => {
            pkt.set_len(len);
            true
        }
        None => false,
    }
}

/// A transport that speaks `PSP_MB` on the wire and native requests inside.
#[derive(Debug)]
pub struct PspMb<X>(pub X);

impl<X: Transport> Transport for PspMb<X> {
    type Pkt = X::Pkt;
    type Rx = PspMbRx<X::Rx>;
    type Tx = PspMbTx<X::Tx>;

    /// Splits the inner transport, its replies without UDP checksums: Perséphone's
    /// client builds each request in a buffer that held an earlier reply and leaves
    /// the UDP checksum field as it found it, so a reply's real checksum would come
    /// back, wrong, in a later request, and the kernel or NIC drop it.
    fn split(mut self, n_workers: usize) -> io::Result<Split<Self::Rx, Self::Tx>> {
        self.0.omit_udp_checksums()?;
        let Split { rx, tx, workers } = self.0.split(n_workers)?;
        Ok(Split {
            rx: PspMbRx { inner: rx, bad: 0 },
            tx: PspMbTx::new(tx),
            workers: workers.into_iter().map(PspMbTx::new).collect(),
        })
    }
}

/// The receive side of [`PspMb`].
#[derive(Debug)]
pub struct PspMbRx<R> {
    inner: R,
    /// Datagrams dropped for not being `PSP_MB` requests.
    bad: u64,
}

impl<R: RxQueue> RxQueue for PspMbRx<R> {
    type Pkt = R::Pkt;

    fn rx_burst(&mut self, out: &mut Vec<R::Pkt>, max: usize) -> io::Result<usize> {
        let start = out.len();
        self.inner.rx_burst(out, max)?;
        // Convert in place, moving the good ones forward in arrival order.
        let mut kept = start;
        for i in start..out.len() {
            if to_native(&mut out[i]) {
                out.swap(kept, i);
                kept += 1;
            }
        }
        for pkt in out.drain(kept..) {
            self.bad += 1;
            self.inner.recycle(pkt);
        }
        Ok(kept - start)
    }

    fn recycle(&mut self, pkt: R::Pkt) {
        self.inner.recycle(pkt);
    }

    fn wait(&mut self, timeout: Duration, also: Option<RawFd>) {
        self.inner.wait(timeout, also);
    }

    fn drops(&self) -> RxDrops {
        RxDrops {
            bad_psp_mb: self.bad,
            ..self.inner.drops()
        }
    }
}

/// A transmit side of [`PspMb`].
#[derive(Debug)]
pub struct PspMbTx<T> {
    inner: T,
    withheld: u64,
}

impl<T> PspMbTx<T> {
    fn new(inner: T) -> PspMbTx<T> {
        PspMbTx { inner, withheld: 0 }
    }

    /// The wrapped transmit side (to send frames of one's own, as tests do).
    pub fn inner(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: TxQueue> TxQueue for PspMbTx<T> {
    type Pkt = T::Pkt;

    #[inline]
    fn send(&mut self, mut pkt: T::Pkt) -> Option<T::Pkt> {
        if to_psp_mb(&mut pkt) {
            self.inner.send(pkt)
        } else {
            self.withheld += 1;
            Some(pkt)
        }
    }

    fn thread_init(&mut self) {
        self.inner.thread_init();
    }

    fn flush(&mut self) {
        self.inner.flush();
    }

    fn errors(&self) -> u64 {
        self.inner.errors()
    }

    fn withheld(&self) -> u64 {
        self.withheld
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet over a plain buffer.
    #[derive(Debug)]
    struct Buf(Vec<u8>, usize);

    impl Packet for Buf {
        fn msg(&self) -> &[u8] {
            &self.0[..self.1]
        }
        fn buf_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
        fn set_len(&mut self, len: usize) {
            self.1 = len;
        }
    }

    fn packet(bytes: &[u8], capacity: usize) -> Buf {
        let mut b = vec![0; capacity.max(bytes.len())];
        b[..bytes.len()].copy_from_slice(bytes);
        Buf(b, bytes.len())
    }

    /// What Perséphone's client writes (`PSP_MB` in its `gen_next_req`).
    fn request(id: u32, ty: u32, run_ns: u32) -> Vec<u8> {
        [id, ty, 4, run_ns]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn a_request_becomes_native_and_its_reply_psp_mb() {
        let mut p = packet(&request(0x0800_0007, 2, 1500), 64);
        assert!(to_native(&mut p));
        let h = Header::parse(p.msg()).expect("a native request");
        assert_eq!(h, Header::request(2, 0x0800_0007, 0, 8));
        assert_eq!(
            proto::parse_spin_payload(&p.msg()[proto::HEADER_LEN..]),
            Some(1500)
        );
        // A worker's ok reply, made in place as the worker makes it.
        let len = proto::make_reply(p.buf_mut(), Status::Ok, 0);
        p.set_len(len);
        assert!(to_psp_mb(&mut p));
        assert_eq!(p.msg(), request(0x0800_0007, 2, 0), "run_ns zeroed");
    }

    #[test]
    fn only_psp_mb_requests_are_taken() {
        let good = request(1, 1, 1000);
        let mut bad_size = good.clone();
        bad_size[8] = 8;
        for bytes in [&good[..15], &bad_size[..], &[][..]] {
            let mut p = packet(bytes, 64);
            assert!(!to_native(&mut p), "{bytes:?}");
            assert_eq!(p.msg(), bytes, "left as it was");
        }
        // A buffer too small for the native form.
        let mut p = packet(&good, NATIVE_LEN - 1);
        assert!(!to_native(&mut p));
        // Bytes past the 16 (Perséphone's client may send some) are ignored, and the
        // reply is 16 bytes.
        let mut p = packet(&[good.as_slice(), &[7; 5]].concat(), 64);
        assert!(to_native(&mut p));
        assert_eq!(Header::parse(p.msg()).unwrap().id, 1);
        let len = proto::make_reply(p.buf_mut(), Status::Ok, 0);
        p.set_len(len);
        assert!(to_psp_mb(&mut p));
        assert_eq!(p.msg(), request(1, 1, 0));
    }

    #[test]
    fn replies_with_an_error_status_are_not_rewritten() {
        for s in Status::ALL.into_iter().filter(|&s| s != Status::Ok) {
            let mut p = packet(&request(5, 1, 10), 64);
            assert!(to_native(&mut p));
            let len = proto::make_reply(p.buf_mut(), s, 0);
            p.set_len(len);
            let before = p.msg().to_vec();
            assert!(!to_psp_mb(&mut p), "{s:?}");
            assert_eq!(p.msg(), before);
        }
        // Not a native reply at all (a request).
        let mut p = packet(&request(5, 1, 10), 64);
        assert!(to_native(&mut p));
        assert!(!to_psp_mb(&mut p));
    }

    /// A receive side handing out given datagrams, keeping what comes back.
    struct Script(Vec<Buf>, Vec<Buf>);

    impl RxQueue for Script {
        type Pkt = Buf;
        fn rx_burst(&mut self, out: &mut Vec<Buf>, max: usize) -> io::Result<usize> {
            let n = max.min(self.0.len());
            out.extend(self.0.drain(..n));
            Ok(n)
        }
        fn recycle(&mut self, pkt: Buf) {
            self.1.push(pkt);
        }
        fn wait(&mut self, _: Duration, _: Option<RawFd>) {}
    }

    #[test]
    fn the_receive_side_keeps_order_and_counts_what_it_drops() {
        let mut rx = PspMbRx {
            inner: Script(
                vec![
                    packet(&request(1, 1, 0), 64),
                    packet(b"not psp_mb", 64),
                    packet(&request(2, 2, 0), 64),
                    packet(&request(3, 1, 0)[..12], 64),
                    packet(&request(4, 1, 0), 64),
                ],
                Vec::new(),
            ),
            bad: 0,
        };
        let mut out = vec![packet(b"already there", 64)];
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 3);
        let ids: Vec<u64> = out[1..]
            .iter()
            .map(|p| Header::parse(p.msg()).unwrap().id)
            .collect();
        assert_eq!(ids, [1, 2, 4]);
        assert_eq!(out[0].msg(), b"already there", "what was in `out` stays");
        assert_eq!(rx.drops().bad_psp_mb, 2);
        assert_eq!(rx.inner.1.len(), 2, "the dropped buffers went back");
    }
}

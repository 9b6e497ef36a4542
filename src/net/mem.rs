//! mem.rs - an in-memory transport: requests made inside the dispatcher's receive call,
//! replies counted; no socket, no syscall. For benchmarks and tests.
//!
//! The receive side holds a fixed pool of buffers (allocated once, like the UDP
//! transport's). Each [`RxQueue::rx_burst`] takes free buffers and asks a
//! [`Generator`] to write the next requests into them, so the number of requests in
//! flight is bounded by the pool (a closed loop: a buffer comes back with its request's
//! completion). After `limit` requests the receive side raises a stop flag, and the
//! dispatcher drains and exits: a run of exactly `limit` requests. Transmit sides count
//! the replies ([`Counters`]). Nothing here allocates after [`Transport::split`].

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::{Packet, RxQueue, Split, Transport, TxQueue};
use crate::proto::{self, HEADER_LEN};

/// Bytes of message a buffer holds.
pub const MAX_MSG: usize = 1024;

/// A request buffer, held by one pointer (like an mbuf): length and bytes together.
#[derive(Debug)]
pub struct MemPkt(Box<Buf>);

/// The length first, in C order and line-aligned, so that it shares a cache line with
/// the message header: a request handed between cores moves one line of its buffer,
/// not two (Rust's default layout, which is not specified, put the length 1 KiB after
/// the bytes here).
#[derive(Debug)]
#[repr(C, align(64))]
struct Buf {
    len: usize,
    data: [u8; MAX_MSG],
}

impl MemPkt {
    fn new() -> MemPkt {
        MemPkt(Box::new(Buf {
            len: 0,
            data: [0; MAX_MSG],
        }))
    }
}

impl Packet for MemPkt {
    #[inline]
    fn msg(&self) -> &[u8] {
        &self.0.data[..self.0.len]
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.0.data
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        debug_assert!(len <= MAX_MSG);
        self.0.len = len.min(MAX_MSG);
    }

    #[inline]
    fn head(&self) -> (Option<&[u8; HEADER_LEN]>, usize) {
        (self.0.data.first_chunk(), self.0.len)
    }
}

/// Writes requests into receive buffers.
pub trait Generator: Send {
    /// Writes request number `seq` (0, 1, ...) into `buf` and returns its length, or
    /// returns `None` if there is no request to receive now.
    fn next(&mut self, seq: u64, buf: &mut [u8]) -> Option<usize>;

    /// Writes requests `seq`, `seq + 1`, ... into `bufs` in order, until the buffers
    /// run out or [`Generator::next`] has none; returns how many it wrote.
    #[inline]
    fn fill(&mut self, seq: u64, bufs: &mut [MemPkt]) -> usize {
        let mut got = 0;
        for p in bufs {
            let Some(len) = self.next(seq + got as u64, &mut p.0.data) else {
                break;
            };
            p.0.len = len.min(MAX_MSG);
            got += 1;
        }
        got
    }
}

impl<F> Generator for F
where
    F: FnMut(u64, &mut [u8]) -> Option<usize> + Send,
{
    fn next(&mut self, seq: u64, buf: &mut [u8]) -> Option<usize> {
        self(seq, buf)
    }
}

/// Valid requests with an empty payload, their type ids taken in turn from a list
/// (request `seq` has type `ids[seq % ids.len()]` and id `seq`; at most
/// [`Cycle::MAX_TYPES`] ids).
#[derive(Clone)]
pub struct Cycle {
    /// One encoded header per entry of the list, each padded to 32 bytes, in an array
    /// of a fixed power-of-two length: `next` finds a template with a shift and a
    /// mask, not a multiply and a bounds check, and `fill` walks them by pointer (the
    /// transport's cost per request is part of what `scripts/callgrind.sh` counts).
    templates: Box<[[u8; 32]; Cycle::MAX_TYPES]>,
    n: usize,
    next: usize,
}

impl std::fmt::Debug for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cycle")
            .field("types", &self.n)
            .field("next", &self.next)
            .finish()
    }
}

const _: () = assert!(
    HEADER_LEN <= 32,
    "a Cycle template holds a header in 32 bytes"
);

impl Cycle {
    /// The most type ids a cycle takes.
    pub const MAX_TYPES: usize = 64;

    pub fn new(type_ids: &[u32]) -> Cycle {
        assert!(!type_ids.is_empty(), "no request types to cycle through");
        assert!(
            type_ids.len() <= Cycle::MAX_TYPES,
            "at most {} request types to cycle through",
            Cycle::MAX_TYPES
        );
        let mut templates = Box::new([[0; 32]; Cycle::MAX_TYPES]);
        for (t, &ty) in templates.iter_mut().zip(type_ids) {
            proto::encode_request(&mut t[..HEADER_LEN], ty, 0, 0, &[]).expect("header fits");
        }
        Cycle {
            templates,
            n: type_ids.len(),
            next: 0,
        }
    }

    /// The template after `i`.
    #[inline]
    fn after(&self, i: usize) -> usize {
        if i + 1 == self.n {
            0
        } else {
            i + 1
        }
    }

    /// Template `i` (below `n`).
    #[inline]
    fn template(&self, i: usize) -> &[u8; 32] {
        &self.templates[i % Cycle::MAX_TYPES]
    }

    /// Writes request `seq` from template `t`.
    #[inline]
    fn write(t: &[u8; 32], seq: u64, buf: &mut [u8]) {
        buf[..HEADER_LEN].copy_from_slice(&t[..HEADER_LEN]);
        buf[8..16].copy_from_slice(&seq.to_le_bytes());
    }
}

impl Generator for Cycle {
    #[inline]
    fn next(&mut self, seq: u64, buf: &mut [u8]) -> Option<usize> {
        Cycle::write(self.template(self.next), seq, buf);
        self.next = self.after(self.next);
        Some(HEADER_LEN)
    }

    /// As the default, with a pointer to the next template kept in a register for the
    /// burst.
    /// Inlined into the receive; `scripts/callgrind.sh` still counts it apart (it writes
    /// the requests' bytes: the client's and the NIC's part of a receive), from the
    /// binary's inlining records.
    #[inline]
    fn fill(&mut self, seq: u64, bufs: &mut [MemPkt]) -> usize {
        // The templates in use, walked by pointer: an add and a compare per request
        // instead of an index's mask and shift (`scripts/callgrind.sh` counts this).
        let ts = &self.templates[..self.n];
        let std::ops::Range { start, end } = ts.as_ptr_range();
        let mut t = ts.as_ptr().wrapping_add(self.next);
        for (k, p) in bufs.iter_mut().enumerate() {
            debug_assert!(start <= t && t < end);
            // SAFETY: `t` is in `ts`: it starts at `next < n` (`n >= 1`, both kept so
            // by `new`, `next` and this loop) and wraps to the first template at `end`.
            Cycle::write(unsafe { &*t }, seq + k as u64, &mut p.0.data);
            p.0.len = HEADER_LEN;
            t = t.wrapping_add(1);
            if t == end {
                t = start;
            }
        }
        // SAFETY: both in `ts` (or its end, never kept: it wraps to `start`).
        self.next = unsafe { t.offset_from(start) } as usize;
        bufs.len()
    }
}

/// Replies sent by one transmit side, readable from any thread.
#[derive(Debug, Default)]
pub struct TxCount {
    /// Replies of any status.
    pub sent: AtomicU64,
    /// Replies with status `ok`.
    pub ok: AtomicU64,
}

/// Reply counters of every transmit side: index 0 is the dispatcher's, `1 + w` worker
/// `w`'s. Each has a single writer (its thread), which stores with `Relaxed` after
/// each reply (no read-modify-write).
#[derive(Debug)]
pub struct Counters {
    per_tx: Box<[CachePadded<TxCount>]>,
}

impl Counters {
    /// Replies sent by transmit side `i` (0: the dispatcher, `1 + w`: worker `w`).
    pub fn tx(&self, i: usize) -> &TxCount {
        &self.per_tx[i]
    }

    /// Replies sent by all transmit sides.
    pub fn sent(&self) -> u64 {
        self.per_tx
            .iter()
            .map(|c| c.sent.load(Ordering::Relaxed))
            .sum()
    }

    /// Replies with status `ok`, all transmit sides.
    pub fn ok(&self) -> u64 {
        self.per_tx
            .iter()
            .map(|c| c.ok.load(Ordering::Relaxed))
            .sum()
    }
}

/// An in-memory transport, before it is split.
#[derive(Debug)]
pub struct Mem<G> {
    gen: G,
    buffers: usize,
    limit: u64,
    stop: Option<Arc<AtomicBool>>,
    counters: Option<Arc<Counters>>,
}

impl<G: Generator> Mem<G> {
    /// A transport whose receive side has `buffers` buffers (requests in flight at
    /// most) and gets its requests from `gen`, without end.
    pub fn new(gen: G, buffers: usize) -> Mem<G> {
        assert!(buffers > 0, "an in-memory transport needs buffers");
        Mem {
            gen,
            buffers,
            limit: u64::MAX,
            stop: None,
            counters: None,
        }
    }

    /// Receives exactly `n` requests, then sets `stop` (the dispatcher's stop flag:
    /// it drains what it holds and exits).
    pub fn limit(mut self, n: u64, stop: Arc<AtomicBool>) -> Mem<G> {
        self.limit = n;
        self.stop = Some(stop);
        self
    }

    /// The reply counters the split transport will update (for `n_workers` workers).
    pub fn counters(&mut self, n_workers: usize) -> Arc<Counters> {
        let c = self.counters.get_or_insert_with(|| {
            Arc::new(Counters {
                per_tx: (0..=n_workers).map(|_| CachePadded::default()).collect(),
            })
        });
        assert_eq!(c.per_tx.len(), n_workers + 1, "counters for another size");
        c.clone()
    }
}

impl<G: Generator> Transport for Mem<G> {
    type Pkt = MemPkt;
    type Rx = MemRx<G>;
    type Tx = MemTx;

    fn split(mut self, n_workers: usize) -> io::Result<Split<MemRx<G>, MemTx>> {
        let counters = self.counters(n_workers);
        let tx = |i| MemTx {
            counters: counters.clone(),
            index: i,
            sent: 0,
            ok: 0,
        };
        Ok(Split {
            rx: MemRx {
                pool: {
                    let mut pool = Vec::with_capacity(self.buffers);
                    pool.extend((0..self.buffers).map(|_| MemPkt::new()));
                    pool
                },
                gen: self.gen,
                seq: 0,
                limit: self.limit,
                stop: self.stop,
                no_buffer: 0,
            },
            tx: tx(0),
            workers: (1..=n_workers).map(tx).collect(),
        })
    }
}

/// The receive side: the buffer pool and the generator.
#[derive(Debug)]
pub struct MemRx<G> {
    /// The free buffers. Its capacity, set once, is the number of buffers: giving one
    /// back never grows it (and the push is guarded by a capacity test, so that the
    /// dispatcher's completion loop carries no reallocation call).
    pool: Vec<MemPkt>,
    gen: G,
    seq: u64,
    limit: u64,
    stop: Option<Arc<AtomicBool>>,
    no_buffer: u64,
}

impl<G> MemRx<G> {
    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.seq
    }

    /// Free buffers in the pool.
    pub fn free_buffers(&self) -> usize {
        self.pool.len()
    }

    fn exhausted(&self) -> bool {
        self.seq >= self.limit
    }

    /// Every buffer comes from this pool, which has room for each. Were it full, a
    /// buffer not from this pool would have been given back: it is forgotten (a leak,
    /// rather than a drop call or a reallocation on this path).
    #[inline]
    fn free_slot(&mut self, pkt: MemPkt) {
        if self.pool.len() < self.pool.capacity() {
            self.pool.push(pkt);
        } else {
            std::mem::forget(pkt);
        }
    }

    /// Gives back the buffers from `out[from..]`, which the generator left empty.
    #[cold]
    fn unused(&mut self, out: &mut Vec<MemPkt>, from: usize) {
        for p in out.drain(from..) {
            self.free_slot(p);
        }
    }
}

/// Moves the last `n` items of `from` (which has at least `n`) to the end of `to`, in
/// order, with one copy of their pointers: how a NIC driver takes buffers from its
/// pool's cache (DPDK's mempool copies the pointers with `rte_memcpy`). `extend` from a
/// `drain` moved them one by one (6 instructions per buffer, counted by
/// `scripts/callgrind.sh`).
#[inline]
fn move_tail<T>(from: &mut Vec<T>, n: usize, to: &mut Vec<T>) {
    let at = from
        .len()
        .checked_sub(n)
        .expect("move_tail: fewer items than asked for");
    to.reserve(n);
    // SAFETY: `from[at..]` are `n` initialised items and `to` has room for `n` more past
    // its length (reserved above); the two vectors are distinct allocations (two `&mut`).
    // The items are copied bitwise, then `from` forgets them (its length drops to `at`)
    // and `to` takes them (its length grows by `n`): each is owned by exactly one
    // vector at every point where a panic could occur (none can between the copy and
    // the two `set_len`s).
    unsafe {
        std::ptr::copy_nonoverlapping(from.as_ptr().add(at), to.as_mut_ptr().add(to.len()), n);
        from.set_len(at);
        to.set_len(to.len() + n);
    }
}

impl<G: Generator> RxQueue for MemRx<G> {
    type Pkt = MemPkt;

    // Out of line (once per burst) so that instruction counts can tell the transport's
    // share from the dispatcher's (scripts/callgrind.sh).
    #[inline(never)]
    fn rx_burst(&mut self, out: &mut Vec<MemPkt>, max: usize) -> io::Result<usize> {
        let want = (max as u64).min(self.limit - self.seq) as usize;
        let n = want.min(self.pool.len());
        if n < want {
            self.no_buffer += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // Like a NIC driver: first hand out the buffers (a copy of pointers), then
        // fill them.
        let start = out.len();
        if n == 1 {
            // One buffer (a worker freed per turn): without the copy call's set-up.
            out.extend(self.pool.pop());
        } else {
            move_tail(&mut self.pool, n, out);
        }
        let got = self.gen.fill(self.seq, &mut out[start..]);
        self.seq += got as u64;
        if got < n {
            self.unused(out, start + got);
        }
        if got > 0 && self.exhausted() {
            if let Some(stop) = &self.stop {
                stop.store(true, Ordering::Release);
            }
        }
        Ok(got)
    }

    #[inline]
    fn recycle(&mut self, pkt: MemPkt) {
        self.free_slot(pkt);
    }

    fn wait(&mut self, timeout: Duration, also: Option<RawFd>) {
        if !self.pool.is_empty() && !self.exhausted() {
            return; // a request may be ready now (the generator decides)
        }
        match also {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
                // SAFETY: one valid, initialised pollfd that outlives the call.
                unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => std::thread::sleep(timeout.min(Duration::from_millis(1))),
        }
    }

    fn drops(&self) -> super::RxDrops {
        super::RxDrops {
            no_buffer: self.no_buffer,
            ..Default::default()
        }
    }
}

/// A transmit side: counts replies and gives the buffer back (it returns to the pool
/// with the completion, as with kernel UDP).
#[derive(Debug)]
pub struct MemTx {
    counters: Arc<Counters>,
    index: usize,
    sent: u64,
    ok: u64,
}

impl TxQueue for MemTx {
    type Pkt = MemPkt;

    #[inline]
    fn send(&mut self, pkt: MemPkt) -> Option<MemPkt> {
        let c = &self.counters.per_tx[self.index];
        self.sent += 1;
        c.sent.store(self.sent, Ordering::Relaxed);
        if pkt.0.data[3] == proto::Status::Ok as u8 | 0x80 {
            self.ok += 1;
            c.ok.store(self.ok, Ordering::Relaxed);
        }
        Some(pkt)
    }

    fn errors(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Header, Kind, Status};

    #[test]
    fn head_is_the_buffers_first_bytes_and_the_messages_length() {
        crate::net::check_head(MemPkt::new());
    }

    #[test]
    fn receives_generated_requests_up_to_the_limit_then_stops() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut mem = Mem::new(Cycle::new(&[7, 9]), 4).limit(5, stop.clone());
        let counters = mem.counters(2);
        let Split {
            mut rx,
            mut tx,
            mut workers,
        } = mem.split(2).unwrap();
        let mut out = Vec::new();
        // Only 4 buffers.
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 4);
        assert_eq!(rx.drops().no_buffer, 1);
        let types: Vec<u32> = out
            .iter()
            .map(|p| {
                let h = Header::parse(p.msg()).unwrap();
                assert_eq!(h.kind, Kind::Request);
                h.ty
            })
            .collect();
        assert_eq!(types, [7, 9, 7, 9]);
        assert!(!stop.load(Ordering::Relaxed));
        // Replies: make one ok and one rejected, give the buffers back.
        let mut p = out.pop().unwrap();
        let len = proto::make_reply(p.buf_mut(), Status::Ok, 0);
        p.set_len(len);
        rx.recycle(workers[1].send(p).unwrap());
        let mut p = out.pop().unwrap();
        let len = proto::make_reply(p.buf_mut(), Status::QueueFull, 0);
        p.set_len(len);
        rx.recycle(tx.send(p).unwrap());
        assert_eq!(counters.sent(), 2);
        assert_eq!(counters.ok(), 1);
        assert_eq!(counters.tx(2).ok.load(Ordering::Relaxed), 1);
        // The fifth and last request raises the stop flag.
        out.clear();
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 1);
        assert_eq!(Header::parse(out[0].msg()).unwrap().id, 4);
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 0);
        assert_eq!(rx.received(), 5);
        let _ = &mut workers;
    }

    #[test]
    fn cycle_fills_a_burst_as_it_makes_requests_one_by_one() {
        let mut burst = Cycle::new(&[3, 5, 8]);
        let mut one_by_one = burst.clone();
        // Start mid-cycle, so that the burst wraps around the list.
        let mut skip = [0u8; MAX_MSG];
        burst.next(0, &mut skip);
        one_by_one.next(0, &mut skip);
        let mut bufs: Vec<MemPkt> = (0..5).map(|_| MemPkt::new()).collect();
        assert_eq!(burst.fill(10, &mut bufs), 5);
        for (k, p) in bufs.iter().enumerate() {
            let mut want = [0u8; MAX_MSG];
            let len = one_by_one.next(10 + k as u64, &mut want).unwrap();
            assert_eq!(p.msg(), &want[..len], "request {k}");
        }
        let ids: Vec<u64> = bufs
            .iter()
            .map(|p| Header::parse(p.msg()).unwrap().id)
            .collect();
        assert_eq!(ids, [10, 11, 12, 13, 14]);
    }

    /// `fill` walks the templates by pointer (unsafe): over bursts that end before,
    /// at and past the end of the list, and a list of one, each request is what
    /// `next` makes, and the cycle goes on where the burst left it.
    #[test]
    fn cycle_bursts_resume_where_they_left_off() {
        for ids in [&[3u32, 5, 8][..], &[4]] {
            let mut burst = Cycle::new(ids);
            let mut one_by_one = burst.clone();
            let mut seq = 0;
            for n in [2, 1, 3, 5, 1, 4] {
                let mut bufs: Vec<MemPkt> = (0..n).map(|_| MemPkt::new()).collect();
                assert_eq!(burst.fill(seq, &mut bufs), n);
                for p in &bufs {
                    let mut want = [0u8; MAX_MSG];
                    let len = one_by_one.next(seq, &mut want).unwrap();
                    assert_eq!(p.msg(), &want[..len], "{ids:?}: request {seq}");
                    seq += 1;
                }
            }
        }
    }

    #[test]
    fn move_tail_moves_the_last_items_in_order_and_drops_each_once() {
        let item = |i: u32| Box::new(i); // owns memory: Miri sees a double free or leak
        for (have, n, already) in [(5, 3, 2), (3, 3, 0), (4, 0, 1), (1, 1, 7)] {
            let mut from: Vec<Box<u32>> = (0..have).map(item).collect();
            let mut to: Vec<Box<u32>> = (100..100 + already).map(item).collect();
            move_tail(&mut from, n as usize, &mut to);
            let from: Vec<u32> = from.into_iter().map(|b| *b).collect();
            let to: Vec<u32> = to.into_iter().map(|b| *b).collect();
            let expect_to: Vec<u32> = (100..100 + already).chain(have - n..have).collect();
            assert_eq!(from, (0..have - n).collect::<Vec<_>>());
            assert_eq!(to, expect_to);
        }
    }

    #[test]
    #[should_panic(expected = "fewer items than asked for")]
    fn move_tail_refuses_to_move_more_than_there_is() {
        move_tail(&mut vec![1u8, 2], 3, &mut Vec::new());
    }

    #[test]
    fn a_generator_may_have_nothing_to_send() {
        let mut mem = Mem::new(
            |seq: u64, buf: &mut [u8]| {
                (seq < 2).then(|| proto::encode_request(buf, 1, seq, 0, b"x").unwrap())
            },
            8,
        );
        let _ = mem.counters(0);
        let mut rx = mem.split(0).unwrap().rx;
        let mut out = Vec::new();
        assert_eq!(rx.rx_burst(&mut out, 32).unwrap(), 2);
        assert_eq!(rx.free_buffers(), 6);
        assert_eq!(out[1].msg().len(), HEADER_LEN + 1);
    }
}

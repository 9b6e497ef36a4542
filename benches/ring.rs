//! ring - handoff between two pinned threads (core 0 and core 1): round trip
//! (ping-pong) and one-way throughput, for the dispatcher<->worker channel and the rings
//! it could be built on, beside the bare cache-line-padded single-slot mailbox, the
//! physical limit of the machine.
//!
//! - `mailbox`: one `CachePadded<AtomicU64>` per direction. Round trip: each side writes
//!   a sequence number and spins until the other's line shows it (two line transfers per
//!   round trip, nothing else). One way: a single slot, full (non-zero) or empty (0);
//!   the producer waits for empty, the consumer for full.
//!   The one-way mailbox moves one line there and back per item (the consumer empties
//!   the slot), which is exactly what a one-slot duplex round trip moves.
//! - `duplex`: `persephone::duplex`, the dispatcher↔worker channel: the job goes out and
//!   its completion comes back in the same slot. Round trip at capacity 1 (DARC,
//!   c-FCFS); `duplex-64` keeps up to 64 jobs out (d-FCFS's depth), the worker
//!   completing each, the main thread collecting: the channel's throughput.
//! - `crossbeam`: a pair of `Arc<crossbeam_queue::ArrayQueue>`, the first backing of the
//!   dispatcher's rings.
//! - `rtrb`: a pair of the `rtrb` crate's SPSC rings (cached indices); also at capacity
//!   1 to show what rereading the peer's index on every push costs.
//!
//! (The SPSC ring pair the dispatcher used before the duplex, Caladan-lrpc style, was
//! measured here until 820aafd: round trip within 17 % of the two-line mailbox.)
//! Threads spin; on a machine with fewer than 2 free cores the numbers mean nothing.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::CachePadded;

mod support;

/// A ring under test, moving `u64`s.
trait Ring {
    type P: Send + 'static;
    type C: Send + 'static;
    fn new(cap: usize) -> (Self::P, Self::C);
    fn push(p: &mut Self::P, v: u64) -> bool;
    fn pop(c: &mut Self::C) -> Option<u64>;
    /// Pops everything available, calling `f` on each; returns how many.
    fn pop_batch(c: &mut Self::C, f: impl FnMut(u64)) -> usize;
}

struct Crossbeam;
impl Ring for Crossbeam {
    type P = Arc<crossbeam_queue::ArrayQueue<u64>>;
    type C = Arc<crossbeam_queue::ArrayQueue<u64>>;
    fn new(cap: usize) -> (Self::P, Self::C) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(cap));
        (q.clone(), q)
    }
    #[inline]
    fn push(p: &mut Self::P, v: u64) -> bool {
        p.push(v).is_ok()
    }
    #[inline]
    fn pop(c: &mut Self::C) -> Option<u64> {
        c.pop()
    }
    #[inline]
    fn pop_batch(c: &mut Self::C, mut f: impl FnMut(u64)) -> usize {
        let mut n = 0;
        while let Some(v) = c.pop() {
            f(v);
            n += 1;
        }
        n
    }
}

struct Rtrb;
impl Ring for Rtrb {
    type P = rtrb::Producer<u64>;
    type C = rtrb::Consumer<u64>;
    fn new(cap: usize) -> (Self::P, Self::C) {
        rtrb::RingBuffer::new(cap)
    }
    #[inline]
    fn push(p: &mut Self::P, v: u64) -> bool {
        p.push(v).is_ok()
    }
    #[inline]
    fn pop(c: &mut Self::C) -> Option<u64> {
        c.pop().ok()
    }
    #[inline]
    fn pop_batch(c: &mut Self::C, mut f: impl FnMut(u64)) -> usize {
        // rtrb's batch read: one index update for the whole chunk.
        let n = c.slots();
        if n == 0 {
            return 0;
        }
        let chunk = c.read_chunk(n).expect("slots() said so");
        for v in chunk {
            f(v);
        }
        n
    }
}

/// `iters` round trips through two rings.
fn ping_pong<R: Ring>(iters: u64, cap: usize) -> Duration {
    let (mut to_p, from_m) = R::new(cap);
    let (to_m, mut from_p) = R::new(cap);
    support::with_peer(
        (from_m, to_m),
        move |(mut rx, mut tx): (R::C, R::P)| {
            for _ in 0..iters {
                let v = loop {
                    if let Some(v) = R::pop(&mut rx) {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                while !R::push(&mut tx, v) {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let t = Instant::now();
            for i in 0..iters {
                while !R::push(&mut to_p, i) {
                    std::hint::spin_loop();
                }
                loop {
                    if let Some(v) = R::pop(&mut from_p) {
                        debug_assert_eq!(v, i);
                        black_box(v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            t.elapsed()
        },
    )
}

/// `iters` round trips through a one-slot duplex.
fn duplex_ping_pong(iters: u64) -> Duration {
    let (mut d, w) = persephone::duplex::channel::<u64, u64>(1);
    support::with_peer(
        w,
        move |mut w: persephone::duplex::WorkerEnd<u64, u64>| {
            for _ in 0..iters {
                let v = loop {
                    if let Some(v) = w.take() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                w.complete(v);
            }
        },
        move || {
            let t = Instant::now();
            for i in 0..iters {
                d.push(i).expect("one slot, free");
                loop {
                    if let Some(v) = d.pop() {
                        debug_assert_eq!(v, i);
                        black_box(v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            t.elapsed()
        },
    )
}

/// `iters` jobs through a duplex of `cap` slots, as many out at once as it holds: the
/// main thread sends while there is room and collects completions; the worker takes
/// and completes.
fn duplex_pipelined(iters: u64, cap: usize) -> Duration {
    let (mut d, w) = persephone::duplex::channel::<u64, u64>(cap);
    support::with_peer(
        w,
        move |mut w: persephone::duplex::WorkerEnd<u64, u64>| {
            let mut n = 0;
            while n < iters {
                match w.take() {
                    Some(v) => {
                        w.complete(v);
                        n += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        },
        move || {
            let t = Instant::now();
            let (mut sent, mut got, mut sum) = (0u64, 0u64, 0u64);
            while got < iters {
                while sent < iters && d.push(sent).is_ok() {
                    sent += 1;
                }
                while let Some(v) = d.pop() {
                    sum = sum.wrapping_add(v);
                    got += 1;
                }
            }
            black_box(sum);
            t.elapsed()
        },
    )
}

/// `iters` items one way; the consumer takes them one `pop` at a time, or in batches.
fn one_way<R: Ring>(iters: u64, cap: usize, batch: bool) -> Duration {
    let (mut p, c) = R::new(cap);
    let done = Arc::new(CachePadded::new(AtomicBool::new(false)));
    let d2 = done.clone();
    support::with_peer(
        c,
        move |mut c: R::C| {
            let mut got = 0u64;
            let mut sum = 0u64;
            while got < iters {
                if batch {
                    got += R::pop_batch(&mut c, |v| sum = sum.wrapping_add(v)) as u64;
                } else if let Some(v) = R::pop(&mut c) {
                    sum = sum.wrapping_add(v);
                    got += 1;
                }
            }
            black_box(sum);
            d2.store(true, Ordering::Release);
        },
        move || {
            let t = Instant::now();
            for i in 0..iters {
                while !R::push(&mut p, i) {
                    std::hint::spin_loop();
                }
            }
            while !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            t.elapsed()
        },
    )
}

fn bench_rings(c: &mut Criterion) {
    if !support::pin(0) {
        eprintln!("warning: could not pin to core 0");
    }
    let mut g = c.benchmark_group("ring-roundtrip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mailbox", |b| b.iter_custom(support::mailbox_ping_pong));
    g.bench_function(BenchmarkId::new("duplex", 1), |b| {
        b.iter_custom(duplex_ping_pong)
    });
    g.bench_function(BenchmarkId::new("rtrb", 8), |b| {
        b.iter_custom(|n| ping_pong::<Rtrb>(n, 8))
    });
    g.bench_function(BenchmarkId::new("rtrb", 1), |b| {
        b.iter_custom(|n| ping_pong::<Rtrb>(n, 1))
    });
    g.bench_function(BenchmarkId::new("crossbeam", 8), |b| {
        b.iter_custom(|n| ping_pong::<Crossbeam>(n, 8))
    });
    g.bench_function(BenchmarkId::new("crossbeam", 1), |b| {
        b.iter_custom(|n| ping_pong::<Crossbeam>(n, 1))
    });
    g.finish();

    let mut g = c.benchmark_group("ring-oneway");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mailbox", |b| b.iter_custom(support::mailbox_one_way));
    g.bench_function("duplex-64", |b| b.iter_custom(|n| duplex_pipelined(n, 64)));
    g.bench_function("rtrb-chunk", |b| {
        b.iter_custom(|n| one_way::<Rtrb>(n, 64, true))
    });
    g.bench_function("rtrb-pop", |b| {
        b.iter_custom(|n| one_way::<Rtrb>(n, 64, false))
    });
    g.bench_function("crossbeam-pop", |b| {
        b.iter_custom(|n| one_way::<Crossbeam>(n, 64, false))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_rings
}
criterion_main!(benches);

//! ring - handoff between two pinned threads (core 0 and core 1): round trip
//! (ping-pong) and one-way throughput, for every ring the code uses or could use, beside
//! the bare cache-line-padded single-slot mailbox, the physical limit of the machine.
//!
//! - `mailbox`: one `CachePadded<AtomicU64>` per direction. Round trip: each side writes
//!   a sequence number and spins until the other's line shows it (two line transfers per
//!   round trip, nothing else). One way: a single slot, full (non-zero) or empty (0);
//!   the producer waits for empty, the consumer for full.
//! - `ring`: `persephone::ring` (this crate's SPSC ring, Caladan-lrpc style); one way
//!   with per-item `pop` and with `drain` (the dispatcher's batch).
//! - `crossbeam`: `Arc<crossbeam_queue::ArrayQueue>`, the ring's previous backing.
//! - `rtrb`: the `rtrb` crate's SPSC ring (cached indices); also at capacity 1 to show
//!   what rereading the peer's index on every push costs.
//!
//! Round trips use capacity 8 (the dispatcher's rings for DARC and c-FCFS: the
//! smallest `persephone::ring`); one way uses 64 (d-FCFS's default depth).
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

struct Ours;
impl Ring for Ours {
    type P = persephone::ring::Producer<u64>;
    type C = persephone::ring::Consumer<u64>;
    fn new(cap: usize) -> (Self::P, Self::C) {
        persephone::ring::channel(cap)
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
        for v in c.drain() {
            f(v);
            n += 1;
        }
        n
    }
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
    g.bench_function(BenchmarkId::new("ring", 8), |b| {
        b.iter_custom(|n| ping_pong::<Ours>(n, 8))
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
    g.bench_function("ring-drain", |b| {
        b.iter_custom(|n| one_way::<Ours>(n, 64, true))
    });
    g.bench_function("ring-pop", |b| {
        b.iter_custom(|n| one_way::<Ours>(n, 64, false))
    });
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

//! No heap allocation per request in steady state: a counting global allocator, and
//! the dispatcher with the in-memory transport driven for a window of requests.
//!
//! Deterministic: the stepped tests run the dispatcher and simulated workers on the
//! test's own thread and count that thread's allocations only (other tests in this
//! binary run on other threads). The threaded test counts the allocations of the
//! dispatcher and worker threads it starts (and no others) over a window that starts
//! and ends at request counts, not at times.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persephone::config::{IdleStrategy, PolicyKind};
use persephone::idle::Idler;
use persephone::workers::{HandlerError, Request, Worker};

#[path = "../benches/support/mod.rs"]
mod support;
use support::Setup;

struct Counting;

thread_local! {
    /// Allocations made by this thread.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread's allocations also count in `TRACKED`.
    static TRACK: Cell<bool> = const { Cell::new(false) };
}

/// Allocations made by threads that called `track()`.
static TRACKED: AtomicU64 = AtomicU64::new(0);

fn count() {
    // `try_with`: thread-locals may be gone while a thread exits.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    if TRACK.try_with(Cell::get).unwrap_or(false) {
        TRACKED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; counting touches
// only thread-locals without destructors and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn my_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn track() {
    TRACK.with(|t| t.set(true));
}

/// Warms a stepped rig up, then counts this thread's allocations over `window`
/// requests.
fn stepped_allocs(s: &Setup, warmup: u64, window: u64) -> u64 {
    let mut rig = support::rig(s);
    let now = rig.run_replies(warmup, 0);
    let before = my_allocs();
    rig.run_replies(window, now);
    let after = my_allocs();
    let stats = rig.dispatcher.stats();
    assert!(stats.balanced(), "{stats}");
    assert!(rig.counters.sent() >= warmup + window);
    assert_eq!(rig.counters.ok(), rig.counters.sent(), "every reply is ok");
    after - before
}

#[test]
fn the_counter_sees_allocations() {
    let before = my_allocs();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert_eq!(my_allocs() - before, 1);
    drop(v);
}

#[test]
fn darc_static_allocates_nothing_per_request() {
    for types in [1, 4, 16] {
        let s = Setup::new(PolicyKind::Darc, types, 14);
        assert_eq!(stepped_allocs(&s, 20_000, 100_000), 0, "{}", s.name());
    }
}

#[test]
fn darc_profiling_windows_allocate_nothing_while_the_mix_holds() {
    // Windows of 1000 completions close 100 times in the window; the mix does not
    // change, so DARC keeps its reservation and must not allocate to find that out.
    let s = Setup::new(PolicyKind::Darc, 4, 14).dynamic(1_000);
    assert_eq!(stepped_allocs(&s, 20_000, 100_000), 0, "{}", s.name());
}

#[test]
fn cfcfs_allocates_nothing_per_request() {
    let s = Setup::new(PolicyKind::Cfcfs, 4, 14);
    assert_eq!(stepped_allocs(&s, 20_000, 100_000), 0, "{}", s.name());
}

#[test]
fn dfcfs_allocates_nothing_per_request() {
    let s = Setup::new(PolicyKind::Dfcfs, 4, 14);
    assert_eq!(stepped_allocs(&s, 20_000, 100_000), 0, "{}", s.name());
}

#[test]
fn sjf_and_edf_allocate_nothing_per_request_fixed_or_learning() {
    for kind in [PolicyKind::Sjf, PolicyKind::Edf] {
        for s in [
            Setup::new(kind, 4, 14),
            // Learning: every completion moves an estimate.
            Setup::new(kind, 4, 14).dynamic(1_000),
        ] {
            assert_eq!(stepped_allocs(&s, 20_000, 100_000), 0, "{}", s.name());
        }
    }
}

#[test]
fn small_batches_and_few_buffers_allocate_nothing() {
    // Bursts of 1, and a pool so small that receive runs out of buffers (no_buffer).
    let s = Setup::new(PolicyKind::Darc, 4, 2).batch(1).buffers(3);
    assert_eq!(stepped_allocs(&s, 1_000, 20_000), 0, "{}", s.name());
}

/// Waits (sleeping, so that a 2-core machine keeps its cores for the threads under
/// test) until `sent()` reaches `n`.
fn wait_for(counters: &persephone::net::mem::Counters, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while counters.sent() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at {} of {n} replies",
            counters.sent()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn dispatcher_and_worker_threads_allocate_nothing_per_request() {
    // The real loops (`Dispatcher::run`, `Worker::run`), yielding when idle so that
    // they share two cores with the rest of the test suite.
    const WARMUP: u64 = 20_000;
    const WINDOW: u64 = 50_000;
    let mut s = Setup::new(PolicyKind::Darc, 4, 1).limit(WARMUP + WINDOW + 10_000);
    s.idle = IdleStrategy::Yield;
    let p = support::parts(&s);
    let mut workers = p.workers;
    let (jobs, tx) = workers.pop().expect("one worker");
    let worker = Worker {
        idx: 0,
        jobs,
        tx,
        handler: Box::new(|req: &mut Request<'_>| -> Result<(), HandlerError> {
            req.echo();
            Ok(())
        }),
        types: p.types.clone(),
        idle: Idler::new(IdleStrategy::Yield, Duration::from_micros(100)),
        stop: p.stop_workers.clone(),
        sleeper: Arc::new(std::sync::OnceLock::new()),
        doorbell: p.doorbell.clone(),
        budget: None,
        max_amplification: 0.0,
        counters: Default::default(),
    };
    let started = Arc::new(AtomicBool::new(false));
    let w = std::thread::spawn(move || {
        track();
        worker.run()
    });
    let d = p.dispatcher;
    let s2 = started.clone();
    let dt = std::thread::spawn(move || {
        track();
        s2.store(true, Ordering::Release);
        d.run()
    });
    wait_for(&p.counters, WARMUP);
    let before = TRACKED.load(Ordering::Relaxed);
    wait_for(&p.counters, WARMUP + WINDOW);
    let after = TRACKED.load(Ordering::Relaxed);
    let stats = dt.join().expect("dispatcher");
    w.join().expect("worker");
    assert!(started.load(Ordering::Relaxed));
    assert_eq!(
        stats.replies_with(persephone::proto::Status::Ok),
        WARMUP + WINDOW + 10_000
    );
    assert_eq!(after - before, 0, "allocations in {WINDOW} requests");
}

//! `persephone::duplex` across real threads: every job reaches the worker once and in
//! order, every completion comes back once and in order carrying what the worker wrote,
//! and every value (job or completion) is dropped exactly once, whether it was taken,
//! collected, or left in the channel when both ends went away. (The memory orderings
//! themselves are model-checked in `tests/duplex_loom.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use persephone::duplex;

/// A value that counts its drops.
struct Tracked {
    seq: u64,
    drops: Arc<AtomicUsize>,
    /// Heap data, so that a torn or duplicated read shows up as a crash or a bad value.
    payload: Box<u64>,
}

impl Tracked {
    fn new(seq: u64, payload: u64, drops: &Arc<AtomicUsize>) -> Tracked {
        Tracked {
            seq,
            drops: drops.clone(),
            payload: Box::new(payload),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends `jobs` jobs through a channel of `capacity`; the worker holds up to `hold` at
/// once before completing the oldest, and stops after completing `jobs - leave`
/// (taking no more), so `leave` jobs are left for the channel to drop. The main thread
/// collects completions until `jobs - leave - uncollected` came back.
fn run(capacity: usize, hold: usize, jobs: u64, leave: u64, uncollected: u64) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut d, mut w) = duplex::channel::<Tracked, Tracked>(capacity);
    let served = jobs - leave;
    let d2 = drops.clone();
    let worker = std::thread::spawn(move || {
        let mut held = std::collections::VecDeque::new();
        let mut done = 0;
        while done < served {
            let can_take = held.len() < hold && done + (held.len() as u64) < served;
            match can_take.then(|| w.take()).flatten() {
                Some(job) => held.push_back(job),
                None if !held.is_empty() => {
                    let job: Tracked = held.pop_front().expect("held");
                    assert_eq!((job.seq, *job.payload), (done, done * 7));
                    w.complete(Tracked::new(job.seq, job.seq * 11, &d2));
                    done += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        w // returned so that the channel outlives the main thread's last look
    });
    let (mut sent, mut got) = (0, 0);
    while got < served - uncollected {
        let mut any = false;
        while sent < jobs && d.outstanding() < capacity {
            if d.push(Tracked::new(sent, sent * 7, &drops)).is_err() {
                panic!("push failed with room");
            }
            sent += 1;
            any = true;
        }
        if let Some(c) = d.pop() {
            assert_eq!((c.seq, *c.payload), (got, got * 11));
            got += 1;
            any = true;
        }
        if !any {
            std::thread::yield_now();
        }
    }
    let w = worker.join().expect("worker");
    // Dropped so far: every job the worker served, every completion collected.
    assert_eq!(drops.load(Ordering::Relaxed) as u64, served + got);
    drop(d);
    drop(w);
    // The rest went with the last end, once each: jobs not taken and completions not
    // collected (and every job sent was one or the other, or served).
    assert_eq!(
        drops.load(Ordering::Relaxed) as u64,
        sent + served,
        "sent {sent}, served {served}, collected {got}"
    );
}

#[test]
fn one_slot_many_round_trips() {
    run(1, 1, 200_000, 0, 0);
}

#[test]
fn deep_channel_worker_holding_several() {
    run(64, 5, 200_000, 0, 0);
}

#[test]
fn what_is_left_behind_is_dropped_once() {
    // Jobs sent and never taken, completions written and never collected.
    run(16, 3, 10_000, 5, 4);
    run(8, 1, 10_000, 8, 0);
    run(4, 2, 1_000, 0, 3);
}

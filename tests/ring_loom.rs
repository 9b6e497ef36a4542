//! Model-checks `persephone::ring`'s memory orderings with loom: every interleaving
//! (and every weak-memory outcome loom models) of a producer and a consumer thread.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test ring_loom
//! ```
//!
//! Without `--cfg loom` this file is empty. Rings are the smallest the crate makes
//! (`ring::MIN_CAPACITY` slots); pushing more items than that exercises wrap-around and
//! the producer's rereading of the consumer's position.
#![cfg(loom)]

use loom::thread;
use persephone::ring::{self, MIN_CAPACITY};

/// Values carry heap data, so a value read before it is written, read twice or
/// dropped twice shows up as a wrong value or a double free.
fn item(i: usize) -> Box<usize> {
    Box::new(i)
}

#[test]
fn items_arrive_once_in_order_across_a_wrap() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let n = MIN_CAPACITY + 2;
        let (mut p, mut c) = ring::channel(1);
        let t = thread::spawn(move || {
            for i in 0..n {
                let mut v = item(i);
                while let Err(back) = p.push(v) {
                    v = back;
                    thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < n {
            match c.pop() {
                Some(v) => {
                    assert_eq!(*v, next);
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn drained_batches_free_their_slots() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let n = MIN_CAPACITY + 3;
        let (mut p, mut c) = ring::channel(1);
        let t = thread::spawn(move || {
            let mut i = 0;
            while i < n {
                // A batch of pushes after one check of the room left.
                let room = p.free();
                for _ in 0..room.min(n - i) {
                    p.push(item(i)).expect("free() promised room");
                    i += 1;
                }
                if room == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < n {
            let mut any = false;
            for v in c.drain() {
                assert_eq!(*v, next);
                next += 1;
                any = true;
            }
            if !any {
                thread::yield_now();
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn items_left_in_the_ring_are_dropped_by_the_last_owner() {
    loom::model(|| {
        let (mut p, mut c) = ring::channel(1);
        let t = thread::spawn(move || {
            for i in 0..3 {
                p.push(item(i)).unwrap();
            }
            // The producer drops here, maybe before the consumer.
        });
        // Takes at most one; whatever is left is dropped with the last handle, whichever
        // it is (loom checks that the shared state is freed; a value dropped twice
        // would be a double free of its box).
        if let Some(v) = c.pop() {
            assert_eq!(*v, 0);
        }
        drop(c);
        t.join().unwrap();
    });
}

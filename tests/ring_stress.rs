//! `persephone::ring` across real threads: every item arrives once, in order, and every
//! item is dropped exactly once, whether it was taken by `pop`, by `drain`, or left in
//! the ring when both ends went away. (The memory orderings themselves are model-checked
//! in `tests/ring_loom.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use persephone::ring;

/// An item that counts its drops.
struct Tracked {
    seq: u64,
    drops: Arc<AtomicUsize>,
    /// Heap data, so that a torn or duplicated read shows up as a crash or a bad value.
    payload: Box<u64>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(capacity: usize, items: u64, leave: u64) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut p, mut c) = ring::channel::<Tracked>(capacity);
    let d2 = drops.clone();
    let producer = std::thread::spawn(move || {
        let mut seq = 0;
        while seq < items {
            // Alternate single pushes and batches sized by `free()`.
            let room = if seq % 3 == 0 {
                p.free().min(1)
            } else {
                p.free()
            };
            for _ in 0..room.min((items - seq) as usize) {
                let t = Tracked {
                    seq,
                    drops: d2.clone(),
                    payload: Box::new(seq * 7),
                };
                if p.push(t).is_err() {
                    panic!("push failed with room");
                }
                seq += 1;
            }
            if room == 0 {
                std::thread::yield_now();
            }
        }
        p // returned so that the ring outlives the consumer's last look
    });
    let mut next = 0;
    while next < items - leave {
        let mut any = false;
        if next % 2 == 0 {
            if let Some(t) = c.pop() {
                assert_eq!((t.seq, *t.payload), (next, next * 7));
                next += 1;
                any = true;
            }
        } else {
            for t in c.drain().take((items - leave - next) as usize) {
                assert_eq!((t.seq, *t.payload), (next, next * 7));
                next += 1;
                any = true;
            }
        }
        if !any {
            std::thread::yield_now();
        }
    }
    let p = producer.join().expect("producer");
    assert_eq!(drops.load(Ordering::Relaxed) as u64, items - leave);
    // What is left in the ring is dropped with the last end, once.
    assert_eq!(c.len() as u64, leave);
    drop(c);
    assert_eq!(drops.load(Ordering::Relaxed) as u64, items - leave);
    drop(p);
    assert_eq!(drops.load(Ordering::Relaxed) as u64, items);
}

#[test]
fn small_ring_many_items() {
    run(1, 200_000, 0);
}

#[test]
fn larger_ring_batches() {
    run(64, 200_000, 0);
}

#[test]
fn items_left_behind_are_dropped_once() {
    run(16, 10_000, 5);
    run(8, 10_000, 8);
}

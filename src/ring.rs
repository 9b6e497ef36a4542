//! ring.rs - single-producer single-consumer rings between the dispatcher and workers.
//!
//! The split `Producer`/`Consumer` handles make the single-producer single-consumer
//! discipline a type-level fact (neither is `Clone`), so the backing queue can later be
//! swapped for a dedicated SPSC ring without touching its users. For now it is
//! crossbeam's bounded `ArrayQueue`.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// Creates a ring holding at most `capacity` items.
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let q = Arc::new(ArrayQueue::new(capacity.max(1)));
    (Producer { q: q.clone() }, Consumer { q })
}

/// The sending half of a ring.
#[derive(Debug)]
pub struct Producer<T> {
    q: Arc<ArrayQueue<T>>,
}

/// The receiving half of a ring.
#[derive(Debug)]
pub struct Consumer<T> {
    q: Arc<ArrayQueue<T>>,
}

impl<T> Producer<T> {
    /// Pushes `value`, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        self.q.push(value)
    }

    /// Items currently in the ring.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.q.capacity()
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.q.pop()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel(2);
        p.push(1).unwrap();
        p.push(2).unwrap();
        assert_eq!(p.push(3), Err(3));
        assert_eq!(c.pop(), Some(1));
        assert_eq!(c.pop(), Some(2));
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn crosses_threads_in_order() {
        let (mut p, mut c) = channel(8);
        let t = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                let mut v = i;
                while let Err(back) = p.push(v) {
                    v = back;
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < 10_000 {
            match c.pop() {
                Some(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        t.join().unwrap();
    }
}

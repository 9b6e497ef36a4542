//! ring.rs - single-producer single-consumer rings between the dispatcher and workers.
//!
//! The split [`Producer`]/[`Consumer`] handles make the single-producer single-consumer
//! discipline a type-level fact (neither is `Clone`). The ring follows Caladan's `lrpc`
//! (the channel Perséphone itself used):
//!
//! - Every slot carries a **stamp**: the producer writes the value, then stores
//!   `position + 1` into the slot's stamp (release). The consumer reads the stamp of the
//!   slot at its position and takes the value when the stamp matches. The consumer never
//!   reads the producer's index: the slot it must read anyway says whether it is full.
//! - The consumer **writes back** its position (`head`) into a line of its own, and the
//!   producer keeps a **cached copy** of it, rereading the shared one only when the ring
//!   looks full. With room to spare, a push touches one line (the slot's) and a pop two
//!   (the slot's and the consumer's own write-back line, which stays in its cache).
//! - [`Consumer::drain`] takes a batch and writes the position back once for all of it.
//! - No read-modify-write instruction anywhere: each index has a single writer, so plain
//!   loads and stores (acquire/release) suffice.
//!
//! # Capacity
//! `channel(n)` makes a ring of **at least `n` and at least [`MIN_CAPACITY`] slots,
//! rounded up to a power of two** (slot index = position & mask). The floor is for the
//! rings the dispatcher uses: DARC and c-FCFS hand a worker one request at a time
//! (capacity 1), and a ring of exactly one slot would make every push reread the
//! consumer's position, one more line to fetch per handoff. (The round-trip benchmark
//! in `results/README.md` did not resolve that difference for rtrb at capacity 1 and 8
//! on a noisy machine; the floor costs nothing.) Callers that need a tighter bound keep
//! it themselves, as the policies do.
//!
//! # Safety
//! `unsafe` here is confined to the slot array: a slot's value is written only by the
//! producer while the slot is free (the consumer's published position is past it) and
//! read only by the consumer after the stamp says it is full (acquire pairs with the
//! producer's release). `tests/ring_loom.rs` checks the orderings with loom
//! (`RUSTFLAGS="--cfg loom" cargo test --release --test ring_loom`).

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use self::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// The smallest ring [`channel`] makes, in slots.
pub const MIN_CAPACITY: usize = 8;

/// Creates a ring holding at least `capacity` items (see the module docs: at least
/// [`MIN_CAPACITY`], rounded up to a power of two).
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let slots = capacity
        .max(MIN_CAPACITY)
        .checked_next_power_of_two()
        .expect("ring capacity overflows usize");
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        slots: Slots::new(slots),
        mask: slots - 1,
    });
    let (slots, mask) = (shared.slots.ptr, shared.mask);
    (
        Producer {
            shared: shared.clone(),
            slots,
            mask,
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            slots,
            mask,
            head: 0,
        },
    )
}

/// A slot: a value and the stamp that says which position it holds.
struct Slot<T> {
    /// `position + 1` once the producer has written the value for `position`.
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The slot array: packed (a batch shares lines), in an allocation that starts and
/// ends on a 128-byte boundary so that no other data shares its cache lines (128, not
/// 64: the adjacent-line prefetcher moves lines in pairs; crossbeam's `CachePadded`
/// explains it).
struct Slots<T> {
    ptr: NonNull<Slot<T>>,
    len: usize,
}

const LINE: usize = 128;

impl<T> Slots<T> {
    fn layout(len: usize) -> Layout {
        Layout::array::<Slot<T>>(len)
            .and_then(|l| l.align_to(LINE))
            .expect("ring too large")
            .pad_to_align()
    }

    fn new(len: usize) -> Slots<T> {
        assert!(len > 0);
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (`len > 0` slots of a non-zero-sized
        // `Slot`, whose stamp is a usize).
        let raw = unsafe { alloc::alloc(layout) }.cast::<Slot<T>>();
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        for i in 0..len {
            // SAFETY: `i < len` and the allocation holds `len` slots, suitably aligned.
            unsafe {
                ptr.as_ptr().add(i).write(Slot {
                    stamp: AtomicUsize::new(0),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
            };
        }
        Slots { ptr, len }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> &Slot<T> {
        debug_assert!(i < self.len);
        // SAFETY: callers pass `position & mask`, below `len` (`mask = len - 1`); the
        // slots were initialised in `new` and live until `drop`.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` slots were initialised in `new` and are dropped once, here
        // (their values, `MaybeUninit`, are not: `Shared::drop` dropped the live ones);
        // then the memory is freed with the layout it was allocated with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len));
        }
    }
}

/// What both halves share.
struct Shared<T> {
    /// The consumer's position, written back after each pop (or once per drained
    /// batch); the producer reads it only when its cached copy says the ring is full.
    head: CachePadded<AtomicUsize>,
    slots: Slots<T>,
    mask: usize,
}

impl<T> Shared<T> {
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        self.slots.get(pos & self.mask)
    }

    fn capacity(&self) -> usize {
        self.mask + 1
    }
}

// SAFETY: `Shared` hands values of `T` from one thread to another, so it is `Send` and
// `Sync` exactly when `T: Send`. Each slot's `UnsafeCell` is accessed by at most one
// thread at a time, as argued at each access (the stamp and `head` protocol).
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both halves are gone (this is the last `Arc`), and each published what it did:
        // the consumer its position (on every pop, at the end of each drain and when it
        // drops), the producer every slot's stamp. The items left are the slots from
        // `head` on whose stamps say they are full.
        let mut pos = self.head.load(Ordering::Acquire);
        for _ in 0..self.capacity() {
            let slot = self.slot(pos);
            if slot.stamp.load(Ordering::Acquire) != pos.wrapping_add(1) {
                break;
            }
            // SAFETY: the stamp says the producer wrote the value for `pos`, and the
            // consumer's published position says it has not taken it; no other handle
            // exists, so it is dropped exactly once, here.
            slot.value.with_mut(|v| unsafe { (*v).assume_init_drop() });
            pos = pos.wrapping_add(1);
        }
    }
}

/// The sending half of a ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// `shared.slots`' base and `shared.mask`, copied here (as lrpc does) so that a
    /// push reads only the handle and the slot, not the shared header first.
    slots: NonNull<Slot<T>>,
    mask: usize,
    /// Next position to write.
    tail: usize,
    /// The consumer's position as last read (never ahead of the real one).
    head_cache: usize,
}

/// The receiving half of a ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// As in [`Producer`]: the slot array's base and mask, local.
    slots: NonNull<Slot<T>>,
    mask: usize,
    /// Next position to read.
    head: usize,
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// The slot for `pos` in the array at `slots` with `mask` (a handle's local copies).
///
/// # Safety
/// `slots` and `mask` must be those of a live [`Shared`] (a handle's copies, while the
/// handle holds its `Arc`).
#[inline(always)]
unsafe fn slot_at<'a, T>(slots: NonNull<Slot<T>>, mask: usize, pos: usize) -> &'a Slot<T> {
    // SAFETY: `pos & mask` is below the array's length (`mask = len - 1`); the caller
    // guarantees the array is alive (and it was initialised in `Slots::new`).
    unsafe { &*slots.as_ptr().add(pos & mask) }
}

impl<T> Producer<T> {
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        // SAFETY: our copies of the array's base and mask; our `Arc` keeps it alive.
        unsafe { slot_at(self.slots, self.mask, pos) }
    }

    /// Pushes `value`, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.tail.wrapping_sub(self.head_cache) > self.mask && self.refresh() == 0 {
            return Err(value);
        }
        let slot = self.slot(self.tail);
        // SAFETY: the slot is free: `tail - head < capacity` (checked against a cached
        // head that is never ahead of the consumer's), so the consumer has finished with
        // the value it held a lap ago (its release store of `head` happened before our
        // acquire load of it) and will not read this slot until the stamp below says so.
        // We are the only producer (`&mut self`).
        slot.value.with_mut(|v| unsafe { (*v).write(value) });
        slot.stamp
            .store(self.tail.wrapping_add(1), Ordering::Release);
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Rereads the consumer's position; returns the free slots.
    #[cold]
    #[inline(never)]
    fn refresh(&mut self) -> usize {
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.shared.capacity() - self.tail.wrapping_sub(self.head_cache)
    }

    /// How many pushes will succeed from now on (at least; the consumer may free more).
    /// Rereads the consumer's position only if the cached one shows the ring full, so
    /// a batch of pushes costs at most one read of the consumer's line.
    #[inline]
    pub fn free(&mut self) -> usize {
        let free = self.mask + 1 - self.tail.wrapping_sub(self.head_cache);
        if free == 0 {
            self.refresh()
        } else {
            free
        }
    }

    /// Items currently in the ring (reads the consumer's position).
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

impl<T> Consumer<T> {
    /// Whether the slot at the consumer's position is full.
    #[inline(always)]
    fn ready(&self, pos: usize) -> Option<&Slot<T>> {
        // SAFETY: our copies of the array's base and mask; our `Arc` keeps it alive.
        let slot = unsafe { slot_at(self.slots, self.mask, pos) };
        (slot.stamp.load(Ordering::Acquire) == pos.wrapping_add(1)).then_some(slot)
    }

    /// Takes the value of a full slot at the consumer's position, advancing it locally.
    ///
    /// # Safety
    /// `slot` must be the slot at `self.head` and its stamp must have been seen (with
    /// acquire) to be `self.head + 1`.
    #[inline(always)]
    unsafe fn take(&mut self, slot: *const Slot<T>) -> T {
        self.head = self.head.wrapping_add(1);
        // SAFETY: the caller saw the stamp for this position with acquire, which
        // synchronises with the producer's release after it wrote the value; the
        // producer will not write this slot again until we publish a position past it.
        // The value is moved out exactly once: our position moves on.
        unsafe { (*slot).value.with(|v| (*v).assume_init_read()) }
    }

    /// Takes the oldest item, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let slot: *const Slot<T> = self.ready(self.head)?;
        // SAFETY: `ready` checked the stamp of the slot at `self.head`.
        let v = unsafe { self.take(slot) };
        self.shared.head.store(self.head, Ordering::Release);
        Some(v)
    }

    /// Takes the oldest item, if any, without writing the consumer's position back:
    /// the producer sees the slot free only after the next [`Consumer::publish`] (or
    /// `pop`, or a drained batch, or the drop of this handle). For a caller that
    /// takes a few items from each of many rings and publishes once per ring.
    #[inline]
    pub fn pop_deferred(&mut self) -> Option<T> {
        let slot: *const Slot<T> = self.ready(self.head)?;
        // SAFETY: `ready` checked the stamp of the slot at `self.head`.
        Some(unsafe { self.take(slot) })
    }

    /// Writes the consumer's position back (after [`Consumer::pop_deferred`]).
    #[inline]
    pub fn publish(&self) {
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// An iterator taking items while there are any; the consumer's position is
    /// written back once, when it is dropped (one store for the whole batch).
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, T> {
        let start = self.head;
        Drain {
            consumer: self,
            start,
        }
    }

    /// Items currently in the ring (walks the stamps: O(len), not for the hot path).
    pub fn len(&self) -> usize {
        let mut n = 0;
        while n < self.shared.capacity() && self.ready(self.head.wrapping_add(n)).is_some() {
            n += 1;
        }
        n
    }

    /// Whether the ring is empty (one load of the next slot's stamp).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ready(self.head).is_none()
    }

    /// The most items the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Publishes the true position even if a `Drain` was leaked, so that the
        // last owner drops exactly the items still in the ring.
        self.shared.head.store(self.head, Ordering::Release);
    }
}

/// A batch taken by [`Consumer::drain`].
pub struct Drain<'a, T> {
    consumer: &'a mut Consumer<T>,
    start: usize,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        let head = self.consumer.head;
        let slot: *const Slot<T> = self.consumer.ready(head)?;
        // SAFETY: `ready` checked the stamp of the slot at the consumer's position.
        Some(unsafe { self.consumer.take(slot) })
    }
}

impl<T> Drop for Drain<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.consumer.head != self.start {
            self.consumer
                .shared
                .head
                .store(self.consumer.head, Ordering::Release);
        }
    }
}

impl<T> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("taken", &self.consumer.head.wrapping_sub(self.start))
            .finish()
    }
}

// SAFETY: a `Producer` is the only writer of the slots' values and stamps; moving it to
// another thread moves that role (`T: Send` is required to send the values).
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: a `Consumer` is the only reader of the slots' values and the only writer of
// `head`; moving it to another thread moves that role.
unsafe impl<T: Send> Send for Consumer<T> {}

/// The atomics and cells the ring is built on: std's, or loom's under `--cfg loom`.
mod sync {
    #[cfg(loom)]
    pub(super) use loom::cell::UnsafeCell;
    #[cfg(loom)]
    pub(super) use loom::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(loom)]
    pub(super) use loom::sync::Arc;

    #[cfg(not(loom))]
    pub(super) use std::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(not(loom))]
    pub(super) use std::sync::Arc;

    /// `std::cell::UnsafeCell` with loom's closure-based access API.
    #[cfg(not(loom))]
    #[derive(Debug)]
    pub(super) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub(super) const fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        #[inline(always)]
        pub(super) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(super) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel(2);
        assert_eq!(p.capacity(), MIN_CAPACITY);
        for i in 0..MIN_CAPACITY {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(99), Err(99));
        assert_eq!(p.len(), MIN_CAPACITY);
        assert_eq!(c.len(), MIN_CAPACITY);
        for i in 0..MIN_CAPACITY {
            assert_eq!(c.pop(), Some(i));
        }
        assert_eq!(c.pop(), None);
        assert!(c.is_empty() && p.is_empty());
        // Room again, across the wrap.
        p.push(7).unwrap();
        assert_eq!(c.pop(), Some(7));
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two() {
        assert_eq!(channel::<u8>(0).0.capacity(), MIN_CAPACITY);
        assert_eq!(channel::<u8>(1).0.capacity(), MIN_CAPACITY);
        assert_eq!(channel::<u8>(64).0.capacity(), 64);
        assert_eq!(channel::<u8>(65).1.capacity(), 128);
    }

    #[test]
    fn free_counts_room_and_rereads_only_when_full() {
        let (mut p, mut c) = channel::<u32>(8);
        assert_eq!(p.free(), 8);
        for i in 0..8 {
            p.push(i).unwrap();
        }
        assert_eq!(p.free(), 0);
        c.pop().unwrap();
        c.pop().unwrap();
        assert_eq!(p.free(), 2);
    }

    #[test]
    fn drain_takes_a_batch_and_publishes_once() {
        let (mut p, mut c) = channel(16);
        for i in 0..10 {
            p.push(i).unwrap();
        }
        let got: Vec<i32> = c.drain().take(4).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        // The producer sees the room the drain made once it is dropped.
        assert_eq!(p.len(), 6);
        assert_eq!(c.drain().collect::<Vec<_>>(), [4, 5, 6, 7, 8, 9]);
        assert_eq!(c.drain().next(), None);
        assert!(p.is_empty());
    }

    #[test]
    fn deferred_pops_free_slots_when_published() {
        let (mut p, mut c) = channel(8);
        for i in 0..8 {
            p.push(i).unwrap();
        }
        assert_eq!(c.pop_deferred(), Some(0));
        assert_eq!(c.pop_deferred(), Some(1));
        // Not written back yet: the producer still sees a full ring.
        assert_eq!(p.push(8), Err(8));
        c.publish();
        p.push(8).unwrap();
        p.push(9).unwrap();
        assert_eq!(p.push(10), Err(10));
        let rest: Vec<i32> = std::iter::from_fn(|| c.pop_deferred()).collect();
        assert_eq!(rest, [2, 3, 4, 5, 6, 7, 8, 9]);
        // The drop of the consumer publishes; nothing is left to drop twice.
        drop(c);
        assert!(p.is_empty());
    }

    #[test]
    fn leftover_items_are_dropped_once() {
        use std::rc::Rc;
        let marker = Rc::new(());
        {
            // Not Send, but the ring is only used on this thread here.
            let (mut p, mut c) = channel(8);
            for _ in 0..5 {
                p.push(marker.clone()).unwrap();
            }
            drop(c.pop());
            // A leaked drain must not make the ring drop what it already handed out.
            let mut d = c.drain();
            drop(d.next());
            std::mem::forget(d);
            assert_eq!(Rc::strong_count(&marker), 1 + 3);
        }
        assert_eq!(Rc::strong_count(&marker), 1);
    }

    #[test]
    fn crosses_threads_in_order() {
        let (mut p, mut c) = channel(8);
        let t = std::thread::spawn(move || {
            for i in 0..100_000u32 {
                let mut v = i;
                while let Err(back) = p.push(v) {
                    v = back;
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < 100_000 {
            let mut any = false;
            for v in c.drain() {
                assert_eq!(v, next);
                next += 1;
                any = true;
            }
            if !any {
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }
}

//! duplex - the channel between the dispatcher and one worker: each job goes out and its
//! completion comes back **in the same slot**.
//!
//! A request's round trip is the cost that bounds c-FCFS and DARC (a worker holds one
//! request at a time, so the next waits for the completion). Two one-way rings move two
//! lines per round trip: the job's slot to the worker, the completion's slot back, each
//! written where the other side last read it. Here the worker writes the completion
//! over the job it took, so one line goes to the worker and the same line comes back.
//! On the 2-vCPU VM `results/` was measured on, that round trip costs what the
//! one-line mailbox costs and a half to two thirds of what two lines cost
//! (`benches/ring.rs`: `duplex/1` against the two `mailbox`es; `results/README.md`).
//!
//! # Protocol
//! Slots are used in order of position (slot = position & mask). Every slot carries a
//! **stamp** saying what it holds for which position `p`:
//!
//! - `2p + 1`: the dispatcher wrote the job for `p` (release); the worker may take it;
//! - `2p + 2`: the worker wrote the completion for `p` over it (release); the dispatcher
//!   may take it, after which the slot is free for position `p + capacity`.
//!
//! A slot starts free, stamped as if the position one lap before its first had been
//! completed and collected: so a free slot's stamp is never the done stamp of the
//! position the dispatcher looks at next.
//!
//! Neither side ever reads the other's position: the dispatcher knows how many jobs
//! are out (`sent - collected`), so a push needs no shared read at all, and a look for
//! a completion costs nothing when no job is out (except through the `_in` methods
//! with `ONE`, below); the worker learns of a job from the slot it must read anyway. No
//! read-modify-write anywhere.
//!
//! # One slot
//! A channel of capacity 1 has one slot, which every position maps to. The
//! dispatcher's `_in` methods with `ONE = true` (unsafe: the caller vouches for the
//! single slot)
//! address it without masking and scaling the position, and a look for a completion
//! reads its stamp without first testing for a job out (the stamp rule above makes
//! the test redundant; with no job out, it is a line neither side writes). For c-FCFS,
//! DARC, SJF and EDF, whose every request is a round trip through this slot, that is
//! 8.4 of the dispatcher's instructions per request (`results/README.md`, *single
//! slot*).
//!
//! The worker completes jobs in the order it took them, and never more than it took
//! ([`WorkerEnd::complete`] panics otherwise: it would write a slot the dispatcher
//! owns). Completions therefore come back in job order.
//!
//! # Capacity
//! `channel(n)` lets exactly `n` jobs (at least 1) be out at once, in `n` slots rounded
//! up to a power of two. A worker that holds one job at a time (c-FCFS, DARC) gets a
//! single slot: one line, reused by every request. Slots are aligned to 64 bytes and
//! hold the job and the completion in one union, so that a slot is one line when the
//! stamp and the larger of the two fit in 64 bytes (they do for every transport here:
//! `workers`' tests check it). Packing the slots of deeper channels (d-FCFS) as a ring
//! does was tried (`results/bench/side-by-side/duplex/`): slower for d-FCFS in the VM's
//! slow mode (adjacent slots share lines that both sides write), mixed in its fast
//! mode on few samples; padding was kept.
//!
//! # Safety
//! `unsafe` here is confined to the slot array. A slot's payload is written by the
//! dispatcher only while the slot is free (it took the previous occupant's completion,
//! whose release store it saw with acquire), read and then overwritten by the worker only
//! after the job stamp (acquire pairs with the dispatcher's release), and read by the
//! dispatcher only after the completion stamp. `tests/duplex_loom.rs` checks the
//! orderings with loom (`RUSTFLAGS="--cfg loom" cargo test --release --test
//! duplex_loom`), and the unit tests run under Miri in CI.

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// Creates a channel letting `capacity` jobs (at least 1) be out at once: the
/// dispatcher's end and the worker's.
pub fn channel<J, C>(capacity: usize) -> (DispatchEnd<J, C>, WorkerEnd<J, C>) {
    channel_at(capacity, 0)
}

/// [`channel`] with both ends' positions starting at `start` (tests: wrap-around of
/// positions and stamps without 2^64 round trips).
#[cfg(any(test, loom))]
#[doc(hidden)]
pub fn channel_from<J, C>(capacity: usize, start: usize) -> (DispatchEnd<J, C>, WorkerEnd<J, C>) {
    channel_at(capacity, start)
}

fn channel_at<J, C>(capacity: usize, start: usize) -> (DispatchEnd<J, C>, WorkerEnd<J, C>) {
    let limit = capacity.max(1);
    let len = limit
        .checked_next_power_of_two()
        .expect("duplex capacity overflows usize");
    let shared = Arc::new(Shared {
        slots: Slots::new(len, start),
        sent: AtomicUsize::new(start),
        collected: AtomicUsize::new(start),
        taken: AtomicUsize::new(start),
    });
    let (slots, mask) = (shared.slots.ptr, len - 1);
    (
        DispatchEnd {
            shared: shared.clone(),
            slots,
            mask,
            limit,
            sent: start,
            collected: start,
        },
        WorkerEnd {
            shared,
            slots,
            mask,
            limit,
            taken: start,
            completed: start,
        },
    )
}

#[inline(always)]
fn job_stamp(pos: usize) -> usize {
    pos.wrapping_mul(2).wrapping_add(1)
}

#[inline(always)]
fn done_stamp(pos: usize) -> usize {
    pos.wrapping_mul(2).wrapping_add(2)
}

/// A job, or the completion written over it (`repr(C)`: both at offset 0).
#[repr(C)]
union Payload<J, C> {
    job: ManuallyDrop<J>,
    done: ManuallyDrop<C>,
}

/// A slot: its stamp and its payload, on one line when they fit.
#[repr(C, align(64))]
struct Slot<J, C> {
    stamp: AtomicUsize,
    payload: UnsafeCell<MaybeUninit<Payload<J, C>>>,
}

impl<J, C> Slot<J, C> {
    /// Writes `value`, a `J` (a job) or a `C` (its completion), into the payload.
    ///
    /// # Safety
    /// `T` must be `J` or `C`. The caller must own the payload (see the protocol), and it
    /// must not hold a value not yet read (that one would be leaked).
    #[inline(always)]
    unsafe fn write<T>(&self, value: T) {
        // SAFETY: the caller owns the payload; `T` is one of the union's fields, each
        // `ManuallyDrop<T>` (which is `T` in memory) at offset 0 (`repr(C)`), so the
        // payload is large and aligned enough for it.
        self.payload
            .with_mut(|p| unsafe { p.cast::<T>().write(value) });
    }

    /// Moves the payload out as a `T`.
    ///
    /// # Safety
    /// The caller must own the payload, and it must hold a `T` written by
    /// [`Slot::write`] and not yet read.
    #[inline(always)]
    unsafe fn read<T>(&self) -> T {
        // SAFETY: as in `write`; the value was written as a `T` and is moved out once.
        self.payload.with(|p| unsafe { p.cast::<T>().read() })
    }
}

/// The slot array, in its own lines (64-byte slots, 128-byte-aligned allocation: the
/// adjacent-line prefetcher moves lines in pairs, so no other data shares a pair).
struct Slots<J, C> {
    ptr: NonNull<Slot<J, C>>,
    len: usize,
}

impl<J, C> Slots<J, C> {
    fn layout(len: usize) -> Layout {
        Layout::array::<Slot<J, C>>(len)
            .and_then(|l| l.align_to(128))
            .expect("duplex too large")
            .pad_to_align()
    }

    /// `len` free slots for positions from `start` on: each stamped as if the
    /// position one lap before its first had been completed and collected.
    fn new(len: usize, start: usize) -> Self {
        assert!(len > 0);
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (`len > 0` slots of at least 64 bytes).
        let raw = unsafe { alloc::alloc(layout) }.cast::<Slot<J, C>>();
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        for pos in (0..len).map(|k| start.wrapping_add(k)) {
            // SAFETY: `pos & (len - 1) < len` and the allocation holds `len` slots,
            // suitably aligned; each is written once (`len` consecutive positions).
            unsafe {
                ptr.as_ptr().add(pos & (len - 1)).write(Slot {
                    stamp: AtomicUsize::new(done_stamp(pos.wrapping_sub(len))),
                    payload: UnsafeCell::new(MaybeUninit::uninit()),
                })
            };
        }
        Slots { ptr, len }
    }

    #[inline(always)]
    fn get(&self, pos: usize) -> &Slot<J, C> {
        // SAFETY: `pos & (len - 1)` is below `len` (a power of two); the slots were
        // initialised in `new` and live until `drop`.
        unsafe { &*self.ptr.as_ptr().add(pos & (self.len - 1)) }
    }
}

impl<J, C> Drop for Slots<J, C> {
    fn drop(&mut self) {
        // SAFETY: the `len` slots were initialised in `new` and are dropped once, here
        // (their payloads are `MaybeUninit`: `Shared::drop` dropped the live ones); the
        // memory is freed with the layout it was allocated with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len));
        }
    }
}

/// What both ends share: the slots, and the positions each end publishes when it drops
/// (for the last one to drop what is left).
struct Shared<J, C> {
    slots: Slots<J, C>,
    sent: AtomicUsize,
    collected: AtomicUsize,
    taken: AtomicUsize,
}

// SAFETY: `Shared` hands jobs from one thread to another and completions back, so it is
// `Send` and `Sync` exactly when both are `Send`. Each payload is accessed by one
// thread at a time, as argued at each access (the stamp protocol).
unsafe impl<J: Send, C: Send> Send for Shared<J, C> {}
// SAFETY: as above.
unsafe impl<J: Send, C: Send> Sync for Shared<J, C> {}

impl<J, C> Drop for Shared<J, C> {
    fn drop(&mut self) {
        // Both ends are gone (this is the last `Arc`; its drop synchronises with theirs)
        // and each published its positions. Between the dispatcher's `collected` and
        // `sent`, a slot holds a completion not collected (done stamp), a job not taken
        // (job stamp, at or past the worker's `taken`), or nothing (a job taken and never
        // completed: the worker moved it out).
        let sent = self.sent.load(Ordering::Acquire);
        let taken = self.taken.load(Ordering::Acquire);
        let mut pos = self.collected.load(Ordering::Acquire);
        while pos != sent {
            let slot = self.slots.get(pos);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == done_stamp(pos) {
                // SAFETY: a completion for `pos` the dispatcher did not collect; no other
                // handle exists, so it is dropped exactly once, here.
                drop(unsafe { slot.read::<C>() });
            } else if stamp == job_stamp(pos) && (pos.wrapping_sub(taken) as isize) >= 0 {
                // SAFETY: a job for `pos` the worker did not take; as above.
                drop(unsafe { slot.read::<J>() });
            }
            pos = pos.wrapping_add(1);
        }
    }
}

/// The dispatcher's end: sends jobs, collects their completions.
pub struct DispatchEnd<J, C> {
    shared: Arc<Shared<J, C>>,
    /// `shared.slots`' base and mask, copied here so that a push or a look for a
    /// completion reads only this handle and the slot.
    slots: NonNull<Slot<J, C>>,
    mask: usize,
    /// The most jobs out at once (at most `mask + 1`).
    limit: usize,
    /// Next position to send a job to.
    sent: usize,
    /// Next position to collect a completion from.
    collected: usize,
}

/// The worker's end: takes jobs, completes them in the same slots.
pub struct WorkerEnd<J, C> {
    shared: Arc<Shared<J, C>>,
    slots: NonNull<Slot<J, C>>,
    mask: usize,
    limit: usize,
    /// Next position to take a job from.
    taken: usize,
    /// Next position to complete.
    completed: usize,
}

/// The slot for `pos` in the array at `slots` with `mask`.
///
/// # Safety
/// `slots` and `mask` must be a live [`Shared`]'s (a handle's copies, while the handle
/// holds its `Arc`).
#[inline(always)]
unsafe fn slot_at<'a, J, C>(slots: NonNull<Slot<J, C>>, mask: usize, pos: usize) -> &'a Slot<J, C> {
    // SAFETY: `pos & mask` is below the array's length; the caller guarantees the array
    // is alive, and it was initialised in `Slots::new`.
    unsafe { &*slots.as_ptr().add(pos & mask) }
}

impl<J, C> DispatchEnd<J, C> {
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<J, C> {
        // SAFETY: our copies of the array's base and mask; our `Arc` keeps it alive.
        unsafe { slot_at(self.slots, self.mask, pos) }
    }

    /// The slot for `pos`; with `ONE`, the first slot, whatever `pos` (the caller's
    /// promise that the channel has only that one: see [`Self::is_single`]). Either is
    /// a live slot; only the protocol relies on `ONE` being true.
    #[inline(always)]
    fn slot_in<const ONE: bool>(&self, pos: usize) -> &Slot<J, C> {
        if ONE {
            debug_assert_eq!(self.mask, 0, "a single-slot access to a wider channel");
            // SAFETY: the array has at least one slot; our `Arc` keeps it alive.
            unsafe { &*self.slots.as_ptr() }
        } else {
            self.slot(pos)
        }
    }

    /// Whether the channel has a single slot (a capacity of 1, as c-FCFS, DARC, SJF
    /// and EDF ask): then every position maps to it, and the `_in` methods with `ONE`, which skip the
    /// masking and scaling of the position, may be used.
    pub fn is_single(&self) -> bool {
        self.mask == 0
    }

    /// Sends `job`, or hands it back if `capacity` jobs are out (their completions not
    /// collected). Reads nothing the worker writes.
    #[inline]
    pub fn push(&mut self, job: J) -> Result<(), J> {
        // SAFETY: `false`: any channel.
        unsafe { self.push_in::<false>(job) }
    }

    /// [`push`](Self::push), with `ONE` addressing the channel's single slot directly
    /// (the `_in` methods: see *One slot* in the module docs).
    ///
    /// # Safety
    /// With `ONE`, the channel must have a single slot ([`Self::is_single`]);
    /// otherwise the job could overwrite one still out.
    #[inline]
    pub unsafe fn push_in<const ONE: bool>(&mut self, job: J) -> Result<(), J> {
        if self.sent.wrapping_sub(self.collected) >= self.limit {
            return Err(job);
        }
        // SAFETY: fewer than `limit` jobs are out (tested just above); `ONE`: the
        // caller's promise.
        unsafe { self.send::<ONE>(job) };
        Ok(())
    }

    /// Writes `job` into the slot for position `sent` and publishes it to the worker.
    ///
    /// # Safety
    /// Fewer than `limit` jobs must be out. The slot is then free: fewer than
    /// `limit <= slots` jobs are out, so either it was never used (first lap: no job
    /// stamp for any position maps to it yet) or we collected the completion of its
    /// previous occupant, after seeing the worker's release of it with acquire; the
    /// worker will not touch it again until the stamp below says there is a job.
    /// With `ONE`, the channel must have a single slot ([`Self::is_single`]).
    #[inline(always)]
    unsafe fn send<const ONE: bool>(&mut self, job: J) {
        debug_assert!(self.sent.wrapping_sub(self.collected) < self.limit);
        let slot = self.slot_in::<ONE>(self.sent);
        // SAFETY: the slot is free (the caller's promise, above).
        unsafe { slot.write(job) };
        slot.stamp.store(job_stamp(self.sent), Ordering::Release);
        self.sent = self.sent.wrapping_add(1);
    }

    /// The slot of the oldest completion, if it is there (its done stamp seen with
    /// acquire). No memory access when no job is out, except with `ONE`: then the
    /// stamp alone says (a free slot's is the done stamp of `collected - 1`; the
    /// module docs), which saves the test where it matters, a job being out under
    /// load. (Without `ONE` dropping the test saved nothing: the compiler spent the
    /// 3 instructions elsewhere.)
    #[inline(always)]
    fn completed<const ONE: bool>(&self) -> Option<&Slot<J, C>> {
        if !ONE && self.collected == self.sent {
            return None;
        }
        let slot = self.slot_in::<ONE>(self.collected);
        (slot.stamp.load(Ordering::Acquire) == done_stamp(self.collected)).then_some(slot)
    }

    /// Collects the oldest completion, if it is there. Costs no memory access at all
    /// when no job is out.
    #[inline]
    pub fn pop(&mut self) -> Option<C> {
        let slot = self.completed::<false>()?;
        // SAFETY: the done stamp for `collected`, seen with acquire, says the worker
        // wrote the completion and is done with the slot; it is read once (our position
        // moves on), and the slot is ours until we send a job into it.
        let c = unsafe { slot.read::<C>() };
        self.collected = self.collected.wrapping_add(1);
        Some(c)
    }

    /// Collects the oldest completion, if it is there, and hands it to `then`, which
    /// may answer with the next job: that job is sent at once, with no capacity check
    /// (the completion just collected freed a slot). `None` when there was no
    /// completion; otherwise whether a job was sent, or what `then` said instead.
    ///
    /// This is [`pop`](Self::pop) then [`push`](Self::push) for the dispatcher's refill
    /// of a freed worker, less the push's test for room.
    #[inline]
    pub fn pop_then<T>(&mut self, then: impl FnOnce(C) -> Result<J, T>) -> Option<Result<(), T>> {
        // SAFETY: `false`: any channel.
        unsafe { self.pop_then_in::<false, T>(then) }
    }

    /// [`pop_then`](Self::pop_then), with `ONE` addressing the channel's single slot
    /// directly and looking at its stamp without testing for a job out.
    ///
    /// # Safety
    /// With `ONE`, the channel must have a single slot ([`Self::is_single`]);
    /// otherwise the next job could overwrite one still out.
    #[inline(always)]
    pub unsafe fn pop_then_in<const ONE: bool, T>(
        &mut self,
        then: impl FnOnce(C) -> Result<J, T>,
    ) -> Option<Result<(), T>> {
        // Not through `pop`: the compiler then tested the completion read for its
        // `Option`'s `None` niche (2 instructions per request).
        let slot = self.completed::<ONE>()?;
        // SAFETY: as in `pop`.
        let c = unsafe { slot.read::<C>() };
        self.collected = self.collected.wrapping_add(1);
        // A panic in `then` leaves the channel consistent: the completion is taken.
        let job = match then(c) {
            Ok(job) => job,
            Err(t) => return Some(Err(t)),
        };
        // SAFETY: at most `limit` jobs were out before the completion above was
        // collected, and nothing was sent since: fewer than `limit` are out. `ONE`: the
        // caller's promise.
        unsafe { self.send::<ONE>(job) };
        Some(Ok(()))
    }

    /// Starts loading the slot the oldest completion will come back in (with no job
    /// out, the slot the next job goes to): a hint that changes nothing else. A
    /// dispatcher that will look at many channels calls it on all of them first, so
    /// that the loads overlap. Unconditional: a test for a job out cost more
    /// instructions per request than the few needless loads of idle channels.
    #[inline]
    pub fn prefetch(&self) {
        self.prefetch_in::<false>()
    }

    /// [`prefetch`](Self::prefetch), with `ONE` loading the channel's single slot
    /// directly (on a wider channel, a hint about the wrong slot: harmless, and caught
    /// by a debug assertion).
    #[inline(always)]
    pub fn prefetch_in<const ONE: bool>(&self) {
        #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
        {
            let p: *const Slot<J, C> = self.slot_in::<ONE>(self.collected);
            // SAFETY: a prefetch is a hint that cannot fault, whatever the address; SSE
            // is part of x86_64. (Newer toolchains declare the intrinsic safe.)
            #[allow(unused_unsafe)]
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
            };
        }
    }

    /// Whether a completion is waiting (one load of a stamp, none when no job is out).
    #[inline]
    pub fn has_completion(&self) -> bool {
        self.completed::<false>().is_some()
    }

    /// Jobs sent whose completions were not collected yet.
    #[inline]
    pub fn outstanding(&self) -> usize {
        self.sent.wrapping_sub(self.collected)
    }

    /// The most jobs out at once.
    pub fn capacity(&self) -> usize {
        self.limit
    }
}

impl<J, C> WorkerEnd<J, C> {
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<J, C> {
        // SAFETY: our copies of the array's base and mask; our `Arc` keeps it alive.
        unsafe { slot_at(self.slots, self.mask, pos) }
    }

    /// Takes the next job, if the dispatcher sent it.
    #[inline]
    pub fn take(&mut self) -> Option<J> {
        let slot = self.slot(self.taken);
        if slot.stamp.load(Ordering::Acquire) != job_stamp(self.taken) {
            return None;
        }
        // SAFETY: the job stamp for `taken`, seen with acquire, says the dispatcher wrote
        // the job; it will not touch the slot until our done stamp. Moved out once: our
        // position moves on.
        let j = unsafe { slot.read::<J>() };
        self.taken = self.taken.wrapping_add(1);
        Some(j)
    }

    /// Completes the oldest job taken and not completed, in its slot.
    ///
    /// # Panics
    /// If every job taken is already completed: there is no slot to write to.
    #[inline]
    pub fn complete(&mut self, done: C) {
        assert!(
            self.completed != self.taken,
            "duplex: complete() without a job taken"
        );
        let slot = self.slot(self.completed);
        // SAFETY: `completed < taken`: we took this slot's job (moved it out), and the
        // dispatcher does not touch the slot until the done stamp below.
        unsafe { slot.write(done) };
        slot.stamp
            .store(done_stamp(self.completed), Ordering::Release);
        self.completed = self.completed.wrapping_add(1);
    }

    /// Whether no job is waiting to be taken (one load of a stamp).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slot(self.taken).stamp.load(Ordering::Acquire) != job_stamp(self.taken)
    }

    /// Jobs taken and not completed yet.
    pub fn held(&self) -> usize {
        self.taken.wrapping_sub(self.completed)
    }

    /// The most jobs out at once.
    pub fn capacity(&self) -> usize {
        self.limit
    }
}

/// The bytes one slot of a channel for `J` and `C` takes (64 when the stamp and the
/// larger of the two fit in one line).
pub fn slot_size<J, C>() -> usize {
    std::mem::size_of::<Slot<J, C>>()
}

impl<J, C> Drop for DispatchEnd<J, C> {
    fn drop(&mut self) {
        self.shared.sent.store(self.sent, Ordering::Relaxed);
        self.shared
            .collected
            .store(self.collected, Ordering::Relaxed);
    }
}

impl<J, C> Drop for WorkerEnd<J, C> {
    fn drop(&mut self) {
        self.shared.taken.store(self.taken, Ordering::Relaxed);
    }
}

impl<J, C> fmt::Debug for DispatchEnd<J, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchEnd")
            .field("capacity", &self.capacity())
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl<J, C> fmt::Debug for WorkerEnd<J, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerEnd")
            .field("capacity", &self.capacity())
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

// SAFETY: a `DispatchEnd` is the only writer of jobs and job stamps and the only reader
// of completions; moving it to another thread moves that role (both `J` and `C` cross).
unsafe impl<J: Send, C: Send> Send for DispatchEnd<J, C> {}
// SAFETY: a `WorkerEnd` is the only reader of jobs and writer of completions and done
// stamps; moving it to another thread moves that role.
unsafe impl<J: Send, C: Send> Send for WorkerEnd<J, C> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn jobs_go_out_and_completions_come_back_in_order() {
        let (mut d, mut w) = channel::<u32, String>(4);
        assert_eq!(d.capacity(), 4);
        assert_eq!(d.pop(), None);
        assert!(w.is_empty());
        for i in 0..4 {
            d.push(i).unwrap();
        }
        // Full: the worker holds as many jobs as the channel does.
        assert_eq!(d.push(9), Err(9));
        assert_eq!(d.outstanding(), 4);
        assert_eq!(w.take(), Some(0));
        assert_eq!(w.take(), Some(1));
        assert_eq!(w.held(), 2);
        // Taken is not completed: nothing to collect, and no room yet.
        assert_eq!(d.pop(), None);
        assert!(!d.has_completion());
        assert_eq!(d.push(9), Err(9));
        w.complete("0".into());
        assert!(d.has_completion());
        assert_eq!(d.pop().as_deref(), Some("0"));
        d.push(4).unwrap();
        w.complete("1".into());
        for i in 2..5 {
            assert_eq!(w.take(), Some(i));
            w.complete(i.to_string());
        }
        assert_eq!(w.take(), None);
        let back: Vec<String> = std::iter::from_fn(|| d.pop()).collect();
        assert_eq!(back, ["1", "2", "3", "4"]);
        assert_eq!(d.outstanding(), 0);
    }

    #[test]
    fn one_slot_round_trips_across_many_laps() {
        let (mut d, mut w) = channel::<u64, u64>(1);
        assert_eq!(d.capacity(), 1);
        for i in 0..1000 {
            d.push(i).unwrap();
            assert_eq!(d.push(i), Err(i));
            let j = w.take().unwrap();
            assert_eq!(w.take(), None);
            w.complete(j * 2);
            assert_eq!(d.pop(), Some(i * 2));
            assert_eq!(d.pop(), None);
        }
    }

    /// The single-slot entry points look at the one slot without testing for a job out:
    /// a free slot's stamp must never read as the completion looked for, including
    /// before its first use and where the stamps wrap. (`start = usize::MAX` is the
    /// case that catches initial stamps of 0: the done stamp of that position.)
    #[test]
    fn the_single_slot_path_round_trips_and_finds_nothing_in_a_free_slot() {
        for start in [0, usize::MAX - 2, usize::MAX, usize::MAX / 2] {
            let (mut d, mut w) = channel_from::<u64, u64>(1, start);
            assert!(d.is_single());
            let look = |d: &mut DispatchEnd<u64, u64>| {
                // SAFETY: `channel_from(1, ..)` has one slot.
                unsafe { d.pop_then_in::<true, _>(Err::<u64, u64>) }
            };
            if look(&mut d).is_some() {
                // The collect moved `collected` past `sent`: the ends' drop would walk
                // 2^64 positions. Leak them and fail.
                std::mem::forget((d, w));
                panic!("start {start}: a never-used slot read as completed");
            }
            // SAFETY: as above.
            unsafe { d.push_in::<true>(7) }.unwrap();
            assert_eq!(
                // SAFETY: as above.
                unsafe { d.push_in::<true>(8) },
                Err(8),
                "one job out of one"
            );
            assert_eq!(look(&mut d), None, "start {start}: a job not completed");
            for i in 0..5u64 {
                let j = w.take().unwrap();
                assert_eq!(w.take(), None);
                w.complete(j + 100);
                // Each completion refills the slot it freed.
                // SAFETY: as above.
                let sent = unsafe {
                    d.pop_then_in::<true, _>(|c| {
                        assert_eq!(c, j + 100);
                        Ok::<u64, ()>(i)
                    })
                };
                assert_eq!(sent, Some(Ok(())), "start {start}, lap {i}");
                assert_eq!(d.outstanding(), 1);
            }
            let last = w.take().unwrap();
            w.complete(last + 100);
            assert_eq!(look(&mut d), Some(Err(104)));
            assert_eq!(look(&mut d), None, "start {start}: a collected slot");
            assert_eq!(d.outstanding(), 0);
        }
        assert!(!channel::<u8, u8>(2).0.is_single());
        assert!(channel::<u8, u8>(0).0.is_single());
    }

    #[test]
    fn a_collected_completion_refills_its_worker_even_when_full() {
        // Three jobs out of three, across the positions' wrap: the channel is full,
        // yet each completion collected makes room for exactly the job `pop_then` sends.
        let (mut d, mut w) = channel_from::<u64, u64>(3, usize::MAX - 1);
        for i in 0..3 {
            d.push(i).unwrap();
        }
        assert_eq!(d.pop_then(Err::<u64, _>), None);
        for i in 3..10 {
            let j = w.take().unwrap();
            assert_eq!(j, if i < 6 { i - 3 } else { 1000 + i - 3 });
            w.complete(j + 100);
            assert_eq!(
                d.pop_then(|c| {
                    assert_eq!(c, j + 100);
                    Ok::<_, ()>(1000 + i)
                }),
                Some(Ok(()))
            );
            assert_eq!(d.outstanding(), 3);
            assert_eq!(d.push(99), Err(99));
        }
        // The jobs sent went out in order behind the ones already there.
        let jobs: Vec<u64> = std::iter::from_fn(|| w.take()).collect();
        assert_eq!(jobs, [1007, 1008, 1009]);
        // A completion the closure declines is collected all the same.
        w.complete(7);
        assert_eq!(d.pop_then(|c| Err::<u64, _>(c * 2)), Some(Err(14)));
        assert_eq!(d.outstanding(), 2);
    }

    #[test]
    fn capacity_is_exact_and_at_least_one() {
        assert_eq!(channel::<u8, u8>(0).0.capacity(), 1);
        assert_eq!(channel::<u8, u8>(64).1.capacity(), 64);
        // Three slots' worth out of four: the fourth push is refused.
        let (mut d, mut w) = channel::<u8, u8>(3);
        assert_eq!(d.capacity(), 3);
        for i in 0..3 {
            d.push(i).unwrap();
        }
        assert_eq!(d.push(3), Err(3));
        let j = w.take().unwrap();
        w.complete(j);
        d.pop().unwrap();
        d.push(3).unwrap();
        assert_eq!(d.push(4), Err(4));
    }

    #[test]
    fn slots_are_one_line_for_small_payloads() {
        assert_eq!(slot_size::<[u64; 2], [u64; 4]>(), 64);
        assert_eq!(slot_size::<[u64; 7], [u64; 2]>(), 64);
        assert_eq!(slot_size::<[u64; 2], [u64; 8]>(), 128);
    }

    #[test]
    fn positions_and_stamps_wrap_around() {
        // Positions cross usize::MAX (and stamps 2p + 1, 2p + 2 wrap twice as early,
        // at p = 2^63) over a few laps of a 4-slot channel, with jobs out across it.
        for start in [usize::MAX - 5, usize::MAX / 2 - 3] {
            let (mut d, mut w) = channel_from::<u64, u64>(4, start);
            let mut next_job = 0u64;
            let mut next_done = 0u64;
            for _ in 0..6 {
                while d.push(next_job).is_ok() {
                    next_job += 1;
                }
                for _ in 0..3 {
                    let j = w.take().unwrap();
                    w.complete(j + 1000);
                }
                while let Some(c) = d.pop() {
                    assert_eq!(c, next_done + 1000);
                    next_done += 1;
                }
                assert_eq!(d.outstanding(), 1);
            }
            assert_eq!(next_job, 4 + 5 * 3);
        }
    }

    #[test]
    fn leftovers_across_the_wrap_are_dropped_once() {
        use std::rc::Rc;
        let marker = Rc::new(());
        {
            let (mut d, mut w) = channel_from::<Rc<()>, Rc<()>>(4, usize::MAX - 1);
            for _ in 0..4 {
                d.push(marker.clone()).unwrap();
            }
            let j = w.take().unwrap();
            w.complete(j);
            drop(w.take()); // taken, never completed
            assert_eq!(Rc::strong_count(&marker), 1 + 3);
        }
        assert_eq!(Rc::strong_count(&marker), 1);
    }

    #[test]
    #[should_panic(expected = "without a job taken")]
    fn completing_more_than_was_taken_panics() {
        let (mut d, mut w) = channel::<u8, u8>(2);
        d.push(1).unwrap();
        w.take().unwrap();
        w.complete(1);
        w.complete(2);
    }

    #[test]
    fn what_is_left_is_dropped_once() {
        use std::rc::Rc;
        let marker = Rc::new(());
        for worker_first in [false, true] {
            {
                // Not Send, but used on this thread only. Jobs 0..8 sent; 0 and 1
                // collected; 2 and 3 completed, not collected; 4 taken and held
                // (dropped by the worker); 5..8 waiting.
                let (mut d, mut w) = channel::<Rc<()>, Rc<()>>(8);
                for _ in 0..8 {
                    d.push(marker.clone()).unwrap();
                }
                for _ in 0..4 {
                    let j = w.take().unwrap();
                    w.complete(j);
                }
                drop(d.pop());
                drop(d.pop());
                drop(w.take());
                assert_eq!(Rc::strong_count(&marker), 1 + 2 + 3);
                if worker_first {
                    drop(w);
                    drop(d);
                } else {
                    drop(d);
                    drop(w);
                }
            }
            assert_eq!(Rc::strong_count(&marker), 1);
        }
    }
}

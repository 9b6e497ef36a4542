//! queues.rs - per-type bounded FIFO queues owned by the driver, and the view of them
//! that policies decide on.

use std::mem::MaybeUninit;

use super::TypeIdx;
use crate::time::Cycles;

/// Most request types: one bit each in [`QueueState::nonempty`].
pub const MAX_TYPES: usize = 64;

/// What a policy may see of the queues: which types wait, how many, and since when.
///
/// Fixed-size arrays indexed by `ty % MAX_TYPES` (the index itself, every type being
/// below [`MAX_TYPES`]): reading a head's arrival time takes no bounds check.
#[derive(Clone)]
pub struct QueueState {
    nonempty: u64,
    n_types: usize,
    head_arrival: [Cycles; MAX_TYPES],
    len: [u32; MAX_TYPES],
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("nonempty", &format_args!("{:#b}", self.nonempty))
            .field("head_arrival", &&self.head_arrival[..self.n_types])
            .field("len", &&self.len[..self.n_types])
            .finish()
    }
}

impl QueueState {
    fn new(n_types: usize) -> QueueState {
        assert!(n_types <= MAX_TYPES, "at most {MAX_TYPES} request types");
        QueueState {
            nonempty: 0,
            n_types,
            head_arrival: [0; MAX_TYPES],
            len: [0; MAX_TYPES],
        }
    }

    /// Number of request types.
    pub fn n_types(&self) -> usize {
        self.n_types
    }

    /// Bit `t` is set when type `t` has a request waiting.
    #[inline]
    pub fn nonempty(&self) -> u64 {
        self.nonempty
    }

    /// Requests of type `ty` waiting.
    #[inline]
    pub fn len(&self, ty: TypeIdx) -> usize {
        assert!(ty < self.n_types, "no request type {ty}");
        self.len[ty] as usize
    }

    /// Whether no request of any type waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.nonempty == 0
    }

    /// Arrival time of the oldest request of type `ty`, if one waits.
    #[inline]
    pub fn head_arrival(&self, ty: TypeIdx) -> Option<Cycles> {
        (ty < MAX_TYPES && self.nonempty & (1 << ty) != 0).then(|| self.head_arrival[ty])
    }

    /// Arrival time of the head request of `ty`, which must have one waiting (else the
    /// value is stale).
    #[inline]
    pub(super) fn waiting_since(&self, ty: TypeIdx) -> Cycles {
        self.head_arrival[ty % MAX_TYPES]
    }

    /// The type whose head request arrived first (ties: lowest index).
    #[inline]
    pub fn oldest(&self) -> Option<TypeIdx> {
        self.least(|t| self.head_arrival[t % MAX_TYPES])
    }

    /// The waiting type of least `key` (ties: lowest index); `key` is given types
    /// below [`MAX_TYPES`] that have a request waiting.
    #[inline]
    pub fn least<K: Ord>(&self, key: impl Fn(TypeIdx) -> K) -> Option<TypeIdx> {
        let mut bits = self.nonempty;
        if bits == 0 {
            return None;
        }
        let mut best = bits.trailing_zeros() as usize;
        let mut best_key = key(best);
        bits &= bits - 1;
        while bits != 0 {
            let t = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let k = key(t);
            if k < best_key {
                (best, best_key) = (t, k);
            }
        }
        Some(best)
    }
}

/// One bounded FIFO per request type, holding `T` (a packet handle in the daemon, a
/// request record in the simulator) with its arrival time.
///
/// Each type's FIFO is a ring of a power-of-two number of slots (at least the
/// capacity) in one array shared by all types, with its head position here and its
/// length in the [`QueueState`]: a push or a pop is a few loads and stores, inline,
/// with no growth check and no bounds check. Every per-type array has [`MAX_TYPES`]
/// entries; a type index at or above that is refused (push gives the item back, pop
/// finds nothing), and a type below it that does not exist has capacity 0, so a push
/// to it is refused too and its length stays 0. Hence the invariant
/// the unchecked slot accesses rely on: **`len[t] > 0` only for a type `t` below
/// `n_types`, and then the `len[t]` slots from its head hold initialised items.**
pub struct TypedQueues<T> {
    state: QueueState,
    /// Head position of each type's ring.
    head: [u32; MAX_TYPES],
    /// Requests each type may queue: the capacity, or 0 for a type that does not exist.
    cap: [u32; MAX_TYPES],
    /// Where each type's ring starts in `slots` (`ty << log2(ring)`; 0 for the rest).
    base: [u32; MAX_TYPES],
    /// Type `t`'s ring is `slots[base[t]..][..mask + 1]`; a slot's item is initialised
    /// exactly while it is queued.
    slots: Box<[(Cycles, MaybeUninit<T>)]>,
    mask: u32,
    capacity: u32,
}

impl<T> std::fmt::Debug for TypedQueues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedQueues")
            .field("state", &self.state)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> TypedQueues<T> {
    /// `n_types` queues of `capacity` requests each, allocated up front.
    pub fn new(n_types: usize, capacity: usize) -> TypedQueues<T> {
        let capacity = u32::try_from(capacity).expect("queue capacity fits in 32 bits");
        let ring = capacity
            .max(1)
            .checked_next_power_of_two()
            .expect("queue capacity at most 2^31");
        let state = QueueState::new(n_types);
        let total = u32::try_from(n_types)
            .ok()
            .and_then(|n| n.checked_mul(ring))
            .expect("queue slots fit in 32 bits");
        let mut cap = [0; MAX_TYPES];
        let mut base = [0; MAX_TYPES];
        for t in 0..n_types {
            cap[t] = capacity;
            base[t] = t as u32 * ring;
        }
        TypedQueues {
            state,
            head: [0; MAX_TYPES],
            cap,
            base,
            slots: (0..total).map(|_| (0, MaybeUninit::uninit())).collect(),
            mask: ring - 1,
            capacity,
        }
    }

    /// What policies see.
    #[inline]
    pub fn state(&self) -> &QueueState {
        &self.state
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Queues `item` at the tail of `ty`'s queue, or gives it back if the queue is full
    /// (or `ty` is not a type: its capacity is 0).
    #[inline]
    pub fn push(&mut self, ty: TypeIdx, arrival: Cycles, item: T) -> Result<(), T> {
        if ty >= MAX_TYPES {
            return Err(item);
        }
        let len = self.state.len[ty];
        if len >= self.cap[ty] {
            return Err(item);
        }
        let i = (self.base[ty] + (self.head[ty].wrapping_add(len) & self.mask)) as usize;
        debug_assert!(i < self.slots.len());
        // SAFETY: `cap[ty] > 0`, so `ty < n_types` and its ring, `slots[base[ty]..]
        // [..mask + 1]`, is inside `slots` (`n_types` rings); `i` is in it. The slot is
        // past the `len < capacity <= ring` queued ones, so it holds no item: the write
        // overwrites nothing that needs dropping.
        let slot = unsafe { self.slots.get_unchecked_mut(i) };
        slot.0 = arrival;
        slot.1.write(item);
        if len == 0 {
            self.state.nonempty |= 1 << ty;
            self.state.head_arrival[ty] = arrival;
        }
        self.state.len[ty] = len + 1;
        Ok(())
    }

    /// Takes the oldest request of type `ty`.
    #[inline(always)]
    pub fn pop(&mut self, ty: TypeIdx) -> Option<(Cycles, T)> {
        if ty >= MAX_TYPES {
            return None;
        }
        let len = self.state.len[ty];
        if len == 0 {
            return None;
        }
        let head = self.head[ty];
        let base = self.base[ty];
        debug_assert!(((base + head) as usize) < self.slots.len());
        // SAFETY: `len > 0`, so `ty < n_types` (the invariant above) and the slot at its
        // head is inside `slots` and holds an initialised item, which is moved out
        // exactly once: the head moves past it and the length drops below.
        let (arrival, item) = unsafe {
            let slot = self.slots.get_unchecked((base + head) as usize);
            (slot.0, slot.1.assume_init_read())
        };
        let head = head.wrapping_add(1) & self.mask;
        self.head[ty] = head;
        self.state.len[ty] = len - 1;
        if len == 1 {
            self.state.nonempty &= !(1 << ty);
        } else {
            // SAFETY: the ring's next slot, inside `slots` as above (its arrival time
            // is plain data, initialised for every slot).
            self.state.head_arrival[ty] =
                unsafe { self.slots.get_unchecked((base + head) as usize).0 };
        }
        Some((arrival, item))
    }

    /// Total requests waiting.
    pub fn total_len(&self) -> usize {
        self.state.len.iter().map(|&l| l as usize).sum()
    }
}

impl<T> Drop for TypedQueues<T> {
    /// Drops the queued items, oldest first per type. Should an item's own drop panic,
    /// the items after it are leaked (never dropped twice: each is popped, and the
    /// state updated, before it is dropped).
    fn drop(&mut self) {
        for ty in 0..self.state.n_types {
            while self.pop(ty).is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_per_type_with_state() {
        let mut q = TypedQueues::new(3, 2);
        assert!(q.state().is_empty());
        q.push(1, 10, 'a').unwrap();
        q.push(1, 20, 'b').unwrap();
        assert_eq!(q.push(1, 30, 'c'), Err('c'));
        q.push(2, 5, 'x').unwrap();
        assert_eq!(q.state().nonempty(), 0b110);
        assert_eq!(q.state().oldest(), Some(2));
        assert_eq!(q.state().head_arrival(1), Some(10));
        assert_eq!(q.state().head_arrival(0), None);
        assert_eq!(q.pop(2), Some((5, 'x')));
        assert_eq!(q.state().oldest(), Some(1));
        assert_eq!(q.pop(1), Some((10, 'a')));
        assert_eq!(q.state().head_arrival(1), Some(20));
        assert_eq!(q.state().len(1), 1);
        assert_eq!(q.pop(1), Some((20, 'b')));
        assert_eq!(q.pop(1), None);
        assert!(q.state().is_empty());
        assert_eq!(q.total_len(), 0);
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // `ty` is the queue's index too
    fn rings_wrap_and_keep_types_apart() {
        // Capacity 3: rings of 4 slots; many laps of each.
        let mut q = TypedQueues::new(2, 3);
        let mut next = [0u64; 2];
        let mut want = [0u64; 2];
        for round in 0..50u64 {
            for ty in 0..2 {
                while q.push(ty, next[ty] * 10 + ty as u64, next[ty]).is_ok() {
                    next[ty] += 1;
                }
                assert_eq!(q.state().len(ty), 3);
            }
            for ty in 0..2 {
                for _ in 0..(1 + (round + ty as u64) % 3) {
                    assert_eq!(q.state().head_arrival(ty), Some(want[ty] * 10 + ty as u64));
                    assert_eq!(q.pop(ty), Some((want[ty] * 10 + ty as u64, want[ty])));
                    want[ty] += 1;
                }
            }
        }
        assert_eq!(
            q.total_len(),
            (next[0] - want[0] + next[1] - want[1]) as usize
        );
    }

    #[test]
    fn a_type_that_does_not_exist_takes_nothing() {
        let mut q = TypedQueues::new(2, 4);
        for ty in [2, 3, MAX_TYPES - 1, MAX_TYPES, MAX_TYPES + 1, usize::MAX] {
            assert_eq!(q.push(ty, 1, 'z'), Err('z'));
            assert_eq!(q.pop(ty), None);
        }
        q.push(1, 1, 'a').unwrap();
        assert_eq!(q.state().nonempty(), 0b10);
        assert_eq!(q.pop(1), Some((1, 'a')));
    }

    /// What the queues must behave like: one `VecDeque` per type, bounded.
    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, Cycles),
        Pop(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Types past the real ones (up to 8, and far past MAX_TYPES) must be refused.
        let ty = prop_oneof![0..8usize, Just(MAX_TYPES), Just(usize::MAX)];
        prop_oneof![
            (ty.clone(), 0..1_000u64).prop_map(|(t, a)| Op::Push(t, a)),
            ty.prop_map(Op::Pop),
        ]
    }

    proptest::proptest! {
        // Few cases under Miri (which also runs this: it checks the unchecked slot
        // accesses on every path the model drives them through).
        #![proptest_config(proptest::test_runner::Config {
            cases: if cfg!(miri) { 6 } else { 256 },
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn behave_like_one_bounded_deque_per_type(
            n_types in 1..6usize,
            capacity in 0..6usize,
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            use std::collections::VecDeque;
            use std::rc::Rc;
            use proptest::prop_assert_eq;

            let live = Rc::new(());
            let mut q = TypedQueues::new(n_types, capacity);
            let mut model: Vec<VecDeque<(Cycles, u64)>> = vec![VecDeque::new(); n_types];
            for (i, op) in ops.iter().enumerate() {
                let i = i as u64;
                match *op {
                    Op::Push(ty, at) => {
                        let fits = ty < n_types && model[ty].len() < capacity;
                        let got = q.push(ty, at, (i, live.clone()));
                        prop_assert_eq!(got.is_ok(), fits);
                        if fits {
                            model[ty].push_back((at, i));
                        }
                    }
                    Op::Pop(ty) => {
                        let got = q.pop(ty).map(|(at, (id, _))| (at, id));
                        let want = model.get_mut(ty).and_then(|m| m.pop_front());
                        prop_assert_eq!(got, want);
                    }
                }
                let st = q.state();
                let mut nonempty = 0u64;
                for (t, m) in model.iter().enumerate() {
                    prop_assert_eq!(st.len(t), m.len());
                    prop_assert_eq!(st.head_arrival(t), m.front().map(|&(at, _)| at));
                    if !m.is_empty() {
                        nonempty |= 1 << t;
                    }
                }
                prop_assert_eq!(st.nonempty(), nonempty);
                let oldest = model
                    .iter()
                    .enumerate()
                    .filter_map(|(t, m)| m.front().map(|&(at, _)| (at, t)))
                    .min()
                    .map(|(_, t)| t);
                prop_assert_eq!(st.oldest(), oldest);
                let queued: usize = model.iter().map(VecDeque::len).sum();
                prop_assert_eq!(q.total_len(), queued);
                // Exactly the queued items are alive (none leaked, none dropped early).
                prop_assert_eq!(Rc::strong_count(&live), 1 + queued);
            }
            drop(q);
            prop_assert_eq!(Rc::strong_count(&live), 1);
        }
    }

    #[test]
    #[should_panic(expected = "queue capacity at most 2^31")]
    fn a_capacity_past_2_pow_31_is_refused_not_wrapped() {
        TypedQueues::<u8>::new(1, (1 << 31) + 1);
    }

    #[test]
    fn leftover_items_are_dropped() {
        use std::rc::Rc;
        let marker = Rc::new(());
        let mut q = TypedQueues::new(3, 5);
        for ty in 0..3 {
            for _ in 0..4 {
                q.push(ty, 0, marker.clone()).unwrap();
            }
        }
        drop(q.pop(1));
        assert_eq!(Rc::strong_count(&marker), 1 + 11);
        drop(q);
        assert_eq!(Rc::strong_count(&marker), 1);
    }
}

//! queues.rs - per-type bounded FIFO queues owned by the driver, and the view of them
//! that policies decide on.

use std::collections::VecDeque;

use super::TypeIdx;
use crate::time::Cycles;

/// What a policy may see of the queues: which types wait, how many, and since when.
#[derive(Debug, Clone)]
pub struct QueueState {
    nonempty: u64,
    head_arrival: Vec<Cycles>,
    len: Vec<u32>,
}

impl QueueState {
    fn new(n_types: usize) -> QueueState {
        assert!(n_types <= 64, "at most 64 request types");
        QueueState {
            nonempty: 0,
            head_arrival: vec![0; n_types],
            len: vec![0; n_types],
        }
    }

    /// Number of request types.
    pub fn n_types(&self) -> usize {
        self.len.len()
    }

    /// Bit `t` is set when type `t` has a request waiting.
    #[inline]
    pub fn nonempty(&self) -> u64 {
        self.nonempty
    }

    /// Requests of type `ty` waiting.
    #[inline]
    pub fn len(&self, ty: TypeIdx) -> usize {
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
        (self.nonempty & (1 << ty) != 0).then(|| self.head_arrival[ty])
    }

    /// Arrival time of the head request of `ty`, which must have one waiting (else the
    /// value is stale).
    #[inline]
    pub(super) fn waiting_since(&self, ty: TypeIdx) -> Cycles {
        self.head_arrival[ty]
    }

    /// The type whose head request arrived first (ties: lowest index).
    #[inline]
    pub fn oldest(&self) -> Option<TypeIdx> {
        let mut bits = self.nonempty;
        let mut best: Option<(Cycles, TypeIdx)> = None;
        while bits != 0 {
            let t = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let a = self.head_arrival[t];
            if best.is_none_or(|(b, _)| a < b) {
                best = Some((a, t));
            }
        }
        best.map(|(_, t)| t)
    }
}

/// One bounded FIFO per request type, holding `T` (a packet handle in the daemon, a
/// request record in the simulator) with its arrival time.
#[derive(Debug)]
pub struct TypedQueues<T> {
    queues: Vec<VecDeque<(Cycles, T)>>,
    capacity: usize,
    state: QueueState,
}

impl<T> TypedQueues<T> {
    /// `n_types` queues of `capacity` requests each, allocated up front.
    pub fn new(n_types: usize, capacity: usize) -> TypedQueues<T> {
        TypedQueues {
            queues: (0..n_types)
                .map(|_| VecDeque::with_capacity(capacity))
                .collect(),
            capacity,
            state: QueueState::new(n_types),
        }
    }

    /// What policies see.
    #[inline]
    pub fn state(&self) -> &QueueState {
        &self.state
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `item` at the tail of `ty`'s queue, or gives it back if the queue is full.
    #[inline]
    pub fn push(&mut self, ty: TypeIdx, arrival: Cycles, item: T) -> Result<(), T> {
        let q = &mut self.queues[ty];
        if q.len() >= self.capacity {
            return Err(item);
        }
        if q.is_empty() {
            self.state.nonempty |= 1 << ty;
            self.state.head_arrival[ty] = arrival;
        }
        q.push_back((arrival, item));
        self.state.len[ty] += 1;
        Ok(())
    }

    /// Takes the oldest request of type `ty`.
    #[inline]
    pub fn pop(&mut self, ty: TypeIdx) -> Option<(Cycles, T)> {
        let q = &mut self.queues[ty];
        let item = q.pop_front()?;
        self.state.len[ty] -= 1;
        match q.front() {
            Some((a, _)) => self.state.head_arrival[ty] = *a,
            None => self.state.nonempty &= !(1 << ty),
        }
        Some(item)
    }

    /// Total requests waiting.
    pub fn total_len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
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
}

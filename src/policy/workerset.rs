//! workerset.rs - a fixed-size bit set of workers (no allocation, a few words).

use super::WorkerIdx;

const WORDS: usize = 4;

/// A set of worker indices below [`WorkerSet::CAPACITY`].
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct WorkerSet {
    words: [u64; WORDS],
}

impl WorkerSet {
    /// Largest number of workers a set can hold.
    pub const CAPACITY: usize = 64 * WORDS;

    pub const EMPTY: WorkerSet = WorkerSet { words: [0; WORDS] };

    /// The set `{0, 1, ..., n-1}`.
    pub fn first_n(n: usize) -> WorkerSet {
        WorkerSet::range(0, n)
    }

    /// The set `{lo, ..., hi-1}`.
    pub fn range(lo: usize, hi: usize) -> WorkerSet {
        assert!(hi <= Self::CAPACITY);
        let mut s = WorkerSet::EMPTY;
        for w in lo..hi {
            s.insert(w);
        }
        s
    }

    /// Adds `w`, which must be below [`WorkerSet::CAPACITY`] (checked in debug builds;
    /// in release the word index is taken modulo the words, so the per-completion
    /// update needs no bounds check).
    #[inline]
    pub fn insert(&mut self, w: WorkerIdx) {
        debug_assert!(w < Self::CAPACITY, "worker {w} out of a WorkerSet");
        self.words[(w / 64) % WORDS] |= 1 << (w % 64);
    }

    /// [`insert`](Self::insert), out of line: for the completion path of a policy
    /// that refills at completion. Inlined there, the dispatcher's completion loop
    /// computed the worker's word and bit for every worker with a completion, refilled
    /// or not (code invariant in its per-worker loop, hoisted, with spills); a refill,
    /// the common case under load, needs neither. Instructions per request
    /// (`scripts/callgrind.sh`, 4 types, 14 workers): c-FCFS 229.8 -> 221.7; DARC
    /// 242.9 -> 230.0 with its refill tables of the same commit (this alone: about
    /// -8). Where every completion finds nothing waiting (32 workers) the call costs
    /// about what the hoisted code did: DARC 255.2 both, c-FCFS 236.2 -> 237.1.
    #[inline(never)]
    pub fn insert_apart(&mut self, w: WorkerIdx) {
        self.insert(w);
    }

    /// Removes `w` (below [`WorkerSet::CAPACITY`], as for `insert`).
    #[inline]
    pub fn remove(&mut self, w: WorkerIdx) {
        debug_assert!(w < Self::CAPACITY, "worker {w} out of a WorkerSet");
        self.words[(w / 64) % WORDS] &= !(1 << (w % 64));
    }

    #[inline]
    pub fn contains(&self, w: WorkerIdx) -> bool {
        w < Self::CAPACITY && self.words[w / 64] & (1 << (w % 64)) != 0
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Members below 64, as bits (all of them when the set is of fewer than 65
    /// workers: policies use it for a one-word fast path).
    #[inline]
    pub fn low_word(&self) -> u64 {
        self.words[0]
    }

    /// The lowest member; `narrow`: the set is of at most 64 workers, so that one word
    /// says (the fast path of the centralized policies' `next`).
    #[inline]
    pub fn lowest(&self, narrow: bool) -> Option<WorkerIdx> {
        if narrow {
            let idle = self.low_word();
            (idle != 0).then(|| idle.trailing_zeros() as usize)
        } else {
            self.first()
        }
    }

    /// The lowest member.
    #[inline]
    pub fn first(&self) -> Option<WorkerIdx> {
        for (i, &w) in self.words.iter().enumerate() {
            if w != 0 {
                return Some(i * 64 + w.trailing_zeros() as usize);
            }
        }
        None
    }

    /// The lowest member of `self ∩ other`.
    #[inline]
    pub fn first_in(&self, other: &WorkerSet) -> Option<WorkerIdx> {
        for i in 0..WORDS {
            let w = self.words[i] & other.words[i];
            if w != 0 {
                return Some(i * 64 + w.trailing_zeros() as usize);
            }
        }
        None
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &WorkerSet) -> WorkerSet {
        let mut s = *self;
        for i in 0..WORDS {
            s.words[i] &= other.words[i];
        }
        s
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &WorkerSet) -> WorkerSet {
        let mut s = *self;
        for i in 0..WORDS {
            s.words[i] |= other.words[i];
        }
        s
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = WorkerIdx> + '_ {
        (0..Self::CAPACITY).filter(move |&w| self.contains(w))
    }
}

impl std::fmt::Debug for WorkerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<WorkerIdx> for WorkerSet {
    fn from_iter<I: IntoIterator<Item = WorkerIdx>>(iter: I) -> Self {
        let mut s = WorkerSet::EMPTY;
        for w in iter {
            s.insert(w);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut s = WorkerSet::first_n(3);
        assert_eq!(s.len(), 3);
        assert_eq!(s.first(), Some(0));
        s.remove(0);
        assert_eq!(s.first(), Some(1));
        s.insert(200);
        assert!(s.contains(200) && !s.contains(199) && !s.contains(5000));
        let other: WorkerSet = [2, 200].into_iter().collect();
        assert_eq!(s.first_in(&other), Some(2));
        assert_eq!(s.intersection(&other), other);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 2, 200]);
        assert_eq!(
            WorkerSet::range(64, 66).iter().collect::<Vec<_>>(),
            vec![64, 65]
        );
        assert!(WorkerSet::EMPTY.first().is_none());
        assert!(WorkerSet::EMPTY.is_empty());
    }
}

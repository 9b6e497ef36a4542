//! dfcfs.rs - decentralized first-come first-served (Shenango/RSS-style).
//!
//! Each request is assigned to a worker as soon as it reaches the head of the
//! dispatcher's queue (round-robin, random, or join-shortest-queue) and waits in that
//! worker's channel, which acts as the worker's own queue of depth `depth`. If the chosen
//! worker's queue is full the request waits at the dispatcher (no other worker takes
//! it: that is what makes d-FCFS decentralized).

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::{Dispatch, Policy, QueueState, TypeIdx, WorkerIdx};
use crate::config::Assign;
use crate::time::Cycles;

/// The d-FCFS policy.
#[derive(Debug, Clone)]
pub struct Dfcfs {
    outstanding: Vec<u32>,
    depth: u32,
    assign: Assign,
    /// Next worker for round-robin.
    cursor: usize,
    /// Worker already chosen for the request at the head (kept while that worker is full).
    chosen: Option<WorkerIdx>,
    rng: SmallRng,
}

impl Dfcfs {
    pub fn new(n_workers: usize, depth: usize, assign: Assign, seed: u64) -> Dfcfs {
        assert!(
            n_workers > 0 && depth > 0,
            "d-FCFS needs at least 1 worker and a depth of at least 1 (got {n_workers} \
             workers, depth {depth}; see PolicyConfig::validate)"
        );
        Dfcfs {
            outstanding: vec![0; n_workers],
            // A depth beyond 2^32 - 1 is no limit either way (no truncation to 0).
            depth: u32::try_from(depth).unwrap_or(u32::MAX),
            assign,
            cursor: 0,
            chosen: None,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn choose(&mut self) -> WorkerIdx {
        let n = self.outstanding.len();
        match self.assign {
            Assign::RoundRobin => {
                let w = self.cursor;
                self.cursor = (self.cursor + 1) % n;
                w
            }
            Assign::Random => self.rng.random_range(0..n),
            Assign::Jsq => {
                let mut best = 0;
                for w in 1..n {
                    if self.outstanding[w] < self.outstanding[best] {
                        best = w;
                    }
                }
                best
            }
        }
    }

    /// Requests held by `worker` (dispatched, not yet completed).
    pub fn outstanding(&self, worker: WorkerIdx) -> usize {
        self.outstanding[worker] as usize
    }
}

impl Policy for Dfcfs {
    fn name(&self) -> &'static str {
        "dfcfs"
    }

    fn into_builtin(self: Box<Self>) -> super::Builtin {
        super::Builtin::Dfcfs(*self)
    }

    fn worker_capacity(&self) -> usize {
        self.depth as usize
    }

    fn on_completion(&mut self, worker: WorkerIdx, _ty: TypeIdx, _service: Cycles, _now: Cycles) {
        debug_assert!(self.outstanding[worker] > 0);
        self.outstanding[worker] = self.outstanding[worker].saturating_sub(1);
    }

    #[inline]
    fn next(&mut self, queues: &QueueState, _now: Cycles) -> Option<Dispatch> {
        let ty = queues.oldest()?;
        let worker = match self.chosen {
            Some(w) => w,
            None => self.choose(),
        };
        if self.outstanding[worker] >= self.depth {
            self.chosen = Some(worker);
            return None;
        }
        self.chosen = None;
        self.outstanding[worker] += 1;
        Some(Dispatch { ty, worker })
    }

    fn summary(&self) -> String {
        let total: u32 = self.outstanding.iter().sum();
        format!("queued at workers {total}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_depth_beyond_32_bits_is_no_limit_not_zero() {
        // `depth as u32` made 2^32 a depth of 0: nothing was ever dispatched.
        let mut d = Dfcfs::new(1, 1 << 32, Assign::RoundRobin, 1);
        assert_eq!(d.worker_capacity(), u32::MAX as usize);
        let mut q = crate::policy::TypedQueues::new(1, 4);
        q.push(0, 0, ()).unwrap();
        assert!(d.next(q.state(), 0).is_some());
    }
}

//! cfcfs.rs - centralized first-come first-served (Shinjuku-style, without preemption).
//!
//! One logical FIFO across all types (the oldest head wins) and any idle worker; a
//! worker holds at most one request, so a request never waits behind another on a
//! worker while some worker is idle.

use super::{Dispatch, Policy, QueueState, Refill, TypeIdx, WorkerIdx, WorkerSet};
use crate::time::Cycles;

/// The c-FCFS policy.
#[derive(Debug, Clone)]
pub struct Cfcfs {
    idle: WorkerSet,
    /// At most 64 workers: the idle set is one word.
    narrow: bool,
}

impl Cfcfs {
    pub fn new(n_workers: usize) -> Cfcfs {
        Cfcfs {
            idle: WorkerSet::first_n(n_workers),
            narrow: n_workers <= 64,
        }
    }
}

impl Policy for Cfcfs {
    fn name(&self) -> &'static str {
        "cfcfs"
    }

    fn into_builtin(self: Box<Self>) -> super::Builtin {
        super::Builtin::Cfcfs(*self)
    }

    fn on_completion(&mut self, worker: WorkerIdx, _ty: TypeIdx, _service: Cycles, _now: Cycles) {
        self.idle.insert_apart(worker);
    }

    /// Settled, a request waits only if no worker is free (c-FCFS is work-conserving),
    /// so `next` would give the oldest head to this worker, the only free one.
    #[inline]
    fn on_completion_next(
        &mut self,
        worker: WorkerIdx,
        _ty: TypeIdx,
        _service: Cycles,
        _now: Cycles,
        queues: &QueueState,
    ) -> Refill {
        super::refill_or_idle(queues.oldest(), &mut self.idle, worker)
    }

    #[inline]
    fn next(&mut self, queues: &QueueState, _now: Cycles) -> Option<Dispatch> {
        let worker = self.idle.lowest(self.narrow)?;
        let ty = queues.oldest()?;
        self.idle.remove(worker);
        Some(Dispatch { ty, worker })
    }

    fn summary(&self) -> String {
        format!("idle workers {}", self.idle.len())
    }
}

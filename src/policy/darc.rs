//! darc.rs - Dynamic Application-aware Reserved Cores (placeholder: being written).

use super::{Cfcfs, Dispatch, Policy, QueueState, TypeIdx, TypeInfo, WorkerIdx, WorkerSet};
use crate::config::PolicyConfig;
use crate::time::{Clock, Cycles};

/// A group of request types with similar mean service times and its cores.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Member types, shortest first.
    pub types: Vec<TypeIdx>,
    /// Workers reserved to the group.
    pub reserved: WorkerSet,
    /// Workers reserved to longer groups that this group may use when idle.
    pub stealable: WorkerSet,
}

/// A complete core reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// Groups, shortest mean service time first.
    pub groups: Vec<Group>,
}

/// The DARC policy.
#[derive(Debug)]
pub struct Darc {
    inner: Cfcfs,
}

impl Darc {
    pub fn new(_cfg: &PolicyConfig, _types: &[TypeInfo], n_workers: usize, _clock: Clock) -> Darc {
        Darc {
            inner: Cfcfs::new(n_workers),
        }
    }
}

impl Policy for Darc {
    fn name(&self) -> &'static str {
        "darc"
    }

    fn on_completion(&mut self, worker: WorkerIdx, ty: TypeIdx, service: Cycles, now: Cycles) {
        self.inner.on_completion(worker, ty, service, now)
    }

    fn next(&mut self, queues: &QueueState, now: Cycles) -> Option<Dispatch> {
        self.inner.next(queues, now)
    }
}

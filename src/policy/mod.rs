//! policy - scheduling policies as pure state machines over typed queues and workers.
//!
//! A [`Policy`] never reads a clock, spawns a thread or touches the network: its driver
//! (the dispatcher with TSC time, or `psp-sim` with virtual time) tells it what happened
//! (`on_arrival`, `on_completion`) and asks it what to do next (`next`). What the
//! simulator says about a policy is therefore what the daemon does.
//!
//! The driver owns the requests in [`TypedQueues`] (one bounded FIFO per request type)
//! and shows the policy only their [`QueueState`]: which types are waiting, and since
//! when. A [`Dispatch`] returned by `next` is a promise the driver keeps at once: pop
//! the head of that type's queue and hand it to that worker. The policy tracks which
//! workers are busy from its own decisions and the completions it is told about.

mod cfcfs;
mod darc;
mod dfcfs;
// Unchecked slot accesses behind one invariant, argued in the module.
#[allow(unsafe_code)]
mod queues;
mod ranked;
mod workerset;

pub use cfcfs::Cfcfs;
pub use darc::{cores_for, reserve, Darc, Group, Reservation, TypeStat};
pub use dfcfs::Dfcfs;
pub use queues::{QueueState, TypedQueues, MAX_TYPES};
pub use ranked::Ranked;
pub use workerset::WorkerSet;

use crate::config::{PolicyConfig, PolicyKind};
use crate::time::{Clock, Cycles};

/// Dense index of a request type (its position in the config's `requests`).
pub type TypeIdx = usize;
/// Index of a worker (0-based, in `cpus[1..]` order).
pub type WorkerIdx = usize;

/// A decision: give the oldest request of type `ty` to `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub ty: TypeIdx,
    pub worker: WorkerIdx,
}

/// What a policy decides for a worker as it finishes a request
/// ([`Policy::on_completion_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// Give the worker the oldest request of this type, now.
    Take(TypeIdx),
    /// Nothing waiting is for this worker: it stays free, and `next` has nothing to do.
    Idle,
    /// Not decided here: the driver asks `next`.
    Ask,
}

/// The refill of a work-conserving policy that gives a worker one request at a time
/// (c-FCFS, SJF, EDF): settled, a request waits only if no worker is free, so `next`
/// would give the head it chooses (`choice`) to this worker, the only free one; with
/// nothing waiting, `worker` goes back to `idle`.
#[inline]
fn refill_or_idle(choice: Option<TypeIdx>, idle: &mut WorkerSet, worker: WorkerIdx) -> Refill {
    match choice {
        Some(ty) => Refill::Take(ty),
        None => {
            idle.insert_apart(worker);
            Refill::Idle
        }
    }
}

/// What a policy knows about a request type before any measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeInfo {
    pub name: String,
    /// Configured mean service time in nanoseconds, if any.
    pub mean_ns: Option<u64>,
    /// Configured share of arrivals, if any.
    pub ratio: Option<f64>,
    /// Configured deadline in nanoseconds after arrival, if any (EDF's, in place of
    /// `slo` × the expected service time).
    pub deadline_ns: Option<u64>,
}

/// Something a policy wants its driver to record (reservation changes, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// DARC computed a reservation at time `at` from newly profiled demand; `moved`:
    /// it puts some type or core elsewhere than the one before (else only the demand
    /// figures changed, and the dispatch tables stayed).
    Reservation {
        at: Cycles,
        resa: Reservation,
        moved: bool,
    },
}

/// A scheduling policy. See the module docs for the contract with its driver.
pub trait Policy: Send + std::fmt::Debug + IntoDyn {
    /// Short name (`cfcfs`, `dfcfs`, `darc`, `sjf`, `edf`).
    fn name(&self) -> &'static str;

    /// Most requests a worker may hold at once. Drivers size the dispatcher→worker
    /// channels with it; the policy never exceeds it, and the dispatcher panics, naming
    /// the policy, the first time it does. For c-FCFS, DARC, SJF and EDF it is 1, and
    /// the dispatcher relies on it: it refuses to start with a wider channel for them
    /// (it addresses their channels' one slot directly).
    fn worker_capacity(&self) -> usize {
        1
    }

    /// A request of type `ty` was queued at `now`.
    fn on_arrival(&mut self, ty: TypeIdx, now: Cycles) {
        let _ = (ty, now);
    }

    /// `worker` finished a request of type `ty` that ran for `service` cycles.
    fn on_completion(&mut self, worker: WorkerIdx, ty: TypeIdx, service: Cycles, now: Cycles);

    /// The next dispatch, or `None` to wait for an arrival or a completion. The driver
    /// must carry out the decision before calling again.
    fn next(&mut self, queues: &QueueState, now: Cycles) -> Option<Dispatch>;

    /// `worker` finished a request (as [`on_completion`](Policy::on_completion)), and
    /// may be given its next one at once, while the driver holds its channel: no search
    /// for a free worker, no second call.
    ///
    /// A driver calls this instead of `on_completion` only when *settled*: `next` has
    /// returned `None` since the last arrival (and since the last `Ask`), and every
    /// decision since was carried out. Then `Take(ty)` must be the decision that
    /// `on_completion` followed by `next` would make (`ty`'s head to `worker`), after
    /// which the driver is still settled; `Idle` must mean that `next` would return
    /// `None`. `Ask` makes no promise: the driver is no longer settled and asks `next`.
    /// The default does `on_completion` and answers `Ask`.
    #[inline]
    fn on_completion_next(
        &mut self,
        worker: WorkerIdx,
        ty: TypeIdx,
        service: Cycles,
        now: Cycles,
        queues: &QueueState,
    ) -> Refill {
        let _ = queues;
        self.on_completion(worker, ty, service, now);
        Refill::Ask
    }

    /// The next event to record, if any (drained by the driver off the hot path).
    fn poll_event(&mut self) -> Option<Event> {
        None
    }

    /// One-line summary of the policy's current state for the stats line.
    fn summary(&self) -> String {
        String::new()
    }

    /// This policy as a [`Builtin`], unboxed if it is one of this crate's. A driver
    /// that holds a [`Builtin`] calls the built-in policies without dynamic dispatch, so
    /// that their hot paths inline into its loop. Other policies keep the default.
    fn into_builtin(self: Box<Self>) -> Builtin {
        Builtin::Other(self.into_dyn())
    }
}

/// Boxes a policy as `dyn Policy` (implemented for every sized policy; it lets
/// [`Policy::into_builtin`] have a default body).
pub trait IntoDyn {
    fn into_dyn(self: Box<Self>) -> Box<dyn Policy>;
}

impl<P: Policy + 'static> IntoDyn for P {
    fn into_dyn(self: Box<Self>) -> Box<dyn Policy> {
        self
    }
}

/// Any policy, the built-in ones held by value: calls to them are direct (and inline)
/// instead of going through a vtable. The dispatcher holds its policy this way.
// One value per dispatcher, held inline on purpose: boxing DARC would put a pointer
// chase back on the per-request path that this enum exists to remove.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Builtin {
    Cfcfs(Cfcfs),
    Dfcfs(Dfcfs),
    Darc(Darc),
    /// SJF or EDF.
    Ranked(Ranked),
    /// A policy from outside this crate, called through its vtable.
    Other(Box<dyn Policy>),
}

impl From<Box<dyn Policy>> for Builtin {
    fn from(p: Box<dyn Policy>) -> Builtin {
        p.into_builtin()
    }
}

/// Calls `$call` on whichever policy `$self` holds.
macro_rules! each {
    ($self:expr, $p:ident => $call:expr) => {
        match $self {
            Builtin::Cfcfs($p) => $call,
            Builtin::Dfcfs($p) => $call,
            Builtin::Darc($p) => $call,
            Builtin::Ranked($p) => $call,
            Builtin::Other($p) => $call,
        }
    };
}

impl Policy for Builtin {
    fn name(&self) -> &'static str {
        each!(self, p => p.name())
    }

    fn worker_capacity(&self) -> usize {
        each!(self, p => p.worker_capacity())
    }

    #[inline]
    fn on_arrival(&mut self, ty: TypeIdx, now: Cycles) {
        each!(self, p => p.on_arrival(ty, now))
    }

    #[inline]
    fn on_completion(&mut self, worker: WorkerIdx, ty: TypeIdx, service: Cycles, now: Cycles) {
        each!(self, p => p.on_completion(worker, ty, service, now))
    }

    #[inline]
    fn next(&mut self, queues: &QueueState, now: Cycles) -> Option<Dispatch> {
        each!(self, p => p.next(queues, now))
    }

    #[inline]
    fn on_completion_next(
        &mut self,
        worker: WorkerIdx,
        ty: TypeIdx,
        service: Cycles,
        now: Cycles,
        queues: &QueueState,
    ) -> Refill {
        each!(self, p => p.on_completion_next(worker, ty, service, now, queues))
    }

    fn poll_event(&mut self) -> Option<Event> {
        each!(self, p => p.poll_event())
    }

    fn summary(&self) -> String {
        each!(self, p => p.summary())
    }

    fn into_builtin(self: Box<Self>) -> Builtin {
        *self
    }
}

/// Builds the configured policy for `n_workers` workers and the given types. `clock`
/// converts the config's nanoseconds into the driver's time unit.
///
/// # Panics
///
/// On settings that [`PolicyConfig::validate`] and [`PolicyConfig::validate_types`]
/// refuse (psp-app and psp-sim run both first and report the key): check them before
/// calling this with a config that did not come through them.
pub fn build(
    cfg: &PolicyConfig,
    types: &[TypeInfo],
    n_workers: usize,
    clock: Clock,
) -> Box<dyn Policy> {
    match cfg.kind {
        PolicyKind::Cfcfs => Box::new(Cfcfs::new(n_workers)),
        PolicyKind::Dfcfs => Box::new(Dfcfs::new(n_workers, cfg.depth, cfg.assign, cfg.seed)),
        PolicyKind::Darc => Box::new(Darc::new(cfg, types, n_workers, clock)),
        PolicyKind::Sjf | PolicyKind::Edf => {
            Box::new(Ranked::from_config(cfg, types, n_workers, clock))
        }
    }
}

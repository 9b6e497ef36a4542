//! ranked.rs - SJF and EDF: centralized, work-conserving, one request per worker, and
//! the next request chosen by its type's expected service time.
//!
//! Both are c-FCFS with another rule for *which* waiting request goes next (within a
//! type, requests still go in arrival order):
//! - **SJF** (shortest job first, non-preemptive): the type with the shortest expected
//!   service time; ties go to the oldest head. Long types wait while shorter ones
//!   queue: under a sustained overload of short requests they starve.
//! - **EDF** (earliest deadline first): a request's deadline is its arrival plus `slo`
//!   times its type's expected service time, and the earliest deadline goes next. The
//!   deadline bounds the wait before the request starts: one that starts at its
//!   deadline finishes at a slowdown of about `slo + 1`. `slo: 0` is c-FCFS; a large `slo` approaches SJF. A
//!   long request's deadline comes at last, so nothing starves.
//!
//! Perséphone's dispatcher offers both beside DARC. They answer a question DARC's
//! design raises: how much of its gain comes from ordering by type, which these do
//! too, and how much from keeping cores free for short requests, which they do not
//! (a worker given a long request is lost to short ones until it finishes).
//!
//! Under EDF a type may carry its own deadline (`requests[].deadline_ns`, e.g. its
//! latency SLO), which takes the place of `slo` × its expected service time and does
//! not move with measurement.
//!
//! Expected service times start from the config's `requests[].mean_ns` (psp-sim: the
//! workload's means, unless `--no-hints`). With `profile: dynamic` (the default) each
//! completion moves its type's estimate 1/16 of the way to the measured service time
//! (an exponentially weighted mean over roughly the last 16); with `profile: static`
//! they stay as configured, and every type must have a `mean_ns` (config validation
//! says so). A type with neither counts as taking no time until its first completion,
//! which sets its estimate (under either profile): SJF serves it first, EDF by
//! arrival, so that it is measured rather than left behind.

use super::{
    Dispatch, Policy, QueueState, Refill, TypeIdx, TypeInfo, WorkerIdx, WorkerSet, MAX_TYPES,
};
use crate::config::{PolicyConfig, PolicyKind, Profile};
use crate::time::{Clock, Cycles};

/// Which rule orders the types.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Sjf,
    /// Deadline = arrival + `slo` × expected service time.
    Edf {
        slo: f64,
    },
}

/// The SJF and EDF policies (built with [`Ranked::sjf`] and [`Ranked::edf`]).
#[derive(Debug, Clone)]
pub struct Ranked {
    rule: Rule,
    idle: WorkerSet,
    n_workers: usize,
    /// At most 64 workers: the idle set is one word.
    narrow: bool,
    /// Learn service times from completions (`profile: dynamic`).
    learn: bool,
    /// Expected service time of each type, in cycles (0 while unknown).
    expected: Vec<Cycles>,
    /// Types whose EDF deadline is configured (`deadline_ns`): their allowance stays.
    fixed: u64,
    /// What a type's rank adds to its head's arrival time (EDF: `slo × expected`, or
    /// the configured deadline) or ranks by alone (SJF: `expected`). Indexed by
    /// `ty % MAX_TYPES`: no bounds check per waiting type on the decision path.
    allowance: [Cycles; MAX_TYPES],
    names: Vec<String>,
    clock: Clock,
}

impl Ranked {
    /// SJF over `types`, whose `mean_ns` (if any) seed the expected service times.
    pub fn sjf(types: &[TypeInfo], n_workers: usize, profile: Profile, clock: Clock) -> Ranked {
        Ranked::new(Rule::Sjf, types, n_workers, profile, clock)
    }

    /// EDF over `types` with deadlines `slo` times each type's expected service time
    /// after arrival (`slo` finite and not negative).
    pub fn edf(
        types: &[TypeInfo],
        n_workers: usize,
        profile: Profile,
        slo: f64,
        clock: Clock,
    ) -> Ranked {
        assert!(
            slo.is_finite() && slo >= 0.0,
            "EDF's slo must be finite and not negative, got {slo}"
        );
        Ranked::new(Rule::Edf { slo }, types, n_workers, profile, clock)
    }

    /// The policy `cfg.kind` (SJF or EDF) names.
    pub fn from_config(
        cfg: &PolicyConfig,
        types: &[TypeInfo],
        n_workers: usize,
        clock: Clock,
    ) -> Ranked {
        match cfg.kind {
            PolicyKind::Sjf => Ranked::sjf(types, n_workers, cfg.profile, clock),
            PolicyKind::Edf => Ranked::edf(types, n_workers, cfg.profile, cfg.slo, clock),
            other => panic!("{} is not SJF or EDF", other.name()),
        }
    }

    fn new(
        rule: Rule,
        types: &[TypeInfo],
        n_workers: usize,
        profile: Profile,
        clock: Clock,
    ) -> Ranked {
        assert!(
            types.len() <= MAX_TYPES,
            "at most {MAX_TYPES} request types"
        );
        assert!(
            (1..=WorkerSet::CAPACITY).contains(&n_workers),
            "{rule:?} needs 1..={} workers, got {n_workers}",
            WorkerSet::CAPACITY
        );
        let mut r = Ranked {
            rule,
            idle: WorkerSet::first_n(n_workers),
            n_workers,
            narrow: n_workers <= 64,
            learn: profile == Profile::Dynamic,
            expected: vec![0; types.len()],
            fixed: 0,
            allowance: [0; MAX_TYPES],
            names: types.iter().map(|t| t.name.clone()).collect(),
            clock,
        };
        for (ty, t) in types.iter().enumerate() {
            if let (Rule::Edf { .. }, Some(ns)) = (rule, t.deadline_ns) {
                r.allowance[ty] = clock.ns_to_cycles(ns as f64);
                r.fixed |= 1 << ty;
            }
            if let Some(ns) = t.mean_ns {
                r.set_expected(ty, clock.ns_to_cycles(ns as f64));
            }
        }
        r
    }

    /// Expected service time of `ty` in cycles, `None` while nothing is known of it.
    pub fn expected(&self, ty: TypeIdx) -> Option<Cycles> {
        self.expected.get(ty).copied().filter(|&c| c > 0)
    }

    fn set_expected(&mut self, ty: TypeIdx, cycles: Cycles) {
        self.expected[ty] = cycles;
        if self.fixed & (1 << ty) != 0 {
            return;
        }
        self.allowance[ty] = match self.rule {
            Rule::Sjf => cycles,
            // `as` saturates: a huge allowance ranks last, as it should.
            Rule::Edf { slo } => (cycles as f64 * slo) as Cycles,
        };
    }

    /// The waiting type to serve next: the least rank (SJF: expected service time;
    /// EDF: deadline), ties to the oldest head, then the lowest index.
    #[inline]
    fn choose(&self, queues: &QueueState) -> Option<TypeIdx> {
        queues.least(|t| {
            let since = queues.waiting_since(t);
            let allow = self.allowance[t % MAX_TYPES];
            match self.rule {
                Rule::Sjf => (allow, since),
                Rule::Edf { .. } => (since.saturating_add(allow), since),
            }
        })
    }

    fn learn_from(&mut self, ty: TypeIdx, service: Cycles) {
        let Some(&old) = self.expected.get(ty) else {
            return;
        };
        // Static estimates stay; an unknown one is set by the first completion, so
        // that a type the config gave no mean (only possible past validation, through
        // the library) is not served first forever.
        if !self.learn && old != 0 {
            return;
        }
        let new = if old == 0 {
            service.max(1)
        } else if service >= old {
            old + (service - old) / 16
        } else {
            old - (old - service) / 16
        };
        if new != old {
            self.set_expected(ty, new);
        }
    }
}

impl Policy for Ranked {
    fn name(&self) -> &'static str {
        match self.rule {
            Rule::Sjf => "sjf",
            Rule::Edf { .. } => "edf",
        }
    }

    fn into_builtin(self: Box<Self>) -> super::Builtin {
        super::Builtin::Ranked(*self)
    }

    fn on_completion(&mut self, worker: WorkerIdx, ty: TypeIdx, service: Cycles, _now: Cycles) {
        debug_assert!(worker < self.n_workers, "no worker {worker}");
        self.learn_from(ty, service);
        self.idle.insert_apart(worker);
    }

    /// Settled, a request waits only if no worker is free (both are work-conserving),
    /// so `next` would give the best-ranked head to this worker, the only free one.
    #[inline]
    fn on_completion_next(
        &mut self,
        worker: WorkerIdx,
        ty: TypeIdx,
        service: Cycles,
        _now: Cycles,
        queues: &QueueState,
    ) -> Refill {
        debug_assert!(worker < self.n_workers, "no worker {worker}");
        self.learn_from(ty, service);
        super::refill_or_idle(self.choose(queues), &mut self.idle, worker)
    }

    #[inline]
    fn next(&mut self, queues: &QueueState, _now: Cycles) -> Option<Dispatch> {
        let worker = self.idle.lowest(self.narrow)?;
        let ty = self.choose(queues)?;
        self.idle.remove(worker);
        Some(Dispatch { ty, worker })
    }

    fn summary(&self) -> String {
        let expected: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .map(|(t, name)| match self.expected(t) {
                Some(c) => format!("{name}={:.0}", self.clock.cycles_to_ns(c)),
                None => format!("{name}=?"),
            })
            .collect();
        format!(
            "idle workers {}, expected ns: {}",
            self.idle.len(),
            expected.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TypedQueues;

    fn types(means: &[Option<u64>]) -> Vec<TypeInfo> {
        means
            .iter()
            .enumerate()
            .map(|(i, &mean_ns)| TypeInfo {
                name: format!("T{i}"),
                mean_ns,
                ratio: None,
                deadline_ns: None,
            })
            .collect()
    }

    /// Queues holding one request of each `(type, arrival)`.
    fn queued(n_types: usize, reqs: &[(TypeIdx, Cycles)]) -> TypedQueues<()> {
        let mut q = TypedQueues::new(n_types, 16);
        for &(ty, at) in reqs {
            q.push(ty, at, ()).unwrap();
        }
        q
    }

    #[test]
    fn sjf_serves_the_shortest_type_first_and_ties_by_age() {
        let t = types(&[Some(100_000), Some(1_000), Some(1_000)]);
        let mut p = Ranked::sjf(&t, 4, Profile::Static, Clock::NANOS);
        // LONG arrived first, yet the two short types go before it, oldest first.
        let q = queued(3, &[(0, 10), (2, 20), (1, 30)]);
        assert_eq!(p.choose(q.state()), Some(2));
        let d = p.next(q.state(), 40).unwrap();
        assert_eq!((d.ty, d.worker), (2, 0));
        let q = queued(3, &[(0, 10)]);
        assert_eq!(p.next(q.state(), 40).map(|d| d.ty), Some(0));
    }

    #[test]
    fn edf_ranks_by_arrival_plus_slo_times_the_mean() {
        let t = types(&[Some(100_000), Some(1_000)]);
        let p = Ranked::edf(&t, 2, Profile::Static, 10.0, Clock::NANOS);
        // LONG's deadline: 0 + 1 ms. SHORT's: arrival + 10 µs.
        let q = queued(2, &[(0, 0), (1, 500_000)]);
        assert_eq!(p.choose(q.state()), Some(1), "a fresh SHORT goes first");
        let q = queued(2, &[(0, 0), (1, 995_000)]);
        assert_eq!(p.choose(q.state()), Some(0), "LONG's deadline came first");
        // slo 0: arrival order, as c-FCFS.
        let p = Ranked::edf(&t, 2, Profile::Static, 0.0, Clock::NANOS);
        let q = queued(2, &[(0, 5), (1, 7)]);
        assert_eq!(p.choose(q.state()), Some(0));
    }

    #[test]
    fn an_unknown_type_is_served_first_until_measured() {
        let t = types(&[Some(1_000), None]);
        let mut p = Ranked::sjf(&t, 1, Profile::Dynamic, Clock::NANOS);
        assert_eq!(p.expected(1), None);
        let q = queued(2, &[(0, 0), (1, 5)]);
        assert_eq!(p.choose(q.state()), Some(1));
        // Its first completion sets the estimate outright; later ones move it 1/16.
        p.on_completion(0, 1, 50_000, 10);
        assert_eq!(p.expected(1), Some(50_000));
        assert_eq!(p.choose(q.state()), Some(0));
        p.on_completion(0, 1, 50_000 + 16 * 100, 20);
        assert_eq!(p.expected(1), Some(50_100));
        p.on_completion(0, 1, 50_100 - 16 * 200, 30);
        assert_eq!(p.expected(1), Some(49_900));
    }

    /// A configured deadline is EDF's allowance for its type, whatever the estimate.
    #[test]
    fn a_configured_deadline_replaces_slo_times_the_mean() {
        let mut t = types(&[Some(1_000), Some(100_000)]);
        // LONG must start within 5 µs of arriving: before a SHORT that arrived 2 µs
        // earlier (deadline arrival + 10 µs).
        t[1].deadline_ns = Some(5_000);
        let mut p = Ranked::edf(&t, 1, Profile::Dynamic, 10.0, Clock::NANOS);
        let q = queued(2, &[(0, 0), (1, 2_000)]);
        assert_eq!(p.choose(q.state()), Some(1));
        // Measurement moves the estimate, not the deadline.
        for _ in 0..100 {
            p.on_completion(0, 1, 1_000_000, 0);
        }
        assert!(p.expected(1).unwrap() > 900_000);
        assert_eq!(p.choose(q.state()), Some(1));
        // SJF ignores deadlines.
        let p = Ranked::sjf(&t, 1, Profile::Dynamic, Clock::NANOS);
        assert_eq!(p.choose(q.state()), Some(0));
    }

    /// Static estimates stay, but one the config did not give is set by the first
    /// completion (validation requires them all; the library does not).
    #[test]
    fn a_static_profile_still_measures_a_type_it_was_not_given() {
        let t = types(&[Some(1_000), None]);
        let mut p = Ranked::edf(&t, 1, Profile::Static, 10.0, Clock::NANOS);
        p.on_completion(0, 1, 70_000, 0);
        p.on_completion(0, 1, 10_000, 0);
        p.on_completion(0, 0, 9_000, 0);
        assert_eq!((p.expected(0), p.expected(1)), (Some(1_000), Some(70_000)));
        assert_eq!(p.expected(2), None, "no such type");
    }

    #[test]
    fn dynamic_estimates_reorder_the_types_and_static_ones_stay() {
        // Configured SHORT 1 µs, LONG 100 µs; in fact they are the other way round.
        let t = types(&[Some(1_000), Some(100_000)]);
        let q = queued(2, &[(0, 0), (1, 0)]);
        for (profile, first) in [(Profile::Dynamic, 1), (Profile::Static, 0)] {
            let mut p = Ranked::sjf(&t, 1, profile, Clock::NANOS);
            assert_eq!(p.choose(q.state()), Some(0));
            for _ in 0..200 {
                p.on_completion(0, 0, 100_000, 0);
                p.on_completion(0, 1, 1_000, 0);
            }
            assert_eq!(p.choose(q.state()), Some(first), "{profile:?}");
        }
    }

    #[test]
    fn refills_at_completion_only_when_something_waits() {
        let t = types(&[Some(1_000), Some(2_000)]);
        let mut p = Ranked::edf(&t, 2, Profile::Static, 10.0, Clock::NANOS);
        let empty = queued(2, &[]);
        let busy = queued(2, &[(1, 0)]);
        assert_eq!(p.next(busy.state(), 0).map(|d| d.worker), Some(0));
        assert_eq!(p.next(busy.state(), 0).map(|d| d.worker), Some(1));
        assert_eq!(p.next(busy.state(), 0), None, "both workers busy");
        assert_eq!(
            p.on_completion_next(1, 1, 2_000, 5, busy.state()),
            Refill::Take(1)
        );
        assert_eq!(
            p.on_completion_next(0, 1, 2_000, 5, empty.state()),
            Refill::Idle
        );
        assert_eq!(p.next(busy.state(), 6).map(|d| d.worker), Some(0));
    }

    #[test]
    fn the_summary_names_each_types_estimate() {
        let t = types(&[Some(1_500), None]);
        let p = Ranked::sjf(&t, 3, Profile::Dynamic, Clock::NANOS);
        assert_eq!(p.summary(), "idle workers 3, expected ns: T0=1500 T1=?");
        assert_eq!(p.name(), "sjf");
    }
}

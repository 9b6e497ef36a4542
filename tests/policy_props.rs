//! policy_props.rs - property tests of the scheduling policies, each driven the way the
//! dispatcher drives it through random interleavings of arrivals and completions.
//!
//! A small deterministic [`Driver`] owns [`TypedQueues`] of request ids and the
//! requests each worker holds, and after every event asks the policy for decisions
//! until it says `None`, carrying each one out at once. Like the dispatcher, it hands
//! a completion to `on_completion_next` when the policy is settled (half the cases;
//! the others call `on_completion`), and checks the answer against what
//! `on_completion` then `next` decide on a clone. It checks what every policy
//! promises (each request dispatched exactly once, FCFS within a type, never beyond a
//! worker's capacity); the tests add each policy's own promises:
//!
//! - c-FCFS never leaves a worker idle while a request waits;
//! - d-FCFS never exceeds its depth;
//! - DARC never runs a request on a core reserved to a shorter group than its own
//!   (the spillway of an overflowing group excepted), only on workers its reservation
//!   allows, and never leaves an allowed worker idle while a request waits;
//! - SJF and EDF never leave a worker idle while a request waits, and each decision
//!   takes the waiting head of least rank (expected service time; deadline).

use std::collections::VecDeque;

use persephone::config::{Assign, PolicyConfig, Profile};
use persephone::policy::{
    cores_for, reserve, Cfcfs, Darc, Dfcfs, Dispatch, Event, Policy, Ranked, Refill, Reservation,
    TypeInfo, TypeStat, TypedQueues, WorkerSet,
};
use persephone::time::{Clock, Cycles};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Nominal service time of each type (ns): two short-ish and two long-ish types, so
/// that DARC's grouping depends on `delta` and on the measured jitter.
const BASE_NS: [u64; 4] = [1_000, 100_000, 5_000, 20_000];

#[derive(Debug, Clone)]
enum Op {
    /// A request of type `ty` arrives.
    Arrive { ty: usize },
    /// The `pick`-th busy worker (modulo their number) finishes its oldest request,
    /// which took its type's nominal time ± `jitter - 10` %.
    Complete { pick: usize, jitter: u64 },
}

#[derive(Debug, Clone)]
struct Scenario {
    n_types: usize,
    n_workers: usize,
    /// Completions go through `on_completion_next` when the policy is settled.
    fused: bool,
    /// Each op with the time (ns) that passes before it.
    ops: Vec<(u64, Op)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // Mostly a few workers; sometimes more than 64 (the policies' multi-word paths).
    let workers = prop_oneof![4 => 1usize..=6, 1 => 65usize..=67];
    (1usize..=4, workers, any::<bool>()).prop_flat_map(|(n_types, n_workers, fused)| {
        let op = prop_oneof![
            3 => (0..n_types).prop_map(|ty| Op::Arrive { ty }),
            2 => (any::<usize>(), 0u64..=20).prop_map(|(pick, jitter)| Op::Complete { pick, jitter }),
        ];
        prop::collection::vec((0u64..5_000, op), 0..250).prop_map(move |ops| Scenario {
            n_types,
            n_workers,
            fused,
            ops,
        })
    })
}

/// The dispatcher, reduced to what a policy sees.
struct Driver<P> {
    policy: P,
    n_workers: usize,
    cap: usize,
    queues: TypedQueues<u64>,
    /// Requests held by each worker, oldest first: (id, type).
    held: Vec<VecDeque<(u64, usize)>>,
    now: Cycles,
    arrived: u64,
    dispatched: Vec<bool>,
    /// Last id dispatched per type (FCFS within a type).
    last_of_type: Vec<Option<u64>>,
    /// Use `on_completion_next` when settled.
    fused: bool,
    /// `next` returned `None` and nothing arrived or was left to `next` since.
    settled: bool,
    /// Completions `on_completion_next` refilled at once.
    refilled: u64,
}

impl<P: Policy + Clone> Driver<P> {
    fn new(policy: P, n_types: usize, n_workers: usize) -> Driver<P> {
        let cap = policy.worker_capacity();
        Driver {
            policy,
            n_workers,
            cap,
            queues: TypedQueues::new(n_types, 4096),
            held: vec![VecDeque::new(); n_workers],
            now: 0,
            arrived: 0,
            dispatched: Vec::new(),
            last_of_type: vec![None; n_types],
            fused: false,
            settled: true,
            refilled: 0,
        }
    }

    fn fused(mut self, fused: bool) -> Driver<P> {
        self.fused = fused;
        self
    }

    fn idle(&self) -> WorkerSet {
        (0..self.n_workers)
            .filter(|&w| self.held[w].is_empty())
            .collect()
    }

    fn arrive(&mut self, ty: usize) {
        let id = self.arrived;
        self.arrived += 1;
        self.dispatched.push(false);
        self.queues
            .push(ty, self.now, id)
            .expect("queues are large enough");
        self.policy.on_arrival(ty, self.now);
        self.settled = false;
    }

    /// Completes the oldest request of the `pick`-th busy worker, if any is busy.
    fn complete(&mut self, pick: usize, jitter: u64) -> Result<(), TestCaseError> {
        let busy: Vec<usize> = (0..self.n_workers)
            .filter(|&w| !self.held[w].is_empty())
            .collect();
        if busy.is_empty() {
            return Ok(());
        }
        let w = busy[pick % busy.len()];
        self.complete_worker(w, jitter)
    }

    fn complete_worker(&mut self, w: usize, jitter: u64) -> Result<(), TestCaseError> {
        let (_, ty) = self.held[w].pop_front().expect("worker is busy");
        let service = BASE_NS[ty] * (90 + jitter) / 100;
        if !(self.fused && self.settled) {
            self.policy.on_completion(w, ty, service, self.now);
            self.settled = false;
            return Ok(());
        }
        // What `on_completion` then `next` decide, on a copy.
        let mut reference = self.policy.clone();
        reference.on_completion(w, ty, service, self.now);
        let expected = reference.next(self.queues.state(), self.now);
        let refill = self
            .policy
            .on_completion_next(w, ty, service, self.now, self.queues.state());
        match refill {
            Refill::Take(t) => {
                let d = Dispatch { ty: t, worker: w };
                prop_assert_eq!(expected, Some(d), "{:?} differs from next", refill);
                self.carry_out(d)?;
                self.refilled += 1;
                // Still settled: `next` has nothing more to do.
                let after = self.policy.clone().next(self.queues.state(), self.now);
                prop_assert_eq!(after, None, "after {:?}", refill);
            }
            Refill::Idle => {
                prop_assert_eq!(expected, None, "Idle, but next decides");
                let real = self.policy.clone().next(self.queues.state(), self.now);
                prop_assert_eq!(real, None, "Idle, but the policy's own next decides");
            }
            Refill::Ask => self.settled = false,
        }
        Ok(())
    }

    /// Gives the head of `d.ty` to `d.worker`, checking what every policy promises.
    fn carry_out(&mut self, d: Dispatch) -> Result<(), TestCaseError> {
        prop_assert!(d.worker < self.n_workers, "no worker {}", d.worker);
        prop_assert!(
            self.held[d.worker].len() < self.cap,
            "worker {} already holds {} (capacity {}): {d:?}",
            d.worker,
            self.held[d.worker].len(),
            self.cap
        );
        let Some((_, id)) = self.queues.pop(d.ty) else {
            return Err(TestCaseError::fail(format!(
                "{d:?}: no request of type {} waits",
                d.ty
            )));
        };
        prop_assert!(
            !self.dispatched[id as usize],
            "request {id} dispatched twice"
        );
        self.dispatched[id as usize] = true;
        if let Some(last) = self.last_of_type[d.ty] {
            prop_assert!(last < id, "type {} out of FCFS order", d.ty);
        }
        self.last_of_type[d.ty] = Some(id);
        self.held[d.worker].push_back((id, d.ty));
        Ok(())
    }

    /// Asks for decisions until `None`, carrying each out and checking the promises
    /// every policy makes. Returns the decisions.
    fn drain(&mut self) -> Result<Vec<Dispatch>, TestCaseError> {
        let mut out = Vec::new();
        let bound = self.queues.total_len();
        while let Some(d) = self.policy.next(self.queues.state(), self.now) {
            prop_assert!(
                out.len() < bound,
                "more dispatches than waiting requests: {out:?} then {d:?}"
            );
            self.carry_out(d)?;
            out.push(d);
        }
        self.settled = true;
        Ok(out)
    }

    /// Plays `ops`, calling `check` after each drain, then completes everything.
    fn run(
        &mut self,
        ops: &[(u64, Op)],
        mut check: impl FnMut(&mut Self, &[Dispatch]) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        for (dt, op) in ops {
            self.now += dt;
            match *op {
                Op::Arrive { ty } => self.arrive(ty),
                Op::Complete { pick, jitter } => self.complete(pick, jitter)?,
            }
            let ds = self.drain()?;
            check(self, &ds)?;
        }
        // Wind down: complete everything held, round after round, until all is done.
        let mut rounds = 0;
        loop {
            let ds = self.drain()?;
            check(self, &ds)?;
            if self.queues.total_len() == 0 && self.held.iter().all(VecDeque::is_empty) {
                break;
            }
            rounds += 1;
            prop_assert!(
                rounds <= self.arrived + 1,
                "requests stuck: {} waiting, held {:?}",
                self.queues.total_len(),
                self.held
            );
            self.now += 1_000;
            for w in 0..self.n_workers {
                if !self.held[w].is_empty() {
                    self.complete_worker(w, 10)?;
                }
            }
        }
        prop_assert!(
            self.dispatched.iter().all(|&d| d),
            "some requests never dispatched"
        );
        Ok(())
    }
}

fn types(n_types: usize, ratios: Option<&[u32]>) -> Vec<TypeInfo> {
    (0..n_types)
        .map(|t| TypeInfo {
            name: format!("T{t}"),
            mean_ns: ratios.map(|_| BASE_NS[t]),
            ratio: ratios.map(|r| r[t] as f64),
            deadline_ns: None,
        })
        .collect()
}

/// A DARC configuration for `n_workers` workers: profile, window, delta, spillway and
/// a manual reservation that passes config validation (sum ≤ workers); plus the
/// configured ratios, if the types get a configured load.
fn darc_setup(n_workers: usize) -> impl Strategy<Value = (PolicyConfig, Option<Vec<u32>>)> {
    (
        any::<bool>(),
        1u64..=20,
        prop::sample::select(vec![0.0, 0.2, 0.5, 2.0]),
        prop::option::of(0..n_workers),
        prop::option::of(prop::collection::vec(0..=n_workers, 0..=3)),
        prop::option::weighted(0.5, prop::collection::vec(0u32..4, 4)),
    )
        .prop_map(
            move |(is_static, window, delta, spillway, n_resas, ratios)| {
                let n_resas = n_resas.map(|v| {
                    let mut left = n_workers;
                    v.into_iter()
                        .map(|k| {
                            let k = k.min(left);
                            left -= k;
                            k
                        })
                        .collect()
                });
                // Static mode needs configured loads with at least one positive ratio.
                let ratios = if is_static {
                    let mut r = ratios.unwrap_or_else(|| vec![1; 4]);
                    r[0] = r[0].max(1);
                    Some(r)
                } else {
                    ratios
                };
                let cfg = PolicyConfig {
                    profile: if is_static {
                        Profile::Static
                    } else {
                        Profile::Dynamic
                    },
                    window,
                    delta,
                    spillway,
                    n_resas,
                    ..PolicyConfig::default()
                };
                (cfg, ratios)
            },
        )
}

/// DARC's promises about one drain, given the reservation in force during it.
fn check_darc(d: &mut Driver<Darc>, ds: &[Dispatch]) -> Result<(), TestCaseError> {
    let idle = d.idle();
    match d.policy.reservation() {
        None => {
            // Before the first reservation: c-FCFS.
            prop_assert!(
                d.queues.total_len() == 0 || idle.is_empty(),
                "c-FCFS phase left {idle:?} idle with requests waiting"
            );
        }
        Some(r) => {
            for x in ds {
                check_placement(r, x)?;
            }
            // Non-work-conserving only when it must be: no waiting request has an
            // allowed worker idle.
            for ty in 0..d.queues.state().n_types() {
                if d.queues.state().len(ty) > 0 {
                    let free = r.eligible(ty).intersection(&idle);
                    prop_assert!(
                        free.is_empty(),
                        "type {ty} waits while {free:?} may serve it: {r}"
                    );
                }
            }
        }
    }
    // Every reservation change is reported, the last one being the one in force.
    let mut last = None;
    while let Some(Event::Reservation { at, resa, .. }) = d.policy.poll_event() {
        prop_assert!(at <= d.now);
        last = Some(resa);
    }
    if let Some(resa) = last {
        prop_assert_eq!(Some(&resa), d.policy.reservation());
    }
    Ok(())
}

/// A request of type `x.ty` may run on `x.worker` under `r`.
fn check_placement(r: &Reservation, x: &Dispatch) -> Result<(), TestCaseError> {
    let w = x.worker;
    prop_assert!(
        r.eligible(x.ty).contains(w),
        "{x:?} outside the type's workers: {r}"
    );
    match r.group_of(x.ty) {
        None => prop_assert_eq!(w, r.spillway, "a type without a group off the spillway"),
        Some(g) => {
            for (h, shorter) in r.groups[..g].iter().enumerate() {
                if shorter.reserved.contains(w) {
                    prop_assert!(
                        w == r.spillway && r.groups[g].spilled,
                        "{x:?}: group {g}'s request on worker {w}, reserved to shorter \
                         group {h}: {r}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Fills every worker and queues `extra` more requests, then completes every busy
/// worker, one at a time, `rounds` times (draining after each round): with requests
/// waiting, settled completions must be refilled at once (the driver checks each
/// against `next`). Returns the number of refills.
fn full_house<P: Policy + Clone>(d: &mut Driver<P>, extra: usize, rounds: usize) -> u64 {
    for i in 0..d.n_workers + extra {
        d.arrive(i % d.queues.state().n_types());
    }
    d.drain().unwrap();
    for _ in 0..rounds {
        d.now += 1_000;
        for w in 0..d.n_workers {
            if !d.held[w].is_empty() {
                d.complete_worker(w, 10).unwrap();
            }
        }
        d.drain().unwrap();
    }
    d.refilled
}

/// What a work-conserving policy promises after every drain.
fn no_idle_worker_while_requests_wait<P: Policy + Clone>(
    d: &mut Driver<P>,
    _: &[Dispatch],
) -> Result<(), TestCaseError> {
    prop_assert!(
        d.queues.total_len() == 0 || d.idle().is_empty(),
        "worker {:?} idle while {} requests wait",
        d.idle(),
        d.queues.total_len()
    );
    Ok(())
}

/// With more requests than `n` workers (two types, alternating), every worker gets
/// one, those past 64 too, and again once all have gone idle; the last worker's
/// completion, with requests waiting, is refilled (as `next` decides: the driver
/// checks).
fn every_worker_serves<P: Policy + Clone>(policy: P, n: usize) {
    let name = policy.name();
    let mut d = Driver::new(policy, 2, n).fused(true);
    for round in 0..2 {
        for i in 0..n + 20 {
            d.arrive(i % 2);
        }
        d.drain().unwrap();
        assert!(
            d.idle().is_empty(),
            "{name} round {round}: {:?} idle",
            d.idle()
        );
        let refilled = d.refilled;
        d.complete_worker(n - 1, 10).unwrap();
        assert_eq!(d.refilled, refilled + 1, "{name}");
        // Complete everything: every worker idle.
        while d.held.iter().any(|h| !h.is_empty()) {
            d.now += 1_000;
            for w in 0..n {
                if !d.held[w].is_empty() {
                    d.complete_worker(w, 10).unwrap();
                }
            }
            d.drain().unwrap();
        }
        assert_eq!(d.idle().len(), n, "{name}");
    }
}

/// Past 64 workers (the multi-word paths of c-FCFS and DARC) with requests waiting,
/// completions are refilled as `next` would decide, not only when the random runs
/// happen to fill every worker.
#[test]
fn refills_past_64_workers_decide_as_next() {
    let n = 66;
    let mut d = Driver::new(Cfcfs::new(n), 2, n).fused(true);
    assert_eq!(full_house(&mut d, 20, 2), 20, "c-FCFS refills what waits");
    every_worker_serves(Cfcfs::new(n), n);
    // SJF and EDF too.
    let two = types(2, Some(&[1, 1]));
    every_worker_serves(Ranked::sjf(&two, n, Profile::Dynamic, Clock::NANOS), n);
    every_worker_serves(
        Ranked::edf(&two, n, Profile::Dynamic, 10.0, Clock::NANOS),
        n,
    );

    // Two types, SHORT (1 µs) and LONG (100 µs), equal shares: SHORT gets one reserved
    // worker and may steal LONG's 65.
    let cfg = PolicyConfig {
        profile: Profile::Static,
        ..PolicyConfig::default()
    };
    let darc = Darc::new(&cfg, &types(2, Some(&[1, 1])), n, Clock::NANOS);
    let mut d = Driver::new(darc, 2, n).fused(true);
    let refilled = full_house(&mut d, 20, 2);
    assert!(refilled >= 20, "DARC refilled {refilled}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cfcfs_is_work_conserving(s in scenario()) {
        let mut d = Driver::new(Cfcfs::new(s.n_workers), s.n_types, s.n_workers).fused(s.fused);
        prop_assert_eq!(d.cap, 1);
        d.run(&s.ops, no_idle_worker_while_requests_wait)?;
    }

    #[test]
    fn sjf_and_edf_are_work_conserving(
        s in scenario(),
        edf in any::<bool>(),
        told in any::<bool>(),
        dynamic in any::<bool>(),
        slo in 0.0f64..20.0,
    ) {
        // Told the means or not; learning from completions or not (a static profile
        // needs them told).
        let types = types(s.n_types, told.then_some(&[1, 1, 1, 1][..]));
        let profile = if dynamic || !told { Profile::Dynamic } else { Profile::Static };
        let policy = if edf {
            Ranked::edf(&types, s.n_workers, profile, slo, Clock::NANOS)
        } else {
            Ranked::sjf(&types, s.n_workers, profile, Clock::NANOS)
        };
        let mut d = Driver::new(policy, s.n_types, s.n_workers).fused(s.fused);
        prop_assert_eq!(d.cap, 1);
        d.run(&s.ops, no_idle_worker_while_requests_wait)?;
    }

    /// With fixed means (`BASE_NS`), every decision takes the waiting head of least
    /// rank: SJF the least mean, EDF the least arrival + slo × mean; ties the oldest.
    #[test]
    fn sjf_and_edf_take_the_head_of_least_rank(
        arrivals in prop::collection::vec((0usize..4, 0u64..200_000), 1..60),
        edf in any::<bool>(),
        slo in 0.0f64..20.0,
    ) {
        let types = types(4, Some(&[1, 1, 1, 1]));
        let mut policy = if edf {
            Ranked::edf(&types, 64, Profile::Static, slo, Clock::NANOS)
        } else {
            Ranked::sjf(&types, 64, Profile::Static, Clock::NANOS)
        };
        let mut sorted = arrivals.clone();
        sorted.sort_by_key(|&(_, at)| at);
        let mut queues = TypedQueues::new(4, 64);
        for &(ty, at) in &sorted {
            queues.push(ty, at, ()).unwrap();
        }
        let rank = |ty: usize, at: u64| -> (u64, u64) {
            if edf {
                (at.saturating_add((BASE_NS[ty] as f64 * slo) as u64), at)
            } else {
                (BASE_NS[ty], at)
            }
        };
        for _ in 0..sorted.len() {
            let best = (0..4)
                .filter_map(|t| queues.state().head_arrival(t).map(|at| (rank(t, at), t)))
                .min()
                .map(|(_, t)| t);
            let d = policy.next(queues.state(), 300_000);
            prop_assert_eq!(d.map(|d| d.ty), best);
            queues.pop(d.unwrap().ty).unwrap();
        }
        prop_assert_eq!(policy.next(queues.state(), 300_000), None);
    }

    #[test]
    fn dfcfs_respects_its_depth(
        s in scenario(),
        assign in prop::sample::select(vec![Assign::RoundRobin, Assign::Random, Assign::Jsq]),
        depth in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let policy = Dfcfs::new(s.n_workers, depth, assign, seed);
        let mut d = Driver::new(policy, s.n_types, s.n_workers).fused(s.fused);
        prop_assert_eq!(d.cap, depth);
        d.run(&s.ops, |d, _| {
            for w in 0..d.n_workers {
                prop_assert!(d.held[w].len() <= depth);
                prop_assert_eq!(d.policy.outstanding(w), d.held[w].len());
            }
            Ok(())
        })?;
    }

    #[test]
    fn darc_keeps_groups_apart(
        (s, (cfg, ratios)) in scenario().prop_flat_map(|s| {
            let n = s.n_workers;
            (Just(s), darc_setup(n))
        })
    ) {
        let types = types(s.n_types, ratios.as_deref());
        let darc = Darc::new(&cfg, &types, s.n_workers, Clock::NANOS);
        if cfg.profile == Profile::Static {
            prop_assert!(darc.reservation().is_some());
        }
        let mut d = Driver::new(darc, s.n_types, s.n_workers).fused(s.fused);
        prop_assert_eq!(d.cap, 1);
        d.run(&s.ops, check_darc)?;
        if cfg.profile == Profile::Static {
            prop_assert_eq!(d.policy.windows_closed(), 0);
        }
    }

    /// The reservation maths on arbitrary loads: every type in one group, groups in
    /// mean order, cores as computed (or as asked), no group stranded, and no group
    /// able to reach a shorter group's core except through the spillway.
    #[test]
    fn reservations_are_well_formed(
        loads in prop::collection::vec((1.0f64..1e6, 0.0f64..1.0), 1..8),
        n_workers in 1usize..=20,
        delta in 0.0f64..2.0,
        spill in any::<prop::sample::Index>(),
        manual in prop::option::of(prop::collection::vec(0usize..6, 0..4)),
    ) {
        let stats: Vec<TypeStat> = loads
            .iter()
            .enumerate()
            .map(|(ty, &(mean_ns, ratio))| TypeStat { ty, mean_ns, ratio })
            .collect();
        let spillway = spill.index(n_workers);
        let manual = manual.map(|v| {
            let mut left = n_workers;
            v.into_iter().map(|k| { let k = k.min(left); left -= k; k }).collect::<Vec<_>>()
        });
        let r = reserve(&stats, n_workers, delta, manual.as_deref(), spillway);
        prop_assert_eq!(r.spillway, spillway);

        let mut seen: Vec<usize> = r.groups.iter().flat_map(|g| g.types.clone()).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..stats.len()).collect::<Vec<_>>());
        let means: Vec<f64> = r.groups.iter().flat_map(|g| g.types.iter().map(|&t| stats[t].mean_ns)).collect();
        prop_assert!(means.windows(2).all(|m| m[0] <= m[1]), "groups out of mean order");
        for pair in r.groups.windows(2) {
            let (a, b) = (stats[pair[0].types[0]].mean_ns, stats[pair[1].types[0]].mean_ns);
            prop_assert!(b - a >= a * delta, "groups {:?} and {:?} should be one", pair[0].types, pair[1].types);
        }
        for g in &r.groups {
            let first = stats[g.types[0]].mean_ns;
            for &t in &g.types {
                prop_assert!(stats[t].mean_ns - first < first * delta || t == g.types[0]);
            }
        }
        let total_demand: f64 = r.groups.iter().map(|g| g.demand).sum();
        if stats.iter().any(|t| t.ratio > 0.0) {
            prop_assert!((total_demand - n_workers as f64).abs() < 1e-6);
        }

        let mut taken = WorkerSet::EMPTY;
        for (i, g) in r.groups.iter().enumerate() {
            prop_assert!(!g.eligible().is_empty(), "group {} stranded: {}", i, r);
            let own = if g.spilled {
                let mut own = g.reserved;
                own.remove(spillway);
                own
            } else {
                g.reserved
            };
            prop_assert!(own.intersection(&taken).is_empty(), "group {} overlaps: {}", i, r);
            taken = taken.union(&own);
            prop_assert!(g.stealable.intersection(&taken).is_empty(), "group {} steals back: {}", i, r);
            let asked = manual.as_ref().and_then(|m| m.get(i).copied());
            if !g.spilled {
                prop_assert_eq!(g.reserved.len(), asked.unwrap_or_else(|| cores_for(g.demand)));
            }
        }
    }
}

//! sim/engine.rs - the discrete-event loop: open-loop arrivals, the real policy, workers.
//!
//! Virtual time is in nanoseconds (the policy is built with [`Clock::NANOS`], so its
//! cycles are nanoseconds). The loop does what the daemon's dispatcher does, in the same
//! order, at each instant that something happens:
//!
//! 1. deliver the completions due now (`Policy::on_completion`), and let each worker
//!    start the next request it holds (a d-FCFS worker serves its own queue FIFO);
//! 2. queue the arrivals due now into [`TypedQueues`] (a full queue rejects, counted),
//!    telling the policy (`Policy::on_arrival`);
//! 3. `while let Some(d) = policy.next(queues.state(), now)`: pop the head of `d.ty` and
//!    hand it to `d.worker`;
//! 4. drain `Policy::poll_event` (DARC's reservation changes).
//!
//! The daemon takes its completions in turns, and lets a settled policy refill each
//! freed worker as its completion is taken (`Policy::on_completion_next`, promised to
//! decide what `on_completion` then `next` would). Both orders decide alike except when
//! several events fall on the same instant, where the simulator's is the reference:
//! which completions share a turn in the daemon is up to timing.
//!
//! With a per-dispatch overhead the dispatcher is a serial resource: a decision at `t`
//! reaches the worker at `t + overhead`, and the next decision is taken at that time.
//!
//! Only the next arrival and one completion per busy worker are pending at any time:
//! arrivals are drawn lazily, and completions sit in one slot per worker whose minimum
//! is cached (for the tens of workers a dispatcher drives, a scan on each completion
//! beats a binary heap). Ties are broken deterministically: completions before
//! arrivals, lower worker index first.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp1};

use super::stats::Timeline;
use crate::config::{ConfigError, PolicyConfig, QueuesConfig, WorkersConfig, MAX_TYPES};
use crate::policy::{self, Builtin, Event, Policy, Reservation, TypeIdx, TypeInfo, TypedQueues};
use crate::proto::Status;
use crate::report::{RunInfo, RunReport, TypeStats};
use crate::time::{Clock, Cycles};
use crate::workload::{Sampler, Workload};

/// How fast a phase sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Requests per second.
    Rps(f64),
    /// A fraction of the workers' capacity for this phase's mix (`1.0` = saturation).
    Load(f64),
}

/// When a phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// After this many arrivals.
    Requests(u64),
    /// After this many virtual nanoseconds.
    Nanos(u64),
}

/// The arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrivals {
    /// Exponential inter-arrival times (open-loop Poisson).
    #[default]
    Poisson,
    /// Constant inter-arrival times.
    Uniform,
}

/// One stretch of the run with its own mix and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub workload: Workload,
    pub rate: Rate,
    pub length: Length,
}

/// Everything one simulation run needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of workers.
    pub workers: usize,
    /// The policy, exactly as the daemon's config would give it.
    pub policy: PolicyConfig,
    /// The phases, run back to back (at least one).
    pub phases: Vec<Phase>,
    pub arrivals: Arrivals,
    /// Seed of the arrival and service-time streams. The stream does not depend on the
    /// policy: two policies run with one seed see the very same requests.
    pub seed: u64,
    /// Capacity of each type's queue at the dispatcher.
    pub queue_capacity: usize,
    /// The first `warmup_requests` arrivals are served but not measured...
    pub warmup_requests: u64,
    /// ...nor are those arriving before `warmup_ns`.
    pub warmup_ns: u64,
    /// Nanoseconds the dispatcher spends on each dispatch decision (0 = free).
    pub dispatch_overhead_ns: u64,
    /// Nanoseconds lost per preemption, for preemptive policies (none exists yet: the
    /// current policies never preempt, so this has no effect today).
    pub preemption_cost_ns: u64,
    /// Width of the per-type latency time series windows (by arrival time), if wanted.
    pub timeline_ns: Option<u64>,
    /// Tell the policy each type's mean service time and share of arrivals (of the
    /// first phase that has it), as a daemon config's `requests[].mean_ns` and `ratio`
    /// would: DARC reserves from them at start, SJF and EDF rank by the means (and
    /// only from them with `profile: static`). Without hints a dynamic DARC starts
    /// with every type on the spillway until its first profiling window closes, and
    /// SJF and EDF learn each type's mean from its completions.
    pub hints: bool,
}

impl SimConfig {
    /// One phase of `requests` measured arrivals of `workload` at `load`, with a tenth
    /// more as warm-up, Poisson arrivals, and the daemon's default queue capacity.
    pub fn new(workload: Workload, workers: usize, load: f64, requests: u64) -> SimConfig {
        let warmup = requests / 10;
        SimConfig {
            workers,
            policy: PolicyConfig::default(),
            phases: vec![Phase {
                workload,
                rate: Rate::Load(load),
                length: Length::Requests(requests + warmup),
            }],
            arrivals: Arrivals::Poisson,
            seed: 1,
            queue_capacity: crate::config::QueuesConfig::default().capacity,
            warmup_requests: warmup,
            warmup_ns: 0,
            dispatch_overhead_ns: 0,
            preemption_cost_ns: 0,
            timeline_ns: None,
            hints: true,
        }
    }
}

impl SimConfig {
    /// Checks that [`run`] can run this configuration, refusing what the daemon's
    /// [`Config::validate`](crate::config::Config::validate) refuses with its very
    /// checks (worker count, policy settings, queue capacity, and the types' means (and,
    /// for DARC, ratios) a static profile needs), and what [`run`] itself needs (phases of
    /// a positive finite rate and length, a timeline window of at least 1 ns).
    ///
    /// The error's key names the field: `workers`, `policy.delta` (and the other
    /// [`PolicyConfig::validate`] keys under `policy.`), `policy.profile` (static
    /// profile without usable hints), `hints` (static profile with hints off),
    /// `queue_capacity`, `timeline_ns`, `phases`, `phases[i].workload`,
    /// `phases[i].rate` or `phases[i].length`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |k: &str, m: String| Err(ConfigError::new(k, m));
        WorkersConfig::validate_number(self.workers)
            .map_err(|e| ConfigError::new("workers", e.msg))?;
        self.policy
            .validate(self.workers)
            .map_err(|e| ConfigError::new(format!("policy.{}", e.key), e.msg))?;
        QueuesConfig {
            capacity: self.queue_capacity,
        }
        .validate()
        .map_err(|e| ConfigError::new("queue_capacity", e.msg))?;
        if self.timeline_ns == Some(0) {
            return err("timeline_ns", "must be at least 1 ns".into());
        }
        if self.dispatch_overhead_ns > MAX_DISPATCH_OVERHEAD_NS {
            return err(
                "dispatch_overhead_ns",
                format!(
                    "must be at most {MAX_DISPATCH_OVERHEAD_NS} (1 s a decision), got {}",
                    self.dispatch_overhead_ns
                ),
            );
        }
        if self.phases.is_empty() {
            return err("phases", "at least one phase is needed".into());
        }
        for (i, ph) in self.phases.iter().enumerate() {
            ph.workload
                .validate()
                .map_err(|e| ConfigError::new(format!("phases[{i}].workload"), e.to_string()))?;
            if matches!(ph.length, Length::Requests(0) | Length::Nanos(0)) {
                return err(
                    &format!("phases[{i}].length"),
                    "must be at least 1 request or 1 ns".into(),
                );
            }
            let rps = phase_rps(ph, self.workers);
            if !(rps > 0.0 && rps.is_finite()) {
                return err(
                    &format!("phases[{i}].rate"),
                    format!("gives {rps:?} requests/s; need a finite rate > 0"),
                );
            }
        }
        let types = run_types(self);
        if types.len() > MAX_TYPES {
            return err(
                "phases",
                format!(
                    "the phases have {} request types, at most {MAX_TYPES} are supported",
                    types.len()
                ),
            );
        }
        QueuesConfig {
            capacity: self.queue_capacity,
        }
        .validate_total(types.len(), std::mem::size_of::<(Cycles, Queued)>())
        .map_err(|e| ConfigError::new("queue_capacity", e.msg))?;
        if self.policy.needs_type_hints() && !self.hints {
            return err(
                "hints",
                format!(
                    "{}'s static profile works from the types' mean service times{} alone, \
                     and hints are off",
                    self.policy.kind.name(),
                    if self.policy.kind == crate::config::PolicyKind::Darc {
                        " and ratios"
                    } else {
                        ""
                    }
                ),
            );
        }
        let infos = type_infos(self, &types);
        self.policy
            .validate_types(infos.iter().map(|t| (t.mean_ns, t.ratio)))
            .map_err(|e| {
                // Keys `[i].mean_ns` and `[i].ratio`: name the type instead.
                let about = e.key.strip_prefix('[').and_then(|k| k.split_once("]."));
                let msg = match about
                    .and_then(|(i, f)| Some((types.get(i.parse::<usize>().ok()?)?, f)))
                {
                    Some((t, field)) => format!("type {}: {field} {}", t.name, e.msg),
                    None => e.msg,
                };
                ConfigError::new("policy.profile", msg)
            })?;
        Ok(())
    }
}

/// A request type of the run (the union over the phases' mixes, by wire id).
#[derive(Debug, Clone, PartialEq)]
pub struct SimType {
    pub id: u32,
    pub name: String,
    /// Mean service time in the first phase that has the type (ns).
    pub mean_ns: f64,
    /// EDF's deadline in the first phase that has the type, if it gives one (ns).
    pub deadline_ns: Option<u64>,
}

/// What one phase of a run measured (requests are attributed to the phase they
/// arrived in).
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Per-type counters, latency and slowdown of the measured requests (indexed like
    /// [`SimResult::types`]; types absent from the phase stay empty).
    pub stats: Vec<TypeStats>,
    /// Nominal share of each type in this phase.
    pub shares: Vec<f64>,
    /// Configured load, if the phase was given one.
    pub load: Option<f64>,
    /// Measured arrivals per second over the phase's measurement window.
    pub offered_rps: f64,
    /// First measured arrival and last arrival of the phase, ns.
    pub window_ns: (Cycles, Cycles),
}

impl PhaseResult {
    /// Length of the measurement window in seconds.
    pub fn window_s(&self) -> f64 {
        self.window_ns.1.saturating_sub(self.window_ns.0) as f64 / 1e9
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct SimResult {
    pub types: Vec<SimType>,
    pub workers: usize,
    pub policy: &'static str,
    /// Per-phase statistics.
    pub phases: Vec<PhaseResult>,
    /// Start and end (last arrival) of the whole measurement window, ns.
    pub window_ns: (Cycles, Cycles),
    /// Time-average number of requests in the system (queued, in flight or in service)
    /// over the measurement window.
    pub mean_in_system: f64,
    /// Requests still queued when nothing could make progress any more (a policy that
    /// never dispatches them); 0 for a sound policy.
    pub unfinished: u64,
    /// Virtual time of the last event, ns.
    pub end_ns: Cycles,
    /// Total arrivals, warm-up included.
    pub arrivals: u64,
    /// Fraction of the run each worker spent serving.
    pub utilisation: Vec<f64>,
    /// DARC's reservation changes in order (virtual ns, reservation).
    pub reservations: Vec<(Cycles, Reservation)>,
    /// Per-type latency per time window, when asked for.
    pub timeline: Option<Timeline>,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    service: u64,
    /// Phase index, or `NOT_MEASURED` for warm-up requests.
    phase: u32,
}

const NOT_MEASURED: u32 = u32::MAX;

/// Most `dispatch_overhead_ns`: past it virtual time would overflow.
pub const MAX_DISPATCH_OVERHEAD_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Job {
    arrival: Cycles,
    service: u64,
    ty: u32,
    phase: u32,
}

#[derive(Debug, Default)]
struct Worker {
    running: Option<Job>,
    held: VecDeque<Job>,
    busy_ns: u64,
}

/// The arrival stream of one phase.
#[derive(Debug)]
struct PhaseGen {
    sampler: Sampler,
    /// Phase-local type index -> run type index.
    map: Vec<usize>,
    /// Mean inter-arrival time, ns.
    gap_ns: f64,
    length: Length,
}

/// Runs one simulation to the end (arrivals exhausted, every request answered).
pub fn run(cfg: &SimConfig) -> SimResult {
    assert!(cfg.workers > 0, "at least one worker");
    assert!(!cfg.phases.is_empty(), "at least one phase");
    let (types, gens) = plan(cfg);
    let infos = type_infos(cfg, &types);
    // Held as the dispatcher holds it: built-in policies by value, called directly.
    let mut policy: Builtin = policy::build(&cfg.policy, &infos, cfg.workers, Clock::NANOS).into();
    let mut engine = Engine {
        cfg,
        capacity: policy.worker_capacity(),
        queues: TypedQueues::new(types.len(), cfg.queue_capacity),
        workers: (0..cfg.workers).map(|_| Worker::default()).collect(),
        done: Completions::new(cfg.workers),
        in_flight: VecDeque::new(),
        dispatcher_free: 0,
        wake: None,
        stats: (0..cfg.phases.len())
            .map(|_| {
                types
                    .iter()
                    .map(|t| TypeStats::new(t.id, &t.name))
                    .collect()
            })
            .collect(),
        phase_windows: vec![(None, 0, 0); cfg.phases.len()],
        timeline: cfg.timeline_ns.map(|w| Timeline::new(w, types.len())),
        reservations: Vec::new(),
        in_system: 0,
        area: 0.0,
        last_t: 0,
        window: None,
        window_end: None,
        open_phase: 0,
    };
    let arrivals = engine.drive(&mut policy, gens);
    let unfinished = engine.queues.total_len() as u64;
    let (start, end) = engine.window.zip(engine.window_end).unwrap_or((0, 0));
    let span = end.saturating_sub(start) as f64;
    let phases = engine
        .stats
        .into_iter()
        .zip(&engine.phase_windows)
        .zip(&cfg.phases)
        .map(|((stats, &(first, last, n)), ph)| {
            let first = first.unwrap_or(last);
            let span = last.saturating_sub(first) as f64;
            PhaseResult {
                stats,
                shares: types
                    .iter()
                    .map(|t| {
                        ph.workload
                            .types
                            .iter()
                            .position(|m| m.id == t.id)
                            .map_or(0.0, |i| ph.workload.share(i))
                    })
                    .collect(),
                load: match ph.rate {
                    Rate::Load(l) => Some(l),
                    Rate::Rps(_) => None,
                },
                // n arrivals from the first to the last: n - 1 gaps.
                offered_rps: if span > 0.0 {
                    n.saturating_sub(1) as f64 * 1e9 / span
                } else {
                    0.0
                },
                window_ns: (first, last),
            }
        })
        .collect();
    SimResult {
        workers: cfg.workers,
        policy: policy.name(),
        phases,
        window_ns: (start, end),
        mean_in_system: if span > 0.0 { engine.area / span } else { 0.0 },
        unfinished,
        end_ns: engine.last_t,
        arrivals,
        utilisation: engine
            .workers
            .iter()
            .map(|w| w.busy_ns as f64 / engine.last_t.max(1) as f64)
            .collect(),
        reservations: engine.reservations,
        timeline: engine.timeline,
        types,
    }
}

impl SimResult {
    /// Statistics of type `ty` over all phases.
    pub fn type_stats(&self, ty: usize) -> TypeStats {
        let mut all = TypeStats::new(self.types[ty].id, &self.types[ty].name);
        for p in &self.phases {
            all.merge(&p.stats[ty]);
        }
        all
    }

    /// Latency quantile `q` of type `ty` over all phases, in ns.
    pub fn latency_at(&self, ty: usize, q: f64) -> u64 {
        self.type_stats(ty).latency.value_at_quantile(q)
    }

    /// Mean latency of type `ty` over all phases, in ns (HdrHistogram precision).
    pub fn mean_latency(&self, ty: usize) -> f64 {
        self.type_stats(ty).latency.mean()
    }

    /// Measured requests rejected because a queue was full, over all phases and types.
    pub fn rejected(&self) -> u64 {
        self.phases
            .iter()
            .flat_map(|p| &p.stats)
            .map(TypeStats::rejected_total)
            .sum()
    }

    /// One [`RunReport`] per phase, in `psp-client`'s schema. `policy` names the
    /// policy variant (e.g. `darc` or `darc-r3`).
    pub fn reports(&self, label: &str, policy: &str) -> Vec<RunReport> {
        self.phases
            .iter()
            .enumerate()
            .map(|(i, p)| RunReport {
                info: RunInfo {
                    label: label.into(),
                    policy: policy.into(),
                    workers: Some(self.workers),
                    phase: i,
                    load: p.load,
                    offered_rps: p.offered_rps,
                    window_s: p.window_s(),
                },
                types: p.stats.clone(),
                shares: p.shares.clone(),
                adherence: 1.0,
                malformed: 0,
                unexpected: 0,
                valid: true,
            })
            .collect()
    }
}

/// The run's types: the union over the phases' mixes, by id, in order of appearance.
fn run_types(cfg: &SimConfig) -> Vec<SimType> {
    let mut types: Vec<SimType> = Vec::new();
    for t in cfg.phases.iter().flat_map(|ph| &ph.workload.types) {
        if !types.iter().any(|s| s.id == t.id) {
            types.push(SimType {
                id: t.id,
                name: t.name.clone(),
                mean_ns: t.service.mean_ns(),
                deadline_ns: t.deadline_ns,
            });
        }
    }
    types
}

/// What the policy is told of the run's types: each one's mean service time and
/// share of arrivals with [`SimConfig::hints`], nothing without; and the deadline the
/// workload gives it (a setting, not a hint).
fn type_infos(cfg: &SimConfig, types: &[SimType]) -> Vec<TypeInfo> {
    types
        .iter()
        .zip(first_ratios(cfg, types))
        .map(|(t, ratio)| TypeInfo {
            name: t.name.clone(),
            mean_ns: cfg.hints.then(|| t.mean_ns.round() as u64),
            ratio: cfg.hints.then_some(ratio),
            deadline_ns: t.deadline_ns,
        })
        .collect()
}

/// A phase's arrival rate, requests per second.
fn phase_rps(ph: &Phase, workers: usize) -> f64 {
    match ph.rate {
        Rate::Rps(r) => r,
        Rate::Load(l) => ph.workload.rate_for_load(l, workers),
    }
}

/// The run's types (see [`run_types`]) and each phase's arrival stream.
fn plan(cfg: &SimConfig) -> (Vec<SimType>, Vec<PhaseGen>) {
    let types = run_types(cfg);
    let mut gens = Vec::new();
    for ph in &cfg.phases {
        let map = ph
            .workload
            .types
            .iter()
            .map(|t| {
                types
                    .iter()
                    .position(|s| s.id == t.id)
                    .expect("run_types has every phase's types")
            })
            .collect();
        let rps = phase_rps(ph, cfg.workers);
        assert!(
            rps > 0.0 && rps.is_finite(),
            "phase rate must be finite and > 0 (see SimConfig::validate)"
        );
        gens.push(PhaseGen {
            sampler: ph.workload.sampler(),
            map,
            gap_ns: 1e9 / rps,
            length: ph.length,
        });
    }
    (types, gens)
}

/// Each run type's share of arrivals in the first phase that has it.
fn first_ratios(cfg: &SimConfig, types: &[SimType]) -> Vec<f64> {
    types
        .iter()
        .map(|t| {
            cfg.phases
                .iter()
                .find_map(|ph| {
                    let i = ph.workload.types.iter().position(|m| m.id == t.id)?;
                    Some(ph.workload.share(i))
                })
                .unwrap_or(0.0)
        })
        .collect()
}

struct Engine<'a> {
    cfg: &'a SimConfig,
    capacity: usize,
    queues: TypedQueues<Queued>,
    workers: Vec<Worker>,
    done: Completions,
    /// Dispatched requests on their way to a worker (with a dispatch overhead), in time
    /// order: (delivery time, worker, job).
    in_flight: VecDeque<(Cycles, u32, Job)>,
    /// When the dispatcher can take its next decision.
    dispatcher_free: Cycles,
    /// A dispatcher wake-up is due at this time (it was busy when work was pending).
    wake: Option<Cycles>,
    /// `stats[phase][type]`.
    stats: Vec<Vec<TypeStats>>,
    /// Per phase: first measured arrival, last arrival, measured arrivals.
    phase_windows: Vec<(Option<Cycles>, Cycles, u64)>,
    timeline: Option<Timeline>,
    reservations: Vec<(Cycles, Reservation)>,
    in_system: u64,
    area: f64,
    last_t: Cycles,
    window: Option<Cycles>,
    window_end: Option<Cycles>,
    /// The phase whose arrivals are under way (the number of phases once they are
    /// over): a completion now, of any request, counts toward its throughput once
    /// its measurement window has begun.
    open_phase: u32,
}

impl Engine<'_> {
    /// The event loop; returns the number of arrivals.
    fn drive<P: Policy>(&mut self, policy: &mut P, gens: Vec<PhaseGen>) -> u64 {
        let mut rng = SmallRng::seed_from_u64(self.cfg.seed);
        let uniform = self.cfg.arrivals == Arrivals::Uniform;
        let gap = |rng: &mut SmallRng, mean: f64| -> f64 {
            if uniform {
                mean
            } else {
                let e: f64 = Exp1.sample(rng);
                e * mean
            }
        };
        // Arrival stream state.
        let mut phase = 0;
        let mut phase_start = 0.0f64;
        let mut phase_count = 0u64;
        let mut seq = 0u64;
        let mut t_arr = gap(&mut rng, gens[0].gap_ns);
        let mut next_arrival: Cycles = round(t_arr);

        loop {
            let t_cmp = self.done.next();
            let t_fly = self.in_flight.front().map_or(Cycles::MAX, |e| e.0);
            let t_wake = self.wake.unwrap_or(Cycles::MAX);
            let now = next_arrival.min(t_cmp).min(t_fly).min(t_wake);
            if now == Cycles::MAX {
                break;
            }
            self.advance(now);

            // 1. Completions, then deliveries of dispatched requests.
            while self.done.next() == now {
                let w = self.done.pop();
                self.complete(policy, w, now);
            }
            while self.in_flight.front().is_some_and(|e| e.0 == now) {
                let (_, w, job) = self.in_flight.pop_front().unwrap();
                self.give(w as usize, job, now);
            }

            // 2. Arrivals.
            while next_arrival == now {
                let g = &gens[phase];
                let local = g.sampler.pick_type(&mut rng);
                let service = g.sampler.service_ns(local, &mut rng);
                let ty = g.map[local];
                self.phase_windows[phase].1 = now;
                let measured = seq >= self.cfg.warmup_requests && now >= self.cfg.warmup_ns;
                self.arrive(policy, ty, service, measured.then_some(phase), now);
                seq += 1;
                phase_count += 1;
                // The next arrival, possibly in the next phase.
                next_arrival = Cycles::MAX;
                let mut next = t_arr + gap(&mut rng, g.gap_ns);
                loop {
                    let g = &gens[phase];
                    let over = match g.length {
                        Length::Requests(n) => phase_count >= n,
                        Length::Nanos(d) => next >= phase_start + d as f64,
                    };
                    if !over {
                        t_arr = next;
                        next_arrival = round(next).max(now);
                        break;
                    }
                    phase_start = match g.length {
                        Length::Requests(_) => t_arr,
                        Length::Nanos(d) => phase_start + d as f64,
                    };
                    phase += 1;
                    phase_count = 0;
                    self.open_phase = phase as u32;
                    if phase == gens.len() {
                        self.window_end = Some(now);
                        break;
                    }
                    // Memoryless: the new phase's first arrival is drawn afresh from
                    // its start.
                    t_arr = phase_start;
                    next = phase_start + gap(&mut rng, gens[phase].gap_ns);
                }
            }

            // 3. Dispatch.
            if self.wake.is_some_and(|t| t <= now) {
                self.wake = None;
            }
            if now >= self.dispatcher_free {
                self.dispatch(policy, now);
            }

            // 4. Policy events.
            while let Some(ev) = policy.poll_event() {
                match ev {
                    Event::Reservation { at, resa, .. } => self.reservations.push((at, resa)),
                }
            }
        }
        seq
    }

    /// Moves the clock to `now`, integrating the number in system over the window.
    #[inline]
    fn advance(&mut self, now: Cycles) {
        if let Some(start) = self.window {
            if self.window_end.is_none() {
                self.area += self.in_system as f64 * (now - self.last_t.max(start)) as f64;
            }
        }
        self.last_t = now;
    }

    #[inline]
    fn arrive<P: Policy>(
        &mut self,
        policy: &mut P,
        ty: TypeIdx,
        service: u64,
        phase: Option<usize>,
        now: Cycles,
    ) {
        if let Some(p) = phase {
            if self.window.is_none() {
                self.window = Some(now);
            }
            let w = &mut self.phase_windows[p];
            w.0.get_or_insert(now);
            w.2 += 1;
            self.stats[p][ty].record_sent(service, false);
        }
        let phase = phase.map_or(NOT_MEASURED, |p| p as u32);
        match self.queues.push(ty, now, Queued { service, phase }) {
            Ok(()) => {
                self.in_system += 1;
                policy.on_arrival(ty, now);
            }
            Err(_) => {
                if phase != NOT_MEASURED {
                    self.stats[phase as usize][ty].record_rejected(Status::QueueFull);
                }
            }
        }
    }

    /// Carries out the policy's decisions at `now`.
    #[inline]
    fn dispatch<P: Policy>(&mut self, policy: &mut P, now: Cycles) {
        let overhead = self.cfg.dispatch_overhead_ns;
        while let Some(d) = policy.next(self.queues.state(), now) {
            let (arrival, q) = self
                .queues
                .pop(d.ty)
                .expect("policy dispatched from an empty queue");
            let job = Job {
                arrival,
                service: q.service,
                ty: d.ty as u32,
                phase: q.phase,
            };
            if overhead == 0 {
                self.give(d.worker, job, now);
                continue;
            }
            // The decision takes `overhead`: the request reaches the worker then, and
            // the dispatcher decides again then.
            let at = now + overhead;
            self.in_flight.push_back((at, d.worker as u32, job));
            self.dispatcher_free = at;
            self.wake = Some(at);
            break;
        }
    }

    /// Hands `job` to worker `w`: it starts at once if the worker is idle.
    #[inline]
    fn give(&mut self, w: usize, job: Job, now: Cycles) {
        let worker = &mut self.workers[w];
        debug_assert!(
            worker.held.len() + usize::from(worker.running.is_some()) < self.capacity,
            "policy gave worker {w} more than its capacity {}",
            self.capacity
        );
        if worker.running.is_none() {
            worker.running = Some(job);
            self.done.set(w, now + job.service);
        } else {
            worker.held.push_back(job);
        }
    }

    /// Worker `w` finished its running request at `now`.
    #[inline]
    fn complete<P: Policy>(&mut self, policy: &mut P, w: usize, now: Cycles) {
        let worker = &mut self.workers[w];
        let job = worker.running.take().expect("completion of an idle worker");
        worker.busy_ns += job.service;
        if let Some(next) = worker.held.pop_front() {
            worker.running = Some(next);
            self.done.set(w, now + next.service);
        }
        self.in_system -= 1;
        let latency = now - job.arrival;
        if job.phase != NOT_MEASURED {
            record_ok(
                &mut self.stats[job.phase as usize][job.ty as usize],
                latency,
                job.service,
            );
        }
        // Throughput: completions during a phase's window, whichever request.
        let p = self.open_phase as usize;
        if self.phase_windows.get(p).is_some_and(|w| w.0.is_some()) {
            self.stats[p][job.ty as usize].ok_in_window += 1;
        }
        if let Some(tl) = &mut self.timeline {
            tl.record(job.ty as usize, job.arrival, latency);
        }
        policy.on_completion(w, job.ty as usize, job.service, now);
    }
}

/// `TypeStats::record_ok` without its 128-bit division (a third of the per-request
/// cost): the same fixed-point slowdown, in 64 bits while it cannot overflow.
#[inline]
fn record_ok(s: &mut TypeStats, latency: u64, service: u64) {
    if latency < u64::MAX / crate::report::SLOWDOWN_SCALE {
        s.ok += 1;
        s.latency.saturating_record(latency.max(1));
        if let Some(sd) = (latency * crate::report::SLOWDOWN_SCALE).checked_div(service) {
            s.slowdown.saturating_record(sd);
        }
    } else {
        s.record_ok(latency, service);
    }
}

/// Rounds a non-negative time to the nearest nanosecond (without a libm call).
#[inline]
fn round(t: f64) -> Cycles {
    (t + 0.5) as Cycles
}

/// Pending completions: one slot per worker (its running request's end, or `MAX`),
/// with the earliest cached.
#[derive(Debug)]
struct Completions {
    at: Vec<Cycles>,
    min_t: Cycles,
    min_w: usize,
}

impl Completions {
    fn new(n: usize) -> Completions {
        Completions {
            at: vec![Cycles::MAX; n],
            min_t: Cycles::MAX,
            min_w: 0,
        }
    }

    /// Time of the earliest completion (`MAX` if no worker is busy).
    #[inline]
    fn next(&self) -> Cycles {
        self.min_t
    }

    /// Worker `w` (idle) will complete at `t`.
    #[inline]
    fn set(&mut self, w: usize, t: Cycles) {
        debug_assert_eq!(self.at[w], Cycles::MAX);
        self.at[w] = t;
        if t < self.min_t || (t == self.min_t && w < self.min_w) {
            self.min_t = t;
            self.min_w = w;
        }
    }

    /// Removes the earliest completion and returns its worker.
    #[inline]
    fn pop(&mut self) -> usize {
        let w = self.min_w;
        self.at[w] = Cycles::MAX;
        let (mut t, mut m) = (Cycles::MAX, 0);
        for (i, &a) in self.at.iter().enumerate() {
            if a < t {
                t = a;
                m = i;
            }
        }
        self.min_t = t;
        self.min_w = m;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyKind;
    use crate::workload::{ServiceDist, TypeMix};

    fn constant(name: &str, id: u32, ns: u64) -> Workload {
        Workload {
            name: name.into(),
            types: vec![TypeMix {
                id,
                name: name.into(),
                ratio: 1.0,
                service: ServiceDist::Constant { ns },
                deadline_ns: None,
            }],
        }
    }

    fn with_policy(mut cfg: SimConfig, kind: PolicyKind) -> SimConfig {
        cfg.policy.kind = kind;
        cfg
    }

    #[test]
    fn every_policy_sees_the_same_requests_and_answers_them_all() {
        let hb = Workload::preset("high-bimodal").unwrap();
        let base = SimConfig::new(hb, 4, 0.7, 20_000);
        let mut sent = Vec::new();
        for kind in PolicyKind::ALL {
            let r = run(&with_policy(base.clone(), kind));
            assert_eq!(r.unfinished, 0);
            assert_eq!(r.arrivals, 22_000);
            let s: Vec<(u64, u64)> = (0..2)
                .map(|t| {
                    let st = r.type_stats(t);
                    assert_eq!(st.sent, st.ok + st.rejected_total(), "{kind:?}");
                    (st.sent, st.service_ns_sum as u64)
                })
                .collect();
            sent.push(s);
        }
        assert!(sent.windows(2).all(|w| w[0] == w[1]), "{sent:?}");
    }

    /// Throughput is what the workers complete during the window: the offered rate
    /// below saturation, the capacity past it (not the offered rate, as when every
    /// request answered counted, however late).
    #[test]
    fn achieved_is_the_offered_rate_below_saturation_and_the_capacity_past_it() {
        // 2 workers, 1 us each: capacity 2 M/s.
        let achieved = |load: f64| {
            let mut cfg = SimConfig::new(constant("A", 1, 1000), 2, load, 200_000);
            cfg.queue_capacity = 1 << 20;
            let r = run(&cfg);
            let p = &r.phases[0];
            p.stats[0].ok_in_window as f64 / p.window_s()
        };
        let below = achieved(0.5);
        assert!((below / 1e6 - 1.0).abs() < 0.02, "{below}");
        let past = achieved(2.0);
        assert!((past / 2e6 - 1.0).abs() < 0.01, "{past}");
    }

    /// Uniform arrivals every 100 ns are offered at 10^7 per second: the rate counts
    /// the gaps between the window's arrivals, one fewer than the arrivals.
    #[test]
    fn the_offered_rate_counts_gaps_between_arrivals() {
        let mut cfg = SimConfig::new(constant("A", 1, 10), 4, 0.0, 100);
        cfg.phases[0].rate = Rate::Rps(1e7);
        cfg.arrivals = Arrivals::Uniform;
        let r = run(&cfg);
        let offered = r.phases[0].offered_rps;
        assert!((offered / 1e7 - 1.0).abs() < 1e-9, "{offered}");
    }

    #[test]
    fn dispatch_overhead_delays_and_serialises_decisions() {
        // Uniform arrivals every 100 ns, 10 ns of service, 4 workers: no queueing.
        let mut cfg = SimConfig::new(constant("A", 1, 10), 4, 0.0, 1000);
        cfg.phases[0].rate = Rate::Rps(1e7);
        cfg.arrivals = Arrivals::Uniform;
        cfg.warmup_requests = 0;
        let lat = |cfg: &SimConfig| {
            let r = run(cfg);
            (r.latency_at(0, 0.0), r.latency_at(0, 1.0))
        };
        assert_eq!(lat(&cfg), (10, 10));
        // 50 ns per decision: every request waits for its own decision, no more.
        cfg.dispatch_overhead_ns = 50;
        assert_eq!(lat(&cfg), (60, 60));
        // 150 ns per decision against a request every 100 ns: the dispatcher is the
        // bottleneck and the backlog grows by 50 ns per request.
        cfg.dispatch_overhead_ns = 150;
        let (min, max) = lat(&cfg);
        assert_eq!(min, 160);
        assert!(max > 40_000, "{max}");
    }

    #[test]
    fn phases_run_in_order_with_their_own_mix() {
        let mut cfg = SimConfig::new(constant("A", 1, 1000), 2, 0.5, 0);
        cfg.warmup_requests = 0;
        cfg.phases = vec![
            Phase {
                workload: constant("A", 1, 1000),
                rate: Rate::Load(0.5),
                length: Length::Requests(3000),
            },
            Phase {
                workload: constant("B", 2, 5000),
                rate: Rate::Load(0.5),
                length: Length::Nanos(10_000_000),
            },
        ];
        cfg.timeline_ns = Some(1_000_000);
        let r = run(&cfg);
        assert_eq!(r.types.len(), 2);
        assert_eq!(r.phases[0].stats[0].sent, 3000);
        assert_eq!(r.phases[0].stats[1].sent, 0);
        assert_eq!(r.phases[1].stats[0].sent, 0);
        // Phase 2: 0.5 load of 2 workers at 5 µs = 200 k/s for 10 ms: ~2000 requests.
        let b = r.phases[1].stats[1].sent;
        assert!((1800..2200).contains(&b), "{b}");
        assert!(r.phases[1].window_ns.0 >= r.phases[0].window_ns.1);
        // The timeline covers both phases: A early, B late.
        let tl = r.timeline.unwrap();
        // Requests of A wait for nothing but their own 1 µs (2 workers at 50 %: a few
        // queue), and the histogram keeps `report::SIGFIG` significant digits.
        let a = tl.latency_at(0, 0, 0.5).unwrap();
        assert!((990..1100).contains(&a), "{a}");
        assert!(tl.latency_at(tl.windows.len() - 1, 1, 0.5).is_some());
    }

    /// The point of DARC against the policies that only order by type: on High Bimodal
    /// at 90 % load, SJF and EDF (which rank SHORT first) cut c-FCFS's SHORT tail, but
    /// a worker given a LONG request is lost to SHORT ones for 100 µs, and when all 14
    /// hold one, SHORT waits; DARC keeps a core free of LONG.
    #[test]
    fn sjf_and_edf_rank_short_first_but_only_darc_keeps_it_a_core() {
        let hb = Workload::preset("high-bimodal").unwrap();
        let base = SimConfig::new(hb, 14, 0.9, 100_000);
        let short_p999 = |kind: PolicyKind, hints: bool| {
            let mut c = with_policy(base.clone(), kind);
            c.hints = hints;
            let r = run(&c);
            assert_eq!(r.unfinished, 0, "{kind:?}");
            r.latency_at(0, 0.999)
        };
        let cfcfs = short_p999(PolicyKind::Cfcfs, true);
        let darc = short_p999(PolicyKind::Darc, true);
        // Told the means, or learning them (no hints): either way SHORT goes first.
        for kind in [PolicyKind::Sjf, PolicyKind::Edf] {
            for hints in [true, false] {
                let p = short_p999(kind, hints);
                assert!(
                    p * 2 < cfcfs,
                    "{kind:?} (hints {hints}): SHORT p99.9 {p} ns against c-FCFS {cfcfs}"
                );
                assert!(
                    darc * 10 < p,
                    "{kind:?} (hints {hints}): SHORT p99.9 {p} ns against DARC {darc}"
                );
            }
        }
    }

    /// A workload's deadline for a type is EDF's for it: LONG given deadline 0 (its
    /// arrival) goes before any SHORT that arrived after it, so its tail shrinks and
    /// SHORT's grows.
    #[test]
    fn a_workload_deadline_is_edfs() {
        let hb = Workload::preset("high-bimodal").unwrap();
        let base = with_policy(SimConfig::new(hb, 14, 0.9, 50_000), PolicyKind::Edf);
        let mut tight = base.clone();
        tight.phases[0].workload.types[1].deadline_ns = Some(0);
        let (a, b) = (run(&base), run(&tight));
        assert_eq!(b.types[1].deadline_ns, Some(0));
        assert!(b.latency_at(1, 0.999) < a.latency_at(1, 0.999));
        assert!(b.latency_at(0, 0.999) > 2 * a.latency_at(0, 0.999));
    }

    /// EDF with `slo: 0` ranks by arrival alone: it is c-FCFS, request for request.
    #[test]
    fn edf_with_slo_0_is_cfcfs() {
        let tpcc = Workload::preset("tpcc").unwrap();
        let base = SimConfig::new(tpcc, 6, 0.8, 30_000);
        let cfcfs = run(&with_policy(base.clone(), PolicyKind::Cfcfs));
        let edf = |slo: f64| {
            let mut c = with_policy(base.clone(), PolicyKind::Edf);
            c.policy.slo = slo;
            run(&c)
        };
        let same = |r: &SimResult| {
            (0..cfcfs.types.len()).all(|ty| {
                let (a, b) = (cfcfs.type_stats(ty), r.type_stats(ty));
                a.ok == b.ok && a.latency == b.latency
            })
        };
        assert!(same(&edf(0.0)), "EDF with slo 0 differs from c-FCFS");
        assert!(
            !same(&edf(10.0)),
            "the comparison cannot tell EDF from c-FCFS"
        );
    }

    #[test]
    fn validate_refuses_what_run_cannot_run() {
        let ok = SimConfig::new(Workload::preset("high-bimodal").unwrap(), 4, 0.5, 100);
        ok.validate().unwrap();
        let key = |f: &dyn Fn(&mut SimConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(key(&|c| c.workers = 0), "workers");
        assert_eq!(key(&|c| c.policy.delta = f64::NAN), "policy.delta");
        assert_eq!(key(&|c| c.policy.spillway = Some(4)), "policy.spillway");
        assert_eq!(key(&|c| c.queue_capacity = 0), "queue_capacity");
        // 5 types × 2^24 slots of 24 bytes: 1.9 GiB of queues.
        assert_eq!(
            key(&|c| {
                c.phases[0].workload = Workload::preset("tpcc").unwrap();
                c.queue_capacity = 1 << 24;
            }),
            "queue_capacity"
        );
        assert_eq!(key(&|c| c.timeline_ns = Some(0)), "timeline_ns");
        assert_eq!(
            key(&|c| c.dispatch_overhead_ns = u64::MAX),
            "dispatch_overhead_ns"
        );
        assert_eq!(key(&|c| c.phases.clear()), "phases");
        assert_eq!(
            key(&|c| c.phases[0].rate = Rate::Load(f64::NAN)),
            "phases[0].rate"
        );
        assert_eq!(
            key(&|c| c.phases[0].rate = Rate::Rps(0.0)),
            "phases[0].rate"
        );
        assert_eq!(
            key(&|c| c.phases[0].length = Length::Requests(0)),
            "phases[0].length"
        );
        let static_darc = |c: &mut SimConfig| c.policy.profile = crate::config::Profile::Static;
        assert_eq!(
            key(&|c| {
                static_darc(c);
                c.hints = false;
            }),
            "hints"
        );
        let mut c = ok.clone();
        static_darc(&mut c);
        c.validate().unwrap();
        // A mean that rounds to 0 ns is no mean to reserve from (the daemon says so too).
        c.phases[0] = Phase {
            workload: constant("A", 1, 0),
            ..c.phases[0].clone()
        };
        c.phases[0].rate = Rate::Rps(1e6);
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "policy.profile");
        assert!(e.msg.contains("type A: mean_ns"), "{e}");
    }

    #[test]
    fn a_full_queue_rejects_and_counts() {
        let mut cfg = SimConfig::new(constant("A", 1, 1000), 1, 3.0, 5000);
        cfg.queue_capacity = 8;
        cfg.policy.kind = PolicyKind::Cfcfs;
        let r = run(&cfg);
        let s = r.type_stats(0);
        assert!(s.rejected_total() > 3000, "{}", s.rejected_total());
        assert_eq!(s.sent, s.ok + s.rejected_total());
        // At most 8 queued + 1 in service ahead of anyone.
        assert!(r.latency_at(0, 1.0) <= 10_000);
        assert_eq!(r.rejected(), s.rejected_total());
    }
}

//! darc.rs - Dynamic Application-aware Reserved Cores: workers reserved to groups of
//! request types with similar service times, so that short requests never queue behind
//! long ones.
//!
//! DARC (Perséphone, SOSP'21) has three parts, each a separate piece of this module:
//!
//! 1. **Profiling** ([`Darc`], dynamic mode). Every completion adds its service time to
//!    its type's window. After `policy.window` completions in total the window closes:
//!    each type gets a mean service time and a ratio (its share of the window's
//!    completions). A type with no completion in the window is *absent*: no group, no
//!    reserved core. The demand of a type is `mean·ratio / Σ(mean·ratio) · n_workers`
//!    cores; DARC re-reserves when some type's demand moved by more than 10 % since the
//!    reservation in force was computed, or when the set of present types changed.
//!    In static mode (`policy.profile: static`) DARC reserves once from the configured
//!    `mean_ns` and `ratio` of each type and never profiles.
//! 2. **Reservation** ([`reserve`], pure). Types sorted by mean are grouped: a type joins
//!    the current group when its mean is less than `delta` (relative) above the group's
//!    first mean. Groups, shortest first, take `k` consecutive workers from worker 0 up,
//!    `k` being the group's demand rounded half down (at least 1), or the manual
//!    `policy.n_resas` entry. A group may also *steal* every worker after the ones
//!    reserved so far (longer groups' cores and unreserved ones), never a shorter
//!    group's. A group that finds fewer than `k` workers left takes what is left plus
//!    the **spillway** worker (`policy.spillway`, by default the last worker).
//! 3. **Dispatch** ([`Darc::next`]). Groups are served shortest first; within a group
//!    the oldest head request goes first. It runs on an idle worker reserved to its
//!    group, else on an idle stealable one. If neither exists the request *waits*, even
//!    if a shorter group's worker is idle: DARC is non-work-conserving on purpose, so
//!    that a burst of long requests can never occupy the cores short requests need.
//!    Types without a group (absent from the last window, or unknown) run only on the
//!    spillway, after all groups.
//!
//! Until the first reservation exists (dynamic mode before the first window closes)
//! DARC behaves as c-FCFS: the oldest head request goes to any idle worker.
//!
//! # Decisions (where the paper or the original code left a choice)
//! - **Spillway** defaults to the last worker, not worker 0 as in the original: the
//!   workers are handed out from 0 to the shortest group first, so the last worker
//!   belongs to the longest groups (or to nobody), and overflowing long types land
//!   next to other long types rather than on the shortest group's core.
//! - **`n_resas`**: entry `i` is the exact number of workers reserved to group `i`
//!   (shortest first); groups beyond the list get their computed `k`. An entry of 0
//!   gives the group no reserved worker: it runs only on idle workers it may steal
//!   (all the workers of longer groups). With two types, `n_resas: [0]` therefore
//!   makes the long type own every core while short requests still go first whenever
//!   a core is idle; `[k]` gives `k` cores to the short type and the rest to the long
//!   one. A group left with neither reserved nor stealable workers gets the spillway,
//!   so no type is ever stranded.
//! - **Within a group** the oldest head request wins (FCFS across the group's types):
//!   a group is one class of similar service times, and serving its types in mean
//!   order would let a steady stream of the shortest member starve the others.
//! - **Initial reservation in dynamic mode**: when *every* type has both `mean_ns` and
//!   `ratio` configured, DARC starts from the reservation those values give (reported
//!   as an event at time 0) and lets profiling correct it; otherwise it starts as
//!   c-FCFS and reserves when the first window closes.
//! - The 10 % threshold compares with the demands the reservation in force was
//!   computed from, so a slow drift accumulates until it triggers.

use std::collections::VecDeque;
use std::fmt;

use super::{
    Dispatch, Event, Policy, QueueState, Refill, TypeIdx, TypeInfo, WorkerIdx, WorkerSet, MAX_TYPES,
};
use crate::config::{PolicyConfig, Profile};
use crate::time::{Clock, Cycles};

/// Relative change of a type's demand that triggers a new reservation.
const DEMAND_CHANGE: f64 = 0.1;
/// Events kept for the driver before the oldest are dropped (it should drain them).
const MAX_PENDING_EVENTS: usize = 1024;
/// [`Darc::attention`]: the reservation changed since `next` last returned `None`.
const CHANGED: u8 = 1;
/// [`Darc::attention`]: dynamic mode, every completion is profiled.
const PROFILING: u8 = 2;

/// The load of one request type, as measured over a window or configured: the input
/// of [`reserve`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TypeStat {
    pub ty: TypeIdx,
    /// Mean service time in nanoseconds.
    pub mean_ns: f64,
    /// Share of arrivals (need not be normalised: only ratios between types matter).
    pub ratio: f64,
}

/// A group of request types with similar mean service times, and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Member types, shortest mean first.
    pub types: Vec<TypeIdx>,
    /// Ratio-weighted mean service time of the members, in nanoseconds.
    pub mean_ns: f64,
    /// Cores the group needs (before rounding): its share of the total work times the
    /// number of workers.
    pub demand: f64,
    /// Workers reserved to the group (includes the spillway if `spilled`).
    pub reserved: WorkerSet,
    /// Workers of longer groups, or unreserved, that the group may use when idle.
    pub stealable: WorkerSet,
    /// The group got the spillway worker because fewer workers than it needed were
    /// left (or it had none to reserve nor steal).
    pub spilled: bool,
}

impl Group {
    /// Every worker the group may run on.
    pub fn eligible(&self) -> WorkerSet {
        self.reserved.union(&self.stealable)
    }
}

/// A complete core reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// Groups, shortest mean service time first.
    pub groups: Vec<Group>,
    /// The worker that serves overflowing groups and types without a group.
    pub spillway: WorkerIdx,
    pub n_workers: usize,
    /// The per-type loads this reservation was computed from, shortest mean first.
    pub stats: Vec<TypeStat>,
    /// Entries of `n_resas` past the last group, ignored: types within `delta` of each
    /// other merged into fewer groups than the list has entries.
    pub unused_n_resas: usize,
}

impl Reservation {
    /// Index of the group `ty` belongs to, if any.
    pub fn group_of(&self, ty: TypeIdx) -> Option<usize> {
        self.groups.iter().position(|g| g.types.contains(&ty))
    }

    /// The workers a request of type `ty` may run on: its group's reserved and
    /// stealable workers, or only the spillway for a type without a group.
    pub fn eligible(&self, ty: TypeIdx) -> WorkerSet {
        match self.group_of(ty) {
            Some(g) => self.groups[g].eligible(),
            None => std::iter::once(self.spillway).collect(),
        }
    }

    /// The shortest group `worker` is reserved to, if any.
    pub fn reserved_to(&self, worker: WorkerIdx) -> Option<usize> {
        self.groups.iter().position(|g| g.reserved.contains(worker))
    }

    /// Whether `other` puts the same types on the same cores (the groups' sets of
    /// types, reserved and stealable workers, and the spillway), whatever the demand
    /// figures. A group's types are listed shortest first: two types within `delta` of
    /// each other swap places as their measured means jitter, which moves no core.
    pub fn same_cores(&self, other: &Reservation) -> bool {
        self.spillway == other.spillway
            && self.groups.len() == other.groups.len()
            && self.groups.iter().zip(&other.groups).all(|(a, b)| {
                type_mask(&a.types) == type_mask(&b.types)
                    && a.reserved == b.reserved
                    && a.stealable == b.stealable
            })
    }

    /// One line naming types by `names` (falling back to `#index`), e.g.
    /// `[SHORT]:{0} steal {1-13} | [LONG]:{1-13} | spillway 13`.
    pub fn describe<S: AsRef<str>>(&self, names: &[S]) -> String {
        let mut out = String::new();
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            out.push('[');
            for (j, &t) in g.types.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                match names.get(t) {
                    Some(n) => out.push_str(n.as_ref()),
                    None => out.push_str(&format!("#{t}")),
                }
            }
            out.push_str("]:");
            out.push_str(&fmt_set(&g.reserved));
            if !g.stealable.is_empty() {
                out.push_str(" steal ");
                out.push_str(&fmt_set(&g.stealable));
            }
        }
        if !out.is_empty() {
            out.push_str(" | ");
        }
        out.push_str(&format!("spillway {}", self.spillway));
        out
    }
}

impl fmt::Display for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe::<&str>(&[]))
    }
}

/// A worker set as compact ranges: `{0-3,7,9-13}`, `{}` when empty.
fn fmt_set(s: &WorkerSet) -> String {
    let mut out = String::from("{");
    let mut run: Option<(WorkerIdx, WorkerIdx)> = None;
    let flush = |out: &mut String, (lo, hi): (WorkerIdx, WorkerIdx)| {
        if out.len() > 1 {
            out.push(',');
        }
        if lo == hi {
            out.push_str(&lo.to_string());
        } else {
            out.push_str(&format!("{lo}-{hi}"));
        }
    };
    for w in s.iter() {
        run = match run {
            Some((lo, hi)) if hi + 1 == w => Some((lo, w)),
            Some(r) => {
                flush(&mut out, r);
                Some((w, w))
            }
            None => Some((w, w)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out.push('}');
    out
}

/// Cores for a group that needs `demand` cores: at least 1, otherwise rounded half
/// down (2.5 → 2, 2.51 → 3).
pub fn cores_for(demand: f64) -> usize {
    if !demand.is_finite() || demand < 1.0 {
        return 1;
    }
    let whole = demand.floor();
    if demand - whole <= 0.5 {
        whole as usize
    } else {
        whole as usize + 1
    }
}

/// Bit `t` set for each type `t` of `types` (every type index is below
/// [`MAX_TYPES`](crate::policy::MAX_TYPES), 64).
fn type_mask(types: &[TypeIdx]) -> u64 {
    types.iter().fold(0, |m, &t| m | 1 << t)
}

/// Computes a reservation of `n_workers` workers for the given type loads (see the
/// module docs). `types` lists the present types only; `n_resas[i]`, if given,
/// overrides the number of workers reserved to group `i`; `spillway` must be a worker.
pub fn reserve(
    types: &[TypeStat],
    n_workers: usize,
    delta: f64,
    n_resas: Option<&[usize]>,
    spillway: WorkerIdx,
) -> Reservation {
    assert!(
        (1..=WorkerSet::CAPACITY).contains(&n_workers),
        "DARC needs 1..={} workers, got {n_workers}",
        WorkerSet::CAPACITY
    );
    assert!(
        spillway < n_workers,
        "spillway worker {spillway} does not exist ({n_workers} workers)"
    );
    let mut stats = types.to_vec();
    stats.sort_by(|a, b| a.mean_ns.total_cmp(&b.mean_ns).then(a.ty.cmp(&b.ty)));

    // Group: a type joins the current group if it is within delta of the group's first.
    let mut members: Vec<&[TypeStat]> = Vec::new();
    let mut start = 0;
    for i in 1..=stats.len() {
        let first = stats[start].mean_ns;
        if i == stats.len() || stats[i].mean_ns - first >= first * delta {
            members.push(&stats[start..i]);
            start = i;
        }
    }

    let work = |ts: &[TypeStat]| ts.iter().map(|t| t.mean_ns * t.ratio).sum::<f64>();
    let total = work(&stats);
    let mut next_free = 0; // workers 0..next_free are reserved
    let mut groups = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let w = work(m);
        let demand = if total > 0.0 {
            w / total * n_workers as f64
        } else {
            0.0
        };
        let want = match n_resas.and_then(|n| n.get(i)) {
            Some(&k) => k,
            None => cores_for(demand),
        };
        let left = n_workers - next_free;
        let (mut reserved, mut spilled) = if want <= left {
            next_free += want;
            (WorkerSet::range(next_free - want, next_free), false)
        } else {
            let mut r = WorkerSet::range(next_free, n_workers);
            r.insert(spillway);
            next_free = n_workers;
            (r, true)
        };
        let stealable = WorkerSet::range(next_free, n_workers);
        if reserved.is_empty() && stealable.is_empty() {
            reserved.insert(spillway);
            spilled = true;
        }
        let ratio: f64 = m.iter().map(|t| t.ratio).sum();
        let mean_ns = if ratio > 0.0 {
            w / ratio
        } else {
            m.iter().map(|t| t.mean_ns).sum::<f64>() / m.len() as f64
        };
        groups.push(Group {
            types: m.iter().map(|t| t.ty).collect(),
            mean_ns,
            demand,
            reserved,
            stealable,
            spilled,
        });
    }
    let unused_n_resas = n_resas.map_or(0, |n| n.len().saturating_sub(groups.len()));
    Reservation {
        groups,
        spillway,
        n_workers,
        stats,
        unused_n_resas,
    }
}

/// Per-type demand (cores) of `stats`, indexed by type, 0 for absent types.
fn demands(stats: &[TypeStat], n_types: usize, n_workers: usize) -> Vec<f64> {
    let mut d = Vec::with_capacity(n_types);
    demands_into(stats, n_types, n_workers, &mut d);
    d
}

/// [`demands`] into `d` (reusing its memory).
fn demands_into(stats: &[TypeStat], n_types: usize, n_workers: usize, d: &mut Vec<f64>) {
    let total: f64 = stats.iter().map(|t| t.mean_ns * t.ratio).sum();
    d.clear();
    d.resize(n_types, 0.0);
    if total > 0.0 {
        for t in stats {
            d[t.ty] = t.mean_ns * t.ratio / total * n_workers as f64;
        }
    }
}

/// A group as `next` sees it: bit masks only.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Bit `t` set for member type `t`.
    types: u64,
    reserved: WorkerSet,
    stealable: WorkerSet,
}

/// A [`Slot`] with one word per worker set: what `next` walks when every worker is
/// below 64 (the common case), with no loop over words.
#[derive(Debug, Clone, Copy)]
struct NarrowSlot {
    types: u64,
    reserved: u64,
    stealable: u64,
}

/// The current profiling window.
#[derive(Debug, Clone)]
struct Window {
    /// Sum of service cycles per type.
    sum: Vec<Cycles>,
    /// Completions per type.
    count: Vec<u64>,
    /// Completions of all types.
    total: u64,
}

/// [`Darc::serves`]: held inline (a pointer fewer to follow per completion), and
/// shown in `Debug` with its tail of equal masks folded into a count (after a
/// reservation, the workers that do not exist; before it, every worker).
#[derive(Clone)]
struct Serves([u64; WorkerSet::CAPACITY]);

impl std::fmt::Debug for Serves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last = self.0[WorkerSet::CAPACITY - 1];
        let n = self.0.iter().rposition(|&m| m != last).map_or(0, |i| i + 1);
        write!(
            f,
            "{:x?} then {} x {last:x}",
            &self.0[..n],
            WorkerSet::CAPACITY - n
        )
    }
}

/// [`Darc::group_of`]: per type, its group's types (`same`) and the types of the
/// groups before it (`earlier`).
#[derive(Clone)]
struct GroupOf {
    same: [u64; MAX_TYPES],
    earlier: [u64; MAX_TYPES],
}

impl GroupOf {
    /// For `groups`' type masks, shortest group first; a type in none gets no group
    /// and every type before it. (`[u64::MAX]`, before any reservation: one group of
    /// every type, none before it.)
    fn of(groups: &[u64]) -> GroupOf {
        let mut g = GroupOf {
            same: [0; MAX_TYPES],
            earlier: [u64::MAX; MAX_TYPES],
        };
        let mut before = 0;
        for &types in groups {
            for t in (0..MAX_TYPES).filter(|t| types & 1 << t != 0) {
                g.same[t] = types;
                g.earlier[t] = before;
            }
            before |= types;
        }
        g
    }
}

/// Shown as [`Serves`] is: the tail of types with the same entries (those that do not
/// exist, after a reservation; every type before it) folded into a count.
impl std::fmt::Debug for GroupOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entry = |t: usize| (self.same[t], self.earlier[t]);
        let last = entry(MAX_TYPES - 1);
        let n = (0..MAX_TYPES)
            .rposition(|t| entry(t) != last)
            .map_or(0, |i| i + 1);
        write!(
            f,
            "same {:x?}, earlier {:x?}, then {} x ({:x}, {:x})",
            &self.same[..n],
            &self.earlier[..n],
            MAX_TYPES - n,
            last.0,
            last.1
        )
    }
}

/// The DARC policy. See the module docs.
#[derive(Debug, Clone)]
pub struct Darc {
    n_workers: usize,
    names: Vec<String>,
    clock: Clock,
    delta: f64,
    /// Completions per window (0: static mode, no profiling).
    window_len: u64,
    n_resas: Option<Vec<usize>>,
    spillway: WorkerIdx,

    idle: WorkerSet,
    /// Dispatch tables of the reservation in force, shortest group first.
    slots: Vec<Slot>,
    /// The same as [`NarrowSlot`]s when there are at most 64 workers (else empty);
    /// empty too while there is no reservation.
    narrow: Vec<NarrowSlot>,
    /// Types that have a group.
    grouped: u64,
    /// Each group's types, shortest group first: what `on_completion_next` walks (the
    /// same as the slots' `types`, kept dense: walking `slots` instead cost +1
    /// instruction per request, DARC/4 types). Before the first reservation, one group
    /// of every type: c-FCFS, with no case of its own on the refill path.
    group_types: Vec<u64>,
    /// Per type, the types of its group and of the groups before it (shortest first),
    /// for the refill's fast path: when the lowest waiting type a worker may serve has
    /// no waiting type of an earlier group beside it, its group is the first waiting
    /// one, with no walk over `group_types` (-8.7 instructions per request, DARC/4
    /// types). A type without a group has none of its own and every type before it
    /// (the walk decides). Fixed arrays: indexed by a bit's position, no bounds check.
    group_of: GroupOf,
    /// Per worker: the types of the groups that may run on it (reserved or stealing);
    /// every type before the first reservation. A fixed array indexed modulo its
    /// length: no bounds check per completion (from the first reservation on, workers
    /// beyond `n_workers` serve none).
    serves: Serves,
    resa: Option<Reservation>,
    /// What a completion must look at beyond the refill: bit [`CHANGED`], the
    /// reservation changed since `next` last returned `None` (an idle worker may be
    /// eligible for a waiting request, which only `next` finds); bit [`PROFILING`],
    /// dynamic mode. One test per refill (`on_completion_next`) for both (static
    /// DARC: 2 instructions instead of 5).
    attention: u8,

    window: Window,
    /// Per-type demand the reservation in force was computed from.
    resa_demand: Vec<f64>,
    /// Types present when the reservation in force was computed.
    resa_active: u64,
    windows_closed: u64,
    /// Scratch space of `close_window` (no allocation unless the reservation changes).
    window_stats: Vec<TypeStat>,
    window_demand: Vec<f64>,

    events: VecDeque<Event>,
    events_dropped: u64,
}

impl Darc {
    /// The reservation changed since `next` last returned `None`.
    fn changed(&self) -> bool {
        self.attention & CHANGED != 0
    }

    /// DARC over `n_workers` workers for `types`, from the `policy` section of the
    /// config. `clock` converts measured service cycles into nanoseconds.
    ///
    /// In static mode, or in dynamic mode when every type has `mean_ns` and `ratio`,
    /// the initial reservation is made here and reported as an event at time 0.
    pub fn new(cfg: &PolicyConfig, types: &[TypeInfo], n_workers: usize, clock: Clock) -> Darc {
        let n_types = types.len();
        assert!(n_types <= 64, "at most 64 request types");
        assert!(
            (1..=WorkerSet::CAPACITY).contains(&n_workers),
            "DARC needs 1..={} workers, got {n_workers}",
            WorkerSet::CAPACITY
        );
        let spillway = cfg.spillway.unwrap_or(n_workers - 1);
        assert!(
            spillway < n_workers,
            "policy.spillway {spillway} is not a worker ({n_workers} workers)"
        );
        let is_static = cfg.profile == Profile::Static;
        let mut darc = Darc {
            n_workers,
            names: types.iter().map(|t| t.name.clone()).collect(),
            clock,
            delta: cfg.delta,
            window_len: if is_static { 0 } else { cfg.window.max(1) },
            attention: if is_static { 0 } else { PROFILING },
            n_resas: cfg.n_resas.clone(),
            spillway,
            idle: WorkerSet::first_n(n_workers),
            slots: Vec::new(),
            narrow: Vec::new(),
            grouped: 0,
            group_types: vec![u64::MAX],
            group_of: GroupOf::of(&[u64::MAX]),
            serves: Serves([u64::MAX; WorkerSet::CAPACITY]),
            resa: None,
            window: Window {
                sum: vec![0; n_types],
                count: vec![0; n_types],
                total: 0,
            },
            resa_demand: vec![0.0; n_types],
            resa_active: 0,
            windows_closed: 0,
            window_stats: Vec::with_capacity(n_types),
            window_demand: Vec::with_capacity(n_types),
            events: VecDeque::new(),
            events_dropped: 0,
        };
        let all_configured = types
            .iter()
            .all(|t| t.mean_ns.is_some() && t.ratio.is_some());
        if is_static || (all_configured && n_types > 0) {
            // Types without both values, or with a zero ratio, stay absent (spillway).
            let total: f64 = types.iter().filter_map(|t| t.ratio).sum();
            let stats: Vec<TypeStat> = types
                .iter()
                .enumerate()
                .filter_map(|(ty, t)| match (t.mean_ns, t.ratio) {
                    (Some(m), Some(r)) if r > 0.0 && r.is_finite() => Some(TypeStat {
                        ty,
                        mean_ns: m as f64,
                        ratio: r / total,
                    }),
                    _ => None,
                })
                .collect();
            if !stats.is_empty() {
                darc.install(stats, 0);
            }
        }
        // Nothing waits yet: no idle worker can be eligible for a waiting request.
        darc.attention &= !CHANGED;
        darc
    }

    /// The reservation in force (`None` before the first one: c-FCFS).
    pub fn reservation(&self) -> Option<&Reservation> {
        self.resa.as_ref()
    }

    /// Profiling windows closed so far.
    pub fn windows_closed(&self) -> u64 {
        self.windows_closed
    }

    /// Reservation events dropped because the driver did not drain them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Computes and puts in force the reservation for `stats` (the present types).
    fn install(&mut self, stats: Vec<TypeStat>, now: Cycles) {
        self.resa_demand = demands(&stats, self.names.len(), self.n_workers);
        self.resa_active = stats.iter().fold(0, |m, t| m | 1 << t.ty);
        let resa = reserve(
            &stats,
            self.n_workers,
            self.delta,
            self.n_resas.as_deref(),
            self.spillway,
        );
        // The demand moved, maybe the cores did not: then the tables stay, and so does
        // the premise of the refill at completion (the event still reports the demand).
        let same_cores = self.resa.as_ref().is_some_and(|r| r.same_cores(&resa));
        if same_cores {
            self.push_event(now, &resa, false);
            self.resa = Some(resa);
            return;
        }
        self.slots = resa
            .groups
            .iter()
            .map(|g| Slot {
                types: type_mask(&g.types),
                reserved: g.reserved,
                stealable: g.stealable,
            })
            .collect();
        self.narrow = if self.n_workers <= 64 {
            self.slots
                .iter()
                .map(|s| NarrowSlot {
                    types: s.types,
                    reserved: s.reserved.low_word(),
                    stealable: s.stealable.low_word(),
                })
                .collect()
        } else {
            Vec::new()
        };
        self.grouped = self.slots.iter().fold(0, |m, s| m | s.types);
        self.group_types = self.slots.iter().map(|s| s.types).collect();
        self.group_of = GroupOf::of(&self.group_types);
        for (w, serves) in self.serves.0.iter_mut().enumerate() {
            *serves = resa
                .groups
                .iter()
                .filter(|g| g.eligible().contains(w))
                .flat_map(|g| &g.types)
                .fold(0, |m, &t| m | 1 << t);
        }
        self.push_event(now, &resa, true);
        self.resa = Some(resa);
        self.attention |= CHANGED;
    }

    fn push_event(&mut self, now: Cycles, resa: &Reservation, moved: bool) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(Event::Reservation {
            at: now,
            resa: resa.clone(),
            moved,
        });
    }

    /// Closes the profiling window and re-reserves if the demand moved.
    #[cold]
    #[inline(never)]
    fn close_window(&mut self, now: Cycles) {
        let w = &mut self.window;
        let total = w.total as f64;
        let mut stats = std::mem::take(&mut self.window_stats);
        stats.clear();
        for ty in 0..w.count.len() {
            if w.count[ty] > 0 {
                stats.push(TypeStat {
                    ty,
                    mean_ns: self.clock.cycles_to_ns(w.sum[ty]) / w.count[ty] as f64,
                    ratio: w.count[ty] as f64 / total,
                });
            }
            w.sum[ty] = 0;
            w.count[ty] = 0;
        }
        w.total = 0;
        self.windows_closed += 1;

        let active = stats.iter().fold(0u64, |m, t| m | 1 << t.ty);
        demands_into(
            &stats,
            self.names.len(),
            self.n_workers,
            &mut self.window_demand,
        );
        let moved = self
            .window_demand
            .iter()
            .zip(&self.resa_demand)
            .any(|(d, prev)| (d - prev).abs() > prev * DEMAND_CHANGE);
        if moved || active != self.resa_active || self.resa.is_none() {
            self.install(stats.clone(), now);
        }
        self.window_stats = stats;
    }

    /// The type among `bits` (all waiting, at least one) whose head request arrived
    /// first (ties: lowest index).
    #[inline]
    fn oldest(queues: &QueueState, mut bits: u64) -> TypeIdx {
        debug_assert!(bits != 0 && bits & !queues.nonempty() == 0);
        let first = bits.trailing_zeros() as usize;
        if bits & (bits - 1) == 0 {
            return first; // one type waiting in the group: nothing to compare
        }
        let mut best = (queues.waiting_since(first), first);
        bits &= bits - 1;
        while bits != 0 {
            let t = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let a = queues.waiting_since(t);
            if a < best.0 {
                best = (a, t);
            }
        }
        best.1
    }

    /// Marks `worker` idle, and answers `refill`.
    #[inline]
    fn free(&mut self, worker: WorkerIdx, refill: Refill) -> Refill {
        self.idle.insert_apart(worker);
        refill
    }

    /// Adds a completion to the profiling window (dynamic mode).
    #[inline]
    fn profile(&mut self, ty: TypeIdx, service: Cycles, now: Cycles) {
        if self.window_len == 0 || ty >= self.window.count.len() {
            return;
        }
        let w = &mut self.window;
        w.sum[ty] = w.sum[ty].saturating_add(service);
        w.count[ty] += 1;
        w.total += 1;
        if w.total >= self.window_len {
            self.close_window(now);
        }
    }

    /// The type whose head `worker` would get from `next` if it were the only idle
    /// worker that may serve a waiting request (see `on_completion_next`).
    #[inline]
    fn pick_for(&self, worker: WorkerIdx, queues: &QueueState) -> Option<TypeIdx> {
        // Nothing waiting needs no test of its own: no bit below, no stray either.
        let waiting = queues.nonempty();
        // No reservation yet (c-FCFS: one group, served by all) needs no case of its own.
        let bits = waiting & self.serves.0[worker % WorkerSet::CAPACITY];
        if bits != 0 {
            // A type is in one group only: the first group with a bit in `bits` is the
            // shortest waiting group `worker` may serve. It is the lowest waiting
            // type's when no type of an earlier group waits (always so when types are
            // listed shortest first, and when one type waits).
            let first = bits.trailing_zeros() as usize;
            if bits & self.group_of.earlier[first] == 0 {
                let b = bits & self.group_of.same[first];
                return Some(if b & (b - 1) == 0 {
                    first
                } else {
                    Self::oldest(queues, b)
                });
            }
            for &types in &self.group_types {
                let b = bits & types;
                if b != 0 {
                    return Some(Self::oldest(queues, b));
                }
            }
        }
        let stray = waiting & !self.grouped;
        (stray != 0 && worker == self.spillway).then(|| Self::oldest(queues, stray))
    }

    #[inline]
    fn take(&mut self, ty: TypeIdx, worker: WorkerIdx) -> Option<Dispatch> {
        self.idle.remove(worker);
        Some(Dispatch { ty, worker })
    }
}

impl Policy for Darc {
    fn name(&self) -> &'static str {
        "darc"
    }

    fn into_builtin(self: Box<Self>) -> super::Builtin {
        super::Builtin::Darc(*self)
    }

    fn on_completion(&mut self, worker: WorkerIdx, ty: TypeIdx, service: Cycles, now: Cycles) {
        debug_assert!(worker < self.n_workers, "completion from worker {worker}");
        self.idle.insert_apart(worker);
        self.profile(ty, service, now);
    }

    /// Settled, no idle worker may serve a waiting request (`next` returned `None`),
    /// so `next` would find `worker` the only idle one eligible: for the first group
    /// (shortest first) that has a request waiting and counts `worker` among its
    /// reserved or stealable workers, it would give that group's oldest head to
    /// `worker` (reserved first, then stealable, can pick no other); failing that, a
    /// type without a group to the spillway. A new reservation breaks the premise:
    /// then `Ask`, until `next` has had its say (returned `None`).
    #[inline]
    fn on_completion_next(
        &mut self,
        worker: WorkerIdx,
        ty: TypeIdx,
        service: Cycles,
        now: Cycles,
        queues: &QueueState,
    ) -> Refill {
        debug_assert!(worker < self.n_workers, "completion from worker {worker}");
        if self.attention != 0 {
            self.profile(ty, service, now);
            if self.changed() {
                return self.free(worker, Refill::Ask);
            }
        }
        match self.pick_for(worker, queues) {
            Some(ty) => Refill::Take(ty),
            None => self.free(worker, Refill::Idle),
        }
    }

    #[inline]
    fn next(&mut self, queues: &QueueState, _now: Cycles) -> Option<Dispatch> {
        let d = self.decide(queues);
        if d.is_none() {
            // Every decision the reservation in force allows is made.
            self.attention &= !CHANGED;
        }
        d
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn summary(&self) -> String {
        match &self.resa {
            Some(r) => format!("groups {}", r.describe(&self.names)),
            None if self.window_len > 0 => format!(
                "c-FCFS until the first reservation (window {}/{})",
                self.window.total, self.window_len
            ),
            None => "c-FCFS (no type has a configured load)".into(),
        }
    }
}

impl Darc {
    /// What `next` decides (see the module docs).
    #[inline]
    fn decide(&mut self, queues: &QueueState) -> Option<Dispatch> {
        let waiting = queues.nonempty();
        if self.n_workers <= 64 {
            // Every worker is a bit of one word.
            let idle = self.idle.low_word();
            if waiting == 0 || idle == 0 {
                return None;
            }
            if self.narrow.is_empty() {
                // Nothing learnt yet: c-FCFS.
                return self.take(queues.oldest()?, idle.trailing_zeros() as usize);
            }
            for s in &self.narrow {
                let bits = waiting & s.types;
                if bits == 0 {
                    continue;
                }
                // Own reserved workers first, then those of longer groups (or unreserved).
                let reserved = idle & s.reserved;
                let free = if reserved != 0 {
                    reserved
                } else {
                    idle & s.stealable
                };
                if free != 0 {
                    let ty = Self::oldest(queues, bits);
                    return self.take(ty, free.trailing_zeros() as usize);
                }
            }
            let stray = waiting & !self.grouped;
            if stray != 0 && idle & (1 << self.spillway) != 0 {
                return self.take(Self::oldest(queues, stray), self.spillway);
            }
            return None;
        }
        if waiting == 0 || self.idle.is_empty() {
            return None;
        }
        if self.resa.is_none() {
            // Nothing learnt yet: c-FCFS.
            let worker = self.idle.first()?;
            return self.take(queues.oldest()?, worker);
        }
        for s in &self.slots {
            let bits = waiting & s.types;
            if bits == 0 {
                continue;
            }
            let worker = self
                .idle
                .first_in(&s.reserved)
                .or_else(|| self.idle.first_in(&s.stealable));
            if let Some(worker) = worker {
                let ty = Self::oldest(queues, bits);
                return self.take(ty, worker);
            }
        }
        let stray = waiting & !self.grouped;
        if stray != 0 && self.idle.contains(self.spillway) {
            return self.take(Self::oldest(queues, stray), self.spillway);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TypedQueues;

    fn set(ws: impl IntoIterator<Item = WorkerIdx>) -> WorkerSet {
        ws.into_iter().collect()
    }

    fn stat(ty: TypeIdx, mean_ns: f64, ratio: f64) -> TypeStat {
        TypeStat { ty, mean_ns, ratio }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    /// Two types within delta of each other share a group, listed shortest first; when
    /// their measured means swap order the list does, but no core moves.
    #[test]
    fn a_group_whose_types_swap_order_keeps_its_cores() {
        // Payment and OrderStatus (means `a`, `b` ns) and a long type, on 14 workers.
        let resa = |a: f64, b: f64| {
            let types = [stat(0, a, 0.44), stat(1, b, 0.04), stat(2, 90_000.0, 0.5)];
            reserve(&types, 14, 0.2, None, 13)
        };
        let before = resa(5_700.0, 6_000.0);
        let after = resa(6_100.0, 5_900.0);
        assert_eq!(before.groups[0].types, [0, 1]);
        assert_eq!(after.groups[0].types, [1, 0]);
        assert!(before.same_cores(&after));
        assert!(after.same_cores(&before));
        // A type that moves to another group does move cores.
        let split = resa(5_700.0, 9_000.0);
        assert!(!before.same_cores(&split));
    }

    /// High Bimodal: 50 % 1 us / 50 % 100 us.
    fn high_bimodal() -> Vec<TypeStat> {
        vec![stat(0, 1_000.0, 0.5), stat(1, 100_000.0, 0.5)]
    }

    /// TPC-C, types in the preset's order.
    fn tpcc() -> Vec<TypeStat> {
        vec![
            stat(0, 5_700.0, 0.44),   // Payment
            stat(1, 6_000.0, 0.04),   // OrderStatus
            stat(2, 20_000.0, 0.44),  // NewOrder
            stat(3, 88_000.0, 0.04),  // Delivery
            stat(4, 100_000.0, 0.04), // StockLevel
        ]
    }

    #[test]
    fn cores_round_half_down_with_a_floor_of_one() {
        for (d, k) in [
            (0.0, 1),
            (0.139, 1),
            (0.999, 1),
            (1.0, 1),
            (1.5, 1),
            (1.51, 2),
            (2.0176, 2),
            (5.5213, 6),
            (6.4611, 6),
            (13.8614, 14),
            (f64::NAN, 1),
        ] {
            assert_eq!(cores_for(d), k, "demand {d}");
        }
    }

    #[test]
    fn high_bimodal_reservation() {
        // Work: 0.5·1000 + 0.5·100000 = 50500.
        // SHORT: 500/50500·14 = 0.1386 cores → 1 (floor of one): worker {0};
        //        it may steal every later worker {1..13}.
        // LONG: 50000/50500·14 = 13.861 cores → frac 0.86 > 0.5 → 14; only 13 are
        //       left: {1..13} plus the spillway (13, already in): {1..13}, steals nothing.
        let r = reserve(&high_bimodal(), 14, 0.2, None, 13);
        assert_eq!(r.groups.len(), 2);
        let (s, l) = (&r.groups[0], &r.groups[1]);
        assert_eq!(s.types, vec![0]);
        assert!(close(s.demand, 500.0 / 50_500.0 * 14.0) && close(s.demand, 0.1386));
        assert_eq!(s.reserved, set([0]));
        assert_eq!(s.stealable, WorkerSet::range(1, 14));
        assert!(!s.spilled);
        assert_eq!(l.types, vec![1]);
        assert!(close(l.demand, 50_000.0 / 50_500.0 * 14.0) && close(l.demand, 13.8614));
        assert_eq!(l.reserved, WorkerSet::range(1, 14));
        assert!(l.stealable.is_empty());
        assert!(l.spilled);
        assert!(close(s.mean_ns, 1_000.0) && close(l.mean_ns, 100_000.0));
        assert_eq!(
            r.describe(&["SHORT", "LONG"]),
            "[SHORT]:{0} steal {1-13} | [LONG]:{1-13} | spillway 13"
        );
        // Ratios need not be normalised.
        let r2 = reserve(
            &[stat(0, 1_000.0, 1.0), stat(1, 100_000.0, 1.0)],
            14,
            0.2,
            None,
            13,
        );
        assert_eq!(r2.groups, r.groups);
        assert_eq!(r2.unused_n_resas, 0);
    }

    #[test]
    fn n_resas_entries_past_the_last_group_are_counted_as_unused() {
        let ts = [stat(0, 1_000.0, 0.5), stat(1, 100_000.0, 0.5)];
        let two = reserve(&ts, 4, 0.2, Some(&[1, 2, 1]), 3);
        assert_eq!((two.groups.len(), two.unused_n_resas), (2, 1));
        // Within delta of each other (99 000 < 1 000 · 100), the two types are one group.
        let one = reserve(&ts, 4, 100.0, Some(&[1, 2, 1]), 3);
        assert_eq!((one.groups.len(), one.unused_n_resas), (1, 2));
        assert_eq!(reserve(&ts, 4, 0.2, Some(&[1]), 3).unused_n_resas, 0);
    }

    #[test]
    fn tpcc_reservation() {
        // Sorted: Payment 5.7, OrderStatus 6 (6-5.7 = 0.3 < 5.7·0.2 = 1.14: joins),
        // NewOrder 20 (20-5.7 ≥ 1.14: new group), Delivery 88 (88-20 ≥ 4: new group),
        // StockLevel 100 (100-88 = 12 < 88·0.2 = 17.6: joins).
        // mean·ratio: 2.508 + 0.24 | 8.8 | 3.52 + 4.0; total 19.068 (in us).
        // G0 {Payment, OrderStatus}: 2.748/19.068·14 = 2.0176 → 2: {0,1}, steal {2..13}
        // G1 {NewOrder}:             8.8/19.068·14   = 6.4611 → 6: {2..7}, steal {8..13}
        // G2 {Delivery, StockLevel}: 7.52/19.068·14  = 5.5213 → 6: {8..13}, steal {}
        // 2 + 6 + 6 = 14: every worker reserved, nobody spills.
        let r = reserve(&tpcc(), 14, 0.2, None, 13);
        assert_eq!(r.groups.len(), 3);
        let g = &r.groups;
        assert_eq!(g[0].types, vec![0, 1]);
        assert_eq!(g[1].types, vec![2]);
        assert_eq!(g[2].types, vec![3, 4]);
        assert!(close(g[0].demand, 2.0176));
        assert!(close(g[1].demand, 6.4611));
        assert!(close(g[2].demand, 5.5213));
        assert_eq!(g[0].reserved, WorkerSet::range(0, 2));
        assert_eq!(g[0].stealable, WorkerSet::range(2, 14));
        assert_eq!(g[1].reserved, WorkerSet::range(2, 8));
        assert_eq!(g[1].stealable, WorkerSet::range(8, 14));
        assert_eq!(g[2].reserved, WorkerSet::range(8, 14));
        assert!(g[2].stealable.is_empty());
        assert!(g.iter().all(|g| !g.spilled));
        // Ratio-weighted group mean: (2508 + 240) / 0.48 = 5725 ns.
        assert!(close(g[0].mean_ns, 5_725.0));
        assert_eq!(
            r.describe(&[
                "Payment",
                "OrderStatus",
                "NewOrder",
                "Delivery",
                "StockLevel"
            ]),
            "[Payment,OrderStatus]:{0-1} steal {2-13} | [NewOrder]:{2-7} steal {8-13} \
             | [Delivery,StockLevel]:{8-13} | spillway 13"
        );
        // delta 0: every type alone, in mean order.
        let r0 = reserve(&tpcc(), 14, 0.0, None, 13);
        let order: Vec<_> = r0.groups.iter().map(|g| g.types.clone()).collect();
        assert_eq!(order, vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn overflowing_groups_share_the_spillway() {
        // Three groups of equal work on 2 workers: demand 2/3 each → 1 core each.
        let ts = [
            stat(0, 1_000.0, 1.0),
            stat(1, 2_000.0, 0.5),
            stat(2, 4_000.0, 0.25),
        ];
        let r = reserve(&ts, 2, 0.2, None, 1);
        assert_eq!(r.groups[0].reserved, set([0]));
        assert_eq!(r.groups[0].stealable, set([1]));
        assert_eq!(r.groups[1].reserved, set([1]));
        assert!(r.groups[1].stealable.is_empty() && !r.groups[1].spilled);
        // Nothing left: the spillway only.
        assert_eq!(r.groups[2].reserved, set([1]));
        assert!(r.groups[2].stealable.is_empty() && r.groups[2].spilled);
        // A spillway at worker 0 (the original's default) would put the long
        // overflow on the short group's core.
        let r = reserve(&high_bimodal(), 14, 0.2, None, 0);
        assert_eq!(r.groups[1].reserved, WorkerSet::first_n(14));
        assert_eq!(r.reserved_to(0), Some(0));
        // Types without a group run on the spillway only.
        assert_eq!(r.eligible(7), set([0]));
    }

    #[test]
    fn manual_reservations() {
        let hb = high_bimodal();
        // [0]: SHORT has no core of its own and may steal any idle one; LONG owns all.
        let r = reserve(&hb, 14, 0.2, Some(&[0]), 13);
        assert!(r.groups[0].reserved.is_empty() && !r.groups[0].spilled);
        assert_eq!(r.groups[0].stealable, WorkerSet::first_n(14));
        assert_eq!(r.groups[1].reserved, WorkerSet::first_n(14));
        assert!(r.groups[1].stealable.is_empty() && !r.groups[1].spilled);
        // [3]: SHORT {0,1,2}; LONG wants 14, gets {3..13} + spillway 13.
        let r = reserve(&hb, 14, 0.2, Some(&[3]), 13);
        assert_eq!(r.groups[0].reserved, WorkerSet::first_n(3));
        assert_eq!(r.groups[0].stealable, WorkerSet::range(3, 14));
        assert_eq!(r.groups[1].reserved, WorkerSet::range(3, 14));
        // [13]: LONG keeps the last core only.
        let r = reserve(&hb, 14, 0.2, Some(&[13]), 13);
        assert_eq!(r.groups[0].reserved, WorkerSet::first_n(13));
        assert_eq!(r.groups[1].reserved, set([13]));
        // [14]: SHORT takes everything; LONG is left the spillway (a SHORT core).
        let r = reserve(&hb, 14, 0.2, Some(&[14]), 13);
        assert_eq!(r.groups[0].reserved, WorkerSet::first_n(14));
        assert_eq!(r.groups[1].reserved, set([13]));
        assert!(r.groups[1].spilled);
        // Both listed: [2, 0] on 2 workers leaves LONG neither reserved nor stealable
        // workers: it gets the spillway rather than starve.
        let r = reserve(&hb, 2, 0.2, Some(&[2, 0]), 1);
        assert_eq!(r.groups[1].reserved, set([1]));
        assert!(r.groups[1].spilled);
        // Entries beyond the groups are ignored; TPC-C with [1, 4]: G2 computed (6).
        let r = reserve(&tpcc(), 14, 0.2, Some(&[1, 4, 9, 9]), 13);
        assert_eq!(r.groups[0].reserved, set([0]));
        assert_eq!(r.groups[1].reserved, WorkerSet::range(1, 5));
        assert_eq!(r.groups[2].reserved, WorkerSet::range(5, 14));
        assert_eq!(r.groups[2].stealable, WorkerSet::EMPTY);
        let r = reserve(&tpcc(), 14, 0.2, Some(&[1, 4]), 13);
        assert_eq!(r.groups[2].reserved, WorkerSet::range(5, 11));
        assert_eq!(r.groups[2].stealable, WorkerSet::range(11, 14));
        assert_eq!(r.groups[1].stealable, WorkerSet::range(5, 14));
    }

    fn info(name: &str, mean_ns: Option<u64>, ratio: Option<f64>) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            mean_ns,
            ratio,
            deadline_ns: None,
        }
    }

    fn hb_types() -> Vec<TypeInfo> {
        vec![
            info("SHORT", Some(1_000), Some(0.5)),
            info("LONG", Some(100_000), Some(0.5)),
        ]
    }

    fn cfg(profile: Profile, window: u64) -> PolicyConfig {
        PolicyConfig {
            profile,
            window,
            ..PolicyConfig::default()
        }
    }

    fn resa_events(d: &mut Darc) -> Vec<(Cycles, Reservation)> {
        std::iter::from_fn(|| d.poll_event())
            .map(|Event::Reservation { at, resa, .. }| (at, resa))
            .collect()
    }

    #[test]
    fn static_mode_reserves_once_from_config() {
        let mut d = Darc::new(&cfg(Profile::Static, 4), &hb_types(), 14, Clock::NANOS);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, 0);
        assert_eq!(ev[0].1, reserve(&high_bimodal(), 14, 0.2, None, 13));
        assert_eq!(
            d.summary(),
            "groups [SHORT]:{0} steal {1-13} | [LONG]:{1-13} | spillway 13"
        );
        // Completions that contradict the config change nothing.
        for i in 0..100 {
            d.on_completion(0, 0, 500_000, i);
        }
        assert!(d.poll_event().is_none());
        assert_eq!(d.windows_closed(), 0);
        assert_eq!(d.reservation().unwrap().groups[0].reserved, set([0]));
    }

    #[test]
    fn dispatch_keeps_long_requests_off_short_cores() {
        // 2 workers, HB: SHORT {0} steal {1}; LONG 1.98 → 2 > 1 left: {1} + spillway 1.
        let mut d = Darc::new(&cfg(Profile::Static, 1), &hb_types(), 2, Clock::NANOS);
        let r = d.reservation().unwrap();
        assert_eq!(r.groups[0].reserved, set([0]));
        assert_eq!(r.groups[0].stealable, set([1]));
        assert_eq!(r.groups[1].reserved, set([1]));
        let mut q = TypedQueues::new(2, 16);
        for t in 0..3 {
            q.push(1, t, ()).unwrap();
        }
        let dispatch = |d: &mut Darc, q: &mut TypedQueues<()>| {
            let x = d.next(q.state(), 0)?;
            q.pop(x.ty).unwrap();
            Some(x)
        };
        // One LONG on worker 1; worker 0 stays idle although LONG requests wait.
        assert_eq!(
            dispatch(&mut d, &mut q),
            Some(Dispatch { ty: 1, worker: 1 })
        );
        assert_eq!(dispatch(&mut d, &mut q), None);
        // SHORT gets its reserved worker at once.
        q.push(0, 10, ()).unwrap();
        q.push(0, 11, ()).unwrap();
        assert_eq!(
            dispatch(&mut d, &mut q),
            Some(Dispatch { ty: 0, worker: 0 })
        );
        assert_eq!(dispatch(&mut d, &mut q), None);
        // Worker 1 frees up: the waiting SHORT steals it before the older LONG.
        d.on_completion(1, 1, 100_000, 100);
        assert_eq!(
            dispatch(&mut d, &mut q),
            Some(Dispatch { ty: 0, worker: 1 })
        );
        // Worker 0 frees up: LONG may not use it.
        d.on_completion(0, 0, 1_000, 101);
        assert_eq!(dispatch(&mut d, &mut q), None);
        d.on_completion(1, 0, 1_000, 102);
        assert_eq!(
            dispatch(&mut d, &mut q),
            Some(Dispatch { ty: 1, worker: 1 })
        );
    }

    #[test]
    fn group_tables_name_each_types_group_and_the_groups_before_it() {
        // Groups {0, 2}, then {1}; type 3 has none.
        let g = GroupOf::of(&[0b0101, 0b0010]);
        assert_eq!((g.same[0], g.earlier[0]), (0b0101, 0));
        assert_eq!((g.same[2], g.earlier[2]), (0b0101, 0));
        assert_eq!((g.same[1], g.earlier[1]), (0b0010, 0b0101));
        // Without a group: no group of its own, and the walk decides.
        assert_eq!((g.same[3], g.earlier[3]), (0, u64::MAX));
        // Before any reservation: one group of every type.
        let all = GroupOf::of(&[u64::MAX]);
        assert_eq!((all.same[5], all.earlier[5]), (u64::MAX, 0));
        // Debug folds the tail of equal entries.
        assert_eq!(
            format!("{all:?}"),
            "same [], earlier [], then 64 x (ffffffffffffffff, 0)"
        );
        assert_eq!(
            format!("{g:?}"),
            "same [5, 2, 5], earlier [0, 5, 0], then 61 x (0, ffffffffffffffff)"
        );
    }

    #[test]
    fn oldest_head_first_within_a_group() {
        let types = vec![
            info("Payment", Some(5_700), Some(0.44)),
            info("OrderStatus", Some(6_000), Some(0.04)),
            info("NewOrder", Some(20_000), Some(0.44)),
            info("Delivery", Some(88_000), Some(0.04)),
            info("StockLevel", Some(100_000), Some(0.04)),
        ];
        let mut d = Darc::new(&cfg(Profile::Static, 1), &types, 14, Clock::NANOS);
        let mut q = TypedQueues::new(5, 16);
        q.push(4, 1, ()).unwrap(); // StockLevel, oldest overall
        q.push(1, 2, ()).unwrap(); // OrderStatus
        q.push(0, 3, ()).unwrap(); // Payment
        q.push(2, 4, ()).unwrap(); // NewOrder
        let mut got = Vec::new();
        while let Some(x) = d.next(q.state(), 5) {
            q.pop(x.ty).unwrap();
            got.push((x.ty, x.worker));
        }
        // Shortest group first, oldest head within it; each on its own reserved core.
        assert_eq!(got, vec![(1, 0), (0, 1), (2, 2), (4, 8)]);
    }

    #[test]
    fn types_without_a_group_use_the_spillway_only() {
        let types = vec![
            info("SHORT", Some(1_000), Some(0.5)),
            info("LONG", Some(100_000), Some(0.5)),
            info("RARE", Some(5_000), Some(0.0)), // ratio 0: absent
        ];
        let mut c = cfg(Profile::Static, 1);
        c.spillway = Some(2);
        let mut d = Darc::new(&c, &types, 4, Clock::NANOS);
        assert_eq!(d.reservation().unwrap().group_of(2), None);
        let mut q = TypedQueues::new(3, 16);
        q.push(2, 0, ()).unwrap();
        q.push(2, 1, ()).unwrap();
        assert_eq!(d.next(q.state(), 2), Some(Dispatch { ty: 2, worker: 2 }));
        q.pop(2);
        assert_eq!(d.next(q.state(), 2), None);
        d.on_completion(2, 2, 5_000, 3);
        assert_eq!(d.next(q.state(), 4), Some(Dispatch { ty: 2, worker: 2 }));
    }

    #[test]
    fn manual_zero_lets_short_requests_only_steal() {
        let mut c = cfg(Profile::Static, 1);
        c.n_resas = Some(vec![0]);
        let mut d = Darc::new(&c, &hb_types(), 3, Clock::NANOS);
        let mut q = TypedQueues::new(2, 16);
        for t in 0..5 {
            q.push(1, t, ()).unwrap();
        }
        q.push(0, 10, ()).unwrap();
        // SHORT goes first (shortest group) but on a LONG core; LONG takes the rest.
        let mut got = Vec::new();
        while let Some(x) = d.next(q.state(), 11) {
            q.pop(x.ty).unwrap();
            got.push((x.ty, x.worker));
        }
        assert_eq!(got, vec![(0, 0), (1, 1), (1, 2)]);
        // All busy: a new SHORT waits for any core.
        q.push(0, 12, ()).unwrap();
        assert_eq!(d.next(q.state(), 12), None);
        d.on_completion(2, 1, 100_000, 13);
        assert_eq!(d.next(q.state(), 13), Some(Dispatch { ty: 0, worker: 2 }));
    }

    #[test]
    fn cfcfs_until_the_first_window_closes() {
        let types = vec![info("A", None, None), info("B", Some(1), None)];
        let mut d = Darc::new(&cfg(Profile::Dynamic, 10), &types, 2, Clock::NANOS);
        assert!(d.reservation().is_none());
        assert!(d.summary().starts_with("c-FCFS"), "{}", d.summary());
        let mut q = TypedQueues::new(2, 16);
        q.push(1, 1, ()).unwrap();
        q.push(0, 2, ()).unwrap();
        q.push(1, 3, ()).unwrap();
        assert_eq!(d.next(q.state(), 3), Some(Dispatch { ty: 1, worker: 0 }));
        q.pop(1);
        assert_eq!(d.next(q.state(), 3), Some(Dispatch { ty: 0, worker: 1 }));
        q.pop(0);
        assert_eq!(d.next(q.state(), 3), None);
        assert!(d.poll_event().is_none());
    }

    #[test]
    fn debug_folds_the_tail_of_equal_masks() {
        let types = vec![info("A", None, None), info("B", Some(1), None)];
        let d = Darc::new(&cfg(Profile::Dynamic, 10), &types, 2, Clock::NANOS);
        let s = format!("{d:?}");
        assert!(s.contains("serves: [] then 256 x ffffffffffffffff"), "{s}");
        let types = vec![
            info("A", Some(1_000), Some(0.5)),
            info("B", Some(100_000), Some(0.5)),
        ];
        let d = Darc::new(&cfg(Profile::Static, 10), &types, 4, Clock::NANOS);
        let s = format!("{d:?}");
        assert!(s.contains(" then 252 x 0"), "{s}");
        assert!(s.len() < 4_000, "{} characters", s.len());
    }

    #[test]
    fn completions_that_refill_their_worker_are_profiled_too() {
        let types = vec![info("SHORT", None, None), info("LONG", None, None)];
        let mut d = Darc::new(&cfg(Profile::Dynamic, 10), &types, 4, Clock::NANOS);
        let mut q = TypedQueues::new(2, 16);
        q.push(0, 1, ()).unwrap();
        for i in 0..9 {
            let r =
                d.on_completion_next(0, i % 2, [1_000, 100_000][i % 2], 10 + i as u64, q.state());
            assert_eq!(r, Refill::Take(0), "c-FCFS before the first window closes");
        }
        assert!(d.poll_event().is_none());
        // The tenth closes the window: a reservation, and the refill asks `next` first.
        let r = d.on_completion_next(0, 1, 100_000, 20, q.state());
        assert_eq!(r, Refill::Ask);
        assert_eq!(resa_events(&mut d).len(), 1);
        assert!(d.reservation().is_some());
    }

    /// Feeds one window's completions: `n[t]` completions of type `t` taking `ns[t]`.
    fn feed(d: &mut Darc, now: &mut Cycles, n: &[u64], ns: &[u64]) {
        // Interleave so that no type is favoured by the window boundary.
        let mut left = n.to_vec();
        while left.iter().any(|&l| l > 0) {
            for t in 0..n.len() {
                if left[t] > 0 {
                    left[t] -= 1;
                    *now += 1;
                    d.on_completion(0, t, ns[t], *now);
                }
            }
        }
    }

    #[test]
    fn dynamic_profiling_reserves_when_demand_moves() {
        let types = vec![info("SHORT", None, None), info("LONG", None, None)];
        let mut d = Darc::new(&cfg(Profile::Dynamic, 100), &types, 4, Clock::NANOS);
        let mut now = 1_000;
        // 99 completions: no reservation yet.
        for i in 0..99 {
            now += 1;
            d.on_completion(0, i % 2, [1_000, 100_000][i % 2], now);
        }
        assert!(d.reservation().is_none());
        assert!(d.poll_event().is_none());
        // The 100th closes the window: 50/50, 1 us / 100 us.
        now += 1;
        d.on_completion(0, 1, 100_000, now);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, now);
        let r = &ev[0].1;
        assert_eq!(r.groups.len(), 2);
        assert_eq!(r.groups[0].types, vec![0]);
        assert!(close(r.groups[0].mean_ns, 1_000.0));
        assert!(close(r.groups[1].mean_ns, 100_000.0));
        assert!(close(r.stats[0].ratio, 0.5));
        assert_eq!(r.groups[0].reserved, set([0]));
        assert_eq!(r.groups[1].reserved, WorkerSet::range(1, 4));
        assert_eq!(d.windows_closed(), 1);

        // Same mix: no update. SHORT 5 % slower: its demand moves ~5 %: no update.
        feed(&mut d, &mut now, &[50, 50], &[1_000, 100_000]);
        feed(&mut d, &mut now, &[50, 50], &[1_050, 100_000]);
        assert_eq!(d.windows_closed(), 3);
        assert!(d.poll_event().is_none());
        // SHORT 30 % slower than at the reservation: update (same cores, new demand).
        // The tables stay: the refill's premise holds (no `Ask` until `next` runs).
        let idle_queues = TypedQueues::<()>::new(2, 4);
        assert!(d.next(idle_queues.state(), now).is_none());
        feed(&mut d, &mut now, &[50, 50], &[1_300, 100_000]);
        let Some(Event::Reservation { resa, moved, .. }) = d.poll_event() else {
            panic!("no event for the new demand")
        };
        assert!(d.poll_event().is_none());
        assert!(close(resa.groups[0].mean_ns, 1_300.0));
        assert!(!moved, "the event says the cores moved");
        assert!(!d.changed(), "same cores, yet the tables were reinstalled");
        // Slow drift accumulates against the reservation's demand: +6 % then +12 %.
        feed(&mut d, &mut now, &[50, 50], &[1_380, 100_000]);
        assert!(d.poll_event().is_none());
        feed(&mut d, &mut now, &[50, 50], &[1_460, 100_000]);
        assert_eq!(resa_events(&mut d).len(), 1);

        // Ratio shift: 90 % SHORT / 10 % LONG: SHORT 0.06 → 0.33 cores, LONG 3.94 → 3.67.
        feed(&mut d, &mut now, &[90, 10], &[1_000, 100_000]);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        assert!(close(ev[0].1.stats[0].ratio, 0.9));
        // LONG mean shift: 100 us → 300 us.
        feed(&mut d, &mut now, &[90, 10], &[1_000, 300_000]);
        assert_eq!(resa_events(&mut d).len(), 1);

        // LONG disappears: one group; its requests now go to the spillway only.
        feed(&mut d, &mut now, &[100, 0], &[1_000, 0]);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        let r = &ev[0].1;
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.group_of(1), None);
        assert_eq!(r.eligible(1), set([3]));
        // SHORT alone is 4 cores of demand: all of them.
        assert_eq!(r.groups[0].reserved, WorkerSet::first_n(4));
        // New cores: the new tables are in force, and the refill asks `next` first.
        assert!(d.changed());
        // Still absent: nothing changes.
        feed(&mut d, &mut now, &[100, 0], &[1_000, 0]);
        assert!(d.poll_event().is_none());
        // LONG reappears (even at a tiny share): re-reserve with both.
        feed(&mut d, &mut now, &[99, 1], &[1_000, 100_000]);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1.groups.len(), 2);
        assert_eq!(ev[0].1.group_of(1), Some(1));
    }

    #[test]
    fn dynamic_mode_starts_from_a_complete_config() {
        let mut d = Darc::new(&cfg(Profile::Dynamic, 10), &hb_types(), 14, Clock::NANOS);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0], (0, reserve(&high_bimodal(), 14, 0.2, None, 13)));
        // Measurements agree: no update. Measurements differ: update.
        let mut now = 0;
        feed(&mut d, &mut now, &[5, 5], &[1_000, 100_000]);
        assert!(d.poll_event().is_none());
        feed(&mut d, &mut now, &[5, 5], &[1_000, 10_000]);
        let ev = resa_events(&mut d);
        assert_eq!(ev.len(), 1);
        // LONG now 10 us: 5000/5500·14 = 12.7 → 13 cores, {1..13}, no overflow.
        assert_eq!(ev[0].1.groups[1].reserved, WorkerSet::range(1, 14));
        assert!(!ev[0].1.groups[1].spilled);
    }

    #[test]
    fn measured_cycles_become_nanoseconds() {
        let types = vec![info("A", None, None)];
        let mut d = Darc::new(&cfg(Profile::Dynamic, 2), &types, 1, Clock::with_ghz(2.5));
        d.on_completion(0, 0, 2_500, 1);
        d.on_completion(0, 0, 7_500, 2);
        let r = d.reservation().unwrap();
        assert!(close(r.groups[0].mean_ns, 2_000.0));
    }

    #[test]
    fn undrained_events_are_bounded() {
        let types = vec![info("A", None, None), info("B", None, None)];
        let mut d = Darc::new(&cfg(Profile::Dynamic, 1), &types, 2, Clock::NANOS);
        // Alternating types: every window changes the present set.
        for i in 0..(MAX_PENDING_EVENTS as u64 + 10) {
            d.on_completion(0, (i % 2) as usize, 100, i);
        }
        assert_eq!(d.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(d.events_dropped(), 10);
    }

    #[test]
    fn worker_sets_print_as_ranges() {
        assert_eq!(fmt_set(&WorkerSet::EMPTY), "{}");
        assert_eq!(fmt_set(&set([0])), "{0}");
        assert_eq!(fmt_set(&set([0, 1, 2, 5, 7, 8])), "{0-2,5,7-8}");
    }
}

//! dispatcher - the dispatcher loop: completions, receive, classify, queue, dispatch.
//!
//! One pinned thread. Each turn of the loop reads top to bottom (one clock read per
//! turn; the loop is compiled once per built-in policy, so the policy's calls inline):
//! 1. take completions from every worker that holds jobs (with c-FCFS, DARC, SJF and
//!    EDF, a look at each worker's one channel slot), in job order, and tell the
//!    policy; each comes back in its job's slot of the worker's channel
//!    ([`crate::duplex`]). When the policy is *settled* (it had nothing left to decide
//!    and nothing arrived since) it picks the freed worker's next request there and
//!    then ([`Policy::on_completion_next`]), and the request goes down the channel
//!    while it is in hand: no search for a free worker. A worker just freed so gets a
//!    request that already waits before the receive (a system call with kernel UDP);
//! 2. if the policy left a decision to `next` (d-FCFS does, and DARC after a new
//!    reservation), dispatch;
//! 3. receive a burst, parse and validate headers, classify, stamp the arrival time,
//!    and queue each request in its type's bounded FIFO (full: answer `queue_full`);
//! 4. dispatch what the burst queued, at once: the policy is settled again for the
//!    next turn's completions;
//! 5. when idle: publish stats if due, then spin, yield or sleep.
//!
//! Once a stop is requested it drains: completions and dispatch go on until nothing is
//! queued or at a worker (or `drain_timeout` passes), and what arrives meanwhile is
//! answered `shutdown`.

mod doorbell;
pub mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use doorbell::Doorbell;
pub use stats::{Malformed, Published, Stats, TypeStats};

use crate::idle::Idler;
use crate::net::{Packet, RxQueue, TxQueue};
use crate::policy::{Builtin, Event, Policy, Refill, TypeIdx, TypeInfo, TypedQueues, WorkerIdx};
use crate::proto::{self, Header, Kind, Status};
use crate::time::{rdtsc, Clock, Cycles};
use crate::workers::{Job, JobSender, Sleeper, WorkerCounters};

/// Maps a request to its type id (the header's `type` by default). Runs on the
/// dispatcher for every request: keep it to a few field reads.
pub trait Classifier: Send {
    /// The wire type id of the request, or `None` if it has no known type (answered
    /// `unknown_type`).
    fn classify(&mut self, header: &Header, payload: &[u8]) -> Option<u32>;
}

impl<F> Classifier for F
where
    F: FnMut(&Header, &[u8]) -> Option<u32> + Send,
{
    fn classify(&mut self, header: &Header, payload: &[u8]) -> Option<u32> {
        self(header, payload)
    }
}

/// Wire type id to type index.
#[derive(Debug, Clone)]
pub struct TypeTable {
    /// Direct table for small ids (the common case): an array, so that an id below
    /// its length needs no second bounds check, held inline (1 KiB in the dispatcher's
    /// own state: no pointer to follow per request).
    direct: [u8; DIRECT_IDS],
    /// (id, index) sorted by id, for the rest.
    sorted: Vec<(u32, TypeIdx)>,
}

const DIRECT_IDS: usize = 1024;
const NO_TYPE: u8 = u8::MAX;
const _: () = assert!(NO_TYPE as usize >= MAX_TYPES);

impl TypeTable {
    pub fn new(ids: &[u32]) -> TypeTable {
        assert!(ids.len() <= MAX_TYPES, "at most {MAX_TYPES} request types");
        let mut direct = [NO_TYPE; DIRECT_IDS];
        let mut sorted = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if (id as usize) < DIRECT_IDS {
                direct[id as usize] = i as u8;
            } else {
                sorted.push((id, i));
            }
        }
        sorted.sort_unstable();
        TypeTable { direct, sorted }
    }

    /// The index of type `id`, if it is one. Always below
    /// [`MAX_TYPES`](crate::policy::MAX_TYPES), which the range test (and the `%` on
    /// the slow path) tells the compiler: it then drops the bounds checks of the
    /// per-type arrays the index goes to.
    #[inline]
    pub fn lookup(&self, id: u32) -> Option<TypeIdx> {
        if (id as usize) < DIRECT_IDS {
            // NO_TYPE is at least MAX_TYPES: one test says both.
            let i = self.direct[id as usize] as usize;
            (i < MAX_TYPES).then_some(i)
        } else {
            self.sorted
                .binary_search_by_key(&id, |&(k, _)| k)
                .ok()
                .map(|p| self.sorted[p].1 % MAX_TYPES)
        }
    }
}

/// A dispatcher's link to one worker.
#[derive(Debug)]
pub struct WorkerLink<P> {
    /// Jobs out, completions back (see [`crate::duplex`]).
    pub jobs: JobSender<P>,
    /// Filled in by the worker thread when it starts; used to wake it (idle: park).
    pub sleeper: Arc<OnceLock<Arc<Sleeper>>>,
    /// The worker's counters as it publishes them (the periodic stats add them).
    pub counters: Arc<WorkerCounters>,
}

/// A [`WorkerLink`] as the loop keeps it.
#[derive(Debug)]
struct Link<P> {
    /// Knows how many jobs the worker holds.
    jobs: JobSender<P>,
    /// A job was pushed since the last wake-up (idle: park): wake once per turn, not
    /// once per job.
    wake: bool,
    /// Its index among the workers, held here (in the line's padding) rather than
    /// counted by the completion loop, which ran out of registers for the count
    /// (-3 instructions per request, DARC/4 types).
    index: u32,
    sleeper: Arc<OnceLock<Arc<Sleeper>>>,
}

/// Settings the loop needs beyond its parts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rx_batch: usize,
    pub idle: Idler,
    /// Wake workers after sending them jobs (they park when idle).
    pub wake_workers: bool,
    pub stats_interval: Option<Duration>,
    pub drain_timeout: Duration,
    pub clock: Clock,
}

/// Request types the per-type counters have room for (as many as [`TypedQueues`]
/// allows): a type index taken modulo this is the index itself, and the counter
/// update needs no bounds check.
const MAX_TYPES: usize = crate::policy::MAX_TYPES;
/// Room for every [`Status`] (7), rounded up to a power of two for the same reason.
const STATUS_SLOTS: usize = 8;

/// The counters bumped per request, apart from [`Stats`] (which is built from them in
/// [`Dispatcher::stats`]): fixed-size arrays indexed without bounds checks.
#[derive(Debug, Clone)]
struct Counts {
    received: u64,
    replies: [u64; STATUS_SLOTS],
    /// Per type: one array per counter (an index scaled by 8, not 24).
    accepted: [u64; MAX_TYPES],
    completed: [u64; MAX_TYPES],
    queue_full: [u64; MAX_TYPES],
}

/// The first four bytes of every valid request: magic, version, and flags 0.
const REQUEST_PREFIX: u32 = {
    let m = proto::MAGIC.to_le_bytes();
    u32::from_le_bytes([m[0], m[1], proto::VERSION, 0])
};

/// The wire type of a message of `len` bytes whose buffer starts with `head`
/// ([`Packet::head`]) if it is a valid request (what `Header::parse` accepts with kind
/// `Request`), read in place: two compares instead of a parse. `None` for anything
/// else, which then goes through the full parse to be counted by reason. A message
/// shorter than a header fails the length compare, whatever stale bytes follow it.
#[inline(always)]
fn request_type(head: Option<&[u8; proto::HEADER_LEN]>, len: usize) -> Option<u32> {
    let h = head?;
    let prefix = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let body = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    // In u64: no overflow on any target (the same instructions on x86_64).
    (prefix == REQUEST_PREFIX && u64::from(body) + proto::HEADER_LEN as u64 == len as u64)
        .then(|| u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
}

/// The dispatcher: owns the receive side, the typed queues and the policy.
pub struct Dispatcher<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> {
    /// The built-in policies unboxed: the loop is compiled once per policy (one match
    /// per turn, not one per call), so their calls inline into it.
    policy: Builtin,
    core: Core<R, T>,
}

/// Everything but the policy.
struct Core<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> {
    rx: R,
    tx: T,
    queues: TypedQueues<R::Pkt>,
    types: TypeTable,
    classifier: Option<Box<dyn Classifier>>,
    links: Vec<Link<R::Pkt>>,
    /// Per worker, as it publishes them: apart from `links`, which the hot loop walks.
    worker_counters: Vec<Arc<WorkerCounters>>,
    settings: Settings,
    doorbell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    stop_workers: Arc<AtomicBool>,
    published: Arc<Published>,
    /// The counters not bumped per request (malformed, errors) and the type names.
    stats: Stats,
    counts: Counts,
    outstanding: u64,
    /// The policy has nothing to decide (`next` returned `None`, nothing queued
    /// since): a completion may then get its worker's next request at once
    /// ([`Policy::on_completion_next`]).
    settled: bool,
    /// The receive burst, reused: no allocation per burst.
    burst: Vec<R::Pkt>,
    load: Load,
}

/// How the dispatcher's time went, in cycles: from the start of [`Dispatcher::run`]'s
/// loop, and in turns that found work (a turn's time runs to the next turn's clock
/// read, so it includes the loop's own bookkeeping but never an idle wait).
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    started: Option<Cycles>,
    busy: Cycles,
    busy_turns: u64,
}

impl Load {
    /// A turn that found work, from its clock read `from` to `to`. A clock that went
    /// backwards (an unpinned dispatcher moved to a core whose TSC is behind) counts
    /// the turn but no time.
    #[inline]
    fn add_turn(&mut self, from: Cycles, to: Cycles) {
        self.busy_turns += 1;
        if deadline_passed(to, from) {
            self.busy = self.busy.saturating_add(to.wrapping_sub(from));
        }
    }
}

impl<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> std::fmt::Debug for Dispatcher<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.policy)
            .field("stats", &self.core.stats)
            .finish_non_exhaustive()
    }
}

/// Everything [`Dispatcher::new`] takes.
#[allow(missing_debug_implementations)]
pub struct Parts<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> {
    pub rx: R,
    pub tx: T,
    pub policy: Box<dyn Policy>,
    pub types: Vec<(u32, TypeInfo)>,
    pub queue_capacity: usize,
    pub classifier: Option<Box<dyn Classifier>>,
    pub workers: Vec<WorkerLink<R::Pkt>>,
    pub settings: Settings,
    pub doorbell: Arc<Doorbell>,
    /// Set from outside to begin a graceful shutdown.
    pub stop: Arc<AtomicBool>,
    /// Set by the dispatcher when workers should answer their waiting jobs and exit.
    pub stop_workers: Arc<AtomicBool>,
    /// Where snapshots of the counters are published.
    pub published: Arc<Published>,
}

/// Calls `$call` with `$p` bound to the concrete policy `$policy` holds, and the
/// constant `$one` to whether that policy's channels all have a single slot (those
/// that hand a worker one request at a time; [`Dispatcher::new`] checks the channels).
macro_rules! with_policy {
    ($policy:expr, $p:ident, $one:ident => $call:expr) => {
        match $policy {
            Builtin::Cfcfs($p) => {
                const $one: bool = true;
                $call
            }
            Builtin::Dfcfs($p) => {
                const $one: bool = false;
                $call
            }
            Builtin::Darc($p) => {
                const $one: bool = true;
                $call
            }
            Builtin::Ranked($p) => {
                const $one: bool = true;
                $call
            }
            Builtin::Other($p) => {
                const $one: bool = false;
                let $p = &mut **$p;
                $call
            }
        }
    };
}

/// Whether [`with_policy!`] takes `policy`'s channels to have a single slot each.
fn single_slot(policy: &mut Builtin) -> bool {
    with_policy!(policy, _p, ONE => ONE)
}

impl<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> Dispatcher<R, T> {
    /// # Panics
    /// If the policy hands a worker one request at a time (c-FCFS, DARC, SJF, EDF)
    /// and a worker's channel holds more: channels are made with the policy's
    /// [`worker_capacity`](Policy::worker_capacity).
    pub fn new(p: Parts<R, T>) -> Self {
        let ids: Vec<u32> = p.types.iter().map(|(id, _)| *id).collect();
        let stats = Stats {
            types: p
                .types
                .iter()
                .map(|(_, t)| TypeStats {
                    name: t.name.clone(),
                    ..TypeStats::default()
                })
                .collect(),
            ..Stats::default()
        };
        let (links, worker_counters): (Vec<Link<R::Pkt>>, Vec<_>) = p
            .workers
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let link = Link {
                    jobs: w.jobs,
                    wake: false,
                    index: u32::try_from(i).expect("fewer than 2^32 workers"),
                    sleeper: w.sleeper,
                };
                (link, w.counters)
            })
            .unzip();
        let mut policy = Builtin::from(p.policy);
        // The loop addresses these policies' channels' one slot directly
        // (`with_policy!`): a wider channel would have jobs overwrite each other.
        if single_slot(&mut policy) {
            if let Some(w) = links.iter().position(|l| !l.jobs.is_single()) {
                panic!(
                    "policy {} hands a worker one request at a time, but worker {w}'s \
                     channel holds {} (make channels with the policy's worker_capacity)",
                    policy.name(),
                    links[w].jobs.capacity()
                );
            }
        }
        Dispatcher {
            policy,
            core: Core {
                burst: Vec::with_capacity(p.settings.rx_batch),
                queues: TypedQueues::new(ids.len(), p.queue_capacity),
                types: TypeTable::new(&ids),
                rx: p.rx,
                tx: p.tx,
                classifier: p.classifier,
                links,
                worker_counters,
                settings: p.settings,
                doorbell: p.doorbell,
                stop: p.stop,
                stop_workers: p.stop_workers,
                published: p.published,
                stats,
                counts: Counts {
                    received: 0,
                    replies: [0; STATUS_SLOTS],
                    accepted: [0; MAX_TYPES],
                    completed: [0; MAX_TYPES],
                    queue_full: [0; MAX_TYPES],
                },
                outstanding: 0,
                settled: true,
                load: Load::default(),
            },
        }
    }

    /// Runs until a stop is requested and every accepted request is answered (or the
    /// drain timeout passes); returns the final counters.
    pub fn run(self) -> Stats {
        let Dispatcher { mut policy, core } = self;
        // SAFETY: `with_policy!` says `ONE` only for the policies whose channels `new`
        // checked to have a single slot each; the channels never change.
        with_policy!(&mut policy, p, ONE => unsafe { core.run::<_, ONE>(p) })
    }

    /// One turn of the loop's work at time `now`, without the shutdown, stats and idle
    /// logic of [`Dispatcher::run`]: take completions (refilling freed workers),
    /// receive a burst, dispatch. Returns whether there was any work. For driving a
    /// dispatcher step by step on one thread (deterministic tests, instruction
    /// counts); `run` does the same.
    #[inline]
    pub fn poll(&mut self, now: Cycles) -> bool {
        let core = &mut self.core;
        // SAFETY: as in `run`.
        with_policy!(&mut self.policy, p, ONE => unsafe { core.turn::<_, ONE>(p, now) })
    }

    /// The counters now (as `run` returns them at exit).
    pub fn stats(&mut self) -> Stats {
        self.core.snapshot(&self.policy)
    }
}

impl<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> Core<R, T> {
    /// # Safety
    /// With `ONE`, every channel must have a single slot (as for every method below
    /// that takes `ONE`: they address that slot without masking a position).
    unsafe fn run<P: Policy + ?Sized, const ONE: bool>(mut self, policy: &mut P) -> Stats {
        let clock = self.settings.clock;
        let stats_every = self
            .settings
            .stats_interval
            .map(|d| clock.duration_to_cycles(d));
        let mut next_stats = rdtsc().wrapping_add(stats_every.unwrap_or(0));
        let mut drain_deadline: Option<Cycles> = None;
        let mut give_up: Option<Cycles> = None;
        // The clock at the start of the last turn, if it found work.
        let mut working: Option<Cycles> = None;
        self.load.started = Some(rdtsc());
        // A reservation made before the loop (DARC's static profile) is logged now,
        // not at the first completion.
        while let Some(e) = policy.poll_event() {
            log_event(&e, &self.settings.clock, self.load.started, &self.stats);
        }
        loop {
            // One clock read per turn: every request of the turn is stamped with it.
            let now = rdtsc();
            if let Some(t) = working.take() {
                self.load.add_turn(t, now);
            }
            let work = if drain_deadline.is_none() {
                // SAFETY: the caller's promise for `ONE`.
                unsafe { self.turn::<P, ONE>(policy, now) }
            } else {
                // Draining: what is queued still runs; what arrives now is answered
                // `shutdown` (not left unread in the socket when the daemon exits).
                // SAFETY: `false`: any channels.
                let w = unsafe { self.completions::<P, false>(policy, now) };
                // SAFETY: as above.
                let w = unsafe { self.dispatch::<P, false>(policy, now) } | w;
                self.receive::<P, true>(policy, now) | w
            };
            working = work.then_some(now);

            if drain_deadline.is_none() && self.stop.load(Ordering::Relaxed) {
                let t = clock.duration_to_cycles(self.settings.drain_timeout);
                drain_deadline = Some(now.wrapping_add(t));
                tracing::info!(
                    queued = self.queues.total_len(),
                    at_workers = self.outstanding,
                    "shutting down: draining"
                );
            }
            if let Some(deadline) = drain_deadline {
                if self.queues.state().is_empty() && self.outstanding == 0 {
                    break;
                }
                if give_up.is_none() && deadline_passed(now, deadline) {
                    // Out of patience: answer what still waits, and tell workers to
                    // answer the jobs waiting in their channels.
                    self.reject_queued(Status::Shutdown);
                    self.stop_workers.store(true, Ordering::Release);
                    self.wake_all_workers();
                    give_up = Some(
                        now.wrapping_add(clock.duration_to_cycles(self.settings.drain_timeout)),
                    );
                }
                if let Some(g) = give_up {
                    if self.outstanding == 0 {
                        break;
                    }
                    if deadline_passed(now, g) {
                        // A handler is stuck; it cannot be preempted.
                        self.stats.abandoned = self.outstanding;
                        tracing::warn!(
                            abandoned = self.outstanding,
                            "requests still running at workers after the drain timeout"
                        );
                        break;
                    }
                }
            }

            if let Some(every) = stats_every {
                if deadline_passed(now, next_stats) {
                    self.publish(policy);
                    next_stats = now.wrapping_add(every);
                }
            }
            if work {
                self.settings.idle.work();
            } else {
                self.idle();
            }
        }
        if let Some(t) = working {
            self.load.add_turn(t, rdtsc());
        }
        self.stop_workers.store(true, Ordering::Release);
        self.wake_all_workers();
        self.snapshot(policy)
    }

    /// Completions, receive, dispatch (see the module docs). A worker freed by a
    /// completion gets its next request as the completion is taken, from what already
    /// waits ([`Policy::on_completion_next`]): it does not sit idle while a burst is
    /// received and classified (a `recvmmsg` system call with the UDP backend), and
    /// the policy neither looks for a free worker nor is asked twice. A policy that
    /// answers `Ask` gets a dispatch before the receive, as the completion-first order
    /// intends. What the receive queues is dispatched at once, which leaves the policy
    /// settled for the next turn's completions.
    ///
    /// # Safety
    /// With `ONE`, every channel must have a single slot.
    #[inline]
    unsafe fn turn<P: Policy + ?Sized, const ONE: bool>(
        &mut self,
        policy: &mut P,
        now: Cycles,
    ) -> bool {
        // SAFETY: the caller's promise for `ONE`.
        let mut work = unsafe { self.completions::<P, ONE>(policy, now) };
        // Dispatch (when the policy left decisions to `next`), receive, and once more
        // dispatch what the receive queued: one call site, so that it stays inline.
        let mut received = false;
        loop {
            if !self.settled {
                // SAFETY: as above.
                work |= unsafe { self.dispatch::<P, ONE>(policy, now) };
            }
            if received || !self.receive::<P, false>(policy, now) {
                return work;
            }
            received = true;
            work = true;
            self.settled = false;
        }
    }

    /// Takes completions from every worker that holds jobs, refilling each freed worker
    /// at once when the policy is settled. Returns whether there were any.
    ///
    /// # Safety
    /// With `ONE`, every channel must have a single slot.
    #[inline]
    unsafe fn completions<P: Policy + ?Sized, const ONE: bool>(
        &mut self,
        policy: &mut P,
        now: Cycles,
    ) -> bool {
        if self.outstanding == 0 {
            return false;
        }
        // Completions taken, and those whose worker got no next job at once.
        let (mut got, mut freed) = (0u64, 0u64);
        let Core {
            links,
            queues,
            counts,
            rx,
            settled,
            ..
        } = self;
        // Start loading every line a completion may wait in first: a request's work
        // (the policy's choice, the queue, the next job) between two such loads
        // would keep the second from overlapping the first.
        for link in links.iter() {
            link.jobs.prefetch_in::<ONE>();
        }
        for link in links.iter_mut() {
            let Link {
                jobs, wake, index, ..
            } = link;
            let index = &*index;
            // In job order, while there are any: for an idle worker `pop_then` reads no
            // memory (the single-slot look reads a stamp in a line neither side is
            // writing), and for one holding a single job (c-FCFS, DARC, SJF, EDF) it
            // stops after that job's refill without a second look. (After a completion
            // with no refill the single-slot path looks once more, at the stamp just
            // read; a `break` there for `ONE` cost +1 instruction per request under
            // load, where refills are the rule.)
            loop {
                let refill = |c: crate::workers::Completion<R::Pkt>| {
                    let w = *index as WorkerIdx;
                    counts.replies[c.status as usize % STATUS_SLOTS] += 1;
                    counts.completed[c.ty % MAX_TYPES] += 1;
                    if let Some(pkt) = c.pkt {
                        rx.recycle(pkt);
                    }
                    if !*settled {
                        policy.on_completion(w, c.ty, c.service, now);
                        return Err(());
                    }
                    match policy.on_completion_next(w, c.ty, c.service, now, queues.state()) {
                        Refill::Take(ty) => Ok(head_job(&*policy, queues, ty)),
                        Refill::Idle => Err(()),
                        Refill::Ask => {
                            *settled = false;
                            Err(())
                        }
                    }
                };
                // SAFETY: the caller's promise for `ONE`.
                let Some(sent) = (unsafe { jobs.pop_then_in::<ONE, _>(refill) }) else {
                    break;
                };
                got += 1;
                if sent.is_ok() {
                    // The job just sent is not done: no need to look. Any later
                    // completions of this worker wait for the next turn.
                    *wake = true;
                    break;
                }
                freed += 1;
            }
        }
        if got == 0 {
            return false;
        }
        self.outstanding -= freed;
        while let Some(e) = policy.poll_event() {
            log_event(&e, &self.settings.clock, self.load.started, &self.stats);
        }
        if got > freed && self.settings.wake_workers {
            self.wake_pushed();
        }
        true
    }

    /// Receives a burst and queues each valid request, or, `DRAINING`, answers it
    /// `shutdown`. Returns whether any arrived.
    #[inline]
    fn receive<P: Policy + ?Sized, const DRAINING: bool>(
        &mut self,
        policy: &mut P,
        now: Cycles,
    ) -> bool {
        match self.rx.rx_burst(&mut self.burst, self.settings.rx_batch) {
            Ok(0) => return false,
            Ok(n) => self.counts.received += n as u64,
            Err(e) => {
                self.stats.rx_errors += 1;
                if self.stats.rx_errors.is_power_of_two() {
                    tracing::warn!(error = %e, count = self.stats.rx_errors, "receive failed");
                }
                return false;
            }
        }
        // The loop reuses `burst`: no allocation per burst.
        let mut pkts = std::mem::take(&mut self.burst);
        if self.classifier.is_none() {
            for pkt in pkts.drain(..) {
                self.admit::<P, false, DRAINING>(policy, pkt, now);
            }
        } else {
            for pkt in pkts.drain(..) {
                self.admit::<P, true, DRAINING>(policy, pkt, now);
            }
        }
        self.burst = pkts;
        true
    }

    /// Queues one received datagram, or answers or drops it. `CLASSIFIER`: whether a
    /// classifier is set (decided once per burst).
    #[inline(always)]
    fn admit<P: Policy + ?Sized, const CLASSIFIER: bool, const DRAINING: bool>(
        &mut self,
        policy: &mut P,
        pkt: R::Pkt,
        now: Cycles,
    ) {
        let (head, len) = pkt.head();
        let id = match request_type(head, len) {
            Some(id) if !CLASSIFIER => Some(id),
            _ => match self.classify_slow(&pkt) {
                Ok(id) => id,
                Err(()) => {
                    self.rx.recycle(pkt);
                    return;
                }
            },
        };
        let Some(ty) = id.and_then(|id| self.types.lookup(id)) else {
            self.reply_now(pkt, Status::UnknownType);
            return;
        };
        if DRAINING {
            self.reply_now(pkt, Status::Shutdown);
            return;
        }
        match self.queues.push(ty, now, pkt) {
            Ok(()) => {
                self.counts.accepted[ty] += 1;
                policy.on_arrival(ty, now);
            }
            Err(pkt) => {
                self.counts.queue_full[ty] += 1;
                self.reply_now(pkt, Status::QueueFull);
            }
        }
    }

    /// The full parse, for what the fast path of `admit` did not take: malformed
    /// datagrams (counted by reason: `Err`), and every request when a classifier is
    /// set. `Ok(None)`: a request of no known type.
    #[inline(never)]
    fn classify_slow(&mut self, pkt: &R::Pkt) -> Result<Option<u32>, ()> {
        let header = match Header::parse(pkt.msg()) {
            Ok(h) => h,
            Err(e) => {
                self.stats.malformed.count(e);
                return Err(());
            }
        };
        if header.kind != Kind::Request {
            self.stats.malformed.not_request += 1;
            return Err(());
        }
        Ok(match &mut self.classifier {
            None => Some(header.ty),
            Some(c) => c.classify(&header, &pkt.msg()[proto::HEADER_LEN..]),
        })
    }

    /// Answers a request from the dispatcher itself (a rejection).
    #[cold]
    #[inline(never)]
    fn reply_now(&mut self, mut pkt: R::Pkt, status: Status) {
        let len = proto::make_reply(pkt.buf_mut(), status, 0);
        pkt.set_len(len);
        if let Some(pkt) = self.tx.send(pkt) {
            self.rx.recycle(pkt);
        }
        self.counts.replies[status as usize % STATUS_SLOTS] += 1;
    }

    /// Carries out the policy's decisions. Returns whether any request moved.
    ///
    /// # Safety
    /// With `ONE`, every channel must have a single slot.
    #[inline]
    unsafe fn dispatch<P: Policy + ?Sized, const ONE: bool>(
        &mut self,
        policy: &mut P,
        now: Cycles,
    ) -> bool {
        let mut pushed = 0u64;
        self.settled = true;
        while let Some(d) = policy.next(self.queues.state(), now) {
            let link = &mut self.links[d.worker];
            // SAFETY: the caller's promise for `ONE`.
            unsafe { send_head::<_, _, ONE>(&*policy, &mut self.queues, link, d.worker, d.ty) };
            pushed += 1;
        }
        if pushed == 0 {
            return false;
        }
        self.outstanding += pushed;
        if self.settings.wake_workers {
            self.wake_pushed();
        }
        true
    }

    /// Wakes the workers pushed to since the last call, once each.
    #[cold]
    fn wake_pushed(&mut self) {
        for link in &mut self.links {
            if std::mem::take(&mut link.wake) {
                if let Some(s) = link.sleeper.get() {
                    s.wake();
                }
            }
        }
    }

    fn reject_queued(&mut self, status: Status) {
        for ty in 0..self.queues.state().n_types() {
            while let Some((_, pkt)) = self.queues.pop(ty) {
                self.reply_now(pkt, status);
            }
        }
    }

    fn wake_all_workers(&self) {
        for w in &self.links {
            if let Some(s) = w.sleeper.get() {
                s.wake();
            }
        }
    }

    fn idle(&mut self) {
        let (rx, doorbell, links) = (&mut self.rx, &self.doorbell, &self.links);
        self.settings.idle.idle(|max| {
            doorbell.arm();
            // Work that raced with arming: a completion already back.
            if !links.iter().any(|w| w.jobs.has_completion()) {
                rx.wait(max, doorbell.fd());
            }
            doorbell.disarm();
        });
    }

    fn snapshot<P: Policy + ?Sized>(&mut self, policy: &P) -> Stats {
        let mut s = self.stats.clone();
        let c = &self.counts;
        s.received = c.received;
        for (r, n) in s.replies.iter_mut().zip(c.replies) {
            *r = n;
        }
        for (t, ts) in s.types.iter_mut().enumerate() {
            ts.accepted = c.accepted[t];
            ts.completed = c.completed[t];
            ts.queue_full = c.queue_full[t];
            ts.queued = self.queues.state().len(t) as u64;
        }
        s.in_flight =
            self.queues.total_len() as u64 + self.outstanding - s.abandoned.min(self.outstanding);
        s.rx_drops = self.rx.drops();
        s.tx_errors = self.tx.errors();
        s.withheld = self.tx.withheld();
        s.policy = policy.summary();
        let clock = &self.settings.clock;
        if let Some(start) = self.load.started {
            let now = rdtsc();
            if deadline_passed(now, start) {
                s.run_ns = clock.cycles_to_ns(now.wrapping_sub(start)) as u64;
            }
            s.busy_ns = clock.cycles_to_ns(self.load.busy) as u64;
            s.busy_turns = self.load.busy_turns;
        }
        s
    }

    /// Publishes a snapshot with the workers' counters as they last published them
    /// added (the final stats add the reports they return at exit instead).
    fn publish<P: Policy + ?Sized>(&mut self, policy: &P) {
        let mut s = self.snapshot(policy);
        for c in &self.worker_counters {
            s.add_worker(&c.read());
        }
        self.published.put(s);
    }
}

/// Carries out a decision: the head of `ty`'s queue goes down worker `w`'s channel
/// (`link`), which is to be woken. A decision past the channel's capacity is the
/// policy's bug: a panic naming it.
///
/// # Safety
/// With `ONE`, the channel must have a single slot.
#[inline(always)]
unsafe fn send_head<Pkt, P: Policy + ?Sized, const ONE: bool>(
    policy: &P,
    queues: &mut TypedQueues<Pkt>,
    link: &mut Link<Pkt>,
    w: WorkerIdx,
    ty: TypeIdx,
) {
    // SAFETY: the caller's promise for `ONE`.
    if unsafe { link.jobs.push_in::<ONE>(head_job(policy, queues, ty)) }.is_err() {
        overfilled(policy.name(), w, link.jobs.capacity())
    }
    link.wake = true;
}

/// The head of `ty`'s queue as a job. A decision from an empty queue is the policy's
/// bug: a panic naming it.
#[inline(always)]
fn head_job<Pkt, P: Policy + ?Sized>(
    policy: &P,
    queues: &mut TypedQueues<Pkt>,
    ty: TypeIdx,
) -> Job<Pkt> {
    let Some((_arrival, pkt)) = queues.pop(ty) else {
        empty_queue(policy.name(), ty)
    };
    Job { pkt, ty }
}

#[cold]
#[inline(never)]
fn empty_queue(policy: &str, ty: TypeIdx) -> ! {
    panic!("policy {policy} dispatched from empty queue {ty}")
}

#[cold]
#[inline(never)]
fn overfilled(policy: &str, worker: WorkerIdx, capacity: usize) -> ! {
    panic!("policy {policy} overfilled worker {worker}'s channel (capacity {capacity})")
}

#[inline]
fn deadline_passed(now: Cycles, deadline: Cycles) -> bool {
    (now.wrapping_sub(deadline) as i64) >= 0
}

/// Logs a policy event: a reservation as one line with the types' names, at its time
/// since the loop started; at debug level only when it moved no type or core, the
/// demand alone having moved.
#[cold]
fn log_event(e: &Event, clock: &Clock, started: Option<Cycles>, stats: &Stats) {
    match e {
        Event::Reservation { at, resa, moved } => {
            // The clock's own count when the loop did not run (`poll`); 0 for the
            // reservation made before it started.
            let since = match started {
                Some(s) if deadline_passed(*at, s) => at.wrapping_sub(s),
                Some(_) => 0,
                None => *at,
            };
            let at_ms = format_args!("{:.1}", clock.cycles_to_ns(since) / 1e6);
            if *moved {
                let names: Vec<&str> = stats.types.iter().map(|t| t.name.as_str()).collect();
                tracing::info!(at_ms, "DARC reservation: {}", resa.describe(&names));
                if resa.unused_n_resas > 0 {
                    tracing::warn!(
                        "policy.n_resas: its last {} entr{} ignored: the types formed \
                         {} group(s) (types within policy.delta of each other share one)",
                        resa.unused_n_resas,
                        if resa.unused_n_resas == 1 {
                            "y is"
                        } else {
                            "ies are"
                        },
                        resa.groups.len()
                    );
                }
            } else {
                tracing::debug!(
                    at_ms,
                    "DARC reservation: demand re-profiled, cores unchanged"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::Completion;
    use std::sync::Mutex;

    #[test]
    fn type_table_maps_small_and_large_ids() {
        let t = TypeTable::new(&[1, 2, 70_000, 5]);
        assert_eq!(t.lookup(1), Some(0));
        assert_eq!(t.lookup(2), Some(1));
        assert_eq!(t.lookup(70_000), Some(2));
        assert_eq!(t.lookup(5), Some(3));
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(3), None);
        assert_eq!(t.lookup(70_001), None);
        assert_eq!(t.lookup(u32::MAX), None);
    }

    #[test]
    fn the_fast_request_check_agrees_with_the_parser() {
        let mut valid = vec![0u8; proto::HEADER_LEN + 3];
        proto::encode_request(&mut valid, 0xabcd_0123, 7, 9, b"xyz").unwrap();
        let parsed = |m: &[u8]| match Header::parse(m) {
            Ok(h) if h.kind == Kind::Request => Some(h.ty),
            _ => None,
        };
        let fast = |m: &[u8]| request_type(m.first_chunk(), m.len());
        assert_eq!(fast(&valid), Some(0xabcd_0123));
        // Every single-byte change of the header and every truncation or extension,
        // plus a reply and an empty message.
        let mut cases = vec![Vec::new(), valid[..proto::HEADER_LEN].to_vec()];
        for i in 0..proto::HEADER_LEN {
            for v in [0u8, 1, 0x7f, 0x80, 0x81, 0xff] {
                let mut m = valid.clone();
                m[i] = v;
                cases.push(m);
            }
        }
        for n in 0..valid.len() + 2 {
            let mut m = valid.clone();
            m.resize(n, 0);
            cases.push(m);
        }
        let mut reply = valid.clone();
        proto::make_reply(&mut reply, Status::Ok, 3);
        cases.push(reply);
        for m in &cases {
            assert_eq!(fast(m), parsed(m), "{m:?}");
        }
        // A message cut short in a buffer that still holds the whole request.
        for n in 0..valid.len() + 2 {
            let mut buf = valid.clone();
            buf.resize(buf.len().max(n), 0);
            let cut = &buf[..n];
            assert_eq!(request_type(buf.first_chunk(), n), parsed(cut), "{n}");
        }
    }

    use crate::policy::Dispatch;

    /// A policy that declares one job per worker (the default capacity) but gives
    /// every waiting request to worker 0, busy or not.
    #[derive(Debug)]
    struct Overfill;

    impl Policy for Overfill {
        fn name(&self) -> &'static str {
            "overfill"
        }

        fn on_completion(&mut self, _: WorkerIdx, _: TypeIdx, _: Cycles, _: Cycles) {}

        fn next(&mut self, q: &crate::policy::QueueState, _: Cycles) -> Option<Dispatch> {
            q.oldest().map(|ty| Dispatch { ty, worker: 0 })
        }
    }

    /// A dispatcher over `rx` and `tx` for types 1 and 2 (queues 64 deep), feeding
    /// `workers`, never waking them: for stepping with [`Dispatcher::poll`].
    fn stepped<R: RxQueue, T: TxQueue<Pkt = R::Pkt>>(
        rx: R,
        tx: T,
        policy: Box<dyn Policy>,
        workers: Vec<JobSender<R::Pkt>>,
    ) -> Dispatcher<R, T> {
        let types = [1, 2]
            .map(|id| {
                let info = TypeInfo {
                    name: format!("T{id}"),
                    mean_ns: None,
                    ratio: None,
                    deadline_ns: None,
                };
                (id, info)
            })
            .to_vec();
        Dispatcher::new(Parts {
            rx,
            tx,
            policy,
            types,
            queue_capacity: 64,
            classifier: None,
            workers: workers
                .into_iter()
                .map(|jobs| WorkerLink {
                    jobs,
                    sleeper: Arc::new(OnceLock::new()),
                    counters: Default::default(),
                })
                .collect(),
            settings: Settings {
                rx_batch: 32,
                idle: Idler::new(crate::config::IdleStrategy::Spin, Duration::from_millis(1)),
                wake_workers: false,
                stats_interval: None,
                drain_timeout: Duration::from_secs(1),
                clock: Clock::tsc(),
            },
            doorbell: Arc::new(Doorbell::disabled()),
            stop: Arc::new(AtomicBool::new(false)),
            stop_workers: Arc::new(AtomicBool::new(false)),
            published: Arc::default(),
        })
    }

    /// The channel to a worker holds what the policy declared and no more (one slot
    /// here): a policy that breaks its word is stopped at once, by name, rather than
    /// letting requests wait behind each other where it promised they would not.
    #[test]
    #[should_panic(expected = "policy overfill overfilled worker 0's channel (capacity 1)")]
    fn a_policy_that_overfills_a_worker_is_named() {
        use crate::net::mem::{Cycle, Mem};
        use crate::net::{Split, Transport};

        let mem = Mem::new(Cycle::new(&[1, 2]), 8);
        let Split { rx, tx, .. } = mem.split(1).unwrap();
        let (jobs, _worker_end) = crate::workers::channel(1);
        let mut d = stepped(rx, tx, Box::new(Overfill), vec![jobs]);
        // The turn that receives dispatches what it received.
        d.poll(0);
    }

    /// c-FCFS, DARC, SJF and EDF have their channels' one slot addressed directly
    /// (`with_policy!`): a dispatcher given a wider channel for one of them refuses to
    /// start, naming the policy and the worker, rather than have jobs overwrite each
    /// other.
    #[test]
    fn a_one_at_a_time_policy_refuses_a_wider_channel() {
        use crate::config::{PolicyConfig, PolicyKind};
        use crate::net::mem::{Cycle, Mem};
        use crate::net::{Split, Transport};

        let types: Vec<TypeInfo> = [1, 2]
            .map(|id| TypeInfo {
                name: format!("T{id}"),
                mean_ns: Some(1000 * id as u64),
                ratio: Some(0.5),
                deadline_ns: None,
            })
            .to_vec();
        for kind in [
            PolicyKind::Cfcfs,
            PolicyKind::Darc,
            PolicyKind::Sjf,
            PolicyKind::Edf,
        ] {
            let cfg = PolicyConfig {
                kind,
                ..PolicyConfig::default()
            };
            let policy = crate::policy::build(&cfg, &types, 2, Clock::tsc());
            let name = policy.name();
            let mem = Mem::new(Cycle::new(&[1, 2]), 8);
            let Split { rx, tx, .. } = mem.split(1).unwrap();
            let workers = vec![crate::workers::channel(1).0, crate::workers::channel(2).0];
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                stepped(rx, tx, policy, workers);
            }))
            .expect_err(name);
            let msg = refused
                .downcast_ref::<String>()
                .expect("a formatted message");
            assert_eq!(
                msg,
                &format!(
                    "policy {name} hands a worker one request at a time, but worker 1's \
                     channel holds 2 (make channels with the policy's worker_capacity)"
                )
            );
        }
    }

    /// The same wider channels are fine for d-FCFS, whose loop masks positions.
    #[test]
    fn d_fcfs_takes_channels_of_any_capacity() {
        use crate::net::mem::{Cycle, Mem};
        use crate::net::{Split, Transport};

        let stop = Arc::new(AtomicBool::new(false));
        let mem = Mem::new(Cycle::new(&[1, 2]), 8).limit(4, stop);
        let Split { rx, tx, .. } = mem.split(1).unwrap();
        let (jobs, mut worker) = crate::workers::channel(4);
        let assign = crate::config::Assign::RoundRobin;
        let dfcfs = crate::policy::Dfcfs::new(1, 4, assign, 1);
        let mut d = stepped(rx, tx, Box::new(dfcfs), vec![jobs]);
        d.poll(0);
        // All four jobs out to the one worker: arrived in one turn (one clock reading),
        // so the oldest-first order breaks ties by type.
        let taken: Vec<_> = std::iter::from_fn(|| worker.take()).map(|j| j.ty).collect();
        assert_eq!(taken, [0, 0, 1, 1]);
    }

    /// The in-memory receive, noting at each call whether worker 0 had a job waiting.
    struct Watching {
        rx: crate::net::mem::MemRx<crate::net::mem::Cycle>,
        worker: Arc<Mutex<crate::workers::JobReceiver<crate::net::mem::MemPkt>>>,
        job_waiting: Vec<bool>,
    }

    impl RxQueue for Watching {
        type Pkt = crate::net::mem::MemPkt;

        fn rx_burst(&mut self, out: &mut Vec<Self::Pkt>, max: usize) -> std::io::Result<usize> {
            self.job_waiting
                .push(!self.worker.lock().unwrap().is_empty());
            self.rx.rx_burst(out, max)
        }

        fn recycle(&mut self, pkt: Self::Pkt) {
            self.rx.recycle(pkt);
        }

        fn wait(&mut self, _: Duration, _: Option<std::os::fd::RawFd>) {}
    }

    /// A request is dispatched in the turn that received it, and a worker freed by a
    /// completion is given a request that already waits before the turn receives
    /// anything: it does not sit idle through a receive (a system call over kernel
    /// UDP).
    #[test]
    fn a_freed_worker_gets_a_waiting_request_before_the_receive() {
        use crate::net::mem::{Cycle, Mem};
        use crate::net::{Split, Transport};

        // Two buffers: the first turn receives requests A and B.
        let mem = Mem::new(Cycle::new(&[1]), 2);
        let Split { rx, tx, .. } = mem.split(1).unwrap();
        let (jobs, worker) = crate::workers::channel(1);
        let worker = Arc::new(Mutex::new(worker));
        let rx = Watching {
            rx,
            worker: worker.clone(),
            job_waiting: Vec::new(),
        };
        let mut d = stepped(rx, tx, Box::new(crate::policy::Cfcfs::new(1)), vec![jobs]);

        assert!(d.poll(1), "A and B received");
        assert_eq!(d.core.rx.job_waiting, [false]);
        assert!(
            !worker.lock().unwrap().is_empty(),
            "A sent in the turn that received it"
        );
        {
            let mut w = worker.lock().unwrap();
            let a = w.take().expect("A was sent");
            assert!(w.is_empty(), "one job at a time");
            w.complete(Completion {
                ty: a.ty,
                status: Status::Ok,
                service: 0,
                pkt: Some(a.pkt),
            });
        }
        // A's completion frees the worker and its buffer: B goes out, then the
        // receive takes a request C into A's buffer, and C waits.
        assert!(d.poll(2));
        assert_eq!(
            d.core.rx.job_waiting,
            [false, true],
            "B sent before the receive"
        );
        assert_eq!(d.core.rx.rx.received(), 3);
        let s = d.stats();
        assert_eq!(
            (s.types[0].accepted, s.types[0].completed, s.types[0].queued),
            (3, 1, 1)
        );
        assert!(!worker.lock().unwrap().is_empty(), "B waits for the worker");
    }

    #[test]
    fn deadlines_survive_wraparound() {
        assert!(deadline_passed(10, 5));
        assert!(deadline_passed(5, 5));
        assert!(!deadline_passed(4, 5));
        assert!(deadline_passed(3, u64::MAX - 2));
    }
}

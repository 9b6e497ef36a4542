//! dispatcher - the dispatcher loop: completions, receive, classify, queue, dispatch.
//!
//! One pinned thread. Each turn of the loop reads top to bottom:
//! 1. take completions from every worker and tell the policy (frees workers);
//! 2. receive a burst, parse and validate headers, classify, stamp the arrival time,
//!    and queue each request in its type's bounded FIFO (full: answer `queue_full`);
//! 3. ask the policy for decisions and push requests onto worker rings;
//! 4. when idle: publish stats if due, then spin, yield or sleep.

mod doorbell;
pub mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use doorbell::Doorbell;
pub use stats::{Malformed, Stats, TypeStats};

use crate::idle::Idler;
use crate::net::{Packet, RxQueue, TxQueue};
use crate::policy::{Builtin, Event, Policy, TypeIdx, TypeInfo, TypedQueues};
use crate::proto::{self, Header, Kind, Status};
use crate::ring::{Consumer, Producer};
use crate::time::{rdtsc, Clock, Cycles};
use crate::workers::{Completion, Job, Sleeper};

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
    /// Direct table for small ids (the common case).
    direct: Vec<u8>,
    /// (id, index) sorted by id, for the rest.
    sorted: Vec<(u32, TypeIdx)>,
}

const DIRECT_IDS: usize = 1024;
const NO_TYPE: u8 = u8::MAX;

impl TypeTable {
    pub fn new(ids: &[u32]) -> TypeTable {
        assert!(ids.len() < NO_TYPE as usize);
        let mut direct = vec![NO_TYPE; DIRECT_IDS];
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

    #[inline]
    pub fn lookup(&self, id: u32) -> Option<TypeIdx> {
        if (id as usize) < DIRECT_IDS {
            let i = self.direct[id as usize];
            (i != NO_TYPE).then_some(i as usize)
        } else {
            self.sorted
                .binary_search_by_key(&id, |&(k, _)| k)
                .ok()
                .map(|p| self.sorted[p].1)
        }
    }
}

/// A dispatcher's link to one worker.
#[derive(Debug)]
pub struct WorkerLink<P> {
    pub jobs: Producer<Job<P>>,
    pub done: Consumer<Completion<P>>,
    /// Filled in by the worker thread when it starts; used to wake it (idle: park).
    pub sleeper: Arc<OnceLock<Arc<Sleeper>>>,
}

/// Settings the loop needs beyond its parts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rx_batch: usize,
    pub idle: Idler,
    /// Wake workers after pushing to their ring (they park when idle).
    pub wake_workers: bool,
    pub stats_interval: Option<Duration>,
    pub drain_timeout: Duration,
    pub clock: Clock,
}

/// The dispatcher: owns the receive side, the typed queues and the policy.
pub struct Dispatcher<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> {
    rx: R,
    tx: T,
    /// The built-in policies unboxed: their calls inline into the loop.
    policy: Builtin,
    queues: TypedQueues<R::Pkt>,
    types: TypeTable,
    classifier: Option<Box<dyn Classifier>>,
    workers: Vec<WorkerLink<R::Pkt>>,
    settings: Settings,
    doorbell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    stop_workers: Arc<AtomicBool>,
    published: Arc<Mutex<Stats>>,
    stats: Stats,
    outstanding: u64,
    /// The receive burst, reused: no allocation per burst.
    burst: Vec<R::Pkt>,
}

impl<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> std::fmt::Debug for Dispatcher<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.policy)
            .field("stats", &self.stats)
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
    /// Set by the dispatcher when workers should flush their rings and exit.
    pub stop_workers: Arc<AtomicBool>,
    /// Where snapshots of the counters are published.
    pub published: Arc<Mutex<Stats>>,
}

impl<R: RxQueue, T: TxQueue<Pkt = R::Pkt>> Dispatcher<R, T> {
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
        Dispatcher {
            burst: Vec::with_capacity(p.settings.rx_batch),
            queues: TypedQueues::new(ids.len(), p.queue_capacity),
            types: TypeTable::new(&ids),
            rx: p.rx,
            tx: p.tx,
            policy: Builtin::from(p.policy),
            classifier: p.classifier,
            workers: p.workers,
            settings: p.settings,
            doorbell: p.doorbell,
            stop: p.stop,
            stop_workers: p.stop_workers,
            published: p.published,
            stats,
            outstanding: 0,
        }
    }

    /// Runs until a stop is requested and every accepted request is answered (or the
    /// drain timeout passes); returns the final counters.
    pub fn run(mut self) -> Stats {
        let clock = self.settings.clock;
        let stats_every = self
            .settings
            .stats_interval
            .map(|d| clock.duration_to_cycles(d));
        let mut next_stats = rdtsc().wrapping_add(stats_every.unwrap_or(0));
        let mut drain_deadline: Option<Cycles> = None;
        let mut give_up: Option<Cycles> = None;
        loop {
            let now = rdtsc();
            let mut work = self.completions(now);
            if drain_deadline.is_none() {
                work |= self.receive(now);
            }
            work |= self.dispatch(now);

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
                    // answer what is in their rings.
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
                    self.publish();
                    next_stats = now.wrapping_add(every);
                }
            }
            if work {
                self.settings.idle.work();
            } else {
                self.idle();
            }
        }
        self.stop_workers.store(true, Ordering::Release);
        self.wake_all_workers();
        self.snapshot()
    }

    /// One turn of the loop's work at time `now`, without the shutdown, stats and idle
    /// logic of [`Dispatcher::run`]: take completions, receive a burst, dispatch.
    /// Returns whether there was any work. For driving a dispatcher step by step on
    /// one thread (deterministic tests, instruction counts); `run` does the same.
    #[inline]
    pub fn poll(&mut self, now: Cycles) -> bool {
        let mut work = self.completions(now);
        work |= self.receive(now);
        work |= self.dispatch(now);
        work
    }

    /// The counters now (as `run` returns them at exit).
    pub fn stats(&mut self) -> Stats {
        self.snapshot()
    }

    /// Takes completions from every worker. Returns whether there were any.
    #[inline]
    fn completions(&mut self, now: Cycles) -> bool {
        let mut any = false;
        for (w, link) in self.workers.iter_mut().enumerate() {
            // One batch per worker: its ring's position is written back once.
            for c in link.done.drain() {
                any = true;
                self.outstanding -= 1;
                self.policy.on_completion(w, c.ty, c.service, now);
                self.stats.replies[c.status as usize] += 1;
                self.stats.types[c.ty].completed += 1;
                if let Some(pkt) = c.pkt {
                    self.rx.recycle(pkt);
                }
            }
        }
        if any {
            while let Some(e) = self.policy.poll_event() {
                log_event(&e, &self.settings.clock);
            }
        }
        any
    }

    /// Receives a burst and queues each valid request. Returns whether any arrived.
    #[inline]
    fn receive(&mut self, now: Cycles) -> bool {
        match self.rx.rx_burst(&mut self.burst, self.settings.rx_batch) {
            Ok(0) => return false,
            Ok(_) => {}
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
        for pkt in pkts.drain(..) {
            self.admit(pkt, now);
        }
        self.burst = pkts;
        true
    }

    #[inline]
    fn admit(&mut self, pkt: R::Pkt, now: Cycles) {
        self.stats.received += 1;
        let header = match Header::parse(pkt.msg()) {
            Ok(h) => h,
            Err(e) => {
                self.stats.malformed.count(e);
                self.rx.recycle(pkt);
                return;
            }
        };
        if header.kind != Kind::Request {
            self.stats.malformed.not_request += 1;
            self.rx.recycle(pkt);
            return;
        }
        let id = match &mut self.classifier {
            None => Some(header.ty),
            Some(c) => c.classify(&header, &pkt.msg()[proto::HEADER_LEN..]),
        };
        let Some(ty) = id.and_then(|id| self.types.lookup(id)) else {
            self.reply_now(pkt, Status::UnknownType);
            return;
        };
        match self.queues.push(ty, now, pkt) {
            Ok(()) => {
                self.stats.types[ty].accepted += 1;
                self.policy.on_arrival(ty, now);
            }
            Err(pkt) => {
                self.stats.types[ty].queue_full += 1;
                self.reply_now(pkt, Status::QueueFull);
            }
        }
    }

    /// Answers a request from the dispatcher itself (a rejection).
    fn reply_now(&mut self, mut pkt: R::Pkt, status: Status) {
        let len = proto::make_reply(pkt.buf_mut(), status, 0);
        pkt.set_len(len);
        if let Some(pkt) = self.tx.send(pkt) {
            self.rx.recycle(pkt);
        }
        self.stats.replies[status as usize] += 1;
    }

    /// Carries out the policy's decisions. Returns whether any request moved.
    #[inline]
    fn dispatch(&mut self, now: Cycles) -> bool {
        let mut any = false;
        while let Some(d) = self.policy.next(self.queues.state(), now) {
            let (_arrival, pkt) = self.queues.pop(d.ty).unwrap_or_else(|| {
                panic!(
                    "policy {} dispatched from empty queue {}",
                    self.policy.name(),
                    d.ty
                )
            });
            let link = &mut self.workers[d.worker];
            if link.jobs.push(Job { pkt, ty: d.ty }).is_err() {
                panic!(
                    "policy {} overfilled worker {}'s ring (capacity {})",
                    self.policy.name(),
                    d.worker,
                    link.jobs.capacity()
                );
            }
            if self.settings.wake_workers {
                if let Some(s) = link.sleeper.get() {
                    s.wake();
                }
            }
            self.outstanding += 1;
            any = true;
        }
        any
    }

    fn reject_queued(&mut self, status: Status) {
        for ty in 0..self.queues.state().n_types() {
            while let Some((_, pkt)) = self.queues.pop(ty) {
                self.reply_now(pkt, status);
            }
        }
    }

    fn wake_all_workers(&self) {
        for w in &self.workers {
            if let Some(s) = w.sleeper.get() {
                s.wake();
            }
        }
    }

    fn idle(&mut self) {
        let (rx, doorbell, workers) = (&mut self.rx, &self.doorbell, &self.workers);
        self.settings.idle.idle(|max| {
            doorbell.arm();
            // Work that raced with arming: a completion already in a ring.
            if workers.iter().all(|w| w.done.is_empty()) {
                rx.wait(max, doorbell.fd());
            }
            doorbell.disarm();
        });
    }

    fn snapshot(&mut self) -> Stats {
        let mut s = self.stats.clone();
        for (t, ts) in s.types.iter_mut().enumerate() {
            ts.queued = self.queues.state().len(t) as u64;
        }
        s.in_flight =
            self.queues.total_len() as u64 + self.outstanding - s.abandoned.min(self.outstanding);
        s.rx_drops = self.rx.drops();
        s.tx_errors = self.tx.errors();
        s.policy = self.policy.summary();
        s
    }

    fn publish(&mut self) {
        let s = self.snapshot();
        if let Ok(mut p) = self.published.lock() {
            *p = s;
        }
    }
}

#[inline]
fn deadline_passed(now: Cycles, deadline: Cycles) -> bool {
    (now.wrapping_sub(deadline) as i64) >= 0
}

fn log_event(e: &Event, clock: &Clock) {
    match e {
        Event::Reservation { at, resa } => {
            tracing::info!(
                at_ms = clock.cycles_to_ns(*at) / 1e6,
                "DARC reservation: {resa:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn deadlines_survive_wraparound() {
        assert!(deadline_passed(10, 5));
        assert!(deadline_passed(5, 5));
        assert!(!deadline_passed(4, 5));
        assert!(deadline_passed(3, u64::MAX - 2));
    }
}

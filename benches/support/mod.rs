//! support - what the benches, `tests/no_alloc.rs` and the callgrind driver share: a
//! dispatcher over the in-memory transport, and simulated zero-work workers.
//!
//! A simulated worker does what `workers::Worker::serve` does to a request minus the
//! handler: turns it into an `ok` reply in place, sends it on its own transmit side and
//! reports a completion (with the buffer, for the pool). It can be stepped (one call
//! serves every job waiting in its channel), so a whole dispatcher plus workers can run on one
//! thread, deterministically.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use persephone::config::{IdleStrategy, PolicyConfig, PolicyKind, Profile};
use persephone::dispatcher::{self, Dispatcher, Doorbell, WorkerLink};
use persephone::idle::Idler;
use persephone::net::mem::{Counters, Cycle, Mem, MemPkt, MemRx, MemTx};
use persephone::net::{Packet, Split, Transport, TxQueue};
use persephone::policy::{self, TypeInfo};
use persephone::proto::{self, Status};
use persephone::time::{Clock, Cycles};
use persephone::workers::{self, Completion, Job, JobReceiver};

/// The dispatcher type every bench here drives.
pub type MemDispatcher = Dispatcher<MemRx<Cycle>, MemTx>;

/// Everything that shapes a run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub policy: PolicyKind,
    /// DARC: static reservation from configured means (`Static`), or profiled.
    pub profile: Profile,
    /// DARC dynamic: completions per profiling window.
    pub window: u64,
    pub n_types: usize,
    pub n_workers: usize,
    pub rx_batch: usize,
    /// Receive buffers: requests in flight at most.
    pub buffers: usize,
    /// Requests to receive before the dispatcher stops (`None`: no end).
    pub limit: Option<u64>,
    pub queue_capacity: usize,
    /// The dispatcher's idle strategy.
    pub idle: IdleStrategy,
    /// d-FCFS: requests a worker may hold (`None`: the config's default, 64).
    pub depth: Option<usize>,
}

impl Setup {
    pub fn new(policy: PolicyKind, n_types: usize, n_workers: usize) -> Setup {
        Setup {
            policy,
            profile: Profile::Static,
            window: 50_000,
            n_types,
            n_workers,
            rx_batch: 32,
            buffers: 256,
            limit: None,
            queue_capacity: 4096,
            idle: IdleStrategy::Spin,
            depth: None,
        }
    }

    /// d-FCFS with at most `depth` requests per worker (1: one outstanding, as c-FCFS
    /// and DARC).
    pub fn depth(mut self, depth: usize) -> Setup {
        self.depth = Some(depth);
        self
    }

    pub fn limit(mut self, n: u64) -> Setup {
        self.limit = Some(n);
        self
    }

    pub fn batch(mut self, rx_batch: usize) -> Setup {
        self.rx_batch = rx_batch;
        self
    }

    pub fn buffers(mut self, n: usize) -> Setup {
        self.buffers = n;
        self
    }

    pub fn dynamic(mut self, window: u64) -> Setup {
        self.profile = Profile::Dynamic;
        self.window = window;
        self
    }

    /// A one-line name for reports: `darc/4 types/14 workers`.
    pub fn name(&self) -> String {
        format!(
            "{}/{} types/{} workers",
            self.policy.name(),
            self.n_types,
            self.n_workers
        )
    }
}

/// Type `i` has wire id `i + 1`, mean service time `1 µs · 2^i` and an equal share, so
/// that under DARC (delta 0.2) every type is a group of its own: the most groups
/// `next` can have to walk.
pub fn types(n: usize) -> Vec<(u32, TypeInfo)> {
    (0..n)
        .map(|i| {
            (
                i as u32 + 1,
                TypeInfo {
                    name: format!("T{i}"),
                    mean_ns: Some(1_000u64 << i.min(40)),
                    ratio: Some(1.0 / n as f64),
                    deadline_ns: None,
                },
            )
        })
        .collect()
}

pub fn policy_config(s: &Setup) -> PolicyConfig {
    let d = PolicyConfig::default();
    PolicyConfig {
        kind: s.policy,
        profile: s.profile,
        window: s.window,
        depth: s.depth.unwrap_or(d.depth),
        ..d
    }
}

/// Builds the policy a run uses.
pub fn build_policy(s: &Setup) -> Box<dyn policy::Policy> {
    let infos: Vec<TypeInfo> = types(s.n_types).into_iter().map(|(_, t)| t).collect();
    policy::build(&policy_config(s), &infos, s.n_workers, Clock::NANOS)
}

/// A worker without a thread or a handler (see the module docs).
#[derive(Debug)]
pub struct SimWorker {
    pub jobs: JobReceiver<MemPkt>,
    pub tx: MemTx,
}

impl SimWorker {
    /// Serves every job waiting in the channel; returns how many.
    #[inline]
    pub fn serve(&mut self) -> usize {
        let mut n = 0;
        while let Some(Job { mut pkt, ty }) = self.jobs.take() {
            let len = proto::make_reply(pkt.buf_mut(), Status::Ok, 0);
            pkt.set_len(len);
            let pkt = self.tx.send(pkt);
            self.jobs.complete(Completion {
                ty,
                status: Status::Ok,
                service: 0,
                pkt,
            });
            n += 1;
        }
        n
    }
}

/// A dispatcher, its simulated workers, and what observes them.
pub struct Rig {
    pub dispatcher: MemDispatcher,
    pub workers: Vec<SimWorker>,
    pub counters: Arc<Counters>,
    /// The dispatcher's stop flag (raised by the transport after `limit` requests).
    pub stop: Arc<AtomicBool>,
}

/// A worker's end of its channel, and its transmit side.
pub type WorkerEnds = (JobReceiver<MemPkt>, MemTx);

/// Parts for a dispatcher whose workers are built by the caller.
pub struct Parts {
    pub dispatcher: MemDispatcher,
    /// Per worker: its end of the channel and its transmit side.
    pub workers: Vec<WorkerEnds>,
    pub counters: Arc<Counters>,
    pub stop: Arc<AtomicBool>,
    pub stop_workers: Arc<AtomicBool>,
    pub doorbell: Arc<Doorbell>,
    pub types: Arc<[TypeInfo]>,
}

/// Builds a dispatcher over the in-memory transport for `s`, with no stats
/// publication and a TSC clock; workers are left to the caller.
pub fn parts(s: &Setup) -> Parts {
    let stop = Arc::new(AtomicBool::new(false));
    let ids: Vec<u32> = types(s.n_types).iter().map(|(id, _)| *id).collect();
    let mut mem = Mem::new(Cycle::new(&ids), s.buffers);
    if let Some(n) = s.limit {
        mem = mem.limit(n, stop.clone());
    }
    let counters = mem.counters(s.n_workers);
    let Split {
        rx,
        tx,
        workers: txs,
    } = mem.split(s.n_workers).expect("in-memory split");
    let policy = build_policy(s);
    let capacity = policy.worker_capacity();
    let mut links = Vec::new();
    let mut workers = Vec::new();
    for tx in txs {
        let (jobs_out, jobs_in) = workers::channel(capacity);
        links.push(WorkerLink {
            jobs: jobs_out,
            sleeper: Arc::new(OnceLock::new()),
            counters: Default::default(),
        });
        workers.push((jobs_in, tx));
    }
    let stop_workers = Arc::new(AtomicBool::new(false));
    let doorbell = Arc::new(Doorbell::disabled());
    let infos = types(s.n_types);
    let dispatcher = Dispatcher::new(dispatcher::Parts {
        rx,
        tx,
        policy,
        types: infos.clone(),
        queue_capacity: s.queue_capacity,
        classifier: None,
        workers: links,
        settings: dispatcher::Settings {
            rx_batch: s.rx_batch,
            idle: Idler::new(s.idle, Duration::from_millis(1)),
            wake_workers: false,
            stats_interval: None,
            drain_timeout: Duration::from_secs(30),
            clock: Clock::tsc(),
        },
        doorbell: doorbell.clone(),
        stop: stop.clone(),
        stop_workers: stop_workers.clone(),
        published: Arc::default(),
    });
    Parts {
        dispatcher,
        workers,
        counters,
        stop,
        stop_workers,
        doorbell,
        types: infos.into_iter().map(|(_, t)| t).collect(),
    }
}

/// A dispatcher with simulated workers, to be stepped on one thread or split across
/// threads.
pub fn rig(s: &Setup) -> Rig {
    let p = parts(s);
    Rig {
        dispatcher: p.dispatcher,
        workers: p
            .workers
            .into_iter()
            .map(|(jobs, tx)| SimWorker { jobs, tx })
            .collect(),
        counters: p.counters,
        stop: p.stop,
    }
}

impl Rig {
    /// One dispatcher turn at `now`, then every worker serves its channel. Returns the
    /// requests served.
    #[inline]
    pub fn step(&mut self, now: Cycles) -> usize {
        self.dispatcher.poll(now);
        self.serve_all()
    }

    /// Every worker serves its channel; returns the requests served.
    #[inline]
    pub fn serve_all(&mut self) -> usize {
        self.workers.iter_mut().map(SimWorker::serve).sum()
    }

    /// Steps until `n` more replies were sent (time advancing by 100 per step); returns
    /// the final time.
    pub fn run_replies(&mut self, n: u64, mut now: Cycles) -> Cycles {
        let target = self.counters.sent() + n;
        while self.counters.sent() < target {
            now += 100;
            self.step(now);
        }
        now
    }
}

/// Pins the calling thread to `core` if the machine has it; says whether it did.
pub fn pin(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Serves simulated workers from one thread until `stop` is set: the "14 workers on
/// one core" of the saturation benchmark.
pub fn serve_until(workers: &mut [SimWorker], stop: &AtomicBool) -> u64 {
    let mut total = 0u64;
    loop {
        let mut n = 0;
        for w in workers.iter_mut() {
            n += w.serve();
        }
        total += n as u64;
        if n == 0 {
            if stop.load(Ordering::Relaxed) {
                return total;
            }
            std::hint::spin_loop();
        }
    }
}

/// Runs `peer` on core 1 while `main` (on this thread, core 0) is timed; `main` gets
/// called once the peer is running.
pub fn with_peer<P: Send + 'static>(
    peer_state: P,
    peer: impl FnOnce(P) + Send + 'static,
    main: impl FnOnce() -> Duration,
) -> Duration {
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let t = std::thread::spawn(move || {
        pin(1);
        r.store(true, Ordering::Release);
        peer(peer_state);
    });
    while !ready.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let d = main();
    t.join().expect("peer thread");
    d
}

/// Round trips through two single-line mailboxes carrying sequence numbers.
pub fn mailbox_ping_pong(iters: u64) -> Duration {
    let ping = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let pong = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let (ping2, pong2) = (ping.clone(), pong.clone());
    with_peer(
        (),
        move |()| {
            for i in 1..=iters {
                while ping2.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong2.store(i, Ordering::Release);
            }
        },
        move || {
            let t = Instant::now();
            for i in 1..=iters {
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            }
            t.elapsed()
        },
    )
}

/// Items one way through a single-slot mailbox (non-zero: full, 0: empty).
pub fn mailbox_one_way(iters: u64) -> Duration {
    let slot = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let s2 = slot.clone();
    with_peer(
        (),
        move |()| {
            let mut sum = 0u64;
            for _ in 0..iters {
                let v = loop {
                    let v = s2.load(Ordering::Acquire);
                    if v != 0 {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                s2.store(0, Ordering::Release);
                sum = sum.wrapping_add(v);
            }
            black_box(sum);
        },
        move || {
            let t = Instant::now();
            for i in 1..=iters {
                while slot.load(Ordering::Acquire) != 0 {
                    std::hint::spin_loop();
                }
                slot.store(i, Ordering::Release);
            }
            while slot.load(Ordering::Acquire) != 0 {
                std::hint::spin_loop();
            }
            t.elapsed()
        },
    )
}

//! dispatcher - the whole dispatcher in-process, over the in-memory transport.
//!
//! - `pipeline`: the dispatcher (`Dispatcher::run`, core 0) and one real worker
//!   (`workers::Worker::run`, core 1) with a zero-work handler. The dispatcher receives
//!   each request from the in-memory transport (256 buffers: a closed loop), parses,
//!   classifies, queues it, asks the policy, sends it down the worker's channel, takes the
//!   completion back; the worker replies in place on its own transmit side. 4 request
//!   types. Requests per second; ns per request is ns of the dispatcher core per request.
//!   c-FCFS and DARC give a worker one request at a time, so with one worker each
//!   request waits for the previous one's completion: a round trip per request.
//!   d-FCFS (depth 64) lets the worker hold many, and pipelines; `dfcfs-depth1` is
//!   d-FCFS held to one, to show that the round trip, not the policy, sets the rate.
//! - `saturation`: the dispatcher (core 0) serving 14 simulated zero-work workers, all
//!   drained, and their completions posted, by one thread on core 1: the most requests
//!   one dispatcher core can schedule. 4 request types.
//! - `mailbox`: the bare single-slot handoffs of `benches/ring.rs`, measured again here
//!   so that the pipeline's ratio to the physical limit comes from one run.
//!
//! Each sample is a fresh run of exactly `iters` requests: the transport raises the
//! dispatcher's stop flag after the last one, and the dispatcher drains and exits; the
//! time is taken on the dispatcher thread around `run`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use persephone::config::{IdleStrategy, PolicyKind};
use persephone::idle::Idler;
use persephone::workers::{HandlerError, Request, Worker};

mod support;
use support::{Setup, SimWorker};

/// One pipeline run of `n` requests; returns the dispatcher's time.
fn pipeline(s: Setup, n: u64) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let s = s.limit(n);
    let p = support::parts(&s);
    let mut txs = p.workers;
    let (jobs, tx) = txs.pop().expect("one worker");
    let worker = Worker {
        idx: 0,
        jobs,
        tx,
        handler: Box::new(|_req: &mut Request<'_>| -> Result<(), HandlerError> { Ok(()) }),
        types: p.types.clone(),
        idle: Idler::new(IdleStrategy::Spin, Duration::from_millis(1)),
        stop: p.stop_workers.clone(),
        sleeper: Arc::new(std::sync::OnceLock::new()),
        doorbell: p.doorbell.clone(),
        budget: None,
        max_amplification: 0.0,
        counters: Default::default(),
    };
    let w = std::thread::spawn(move || {
        support::pin(1);
        worker.run()
    });
    let d = p.dispatcher;
    let elapsed = std::thread::spawn(move || {
        support::pin(0);
        let t = Instant::now();
        let stats = d.run();
        let e = t.elapsed();
        assert_eq!(stats.replies_with(persephone::proto::Status::Ok), n);
        e
    })
    .join()
    .expect("dispatcher thread");
    let report = w.join().expect("worker thread");
    assert_eq!(report.served, n);
    elapsed
}

/// One saturation run of `n` requests over `workers` simulated workers; returns the
/// dispatcher's time, and of it the time in turns that found work (its load), and the
/// number of those turns.
fn saturation(policy: PolicyKind, workers: usize, n: u64) -> (Duration, Duration, u64) {
    if n == 0 {
        return (Duration::ZERO, Duration::ZERO, 0);
    }
    let s = Setup::new(policy, 4, workers).limit(n);
    let p = support::parts(&s);
    let mut sims: Vec<SimWorker> = p
        .workers
        .into_iter()
        .map(|(jobs, tx)| SimWorker { jobs, tx })
        .collect();
    let stop_workers = p.stop_workers.clone();
    let w = std::thread::spawn(move || {
        support::pin(1);
        support::serve_until(&mut sims, &stop_workers)
    });
    let d = p.dispatcher;
    let counters = p.counters;
    let (elapsed, stats) = std::thread::spawn(move || {
        support::pin(0);
        let t = Instant::now();
        let stats = d.run();
        (t.elapsed(), stats)
    })
    .join()
    .expect("dispatcher thread");
    let served = w.join().expect("worker thread");
    assert_eq!(served, n);
    assert_eq!(counters.ok(), n);
    (
        elapsed,
        Duration::from_nanos(stats.busy_ns),
        stats.busy_turns,
    )
}

fn bench_dispatcher(c: &mut Criterion) {
    // The mailbox runs its main side on this thread: core 0 (the peer takes core 1).
    if !support::pin(0) {
        eprintln!("warning: could not pin to core 0");
    }
    let mut g = c.benchmark_group("mailbox");
    g.throughput(Throughput::Elements(1));
    g.bench_function("roundtrip", |b| b.iter_custom(support::mailbox_ping_pong));
    g.bench_function("oneway", |b| b.iter_custom(support::mailbox_one_way));
    g.finish();

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for policy in [PolicyKind::Darc, PolicyKind::Cfcfs, PolicyKind::Dfcfs] {
        g.bench_function(BenchmarkId::new(policy.name(), "1 worker"), |b| {
            b.iter_custom(|n| pipeline(Setup::new(policy, 4, 1), n))
        });
    }
    g.bench_function(BenchmarkId::new("dfcfs-depth1", "1 worker"), |b| {
        b.iter_custom(|n| pipeline(Setup::new(PolicyKind::Dfcfs, 4, 1).depth(1), n))
    });
    g.finish();

    let mut g = c.benchmark_group("saturation");
    g.throughput(Throughput::Elements(1));
    for policy in [PolicyKind::Darc, PolicyKind::Cfcfs, PolicyKind::Dfcfs] {
        // Criterion reports the wall time per request, which is the slower of the
        // dispatcher and the thread serving the workers. Beside it, summed over the
        // runs: the dispatcher's busy time per request (what it spends apart from
        // waiting idle for completions), its busy share, and requests per busy turn.
        let mut load = Load::default();
        g.bench_function(BenchmarkId::new(policy.name(), "14 workers"), |b| {
            b.iter_custom(|n| {
                let (elapsed, busy, turns) = saturation(policy, 14, n);
                load.add(n, elapsed, busy, turns);
                elapsed
            })
        });
        load.report(&format!("saturation/{}/14 workers", policy.name()));
    }
    g.finish();
}

/// The dispatcher's load summed over the runs of one benchmark. Sums, not per-run
/// medians: criterion's warm-up runs (n = 1, 2, 4, ...) are dominated by start and
/// drain, and weighing each run by its requests leaves them a negligible share.
#[derive(Default)]
struct Load {
    runs: u64,
    requests: u64,
    elapsed: Duration,
    busy: Duration,
    turns: u64,
}

impl Load {
    fn add(&mut self, n: u64, elapsed: Duration, busy: Duration, turns: u64) {
        self.runs += 1;
        self.requests += n;
        self.elapsed += elapsed;
        self.busy += busy;
        self.turns += turns;
    }

    fn report(&self, name: &str) {
        if self.requests == 0 {
            return;
        }
        println!(
            "{name}: dispatcher busy {:.1} ns/request of {:.1} elapsed, {:.1} % of its \
             time, {:.1} requests per busy turn ({} requests in {} runs)",
            self.busy.as_nanos() as f64 / self.requests as f64,
            self.elapsed.as_nanos() as f64 / self.requests as f64,
            100.0 * self.busy.as_secs_f64() / self.elapsed.as_secs_f64(),
            self.requests as f64 / self.turns.max(1) as f64,
            self.requests,
            self.runs
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_dispatcher
}
criterion_main!(benches);

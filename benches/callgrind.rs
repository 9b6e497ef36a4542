//! callgrind - a fixed, single-threaded run of the dispatcher for instruction counts.
//!
//! Steps a dispatcher over the in-memory transport with simulated zero-work workers on
//! one thread: each step is one dispatcher turn (`turn`: completions and refills, receive
//! a burst, dispatch) followed by every worker serving its channel. Nothing depends on timing, so
//! `valgrind --tool=callgrind --toggle-collect='*callgrind*turn*'` counts the same
//! instructions every time; `scripts/callgrind.sh` runs it at two request counts and
//! divides the difference by the difference of requests (start-up and warm-up cancel
//! out). Not a criterion bench: `cargo bench --bench callgrind -- [options]` just runs it.
//!
//! Options: `--policy darc|cfcfs|dfcfs|sjf|edf` (darc), `--types N` (4), `--workers N` (14),
//! `--batch N` (rx batch, 32), `--buffers N` (256), `--requests N` (100000),
//! `--warmup N` (20000), `--dynamic` (DARC profiling instead of a static reservation).

use std::hint::black_box;

use persephone::config::PolicyKind;
use persephone::time::Cycles;

mod support;
use support::{MemDispatcher, Setup};

/// One dispatcher turn: the only code callgrind counts.
#[inline(never)]
fn turn(d: &mut MemDispatcher, now: Cycles) -> bool {
    d.poll(now)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut s = Setup::new(PolicyKind::Darc, 4, 14);
    let (mut requests, mut warmup) = (100_000u64, 20_000u64);
    let num = |v: Option<String>, k: &str| -> u64 {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} needs a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--policy" => {
                s.policy = match args.next().as_deref() {
                    Some("darc") => PolicyKind::Darc,
                    Some("cfcfs") => PolicyKind::Cfcfs,
                    Some("dfcfs") => PolicyKind::Dfcfs,
                    Some("sjf") => PolicyKind::Sjf,
                    Some("edf") => PolicyKind::Edf,
                    other => panic!("--policy: unknown {other:?}"),
                }
            }
            "--types" => s.n_types = num(args.next(), "--types") as usize,
            "--workers" => s.n_workers = num(args.next(), "--workers") as usize,
            "--batch" => s.rx_batch = num(args.next(), "--batch") as usize,
            "--buffers" => s.buffers = num(args.next(), "--buffers") as usize,
            "--requests" => requests = num(args.next(), "--requests"),
            "--warmup" => warmup = num(args.next(), "--warmup"),
            "--dynamic" => s = s.dynamic(50_000),
            // cargo bench passes --bench; ignore it and anything else cargo adds.
            _ => {}
        }
    }
    let mut rig = support::rig(&s);
    let mut now: Cycles = 0;
    let mut turns = 0u64;
    let step = |rig: &mut support::Rig, now: &mut Cycles| {
        *now += 100;
        black_box(turn(&mut rig.dispatcher, *now));
        rig.serve_all();
    };
    while rig.counters.sent() < warmup {
        step(&mut rig, &mut now);
    }
    let start = rig.counters.sent();
    while rig.counters.sent() < warmup + requests {
        step(&mut rig, &mut now);
        turns += 1;
    }
    let done = rig.counters.sent() - start;
    let stats = rig.dispatcher.stats();
    println!(
        "{}: batch {}, {} buffers: {} requests in {} turns ({:.1} per turn), ok {}, \
         queue_full {}",
        s.name(),
        s.rx_batch,
        s.buffers,
        done,
        turns,
        done as f64 / turns as f64,
        stats.replies_with(persephone::proto::Status::Ok),
        stats.replies_with(persephone::proto::Status::QueueFull),
    );
}

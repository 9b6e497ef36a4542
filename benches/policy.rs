//! policy - the scheduling decision per request, policy alone (no rings, no threads).
//!
//! One iteration is a burst of 32 arrivals handled the way the dispatcher does: queue
//! each (`TypedQueues::push` + `on_arrival`), then ask `next` for decisions and pop the
//! queue head of each, completing every dispatched request at once (zero-work workers,
//! `on_completion`) whenever no worker is free, until the burst is gone. Reported per
//! request. 14 workers; c-FCFS, d-FCFS (depth 64, round robin) and DARC (static
//! reservation, one group per type: the most groups `next` walks; and dynamic
//! profiling with a 50 000-completion window) with 1, 4 and 16 types.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use persephone::config::PolicyKind;
use persephone::policy::{Policy, TypedQueues, WorkerIdx};

mod support;
use support::Setup;

const BURST: usize = 32;
const WORKERS: usize = 14;

/// A burst through a policy; returns a checksum so that nothing is optimised away.
#[inline]
fn burst(
    p: &mut dyn Policy,
    q: &mut TypedQueues<u32>,
    busy: &mut Vec<(WorkerIdx, usize)>,
    n_types: usize,
    now: &mut u64,
) -> usize {
    let mut sum = 0;
    for i in 0..BURST {
        *now += 1;
        let ty = i % n_types;
        if q.push(ty, *now, i as u32).is_ok() {
            p.on_arrival(ty, *now);
        }
    }
    while !q.state().is_empty() {
        while let Some(d) = p.next(q.state(), *now) {
            let (_, v) = q.pop(d.ty).expect("policy chose a waiting type");
            sum += v as usize + d.worker;
            busy.push((d.worker, d.ty));
        }
        for (w, ty) in busy.drain(..) {
            *now += 1;
            p.on_completion(w, ty, 100, *now);
        }
    }
    sum
}

fn bench_policies(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(BURST as u64));
    let setups = [
        ("cfcfs", Setup::new(PolicyKind::Cfcfs, 1, WORKERS)),
        ("dfcfs", Setup::new(PolicyKind::Dfcfs, 1, WORKERS)),
        ("darc", Setup::new(PolicyKind::Darc, 1, WORKERS)),
        (
            "darc-dynamic",
            Setup::new(PolicyKind::Darc, 1, WORKERS).dynamic(50_000),
        ),
    ];
    for (name, base) in setups {
        for n_types in [1, 4, 16] {
            let s = Setup {
                n_types,
                ..base.clone()
            };
            let mut p = support::build_policy(&s);
            let mut q = TypedQueues::new(n_types, 4096);
            let mut busy = Vec::with_capacity(WORKERS * 64);
            let mut now = 0u64;
            g.bench_with_input(BenchmarkId::new(name, n_types), &n_types, |b, &n| {
                b.iter(|| black_box(burst(&mut *p, &mut q, &mut busy, n, &mut now)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_policies);
criterion_main!(benches);

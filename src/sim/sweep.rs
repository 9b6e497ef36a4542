//! sim/sweep.rs - independent simulation points run in parallel on all cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{run, SimConfig, SimResult};

/// One point of a sweep: a configuration and the names its results are filed under.
#[derive(Debug, Clone)]
pub struct Point {
    /// Experiment label (the CSV `label` column).
    pub label: String,
    /// Policy variant name (the CSV `policy` column): `cfcfs`, `darc`, `darc-r3`, ...
    pub policy: String,
    pub cfg: SimConfig,
}

/// Runs every point on `jobs` threads (points are independent: each has its own
/// seeded streams, so the results do not depend on `jobs` or on scheduling). Calls
/// `on_done` as each point finishes; returns the results in the order of `points`.
pub fn run_all(
    points: &[Point],
    jobs: usize,
    on_done: &(dyn Fn(&Point, &SimResult) + Sync),
) -> Vec<SimResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SimResult>>> =
        Mutex::new((0..points.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, points.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = points.get(i) else { break };
                let r = run(&p.cfg);
                on_done(p, &r);
                results.lock().expect("no panics while holding it")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while holding it")
        .into_iter()
        .map(|r| r.expect("every point ran"))
        .collect()
}

/// The number of threads to use by default: the machine's available parallelism.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    #[test]
    fn results_come_back_in_order_and_do_not_depend_on_jobs() {
        let points: Vec<Point> = [0.3, 0.6, 0.9]
            .iter()
            .map(|&load| Point {
                label: "t".into(),
                policy: "darc".into(),
                cfg: SimConfig::new(Workload::preset("high-bimodal").unwrap(), 4, load, 2000),
            })
            .collect();
        let done = AtomicUsize::new(0);
        let a = run_all(&points, 3, &|_, _| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 3);
        let b = run_all(&points, 1, &|_, _| {});
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.end_ns, y.end_ns);
            assert_eq!(x.latency_at(0, 0.99), y.latency_at(0, 0.99));
        }
        // Same request count at a higher rate: the run ends sooner.
        assert!(a[0].end_ns > a[2].end_ns);
    }
}

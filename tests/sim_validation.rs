//! sim_validation.rs - the simulator against queueing theory, before its policy
//! comparisons are trusted.
//!
//! - c-FCFS with exponential service is an M/M/k FCFS queue: its p99 and p99.9 sojourn
//!   times must match the exact Erlang-C sojourn distribution within 3 % at k = 1, 4, 16
//!   and ρ = 0.5 … 0.9.
//! - d-FCFS with random assignment and unbounded worker queues splits a Poisson stream
//!   into k independent Poisson streams: each worker is an M/M/1 queue, T ~ Exp(μ - λ/k).
//! - Little's law: time-average number in system = λ × mean sojourn time.
//!
//! # Sizing
//!
//! A tail quantile from n iid samples has a relative standard error near
//! sqrt(p / (n (1 - p))) / ln(1 / (1 - p)): 0.46 % for p99.9 at n = 10^6. Sojourn times
//! in a queue are far from iid: the requests above p99.9 come in clusters (one long
//! busy period pushes thousands of consecutive requests over the line), so what counts
//! is the number of such excursions, and that shrinks quickly as ρ grows. Measured
//! over 4-6 seeds per point (release build), the standard deviation of the p99.9 error
//! was about 1.5 % for M/M/1 at ρ = 0.9 with 1.6·10^7 requests, 0.9 % for M/M/4 at
//! ρ = 0.9 with 3.2·10^7, 0.75 % for M/M/16 at ρ = 0.9 with 8·10^6, and 0.6 % for M/M/1
//! at ρ = 0.8 with 1.6·10^7. The estimator is also skewed low (most runs see fewer
//! extreme excursions than the average). [`requests_for`] sizes each point so that 3 %
//! is at least three standard deviations; the seeds are fixed, so every run of these
//! tests is deterministic and a failure means the simulator changed, not bad luck.
//!
//! The grid is ~2·10^8 simulated requests, which takes about a minute in release on
//! two cores and far too long in debug. The full grid therefore runs only in release
//! (`cargo test --release --test sim_validation`); debug builds (`cargo test
//! --workspace`) run light variants with few requests at moderate load, with
//! tolerances sized for them.

use persephone::config::{Assign, PolicyConfig, PolicyKind};
use persephone::sim::sweep::{self, Point};
use persephone::sim::theory::{mm1_sojourn_quantile, Mmk};
use persephone::sim::{self, SimConfig, SimResult};
use persephone::workload::{ServiceDist, TypeMix, Workload};

/// Mean service time (ns). Large against the 1 ns time step, so that rounding service
/// times to whole nanoseconds changes nothing measurable.
const MEAN_NS: f64 = 10_000.0;

fn exponential() -> Workload {
    Workload {
        name: "exp".into(),
        types: vec![TypeMix {
            id: 1,
            name: "EXP".into(),
            ratio: 1.0,
            service: ServiceDist::Exponential { mean_ns: MEAN_NS },
            deadline_ns: None,
        }],
    }
}

fn simulate(policy: PolicyConfig, k: usize, rho: f64, requests: u64, seed: u64) -> SimResult {
    let mut cfg = SimConfig::new(exponential(), k, rho, requests);
    cfg.policy = policy;
    cfg.seed = seed;
    let r = sim::run(&cfg);
    assert_eq!(r.rejected(), 0, "queue overflow distorts the comparison");
    assert_eq!(r.unfinished, 0);
    r
}

fn cfcfs() -> PolicyConfig {
    PolicyConfig {
        kind: PolicyKind::Cfcfs,
        ..PolicyConfig::default()
    }
}

fn random_dfcfs(seed: u64) -> PolicyConfig {
    PolicyConfig {
        kind: PolicyKind::Dfcfs,
        assign: Assign::Random,
        depth: 1 << 30,
        seed,
        ..PolicyConfig::default()
    }
}

/// Requests per validation point (see "Sizing" in the module docs).
fn requests_for(k: usize, rho: f64) -> u64 {
    let m = 1_000_000;
    match (k, rho) {
        (1, r) if r > 0.85 => 48 * m,
        (4, r) if r > 0.85 => 32 * m,
        (_, r) if r > 0.85 => 8 * m,
        (1, r) if r > 0.75 => 32 * m,
        (4, r) if r > 0.75 => 12 * m,
        (_, r) if r > 0.75 => 4 * m,
        (1 | 4, _) => 4 * m,
        _ => 2 * m,
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got / want - 1.0).abs()
}

fn check_mm1_per_worker(r: &SimResult, k: usize, rho: f64, tol: f64) -> Vec<String> {
    let q = Mmk::with_load(k, rho, MEAN_NS);
    let mut failures = Vec::new();
    for p in [0.5, 0.99, 0.999] {
        let want = mm1_sojourn_quantile(q.lambda / k as f64, q.mu, p);
        let got = r.latency_at(0, p) as f64;
        println!(
            "random d-FCFS k {k} ρ {rho:.1} p{}: sim {:.2} µs, M/M/1 {:.2} µs, err {:+.2} %",
            p * 100.0,
            got / 1e3,
            want / 1e3,
            (got / want - 1.0) * 100.0
        );
        if rel_err(got, want) >= tol {
            failures.push(format!(
                "k {k} ρ {rho} p{}: {got:.0} vs {want:.0} ns",
                p * 100.0
            ));
        }
    }
    // Mean: E[T] = 1 / (μ - λ/k).
    let want = 1.0 / (q.mu - q.lambda / k as f64);
    if rel_err(r.mean_latency(0), want) >= tol {
        failures.push(format!(
            "k {k} ρ {rho} mean: {} vs {want:.0} ns",
            r.mean_latency(0)
        ));
    }
    failures
}

fn check_little(r: &SimResult, lambda_per_ns: f64, tol: f64) {
    let w = r.mean_latency(0);
    let l = r.mean_in_system;
    let lw = lambda_per_ns * w;
    println!("Little: L = {l:.3}, λW = {lw:.3}");
    assert!(rel_err(l, lw) < tol, "L = {l} but λW = {lw}");
}

/// Runs the configurations on both cores.
fn run_parallel(cfgs: Vec<SimConfig>) -> Vec<SimResult> {
    let points: Vec<Point> = cfgs
        .into_iter()
        .map(|cfg| Point {
            label: String::new(),
            policy: String::new(),
            cfg,
        })
        .collect();
    let rs = sweep::run_all(&points, sweep::default_jobs(), &|_, _| {});
    for r in &rs {
        assert_eq!(r.rejected(), 0, "queue overflow distorts the comparison");
        assert_eq!(r.unfinished, 0);
    }
    rs
}

fn config(policy: PolicyConfig, k: usize, rho: f64, requests: u64, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(exponential(), k, rho, requests);
    cfg.policy = policy;
    cfg.seed = seed;
    cfg
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn cfcfs_matches_erlang_c_tails() {
    let mut grid = Vec::new();
    for (i, k) in [1, 4, 16].into_iter().enumerate() {
        for (j, rho) in [0.5, 0.6, 0.7, 0.8, 0.9].into_iter().enumerate() {
            grid.push((k, rho, (10 * i + j) as u64));
        }
    }
    let results = run_parallel(
        grid.iter()
            .map(|&(k, rho, seed)| config(cfcfs(), k, rho, requests_for(k, rho), seed))
            .collect(),
    );
    let mut failures = Vec::new();
    println!("|  k |   ρ | requests | p99 sim µs | p99 theory µs | err | p99.9 sim µs | p99.9 theory µs | err |");
    for (&(k, rho, _), r) in grid.iter().zip(&results) {
        let q = Mmk::with_load(k, rho, MEAN_NS);
        let mut row = format!(
            "| {k:2} | {rho:.1} | {:7.0}M |",
            requests_for(k, rho) as f64 / 1e6
        );
        for p in [0.99, 0.999] {
            let want = q.sojourn_quantile(p);
            let got = r.latency_at(0, p) as f64;
            let err = got / want - 1.0;
            row += &format!(
                " {:.2} | {:.2} | {:+.2} % |",
                got / 1e3,
                want / 1e3,
                err * 100.0
            );
            if err.abs() >= 0.03 {
                failures.push(format!(
                    "M/M/{k} ρ {rho} p{}: {got:.0} vs {want:.0} ns",
                    p * 100.0
                ));
            }
        }
        println!("{row}");
    }
    assert!(failures.is_empty(), "off by 3 % or more: {failures:?}");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn random_dfcfs_matches_independent_mm1() {
    let mut grid = Vec::new();
    for (i, k) in [4, 16].into_iter().enumerate() {
        for (j, rho) in [0.5, 0.7, 0.9].into_iter().enumerate() {
            // The k queues' samples pool into one M/M/1 distribution. At ρ = 0.9, 3.2·10^7
            // requests gave -2.2 % at k = 4 (each queue sees n/k): 6.4·10^7 halves σ².
            let n = [4_000_000, 8_000_000, 64_000_000][j];
            grid.push((k, rho, n, (100 + 10 * i + j) as u64));
        }
    }
    let results = run_parallel(
        grid.iter()
            .map(|&(k, rho, n, seed)| config(random_dfcfs(seed + 1000), k, rho, n, seed))
            .collect(),
    );
    let failures: Vec<String> = grid
        .iter()
        .zip(&results)
        .flat_map(|(&(k, rho, _, _), r)| check_mm1_per_worker(r, k, rho, 0.03))
        .collect();
    assert!(failures.is_empty(), "off by 3 % or more: {failures:?}");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn littles_law_holds() {
    for (k, rho) in [(1, 0.9), (4, 0.8), (16, 0.7)] {
        let r = simulate(cfcfs(), k, rho, 4_000_000, 7);
        let q = Mmk::with_load(k, rho, MEAN_NS);
        check_little(&r, q.lambda, 0.01);
        // And the mean matches Erlang-C's E[T].
        let w = r.mean_latency(0);
        assert!(
            rel_err(w, q.mean_sojourn()) < 0.02,
            "{w} vs {}",
            q.mean_sojourn()
        );
    }
}

/// Debug-sized variants: the same checks with ~10^5 requests at moderate load. At
/// ρ = 0.5, k = 4 the p99 sojourn estimate from 10^5 samples has a relative
/// standard error near 1 %, so 5 % is a four-sigma bound; p99.9 is left to release.
#[test]
fn light_cfcfs_matches_erlang_c_p99() {
    let r = simulate(cfcfs(), 4, 0.5, 100_000, 3);
    let q = Mmk::with_load(4, 0.5, MEAN_NS);
    let got = r.latency_at(0, 0.99) as f64;
    let want = q.sojourn_quantile(0.99);
    assert!(rel_err(got, want) < 0.05, "{got} vs {want}");
    check_little(&r, q.lambda, 0.03);
}

#[test]
fn light_random_dfcfs_matches_mm1_median() {
    let k = 4;
    let r = simulate(random_dfcfs(9), k, 0.5, 100_000, 4);
    let q = Mmk::with_load(k, 0.5, MEAN_NS);
    for p in [0.5, 0.99] {
        let want = mm1_sojourn_quantile(q.lambda / k as f64, q.mu, p);
        let got = r.latency_at(0, p) as f64;
        assert!(rel_err(got, want) < 0.05, "p{p}: {got} vs {want}");
    }
    // And it is clearly worse than c-FCFS: M/M/4 has p99 well below M/M/1's.
    let c = Mmk::with_load(k, 0.5, MEAN_NS).sojourn_quantile(0.99);
    assert!(r.latency_at(0, 0.99) as f64 > 1.5 * c);
}

//! schedule.rs - the open-loop schedule: every request's send time, type and service
//! time, computed before the run.
//!
//! A run is a chain of [`Phase`]s, each with its own workload mix, rate and duration
//! (optionally preceded by a warm-up that repeats the first phase's mix and rate and is
//! left out of the statistics). Inter-arrival gaps are exponential (a Poisson process)
//! or uniform (evenly spaced, every gap exactly 1/rate). Everything is drawn from one
//! seeded xoshiro256++ stream, so the same seed gives the same schedule.
//!
//! The schedule is stored as parallel arrays indexed by request number (the request id
//! on the wire), so the engine touches no allocator and no map while it runs.

use std::time::Duration;

use persephone::workload::Workload;
use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};

/// How inter-arrival gaps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exponential gaps with mean 1/rate (Poisson arrivals; `poisson` is accepted too).
    #[default]
    #[serde(alias = "poisson")]
    Exponential,
    /// Evenly spaced arrivals: every gap is exactly 1/rate.
    Uniform,
}

impl Arrival {
    pub fn name(self) -> &'static str {
        match self {
            Arrival::Exponential => "exponential",
            Arrival::Uniform => "uniform",
        }
    }
}

/// One stretch of a run with a fixed mix and rate.
#[derive(Debug, Clone)]
pub struct Phase {
    pub workload: Workload,
    /// Offered rate in requests/s.
    pub rate: f64,
    /// Load (fraction of capacity) this rate stands for, if it was given as a load.
    pub load: Option<f64>,
    pub duration: Duration,
}

/// A request type of the schedule (the union of the phases' types, by wire id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub id: u32,
    pub name: String,
}

/// Where a phase sits in the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpan {
    /// Index into the run's phases; `None` for the warm-up.
    pub phase: Option<usize>,
    /// Start and end, in ns from the start of the run.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Requests of this span: `first..end` indices.
    pub first: usize,
    pub end: usize,
    pub rate: f64,
    pub load: Option<f64>,
    /// Nominal share of each schedule type (indexed like [`Schedule::types`]).
    pub shares: Vec<f64>,
    /// The name this span's workload gives each schedule type (indexed likewise): types
    /// are merged by wire id, and two phases may name one id differently (SHORT/LONG,
    /// then GET/SCAN); a type the span does not offer keeps its first name.
    pub names: Vec<String>,
}

impl PhaseSpan {
    /// Whether its requests count in the statistics.
    pub fn measured(&self) -> bool {
        self.phase.is_some()
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e9
    }
}

/// The whole run, request by request.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub types: Vec<TypeInfo>,
    /// Scheduled send time of each request, ns from the start of the run (sorted).
    pub at_ns: Vec<u64>,
    /// Type of each request (index into `types`).
    pub ty: Vec<u16>,
    /// Service time each request asks the server to spend, ns.
    pub service_ns: Vec<u64>,
    /// The warm-up (if any) and the phases, in time order.
    pub spans: Vec<PhaseSpan>,
    /// The kv workload's keys, when requests are KV operations rather than `spin`
    /// service times (attached after [`Schedule::build`], see [`crate::kv`]).
    pub kv: Option<crate::kv::KvPlan>,
}

/// Why a schedule cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{key}: rate must be a positive number of requests/s, got {rate}")]
    BadRate { key: String, rate: f64 },
    #[error("the run would schedule {0} requests, more than the {MAX_REQUESTS} a run may hold; shorten the duration or lower the rate")]
    TooMany(u64),
    #[error("at most {} request types fit in one run", u16::MAX)]
    TooManyTypes,
    #[error("no phases")]
    Empty,
}

/// Most requests one schedule holds (about 30 B each, with the engine's slots).
pub const MAX_REQUESTS: u64 = 200_000_000;

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x5053_505f_5345_4544;

impl Schedule {
    /// Draws the schedule: a warm-up of `warmup` with the first phase's mix and rate,
    /// then each phase in turn.
    pub fn build(
        phases: &[Phase],
        warmup: Duration,
        arrival: Arrival,
        seed: u64,
    ) -> Result<Schedule, ScheduleError> {
        let first = phases.first().ok_or(ScheduleError::Empty)?;
        let mut expected = 0.0;
        for (i, p) in phases.iter().enumerate() {
            if !(p.rate > 0.0 && p.rate.is_finite()) {
                return Err(ScheduleError::BadRate {
                    key: format!("phases[{i}].rate"),
                    rate: p.rate,
                });
            }
            expected += p.rate * p.duration.as_secs_f64();
        }
        expected += first.rate * warmup.as_secs_f64();
        // Leave room for Poisson fluctuation above the mean.
        let cap = expected + 6.0 * expected.sqrt() + 16.0;
        if cap > MAX_REQUESTS as f64 {
            return Err(ScheduleError::TooMany(expected as u64));
        }
        let mut s = Schedule {
            at_ns: Vec::with_capacity(cap as usize),
            ty: Vec::with_capacity(cap as usize),
            service_ns: Vec::with_capacity(cap as usize),
            ..Schedule::default()
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut t0 = 0u64;
        let mut stretches: Vec<(Option<usize>, &Phase, Duration)> = Vec::new();
        if !warmup.is_zero() {
            stretches.push((None, first, warmup));
        }
        stretches.extend(
            phases
                .iter()
                .enumerate()
                .map(|(i, p)| (Some(i), p, p.duration)),
        );
        for (phase, p, len) in stretches {
            let end = t0 + len.as_nanos() as u64;
            s.push_stretch(phase, p, t0, end, arrival, &mut rng)?;
            t0 = end;
        }
        Ok(s)
    }

    fn type_index(&mut self, id: u32, name: &str) -> Result<u16, ScheduleError> {
        if let Some(i) = self.types.iter().position(|t| t.id == id) {
            return Ok(i as u16);
        }
        if self.types.len() >= u16::MAX as usize {
            return Err(ScheduleError::TooManyTypes);
        }
        self.types.push(TypeInfo {
            id,
            name: name.to_string(),
        });
        Ok((self.types.len() - 1) as u16)
    }

    fn push_stretch(
        &mut self,
        phase: Option<usize>,
        p: &Phase,
        start_ns: u64,
        end_ns: u64,
        arrival: Arrival,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<(), ScheduleError> {
        let map: Vec<u16> = p
            .workload
            .types
            .iter()
            .map(|t| self.type_index(t.id, &t.name))
            .collect::<Result<_, _>>()?;
        let mut shares = vec![0.0; self.types.len()];
        let mut names: Vec<String> = self.types.iter().map(|t| t.name.clone()).collect();
        for (k, &m) in map.iter().enumerate() {
            shares[m as usize] += p.workload.share(k);
            names[m as usize].clone_from(&p.workload.types[k].name);
        }
        let sampler = p.workload.sampler();
        let mean_gap = 1e9 / p.rate;
        // The rate was checked positive and finite, so the parameter is valid.
        let exp = Exp::new(1.0 / mean_gap).expect("positive finite rate");
        let first = self.at_ns.len();
        // Time is accumulated in f64 ns and rounded per request, so rounding never drifts.
        let mut t = start_ns as f64;
        loop {
            t += match arrival {
                Arrival::Exponential => exp.sample(rng),
                Arrival::Uniform => mean_gap,
            };
            if t >= end_ns as f64 {
                break;
            }
            if self.at_ns.len() as u64 >= MAX_REQUESTS {
                return Err(ScheduleError::TooMany(MAX_REQUESTS));
            }
            let k = sampler.pick_type(rng);
            self.at_ns.push(t.round() as u64);
            self.ty.push(map[k]);
            self.service_ns.push(sampler.service_ns(k, rng));
        }
        self.spans.push(PhaseSpan {
            phase,
            start_ns,
            end_ns,
            first,
            end: self.at_ns.len(),
            rate: p.rate,
            load: p.load,
            shares,
            names,
        });
        Ok(())
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.at_ns.len()
    }

    /// Keeps the first `n` requests only (a run stopped there): the spans after
    /// them go, and the one they end in ends with its last kept request.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.at_ns.truncate(n);
        self.ty.truncate(n);
        self.service_ns.truncate(n);
        self.spans.retain(|s| s.first < n);
        if let (Some(s), Some(&last)) = (self.spans.last_mut(), self.at_ns.last()) {
            if s.end > n {
                s.end = n;
                s.end_ns = (last + 1).min(s.end_ns).max(s.start_ns + 1);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.at_ns.is_empty()
    }

    /// End of the last span, ns.
    pub fn end_ns(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.end_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(w: &str, rate: f64, secs: f64) -> Phase {
        Phase {
            workload: Workload::preset(w).unwrap(),
            rate,
            load: None,
            duration: Duration::from_secs_f64(secs),
        }
    }

    fn gaps(s: &Schedule) -> Vec<f64> {
        let mut prev = 0u64;
        s.at_ns
            .iter()
            .map(|&t| {
                let g = (t - prev) as f64;
                prev = t;
                g
            })
            .collect()
    }

    /// Kolmogorov–Smirnov statistic of `xs` against Exp(mean).
    fn ks_exponential(xs: &mut [f64], mean: f64) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as f64;
        let mut d: f64 = 0.0;
        for (i, &x) in xs.iter().enumerate() {
            let f = 1.0 - (-x / mean).exp();
            d = d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
        }
        d
    }

    /// Critical value of the KS statistic at significance 0.001 for large n.
    fn ks_critical(n: usize) -> f64 {
        1.949 / (n as f64).sqrt()
    }

    // 10^6 draws at 100 kRPS: 10 s of schedule, built once for the tests that use it.
    fn million() -> &'static Schedule {
        static S: std::sync::OnceLock<Schedule> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            Schedule::build(
                &[phase("high-bimodal", 100_000.0, 10.0)],
                Duration::ZERO,
                Arrival::Exponential,
                DEFAULT_SEED,
            )
            .unwrap()
        })
    }

    #[test]
    fn mean_gap_is_one_over_rate() {
        let s = million();
        assert!((s.len() as f64 - 1e6).abs() < 5_000.0, "{}", s.len());
        let g = gaps(s);
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        assert!((mean / 10_000.0 - 1.0).abs() < 0.01, "mean gap {mean} ns");
    }

    #[test]
    fn gaps_are_exponential_by_kolmogorov_smirnov() {
        let mut g = gaps(million());
        let n = g.len();
        let d = ks_exponential(&mut g, 10_000.0);
        assert!(d < ks_critical(n), "KS D = {d} >= {}", ks_critical(n));
    }

    #[test]
    fn kolmogorov_smirnov_rejects_non_exponential_gaps() {
        // The test above can fail: uniform gaps, or exponential gaps of the wrong mean,
        // are far outside the critical value.
        let s = Schedule::build(
            &[phase("high-bimodal", 100_000.0, 1.0)],
            Duration::ZERO,
            Arrival::Uniform,
            1,
        )
        .unwrap();
        let mut g = gaps(&s);
        let n = g.len();
        assert!(ks_exponential(&mut g, 10_000.0) > 10.0 * ks_critical(n));
        let mut g = gaps(million());
        let n = g.len();
        assert!(ks_exponential(&mut g, 10_500.0) > ks_critical(n));
    }

    #[test]
    fn type_mix_follows_the_ratios() {
        for w in persephone::workload::PRESETS {
            let wl = Workload::preset(w).unwrap();
            let s = Schedule::build(
                &[phase(w, 1_000_000.0, 1.0)],
                Duration::ZERO,
                Arrival::Exponential,
                7,
            )
            .unwrap();
            let mut counts = vec![0usize; s.types.len()];
            for &t in &s.ty {
                counts[t as usize] += 1;
            }
            for (k, t) in wl.types.iter().enumerate() {
                let i = s.types.iter().position(|x| x.id == t.id).unwrap();
                let got = counts[i] as f64 / s.len() as f64;
                assert!((got - wl.share(k)).abs() < 0.01, "{w} {}: {got}", t.name);
                // Constant service times are carried as is.
                assert!(s
                    .service_ns
                    .iter()
                    .zip(&s.ty)
                    .filter(|(_, &ty)| ty as usize == i)
                    .all(|(&ns, _)| ns as f64 == t.service.mean_ns()));
            }
        }
    }

    #[test]
    fn uniform_gaps_are_exact() {
        let s = Schedule::build(
            &[phase("tpcc", 1_000.0, 0.01)],
            Duration::ZERO,
            Arrival::Uniform,
            1,
        )
        .unwrap();
        assert_eq!(s.at_ns, (1..10).map(|k| k * 1_000_000).collect::<Vec<_>>());
    }

    #[test]
    fn phases_chain_with_their_own_mix_and_rate() {
        let s = Schedule::build(
            &[
                phase("high-bimodal", 10_000.0, 0.5),
                phase("rocksdb", 40_000.0, 0.25),
            ],
            Duration::from_millis(100),
            Arrival::Exponential,
            3,
        )
        .unwrap();
        assert_eq!(s.spans.len(), 3);
        let (w, a, b) = (&s.spans[0], &s.spans[1], &s.spans[2]);
        assert_eq!((w.phase, a.phase, b.phase), (None, Some(0), Some(1)));
        assert_eq!((w.start_ns, w.end_ns), (0, 100_000_000));
        assert_eq!((a.start_ns, a.end_ns), (100_000_000, 600_000_000));
        assert_eq!((b.start_ns, b.end_ns), (600_000_000, 850_000_000));
        assert_eq!((w.end, a.end), (a.first, b.first));
        assert_eq!(b.end, s.len());
        // Types are merged by wire id: SHORT/LONG (1, 2) then GET/SCAN reuse 1 and 2,
        // each phase keeping its own names.
        assert_eq!(s.types.len(), 2);
        assert_eq!(a.names, ["SHORT", "LONG"]);
        assert_eq!(b.names, ["GET", "SCAN"]);
        for sp in &s.spans {
            assert!(s.at_ns[sp.first..sp.end]
                .iter()
                .all(|&t| t >= sp.start_ns && t < sp.end_ns));
            let n = (sp.end - sp.first) as f64;
            let want = sp.rate * sp.seconds();
            assert!((n - want).abs() < 5.0 * want.sqrt(), "{n} vs {want}");
        }
        // The second phase carries rocksdb's service times.
        assert!(s.service_ns[b.first..b.end]
            .iter()
            .all(|&ns| ns == 1_500 || ns == 635_000));
        assert!(s.at_ns.windows(2).all(|w| w[0] <= w[1]));
    }

    /// A run stopped after `n` requests keeps them: the spans after them go, and the
    /// one they end in ends at its last kept request.
    #[test]
    fn truncate_keeps_the_requests_tried() {
        let mut s = Schedule::build(
            &[
                phase("high-bimodal", 1000.0, 1.0),
                phase("tpcc", 1000.0, 1.0),
            ],
            Duration::from_millis(100),
            Arrival::Uniform,
            1,
        )
        .unwrap();
        assert_eq!(s.spans.len(), 3, "warm-up and two phases");
        let n = s.spans[1].first + 10;
        let last = s.at_ns[n - 1];
        s.truncate(n);
        assert_eq!((s.len(), s.ty.len(), s.service_ns.len()), (n, n, n));
        assert_eq!(s.spans.len(), 2);
        let sp = &s.spans[1];
        assert_eq!((sp.end, sp.end_ns), (n, last + 1));
        assert!(sp.end_ns > sp.start_ns);
        let before = s.clone();
        s.truncate(n + 5);
        assert_eq!(s.at_ns, before.at_ns, "no longer than it is");
    }

    #[test]
    fn the_seed_fixes_the_schedule() {
        let p = [phase("extreme-bimodal", 50_000.0, 0.1)];
        let a = Schedule::build(&p, Duration::ZERO, Arrival::Exponential, 9).unwrap();
        let b = Schedule::build(&p, Duration::ZERO, Arrival::Exponential, 9).unwrap();
        let c = Schedule::build(&p, Duration::ZERO, Arrival::Exponential, 10).unwrap();
        assert_eq!((&a.at_ns, &a.ty), (&b.at_ns, &b.ty));
        assert_ne!(a.at_ns, c.at_ns);
    }

    #[test]
    fn bad_rates_and_huge_runs_are_refused() {
        let e = Schedule::build(
            &[phase("tpcc", 0.0, 1.0)],
            Duration::ZERO,
            Arrival::Exponential,
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("phases[0].rate"), "{e}");
        let e = Schedule::build(
            &[phase("tpcc", 1e9, 3600.0)],
            Duration::ZERO,
            Arrival::Exponential,
            1,
        )
        .unwrap_err();
        assert!(matches!(e, ScheduleError::TooMany(_)), "{e}");
        assert_eq!(
            Schedule::build(&[], Duration::ZERO, Arrival::Exponential, 1).unwrap_err(),
            ScheduleError::Empty
        );
    }
}

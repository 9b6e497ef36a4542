//! workload.rs - request-type mixes: which types arrive, how often, and how long each
//! takes to serve. Shared by `psp-client` (what to send) and `psp-sim` (what to simulate).
//!
//! Presets reproduce the Perséphone evaluation; custom mixes come from YAML:
//!
//! ```yaml
//! name: my-mix
//! types:
//!   - { id: 1, name: GET,  ratio: 0.9, service: { kind: constant, ns: 2000 } }
//!   - { id: 2, name: SCAN, ratio: 0.1, service: { kind: lognormal, mean_ns: 500000, sigma: 1.0 } }
//! ```

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A service-time distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ServiceDist {
    /// Always `ns` (also spelt `mean_ns`, as the other kinds' mean is).
    Constant {
        #[serde(alias = "mean_ns")]
        ns: u64,
    },
    /// Exponential with the given mean.
    Exponential { mean_ns: f64 },
    /// Lognormal with the given mean and shape `sigma` (of the underlying normal).
    Lognormal { mean_ns: f64, sigma: f64 },
    /// `short_ns` with probability `p`, else `long_ns`.
    Bimodal { p: f64, short_ns: u64, long_ns: u64 },
}

impl ServiceDist {
    /// The distribution's mean in nanoseconds.
    pub fn mean_ns(&self) -> f64 {
        match *self {
            ServiceDist::Constant { ns } => ns as f64,
            ServiceDist::Exponential { mean_ns } => mean_ns,
            ServiceDist::Lognormal { mean_ns, .. } => mean_ns,
            ServiceDist::Bimodal {
                p,
                short_ns,
                long_ns,
            } => p * short_ns as f64 + (1.0 - p) * long_ns as f64,
        }
    }

    fn validate(&self, key: &str) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Invalid(format!("{key}: {m}")));
        match *self {
            ServiceDist::Constant { .. } => Ok(()),
            ServiceDist::Exponential { mean_ns } if !(mean_ns > 0.0 && mean_ns.is_finite()) => {
                bad(format!("exponential mean_ns must be > 0, got {mean_ns}"))
            }
            ServiceDist::Lognormal { mean_ns, sigma }
                if !(mean_ns > 0.0 && mean_ns.is_finite() && sigma >= 0.0 && sigma.is_finite()) =>
            {
                bad(format!(
                    "lognormal needs mean_ns > 0 and sigma >= 0, got {mean_ns}, {sigma}"
                ))
            }
            ServiceDist::Bimodal { p, .. } if !(0.0..=1.0).contains(&p) => {
                bad(format!("bimodal p must be in [0, 1], got {p}"))
            }
            _ => Ok(()),
        }
    }
}

/// One request type of a mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeMix {
    /// Wire type id.
    pub id: u32,
    pub name: String,
    /// Share of arrivals (normalised over the mix).
    pub ratio: f64,
    pub service: ServiceDist,
    /// EDF's deadline for the type, ns after arrival, in place of `slo` × its mean
    /// (psp-sim's EDF; psp-client's demo passes it to its built-in server under EDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ns: Option<u64>,
}

/// A workload: a named mix of request types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub types: Vec<TypeMix>,
}

/// A workload that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkloadError {
    #[error("unknown workload preset {0:?} (known: high-bimodal, extreme-bimodal, tpcc, rocksdb)")]
    UnknownPreset(String),
    #[error("invalid workload: {0}")]
    Invalid(String),
}

/// Names of the built-in presets.
pub const PRESETS: [&str; 4] = ["high-bimodal", "extreme-bimodal", "tpcc", "rocksdb"];

fn ty(id: u32, name: &str, ratio: f64, ns: u64) -> TypeMix {
    TypeMix {
        id,
        name: name.into(),
        ratio,
        service: ServiceDist::Constant { ns },
        deadline_ns: None,
    }
}

impl Workload {
    /// A built-in preset from the Perséphone evaluation.
    pub fn preset(name: &str) -> Result<Workload, WorkloadError> {
        let types = match name {
            "high-bimodal" => vec![ty(1, "SHORT", 0.5, 1_000), ty(2, "LONG", 0.5, 100_000)],
            "extreme-bimodal" => vec![ty(1, "SHORT", 0.995, 500), ty(2, "LONG", 0.005, 500_000)],
            "tpcc" => vec![
                ty(1, "Payment", 0.44, 5_700),
                ty(2, "OrderStatus", 0.04, 6_000),
                ty(3, "NewOrder", 0.44, 20_000),
                ty(4, "Delivery", 0.04, 88_000),
                ty(5, "StockLevel", 0.04, 100_000),
            ],
            "rocksdb" => vec![ty(1, "GET", 0.5, 1_500), ty(2, "SCAN", 0.5, 635_000)],
            _ => return Err(WorkloadError::UnknownPreset(name.into())),
        };
        Ok(Workload {
            name: name.into(),
            types,
        })
    }

    /// Parses a custom workload from YAML and validates it.
    pub fn from_yaml(text: &str) -> Result<Workload, WorkloadError> {
        let w: Workload =
            serde_yaml::from_str(text).map_err(|e| WorkloadError::Invalid(e.to_string()))?;
        w.validate()?;
        Ok(w)
    }

    /// Checks ids, ratios and distributions.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Invalid(m));
        if self.types.is_empty() {
            return bad("types: at least one type is needed".into());
        }
        let mut ids = std::collections::HashSet::new();
        for (i, t) in self.types.iter().enumerate() {
            if t.id == 0 {
                return bad(format!("types[{i}].id: 0 is reserved"));
            }
            if !ids.insert(t.id) {
                return bad(format!("types[{i}].id: {} is used twice", t.id));
            }
            if !(t.ratio >= 0.0 && t.ratio.is_finite()) {
                return bad(format!("types[{i}].ratio: must be >= 0, got {}", t.ratio));
            }
            t.service.validate(&format!("types[{i}].service"))?;
            if let Some(d) = t
                .deadline_ns
                .filter(|&d| d > crate::config::MAX_DEADLINE_NS)
            {
                return bad(format!(
                    "types[{i}].deadline_ns: must be at most {} (a day), got {d}",
                    crate::config::MAX_DEADLINE_NS
                ));
            }
        }
        if self.total_ratio() <= 0.0 {
            return bad("types: ratios sum to 0".into());
        }
        Ok(())
    }

    fn total_ratio(&self) -> f64 {
        self.types.iter().map(|t| t.ratio).sum()
    }

    /// Normalised share of type index `i`.
    pub fn share(&self, i: usize) -> f64 {
        self.types[i].ratio / self.total_ratio()
    }

    /// Mean service time over the mix, in nanoseconds.
    pub fn mean_service_ns(&self) -> f64 {
        let total = self.total_ratio();
        self.types
            .iter()
            .map(|t| t.ratio / total * t.service.mean_ns())
            .sum()
    }

    /// Arrival rate (requests/s) that loads `workers` workers to `load` (0..1).
    pub fn rate_for_load(&self, load: f64, workers: usize) -> f64 {
        load * workers as f64 * 1e9 / self.mean_service_ns()
    }

    /// A sampler of (type index, service time) pairs.
    pub fn sampler(&self) -> Sampler {
        let total = self.total_ratio();
        let mut acc = 0.0;
        let cumulative = self
            .types
            .iter()
            .map(|t| {
                acc += t.ratio / total;
                acc
            })
            .collect();
        Sampler {
            cumulative,
            dists: self.types.iter().map(|t| Dist::new(&t.service)).collect(),
        }
    }
}

#[derive(Debug, Clone)]
enum Dist {
    Constant(u64),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Bimodal(f64, u64, u64),
}

impl Dist {
    fn new(s: &ServiceDist) -> Dist {
        match *s {
            ServiceDist::Constant { ns } => Dist::Constant(ns),
            ServiceDist::Exponential { mean_ns } => Dist::Exp(Exp::new(1.0 / mean_ns).unwrap()),
            ServiceDist::Lognormal { mean_ns, sigma } => {
                let mu = mean_ns.ln() - sigma * sigma / 2.0;
                Dist::LogNormal(LogNormal::new(mu, sigma).unwrap())
            }
            ServiceDist::Bimodal {
                p,
                short_ns,
                long_ns,
            } => Dist::Bimodal(p, short_ns, long_ns),
        }
    }
}

/// Draws request types and service times for a [`Workload`].
#[derive(Debug, Clone)]
pub struct Sampler {
    cumulative: Vec<f64>,
    dists: Vec<Dist>,
}

impl Sampler {
    /// A type index drawn by the mix's ratios.
    #[inline]
    pub fn pick_type<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cumulative.len() - 1)
    }

    /// A service time in nanoseconds for type index `ty` (at least 1 ns unless constant).
    #[inline]
    pub fn service_ns<R: Rng + ?Sized>(&self, ty: usize, rng: &mut R) -> u64 {
        match &self.dists[ty] {
            Dist::Constant(ns) => *ns,
            Dist::Exp(d) => (d.sample(rng).round() as u64).max(1),
            Dist::LogNormal(d) => (d.sample(rng).round() as u64).max(1),
            Dist::Bimodal(p, a, b) => {
                if rng.random::<f64>() < *p {
                    *a
                } else {
                    *b
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn presets_have_the_papers_means() {
        let hb = Workload::preset("high-bimodal").unwrap();
        assert!((hb.mean_service_ns() - 50_500.0).abs() < 1e-6);
        let eb = Workload::preset("extreme-bimodal").unwrap();
        assert!((eb.mean_service_ns() - (0.995 * 500.0 + 0.005 * 500_000.0)).abs() < 1e-6);
        let tpcc = Workload::preset("tpcc").unwrap();
        let want =
            0.44 * 5_700.0 + 0.04 * 6_000.0 + 0.44 * 20_000.0 + 0.04 * 88_000.0 + 0.04 * 100_000.0;
        assert!((tpcc.mean_service_ns() - want).abs() < 1e-6);
        for p in PRESETS {
            Workload::preset(p).unwrap().validate().unwrap();
        }
        assert!(Workload::preset("nope").is_err());
    }

    #[test]
    fn rate_for_load() {
        let hb = Workload::preset("high-bimodal").unwrap();
        // 14 workers at 50.5 us mean: full capacity is 14 / 50.5us = 277 kRPS.
        let r = hb.rate_for_load(1.0, 14);
        assert!((r - 14.0e9 / 50_500.0).abs() < 1e-6);
    }

    #[test]
    fn sampler_matches_ratios_and_means() {
        let w = Workload::from_yaml(
            "name: t\ntypes:\n  - { id: 1, name: A, ratio: 3, service: { kind: exponential, mean_ns: 1000 } }\n  - { id: 2, name: B, ratio: 1, service: { kind: lognormal, mean_ns: 5000, sigma: 0.5 } }\n",
        )
        .unwrap();
        let s = w.sampler();
        let mut rng = SmallRng::seed_from_u64(7);
        let n = 400_000;
        let mut counts = [0usize; 2];
        let mut sums = [0f64; 2];
        for _ in 0..n {
            let t = s.pick_type(&mut rng);
            counts[t] += 1;
            sums[t] += s.service_ns(t, &mut rng) as f64;
        }
        let share_a = counts[0] as f64 / n as f64;
        assert!((share_a - 0.75).abs() < 0.01, "{share_a}");
        let mean_a = sums[0] / counts[0] as f64;
        let mean_b = sums[1] / counts[1] as f64;
        assert!((mean_a / 1000.0 - 1.0).abs() < 0.02, "{mean_a}");
        assert!((mean_b / 5000.0 - 1.0).abs() < 0.02, "{mean_b}");
    }

    /// A constant service time may be spelt `mean_ns` too, as every other kind's.
    #[test]
    fn a_constant_takes_mean_ns_too() {
        let yaml = |key: &str| {
            format!("name: t\ntypes: [{{ id: 1, name: A, ratio: 1, service: {{ kind: constant, {key}: 5 }} }}]")
        };
        for key in ["ns", "mean_ns"] {
            let w = Workload::from_yaml(&yaml(key)).unwrap();
            assert_eq!(w.types[0].service, ServiceDist::Constant { ns: 5 }, "{key}");
        }
    }

    /// A type may carry EDF's deadline; written back only when set.
    #[test]
    fn a_type_may_give_a_deadline() {
        let w = Workload::from_yaml(
            "name: t\ntypes:\n  - { id: 1, name: A, ratio: 1, deadline_ns: 20000, service: { kind: constant, ns: 1000 } }\n",
        )
        .unwrap();
        assert_eq!(w.types[0].deadline_ns, Some(20_000));
        assert!(serde_yaml::to_string(&w)
            .unwrap()
            .contains("deadline_ns: 20000"));
        let hb = Workload::preset("high-bimodal").unwrap();
        assert!(!serde_yaml::to_string(&hb).unwrap().contains("deadline"));
    }

    #[test]
    fn invalid_workloads_are_rejected() {
        for (yaml, want) in [
            ("name: t\ntypes: []", "at least one"),
            ("name: t\ntypes: [{ id: 0, name: A, ratio: 1, service: { kind: constant, ns: 1 } }]", "types[0].id"),
            ("name: t\ntypes: [{ id: 1, name: A, ratio: -1, service: { kind: constant, ns: 1 } }]", "types[0].ratio"),
            (
                "name: t\ntypes: [{ id: 1, name: A, ratio: 1, service: { kind: bimodal, p: 2, short_ns: 1, long_ns: 2 } }]",
                "bimodal p",
            ),
            ("name: t\ntypes: [{ id: 1, name: A, ratio: 1, service: { kind: weird } }]", "unknown variant"),
            (
                "name: t\ntypes: [{ id: 1, name: A, ratio: 1, deadline_ns: 86400000000001, service: { kind: constant, ns: 1 } }]",
                "types[0].deadline_ns",
            ),
        ] {
            let e = Workload::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}

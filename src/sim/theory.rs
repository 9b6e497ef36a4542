//! sim/theory.rs - closed forms from queueing theory that the simulator is checked against.
//!
//! - M/M/k with FCFS (what c-FCFS is under exponential service): the Erlang-C probability
//!   of waiting and the exact distribution of the sojourn time T = W + S, where W is 0
//!   with probability 1 - C and Exp(kμ - λ) with probability C, and S ~ Exp(μ).
//! - M/M/1 (what each worker of random d-FCFS is, fed a Poisson stream of rate λ/k):
//!   T ~ Exp(μ - λ/k).
//!
//! Rates are per nanosecond when used with the simulator, but nothing here depends on
//! the unit.

/// An M/M/k queue: Poisson arrivals of rate `lambda`, `k` servers of rate `mu` each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mmk {
    pub lambda: f64,
    pub mu: f64,
    pub k: usize,
}

impl Mmk {
    /// The queue with `k` servers of mean service time `mean_service` loaded to `rho`.
    pub fn with_load(k: usize, rho: f64, mean_service: f64) -> Mmk {
        assert!(k > 0 && rho > 0.0 && rho < 1.0 && mean_service > 0.0);
        let mu = 1.0 / mean_service;
        Mmk {
            lambda: rho * k as f64 * mu,
            mu,
            k,
        }
    }

    /// Utilisation ρ = λ / (kμ).
    pub fn rho(&self) -> f64 {
        self.lambda / (self.k as f64 * self.mu)
    }

    /// Erlang C: the probability that an arrival has to wait.
    ///
    /// Computed through the Erlang-B recursion B(0) = 1, B(j) = a·B(j-1) / (j + a·B(j-1))
    /// with a = λ/μ, which is stable for any k, then C = B / (1 - ρ(1 - B)).
    pub fn erlang_c(&self) -> f64 {
        let a = self.lambda / self.mu;
        let mut b = 1.0;
        for j in 1..=self.k {
            b = a * b / (j as f64 + a * b);
        }
        let rho = self.rho();
        b / (1.0 - rho * (1.0 - b))
    }

    /// Mean sojourn time `E[T] = C / (kμ - λ) + 1/μ`.
    pub fn mean_sojourn(&self) -> f64 {
        self.erlang_c() / (self.k as f64 * self.mu - self.lambda) + 1.0 / self.mu
    }

    /// P(T > t) for the FCFS sojourn time.
    pub fn sojourn_ccdf(&self, t: f64) -> f64 {
        let c = self.erlang_c();
        let mu = self.mu;
        let a = self.k as f64 * mu - self.lambda;
        // P(W' + S > t) for independent W' ~ Exp(a), S ~ Exp(μ).
        let conv = if ((a - mu) / mu).abs() < 1e-9 {
            (1.0 + mu * t) * (-mu * t).exp()
        } else {
            (a * (-mu * t).exp() - mu * (-a * t).exp()) / (a - mu)
        };
        (1.0 - c) * (-mu * t).exp() + c * conv
    }

    /// The `p`-quantile of the sojourn time (`p` in (0, 1)), solved by bisection on the
    /// monotone CCDF to a relative precision of 1e-12.
    pub fn sojourn_quantile(&self, p: f64) -> f64 {
        bisect_quantile(|t| self.sojourn_ccdf(t), p, 1.0 / self.mu)
    }
}

/// The `p`-quantile of an M/M/1 sojourn time with arrival rate `lambda` and service rate
/// `mu`: T ~ Exp(μ - λ).
pub fn mm1_sojourn_quantile(lambda: f64, mu: f64, p: f64) -> f64 {
    assert!(lambda < mu, "unstable M/M/1 queue");
    -(1.0 - p).ln() / (mu - lambda)
}

/// Solves `ccdf(t) = 1 - p` for a non-increasing `ccdf` with `ccdf(0) >= 1 - p`; `scale`
/// is a first guess of the order of magnitude.
fn bisect_quantile(ccdf: impl Fn(f64) -> f64, p: f64, scale: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0);
    let q = 1.0 - p;
    let mut hi = scale;
    while ccdf(hi) > q {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    while hi - lo > 1e-12 * hi {
        let mid = 0.5 * (lo + hi);
        if ccdf(mid) > q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm1_is_the_k1_case() {
        // With one server, C = ρ and T ~ Exp(μ - λ).
        let q = Mmk::with_load(1, 0.8, 1.0);
        assert!((q.erlang_c() - 0.8).abs() < 1e-12);
        for p in [0.5, 0.99, 0.999] {
            let want = mm1_sojourn_quantile(q.lambda, q.mu, p);
            let got = q.sojourn_quantile(p);
            assert!((got / want - 1.0).abs() < 1e-9, "p{p}: {got} vs {want}");
        }
        assert!((q.mean_sojourn() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn erlang_c_known_values() {
        // a = 2 Erlangs on 3 servers: C = (a^k/k! · k/(k-a)) / (Σ_{j<k} a^j/j! + that)
        // = (8/6 · 3) / (1 + 2 + 2 + 4) = 4/9.
        let q = Mmk {
            lambda: 2.0,
            mu: 1.0,
            k: 3,
        };
        assert!((q.erlang_c() - 4.0 / 9.0).abs() < 1e-12);
        // Mean wait C/(kμ-λ) = 4/9, so E[T] = 13/9.
        assert!((q.mean_sojourn() - 13.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn ccdf_is_a_distribution_and_quantiles_invert_it() {
        for k in [1, 4, 16] {
            for rho in [0.5, 0.75, 0.9] {
                let q = Mmk::with_load(k, rho, 1.0);
                assert!((q.sojourn_ccdf(0.0) - 1.0).abs() < 1e-12);
                // The mean is the integral of the CCDF (trapezoid rule).
                let (mut t, dt, mut area) = (0.0, 1e-3, 0.0);
                while q.sojourn_ccdf(t) > 1e-12 {
                    area += 0.5 * dt * (q.sojourn_ccdf(t) + q.sojourn_ccdf(t + dt));
                    t += dt;
                }
                assert!((area / q.mean_sojourn() - 1.0).abs() < 1e-5, "k{k} ρ{rho}");
                let t99 = q.sojourn_quantile(0.99);
                assert!((q.sojourn_ccdf(t99) - 0.01).abs() < 1e-12);
            }
        }
        // The a == μ branch (kμ - λ = μ): k = 2, λ = μ.
        let q = Mmk {
            lambda: 1.0,
            mu: 1.0,
            k: 2,
        };
        let near = Mmk {
            lambda: 1.0 + 1e-7,
            ..q
        };
        assert!((q.sojourn_ccdf(3.0) - near.sojourn_ccdf(3.0)).abs() < 1e-6);
    }
}

//! time.rs - cycle counter timestamps and their calibration against the monotonic clock.
//!
//! The dispatcher and workers stamp requests with the CPU's time-stamp counter (a few
//! nanoseconds to read, no syscall). Its frequency is measured at start-up against
//! `Instant`: CPUID leaf 0x16 is not trusted (AMD and most VMs report 0 there).
//! Policies never read a clock; they are handed `Cycles` by their driver.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A timestamp or duration in TSC cycles (virtual nanoseconds in the simulator).
pub type Cycles = u64;

/// Reads the time-stamp counter (or a monotonic nanosecond clock on other targets).
#[inline(always)]
pub fn rdtsc() -> Cycles {
    #[cfg(target_arch = "x86_64")]
    {
        // `_rdtsc` has no preconditions; it only reads a register.
        #[allow(unused_unsafe)]
        // SAFETY: RDTSC is available on every x86_64 CPU and has no memory effects.
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        fallback_ns()
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fallback_ns() -> Cycles {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as Cycles
}

/// Conversion between TSC cycles and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Cycles per nanosecond (= GHz).
    cycles_per_ns: f64,
}

impl Clock {
    /// A clock whose cycles are nanoseconds (the simulator's virtual time).
    pub const NANOS: Clock = Clock { cycles_per_ns: 1.0 };

    /// A clock with a known frequency.
    pub fn with_ghz(cycles_per_ns: f64) -> Clock {
        assert!(cycles_per_ns > 0.0 && cycles_per_ns.is_finite());
        Clock { cycles_per_ns }
    }

    /// The process-wide calibrated TSC clock (measured once, ~20 ms, on first use).
    pub fn tsc() -> Clock {
        static TSC: OnceLock<Clock> = OnceLock::new();
        *TSC.get_or_init(|| Clock::calibrate(Duration::from_millis(20)))
    }

    /// Measures the TSC frequency against `Instant` over `span`.
    ///
    /// Takes the best (shortest bracketing) of a few samples at both ends so that a
    /// preemption between the two clock reads does not skew the result.
    pub fn calibrate(span: Duration) -> Clock {
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = span;
            return Clock::NANOS;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let sample = || {
                let mut best = (u64::MAX, Instant::now(), 0u64);
                for _ in 0..5 {
                    let a = rdtsc();
                    let t = Instant::now();
                    let b = rdtsc();
                    if b.wrapping_sub(a) < best.0 {
                        best = (b.wrapping_sub(a), t, a + (b - a) / 2);
                    }
                }
                (best.1, best.2)
            };
            let (t0, c0) = sample();
            std::thread::sleep(span);
            let (t1, c1) = sample();
            let ns = t1.duration_since(t0).as_nanos() as f64;
            let cycles = c1.wrapping_sub(c0) as f64;
            if ns <= 0.0 || cycles <= 0.0 {
                return Clock::NANOS;
            }
            Clock {
                cycles_per_ns: cycles / ns,
            }
        }
    }

    /// Cycles per nanosecond.
    pub fn ghz(&self) -> f64 {
        self.cycles_per_ns
    }

    /// Nanoseconds to cycles (rounded).
    #[inline]
    pub fn ns_to_cycles(&self, ns: f64) -> Cycles {
        (ns * self.cycles_per_ns).round() as Cycles
    }

    /// Cycles to nanoseconds.
    #[inline]
    pub fn cycles_to_ns(&self, cycles: Cycles) -> f64 {
        cycles as f64 / self.cycles_per_ns
    }

    /// A `Duration` to cycles.
    pub fn duration_to_cycles(&self, d: Duration) -> Cycles {
        self.ns_to_cycles(d.as_nanos() as f64)
    }

    /// Busy-waits until `ns` nanoseconds have passed since `start` (a `rdtsc()` value).
    #[inline]
    pub fn spin_until(&self, start: Cycles, ns: u64) {
        let end = start.wrapping_add(self.ns_to_cycles(ns as f64));
        while (rdtsc().wrapping_sub(start) as i64) < (end.wrapping_sub(start) as i64) {
            std::hint::spin_loop();
        }
    }
}

/// A duration written `5s`, `250ms`, `100us`, `1500ns`, `2m` (minutes) or as a plain
/// number of seconds, at most 10^7 s: the one spelling of psp-client's and psp-sim's
/// durations.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 5s, 250ms, 100us)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use s, ms, us, ns, m)"
            ))
        }
    };
    let secs = v * scale;
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_clock_is_identity() {
        assert_eq!(Clock::NANOS.ns_to_cycles(1234.0), 1234);
        assert_eq!(Clock::NANOS.cycles_to_ns(1234), 1234.0);
    }

    #[test]
    fn calibrated_clock_converts_back_and_forth() {
        let c = Clock::tsc();
        assert!(
            c.ghz() > 0.01 && c.ghz() < 100.0,
            "implausible TSC rate {}",
            c.ghz()
        );
        let cy = c.ns_to_cycles(1_000_000.0);
        assert!((c.cycles_to_ns(cy) - 1_000_000.0).abs() < 1.0);
    }

    #[test]
    fn spin_until_waits_at_least_the_asked_time() {
        let c = Clock::tsc();
        let t = Instant::now();
        c.spin_until(rdtsc(), 200_000);
        // A lower bound only: the wait can be longer on a loaded machine, never shorter
        // (beyond calibration error, which is far below 10 %).
        assert!(
            t.elapsed() >= Duration::from_micros(180),
            "{:?}",
            t.elapsed()
        );
    }
}

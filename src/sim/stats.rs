//! sim/stats.rs - per-type latency over time windows (the per-run statistics are
//! [`report::TypeStats`](crate::report::TypeStats), shared with `psp-client`).

use hdrhistogram::Histogram;

use crate::time::Cycles;

/// Significant digits of the timeline's histograms: 2 (within 1 %), not the reports'
/// 3, because there is one per window and type (a 1 ms window over 10 s of virtual
/// time is 10 000 of them per type, each about 6 times larger at 3 digits).
pub const TIMELINE_SIGFIG: u8 = 2;

/// Per-type latency histograms over consecutive windows of arrival time (every request,
/// warm-up included: a phased run is all transient).
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Window width, ns.
    pub window_ns: u64,
    /// `windows[i][ty]`: latencies of the type's requests that arrived in window `i`.
    pub windows: Vec<Vec<Histogram<u64>>>,
}

impl Timeline {
    pub(crate) fn new(window_ns: u64, n_types: usize) -> Timeline {
        assert!(
            window_ns > 0,
            "timeline window must be > 0 (see SimConfig::validate)"
        );
        let _ = n_types;
        Timeline {
            window_ns,
            windows: Vec::new(),
        }
    }

    /// Records a request of type `ty` that arrived at `arrival` and took `latency`.
    #[inline]
    pub(crate) fn record(&mut self, ty: usize, arrival: Cycles, latency: u64) {
        let i = (arrival / self.window_ns) as usize;
        while self.windows.len() <= i {
            self.windows.push(Vec::new());
        }
        let w = &mut self.windows[i];
        while w.len() <= ty {
            w.push(Histogram::new(TIMELINE_SIGFIG).expect("histogram"));
        }
        // `saturating_record` would clamp instead of growing the auto-resizing histogram.
        w[ty]
            .record(latency.max(1))
            .expect("auto-resizing histogram");
    }

    /// Latency quantile `q` of type `ty` in window `i`, if it had requests.
    pub fn latency_at(&self, i: usize, ty: usize, q: f64) -> Option<u64> {
        let h = self.windows.get(i)?.get(ty)?;
        (!h.is_empty()).then(|| h.value_at_quantile(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_two_significant_digits() {
        let mut t = Timeline::new(1000, 1);
        t.record(0, 10, 123_456);
        let v = t.latency_at(0, 0, 1.0).unwrap() as f64;
        // Within 1 %: 123_903 here.
        assert!((v - 123_456.0).abs() / 123_456.0 < 1e-2, "{v}");
        assert_eq!(t.windows[0][0].sigfig(), TIMELINE_SIGFIG);
    }
}

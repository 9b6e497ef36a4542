//! sim/stats.rs - per-type latency over time windows (the per-run statistics are
//! [`report::TypeStats`](crate::report::TypeStats), shared with `psp-client`).

use hdrhistogram::Histogram;

use crate::time::Cycles;

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

    #[inline]
    pub(crate) fn record(&mut self, ty: usize, arrival: Cycles, latency: u64) {
        let i = (arrival / self.window_ns) as usize;
        while self.windows.len() <= i {
            self.windows.push(Vec::new());
        }
        let w = &mut self.windows[i];
        while w.len() <= ty {
            // The precision of every other latency histogram (`report::SIGFIG`).
            w.push(Histogram::new(crate::report::SIGFIG).expect("histogram"));
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
    fn windows_keep_the_reports_precision() {
        let mut t = Timeline::new(1000, 1);
        t.record(0, 10, 123_456);
        let v = t.latency_at(0, 0, 1.0).unwrap() as f64;
        // report::SIGFIG = 3 digits: within 0.1 % (2 digits gave 123_903, 0.36 % off).
        assert!((v - 123_456.0).abs() / 123_456.0 < 1e-3, "{v}");
        assert_eq!(
            t.windows[0][0].sigfig(),
            crate::report::SIGFIG,
            "the timeline's histograms keep what the reports keep"
        );
    }
}

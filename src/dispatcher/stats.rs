//! stats.rs - the daemon's counters: every received request is answered or counted
//! under a named reason.

use std::fmt::{self, Write as _};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::net::RxDrops;
use crate::proto::{ParseError, Status};

/// The dispatcher's latest snapshot of its counters (every `stats.interval_ms`),
/// numbered, with a way to wait for the next one: whoever reports the counters is
/// woken by each snapshot instead of polling on a clock of its own (which could read
/// the same snapshot twice, or one from before the first).
#[derive(Debug, Default)]
pub struct Published {
    /// Snapshots published so far, and the latest (the default before the first).
    latest: Mutex<(u64, Stats)>,
    fresh: Condvar,
}

impl Published {
    /// Replaces the latest snapshot and wakes whoever waits for one.
    pub fn put(&self, stats: Stats) {
        let mut l = self.lock();
        l.0 += 1;
        l.1 = stats;
        drop(l);
        self.fresh.notify_all();
    }

    /// The latest snapshot and its number (0 and the default before the first).
    pub fn latest(&self) -> (u64, Stats) {
        self.lock().clone()
    }

    /// Waits up to `timeout` for a snapshot numbered above `seen`; returns it with its
    /// number, or `None` if none came.
    pub fn newer_than(&self, seen: u64, timeout: Duration) -> Option<(u64, Stats)> {
        let l = self.lock();
        let (l, _) = self
            .fresh
            .wait_timeout_while(l, timeout, |l| l.0 <= seen)
            .unwrap_or_else(|e| e.into_inner());
        (l.0 > seen).then(|| l.clone())
    }

    /// A reader that panicked cannot leave the counters inconsistent: they are
    /// replaced whole.
    fn lock(&self) -> MutexGuard<'_, (u64, Stats)> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Datagrams dropped because they are not valid requests (never answered: a reply
/// to garbage could be aimed at a spoofed address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Malformed {
    pub short: u64,
    pub bad_magic: u64,
    pub bad_version: u64,
    pub bad_flags: u64,
    pub bad_length: u64,
    /// Well-formed replies sent to the server.
    pub not_request: u64,
}

impl Malformed {
    pub fn total(&self) -> u64 {
        self.short
            + self.bad_magic
            + self.bad_version
            + self.bad_flags
            + self.bad_length
            + self.not_request
    }

    pub(crate) fn count(&mut self, e: ParseError) {
        match e {
            ParseError::Short { .. } => self.short += 1,
            ParseError::BadMagic(_) => self.bad_magic += 1,
            ParseError::BadVersion(_) => self.bad_version += 1,
            ParseError::BadFlags(_) => self.bad_flags += 1,
            ParseError::BadLength { .. } => self.bad_length += 1,
        }
    }
}

/// Per request type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStats {
    pub name: String,
    /// Requests of this type queued (accepted).
    pub accepted: u64,
    /// Rejected because the type's queue was full.
    pub queue_full: u64,
    /// Completed by a worker (any status).
    pub completed: u64,
    /// Waiting in the dispatcher's queue now.
    pub queued: u64,
}

/// A snapshot of the daemon's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams taken from the transport (valid or not).
    pub received: u64,
    /// Replies sent, by status (index: `Status as usize`).
    pub replies: [u64; Status::ALL.len()],
    pub malformed: Malformed,
    /// Losses before parsing (no buffer, kernel overflow, oversized).
    pub rx_drops: RxDrops,
    /// Receive calls that failed.
    pub rx_errors: u64,
    /// Replies the transport failed to send (dispatcher and workers).
    pub tx_errors: u64,
    /// Replies not sent because the wire format has no status for them (`net.wire:
    /// psp_mb` sends only `ok` replies); each is also counted under its status.
    pub withheld: u64,
    /// Requests accepted and not yet answered (queued or at a worker).
    pub in_flight: u64,
    /// Requests still at a worker when shutdown stopped waiting for them.
    pub abandoned: u64,
    /// Handler panics caught by workers.
    pub panics: u64,
    /// Requests whose handler overran `workers.budget_us` (also counted as `timeout`
    /// replies).
    pub overruns: u64,
    pub types: Vec<TypeStats>,
    /// The policy's one-line state (e.g. DARC's reservation).
    pub policy: String,
    /// Time since the dispatcher's loop started.
    pub run_ns: u64,
    /// Of `run_ns`, the time spent in turns that found work (completions, requests or
    /// dispatches), each from its clock read to the next turn's: the dispatcher core's
    /// load. Near 100 % means it is the bottleneck. This and the two fields around it
    /// stay 0 for a dispatcher driven turn by turn (`Dispatcher::poll`), not by `run`.
    pub busy_ns: u64,
    /// The turns counted in `busy_ns`. Requests per busy turn is how well the
    /// dispatcher batches: about one means it runs in step with single completions.
    pub busy_turns: u64,
}

impl Stats {
    /// Adds a worker's own counters (transmit errors, withheld replies, panics,
    /// overruns), which the dispatcher does not count.
    pub fn add_worker(&mut self, r: &crate::workers::WorkerReport) {
        self.tx_errors += r.tx_errors;
        self.withheld += r.withheld;
        self.panics += r.panics;
        self.overruns += r.overruns;
    }

    /// Replies sent, any status.
    pub fn answered(&self) -> u64 {
        self.replies.iter().sum()
    }

    /// Replies with a given status.
    pub fn replies_with(&self, s: Status) -> u64 {
        self.replies[s as usize]
    }

    /// Whether every received datagram is accounted for:
    /// received = answered + malformed + in flight + abandoned.
    pub fn balanced(&self) -> bool {
        self.received == self.answered() + self.malformed.total() + self.in_flight + self.abandoned
    }

    /// The share of `run_ns` the dispatcher was busy (0 before it ran).
    pub fn busy_fraction(&self) -> f64 {
        self.busy_ns as f64 / self.run_ns.max(1) as f64
    }

    /// The share of the time between `earlier` and this snapshot of the same run that
    /// the dispatcher was busy (`None` if no time passed between them).
    pub fn busy_fraction_since(&self, earlier: &Stats) -> Option<f64> {
        let run = self.run_ns.checked_sub(earlier.run_ns).filter(|&t| t > 0)?;
        let busy = self.busy_ns.saturating_sub(earlier.busy_ns);
        Some((busy as f64 / run as f64).min(1.0))
    }

    /// The dispatcher's load between `earlier` and this snapshot of the same run, for
    /// the periodic line: its busy share, and requests received per busy turn (how well
    /// it batches), or `n/a` when no time passed between the two.
    pub fn load_since(&self, earlier: &Stats) -> String {
        let Some(busy) = self.busy_fraction_since(earlier) else {
            return "dispatcher busy n/a (no new snapshot)".into();
        };
        let mut s = format!("dispatcher busy {:.0}%", 100.0 * busy);
        let turns = self.busy_turns.saturating_sub(earlier.busy_turns);
        if turns > 0 {
            // Requests: datagrams received less the malformed ones.
            let requests = |s: &Stats| s.received.saturating_sub(s.malformed.total());
            let received = requests(self).saturating_sub(requests(earlier));
            let _ = write!(
                s,
                ", {:.1} requests per busy turn",
                received as f64 / turns as f64
            );
        }
        s
    }

    /// The periodic stats line.
    pub fn line(&self) -> String {
        let mut s = format!(
            "rx {} answered {} ok {} in_flight {}",
            self.received,
            self.answered(),
            self.replies_with(Status::Ok),
            self.in_flight
        );
        let _ = write!(s, " | queues");
        for t in &self.types {
            let _ = write!(s, " {}={}", t.name, t.queued);
        }
        let drops = self.drop_reasons();
        if !drops.is_empty() {
            // Rejections (answered with an error status) and datagrams dropped.
            let _ = write!(s, " | not ok");
            for (k, v) in drops {
                let _ = write!(s, " {k}={v}");
            }
        }
        if !self.policy.is_empty() {
            let _ = write!(s, " | {}", self.policy);
        }
        s
    }

    /// Non-zero loss and rejection counters, by name.
    pub fn drop_reasons(&self) -> Vec<(&'static str, u64)> {
        let m = &self.malformed;
        let all = [
            ("queue_full", self.replies_with(Status::QueueFull)),
            ("unknown_type", self.replies_with(Status::UnknownType)),
            ("handler_error", self.replies_with(Status::HandlerError)),
            ("bad_request", self.replies_with(Status::BadRequest)),
            ("timeout", self.replies_with(Status::Timeout)),
            ("shutdown", self.replies_with(Status::Shutdown)),
            ("short", m.short),
            ("bad_magic", m.bad_magic),
            ("bad_version", m.bad_version),
            ("bad_flags", m.bad_flags),
            ("bad_length", m.bad_length),
            ("not_request", m.not_request),
            ("no_buffer", self.rx_drops.no_buffer),
            ("kernel_overflow", self.rx_drops.overflow),
            ("oversized", self.rx_drops.oversized),
            ("bad_frame", self.rx_drops.bad_frame),
            ("bad_psp_mb", self.rx_drops.bad_psp_mb),
            ("rx_errors", self.rx_errors),
            ("tx_errors", self.tx_errors),
            ("withheld", self.withheld),
            ("abandoned", self.abandoned),
        ];
        all.into_iter().filter(|(_, v)| *v > 0).collect()
    }
}

impl fmt::Display for Stats {
    /// The final report: every counter, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "received        {}", self.received)?;
        writeln!(f, "answered        {}", self.answered())?;
        for s in Status::ALL {
            writeln!(f, "  {:<14}{}", s.name(), self.replies_with(s))?;
        }
        writeln!(f, "malformed       {}", self.malformed.total())?;
        let m = &self.malformed;
        for (k, v) in [
            ("short", m.short),
            ("bad_magic", m.bad_magic),
            ("bad_version", m.bad_version),
            ("bad_flags", m.bad_flags),
            ("bad_length", m.bad_length),
            ("not_request", m.not_request),
        ] {
            writeln!(f, "  {k:<14}{v}")?;
        }
        writeln!(
            f,
            "rx drops        no_buffer {} kernel_overflow {} oversized {} bad_frame {} \
             bad_psp_mb {}",
            self.rx_drops.no_buffer,
            self.rx_drops.overflow,
            self.rx_drops.oversized,
            self.rx_drops.bad_frame,
            self.rx_drops.bad_psp_mb
        )?;
        writeln!(f, "rx_errors       {}", self.rx_errors)?;
        writeln!(f, "tx_errors       {}", self.tx_errors)?;
        writeln!(f, "withheld        {}", self.withheld)?;
        writeln!(f, "handler panics  {}", self.panics)?;
        writeln!(f, "overruns        {}", self.overruns)?;
        writeln!(f, "in_flight       {}", self.in_flight)?;
        writeln!(f, "abandoned       {}", self.abandoned)?;
        for t in &self.types {
            writeln!(
                f,
                "type {:<10} accepted {} completed {} queue_full {} queued {}",
                t.name, t.accepted, t.completed, t.queue_full, t.queued
            )?;
        }
        if !self.policy.is_empty() {
            writeln!(f, "policy          {}", self.policy)?;
        }
        if self.run_ns > 0 {
            writeln!(
                f,
                "dispatcher busy {:.1} % of {:.3} s, in {} turns",
                100.0 * self.busy_fraction(),
                self.run_ns as f64 / 1e9,
                self.busy_turns
            )?;
        }
        write!(f, "balanced        {}", self.balanced())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_only_a_newer_snapshot() {
        let p = std::sync::Arc::new(Published::default());
        assert_eq!(p.latest().0, 0);
        assert!(p.newer_than(0, Duration::from_millis(1)).is_none());
        let p2 = p.clone();
        let putter = std::thread::spawn(move || {
            p2.put(Stats {
                received: 5,
                ..Stats::default()
            })
        });
        let (n, s) = p.newer_than(0, Duration::from_secs(20)).expect("woken");
        assert_eq!((n, s.received), (1, 5));
        putter.join().unwrap();
        // Nothing newer than 1 yet.
        assert!(p.newer_than(1, Duration::from_millis(1)).is_none());
        assert_eq!(p.latest().0, 1);
    }

    fn load(run_ns: u64, busy_ns: u64) -> Stats {
        Stats {
            run_ns,
            busy_ns,
            ..Stats::default()
        }
    }

    /// The stats line names what was not answered `ok`, rejections and drops alike,
    /// and only the non-zero ones.
    #[test]
    fn the_stats_line_lists_what_was_not_ok() {
        let mut s = Stats::default();
        assert!(!s.line().contains("not ok"), "{}", s.line());
        s.replies[Status::QueueFull as usize] = 3;
        s.malformed.short = 2;
        assert!(
            s.line().ends_with(" | not ok queue_full=3 short=2"),
            "{}",
            s.line()
        );
    }

    #[test]
    fn busy_fraction_over_the_run_and_between_snapshots() {
        let (a, b) = (load(1_000, 100), load(3_000, 1_600));
        assert_eq!(b.busy_fraction(), 1_600.0 / 3_000.0);
        // Between the two: 1500 busy of 2000.
        assert_eq!(b.busy_fraction_since(&a), Some(0.75));
        // No time between them (the same published snapshot twice), or out of order.
        assert_eq!(a.busy_fraction_since(&a), None);
        assert_eq!(a.busy_fraction_since(&b), None);
        // Before the loop ran.
        assert_eq!(Stats::default().busy_fraction(), 0.0);
    }

    #[test]
    fn the_load_line_between_snapshots() {
        let a = Stats {
            received: 100,
            busy_turns: 10,
            ..load(1_000, 100)
        };
        let b = Stats {
            received: 1_100,
            busy_turns: 110,
            ..load(3_000, 1_600)
        };
        assert_eq!(
            b.load_since(&a),
            "dispatcher busy 75%, 10.0 requests per busy turn"
        );
        // Time passed, nothing happened: no turn to divide by.
        let idle = load(5_000, 1_600);
        assert_eq!(
            Stats {
                received: 1_100,
                busy_turns: 110,
                ..idle
            }
            .load_since(&b),
            "dispatcher busy 0%"
        );
        assert_eq!(b.load_since(&b), "dispatcher busy n/a (no new snapshot)");
        // Malformed datagrams are not requests.
        let mut c = Stats {
            received: 2_100,
            busy_turns: 210,
            ..load(5_000, 2_600)
        };
        c.malformed.bad_magic = 300;
        c.malformed.short = 100;
        assert_eq!(
            c.load_since(&b),
            "dispatcher busy 50%, 6.0 requests per busy turn"
        );
    }
}

//! idle.rs - what a polling thread does when it finds no work.
//!
//! `spin` keeps the core (production, dedicated cores). `yield` and `park` share it:
//! on a machine where pollers outnumber cores, a poller that never gives its core up
//! stretches every other thread's wake-up to a scheduler slice (milliseconds).

use std::time::Duration;

use crate::config::IdleStrategy;
use crate::time::{rdtsc, Clock, Cycles};

/// How long a `park` poller busy-polls after its last work before it starts
/// yielding: long enough to catch the next request of a burst without a wake-up,
/// short enough not to starve threads sharing the core.
const PARK_SPIN: Duration = Duration::from_micros(20);
/// How long after its last work it yields before it sleeps.
const PARK_YIELD: Duration = Duration::from_micros(60);

/// Per-thread idle state: call [`Idler::work`] after useful work and [`Idler::idle`]
/// after an empty poll.
#[derive(Debug, Clone)]
pub struct Idler {
    strategy: IdleStrategy,
    max_park: Duration,
    /// When the current idle spell began (None: the last poll found work).
    since: Option<Cycles>,
    spin: Cycles,
    yield_until: Cycles,
}

impl Idler {
    pub fn new(strategy: IdleStrategy, max_park: Duration) -> Idler {
        Idler::with_clock(strategy, max_park, Clock::tsc())
    }

    /// An idler measuring its spells with `clock` (tests use a virtual one).
    pub fn with_clock(strategy: IdleStrategy, max_park: Duration, clock: Clock) -> Idler {
        Idler {
            strategy,
            max_park,
            since: None,
            spin: clock.duration_to_cycles(PARK_SPIN),
            yield_until: clock.duration_to_cycles(PARK_YIELD),
        }
    }

    pub fn strategy(&self) -> IdleStrategy {
        self.strategy
    }

    /// The last poll found work.
    #[inline]
    pub fn work(&mut self) {
        self.since = None;
    }

    /// The last poll found nothing. `park` is called with the longest time to block
    /// (it must return early when woken); it is only called in `park` mode, after
    /// spinning and then yielding for a few tens of microseconds.
    #[inline]
    pub fn idle(&mut self, park: impl FnOnce(Duration)) {
        if self.strategy == IdleStrategy::Park {
            self.idle_at(rdtsc(), park);
        } else {
            self.idle_at(0, park);
        }
    }

    /// [`Idler::idle`] at time `now` (in the clock's cycles).
    pub fn idle_at(&mut self, now: Cycles, park: impl FnOnce(Duration)) {
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
            IdleStrategy::Park => {
                let since = *self.since.get_or_insert(now);
                let idle_for = now.wrapping_sub(since);
                if idle_for < self.spin {
                    std::hint::spin_loop();
                } else if idle_for < self.yield_until {
                    std::thread::yield_now();
                } else {
                    park(self.max_park);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn park_only_after_spinning_then_yielding_for_a_while() {
        // Virtual time: one cycle per nanosecond.
        let mut i = Idler::with_clock(IdleStrategy::Park, Duration::from_micros(5), Clock::NANOS);
        let mut parks = 0;
        // 0 .. 60 us of idleness: spin, then yield, never park.
        for t in (0..60_000).step_by(1_000) {
            i.idle_at(1_000_000 + t, |_| parks += 1);
        }
        assert_eq!(parks, 0);
        i.idle_at(1_060_000, |d| {
            assert_eq!(d, Duration::from_micros(5));
            parks += 1
        });
        assert_eq!(parks, 1);
        // Work restarts the spell.
        i.work();
        i.idle_at(2_000_000, |_| parks += 1);
        i.idle_at(2_059_000, |_| parks += 1);
        assert_eq!(parks, 1);
        i.idle_at(2_060_000, |_| parks += 1);
        assert_eq!(parks, 2);
    }

    #[test]
    fn spin_and_yield_never_park() {
        for s in [IdleStrategy::Spin, IdleStrategy::Yield] {
            let mut i = Idler::with_clock(s, Duration::from_micros(5), Clock::NANOS);
            for t in 0..1000 {
                i.idle_at(t * 1_000_000, |_| panic!("parked in {s:?} mode"));
            }
        }
    }
}

//! idle.rs - what a polling thread does when it finds no work.
//!
//! `spin` keeps the core (production, dedicated cores). `yield` and `park` share it:
//! on a machine where pollers outnumber cores, a poller that never gives its core up
//! stretches every other thread's wake-up to a scheduler slice (milliseconds).

use std::time::Duration;

use crate::config::IdleStrategy;

/// Busy polls before a `park` poller starts yielding.
const PARK_SPINS: u32 = 200;
/// Yields before a `park` poller goes to sleep.
const PARK_YIELDS: u32 = 20;

/// Per-thread idle state: call [`Idler::work`] after useful work and [`Idler::idle`]
/// after an empty poll.
#[derive(Debug, Clone)]
pub struct Idler {
    strategy: IdleStrategy,
    empty_polls: u32,
    max_park: Duration,
}

impl Idler {
    pub fn new(strategy: IdleStrategy, max_park: Duration) -> Idler {
        Idler {
            strategy,
            empty_polls: 0,
            max_park,
        }
    }

    pub fn strategy(&self) -> IdleStrategy {
        self.strategy
    }

    /// The last poll found work.
    #[inline]
    pub fn work(&mut self) {
        self.empty_polls = 0;
    }

    /// The last poll found nothing. `park` is called with the longest time to block
    /// (it must return early when woken); it is only called in `park` mode, after a
    /// short spin and a few yields.
    #[inline]
    pub fn idle(&mut self, park: impl FnOnce(Duration)) {
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
            IdleStrategy::Park => {
                self.empty_polls = self.empty_polls.saturating_add(1);
                if self.empty_polls < PARK_SPINS {
                    std::hint::spin_loop();
                } else if self.empty_polls < PARK_SPINS + PARK_YIELDS {
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
    fn park_only_after_spinning_and_yielding() {
        let mut i = Idler::new(IdleStrategy::Park, Duration::from_micros(5));
        let mut parks = 0;
        for _ in 0..PARK_SPINS + PARK_YIELDS - 1 {
            i.idle(|_| parks += 1);
        }
        assert_eq!(parks, 0);
        i.idle(|d| {
            assert_eq!(d, Duration::from_micros(5));
            parks += 1
        });
        assert_eq!(parks, 1);
        i.work();
        i.idle(|_| parks += 1);
        assert_eq!(parks, 1);
    }

    #[test]
    fn spin_and_yield_never_park() {
        for s in [IdleStrategy::Spin, IdleStrategy::Yield] {
            let mut i = Idler::new(s, Duration::from_micros(5));
            for _ in 0..1000 {
                i.idle(|_| panic!("parked in {s:?} mode"));
            }
        }
    }
}

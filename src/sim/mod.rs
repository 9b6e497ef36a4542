//! sim - a discrete-event simulator that drives the real policies with virtual time.
//!
//! A 2-core machine cannot show what DARC does for 14 workers; the simulator can, with
//! the very [`Policy`](crate::policy::Policy) code the daemon runs (built by
//! [`policy::build`](crate::policy::build) with [`Clock::NANOS`](crate::time::Clock)),
//! driven in the dispatcher's order (see [`engine`]). Its answers are checked against
//! queueing theory ([`theory`]: Erlang-C for c-FCFS, M/M/1 per worker for random
//! d-FCFS, Little's law) in `tests/sim_validation.rs`.

pub mod cli;
pub mod engine;
pub mod plot;
pub mod stats;
pub mod sweep;
pub mod theory;

pub use engine::{run, Arrivals, Length, Phase, PhaseResult, Rate, SimConfig, SimResult, SimType};
pub use stats::Timeline;

//! # persephone
//!
//! A microsecond-scale request scheduler in the style of Perséphone (SOSP'21, "When
//! Idling is Ideal"): one dispatcher core classifies requests by type and hands them to
//! pinned worker cores under a scheduling policy — c-FCFS, d-FCFS or DARC, which
//! reserves cores for short request types and would rather idle than let a long request
//! block a short one.
//!
//! The crate is layered like the data path:
//!
//! - [`proto`]: the wire format (a 28-byte header at the start of each UDP payload).
//! - [`policy`]: scheduling policies as pure state machines: no threads, no clock, no
//!   I/O. The dispatcher drives them with TSC time and the simulator with virtual time.
//! - [`workload`]: request-type mixes shared by the load generator and the simulator.
//! - [`config`]: the YAML configuration and its validation.
//! - [`time`]: TSC timestamps calibrated against the monotonic clock.

#![deny(unsafe_code)]

pub mod config;
pub mod policy;
pub mod proto;
#[allow(unsafe_code)]
pub mod time;
pub mod workload;

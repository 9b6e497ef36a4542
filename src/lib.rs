//! # persephone
//!
//! A microsecond-scale request scheduler in the style of Perséphone (SOSP'21, "When
//! Idling is Ideal"): one dispatcher core classifies requests by type and hands them to
//! pinned worker cores under a scheduling policy — c-FCFS, d-FCFS, SJF, EDF or DARC,
//! which reserves cores for short request types and would rather idle than let a long
//! request block a short one.
//!
//! The modules follow the data path:
//!
//! - [`net`]: transports. A request arrives as a packet handle on the dispatcher's
//!   receive side (kernel UDP by default, DPDK with the `dpdk` feature).
//! - [`proto`]: the wire format, parsed and validated once at the edge.
//! - [`dispatcher`]: the dispatcher loop — classify, queue per type, ask the policy,
//!   send jobs to workers; take completions back.
//! - [`policy`]: scheduling policies as pure state machines (no threads, clock or
//!   I/O), driven with TSC time here and with virtual time by the simulator.
//! - [`workers`]: the worker loop and the [`Handler`] API: the
//!   request buffer becomes the reply in place and leaves on the worker's own queue.
//! - [`duplex`]: the channel between the dispatcher and each worker: a job goes out
//!   and its completion comes back in the same slot (one cache line per round trip).
//! - [`app`]: assembling all of it from a [`config::Config`] ([`App`], [`Server`]).
//! - [`apps`]: services built on the [`Handler`] API, ready to run or to copy: the
//!   [`apps::kv`] store (GET / SET / DEL / SCAN) and its classifier.
//! - [`sim`]: a discrete-event simulator that drives the same policies with virtual
//!   time (`psp-sim`), validated against queueing theory.
//! - [`report`]: latency and slowdown statistics and their CSV/JSON/hgrm outputs,
//!   shared by `psp-client` and `psp-sim`.
//! - [`workload`]: request-type mixes shared by the load generator and the simulator.
//! - [`time`], [`idle`], [`config`]: TSC clock, idle strategies, YAML configuration.

#![deny(unsafe_code)]

pub mod app;
pub mod apps;
pub mod config;
#[allow(unsafe_code)]
pub mod dispatcher;
#[allow(unsafe_code)]
pub mod duplex;
pub mod idle;
#[allow(unsafe_code)]
pub mod net;
pub mod plot_style;
pub mod policy;
pub mod proto;
pub mod report;
pub mod sim;
mod sync;
#[allow(unsafe_code)]
pub mod time;
pub mod workers;
pub mod workload;

pub use app::{App, HandlerFactory, Server, StartError};
pub use dispatcher::{Classifier, Stats};
pub use workers::{Handler, HandlerError, Request};

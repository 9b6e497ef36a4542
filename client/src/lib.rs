//! # psp-client
//!
//! The open-loop load generator of persephone-rs: it computes a whole schedule of
//! requests up front, sends each at its time without waiting for replies, measures
//! every reply's latency from the request's *scheduled* send time, and reports
//! per-type latency and slowdown through [`persephone::report`] (the schema the
//! simulator writes too).
//!
//! The modules follow a run:
//!
//! - [`config`]: flags and YAML merged into a [`config::Plan`] (points, phases, rules);
//! - [`schedule`]: the seeded schedule of one point: send times, types, service times;
//! - [`kv`]: the kv workloads' keys, KV request payloads, and the check of each answer;
//! - [`engine`]: plays it over UDP — a sender and a receiver thread over
//!   preallocated per-request slots — into a raw [`engine::Outcome`];
//! - `dpdk` (feature `dpdk`, `--backend dpdk`): plays it over DPDK — one polling
//!   thread, the same slots and the same `Outcome`;
//! - [`measure`]: judges each request (ok, rejected, lost, late) into reports;
//! - [`runner`]: runs the points with a progress bar and writes the files;
//! - [`plot`]: SVG curves from result CSVs; [`demo`]: daemon + load in one process;
//! - [`sys`]: the few system calls std lacks (`sendmmsg`, `recvmmsg`, SCHED_FIFO).

#![deny(unsafe_code)]

pub mod config;
pub mod demo;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine;
pub mod interrupt;
pub mod kv;
pub mod measure;
pub mod plot;
pub mod runner;
pub mod schedule;
#[allow(unsafe_code)]
pub mod sys;

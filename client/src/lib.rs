//! # psp-client
//!
//! The open-loop load generator of persephone-rs: it computes a whole schedule of
//! requests up front ([`schedule`]), sends each at its time without waiting for
//! replies, measures every reply's latency from the request's *scheduled* send time,
//! and reports per-type latency and slowdown through [`persephone::report`].

#![deny(unsafe_code)]

pub mod config;
pub mod demo;
pub mod engine;
pub mod measure;
pub mod plot;
pub mod runner;
pub mod schedule;
#[allow(unsafe_code)]
pub mod sys;

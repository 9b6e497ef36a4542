//! apps - ready-made services built on the public [`Handler`](crate::Handler) API, the
//! way a user's crate would build its own.
//!
//! - [`kv`]: an in-memory ordered key-value store (GET / SET / DEL / SCAN) with a
//!   classifier that gives each operation its own request type, so DARC can reserve
//!   cores for GETs while SCANs run elsewhere. `workers.handler: kv` serves it from
//!   `psp-app`; `psp-client --workload kv` loads it and checks every answer.
//!
//! TPC-C-style services need no code of their own to be scheduled: the `spin` handler
//! with the five TPC-C transaction types (`configs/tpcc.yml`, `psp-client --workload
//! tpcc`) reproduces the paper's mix; see the README on mapping a real service's calls
//! to request types.

pub mod kv;
